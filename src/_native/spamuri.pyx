# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The common shapes of URI canonicalisation recognised cheaply, compiled
(twin: postier._pure.spamuri, where the API is documented): simple_http,
uri_host.  The same results as the twin for every input
(tests/unit/content/test_spam_uri_native.py).

Reads no main.cf parameters.
"""

from cpython.unicode cimport PyUnicode_READ_CHAR, PyUnicode_GET_LENGTH


cdef inline bint _printable(str s):
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef Py_UCS4 c
    for i in range(n):
        c = PyUnicode_READ_CHAR(s, i)
        if c < 0x21 or c > 0x7e:
            return False
    return True


cdef inline bint _alnum(Py_UCS4 c) noexcept:
    return (0x61 <= c <= 0x7a) or (0x41 <= c <= 0x5a) or (0x30 <= c <= 0x39)


def simple_http(str uri):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(uri), start, end, i
    cdef Py_UCS4 c, prev = 0
    if uri.startswith("http://"):
        proto = "http://"
        start = 7
    elif uri.startswith("https://"):
        proto = "https://"
        start = 8
    else:
        return None
    # printable ASCII, no \ % @ or &#
    for i in range(n):
        c = PyUnicode_READ_CHAR(uri, i)
        if c < 0x21 or c > 0x7e or c == 0x5c or c == 0x25 or c == 0x40:
            return None
        if c == 0x23 and prev == 0x26:
            return None
        prev = c
    end = start
    while end < n:
        c = PyUnicode_READ_CHAR(uri, end)
        if c == 0x2f or c == 0x3f or c == 0x23 or c == 0x3a:
            break
        if not (_alnum(c) or c == 0x2e or c == 0x5f or c == 0x2d):
            return None
        end += 1
    if end < n and PyUnicode_READ_CHAR(uri, end) != 0x2f:
        return None
    if end == start:
        return None
    c = PyUnicode_READ_CHAR(uri, start)
    if 0x30 <= c <= 0x39:
        return None
    if not _alnum(PyUnicode_READ_CHAR(uri, end - 1)):
        return None
    return proto, uri[start:end], uri[end:]


def uri_host(str uri):
    cdef Py_ssize_t n, i, j, k, k2
    cdef Py_UCS4 c
    if not _printable(uri):
        return None
    s = uri.lower()
    if s.startswith(("javascript:", "cid:", "file:", "mailto:")):
        return None
    n = PyUnicode_GET_LENGTH(s)
    i = 0
    while i < n and 0x61 <= PyUnicode_READ_CHAR(s, i) <= 0x7a:
        i += 1
    j = 0
    if 0 < i < n and PyUnicode_READ_CHAR(s, i) == 0x3a:       # s/^[a-z]+:\/{0,2}//
        i += 1
        k = 0
        while k < 2 and i < n and PyUnicode_READ_CHAR(s, i) == 0x2f:
            i += 1
            k += 1
        j = i
    i = j
    while i < n:                                                # s/[\/?#].*//
        c = PyUnicode_READ_CHAR(s, i)
        if c == 0x2f or c == 0x3f or c == 0x23:
            break
        i += 1
    # s is now s[j:i]
    k = i - 1
    while k >= j and PyUnicode_READ_CHAR(s, k) != 0x40:        # s/^[^\/]*@//
        k -= 1
    if k >= j:
        j = k + 1
    k = i - 1
    while k >= j and PyUnicode_READ_CHAR(s, k) != 0x3a:        # s/:\d*$//
        k -= 1
    if k >= j:
        c = 0
        for k2 in range(k + 1, i):
            c = PyUnicode_READ_CHAR(s, k2)
            if not (0x30 <= c <= 0x39):
                break
        else:
            i = k
    return s[j:i]


cdef inline bint _delim(Py_UCS4 c) noexcept:
    # white space (re.A's \s), ><"`}]{[| ESC NBSP , ( ' @ and 0x80-0xff
    if c >= 0x80:
        return c <= 0xff
    return (c == 32 or 9 <= c <= 13 or c == 0x3e or c == 0x3c or c == 0x22 or c == 0x60
            or c == 0x7d or c == 0x5d or c == 0x7b or c == 0x5b or c == 0x7c or c == 0x1b
            or c == 0x2c or c == 0x28 or c == 0x27 or c == 0x40)


def match_start(str s, Py_ssize_t pos, Py_ssize_t hit):
    cdef Py_ssize_t i = hit - 1
    if hit > PyUnicode_GET_LENGTH(s):
        i = PyUnicode_GET_LENGTH(s) - 1
    while i >= pos and i >= 0:
        if _delim(PyUnicode_READ_CHAR(s, i)):
            return i + 1
        i -= 1
    return pos
