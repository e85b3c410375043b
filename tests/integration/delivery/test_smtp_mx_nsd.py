"""MX resolution end to end: a real nsd on 127.0.0.1:PORT serves the zones,
the smtp agent resolves through it (dns_nameservers) and delivers to
scripted servers on 127.0.0.1/127.0.0.2 (smtp_tcp_port = the servers' port)."""

from __future__ import annotations

import os
import sys

import pytest
from scripted import ScriptedServer

import postier.delivery.agents  # noqa: F401
from postier.delivery import AGENTS

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "tools"))
from nsd_server import NsdServer, nsd_available  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not nsd_available(), reason="nsd not installed (tools/setup.sh --test)")]

ZONES = {
    "example.test": """
@      IN SOA ns.example.test. hostmaster.example.test. ( 1 3600 600 86400 60 )
@      IN NS  ns.example.test.
ns     IN A   127.0.0.1
@      IN MX  10 mx1.example.test.
@      IN MX  20 mx2.example.test.
mx1    IN A   127.0.0.2
mx2    IN A   127.0.0.1
""",
    "other.test": """
@      IN SOA ns.other.test. hostmaster.other.test. ( 1 3600 600 86400 60 )
@      IN NS  ns.other.test.
ns     IN A   127.0.0.1
nomx   IN A   127.0.0.1
nullmx IN MX  0 .
noaddr IN MX  10 nowhere.other.test.
""",
}


@pytest.fixture(scope="module")
def dns():
    with NsdServer(ZONES) as d:
        yield d


def cfg(dns, port: int, extra: str = "") -> str:
    return (f"dns_nameservers = 127.0.0.1:{dns.port}\nsmtp_tcp_port = {port}\n"
            f"inet_protocols = ipv4\nsmtp_connection_cache_on_demand = no\n{extra}")


def test_mx_order_and_fallback_to_the_next_mx(dns, make_request, run):
    # mx1 (pref 10) is 127.0.0.2 where nothing listens on the port: mx2 gets the mail
    with ScriptedServer({}, port=0) as srv:
        req = make_request(b"Subject: mx\n\nbody\n", ["u@example.test"], "example.test",
                           cfg(dns, srv.port))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.dsn, st.relay) == ("sent", "2.0.0", f"mx2.example.test[127.0.0.1]:{srv.port}")
        assert srv.wait_sessions(1)
        assert srv.sessions[0].messages == [b"Subject: mx\r\n\r\nbody\r\n"]


def test_all_mx_hosts_down_defers_with_the_last_error(dns, make_request, run):
    with ScriptedServer({}) as srv:
        port = srv.port
    req = make_request(b"x\n", ["u@example.test"], "example.test", cfg(dns, port))
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn, st.relay) == ("deferred", "4.4.1", "none")
    assert st.text == f"connect to mx2.example.test[127.0.0.1]:{port}: Connection refused"


def _pair(primary_script, backup_script):
    """Scripted servers on 127.0.0.2:P (mx1) and 127.0.0.1:P (mx2), same port."""
    for _ in range(20):
        first = ScriptedServer(primary_script, host="127.0.0.2")
        try:
            return first, ScriptedServer(backup_script, port=first.port)
        except OSError:
            first.close()
    raise RuntimeError("no common free port")


def test_soft_error_at_primary_mx_tries_the_backup(dns, make_request, run):
    # a 4xx greeting at the non-final MX host keeps the recipient for the backup MX
    primary, backup = _pair({"greeting": "421 4.3.2 busy"}, {})
    try:
        req = make_request(b"x\n", ["u@example.test"], "example.test", cfg(dns, primary.port))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.relay) == ("sent", f"mx2.example.test[127.0.0.1]:{primary.port}")
        assert primary.wait_sessions(1) and primary.commands() == ["QUIT"]
    finally:
        primary.close()
        backup.close()


def test_hard_error_at_primary_mx_bounces_without_trying_the_backup(dns, make_request, run):
    primary, backup = _pair({"rcpt": "550 5.1.1 no such user"}, {})
    try:
        req = make_request(b"x\n", ["u@example.test"], "example.test", cfg(dns, primary.port))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.dsn, st.relay) == ("bounced", "5.1.1",
                                                 f"mx1.example.test[127.0.0.2]:{primary.port}")
        assert backup.sessions == []
    finally:
        primary.close()
        backup.close()


def test_soft_rcpt_error_at_both_mx_hosts_defers_with_the_last_reply(dns, make_request, run):
    primary, backup = _pair({"rcpt": "450 4.2.0 first"}, {"rcpt": "451 4.3.0 second"})
    try:
        req = make_request(b"x\n", ["u@example.test"], "example.test", cfg(dns, primary.port))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.dsn, st.relay) == ("deferred", "4.3.0",
                                                 f"mx2.example.test[127.0.0.1]:{primary.port}")
        assert st.text.endswith("said: 451 4.3.0 second (in reply to RCPT TO command)")
    finally:
        primary.close()
        backup.close()


def test_no_mx_uses_the_address_record(dns, make_request, run):
    with ScriptedServer({}) as srv:
        req = make_request(b"x\n", ["u@nomx.other.test"], "nomx.other.test", cfg(dns, srv.port))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.relay) == ("sent", f"nomx.other.test[127.0.0.1]:{srv.port}")


def test_null_mx_bounces(dns, make_request, run):
    req = make_request(b"x\n", ["u@nullmx.other.test"], "nullmx.other.test", cfg(dns, 2525))
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn, st.relay) == ("bounced", "5.1.0", "none")
    assert st.text == "Domain nullmx.other.test does not accept mail (nullMX)"


def test_nonexistent_domain_bounces_with_postfix_text(dns, make_request, run):
    req = make_request(b"x\n", ["u@nosuch.example.test"], "nosuch.example.test", cfg(dns, 2525))
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn) == ("bounced", "5.4.4")
    assert st.text == ("Host or domain name not found. Name service error for "
                       "name=nosuch.example.test type=A: Host not found")


def test_mx_without_address_bounces(dns, make_request, run):
    req = make_request(b"x\n", ["u@noaddr.other.test"], "noaddr.other.test", cfg(dns, 2525))
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn) == ("bounced", "5.4.4")
    assert st.text == ("Host or domain name not found. Name service error for "
                       "name=nowhere.other.test type=A: Host not found")


def test_mx_without_address_defers_when_asked(dns, make_request, run):
    req = make_request(b"x\n", ["u@noaddr.other.test"], "noaddr.other.test",
                       cfg(dns, 2525, "smtp_defer_if_no_mx_address_found = yes\n"))
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn) == ("deferred", "4.4.4")


def test_bracketed_name_skips_the_mx_lookup(dns, make_request, run):
    with ScriptedServer({}) as srv:
        req = make_request(b"x\n", ["u@example.test"], f"[mx2.example.test]:{srv.port}",
                           cfg(dns, 2525))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.relay) == ("sent", f"mx2.example.test[127.0.0.1]:{srv.port}")


def test_mx_session_limit_one_stops_after_the_first_session(dns, make_request, run):
    # mx1 refuses the connection (no session), mx2 answers 4xx to RCPT: one session -> final
    with ScriptedServer({"rcpt": "450 4.2.0 later"}) as srv:
        req = make_request(b"x\n", ["u@example.test"], "example.test",
                           cfg(dns, srv.port, "smtp_mx_session_limit = 1\n"))
        [st] = run(AGENTS["smtp"](req))
        assert (st.status, st.dsn) == ("deferred", "4.2.0")
        assert "said: 450 4.2.0 later (in reply to RCPT TO command)" in st.text
