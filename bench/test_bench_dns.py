"""DNSBL checks per second: the restriction engine with 4 DNS lists per client
against a real nsd on 127.0.0.1 (tools/nsd_server.py), cache cold and warm.

    smtpd_recipient_restrictions = reject_rbl_client bl1.test, reject_rbl_client bl2.test,
        reject_rbl_client bl3.test, reject_rbl_client bl4.test, reject_unauth_destination

2,000 distinct clients (10.0.x.y; every 10th is listed in one of the lists,
with an A and a TXT record); one RCPT per client through
RestrictionEngine.rcpt() with postier.smtpd.dnschecks installed.

* cold, 1 session: clients one after the other, every lookup goes to nsd;
  the 4 lists of a client are asked at once (pre-fetch), so a client costs
  about one round trip, not four;
* cold, 50 sessions: 50 clients checked concurrently;
* warm: the same 2,000 clients again on the same resolver: every answer
  from postier's cache, no packet sent.

"Cold" uses a new Resolver (a new c-ares channel, so c-ares' own cache is
empty too) and fresh client addresses for every round.  Checks/s (one check
= one client against 4 lists) go into extra_info and are printed (-s).
POSTIER_BENCH_SMALL=1: 400 clients.  Skipped when nsd is not installed.
No timing assertions; `pytest bench --benchmark-disable` is the smoke run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "src"), os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from nsd_server import NsdServer, nsd_available  # noqa: E402

from postier import dns  # noqa: E402
from postier.config import Config  # noqa: E402
from postier.smtpd.dnschecks import DnsChecks  # noqa: E402
from postier.smtpd.restrictions import RestrictionEngine  # noqa: E402
from postier.smtpd.state import Client, SessionState  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")
CLIENTS = 400 if SMALL else 2000
LISTS = ("bl1.test", "bl2.test", "bl3.test", "bl4.test")
ROUNDS = 3        # distinct client ranges, so that every cold round is really cold

pytestmark = pytest.mark.skipif(not nsd_available(), reason="nsd not installed")


def client_addr(round_no: int, i: int) -> str:
    return f"10.{round_no}.{i // 250}.{i % 250 + 1}"


def zones() -> dict[str, str]:
    out = {}
    for k, name in enumerate(LISTS):
        lines = [f"@ IN SOA ns.{name}. hostmaster.{name}. ( 1 3600 600 86400 60 )",
                 f"@ IN NS ns.{name}.", "ns IN A 127.0.0.1"]
        for r in range(ROUNDS + 1):
            for i in range(k, CLIENTS, 10 * len(LISTS)):
                rev = ".".join(reversed(client_addr(r, i).split(".")))
                lines += [f"{rev} IN A 127.0.0.2", f'{rev} IN TXT "listed in {name}"']
        out[name] = "\n".join(lines) + "\n"
    return out


MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.lab.example
mydomain = lab.example
mydestination = $myhostname, $mydomain
mynetworks = 127.0.0.1/32
inet_interfaces = 127.0.0.1
local_recipient_maps =
smtpd_relay_restrictions =
smtpd_recipient_restrictions = {lists}, reject_unauth_destination
"""


@pytest.fixture(scope="module")
def nsd():
    with NsdServer(zones(), ttl=3600) as server:
        yield server


def make_engine(nsd) -> tuple[RestrictionEngine, dns.Resolver]:
    cfg = Config.from_text(MAIN_CF.format(
        lists=", ".join(f"reject_rbl_client {x}" for x in LISTS)))
    engine = RestrictionEngine(cfg, own_addresses_=["127.0.0.1"])
    r = dns.Resolver(dns.DnsSettings(nameservers=(f"127.0.0.1:{nsd.port}",), timeout=2, tries=2,
                                     cache_size=4 * 3 * CLIENTS))
    engine.use_dns(DnsChecks(engine, r, hosts=None))
    return engine, r


async def check_all(engine: RestrictionEngine, round_no: int, sessions: int) -> int:
    """One RCPT per client, `sessions` at a time; returns how many were rejected."""
    sem = asyncio.Semaphore(sessions)
    rejected = 0

    async def one(i: int) -> None:
        nonlocal rejected
        async with sem:
            st = SessionState()
            st.client = Client(addr=client_addr(round_no, i))
            st.helo_name = "client.example.net"
            st.protocol = "ESMTP"
            st.sender = "sender@example.net"
            st.recipient = "u@lab.example"
            if await engine.rcpt(st) is not None:
                rejected += 1
    await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    return rejected


def _rate(benchmark, label: str, per_round: list[float]) -> None:
    best = min(per_round)
    rate = CLIENTS / best
    benchmark.extra_info["checks_per_s"] = round(rate, 1)
    benchmark.extra_info["lookups_per_s"] = round(rate * len(LISTS), 1)
    print(f"\nDNSBL, {len(LISTS)} lists per client, {CLIENTS} clients, {label}: "
          f"{rate:,.0f} checks/s ({rate * len(LISTS):,.0f} list lookups/s)")


@pytest.mark.parametrize("sessions", [1, 50])
def test_dnsbl_cold(benchmark, nsd, sessions):
    times: list[float] = []
    counter = iter(range(100))

    def one_round():
        engine, r = make_engine(nsd)                 # new resolver: both caches empty
        round_no = next(counter) % ROUNDS
        t0 = time.perf_counter()
        rejected = asyncio.run(check_all(engine, round_no, sessions))
        times.append(time.perf_counter() - t0)
        r.close()
        return rejected
    rejected = benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert rejected == len(range(0, CLIENTS, 10))     # every 10th client is listed somewhere
    _rate(benchmark, f"cold cache, {sessions} session(s)", times)


def test_dnsbl_warm(benchmark, nsd):
    engine, r = make_engine(nsd)
    asyncio.run(check_all(engine, ROUNDS, 50))          # fill the cache
    sent = r.stats()["sent"]
    times: list[float] = []

    def one_round():
        t0 = time.perf_counter()
        rejected = asyncio.run(check_all(engine, ROUNDS, 50))
        times.append(time.perf_counter() - t0)
        return rejected
    rejected = benchmark.pedantic(one_round, rounds=5, iterations=1)
    assert rejected == len(range(0, CLIENTS, 10))
    assert r.stats()["sent"] == sent                  # nothing went to the wire
    _rate(benchmark, "warm cache", times)
