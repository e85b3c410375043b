"""The spam engine's fast paths give the answers of the slow ones they replace.

postier._native.spameng and its pure twin (both, through the `impl`
fixture): Hyperscan match handlers, literal counting of `tflags multiple`
rules against RE2's finditer, capped finditer counts, first matching line,
literal_set's parser; the message-independent back-reference regexes of
two evals against the per-message regexes they replace; multipart
boundary lines without per-message regexes; HeaderView's plain-name path;
a rule set scanned with the fast paths on bad input (NUL bytes, huge
lines, non-UTF-8); header_values and HeaderView.values against value();
the one-pass ALL header list against the ordered walk; CompiledRules
built ahead (prepare) against a lazy one; the libpcre2-only template
regexes against compile_pattern's.
"""

from __future__ import annotations

import base64
import binascii
import random
import re

import hyperscan as hs
import pytest
import re2

from postier.content.spam import conf as C
from postier.content.spam import evals as EV
from postier.content.spam.scanner import SpamScanner


def test_match_handlers_collect_ids_and_stop(impl):
    eng = impl("spameng")
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=[b"ab", b"cd"], ids=[3, 7], elements=2, flags=[0, 0])
    hits: set[int] = set()
    db.scan(b"xxabyycdab", match_event_handler=eng.on_match, context=hits)
    assert hits == {3, 7}
    first: set[int] = set()
    with pytest.raises(hs.ScanTerminated):
        db.scan(b"xxabyycd", match_event_handler=eng.on_first_match, context=first)
    assert first == {3}
    none: set[int] = set()
    db.scan(b"\x00\xff" * 100, match_event_handler=eng.on_match, context=none)
    assert none == set()


E_LIKE = (rb"(?:(?:e|\xc3[\xa8-\xab]|\xc4[\x93\x95\x97\x99\x9b]|\xc8[\x80\x85\x87]|\xcf\xb5|"
          rb"\xd0\xb5|\xd1[\x90\x91\x94\xb3]|\xd2[\xbc-\xbf]|\xd3[\x07\xa9\xab]))")


def test_literal_set_accepts_literal_alternations_only(impl):
    ls = impl("spameng").literal_set
    assert ls(rb"e") == (b"e",)
    assert ls("e") == (b"e",)
    got = ls(E_LIKE)
    assert got is not None and len(got) == 26 and b"\xc3\xa9" in got and b"e" in got
    assert ls(rb"ab\x2dc|[xy]z") == (b"ab-c", b"xz", b"yz")
    assert ls(rb"aa") == (b"aa",)               # overlapping itself: counted like a regex
    assert ls(rb"\\|\.") == (b".", b"\\")
    for bad in (rb"a+", rb"a*", rb"a?", rb"a{2}", rb".", rb"^a", rb"a$", rb"\bfoo", rb"\d",
                rb"[^a]", rb"(?i)a", rb"(a)", rb"a|ab", rb"ab|ba", rb"ab|bc", rb"\x00",
                rb"a\x00b", rb"", rb"a|", rb"(?:a", rb"a)", rb"[a", rb"\x4", b"\\", rb"[z-a]",
                rb"[a-\x{100}]", rb"(?:[\x00-\xff]){3}"):
        assert ls(bad) is None, bad
    assert ls(rb"[\x00-\xff][\x00-\xff]") is None      # too many literals (and a NUL)
    assert ls(b"x" * 100000) == (b"x" * 100000,)       # one huge literal


def _random_buf(rng: random.Random, n: int) -> bytes:
    alphabet = b"eE \n\x00\xc3\xa9\xa8\xd3\x07\xd2\xbfabc"
    return bytes(rng.choice(alphabet) for _ in range(n))


def test_count_literals_equals_re2_finditer(impl):
    eng = impl("spameng")
    rng = random.Random(7)
    for pat in (rb"e", E_LIKE, rb"ab|c", rb"\xc3\xa9", rb"aa|b", rb"eee"):
        lits = eng.literal_set(pat)
        assert lits is not None
        rx = re2.compile(pat)
        for n in (0, 1, 5, 50, 2000):
            buf = _random_buf(rng, n)
            want = sum(1 for _ in rx.finditer(buf))
            assert eng.count_literals(buf, lits, 0) == want
            counter = eng.LiteralCounter(lits)
            assert counter.count(buf) == want
            for limit in (1, 3, 230):
                assert counter.count(buf, limit) == min(want, limit)
            for limit in (1, 3, 230):
                assert eng.count_literals(buf, lits, limit) == min(want, limit)
                assert eng.count_iter(rx, buf, limit) == min(want, limit)
            assert eng.count_iter(rx, buf, 0) == want


