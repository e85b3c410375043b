# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The per-line loops of SpamAssassin's message parsing (Cython; twin:
postier._pure.spammime, same API and results, documented there).

Here the lines are cut with memchr, the white space of the rendered text is
collapsed in one pass over its encoded octets (Unicode White_Space read
straight from the UTF-8 sequences when the text is flagged) and the short
lines are cut from that buffer, and the header block is walked without a
regex per line; all_headers makes each "Name: value" line in one
allocation, the lowercased field names remembered across messages.
Quoted-printable decoding and header unfolding find the places they change
with memchr and copy the text between them whole.

Reads no main.cf parameters.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy

DEF MAX_BODY_LINE_LENGTH = 2048
DEF MAX_HEADER_KEY_LENGTH = 256
DEF MAX_HEADER_VALUE_LENGTH = 8192


cpdef list split_lines(bytes data):
    """Perl's split /^/m: pieces ending in \\n (the last one may not)."""
    cdef list out = []
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), s = 0, e
    cdef const char* q
    while s < n:
        q = <const char*>memchr(p + s, 10, n - s)
        if q == NULL:
            out.append(PyBytes_FromStringAndSize(p + s, n - s))
            break
        e = q - p + 1
        out.append(PyBytes_FromStringAndSize(p + s, e - s))
        s = e
    return out


cdef inline int _ascii_space(unsigned char c) noexcept nogil:
    return c == 0x20 or 9 <= c <= 13


