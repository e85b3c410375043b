"""The smtp/lmtp client's decisions: destinations, settings, the final-server
policy of smtp_trouble.c, loop detection, timeouts and connect errors, with small
in-process servers (the real peers are in tests/integration/delivery)."""

from __future__ import annotations

import asyncio
import os

import pytest

from postier.config import Config
from postier.delivery import DeliveryRequest
from postier.delivery import smtp as S
from postier.queue.file import Recipient

# --------------------------------------------------------------------------- destinations

@pytest.mark.parametrize("dest, out", [
    ("[127.0.0.1]:2525", ("127.0.0.1", 2525, True)),
    ("[mail.example.test]", ("mail.example.test", 25, True)),
    ("example.test", ("example.test", 25, False)),
    ("example.test:587", ("example.test", 587, False)),
    ("[ipv6:2001:db8::1]:26", ("2001:db8::1", 26, True)),
    ("[2001:db8::1]", ("2001:db8::1", 25, True)),
    ("example.test:smtp", ("example.test", 25, False)),
])
def test_parse_destination(dest, out):
    assert S.parse_destination(dest, 25) == out


@pytest.mark.parametrize("dest, msg", [
    ("[127.0.0.1", 'missing "]" in server description: [127.0.0.1'),
    ("[127.0.0.1]x", 'garbage after "]" in server description: [127.0.0.1]x'),
    (":25", "missing host information in server description: :25"),
    ("host:0", "bad network port: 0"),
    ("host:70000", "bad network port: 70000"),
    ("host:nosuchservice", "unknown service: nosuchservice/tcp"),
])
def test_parse_destination_errors(dest, msg):
    with pytest.raises(S.DestinationError) as e:
        S.parse_destination(dest, 25)
    assert str(e.value) == msg


# --------------------------------------------------------------------------- settings

@pytest.mark.parametrize("main_cf, level", [
    ("", "none"),
    ("smtp_use_tls = yes\n", "may"),
    ("smtp_enforce_tls = yes\n", "encrypt"),
    ("smtp_use_tls = yes\nsmtp_tls_security_level = none\n", "none"),
    ("smtp_tls_security_level = encrypt\n", "encrypt"),
])
def test_tls_level(main_cf, level):
    assert S.Settings(Config.from_text(main_cf), False).tls_level == level


def test_lmtp_reads_lmtp_parameters():
    cfg = Config.from_text("lmtp_lhlo_name = lhlo.example\nsmtp_helo_name = helo.example\n"
                           "lmtp_rcpt_timeout = 7s\n")
    st = S.Settings(cfg, True)
    assert (st.helo_name, st.rcpt_timeout, st.connect_timeout, st.default_port()) == \
        ("lhlo.example", 7, 0, 24)
    assert st.skip_quit_response is False
    smtp = S.Settings(cfg, False)
    assert (smtp.helo_name, smtp.rcpt_timeout, smtp.connect_timeout, smtp.default_port()) == \
        ("helo.example", 300, 30, 25)


def test_dns_disabled():
    assert S.Settings(Config.from_text("disable_dns_lookups = yes\n"), False).lookup.native
    st = S.Settings(Config.from_text("smtp_dns_support_level = disabled\n"), False)
    assert st.dns_disabled and not st.lookup.dns
    st = S.Settings(Config.from_text("inet_protocols = ipv4\n"), False)
    assert not st.dns_disabled and st.lookup.dns and st.lookup.families == (2,)


def test_settings_cached_per_config():
    cfg = Config.from_text("")
    assert S.settings_for(cfg, False) is S.settings_for(cfg, False)
    assert S.settings_for(cfg, True) is not S.settings_for(cfg, False)


# --------------------------------------------------------------------------- failure policy

def _req(n=2, **kw):
    base = dict(queue_id="Q1", queue_path="/nonexistent", content_offset=8, content_size=10,
                sender="s@example.test", recipients=[Recipient(f"u{i}@example.test") for i in range(n)],
                transport="smtp", nexthop="[127.0.0.1]:25", config=Config.from_text(""))
    base.update(kw)
    return DeliveryRequest(**base)


def _d(main_cf="", n=2):
    return S._Delivery(_req(n), S.Settings(Config.from_text(main_cf), False))


