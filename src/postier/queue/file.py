"""Queue files: the message content followed by msgspec-encoded envelope records.

Layout of `queue_directory/<queue>/<ID>`:

    MAGIC (8 bytes)
    message content (header + body, lines ending in LF, as received after
        dot-unstuffing; the Received: header smtpd adds comes first)
    envelope record (msgpack)            \\  repeated: an update appends a new
    trailer: offset u64, length u64, END  /  envelope + trailer; the last wins

A writer streams the content into a temporary file in the destination
directory, then appends the envelope and trailer, fsyncs the file, renames it
to its queue ID and fsyncs the directory, so a `250 ... queued as ID` means
the message survives kill -9 and power loss.  Readers take the envelope from
the last trailer; a file whose trailer or envelope does not decode is
corrupt (the caller moves it to the `corrupt` queue and logs it).

The queue manager updates a file in place by appending: `append_envelope()`
writes a new envelope (recipients marked `done`, `warned`) and trailer after
the old ones, so a reader always sees either the old or the new state.

Per-message delivery logs live beside the queues, as in Postfix:
`defer/ID` (why recipients were deferred: delay warnings, "expired" bounces,
mailq reasons), `bounce/ID` (permanent failures waiting for the non-delivery
notice) and `trace/ID` (NOTIFY=SUCCESS reports).  Each is a sequence of
length-prefixed msgpack `DsnRecord`s, one per recipient and attempt;
`append_dsn_log()` adds records in one write, `read_dsn_log()` ignores a
torn last record (a crash in mid-write).

`recover_queues()` is the start-up recovery: files left in `active` go back
to `incoming` (delivery is at-least-once), unfinished `.ID.tmp` files that
no 250 reply ever acknowledged are removed.

Parameters read: queue_directory (through the caller).
"""

from __future__ import annotations

import os
import struct

import msgspec

from postier.errors import PostierError
from postier.queue.qid import new_queue_id

MAGIC = b"PSTQ\x01\n\x00\x00"
END = b"PSTQEND\n"
_TRAILER = struct.Struct("<QQ8s")
TRAILER_SIZE = _TRAILER.size


class Recipient(msgspec.Struct, omit_defaults=True):
    address: str
    orig: str = ""              # original recipient (before rewriting)
    dsn_orcpt: str = ""         # DSN ORCPT, e.g. "rfc822;user@example.test"
    dsn_notify: str = ""        # DSN NOTIFY, e.g. "SUCCESS,FAILURE"
    done: bool = False          # delivered, bounced or otherwise finished
    # where postcat shows it: "" (with the recipients), "after_sender"
    # (sender_bcc_maps), "extracted" (always_bcc, after the content)
    segment: str = ""


class Envelope(msgspec.Struct, omit_defaults=True):
    queue_id: str
    arrival: float
    sender: str
    recipients: list[Recipient] = []
    content_size: int = 0
    dsn_envid: str = ""
    dsn_ret: str = ""           # FULL or HDRS
    body_type: str = ""         # 7BIT, 8BITMIME, BINARYMIME
    smtputf8: bool = False
    client_address: str = ""
    client_name: str = ""
    reverse_client_name: str = ""
    helo_name: str = ""
    protocol_name: str = ""
    content_filter: str = ""
    redirect: str = ""
    hold_reason: str = ""
    attrs: dict[str, str] = {}
    # cleanup facts (postcat shows them as named attributes)
    rewrite_context: str = ""   # local or remote (local_header_rewrite_clients)
    header_encoding: str = ""   # "8bit" from a Content-Transfer-Encoding: header
    client_port: str = ""
    server_address: str = ""
    server_port: str = ""
    # queue manager state (appended updates; see append_envelope)
    warned: bool = False        # the delay_warning_time notice was sent


