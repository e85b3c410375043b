"""The sendmail command talking to a running pickup service (in-process)."""

from __future__ import annotations

import io
import os
import socket
import sys

import pytest
from _submit_helpers import PickupThread, make_config, queue_files

from postier.cli import sendmail as sm
from postier.pickup import protocol as P
from postier.queue.file import read_content, read_envelope


@pytest.fixture
def running(tmp_path, monkeypatch):
    etc = make_config(str(tmp_path), "canonical_maps = inline:{ {b@example.test=canon@example.test} }\n")
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    monkeypatch.delenv("NAME", raising=False)
    t = PickupThread(etc).start()
    yield t, str(tmp_path / "queue")
    t.stop()


def sendmail(monkeypatch, argv, stdin: bytes = b"") -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return sm.main(argv)


def test_submission_over_the_socket(running, monkeypatch, capsys):
    t, qdir = running
    rc = sendmail(monkeypatch, ["sendmail", "-t", "-oi", "-F", "A B", "-v"],
                  b"From x\nTo: b\nSubject: s\r\n\r\n.\r\nend\r\n")
    assert rc == 0
    (qid,) = t.queued
    # the service runs in this process: its log lines show on stderr too
    assert f"sendmail: {qid}: queued" in capsys.readouterr().err.splitlines()
    path = os.path.join(qdir, "incoming", qid)
    env, _ = read_envelope(path)
    assert [(r.address, r.orig, r.segment) for r in env.recipients] == [
        ("canon@example.test", "b", "extracted")]
    text = read_content(path)
    assert b"\nTo: canon@example.test\nSubject: s\n" in text      # header rewriting
    assert text.endswith(b"\n\n.\nend\n")
    assert queue_files(qdir, "maildrop") == []


def test_refused_content_is_reported(tmp_path, monkeypatch, capsys):
    etc = make_config(str(tmp_path), "message_size_limit = 1000\n")
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    t = PickupThread(etc).start()
    try:
        rc = sendmail(monkeypatch, ["sendmail", "a@example.test"], b"x" * 2000 + b"\n")
    finally:
        t.stop()
    assert rc == 75
    assert capsys.readouterr().err.endswith(f"({os.getuid()}): message file too big\n")
    assert queue_files(str(tmp_path / "queue")) == []


