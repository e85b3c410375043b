"""Antivirus throughput: postier's clamd client vs a naive blocking client, real clamd.

A private clamd (tools/clamd_server.py: Debian's clamd, self-made EICAR
database, no freshclam) answers on a unix socket and on 127.0.0.1.  Each
measurement runs in a fresh Python process (so that its RSS is its own):

* postier: `postier.content.antivirus.Antivirus.scan()` on uvloop, one
  connection per scan (as in smtpd), sequentially (1 session) and 8 scans in
  flight (8 sessions ending DATA at the same time);
* postier full: `postier.content.scan.scan()` with av_scanners and the
  header_checks(5) banned-extension list (MIME parse + clamd), sequential;
* naive: a blocking socket client that sends the whole INSTREAM request in
  one write and reads the reply (the client of /work/shared/peers/clamd_lab.sh),
  sequential -- the protocol ceiling of one Python process;
* `clamdscan --stream` per message, when the clamdscan package is installed
  (it is not part of clamav-daemon; skipped otherwise).

Messages: 2 KB and 50 KB clean mail (clamd still parses them as mail).
Reported per case: median scans/s over the runs, the client process's peak
RSS (VmHWM), and clamd's RSS.  Printed and written to
bench/results/antivirus-<timestamp>.json.  The pytest-benchmark test times
one postier scan of the 2 KB message.

Env: POSTIER_BENCH_SCANS (default 2000 per run), POSTIER_BENCH_RUNS (default
3), POSTIER_BENCH_SMALL=1 (100 scans, 1 run: the smoke mode).  Skipped
cleanly when clamd is not installed.  No timing assertions: the tests check
that every scan answered clean (and one EICAR answered infected).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (os.path.join(ROOT, "src"), os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from clamd_server import EICAR, ClamdServer, clamd_available  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")
SCANS = 100 if SMALL else int(os.environ.get("POSTIER_BENCH_SCANS", "2000"))
RUNS = 1 if SMALL else int(os.environ.get("POSTIER_BENCH_RUNS", "3"))
RESULTS = os.path.join(HERE, "results")

pytestmark = pytest.mark.skipif(not clamd_available(),
                                reason="clamd not installed (tools/setup.sh --test)")


def mail(size: int) -> bytes:
    head = (b"From: alice@example.org\nTo: bob@example.test\nSubject: bench\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <bench@example.org>\n"
            b"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
    body = bytearray()
    i = 0
    while len(head) + len(body) < size:
        body += b"line %06d lorem ipsum dolor sit amet consectetur adipiscing elit\n" % i
        i += 1
    return head + bytes(body)


# The measuring child: argv = mode spec scans message_file; prints "rate hwm_kb".
CHILD = r'''
import asyncio, os, socket, struct, sys, time
mode, spec, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = open(path, "rb").read()

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

def naive(addr):
    fam, where = addr
    buf = b"zINSTREAM\0" + struct.pack(">I", len(data)) + data + struct.pack(">I", 0)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect(where)
    s.sendall(buf)
    r = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        r += d
    s.close()
    return r.rstrip(b"\0")

if mode == "naive":
    kind, _, rest = spec.partition(":")[2].partition(":")
    if kind == "unix":
        addr = (socket.AF_UNIX, rest)
    else:
        h, _, p = rest.rpartition(":")
        addr = (socket.AF_INET, (h, int(p)))
    t0 = time.perf_counter()
    for _ in range(n):
        assert naive(addr) == b"stream: OK"
    dt = time.perf_counter() - t0
elif mode == "clamdscan":
    conf = spec
    t0 = time.perf_counter()
    for _ in range(n):
        import subprocess
        p = subprocess.run(["clamdscan", "--config-file=" + conf, "--stream", "--no-summary",
                            "-"], input=data, capture_output=True)
        assert p.returncode == 0, p.stdout
    dt = time.perf_counter() - t0
else:
    import uvloop
    uvloop.install()
    from postier.content.antivirus import Antivirus, parse_scanners
    async def run():
        av = Antivirus(parse_scanners([spec]), 30)
        if mode == "postier":
            t0 = time.perf_counter()
            for _ in range(n):
                r = await av.scan(data)
                assert r.status == "clean", r
            return time.perf_counter() - t0
        if mode == "postier8":
            sem = asyncio.Semaphore(8)
            async def one():
                async with sem:
                    r = await av.scan(data)
                    assert r.status == "clean", r
            t0 = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return time.perf_counter() - t0
        from postier.config import Config
        from postier.content.banned import DEFAULT_EXAMPLE
        from postier.content.scan import scan
        from postier.queue.file import Envelope, Recipient
        cfg = Config.from_text(f"av_scanners = {spec}\nbanned_filename_rules = {DEFAULT_EXAMPLE}\n")
        env = Envelope(queue_id="BENCH", arrival=0.0, sender="a@example.org",
                       recipients=[Recipient("b@example.test")])
        from postier import log
        log.setup("bench", stderr=False, maillog_file="/dev/null")
        t0 = time.perf_counter()
        for _ in range(n):
            v = await scan(data, env, cfg)
            assert v.action == "pass", v
        return time.perf_counter() - t0
    dt = asyncio.run(run())
print(f"{n / dt:.1f} {hwm()}")
'''


def run_child(mode: str, spec: str, n: int, path: str) -> tuple[float, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", CHILD, mode, spec, str(n), path],
                       capture_output=True, text=True, env=env, timeout=600)
    if p.returncode:
        raise RuntimeError(f"{mode} {spec}: {p.stderr[-2000:]}")
    rate, kb = p.stdout.split()
    return float(rate), int(kb)


@pytest.fixture(scope="module")
def clamd():
    srv = ClamdServer(max_threads=8)
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def messages(tmp_path_factory):
    d = tmp_path_factory.mktemp("avbench")
    out = {}
    for name, size in (("2KB", 2048), ("50KB", 50 * 1024)):
        path = d / f"{name}.eml"
        path.write_bytes(mail(size))
        out[name] = str(path)
    return out


def test_postier_scan_latency(benchmark, clamd):
    """pytest-benchmark: one postier INSTREAM scan of a 2 KB message (unix socket)."""
    from postier.content.antivirus import Antivirus, parse_scanners
    av = Antivirus(parse_scanners([clamd.unix_spec]), 30)
    data = mail(2048)
    loop = asyncio.new_event_loop()
    try:
        infected = loop.run_until_complete(av.scan(data + EICAR + b"\n"))
        assert infected.status == "infected"
        result = benchmark.pedantic(lambda: loop.run_until_complete(av.scan(data)),
                                    rounds=20 if SMALL else 200, iterations=1)
    finally:
        loop.close()
    assert result.status == "clean"


def test_antivirus_throughput(clamd, messages, capsys):
    cases = [("postier", "unix"), ("postier", "inet"), ("postier8", "unix"),
             ("postier full", "unix"), ("naive", "unix"), ("naive", "inet")]
    clamdscan = shutil.which("clamdscan")
    result: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                    "clamd": clamd.version(), "scans": SCANS, "runs": RUNS, "cases": []}
    lines = [f"antivirus: {clamd.version()}, {SCANS} scans x {RUNS} runs, median scans/s"]
    for msg_name, path in messages.items():
        todo = list(cases)
        if clamdscan:
            todo.append(("clamdscan", "conf"))
        for mode, sock in todo:
            spec = {"unix": clamd.unix_spec, "inet": clamd.inet_spec,
                    "conf": clamd.conf_path}[sock]
            child_mode = "full" if mode == "postier full" else mode
            n = max(10, SCANS // 20) if mode == "clamdscan" else SCANS
            rates, hwms = [], []
            for _ in range(RUNS):
                rate, kb = run_child(child_mode, spec, n, path)
                rates.append(rate)
                hwms.append(kb)
            med = statistics.median(rates)
            result["cases"].append({"message": msg_name, "client": mode, "socket": sock,
                                    "scans_per_s": round(med, 1), "rates": rates,
                                    "client_peak_rss_kb": max(hwms)})
            lines.append(f"  {msg_name:5} {mode:13} {sock:5} {med:8.0f} scans/s  "
                         f"client peak RSS {max(hwms) / 1024:5.1f} MB")
            assert rates and all(r > 0 for r in rates)
    if not clamdscan:
        lines.append("  (clamdscan not installed: Debian package clamdscan; not compared)")
    result["clamd_rss_kb"] = clamd.rss_kb()
    lines.append(f"  clamd RSS after the runs: {result['clamd_rss_kb'] / 1024:.1f} MB")
    by = {(c["message"], c["client"], c["socket"]): c["scans_per_s"] for c in result["cases"]}
    for msg_name in messages:
        ratio = by[(msg_name, "postier", "unix")] / by[(msg_name, "naive", "unix")]
        result[f"postier_vs_naive_{msg_name}"] = round(ratio, 2)
        lines.append(f"  {msg_name}: postier/naive (unix, sequential) = {ratio:.2f}")
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(RESULTS, f"antivirus-{stamp}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    lines.append(f"written to {os.path.relpath(out, ROOT)}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
