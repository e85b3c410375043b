"""After-queue content filtering, amavisd style, end to end.

    client -> postier smtpd (content_filter = smtp-amavis:[127.0.0.1]:F)
           -> qmgr -> smtp-amavis (smtp agent) -> a filter on 127.0.0.1:F
           -> the filter reinjects into postier's 127.0.0.1:R smtpd service
              (master.cf: -o content_filter= so the message is not filtered again)
           -> qmgr -> relayhost smtp-sink (captures the message)

The filter here is a minimal real SMTP server (aiosmtpd) that adds one
header and reinjects with smtplib; the sink is Postfix's smtp-sink -d.
Only loopback is used.
"""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from peers import PostierDaemon, SmtpSink, free_port, peers_available, send_message, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not peers_available(), reason="smtp-sink not installed")]


class ReinjectingFilter:
    """handle_DATA: add X-Test-Filtered and hand the message back to postier."""

    def __init__(self, reinject_port: int):
        self.port = reinject_port
        self.seen = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        content = b"X-Test-Filtered: yes\r\n" + envelope.original_content
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.sendmail(envelope.mail_from, envelope.rcpt_tos, content)
        with self.lock:
            self.seen += 1
        return "250 2.0.0 Ok: filtered and reinjected"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_content_filter_reinjection(tmp_path):
    tmp_path.chmod(0o755)
    filter_port, reinject_port = free_port(), free_port()
    handler = ReinjectingFilter(reinject_port)
    controller = Controller(handler, hostname="127.0.0.1", port=filter_port)
    controller.start()
    try:
        with SmtpSink(dump_dir=str(tmp_path / "dump")) as sink:
            extra = (
                "smtp-amavis unix - - n - 2 smtp\n"
                f"127.0.0.1:{reinject_port} inet n - n - - smtpd\n"
                "  -o content_filter=\n"
                "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n")
            main = {"relayhost": f"[127.0.0.1]:{sink.port}",
                    "content_filter": f"smtp-amavis:[127.0.0.1]:{filter_port}",
                    "mydestination": ""}
            with PostierDaemon(main, extra_master=extra) as pd:
                assert wait_for(lambda: _listening(reinject_port), 20)
                reply = send_message(pd.port, "alice@client.test", ["bob@remote.test"],
                                     "Subject: filter me\r\n\r\nbody\r\n")
                assert "queued as" in reply
                assert wait_for(lambda: sink.messages >= 1, 30), pd.log()[-3000:]
                log = pd.log()
        dumps = b"".join(sink.dumps())
    finally:
        controller.stop()
    assert handler.seen == 1
    # filtered exactly once: the reinjection service does not filter again
    assert dumps.count(b"X-Test-Filtered: yes") == 1
    assert b"Subject: filter me" in dumps
    assert f"relay=127.0.0.1[127.0.0.1]:{filter_port}" in log
    assert "status=sent (250 2.0.0 Ok: filtered and reinjected)" in log
