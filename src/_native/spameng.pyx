# cython: language_level=3, boundscheck=False, wraparound=False
"""The spam engine's per-message loops, compiled (twin: postier._pure.spameng).

Same API and results as the pure module (see its docstring): Hyperscan match
handlers (on_match, on_first_match, on_match_end), report_subjects, report_lines, count_literals, LiteralCounter (one
pass over the data, stopping at the limit), LineLiteralCounter (likewise),
SubjectCounter (likewise), count_iter, long_line, byte_count, first_hit; literal_set,
line_literal_form and subject_form (run when rules are built) are the pure
module's; header_values
(the joined values of the plain header names a header rule group reads).  Reads no
main.cf parameters.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr

from postier._pure.spameng import (  # noqa: F401 - re-exported
    MAX_LITERALS,
    line_literal_form,
    literal_set,
    subject_form,
)


def on_match(unsigned int i, unsigned long long start, unsigned long long end,
             unsigned int flags, set hits):
    """Hyperscan match handler: collect the expression id."""
    hits.add(i)


def on_match_end(unsigned int i, unsigned long long start, unsigned long long end,
                 unsigned int flags, list ends):
    """Hyperscan match handler: append the expression id and the match's
    end offset (a flat list: id, end, id, end, ...)."""
    ends.append(i)
    ends.append(end)


def report_subjects(list ends, long long i, list lens):
    """The subjects (indexes into lens) holding a report end of entry i,
    in order (see the pure module)."""
    return _report_subjects(ends, i, lens, False)


def report_lines(list ends, long long i, list subjects):
    """report_subjects(ends, i, [len(s) for s in subjects]), the lengths
    read here."""
    return _report_subjects(ends, i, subjects, True)


cdef list _report_subjects(list ends, long long i, list lens, bint are_subjects):
    cdef set out = set()
    cdef list flat
    cdef object sub
    cdef Py_ssize_t m, x, k, lo, hi, mid, nflat
    cdef long long p, pos
    cdef long long *seps = NULL
    try:
        for flat, sub in ends:
            m = len(sub) if sub is not None else len(lens)
            nflat = len(flat)
            if seps != NULL:
                PyMem_Free(seps)
                seps = NULL
            for x in range(0, nflat - 1, 2):
                if <long long>flat[x] != i or m == 0:
                    continue
                if seps == NULL:    # seps[k]: offset of the separator before subject k
                    seps = <long long *>PyMem_Malloc((m + 1) * sizeof(long long))
                    if seps == NULL:
                        raise MemoryError()
                    seps[0] = 0
                    pos = 0
                    for k in range(m):
                        if are_subjects:
                            pos += len(<bytes>lens[sub[k] if sub is not None else k]) + 1
                        else:
                            pos += <long long>lens[sub[k] if sub is not None else k] + 1
                        seps[k + 1] = pos
                p = <long long>flat[x + 1] - 1
                if p < 0:
                    k = 0
                else:               # the last k with seps[k] <= p
                    lo = 0
                    hi = m + 1
                    while hi - lo > 1:
                        mid = (lo + hi) >> 1
                        if seps[mid] <= p:
                            lo = mid
                        else:
                            hi = mid
                    k = lo
                if k >= m:
                    k = m - 1
                elif k and seps[k] == p:
                    out.add(sub[k - 1] if sub is not None else k - 1)
                out.add(sub[k] if sub is not None else k)
    finally:
        if seps != NULL:
            PyMem_Free(seps)
    return sorted(out)


def on_first_match(unsigned int i, unsigned long long start, unsigned long long end,
                   unsigned int flags, set hits):
    """Hyperscan match handler that stops the scan at the first report."""
    hits.add(i)
    return True


def count_literals(bytes data, tuple lits, Py_ssize_t limit=0):
    """Occurrences of the literals in data (non-overlapping), capped at limit."""
    cdef Py_ssize_t n = 0
    cdef bytes lit
    for lit in lits:
        n += data.count(lit)
    if limit and n > limit:
        n = limit
    return n


cdef inline Py_ssize_t _literal_at(list lits, const unsigned char *p, Py_ssize_t n,
                                   Py_ssize_t t):
    """The length of the first of lits (all starting with the byte p[t])
    that starts at p[t], or 0."""
    cdef Py_ssize_t L, k
    cdef const unsigned char *q
    cdef bytes lit
    for lit in lits:
        L = len(lit)
        if t + L > n:
            continue
        q = lit
        k = 1
        while k < L and p[t + k] == q[k]:
            k += 1
        if k == L:
            return L
    return 0


cdef enum:
    _BLOCK = 64     # LiteralCounter.count's block of bytes


cdef class LiteralCounter:
    """count_literals for one literal set (from literal_set: no literal
    contains or overlaps another, so at most one starts at any offset):
    one walk over the data, stopping at the limit."""

    cdef readonly tuple lits
    cdef list by_first              # first byte -> literals starting with it
    cdef unsigned char first[256]   # 2: the byte is the only literal starting with it, 1: other first bytes

    def __init__(self, lits):
        self.lits = tuple(lits)
        self.by_first = [None] * 256
        cdef int b
        for b in range(256):
            self.first[b] = 0
        cdef bytes lit
        for lit in self.lits:
            if not lit:
                raise ValueError("empty literal")
            b = lit[0]
            if self.by_first[b] is None:
                self.by_first[b] = []
            self.by_first[b].append(lit)
            self.first[b] = 1
        # a byte that is a whole literal, the only one starting with it (so
        # in any literal_set): a match there without the list walk
        # (__LOWER_E's "e", __E_LIKE_LETTER's: hundreds per body)
        for b in range(256):
            if self.first[b] and len(self.by_first[b]) == 1 and len(self.by_first[b][0]) == 1:
                self.first[b] = 2

    def count(self, bytes data, Py_ssize_t limit=0):
        cdef const unsigned char *p = data
        cdef Py_ssize_t n = len(data), i = 0, c = 0, L, j, stop = 0, k
        cdef unsigned char f, longer
        while i < n:
            if i >= stop and i + _BLOCK <= n:
                # a block holding no first byte marked 1: its matches
                # are its one-byte literals, counted without branches
                longer = 0
                k = 0
                for j in range(i, i + _BLOCK):
                    f = self.first[p[j]]
                    longer |= f & 1
                    k += f >> 1
                if not longer:
                    c += k
                    if limit and c >= limit:
                        return limit
                    i += _BLOCK
                    continue
                stop = i + _BLOCK       # walked byte by byte up to there
            f = self.first[p[i]]
            if not f:
                i += 1
                continue
            if f == 2:
                c += 1
                if limit and c >= limit:
                    return limit
                i += 1
                continue
            L = _literal_at(self.by_first[p[i]], p, n, i)
            if L:
                c += 1
                if limit and c >= limit:
                    return limit
                i += L
            else:
                i += 1
        return c


cdef class SubjectCounter:
    """The pure module's SubjectCounter (a subject_form's matches in a
    joined buffer: its subjects holding a byte outside the class), in one
    walk stopping at the limit."""

    cdef readonly bytes chars
    cdef unsigned char inset[256]

    def __init__(self, chars):
        self.chars = bytes(chars)
        if 0 in self.chars:
            raise ValueError("the separator in the class")
        cdef int b
        for b in range(256):
            self.inset[b] = 0
        for b in self.chars:
            self.inset[b] = 1

    def count(self, bytes data, Py_ssize_t limit=0):
        cdef const unsigned char *p = data
        cdef const unsigned char *q
        cdef Py_ssize_t n = len(data), i = 0, c = 0
        while i < n:
            if p[i] == 0 or self.inset[p[i]]:
                i += 1
                continue
            c += 1          # this subject's first byte outside the class
            if c == limit:
                return c
            q = <const unsigned char *>memchr(p + i, 0, n - i)
            if q == NULL:
                break
            i = q - p + 1
        return c


cdef class LineLiteralCounter:
    """The pure module's count_line_literals for one line_literal_form
    (excluded first bytes X, literals holding no NUL or newline), stopping
    at the limit.  The count is that of the lines (the text after a NUL or
    newline s, up to the next one) holding a literal at t where either
    t >= s + 2 and data[s + 1] is not in X (a match from s), or data[s]
    is a newline after another separator and X lacks the newline (a match
    from the empty line before, whose newline is the byte after its
    start): a match's text after its first byte is one line, it ends in
    that line, and the next one starts at a later separator.  So the
    walk goes from one literal to the next (memchr on their first byte
    when they share it) and looks at a line's bounds only where a literal
    lies."""

    cdef readonly bytes excluded
    cdef readonly tuple lits
    cdef list by_first              # first byte -> literals starting with it
    cdef unsigned char kind[256]    # 1: a separator (NUL, newline), 2: a literal's first byte
    cdef unsigned char excl[256]
    cdef unsigned char pairs[8192]  # bit (a << 8 | b): some literal starts with a, b (or is a)
    cdef int fb                     # the literals' one first byte, or -1

    def __init__(self, excluded, lits):
        self.excluded = bytes(excluded)
        self.lits = tuple(lits)
        self.by_first = [None] * 256
        cdef int b, x
        for b in range(256):
            self.kind[b] = 0
            self.excl[b] = 0
        for b in range(8192):
            self.pairs[b] = 0
        self.kind[0] = 1
        self.kind[10] = 1
        for b in self.excluded:
            self.excl[b] = 1
        if not self.lits:
            raise ValueError("no literal")
        cdef bytes lit
        self.fb = self.lits[0][0] if self.lits[0] else -1
        for lit in self.lits:
            if not lit or b"\0" in lit or b"\n" in lit:
                raise ValueError("empty literal or one holding a separator")
            b = lit[0]
            if self.by_first[b] is None:
                self.by_first[b] = []
            self.by_first[b].append(lit)
            self.kind[b] = 2
            if b != self.fb:
                self.fb = -1
            if len(lit) == 1:
                for x in range(256):
                    self.pairs[(b << 5) | (x >> 3)] |= 1 << (x & 7)
            else:
                x = lit[1]
                self.pairs[(b << 5) | (x >> 3)] |= 1 << (x & 7)

    cdef bint _at(self, const unsigned char *p, Py_ssize_t n, Py_ssize_t t):
        """Does a literal start at p[t] (p[t] a first byte)?"""
        cdef int x = p[t + 1] if t + 1 < n else 0
        if not self.pairs[(p[t] << 5) | (x >> 3)] & (1 << (x & 7)):
            return False
        return _literal_at(self.by_first[p[t]], p, n, t) != 0

    cdef Py_ssize_t _next(self, const unsigned char *p, Py_ssize_t n, Py_ssize_t t):
        """The offset of the next literal's first byte at or after t, or n."""
        cdef const unsigned char *kind = self.kind
        cdef const void *r
        if self.fb >= 0:
            r = memchr(p + t, self.fb, n - t)
            return (<const unsigned char *>r - p) if r != NULL else n
        while t < n and kind[p[t]] != 2:
            t += 1
        return t

    def count(self, bytes data, Py_ssize_t limit=0):
        cdef const unsigned char *p = data
        cdef const unsigned char *kind = self.kind
        cdef Py_ssize_t n = len(data), t = 0, s, e = -1, c = 0
        cdef bint nl_ok = not self.excl[10]
        s = -1                  # the separator before the line of t (when t < e)
        while True:
            t = self._next(p, n, t)
            if t >= n:
                break
            if not self._at(p, n, t):
                t += 1
                continue
            if t >= e:          # a new line: its bounds
                s = t - 1
                while s >= 0 and kind[p[s]] != 1:
                    s -= 1
                e = t + 1
                while e < n and kind[p[e]] != 1:
                    e += 1
            if s >= 0 and ((t >= s + 2 and not self.excl[p[s + 1]])
                           or (nl_ok and p[s] == 10 and s >= 1 and kind[p[s - 1]] == 1)):
                c += 1
                if limit and c >= limit:
                    break
                t = e + 1       # the line is counted
            else:
                t += 1
        return c


