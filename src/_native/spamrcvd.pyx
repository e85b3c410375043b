# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Received-line matcher and format table (Cython; twin:
postier._pure.spamrcvd, where the API is documented).

Line.m() checks the pattern's prefix program and required literals in C
and runs the compiled pattern only when they allow a match (the literals
first against the line's pair mask: a bit per pair of adjacent characters,
so an absent literal mostly costs a few bit tests).  The compile_entry
tuples are kept as typed _Entry objects that hold what a ruled-out line
reads in their first bytes (the prefix program inline, up to 12 of the
literals' pair bits), found by the pattern object's address in a small
open-addressed table (_Typed) instead of a dict lookup by the string: a
scan between two messages evicts them, and the first lines of a message
then pay a cache miss per object touched.  Parser is the twin's format
table with L typed as Line, so its ~20 L.m() and L.any_in() calls per line
are C calls, and so are the regex-free _starts_from, _id_field, _by_field
and _date_start.  The same results as the twin: the compile step
(compile_entry, required_literals, prefix_program) is imported from it, and
the format table is the same text (tests/unit/content/
test_spam_uri_received.py compares the two).  relay_fields cleans a
parsed line's fields up with C character tests, running the twin's
substitutions only where one of them can change something; fill_relays is
parse_relays' walk over the lines (the twin's, with C locals).  parse_line's
s/\\s+/ /g walks a Latin-1 line's bytes (_collapse_ws; the twin's is the
regex), the inline prefix programs read a Latin-1 line directly (a \\S+
step's space found with memchr), and the regex-free field scans read the
line's characters with PyUnicode_READ instead of an indexing call per
character: parse_relays 26.6 -> 22.0 us/msg on the corpus' lines.

Reads no main.cf parameters.
"""

from cpython.unicode cimport PyUnicode_Find
from libc.stdlib cimport free, malloc
from libc.string cimport memchr

cdef extern from "Python.h":
    object PyUnicode_DecodeLatin1(const char *s, Py_ssize_t size, const char *errors)
    Py_UCS4 PyUnicode_READ(int kind, const void *data, Py_ssize_t index) noexcept
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    int PyUnicode_1BYTE_KIND
    bint PyUnicode_IS_ASCII(object o)

from postier._pure.spamrcvd import (  # noqa: F401 - re-exported
    compile_entry,
    literal_only,
    parser_patterns,
    prefix_program,
    required_literals,
)
from postier._pure.spamrcvd import (
    _BRACKET_IP,
    _DATE_RX,
    _ENV_HEAD,
    _ENV_STRIP,
    _ENV_TAIL,
    _MAPPED_SUB,
    _SCOPE_SUB,
    _SEMI_SUB,
    _UNKNOWN,
    _HELO_CMD_PAT,
    _HELO_EQ,
    _HELO_PAT,
    _I,
    _IDENT_EQ,
    _WS_RUNS,
)


from postier._pure.spamrcvd import _IDENT_AT as _IDENT_AT_RX
from postier._pure.spamrcvd import _IDENT_COLON as _IDENT_COLON_RX


cdef object _IDENT_COLON(object s):
    """The twin's _IDENT_COLON (^IDENT:([^\\@]*)\\@), None at once when s
    does not start with IDENT: (the common rdns)."""
    if not s.startswith("IDENT:"):
        return None
    return _IDENT_COLON_RX(s)


cdef object _IDENT_AT(object s):
    """The twin's _IDENT_AT (^([^\\@]*)\\@), None at once when s holds no @
    (the regex walks back over all of s first)."""
    if "@" not in s:
        return None
    return _IDENT_AT_RX(s)


cpdef bint _ws_odd(str line):
    """See the twin: would s/\\s+/ /g change line?  (A Latin-1 line in one
    pass over its bytes: a space after a space, or another re.A \\s.)"""
    cdef Py_ssize_t i, n = len(line)
    cdef const unsigned char *b
    cdef unsigned char c
    cdef bint prev = False
    if PyUnicode_KIND(line) != PyUnicode_1BYTE_KIND:
        return ("  " in line or "\t" in line or "\n" in line or "\r" in line or "\f" in line
                or "\v" in line)
    b = <const unsigned char *>PyUnicode_DATA(line)
    for i in range(n):
        c = b[i]
        if c <= 32:
            if c == 32:
                if prev:
                    return True
                prev = True
                continue
            if 9 <= c <= 13:
                return True
        prev = False
    return False


cdef str _collapse_ws(str line):
    """_WS_RUNS(" ", line) (s/\\s+/ /g with re.A's \\s, [ \\t\\n\\v\\f\\r]):
    a Latin-1 line in one pass over its bytes, any other through the regex."""
    cdef Py_ssize_t i, j = 0, n = len(line)
    cdef const unsigned char *b
    cdef unsigned char c
    cdef char *out
    cdef bint prev = False
    if PyUnicode_KIND(line) != PyUnicode_1BYTE_KIND:
        return _WS_RUNS(" ", line)
    b = <const unsigned char *>PyUnicode_DATA(line)
    out = <char *>malloc(n + 1)
    if out == NULL:
        return _WS_RUNS(" ", line)
    try:
        for i in range(n):
            c = b[i]
            if c == 32 or 9 <= c <= 13:
                if not prev:
                    out[j] = 32
                    j += 1
                    prev = True
            else:
                out[j] = <char>c
                j += 1
                prev = False
        return <str>PyUnicode_DecodeLatin1(out, j, NULL)
    finally:
        free(out)


cpdef Py_ssize_t _date_floor(str s):
    """See the twin: where a match of the date pattern can start at the earliest."""
    cdef int kd = PyUnicode_KIND(s)
    cdef const void *dt = PyUnicode_DATA(s)
    cdef Py_ssize_t i = len(s), k
    cdef Py_UCS4 ch
    for k in range(6):
        i -= 1
        while i >= 0 and PyUnicode_READ(kd, dt, i) != u' ':
            i -= 1
        if i < 0:
            return 0
    while i > 0:
        ch = PyUnicode_READ(kd, dt, i - 1)
        if ch != u' ' and ch != u';':
            break
        i -= 1
    return i


# -- the line's first tests and generic fields without a regex (see the twin:
# each the same answer as its regex)
cdef inline bint _is_space(Py_UCS4 c) noexcept:
    return c == 32 or 9 <= c <= 13          # re.A's \s


cpdef bint _starts_from(str s):
    """See the twin."""
    cdef int kd = PyUnicode_KIND(s)
    cdef const void *dt = PyUnicode_DATA(s)
    cdef Py_ssize_t i = 0, n = len(s)
    if n and PyUnicode_READ(kd, dt, 0) == u'(':
        i = 1
    if n - i < 5:
        return False
    return ((PyUnicode_READ(kd, dt, i) == u'f' or PyUnicode_READ(kd, dt, i) == u'F') and (PyUnicode_READ(kd, dt, i + 1) == u'r' or PyUnicode_READ(kd, dt, i + 1) == u'R')
            and (PyUnicode_READ(kd, dt, i + 2) == u'o' or PyUnicode_READ(kd, dt, i + 2) == u'O') and (PyUnicode_READ(kd, dt, i + 3) == u'm' or PyUnicode_READ(kd, dt, i + 3) == u'M')
            and PyUnicode_READ(kd, dt, i + 4) == u' ')


cpdef object _id_field(str s):
    """See the twin."""
    cdef int kd = PyUnicode_KIND(s)
    cdef const void *dt = PyUnicode_DATA(s)
    cdef Py_ssize_t n = len(s), i, j, k
    cdef Py_UCS4 c
    i = PyUnicode_Find(s, " id ", 0, n, 1)
    while i >= 0:
        j = i + 4
        if j < n and PyUnicode_READ(kd, dt, j) == u'<':
            j += 1
        k = j
        while k < n:
            c = PyUnicode_READ(kd, dt, k)
            if _is_space(c) or c == u'<' or c == u'>' or c == u';':
                break
            k += 1
        if k - j >= 3:
            return s[j:k]
        i = PyUnicode_Find(s, " id ", i + 1, n, 1)
    return None


cpdef object _by_field(str s):
    """See the twin."""
    cdef int kd = PyUnicode_KIND(s)
    cdef const void *dt = PyUnicode_DATA(s)
    cdef Py_ssize_t n = len(s), i, j, k
    i = PyUnicode_Find(s, " by ", 0, n, 1)
    while i >= 0:
        j = k = i + 4
        while k < n and not _is_space(PyUnicode_READ(kd, dt, k)):
            k += 1
        if k > j:
            return s[j:k]
        i = PyUnicode_Find(s, " by ", i + 1, n, 1)
    return None


cdef inline Py_ssize_t _digits_back(int kd, const void *dt, Py_ssize_t k) noexcept:
    while k > 0 and u'0' <= PyUnicode_READ(kd, dt, k - 1) <= u'9':
        k -= 1
    return k


cdef inline bint _sep(Py_UCS4 c) noexcept:
    return _is_space(c) or c == u';'


cpdef Py_ssize_t _date_start(str s, Py_ssize_t floor):
    """See the twin."""
    cdef int kd = PyUnicode_KIND(s)
    cdef const void *dt = PyUnicode_DATA(s)
    cdef Py_ssize_t n = len(s), p, k, a, b, c, u, e
    cdef Py_UCS4 x, y, z
    if PyUnicode_Find(s, "\n", 0, n, 1) >= 0:
        m = _DATE_RX.search(s, floor)
        return m.start() if m is not None else -1
    p = n
    while p > 0 and not _is_space(PyUnicode_READ(kd, dt, p - 1)):
        p -= 1
    if p == n or p == 0 or PyUnicode_READ(kd, dt, p - 1) != u' ':
        return -1
    k = p - 1
    a = _digits_back(kd, dt, k)
    if a == k or a == 0 or PyUnicode_READ(kd, dt, a - 1) != u':':
        return -1
    b = _digits_back(kd, dt, a - 1)
    if b == a - 1 or b == 0:
        return -1
    if PyUnicode_READ(kd, dt, b - 1) == u':':
        c = _digits_back(kd, dt, b - 1)
        if c == b - 1 or c == 0:
            return -1
        b = c
    if PyUnicode_READ(kd, dt, b - 1) != u' ':
        return -1
    k = b - 1
    a = _digits_back(kd, dt, k)
    if a == k or a < 5 or PyUnicode_READ(kd, dt, a - 1) != u' ' or PyUnicode_READ(kd, dt, a - 5) != u' ':
        return -1
    x = PyUnicode_READ(kd, dt, a - 4)
    y = PyUnicode_READ(kd, dt, a - 3)
    z = PyUnicode_READ(kd, dt, a - 2)
    if not ((x == u'J' and ((y == u'a' and z == u'n') or (y == u'u' and (z == u'n' or z == u'l'))))
            or (x == u'F' and y == u'e' and z == u'b')
            or (x == u'M' and y == u'a' and (z == u'r' or z == u'y'))
            or (x == u'A' and ((y == u'p' and z == u'r') or (y == u'u' and z == u'g')))
            or (x == u'S' and y == u'e' and z == u'p')
            or (x == u'O' and y == u'c' and z == u't')
            or (x == u'N' and y == u'o' and z == u'v')
            or (x == u'D' and y == u'e' and z == u'c')):
        return -1
    k = a - 5
    u = _digits_back(kd, dt, k)
    if u == k or u == 0:
        return -1
    e = -1
    if u >= 6 and PyUnicode_READ(kd, dt, u - 1) == u' ' and PyUnicode_READ(kd, dt, u - 2) == u',' and _sep(PyUnicode_READ(kd, dt, u - 6)) and u - 6 >= floor:
        x = PyUnicode_READ(kd, dt, u - 5)
        y = PyUnicode_READ(kd, dt, u - 4)
        z = PyUnicode_READ(kd, dt, u - 3)
        if ((x == u'M' and y == u'o' and z == u'n') or (x == u'T' and ((y == u'u' and z == u'e')
                or (y == u'h' and z == u'u'))) or (x == u'W' and y == u'e' and z == u'd')
                or (x == u'F' and y == u'r' and z == u'i')
                or (x == u'S' and ((y == u'a' and z == u't') or (y == u'u' and z == u'n')))):
            e = u - 6
    if e < 0:
        if _sep(PyUnicode_READ(kd, dt, u - 1)) and u - 1 >= floor:
            e = u - 1
        else:
            return -1
    while e > floor and _sep(PyUnicode_READ(kd, dt, e - 1)):
        e -= 1
    return e


# -- the pair mask: a bit for every pair of adjacent characters of a line (a
# hash of the two into _PAIR_BITS bits); a literal one of whose pairs has no
# bit cannot occur in the line, so most absent literals cost a few bit tests
# instead of a substring search (the search still decides when all bits are set)
DEF _PAIR_WORDS = 16            # 16 x 64 = 1024 bits


cdef inline unsigned int _pair(Py_UCS4 a, Py_UCS4 b) noexcept:
    return ((<unsigned int>a * 31u) ^ <unsigned int>b) & (_PAIR_WORDS * 64 - 1)


cdef void _pair_mask(str h, unsigned long long *mask) noexcept:
    cdef Py_ssize_t i, n = len(h)
    cdef unsigned int k, a, b
    cdef const unsigned char *p
    for i in range(_PAIR_WORDS):
        mask[i] = 0
    if n < 2:
        return
    if PyUnicode_KIND(h) == PyUnicode_1BYTE_KIND:     # (the common case, read directly)
        p = <const unsigned char *>PyUnicode_DATA(h)
        a = p[0]
        for i in range(1, n):
            b = p[i]
            k = ((a * 31u) ^ b) & (_PAIR_WORDS * 64 - 1)
            mask[k >> 6] |= 1ULL << (k & 63)
            a = b
        return
    a = <unsigned int>h[0]
    for i in range(1, n):
        b = <unsigned int>h[i]
        k = _pair(a, b)
        mask[k >> 6] |= 1ULL << (k & 63)
        a = b


cdef inline bint _pairs_in(str x, const unsigned long long *mask) noexcept:
    """Are all of x's adjacent pairs in the mask (else x is not in the line)?
    No mask (NULL): nothing is ruled out."""
    cdef Py_ssize_t i, n = len(x)
    cdef unsigned int k
    cdef Py_UCS4 a, b
    if n < 2 or mask == NULL:
        return True
    a = x[0]
    for i in range(1, n):
        b = x[i]
        k = _pair(a, b)
        if not (mask[k >> 6] & (1ULL << (k & 63))):
            return False
        a = b
    return True


cdef bint _literals_masked(str h, const unsigned long long *mask, tuple ordered, tuple anyof):
    """literals_present(h, ordered, anyof) once the ordered literals' pairs
    may be in h's pair mask (_Entry.pidx); an anyof literal is
    first tried on the mask."""
    cdef tuple alts
    cdef str x
    cdef Py_ssize_t pos = 0, i, n = len(h)
    cdef bint ok
    for alts in anyof:
        ok = False
        for x in alts:
            if _pairs_in(x, mask) and PyUnicode_Find(h, x, 0, n, 1) >= 0:
                ok = True
                break
        if not ok:
            return False
    for x in ordered:
        i = PyUnicode_Find(h, x, pos, n, 1)
        if i < 0:
            return False
        pos = i + len(x)
    return True


cpdef bint literals_present(str h, tuple ordered, tuple anyof):
    """Could a match exist in h, as far as its required literals tell?"""
    return _literals_masked(h, NULL, ordered, anyof)


cpdef bint prefix_ok(str s, tuple prog):
    """Could s match, as far as its prefix_program tells?"""
    cdef Py_ssize_t pos = 0, n = len(s), e, need
    cdef Py_UCS4 ch
    cdef object step
    cdef str alts
    for step in prog:
        if type(step) is int:
            need = <Py_ssize_t>step
            e = pos
            while e < n and s[e] != u' ':
                e += 1
            if e >= n or e - pos < need:
                return False
            pos = e
        else:
            if pos >= n:
                return False
            ch = s[pos]
            alts = <str>step
            if ch != alts[0] and (len(alts) < 2 or ch != alts[1]):
                return False
            pos += 1
    return True


cdef bint _no_other_ws(str s) noexcept:
    """_OTHER_WS(s) is None: no tab, newline, CR, FF or VT in s."""
    cdef Py_ssize_t i, n = len(s)
    cdef const unsigned char *p
    cdef Py_UCS4 ch
    if PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND:
        p = <const unsigned char *>PyUnicode_DATA(s)
        for i in range(n):
            if 9 <= p[i] <= 13:
                return False
        return True
    for i in range(n):
        ch = s[i]
        if 9 <= ch <= 13:
            return False
    return True


# an entry's hot fields first (the object's first cache line): its prefix
# program as (char, char) pairs (0, n: a run of at least n non-spaces) and
# the pair-mask bits of its ordered literals, rarest-looking first (a few
# bits rule most lines out); its objects after them
DEF _NSTEPS = 12                # longer prefix programs stay tuples (prefix_ok)
DEF _NPIDX = 12                 # pair bits kept (a subset still rules out only true misses)


cdef inline int _pair_rank(Py_UCS4 a, Py_UCS4 b) noexcept:
    # pairs of lowercase letters and spaces are in most lines: test the others first
    cdef int r = 0
    if not (u'a' <= a <= u'z' or a == u' '):
        r += 1
    if not (u'a' <= b <= u'z' or b == u' '):
        r += 1
    return r


cdef class _Entry:
    """A compile_entry tuple (re, ordered, anyof, icase, prefix, exact) with
    typed fields, its prefix program inline and up to _NPIDX pair-mask bits
    of its ordered literals (pidx)."""
    cdef unsigned char nsteps       # 255: the program is the prog tuple
    cdef unsigned char npidx
    cdef unsigned char icase
    cdef unsigned char exact
    cdef unsigned char lits
    cdef unsigned char steps[2 * _NSTEPS]
    cdef unsigned short pidx[_NPIDX]
    cdef object rx
    cdef tuple ordered
    cdef tuple anyof
    cdef tuple prog

    def __init__(self, tuple e):
        cdef str x
        cdef Py_ssize_t i
        cdef int r
        cdef unsigned int k
        cdef list ranked = []
        cdef object step
        self.rx = e[0]
        self.ordered = <tuple>e[1]
        self.anyof = <tuple>e[2]
        self.icase = bool(e[3])
        self.prog = <tuple>e[4]
        self.exact = bool(e[5])
        self.lits = bool(self.ordered or self.anyof)
        for x in self.ordered:
            for i in range(1, len(x)):
                k = _pair(x[i - 1], x[i])
                r = _pair_rank(x[i - 1], x[i])
                if (-r, k) not in ranked:
                    ranked.append((-r, k))
        ranked.sort(key=lambda t: t[0])        # stable: rarest-looking first, else in order
        self.npidx = min(len(ranked), _NPIDX)
        for i in range(self.npidx):
            self.pidx[i] = <unsigned short>ranked[i][1]
        self.nsteps = 255
        if len(self.prog) <= _NSTEPS:
            for i, step in enumerate(self.prog):
                if type(step) is int:
                    if not 0 <= step < 256:
                        return
                    self.steps[2 * i] = 0
                    self.steps[2 * i + 1] = <unsigned char>step
                else:
                    x = <str>step
                    if not 1 <= len(x) <= 2 or not x.isascii() or "\0" in x:
                        return
                    self.steps[2 * i] = <unsigned char>ord(x[0])
                    self.steps[2 * i + 1] = <unsigned char>ord(x[len(x) - 1])
            self.nsteps = <unsigned char>len(self.prog)


cdef bint _prefix_inline(str s, _Entry e):
    """prefix_ok(s, e.prog) from the inline program (a Latin-1 line read
    directly, a \\S+ step's space found with memchr)."""
    cdef Py_ssize_t pos = 0, n = len(s), end
    cdef int j
    cdef unsigned char c0, c1
    cdef Py_UCS4 ch
    cdef const unsigned char *b
    cdef const unsigned char *q
    if PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND:
        b = <const unsigned char *>PyUnicode_DATA(s)
        for j in range(e.nsteps):
            c0 = e.steps[2 * j]
            c1 = e.steps[2 * j + 1]
            if c0 == 0:
                if pos >= n:
                    return False
                q = <const unsigned char *>memchr(b + pos, 32, n - pos)
                if q == NULL:
                    return False
                end = q - b
                if end - pos < c1:
                    return False
                pos = end
            else:
                if pos >= n or (b[pos] != c0 and b[pos] != c1):
                    return False
                pos += 1
        return True
    for j in range(e.nsteps):
        c0 = e.steps[2 * j]
        c1 = e.steps[2 * j + 1]
        if c0 == 0:
            end = pos
            while end < n and s[end] != u' ':
                end += 1
            if end >= n or end - pos < c1:
                return False
            pos = end
        else:
            if pos >= n:
                return False
            ch = s[pos]
            if ch != c0 and ch != c1:
                return False
            pos += 1
    return True


# the typed entries of a cache, found by the pattern object itself (its
# address and flags; the table holds a reference, so an address is never
# reused for another string) in one probe of a small open-addressed table
# instead of a dict lookup by the string's hash
DEF _SLOTS = 512                # a power of two
DEF _SLOTS_MAX = 384            # then the dict (a caller with many dynamic patterns)

cdef struct _Slot:
    void *key
    long flags
    void *val


cdef class _Typed:
    cdef _Slot slots[_SLOTS]
    cdef int used
    cdef list refs                  # the keys and entries the slots point to
    cdef dict more                  # (pattern, flags) -> _Entry once the table is full

    def __cinit__(self):
        cdef int i
        for i in range(_SLOTS):
            self.slots[i].key = NULL
        self.used = 0
        self.refs = []
        self.more = {}

    cdef inline size_t _home(self, str pat, long flags) noexcept:
        cdef size_t h = (<size_t><void *>pat >> 4) ^ <size_t>flags
        return (h * <size_t>0x9E3779B97F4A7C15ULL) >> (8 * sizeof(size_t) - 9)

    cdef object get(self, str pat, long flags):
        cdef size_t i = self._home(pat, flags)
        cdef _Slot *sl
        while True:
            sl = &self.slots[i]
            if sl.key == NULL:
                break
            if sl.key == <void *>pat and sl.flags == flags:
                return <object>sl.val
            i = (i + 1) & (_SLOTS - 1)
        if self.more:
            return self.more.get((pat, flags))
        return None

    cdef void put(self, str pat, long flags, _Entry e):
        cdef size_t i
        if self.used >= _SLOTS_MAX:
            self.more[pat, flags] = e
            return
        i = self._home(pat, flags)
        while self.slots[i].key != NULL:
            i = (i + 1) & (_SLOTS - 1)
        self.refs.append(pat)
        self.refs.append(e)
        self.slots[i].key = <void *>pat
        self.slots[i].flags = flags
        self.slots[i].val = <void *>e
        self.used += 1


# the typed entries of a cache (compile_entry tuples by key), by id(cache);
# the cache is held so that its id is not reused
cdef dict _TYPED = {}
cdef dict _LAST_CACHE = None        # the last cache asked for (every Line of a run: the same)
cdef _Typed _LAST_TYPED = None


cdef _Typed _typed_for(dict cache):
    global _LAST_CACHE, _LAST_TYPED
    if cache is _LAST_CACHE:
        return _LAST_TYPED
    got = _TYPED.get(id(cache))
    if got is None:
        got = _TYPED[id(cache)] = (cache, _Typed())
    _LAST_CACHE = cache
    _LAST_TYPED = <_Typed>(<tuple>got)[1]
    return _LAST_TYPED


cdef class Line:
    cdef public str s
    cdef object _g
    cdef object _pend
    cdef object _lower
    cdef int _plain
    cdef dict _cache
    cdef _Typed _typed
    cdef object _compile
    cdef int _masked                # bit 1: _mask is s's pair mask; bit 2: _lmask is _lower's
    cdef unsigned long long _mask[_PAIR_WORDS]
    cdef unsigned long long _lmask[_PAIR_WORDS]

    def __init__(self, str s, dict cache, compile_fn):
        self.s = s
        self._g = None
        self._pend = None
        self._lower = None
        self._plain = -1
        self._cache = cache
        self._typed = _typed_for(cache)
        self._compile = compile_fn
        self._masked = 0

    cdef _Entry _entry(self, str pat, int flags):
        cdef _Typed typed = self._typed
        cdef object t = typed.get(pat, flags)
        if t is not None:
            return <_Entry>t
        cdef object key = (pat, flags) if flags else pat
        e = self._cache.get(key)
        if e is None:
            e = self._compile(pat, flags)
            self._cache[key] = e
        t = _Entry(e)
        typed.put(pat, flags, <_Entry>t)
        return <_Entry>t

    cdef str _hay(self, bint lower):
        """s, or its lowercase (made once), with its pair mask (_mask or
        _lmask) built once."""
        cdef str h
        if lower:
            if self._lower is None:
                self._lower = self.s.lower()
            h = <str>self._lower
            if not self._masked & 2:
                _pair_mask(h, self._lmask)
                self._masked |= 2
        else:
            h = self.s
            if not self._masked & 1:
                _pair_mask(h, self._mask)
                self._masked |= 1
        return h

    cdef bint _may_match(self, _Entry e):
        """Do the entry's prefix program and literals allow a match in s?"""
        cdef str h
        cdef unsigned long long *mask
        cdef int i
        cdef unsigned int k
        if e.nsteps:
            if self._plain < 0:
                self._plain = _no_other_ws(self.s)
            if self._plain:
                if e.nsteps == 255:
                    if not prefix_ok(self.s, e.prog):
                        return False
                elif not _prefix_inline(self.s, e):
                    return False
        if e.lits:
            h = self._hay(e.icase)
            mask = &self._lmask[0] if e.icase else &self._mask[0]
            for i in range(e.npidx):
                k = e.pidx[i]
                if not (mask[k >> 6] & (1ULL << (k & 63))):
                    return False
            if not _literals_masked(h, mask, e.ordered, e.anyof):
                return False
        return True

    @property
    def g(self):
        if self._pend is not None:
            self._g = self._pend.search(self.s)
            self._pend = None
        return self._g

    cpdef bint m(self, str pat, int flags=0):
        cdef _Entry e = self._entry(pat, flags)
        self._pend = None
        if not self._may_match(e):
            self._g = None
            return False
        if e.exact:
            self._pend = e.rx
            return True
        self._g = e.rx.search(self.s)
        return self._g is not None

    cpdef bint any_in(self, tuple lits, bint lower=False):
        """See the twin (each string first tried on the pair mask)."""
        cdef str x
        cdef str h = self._hay(lower)
        cdef unsigned long long *mask = &self._lmask[0] if lower else &self._mask[0]
        for x in lits:
            if _pairs_in(x, mask) and PyUnicode_Find(h, x, 0, len(h), 1) >= 0:
                return True
        return False

    cdef int _set_s(self, str s, bint part=False, object lower=None) except -1:
        """s becomes the line; part: it is a prefix or suffix of the old one,
        whose pair masks then still cover it (a superset: the literal test
        after the mask decides) and whose "no whitespace but spaces" holds;
        lower: s.lower() when the caller has it (the old one's, cut alike),
        else the lowercased mask goes too."""
        if self._pend is not None:      # g belongs to the line before the change
            self._g = self._pend.search(self.s)
            self._pend = None
        self.s = s
        self._lower = lower
        if part:
            if lower is None:
                self._masked &= 1
            if self._plain == 0:
                self._plain = -1
        else:
            self._plain = -1
            self._masked = 0
        return 0

    cpdef cut_at(self, Py_ssize_t i):
        """See the twin."""
        cdef object lower = self._lower
        if i >= 0:
            # an ASCII line's lowercase is per character: cut alike
            if lower is not None and PyUnicode_IS_ASCII(self.s):
                lower = (<str>lower)[:i]
            else:
                lower = None
            self._set_s(self.s[:i], True, lower)

    cpdef bint cut_prefix(self, str p):
        """See the twin."""
        cdef object lower = self._lower
        if not self.s.startswith(p):
            return False
        if lower is not None and PyUnicode_IS_ASCII(self.s):
            lower = (<str>lower)[len(p):]
        else:
            lower = None
        self._set_s(self.s[len(p):], True, lower)
        return True

    cpdef bint replace_first(self, str old, str new):
        """See the twin."""
        cdef str s = self.s
        cdef Py_ssize_t i = PyUnicode_Find(s, old, 0, len(s), 1)
        if i < 0:
            return False
        self._set_s(s[:i] + new + s[i + len(old):])
        return True

    cpdef bint sub(self, str pat, str repl, int flags=0):
        cdef _Entry e = self._entry(pat, flags)
        if not self._may_match(e):
            return False
        new, n = e.rx.subn(repl, self.s, 1)
        if n:
            self._set_s(new)
        return n > 0

    cpdef bint sub_from(self, str pat, str repl, Py_ssize_t pos, int flags=0):
        """See the twin."""
        cdef _Entry e = self._entry(pat, flags)
        if not self._may_match(e):
            return False
        cdef str s = self.s
        m = e.rx.search(s, pos)
        if m is None:
            return False
        # (a replacement without a backslash is itself: no template to parse)
        if not repl and m.end() == len(s):          # a tail cut off
            self._set_s(s[:m.start()], True)
            return True
        self._set_s(s[:m.start()] + (m.expand(repl) if "\\" in repl else repl) + s[m.end():])
        return True

    def __getitem__(self, int i):
        if self._pend is not None:
            self._g = self._pend.search(self.s)
            self._pend = None
        g = self._g
        return g.group(i) if g is not None else None



cdef inline bint _strip_char(Py_UCS4 c) noexcept:
    # the class [\s\000\#\[\]\(\)\<\>\|] (re.A's \s)
    return (c == 32 or 9 <= c <= 13 or c == 0 or c == 0x23 or c == 0x5b or c == 0x5d
            or c == 0x28 or c == 0x29 or c == 0x3c or c == 0x3e or c == 0x7c)


cdef bint _has_strip(str s):
    cdef Py_UCS4 c
    for c in s:
        if _strip_char(c):
            return True
    return False


cpdef tuple relay_fields(dict v):
    """See the twin."""
    cdef str rdns, ip, by, helo, ident, rid, auth, st
    cdef object env, x
    cdef bint no_rdns = False, not_in = False
    x = v["rdns"]
    rdns = <str>x if x else ""
    if rdns.endswith("."):
        rdns = rdns.rstrip(".")                 # s/\.+\z//
    if rdns.startswith("[") or ((len(rdns) == 7 or len(rdns) == 8) and _UNKNOWN(rdns) is not None):
        rdns = ""
    x = v["ip"]
    ip = <str>x if x else ""
    if len(ip) >= 5 and (ip[0] == u"i" or ip[0] == u"I") and ip[:5].lower() == "ipv6:" \
            and ip[:5].isascii():
        ip = ip[5:]
    if ip.startswith("["):
        ip = ip[1:]
    if ip.endswith("]"):
        ip = ip[:len(ip) - 1]
    if "%" in ip:
        ip = _SCOPE_SUB("", ip, 1)
    if ":" in ip:
        ip = _MAPPED_SUB(r"\1", ip, 1)
    x = v["by"]
    by = <str>x if x else ""
    if by.endswith(";") or by.endswith(";\n"):     # s/;$//
        by = _SEMI_SUB("", by, 1)
    x = v["helo"]
    helo = <str>x if x else ""
    x = v["ident"]
    ident = <str>x if x else ""
    if _has_strip(ip) or _has_strip(rdns) or _has_strip(helo) or _has_strip(by) or _has_strip(ident):
        ip = _ENV_STRIP("!", ip)
        rdns = _ENV_STRIP("!", rdns)
        helo = _ENV_STRIP("!", helo)
        by = _ENV_STRIP("!", by)
        ident = _ENV_STRIP("!", ident)
    env = v["envfrom"]
    if env is not None:
        env = _ENV_HEAD("", env, 1)
        env = _ENV_TAIL("", env, 1)
        env = _ENV_STRIP("!", env)
    x = v["id"]
    rid = <str>x if x else ""
    x = v["auth"]
    auth = <str>x if x else ""
    if not rdns:
        if v["dns"]:
            no_rdns = True
        else:
            not_in = True
    st = "".join(("[ ip=", ip, " rdns=", rdns, " helo=", helo, " by=", by, " ident=", ident,
                  " envfrom=", env if env else "", " intl=0 id=", rid, " auth=", auth, " msa=0 ]"))
    return ip, by, helo, rid, ident, env, auth, rdns, no_rdns, not_in, st


# a parsed line's fields before the format table fills them in
cdef dict _V0 = {"ip": "", "helo": "", "rdns": "", "by": "", "id": "", "ident": "", "envfrom": None,
        "dns": False, "auth": ""}


cdef class Parser:
    """See postier._pure.spamrcvd.Parser."""
    cdef public object qmail_scanner_env_from
    cdef public bint pop_fetcher
    cdef dict _cache
    cdef object _compile

    def __init__(self, dict cache, compile_fn):
        self.qmail_scanner_env_from = None
        self.pop_fetcher = False
        self._cache = cache
        self._compile = compile_fn

    # --- parser: the same text as in postier/_pure/spamrcvd.py (tests compare them) ---
    def parse_line(self, line: str):
        """parse_received_line: the relay's fields (a dict), 0 (not a handover: skip),
        or None (unparseable)."""
        s = _collapse_ws(line) if _ws_odd(line) else line       # s/\s+/ /g
        if s.startswith(" "):
            s = s[1:]
        if s.endswith(" "):
            s = s[:-1]
        while s.endswith(";"):           # s/\s?;$// until it no longer applies
            s = s[:-2] if s.endswith(" ;") else s[:-1]
        cdef Line L = Line(s, self._cache, self._compile)
        v = _V0.copy()
        if not _starts_from(L.s):                   # ^\(?from /i
            return 0
        if L.m(r"\bwith local for\b"):
            return 0
        if L.m(r"^from (\S+) by [^\s;]+ ?;", _I) and _BRACKET_IP(L[1]) is None:
            return 0
        # the date cut off: where _DATE_RX, searched from _date_floor on, matches
        L.cut_at(_date_start(L.s, _date_floor(L.s)))
        L.replace_first(")by ", ") by ")
        x = _id_field(L.s)                          # / id <?([^\s<>;]{3,})/
        if x is not None:
            v["id"] = x
        if L.m(_HELO_PAT):
            v["helo"] = L[1]
        elif L.m(_HELO_CMD_PAT):
            v["helo"] = L[1]
        x = _by_field(L.s)                          # / by (\S+)(?:[^-A-Za-z0-9\;\.]|$)/
        if x is not None:
            v["by"] = x
        self._auth(L, v)
        return self._body(L, v)

    def _auth(self, Line L, dict v):
        # every format below needs one of these in the lowercased line: a line
        # without any (most lines) skips the ten tests
        if not L.any_in(("mtpa", "mtpsa", "asmtp", "with http", "mx.google.com", "(auth: ",
                         "authenticated", "mail.gmx.", "communigate pro", "http-dav", "(via http"), True):
            return
        if L.m(r" by ") and L.m(r" with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)", _I):
            v["auth"] = L[1]
        elif L.m(r" by mx\.google\.com with ESMTPS id [a-z0-9]{1,4}sm[0-9]{2,9}[a-z]{3}\.[0-9]{1,3}\.[0-9]{4}\.(?:[0-6][0-9]\.){4}[0-6][0-9]") \
                and L.m(r"\(version=([^ ]+) cipher=([^\)]+)\)"):
            v["auth"] = "GMail - transport=" + L[1] + " cipher=" + L[2]
        elif L.m(r"^from .*?(?:\]\)|\)\]) \(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5) \S+(?:, .*?)?\) by "):
            v["auth"] = L[1]
        elif L.m(r"authenticated") and L.m(r"^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by"):
            v["auth"] = "Sendmail"
        elif L.m(r"from \S* \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (mail\.gmx\.(?:net|com)) \([^\)]+\) with ((?:ESMTP|SMTP))"):
            v["auth"] = f"GMX ({L[4]} / {L[3]})"
        elif L.m(r" \(authenticated as ") and L.m(r"\) by .+ \(\d{1,2}\.\d\.\d{3}(?:\.\d{1,3})?\) \(authenticated as .+\) id "):
            v["auth"] = "CriticalPath"
        elif L.m(r"\) \(Authenticated sender: \S+\) by \S+ \(([^\)]+)\) with "):
            v["auth"] = L[1] if L[1] == "Postfix" else f"Postfix ({L[1]})"
        elif L.m(r"CommuniGate Pro (HTTP|SMTP|XIMSS|IMAP)") and L.m(r" \(account "):
            v["auth"] = "Communigate"
        elif L.m(r" with Microsoft Exchange Server HTTP-DAV\b"):
            v["auth"] = "HTTP-DAV"
        elif L.m(r" by ") and L.m(r" \(via (HTTP.?)\)(?: |;|$)", _I):
            v["auth"] = L[1]

    def _set(self, v: dict, **kw) -> dict:
        v.update(kw)
        return v

    def _body(self, Line L, dict v):
        """The format table: v (its fields filled in) when a format matched,
        0 to skip the line, None when it cannot be parsed."""
        S = self._set
        if L.cut_prefix("from "):
            if L.m(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", _I):
                v["envfrom"] = L[1]
            # the formats from here to Lotus Domino each need one of these
            if L.any_in((" authenticated user ", "aol.com", " SMTPSVC", " with Microsoft SMTP Server",
                         " with mapi id", "[XMail ", "(ecelerity", "Exim", " (Postfix) with",
                         "(Scalix SMTP Relay", " (Lotus Domino ")):
                if L.m(r" \((?:SquirrelMail|NaSMail) authenticated user "):
                    if L.m(r"(${IP})\b(?![.-]).{10,80}by (\S+) with HTTP"):
                        return S(v, ip=L[1], by=L[2])
                if L.m(r"aol\.com") and L.m(r"with HTTP \(WebMailUI\)"):
                    if L.m(r"(${IP}) by (\S+) \(${IP}\) with HTTP \(WebMailUI\)"):
                        return S(v, ip=L[1], by=L[2])
                if L.m(r" SMTPSVC"):
                    if L.m(r"^(\S*) \(\[(${IP})\][^\)]{0,40}\) by (\S+) with Microsoft SMTPSVC"):
                        return S(v, helo=L[1], ip=L[2], by=L[3])
                    if L.m(r"^mail pickup service by (\S+) with Microsoft SMTPSVC$"):
                        return 0
                elif L.m(r" with (?:Microsoft SMTP Server|mapi id) (?:\([^\)]+\) )?\d+\.\d+\.\d+\.\d+(?:$| )"):
                    if L.m(r"^(\S+) \(\[?(${IP})(?:%[A-Z0-9._~-]*)?\]?\) by (\S+) "):
                        return S(v, helo=L[1], ip=L[2], by=L[3], id="")
                elif L.m(r"\[XMail "):
                    if L.m(r"^(\S+) \((\[?${IP}\]?)(?::\d+)\) by (\S+)(?: \(\S+\))? with \[XMail"):
                        helo, ip, by = L[1], L[2], L[3]
                        if L.m(r" id <(\S+)>"):
                            v["id"] = L[1]
                        if L.m(r" from <(\S+)>"):
                            v["envfrom"] = L[1]
                        return S(v, helo=helo, ip=ip, by=by)
                elif L.m(r"\(ecelerity\b"):
                    if L.m(r"^\(\[(${IP}):\d+\] helo=(\S+)\) by (\S+) "):
                        return S(v, ip=L[1], helo=L[2], by=L[3])
                    if L.m(r"^\S+ \(\[(${IP}):\d+\]\) by (\S+) "):
                        return S(v, ip=L[1], by=L[2])
                elif L.m(r"Exim"):
                    if L.m(r"\bwith local(?:-\S+)? "):
                        return 0
                    if L.m(r"^\[(${IP})\] \((.*?)\) by (\S+) "):
                        ip, sub, by = L[1], L[2], L[3]
                        m = _HELO_EQ(sub)
                        if m:
                            v["helo"] = m.group(1)
                            sub = sub[:m.start()] + sub[m.end():]
                        m = _IDENT_EQ(sub)
                        if m:
                            v["ident"] = m.group(1)
                        return S(v, ip=ip, by=by)
                    if L.m(r"^(\S+) \(\[(${IP})\](.*?)\) by (\S+) "):
                        rdns, ip, sub, by = L[1], L[2], L[3], L[4]
                        v["helo"] = rdns
                        m = _HELO_EQ(sub)
                        if m:
                            v["helo"] = m.group(1)
                            sub = sub[:m.start()] + sub[m.end():]
                        m = _IDENT_EQ(sub)
                        if m:
                            v["ident"] = m.group(1)
                        return S(v, rdns=rdns, ip=ip, by=by)
                    if L.m(r"^(\S+) \[(${IP})\](:\d+)? by (\S+) "):
                        return S(v, rdns=L[1], ip=L[2], helo=L[1], by=L[4])
                    if L.m(r"^(\S+) "):
                        v["rdns"] = L[1]
                    if L.m(r" \((\S+)\) "):
                        v["helo"] = L[1]
                    if L.m(r" \[(${IP})(?:\.\d+)?\] "):
                        v["ip"] = L[1]
                    if L.m(r"by (\S+) "):
                        v["by"] = L[1]
                        if v["ip"]:
                            return v
                elif L.m(r" \(Postfix\) with"):
                    if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) "):
                        return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
                    if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                        return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
                elif L.m(r"\(Scalix SMTP Relay"):
                    if L.m(r"^(\S+) \( ?(${IP})\) by (\S+)"):
                        return S(v, helo=L[1], ip=L[2], by=L[3])
                elif L.m(r" \(Lotus Domino "):
                    if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \(Lotus"):
                        return S(v, dns=False, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"\bwith HTTP\b") and L.m(r"^(${IP}) \(\[${IP}\]\) by (\S+)"):
                return S(v, ip=L[1], by=L[2])
            if not L.m(r" by \S+ \(qmail-\S+\) with "):
                if L.m(r"^(\S+) \((\S+) \[(${IP})\].*\) by (\S+) \("):
                    helo, rdns, ip, by = L[1], L[2], L[3], L[4]
                    m = _IDENT_COLON(rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    m = _IDENT_AT(rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    return S(v, dns=True, helo=helo, rdns=rdns, ip=ip, by=by)
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with \S+ \("):
                return S(v, dns=True, rdns=L[2], ip=L[3], helo=L[1], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\] helo=(\S+)\) by (\S+) with "):
                return S(v, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r"^(\S+) \(<unknown\S*>\[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+\.\S+)\[(${IP})\]\) by (\S+) "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((\S*)\@\[(${IP})\].*\) by (\S+) \("):
                return S(v, dns=True, helo=L[1], ip=L[3], by=L[4], ident=L[2])
            if L.m(r"by (\S+\.hotmail\.msn\.com) "):
                v["by"] = L[1]
                if L.m(r"^(${IP}) "):
                    v["ip"] = L[1]
                return v
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((${IP})\) by (\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(LHLO (\S*)\) \((${IP})\) by (\S+) with LMTP"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (\S+) \([^\)]+\) with (?:ESMTP|SMTP)"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) via smtpd \(for \S+\) with SMTP\("):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            # SpamAssassin's `by \S+( \(.+\))* with` written `by \S+(?: \(.+\))? with`: the
            # same strings (one " (.+)" takes in any more), without the exponential
            # backtracking, and with a look-ahead that fails fast on most lines (the
            # character before SMTP/QMQP is a space); only whether it matches is used
            if L.m(r"^(?=.* (?:SMTP|QMQP)(?! id ))\S+(?: \((?:HELO|EHLO) \S*\))? \((?:\S+\@)?\[?${IP}\]?\)(?: \(envelope-sender <\S+>\))? by \S+(?: \(.+\))? with (?:.* )?(?:SMTP|QMQP)(?! id )"):
                if L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ident=L[3], ip=L[4], by=L[6])
                elif L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ident=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ip=L[2], by=L[4])
                if v["rdns"] != "unknown":
                    v["dns"] = True
                else:
                    v["rdns"] = ""
                return v
            if L.m(r" via HTTP$") and L.m(r"^\[(${IP})\] by (\S+) via HTTP$"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \( \[(${IP})\]\).*? by (\S+) "):
                return S(v, ip=L[2], by=L[3])
            if L.m(r"^\((\S+) \[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^\(\[?(${IP})\]?\) by (\S+) "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) \[${IP}\] with "):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \[\((${IP})\)\] by (\S+) \(${IP}\) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \("):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\).*? by (\S+)\b"):
                if L[2] == "softdnserr":
                    v["dns"] = False
                else:
                    v["dns"] = True
                    v["rdns"] = L[2]
                return S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})(?:[.:]\d+)?\]\).*? by (\S+) "):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\)(?: \(authenticated bits=\d+\))? by (\S+) \("):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"with (?:POP3|IMAP)"):
                self.pop_fetcher = True
                return 0
            if L.m(r"^(\S+) \((?:HELO|EHLO) ([^\)]*)\) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[3] if L[3] is not None else ""
                return S(v, dns=True, rdns=L[1], helo=L[2], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[4], by=L[5])
            if L.m(r"^(\S+) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[2] if L[2] is not None else ""
                return S(v, dns=True, rdns=L[1], helo=L[1], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[3], by=L[4])
            if L.m(r" with http for ") and L.m(r"^\[(${IP})\] by (\S+) with http for "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" via smap ") and L.m(r"^(\S+)\((${IP})\) by (\S+) via smap "):
                return S(v, dns=True, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP}), (?:HELO|EHLO) (\S*)\) by (\S+) via smap "):
                return S(v, dns=True, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r" \(Post") and L.m(r"^\[(${IP})\] by (\S+) \(Post"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" \(ArGoSoft") and L.m(r"^\[(${IP})\] by (\S+) \(ArGoSoft"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(${IP}) by (\S+) \((?:SMTPL|InterScan)\b"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" with BSMTP") and L.m(r"^\S+ by \S+ with BSMTP"):
                return 0
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((?:(\S+)\@)?(${IP}).*?\) by (\S+) with "):
                if L[3] is not None:
                    v["ident"] = L[3]
                return S(v, dns=True, rdns=L[1], helo=L[2], ip=L[4], by=L[5])
            if L.m(r"^\[(${IP})\] \((?:account \S+ )?(?:HELO|EHLO) (\S*)\) by (\S+) \("):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r" \(CommuniGate Pro") and L.m(r"^(\S+) \(\[(${IP})\] verified\) by (\S+) \("):
                return S(v, dns=True, rdns=L[1], helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\(\[(${IP})\]\) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^([^\d]\S+) \((${IP})\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+ \(\S+\) by \S+ \(Content Technologies "):
                return 0
            if L.m(r"^(\S+) \(\[(${IP})\] \[(\S+)\]\) by (\S+) with "):
                return S(v, helo=L[1], ip=L[2], by=L[4])
            if L.m(r"^(${IP}) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^\[(${IP})\]\S+ \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(${IP}) \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\) by (\S+) "):
                return S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) \(MailGate "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \(unverified \[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(${IP}) \([A-Za-z][^\)]+\) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^\[(${IP})\] \(([^\)]+)\) by (\S+) "):
                ip, sub, by = L[1], L[2], L[3]
                m = _HELO_EQ(sub)
                if m:
                    v["helo"] = m.group(1)
                    sub = sub[:m.start()] + sub[m.end():]
                m = _IDENT_EQ(sub)
                if m:
                    v["ident"] = m.group(1)
                return S(v, ip=ip, by=by)
            if L.m(r"^(\S+) \((?:\S+\@)?(${IP})\) by (\S+) with "):
                return S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\)(?:, claiming to be \"(\S+)\")? via \S+ by (\S+),"):
                v.update(rdns=L[1], ip=L[2], helo=L[3] if L[3] is not None else "", by=L[4])
                if L[1] != "UNKNOWN":
                    v["dns"] = True
                return v
            if L.m(r"^(\S+) \((\S+)@(${IP}) with login\) by (\S+\.yahoo\.com) with SMTP"):
                return S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^X-Originating-IP: (${IP})$"):
                return S(v, ip=L[1], by="")
            # stuff to ignore
            for pat in (r"^\S+ \([^\s\@]+\@${LOCALHOST}\) by \S+ \(",
                        r"^\S+ \S+ by \S+ with local-e?smtp ",
                        r"^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)",
                        r"^\S+\@\S+ by \S+ by uid \S+ ",
                        r"^\S+\@\S+ by \S+ ",
                        r"^Unknown/Local \(",
                        r"^${LOCALHOST} \((?:\S+\@)?${LOCALHOST}[\)\[]",
                        r"^\S+ \((?:\S+\@)?${LOCALHOST}\) ",
                        r"^\S+ \(\S+\@\S+ \[${LOCALHOST}\]\) ",
                        r"^\(AUTH: \S+\) by \S+ with ",
                        r"^localhost \(localhost \[\[UNIX: localhost\]\]\) by ",
                        r"^\S+\.amazon\.com by \S+\.amazon\.com with ESMTP \(peer crosscheck: ",
                        r"^[^\.]+ by \S+ with Novell_GroupWise",
                        r"^no\.name\.available by \S+ via smtpd \(for "):
                if L.m(pat):
                    return 0
            if L.m(r"^\S+ by \S+ \(.{0,100}\) with qmail-scanner"):
                env = v["envfrom"]
                if env is not None:
                    env = _ENV_HEAD("", env, 1)
                    env = _ENV_TAIL("", env)
                    env = _ENV_STRIP("!", env)
                self.qmail_scanner_env_from = env
                return 0
            for pat in (r"^\S+ by \S+ with local",
                        r"^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA",
                        r"^\S+ by \S+ (?:with|via|for|\()",
                        r"^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b",
                        r"^\S+ \(unknown\) by \S+ \(SG\) with \b",
                        r"^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b",
                        r"\(LSMTP for",
                        r"^\(\[${LOCALHOST}\]\) with MailEnable ",
                        r"^facebook\.com \([^\)]+\) by facebook\.com with Thrift id \S+$",
                        r"^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$",
                        r"^\S+ id \S+$",
                        r"^\[<.*? \(Jetsend"):
                if L.m(pat):
                    return 0
            if not v["helo"] and L.m(r"^(\S+)[^-A-Za-z0-9\.]"):
                v["helo"] = L[1]
        elif L.cut_prefix("FROM "):
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) BY (\S+) (?:\([^\)]+\) WITH SMTP )?ID <?(\S+?)>?(?: FOR <[^>]+>)?$"):
                return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unverified" else L[2], ip=L[3], by=L[4], id=L[5])
        elif L.cut_prefix("(from "):
            if L.m(r"^(\S*) \[(${IP})\]\) by (\S+) \(NAVGW .*?\) with "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+\@localhost\) by \S+ "):
                return 0
            if L.m(r"^[^\s\@]+\@[^)]+\) by \S+\(jqueuemail\) id [^\s;]+"):
                return 0
        if not v["ip"] and L.m(r"\[(${IP})\]"):
            v["ip"] = L[1]
        if v["ip"] and v["by"]:
            return v
        return None
    # --- end parser ---


