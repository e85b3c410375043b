"""Start a private Dovecot LMTP server for tests (Debian dovecot-core + dovecot-lmtpd).

    from dovecot_lmtp import DovecotLmtp, dovecot_available

    with DovecotLmtp(users=["alice", "bob"]) as dv:     # or users=None: every user exists
        dv.port            # LMTP on 127.0.0.1:dv.port
        dv.socket          # LMTP on the unix socket dv.socket
        dv.maildir("alice")                 # .../mail/alice/Maildir
        dv.messages("alice")                # contents of Maildir/new/*, oldest first

    python3 tools/dovecot_lmtp.py [--users alice,bob]   # run in the foreground, print the ports

What it runs: `dovecot -F -c CONF` as a child of this process, with its own
base_dir, state_dir and log files under a temp directory (nothing from
/etc/dovecot is read), protocols = lmtp only, an inet listener on
127.0.0.1:PORT and a unix listener, mail_location = maildir under the temp
directory.  Users: `users=None` gives a static userdb that accepts every
recipient; a list gives a passwd-file userdb, so that Dovecot answers
`550 5.1.1 <x@y> User doesn't exist: x@y` for anyone else.  Mail is stored
as a fixed unprivileged user (`nobody`/`nogroup` when run as root, else the
current user).  The usernames are the lower-cased local parts
(auth_username_format = %Ln).

Lifecycle: `start()` waits until the LMTP port answers; `stop()` sends
SIGTERM to the dovecot master by PID (it stops its own children) and
waits, then SIGKILL by PID if needed; `cleanup()` also removes the temp
directory (unless keep=True).  Each instance gets a fresh mailbox tree:
Dovecot's Maildir save rate drops as new/ fills up.

Loopback only.  Only the Python standard library (and tools/peer_process.py) is used.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from peer_process import free_port, stop_process

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
LMTP_BINARY = "/usr/lib/dovecot/lmtp"


def dovecot_available() -> bool:
    """True when the dovecot master and its lmtp service are installed."""
    return os.access(DOVECOT, os.X_OK) and os.path.exists(LMTP_BINARY)


def _mail_owner() -> tuple[str, int, int]:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        try:
            gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            gid = pw.pw_gid
        return pw.pw_name, pw.pw_uid, gid
    pw = pwd.getpwuid(os.geteuid())
    return pw.pw_name, pw.pw_uid, os.getegid()


class DovecotLmtp:
    """A private Dovecot with an LMTP service (see the module docstring)."""

    def __init__(self, users: Sequence[str] | None = None, *, port: int | None = None,
                 root: str | None = None, keep: bool = False):
        self.owned_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="postier_dovecot.")
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.users = [u.lower() for u in users] if users is not None else None
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self.run_dir = os.path.join(self.root, "run")
        self.state_dir = os.path.join(self.root, "state")
        self.mail_dir = os.path.join(self.root, "mail")
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.log = os.path.join(self.root, "dovecot.log")
        self.socket = os.path.join(self.run_dir, "lmtp")
        self.owner, self.uid, self.gid = _mail_owner()

    # -- configuration -------------------------------------------------------
    def write_config(self) -> None:
        for d in (self.run_dir, self.state_dir, self.mail_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.chown(self.mail_dir, self.uid, self.gid)
        if self.users is None:
            userdb = (f"userdb {{\n  driver = static\n"
                      f"  args = uid={self.uid} gid={self.gid} home={self.mail_dir}/%n "
                      f"allow_all_users=yes\n}}\n")
        else:
            path = os.path.join(self.root, "users")
            with open(path, "w") as f:
                for u in self.users:
                    f.write(f"{u}::{self.uid}:{self.gid}::{self.mail_dir}/{u}::\n")
            os.chmod(path, 0o644)
            userdb = f"userdb {{\n  driver = passwd-file\n  args = {path}\n}}\n"
        text = f"""# private test instance written by tools/dovecot_lmtp.py; nothing from /etc/dovecot
instance_name = postier-test-{os.path.basename(self.root)}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = {self.log}
info_log_path = {self.log}
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:{self.mail_dir}/%n/Maildir
mail_fsync = optimized
postmaster_address = postmaster@lab.test
auth_username_format = %Ln
passdb {{
  driver = static
  args = nopassword=y
}}
{userdb}service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
protocol lmtp {{
  lmtp_save_to_detail_mailbox = no
}}
"""
        with open(self.conf, "w") as f:
            f.write(text)

    # -- process control -------------------------------------------------------
    def start(self, timeout: float = 15) -> None:
        if self.proc is not None:
            raise RuntimeError("already started")
        self.write_config()
        out = open(os.path.join(self.root, "dovecot.out"), "ab")
        try:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, cwd=self.root)
        finally:
            out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"dovecot exited with {rc}: {self._tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220") and os.path.exists(self.socket):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot LMTP did not start listening: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for name in ("dovecot.out", "dovecot.log"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    text += f.read()[-1500:]
            except OSError:
                pass
        return text.strip()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the dovecot master by PID (it stops its children), then SIGKILL."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.owned_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotLmtp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- mailboxes ---------------------------------------------------------------
    def maildir(self, user: str) -> str:
        return os.path.join(self.mail_dir, user.lower(), "Maildir")

    def messages(self, user: str) -> list[bytes]:
        """The messages in the user's Maildir/new, oldest first."""
        new = os.path.join(self.maildir(user), "new")
        try:
            names = sorted(os.listdir(new), key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out


def main(argv: list[str]) -> int:
    users = None
    if argv[:1] == ["--users"] and len(argv) > 1:
        users = [u for u in argv[1].split(",") if u]
    elif argv:
        sys.stderr.write("usage: dovecot_lmtp.py [--users a,b]\n")
        return 2
    if not dovecot_available():
        sys.stderr.write("dovecot_lmtp: dovecot-core/dovecot-lmtpd not installed "
                         "(tools/setup.sh --test)\n")
        return 1
    dv = DovecotLmtp(users)
    try:
        dv.start()
        print(f"lmtp inet:127.0.0.1:{dv.port} unix:{dv.socket} maildirs under {dv.mail_dir}",
              flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except RuntimeError as e:
        sys.stderr.write(f"dovecot_lmtp: {e}\n")
        return 1
    finally:
        dv.cleanup()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main(sys.argv[1:]))
