"""Atom gates: a cheaper first test for a counted-group family gate.

A family gate of a line area (engine._family_gates) is one RE2 search of
(?:X){n} on the joined buffer (SpamAssassin's __FILL_THIS_FORM_* pairs:
X = <FF_YOUR><FF_ALL><FF_SUFFIX><separator>, n = 3).  On a first pass
that search is costly (~60 us per body: RE2 builds DFA states for the
unanchored search over every new text) and it fails on ~94% of bodies.

An atom gate answers the same question (same answer on every buffer)
with less work.  X is a sequence of items; the atom is its biggest item
that cannot match empty, A, such that the rest of X after it, T, cannot
match empty either (<FF_ALL>: the form field names).  Every match of
(?:X){n} holds, in its first repetition, a match of A at [s, e) followed
by a match of T X{n-1} starting at e, whose first byte is one of T's
first bytes F.  So:

1. Hyperscan scans the buffer for A.[F] (a superset form when Hyperscan
   does not take the exact one: every true match end is reported).  A
   subject with fewer than n report ends cannot hold a match, nor can its
   last n-1 report ends start one.
2. At each other report end e+1, the RE2 regex T X{n-1} is tried
   anchored at e (a short anchored DFA walk, few states; on a slice of
   the subject from e-1, whose first byte gives \\b its context).  None
   matches: the gate fails.
3. One matches: when the atom's form is exact and the items of X before
   A may all match empty, A T X{n-1} is a match of (?:X){n}: the gate
   passes (__FILL_THIS_FORM_LONG2/SHORT2); else the gate's own regex
   answers on that subject (rare; LONG1/SHORT1, whose list number comes
   before A).

On the corpus this is ~0.1 ms less CPU per message on a first pass than
the two family gates' RE2 searches (their DFA states are built for every
new text), for one more Hyperscan database of ~200 kB (the two families
share A, hence one scan: AtomScan).

Only sequences without anchors other than word boundaries, look-arounds,
back-references or atomic groups get an atom gate (atom_gate returns
None otherwise and the family gate stays a plain RE2 search).

Parameters read: none.
"""

from __future__ import annotations

import threading
from bisect import bisect_right

import hyperscan as hs
import re2 as _re2

from postier import native
from postier.content.spam import gatehs, perlre
from postier.maps import resyntax

_eng = native.load("spameng")

ATOM_SPARE = 8          # spam-atomgate-* files kept besides the one in use (refusals too)
ATOM_MEM = 64 << 20     # RE2 budget of the anchored rest regex (a cap: states are built as needed)
_SAFE_ANCHORS = frozenset({"b", "B"})


def _plain(node) -> bool:
    """No anchor but \\b / \\B, no look-around, back-reference or atomic group."""
    kind = node[0]
    if kind == "set":
        return True
    if kind == "anchor":
        return node[1] in _SAFE_ANCHORS
    if kind in ("seq", "alt"):
        return all(_plain(c) for c in node[1])
    if kind in ("group", "rep"):
        return _plain(node[1])
    return False


def _sequence(tree):
    """The items of a tree that is a sequence (under plain groups), or None."""
    while tree[0] == "group":
        tree = tree[1]
    if tree[0] != "seq":
        return None
    return tree, list(tree[1])


