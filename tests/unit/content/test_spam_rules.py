"""The SpamAssassin-compatible rule engine on small crafted rule texts.

Every expected hit set below was checked against real SpamAssassin 4.0.1
(`spamassassin -L -t` with the same rules as the only .cf file next to
Debian's *.pre files): header rules (=~, !~, :raw, :addr, :name, ALL, ToCc,
MESSAGEID, exists:, [if-unset:], missing headers), body (QP, base64, HTML
rendered to text, the Subject as first line, nosubject), rawbody, uri (text
and HTML), full, mimeheader, meta (boolean and arithmetic), tflags multiple
with maxhits, ReplaceTags, if/ifplugin/else, score forms, describe; and
malformed lines, which are warnings naming file and line, never exceptions.
"""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner


def scanner(text: str, path: str = "rules.cf") -> SpamScanner:
    rs = C.parse_text(text, path)
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def hits(sc: SpamScanner, msg: bytes) -> list[str]:
    """The scored rules that hit, each once."""
    return sorted({n for n, _ in sc.run(msg).hits})


RULES = r"""
header H_SUBJ      Subject =~ /\bfoo\b/i
header H_NOTFOO    Subject !~ /foo/i
header H_DECODED   Subject =~ /hello world/
header H_RAW       Subject:raw =~ /=\?us-ascii\?Q\?hello_world\?=/i
header H_RAWDEC    Subject:raw =~ /hello world/
header H_ADDR      From:addr =~ /^joe\@example\.com$/
header H_NAME      From:name =~ /^Joe Bloggs$/
header H_ALL       ALL =~ /^X-Mailer: spamtool/m
header H_TOCC      ToCc =~ /bob\@example\.net/
header H_MSGID     MESSAGEID =~ /\@spam\.example>/
header H_EXISTS    exists:X-Foo
header H_UNSET     X-Missing =~ /^UNSET$/ [if-unset: UNSET]
header H_MISS_NEG  X-Missing !~ /x/
header H_MISS_POS  X-Missing =~ /^$/
body   B_QP        /cheap pills now/
body   B_B64       /base64 secret/
body   B_HTML      /click here to win/
body   B_TAG       /<b>/
body   B_SUBJ      /^Re: foo/
rawbody R_TAG      /<b>win<\/b>/i
rawbody R_QPRAW    /cheap=/
uri    U_HTML      /html-link\.example/
full   F_HDR       /^X-Foo: bar$/m
mimeheader M_CT    Content-Type =~ /application\/x-msdownload/
mimeheader M_CTRAW Content-Type:raw =~ /name="evil\.exe"/
body   __A         /alpha/
body   __B         /beta/
body   __C         /gamma/
body   __MULT      /pill/
tflags __MULT multiple maxhits=3
meta   M_AND       __A && !__B
meta   M_OR        __B || __C
meta   M_ARITH     (__A + __B + __C) >= 2
meta   M_COUNT     __MULT > 2
body   B_MULT      /pill/
tflags B_MULT multiple maxhits=2
score  B_MULT 0.5
score  H_SUBJ 1.5
score  H_SUBJ (1)
score  B_QP 1 2 3 4
describe H_SUBJ    Subject talks about foo
"""

PLAIN = b"""From: Joe Bloggs <joe@example.com>
To: alice@example.org
Cc: bob@example.net
Subject: Re: foo bar
Message-ID: <1234@spam.example>
X-Foo: bar
X-Mailer: spamtool 1.0
Date: Mon, 01 Jan 2024 00:00:00 +0000

alpha gamma pill pill pill pill
see http://www.text-link.example/x for details
"""

