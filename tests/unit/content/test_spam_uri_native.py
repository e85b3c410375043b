"""postier._native.spamuri and its pure twin: the shortcuts of URI
canonicalisation (simple_http, uri_host, host_to_domain) and of the text
URI search (match_start) give what the general code gives, on hand-picked and
generated URIs and lines."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = ("com", "org", "net", "uk", "jp", "us", "info", "de")
REDIRECTOR = r"m'^https?:/*(?:\w+\.)?google\.com/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i"


def _extractor() -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(REDIRECTOR)])


@pytest.fixture
def fast(impl, monkeypatch):
    """uri.py using impl's spamuri; returns a function that switches the
    shortcuts off (the general code only)."""
    su = impl("spamuri")
    monkeypatch.setattr(U, "_simple_http", su.simple_http)
    monkeypatch.setattr(U, "_quick_canonical", su.quick_canonical)
    monkeypatch.setattr(U, "_uri_host", su.uri_host)
    monkeypatch.setattr(U, "_match_start", su.match_start)
    monkeypatch.setattr(U, "_host_to_domain", su.host_to_domain)

    def general():
        monkeypatch.setattr(U, "_simple_http", lambda uri: None)
        monkeypatch.setattr(U, "_quick_canonical", lambda uri, lits, memo, host_domain: None)
        monkeypatch.setattr(U, "_uri_host", lambda uri: None)
        monkeypatch.setattr(U, "_match_start", lambda s, pos, hit: pos)
        monkeypatch.setattr(U, "_host_to_domain", _general_host_to_domain)
    return su, general


def _general_host_to_domain(host, tlds, two, three, is_ip, idn):
    """Registry._host_to_domain (the Python steps) with these lists."""
    rb = U.Registry.__new__(U.Registry)
    rb.tlds, rb.two, rb.three = tlds, two, three
    return U.Registry._host_to_domain(rb, host)


def test_simple_http_shapes(fast):
    su, _ = fast
    assert su.simple_http("http://www.example.com/a?b=1#c") == ("http://", "www.example.com", "/a?b=1#c")
    assert su.simple_http("https://Example.COM") == ("https://", "Example.COM", "")
    assert su.simple_http("http://a_b-c.d/") == ("http://", "a_b-c.d", "/")
    assert su.simple_http("http://1.2.3.4/x") == ("http://", "1.2.3.4", "/x")
    assert su.simple_http("http://192.168.10.255") == ("http://", "192.168.10.255", "")
    assert su.simple_http("http://9x.a1/") == ("http://", "9x.a1", "/")
    assert su.simple_http("http://a.com/r?to=b@c.com") == ("http://", "a.com", "/r?to=b@c.com")
    for uri in ("HTTP://example.com/", "http://example.com:80/", "http://example.com?x", "http://example.com#x",
                "http://1234/", "http://0.1.2.3/", "http://1.02.3.4/", "http://1.2.3.0", "http://0x7f.1.1.1/",
                "http://9x/", "http://1.2.0x3.4/", "http://a.com?x@y", "http://example.com./", "http://user@example.com/", "http://ex%41.com/",
                "http://example.com/a b", "http://example.com/\\x", "http://example.com/&#46;", "http:///x",
                "http://", "ftp://example.com/", "http://ex\xe9.com/", "http://example.com/\xe9",
                "http://exa(mple.com/", " http://example.com/", "http://-x.com-/"):
        assert su.simple_http(uri) is None, uri


def test_uri_host_shapes(fast):
    su, _ = fast
    assert su.uri_host("http://User:pw@WWW.Example.com:8080/x@y") == "www.example.com"
    assert su.uri_host("HTTPS://a.b.c/") == "a.b.c"
    assert su.uri_host("foo.com:80") == "foo.com"
    assert su.uri_host("x:y:12") == "y"
    assert su.uri_host("http://[::1]:25/") == "[::1]"
    assert su.uri_host("http://a.com:8a/") == "a.com:8a"
    assert su.uri_host("ftp:///a") == ""
    for uri in ("mailto:a@b.com", "JavaScript:alert(1)", "cid:x@y", "file:/etc", "http://ex\xe9.com/",
                "http://a.com/ b", "http://a\nb.com/"):
        assert su.uri_host(uri) is None, uri


def test_match_start(fast):
    su, _ = fast
    s = "see <a>foo@bar.com, x y\xe9z(q'r@s"
    assert su.match_start(s, 0, s.index("@bar")) == s.index("foo")
    assert su.match_start(s, 0, s.index("@s")) == s.index("r@s")
    assert su.match_start(s, 9, s.index("@bar")) == 9
    assert su.match_start(s, 0, 0) == 0
    assert su.match_start("abc", 0, 10) == 0
    assert su.match_start("a\u0100b", 0, 3) == 0           # beyond 0xff: not a delimiter
    delims = " \t\n\r\f\v><\"`}]{[|\x1b,('@\x80\xa0\xe9\xff"
    for c in map(chr, range(0x200)):
        want = 3 if c in delims or 0x80 <= ord(c) <= 0xff else 0
        assert su.match_start("ab" + c + "cd", 0, 4) == want, repr(c)


def test_host_to_domain(fast):
    su, _ = fast
    rb = U.Registry(set(TLDS) | {"au", "xn--p1ai"}, {"co.uk", "com.au"}, {"act.edu.au"})

    def h2d(host):
        return su.host_to_domain(host, rb.tlds, rb.two, rb.three, U._IS_IP_MATCH, U.idn_to_ascii)
    assert h2d("WWW.Example.CO.uk") == ("example.co.uk", "www.example.co.uk")
    assert h2d("a.b.example.com") == ("example.com", "a.b.example.com")
    assert h2d("x.k12.ny.us") == ("x.k12.ny.us", "x.k12.ny.us")
    assert h2d("mail.school.pvt.k12.ny.us") == ("school.pvt.k12.ny.us", "mail.school.pvt.k12.ny.us")
    assert h2d("a.ci.town.ny.us") == ("a.ci.town.ny.us", "a.ci.town.ny.us")
    assert h2d("www.uni.act.edu.au") == ("uni.act.edu.au", "www.uni.act.edu.au")
    assert h2d("192.0.2.1") == ("192.0.2.1", "192.0.2.1")
    assert h2d("::1") == ("::1", "::1")
    assert h2d("b\xfccher.example.com") == ("example.com", "xn--bcher-kva.example.com")
    assert h2d("\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444") == \
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai")
    for host in ("ex%41mple.com", "example", "example.zz", "-a.com", "a-.com", "a_b.com", "a..b.com",
                 "example.com.", ".example.com", "a b.com", "192.0.2", "x." * 130 + "com",
                 "a" * 64 + ".com", "", "[::1]", "exa:mple.com", "\xe9"):
        assert h2d(host) is None, host
    assert h2d("_a.b.example.com") == ("example.com", "_a.b.example.com")
    assert h2d("a" * 63 + ".com") == ("a" * 63 + ".com", "a" * 63 + ".com")
    rng = random.Random(3)
    labels = ["a", "B", "co", "us", "ny", "k12", "pvt", "ci", "x-y", "-x", "_a", "1", "192", "act",
              "edu", "com", "\xe9", "\u0131", "a%41", "a%2", "", "a b", "[1", "2]", ":", "0x1f", "a" * 64]
    tlds = ["com", "uk", "us", "au", "zz", "", "COM", "com.", "com\u3002"]
    hosts = [".".join([rng.choice(labels) for _ in range(rng.randrange(0, 5))] + [rng.choice(tlds)])
             for _ in range(4000)]
    got = [h2d(h) for h in hosts]
    assert sum(g is not None for g in got) > 200
    assert got == [_general_host_to_domain(h, rb.tlds, rb.two, rb.three, None, None) for h in hosts]


def _random_uri(rng: random.Random) -> str:
    toks = ["http://", "https://", "HTTP://", "www.", "example", ".com", ".co.uk", ".", "-", "_", "/",
            "?", "#", ":", ":80", ":443", "@", "%41", "%2f", "&#46;", "&#x41;", "\\", " ", "\n", "\r",
            "\xe9", "\u3002", "0x7f", "127", "1", "google.com/url?q=http://evil.com/x&", "localhost",
            "1.2.3.4", "10.0.0.1", ".0", ".07", "08", "255.", "http://1.", "http://0", "/x@y.com", "?@",
            "mailto:", "a", "B", "ftp.", "javascript:", "&", "=", "http://foo"]
    return "".join(rng.choice(toks) for _ in range(rng.randrange(1, 9)))


def test_canonical_forms_as_the_general_code(fast):
    _, general = fast
    rng = random.Random(11)
    uris = [_random_uri(rng) for _ in range(3000)]
    uris += ["http://www.example.com/x", "http://foo/", "http://www.foo/bar", "http://Example.COM/a",
             "http://localhost/", "https://www.google.com/url?q=http://evil.com/x&y", "http://a.com/b:c",
             "http://a.com/r?u=https://b.org/"]
    ux = _extractor()
    got = [ux._canonicalize(u) for u in uris]
    doms = [ux.rb.uri_to_domain(c) for g in got for c in g[0]]
    assert any(U._simple_http(u) is not None for u in uris)
    general()
    ref = _extractor()
    assert got == [ref._canonicalize(u) for u in uris]
    assert doms == [ref.rb.uri_to_domain(c) for g in got for c in g[0]]


def test_text_matches_as_finditer(fast):
    rng = random.Random(5)
    toks = ["http://", "www.", "mailto:", "@", ".com", ".co.uk", "example", " ", "(", ")", ",", "'",
            "<", ">", "|", "\x1b", "\xa0", "\xe9", ".", "a" * 40, "x", "/", "\t", "foo.org", "b@c.de"]
    ux = _extractor()
    for _ in range(400):
        line = "".join(rng.choice(toks) for _ in range(rng.randrange(1, 30)))
        want = [(m.span(), m.groups()) for m in ux.re.finditer(line)]
        got = [(m.span(), m.groups()) for m in ux._matches([line.encode("latin-1")])]
        assert got == want, line


def test_numeric_and_at_hosts_as_the_general_code(fast):
    """Dotted numeric hosts (decimal, leading zeros, hex labels) and "@" in
    every place: simple_http takes only those the general steps leave as
    they are, and the canonical forms and domains are the general code's."""
    su, general = fast
    rng = random.Random(23)
    labels = ["1", "12", "255", "256", "0", "01", "007", "0x1f", "0X7F", "9a", "a9", "", "4294967295"]
    tails = ["", "/", "/x", "/a@b.com", "?x@y", "#@", ":80/", "/?u=http://b.com/", "@c.com/"]
    uris = []
    for _ in range(3000):
        host = ".".join(rng.choice(labels) for _ in range(rng.randrange(1, 6)))
        uris.append(rng.choice(["http://", "https://", "http://u@"]) + host + rng.choice(tails))
    simple = [su.simple_http(u) for u in uris]
    assert sum(s is not None and s[1][:1].isdigit() for s in simple) > 100
    assert sum(s is not None and "@" in s[2] for s in simple) > 30
    ux = _extractor()
    got = [ux._canonicalize(u) for u in uris]
    doms = [ux.rb.uri_to_domain(c) for g in got for c in g[0]]
    general()
    ref = _extractor()
    assert got == [ref._canonicalize(u) for u in uris]
    assert doms == [ref.rb.uri_to_domain(c) for g in got for c in g[0]]
    assert [U.uri_list_canonicalize(ref.redirectors, [u], ref.rb, ref.redirector_set) for u in uris] == \
        [g[0] for g in got]


