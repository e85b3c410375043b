# cython: language_level=3, boundscheck=False, wraparound=False
"""libpcre2-8's pcre2_match_8 called from compiled code (twin:
postier._pure.pcre2call, through ctypes).

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
count, error(rc) builds the exception an error code raises
(reflib.RegexExecError with libpcre2's message).  ctypes spends ~1-2 us of
argument conversion per call; this is a direct C call.  Reads no main.cf
parameters.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t

ctypedef int (*_pcre2_match_fn)(const void *code, const char *subject, size_t length,
                                size_t start, uint32_t options, void *match_data,
                                void *context) noexcept nogil

cdef enum:
    _NOMATCH = -1
    _NO_JIT = 0x00002000

cdef size_t _UNSET = <size_t>-1


cdef class Pcre2Call:
    cdef _pcre2_match_fn fn
    cdef const void *code
    cdef void *md
    cdef const size_t *ov
    cdef readonly int ncap
    cdef object error

    def __init__(self, size_t fn, size_t code, size_t md, size_t ov, int ncap, error):
        if not fn or not code or not md or not ov:
            raise ValueError("Pcre2Call: a null address")
        self.fn = <_pcre2_match_fn>fn
        self.code = <const void *>code
        self.md = <void *>md
        self.ov = <const size_t *>ov
        self.ncap = ncap
        self.error = error

    cdef inline int _match(self, bytes data, size_t start, uint32_t options):
        return self.fn(self.code, PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data),
                       start, options, self.md, NULL)

    def matches(self, bytes data not None):
        """A match anywhere in data?  An error code raises error(rc)."""
        cdef int rc = self._match(data, 0, 0)
        if rc < 0 and rc != _NOMATCH:
            raise self.error(rc)
        return rc >= 0

    def matches_retry(self, bytes data not None):
        """matches(data), asking the interpreter (PCRE2_NO_JIT) after an
        error; a second error raises error(rc)."""
        cdef int rc = self._match(data, 0, 0)
        if rc < 0 and rc != _NOMATCH:
            rc = self._match(data, 0, _NO_JIT)
            if rc < 0 and rc != _NOMATCH:
                raise self.error(rc)
        return rc >= 0

    def count(self, bytes data not None, Py_ssize_t limit=0):
        """Non-overlapping matches (each search starts where the last match
        ended, one byte further after an empty one), at most limit when it
        is not 0.  An error code raises error(rc)."""
        cdef Py_ssize_t n = 0
        cdef size_t pos = 0, s, e
        cdef size_t end = <size_t>PyBytes_GET_SIZE(data)
        cdef const char *p = PyBytes_AS_STRING(data)
        cdef int rc
        while pos <= end:
            rc = self.fn(self.code, p, end, pos, 0, self.md, NULL)
            if rc == _NOMATCH:
                break
            if rc < 0:
                raise self.error(rc)
            s = self.ov[0]
            e = self.ov[1]
            n += 1
            if limit and n >= limit:
                break
            pos = e if e > s else e + 1
        return n

    def spans(self, bytes data not None):
        """None on no match, else [(start, end)] for group 0 and each capture
        group, (-1, -1) for an unset one.  An error code raises error(rc)."""
        cdef int rc = self._match(data, 0, 0)
        cdef int i
        cdef size_t s
        if rc == _NOMATCH:
            return None
        if rc < 0:
            raise self.error(rc)
        out = []
        for i in range(self.ncap + 1):
            s = self.ov[2 * i]
            if s == _UNSET:
                out.append((-1, -1))
            else:
                out.append((<Py_ssize_t>s, <Py_ssize_t>self.ov[2 * i + 1]))
        return out
