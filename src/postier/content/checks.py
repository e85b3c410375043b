"""Postfix's built-in content inspection (header_checks(5)): header_checks,
mime_header_checks, nested_header_checks and body_checks, with every action
and Postfix 3.7's exact replies, log lines and queue-file effects.

How it plugs in: `ContentChecks.from_config(...)` builds the hook object
that postier.cleanup.settings puts into `CleanupSettings.hooks`;
postier.cleanup.core calls it (see the hook protocol in core's docstring):

* `header(cleanup, header, kind, out)` for every primary header (the one
  smtpd adds included): MIME bookkeeping (postier.content.mime), then
  header_checks, or mime_header_checks for MIME headers (Content-*,
  MIME-Version);
* `header_end(cleanup, line, out)` when the primary header block ends;
* `body_lines(cleanup, data, out)` for everything after it, whole lines at
  a time: the MIME state machine sorts out multipart headers
  (mime_header_checks), headers of attached messages (nested_header_checks;
  MIME headers among them go to mime_header_checks) and body lines
  (body_checks, only while the line starts within the first
  body_checks_size_limit bytes of its body part; lines longer than
  line_length_limit are checked in pieces of that size);
* `finish(cleanup, out)` at the end of the content: a MIME error found on
  the way rejects the message now (`550 5.6.0 ...`, unless another action
  already decided), BCC recipients are added.

A lookup key is one logical header (folded lines joined with their
newlines) or one body line; empty lines never match.  Tables are opened with
postier.maps.open_map, so any table type works; regexp:/pcre: tables match
all their patterns with one Hyperscan scan.  Body lines: runs of body lines
that cannot change the MIME state are handed over whole; the body_checks
patterns are compiled once more into a postier.maps.patterns.LineScanner,
which finds the few lines of a run that can match with a handful of
Hyperscan scans of the whole run; only those lines are looked up.  Tables
that cannot be scanned that way (non-pattern tables, negated rules) are
looked up line by line.

Actions (case-insensitive; text after the action name is the "optional
text"): REJECT [text] (a 4.x.x status makes it a 451 deferral; default
`550 5.7.1 message content rejected`), WARN, INFO, FILTER transport:dest,
DISCARD, HOLD, PREPEND text, REPLACE text, REDIRECT user@domain, BCC
user@domain, STRIP, PASS, IGNORE, DUNNO, OK; anything else is logged as
`unknown command in header_checks map: ...` and ignored (Postfix 3.7 has
no DEFER or numeric-code actions here).  REJECT, DISCARD, REDIRECT and PASS
end all further header/body inspection of the message.  The verdicts land
on the Cleanup object: `error` (REJECT, table failure, MIME error),
`discard`, `hold_reason`, `content_filter`, `redirect`, and BCC recipients
(segment "extracted").

A table that cannot be opened is kept as a surrogate that fails every
lookup: the message is deferred with `451 4.3.0 Error: queue file write
error` after Postfix's warnings, as cleanup does.

Parameters read: header_checks, mime_header_checks, nested_header_checks,
body_checks, body_checks_size_limit, disable_mime_input_processing,
mime_nesting_limit, mime_boundary_length_limit, strict_7bit_headers,
strict_8bitmime, strict_8bitmime_body, strict_mime_encoding_domain,
receive_override_options (no_header_body_checks), smtputf8_enable (how
non-ASCII text is logged), data_directory (hscache/ for the serialized
line-scanner databases; the tables' own databases are cached where
postier.maps.patterns.CACHE_DIR says).
"""

from __future__ import annotations

import os
import re
from typing import Any

from postier import log
from postier.cleanup.headers import MIME, HeaderTable, is_header
from postier.content import mime as M
from postier.errors import MapError, Reply
from postier.maps import open_map, patterns
from postier.tok822 import quote_822_local

clog = log.ServiceLog("cleanup")   # cleanup(8)'s lines: postier/cleanup[PID]

