"""Pure-Python twin of postier._native.pcre2call: libpcre2-8's pcre2_match_8
called through ctypes, from its address.

    m = Pcre2Call(fn, code, md, ov, ncap, error)   # addresses from postier.maps.reflib
    m.matches(data)          # True/False: a match anywhere in data (no offsets built)
    m.matches_retry(data)    # the same; after an error (a JIT stack or match
                             # limit) asks the interpreter (PCRE2_NO_JIT) once more
    m.count(data, limit)     # non-overlapping matches (Perl's while //g), at most limit (0: all)
    m.spans(data)            # None, or (start, end) of group 0 and each capture
                             # group, (-1, -1) for an unset one

fn is pcre2_match_8's address, code/md/ov the compiled pattern's, its match
data block's and that block's ovector's addresses (reflib.Pcre2Regex owns
them: a Pcre2Call is valid while its Pcre2Regex lives), ncap the capture
count, error(rc) builds the exception an error code raises.  Reads no
main.cf parameters.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_NOMATCH = -1
_NO_JIT = 0x00002000
_UNSET = ctypes.c_size_t(-1).value
_PROTO = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                          ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)


class Pcre2Call:
    """pcre2_match_8 on one compiled pattern (see the module docstring)."""

    __slots__ = ("_fn", "_code", "_md", "_ov", "ncap", "_error")

    def __init__(self, fn: int, code: int, md: int, ov: int, ncap: int,
                 error: Callable[[int], Exception]):
        if not fn or not code or not md or not ov:
            raise ValueError("Pcre2Call: a null address")
        self._fn = _PROTO(fn)
        self._code = code
        self._md = md
        self._ov = ctypes.cast(ov, ctypes.POINTER(ctypes.c_size_t))
        self.ncap = ncap
        self._error = error

    def _check(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"Argument 'data' has incorrect type (expected bytes, got "
                            f"{type(data).__name__})")

    def matches(self, data: bytes) -> bool:
        """A match anywhere in data?  An error code raises error(rc)."""
        self._check(data)
        rc = self._fn(self._code, data, len(data), 0, 0, self._md, None)
        if rc < 0 and rc != _NOMATCH:
            raise self._error(rc)
        return rc >= 0

    def matches_retry(self, data: bytes) -> bool:
        """matches(data), asking the interpreter (PCRE2_NO_JIT) after an
        error; a second error raises error(rc)."""
        self._check(data)
        rc = self._fn(self._code, data, len(data), 0, 0, self._md, None)
        if rc < 0 and rc != _NOMATCH:
            rc = self._fn(self._code, data, len(data), 0, _NO_JIT, self._md, None)
            if rc < 0 and rc != _NOMATCH:
                raise self._error(rc)
        return rc >= 0

    def count(self, data: bytes, limit: int = 0) -> int:
        """Non-overlapping matches (each search starts where the last match
        ended, one byte further after an empty one), at most limit when it
        is not 0.  An error code raises error(rc)."""
        self._check(data)
        fn, code, md, ov = self._fn, self._code, self._md, self._ov
        n = pos = 0
        end = len(data)
        while pos <= end:
            rc = fn(code, data, end, pos, 0, md, None)
            if rc == _NOMATCH:
                break
            if rc < 0:
                raise self._error(rc)
            s, e = ov[0], ov[1]
            n += 1
            if limit and n >= limit:
                break
            pos = e if e > s else e + 1
        return n

    def spans(self, data: bytes) -> list[tuple[int, int]] | None:
        """None on no match, else [(start, end)] for group 0 and each capture
        group, (-1, -1) for an unset one.  An error code raises error(rc)."""
        self._check(data)
        rc = self._fn(self._code, data, len(data), 0, 0, self._md, None)
        if rc == _NOMATCH:
            return None
        if rc < 0:
            raise self._error(rc)
        ov = self._ov
        out = []
        for i in range(self.ncap + 1):
            s = ov[2 * i]
            out.append((-1, -1) if s == _UNSET else (s, ov[2 * i + 1]))
        return out
