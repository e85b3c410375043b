"""The SMTP client name lookup (PTR, then forward confirmation) and the
hosts file, against Postfix 3.7's statuses and warnings (the same cases are
compared with a real Postfix in tests/integration/dns/)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from dns_fakes import resolver

from postier import dns
from postier.dns import HostsFile, lookup_peer

run = asyncio.run

PTR = "11.0.0.127.in-addr.arpa"


@pytest.fixture
def hosts(tmp_path):
    p = tmp_path / "hosts"
    p.write_text("127.0.0.1 localhost loopback-alias  # comment\n::1 localhost ip6-localhost\n"
                 "# 192.0.2.99 commented.test\n192.0.2.50 static.example.test\n")
    return HostsFile(str(p))


def test_hosts_file(hosts, tmp_path):
    assert hosts.name_for("127.0.0.1") == "localhost"
    assert hosts.name_for("0:0::1") == "localhost"
    assert hosts.addrs_for("LOCALHOST.") == ["127.0.0.1", "::1"]
    assert hosts.addrs_for("loopback-alias") == ["127.0.0.1"]
    assert hosts.name_for("192.0.2.99") is None
    p = tmp_path / "hosts"
    p.write_text("192.0.2.51 other.example.test\n")
    later = time.time() + 5
    os.utime(p, (later, later))
    hosts._checked = 0.0                     # skip the once-a-second stat throttle
    assert hosts.name_for("192.0.2.51") == "other.example.test"
    assert hosts.name_for("127.0.0.1") is None


def test_missing_hosts_file_is_empty(tmp_path):
    assert HostsFile(str(tmp_path / "none")).name_for("127.0.0.1") is None


def peer(answers, addr, hosts=None):
    r, be = resolver(answers)
    return run(lookup_peer(r, addr, hosts=hosts)), be


def test_verified_name():
    info, be = peer({(PTR, "PTR"): (dns.OK, ["ok.example.test"]),
                     ("ok.example.test", "A"): (dns.OK, ["192.0.2.1", "127.0.0.11"])},
                    "127.0.0.11")
    assert (info.name, info.name_status, info.reverse_name, info.reverse_status) == \
        ("ok.example.test", 2, "ok.example.test", 2)
    assert info.warnings == []
    assert be.asked == [(PTR, "PTR"), ("ok.example.test", "A")]    # A only for an IPv4 client


def test_forged_name_keeps_the_reverse_name():
    info, _ = peer({(PTR, "PTR"): (dns.OK, ["bad.example.test"]),
                    ("bad.example.test", "A"): (dns.OK, ["127.0.0.99"])}, "127.0.0.11")
    assert (info.name, info.name_status, info.reverse_name, info.reverse_status) == \
        ("unknown", 6, "bad.example.test", 2)
    assert info.warnings == ["hostname bad.example.test does not resolve to address 127.0.0.11"]


@pytest.mark.parametrize("fwd, status, text", [
    ((dns.NOTFOUND, [], 60, dns.HOST_NOT_FOUND), 6, "Name or service not known"),
    ((dns.NOTFOUND, [], 60, dns.NO_DATA), 6, "No address associated with hostname"),
    ((dns.RETRY, [], 0, dns.TRY_AGAIN), 4, "Temporary failure in name resolution"),
])
def test_forward_lookup_failures(fwd, status, text):
    info, _ = peer({(PTR, "PTR"): (dns.OK, ["x.example.test"]), ("x.example.test", "A"): fwd},
                   "127.0.0.11")
    assert (info.name, info.name_status, info.reverse_status) == ("unknown", status, 2)
    assert info.warnings == [f"hostname x.example.test does not resolve to address "
                             f"127.0.0.11: {text}"]


@pytest.mark.parametrize("ptr, status", [
    ((dns.NOTFOUND, [], 60, dns.HOST_NOT_FOUND), 5),
    ((dns.RETRY, [], 0, dns.TRY_AGAIN), 4),
    ((dns.FAIL, [], 0, dns.NO_RECOVERY), 5),
])
def test_reverse_lookup_failures(ptr, status):
    info, _ = peer({(PTR, "PTR"): ptr}, "127.0.0.11")
    assert (info.name, info.name_status, info.reverse_name, info.reverse_status) == \
        ("unknown", status, "unknown", status)
    assert info.warnings == []


@pytest.mark.parametrize("name, warning", [
    ("1.2.3.4", "numeric hostname: 1.2.3.4"),
    ("bad_host!.test", "valid_hostname: invalid character 33(decimal): bad_host!.test"),
])
def test_unusable_ptr_names(name, warning):
    info, be = peer({(PTR, "PTR"): (dns.OK, [name])}, "127.0.0.11")
    assert (info.name, info.name_status, info.reverse_name, info.reverse_status) == \
        ("unknown", 5, "unknown", 5)
    assert info.warnings == [warning]
    assert len(be.asked) == 1                 # no forward lookup


def test_ipv6_client_is_confirmed_with_aaaa():
    rev = dns.reverse_name("2001:db8::5")
    info, be = peer({(rev, "PTR"): (dns.OK, ["v6.example.test"]),
                     ("v6.example.test", "AAAA"): (dns.OK, ["2001:db8:0::5"])}, "2001:db8::5")
    assert info.name == "v6.example.test" and info.name_status == 2
    assert be.asked[1] == ("v6.example.test", "AAAA")


def test_hosts_file_comes_first(hosts):
    info, be = peer({}, "127.0.0.1", hosts)
    assert (info.name, info.name_status) == ("localhost", 2)
    assert be.asked == []                    # no DNS traffic at all
    info, be = peer({("static.example.test", "A"): (dns.OK, ["192.0.2.50"])}, "192.0.2.50",
                    hosts)
    assert info.name == "static.example.test" and be.asked == []


def test_not_an_address():
    info, be = peer({}, "unknown")
    assert (info.name, info.name_status) == ("unknown", 5) and be.asked == []
