"""URI extraction/canonicalisation (spam.uri) and Received parsing (spam.received
with postier._native.spamrcvd and its pure twin).

Expected values were recorded from the implementation before its speed-up
(which agrees with SpamAssassin 4.0.1 over the corpus, docs/sa_agreement.md).
The shortcuts the fast code takes (required literals and prefix programs in
front of the Received regexes, the windowed search for text URIs, the
Hyperscan pre-scan of the redirector patterns) are checked against the plain
regex searches they stand for, on tricky and random inputs and over the
corpus (slow).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import random
import re
from pathlib import Path

import pytest

from postier.content.spam import perlre
from postier.content.spam import received as R
from postier.content.spam import uri as U

CORPUS = Path("/work/shared/corpus")
ROOT = Path(__file__).resolve().parents[3]

# ------------------------------------------------------------------ Received


@pytest.fixture
def rcvd(impl, monkeypatch):
    """received.py running on the implementation under test."""
    mod = impl("spamrcvd")
    monkeypatch.setattr(R, "_rcvd", mod)
    return mod


def relay_strings(lines, orig=None, trusted=None):
    r = R.parse_relays(lines, orig, trusted)
    return ([x.as_string for x in r.trusted], [x.as_string for x in r.untrusted],
            [x.as_string for x in r.internal], r.num_unparseable,
            r.last_trusted_index, r.last_internal_index)


def ext(ip, rdns, helo, by, id="", envfrom="", auth="", intl=0):
    return (f"[ ip={ip} rdns={rdns} helo={helo} by={by} ident= envfrom={envfrom} "
            f"intl={intl} id={id} auth={auth} msa=0 ]")


DATE = "; Tue, 10 Nov 2026 12:00:00 +0000"
LONG_HELO = "x" * 5000

# (Received value, expected: ("untrusted"|"trusted"|"skip"|"unparseable", relay string))
RECEIVED_CASES = [
    ("from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org (Postfix) "
     "with ESMTP id 4AbC12 for <u@example.org>" + DATE,
     "untrusted", ext("192.0.2.1", "mail.example.com", "mail.example.com", "mx.example.org", "4AbC12")),
    ("from helo.example (unknown [198.51.100.7]) by mx.example.org (Postfix) with ESMTPSA id 99ZZ" + DATE,
     "trusted", ext("198.51.100.7", "", "helo.example", "mx.example.org", "99ZZ", auth="ESMTPSA", intl=1)),
    ("from [203.0.113.5] (helo=bogus.example) by mx.example.net with esmtp (Exim 4.96) "
     "(envelope-from <a@b.example>) id 1abc-0001-XY; Wed, 11 Nov 2026 01:02:03 +0100",
     "untrusted", ext("203.0.113.5", "", "bogus.example", "mx.example.net", "1abc-0001-XY", "a@b.example")),
    ("from host.example (host.example [203.0.113.9]) by relay.example (8.17.1/8.17.1) with ESMTP "
     "id 0AB1cd; Wed, 11 Nov 2026 01:02:03 -0500",
     "untrusted", ext("203.0.113.9", "host.example", "host.example", "relay.example", "0AB1cd")),
    ("from unknown (HELO mailer) (198.51.100.20) by mail.qmail.example with SMTP; 12 Nov 2026 10:00:00 -0000",
     "untrusted", ext("198.51.100.20", "", "mailer", "mail.qmail.example")),
    ("from EX01.corp.example (10.1.2.3) by EX02.corp.example (10.1.2.4) with Microsoft SMTP Server (TLS) "
     "id 15.1.2242.4; Thu, 12 Nov 2026 09:00:00 +0000",
     "trusted", ext("10.1.2.3", "EX01.corp.example", "EX01.corp.example", "EX02.corp.example",
                    "15.1.2242.4", intl=1)),
    ("from [IPv6:2001:db8::25] (helo.v6.example [IPv6:2001:db8::25]) by mx6.example (Postfix) "
     "with ESMTP id 6V6; Fri, 13 Nov 2026 08:00:00 +0000",
     "untrusted", ext("2001:db8::25", "helo.v6.example", "!IPv6:2001:db8::25!", "mx6.example", "6V6")),
    ("from mx.example ([2001:db8:0:1::5]) by mx2.example with ESMTPS id v6; Fri, 13 Nov 2026 08:00:00 +0000",
     "untrusted", ext("2001:db8:0:1::5", "", "mx.example", "mx2.example")),
    ("from sender.example (HELO [192.0.2.44]) (192.0.2.44) by q.example with SMTP; 13 Nov 2026 08:00:00 -0000",
     "untrusted", ext("192.0.2.44", "sender.example", "!192.0.2.44!", "q.example")),
    ("from box.example ([192.0.2.45] helo=[192.0.2.45]) by exim.example with esmtp (Exim 4.94) id 1x; "
     "Sat, 14 Nov 2026 00:00:00 +0000",
     "untrusted", ext("192.0.2.45", "box.example", "!192.0.2.45!", "exim.example")),
    ("by mx.example.org (Postfix, from userid 0) id 1234" + DATE, "skip", None),
    ("from localhost (localhost [127.0.0.1]) by mx.example.org (Postfix) with ESMTP id 55" + DATE,
     "trusted", ext("127.0.0.1", "localhost", "localhost", "mx.example.org", intl=1)),
    ("from userid 1000 by host.example with local" + DATE, "unparseable", None),
    ("garbage ;;; \x00\xff\xe9 not a received line", "skip", None),
    ("from \x00weird\xff (x [999.1.1.1]) by ; ;", "unparseable", None),
    ("from a.example (b.example [192.0.2.60])\n\tby c.example (Postfix) with ESMTP id Q1\n\t"
     "for <x@y.example>; Sun, 15 Nov 2026 10:10:10 +0000",
     "untrusted", ext("192.0.2.60", "b.example", "a.example", "c.example")),
    ("(from user@localhost) by host.example (8.12.8/8.12.8/Submit) id h1; Mon, 16 Nov 2026 00:00:00 GMT",
     "skip", None),
    ("FROM host.example (relay.example [192.0.2.70]) BY mx.example ID <abc@def>",
     "untrusted", ext("192.0.2.70", "relay.example", "host.example", "mx.example", "abc@def")),
    ("from mail.example.com (mail.example.com [192.0.2.1]) (Authenticated sender: joe) by smtp.example.org "
     "(Postfix) with ESMTPA id AA1" + DATE,
     "trusted", ext("192.0.2.1", "mail.example.com", "mail.example.com", "smtp.example.org", "AA1",
                    auth="ESMTPA", intl=1)),
    ("from web.example ([192.0.2.80]) by mx.example via HTTP" + DATE,
     "untrusted", ext("192.0.2.80", "", "web.example", "mx.example")),
    (f"from {LONG_HELO} (y [192.0.2.90]) by z.example (Postfix) with ESMTP id LONG",
     "untrusted", ext("192.0.2.90", "y", LONG_HELO, "z.example", "LONG")),
    ("from h.example (h.example [192.0.2.91]) by m.example (Postfix) with SMTP id QQ ;;;",
     "untrusted", ext("192.0.2.91", "h.example", "h.example", "m.example")),
    ("from mail pickup service by EX03.example with Microsoft SMTPSVC; Tue, 10 Nov 2026",
     "unparseable", None),
]


@pytest.mark.parametrize("value,kind,relay", RECEIVED_CASES,
                         ids=[f"rcvd{i}" for i in range(len(RECEIVED_CASES))])
def test_received_shapes(rcvd, value, kind, relay):
    trusted, untrusted, internal, unparseable, lti, lii = relay_strings([value])
    if kind == "untrusted":
        assert (trusted, untrusted, unparseable) == ([], [relay], 0)
    elif kind == "trusted":
        assert (trusted, untrusted, internal, unparseable) == ([relay], [], [relay], 0)
    else:
        assert (trusted, untrusted) == ([], [])
        assert unparseable == (1 if kind == "unparseable" else 0)
        assert (lti, lii) == (0, 0)        # a line that is not a relay counts as trusted


def test_received_chain_and_networks(rcvd):
    chain = [v for v, _k, _r in RECEIVED_CASES[:12]]
    orig = ["1.2.3.4 junk", "", "X-Originating-IP: [198.51.100.99]"]
    trusted, untrusted, internal, unparseable, lti, lii = relay_strings(chain, orig)
    assert trusted == []                     # the first relay is public: trust stops
    assert untrusted[0] == ext("192.0.2.1", "mail.example.com", "mail.example.com", "mx.example.org",
                               "4AbC12")
    # the originating IPs come last, as "from X-Originating-IP: a.b.c.d" lines
    assert untrusted[-2:] == [ext("1.2.3.4", "", "", ""), ext("198.51.100.99", "", "", "")]
    assert len(untrusted) == 13
    assert unparseable == 0 and (lti, lii) == (-1, -1)
    t2, u2, i2, _n, lti2, _lii2 = relay_strings(chain, orig, ["192.0.2.0/24 10/8"])
    # trusted while in trusted_networks or authenticated
    assert t2 == [ext("192.0.2.1", "mail.example.com", "mail.example.com", "mx.example.org", "4AbC12",
                      intl=1),
                  ext("198.51.100.7", "", "helo.example", "mx.example.org", "99ZZ", auth="ESMTPSA", intl=1)]
    assert i2 == t2 and lti2 == 1
    assert u2[0].startswith("[ ip=203.0.113.5 ")


def test_line_matches_like_re_search(impl):
    """Line.m (literal and prefix shortcuts) == re.search, for every pattern of
    the format table, on random Received-like strings."""
    mod = impl("spamrcvd")
    pats = mod.parser_patterns()
    assert len(pats) > 100
    toks = ["from ", "by ", " ", "(", ")", "[", "]", "192.0.2.1", "2001:db8::1", "IPv6:", "helo=", "HELO ",
            "EHLO ", "with ", "ESMTP", "SMTP", "SMTPSVC", "Postfix", "id ", "x.example", "@", "<", ">", ";",
            "\t", "\n", "Exim", "qmail-", "envelope-from ", "Return-Path: ", "authenticated", "AUTH: LOGIN ",
            "FROM ", "BY ", "ID ", "via ", "HTTP", "localhost", "127.0.0.1", "unknown", "X-Originating-IP: ",
            "Tue, 10 Nov 2026 12:00:00 +0000", "\x00", "\xe9", "\u0130", "\u212a"]
    rng = random.Random(11)
    checked = matched = 0
    for _ in range(400):
        s = "".join(rng.choice(toks) for _ in range(rng.randint(1, 25)))
        line = mod.Line(s, R._cache, R._compile_entry)
        for pat, flags in pats:
            want = R._rx(pat, flags).search(s)
            assert line.m(pat, flags) == (want is not None), (s, pat)
            if want is not None:
                matched += 1
                assert line[0] == want.group(0)
            checked += 1
    assert matched > 1000 and checked > 60000


def test_required_literals_and_prefix(impl):
    mod = impl("spamrcvd")
    ordered, anyof, icase = mod.required_literals(r"^(\S+) \(\[(x)\] helo=(\S+)\) by (\S+) with ", re.A)
    assert (ordered, anyof, icase) == ((" ([", "] helo=", ") by ", " with "), (), False)
    assert mod.required_literals(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)", re.A | re.I) \
        == ((), (("return-path", "envelope-"),), True)
    assert mod.literals_present("a ([b] helo=c) by d with e", ordered, anyof)
    assert not mod.literals_present("a with ([b] helo=c) by d", ordered, anyof)   # order matters
    prog = mod.prefix_program(r"^(\S+) \((\S+) \[", re.A)
    assert prog == (1, " ", "(", 1, " ", "[")
    assert mod.prefix_ok("a.b (c [1", prog) and mod.prefix_ok("a.b (c) [1", prog)
    assert not mod.prefix_ok("a.b c (d [1", prog) and not mod.prefix_ok(" (c [1", prog)
    assert mod.prefix_program(r"^from (\S+) by", re.A | re.I)[:2] == ("fF", "rR")
    assert mod.prefix_program(r"^(\S+) \(", 0) == ()          # not ASCII mode: \S differs
    assert mod.prefix_program(r"(\S+) \(", re.A) == ()        # not anchored


def _parser_text(src: str) -> str:
    start = src.index("    # --- parser:")
    end = src.index("    # --- end parser ---")
    text = src[src.index("\n", start) + 1:end]
    return (text.replace("cdef Line L = Line(", "L = Line(")
            .replace("(self, Line L, dict v):", "(self, L, v: dict) -> None:", 1)
            .replace("(self, Line L, dict v):", "(self, L, v: dict):"))


def test_native_parser_text_is_the_twins():
    """The format table is written twice (typed for Cython, plain for the twin):
    the two texts must stay the same."""
    pyx = (ROOT / "src/_native/spamrcvd.pyx").read_text()
    pure = (ROOT / "src/postier/_pure/spamrcvd.py").read_text()
    assert _parser_text(pyx) == _parser_text(pure)
    assert _parser_text(pure).count("L.m(") > 100


# ------------------------------------------------------------------ URIs

TLDS = {"com", "net", "org", "uk", "de", "info", "biz", "io", "xn--p1ai", "jp", "us"}
REDIRECTORS = [
    r"m'^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i",
    r"m'/(?:index.php)?\?.*(?<=[?&])URL=(.*?)(?:$|[&\#])'i",
    r"m'^http.*?/redirect\.php\?.*(?<=[?&])goto=(.*?)(?:$|[&\#])'i",
    r"/^http:\/\/chkpt\.zdnet\.com\/chkpt\/\w+\/(.*)$/i",
]


@pytest.fixture(scope="module")
def ux():
    rb = U.Registry(set(TLDS), {"co.uk", "co.jp"}, {"pvt.k12.ma.us"})
    return U.UriExtractor(rb, [perlre.compile_rule(r) for r in REDIRECTORS])


CANON_CASES = [
    ("HTTP:\\\\Example.COM\\a\\b", ["HTTP:\\\\Example.COM\\a\\b", "HTTP://Example.COM/a/b"]),
    ("http://0x7f.0.0.1/", ["http://0x7f.0.0.1/", "http://127...1/"]),        # SpamAssassin's own result
    ("http://0177.0.0.01/", ["http://0177.0.0.01/", "http://127...1/"]),
    ("http://2130706433/", ["http://2130706433/", "http://127.0.0.1/"]),
    ("http://b\xfccher.example.de/", ["http://b\xfccher.example.de/", "http://xn--bcher-kva.example.de/"]),
    ("http://\xe9t\xe9.example.com/", ["http://\xe9t\xe9.example.com/", "http://xn--t-9fab.example.com/"]),
    ("http://www.google.com/url?sa=t&q=http://evil.example.com/&x=1",
     ["http://www.google.com/url?sa=t&q=http://evil.example.com/&x=1", "http://evil.example.com/"]),
    ("http://ex%41mple.com/%zz%4", ["http://ex%41mple.com/%zz%4", "http://exAmple.com/%25zz%254"]),
    ("example.com", ["example.com", "http://example.com"]),
    ("http://foo", ["http://foo", "http://www.foo.com"]),
    ("mailto:%20%20joe@example.com", ["mailto:%20%20joe@example.com", "mailto:joe@example.com"]),
    ("http://ex&#97;mple.com/&#x41;&#46;",
     ["http://ex&#97;mple.com/&#x41;&#46;", "http://ex&/#97;mple.com/A.", "http://ex/#97;mple.com/A.",
      "http://www.ex&.com/#97;mple.com/A."]),
    ("http://x.example.com\x00/", ["http://x.example.com\x00/", "http://x.example.com/"]),
    ("#frag", ["#frag"]),
    ("", [""]),
]


@pytest.mark.parametrize("uri,want", CANON_CASES, ids=[f"canon{i}" for i in range(len(CANON_CASES))])
def test_canonicalize(ux, uri, want):
    assert U.uri_list_canonicalize(ux.redirectors, [uri], ux.rb, ux.redirector_set) == want
    assert U.uri_list_canonicalize(ux.redirectors, [uri], ux.rb) == want


def test_uri_to_domain(ux):
    rb = ux.rb
    assert rb.uri_to_domain("http://user@www.Example.co.uk:8080/x?y") == ("example.co.uk", "www.example.co.uk")
    assert rb.uri_to_domain("mailto:joe@mail.example.com?subject=x") == ("example.com", "mail.example.com")
    assert rb.uri_to_domain("mailto:a@b@example.com") is None
    assert rb.uri_to_domain("http://192.0.2.1/") == ("192.0.2.1", "192.0.2.1")
    assert rb.uri_to_domain("http://[2001:db8::1]/") is None
    assert rb.uri_to_domain("http://ex%41mple.com/") is None
    assert rb.uri_to_domain("javascript:void(0)") is None
    assert rb.uri_to_domain("http://foo.unknowntld/") is None
    assert rb.split_domain("a.b.pvt.k12.ma.us", True) == ("a", "b.pvt.k12.ma.us")
    assert rb.split_domain("x..y.co.jp.", True) == ("x", "y.co.jp")
    assert rb.trim_domain("host.ci.boston.ma.us", True) == "host.ci.boston.ma.us"


def test_text_uris(ux):
    lines = [b"visit www.example.com or http://foo.example.org/x?y=1 today",
             b"mail me: joe@example.com, (bob@example.co.uk)",
             b"see example.com. and sub.example.net/path!", b"\x1b(Bhttp://esc.example.com/",
             b"bare foo.unknowntld and foo.com", b"a" * 300 + b"@example.com",
             b"\x00\xff\xfe http://n\xe9.example.com/ \x00", b"(see http://paren.example.com/a)b) end",
             b"skype:me@example.com", b"http://" + b"b" * 2100 + b".com/"]
    got = ux.text_uris(lines)
    uris = [u for u, _t in got]
    assert uris[:3] == ["http://www.example.com", "http://foo.example.org/x?y=1", "mailto:joe@example.com"]
    assert "mailto:bob@example.co.uk" in uris and "http://esc.example.com/" in uris
    assert ("http://example.com", {"parsed": 1, "unlinked": 1, "schemeless": 1}) in got
    assert "http://foo.com" in uris and not any("unknowntld" in u for u in uris)
    assert "mailto:me@example.com" in uris
    assert "http://paren.example.com/a)b" in uris             # only a ")" before any "(" cuts
    assert not any(u.startswith("mailto:aaa") for u in uris)    # local part longer than 251


def _random_line(rng: random.Random) -> bytes:
    toks = ["http://", "https://", "www.", "ftp.", "mailto:", "@", ".com", ".co.uk", "example", " ", "  ",
            "(", ")", "<", ">", ",", ".", "-", "_", "a" * 260, "b", "x", "1", "\x1b(B", "\xa0", "\t", "/",
            "?", "&", "#", ";", ":", "'", '"', "%41", "&#46;", "[", "]", "|", "\xe9", "\x00"]
    return "".join(rng.choice(toks) for _ in range(rng.randint(1, 60))).encode("latin-1")


def test_windowed_search_is_finditer(ux):
    """_matches (searches started near the hits of the pre-filter) == finditer."""
    rng = random.Random(5)
    total = 0
    for _ in range(1500):
        line = _random_line(rng)
        want = [(m.span(), m.groups()) for m in ux.re.finditer(line.decode("latin-1"))]
        got = [(m.span(), m.groups()) for m in ux._matches([line])]
        assert got == want, line
        total += len(want)
    assert total > 1000


def test_redirector_prescan(ux):
    """With the Hyperscan pre-scan of the redirectors, the same list."""
    assert ux.redirector_set is not None
    rng = random.Random(9)
    hosts = ["www.google.com/url?q=", "x.example.com/redirect.php?a=1&goto=", "chkpt.zdnet.com/chkpt/ab/",
             "h.example.org/?URL=", "plain.example.net/"]
    for _ in range(300):
        u = "http://" + rng.choice(hosts) + rng.choice(["www.target.com", "http://t.example.org/x",
                                                         "nodot", "%41b.example.com", ""])
        u += rng.choice(["", "&x=1", "#f"])
        assert (U.uri_list_canonicalize(ux.redirectors, [u], ux.rb, ux.redirector_set)
                == U.uri_list_canonicalize(ux.redirectors, [u], ux.rb))


def test_detail_list_memo(ux):
    """A URI found both in the text and in the HTML: merged entry."""
    html = [{"uri_detail": {"http://www.example.com": {"types": {"a": 1}, "anchor_text": ["x", "x", "y"]},
                            "mailto:joe@example.com": {}}}]
    udl = ux.detail_list([b"go to www.example.com now"], html)
    ent = udl["http://www.example.com"]
    assert ent["cleaned"] == ["http://www.example.com"]
    assert ent["types"] == {"parsed": 1, "schemeless": 1, "a": 1}
    assert ent["domains"] == {"example.com": 1} and ent["anchor_text"] == ["x", "y"]
    assert udl["mailto:joe@example.com"]["hosts"] == {"example.com": "example.com"}


# ------------------------------------------------------------------ corpus


def _corpus_messages():
    labels = CORPUS / "labels.tsv"
    if not labels.exists():
        pytest.skip("corpus absent")
    paths = [line.split("\t")[0] for line in labels.read_text().splitlines()[1:]]
    return [CORPUS / p for p in paths[::max(1, len(paths) // 300)]]


@pytest.mark.slow
def test_corpus_native_vs_pure(monkeypatch):
    """Received headers of the corpus: native and pure twin give the same relays,
    and the text-URI windowed search is finditer's on every body line."""
    from postier._pure import spamrcvd as pure

    try:
        from postier._native import spamrcvd as native
    except ImportError:
        pytest.skip("native spamrcvd not built")
    from postier.content.spam.message import Message

    rb = U.Registry(set(TLDS) | {"edu", "gov", "ca", "fr", "nl", "ru", "cn", "au"}, {"co.uk"}, set())
    ux = U.UriExtractor(rb, [perlre.compile_rule(r) for r in REDIRECTORS])
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    n = lines_checked = 0
    for path in _corpus_messages():
        data = path.read_bytes()
        hdrs = parser.parsebytes(data)
        received = [str(v) if isinstance(v, str) else v.encode("latin-1", "replace").decode("latin-1")
                    for v in hdrs.get_all("Received") or []]
        orig = [str(v) for v in hdrs.get_all("X-Originating-IP") or []]
        results = []
        for mod in (native, pure):
            monkeypatch.setattr(R, "_rcvd", mod)
            results.append(relay_strings(received, orig))
        assert results[0] == results[1], path
        for line in Message(data).rendered_body():
            want = [m.span() for m in ux.re.finditer(line.decode("latin-1"))]
            assert [m.span() for m in ux._matches([line])] == want, (path, line)
            lines_checked += 1
        n += 1
    assert n >= 100 and lines_checked > 1000
    assert os.path.isdir(CORPUS)


