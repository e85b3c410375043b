"""Writing mail to UNIX mailboxes, plain files and Maildirs, as Postfix does.

Two halves, one module (it imports nothing but the standard library at load
time, because the second half runs as the unprivileged child of
postier.delivery.runas: `python -I -S mailbox.py`, see child_main()):

1. Formatting, in the delivery agent (mail_copy.c):

       data = mail_copy(content, COPY_MBOX, sender=..., orig_rcpt=..., delivered=...)

   `COPY_FROM` prepends the `From sender  Sat Nov 28 06:03:31 2026` line
   (MAILER-DAEMON for the null sender, local time, asctime format),
   `COPY_RETURN_PATH` a `Return-Path: <sender>` header, `COPY_ORIG_RCPT` an
   `X-Original-To:` header (only when the original recipient is known),
   `COPY_DELIVERED` a `Delivered-To:` header (addresses quoted as
   quote_822_local does); `COPY_QUOTE` turns body and header lines that start
   with `From ` into `>From `, `COPY_DOT` doubles a leading dot, `COPY_BLANK`
   appends an empty line, `eol` replaces each LF.  A last line without LF is
   completed.  `COPY_MBOX` is what mailbox and file delivery use.

2. Writing, in the child, with the recipient's privileges:

   * `write_mbox(job, data)`: Postfix's mbox_open() + mail_copy():
     safe_open() (an existing file must not be a symlink unless root owns
     the link and its directory, which nobody else may write; it must have
     one hard link, must not be a directory, and must be
     the same inode after lstat(); a new file is created with O_EXCL and
     optionally chowned), then the dotlock `PATH.lock` (O_CREAT|O_EXCL,
     retried $deliver_lock_attempts times $deliver_lock_delay apart, a lock
     older than $stale_lock_time is removed), then kernel locks (fcntl and/or
     flock, non-blocking, retried the same way), then the hard-link count
     again; then the caller's checks (not a regular file, not owned by the
     recipient, executable file), then the append at the end of the file with
     fsync, truncating back to the old size when the write fails (for example
     EFBIG from the mailbox_size_limit file size limit).
   * `write_maildir(job, data)`: `tmp/TIME.PPID.HOST` created with O_EXCL
     (missing directories made 0700), written and fsynced, linked to
     `new/TIME.VdevIinoMusec.HOST`, tmp name removed.

   Both return {"ok": bool, "dsn": "x.y.z", "reason": text, "warnings": [...],
   "errno": n}.  The reasons are Postfix's texts: `cannot open file: %m`,
   `file is a symbolic link`, `file has N hard links`, `file status changed
   unexpectedly`, `cannot create file exclusively: %m`, `unable to create
   lock file PATH.lock: %m`, `unable to lock for exclusive access: %m`,
   `target file status changed unexpectedly`, `destination PATH is not a
   regular file`, `destination PATH is not owned by recipient`, `file is
   executable`, `error writing message: %m`, `create maildir file PATH: %m`.
   DSN codes follow mbox_dsn(): EAGAIN/ESTALE 4.2.0, ENOSPC 4.3.0,
   EDQUOT/EFBIG 5.2.2, else the caller's default.

Parameters read: none (the agents pass mailbox_delivery_lock,
deliver_lock_attempts, deliver_lock_delay, stale_lock_time,
strict_mailbox_ownership and the size limits in the job).
"""

from __future__ import annotations

import errno as _errno
import fcntl
import json
import os
import signal
import stat
import sys
import time

COPY_QUOTE = 1 << 0
COPY_TOFILE = 1 << 1
COPY_FROM = 1 << 2
COPY_BLANK = 1 << 3
COPY_DELIVERED = 1 << 4
COPY_RETURN_PATH = 1 << 5
COPY_DOT = 1 << 6
COPY_ORIG_RCPT = 1 << 7
COPY_MBOX = (COPY_FROM | COPY_QUOTE | COPY_TOFILE | COPY_DELIVERED | COPY_RETURN_PATH
             | COPY_BLANK | COPY_ORIG_RCPT)

MAIL_ADDR_MAIL_DAEMON = "MAILER-DAEMON"

LOCK_FLOCK = "flock"
LOCK_FCNTL = "fcntl"
LOCK_DOT = "dotlock"
LOCK_STYLES = (LOCK_FLOCK, LOCK_FCNTL, LOCK_DOT)


# --------------------------------------------------------------- formatting

