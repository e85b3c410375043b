"""SMTP DATA / BDAT framing: dot-unstuffing, end-of-data detection, CRLF -> LF.

Pure-Python twin of ``postier._native.dataframe`` (same API, same results for
every input and every way of splitting it into chunks).  The SMTP server hands
each chunk it reads from the socket to a reader; the reader returns the
message content produced from that chunk, to be streamed to the spool file,
so the whole message is never held in memory.  ``stuff()`` is the outbound
direction for the SMTP client.

main.cf parameters (read by the caller and passed in): ``message_size_limit``
(``size_limit``) and ``smtpd_forbid_bare_newline`` (``bare_lf``: ``normalize``,
its alias ``yes``, or ``reject``; ``no``, the smuggling-prone pre-3.9 framing,
is not offered).

Rules, identical in both implementations
----------------------------------------
* A line ends at every LF.  When the byte before the LF is a CR, the pair is
  the line end (CRLF); otherwise the LF alone is the line end (a *bare LF*).
  Either way the line is stored with a single LF.  A CR not directly followed
  by LF is ordinary content (so ``x<CR><CR><LF>`` stores ``x<CR><LF>``).
* End of data (DataReader) is ONLY ``<CR><LF>.<CR><LF>``: a line that is
  exactly ``.`` ended by CRLF whose preceding line also ended by CRLF; the
  reader starts as if just after a CRLF, so ``.<CR><LF>`` first thing ends an
  empty message.  Equivalently: the first occurrence of the five bytes
  CR LF . CR LF in (CR LF + stream).
* Dot-unstuffing (Postfix's rule): one leading ``.`` is removed from every
  content line that starts with ``.`` (``..x`` -> ``.x``, ``.x`` -> ``x``,
  ``.<CR>x`` -> ``<CR>x``), EXCEPT a line that is exactly ``.``: such a line
  can only be content when a bare LF precedes or ends it (a smuggling
  attempt such as ``<LF>.<LF>`` or ``<CR><LF>.<LF>``); it is stored verbatim
  as ``.`` so that unstuffing never fabricates an empty line (which would
  move the header/body boundary).  Postfix (3.7.11, ``normalize``) drops such
  a line instead; storing it keeps the evidence and is equally safe.  The
  framing itself matches that Postfix on every smuggling variant in the tests
  (it also stores a bare CR as a space; here a bare CR stays a CR).
* ``bare_lf_seen`` is set whenever a content line ends in a bare LF, in both
  modes; ``bare_lf="reject"`` changes nothing in the framing, it only tells
  the caller to answer with ``smtpd_forbid_bare_newline_reject_code`` after
  end of data when ``bare_lf_seen`` is set.
* ``size`` counts stored bytes (LF line ends); with ``size_limit`` > 0 the
  message is ``oversize`` once ``size > size_limit``, and from then on no more
  content is returned: the concatenated output is exactly the first
  ``size_limit`` stored bytes, whatever the chunking.  Counting and framing
  continue until end of data.
* ``lines`` counts completed lines (BdatReader also counts a final line
  without line end once the last chunk was fed); ``max_line`` is the longest
  stored line without its LF (after dot removal; a line still in progress
  counts with what was stored so far); ``header_end`` is the offset in the
  stored content just past the LF of the first empty line (where the body
  starts), or -1 while there was none.
* BdatReader: no dot-unstuffing and no end marker; CRLF -> LF also when the CR
  ends one chunk and the LF starts the next; a CR ending the last chunk is
  content.
"""

from __future__ import annotations

_EOD = b"\r\n.\r\n"
_MODES = {"normalize": "normalize", "yes": "normalize", "reject": "reject"}


def _as_bytes(chunk: bytes | bytearray | memoryview) -> bytes:
    return chunk if type(chunk) is bytes else bytes(chunk)


class _Reader:
    """Shared accounting: statistics over stored content and the size limit."""

    def __init__(self, size_limit: int) -> None:
        if size_limit < 0:
            raise ValueError("size_limit must be >= 0")
        self.size_limit = size_limit
        self.done = False
        self.size = 0
        self.oversize = False
        self.bare_lf_seen = False
        self.lines = 0
        self.header_end = -1
        self.max_line = 0
        self._line_len = 0  # stored bytes of the line in progress

    def _complete(self, body: bytes, n_lf: int) -> None:
        """Account `body`: stored bytes ending in LF (n_lf of them), the first line
        continuing the line in progress.  Its offset in the stored content is self.size."""
        first = body.find(b"\n")
        first_len = self._line_len + first
        self.lines += n_lf
        longest = max(first_len, max(map(len, body.split(b"\n"))))
        if longest > self.max_line:
            self.max_line = longest
        if self.header_end < 0:
            if first_len == 0:
                self.header_end = self.size + 1
            else:
                j = body.find(b"\n\n")
                if j >= 0:
                    self.header_end = self.size + j + 2
        self._line_len = 0

    def _partial(self, rest: bytes) -> None:
        self._line_len += len(rest)
        if self._line_len > self.max_line:
            self.max_line = self._line_len

    def _out(self, out: bytes) -> bytes:
        before = self.size
        self.size = before + len(out)
        limit = self.size_limit
        if limit and self.size > limit:
            self.oversize = True
            return out[: max(0, limit - before)]
        return out