R_WRITE = Reply(451, "4.3.0", "Error: queue file write error")
_SPACE = " \t\n\r\f\v"
_DSN = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?=[ \t\n\r\f\v]|$)")
_ASCII_PRINTABLE = bytes(c if 32 <= c < 127 else 0x3F for c in range(256))
_UTF8_BAD = re.compile("[\x00-\x1f\x7f\udc80-\udcff]")


def printable(data: bytes, utf8: bool = False) -> str:
    """Postfix's printable() for log lines: control characters and bytes
    that are not (valid UTF-8 with smtputf8_enable) become '?'."""
    if not utf8:
        return data.translate(_ASCII_PRINTABLE).decode("ascii")
    return _UTF8_BAD.sub("?", data.decode("utf-8", "surrogateescape"))


def dsn_prepend(default: str, text: str) -> str:
    """dsn_prepend(): `text` when it starts with a valid status code,
    else `default text`."""
    m = _DSN.match(text)
    if m:
        return m.group(0) + " " + text[m.end():].lstrip(_SPACE)
    return f"{default} {text}"


class LookupProblem(Exception):
    """A table failed: the message must be deferred."""


class _Unavailable:
    """dict_surrogate: a table that could not be opened."""

    def __init__(self, spec: str, reason: str):
        self.spec = spec
        self.reason = reason


