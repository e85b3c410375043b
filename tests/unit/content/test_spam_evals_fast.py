"""The eval rules' fast paths give what their plain forms give: rules with
their arguments bound once (evals.bind) against the plain call, and the
helpers that replace per-line or per-entry loops against the loops."""

from __future__ import annotations

import base64
import random
import re

import pytest

from postier.content.spam import bre
from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam.scanner import SpamScanner

RULES = r"""
header   SHIFT_1   eval:check_for_shifted_date('-6', '-3')
header   SHIFT_2   eval:check_for_shifted_date('-3', '0')
header   SHIFT_3   eval:check_for_shifted_date('0', '3')
header   SHIFT_4   eval:check_for_shifted_date('3', 'undef')
header   SHIFT_5   eval:check_for_shifted_date('undef', '-6')
body     HR_1      eval:html_range('max_shouting', '0', '3')
body     HR_2      eval:html_range('max_shouting', '1')
body     HR_3      eval:html_range('image_area', '100', 'inf')
body     HIO_1     eval:html_image_only('0', '400')
body     HIR_1     eval:html_image_ratio('0.000', '0.5')
body     HTB_1     eval:html_tag_balance('b', '== 0')
body     HTB_2     eval:html_tag_balance('b', '!= 0')
body     HTB_BAD   eval:html_tag_balance('b;', '!= 0')
body     HE_1      eval:html_eval('title_index', '> 0')
body     HE_BAD    eval:html_eval('title_index', 'x')
body     IMG_1     eval:image_count('all', '1', '1')
body     IMG_2     eval:image_count('gif', '1')
body     IMG_NONE  eval:image_count('png')
body     PIX_1     eval:pixel_coverage('all', '1', '100000')
body     PIX_NONE  eval:pixel_coverage()
body     BLEN_1    eval:check_body_length('500')
body     MIME_1    eval:check_for_mime('mime_base64_count')
body     MIME_2    eval:check_for_mime('mime_body_html_count')
body     TAG_1     eval:html_tag_exists('img')
body     TEST_1    eval:html_test('title')
body     CAPS_1    eval:check_for_uppercase('25', '50')
body     CAPS_2    eval:check_for_uppercase('50', '100')
body     TVD_1     eval:tvd_vertical_words('10', '100')
body     MAD_1     eval:multipart_alternative_difference('0', '100')
header   ILL_1     eval:check_illegal_chars('Subject', '0.01', '1')
header   HOT_1     eval:check_for_no_hotmail_received_headers()
"""
for _n in re.findall(r"^\w+\s+(\w+)", RULES, re.M):
    RULES += f"score {_n} 1\n"

GIF = base64.b64encode(b"GIF89a\x10\x00\x08\x00" + b"\x00" * 30).decode()

PLAIN = b"""Received: from mx.example.net (mx.example.net [192.0.2.7]) by mail.example.org with ESMTP id 1A2B3C; Mon, 01 Jan 2024 03:00:00 +0000
Received: from [10.0.0.1] (helo=pc) by mx.example.net with smtp; Mon, 1 Jan 2024 01:59:58 -0100 (XYZ)
From: someone@hotmail.com
To: alice@example.org
Subject: THIS IS ALL CAPS \xe9\xe9 news
Date: Mon, 01 Jan 2024 09:00:00 +0000
Message-ID: <1@example.com>

SOME SHOUTING TEXT HERE AND MORE OF IT, MANY LINES OF TEXT FOLLOW BELOW IN CAPITALS.
AND ANOTHER LINE OF SHOUTING TEXT, THE CAPITALS OUTNUMBER THE SMALL LETTERS HERE.
a    b    c    d    e    f    g
""" + b"Plain words in lower case to balance the capitals out a little more.\n" * 4

HTML = f"""Received: from mx.example.net (mx.example.net [192.0.2.7]) by mail.example.org with ESMTP id 1A2B3C; Mon, 1 Jan 2024 00:00:00 +0000
From: someone@example.com
To: alice@example.org
Subject: html
Date: Sun, 31 Dec 2023 20:00:00 -0500
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: multipart/alternative; boundary="A"

--A
Content-Type: text/plain

hello world plain part
--A
Content-Type: text/html

<html><head><title>t</title></head><body><b>HELLO</b> <b>world <img src="cid:x" width=20 height=20>
<p>OTHER html words</p></body></html>
--A--
--B
Content-Type: image/gif; name="x.gif"
Content-Transfer-Encoding: base64

{GIF}
--B--
""".encode()