def atom_gate(x: str, mods: str, n: int, rx, cache_dir: str | None = None) -> AtomGate | None:
    """The atom gate of the family gate rx = (?:X){n} (module docstring),
    or None when X has no usable atom or a form does not compile (its
    Hyperscan database kept in cache_dir: _scan_for)."""
    tree = perlre._parse(x, mods)
    if tree is None or n < 1 or not _plain(tree):
        return None
    seq = _sequence(tree)
    if seq is None:
        return None
    xtree, items = seq
    best = None
    for i, it in enumerate(items):
        if perlre._min_len(it) < 1:
            continue
        rest = ("seq", items[i + 1:])
        if perlre._min_len(rest) < 1:
            continue
        fb = perlre.edge_bytes(rest)
        if fb is None or not fb - {perlre.SEP}:
            continue
        try:
            size = len(resyntax.emit(it, "hs").pattern)
        except resyntax.Unsupported:
            continue
        if best is None or size > best[0]:
            best = (size, i, fb - {perlre.SEP})
    if best is None:
        return None
    _size, i, fb = best
    # a report is a true match of the atom, and the items before it may
    # all match empty: an anchored match of the rest is a match of the gate
    exact = all(perlre._min_len(it) == 0 and _anchorless(it) for it in items[:i])
    try:
        found = _atom_exprs(("seq", [items[i], ("set", fb)]), cache_dir)
        if found is None:
            return None
        exprs, atom_exact = found
        scan = _scan_for(exprs, cache_dir)
        rest = ("seq", items[i + 1:] + ([("rep", xtree, n - 1, n - 1, True, False)]
                                        if n > 1 else []))
        changed: list = []
        em = resyntax.emit(perlre._joined(rest, False, False, changed), "re2")
        if changed:
            return None
        # anchored at a slice's second byte (the first one: \b's context)
        rrx = _re2._compile(b"\\A[\\x00-\\xff](?:" + em.pattern + b")", 0, ATOM_MEM)
    except Exception:  # noqa: BLE001 - hs.error, Unsupported, pyre2's own errors: no atom gate
        return None
    return AtomGate(rx, scan, rrx, n, exact and atom_exact)


def _anchorless(node) -> bool:
    kind = node[0]
    if kind == "anchor":
        return False
    if kind in ("seq", "alt"):
        return all(_anchorless(c) for c in node[1])
    if kind in ("group", "rep"):
        return _anchorless(node[1])
    return True


def _atom_exprs(tree, cache_dir: str | None = None) -> tuple[tuple[bytes, ...], bool] | None:
    """(Hyperscan expressions whose union matches tree on a joined buffer,
    or a superset of it, ending where tree's matches end; whether they
    match exactly tree), or None when the joined form is not tree."""
    changed: list = []
    tree = perlre._joined(tree, False, False, changed)
    if changed:
        return None
    tree = perlre._widen(tree, perlre.WIDE_REPEAT, changed)
    em = resyntax.emit(tree, "hs")
    exact = em.exact and not changed
    if exact:
        # exact pieces (a split of the biggest alternation), if Hyperscan takes them
        trees = (perlre._split_trees(tree, len(em.pattern), 4)
                 if len(em.pattern) > perlre.SPLIT_TARGET else [tree])
        ems = [resyntax.emit(t, "hs") for t in trees]
        exprs = tuple(e.pattern for e in ems)
        if all(e.exact for e in ems):
            try:
                _scan_for(exprs, cache_dir)
                return exprs, True
            except hs.error:
                pass
    if len(em.pattern) > perlre.BIG_EXPR:
        tree = perlre._simplify(tree, changed)
        em = resyntax.emit(tree, "hs")
    trees = (perlre._split_trees(tree, len(em.pattern), 4)
             if len(em.pattern) > perlre.SPLIT_TARGET else [tree])
    return tuple(resyntax.emit(t, "hs").pattern for t in trees), False


def _scan_for(exprs: tuple[bytes, ...], cache_dir: str | None = None) -> AtomScan:
    """The shared scan of these expressions (raises hs.error when Hyperscan
    does not take them).  Its database (~0.1 s of CPU) is kept in cache_dir
    (spam-atomgate-HASH, as gatehs.cached_database keeps them; a refusal
    too), so that a new process does not compile it again."""
    scan = _SCANS.get(exprs)
    if scan is None:
        key = b"".join(b"%d:" % len(e) + e for e in exprs)
        db = gatehs.cached_database(key, lambda: _compile(exprs), cache_dir, "spam-atomgate-",
                                    ATOM_SPARE)
        if db is None:
            raise hs.error("Hyperscan does not take the atom's expressions")
        scan = AtomScan(db)
        if len(_SCANS) >= _SCANS_MAX:
            _SCANS.clear()
        _SCANS[exprs] = scan
    return scan


