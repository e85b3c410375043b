"""postgrey's decision procedure (postier.policy.greylist) over the mmap store.

The expected actions and log lines follow postgrey 1.37's source
(/usr/sbin/postgrey); tests/integration/policy/test_postgrey_oracle.py
compares the same kind of request sequences with the real postgrey.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import time

import pytest

from postier.config import Config
from postier.errors import ConfigError
from postier.policy import greylist as G
from postier.policy import whitelist as W
from postier.policy.store import MmapStore, open_store

NOW = int(time.time())


def attrs(**kw) -> dict[str, str]:
    a = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
         "client_address": "192.0.2.7", "client_name": "mail.example.org",
         "sender": "alice@example.org", "recipient": "bob@example.net",
         "instance": "1a.2b.3", "queue_id": "", "etrn_domain": ""}
    a.update(kw)
    return a


@pytest.fixture(params=["native", "pure"])
def make(request, tmp_path):
    made = []

    def make(clients="", recipients="", **settings):
        s = G.GreylistSettings(hostname="mx.test", version="9.9", delay=300, **settings)
        store = MmapStore(str(tmp_path / f"g{len(made)}.db"), pure=request.param == "pure")
        lines: list[str] = []
        g = G.Greylist(s, store, clients=W.clients_from_text(clients),
                       recipients=W.recipients_from_text(recipients), emit=lines.append,
                       pure=request.param == "pure")
        g.lines = lines
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


def test_first_attempt_retry_and_pass(make):
    g = make()
    a = attrs()
    assert g.decide(a, NOW) == ("DEFER_IF_PERMIT 4.2.0 Greylisted, see "
                                "http://postgrey.schweikert.ch/help/example.net.html")
    assert g.decide(a, NOW + 100).startswith("DEFER_IF_PERMIT 4.2.0 Greylisted")
    action = g.decide(a, NOW + 301)
    assert action.startswith("PREPEND X-Greylist: delayed 301 seconds by postier-greylist-9.9 "
                             "at mx.test; ")
    # the same message (instance) for another recipient: no second header
    assert g.decide(attrs(recipient="carol@example.net"), NOW + 302).startswith("DEFER")
    assert g.decide(a, NOW + 400) == "DUNNO"
    tail = ("client_name=mail.example.org, client_address=192.0.2.7, "
            "sender=alice@example.org, recipient=bob@example.net")
    assert g.lines == [
        f"action=greylist, reason=new, {tail}",
        f"action=greylist, reason=early-retry (200s missing), {tail}",
        f"action=pass, reason=triplet found, delay=301, {tail}",
        "action=greylist, reason=new, client_name=mail.example.org, client_address=192.0.2.7, "
        "sender=alice@example.org, recipient=carol@example.net",
        f"action=pass, reason=triplet found, {tail}",
    ]


def test_header_only_once_per_instance(make):
    g = make()
    for r in ("a@x.test", "b@x.test"):
        g.decide(attrs(recipient=r), NOW)
    assert g.decide(attrs(recipient="a@x.test"), NOW + 300).startswith("PREPEND ")
    # second recipient of the same message: delayed too, but no second header
    assert g.decide(attrs(recipient="b@x.test"), NOW + 300) == "DUNNO"
    assert g.lines[-1].startswith("action=pass, reason=triplet found, client_name=")


def test_text_substitutions_and_action(make):
    g = make(text="Come back in %s seconds (%r)", action="451")
    assert g.decide(attrs(recipient="x@Dom.Example"), NOW) == \
        "451 4.2.0 Come back in 300 seconds (Dom.Example)"
    g2 = make(text="4.7.1 %s left")
    assert g2.decide(attrs(), NOW) == "DEFER_IF_PERMIT 4.7.1 300 left"
    # no etrn_domain attribute (not Postfix): no 4.2.0
    a = attrs()
    del a["etrn_domain"]
    assert g2.decide(a, NOW + 10) == "DEFER_IF_PERMIT 4.7.1 290 left"


def test_whitelists(make):
    g = make(clients="mail.example.org\n", recipients="postmaster@\n")
    assert g.decide(attrs(), NOW) == "DUNNO"
    assert g.lines[-1].startswith("action=pass, reason=client whitelist, ")
    g = make(clients="192.0.2.0/25\n")
    assert g.decide(attrs(), NOW) == "DUNNO"
    g = make(recipients="postmaster@\n")
    assert g.decide(attrs(recipient="Postmaster+x@anywhere.test"), NOW) == "DUNNO"
    assert g.lines[-1].startswith("action=pass, reason=recipient whitelist, ")
    assert g.decide(attrs(), NOW).startswith("DEFER_IF_PERMIT")


def test_auto_whitelist(make):
    g = make(awl_clients=2)
    t = NOW
    for i in range(2):
        a = attrs(sender=f"s{i}@example.org", instance=f"i{i}")
        g.decide(a, t)
        g.decide(a, t + 300)
        t += 3600
    assert "whitelisted: mail.example.org[192.0.2.7]" in g.lines
    assert g.decide(attrs(sender="new@example.org"), t) == "DUNNO"
    assert g.lines[-1].startswith("action=pass, reason=client AWL, ")
    # another address of the same /24 is not whitelisted
    assert g.decide(attrs(client_address="192.0.2.8", sender="new@example.org"),
                    t) != "DUNNO"


def test_subnet_and_host_keys(make):
    g = make()
    g.decide(attrs(client_address="192.0.2.7"), NOW)
    # another host of the same /24 retries: same triplet
    assert g.decide(attrs(client_address="192.0.2.99"), NOW + 300).startswith("PREPEND")
    h = make(lookup_by_host=True)
    h.decide(attrs(client_address="192.0.2.7"), NOW)
    assert h.decide(attrs(client_address="192.0.2.99"), NOW + 300).startswith("DEFER")
    v6 = make()
    v6.decide(attrs(client_address="2001:db8:1:2::7"), NOW)
    assert v6.decide(attrs(client_address="2001:db8:1:2:ffff::1"), NOW + 300).startswith("PREPEND")


def test_missing_and_bad_attributes(make, monkeypatch):
    warnings = []
    monkeypatch.setattr(G.log, "warning", warnings.append)
    g = make()
    a = attrs()
    del a["sender"]
    assert g.decide(a, NOW) == "DUNNO"
    assert g.decide(attrs(client_address="not-an-ip"), NOW) == "DUNNO"
    assert warnings == ["attribute missing: sender",
                        "can't parse client_address from postfix: not-an-ip"]


def test_queue_id_and_empty_attributes_in_log(make):
    g = make()
    g.decide(attrs(queue_id="4F2A1B", client_name="0", sender=""), NOW)
    assert g.lines == ["4F2A1B: action=greylist, reason=new, client_address=192.0.2.7, "
                       "recipient=bob@example.net"]


def test_policy_test_time_attribute(make):
    g = make()
    g.decide(attrs(policy_test_time=str(NOW)))
    assert g.decide(attrs(policy_test_time=str(NOW + 300))).startswith("PREPEND")


def test_adecide_uses_the_same_path(make):
    g = make()
    assert asyncio.run(g.adecide(attrs(), NOW)).startswith("DEFER_IF_PERMIT")


def test_empty_header_setting(make):
    g = make(header="")
    g.decide(attrs(), NOW)
    assert g.decide(attrs(), NOW + 300) == "DUNNO"


def test_maintenance_logs_postgrey_lines(make):
    g = make(max_age=10 * 86400, retry_window=86400)
    g.decide(attrs(), NOW)
    g.decide(attrs(sender="b@example.org"), NOW)
    g.decide(attrs(sender="b@example.org"), NOW + 300)
    for _ in range(20):
        g.maintain(NOW + 3 * 86400)
        if any("finished" in x for x in g.lines):
            break
    assert "cleaning main database finished. before: 2, after: 1" in g.lines
    assert "cleaning clients database finished. before: 1, after: 1" in g.lines


@pytest.mark.parametrize("sender, want", [
    ("", ""),
    ("no-at-sign", "no-at-sign"),
    ("user+tag@example.org", "user@example.org"),
    ("list-bounces-12345-67@lists.test", "list-bounces-#-#@lists.test"),
    ("abc123@x.test", "abc123@x.test"),
    ("prvs=1234567890=user@x.test", "user@x.test"),
    ("prvs=user=1234567890@x.test", "user@x.test"),
    ("prvs=0123456789=abcdefghij@x.test", "abcdefghij@x.test"),
    ("prvs=a=b=c@x.test", "prvs=a=b=c@x.test"),
    ("prvs=1234567890=user=@x.test", "user@x.test"),
    ("PRVS=1234567890=user@x.test", "PRVS=#=user@x.test"),
    ("a+b+c@x@y", "a@x@y"),
    ("12.34@x.test", "#.#@x.test"),
])
def test_sender_substitutions(sender, want):
    assert G.sender_substitutions(sender) == want


@pytest.mark.parametrize("addr, by_host, want", [
    ("192.0.2.77", False, "192.0.2.0"),
    ("192.0.2.77", True, "192.0.2.77/32"),
    ("2001:db8::1", False, "2001:DB8:0:0:0:0:0:0"),
    ("2001:db8:0:1:2:3:4:5", True, "2001:DB8:0:1:2:3:4:5/128"),
])
def test_client_network(addr, by_host, want):
    s = G.GreylistSettings(lookup_by_host=by_host)
    assert G.client_network(ipaddress.ip_address(addr), s) == want


def test_triplet_key_lowercases_ascii_only():
    assert G.triplet_key("2001:DB8:0:0:0:0:0:0", "Ab@X", "Ü@Y") == \
        "2001:db8:0:0:0:0:0:0/ab@x/Ü@y".encode()


def test_settings_from_main_cf(tmp_path):
    cfg = Config.from_text(f"data_directory = {tmp_path}\ngreylist_delay = 2m\n"
                           "greylist_max_age = 10\ngreylist_retry_window = 6h\n"
                           "greylist_lookup_by_subnet = no\nmyhostname = mx.example.test\n"
                           "greylist_whitelist_clients = /a, /b\n")
    s = G.settings_from_config(cfg.get_str)
    assert (s.delay, s.max_age, s.retry_window, s.lookup_by_host) == (120, 864000, 21600, True)
    assert s.store == f"{tmp_path}/greylist" and s.hostname == "mx.example.test"
    assert s.whitelist_clients == ("/a", "/b")
    bad = Config.from_text("greylist_delay = soon\n")
    with pytest.raises(ConfigError, match="greylist_delay"):
        G.settings_from_config(bad.get_str)


def test_open_store_specs(tmp_path):
    s = open_store(str(tmp_path / "sub" / "g.db"))
    assert s.sync and os.path.exists(tmp_path / "sub" / "g.db")
    s.close()
    from postier.policy.store import StoreError, parse_redis_spec
    assert parse_redis_spec("redis:127.0.0.1:6379") == {"host": "127.0.0.1", "port": 6379}
    assert parse_redis_spec("redis:[::1]:6380/2") == {"host": "::1", "port": 6380, "db": 2}
    assert parse_redis_spec("redis:/run/redis.sock") == {"unix_socket_path": "/run/redis.sock"}
    with pytest.raises(StoreError, match="expected redis:HOST:PORT"):
        parse_redis_spec("redis:localhost")
    with pytest.raises(StoreError, match="absolute path"):
        open_store("relative/file")


# -- check_greylist in the restriction engine -----------------------------------------

def test_check_greylist_restriction(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "smtpd"))
    from test_restrictions_support import engine_for, rcpt, session
    e = engine_for({"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
                    "smtpd_recipient_restrictions": "check_greylist",
                    "greylist_store": str(tmp_path / "gl"), "greylist_delay": "2",
                    "myhostname": "mx.example.test"}, tmp_path)

    async def go(st, to):
        return await rcpt(e, st, to)

    st = session()
    r = asyncio.run(go(st, "user@example.test"))
    assert r is not None and r.line() == (
        "450 4.2.0 <user@example.test>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.test.html")
    st2 = session()
    # the retry, 3 s later (the clock is moved instead of sleeping)
    later = time.time() + 3
    monkeypatch.setattr(G.time, "time", lambda: later)
    assert asyncio.run(go(st2, "user@example.test")) is None
    assert st2.actions.prepend and st2.actions.prepend[0].startswith(
        "X-Greylist: delayed 3 seconds by postier-greylist-")
