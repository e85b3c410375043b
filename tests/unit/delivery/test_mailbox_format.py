"""postier.delivery.mailbox: mail_copy() formatting and the file operations
(run in-process here, without a privilege change)."""

from __future__ import annotations

import errno
import os
import re
import time

import pytest

from postier.delivery import mailbox as m

CONTENT = b"Received: from x\nSubject: hi\n\nFrom here\n.dot\nlast line"


def test_mbox_copy_matches_postfix_layout():
    when = time.mktime((2026, 11, 8, 6, 3, 31, 0, 0, -1))
    out = m.mail_copy(CONTENT, m.COPY_MBOX, sender="a b@example.test",
                      orig_rcpt="u@example.test", delivered="U@Example.test", when=when)
    lines = out.decode().split("\n")
    assert lines[0] == 'From "a b"@example.test  Sun Nov  8 06:03:31 2026'
    assert lines[1:4] == ['Return-Path: <"a b"@example.test>', "X-Original-To: u@example.test",
                          "Delivered-To: U@Example.test"]
    assert lines[4:] == ["Received: from x", "Subject: hi", "", ">From here", ".dot",
                         "last line", "", ""]


def test_null_sender_no_orig_and_flags():
    out = m.mail_copy(b"a\n", m.COPY_FROM | m.COPY_RETURN_PATH | m.COPY_ORIG_RCPT,
                      sender="", orig_rcpt="")
    assert re.match(rb"^From MAILER-DAEMON  \w{3} \w{3} [ \d]\d [\d:]{8} \d{4}\nReturn-Path: <>\na\n$",
                    out)
    assert m.mail_copy(b".x\nFrom y\n", m.COPY_DOT | m.COPY_BLANK, eol=b"\r\n") == \
        b"..x\r\nFrom y\r\n\r\n"
    assert m.mail_copy(b"", m.COPY_BLANK) == b"\n"
    assert m.copy_body(b"no newline", 0) == b"no newline\n"


def test_lock_styles_and_dsn():
    assert m.lock_styles(["fcntl", "DOTLOCK", "fcntl"]) == ["fcntl", "dotlock"]
    with pytest.raises(ValueError, match="no applicable"):
        m.lock_styles([])
    with pytest.raises(ValueError, match='unknown mailbox lock style "lockf"'):
        m.lock_styles(["lockf"])
    assert m.mbox_dsn(errno.EAGAIN, "5.2.0") == "4.2.0"
    assert m.mbox_dsn(errno.ENOSPC, "5.2.0") == "4.3.0"
    assert m.mbox_dsn(errno.EFBIG, "4.2.0") == "5.2.2"
    assert m.mbox_dsn(errno.EACCES, "5.2.0") == "5.2.0"


def job(path, **kw):
    base = {"path": str(path), "locks": ["fcntl", "dotlock"], "attempts": 2, "delay": 0.1,
            "stale": 500, "def_dsn": "5.2.0", "check": "mailbox", "owner_uid": os.getuid()}
    base.update(kw)
    return base


def test_write_mbox_creates_appends_and_unlocks(tmp_path):
    p = tmp_path / "user"
    r1 = m.write_mbox(job(p), b"one\n")
    r2 = m.write_mbox(job(p), b"two\n")
    assert r1["ok"] and r2["ok"] and r2["end"] == 4
    assert p.read_bytes() == b"one\ntwo\n"
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "user.lock").exists()


def test_write_mbox_refuses_symlink_hardlink_directory(tmp_path):
    target = tmp_path / "target"
    target.write_text("secret\n")
    spool = tmp_path / "spool"             # group-writable, like /var/mail
    spool.mkdir()
    spool.chmod(0o2775)
    (spool / "link").symlink_to(target)
    r = m.write_mbox(job(spool / "link"), b"x\n")
    assert (r["ok"], r["dsn"], r["reason"]) == (False, "5.2.0", "file is a symbolic link")
    assert target.read_text() == "secret\n"
    os.link(target, spool / "hard")
    r = m.write_mbox(job(spool / "hard"), b"x\n")
    assert (r["ok"], r["reason"]) == (False, "file has 2 hard links")
    (spool / "dir").mkdir()
    r = m.write_mbox(job(spool / "dir"), b"x\n")
    assert (r["ok"], r["reason"]) == (False, "cannot open file: Is a directory")
    assert target.read_text() == "secret\n"


def test_root_symlink_in_root_only_directory_is_trusted(tmp_path):
    """safe_open(): Solaris-style /dev symlinks owned by root, in a
    directory only root can write, are followed."""
    if os.getuid() != 0:
        pytest.skip("needs a root-owned symlink")
    safe = tmp_path / "safe"
    safe.mkdir()
    safe.chmod(0o755)
    target = tmp_path / "target"
    target.write_text("")
    (safe / "link").symlink_to(target)
    r = m.write_mbox(job(safe / "link", check="file", owner_uid=None), b"x\n")
    assert r["ok"] and target.read_text() == "x\n"


