"""A private, throw-away real Postfix instance on loopback, for recorders and tests.

    from postfix_instance import PostfixInstance, postfix_available

    with PostfixInstance() as pf:                  # temp root, free port
        pf.write_config({"smtpd_recipient_restrictions":
                         "check_recipient_access hash:@TABLES@/rcpt, reject"},
                        tables={"rcpt": ("hash", "bad@example.test REJECT no\\n")})
        pf.start()
        replies = pf.session(["HELO client.test", "MAIL FROM:<a@b.test>",
                              "RCPT TO:<bad@example.test>"],
                             xclient={"ADDR": "192.0.2.1", "NAME": "[UNAVAILABLE]"})
        rcpt = replies[-2]                     # replies[-1] is QUIT's 221
        rcpt.code, rcpt.text                   # 554, "5.7.1 <bad@example.test>: ..."

What it runs: `/usr/lib/postfix/sbin/master -c ROOT/etc -s` as a foreground
child of this process, with its own config_directory, queue_directory,
data_directory and a `maillog_file` written by the `postlog` service.  The
SMTP server listens on 127.0.0.1:PORT only.  master.cf has no qmgr, no pickup
and no delivery agents, and every transport is `discard:`, so nothing can
leave the machine (accepted mail stays in ROOT/queue/incoming).  The approach
is that of the compat harness (shared compat/pfdiff/oracle.py); this is the
project's own copy so that the project's tools and tests do not depend on
anything outside the checkout.

Lifecycle: `write_config()` (main.cf = HARNESS_MAIN_CF + BASE_MAIN_CF +
overrides, replaced in place so Postfix never warns about duplicates; tables
written under ROOT/tables and compiled with the real `postmap` when indexed),
`start()` (waits until a probe session has been logged), `stop()` (SIGTERM to
our master by PID, then SIGKILL by PID to any descendant we saw that is still
alive: the master calls setsid(), so process groups cannot be used),
`restart()`, `cleanup()` (also removes the temp root unless keep=True).

`session()` runs one SMTP dialog, optionally after an XCLIENT command
(`smtpd_authorized_xclient_hosts = 127.0.0.0/8`), and returns every reply.
Use XCLIENT NAME together with ADDR (ADDR alone keeps the old name), and
`IPV6:` addresses need `inet_protocols = all` (the default here).

Gotchas (Postfix 3.7): `maillog_file` must lie under `maillog_file_prefixes`
or `postfix check` dies silently; master(8) takes ~1.8 s to start when
main.cf is less than a few seconds old, so config files are back-dated; without qmgr, cleanup sleeps
`in_flow_delay` before every queue file unless it is 0; with the default
`smtpd_delay_reject = yes` all client/helo/sender checks run at RCPT time
with the XCLIENT values.

Only the Python standard library is used.  Needs root (master(8) and the
queue tree are owned by root/postfix).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

#: Table types compiled with `postmap TYPE:FILE` before use.
INDEXED_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm")

#: Where the harness keeps its files; "@ROOT@" is the instance root.
HARNESS_MAIN_CF: list[tuple[str, str]] = [
    ("queue_directory", "@ROOT@/queue"),
    ("data_directory", "@ROOT@/data"),
    ("maillog_file", "@ROOT@/maillog"),
    ("maillog_file_prefixes", "@ROOT@"),
    ("inet_interfaces", "127.0.0.1"),
    ("inet_protocols", "all"),
    ("max_idle", "10s"),
    ("in_flow_delay", "0"),
]

#: Semantic base shared with the compat fixtures.
BASE_MAIN_CF: list[tuple[str, str]] = [
    ("compatibility_level", "3.6"),
    ("myhostname", "mx.example.test"),
    ("mydomain", "example.test"),
    ("myorigin", "$mydomain"),
    ("mydestination", "$myhostname, localhost.$mydomain, localhost, $mydomain"),
    ("mynetworks", "127.0.0.0/8"),
    ("relay_domains", ""),
    ("smtpd_banner", "$myhostname ESMTP"),
    ("smtpd_authorized_xclient_hosts", "127.0.0.0/8"),
    ("local_recipient_maps", ""),
    ("alias_maps", ""),
    ("alias_database", ""),
    ("biff", "no"),
    ("default_transport", "discard:no-delivery"),
    ("relay_transport", "discard:no-delivery"),
    ("local_transport", "discard:no-delivery"),
    ("virtual_transport", "discard:no-delivery"),
    ("smtputf8_enable", "no"),
    ("smtpd_client_connection_count_limit", "0"),
    ("smtpd_client_connection_rate_limit", "0"),
    ("anvil_rate_time_unit", "60s"),
    ("smtpd_error_sleep_time", "0"),
    ("smtpd_soft_error_limit", "1000"),
    ("smtpd_hard_error_limit", "1000"),
    ("smtpd_junk_command_limit", "1000"),
]

MASTER_CF = """\
# postier test instance: no qmgr, no delivery agents, loopback only.
127.0.0.1:{port} inet n - n - - smtpd{smtpd_args}
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_available() -> bool:
    """True when the real Postfix programs needed here are installed and we
    are root (master(8) must be able to switch to the mail_owner)."""
    if not (shutil.which("postmap") and shutil.which("postconf") and shutil.which("postfix")):
        return False
    try:
        return os.geteuid() == 0 and os.path.exists(os.path.join(daemon_directory(), "master"))
    except (OSError, subprocess.SubprocessError):
        return False


