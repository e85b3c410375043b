"""Helpers for the greylisting integration tests.

`Greylistd(args)`: `postier greylistd` as a subprocess (`python -m
postier.cli.main greylistd --inet 127.0.0.1:PORT --store FILE ...`), its
log on stderr collected in a file; `start()` waits until the port accepts
connections, `stop()` sends SIGTERM to that PID (then SIGKILL to the same
PID).  `PostierRun(overrides)`: `postier run` with main.cf = the private
Postfix instance's base (tools/postfix_instance.py: HARNESS_MAIN_CF +
BASE_MAIN_CF, @ROOT@ substituted) plus the overrides, and a master.cf with
one smtpd on a free loopback port and no queue manager (accepted mail stays
in ROOT/queue/incoming); `start()` waits for the `smtpd listening on` log
line.  `PolicyConn` speaks the policy delegation protocol over one
persistent connection: `ask(**attrs)` sends a request (Postfix's attribute
set, overridable) and returns the action.  tools/ is put on sys.path for
redis_server, postgrey_server and postfix_instance.

Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SRC = os.path.join(ROOT, "src")
TOOLS = os.path.join(ROOT, "tools")
for _p in (SRC, TOOLS):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from peer_process import free_port, stop_process  # noqa: E402  (tools/ on sys.path)


def env(pure: bool = False) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e["POSTIER_PURE"] = "1" if pure else "0"
    return e


def postfix_request(**kw: str) -> dict[str, str]:
    """A request with the attributes Postfix 3.7 sends, in its order."""
    a = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
         "protocol_name": "ESMTP", "client_address": "192.0.2.7",
         "client_name": "mail.example.org", "client_port": "40000",
         "reverse_client_name": "mail.example.org", "server_address": "127.0.0.1",
         "server_port": "25", "helo_name": "mail.example.org",
         "sender": "alice@example.org", "recipient": "bob@example.net",
         "recipient_count": "0", "queue_id": "", "instance": "1a2b.5f00.0",
         "size": "0", "etrn_domain": "", "stress": "", "sasl_method": "",
         "sasl_username": "", "sasl_sender": "", "ccert_subject": "", "ccert_issuer": "",
         "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "",
         "encryption_protocol": "", "encryption_cipher": "", "encryption_keysize": "0",
         "policy_context": ""}
    a.update(kw)
    return a


class PolicyConn:
    """One persistent policy protocol connection."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def ask(self, **kw: str) -> str:
        a = postfix_request(**kw)
        self.sock.sendall("".join(f"{k}={v}\n" for k, v in a.items()).encode() + b"\n")
        while b"\n\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("policy server closed the connection")
            self.buf += data
        answer, _, self.buf = self.buf.partition(b"\n\n")
        text = answer.decode()
        assert text.startswith("action="), text
        return text[len("action="):]

    def close(self) -> None:
        self.sock.close()


class Greylistd:
    """`postier greylistd` on a free loopback port."""

    def __init__(self, args: Sequence[str] = (), *, store: str | None = None,
                 port: int | None = None, pure: bool = False, config_dir: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="postier_gld.")
        self.port = port or free_port()
        self.store = store or os.path.join(self.dir, "greylist.db")
        self.args = list(args)
        self.pure = pure
        self.config_dir = config_dir
        self.log_path = os.path.join(self.dir, "greylistd.log")
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "postier.cli.main", "greylistd",
                f"--inet=127.0.0.1:{self.port}", "--store", self.store]
        if self.config_dir:
            argv += ["-c", self.config_dir]
        return argv + self.args

    def start(self, timeout: float = 20) -> Greylistd:
        e = env(self.pure)
        if not self.config_dir:
            open(os.path.join(self.dir, "main.cf"), "a").close()    # empty: the defaults
            e["POSTIER_CONFIG_DIR"] = self.dir
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), env=e, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"greylistd exited ({self.proc.returncode}):\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.03)
        self.stop()
        raise RuntimeError("greylistd did not start listening:\n" + self.log())

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_lines(self) -> list[str]:
        """Decision and event lines without the `postier greylistd: ` prefix."""
        prefix = "postier greylistd: "
        return [ln[len(prefix):] if ln.startswith(prefix) else ln
                for ln in self.log().splitlines()]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc, timeout)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def cleanup(self) -> None:
        self.stop()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


RUN_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       trivial-rewrite
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostierRun:
    """`postier run` serving one loopback port with a given main.cf."""

    def __init__(self, overrides: dict[str, str] | None = None, *, pure: bool = False):
        from postfix_instance import BASE_MAIN_CF, HARNESS_MAIN_CF
        self.root = tempfile.mkdtemp(prefix="postier_run.")
        os.chmod(self.root, 0o755)
        self.port = free_port()
        self.pure = pure
        self.etc = os.path.join(self.root, "etc")
        self.queue = os.path.join(self.root, "queue")
        self.maillog_path = os.path.join(self.root, "maillog")
        for d in (self.etc, self.queue, os.path.join(self.root, "data")):
            os.makedirs(d, exist_ok=True)
        params = dict(HARNESS_MAIN_CF + BASE_MAIN_CF)
        params.update(overrides or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write(f"{k} = {v.replace('@ROOT@', self.root)}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(RUN_MASTER_CF.format(port=self.port))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> PostierRun:
        out = open(os.path.join(self.root, "postier.out"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "postier.cli.main", "run", "-c",
                                      self.etc], env=env(self.pure), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, cwd=self.root)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postier run exited ({self.proc.returncode}): "
                                   f"{self.maillog()[-2000:]}")
            if "smtpd listening on" in self.maillog():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("postier run did not start listening")

    def maillog(self) -> str:
        try:
            with open(self.maillog_path, "rb") as f:
                return f.read().decode("utf-8", "surrogateescape")
        except OSError:
            return ""

    def queue_file(self, qid: str) -> str:
        return os.path.join(self.queue, "incoming", qid)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        import shutil
        shutil.rmtree(self.root, ignore_errors=True)