def test_count_on_huge_and_non_utf8_input(impl):
    eng = impl("spameng")
    big = b"\xff\xfee\x00" * 250000 + b"e" * 10
    lits = eng.literal_set(rb"e")
    assert eng.count_literals(big, lits, 0) == 250010
    assert eng.count_literals(big, lits, 320) == 320
    assert eng.LiteralCounter(lits).count(big, 0) == 250010
    assert eng.LiteralCounter((b"\xfe",)).count(big, 0) == 250000
    assert eng.LiteralCounter((b"aa",)).count(b"aaaaa", 0) == 2     # non-overlapping, like a regex
    assert eng.LiteralCounter((b"ab", b"c")).count(b"abcab", 2) == 2
    with pytest.raises(ValueError):
        eng.LiteralCounter((b"a", b""))
    assert eng.count_iter(re2.compile(rb"\xfe"), big, 0) == 250000
    assert eng.count_iter(re.compile(rb"e\x00"), big, 5) == 5


def test_first_hit(impl):
    eng = impl("spameng")
    lines = [b"abc", b"\x00x", b"\xff" * 100000, b"needle\n", b"needle"]
    assert eng.first_hit(lambda s: b"needle" in s, lines) == 3
    assert eng.first_hit(lambda s: s.startswith(b"\x00"), lines) == 1
    assert eng.first_hit(lambda s: False, lines) == -1
    assert eng.first_hit(lambda s: True, []) == -1


def _old_to_in_subject(full_to: str, subject: str, test: str) -> int:
    if test == "address":
        return 1 if re.search(r"\b" + re.escape(full_to) + r"\b", subject, re.I | re.A) else 0
    to = re.sub(r"@.*", "", full_to, flags=re.S)
    t = re.escape(to)
    pat = (r"^(?:(?:re|fw):\s*(?:\w+\s+)?" + t + r"$|(?-i:" + t + r")\s*[,:;!?-](?:$|\s)|"
           + t + r"$|,\s*" + t + r"[,:;!?-]$)")
    return 1 if re.search(pat, subject, re.I | re.A) else 0


def _new_to_in_subject(full_to: str, subject: str, test: str) -> int:
    if test == "address":
        return 1 if EV._TO_ADDRESS.search(full_to + "\0" + subject) else 0
    to = re.sub(r"@.*", "", full_to, flags=re.S)
    return 1 if EV._TO_USER.search(to + "\0" + subject) else 0


def test_back_reference_regexes_match_the_per_message_ones():
    rng = random.Random(11)
    users = ["bob", "Bob", "BOB", "j.doe", "a+b", "", "x", "é", "\xc9", "ren\xe9", "o'neil"]
    doms = ["example.com", "Example.COM", "ex-ample.net", "x"]
    subjects = ["bob", "Re: bob", "re: Bob", "FW: hello bob", "bob, hi", "bob: hi", "hi, bob!",
                "hello, bob", "Hi bob@example.com there", "xbob@example.com", "BOB@EXAMPLE.COM",
                "bob\n", "Re:  big bob\n", "é", "RE: \xc9", "\xe9", "ren\xc9", "", "bob -",
                "hi, BOB;", "o'neil", "Bob? yes"]
    for _ in range(3000):
        user = rng.choice(users)
        full_to = user + "@" + rng.choice(doms) if rng.random() < 0.9 else user
        subject = rng.choice(subjects)
        if rng.random() < 0.3:
            subject = rng.choice(["", "x ", "Re: "]) + subject + rng.choice(["", " ", "\n", "!"])
        for test in ("address", "user"):
            if test == "address" and full_to == "":
                continue
            assert _new_to_in_subject(full_to, subject, test) == \
                _old_to_in_subject(full_to, subject, test), (full_to, subject, test)
    froms = ["example.com.bob@x", "EXAMPLE.com-BOB@x", "xexample.com.bob@x", "example.com\nbob@x",
             "a example.com.bob@", "example.comXbob", "<example.com.Bob@spam>", "ex-ample.net.j.doe@q"]
    for _ in range(2000):
        user = rng.choice(["bob", "Bob", "j.doe", "a+b"])
        dom = rng.choice(doms)
        frm = rng.choice(froms)
        old = bool(re.search(r"\b" + re.escape(dom) + "." + re.escape(user) + "@", frm, re.I | re.A))
        new = bool(EV._RATWARE.search(dom + "\0" + user + "\0" + frm))
        assert new == old, (dom, user, frm)


