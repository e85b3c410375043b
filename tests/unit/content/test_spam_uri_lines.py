"""spamuri.uri_lines (both twins): it leaves out only lines in which the URI
prefilter of UriExtractor cannot hit, and the text URI search finds the same
URIs with and without it."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import uri as U

TLDS = ("com", "org", "net", "uk", "jp", "us", "info", "de", "xn--p1ai", "k", "s")


def _extractor() -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [])


def _lines(seed: int, n: int) -> list[bytes]:
    rnd = random.Random(seed)
    pieces = [b"@", b":", b".", b"w", b"W", b"www", b"ftp", b"FTP.", b"p", b"P", b"0", b"9",
              b"com", b"US", b"uk", b"k", b"s", b"\xe2\x84\xaa", b"\xc5\xbf", b"\x80", b"\xff",
              b" ", b"\x00", b"-", b"/", b"mailto", b"http", b"x", b"Z", b"\n", b"1"]
    out = []
    for _ in range(n):
        out.append(b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 10))))
        out.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 24))))
    return out


HAND = [b"", b"plain words only", b"a.b", b"end.", b".", b"x@", b"a:b", b"www.", b"WWW7.",
        b"ftp.", b"p.", b"9.", b"-.-", b".\x80", b".Com", b"foo .. bar", b"\x00.\x00",
        b"no dots or ats here, nor colons", b"x .5 y", b"x!.!y"]


def test_keeps_every_line_the_prefilter_hits(impl):
    su = impl("spamuri")
    ux = _extractor()
    assert ux.maybe is not None
    lines = HAND + _lines(1, 20000)
    kept = {id(x) for x in su.uri_lines(lines)}
    hits = [x for x in lines if ux.maybe.search(x) is not None]
    assert hits                                     # the sample does hit
    assert [x for x in hits if id(x) not in kept] == []
    assert len(kept) < len(lines)                   # and it does leave lines out


def test_hand_picked(impl):
    su = impl("spamuri")
    got = su.uri_lines(HAND)
    assert got == [b"a.b", b"x@", b"a:b", b"www.", b"WWW7.", b"ftp.", b"p.", b"9.", b".\x80",
                   b".Com"]


def test_twins_agree_and_keep_order():
    from postier._pure import spamuri as pure
    try:
        from postier._native import spamuri as native
    except ImportError:
        pytest.skip("native spamuri not built")
    lines = _lines(2, 20000) + [bytearray(b"abc"), b"x"]
    a = native.uri_lines(lines)
    assert [id(x) for x in a] == [id(x) for x in pure.uri_lines(lines)]
    assert bytearray(b"abc") in a                   # anything but bytes is kept


def test_same_uris_with_and_without(impl, monkeypatch):
    su = impl("spamuri")
    monkeypatch.setattr(U, "_uri_lines", su.uri_lines)
    lines = _lines(3, 3000) + [b"see http://example.com/x and www.foo.org, mail bob@x.de",
                               b"visit shop.co.uk today", b"FTP.example.net:21", b"a.US b"]
    with_f = _extractor()
    assert with_f.lines_filter is not None
    without = _extractor()
    without.lines_filter = None
    a = [m.groups() for m in with_f._matches(lines)]
    assert a == [m.groups() for m in without._matches(lines)]
    assert ("http://example.com/x", None, None, None) in a


def test_filter_off_when_a_tld_starts_otherwise():
    rb = U.Registry({"com", "1x"}, set(), set())
    assert U.UriExtractor(rb, []).lines_filter is None


# ------------------------------------------------------- redirector literal gate

REDIRECTORS = [
    r"/^http:\/\/chkpt\.zdnet\.com\/chkpt\/\w+\/(.*)$/i",
    r"/^http:\/\/www(?:\d+)?\.nate\.com\/r\/\w+\/(.*)$/i",
    r"m'/(?:index.php)?\?.*(?<=[?&])URL=(.*?)(?:$|[&\#])'i",
    r"m'^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i",
    r"m'^https?/*(?:\w+\.)?facebook\.com/l/;(.*)'i",
    r"m'^h(?:x|y)+ZedAbc/(.*)'",                  # case-sensitive: its literal lowercased
]


def _redirect_extractor() -> U.UriExtractor:
    from postier.content.spam import perlre
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(r) for r in REDIRECTORS])


def test_required_literals_of_the_redirectors():
    ux = _redirect_extractor()
    if ux.redirector_set is None:
        pytest.skip("no pattern set (Hyperscan missing)")
    assert ux.redirector_set.postier_literals == (
        b"http://chkpt.zdnet.com/chkpt/", b".nate.com/r/", b"url=", b"google",
        b"facebook.com/l/;", b"zedabc/")


def test_required_literal_edge_cases():
    assert U._required_literal(rb"ab") is None                    # too short
    assert U._required_literal(rb"(?:abc|abd)x") is None           # alternation: none
    assert U._required_literal(rb"x(?:abcd)?y") is None            # optional group
    assert U._required_literal(rb"[Aa][Bb][Cc][Dd]+e") == b"abc"   # a run ends at a repeat
    assert U._required_literal(rb"(?:q[Rr]st)+") == b"qrst"        # repeat taken at least once
    assert U._required_literal(rb"\x2f[^\x0a]*\xe9\xe9\xe9") == b"\xe9\xe9\xe9"
    assert U._required_literal(rb"(unbalanced") is None            # parse error: none


def test_redirect_same_with_and_without_the_gate(impl, monkeypatch):
    su = impl("spamuri")
    monkeypatch.setattr(U, "_any_in", su.any_in)
    ux = _redirect_extractor()
    if ux.redirector_set is None:
        pytest.skip("no pattern set (Hyperscan missing)")
    lits = ux.redirector_set.postier_literals
    rnd = random.Random(11)
    toks = ["http://", "https://", "google", "GOOGLE", "GooGle", ".com", ".co.uk", "/url?", "q=",
            "&", "URL=", "uRl=", "x.y", "/", "?", "www7.", "nate", "/r/", "chkpt.zdnet.com/chkpt/",
            "facebook.com/l/;", "hxZedAbc/", "hyZEDABC/", "zedabc/", "a", "\xe9"]
    targets = ["".join(rnd.choice(toks) for _ in range(rnd.randint(1, 10))) for _ in range(4000)]
    targets += ["http://www.google.com/url?q=http://evil.example.com/", "http://x/?URL=y.com",
                "https://facebook.com/l/;x.com", "hxyZedAbc/y.com"]
    found = 0
    for t in targets:
        a: list = []
        b: list = []
        got = U._redirect(ux.redirectors, ux.redirector_set, t, a)
        ux.redirector_set.postier_literals = None
        want = U._redirect(ux.redirectors, ux.redirector_set, t, b)
        ux.redirector_set.postier_literals = lits
        assert (got, a) == (want, b), t
        found += got
    assert found >= 4


def test_any_in(impl):
    su = impl("spamuri")
    assert su.any_in(b"HTTP://WWW.GOOGLE.COM", (b"nope", b"google"))
    assert not su.any_in(b"HTTP://WWW.GOOGLE.COM", (b"nope", b"googlex"))
    assert su.any_in(b"x" * 3000 + b"URL=", (b"url=",))             # past the stack buffer
    assert not su.any_in(b"", (b"a",))
    assert su.any_in(b"", (b"",))
    assert not su.any_in(b"\xc9", (b"\xe9",))                        # ASCII letters only
    with pytest.raises(TypeError):
        su.any_in(b"abc", ("a",))


# ------------------------------------------------------- the compiled prefilter

PF_PIECES = [b"www", b"WwW", b"1", b"12", b"123", b".", b"ftp", b"FTP", b"://", b":/", b":", b"http",
             b"HTTPS", b"s", b"mailto", b"MAILTO:", b"@", b".com", b".CoM", b".c", b".uk", b".Xn--P1ai",
             b".k", b"x", b" ", b"\xc9", b"\x00", b"-", b"\xe2\x84\xaa", b"\xc5\xbf", b"de", b"us"]


def _pf_lines(seed: int, n: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [b"".join(rnd.choice(PF_PIECES) for _ in range(rnd.randint(0, 14))) for _ in range(n)]


def test_prefilter_is_the_prefilter_regex(impl):
    """UriPrefilter.search(line, pos) == self.maybe.search(line, pos).start()
    (-1 for none) at every position of generated lines."""
    su = impl("spamuri")
    ux = _extractor()
    if ux.maybe is None:
        pytest.skip("no RE2 to compare with")
    pf = su.UriPrefilter(TLDS)
    hits = 0
    for line in _pf_lines(4, 3000) + HAND:
        for pos in range(-1, len(line) + 2):
            t = ux.maybe.search(line, max(pos, 0)) if pos <= len(line) else None
            want = -1 if t is None else t.start()
            assert pf.search(line, pos) == want, (line, pos)
            hits += want >= 0
    assert hits > 1000


def test_prefilter_long_runs_and_nuls_match_the_twin(impl):
    """The compiled scan skips to the next ".", "@" or ":" many bytes at a
    time (strcspn, which a NUL stops): long runs without them, NULs inside
    and around them, 8-bit bytes and a huge line give the pure twin's hits."""
    from postier._pure import spamuri as pure
    su = impl("spamuri")
    pf, want = su.UriPrefilter(TLDS), pure.UriPrefilter(TLDS)
    rnd = random.Random(11)
    fill = [b"x" * 40, b"\x00" * 17, b"\x00", b"\xff" * 33, b"ab\x00cd" * 9, b" " * 70, b"\x80.\x00@"]
    lines = [b"".join(rnd.choice(fill + PF_PIECES) for _ in range(rnd.randint(0, 30))) for _ in range(600)]
    lines += [b"\x00" * 100 + b".com", b"x" * 100 + b"\x00", b"\x00" * 64, b"a\x00b.com\x00"]
    for line in lines:
        for pos in sorted({0, 1, len(line) // 2, len(line) - 1, len(line), len(line) + 3,
                           rnd.randrange(len(line) + 1)}):
            assert pf.search(line, pos) == want.search(line, pos), (line, pos)
    huge = (b"\x00" + b"y" * 999) * 1000 + b" www.x"
    assert pf.search(huge) == len(huge) - 5
    assert pf.search(bytearray(huge), 10) == len(huge) - 5
    assert pf.search(huge[:-6] + b"\x00.k") == len(huge) - 5