MIME = b"""From: someone@example.com
To: alice@example.org
Subject: =?us-ascii?Q?hello_world?=
Date: Mon, 01 Jan 2024 00:00:00 +0000
Message-ID: <abc@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

cheap=
 pills now beta
--XX
Content-Type: text/plain
Content-Transfer-Encoding: base64

YmFzZTY0IHNlY3JldAo=
--XX
Content-Type: text/html

<html><body><p>click <b>here</b> to <b>win</b></p><a href="http://html-link.example/">x</a></body></html>
--XX
Content-Type: application/x-msdownload; name="evil.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA
--XX--
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    return scanner(RULES)


def test_header_body_full_meta_on_a_plain_message(sc):
    assert hits(sc, PLAIN) == [
        "B_MULT", "B_SUBJ", "F_HDR", "H_ADDR", "H_ALL", "H_EXISTS", "H_MISS_NEG",
        "H_MISS_POS", "H_MSGID", "H_NAME", "H_SUBJ", "H_TOCC", "H_UNSET",
        "M_AND", "M_ARITH", "M_COUNT", "M_OR"]


def test_decoded_body_html_uri_mimeheader_on_a_mime_message(sc):
    assert hits(sc, MIME) == [
        "B_B64", "B_HTML", "B_MULT", "B_QP", "H_DECODED", "H_MISS_NEG", "H_MISS_POS",
        "H_NOTFOO", "H_RAW", "H_UNSET", "M_CT", "M_CTRAW", "M_OR", "R_TAG", "U_HTML"]


def test_rule_values_multiple_maxhits_and_subrules(sc):
    v = sc.run(PLAIN).values
    assert v["__MULT"] == 3           # four matches, maxhits=3
    assert v["B_MULT"] == 2           # maxhits=2
    assert v["__A"] == 1 and v["__C"] == 1 and "__B" not in v
    assert sc.run(MIME).values["__MULT"] == 1


def test_scores_relative_and_four_sets(sc):
    rs = sc.rules
    assert rs.score("H_SUBJ") == 2.5                # 1.5, then (1) added
    assert rs.scores["B_QP"] == [1.0, 2.0, 3.0, 4.0] and rs.score("B_QP") == 1.0
    assert rs.score("M_AND") == 1.0                 # default score
    assert rs.descriptions["H_SUBJ"] == "Subject talks about foo"
    run = sc.run(MIME)
    assert dict(run.hits)["B_QP"] == 1.0
    assert run.score == pytest.approx(15 * 1.0 - 1.0 + 0.5)   # 14 rules at 1, B_MULT 0.5


def test_multiple_rule_scores_every_hit(sc):
    run = sc.run(PLAIN)
    # SpamAssassin 4.0.1: score=18.5, tests=B_MULT,B_MULT,...
    assert run.score == pytest.approx(18.5)
    assert [h for h in run.hits if h[0] == "B_MULT"] == [("B_MULT", 0.5)] * 2


def test_verdict_from_scan(sc):
    v = sc.scan(MIME)
    assert v.required == 5.0 and v.is_spam
    assert ("H_RAW", 1.0) in v.hits and all(not n.startswith("__") for n, _ in v.hits)


RULES2 = r"""
loadplugin Mail::SpamAssassin::Plugin::ReplaceTags
util_rb_tld com
replace_start <
replace_end >
replace_tag  A   (?:a|4|@)
replace_tag  I   (?:i|1|!)
body   RT_VIAGRA   /v<I>agr<A>/i
replace_rules RT_VIAGRA
body   RT_NOREPL   /v<I>agr<A>/i
uri    U_TEXT      /text-link\.com/
ifplugin Mail::SpamAssassin::Plugin::NoSuchPlugin
body   IF_NOPLUGIN /alpha/
else
body   IF_ELSE     /alpha/
endif
if version >= 3.004000
body   IF_VERSION  /alpha/
endif
if (0)
body   IF_ZERO     /alpha/
endif
ifplugin Mail::SpamAssassin::Plugin::ReplaceTags
body   IF_PLUGIN   /alpha/
endif
if !plugin(Mail::SpamAssassin::Plugin::ReplaceTags)
body   IF_NOTPLUGIN /alpha/
endif
body   B_NOSUBJ    /subjectword/
tflags B_NOSUBJ    nosubject
body   B_SUBJW     /subjectword/
body   B_ZERO      /alpha/
score  B_ZERO 0
meta   M_ZERO      B_ZERO
body   T_LOW       /alpha/
body   B_NICE      /alpha/
tflags B_NICE nice
"""

MSG2 = b"""From: x@example.com
To: y@example.com
Subject: subjectword
Date: Mon, 01 Jan 2024 00:00:00 +0000
Message-ID: <a@example.com>

