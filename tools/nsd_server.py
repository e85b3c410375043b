"""Private DNS for tests and benchmarks: a real authoritative nsd on loopback,
a "blackhole" nameserver that never answers, and a splitting UDP proxy.

    from nsd_server import NsdServer, nsd_available

    with NsdServer({"example.test": ZONE_TEXT}) as dns:     # 127.0.0.1:<free port>
        cfg = f"dns_nameservers = 127.0.0.1:{dns.port}"
        dns.query("example.test", "MX")                     # -> (rcode, [answers])
        dns.set_zone("example.test", NEW_TEXT)              # rewrite, SIGHUP, wait

    with NsdServer(ZONES) as dns, SplitProxy(dns.port, drop=["timeout.test"]) as px:
        cfg = f"dns_nameservers = 127.0.0.1:{px.port}"      # timeout.test never answers

* `NsdServer(zones, port=None, address="127.0.0.1", ttl=60)` runs `nsd -d -c
  CONF` in the foreground (a child of this process) with no chroot, no
  privilege drop, no database file, remote control off and response-rate
  limiting off (`rrl-ratelimit: 0`: nsd's default of 200 answers per second
  per /24 drops DNSBL lookups from 127.0.0.1), listening on `address` only.
  Zone files are the given texts with `$ORIGIN` and `$TTL` added.  `port=53`
  works inside a private network namespace (see tests/integration/dns/
  record_postfix_dns.py).  `set_zone()` rewrites one zone file and reloads
  nsd with SIGHUP (nsd re-reads zone files whose mtime changed), then waits
  until the new SOA serial is served.  Stopped by PID.
* `Blackhole(port=None)`: a UDP socket (and a TCP listener that never
  accepts) on 127.0.0.1 that is never read: a nameserver that times out.
* `SplitProxy(upstream_port, drop=(...), port=None)`: a UDP forwarder on
  127.0.0.1 (a thread) that relays queries to the nsd at upstream_port,
  except queries for a name equal to or below one of `drop`, which it
  sends to its own `Blackhole` (so they are never answered).  One resolver
  address thus serves normal zones and "a zone whose server never answers"
  at the same time.  UDP only (the test zones need no TCP fallback).
* `query(port, name, qtype)`: a minimal stub query over UDP, for probes and
  test assertions: (rcode, [answer strings]).

Standard library only (and tools/peer_process.py); loopback only;
processes are ended by PID.
"""

from __future__ import annotations

import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping

from peer_process import stop_process

NSD = shutil.which("nsd") or "/usr/sbin/nsd"

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def nsd_available() -> bool:
    return os.access(NSD, os.X_OK)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on `host`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        t = socket.socket(family, socket.SOCK_STREAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u = socket.socket(family, socket.SOCK_DGRAM)
            try:
                u.bind((host, port))
                return port
            except OSError:
                continue
            finally:
                u.close()
        finally:
            t.close()
    raise RuntimeError("no free port")


# --------------------------------------------------------------------------- wire format

def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _decode_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = -1
    for _ in range(128):
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end < 0:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n == 0:
            pos += 1
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    return ".".join(labels), (end if end >= 0 else pos)


def make_query(name: str, qtype: str | int, qid: int | None = None) -> bytes:
    code = QTYPES[qtype.upper()] if isinstance(qtype, str) else qtype
    qid = random.randrange(65536) if qid is None else qid
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + \
        struct.pack(">HH", code, 1)


def question_name(packet: bytes) -> str | None:
    """The QNAME of a query packet (lower case), or None when unparsable."""
    try:
        return _decode_name(packet, 12)[0].lower()
    except (IndexError, UnicodeError):
        return None


def parse_answers(msg: bytes) -> tuple[str, list[str]]:
    """(rcode name, answer strings) of a reply: A/AAAA addresses, `pref host`
    for MX, the text for TXT, the target name for PTR/NS/CNAME."""
    flags, qd, an = struct.unpack(">HHH", msg[2:8])
    pos = 12
    for _ in range(qd):
        _, pos = _decode_name(msg, pos)
        pos += 4
    out: list[str] = []
    for _ in range(an):
        _, pos = _decode_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == 1:
            out.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            out.append(socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype == 15:
            out.append(f"{struct.unpack('>H', rdata[:2])[0]} {_decode_name(msg, pos + 2)[0]}")
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rdata):
                parts.append(rdata[i + 1:i + 1 + rdata[i]].decode("utf-8", "replace"))
                i += 1 + rdata[i]
            out.append("".join(parts))
        elif rtype in (2, 5, 12):
            out.append(_decode_name(msg, pos)[0])
        elif rtype == 6:
            mname, p = _decode_name(msg, pos)
            _rname, p = _decode_name(msg, p)
            out.append(f"{mname} serial={struct.unpack('>I', msg[p:p + 4])[0]}")
        pos += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), out


def query(port: int, name: str, qtype: str = "A", *, host: str = "127.0.0.1",
          timeout: float = 1.0) -> tuple[str, list[str]] | None:
    """One UDP query to host:port; None on timeout."""
    q = make_query(name, qtype)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (host, port))
        deadline = time.monotonic() + timeout
        while True:
            r = s.recv(65535)
            if r[:2] == q[:2]:
                return parse_answers(r)
            if time.monotonic() > deadline:
                return None
    except OSError:
        return None
    finally:
        s.close()


def _probe(port: int, name: str, host: str = "127.0.0.1") -> bool:
    return query(port, name, "SOA", host=host, timeout=0.3) is not None


# --------------------------------------------------------------------------- nsd

_SOA_RX = re.compile(r"\bSOA\b[^(]*\(\s*(\d+)", re.IGNORECASE)


