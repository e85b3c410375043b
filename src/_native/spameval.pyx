# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-message loops of the spam engine's eval rules, compiled (twin:
postier._pure.spameval, where the API is documented): uppercase_counts,
vertical_words, rfc822_date_fast, date_seconds, run_calls, ma_counts,
ma_dropped, rcvd_date, qp_lines, rcvd_times, text_part_stats,
illegal_counts, forged_received, at_lines, a_uris, uri_hosts.  The same results as the twin for every
input (tests/unit/content/test_spam_evals_native.py).

Reads no main.cf parameters.
"""

import re

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport Py_UNICODE_ISALNUM, Py_UNICODE_ISSPACE
from libc.string cimport memchr


from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.object cimport PyObject

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void *data, Py_ssize_t i) nogil


cdef inline bint _ws(unsigned char c) noexcept nogil:
    # Perl's (and re.A's) \s
    return c == 32 or (9 <= c <= 13)


cdef inline bint _b64(unsigned char c) noexcept nogil:
    return (65 <= c <= 90) or (97 <= c <= 122) or (48 <= c <= 57) or c == 43 or c == 47 or c == 61


cdef bint _words(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """/\\S\\s+\\S/: white space between the first and the last non-space byte."""
    cdef Py_ssize_t a = 0, b = n - 1, i
    while a < n and _ws(p[a]):
        a += 1
    while b > a and _ws(p[b]):
        b -= 1
    for i in range(a + 1, b):
        if _ws(p[i]):
            return True
    return False


cdef Py_ssize_t _b64_word(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """[A-Za-z0-9+/=]{60,76} followed by a space at i: the index after the space, or -1."""
    cdef Py_ssize_t j = i
    while j < n and j - i <= 76 and _b64(p[j]):
        j += 1
    if j - i < 60 or j - i > 76 or j >= n or p[j] != 32:
        return -1
    return j + 1


def uppercase_counts(list lines, jis):
    cdef Py_ssize_t ln = 0, n, i
    cdef Py_ssize_t counts[3]
    cdef const unsigned char *p
    cdef bytes line
    counts[0] = counts[1] = counts[2] = 0
    for obj in lines:
        line = <bytes?>obj
        p = <const unsigned char *>PyBytes_AS_STRING(line)
        n = PyBytes_GET_SIZE(line)
        if not _words(p, n):
            continue
        i = _b64_word(p, n, 0)
        if i >= 0 and _b64_word(p, n, i) >= 0:
            continue
        if memchr_byte(p, n, 27):
            line = jis.sub(b"", line)
            p = <const unsigned char *>PyBytes_AS_STRING(line)
            n = PyBytes_GET_SIZE(line)
        ln += n
        _count_classes(p, n, counts)
    return (ln, counts[1], counts[2])


cdef inline void _count_classes(const unsigned char *p, Py_ssize_t n, Py_ssize_t *counts) noexcept nogil:
    # counts[1] += the [a-z0-9] bytes, counts[2] += the [A-Z] ones (counts[0]
    # is not used): comparisons summed in bytes over blocks of 255, loops
    # the C compiler vectorizes
    cdef Py_ssize_t i = 0, j, m
    cdef unsigned char c, lower, upper
    while i < n:
        m = i + 255 if n - i > 255 else n
        lower = upper = 0
        for j in range(i, m):
            c = p[j]
            lower += (<unsigned char>(c - 97) < 26) | (<unsigned char>(c - 48) < 10)
            upper += <unsigned char>(c - 65) < 26
        counts[1] += lower
        counts[2] += upper
        i = m


cdef inline bint memchr_byte(const unsigned char *p, Py_ssize_t n, unsigned char b) noexcept nogil:
    return n > 0 and memchr(p, b, <size_t>n) != NULL


cdef inline Py_ssize_t _spaces(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    # the spaces of p[:n], summed in bytes over blocks of 255 (vectorized)
    cdef Py_ssize_t i = 0, j, m, total = 0
    cdef unsigned char b
    while i < n:
        m = i + 255 if n - i > 255 else n
        b = 0
        for j in range(i, m):
            b += p[j] == 32
        total += b
        i = m
    return total


def vertical_words(list lines):
    cdef Py_ssize_t v = -1, ln, spaces, non, pct
    cdef const unsigned char *p
    cdef bytes line
    for obj in lines:
        line = <bytes?>obj
        ln = PyBytes_GET_SIZE(line)
        if ln <= 5:
            continue
        p = <const unsigned char *>PyBytes_AS_STRING(line)
        spaces = _spaces(p, ln)
        non = ln - spaces
        if spaces > non or non == 0:
            pct = 100
        else:
            pct = <Py_ssize_t>((100.0 * spaces) / non)
        if pct > v:
            v = pct
    return v


# ---------------------------------------------------------------- dates

cdef int _CUM0[12]
cdef int _CUM1[12]
_CUM0[:] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
_CUM1[:] = [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335]
cdef int _MAXD[13]
_MAXD[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

_DAYS = frozenset(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
cdef dict _MONTH_NO = {m: k + 1 for k, m in enumerate(_MONTHS)}


cdef inline bint _leap(long y) noexcept nogil:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


cdef inline bint _uws(Py_UCS4 c) noexcept:
    return c == 32 or (9 <= c <= 13)


cdef inline bint _dig(Py_UCS4 c) noexcept:
    return 48 <= c <= 57


cdef inline bint _alpha(Py_UCS4 c) noexcept:
    return (65 <= c <= 90) or (97 <= c <= 122)


cdef long _days_before(long y) noexcept:
    """Days from 1970-01-01 to January 1st of y (1970 <= y)."""
    cdef long d = 0, k
    for k in range(1970, y):
        d += 366 if _leap(k) else 365
    return d


def rfc822_date_fast(str date):
    cdef Py_ssize_t n = len(date), i = 0, j, k
    cdef long dd, y, month, hh, mi, ss, tzh, tzm
    cdef bint neg
    while i < n and _uws(date[i]):
        i += 1
    # optional "Day," / "Day " then white space
    if i + 3 <= n and date[i:i + 3] in _DAYS:
        i += 3
        if i < n and date[i] == ",":
            i += 1
        j = i
        while i < n and _uws(date[i]):
            i += 1
        if i == j:
            return False
    # day: 1 or 2 digits, white space
    j = i
    dd = 0
    while i < n and _dig(date[i]) and i - j < 2:
        dd = dd * 10 + (<long>date[i] - 48)
        i += 1
    if i == j or i >= n or not _uws(date[i]):
        return False
    while i < n and _uws(date[i]):
        i += 1
    # month
    if i + 3 > n:
        return False
    month = _MONTH_NO.get(date[i:i + 3], 0)
    if month == 0:
        return False
    i += 3
    j = i
    while i < n and _uws(date[i]):
        i += 1
    if i == j:
        return False
    # year: 4 digits, white space
    y = 0
    for k in range(4):
        if i >= n or not _dig(date[i]):
            return False
        y = y * 10 + (<long>date[i] - 48)
        i += 1
    j = i
    while i < n and _uws(date[i]):
        i += 1
    if i == j:
        return False
    # hh:mm:ss
    if i + 8 > n or not (_dig(date[i]) and _dig(date[i + 1]) and date[i + 2] == ":" and
                         _dig(date[i + 3]) and _dig(date[i + 4]) and date[i + 5] == ":" and
                         _dig(date[i + 6]) and _dig(date[i + 7])):
        return False
    hh = (<long>date[i] - 48) * 10 + (<long>date[i + 1] - 48)
    mi = (<long>date[i + 3] - 48) * 10 + (<long>date[i + 4] - 48)
    ss = (<long>date[i + 6] - 48) * 10 + (<long>date[i + 7] - 48)
    i += 8
    j = i
    while i < n and _uws(date[i]):
        i += 1
    if i == j:
        return False
    # zone: [-+]dddd
    if i + 5 > n or (date[i] != "+" and date[i] != "-"):
        return False
    neg = date[i] == "-"
    for k in range(1, 5):
        if not _dig(date[i + k]):
            return False
    tzh = (<long>date[i + 1] - 48) * 10 + (<long>date[i + 2] - 48)
    tzm = (<long>date[i + 3] - 48) * 10 + (<long>date[i + 4] - 48)
    i += 5
    # optional white space "(Zone)", then white space to the end
    j = i
    while i < n and _uws(date[i]):
        i += 1
    if i < n:
        if i == j or date[i] != "(":
            return False
        i += 1
        j = i
        while i < n and _alpha(date[i]) and i - j < 5:
            i += 1
        if i == j or i >= n or date[i] != ")":
            return False
        i += 1
        while i < n and _uws(date[i]):
            i += 1
        if i < n:
            return False
    return _seconds(y, month, dd, hh, mi, ss, -((tzh * 60 + tzm) * 60) if neg else (tzh * 60 + tzm) * 60)


cdef object _seconds(long y, long month, long dd, long hh, long mi, long ss, long zone):
    """Util::parse_rfc822_date's clamps and sum (see date_seconds)."""
    cdef long maxd, t
    if dd < 1 or month < 1 or month > 12:
        return None
    if hh > 23:
        hh = 23
    if mi > 59:
        mi = 59
    if ss > 59:
        ss = 59
    maxd = 29 if (month == 2 and _leap(y)) else _MAXD[month]
    if dd > maxd:
        dd = 1
        month += 1
        if month > 12:
            month = 1
            y += 1
    if y < 1970:
        y = 1970
    elif y > 2037:
        y = 2037
    t = ((_days_before(y) + (_CUM1[month - 1] if _leap(y) else _CUM0[month - 1]) + dd - 1) * 86400
         + hh * 3600 + mi * 60 + ss) - zone
    return 0 if t < 0 else t


