"""swaks (and, where swaks cannot, a raw Python client) drives `postier run`.

Every accepted message is read back from queue_directory/incoming with
read_envelope()/read_content() and compared byte for byte (size and SHA-256
of the body after the Received: header postier adds).  swaks 20201014
(Debian 12) has no CHUNKING/BDAT and cannot add MAIL parameters
(BODY=8BITMIME, SMTPUTF8, SIZE=), so those dialogs use the raw client of
smtpd_peers.py.  Where a dialog is compared with real Postfix, both servers
get the same main.cf (tools/postfix_instance.py base + the test's overrides).

swaks sends a --data file followed by CRLF "." CRLF, so data files are
written without their final CRLF and the stored body must equal the message.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading

import pytest
from smtpd_peers import (
    Smtp,
    dialog,
    dot_stuff,
    message,
    new_session_accepts_mail,
    stored_body,
)

from postier.queue.file import read_content, read_envelope

QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)")
SENDER = "sender@example.org"
RCPT = "rcpt@example.test"


def run_swaks(swaks: str, port: int, *args: str, timeout: float = 300) -> tuple[int, str]:
    argv = [swaks, "--server", f"127.0.0.1:{port}", "--helo", "client.example.org",
            "--from", SENDER, "--to", RCPT, *args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def data_file(tmp_path, msg: bytes, name: str = "msg.eml") -> str:
    path = tmp_path / name
    path.write_bytes(msg.removesuffix(b"\r\n"))
    return str(path)


def queued_id(out: str) -> str:
    m = QUEUED.search(out)
    assert m, f"no 'queued as' in swaks output:\n{out[-2000:]}"
    return m.group(1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_stored(srv, qid: str, msg: bytes) -> tuple:
    """The queue file of `qid` holds exactly `msg` after postier's Received:."""
    path = srv.queue_file(qid)
    env, _ = read_envelope(path)
    body = stored_body(read_content(path))
    assert (len(body), sha(body)) == (len(msg), sha(msg))
    return env, read_content(path)


# ---------------------------------------------------------------- swaks


def test_swaks_plain(start_postier, swaks, tmp_path):
    srv = start_postier()
    msg = message(4000, subject="plain")
    rc, out = run_swaks(swaks, srv.port, "--data", "@" + data_file(tmp_path, msg))
    assert rc == 0, out
    qid = queued_id(out)
    env, content = check_stored(srv, qid, msg)
    assert env.sender == SENDER
    assert [r.address for r in env.recipients] == [RCPT]
    assert (env.helo_name, env.protocol_name, env.client_address) == (
        "client.example.org", "ESMTP", "127.0.0.1")
    assert content.startswith(b"Received: from client.example.org (localhost [127.0.0.1])\n"
                              b"\tby mx.example.test (Postfix) with ESMTP id " + qid.encode())
    assert srv.incoming() == [srv.queue_file(qid)]


def test_swaks_pipelining(start_postier, swaks, tmp_path):
    srv = start_postier()
    msg = message(3000, subject="pipelined")
    rc, out = run_swaks(swaks, srv.port, "--pipeline", "--to", "a@example.test,b@example.test",
                        "--data", "@" + data_file(tmp_path, msg))
    assert rc == 0, out
    # swaks sent MAIL, both RCPTs and DATA before reading any of their replies
    lines = [x.strip() for x in out.splitlines()]
    i = lines.index(f"-> MAIL FROM:<{SENDER}>")
    assert lines[i:i + 8] == [
        f"-> MAIL FROM:<{SENDER}>", "-> RCPT TO:<a@example.test>",
        "-> RCPT TO:<b@example.test>", "-> DATA",
        "<-  250 2.1.0 Ok", "<-  250 2.1.5 Ok", "<-  250 2.1.5 Ok",
        "<-  354 End data with <CR><LF>.<CR><LF>"], out
    env, _ = check_stored(srv, queued_id(out), msg)
    assert [r.address for r in env.recipients] == ["a@example.test", "b@example.test"]


def test_pipelined_whole_session_in_one_write(start_postier):
    """A client that sends the whole session at once (EHLO to QUIT, message
    included) gets every reply in order and one queued message."""
    srv = start_postier()
    msg = message(2000, subject="one write")
    wire = (b"EHLO client.example.org\r\nMAIL FROM:<sender@example.org>\r\n"
            b"RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
            + dot_stuff(msg) + b"NOOP\r\nQUIT\r\n")
    with Smtp(srv.port) as c:
        assert c.reply().code == 220
        c.send(wire)
        replies = c.rest()
    assert [r.code for r in replies] == [250, 250, 250, 250, 354, 250, 250, 221]
    qid = QUEUED.search(replies[5].text).group(1)
    check_stored(srv, qid, msg)


