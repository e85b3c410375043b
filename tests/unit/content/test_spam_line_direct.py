"""Reports of a look-around rule confirmed by its exact engine alone
(engine._direct, Run._lines).

A line-area rule with no RE2 form of the joined buffer whose per-line
pre-check is its loose form (the fuzzy-word rules: (?!amazon) and the
reported text are the same) is confirmed on the subjects holding
Hyperscan's reports with rule.pattern.search alone (libpcre2), skipping
the two RE2 passes.  Its hits must be those of Python `re` on each subject
and those of the scan without the shortcut.
"""

from __future__ import annotations

import re

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam import perlre, rulecache
from postier.content.spam.scanner import SpamScanner

RULES = r"""
body  FZ_AMAZON  /(?:^|\W)(?=[a4@])(?!amazon)[a4@][mM][a4@][zZ2][o0][nN](?:$|\W)/i
body  FZ_MILL    /(?!milli?on)[mM][i1l!][l1|][l1|][i1l!]?[o0][nN]/i
body  PLAIN_WORD /\bhello\s+world\b/i
score FZ_AMAZON  0.1
score FZ_MILL    0.1
score PLAIN_WORD 0.1
"""

PY = {
    "FZ_AMAZON": re.compile(rb"(?:^|\W)(?=[a4@])(?!amazon)[a4@][mM][a4@][zZ2][o0][nN](?:$|\W)", re.I),
    "FZ_MILL": re.compile(rb"(?!milli?on)[mM][i1l!][l1|][l1|][i1l!]?[o0][nN]", re.I),
}

BODIES = [
    b"buy at amazon now\n\nwin a million\n",                     # plain spellings only
    b"buy at 4mazon now\n\nwin a m1ll1on today\n",               # obfuscated
    b"amazon here\n\nand @MAZ0N there\n\nmillion and MILLI0N\n",
    b"amazon, amazon.\n\n" + b"filler line\n\n" * 12 + b"then a-m-a? no: 4m4z0n!\n",
    b"x" * 5000 + b" amazon " + b"\xff\xfe amaz0n\n\nmillion\0\n",
    b"nothing to see\n\nhello   world\n",
    b"",
]


def _scanner(cache_dir) -> SpamScanner:
    return SpamScanner(rules=C.parse_text(RULES, "rules.cf"), cache_dir=cache_dir)


def _msg(body: bytes, subject: bytes = b"s") -> bytes:
    return b"From: a@example.com\nSubject: " + subject + b"\n\n" + body


def _hits(sc: SpamScanner, msg: bytes) -> dict[str, int]:
    return {n: v for n, v in sc.run(msg).values.items() if n in ("FZ_AMAZON", "FZ_MILL", "PLAIN_WORD")}


def test_look_around_rules_are_direct_with_a_rule_cache(tmp_path):
    rules = _scanner(str(tmp_path)).compiled.area_rules["body"]
    got = {rr.name: E._direct(rr) for rr in rules if rr.name in PY}
    assert got == {"FZ_AMAZON": True, "FZ_MILL": True}


def test_a_pattern_outside_the_rule_cache_is_not_direct():
    # a plain patterns.Pattern may answer with Python `re`: keep the RE2 pre-checks
    pat = perlre.compile_pattern(r"(?!amazon)[a4][m][a4][z][o0][n]", "i")
    rr = E.RRule(name="X", area="body", pattern=pat)
    assert not isinstance(pat, rulecache.LazyPattern)
    assert E._direct(rr) is False


@pytest.mark.parametrize("subject", [b"s", b"cheap 4MAZON stuff", b"amazon"])
def test_direct_confirmation_hits_like_the_pattern(tmp_path, monkeypatch, subject):
    sc = _scanner(str(tmp_path))
    slow = _scanner(str(tmp_path))
    for rr in slow.compiled.area_rules["body"]:
        rr._direct = False          # the scan without the shortcut
    line_rule = E.Run._line_rule
    confirmed: list[str] = []

    def spy(self, rr, lines):
        confirmed.append(rr.name)
        return line_rule(self, rr, lines)

    monkeypatch.setattr(E.Run, "_line_rule", spy)
    seen = set()
    for body in BODIES:
        msg = _msg(body, subject)
        confirmed.clear()
        run = sc.run(msg)
        got = _hits(sc, msg)
        assert not {"FZ_AMAZON", "FZ_MILL"} & set(confirmed), body   # direct: no _line_rule
        assert got == _hits(slow, msg), body
        subjects = run.body()
        want = {n for n, rx in PY.items() if any(rx.search(s) for s in subjects)}
        assert {n for n in got if n in PY} == want, body
        seen |= want
    assert seen == {"FZ_AMAZON", "FZ_MILL"}
