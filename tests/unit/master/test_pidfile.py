"""The master's pid file: Postfix's format, the lock decides "running"."""

from __future__ import annotations

import os
import signal

import pytest

from postier.master.pidfile import (
    AlreadyRunning,
    PidFile,
    format_pid,
    is_locked,
    parse_pid,
    read_pid,
    running_pid,
)


def test_format_is_postfix_master_pid():
    # Postfix 3.7 writes "%*lu\n" with 32 columns (read from a real
    # instance's queue/pid/master.pid)
    assert format_pid(13305) == " " * 27 + "13305\n"
    assert parse_pid(format_pid(13305)) == 13305


@pytest.mark.parametrize("text", ["", "\n", "abc\n", "-5\n", "0\n", "12x\n"])
def test_parse_rejects_garbage(text):
    assert parse_pid(text) is None


def test_acquire_writes_and_locks_release_removes(tmp_path):
    path = str(tmp_path / "pid" / "master.pid")
    pf = PidFile(path)
    pf.acquire()
    assert read_pid(path) == os.getpid()
    assert is_locked(path)
    assert running_pid(path) == os.getpid()
    pf.release()
    assert not os.path.exists(path)
    assert running_pid(path) is None


def test_second_master_is_refused_with_the_pid(tmp_path):
    path = str(tmp_path / "master.pid")
    first = PidFile(path)
    first.acquire()
    with pytest.raises(AlreadyRunning) as e:
        PidFile(path).acquire()
    assert e.value.pid == os.getpid()
    assert "already running" in str(e.value)
    first.release()


def test_stale_file_without_lock_is_not_running_and_is_taken_over(tmp_path):
    path = str(tmp_path / "master.pid")
    with open(path, "w") as f:
        f.write(format_pid(os.getpid()))          # a live PID, but nobody holds the lock
    assert read_pid(path) == os.getpid()
    assert running_pid(path) is None
    pf = PidFile(path)
    pf.acquire(pid=4242)
    assert running_pid(path) == 4242
    pf.release()


def test_lock_stays_with_the_master_when_a_child_closes_its_copy(tmp_path):
    path = str(tmp_path / "master.pid")
    pf = PidFile(path)
    pf.acquire()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:     # child: close the inherited descriptor, report, exit
        pf.close_in_child()
        os.write(w, b"1" if is_locked(path) else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    assert is_locked(path)
    pf.release()


def test_lock_dies_with_its_holder(tmp_path):
    """A master killed by SIGKILL leaves a stale file that is not locked."""
    path = str(tmp_path / "master.pid")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        PidFile(path).acquire()
        os.write(w, b"x")
        signal.pause()
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    assert running_pid(path) == pid
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert os.path.exists(path)
    assert running_pid(path) is None
