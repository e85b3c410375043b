"""MX ordering, implicit-MX fallback, loop detection and Postfix's lookup error texts,
with the DNS answers supplied by a fake (the real resolver path is tested against
nsd in tests/integration/delivery/test_smtp_mx_nsd.py)."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from postier.delivery import dnsmx
from postier.delivery.dnsmx import (
    Address,
    LookupFailure,
    LookupOptions,
    balance_inet_protocols,
    order_addresses,
    parse_nameservers,
    sort_mx,
    truncate_self,
)

V4, V6 = socket.AF_INET, socket.AF_INET6


def A(host, addr, pref=0, fam=V4):
    return Address(host, addr, fam, pref, 25)


# --------------------------------------------------------------------------- pure logic

def test_sort_mx_by_preference():
    recs = [(20, "b"), (10, "a"), (30, "c")]
    assert sort_mx(recs, randomize=False) == [(10, "a"), (20, "b"), (30, "c")]


def test_sort_mx_shuffles_equal_preferences_only():
    recs = [(10, "a1"), (10, "a2"), (10, "a3"), (20, "b")]
    seen = set()
    for seed in range(40):
        out = sort_mx(recs, random.Random(seed))
        assert out[-1] == (20, "b")
        assert sorted(out[:3]) == [(10, "a1"), (10, "a2"), (10, "a3")]
        seen.add(tuple(h for _p, h in out[:3]))
    assert len(seen) > 1                     # really random
    assert sort_mx(recs, randomize=False)[:3] == [(10, "a1"), (10, "a2"), (10, "a3")]


def test_order_addresses_preference():
    addrs = [A("m", "::1", 10, V6), A("m", "192.0.2.1", 10), A("n", "192.0.2.2", 5)]
    assert [a.addr for a in order_addresses(addrs, "ipv4", randomize=False)] == \
        ["192.0.2.2", "192.0.2.1", "::1"]
    assert [a.addr for a in order_addresses(addrs, "ipv6", randomize=False)] == \
        ["192.0.2.2", "::1", "192.0.2.1"]
    assert [a.addr for a in order_addresses(addrs, "any", randomize=False)] == \
        ["192.0.2.2", "::1", "192.0.2.1"]


def test_truncate_self_drops_own_preference_and_worse():
    addrs = [A("a", "192.0.2.1", 10), A("b", "192.0.2.2", 20), A("me", "198.51.100.1", 20),
             A("c", "192.0.2.3", 30)]
    kept, me = truncate_self(addrs, {"198.51.100.1"})
    assert [a.host for a in kept] == ["a"] and me.host == "me"
    kept, me = truncate_self(addrs, {"203.0.113.9"})
    assert kept == addrs and me is None


def test_truncate_self_compares_canonical_ipv6():
    kept, me = truncate_self([A("x", "2001:db8::1", 10, V6)], {"2001:0db8:0:0::1"})
    assert kept == [] and me is not None


@pytest.mark.parametrize("v4, v6, limit, want4, want6", [
    (3, 1, 2, 1, 1),     # few IPv6: keep them all (region R1)
    (1, 3, 2, 1, 1),     # few IPv4 (R3)
    (4, 4, 4, 2, 2),     # both many (R2)
    (2, 2, 5, 2, 2),     # under the limit: unchanged
    (5, 0, 2, 5, 0),     # one family: unchanged
])
def test_balance_inet_protocols(v4, v6, limit, want4, want6):
    addrs = [A("h", f"192.0.2.{i}") for i in range(v4)] + [A("h", f"2001:db8::{i}", 0, V6) for i in range(v6)]
    out = balance_inet_protocols(addrs, limit)
    assert sum(a.family == V4 for a in out) == want4
    assert sum(a.family == V6 for a in out) == want6


@pytest.mark.parametrize("values, out", [
    (["127.0.0.1"], [("127.0.0.1", 53)]),
    (["127.0.0.1:5353"], [("127.0.0.1", 5353)]),
    (["[::1]:5353", "::1"], [("::1", 5353), ("::1", 53)]),
])
def test_parse_nameservers(values, out):
    assert parse_nameservers(values) == out


@pytest.mark.parametrize("bad", ["ns.example.test", "127.0.0.1:0", "127.0.0.1:x", "[::1", "[::1]x"])
def test_parse_nameservers_rejects(bad):
    with pytest.raises(ValueError):
        parse_nameservers([bad])


# --------------------------------------------------------------------------- lookups with a fake DNS

class FakeDns:
    def __init__(self, answers):
        self.answers = answers      # (name, qtype) -> (status, records, err)
        self.asked = []

    async def query(self, resolver, name, qtype):
        self.asked.append((name, qtype))
        return self.answers.get((name, qtype), ("notfound", [], dnsmx.HOST_NOT_FOUND))


@pytest.fixture
def fake(monkeypatch):
    def install(answers):
        f = FakeDns(answers)
        monkeypatch.setattr(dnsmx, "_query", f.query)
        return f
    return install


OPTS = LookupOptions(families=(V4,), randomize=False)


def run(coro):
    return asyncio.run(coro)


def test_mx_hosts_in_order(fake):
    fake({("x.test", "MX"): ("ok", [(20, "mx2.x.test."), (10, "mx1.x.test.")], ""),
          ("mx1.x.test", "A"): ("ok", ["192.0.2.1"], ""),
          ("mx2.x.test", "A"): ("ok", ["192.0.2.2", "192.0.2.3"], "")})
    addrs, me = run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    assert [(a.host, a.addr, a.pref) for a in addrs] == [
        ("mx1.x.test", "192.0.2.1", 10), ("mx2.x.test", "192.0.2.2", 20), ("mx2.x.test", "192.0.2.3", 20)]
    assert me is False


def test_no_mx_falls_back_to_address_records(fake):
    f = fake({("x.test", "MX"): ("notfound", [], dnsmx.NO_DATA),
              ("x.test", "A"): ("ok", ["192.0.2.9"], "")})
    addrs, _ = run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    assert [(a.host, a.addr) for a in addrs] == [("x.test", "192.0.2.9")]
    assert f.asked == [("x.test", "MX"), ("x.test", "A")]


def test_unreachable_mx_host_is_skipped_when_another_resolves(fake):
    fake({("x.test", "MX"): ("ok", [(10, "gone.x.test"), (20, "ok.x.test")], ""),
          ("ok.x.test", "A"): ("ok", ["192.0.2.2"], "")})
    addrs, _ = run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    assert [a.host for a in addrs] == ["ok.x.test"]


def test_both_families_queried_and_last_type_reported(fake):
    opts = LookupOptions(families=(V4, V6), randomize=False)
    f = fake({})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.host_addrs("none.test", 25, opts, resolver=object()))
    assert f.asked == [("none.test", "A"), ("none.test", "AAAA")]
    assert (e.value.dsn, e.value.text) == ("5.4.4", "Host or domain name not found. Name service "
                                                    "error for name=none.test type=AAAA: Host not found")


@pytest.mark.parametrize("status, err, dsn", [
    ("retry", dnsmx.TRY_AGAIN, "4.4.3"),
    ("fail", dnsmx.NO_RECOVERY, "5.4.3"),
    ("notfound", dnsmx.NO_DATA, "5.4.4"),
])
def test_address_lookup_errors(fake, status, err, dsn):
    fake({("h.test", "A"): (status, [], err)})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.host_addrs("h.test", 25, OPTS, resolver=object()))
    assert e.value.dsn == dsn
    assert e.value.text == f"Host or domain name not found. Name service error for name=h.test type=A: {err}"


def test_mx_lookup_temporary_failure_defers(fake):
    fake({("x.test", "MX"): ("retry", [], dnsmx.TRY_AGAIN)})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    assert (e.value.dsn, e.value.text) == (
        "4.4.3", "Host or domain name not found. Name service error for name=x.test type=MX: "
                 "Host not found, try again")


def test_ignore_mx_lookup_error(fake):
    fake({("x.test", "MX"): ("retry", [], dnsmx.TRY_AGAIN), ("x.test", "A"): ("ok", ["192.0.2.5"], "")})
    addrs, _ = run(dnsmx.domain_addrs("x.test", 25, OPTS, ignore_mx_lookup_error=True,
                                      resolver=object()))
    assert [a.addr for a in addrs] == ["192.0.2.5"]


def test_null_mx(fake):
    fake({("x.test", "MX"): ("nullmx", [], "")})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    assert (e.value.dsn, e.value.text) == ("5.1.0", "Domain x.test does not accept mail (nullMX)")


def test_soft_error_dominates(fake):
    fake({("x.test", "MX"): ("ok", [(10, "a.x.test"), (20, "b.x.test")], ""),
          ("a.x.test", "A"): ("retry", [], dnsmx.TRY_AGAIN),
          ("b.x.test", "A"): ("notfound", [], dnsmx.HOST_NOT_FOUND)})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.domain_addrs("x.test", 25, OPTS, resolver=object()))
    # the text is the last lookup's, the status stays soft
    assert (e.value.dsn, e.value.text) == (
        "4.4.4", "Host or domain name not found. Name service error for name=b.x.test type=A: Host not found")


def test_mx_points_to_myself(fake):
    fake({("x.test", "MX"): ("ok", [(10, "me.x.test")], ""),
          ("me.x.test", "A"): ("ok", ["198.51.100.1"], "")})
    opts = LookupOptions(families=(V4,), randomize=False, own_addresses=frozenset({"198.51.100.1"}))
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.domain_addrs("x.test", 25, opts, loop_detect=True, resolver=object()))
    assert (e.value.dsn, e.value.text) == ("5.4.6", "mail for x.test loops back to myself")
    # without loop detection (not port 25) the address is used
    addrs, _ = run(dnsmx.domain_addrs("x.test", 25, opts, resolver=object()))
    assert [a.addr for a in addrs] == ["198.51.100.1"]


def test_backup_mx_keeps_only_better_hosts(fake):
    fake({("x.test", "MX"): ("ok", [(10, "primary.x.test"), (20, "me.x.test"), (30, "worse.x.test")], ""),
          ("primary.x.test", "A"): ("ok", ["192.0.2.1"], ""),
          ("me.x.test", "A"): ("ok", ["198.51.100.1"], ""),
          ("worse.x.test", "A"): ("ok", ["192.0.2.3"], "")})
    opts = LookupOptions(families=(V4,), randomize=False, own_addresses=frozenset({"198.51.100.1"}))
    addrs, me = run(dnsmx.domain_addrs("x.test", 25, opts, loop_detect=True, resolver=object()))
    assert [a.host for a in addrs] == ["primary.x.test"] and me is True


def test_backup_mx_whose_primary_does_not_resolve(fake):
    fake({("x.test", "MX"): ("ok", [(10, "primary.x.test"), (20, "me.x.test")], ""),
          ("me.x.test", "A"): ("ok", ["198.51.100.1"], "")})
    opts = LookupOptions(families=(V4,), randomize=False, own_addresses=frozenset({"198.51.100.1"}))
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.domain_addrs("x.test", 25, opts, loop_detect=True, resolver=object()))
    assert (e.value.dsn, e.value.text) == ("4.4.4", "unable to find primary relay for x.test")


def test_host_is_myself(fake):
    fake({("me.test", "A"): ("ok", ["198.51.100.1"], "")})
    opts = LookupOptions(families=(V4,), randomize=False, own_addresses=frozenset({"198.51.100.1"}))
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.host_addrs("me.test", 25, opts, loop_detect=True, resolver=object()))
    assert (e.value.dsn, e.value.text) == ("5.4.6", "mail for me.test loops back to myself")


def test_numeric_host_needs_no_lookup(fake):
    f = fake({})
    [a] = run(dnsmx.host_addrs("192.0.2.7", 2525, OPTS, resolver=object()))
    assert (a.host, a.addr, a.port) == ("192.0.2.7", "192.0.2.7", 2525) and f.asked == []
    [a] = run(dnsmx.host_addrs("ipv6:2001:db8::1", 25, LookupOptions(families=(V4, V6)),
                               resolver=object()))
    assert (a.addr, a.family) == ("2001:db8::1", V6)


def test_numeric_host_of_a_disabled_family(fake):
    fake({})
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.host_addrs("2001:db8::1", 25, OPTS, resolver=object()))
    assert e.value.dsn == "5.4.4"


@pytest.fixture
def native(monkeypatch):
    """getaddrinfo answers from a table: tests never touch the system resolver."""
    def install(table):
        async def getaddrinfo(host, family):
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(fam, socket.SOCK_STREAM, 6, "", (addr, 0)) for fam, addr in table[host]]
        monkeypatch.setattr(dnsmx, "_getaddrinfo", getaddrinfo)
    return install


def test_native_lookup(native):
    native({"mail.test": [(V4, "192.0.2.8"), (V6, "2001:db8::8"), (V4, "192.0.2.8")]})
    opts = LookupOptions(dns=False, native=True, families=(V4,), randomize=False)
    addrs = run(dnsmx.host_addrs("mail.test", 25, opts))
    assert [a.addr for a in addrs] == ["192.0.2.8"]         # other family and duplicates dropped


def test_native_lookup_failure_text(native):
    native({})
    opts = LookupOptions(dns=False, native=True, families=(V4,))
    with pytest.raises(LookupFailure) as e:
        run(dnsmx.host_addrs("nowhere.test", 25, opts))
    assert (e.value.dsn, e.value.text) == (
        "5.4.4", "unable to look up host nowhere.test: Name or service not known")


def test_native_after_dns_not_found(fake, native):
    fake({})
    native({"hosts-only.test": [(V4, "192.0.2.9")]})
    opts = LookupOptions(dns=True, native=True, families=(V4,), randomize=False)
    [a] = run(dnsmx.host_addrs("hosts-only.test", 25, opts, resolver=object()))
    assert a.addr == "192.0.2.9"


def test_address_limit_balances_families(fake):
    fake({("h.test", "A"): ("ok", ["192.0.2.1", "192.0.2.2", "192.0.2.3"], ""),
          ("h.test", "AAAA"): ("ok", ["2001:db8::1", "2001:db8::2"], "")})
    opts = LookupOptions(families=(V4, V6), randomize=False, address_limit=2)
    addrs = run(dnsmx.host_addrs("h.test", 25, opts, resolver=object()))
    assert sorted(a.family for a in addrs) == [V4, V6]
