"""spamuri.UriMatcher (both twins): the matches of UriExtractor's linkified-URI
pattern (PerMsgStatus::_tbirdurire), their groups and lengths, exactly as
re.finditer over each line finds them -- on random lines, on the edges of
its counted repetitions (2048-character tails, 251-character mailboxes and
hosts, 5-digit ports), on bad input (NULs, non-UTF-8 bytes, huge lines)
-- and UriExtractor.text_uris gives the same list with it as with the
regex."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import uri as U

TLDS = ("com", "org", "net", "uk", "jp", "us", "info", "de", "xn--p1ai", "k", "s", "co", "c0m")

PIECES = [b"a", b"Z", b".", b":", b"/", b"@", b" ", b"w", b"W", b"com", b"COM", b"http://", b"HTTPS://",
          b"https:", b"www.", b"www2.", b"WWW123.", b"\xe9", b"<", b">", b"\"", b"-", b"_", b"1", b"9",
          b"'", b"\x1b(", b"\x1b(B", b"mailto:", b"MailTo:", b".de", b".co", b".c0m", b"(", b")", b"ftp.",
          b"ftp://", b"?", b"#", b"|", b"x" * 150, b"\xa0", b"\t", b"`", b",", b"{", b"[", b"}", b"]",
          b".sm", b".k", b".s", b".xn--p1ai", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x00", b"%20",
          b":80", b":65535", b":123456", b"!", b"&", b"*", b"=", b";", b"\\", b"^", b"~", b"$", b"+"]


def _edge_lines() -> list[bytes]:
    out = []
    for n in (2046, 2047, 2048, 2049, 2050):
        tail = b"y" * n
        out += [b"http://" + tail, b"see www." + tail + b" x", b"mailto:" + tail + b",",
                b"a.com/" + tail, b"a.com/" + tail + b"z", b"(ftp." + tail + b")"]
    for n in (249, 250, 251, 252, 253):
        box = b"m" * n
        out += [box + b"@host.com", b" " + box + b"@" + box, b"x@" + box + b" end",
                b" " + box + b".com", b"a" + b".b" * (n // 2) + b".com:80/p", box + b"." + box + b".de"]
    for port in (b"", b":", b":1", b":12345", b":123456", b":80x", b":80/", b":80.", b":8_"):
        out += [b"go example.com" + port, b"go example.com." + port + b" x", b"go example.com" + port + b"/path q"]
    out += [b"\x1b(Bwww.example.com", b"\x1b(Jexample.com", b"x\x1b(\xe9a@b.de", b"foo.com.au.x",
            b"foo.com.de", b"foo.com.-x", b"foo.com..de", b"a.b.c.d.e.f.g.co", b"_x.com", b"-x.com",
            b"x-.com", b"1.2.3.4.com", b"\xa0www.x.com\xa0", b"mailto:", b"mailto:@", b"@x.com",
            b"x@", b"https://", b"http:/x.com", b"WwW.X.CoM", b"ftp.\x00x", b"a@b@c.com",
            b"\x00mailto:a@b.com\x00", b"'x.com'", b"[x.com]", b"<x@y.com>", b"x.co.uk.", b""]
    # huge lines: few hits, many hits, one hit at the end
    out += [b"word " * 4000 + b"http://x.example.com/a",
            (b"a.com b@c.de " * 1500),
            b"." * 20000 + b"com",
            (b"y" * 250 + b"@") * 60 + b"x@example.org",
            bytes(range(256)) * 40]
    return out


def _random_lines(seed: int, n: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.choice([5, 20, 80])
        out.append(b"".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, k))))
    for _ in range(n // 4):
        out.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40))))
    return out


def _reference() -> U.UriExtractor:
    return U.UriExtractor(U.Registry(set(TLDS), {"co.uk"}, set()), [])


def _want(ux: U.UriExtractor, line: bytes) -> list:
    return [(m.groups(), m.end() - m.start()) for m in ux.re.finditer(line.decode("latin-1"))]


def test_matches_are_finditer(impl):
    su = impl("spamuri")
    ux = _reference()
    matcher = su.UriMatcher(TLDS)
    lines = _edge_lines() + _random_lines(11, 3000)
    found = 0
    for line in lines:
        want = _want(ux, line)
        assert matcher.matches([line]) == want, line[:200]
        found += len(want)
    assert found > 3000                      # the lines do hold URIs
    # several lines at once: their matches in order
    assert matcher.matches(lines[:400]) == [w for line in lines[:400] for w in _want(ux, line)]


def test_groups_of_each_form(impl):
    m = impl("spamuri").UriMatcher(TLDS)
    got = m.matches([b"see http://Example.com/x, or mail a.b@c.de; www2.foo.org:80 or bar.co.uk:8080/p."])
    assert got == [(("http://Example.com/x,", None, None, None), 21),
                   ((None, "a.b@c.de;", None, None), 9),
                   (("www2.foo.org:80", None, None, None), 15),
                   ((None, None, "bar.co.uk:8080/p.", "bar.co.uk"), 17)]
    assert m.matches([b"no uri here", b"x.notatld y"]) == []


def test_bad_tld_is_value_error(impl):
    su = impl("spamuri")
    for bad in (["com", "no_tlds_defined"], ["1x"], [""], ["-x"], ["co.uk"]):
        with pytest.raises(ValueError):
            su.UriMatcher(bad)
    assert su.UriMatcher([]).matches([b"a.com http://x.y a@b.c"]) == [
        (("http://x.y", None, None, None), 10), ((None, "a@b.c", None, None), 5)]


def test_text_uris_same_with_and_without_matcher():
    ux = _reference()
    assert ux.matcher is not None
    lines = _edge_lines()[:60] + _random_lines(5, 400)
    with_m = ux.text_uris(lines)
    ux.matcher = None
    ux._text_memo.clear()
    assert ux.text_uris(lines) == with_m
    assert len(with_m) > 100
    ascii_only = U.UriExtractor(U.Registry({"com", "r\xe9"}, set(), set()), [])
    assert ascii_only.matcher is None            # a non-ASCII TLD: the regex way
    assert ascii_only.text_uris([b"x.com y.r\xe9"])[0][0] == "http://x.com"
