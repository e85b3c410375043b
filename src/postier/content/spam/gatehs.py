"""Hyperscan union gates: a line area's big RE2 union gate on ASCII text.

The fuzzy-word union gate of the body area (engine._line_gates:
__YOUR_PASSWORD, __MY_MALWARE, __PAY_ME, ... ~615 kB of RE2) is searched
on ASCII buffers in its ASCII restriction (engine._ascii_gate, ~136 kB).
On a first pass that RE2 search still builds DFA states for every new
text (~10-50 us per body) and it fails on ~96% of bodies.  Every letter of
those rules is a fuzzy class, so no literal or short byte-class prefix is
selective (their first 4-6 bytes match nearly every body); but the ASCII
restriction itself, cut into pieces at its biggest alternations
(perlre._split_trees: the union of the pieces matches exactly the same
strings), is taken by Hyperscan in its exact form, and one scan of those
pieces answers "does the gate match" for a few microseconds.

hs_gate(pattern, cache_dir) gives that Hyperscan form of an ASCII RE2
gate pattern, or None when a piece is not exact or Hyperscan refuses it
(the RE2 form then stays).  The compiled database (~3.5 MB for that
union, ~4 s of CPU to build) is kept in cache_dir
(spam-asciigatehs-HASH, checked by its digest; "-" remembers a refusal;
the HS_GATE_SPARE most recently used others are kept).

MixedGate answers for any text with that form and the gate's own RE2
regex on the non-ASCII subjects only (its docstring).

Wide gates (wide_gate) serve single line-area rules that every scan has
to confirm with a long RE2 regex (__FILL_THIS_FORM_PARTIAL and _RAW:
~9 kB, a search of every body costing ~15-25 us on a first pass, which
passes on ~8% of bodies at most).  Hyperscan refuses their exact joined
form ("Pattern is too large": bounded repeats of the <FF_ALL>
alternation), and its HS_FLAG_PREFILTER approximation of it reports on
nearly every body.  Their joined form with every bounded repeat's
optional copies made unbounded ({m,n} -> {m,}) and atomic groups as
plain groups matches a superset of the subjects the rule matches, and
Hyperscan takes it exactly (~1 MB, ~1 s of CPU to build, kept in
cache_dir as spam-widegate-HASH): one scan of ~1-3 us per body that
reports nearly only where the rule matches.  No report: the rule cannot
match; else engine.Run._lines confirms it on the subjects the gate
matches alone.

Only patterns without anchors other than \\b / \\B, look-arounds,
back-references or atomic groups are taken (on them Hyperscan and RE2
mean the same for ASCII text).

Parameters read: none.
"""

from __future__ import annotations

import hashlib
import threading

import hyperscan as hs

from postier import native
from postier.content.spam import perlre
from postier.content.spam.hsdb import cached
from postier.maps import resyntax

_eng = native.load("spameng")

VERSION = 2             # part of the cache key: bump when the translation or flags change
HS_GATE_SPARE = 4       # spam-asciigatehs-* files kept besides the one in use
_PREFIX = "spam-asciigatehs-"


def _exprs(pattern: bytes) -> list[bytes] | None:
    """Exact Hyperscan expressions whose union matches where pattern does
    (pattern: RE2 syntax, no flags), or None."""
    from postier.content.spam.gateatom import _plain  # (it imports this module)
    try:
        tree, _ = resyntax.parse_pcre(pattern, caseless=False, multiline=False,
                                      dotall=False, extended=False)
        if not _plain(tree):
            return None
        em = resyntax.emit(tree, "hs")
        trees = (perlre._split_trees(tree, len(em.pattern), 6)
                 if len(em.pattern) > perlre.SPLIT_TARGET else [tree])
        ems = [resyntax.emit(t, "hs") for t in trees]
    except (resyntax.Unsupported, resyntax.PcreSyntaxError, RecursionError):
        return None
    if not em.exact or not all(e.exact for e in ems):
        return None
    return [e.pattern for e in ems]


def _compile(pattern: bytes):
    """The Hyperscan database of pattern's pieces, or None."""
    exprs = _exprs(pattern)
    if not exprs:
        return None
    return _compile_exprs(exprs)


def _compile_exprs(exprs: list[bytes]):
    """The Hyperscan database of exact expressions, or None when refused."""
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    try:
        # no SINGLEMATCH (Vectorscan 5.4 misses matches with it: hsdb.BASE_FLAGS);
        # HsGate's scan stops at the first report anyway
        db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs),
                   flags=[0] * len(exprs))
    except hs.error:
        return None
    return db


def cached_database(key: bytes, build, cache_dir: str | None, prefix: str,
                    spare: int = HS_GATE_SPARE):
    """A Hyperscan database from cache_dir (prefix + a hash of key and of
    the Hyperscan version), else build() (a database, or None: refused),
    kept there for the next process (hsdb.cached: a damaged file, or one
    Hyperscan cannot load, is made again; "-" remembers a refusal; the
    `spare` most recently used other prefix* files are kept)."""
    digest = hashlib.sha256(b"%d\0%s\0" % (VERSION, hs.__version__.encode()) + key)
    return cached(cache_dir, prefix, digest.hexdigest()[:40], build, spare,
                  load=_loadb, dump=hs.dumpb)