def count_iter(rx, data, Py_ssize_t limit=0):
    """Matches of rx.finditer(data), stopping at limit (0: no cap)."""
    cdef Py_ssize_t n = 0
    for _m in rx.finditer(data):
        n += 1
        if limit and n >= limit:
            break
    return n


def long_line(bytes data, Py_ssize_t n):
    """Does a line of data (from its start or a newline) begin with n
    bytes none of which is CR or LF (Perl's /^[^\\r\\n]{n}/m)?  (Each
    line's end and a CR among its first n bytes found by memchr: several
    times fewer instructions than a byte loop over a whole message.)"""
    cdef const unsigned char *p = data
    cdef const unsigned char *nl
    cdef Py_ssize_t size = len(data), i = 0, e
    if n <= 0:
        return True
    while i + n <= size:
        nl = <const unsigned char *>memchr(p + i, 10, size - i)
        e = nl - p if nl != NULL else size
        if e - i >= n and memchr(p + i, 13, n) == NULL:
            return True
        i = e + 1
    return False


def byte_count(bytes data, unsigned char c):
    """data.count(bytes([c])) for a byte that is rare in data (the
    separators of a joined buffer): one memchr per occurrence."""
    cdef const unsigned char *p = data
    cdef const unsigned char *q
    cdef Py_ssize_t size = len(data), i = 0, k = 0
    while i < size:
        q = <const unsigned char *>memchr(p + i, c, size - i)
        if q == NULL:
            break
        k += 1
        i = q - p + 1
    return k


def first_hit(search, list lines):
    """Index of the first line for which search(line) is true, or -1."""
    cdef Py_ssize_t i
    for i in range(len(lines)):
        if search(lines[i]):
            return i
    return -1



def header_values(dict headers, tuple names):
    """For each lower-cased header name (None: skipped), its values in
    headers joined as a header rule sees them: b"\\n".join(values) + b"\\n",
    or None when absent or when the name is None."""
    cdef list out = [None] * len(names)
    cdef Py_ssize_t i
    cdef object name, hl
    for i in range(len(names)):
        name = names[i]
        if name is None:
            continue
        hl = headers.get(name)
        if hl:
            out[i] = b"\n".join(hl) + b"\n"
    return out
