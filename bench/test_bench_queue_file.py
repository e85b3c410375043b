"""Queue-file write: content + envelope, fsync, rename, directory fsync -- the cost of a 250.

postier.queue.file.QueueWriter is what stands between the end of DATA and
the 250 reply: create `.ID.tmp`, write the content (2 KB and 50 KB
messages, written in 64 KiB pieces as smtpd streams them), append the
msgpack envelope and trailer, fsync, rename to the queue ID, fsync the
directory.  Measured against two baselines on the same file system:

  postier     QueueWriter(...).write(...); commit(envelope)
  nosync      the same bytes, open/write/rename without any fsync (the
              floor: what the durability costs)
  postfix-ish write + fsync + rename + directory fsync with plain os calls
              (what any durable spool, Postfix's cleanup included, must do)

Also `append_envelope` (the queue manager's in-place update after a
delivery attempt).  Messages per second go into extra_info and are
printed (-s).  POSTIER_BENCH_SMALL=1 (the CI smoke run of `pytest bench
--benchmark-disable`) only checks that files are written and read back.
No timing assertions.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from postier.queue.file import (  # noqa: E402
    Envelope,
    QueueWriter,
    Recipient,
    append_envelope,
    read_content,
    read_envelope,
)

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")
SIZES = {"2KB": 2 * 1024, "50KB": 50 * 1024}
CHUNK = 64 * 1024


def content(size: int) -> bytes:
    head = b"Received: from client.example.net\nFrom: a@example.net\nTo: b@example.test\n" \
           b"Subject: queue file bench\n\n"
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop\n"
    return head + (line * (size // len(line) + 1))[:max(0, size - len(head))]


def envelope() -> Envelope:
    return Envelope(queue_id="", arrival=time.time(), sender="a@example.net",
                    recipients=[Recipient(address="b@example.test")],
                    client_address="192.0.2.1", client_name="client.example.net",
                    helo_name="client.example.net", protocol_name="ESMTP")


def postier_write(directory: str, data: bytes) -> str:
    w = QueueWriter(directory)
    for i in range(0, len(data), CHUNK):
        w.write(data[i:i + CHUNK])
    env = envelope()
    env.queue_id = w.queue_id
    return w.commit(env)


def plain_write(directory: str, data: bytes, n: int, sync: bool) -> str:
    tmp = os.path.join(directory, f".plain{n}.tmp")
    final = os.path.join(directory, f"plain{n}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(0, len(data), CHUNK):
            os.write(fd, data[i:i + CHUNK])
        os.write(fd, b"\0" * 64)            # an envelope-sized record
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    if sync:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return final


def _report(benchmark, label: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None):
        return
    mean = stats.stats.mean
    if mean:
        benchmark.extra_info["msgs_per_s"] = 1.0 / mean
        print(f"\n{label}: {1.0 / mean:,.0f} messages/s ({1000 * mean:.3f} ms each)")


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_queue_file_postier(benchmark, tmp_path, size):
    data = content(SIZES[size])
    d = tmp_path / "incoming"
    d.mkdir()
    paths: list[str] = []

    def run() -> None:
        paths.append(postier_write(str(d), data))
    if SMALL:
        benchmark.pedantic(run, rounds=3, iterations=1)
    else:
        benchmark.pedantic(run, rounds=300, iterations=1, warmup_rounds=10)
    _report(benchmark, f"postier QueueWriter {size}")
    env, _ = read_envelope(paths[-1])
    assert env.content_size == len(data)
    assert read_content(paths[-1]) == data
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


@pytest.mark.parametrize("sync", [False, True], ids=["nosync", "postfix-ish"])
@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_queue_file_baseline(benchmark, tmp_path, size, sync):
    data = content(SIZES[size])
    counter = iter(range(10**9))
    out: list[str] = []

    def run() -> None:
        out.append(plain_write(str(tmp_path), data, next(counter), sync))
    rounds = 3 if SMALL else 300
    benchmark.pedantic(run, rounds=rounds, iterations=1)
    _report(benchmark, f"{'fsync' if sync else 'no fsync'} baseline {size}")
    assert os.path.getsize(out[-1]) == len(data) + 64


def test_queue_file_append_envelope(benchmark, tmp_path):
    d = tmp_path / "active"
    d.mkdir()
    path = postier_write(str(d), content(SIZES["2KB"]))
    env, _ = read_envelope(path)

    def run() -> None:
        env.recipients[0].done = True
        append_envelope(path, env)
    benchmark.pedantic(run, rounds=3 if SMALL else 200, iterations=1)
    _report(benchmark, "append_envelope (fsync'd update)")
    env2, _ = read_envelope(path)
    assert env2.queue_id == env.queue_id and env2.recipients[0].done
    assert read_content(path) == content(SIZES["2KB"])