def test_verify_report(running, monkeypatch, capsys):
    rc = sendmail(monkeypatch, ["sendmail", "-bv", "b", "x@remote.test"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("<canon@example.test> (expanded from <b>): deliverable via "
                      "local:mx.example.test")       # local_transport = local:$myhostname
    assert out[1] == "<x@remote.test>: deliverable via smtp:remote.test"
    assert out[2].startswith("(postier resolves the addresses without delivering")
    assert queue_files(running[1]) == []          # nothing was queued


def test_mailq_and_flush_through_the_daemon_for_other_users(running, monkeypatch, capsys):
    monkeypatch.setattr(sm.Sendmail, "queue_owner", lambda self: False)
    assert sendmail(monkeypatch, ["mailq"]) == 0
    assert capsys.readouterr().out == "Mail queue is empty\n"
    assert sendmail(monkeypatch, ["sendmail", "a@example.test"], b"Subject: s\n\nb\n") == 0
    assert sendmail(monkeypatch, ["/usr/bin/mailq"]) == 0
    out = capsys.readouterr().out
    assert "a@example.test" in out and out.endswith(" in 1 Request.\n")
    # no queue manager in this test: the flush fails like postqueue -f
    assert sendmail(monkeypatch, ["sendmail", "-q"]) == 69
    assert capsys.readouterr().err == (
        "postqueue: fatal: Cannot flush mail queue - mail system is down\n")


def test_smtp_mode_on_the_socket(running):
    _, qdir = running
    conn = P.Connection.open(qdir, timeout=10)
    conn.send_request(P.Request(mode="smtp"))
    assert conn.read_answer().status == P.OK
    s = conn.sock
    s.sendall(b"HELO me\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@remote.test>\r\nDATA\r\n"
              b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)            # the end of the script: answers still come
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.close()
    lines = data.decode().split("\r\n")
    assert lines[0] == "220 mx.example.test ESMTP Postfix"
    assert lines[1:5] == ["250 mx.example.test", "250 2.1.0 Ok", "250 2.1.5 Ok",
                          "354 End data with <CR><LF>.<CR><LF>"]
    assert lines[5].startswith("250 2.0.0 Ok: queued as ") and lines[6] == "221 2.0.0 Bye"
    (qid,) = queue_files(qdir)
    text = read_content(os.path.join(qdir, "incoming", qid)).decode()
    assert text.startswith(f"Received: by mx.example.test (Postfix, from userid {os.getuid()})\n"
                           f"\tid {qid}; ")
    assert f"Received: from me (localhost [127.0.0.1])\n\tby mx.example.test (Postfix) " \
           f"with SMTP id {qid}" in text


def test_smtp_refused_for_unauthorized_user(tmp_path, monkeypatch, capsys):
    etc = make_config(str(tmp_path), "authorized_submit_users = nosuchuser\n")
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    t = PickupThread(etc).start()
    try:
        rc = sendmail(monkeypatch, ["sendmail", "-bs"], b"QUIT\r\n")
    finally:
        t.stop()
    from postier.pickup.users import login_name
    assert rc == 75
    assert capsys.readouterr().err == (f"sendmail: fatal: User {login_name(os.getuid())}"
                                       f"({os.getuid()}) is not allowed to submit mail\n")


def test_foreign_socket_owner_is_refused(running, monkeypatch, capsys):
    _, qdir = running
    monkeypatch.setattr(P.Connection, "server_uid", lambda self: 4242)
    assert sendmail(monkeypatch, ["sendmail", "a@example.test"], b"x\n") == 75
    assert "public/pickup is served by uid 4242, not by the mail system" in (
        capsys.readouterr().err)
    assert queue_files(qdir) == []


def test_content_filter_is_recorded(tmp_path, monkeypatch):
    """pickup(8) adds $content_filter to local submissions (sendmail and -bs)."""
    etc = make_config(str(tmp_path), "content_filter = amavis:[127.0.0.1]:10024\n")
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    qdir = str(tmp_path / "queue")
    t = PickupThread(etc).start()
    try:
        assert sendmail(monkeypatch, ["sendmail", "a@example.test"], b"Subject: s\n\nb\n") == 0
        conn = P.Connection.open(qdir, timeout=10)
        conn.send_request(P.Request(mode="smtp"))
        assert conn.read_answer().status == P.OK
        conn.sock.sendall(b"HELO me\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@remote.test>\r\n"
                          b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        while conn.sock.recv(65536):
            pass
        conn.close()
    finally:
        t.stop()
    files = queue_files(qdir)
    assert len(files) == 2
    for qid in files:
        env, _ = read_envelope(os.path.join(qdir, "incoming", qid))
        assert env.content_filter == "amavis:[127.0.0.1]:10024"


def test_content_rejected_by_header_checks_is_reported_at_once(tmp_path, monkeypatch, capsys):
    """Postfix would accept and bounce later; cleanup runs before sendmail exits here."""
    etc = make_config(str(tmp_path), f"header_checks = regexp:{tmp_path / 'hc'}\n")
    (tmp_path / "hc").write_text("/^Subject: spam/ REJECT no spam here\n")
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    t = PickupThread(etc).start()
    try:
        rc = sendmail(monkeypatch, ["sendmail", "a@example.test"], b"Subject: spam\n\nb\n")
        ok = sendmail(monkeypatch, ["sendmail", "a@example.test"], b"Subject: fine\n\nb\n")
    finally:
        t.stop()
    assert rc == 75 and ok == 0
    err = capsys.readouterr().err
    assert f"({os.getuid()}): 5.7.1 no spam here\n" in err
    assert len(queue_files(str(tmp_path / "queue"))) == 1
