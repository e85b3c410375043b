"""Helpers for the master tests: a postier instance driven by `postier
start/stop/reload/status/check`, a loopback smtp-sink as its relayhost, and
the process tree read from /proc.

`Instance(main_cf)` writes ROOT/etc/main.cf and master.cf (smtpd on a free
loopback port, pickup, qmgr, smtp, local, ...) under a 0755 temporary root
that $mail_owner can reach.  `ctl(verb)` runs `postier VERB -c ROOT/etc` and
returns (exit status, stderr).  `master_pid()` reads the pid file;
`workers()` are the master's children named `postier-smtpd` (the kernel
name the workers set), `queue_pid()` the `postier-qmgr` one.  `cleanup()`
stops the instance (postier stop, then SIGKILL by PID to every process of
its tree still alive) and removes the root.

Only loopback addresses are used.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
for _p in (os.path.join(ROOT, "src"), os.path.join(ROOT, "tools"),
           os.path.join(ROOT, "tests", "integration", "qmgr")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from peers import SmtpSink, peers_available, wait_for  # noqa: E402
from postfix_instance import free_port  # noqa: E402

from postier.master.procs import descendants, proc_uid  # noqa: E402

POSTIER = os.path.join(ROOT, ".venv", "bin", "postier")
if not os.path.exists(POSTIER):  # pragma: no cover - installed elsewhere
    POSTIER = shutil.which("postier") or "postier"

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
"""

__all__ = ["Instance", "SmtpSink", "alive", "comm", "free_port", "peers_available", "proc_uid",
           "send", "smtp_session", "swaks", "wait_for"]


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:].split()[0] != b"Z"


def session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2:].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def processes_in_session(sid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and session_of(int(name)) == sid and alive(int(name)):
            out.append(int(name))
    return out


def send(port: int, rcpt: str = "sink@dest.test", subject: str = "test") -> str:
    """One message over SMTP; the 250 text of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.example.test")
        code, text = s.mail("alice@sender.test")
        assert code == 250, text
        code, text = s.rcpt(rcpt)
        assert code == 250, text
        code, text = s.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        assert code == 250, text
        return text.decode()


def swaks(port: int, rcpt: str = "sink@dest.test", subject: str = "test") -> str:
    """One message sent by swaks (the real client); its whole transcript."""
    exe = shutil.which("swaks")
    if exe is None:
        raise AssertionError("swaks is not installed (tools/setup.sh --test installs it)")
    p = subprocess.run([exe, "--server", "127.0.0.1", "--port", str(port),
                        "--helo", "client.example.test", "--from", "alice@sender.test",
                        "--to", rcpt, "--header", f"Subject: {subject}", "--body", "body",
                        "--timeout", "30"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


class smtp_session:
    """A raw SMTP session that can be left open across a reload."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")

    def reply(self) -> str:
        lines = []
        while True:
            line = self.f.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                return "\n".join(lines) or "(closed)"
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def data(self, body: bytes) -> str:
        self.sock.sendall(body + b"\r\n.\r\n")
        return self.reply()

    def close(self) -> None:
        self.f.close()
        self.sock.close()


class Instance:
    def __init__(self, main_cf: dict[str, str] | None = None, *, master_cf: str = MASTER_CF):
        self.root = tempfile.mkdtemp(prefix="postier_master.")
        os.chmod(self.root, 0o755)
        self.port = free_port()
        self.etc = os.path.join(self.root, "etc")
        self.queue = os.path.join(self.root, "queue")
        self.maillog = os.path.join(self.root, "maillog")
        os.makedirs(self.etc)
        self.params = {
            "queue_directory": self.queue,
            "data_directory": os.path.join(self.root, "data"),
            "maillog_file": self.maillog,
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "mydestination": "$myhostname, localhost",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "compatibility_level": "3.6",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtpd_worker_processes": "2",
            "queue_run_delay": "1s",
        }
        self.params.update(main_cf or {})
        self.master_cf = master_cf
        self.write()
        self.seen: set[int] = set()
        self.sid: int | None = None

    def write(self) -> None:
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in self.params.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self.master_cf.format(port=self.port))

    def ctl(self, verb: str, *args: str, timeout: float = 60) -> tuple[int, str]:
        p = subprocess.run([POSTIER, verb, "-c", self.etc, *args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return p.returncode, p.stderr

    def start(self) -> None:
        rc, err = self.ctl("start")
        assert rc == 0, err + self.log()
        pid = self.master_pid()
        assert pid is not None
        self.sid = session_of(pid)
        self.remember()
        assert wait_for(lambda: len(self.workers()) == 2, 20), self.tree()

    def log(self) -> str:
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, needle: str | re.Pattern, timeout: float = 20, count: int = 1) -> bool:
        if isinstance(needle, str):
            return wait_for(lambda: self.log().count(needle) >= count, timeout)
        return wait_for(lambda: len(needle.findall(self.log())) >= count, timeout)

    def master_pid(self) -> int | None:
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def children(self) -> list[int]:
        pid = self.master_pid()
        return [p for p in descendants(pid) if alive(p)] if pid else []

    def workers(self) -> list[int]:
        return [p for p in self.children() if comm(p) == "postier-smtpd"]

    def queue_pid(self) -> int | None:
        q = [p for p in self.children() if comm(p) == "postier-qmgr"]
        return q[0] if q else None

    def remember(self) -> None:
        pid = self.master_pid()
        if pid:
            self.seen.add(pid)
            self.seen.update(descendants(pid))

    def tree(self) -> str:
        pid = self.master_pid()
        return " ".join(f"{p}:{comm(p)}" for p in ([pid] + self.children() if pid else []))

    def cleanup(self) -> None:
        self.remember()
        if self.master_pid() is not None:
            self.ctl("stop")
        for p in self.seen:
            if alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not os.environ.get("POSTIER_KEEP_TEST_ROOT"):
            shutil.rmtree(self.root, ignore_errors=True)


def wait_gone(pids: list[int], timeout: float = 20) -> bool:
    return wait_for(lambda: not any(alive(p) for p in pids), timeout)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
