"""Line-area rules (body, rawbody, uri) counted on the joined buffer.

A `tflags multiple` rule whose joined form starts with a start anchor's
byte set (perlre.joined_re2's "countable" forms, see
perlre._countable_line_start) is counted with one finditer over the
joined buffer instead of a per-line loop; these tests check that count
against Perl-like per-subject counts (Python `re`, whose semantics equal
Perl's on these patterns), and that the forms whose matches could eat the
newline a later match starts with are not counted that way.
"""

from __future__ import annotations

import re

import pytest

from postier.content.spam import conf as C
from postier.content.spam import perlre
from postier.content.spam.engine import RRule, count_line_starts, count_matches
from postier.content.spam.scanner import SpamScanner

SUBJECTS = [
    b"x<a href=\"http://a.example/\">a</a> <a href=\"b\">",
    b"\n<a href=x>",
    b">\n<a href=y><a href=z>",
    b">no <a href=here",
    b"",
    b"<A HREF=q>\n\n<a href=r>\n",
    b"plain text line\nwith <a href=\nand <img src=x> and <IMG SRC=y>",
    b"\n",
    b"a\na\n\naa \n",
    b"hello world\nhello",
]


def per_subject(pattern: str, mods: str, subjects: list[bytes]) -> int:
    flags = (re.I if "i" in mods else 0) | (re.M if "m" in mods else 0)
    rx = re.compile(pattern.encode(), flags)
    return sum(len(rx.findall(s)) for s in subjects)


def joined_count(rx, subjects: list[bytes]) -> int:
    return sum(1 for _ in rx.finditer(perlre.joined_buffer(subjects)))


@pytest.mark.parametrize(("pattern", "mods"), [
    ("^[^>].*?<a href=", "im"),
    ("^[^>].*?<(?:a href|A HREF)=", "m"),
    ("^[^>].*?<img src=", "im"),
    ("\\Ahello", ""),
    ("^\\w+ ", "m"),
])
def test_line_start_forms_are_counted_on_the_joined_buffer(pattern, mods):
    rx, exact, countable = perlre.joined_re2(pattern, mods)
    assert exact and countable
    for k in range(len(SUBJECTS)):
        subjects = SUBJECTS[k:] + SUBJECTS[:k]
        assert joined_count(rx, subjects) == per_subject(pattern, mods, subjects)


@pytest.mark.parametrize(("pattern", "mods"), [
    ("^a\\s*", "m"),        # may end with a newline: would eat the next line's start
    ("^foo$", "m"),         # takes the separator after the subject
    ("^(?:x|y\\n)", "m"),
    ("^", "m"),             # empty matches
])
def test_forms_that_could_lose_matches_are_not_countable(pattern, mods):
    rx, _exact, countable = perlre.joined_re2(pattern, mods)
    assert not countable


def test_why_a_trailing_newline_is_excluded():
    # counted on the joined buffer, /^a\s*/m loses the second line's match
    rx, _exact, _countable = perlre.joined_re2("^a\\s*", "m")
    subjects = [b"a\na"]
    assert per_subject("^a\\s*", "m", subjects) == 2
    assert joined_count(rx, subjects) == 1


RULES = r"""
rawbody __HREF      /^[^>].*?<a href=/im
tflags  __HREF      multiple maxhits=100
rawbody __HREF3     /^[^>].*?<a href=/im
tflags  __HREF3     multiple maxhits=3
rawbody __FORM      /^(?>\s{0,5})(?:name|e-?mail|address)\s*:(?:\s|_)*$/im
tflags  __FORM      multiple maxhits=3
rawbody __FORM9     /^(?>\s{0,5})(?:name|e-?mail|address)\s*:(?:\s|_)*$/im
tflags  __FORM9     multiple
rawbody __WORDLINE  /^\w+ /m
tflags  __WORDLINE  multiple
body    __BWORD     /^\w+ /m
tflags  __BWORD     multiple nosubject
meta    HREFS       __HREF > 0
meta    HREFS3      __HREF3 > 0
meta    WORDS       __WORDLINE > 0
meta    FORMS       __FORM + __FORM9 > 0
meta    BWORDS      __BWORD > 0
score   HREFS       0.1
score   HREFS3      0.1
score   WORDS       0.1
score   FORMS       0.1
score   __FORM      0.1
score   __FORM9     0.1
score   BWORDS      0.1
score   __HREF      0.1
score   __HREF3     0.1
score   __WORDLINE  0.1
score   __BWORD     0.1
"""