def test_plain_canonical_answers_and_memo(fast):
    """plain_canonical: None without literals (None) or for a URI the
    general steps must see; else the URI alone, its domain from the memo
    when there, from host_domain when not (and None kept as no domain)."""
    su, _ = fast
    asked = []

    def host_domain(host):
        asked.append(host)
        return None if host.endswith(".zz") else (host.split(".", 1)[-1], host)
    memo = {"www.known.com": ("memo.com", "www.known.com"), "gone.com": None}
    pc = su.plain_canonical
    assert pc("http://www.Known.COM/x", (), memo, host_domain) == \
        (["http://www.Known.COM/x"], {"memo.com": 1}, {"www.known.com": "memo.com"}, False)
    assert pc("https://gone.com", (), memo, host_domain) == (["https://gone.com"], {}, {}, False)
    assert asked == []
    assert pc("http://a.b.zz/", (), memo, host_domain) == (["http://a.b.zz/"], {}, {}, False)
    assert pc("http://1.2.3.4/p@q", (b"nothere",), memo, host_domain) == \
        (["http://1.2.3.4/p@q"], {"2.3.4": 1}, {"1.2.3.4": "2.3.4"}, False)
    assert asked == ["a.b.zz", "1.2.3.4"]
    for uri, lits in (("http://www.known.com/x", None), ("http://www.known.com/x", (b"known",)),
                      ("http://www.known.com/GOO", (b"goo",)), ("http://foo/", ()), ("http://www.foo/", ()),
                      ("http://a.com/b:c", ()), ("http://a.com:80/", ()), ("http://x.com/" + "a" * 8200, ()),
                      ("ftp://a.com/", ()), ("http://01.2.3.4/", ()), ("http://a.com/%41", ())):
        assert pc(uri, lits, memo, host_domain) is None, uri
    assert pc("https://www.foo/", (), memo, host_domain) is not None
    assert pc("http://www.foo.com/", (), memo, host_domain) is not None


