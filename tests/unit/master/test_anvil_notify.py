"""Shared anvil (counts across processes, dead-worker columns, Postfix's
rate window) and the new-mail notices between workers and the queue process."""

from __future__ import annotations

import asyncio
import os

import pytest

from postier.master import anvil as A
from postier.master.anvil import SharedAnvil
from postier.master.notify import Notifier, Receiver, drain, make_pair


def fork_do(fn) -> int:
    """Run fn() in a forked child; its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_counts_add_up_across_processes_and_columns():
    t = SharedAnvil.create(columns=8)
    a = t.view("smtp", 0)
    assert a.connect("192.0.2.1", 60) == (1, 1)

    def child() -> None:
        b = t.view("smtp", 1)
        assert b.connect("192.0.2.1", 60) == (2, 2)
        assert b.connect("192.0.2.1", 60) == (3, 3)
        b.disconnect("192.0.2.1")
    assert fork_do(child) == 0
    # the child's remaining connection is still counted
    assert t.count(SharedAnvil.key("smtp", "192.0.2.1")) == 2
    assert a.connect("192.0.2.1", 60) == (3, 4)
    a.disconnect("192.0.2.1")
    a.disconnect("192.0.2.1")
    assert t.count(SharedAnvil.key("smtp", "192.0.2.1")) == 1


def test_clear_column_forgets_a_dead_workers_connections():
    t = SharedAnvil.create(columns=4)
    t.view("smtp", 2).connect("192.0.2.9", 60)
    t.view("smtp", 2).connect("192.0.2.9", 60)
    t.view("smtp", 3).connect("192.0.2.9", 60)
    t.clear_column(2)
    assert t.count(SharedAnvil.key("smtp", "192.0.2.9")) == 1


def test_services_are_counted_apart():
    t = SharedAnvil.create(columns=2)
    assert t.view("smtp", 0).connect("192.0.2.1", 60)[0] == 1
    assert t.view("submission", 0).connect("192.0.2.1", 60)[0] == 1
    assert t.view("smtp", 1).connect("192.0.2.1", 60)[0] == 2


def test_rate_window_is_postfix_anvil_fixed_window(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(A.time, "monotonic", lambda: now[0])
    t = SharedAnvil.create(columns=2)
    v = t.view("smtp", 0)
    assert [v.connect("192.0.2.1", 60)[1] for _ in range(3)] == [1, 2, 3]
    now[0] += 59.0
    assert v.connect("192.0.2.1", 60)[1] == 4        # same window (started at 1000)
    now[0] += 1.5
    assert v.connect("192.0.2.1", 60)[1] == 1        # a new window
    # rate not asked for: reported as 0 and the window is untouched
    assert v.connect("192.0.2.1", 60, rate=False) == (6, 0)
    assert v.connect("192.0.2.1", 60)[1] == 2


def test_idle_slots_are_reused_and_a_full_bucket_fails_open(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(A.time, "monotonic", lambda: now[0])
    t = SharedAnvil.create(columns=2, nbuckets=1, ways=2)
    v = t.view("smtp", 0)
    assert v.connect("192.0.2.1", 10) == (1, 1)
    assert v.connect("192.0.2.2", 10) == (1, 1)
    # both slots hold live connections: not counted (fail open), twice
    assert v.connect("192.0.2.3", 10) == (1, 1)
    assert v.connect("192.0.2.3", 10) == (1, 1)
    v.disconnect("192.0.2.1")
    # count 0 but still inside its rate window: not reusable yet
    assert v.connect("192.0.2.3", 10) == (1, 1)
    now[0] = 11.0
    assert v.connect("192.0.2.3", 10) == (1, 1)
    assert v.connect("192.0.2.3", 10) == (2, 2)      # it got the freed slot
    assert t.count(SharedAnvil.key("smtp", "192.0.2.1")) == 0


def test_notices_reach_the_receiver_in_batches():
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        rx, tx = make_pair()
        got: list[str] = []
        Receiver(rx, loop, got.append)
        n = Notifier(tx, loop)
        for i in range(5):
            n(f"ID{i}")
        for _ in range(20):
            await asyncio.sleep(0.01)
            if len(got) == 5:
                break
        return got
    assert asyncio.run(main()) == [f"ID{i}" for i in range(5)]


def test_full_socket_keeps_ids_until_writable():
    async def main() -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        rx, tx = make_pair()
        n = Notifier(tx, loop)
        sent = 0
        # fill the receiving queue without reading it (one datagram per loop turn)
        for i in range(5000):
            n(f"Q{i:04d}")
            await asyncio.sleep(0)
            sent += 1
            if n.pending:
                break
        assert n.pending, "the datagram queue never filled"
        stuck = len(n.pending)
        got: list[str] = []
        Receiver(rx, loop, got.append)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(got) == sent:
                break
        return stuck, got
    stuck, got = asyncio.run(main())
    assert stuck >= 1
    assert got == [f"Q{i:04d}" for i in range(len(got))] and len(got) >= 10


def test_drain_drops_stale_notices():
    rx, tx = make_pair()
    tx.send(b"A B")
    tx.send(b"C")
    assert drain(rx) == 2
    assert drain(rx) == 0


@pytest.mark.parametrize("bad", [b"../x", b".tmp"])
def test_receiver_ignores_path_like_ids(bad):
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        rx, tx = make_pair()
        got: list[str] = []
        Receiver(rx, loop, got.append)
        tx.send(bad + b" GOOD")
        await asyncio.sleep(0.05)
        return got
    assert asyncio.run(main()) == ["GOOD"]
