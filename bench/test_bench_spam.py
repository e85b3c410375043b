"""Spam rule scanning: postier's SpamScanner vs real SpamAssassin (spamd), same run.

Rules: SpamAssassin 4.0.1's own (/usr/share/spamassassin, /etc/spamassassin),
score set 0 on both sides.  Messages: an even sample of ../shared/corpus
(every k-th line of labels.tsv: ham and spam of every source).

test_spam_bench:

1. Start-up: `SpamScanner(...)` in a fresh process with an empty cache
   directory (cold: parse the rules, compile the Hyperscan databases in
   worker processes, fill the cache), and with the filled cache (warm: the
   start of every scanning process of part 2), then gc.collect() and
   gc.freeze() as postier's master does before it forks its smtpd workers
   (the rule set's objects leave the generations that full collections
   walk).  Wall seconds, CPU seconds (the process and its compile workers)
   and peak RSS.
2. Throughput, runs alternating between:
   * postier in-process: one fresh process loads the warm cache and scans
     every message sequentially (SpamScanner.run);
   * postier xN: the same process forks N scanning workers (N = spamd's
     children) that take messages one at a time from one shared pipe, as
     smtpd workers take connections from one listening socket (the kernel
     hands each task to one of them; no dispatcher process in between);
   * postier xN batched: the same, each task a batch of BATCH messages
     (spam_scan_batch_limit's default, 8) scanned by SpamScanner.scan_many,
     phase by phase: what a scanning smtpd process does when scans pile up
     (postier.content.scan.SpamBatcher), as they do in a saturated
     scanner, the state this throughput bench measures.  Each message gets
     the score it gets alone (checked);
   * spamd: Debian's spamd on 127.0.0.1:PORT, started here exactly as
     tools/sa_reference.py does (its Spamd class: -L, private site config,
     N children), fed by spamc (the real client, one process per message)
     from N threads: the same concurrency, the same messages.
   Both sides first scan the same WARMUP other corpus messages (default
   200; none are in the sample), untimed: the bench measures servers that
   have been running for a while, as a mail host's scanners do.  postier
   scans them before forking its workers, which inherit what the first
   scans built lazily (RE2's DFA states, per-value memos), as spamd's
   children inherit the rules its parent compiled; then each worker scans
   every N-th of them again (untimed), as spamd's children have scanned
   theirs: a forked worker's first scans copy the pages they write
   (reference counts, memos, RE2 states), a once-per-worker cost that a
   long-running worker has paid long before.  Without a warm-up
   postier's first few hundred scans cost up to ~20% more CPU each.
   Reported: median msgs/s of each, the ratios (postier xN batched /
   spamd is the fair one, spamd's children being busy all the time too;
   the target is 100x; xN one message at a time is shown too), CPU
   milliseconds per message (user+system
   time of all the scanning side's processes -- postier's workers (the
   parent only waits for them), spamd's parent and children, not spamc nor
   the feeding threads -- less sensitive to this shared box's noise),
   and memory: each side's peak per-process RSS (VmHWM) and the peak of the
   summed PSS of all its processes (spamd parent + children; postier
   parent + workers), sampled every 0.5 s.
test_scan_latency (pytest-benchmark): one SpamScanner.scan() of a
   corpus message in this process.

Printed, and written to bench/results/spam-<timestamp>.json.
Env: POSTIER_BENCH_SMALL=1 (30 messages, 1 run, one cold start: the CI
smoke mode), POSTIER_BENCH_RUNS (default 3),
POSTIER_BENCH_SPAM_MESSAGES (default 300; "all" for the whole corpus),
POSTIER_BENCH_SPAM_WARMUP (default 200, at most the messages outside the
sample: none with "all"),
POSTIER_BENCH_SPAMD_CHILDREN (default 2), POSTIER_BENCH_SPAM_BATCH (default
spam_scan_batch_limit's default).  Skipped when the corpus or
SpamAssassin's rules are absent; the spamd side is skipped when spamd is not
installed.  No timing assertions: every message must get a result from
each side (and postier's verdicts must be SpamAssassin's on the messages
the reference says they agree on).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
for _p in (SRC, os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import sa_reference as SR  # noqa: E402

from postier.bench.procstat import memory_kb  # noqa: E402
from postier.config.params import PARAMS  # noqa: E402
from postier.master.procs import descendants  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")
RUNS = 1 if SMALL else int(os.environ.get("POSTIER_BENCH_RUNS", "3"))
_N = os.environ.get("POSTIER_BENCH_SPAM_MESSAGES", "300").strip()
N_MESSAGES = 30 if SMALL else (0 if _N == "all" else int(_N))
CHILDREN = int(os.environ.get("POSTIER_BENCH_SPAMD_CHILDREN", "2"))
WARMUP = 6 if SMALL else int(os.environ.get("POSTIER_BENCH_SPAM_WARMUP", "200"))
START_RUNS = 1 if SMALL else RUNS
TARGET = 100.0
# the batch of the batched xN runs: spam_scan_batch_limit's default
BATCH = int(os.environ.get("POSTIER_BENCH_SPAM_BATCH", PARAMS["spam_scan_batch_limit"].default))
CORPUS = SR.DEFAULT_CORPUS
REFERENCE = os.path.join(ROOT, "tests", "compat", "sa_reference", "hits.tsv.gz")
RULE_DIRS = [SR.SYS_RULES, SR.SITE_RULES]

RESULTS: dict[str, object] = {}


def _missing() -> str | None:
    if not os.path.exists(os.path.join(CORPUS, "labels.tsv")):
        return f"corpus not found: {CORPUS}/labels.tsv"
    if not os.path.isdir(SR.SYS_RULES) or not any(
            f.endswith(".cf") for f in os.listdir(SR.SYS_RULES)):
        return f"SpamAssassin rules not found: {SR.SYS_RULES}/*.cf"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[bench spam] {text}")


def sample(n: int) -> list[str]:
    """Every k-th corpus message (labels.tsv order), n of them (0: all)."""
    paths = [p for p, _ in SR.corpus_labels(CORPUS)]
    if n <= 0 or n >= len(paths):
        return paths
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def warmup_paths(n: int = WARMUP) -> list[str]:
    """n messages outside the sample, evenly spread over the corpus,
    scanned before timing (both sides)."""
    chosen = set(sample(N_MESSAGES))
    rest = [p for p, _ in SR.corpus_labels(CORPUS) if p not in chosen]
    if n <= 0 or not rest:
        return []
    step = len(rest) / min(n, len(rest))
    return [os.path.join(CORPUS, rest[int(i * step)]) for i in range(min(n, len(rest)))]


# -- memory and CPU of a set of processes -----------------------------------------------

def hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int, reaped: bool = False) -> int:
    """utime+stime (and cutime+cstime when `reaped`: children already waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in fields[11:15 if reaped else 13])


