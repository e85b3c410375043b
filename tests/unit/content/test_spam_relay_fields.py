"""spamrcvd.relay_fields (native and pure twin): a parsed Received line's
fields cleaned up as Metadata::Received does before make_relay_as_string,
and the relay string made from them (intl=0 msa=0); the two twins agree on
random field values; parse_relays builds its relays from it."""

from __future__ import annotations

import random
import re

import pytest

from postier.content.spam import received as R


def _fields(**kw) -> dict:
    v = {"ip": "", "helo": "", "rdns": "", "by": "", "id": "", "ident": "", "envfrom": None,
         "dns": False, "auth": ""}
    v.update(kw)
    return v


def _names(t: tuple) -> dict:
    keys = ("ip", "by", "helo", "id", "ident", "envfrom", "auth", "rdns", "no_reverse_dns",
            "rdns_not_in_headers", "as_string")
    assert len(t) == len(keys)
    return dict(zip(keys, t, strict=True))


def test_clean_up(impl):
    mod = impl("spamrcvd")
    got = _names(mod.relay_fields(_fields(
        ip="IPv6:[::ffff:10.1.2.3%eth0]", rdns="UnKnown", dns=True, helo="mx.example",
        by="in.example;", id="ABC", envfrom=" <<a@b.example>> ", auth="ESMTPA")))
    assert got["ip"] == "10.1.2.3"
    assert got["rdns"] == "" and got["no_reverse_dns"] and not got["rdns_not_in_headers"]
    assert got["by"] == "in.example"
    assert got["envfrom"] == "a@b.example"
    assert got["as_string"] == ("[ ip=10.1.2.3 rdns= helo=mx.example by=in.example ident= "
                                "envfrom=a@b.example intl=0 id=ABC auth=ESMTPA msa=0 ]")
    got = _names(mod.relay_fields(_fields(ip="192.0.2.1", rdns="host.example...", helo="a(b)<c>",
                                          by="x|y", ident="u#1", id=None, auth=None)))
    # one of the five holding a character of the class: all five get it replaced
    assert (got["ip"], got["rdns"], got["helo"], got["by"], got["ident"]) == \
        ("192.0.2.1", "host.example", "a!b!!c!", "x!y", "u!1")
    assert got["id"] == "" and got["auth"] == "" and got["envfrom"] is None
    assert not got["no_reverse_dns"] and not got["rdns_not_in_headers"]
    assert "envfrom= intl=0 id= auth= msa=0 ]" in got["as_string"]
    got = _names(mod.relay_fields(_fields(ip="192.0.2.9", rdns="[192.0.2.9]")))
    assert got["rdns"] == "" and got["rdns_not_in_headers"] and not got["no_reverse_dns"]
    # "unknown" only as the whole name (an ASCII case-insensitive match, a final "\n" allowed)
    assert _names(mod.relay_fields(_fields(rdns="unknown.example")))["rdns"] == "unknown.example"
    assert _names(mod.relay_fields(_fields(rdns="UNKNOWN\n")))["rdns"] == ""
    assert _names(mod.relay_fields(_fields(rdns="unknow\u212a")))["rdns"] == "unknow\u212a"


_PIECES = ["", "[", "]", "IPv6:", "ipv6:", "\u0130pv6:", "::ffff:", "0:0:0:0:0:ffff:", "10.0.0.1",
           "%eth0", "%", ";", ";\n", "\n", ".", "..", "unknown", "UNKNOWN", "<", ">", " ", "\t",
           "\x00", "#", "(", ")", "|", "a", "mx.example", "\xe9", "\u2028", "\xa0", "!"]


def _rand(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, k)))


def test_twins_agree():
    try:
        from postier._native import spamrcvd as native
    except ImportError:
        pytest.skip("native spamrcvd not built")
    from postier._pure import spamrcvd as pure
    rng = random.Random(11)
    seen_changed = 0
    for _ in range(3000):
        v = _fields(ip=_rand(rng, 4), rdns=_rand(rng, 3), helo=_rand(rng, 3), by=_rand(rng, 3),
                    ident=_rand(rng, 2), id=rng.choice(["", "X1", None]),
                    auth=rng.choice(["", "ESMTPA", None]), dns=rng.random() < 0.5,
                    envfrom=rng.choice([None, _rand(rng, 3)]))
        want = pure.relay_fields(dict(v))
        assert native.relay_fields(dict(v)) == want, v
        seen_changed += want[0] != v["ip"]
    assert seen_changed > 100


def test_parse_relays_uses_it(impl, monkeypatch):
    monkeypatch.setattr(R, "_rcvd", impl("spamrcvd"))
    rs = R.parse_relays(["from mx.example (unknown [IPv6:::ffff:192.0.2.7]) by in.example "
                         "(Postfix) with ESMTP id 4AB; Tue, 10 Nov 2026 12:00:00 +0000"], [])
    (r,) = rs.untrusted
    assert (r.ip, r.rdns, r.helo, r.by, r.id, r.no_reverse_dns, r.ip_private) == \
        ("192.0.2.7", "", "mx.example", "in.example", "4AB", True, False)
    assert re.fullmatch(r"\[ ip=192\.0\.2\.7 rdns= helo=mx\.example by=in\.example ident= "
                        r"envfrom= intl=0 id=4AB auth= msa=0 \]", r.as_string)
    rs = R.parse_relays(["from mx.example (unknown [10.0.0.5]) by in.example "
                         "(Postfix) with ESMTP id 4AC"], [])
    (r,) = rs.trusted
    assert r.ip_private and r.internal and " intl=1 " in r.as_string