RULES = r"""
body   __LOWER_E        /e/
tflags __LOWER_E        multiple maxhits=230
body   __E_LIKE         /(?:e|\xc3[\xa8\xa9\xaa\xab]|\xd3[\x07\xa9\xab])/
tflags __E_LIKE         multiple maxhits=320
body   B_WORD           /\bneedle\b/
rawbody R_LINES         /^line\d/m
tflags R_LINES          multiple maxhits=7
header H_TO             To =~ /bob/i
header H_MISSING        X-Nope =~ /^$/
meta   MIXED            __E_LIKE > __LOWER_E
score  B_WORD 1
score  R_LINES 0.5
score  H_TO 0.1
score  H_MISSING 0.2
score  MIXED 2
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _msg(body: bytes, extra: bytes = b"") -> bytes:
    return (b"From: a@example.com\nTo: Bob <bob@example.net>\nSubject: test\n" + extra +
            b"Content-Type: text/plain; charset=iso-8859-1\n\n" + body)


def _expected(run, pattern: bytes, limit: int) -> int:
    n = sum(len(re.findall(pattern, line)) for line in run.body())
    return min(n, limit)


def test_multiple_counts_through_the_literal_path(sc):
    r = sc.compiled.run(_msg(b"eee \xc3\xa9\xc3\xa9 needle\n" + b"line1\nline2\n" * 5))
    assert r.values["__LOWER_E"] == _expected(r, rb"e", 230) > 10
    assert r.values["__E_LIKE"] == _expected(r, rb"e|\xc3[\xa8-\xab]|\xd3[\x07\xa9\xab]", 320) > 10
    assert r.values["R_LINES"] == 7             # capped by maxhits
    assert "B_WORD" in r.values and "H_TO" in r.values and "H_MISSING" in r.values
    assert [n for n, _ in r.hits].count("R_LINES") == 7
    many = sc.compiled.run(_msg(b"e" * 1000 + b"\n"))
    assert many.values["__LOWER_E"] == 230
    assert many.values["__E_LIKE"] == 320
    assert "MIXED" in many.values


def test_bad_input_scans(sc):
    nul = sc.compiled.run(_msg(b"ee\x00ee needle\x00\n\x00line1\n"))
    assert nul.values["__LOWER_E"] >= 4 and "B_WORD" in nul.values
    huge = sc.compiled.run(_msg(b"needle e " + b"x" * 3_000_000 + b"\n"))
    assert "B_WORD" in huge.values and huge.values["__LOWER_E"] >= 1
    raw = sc.compiled.run(_msg(b"\xff\xfe\xfd needle \xe9\x80\n", b"X-Bin: \xff\x00\xfe\n"))
    assert "B_WORD" in raw.values
    assert sc.compiled.run(b"").score >= 0
    assert sc.compiled.run(b"\x00" * 1000).score >= 0


def test_multipart_boundaries_without_regexes(sc):
    m = (b"From: a@example.com\nTo: x@example.org\nSubject: s\nMIME-Version: 1.0\n"
         b"Content-Type: multipart/mixed; boundary=\"b.+(1)\"\n\npreamble\n"
         b"--b.+(1)  \nContent-Type: text/plain\n\nfirst needle part\n"
         b"--b.+(1)x\nnot a boundary line\n"
         b"--b.+(1)\t\nContent-Type: text/plain\n\nsecond part eee\n"
         b"--b.+(1)--  \nepilogue\n")
    from postier.content.spam.message import Message
    msg = Message(m)
    texts = [p.decode() for p in msg.find_parts(None, False) if p.type == "text/plain"]
    assert len(texts) == 2
    assert b"first needle part" in texts[0] and b"not a boundary line" in texts[0]
    assert b"second part eee" in texts[1] and b"epilogue" not in texts[1]


def test_header_view_plain_names_match_the_general_path(sc):
    r = sc.compiled.run(_msg(b"body\n", b"X-A: one\nX-A: two\nx-b: =?utf-8?q?caf=C3=A9?=\n"))
    hv = r.hv
    for name in ("X-A", "x-a", "X-B", "To", "Subject", "X-Nope", "X-Spam-Relays-Untrusted",
                 "From"):
        hv.made_lists.pop(name, None)
        fast = hv.get(name)
        assert fast == [x for x in hv._get(name) if x is not None], name
    assert hv.get("X-A") == [b"one\n", b"two\n"]
    assert hv.get("X-Nope") == []


def _old_base64_slow(s: bytes) -> bytes:
    """The bit-by-bit decoder base64_decode's fallback replaced."""
    from postier.content.spam.message import _B64_VALUE
    s = bytes(c for c in s if c in _B64_VALUE)
    s = re.sub(rb"=+$", b"", s)
    if len(s) % 4 == 1:
        s = s[:-1]
    out = bytearray()
    for pos in range(0, len(s), 84):
        chunk = s[pos:pos + 84]
        nbytes = len(chunk) * 3 // 4
        acc = bits = 0
        buf = bytearray()
        for c in chunk:
            acc = (acc << 6) | _B64_VALUE[c]
            bits += 6
            if bits >= 8:
                bits -= 8
                buf.append((acc >> bits) & 0xFF)
        out += buf[:nbytes]
    return bytes(out)


