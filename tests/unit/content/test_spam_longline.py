"""The direct long-line check (spameng.long_line) that answers full rules of
the shape /^[^\\r\\n]{N}/m (SpamAssassin's __LONGLINE) instead of RE2: the
same answers as the regex (Perl's multi-line ^: the start of the text or
just after a newline; CR and LF end the run), in both implementations,
and through the engine."""

from __future__ import annotations

import re

import pytest

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner


def perl_long_line(data: bytes, n: int) -> bool:
    return re.search(rb"^[^\r\n]{%d}" % n, data, re.M) is not None


CASES = [
    b"",
    b"x" * 9,
    b"x" * 10,
    b"x" * 11,
    b"short\n" + b"y" * 10,
    b"short\n" + b"y" * 9 + b"\n",
    b"y" * 9 + b"\r" + b"z" * 20,            # CR ends the run at the line start
    b"\r" + b"z" * 20,
    b"a\r\n" + b"b" * 10 + b"\r\n",
    b"a\n\n\n" + b"c" * 10,
    b"\x00" * 10,                           # NULs are ordinary bytes here
    b"ab\x00" + b"d" * 10,                  # ... and no line start
    b"\n" * 30,
    b"\xff" * 5 + b"\n" + b"\xfe" * 12 + b"\n",
    b"q" * 9 + b"\n" + b"r" * 9 + b"\r\n" + b"s" * 10,
]


@pytest.mark.parametrize("data", CASES)
def test_long_line_is_the_multiline_regex(impl, data):
    eng = impl("spameng")
    assert eng.long_line(data, 10) == perl_long_line(data, 10)
    assert eng.long_line(data, 1) == perl_long_line(data, 1)


def test_long_line_on_big_text(impl):
    eng = impl("spameng")
    text = (b"line of text\r\n" * 200) + b"w" * 997 + b"\n" + b"tail"
    assert eng.long_line(text, 998) is False
    assert eng.long_line(text, 997) is True
    assert eng.long_line(text + b"\n" + b"v" * 998, 998) is True
    assert eng.long_line(text + b"\n" + b"v" * 997 + b"\r" + b"v" * 5, 998) is False


def test_long_line_on_random_text(impl):
    # the memchr line walk against the regex on short random texts of the
    # bytes that matter (LF, CR, NUL, 8-bit) and lengths around n
    import random
    eng = impl("spameng")
    rnd = random.Random(7)
    for _ in range(3000):
        data = bytes(rnd.choice(b"ab\r\n\x00\xff") for _ in range(rnd.randint(0, 40)))
        n = rnd.randint(1, 9)
        assert eng.long_line(data, n) == perl_long_line(data, n), (data, n)


@pytest.mark.parametrize("data", CASES + [b"\x00", b"\x00\x00a\x00", b"a" * 100 + b"\x00"])
def test_byte_count_is_bytes_count(impl, data):
    # (_lines' check that no subject of a joined buffer holds a NUL)
    eng = impl("spameng")
    assert eng.byte_count(data, 0) == data.count(b"\x00")
    assert eng.byte_count(data, 10) == data.count(b"\n")


RULES = r"""
full   __LONG    /^[^\r\n]{20}/m
full   __LONG_CR /^[^\n\r]{20}/m
full   __LONG_S  /^[^\r\n]{20}/
meta   LONG      __LONG
meta   LONG_CR   __LONG_CR
meta   LONG_S    __LONG_S
score  LONG      0.1
score  LONG_CR   0.1
score  LONG_S    0.1
"""

HEAD = b"From: a@example.com\nTo: b@example.net\nSubject: hi\n\n"


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def test_the_engine_answers_with_long_line(sc):
    rules = {rr.name: rr for rr in sc.compiled.area_rules["full"]}
    assert rules["__LONG"].linelen == 20
    assert rules["__LONG_CR"].linelen == 20
    assert rules["__LONG_S"].linelen == 0        # no /m: only the text's start
    for body, hit in [(b"short\n" * 5, False),
                      (b"short\n" + b"k" * 20 + b"\n", True),
                      (b"k" * 19 + b"\r\n" + b"k" * 19 + b"\n", False),
                      (b"ok\n" + b"k" * 25 + b"\r\n", True)]:
        run = sc.run(HEAD + body)
        assert ("__LONG" in run.values) is hit
        assert ("__LONG_CR" in run.values) is hit
        # the first line of the message is a header, shorter than 20
        assert "__LONG_S" not in run.values


BACKREF = r"""
body  __BR   /(\w{3})-\1/
meta  BR     __BR
score BR     0.1
"""


class _Spy:
    """A pre-check that counts its searches of whole joined buffers."""

    def __init__(self, rx):
        self.rx = rx
        self.joined = 0

    def contains(self, data: bytes) -> bool:
        if data.startswith(b"\x00"):
            self.joined += 1
        return self.rx.contains(data)


def test_past_a_gate_the_loose_pre_check_runs_per_line_only():
    """Engine._lines: a rule past a passing gate whose loose form is its
    per-line pre-check skips the joined-buffer search (same results)."""
    import re2

    sc = SpamScanner(rules=C.parse_text(BACKREF, "rules.cf"), cache_dir=None)
    plain = SpamScanner(rules=C.parse_text(BACKREF, "rules.cf"), cache_dir=None)
    plain.compiled.__dict__["_line_gates"] = {"body": []}
    rules = sc.compiled.area_rules["body"]
    (i, rr), = [(i, r) for i, r in enumerate(rules) if r.name == "__BR"]
    assert rr.joined()[0] is None and rr.pre is not None
    spy = _Spy(rr.pre)
    rr.pre = rr._loose = spy
    sc.compiled.__dict__["_line_gates"] = {"body": [(re2.compile(b""), frozenset({i}))]}
    seen = set()
    for body in (b"nothing here\n", b"abc-abc\n", b"abc-abd\n\nxyz-xyw\n",
                 b"x\n\nfoo-foo bar\n", b"foo-fo\n"):
        msg = HEAD + body
        got = {n for n in sc.run(msg).values if "BR" in n}
        assert got == {n for n in plain.run(msg).values if "BR" in n}, body
        seen |= got
    assert seen == {"__BR", "BR"}
    assert spy.joined == 0
    sc.compiled.__dict__["_line_gates"] = {"body": []}     # no gate: the joined search runs
    rr._direct = False      # (nor libpcre2 alone on the reported subjects: engine._direct)
    sc.run(HEAD + b"abc-abd here\n")
    assert spy.joined > 0
