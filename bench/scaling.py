#!/usr/bin/env python3
"""1 vs 2 smtpd workers: run the smtpd-only and the end-to-end benchmarks
with `smtpd_worker_processes = 1` and `= 2` and print the scaling factors.

    .venv/bin/python bench/scaling.py [--only smtpd|e2e] [--rounds N]

Each benchmark is run by pytest with the bench_workers plugin (see
bench_workers.py), alternating 1 and 2 workers for N rounds (default 1); the
numbers come from the JSON files the benchmarks write to bench/results/.  The
smtpd benchmark runs unpinned (POSTIER_BENCH_PIN=0): pinned, the whole
server tree shares one CPU and two workers cannot scale.  The factor is
msg/s with 2 workers divided by msg/s with 1 (per case, median over rounds).
No assertions: this is a report (the benchmarks check that every message
got through).  The box is shared: compare numbers of one run only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
PYTEST = os.path.join(ROOT, ".venv", "bin", "pytest")


def run_bench(kind: str, workers: int) -> dict:
    env = dict(os.environ)
    env["POSTIER_BENCH_WORKERS"] = str(workers)
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    if kind == "smtpd":
        env.setdefault("POSTIER_BENCH_PIN", "0")
    target = os.path.join(ROOT, "bench", f"test_bench_{kind}.py")
    pattern = os.path.join(RESULTS, f"{kind}-*.json")
    before = set(glob.glob(pattern))
    t0 = time.time()
    p = subprocess.run([PYTEST, "-q", "-s", "-p", "bench_workers", "-p", "no:cacheprovider",
                        target], cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"{kind} benchmark with {workers} workers failed")
    new = sorted(set(glob.glob(pattern)) - before)
    if not new:
        raise SystemExit(f"{kind} benchmark wrote no result file")
    with open(new[-1]) as f:
        data = json.load(f)
    data["_elapsed"] = time.time() - t0
    return data


def smtpd_rates(data: dict) -> dict[str, float]:
    return {f"{row['sessions']} sessions": row["postier_msgs_per_s"] for row in data["summary"]}


def e2e_rates(data: dict) -> dict[str, float]:
    out = {}
    for r in data["results"]:
        if r["system"] != "postier":
            continue
        case = f"{r['sessions']}s/{r['size'] // 1024}KB"
        out[f"{case} accepted"] = r["accepted_per_s"]
        out[f"{case} delivered"] = r["delivered_per_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("smtpd", "e2e"))
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    kinds = [args.only] if args.only else ["smtpd", "e2e"]
    report = []
    for kind in kinds:
        rates: dict[int, dict[str, list[float]]] = {1: {}, 2: {}}
        for _ in range(args.rounds):
            for workers in (1, 2):
                data = run_bench(kind, workers)
                got = smtpd_rates(data) if kind == "smtpd" else e2e_rates(data)
                for case, v in got.items():
                    rates[workers].setdefault(case, []).append(v)
        report.append(f"{kind} benchmark ({args.rounds} round(s), msg/s, postier only):")
        report.append(f"  {'case':<24} {'1 worker':>9} {'2 workers':>9} {'scaling':>8}")
        for case in rates[1]:
            one = statistics.median(rates[1][case])
            two = statistics.median(rates[2].get(case, [float("nan")]))
            report.append(f"  {case:<24} {one:9.1f} {two:9.1f} {two / one:7.2f}x")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
