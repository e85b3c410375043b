"""Helpers for the smtpd integration tests: `postier run` on a private root,
a real Postfix instance with the same main.cf, and a raw SMTP client.

`PostierServer(overrides, tables)` writes ROOT/etc/main.cf (the same base as
tools/postfix_instance.py's private Postfix: HARNESS_MAIN_CF + BASE_MAIN_CF,
then the overrides, `@ROOT@`/`@TABLES@` substituted) and a master.cf with one
`127.0.0.1:PORT inet ... smtpd` service on a free port, compiles `hash:`
tables with `postier map`, starts `python -m postier.cli.main run -c ROOT/etc`
and waits for the `smtpd listening on` log line (no probe session, so the
maillog holds only what a test did).  `stop()` sends SIGTERM to that PID and
SIGKILL to the same PID if it does not exit.  That process is postier's
master: it forks the smtpd workers (`pids()` lists them all), which exit
with it.

`Smtp` is a byte-exact client: `send()` writes raw bytes (so tests can send
bare CR/LF), `reply()` reads one (multi-line) reply, `dialog()` runs a list
of commands and then collects whatever the server still says before it
closes.  Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SRC = os.path.join(ROOT, "src")
TOOLS = os.path.join(ROOT, "tools")
for _p in (SRC, TOOLS):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import postfix_instance  # noqa: E402  (tools/ on sys.path)
from peer_process import stop_process  # noqa: E402
from postfix_instance import BASE_MAIN_CF, HARNESS_MAIN_CF, free_port  # noqa: E402

MYHOSTNAME = dict(BASE_MAIN_CF)["myhostname"]
QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")

MASTER_CF = """\
# postier smtpd integration test: one smtpd on loopback
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       trivial-rewrite
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def vm_rss_kb(pid: int) -> int:
    """VmRSS of one process in kB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def postfix_available() -> bool:
    return postfix_instance.postfix_available()


def merged_main_cf(overrides: Mapping[str, str] | Iterable[tuple[str, str]] = ()
                   ) -> dict[str, str]:
    params = dict(HARNESS_MAIN_CF + BASE_MAIN_CF)
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for k, v in items:
        params[k] = v
    return params


class PostierServer:
    """`postier run` serving one loopback port with a given main.cf."""

    def __init__(self, overrides: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 tables: Mapping[str, tuple[str, str]] | None = None, *,
                 pure: bool = False, root: str | None = None, port: int | None = None,
                 env: Mapping[str, str] | None = None, taskset: str | None = None):
        self.root = root or tempfile.mkdtemp(prefix="postier_it.")
        self.owned_root = root is None
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.etc = os.path.join(self.root, "etc")
        self.tables = os.path.join(self.root, "tables")
        self.queue = os.path.join(self.root, "queue")
        self.maillog_path = os.path.join(self.root, "maillog")
        self.out_path = os.path.join(self.root, "postier.out")
        self.pure = pure
        self.extra_env = dict(env or {})
        self.taskset = taskset
        self.proc: subprocess.Popen | None = None
        for d in (self.etc, self.tables, self.queue, os.path.join(self.root, "data")):
            os.makedirs(d, exist_ok=True)
        self.params = merged_main_cf(overrides)
        for name, (ttype, text) in (tables or {}).items():
            self.write_table(name, ttype, text)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in self.params.items():
                f.write(f"{k} = {self.subst(v)}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))

    def subst(self, value: str) -> str:
        return value.replace("@ROOT@", self.root).replace("@TABLES@", self.tables)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        env["POSTIER_PURE"] = "1" if self.pure else "0"
        env.update(self.extra_env)
        return env

    def write_table(self, name: str, ttype: str, text: str) -> None:
        path = os.path.join(self.tables, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        past = time.time() - 3600
        os.utime(path, (past, past))
        if ttype == "hash":
            p = subprocess.run([sys.executable, "-m", "postier.cli.main", "map",
                                f"hash:{path}"], env=self.env(), capture_output=True,
                               text=True)
            if p.returncode:
                raise RuntimeError(f"postier map hash:{path} failed: {p.stderr}")

    # -- process ------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30) -> PostierServer:
        before = self.maillog().count("smtpd listening on")
        argv = [sys.executable, "-m", "postier.cli.main", "run", "-c", self.etc]
        if self.taskset:
            argv = ["taskset", "-c", self.taskset] + argv
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"postier run exited ({rc}):\n{self.output()}\n"
                                   f"{self.maillog()[-2000:]}")
            if self.maillog().count("smtpd listening on") > before:
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("postier did not start listening:\n" + self.output())

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM our process by PID, then SIGKILL the same PID."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.owned_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> list[int]:
        """`postier run` (the master) and every process it forked (the smtpd
        workers, one per CPU by default)."""
        return [self.pid] + postfix_instance.descendants(self.pid)

    def rss_kb(self) -> int:
        """VmRSS summed over pids()."""
        return sum(vm_rss_kb(p) for p in self.pids())

    # -- results ------------------------------------------------------------

    def output(self) -> str:
        try:
            with open(self.out_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def maillog(self) -> str:
        try:
            with open(self.maillog_path, "rb") as f:
                return f.read().decode("utf-8", "surrogateescape")
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float = 10, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.maillog().count(needle) >= count:
                return True
            time.sleep(0.02)
        return False

    def incoming(self) -> list[str]:
        """Committed queue files in incoming/ (temporary files excluded)."""
        d = os.path.join(self.queue, "incoming")
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def queue_file(self, qid: str) -> str:
        return os.path.join(self.queue, "incoming", qid)


class PostfixServer(postfix_instance.PostfixInstance):
    """tools/postfix_instance.py's private Postfix, configured and started."""

    def __init__(self, overrides: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 tables: Mapping[str, tuple[str, str]] | None = None, **kw):
        super().__init__(**kw)
        self.write_config(overrides, tables)

    def incoming(self) -> list[str]:
        out = []
        for dirpath, _, files in os.walk(os.path.join(self.queue, "incoming")):
            out += [os.path.join(dirpath, n) for n in files]
        return sorted(out)

    def postcat(self, qid: str) -> str:
        p = subprocess.run(["postcat", "-c", self.etc, "-bh", "-q", qid],
                           capture_output=True)
        return p.stdout.decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------- client

