"""Family gates of the line areas (engine._family_gates): two rules whose
patterns are (?:X){n} and (?:Y){m}, Y being X with an optional group left
out, are ruled out together by one RE2 search of (?:X){min(n, m)}
(SpamAssassin's __FILL_THIS_FORM_SHORT2/_LONG2 pair).  The gate must never
change a result: scans with and without it are compared, and the pattern
checks that decide whether two rules form a family are tested on the
cases that must not (atomic groups, possessive quantifiers, back
references, a group that is not optional)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

FAMILY = r"""
body  __F_LONG   /(?:(?:name|age|phone)[\s,:]{0,3}(?:\((?:req|opt)\))?[\s,]+){4}/i
body  __F_SHORT  /(?:(?:name|age|phone)[\s,:]{0,3}[\s,]+){2}/i
body  __F_OTHER  /(?:(?:name|age)[\s,]+){2}/
score __F_LONG   0.1
score __F_SHORT  0.1
score __F_OTHER  0.1
"""

BODIES = [
    b"hello world\n",
    b"name, age, phone, name, and more\n",
    b"Name (req), AGE (opt), phone, name here\n",
    b"name (req) age (req) phone (req)\n",
    b"name\n\nage, phone\n",
    b"some text\n\nplease send phone, name\n",
    b"name age phone\n\nname (opt) age (opt) phone (opt) name (req) x\n",
]


def _msg(body: bytes) -> bytes:
    return b"From: a@example.com\nSubject: s\n\n" + body


def test_pair_found_and_gate_changes_no_result():
    sc = SpamScanner(rules=C.parse_text(FAMILY, "rules.cf"), cache_dir=None)
    cr = sc.compiled
    rules = cr.area_rules["body"]
    everything = SimpleNamespace(always=frozenset(range(len(rules))))
    gates = E._family_gates(rules, everything)
    assert [sorted(rules[i].name for i in m) for _rx, m in gates] == [["__F_LONG", "__F_SHORT"]]
    plain = SpamScanner(rules=C.parse_text(FAMILY, "rules.cf"), cache_dir=None)
    plain.compiled.__dict__["_line_gates"] = {"body": []}
    cr.__dict__["_line_gates"] = {"body": gates}
    seen = set()
    for body in BODIES:
        got = {n for n in sc.run(_msg(body)).values if n.startswith("__F")}
        assert got == {n for n in plain.run(_msg(body)).values if n.startswith("__F")}, body
        seen |= got
    assert seen == {"__F_LONG", "__F_SHORT", "__F_OTHER"}
    rx = gates[0][0]
    assert not rx.contains(b"\x00hello world\x00\x00")     # the gate rules the pair out
    assert rx.contains(b"\x00x name age y\x00\x00")


def test_rules_not_always_confirmed_get_no_gate():
    sc = SpamScanner(rules=C.parse_text(FAMILY, "rules.cf"), cache_dir=None)
    rules = sc.compiled.area_rules["body"]
    assert not any(r.entry.solo for r in rules)
    assert len(E._family_gates(rules, SimpleNamespace(always=frozenset(range(len(rules)))))) == 1
    assert E._family_gates(rules, SimpleNamespace(always=frozenset())) == []


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?:a[)(]\)b(?:c)?){3}", (r"a[)(]\)b(?:c)?", 3)),
    (r"(?:a)(?:b){3}", None),              # the count is not on the whole pattern
    (r"(?:a(?>b)){3}", None),              # atomic group
    (r"(?:a(b)\1){3}", None),              # back reference
    (r"(?:ab++){3}", None),                # possessive
    (r"(?:a(?=b)){3}", None),              # lookahead
    (r"(?:ab)+", None),
    (r"(?:a[^]])b){2}", None),             # unbalanced once the class is skipped
])
def test_counted_group(pattern, expected):
    assert E._counted_group(pattern) == expected


@pytest.mark.parametrize(("big", "small", "expected"), [
    (r"a(?:b[)])?c", "ac", True),
    (r"x(?:y(?:z)?)?w", "x(?:y)?w", True),
    (r"a(?:b)?+c", "ac", False),           # possessive: not a plain optional group
    (r"a(?:b)c", "ac", False),             # not optional
    (r"a(b)?c", "ac", False),              # capturing: left alone
    (r"a(?:b)?c", "a(?:b)?c", False),      # nothing left out
    (r"a(?:b)?c", "a(?:d)?c", False),
])
def test_drops_optional(big, small, expected):
    assert E._drops_optional(big, small) is expected
