"""A postier queue file shown exactly as Postfix's `postcat -e/-h/-b` shows
the equivalent Postfix queue file.

    text = format_queue_file(path, "incoming", envelope=True, header=False, body=False)

postier's queue file is not Postfix's record format, so the envelope
records are re-created in the order Postfix's smtpd and cleanup write them:
message_size, message_arrival_time, create_time, log_ident, rewrite_context,
[content_filter], [envelope_id, ret_flags], sender, [sender_bcc_maps
recipients], [encoding], the log_* and client attributes, then per recipient
[notify_flags] [dsn_orig_rcpt] original_recipient recipient; after the
content the extracted segment ([content_filter] [redirect_to] [encoding]
and always_bcc recipients).

Content: postcat's header/body state machine is reproduced, including its
record view of long lines: every stored line longer than line_length_limit
is a chain of `unterminated_text` records of line_length_limit bytes, which
postcat prints joined, and which decide where `-b` output starts (Postfix's
postcat updates its "previous record" only for printed records, so with -b
alone a long header line can end the header section early; the same
happens here).

Parameters read: line_length_limit (passed in by the caller).
"""

from __future__ import annotations

import os
import time

from postier.cleanup.headers import is_header
from postier.queue.file import Envelope, read_envelope

NOTIFY_BITS = {"NEVER": 1, "SUCCESS": 2, "FAILURE": 4, "DELAY": 8}
RET_BITS = {"FULL": 1, "HDRS": 2}
NORM, CONT = "N", "L"


def _asctime(t: float) -> str:
    return time.asctime(time.localtime(t))


def _notify(words: str) -> int:
    return sum(NOTIFY_BITS.get(w.strip().upper(), 0) for w in words.split(",") if w.strip())


def _rcpt_lines(r) -> list[str]:
    out = []
    n = _notify(r.dsn_notify)
    if n:
        out.append(f"named_attribute: notify_flags={n}")
    if r.dsn_orcpt:
        out.append(f"named_attribute: dsn_orig_rcpt={r.dsn_orcpt}")
    out.append(f"original_recipient: {r.orig or r.address}")
    out.append(f"{'done_recipient' if r.done else 'recipient'}: {r.address}")
    return out


def envelope_lines(env: Envelope, content_size: int) -> tuple[list[str], list[str]]:
    """(initial envelope records, extracted segment records) as postcat -e
    prints them."""
    qid = env.queue_id
    rcpts = list(env.recipients)
    nrcpt = sum(1 for r in rcpts if not r.done)
    size = (f"{content_size:15d} {0:15d} {nrcpt:15d} {0:15d} {content_size:15d} "
            f"{1 if env.smtputf8 else 0:15d}")
    head = [f"message_size: {size}",
            f"message_arrival_time: {_asctime(env.arrival)}",
            f"create_time: {_asctime(env.arrival)}",
            f"named_attribute: log_ident={qid}"]
    if env.rewrite_context:
        head.append(f"named_attribute: rewrite_context={env.rewrite_context}")
    if env.dsn_envid:
        head.append(f"named_attribute: envelope_id={env.dsn_envid}")
    if env.dsn_ret:
        head.append(f"named_attribute: ret_flags={RET_BITS.get(env.dsn_ret.upper(), 0)}")
    head.append(f"sender: {env.sender}")
    for r in rcpts:
        if r.segment == "after_sender":
            head += _rcpt_lines(r)
    encoding = {"8BITMIME": "8bit", "7BIT": "7bit"}.get(env.body_type.upper(), "")
    if encoding:
        head.append(f"named_attribute: encoding={encoding}")
    if env.client_address or env.client_name:
        name = env.client_name or "unknown"
        addr = env.client_address or "unknown"
        port = env.client_port or "unknown"
        head += [f"named_attribute: log_client_name={name}",
                 f"named_attribute: log_client_address={addr}",
                 f"named_attribute: log_client_port={port}",
                 f"named_attribute: log_message_origin={name}[{addr}]"]
        if env.helo_name:
            head.append(f"named_attribute: log_helo_name={env.helo_name}")
        head += [f"named_attribute: log_protocol_name={env.protocol_name}",
                 f"named_attribute: client_name={name}",
                 f"named_attribute: reverse_client_name={env.reverse_client_name or 'unknown'}",
                 f"named_attribute: client_address={addr}",
                 f"named_attribute: client_port={port}",
                 f"named_attribute: server_address={env.server_address}",
                 f"named_attribute: server_port={env.server_port}"]
        if env.helo_name:
            head.append(f"named_attribute: helo_name={env.helo_name}")
        family = 10 if ":" in addr else 2
        head += [f"named_attribute: protocol_name={env.protocol_name}",
                 f"named_attribute: client_address_type={family}"]
    for r in rcpts:
        if r.segment not in ("after_sender", "extracted"):
            head += _rcpt_lines(r)
    tail = []
    if env.content_filter:
        tail.append(f"content_filter: {env.content_filter}")
    if env.redirect:
        tail.append(f"redirect_to: {env.redirect}")
    extracted_encoding = env.header_encoding or encoding
    if extracted_encoding:
        tail.append(f"named_attribute: encoding={extracted_encoding}")
    for r in rcpts:
        if r.segment == "extracted":
            tail += _rcpt_lines(r)
    return head, tail


def _records(content: bytes, limit: int):
    """(type, bytes) records: each line in line_length_limit pieces."""
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        while len(line) > limit:
            yield CONT, line[:limit]
            line = line[limit:]
        yield NORM, line


def content_text(content: bytes, *, header: bool, body: bool, limit: int = 2048) -> bytes:
    """The text postcat prints for the message content (-h and/or -b)."""
    out = bytearray()
    in_header = True
    do_print = header
    prev = ""
    for typ, rec in _records(content, limit):
        if (in_header and (header or body) and prev != CONT
                and not (is_header(rec) or rec[:1] in (b" ", b"\t"))):
            in_header = False
            do_print = body
            if not do_print:
                break
        if not do_print:
            continue
        out += rec
        if typ == NORM:
            out += b"\n"
        prev = typ
    if do_print and prev == CONT:
        out += b"\n"
    return bytes(out)


def format_queue_file(path: str, queue_name: str | None, *, envelope: bool = True, header: bool = True,
                      body: bool = True, line_length_limit: int = 2048) -> str:
    """postcat's output for the queue file at `path` (-e, -h, -b flags;
    all three when none is set, as postcat does)."""
    if not (envelope or header or body):
        envelope = header = body = True
    env, start = read_envelope(path)
    with open(path, "rb") as f:
        f.seek(start)
        content = f.read(env.content_size)
    name = f"{queue_name}/{os.path.basename(path)}" if queue_name else path
    out: list[str] = []
    head, tail = envelope_lines(env, len(content))
    if envelope:
        out.append(f"*** ENVELOPE RECORDS {name} ***\n")
        out += [line + "\n" for line in head]
        out.append(f"*** MESSAGE CONTENTS {name} ***\n")
    if header or body:
        out.append(content_text(content, header=header, body=body, limit=line_length_limit)
                   .decode("utf-8", "surrogateescape"))
    if envelope:
        out.append(f"*** HEADER EXTRACTED {name} ***\n")
        out += [line + "\n" for line in tail]
        out.append(f"*** MESSAGE FILE END {name} ***\n")
    return "".join(out)
