"""Helpers for the content-scan integration tests: a real clamd, postier
(`postier run` and `postier filter`) and a real Postfix that uses postier
as its after-queue content filter.

* `ClamdServer`, `EICAR` come from tools/clamd_server.py (a private clamd
  with a self-made signature database; no freshclam).
* `PostierServer`, `Smtp` come from tests/integration/smtpd/smtpd_peers.py.
* `FilterProcess`: `python -m postier.cli.main filter -c ROOT/etc --listen
  127.0.0.1:PORT --reinject 127.0.0.1:PORT2 [--lmtp] --spool ROOT/spool`,
  started and stopped by PID.
* `PostfixWithFilter`: tools/postfix_instance.py's private Postfix with a
  queue manager, `content_filter = smtp-amavis:[127.0.0.1]:FILTERPORT`, an
  `smtp-amavis` smtp (or lmtp) transport with `smtp_send_xforward_command =
  yes`, and the reinjection smtpd on 127.0.0.1:REINJECTPORT with
  `-o content_filter=` and the usual amavis -o options.  The reinjection
  service HOLDs what it receives (`smtpd_data_restrictions =
  check_client_access static:HOLD`), so the reinjected message stays in the
  hold queue for postcat.  Nothing can leave loopback: every other transport
  is `discard:`.

Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import base64
import io
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SRC = os.path.join(ROOT, "src")
TOOLS = os.path.join(ROOT, "tools")
SMTPD_IT = os.path.join(ROOT, "tests", "integration", "smtpd")
for _p in (SRC, TOOLS, SMTPD_IT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import postfix_instance  # noqa: E402
from clamd_server import EICAR, ClamdServer, clamd_available  # noqa: E402,F401
from postfix_instance import PostfixInstance, free_port  # noqa: E402
from smtpd_peers import PostierServer, Smtp  # noqa: E402,F401

# --------------------------------------------------------------------------- messages


def plain(body: bytes, subject: str = "test") -> bytes:
    return (b"From: sender@example.org\nTo: user@example.test\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <t@example.org>\n"
            b"Subject: " + subject.encode() + b"\n\n" + body)


def with_attachment(name: str, payload: bytes, ctype: str = "application/octet-stream",
                    name_param: str | None = None) -> bytes:
    param = name_param if name_param is not None else f'"{name}"'
    return (b"From: sender@example.org\nTo: user@example.test\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <a@example.org>\n"
            b"Subject: attachment\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="BOUNDARY"\n\n'
            b"--BOUNDARY\nContent-Type: text/plain; charset=us-ascii\n\nsee attachment\n"
            b"--BOUNDARY\nContent-Type: " + ctype.encode() + b"\n"
            b"Content-Disposition: attachment; filename=" + param.encode() + b"\n"
            b"Content-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(payload) + b"--BOUNDARY--\n")


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def smtp_send(port: int, message: bytes, *, sender: str = "sender@example.org",
              rcpts: tuple[str, ...] = ("user@example.test",), ehlo: str = "EHLO client.test",
              xclient: str | None = None) -> tuple[list, object]:
    """One transaction; returns (RCPT replies, DATA-end reply)."""
    with Smtp(port) as s:
        s.reply()
        if xclient:
            s.cmd(xclient)
        s.cmd(ehlo)
        s.cmd(f"MAIL FROM:<{sender}>")
        rr = [s.cmd(f"RCPT TO:<{r}>") for r in rcpts]
        d = s.cmd("DATA")
        if d.code != 354:
            return rr, d
        data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        data = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                            for ln in data.split(b"\r\n"))
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        s.send(data + b".\r\n")
        r = s.reply()
        s.cmd("QUIT")
        return rr, r


def prepare_quarantine(srv: PostierServer) -> str:
    """ROOT/quarantine, owned by $mail_owner (mode 0700) when we are root, as
    an administrator prepares quarantine_directory: postier's smtpd workers
    write there after dropping their privileges."""
    path = os.path.join(srv.root, "quarantine")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        from postier.config import load_config
        owner = load_config(srv.etc).get("mail_owner")
        try:
            pw = pwd.getpwnam(owner)
        except KeyError:
            return path
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def postier_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def queue_cat(etc: str, qid: str) -> str:
    p = subprocess.run([sys.executable, "-m", "postier.cli.main", "queue", "cat", "-c", etc,
                        "-q", qid], capture_output=True, text=True, env=postier_env())
    return p.stdout + p.stderr


# --------------------------------------------------------------------------- postier filter


class FilterProcess:
    """`postier filter` as a child process (see the module docstring)."""

    def __init__(self, main_cf: dict[str, str], reinject_port: int, *, lmtp: bool = False,
                 port: int | None = None):
        self.root = tempfile.mkdtemp(prefix="postier_filter.")
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.reinject_port = reinject_port
        self.lmtp = lmtp
        self.etc = os.path.join(self.root, "etc")
        self.spool = os.path.join(self.root, "spool")
        self.maillog_path = os.path.join(self.root, "maillog")
        os.makedirs(self.etc)
        params = {"myhostname": "filter.example.test", "mydomain": "example.test",
                  "queue_directory": os.path.join(self.root, "queue"),
                  "data_directory": os.path.join(self.root, "data"),
                  "maillog_file": self.maillog_path, "smtp_connection_cache_on_demand": "no"}
        params.update({k: v.replace("@ROOT@", self.root) for k, v in main_cf.items()})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("")
        self.proc: subprocess.Popen | None = None
        # started as root, the filter runs as $mail_owner: its quarantine too
        qdir = os.path.join(self.root, "quarantine")
        os.makedirs(qdir, mode=0o700)
        if os.geteuid() == 0:
            from postier.config import load_config
            pw = pwd.getpwnam(load_config(self.etc).get("mail_owner"))
            os.chown(qdir, pw.pw_uid, pw.pw_gid)

    def start(self, timeout: float = 30) -> FilterProcess:
        argv = [sys.executable, "-m", "postier.cli.main", "filter", "-c", self.etc,
                "--listen", f"127.0.0.1:{self.port}",
                "--reinject", f"127.0.0.1:{self.reinject_port}", "--spool", self.spool]
        if self.lmtp:
            argv.append("--lmtp")
        out = open(os.path.join(self.root, "filter.out"), "ab")
        self.proc = subprocess.Popen(argv, env=postier_env(), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, cwd=self.root)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postier filter exited ({self.proc.returncode}): "
                                   f"{self.output()}")
            if "filter listening on" in self.maillog():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("postier filter did not start: " + self.output())

    def output(self) -> str:
        try:
            with open(os.path.join(self.root, "filter.out"), errors="replace") as f:
                return f.read()[-3000:] + self.maillog()[-3000:]
        except OSError:
            return ""

    def maillog(self) -> str:
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- real Postfix

POSTFIX_FILTER_MASTER_CF = """\
# postier content filter tests: real Postfix -> postier filter -> Postfix; loopback only
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
showq     unix  n       -       n       -       -       showq
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
smtp-amavis unix -      -       n       -       2       {agent}
  -o {agent}_data_done_timeout=1200
  -o {agent}_send_xforward_command=yes
  -o disable_dns_lookups=yes
  -o max_use=20
