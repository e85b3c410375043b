"""A private authoritative DNS server (Debian nsd) on 127.0.0.1:PORT for MX tests.

    with NsdServer({"example.test": ZONE_TEXT}) as dns:
        cfg = f"dns_nameservers = 127.0.0.1:{dns.port}"

Runs `nsd -d -c CONF` in the foreground (child of this process) with no
chroot, no privilege drop, no database file, remote control off and
response-rate-limiting off, listening on 127.0.0.1 only; zone files are the
given texts (`$ORIGIN` added).  Stopped by PID.  Standard library only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping

NSD = shutil.which("nsd") or "/usr/sbin/nsd"


def nsd_available() -> bool:
    return os.access(NSD, os.X_OK)


def _free_port() -> int:
    # a port free for both UDP and TCP
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def _probe(port: int, name: str) -> bool:
    qid = 0x1234
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", 6, 1)  # SOA
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(512)
        return r[:2] == q[:2]
    except OSError:
        return False
    finally:
        s.close()


class NsdServer:
    def __init__(self, zones: Mapping[str, str]):
        self.zones = dict(zones)
        self.root = tempfile.mkdtemp(prefix="postier_nsd.")
        os.chmod(self.root, 0o755)
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        conf = [
            "server:",
            f"    ip-address: 127.0.0.1@{self.port}",
            "    do-ip6: no",
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{self.root}"',
            '    database: ""',
            f'    zonelistfile: "{self.root}/zone.list"',
            f'    xfrdfile: "{self.root}/xfrd.state"',
            f'    xfrdir: "{self.root}/xfr"',
            f'    pidfile: "{self.root}/nsd.pid"',
            f'    logfile: "{self.root}/nsd.log"',
            "    server-count: 1",
            "    verbosity: 1",
            "    rrl-ratelimit: 0",
            "    rrl-whitelist-ratelimit: 0",
            "remote-control:",
            "    control-enable: no",
        ]
        os.makedirs(os.path.join(self.root, "xfr"), exist_ok=True)
        for name, text in self.zones.items():
            with open(os.path.join(self.root, f"{name}.zone"), "w") as f:
                f.write(f"$ORIGIN {name}.\n$TTL 60\n{text}\n")
            conf += ["zone:", f"    name: {name}", f"    zonefile: {name}.zone"]
        path = os.path.join(self.root, "nsd.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        out = open(os.path.join(self.root, "nsd.out"), "ab")
        try:
            self.proc = subprocess.Popen([NSD, "-d", "-c", path], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)
        finally:
            out.close()
        first = next(iter(self.zones))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited: {self._tail()}")
            if _probe(self.port, first):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nsd did not answer: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for n in ("nsd.out", "nsd.log"):
            try:
                text += open(os.path.join(self.root, n), errors="replace").read()[-1000:]
            except OSError:
                pass
        return text

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> NsdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
