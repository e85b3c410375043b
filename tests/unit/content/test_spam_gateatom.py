"""Atom gates (postier.content.spam.gateatom): a family gate (?:X){n}
answered by a Hyperscan scan for X's biggest required item followed by
one first byte of the rest, then an anchored RE2 walk of the rest at each
reported end, must give the family gate's own RE2 answer on every joined
buffer.  Compared on crafted and random buffers; patterns without a
usable atom (look-around, nothing required after the atom) get none."""

from __future__ import annotations

import os
import random

import pytest

from postier.content.spam import gateatom, perlre

X = r"(?:your\s)?(?:full\s)?(?:name|city|e-?mail|(?:mobile\s)?phone)(?:\s?\(\w{1,10}\))?(?:[\s:,.]{1,20}|\sand\s)"
WORDS = ["your", "full", "name", "city", "email", "e-mail", "mobile", "phone", "and", "(req)",
         "x", "message", "names", "cityname", ",", ":", ".", "\t", "(", ")", "Name", "CITY"]


def _gate(x: str, n: int):
    rx = perlre.joined_re2(f"(?:{x}){{{n}}}", "i", max_mem=8 << 20)[0]
    return rx, gateatom.atom_gate(x, "i", n, rx)


def _buffers(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        subjects = []
        for _s in range(rnd.randint(1, 4)):
            seps = [" ", " ", ", ", ": ", " and ", "", "  "]
            subjects.append("".join(rnd.choice(WORDS + ["1.", "2)", "3. "]) + rnd.choice(seps)
                                    for _w in range(rnd.randint(0, 12))).encode())
        out.append(perlre.joined_buffer(subjects))
    return out


# an item the atom needs before it (a list number): a report is not a
# match of X, the gate's regex confirms
NUMBERED = r"[0-9][.)]\s?" + X


@pytest.mark.parametrize(("x", "n", "exact"), [
    (X, 1, True), (X, 2, True), (X, 3, True), (NUMBERED, 2, False), (NUMBERED, 3, False)])
def test_same_answers_as_the_family_gate(x, n, exact):
    rx, gate = _gate(x, n)
    assert gate is not None and gate.rx is rx and gate.pattern == rx.pattern
    assert gate.exact is exact
    bufs = _buffers(n, 3000) + [perlre.joined_buffer([s]) for s in (
        b"your name, city, phone", b"name city", b"Your Full Name (req): City, E-Mail and",
        b"message page usage", b"name\x85city", b"", b"names, cities, phones",
        b"mobile phone:: name; city,", b"NAME CITY PHONE ", b"1. name 2. city 3. phone",
        b"1.name, 2)city and 3. your email:")]
    got = [gate.contains(b) for b in bufs]
    assert got == [bool(rx.contains(b)) for b in bufs]
    assert any(got) and not all(got)        # both answers occur


def test_a_match_in_a_later_subject_is_found():
    rx, gate = _gate(X, 3)
    buf = perlre.joined_buffer([b"name, x", b"city", b"name, city, phone and more"])
    assert gate.contains(buf) and rx.contains(buf)
    # the atom occurs three times, but not in one run: no match
    buf = perlre.joined_buffer([b"name, x city, y phone, z"])
    assert not gate.contains(buf) and not rx.contains(buf)


def test_gates_with_the_same_atom_share_one_scan():
    _rx, a = _gate(X, 3)
    _rx2, b = _gate(X, 2)
    assert a.scan is b.scan
    buf = perlre.joined_buffer([b"name, city, phone"])
    assert a.scan.ends(buf) is b.scan.ends(buf)        # scanned once for both


@pytest.mark.parametrize("x", [
    r"(?:name|city)(?=\s)\s",        # look-around
    r"(?:name|city)\s?",             # nothing required after the atom
    r"(?:name|city)+",               # a repeat, not a sequence
    r"^(?:name|city)\s",             # a line anchor
])
def test_no_atom_gate(x):
    rx = perlre.joined_re2(f"(?:{x}){{3}}", "i")[0]
    assert gateatom.atom_gate(x, "i", 3, rx) is None


NUMBERED_FAMILY = r"""
body  __N_LONG   /(?:[0-9][.)]\s?(?:name|age|phone)[\s,:]{0,3}(?:\((?:req|opt)\))?[\s,]+){3}/i
body  __N_SHORT  /(?:[0-9][.)]\s?(?:name|age|phone)[\s,:]{0,3}[\s,]+){2}/i
score __N_LONG   0.1
score __N_SHORT  0.1
"""
NUMBERED_BODIES = [
    b"hello world\n",
    b"1. name, 2. age 3) phone, and more\n",
    b"1. name (req), 2) AGE (opt), x\n",
    b"name age phone\n\n1.name 2.age\n",
    b"1. name\n\n2. age, 3. phone\n",
    b"9) phone 8) phone\n",
]


def test_scans_through_an_inexact_atom_gate_are_unchanged():
    from types import SimpleNamespace

    from postier.content.spam import conf as C
    from postier.content.spam import engine as E
    from postier.content.spam.scanner import SpamScanner

    sc = SpamScanner(rules=C.parse_text(NUMBERED_FAMILY, "rules.cf"), cache_dir=None)
    rules = sc.compiled.area_rules["body"]
    gates = E._family_gates(rules, SimpleNamespace(always=frozenset(range(len(rules)))))
    assert [(type(g).__name__, g.exact) for g, _m in gates] == [("AtomGate", False)]
    sc.compiled.__dict__["_line_gates"] = {"body": gates}
    plain = SpamScanner(rules=C.parse_text(NUMBERED_FAMILY, "rules.cf"), cache_dir=None)
    plain.compiled.__dict__["_line_gates"] = {"body": []}
    seen = set()
    for body in NUMBERED_BODIES:
        msg = b"From: a@example.com\nSubject: s\n\n" + body
        got = {n for n in sc.run(msg).values if n.startswith("__N")}
        assert got == {n for n in plain.run(msg).values if n.startswith("__N")}, body
        seen |= got
    assert seen == {"__N_LONG", "__N_SHORT"}


def test_atom_database_kept_in_the_cache_dir(tmp_path, monkeypatch):
    d = str(tmp_path)
    x = r"(?:zip|town|street)\s?(?:code|name)[\s:,]{1,5}"      # an atom of its own
    rx = perlre.joined_re2(f"(?:{x}){{2}}", "i")[0]
    gate = gateatom.atom_gate(x, "i", 2, rx, d)
    assert gate is not None
    files = [n for n in os.listdir(d) if n.startswith("spam-atomgate-")]
    assert files and any(open(os.path.join(d, n), "rb").read()[:1] == b"=" for n in files)
    # a new process (no shared scan yet) loads it: nothing compiled
    monkeypatch.setattr(gateatom, "_SCANS", {})
    monkeypatch.setattr(gateatom, "_compile", None)
    again = gateatom.atom_gate(x, "i", 2, rx, d)
    assert again is not None and again.scan is not gate.scan
    for buf in (perlre.joined_buffer([b"zip code: town name, x"]),
                perlre.joined_buffer([b"zip code: x town name"]), perlre.joined_buffer([b""])):
        assert again.contains(buf) == gate.contains(buf) == bool(rx.contains(buf))
    assert again.contains(perlre.joined_buffer([b"Zip Code: Street Name,"]))
