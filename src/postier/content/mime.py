"""MIME structure of a message as Postfix's cleanup sees it (mime_state.c).

A one-pass state machine over the message content, one record at a time.
It does not decode anything: base64 and quoted-printable parts stay encoded
and body lines are handed out as they are.  What it decides is where each
line belongs:

* PRIMARY headers (the message header), MULTIPART headers (after a
  `--boundary` line), NESTED headers (at the start of a message/rfc822 or
  message/global part), and BODY lines (everything else, boundary lines
  included);
* the content type and transfer encoding in effect (Content-Type and
  Content-Transfer-Encoding are tokenised as header_token.c does: RFC 822
  comments skipped, quoted strings unquoted, folded quoted strings unfolded);
* the stack of multipart boundaries (at most mime_boundary_length_limit bytes
  of each are kept, and lines are matched by prefix, so `--boundary` followed
  by junk still counts, as in Postfix);
* the offset of each body record within its body part (body_checks_size_limit
  applies to the first N bytes of every part).

Records: a physical line longer than line_length_limit is cut into pieces of
that size (the last piece ends the line; a line whose length is an exact
multiple gets an empty last piece, as Postfix's smtpd produces); a boundary
is only recognised at the start of a line, never in a continuation piece.

Errors (reported once per kind, through `handler.mime_error`):
MIME_ERR_NESTING (more than mime_nesting_limit levels of multipart),
MIME_ERR_8BIT_IN_HEADER, MIME_ERR_8BIT_IN_7BIT_BODY, MIME_ERR_ENCODING_DOMAIN
(a message/* or multipart/* part with an encoding other than 7bit, 8bit or
binary), each only when the corresponding REPORT_* option is set.
Postfix quirks kept on purpose: the nesting counter starts at -1; a
Content-Type of a type other than text/message/multipart leaves the current
type alone (only an empty Content-Type makes it "other"); a non-header line
inside the primary header gets a blank line in front of it, one inside a
multipart or nested header block does not; message/partial and
message/external-body parts are not parsed as nested messages.

    p = MimeParser(handler, line_limit=2048, header_limit=102400,
                   bound_len=2048, max_depth=100, options=REPORT_NESTING)
    for line in lines: p.line(line)   # physical lines without LF
    p.end()

`handler` provides mime_header(cls, header, opts), mime_head_end(),
mime_body(piece, offset, cont) and mime_error(code, text); `cont` is True
for a piece that the next record continues (no line end after it).  The
cleanup integration (postier.content.checks) lets postier.cleanup.core
process the primary header itself and enters through primary_header() and
end_primary(); body_run_end() and skip_body() let it hand whole runs of
body lines to body_checks at once.

Parameters read (through the caller): line_length_limit, header_size_limit,
mime_boundary_length_limit, mime_nesting_limit, disable_mime_input_processing,
strict_7bit_headers, strict_8bitmime, strict_8bitmime_body,
strict_mime_encoding_domain.
"""

from __future__ import annotations

import re
from typing import Any

from postier.cleanup.headers import HeaderTable, header_name_len

# header classes (mime_state.h) and the BODY state
PRIMARY, MULTIPART, NESTED, BODY = 1, 2, 3, 4
CLASS_NAMES = {PRIMARY: "primary", MULTIPART: "multipart", NESTED: "nested"}

# content types and subtypes
CT_OTHER, CT_TEXT, CT_MESSAGE, CT_MULTIPART = 0, 1, 2, 3
ST_OTHER, ST_PLAIN, ST_RFC822, ST_PARTIAL, ST_EXTERN_BODY, ST_GLOBAL = 0, 1, 2, 3, 4, 5

# encodings; 7bit/8bit/binary are domains, base64/quoted-printable are
# encodings in the 7bit domain
ENC_QP, ENC_BASE64, ENC_7BIT, ENC_8BIT, ENC_BINARY = 1, 2, 7, 8, 9
_ENCODINGS = {b"7bit": (ENC_7BIT, ENC_7BIT), b"8bit": (ENC_8BIT, ENC_8BIT),
              b"binary": (ENC_BINARY, ENC_BINARY), b"base64": (ENC_BASE64, ENC_7BIT),
              b"quoted-printable": (ENC_QP, ENC_7BIT)}
