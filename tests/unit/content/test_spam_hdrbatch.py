"""The batch's header phase walked group-major: CompiledRules.run_many hands
every message's header values to spamhdr.header_rules_many, which walks
each header group's databases and rules for every message in turn; each
message must get exactly what header_rules (run() alone) gives it -- hits,
counts, captures, negated and unset rules -- on ordinary and broken
headers, with both twins, and a message whose walk raises gets its own
exception while the others go on."""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

RULES = r"""
header   H_SUBJ     Subject =~ /hello/i
score    H_SUBJ     1.5
header   H_SUBJ2    Subject =~ /\bcheap\b/
score    H_SUBJ2    0.7
header   H_FROM     From =~ /example\.com/
score    H_FROM     0.3
header   H_FROMA    From:addr =~ /^[a-z]+\@example\.com$/
score    H_FROMA    0.2
header   H_NOTO     To !~ /\@/
score    H_NOTO     0.4
header   H_UNSET    X-Mailer =~ /^none$/ [if-unset: none]
score    H_UNSET    0.1
header   H_MANY     ALL =~ /^X-[a-z]+:/im
tflags   H_MANY     multiple maxhits=9
score    H_MANY     0.05
header   __TO_CAP   To =~ /<(?<TO_ADDR>[^>]+)>/
header   H_CAPT     Subject =~ /%{TO_ADDR}/
score    H_CAPT     0.5
header   H_RCVD     Received =~ /from [a-z.]+ \(/
score    H_RCVD     0.1
header   H_MIME     MIME-Version =~ /^1\.0$/
score    H_MIME     0.1
header   H_NUL      Subject =~ /a\x00b/
score    H_NUL      0.6
header   H_CT       Content-Type =~ /multipart/i
score    H_CT       0.2
header   H_EXISTS   exists:X-Spam-Flag
score    H_EXISTS   0.3
body     B_MONEY    /money/i
score    B_MONEY    2.0
meta     M_BOTH     H_SUBJ && B_MONEY
score    M_BOTH     1.0
"""

BASE = (b"Received: from a.example.net (a.example.net [192.0.2.1]) by mx.example.org; "
        b"Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"From: x@example.com\nTo: Someone <y@example.org>\nSubject: hello y@example.org\n"
        b"MIME-Version: 1.0\nX-Foo: 1\nX-bar: 2\nContent-Type: text/plain\n\nsend money\n")

MESSAGES = [
    BASE,
    BASE.replace(b"hello", b"cheap cheap"),
    b"From: a@b.example\nTo: nobody\nSubject: nothing\nX-Mailer: none\n\nplain text\n",
    b"",                                                            # empty
    b"Subject: a\x00b hello\nTo: <z@q.example>\n\nmoney\n",          # a NUL in a value
    b"Content-Type: multipart/mixed; boundary=X\nX-Spam-Flag: YES\n\n--X\nbroken",
    b"Subject: " + b"hello " * 20000 + b"\nX-a: " + b"y" * 70000 + b"\n\nbody\n",  # huge
    b"\xff\xfe\x80 not a header\nSubject: \xc3\x28 cheap \xa0\n\n\xc3\x28 money\n",
    BASE,                                                           # repeats: the memo
    BASE.replace(b"x@example.com", b'"Some One" <one@example.com>').replace(b"hello", b"bye"),
    b"To: a, b,\n c\nFrom: <>\nSubject:\nX-Z:\n\n",
]


def _scanner(impl, monkeypatch) -> SpamScanner:
    monkeypatch.setattr(E, "_hdr", impl("spamhdr"))
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _state(r) -> tuple:
    return dict(r.values), {k: list(v) for k, v in r.captures.items()}, r.hits, r.score