def test_soft_error_at_a_non_final_server_keeps_recipients():
    d = _d()
    d.bulk_fail("4.4.2", "lost connection", None, remote=False)
    assert d.results == [None, None] and d.marked == {0, 1}
    d.marked.clear()
    d.final = True
    d.bulk_fail("4.4.2", "lost again", None, remote=False)
    assert [(r.status, r.dsn, r.text, r.relay) for r in d.results] == [("deferred", "4.4.2", "lost again", "none")] * 2


def test_hard_error_finishes_even_at_a_non_final_server():
    d = _d()
    d.rcpt_fail(1, "5.1.1", "host x said: 550", None)
    assert d.results[0] is None and d.results[1].status == "bounced"


def test_soft_bounce_keeps_5xx_for_the_next_server():
    d = _d("soft_bounce = yes\n")
    d.rcpt_fail(0, "5.1.1", "host x said: 550", None)
    assert d.marked == {0} and d.results[0] is None
    d.final = True
    d.rcpt_fail(1, "5.1.1", "host x said: 550", None)
    assert d.results[1].status == "bounced"     # the qmgr turns it into a deferral


def test_protocol_error_prefix_for_unexpected_success():
    d = _d(n=1)
    d.final = True
    d.bulk_fail("2.0.0", "host x said: 250 ok (in reply to DATA command)", None)
    r = d.results[0]
    assert (r.status, r.dsn, r.text) == ("bounced", "5.5.0", "Protocol error: host x said: 250 ok "
                                                             "(in reply to DATA command)")


def test_statuses_never_lose_a_recipient():
    d = _d()
    d.results[0] = None
    out = d.statuses()
    assert [(r.status, r.dsn) for r in out] == [("deferred", "4.3.0")] * 2


def test_delays_are_measured():
    d = _d(n=1)
    d.final = True
    d.bulk_fail("4.4.1", "x", None, remote=False)
    r = d.results[0]
    assert r.conn_delay >= 0 and r.xmit_delay >= 0


# --------------------------------------------------------------------------- in-process servers

def _run(coro):
    return asyncio.run(coro)


async def _serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _make_req(tmp_path, nexthop, main_cf="", n=1):
    from postier.queue.file import Envelope, QueueWriter, read_envelope
    spool = tmp_path / "q"
    spool.mkdir(exist_ok=True)
    w = QueueWriter(str(spool))
    w.write(b"Subject: t\n\nbody\n")
    env = Envelope(queue_id=w.queue_id, arrival=0.0, sender="s@example.test",
                   recipients=[Recipient(f"u{i}@example.test") for i in range(n)])
    path = w.commit(env)
    env, off = read_envelope(path)
    return DeliveryRequest(queue_id=env.queue_id, queue_path=path, content_offset=off,
                           content_size=env.content_size, sender=env.sender,
                           recipients=env.recipients, transport="smtp", nexthop=nexthop,
                           config=Config.from_text(main_cf))


def test_greeting_timeout(tmp_path):
    async def go():
        async def silent(reader, writer):
            await reader.read()
            writer.close()
        server, port = await _serve(silent)
        req = _make_req(tmp_path, f"[127.0.0.1]:{port}", "smtp_connection_cache_on_demand = no\n")
        S.settings_for(req.config, False).helo_timeout = 0.2
        async with server:
            return await S.deliver(req)
    [st] = _run(go())
    assert (st.status, st.dsn) == ("deferred", "4.4.2")
    assert st.text == "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"


def test_connect_timeout(tmp_path, monkeypatch):
    async def hang(*a, **kw):
        await asyncio.sleep(10)
    monkeypatch.setattr(S.asyncio, "open_connection", hang)

    async def go():
        req = _make_req(tmp_path, "[127.0.0.1]:2525")
        S.settings_for(req.config, False).connect_timeout = 0.1
        return await S.deliver(req)
    [st] = _run(go())
    assert (st.status, st.dsn, st.relay) == ("deferred", "4.4.1", "none")
    assert st.text == "connect to 127.0.0.1[127.0.0.1]:2525: Connection timed out"


def test_lmtp_unix_socket_missing(tmp_path):
    path = str(tmp_path / "no.sock")
    req = _make_req(tmp_path, f"unix:{path}", "myhostname = mx.example.test\n")
    req.transport = "lmtp"
    [st] = _run(S.deliver(req, lmtp=True))
    assert (st.status, st.dsn, st.relay) == ("deferred", "4.4.1", "none")
    assert st.text == f"connect to mx.example.test[{path}]: No such file or directory"


