"""Pure-Python twin of postier._native.spammime: the per-line loops of
postier.content.spam.message (SpamAssassin's Message / Message::Node).

    split_lines(data)                     # Perl's split /^/m
    text_lines(prefix, text, flagged)     # the `body` rule lines of a rendered text
    parse_header_lines(lines, crlf)       # the header block of a message
    prepare_fields(fields)                # the header fields as Node::header stores them
    add_fields(fields, order, headers, raw_headers, decode)   # ... stored into a node's dicts
    body_lines(lines, start, crlf)        # the body lines as Message.pm keeps them
    part_lines(body, idx, delim, stop)    # a MIME part's body lines up to a boundary
    all_headers(order, values, raw)       # Node::get_all_headers (None: too big)
    qp_decode(data)                       # Util::qp_decode

`text_lines` is the end of get_rendered_body_text_array: in the joined
rendered text, a run of white space holding two or more newlines becomes a
paragraph break (one "\\n"), every other run of white space one space, and
NULs become newlines (SpamAssassin marks paragraphs with NUL and then turns
every NUL into "\\n"); white space is Perl's \\s for character strings
(Unicode White_Space) when `flagged`, else for byte strings.  The text is
then encoded (UTF-8 when flagged, else Latin-1), put after `prefix` (the
Subject line) and cut into lines of at most 2048 bytes
(split_into_array_of_short_lines).

`parse_header_lines` is Message.pm's header loop: it returns
(fields, pristine_lines, index, flags) where fields are (key, value) pairs
(key right-stripped of blanks and both cut like Message.pm), index is where
the body starts and flags the problems found.  `prepare_fields` turns each
(key, value) into (key, lower-cased key, unfolded and stripped value, value,
final), final saying that the value needs no further decoding (empty, or
ASCII without a newline or an "=?"; else Node::_decode_header still has to
run on it).  `body_lines` is lines[start:] with CRLF turned into LF (when
crlf) and each run of more than 20 blank lines cut to 20 plus one.
`all_headers` gives "Name: value\\n" of every field in header order (the
decoded value, or the raw one with its folds made spaces), None when they
add up to more than 65536 bytes (the caller then takes SpamAssassin's
slower loop, which stops there).  `qp_decode` is Util::qp_decode's three
substitutions: blanks before a line end go, then soft line breaks
("=\\n", "=\\r\\n"), then each "=" and two hex digits becomes that byte.

Parameters read: none.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

MAX_BODY_LINE_LENGTH = 2048
MAX_HEADER_KEY_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192

# Perl's \s on character strings (Unicode White_Space) and on byte strings
UNI_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_US = "[" + re.escape(UNI_SPACE) + "]"
_AS = "[\t\n\x0b\x0c\r ]"
_DBLNL_U = re.compile(r"\n+" + _US + r"*\n+")
_DBLNL_A = re.compile(r"\n+" + _AS + r"*\n+")
_SPACES_U = re.compile(_US + "+")
_SPACES_A = re.compile(_AS + "+")
_HDR_NAME = re.compile(rb"^[\041-\071\073-\176]+[ \t]*:")
_LONE_LF = re.compile(rb"(?<!\r)\n")
_FOLD_WS = re.compile(rb"\n[ \t]+")
_FOLD_RAW = re.compile(rb"\r?\n\s+")
MAX_HEADER_LENGTH = 65536


def split_lines(data: bytes) -> list[bytes]:
    """Perl's split /^/m: pieces ending in \\n (the last one may not)."""
    if not data:
        return []
    out = data.split(b"\n")
    last = out.pop()
    res = [x + b"\n" for x in out]
    if last:
        res.append(last)
    return res


def split_short_lines(text: bytes) -> list[bytes]:
    """Message::split_into_array_of_short_lines."""
    out = []
    for line in split_lines(text):
        while len(line) > MAX_BODY_LINE_LENGTH:
            n = line.rfind(b" ", 0, MAX_BODY_LINE_LENGTH + 1) + 1
            if not n:
                n = MAX_BODY_LINE_LENGTH
            out.append(line[:n])
            line = line[n:]
        out.append(line)
    return out


def text_lines(prefix: bytes, text: str, flagged: bool) -> list[bytes]:
    """prefix + text with its white space collapsed (see the module
    docstring), encoded and cut into short lines."""
    if flagged:
        text = _DBLNL_U.sub("\x00", text)
        text = _SPACES_U.sub(" ", text)
    else:
        text = _DBLNL_A.sub("\x00", text)
        text = _SPACES_A.sub(" ", text)
    text = text.replace("\x00", "\n")
    raw = text.encode("utf-8", "surrogatepass") if flagged else text.encode("latin-1")
    return split_short_lines(prefix + raw)


def parse_header_lines(lines: list[bytes], crlf: bool) -> tuple[list[tuple[bytes, bytes]], list[bytes],
                                                                 int, list[str]]:
    """Message.pm's header loop over lines (from the message's first line):
    (fields, pristine header lines, index of the first body line, flags)."""
    line_ending = b"\r\n" if crlf else b"\n"
    fields: list[tuple[bytes, bytes]] = []
    flags: list[str] = []
    pristine: list[bytes] = []
    header: bytes | None = None
    errors = 0
    i = 0
    n = len(lines)
    while True:
        eof = i >= n
        cur = line_ending if eof else lines[i]
        if not eof:
            i += 1
        if crlf:
            cur = _LONE_LF.sub(b"\r\n", cur)
        if cur[:1] in (b" ", b"\t"):
            header = (header or b"") + cur
            pristine.append(cur)
            continue
        if header is not None:
            key, sep, value = header.partition(b":")
            if sep:
                if crlf:
                    value = value.replace(b"\r\n", b"\n")
                key = key.rstrip(b" \t")
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
        if cur.startswith(b"--"):
            flags.append("missing_head_body_separator")
            i -= 1
            break
        if not _HDR_NAME.match(cur):
            errors += 1
            if errors > 3:
                flags.append("missing_head_body_separator")
                i -= 1
                break
        header = cur
        pristine.append(cur)
    return fields, pristine, i, flags


