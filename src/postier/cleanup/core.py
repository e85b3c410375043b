"""The cleanup stage of one message: envelope rewriting and header fix-up.

    c = Cleanup(settings, queue_id=qid, sender="a@b", recipients=[Rcpt(...)],
                client_addr="192.0.2.1", real_addr="127.0.0.1", arrival=t)
    out = c.feed(received_header)        # smtpd's own Received: header first
    out += c.feed(chunk) ...             # message content, LF line ends
    out += c.finish()                    # end of data
    c.error                              # None, or the Reply that refuses the message
    c.sender, c.recipients               # the rewritten envelope

Content: only the header section is buffered (one logical header at a time,
at most header_size_limit bytes each; the excess is discarded as Postfix
does); the body is passed through untouched.  Headers are processed as
Postfix's cleanup does: obsolete `Name :` becomes `Name:`; message_drop_headers
are removed; with a header rewriting context (local_header_rewrite_clients, or
remote_header_rewrite_domain for other clients) the addresses in sender and
recipient headers go through trivial-rewrite, canonical maps and masquerading
per canonical/masquerade classes and a rewritten header is re-generated and
re-folded; missing Message-Id:, Date:, From: and (undisclosed_recipients_header)
To: headers are added (Resent- variants when Resent- headers are present).
A first line `From ...` becomes `X-Mailbox-Line:`, and content that begins
with white space gets an empty line first, as Postfix's smtpd does.

Envelope (computed when the object is made; Postfix writes the envelope
first): the sender and each recipient are rewritten in the local context,
mapped through sender/recipient/canonical maps and masqueraded per class;
recipients are expanded through virtual_alias_maps and duplicates
(same DSN ORCPT, NOTIFY, original and final address, case-insensitive) are
dropped while fewer than duplicate_filter_limit are remembered;
sender_bcc_maps, recipient_bcc_maps and always_bcc add recipients.

Hook points: `settings.hooks` may be an object (postier.content.checks:
header_checks, mime_header_checks, nested_header_checks, body_checks) with
* `header(cleanup, header: bytes, kind: str, out: list[bytes]) -> bytes | None`
  for each primary header (kind "primary", or "mime" for MIME headers); None
  drops the header, other bytes replace it; lines appended to `out` are
  stored before it;
* optional `header_end(cleanup, line: bytes | None, out)`: the primary header
  block ended with `line` (b"" = the blank line, other bytes = a non-header
  line, None = end of data); the hook stores the output for that line;
* `body_lines(cleanup, data: bytes, out)`: content after the primary header,
  whole LF-terminated lines (one or many), the hook stores the output; or the
  simpler `body(cleanup, line: bytes) -> bytes | None` per line;
* optional `finish(cleanup, out)` at the end of the content.
Hooks are not called once the message is rejected or discarded (`error`,
`discard`); like Postfix's cleanup, processing of the content stops there.
Content checks leave their verdicts in `hold_reason` (None = not held),
`content_filter`, `redirect` and `discard`, and add BCC recipients
(`add_bcc`); `log_origin`, `log_proto` and `log_helo` are what their log
lines show about the client.

Parameters read: see postier.cleanup.settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from postier import log, tok822
from postier.cleanup.headers import (
    DROP,
    MIME,
    RECIP,
    RR,
    SENDER,
    header_name_len,
    is_header,
    mail_date,
)
from postier.cleanup.rewrite import LOCAL, ExpansionError, TableError
from postier.cleanup.settings import ENV_FROM, ENV_RCPT, HDR_FROM, HDR_RCPT, CleanupSettings
from postier.errors import Reply
from postier.queue.file import Recipient

clog = log.ServiceLog("cleanup")   # cleanup(8)'s lines: postier/cleanup[PID]

NOTIFY_BITS = {"NEVER": 1, "SUCCESS": 2, "FAILURE": 4, "DELAY": 8}
R_HOPS = Reply(554, "5.4.0", "Error: too many hops")
R_WRITE = Reply(451, "4.3.0", "Error: queue file write error")
VISIBLE_RCPT = {"to", "resent-to", "cc", "resent-cc"}


def notify_mask(words: str) -> int:
    return sum(NOTIFY_BITS.get(w.strip().upper(), 0) for w in words.split(",") if w.strip())


def notify_words(mask: int) -> str:
    return ",".join(w for w, b in NOTIFY_BITS.items() if mask & b)


@dataclass
class Rcpt:
    """A recipient as smtpd accepted it."""

    address: str               # internal form, as in RCPT TO
    notify: str = ""           # DSN NOTIFY words, e.g. "SUCCESS,FAILURE"
    orcpt: str = ""            # DSN ORCPT "type;address" (smtpd makes one up)


class Cleanup:
    """One message through cleanup (see the module docstring)."""

    def __init__(self, settings: CleanupSettings, *, queue_id: str, sender: str,
                 recipients: list[Rcpt], client_addr: str = "", real_addr: str = "",
                 sasl_username: str | None = None, arrival: float | None = None,
                 rewrite_context: str | None = None, log_origin: str = "",
                 proto: str = "", helo: str = ""):
        self.s = settings
        self.rw = settings.rewriter
        self.queue_id = queue_id
        self.arrival = time.time() if arrival is None else arrival
        self.rewrite_context = rewrite_context or settings.rewrite_context(
            client_addr, real_addr, sasl_username)
        self.hdr_ctx = settings.header_context(self.rewrite_context)
        self.error: Reply | None = None
        self.discard = False
        self.hold_reason: str | None = None    # content checks: HOLD
        self.content_filter = ""               # content checks: FILTER
        self.redirect = ""                     # content checks: REDIRECT
        self.content: object = None            # per-message state of settings.hooks
        self.log_origin = log_origin           # "name[addr]" of the client
        self.log_proto = proto
        self.log_helo = helo
        self.header_encoding = ""      # "8bit" from Content-Transfer-Encoding
        # content state
        self._pending = b""            # partial line
        self._in_header = True
        self._first_line = True        # first line of the client's content
        self._received_done = False
        self._hdr: bytearray | None = None
        self._seen: set[str] = set()
        self._resent = ""
        self._hops = 0
        # envelope
        self.recipients: list[Recipient] = []
        self._dups: set[str] = set()
        self.first_recipient: str | None = None
        self.sender = ""
        try:
            self._envelope(sender, recipients)
        except ExpansionError as e:
            self._fail(Reply(451, str(e)[:5], str(e)[6:]))
        except TableError:
            self._fail(R_WRITE)

    # ------------------------------------------------------------ envelope

    def _fail(self, reply: Reply) -> None:
        if self.error is None:
            self.error = reply

    def _canon_env(self, addr: str, sender: bool) -> str:
        s = self.s
        own, own_flag = ((s.sender_canonical, s.sender_canonical_flags) if sender
                         else (s.recipient_canonical, s.recipient_canonical_flags))
        bit = ENV_FROM if sender else ENV_RCPT
        if own and own_flag & bit:
            addr = self.rw.canonical_internal(addr, own, self.queue_id)
        if s.canonical and s.canonical_flags & bit:
            addr = self.rw.canonical_internal(addr, s.canonical, self.queue_id)
        if self.rw.masq_domains and s.masq_flags & bit:
            addr = self.rw.masquerade_internal(addr)
        return addr

    def _envelope(self, sender: str, recipients: list[Rcpt]) -> None:
        s = self.s
        clean = self.rw.rewrite_internal(LOCAL, sender)
        if clean.lower().startswith("mailer-daemon@"):
            if clean.lower() == self.rw.rewrite_internal(LOCAL, "MAILER-DAEMON").lower():
                clean = ""
        clean = self._canon_env(clean, True)
        self.sender = clean
        if clean and s.sender_bcc:
            bcc = self.rw.bcc_lookup(s.sender_bcc, clean)
            if bcc is not None:
                self._add_bcc(bcc, "after_sender")
        for r in recipients:
            addr = self.rw.rewrite_internal(LOCAL, r.address or s.empty_address_recipient)
            addr = self._canon_env(addr, False)
            self._out_recipient(r.orcpt, notify_mask(r.notify), r.address, addr, "")
            if self.first_recipient is None:
                self.first_recipient = addr
            if addr and s.recipient_bcc:
                bcc = self.rw.bcc_lookup(s.recipient_bcc, addr)
                if bcc is not None:
                    self._add_bcc(bcc, "")
        if self.first_recipient is not None and s.always_bcc:
            self._add_bcc(s.always_bcc, "extracted")

    def add_bcc(self, bcc: str) -> None:
        """A BCC recipient from a content check (NOTIFY=NEVER, after the
        content, duplicates dropped)."""
        try:
            self._add_bcc(bcc, "extracted")
        except ExpansionError as e:
            self._fail(Reply(451, str(e)[:5], str(e)[6:]))
        except TableError:
            self._fail(R_WRITE)

    def _add_bcc(self, bcc: str, segment: str) -> None:
        addr = self.rw.rewrite_internal(LOCAL, tok822.unquote_822_local(bcc))
        addr = self._canon_env(addr, False)
        self._out_recipient("", NOTIFY_BITS["NEVER"], addr, addr, segment)

    def _been_here(self, key: str) -> bool:
        key = key.lower()
        if key in self._dups:
            return True
        limit = self.s.duplicate_filter_limit
        if limit <= 0 or len(self._dups) < limit:
            self._dups.add(key)
        return False

    def _out_recipient(self, dsn_orcpt: str, notify: int, orcpt: str, recip: str,
                       segment: str) -> None:
        if self.s.virtual:
            argv = self.rw.virtual(recip, self.queue_id)
            if notify & NOTIFY_BITS["SUCCESS"] and (len(argv) > 1 or argv[0] != recip):
                notify = (NOTIFY_BITS["NEVER"] if notify == NOTIFY_BITS["SUCCESS"]
                          else notify & ~NOTIFY_BITS["SUCCESS"])
        else:
            argv = [recip]
        for addr in argv:
            if self.s.enable_original_recipient:
                key = f"{dsn_orcpt}\n{notify}\n{orcpt}\n{addr}"
            else:
                key = addr
            if self._been_here(key):
                continue
            self.recipients.append(Recipient(address=addr, orig=orcpt, dsn_orcpt=dsn_orcpt,
                                             dsn_notify=notify_words(notify), segment=segment))

    # ------------------------------------------------------------ content

    def received(self, header: bytes) -> bytes:
        """smtpd's own Received: header (complete lines), before the content."""
        out: list[bytes] = []
        for line in header.split(b"\n")[:-1] if header.endswith(b"\n") else header.split(b"\n"):
            self._line(line, out)
        self._received_done = True
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        """Content in (LF line ends, any chunking), bytes to store out."""
        if not data:
            return b""
        hooks = self.s.hooks
        lines_hook = getattr(hooks, "body_lines", None)
        if not self._in_header and not self._pending and lines_hook is not None:
            end = data.rfind(b"\n")
            self._pending = data[end + 1:]
            if end < 0:
                return b""
            out: list[bytes] = []
            if self._out_ok():
                lines_hook(self, data[:end + 1], out)
            return b"".join(out)
        if not self._in_header and not self._pending and hooks is None:
            # body fast path: whole lines pass straight through
            end = data.rfind(b"\n")
            if end == len(data) - 1:
                return data
            self._pending = data[end + 1:]
            return data[:end + 1]
        data = self._pending + data
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end + 1:]
        if not self._in_header and hooks is None:
            return data[:end + 1]
        out: list[bytes] = []
        start = 0
        while start <= end:
            if not self._in_header and (lines_hook is not None or hooks is None):
                # the header ended inside this chunk: the rest is body, in one go
                if self._out_ok():
                    if lines_hook is not None:
                        lines_hook(self, data[start:end + 1], out)
                    else:
                        out.append(data[start:end + 1])
                break
            nl = data.index(b"\n", start)
            self._line(data[start:nl], out)
            start = nl + 1
        return b"".join(out)

    def finish(self) -> bytes:
        """End of data: flush a last line without line end, end the header."""
        out: list[bytes] = []
        if self._pending:
            line, self._pending = self._pending, b""
            self._line(line, out)
        if self._in_header:
            self._end_of_headers(None, out)
        finish = getattr(self.s.hooks, "finish", None)
        if finish is not None and self._out_ok():
            finish(self, out)
        if self._hops == 0 and self.error is None:
            clog.warning(f"{self.queue_id}: message rejected: no Received: header")
            self._fail(Reply(451, "4.3.0", "Error: queue file write error"))
        return b"".join(out)

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if not self._out_ok():
            return          # rejected or discarded: cleanup reads no further
        if not self._in_header:
            self._body(line, out)
            return
        if self._received_done and self._first_line:
            stripped = line.lstrip(b">")
            if stripped.startswith(b"From "):
                line = b"X-Mailbox-Line: " + line
            else:
                self._first_line = False
                if line[:1] in (b" ", b"\t"):
                    self._end_of_headers(line, out)
                    return
        limit = self.s.line_length_limit
        first = line[:limit]
        if self._hdr is not None and first[:1] in (b" ", b"\t"):
            self._append(b"\n", line)
            return
        n = header_name_len(first)
        if n > 0:
            self._flush_header(out)
            rest = line[n:].lstrip(b" \t")
            self._hdr = bytearray()
            self._append(b"", line[:n] + rest)
            return
        self._end_of_headers(line, out)

    def _end_of_headers(self, line: bytes | None, out: list[bytes]) -> None:
        """The primary header block ends with `line` (None: end of data)."""
        self._flush_header(out)
        self._header_done(out)
        self._in_header = False
        end = getattr(self.s.hooks, "header_end", None)
        if end is not None and self._out_ok():
            end(self, line, out)
            return
        if line is None:
            return
        if line:
            # mime_state: a non-empty line that ends the primary headers gets
            # a blank separator line in front of it
            self._body(b"", out)
        self._body(line, out)

    def _append(self, sep: bytes, line: bytes) -> None:
        """Add a header line in line_length_limit pieces while the header is
        below header_size_limit (mime_state: the excess is discarded)."""
        assert self._hdr is not None
        hlim = self.s.header_size_limit
        limit = self.s.line_length_limit
        pieces = [line[i:i + limit] for i in range(0, len(line), limit)] or [b""]
        for i, piece in enumerate(pieces):
            if len(self._hdr) >= hlim and (self._hdr or sep):
                return
            self._hdr += (sep if i == 0 else b"") + piece

    def _body(self, line: bytes, out: list[bytes]) -> None:
        hooks = self.s.hooks
        if hooks is not None and self._out_ok():
            lines_hook = getattr(hooks, "body_lines", None)
            if lines_hook is not None:
                lines_hook(self, line + b"\n", out)
                return
            new = hooks.body(self, line)
            if new is None:
                return
            line = new
        out.append(line + b"\n")

    def _out_ok(self) -> bool:
        return self.error is None and not self.discard

    # ------------------------------------------------------------ headers

    def _flush_header(self, out: list[bytes]) -> None:
        if self._hdr is None:
            return
        header = bytes(self._hdr)
        self._hdr = None
        self._header(header, out)

    def _out_header(self, header: bytes, out: list[bytes]) -> None:
        """cleanup_out_header: one line per record, header_size_limit cut,
        continuation lines that lack white space get a tab."""
        if not self._out_ok():
            return
        hlim = self.s.header_size_limit
        lines = header.split(b"\n")
        pos = 0
        for idx, line in enumerate(lines):
            if pos + len(line) > hlim:
                if pos > 0.9 * hlim:
                    break
                line = line[:max(0, hlim - pos)]
                lines = lines[:idx + 1]
                if idx == 0 or line[:1] in (b" ", b"\t"):
                    out.append(line + b"\n")
                else:
                    out.append(b"\t" + line + b"\n")
                break
            if idx == 0 or line[:1] in (b" ", b"\t"):
                out.append(line + b"\n")
            else:
                out.append(b"\t" + line + b"\n")
            pos += len(line) + 1

    def _header(self, header: bytes, out: list[bytes]) -> None:
        if not self._out_ok():
            return          # rejected or discarded: cleanup reads no further
        opts = self.s.header_table.find(header)
        kind = "primary"
        if opts is not None and opts.flags & MIME:
            kind = "mime"
        if opts is not None and opts.type == "received":
            self._hops += 1
        hooks = self.s.hooks
        if hooks is not None and self._out_ok():
            new = hooks.header(self, header, kind, out)
            if new is None:
                return
            if new != header:
                header = new
                opts = self.s.header_table.find(header)
        if opts is None:
            self._out_header(header, out)
            return
        value = header[len(opts.name) + 1:].lstrip(b" \t\r\n")
        if opts.type == "content-transfer-encoding":
            if value.lower() in (b"8bit", b"binary"):
                self.header_encoding = "8bit"
        if kind != "primary":
            self._out_header(header, out)
            return
        self._seen.add(opts.type)
        if opts.type == "message-id":
            clog.info(f"{self.queue_id}: message-id={_text(value)}")
        elif opts.type == "resent-message-id":
            clog.info(f"{self.queue_id}: resent-message-id={_text(value)}")
        if opts.type == "received" and self._hops >= self.s.hopcount_limit:
            if self.error is None:
                clog.warning(f"{self.queue_id}: message rejected: hopcount exceeded")
            self._fail(R_HOPS)
        if not self._out_ok():
            return
        if opts.flags & RR:
            self._resent = "Resent-"
        if opts.flags & (SENDER | RECIP) and self.hdr_ctx is not None:
            self._rewrite_header(opts, header, out)
        elif not opts.flags & DROP:
            self._out_header(header, out)

    def _rewrite_header(self, opts, header: bytes, out: list[bytes]) -> None:
        s = self.s
        sender = bool(opts.flags & SENDER)
        rw = self.rw
        bit = HDR_FROM if sender else HDR_RCPT
        own, own_flags = ((s.sender_canonical, s.sender_canonical_flags) if sender
                          else (s.recipient_canonical, s.recipient_canonical_flags))
        if not ((own and own_flags & bit) or (s.canonical and s.canonical_flags & bit)
                or (rw.masq_domains and s.masq_flags & bit)):
            # trivial-rewrite only: the result depends on the header text and
            # the context alone (no table), so it is remembered per Rewriter
            if opts.flags & DROP:
                return
            key = (self.hdr_ctx, header)
            cache = rw.header_cache
            hit = cache.get(key)
            if hit is None:
                hit = self._rewrite_header_text(opts, header)
                if hit is None:
                    return
                if len(cache) >= 4096:
                    cache.clear()
                cache[key] = hit
            self._out_header(hit, out)
            return
        result = self._rewrite_header_text(opts, header)
        if result is not None and not opts.flags & DROP:
            self._out_header(result, out)

    def _rewrite_header_text(self, opts, header: bytes) -> bytes | None:
        """The header after address rewriting (None: a table failed, the
        message is deferred)."""
        s = self.s
        sender = bool(opts.flags & SENDER)
        text = header.decode("latin-1")
        name_len = len(opts.name)
        tree = tok822.parse(text[name_len + 1:], s.token_limit)
        did = False
        rw = self.rw
        try:
            for node in tok822.grep_addrs(tree):
                did |= self._node_rewrite(node, lambda a: rw.rewrite(self.hdr_ctx, a))
                if sender:
                    own, own_flags, bit = s.sender_canonical, s.sender_canonical_flags, HDR_FROM
                else:
                    own, own_flags, bit = s.recipient_canonical, s.recipient_canonical_flags, HDR_RCPT
                if own and own_flags & bit:
                    did |= self._node_rewrite(node, lambda a, m=own: rw.canonical(a, m, self.queue_id))
                if s.canonical and s.canonical_flags & bit:
                    did |= self._node_rewrite(node, lambda a: rw.canonical(a, s.canonical, self.queue_id))
                if rw.masq_domains and s.masq_flags & bit:
                    did |= self._node_rewrite(node, rw.masquerade)
        except TableError:
            self._fail(R_WRITE)
            return None
        if did:
            text = text[:name_len] + ": " + tok822.externalize(tree, line=True, truncate=True)
            return _fold(text).encode("latin-1")
        return header

    @staticmethod
    def _node_rewrite(node: tok822.Tok, fn) -> bool:
        src = tok822.externalize(node.head)
        dst = fn(src)
        tok822.set_addr(node, dst)
        return dst != src

    def _header_done(self, out: list[bytes]) -> None:
        """cleanup_header_done_callback: add the missing headers."""
        if not self._out_ok():
            return
        s = self.s
        add = self.hdr_ctx is not None or s.always_add_missing_headers
        resent = self._resent
        mid = "resent-message-id" if resent else "message-id"
        if add and mid not in self._seen:
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.arrival))
            value = f"{stamp}.{self.queue_id}@{s.myhostname}"
            out.append(f"{resent}Message-Id: <{value}>\n".encode())
            clog.info(f"{self.queue_id}: {'resent-' if resent else ''}message-id=<{value}>")
            self._seen.add(mid)
        if "message-id" not in self._seen:
            clog.info(f"{self.queue_id}: message-id=<>")
        if add and ("resent-date" if resent else "date") not in self._seen:
            out.append(f"{resent}Date: {mail_date(self.arrival)}\n".encode())
        if add and ("resent-from" if resent else "from") not in self._seen:
            who = tok822.quote_822_local(self.sender or "MAILER-DAEMON")
            out.append(f"{resent}From: {who}\n".encode("utf-8", "surrogateescape"))
        hdr = s.undisclosed_recipients_header
        if add and not (self._seen & VISIBLE_RCPT) and hdr:
            if not is_header(hdr.encode("utf-8", "surrogateescape")):
                clog.warning(f'bad undisclosed_recipients_header header text "{hdr}" -- '
                            'need "headername: headervalue"')
            else:
                out.append(hdr.encode("utf-8", "surrogateescape") + b"\n")


def _fold(text: str) -> str:
    """cleanup_fold_header: join the one-address-per-line result while the
    output line stays under 70 characters."""
    lines = text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        if len(out[-1]) + 1 + len(line) < 70:
            out[-1] = out[-1] + " " + line
        else:
            out.append(line)
    return "\n".join(out)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")