def _general_canonical(ux: U.UriExtractor, uri: str) -> tuple:
    """_canonicalize's general steps, spelt out: uri_list_canonicalize's
    forms (cut at MAX_URI_LENGTH), their domains and hosts."""
    cleaned, domains, hosts, truncated = {}, {}, {}, False
    for c in U.uri_list_canonicalize(ux.redirectors, [uri], ux.rb, ux.redirector_set):
        if len(c) > U.MAX_URI_LENGTH:
            c, truncated = c[:U.MAX_URI_LENGTH], True
        if c not in cleaned:
            cleaned[c] = None
            d = ux.rb.uri_to_domain(c)
            if d is not None:
                domains[d[0]] = 1
                hosts[d[1]] = d[0]
    return list(cleaned), domains, hosts, truncated


def test_mailto_as_the_general_code(fast):
    """A mailto: URI's canonical forms and domains, plain ones (the
    shortcut) and every other shape, are the general steps'."""
    _, general = fast
    rng = random.Random(29)
    toks = ["mailto:", "MAILTO:", "bob", "@", "Example", ".com", ".zz", ".co.uk", "?subject=x", "&", "<", ">",
            "%20", "%41", " ", "\n", "\xe9", "=", "+", "'", "a.b", "@@", "x" * 30]
    uris = ["mailto:" + "".join(rng.choice(toks) for _ in range(rng.randrange(0, 7))) for _ in range(2000)]
    hosts = ["example.com", "Example.COM", "a.co.uk", "x.zz", "b.de", "1.2.3.4", "c.com.", "d..com"]
    tails = ["", "", "?subject=x", "&cc=y", "%20", ">", " ", "@e.com", "\n"]
    uris += [rng.choice(["mailto:", "MAILTO:", "mailto:%20", "mailto:<"]) + rng.choice(["bob", "a.b", "x+y"]) + "@"
             + rng.choice(hosts) + rng.choice(tails) for _ in range(2000)]
    uris += ["mailto:bob@example.com", "mailto:Bob@WWW.Example.CO.UK", "mailto:a@b@c.com", "mailto:nobody",
             "mailto:x@" + "a" * 9000 + ".com"]
    ux = _extractor()
    got = [ux._canonicalize(u) for u in uris]
    assert sum(bool(g[1]) for g in got) > 300
    general()
    ref = _extractor()
    assert got == [_general_canonical(ref, u) for u in uris]
