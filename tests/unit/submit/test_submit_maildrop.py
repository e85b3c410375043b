"""maildrop/: the root-only fallback of sendmail, and the pickup scan that empties it."""

from __future__ import annotations

import io
import os
import sys

import pytest
from _submit_helpers import PickupThread, make_config, queue_files

from postier.cli import sendmail as sm
from postier.queue.file import read_content, read_envelope


@pytest.fixture
def config(tmp_path, monkeypatch):
    etc = make_config(str(tmp_path))
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    return etc, str(tmp_path / "queue")


def sendmail(monkeypatch, argv, stdin: bytes) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return sm.main(argv)


def test_fallback_writes_maildrop_and_pickup_takes_it(config, monkeypatch, capsys):
    etc, qdir = config
    rc = sendmail(monkeypatch, ["sendmail", "-F", "Root Admin", "-N", "success",
                                "a@example.test"], b"Subject: dropped\r\n\r\nhi\r\n")
    assert rc == 0
    assert capsys.readouterr().err == (
        "sendmail: warning: unable to look up public/pickup: No such file or directory\n")
    (name,) = queue_files(qdir, "maildrop")
    path = os.path.join(qdir, "maildrop", name)
    assert os.stat(path).st_mode & 0o777 == 0o600
    env, _ = read_envelope(path)
    assert env.attrs == {"full_name": "Root Admin"}
    assert [(r.address, r.dsn_notify) for r in env.recipients] == [("a@example.test", "SUCCESS")]
    assert read_content(path) == b"Subject: dropped\n\nhi\n"

    t = PickupThread(etc).start()            # scans maildrop/ at start
    try:
        t.scan()
        (qid,) = t.queued
    finally:
        t.stop()
    assert queue_files(qdir, "maildrop") == []
    qpath = os.path.join(qdir, "incoming", qid)
    env, _ = read_envelope(qpath)
    from postier.pickup.users import login_name
    me = login_name(os.getuid())
    assert env.sender == f"{me}@example.test"
    assert [(r.address, r.dsn_notify, r.dsn_orcpt) for r in env.recipients] == [
        ("a@example.test", "SUCCESS", "rfc822;a@example.test")]
    text = read_content(qpath).decode()
    assert f"(Postfix, from userid {os.getuid()})" in text
    assert f"\nFrom: Root Admin <{me}@example.test>\n" in text


def test_corrupt_maildrop_file_moves_to_corrupt(config):
    etc, qdir = config
    os.makedirs(os.path.join(qdir, "maildrop"), mode=0o700)
    bad = os.path.join(qdir, "maildrop", "0123456789ABCDEF")
    with open(bad, "wb") as f:
        f.write(b"not a queue file at all")
    os.chmod(bad, 0o600)
    t = PickupThread(etc).start()
    t.scan()
    t.stop()
    assert queue_files(qdir, "maildrop") == []
    assert queue_files(qdir, "corrupt") == ["0123456789ABCDEF"]
    assert queue_files(qdir) == []


@pytest.mark.parametrize("problem", ["hardlink", "group-writable", "symlink"])
def test_unsafe_maildrop_files_are_skipped(config, tmp_path, problem, monkeypatch, capsys):
    etc, qdir = config
    # a good message first, so that there is something to move
    assert sendmail(monkeypatch, ["sendmail", "a@example.test"], b"x\n") == 0
    (name,) = queue_files(qdir, "maildrop")
    path = os.path.join(qdir, "maildrop", name)
    if problem == "hardlink":
        os.link(path, str(tmp_path / "elsewhere"))
    elif problem == "group-writable":
        os.chmod(path, 0o620)
    else:
        os.rename(path, str(tmp_path / "target"))
        os.symlink(str(tmp_path / "target"), path)
    from postier import log
    log.setup("postier", progname="postier", stderr=True)
    capsys.readouterr()
    t = PickupThread(etc).start()
    t.scan()
    t.stop()
    assert queue_files(qdir, "maildrop") == [name]       # left alone
    assert t.queued == [] and queue_files(qdir) == []
    err = capsys.readouterr().err
    assert f"warning: maildrop/{name}: " in err and "-- skipped" in err


def test_fallback_refused_for_other_users(config, monkeypatch, capsys):
    """A user who does not own the queue cannot use maildrop (simulated)."""
    monkeypatch.setattr(sm.Sendmail, "queue_owner", lambda self: False)
    rc = sendmail(monkeypatch, ["sendmail", "a@example.test"], b"x\n")
    assert rc == 75
    err = capsys.readouterr().err
    assert "): unable to submit mail: the mail system is not running" in err
    assert queue_files(config[1], "maildrop") == []
