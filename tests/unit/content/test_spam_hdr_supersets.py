"""Header-side speed shortcuts of the spam engine give the general code's answers:

- a header rule that libpcre2 or RE2 confirms by itself (CompiledRules.
  header_info's fast item) runs without its RE2 superset (rr.pre), and
  still hits exactly where its pattern matches;
- Run._template_possible's bytes path (all values ASCII) selects the same
  subjects as the decoded-text path it stands in for.
"""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam.engine import Run
from postier.content.spam.scanner import SpamScanner
from postier.maps import reflib

RULES = r"""
header   H_BACK     Subject =~ /(\w)\1\1/
score    H_BACK     1
header   H_LOOK     From =~ /^(?!mail)\w+\@(\w+)\.\1\b/i
score    H_LOOK     1
header   H_PLAIN    Subject =~ /cheap\s+pills/i
score    H_PLAIN    1
header   H_NEG_BACK To !~ /(\w\w)\1/
score    H_NEG_BACK 1
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _msg(frm: bytes, to: bytes, subject: bytes) -> bytes:
    return b"From: " + frm + b"\nTo: " + to + b"\nSubject: " + subject + b"\n\nhello\n"


@pytest.mark.skipif(not reflib.pcre2_available(), reason="libpcre2-8 not available")
def test_fast_confirmed_rules_have_no_superset(sc):
    cr = sc.compiled
    fast = {info[0]: info[6] for info in cr.header_info}
    assert fast["H_BACK"] is not None and fast["H_LOOK"] is not None
    for info in cr.header_info:
        if info[6] is not None:
            assert info[5].pre is None, info[0]


@pytest.mark.parametrize("frm,to,subject,want", [
    (b"joe@abc.abc", b"x@y.z", b"zzz top", {"H_BACK", "H_LOOK", "H_NEG_BACK"}),
    (b"mail@abc.abc", b"abab@y.z", b"cheap  PILLS", {"H_PLAIN"}),
    (b"joe@abc.abd", b"q@r.s", b"no triple", {"H_NEG_BACK"}),
    (b"Joe@XY.xy", b"xyxy", b"a\x00aaa\xff", {"H_BACK", "H_LOOK"}),
])
def test_rules_hit_where_their_patterns_match(sc, frm, to, subject, want):
    got = {n for n in sc.run(_msg(frm, to, subject)).values if n.startswith("H_")}
    assert got == want


def _possible_decoded(required, fold, subjects, values):
    """The decoded-text algorithm _template_possible's bytes path stands in for."""
    need = tuple(tuple(v.lower() for v in values.get(t, ())) if fold else tuple(values.get(t, ()))
                 for t in required)
    texts = [s.decode("latin-1") for s in subjects]
    if fold:
        texts = [t.lower() for t in texts]
    joined = "\n".join(texts)
    if not all(any(v in joined for v in vals) for vals in need):
        return []
    return [s for s, t in zip(subjects, texts, strict=True)
            if all(any(v in t for v in vals) for vals in need)]


_SUBJECTS = [b"http://a.example/?to=Bob@Example.NET", b"mailto:EVE@x.org", b"\xc9VE@x.org caf\xe9",
             b"plain", b"", b"bob@example.net\nsecond", b"A\x00B eve@x.org"]


@pytest.mark.parametrize("values", [
    {"T": ["bob@example.net"]}, {"T": ["eve@x.org", "nobody@x"]}, {"T": ["\xe9ve@x.org"]},
    {"T": ["\xc9VE@x.org"]}, {"T": ["CAF\xc9"]}, {"T": ["zzz"]}, {"T": ["bob"], "U": ["second"]},
    {"T": ["bob"], "U": ["x.org"]}, {"T": ["\u212a"]}, {"T": ["\n"]},
])
@pytest.mark.parametrize("fold", [True, False])
def test_template_possible_bytes_path_selects_the_same_subjects(values, fold):
    required = tuple(sorted(values))
    texts: dict = {}
    got = Run._template_possible(required, fold, _SUBJECTS, values, texts)
    assert got == _possible_decoded(required, fold, _SUBJECTS, values)
    # a second rule with the same values: the cached answer
    assert Run._template_possible(required, fold, _SUBJECTS, values, texts) is got


# ---------------------------------------------------------------- fast_addresses

def _invalid(host: str) -> bool:
    return host.endswith("x")


@pytest.mark.parametrize("s,want", [
    ("a@b.c", [("a", "b.c", None)]),
    (" \t<x_y+z@mail.example.co.uk>  \n", [("x_y+z", "mail.example.co.uk", None)]),
    ('"John Smith" \t<js@example.x>', [("js", "example.x", "John Smith \t")]),
    ("John Q. Public <jqp@example.com>", [("jqp", "example.com", "John Q. Public ")]),
    ('"" <a@b.c>', [("a", "b.c", " ")]),       # the quotes' text and the blanks after
    ('"a@b.c"<a@b.c>', [("a", "b.c", None)]),
    ("a@b.c, <d@e.f>, Ann <g@h.i> , j@k.l",
     [("a", "b.c", None), ("d", "e.f", None), ("g", "h.i", "Ann "), ("j", "k.l", None)]),
    ("caf\xe9@example.com", [("caf\xe9", "example.com", None)]),
    ("a@b.c (comment)", None), ("Group: a@b.c;", None), ('"J\\"o" <a@b.c>', None),
    ("<a@b.c> <d@e.f>", None), ("<a@b.c>,<d@e.f>", None), ("a@b.c,d@e.f", None),
    ('"x, y" <a@b.c>, d@e.f', None), ("a@caf\xe9.com", None), ("", None), ("  ", None),
    ("<>", None), ("a@", None), ("@b.c", None), ("a@b.c>", None), ("Ann\r <a@b.c>", None),
    ('"A\nB" <a@b.c>', None), ("a\x0bb@c.d", None), ("x\x1cy@c.d", [("x\x1cy", "c.d", None)]),
])
def test_fast_addresses(impl, s, want):
    got = impl("spamhdr").fast_addresses(s, _invalid)
    if want is None:
        assert got is None
        return
    assert [(a["user"], a["host"], a["phrase"]) for a in got] == want
    for a in got:
        assert a["address"] == a["user"] + "@" + a["host"] and a["comment"] is None
        assert a["invalid"] == a["host"].endswith("x")


def test_fast_addresses_twins_agree(impl):
    import random

    from postier._pure import spamhdr as pure
    rnd = random.Random(11)
    alphabet = list('ab@.<>"(),:;\\ \t\r\n\x0b\x0c\x1c\xe9\x00-_[]Z9\u212a') + ["a@b.c", ", "]
    seeds = ['"J S" <j@x.y>', "John Q <j@x.y>", " <a@b.c> ", "a@b.c, d@e.f", '"" <a@b.c>']
    cases = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(4000)]
    for sd in seeds:
        for _ in range(2000):
            t = list(sd)
            pos = rnd.randint(0, len(t) - 1)
            t[pos:pos + rnd.randint(0, 1)] = rnd.choice(alphabet)
            cases.append("".join(t))
    fast = impl("spamhdr").fast_addresses
    shaped = 0
    for s in cases:
        want = pure.fast_addresses(s, _invalid)
        assert fast(s, _invalid) == want, s
        shaped += want is not None
    assert shaped > 500          # the mutations keep many values in the fast shapes
