"""UriExtractor builds the linkified-URI regex and its RE2 prefilter only
when something asks for them: with TLDs the compiled matcher takes
(spamuri.UriMatcher) a scan never does; with a TLD it refuses, the
fallback builds them and finds the same URIs."""

from __future__ import annotations

from postier.content.spam import uri as U

LINES = [b"see http://www.example.com/x and bob@example.org, or shop.example.net today\n",
         b"mailto:ann@example.com www.foo.com\n"]


def test_not_built_for_the_compiled_matcher():
    ux = U.UriExtractor(U.Registry({"com", "org", "net"}, set(), set()), [])
    assert ux.matcher is not None
    got = ux.detail_list(LINES, [])
    assert "http://www.example.com/x" in got and "mailto:bob@example.org" in got
    assert not {"re", "maybe", "hit"} & set(vars(ux))
    assert ux.hit(b"go to www.x.com", 0) == 6          # built when asked
    assert "hit" in vars(ux)


def test_fallback_builds_them_and_finds_the_same_uris():
    plain = U.UriExtractor(U.Registry({"com", "org", "net"}, set(), set()), [])
    other = U.UriExtractor(U.Registry({"com", "org", "net", "1x"}, set(), set()), [])
    assert other.matcher is None                        # "1x" is not [a-z][a-z0-9-]*
    assert other.detail_list(LINES, []) == plain.detail_list(LINES, [])
    assert {"re", "hit"} <= set(vars(other))
