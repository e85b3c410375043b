"""Crash test: nothing answered 250 is ever lost, whatever instant kill -9 hits.

5,000 messages (~2 KB, each with a unique `X-Test-Seq: N` header) are sent
over 10 parallel SMTP sessions by a small Python client that records which
sequence numbers got a 250 (smtp-source's own count is unreliable across
kills) and resends any message whose transaction failed.  Meanwhile `postier
run` (smtpd + queue manager + smtp agent, relayhost = a loopback smtp-sink
with `-d DIR` that keeps every message it receives) is killed with SIGKILL
at random moments 10 times and restarted with the same configuration and
queue directory.  At the end, after a final restart and the queue
draining, every sequence number that was answered 250 must be in the sink;
duplicates are allowed (delivery is at-least-once) and are counted and
printed.  POSTIER_CRASH_SEED=N replays a run; POSTIER_CRASH_MESSAGES=N
changes the count.
"""

from __future__ import annotations

import os
import random
import re
import smtplib
import sys
import threading
import time
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "qmgr"))

from peers import PostierDaemon, SmtpSink, peers_available, wait_for  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not peers_available(), reason="smtp-sink not installed")]

SEQ_RX = re.compile(rb"^X-Test-Seq: (\d+)\r?$", re.M)


def make_message(seq: int, size: int = 2048) -> bytes:
    head = (f"From: crash@sender.test\r\nTo: sink@dest.test\r\nSubject: crash {seq}\r\n"
            f"X-Test-Seq: {seq}\r\n\r\n").encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head))]
    return head + body


class Client:
    """N sessions; each takes the next unacknowledged message and sends it,
    reconnecting (and putting the message back) on any failure."""

    def __init__(self, port: int, total: int, sessions: int = 10):
        self.port = port
        self.todo = list(range(total, 0, -1))
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.failures = 0
        self.stop = False
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(sessions)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _take(self) -> int | None:
        with self.lock:
            return self.todo.pop() if self.todo else None

    def _give_back(self, seq: int) -> None:
        with self.lock:
            self.todo.append(seq)
            self.failures += 1

    def _run(self) -> None:
        conn: smtplib.SMTP | None = None
        while not self.stop:
            seq = self._take()
            if seq is None:
                break
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
                    conn.ehlo("crash.example.test")
                code, _ = conn.mail("crash@sender.test")
                if code != 250:
                    raise smtplib.SMTPException(code)
                code, _ = conn.rcpt("sink@dest.test")
                if code != 250:
                    raise smtplib.SMTPException(code)
                code, _ = conn.data(make_message(seq))
                if code != 250:
                    raise smtplib.SMTPException(code)
                with self.lock:
                    self.acked.add(seq)
            except (OSError, smtplib.SMTPException):
                self._give_back(seq)
                if conn is not None:
                    try:
                        conn.close()
                    except OSError:
                        pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                pass

    def done(self) -> bool:
        with self.lock:
            return not self.todo and not any(t.is_alive() for t in self.threads)

    def join(self, timeout: float) -> None:
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.time()))


def received_seqs(sink: SmtpSink) -> Counter:
    c: Counter = Counter()
    for dump in sink.dumps():
        for m in SEQ_RX.finditer(dump):
            c[int(m.group(1))] += 1
    return c


def test_kill9_loses_no_accepted_message(tmp_path):
    total = int(os.environ.get("POSTIER_CRASH_MESSAGES", "5000"))
    seed = int(os.environ.get("POSTIER_CRASH_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    print(f"\ncrash test: {total} messages, seed {seed}")
    sink = SmtpSink([], dump_dir=str(tmp_path / "sink")).start()
    d = PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}",
                       "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
                       "queue_run_delay": "1s"},
                      root=str(tmp_path / "postier"))
    client = Client(d.port, total)
    kills = 0
    try:
        d.start()
        client.start()
        at_kill = []
        while kills < 10:
            time.sleep(rnd.uniform(0.2, 1.2))
            d.kill()
            kills += 1
            at_kill.append(len(client.acked))
            time.sleep(rnd.uniform(0.0, 0.3))
            d.start()
        assert wait_for(client.done, 300, 0.2), f"client stuck: {len(client.todo)} left"
        client.join(10)
        # a final restart, then the queue must drain
        d.stop()
        d.start()
        assert wait_for(lambda: d.queued() == 0, 120, 0.2), \
            f"queue did not drain: {d.queued()} left"
        assert wait_for(lambda: sum(received_seqs(sink).values()) >= len(client.acked), 60, 0.5)
        time.sleep(1.0)
    finally:
        client.stop = True
        d.stop()
        sink.stop()
    got = received_seqs(sink)
    missing = sorted(client.acked - set(got))
    dups = {k: v for k, v in got.items() if v > 1}
    print(f"kills: {kills}, accepted (250): {len(client.acked)}, delivered distinct: "
          f"{len(got)}, duplicates: {sum(v - 1 for v in dups.values())} "
          f"({len(dups)} messages), client retries: {client.failures}, "
          f"starts: {d.starts}; accepted at each kill: {at_kill}")
    assert len(client.acked) == total
    assert not missing, f"{len(missing)} accepted messages never arrived: {missing[:20]}"
    assert set(got) <= set(range(1, total + 1))
    assert d.queue_files("corrupt") == []
    log = d.log()
    assert "queue manager error" not in log and "Traceback" not in log
    if os.environ.get("POSTIER_KEEP_TEST_ROOT"):
        print(f"kept {tmp_path}")

