"""The per-rule translation results of the spam engine, cached on disk.

    tc = TranslationCache("/var/lib/postier/spamrules")   # None: memory only
    rec = tc.get(kind, regex, multiple)        # None: not translated yet
    tc.put(kind, regex, multiple, rec); tc.save()
    p = pattern_from_record(rec["p"])          # a LazyPattern

Translating SpamAssassin's regexes (postier.content.spam.perlre through
postier.maps.resyntax: parse, Hyperscan/RE2/`re` forms, joined-buffer and
"loose" forms) costs seconds for a full rule set; postier.content.spam.engine
turns each rule into a record of plain values (expression and regex source
strings, flags, exactness) and builds its runnable objects from that record
only, whether the record was just made or read from here.  The regex objects
(RE2, Python `re`, libpcre2) of a pattern are compiled on first use
(LazyPattern) -- which engine.CompiledRules.prepare makes the scanner's
start, for the objects a scan can use.

The file (spam-rules-VERSION.msgpack in the cache directory) is keyed by
the code version: FORMAT and a hash of the source files that make the
records (a change to any of them starts a new file); inside, a record is
found by what it is made from (rule kind, delimited regex, `tflags
multiple`), so a changed rule file translates only its changed rules.
Records no rule uses any more are dropped once they outnumber the used
ones; writing a file removes those of other code versions.  A cache file that cannot be read is ignored (everything is
translated again); one that cannot be written leaves the start uncached.

Parameters read: none (the directory is spam_rules_cache_directory, through
postier.content.spam.scanner).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys

import msgspec
import re2

from postier.maps import patterns, reflib

FORMAT = b"postier-spam-rules-2"     # 2: line-area records carry their joined form ("j")
# the modules whose code decides what a record holds
_SOURCE_MODULES = ("postier.content.spam.engine", "postier.content.spam.perlre",
                   "postier.content.spam.hsdb", "postier.content.spam.bre",
                   "postier.content.spam.rulecache", "postier.maps.resyntax",
                   "postier.maps.patterns")
_version: str | None = None


def code_version() -> str:
    """FORMAT and the sources of _SOURCE_MODULES, hashed (once per process)."""
    global _version
    if _version is None:
        import importlib
        h = hashlib.sha256(FORMAT)
        h.update(b"\0%d.%d\0" % sys.version_info[:2])
        for name in _SOURCE_MODULES:
            path = getattr(importlib.import_module(name), "__file__", None) or ""
            try:
                with open(path, "rb") as f:
                    h.update(b"%d\0" % os.path.getsize(path) + f.read())
            except OSError:
                h.update(b"?\0" + name.encode())
        _version = h.hexdigest()
    return _version


def compile_re2(source, max_mem: int):
    """An RE2 regex: max_mem 0 is re2.compile's default budget."""
    return re2.compile(source) if not max_mem else re2._compile(source, 0, max_mem)


# ---------------------------------------------------------------- patterns

class _Lazy:
    """A regex object of a LazyPattern, compiled on first access and then
    kept in the instance (a non-data descriptor: the instance's value wins)."""

    def __init__(self, build):
        self.build = build
        self.name = ""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.build(obj.__dict__["_spec"])
        return v


