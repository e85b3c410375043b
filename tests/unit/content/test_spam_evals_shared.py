"""The eval rules' shared work (postier.content.spam.evals with
postier._native.spameval and its twin): the per-part MIME loops, the
address-list matcher, the per-part header summary and the groups of rules
run as one call give what the plain per-rule ways give."""

from __future__ import annotations

import random
import re

from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam.message import parse_content_type
from postier.content.spam.scanner import SpamScanner

_QP_CHAR = re.compile(rb"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])")
_QP_TRAIL = re.compile(rb"((?:=09|=20)+)\s*$")


def _qp_reference(lines: list[bytes], qp_count):
    kept = [x for x in lines if not x.startswith(b"SPAM: ")]
    for line in kept:
        qp = len(_QP_CHAR.findall(line))
        if qp:
            qp_count += qp
            m = _QP_TRAIL.search(line)
            if m:
                qp_count -= len(m.group(1)) / 3
    return (qp_count, len(kept), max(map(len, kept), default=0), sum(map(len, kept)))


def test_qp_lines_counts_like_the_per_line_loop(impl):
    mod = impl("spameval")
    rnd = random.Random(7)
    toks = [b"a", b" ", b"=20", b"=09", b"=3D", b"=41", b"=7F", b"=7E", b"=3d", b"\t", b"=", b"x=2",
            b"\r", b"=20 ", b"==20", b"=0", b"\n", b"\x0b", b"\xe9", b"SPAM: ", b"=2", b"=5A"]
    for _ in range(300):
        lines = [b"".join(rnd.choice(toks) for _ in range(rnd.randint(0, 12)))
                 for _ in range(rnd.randint(0, 8))]
        start = rnd.choice([0, 3, 2.5, 0.0])
        got = mod.qp_lines(lines, start)
        want = _qp_reference(lines, start)
        assert got == want and type(got[0]) is type(want[0]), (lines, start)
    assert mod.qp_lines([b"a=20=20  ", b"SPAM: =41"], 0) == (1.0 - 1.0 - 1.0 + 1.0, 1, 9, 9)
    assert mod.qp_lines([b"=41=42", b"plain"], 1) == (3, 2, 6, 11)
    assert mod.qp_lines([b"=41"], 2 ** 70) == (2 ** 70 + 1, 1, 3, 3)     # the twin's way


def test_text_part_stats_counts_like_the_regexes(impl):
    mod = impl("spameval")
    rnd = random.Random(8)
    toks = [b"a", b"&#x", b"&#x00E9;", b"&#x00e9;", b"&#x12AB;", b"&#x12AB", b";", b"\x00", b"\r",
            b"\x80", b"\xff", b" ", b"&", b"&#x&#x0041;", b"F", b"0"]
    for _ in range(300):
        lines = [b"".join(rnd.choice(toks) for _ in range(rnd.randint(0, 10)))
                 for _ in range(rnd.randint(0, 6))]
        want = (sum(map(len, lines)),
                sum(1 for x in lines if re.search(rb"[\x00\x0d\x80-\xff]", x)),
                sum(len(re.findall(rb"&#x[0-9A-F]{4};", x)) for x in lines))
        assert mod.text_part_stats(lines) == want, lines


def test_rcvd_times_are_parse_rfc822_date_of_rcvd_date(impl):
    mod = impl("spameval")
    lines = ["from a by b; Tue, 3 Nov 2020 10:00:00 +0000",
             "from a by b; 3 Nov 2020 10:00:00 GMT",               # another shape: the string back
             "no date here",
             "from a by b; Tue, 0 Nov 2020 10:00:00 +0000",        # day 0: None, left out
             "by c; Wed, 31 Feb 2021 23:59:59 -0130 (XYZ)"]
    times, slow = mod.rcvd_times(lines)
    assert slow and times[1] == " 3 Nov 2020 10:00:00 GMT" and len(times) == 3
    want = [E.parse_rfc822_date(d) for d in map(mod.rcvd_date, lines) if d is not None]
    assert E._rcvd_times(lines) == [t for t in want if t is not None]
    assert mod.rcvd_times(lines[:1]) == ([1604397600], False)


