"""Process tree helpers (Linux /proc): descendants of a PID.

Used by `postier stop` when the master does not stop in time (every process
of its tree gets SIGKILL, by PID) and by the tests.

Parameters read: none.
"""

from __future__ import annotations

import os


def parent_map() -> dict[int, int]:
    """PID -> parent PID of every process visible in /proc."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        rest = data[data.rfind(b")") + 2:].split()
        try:
            out[int(name)] = int(rest[1])
        except (IndexError, ValueError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first, then theirs)."""
    parents = parent_map()
    children: dict[int, list[int]] = {}
    for p, pp in parents.items():
        children.setdefault(pp, []).append(p)
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_uid(pid: int) -> int | None:
    """The real uid of a process (/proc/PID/status Uid:), None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