# ------------------------------------------------------------ the relay chain

from postier._pure.spamrcvd import _MSA, _MSA_SUB, _UNFOLD


cpdef fill_relays(object out, object lines, Parser p, object relay_cls, dict private_ips,
                  object ip_private_search, object trusted, object internal, object msa,
                  bint user_nets):
    """See the twin (the lists and counters kept in locals, each relay's
    string patched before it is stored)."""
    cdef bint in_trusted = True, in_internal = True, found_msa = False, allow_fetch = True
    cdef bint private, is_msa
    cdef Py_ssize_t n_unp = 0, n_trusted = 0, n_internal = 0
    cdef list trusted_list = out.trusted, internal_list = out.internal
    cdef list untrusted_list = out.untrusted, external_list = out.external
    cdef tuple f
    cdef str ip, auth, st
    cdef object line, v, qms, x, relay
    for line in lines:
        qms = p.qmail_scanner_env_from
        p.qmail_scanner_env_from = None
        if "\n" in line:
            line = _UNFOLD(" ", line)
        p.pop_fetcher = False
        v = p.parse_line(line)
        if p.pop_fetcher and allow_fetch:
            trusted_list = []
            internal_list = []
            external_list = []
            out.trusted = trusted_list
            out.internal = internal_list
            out.external = external_list
        if type(v) is not dict:
            if v is None:
                n_unp += 1
            if in_trusted:
                n_trusted += 1
            if in_internal:
                n_internal += 1
            continue
        f = relay_fields(<dict>v)
        ip = <str>f[0]
        auth = <str>f[6]
        x = private_ips.get(ip)
        if x is None:
            if len(private_ips) > 20000:
                private_ips.clear()
            x = private_ips[ip] = ip_private_search(ip) is not None
        private = x
        st = <str>f[10]
        relay = relay_cls(ip, f[1], f[2], f[3], f[4], f[5], auth, f[7], f[8], f[9], private, False, False, st)
        if qms:
            relay.envfrom = qms
            relay.make_string()
            st = relay.as_string
        is_msa = False
        if in_trusted and not found_msa:
            if not user_nets:
                if not (private or auth):
                    in_trusted = in_internal = False
            else:
                if not auth and not trusted.contains_ip(ip):
                    in_trusted = False
                    in_internal = False
                else:
                    if in_internal and not auth and not internal.contains_ip(ip):
                        in_internal = False
                    if msa.contains_ip(ip):
                        found_msa = True
                        is_msa = True
                        relay.msa = True
        if in_internal:
            relay.internal = True
            st = st.replace(" intl=0 ", " intl=1 ", 1)
        if is_msa or "msa=" in auth:
            st = _MSA_SUB(_MSA[is_msa], st, 1)
        relay.as_string = st
        if in_trusted:
            trusted_list.append(relay)
            allow_fetch = True
            n_trusted += 1
        else:
            untrusted_list.append(relay)
            allow_fetch = False
        if in_internal:
            internal_list.append(relay)
            n_internal += 1
        else:
            external_list.append(relay)
    out.num_unparseable += n_unp
    out.last_trusted_index += n_trusted
    out.last_internal_index += n_internal
