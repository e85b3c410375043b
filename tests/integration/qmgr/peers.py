"""Real peers for the queue-manager end-to-end tests and the e2e benchmark.

* `SmtpSink`: Postfix's smtp-sink(1) on a loopback port (`-c` counters
  parsed from its output, `-d DIR` capture, `-f`/`-r` hard/soft rejects),
  run with `-u nobody` when we are root.
* `PostierDaemon`: `postier run -c DIR` on a temp root (main.cf + master.cf
  written here), stopped by PID; `kill()` sends SIGKILL (crash test).
* `PostfixRelay`: a private real Postfix (tools/postfix_instance.py) with a
  queue manager and smtp/error/discard/bounce services, relaying everything
  to `relayhost` - the oracle for DSN shapes and the e2e baseline.
* `send_message()`: one SMTP transaction with the standard library.

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
sys.path.insert(0, os.path.join(ROOT, "tools"))

from postfix_instance import PostfixInstance, free_port  # noqa: E402

from postier.bench.mta import POSTFIX_MASTER_CF  # noqa: E402

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
POSTIER = os.path.join(ROOT, ".venv", "bin", "postier")
if not os.path.exists(POSTIER):  # pragma: no cover - installed elsewhere
    POSTIER = shutil.which("postier") or "postier"

__all__ = ["PostfixRelay", "PostierDaemon", "SmtpSink", "free_port", "peers_available",
           "send_message", "wait_for"]


def peers_available() -> bool:
    return os.path.exists(SMTP_SINK) and os.path.exists(SMTP_SOURCE)


def wait_for(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


_COUNTERS = re.compile(r"sess=(\d+)\s+quit=(\d+)\s+mesg=(\d+)")


class SmtpSink:
    """smtp-sink on 127.0.0.1:port.  `args` are extra options (e.g.
    ["-f", "RCPT"] for 5xx, ["-r", "RCPT"] for 4xx); `dump_dir` enables -d."""

    def __init__(self, args: list[str] | tuple[str, ...] = (), *, dump_dir: str | None = None,
                 port: int | None = None, counters: bool = True):
        self.port = port or free_port()
        self.args = list(args)
        self.dump_dir = dump_dir
        self.counters = counters
        self.proc: subprocess.Popen | None = None
        self.out_path = tempfile.mktemp(prefix="smtp-sink.", suffix=".out")

    def start(self) -> SmtpSink:
        argv = [SMTP_SINK]
        if os.geteuid() == 0:
            # root must name a user; a capturing sink stays root so that it can
            # write into a private (0700) test directory
            argv += ["-u", "root" if self.dump_dir else "nobody"]
        if self.counters:
            argv.append("-c")
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
            argv += ["-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")]
        argv += self.args + [f"127.0.0.1:{self.port}", "256"]
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if not wait_for(self._listening, 10):
            self.stop()
            raise RuntimeError(f"smtp-sink did not start: {argv}")
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def restart(self, args: list[str] | tuple[str, ...]) -> None:
        """Same port, new options (e.g. stop answering 4xx)."""
        self.stop()
        self.args = list(args)
        self.start()

    def counts(self) -> tuple[int, int, int]:
        """(sessions, quits, messages) from the last -c counter line."""
        try:
            with open(self.out_path, "rb") as f:
                data = f.read().decode("latin-1")
        except OSError:
            return (0, 0, 0)
        found = _COUNTERS.findall(data.replace("\r", "\n"))
        if not found:
            return (0, 0, 0)
        s, q, m = found[-1]
        return int(s), int(q), int(m)

    @property
    def messages(self) -> int:
        return self.counts()[2]

    def dumps(self) -> list[bytes]:
        out = []
        if not self.dump_dir:
            return out
        for name in sorted(os.listdir(self.dump_dir)):
            with open(os.path.join(self.dump_dir, name), "rb") as f:
                out.append(f.read())
        return out

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._out.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        try:
            os.unlink(self.out_path)
        except OSError:
            pass


POSTIER_MASTER_CF = """\
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
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
{extra}"""


class PostierDaemon:
    """`postier run -c ROOT/etc` with queue_directory ROOT/queue."""

    def __init__(self, main_cf: dict[str, str], *, root: str | None = None,
                 port: int | None = None, extra_master: str = "",
                 env: dict[str, str] | None = None):
        self.root = root or tempfile.mkdtemp(prefix="postier_qmgr.")
        self.owned = root is None
        self.port = port or free_port()
        self.etc = os.path.join(self.root, "etc")
        self.queue = os.path.join(self.root, "queue")
        self.maillog = os.path.join(self.root, "maillog")
        os.makedirs(self.etc, exist_ok=True)
        params = {
            "queue_directory": self.queue,
            "maillog_file": self.maillog,
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "mydestination": "$myhostname, localhost",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "compatibility_level": "3.6",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
        }
        params.update(main_cf)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTIER_MASTER_CF.format(port=self.port, extra=extra_master))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 20) -> PostierDaemon:
        out = open(os.path.join(self.root, "postier.out"), "ab")
        self.proc = subprocess.Popen([POSTIER, "run", "-c", self.etc], stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, env=self.env)
        out.close()
        self.starts += 1

        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"postier run exited; see {self.root}/postier.out")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        if not wait_for(up, timeout):
            raise RuntimeError("postier did not start listening")
        return self

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        try:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL by PID (the crash test)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def log(self) -> str:
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, needle: str | re.Pattern, timeout: float, count: int = 1) -> bool:
        if isinstance(needle, str):
            return wait_for(lambda: self.log().count(needle) >= count, timeout)
        return wait_for(lambda: len(needle.findall(self.log())) >= count, timeout)

    def queue_files(self, queue: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(os.path.join(self.queue, queue))
                          if not n.startswith("."))
        except OSError:
            return []

    def queued(self) -> int:
        return sum(len(self.queue_files(q)) for q in ("incoming", "active", "deferred"))

    def rss_kb(self) -> tuple[int, int]:
        """(RSS, PSS) in kB of the postier process."""
        if self.proc is None:
            return (0, 0)
        rss = pss = 0
        try:
            with open(f"/proc/{self.proc.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except OSError:
            pass
        return rss, pss

    def cleanup(self) -> None:
        self.stop()
        if self.owned and not os.environ.get("POSTIER_KEEP_TEST_ROOT"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostierDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class PostfixRelay(PostfixInstance):
    """A private real Postfix with a queue manager and SMTP client: it
    delivers (loopback only: every transport is smtp to `relayhost`)."""

    def write_config(self, overrides=(), tables=None) -> None:  # type: ignore[override]
        base = {"default_transport": "smtp", "relay_transport": "relay",
                "local_transport": "error:local delivery disabled",
                "virtual_transport": "error:virtual delivery disabled",
                "smtp_dns_support_level": "disabled", "qmgr_message_active_limit": "20000",
                "delay_warning_time": "0h"}
        items = overrides.items() if isinstance(overrides, dict) else overrides
        base.update(dict(items))
        if "relayhost" not in base:
            raise ValueError("PostfixRelay needs relayhost=[127.0.0.1]:PORT")
        super().write_config(base, tables)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(port=self.port))
        past = time.time() - 3600
        os.utime(os.path.join(self.etc, "master.cf"), (past, past))

    def postcat(self, qid: str) -> str:
        p = subprocess.run(["postcat", "-c", self.etc, "-q", qid], capture_output=True,
                           text=True)
        return p.stdout

    def queue_ids(self) -> list[str]:
        out = []
        for q in ("incoming", "active", "deferred", "hold"):
            for _dirpath, _dirs, files in os.walk(os.path.join(self.queue, q)):
                out += [f for f in files]
        return out

    def flush(self) -> None:
        subprocess.run(["postqueue", "-c", self.etc, "-f"], capture_output=True)


def send_message(port: int, sender: str, rcpts: list[str], body: bytes | str, *,
                 host: str = "127.0.0.1", mail_options: tuple[str, ...] = (),
                 rcpt_options: tuple[str, ...] = (), timeout: float = 30) -> str:
    """One SMTP transaction; returns the text of the 250 reply to DATA
    (raises smtplib exceptions otherwise)."""
    if isinstance(body, str):
        body = body.encode()
    with smtplib.SMTP(host, port, timeout=timeout) as s:
        s.ehlo("client.example.test")
        code, msg = s.mail(sender, list(mail_options))
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, msg, sender)
        for r in rcpts:
            code, msg = s.rcpt(r, list(rcpt_options))
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({r: (code, msg)})
        code, msg = s.data(body)
        if code != 250:
            raise smtplib.SMTPDataError(code, msg)
        return msg.decode()