def _matcher_lists() -> list[dict]:
    out = []
    for entries in (["*@bank.example", "*@*.gov"],                       # a wildcard inside: regexes
                    ["*@bank.example", "**.co.uk", "exact@x.example", "*"],
                    ["*@a(b.example", "*\\x", "a\0b@c", "*@a_b.example"],
                    ["*@x?.example"],
                    []):
        d: dict = {}
        for a in entries:
            E._add_addr(d, a)
        out.append(d)
    return out


def test_address_matcher_is_in_list():
    addrs = ["u@bank.example", "u@bank.example\n", "u@bank.example\n\n", "u@sub.bank.example",
             "bank.example", "x@y.gov", "exact@x.example", "exact@x.example\n", "aexact@x.example",
             "u@a_b.example", "u@a(b.example", "q\\x", "q_x", "a_b@c", "a\0b@c", "", "u@xy.example",
             "\n", "u@x.co.uk", "u@bank.examplex"]
    hits = 0
    for lst in _matcher_lists():
        m = E._AddrMatcher(lst)
        for a in addrs:
            assert m.match(a) == E._in_list(lst, a), (list(lst), a)
            hits += m.match(a)
    assert hits > 10


def test_part_header_summary_is_mime_headers_work():
    cts = [None, b"text/plain", b"text/html; charset=ISO-8859-1", b"text/plain; charset=\"koi8-r\"",
           b"multipart/alternative; boundary=x", b"TEXT/PLAIN; charset=us-ascii", b"",
           b"application/octet-stream; name=a.exe", b"text/plain; charset=iso-2022-xx"]
    tes = [None, b"base64", b"Quoted-Printable", b"7bit", b"", b"base64\n"]
    cds = [None, b"attachment; filename=a", b"inline", b"ATTACHMENT"]
    for ct in cts:
        for te in tes:
            for cd in cds:
                h = {}
                for k, v in (("content-type", ct), ("content-transfer-encoding", te),
                             ("content-disposition", cd)):
                    if v is not None:
                        h[k] = [b"ignored", v]
                ctype, cte, cds_, charset, incs, html_cs = E._part_header(h)
                # the way _attachments worked it out per part
                want_ct = parse_content_type([v + b"\n" for v in h.get("content-type", [])])
                want_cte = ((te or b"") + (b"\n" if te is not None else b"")).decode().lower().rstrip("\n")
                want_cd = ((cd or b"") + (b"\n" if cd is not None else b"")).decode().lower().rstrip("\n")
                cs = want_ct[2].lower() if want_ct[2] else want_ct[2]
                st = dict.fromkeys(("mime_body_html_count", "mime_body_text_count",
                                    "mime_base64_count", "mime_qp_count"), 0)
                E._mime_header(None, st, want_ct[0], want_cte, want_cd, cs or "")
                assert (ctype, cte, cds_, charset) == (want_ct[0], want_cte, want_cd, cs)
                assert html_cs == st.pop("mime_html_charsets", None)
                assert set(incs) == {k for k, v in st.items() if v}


_RULES = """
header   SD1 eval:check_for_shifted_date('-6', '-3')
header   SD2 eval:check_for_shifted_date('-3', '-1')
header   SD3 eval:check_for_shifted_date('-1', '1')
header   SD4 eval:check_for_shifted_date('1', '3')
header   SD5 eval:check_for_shifted_date('3', 'undef')
header   SD6 eval:check_for_shifted_date('undef', '-6')
body     HR1 eval:html_range('max_shouting', '0', '1')
body     HR2 eval:html_range('max_shouting', '1', 'inf')
body     HT1 eval:html_test('font_face_bad')
body     HX1 eval:html_tag_exists('img')
body     HX2 eval:html_tag_exists('table')
body     HB1 eval:html_tag_balance('img', '> 0')
body     MM1 eval:check_for_mime('mime_body_html_count')
body     HI1 eval:html_image_only('0', '1000')
"""


