"""The regex libraries Postfix itself uses, loaded with ctypes when present.

Postfix's `regexp:` tables use the C library's POSIX regcomp()/regexec()
(glibc on Debian), and `pcre:` tables use libpcre2-8.  postier matches with
Hyperscan and RE2 (see postier.maps.patterns), but asks these reference
libraries three things when they are loadable, so that it answers exactly
like Postfix on the same system:

* compile errors, with the library's own wording (`Unmatched ( or \\(`,
  `error in regex at offset 1: missing closing parenthesis`);
* the number of capture groups (for "out of range replacement index");
* capture offsets of the one rule that matched, when its result uses $n
  (glibc's POSIX submatch rules are its own: neither Perl's leftmost-first
  nor textbook leftmost-longest), and a confirmation engine for constructs
  neither RE2 nor Python `re` can run.

A Pcre2Regex matches through its `call` (postier._native.pcre2call:
pcre2_match_8 called from compiled code on the pattern's addresses, no ctypes
argument conversion per match; the pure twin uses ctypes).

Everything is byte-based and runs in the "C" locale, as Postfix does (it
never calls setlocale()), whatever LC_CTYPE this Python process has.  When a
library is missing, `posix_available()` / `pcre2_available()` say so and the
callers fall back to their own parser and engines.

Parameters read: none.  Environment: POSTIER_NO_REFLIB=1 disables both
libraries (tests use it to exercise the fallbacks).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

REG_EXTENDED = 1
REG_ICASE = 2
REG_NEWLINE = 4
REG_NOSUB = 8
REG_NOMATCH = 1

PCRE2_CASELESS = 0x00000008
PCRE2_DOLLAR_ENDONLY = 0x00000010
PCRE2_DOTALL = 0x00000020
PCRE2_EXTENDED = 0x00000080
PCRE2_MULTILINE = 0x00000400
PCRE2_UNGREEDY = 0x00040000
PCRE2_ANCHORED = 0x80000000
_PCRE2_INFO_CAPTURECOUNT = 4
_PCRE2_ERROR_NOMATCH = -1

_REGEX_T_SIZE = 256          # glibc x86_64 regex_t is 64 bytes; generous
_RE_NSUB_OFFSET = 6 * ctypes.sizeof(ctypes.c_void_p)   # glibc: 6 pointer-size fields first
_LC_ALL_MASK = 0x1FBF        # glibc: every LC_*_MASK except LC_ALL's own bit


class RegexCompileError(Exception):
    """The reference library refused the pattern; str() is its message."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset


class RegexExecError(Exception):
    """Matching failed with an error (not "no match"); str() is the message."""


class _regmatch_t(ctypes.Structure):
    _fields_ = [("rm_so", ctypes.c_int), ("rm_eo", ctypes.c_int)]


_lock = threading.Lock()
_libc = None
_c_locale = None
_pcre2 = None
_loaded = False


def _disabled() -> bool:
    return os.environ.get("POSTIER_NO_REFLIB", "").strip().lower() in ("1", "yes", "true")


