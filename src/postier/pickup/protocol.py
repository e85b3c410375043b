"""The local submission protocol spoken on `queue_directory/public/pickup`.

Frames, in both directions:

    type (1 byte)  length (4 bytes, big-endian)  payload (length bytes)

A payload is at most MAX_PAYLOAD bytes; a larger length, an unknown type,
a frame that arrives out of order or a payload that does not decode is a
`FrameError` (the server answers `fail` with the reason and closes; it
never waits for bytes that the length field did not announce).

Client -> server:

    S  Request (msgpack, see below)       first frame, exactly once
    D  message content (bytes)            mode "submit": zero or more
    E  end of message (empty)             mode "submit": commit now

Server -> client:

    O  output text (bytes)                mailq / verify: to standard output
    A  Answer (msgpack): status "ok", "tempfail" or "fail", a text for the
       user (`sendmail: fatal: TEXT`), the queue ID, the server's PID

Modes (Request.mode): "submit" (sendmail -bm, the default: the server
streams the content through cleanup into incoming/ and answers only after
the queue file is fsync'd and renamed into place), "smtp" (sendmail -bs: after
`A ok`, the connection carries an SMTP session with the local smtpd),
"mailq" (sendmail -bp: showq), "flush" (sendmail -q), "verify" (sendmail
-bv), "ping" (is the mail system running?).

The content the client sends is already what Postfix's sendmail command
hands to postdrop: leading `From ` lines removed, line ends converted per
sendmail_fix_line_endings, input cut at a lone `.` unless -i.

Parameters read: none.
"""

from __future__ import annotations

import os
import socket
import struct

import msgspec

from postier.errors import PostierError

VERSION = 1
SOCKET_NAME = os.path.join("public", "pickup")
HEADER = struct.Struct(">cI")
MAX_PAYLOAD = 1 << 20          # 1 MiB: a request with every recipient, one data chunk
DATA_CHUNK = 256 * 1024

REQUEST, DATA, END = b"S", b"D", b"E"
OUTPUT, ANSWER = b"O", b"A"
CLIENT_TYPES = (REQUEST, DATA, END)
SERVER_TYPES = (OUTPUT, ANSWER)
MODES = ("submit", "smtp", "mailq", "flush", "verify", "ping")

OK, TEMPFAIL, FAIL = "ok", "tempfail", "fail"


class Request(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """What sendmail asks for.  Addresses are in internal (unquoted) form."""

    version: int = VERSION
    mode: str = "submit"
    sender: str = ""
    full_name: str = ""                 # -F, $NAME or the GECOS field ("" = none)
    recipients: list[str] = []          # from the command line
    extracted: list[str] = []           # from the message headers (-t)
    notify: str = ""                    # -N: DSN NOTIFY words for every recipient
    ret: str = ""                       # -R: FULL or HDRS
    envid: str = ""                     # -V: DSN ENVID
    body_type: str = ""                 # -B: 7BIT or 8BITMIME
    rewrite_context: str = "local"      # -G: remote
    verbose: int = 0


class Answer(msgspec.Struct, omit_defaults=True):
    status: str = OK
    text: str = ""
    queue_id: str = ""
    pid: int = 0


class FrameError(PostierError):
    """A malformed frame or a protocol violation."""


class PeerGone(PostierError):
    """The other side closed the connection in the middle of a frame."""


_req_decoder = msgspec.msgpack.Decoder(Request)
_ans_decoder = msgspec.msgpack.Decoder(Answer)
_encoder = msgspec.msgpack.Encoder()


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(f"frame too large ({len(payload)} bytes)")
    return HEADER.pack(kind, len(payload)) + payload


def encode_request(req: Request) -> bytes:
    return frame(REQUEST, _encoder.encode(req))


def encode_answer(ans: Answer) -> bytes:
    return frame(ANSWER, _encoder.encode(ans))


def parse_header(head: bytes, allowed: tuple[bytes, ...]) -> tuple[bytes, int]:
    """(type, length) of a frame header; FrameError when it cannot be one."""
    kind, length = HEADER.unpack(head)
    if kind not in allowed:
        raise FrameError(f"unexpected frame type {kind!r}")
    if length > MAX_PAYLOAD:
        raise FrameError(f"frame too large ({length} bytes)")
    return kind, length


def decode_request(payload: bytes) -> Request:
    try:
        req = _req_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise FrameError(f"malformed request: {e}") from None
    if req.version != VERSION:
        raise FrameError(f"unsupported protocol version {req.version}")
    if req.mode not in MODES:
        raise FrameError(f"unknown request mode {req.mode!r}")
    if req.rewrite_context not in ("local", "remote"):
        raise FrameError(f"bad rewrite context {req.rewrite_context!r}")
    for text in [req.sender, req.full_name, req.envid, *req.recipients, *req.extracted]:
        if "\0" in text or "\n" in text or "\r" in text:
            raise FrameError("malformed request: control character in an address field")
    return req


def decode_answer(payload: bytes) -> Answer:
    try:
        return _ans_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise FrameError(f"malformed answer: {e}") from None


def socket_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, SOCKET_NAME)


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


class Connection:
    """The blocking client side (the sendmail command)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    @classmethod
    def open(cls, queue_directory: str, timeout: float = 60.0) -> Connection:
        """Connect to the pickup service; OSError when nobody listens."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(socket_path(queue_directory))
        except OSError:
            s.close()
            raise
        return cls(s)

    def server_uid(self) -> int:
        return peer_credentials(self.sock)[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_request(self, req: Request) -> None:
        self.sock.sendall(encode_request(req))

    def send_data(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            piece = view[:DATA_CHUNK]
            self.sock.sendall(HEADER.pack(DATA, len(piece)) + bytes(piece))
            view = view[DATA_CHUNK:]

    def send_end(self) -> None:
        self.sock.sendall(frame(END))

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise PeerGone("connection closed by the pickup service")
            buf += chunk
        return bytes(buf)

    def read_frame(self) -> tuple[bytes, bytes]:
        kind, length = parse_header(self._recv_exact(HEADER.size), SERVER_TYPES)
        return kind, self._recv_exact(length) if length else b""

    def read_answer(self, output=None) -> Answer:
        """Read frames until the Answer; O frames go to `output(bytes)`."""
        while True:
            kind, payload = self.read_frame()
            if kind == OUTPUT:
                if output is not None:
                    output(payload)
                continue
            return decode_answer(payload)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