127.0.0.1:{reinject} inet n - n - - smtpd
  -o content_filter=
  -o local_recipient_maps=
  -o relay_recipient_maps=
  -o smtpd_restriction_classes=
  -o smtpd_delay_reject=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=$reinject_data_restrictions
  -o smtpd_end_of_data_restrictions=
  -o mynetworks=127.0.0.0/8
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o smtpd_client_connection_count_limit=0
  -o smtpd_client_connection_rate_limit=0
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
"""


class PostfixWithFilter(PostfixInstance):
    """A private real Postfix whose content_filter is `postier filter`."""

    def __init__(self, filter_port: int, *, lmtp: bool = False, **kw):
        super().__init__(**kw)
        self.filter_port = filter_port
        self.reinject_port = free_port()
        self.lmtp = lmtp

    def write_config(self, overrides=(), tables=None) -> None:  # type: ignore[override]
        base = {"content_filter": f"smtp-amavis:[127.0.0.1]:{self.filter_port}",
                "reinject_data_restrictions": "check_client_access static:HOLD",
                "mynetworks": "127.0.0.0/8",
                "delay_warning_time": "0h", "smtp_dns_support_level": "disabled",
                "bounce_size_limit": "1000"}
        items = overrides.items() if isinstance(overrides, dict) else overrides
        base.update(dict(items))
        super().write_config(base, tables)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_FILTER_MASTER_CF.format(
                port=self.port, reinject=self.reinject_port,
                agent="lmtp" if self.lmtp else "smtp"))
        past = time.time() - 3600
        os.utime(os.path.join(self.etc, "master.cf"), (past, past))

    def queue_ids(self, queue: str) -> list[str]:
        out: list[str] = []
        for _dirpath, _dirs, files in os.walk(os.path.join(self.queue, queue)):
            out += files
        return sorted(out)

    def postcat(self, qid: str) -> str:
        p = subprocess.run(["postcat", "-c", self.etc, "-q", qid], capture_output=True)
        return p.stdout.decode("utf-8", "surrogateescape")


def postfix_available() -> bool:
    return postfix_instance.postfix_available()