def test_swaks_starttls(start_postier, swaks, tls_cert, tmp_path):
    cert, key = tls_cert
    srv = start_postier({"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
                         "smtpd_tls_key_file": key})
    msg = message(3000, subject="tls")
    rc, out = run_swaks(swaks, srv.port, "-tls", "--data", "@" + data_file(tmp_path, msg))
    assert rc == 0, out
    assert "250-STARTTLS" in out and "220 2.0.0 Ready to start TLS" in out
    assert "=== TLS started with cipher" in out
    # after TLS the EHLO reply no longer offers STARTTLS
    after = out.split("=== TLS started", 1)[1]
    assert "STARTTLS" not in after
    env, content = check_stored(srv, queued_id(out), msg)
    assert b") with ESMTPS id " in content.split(b"\n", 2)[1]
    assert srv.wait_log("disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 "
                        "rcpt=1 data=1 quit=1 commands=7"), srv.maillog()
    assert re.search(r"TLS (connection )?established", srv.maillog()), srv.maillog()


def test_starttls_not_offered_without_certificate(start_postier, swaks):
    srv = start_postier({"smtpd_tls_security_level": "may"})
    rc, out = run_swaks(swaks, srv.port, "-tls")
    assert rc != 0
    assert not re.search(r"<-  250[- ]STARTTLS", out), out
    assert "*** Host did not advertise STARTTLS" in out
    assert new_session_accepts_mail(srv.port).code == 250


def test_swaks_8bit_body(start_postier, swaks, tmp_path):
    srv = start_postier()
    msg = message(6000, subject="8bit", eight_bit=True)
    assert any(b > 127 for b in msg)
    rc, out = run_swaks(swaks, srv.port, "--data", "@" + data_file(tmp_path, msg))
    assert rc == 0, out
    check_stored(srv, queued_id(out), msg)


def test_8bitmime_body_parameter(start_postier):
    srv = start_postier()
    msg = message(6000, subject="8bitmime", eight_bit=True)
    with Smtp(srv.port) as c:
        c.reply()
        assert "250-8BITMIME" in c.cmd("EHLO client.example.org").lines
        assert c.cmd(f"MAIL FROM:<{SENDER}> BODY=8BITMIME").text == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        r = c.reply()
    assert r.code == 250, r
    env, _ = check_stored(srv, QUEUED.search(r.text).group(1), msg)
    assert env.body_type == "8BITMIME"


def test_smtputf8(start_postier):
    srv = start_postier({"smtputf8_enable": "yes"})
    msg = ("Subject: Grüße\r\nFrom: üser@exämple.org\r\nTo: ü@example.test\r\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <utf8@exämple.org>\r\n"
           "\r\nÜnïcödé body\r\n").encode()
    with Smtp(srv.port) as c:
        c.reply()
        assert "250-SMTPUTF8" in c.cmd("EHLO client.example.org").lines
        assert c.cmd("MAIL FROM:<üser@exämple.org> SMTPUTF8").text == "250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<ü@example.test>").text == "250 2.1.5 Ok"
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        r = c.reply()
    assert r.code == 250, r
    env, content = check_stored(srv, QUEUED.search(r.text).group(1), msg)
    assert env.smtputf8 is True
    assert env.sender == "üser@exämple.org"
    assert [x.address for x in env.recipients] == ["ü@example.test"]
    # RFC 6531 "with" type, as Postfix writes it
    assert b") with UTF8SMTP id " in content.split(b"\n", 2)[1]


SMTPUTF8_DIALOG = [
    "EHLO client.example.org",
    "MAIL FROM:<üser@exämple.org>",             # non-ASCII domain without SMTPUTF8
    "MAIL FROM:<üser@exämple.org> SMTPUTF8",
    "RCPT TO:<ü@example.test>",
    "RCPT TO:<r@exämple.test>",
    "RSET",
    "MAIL FROM:<s@example.org> SMTPUTF8=yes",
    "MAIL FROM:<s@example.org> BODY=BINARYMIME",
    "MAIL FROM:<s@example.org> BODY=8bitmime",
    "RCPT TO:<r@exämple.test>",                 # SMTPUTF8 not declared for this one
]


