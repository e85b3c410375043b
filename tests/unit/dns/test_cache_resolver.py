"""postier.dns: the TTL/LRU cache, the resolver's statuses, caching, coalescing,
deadlines and settings (answers from a fake backend; the real aiodns path is
tested against nsd in tests/integration/dns/)."""

from __future__ import annotations

import asyncio

import pytest
from dns_fakes import FakeBackend, FakeClock, resolver

from postier import dns
from postier.config import Config
from postier.dns import TtlCache
from postier.errors import ConfigError

run = asyncio.run


# --------------------------------------------------------------------------- cache

def test_cache_entry_lives_for_its_ttl(clock):
    c = TtlCache(10, clock=clock)
    c.put("k", "v", 30)
    clock.advance(29.9)
    assert c.get("k") == "v"
    clock.advance(0.1)
    assert c.get("k") is None
    assert (c.hits, c.misses, c.expired) == (1, 1, 1)


def test_cache_is_lru_bounded(clock):
    c = TtlCache(2, clock=clock)
    c.put("a", 1, 60)
    c.put("b", 2, 60)
    assert c.get("a") == 1          # a is now the most recently used
    c.put("c", 3, 60)               # evicts b
    assert (c.get("a"), c.get("b"), c.get("c")) == (1, None, 3)
    assert c.evicted == 1 and len(c) == 2


def test_cache_zero_ttl_or_size_stores_nothing(clock):
    c = TtlCache(2, clock=clock)
    c.put("a", 1, 0)
    assert c.get("a") is None
    z = TtlCache(0, clock=clock)
    z.put("a", 1, 60)
    assert len(z) == 0
    with pytest.raises(ValueError):
        TtlCache(-1)


# --------------------------------------------------------------------------- answers

def test_answer_why_texts():
    a = dns.failed("x.test", "A", dns.NOTFOUND, dns.HOST_NOT_FOUND)
    assert a.why == ("Host or domain name not found. Name service error for name=x.test "
                     "type=A: Host not found")
    assert dns.Answer("n.test", "MX", dns.NULLMX).why == \
        "Domain n.test does not accept mail (nullMX)"
    assert dns.Answer("ok.test", "A", dns.OK, ("192.0.2.1",), 60).why == ""


def test_status_precedence_is_postfix_dns_h():
    # DNS_OK > POLICY > RETRY > INVAL > FAIL > NULLMX > NOTFOUND
    assert dns.best_status([dns.NOTFOUND, dns.NULLMX]) == dns.NULLMX
    assert dns.best_status([dns.NOTFOUND, dns.RETRY, dns.NOTFOUND]) == dns.RETRY
    assert dns.best_status([dns.RETRY, dns.INVAL]) == dns.RETRY
    assert dns.best_status([dns.FAIL, dns.INVAL]) == dns.INVAL
    assert dns.best_status([dns.RETRY, dns.OK]) == dns.OK


def test_reverse_name():
    assert dns.reverse_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert dns.reverse_name("2001:db8::1") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
    with pytest.raises(ValueError):
        dns.reverse_name("not-an-address")


# --------------------------------------------------------------------------- caching

def test_positive_answer_is_cached_for_its_ttl(clock):
    r, be = resolver({("h.test", "A"): (dns.OK, ["192.0.2.1"], 30)}, clock=clock)

    async def go():
        a1 = await r.query("h.test", "A")
        a2 = await r.query("H.Test", "a")          # same key: case, type case
        clock.advance(31)
        a3 = await r.query("h.test", "A")
        return a1, a2, a3
    a1, a2, a3 = run(go())
    assert a1.records == ("192.0.2.1",) and a2 == a1 and a3.ok
    assert be.asked == [("h.test", "A"), ("h.test", "A")]     # hit, then expired: asked again
    assert r.stats()["cache_hits"] == 1 and r.stats()["cache_expired"] == 1


def test_negative_answer_uses_negative_ttl(clock):
    r, be = resolver({}, clock=clock, negative_ttl=10)

    async def go():
        await r.query("nx.test", "A")
        clock.advance(9)
        await r.query("nx.test", "A")
        clock.advance(2)
        return await r.query("nx.test", "A")
    a = run(go())
    assert a.status == dns.NOTFOUND and a.herror == dns.HOST_NOT_FOUND
    assert be.asked == [("nx.test", "A")] * 2


def test_failures_are_retried_then_remembered_only_briefly(clock):
    r, be = resolver({("s.test", "A"): (dns.RETRY, [], 0)}, clock=clock, timeout=1, tries=2)

    async def go():
        await r.query("s.test", "A")
        clock.advance(1.9)                          # within dns_timeout x dns_tries
        await r.query("s.test", "A")
        clock.advance(0.2)
        return await r.query("s.test", "A")
    assert run(go()).status == dns.RETRY
    assert len(be.asked) == 4                       # two lookups of two tries each
    assert r.stats()["timeouts"] == 4


