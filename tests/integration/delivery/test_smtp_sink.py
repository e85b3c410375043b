"""The smtp agent against Postfix's smtp-sink(1): content on the wire, MAIL/RCPT
parameters, 4xx/5xx/disconnects at chosen commands, connection reuse and its limits."""

from __future__ import annotations

import asyncio

import pytest
from sink import SmtpSink, sink_available

import postier.delivery.agents  # noqa: F401
from postier.delivery import AGENTS, smtp

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sink_available(), reason="smtp-sink not installed")]

CFG = "myhostname = client.example.test\n"
BODY = b"From: a@example.test\nSubject: sink\n\n.dot first\nplain\n..double\n"


def sink_body(dump: bytes) -> bytes:
    """The message in an smtp-sink dump: after its 3-line Received: header,
    minus the trailing empty line smtp-sink appends."""
    head, _, rest = dump.partition(b"Received: from ")
    rest = rest.split(b"\n", 3)[3]
    return rest[:-1]


def test_content_and_parameters(make_request, run):
    with SmtpSink() as sink:
        req = make_request(BODY, ["a@remote.test", "b@remote.test"], f"[127.0.0.1]:{sink.port}",
                           CFG + "smtp_connection_cache_on_demand = no\n", body_type="8BITMIME")
        res = run(AGENTS["smtp"](req))
        assert [(r.status, r.dsn, r.text) for r in res] == [("sent", "2.0.0", "250 2.0.0 Ok")] * 2
        assert sink.wait_counter("mesg", 1) and sink.wait_counter("quit", 1)
        [dump] = sink.dumps()
    assert sink_body(dump) == BODY
    # smtp-sink offers no SIZE, so no SIZE= parameter
    assert b"X-Mail-Args: <sender@example.test> BODY=8BITMIME\n" in dump
    assert b"X-Rcpt-Args: <a@remote.test>\nX-Rcpt-Args: <b@remote.test>\n" in dump
    assert b"X-Helo-Args: client.example.test\n" in dump


def test_no_body_parameter_without_8bitmime(make_request, run):
    with SmtpSink(["-8"]) as sink:
        req = make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{sink.port}", CFG,
                           body_type="8BITMIME")
        [st] = run(AGENTS["smtp"](req))
        assert st.status == "sent"
        assert sink.wait_counter("mesg", 1)
        [dump] = sink.dumps()
    assert b"X-Mail-Args: <sender@example.test>\n" in dump


def test_large_message_intact(make_request, run):
    body = b"Subject: big\n\n" + b"".join(b"%06d line of text .\n.%06d\n" % (i, i) for i in range(3000))
    with SmtpSink() as sink:
        req = make_request(body, ["a@remote.test"], f"[127.0.0.1]:{sink.port}", CFG)
        [st] = run(AGENTS["smtp"](req))
        assert st.status == "sent"
        assert sink.wait_counter("mesg", 1)
        [dump] = sink.dumps()
    assert sink_body(dump) == body


@pytest.mark.parametrize("opts, status, dsn, text", [
    (["-f", "RCPT"], "bounced", "5.3.0",
     "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command failed (in reply to RCPT TO command)"),
    (["-r", "RCPT"], "deferred", "4.3.0",
     "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed (in reply to RCPT TO command)"),
    (["-f", "MAIL"], "bounced", "5.3.0",
     "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command failed (in reply to MAIL FROM command)"),
    (["-f", "DATA"], "bounced", "5.3.0",
     "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command failed (in reply to DATA command)"),
    (["-f", "."], "bounced", "5.3.0",
     "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command failed (in reply to end of DATA command)"),
    (["-r", "."], "deferred", "4.3.0",
     "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed (in reply to end of DATA command)"),
    (["-f", "EHLO,HELO"], "bounced", "5.3.0",
     "host 127.0.0.1[127.0.0.1] refused to talk to me: 500 5.3.0 Error: command failed"),
    (["-q", "RCPT"], "deferred", "4.4.2",
     "lost connection with 127.0.0.1[127.0.0.1] while sending RCPT TO"),
    (["-Q", "MAIL"], "deferred", "4.0.0",
     "host 127.0.0.1[127.0.0.1] said: 421 4.0.0 Server closing connection (in reply to MAIL FROM command)"),
])
def test_failures(opts, status, dsn, text, make_request, run):
    with SmtpSink(opts) as sink:
        req = make_request(BODY, ["a@remote.test", "b@remote.test"], f"[127.0.0.1]:{sink.port}", CFG)
        res = run(AGENTS["smtp"](req))
        assert [(r.status, r.dsn, r.text, r.relay) for r in res] == \
            [(status, dsn, text, f"127.0.0.1[127.0.0.1]:{sink.port}")] * 2


