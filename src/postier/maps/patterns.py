"""Multi-pattern matching: one Hyperscan scan, then RE2 (or `re`) to confirm.

This is the engine behind `regexp:` and `pcre:` tables, and is meant to be
reused by header_checks/body_checks and the SpamAssassin rule engine.

    pats = [pcre_pattern(rb"viagra"), posix_pattern(rb"^From:.*@example\\.com$")]
    ps = PatternSet(pats)
    ps.first_match(b"Subject: cheap viagra")    # -> (0, [(15, 21)])
    m = ps.matcher(b"...")                      # lazy per-pattern answers
    m.match(1)                                  # -> bool

A `Pattern` is one regular expression compiled for several engines
(postier.maps.resyntax translates POSIX and PCRE syntax into a tree and
writes it out for each):

* Hyperscan (`hs_expr`): all patterns of a set go into ONE database, mode
  BLOCK, HS_FLAG_SINGLEMATCH (| HS_FLAG_ALLOWEMPTY).  A pattern Hyperscan
  refuses is retried with HS_FLAG_PREFILTER; one it cannot take at all is an
  "always candidate".  A pattern Hyperscan did not report cannot match.  A
  hit is final only when the Hyperscan form is exact; otherwise it is
  confirmed.
* RE2 (pyre2, bytes/Latin-1, with its silent fallback to `re` turned into an
  exception) confirms and extracts captures; Python `re` does so for what
  RE2 lacks (look-around, back-references, atomic groups, possessive
  quantifiers, word start/end).
* The reference library Postfix itself uses (postier.maps.reflib: glibc
  regex, libpcre2) gives exact compile errors, capture counts, captures of a
  `regexp:` rule (glibc's POSIX submatch rules are its own), and confirms the
  few patterns the translator cannot express.

Module settings (read when a set is built): DEFAULT_ENGINE ("auto": Hyperscan
from SMALL_SET patterns up, else plain RE2/re; "hyperscan"; "re2"),
SMALL_SET, and CACHE_DIR (a directory for serialized Hyperscan databases,
keyed by a hash of the expressions, their flags and exactness and the
positions of the patterns without one; None = no cache).

Parameters read: none (callers pass what they took from main.cf).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence

import re2

from postier.maps import reflib, resyntax

try:  # pragma: no cover - exercised wherever hyperscan is installed (always here)
    import hyperscan as _hs
except ImportError:  # pragma: no cover
    _hs = None

re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)

DEFAULT_ENGINE = "auto"
SMALL_SET = 4
CACHE_DIR: str | None = None

_HS_BASE = 0
if _hs is not None:
    _HS_BASE = _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_ALLOWEMPTY


class CompileError(Exception):
    """The pattern is invalid (message worded like the library Postfix uses),
    or postier has no engine able to run it."""


class Pattern:
    """One regular expression, compiled for the engines.  Build with
    posix_pattern() or pcre_pattern()."""

    __slots__ = ("source", "hs_expr", "hs_flags", "hs_exact", "ngroups", "_re2", "_py",
                 "_ref", "_ref_confirms", "_ref_spans", "_nl_unsafe", "_nmatch")

    def __init__(self) -> None:
        self.source = b""
        self.hs_expr: bytes | None = None
        self.hs_flags = 0
        self.hs_exact = False
        self.ngroups = 0
        self._re2 = None
        self._py = None
        self._ref = None
        self._ref_confirms = False
        self._ref_spans = False
        self._nl_unsafe = False
        self._nmatch = 0

    def search(self, data: bytes) -> bool:
        """Does the pattern match anywhere in data?"""
        if self._ref_confirms:
            return self._ref_search(data, self._nmatch) is not None
        r = self._re2
        if r is not None and not (self._nl_unsafe and data.endswith(b"\n")):
            return r.search(data) is not None
        if self._py is not None:
            return self._py.search(data) is not None
        return self._ref_search(data, self._nmatch) is not None

    def spans(self, data: bytes, n: int) -> list[tuple[int, int]] | None:
        """(start, end) of group 0 and groups 1..n-1 ((-1, -1) when a group
        did not take part), or None when there is no match."""
        if self._ref_spans or self._ref_confirms:
            res = self._ref_search(data, n)
            if res is None:
                return None
            return (res + [(-1, -1)] * n)[:n]
        r = self._re2
        if r is None or (self._nl_unsafe and data.endswith(b"\n")):
            r = self._py
        m = r.search(data)
        if m is None:
            return None
        return [m.span(i) if i <= self.ngroups else (-1, -1) for i in range(n)]

    def _ref_search(self, data: bytes, n: int):
        ref = self._ref
        if isinstance(ref, reflib.PosixRegex):
            return ref.search(data, n)
        return ref.search(data)


def _finish(p: Pattern, tree, source: bytes) -> None:
    """Emit the tree for RE2, re and Hyperscan."""
    p.source = source
    try:
        em = resyntax.emit(tree, "re2")
        p._re2 = re2.compile(em.pattern)
        p._nl_unsafe = em.nl_unsafe
    except (resyntax.Unsupported, re2.error, re.error, re2.BackreferencesException,
            re2.CharClassProblemException):
        p._re2 = None
    if p._re2 is None or p._nl_unsafe:
        try:
            p._py = re.compile(resyntax.emit(tree, "py").pattern)
        except (resyntax.Unsupported, re.error, RecursionError, OverflowError):
            p._py = None
    hs = resyntax.emit(tree, "hs")
    p.hs_expr = hs.pattern
    p.hs_exact = hs.exact


def posix_pattern(pattern: bytes, *, extended: bool = True, icase: bool = True,
                  newline: bool = False, nmatch: int = 0) -> Pattern:
    """A POSIX regex as Postfix's regexp: tables compile it (glibc regcomp).

    nmatch is the number of submatches the caller will ask for (Postfix
    passes 0 unless the result uses $n, and glibc's answer can depend on it).
    Raises CompileError with regerror()'s text."""
    p = Pattern()
    p._nmatch = nmatch
    ref = None
    if reflib.posix_available():
        cflags = (reflib.REG_EXTENDED if extended else 0) | (reflib.REG_ICASE if icase else 0) \
            | (reflib.REG_NEWLINE if newline else 0)
        try:
            ref = reflib.PosixRegex(pattern, cflags)
        except reflib.RegexCompileError as e:
            raise CompileError(str(e)) from None
        p._ref = ref
        p._ref_spans = True
    try:
        tree, nsub = resyntax.parse_posix(pattern, extended, icase, newline)
    except resyntax.PosixSyntaxError as e:
        if ref is None:
            raise CompileError(str(e)) from None
        tree = None
    except resyntax.Unsupported:
        tree = None
    if ref is not None:
        nsub_ref = ref.nsub
        if tree is not None and nsub != nsub_ref:
            tree = None
        nsub = nsub_ref
    elif tree is None:
        raise CompileError("this regular expression needs the C library's regex engine")
    p.ngroups = nsub
    if tree is None or (ref is not None and _has(tree, "backref")):
        # glibc alone can say: exact confirmation by the reference library
        p._ref_confirms = True
        p.source = pattern
        if tree is not None:
            hs = resyntax.emit(tree, "hs")
            p.hs_expr, p.hs_exact = hs.pattern, False
        return p
    _finish(p, tree, pattern)
    if p._re2 is None and p._py is None:
        if ref is None:
            raise CompileError("this regular expression cannot be run by RE2 or re")
        p._ref_confirms = True
    return p


def pcre_pattern(pattern: bytes, *, caseless: bool = True, multiline: bool = False,
                 dotall: bool = True, extended: bool = False, anchored: bool = False,
                 dollar_endonly: bool = False, ungreedy: bool = False) -> Pattern:
    """A PCRE2 pattern with Postfix's pcre: option bits (no UTF, byte-based).
    Raises CompileError("error in regex at offset N: text")."""
    p = Pattern()
    ref = None
    if reflib.pcre2_available():
        opts = (reflib.PCRE2_CASELESS if caseless else 0) \
            | (reflib.PCRE2_MULTILINE if multiline else 0) \
            | (reflib.PCRE2_DOTALL if dotall else 0) \
            | (reflib.PCRE2_EXTENDED if extended else 0) \
            | (reflib.PCRE2_ANCHORED if anchored else 0) \
            | (reflib.PCRE2_DOLLAR_ENDONLY if dollar_endonly else 0) \
            | (reflib.PCRE2_UNGREEDY if ungreedy else 0)
        try:
            ref = reflib.Pcre2Regex(pattern, opts)
        except reflib.RegexCompileError as e:
            raise CompileError(f"error in regex at offset {e.offset}: {e.message}") from None
        p._ref = ref
        p._ref_spans = True
    try:
        tree, ncap = resyntax.parse_pcre(pattern, caseless=caseless, multiline=multiline,
                                         dotall=dotall, extended=extended, anchored=anchored,
                                         dollar_endonly=dollar_endonly, ungreedy=ungreedy)
    except resyntax.PcreSyntaxError as e:
        if ref is None:
            raise CompileError(f"error in regex at offset {e.offset}: {e.message}") from None
        tree = None
    except (resyntax.Unsupported, RecursionError):
        tree = None
    if ref is not None:
        if tree is not None and ncap != ref.capture_count:
            tree = None
        ncap = ref.capture_count
    p.ngroups = ncap if tree is not None or ref is not None else 0
    if tree is None:
        if ref is None:
            raise CompileError("this PCRE construct needs libpcre2, which is not available")
        p._ref_confirms = True
        p.source = pattern
        # Hyperscan reads PCRE syntax itself; in prefilter mode its answer is a
        # superset of the real matches.
        prefix = b"(?x)" if extended else b""
        p.hs_expr = prefix + pattern
        _hs_pcre_flags(p, caseless, dotall, multiline)
        return p
    _finish(p, tree, pattern)
    if p._re2 is None and p._py is None:
        p._ref_confirms = True
    return p


def _hs_pcre_flags(self: Pattern, caseless: bool, dotall: bool, multiline: bool) -> None:
    f = _hs.HS_FLAG_PREFILTER if _hs is not None else 0
    if _hs is not None:
        f |= (_hs.HS_FLAG_CASELESS if caseless else 0) | (_hs.HS_FLAG_DOTALL if dotall else 0) \
            | (_hs.HS_FLAG_MULTILINE if multiline else 0)
    self.hs_flags = f
    self.hs_exact = False


def _has(tree, kind: str) -> bool:
    if tree[0] == kind:
        return True
    if tree[0] in ("seq", "alt"):
        return any(_has(t, kind) for t in tree[1])
    if tree[0] in ("group", "rep", "look", "atomic"):
        return _has(tree[1], kind)
    return False


# ---------------------------------------------------------------- the set

class Matcher:
    """Answers for one subject: which patterns match (memoized)."""

    __slots__ = ("_set", "data", "hits", "_memo")

    def __init__(self, pset: PatternSet, data: bytes):
        self._set = pset
        self.data = data
        self.hits = pset.scan(data)
        self._memo: dict[int, bool] = {}

    def could_match(self, i: int) -> bool:
        """False only when the pattern certainly does not match."""
        hits = self.hits
        return hits is None or i in hits or i in self._set.always

    def match(self, i: int) -> bool:
        memo = self._memo
        r = memo.get(i)
        if r is not None:
            return r
        ps = self._set
        hits = self.hits
        if hits is not None and i not in hits and i not in ps.always:
            r = False
        elif hits is not None and i in hits and i in ps.exact:
            r = True
        else:
            r = ps.patterns[i].search(self.data)
        memo[i] = r
        return r

    def spans(self, i: int, n: int) -> list[tuple[int, int]] | None:
        if not self.could_match(i):
            return None
        return self._set.patterns[i].spans(self.data, n)


class PatternSet:
    """Patterns compiled together: one Hyperscan scan tells which can match.

    engine: "auto" (DEFAULT_ENGINE), "hyperscan" or "re2" (no Hyperscan:
    every question goes to RE2/re).  cache_dir: where to keep the serialized
    Hyperscan database (CACHE_DIR when None)."""

    def __init__(self, patterns: Sequence[Pattern], *, engine: str | None = None,
                 cache_dir: str | None = None):
        self.patterns = list(patterns)
        engine = engine or DEFAULT_ENGINE
        if engine == "auto":
            engine = "hyperscan" if len(self.patterns) >= SMALL_SET and _hs else "re2"
        if engine not in ("hyperscan", "re2"):
            raise ValueError(f"unknown pattern engine {engine!r}")
        if engine == "hyperscan" and _hs is None:  # pragma: no cover
            engine = "re2"
        self.engine = engine
        self.always: frozenset[int] = frozenset()
        self.exact: frozenset[int] = frozenset()
        self._db = None
        self._local = threading.local()
        if engine == "hyperscan":
            self._build(cache_dir if cache_dir is not None else CACHE_DIR)

    # -- Hyperscan database
    def _flags(self, p: Pattern) -> int:
        return _HS_BASE | (p.hs_flags if p.hs_flags > 0 else 0)

    def _try_compile(self, items: list[tuple[int, bytes, int]]):
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        db.compile(expressions=[e for _, e, _ in items], ids=[i for i, _, _ in items],
                   elements=len(items), flags=[f for _, _, f in items])
        return db

    def _find_bad(self, items, bad: list) -> None:
        """Bisect a failing compile down to the expressions Hyperscan refuses."""
        if len(items) == 1:
            bad.append(items[0])
            return
        mid = len(items) // 2
        for half in (items[:mid], items[mid:]):
            try:
                self._try_compile(half)
            except _hs.error:
                self._find_bad(half, bad)

    def _build(self, cache_dir: str | None) -> None:
        items = []
        always = set()
        for i, p in enumerate(self.patterns):
            if p.hs_expr is None:
                always.add(i)
            else:
                items.append((i, p.hs_expr, self._flags(p)))
        key = None
        if cache_dir:
            # everything the cached answers depend on: each expression with
            # its flags and exactness (a report of an exact one is final),
            # and which patterns have none (always candidates)
            h = hashlib.sha256(b"postier-hs-2\0" + str(_hs.__version__).encode()
                               + b"\0%d\0" % len(self.patterns))
            for i, e, f in items:
                h.update(b"%d\0%d\0%d\0%d\0" % (i, f, int(bool(self.patterns[i].hs_exact)), len(e))
                         + e)
            h.update(b"always\0" + b",".join(b"%d" % i for i in sorted(always)))
            key = h.hexdigest()
            if self._load_cache(cache_dir, key):
                return
        prefiltered: set[int] = set()
        never: set[int] = set()
        db = None
        if items:
            try:
                db = self._try_compile(items)
            except _hs.error:
                bad: list = []
                self._find_bad(items, bad)
                badids = {b[0] for b in bad}
                good = [it for it in items if it[0] not in badids]
                for i, e, f in bad:
                    try:
                        self._try_compile([(i, e, f | _hs.HS_FLAG_PREFILTER)])
                        good.append((i, e, f | _hs.HS_FLAG_PREFILTER))
                        prefiltered.add(i)
                    except _hs.error as err:
                        if "never match" in str(err):
                            never.add(i)
                        else:
                            always.add(i)
                good.sort()
                db = self._try_compile(good) if good else None
        self._db = db
        self.always = frozenset(always)
        self.exact = frozenset(i for i, e, f in items
                               if self.patterns[i].hs_exact and i not in prefiltered
                               and not f & _hs.HS_FLAG_PREFILTER and i not in always)
        self._never = never
        if key:
            self._save_cache(cache_dir, key)

    def _cache_path(self, cache_dir: str, key: str) -> str:
        return os.path.join(cache_dir, f"hs-{key}.db")

    def _load_cache(self, cache_dir: str, key: str) -> bool:
        try:
            with open(self._cache_path(cache_dir, key), "rb") as f:
                blob = f.read()
            n = int.from_bytes(blob[:4], "big")
            meta = json.loads(blob[4:4 + n])
            self._db = _hs.loadb(blob[4 + n:], _hs.HS_MODE_BLOCK) if meta["db"] else None
            self.always = frozenset(meta["always"])
            self.exact = frozenset(meta["exact"])
            return True
        except (OSError, ValueError, KeyError, _hs.error):
            return False

    def _save_cache(self, cache_dir: str, key: str) -> None:
        meta = json.dumps({"db": self._db is not None, "always": sorted(self.always),
                           "exact": sorted(self.exact)}).encode()
        blob = len(meta).to_bytes(4, "big") + meta + (_hs.dumpb(self._db) if self._db else b"")
        try:
            os.makedirs(cache_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".hs-")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, self._cache_path(cache_dir, key))
        except OSError:
            pass

    # -- scanning
    def scan(self, data: bytes) -> set[int] | None:
        """Indexes of the patterns Hyperscan reported (None: no Hyperscan)."""
        if self.engine != "hyperscan":
            return None
        hits: set[int] = set()
        db = self._db
        if db is None:
            return hits
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = _hs.Scratch(db)
        db.scan(data, match_event_handler=_on_match, context=hits, scratch=scratch)
        return hits

    def candidates(self, data: bytes) -> set[int]:
        """Patterns that may match data (all of them without Hyperscan)."""
        hits = self.scan(data)
        if hits is None:
            return set(range(len(self.patterns)))
        return hits | self.always

    def matcher(self, data: bytes) -> Matcher:
        return Matcher(self, data)

    def first_match(self, data: bytes, ngroups: int | None = None
                    ) -> tuple[int, list[tuple[int, int]]] | None:
        """The first pattern (in list order) that matches, with its spans."""
        m = Matcher(self, data)
        order = range(len(self.patterns)) if m.hits is None else \
            sorted(m.hits | self.always)
        for i in order:
            if m.match(i):
                n = (self.patterns[i].ngroups if ngroups is None else ngroups) + 1
                sp = self.patterns[i].spans(data, n)
                if sp is not None:
                    return i, sp
        return None


