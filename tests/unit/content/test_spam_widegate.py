"""Wide gates (postier.content.spam.gatehs.wide_gate): a Hyperscan scan of
a rule's joined form with every repeat's optional copies unbounded and
atomic groups as plain groups.  Every subject the rule matches must be
one the gate matches (alone, and in a joined buffer of several); the
gate must still rule most other text out; patterns with look-arounds or
back-references get none; the database is kept in the cache directory.
Engine side (engine._wide_gates): a scan through wide gates gives the
same values as one without them, and a gate's narrowing from one scan
(HsGate.subjects, AtomGate.subjects) keeps every subject it matches."""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam import gateatom, gatehs, perlre
from postier.content.spam.scanner import SpamScanner

FIELD = r"(?:(?:full\s)?name|city|e-?mail|(?:mobile\s)?phone|address)"
# __FILL_THIS_FORM_PARTIAL's shape: a line start, a list number, a field
# name list, then a blank run or the end of the line
PARTIAL = (r"^\s?(?:\d{1,3}[.)]\s?)?(?:your\s)?" + FIELD + r"(?:\s?[\/&,]\s?" + FIELD
           + r"){0,2}:?(?:[\s:;]{0,4}[-=_.,:;*\s]{3,100}|(?:[-=_.,:;*\s]|=20){1,4}$)")
# and __FILL_THIS_FORM_PARTIAL_RAW's: an atomic group at the start
PARTIAL_RAW = (r"^(?>\s{0,50})(?:\d{1,3}[.)]\s?)?(?:your\s)?" + FIELD + r"(?:\s?[\/&,]\s?"
               + FIELD + r"){0,2}:?(?:[-=_.,:;*\s]|=20|&nbsp;|<\/\w+>){0,4}$")
WORDS = ["name", "Full Name", "city", "e-mail", "email", "mobile phone", "phone", "address",
         "your", "1.", "2)", "x", "hello", "names", "the", "_____", "....", ": ", ",", "/",
         "&nbsp;", "</td>", "=20", "\t", "   ", "\n", "\n\n", "NAME", "Address:"]


