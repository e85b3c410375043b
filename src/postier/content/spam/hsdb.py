"""Hyperscan databases for one rule area, compiled off the hot path and cached.

    db = AreaDatabase([Entry([expr], flags, exact=True), ...],
                      cache_dir="/var/lib/postier/spamrules", label="body")
    db.scan(b"subject text")    # set of entry indexes Hyperscan reported
    db.exact / db.prefilter / db.always / db.never

An entry is one rule: one or more Hyperscan expressions under the rule's id
(a huge alternation is shared out over several expressions whose union is
the rule) and whether a report is final (`exact`) or must be confirmed.

postier.maps.patterns.PatternSet finds the expressions Hyperscan refuses by
bisecting a failing compile; on SpamAssassin's rule set that costs minutes
(a few huge expressions are "too large" and every failed attempt recompiles
hundreds of others), and compiling long expressions together is much
slower than compiling them apart.  So here the short expressions go into
one database compiled optimistically, the long ones are spread over a few
databases, compiled in parallel worker processes after trying each one
alone: exactly, else with HS_FLAG_PREFILTER (a report is then confirmed by
RE2/re/libpcre2), else the rule becomes an "always candidate" confirmed on
every subject.  The per-expression classes and the finished databases are
cached on disk (hs_serialize_database), keyed by a hash of the expressions,
flags and the Hyperscan version, so a warm start only reads files.

Parameters read: none (the cache directory comes from
spam_rules_cache_directory through postier.content.spam.scanner).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import hyperscan as hs

BASE_FLAGS = hs.HS_FLAG_ALLOWEMPTY   # no SINGLEMATCH: Vectorscan 5.4 misses matches with it
_FORMAT = b"postier-spam-hs-6"
PREFILTER_ONLY = 8500   # expressions this long are never tried exactly (slow, and they fail)
LONG_EXPR = 1000        # expressions at least this long go to the "long" groups


@dataclass
class Entry:
    exprs: list[bytes]          # empty: no Hyperscan form, always a candidate
    flags: int = 0              # extra Hyperscan flags (PREFILTER, CASELESS, ...)
    exact: bool = True
    part: int = 0               # the partition (database set) the entry belongs to
    rexprs: list[bytes] | None = None   # the expressions for the reversed subject


def _classify_one(item: tuple[bytes, int]) -> str:
    expr, flags = item
    if len(expr) >= PREFILTER_ONLY:
        flags |= hs.HS_FLAG_PREFILTER
    for kind, f in (("exact", flags), ("prefilter", flags | hs.HS_FLAG_PREFILTER)):
        if kind == "exact" and flags & hs.HS_FLAG_PREFILTER:
            continue
        try:
            db = hs.Database(mode=hs.HS_MODE_BLOCK)
            db.compile(expressions=[expr], ids=[0], elements=1, flags=[f])
            return kind
        except hs.error as e:
            if "never match" in str(e):
                return "never"
    return "always"


def _compile(items: list[tuple[int, bytes, int]]):
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=[e for _, e, _ in items], ids=[i for i, _, _ in items],
               elements=len(items), flags=[f for _, _, f in items])
    return db


def _first_bad(good) -> int:
    lo, hi = 0, len(good)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _compile(good[lo:mid])
            lo = mid
        except hs.error:
            hi = mid
    return lo


def _build_group(args) -> tuple[bytes, dict[int, str]]:
    """Compile one group of (key, id, expr, flags): (serialized database, {key: class})."""
    items, known, classify_first = args
    kinds = {k: known.get(k, "exact") for k, _, _, _ in items}
    if classify_first:
        for k, _i, e, f in items:
            if k not in known:
                kinds[k] = _classify_one((e, f))

    def selected():
        out = []
        for k, i, e, f in items:
            c = kinds[k]
            if c == "exact":
                out.append((k, i, e, f))
            elif c == "prefilter":
                out.append((k, i, e, f | hs.HS_FLAG_PREFILTER))
        return out

    good = selected()
    try:
        db = _compile([(i, e, f) for _k, i, e, f in good]) if good else None
    except hs.error:
        for k, _i, e, f in items:
            if k not in known:
                kinds[k] = _classify_one((e, f))
        good = selected()
        db = None
        while good:
            try:
                db = _compile([(i, e, f) for _k, i, e, f in good])
                break
            except hs.error:
                bad = _first_bad([(i, e, f) for _k, i, e, f in good])
                kinds[good[bad][0]] = "always"
                del good[bad]
    return (hs.dumpb(db) if db is not None else b""), kinds


def _on_match(i: int, start: int, end: int, flags: int, hits: set) -> None:
    hits.add(i)


class AreaDatabase:
    """The Hyperscan side of one rule area (see the module docstring)."""

    def __init__(self, entries: list[Entry], cache_dir: str | None = None, workers: int = 0,
                 label: str = "area"):
        self.label = label
        self.exact: frozenset[int] = frozenset()
        self.prefilter: frozenset[int] = frozenset()
        self.always: frozenset[int] = frozenset()
        self.never: frozenset[int] = frozenset()
        self.dbs: list = []
        self.db_parts: list[int] = []   # the partition of each database
        self.from_cache = False
        self.compile_seconds = 0.0
        self._local = threading.local()
        self.entries = entries
        h = hashlib.sha256(_FORMAT + b"\0" + str(hs.__version__).encode())
        for i, en in enumerate(entries):
            h.update(b"%d\0%d\0%d\0%d\0%d\0" % (i, en.flags, int(en.exact), len(en.exprs),
                                                 en.part))
            for e in en.exprs:
                h.update(b"%d\0" % len(e) + e)
        self.key = h.hexdigest()
        if cache_dir and self._load(cache_dir):
            self.from_cache = True
            return
        t0 = time.monotonic()
        self._build(cache_dir, workers)
        self.compile_seconds = time.monotonic() - t0
        if cache_dir:
            self._save(cache_dir)

    # -- building
    def _build(self, cache_dir, workers) -> None:
        parts: list[tuple[int, int, bytes, int]] = []   # (part key, entry id, expr, flags)
        for i, en in enumerate(self.entries):
            for e in en.exprs:
                parts.append((len(parts), i, e, BASE_FLAGS | en.flags))
        classes = self._load_classes(cache_dir)
        known = {}
        for k, _i, e, f in parts:
            c = classes.get(self._pkey(e, f))
            if c is not None:
                known[k] = c
        n = workers or min(4, os.cpu_count() or 1)
        groups: list[tuple[list, bool]] = []
        group_part: list[int] = []
        by_part: dict[int, list] = {}
        for it in parts:
            by_part.setdefault(self.entries[it[1]].part, []).append(it)
        for part in sorted(by_part):
            for g in _groups(by_part[part], n):
                groups.append(g)
                group_part.append(part)
        args = [(g, {k: known[k] for k, _, _, _ in g if k in known}, long_) for g, long_ in groups]
        if n > 1 and len(groups) > 1:
            with ProcessPoolExecutor(min(n, len(groups)), mp_context=get_context("fork")) as ex:
                results = list(ex.map(_build_group, args))
        else:
            results = [_build_group(a) for a in args]
        kinds: dict[int, str] = {}
        for part, (blob, k) in zip(group_part, results, strict=True):
            kinds.update(k)
            if blob:
                self.dbs.append(hs.loadb(blob, hs.HS_MODE_BLOCK))
                self.db_parts.append(part)
        self._save_classes(cache_dir, {self._pkey(e, f): kinds[k] for k, _i, e, f in parts
                                       if kinds[k] != "exact" or k in known})
        per_entry: dict[int, set[str]] = {i: set() for i in range(len(self.entries))}
        for k, i, _e, _f in parts:
            per_entry[i].add(kinds[k])
        exact, pre, always, never = set(), set(), set(), set()
        for i, cs in per_entry.items():
            en = self.entries[i]
            if not en.exprs or "always" in cs:
                always.add(i)
            elif cs == {"never"}:
                never.add(i)
            elif "prefilter" in cs or not en.exact or en.flags & hs.HS_FLAG_PREFILTER:
                pre.add(i)
            else:
                exact.add(i)
        self.exact, self.prefilter = frozenset(exact), frozenset(pre)
        self.always, self.never = frozenset(always), frozenset(never)

    @staticmethod
    def _pkey(e: bytes, f: int) -> str:
        return hashlib.sha256(b"%d\0" % f + e).hexdigest()[:32]

    # -- the caches
    def _path(self, cache_dir: str) -> str:
        return os.path.join(cache_dir, f"spam-{self.label}-{self.key[:40]}.hsdb")

    def _load(self, cache_dir: str) -> bool:
        try:
            with open(self._path(cache_dir), "rb") as f:
                blob = f.read()
            n = int.from_bytes(blob[:4], "big")
            meta = json.loads(blob[4:4 + n])
            pos = 4 + n
            dbs, db_parts = [], []
            for part, size in meta["dbs"]:
                dbs.append(hs.loadb(blob[pos:pos + size], hs.HS_MODE_BLOCK))
                db_parts.append(part)
                pos += size
            self.dbs, self.db_parts = dbs, db_parts
            self.exact = frozenset(meta["exact"])
            self.prefilter = frozenset(meta["prefilter"])
            self.always = frozenset(meta["always"])
            self.never = frozenset(meta["never"])
            return True
        except (OSError, ValueError, KeyError, TypeError, hs.error):
            return False

    def _save(self, cache_dir: str) -> None:
        blobs = [hs.dumpb(db) for db in self.dbs]
        meta = json.dumps({"dbs": [[p, len(b)] for p, b in zip(self.db_parts, blobs, strict=True)],
                           "exact": sorted(self.exact),
                           "prefilter": sorted(self.prefilter), "always": sorted(self.always),
                           "never": sorted(self.never)}).encode()
        _atomic_write(cache_dir, self._path(cache_dir),
                      len(meta).to_bytes(4, "big") + meta + b"".join(blobs))

    def _load_classes(self, cache_dir: str | None) -> dict[str, str]:
        if not cache_dir:
            return {}
        try:
            with open(os.path.join(cache_dir, "spam-hs-classes.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save_classes(self, cache_dir: str | None, new: dict[str, str]) -> None:
        if not cache_dir or not new:
            return
        known = self._load_classes(cache_dir)
        known.update(new)
        _atomic_write(cache_dir, os.path.join(cache_dir, "spam-hs-classes.json"),
                      json.dumps(known, sort_keys=True).encode())

    # -- scanning
    def scanner(self, part: int = 0):
        """A function data -> set of entry ids for the databases of one
        partition (one per thread: own scratch space)."""
        scratches = getattr(self._local, "scratch", None)
        if scratches is None:
            scratches = self._local.scratch = [hs.Scratch(db) for db in self.dbs]
        pairs = [(db, sc) for db, sc, p in zip(self.dbs, scratches, self.db_parts, strict=True)
                 if p == part]

        def scan(data: bytes) -> set[int]:
            hits: set[int] = set()
            for db, scratch in pairs:
                db.scan(data, match_event_handler=_on_match, context=hits, scratch=scratch)
            return hits
        return scan

    def scanners(self) -> dict[int, object]:
        """{partition: scanner(partition)}, built once per thread."""
        sc = getattr(self._local, "scanners", None)
        if sc is None:
            sc = self._local.scanners = {p: self.scanner(p) for p in set(self.db_parts)}
        return sc

    def scan(self, data: bytes, part: int = 0) -> set[int]:
        """Indexes of the entries Hyperscan reported for data."""
        return self.scanner(part)(data)


def _groups(parts: list, n: int) -> list[tuple[list, bool]]:
    """Short expressions in one group; long ones (slow to compile, and
    slower still together) spread over n groups compiled in parallel."""
    short = [it for it in parts if len(it[2]) < LONG_EXPR]
    long_ = sorted((it for it in parts if len(it[2]) >= LONG_EXPR), key=lambda it: -len(it[2]))
    out = [(short, False)] if short else []
    if long_:
        k = max(1, min(n, len(long_) // 8 or 1))
        buckets: list[list] = [[] for _ in range(k)]
        sizes = [0] * k
        for it in long_:
            j = sizes.index(min(sizes))
            buckets[j].append(it)
            sizes[j] += len(it[2])
        out += [(sorted(b), True) for b in buckets if b]
    return out


def _atomic_write(cache_dir: str, path: str, blob: bytes) -> None:
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError:
        pass
