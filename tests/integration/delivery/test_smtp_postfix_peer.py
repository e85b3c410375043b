"""The smtp agent against a real Postfix smtpd (tools/postfix_instance.py) as the peer:
STARTTLS (may, encrypt, and their failures), DSN parameters and XFORWARD end up in
Postfix's queue file exactly as sent; the content arrives intact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from scripted import ScriptedServer

import postier.delivery.agents  # noqa: F401
from postier.delivery import AGENTS
from postier.queue.file import Recipient

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools")
sys.path.insert(0, os.path.abspath(TOOLS))
from postfix_instance import PostfixInstance, postfix_available  # noqa: E402
from testcert import make_cert, openssl_available  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postfix,
              pytest.mark.skipif(not postfix_available(), reason="needs real Postfix and root")]

BODY = b"Subject: peer test\nX-Long: " + b"y" * 1500 + b"\n\nline\n.leading dot\n..two dots\n"


class TlsPostfix(PostfixInstance):
    """The test instance plus tlsmgr(8), which smtpd needs for STARTTLS."""

    def write_config(self, overrides=(), tables=None):
        super().write_config(overrides, tables)
        path = os.path.join(self.etc, "master.cf")
        with open(path, "a") as f:
            f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")
        past = time.time() - 3600
        os.utime(path, (past, past))


@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    if not openssl_available():
        pytest.skip("openssl not installed")
    cert, key = make_cert(str(tmp_path_factory.mktemp("cert")), "mx.example.test")
    inst = TlsPostfix()
    inst.cert, inst.key = cert, key
    inst.write_config({"smtpd_authorized_xforward_hosts": "127.0.0.0/8",
                       "smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
                       "smtpd_tls_key_file": key, "smtpd_tls_loglevel": "1"})
    inst.start()
    yield inst
    inst.cleanup()


def postcat(pf, qid: str) -> str:
    for _ in range(50):
        p = subprocess.run(["postcat", "-c", pf.etc, "-e", "-h", "-b", "-q", qid],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout
        time.sleep(0.05)
    raise AssertionError(f"postcat {qid}: {p.stderr}")


def queued_id(text: str) -> str:
    m = re.search(r"queued as (\w+)", text)
    assert m, text
    return m.group(1)


CFG = "myhostname = client.example.test\nsmtp_connection_cache_on_demand = no\n"


def test_starttls_may_with_postfix(pf, make_request, run):
    start = pf.log_size()
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}",
                       CFG + "smtp_tls_security_level = may\n")
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn, st.relay) == ("sent", "2.0.0", f"127.0.0.1[127.0.0.1]:{pf.port}")
    assert pf.wait_log("Anonymous TLS connection established from", 5, start=start)
    out = postcat(pf, queued_id(st.text))
    # content intact, dot lines unstuffed again by Postfix; the 1508-character header
    # line is broken at smtp_line_length_limit (998) with <CR><LF><SPACE>, as Postfix does
    assert "X-Long: " + "y" * 990 + "\n " + "y" * 510 + "\n" in out
    assert "\nline\n.leading dot\n..two dots\n" in out


def test_starttls_encrypt_with_postfix(pf, make_request, run):
    start = pf.log_size()
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}",
                       CFG + "smtp_tls_security_level = encrypt\n")
    [st] = run(AGENTS["smtp"](req))
    assert st.status == "sent", st.text
    assert pf.wait_log("TLS connection established from", 5, start=start)


def test_no_tls_by_default(pf, make_request, run):
    start = pf.log_size()
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}", CFG)
    [st] = run(AGENTS["smtp"](req))
    assert st.status == "sent"
    assert pf.wait_log("disconnect from", 5, start=start)
    assert "TLS connection established" not in pf.read_log(start)


def test_encrypt_when_not_offered_defers(make_request, run):
    with ScriptedServer({}) as srv:
        req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{srv.port}",
                           CFG + "smtp_tls_security_level = encrypt\n")
        [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn) == ("deferred", "4.7.4")
    assert st.text == "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"


def test_encrypt_when_starttls_refused_defers(make_request, run):
    ehlo = "250-sink.test\n250-PIPELINING\n250 STARTTLS"
    with ScriptedServer({"ehlo": ehlo, "starttls": "454 4.7.0 TLS not available due to local problem"}) as srv:
        req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{srv.port}",
                           CFG + "smtp_tls_security_level = encrypt\n")
        [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn) == ("deferred", "4.7.0")
    assert st.text == ("TLS is required, but host 127.0.0.1[127.0.0.1] refused to start TLS: "
                       "454 4.7.0 TLS not available due to local problem")


def test_may_falls_back_to_plaintext_after_a_failed_handshake(make_request, run):
    # the server says 220 to STARTTLS, then answers the TLS hello with SMTP text
    ehlo = "250-sink.test\n250-PIPELINING\n250 STARTTLS"
    with ScriptedServer({"ehlo": ehlo, "starttls": "220 2.0.0 Ready to start TLS"}) as srv:
        req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{srv.port}",
                           CFG + "smtp_tls_security_level = may\n")
        [st] = run(AGENTS["smtp"](req))
        assert st.status == "sent", st.text
        assert srv.wait_sessions(2)
        first, second = srv.sessions[0].commands, srv.sessions[1].commands
    assert first[:2] == ["EHLO client.example.test", "STARTTLS"]
    assert "STARTTLS" not in second and second[0] == "EHLO client.example.test"
    assert srv.sessions[1].messages


def test_encrypt_handshake_failure_defers(make_request, run):
    ehlo = "250-sink.test\n250-PIPELINING\n250 STARTTLS"
    with ScriptedServer({"ehlo": ehlo, "starttls": "220 2.0.0 Ready to start TLS"}) as srv:
        req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{srv.port}",
                           CFG + "smtp_tls_security_level = encrypt\nsmtp_starttls_timeout = 5s\n")
        [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn, st.text) == ("deferred", "4.7.5", "Cannot start TLS: handshake failure")


def test_verify_level_rejects_an_untrusted_certificate(pf, make_request, run):
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}",
                       CFG + "smtp_tls_security_level = verify\n")
    [st] = run(AGENTS["smtp"](req))
    assert (st.status, st.dsn, st.text) == ("deferred", "4.7.5", "Server certificate not trusted")


def test_verify_level_accepts_a_trusted_certificate(pf, make_request, run):
    # the test certificate is its own CA; the MX name is the certificate's name
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}",
                       CFG + f"smtp_tls_security_level = verify\nsmtp_tls_CAfile = {pf.cert}\n")
    [st] = run(AGENTS["smtp"](req))
    # the host name for [127.0.0.1] is "127.0.0.1", not the certificate's name
    assert (st.status, st.text) == ("deferred", "Server certificate not verified")


def test_dsn_parameters_reach_postfix(pf, make_request, run):
    rcpt = Recipient("u@example.test", orig="orig+x@example.test", dsn_notify="SUCCESS,FAILURE")
    req = make_request(BODY, [rcpt], f"[127.0.0.1]:{pf.port}", CFG,
                       dsn_envid="abc+def", dsn_ret="HDRS")
    [st] = run(AGENTS["smtp"](req))
    assert st.status == "sent", st.text
    out = postcat(pf, queued_id(st.text))
    assert "named_attribute: envelope_id=abc+def" in out
    assert "named_attribute: ret_flags=2" in out            # HDRS
    assert "named_attribute: notify_flags=6" in out         # SUCCESS|FAILURE
    assert "named_attribute: dsn_orig_rcpt=rfc822;orig+x@example.test" in out


def test_explicit_orcpt_and_never(pf, make_request, run):
    rcpt = Recipient("u@example.test", dsn_orcpt="rfc822;first=last@example.test", dsn_notify="NEVER")
    req = make_request(BODY, [rcpt], f"[127.0.0.1]:{pf.port}", CFG, dsn_ret="FULL")
    [st] = run(AGENTS["smtp"](req))
    out = postcat(pf, queued_id(st.text))
    assert "named_attribute: dsn_orig_rcpt=rfc822;first=last@example.test" in out
    assert "named_attribute: notify_flags=1" in out
    assert "named_attribute: ret_flags=1" in out


def test_xforward_reaches_postfix(pf, make_request, run):
    start = pf.log_size()
    attrs = {"client_name": "client.example", "client_address": "192.0.2.7", "client_port": "4711",
             "protocol_name": "ESMTP", "helo_name": "helo.example", "log_ident": "ABC123",
             "rewrite_context": "remote"}
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}",
                       CFG + "smtp_send_xforward_command = yes\n", attrs=attrs)
    [st] = run(AGENTS["smtp"](req))
    assert st.status == "sent", st.text
    qid = queued_id(st.text)
    out = postcat(pf, qid)
    for line in ("log_client_name=client.example", "log_client_address=192.0.2.7",
                 "log_client_port=4711", "log_helo_name=helo.example",
                 "log_protocol_name=ESMTP", "log_ident=ABC123", "rewrite_context=remote"):
        assert "named_attribute: " + line in out
    assert pf.wait_log(f"{qid}: client=localhost[127.0.0.1], orig_queue_id=ABC123, "
                       "orig_client=client.example[192.0.2.7]", 5, start=start)


def test_no_xforward_unless_enabled(pf, make_request, run):
    attrs = {"client_name": "client.example", "client_address": "192.0.2.7"}
    req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{pf.port}", CFG, attrs=attrs)
    [st] = run(AGENTS["smtp"](req))
    out = postcat(pf, queued_id(st.text))
    assert "log_client_name=localhost\n" in out and "log_client_name=client.example" not in out


def test_8bitmime_body_and_size(pf, make_request, run):
    body = "Subject: caf\u00e9\n\n\u00e9t\u00e9\n".encode()
    req = make_request(body, ["u@example.test"], f"[127.0.0.1]:{pf.port}", CFG,
                       body_type="8BITMIME")
    [st] = run(AGENTS["smtp"](req))
    assert st.status == "sent"
    out = postcat(pf, queued_id(st.text))
    assert "\u00e9t\u00e9" in out


def test_wrappermode_tls_from_the_start(pf, make_request, run):
    """smtp_tls_wrappermode = yes (SMTPS): TLS before the greeting, against an
    asyncio TLS server using the instance's test certificate."""
    import asyncio
    import ssl

    seen = []

    async def handler(reader, writer):
        writer.write(b"220 smtps.test ESMTP\r\n")
        while line := await reader.readline():
            cmd = line.decode().strip()
            seen.append(cmd)
            if cmd == "DATA":
                writer.write(b"354 go\r\n")
                while (await reader.readline()) != b".\r\n":
                    pass
                writer.write(b"250 2.0.0 queued over TLS\r\n")
            elif cmd.startswith("EHLO"):
                writer.write(b"250-smtps.test\r\n250 PIPELINING\r\n")
            elif cmd == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    async def go():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pf.cert, pf.key)
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            req = make_request(BODY, ["u@example.test"], f"[127.0.0.1]:{port}",
                               CFG + "smtp_tls_wrappermode = yes\nsmtp_tls_security_level = encrypt\n")
            return await AGENTS["smtp"](req)

    [st] = run(go())
    assert (st.status, st.text) == ("sent", "250 2.0.0 queued over TLS")
    assert seen[0] == "EHLO client.example.test" and "STARTTLS" not in seen
