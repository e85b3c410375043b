"""One scenario run: postier (and real Postfix, interleaved) under load, measured.

    res = run_scenario(scenario, RunOptions(cores=1, memory="256M", compare=["postfix"]))
    res["systems"]["postier"]["summary"]["sustainable_per_s"]

For each system (postier; Postfix with --compare postfix), in this order:

1. a sink (`postier bench sink`, recording every arrival) and the server,
   pinned to the server CPUs under the memory cap (postier.bench.limits),
   with a sampler of its process tree (CPU, RSS/PSS, queue size);
2. warm-up: a few messages of the mix, closed loop, until delivered;
3. the lab window: idle CPU over `lab_window` seconds, then the real load
   (`daily_messages`/day) scaled up by k so that the window holds about 20
   messages; CPU% at the real load = idle% + (CPU per message x real rate);
4. the capacity search (postier.bench.capacity) or the fixed load of the
   scenario (burst), one step per system in turn (A/B/A/B...), each step a
   generator process (postier.bench.loadproc) pinned to the load CPUs,
   followed by a short drain so that steps do not overlap;
5. a final drain, then end-to-end accounting: every message answered 250
   must have reached the sink exactly once (loss and duplicates counted).

Everything measured goes into the result dict that postier.bench.report
writes as JSON, the terminal table and the HTML report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from postier.bench import procstat
from postier.bench.account import account, percentile
from postier.bench.capacity import CapacitySearch, Step, judge, summarize
from postier.bench.limits import Limits, MemoryCap
from postier.bench.mta import (
    Features,
    Helpers,
    PostfixMta,
    PostierMta,
    free_port,
    resolve_features,
    wait_port,
)
from postier.bench.progress import Progress
from postier.bench.scenario import Scenario
from postier.bench.sink import RecordTail

SCHEMA = "postier-bench/1"


@dataclass
class RunOptions:
    cores: int | None = None
    memory: str | None = None
    compare: list[str] = field(default_factory=list)
    quick: bool = False
    corpus: str | None = None
    seed: int = 1
    progress: bool = True
    keep: bool = False
    workdir: str | None = None


class System:
    """One server under test with its sink, sampler and search state."""

    def __init__(self, name: str, mta, sink_proc: subprocess.Popen, sink_port: int,
                 record_path: str, cap: MemoryCap):
        self.name = name
        self.mta = mta
        self.sink_proc = sink_proc
        self.sink_port = sink_port
        self.tail = RecordTail(record_path)
        self.arrivals: list[tuple[float, str, int]] = []
        self.records: list[dict] = []
        self.cap = cap
        self.sampler: procstat.Sampler | None = None
        self.search: CapacitySearch | None = None
        self.steps: list[Step] = []
        self.lab: dict = {}
        self.idle_mem: dict = {}
        self.t_start = time.time()

    def poll(self) -> int:
        new = self.tail.poll()
        self.arrivals.extend(new)
        return len(new)

    def accepted(self) -> int:
        return sum(1 for r in self.records if r["outcome"] == "accepted")

    def queue(self) -> int:
        return procstat.queue_size(self.mta.queue_dir)


class Runner:
    def __init__(self, sc: Scenario, opts: RunOptions):
        self.sc = sc.quick() if opts.quick else sc
        self.opts = opts
        self.notes: list[str] = []
        cores = opts.cores if opts.cores is not None else None
        memory = opts.memory
        self.limits = Limits.plan(cores, memory)
        self.bar = Progress(1.0, enabled=opts.progress)
        self.systems: list[System] = []
        self.helpers: Helpers | None = None
        self.feats: Features | None = None
        self.work = opts.workdir or tempfile.mkdtemp(prefix="postier_bench.")
        os.chmod(self.work, 0o755)
        self.corpus = self._corpus()
        self.mix = dict(self.sc.mix)
        self._seq = 0
        self._est_total = 1.0
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ set-up

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.bar.note("note: " + text)

    def _corpus(self) -> str | None:
        c = self.opts.corpus or self.sc.corpus
        if c and os.path.isfile(os.path.join(c, "labels.tsv")):
            return os.path.abspath(c)
        return None

    def _estimate(self) -> float:
        sc = self.sc
        n = 1 + ("postfix" in self.opts.compare)
        retry = sc.greylist.retry_after[1] if sc.features.get("greylist") else 0
        if sc.load.mode == "fixed":
            steps = sc.load.duration + retry + 5
        else:
            k = max(1, math.ceil(math.log(max(sc.load.max_rate / sc.load.start_rate, 1.01))
                                 / math.log(sc.load.factor))) + 1
            steps = min(k, 8) * (sc.load.step_seconds + retry + 4) + \
                sc.load.refine_steps * (sc.load.step_seconds + retry + 4)
        return n * (15 + 1.5 * sc.lab_window + retry + steps)

    def _progress(self, label: str | None = None) -> None:
        el = time.monotonic() - self._t0
        self.bar.update(done=min(0.99 * self._est_total, el), label=label)

    def start(self) -> None:
        sc = self.sc
        self.limits.pin_self_to_load()
        if self.limits.cores and self.limits.shared:
            self.note(f"--cores {self.limits.cores}: this box has no CPU left for the load "
                      f"generator; it shares the server's CPUs")
        want_pf = "postfix" in self.opts.compare
        self.feats = resolve_features(sc, want_postfix=want_pf)
        for n in self.feats.notes:
            self.note(n)
        self.feats.notes.clear()
        if not self.corpus:
            self.note(f"no corpus found ({self.opts.corpus or sc.corpus}): using a small "
                      f"synthetic set made at run time")
        if "virus" in self.mix and not self.feats.antivirus:
            self.mix.pop("virus")
            self.note("traffic mix: no virus messages (antivirus not available)")
        self._est_total = self._estimate()
        self.bar.total = self._est_total
        self.helpers = Helpers(os.path.join(self.work, "helpers"), sc, self.feats,
                               postfix=want_pf and self.feats.postfix)
        self.helpers.start()
        # clamd and postgrey work for the server under test: same CPUs
        self.limits.pin(pid for root in self.helpers.pids().values()
                        for pid in procstat.tree(root))
        for n in self.feats.notes:
            self.note(n)
        names = ["postier"] + (["postfix"] if want_pf and self.feats.postfix else [])
        for name in names:
            self._progress(f"starting {name}")
            self.systems.append(self._start_system(name))

    def _start_system(self, name: str) -> System:
        root = os.path.join(self.work, name)
        os.makedirs(root, exist_ok=True)
        record = os.path.join(root, "sink.tsv")
        port = free_port()
        pin = list(self.limits.load_cpus) if self.limits.cores else None

        def pre() -> None:
            if pin:
                os.sched_setaffinity(0, pin)
        sink = subprocess.Popen([sys.executable, "-m", "postier.cli.main", "bench", "sink",
                                 "--listen", f"127.0.0.1:{port}", "--record", record,
                                 "--quiet"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=pre)
        if not wait_port(port, 20, sink):
            raise RuntimeError("the bench sink did not start")
        cap = self.limits.memory_cap(name)
        assert self.feats is not None and self.helpers is not None
        cls = PostierMta if name == "postier" else PostfixMta
        mta = cls(self.sc, os.path.join(root, "mta"), sink_port=port, feats=self.feats,
                  limits=self.limits, cap=cap, clamd_spec=self.helpers.clamd_spec,
                  postgrey_port=self.helpers.postgrey_port)
        try:
            mta.start()
        except Exception:
            sink.terminate()
            sink.wait()
            cap.close()
            raise
        if getattr(mta, "dropped", None):
            self.note(f"{name}: main.cf without the postier-only parameters "
                      f"{', '.join(sorted(set(mta.dropped)))}")
        s = System(name, mta, sink, port, record, cap)

        def on_pids(pids: list[int]) -> None:
            mta.remember(pids)
            # processes forked later inherit affinity and rlimits; a cgroup holds them too
            new = [p for p in pids if p not in s_pinned]
            if new:
                self.limits.pin(new)
                s_pinned.update(new)
        s_pinned: set[int] = set()
        s.sampler = procstat.Sampler(mta.root_pid, mta.queue_dir, interval=0.5,
                                     on_pids=on_pids).start()
        return s

    # ------------------------------------------------------------------ load

    def _spec(self, s: System, n: int, rate: float | None, prefix: str, seed: int,
              sessions: int | None = None) -> dict:
        sc = self.sc
        greylist = self.feats is not None and (
            self.feats.greylist if s.name == "postier" else self.feats.greylist_postfix)
        first = self._seq + 1
        self._seq += n
        return {"host": "127.0.0.1", "port": s.mta.port, "n": n, "first_seq": first,
                "seed": seed, "rate": rate, "arrival": sc.arrival,
                "sessions": sessions or sc.sessions,
                "messages_per_session": sc.messages_per_session, "pipelining": sc.pipelining,
                "recipients": sc.recipients, "mix": self.mix, "corpus": self.corpus,
                "greylist_new_fraction": sc.greylist.new_fraction if greylist else 0.0,
                "spam_retry_fraction": sc.greylist.spam_retry_fraction,
                "retry_after": list(sc.greylist.retry_after), "max_attempts": 4,
                "id_prefix": f"{s.name}-{prefix}", "timeout": 60.0,
                "deadline": (n / rate if rate else 60.0) * 3 + 120.0}

    def _generate(self, s: System, spec: dict, label: str) -> dict:
        path = os.path.join(self.work, f"{spec['id_prefix']}.spec.json")
        spec["out"] = path.replace(".spec.json", ".out.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        pin = list(self.limits.load_cpus) if self.limits.cores else None

        def pre() -> None:
            if pin:
                os.sched_setaffinity(0, pin)
        err_path = path.replace(".spec.json", ".err")
        with open(err_path, "wb") as err:
            p = subprocess.Popen([sys.executable, "-m", "postier.bench.loadproc", path],
                                 stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                 preexec_fn=pre)
            limit = time.monotonic() + spec["deadline"] + 60
            while p.poll() is None:
                s.poll()
                self._progress(label)
                if time.monotonic() > limit:
                    p.kill()
                    p.wait()
                    break
                time.sleep(0.25)
        if p.returncode != 0:
            with open(err_path, errors="replace") as f:
                tail = f.read()[-1500:]
            raise RuntimeError(f"load generator failed ({p.returncode}): {tail}")
        with open(spec["out"]) as f:
            out = json.load(f)
        fields = out["fields"]
        recs = [dict(zip(fields, r, strict=True)) for r in out["records"]]
        s.records.extend(recs)
        out["records"] = recs
        return out

    def _drain(self, s: System, timeout: float, label: str) -> float:
        """Wait until the queue is empty and the sink has every accepted
        message (or `timeout`); returns the seconds it took."""
        t0 = time.monotonic()
        want = s.accepted()
        while time.monotonic() - t0 < timeout:
            s.poll()
            have = len({a[1] for a in s.arrivals})
            if s.queue() == 0 and have >= want:
                break
            self._progress(label)
            time.sleep(0.2)
        s.poll()
        return time.monotonic() - t0

    def _step(self, s: System, rate: float | None, seconds: float, phase: str, label: str,
              prefix: str, seed: int, n: int | None = None) -> Step:
        n = n or max(1, int(round((rate or 0) * seconds)))
        spec = self._spec(s, n, rate, prefix, seed)
        snap0 = procstat.tree_snapshot(s.mta.root_pid)
        q0 = s.queue()
        before = len(s.arrivals)
        t0 = time.time()
        out = self._generate(s, spec, label)
        t1 = time.time()
        snap1 = procstat.tree_snapshot(s.mta.root_pid)
        s.poll()
        recs = out["records"]
        started = out["started"]
        st = Step(system=s.name, rate=rate or 0.0, seconds=seconds, phase=phase)
        st.messages = len(recs)
        st.attempts = sum(r["attempts"] for r in recs)
        outcomes: dict[str, int] = {}
        for r in recs:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        st.outcomes = outcomes
        st.errors = outcomes.get("error", 0) + outcomes.get("unfinished", 0)
        st.defers_expected = sum(r["defers_expected"] for r in recs)
        st.defers_unexpected = sum(r["defers_unexpected"] for r in recs)
        firsts = [r["first_done"] for r in recs if r["first_done"]]
        dues = [r["due"] for r in recs]
        gap = 1.0 / rate if rate else 0.0
        offered_span = max(1e-9, (max(dues) - started + gap) if dues else seconds)
        st.offered_per_s = len(recs) / offered_span if rate else 0.0
        span = max(offered_span, (max(firsts) - started) if firsts else offered_span)
        st.achieved_per_s = len(firsts) / span
        end = started + span
        st.accepted_per_s = sum(1 for r in recs if r["outcome"] == "accepted"
                                and r["done"] <= end) / span
        win_end = started + seconds
        st.delivered_per_s = sum(1 for a in s.arrivals[before:] if a[0] <= end) / span
        lat = sorted(r["latency"] for r in recs if r["latency"] is not None)
        slat = sorted(r["sched_latency"] for r in recs if r["sched_latency"] is not None)
        st.latency_p50_ms = _ms(percentile(lat, 50))
        st.latency_p99_ms = _ms(percentile(lat, 99))
        st.sched_latency_p50_ms = _ms(percentile(slat, 50))
        st.sched_latency_p99_ms = _ms(percentile(slat, 99))
        assert s.sampler is not None
        samples = s.sampler.between(t0, t1)
        st.queue_start = q0
        near = [x for x in samples if x["t"] <= win_end + 0.5]
        st.queue_end = near[-1]["queue"] if near else s.queue()
        st.queue_peak = max([x["queue"] for x in samples] + [q0])
        st.queue_growth_per_s = (st.queue_end - q0) / max(1e-9, min(seconds, t1 - t0))
        st.wall_s = t1 - t0
        st.cpu_s = max(0.0, snap1["cpu_s"] - snap0["cpu_s"])
        st.cpu_pct = 100.0 * st.cpu_s / max(1e-9, t1 - t0)
        inwin = [x for x in samples if started <= x["t"] <= end + 0.5]
        if len(inwin) >= 2 and inwin[-1]["t"] - inwin[0]["t"] >= 0.9:
            # during the offered window (greylisting retries stretch the step)
            st.cpu_pct = 100.0 * max(0.0, inwin[-1]["cpu_s"] - inwin[0]["cpu_s"]) / (
                inwin[-1]["t"] - inwin[0]["t"])
        st.cpu_s_per_1000 = 1000.0 * st.cpu_s / st.messages if st.messages else None
        st.peak_rss_kb = int(s.sampler.peak("rss_kb", t0, t1))
        st.peak_pss_kb = int(s.sampler.peak("pss_kb", t0, t1))
        return st

    # ------------------------------------------------------------------ phases

    def warmup(self) -> None:
        n = 6 if self.opts.quick else 20
        for s in self.systems:
            self._progress(f"{s.name}: warm-up")
            spec = self._spec(s, n, None, "warmup", self.opts.seed, sessions=2)
            spec["greylist_new_fraction"] = 0.0
            self._generate(s, spec, f"{s.name}: warm-up")
            self._drain(s, 30, f"{s.name}: warm-up delivery")
            snap = procstat.tree_snapshot(s.mta.root_pid)
            s.idle_mem = {"rss_kb": snap["rss_kb"], "pss_kb": snap["pss_kb"],
                          "procs": snap["procs"]}

    def lab_window(self) -> None:
        sc = self.sc
        w = sc.lab_window
        real = sc.daily_rate
        k = max(1.0, math.ceil(20.0 / max(1e-9, real * w)))
        for s in self.systems:
            label = f"{s.name}: CPU at the real load ({sc.daily_messages:,}/day)"
            self._progress(label)
            a = procstat.tree_snapshot(s.mta.root_pid)
            t0 = time.time()
            end = time.monotonic() + w / 2
            while time.monotonic() < end:
                self._progress(label)
                time.sleep(0.2)
            b = procstat.tree_snapshot(s.mta.root_pid)
            idle_s = time.time() - t0
            idle_pct = 100.0 * (b["cpu_s"] - a["cpu_s"]) / max(1e-9, idle_s)
            st = self._step(s, real * k, w, "lab", label, "lab", self.opts.seed)
            busy = max(0.0, st.cpu_s - idle_pct / 100.0 * st.wall_s)
            per_msg = busy / max(1, st.messages)
            s.lab = {"window_s": w, "real_rate": real, "scale": k, "rate": real * k,
                     "messages": st.messages, "idle_cpu_pct": idle_pct,
                     "window_cpu_pct": st.cpu_pct, "cpu_ms_per_message": 1000.0 * per_msg,
                     "cpu_at_real_load_pct": idle_pct + 100.0 * per_msg * real,
                     "latency_p50_ms": st.latency_p50_ms, "latency_p99_ms": st.latency_p99_ms}
            st.ok, st.reasons = judge(st, sc.thresholds)
            s.steps.append(st)
            self._drain(s, 20, label)

    def search(self) -> None:
        sc = self.sc
        for s in self.systems:
            s.search = CapacitySearch(sc.load, sc.thresholds)
        rnd = 0
        while True:
            active = [s for s in self.systems if s.search and s.search.next_rate() is not None]
            if not active:
                break
            rnd += 1
            order = active if rnd % 2 else list(reversed(active))
            for s in order:
                assert s.search is not None
                rate = s.search.next_rate()
                assert rate is not None
                phase = "refine" if s.search._hi is not None and s.search._lo is not None \
                    else "search"
                label = f"{s.name}: step {len(s.search.steps) + 1} at {rate:.1f} msg/s"
                st = self._step(s, rate, sc.load.step_seconds, phase, label, f"s{rnd}",
                                self.opts.seed + rnd)
                s.search.record(st)
                s.steps.append(st)
                verdict = "ok" if st.ok else "over: " + "; ".join(st.reasons)
                self.bar.note(f"{s.name:8} {rate:8.1f} msg/s offered: "
                              f"{st.achieved_per_s:7.1f} answered/s, p99 "
                              f"{_fmt(st.sched_latency_p99_ms)} ms, CPU {st.cpu_pct:5.1f}% "
                              f"-> {verdict}")
                self._drain(s, min(60.0, sc.drain_timeout), f"{s.name}: draining")

    def fixed(self) -> None:
        sc = self.sc
        rate = sc.fixed_rate()
        for s in self.systems:
            label = f"{s.name}: {rate:.1f} msg/s for {sc.load.duration:.0f} s"
            st = self._step(s, rate, sc.load.duration, "fixed", label, "fixed", self.opts.seed)
            st.ok, st.reasons = judge(st, sc.thresholds)
            s.steps.append(st)
            verdict = "kept up" if st.ok else "did not keep up: " + "; ".join(st.reasons)
            self.bar.note(f"{s.name:8} {rate:8.1f} msg/s for {sc.load.duration:.0f} s: "
                          f"p99 {_fmt(st.sched_latency_p99_ms)} ms, queue peak "
                          f"{st.queue_peak}, CPU {st.cpu_pct:5.1f}% -> {verdict}")
            s.lab["burst_drain_s"] = self._drain(s, sc.drain_timeout, f"{s.name}: draining")

    def finish(self) -> None:
        for s in self.systems:
            self._drain(s, self.sc.drain_timeout, f"{s.name}: final drain")
            time.sleep(0.5)
            s.poll()

    def stop(self) -> None:
        for s in self.systems:
            if s.sampler is not None:
                s.sampler.stop()
            try:
                s.mta.stop()
            finally:
                if s.sink_proc.poll() is None:
                    s.sink_proc.terminate()
                    try:
                        s.sink_proc.wait(10)
                    except subprocess.TimeoutExpired:
                        s.sink_proc.kill()
                        s.sink_proc.wait()
                s.cap.close()
        if self.helpers is not None:
            self.helpers.stop()
        self.bar.close()
        if not self.opts.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # ------------------------------------------------------------------ result

    def result(self, started: float) -> dict:
        sc = self.sc
        systems = {}
        for s in self.systems:
            acc = account(s.records, s.arrivals)
            assert s.sampler is not None
            tl = _timeline(s.sampler.samples, started)
            search_steps = [x for x in s.steps if x.phase in ("search", "refine")]
            summ = summarize(search_steps, s.search.capped if s.search else False)
            fixed = [x for x in s.steps if x.phase == "fixed"]
            if fixed:
                f = fixed[-1]
                summ.update({"fixed_rate": f.rate, "fixed_ok": f.ok,
                             "fixed_reasons": f.reasons,
                             "latency_p50_ms": f.latency_p50_ms,
                             "latency_p99_ms": f.latency_p99_ms,
                             "sched_latency_p99_ms": f.sched_latency_p99_ms,
                             "queue_peak": f.queue_peak,
                             "drain_s": s.lab.get("burst_drain_s"),
                             "cpu_s_per_1000": f.cpu_s_per_1000})
            by_class: dict[str, dict[str, int]] = {}
            for r in s.records:
                c = by_class.setdefault(r["cls"], {})
                c[r["outcome"]] = c.get(r["outcome"], 0) + 1
            peak_pss = max([x["pss_kb"] for x in s.sampler.samples] + [0])
            peak_rss = max([x["rss_kb"] for x in s.sampler.samples] + [0])
            systems[s.name] = {
                "summary": summ,
                "lab": {k: v for k, v in s.lab.items() if k != "burst_drain_s"},
                "memory": {"idle_rss_kb": s.idle_mem.get("rss_kb"),
                           "idle_pss_kb": s.idle_mem.get("pss_kb"),
                           "peak_rss_kb": peak_rss, "peak_pss_kb": peak_pss,
                           "peak_procs": max([x["procs"] for x in s.sampler.samples] + [0]),
                           "cap": s.cap.describe(), "cgroup_peak_bytes": s.cap.peak(),
                           "cgroup_events": s.cap.events()},
                "accounting": acc,
                "outcomes_by_class": by_class,
                "queue_peak": max([x["queue"] for x in s.sampler.samples] + [0]),
                "steps": [x.to_dict() for x in s.steps],
                "timeline": tl,
                "latencies_ms": _latency_sample([r for r in s.records if r["latency"]]),
                "dropped_params": sorted(set(getattr(s.mta, "dropped", []))),
            }
        ratios = {}
        if "postier" in systems and "postfix" in systems:
            a, b = systems["postier"], systems["postfix"]
            ratios = {
                "sustainable": _ratio(a["summary"].get("sustainable_per_s"),
                                      b["summary"].get("sustainable_per_s")),
                "latency_p50": _ratio(a["summary"].get("latency_p50_ms"),
                                      b["summary"].get("latency_p50_ms")),
                "latency_p99": _ratio(a["summary"].get("latency_p99_ms"),
                                      b["summary"].get("latency_p99_ms")),
                "cpu_per_1000": _ratio(a["summary"].get("cpu_s_per_1000"),
                                       b["summary"].get("cpu_s_per_1000")),
                "cpu_at_real_load": _ratio(a["lab"].get("cpu_at_real_load_pct"),
                                           b["lab"].get("cpu_at_real_load_pct")),
                "peak_pss": _ratio(a["memory"]["peak_pss_kb"], b["memory"]["peak_pss_kb"]),
            }
        helpers = {}
        if self.helpers is not None:
            for name, pid in self.helpers.pids().items():
                snap = procstat.tree_snapshot(pid)
                helpers[name] = {"rss_kb": snap["rss_kb"], "pss_kb": snap["pss_kb"]}
        lim = self.limits
        return {
            "schema": SCHEMA,
            "scenario": {"name": sc.name, "path": sc.path, "description": sc.description,
                         "daily_messages": sc.daily_messages, "daily_rate": sc.daily_rate,
                         "mix": self.mix, "load": asdict(sc.load),
                         "thresholds": asdict(sc.thresholds), "quick": self.opts.quick,
                         "sessions": sc.sessions, "pipelining": sc.pipelining},
            "host": host_info(),
            "limits": {"cores": lim.cores, "server_cpus": lim.server_cpus,
                       "load_cpus": lim.load_cpus, "shared": lim.shared,
                       "memory_bytes": lim.memory, "cpus": lim.describe_cpus(),
                       "memory": (self.systems[0].cap.describe() if self.systems
                                  else "no memory cap")},
            "features": self.feats.to_dict() if self.feats else {},
            "corpus": self.corpus or "synthetic",
            "started": started, "finished": time.time(),
            "duration_s": time.time() - started,
            "systems": systems, "ratios": ratios, "helpers": helpers,
            "notes": list(self.notes),
        }


def run_scenario(sc: Scenario, opts: RunOptions) -> dict:
    r = Runner(sc, opts)
    started = time.time()
    try:
        r.start()
        r.warmup()
        r.lab_window()
        if r.sc.load.mode == "fixed":
            r.fixed()
        else:
            r.search()
        r.finish()
        return r.result(started)
    finally:
        r.stop()


# --------------------------------------------------------------------------- helpers

def _ms(v: float | None) -> float | None:
    return None if v is None else 1000.0 * v


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _ratio(a, b) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def _timeline(samples: list[dict], t0: float) -> list[dict]:
    out = []
    prev = None
    for s in samples:
        cpu_pct = None
        if prev is not None and s["t"] > prev["t"]:
            cpu_pct = max(0.0, 100.0 * (s["cpu_s"] - prev["cpu_s"]) / (s["t"] - prev["t"]))
        out.append({"t": round(s["t"] - t0, 3), "cpu_pct": cpu_pct, "rss_kb": s["rss_kb"],
                    "pss_kb": s["pss_kb"], "queue": s["queue"], "procs": s["procs"]})
        prev = s
    return out


def _latency_sample(recs: list[dict], limit: int = 4000) -> list[float]:
    """Up to `limit` latencies (ms) spread over the run, for the plots."""
    lat = [1000.0 * r["latency"] for r in recs]
    if len(lat) <= limit:
        return [round(x, 3) for x in lat]
    step = len(lat) / limit
    return [round(lat[int(i * step)], 3) for i in range(limit)]


def host_info() -> dict:
    from postier import __version__
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pf = None
    try:
        p = subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                           text=True, timeout=10)
        pf = p.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_kb": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "postier": __version__, "postfix": pf, "hostname": platform.node()}