def _loadb(data: bytes):
    try:
        return hs.loadb(data, hs.HS_MODE_BLOCK)
    except hs.error:
        return None         # (another Hyperscan build: made again)


WIDE_SPARE = 4          # spam-widegate-* files kept besides the one in use
_WIDE_PREFIX = "spam-widegate-"


def _unbounded(node):
    """node with every repeat's optional copies unbounded and atomic groups
    as plain groups (each matches a superset of what it replaces), or None
    when it holds a look-around or a back-reference."""
    kind = node[0]
    if kind == "rep":
        sub = _unbounded(node[1])
        if sub is None:
            return None
        mn, mx = node[2], node[3]
        return ("rep", sub, mn, None if mx is not None and mx > mn else mx) + tuple(node[4:])
    if kind in ("seq", "alt"):
        kids = [_unbounded(c) for c in node[1]]
        return None if any(k is None for k in kids) else (kind, kids)
    if kind in ("group", "atomic"):
        sub = _unbounded(node[1])
        return None if sub is None else ("group", sub, node[2] if kind == "group" else None)
    if kind in ("set", "anchor"):
        return node
    return None


def wide_expr(pattern: str, mods: str) -> bytes | None:
    """The Hyperscan expression of a Perl regex's wide form (module
    docstring) for a joined buffer (perlre.joined_buffer): it matches there
    wherever some subject holds a match of the regex; None when there is
    no such form (look-arounds, back-references, an expression Hyperscan
    would not take exactly, one that may match empty)."""
    tree = perlre._parse(pattern, mods)
    if tree is None:
        return None
    wide = _unbounded(perlre._joined(tree, True, True, []))
    if wide is None or perlre._min_len(wide) < 1:
        return None
    try:
        em = resyntax.emit(wide, "hs")
    except (resyntax.Unsupported, RecursionError):
        return None
    return em.pattern if em.exact else None


def wide_gate(pattern: str, mods: str, gate_pattern: bytes,
              cache_dir: str | None = None) -> HsGate | None:
    """The wide gate of a Perl regex (module docstring) as an HsGate whose
    pattern is gate_pattern (the rule's RE2 form the gate stands before),
    or None (no wide form, or Hyperscan refuses it: remembered in
    cache_dir)."""
    expr = wide_expr(pattern, mods)
    if expr is None:
        return None
    db = cached_database(b"wide\0" + expr, lambda: _compile_exprs([expr]), cache_dir,
                         _WIDE_PREFIX, WIDE_SPARE)
    return None if db is None else HsGate(gate_pattern, db)


def hs_gate(pattern: bytes, cache_dir: str | None = None) -> HsGate | None:
    """The Hyperscan form of an RE2 gate pattern (module docstring), or None."""
    db = cached_database(pattern, lambda: _compile(pattern), cache_dir, _PREFIX)
    return None if db is None else HsGate(pattern, db)


class HsGate:
    """contains(data): does the RE2 gate pattern match data (ASCII data:
    the pieces are exact there), from one Hyperscan scan stopped at the
    first report (a scratch per thread)."""

    def __init__(self, pattern: bytes, db):
        self.pattern = pattern
        self.db = db
        self._local = threading.local()

    def contains(self, data: bytes) -> bool:
        loc = self._local
        sc = getattr(loc, "scratch", None)
        if sc is None:
            sc = loc.scratch = hs.Scratch(self.db)
        hits: set = set()
        try:
            self.db.scan(data, _eng.on_first_match, 0, hits, sc)
        except hs.ScanTerminated:
            pass
        return bool(hits)

    def subjects(self, data: bytes, subjects: list[bytes]) -> list[bytes]:
        """The subjects of the joined buffer data (perlre.joined_buffer of
        subjects) holding a report end of one scan of data, or a separator
        next to one (hsdb.report_subjects): every subject contains()
        matches alone, and at most its neighbours besides (a joined form's
        match takes one subject and the separators around it)."""
        loc = self._local
        sc = getattr(loc, "scratch", None)
        if sc is None:
            sc = loc.scratch = hs.Scratch(self.db)
        flat: list = []
        self.db.scan(data, _eng.on_match_end, 0, flat, sc)
        if not flat:
            return []
        lens = [len(x) for x in subjects]
        ks: set[int] = set()
        for i in set(flat[::2]):
            ks.update(_eng.report_subjects([(flat, None)], i, lens))
        return [subjects[k] for k in sorted(ks)]


class MixedGate:
    """contains(data) for any data: the RE2 gate rx, whose ASCII
    restriction's Hyperscan form is hs (an HsGate).  A match of the
    restriction is one of rx (its classes only lose bytes >= 0x80, its
    assertions are the same), and a match of rx that holds no byte >= 0x80
    is one of the restriction; a match lies inside one subject.  So: hs
    matches, or rx matches the joined subjects holding a byte >= 0x80
    (those of a message in a non-Latin script are often few)."""

    def __init__(self, hs_gate: HsGate, rx):
        self.hs = hs_gate
        self.rx = rx
        self.pattern = rx.pattern

    def contains(self, data: bytes) -> bool:
        if self.hs.contains(data):
            return True
        if data.isascii():
            return False
        subs = [s for s in data.split(b"\x00") if s and not s.isascii()]
        return bool(subs) and bool(self.rx.contains(perlre.joined_buffer(subs)))
