"""Line-length rules (/^[^\\r\\n]{N}/m, SpamAssassin's __LONGLINE): no
Hyperscan entry (their expression is a loose prefilter that reports on
nearly every message, in a solo database of its own), an always candidate
that spameng.long_line answers.  Their hits are compared with the same
pattern written so that it takes the ordinary Hyperscan + confirmation
path, and with Python's re, on mutated messages (NULs, 8-bit bytes, CRs,
lines just under and over the length, huge lines)."""

from __future__ import annotations

import random
import re

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner

_RULES = r"""
full     F_LONG     /^[^\r\n]{998}/m
full     F_LONG_HS  /^[^\r\n]{998}(?:)/m
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


def _scanner() -> SpamScanner:
    rs = C.parse_text(_RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def test_a_linelen_rule_is_an_always_candidate_without_hyperscan_form():
    sc = _scanner()
    rules = sc.compiled.area_rules["full"]
    db = sc.compiled.dbs["full"]
    [k] = [i for i, rr in enumerate(rules) if rr.name == "F_LONG"]
    [h] = [i for i, rr in enumerate(rules) if rr.name == "F_LONG_HS"]
    assert rules[k].linelen == 998 and rules[k].entry.exprs == [] and k in db.always
    assert rules[h].linelen == 0 and rules[h].entry.exprs and h not in db.always
    assert not any(db.entries[i].solo for i in (k,))


def test_linelen_rules_hit_as_the_hyperscan_path_and_re_do():
    sc = _scanner()
    msgs = _messages()
    long_re = re.compile(rb"^[^\r\n]{998}", re.M)
    seen = set()
    for m in msgs:
        v = sc.run(m).values
        want = bool(long_re.search(m))
        assert ("F_LONG" in v) == want == ("F_LONG_HS" in v), m[:80]
        seen.add(want)
        assert ("F_NUL" in v) == (b"\x00" in m)
    assert seen == {True, False}
    assert any(sc.run(m).values.get("F_MANY") == 3 for m in msgs)
