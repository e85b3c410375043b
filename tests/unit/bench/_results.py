"""A synthetic but complete `postier bench` result (as postier.bench.runner makes it)."""

from __future__ import annotations

import copy
import time

from postier.bench.capacity import Step


def step(system: str, rate: float, ok: bool, phase: str = "search") -> dict:
    s = Step(system=system, rate=rate, seconds=8, offered_per_s=rate, messages=int(rate * 8),
             attempts=int(rate * 8), achieved_per_s=rate if ok else rate * 0.6,
             accepted_per_s=rate * 0.7, delivered_per_s=rate * 0.7,
             outcomes={"accepted": int(rate * 5.6), "rejected": int(rate * 2.4)},
             latency_p50_ms=3.0, latency_p99_ms=20.0 if ok else 900.0,
             sched_latency_p50_ms=4.0, sched_latency_p99_ms=25.0 if ok else 4000.0,
             queue_peak=3, cpu_s=rate * 0.02, cpu_pct=rate * 0.3, cpu_s_per_1000=2.5,
             peak_rss_kb=120000, peak_pss_kb=60000, ok=ok, phase=phase,
             reasons=[] if ok else ["p99 latency 4000 ms > 1000 ms"])
    return s.to_dict()


def system(name: str, sustainable: float, pss_kb: int) -> dict:
    steps = [step(name, r, r <= sustainable) for r in (10, 20, 40, 80)]
    return {
        "summary": {"sustainable_per_s": sustainable, "achieved_per_s": sustainable,
                    "messages_per_day": int(sustainable * 86400), "capped": False,
                    "latency_p50_ms": 3.0, "latency_p99_ms": 20.0,
                    "sched_latency_p50_ms": 4.0, "sched_latency_p99_ms": 25.0,
                    "cpu_s_per_1000": 2.5 if name == "postier" else 4.0, "step": steps[0]},
        "lab": {"window_s": 16, "real_rate": 0.1736, "scale": 8, "rate": 1.39, "messages": 22,
                "idle_cpu_pct": 0.1, "window_cpu_pct": 0.6, "cpu_ms_per_message": 3.0,
                "cpu_at_real_load_pct": 0.15, "latency_p50_ms": 3.0, "latency_p99_ms": 9.0},
        "memory": {"idle_rss_kb": 100000, "idle_pss_kb": pss_kb // 2, "peak_rss_kb": 150000,
                   "peak_pss_kb": pss_kb, "peak_procs": 3, "cap": "256 MB RLIMIT_AS",
                   "cgroup_peak_bytes": None, "cgroup_events": {}},
        "accounting": {"accepted": 500, "delivered": 500, "lost": 0, "lost_ids": [],
                       "duplicates": 0, "duplicated_messages": 0, "duplicate_ids": [],
                       "unexpected": 0, "unexpected_ids": [],
                       "delivery_delay_p50_ms": 30.0, "delivery_delay_p99_ms": 90.0},
        "outcomes_by_class": {"ham": {"accepted": 300}, "rejected": {"rejected": 100}},
        "queue_peak": 12,
        "steps": steps,
        "timeline": [{"t": i * 0.5, "cpu_pct": (i % 7) * 10.0 if i else None,
                      "rss_kb": 140000 + 100 * i, "pss_kb": pss_kb - 1000 + 10 * i,
                      "queue": i % 4, "procs": 3} for i in range(80)],
        "latencies_ms": [1.0 + (i % 50) * 0.7 for i in range(400)],
        "dropped_params": [],
    }


def result(postier_rate: float = 40.0, postfix_rate: float | None = 20.0) -> dict:
    systems = {"postier": system("postier", postier_rate, 60000)}
    ratios = {}
    if postfix_rate is not None:
        systems["postfix"] = system("postfix", postfix_rate, 30000)
        ratios = {"sustainable": postier_rate / postfix_rate, "latency_p50": 1.0,
                  "latency_p99": 1.0, "cpu_per_1000": 2.5 / 4.0, "cpu_at_real_load": 1.0,
                  "peak_pss": 2.0}
    return copy.deepcopy({
        "schema": "postier-bench/1",
        "scenario": {"name": "lab-2005", "path": "/x/lab-2005.toml", "description": "test",
                     "daily_messages": 15000, "daily_rate": 15000 / 86400,
                     "mix": {"ham": 0.6, "rejected": 0.4},
                     "load": {"mode": "search", "start_rate": 10, "factor": 2,
                              "max_rate": 80, "step_seconds": 8, "refine_steps": 0,
                              "rate": None, "duration": 60},
                     "thresholds": {"p99_ms": 1000, "defer_fraction": 0.01,
                                    "achieved_ratio": 0.9, "backlog_fraction": 0.25},
                     "quick": True, "sessions": 20, "pipelining": True},
        "host": {"cpus": 2, "cpu_model": "test cpu", "kernel": "6", "python": "3.11",
                 "postier": "0.1.0", "postfix": "3.7.11"},
        "limits": {"cores": 1, "server_cpus": [1], "load_cpus": [0], "shared": False,
                   "memory_bytes": 256 * 2**20, "cpus": "server on CPU 1, load on CPU 0",
                   "memory": "256 MB RLIMIT_AS"},
        "features": {"greylist": True, "antivirus": False, "spam": False},
        "corpus": "synthetic", "started": time.time() - 100, "finished": time.time(),
        "duration_s": 100.0, "systems": systems, "ratios": ratios, "helpers": {},
        "notes": ["spam rules skipped: test"],
    })
