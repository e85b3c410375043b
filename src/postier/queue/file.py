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