def test_a_failed_try_is_repeated():
    class Flaky(FakeBackend):
        async def lookup(self, name, qtype):
            self.asked.append((name, qtype))
            if len(self.asked) == 1:
                return dns.failed(name, qtype, dns.RETRY, dns.TRY_AGAIN)
            return dns.Answer(name, qtype, dns.OK, ("192.0.2.1",), 60)
    be = Flaky()
    r = dns.Resolver(dns.DnsSettings(tries=2), backend=be)
    assert run(r.query("f.test", "A")).records == ("192.0.2.1",)
    assert len(be.asked) == 2


def test_identical_queries_in_flight_are_coalesced():
    r, be = resolver({("h.test", "MX"): (dns.OK, [(10, "mx.h.test")])}, delay=0.05)

    async def go():
        return await asyncio.gather(*(r.query("h.test", "MX") for _ in range(5)))
    answers = run(go())
    assert {a.records for a in answers} == {((10, "mx.h.test"),)}
    assert be.asked == [("h.test", "MX")]
    assert r.stats()["joined"] == 4


def test_query_all_sends_everything_at_once():
    keys = [("h.test", "A"), ("h.test", "AAAA"), ("h.test", "MX")]
    r, be = resolver({k: (dns.OK, ["192.0.2.1"] if k[1] == "A" else ["2001:db8::1"]
                          if k[1] == "AAAA" else [(10, "mx.test")]) for k in keys}, delay=0.05)
    answers = run(r.query_all(keys))
    assert [a.qtype for a in answers] == ["A", "AAAA", "MX"]
    assert be.max_inflight == 3


def test_a_cancelled_caller_does_not_cancel_the_lookup():
    r, be = resolver({("h.test", "A"): (dns.OK, ["192.0.2.9"])}, delay=0.05)

    async def go():
        t = asyncio.ensure_future(r.query("h.test", "A"))
        await asyncio.sleep(0.01)
        t.cancel()
        await asyncio.sleep(0.08)
        return r.cached("h.test", "A")
    cached = run(go())
    assert cached is not None and cached.records == ("192.0.2.9",)
    assert len(be.asked) == 1


def test_prefetch_fills_the_cache_without_waiting():
    r, be = resolver({("2.0.0.127.bl.test", "A"): (dns.OK, ["127.0.0.2"])}, delay=0.02)

    async def go():
        r.prefetch([("2.0.0.127.bl.test", "A"), ("2.0.0.127.bl.test", "A")])
        started = list(be.asked)
        await asyncio.sleep(0.05)
        a = await r.query("2.0.0.127.bl.test", "A")
        return started, a
    started, a = run(go())
    assert a.ok and len(be.asked) == 1
    assert started == []            # prefetch returned before the lookup even ran


def test_deadline_turns_a_hanging_lookup_into_retry():
    r, be = resolver({("slow.test", "A"): (dns.OK, ["192.0.2.1"])}, delay=5, timeout=0.05,
                     tries=1)

    async def go():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        a = await r.query("slow.test", "A")
        return a, loop.time() - t0
    a, _elapsed = run(go())
    assert a.status == dns.RETRY and a.herror == dns.TRY_AGAIN
    assert a.why.endswith("type=A: Host not found, try again")
    assert r.stats()["timeouts"] == 1


def test_a_backend_exception_is_a_temporary_failure(logs):
    class Broken(FakeBackend):
        async def lookup(self, name, qtype):
            raise RuntimeError("boom")
    r = dns.Resolver(backend=Broken())
    a = run(r.query("x.test", "A"))
    assert a.status == dns.RETRY
    assert logs.lines == ["warning: DNS lookup x.test/A: RuntimeError: boom"]


@pytest.mark.parametrize("name", ["192.0.2.1", "bad..name.test", "-x.test", "a b.test", "",
                                  "Trailing.Dot.test."])
def test_invalid_query_names_are_not_found_without_a_query(name):
    r, be = resolver({("trailing.dot.test", "A"): (dns.OK, ["192.0.2.1"])})
    run(r.query("trailing.dot.test", "A"))
    a = run(r.query(name, "A"))
    assert a.status == dns.NOTFOUND and be.asked == [("trailing.dot.test", "A")]
    assert a.why == f"Name service error for {name}: invalid host or domain name"


def test_cache_survives_a_new_event_loop():
    r, be = resolver({("h.test", "A"): (dns.OK, ["192.0.2.1"])})
    run(r.query("h.test", "A"))
    run(r.query("h.test", "A"))
    assert len(be.asked) == 1


# --------------------------------------------------------------------------- record checks