def _old_base64(s: bytes) -> bytes:
    s = re.sub(rb"\s+", b"", s)
    if len(s) % 4 == 0 and re.fullmatch(rb"[A-Za-z0-9+/=]{2,}={0,2}", s):
        s = re.sub(rb"(=+)(?!=*$)", lambda m: b"A" * len(m.group(1)), s)
        try:
            return base64.b64decode(s)
        except (binascii.Error, ValueError):
            pass
    return _old_base64_slow(s)


def test_base64_decode_matches_the_regex_and_bitwise_decoder():
    from postier.content.spam.message import base64_decode
    rng = random.Random(5)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!*\x00\xff-_. \n\t\r\x0b\x0c"
    cases = [b"", b"=", b"a", b"ab", b"abc", b"ab=c", b"QUJD*", b"QUJDRA", b"====", b"\xff\x00" * 9,
             b"QU\x0bJD", b"QUJD\x0c\n", b"QUJ=", b"Q===", b"QUJDRA==\r\n", b"=QUJ"]
    for _ in range(800):
        cases.append(bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))))
    for _ in range(200):      # mostly valid base64 with line breaks
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        enc = base64.encodebytes(raw)
        assert base64_decode(enc) == raw
        cases.append(enc[:rng.randrange(0, len(enc) + 1)])
    for c in cases:
        assert base64_decode(c) == _old_base64(c), c


def test_envelope_from_received_order_check_matches_the_regex():
    """HeaderView._envelope_from_inner's "a NAME line after the first
    Received line" against the /^Received:.*?^NAME:/msi it replaced."""
    from postier.content.spam import headers as H
    rng = random.Random(3)
    lines = [b"Received: from x\n", b"received: by y\n", b"Return-Path: <a@b>\n", b"return-path: <c>\n",
             b" Return-Path: folded\n", b"X-Envelope-From: z\n", b"Subject: Received: Return-Path:\n",
             b"envelope-sender: q\n", b"X: \xff\x00\n", b"\n"]
    for _ in range(3000):
        allh = b"".join(rng.choice(lines) for _ in range(rng.randrange(0, 8)))
        for name in ("X-Envelope-From", "Envelope-Sender", "Return-Path"):
            old = bool(re.search(rb"^Received:.*?^" + name.encode() + rb":", allh, re.M | re.S | re.I))
            first = H._RECEIVED_LINE.search(allh)
            new = first is not None and bool(
                re.compile(rb"^" + name.encode() + rb":", re.M | re.I).search(allh, first.end()))
            assert new == old, (allh, name)



# ---------------------------------------------------------------- built ahead, header values

