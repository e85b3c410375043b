"""The full area's scanner without the solo databases of linelen rules
(engine.Run._full_scanner): a rule /^[^\\r\\n]{N}/m is a candidate on every
message and spameng.long_line answers it, as when its loose Hyperscan entry
reported.  Compared with the scanner of every database on mutated messages
(NULs, 8-bit bytes, CRs, lines just under and over the length, huge lines)."""

from __future__ import annotations

import random

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner

_RULES = r"""
full     F_LONG     /^[^\r\n]{998}/m
full     F_RCVD     /Received/
full     F_NUL      /\x00/
full     F_MANY     /\bsend\b/i
tflags   F_MANY     multiple maxhits=3
"""


def _messages() -> list[bytes]:
    rnd = random.Random(3)
    bits = [b"a" * 997, b"a" * 998, b"b" * 5000, b"x\x00" * 600, b"\xe9" * 1200, b"c" * 990 + b"\r" + b"d" * 20,
            b"send send send send", b"Received: here", b"short", b"e" * 64]
    out = []
    for _ in range(60):
        body = b"\n".join(rnd.choice(bits) for _ in range(rnd.randint(0, 4)))
        out.append(b"From: a@b.c\nSubject: s\n\n" + body + rnd.choice([b"\n", b""]))
    return out + [b"", b"x" * 2000, b"Subject: " + b"y" * 1200 + b"\n\nhi\n"]


def test_linelen_rules_without_their_solo_database_give_the_same_hits():
    rs = C.parse_text(_RULES, "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    msgs = _messages()
    fast = [sc.run(m).values for m in msgs]
    d = sc.compiled.__dict__
    assert d["_full_linelen_solos"]           # the fast path was taken
    d["_full_linelen_solos"] = ()               # every database scanned
    slow = [sc.run(m).values for m in msgs]
    assert fast == slow
    assert any("F_LONG" in v for v in fast) and any("F_LONG" not in v for v in fast)
    assert any("F_NUL" in v for v in fast) and any(v.get("F_MANY") == 3 for v in fast)


def test_only_linelen_solo_entries_are_skipped():
    rs = C.parse_text(_RULES, "rules.cf")
    sc = SpamScanner(rules=rs, cache_dir=None)
    sc.run(b"Subject: s\n\nhi\n")
    rules = sc.compiled.area_rules["full"]
    skip = sc.compiled.__dict__["_full_linelen_solos"]
    assert [rules[i].name for i in skip] == ["F_LONG"]