_ENC_NAMES = {ENC_7BIT: "7bit", ENC_8BIT: "8bit", ENC_BINARY: "binary", ENC_BASE64: "base64",
              ENC_QP: "quoted-printable"}

# error codes (mime_state.h) and options
ERR_TRUNC_HEADER, ERR_NESTING, ERR_8BIT_IN_HEADER, ERR_8BIT_IN_7BIT_BODY, \
    ERR_ENCODING_DOMAIN = 1, 2, 4, 8, 16
REPORT_TRUNC_HEADER, REPORT_8BIT_IN_HEADER, REPORT_8BIT_IN_7BIT_BODY, \
    REPORT_ENCODING_DOMAIN, REPORT_NESTING, DISABLE_MIME = 1, 2, 4, 8, 16, 32

ERROR_TEXT = {
    ERR_NESTING: "MIME nesting exceeds safety limit",
    ERR_TRUNC_HEADER: "message header length exceeds safety limit",
    ERR_8BIT_IN_HEADER: "improper use of 8-bit data in message header",
    ERR_8BIT_IN_7BIT_BODY: "improper use of 8-bit data in message body",
    ERR_ENCODING_DOMAIN: "invalid message/* or multipart/* encoding domain",
}
_SEVERITY = (ERR_NESTING, ERR_TRUNC_HEADER, ERR_8BIT_IN_HEADER, ERR_8BIT_IN_7BIT_BODY,
             ERR_ENCODING_DOMAIN)


def error_text(code: int) -> str:
    """mime_state_error(): the text of the most serious error in `code`."""
    for bit in _SEVERITY:
        if code & bit:
            return ERROR_TEXT[bit]
    raise ValueError(f"no MIME error in {code}")


# ---------------------------------------------------------------- header_token

TOKEN, QSTRING = -1, -2
RFC822_SPECIALS = b'()<>@,;:\\".[]'
RFC2045_TSPECIALS = b'()<>@,;:\\"/[]?='
_LWSP = b" \t\n\r"


def header_token(text: bytes, pos: int, max_tokens: int, specials: bytes,
                 terminator: int = 0) -> tuple[list[tuple[int, bytes]], int, int]:
    """header_token.c: parse tokens from text[pos:].  Returns (tokens, count,
    new position); a token is (type, value) with type TOKEN, QSTRING or the
    byte value of a special/control character.  With a terminator the parse
    continues (storing at most max_tokens) up to and including the
    terminator; count is -1 when the input ran out before any token.  A NUL
    byte ends the input, as in C."""
    tokens: list[tuple[int, bytes]] = []
    n = len(text)
    ch = 0
    while True:
        ch = text[pos] if pos < n else 0
        if ch == 0 or not (terminator or len(tokens) < max_tokens):
            break
        pos += 1
        if ch in _LWSP:
            continue
        if terminator and ch == terminator:
            break
        if ch == 0x28:                          # ( comment, may nest
            level = 1
            while pos < n and text[pos] != 0:
                c = text[pos]
                pos += 1
                if c == 0x28:
                    level += 1
                elif c == 0x29:
                    level -= 1
                    if level == 0:
                        break
                elif c == 0x5C:
                    if pos >= n or text[pos] == 0:
                        break
                    pos += 1
            continue
        if ch == 0x22:                          # quoted string
            buf = bytearray()
            while pos < n and text[pos] != 0:
                c = text[pos]
                pos += 1
                if c == 0x22:
                    break
                if c == 0x0A:                   # unfold
                    while buf and buf[-1] in _LWSP:
                        buf.pop()
                    continue
                if c == 0x5C:
                    if pos >= n or text[pos] == 0:
                        break
                    c = text[pos]
                    pos += 1
                buf.append(c)
            if len(tokens) < max_tokens:
                tokens.append((QSTRING, bytes(buf)))
            continue
        if ch in specials or ch < 32 or ch == 127:
            if len(tokens) < max_tokens:
                tokens.append((ch, bytes((ch,))))
            continue
        start = pos - 1
        while pos < n:
            c = text[pos]
            if c == 0 or c in _LWSP or c < 32 or c == 127 or c in specials:
                break
            pos += 1
        if len(tokens) < max_tokens:
            tokens.append((TOKEN, text[start:pos]))
    if not tokens and ch == 0:
        return tokens, -1, pos
    return tokens, len(tokens), pos