MESSAGE = (b"From: a@example.com\nTo: b@example.net\nSubject: words here\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
           b"--b\nContent-Type: text/plain\n\nfirst line\n\nsecond one here\nx\n"
           b"Name:\n  email : ___\n\t\tADDRESS:\nname: x\n e-mail:__ \n"
           b"--b\nContent-Type: text/html\n\n"
           b"<html><body>\n<p>see <a href=\"http://a.example/\">a</a> and "
           b"<a href=\"http://b.example/\">b</a></p>\n>quoted <a href=\"c\">\n"
           b"\n<a href=\"http://d.example/\">d</a>\n"
           b"x <A HREF=\"e\">e</a>\n<p>more <a href=\"f\">f</a></p>\n<p>and <a href=\"g\">g</a>\n"
           b"</body></html>\n--b--\n")


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def test_multiple_line_start_rules_count_like_perl(sc):
    run = sc.run(MESSAGE)
    raw = run.rawbody()
    href = per_subject("^[^>].*?<a href=", "im", raw)
    assert href >= 4
    assert run.values.get("__HREF") == href
    assert run.values.get("__HREF3") == 3
    assert run.values.get("__WORDLINE") == per_subject("^\\w+ ", "m", raw)
    form = per_subject("^(?>\\s{0,5})(?:name|e-?mail|address)\\s*:(?:\\s|_)*$", "im", raw)
    assert form >= 4
    assert run.values.get("__FORM9") == form
    assert run.values.get("__FORM") == 3
    body = run.body()
    assert run.values.get("__BWORD") == per_subject("^\\w+ ", "m", body[1:])


def test_a_subject_with_a_nul_gives_the_same_counts(sc):
    # a NUL in a subject: no joined buffer, the per-line loop counts
    msg = MESSAGE.replace(b"first line", b"first\x00line")
    run = sc.run(msg)
    raw = run.rawbody()
    assert run.values.get("__HREF") == per_subject("^[^>].*?<a href=", "im", raw)
    assert run.values.get("__WORDLINE") == per_subject("^\\w+ ", "m", raw)


FORM = "^(?>\\s{0,50})(?:(?:\\d{1,3}[).:]\\s?)?(?:your\\s)?)?(?:name|e-?mail|address)(?:\\s*[/,]\\s*|\\s)?:?(?:[-_.:\\s]|=20){1,4}$"

FORM_TEXTS = [
    b"Name:\n  email : ___\n\t\tADDRESS:\nname: x\n e-mail:__ \n",
    b"1. your name: ____\n2) e-mail ....\n\n\n   address=20\nnot a name: here\n",
    b"name\n\nname\n \n name \nname:",
    b"\n" * 5 + b"Address: \t\n" * 7,
    b"xname: __\nyour  name: __\n 12. Email:  \n",
    b"",
]


def form_rule() -> RRule:
    p = perlre.compile_pattern(FORM, "im")
    rr = RRule("__F", "rawbody", p, multiple=True, source=(FORM, "im"))
    assert p._re2 is None               # counted with Python `re` ...
    assert rr.bol_loose() is not None   # ... at the line starts its loose form passes
    return rr


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
def test_count_line_starts_is_finditer(limit):
    rr = form_rule()
    py = re.compile(FORM.encode(), re.I | re.M)
    for text in FORM_TEXTS:
        for data in (text, text.replace(b"\n", b"\r\n"), text * 3):
            want = sum(1 for _ in py.finditer(data))
            if limit:
                want = min(want, limit)
            assert count_line_starts(rr.pattern._py, rr.bol_loose(), data, limit) == want
            assert count_matches(rr.pattern, data, limit) == want


