"""Run._templates' superset test (engine._template_superset): a %{TAG} rule
whose tags are all required is first searched with every tag replaced by
(?s:.+), compiled once per rule set; a message none of whose subjects that
form matches skips compiling the rule for its values.  The answers must be
the ones of the rule itself: every subject the rule matches for some
values, the superset matches; unsafe shapes get no superset."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

SAFE = [
    r"^https?://.{10,128}(?:\.html?|\.php|\/)?(?:\#|\?&e=)%{T}",
    r"^https?://.{10,256}(?:\/\?)?(?:(?<!blocker)email=|audit\#|wapp\#)%{T}",
    r"^https?://.{10,64}\=https?://.{4,64}\#%{T}",
    r"(?>a+)b%{T}",                         # atomic group before the tag
    r"(a|ab)%{T}\1?c",                      # a back-reference after it
    r"\b%{T}\b",
    r"x%{T}y%{U}z",
    r"^%{T}$",
    r"(?=.*q)%{T}",
    r"%{T}(?<=b)",
    r"a*?%{T}a*+",
]
UNSAFE = [
    r"(?:%{T})",                            # inside a group
    r"[%{T}]",                              # inside a class
    r"a|%{T}",                              # top-level alternation
    r"%{T}?b",                              # optional
    r"%{T}*b",
    r"%{T}{1,2}b",
    r"%{T}++b",                             # possessive
    r"%{T}+b",
    r"(*COMMIT)a%{T}",                      # a backtracking verb
    r"(?R)?a%{T}",                          # recursion
    r"\Qa%{T}\E",                           # quoted
    r"(?x) a %{T}",                         # extended mode
    r"ab",                                  # no tag
]


def _superset(pat: str, mods: str = ""):
    return E._template_superset(pat, mods, E._required_templates(pat))


@pytest.mark.parametrize("pat", SAFE)
def test_safe_shapes_get_a_superset(pat):
    assert _superset(pat) is not None


@pytest.mark.parametrize("pat", UNSAFE)
def test_unsafe_shapes_get_none(pat):
    assert _superset(pat) is None


def test_extended_mode_gets_none():
    assert _superset(r"a%{T}", "x") is None
    assert _superset(r"a%{T}", "i") is not None


def _exact(pat: str, mods: str, vals: dict[str, list[str]]):
    return E.Run._template_pattern({}, ("k",), pat, mods, vals)


def test_superset_matches_wherever_the_rule_does():
    """Random values and subjects (made of the values' pieces, so the
    rules often match): never a subject the rule matches that the superset
    form misses, and the superset does rule subjects out."""
    rnd = random.Random(7)
    alphabet = ["a", "b", "ab", "q", "x", "y", "z", "c", "#", "=", "/", ".", "email=",
                "blocker", "http://", "https://", "h.example.com", "\n", " ", "A", "B"]
    checked = ruled_out = 0
    for pat in SAFE:
        for mods in ("", "i", "m", "s"):
            sup = _superset(pat, mods)
            assert sup is not None
            for _ in range(60):
                vals = {t: ["".join(rnd.choice(alphabet[:8]) for _ in range(rnd.randint(1, 3)))
                            for _ in range(rnd.randint(1, 2))] for t in ("T", "U")}
                exact = _exact(pat, mods, vals)
                assert exact is not False
                for _ in range(6):
                    pieces = alphabet + vals["T"] + vals["U"]
                    subj = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
                    data = subj.encode("latin-1")
                    got = bool(exact.search(data))
                    sup_says = E._superset_matches(sup, [data])
                    checked += 1
                    ruled_out += not sup_says
                    assert sup_says or not got, (pat, mods, vals, subj)
    assert checked > 10000 and ruled_out > 1000


RULES = r"""
util_rb_tld           org net com
header __TO_CAP       To:addr =~ /(?<TO_ADDR>.+)/
uri    U_HASH         m;^https?://.{10,128}(?:\.html?|\.php|\/)?(?:\#|\?&e=)%{TO_ADDR};i
uri    U_EMAIL        m;^https?://.{10,256}(?:\/\?)?(?:(?<!blocker)email=|audit\#|wapp\#)%{TO_ADDR};i
uri    U_MULTI        /[?&]to=%{TO_ADDR}/i
tflags U_MULTI        multiple
header H_NEG          X-A !~ /^%{TO_ADDR}$/
header H_POS          X-A =~ /^%{TO_ADDR}$/
score  __TO_CAP 0.01
score  U_HASH 1
score  U_EMAIL 1
score  U_MULTI 1
score  H_NEG 1
score  H_POS 1
"""


def _messages(rnd: random.Random) -> list[bytes]:
    tos = [b"bob@example.net", b"Eve.X@example.org", b"a+b@example.com"]
    paths = [b"http://www.example.org/p/q.html#", b"https://t.example.com/x/?email=",
             b"https://t.example.com/x/?blockeremail=", b"http://s.example.net/?to=",
             b"http://s.example.net/page.php?&e=", b"https://short.example/#",
             b"mailto:", b"http://www.example.org/audit#"]
    out = []
    for _ in range(120):
        to = rnd.choice(tos)
        uris = b" ".join(rnd.choice(paths) + rnd.choice([to, to.upper(), rnd.choice(tos), b"x"])
                         for _ in range(rnd.randint(0, 4)))
        xa = rnd.choice([to, b"other@example.com", b" " + to])
        out.append(b"From: a@example.com\nTo: <" + to + b">\nX-A: " + xa
                   + b"\nSubject: s\nContent-Type: text/plain\n\nsee " + uris + b"\n")
    return out


def test_scan_answers_as_without_the_superset(monkeypatch):
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    msgs = _messages(random.Random(3))
    names = ("U_HASH", "U_EMAIL", "U_MULTI", "H_NEG", "H_POS")
    calls = {"ruled_out": 0, "n": 0}
    real = E._superset_matches

    def counted(sup, subjects):
        calls["n"] += 1
        got = real(sup, subjects)
        calls["ruled_out"] += not got
        return got

    monkeypatch.setattr(E, "_superset_matches", counted)
    sc = SpamScanner(rules=rs, cache_dir=None)
    with_sup = [{n: v for n, v in sc.run(m).values.items() if n in names} for m in msgs]
    assert calls["ruled_out"] > 20 and calls["n"] > calls["ruled_out"]
    monkeypatch.setattr(E, "_template_superset", lambda pat, mods, required: None)
    seen = calls["n"]
    plain = SpamScanner(rules=C.parse_text(RULES, "rules.cf"), cache_dir=None)
    without = [{n: v for n, v in plain.run(m).values.items() if n in names} for m in msgs]
    assert calls["n"] == seen               # (no superset test in this scanner)
    assert with_sup == without
    hit = {n for v in with_sup for n in v}
    # every kind of answer is exercised (H_NEG, negated, has no superset
    # form; it never hits here: the value is in X-A or in no subject)
    assert hit == set(names) - {"H_NEG"}