BROKEN = b"Subject: \x00\xff\xfe bad\nDate: 99 Foo 20201 99:99 +0000\nReceived: garbage\n\n\x00" + b"\xff" * 50


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _plain(ctx, r):
    try:
        return E.FUNCTIONS[r.function](ctx, r, *r.args)
    except Exception:  # noqa: BLE001 - a failing eval is "no hit"
        return 0


@pytest.mark.parametrize("msg", [PLAIN, HTML, BROKEN], ids=["plain", "html", "broken"])
def test_bound_rules_give_the_plain_calls_results(sc, msg):
    run = sc.run(msg)
    rules = [r for _k, r, _f in sc.compiled.evals]
    assert len(rules) == len(re.findall(r"^\w+\s+\w+\s+eval:", RULES, re.M))
    bound = 0
    for r in rules:
        fn, args = E.bind(E.FUNCTIONS[r.function], r)
        bound += fn is not E.FUNCTIONS[r.function]
        ctx = E.EvalContext(run)
        try:
            got = fn(ctx, r, *args)
        except Exception:  # noqa: BLE001
            got = 0
        assert got == _plain(E.EvalContext(run), r), r.name
        # the engine's value is the plain result's
        assert (r.name in run.values) == bool(_plain(E.EvalContext(run), r)), r.name
    assert bound >= 20


def test_the_rules_hit_somewhere(sc):
    hit = set()
    for msg in (PLAIN, HTML, BROKEN):
        hit |= set(sc.run(msg).values)
    # the messages exercise both outcomes of most rules
    assert {"SHIFT_3", "SHIFT_4", "HR_3", "HIO_1", "HTB_2", "IMG_1", "IMG_2", "PIX_1", "MIME_1",
            "MIME_2", "TAG_1", "TEST_1", "CAPS_1", "TVD_1", "MAD_1", "ILL_1", "BLEN_1", "HOT_1"} <= hit
    assert not {"HTB_BAD", "HE_BAD", "IMG_NONE", "PIX_NONE"} & hit


def test_word_tokens_are_perl_split_and_grep():
    rnd = random.Random(3)
    alphabet = [" ", "\t", "\n", "a", "Z", "9", "_", "=", "-", "\xa0", "\xe9", "\u2003", ".", "\x85"]
    for _ in range(3000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(30)))
        assert E._MA_WORDS_A.findall(s) == [w for w in bre.split(r"\s+", s) if bre.search(r"\w", w)]
        assert E._MA_WORDS_U.findall(s) == [w for w in re.split(r"\s+", s) if re.search(r"\w", w)]


class _Hv:
    def __init__(self, v: bytes):
        self.v = v

    def get_str(self, req: str) -> bytes:
        return self.v


class _Ctx:
    def __init__(self, v: bytes):
        self.hv = _Hv(v)
        self.cache: dict = {}


def test_received_on_one_line_is_the_whitespace_runs_made_one_space():
    rnd = random.Random(5)
    alphabet = [b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x85", b"\xa0", b"a", b"b"]
    for _ in range(3000):
        v = b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(12)))
        assert E._rcvd_oneline(_Ctx(v)) == bre.sub(r"\s+", " ", v.decode("latin-1"))


def test_address_list_alternation_is_any_of_its_patterns():
    lst: dict = {}
    for a in ("*@example.com", "joe@*.example.org", "a?c@x.net", "exact@y.org", "we(ird@z.org"):
        E._add_addr(lst, a)
    for addr in ("x@example.com", "JOE@mail.example.org", "abc@x.net", "ac@x.net", "exact@y.org",
                 "exact@y.org.evil", "we_ird@z.org", "nobody@else.org", "x@example.com\n"):
        assert E._in_list(lst, addr) == any(rx.search(addr.lower()) for rx in lst.values()) \
            or addr.lower() in lst, addr
    assert not E._in_list({}, "x@example.com")


class _HtmlCtx:
    def __init__(self, html: list[dict]):
        self.html = html

    def html_all(self) -> list[dict]:
        return self.html