@pytest.mark.parametrize(("pattern", "mods"), [
    ("(?>\\s{0,5})name:", "im"),          # not anchored at a line start
    ("\\A(?>\\s{0,5})name:", "i"),        # \\A: no other line start may match
    ("^(?>\\s{0,5})", "m"),                # may match empty
    ("^name:\\s*$", "im"),                 # RE2 counts it
])
def test_line_start_counting_only_where_it_holds(pattern, mods):
    p = perlre.compile_pattern(pattern, mods)
    rr = RRule("__X", "rawbody", p, multiple=True, source=(pattern, mods))
    assert rr.bol_loose() is None


@pytest.mark.parametrize(("pattern", "mods", "texts", "misses"), [
    ("(?:://|@)(?:\\w+\\.)*(\\w{7,}\\.)\\1", "i",
     [b"http://abcdefgh.ABCDEFGH.example/", b"x@www.longlabel.longlabel.com"],
     [b"http://abcdefgh.exam.com/", b"mailto:a@abcdefgh.ijk.com"]),
    ("(a|b)x\\1", "i", [b"AxA", b"zzbXbzz"], [b"axc", b"ab"]),
    ("(ab)(?i:\\1)", "", [b"abab", b"abAB"], [b"abxab", b"ABAB"]),
    ("(\\w+)\\s+\\1\\b", "", [b"the the end", b"x is is"], [b"one, two"]),
])
def test_loose_form_of_a_back_reference_is_the_group(pattern, mods, texts, misses):
    lo = perlre.re2_loose(pattern, mods)
    assert lo is not None
    flags = re.I if "i" in mods else 0
    exact = re.compile(pattern.encode(), flags)
    for t in texts:
        assert exact.search(t) is not None
        assert lo.contains(t)
    for t in misses:
        assert exact.search(t) is None
        assert not lo.contains(t)       # "any text" for \\1 would pass these


GATED = r"""
body  __G1   /^foo\s+bar(?!x)/m
body  __G2   /^baz\d+qux(?=\s)/m
body  __G3   /^(\w{3})-\1/m
meta  G      __G1 || __G2 || __G3
score G      0.1
score __G1   0.1
score __G2   0.1
score __G3   0.1
"""


def test_union_gate_changes_no_result(monkeypatch):
    from postier.content.spam import engine as E
    monkeypatch.setattr(E, "GATE_BIG", 0)
    rs = C.parse_text(GATED, "rules.cf")
    gated = SpamScanner(rules=rs, cache_dir=None)
    monkeypatch.setattr(E, "_line_gates", lambda rules, db, cache_dir=None: [])
    plain = SpamScanner(rules=C.parse_text(GATED, "rules.cf"), cache_dir=None)
    gates = gated.compiled.__dict__["_line_gates"]["body"]
    names = {gated.compiled.area_rules["body"][i].name for _rx, m in gates for i in m}
    assert names == {"__G1", "__G2", "__G3"}
    seen = set()
    for body in (b"nothing here\n", b"foo  bar\n", b"x\n\nbaz12qux yes\n", b"abc-abc\n\nfoo bar\n",
                 b"foo barx\n", b"xfoo bar\n", b"abc-abd\n\nbaz1qux\n"):
        msg = b"From: a@example.com\nSubject: s\n\n" + body
        got = {n for n in gated.run(msg).values if n.startswith("__G")}
        assert got == {n for n in plain.run(msg).values if n.startswith("__G")}
        seen |= got
    assert seen == {"__G1", "__G2", "__G3"}
