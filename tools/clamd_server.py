"""A private, throw-away real clamd for tests and benchmarks.

    from clamd_server import ClamdServer, clamd_available, EICAR

    with ClamdServer() as clamd:                 # temp root, free TCP port
        clamd.unix_spec     # "clamd:unix:/tmp/postier_clamd.XXXX/run/clamd.ctl"
        clamd.inet_spec     # "clamd:inet:127.0.0.1:PORT"
        clamd.stop(); clamd.start()              # e.g. "clamd stopped -> defer" tests

What it runs: Debian's `/usr/sbin/clamd --config-file=ROOT/clamd.conf` in
the foreground (`Foreground yes`) as a child of this process, as root
dropping to `User clamav` (when run as root and the user exists).  The
signature database is made here, never downloaded (no freshclam): EICAR as an
`.ndb` hex body signature (`Postier.Test.EICAR`, matches anywhere in any
file, so also inside mails and archives that clamd unpacks) and as an `.hdb`
MD5:size:name whole-file signature (`Postier.Test.EICAR.MD5`).  clamd
listens on `LocalSocket ROOT/run/clamd.ctl` (mode 666) and on
`TCPSocket PORT` / `TCPAddr 127.0.0.1` -- loopback only.
`stream_max_length` sets `StreamMaxLength` (INSTREAM size limit; clamd answers
`INSTREAM size limit exceeded. ERROR` past it).

`start()` waits until clamd answers `zPING` with `PONG` on both sockets
(about 0.2 s with this database).  `stop()` sends SIGTERM to our clamd by
PID, then SIGKILL by PID if it does not exit.  `cleanup()` also removes the
temp root (unless keep=True).

EICAR: the 68-byte antivirus test string, assembled from two halves so that
this file itself is not "infected".

Command line (manual use): `python tools/clamd_server.py [--port N]
[--stream-max-length 25M]` runs clamd until Ctrl-C and prints its sockets.

Only the Python standard library is used.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD"
         + b"-ANTIVIRUS-TEST-FILE!$H+H*")
NDB_NAME = "Postier.Test.EICAR"
HDB_NAME = "Postier.Test.EICAR.MD5"


def clamd_available() -> bool:
    """True when a clamd binary is installed (Debian clamav-daemon)."""
    return os.path.exists(CLAMD) and os.access(CLAMD, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signature_files(directory: str, ndb: bool = True, hdb: bool = True) -> list[str]:
    """Write the EICAR signatures into `directory`; return the paths."""
    out = []
    if ndb:
        path = os.path.join(directory, "postier-test.ndb")
        # name:target:offset:hexsig -- target 0 (any file), offset * (anywhere)
        hexsig = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE".hex()
        with open(path, "w") as f:
            f.write(f"{NDB_NAME}:0:*:{hexsig}\n")
        out.append(path)
    if hdb:
        path = os.path.join(directory, "postier-test.hdb")
        with open(path, "w") as f:
            f.write(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{HDB_NAME}\n")
        out.append(path)
    for p in out:
        os.chmod(p, 0o644)
    return out


def command(address: str | tuple[str, int], cmd: bytes, timeout: float = 5.0) -> bytes:
    """Send one z-command (`PING`, `VERSION`, ...) and return the reply
    without its NUL terminator.  `address`: a unix socket path or (host, port)."""
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
        s.sendall(b"z" + cmd + b"\0")
        data = b""
        while not data.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data.rstrip(b"\0")


class ClamdServer:
    """One private clamd (see the module docstring)."""

    def __init__(self, *, root: str | None = None, port: int | None = None,
                 stream_max_length: str = "25M", max_threads: int = 4,
                 ndb: bool = True, hdb: bool = True, keep: bool = False,
                 extra_conf: dict[str, str] | None = None):
        if not clamd_available():
            raise RuntimeError(f"clamd not found ({CLAMD}); apt-get install clamav-daemon")
        self.root = root or tempfile.mkdtemp(prefix="postier_clamd.")
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.stream_max_length = stream_max_length
        self.max_threads = max_threads
        self.keep = keep
        self.extra_conf = dict(extra_conf or {})
        self.proc: subprocess.Popen | None = None
        for sub in ("db", "run", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            os.chmod(os.path.join(self.root, sub), 0o755)
        self.db_dir = os.path.join(self.root, "db")
        signature_files(self.db_dir, ndb=ndb, hdb=hdb)
        self.socket_path = os.path.join(self.root, "run", "clamd.ctl")
        self.log_path = os.path.join(self.root, "clamd.log")
        self.conf_path = os.path.join(self.root, "clamd.conf")
        self.user = self._run_user()
        self._write_conf()

    # ------------------------------------------------------------ addresses
    @property
    def unix_spec(self) -> str:
        return f"clamd:unix:{self.socket_path}"

    @property
    def inet_spec(self) -> str:
        return f"clamd:inet:127.0.0.1:{self.port}"

    @staticmethod
    def _run_user() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("clamav")
            return "clamav"
        except KeyError:
            return None

    def _write_conf(self) -> None:
        conf = {
            "Foreground": "yes",
            "DatabaseDirectory": self.db_dir,
            "LocalSocket": self.socket_path,
            "LocalSocketMode": "666",
            "FixStaleSocket": "yes",
            "TCPSocket": str(self.port),
            "TCPAddr": "127.0.0.1",
            "PidFile": os.path.join(self.root, "run", "clamd.pid"),
            "TemporaryDirectory": os.path.join(self.root, "tmp"),
            "LogFile": self.log_path,
            "LogTime": "yes",
            "MaxThreads": str(self.max_threads),
            "MaxConnectionQueueLength": "30",
            "StreamMaxLength": self.stream_max_length,
            "ScanMail": "yes",
            "ScanArchive": "yes",
            "Bytecode": "no",
            "SelfCheck": "0",
        }
        if self.user:
            conf["User"] = self.user
        conf.update(self.extra_conf)
        with open(self.conf_path, "w") as f:
            for k, v in conf.items():
                f.write(f"{k} {v}\n")
        open(self.log_path, "a").close()
        if self.user:
            pw = pwd.getpwnam(self.user)
            for p in (os.path.join(self.root, "run"), os.path.join(self.root, "tmp"),
                      self.log_path):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        out = open(os.path.join(self.root, "clamd.out"), "ab")
        self.proc = subprocess.Popen([CLAMD, f"--config-file={self.conf_path}"],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamd exited with {self.proc.returncode}: {self._tail()}")
            try:
                if (command(self.socket_path, b"PING", 1.0) == b"PONG"
                        and command(("127.0.0.1", self.port), b"PING", 1.0) == b"PONG"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"clamd did not answer PING within {timeout}s: {self._tail()}")
            time.sleep(0.02)

    def _tail(self) -> str:
        text = ""
        for name in ("clamd.out", "clamd.log"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    text += f.read()[-2000:]
            except OSError:
                pass
        return text.strip()

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def rss_kb(self) -> int:
        """clamd's resident set size in kB (0 when it is not running)."""
        pid = self.pid
        if pid is None:
            return 0
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def version(self) -> str:
        return command(self.socket_path, b"VERSION").decode("utf-8", "replace")

    def cleanup(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ClamdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(description="run a private clamd with a self-made EICAR "
                                            "signature database until Ctrl-C")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stream-max-length", default="25M")
    args = p.parse_args(argv)
    srv = ClamdServer(port=args.port or None, stream_max_length=args.stream_max_length)
    try:
        srv.start()
        print(f"clamd pid {srv.pid}: {srv.unix_spec}, {srv.inet_spec} ({srv.version()})",
              flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        srv.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