def test_write_mbox_ownership_and_file_checks(tmp_path):
    p = tmp_path / "box"
    p.write_text("")
    r = m.write_mbox(job(p, owner_uid=os.getuid() + 1), b"x\n")
    assert (r["ok"], r["dsn"], r["reason"]) == (False, "4.2.0",
                                                f"destination {p} is not owned by recipient")
    assert r["warnings"] == ['specify "strict_mailbox_ownership = no" to ignore mailbox '
                             "ownership mismatch"]
    p.chmod(0o700)
    r = m.write_mbox(job(p, check="file", owner_uid=None), b"x\n")
    assert (r["ok"], r["dsn"], r["reason"]) == (False, "5.7.1", "file is executable")
    r = m.write_mbox(job("/dev/null", check="mailbox"), b"x\n")
    assert (r["ok"], r["reason"]) == (False, "destination /dev/null is not a regular file")
    r = m.write_mbox(job("/dev/null", check="file"), b"x\n")
    assert r["ok"]
    assert p.read_text() == ""


def test_dotlock_fresh_and_stale(tmp_path):
    p = tmp_path / "box"
    lock = tmp_path / "box.lock"
    lock.write_text("")
    r = m.write_mbox(job(p, attempts=2, delay=0.1), b"x\n")
    assert (r["ok"], r["dsn"], r["reason"]) == (
        False, "4.2.0", f"unable to create lock file {lock}: File exists")
    assert lock.exists()
    r = m.write_mbox(job(p, stale=0), b"x\n")          # older than 0 s: removed
    assert r["ok"] and p.read_bytes() == b"x\n"
    assert not lock.exists()


def test_dotlock_may_fail_for_files(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    f = d / "file"
    f.write_text("")
    if os.getuid() == 0:
        pytest.skip("root can always create the lock file")
    d.chmod(0o555)
    try:
        r = m.write_mbox(job(f, check="file", dotlock_may_fail=True, owner_uid=None), b"x\n")
        assert r["ok"] and r["warnings"][0].startswith(f"unable to create lock file {f}.lock")
        r = m.write_mbox(job(f), b"x\n")
        assert (r["ok"], r["reason"]) == (
            False, f"unable to create lock file {f}.lock: Permission denied")
    finally:
        d.chmod(0o755)


def test_fcntl_lock_held_elsewhere(tmp_path):
    import fcntl
    p = tmp_path / "box"
    p.write_text("")
    fd = os.open(p, os.O_RDWR)
    pid = os.fork()
    if pid == 0:                       # a separate process holds the lock
        fcntl.lockf(fd, fcntl.LOCK_EX)
        time.sleep(3)
        os._exit(0)
    try:
        time.sleep(0.5)
        r = m.write_mbox(job(p, locks=["fcntl"], attempts=2, delay=0.2), b"x\n")
        assert (r["ok"], r["dsn"], r["reason"]) == (
            False, "4.2.0", "unable to lock for exclusive access: Resource temporarily unavailable")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    assert p.read_text() == ""


def test_maildir_names_and_errors(tmp_path):
    r = m.write_maildir({"path": str(tmp_path / "Maildir/"), "hostname": "host.example"},
                        b"mail\n")
    assert r["ok"]
    assert re.match(r".*/Maildir/new/\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\.host\.example$", r["file"])
    assert sorted(os.listdir(tmp_path / "Maildir")) == ["cur", "new", "tmp"]
    assert os.listdir(tmp_path / "Maildir" / "tmp") == []
    assert open(r["file"], "rb").read() == b"mail\n"
    (tmp_path / "plain").write_text("")
    r = m.write_maildir({"path": str(tmp_path / "plain/"), "hostname": "h", "def_dsn": "4.2.0"},
                        b"x")
    assert not r["ok"] and r["dsn"] == "4.2.0"
    assert re.match(rf"^create maildir file {tmp_path}/plain/tmp/\d+\.P\d+\.h: Not a directory$",
                    r["reason"])


def test_read_file(tmp_path):
    f = tmp_path / ".forward"
    f.write_text("user\n")
    r = m.read_file({"path": str(f)}, b"")
    assert r["exists"] and r["regular"] and r["text"] == "user\n"
    (tmp_path / "ln").symlink_to(f)
    r = m.read_file({"path": str(tmp_path / "ln")}, b"")
    assert r["exists"] and not r["regular"] and "text" not in r
    r = m.read_file({"path": str(tmp_path / "none")}, b"")
    assert (r["exists"], r["errno"]) == (False, errno.ENOENT)