class DataReader(_Reader):
    """Incremental reader for the content after DATA's 354 reply."""

    def __init__(self, size_limit: int = 0, bare_lf: str = "normalize") -> None:
        super().__init__(size_limit)
        mode = _MODES.get(str(bare_lf).strip().lower())
        if mode is None:
            raise ValueError(f"bare_lf must be 'normalize' or 'reject', not {bare_lf!r}")
        self.bare_lf = mode
        self._tail = b"\r\n"  # last <= 4 raw bytes, for a marker across chunks
        self._held = b""  # undecided bytes: "." or ".\r" at line start, or a final "\r"
        self._bol = True  # the held bytes (or the next byte) start a line

    def feed(self, chunk: bytes) -> tuple[bytes, int]:
        """Consume `chunk`; return (content, consumed) - consumed is -1 until the
        end-of-data marker, then the bytes of `chunk` up to and including it."""
        if self.done:
            raise ValueError("feed() after end of data")
        chunk = _as_bytes(chunk)
        tail = self._tail
        start = -1
        found = False
        edge = (tail + chunk[:4]).find(_EOD)
        if 0 <= edge < len(tail):
            start = edge - len(tail)  # marker begins in earlier bytes
            found = True
        else:
            start = chunk.find(_EOD)
            found = start >= 0
        if found:
            self.done = True
            cut = start + 2  # content ends after the marker's first CRLF
            if cut < 0:
                self._held = b""  # "." or ".\r": part of the marker
                cut = 0
            out = self._process(chunk[:cut])
            return out, start + 5
        self._tail = (tail + chunk)[-4:] if len(chunk) < 4 else chunk[-4:]
        return self._process(chunk), -1

    def _process(self, data: bytes) -> bytes:
        text = self._held + data if self._held else data
        if not text:
            return self._out(b"")
        bol = self._bol
        k = text.rfind(b"\n")
        if k >= 0:
            comp = text[: k + 1]
            rest = text[k + 1 :]
            n_lf = comp.count(b"\n")
            body = comp.replace(b"\r\n", b"\n")
            if len(comp) - len(body) != n_lf:  # fewer CRLF than LF
                self.bare_lf_seen = True
            marked = b"\n" + body if bol else body
            if b"\n." in marked:
                if b"\n.\n" in marked:
                    segs = marked.split(b"\n")
                    for i in range(1, len(segs) - 1):
                        s = segs[i]
                        if s[:1] == b"." and s != b".":
                            segs[i] = s[1:]
                    marked = b"\n".join(segs)
                else:
                    marked = marked.replace(b"\n.", b"\n")
            body = marked[1:] if bol else marked
            self._complete(body, n_lf)
            bol = True
        else:
            rest = text
            body = b""
        held = b""
        if rest:
            if bol and rest[0] == 0x2E:  # "."
                if rest == b"." or rest == b".\r":
                    held, rest = rest, b""
                else:
                    rest = rest[1:]
                    bol = False
            if rest:
                if rest[-1] == 0x0D:  # "\r": maybe the CR of a CRLF
                    held = b"\r"
                    rest = rest[:-1]
                if rest:
                    bol = False
                    self._partial(rest)
        self._held = held
        self._bol = bol
        return self._out(body + rest if rest else body)


class BdatReader(_Reader):
    """Incremental reader for BDAT (CHUNKING) content: CRLF -> LF only."""

    def __init__(self, size_limit: int = 0) -> None:
        super().__init__(size_limit)
        self._cr = False  # the previous chunk ended in a CR not yet stored

    def feed(self, chunk: bytes, last: bool) -> bytes:
        """Consume one BDAT chunk; `last` is True for BDAT ... LAST."""
        if self.done:
            raise ValueError("feed() after the last chunk")
        text = _as_bytes(chunk)
        if self._cr:
            text = b"\r" + text
            self._cr = False
        if not last and text[-1:] == b"\r":
            self._cr = True
            text = text[:-1]
        k = text.rfind(b"\n")
        if k >= 0:
            comp = text[: k + 1]
            rest = text[k + 1 :]
            n_lf = comp.count(b"\n")
            body = comp.replace(b"\r\n", b"\n")
            if len(comp) - len(body) != n_lf:  # fewer CRLF than LF
                self.bare_lf_seen = True
            self._complete(body, n_lf)
        else:
            body = b""
            rest = text
        if rest:
            self._partial(rest)
        if last:
            self.done = True
            if self._line_len:
                self.lines += 1
        return self._out(body + rest if rest else body)


def stuff(content: bytes) -> bytes:
    """Make stored content ready to send after DATA's 354: LF or CRLF line ends
    -> CRLF, one extra "." before every line starting with ".", a final CRLF
    ensured, and the ".<CR><LF>" end marker appended."""
    text = _as_bytes(content).replace(b"\r\n", b"\n")
    if not text:
        return b".\r\n"
    if text[-1] != 0x0A:
        text += b"\n"
    if text[0] == 0x2E:
        text = b"." + text
    if b"\n." in text:
        text = text.replace(b"\n.", b"\n..")
    return text.replace(b"\n", b"\r\n") + b".\r\n"


def unstuff_all(wire: bytes) -> bytes:
    """One-shot DataReader over `wire`: the stored content (bytes after the end
    marker are ignored; without a marker, what was produced so far)."""
    return DataReader().feed(wire)[0]
