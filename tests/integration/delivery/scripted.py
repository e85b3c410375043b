"""A scripted SMTP/LMTP server on 127.0.0.1 for client tests (standard library only).

    with ScriptedServer({"rcpt": {"bad@x.test": "550 5.1.1 no such user"}}) as srv:
        ... deliver to f"[127.0.0.1]:{srv.port}" ...
        srv.sessions[0].commands      # ["EHLO ...", "MAIL FROM:<...>", ...]
        srv.sessions[0].messages      # message contents (dot-unstuffed, CRLF kept)

The script says what to answer, keyed by lower-case step: greeting, ehlo,
helo, lhlo, mail, rcpt, data, dot, rset, quit, starttls, xforward, noop.  A
value is a reply ("550 5.1.1 text", multi-line with "\\n"), a list (one
entry per use, the last one repeating), or for rcpt a dict keyed by the
recipient address (with "default").  For dot under LMTP, a list gives one
reply per accepted recipient.  Special replies: "@close" closes the
connection without answering, "@hang" answers nothing and waits for the
client to go away.  "ehlo" defaults to a reply offering PIPELINING,
8BITMIME, DSN, ENHANCEDSTATUSCODES (and SIZE when the script has "size").

Runs in a thread with blocking sockets, so real Postfix processes and the
test's own event loop can both talk to it.  Loopback only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "greeting": "220 sink.test ESMTP",
    "helo": "250 sink.test",
    "mail": "250 2.1.0 Ok",
    "rcpt": "250 2.1.5 Ok",
    "data": "354 End data with <CR><LF>.<CR><LF>",
    "dot": "250 2.0.0 Ok: queued as 4XYZ",
    "rset": "250 2.0.0 Ok",
    "quit": "221 2.0.0 Bye",
    "noop": "250 2.0.0 Ok",
    "xforward": "250 2.0.0 Ok",
    "starttls": "454 4.7.0 TLS not available",
}


def default_ehlo(script: Mapping[str, Any]) -> str:
    lines = ["250-sink.test", "250-PIPELINING"]
    if "size" in script:
        lines.append(f"250-SIZE {script['size']}")
    lines += ["250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250 DSN"]
    return "\n".join(lines)


class Session:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self.closed_by_server = False
        self.done = threading.Event()


class ScriptedServer:
    def __init__(self, script: Mapping[str, Any] | None = None, *, lmtp: bool = False,
                 port: int = 0, host: str = "127.0.0.1") -> None:
        self.script = dict(script or {})
        self.lmtp = lmtp
        self.sessions: list[Session] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(50)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._uses: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        self._thread.join(2)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_sessions(self, n: int, timeout: float = 5) -> bool:
        """Wait until `n` sessions were accepted and all of them have ended."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.sessions) >= n:
                break
            time.sleep(0.01)
        else:
            return False
        return all(s.done.wait(max(0.0, deadline - time.time())) for s in list(self.sessions))

    def commands(self) -> list[str]:
        """Every command received, all sessions in order."""
        return [c for s in self.sessions for c in s.commands]

    # -- serving -----------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sess = Session()
            self.sessions.append(sess)
            threading.Thread(target=self._handle, args=(conn, sess), daemon=True).start()

    def _reply_for(self, step: str, arg: str = "") -> str:
        value = self.script.get(step)
        if value is None:
            value = default_ehlo(self.script) if step in ("ehlo", "lhlo") else DEFAULTS.get(step, "250 Ok")
        if isinstance(value, dict):
            key = arg.lower()
            value = value.get(key, value.get("default", DEFAULTS.get(step, "250 Ok")))
        if isinstance(value, list):
            with self._lock:
                n = self._uses.get(step, 0)
                self._uses[step] = n + 1
            value = value[min(n, len(value) - 1)]
        return value

    def _handle(self, conn: socket.socket, sess: Session) -> None:
        f = conn.makefile("rb")

        def send(reply: str) -> bool:
            if reply == "@close":
                sess.closed_by_server = True
                return False
            if reply == "@hang":
                conn.settimeout(30)
                try:
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass
                return False
            lines = reply.split("\n")
            out = "".join(f"{x[:3]}-{x[4:]}\r\n" if i < len(lines) - 1 and len(x) > 3 and x[3] == " "
                          else x + "\r\n" for i, x in enumerate(lines))
            try:
                conn.sendall(out.encode("utf-8", "surrogateescape"))
            except OSError:
                return False
            return True

        accepted = 0
        try:
            if not send(self._reply_for("greeting")):
                return
            while not self._stop.is_set():
                raw = f.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
                sess.commands.append(line)
                verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
                arg = ""
                if verb == "RCPT":
                    arg = line.split("<", 1)[-1].split(">", 1)[0]
                if verb == "MAIL":
                    accepted = 0
                step = {"EHLO": "ehlo", "HELO": "helo", "LHLO": "lhlo", "MAIL": "mail",
                        "RCPT": "rcpt", "DATA": "data", "RSET": "rset", "QUIT": "quit",
                        "NOOP": "noop", "XFORWARD": "xforward", "STARTTLS": "starttls"}.get(verb)
                if step is None:
                    if not send("502 5.5.2 Error: command not recognized"):
                        return
                    continue
                reply = self._reply_for(step, arg)
                if step == "rcpt" and reply.startswith("2"):
                    accepted += 1
                if step == "data" and reply.startswith("354"):
                    if not send(reply):
                        return
                    body = []
                    while True:
                        raw = f.readline()
                        if not raw:
                            return
                        if raw in (b".\r\n", b".\n"):
                            break
                        body.append(raw[1:] if raw.startswith(b".") else raw)
                    sess.messages.append(b"".join(body))
                    sess.commands.append(".")
                    for _ in range(accepted if self.lmtp else 1):
                        if not send(self._reply_for("dot")):
                            return
                    continue
                if not send(reply):
                    return
                if step == "quit":
                    return
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass
            sess.done.set()
