"""Process handling shared by the private peer servers of tools/
(postgrey_server.py, redis_server.py): a free loopback port, starting a
child and waiting until it is ready, stopping exactly that child.

    class FooServer(PeerServer):
        prefix = "postier_foo."                  # the temp directory's name
        def start(self, timeout=15):
            self.spawn(argv, stdout=..., stderr=...)
            return self.wait_ready(lambda: accepts(self.port), timeout, "foo")

`stop()` sends SIGTERM to the child's PID, then SIGKILL to the same PID
(never a process found by name); `cleanup()` also removes the temp
directory unless `keep`.  `serve_foreground(server, banner)` is the
`python3 tools/NAME_server.py` loop (Ctrl-C stops it).

Loopback only.  Only the Python standard library is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def accepts(port: int, timeout: float = 0.5) -> bool:
    """True when 127.0.0.1:port accepts a TCP connection."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM to proc's PID, then SIGKILL to the same PID; reaps it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class PeerServer:
    """A throw-away server child on 127.0.0.1 with its own temp directory.
    Subclasses set `prefix` and `logfile`, and define start()."""

    prefix = "postier_peer."
    name = "server"

    def __init__(self, port: int | None = None, *, keep: bool = False):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix=self.prefix)
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self.logfile = os.path.join(self.dir, f"{self.name}.log")

    def spawn(self, argv: Sequence[str], **kw: object) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        self.proc = subprocess.Popen(list(argv), **kw)   # type: ignore[call-overload]
        return self.proc

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str):
        """Poll ready() until it is true; RuntimeError (with the log's end)
        when the child exits or the timeout passes (the child is stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): "
                                   f"{self.log()[-2000:]}")
            if ready():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not {what}:\n{self.log()[-2000:]}")

    def log(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()     # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def serve_foreground(server: PeerServer, banner: str) -> int:
    """Start server, print banner, wait for Ctrl-C (or the child's exit), clean up."""
    server.start()      # type: ignore[attr-defined]
    print(banner, flush=True)
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
    return 0
