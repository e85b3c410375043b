# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A policy request's hot path (Cython; twin: postier._pure.policyreq).

The API, the results and the rules are the twin's (read its docstring):
`parse(data)` scans one whole simple request in C and decodes only the
attributes of FIELDS; `triplet_key(net, sender, recipient)` applies the
sender substitutions (BATV senders go through the twin's function) and the
ASCII lowercasing while copying the bytes once; `ipv4_client(...)` parses
with inet_pton(3) and formats in C; `log_line(...)` formats
postgrey's log line; `Fast.handle(data)` does a whole request with these
and the store's decision in one call.

Reads no main.cf parameters.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memchr, memcmp, memcpy, strlen

from postier._pure.policyreq import (  # the shared definitions
    F_ADDRESS,
    F_ETRN,
    F_INSTANCE,
    F_NAME,
    F_QUEUE_ID,
    F_RECIPIENT,
    F_REQUEST,
    F_SENDER,
    F_TEST_TIME,
    FIELDS,
    MAX_LINE,
    R_GREYLIST,
    R_PASS,
    recipient_domain,
    sender_substitutions,
)
from postier._pure.policyreq import triplet_key as _py_triplet_key

__all__ = ["FIELDS", "F_REQUEST", "F_ADDRESS", "F_NAME", "F_SENDER", "F_RECIPIENT",
           "F_QUEUE_ID", "F_INSTANCE", "F_TEST_TIME", "F_ETRN", "parse",
           "sender_substitutions", "triplet_key", "ipv4_client", "log_line", "Fast",
           "recipient_domain"]

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    uint32_t ntohl(uint32_t x)
    enum:
        AF_INET

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, unsigned int maxchar)
    char *PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    const char *PyUnicode_1BYTE_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


cdef inline int field_index(const char *p, Py_ssize_t n) noexcept nogil:
    """The FIELDS index of the attribute name p[:n], or -1."""
    if n == 6:
        if memcmp(p, b"sender", 6) == 0:
            return 3
    elif n == 7:
        if memcmp(p, b"request", 7) == 0:
            return 0
    elif n == 8:
        if memcmp(p, b"queue_id", 8) == 0:
            return 5
        if memcmp(p, b"instance", 8) == 0:
            return 6
    elif n == 9:
        if memcmp(p, b"recipient", 9) == 0:
            return 4
    elif n == 11:
        if memcmp(p, b"client_name", 11) == 0:
            return 2
        if memcmp(p, b"etrn_domain", 11) == 0:
            return 8
    elif n == 14:
        if memcmp(p, b"client_address", 14) == 0:
            return 1
    elif n == 16:
        if memcmp(p, b"policy_test_time", 16) == 0:
            return 7
    return -1


cpdef object parse(bytes data):
    """The FIELDS of one whole simple request, or None (see the twin)."""
    cdef const char *p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const char *end
    cdef const char *line
    cdef const char *nl
    cdef const char *eq
    cdef Py_ssize_t vstart[9]
    cdef Py_ssize_t vlen[9]
    cdef int i
    if n < 3 or p[n - 1] != b'\n' or p[n - 2] != b'\n' or p[0] == b'\n':
        return None
    if memchr(p, b'\r', n) != NULL:
        return None
    for i in range(9):
        vstart[i] = -1
        vlen[i] = 0
    end = p + n - 1             # the final empty line's LF
    line = p
    while line < end:
        nl = <const char *> memchr(line, b'\n', end - line + 1)
        if nl == line or nl - line > MAX_LINE:     # an empty line inside, or a long line
            return None
        eq = <const char *> memchr(line, b'=', nl - line)
        if eq == NULL or eq == line:
            return None
        i = field_index(line, eq - line)
        if i >= 0:
            vstart[i] = eq + 1 - p
            vlen[i] = nl - eq - 1
        line = nl + 1
    out = PyTuple_New(9)
    for i in range(9):
        v = text(p + vstart[i], vlen[i]) if vstart[i] >= 0 else None
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, i, v)
    return out


cdef inline str text(const char *p, Py_ssize_t n):
    """p[:n] decoded as UTF-8 with surrogateescape (ASCII copied directly)."""
    cdef Py_ssize_t i
    cdef str s
    for i in range(n):
        if <unsigned char> p[i] >= 0x80:
            return PyUnicode_DecodeUTF8(p, n, "surrogateescape")
    s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(s), p, n)
    return s


cdef inline bint is_word(unsigned char c) noexcept nogil:
    return (c >= b'a' and c <= b'z') or (c >= b'A' and c <= b'Z') or \
        (c >= b'0' and c <= b'9') or c == b'_'


cdef inline unsigned char lower(unsigned char c) noexcept nogil:
    return c + 32 if c >= b'A' and c <= b'Z' else c


cdef inline bytes utf8(str s):
    return s.encode("utf-8", "surrogateescape")


