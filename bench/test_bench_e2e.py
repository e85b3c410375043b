"""End-to-end relay benchmark: smtp-source -> MTA -> smtp-sink, postier vs real Postfix.

For 1 and 20 parallel sessions and 2 KB and 50 KB messages, in one run:

* postier: `postier run` (smtpd + queue manager + smtp agent in one
  process), relayhost = [127.0.0.1]:SINK, mynetworks = 127.0.0.0/8;
* Postfix 3.7: a private instance (tests/integration/qmgr/peers.py
  PostfixRelay: the plain relay config of tools/postfix_instance.py plus
  qmgr and the smtp client), same relayhost, same loopback sink.

Measured per system: accepted msg/s (smtp-source -m N -s S -l SIZE wall
time), delivered msg/s (until smtp-sink's `-c` counter has all N), p50/p99
latency of the 250 reply to the end of DATA (a Python client, S sessions,
measuring from the final "." to the 250), CPU ms per message of the server
tree (user+sys of the MTA's master and all its descendants, reaped ones
included through the parents' cutime/cstime, from the start of smtp-source
until the sink has all N: smtpd + queue manager + smtp client for postier,
every Postfix daemon for Postfix, not smtp-source nor smtp-sink), and peak memory: RSS and PSS of
the postier process, PSS summed over all Postfix processes of the instance.
Each case runs POSTIER_BENCH_RUNS times (default 3), alternating postier
and Postfix, each run on a freshly started MTA; the table shows every run
and the ratios are of the medians.  Pinning (bench/pinning.py): the MTA
(postier's process, or Postfix's master and everything it forks) runs on
one CPU, smtp-source, smtp-sink and this process's latency client on
another; POSTIER_BENCH_PIN=0 disables it, POSTIER_BENCH_QUIET_WAIT=S waits
up to S seconds for the shared box to be >= 70 % idle before each run.
The table is printed and bench/results/e2e-<time>.json written.
POSTIER_BENCH_SMALL=1 uses tiny counts and one run (CI smoke run).  The Postfix half is
skipped (reported as missing) when Postfix or root is not available.  No
timing assertions: the checks only make sure every message got through.
"""

from __future__ import annotations

import json
import os
import smtplib
import statistics
import subprocess
import sys
import threading
import time

import pytest

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "qmgr"))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, BENCH)

from peers import (  # noqa: E402
    SMTP_SOURCE,
    PostfixRelay,
    PostierDaemon,
    SmtpSink,
    peers_available,
    wait_for,
)
from pinning import (  # noqa: E402
    CLIENT_CPU,
    SERVER_CPU,
    describe,
    pin_tree,
    pinned_self,
    taskset,
    wait_quiet,
)

from postier.bench.procstat import cpu_seconds, memory_kb, tree  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL") == "1"
RUNS = 1 if SMALL else int(os.environ.get("POSTIER_BENCH_RUNS", "3"))
QUIET_WAIT = 0.0 if SMALL else float(os.environ.get("POSTIER_BENCH_QUIET_WAIT", "0"))
CASES = [(1, 2048), (20, 2048), (1, 51200), (20, 51200)]
RESULTS: list[dict] = []


def counts(size: int) -> tuple[int, int]:
    """(messages for throughput, messages for latency)"""
    if SMALL:
        return 30, 20
    return (2000, 400) if size <= 4096 else (600, 200)


def postfix_ok() -> bool:
    try:
        from postfix_instance import postfix_available
    except ImportError:
        return False
    return postfix_available()


def _pss_tree(pid: int) -> tuple[int, int]:
    """(RSS of pid, PSS summed over pid and its descendants) in kB."""
    return memory_kb(pid)[0], sum(memory_kb(p)[1] for p in tree(pid))


def _cpu_tree(pid: int) -> float:
    """Seconds of user+sys CPU used by pid and its descendants, including
    reaped children (cutime/cstime), so that short-lived Postfix daemons
    that exited during the run still count."""
    return sum(cpu_seconds(p) for p in tree(pid))


