"""A size-bounded LRU cache whose entries expire after their own TTL.

    cache = TtlCache(max_entries=10000)
    cache.put(("example.test", "MX"), answer, ttl=300)
    cache.get(("example.test", "MX"))      # the answer, or None once expired / evicted

Used by postier.dns.Resolver for positive and negative DNS answers.  The
clock is injectable (`clock=`, default time.monotonic) so that expiry can be
tested without sleeping.  Not thread-safe (one event loop per process).

Parameters read: none (the resolver passes dns_cache_size).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    """LRU by access; an entry also disappears when its TTL has run out."""

    __slots__ = ("max_entries", "clock", "_data", "hits", "misses", "expired", "evicted")

    def __init__(self, max_entries: int = 10000, *, clock: Callable[[], float] = time.monotonic):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self.clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.expired = 0
        self.evicted = 0

    def get(self, key: Hashable) -> Any:
        """The live value for `key` (refreshing its LRU position), or None."""
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return None
        expires, value = item
        if expires <= self.clock():
            del self._data[key]
            self.expired += 1
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def ttl_left(self, key: Hashable) -> float | None:
        """Seconds until `key` expires (None: not cached); no LRU update."""
        item = self._data.get(key)
        if item is None:
            return None
        left = item[0] - self.clock()
        return left if left > 0 else None

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        """Store `value` for `ttl` seconds; ttl <= 0 or a zero-size cache stores nothing."""
        if ttl <= 0 or self.max_entries == 0:
            self._data.pop(key, None)
            return
        self._data[key] = (self.clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
            self.evicted += 1

    def discard(self, key: Hashable) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return self.ttl_left(key) is not None
