"""Hyperscan union gates (postier.content.spam.gatehs): the Hyperscan form
of a big RE2 gate pattern (cut into pieces at its alternations) must give
the RE2 answer on every ASCII joined buffer; its database is kept in the
cache directory (a damaged file is made again, a refusal remembered);
patterns with look-arounds or other anchors get no Hyperscan form."""

from __future__ import annotations

import os
import random
from itertools import pairwise

import pytest
import re2

from postier.content.spam import gatehs, perlre

_FUZZ = {"o": "[Oo0]", "i": "[Ii1l|!]", "e": "[Ee3]", "a": "[Aa4@]", "s": "[Ss5$]"}


def _fuzzy(word: str) -> str:
    return "".join(_FUZZ.get(c, "[" + c.upper() + c + "]") for c in word)


def _words(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choice("abcdefghilmnoprstuwy") for _ in range(rnd.randint(4, 9)))
            for _ in range(count)]


WORDS = _words(7, 700)
# a fuzzy-word union as engine._line_gates makes them: big enough to be cut
PATTERN = ("(?:\\x00|[\\x09-\\x0d\\x20])(?:your|my)\\s(?:"
           + "|".join(_fuzzy(w) + r"(?:\s" + _fuzzy(v) + ")?" for w, v in pairwise(WORDS))
           + ")\\b").encode()


def _buffers(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    vocab = WORDS[:80] + ["your", "my", "Your", "MY", "y0ur", "m", "yours", "the", "1", "!"]
    out = []
    for _ in range(count):
        subjects = []
        for _s in range(rnd.randint(1, 3)):
            ws = [rnd.choice(vocab) for _w in range(rnd.randint(0, 10))]
            if rnd.random() < 0.3:      # a fuzzy spelling
                ws = [w.replace("o", "0").replace("i", "1").upper() if rnd.random() < 0.5 else w
                      for w in ws]
            subjects.append(rnd.choice([" ", "\t", "  ", "_", ""]).join(ws).encode())
        out.append(perlre.joined_buffer(subjects))
    return out


@pytest.mark.slow
def test_same_answers_as_re2_on_ascii_buffers(tmp_path):
    rx = re2._compile(PATTERN, 0, 256 << 20)
    gate = gatehs.hs_gate(PATTERN, str(tmp_path))
    assert gate is not None and gate.pattern == PATTERN
    assert len(gatehs._exprs(PATTERN)) > 1      # cut into pieces
    bufs = _buffers(1, 3000) + [perlre.joined_buffer([s]) for s in (
        b"", b"your", b"your " + WORDS[0].encode(), b"my " + WORDS[5].upper().encode() + b"!",
        b"xyour " + WORDS[0].encode(), b"your " + WORDS[0].encode() + b"x",
        b"your\n" + WORDS[3].encode() + b" " + WORDS[4].encode())]
    got = [gate.contains(b) for b in bufs]
    assert got == [bool(rx.contains(b)) for b in bufs]
    assert any(got) and not all(got)        # both answers occur


@pytest.mark.slow
def test_database_kept_in_the_cache_dir(tmp_path):
    d = str(tmp_path)
    gatehs.hs_gate(PATTERN, d)
    names = [n for n in os.listdir(d) if n.startswith("spam-asciigatehs-")]
    assert len(names) == 1
    path = os.path.join(d, names[0])
    blob = open(path, "rb").read()
    assert blob[:1] == b"="
    # loaded from the file: nothing compiled
    orig = gatehs._compile
    gatehs._compile = None
    try:
        again = gatehs.hs_gate(PATTERN, d)
    finally:
        gatehs._compile = orig
    buf = perlre.joined_buffer([b"my " + WORDS[2].encode()])
    assert again is not None and again.contains(buf)
    # a damaged file is made again
    with open(path, "wb") as f:
        f.write(blob[:-100] + b"x" * 100)
    third = gatehs.hs_gate(PATTERN, d)
    assert third is not None and third.contains(buf)
    assert open(path, "rb").read() == blob


def test_refused_patterns(tmp_path):
    d = str(tmp_path)
    for p in (b"(?=abc)abc", b"^abc", b"abc$", b"(a)\\1", b"(?P<x"):
        assert gatehs.hs_gate(p, d) is None, p
    assert gatehs.hs_gate(b"abc", None) is not None
    refused = [n for n in os.listdir(d) if n.startswith("spam-asciigatehs-")]
    assert refused and all(open(os.path.join(d, n), "rb").read() == b"-" for n in refused)


# look-alikes: Latin-1 and UTF-8 o-umlaut for o, a Cyrillic a for a
_WIDE = {"o": "(?:[Oo0\\xf6]|\\xc3\\xb6)", "a": "(?:[Aa4]|\\xd0\\xb0)"}
WIDE = ("(?:\\x00|[\\x09-\\x0d\\x20])(?:your|my)\\s(?:"
        + "|".join("".join(_WIDE.get(c, "[" + c.upper() + c + "]") for c in w) for w in WORDS[:300])
        + ")\\b").encode()


def test_mixed_gate_same_answers_as_re2_on_any_buffer(tmp_path):
    from postier.content.spam.asciire import ascii_only

    rx = re2._compile(WIDE, 0, 256 << 20)
    restricted = ascii_only(WIDE)
    assert restricted is not None and b"\\xd0" not in restricted
    hg = gatehs.hs_gate(restricted, str(tmp_path))
    assert hg is not None
    gate = gatehs.MixedGate(hg, rx)
    assert gate.pattern == WIDE
    words = [w.encode() for w in WORDS[:60]]
    wide = [w.replace(b"o", b"\xc3\xb6").replace(b"a", b"\xd0\xb0") for w in words]
    latin = [w.replace(b"o", b"\xf6") for w in words]
    rnd = random.Random(3)
    bufs = []
    for _ in range(2000):
        subjects = []
        for _s in range(rnd.randint(1, 4)):
            vocab = rnd.choice([words, wide, latin, words + wide])
            ws = [rnd.choice(vocab + [b"your", b"my", b"\xe9t\xe9", b"\xff"])
                  for _w in range(rnd.randint(0, 8))]
            subjects.append(b" ".join(ws))
        bufs.append(perlre.joined_buffer(subjects))
    got = [gate.contains(b) for b in bufs]
    assert got == [bool(rx.contains(b)) for b in bufs]
    # matches found by each side: the Hyperscan form, RE2 on non-ASCII subjects
    assert any(g and hg.contains(b) for g, b in zip(got, bufs, strict=True))
    assert any(g and not hg.contains(b) for g, b in zip(got, bufs, strict=True))
    assert not all(got)