class AtomScan:
    """The Hyperscan database of one atom, shared by the gates that use it
    (__FILL_THIS_FORM_LONG1/SHORT1 and LONG2/SHORT2 have the same atom):
    ends(data) scans a buffer once for all of them (the last buffer's
    report ends are kept, per thread)."""

    def __init__(self, db):
        self.db = db
        self._local = threading.local()

    def ends(self, data: bytes) -> list:
        loc = self._local
        last = getattr(loc, "last", None)
        if last is not None and last[0] is data:
            return last[1]
        sc = getattr(loc, "scratch", None)
        if sc is None:
            sc = loc.scratch = hs.Scratch(self.db)
        flat: list = []
        self.db.scan(data, _eng.on_match_end, 0, flat, sc)
        ends = sorted(set(flat[1::2])) if flat else flat
        loc.last = (data, ends)
        return ends


def _compile(exprs: tuple[bytes, ...]):
    """The atom's Hyperscan database, or None when Hyperscan refuses it."""
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    try:
        db.compile(expressions=list(exprs), ids=[0] * len(exprs), elements=len(exprs),
                   flags=[0] * len(exprs))
    except hs.error:
        return None
    return db


_SCANS: dict[tuple, AtomScan] = {}     # atom expressions -> their scan (rule reloads: cleared when full)
_SCANS_MAX = 16


class AtomGate:
    """A family gate's RE2 regex behind its atom test (module docstring):
    contains(data) is rx.contains(data) for a joined buffer.  exact: an
    anchored match of the rest after a report is a match of the gate (the
    atom's expressions are exact and the items before it may match empty),
    else the gate's regex confirms on that subject."""

    def __init__(self, rx, scan: AtomScan, rest, n: int, exact: bool):
        self.rx = rx
        self.pattern = rx.pattern
        self.scan = scan
        self.rest = rest
        self.n = n
        self.exact = exact

    def contains(self, data: bytes) -> bool:
        return self._walk(data, True) is not None

    def subjects(self, data: bytes, subjects: list[bytes]) -> list[bytes]:
        """The subjects of the joined buffer data (perlre.joined_buffer of
        subjects) that contains() matches alone, from data's one scan: a
        report of the atom lies in one subject, and the walks after it see
        that subject's bytes and the separators around it, as in the
        subject's own joined buffer."""
        ends = self._walk(data, False)
        if not ends:
            return []
        out = []
        pos = 0             # the separator before subjects[k]
        k = 0
        for e in ends:
            while pos + len(subjects[k]) + 1 < e:
                pos += len(subjects[k]) + 1
                k += 1
            out.append(subjects[k])
        return out

    def _walk(self, data: bytes, first: bool) -> list | None:
        """first: a report end of the first subject where the gate matches,
        else None; not first: the report ends (one per subject) of all the
        subjects where it matches."""
        ends = self.scan.ends(data)
        later = self.n - 1      # atom ends a match holds after its first one
        m = len(ends)
        rest = self.rest.contains
        find = data.find
        out: list = []
        k = 0
        while k + later < m:
            # the subject holding ends[k] - 1 (a report end may be that
            # subject's end) and its reports ends[k:j]
            hi = find(b"\x00", ends[k] - 1)
            if hi < 0:
                hi = len(data)
            j = bisect_right(ends, hi, k)
            for e in ends[k:max(k, j - later)]:
                # the rest anchored at e - 1 (the atom's match ends there)
                if rest(data[e - 2:hi + 1]):
                    if not self.exact:
                        lo = data.rfind(b"\x00", 0, e - 1) + 1
                        if not self.rx.contains(perlre.joined_buffer([data[lo:hi]])):
                            break       # the subject is answered
                    if first:
                        return [e]
                    out.append(e)
                    break
            k = j
        return out if not first else None