def quote_local(address: str) -> str:
    """quote_822_local(): quote the local part when it is not a dot-string."""
    from postier.tok822 import quote_822_local
    return quote_822_local(address)


def from_line(sender: str, when: float | None = None, eol: bytes = b"\n") -> bytes:
    """The `From sender  Www Mmm dd hh:mm:ss yyyy` line."""
    who = quote_local(sender) if sender else MAIL_ADDR_MAIL_DAEMON
    stamp = time.asctime(time.localtime(time.time() if when is None else when))[:24]
    return f"From {who}  {stamp}".encode("utf-8", "surrogateescape") + eol


def prepended_headers(flags: int, *, sender: str = "", orig_rcpt: str = "",
                      delivered: str = "", eol: bytes = b"\n",
                      when: float | None = None) -> bytes:
    """What mail_copy() writes before the message content."""
    out: list[bytes] = []

    def enc(text: str) -> bytes:
        return text.encode("utf-8", "surrogateescape") + eol

    if flags & COPY_FROM:
        out.append(from_line(sender, when, eol))
    if flags & COPY_RETURN_PATH:
        out.append(enc(f"Return-Path: <{quote_local(sender) if sender else ''}>"))
    if flags & COPY_ORIG_RCPT and orig_rcpt:
        out.append(enc(f"X-Original-To: {quote_local(orig_rcpt)}"))
    if flags & COPY_DELIVERED:
        out.append(enc(f"Delivered-To: {quote_local(delivered)}"))
    return b"".join(out)


def copy_body(content: bytes, flags: int, eol: bytes = b"\n") -> bytes:
    """The message content as mail_copy() writes it: `>From ` quoting, dot
    doubling, LF -> eol, a completed last line, an optional blank line."""
    if not content:
        body = b""
    else:
        quote = flags & COPY_QUOTE
        dot = flags & COPY_DOT
        if not quote and not dot and eol == b"\n":
            body = content if content.endswith(b"\n") else content + b"\n"
        else:
            lines = content.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            out = []
            for line in lines:
                if quote and line.startswith(b"From "):
                    line = b">" + line
                if dot and line.startswith(b"."):
                    line = b"." + line
                out.append(line)
            body = eol.join(out) + eol
    if flags & COPY_BLANK:
        body += eol
    return body


def mail_copy(content: bytes, flags: int, *, sender: str = "", orig_rcpt: str = "",
              delivered: str = "", eol: bytes = b"\n", when: float | None = None) -> bytes:
    """Everything mail_copy() would write for `content` (a queue file's
    message content: header and body, LF line ends)."""
    return (prepended_headers(flags, sender=sender, orig_rcpt=orig_rcpt,
                              delivered=delivered, eol=eol, when=when)
            + copy_body(content, flags, eol))


def lock_styles(value: list[str], param: str = "mailbox_delivery_lock") -> list[str]:
    """mbox_lock_mask(): the lock styles of a mailbox_delivery_lock value.
    Raises ValueError for an unknown style or an empty list."""
    out: list[str] = []
    for item in value:
        key = item.strip().lower()
        if not key:
            continue
        if key not in LOCK_STYLES:
            raise ValueError(f'{param}: unknown mailbox lock style "{item}"')
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError(f"parameter {param} specifies no applicable mailbox locking method")
    return out


def mbox_dsn(err: int, default: str) -> str:
    """mbox_dsn(): the enhanced status code for a mailbox errno."""
    if err in (_errno.EAGAIN, _errno.ESTALE):
        return "4.2.0"
    if err == _errno.ENOSPC:
        return "4.3.0"
    if err in (_errno.EDQUOT, _errno.EFBIG):
        return "5.2.2"
    return default


def strerror(err: int) -> str:
    return os.strerror(err) if err else "Success"


# --------------------------------------------------------------- writing (child side)

class _Fail(Exception):
    def __init__(self, err: int, reason: str, dsn: str | None = None):
        super().__init__(reason)
        self.err = err
        self.reason = reason
        self.dsn = dsn


def _result(ok: bool, dsn: str = "", reason: str = "", warnings: list[str] | None = None,
            err: int = 0, **extra) -> dict:
    out = {"ok": ok, "dsn": dsn, "reason": reason, "warnings": warnings or [], "errno": err}
    out.update(extra)
    return out


