# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The common shapes of URI canonicalisation recognised cheaply, compiled
(twin: postier._pure.spamuri, where the API is documented): simple_http,
plain_canonical (a plain URL's canonical forms in one call: the scan,
the redirector literals, the bare-name test and the host's memo),
quick_canonical (plain_canonical's answers and plain mailto: URIs'),
text_quick (a plain http(s) match's text URI),
detail_entries (the URI detail list's loops over text matches and HTML
URIs, the memo look-ups and the entries built in C; canonical forms and
text matches not remembered yet come from quick_canonical and text_quick
when they answer, else from the caller's functions), uri_bytes (a detail
list's cleaned URIs once, encoded), uri_host, uri_lines (the lines a URI prefilter hit needs, one C loop per
line), UriPrefilter (the URI prefilter's hits, one C scan), any_in
(lowercase literals in a target, by memmem), host_to_domain
(a lowercased ASCII host's labels checked and its registry domain cut out
in one pass; other hosts go the twin's way), UriMatcher (the linkified-URI
pattern's matches, its alternatives matched by hand at the start positions
near each prefilter hit, as UriExtractor._window_match tries them).  The same results as the twin for every input
(tests/unit/content/test_spam_uri_native.py, test_spam_uri_lines.py,
test_spam_uri_matcher.py).

Reads no main.cf parameters.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.unicode cimport (PyUnicode_1BYTE_DATA, PyUnicode_1BYTE_KIND, PyUnicode_GET_LENGTH, PyUnicode_KIND,
                              PyUnicode_READ_CHAR)
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, strcspn

from postier._pure.spamuri import _CI_CO, _PCT_PRINTABLE, _US_STATES, _domain_of


cdef extern from "string.h":
    void *memmem(const void *hay, size_t hlen, const void *needle, size_t nlen) nogil


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


cdef Py_ssize_t _simple_span(str uri, Py_ssize_t *hend) noexcept:
    """simple_http's test: the length of the scheme with its "//" (7 or 8,
    the host starting there) with the host's end in hend[0], or 0."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(uri), start, end, i
    cdef Py_UCS4 c, prev = 0
    cdef bint dot
    if n < 8 or PyUnicode_READ_CHAR(uri, 0) != 0x68 or PyUnicode_READ_CHAR(uri, 1) != 0x74 \
            or PyUnicode_READ_CHAR(uri, 2) != 0x74 or PyUnicode_READ_CHAR(uri, 3) != 0x70:
        return 0
    start = 4
    if PyUnicode_READ_CHAR(uri, 4) == 0x73:
        start = 5
    if start + 2 >= n or PyUnicode_READ_CHAR(uri, start) != 0x3a \
            or PyUnicode_READ_CHAR(uri, start + 1) != 0x2f or PyUnicode_READ_CHAR(uri, start + 2) != 0x2f:
        return 0
    start += 3
    # printable ASCII, no \ % or &# (an "@" can only be after the host:
    # the host loop below refuses one)
    for i in range(n):
        c = PyUnicode_READ_CHAR(uri, i)
        if c < 0x21 or c > 0x7e or c == 0x5c or c == 0x25:
            return 0
        if c == 0x23 and prev == 0x26:
            return 0
        prev = c
    end = start
    while end < n:
        c = PyUnicode_READ_CHAR(uri, end)
        if c == 0x2f or c == 0x3f or c == 0x23 or c == 0x3a:
            break
        if not (_alnum(c) or c == 0x2e or c == 0x5f or c == 0x2d):
            return 0
        end += 1
    if end < n and PyUnicode_READ_CHAR(uri, end) != 0x2f:
        return 0
    if end == start:
        return 0
    if not _alnum(PyUnicode_READ_CHAR(uri, end - 1)):
        return 0
    c = PyUnicode_READ_CHAR(uri, start)
    if 0x30 <= c <= 0x39:
        # a numeric host: only with a "." and no label starting with "0"
        # (no decimal, hex or octal form to rewrite)
        if c == 0x30:
            return 0
        dot = False
        for i in range(start + 1, end):
            if PyUnicode_READ_CHAR(uri, i) == 0x2e:
                dot = True
                if i + 1 < end and PyUnicode_READ_CHAR(uri, i + 1) == 0x30:
                    return 0
        if not dot:
            return 0
    hend[0] = end
    return start


def simple_http(str uri):
    cdef Py_ssize_t start, end = 0
    start = _simple_span(uri, &end)
    if start == 0:
        return None
    return ("http://" if start == 7 else "https://"), uri[start:end], uri[end:]


cdef object _MISSING = object()


def plain_canonical(str uri, object lits, dict memo, host_domain):
    """See the twin."""
    return _plain(uri, lits, memo, host_domain)


cdef object _plain(str uri, object lits, dict memo, host_domain):
    """plain_canonical's answer."""
    cdef Py_ssize_t start, end = 0, n, i, dots = 0, firstdot = -1
    cdef const unsigned char *p
    cdef bint upper = False
    cdef str nhost
    if lits is None:
        return None
    start = _simple_span(uri, &end)
    if start == 0:
        return None
    n = PyUnicode_GET_LENGTH(uri)
    if n > 8192:                    # uri.MAX_URI_LENGTH
        return None
    # (printable ASCII: one byte per character)
    p = <const unsigned char *>PyUnicode_1BYTE_DATA(uri)
    if memchr(p + end, 0x3a, n - end) != NULL:
        return None
    if PyTuple_GET_SIZE(lits) and _any_in(p, n, <tuple>lits):
        return None
    for i in range(start, end):
        if 0x41 <= p[i] <= 0x5a:
            upper = True
        elif p[i] == 0x2e:
            dots += 1
            if firstdot < 0:
                firstdot = i
    nhost = uri[start:end]
    if upper:
        nhost = nhost.lower()
    if start == 7 and (dots == 0 or (dots == 1 and firstdot == start + 3 and nhost.startswith("www."))):
        return None                 # a bare-name form too
    return _with_domain(uri, nhost, memo, host_domain)


cdef tuple _with_domain(str uri, str host, dict memo, host_domain):
    """([uri], {domain: 1}, {host: domain}, False) with host's registry
    domain (memo, else host_domain(host)), or ([uri], {}, {}, False)."""
    d = memo.get(host, _MISSING)
    if d is _MISSING:
        d = host_domain(host)
    if d is None:
        return [uri], {}, {}, False
    return [uri], {d[0]: 1}, {d[1]: d[0]}, False


def quick_canonical(str uri, object lits, dict memo, host_domain):
    """See the twin."""
    return _quick(uri, lits, memo, host_domain)


cdef object _quick(str uri, object lits, dict memo, host_domain):
    """quick_canonical's answer."""
    cdef Py_ssize_t n, i, at = -1
    cdef const unsigned char *p
    cdef unsigned char c
    cdef str host
    n = PyUnicode_GET_LENGTH(uri)
    if n >= 7 and PyUnicode_READ_CHAR(uri, 0) == 0x6d and PyUnicode_READ_CHAR(uri, 6) == 0x3a \
            and uri.startswith("mailto:"):
        # mailto:[!-$'-;=>@-~]*, at most MAX_URI_LENGTH characters
        if n > 8192 or PyUnicode_KIND(uri) != PyUnicode_1BYTE_KIND:
            return None
        p = <const unsigned char *>PyUnicode_1BYTE_DATA(uri)
        for i in range(7, n):
            c = p[i]
            if c < 0x21 or c > 0x7e or c == 0x25 or c == 0x26 or c == 0x3c or c == 0x3f:
                return None
            if c == 0x40:
                if at >= 0:
                    at = -2
                elif at == -1:
                    at = i
        if at < 0:
            return [uri], {}, {}, False
        host = uri[at + 1:]
        for i in range(at + 1, n):
            if 0x41 <= p[i] <= 0x5a:
                host = host.lower()
                break
        return _with_domain(uri, host, memo, host_domain)
    return _plain(uri, lits, memo, host_domain)


cdef dict _PARSED = {"parsed": 1}


cdef bint _detail_add(dict udl, dict memo, dict canon_memo, canonicalize, Py_ssize_t canon_memo_max,
                      Py_ssize_t canon_uri_max, str uri, object types, bint valid_domain,
                      tuple quick) except -1:
    """One URI into the detail list (the twin's detail_entries.add)."""
    cdef object got, have
    cdef tuple t
    cdef dict ent, merged, td
    cdef object cleaned, domains, hosts
    cdef bint truncated
    if types is None:
        types = dict(_PARSED)
    td = <dict?>types
    got = canon_memo.get(uri)
    if got is None:
        # (a URI too long for canon_memo is remembered for this message)
        if PyUnicode_GET_LENGTH(uri) > canon_uri_max:
            got = memo.get(uri)
        if got is None:
            if quick is not None:
                got = _quick(uri, quick[0], <dict?>quick[1], quick[2])
            if got is None:
                got = canonicalize(uri)
            if PyUnicode_GET_LENGTH(uri) <= canon_uri_max:
                if len(canon_memo) >= canon_memo_max:
                    canon_memo.clear()
                canon_memo[uri] = got
            else:
                memo[uri] = got
    t = <tuple?>got
    cleaned = t[0]
    domains = t[1]
    hosts = t[2]
    truncated = t[3]
    if not cleaned:
        return False
    if valid_domain and not domains:
        return False
    got = udl.get(uri)
    if got is None:
        ent = {"truncated": True} if truncated else {}
        udl[uri] = ent
        if not td.get("noclean"):
            ent["cleaned"] = cleaned
        ent["domains"] = domains
        ent["hosts"] = hosts
        ent["types"] = td
        return True
    ent = <dict>got
    if truncated:
        ent["truncated"] = True
    if not td.get("noclean"):
        have = ent.get("cleaned")
        if have:
            merged = dict.fromkeys(have)
            merged.update(dict.fromkeys(cleaned))
            ent["cleaned"] = list(merged)
        else:
            ent["cleaned"] = cleaned
    have = ent.get("domains")
    ent["domains"] = {**have, **domains} if have else domains
    have = ent.get("hosts")
    ent["hosts"] = {**have, **hosts} if have else hosts
    have = ent.get("types")
    ent["types"] = {**have, **td} if have else td
    return True


cdef str _PUNCT = "-~!@#^&*()_+=:;'?,."


cdef object _text_quick(tuple g):
    """UriExtractor._text_uri(g) for a match that is an http:// or https://
    URL (lowercase scheme; group 1 only) without ")" or a line feed: the URL
    with the trailing punctuation cut, linkified as it is with types
    {"parsed": 1} (None as its (uri, types) when only the scheme is left);
    None (no answer) for every other match."""
    cdef str raw
    if PyTuple_GET_SIZE(g) != 4 or g[1] is not None or g[2] is not None or g[3] is not None:
        return None
    if type(g[0]) is not str:
        return None
    raw = <str>g[0]
    if not (raw.startswith("http://") or raw.startswith("https://")) or ")" in raw or "\n" in raw:
        return None
    raw = raw.rstrip(_PUNCT)
    if raw == "http://" or raw == "https://":
        return raw, None
    return raw, (raw, {"parsed": 1})


def text_quick(tuple groups):
    """See the twin."""
    return _text_quick(groups)


def detail_entries(list found, list html_all, dict text_memo, text_uri, dict canon_memo, canonicalize,
                   tuple limits, tuple quick=None):
    """See the twin."""
    cdef Py_ssize_t text_memo_max = limits[0], text_uri_max = limits[1]
    cdef Py_ssize_t canon_memo_max = limits[2], canon_uri_max = limits[3]
    cdef dict udl = {}, memo = {}
    cdef set seen = set(), aseen
    cdef tuple m, got
    cdef object res, raw, ud, at, a
    cdef dict info
    cdef list ent
    for item in found:
        m = <tuple?>item
        key = m[0]
        res = text_memo.get(key)
        if res is None:
            res = _text_quick(<tuple?>key)
            if res is None:
                res = text_uri(key)
            if <Py_ssize_t>m[1] <= text_uri_max:
                if len(text_memo) >= text_memo_max:
                    text_memo.clear()
                text_memo[key] = res
        got = <tuple?>res
        raw = got[0]
        if raw in seen:
            continue
        seen.add(raw)
        res = got[1]
        if res is not None:
            _detail_add(udl, memo, canon_memo, canonicalize, canon_memo_max, canon_uri_max,
                        (<tuple?>res)[0], dict((<tuple?>res)[1]), True, quick)
    for html in html_all:
        ud = (<dict?>html).get("uri_detail")
        if not ud:
            continue
        for uri, infoo in (<dict?>ud).items():
            info = <dict?>infoo
            if _detail_add(udl, memo, canon_memo, canonicalize, canon_memo_max, canon_uri_max,
                           uri, info.get("types"), False, quick):
                at = info.get("anchor_text")
                if at:
                    ent = <list>(<dict>udl[uri]).setdefault("anchor_text", [])
                    aseen = set()
                    for a in at:
                        if a not in aseen:
                            aseen.add(a)
                            ent.append(a)
    return udl


def uri_bytes(dict udl):
    """See the twin."""
    cdef set seen = set()
    cdef list out = []
    cdef str c
    for info in udl.values():
        cl = (<dict?>info).get("cleaned")
        if not cl:
            continue
        for co in cl:
            c = <str?>co
            if c in seen:
                continue
            seen.add(c)
            # (a str whose characters all fit in one byte is stored so: kind
            # 1 is exactly "Latin-1 encodes it")
            if PyUnicode_KIND(c) == PyUnicode_1BYTE_KIND:
                out.append(PyBytes_FromStringAndSize(<char*>PyUnicode_1BYTE_DATA(c), PyUnicode_GET_LENGTH(c)))
            else:
                out.append(c.encode("utf-8", "surrogatepass"))
    return out


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


cdef inline bint _may_uri(bytes line) noexcept:
    # "@" or ":", "." then [A-Za-z\x80-\xff], or [wWpP0-9] then "."
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(line)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(line)
    cdef unsigned char c, d
    for i in range(n):
        c = p[i]
        if c == 0x40 or c == 0x3a:
            return True
        if c == 0x2e:
            if i + 1 < n:
                d = p[i + 1] | 0x20
                if (0x61 <= d <= 0x7a) or p[i + 1] >= 0x80:
                    return True
            if i > 0:
                d = p[i - 1]
                if (d | 0x20) == 0x77 or (d | 0x20) == 0x70 or 0x30 <= d <= 0x39:
                    return True
    return False


def uri_lines(list lines):
    cdef list out = []
    for line in lines:
        if type(line) is not bytes or _may_uri(<bytes>line):
            out.append(line)      # (anything but bytes: kept, the prefilter decides)
    return out


cdef inline unsigned char _low(unsigned char c) noexcept:
    return c + 32 if 0x41 <= c <= 0x5a else c


cdef inline bint _lit_at(const unsigned char* p, Py_ssize_t n, Py_ssize_t i,
                         const char* lit, Py_ssize_t m) noexcept:
    # p[i:i+m], ASCII capitals lowered, == lit (lowercase)
    cdef Py_ssize_t k
    if i + m > n:
        return False
    for k in range(m):
        if _low(p[i + k]) != <unsigned char>lit[k]:
            return False
    return True


cdef class UriPrefilter:
    """See postier._pure.spamuri.UriPrefilter."""
    cdef unsigned char one[32]          # bitset: the one-byte TLDs
    cdef unsigned char two[8192]        # bitset: the first two bytes of the longer ones
    cdef dict by2                       # those two bytes (an int) -> the TLDs (bytes)

    def __init__(self, tlds):
        cdef int k
        cdef bytes b
        self.by2 = {}
        for k in range(32):
            self.one[k] = 0
        for k in range(8192):
            self.two[k] = 0
        for t in tlds:
            b = t.lower().encode("ascii")
            if len(b) == 1:
                self.one[b[0] >> 3] |= 1 << (b[0] & 7)
            elif len(b) > 1:
                k = (b[0] << 8) | b[1]
                self.two[k >> 3] |= 1 << (k & 7)
                self.by2.setdefault(k, []).append(b)
        for k, v in self.by2.items():
            self.by2[k] = tuple(sorted(v, key=len))

    def search(self, line, Py_ssize_t pos=0):
        # every alternative holds an "@", "." or ":" at a fixed distance from
        # its start (0 for @ and .TLD; 3 in ftp. ftp:// www.; 4-5 in
        # www1. www12. http:// https://; 6 in mailto:) and no such byte
        # before it: the first of these bytes that ends an alternative
        # starting at or after pos gives the leftmost hit (the earliest start
        # it ends)
        if type(line) is not bytes:
            line = bytes(line)              # (a bytearray or memoryview, as re2 takes them)
        return self._find(<const unsigned char*>PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), pos)

    cdef Py_ssize_t _find(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t pos):
        cdef Py_ssize_t i, s
        cdef unsigned char c
        cdef int k
        cdef bytes t
        if pos < 0:
            pos = 0
        i = pos
        while i < n:
            # skip to the next ".", "@" or ":" (glibc's strcspn reads 16 bytes
            # a step; a bytes object's data ends with a NUL, and a NUL inside
            # it stops strcspn early: stepped over below)
            i += <Py_ssize_t>strcspn(<const char*>p + i, ".@:")
            if i >= n:
                break
            c = p[i]
            if c != 0x2e and c != 0x40 and c != 0x3a:
                i += 1
                continue
            if c == 0x40:                                       # @
                return i
            if c == 0x3a:                                       # http:// https:// ftp:// mailto:
                if _lit_at(p, n, i, "://", 3):
                    s = i - 5
                    if s >= pos and _lit_at(p, n, s, "https", 5):
                        return s
                    s = i - 4
                    if s >= pos and _lit_at(p, n, s, "http", 4):
                        return s
                    s = i - 3
                    if s >= pos and _lit_at(p, n, s, "ftp", 3):
                        return s
                s = i - 6
                if s >= pos and _lit_at(p, n, s, "mailto", 6):
                    return s
                i += 1
                continue
            # "." : www12. www1. www. ftp. (earliest start first), then .TLD
            s = i - 5
            if s >= pos and _lit_at(p, n, s, "www", 3) and 0x30 <= p[s + 3] <= 0x39 \
                    and 0x30 <= p[s + 4] <= 0x39:
                return s
            s = i - 4
            if s >= pos and _lit_at(p, n, s, "www", 3) and 0x30 <= p[s + 3] <= 0x39:
                return s
            s = i - 3
            if s >= pos and (_lit_at(p, n, s, "www", 3) or _lit_at(p, n, s, "ftp", 3)):
                return s
            if i + 1 < n:
                c = _low(p[i + 1])
                if self.one[c >> 3] & (1 << (c & 7)):
                    return i
                if i + 2 < n:
                    k = (c << 8) | _low(p[i + 2])
                    if self.two[k >> 3] & (1 << (k & 7)):
                        for t in self.by2[k]:
                            if _lit_at(p, n, i + 1, PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t)):
                                return i
            i += 1
        return -1



# UriMatcher's byte classes (a byte of a line is the latin-1 character the
# pattern sees): bit 1 re.A's \w, 2 the (?<=[start]) class, 4 `end`, 8
# `end_email`, 16 `end_at`, 32 the schemeless host's look-behind class, 64
# [a-z0-9._-] (any case), 128 [A-Za-z0-9-] (a TLD's characters)
cdef unsigned char _UC[256]


cdef void _init_classes():
    cdef int c
    cdef bytes start = b"><\"'`,{[(|\x1b\xa0 \t\n\r\x0b\x0c"
    cdef bytes end = b"><\"`}]{[|\x1b\xa0 \t\n\r\x0b\x0c"
    cdef bytes scstart = b"!\"#$&'()*+,/:;<=>?@[\\]^`{|}~ \t\n\r\x0b\x0c\x1b\xa0"
    for c in range(256):
        _UC[c] = 0
        if (0x61 <= c <= 0x7a) or (0x41 <= c <= 0x5a) or (0x30 <= c <= 0x39):
            _UC[c] |= 1 | 64 | 128
        if c == 0x5f:
            _UC[c] |= 1 | 64
        if c == 0x2e:
            _UC[c] |= 64
        if c == 0x2d:
            _UC[c] |= 64 | 128
        if c in start:
            _UC[c] |= 2
        if c in end:
            _UC[c] |= 4 | 8 | 16
        if c in b",('" or c >= 0x80:
            _UC[c] |= 8 | 16
        if c == 0x40:
            _UC[c] |= 16
        if c in scstart:
            _UC[c] |= 32


_init_classes()


cdef inline Py_ssize_t _run_not(const unsigned char* p, Py_ssize_t n, Py_ssize_t i,
                                unsigned char cls, Py_ssize_t cap) noexcept:
    # the length of the run of bytes outside cls from i, counted up to cap + 1
    cdef Py_ssize_t k = i, stop = i + cap + 1
    if stop > n:
        stop = n
    while k < stop and not (_UC[p[k]] & cls):
        k += 1
    return k - i


cdef inline Py_ssize_t _run_in(const unsigned char* p, Py_ssize_t n, Py_ssize_t i,
                               unsigned char cls, Py_ssize_t cap) noexcept:
    cdef Py_ssize_t k = i, stop = i + cap + 1
    if stop > n:
        stop = n
    while k < stop and (_UC[p[k]] & cls):
        k += 1
    return k - i


cdef class UriMatcher:
    """See postier._pure.spamuri.UriMatcher."""
    cdef UriPrefilter pre
    cdef frozenset tlds
    cdef Py_ssize_t maxlen

    def __init__(self, tlds):
        cdef set got = set()
        cdef str t
        for t in tlds:
            t = t.lower()
            if not t or not ("a" <= t[0] <= "z") or not all(
                    ("a" <= c <= "z") or ("0" <= c <= "9") or c == "-" for c in t):
                raise ValueError(f"TLD {t!r} is not [a-z][a-z0-9-]*")
            got.add(t.encode("ascii"))
        self.tlds = frozenset(got)
        self.maxlen = max([len(b) for b in got], default=0)
        self.pre = UriPrefilter(tlds)

    cdef bint _tld(self, const unsigned char* p, Py_ssize_t i, Py_ssize_t k):
        # p[i:i+k], lowered, is a TLD
        cdef unsigned char buf[64]
        cdef Py_ssize_t m
        if k > self.maxlen or k > 64:
            return False
        for m in range(k):
            buf[m] = _low(p[i + m])
        return PyBytes_FromStringAndSize(<char*>buf, k) in self.tlds

    cdef object _at(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t q, bytes line):
        # the match of the pattern's alternatives at q (its start condition
        # holds there): (groups, length), or None
        cdef Py_ssize_t L = 0, r, a, b, c, k, j, t, e, e2
        cdef unsigned char x = _low(p[q])
        # (https?|ftp)://  or  (www\d{0,2}|ftp)\.  then [^end]{1,2048}
        if x == 0x68:
            if _lit_at(p, n, q, "https://", 8):
                L = 8
            elif _lit_at(p, n, q, "http://", 7):
                L = 7
        elif x == 0x66:
            if _lit_at(p, n, q, "ftp://", 6):
                L = 6
            elif _lit_at(p, n, q, "ftp.", 4):
                L = 4
        elif x == 0x77 and _lit_at(p, n, q, "www", 3):
            k = q + 3
            while k < n and k < q + 5 and 0x30 <= p[k] <= 0x39:
                k += 1
            if k < n and p[k] == 0x2e:
                L = k + 1 - q
        if L:
            r = _run_not(p, n, q + L, 4, 2048)
            if 1 <= r <= 2048:
                e = q + L + r
                return (line[q:e].decode("latin-1"), None, None, None), e - q
        # mailto:[^end_email]{1,2048}  or  [^end_at]{1,251}@[^end_email]{1,251}
        if x == 0x6d and _lit_at(p, n, q, "mailto:", 7):
            r = _run_not(p, n, q + 7, 8, 2048)
            if 1 <= r <= 2048:
                e = q + 7 + r
                return (None, line[q:e].decode("latin-1"), None, None), e - q
        a = _run_not(p, n, q, 16, 251)
        if 1 <= a <= 251 and q + a < n and p[q + a] == 0x40:
            b = _run_not(p, n, q + a + 1, 8, 251)
            if 1 <= b <= 251:
                e = q + a + 1 + b
                return (None, line[q:e].decode("latin-1"), None, None), e - q
        # (^|(?<=scstart)) host: [a-z\d][a-z\d._-]{0,251}\.TLD, then \.?(:\d{1,5})?(/[^end]{1,2048})?
        if not (q == 0 or (_UC[p[q - 1]] & 32)) or not (_UC[x] & 128) or x == 0x2d:
            return None
        c = _run_in(p, n, q + 1, 64, 251)
        if c > 251:
            c = 251
        k = c
        while k >= 0:
            j = q + 1 + k
            k -= 1
            if j >= n or p[j] != 0x2e:
                continue
            t = _run_in(p, n, j + 1, 128, 64)
            if t == 0 or not self._tld(p, j + 1, t):
                continue
            e = j + 1 + t
            if e + 1 < n and p[e] == 0x2e and (_UC[p[e + 1]] & 128) and p[e + 1] != 0x2d:
                continue                    # (?!\.[a-zA-Z0-9])
            e2 = e + 1 if e < n and p[e] == 0x2e else e
            if e2 < n and p[e2] == 0x3a:              # (?::\d{1,5})?: all the digits, or no match
                a = e2 + 1
                while a < n and a < e2 + 7 and 0x30 <= p[a] <= 0x39:
                    a += 1
                if not 1 <= a - e2 - 1 <= 5:
                    continue
                e2 = a
            if e2 < n and p[e2] == 0x2f:
                r = _run_not(p, n, e2 + 1, 4, 2048)
                if not 1 <= r <= 2048:
                    continue
                e2 = e2 + 1 + r
            elif e2 < n and not (_UC[p[e2]] & 4):
                continue
            return (None, None, line[q:e2].decode("latin-1"), line[q:e].decode("latin-1")), e2 - q
        return None

    cdef tuple _window(self, const unsigned char* p, Py_ssize_t n, bytes line,
                       Py_ssize_t pos, Py_ssize_t hit):
        # UriExtractor._window_match: the first match starting in the windows
        # of hit and the hits after it, as (match, its start), or None
        cdef Py_ssize_t q, nh, pp
        cdef unsigned char c, prev
        cdef bint pw, cw
        while True:
            q = pos
            if q > 0:
                prev = p[q - 1]
                pw = _UC[prev] & 1
            else:
                prev = 0x41                     # (no character: not \w, not a start character)
                pw = False
            while q <= hit and q < n:
                c = p[q]
                cw = _UC[c] & 1
                if cw != pw or (q > 0 and (_UC[prev] & 2)) or (q >= 3 and p[q - 3] == 0x1b
                                                                and p[q - 2] == 0x28):
                    m = self._at(p, n, q, line)
                    if m is not None:
                        return m, q
                prev = c
                pw = cw
                q += 1
            nh = self.pre._find(p, n, hit + 1)
            if nh < 0:
                return None
            pp = nh - 256
            if pp <= hit:
                pp = hit + 1
            pos = _mstart(p, pp, nh)
            hit = nh

    def matches(self, list lines):
        cdef list out = []
        cdef const unsigned char* p
        cdef Py_ssize_t n, hit, end, pos
        cdef tuple got
        for line in lines:
            if type(line) is not bytes:
                line = bytes(line)
            p = <const unsigned char*>PyBytes_AS_STRING(line)
            n = PyBytes_GET_SIZE(line)
            hit = self.pre._find(p, n, 0)
            end = 0
            while hit >= 0:
                pos = hit - 256
                if pos < end:
                    pos = end
                pos = _mstart(p, pos, hit)
                got = self._window(p, n, <bytes>line, pos, hit)
                if got is None:
                    break
                m = got[0]
                out.append(m)
                end = <Py_ssize_t>got[1] + <Py_ssize_t>m[1]
                hit = self.pre._find(p, n, end)
        return out


cdef inline Py_ssize_t _mstart(const unsigned char* p, Py_ssize_t pos, Py_ssize_t hit) noexcept:
    # match_start on the bytes (hit <= len(line) always here)
    cdef Py_ssize_t i = hit - 1
    while i >= pos and i >= 0:
        if _delim(p[i]):
            return i + 1
        i -= 1
    return pos


def any_in(bytes data, tuple lits):
    return _any_in(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), lits)


