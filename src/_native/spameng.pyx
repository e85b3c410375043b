# cython: language_level=3, boundscheck=False, wraparound=False
"""The spam engine's per-message loops, compiled (twin: postier._pure.spameng).

Same API and results as the pure module (see its docstring): Hyperscan match
handlers (on_match, on_first_match, on_match_end), report_subjects, count_literals, LiteralCounter (one
pass over the data, stopping at the limit), count_iter, long_line, first_hit;
literal_set (run when rules are built) is the pure module's; header_values
(the joined values of the plain header names a header rule group reads).  Reads no
main.cf parameters.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc

from postier._pure.spameng import MAX_LITERALS, literal_set  # noqa: F401 - re-exported


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


cdef class LiteralCounter:
    """count_literals for one literal set (from literal_set: no literal
    contains or overlaps another, so at most one starts at any offset):
    one walk over the data, stopping at the limit."""

    cdef readonly tuple lits
    cdef list by_first              # first byte -> literals starting with it
    cdef unsigned char first[256]

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

    def count(self, bytes data, Py_ssize_t limit=0):
        cdef const unsigned char *p = data
        cdef const unsigned char *q
        cdef Py_ssize_t n = len(data), i = 0, c = 0, L, k
        cdef bytes lit
        cdef bint hit
        while i < n:
            if not self.first[p[i]]:
                i += 1
                continue
            hit = False
            for lit in self.by_first[p[i]]:
                L = len(lit)
                if i + L > n:
                    continue
                q = lit
                k = 1
                while k < L and p[i + k] == q[k]:
                    k += 1
                if k == L:
                    hit = True
                    break
            if hit:
                c += 1
                if limit and c >= limit:
                    return limit
                i += L
            else:
                i += 1
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
    bytes none of which is CR or LF (Perl's /^[^\\r\\n]{n}/m)?"""
    cdef const unsigned char *p = data
    cdef Py_ssize_t size = len(data), i = 0, j, end
    if n <= 0:
        return True
    while i + n <= size:
        end = i + n
        j = i
        while j < end and p[j] != 10 and p[j] != 13:
            j += 1
        if j == end:
            return True
        while j < size and p[j] != 10:     # on to the next line
            j += 1
        i = j + 1
    return False


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
