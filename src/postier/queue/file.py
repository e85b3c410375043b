"""Queue files: the message content followed by msgspec-encoded envelope records.

Layout of `queue_directory/<queue>/<ID>`:

    MAGIC (8 bytes)
    message content (header + body, lines ending in LF, as received after
        dot-unstuffing; the Received: header smtpd adds comes first)
    envelope record (msgpack)            \\  repeated: an update appends a new
    trailer: offset u64, length u64, END  /  envelope + trailer; the last wins

A writer streams the content into a temporary file in the destination
directory, then appends the envelope and trailer, fsyncs the file, renames it
to its queue ID and fsyncs the directory (`commit()`), so a `250 ... queued
as ID` means the message survives kill -9 and power loss.  smtpd commits with
`publish()` instead, the order Postfix's own queue files have: the complete
file is renamed first, then the file and the directory are fsynced (smtpd
overlaps the two flushes), and only then is the message acknowledged.  The
rename comes after the last write, so a named file is always complete for
every reader and across kill -9; only a power loss in the middle of those
fsyncs can leave a damaged named file behind, and that message was never
acknowledged (the queue manager moves such a file to `corrupt` and logs it,
as any damaged file).  Readers take the envelope from
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

`QueueFilePool` keeps a few such temporary files created ahead of time
(smtpd takes one at the first accepted RCPT, so creating the file, which
costs hundreds of microseconds of kernel time, is off the reply path); they
are ordinary `.ID.tmp` files, and a writer taken from the pool buffers small
writes so the end of DATA is one write() before the fsync.

`recover_queues()` is the start-up recovery: files left in `active` go back
to `incoming` (delivery is at-least-once), unfinished `.ID.tmp` files that
no 250 reply ever acknowledged are removed.

Parameters read: queue_directory (through the caller).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque

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


class DirSync:
    """fsync of one directory shared by the threads that need it (group
    commit): sync() returns once an fsync that started after the call began
    has completed, so every rename made before the call is on disk; callers
    arriving while an fsync runs share the next one.  An fsync error is
    raised in the thread that ran it; the others then try again themselves."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._cond = threading.Condition()
        self._requested = 0         # tickets handed out
        self._synced = 0            # every ticket up to this one is covered
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            mine = self._requested
            while True:
                if self._synced >= mine:
                    return
                if not self._running:
                    self._running = True
                    upto = self._requested
                    break
                self._cond.wait()
        ok = False
        try:
            os.fsync(self.fd)
            ok = True
        finally:
            with self._cond:
                self._running = False
                if ok:
                    self._synced = max(self._synced, upto)
                self._cond.notify_all()

    def close(self) -> None:
        """Close the descriptor (no sync() may be running or follow)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()


class QueueWriter:
    """One message being written.  Create it when the first recipient is
    accepted (that is when Postfix allocates the queue ID), write content,
    then commit() or abort().

    With `buffered`, write() keeps up to BUFFER_LIMIT bytes in memory and
    commit() writes them together with the envelope: call flush() before
    anything reads the file by its name (postier.content.scan)."""

    BUFFER_LIMIT = 64 * 1024

    def __init__(self, directory: str, mode: int = 0o600, *, buffered: bool = False):
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
        self.created = time.monotonic()
        self._buffered = buffered
        self.published = False
        self._buf: list[bytes] = []
        self._pending = 0
        if buffered:
            self._buf.append(MAGIC)        # written with the first flush
            return
        try:
            os.write(fd, MAGIC)
        except OSError:
            self.abort()
            raise

    def write(self, data: bytes) -> None:
        if data:
            assert self.fd is not None
            self.size += len(data)
            if self._buffered:
                self._buf.append(data)
                self._pending += len(data)
                if self._pending >= self.BUFFER_LIMIT:
                    self.flush()
                return
            _write_all(self.fd, data)

    def flush(self) -> None:
        """Write out what write() buffered."""
        if self._buf:
            assert self.fd is not None
            data = b"".join(self._buf)
            self._buf.clear()
            self._pending = 0
            _write_all(self.fd, data)

    def commit(self, envelope: Envelope, dir_sync: DirSync | None = None) -> str:
        """Append the envelope, fsync, rename into place, fsync the directory
        (through `dir_sync`, a DirSync of self.directory, when given: it
        shares one fsync among concurrent commits).  Blocking: call it from
        an executor thread in async code."""
        self._write_envelope(envelope)
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.rename(self.tmp_path, self.path)
        self.sync_directory(dir_sync)
        return self.path

    def _write_envelope(self, envelope: Envelope) -> None:
        """Write what is buffered, then the envelope record and the trailer."""
        assert self.fd is not None
        envelope.content_size = self.size
        record = _encoder.encode(envelope)
        offset = len(MAGIC) + self.size
        self._buf.append(record + _TRAILER.pack(offset, len(record), END))
        data = b"".join(self._buf)
        self._buf.clear()
        self._pending = 0
        _write_all(self.fd, data)

    # -- smtpd's commit: rename first, then fsync the file and the directory

    def publish(self, envelope: Envelope, dir_sync: DirSync | None = None) -> str:
        """Commit as smtpd does: publish_start(), then sync_file() and
        sync_directory(); on an fsync error the file is taken back
        (unpublish()) and the error raised.  Blocking."""
        self.publish_start(envelope)
        try:
            self.sync_file()
            self.sync_directory(dir_sync)
        except OSError:
            self.unpublish()
            raise
        return self.path

    def publish_start(self, envelope: Envelope) -> None:
        """Write what is buffered and the envelope, and rename the complete
        file to its queue ID (in the page cache: not yet durable).  The
        caller must then fsync the file (sync_file()) and the directory
        (sync_directory(), possibly at the same time in another thread)
        before it acknowledges the message."""
        self._write_envelope(envelope)
        os.rename(self.tmp_path, self.path)
        self.published = True

    def sync_file(self) -> None:
        assert self.fd is not None
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None

    def sync_directory(self, dir_sync: DirSync | None = None) -> None:
        if dir_sync is None:
            _fsync_dir(self.directory)
        else:
            dir_sync.sync()

    def unpublish(self) -> None:
        """After a failed fsync: remove the file again (best effort; the
        queue manager may have taken it already: delivery is at-least-once)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def abort(self) -> None:
        self._buf.clear()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


