# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""SMTP DATA / BDAT framing: dot-unstuffing, end-of-data detection, CRLF -> LF.

Native twin of ``postier._pure.dataframe`` (same API; the module docstring
there gives the exact rules for line ends, dots, the end-of-data marker, the
size limit and the statistics).  Each chunk is scanned line by line with
memchr() for LF and copied with memcpy() into one preallocated bytes object,
so large messages go through at memory speed; state between chunks is a
handful of integers (which part of a line start is still undecided: ".",
".<CR>", or a final CR that may be the CR of a CRLF).

main.cf parameters (read by the caller): ``message_size_limit``
(``size_limit``) and ``smtpd_forbid_bare_newline`` (``bare_lf``).
"""

from cpython.object cimport PyObject
from libc.string cimport memchr, memcpy


cdef extern from "Python.h":
    # Raw-pointer spellings: the output buffer is created at its maximal size,
    # filled in place, then cut to its real length with _PyBytes_Resize (which
    # needs the only reference, so Cython's reference counting stays out of it).
    PyObject *_bytes_new "PyBytes_FromStringAndSize" (const char *v, Py_ssize_t n) except NULL
    char *_bytes_ptr "PyBytes_AS_STRING" (PyObject *o)
    int _PyBytes_Resize(PyObject **o, Py_ssize_t n) except -1
    void _decref "Py_DECREF" (PyObject *o)


# Line states between bytes (and between chunks).
cdef enum:
    ST_BOL = 0      # at the start of a line, nothing of it seen
    ST_DOT = 1      # the line so far is "." (not stored yet)
    ST_DOTCR = 2    # the line so far is ".<CR>" (not stored yet)
    ST_MID = 3      # inside a line; a CR may be pending (cr_pending)

cdef enum:
    CR = 13
    LF = 10
    DOT = 46

_MODES = {"normalize": "normalize", "yes": "normalize", "reject": "reject"}


cdef bytes _finish(PyObject *raw, Py_ssize_t n):
    """Take over the only reference to the bytes object `raw`, cut it to n bytes."""
    _PyBytes_Resize(&raw, n)  # on failure raw is released and MemoryError raised
    cdef bytes result = <bytes> raw
    _decref(raw)
    return result


cdef class _Reader:
    """Shared accounting: statistics over stored content and the size limit."""

    cdef readonly bint done
    cdef readonly bint oversize
    cdef readonly bint bare_lf_seen
    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t size_limit
    cdef readonly Py_ssize_t lines
    cdef readonly Py_ssize_t header_end
    cdef readonly Py_ssize_t max_line
    cdef Py_ssize_t line_len

    def __cinit__(self, *args, **kwargs):
        self.header_end = -1

    cdef Py_ssize_t _account(self, Py_ssize_t n) noexcept:
        """Account n stored bytes; return how many of them may be returned."""
        cdef Py_ssize_t before = self.size
        self.size = before + n
        if self.size_limit and self.size > self.size_limit:
            self.oversize = True
            n = self.size_limit - before
            if n < 0:
                n = 0
        return n


cdef class DataReader(_Reader):
    """Incremental reader for the content after DATA's 354 reply."""

    cdef readonly str bare_lf
    cdef int state
    cdef bint prev_crlf
    cdef bint cr_pending

    def __init__(self, Py_ssize_t size_limit=0, bare_lf="normalize"):
        if size_limit < 0:
            raise ValueError("size_limit must be >= 0")
        mode = _MODES.get(str(bare_lf).strip().lower())
        if mode is None:
            raise ValueError(f"bare_lf must be 'normalize' or 'reject', not {bare_lf!r}")
        self.bare_lf = mode
        self.size_limit = size_limit
        self.state = ST_BOL
        self.prev_crlf = True
        self.cr_pending = False

    def feed(self, chunk) -> tuple:
        """Consume `chunk`; return (content, consumed) - consumed is -1 until the
        end-of-data marker, then the bytes of `chunk` up to and including it."""
        if self.done:
            raise ValueError("feed() after end of data")
        cdef const unsigned char[::1] view = chunk
        cdef Py_ssize_t n = view.shape[0]
        if n == 0:
            return b"", -1
        cdef const unsigned char *p = &view[0]
        # at most one stored byte per input byte, plus one for bytes held back
        # from the previous chunk ("." + LF -> ".\n", ".<CR>" + x -> "<CR>x")
        cdef PyObject *out = _bytes_new(NULL, n + 2)
        cdef unsigned char *o = <unsigned char *> _bytes_ptr(out)
        cdef unsigned char *w = o
        cdef Py_ssize_t i = 0, j, run, consumed = -1
        cdef Py_ssize_t base = self.size   # stored offset of o[0]
        cdef Py_ssize_t line_len = self.line_len
        cdef Py_ssize_t lines = self.lines
        cdef Py_ssize_t max_line = self.max_line
        cdef Py_ssize_t header_end = self.header_end
        cdef int state = self.state
        cdef bint prev_crlf = self.prev_crlf
        cdef bint cr_pending = self.cr_pending
        cdef bint bare = self.bare_lf_seen
        cdef bint crlf
        cdef const unsigned char *q
        cdef unsigned char c

        while i < n:
            c = p[i]
            if state == ST_MID:
                if cr_pending:
                    cr_pending = False
                    if c == LF:
                        crlf = True
                        i += 1
                        w[0] = LF
                        w += 1
                    else:
                        w[0] = CR
                        w += 1
                        line_len += 1
                        continue
                else:
                    q = <const unsigned char *> memchr(p + i, LF, <size_t> (n - i))
                    if q == NULL:
                        run = n - i
                        if p[n - 1] == CR:
                            run -= 1
                            cr_pending = True
                        memcpy(w, p + i, <size_t> run)
                        w += run
                        line_len += run
                        i = n
                        continue
                    j = q - p
                    run = j - i
                    crlf = run > 0 and p[j - 1] == CR
                    if crlf:
                        run -= 1
                    memcpy(w, p + i, <size_t> run)
                    w += run
                    line_len += run
                    w[0] = LF
                    w += 1
                    i = j + 1
            elif state == ST_BOL:
                if c == DOT:
                    state = ST_DOT
                    i += 1
                    continue
                if c != LF:
                    state = ST_MID
                    continue
                crlf = False
                w[0] = LF
                w += 1
                i += 1
            elif state == ST_DOT:
                if c == CR:
                    state = ST_DOTCR
                    i += 1
                    continue
                if c != LF:
                    state = ST_MID  # unstuff: drop the dot, keep c
                    continue
                crlf = False  # ".<LF>": a lone dot line, stored as is
                w[0] = DOT
                w[1] = LF
                w += 2
                line_len = 1
                i += 1
            else:  # ST_DOTCR
                if c != LF:
                    state = ST_MID  # ".<CR>x": drop the dot, the CR is content
                    cr_pending = True
                    continue
                i += 1
                if prev_crlf:
                    consumed = i  # <CR><LF>.<CR><LF>
                    state = ST_BOL
                    break
                crlf = True  # "<LF>.<CR><LF>": a lone dot line, stored as is
                w[0] = DOT
                w[1] = LF
                w += 2
                line_len = 1
            # a line ended (crlf says how); the LF is stored at w[-1]
            lines += 1
            if line_len > max_line:
                max_line = line_len
            if line_len == 0 and header_end < 0:
                header_end = base + (w - o)
            if not crlf:
                bare = True
            prev_crlf = crlf
            line_len = 0
            state = ST_BOL

        if line_len > max_line:
            max_line = line_len
        self.line_len = line_len
        self.lines = lines
        self.max_line = max_line
        self.header_end = header_end
        self.state = state
        self.prev_crlf = prev_crlf
        self.cr_pending = cr_pending
        self.bare_lf_seen = bare
        if consumed >= 0:
            self.done = True
        return _finish(out, self._account(w - o)), consumed