def test_html_text_match_skips_text_too_short_for_a_counted_dot_run():
    """html_text_match does not search text shorter than the N of a '.{N}'
    pattern: the answers stay the engine's (bytes counted, \\n not matched
    by '.', characters beyond Latin-1 as UTF-8)."""
    rnd = random.Random(9)
    pieces = ["a", "\xe9", "\u20ac", "\n", " ", "x" * 30]
    texts = ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(12))) for _ in range(400)]
    texts += ["y" * 119, "y" * 120, "\u20ac" * 40, "\u20ac" * 39 + "ab", "z" * 60 + "\n" + "z" * 60]
    for regexp in (".{120}", ".{5,}", ".{3,9}", "x.{2}", "<img>"):
        rec = E._compile_plain(regexp)
        for t in texts:
            want = 1 if rec.search(E._text_bytes(t)) else 0
            assert E.html_text_match(_HtmlCtx([{"title": [t]}]), None, "title", regexp) == want, \
                (regexp, t)
    assert E._min_len(".{120}") == 120 and E._min_len(".{5,}") == 5 and E._min_len("x.{2}") == 0
    assert E.html_text_match(_HtmlCtx([{"title": ["short"]}, {"title": ["q" * 130]}]), None,
                             "title", ".{120}") == 1


def test_part_header_answers_as_parsing_the_value_with_its_newline():
    """evals._part_header looks a non-empty Content-Type up without
    get_header's trailing \\n (the message parser's memo) and remembers its
    answer by (type, charset, encoding, disposition): the answers of
    parse_content_type on the value with the \\n and _mime_header."""
    from postier.content.spam.message import _parse_content_type

    def ref(h: dict) -> tuple:
        ct, te, cd = (h.get(k) for k in ("content-type", "content-transfer-encoding",
                                          "content-disposition"))
        ctype, _b, charset, _n, _m = _parse_content_type([ct[-1] + b"\n"] if ct else [])
        cte = te[-1].decode("latin-1").lower().rstrip("\n") if te else ""
        cds = cd[-1].decode("latin-1").lower().rstrip("\n") if cd else ""
        charset = charset.lower() if charset else charset
        st = dict.fromkeys(("mime_body_html_count", "mime_body_text_count", "mime_base64_count",
                            "mime_qp_count"), 0)
        E._mime_header(None, st, ctype, cte, cds, charset or "")
        html_cs = st.pop("mime_html_charsets", None)
        return (ctype, cte, cds, charset, tuple(k for k, v in st.items() if v), html_cs)

    rnd = random.Random(21)
    pieces = [b"text/plain", b"TEXT/html", b"multipart/alternative", b"image/gif", b";", b" ",
              b"charset=", b"\"", b"'", b"utf-8", b"ISO-8859-1", b"koi8-r", b"boundary=", b"b1",
              b"name=x", b"\n", b"\r", b"\xe9", b""]
    cts = [b"", b"\n", b"text/plain; charset=\"us-ascii", b"multipart/mixed; boundary=\"q",
           b"text/plain; charset=", b"  ", b"text"]
    cts += [b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 7))) for _ in range(1500)]
    for i, ct in enumerate(cts):
        h: dict = {}
        if i % 7:
            h["content-type"] = [b"text/plain", ct] if i % 5 == 0 else [ct]
        if i % 3 == 0:
            h["content-transfer-encoding"] = [rnd.choice([b"base64", b"Quoted-Printable", b"7bit", b""])]
        if i % 4 == 0:
            h["content-disposition"] = [rnd.choice([b"attachment; filename=a", b"inline", b""])]
        assert E._part_header(h) == ref(h), h
        assert E._part_header(dict(h)) == ref(h), h        # remembered


