"""spamuri.quick_canonical (plain http(s) URLs and plain mailto: URIs) gives
UriExtractor's general canonicalisation where it answers, and answers the
common shapes; spamuri.text_quick gives UriExtractor._text_uri's answer
where it answers; detail_entries gives the same entries with and without
them (both twins)."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = {"com", "net", "org", "uk", "de", "info"}
REDIRECTORS = [
    r"m'^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i",
    r"/^http:\/\/chkpt\.zdnet\.com\/chkpt\/\w+\/(.*)$/i",
]
MAILTOS = ["mailto:bob@example.com", "mailto:Bob@Mail.Example.CO.UK", "mailto:a@b@example.com", "mailto:bob",
           "mailto:", "mailto:bob@example.com?subject=x", "mailto:bob@exa%6dple.com", "mailto:a&b@example.com",
           "mailto:<bob@example.com>", "mailto:bob@example.zz", "mailto:bob@ex ample.com", "mailto:bob@exämple.com",
           "mailto:b\x00b@example.com", "Mailto:bob@example.com", "mailto:bob@example.com\n",
           "mailto:bob@" + "x" * 9000 + ".com", "mailto:bob@1.2.3.4", "mailto:@example.com", "mailto:bob@.com",
           "mailto:bob@EXAMPLE.com.", "mailto:bob@[1.2.3.4]", "mailto:'bob'@example.de"]


def _extractor(redirectors: list[str]) -> U.UriExtractor:
    rb = U.Registry(set(TLDS), {"co.uk"}, set())
    return U.UriExtractor(rb, [perlre.compile_rule(r) for r in redirectors])


def _random_uri(rng: random.Random) -> str:
    toks = ["http://", "https://", "mailto:", "MAILTO:", "www.", "Example", "foo", ".com", ".co.uk", ".zz", ".",
            "@", "@", "?", "&", "<", "%41", "/", ":", " ", "é", "google", "/url?q=", "bob", "x.org", "1", "-"]
    return "".join(rng.choice(toks) for _ in range(rng.randrange(1, 9)))


@pytest.mark.parametrize("redirectors", [REDIRECTORS, [], REDIRECTORS[:1]], ids=["two", "none", "one"])
def test_quick_canonical_gives_the_general_result(redirectors, impl):
    su = impl("spamuri")
    ux = _extractor(redirectors)
    rng = random.Random(7)
    uris = MAILTOS + [_random_uri(rng) for _ in range(3000)]
    answered = 0
    for uri in uris:
        got = su.quick_canonical(uri, *ux._quick)
        if got is not None:
            answered += 1
            assert got == _extractor(redirectors)._general(uri), uri
    assert answered > 50
    for uri in ("mailto:bob@example.com", "mailto:a@b@example.com", "mailto:Bob@Mail.Example.CO.UK"):
        assert su.quick_canonical(uri, *ux._quick) is not None
    assert su.quick_canonical("mailto:Bob@Mail.Example.CO.UK", *ux._quick) == \
        (["mailto:Bob@Mail.Example.CO.UK"], {"example.co.uk": 1}, {"mail.example.co.uk": "example.co.uk"}, False)
    for uri in ("mailto:bob@example.com?subject=x", "mailto:bob@exämple.com", "Mailto:bob@example.com",
                "mailto:bob@example.com\n", "mailto:bob@" + "x" * 9000 + ".com"):
        assert su.quick_canonical(uri, *ux._quick) is None


def _groups(rng: random.Random) -> tuple:
    toks = ["http://", "https://", "HTTP://", "ftp://", "www.", "example", ".com", "/", ")", "(", "\n", ".", ",",
            "!", "-", "~", "?", "=", ":", "@", "x", "mailto:", "cid:", "é"]
    s = "".join(rng.choice(toks) for _ in range(rng.randrange(1, 8)))
    k = rng.randrange(5)
    if k <= 2:
        return (s, None, None, None)
    if k == 3:
        return (None, s, None, None)
    return (None, None, s, s)


def test_text_quick_gives_text_uri(impl):
    su = impl("spamuri")
    ux = _extractor(REDIRECTORS)
    rng = random.Random(3)
    hand = [("http://", None, None, None), ("https://.,", None, None, None), ("http://x.com/a).", None, None, None),
            ("http://x.com/a.,!", None, None, None), ("http://x.com/\n", None, None, None),
            ("HTTP://x.com/", None, None, None), ("http://x.com", None, "y", None)]
    answered = 0
    for g in hand + [_groups(rng) for _ in range(4000)]:
        got = su.text_quick(g)
        if got is not None:
            answered += 1
            assert got == ux._text_uri(g), g
    assert answered > 100
    assert su.text_quick(("http://x.com/a.,!", None, None, None)) == ("http://x.com/a", ("http://x.com/a", {"parsed": 1}))
    assert su.text_quick(("https://.,", None, None, None)) == ("https://", None)
    for g in hand[2:3] + hand[4:]:
        assert su.text_quick(g) is None


def test_detail_entries_same_with_and_without_quick(impl):
    su = impl("spamuri")
    rng = random.Random(11)
    for _ in range(60):
        uris = [rng.choice(MAILTOS) if rng.random() < 0.4 else _random_uri(rng) for _ in range(rng.randrange(1, 8))]
        html = [{"uri_detail": {u: {"types": {"a": 1}, "anchor_text": ["x"]} for u in uris}}]
        text = " ".join(uris).encode("utf-8", "surrogatepass")
        a, b = _extractor(REDIRECTORS), _extractor(REDIRECTORS)
        lines = [text]
        with_quick = su.detail_entries(a._found(lines), html, a._text_memo, a._text_uri, a._canon_memo, a._general,
                                       U._DETAIL_LIMITS, a._quick)
        without = su.detail_entries(b._found(lines), html, b._text_memo, b._text_uri, b._canon_memo, b._canonicalize,
                                    U._DETAIL_LIMITS)
        assert repr(with_quick) == repr(without)
        assert repr(a._canon_memo) == repr(b._canon_memo)
        assert repr(a._text_memo) == repr(b._text_memo)
