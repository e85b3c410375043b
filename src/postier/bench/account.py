"""End-to-end accounting: which accepted messages arrived, which twice, how fast.

    acc = account(records, arrivals)     # generator records, sink arrivals
    acc["lost"], acc["duplicates"]       # counts; acc["lost_ids"][:20] for a look

A message counts as *accepted* when the generator got a 250 to the end of
DATA.  It is *delivered* when the sink recorded its `X-Bench-Id`, *lost*
when it was accepted and never arrived (call this only after the MTA's
queue has drained), *duplicated* once for every arrival past the first.
Arrivals of ids the generator never had accepted are *unexpected* (a
message refused with 4xx/5xx that still got through would be one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of already sorted values; None when empty."""
    n = len(sorted_values)
    if not n:
        return None
    k = max(1, math.ceil(p / 100.0 * n))
    return sorted_values[min(n, k) - 1]


def account(records: Iterable, arrivals: Iterable[tuple[float, str, int]]) -> dict:
    """Loss and duplicate counts.  `records`: objects or dicts with `id` and
    `outcome` (and `done`); `arrivals`: (time, id, size) from the sink."""
    accepted: dict[str, float] = {}
    for r in records:
        rid, outcome, done = _fields(r)
        if outcome == "accepted":
            accepted[rid] = done
    seen: Counter = Counter()
    first: dict[str, float] = {}
    for t, bid, _size in arrivals:
        seen[bid] += 1
        if bid not in first or t < first[bid]:
            first[bid] = t
    lost = sorted(i for i in accepted if i not in seen)
    dups = {i: n - 1 for i, n in seen.items() if n > 1}
    unexpected = sorted(i for i in seen if i not in accepted)
    delays = sorted(first[i] - accepted[i] for i in accepted if i in first)
    return {
        "accepted": len(accepted),
        "delivered": sum(1 for i in accepted if i in seen),
        "lost": len(lost), "lost_ids": lost[:100],
        "duplicates": sum(dups.values()), "duplicated_messages": len(dups),
        "duplicate_ids": sorted(dups)[:100],
        "unexpected": len(unexpected), "unexpected_ids": unexpected[:100],
        "delivery_delay_p50_ms": _ms(percentile(delays, 50)),
        "delivery_delay_p99_ms": _ms(percentile(delays, 99)),
    }


def _fields(r) -> tuple[str, str, float]:
    if isinstance(r, dict):
        return r["id"], r["outcome"], float(r.get("done") or 0.0)
    return r.id, r.outcome, float(r.done or 0.0)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(1000.0 * v, 3)