def daemon_directory() -> str:
    out = subprocess.run([POSTCONF, "-dh", "daemon_directory"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def mail_version() -> str:
    out = subprocess.run([POSTCONF, "-dh", "mail_version"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def free_port() -> int:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def build_table(ttype: str, text: str, path: str, *, fold: bool = True) -> tuple[int, str]:
    """Write table source to `path`, compile it when `ttype` is indexed.

    The source is back-dated by an hour (texthash re-reads files younger
    than ~2 s).  Returns (postmap exit code, stderr); (0, "") for text types.
    """
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.chmod(path, 0o644)
    past = time.time() - 3600
    os.utime(path, (past, past))
    if ttype not in INDEXED_TYPES:
        return 0, ""
    argv = [POSTMAP] + ([] if fold else ["-f"]) + [f"{ttype}:{path}"]
    p = subprocess.run(argv, capture_output=True, text=True)
    for suffix in (".db", ".lmdb", ".cdb"):
        if os.path.exists(path + suffix):
            os.chmod(path + suffix, 0o644)
    return p.returncode, p.stderr


def xtext(value: str) -> str:
    """RFC 3461 xtext, as XCLIENT attribute values require."""
    out = []
    for ch in value:
        o = ord(ch)
        out.append(f"+{o:02X}" if o < 33 or o > 126 or ch in "+=" else ch)
    return "".join(out)


def descendants(pid: int) -> list[int]:
    """Every PID below `pid` in the process tree (one /proc scan)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for child, par in parent.items():
            if par == p:
                out.append(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Reply:
    """One SMTP reply: code (None if the connection closed), the text lines
    without their `NNN-`/`NNN ` prefix joined by newlines, and the command."""

    cmd: str | None
    code: int | None
    text: str

    @property
    def last_line(self) -> str:
        return self.text.rsplit("\n", 1)[-1]


class SmtpClient:
    """Minimal line-oriented SMTP client."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def read_reply(self, cmd: str | None = None) -> Reply:
        lines: list[str] = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                if lines:
                    break
                return Reply(cmd, None, "(connection closed)")
            line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else None
        return Reply(cmd, code, "\n".join(x[4:] for x in lines))

    def send_line(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def command(self, line: str) -> Reply:
        self.send_line(line)
        return self.read_reply(line)

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


class PostfixInstance:
    """A private Postfix instance under `root` (a new temp dir by default).

    `smtpd_args`: extra master.cf arguments for the smtpd service, e.g.
    ["-o", "max_use=1"] so that every session gets a fresh smtpd process
    (one that has opened the tables as they are now).
    """

    def __init__(self, root: str | None = None, port: int | None = None, *,
                 keep: bool = False, smtpd_args: Sequence[str] = ()):
        self.owned_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="postier_pf.")
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.keep = keep
        self.smtpd_args = list(smtpd_args)
        self.master: subprocess.Popen | None = None
        self.seen_pids: set[int] = set()
        self.etc = os.path.join(self.root, "etc")
        self.tables = os.path.join(self.root, "tables")
        self.queue = os.path.join(self.root, "queue")
        self.data = os.path.join(self.root, "data")
        self.maillog = os.path.join(self.root, "maillog")
        self.daemon_dir = daemon_directory()
        for d in (self.etc, self.tables, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        shutil.chown(self.data, "postfix")
        self._checked = False

    # -- configuration ------------------------------------------------------

    def subst(self, value: str) -> str:
        return value.replace("@ROOT@", self.root).replace("@TABLES@", self.tables)

    def table_path(self, name: str) -> str:
        return os.path.join(self.tables, name)

    def write_table(self, name: str, ttype: str, text: str, *, fold: bool = True,
                    allow_warning: str | None = None) -> None:
        """(Re)write one table under @TABLES@; raises RuntimeError when
        postmap fails or warns (except warnings matching the regex
        `allow_warning`)."""
        rc, err = build_table(ttype, text, self.table_path(name), fold=fold)
        lines = [x for x in err.splitlines()
                 if not (allow_warning and re.search(allow_warning, x))]
        if rc or lines:
            raise RuntimeError(f"postmap {ttype}:{name} failed ({rc}): {err.strip()}")

    def write_config(self, overrides: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                     tables: Mapping[str, tuple[str, str]] | None = None) -> None:
        """Write main.cf and master.cf, and the tables {name: (type, text)}.

        `overrides` replace base entries in place (later wins); values may
        use @ROOT@ and @TABLES@.
        """
        params: dict[str, str] = dict(HARNESS_MAIN_CF + BASE_MAIN_CF)
        items = overrides.items() if isinstance(overrides, Mapping) else overrides
        for k, v in items:
            params[k] = v
        for name, (ttype, text) in (tables or {}).items():
            self.write_table(name, ttype, text)
        lines = ["# generated by tools/postfix_instance.py; do not edit"]
        lines += [f"{k} = {self.subst(v)}" for k, v in params.items()]
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        args = "".join(" " + a for a in self.smtpd_args)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port, smtpd_args=args))
        # Postfix waits until a configuration file is a few seconds old before
        # it trusts its content (~1.8 s per start otherwise): back-date both.
        past = time.time() - 3600
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.etc, name), (past, past))
        if not self._checked:
            # creates the queue directory tree with the right owners
            p = subprocess.run([POSTFIX, "-c", self.etc, "check"], capture_output=True,
                               text=True)
            if p.returncode:
                raise RuntimeError(f"postfix check failed: {p.stderr.strip()}")
            self._checked = True

    # -- process control ----------------------------------------------------

    def start(self, timeout: float = 15) -> None:
        """Start master(8) in the foreground and wait until smtpd answers
        and a probe session has been logged."""
        if self.master is not None:
            raise RuntimeError("already started")
        before = self.read_log().count("disconnect from")
        with open(os.path.join(self.root, "master.out"), "ab") as log:
            self.master = subprocess.Popen(
                [os.path.join(self.daemon_dir, "master"), "-c", self.etc, "-s"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.master.poll() is not None:
                rc = self.master.returncode
                self.master = None
                raise RuntimeError(f"master exited with {rc}; see {self.root}/master.out "
                                   f"and {self.maillog}")
            try:
                c = SmtpClient("127.0.0.1", self.port, timeout=5)
            except OSError:
                time.sleep(0.05)
                continue
            try:
                c.read_reply()
                c.command("QUIT")
            finally:
                c.close()
            if not self.wait_log("disconnect from", 10, count=before + 1):
                raise RuntimeError("no log from the probe session; see " + self.maillog)
            return
        raise RuntimeError("master did not start listening")

    def remember_children(self) -> None:
        if self.master is not None:
            self.seen_pids.update(descendants(self.master.pid))

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM our master by PID (it passes it on to its children), wait,
        then SIGKILL by PID every descendant we saw that is still alive."""
        if self.master is None:
            return
        self.remember_children()
        pid = self.master.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.master.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.master.wait()
        deadline = time.time() + 5
        for kid in sorted(self.seen_pids):
            while _alive(kid) and time.time() < deadline:
                time.sleep(0.05)
            if _alive(kid):
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.seen_pids.clear()
        self.master = None

    def restart(self, overrides: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                tables: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.stop()
        self.write_config(overrides, tables)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.owned_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostfixInstance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- logging ------------------------------------------------------------

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.maillog)
        except OSError:
            return 0

    def read_log(self, start: int = 0) -> str:
        try:
            with open(self.maillog, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "surrogateescape")
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float, *, start: int = 0, count: int = 1) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.read_log(start).count(needle) >= count:
                return True
            time.sleep(0.02)
        return False

    # -- SMTP ---------------------------------------------------------------

    def session(self, commands: Sequence[str], *, xclient: Mapping[str, str] | None = None,
                quit: bool = True, timeout: float = 30) -> list[Reply]:
        """One SMTP session: banner, optional XCLIENT (attribute -> value,
        values are xtext-encoded here), then `commands`; stops early when
        the server closes the connection.  Returns every reply, banner
        first (the 220 reply to XCLIENT replaces the banner)."""
        self.remember_children()
        c = SmtpClient("127.0.0.1", self.port, timeout=timeout)
        try:
            replies = [c.read_reply()]
            if xclient:
                attrs = " ".join(f"{k.upper()}={xtext(v)}" for k, v in xclient.items())
                r = c.command("XCLIENT " + attrs)
                replies.append(r)
                if r.code != 220:
                    return replies
            for cmd in list(commands) + (["QUIT"] if quit else []):
                r = c.command(cmd)
                replies.append(r)
                if r.code in (None, 221, 421):
                    break
            return replies
        finally:
            c.close()
            self.remember_children()