cdef inline int _uni_space(const unsigned char* b, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The length of the Unicode White_Space character whose UTF-8 starts at b[i], else 0."""
    cdef unsigned char c = b[i], c1, c2
    if c == 0x20 or 9 <= c <= 13:
        return 1
    if c < 0xC2:
        return 0
    if c == 0xC2:
        if i + 1 < n and (b[i + 1] == 0x85 or b[i + 1] == 0xA0):
            return 2
        return 0
    if i + 2 >= n:
        return 0
    c1 = b[i + 1]
    c2 = b[i + 2]
    if c == 0xE1:
        return 3 if c1 == 0x9A and c2 == 0x80 else 0
    if c == 0xE2:
        if c1 == 0x80 and (0x80 <= c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF):
            return 3
        if c1 == 0x81 and c2 == 0x9F:
            return 3
        return 0
    if c == 0xE3:
        return 3 if c1 == 0x80 and c2 == 0x80 else 0
    return 0


# the octets _collapse has to look at: NUL and the ASCII white space, and
# with uni the first octets of the other Unicode White_Space (see _uni_space)
cdef unsigned char _COLLAPSE_A[256]
cdef unsigned char _COLLAPSE_U[256]


cdef void _collapse_tables() noexcept:
    cdef int c
    for c in range(256):
        _COLLAPSE_A[c] = c == 0 or _ascii_space(c)
        _COLLAPSE_U[c] = _COLLAPSE_A[c] or c == 0xC2 or c == 0xE1 or c == 0xE2 or c == 0xE3


_collapse_tables()


cdef Py_ssize_t _collapse(const unsigned char* b, Py_ssize_t n, unsigned char* out,
                          bint uni) noexcept nogil:
    """White space runs and NULs of b[:n] as text_lines wants them, into out
    (at most n octets); the number of octets written."""
    cdef Py_ssize_t i = 0, j, o = 0, first_nl, last_nl_end
    cdef int k, nl
    cdef unsigned char c
    cdef const unsigned char* special = &_COLLAPSE_A[0]
    if uni:
        special = &_COLLAPSE_U[0]
    while i < n:
        c = b[i]
        if not special[c]:
            # (most octets: one table look-up instead of the space tests)
            out[o] = c
            o += 1
            i += 1
            continue
        if c == 0:
            out[o] = 10
            o += 1
            i += 1
            continue
        if uni:
            k = _uni_space(b, i, n)
        else:
            k = _ascii_space(c)
        if k == 0:
            out[o] = c
            o += 1
            i += 1
            continue
        if c == 0x20 and (i + 1 >= n or not (b[i + 1] == 0x20 or 9 <= b[i + 1] <= 13
                                             or (uni and b[i + 1] >= 0xC2))):
            out[o] = 0x20            # the common single space
            o += 1
            i += 1
            continue
        j = i
        nl = 0
        first_nl = -1
        last_nl_end = -1
        while j < n:
            if uni:
                k = _uni_space(b, j, n)
            else:
                k = _ascii_space(b[j])
            if k == 0:
                break
            if b[j] == 10:
                nl += 1
                if first_nl < 0:
                    first_nl = j
                last_nl_end = j + 1
            j += k
        if nl >= 2:
            if first_nl > i:
                out[o] = 0x20
                o += 1
            out[o] = 10
            o += 1
            if last_nl_end < j:
                out[o] = 0x20
                o += 1
        else:
            out[o] = 0x20
            o += 1
        i = j
    return o


cdef list _short_lines(const char* p, Py_ssize_t n):
    """split_into_array_of_short_lines of p[:n]."""
    cdef list out = []
    cdef Py_ssize_t s = 0, e, cut, k
    cdef const char* q
    while s < n:
        q = <const char*>memchr(p + s, 10, n - s)
        e = n if q == NULL else q - p + 1
        while e - s > MAX_BODY_LINE_LENGTH:
            cut = -1
            k = s + MAX_BODY_LINE_LENGTH
            while k >= s:                  # rfind(" ", 0, 2049)
                if p[k] == 0x20:
                    cut = k
                    break
                k -= 1
            cut = cut + 1 if cut >= 0 else s + MAX_BODY_LINE_LENGTH
            out.append(PyBytes_FromStringAndSize(p + s, cut - s))
            s = cut
        out.append(PyBytes_FromStringAndSize(p + s, e - s))
        s = e
    return out


cpdef list split_short_lines(bytes text):
    """Message::split_into_array_of_short_lines."""
    return _short_lines(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))


cpdef list text_lines(bytes prefix, str text, bint flagged):
    """prefix + text with its white space collapsed, encoded and cut into
    short lines (postier._pure.spammime.text_lines)."""
    cdef bytes raw = text.encode("utf-8", "surrogatepass") if flagged else text.encode("latin-1")
    cdef Py_ssize_t np = PyBytes_GET_SIZE(prefix), n = PyBytes_GET_SIZE(raw), o
    cdef unsigned char* buf = <unsigned char*>malloc(np + n + 1)
    cdef const unsigned char* src
    if buf == NULL:
        raise MemoryError()
    try:
        memcpy(buf, PyBytes_AS_STRING(prefix), np)
        src = <const unsigned char*>PyBytes_AS_STRING(raw)
        with nogil:
            o = _collapse(src, n, buf + np, flagged)
        return _short_lines(<const char*>buf, np + o)
    finally:
        free(buf)


cdef inline bint _header_name_line(bytes cur):
    """/^[\\041-\\071\\073-\\176]+[ \\t]*:/"""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(cur)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(cur), i = 0
    cdef unsigned char c
    while i < n:
        c = p[i]
        if c == 0x3A or c < 0x21 or c > 0x7E:
            break
        i += 1
    if i == 0:
        return False
    while i < n and (p[i] == 0x20 or p[i] == 9):
        i += 1
    return i < n and p[i] == 0x3A


cpdef tuple parse_header_lines(list lines, bint crlf):
    """Message.pm's header loop (postier._pure.spammime.parse_header_lines)."""
    cdef bytes line_ending = b"\r\n" if crlf else b"\n"
    cdef list fields = [], flags = [], pristine = []
    cdef bytes header = None
    cdef bytes cur, key, value
    cdef int errors = 0
    cdef Py_ssize_t i = 0, n = len(lines), ln, colon
    cdef bint eof
    cdef const char* p
    cdef const char* q
    cdef const char* hp
    while True:
        eof = i >= n
        if eof:
            cur = line_ending
        else:
            cur = lines[i]
            i += 1
        ln = PyBytes_GET_SIZE(cur)
        p = PyBytes_AS_STRING(cur)
        if crlf and ln and p[ln - 1] == 10 and (ln == 1 or p[ln - 2] != 13):
            cur = cur[:ln - 1] + b"\r\n"
            ln += 1
            p = PyBytes_AS_STRING(cur)
        if ln and (p[0] == 0x20 or p[0] == 9):
            header = cur if header is None else header + cur
            pristine.append(cur)
            continue
        if header is not None:
            hp = PyBytes_AS_STRING(header)
            q = <const char*>memchr(hp, 0x3A, PyBytes_GET_SIZE(header))
            if q != NULL:
                colon = q - hp
                key = header[:colon].rstrip(b" \t")
                value = header[colon + 1:]
                if crlf:
                    value = value.replace(b"\r\n", b"\n")
                if len(key) > MAX_HEADER_KEY_LENGTH:
                    key = key[:MAX_HEADER_KEY_LENGTH]
                    flags.append("truncated_header")
                if len(value) > MAX_HEADER_VALUE_LENGTH:
                    value = value[:MAX_HEADER_VALUE_LENGTH]
                    flags.append("truncated_header")
                fields.append((key, value))
        if cur == line_ending:
            if eof:
                flags.append("missing_head_body_separator")
            else:
                pristine.append(cur)
            break
        if ln >= 2 and p[0] == 0x2D and p[1] == 0x2D:
            flags.append("missing_head_body_separator")
            i -= 1
            break
        if not _header_name_line(cur):
            errors += 1
            if errors > 3:
                flags.append("missing_head_body_separator")
                i -= 1
                break
        header = cur
        pristine.append(cur)
    return fields, pristine, i, flags


cdef inline bint _blank(bytes ln):
    """/^\\s*$/ on a line (bytes.strip() is empty)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(ln)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(ln), i
    for i in range(n):
        if not _ascii_space(p[i]):
            return False
    return True


cpdef list squeeze_blank_lines(list body):
    """Message.pm: a run of more than 20 blank lines keeps 20 (plus one)."""
    cdef Py_ssize_t start = -1, cnt = len(body) - 1, num
    while cnt >= 0:
        if _blank(<bytes>body[cnt]):
            if start < 0:
                start = cnt
            if cnt != 0:
                cnt -= 1
                continue
        if start >= 0:
            num = start - cnt
            if num > 20:
                del body[cnt + 2:cnt + 2 + num - 20]
            start = -1
        cnt -= 1
    return body


cpdef list body_lines(list lines, Py_ssize_t start, bint crlf):
    """lines[start:], CRLF turned into LF, runs of blank lines capped."""
    cdef list body
    cdef bytes ln
    cdef Py_ssize_t n
    cdef const char* p
    cdef char* q
    if not crlf:
        body = lines[start:]
    else:
        body = []
        for ln in lines[start:]:
            n = PyBytes_GET_SIZE(ln)
            p = PyBytes_AS_STRING(ln)
            if n >= 2 and p[n - 1] == 10 and p[n - 2] == 13:
                if n == 2:
                    ln = b"\n"
                else:
                    ln = PyBytes_FromStringAndSize(NULL, n - 1)    # a new object: writable
                    q = PyBytes_AS_STRING(ln)
                    memcpy(q, p, n - 2)
                    q[n - 2] = 10
            body.append(ln)
    return squeeze_blank_lines(body)


cdef bytes _unfold_strip(bytes raw):
    """(_FOLD_WS.sub(b" ", raw)).strip(): each newline followed by blanks
    becomes one space, then the white space at both ends goes."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i, o, s, e
    cdef unsigned char* buf
    cdef bint fold = False
    cdef bytes res
    cdef const unsigned char* q = <const unsigned char*>memchr(p, 10, n)
    while q != NULL:                    # a newline followed by a blank?
        i = q - p + 1
        if i >= n:
            break
        if p[i] == 0x20 or p[i] == 9:
            fold = True
            break
        q = <const unsigned char*>memchr(p + i, 10, n - i)
    if not fold:
        s = 0
        e = n
        while s < e and _ascii_space(p[s]):
            s += 1
        while e > s and _ascii_space(p[e - 1]):
            e -= 1
        if s == 0 and e == n:
            return raw
        return PyBytes_FromStringAndSize(<const char*>p + s, e - s)
    buf = <unsigned char*>malloc(n + 1)
    if buf == NULL:
        raise MemoryError()
    try:
        o = 0
        i = 0
        while i < n:
            # (the text up to the next newline copied whole)
            q = <const unsigned char*>memchr(p + i, 10, n - i)
            s = n if q == NULL else q - p
            memcpy(buf + o, p + i, s - i)
            o += s - i
            i = s
            if i >= n:
                break
            if i + 1 < n and (p[i + 1] == 0x20 or p[i + 1] == 9):
                i += 1
                while i < n and (p[i] == 0x20 or p[i] == 9):
                    i += 1
                buf[o] = 0x20
            else:
                buf[o] = 10
                i += 1
            o += 1
        s = 0
        e = o
        while s < e and _ascii_space(buf[s]):
            s += 1
        while e > s and _ascii_space(buf[e - 1]):
            e -= 1
        res = PyBytes_FromStringAndSize(<const char*>buf + s, e - s)
    finally:
        free(buf)
    return res


cdef bint _final(bytes dec):
    """Node::_decode_header leaves dec as it is: empty, or ASCII without a
    newline or an encoded word's "=?"."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(dec)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(dec), i
    cdef const unsigned char* q
    if memchr(p, 10, n) != NULL or not _ascii(p, n):
        return False
    q = <const unsigned char*>memchr(p, 0x3D, n)
    while q != NULL:
        i = q - p + 1
        if i >= n:
            break
        if p[i] == 0x3F:
            return False
        q = <const unsigned char*>memchr(p + i, 0x3D, n - i)
    return True


cdef inline bint _ascii(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """No octet of p[:n] has its high bit set (eight at a time)."""
    cdef Py_ssize_t i = 0
    cdef unsigned long long w
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        if w & 0x8080808080808080ULL:
            return False
        i += 8
    while i < n:
        if p[i] & 0x80:
            return False
        i += 1
    return True


cpdef list prepare_fields(list fields):
    """(key, lower-cased key, unfolded stripped value, value, final) of each field."""
    cdef list out = []
    cdef bytes rawkey, raw, dec
    for rawkey, raw in fields:
        dec = _unfold_strip(raw)
        out.append((rawkey, rawkey.decode("latin-1").lower(), dec, raw, _final(dec)))
    return out


# a field name -> its lowercased str (the key of Node.headers), across
# messages (bounded: cleared past 4096 names)
cdef dict _KEYS = {}


cdef inline str _lower_key(bytes k):
    """k.decode("latin-1").lower(), remembered (names up to 256 bytes: a
    MIME part's header name is not cut to MAX_HEADER_KEY_LENGTH)."""
    cdef object got = _KEYS.get(k)
    if got is None:
        if PyBytes_GET_SIZE(k) > 256:
            return k.decode("latin-1").lower()
        if len(_KEYS) >= 4096:
            _KEYS.clear()
        got = _KEYS[k] = k.decode("latin-1").lower()
    return <str>got


cpdef int add_fields(list fields, list order, dict headers, dict raw_headers,
                     object decode) except -1:
    """prepare_fields' fields stored as Node::header does (see the twin)."""
    cdef bytes rawkey, raw, dec
    cdef str key
    cdef object v
    for rawkey, raw in fields:
        dec = _unfold_strip(raw)
        key = _lower_key(rawkey)        # (the names repeat: remembered)
        order.append(rawkey)
        if not _final(dec):
            dec = decode(dec, key)
        v = headers.get(key)
        if v is None:
            headers[key] = [dec]
            raw_headers[key] = [raw]
        else:
            (<list>v).append(dec)
            (<list>raw_headers[key]).append(raw)
    return 0


cpdef tuple part_lines(list body, Py_ssize_t idx, bytes delim, Py_ssize_t stop):
    """(j, lines): body[idx:j] up to the first line starting with delim or
    stop, long lines cut (postier._pure.spammime.part_lines)."""
    cdef list out = []
    cdef Py_ssize_t j = idx, n, s, dl = PyBytes_GET_SIZE(delim)
    cdef bytes cur, piece
    cdef const char* p
    cdef const char* d = PyBytes_AS_STRING(delim)
    if stop > len(body):
        stop = len(body)
    while j < stop:
        cur = body[j]
        n = PyBytes_GET_SIZE(cur)
        p = PyBytes_AS_STRING(cur)
        if n >= dl and memcmp(p, d, dl) == 0:
            break
        if n <= MAX_BODY_LINE_LENGTH:
            out.append(cur)
        else:
            s = 0
            while n - s > MAX_BODY_LINE_LENGTH:
                piece = PyBytes_FromStringAndSize(NULL, MAX_BODY_LINE_LENGTH + 1)
                memcpy(PyBytes_AS_STRING(piece), p + s, MAX_BODY_LINE_LENGTH)
                PyBytes_AS_STRING(piece)[MAX_BODY_LINE_LENGTH] = 10
                out.append(piece)
                s += MAX_BODY_LINE_LENGTH
            out.append(PyBytes_FromStringAndSize(p + s, n - s))
        j += 1
    return j, out


cdef bytes _fold_raw(bytes v):
    """_FOLD_RAW.sub(b" ", v): each \\r?\\n followed by white space, with
    that white space, becomes one space."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v), i = 0, o = 0, k
    cdef unsigned char* buf
    cdef bytes res
    cdef const void* q = memchr(p, 10, n)
    if q == NULL:
        return v
    k = <const unsigned char*>q - p
    if k + 1 >= n or not _ascii_space(p[k + 1]):
        # the one newline most values have, at their end: nothing to fold
        q = memchr(p + k + 1, 10, n - k - 1) if k + 1 < n else NULL
        if q == NULL:
            return v
    buf = <unsigned char*>malloc(n + 1)
    if buf == NULL:
        raise MemoryError()
    try:
        while i < n:
            k = 0
            if p[i] == 13 and i + 2 < n and p[i + 1] == 10 and _ascii_space(p[i + 2]):
                k = i + 2
            elif p[i] == 10 and i + 1 < n and _ascii_space(p[i + 1]):
                k = i + 1
            if k:
                while k < n and _ascii_space(p[k]):
                    k += 1
                buf[o] = 0x20
                o += 1
                i = k
                continue
            buf[o] = p[i]
            o += 1
            i += 1
        res = PyBytes_FromStringAndSize(<const char*>buf, o)
    finally:
        free(buf)
    return res


cdef bytes _join3(bytes a, bytes b, bint nl):
    """a + b": " + b (+ b"\\n") in one allocation."""
    cdef Py_ssize_t na = PyBytes_GET_SIZE(a), nb = PyBytes_GET_SIZE(b)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, na + 2 + nb + nl)
    cdef char* o = PyBytes_AS_STRING(out)
    memcpy(o, PyBytes_AS_STRING(a), na)
    o[na] = 0x3A
    o[na + 1] = 0x20
    memcpy(o + na + 2, PyBytes_AS_STRING(b), nb)
    if nl:
        o[na + 2 + nb] = 10
    return out


cpdef object all_headers(list order, dict values, bint raw):
    """The "Name: value\\n" line of each field in order, None past
    MAX_HEADER_LENGTH (postier._pure.spammime.all_headers)."""
    cdef dict seen = {}
    cdef list out = []
    cdef list vals
    cdef Py_ssize_t size = 0, j
    cdef bytes k, contents
    cdef str key
    cdef object got
    for k in order:
        key = _lower_key(k)
        got = seen.get(key)
        j = 0 if got is None else <Py_ssize_t>got
        seen[key] = j + 1
        got = values.get(key.strip() if raw else key)
        if got is None:
            continue
        vals = <list>got
        if j >= len(vals):
            continue
        if raw:
            contents = _fold_raw(<bytes>vals[j])
            size += len(key) + len(contents) + 2
            out.append(_join3(k, contents, False))
        else:
            contents = <bytes>vals[j]
            size += len(key) + len(contents) + 3
            out.append(_join3(k, contents, True))
    return out if size <= 65536 else None


cdef inline int _hexval(unsigned char c) noexcept nogil:
    if 0x30 <= c <= 0x39:
        return c - 0x30
    if 0x41 <= c <= 0x46:
        return c - 0x37
    if 0x61 <= c <= 0x66:
        return c - 0x57
    return -1


cdef Py_ssize_t _qp_pass(const unsigned char* p, Py_ssize_t n, unsigned char* out, int step) noexcept nogil:
    """One of Util::qp_decode's substitutions over p[:n] into out; the length
    written.  (The text between the places a substitution can apply, found
    with memchr, is copied whole.)"""
    cdef Py_ssize_t i = 0, k, e, t, o = 0
    cdef int h1, h2
    cdef const unsigned char* q
    while i < n:
        q = <const unsigned char*>memchr(p + i, 10 if step == 1 else 0x3D, n - i)
        if q == NULL:
            break
        k = q - p
        if step == 1:
            # s/[ \t]+(?=\r?\n)//: the blanks that end the line (before its \r\n or \n)
            e = k - 1 if k > i and p[k - 1] == 13 else k
            t = e
            while t > i and (p[t - 1] == 0x20 or p[t - 1] == 9):
                t -= 1
            memcpy(out + o, p + i, t - i)
            o += t - i
            memcpy(out + o, p + e, k + 1 - e)
            o += k + 1 - e
            i = k + 1
            continue
        memcpy(out + o, p + i, k - i)
        o += k - i
        if step == 2:
            # s/=\r?\n//
            if k + 1 < n and p[k + 1] == 10:
                i = k + 2
                continue
            if k + 2 < n and p[k + 1] == 13 and p[k + 2] == 10:
                i = k + 3
                continue
        elif k + 2 < n:
            # s/=([0-9a-fA-F]{2})/chr(hex($1))/e
            h1 = _hexval(p[k + 1])
            h2 = _hexval(p[k + 2])
            if h1 >= 0 and h2 >= 0:
                out[o] = <unsigned char>(h1 * 16 + h2)
                o += 1
                i = k + 3
                continue
        out[o] = 0x3D
        o += 1
        i = k + 1
    memcpy(out + o, p + i, n - i)
    return o + n - i


cpdef bytes qp_decode(bytes s):
    """Util::qp_decode (postier._pure.spammime.qp_decode)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(s), o
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(s)
    cdef unsigned char* a
    cdef unsigned char* b
    if memchr(p, 0x3D, n) == NULL and memchr(p, 10, n) == NULL:
        return s
    a = <unsigned char*>malloc(2 * n + 2)
    if a == NULL:
        raise MemoryError()
    b = a + n + 1
    try:
        with nogil:
            o = _qp_pass(p, n, a, 1)
            o = _qp_pass(a, o, b, 2)
            o = _qp_pass(b, o, a, 3)
        return PyBytes_FromStringAndSize(<const char*>a, o)
    finally:
        free(a)
