"""The queue-file additions the queue manager relies on: appended envelope
updates (the last one wins), per-message DSN logs, start-up recovery."""

from __future__ import annotations

import os

from postier.queue.file import (
    DsnRecord,
    Envelope,
    QueueWriter,
    Recipient,
    append_dsn_log,
    append_envelope,
    read_content,
    read_dsn_log,
    read_envelope,
    recover_queues,
)


def _write(d: str, body: bytes = b"Subject: x\n\nbody\n") -> str:
    w = QueueWriter(d)
    w.write(body)
    w.commit(Envelope(queue_id=w.queue_id, arrival=1.0, sender="a@x.test",
                      recipients=[Recipient(address="b@y.test"), Recipient(address="c@y.test")]))
    return w.path


def test_append_envelope_last_wins_and_content_unchanged(tmp_path):
    path = _write(str(tmp_path))
    env, _ = read_envelope(path)
    env.recipients[0].done = True
    env.warned = True
    append_envelope(path, env)
    env2, _ = read_envelope(path)
    assert [r.done for r in env2.recipients] == [True, False] and env2.warned
    assert read_content(path) == b"Subject: x\n\nbody\n"
    env2.recipients[1].done = True
    append_envelope(path, env2, sync=False)
    assert all(r.done for r in read_envelope(path)[0].recipients)


def test_dsn_log_round_trip_and_torn_tail(tmp_path):
    p = str(tmp_path / "defer")
    assert read_dsn_log(p) == []
    append_dsn_log(p, [DsnRecord(address="b@y.test", status="4.4.1", action="delayed",
                                 reason="connect to y: refused")])
    append_dsn_log(p, [DsnRecord(address="c@y.test", status="4.4.1", reason="again")])
    with open(p, "ab") as f:
        f.write(b"\x40\x00\x00\x00partial")     # a crash in mid-write
    recs = read_dsn_log(p)
    assert [(r.address, r.reason) for r in recs] == [("b@y.test", "connect to y: refused"),
                                                     ("c@y.test", "again")]


def test_recover_queues(tmp_path):
    q = str(tmp_path)
    for d in ("incoming", "active"):
        os.makedirs(os.path.join(q, d))
    a = os.path.basename(_write(os.path.join(q, "active")))
    with open(os.path.join(q, "incoming", ".0000000000000001.tmp"), "wb") as f:
        f.write(b"unfinished")
    moved, removed = recover_queues(q)
    assert moved == [a] and removed == [".0000000000000001.tmp"]
    assert os.listdir(os.path.join(q, "incoming")) == [a]
    assert os.listdir(os.path.join(q, "active")) == []
