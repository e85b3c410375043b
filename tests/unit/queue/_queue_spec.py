"""Queue descriptions for the queue-tool tests and goldens (tests/golden/queue/*.in).

A spec is `#` comment lines (the golden's header: what it shows and how the
expected output was confirmed) followed by one JSON object:

    {"command": ["queue", "list"],          # postier argv after `postier`
     "now": 1795845000,                     # qshape's clock (epoch seconds)
     "main_cf": {"smtputf8_enable": "no"},  # optional extra main.cf lines
     "messages": [
       {"queue": "deferred", "id": "6B0A6C7906661AF4",
        "arrival": 1795844641,              # or "age": seconds before "now"
        "size": 301,                        # content bytes
        "sender": "alice@example.org",      # internal (unquoted) form, "" = null sender
        "recipients": ["bob@remote.test", {"address": "d@x.test", "done": true}],
        "defer": [["bob@remote.test", "connect to ...: Connection refused"]]},
       {"queue": "deferred", "id": "0123456789ABCDEF", "raw": "not a queue file"}]}

`build_postier(spec, root)` writes the queue with postier's QueueWriter and
the queue manager's defer-log records; `build_postfix(spec, confdir, qdir)`
writes the same messages as real Postfix queue files (size, time, sender,
recipient and end records; delivered recipients as `D` records) and Postfix
text defer logs, so postqueue(1) and qshape(1) can be run on the same data.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import sys

from postier.maps.access import quote_822_local
from postier.queue.file import DsnRecord, Envelope, QueueWriter, Recipient, append_dsn_log

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt",
          "bounce", "defer", "trace")


def load_spec(path: str) -> tuple[str, dict]:
    """(header text, spec) of a .in file."""
    header, body = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not body and line.startswith("#"):
                header.append(line[1:].strip())
            else:
                body.append(line)
    return "\n".join(header), json.loads("".join(body))


def arrival_of(msg: dict, now: float) -> float:
    if "arrival" in msg:
        return float(msg["arrival"])
    return now - float(msg["age"])


def recipients_of(msg: dict) -> list[tuple[str, bool]]:
    out = []
    for r in msg.get("recipients", []):
        if isinstance(r, str):
            out.append((r, False))
        else:
            out.append((r["address"], bool(r.get("done"))))
    return out


def content_of(size: int) -> bytes:
    """`size` bytes of message content: a header, a blank line, filler lines."""
    head = b"Subject: queue tool test\n\n"
    if size <= len(head):
        return head[:size]
    body = bytearray(head)
    while len(body) < size:
        left = size - len(body)
        line = b"x" * min(left - 1, 71) + b"\n" if left > 1 else b"\n"
        body += line
    return bytes(body[:size])


def write_config(confdir: str, qdir: str, extra: dict | None = None) -> None:
    os.makedirs(confdir, exist_ok=True)
    lines = [f"queue_directory = {qdir}"]
    for k, v in (extra or {}).items():
        lines.append(f"{k} = {v}")
    with open(os.path.join(confdir, "main.cf"), "w") as f:
        f.write("\n".join(lines) + "\n")


def build_postier(spec: dict, root: str) -> tuple[str, str]:
    """Write the spec's queue under root; returns (config dir, queue dir)."""
    confdir = os.path.join(root, "etc")
    qdir = os.path.join(root, "queue")
    for q in QUEUES:
        os.makedirs(os.path.join(qdir, q), exist_ok=True)
    write_config(confdir, qdir, spec.get("main_cf"))
    now = float(spec.get("now", 0))
    for msg in spec.get("messages", []):
        qpath = os.path.join(qdir, msg["queue"])
        if "raw" in msg:
            with open(os.path.join(qpath, msg["id"]), "w") as f:
                f.write(msg["raw"])
            continue
        w = QueueWriter(qpath)
        w.write(content_of(int(msg.get("size", 100))))
        # a fixed queue ID, as the golden names it
        w.queue_id = msg["id"]
        w.path = os.path.join(qpath, msg["id"])
        env = Envelope(queue_id=msg["id"], arrival=arrival_of(msg, now),
                       sender=msg.get("sender", ""),
                       recipients=[Recipient(address=a, done=d)
                                   for a, d in recipients_of(msg)])
        w.commit(env)
        if msg.get("defer"):
            append_dsn_log(os.path.join(qdir, "defer", msg["id"]),
                           [DsnRecord(address=a, status="4.4.1", action="delayed", reason=why)
                            for a, why in msg["defer"]])
    return confdir, qdir


# ---------------------------------------------------------------------------
# The same queue in real Postfix's format

REC_SIZE, REC_TIME, REC_FROM, REC_RCPT, REC_DONE, REC_END = b"C", b"T", b"S", b"R", b"D", b"E"


def record(rtype: bytes, data: bytes) -> bytes:
    n = len(data)
    out = bytearray(rtype)
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    return bytes(out) + data


def postfix_queue_file(msg: dict, now: float) -> bytes:
    size = int(msg.get("size", 100))
    rcpts = recipients_of(msg)
    parts = [record(REC_SIZE, (b"%15d %15d %15d %15d %15d %15d"
                               % (size, 0, len(rcpts), 0, size, 0))),
             record(REC_TIME, b"%d 0" % int(arrival_of(msg, now))),
             record(REC_FROM, msg.get("sender", "").encode())]
    for addr, done in rcpts:
        parts.append(record(REC_DONE if done else REC_RCPT, addr.encode()))
    parts.append(record(REC_END, b""))
    return b"".join(parts)


def postfix_defer_log(entries: list[list[str]]) -> bytes:
    out = []
    for addr, why in entries:
        ext = quote_822_local(addr)
        out.append(f"\n<{ext}>: {why}\nrecipient={ext}\noffset=0\n"
                   f"dsn_orig_rcpt=rfc822;{ext}\nstatus=4.4.1\naction=delayed\n"
                   f"reason={why}\n\n")
    return "".join(out).encode()


def build_postfix(spec: dict, qdir: str, now: float) -> None:
    """Write the spec's messages into a real Postfix queue directory (created
    by `postfix check`, with hash_queue_names = flush: flat directories)."""
    pw = pwd.getpwnam("postfix")
    for msg in spec.get("messages", []):
        if "raw" in msg:
            continue            # postier-only case
        qpath = os.path.join(qdir, msg["queue"])
        os.makedirs(qpath, exist_ok=True)
        path = os.path.join(qpath, msg["id"])
        with open(path, "wb") as f:
            f.write(postfix_queue_file(msg, now))
        os.chmod(path, 0o700)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        if msg.get("defer"):
            dpath = os.path.join(qdir, "defer", msg["id"])
            os.makedirs(os.path.dirname(dpath), exist_ok=True)
            with open(dpath, "wb") as f:
                f.write(postfix_defer_log(msg["defer"]))
            os.chmod(dpath, 0o600)
            os.chown(dpath, pw.pw_uid, pw.pw_gid)


# ---------------------------------------------------------------------------
# Running the CLI in-process

class _Out(io.StringIO):
    """A text stdout with a .buffer, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def value(self) -> str:
        return self.buffer.getvalue().decode("utf-8", "surrogateescape") + self.getvalue()


def run_cli(argv: list[str], monkeypatch, now: float | None = None) -> tuple[int, str, str]:
    from postier.cli import main as cli_main
    from postier.cli import qshape_cmd
    out, err = _Out(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    if now is not None:
        monkeypatch.setattr(qshape_cmd, "_now", lambda: now)
    rc = cli_main.main(argv)
    return rc, out.value(), err.getvalue()