def prepare_fields(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, str, bytes, bytes, bool]]:
    """(key, lower-cased key, unfolded stripped value, value, final) of each field."""
    out = []
    for rawkey, raw in fields:
        key = rawkey.decode("latin-1").lower()
        dec = (_FOLD_WS.sub(b" ", raw) if raw.find(b"\n", 0, len(raw) - 1) >= 0 else raw).strip()
        final = not dec or (b"\n" not in dec and dec.isascii() and b"=?" not in dec)
        out.append((rawkey, key, dec, raw, final))
    return out


def add_fields(fields: list[tuple[bytes, bytes]], order: list[bytes],
               headers: dict[str, list[bytes]], raw_headers: dict[str, list[bytes]],
               decode: Callable[[bytes, str], bytes]) -> int:
    """Each field of prepare_fields stored as Node::header does: its key
    appended to order, its value (decode(value, lower-cased key) unless
    final) to headers[lower-cased key] and its raw value to
    raw_headers[lower-cased key] (lists made for a new key).  Returns 0."""
    for rawkey, key, dec, raw, final in prepare_fields(fields):
        order.append(rawkey)
        if not final:
            dec = decode(dec, key)
        v = headers.get(key)
        if v is None:
            headers[key] = [dec]
            raw_headers[key] = [raw]
        else:
            v.append(dec)
            raw_headers[key].append(raw)
    return 0


def squeeze_blank_lines(body: list[bytes]) -> list[bytes]:
    """Message.pm: a run of more than 20 blank lines keeps 20 (plus one)."""
    start = None
    cnt = len(body) - 1
    while cnt >= 0:
        if not body[cnt].strip():          # /^\s*$/ (bytes.strip(): the same \s)
            if start is None:
                start = cnt
            if cnt != 0:
                cnt -= 1
                continue
        if start is not None:
            num = start - cnt
            if num > 20:
                del body[cnt + 2:cnt + 2 + num - 20]
            start = None
        cnt -= 1
    return body


def body_lines(lines: list[bytes], start: int, crlf: bool) -> list[bytes]:
    """lines[start:], CRLF turned into LF, runs of blank lines capped."""
    body = lines[start:]
    if crlf:
        body = [ln[:-2] + b"\n" if ln.endswith(b"\r\n") else ln for ln in body]
    return squeeze_blank_lines(body)


def part_lines(body: list[bytes], idx: int, delim: bytes, stop: int) -> tuple[int, list[bytes]]:
    """(j, lines): body[idx:j] stops before the first line starting with
    delim or at stop; its lines longer than 2048 bytes cut into pieces of 2048
    plus a newline, as Message.pm's part loop stores a part's body lines."""
    out = []
    j = idx
    while j < stop:
        cur = body[j]
        if cur.startswith(delim):
            break
        while len(cur) > MAX_BODY_LINE_LENGTH:
            out.append(cur[:MAX_BODY_LINE_LENGTH] + b"\n")
            cur = cur[MAX_BODY_LINE_LENGTH:]
        out.append(cur)
        j += 1
    return j, out


def all_headers(order: list[bytes], values: dict[str, list[bytes]], raw: bool) -> list[bytes] | None:
    """The "Name: value\\n" line of each field in order: values[lower-cased name][n]
    for its n-th occurrence, raw ones with folds made spaces; None past
    MAX_HEADER_LENGTH."""
    seen: dict[str, int] = {}
    out = []
    size = 0
    for k in order:
        key = k.decode("latin-1").lower()
        j = seen.get(key, 0)
        seen[key] = j + 1
        vals = values.get(key.strip() if raw else key)     # as raw_header / header_all
        if vals is None or j >= len(vals):
            continue
        contents = _FOLD_RAW.sub(b" ", vals[j]) if raw else vals[j] + b"\n"
        size += len(key) + len(contents) + 2
        out.append(k + b": " + contents)
    return out if size <= MAX_HEADER_LENGTH else None


_QP_TRAIL_WS = re.compile(rb"[ \t]+(?=\r?\n)")
_QP_SOFT_BREAK = re.compile(rb"=\r?\n")
_QP_HEX = re.compile(rb"=([0-9a-fA-F]{2})")
_QP_BYTES = {b"%02x" % i: bytes((i,)) for i in range(256)}


def _qp_hex(m: re.Match) -> bytes:
    return _QP_BYTES[m.group(1).lower()]


def qp_decode(s: bytes) -> bytes:
    """Util::qp_decode: s/[ \\t]+(?=\\r?\\n)//g; s/=\\r?\\n//g;
    s/=([0-9a-fA-F]{2})/chr(hex($1))/ge."""
    if b"\n" in s:
        if b" \n" in s or b"\t\n" in s or b" \r\n" in s or b"\t\r\n" in s:
            s = _QP_TRAIL_WS.sub(b"", s)
        if b"=\n" in s or b"=\r\n" in s:
            s = _QP_SOFT_BREAK.sub(b"", s)
    if b"=" not in s:
        return s
    # binascii's decoder does what the substitution does, except with "==",
    # a "=" before a line end and a "=" at the end (which it drops)
    if (b"==" not in s and b"=\n" not in s and b"=\r" not in s and not s.endswith(b"=")):
        return binascii.a2b_qp(s)
    return _QP_HEX.sub(_qp_hex, s)
