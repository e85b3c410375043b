"""check_policy_service: the policy delegation client, against a tiny real
policy server (asyncio, 127.0.0.1 or a Unix socket) run by the test.

Expected replies and log lines are those real Postfix 3.7.11 produced
against the same kind of server (see test_restrictions_postfix.py for the
live comparison): `451 4.3.5 <rcpt>: Recipient address rejected: Server
configuration problem` when the server is down or answers without an
action, "missing attribute action in input from HOST:PORT" per attempt,
"problem talking to server HOST:PORT: ..." as attr_clnt logs it.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from test_restrictions_support import engine_for, logs, rcpt, session  # noqa: F401

from postier.smtpd import policy

RCPT_PASS = "permit_mynetworks, reject_unauth_destination"


class PolicyServer:
    """Answers by recipient: answers[rcpt] is the raw reply text, "CLOSE"
    hangs up, "SILENT" never answers; default `action=DUNNO`."""

    def __init__(self, answers: dict[str, str] | None = None):
        self.answers = answers or {}
        self.requests: list[list[tuple[str, str]]] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.path = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                attrs: list[tuple[str, str]] = []
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    line = line.rstrip(b"\n").decode()
                    if not line:
                        break
                    k, _, v = line.partition("=")
                    attrs.append((k, v))
                self.requests.append(attrs)
                ans = self.answers.get(dict(attrs).get("recipient", ""), "action=DUNNO\n\n")
                if ans == "CLOSE":
                    return
                if ans == "SILENT":
                    await asyncio.sleep(30)
                    return
                writer.write(ans.encode())
                await writer.drain()
        finally:
            writer.close()

    async def start_inet(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"inet:127.0.0.1:{self.port}"

    async def start_unix(self, path: str) -> str:
        self.server = await asyncio.start_unix_server(self.handle, path)
        self.path = path
        return f"unix:{path}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_engine(tmp_path, endpoint: str, **extra):
    pairs = {"smtpd_relay_restrictions": RCPT_PASS,
             "smtpd_recipient_restrictions": f"check_policy_service {endpoint}",
             "smtpd_policy_service_retry_delay": "0s"}
    pairs.update(extra)
    return engine_for(pairs, tmp_path)


def test_reject_dunno_hold_and_defer_if_permit(tmp_path, logs):  # noqa: F811
    async def go():
        srv = PolicyServer({"rej@example.test": "action=REJECT policy says no\n\n",
                            "hold@example.test": "action=HOLD\n\n",
                            "def@example.test": "action=defer_if_permit later\n\n",
                            "multi@example.test": "action=DUNNO\nfoo=bar\n\n"})
        ep = await srv.start_inet()
        e = make_engine(tmp_path, ep)
        st = session()
        out = [await rcpt(e, st, r) for r in ("ok@example.test", "rej@example.test",
                                                "hold@example.test", "def@example.test",
                                                "multi@example.test")]
        e.close()
        await srv.stop()
        return out, st, srv

    out, st, srv = asyncio.run(go())
    assert out[0] is None
    assert (out[1].code, out[1].enhanced, out[1].text) == (
        554, "5.7.1", "<rej@example.test>: Recipient address rejected: policy says no")
    assert out[2] is None and st.actions.hold == "triggers HOLD action"
    assert (out[3].code, out[3].enhanced, out[3].text) == (
        450, "4.7.1", "<def@example.test>: Recipient address rejected: later")
    assert out[4] is None
    assert srv.connections == 1          # one persistent connection for all requests
    assert len(srv.requests) == 5
    lines = logs.take()
    assert lines[0] == ("QUEUEID: reject: RCPT from unknown[198.51.100.7]: 554 5.7.1 "
                        "<rej@example.test>: Recipient address rejected: policy says no; "
                        "from=<sender@remote.test> to=<rej@example.test> proto=ESMTP "
                        "helo=<client.remote.test>")
    assert lines[1] == ("QUEUEID: hold: RCPT from unknown[198.51.100.7]: <hold@example.test>: "
                        "Recipient address triggers HOLD action; from=<sender@remote.test> "
                        "to=<hold@example.test> proto=ESMTP helo=<client.remote.test>")


def test_request_attributes_in_postfix_order(tmp_path):
    async def go():
        srv = PolicyServer()
        ep = await srv.start_inet()
        e = make_engine(tmp_path, ep, smtpd_policy_service_policy_context="ctx1")
        st = session()
        st.client.port = "40786"
        st.client.reverse_name = "localhost"
        await rcpt(e, st, "ok@example.test")
        await rcpt(e, st, "two@example.test")
        e.close()
        await srv.stop()
        return srv.requests

    reqs = asyncio.run(go())
    names = [k for k, _ in reqs[0]]
    assert tuple(names) == policy.ATTRIBUTES
    first, second = dict(reqs[0]), dict(reqs[1])
    assert first == {
        "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
        "client_address": "198.51.100.7", "client_name": "unknown", "client_port": "40786",
        "reverse_client_name": "localhost", "server_address": "127.0.0.1", "server_port": "25",
        "helo_name": "client.remote.test", "sender": "sender@remote.test",
        "recipient": "ok@example.test", "recipient_count": "0", "queue_id": "",
        "instance": first["instance"], "size": "0", "etrn_domain": "", "stress": "",
        "sasl_method": "", "sasl_username": "", "sasl_sender": "", "ccert_subject": "",
        "ccert_issuer": "", "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "",
        "encryption_protocol": "", "encryption_cipher": "", "encryption_keysize": "0",
        "policy_context": "ctx1"}
    # same transaction, same instance; the queue ID exists after the first RCPT
    assert second["instance"] == first["instance"] and second["queue_id"] == "QUEUEID"
    assert first["instance"].count(".") == 3


def test_data_stage_sends_recipient_count(tmp_path):
    async def go():
        srv = PolicyServer()
        ep = await srv.start_inet()
        e = engine_for({"smtpd_relay_restrictions": RCPT_PASS,
                        "smtpd_data_restrictions": f"check_policy_service {ep}"}, tmp_path)
        st = session()
        await rcpt(e, st, "a@example.test")
        await rcpt(e, st, "b@example.test")
        r = await e.data(st)
        e.close()
        await srv.stop()
        return r, srv.requests

    r, reqs = asyncio.run(go())
    assert r is None
    d = dict(reqs[-1])
    assert (d["protocol_state"], d["recipient"], d["recipient_count"]) == ("DATA", "", "2")


def test_garbage_reply_is_a_server_configuration_problem(tmp_path, logs):  # noqa: F811
    async def go():
        srv = PolicyServer({"garbage@example.test": "foo bar\n\n",
                            "close@example.test": "CLOSE"})
        ep = await srv.start_inet()
        e = make_engine(tmp_path, ep)
        st = session()
        r1 = await rcpt(e, st, "garbage@example.test")
        r2 = await rcpt(e, st, "close@example.test")
        e.close()
        await srv.stop()
        return r1, r2, srv.port

    r1, r2, port = asyncio.run(go())
    for r, who in ((r1, "garbage"), (r2, "close")):
        assert (r.code, r.enhanced, r.text) == (
            451, "4.3.5", f"<{who}@example.test>: Recipient address rejected: "
                          "Server configuration problem")
    lines = logs.take()
    assert lines[:3] == [f"warning: missing attribute action in input from 127.0.0.1:{port}"] * 2 \
        + [f"warning: problem talking to server 127.0.0.1:{port}: Application error"]
    assert lines[3].startswith("NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 451 4.3.5 "
                               "<garbage@example.test>")
    # a server that hangs up: only the last attempt is reported
    assert lines[4] == f"warning: problem talking to server 127.0.0.1:{port}: Application error"


def test_server_down(tmp_path, logs):  # noqa: F811
    port = dead_port()
    e = make_engine(tmp_path, f"inet:127.0.0.1:{port}")
    st = session()
    r = asyncio.run(rcpt(e, st, "u@example.test"))
    assert r.line() == ("451 4.3.5 <u@example.test>: Recipient address rejected: "
                        "Server configuration problem")
    assert logs.take() == [
        f"warning: connect to 127.0.0.1:{port}: Connection refused",
        f"warning: problem talking to server 127.0.0.1:{port}: Connection refused",
        f"warning: connect to 127.0.0.1:{port}: Connection refused",
        f"warning: problem talking to server 127.0.0.1:{port}: Connection refused",
        "NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 451 4.3.5 <u@example.test>: "
        "Recipient address rejected: Server configuration problem; from=<sender@remote.test> "
        "to=<u@example.test> proto=ESMTP helo=<client.remote.test>"]


def test_per_service_default_action(tmp_path, logs):  # noqa: F811
    port = dead_port()
    e = make_engine(tmp_path, f"{{ inet:127.0.0.1:{port}, default_action=DUNNO, timeout=5s, "
                              f"try_limit=1 }}")
    st = session()
    assert asyncio.run(rcpt(e, st, "u@example.test")) is None
    assert logs.take() == [
        f"warning: connect to 127.0.0.1:{port}: Connection refused",
        f"warning: problem talking to server 127.0.0.1:{port}: Connection refused"]


def test_timeout(tmp_path, logs):  # noqa: F811
    async def go():
        srv = PolicyServer({"slow@example.test": "SILENT"})
        ep = await srv.start_inet()
        e = make_engine(tmp_path, f"{{ {ep}, timeout=1s, try_limit=1 }}")
        r = await rcpt(e, session(), "slow@example.test")
        e.close()
        await srv.stop()
        return r, srv.port

    r, port = asyncio.run(go())
    assert r.code == 451
    assert logs.take()[0] == f"warning: problem talking to server 127.0.0.1:{port}: " \
                             "Connection timed out"


def test_empty_action_permits_with_a_warning(tmp_path, logs):  # noqa: F811
    async def go():
        srv = PolicyServer({"empty@example.test": "action=\n\n"})
        ep = await srv.start_inet()
        e = make_engine(tmp_path, ep)
        r = await rcpt(e, session(), "empty@example.test")
        e.close()
        await srv.stop()
        return r, ep

    r, ep = asyncio.run(go())
    assert r is None
    assert logs.take() == [f"warning: access table {ep} entry  has empty value"]


def test_unix_socket_and_request_limit(tmp_path):
    async def go():
        srv = PolicyServer({"rej@example.test": "action=550 5.7.1 go away\n\n"})
        ep = await srv.start_unix(os.path.join(tmp_path, "policy.sock"))
        e = make_engine(tmp_path, f"{{ {ep}, request_limit=1 }}")
        st = session()
        r1 = await rcpt(e, st, "rej@example.test")
        r2 = await rcpt(e, st, "ok@example.test")
        e.close()
        await srv.stop()
        return r1, r2, srv.connections

    r1, r2, conns = asyncio.run(go())
    assert r1.line() == "550 5.7.1 <rej@example.test>: Recipient address rejected: go away"
    assert r2 is None
    assert conns == 2       # request_limit=1: a new connection per request


def test_missing_argument_is_a_configuration_error(tmp_path, logs):  # noqa: F811
    e = engine_for({"smtpd_relay_restrictions": RCPT_PASS,
                    "smtpd_recipient_restrictions": "check_policy_service"}, tmp_path)
    r = asyncio.run(rcpt(e, session(), "u@example.test"))
    assert r.line() == "451 4.3.5 Server configuration error" and r.error_class == "software"
    assert logs.take()[0] == ("warning: restriction check_policy_service must be followed by "
                              "transport:server")


@pytest.mark.parametrize("arg, endpoint, timeout, action", [
    ("inet:127.0.0.1:9998", "inet:127.0.0.1:9998", 100.0, policy.DEFAULT_ACTION),
    ("{ inet:127.0.0.1:9998, timeout=10s, default_action=DUNNO }", "inet:127.0.0.1:9998",
     10.0, "DUNNO"),
    ("{unix:/run/p, max_idle=1m, default_action={450 4.7.1 later}}", "unix:/run/p", 100.0,
     "450 4.7.1 later"),
])
def test_parse_service(arg, endpoint, timeout, action):
    ep, settings = policy.parse_service(arg, policy.PolicySettings())
    assert (ep, settings.timeout, settings.default_action) == (endpoint, timeout, action)


def test_parse_service_errors():
    with pytest.raises(policy.PolicyError):
        policy.parse_service("{ inet:127.0.0.1:1, bogus=1 }", policy.PolicySettings())
    with pytest.raises(policy.PolicyError):
        policy.endpoint_address("inet:nohostport")
    assert policy.endpoint_address("inet:[::1]:9") == ("inet", ("::1", 9))
    assert policy.endpoint_address("/var/run/x") == ("unix", "/var/run/x")