def _load() -> None:
    global _libc, _c_locale, _pcre2, _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        try:
            name = ctypes.util.find_library("c")
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "regcomp") and hasattr(libc, "newlocale") \
                    and hasattr(libc, "gnu_get_libc_version"):
                libc.regcomp.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
                libc.regcomp.restype = ctypes.c_int
                libc.regexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                         ctypes.POINTER(_regmatch_t), ctypes.c_int]
                libc.regexec.restype = ctypes.c_int
                libc.regerror.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                          ctypes.c_size_t]
                libc.regerror.restype = ctypes.c_size_t
                libc.regfree.argtypes = [ctypes.c_void_p]
                libc.regfree.restype = None
                libc.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
                libc.newlocale.restype = ctypes.c_void_p
                libc.uselocale.argtypes = [ctypes.c_void_p]
                libc.uselocale.restype = ctypes.c_void_p
                loc = libc.newlocale(_LC_ALL_MASK, b"C", None)
                if loc:
                    _libc, _c_locale = libc, loc
        except OSError:
            _libc = None
        try:
            name = ctypes.util.find_library("pcre2-8")
            lib = ctypes.CDLL(name) if name else None
            if lib is not None:
                sz = ctypes.c_size_t
                lib.pcre2_compile_8.argtypes = [ctypes.c_char_p, sz, ctypes.c_uint32,
                                                ctypes.POINTER(ctypes.c_int),
                                                ctypes.POINTER(sz), ctypes.c_void_p]
                lib.pcre2_compile_8.restype = ctypes.c_void_p
                lib.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p, sz]
                lib.pcre2_get_error_message_8.restype = ctypes.c_int
                lib.pcre2_pattern_info_8.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                                     ctypes.c_void_p]
                lib.pcre2_pattern_info_8.restype = ctypes.c_int
                lib.pcre2_match_data_create_from_pattern_8.argtypes = [ctypes.c_void_p,
                                                                       ctypes.c_void_p]
                lib.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
                lib.pcre2_match_8.argtypes = [ctypes.c_void_p, ctypes.c_char_p, sz, sz,
                                              ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p]
                lib.pcre2_match_8.restype = ctypes.c_int
                lib.pcre2_get_ovector_pointer_8.argtypes = [ctypes.c_void_p]
                lib.pcre2_get_ovector_pointer_8.restype = ctypes.POINTER(sz)
                lib.pcre2_code_free_8.argtypes = [ctypes.c_void_p]
                lib.pcre2_code_free_8.restype = None
                lib.pcre2_match_data_free_8.argtypes = [ctypes.c_void_p]
                lib.pcre2_match_data_free_8.restype = None
                _pcre2 = lib
        except (OSError, AttributeError):
            _pcre2 = None


def posix_available() -> bool:
    """True when the C library's POSIX regex (glibc) can be used."""
    if _disabled():
        return False
    _load()
    return _libc is not None


def pcre2_available() -> bool:
    """True when libpcre2-8 can be used."""
    if _disabled():
        return False
    _load()
    return _pcre2 is not None


class PosixRegex:
    """One regcomp()'d pattern.  Raises RegexCompileError with regerror()'s text."""

    __slots__ = ("_buf", "nsub", "_ok")

    def __init__(self, pattern: bytes, cflags: int):
        if not posix_available():
            raise RuntimeError("POSIX regex library not available")
        self._ok = False
        self._buf = ctypes.create_string_buffer(_REGEX_T_SIZE)
        old = _libc.uselocale(_c_locale)
        try:
            rc = _libc.regcomp(self._buf, pattern, cflags)
            if rc != 0:
                ebuf = ctypes.create_string_buffer(512)
                _libc.regerror(rc, self._buf, ebuf, 512)
                raise RegexCompileError(ebuf.value.decode("utf-8", "replace"))
        finally:
            _libc.uselocale(old)
        self._ok = True
        self.nsub = ctypes.c_size_t.from_buffer(self._buf, _RE_NSUB_OFFSET).value

    def search(self, data: bytes, nmatch: int = 0) -> list[tuple[int, int]] | None:
        """regexec(): None when there is no match, else nmatch (start, end)
        pairs, (-1, -1) for a group that did not participate."""
        n = max(nmatch, 0)
        pm = (_regmatch_t * max(n, 1))()
        old = _libc.uselocale(_c_locale)
        try:
            rc = _libc.regexec(self._buf, data, n, pm if n else None, 0)
        finally:
            _libc.uselocale(old)
        if rc == REG_NOMATCH:
            return None
        if rc != 0:
            ebuf = ctypes.create_string_buffer(512)
            _libc.regerror(rc, self._buf, ebuf, 512)
            raise RegexExecError(ebuf.value.decode("utf-8", "replace"))
        return [(pm[i].rm_so, pm[i].rm_eo) for i in range(n)]

    def __del__(self) -> None:
        if getattr(self, "_ok", False) and _libc is not None:
            _libc.regfree(self._buf)
            self._ok = False