class CorruptQueueFile(PostierError):
    """A queue file whose structure does not decode."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class QueueWriter:
    """One message being written.  Create it when the first recipient is
    accepted (that is when Postfix allocates the queue ID), write content,
    then commit() or abort()."""

    def __init__(self, directory: str, mode: int = 0o600):
        self.directory = directory
        while True:
            qid = new_queue_id()
            tmp = os.path.join(directory, f".{qid}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                continue
            if os.path.exists(os.path.join(directory, qid)):
                os.close(fd)
                os.unlink(tmp)
                continue
            break
        self.queue_id = qid
        self.tmp_path = tmp
        self.path = os.path.join(directory, qid)
        self.fd: int | None = fd
        self.size = 0
        os.write(fd, MAGIC)

    def write(self, data: bytes) -> None:
        if data:
            assert self.fd is not None
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self.size += len(data)

    def commit(self, envelope: Envelope) -> str:
        """Append the envelope, fsync, rename into place, fsync the directory.
        Blocking: call it from an executor thread in async code."""
        assert self.fd is not None
        envelope.content_size = self.size
        record = _encoder.encode(envelope)
        offset = len(MAGIC) + self.size
        os.write(self.fd, record + _TRAILER.pack(offset, len(record), END))
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.rename(self.tmp_path, self.path)
        _fsync_dir(self.directory)
        return self.path

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


def read_envelope(path: str) -> tuple[Envelope, int]:
    """Return (envelope, content_offset) of a committed queue file."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
            if head != MAGIC:
                raise CorruptQueueFile(f"{path}: not a postier queue file (bad magic)")
            f.seek(0, os.SEEK_END)
            end = f.tell()
            if end < len(MAGIC) + TRAILER_SIZE:
                raise CorruptQueueFile(f"{path}: truncated queue file")
            f.seek(end - TRAILER_SIZE)
            offset, length, magic = _TRAILER.unpack(f.read(TRAILER_SIZE))
            if magic != END or offset + length > end - TRAILER_SIZE or offset < len(MAGIC):
                raise CorruptQueueFile(f"{path}: damaged queue file trailer")
            f.seek(offset)
            try:
                env = _decoder.decode(f.read(length))
            except msgspec.DecodeError as e:
                raise CorruptQueueFile(f"{path}: damaged envelope record: {e}") from None
    except OSError as e:
        raise CorruptQueueFile(f"{path}: {e.strerror}") from None
    return env, len(MAGIC)


def read_content(path: str) -> bytes:
    env, start = read_envelope(path)
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(env.content_size)


def append_envelope(path: str, envelope: Envelope, *, sync: bool = True) -> None:
    """Append `envelope` as the file's new current state (the last trailer
    wins).  With `sync`, fsync before returning: the queue manager does that
    before it relies on the new state (recipients marked done before a
    deferral).  Blocking."""
    record = _encoder.encode(envelope)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        offset = os.fstat(fd).st_size
        data = record + _TRAILER.pack(offset, len(record), END)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class DsnRecord(msgspec.Struct, omit_defaults=True):
    """One recipient's delivery result in a defer/bounce/trace log."""
    address: str
    orig: str = ""
    dsn_orcpt: str = ""
    dsn_notify: str = ""
    status: str = ""            # enhanced status code, e.g. 5.1.1
    action: str = ""            # failed, delayed, delivered, relayed, expanded
    reason: str = ""            # the text logged after status=... (Postfix's "why")
    relay: str = ""
    mta_type: str = ""          # Remote-MTA: "dns"; "" = none
    mta_name: str = ""
    diag_type: str = ""         # Diagnostic-Code: "smtp"; "" = X-$mail_name + reason
    diag_text: str = ""
    time: float = 0.0


_log_encoder = msgspec.msgpack.Encoder()
_log_decoder = msgspec.msgpack.Decoder(DsnRecord)
_LEN = struct.Struct("<I")


def append_dsn_log(path: str, records: list[DsnRecord], *, sync: bool = False) -> None:
    """Append records to a defer/bounce/trace log (one write)."""
    parts = []
    for r in records:
        blob = _log_encoder.encode(r)
        parts.append(_LEN.pack(len(blob)) + blob)
    data = b"".join(parts)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_dsn_log(path: str) -> list[DsnRecord]:
    """All complete records of a log; [] when it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out: list[DsnRecord] = []
    pos, end = 0, len(data)
    while pos + 4 <= end:
        (n,) = _LEN.unpack_from(data, pos)
        if pos + 4 + n > end:
            break
        try:
            out.append(_log_decoder.decode(data[pos + 4:pos + 4 + n]))
        except msgspec.DecodeError:
            break
        pos += 4 + n
    return out


def recover_queues(queue_directory: str) -> tuple[list[str], list[str]]:
    """Start-up recovery: move every file in active/ back to incoming/ and
    remove unfinished `.ID.tmp` files from incoming/ (and maildrop/).  Call
    it before accepting mail.  Returns (requeued IDs, removed temp files)."""
    active = os.path.join(queue_directory, "active")
    incoming = os.path.join(queue_directory, "incoming")
    moved: list[str] = []
    removed: list[str] = []
    try:
        names = os.listdir(active)
    except FileNotFoundError:
        names = []
    for name in names:
        if name.startswith("."):
            continue
        try:
            os.rename(os.path.join(active, name), os.path.join(incoming, name))
            moved.append(name)
        except FileNotFoundError:
            pass
    for qname in ("incoming", "maildrop"):
        d = os.path.join(queue_directory, qname)
        try:
            entries = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in entries:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(d, name))
                    removed.append(name)
                except FileNotFoundError:
                    pass
    if moved:
        _fsync_dir(incoming)
    return moved, removed
