"""Restriction engine cost per RCPT, with the seed lab's typical restrictions.

    smtpd_recipient_restrictions = permit_mynetworks, reject_non_fqdn_sender,
        reject_non_fqdn_recipient, check_sender_access hash:senders,
        check_recipient_access hash:recipients, reject_unauth_destination

(2,000-entry hash tables built with postier's builder; smtpd_delay_reject =
yes, so every RCPT also runs client/helo/sender restrictions, as in the
lab).  One round evaluates 1,000 RCPT commands on one event loop: for an
outside client a mix of accepted local recipients, relay attempts (rejected)
and blacklisted senders (rejected); for an inside client the permit_mynetworks
fast path.  RCPT/s goes into extra_info (printed with -s).  No timing
assertions; `pytest bench --benchmark-disable` is the CI smoke run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC not in sys.path:  # like tests/conftest.py: run from a checkout without installing
    sys.path.insert(0, SRC)

from postier.config import Config  # noqa: E402
from postier.maps import hash as phash  # noqa: E402
from postier.smtpd.restrictions import RestrictionEngine  # noqa: E402
from postier.smtpd.state import Client, SessionState  # noqa: E402

PER_ROUND = 1000

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.lab.example
mydomain = lab.example
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.0/8, 192.0.2.0/24, [2001:db8:1::]/48
relay_domains = site2.lab.example
inet_interfaces = 127.0.0.1
local_recipient_maps =
recipient_delimiter = +
smtpd_helo_required = yes
smtpd_helo_restrictions = permit_mynetworks, reject_invalid_helo_hostname
smtpd_sender_restrictions = permit_mynetworks, reject_non_fqdn_sender
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_non_fqdn_sender,
    reject_non_fqdn_recipient, check_sender_access hash:{tables}/senders,
    check_recipient_access hash:{tables}/recipients, reject_unauth_destination
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tables = tmp_path_factory.mktemp("tables")
    senders = "".join(f"spammer{i}@bad{i % 50}.example REJECT\n" for i in range(1990))
    senders += "".join(f"bad{i}.example 550 5.7.1 go away\n" for i in range(10))
    rcpts = "".join(f"list{i}@lab.example REJECT internal list\n" for i in range(1000))
    rcpts += "".join(f"user{i}@lab.example OK\n" for i in range(1000))
    for name, text in (("senders", senders), ("recipients", rcpts)):
        path = tables / name
        path.write_text(text)
        phash.build_from_source(str(path), text.encode(), fold=True)
    cfg = Config.from_text(MAIN_CF.format(tables=tables), path=str(tables / "main.cf"))
    return RestrictionEngine(cfg)


def state(addr: str, name: str, sender: str) -> SessionState:
    st = SessionState()
    st.client = Client(addr=addr, name=name, reverse_name=name, name_status=2,
                       reverse_name_status=2)
    st.helo_name = "mail.remote.example"
    st.protocol = "ESMTP"
    st.sender = sender
    return st


def outside_batch(engine: RestrictionEngine):
    """1,000 RCPTs from an outside client: 70% local, 20% relay, 10% blocked sender."""
    work = []
    for i in range(PER_ROUND):
        kind = i % 10
        if kind < 7:
            work.append(("friend@partner.example", f"user{i % 1500}+tag@lab.example"))
        elif kind < 9:
            work.append(("friend@partner.example", f"someone{i}@elsewhere.example"))
        else:
            work.append((f"spammer{i % 1990}@bad{i % 50}.example", "user1@lab.example"))

    async def run() -> int:
        rejected = 0
        st = state("198.51.100.7", "unknown", "")
        for sender, rcpt in work:
            st.sender = sender
            st.recipient = rcpt
            if await engine.rcpt(st) is not None:
                rejected += 1
        return rejected
    return run


def inside_batch(engine: RestrictionEngine):
    async def run() -> int:
        st = state("192.0.2.5", "ws5.lab.example", "me@lab.example")
        rejected = 0
        for i in range(PER_ROUND):
            st.recipient = f"someone{i}@elsewhere.example"
            if await engine.rcpt(st) is not None:
                rejected += 1
        return rejected
    return run


@pytest.mark.parametrize("who", ["outside", "inside"])
def test_bench_rcpt(benchmark, engine, who, monkeypatch):
    from postier import log
    monkeypatch.setattr(log.LOG, "emit", lambda severity, text, service=None: None)  # no log I/O
    batch = (outside_batch if who == "outside" else inside_batch)(engine)
    loop = asyncio.new_event_loop()
    try:
        result = benchmark(lambda: loop.run_until_complete(batch()))
        start = time.perf_counter()
        loop.run_until_complete(batch())
        elapsed = time.perf_counter() - start
    finally:
        loop.close()
    rate = PER_ROUND / elapsed if elapsed else 0.0
    benchmark.extra_info["rcpt_per_second"] = round(rate)
    print(f"\n{who}: {rate:,.0f} RCPT/s ({1e6 / rate if rate else 0:.1f} us per RCPT)")
    assert result == (300 if who == "outside" else 0)    # behaviour, not speed