def _linked(w: QueueWriter) -> bool:
    """The writer's file still has its name (nobody removed it)."""
    try:
        return w.fd is not None and os.fstat(w.fd).st_nlink > 0
    except OSError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class QueueFilePool:
    """Queue files of one directory created ahead of time (buffered
    QueueWriters, each an empty `.ID.tmp` file: the magic comes with the
    first flush).

    take() is cheap and never blocks: it returns a writer created at most
    `max_age` seconds ago (the queue ID encodes its creation time) and still
    in the directory (a file somebody removed is passed over), or None when
    there is none (the caller creates one itself).  fill() is blocking
    (run it in an executor): it removes the files that went stale and creates
    new ones up to the target, which follows the demand (about two seconds'
    worth of takes, between `low` and `high`).  needs_fill() says when a
    fill is due.  close() removes every file still in the pool; a file
    created after close() is removed at once.  take() and needs_fill() run in
    one thread (the event loop), fill() in another."""

    def __init__(self, directory: str, *, low: int = 2, high: int = 32,
                 max_age: float = 10.0, mode: int = 0o600):
        self.directory = directory
        self.low, self.high, self.max_age, self.mode = low, high, max_age, mode
        self._ready: deque[QueueWriter] = deque()
        self._stale: deque[QueueWriter] = deque()
        self._takes: deque[float] = deque()
        self._lock = threading.Lock()
        self.closed = False
        self.target = low

    def take(self) -> QueueWriter | None:
        now = time.monotonic()
        self._takes.append(now)
        while self._takes and now - self._takes[0] > 2.0:
            self._takes.popleft()
        self.target = max(self.low, min(self.high, 2 * len(self._takes)))
        while True:
            try:
                w = self._ready.popleft()
            except IndexError:
                return None
            if now - w.created <= self.max_age and _linked(w):
                return w
            self._stale.append(w)

    def needs_fill(self) -> bool:
        if self.closed:
            return False
        if self._stale:
            return True
        return len(self._ready) * 2 <= self.target

    def fill(self, limit: int | None = None) -> None:
        """Remove the stale files, then create files up to the target (at
        most `limit` of them)."""
        while self._stale:
            self._stale.popleft().abort()
        made = 0
        while not self.closed and len(self._ready) < self.target and (limit is None or made < limit):
            made += 1
            w = QueueWriter(self.directory, self.mode, buffered=True)
            with self._lock:
                if not self.closed:
                    self._ready.append(w)
                    continue
            w.abort()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            left = list(self._ready) + list(self._stale)
            self._ready.clear()
            self._stale.clear()
        for w in left:
            w.abort()


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
