"""The master's pid file: queue_directory/pid/master.pid, locked while it runs.

As in Postfix, the file holds the PID right-aligned in 32 columns and a
newline, and the running master keeps an exclusive lock on it (flock(2) on
its own open file description; children close their copy).  "Is it
running?" is answered by the lock, not by the PID: a stale file left by a
`kill -9` is not locked, so a new master takes it over; a PID that was
reused by an unrelated process does not fool `postier status`.

    pf = PidFile(path); pf.acquire()      # AlreadyRunning when locked
    pf.release()                          # at exit (unlink + unlock)
    running_pid(path) -> int | None       # `postier status`, stop, reload

Parameters read: none (the caller passes the path, see
postier.master.privs.pid_file).
"""

from __future__ import annotations

import errno
import fcntl
import os

from postier.errors import PostierError

WIDTH = 32


class AlreadyRunning(PostierError):
    """Another master holds the lock on the pid file."""

    def __init__(self, pid: int | None):
        self.pid = pid
        super().__init__("the postier mail system is already running"
                         + (f" (PID {pid})" if pid else ""))


def format_pid(pid: int) -> str:
    return f"{pid:>{WIDTH}}\n"


def parse_pid(text: str) -> int | None:
    """The first line's number, or None (empty, garbage, <= 0)."""
    first = text.split("\n", 1)[0].strip()
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if pid > 0 else None


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return parse_pid(f.read(256))
    except OSError:
        return None


def is_locked(path: str) -> bool:
    """Does some process hold the lock on `path`?"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def running_pid(path: str) -> int | None:
    """The PID of the running master, or None when nothing holds the lock."""
    if not is_locked(path):
        return None
    return read_pid(path)


class PidFile:
    """The running master's locked pid file."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def acquire(self, pid: int | None = None) -> None:
        """Lock and write the file; AlreadyRunning when another master has it."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(read_pid(self.path)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, format_pid(pid or os.getpid()).encode("ascii"), 0)
        self.fd = fd

    def close_in_child(self) -> None:
        """In a forked child: drop this process's reference to the file
        (the lock stays with the master's open file description)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def release(self) -> None:
        """At the master's exit: remove the file, then unlock it."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None