class MemorySampler:
    """Peak of the summed PSS, and peak VmHWM, of `pids()` every `every` s."""

    def __init__(self, pids, every: float = 0.5):
        self.pids = pids
        self.every = every
        self.peak_pss = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        ps = self.pids()
        self.peak_pss = max(self.peak_pss, sum(memory_kb(p)[1] for p in ps))
        self.peak_rss = max([self.peak_rss] + [hwm_kb(p) for p in ps])

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._t.join()


# -- postier: measured in a fresh process ------------------------------------------------

# argv: mode ("start" | "scan") cache_dir; JSON arguments on stdin (the whole
# corpus's paths do not fit in an argument list); prints one JSON line.
CHILD = r'''
import gc, json, os, resource, sys, threading, time
mode, cache, args = sys.argv[1], sys.argv[2], json.load(sys.stdin)
sys.path.insert(0, args["bench"])
from test_bench_spam import MemorySampler, cpu_ticks, hwm_kb

def cpu_s():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

t0, c0 = time.perf_counter(), cpu_s()
from postier.content.spam.scanner import SpamScanner
sc = SpamScanner(directories=args["rules"], cache_dir=cache)
# as postier's master does after building the smtpd settings (the spam engine
# with them) and before forking its workers (master/supervisor.py start): the
# rule set's objects leave the collected generations, so full collections
# stop walking them (and forked workers do not copy their pages)
gc.collect()
gc.freeze()
out = {"start_s": time.perf_counter() - t0, "start_cpu_s": cpu_s() - c0,
       "from_cache": sc.compiled.stats.from_cache, "active": len(sc.compiled.active),
       "start_hwm_kb": hwm_kb(os.getpid())}
if mode == "scan":
    paths, workers = args["paths"], args["workers"]

    def one(p):
        try:
            with open(p, "rb") as f:
                r = sc.run(f.read())
            return p, round(r.score, 3), ""
        except Exception as e:
            return p, None, repr(e)[:200]

    def many(ps):
        # a batch of waiting messages, scanned phase by phase (scan_many), as
        # postier.content.scan.SpamBatcher does when scans pile up
        datas = []
        for p in ps:
            with open(p, "rb") as f:
                datas.append(f.read())
        return [(p, None, repr(v)[:200]) if isinstance(v, Exception) else (p, v.score, "")
                for p, v in zip(ps, sc.scan_many(datas))]

    batch = args.get("batch", 1)
    for p in args["warmup"]:       # lazily built matchers, caches: then fork
        one(p)
    me = os.getpid()
    if workers <= 1:
        with MemorySampler(lambda: [me]) as mem:
            c1, t1 = cpu_s(), time.perf_counter()
            res = [one(p) for p in paths]
            wall, cpu = time.perf_counter() - t1, cpu_s() - c1
    else:
        # N forked scanning processes take their tasks (one message, or a batch)
        # from one pipe, as smtpd workers take connections from one listening
        # socket: the kernel hands each 4-byte read to one of them; no
        # dispatcher in between (a multiprocessing Pool cost its parent
        # ~0.2 ms of CPU per message in IPC: harness cost, not postier's)
        import struct
        import tempfile
        n = len(paths)
        starts = list(range(0, n, batch))
        task_r, task_w = os.pipe()
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        quit_r, quit_w = os.pipe()
        tmp = tempfile.mkdtemp(prefix="spambench")
        kids = []
        for w in range(workers):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for fd in (task_w, ready_r, go_w, quit_w):
                        os.close(fd)
                    # this worker's share of the warm-up too, as spamd's children
                    # get theirs: a forked worker's first scans copy the pages they
                    # write (refcounts, memos, RE2 states), a once-per-worker cost
                    for p in args["warmup"][w::workers]:
                        one(p)
                    os.write(ready_w, b"r")
                    os.read(go_r, 1)
                    c1 = cpu_s()
                    mine = []
                    while True:
                        b = os.read(task_r, 4)
                        if not b:
                            break
                        i = struct.unpack("=I", b)[0]
                        ps = paths[i:i + batch]
                        mine.extend(many(ps) if batch > 1 else [one(ps[0])])
                    done = time.perf_counter()
                    with open(os.path.join(tmp, f"{w}.json"), "w") as f:
                        json.dump({"results": mine, "cpu_s": cpu_s() - c1, "done": done}, f)
                    code = 0
                except BaseException:
                    import traceback
                    traceback.print_exc()       # (os._exit below prints nothing)
                    raise
                finally:
                    os.write(ready_w, b"d")
                    os.read(quit_r, 1)      # stay (and be measured) until all are done
                    os._exit(code)
            kids.append(pid)
        for fd in (task_r, ready_w, go_r, quit_r):
            os.close(fd)
        for _ in kids:
            assert os.read(ready_r, 1) == b"r", "a worker failed in its warm-up"
        for i in starts:                   # (a pipe holds 16384 of them)
            os.write(task_w, struct.pack("=I", i))
        os.close(task_w)
        with MemorySampler(lambda: [me] + kids) as mem:
            t1 = time.perf_counter()
            os.write(go_w, b"g" * workers)
            for _ in kids:
                os.read(ready_r, 1)
        os.close(quit_w)
        for k in kids:
            os.waitpid(k, 0)
        parts = []
        for w in range(workers):
            path = os.path.join(tmp, f"{w}.json")
            if not os.path.exists(path):
                raise RuntimeError(f"scanning worker {w} failed (its traceback is above)")
            with open(path) as f:
                parts.append(json.load(f))
            os.unlink(path)
        os.rmdir(tmp)
        res = [tuple(x) for part in parts for x in part["results"]]
        # scanning processes only: the parent just waits (as a dispatcher, spamc
        # and the feeding threads are not counted on spamd's side)
        wall = max(part["done"] for part in parts) - t1
        cpu = sum(part["cpu_s"] for part in parts)
    out.update(results=res, wall_s=wall, cpu_s=cpu, peak_pss_kb=mem.peak_pss,
               peak_rss_kb=mem.peak_rss)
print(json.dumps(out))
'''