def safe_open(path: str, flags: int, mode: int, chown: tuple[int, int] | None,
              warnings: list[str]) -> tuple[int, os.stat_result]:
    """safe_open() with O_CREAT and without O_EXCL: open an existing file
    carefully or create a new one exclusively.  Raises _Fail."""
    try:
        return _safe_open_exist(path, flags)
    except _Fail as e:
        if e.err != _errno.ENOENT:
            raise
    try:
        return _safe_open_create(path, flags, mode, chown, warnings)
    except _Fail as e:
        if e.err != _errno.EEXIST:
            raise
    return _safe_open_exist(path, flags)


def _safe_open_exist(path: str, flags: int) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, flags & ~(os.O_CREAT | os.O_EXCL))
    except OSError as e:
        raise _Fail(e.errno, f"cannot open file: {strerror(e.errno)}") from None
    try:
        fst = os.fstat(fd)
        if fst.st_nlink != 1:
            raise _Fail(_errno.EPERM, f"file has {fst.st_nlink} hard links")
        if stat.S_ISDIR(fst.st_mode):
            raise _Fail(_errno.EISDIR, "file is a directory")
        try:
            lst = os.lstat(path)
        except OSError as e:
            raise _Fail(_errno.EPERM,
                        f"file status changed unexpectedly: {strerror(e.errno)}") from None
        if stat.S_ISLNK(lst.st_mode):
            # only a root-owned symlink in a root-owned directory that no
            # one else can write (Solaris /dev/...) is trusted
            if lst.st_uid == 0:
                try:
                    pst = os.stat(os.path.dirname(path) or ".")
                    if pst.st_uid == 0 and not pst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                        return fd, fst
                except OSError:
                    pass
            raise _Fail(_errno.EPERM, "file is a symbolic link")
        if (fst.st_dev != lst.st_dev or fst.st_ino != lst.st_ino
                or fst.st_nlink != lst.st_nlink or fst.st_mode != lst.st_mode):
            raise _Fail(_errno.EPERM, "file status changed unexpectedly")
        return fd, fst
    except BaseException:
        os.close(fd)
        raise


def _safe_open_create(path: str, flags: int, mode: int, chown: tuple[int, int] | None,
                      warnings: list[str]) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        raise _Fail(e.errno, f"cannot create file exclusively: {strerror(e.errno)}") from None
    if chown is not None and (chown[0] != -1 or chown[1] != -1):
        try:
            os.fchown(fd, chown[0], chown[1])
        except OSError as e:
            warnings.append(f"{path}: cannot change file ownership: {strerror(e.errno)}")
    return fd, os.fstat(fd)


# Postfix sleeps $deliver_lock_delay between $deliver_lock_attempts tries.
# postier keeps that time budget but polls more often, so that concurrent
# deliveries to one mailbox do not wait a whole second for a lock held for
# a few milliseconds.
POLL = 0.05


def _deadline(attempts: int, delay: float) -> float:
    return time.monotonic() + max(attempts - 1, 0) * delay


def dot_lockfile(path: str, attempts: int, delay: float, stale: float) -> None:
    """Create PATH.lock exclusively (dot_lockfile.c).  Raises _Fail with
    `unable to create lock file PATH.lock: %m`."""
    lock = path + ".lock"
    deadline = _deadline(attempts, delay)
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_EXCL | os.O_CREAT, 0)
            os.close(fd)
            return
        except OSError as e:
            err = e.errno
        if err != _errno.EEXIST or time.monotonic() >= deadline:
            break
        try:
            st = os.stat(lock)
            if time.time() > st.st_ctime + stale:
                try:
                    os.unlink(lock)
                    continue
                except OSError as e2:
                    if e2.errno != _errno.ENOENT:
                        err = e2.errno
                        break
        except OSError:
            pass
        time.sleep(min(delay, POLL))
    raise _Fail(err, f"unable to create lock file {lock}: {strerror(err)}")


def dot_unlockfile(path: str) -> None:
    try:
        os.unlink(path + ".lock")
    except OSError:
        pass