def _subjects(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [rnd.choice(WORDS) for _w in range(rnd.randint(0, 9))]
        out.append("".join(p + rnd.choice(["", " ", "", "\n", ":"]) for p in parts).encode())
    return out


@pytest.mark.parametrize("pattern", [PARTIAL, PARTIAL_RAW])
def test_every_match_passes_the_gate(pattern, tmp_path):
    p = perlre.compile_pattern(pattern, "im")
    gate = gatehs.wide_gate(pattern, "im", b"rule form", str(tmp_path))
    assert gate is not None and gate.pattern == b"rule form"
    subjects = _subjects(1, 3000) + [
        b"Name:\n", b"  name, city: ____\n", b"1. your e-mail ...", b"address=20\n",
        b"name\n\ncity:", b"city</td>\n", b"x name: __", b"names: __", b"", b"\n"]
    matched = passed = 0
    for s in subjects:
        hit = bool(p.search(s))
        g = gate.contains(perlre.joined_buffer([s]))
        assert g or not hit, s
        matched += hit
        passed += g
    assert matched > 100
    assert passed < len(subjects) // 2        # it rules most text out
    rnd = random.Random(2)
    for _ in range(500):        # several subjects: any match passes the gate
        group = rnd.sample(subjects, rnd.randint(1, 5))
        if any(p.search(s) for s in group):
            assert gate.contains(perlre.joined_buffer(group)), group


@pytest.mark.parametrize("pattern", [
    r"(?=name)name:\s*$",           # look-ahead
    r"(\w+)=\1",                    # back-reference
    r"x*",                          # may match empty
])
def test_no_wide_form(pattern):
    assert gatehs.wide_expr(pattern, "im") is None


def test_atomic_group_and_bounded_repeats_become_wide():
    expr = gatehs.wide_expr(r"^(?>\s{0,50})ab{2,9}c{3}", "m")
    assert expr is not None
    assert b"{0,50}" not in expr and b"{2,9}" not in expr and b"{3}" in expr


def test_database_kept_in_the_cache_dir(tmp_path, monkeypatch):
    d = str(tmp_path)
    gatehs.wide_gate(PARTIAL, "im", b"f", d)
    files = [n for n in os.listdir(d) if n.startswith("spam-widegate-")]
    assert len(files) == 1 and open(os.path.join(d, files[0]), "rb").read()[:1] == b"="
    monkeypatch.setattr(gatehs, "_compile_exprs", None)     # loaded, not compiled
    again = gatehs.wide_gate(PARTIAL, "im", b"f", d)
    assert again is not None and again.contains(perlre.joined_buffer([b"your name: ___"]))
    assert not again.contains(perlre.joined_buffer([b"the name of the rose"]))


def test_hs_gate_subjects_hold_every_matching_subject(tmp_path):
    gate = gatehs.wide_gate(PARTIAL, "im", b"f", str(tmp_path))
    rnd = random.Random(3)
    pool = _subjects(4, 400)
    extra = found = 0
    for _ in range(400):
        group = rnd.sample(pool, rnd.randint(1, 6))
        buf = perlre.joined_buffer(group)
        got = gate.subjects(buf, group)
        want = [k for k, s in enumerate(group) if gate.contains(perlre.joined_buffer([s]))]
        # got: the subjects of some positions of group, in order, those of want among them
        pos, k = [], 0
        for s in got:
            while group[k] is not s:
                k += 1
            pos.append(k)
            k += 1
        assert set(want) <= set(pos), (group, got)
        extra += len(got) - len(want)
        found += len(want)
    assert found > 50 and extra <= found     # a neighbour at most now and then


def test_atom_gate_subjects_are_the_subjects_it_matches():
    x = r"(?:your\s)?(?:name|city|e-?mail|phone)[\s:,.]{1,20}"
    rx = perlre.joined_re2(f"(?:{x}){{2}}", "i")[0]
    gate = gateatom.atom_gate(x, "i", 2, rx)
    assert gate is not None
    rnd = random.Random(5)
    pool = [b"name, city", b"x name", b"email: phone.", b"your name: your city,", b"hello",
            b"city city city", b"", b"phone", b"name\ncity:"] + _subjects(6, 200)
    hits = 0
    for _ in range(600):
        group = [rnd.choice(pool) for _s in range(rnd.randint(1, 6))]
        buf = perlre.joined_buffer(group)
        got = gate.subjects(buf, group)
        want = [s for s in group if gate.contains(perlre.joined_buffer([s]))]
        assert [id(s) for s in got] == [id(s) for s in want], group
        assert bool(got) == gate.contains(buf)
        hits += bool(got)
    assert 0 < hits < 600


WIDE_RULES = r"""
body     __PARTIAL      /""" + PARTIAL + r"""/im
tflags   __PARTIAL      multiple maxhits=5
rawbody  __PARTIAL_RAW  /""" + PARTIAL_RAW + r"""/im
tflags   __PARTIAL_RAW  multiple maxhits=5
body     __ONE          /^\s?(?:your\s)?""" + FIELD + r""":?[-_.\s]{3,20}$/im
score    __PARTIAL      0.1
score    __PARTIAL_RAW  0.1
score    __ONE          0.1
"""
WIDE_BODIES = [      # (Subject, body): a match in the Subject (the first body subject) too
    (b"s", b"hello world\n"),
    (b"Your name: ____", b"hello\n"),
    (b"s", b"Name: ____\nCity: ____\nE-mail: ____\n"),
    (b"s", b"<html><body><p>Name: ____</p>\n<p>your city&nbsp;\n</p>address</td>\n</body></html>\n"),
    (b"s", b"name\n\ncity\n\n1. your phone ...\n"),
    (b"city", b"the name of the city is on the phone\n"),
    (b"s", b"   address=20\n  e-mail, phone: ___________\n"),
]


def test_scans_through_wide_gates_are_unchanged(monkeypatch):
    # the body rules kept out of Hyperscan and always confirmed with RE2 (as
    # the big __FILL_THIS_FORM_PARTIAL is); every rule of both areas gets a
    # wide gate (in rawbody __PARTIAL_RAW's atomic group is a plain group)
    monkeypatch.setattr(E, "HEAVY_EXPR", 0)
    monkeypatch.setattr(E, "HEAVY_EXACT", 0)
    monkeypatch.setattr(E, "WIDE_GATE_MIN", 0)
    gated = SpamScanner(rules=C.parse_text(WIDE_RULES, "rules.cf"), cache_dir=None)
    cr = gated.compiled
    gates = {}
    for area in ("body", "rawbody"):
        rules = cr.area_rules[area]
        every = SimpleNamespace(always=frozenset(range(len(rules))), exact=frozenset())
        gates[area] = E._wide_gates(rules, every, frozenset())
    names = {cr.area_rules[a][i].name for a, gs in gates.items() for g, m in gs for i in m
             if isinstance(g, gatehs.HsGate)}
    assert names == {"__PARTIAL", "__PARTIAL_RAW", "__ONE"}
    cr.__dict__["_line_gates"] = gates
    plain = SpamScanner(rules=C.parse_text(WIDE_RULES, "rules.cf"), cache_dir=None)
    plain.compiled.__dict__["_line_gates"] = {"body": [], "rawbody": []}
    seen = set()
    for subject, body in WIDE_BODIES:
        for ctype in (b"text/plain", b"text/html"):
            msg = (b"From: a@example.com\nSubject: " + subject + b"\nContent-Type: " + ctype
                   + b"\n\n" + body)
            got = {n: v for n, v in gated.run(msg).values.items() if n.startswith("__")}
            want = {n: v for n, v in plain.run(msg).values.items() if n.startswith("__")}
            assert got == want, body
            seen |= set(got)
    assert seen == {"__PARTIAL", "__PARTIAL_RAW", "__ONE"}