HEADER_RULES = r"""
util_rb_tld           org net com
header H_PLAIN        X-A =~ /two/
header H_ADDR         From:addr =~ /\@example\.com$/
header H_ALL          ALL =~ /^X-B: caf/mi
header H_UNSET_EMPTY  X-Gone =~ /^$/
header H_UNSET_NEG    X-Gone !~ /x/
header H_UNSET_VAL    X-Gone =~ /^dflt$/ [if-unset: dflt]
header H_RELAYS       X-Spam-Relays-Untrusted =~ /^$/
header H_EXISTS       exists:X-A
header H_EXISTS_NOT   exists:X-Gone
uri    U_TMPL         /^https?:\/\/.{3,40}\?to=%{TO_ADDR}/i
header __TO_CAP       To =~ /<(?<TO_ADDR>[^>]+)>/
score  H_PLAIN 1
score  H_ADDR 1
score  H_ALL 1
score  H_UNSET_EMPTY 1
score  H_UNSET_NEG 1
score  H_UNSET_VAL 1
score  H_RELAYS 1
score  H_EXISTS 1
score  H_EXISTS_NOT 1
score  U_TMPL 1
score  __TO_CAP 0.01
"""

HEADER_MSG = (b"From: Ann <a@example.com>\nTo: Bob <bob@example.net>\nSubject: test\n"
              b"X-A: one\nX-A: two\nx-b: =?utf-8?q?caf=C3=A9?=\nX-Folded: a\n  b\n"
              b"Content-Type: text/plain\n\nsee http://example.org/x?to=bob@example.net now\n")


def test_header_values(impl):
    hv = impl("spameng").header_values
    headers = {"x-a": [b"one", b"two"], "x-e": [], "x-b": [b"\xff\x00"]}
    assert hv(headers, ("x-a", None, "x-e", "x-b", "nope")) == \
        [b"one\ntwo\n", None, None, b"\xff\x00\n", None]
    assert hv({}, ()) == []


def test_header_view_values_match_value():
    from postier.content.spam.headers import HeaderView, plain_name
    from postier.content.spam.message import Message
    from postier.content.spam.received import parse_relays
    msg = Message(HEADER_MSG)
    msg.metadata["strings"] = {"x-meta": b"from metadata"}
    requests = ("X-A", "x-b", "X-Folded", "X-Gone", "X-Meta", "From:addr", "ToCc", "ALL",
                "X-Spam-Relays-Untrusted", "Subject:raw", "MESSAGEID", "EnvelopeFrom")
    names = tuple(plain_name(r) for r in requests)
    assert names[:5] == ("x-a", "x-b", "x-folded", "x-gone", "x-meta")
    assert set(names[5:]) == {None}
    relays = parse_relays([], [], [], [], [])
    fast = HeaderView(msg, relays).values(requests, names)
    slow = HeaderView(msg, relays)
    assert fast == [slow.value(r) for r in requests]
    assert fast[0] == b"one\ntwo\n" and fast[3] is None and fast[4] == b"from metadata"


def test_all_headers_one_pass_equals_the_ordered_walk():
    from postier.content.spam.message import Message
    rng = random.Random(5)
    lines = [b"Received: from x\n", b"X-A: one\n", b"x-a: two\n", b"X-A : spaced\n",
             b"Subject: =?utf-8?b?w6k=?=\n", b"X-F: a\n\tb\n", b"X-Bin: \xff\x00\n", b"To: b@c\n"]
    for _ in range(300):
        m = Message(b"".join(rng.choice(lines) for _ in range(rng.randrange(0, 12))) + b"\nbody\n")
        for raw in (False, True):
            assert m._get_all_headers(raw) == m._get_all_headers_slow(raw)
    big = Message(b"".join(b"X-Big%d: " % i + b"y" * 4000 + b"\nX-C: z\n" for i in range(40))
                  + b"\nbody\n")
    for raw in (False, True):
        got = big._get_all_headers(raw)
        assert got == big._get_all_headers_slow(raw) and 10 < len(got) < 80
    assert getattr(big, "truncated_header", False)