def _on_match(i: int, start: int, end: int, flags: int, hits: set) -> None:
    hits.add(i)


# ---------------------------------------------------------------- many lines at once

def span_expr(p: Pattern) -> bytes | None:
    """p's Hyperscan expression for a buffer of many lines: every anchor for
    the start or the end of the subject (\\A, ^, \\z, \\Z, $) becomes a
    LF.  Scanned over LF + the lines (each with its LF) + a NUL sentinel,
    every match p has on one line alone is then also a match inside that
    line's LFs, and no anchor depends on where the buffer starts or ends
    (matches may also cross lines: false candidates, confirmed later).
    None when the expression is raw PCRE text (inline options could change
    what the anchors mean) or there is none."""
    expr = p.hs_expr
    if expr is None or (_hs is not None and p.hs_flags > 0 and p.hs_flags & _hs.HS_FLAG_PREFILTER):
        return None
    out = bytearray()
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c == 0x5C and i + 1 < n:             # escape
            if expr[i + 1] in (0x41, 0x7A, 0x5A):   # \A \z \Z
                out += rb"\n"
            else:
                out += expr[i:i + 2]
            i += 2
            continue
        if c == 0x5B:                           # character class: copied as is
            j = i + 1
            if j < n and expr[j] == 0x5E:
                j += 1
            if j < n and expr[j] == 0x5D:
                j += 1
            while j < n and expr[j] != 0x5D:
                j += 2 if expr[j] == 0x5C else 1
            out += expr[i:j + 1]
            i = j + 1
            continue
        if c in (0x5E, 0x24):                   # ^ $
            out += rb"\n"
        else:
            out.append(c)
        i += 1
    return bytes(out)