def _pcre2_message(code: int) -> str:
    buf = ctypes.create_string_buffer(256)
    n = _pcre2.pcre2_get_error_message_8(code, buf, 256)
    if n > 0:
        return buf.value.decode("utf-8", "replace")
    return f"unexpected pcre2 error code {code}"


def pcre2_match_address() -> int:
    """The address of libpcre2-8's pcre2_match_8() for compiled callers
    (with Pcre2Regex.addresses), or 0 when the library is not available."""
    if not pcre2_available():
        return 0
    return ctypes.cast(_pcre2.pcre2_match_8, ctypes.c_void_p).value or 0


_pcre2call_mod = None


def _pcre2call():
    """postier._native.pcre2call (or its ctypes twin), imported once."""
    global _pcre2call_mod
    if _pcre2call_mod is None:
        from postier import native
        _pcre2call_mod = native.load("pcre2call")
    return _pcre2call_mod


def _exec_error(code: int) -> RegexExecError:
    """The exception a pcre2_match error code raises."""
    return RegexExecError(_pcre2_message(code))


class Pcre2Regex:
    """One pcre2_compile()'d pattern (no UTF, default tables: what Postfix does)."""

    __slots__ = ("_code", "_md", "_ov", "capture_count", "call")

    def __init__(self, pattern: bytes, options: int):
        if not pcre2_available():
            raise RuntimeError("libpcre2-8 not available")
        self._code = None
        self._md = None
        err = ctypes.c_int(0)
        off = ctypes.c_size_t(0)
        code = _pcre2.pcre2_compile_8(pattern, len(pattern), options, ctypes.byref(err),
                                      ctypes.byref(off), None)
        if not code:
            raise RegexCompileError(_pcre2_message(err.value), off.value)
        self._code = code
        cnt = ctypes.c_uint32(0)
        _pcre2.pcre2_pattern_info_8(code, _PCRE2_INFO_CAPTURECOUNT, ctypes.byref(cnt))
        self.capture_count = cnt.value
        self._md = _pcre2.pcre2_match_data_create_from_pattern_8(code, None)
        if not self._md:
            raise MemoryError("pcre2_match_data_create_from_pattern")
        # the ovector lives in the match data block: one pointer for its life
        self._ov = _pcre2.pcre2_get_ovector_pointer_8(self._md)
        # pcre2_match_8 called from compiled code (postier._native.pcre2call:
        # no ctypes argument conversion per call; its twin uses ctypes);
        # valid while this object lives
        self.call = _pcre2call().Pcre2Call(
            pcre2_match_address(), code, self._md,
            ctypes.cast(self._ov, ctypes.c_void_p).value, self.capture_count, _exec_error)

    @property
    def addresses(self) -> tuple[int, int]:
        """(compiled code, match data) addresses, for a compiled caller of
        pcre2_match_8 (pcre2_match_address()); valid while this object lives."""
        return self._code, self._md

    def matches(self, data: bytes) -> bool:
        """search(data) is not None, without building the offsets."""
        return self.call.matches(data)

    def count(self, data: bytes, limit: int = 0) -> int:
        """The non-overlapping matches in data (Perl's while //g: each
        search starts where the last match ended, one byte further after
        an empty one, so a multi-line ^ sees the byte before it), at most
        limit when it is not 0."""
        return self.call.count(data, limit)

    def search(self, data: bytes) -> list[tuple[int, int]] | None:
        """pcre2_match(): None on no match, else (start, end) for group 0 and
        every capture group, (-1, -1) for an unset group."""
        return self.call.spans(data)

    def __del__(self) -> None:
        if _pcre2 is None:
            return
        if getattr(self, "_md", None):
            _pcre2.pcre2_match_data_free_8(self._md)
            self._md = None
        if getattr(self, "_code", None):
            _pcre2.pcre2_code_free_8(self._code)
            self._code = None
