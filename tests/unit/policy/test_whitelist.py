"""postgrey's whitelist file formats (postier.policy.whitelist).

Rules from postgrey 1.37's read_clients_whitelists/read_recipients_whitelists;
the integration test against the real postgrey checks the same files live.
"""

from __future__ import annotations

import pytest

from postier.policy import whitelist as W

CLIENTS = """\
# comment
example.org          # a domain and its subdomains
/^mail\\d+\\.isp\\.test$/
192.0.2.5
198.51.100.0/25
203.0.113            # a /24
10.1                 # also a /24 (postgrey passes 24)
2001:db8:77::/48
bad name here
300.1.1.1
"""


def wl(text=CLIENTS):
    warnings: list[str] = []
    return W.clients_from_text(text, "wc", warn=warnings.append), warnings


@pytest.mark.parametrize("name, hit", [
    ("example.org", True), ("MX.Example.ORG", True), ("notexample.org", False),
    ("example.org.evil.test", False), ("mail12.isp.test", True), ("mail.isp.test", False),
    ("unknown", False),
])
def test_client_names(name, hit):
    w, _ = wl()
    assert w.match_name(name) is hit


@pytest.mark.parametrize("addr, hit", [
    ("192.0.2.5", True), ("192.0.2.6", False), ("198.51.100.127", True),
    ("198.51.100.128", False), ("203.0.113.250", True), ("10.1.0.9", True),
    ("10.1.1.9", False), ("2001:db8:77:1::5", True), ("2001:db8:78::5", False),
    ("300.1.1.1", False),
])
def test_client_addresses(addr, hit):
    w, _ = wl()
    assert w.match_address(W.address_value(addr)) is hit


def test_client_warnings_and_skips():
    w, warnings = wl()
    assert warnings == ["wc line 9: doesn't look like a hostname"]
    assert len(w) == 7          # 300.1.1.1 is silently skipped, as by NetAddr::IP


def test_ipv4_client_in_ipv6_network_as_netaddr_ip():
    w, _ = wl("::/96\n")
    assert w.match_address(W.address_value("192.0.2.1"))
    assert not w.match_address(W.address_value("2001:db8::1"))


RECIPIENTS = """\
postmaster@
abuse@example.net
example.com
/^list-.*@lists\\.test$/
no good
"""


@pytest.mark.parametrize("rcpt, hit", [
    ("postmaster@anything.test", True), ("Postmaster+tag@x.test", True),
    ("postmasterx@x.test", False), ("abuse@example.net", True), ("abuse+x@example.net", True),
    ("abuse@example.org", False), ("user@example.com", True), ("user@sub.example.com", True),
    ("user@notexample.com", False), ("list-dev@lists.test", True), ("dev@lists.test", False),
])
def test_recipients(rcpt, hit):
    warnings: list[str] = []
    w = W.recipients_from_text(RECIPIENTS, "wr", warn=warnings.append)
    assert w.match(rcpt) is hit
    assert warnings == ["wr line 5: doesn't look like an address"]


def test_files_missing_and_local(tmp_path):
    warnings: list[str] = []
    (tmp_path / "wc").write_text("example.org\n")
    w = W.load_clients([str(tmp_path / "wc"), str(tmp_path / "missing"),
                        str(tmp_path / "wc.local")], warn=warnings.append)
    assert len(w) == 1
    assert warnings == [f"can't open {tmp_path}/missing: No such file or directory"]


def test_debian_whitelist_parses_when_installed():
    import os
    path = "/etc/postgrey/whitelist_clients"
    if not os.path.exists(path):
        pytest.skip("postgrey's whitelist_clients not installed")
    warnings: list[str] = []
    w = W.load_clients([path], warn=warnings.append)
    assert warnings == []
    assert w.match_name("mail7.telekom.de") and w.match_name("lists.debian.org")