def date_seconds(y, month, dd, hh, mi, ss, zone):
    """See the twin: the clamped fields of a parsed date as seconds."""
    # (fields past their clamps give the same answer as the clamp's bound:
    # a day above 31 is past every month's end; huge numbers fit no C long)
    if y < 0 or month < 0 or dd < 0 or hh < 0 or mi < 0 or ss < 0:
        raise ValueError("a negative date field")
    if month > 13:
        month = 13
    if dd > 32:
        dd = 32
    if hh > 24:
        hh = 24
    if mi > 60:
        mi = 60
    if ss > 60:
        ss = 60
    if y > 9999:              # (a year of the same leap kind)
        y = 9996 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 9999
    if -(1 << 40) <= zone <= 1 << 40:
        return _seconds(y, month, dd, hh, mi, ss, zone)
    t = _seconds(y, month, dd, hh, mi, ss, 0)      # (a zone no C long holds)
    if t is None:
        return None
    t -= zone
    return 0 if t < 0 else t


def run_calls(list calls, ctx, dict values):
    """See the twin: the eval calls of one area, a hit stored in values."""
    cdef tuple c, args
    cdef object name, res
    for c in calls:
        name = c[0]
        args = <tuple>c[3]
        try:
            if args:
                res = c[2](ctx, c[1], *args)
            else:
                res = c[2](ctx, c[1])
        except Exception:   # SpamAssassin: a failing eval is "no hit"
            continue
        if res and name not in values:
            if not isinstance(res, (int, float)) or isinstance(res, bool) or res <= 0:
                res = 1
            values[name] = res


