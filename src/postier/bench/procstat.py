"""CPU time, memory and queue size of a server's process tree, sampled over time.

    s = Sampler(root_pid, queue_dir, interval=0.5, extra_pids=lambda: [...])
    s.start(); ...; s.stop()
    s.samples          # [{"t", "cpu_s", "rss_kb", "pss_kb", "procs", "queue"}, ...]
    s.peak("pss_kb")   # the largest sample

CPU seconds of a tree = sum over its live processes of utime + stime +
cutime + cstime (/proc/PID/stat): a child that exited and was reaped by a
parent in the tree is still counted, through the parent's cutime/cstime.
RSS and PSS come from /proc/PID/smaps_rollup (PSS shares each shared page
among the processes that map it, so summing PSS over a tree counts shared
libraries and memory-mapped tables once).  The queue size is the number of
files under the queue directories that hold messages (maildrop, incoming,
active, deferred, hold; Postfix's hashed subdirectories included).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """root and every descendant PID."""
    kids = children_map() if kids is None else kids
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            x = f.read().rsplit(b")", 1)[1].split()
        return (int(x[11]) + int(x[12]) + int(x[13]) + int(x[14])) / HZ
    except (OSError, ValueError, IndexError):
        return 0.0


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; (0, 0) when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


def queue_size(queue_dir: str | None) -> int:
    if not queue_dir:
        return 0
    n = 0
    for q in QUEUES:
        for _dirpath, _dirs, files in os.walk(os.path.join(queue_dir, q)):
            n += sum(1 for f in files if not f.startswith("."))
    return n


def tree_snapshot(root: int, extra: list[int] = ()) -> dict:
    kids = children_map()
    pids = tree(root, kids)
    for e in extra:
        pids += tree(e, kids)
    cpu = rss = pss = 0.0
    for p in pids:
        cpu += cpu_seconds(p)
        r, s = memory_kb(p)
        rss += r
        pss += s
    return {"cpu_s": cpu, "rss_kb": int(rss), "pss_kb": int(pss), "procs": len(pids),
            "pids": pids}


class Sampler:
    """Samples a process tree (and its queue) in a thread every `interval` s."""

    def __init__(self, root: int, queue_dir: str | None = None, *, interval: float = 0.5,
                 extra_pids: Callable[[], list[int]] | None = None,
                 on_pids: Callable[[list[int]], None] | None = None):
        self.root = root
        self.queue_dir = queue_dir
        self.interval = interval
        self.extra_pids = extra_pids
        self.on_pids = on_pids
        self.samples: list[dict] = []
        self.marks: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._t: threading.Thread | None = None
        self._lock = threading.Lock()

    def sample(self) -> dict:
        snap = tree_snapshot(self.root, self.extra_pids() if self.extra_pids else [])
        if self.on_pids is not None:
            self.on_pids(snap["pids"])
        s = {"t": time.time(), "cpu_s": snap["cpu_s"], "rss_kb": snap["rss_kb"],
             "pss_kb": snap["pss_kb"], "procs": snap["procs"],
             "queue": queue_size(self.queue_dir)}
        with self._lock:
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> Sampler:
        self._t = threading.Thread(target=self._run, daemon=True, name="bench-sampler")
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._t is not None:
            self._t.join()
            self._t = None

    def between(self, t0: float, t1: float) -> list[dict]:
        with self._lock:
            return [s for s in self.samples if t0 <= s["t"] <= t1]

    def peak(self, key: str, t0: float | None = None, t1: float | None = None) -> float:
        with self._lock:
            vals = [s[key] for s in self.samples
                    if (t0 is None or s["t"] >= t0) and (t1 is None or s["t"] <= t1)]
        return max(vals) if vals else 0

    def last(self) -> dict | None:
        with self._lock:
            return self.samples[-1] if self.samples else None
