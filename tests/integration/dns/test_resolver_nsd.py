"""postier.dns against a real nsd: record types and statuses through aiodns,
what the cache saves on the wire (packets counted at the SplitProxy), TTL
expiry after a zone change, timeouts, and the client name lookup."""

from __future__ import annotations

import asyncio
import time

import dns_scenarios as S
import pytest
from dnstools import NsdServer, SplitProxy

from postier import dns

run = asyncio.run


def fresh(proxy, **kw) -> dns.Resolver:
    """A resolver of its own (a new c-ares channel: nothing cached anywhere)."""
    kw.setdefault("timeout", 0.5)
    kw.setdefault("tries", 1)
    return dns.Resolver(dns.DnsSettings(nameservers=(proxy.address,), **kw))


def test_record_types_and_statuses(dns_server):
    _nsd, proxy = dns_server
    r = fresh(proxy)

    async def go():
        return await r.query_all([
            ("dns.test", "NS"), ("mixed-mx.dns.test", "MX"), ("mx.good.dns.test", "A"),
            ("helo-aaaa.dns.test", "AAAA"), ("2.2.0.192.bl.test", "TXT"),
            ("11.0.0.127.in-addr.arpa", "PTR"), ("nullmx.dns.test", "MX"),
            ("nx.dns.test", "A"), ("txt-only.dns.test", "MX"), ("mx-malformed.dns.test", "MX"),
            ("5.2.0.192.bl.test", "TXT")])
    (ns, mx, a, aaaa, txt, ptr, nullmx, nx, nodata, malformed, two) = run(go())
    assert ns.records == ("ns.dns.test",)
    assert sorted(mx.records) == [(10, "mx1.mixed-mx.dns.test"), (20, "mx2.mixed-mx.dns.test")]
    assert (a.records, a.ttl) == (("198.51.100.25",), 60)
    assert aaaa.records == ("2001:db8::40",)
    assert txt.records == ("Listed: 192.0.2.2 sent spam, see https://bl.test/q?192.0.2.2",)
    assert ptr.records == ("fcrdns-ok.dns.test",)
    assert nullmx.status == dns.NULLMX
    assert (nx.status, nx.herror) == (dns.NOTFOUND, dns.HOST_NOT_FOUND)
    assert (nodata.status, nodata.herror) == (dns.NOTFOUND, dns.NO_DATA)
    assert malformed.status == dns.INVAL
    assert sorted(two.records) == ["first part", "second part"]


def test_cache_hits_send_nothing(dns_server):
    _nsd, proxy = dns_server
    r = fresh(proxy)

    async def go():
        before = proxy.forwarded
        first = await r.query("mx.good.dns.test", "A")
        neg = await r.query("nx2.dns.test", "A")
        sent = proxy.forwarded - before
        again = [await r.query("mx.good.dns.test", "A") for _ in range(5)]
        again += [await r.query("nx2.dns.test", "A") for _ in range(5)]
        return first, neg, sent, again, proxy.forwarded - before
    first, neg, sent, again, total = run(go())
    assert first.ok and neg.status == dns.NOTFOUND
    assert sent == 2 and total == 2           # ten more answers, no more packets
    assert again[0] == first and again[-1] == neg
    assert r.stats()["cache_hits"] == 10 and r.stats()["sent"] == 2


def test_concurrent_identical_queries_are_one_packet(dns_server):
    _nsd, proxy = dns_server
    r = fresh(proxy)

    async def go():
        before = proxy.forwarded
        answers = await asyncio.gather(*(r.query("only-a.dns.test", "A") for _ in range(20)))
        return answers, proxy.forwarded - before
    answers, sent = run(go())
    assert {a.records for a in answers} == {("198.51.100.30",)} and sent == 1


def test_timeout_is_a_temporary_failure_within_the_deadline(dns_server):
    _nsd, proxy = dns_server
    r = fresh(proxy, timeout=0.3, tries=1)

    async def go():
        t0 = time.monotonic()
        a = await r.query("x.slow.test", "A")
        return a, time.monotonic() - t0
    a, _elapsed = run(go())
    assert (a.status, a.herror) == (dns.RETRY, dns.TRY_AGAIN)
    assert "x.slow.test" in proxy.dropped


@pytest.mark.slow
def test_answers_expire_with_their_ttl():
    zone = S.SOA.format(serial=1) + "h IN A 198.51.100.1\n"
    with NsdServer({"ttl.test": zone}, ttl=1) as nsd, SplitProxy(nsd.port) as proxy:
        r = fresh(proxy)

        async def ask():
            return (await r.query("h.ttl.test", "A")).records

        assert run(ask()) == ("198.51.100.1",)
        nsd.set_zone("ttl.test", S.SOA.format(serial=2) + "h IN A 198.51.100.2\n")
        assert run(ask()) == ("198.51.100.1",)          # still cached (TTL 1 s)
        time.sleep(1.3)
        assert run(ask()) == ("198.51.100.2",)          # expired: asked again
        assert r.stats()["cache_expired"] == 1


@pytest.mark.parametrize("addr, name, status, rname, rstatus", [
    ("127.0.0.11", "fcrdns-ok.dns.test", 2, "fcrdns-ok.dns.test", 2),
    ("127.0.0.12", "unknown", 6, "fcrdns-bad.dns.test", 2),
    ("127.0.0.13", "unknown", 5, "unknown", 5),
    ("127.0.0.15", "unknown", 4, "fcrdns.slow.test", 2),
    ("127.0.0.16", "unknown", 4, "unknown", 4),
    ("127.0.0.1", "localhost", 2, "localhost", 2),           # /etc/hosts, no DNS
])
def test_client_name_lookup(dns_server, addr, name, status, rname, rstatus):
    _nsd, proxy = dns_server
    info = run(dns.lookup_peer(fresh(proxy, timeout=0.3), addr))
    assert (info.name, info.name_status, info.reverse_name, info.reverse_status) == \
        (name, status, rname, rstatus)