cdef class BdatReader(_Reader):
    """Incremental reader for BDAT (CHUNKING) content: CRLF -> LF only."""

    cdef bint cr_pending

    def __init__(self, Py_ssize_t size_limit=0):
        if size_limit < 0:
            raise ValueError("size_limit must be >= 0")
        self.size_limit = size_limit
        self.cr_pending = False

    def feed(self, chunk, bint last) -> bytes:
        """Consume one BDAT chunk; `last` is True for BDAT ... LAST."""
        if self.done:
            raise ValueError("feed() after the last chunk")
        cdef const unsigned char[::1] view = chunk
        cdef Py_ssize_t n = view.shape[0]
        cdef const unsigned char *p = &view[0] if n else NULL
        cdef PyObject *out = _bytes_new(NULL, n + 1)
        cdef unsigned char *o = <unsigned char *> _bytes_ptr(out)
        cdef unsigned char *w = o
        cdef Py_ssize_t i = 0, j, run
        cdef Py_ssize_t base = self.size
        cdef Py_ssize_t line_len = self.line_len
        cdef Py_ssize_t lines = self.lines
        cdef Py_ssize_t max_line = self.max_line
        cdef Py_ssize_t header_end = self.header_end
        cdef bint cr_pending = self.cr_pending
        cdef bint bare = self.bare_lf_seen
        cdef const unsigned char *q

        if cr_pending and n:
            cr_pending = False
            if p[0] != LF:
                w[0] = CR
                w += 1
                line_len += 1
            else:  # the CR ending the previous chunk + this LF: one CRLF
                w[0] = LF
                w += 1
                i = 1
                lines += 1
                if line_len > max_line:
                    max_line = line_len
                if line_len == 0 and header_end < 0:
                    header_end = base + 1
                line_len = 0
        while i < n:
            q = <const unsigned char *> memchr(p + i, LF, <size_t> (n - i))
            if q == NULL:
                run = n - i
                if p[n - 1] == CR and not last:
                    run -= 1
                    cr_pending = True
                memcpy(w, p + i, <size_t> run)
                w += run
                line_len += run
                break
            j = q - p
            run = j - i
            if run > 0 and p[j - 1] == CR:
                run -= 1
            else:
                bare = True
            memcpy(w, p + i, <size_t> run)
            w += run
            line_len += run
            w[0] = LF
            w += 1
            i = j + 1
            lines += 1
            if line_len > max_line:
                max_line = line_len
            if line_len == 0 and header_end < 0:
                header_end = base + (w - o)
            line_len = 0
        if last:
            if cr_pending:
                cr_pending = False
                w[0] = CR
                w += 1
                line_len += 1
            if line_len:
                lines += 1
            self.done = True
        if line_len > max_line:
            max_line = line_len
        self.line_len = line_len
        self.lines = lines
        self.max_line = max_line
        self.header_end = header_end
        self.cr_pending = cr_pending
        self.bare_lf_seen = bare
        return _finish(out, self._account(w - o))


