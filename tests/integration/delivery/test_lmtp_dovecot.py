"""The lmtp agent against a real Dovecot LMTP server (tools/dovecot_lmtp.py):
delivery over inet and unix sockets lands in the Maildirs with the content intact,
unknown users bounce with Dovecot's 550 per recipient, connections are reused."""

from __future__ import annotations

import os
import sys

import pytest

import postier.delivery.agents  # noqa: F401
from postier.delivery import AGENTS

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools")
sys.path.insert(0, os.path.abspath(TOOLS))
from dovecot_lmtp import DovecotLmtp, dovecot_available  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not dovecot_available() or os.geteuid() != 0,
                                 reason="needs dovecot-core + dovecot-lmtpd and root")]

BODY = (b"From: sender@example.test\nSubject: lmtp test\n\nfirst line\n.starts with a dot\n"
        b"..two dots\n.\nlast line\n")
CFG = "myhostname = mx.example.test\n"


@pytest.fixture(scope="module")
def dovecot():
    with DovecotLmtp(users=["alice", "bob"]) as dv:
        yield dv


def delivered_body(msg: bytes) -> bytes:
    """The message as stored minus the headers Dovecot added on top."""
    return msg[msg.index(b"From: sender@example.test"):]


def test_inet_delivery_to_two_maildirs(dovecot, make_request, run):
    before = {u: len(dovecot.messages(u)) for u in ("alice", "bob")}
    req = make_request(BODY, ["alice@lab.test", "bob@lab.test"], f"inet:[127.0.0.1]:{dovecot.port}",
                       CFG, transport="lmtp")
    res = run(AGENTS["lmtp"](req))
    assert [(r.status, r.dsn, r.relay) for r in res] == \
        [("sent", "2.0.0", f"127.0.0.1[127.0.0.1]:{dovecot.port}")] * 2
    assert res[0].text.startswith("250 2.0.0 <alice@lab.test> ") and res[0].text.endswith(" Saved")
    for u in ("alice", "bob"):
        msgs = dovecot.messages(u)
        assert len(msgs) == before[u] + 1
        assert delivered_body(msgs[-1]) == BODY
        assert msgs[-1].startswith(b"Return-Path: <sender@example.test>\n")


def test_unix_socket_delivery(dovecot, make_request, run):
    n = len(dovecot.messages("alice"))
    req = make_request(BODY, ["alice@lab.test"], f"unix:{dovecot.socket}", CFG, transport="lmtp")
    [st] = run(AGENTS["lmtp"](req))
    assert (st.status, st.relay) == ("sent", f"mx.example.test[{dovecot.socket}]")
    assert len(dovecot.messages("alice")) == n + 1
    assert delivered_body(dovecot.messages("alice")[-1]) == BODY


def test_unknown_user_bounces_the_others_are_delivered(dovecot, make_request, run):
    n = len(dovecot.messages("bob"))
    req = make_request(BODY, ["zed@lab.test", "bob@lab.test"], f"inet:127.0.0.1:{dovecot.port}",
                       CFG, transport="lmtp")
    zed, bob = run(AGENTS["lmtp"](req))
    assert (zed.status, zed.dsn) == ("bounced", "5.1.1")
    assert zed.text == ("host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <zed@lab.test> User doesn't "
                        "exist: zed@lab.test (in reply to RCPT TO command)")
    assert bob.status == "sent"
    assert len(dovecot.messages("bob")) == n + 1


def test_large_message_streams_in_chunks(dovecot, make_request, run):
    # > 2 chunks of the client's content reader, lines starting with dots at chunk edges
    line = b".dotted line with some text to fill the message up to a few hundred kB\n"
    body = b"Subject: big\n\n" + line * 12000 + b"end\n"
    req = make_request(body, ["alice@lab.test"], f"unix:{dovecot.socket}", CFG, transport="lmtp")
    [st] = run(AGENTS["lmtp"](req))
    assert st.status == "sent", st.text
    got = dovecot.messages("alice")[-1]
    assert got[got.index(b"Subject: big"):] == body


def _connects(dovecot) -> int:
    with open(dovecot.log, errors="replace") as f:
        return f.read().count("Info: Connect from local")


def test_connection_reuse_with_rset_probe(dovecot, make_request, run):
    n = len(dovecot.messages("alice"))
    connects = _connects(dovecot)

    async def two():
        a = make_request(BODY, ["alice@lab.test"], f"unix:{dovecot.socket}", CFG, transport="lmtp")
        b = make_request(BODY, ["alice@lab.test"], f"unix:{dovecot.socket}", CFG, transport="lmtp")
        a.config = b.config         # one configuration, as the qmgr hands out
        from postier.delivery import smtp
        r1 = await AGENTS["lmtp"](a)
        idle = smtp.idle_session_count()
        r2 = await AGENTS["lmtp"](b)
        return r1 + r2, idle

    res, idle = run(two())
    assert [r.status for r in res] == ["sent", "sent"]
    assert idle == 1
    assert len(dovecot.messages("alice")) == n + 2
    assert _connects(dovecot) == connects + 1       # both deliveries on one connection
