"""The pickup socket: frames, and what the service does with good and bad clients.

A bad frame gets a `fail` answer naming the problem and the connection is
closed; a client that stops in the middle of a frame or before the end of
the message is dropped after the frame time limit; neither leaves anything
in incoming/.  A good submission is in incoming/ (committed) before the
`ok` answer.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import msgspec
import pytest
from _submit_helpers import PickupThread, make_config, queue_files

from postier.pickup import protocol as P
from postier.pickup import service as S
from postier.queue.file import read_content, read_envelope

# -- frames ------------------------------------------------------------------


def test_frame_round_trip():
    req = P.Request(sender="a@b", recipients=["c@d"], notify="SUCCESS")
    data = P.encode_request(req)
    kind, length = P.parse_header(data[:5], P.CLIENT_TYPES)
    assert kind == P.REQUEST and length == len(data) - 5
    assert P.decode_request(data[5:]) == req


@pytest.mark.parametrize("head,allowed,message", [
    (struct.pack(">cI", b"Z", 0), P.CLIENT_TYPES, "unexpected frame type"),
    (struct.pack(">cI", b"D", P.MAX_PAYLOAD + 1), P.CLIENT_TYPES, "frame too large"),
    (struct.pack(">cI", b"A", 1), P.CLIENT_TYPES, "unexpected frame type"),
])
def test_bad_frame_headers(head, allowed, message):
    with pytest.raises(P.FrameError, match=message):
        P.parse_header(head, allowed)


@pytest.mark.parametrize("payload,message", [
    (b"\xc1garbage", "malformed request"),
    (msgspec.msgpack.encode({"version": 2}), "unsupported protocol version 2"),
    (msgspec.msgpack.encode({"mode": "reboot"}), "unknown request mode"),
    (msgspec.msgpack.encode({"sender": 5}), "malformed request"),
    (msgspec.msgpack.encode({"bogus": 1}), "malformed request"),
    (msgspec.msgpack.encode({"recipients": ["a\nb"]}), "control character"),
    (msgspec.msgpack.encode({"rewrite_context": "x"}), "bad rewrite context"),
])
def test_bad_requests(payload, message):
    with pytest.raises(P.FrameError, match=message):
        P.decode_request(payload)


def test_frame_payload_limit():
    with pytest.raises(P.FrameError):
        P.frame(P.DATA, b"x" * (P.MAX_PAYLOAD + 1))


# -- the service ---------------------------------------------------------------


@pytest.fixture
def pickup(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "FRAME_TIMEOUT", 1.0)
    etc = make_config(str(tmp_path), "message_size_limit = 4000\n")
    t = PickupThread(etc).start()
    yield t, str(tmp_path / "queue")
    t.stop()


def connect(qdir: str) -> P.Connection:
    conn = P.Connection.open(qdir, timeout=10)
    return conn


def submit(qdir: str, req: P.Request, content: bytes) -> P.Answer:
    conn = connect(qdir)
    try:
        try:
            conn.send_request(req)
            conn.send_data(content)
            conn.send_end()
        except OSError:
            pass            # the service answered early (as sendmail does, read the answer)
        return conn.read_answer()
    finally:
        conn.close()


def wait_closed(conn: P.Connection) -> bytes:
    """Everything the server still sends, until it closes (or 10 s)."""
    data = b""
    while True:
        chunk = conn.sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_directories_and_socket_modes(pickup):
    _, qdir = pickup
    assert os.stat(os.path.join(qdir, "public", "pickup")).st_mode & 0o777 == 0o666
    assert os.stat(os.path.join(qdir, "public")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(qdir, "maildrop")).st_mode & 0o777 == 0o700


def test_good_submission_is_committed_before_ok(pickup):
    t, qdir = pickup
    ans = submit(qdir, P.Request(sender="joe", full_name="Joe User",
                                 recipients=["a@example.test"], extracted=["b"]),
                 b"Subject: hi\n\nbody\n")
    assert ans.status == P.OK and ans.pid == os.getpid()
    assert queue_files(qdir) == [ans.queue_id]
    path = os.path.join(qdir, "incoming", ans.queue_id)
    env, _ = read_envelope(path)
    assert env.sender == "joe@example.test" and env.rewrite_context == "local"
    assert [(r.address, r.orig, r.dsn_orcpt, r.segment) for r in env.recipients] == [
        ("a@example.test", "a@example.test", "rfc822;a@example.test", ""),
        ("b@example.test", "b", "rfc822;b@example.test", "extracted")]
    text = read_content(path).decode()
    uid = os.getuid()
    assert text.startswith(f"Received: by mx.example.test (Postfix, from userid {uid})\n"
                           f"\tid {ans.queue_id}; ")
    assert "\nFrom: Joe User <joe@example.test>\n" in text
    assert "\nMessage-Id: <" in text and "\nDate: " in text
    assert t.queued == [ans.queue_id]


def test_bad_first_frame_gets_an_answer_not_a_hang(pickup):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send(P.frame(P.DATA, b"hello"))
    ans = conn.read_answer()
    assert ans.status == P.FAIL and ans.text == "protocol error: unexpected frame type b'D'"
    assert wait_closed(conn) == b""
    conn.close()
    conn = connect(qdir)
    conn.send(struct.pack(">cI", b"S", P.MAX_PAYLOAD + 10))
    ans = conn.read_answer()
    assert ans.status == P.FAIL and "frame too large" in ans.text
    conn.close()
    assert queue_files(qdir) == []


def test_garbage_in_the_middle_of_a_message(pickup):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send_request(P.Request(sender="a", recipients=["b"]))
    conn.send_data(b"Subject: x\n\n")
    conn.send(b"Q\x00\x00\x00\x01x")
    ans = conn.read_answer()
    assert ans.status == P.FAIL and "unexpected frame type" in ans.text
    conn.close()
    assert queue_files(qdir) == []


@pytest.mark.parametrize("stop_after", ["request", "data", "half-frame"])
def test_client_that_disconnects_leaves_nothing(pickup, stop_after):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send_request(P.Request(sender="a", recipients=["b"]))
    if stop_after != "request":
        conn.send_data(b"Subject: x\n\nbody\n")
    if stop_after == "half-frame":
        conn.send(struct.pack(">cI", b"D", 100) + b"only part")
    conn.sock.shutdown(socket.SHUT_WR)      # the client is gone...
    assert wait_closed(conn) == b""         # ...the service drops it without an answer
    conn.close()
    assert queue_files(qdir) == []          # neither a queue file nor a .ID.tmp


def test_silent_client_is_dropped_after_the_frame_timeout(pickup):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send_request(P.Request(sender="a", recipients=["b"]))
    conn.send(struct.pack(">cI", b"D", 100) + b"partial")
    start = time.time()
    rest = wait_closed(conn)           # the server gives up after FRAME_TIMEOUT (1 s here)
    conn.close()
    assert time.time() - start < 9
    assert rest == b""
    assert queue_files(qdir) == []


def test_message_size_limit(pickup):
    _, qdir = pickup
    ans = submit(qdir, P.Request(sender="a", recipients=["b"]), b"x" * 5000 + b"\n")
    assert ans.status == P.FAIL and ans.text.endswith(f"({os.getuid()}): message file too big")
    assert queue_files(qdir) == []


def test_submit_acl(tmp_path, monkeypatch):
    etc = make_config(str(tmp_path), "authorized_submit_users = !nosuchuser, nobody-else\n")
    t = PickupThread(etc).start()
    try:
        qdir = str(tmp_path / "queue")
        ans = submit(qdir, P.Request(sender="a", recipients=["b"]), b"x\n")
        from postier.pickup.users import login_name
        name = login_name(os.getuid())
        assert ans.status == P.FAIL
        assert ans.text == f"User {name}({os.getuid()}) is not allowed to submit mail"
        assert queue_files(qdir) == []
    finally:
        t.stop()


def test_many_frames_of_data(pickup):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send_request(P.Request(sender="a", recipients=["b"]))
    for piece in (b"Subj", b"ect: split\n", b"\nline 1\nli", b"ne 2\n"):
        conn.send_data(piece)
    conn.send_end()
    ans = conn.read_answer()
    conn.close()
    assert ans.status == P.OK
    body = read_content(os.path.join(qdir, "incoming", ans.queue_id))
    assert b"\nSubject: split\nMessage-Id: <" in body
    assert body.endswith(b"\n\nline 1\nline 2\n")


def test_ping_and_unknown_peer_protocol(pickup):
    _, qdir = pickup
    conn = connect(qdir)
    conn.send_request(P.Request(mode="ping"))
    ans = conn.read_answer()
    conn.close()
    assert ans.status == P.OK and ans.pid == os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.path.join(qdir, "public", "pickup"))
    s.sendall(b"EHLO there\r\n")                # not our protocol at all
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    ans = P.decode_answer(data[5:])
    assert ans.status == P.FAIL and ans.text == "protocol error: unexpected frame type b'E'"


def test_second_service_on_the_same_queue_is_refused(pickup):
    t, qdir = pickup
    from postier.errors import PostierError
    other = PickupThread(os.path.join(os.path.dirname(qdir), "etc"))
    with pytest.raises(PostierError, match="another pickup service is running"):
        other.start()
    other.loop.call_soon_threadsafe(other.loop.stop)
    other.thread.join(5)