def test_mx_record_checks(logs):
    r, _be = resolver({
        ("null.test", "MX"): (dns.OK, [(0, "")]),
        ("num.test", "MX"): (dns.OK, [(10, "10.0.0.5")]),
        ("bad.test", "MX"): (dns.OK, [(10, "bad!name.test")]),
        ("half.test", "MX"): (dns.OK, [(10, "bad!name.test"), (20, "good.test")]),
    })

    async def go():
        return [await r.query(n, "MX") for n in ("null.test", "num.test", "bad.test", "half.test")]
    null, num, bad, half = run(go())
    assert null.status == dns.NULLMX
    assert num.ok and num.records == ((10, "10.0.0.5"),)
    assert bad.status == dns.INVAL
    assert bad.why == ("Name service error for name=bad.test type=MX: "
                       "Malformed or unexpected name server reply")
    assert half.ok and half.records == ((20, "good.test"),)
    assert logs.lines == [
        "warning: numeric domain name in resource data of MX record for num.test: 10.0.0.5",
        "warning: valid_hostname: invalid character 33(decimal): bad!name.test",
        "warning: malformed domain name in resource data of MX record for bad.test: "
        "bad!name.test",
        "warning: valid_hostname: invalid character 33(decimal): bad!name.test",
        "warning: malformed domain name in resource data of MX record for half.test: "
        "bad!name.test",
    ]


@pytest.mark.parametrize("name, gripe", [
    ("", "valid_hostname: empty hostname"),
    ("a..b", "valid_hostname: misplaced delimiter: a..b"),
    ("a-.b", "valid_hostname: misplaced hyphen: a-.b"),
    ("1.2.3", "valid_hostname: numeric hostname: 1.2.3"),
    ("x" * 64 + ".test", "valid_hostname: hostname label too long: " + "x" * 64 + ".test"),
    ("ok-name.test", None),
])
def test_hostname_gripes_like_postfix(name, gripe):
    from postier.dns.resolver import hostname_gripe
    assert hostname_gripe(name) == gripe


# --------------------------------------------------------------------------- settings / registry

@pytest.mark.parametrize("values, out", [
    (["127.0.0.1"], [("127.0.0.1", 53)]),
    (["127.0.0.1:5353"], [("127.0.0.1", 5353)]),
    (["[::1]:5353", "::1"], [("::1", 5353), ("::1", 53)]),
])
def test_parse_nameservers(values, out):
    assert dns.parse_nameservers(values) == out


def test_settings_from_config(monkeypatch):
    monkeypatch.delenv("POSTIER_DNS_NAMESERVERS", raising=False)
    cfg = Config.from_text("dns_nameservers = 127.0.0.1:5353, [::1]:53\ndns_timeout = 2s\n"
                           "dns_tries = 3\ndns_cache_size = 50\ndns_negative_ttl = 5m\n")
    s = dns.DnsSettings.from_config(cfg)
    assert s == dns.DnsSettings(("127.0.0.1:5353", "[::1]:53"), 2.0, 3, 50, 300.0)
    assert s.deadline == 12.0                       # 3 tries x 2 servers x 2 s
    d = dns.DnsSettings.from_config(Config.from_text(""))
    assert (d.nameservers, d.timeout, d.tries, d.cache_size, d.negative_ttl) == \
        ((), 5.0, 2, 10000, 60.0)


def test_test_suite_guard_env_applies_only_without_dns_nameservers(monkeypatch):
    monkeypatch.setenv("POSTIER_DNS_NAMESERVERS", "127.0.0.1:9")
    assert dns.DnsSettings.from_config(Config.from_text("")).nameservers == ("127.0.0.1:9",)
    cfg = Config.from_text("dns_nameservers = 127.0.0.1:5353\n")
    assert dns.DnsSettings.from_config(cfg).nameservers == ("127.0.0.1:5353",)


def test_bad_nameserver_is_a_config_error():
    with pytest.raises(ConfigError, match="parameter dns_nameservers: bad nameserver address: "
                                          "ns.example.test"):
        dns.DnsSettings.from_config(Config.from_text("dns_nameservers = ns.example.test\n"))


def test_one_resolver_per_settings_in_the_process():
    dns.close_resolvers()
    s = dns.DnsSettings(nameservers=("127.0.0.1:5353",), timeout=1.0)
    a = dns.get_resolver(s)
    assert dns.get_resolver(s) is a
    assert dns.get_resolver(nameservers=["127.0.0.1:5353"]) is a   # the smtp client's way
    assert dns.get_resolver(nameservers=["127.0.0.1:5354"]) is not a
    dns.close_resolvers()
    assert dns.get_resolver(s) is not a
    dns.close_resolvers()


def test_fake_clock_helper():
    c = FakeClock(5)
    c.advance(2)
    assert c() == 7