def _tok_is(tok: tuple[int, bytes], word: bytes) -> bool:
    return tok[0] == TOKEN and tok[1].lower() == word


class _Frame:
    __slots__ = ("def_ctype", "def_stype", "boundary", "bound_len")

    def __init__(self, def_ctype: int, def_stype: int, boundary: bytes):
        self.def_ctype = def_ctype
        self.def_stype = def_stype
        self.boundary = boundary
        self.bound_len = len(boundary)


_8BIT = re.compile(rb"[\x80-\xff]")


class MimeParser:
    """Postfix's mime_state machine (see the module docstring)."""

    def __init__(self, handler: Any, *, line_limit: int = 2048, header_limit: int = 102400,
                 bound_len: int = 2048, max_depth: int = 100, options: int = 0,
                 header_table: HeaderTable | None = None):
        self.h = handler
        self.line_limit = max(1, line_limit)
        self.header_limit = header_limit
        self.bound_len = bound_len
        self.max_depth = max_depth
        self.options = options
        self.table = header_table or HeaderTable()
        self.err_flags = 0
        self.state = PRIMARY
        self.ctype, self.stype = CT_TEXT, ST_PLAIN
        self.encoding = self.domain = ENC_7BIT
        self.stack: list[_Frame] = []
        self.nesting = -1
        self.hbuf: bytearray | None = None        # pending header (header states)
        self.prev_cont = False                    # previous record was a continuation
        self.body_offset = 0

    # ------------------------------------------------------------ helpers
    def _set(self, state: int, ctype: int, stype: int, enc: int, dom: int) -> None:
        self.state = state
        self.ctype, self.stype = ctype, stype
        self.encoding, self.domain = enc, dom
        if state == BODY:
            self.body_offset = 0

    def _set_state(self, state: int) -> None:
        self.state = state
        if state == BODY:
            self.body_offset = 0

    def report(self, code: int, text: bytes) -> None:
        if not self.err_flags & code:
            self.err_flags |= code
            self.h.mime_error(code, text)

    def pieces(self, line: bytes) -> list[bytes]:
        """The records of one physical line (see the module docstring)."""
        lim = self.line_limit
        if len(line) <= lim:
            return [line] if len(line) < lim or not line else [line, b""]
        out = [line[i:i + lim] for i in range(0, len(line), lim)]
        if len(out[-1]) == lim:
            out.append(b"")
        return out

    # ------------------------------------------------------------ headers
    def _content_type(self, header: bytes, opts: Any) -> None:
        pos = len(opts.name) + 1
        toks, count, pos = header_token(header, pos, 3, RFC2045_TSPECIALS, 0x3B)
        if count <= 0:
            self.ctype = CT_OTHER
            return
        if _tok_is(toks[0], b"text"):
            self.ctype = CT_TEXT
            self.stype = ST_PLAIN if (count >= 3 and toks[1][0] == 0x2F
                                      and _tok_is(toks[2], b"plain")) else ST_OTHER
            return
        if _tok_is(toks[0], b"message"):
            self.ctype, self.stype = CT_MESSAGE, ST_OTHER
            if count >= 3 and toks[1][0] == 0x2F:
                for word, st in ((b"rfc822", ST_RFC822), (b"partial", ST_PARTIAL),
                                 (b"external-body", ST_EXTERN_BODY), (b"global", ST_GLOBAL)):
                    if _tok_is(toks[2], word):
                        self.stype = st
                        break
            return
        if _tok_is(toks[0], b"multipart"):
            self.ctype = CT_MULTIPART
            if count >= 3 and toks[1][0] == 0x2F and _tok_is(toks[2], b"digest"):
                def_ct, def_st = CT_MESSAGE, ST_RFC822
            else:
                def_ct, def_st = CT_TEXT, ST_PLAIN
            while True:
                toks, count, pos = header_token(header, pos, 3, RFC2045_TSPECIALS, 0x3B)
                if count < 0:
                    break
                if count >= 3 and _tok_is(toks[0], b"boundary") and toks[1][0] == 0x3D:
                    if self.nesting > self.max_depth:
                        if self.options & REPORT_NESTING:
                            self.report(ERR_NESTING, header)
                    else:
                        self.nesting += 1
                        self.stack.append(_Frame(def_ct, def_st, toks[2][1][:self.bound_len]))
        # any other type: left as it was (mime_state.c)

    def _content_encoding(self, header: bytes, opts: Any) -> None:
        toks, count, _ = header_token(header, len(opts.name) + 1, 1, RFC822_SPECIALS, 0)
        if count > 0 and toks[0][0] == TOKEN:
            found = _ENCODINGS.get(toks[0][1].lower())
            if found is not None:
                self.encoding, self.domain = found

    def inspect_header(self, header: bytes) -> Any:
        """What mime_state does with a complete header before passing it on:
        Content-Type/Content-Transfer-Encoding parsing and the 8-bit check.
        Returns the header's HeaderOpts (or None)."""
        opts = self.table.find(header)
        if opts is not None and not self.options & DISABLE_MIME:
            if opts.type == "content-type":
                self._content_type(header, opts)
            elif opts.type == "content-transfer-encoding":
                self._content_encoding(header, opts)
        if self.options & REPORT_8BIT_IN_HEADER and not self.err_flags & ERR_8BIT_IN_HEADER:
            if _8BIT.search(header):
                self.report(ERR_8BIT_IN_HEADER, header)
        return opts

    def _flush_header(self) -> None:
        hbuf = self.hbuf
        if hbuf is None:
            return
        self.hbuf = None
        header = bytes(hbuf)
        opts = self.inspect_header(header)
        self.h.mime_header(self.state, header, opts)

    # ------------------------------------------------------------ records
    def line(self, line: bytes) -> None:
        """One physical line (without its LF)."""
        parts = self.pieces(line)
        last = len(parts) - 1
        for i, piece in enumerate(parts):
            self.record(piece, i < last)

    def record(self, text: bytes, cont: bool) -> None:
        """mime_state_update() for one text record (cont: REC_TYPE_CONT)."""
        if self.state != BODY:
            if self.hbuf is not None:
                if self.prev_cont:
                    if len(self.hbuf) < self.header_limit:
                        self.hbuf += text
                    elif self.options & REPORT_TRUNC_HEADER:
                        self.report(ERR_TRUNC_HEADER, bytes(self.hbuf))
                    self.prev_cont = cont
                    return
                if text[:1] in (b" ", b"\t"):
                    if len(self.hbuf) < self.header_limit:
                        self.hbuf += b"\n" + text
                    elif self.options & REPORT_TRUNC_HEADER:
                        self.report(ERR_TRUNC_HEADER, bytes(self.hbuf))
                    self.prev_cont = cont
                    return
                self._flush_header()
                self.prev_cont = False
            n = header_name_len(text)
            if n > 0:
                rest = text[n:].lstrip(b" \t")
                self.hbuf = bytearray(text[:n] + rest)
                self.prev_cont = cont
                return
            self._end_headers(text, cont)
            return
        self._body_record(text, cont)

    def _end_headers(self, text: bytes | None, cont: bool = False) -> None:
        """The header block in progress ends with `text` (None: end of input)."""
        if self.state == PRIMARY:
            self.h.mime_head_end()
        self._check_domain()
        if text is None:
            self._set_state(BODY)
            return
        if not text:
            self.body_offset = 0
            if self.ctype == CT_MESSAGE:
                if self.stype in (ST_RFC822, ST_GLOBAL):
                    self._set(NESTED, CT_TEXT, ST_PLAIN, ENC_7BIT, ENC_7BIT)
                else:
                    self._set_state(BODY)
            elif self.ctype == CT_MULTIPART:
                self._set(BODY, CT_OTHER, ST_OTHER, ENC_7BIT, ENC_7BIT)
            else:
                self._set_state(BODY)
        else:
            if self.state == PRIMARY:
                self._emit(b"", False)
            self._set_state(BODY)
        self._body_record(text, cont)

    def _check_domain(self) -> None:
        if not self.options & REPORT_ENCODING_DOMAIN:
            return
        if self.ctype == CT_MESSAGE:
            if self.stype in (ST_PARTIAL, ST_EXTERN_BODY):
                bad = self.domain != ENC_7BIT
            else:
                bad = self.encoding != self.domain
        elif self.ctype == CT_MULTIPART:
            bad = self.encoding != self.domain
        else:
            return
        if bad:
            self.report(ERR_ENCODING_DOMAIN, _ENC_NAMES.get(self.encoding, "unknown").encode())

    def _emit(self, text: bytes, cont: bool) -> None:
        self.h.mime_body(text, self.body_offset, cont)
        self.body_offset += len(text) + 1

    def _body_record(self, text: bytes, cont: bool) -> None:
        if (self.options & REPORT_8BIT_IN_7BIT_BODY and self.encoding == ENC_7BIT
                and not self.err_flags & ERR_8BIT_IN_7BIT_BODY and _8BIT.search(text)):
            self.report(ERR_8BIT_IN_7BIT_BODY, text)
        if self.stack and not self.prev_cont and text[:2] == b"--":
            self._boundary(text)
        self._emit(text, cont)
        self.prev_cont = cont

    def _boundary(self, text: bytes) -> None:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            fr = stack[i]
            if text.startswith(fr.boundary, 2) and len(text) >= 2 + fr.bound_len:
                del stack[i + 1:]
                self.nesting = i
                if text[2 + fr.bound_len:4 + fr.bound_len] == b"--":
                    stack.pop()
                    self.nesting = i - 1
                    self._set(BODY, CT_OTHER, ST_OTHER, ENC_7BIT, ENC_7BIT)
                else:
                    self._set(MULTIPART, fr.def_ctype, fr.def_stype, ENC_7BIT, ENC_7BIT)
                return

    def end(self) -> None:
        """End of input: flush a pending header (mime_state's non-text record)."""
        if self.prev_cont:
            self.record(b"", False)
        if self.state != BODY:
            self._flush_header()
            self.prev_cont = False
            self._end_headers(None)

    # ------------------------------------------------------------ cleanup entry points
    def primary_header(self, header: bytes) -> Any:
        """A complete primary header that postier.cleanup.core assembled."""
        return self.inspect_header(header)

    def end_primary(self, text: bytes | None) -> None:
        """The primary header block ended (core has flushed the last header
        and added the missing headers): `text` is the line that ended it,
        b"" for the blank separator, None at end of input.  mime_head_end is
        not called (core did that work)."""
        self._check_domain()
        if text is None:
            self._set_state(BODY)
            return
        parts = self.pieces(text)
        first, cont = parts[0], len(parts) > 1
        if not first and not cont:
            self.body_offset = 0
            if self.ctype == CT_MESSAGE:
                if self.stype in (ST_RFC822, ST_GLOBAL):
                    self._set(NESTED, CT_TEXT, ST_PLAIN, ENC_7BIT, ENC_7BIT)
                else:
                    self._set_state(BODY)
            elif self.ctype == CT_MULTIPART:
                self._set(BODY, CT_OTHER, ST_OTHER, ENC_7BIT, ENC_7BIT)
            else:
                self._set_state(BODY)
        else:
            self._emit(b"", False)
            self._set_state(BODY)
        self._body_record(first, cont)
        for i in range(1, len(parts)):
            self.record(parts[i], i < len(parts) - 1)

    # ------------------------------------------------------------ fast path support
    def body_run_end(self, data: bytes, pos: int, end: int) -> int:
        """In BODY state: the end of the run of whole lines in data[pos:end]
        that the parser would only pass on as body lines: no line there
        starts with "--" while a boundary is pending, and none has the 8-bit
        text that the strict_8bitmime_body check must report in its place.
        Returns pos when the line at pos must go through record()."""
        if (self.options & REPORT_8BIT_IN_7BIT_BODY and self.encoding == ENC_7BIT
                and not self.err_flags & ERR_8BIT_IN_7BIT_BODY):
            m = _8BIT.search(data, pos, end)
            if m is not None:
                end = data.rfind(b"\n", pos, m.start()) + 1 or pos
        if not self.stack or end <= pos:
            return end
        if data.startswith(b"--", pos) and not self.prev_cont:
            return pos
        i = data.find(b"\n--", pos, end)
        return end if i < 0 else i + 1
