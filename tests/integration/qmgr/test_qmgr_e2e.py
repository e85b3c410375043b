"""End to end: swaks -> postier run (smtpd + qmgr + the smtp agent) -> smtp-sink.

Real peers only: swaks as the client, Postfix's smtp-sink as the next hop
(relayhost = [127.0.0.1]:PORT), a second smtp-sink with -d capturing the
notifications postier sends back (the sender's domain is routed to it by
transport_maps).  Backoff times are shrunk to seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest
from peers import PostierDaemon, SmtpSink, peers_available, send_message, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not peers_available(), reason="smtp-sink not installed")]

SWAKS = shutil.which("swaks")
FAST = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"}


def swaks(port: int, sender: str, to: str, *extra: str) -> subprocess.CompletedProcess:
    if SWAKS is None:
        pytest.skip("swaks not installed")
    return subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(port), "--from", sender,
                           "--to", to, "--helo", "client.example.test", "--silent", "2",
                           *extra], capture_output=True, text=True, timeout=60)


@pytest.fixture
def dirs(tmp_path):
    tmp_path.chmod(0o755)
    return tmp_path


def test_relay_to_smtp_sink(dirs):
    with SmtpSink([], dump_dir=str(dirs / "sink")) as sink:
        with PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}", **FAST}) as d:
            p = swaks(d.port, "alice@sender.test", "bob@dest.test",
                      "--header", "Subject: e2e relay", "--body", "hello from swaks")
            assert p.returncode == 0, p.stdout + p.stderr
            assert wait_for(lambda: sink.messages >= 1, 20)
            assert d.wait_log(re.compile(r"postier/qmgr\[\d+\]: [0-9A-F]+: removed"), 10)
            log = d.log()
    (dump,) = sink.dumps()
    text = dump.decode()
    assert "X-Rcpt-Args: <bob@dest.test>" in text and "Subject: e2e relay" in text
    assert "hello from swaks" in text
    m = re.search(r"postier/smtp\[\d+\]: ([0-9A-F]+): to=<bob@dest\.test>, "
                  rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink.port}, delay=[\d.]+, "
                  r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 ", log)
    assert m, log
    qid = m.group(1)
    assert re.search(rf"postier/qmgr\[\d+\]: {qid}: from=<alice@sender\.test>, size=\d+, "
                     r"nrcpt=1 \(queue active\)", log)


def test_reused_connection_logs_conn_use(dirs):
    # the second message goes over the connection the first one left idle:
    # its line says conn_use=2 right after relay=, as Postfix's smtp(8) does
    with SmtpSink([]) as sink:
        with PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}", **FAST}) as d:
            for n in (1, 2):
                send_message(d.port, "alice@sender.test", ["bob@dest.test"],
                             f"Subject: reuse {n}\r\n\r\nbody\r\n")
                assert wait_for(lambda n=n: sink.messages >= n, 20)
            assert d.wait_log(re.compile(r"conn_use=2, delay="), 10)
            log = d.log()
    lines = re.findall(r"to=<bob@dest\.test>, relay=\S+, (conn_use=\d+, )?delay=", log)
    assert lines == ["", "conn_use=2, "], log


def test_4xx_is_retried_then_delivered(dirs):
    sink = SmtpSink(["-r", "RCPT"]).start()
    try:
        with PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}", **FAST}) as d:
            send_message(d.port, "alice@sender.test", ["bob@dest.test"],
                         "Subject: retry me\r\n\r\nbody\r\n")
            assert d.wait_log("status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.3.0 "
                              "Error: command failed (in reply to RCPT TO command))", 20)
            assert wait_for(lambda: d.queue_files("deferred"), 10)
            # retried from deferred/ after the backoff, still 4xx
            assert d.wait_log("(queue active)", 20, count=2)
            sink.restart([])          # the destination recovers
            assert wait_for(lambda: sink.messages >= 1, 30)
            assert d.wait_log("dsn=2.0.0, status=sent", 10)
            assert wait_for(lambda: d.queued() == 0, 10)
            # the qmgr logs "removed" after the unlink: the file can be gone
            # before the line is written
            assert d.wait_log(re.compile(r"[0-9A-F]{16}: removed"), 10)
            log = d.log()
    finally:
        sink.stop()
    qid = re.search(r"([0-9A-F]{16}): to=<bob@dest.test>.*status=sent", log).group(1)
    attempts = re.findall(rf"{qid}: from=<alice@sender.test>.*\(queue active\)", log)
    assert len(attempts) >= 3
    assert f"{qid}: removed" in log


def test_5xx_produces_dsn_that_the_sender_receives(dirs):
    dest = SmtpSink(["-f", "RCPT"]).start()
    cap = SmtpSink([], dump_dir=str(dirs / "cap")).start()
    try:
        cf = {"relayhost": f"[127.0.0.1]:{dest.port}",
              "transport_maps": f"inline:{{sender.test=smtp:[127.0.0.1]:{cap.port}}}", **FAST}
        with PostierDaemon(cf) as d:
            p = swaks(d.port, "alice@sender.test", "bob@dest.test",
                      "--header", "Subject: will bounce")
            assert p.returncode == 0, p.stdout + p.stderr
            assert wait_for(lambda: cap.messages >= 1, 30)
            assert wait_for(lambda: d.queued() == 0, 10)
            log = d.log()
    finally:
        dest.stop()
        cap.stop()
    m = re.search(r"postier/bounce\[\d+\]: ([0-9A-F]+): sender non-delivery notification: "
                  r"([0-9A-F]+)", log)
    assert m, log
    orig, notice = m.groups()
    assert re.search(rf"{orig}: to=<bob@dest\.test>, .*dsn=5\.3\.0, status=bounced \(host "
                     r"127\.0\.0\.1\[127\.0\.0\.1\] said: 500 5\.3\.0 Error: command failed "
                     r"\(in reply to RCPT TO command\)\)", log)
    assert re.search(rf"postier/qmgr\[\d+\]: {notice}: from=<>, ", log)
    (dump,) = cap.dumps()
    text = dump.decode()
    assert "X-Mail-Args: <>" in text
    assert "Subject: Undelivered Mail Returned to Sender" in text
    assert "Content-Type: multipart/report; report-type=delivery-status;" in text
    assert f"X-Postfix-Queue-ID: {orig}" in text
    assert "Final-Recipient: rfc822; bob@dest.test" in text
    assert "Action: failed" in text and "Status: 5.3.0" in text
    assert "Diagnostic-Code: smtp; 500 5.3.0 Error: command failed" in text
    assert "Subject: will bounce" in text          # the returned message


def test_hold_queue_is_respected_until_released(dirs):
    with SmtpSink([]) as sink:
        cf = {"relayhost": f"[127.0.0.1]:{sink.port}",
              "smtpd_recipient_restrictions":
                  "check_recipient_access inline:{held@dest.test=HOLD}, permit_mynetworks, "
                  "reject", **FAST}
        with PostierDaemon(cf) as d:
            send_message(d.port, "alice@sender.test", ["held@dest.test"],
                         "Subject: hold me\r\n\r\nbody\r\n")
            send_message(d.port, "alice@sender.test", ["free@dest.test"],
                         "Subject: free\r\n\r\nbody\r\n")
            assert wait_for(lambda: sink.messages >= 1, 20)
            assert wait_for(lambda: len(d.queue_files("hold")) == 1, 10)
            time.sleep(2.5)                       # two deferred/incoming scans pass
            assert sink.messages == 1
            (qid,) = d.queue_files("hold")
            # release: rename into deferred/ with a current time stamp, then flush
            os.rename(os.path.join(d.queue, "hold", qid), os.path.join(d.queue, "deferred", qid))
            from postier.qmgr.control import qmgr_flush
            assert qmgr_flush(d.queue)
            assert wait_for(lambda: sink.messages >= 2, 20)
            assert wait_for(lambda: d.queued() == 0, 10)


def test_dead_destination_and_missing_transport_like_postfix(dirs):
    """Texts and tags recorded from Postfix 3.7 (relayhost on a closed port,
    initial_destination_concurrency = 1, a transport master.cf lacks):
      smtp:  to=<r0@..>, relay=none, ..., dsn=4.4.1, status=deferred (connect to
             127.0.0.1[127.0.0.1]:PORT: Connection refused)
      error: to=<r1@..>, relay=none, ..., dsn=4.4.1, status=deferred (delivery
             temporarily suspended: connect to 127.0.0.1[127.0.0.1]:PORT: Connection refused)
      qmgr:  warning: connect to transport private/bogus: No such file or directory
      error: to=<x@bogus.test>, relay=none, ..., dsn=4.3.0, status=deferred (mail
             transport unavailable)"""
    from peers import free_port
    closed = free_port()
    cf = {"relayhost": f"[127.0.0.1]:{closed}", "initial_destination_concurrency": "1",
          "transport_maps": "inline:{bogus.test=bogus:}", **FAST,
          "minimal_backoff_time": "60s", "maximal_backoff_time": "60s",
          "queue_run_delay": "60s"}
    with PostierDaemon(cf) as d:
        for i in range(3):
            send_message(d.port, "a@sender.test", [f"r{i}@dest.test"], f"Subject: {i}\r\n\r\nx\r\n")
        send_message(d.port, "a@sender.test", ["x@bogus.test"], "Subject: b\r\n\r\nx\r\n")
        assert wait_for(lambda: len(d.queue_files("deferred")) == 4, 20)
        log = d.log()
    refused = f"connect to 127.0.0.1[127.0.0.1]:{closed}: Connection refused"
    first = re.findall(rf"postier/smtp\[\d+\]: [0-9A-F]+: to=<r\d@dest\.test>, relay=none, "
                       rf"delay=[\d.]+, delays=[\d./]+, dsn=4\.4\.1, status=deferred "
                       rf"\({re.escape(refused)}\)", log)
    later = re.findall(rf"postier/error\[\d+\]: [0-9A-F]+: to=<r\d@dest\.test>, relay=none, "
                       rf"delay=[\d.]+, delays=[\d./]+, dsn=4\.4\.1, status=deferred "
                       rf"\(delivery temporarily suspended: {re.escape(refused)}\)", log)
    assert len(first) == 1 and len(later) == 2, log
    assert re.search(r"postier/qmgr\[\d+\]: warning: connect to transport private/bogus: "
                     r"No such file or directory", log)
    assert re.search(r"postier/error\[\d+\]: [0-9A-F]+: to=<x@bogus\.test>, relay=none, "
                     r"delay=[\d.]+, delays=[\d./]+, dsn=4\.3\.0, status=deferred "
                     r"\(mail transport unavailable\)", log)