def test_prepare_builds_ahead_and_changes_no_result():
    rs = C.parse_text(RULES + HEADER_RULES, "rules.cf")
    assert rs.warnings == []
    from postier.content.spam.engine import LINE_AREAS, CompiledRules
    ready = CompiledRules(rs)
    lazy = CompiledRules(rs, prepare=False)
    assert ready.stats.prepare_seconds > 0 and lazy.stats.prepare_seconds == 0
    built = 0
    for area, rules in ready.area_rules.items():
        exact = ready.dbs[area].exact if area in ready.dbs else ()
        for i, rr in enumerate(rules):
            final = i in exact and not rr.multiple and rr.capture is None
            if area in LINE_AREAS and not final:
                assert rr._joined is not None, rr.name
            confirmed = not final and (area not in LINE_AREAS or rr.multiple or not rr._joined[1])
            if confirmed and rr.pattern.__dict__["_spec"][0] is not None \
                    and not rr.pattern._ref_confirms and not (rr.multiple and rr._joined[2]):
                assert "_re2" in rr.pattern.__dict__, rr.name
                built += 1
    assert built >= 2
    assert all("_re2" not in rr.pattern.__dict__
               for rules in lazy.area_rules.values() for rr in rules)
    for data in (HEADER_MSG, _msg(b"eee needle\nline1\n"), b"", b"X-A: \x00\n\n\x00"):
        a, b = ready.run(data), lazy.run(data)
        assert a.values == b.values
    v = ready.run(HEADER_MSG).values
    for name in ("H_PLAIN", "H_ADDR", "H_ALL", "H_UNSET_EMPTY", "H_UNSET_NEG", "H_UNSET_VAL",
                 "H_RELAYS", "H_EXISTS", "U_TMPL"):
        assert name in v, name
    assert "H_EXISTS_NOT" not in v
    assert "U_TMPL" not in ready.run(HEADER_MSG.replace(b"to=bob@", b"to=eve@")).values


def test_search_pattern_answers_like_compile_pattern():
    from postier.content.spam import perlre
    from postier.content.spam.engine import count_matches
    pats = [(r"^https?://.{3,40}#(?:bob\@example\.net|x\.y)", "i"),
            (r"(?<!blocker)email=(?:a|b)", "i"), (r"(a)\1b", ""), (r"^x.y$", "m"),
            (r"^x.y$", "ms"), (r"\bcaf\xe9\b", "i"), (r"a\s+b", "x")]
    subjects = [b"http://host/path#BOB@example.net", b"email=a blockeremail=b", b"aab aabaab",
                b"x\ny\nxzy\n", b"caf\xe9 CAF\xc9", b"a  b", b"", b"\x00\xff"]
    for pat, mods in pats:
        old, new = perlre.compile_pattern(pat, mods), perlre.compile_search_pattern(pat, mods)
        for s in subjects:
            assert bool(new.search(s)) == bool(old.search(s)), (pat, mods, s)
            assert count_matches(new, s) == count_matches(old, s), (pat, mods, s)
    with pytest.raises(perlre.PerlRegexError):
        perlre.compile_search_pattern("a(b", "")


def test_literal_counter_blocks(impl):
    # LiteralCounter.count takes 64-byte blocks without a longer literal's
    # first byte at once: literals across block edges, a limit reached
    # inside a block, one-byte literals next to longer ones
    eng = impl("spameng")
    rng = random.Random(3)
    for pat in (rb"e", E_LIKE, rb"e|\xc3\xa9", rb"ab|c", rb"\xc3\xa9|x|yz"):
        lits = eng.literal_set(pat)
        rx = re2.compile(pat)
        counter = eng.LiteralCounter(lits)
        bufs = [b"e" * 1000, b"x" * 63 + b"\xc3\xa9" + b"e" * 200, b"ab" * 100 + b"c" * 100]
        for n in (63, 64, 65, 127, 128, 129, 5000):
            for _ in range(20):
                bufs.append(bytes(rng.choice(b"eeexyzabc \xc3\xa9\xa8\x00") for _ in range(n)))
        for k in (60, 62, 63, 64, 126, 127):
            bufs.append(b"e" * k + b"\xc3\xa9yz" + b"e" * 200)
        for buf in bufs:
            want = sum(1 for _ in rx.finditer(buf))
            assert counter.count(buf) == want, (pat, buf)
            for limit in (1, 63, 64, 65, 100, 230):
                assert counter.count(buf, limit) == min(want, limit), (pat, buf, limit)