alpha v1agr@ and c 4 s h ! n t
see http://www.text-link.com/x
"""


def test_replace_tags_conditionals_nosubject_default_scores():
    sc = scanner(RULES2)
    run = sc.run(MSG2)
    assert [n for n, _ in run.hits] == [
        "B_NICE", "B_SUBJW", "IF_ELSE", "IF_PLUGIN", "IF_VERSION", "RT_VIAGRA", "T_LOW",
        "U_TEXT"]
    scores = dict(run.hits)
    assert scores["B_NICE"] == -1.0 and scores["T_LOW"] == 0.01     # tflags nice, T_ prefix
    assert run.score == pytest.approx(5.01)
    # score 0: the rule does not run, nor a meta that depends only on it
    assert "B_ZERO" not in run.values and "M_ZERO" not in run.values
    assert C.replace_tags(sc.rules, "/v<I>agr<A>/i") == "/v(?:i|1|!)agr(?:a|4|@)/i"
    assert sc.rules.rules["RT_NOREPL"].regex == "/v<I>agr<A>/i"


def test_replace_rules_need_the_plugin():
    rs = C.parse_text("replace_tag A (?:a|4)\nbody R /<A>b/\nreplace_rules R\n")
    assert rs.rules["R"].regex == "/<A>b/"


def test_no_hits_on_an_unrelated_message(sc):
    msg = b"From: a@b.example\nTo: c@d.example\nSubject: nothing\n\nquiet text\n"
    assert hits(sc, msg) == ["H_MISS_NEG", "H_MISS_POS", "H_NOTFOO", "H_UNSET"]


# ---------------------------------------------------------------- malformed lines

BAD = r"""body   OK_RULE     /alpha/
body   BAD_DELIM   alpha
unknowncommand foo bar
header BAD_HDR     Subject ~~ /x/
score  NEW_RULE (2)
endif
else
body   BAD_RE      /(unclosed/
meta   BAD_META    OK_RULE &&& (
header BAD_MOD     Subject:nosuch =~ /x/
describe
body   1BADNAME    /x/
ifplugin Mail::SpamAssassin::Plugin::ReplaceTags
body   IN_IF  /alpha/
"""


def test_malformed_lines_are_warnings_with_file_and_line():
    rs = C.parse_text(BAD, "/etc/x/bad.cf")
    w = rs.warnings
    assert [x.split(":", 1)[0] for x in w] == [
        "/etc/x/bad.cf, line 2", "/etc/x/bad.cf, line 3", "/etc/x/bad.cf, line 4",
        "/etc/x/bad.cf, line 5", "/etc/x/bad.cf, line 6", "/etc/x/bad.cf, line 7",
        "/etc/x/bad.cf, line 9", "/etc/x/bad.cf, line 10", "/etc/x/bad.cf, line 11",
        "/etc/x/bad.cf, line 12", "/etc/x/bad.cf, line 13"]
    assert w[0].endswith("config: invalid regexp for BAD_DELIM 'alpha': missing regexp delimiters")
    assert w[1].endswith("config: failed to parse line in /etc/x/bad.cf (line 3): "
                         "unknowncommand foo bar")
    assert w[2].endswith("config: invalid head test BAD_HDR: Subject ~~ /x/")
    assert "config: invalid 'score' value" in w[3]
    assert w[4].endswith("config: missing starting 'if' for 'endif'")
    assert w[5].endswith("config: 'else' missing starting if")
    assert "config: invalid expression for rule BAD_META" in w[6]
    assert w[7].endswith("config: invalid header modifier for BAD_MOD: Subject:nosuch")
    assert "config: missing 'describe' value" in w[8]
    assert "rule '1BADNAME' has invalid characters" in w[9]
    assert w[10].endswith("config: unclosed 'ifplugin' found in /etc/x/bad.cf (line 13)")
    assert sorted(rs.rules) == ["BAD_RE", "OK_RULE"]


def test_a_regex_that_cannot_compile_is_reported_not_raised():
    rs = C.parse_text(BAD, "bad.cf")
    sc = SpamScanner(rules=rs, cache_dir=None)
    assert len(sc.compiled.stats.compile_failed) == 1
    assert sc.compiled.stats.compile_failed[0].startswith("BAD_RE: ")
    assert hits(sc, b"Subject: x\n\nalpha (unclosed\n") == ["OK_RULE"]


def test_missing_endif_skips_to_the_end_of_the_file_only():
    p = C.Parser()
    p.parse_text("if (0)\nbody A /a/\n", "one.cf")
    p.parse_text("body B /b/\n", "two.cf")
    rs = p.finish()
    assert sorted(rs.rules) == ["B"]
    assert rs.warnings == ["one.cf, line 1: config: unclosed 'if' found in one.cf (line 1)"]


def test_unreadable_rule_file_is_a_warning(tmp_path):
    p = C.Parser()
    p.parse_file(str(tmp_path / "missing.cf"))
    assert p.finish().warnings == [f'{tmp_path}/missing.cf: config: cannot open '
                                   f'"{tmp_path}/missing.cf": No such file or directory']


def test_eval_rules_unsupported_and_network_are_counted():
    sc = scanner("body E1 eval:check_nonexistent_thing()\n"
                 "header E2 eval:check_rbl('x', 'zen.example.')\n"
                 "header E3 eval:check_for_missing_to_header()\n"
                 "body E4 eval:check_nonexistent_thing()\nscore E4 0\n")
    st = sc.compiled.stats
    assert st.eval_unsupported == {"check_nonexistent_thing": 1}    # E4 has score 0
    assert st.eval_rules == 3
    assert hits(sc, b"From: a@b.example\nSubject: s\n\nbody\n") == ["E3"]
    assert hits(sc, b"From: a@b.example\nTo: c@d.example\nSubject: s\n\nbody\n") == []