@pytest.mark.postfix
@pytest.mark.parametrize("enable", ["yes", "no"])
def test_smtputf8_and_body_replies_match_postfix(start_postier, start_postfix, enable):
    ov = {"smtputf8_enable": enable}
    want = dialog(start_postfix(ov).port, SMTPUTF8_DIALOG)
    got = dialog(start_postier(ov).port, SMTPUTF8_DIALOG)
    assert got == want


@pytest.mark.postfix
def test_smtputf8_received_header_matches_postfix(start_postier, start_postfix):
    ov = {"smtputf8_enable": "yes"}
    steps = ["EHLO client.example.org", "MAIL FROM:<üser@exämple.org> SMTPUTF8",
             "RCPT TO:<ü@example.test>", "DATA", b"Subject: \xc3\xbc\r\n\r\nx\r\n.\r\n"]
    pf = start_postfix(ov)
    pq = start_postier(ov)
    assert dialog(pq.port, steps) == dialog(pf.port, steps)
    pf_received = pf.postcat(os.path.basename(pf.incoming()[0])).splitlines()[:3]
    pq_received = read_content(pq.incoming()[0]).decode().splitlines()[:3]
    assert [_no_ids(x) for x in pq_received] == [_no_ids(x) for x in pf_received]


def _no_ids(line: str) -> str:
    line = re.sub(r" id [0-9A-Za-z]+$", " id QUEUEID", line)
    return re.sub(r"; .*$", "; DATE", line)


# ---------------------------------------------------------------- BDAT


def bdat_session(port: int, chunks: list[bytes], mail: str = f"MAIL FROM:<{SENDER}>"
                 ) -> list[str]:
    with Smtp(port) as c:
        out = [str(c.reply()), str(c.cmd("EHLO client.example.org"))]
        out += [str(c.cmd(mail)), str(c.cmd(f"RCPT TO:<{RCPT}>"))]
        for i, chunk in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            c.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
            out.append(str(c.reply()))
        out.append(str(c.cmd("QUIT")))
    return out


def bdat_chunks(msg: bytes) -> list[bytes]:
    """Split so that one chunk ends between CR and LF and another in the
    middle of a line that starts with a dot (no dot-stuffing in BDAT)."""
    cr = msg.index(b"\r\n", 700) + 1
    dot = msg.index(b"\r\n.", cr) + 4
    return [msg[:cr], msg[cr:dot], msg[dot:]]


def test_bdat_python_client(start_postier):
    """CHUNKING: swaks 20201014 cannot send BDAT, so a raw client does."""
    srv = start_postier()
    msg = message(20000, subject="bdat", eight_bit=True)
    chunks = bdat_chunks(msg)
    out = bdat_session(srv.port, chunks, f"MAIL FROM:<{SENDER}> BODY=8BITMIME")
    assert out[1].endswith("250 CHUNKING")
    # Postfix: each non-final chunk is acknowledged with its own size, the
    # last one with the total
    assert out[4:6] == [f"250 2.0.0 Ok: {len(chunks[0])} bytes",
                        f"250 2.0.0 Ok: {len(chunks[1])} bytes"]
    m = re.fullmatch(r"250 2\.0\.0 Ok: (\d+) bytes queued as (\w+)", out[6])
    assert m and int(m.group(1)) == len(msg), out
    env, _ = check_stored(srv, m.group(2), msg)
    assert env.body_type == "8BITMIME"
    assert new_session_accepts_mail(srv.port).code == 250


BDAT_ERRORS = [
    "EHLO client.example.org",
    b"BDAT 5\r\nhello",                          # no transaction
    "MAIL FROM:<s@example.org>", "RCPT TO:<r@example.test>",
    b"BDAT 5\r\nab\r\nc", "DATA", b"BDAT 3 LAST\r\nd\r\n",
    "MAIL FROM:<s@example.org>", "RCPT TO:<r@example.test>",
    b"BDAT 10\r\nSubject: x", b"BDAT 0 LAST\r\n",
    "BDAT x",
]


@pytest.mark.slow
@pytest.mark.postfix
def test_bdat_replies_match_postfix(start_postier, start_postfix):
    msg = message(20000, subject="bdat", eight_bit=True)
    chunks = bdat_chunks(msg)
    want = _queue_ids_out(bdat_session(start_postfix().port, chunks))
    got = _queue_ids_out(bdat_session(start_postier().port, chunks))
    assert got == want
    want = dialog(start_postfix().port, BDAT_ERRORS)
    got = dialog(start_postier().port, BDAT_ERRORS)
    assert got == want


