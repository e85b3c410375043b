"""Line-area subjects that hold a NUL byte: the stand-in byte that lets
Hyperscan scan them anyway.

    stand_in, unsafe = nul_plan(sources, cache_dir, "body")
    scanned = subject.replace(b"\\0", stand_in)   # for every rule not in unsafe

A line area (body, rawbody, uri) is scanned as one joined buffer whose
separator is NUL (perlre.joined_buffer); a subject holding a NUL would be
split there (postier.content.spam.engine Run._lines_slow takes those).
Scanning such a subject with each NUL replaced by a stand-in byte X is a
sound prefilter for a rule when every match of the rule's pattern on the
subject is still a match at the same place with X instead of NUL: its
joined form then reports the X-subject wherever the rule matches the
NUL-subject (the joined forms' premise on NUL-free subjects), and the rule
is confirmed on the original subject.  That holds when (rule's parse
tree, postier.maps.resyntax):

* X is ASCII, not a word byte, not a newline and has no case: anchors
  (^ $ \\A \\z \\Z), word boundaries and case folding see X as they see NUL;
* every byte set that takes NUL takes X too (a set that takes only X is a
  superset: harmless);
* inside a look-around, an atomic group or a possessive repeat (where a
  set taking more can lose a match), each set takes both or neither;
* back-references compare texts where NUL and X were swapped alike.

Rules whose tree does not parse, or break one of these, are `unsafe`:
they are confirmed on every NUL-holding subject.  nul_plan picks, among
STAND_INS, the byte with the fewest unsafe rules (on SpamAssassin 4.0.1's
rules \\x01, with none).  Parsing a rule set's patterns costs ~0.7 s, so
the plan is kept in the rule cache directory (hsdb.cached), keyed by the
area's pattern sources in order.

Parameters read: none (the cache directory comes from
spam_rules_cache_directory through postier.content.spam.scanner).
"""

from __future__ import annotations

import hashlib
import json

from postier.content.spam import perlre
from postier.content.spam.hsdb import cached

VERSION = 1
# the candidates: ASCII control bytes (no case, not word bytes) but newline
# and the other white space (SpamAssassin's [^\r\n] and \S take NUL, not them)
STAND_INS = bytes([*range(1, 9), *range(0x0E, 0x20), 0x7F])
_SPARE = 1          # cache files kept per area besides the current one


def _safe(node, x: int, strict: bool) -> bool:
    kind = node[0]
    if kind == "set":
        s = node[1]
        return (0 in s) == (x in s) if strict else (0 not in s or x in s)
    if kind in ("seq", "alt"):
        return all(_safe(c, x, strict) for c in node[1])
    if kind == "group":
        return _safe(node[1], x, strict)
    if kind == "rep":
        return _safe(node[1], x, strict or bool(node[5]))
    if kind in ("atomic", "look"):
        return _safe(node[1], x, True)
    if kind in ("anchor", "backref"):
        return True
    return False        # a node this analysis does not know


def stand_in_safe(tree, x: int) -> bool:
    """Does every match of the pattern (its parse tree; None: unknown) on
    a subject holding NULs stay a match with each NUL replaced by x (a
    byte of STAND_INS)?  See the module docstring."""
    if tree is None:
        return False
    try:
        return _safe(tree, x, False)
    except (IndexError, TypeError, RecursionError):
        return False


def _plan(sources: list[tuple[str, str]]) -> tuple[int, list[int]]:
    trees = [perlre._parse(pat, mods) for pat, mods in sources]
    best: tuple[int, list[int]] | None = None
    for x in STAND_INS:
        unsafe = [i for i, t in enumerate(trees) if not stand_in_safe(t, x)]
        if best is None or len(unsafe) < len(best[1]):
            best = (x, unsafe)
        if not unsafe:
            break
    assert best is not None
    return best


def _dump(plan: tuple[int, list[int]]) -> bytes:
    return json.dumps({"x": plan[0], "unsafe": plan[1]}).encode()


def _load(n: int):
    def load(data: bytes) -> tuple[int, list[int]] | None:
        try:
            d = json.loads(data)
            x, unsafe = d["x"], d["unsafe"]
        except (ValueError, KeyError, TypeError):
            return None
        if (not isinstance(x, int) or x not in STAND_INS or not isinstance(unsafe, list)
                or not all(isinstance(i, int) and 0 <= i < n for i in unsafe)):
            return None
        return x, unsafe
    return load


def nul_plan(sources: list[tuple[str, str]], cache_dir: str | None = None,
             label: str = "") -> tuple[bytes, frozenset[int]]:
    """(stand-in byte, indexes of the unsafe rules) for a line area's rules,
    given as their (pattern, modifiers) in the area's order; kept in
    cache_dir (None: computed)."""
    h = hashlib.sha256(f"nulsubject-{VERSION}\0".encode())
    for pat, mods in sources:
        h.update(pat.encode("utf-8", "surrogatepass") + b"\0" + mods.encode() + b"\0\0")
    plan = cached(cache_dir, f"spam-nul-{label}-", h.hexdigest()[:40],
                  lambda: _plan(sources), _SPARE, load=_load(len(sources)), dump=_dump)
    if plan is None:        # (a refusal file: never written by this module)
        plan = _plan(sources)
    return bytes([plan[0]]), frozenset(plan[1])
