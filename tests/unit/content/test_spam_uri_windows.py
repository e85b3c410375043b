"""UriExtractor._matches with a long rest of line: the match is looked for
in the windows the pre-filter's hits give (_window_match) instead of one
re.search to the end of the line; the matches are finditer's, whichever
way (_LONG_REST 0: always windows; huge: always re.search)."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = ("com", "org", "net", "uk", "de", "info", "sm", "co")

PIECES = [b"a", b"b", b".", b":", b"/", b"@", b" ", b"w", b"com", b"http://", b"https://", b"www.",
          b"www2.", b"\xe9", b"<", b">", b"\"", b"-", b"_", b"1", b"'", b"\x1b(", b"\x1b(B",
          b"mailto:", b".de", b"(", b")", b"ftp.", b"?", b"#", b"|", b"x" * 150, b"\xa0",
          b"\t", b"`", b",", b"{", b"[", b".sm", b"ith", b"\n", b"\r", b"ESMTP", b"%20"]

LONG = [b"word " * 200 + b"http://x.example.com/a " + b"zz" * 300 + b" a@b.de",
        b"." * 1500 + b"com",
        (b"y" * 250 + b"@") * 8 + b"x@example.org",
        b"no hit here " * 100 + b"john.smith@example.co.uk, " * 3,
        b"\x1b(Bwww.example.com" + b" filler" * 100 + b"'foo.com' `bar.net`",
        b"see " + b"a" * 300 + b".com and " + b"b" * 260 + b"@host.info" + b" tail" * 50]


def _extractor() -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(r"m'^https?:/*(?:\w+\.)?google\.com/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i")])


def _lines():
    rnd = random.Random(7)
    out = list(LONG)
    for _ in range(1500):
        n = rnd.choice([10, 60, 250])
        out.append(b"".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, n))))
    return out


@pytest.mark.parametrize("rest", [0, 128, 10 ** 9], ids=["windows", "default", "search"])
def test_matches_are_finditer(monkeypatch, rest):
    ux = _extractor()
    if ux.maybe is None:
        pytest.skip("no RE2: _matches runs finditer itself")
    monkeypatch.setattr(U, "_LONG_REST", rest)
    found = 0
    for line in _lines():
        want = [(m.span(), m.groups()) for m in ux.re.finditer(line.decode("latin-1"))]
        got = [(m.span(), m.groups()) for m in ux._matches([line])]
        assert got == want, line
        found += len(want)
    assert found > 500                       # the lines do hold URIs


def test_window_match_is_search_from_pos():
    ux = _extractor()
    if ux.maybe is None:
        pytest.skip("no RE2")
    hits = 0
    for line in LONG:
        s = line.decode("latin-1")
        t = ux.maybe.search(line)
        pos = U._match_start(s, max(0, t.start() - U._BEFORE_HIT), t.start())
        m = ux._window_match(s, line, pos, t.start())
        want = ux.re.search(s, pos)
        assert (m is None) == (want is None), line
        if m is not None:
            assert (m.span(), m.groups()) == (want.span(), want.groups())
            hits += 1
    assert hits == len(LONG) - 1              # all but the dots with no host before them
    # no match anywhere after the hit: None, as re.search gives
    line = b"x" * 400 + b"@" + b" " * 300
    s = line.decode("latin-1")
    h = line.index(b"@")
    assert ux.re.search(s, 150) is None
    assert ux._window_match(s, line, U._match_start(s, 150, h), h) is None