@dataclass
class Reply:
    """One SMTP reply; `code` is None when the server closed instead."""

    code: int | None
    lines: list[str]

    @property
    def text(self) -> str:
        """The whole reply as sent, lines joined with \\n."""
        return "\n".join(self.lines)

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""

    def __str__(self) -> str:
        return self.text if self.code is not None else "(closed)"


CLOSED = Reply(None, [])


class Smtp:
    """Raw SMTP client on loopback.  `source` binds the client address
    (any 127.0.0.0/8 address works on Linux loopback)."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, source: str | None = None,
                 timeout: float = 30):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.rfile = self.sock.makefile("rb")

    def reply(self) -> Reply:
        lines: list[str] = []
        while True:
            try:
                raw = self.rfile.readline()
            except (ConnectionError, TimeoutError):
                raw = b""
            if not raw:
                return Reply(None, lines) if not lines else Reply(_code(lines), lines)
            line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(_code(lines), lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> Reply:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.send(data + b"\r\n")
        return self.reply()

    def rest(self) -> list[Reply]:
        """Every reply until the server closes the connection."""
        out = []
        while True:
            r = self.reply()
            if r.code is None:
                return out
            out.append(r)

    def at_eof(self, timeout: float = 5) -> bool:
        """True when the server has closed the connection (nothing more to read)."""
        self.sock.settimeout(timeout)
        try:
            return self.rfile.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Smtp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _code(lines: list[str]) -> int | None:
    head = lines[-1][:3]
    return int(head) if head.isdigit() else None


def dialog(port: int, steps: Sequence[str | bytes], *, source: str | None = None,
           quit: bool = True, timeout: float = 30) -> list[str]:
    """Banner, then each step (a command line, or raw bytes sent as they are)
    with the reply it gets; stops when the server closes; then collects every
    reply the server still sends before closing.  Returns reply texts
    ("(closed)" for a step that got no reply), queue IDs -> QUEUEID."""
    out: list[str] = []
    with Smtp(port, source=source, timeout=timeout) as c:
        out.append(str(c.reply()))
        closed = out[0] == "(closed)"
        for step in list(steps) + (["QUIT"] if quit else []):
            if closed:
                break
            try:
                if isinstance(step, bytes):
                    c.send(step)
                    r = c.reply()
                else:
                    r = c.cmd(step)
            except (BrokenPipeError, ConnectionResetError):
                r = CLOSED
            out.append(str(r))
            closed = r.code is None or r.code in (221, 421)
        if closed and out[-1] != "(closed)":
            out += [str(r) for r in c.rest()]
    return [QUEUED_AS.sub("queued as QUEUEID", x) for x in out]


def new_session_accepts_mail(port: int, *, source: str | None = None) -> Reply:
    """A fresh session: EHLO and MAIL FROM; returns the MAIL reply."""
    with Smtp(port, source=source) as c:
        banner = c.reply()
        if banner.code != 220:
            return banner
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("QUIT")
        return r


def message(size: int, *, subject: str = "test", eight_bit: bool = False) -> bytes:
    """An RFC 5322 message of about `size` bytes, CRLF line ends, with some
    lines starting with a dot; no line is longer than 78 bytes.  It has every
    header a cleanup stage would otherwise add (From, Date, Message-ID), so
    the stored copy can be compared byte for byte."""
    head = (f"From: sender@example.org\r\nTo: rcpt@example.test\r\n"
            f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{size}.test@example.org>\r\n"
            "MIME-Version: 1.0\r\n").encode()
    if eight_bit:
        head += b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    head += b"\r\n"
    body = bytearray()
    i = 0
    while len(head) + len(body) < size:
        if i % 17 == 0:
            line = b".dotted line %d" % i
        elif eight_bit and i % 5 == 0:
            line = f"Grüße aus Köln, ça va? ß€ {i}".encode()
        else:
            line = b"line %08d the quick brown fox jumps over the lazy dog" % i
        body += line + b"\r\n"
        i += 1
    return head + bytes(body)


def dot_stuff(msg: bytes) -> bytes:
    """Wire form for DATA: dot-stuffed, ending with the end marker."""
    lines = msg.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines) + b".\r\n"


def stored_body(content: bytes) -> bytes:
    """The message as postier stored it minus the Received: header it added,
    with LF line ends converted back to CRLF (the queue file keeps LF)."""
    assert content.startswith(b"Received: ")
    i = 0
    # the Received: header is the first line plus its continuation lines
    while True:
        j = content.index(b"\n", i)
        i = j + 1
        if i >= len(content) or content[i:i + 1] not in (b"\t", b" "):
            break
    return content[i:].replace(b"\n", b"\r\n")
