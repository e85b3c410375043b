"""UriExtractor.text_uris remembers what a linkified match gives (a function
of the match's groups): remembered answers must be the answers, and the
types dicts handed out must not be shared."""

from __future__ import annotations

import random

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = ("com", "org", "net", "uk", "jp", "us", "info")

LINES = [b"visit www.example.com or http://foo.example.org/x?y=1 today, www.example.com again",
         b"mail me: joe@example.com, (bob@example.co.uk) or bad@nodot",
         b"see example.com. and sub.example.net/path! cid:x mailto:a%40b@example.org",
         b"bare foo.unknowntld and foo.com skype:me@example.com (http://p.example.com/a)b)"]


def _extractor() -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(r"m'^https?:/*(?:\w+\.)?google\.com/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i")])


def test_remembered_matches_give_the_same_uris():
    ux = _extractor()
    first = ux.text_uris(LINES)
    assert ux._text_memo                              # something was remembered
    again = ux.text_uris(LINES)
    assert again == first
    fresh = _extractor().text_uris(LINES)
    assert fresh == first
    uris = [u for u, _t in first]
    assert uris.count("http://www.example.com") == 1
    assert "mailto:joe@example.com" in uris and not any("nodot" in u for u in uris)
    assert ("http://example.com", {"parsed": 1, "unlinked": 1, "schemeless": 1}) in first


def test_types_are_not_shared_between_calls():
    ux = _extractor()
    a = ux.text_uris([b"go to www.example.com"])
    a[0][1]["changed"] = 1
    b = ux.text_uris([b"go to www.example.com"])
    assert b == [("http://www.example.com", {"parsed": 1, "schemeless": 1})]


def test_random_text_with_and_without_memo():
    rng = random.Random(8)
    toks = ["http://", "www.", "ftp.", "mailto:", "@", ".com", ".co.uk", "example", " ", "(", ")",
            ",", ".", "a" * 30, "x", "/", "?", "&", "%41", "\xe9", "\x00", "foo.org"]
    ux = _extractor()
    for _ in range(300):
        lines = ["".join(rng.choice(toks) for _ in range(rng.randrange(1, 20))).encode("latin-1")
                 for _ in range(rng.randrange(1, 4))]
        warm = ux.text_uris(lines)
        assert warm == _extractor().text_uris(lines), lines
        assert ux.detail_list(lines, []) == _extractor().detail_list(lines, [])