cdef bint _any_in(const unsigned char* p, Py_ssize_t n, tuple lits) except -1:
    cdef Py_ssize_t i
    cdef unsigned char stack[512]
    cdef unsigned char* low = stack
    cdef unsigned char c
    cdef bytes lit
    cdef bint found = False
    if n > 512:
        low = <unsigned char*>malloc(n)
        if low == NULL:
            raise MemoryError()
    for i in range(n):
        c = p[i]
        low[i] = c + 32 if 0x41 <= c <= 0x5a else c
    for lit in lits:
        if PyBytes_GET_SIZE(lit) == 0 or memmem(low, n, PyBytes_AS_STRING(lit),
                                                PyBytes_GET_SIZE(lit)) != NULL:
            found = True
            break
    if low != stack:
        free(low)
    return found


cdef inline bint _idn_fast_char(Py_UCS4 c) noexcept:
    # [a-zA-Z0-9_.:\[\]-]
    return (_alnum(c) or c == 0x5f or c == 0x2e or c == 0x3a or c == 0x5b or c == 0x5d
            or c == 0x2d)


cdef inline bint _label_char(Py_UCS4 c) noexcept:
    # [a-z0-9_-]
    return (0x61 <= c <= 0x7a) or (0x30 <= c <= 0x39) or c == 0x5f or c == 0x2d