class _LazyRefCall:
    """A LazyPattern's libpcre2 yes/no answer: the bound matches_retry of
    its Pcre2Regex's compiled caller (reflib.Pcre2Regex.call), looked up
    once and then kept in the instance (which also keeps the Pcre2Regex,
    as _ref, that the caller's addresses belong to)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = obj._ref.call.matches_retry
        return v


def _build_re2(spec):
    rx = spec[0]
    return compile_re2(rx[0], rx[1]) if rx is not None else None


def _build_py(spec):
    return re.compile(spec[1]) if spec[1] is not None else None


_PCRE2_JIT_COMPLETE = 1
_PCRE2_NO_JIT = 0x00002000
_jit = None


def _jit_compile(ref) -> None:
    """JIT-compile a libpcre2 pattern (pcre2_match then uses the JIT code;
    without JIT support in the library this does nothing)."""
    global _jit
    if _jit is None:
        import ctypes
        try:
            fn = reflib._pcre2.pcre2_jit_compile_8
            fn.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            fn.restype = ctypes.c_int
            _jit = fn
        except AttributeError:
            _jit = False
    if _jit:
        _jit(ref._code, _PCRE2_JIT_COMPLETE)


def _build_ref(spec):
    if spec[3] is None:
        return None
    ref = reflib.Pcre2Regex(spec[2], spec[3])
    _jit_compile(ref)
    return ref


def _search_no_jit(ref, data: bytes):
    """Pcre2Regex.search with the interpreter (after a JIT error: its stack)."""
    import ctypes
    lib = reflib._pcre2
    rc = lib.pcre2_match_8(ref._code, data, len(data), 0, _PCRE2_NO_JIT, ref._md, None)
    if rc == reflib._PCRE2_ERROR_NOMATCH:
        return None
    if rc < 0:
        raise reflib.RegexExecError(reflib._pcre2_message(rc))
    ov = lib.pcre2_get_ovector_pointer_8(ref._md)
    unset = ctypes.c_size_t(-1).value
    return [(-1, -1) if ov[2 * i] == unset else (ov[2 * i], ov[2 * i + 1])
            for i in range(ref.capture_count + 1)]


class LazyPattern(patterns.Pattern):
    """A postier.maps.patterns.Pattern rebuilt from a record: the same
    answers, its RE2, `re` and libpcre2 objects compiled when first used.
    Where RE2 cannot answer, libpcre2 (JIT-compiled: much faster than
    `re` on SpamAssassin's back-reference rules, and the reference
    semantics) answers before Python `re`."""

    _re2 = _Lazy(_build_re2)
    _py = _Lazy(_build_py)
    _ref = _Lazy(_build_ref)
    _ref_test = _LazyRefCall()

    def search(self, data: bytes) -> bool:
        # libpcre2's yes/no straight from compiled code (no offsets list,
        # no ctypes): ~1.5 us less per confirmation than _ref_search
        if self._ref_confirms:
            return self._ref_test(data)
        r = self._re2
        if r is not None and not (self._nl_unsafe and data.endswith(b"\n")):
            return r.contains(data)
        if self._ref is not None:
            return self._ref_test(data)
        return self._py.search(data) is not None

    def _ref_search(self, data: bytes, n: int):
        ref = self._ref
        try:
            return ref.search(data)
        except reflib.RegexExecError:
            return _search_no_jit(ref, data)

    def ref_count(self, data: bytes, limit: int = 0) -> int | None:
        """The non-overlapping matches of the pattern in data (Perl's
        while //g; at most limit when it is not 0) counted with libpcre2
        (reflib.Pcre2Regex.count), or None when there is no libpcre2 form
        or it gives up (the caller counts another way)."""
        ref = self._ref
        if ref is None:
            return None
        try:
            return ref.call.count(data, limit)
        except reflib.RegexExecError:
            return None         # a JIT stack or match limit: not an answer


def pcre2_options(mods: str) -> int:
    """The pcre2_compile() options perlre.compile_pattern uses for mods."""
    return (reflib.PCRE2_CASELESS if "i" in mods else 0) \
        | (reflib.PCRE2_MULTILINE if "m" in mods else 0) \
        | (reflib.PCRE2_DOTALL if "s" in mods else 0) \
        | (reflib.PCRE2_EXTENDED if "x" in mods else 0)


def pattern_record(p: patterns.Pattern, mods: str, re2_mem: int = 0) -> list:
    """The plain values a Pattern compiled by perlre.compile_pattern (or
    its fallback) is rebuilt from; re2_mem: the budget its RE2 regex was
    compiled with (0: the default)."""
    rx = p._re2
    py = p._py
    return [p.source, p.hs_expr, p.hs_flags, bool(p.hs_exact), p.ngroups,
            [rx.pattern, re2_mem] if rx is not None else None,
            py.pattern if py is not None else None,
            pcre2_options(mods) if p._ref is not None else None,
            bool(p._ref_confirms), bool(p._ref_spans), bool(p._nl_unsafe), p._nmatch]


def pattern_from_record(rec: list) -> LazyPattern:
    p = LazyPattern.__new__(LazyPattern)    # no Pattern.__init__: it would set the lazy slots
    (p.source, p.hs_expr, p.hs_flags, p.hs_exact, p.ngroups, rx, py, ref,
     p._ref_confirms, p._ref_spans, p._nl_unsafe, p._nmatch) = rec
    p.__dict__["_spec"] = (rx, py, p.source, ref)
    return p


# ---------------------------------------------------------------- the file

class TranslationCache:
    """Records by (kind, regex, multiple), read from and written to
    cache_dir (see the module docstring); memory only when cache_dir is None."""

    def __init__(self, cache_dir: str | None):
        self.cache_dir = cache_dir
        self.records: dict[tuple[str, str, bool], dict] = {}
        self.used: set[tuple[str, str, bool]] = set()
        self.added = 0
        self.path = os.path.join(cache_dir, f"spam-rules-{code_version()[:32]}.msgpack") \
            if cache_dir else None
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = msgspec.msgpack.decode(f.read())
            if data.get("format") != FORMAT.decode() or data.get("version") != code_version():
                return
            self.records = {(k, rx, bool(m)): rec for k, rx, m, rec in data["rules"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, msgspec.DecodeError):
            self.records = {}

    def get(self, kind: str, regex: str, multiple: bool) -> dict | None:
        key = (kind, regex, multiple)
        rec = self.records.get(key)
        if rec is not None:
            self.used.add(key)
        return rec

    def put(self, kind: str, regex: str, multiple: bool, rec: dict) -> None:
        key = (kind, regex, multiple)
        self.records[key] = rec
        self.used.add(key)
        self.added += 1

    def save(self) -> None:
        """Write the file when records were added (atomically; errors ignored)."""
        if self.path is None or not self.added:
            return
        keep = self.records
        if len(keep) > 2 * len(self.used):
            keep = {k: v for k, v in keep.items() if k in self.used}
        blob = msgspec.msgpack.encode({"format": FORMAT.decode(), "version": code_version(),
                                       "rules": [[k, rx, m, rec] for (k, rx, m), rec in keep.items()]})
        from postier.content.spam.hsdb import _atomic_write
        _atomic_write(self.cache_dir, self.path, blob)
        self.added = 0
        # the files of other code versions are of no use any more
        try:
            names = os.listdir(self.cache_dir)
        except OSError:
            names = []
        mine = os.path.basename(self.path)
        for n in names:
            if n.startswith("spam-rules-") and n.endswith(".msgpack") and n != mine:
                try:
                    os.unlink(os.path.join(self.cache_dir, n))
                except OSError:
                    pass