def stuff(content) -> bytes:
    """Make stored content ready to send after DATA's 354: LF or CRLF line ends
    -> CRLF, one extra "." before every line starting with ".", a final CRLF
    ensured, and the ".<CR><LF>" end marker appended."""
    cdef const unsigned char[::1] view = content
    cdef Py_ssize_t n = view.shape[0]
    if n == 0:
        return b".\r\n"
    cdef const unsigned char *p = &view[0]
    cdef Py_ssize_t i = 0, j, run, nlf = 0
    cdef const unsigned char *end = p + n
    cdef const unsigned char *q = <const unsigned char *> memchr(p, LF, <size_t> n)
    while q != NULL:
        nlf += 1
        q += 1
        q = <const unsigned char *> memchr(q, LF, <size_t> (end - q))
    # each line may gain a CR and a dot; plus a final CRLF and ".<CR><LF>"
    cdef PyObject *out = _bytes_new(NULL, n + 2 * (nlf + 1) + 5)
    cdef unsigned char *o = <unsigned char *> _bytes_ptr(out)
    cdef unsigned char *w = o
    while i < n:
        if p[i] == DOT:
            w[0] = DOT
            w += 1
        q = <const unsigned char *> memchr(p + i, LF, <size_t> (n - i))
        if q == NULL:
            run = n - i  # a final line without line end: its CR (if any) is content
            memcpy(w, p + i, <size_t> run)
            w += run
            i = n
        else:
            j = q - p
            run = j - i
            if run > 0 and p[j - 1] == CR:
                run -= 1
            memcpy(w, p + i, <size_t> run)
            w += run
            i = j + 1
        w[0] = CR
        w[1] = LF
        w += 2
    w[0] = DOT
    w[1] = CR
    w[2] = LF
    w += 3
    return _finish(out, w - o)


def unstuff_all(wire) -> bytes:
    """One-shot DataReader over `wire`: the stored content (bytes after the end
    marker are ignored; without a marker, what was produced so far)."""
    return DataReader().feed(wire)[0]