def run_child(mode: str, cache: str, **args) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    args.setdefault("rules", RULE_DIRS)
    if "warmup" not in args:           # (reads the corpus: only when needed)
        args["warmup"] = warmup_paths()
    args["bench"] = HERE
    p = subprocess.run([sys.executable, "-c", CHILD, mode, cache], input=json.dumps(args),
                       capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode:
        raise RuntimeError(f"postier {mode}: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- spamd ------------------------------------------------------------------------------

def spamd_pass(sd: SR.Spamd, paths: list[str], threads: int) -> dict:
    """Every message through spamc from `threads` threads: rate, CPU, memory, scores."""
    def one(p: str) -> tuple[str, float | None, str]:
        with open(p, "rb") as f:
            data = f.read()
        try:
            out = sd.check(data)
        except (RuntimeError, subprocess.SubprocessError) as e:
            return p, None, str(e)[:200]
        if "x-spam-status" not in SR.header_values(out):
            return p, None, "no X-Spam-Status in spamd's answer"
        return p, SR.parse_result(out)[0], ""

    parent = sd.proc.pid
    tk = os.sysconf("SC_CLK_TCK")

    def cpu() -> int:   # parent (+ reaped children: spamd replaces a child after
        #                 max-conn-per-child connections) + live children
        return cpu_ticks(parent, reaped=True) + sum(cpu_ticks(k) for k in descendants(parent))
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, warmup_paths()))
    with MemorySampler(sd.pids) as mem:
        c0 = cpu()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            res = list(ex.map(one, paths))
        wall = time.perf_counter() - t0
        c = (cpu() - c0) / tk
    return {"results": res, "wall_s": wall, "cpu_s": c, "peak_pss_kb": mem.peak_pss,
            "peak_rss_kb": mem.peak_rss}