def _messages() -> list[bytes]:
    out = []
    for date, hdr in (("Tue, 3 Nov 2020 14:00:00 +0000", "Tue, 3 Nov 2020 10:00:00 +0000"),
                      ("Tue, 3 Nov 2020 05:00:00 +0000", "Tue, 3 Nov 2020 10:00:00 +0000"),
                      ("Tue, 3 Nov 2020 10:10:00 +0000", "Tue, 3 Nov 2020 10:00:00 +0000"),
                      ("Tue, 3 Nov 2020 10:00:00 +0000", "Mon, 2 Nov 2020 10:00:00 +0000")):
        for body in (b"plain text\n",
                     b"<html><body><b>HELLO THERE</b><img src=x><table><tr><td>x</td></tr></table>"
                     b"</body></html>\n"):
            ctype = b"text/html" if body.startswith(b"<") else b"text/plain"
            out.append(b"Received: from a by b; " + date.encode() + b"\nDate: " + hdr.encode() +
                       b"\nSubject: s\nContent-Type: " + ctype + b"\n\n" + body)
    return out


def test_groups_hit_what_each_rule_alone_hits():
    sc = SpamScanner(rules=C.parse_text(_RULES, "r.cf"), cache_dir=None)
    cr = sc.compiled
    kinds = (C.HEAD_EVAL, C.BODY_EVAL)
    grouped = 0
    for msg in _messages():
        run = sc.run(msg)
        base = {k: v for k, v in run.values.items() if k not in {r.name for _k, r, _f in cr.evals}}
        for kind in kinds:
            todo = cr._evals_by_kind.get(kind, [])
            calls = E.bind_calls(todo)
            grouped += len(todo) - len(calls)
        # each rule on its own (bind), from the same start
        alone = dict(base)
        ctx = E.EvalContext(run)
        run.values = alone
        for kind in kinds:
            E._ev.run_calls([(r.name, r, *E.bind(fn, r)) for _k, r, fn in cr._evals_by_kind.get(kind, [])],
                            ctx, alone)
        together = dict(base)
        ctx = E.EvalContext(run)
        run.values = together
        for kind in kinds:
            E._ev.run_calls(E.bind_calls(cr._evals_by_kind.get(kind, [])), ctx, together)
        assert together == alone
    assert grouped == 8 * (5 + 6)        # 6 date rules in one call, 7 HTML rules in one
    hit = set()
    for msg in _messages():
        hit |= set(sc.run(msg).values)
    assert {"SD1", "SD3", "SD5", "SD6", "HX1", "HX2", "HB1", "MM1", "HI1"} <= hit


def test_bound_illegal_chars_is_the_plain_eval():
    sc = SpamScanner(rules=C.parse_text("header __X eval:check_illegal_chars('Subject', '0', '1')\n",
                                        "r.cf"), cache_dir=None)
    args = [("Subject", "0.00", "2"), ("From", "0.20", "2"), ("ALL", "0.010", "2"),
            ("Subject:raw", "0", "1"), ("X-Missing", "0", "0"), ("From", "0", "0")]
    subjects = [b"plain", b"caf\xe9 \xa2", b"\xa2\xa3 x", b"\xc3\xa9t\xc3\xa9", b" ", b"\x01\x02ab",
                b"\x80\x81\x82\x83", b"=?utf-8?q?x?="]
    hits = 0
    for subj in subjects:
        for frm in (b"a@b.example", b"\xff\xfe@x", b""):
            msg = b"From: " + frm + b"\nSubject: " + subj + b"\nX-Empty: \n\nbody\n"
            run = sc.run(msg)
            for a in args:
                ctx = E.EvalContext(run)
                want = E.check_illegal_chars(ctx, None, *a)
                assert E._b_illegal_chars(*a)(E.EvalContext(run), None) == want, (msg, a)
                hits += want
    assert hits > 5


def test_in_list_cache_does_not_keep_every_list():
    # one compiled alternation per list, keyed by identity; a reloaded rule
    # set brings new lists, so the cache is emptied at _ANY_CACHE_MAX
    # entries instead of holding every list it ever saw
    E._ANY_CACHE.clear()
    for i in range(3 * E._ANY_CACHE_MAX):
        lst: dict = {}
        E._add_addr(lst, f"*@d{i}.example")
        E._add_addr(lst, "exact@x.example")
        assert E._in_list(lst, f"u@d{i}.example") and not E._in_list(lst, "u@other.example")
        assert len(E._ANY_CACHE) <= E._ANY_CACHE_MAX
    assert E._ANY_CACHE