DEF _MAX_LABELS = 130           # a name of at most 253 characters has at most 127


def host_to_domain(str host, tlds, two, three, is_ip, idn):
    """See the twin."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(host), i
    cdef bint fast = True
    cdef str h
    if "%" in host and _PCT_PRINTABLE(host) is not None:
        return None
    for i in range(n):
        if not _idn_fast_char(PyUnicode_READ_CHAR(host, i)):
            fast = False
            break
    if not fast:
        return _domain_of(idn(host), tlds, two, three, is_ip)
    return _ascii_domain_of(host.lower(), tlds, two, three, is_ip)


cdef object _ascii_domain_of(str h, tlds, two, three, is_ip):
    """The twin's _domain_of for an ASCII h that lower() leaves as it is
    (a lowercased host of [a-zA-Z0-9_.:[]-])."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(h), e, i, a, nl, cnt, k, left
    cdef Py_ssize_t starts[_MAX_LABELS]
    cdef Py_ssize_t ends[_MAX_LABELS]
    cdef Py_UCS4 c
    cdef bint under
    if n and (0x30 <= PyUnicode_READ_CHAR(h, 0) <= 0x39 or ":" in h) and is_ip(h) is not None:
        return h, h
    # Util::is_fqdn_valid
    e = n
    while e > 0 and PyUnicode_READ_CHAR(h, e - 1) == 0x2e:        # s/\.+\z//
        e -= 1
    if e > 253:
        return None
    nl = 0
    a = 0
    for i in range(e + 1):
        if i == e or PyUnicode_READ_CHAR(h, i) == 0x2e:
            if i == a:
                return None             # an empty label (so at most 127 labels are kept)
            starts[nl] = a
            ends[nl] = i
            nl += 1
            a = i + 1
    if nl <= 1:
        return None
    cnt = nl
    for k in range(nl):
        a = starts[k]
        e = ends[k]
        if not 1 <= e - a <= 63:
            return None
        under = False
        for i in range(a, e):
            c = PyUnicode_READ_CHAR(h, i)
            if not _label_char(c):
                return None
            if c == 0x5f:
                under = True
        if PyUnicode_READ_CHAR(h, a) == 0x2d or PyUnicode_READ_CHAR(h, e - 1) == 0x2d:
            return None
        if cnt <= 2 and under:
            return None
        cnt -= 1
    # RegistryBoundaries::is_domain_valid: the labels hold no white space;
    # the last label (none after trailing dots) must be a TLD
    if ends[nl - 1] != n or h[starts[nl - 1]:] not in tlds:
        return None
    # trim_domain: the labels are non-empty and the name has no leading or
    # trailing dot, so the suffix from label k is ".".join(parts[k:])
    k = 0
    while nl - k > 1:
        left = nl - k
        if left == 2:
            if h[starts[k]:] in two:
                break
        elif left == 3:
            if h[starts[k + 2]:ends[k + 2]] == "us":
                if h[starts[k + 1]:ends[k + 1]] in _US_STATES:
                    break
            elif h[starts[k]:] in three:
                break
        elif left == 4:
            if h[starts[k + 3]:ends[k + 3]] == "us" and (
                    (h[starts[k]:ends[k]] == "pvt" and h[starts[k + 1]:ends[k + 1]] == "k12")
                    or h[starts[k]:ends[k]] in _CI_CO):
                if h[starts[k + 2]:ends[k + 2]] in _US_STATES:
                    break
        k += 1
    if k:
        k -= 1
    return h[starts[k]:], h