cdef Py_ssize_t copy_lower(char *out, const char *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = <char> lower(<unsigned char> p[i])
    return n


cdef Py_ssize_t copy_sender(char *out, const unsigned char *s, Py_ssize_t n) noexcept nogil:
    """The sender with the +extension cut and the VERP numbers of its local
    part replaced, lowercased, into out (room for n bytes); -1: a BATV
    sender (the caller uses the twin)."""
    cdef const unsigned char *at = <const unsigned char *> memchr(s, b'@', n)
    cdef Py_ssize_t ulen, i, j, k, o = 0, cut_end
    cdef const unsigned char *plus
    cdef const unsigned char *nl
    cdef unsigned char c
    if at == NULL:
        return copy_lower(out, <const char *> s, n)
    ulen = at - s
    if ulen >= 5 and memcmp(s, b"prvs=", 5) == 0:
        return -1
    # the local part after the +extension cut: s[:plus] + s[nl:ulen] (nl: a LF after plus)
    plus = <const unsigned char *> memchr(s, b'+', ulen)
    cut_end = ulen
    k = ulen                    # where the part after the cut starts
    if plus != NULL:
        cut_end = plus - s
        nl = <const unsigned char *> memchr(plus, b'\n', ulen - cut_end)
        k = (nl - s) if nl != NULL else ulen
    # the local part is s[0:cut_end] + s[k:ulen]; walk it as one sequence
    i = 0
    while True:
        if i >= cut_end and i < k:
            i = k
        if i >= ulen:
            break
        c = s[i]
        if c >= b'0' and c <= b'9' and (o == 0 or not is_word(<unsigned char> out[o - 1])):
            # a run of digits that starts a word: "#" if it also ends one
            j = i
            while True:
                j += 1
                if j >= cut_end and j < k:
                    j = k
                if j >= ulen or not (s[j] >= b'0' and s[j] <= b'9'):
                    break
            if j >= ulen or not is_word(s[j]):
                out[o] = b'#'
                o += 1
                i = j
                continue
            # not a whole word: copy the run as it is
            while i < j:
                if i >= cut_end and i < k:
                    i = k
                    continue
                out[o] = <char> s[i]
                o += 1
                i += 1
            continue
        out[o] = <char> lower(c)
        o += 1
        i += 1
    return o + copy_lower(out + o, <const char *> at, n - ulen)


cpdef bytes triplet_key(str net, str sender, str recipient):
    """lc "NET/SENDER/RECIPIENT" with the sender substitutions (see the twin)."""
    cdef bytes bnet, bsnd, brcpt
    cdef const char *pn
    cdef const char *ps
    cdef const char *pr
    cdef Py_ssize_t nn, ns, nr, o, k
    cdef char *buf
    if PyUnicode_IS_ASCII(net):
        pn = <const char *> PyUnicode_1BYTE_DATA(net)
        nn = PyUnicode_GET_LENGTH(net)
    else:
        bnet = utf8(net)
        pn = PyBytes_AS_STRING(bnet)
        nn = PyBytes_GET_SIZE(bnet)
    if PyUnicode_IS_ASCII(sender):
        ps = <const char *> PyUnicode_1BYTE_DATA(sender)
        ns = PyUnicode_GET_LENGTH(sender)
    else:
        bsnd = utf8(sender)
        ps = PyBytes_AS_STRING(bsnd)
        ns = PyBytes_GET_SIZE(bsnd)
    if PyUnicode_IS_ASCII(recipient):
        pr = <const char *> PyUnicode_1BYTE_DATA(recipient)
        nr = PyUnicode_GET_LENGTH(recipient)
    else:
        brcpt = utf8(recipient)
        pr = PyBytes_AS_STRING(brcpt)
        nr = PyBytes_GET_SIZE(brcpt)
    buf = <char *> malloc(nn + ns + nr + 2)
    if buf == NULL:
        raise MemoryError()
    try:
        o = copy_lower(buf, pn, nn)
        buf[o] = b'/'
        o += 1
        k = copy_sender(buf + o, <const unsigned char *> ps, ns)
        if k < 0:
            return _py_triplet_key(net, sender, recipient)
        o += k
        buf[o] = b'/'
        o += 1
        o += copy_lower(buf + o, pr, nr)
        return PyBytes_FromStringAndSize(buf, o)
    finally:
        free(buf)


cdef Py_ssize_t dotted(char *out, uint32_t v) noexcept nogil:
    """inet_ntop(3) of an IPv4 address (host order): its length."""
    cdef Py_ssize_t o = 0
    cdef int k, b
    for k in range(4):
        b = (v >> (24 - 8 * k)) & 255
        if b >= 100:
            out[o] = <char> (48 + b // 100)
            o += 1
        if b >= 10:
            out[o] = <char> (48 + (b // 10) % 10)
            o += 1
        out[o] = <char> (48 + b % 10)
        o += 1
        if k < 3:
            out[o] = b'.'
            o += 1
    return o


cpdef object ipv4_client(str address, int ipv4cidr, bint by_host):
    """(value, address text, triplet NET, client key) of an IPv4 address, or None."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(address)
    cdef const char *p
    cdef uint32_t a, v, masked
    cdef char text[32]
    cdef char net[40]
    cdef char ckey[40]
    cdef Py_ssize_t tn, nn
    if n == 0:
        return None
    if not PyUnicode_IS_ASCII(address) or <unsigned char> PyUnicode_1BYTE_DATA(address)[0] <= 32 \
            or <unsigned char> PyUnicode_1BYTE_DATA(address)[n - 1] <= 32:
        address = address.strip()
        if not PyUnicode_IS_ASCII(address):
            return None
        n = PyUnicode_GET_LENGTH(address)
    p = <const char *> PyUnicode_1BYTE_DATA(address)
    if n > 15 or <Py_ssize_t> strlen(p) != n or inet_pton(AF_INET, p, &a) != 1:
        return None
    v = ntohl(a)
    tn = dotted(text, v)
    if by_host:
        memcpy(net, text, tn)
        memcpy(net + tn, b"/32", 3)
        nn = tn + 3
    else:
        if ipv4cidr <= 0:
            masked = 0
        elif ipv4cidr >= 32:
            masked = v
        else:
            masked = v & (<uint32_t> 0xFFFFFFFF << (32 - ipv4cidr))
        nn = dotted(net, masked)
    memcpy(ckey, b"awl:", 4)
    memcpy(ckey + 4, text, tn)
    return (v, PyUnicode_DecodeUTF8(text, tn, NULL), PyUnicode_DecodeUTF8(net, nn, NULL),
            PyBytes_FromStringAndSize(ckey, tn + 4))


cpdef str log_line(tuple fields, str action, reason=None, info=None):
    """mylog_action(): postgrey's log line for a decision."""
    line = f"action={action}"
    if reason is not None:
        line += f", reason={reason}"
    if info is not None:
        line += f", {info}"
    v = fields[2]
    if v and v != "0":          # Perl truthiness
        line += f", client_name={v}"
    v = fields[1]
    if v and v != "0":
        line += f", client_address={v}"
    v = fields[3]
    if v and v != "0":
        line += f", sender={v}"
    v = fields[4]
    if v and v != "0":
        line += f", recipient={v}"
    q = fields[5]
    return f"{q}: {line}" if q and q != "0" else line


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum:
        CLOCK_REALTIME


cdef class Fast:
    """postier.policy.greylist's decision for the common requests, in one
    call (see the twin)."""

    cdef readonly object greylist
    cdef readonly int64_t delay
    cdef readonly int64_t retry_window
    cdef readonly int64_t awl_clients
    cdef readonly int ipv4cidr
    cdef readonly bint by_host
    cdef readonly object texts
    cdef readonly object emit
    cdef readonly object finish

    def __init__(self, greylist, int64_t delay, int64_t retry_window, int64_t awl_clients,
                 int ipv4cidr, bint by_host, texts, emit, finish):
        self.greylist = greylist
        self.delay = delay
        self.retry_window = retry_window
        self.awl_clients = awl_clients
        self.ipv4cidr = ipv4cidr
        self.by_host = by_host
        self.texts = texts
        self.emit = emit
        self.finish = finish

    def handle(self, bytes data):
        """None, the FIELDS tuple, or the action (see the twin)."""
        cdef object f = parse(data)
        cdef int64_t now, first
        cdef Py_ssize_t i, n
        cdef const char *p
        cdef timespec ts
        if f is None:
            return None
        cdef tuple t = <tuple> f
        request = t[0]
        if request is None or <str> request != "smtpd_access_policy" or t[2] is None:
            return f
        address = t[1]
        sender = t[3]
        recipient = t[4]
        if address is None or sender is None or recipient is None:
            return f
        info = ipv4_client(address, self.ipv4cidr, self.by_host)
        if info is None:
            return f
        tt = t[7]
        if tt is None:
            clock_gettime(CLOCK_REALTIME, &ts)
            now = ts.tv_sec
        else:
            n = PyUnicode_GET_LENGTH(tt)
            if n == 0 or n > 18 or not PyUnicode_IS_ASCII(tt):
                return f
            p = <const char *> PyUnicode_1BYTE_DATA(tt)
            now = 0
            for i in range(n):
                if p[i] < b'0' or p[i] > b'9':
                    return f
                now = now * 10 + (p[i] - 48)
        decision = self.greylist(triplet_key((<tuple> info)[2], sender, recipient),
                                 (<tuple> info)[3], now, self.delay, self.retry_window,
                                 self.awl_clients)
        result = decision[0]
        corrected = decision[3]
        if result == R_PASS and not corrected:
            if self.emit is not None:
                self.emit(log_line(t, "pass", "triplet found"))
            return "DUNNO"
        if result == R_GREYLIST and not corrected and not decision[2] and self.texts is not None:
            first = decision[1]
            if self.emit is not None:
                self.emit(log_line(t, "greylist", "new" if now == first else
                                   f"early-retry ({self.delay - (now - first)}s missing)"))
            head, tail = self.texts[t[8] is not None]
            if "\n" in <str> recipient:       # not from parse(), which splits lines
                return head + recipient_domain(recipient) + tail
            return head + (<str> recipient).rpartition("@")[2] + tail
        return self.finish(f, now, (<tuple> info)[1], decision)