def test_all_recipients_refused_sends_no_message(make_request, run):
    with SmtpSink(["-f", "RCPT"]) as sink:
        req = make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{sink.port}",
                           CFG + "smtp_connection_cache_on_demand = no\n")
        run(AGENTS["smtp"](req))
        assert sink.wait_counter("sess", 1)
        assert sink.counters()["mesg"] == 0


def _many(make_request, port: int, n: int, cfg: str, concurrent: bool = False):
    async def go():
        reqs = [make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{port}", cfg) for _ in range(n)]
        for r in reqs[1:]:
            r.config = reqs[0].config     # one configuration, as the qmgr hands out
        if concurrent:
            res = await asyncio.gather(*(AGENTS["smtp"](r) for r in reqs))
            out = [x for r in res for x in r]
        else:
            out = []
            for r in reqs:
                out += await AGENTS["smtp"](r)
        idle = smtp.idle_session_count()
        return out, idle
    return go()


def test_connection_reuse_one_session(make_request, run):
    with SmtpSink() as sink:
        res, idle = run(_many(make_request, sink.port, 3, CFG))
        assert [r.status for r in res] == ["sent"] * 3 and idle == 1
        # the log's conn_use=N: the first delivery opened it, then 2nd and 3rd use
        assert [r.conn_use for r in res] == [0, 2, 3]
        assert sink.wait_counter("quit", 1)          # close_idle_sessions() sent QUIT
        assert sink.counters() == {"sess": 1, "quit": 1, "mesg": 3}


def test_idle_connection_closed_after_cache_time_limit(make_request, run):
    async def go(port):
        req = make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{port}",
                           CFG + "smtp_connection_cache_time_limit = 1s\n")
        res = await AGENTS["smtp"](req)
        before = smtp.idle_session_count()
        await asyncio.sleep(1.3)
        return res, before, smtp.idle_session_count()

    with SmtpSink() as sink:
        res, before, after = run(go(sink.port))
        assert res[0].status == "sent" and (before, after) == (1, 0)
        assert sink.wait_counter("quit", 1)


def test_reuse_count_limit(make_request, run):
    with SmtpSink() as sink:
        res, _ = run(_many(make_request, sink.port, 3,
                           CFG + "smtp_connection_reuse_count_limit = 1\n"))
        assert [r.status for r in res] == ["sent"] * 3
        assert sink.wait_counter("sess", 2)
        assert sink.counters()["sess"] == 2 and sink.counters()["mesg"] == 3


def test_no_reuse_when_cache_off(make_request, run):
    with SmtpSink() as sink:
        res, idle = run(_many(make_request, sink.port, 3,
                              CFG + "smtp_connection_cache_on_demand = no\n"))
        assert [r.status for r in res] == ["sent"] * 3 and idle == 0
        assert [r.conn_use for r in res] == [0, 0, 0]
        assert sink.wait_counter("sess", 3)
        assert sink.counters() == {"sess": 3, "quit": 3, "mesg": 3}


def test_concurrent_requests(make_request, run):
    with SmtpSink() as sink:
        res, idle = run(_many(make_request, sink.port, 10, CFG, concurrent=True))
        assert [r.status for r in res] == ["sent"] * 10
        assert sink.wait_counter("mesg", 10)
        assert 1 <= idle <= 10


@pytest.mark.parametrize("session_limit", [1, 2])
def test_dead_cached_connection_is_replaced(session_limit, make_request, run):
    async def go(port, sink):
        cfg = CFG + f"smtp_connection_cache_time_limit = 30s\nsmtp_mx_session_limit = {session_limit}\n"
        a = make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{port}", cfg)
        r1 = await AGENTS["smtp"](a)
        sink.stop()                  # the cached connection dies with the server ...
        sink.start()                 # ... a new server on the same port
        await asyncio.sleep(0.1)
        b = make_request(BODY, ["a@remote.test"], f"[127.0.0.1]:{port}", cfg)
        b.config = a.config
        return r1 + await AGENTS["smtp"](b)

    with SmtpSink() as sink:
        res = run(go(sink.port, sink))
        assert [r.status for r in res] == ["sent", "sent"]
        assert sink.wait_counter("mesg", 1)
