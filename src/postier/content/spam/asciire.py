"""A Hyperscan expression restricted to ASCII input.

    ascii_only(rb"(?:[Nn\\xcd]|\\xc3[\\x91\\xb1])[Oo0]")  -> rb"[\\x4e\\x6e][\\x30\\x4f\\x6f]"

On a subject made of bytes below 0x80 only (most rendered message bodies),
an expression matches exactly where its ASCII restriction matches: every
character class loses its bytes >= 0x80, and a branch, group or repeat
that needs such a byte is dropped (a repeat of it allowed zero times
becomes empty).  SpamAssassin's fuzzy-word rules are mostly alternatives
of UTF-8 and Latin-1 look-alikes, so their restrictions are a fraction of
their size and Hyperscan scans them several times faster
(hsdb.AreaDatabase's `ascii_long` databases, used when the scanned data
is ASCII).

The expression is parsed with Python's own regex parser (the translated
Hyperscan expressions of postier.content.spam.perlre use \\xNN escapes,
classes, non-capturing groups, counted repeats and the \\b \\B ^ $ \\A
assertions, which mean the same in both syntaxes) and written back with
explicit byte classes.  Anything else (flags, back references,
look-arounds, possessive repeats, `{,n}`, a syntax Python does not know)
returns the expression unchanged: still right, just not smaller.

Parameters read: none.
"""

from __future__ import annotations

try:
    import re._constants as _K
    import re._parser as _P
except ImportError:         # Python < 3.11
    import sre_constants as _K  # type: ignore[no-redef]
    import sre_parse as _P  # type: ignore[no-redef]

VERSION = 1     # part of hsdb's cache key: bump when a restriction changes


class _Bail(Exception):
    """The expression holds something ascii_only does not rewrite."""


_NONE = None        # "cannot match an ASCII subject"
_ASCII = frozenset(range(128))
_ALL = frozenset(range(256))
_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_CATS = {
    _K.CATEGORY_DIGIT: frozenset(range(48, 58)),
    _K.CATEGORY_SPACE: frozenset(b" \t\n\r\f\v"),
    _K.CATEGORY_WORD: _WORD,
}
_CATS[_K.CATEGORY_NOT_DIGIT] = _ALL - _CATS[_K.CATEGORY_DIGIT]
_CATS[_K.CATEGORY_NOT_SPACE] = _ALL - _CATS[_K.CATEGORY_SPACE]
_CATS[_K.CATEGORY_NOT_WORD] = _ALL - _WORD
_AT = {_K.AT_BEGINNING: "^", _K.AT_END: "$", _K.AT_BOUNDARY: r"\b",
       _K.AT_NON_BOUNDARY: r"\B", _K.AT_BEGINNING_STRING: r"\A"}
_REPEATS = (_K.MAX_REPEAT, _K.MIN_REPEAT)


def _byte_set(items) -> frozenset:
    s: set[int] = set()
    neg = False
    for op, av in items:
        if op is _K.NEGATE:
            neg = True
        elif op is _K.LITERAL:
            s.add(av)
        elif op is _K.RANGE:
            s.update(range(av[0], av[1] + 1))
        elif op is _K.CATEGORY and av in _CATS:
            s |= _CATS[av]
        else:
            raise _Bail(op)
    if max(s, default=0) > 255:
        raise _Bail("not a byte")
    return _ALL - s if neg else frozenset(s)


def _class(s) -> str:
    b = sorted(s)
    if len(b) == 1:
        return f"\\x{b[0]:02x}"
    out = []
    i = 0
    while i < len(b):
        j = i
        while j + 1 < len(b) and b[j + 1] == b[j] + 1:
            j += 1
        out.append(f"\\x{b[i]:02x}" if i == j else f"\\x{b[i]:02x}-\\x{b[j]:02x}")
        i = j + 1
    return "[" + "".join(out) + "]"


def _seq(sub) -> str | None:
    out = []
    for op, av in sub:
        r = _item(op, av)
        if r is _NONE:
            return _NONE
        out.append(r)
    return "".join(out)


def _item(op, av) -> str | None:
    if op is _K.LITERAL:
        if av > 255:
            raise _Bail("not a byte")
        return _NONE if av >= 128 else f"\\x{av:02x}"
    if op is _K.NOT_LITERAL:
        return _class(_ASCII - {av})
    if op is _K.ANY:                    # no DOTALL: not a newline
        return _class(_ASCII - {10})
    if op is _K.IN:
        s = _byte_set(av) & _ASCII
        return _class(s) if s else _NONE
    if op is _K.SUBPATTERN:
        _gid, add, dele, sub = av
        if add or dele:
            raise _Bail("scoped flags")
        r = _seq(sub)
        return _NONE if r is _NONE else "(?:" + r + ")"
    if op is _K.BRANCH:
        alts = [r for r in (_seq(s) for s in av[1]) if r is not _NONE]
        return "(?:" + "|".join(alts) + ")" if alts else _NONE
    if op in _REPEATS:
        lo, hi, sub = av
        r = _seq(sub)
        if r is _NONE:
            return _NONE if lo > 0 else ""
        if hi is _K.MAXREPEAT:
            q = "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
        elif lo == 0 and hi == 1:
            q = "?"
        elif lo == hi:
            q = f"{{{lo}}}"
        else:
            q = f"{{{lo},{hi}}}"
        return "(?:" + r + ")" + q
    if op is _K.AT and av in _AT:
        return _AT[av]
    raise _Bail(op)


def ascii_only(expr: bytes) -> bytes | None:
    """The expression restricted to ASCII subjects (see the module
    docstring); None when it cannot match any ASCII subject."""
    if b"{," in expr:
        return expr         # PCRE reads "{,n}" as text, Python as a repeat
    try:
        p = _P.parse(expr.decode("latin-1"), 0)
        if p.state.flags & ~_K.SRE_FLAG_UNICODE:
            return expr
        r = _seq(list(p))
    except (_Bail, RecursionError, ValueError, OverflowError, TypeError, _K.error):
        return expr
    return None if r is _NONE else r.encode("latin-1")