def test_group_major_header_walk_gives_each_message_its_own_results(impl, monkeypatch):
    sc = _scanner(impl, monkeypatch)
    want = [_state(sc.compiled.run(m)) for m in MESSAGES]
    # the header rules do hit, and differently per message
    assert {"H_SUBJ", "H_FROM", "H_FROMA", "H_MIME", "H_RCVD", "H_CAPT"} <= set(want[0][0])
    assert want[0][0]["H_MANY"] == 2 and want[0][1]["TO_ADDR"] == ["y@example.org"]
    assert "H_NOTO" in want[2][0] and "H_UNSET" in want[2][0] and "H_NOTO" not in want[0][0]
    assert "H_NUL" in want[4][0] and "H_EXISTS" in want[5][0] and "H_CT" in want[5][0]
    assert "H_SUBJ2" in want[7][0] and "H_SUBJ" not in want[9][0]
    calls = []
    real = E._hdr.header_rules_many

    def spy(runs, *a, **kw):
        calls.append(len(runs))
        return real(runs, *a, **kw)

    monkeypatch.setattr(E._hdr, "header_rules_many", spy) if impl.kind == "pure" else \
        monkeypatch.setattr(E, "_hdr", _Proxy(E._hdr, header_rules_many=spy))
    for order in (MESSAGES, MESSAGES[::-1]):
        got = [_state(r) for r in sc.compiled.run_many(order)]
        assert got == (want if order is MESSAGES else want[::-1])
    for size in (2, 3, 4):
        for i in range(0, len(MESSAGES), size):
            got = [_state(r) for r in sc.compiled.run_many(MESSAGES[i:i + size])]
            assert got == want[i:i + size]
    # every batch of two or more took the group-major walk (11 messages in
    # batches of 2: the last one alone, which walks as run() does)
    assert calls == [11, 11] + [2] * 5 + [3, 3, 3, 2] + [4, 4, 3]
    one = sc.compiled.run_many([MESSAGES[0]])
    assert [_state(r) for r in one] == want[:1] and len(calls) == 14


class _Proxy:
    """A module stand-in with some functions replaced (a compiled module's
    attributes cannot be set)."""

    def __init__(self, mod, **over):
        self._mod = mod
        self.__dict__.update(over)

    def __getattr__(self, name):
        return getattr(self._mod, name)


def test_a_message_whose_header_walk_raises_gets_its_own_exception(impl, monkeypatch):
    sc = _scanner(impl, monkeypatch)
    want = [_state(sc.compiled.run(m)) for m in MESSAGES]
    real = E._header_count

    def count(rr, val):
        if b"bye" in val:
            raise RuntimeError("a bug in one header rule")
        return real(rr, val)

    monkeypatch.setattr(E, "_header_count", count)
    got = sc.compiled.run_many(MESSAGES)
    assert isinstance(got[9], RuntimeError) and str(got[9]) == "a bug in one header rule"
    assert [_state(r) for k, r in enumerate(got) if k != 9] == want[:9] + want[10:]
    # a message whose header values cannot be had (HeaderView.values raising)
    real_values = E.HeaderView.values

    def values(self, *a):
        if self.msg.headers.get("subject") == [b"nothing"]:
            raise ValueError("cannot read the headers")
        return real_values(self, *a)

    monkeypatch.setattr(E.HeaderView, "values", values)
    got = sc.compiled.run_many(MESSAGES)
    assert isinstance(got[2], ValueError) and isinstance(got[9], RuntimeError)
    assert [_state(r) for k, r in enumerate(got) if k not in (2, 9)] == \
        [w for k, w in enumerate(want) if k not in (2, 9)]


def test_header_rules_many_checks_its_arguments(impl, monkeypatch):
    sc = _scanner(impl, monkeypatch)
    cr = sc.compiled
    hdr = impl("spamhdr")
    r = E.Run(cr, MESSAGES[0])
    vals = r.hv.values(cr.header_requests, cr.header_names)
    args = (cr.header_cplan, None)
    rest = (cr.dbs["header"].part_dbs(), E._header_count, E._eng.on_match,
            E._eng.on_first_match, E._ScanTerminated)
    with pytest.raises(ValueError, match="one vals per run"):
        hdr.header_rules_many([r], *args, [vals, vals], *rest)
    assert hdr.header_rules_many([], *args, [], *rest) == []
    errs = hdr.header_rules_many([r], *args, [vals[:3]], *rest)   # too few values: IndexError
    assert len(errs) == 1 and isinstance(errs[0], IndexError)
    r2 = E.Run(cr, MESSAGES[0])
    assert hdr.header_rules_many([r2], *args, [vals], *rest, cr.header_memo) == [None]
    assert r2.values.get("H_SUBJ") == 1 and r2.values.get("H_MANY") == 2
