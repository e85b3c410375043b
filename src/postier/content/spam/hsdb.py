"""Hyperscan databases for one rule area, compiled off the hot path and cached.

    db = AreaDatabase([Entry([expr], flags, exact=True), ...],
                      cache_dir="/var/lib/postier/spamrules", label="body")
    db.scan(b"subject text")    # set of entry indexes Hyperscan reported
    hits, ends = db.scan_ends(buf)          # the same, and where it reported (not solo)
    report_subjects(ends, i, lens)          # the subjects of a joined buffer holding i's reports
    db.exact / db.prefilter / db.always / db.never
    db.part_dbs()               # per partition: (databases, solo databases) with scratch

An entry is one rule: one or more Hyperscan expressions under the rule's id
(a huge alternation is shared out over several expressions whose union is
the rule) and whether a report is final (`exact`) or must be confirmed.

postier.maps.patterns.PatternSet finds the expressions Hyperscan refuses by
bisecting a failing compile; on SpamAssassin's rule set that costs minutes
(a few huge expressions are "too large" and every failed attempt recompiles
hundreds of others), and compiling long expressions together is much
slower than compiling them apart.  So here the short expressions go into
one database compiled optimistically, the long ones are spread over a few
databases (or as many as `long_groups` asks: the body area's long ones
scan faster in one; with `one_group`, the header area's, a partition's
short and long expressions go into one database: a header value is
short, and each extra database scanned costs more than the merged one
saves), compiled in parallel worker processes after trying each one
alone: exactly, else with HS_FLAG_PREFILTER (a report is then confirmed by
RE2/re/libpcre2), else the rule becomes an "always candidate" confirmed on
every subject.  The per-expression classes and the finished databases are
cached on disk (hs_serialize_database), keyed by a hash of the expressions,
flags and the Hyperscan version, so a warm start only reads files.  Per
area the directory keeps the current file and the most recently used
other one (prune_cache: a rule update names new files).

Hyperscan calls back for every match end, and without SINGLEMATCH (which
Vectorscan 5.4 mishandles) an expression that matches nearly everywhere
costs thousands of callbacks per message (the handlers are compiled:
postier._native.spameng).  An entry marked `solo`
by the caller, or reported CHATTY_REPORTS times on the `probe` text given
to AreaDatabase, is compiled into a database of its own, and the scan of
that database stops at its first report.  (`chatty` sets another
threshold for another kind of probe: the header area's is a header block.)

With `ascii_long`, each database of the "long" groups (not solo) gets an
ASCII twin (postier.content.spam.asciire: the same expressions restricted
to ASCII subjects, exact there), which the scanners use when the data is
all ASCII: the body area's fuzzy-word rules are alternatives of UTF-8
look-alikes, several times faster to scan without them.  On a joined
buffer (perlre.joined_buffer) with 8-bit bytes, its ASCII subjects are
joined apart and scanned with the twins, the others with the databases
themselves (_scan_split): a joined form's match stays within its subject.

scan_ends also records the end of every report of the databases that are
not solo (the compiled handler spameng.on_match_end), and report_subjects
(spameng) maps them to the subjects of a joined buffer: Hyperscan reports
every match end, so a rule whose report must be confirmed can only match
in those subjects (postier.content.spam.engine confirms it there alone).

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

from postier.content.spam.asciire import VERSION as _ASCII_VERSION
from postier.content.spam.asciire import ascii_only
from postier.native import load as _load_native

_eng = _load_native("spameng")

BASE_FLAGS = hs.HS_FLAG_ALLOWEMPTY   # no SINGLEMATCH: Vectorscan 5.4 misses matches with it
_FORMAT = b"postier-spam-hs-8"
PREFILTER_ONLY = 8500   # expressions this long are never tried exactly (slow, and they fail)
LONG_EXPR = 1000        # expressions at least this long go to the "long" groups
CHATTY_REPORTS = 64     # probe reports from which an entry gets a database of its own
CACHE_SPARE = 1         # per area, cache files kept besides the current one (prune_cache)


@dataclass
class Entry:
    exprs: list[bytes]          # empty: no Hyperscan form, always a candidate
    flags: int = 0              # extra Hyperscan flags (PREFILTER, CASELESS, ...)
    exact: bool = True
    part: int = 0               # the partition (database set) the entry belongs to
    solo: bool = False          # in a database of its own, scanned up to its first report


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


def _build_twin(args) -> bytes | None:
    """The ASCII twin (module docstring) of one database's (id, expr,
    flags): serialized; b"" when no expression can match ASCII data; None
    when it does not compile (the database itself is used then)."""
    out = []
    for i, e, f in args:
        a = ascii_only(e)
        if a is not None:
            out.append((i, a, f))
    if not out:
        return b""
    try:
        return hs.dumpb(_compile(out))
    except hs.error:
        return None


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


# match handlers (hits.add(id); the second stops the scan: a solo
# database's first report is all we need), compiled in postier._native.spameng
_on_match = _eng.on_match
_on_first_match = _eng.on_first_match
# the subjects of a joined buffer holding an entry's reports (scanner_ends)
report_subjects = _eng.report_subjects


class AreaDatabase:
    """The Hyperscan side of one rule area (see the module docstring)."""

    def __init__(self, entries: list[Entry], cache_dir: str | None = None, workers: int = 0,
                 label: str = "area", probe: bytes | None = None, chatty: int = CHATTY_REPORTS,
                 long_groups: int = 0, ascii_long: bool = False, one_group: bool = False):
        self.label = label
        self.exact: frozenset[int] = frozenset()
        self.prefilter: frozenset[int] = frozenset()
        self.always: frozenset[int] = frozenset()
        self.never: frozenset[int] = frozenset()
        self.dbs: list = []
        self.db_parts: list[int] = []   # the partition of each database
        self.db_solo: list[bool] = []   # is the database one entry's own (see Entry.solo)
        self.db_ascii: list = []        # each database's ASCII twin, b"" (none needed) or None
        self.ascii_long = ascii_long
        self.probe = probe
        self.chatty = chatty
        self.long_groups = long_groups
        self.one_group = one_group
        self.from_cache = False
        self.compile_seconds = 0.0
        self._local = threading.local()
        self.entries = entries
        h = hashlib.sha256(_FORMAT + b"\0" + str(hs.__version__).encode())
        if probe is not None:
            h.update(b"probe\0%d\0" % chatty + probe)
        if long_groups:
            h.update(b"long_groups\0%d\0" % long_groups)
        if ascii_long:
            h.update(b"ascii_long\0%d\0" % _ASCII_VERSION)
        if one_group:
            h.update(b"one_group\0")
        for i, en in enumerate(entries):
            h.update(b"%d\0%d\0%d\0%d\0%d\0%d\0" % (i, en.flags, int(en.exact), len(en.exprs),
                                                      en.part, int(en.solo)))
            for e in en.exprs:
                h.update(b"%d\0" % len(e) + e)
        self.key = h.hexdigest()
        if cache_dir and self._load(cache_dir):
            self.from_cache = True
            touch(self._path(cache_dir))
            prune_cache(cache_dir, f"spam-{label}-", os.path.basename(self._path(cache_dir)))
            return
        t0 = time.monotonic()
        self._build(cache_dir, workers)
        self.compile_seconds = time.monotonic() - t0
        if cache_dir:
            self._save(cache_dir)
            prune_cache(cache_dir, f"spam-{label}-", os.path.basename(self._path(cache_dir)))

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
        pre_solo: dict[int, list] = {}
        for it in parts:
            if self.entries[it[1]].solo:
                pre_solo.setdefault(it[1], []).append(it)
            else:
                by_part.setdefault(self.entries[it[1]].part, []).append(it)
        for part in sorted(by_part):
            its = by_part[part]
            gs = ([(its, any(len(it[2]) >= LONG_EXPR for it in its))] if self.one_group
                  else _groups(its, n, self.long_groups))
            for g in gs:
                groups.append(g)
                group_part.append(part)
        for i in sorted(pre_solo):          # entries the caller wants alone
            groups.append((pre_solo[i], True))
            group_part.append(self.entries[i].part)
        args = [(g, {k: known[k] for k, _, _, _ in g if k in known}, long_) for g, long_ in groups]
        results = _run_groups(args, n)
        kinds: dict[int, str] = {}
        for _part, (_blob, k) in zip(group_part, results, strict=True):
            kinds.update(k)
        solo = self._chatty_entries(group_part, results) if self.probe is not None else set()
        solo -= set(pre_solo)
        if solo:
            # a chatty entry (Hyperscan reports it at nearly every offset:
            # one Python callback each) goes into a database of its own,
            # scanned only up to its first report; its old groups are
            # compiled again without it (the classes are known by now)
            redo = [gi for gi, (g, _l) in enumerate(groups) if any(it[1] in solo for it in g)]
            extra: list[tuple[list, bool]] = []
            for gi in redo:
                g, long_ = groups[gi]
                groups[gi] = ([it for it in g if it[1] not in solo], long_)
            for i in sorted(solo):
                extra.append(([it for it in parts if it[1] == i], True))
                group_part.append(self.entries[i].part)
            groups += extra
            for i in solo:
                self.entries[i].solo = True
            args = [(groups[gi][0], {k: kinds[k] for k, _, _, _ in groups[gi][0]}, False)
                    for gi in redo]
            args += [(g, {k: kinds[k] for k, _, _, _ in g}, False) for g, _l in extra]
            redone = _run_groups(args, n)
            for gi, res in zip(redo, redone[:len(redo)], strict=True):
                results[gi] = res
            results += redone[len(redo):]
        twin_of: dict[int, int] = {}
        twin_args = []
        for gi, (part, (blob, k)) in enumerate(zip(group_part, results, strict=True)):
            kinds.update(k)
            if blob:
                self.dbs.append(hs.loadb(blob, hs.HS_MODE_BLOCK))
                self.db_parts.append(part)
                solo_db = bool(groups[gi][0]) and all(
                    self.entries[it[1]].solo for it in groups[gi][0])
                self.db_solo.append(solo_db)
                self.db_ascii.append(None)
                g = groups[gi][0]
                if self.ascii_long and not solo_db and all(len(it[2]) >= LONG_EXPR for it in g):
                    twin_of[len(twin_args)] = len(self.dbs) - 1
                    twin_args.append([(i, e, f | (hs.HS_FLAG_PREFILTER if k[kk] == "prefilter"
                                                  else 0))
                                      for kk, i, e, f in g if k[kk] in ("exact", "prefilter")])
        for ti, tblob in enumerate(_run_groups(twin_args, n, _build_twin)):
            if tblob:
                self.db_ascii[twin_of[ti]] = hs.loadb(tblob, hs.HS_MODE_BLOCK)
            elif tblob is not None:
                self.db_ascii[twin_of[ti]] = b""
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

    def _chatty_entries(self, group_part: list[int], results: list) -> set[int]:
        """Entries Hyperscan reports `chatty` times or more on the probe."""
        counts: dict[int, int] = {}

        def count(i: int, start: int, end: int, flags: int, ctx: object) -> None:
            counts[i] = counts.get(i, 0) + 1
        for _part, (blob, _k) in zip(group_part, results, strict=True):
            if not blob:
                continue
            db = hs.loadb(blob, hs.HS_MODE_BLOCK)
            db.scan(self.probe, match_event_handler=count, scratch=hs.Scratch(db))
        return {i for i, c in counts.items() if c >= self.chatty}

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
            dbs, db_parts, db_solo, db_ascii = [], [], [], []
            for part, size, solo, asize in meta["dbs"]:
                dbs.append(hs.loadb(blob[pos:pos + size], hs.HS_MODE_BLOCK))
                db_parts.append(part)
                db_solo.append(bool(solo))
                pos += size
                if asize < 0:
                    db_ascii.append(None)
                else:
                    db_ascii.append(hs.loadb(blob[pos:pos + asize], hs.HS_MODE_BLOCK)
                                    if asize else b"")
                    pos += asize
            self.db_ascii = db_ascii
            for i in meta.get("solo", []):
                self.entries[i].solo = True
            self.dbs, self.db_parts, self.db_solo = dbs, db_parts, db_solo
            self.exact = frozenset(meta["exact"])
            self.prefilter = frozenset(meta["prefilter"])
            self.always = frozenset(meta["always"])
            self.never = frozenset(meta["never"])
            return True
        except (OSError, ValueError, KeyError, TypeError, hs.error):
            return False

    def _save(self, cache_dir: str) -> None:
        blobs = [hs.dumpb(db) for db in self.dbs]
        twins = [None if t is None else b"" if isinstance(t, bytes) else hs.dumpb(t)
                 for t in self.db_ascii]
        meta = json.dumps({"dbs": [[p, len(b), int(so), -1 if t is None else len(t)]
                                   for p, b, so, t in zip(self.db_parts, blobs, self.db_solo,
                                                          twins, strict=True)],
                           "solo": [i for i, en in enumerate(self.entries) if en.solo],
                           "exact": sorted(self.exact),
                           "prefilter": sorted(self.prefilter), "always": sorted(self.always),
                           "never": sorted(self.never)}).encode()
        _atomic_write(cache_dir, self._path(cache_dir),
                      len(meta).to_bytes(4, "big") + meta
                      + b"".join(b + (t or b"") for b, t in zip(blobs, twins, strict=True)))

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
    def _scratches(self) -> tuple[list, list]:
        """(scratch of each database, scratch of each ASCII twin or None),
        made once per thread."""
        scratches = getattr(self._local, "scratch", None)
        if scratches is None:
            scratches = self._local.scratch = [hs.Scratch(db) for db in self.dbs]
        tscratches = getattr(self._local, "tscratch", None)
        if tscratches is None:
            tscratches = self._local.tscratch = [
                None if tw is None or isinstance(tw, bytes) else hs.Scratch(tw)
                for tw in self.db_ascii]
        return scratches, tscratches

    def _part_sets(self, part: int) -> tuple[list, list, list]:
        """The databases of one partition as (plain, twins, solos): plain
        (database, scratch) pairs without an ASCII twin; twins (database,
        scratch, twin or None (none needed), its scratch); solos
        (database, scratch) pairs scanned up to their first report."""
        scratches, tscratches = self._scratches()
        plain, twins, solos = [], [], []
        for db, sc, p, so, tw, tsc in zip(self.dbs, scratches, self.db_parts, self.db_solo,
                                          self.db_ascii, tscratches, strict=True):
            if p != part:
                continue
            if so:
                solos.append((db, sc))
            elif tw is None:
                plain.append((db, sc))
            else:
                twins.append((db, sc, tw if tsc is not None else None, tsc))
        return plain, twins, solos

    def scanner(self, part: int = 0):
        """A function data -> set of entry ids for the databases of one
        partition (one per thread: own scratch space); on ASCII data the
        ASCII twins instead (module docstring)."""
        plain, twins, solos = self._part_sets(part)
        terminated = hs.ScanTerminated

        # Database.scan(data, match_event_handler, flags, context, scratch):
        # positional, since python-hyperscan parses keywords slowly
        def scan(data: bytes) -> set[int]:
            hits: set[int] = set()
            for db, scratch in plain:
                db.scan(data, _on_match, 0, hits, scratch)
            if twins:
                if data.isascii():
                    for _db, _sc, tw, tsc in twins:
                        if tw is not None:
                            tw.scan(data, _on_match, 0, hits, tsc)
                else:
                    _scan_split(twins, data, hits)
            for db, scratch in solos:
                try:
                    db.scan(data, _on_first_match, 0, hits, scratch)
                except terminated:
                    pass
            return hits
        return scan

    def scanner_ends(self, part: int = 0):
        """scanner(part) that also says where Hyperscan reported: a function
        data -> (set of entry ids, ends), ends a list of (flat list id, end,
        id, end, ... of one scanned buffer, None when that buffer is data
        itself, else the indexes of data's subjects it joins): the reports
        of every database but the solo ones (those stop at their first
        report; report_subjects gives their entries None).  For a joined
        buffer (perlre.joined_buffer), report_subjects turns them into the
        subjects that can hold a match of an entry."""
        plain, twins, solos = self._part_sets(part)
        terminated = hs.ScanTerminated
        on_end = _eng.on_match_end

        def scan(data: bytes) -> tuple[set[int], list]:
            flat: list = []
            ends = [(flat, None)]
            for db, scratch in plain:
                db.scan(data, on_end, 0, flat, scratch)
            if twins:
                if data.isascii():
                    for _db, _sc, tw, tsc in twins:
                        if tw is not None:
                            tw.scan(data, on_end, 0, flat, tsc)
                else:
                    _scan_split(twins, data, flat, ends)
            hits: set[int] = set()
            for f, _m in ends:
                hits.update(f[::2])
            for db, scratch in solos:
                try:
                    db.scan(data, _on_first_match, 0, hits, scratch)
                except terminated:
                    pass
            return hits, ends
        return scan

    def ends_scanners(self) -> dict[int, object]:
        """{partition: scanner_ends(partition)}, built once per thread."""
        sc = getattr(self._local, "ends_scanners", None)
        if sc is None:
            sc = self._local.ends_scanners = {p: self.scanner_ends(p) for p in set(self.db_parts)}
        return sc

    def scan_ends(self, data: bytes, part: int = 0) -> tuple[set[int], list]:
        """(scan(data, part), where: see scanner_ends)."""
        sc = self.ends_scanners().get(part)
        return sc(data) if sc is not None else (set(), [])

    def scanners(self) -> dict[int, object]:
        """{partition: scanner(partition)}, built once per thread."""
        sc = getattr(self._local, "scanners", None)
        if sc is None:
            sc = self._local.scanners = {p: self.scanner(p) for p in set(self.db_parts)}
        return sc

    def part_dbs(self) -> list[tuple[tuple, tuple]]:
        """Per partition 0..max: ((database, scratch) pairs scanned whole,
        (database, scratch) pairs of solo databases, scanned up to their
        first report), built once per thread: for callers that scan many
        partitions per message and call Hyperscan themselves (one Python
        call per database, no scanner closure)."""
        pd = getattr(self._local, "part_dbs", None)
        if pd is None:
            scratches = self._scratches()[0]
            n = max(self.db_parts, default=-1) + 1
            pd = []
            for part in range(n):
                sel = [(db, sc, so) for db, sc, p, so in zip(self.dbs, scratches, self.db_parts,
                                                            self.db_solo, strict=True) if p == part]
                pd.append((tuple((db, sc) for db, sc, so in sel if not so),
                           tuple((db, sc) for db, sc, so in sel if so)))
            self._local.part_dbs = pd
        return pd

    def scan(self, data: bytes, part: int = 0) -> set[int]:
        """Indexes of the entries Hyperscan reported for data."""
        sc = self.scanners().get(part)
        return sc(data) if sc is not None else set()


def _scan_split(twins: list, data: bytes, hits, ends: list | None = None) -> None:
    """The twinned databases on a joined buffer (SEP s1 SEP s2 ... SEP SEP,
    SEP a NUL: perlre.joined_buffer) holding some 8-bit bytes: its ASCII
    subjects joined apart and scanned with the twins, the others with the
    databases themselves (a match of a joined form takes one subject and
    the separators around it: each subject keeps its own).  Data not
    shaped so is scanned whole.  With ends (AreaDatabase.scanner_ends: hits
    is then data's flat list of ids and ends), the reports of the buffers
    joined apart go to lists of their own, appended to ends with the
    indexes of the subjects they join."""
    handler = _on_match if ends is None else _eng.on_match_end
    parts = data.split(b"\0")
    if len(parts) < 3 or parts[0] or parts[-1] or parts[-2]:
        for db, sc, _tw, _tsc in twins:
            db.scan(data, handler, 0, hits, sc)
        return
    subjects = parts[1:-2]
    flags = [x.isascii() for x in subjects]
    asc = [x for x, a in zip(subjects, flags, strict=True) if a]
    octx = hits
    if sum(map(len, asc)) * 2 <= len(data):
        other = data            # mostly 8-bit text: one scan of the whole
        asc = []
    else:
        other = b"\0" + b"\0".join([x for x, a in zip(subjects, flags, strict=True)
                                     if not a]) + b"\0\0"
        if ends is not None:
            octx = []
            ends.append((octx, [k for k, a in enumerate(flags) if not a]))
    if asc:
        actx = hits
        if ends is not None:
            actx = []
            ends.append((actx, [k for k, a in enumerate(flags) if a]))
        abuf = b"\0" + b"\0".join(asc) + b"\0\0"
        for _db, _sc, tw, tsc in twins:
            if tw is not None:
                tw.scan(abuf, handler, 0, actx, tsc)
    for db, sc, _tw, _tsc in twins:
        db.scan(other, handler, 0, octx, sc)


def _run_groups(args: list, n: int, fn=_build_group) -> list:
    """fn (_build_group) on each argument tuple, in n worker processes when it pays."""
    if n > 1 and len(args) > 1:
        with ProcessPoolExecutor(min(n, len(args)), mp_context=get_context("fork")) as ex:
            return list(ex.map(fn, args))
    return [fn(a) for a in args]


def _groups(parts: list, n: int, long_groups: int = 0) -> list[tuple[list, bool]]:
    """Short expressions in one group; long ones (slow to compile, and
    slower still together) spread over n groups compiled in parallel, or
    over long_groups groups when that is set (the body area's long
    expressions scan faster as one database than as two: fewer passes
    over the text, for a slower first compile)."""
    short = [it for it in parts if len(it[2]) < LONG_EXPR]
    long_ = sorted((it for it in parts if len(it[2]) >= LONG_EXPR), key=lambda it: -len(it[2]))
    out = [(short, False)] if short else []
    if long_:
        k = long_groups or max(1, min(n, len(long_) // 8 or 1))
        buckets: list[list] = [[] for _ in range(k)]
        sizes = [0] * k
        for it in long_:
            j = sizes.index(min(sizes))
            buckets[j].append(it)
            sizes[j] += len(it[2])
        out += [(sorted(b), True) for b in buckets if b]
    return out


def _atomic_write(cache_dir: str, path: str, blob: bytes) -> None:
    tmp = None
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:         # (a full disk: no half-written file left behind)
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached(cache_dir: str | None, prefix: str, digest: str, make, spare: int,
           load=None, dump=None):
    """make()'s object (None: refused), kept in cache_dir as prefix+digest
    for the next process: "=" + the first 16 bytes of the SHA-256 of the
    dumped bytes + them, or "-" for a refusal.  A file whose digest is
    wrong, or that load() refuses (None), is made again.  The file is
    marked used (touch) and, when made, the files of the prefix beyond the
    `spare` most recently used others are removed (prune_cache).  load and
    dump turn the object into bytes and back (default: it is bytes)."""
    if not cache_dir:
        return make()
    path = os.path.join(cache_dir, prefix + digest)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        blob = b""
    if blob == b"-":
        touch(path)
        return None
    if blob[:1] == b"=" and hashlib.sha256(blob[17:]).digest()[:16] == blob[1:17]:
        obj = blob[17:] if load is None else load(blob[17:])
        if obj is not None:
            touch(path)
            return obj
    obj = make()
    if obj is None:
        _atomic_write(cache_dir, path, b"-")
    else:
        data = obj if dump is None else dump(obj)
        _atomic_write(cache_dir, path, b"=" + hashlib.sha256(data).digest()[:16] + data)
    touch(path)
    prune_cache(cache_dir, prefix, os.path.basename(path), spare)
    return obj


def touch(path: str) -> None:
    """Mark a cache file used now (its mtime: what prune_cache keeps by)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune_cache(cache_dir: str, prefix: str, current: str, spare: int = CACHE_SPARE) -> None:
    """Remove the files of cache_dir named prefix* except `current` and
    the `spare` most recently used others (the previous rule set's, for a
    roll-back or a second configuration sharing the directory).  Every
    rule change names new files, so without this the directory grows by
    the size of the changed areas' databases at each change.  Errors
    (a read-only directory, a file another process removed) are ignored."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    others = []
    for n in names:
        if n.startswith(prefix) and n != current:
            p = os.path.join(cache_dir, n)
            try:
                others.append((os.stat(p).st_mtime, n, p))
            except OSError:
                continue
    others.sort(reverse=True)
    for _t, _n, p in others[spare:]:
        try:
            os.unlink(p)
        except OSError:
            pass
