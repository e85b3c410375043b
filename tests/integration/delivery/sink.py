"""Run Postfix's smtp-sink(1) on 127.0.0.1 for client tests and benchmarks.

    with SmtpSink(["-f", "RCPT"]) as sink:     # extra smtp-sink options
        sink.port
        sink.counters()     # {"sess": 1, "quit": 1, "mesg": 2} (smtp-sink -c)
        sink.dumps()        # captured transactions (-d), oldest first

Started as `smtp-sink -c [-u nobody when root] [-d DIR/%H%M%S.] OPTIONS
127.0.0.1:PORT 256`, stopped by PID (tools/peer_process.py).  Standard
library only.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "tools"))
from peer_process import free_port, stop_process  # noqa: E402

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def sink_available() -> bool:
    return os.access(SMTP_SINK, os.X_OK)


class SmtpSink:
    def __init__(self, options: list[str] | None = None, *, dump: bool = True):
        self.options = list(options or [])
        self.dump = dump
        self.dir = tempfile.mkdtemp(prefix="postier_sink.")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._out = b""
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        argv = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        if self.dump:
            argv += ["-d", os.path.join(self.dir, "%H%M%S.")]
        argv += self.options + [f"127.0.0.1:{self.port}", "256"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError("smtp-sink did not start")
        # the probe connection above is one session; wait until it is counted
        while time.time() < deadline and self._raw()["sess"] < 1:
            time.sleep(0.01)

    def _read(self, proc: subprocess.Popen) -> None:
        # the process is passed in: stop() may clear self.proc while this reads
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                return
            self._out += chunk

    def _raw(self) -> dict[str, int]:
        found = re.findall(rb"sess=(\d+) quit=(\d+) mesg=(\d+)", self._out)
        if not found:
            return {"sess": 0, "quit": 0, "mesg": 0}
        sess, quit_, mesg = (int(x) for x in found[-1])
        return {"sess": sess, "quit": quit_, "mesg": mesg}

    def counters(self) -> dict[str, int]:
        """smtp-sink -c counters, minus the start-up probe session."""
        c = self._raw()
        c["sess"] = max(0, c["sess"] - 1)
        return c

    def wait_counter(self, name: str, value: int, timeout: float = 5) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.counters()[name] >= value:
                return True
            time.sleep(0.01)
        return False

    def dumps(self) -> list[bytes]:
        names = sorted(os.listdir(self.dir), key=lambda n: os.stat(os.path.join(self.dir, n)).st_mtime_ns)
        out = []
        for n in names:
            with open(os.path.join(self.dir, n), "rb") as f:
                out.append(f.read())
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, 5)
        self.proc = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