class MemSampler:
    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = _pss_tree(self.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(0.2)

    def __enter__(self) -> MemSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def message(size: int, seq: int) -> bytes:
    head = (f"From: bench@sender.test\r\nTo: sink@dest.test\r\nSubject: latency {seq}\r\n"
            "\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTU\r\n"
    return head + (line * (size // len(line) + 1))[:size]


def latencies(port: int, sessions: int, n: int, size: int) -> list[float]:
    """Seconds from the end of DATA to the 250, n messages over `sessions`."""
    out: list[float] = []
    lock = threading.Lock()
    per = [n // sessions + (1 if i < n % sessions else 0) for i in range(sessions)]

    def run(k: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("bench.example.test")
            for i in range(k):
                body = message(size, i)
                code, _ = s.mail("bench@sender.test")
                assert code == 250
                code, _ = s.rcpt("sink@dest.test")
                assert code == 250
                s.putcmd("data")
                code, _ = s.getreply()
                assert code == 354
                s.send(body + b".\r\n" if body.endswith(b"\r\n") else body + b"\r\n.\r\n")
                t0 = time.perf_counter()
                code, _ = s.getreply()
                dt = time.perf_counter() - t0
                assert code == 250
                with lock:
                    out.append(dt)
    threads = [threading.Thread(target=run, args=(k,)) for k in per if k]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run_system(kind: str, sessions: int, size: int, tmp: str) -> dict:
    n, nlat = counts(size)
    sink = SmtpSink([]).start()
    pin_tree(sink.proc.pid, CLIENT_CPU)
    try:
        if kind == "postier":
            mta = PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}",
                                 "smtpd_peername_lookup": "yes",
                                 "message_size_limit": "10240000"},
                                root=os.path.join(tmp, f"postier-{sessions}-{size}"))
            mta.start()
            port, pid = mta.port, mta.proc.pid
        else:
            mta = PostfixRelay()
            mta.write_config({"relayhost": f"[127.0.0.1]:{sink.port}"})
            mta.start()
            port, pid = mta.port, mta.master.pid
        pin_tree(pid, SERVER_CPU)
        try:
            # warm-up (tables, caches, connection to the sink)
            latencies(port, 1, 5, size)
            assert wait_for(lambda: sink.messages >= 5, 30)
            base = sink.messages
            idle = wait_quiet(QUIET_WAIT)
            with MemSampler(pid) as mem:
                cpu0 = _cpu_tree(pid)
                t0 = time.perf_counter()
                p = subprocess.run(taskset([SMTP_SOURCE, "-m", str(n), "-s", str(sessions),
                                            "-l", str(size), "-f", "bench@sender.test",
                                            "-t", "sink@dest.test", "-M", "bench.example.test",
                                            f"127.0.0.1:{port}"], CLIENT_CPU),
                                   capture_output=True, text=True, timeout=900)
                t_acc = time.perf_counter() - t0
                assert p.returncode == 0, p.stderr
                assert wait_for(lambda: sink.messages >= base + n, 600, 0.02), \
                    f"{kind}: only {sink.messages - base} of {n} delivered"
                t_del = time.perf_counter() - t0
                cpu = _cpu_tree(pid) - cpu0
                base = sink.messages
                lat = latencies(port, sessions, nlat, size)
                assert wait_for(lambda: sink.messages >= base + nlat, 300, 0.05)
        finally:
            mta.cleanup()
    finally:
        sink.stop()
    return {"system": kind, "sessions": sessions, "size": size, "messages": n,
            "accepted_per_s": n / t_acc, "delivered_per_s": n / t_del,
            "latency_p50_ms": 1000 * pct(lat, 50), "latency_p99_ms": 1000 * pct(lat, 99),
            "latency_mean_ms": 1000 * statistics.fmean(lat),
            "cpu_ms_per_msg": 1000 * cpu / n,
            "peak_rss_kb": mem.peak_rss if kind == "postier" else None,
            "peak_pss_kb": mem.peak_pss, "box_idle_before_pct": idle}


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def summary(results: list[dict]) -> tuple[str, list[dict]]:
    """The printed table (every run, then the medians) and the ratios of the medians."""
    rows = [f"e2e benchmark: {RUNS} run(s) per case, alternating; {describe()}",
            f"{'case':<12} {'system':<8} {'acc/s':>8} {'dlv/s':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'cpu ms':>7} {'RSS MB':>7} {'PSS MB':>7} {'idle%':>6}"]
    for r in results:
        case = f"{r['sessions']}s/{r['size'] // 1024}KB"
        rss = f"{r['peak_rss_kb'] / 1024:.1f}" if r["peak_rss_kb"] else "-"
        rows.append(f"{case:<12} {r['system']:<8} {r['accepted_per_s']:8.0f} "
                    f"{r['delivered_per_s']:8.0f} {r['latency_p50_ms']:8.2f} "
                    f"{r['latency_p99_ms']:8.2f} {r['cpu_ms_per_msg']:7.3f} {rss:>7} "
                    f"{r['peak_pss_kb'] / 1024:7.1f} {r['box_idle_before_pct']:6.1f}")
    ratios = []
    for s, z in CASES:
        a = [r for r in results if r["sessions"] == s and r["size"] == z]
        px = [r for r in a if r["system"] == "postier"]
        pf = [r for r in a if r["system"] == "postfix"]
        if px and pf:
            cpu_pf = _median(pf, "cpu_ms_per_msg")
            ratios.append({
                "sessions": s, "size": z, "runs": min(len(px), len(pf)),
                "accepted": _median(px, "accepted_per_s") / _median(pf, "accepted_per_s"),
                "delivered": _median(px, "delivered_per_s") / _median(pf, "delivered_per_s"),
                "p50": _median(px, "latency_p50_ms") / _median(pf, "latency_p50_ms"),
                "cpu": _median(px, "cpu_ms_per_msg") / cpu_pf if cpu_pf else float("nan")})
    for q in ratios:
        rows.append(f"ratio postier/postfix {q['sessions']}s/{q['size'] // 1024}KB (medians of "
                    f"{q['runs']}): accepted {q['accepted']:.2f}x, delivered "
                    f"{q['delivered']:.2f}x, p50 latency {q['p50']:.2f}x, CPU/msg {q['cpu']:.2f}x")
    return "\n".join(rows), ratios


@pytest.fixture(scope="module")
def report():
    yield RESULTS
    if not RESULTS:
        return
    text, ratios = summary(RESULTS)
    print("\n" + text)
    out_dir = os.path.join(BENCH, "results")
    os.makedirs(out_dir, exist_ok=True)
    name = time.strftime("e2e-%Y%m%d-%H%M%S.json")
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump({"small": SMALL, "cpus": os.cpu_count(), "pinning": describe(),
                   "runs": RUNS, "results": RESULTS, "ratios": ratios, "table": text},
                  f, indent=1)


@pytest.mark.skipif(not peers_available(), reason="smtp-source/smtp-sink not installed")
@pytest.mark.parametrize("sessions,size", CASES,
                         ids=[f"{s}sess-{z // 1024}KB" for s, z in CASES])
def test_bench_e2e(benchmark, report, tmp_path, sessions, size):
    tmp_path.chmod(0o755)
    with_postfix = postfix_ok()
    mine: list[dict] = []

    def run_all() -> None:
        with pinned_self(CLIENT_CPU):
            for i in range(RUNS):
                for kind in ("postier", "postfix") if with_postfix else ("postier",):
                    mine.append(run_system(kind, sessions, size, os.path.join(str(tmp_path),
                                                                              str(i))))
    benchmark.pedantic(run_all, rounds=1, iterations=1)
    RESULTS.extend(mine)
    for kind in ("postier", "postfix"):
        rows = [r for r in mine if r["system"] == kind]
        for k in ("accepted_per_s", "delivered_per_s", "latency_p50_ms", "cpu_ms_per_msg"):
            if rows:
                benchmark.extra_info[f"{kind}_{k}_median"] = _median(rows, k)
    if with_postfix:
        benchmark.extra_info["ratio_accepted"] = (
            benchmark.extra_info["postier_accepted_per_s_median"]
            / benchmark.extra_info["postfix_accepted_per_s_median"])
    # every message got through on every run (run_system asserts it); one row per run
    assert len(mine) == RUNS * (2 if with_postfix else 1)
    assert all(r["messages"] > 0 for r in mine)