def test_lmtp_relative_unix_path_is_under_queue_directory(tmp_path):
    req = _make_req(tmp_path, "unix:private/dovecot-lmtp", f"queue_directory = {tmp_path}\n"
                    "myhostname = mx.example.test\n")
    [st] = _run(S.deliver(req, lmtp=True))
    assert st.text == f"connect to mx.example.test[{tmp_path}/private/dovecot-lmtp]: No such file or directory"


def _scripted(lines_for):
    """A tiny asyncio SMTP server: lines_for(command) -> reply bytes (None: close)."""
    async def handler(reader, writer):
        writer.write(lines_for("CONNECT"))
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line.decode().strip()
            if cmd == "DATA":
                writer.write(b"354 go\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                cmd = "."
            reply = lines_for(cmd)
            if reply is None:
                break
            writer.write(reply)
            if cmd == "QUIT":
                break
        writer.close()
    return handler


def test_ehlo_with_my_own_hostname_is_a_loop(tmp_path):
    # loop detection applies to port 25 only; call the handshake directly
    async def go():
        def answer(cmd):
            if cmd == "CONNECT":
                return b"220 peer ESMTP\r\n"
            if cmd.startswith("EHLO"):
                return b"250-mx.example.test\r\n250 PIPELINING\r\n"
            return b"221 bye\r\n"
        server, port = await _serve(_scripted(answer))
        async with server:
            req = _make_req(tmp_path, "example.test", "myhostname = mx.example.test\n")
            d = S._Delivery(req, S.settings_for(req.config, False))
            d.final = True
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            s = S.Session(reader, writer, "mx1.example.test", "127.0.0.1", 25, False)
            s.features |= S.F_BEST_MX
            ok = await d.helo(s, loop_detect=True)
            s.abort()
            return ok, d.results
    ok, results = _run(go())
    assert ok is False
    assert (results[0].status, results[0].dsn, results[0].text) == (
        "bounced", "5.4.6", "mail for example.test loops back to myself")


def test_smtputf8_required_but_not_offered(tmp_path):
    async def go():
        def answer(cmd):
            if cmd == "CONNECT":
                return b"220 peer ESMTP\r\n"
            if cmd.startswith("EHLO"):
                return b"250-peer\r\n250 8BITMIME\r\n"
            return b"221 bye\r\n"
        server, port = await _serve(_scripted(answer))
        async with server:
            req = _make_req(tmp_path, f"[127.0.0.1]:{port}")
            req.recipients = [Recipient("j\u00f6rg@example.test")]
            req.smtputf8 = True
            return await S.deliver(req)
    [st] = _run(go())
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.6.7", "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]")


def test_size_limit_of_server(tmp_path):
    async def go():
        def answer(cmd):
            if cmd == "CONNECT":
                return b"220 peer ESMTP\r\n"
            if cmd.startswith("EHLO"):
                return b"250-peer\r\n250 SIZE 5\r\n"
            return b"221 bye\r\n"
        server, port = await _serve(_scripted(answer))
        async with server:
            return await S.deliver(_make_req(tmp_path, f"[127.0.0.1]:{port}"))
    [st] = _run(go())
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.3.4", "message size 17 exceeds size limit 5 of server 127.0.0.1[127.0.0.1]")


def test_queue_file_gone_defers(tmp_path):
    async def go():
        def answer(cmd):
            return {"CONNECT": b"220 peer ESMTP\r\n"}.get(cmd, b"250 ok\r\n")
        server, port = await _serve(_scripted(answer))
        async with server:
            req = _make_req(tmp_path, f"[127.0.0.1]:{port}")
            os.unlink(req.queue_path)
            return await S.deliver(req)
    [st] = _run(go())
    assert (st.status, st.dsn, st.text) == (
        "deferred", "4.3.0", "local data error while talking to 127.0.0.1[127.0.0.1]")


def test_bad_nexthop_defers_with_a_config_error(tmp_path):
    [st] = _run(S.deliver(_make_req(tmp_path, "[127.0.0.1")))
    assert (st.status, st.dsn) == ("deferred", "4.3.5")
    assert st.text == 'missing "]" in server description: [127.0.0.1'


def test_empty_request_returns_nothing():
    assert _run(S.deliver(_req(0))) == []