def test_canonical_memo_is_not_shared(ux):
    """URIs are canonicalised once per extractor; the per-message lists are copies."""
    html = [{"uri_detail": {"http://memo.example.com/a": {"types": {"a": 1}}}}]
    first = ux.detail_list([b"see http://memo.example.com/a"], html)
    first["http://memo.example.com/a"]["cleaned"].append("junk")
    first["http://memo.example.com/a"]["domains"]["junk"] = 1
    second = ux.detail_list([b"see http://memo.example.com/a"], html)
    assert second["http://memo.example.com/a"]["cleaned"] == ["http://memo.example.com/a"]
    assert second["http://memo.example.com/a"]["domains"] == {"example.com": 1}
    long_uri = "http://long.example.com/" + "x" * 5000
    assert ux.detail_list([], [{"uri_detail": {long_uri: {}}}])[long_uri]["domains"] == {"example.com": 1}
    assert long_uri not in ux._canon_memo and "http://memo.example.com/a" in ux._canon_memo


def test_line_match_object_survives_sub(impl):
    """A literal-only pattern's match object is made when asked, for the line
    as it was when m() matched."""
    mod = impl("spamrcvd")
    line = mod.Line("from a.example by b.example", R._cache, R._compile_entry)
    assert line.m(" by ")
    assert line.sub(r"^from ", "")
    assert line.s == "a.example by b.example"
    assert line.g.start() == 14 and line[0] == " by "
    assert line.m(" by ") and line.g.start() == 9
    assert not line.m(" with ") and line.g is None and line[1] is None
    assert line.sub_from(r" b\.(\w+)$", r" c.\1", 5) and line.s == "a.example by c.example"
