"""cidr: lookup tables with Postfix's semantics (dict_cidr.c, cidr_match.c).

    192.168.1.0/24      result        network (host bits must be zero)
    10.0.0.1            result        one address
    [2001:db8::]/32     result        IPv6, brackets optional
    !10.0.0.0/8         result        matches addresses NOT in the network
    if 172.16.0.0/12    ... endif     nested blocks, `if !net` too

The FIRST matching entry in file order wins (not the longest prefix).  A
pattern with a ':' is IPv6, otherwise IPv4; an entry only applies to keys of
its own family, and a key that inet_pton() does not accept (leading zeros,
brackets, scope ids, blanks) matches nothing.  Bad lines are skipped with
Postfix's warnings (`non-null host address bits in "192.168.1.5/24",
perhaps you should use "192.168.1.0/24" instead`, `bad mask length`, `no
lookup result`, `ENDIF without IF`, `IF has no matching ENDIF`, ...).

Parameters read: none.
"""

from __future__ import annotations

import builtins
import socket
from collections.abc import Callable

from postier.errors import MapError
from postier.maps.regexp import isspace, logical_lines, text
from postier.maps.result import check_result

Warn = Callable[[str], None]

_SPACE = b" \t\n\v\f\r"
_MATCH, _IF, _ENDIF = 1, 2, 3


def _pton(family: int, s: bytes) -> bytes | None:
    try:
        return socket.inet_pton(family, s.decode("latin-1"))
    except (OSError, ValueError):
        return None


def _ntop(family: int, b: bytes) -> str:
    return socket.inet_ntop(family, b)


class _Entry:
    __slots__ = ("op", "family", "net", "mask", "match", "value", "lineno", "end")

    def __init__(self, op: int, lineno: int):
        self.op = op
        self.lineno = lineno
        self.family = 0
        self.net = 0
        self.mask = 0
        self.match = True
        self.value: str | None = None
        self.end = -1


class _Bad(Exception):
    pass


