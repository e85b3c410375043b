"""A logger failure hung an smtpd session silently: a signature mismatch in
MailLog.emit made the `connect from` line raise, the client got no greeting
and waited for its own timeout, and nothing was logged (the exception path
logged through the same broken logger, and the connection was closed only
after the `disconnect from` line).  With the log broken, the timeout and
the end of every session (QUIT included) left the connection open the same
way; and an exception in a command handler (a restriction, end of DATA) got
no reply at all.

Now any unexpected exception ends the session as Postfix's smtpd ends one it
cannot go on with: `421 4.3.0 <myhostname> Server local error` after the
replies already due, then the connection is closed; nothing not committed is
acknowledged; the error goes to the mail log, or to standard error
(log.last_resort) when the mail log itself fails.  A failure after the
commit (the new-mail notice to the queue manager) no longer costs a
committed message its 250 (the client would have sent it again).

A real SmtpdServer on a loopback port (its own uvloop event loop in a
thread), real SMTP clients (a raw socket, smtplib)."""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import threading
import time

import pytest
import uvloop

from postier import log
from postier.smtpd.server import PermitAll, SmtpdServer, SmtpdSettings

HOST = "mx.example.org"
LOCAL_ERROR = f"421 4.3.0 {HOST} Server local error\r\n".encode()
WAIT = 30.0      # generous: a hang fails the test with socket.timeout


class Engine(PermitAll):
    """Permits everything, except where a test plants a failure."""

    fail: dict[str, BaseException] = {}

    def __init__(self) -> None:
        self.fail = {}

    async def rcpt(self, st, **kw):
        if "rcpt" in self.fail:
            raise self.fail["rcpt"]

    async def end_of_data(self, st, **kw):
        if "end_of_data" in self.fail:
            raise self.fail["end_of_data"]


class Server:
    def __init__(self, tmp_path, timeout: float = 60.0) -> None:
        self.queue = str(tmp_path / "queue")
        self.incoming = os.path.join(self.queue, "incoming")
        self.engine = Engine()
        settings = SmtpdSettings(myhostname=HOST, banner=f"{HOST} ESMTP", peername_lookup=False,
                                 queue_directory=self.queue, timeout=timeout)
        self.loop = uvloop.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = SmtpdServer(settings, self.engine, loop=self.loop)
            self.loop.run_until_complete(self.server.listen("127.0.0.1", 0))
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(WAIT)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()

    def committed(self) -> list[str]:
        """Queue files in incoming/ (the pool's `.ID.tmp` files are not)."""
        return [n for n in os.listdir(self.incoming) if not n.startswith(".")]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)


