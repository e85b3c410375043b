"""UriExtractor._canonicalize's shortcut for a plain http(s) URL that no
redirector can match (its only canonical form is itself, its host part its
host lowercased) gives what the general steps give, with several
redirectors (literal pre-check), with none, and with one (no shortcut); and
the URI detail list's entries, which hold _canonical's remembered lists and
dicts, never change them: a later message gets the same entries."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = {"com", "net", "org", "uk", "de", "info", "io", "jp", "us"}
REDIRECTORS = [
    r"m'^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i",
    r"m'^http.*?/redirect\.php\?.*(?<=[?&])goto=(.*?)(?:$|[&\#])'i",
    r"/^http:\/\/chkpt\.zdnet\.com\/chkpt\/\w+\/(.*)$/i",
]
HAND = ["http://www.example.com/x", "http://WWW.Example.COM/A", "http://www.foo/bar", "http://www/",
        "http://www.www.com/", "https://www.foo/", "http://foo/", "https://foo/", "http://localhost/",
        "http://example.com", "https://a.b.example.co.uk/p?q=1#f", "http://example.zz/",
        "http://www.google.com/url?q=http://evil.com/x&y", "http://a.com/b:c", "http://a.com/x/redirect.php?goto=b.org",
        "http://chkpt.zdnet.com/chkpt/x/www.evil.com/", "http://a.com/GOOGLE", "http://-a.com/",
        "http://a_b.com/", "http://a." + "b" * 70 + ".com/", "http://x.com/" + "a" * 9000]


def _extractor(redirectors: list[str]) -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(r) for r in redirectors])


def _random_uri(rng: random.Random) -> str:
    toks = ["http://", "https://", "www.", "WWW.", "example", "foo", ".com", ".co.uk", ".zz", ".", "-", "_",
            "/", "?", "#", ":", ":80", "@", "%41", "&#46;", "\\", " ", "google", "/url?q=", "x.org",
            "redirect.php?goto=", "chkpt.zdnet.com/chkpt/a/", "localhost", "1", "A", "=", "&"]
    return "".join(rng.choice(toks) for _ in range(rng.randrange(1, 10)))


def _plain_uri(rng: random.Random) -> str:
    """Mostly the plain shape: scheme, labels, an optional path."""
    labels = ["www", "WWW", "a", "example", "Foo-1", "x_y", "google", "co", "com", "uk", "zz", "io", "9"]
    host = ".".join(rng.choice(labels) for _ in range(rng.randrange(1, 5)))
    path = rng.choice(["", "/", "/a/b", "/r?u=1", "/x#y", "/url?q=http://e.org/", "/b:c", "/GOOGLE"])
    return rng.choice(["http://", "https://"]) + host + path


def _uris() -> list[str]:
    rng = random.Random(5)
    return (HAND + [_plain_uri(rng) for _ in range(1500)] + ["http://" + _random_uri(rng) for _ in range(1000)]
            + [_random_uri(rng) for _ in range(500)])


@pytest.mark.parametrize("redirectors", [REDIRECTORS, [], REDIRECTORS[:1]], ids=["three", "none", "one"])
def test_shortcut_gives_the_general_result(redirectors, impl, monkeypatch):
    uris = _uris()
    su = impl("spamuri")
    monkeypatch.setattr(U, "_simple_http", su.simple_http)
    monkeypatch.setattr(U, "_quick_canonical", su.quick_canonical)
    ux = _extractor(redirectors)
    general_calls = []
    real = U.uri_list_canonicalize

    def counting(*a):
        general_calls.append(a[1][0])
        return real(*a)
    monkeypatch.setattr(U, "uri_list_canonicalize", counting)
    got = [ux._canonicalize(u) for u in uris]
    if len(redirectors) == 1:
        assert len(general_calls) == len(uris)           # no literals known: no shortcut
    else:
        assert len(general_calls) < len(uris) - 300      # the shortcut answered many
        assert "http://www.example.com/x" not in general_calls
        for u in ("http://www.foo/bar", "http://foo/", "http://a.com/b:c", "http://x.com/" + "a" * 9000):
            assert u in general_calls
    if redirectors:
        assert "http://www.google.com/url?q=http://evil.com/x&y" in general_calls
    monkeypatch.setattr(U, "_simple_http", lambda uri: None)     # the general steps only
    monkeypatch.setattr(U, "_quick_canonical", lambda uri, lits, memo, host_domain: None)
    ref = _extractor(redirectors)
    assert got == [ref._canonicalize(u) for u in uris]
    assert sum(bool(g[1]) for g in got) > 500


def test_detail_entries_do_not_change_what_is_remembered():
    ux = _extractor(REDIRECTORS)
    lines = [b"see http://www.example.com/a and http://www.google.com/url?q=http://evil.com/&x\n"]
    html = [{"uri_detail": {"http://www.example.com/a": {"types": {"a": 1}, "anchor_text": ["x", "x"]},
                            "http://other.example.com/": {"types": {"img": 1}}}}]
    first = ux.detail_list(lines, html)
    assert first["http://www.example.com/a"]["types"] == {"parsed": 1, "a": 1}
    assert first["http://www.example.com/a"]["anchor_text"] == ["x"]
    assert first["http://www.google.com/url?q=http://evil.com/&x"]["cleaned"] == \
        ["http://www.google.com/url?q=http://evil.com/&x", "http://evil.com/"]
    remembered = {u: repr(ux._canonical(u)) for u in first}
    second = ux.detail_list(lines, [])
    assert second["http://www.example.com/a"] == {"cleaned": ["http://www.example.com/a"],
                                                  "domains": {"example.com": 1},
                                                  "hosts": {"www.example.com": "example.com"},
                                                  "types": {"parsed": 1}}
    assert "http://other.example.com/" not in second
    third = ux.detail_list([], html)
    assert third["http://www.example.com/a"]["types"] == {"a": 1}
    assert third["http://other.example.com/"]["types"] == {"img": 1}
    assert {u: repr(ux._canonical(u)) for u in first} == remembered
    fresh = _extractor(REDIRECTORS)
    assert ux.detail_list(lines, html) == fresh.detail_list(lines, html) == first