# -- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def save_results():
    yield
    if not RESULTS:
        return
    d = os.path.join(HERE, "results")
    os.makedirs(d, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(d, f"spam-{stamp}.json"), "w") as f:
        json.dump({"small": SMALL, "runs": RUNS, "children": CHILDREN, **RESULTS}, f,
                  indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A filled cache directory, and the cold start(s) that filled it."""
    colds = []
    cache = ""
    for i in range(START_RUNS):
        cache = str(tmp_path_factory.mktemp(f"spamcache{i}"))
        colds.append(run_child("start", cache))
    return cache, colds


@pytest.fixture(scope="module")
def reference_scores() -> dict[str, float]:
    """SpamAssassin's score per corpus path (sum of its hits), when the reference exists."""
    if not os.path.exists(REFERENCE):
        return {}
    return {r["path"]: round(sum(r["tests"].values()), 3) for r in SR.read_reference(REFERENCE)}


# -- tests --------------------------------------------------------------------------------

def _check_postier(r: dict, paths: list[str]) -> None:
    """Every message got a score, none an error."""
    assert sorted(p for p, _, _ in r["results"]) == sorted(paths)
    errors = [(p, e) for p, s, e in r["results"] if e or s is None]
    assert not errors, errors[:5]


def _summary(runs: list[dict], n: int) -> dict:
    rates = [n / r["wall_s"] for r in runs]
    return {"msgs_per_s": round(statistics.median(rates), 2), "rates": [round(x, 2) for x in rates],
            "cpu_ms_per_msg": round(statistics.median(1000 * r["cpu_s"] / n for r in runs), 2),
            "peak_pss_kb": max(r["peak_pss_kb"] for r in runs),
            "peak_rss_kb": max(r["peak_rss_kb"] for r in runs)}


def _start_summary(runs: list[dict]) -> dict:
    return {"start_s": round(statistics.median(x["start_s"] for x in runs), 2),
            "start_cpu_s": round(statistics.median(x["start_cpu_s"] for x in runs), 2),
            "peak_rss_kb": max(x["start_hwm_kb"] for x in runs), "samples": len(runs)}


def test_spam_bench(warm_cache, reference_scores, capsys):
    """Start-up (cold, warm) and throughput vs spamd: see the module docstring."""
    cache, colds = warm_cache
    rel = sample(N_MESSAGES)
    paths = [os.path.join(CORPUS, p) for p in rel]
    n = len(paths)
    sd = None
    if SR.spamd_available():
        sd = SR.Spamd(children=CHILDREN)
        sd.start()
    try:
        po1, poN, poB, spd = [], [], [], []
        for _ in range(RUNS):
            r = run_child("scan", cache, paths=paths, workers=1)
            _check_postier(r, paths)
            po1.append(r)
            r = run_child("scan", cache, paths=paths, workers=CHILDREN)
            _check_postier(r, paths)
            poN.append(r)
            r = run_child("scan", cache, paths=paths, workers=CHILDREN, batch=BATCH)
            _check_postier(r, paths)
            poB.append(r)
            if sd is not None:
                s = spamd_pass(sd, paths, CHILDREN)
                errors = [(p, e) for p, sc, e in s["results"] if e or sc is None]
                assert not errors, errors[:5]
                assert [p for p, _, _ in s["results"]] == paths
                spd.append(s)
        spamd_start = sd.started_in if sd else None
    finally:
        if sd is not None:
            sd.stop()
    # postier's verdicts where it is known to agree with SpamAssassin (the
    # reference's score): a behavioural check that the bench scanned for real
    scores = {os.path.relpath(p, CORPUS): s for p, s, _ in po1[0]["results"]}
    # a batch gives every message the score it gets alone
    assert {os.path.relpath(p, CORPUS): s for p, s, _ in poB[0]["results"]} == scores
    if reference_scores:
        same_verdict = sum((scores[p] >= 5.0) == (reference_scores[p] >= 5.0) for p in rel)
        assert same_verdict >= 0.95 * n, (same_verdict, n)
    if spd:
        sa = {os.path.relpath(p, CORPUS): s for p, s, _ in spd[0]["results"]}
        spamd_same = sum((scores[p] >= 5.0) == (sa[p] >= 5.0) for p in rel)
        assert spamd_same >= 0.95 * n, (spamd_same, n)
    # start-up: the cold runs filled the cache; every scanning child started warm
    warms = po1 + poN + poB
    assert all(not c["from_cache"] for c in colds), colds
    assert all(w["from_cache"] for w in warms), [w["start_s"] for w in warms]
    assert len({c["active"] for c in colds + warms}) == 1
    start = {"cold": _start_summary(colds), "warm": _start_summary(warms),
             "active_rules": colds[0]["active"]}
    RESULTS["start"] = start
    c, w = start["cold"], start["warm"]
    lines = [f"SpamScanner start ({start['active_rules']} active rules; median of "
             f"{c['samples']} cold, {w['samples']} warm): cold {c['start_s']:.1f} s wall / "
             f"{c['start_cpu_s']:.1f} s CPU (incl. compile workers), warm {w['start_s']:.1f} s "
             f"wall / {w['start_cpu_s']:.1f} s CPU; peak RSS cold "
             f"{c['peak_rss_kb'] / 1024:.0f} MB, warm {w['peak_rss_kb'] / 1024:.0f} MB"]
    warm = len(warmup_paths())
    out = {"messages": n, "warmup": warm, "batch": BATCH, "postier_1": _summary(po1, n),
           f"postier_{CHILDREN}": _summary(poN, n),
           f"postier_{CHILDREN}_batched": _summary(poB, n)}
    lines.append(f"throughput over {n} corpus messages after {warm} others (untimed, both "
                 f"sides), median of {RUNS} run(s), {CHILDREN} workers/children:")
    for key, label in (("postier_1", "postier in-process"),
                       (f"postier_{CHILDREN}", f"postier x{CHILDREN} processes"),
                       (f"postier_{CHILDREN}_batched", f"postier x{CHILDREN}, batches of {BATCH}")):
        s = out[key]
        lines.append(f"  {label:26} {s['msgs_per_s']:8.1f} msg/s  {s['cpu_ms_per_msg']:7.2f} "
                     f"ms CPU/msg  peak RSS/process {s['peak_rss_kb'] / 1024:5.0f} MB  "
                     f"peak PSS total {s['peak_pss_kb'] / 1024:5.0f} MB")
    if spd:
        s = out["spamd"] = _summary(spd, n)
        out["spamd"]["start_s"] = round(spamd_start, 1)
        lines.append(f"  {f'spamd x{CHILDREN} + spamc':26} {s['msgs_per_s']:8.1f} msg/s  "
                     f"{s['cpu_ms_per_msg']:7.2f} ms CPU/msg  peak RSS/process "
                     f"{s['peak_rss_kb'] / 1024:5.0f} MB  peak PSS total "
                     f"{s['peak_pss_kb'] / 1024:5.0f} MB  (start {spamd_start:.1f} s)")
        fair = out[f"postier_{CHILDREN}_batched"]["msgs_per_s"] / s["msgs_per_s"]
        unbatched = out[f"postier_{CHILDREN}"]["msgs_per_s"] / s["msgs_per_s"]
        single = out["postier_1"]["msgs_per_s"] / s["msgs_per_s"]
        cpu = s["cpu_ms_per_msg"] / out[f"postier_{CHILDREN}_batched"]["cpu_ms_per_msg"]
        out["ratio"] = {"postier_n_vs_spamd": round(fair, 2),
                        "postier_n_unbatched_vs_spamd": round(unbatched, 2),
                        "postier_1_vs_spamd": round(single, 2),
                        "cpu_per_msg_spamd_over_postier": round(cpu, 2), "target": TARGET}
        lines.append(f"  ratio postier x{CHILDREN} / spamd x{CHILDREN} = {fair:.1f}x with "
                     f"batches of {BATCH} (target {TARGET:.0f}x: "
                     f"{'met' if fair >= TARGET else 'NOT met'}), {unbatched:.1f}x one message "
                     f"at a time; postier in-process / spamd = {single:.1f}x; CPU per message "
                     f"spamd / postier batched = {cpu:.1f}x")
    else:
        lines.append("  spamd not installed (Debian packages spamd, spamc): not compared")
    RESULTS["throughput"] = out
    report(capsys, "\n".join(lines))


def test_scan_latency(benchmark, warm_cache, reference_scores):
    """pytest-benchmark: one SpamScanner.scan() of a corpus message, in this process."""
    from postier.content.spam.scanner import SpamScanner
    cache, _ = warm_cache
    sc = SpamScanner(directories=RULE_DIRS, cache_dir=cache)
    rel = sample(N_MESSAGES)[len(sample(N_MESSAGES)) // 2]
    with open(os.path.join(CORPUS, rel), "rb") as f:
        data = f.read()
    v = benchmark.pedantic(lambda: sc.scan(data), rounds=5 if SMALL else 50, iterations=1)
    assert sc.compiled.stats.from_cache
    assert isinstance(v.score, float) and v.required == 5.0
    if rel in reference_scores:
        assert v.is_spam == (reference_scores[rel] >= 5.0), (rel, v, reference_scores[rel])