class NsdServer:
    """A private nsd serving `zones` ({zone name: zone file text})."""

    def __init__(self, zones: Mapping[str, str], *, port: int | None = None,
                 address: str = "127.0.0.1", ttl: int = 60, root: str | None = None):
        self.zones = dict(zones)
        self.owned_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="postier_nsd.")
        os.chmod(self.root, 0o755)
        self.address = address
        self.port = port or free_port(address)
        self.ttl = ttl
        self.proc: subprocess.Popen | None = None

    # -- files ------------------------------------------------------------

    def zone_path(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.zone")

    def _write_zone(self, name: str, text: str) -> None:
        path = self.zone_path(name)
        with open(path, "w") as f:
            f.write(f"$ORIGIN {name}.\n$TTL {self.ttl}\n{text}\n")
        # nsd reloads a zone only when its mtime changed: make sure it did
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns, time.time_ns()) + 1_000_000_000))

    def _conf(self) -> str:
        conf = [
            "server:",
            f"    ip-address: {self.address}@{self.port}",
            f"    do-ip4: {'no' if ':' in self.address else 'yes'}",
            f"    do-ip6: {'yes' if ':' in self.address else 'no'}",
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
            "    hide-version: yes",
            "    rrl-ratelimit: 0",
            "    rrl-whitelist-ratelimit: 0",
            "remote-control:",
            "    control-enable: no",
        ]
        for name in self.zones:
            conf += ["zone:", f"    name: {name}", f"    zonefile: {name}.zone"]
        return "\n".join(conf) + "\n"

    # -- process ----------------------------------------------------------

    def start(self, timeout: float = 10) -> NsdServer:
        if not self.zones:
            raise ValueError("NsdServer needs at least one zone")
        os.makedirs(os.path.join(self.root, "xfr"), exist_ok=True)
        for name, text in self.zones.items():
            self._write_zone(name, text)
        path = os.path.join(self.root, "nsd.conf")
        with open(path, "w") as f:
            f.write(self._conf())
        with open(os.path.join(self.root, "nsd.out"), "ab") as out:
            self.proc = subprocess.Popen([NSD, "-d", "-c", path], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)
        first = next(iter(self.zones))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"nsd exited: {self._tail()}")
            if _probe(self.port, first, self.address):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nsd did not answer: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for n in ("nsd.out", "nsd.log"):
            try:
                with open(os.path.join(self.root, n), errors="replace") as f:
                    text += f.read()[-1000:]
            except OSError:
                pass
        return text

    def query(self, name: str, qtype: str = "A", timeout: float = 1.0
              ) -> tuple[str, list[str]] | None:
        return query(self.port, name, qtype, host=self.address, timeout=timeout)

    def set_zone(self, name: str, text: str, timeout: float = 10) -> None:
        """Replace zone `name` (already served) and wait until nsd serves
        the new SOA serial (the text must change the serial)."""
        if self.proc is None or name not in self.zones:
            raise ValueError(f"zone {name} is not being served")
        self.zones[name] = text
        m = _SOA_RX.search(text)
        self._write_zone(name, text)
        os.kill(self.proc.pid, signal.SIGHUP)
        if m is None:
            time.sleep(0.5)
            return
        want = f"serial={m.group(1)}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.query(name, "SOA", timeout=0.3)
            if r is not None and any(want in a for a in r[1]):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nsd did not reload zone {name}: {self._tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, 5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.owned_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NsdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- blackhole

class Blackhole:
    """A nameserver address that never answers (UDP socket never read, TCP
    listener never accepting)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(64)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- split proxy

class SplitProxy:
    """UDP forwarder on 127.0.0.1:port: queries under one of the `drop`
    names go to a Blackhole, all others to 127.0.0.1:upstream_port (nsd);
    answers are relayed back.  `drop` entries are names or suffixes
    ("timeout.test" matches timeout.test and x.timeout.test)."""

    def __init__(self, upstream_port: int, drop: Iterable[str] = (), *, port: int | None = None,
                 host: str = "127.0.0.1", upstream_host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.upstream = (upstream_host, upstream_port)
        self.drop = tuple(d.lower().rstrip(".") for d in drop)
        self.blackhole = Blackhole(host=host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, self.port))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.bind((host, 0))
        self.pending: dict[bytes, tuple[tuple[str, int], bytes]] = {}
        self.dropped: list[str] = []
        self.forwarded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-split-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _dropped(self, name: str | None) -> bool:
        return name is not None and any(name == d or name.endswith("." + d) for d in self.drop)

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "client")
        sel.register(self.up, selectors.EVENT_READ, "upstream")
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                try:
                    data, peer = key.fileobj.recvfrom(65535)
                except OSError:
                    continue
                if len(data) < 12:
                    continue
                if key.data == "client":
                    name = question_name(data)
                    if self._dropped(name):
                        # "served" by the blackhole: it never reads, never answers
                        self.dropped.append(name or "")
                        self.up.sendto(data, (self.blackhole.host, self.blackhole.port))
                        continue
                    # rewrite the ID so that clients with equal IDs do not collide
                    new_id = os.urandom(2)
                    while new_id in self.pending:
                        new_id = os.urandom(2)
                    self.pending[new_id] = (peer, data[:2])
                    if len(self.pending) > 4096:
                        self.pending.pop(next(iter(self.pending)))
                    self.forwarded += 1
                    self.up.sendto(new_id + data[2:], self.upstream)
                else:
                    hit = self.pending.pop(data[:2], None)
                    if hit is not None:
                        self.sock.sendto(hit[1] + data[2:], hit[0])
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.up.close()
        self.blackhole.close()

    def __enter__(self) -> SplitProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
