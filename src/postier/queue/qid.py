"""Queue IDs: unique, and sortable by arrival time.

An ID is 16 upper-case hex digits: 8 for the seconds since the epoch,
5 for the microseconds, 3 from a per-process counter mixed with the PID.
Uniqueness across processes is finally guaranteed by creating the queue
file with O_EXCL (the writer retries with a new ID on a clash).

Parameters read: none.
"""

from __future__ import annotations

import itertools
import os
import re
import time

_counter = itertools.count(os.getpid() & 0xFFF)
QUEUE_ID_RE = re.compile(r"^[0-9A-F]{16}$")


def new_queue_id(now: float | None = None) -> str:
    t = time.time() if now is None else now
    sec = int(t)
    usec = int((t - sec) * 1_000_000)
    return f"{sec:08X}{usec:05X}{next(_counter) & 0xFFF:03X}"


def is_queue_id(text: str) -> bool:
    return bool(QUEUE_ID_RE.match(text))


def queue_id_time(qid: str) -> float:
    """Arrival time encoded in a queue ID."""
    return int(qid[:8], 16) + int(qid[8:13], 16) / 1_000_000