class LineScanner:
    """Which lines of a buffer may match one of `patterns` (one line = one
    subject, as body_checks sees them), found with few Hyperscan scans of
    the whole buffer instead of one lookup per line.

    All span_expr() forms go into one database (HS_FLAG_SINGLEMATCH |
    ALLOWEMPTY; PREFILTER for what Hyperscan refuses), compiled twice: for
    HS_MODE_BLOCK and for HS_MODE_VECTORED.  A span is a match candidate
    when either scan reports a match: Vectorscan 5.4 (what the hyperscan
    wheel ships) misses some matches in one mode that the other finds, so
    the second scan is a safety net (it only runs when the first found
    nothing).  candidate_lines() scans a span; a span without any match has
    no candidate line; a span with a match is cut in two at a line boundary
    and each half is scanned again, down to spans of `small` lines, whose
    lines are all candidates.  No assumption about match order is needed.
    `usable` is False when some pattern cannot be expressed this way (the
    caller then looks every line up).  cache_dir as for PatternSet."""

    def __init__(self, patterns: Sequence[Pattern], *, cache_dir: str | None = None,
                 small: int = 4):
        self.small = max(1, small)
        self.usable = _hs is not None
        self._dbs: list = []
        self._local = threading.local()
        if not self.usable:
            return
        items = []
        for i, p in enumerate(patterns):
            e = span_expr(p)
            if e is None:
                self.usable = False
                return
            items.append((i, e))
        if not items:
            return
        modes = (_hs.HS_MODE_BLOCK, _hs.HS_MODE_VECTORED)
        cache_dir = cache_dir if cache_dir is not None else CACHE_DIR
        paths = []
        if cache_dir:
            h = hashlib.sha256(b"postier-hs-lines-3\0" + str(_hs.__version__).encode())
            for i, e in items:
                h.update(b"%d\0%d\0" % (i, len(e)) + e)
            key = h.hexdigest()
            paths = [os.path.join(cache_dir, f"hsl-{key}-{m}.db") for m in modes]
            try:
                dbs = []
                for path, mode in zip(paths, modes, strict=True):
                    with open(path, "rb") as f:
                        dbs.append(_hs.loadb(f.read(), mode))
                self._dbs = dbs
                return
            except (OSError, ValueError, _hs.error):
                pass
        base = _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_ALLOWEMPTY
        full = []
        for i, e in items:
            for f in (base, base | _hs.HS_FLAG_PREFILTER):
                try:
                    self._compile([(i, e, f)], _hs.HS_MODE_BLOCK)
                    full.append((i, e, f))
                    break
                except _hs.error:
                    continue
            else:
                self.usable = False
                return
        self._dbs = [self._compile(full, m) for m in modes]
        for path, db in zip(paths, self._dbs, strict=False):
            try:
                os.makedirs(cache_dir, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".hsl-")
                with os.fdopen(fd, "wb") as f:
                    f.write(_hs.dumpb(db))
                os.replace(tmp, path)
            except OSError:
                pass

    @staticmethod
    def _compile(items: list[tuple[int, bytes, int]], mode: int):
        db = _hs.Database(mode=mode)
        db.compile(expressions=[e for _, e, _ in items], ids=[i for i, _, _ in items],
                   elements=len(items), flags=[f for _, _, f in items])
        return db

    def hit(self, data: bytes) -> bool:
        """Does any pattern match anywhere in data (see span_expr for the
        framing the expressions expect)?"""
        if not self._dbs:
            return False
        scratches = getattr(self._local, "scratches", None)
        if scratches is None:
            scratches = self._local.scratches = [_hs.Scratch(db) for db in self._dbs]
        block, vectored = self._dbs
        try:
            block.scan(data, match_event_handler=_stop, scratch=scratches[0])
            vectored.scan([data], match_event_handler=_stop, scratch=scratches[1])
        except _hs.ScanTerminated:
            return True
        return False

    def candidate_lines(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        """(line start, index of its LF) of every line in data[start:end]
        (whole LF-terminated lines) that may match, in order."""
        out: list[tuple[int, int]] = []
        if not self._dbs or start >= end:
            return out
        todo = [(start, end)]
        small = self.small
        while todo:
            s, e = todo.pop()
            if not self.hit(b"\n" + data[s:e] + b"\x00"):
                continue
            if data.count(b"\n", s, e) <= small:
                pos = s
                while pos < e:
                    nl = data.index(b"\n", pos, e)
                    out.append((pos, nl))
                    pos = nl + 1
                continue
            # at least two lines: cut after a LF near the middle (never the last one)
            mid = data.find(b"\n", (s + e) // 2, e - 1)
            if mid < 0:
                mid = data.rfind(b"\n", s, e - 1)
            todo.append((mid + 1, e))
            todo.append((s, mid + 1))
        out.sort()
        return out


def _stop(i: int, start: int, end: int, flags: int, ctx: object) -> int:
    return 1


def pcre_pattern_unchecked(pattern: bytes, *, caseless: bool = False, multiline: bool = False,
                           dotall: bool = False, extended: bool = False) -> Pattern:
    """pcre_pattern() without asking libpcre2: for patterns PCRE2 refuses only
    for its own size limits ("regular expression is too large"), which Perl
    and `re` accept (SpamAssassin's replace_tags alternations).  Raises
    CompileError when the tree parser or both RE2 and `re` cannot take it."""
    p = Pattern()
    try:
        tree, ncap = resyntax.parse_pcre(pattern, caseless=caseless, multiline=multiline,
                                         dotall=dotall, extended=extended)
    except resyntax.PcreSyntaxError as e:
        raise CompileError(f"error in regex at offset {e.offset}: {e.message}") from None
    except (resyntax.Unsupported, RecursionError) as e:
        raise CompileError(f"unsupported construct: {e}") from None
    p.ngroups = ncap
    _finish(p, tree, pattern)
    if p._re2 is None and p._py is None:
        raise CompileError("this regular expression cannot be run by RE2 or re")
    return p