def test_outlook_received_search_from_the_last_line_finds_the_first_match():
    # (check_outlook_message_id's search of _OUTLOOK_RCVD from the newline
    # before the last line)
    rnd = random.Random(8)
    pieces = ["\n", " ", "\t", "\r", "\0", "\xe9", "x", "1", "12", " Jan ", "2024", " 01:02:03",
              ":", " +0000", "(a b)", " 5 Feb 2023 10:11:12 GMT", "\n 3 Mar 2003 01:01:01 -0100",
              "from a by b; Mon, 1 Jan 2024 01:59:58 -0100 (XYZ)", "x" * 300]
    cases = ["", "\n", "\n\n", " 1 Jan 2000 1:2:3 x", " 1 Jan 2000 1:2:3 x\n",
             " 1 Jan 2000 1:2:3 x\n\n", "\n 1 Jan 2000 1:2:3 x", "a\n 1 Jan 2000 1:2:3 x\nb"]
    cases += ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 12))) for _ in range(4000)]
    hits = 0
    for rc in cases:
        m1 = E._OUTLOOK_RCVD(rc)
        m2 = E._outlook_rcvd(rc)
        assert (m1 and m1.group(1)) == (m2 and m2.group(1)), repr(rc)
        hits += m1 is not None
    assert hits > 500


def test_shifted_group_hits_each_rule_whose_bounds_hold_the_difference():
    # (the group's intervals against each rule's own test, at and around
    # every bound, with open, equal, inverted, overlapping and infinite bounds)
    import types
    rnd = random.Random(4)
    pool = [None, None, -21600.0, -10800.0, 0.0, 3600.0, 10800.0, 10800.0, float("inf"),
            -float("inf"), 86400.0, 0.5]
    for _ in range(400):
        members = [(f"R{k}", rnd.choice(pool), rnd.choice(pool)) for k in range(rnd.randrange(1, 9))]
        g = E._shifted_group(members)
        ds = {0, 1, -1, 10 ** 9, -10 ** 9}
        for _n, lo, hi in members:
            for x in (lo, hi):
                if x is not None and abs(x) != float("inf"):
                    ds |= {int(x) - 1, int(x), int(x) + 1}
        for d in ds:
            values = {"R0": 5} if d == 1 else {}
            ctx = types.SimpleNamespace(cache={"date_diff": d}, run=types.SimpleNamespace(values=values))
            want = dict(values)
            for name, lo, hi in members:
                if (lo is None or d >= lo) and (hi is None or d < hi) and name not in want:
                    want[name] = 1
            assert g(ctx, None) == 0
            assert list(values.items()) == list(want.items()), (members, d)


def test_mailto_pretest_letters_are_all_that_match_m_in_any_case():
    # (spameval.uri_hosts, check_uri_host_listed's hosts, tries _MAILTO_I
    # only on URIs starting with "m" or "M": every character that re.I lets
    # match "m" must be one of those)
    import sys

    from postier._pure import spameval as P
    m = re.compile("m", re.I).match
    assert {chr(c) for c in range(sys.maxunicode + 1) if m(chr(c))} == {"m", "M"}
    for uri in ("mailto:a@b", "MAILTO:a@b", "MaIlTo:x", "http://m", "", "m", "mailto"):
        assert bool(uri[:1] in ("m", "M") and P._MAILTO_I(uri)) == bool(P._MAILTO_I(uri))


def test_num_is_perls_number_of_a_string_and_a_number_itself():
    for _ in range(2):          # (the second time from _NUMS)
        for v, want in (("3", 3.0), (" -2.5e1x", -25.0), ("x", 0.0), ("", 0.0), (None, 0.0),
                        (".5", 0.5), ("undef", 0.0), ("\t+7.", 7.0)):
            got = E._num(v)
            assert got == want and type(got) is float, v
    for v in (0, 3, -1, 2.5, True, False, float("inf")):
        assert E._num(v) is v


def test_ipv4_matches_start_with_an_ascii_digit():
    # (helo_ip_mismatch tries IS_IPV4 only on HELO names starting with one)
    rnd = random.Random(3)
    octets = ["1", "25", "255", "256", "0", "10", "7", "\u0661", "\xb2", ""]
    junk = ["", "", "", "\n", " ", "a", "\u0661", "\xb2", "[", "-", "."]
    hits = 0
    for _ in range(20000):
        s = rnd.choice(junk) + ".".join(rnd.choice(octets) for _ in range(rnd.choice((1, 3, 4, 4, 4, 5)))) + \
            rnd.choice(junk)
        if E.IS_IPV4.match(s):
            hits += 1
            assert s[:1] in E._DIGIT, repr(s)
    assert hits > 100
    assert E.IS_IPV4.match("1.2.3.4\n") and not E.IS_IPV4.match(" 1.2.3.4")
