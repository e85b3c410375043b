"""spamuri.detail_entries (UriExtractor.detail_list's loops in one call)
gives the entries _spelt_out (below) gives with UriExtractor.text_uris and
_add -- same keys in the same order, same lists and dicts -- for text
and HTML URIs together (a URI in both, twice in a part, in two parts,
with and without anchor texts, types None or marked noclean, cut to
MAX_URI_LENGTH, without a domain), on both twins; and it leaves the
remembered canonical forms as they were."""

from __future__ import annotations

import copy
import random

import pytest

from postier.content.spam import perlre
from postier.content.spam import uri as U

TLDS = {"com", "org", "net", "uk", "de"}
REDIRECTOR = r"m'^https?:/*(?:\w+\.)?google\.com/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i"
URIS = ["http://www.example.com/a", "http://Example.COM/b", "https://x.example.org/", "mailto:bob@example.com",
        "http://foo/", "http://www.google.com/url?q=http://evil.com/x&y", "http://1.2.3.4/p", "www.example.net",
        "cid:abc@def", "#top", "http://a.zz/", "http://x.com/" + "a" * 9000, "javascript:void(0)",
        "mailto:x@y@z.com", "http://example.com:80/c", "bob@example.de", "ftp.example.com/f"]
TEXTS = [b"see http://www.example.com/a and www.example.net, mail bob@example.de",
         b"http://foo/ or http://www.google.com/url?q=http://evil.com/x&y (http://1.2.3.4/p)",
         b"nothing here", b"again http://www.example.com/a http://www.example.com/a bare example.org.",
         b"http://x.com/" + b"a" * 9000, b"ftp.example.com/f and cid:abc@def and x@nodot"]


def _extractor() -> U.UriExtractor:
    return U.UriExtractor(U.Registry(set(TLDS), {"co.uk"}, set()), [perlre.compile_rule(REDIRECTOR)])


def _html(rng: random.Random) -> dict:
    detail = {}
    for _ in range(rng.randrange(0, 6)):
        info: dict = {}
        k = rng.randrange(4)
        if k == 0:
            info["types"] = {rng.choice(["a", "img", "form", "noclean", "link"]): 1}
        elif k == 1:
            info["types"] = {"a": 1, "noclean": 1}
        elif k == 2:
            info["types"] = None
        if rng.random() < 0.5:
            info["anchor_text"] = [rng.choice(["x", "y", "", "x"]) for _ in range(rng.randrange(0, 4))]
        detail[rng.choice(URIS)] = info
    return {"uri_detail": detail} if rng.random() < 0.9 else {}


def _ordered(udl: dict) -> list:
    return [(u, [(k, list(v.items()) if isinstance(v, dict) else v) for k, v in e.items()])
            for u, e in udl.items()]


def _add(ux: U.UriExtractor, udl: dict, uri: str, types: dict | None, valid_domain: bool,
         memo: dict) -> bool:
    """PerMsgStatus's per-URI step: uri's canonical forms, domains and hosts
    into udl (a second add of a URI merges; a new entry holds the remembered
    lists and dicts themselves)."""
    if types is None:
        types = {"parsed": 1}
    got = memo.get(uri)
    if got is None:
        got = memo[uri] = ux._canonical(uri)
    cleaned, domains, hosts, truncated = got
    if not cleaned or (valid_domain and not domains):
        return False
    ent = udl.get(uri)
    if ent is None:
        ent = udl[uri] = {"truncated": True} if truncated else {}
        if not types.get("noclean"):
            ent["cleaned"] = cleaned
        ent.update(domains=domains, hosts=hosts, types=types)
        return True
    if truncated:
        ent["truncated"] = True
    if not types.get("noclean"):
        ent["cleaned"] = list({**dict.fromkeys(ent.get("cleaned") or []), **dict.fromkeys(cleaned)})
    for key, more in (("domains", domains), ("hosts", hosts), ("types", types)):
        ent[key] = {**ent[key], **more} if ent.get(key) else more
    return True


def _spelt_out(ux: U.UriExtractor, lines: list[bytes], html_all: list[dict]) -> dict[str, dict]:
    """detail_list spelt out with text_uris and _add: the reference."""
    udl: dict[str, dict] = {}
    memo: dict = {}
    for uri, types in ux.text_uris(lines):
        _add(ux, udl, uri, types, True, memo)
    for html in html_all:
        for uri, info in (html.get("uri_detail") or {}).items():
            if _add(ux, udl, uri, info.get("types"), False, memo) and info.get("anchor_text"):
                ent = udl[uri].setdefault("anchor_text", [])
                ent.extend(dict.fromkeys(info["anchor_text"]))       # once per part
    return udl


@pytest.fixture
def entries(impl, monkeypatch):
    monkeypatch.setattr(U, "_detail_entries", impl("spamuri").detail_entries)


def test_same_entries_as_spelt_out(entries):
    rng = random.Random(41)
    fast, slow = _extractor(), _extractor()
    nonempty = 0
    for _ in range(400):
        lines = [rng.choice(TEXTS) for _ in range(rng.randrange(0, 4))]
        html_all = [_html(rng) for _ in range(rng.randrange(0, 3))]
        want = _spelt_out(slow, lines, copy.deepcopy(html_all))
        got = fast.detail_list(lines, html_all)
        assert _ordered(got) == _ordered(want), (lines, html_all)
        nonempty += bool(got)
    assert nonempty > 300


def test_entries_parts(entries):
    ux = _extractor()
    html = [{"uri_detail": {"http://www.example.com/a": {"types": {"a": 1}, "anchor_text": ["x", "y", "x"]},
                            "mailto:x@y@z.com": {"types": {"a": 1}},
                            "http://x.com/" + "a" * 9000: {"types": None}}},
            {"uri_detail": {"http://www.example.com/a": {"types": {"img": 1}, "anchor_text": ["y", "z"]}}}]
    udl = ux.detail_list([b"go to http://www.example.com/a, mail x@nodot or bob@example.de"], html)
    assert list(udl) == ["http://www.example.com/a", "mailto:bob@example.de", "mailto:x@y@z.com",
                         "http://x.com/" + "a" * 9000]
    e = udl["http://www.example.com/a"]
    assert e["types"] == {"parsed": 1, "a": 1, "img": 1}
    assert e["anchor_text"] == ["x", "y", "y", "z"]            # once per part
    assert e["domains"] == {"example.com": 1}
    assert udl["mailto:x@y@z.com"]["domains"] == {}            # an HTML URI needs no domain
    assert udl["http://x.com/" + "a" * 9000]["truncated"] is True
    assert udl["http://x.com/" + "a" * 9000]["types"] == {"parsed": 1}


def test_remembered_forms_do_not_change(entries):
    ux = _extractor()
    html = [{"uri_detail": {"http://www.example.com/a": {"types": {"a": 1}}}}]
    first = ux.detail_list(TEXTS[:2], html)
    before = {u: repr(ux._canonical(u)) for u in first}
    ux.detail_list(TEXTS[:2], html)
    assert {u: repr(ux._canonical(u)) for u in first} == before
    assert ux.detail_list(TEXTS[:2], html) == _extractor().detail_list(TEXTS[:2], html) == first
