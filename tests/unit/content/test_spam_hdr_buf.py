"""spamhdr.header_rules' scanned buffer: a header value is scanned as
b"\\x00" + value + b"\\x00\\x00" (the joined form), and a value holding a
NUL anywhere is not scanned (every rule of its group is a candidate,
confirmed on the value).  Both twins (the compiled one builds the buffer
in one allocation and finds the NUL with memchr)."""

from __future__ import annotations

import re

import pytest


class _Run:
    def __init__(self):
        self.values: dict = {}

    def _capture(self, rr, val):
        pass


class _Rule:
    pre = None

    def __init__(self, name: str, rx: bytes):
        self.name, self.rx, self.calls = name, re.compile(rx), 0

    def search(self, val: bytes) -> bool:
        self.calls += 1
        return self.rx.search(val) is not None


class _Db:
    """Records each buffer scanned; reports rule 0 when b"spam" is in it."""

    def __init__(self):
        self.bufs: list[bytes] = []

    def scan(self, buf, handler, flags, ctx, scratch):
        self.bufs.append(bytes(buf))
        if b"spam" in buf:
            handler(0, 0, 0, 0, ctx)


class _Stop(Exception):
    pass


def _walk(impl, val: bytes):
    hdr = impl("spamhdr")
    eng = impl("spameng")
    rule = _Rule("R", rb"spam")
    info = [("R", False, False, False, False, rule)]
    plan = [(None, (), (0,), (), (), False, False, 0, None)]
    db = _Db()
    run = _Run()
    hdr.header_rules(run, plan, info, [val], [(((db, "sc"),), ())], len, eng.on_match,
                     eng.on_first_match, _Stop, None)
    return run, db, rule


@pytest.mark.parametrize("val", [b"", b"x", b"spam\n", b"\xff\xfe spam \x80\n",
                                 b"a" * 5000 + b"spam", b"\n\n"])
def test_value_scanned_in_joined_form(impl, val):
    run, db, rule = _walk(impl, val)
    assert db.bufs == [b"\x00" + val + b"\x00\x00"]
    assert run.values == ({"R": 1} if b"spam" in val else {})
    assert rule.calls == (1 if b"spam" in val else 0)


@pytest.mark.parametrize("val", [b"\x00", b"\x00spam", b"sp\x00am spam", b"spam\x00",
                                 b"x" * 3000 + b"\x00"])
def test_value_with_nul_is_not_scanned_and_every_rule_is_confirmed(impl, val):
    run, db, rule = _walk(impl, val)
    assert db.bufs == []
    assert rule.calls == 1
    assert run.values == ({"R": 1} if b"spam" in val else {})


def _walk_always(impl, val: bytes):
    """A group of three rules: 0 reported by the stand-in database, 1 and
    2 "always" rules (confirmed on every value)."""
    hdr = impl("spamhdr")
    eng = impl("spameng")
    rules = [_Rule("R", rb"spam"), _Rule("A1", rb"^\w"), _Rule("A2", rb"(?P<T>\w+)$")]
    info = [("R", False, False, False, False, rules[0]), ("A1", False, False, False, False, rules[1]),
            ("A2", False, False, False, True, rules[2])]
    plan = [(None, (), (0, 1, 2), (1, 2), (), False, False, 0, None)]
    db = _Db()
    run = _Run()
    captured: list = []
    run._capture = lambda rr, v: captured.append(rr.name)
    hdr.header_rules(run, plan, info, [val], [(((db, "sc"),), ())], len, eng.on_match,
                     eng.on_first_match, _Stop, None)
    return run, rules, captured


@pytest.mark.parametrize("val,hits", [(b"word", {"A1": 1, "A2": 1}), (b" ", {}),
                                      (b"spam x", {"R": 1, "A1": 1, "A2": 1}),
                                      (b"-spam-", {"R": 1})])
def test_always_rules_confirmed_with_and_without_reports(impl, val, hits):
    run, rules, captured = _walk_always(impl, val)
    assert run.values == hits
    assert [r.calls for r in rules] == [1 if b"spam" in val else 0, 1, 1]
    assert captured == (["A2"] if "A2" in hits else [])


def test_engine_plan_always_rules_are_sorted_and_distinct():
    from postier.content.spam import conf as C
    from postier.content.spam.scanner import SpamScanner
    rs = C.parse_text("header H1 Subject =~ /a/\nheader H2 Subject =~ /^(?!x)/\n"
                      "header H3 Subject =~ /\\S{3}/\nheader H4 ALL =~ /b/\n", "rules.cf")
    sc = SpamScanner(rules=rs, cache_dir=None)
    plan = sc.compiled.header_plan
    assert plan
    for g in plan:
        assert list(g[3]) == sorted(set(g[3]))
    assert sc.run(b"Subject: abc\n\nhi\n").values.get("H1") == 1
