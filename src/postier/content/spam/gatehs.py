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