def until_eof(sock: socket.socket) -> bytes:
    """Everything the server still sends before it closes the connection
    (socket.timeout if it never does)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def reply(sock: socket.socket) -> bytes:
    """One reply (send one command at a time)."""
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


@pytest.fixture
def maillog(tmp_path):
    path = tmp_path / "maillog"
    log.setup("smtpd", maillog_file=str(path))
    yield path
    log.setup("postier")


@pytest.fixture
def server(tmp_path, maillog):
    s = Server(tmp_path)
    yield s
    s.stop()


def signature_mismatch(self, *args, **kw):
    raise TypeError("emit() takes 3 positional arguments but 4 were given")


@pytest.mark.parametrize("breakage", ["emit_raises", "maillog_disk_full"])
def test_log_failure_at_connect_answers_421_and_closes(server, monkeypatch, capfd, breakage):
    if breakage == "emit_raises":
        monkeypatch.setattr(log.MailLog, "emit", signature_mismatch)
    else:
        log.setup("smtpd", maillog_file="/dev/full")     # every write: ENOSPC
    with server.connect() as c:
        assert until_eof(c) == LOCAL_ERROR
    err = capfd.readouterr().err
    assert "postier/smtpd[" in err and "internal error after CONNECT" in err
    assert ("TypeError: emit() takes" if breakage == "emit_raises" else "No space left") in err
    assert "disconnect from unknown[127.0.0.1]" in err      # that line went nowhere else


def test_smtplib_sees_421_at_connect(server, monkeypatch, capfd):
    monkeypatch.setattr(log.MailLog, "emit", signature_mismatch)
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP("127.0.0.1", server.port, timeout=WAIT)
    assert e.value.smtp_code == 421
    assert e.value.smtp_error == f"4.3.0 {HOST} Server local error".encode()
    err = ""
    deadline = time.monotonic() + WAIT       # the server thread may still be writing
    while "disconnect from" not in err and time.monotonic() < deadline:
        time.sleep(0.01)
        err += capfd.readouterr().err
    assert "internal error after CONNECT" in err and "disconnect from" in err


@pytest.mark.parametrize("exc", [RuntimeError("restriction bug"),
                                 # not the client's connection: a policy server's
                                 ConnectionRefusedError(111, "Connection refused")],
                         ids=["bug", "policy_server_down"])
def test_handler_failure_answers_421_after_the_replies_due(server, maillog, exc):
    server.engine.fail["rcpt"] = exc
    with server.connect() as c:
        reply(c)
        c.sendall(b"EHLO client.example.org\r\n")
        assert reply(c).startswith(b"250-" + HOST.encode())
        c.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        assert until_eof(c) == b"250 2.1.0 Ok\r\n" + LOCAL_ERROR
    text = maillog.read_text()
    assert (f"warning: unknown[127.0.0.1]: internal error after RCPT: "
            f"{type(exc).__name__}: {exc} at ") in text
    assert f"NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 421 4.3.0 {HOST} " \
           "Server local error" in text
    assert "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 commands=2" in text
    assert server.committed() == []


def test_end_of_data_failure_with_broken_log_is_not_acknowledged(server, monkeypatch, capfd):
    server.engine.fail["end_of_data"] = KeyError("no such scanner")
    with server.connect() as c:
        reply(c)
        for cmd in (b"EHLO client.example.org", b"MAIL FROM:<a@example.org>",
                    b"RCPT TO:<b@example.org>"):
            c.sendall(cmd + b"\r\n")
            assert reply(c).startswith(b"250")
        monkeypatch.setattr(log.MailLog, "emit", signature_mismatch)   # the handler's log too
        c.sendall(b"DATA\r\n")
        assert reply(c).startswith(b"354 ")
        c.sendall(b"Subject: test\r\n\r\nbody\r\n.\r\n")
        assert until_eof(c) == LOCAL_ERROR
    err = capfd.readouterr().err
    assert "internal error after END-OF-MESSAGE: KeyError: 'no such scanner'" in err
    assert server.committed() == []
    # the server goes on: the next session's message is queued
    monkeypatch.undo()
    server.engine.fail.clear()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=WAIT) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: again\r\n\r\nbody\r\n")
    assert len(server.committed()) == 1


def test_log_failure_at_disconnect_still_closes(server, monkeypatch, capfd):
    with server.connect() as c:
        reply(c)
        monkeypatch.setattr(log.MailLog, "emit", signature_mismatch)
        c.sendall(b"QUIT\r\n")
        assert until_eof(c) == b"221 2.0.0 Bye\r\n"
    assert "disconnect from unknown[127.0.0.1] quit=1 commands=1" in capfd.readouterr().err


def test_log_failure_at_timeout_still_closes(tmp_path, maillog, monkeypatch, capfd):
    s = Server(tmp_path, timeout=0.3)
    try:
        with s.connect() as c:
            reply(c)
            monkeypatch.setattr(log.MailLog, "emit", signature_mismatch)
            assert until_eof(c) == f"421 4.4.2 {HOST} Error: timeout exceeded\r\n".encode()
        assert "timeout after CONNECT from unknown[127.0.0.1]" in capfd.readouterr().err
    finally:
        monkeypatch.undo()
        s.stop()


def test_failed_new_mail_notice_keeps_the_250_of_a_committed_message(server, maillog):
    def notifier_down(qid: str) -> None:
        raise OSError(111, "Connection refused")
    server.server.on_queued = notifier_down
    with smtplib.SMTP("127.0.0.1", server.port, timeout=WAIT) as client:
        client.ehlo("client.example.org")
        assert client.mail("a@example.org")[0] == 250
        assert client.rcpt("b@example.org")[0] == 250
        code, text = client.data(b"Subject: x\r\n\r\nbody\r\n")
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    qid = text.split()[-1].decode()
    assert server.committed() == [qid]        # on disk: the queue manager's scan finds it
    assert (f"warning: {qid}: new mail notification failed: ConnectionRefusedError: "
            "[Errno 111] Connection refused") in maillog.read_text()