def deliver_flock(fd: int, style: str, attempts: int, delay: float) -> None:
    """An exclusive non-blocking kernel lock, retried (deliver_flock.c).
    Raises _Fail with `unable to lock for exclusive access: %m`."""
    deadline = _deadline(attempts, delay)
    while True:
        try:
            if style == LOCK_FCNTL:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            err = e.errno
            if err == _errno.EACCES:        # F_SETLK says EACCES or EAGAIN for a held lock
                err = _errno.EAGAIN
        if err != _errno.EAGAIN or time.monotonic() >= deadline:
            break
        time.sleep(min(delay, POLL))
    raise _Fail(err, f"unable to lock for exclusive access: {strerror(err)}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_mbox(job: dict, data: bytes) -> dict:
    """mbox_open() + the caller's checks + mail_copy() (see the module
    docstring).  job: path, mode, chown ([uid, gid] or None), locks (list of
    styles), dotlock_may_fail, attempts, delay, stale, def_dsn, check
    ("mailbox" | "file"), owner_uid (strict ownership check, or None),
    tofile (truncate + fsync; regular files only)."""
    path = job["path"]
    def_dsn = job.get("def_dsn", "5.2.0")
    locks = job.get("locks", [LOCK_FCNTL, LOCK_DOT])
    attempts = int(job.get("attempts", 20))
    delay = float(job.get("delay", 1))
    stale = float(job.get("stale", 500))
    warnings: list[str] = []
    chown = tuple(job["chown"]) if job.get("chown") else None
    flags = os.O_APPEND | os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd, st = safe_open(path, flags, int(job.get("mode", 0o600)), chown,  # type: ignore[arg-type]
                           warnings)
    except _Fail as e:
        return _result(False, mbox_dsn(e.err, def_dsn), e.reason, warnings, e.err)
    dotlocked = False
    try:
        regular = stat.S_ISREG(st.st_mode)
        if regular and LOCK_DOT in locks:
            try:
                dot_lockfile(path, attempts, delay, stale)
                dotlocked = True
            except _Fail as e:
                if e.err == _errno.EEXIST:
                    return _result(False, mbox_dsn(_errno.EAGAIN, def_dsn), e.reason,
                                   warnings, e.err)
                if job.get("dotlock_may_fail"):
                    warnings.append(e.reason)
                else:
                    return _result(False, mbox_dsn(e.err, def_dsn), e.reason, warnings, e.err)
        if regular:
            try:
                for style in (LOCK_FLOCK, LOCK_FCNTL):
                    if style in locks:
                        deliver_flock(fd, style, attempts, delay)
            except _Fail as e:
                return _result(False, mbox_dsn(e.err, def_dsn), e.reason, warnings, e.err)
            st = os.fstat(fd)
            if st.st_nlink != 1:
                warnings.append(f"{path}: file status changed unexpectedly")
                return _result(False, mbox_dsn(_errno.EAGAIN, def_dsn),
                               "target file status changed unexpectedly", warnings,
                               _errno.EAGAIN)
        check = job.get("check", "mailbox")
        if check == "mailbox":
            if not regular:
                return _result(False, "5.2.0", f"destination {path} is not a regular file",
                               warnings)
            owner = job.get("owner_uid")
            if owner is not None and st.st_uid != owner:
                warnings.append('specify "strict_mailbox_ownership = no" to ignore '
                                "mailbox ownership mismatch")
                return _result(False, "4.2.0", f"destination {path} is not owned by recipient",
                               warnings)
        elif check == "file":
            if regular and st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
                return _result(False, "5.7.1", "file is executable", warnings)
        tofile = regular and job.get("tofile", True)
        if regular:
            os.set_blocking(fd, True)
        end = os.lseek(fd, 0, os.SEEK_END) if regular else 0
        try:
            _write_all(fd, data)
            if tofile:
                os.fsync(fd)
        except OSError as e:
            if tofile:
                try:
                    os.ftruncate(fd, end)
                except OSError:
                    pass
            return _result(False, mbox_dsn(e.errno, "5.3.0"),
                           f"error writing message: {strerror(e.errno)}", warnings, e.errno)
        return _result(True, "2.0.0", "", warnings, end=end)
    finally:
        if dotlocked:
            dot_unlockfile(path)
        os.close(fd)


def _make_dirs(path: str, mode: int) -> None:
    os.makedirs(path.rstrip("/") or "/", mode=mode, exist_ok=True)


def write_maildir(job: dict, data: bytes) -> dict:
    """Maildir delivery (maildir.c).  job: path (ending in /), hostname,
    def_dsn.  The result has "file" (the new/ name) on success."""
    path = job["path"]
    if not path.endswith("/"):
        path += "/"
    host = job.get("hostname") or os.uname().nodename
    host = host.replace("/", "\\057").replace(":", "\\072")
    def_dsn = job.get("def_dsn", "5.2.0")
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    tmpdir, newdir, curdir = path + "tmp/", path + "new/", path + "cur/"
    tmpfile = f"{tmpdir}{sec}.P{os.getpid()}.{host}"
    warnings: list[str] = []

    def open_tmp() -> int:
        return os.open(tmpfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    try:
        try:
            fd = open_tmp()
        except FileNotFoundError:
            _make_dirs(tmpdir, 0o700)
            fd = open_tmp()
    except OSError as e:
        return _result(False, mbox_dsn(e.errno, def_dsn),
                       f"create maildir file {tmpfile}: {strerror(e.errno)}", warnings, e.errno)
    try:
        st = os.fstat(fd)
        newfile = f"{newdir}{sec}.V{st.st_dev:x}I{st.st_ino:x}M{usec}.{host}"
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as e:
            return _result(False, mbox_dsn(e.errno, "5.3.0"),
                           f"error writing message: {strerror(e.errno)}", warnings, e.errno)
        finally:
            os.close(fd)
        try:
            try:
                os.link(tmpfile, newfile)
            except FileNotFoundError:
                try:
                    _make_dirs(curdir, 0o700)
                except OSError:
                    pass
                _make_dirs(newdir, 0o700)
                os.link(tmpfile, newfile)
        except OSError as e:
            return _result(False, mbox_dsn(e.errno, def_dsn),
                           f"create maildir file {newfile}: {strerror(e.errno)}", warnings, e.errno)
        try:
            dfd = os.open(newdir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return _result(True, "2.0.0", "", warnings, file=newfile)
    finally:
        try:
            os.unlink(tmpfile)
        except OSError as e:
            warnings.append(f"remove {tmpfile}: {strerror(e.errno)}")


def read_file(job: dict, data: bytes) -> dict:
    """lstat()/stat() and read a .forward or :include: file with the
    caller's privileges.  job: path, follow (stat instead of lstat), limit.
    Result: exists, errno, mode, uid, regular, text (when regular and
    readable), open_errno."""
    del data
    path = job["path"]
    try:
        st = os.stat(path) if job.get("follow") else os.lstat(path)
    except OSError as e:
        return _result(False, "", strerror(e.errno), err=e.errno, exists=False)
    out = _result(True, exists=True, mode=st.st_mode, uid=st.st_uid,
                  regular=stat.S_ISREG(st.st_mode))
    if not stat.S_ISREG(st.st_mode) or job.get("stat_only"):
        return out
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK
                     | (0 if job.get("follow") else getattr(os, "O_NOFOLLOW", 0)))
    except OSError as e:
        out.update(open_errno=e.errno, open_error=strerror(e.errno))
        return out
    try:
        chunks = []
        limit = int(job.get("limit", 1 << 24))
        total = 0
        while total < limit:
            b = os.read(fd, min(65536, limit - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
    finally:
        os.close(fd)
    out["text"] = b"".join(chunks).decode("utf-8", "surrogateescape")
    return out


CHILD_OPS = {"mbox": write_mbox, "maildir": write_maildir, "read": read_file}


def drop_privileges(uid: int, gid: int, groups: list[int]) -> None:
    """set_ugid(): initgroups + setgid + setuid, irrevocably; never to root."""
    if uid == 0 or gid == 0:
        raise SystemExit("runas: refusing to run as root")
    os.setgroups(groups or [gid])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise SystemExit("runas: privilege drop failed")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise SystemExit("runas: privileges could be regained")


def child_main() -> None:
    """The unprivileged child of postier.delivery.runas.run_job(): one JSON
    job line on stdin (with "creds": [uid, gid, groups] or null), the file
    size limit and the privilege drop, then the data, the operation, and one
    JSON result line on stdout."""
    import resource
    stdin = sys.stdin.buffer
    job = json.loads(stdin.readline())
    limit = int(job.get("size_limit") or 0)
    if limit > 0:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    os.umask(0o077)
    creds = job.get("creds")
    if creds is not None:
        drop_privileges(int(creds[0]), int(creds[1]), [int(g) for g in creds[2]])
    data = stdin.read()
    op = CHILD_OPS.get(job.get("op", ""))
    if op is None:
        res = _result(False, "4.3.0", f"unknown operation {job.get('op')!r}")
    else:
        res = op(job, data)
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    child_main()