def _key_text(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class CheckMaps:
    """maps_find() over the tables of one parameter (its `title`)."""

    def __init__(self, title: str, specs: list[str], *, opener: Any = open_map,
                 cache_dir: str | None = None):
        self.title = title
        self.tables: list[Any] = []
        for spec in specs:
            try:
                self.tables.append(opener(spec))
            except (MapError, OSError, ValueError) as e:
                clog.error(str(e))
                self.tables.append(_Unavailable(spec, str(e)))
        self._cache_dir = cache_dir
        self._scanner: Any = False          # not built yet

    def __bool__(self) -> bool:
        return bool(self.tables)

    def find(self, key: bytes) -> str | None:
        """The action for `key`, None when no table has one; raises
        LookupProblem (after Postfix's warnings) when a table fails."""
        if not key:
            return None
        for t in self.tables:
            if isinstance(t, _Unavailable):
                clog.warning(f"{t.spec} is unavailable. {t.reason}")
                clog.warning(f'{t.spec} lookup error for "{printable(key)}"')
                raise LookupProblem(t.spec)
            try:
                lb = getattr(t, "lookup_bytes", None)
                value = lb(key) if lb is not None else t.lookup(_key_text(key))
            except Exception:  # noqa: BLE001 - any table failure defers the message
                clog.warning(f"{getattr(t, 'type', '?')}:{getattr(t, 'name', '?')} "
                            f'lookup error for "{printable(key)}"')
                raise LookupProblem(self.title) from None
            if value is None:
                continue
            if value == "":
                clog.warning(f"{self.title} lookup of {printable(key)} returns an empty "
                            "string result")
                clog.warning(f"{self.title} should return NO RESULT in case of NOT FOUND")
                raise LookupProblem(self.title)
            return value
        return None

    @property
    def scanner(self) -> Any:
        """A LineScanner over the patterns of every rule that can produce a
        result, or None when some table cannot be scanned that way."""
        if self._scanner is False:
            self._scanner = self._build_scanner()
        return self._scanner

    def _build_scanner(self) -> Any:
        from postier.maps import regexp as regexp_mod
        pats: list[patterns.Pattern] = []
        for t in self.tables:
            rules = getattr(t, "_rules", None)
            tpats = getattr(t, "_pats", None)
            if not isinstance(t, regexp_mod.RegexpTable) or rules is None or tpats is None:
                return None
            for r in rules:
                if r.op != regexp_mod._OP_MATCH:
                    continue
                if not r.match1:
                    return None                 # a negated rule matches almost every line
                pats.append(tpats[r.pat1])
        sc = patterns.LineScanner(pats, cache_dir=self._cache_dir)
        return sc if sc.usable else None


class ContentChecks:
    """The cleanup hook object (one per configuration)."""

    def __init__(self, *, header: CheckMaps | None = None, mime: CheckMaps | None = None,
                 nested: CheckMaps | None = None, body: CheckMaps | None = None,
                 body_limit: int = 51200, mime_options: int = 0, nesting_limit: int = 100,
                 boundary_limit: int = 2048, filtering: bool = True, utf8_log: bool = False):
        self.maps = {M.PRIMARY: header or None, M.MULTIPART: mime or None,
                     M.NESTED: nested or None}
        self.body = body or None
        self.body_limit = body_limit
        self.mime_options = mime_options
        self.nesting_limit = nesting_limit
        self.boundary_limit = boundary_limit
        self.filtering = filtering
        self.utf8 = utf8_log

    # ------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, p: Any, *, opener: Any = open_map) -> ContentChecks | None:
        """From a postier.smtpd.restrictions.Params view of main.cf; None
        when nothing needs to be inspected."""
        from postier.smtpd.restrictions import split_restrictions

        def specs(name: str, default: str = "") -> list[str]:
            return split_restrictions(p.text(name, default))

        def num(name: str, default: int) -> int:
            try:
                return int(p.text(name, str(default)).strip())
            except ValueError:
                return default

        def yes(name: str) -> bool:
            return p.text(name, "no").strip().lower() == "yes"

        hdr = specs("header_checks")
        mimeh = specs("mime_header_checks", p.text("header_checks"))
        nested = specs("nested_header_checks", p.text("header_checks"))
        body = specs("body_checks")
        strict_8bitmime = yes("strict_8bitmime")
        strict_hdr = yes("strict_7bit_headers")
        strict_body = yes("strict_8bitmime_body")
        strict_enc = yes("strict_mime_encoding_domain")
        options = 0
        if strict_8bitmime or strict_hdr:
            options |= M.REPORT_8BIT_IN_HEADER
        if strict_8bitmime or strict_body:
            options |= M.REPORT_8BIT_IN_7BIT_BODY
        if strict_enc:
            options |= M.REPORT_ENCODING_DOMAIN
        if strict_8bitmime or strict_hdr or strict_body or strict_enc or hdr or mimeh or nested:
            options |= M.REPORT_NESTING
        if yes("disable_mime_input_processing"):
            options |= M.DISABLE_MIME
        if not (hdr or mimeh or nested or body or options & ~(M.REPORT_NESTING | M.DISABLE_MIME)):
            return None
        # the line scanners' databases are serialized here; the tables' own
        # databases follow patterns.CACHE_DIR (None: not cached on disk)
        cache_dir = None
        data_dir = p.text("data_directory")
        if data_dir and os.path.isdir(data_dir):
            cache_dir = os.path.join(data_dir, "hscache")

        opened: dict[str, Any] = {}

        def open_once(spec: str) -> Any:
            # one open per table, as Postfix's dict_open() registry does
            # (mime_/nested_header_checks usually name header_checks' tables)
            if spec not in opened:
                try:
                    opened[spec] = opener(spec)
                except (MapError, OSError, ValueError) as e:
                    clog.error(str(e))
                    opened[spec] = _Unavailable(spec, str(e))
            return opened[spec]

        def maps(title: str, names: list[str]) -> CheckMaps | None:
            return CheckMaps(title, names, opener=open_once, cache_dir=cache_dir) if names else None

        overrides = [x.lower() for x in specs("receive_override_options")]
        return cls(header=maps("header_checks", hdr), mime=maps("mime_header_checks", mimeh),
                   nested=maps("nested_header_checks", nested), body=maps("body_checks", body),
                   body_limit=max(0, num("body_checks_size_limit", 51200)),
                   mime_options=options, nesting_limit=num("mime_nesting_limit", 100),
                   boundary_limit=max(1, num("mime_boundary_length_limit", 2048)),
                   filtering="no_header_body_checks" not in overrides,
                   utf8_log=yes("smtputf8_enable"))

    # ------------------------------------------------------------ hook protocol
    def _msg(self, c: Any) -> _Message:
        m = c.content
        if m is None:
            m = c.content = _Message(self, c)
        return m

    def header(self, c: Any, header: bytes, kind: str, out: list[bytes]) -> bytes | None:
        """A complete primary header; None drops it, other bytes replace it."""
        m = self._msg(c)
        opts = m.parser.primary_header(header)
        cls = M.MULTIPART if kind == "mime" or (opts is not None and opts.flags & MIME) \
            else M.PRIMARY
        return m.check_header(header, cls, out)

    def header_end(self, c: Any, line: bytes | None, out: list[bytes]) -> None:
        """The primary header block ended with `line` (b"" blank line, other
        text, None at end of data): output for that line goes to out."""
        m = self._msg(c)
        m.out = out
        m.parser.end_primary(line)

    def body_lines(self, c: Any, data: bytes, out: list[bytes]) -> None:
        """Content after the primary header: whole LF-terminated lines."""
        m = self._msg(c)
        m.out = out
        p = m.parser
        pos, n = 0, len(data)
        while pos < n:
            if not c._out_ok():
                return              # rejected or discarded: nothing more is stored
            if p.state == M.BODY:
                run_end = p.body_run_end(data, pos, n)
                if run_end > pos:
                    m.body_run(data, pos, run_end)
                    pos = run_end
                    continue
            nl = data.index(b"\n", pos)
            p.line(data[pos:nl])
            pos = nl + 1

    def finish(self, c: Any, out: list[bytes]) -> None:
        """End of content: flush the MIME parser, apply the final verdicts."""
        m = self._msg(c)
        m.out = out
        if c._out_ok():
            m.parser.end()
        errs = m.parser.err_flags & ~M.ERR_TRUNC_HEADER
        if errs and c._out_ok():
            c._fail(Reply(550, "5.6.0", M.error_text(errs)))
        if c._out_ok():
            for addr in m.bcc:
                c.add_bcc(addr)


class _Message:
    """Per-message state (cleanup.content) and the MIME parser's handler."""

    def __init__(self, checks: ContentChecks, c: Any):
        self.ck = checks
        self.c = c
        s = c.s
        self.filtering = checks.filtering
        self.out: list[bytes] = []
        self.bcc: list[str] = []
        self.line_limit = s.line_length_limit
        # a line of line_length_limit bytes or more after a LF (a literal
        # first byte keeps the search linear; see _has_long_line)
        self.long_line = re.compile(rb"\n[^\n]{%d}" % max(1, s.line_length_limit))
        table = getattr(s, "header_table", None) or HeaderTable()
        self.parser = M.MimeParser(self, line_limit=s.line_length_limit,
                                   header_limit=s.header_size_limit,
                                   bound_len=checks.boundary_limit,
                                   max_depth=checks.nesting_limit,
                                   options=checks.mime_options, header_table=table)

    # ------------------------------------------------------------ logging
    def _log_tail(self) -> str:
        c = self.c
        tail = f" from {getattr(c, 'log_origin', '') or 'unknown'};"
        tail += f" from=<{quote_822_local(c.sender) if c.sender else ''}>"
        if c.first_recipient is not None:
            tail += f" to=<{quote_822_local(c.first_recipient)}>"
        proto = getattr(c, "log_proto", "")
        if proto:
            tail += f" proto={proto}"
        helo = getattr(c, "log_helo", "")
        if helo:
            tail += f" helo=<{helo}>"
        return tail

    def act_log(self, action: str, ctx: str, content: bytes, text: str) -> None:
        utf8 = self.ck.utf8
        line = f"{self.c.queue_id}: {action}: {ctx} {printable(content[:200], utf8)}" \
            + printable(self._log_tail().encode("utf-8", "surrogateescape"), utf8)
        if text:
            line += ": " + printable(text.encode("utf-8", "surrogateescape"), utf8)
        clog.info(line)

    # ------------------------------------------------------------ MIME handler
    def mime_header(self, cls: int, header: bytes, opts: Any) -> None:
        c = self.c
        out = self.out
        if opts is not None and opts.flags & MIME:
            cls = M.MULTIPART
        result = self.check_header(header, cls, out)
        if result is None:
            return
        if result is not header:
            opts = c.s.header_table.find(result)
        if opts is not None and opts.type == "content-transfer-encoding":
            value = result[len(opts.name) + 1:].lstrip(b" \t\r\n")
            if value.lower() in (b"8bit", b"binary"):
                c.header_encoding = "8bit"
        c._out_header(result, out)

    def mime_head_end(self) -> None:  # pragma: no cover - core handles the primary header
        pass

    def mime_body(self, piece: bytes, offset: int, cont: bool) -> None:
        if not self.c._out_ok():
            return                  # rejected or discarded: nothing more is stored
        out = self.out
        body = self.ck.body
        if (piece and body is not None and self.filtering
                and (not self.ck.body_limit or offset < self.ck.body_limit)):
            result = self._check(body, "body", piece, out)
            if result is None:
                return
            piece = result
        out.append(piece if cont else piece + b"\n")

    def mime_error(self, code: int, text: bytes) -> None:
        if code & ~M.ERR_TRUNC_HEADER:
            c = self.c
            utf8 = self.ck.utf8
            clog.info(f"{c.queue_id}: reject: mime-error {M.error_text(code)}: "
                     f"{printable(text[:100], utf8)} from {getattr(c, 'log_origin', '') or 'unknown'}; "
                     f"from=<{printable(c.sender.encode('utf-8', 'surrogateescape'), utf8)}> "
                     f"to=<{printable((c.first_recipient or 'unknown').encode('utf-8', 'surrogateescape'), utf8)}>")

    # ------------------------------------------------------------ checks
    def check_header(self, header: bytes, cls: int, out: list[bytes]) -> bytes | None:
        maps = self.ck.maps[cls]
        if maps is None or not self.filtering:
            return header
        return self._check(maps, "header", header, out)

    def _check(self, maps: CheckMaps, ctx: str, buf: bytes, out: list[bytes]) -> bytes | None:
        try:
            value = maps.find(buf)
        except LookupProblem:
            clog.warning(f"{self.c.queue_id}: {maps.title} map lookup problem -- "
                        "message not accepted, try again later")
            self.c._fail(R_WRITE)
            return buf
        if value is None:
            return buf
        return self.act(ctx, buf, value, maps.title, out)

    def act(self, ctx: str, buf: bytes, value: str, title: str, out: list[bytes]) -> bytes | None:
        """cleanup_act(): None drops `buf`, `buf` keeps it, other bytes
        replace it; PREPEND text goes to `out` first."""
        c = self.c
        cut = len(value)
        for i, ch in enumerate(value):
            if ch in " \t":
                cut = i
                break
        cmd = value[:cut].upper()
        text = value[cut:].lstrip(_SPACE)
        if cmd == "REJECT":
            if text:
                reason = dsn_prepend("5.7.1", text)
                if reason[0] not in "45":
                    clog.warning(f"bad DSN action in {text} -- need 4.x.x or 5.x.x")
                    reason = "4" + reason[1:]
            else:
                reason = "5.7.1 message content rejected"
            dsn, _, rtext = reason.partition(" ")
            c._fail(Reply(451 if reason[0] == "4" else 550, dsn, rtext))
            self.filtering = False
            self.act_log("reject", ctx, buf, reason)
            return buf
        if cmd == "WARN":
            self.act_log("warning", ctx, buf, text)
            return buf
        if cmd == "INFO":
            self.act_log("info", ctx, buf, text)
            return buf
        if cmd == "FILTER":
            if not text:
                clog.warning(f"missing FILTER command argument in {title} map")
            elif ":" not in text:
                clog.warning(f"bad FILTER command {text} in {title} -- "
                            "need transport:destination")
            else:
                c.content_filter = text
                self.act_log("filter", ctx, buf, text)
            return buf
        if cmd == "DISCARD":
            self.act_log("discard", ctx, buf, text)
            c.discard = True
            self.filtering = False
            return buf
        if cmd == "HOLD":
            if c.hold_reason is None and not c.discard:
                self.act_log("hold", ctx, buf, text)
                c.hold_reason = text
            return buf
        if cmd == "PREPEND":
            raw = text.encode("utf-8", "surrogateescape")
            if not text:
                clog.warning(f"PREPEND action without text in {title} map")
            elif ctx == "header" and not is_header(raw):
                clog.warning(f'bad PREPEND header text "{text}" in {title} map -- '
                            'need "headername: headervalue"')
            else:
                self.act_log("prepend", ctx, buf, text)
                if c._out_ok():
                    out.append(raw + b"\n")
            return buf
        if cmd == "REPLACE":
            raw = text.encode("utf-8", "surrogateescape")
            if not text:
                clog.warning(f"REPLACE action without text in {title} map")
                return buf
            if ctx == "header" and not is_header(raw):
                clog.warning(f'bad REPLACE header text "{text}" in {title} map -- '
                            'need "headername: headervalue"')
                return buf
            self.act_log("replace", ctx, buf, text)
            return raw
        if cmd == "REDIRECT":
            if "@" not in text:
                clog.warning(f'bad REDIRECT target "{text}" in {title} map -- need user@domain')
            else:
                c.redirect = text
                self.act_log("redirect", ctx, buf, text)
                self.filtering = False
            return buf
        if cmd == "BCC":
            if "@" not in text:
                clog.warning(f'bad BCC address "{text}" in {title} map -- need user@domain')
            else:
                self.bcc.append(text)
                self.act_log("bcc", ctx, buf, text)
            return buf
        if cmd == "STRIP":
            self.act_log("strip", ctx, buf, text)
            return None
        if cmd == "PASS":
            self.act_log("pass", ctx, buf, text)
            self.filtering = False
            return buf
        if cmd == "IGNORE":
            return None
        if cmd in ("DUNNO", "OK"):
            return buf
        clog.warning(f"unknown command in {title} map: {value}")
        return buf

    # ------------------------------------------------------------ body runs
    def _has_long_line(self, data: bytes, s: int, e: int) -> bool:
        """Does data[s:e] (whole lines) hold a line of line_length_limit
        bytes or more (one that the parser cuts into pieces)?"""
        first = data.find(b"\n", s, e)
        if first - s >= self.line_limit:
            return True
        return self.long_line.search(data, first, e) is not None

    def body_run(self, data: bytes, s: int, e: int) -> None:
        """Whole body lines data[s:e] of one body part that the MIME parser
        would only pass on (see MimeParser.body_run_end): checked with as
        few table lookups as possible."""
        p = self.parser
        out = self.out
        body = self.ck.body
        c = self.c
        if self._has_long_line(data, s, e):
            pos = s                             # pieces: the record-by-record way
            while pos < e and c._out_ok():
                nl = data.index(b"\n", pos)
                p.line(data[pos:nl])
                pos = nl + 1
            return
        if body is None or not self.filtering:
            out.append(data[s:e])
            p.body_offset += e - s
            p.prev_cont = False
            return
        limit = self.ck.body_limit
        wend = e
        if limit:
            room = limit - p.body_offset
            if room <= 0:
                wend = s
            elif s + room < e:
                wend = data.find(b"\n", s + room - 1, e) + 1
        scanner = body.scanner
        if scanner is not None:
            cands = scanner.candidate_lines(data, s, wend)
        else:
            cands = []
            pos = s
            while pos < wend:
                nl = data.index(b"\n", pos)
                cands.append((pos, nl))
                pos = nl + 1
        prev = s
        for ls, le in cands:
            if ls == le:
                continue
            line = data[ls:le]
            try:
                value = body.find(line)
            except LookupProblem:
                clog.warning(f"{c.queue_id}: {body.title} map lookup problem -- "
                            "message not accepted, try again later")
                c._fail(R_WRITE)
                return
            if value is None:
                continue
            out.append(data[prev:ls])
            prev = le + 1
            result = self.act("body", line, value, body.title, out)
            if result is not None:
                out.append(result + b"\n")
            if not c._out_ok():
                return
            if not self.filtering:
                break
        out.append(data[prev:e])
        p.body_offset += e - s
        p.prev_cont = False
