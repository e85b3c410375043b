"""CPU pinning and quiet-box waiting shared by the load benchmarks.

On a box with two or more CPUs the server under test (postier, or Postfix's
master and everything it forks) runs on one CPU and the load generators
(smtp-source, smtp-sink, the benchmark's own client threads) on another, so
that the two systems compared get the same share of the machine
(../shared/PEERS.md: without it the numbers swing by more than the
differences measured).  POSTIER_BENCH_PIN=0 disables pinning;
POSTIER_BENCH_QUIET_WAIT=S makes wait_quiet() wait up to S seconds for the
(shared) box to be at least 70 % idle before a run.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
PIN = (os.environ.get("POSTIER_BENCH_PIN", "1") != "0" and hasattr(os, "sched_setaffinity")
       and len(CPUS) >= 2)
CLIENT_CPU, SERVER_CPU = (CPUS[0], CPUS[1]) if PIN else (None, None)


def describe() -> str:
    return (f"pinned: server cpu {SERVER_CPU}, client cpu {CLIENT_CPU}" if PIN
            else "unpinned")


def tree_pids(pid: int) -> list[int]:
    from postfix_instance import descendants
    return [pid] + descendants(pid)


def pin_tree(pid: int, cpu: int | None) -> None:
    """Pin a process, its threads and its descendants (children forked later
    inherit the affinity).  cpu None: nothing."""
    if cpu is None:
        return
    for p in tree_pids(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, {cpu})
            except OSError:
                pass


def taskset(argv: list[str], cpu: int | None) -> list[str]:
    """argv run on `cpu` (unchanged when cpu is None)."""
    return argv if cpu is None else ["taskset", "-c", str(cpu)] + argv


@contextlib.contextmanager
def pinned_self(cpu: int | None) -> Iterator[None]:
    """Run this process (its threads started inside too) on `cpu`, then restore."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def box_idle_pct(seconds: float = 0.5) -> float:
    """Idle share of the whole box (the box is shared: context for the numbers)."""
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    a = snap()
    time.sleep(seconds)
    b = snap()
    return round(100.0 * (b[1] - a[1]) / max(1, b[0] - a[0]), 1)


def wait_quiet(max_wait: float) -> float:
    """Wait up to max_wait seconds for the box to be >= 70 % idle; the idle
    share last seen."""
    idle = box_idle_pct()
    deadline = time.monotonic() + max_wait
    while idle < 70 and time.monotonic() < deadline:
        idle = box_idle_pct(1.0)
    return idle
