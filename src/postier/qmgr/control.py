"""Talking to a running queue manager: `queue_directory/public/qmgr`.

The queue manager listens on a Unix stream socket `public/qmgr` (Postfix
has a FIFO there; postier needs answers, so it is a socket).  One request
per line, one answer line:

    ping                    -> ok
    trigger LETTERS         -> ok      Postfix's qmgr trigger codes:
                                       I scan incoming, D scan deferred,
                                       A ignore time stamps on the next
                                       scan (deliver deferred mail now),
                                       F forget dead destinations and
                                       transports, W wake up (scan both)
    flush                   -> ok      = trigger FADI: postqueue -f,
                                       sendmail -q, postier flush
    hold QUEUEID            -> ok hold           the message was in active:
    delete QUEUEID          -> ok                the queue manager finishes
    requeue QUEUEID         -> ok incoming       the deliveries in progress,
                                                 records which recipients are
                                                 done, then moves (or deletes)
                                                 the file
                            -> none              no such message in active
    anything else           -> error TEXT

Files in the other queues (incoming, deferred, hold, corrupt) are the
administrator's: a tool moves them with rename(2) within queue_directory
(then fsyncs the target directory) and, for mail that should go out now,
sends `trigger I` (renamed into incoming) or `flush`.  See postier.qmgr for
the whole protocol.

Client functions (used by `postier queue` / postier.queue.tools):
`qmgr_running(qdir)`, `qmgr_request(qdir, op, qid)`, `qmgr_flush(qdir)`,
`qmgr_trigger(qdir, letters)`.

Parameters read: none (the caller passes queue_directory).
"""

from __future__ import annotations

import os
import socket

from postier.errors import PostierError

SOCKET_NAME = os.path.join("public", "qmgr")
TRIGGERS = "IDAFW"
OPS = ("hold", "delete", "requeue", "release")


class QmgrError(PostierError):
    """The queue manager answered with an error."""


def socket_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, SOCKET_NAME)


def _ask(queue_directory: str, line: str, timeout: float) -> str | None:
    """Send one request; the answer line, or None when nothing listens."""
    path = socket_path(queue_directory)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        s.sendall(line.encode("utf-8", "surrogateescape") + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.decode("utf-8", "surrogateescape").strip()
    finally:
        s.close()


def qmgr_running(queue_directory: str) -> bool:
    """True when a queue manager answers on public/qmgr."""
    try:
        return _ask(queue_directory, "ping", 5) == "ok"
    except OSError:
        return False


def qmgr_trigger(queue_directory: str, letters: str) -> bool:
    """Send trigger codes (I, D, A, F, W); False when no queue manager runs."""
    bad = [c for c in letters if c not in TRIGGERS]
    if bad:
        raise ValueError(f"unknown qmgr trigger code: {bad[0]!r}")
    try:
        answer = _ask(queue_directory, f"trigger {letters}", 10)
    except OSError:
        return False
    if answer is None:
        return False
    if answer != "ok":
        raise QmgrError(answer)
    return True


def qmgr_flush(queue_directory: str) -> bool:
    """postqueue -f: deliver deferred mail now.  False when no queue
    manager runs (nothing to do: the next start scans everything)."""
    try:
        answer = _ask(queue_directory, "flush", 10)
    except OSError:
        return False
    if answer is None:
        return False
    if answer != "ok":
        raise QmgrError(answer)
    return True


def qmgr_request(queue_directory: str, op: str, qid: str, timeout: float = 600) -> str | None:
    """Ask the queue manager to hold/delete/requeue a message it owns (in
    active).  Returns the queue the file went to ("" when deleted), or
    None when it has no such message.  Waits until deliveries in progress
    for the message are over."""
    if op not in OPS:
        raise ValueError(f"unknown queue manager request: {op}")
    if not qid or any(c.isspace() for c in qid):
        raise ValueError(f"bad queue ID: {qid!r}")
    answer = _ask(queue_directory, f"{op} {qid}", timeout)
    if answer is None:
        raise QmgrError("the queue manager is not running")
    if answer == "none":
        return None
    if answer == "ok":
        return ""
    if answer.startswith("ok "):
        return answer[3:]
    raise QmgrError(answer)