def _queue_ids_out(replies: list[str]) -> list[str]:
    return [re.sub(r"queued as \w+", "queued as QUEUEID", r) for r in replies]


# ---------------------------------------------------------------- size


@pytest.mark.slow
def test_30mb_message_is_streamed(start_postier, swaks, tmp_path):
    """A 30 MB message passes through without the process growing: DATA is
    streamed to the queue file, never held whole (aiosmtpd would keep a list
    of 500,000 lines).  RSS is read from /proc before, during and after."""
    srv = start_postier({"message_size_limit": "40000000"})
    # warm up (first session, first queue file, TLS-less code paths loaded)
    rc, out = run_swaks(swaks, srv.port)
    assert rc == 0, out
    before = srv.rss_kb()
    assert before > 0
    msg = message(30 * 1024 * 1024, subject="30MB")
    path = data_file(tmp_path, msg, "big.eml")
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], srv.rss_kb())
            done.wait(0.01)

    t = threading.Thread(target=sample)   # (summed over the master and its workers)
    t.start()
    try:
        rc, out = run_swaks(swaks, srv.port, "--data", "@" + path, "--suppress-data")
    finally:
        done.set()
        t.join()
    after = srv.rss_kb()
    assert rc == 0, out
    check_stored(srv, queued_id(out), msg)
    assert after - before < 16 * 1024, (before, after)
    assert peak[0] - before < 16 * 1024, (before, peak[0])


def test_oversize_by_size_parameter(start_postier):
    srv = start_postier({"message_size_limit": "10000"})
    with Smtp(srv.port) as c:
        c.reply()
        assert "250-SIZE 10000" in c.cmd("EHLO client.example.org").lines
        assert c.cmd(f"MAIL FROM:<{SENDER}> SIZE=10001").text == (
            "552 5.3.4 Message size exceeds fixed limit")
        # as in Postfix, the declared size sticks until RSET (or HELO/EHLO)
        assert c.cmd(f"MAIL FROM:<{SENDER}>").text == (
            "552 5.3.4 Message size exceeds fixed limit")
        assert c.cmd("RSET").code == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}>").text == "250 2.1.0 Ok"
        assert c.cmd("RSET").code == 250
        assert c.cmd(f"MAIL FROM:<{SENDER}> SIZE=10000").text == "250 2.1.0 Ok"
    assert srv.incoming() == []
    assert new_session_accepts_mail(srv.port).code == 250


def test_oversize_by_data(start_postier, swaks, tmp_path):
    srv = start_postier({"message_size_limit": "10000"})
    msg = message(30000, subject="too big")
    rc, out = run_swaks(swaks, srv.port, "--data", "@" + data_file(tmp_path, msg))
    assert rc == 26, out                       # swaks: the reply to the data failed
    assert "552 5.3.4 Error: message file too big" in out
    assert srv.incoming() == []
    # the refused message left no temporary file: what remains are the smtpd
    # workers' unused pre-created queue files, still empty (QueueFilePool)
    incoming = os.path.join(srv.queue, "incoming")
    left = os.listdir(incoming)
    assert all(n.startswith(".") and n.endswith(".tmp")
               and os.path.getsize(os.path.join(incoming, n)) == 0 for n in left), left
    # the same session limit, right at the edge: accepted
    rc, out = run_swaks(swaks, srv.port, "--data", "@" + data_file(tmp_path, message(8000)))
    assert rc == 0, out
    assert new_session_accepts_mail(srv.port).code == 250


SIZE_DIALOG = [
    "EHLO client.example.org",
    "MAIL FROM:<s@example.org> SIZE=10001",
    "MAIL FROM:<s@example.org>",
    "MAIL FROM:<s@example.org> SIZE=x",
    "RSET",
    "MAIL FROM:<s@example.org> SIZE=10000",
    "RCPT TO:<r@example.test>",
    "DATA",
    dot_stuff(message(30000)),
    "MAIL FROM:<s@example.org>",
    "RCPT TO:<r@example.test>",
    "DATA",
    dot_stuff(message(9000)),
]


@pytest.mark.postfix
def test_size_limits_match_postfix(start_postier, start_postfix):
    ov = {"message_size_limit": "10000"}
    want = dialog(start_postfix(ov).port, SIZE_DIALOG)
    got = dialog(start_postier(ov).port, SIZE_DIALOG)
    assert got == want
    assert got[3] == "552 5.3.4 Message size exceeds fixed limit"
    assert got[9] == "552 5.3.4 Error: message file too big"