# ---------------------------------------------------------------- words and Received dates

cdef inline bint _word_a(Py_UCS4 c) noexcept:
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


def ma_counts(str text, bint uni, dict counts):
    """See the twin: the words of text counted into counts."""
    cdef Py_ssize_t n = len(text), i = 0, start
    cdef int kind = PyUnicode_KIND(text)
    cdef void *d = PyUnicode_DATA(text)     # (read in place: no per-character dispatch)
    cdef Py_UCS4 c
    cdef bint word
    cdef object w, got
    while i < n:
        c = PyUnicode_READ(kind, d, i)
        if (Py_UNICODE_ISSPACE(c) if uni else _uws(c)):
            i += 1
            continue
        start = i
        word = False
        while i < n:
            c = PyUnicode_READ(kind, d, i)
            if (Py_UNICODE_ISSPACE(c) if uni else _uws(c)):
                break
            if not word:
                word = (Py_UNICODE_ISALNUM(c) or c == 95) if uni else _word_a(c)
            i += 1
        if word:
            w = text[start:i]
            got = counts.get(w)
            counts[w] = 1 if got is None else got + 1


cdef inline bint _uws_n(Py_UCS4 c) noexcept nogil:
    return c == 32 or (9 <= c <= 13)


cdef inline Py_ssize_t _digits(int kind, void *d, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The index after the run of ASCII digits at i (i itself when none)."""
    cdef Py_UCS4 c
    while i < n:
        c = PyUnicode_READ(kind, d, i)
        if not (48 <= c <= 57):
            break
        i += 1
    return i


cdef Py_ssize_t _rcvd_rest(int kind, void *d, Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    """\\d+ \\S\\S\\S \\d+ \\d+:\\d+:\\d+ \\S+ at j: the end of the match, or -1."""
    cdef Py_ssize_t k, m, t
    cdef Py_UCS4 sep
    k = _digits(kind, d, j, n)
    if k == j or k >= n or PyUnicode_READ(kind, d, k) != 32:
        return -1
    k += 1
    if k + 4 > n:
        return -1
    for m in range(k, k + 3):
        if _uws_n(PyUnicode_READ(kind, d, m)):
            return -1
    k += 3
    if PyUnicode_READ(kind, d, k) != 32:
        return -1
    k += 1
    for t in range(4):
        sep = 32 if (t == 0 or t == 3) else 58
        m = _digits(kind, d, k, n)
        if m == k or m >= n or PyUnicode_READ(kind, d, m) != sep:
            return -1
        k = m + 1
    m = k
    while m < n and not _uws_n(PyUnicode_READ(kind, d, m)):
        m += 1
    return m if m > k else -1


def rcvd_date(str line):
    """See the twin: the first (\\s.?\\d+ \\S\\S\\S \\d+ \\d+:\\d+:\\d+ \\S+) of line (ASCII classes), or None."""
    cdef Py_ssize_t n = len(line), i, e
    cdef int kind = PyUnicode_KIND(line)
    cdef void *d = PyUnicode_DATA(line)
    for i in range(n - 1):
        if not _uws_n(PyUnicode_READ(kind, d, i)):
            continue
        e = -1
        if PyUnicode_READ(kind, d, i + 1) != 10:
            e = _rcvd_rest(kind, d, i + 2, n)
        if e < 0:
            e = _rcvd_rest(kind, d, i + 1, n)
        if e >= 0:
            return line[i:e]
    return None


# ---------------------------------------------------------------- quoted-printable counts

cdef inline bint _qp_char(const unsigned char *p) noexcept nogil:
    # =(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E]) at p (3 bytes available)
    cdef unsigned char a = p[1], b = p[2]
    if a == 48:                                   # 0
        return b == 57
    if a == 51:                                   # 3
        return (48 <= b <= 57) or (65 <= b <= 70 and b != 68)
    if a == 50 or a == 52 or a == 53 or a == 54:  # 2 4 5 6
        return (48 <= b <= 57) or (65 <= b <= 70)
    if a == 55:                                   # 7
        return (48 <= b <= 57) or (65 <= b <= 69)
    return False


def qp_lines(list lines, qp_count):
    """See the twin: the quoted-printable counts of a part's lines."""
    cdef Py_ssize_t kept = 0, longest = 0, size = 0, n, i, e, k
    cdef long long ic = 0, qp
    cdef double fc = 0.0
    cdef bint isf
    cdef const unsigned char *p
    cdef bytes line
    if type(qp_count) is float:
        isf = True
        fc = qp_count
    elif type(qp_count) is int and -9007199254740992 <= qp_count <= 9007199254740992:
        isf = False
        ic = qp_count
    else:
        from postier._pure import spameval as _pure
        return _pure.qp_lines(lines, qp_count)
    for line in lines:
        p = <const unsigned char *>PyBytes_AS_STRING(line)
        n = PyBytes_GET_SIZE(line)
        if n >= 6 and p[0] == 83 and p[1] == 80 and p[2] == 65 and p[3] == 77 and p[4] == 58 \
                and p[5] == 32:           # "SPAM: "
            continue
        kept += 1
        size += n
        if n > longest:
            longest = n
        qp = 0
        i = 0
        while i + 2 < n:
            if p[i] == 61 and _qp_char(p + i):
                qp += 1
                i += 3
            else:
                i += 1
        if not qp:
            continue
        if isf:
            fc += <double>qp
        else:
            ic += qp
        # the =09/=20 run before trailing white space
        e = n
        while e > 0 and _ws(p[e - 1]):
            e -= 1
        k = 0
        while e >= 3 and p[e - 3] == 61 and ((p[e - 2] == 48 and p[e - 1] == 57) or
                                             (p[e - 2] == 50 and p[e - 1] == 48)):
            k += 1
            e -= 3
        if k:
            if not isf:
                isf = True
                fc = <double>ic
            fc -= <double>k
    return (fc if isf else ic), kept, longest, size


def ma_dropped(dict html, dict text):
    """See the twin: the words whose html count the text count matches or exceeds."""
    cdef dict a = text, b = html
    cdef bint text_first = True
    cdef Py_ssize_t pos = 0, dropped = 0
    cdef PyObject *k
    cdef PyObject *v
    cdef PyObject *o
    if len(text) > len(html):
        a, b, text_first = html, text, False
    while PyDict_Next(a, &pos, &k, &v):
        o = PyDict_GetItem(b, <object>k)
        if o == NULL:
            continue
        if text_first:
            if (<object>o) - (<object>v) < 1:
                dropped += 1
        elif (<object>v) - (<object>o) < 1:
            dropped += 1
    return dropped


def rcvd_times(list lines):
    """See the twin: the dates of Received lines (strings where
    rfc822_date_fast gives False), and whether there is such a string."""
    cdef list out = []
    cdef bint slow = False
    for line in lines:
        d = rcvd_date(line)
        if d is None:
            continue
        t = rfc822_date_fast(d)
        if t is False:
            out.append(d)
            slow = True
        elif t is not None:
            out.append(t)
    return out, slow


cdef inline bint _hex_uc(unsigned char c) noexcept nogil:
    return (48 <= c <= 57) or (65 <= c <= 70)


def illegal_counts(bytes raw):
    """See the twin: (control bytes, control and 0x7f-0xff bytes) of raw."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i = 0, j, m, ctrl = 0, high = 0
    cdef unsigned char c, bc, bh
    # (comparisons summed in bytes over blocks of 255, no table: loops the
    # C compiler vectorizes)
    while i < n:
        m = i + 255 if n - i > 255 else n
        bc = bh = 0
        for j in range(i, m):
            c = p[j]
            bc += (c < 32) & (c != 9) & (c != 10) & (c != 13)
            bh += c >= 127
        ctrl += bc
        high += bh
        i = m
    return ctrl, ctrl + high


def text_part_stats(list lines):
    """See the twin: (size, lines with NUL/CR/8-bit bytes, &#xNNNN; entities)."""
    cdef Py_ssize_t size = 0, illegal = 0, ents = 0, n, i
    cdef const unsigned char *p
    cdef const unsigned char *q
    cdef unsigned char c, acc
    cdef bytes line
    for obj in lines:
        line = <bytes?>obj
        p = <const unsigned char *>PyBytes_AS_STRING(line)
        n = PyBytes_GET_SIZE(line)
        size += n
        # (a NUL, CR or 8-bit byte anywhere: OR-ed over the line, a loop
        # the C compiler vectorizes)
        acc = 0
        for i in range(n):
            c = p[i]
            acc |= (c == 0) | (c == 13) | (c >= 128)
        if acc:
            illegal += 1
        # (each '&' that can start an 8-byte entity found by memchr)
        i = 0
        while i + 8 <= n:
            q = <const unsigned char *>memchr(p + i, 38, <size_t>(n - 7 - i))
            if q == NULL:
                break
            i = q - p
            if p[i + 1] == 35 and p[i + 2] == 120 and _hex_uc(p[i + 3]) and \
                    _hex_uc(p[i + 4]) and _hex_uc(p[i + 5]) and _hex_uc(p[i + 6]) and p[i + 7] == 59:
                ents += 1
                i += 8
            else:
                i += 1
    return size, illegal, ents


# ---------------------------------------------------------------- forged Received trail

cdef inline bint _wc(Py_UCS4 c) noexcept:
    # re.A's \w
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


cdef bint _tld_shape(str s):
    # (?:\S{3,}|ie|fr|de) searched, ASCII \s
    cdef Py_ssize_t run = 0, i, n = len(s)
    cdef Py_UCS4 c, p = 0
    for i in range(n):
        c = s[i]
        if c == 32 or 9 <= c <= 13:
            run = 0
        else:
            run += 1
            if run >= 3:
                return True
        if (p == 105 and c == 101) or (p == 102 and c == 114) or (p == 100 and c == 101):
            return True
        p = c
    return False


cdef str _h2d(str h):
    """See the twin: RelayEval's _hostname_to_domain."""
    cdef Py_UCS4 c
    cdef bint alpha = False
    cdef list parts
    cdef str last
    for c in h:
        if (65 <= c <= 90) or (97 <= c <= 122):
            alpha = True
            break
    if not alpha:
        return h
    parts = h.split(".")
    while parts and not parts[len(parts) - 1]:
        parts.pop()
    if len(parts) > 1:
        last = parts[len(parts) - 1]
        if (len(last) >= 3 and last.isalnum()) or _tld_shape(last):
            return ".".join(parts[len(parts) - 2:])
    if len(parts) > 2:
        return ".".join(parts[len(parts) - 3:])
    return h


cdef dict _H2D = {}     # _h2d's answers by host name (the same relays' names recur)


cdef str _h2d_known(str h):
    cdef PyObject *got = PyDict_GetItem(_H2D, h)
    if got != NULL:
        return <str>got
    d = _h2d(h)
    if len(_H2D) >= 20000:
        _H2D.clear()
    _H2D[h] = d
    return d


cdef inline Py_ssize_t _end(str s):
    # the length without one final "\n" ($ matches before it)
    cdef Py_ssize_t n = len(s)
    if n and s[n - 1] == "\n":
        return n - 1
    return n


cdef bint _fr_dom(str s):
    # ^\w+(?:[\w.-]+\.)+\w+$ (re.A) matched: [\w.-] only, a \w first, a
    # "." at index 2 or later after which only \w (at least one) follows
    cdef Py_ssize_t n = _end(s), i, dot = -1
    cdef Py_UCS4 c
    if n < 4 or not _wc(s[0]):
        return False
    for i in range(n):
        c = s[i]
        if c == 46:
            dot = i
        elif not (_wc(c) or c == 45):
            return False
    if dot < 2 or dot == n - 1:
        return False
    for i in range(dot + 1, n):
        if not _wc(s[i]):
            return False
    return True


cdef bint _dotted4(str s):
    # ^\d+\.\d+\.\d+\.\d+$ (re.A) matched
    cdef Py_ssize_t n = _end(s), i, dots = 0, run = 0
    cdef Py_UCS4 c
    for i in range(n):
        c = s[i]
        if 48 <= c <= 57:
            run += 1
        elif c == 46 and run:
            dots += 1
            run = 0
        else:
            return False
    return dots == 3 and run > 0


cdef str _class_b(str s):
    # ^(\d+\.\d+)\.\d+\.\d+$'s group 1 of a dotted quad
    cdef Py_ssize_t i = s.find("."), j
    j = s.find(".", i + 1)
    return s[:j]


def forged_received(list untrusted, is_private):
    """See the twin: (forged trail count, forged helo-ip count)."""
    cdef Py_ssize_t n = len(untrusted), i
    cdef int mf = 0, mih = 0
    cdef list ips = [], by = [], frm = []
    cdef list helo = []
    cdef str b, f, prev, hlo, fip, hc, fc
    for r in untrusted:
        ips.append(r.ip)
        by.append(_h2d_known(r.by.lower()))
        frm.append(_h2d_known(r.rdns.lower()))
        helo.append(r.helo)
    for i in range(n):
        b = <str>by[i]
        if not _fr_dom(b):
            continue
        f = <str?>frm[i] if frm[i] is not None else None
        if f is not None and ips[i] == "127.0.0.1" and (
                f == "localhost" or f == "localhost.localdomain" or
                f == "localhost\n" or f == "localhost.localdomain\n"):
            frm[i] = None
        fip = ips[i]
        hlo = <str>helo[i]
        if _dotted4(hlo) or not hlo.isascii():
            hlo = _h2d(hlo.lower())
            if _dotted4(hlo) and _dotted4(fip) and fip != hlo:
                hc = _class_b(hlo)
                fc = _class_b(fip)
                if hc != fc and not is_private(hlo):
                    mih += 1
        if i > 0:
            prev = frm[i - 1]
            if prev is not None and _fr_dom(prev) and b != prev and \
                    not (b == "msn.com" and prev == "hotmail.com"):
                mf += 1
    return mf, mih


# ---------------------------------------------------------------- FreeMail's body

def at_lines(list lines):
    """See the twin: the indexes of the lines holding "@" or "%40"."""
    cdef list out = []
    cdef Py_ssize_t i, n, k
    cdef const unsigned char *p
    cdef const unsigned char *q
    for i in range(len(lines)):
        line = lines[i]
        if type(line) is not bytes:         # (the twin's test, for any other type)
            if b"@" in line or b"%40" in line:
                out.append(i)
            continue
        p = <const unsigned char *>PyBytes_AS_STRING(line)
        n = PyBytes_GET_SIZE(line)
        if memchr(p, 64, <size_t>n) != NULL:
            out.append(i)
            continue
        # (each "%" that can start "%40" found by memchr)
        k = 0
        while k + 3 <= n:
            q = <const unsigned char *>memchr(p + k, 37, <size_t>(n - 2 - k))
            if q == NULL:
                break
            k = q - p
            if p[k + 1] == 52 and p[k + 2] == 48:
                out.append(i)
                break
            k += 1
    return out


def a_uris(dict detail):
    """See the twin: the URIs of detail found in an anchor and not parsed
    from text."""
    cdef list out = []
    for uri, info in detail.items():
        types = info.get("types") or {}
        if "a" in types and "parsed" not in types:
            out.append(uri)
    return out


_MAILTO_I = re.compile(r"^mailto:", re.I | re.A).match     # (a key that is not a str)


def uri_hosts(dict detail):
    """See the twin: the hosts of detail's URIs but mailto: ones, each once."""
    cdef dict seen = {}
    cdef str u
    for uri, info in detail.items():
        # (^mailto: with re.I | re.A: seven ASCII characters that lowercase to it)
        if type(uri) is str:
            u = <str>uri
            if len(u) >= 7 and (u[0] == "m" or u[0] == "M"):
                u = u[:7]
                if u.isascii() and u.lower() == "mailto:":
                    continue
        elif uri[:1] in ("m", "M") and _MAILTO_I(uri):
            continue
        for host in info.get("hosts") or {}:
            seen[host] = None
    return list(seen)