def _parse_pattern(e: _Entry, pattern: bytes) -> None:
    """cidr_match_parse(): address or address/len, optional [] around."""
    mask_search = pattern
    if pattern.startswith(b"["):
        pattern = pattern[1:]
        close = pattern.find(b"]")
        if close < 0:
            raise _Bad(f'missing \']\' character after "[{text(pattern)}"')
        after = pattern[close + 1:]
        pattern = pattern[:close]
        if not after.startswith(b"/"):
            if after:
                raise _Bad(f'garbage after "[{text(pattern)}]"')
            mask_search = pattern
        else:
            mask_search = after
    else:
        mask_search = pattern
    slash = mask_search.find(b"/")
    family = socket.AF_INET6 if b":" in pattern else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    if slash >= 0:
        mask = mask_search[slash + 1:]
        if mask_search is pattern:
            pattern = pattern[:slash]
        if not mask or not mask.isdigit() or not mask.isascii():
            raise _Bad(f'bad mask value in "{text(pattern)}/{text(mask)}"')
        # atoi() into an unsigned char, as cidr_match.c stores it
        shift = int(mask) & 0xFF if len(mask) < 10 else None
        if shift is None or shift > bits:
            raise _Bad(f'bad mask length in "{text(pattern)}/{text(mask)}"')
        raw = _pton(family, pattern)
        if raw is None:
            raise _Bad(f'bad network value in "{text(pattern)}/{text(mask)}"')
        net = int.from_bytes(raw, "big")
        maskbits = ((1 << bits) - 1) ^ ((1 << (bits - shift)) - 1)
        if net & ~maskbits:
            fixed = (net & maskbits).to_bytes(bits // 8, "big")
            raise _Bad(f'non-null host address bits in "{text(pattern)}/{text(mask)}", '
                       f'perhaps you should use "{_ntop(family, fixed)}/{shift}" instead')
    else:
        raw = _pton(family, pattern)
        if raw is None:
            raise _Bad(f'bad address pattern: "{text(pattern)}"')
        net = int.from_bytes(raw, "big")
        maskbits = (1 << bits) - 1
    e.family = family
    e.net = net
    e.mask = maskbits


class CidrTable:
    """An opened cidr: table."""

    def __init__(self, name: str, warn: Warn, data: bytes | None = None):
        self.type = "cidr"
        self.name = name
        self.warn = warn
        if data is None:
            try:
                with builtins.open(name, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise MapError(f"open {name}: {e.strerror or e}") from None
        self._entries: list[_Entry] = []
        stack: list[int] = []
        for lineno, line in logical_lines(data, name, warn):
            nul = line.find(b"\0")
            if nul >= 0:
                line = line[:nul]
            try:
                e = self._parse_rule(line, lineno, len(stack))
            except _Bad as why:
                warn(f"cidr map {name}, line {lineno}: {why}: skipping this rule")
                continue
            idx = len(self._entries)
            self._entries.append(e)
            if e.op == _IF:
                stack.append(idx)
            elif e.op == _ENDIF:
                self._entries[stack.pop()].end = idx
        while stack:
            warn(f"cidr map {name}, line {self._entries[stack.pop()].lineno}: "
                 "IF has no matching ENDIF")

    @staticmethod
    def _parse_rule(p: bytes, lineno: int, nesting: int) -> _Entry:
        low = p[:5].lower()
        if low[:2] == b"if" and (len(p) == 2 or not p[2:3].isalnum()):
            q = p[2:]
            match = True
            i = 0
            while i < len(q):
                if q[i] == 0x21:
                    match = not match
                elif not isspace(q[i]):
                    break
                i += 1
            q = q[i:]
            if not q:
                raise _Bad("no address pattern")
            e = _Entry(_IF, lineno)
            _parse_pattern(e, q.rstrip(_SPACE))
            e.match = match
            return e
        if low == b"endif" and (len(p) == 5 or not p[5:6].isalnum()):
            if p[5:].strip(_SPACE):
                raise _Bad("garbage after ENDIF")
            if nesting == 0:
                raise _Bad("ENDIF without IF")
            return _Entry(_ENDIF, lineno)
        match = True
        i = 0
        while i < len(p):
            if p[i] == 0x21:
                match = not match
            elif not isspace(p[i]):
                break
            i += 1
        p = p[i:]
        j = 0
        while j < len(p) and not isspace(p[j]):
            j += 1
        pattern = p[:j]
        value = p[j:].lstrip(_SPACE).rstrip(_SPACE)
        if not pattern:
            raise _Bad("no address pattern")
        if not value:
            raise _Bad("no lookup result")
        e = _Entry(_MATCH, lineno)
        _parse_pattern(e, pattern)
        e.match = match
        e.value = text(value)
        return e

    def lookup(self, key: str) -> str | None:
        """The value of the first matching entry, or None."""
        kb = key.encode("utf-8", "surrogateescape")
        nul = kb.find(b"\0")
        if nul >= 0:
            kb = kb[:nul]
        family = socket.AF_INET6 if b":" in kb else socket.AF_INET
        raw = _pton(family, kb)
        if raw is None:
            return None
        addr = int.from_bytes(raw, "big")
        entries = self._entries
        i = 0
        n = len(entries)
        while i < n:
            e = entries[i]
            if e.op == _MATCH:
                if e.family == family and ((addr & e.mask) == e.net) == e.match:
                    return check_result("cidr", self.name, key, e.value, self.warn)
            elif e.op == _IF:
                if not (e.family == family and ((addr & e.mask) == e.net) == e.match):
                    if e.end < 0:
                        return None
                    i = e.end
            i += 1
        return None


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn) -> CidrTable:  # noqa: A001
    """Open a cidr: table (fold is ignored)."""
    del ttype, fold
    return CidrTable(name, warn)
