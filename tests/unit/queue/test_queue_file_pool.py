"""QueueFilePool (queue files created ahead of time), buffered QueueWriters
and DirSync (one directory fsync shared by concurrent commits)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from postier.queue import file as qfile
from postier.queue.file import (
    MAGIC,
    DirSync,
    Envelope,
    QueueFilePool,
    QueueWriter,
    Recipient,
    read_content,
    read_envelope,
)


def _env(qid: str) -> Envelope:
    return Envelope(queue_id=qid, arrival=1.0, sender="s@example.org",
                    recipients=[Recipient("r@example.test")])


def test_pool_fill_take_commit_close(tmp_path):
    d = str(tmp_path)
    pool = QueueFilePool(d, low=3)
    assert pool.needs_fill()
    pool.fill()
    names = sorted(os.listdir(d))
    assert len(names) == 3
    assert all(n.startswith(".") and n.endswith(".tmp") for n in names)
    assert all(os.path.getsize(os.path.join(d, n)) == 0 for n in names)
    w = pool.take()
    assert w is not None and f".{w.queue_id}.tmp" in names
    w.write(b"Subject: x\n\nbody\n")
    path = w.commit(_env(w.queue_id), DirSync(d))
    assert os.path.basename(path) == w.queue_id
    assert read_content(path) == b"Subject: x\n\nbody\n"
    assert read_envelope(path)[0].content_size == len(b"Subject: x\n\nbody\n")
    pool.close()
    assert os.listdir(d) == [w.queue_id]          # the unused files are gone
    assert pool.take() is None and not pool.needs_fill()
    pool.fill()                                    # closed: creates nothing
    assert os.listdir(d) == [w.queue_id]


def test_pool_passes_over_stale_and_removed_files(tmp_path):
    d = str(tmp_path)
    pool = QueueFilePool(d, low=2, max_age=3600)
    pool.fill()
    first, second = sorted(os.listdir(d))
    for n in (first, second):
        os.unlink(os.path.join(d, n))              # e.g. somebody emptied incoming/
    assert pool.take() is None
    assert pool.needs_fill()
    pool.fill()
    made = os.listdir(d)
    assert len(made) == pool.target and first not in made and second not in made
    pool.max_age = 0.0
    time.sleep(0.01)
    assert pool.take() is None                     # too old: the queue ID encodes the time
    pool.max_age = 3600
    pool.fill()                                    # stale ones removed, new ones made
    left = os.listdir(d)
    assert len(left) == pool.target and not set(left) & set(made)
    assert pool.take() is not None
    pool.close()


def test_pool_target_follows_demand(tmp_path):
    pool = QueueFilePool(str(tmp_path), low=2, high=8)
    pool.fill()
    for _ in range(6):
        w = pool.take()
        if w is not None:
            w.abort()
        pool.fill()
    assert pool.target == 8
    assert len(os.listdir(tmp_path)) == 8
    pool.close()
    assert os.listdir(tmp_path) == []


def test_buffered_writer_writes_at_flush_or_commit(tmp_path):
    w = QueueWriter(str(tmp_path), buffered=True)
    assert os.path.getsize(w.tmp_path) == 0         # even the magic waits
    w.write(b"a" * 10)
    assert os.path.getsize(w.tmp_path) == 0 and w.size == 10
    w.flush()
    assert os.path.getsize(w.tmp_path) == len(MAGIC) + 10
    w.write(b"b" * (QueueWriter.BUFFER_LIMIT + 1))     # over the limit: written at once
    assert os.path.getsize(w.tmp_path) == len(MAGIC) + 10 + QueueWriter.BUFFER_LIMIT + 1
    w.write(b"c\n")
    path = w.commit(_env(w.queue_id))
    assert read_content(path) == b"a" * 10 + b"b" * (QueueWriter.BUFFER_LIMIT + 1) + b"c\n"
    w2 = QueueWriter(str(tmp_path), buffered=True)
    w2.write(b"x")
    w2.abort()
    assert os.listdir(tmp_path) == [w.queue_id]


def test_dir_sync_shares_one_fsync(tmp_path, monkeypatch):
    ds = DirSync(str(tmp_path))
    calls = []
    real = os.fsync

    def slow_fsync(fd):
        calls.append(fd)
        time.sleep(0.2)
        real(fd)
    monkeypatch.setattr(qfile.os, "fsync", slow_fsync)
    n = 8
    start = threading.Barrier(n)
    done = []

    def worker():
        start.wait()
        ds.sync()
        done.append(1)
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(done) == n
    # the first caller syncs alone; the others share the next fsync
    assert 2 <= len(calls) < n
    ds.close()


def test_dir_sync_error_goes_to_its_caller(tmp_path, monkeypatch):
    ds = DirSync(str(tmp_path))
    real = os.fsync
    state = {"fail": True}

    def flaky(fd):
        if state.pop("fail", False):
            raise OSError(5, "Input/output error")
        real(fd)
    monkeypatch.setattr(qfile.os, "fsync", flaky)
    with pytest.raises(OSError):
        ds.sync()
    ds.sync()                                       # the next one succeeds
    ds.close()


def test_publish_renames_complete_file_then_syncs(tmp_path, monkeypatch):
    d = str(tmp_path)
    w = QueueWriter(d, buffered=True)
    w.write(b"Subject: y\n\nbody\n")
    seen = []
    real = os.fsync

    def spy(fd):
        # at each fsync the file already has its queue ID and is complete
        seen.append(sorted(os.listdir(d)))
        assert read_content(os.path.join(d, w.queue_id)) == b"Subject: y\n\nbody\n"
        real(fd)
    monkeypatch.setattr(qfile.os, "fsync", spy)
    path = w.publish(_env(w.queue_id), DirSync(d))
    assert seen == [[w.queue_id], [w.queue_id]]      # the file, then the directory
    assert read_envelope(path)[0].queue_id == w.queue_id


def test_publish_takes_the_file_back_when_fsync_fails(tmp_path, monkeypatch):
    d = str(tmp_path)
    w = QueueWriter(d, buffered=True)
    w.write(b"x\n")

    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(qfile.os, "fsync", broken)
    with pytest.raises(OSError):
        w.publish(_env(w.queue_id))
    assert os.listdir(d) == []
    w.abort()                                          # what smtpd does next: harmless
    assert os.listdir(d) == []


def test_pool_fill_limit(tmp_path):
    pool = QueueFilePool(str(tmp_path), low=4)
    pool.fill(limit=1)
    assert len(os.listdir(tmp_path)) == 1
    pool.fill()
    assert len(os.listdir(tmp_path)) == 4
    pool.close()