def test_prefilter_hand_picked(impl):
    pf = impl("spamuri").UriPrefilter(TLDS)
    assert pf.search(b"see WWW12.x") == 4
    assert pf.search(b"www123.x") == -1            # at most two digits
    assert pf.search(b"www123.com") == 6           # ... but .com is a TLD
    assert pf.search(b"HttpS://") == 0
    assert pf.search(b"xmailto:") == 1
    assert pf.search(b"ftp:/x") == -1
    assert pf.search(b"a.Info") == 1
    assert pf.search(b"a.inf") == -1
    assert pf.search(b"a.k") == 1                  # a one-letter TLD
    assert pf.search(b"x@y", 2) == -1
    assert pf.search(b"https://", 1) == -1         # a hit must start at or after pos
    assert pf.search(b"ab.comx", 3) == -1
    assert pf.search(b"", 0) == -1
    assert impl("spamuri").UriPrefilter([]).search(b"a.com@") == 5


def test_extractor_without_ascii_tlds_uses_the_regex():
    rb = U.Registry({"com", "\xe9t"}, set(), set())
    ux = U.UriExtractor(rb, [])
    if ux.maybe is None:
        pytest.skip("no RE2")
    assert ux.hit(b"go to www.x.com", 0) == 6
    assert [m.group(0) for m in ux._matches([b"go to www.x.com"])] == ["www.x.com"]
