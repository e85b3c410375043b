#!/usr/bin/env python3
"""Run real SpamAssassin over the labeled corpus and store what it says.

    .venv/bin/python tools/sa_reference.py [--corpus ../shared/corpus]
        [--out tests/compat/sa_reference] [--children 2] [--limit N]

What it runs: Debian's `spamd` (SpamAssassin 4.0.1) on 127.0.0.1:PORT with
`-L` (local tests only: no DNS, no network rules), `-x` (no per-user
config) and a private copy of the site configuration directory
(/etc/spamassassin) with one extra file that turns Bayes, auto-learning
and the AWL/TxRep reputation off and adds two headers listing the hits:

    X-Spam-Tests:    _TESTSSCORES(,)_   every scored rule that hit, with its score
    X-Spam-Subtests: _SUBTESTS(,)_      every __SUBRULE that hit, once per hit

So SpamAssassin runs with score set 0, as postier's engine does.  Every
corpus message goes through `spamc` (the real client), several in parallel.

What it stores (small: per-message hit lists, not the messages):

* hits.tsv.gz: one line per message, tab-separated:
  path  label  score  RULE=score,...  __SUB,__SUB*N,...
  (`*N`: the subrule hit N times, SpamAssassin's `tflags multiple`).
* provenance.json: SpamAssassin and Debian package versions, a SHA-256 over
  the rule files read (/usr/share/spamassassin/*.cf, /etc/spamassassin/
  *.cf and *.pre), the extra configuration, the command line, the date.

`Spamd` is also used by bench/test_bench_spam.py (the throughput baseline).
Network: loopback only.  Only the processes this script starts are
stopped, by PID.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import glob
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from peer_process import accepts, free_port, stop_process

from postier.bench.procstat import memory_kb
from postier.master.procs import descendants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
DEFAULT_OUT = os.path.join(ROOT, "tests", "compat", "sa_reference")
SYS_RULES = "/usr/share/spamassassin"
SITE_RULES = "/etc/spamassassin"

# The extra site configuration: score set 0 (no Bayes, no network), no
# reputation plugins, original message kept (report_safe 0), hit lists as headers.
EXTRA_CF = """\
use_bayes 0
bayes_auto_learn 0
use_auto_whitelist 0
report_safe 0
add_header all Tests _TESTSSCORES(,)_
add_header all Subtests _SUBTESTS(,)_
"""


def spamd_available() -> bool:
    return shutil.which("spamd") is not None and shutil.which("spamc") is not None \
        or (os.path.exists("/usr/sbin/spamd") and shutil.which("spamc") is not None)


def spamd_path() -> str:
    return shutil.which("spamd") or "/usr/sbin/spamd"


class Spamd:
    """A private spamd on 127.0.0.1:PORT (foreground child of this process).

        with Spamd(children=2) as sd:
            out = sd.check(message_bytes)      # processed message (bytes)
    """

    def __init__(self, children: int = 2, extra_cf: str = EXTRA_CF, timeout: float = 300.0):
        self.children = children
        self.extra_cf = extra_cf
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.root = ""
        self.started_in = 0.0

    def __enter__(self) -> Spamd:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.root = tempfile.mkdtemp(prefix="postier-spamd-")
        os.chmod(self.root, 0o755)
        site = os.path.join(self.root, "site")
        os.mkdir(site)
        for f in sorted(glob.glob(os.path.join(SITE_RULES, "*.pre"))
                        + glob.glob(os.path.join(SITE_RULES, "*.cf"))):
            shutil.copy(f, site)
        with open(os.path.join(site, "zz_postier_reference.cf"), "w") as f:
            f.write(self.extra_cf)
        home = os.path.join(self.root, "home")
        os.mkdir(home)
        for d in (site, home):
            os.chmod(d, 0o755)
        if os.getuid() == 0:
            shutil.chown(home, "nobody")
        self.port = free_port()
        cmd = [spamd_path(), "-L", "-x", f"--siteconfigpath={site}",
               f"--listen=127.0.0.1:{self.port}", f"--max-children={self.children}",
               f"--min-children={self.children}", f"--min-spare={self.children}",
               f"--max-spare={self.children}", f"--helper-home-dir={home}",
               "--syslog=stderr", "--timeout-child=600"]
        if os.getuid() == 0:
            cmd.append("--username=nobody")
        self.cmd = cmd
        self.log = open(os.path.join(self.root, "spamd.log"), "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = t0 + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spamd exited with {self.proc.returncode}: "
                                   + self.read_log()[-2000:])
            if self._children_ready():
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("spamd did not start in time")
        self.started_in = time.monotonic() - t0

    def _children_ready(self) -> bool:
        return accepts(self.port, 1) and len(descendants(self.proc.pid)) >= self.children

    def read_log(self) -> str:
        try:
            with open(os.path.join(self.root, "spamd.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def pids(self) -> list[int]:
        return [self.proc.pid] + descendants(self.proc.pid) if self.proc else []

    def rss_kb(self) -> int:
        return sum(memory_kb(p)[0] for p in self.pids())

    def check(self, data: bytes, timeout: float = 600.0) -> bytes:
        """The message as spamd returns it (spamc -x: errors raise)."""
        r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(self.port), "-x",
                            "-s", "50000000", "-t", str(int(timeout))],
                           input=data, capture_output=True, timeout=timeout + 10)
        if r.returncode != 0:
            raise RuntimeError(f"spamc exit {r.returncode}: {r.stderr.decode(errors='replace')}")
        return r.stdout

    def stop(self) -> None:
        if self.proc is None:
            return
        kids = descendants(self.proc.pid)
        stop_process(self.proc, 20)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- parsing

def header_values(processed: bytes) -> dict[str, str]:
    """Unfolded header fields of the returned message (first occurrence)."""
    head = processed.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    out: dict[str, str] = {}
    name = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and name is not None:
            out[name] += " " + line.strip().decode("latin-1")
            continue
        k, sep, v = line.partition(b":")
        if not sep:
            name = None
            continue
        name = k.decode("latin-1").lower()
        if name in out:
            name = None
            continue
        out[name] = v.strip().decode("latin-1")
    return out


def parse_result(processed: bytes) -> tuple[float, dict[str, float], dict[str, int]]:
    """(score, {RULE: score}, {__SUB: hits}) from the processed message."""
    h = header_values(processed)
    status = h.get("x-spam-status", "")
    score = 0.0
    for tok in status.replace(",", " ").split():
        if tok.startswith("score="):
            score = float(tok[6:])
    tests: dict[str, float] = {}
    for item in h.get("x-spam-tests", "").replace(" ", "").split(","):
        if item and item != "none":
            k, _, v = item.partition("=")
            tests[k] = float(v) if v else 0.0
    subs: dict[str, int] = {}
    for item in h.get("x-spam-subtests", "").replace(" ", "").split(","):
        if item and item != "none":
            subs[item] = subs.get(item, 0) + 1
    return score, tests, subs


def format_line(path: str, label: str, score: float, tests: dict[str, float],
                subs: dict[str, int]) -> str:
    t = ",".join(f"{k}={v:g}" for k, v in sorted(tests.items()))
    s = ",".join(k if n == 1 else f"{k}*{n}" for k, n in sorted(subs.items()))
    return f"{path}\t{label}\t{score:g}\t{t}\t{s}\n"


def read_reference(path: str) -> list[dict]:
    """Rows of hits.tsv.gz: {path, label, score, tests: {R: s}, subs: {R: n}}."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            p, label, score, t, s = line.rstrip("\n").split("\t")
            tests = {}
            for item in filter(None, t.split(",")):
                k, _, v = item.partition("=")
                tests[k] = float(v)
            subs = {}
            for item in filter(None, s.split(",")):
                k, _, n = item.partition("*")
                subs[k] = int(n) if n else 1
            rows.append({"path": p, "label": label, "score": float(score),
                         "tests": tests, "subs": subs})
    return rows


def rules_digest(paths: list[str] | None = None) -> str:
    """SHA-256 over the names and contents of the rule files SA reads."""
    if paths is None:
        paths = sorted(glob.glob(os.path.join(SYS_RULES, "*.cf"))) + \
            sorted(glob.glob(os.path.join(SITE_RULES, "*.pre"))) + \
            sorted(glob.glob(os.path.join(SITE_RULES, "*.cf")))
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(os.path.basename(p).encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("spamassassin", "spamd", "spamc"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                           text=True)
        out[pkg] = r.stdout.strip() if r.returncode == 0 else "?"
    return out


def corpus_labels(corpus: str) -> list[tuple[str, str]]:
    rows = []
    with open(os.path.join(corpus, "labels.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                rows.append((parts[0], parts[1]))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--children", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--limit", type=int, default=0, help="only the first N messages")
    args = ap.parse_args(argv)
    if not spamd_available():
        print("sa_reference: spamd/spamc not installed (tools/setup.sh --test)", file=sys.stderr)
        return 1
    labels = corpus_labels(args.corpus)
    if args.limit:
        labels = labels[:args.limit]
    os.makedirs(args.out, exist_ok=True)
    results: dict[str, str] = {}
    t0 = time.monotonic()
    with Spamd(children=args.children) as sd:
        print(f"sa_reference: spamd ready on port {sd.port} in {sd.started_in:.1f}s",
              file=sys.stderr)

        def one(item: tuple[str, str]) -> tuple[str, str]:
            path, label = item
            with open(os.path.join(args.corpus, path), "rb") as f:
                data = f.read()
            score, tests, subs = parse_result(sd.check(data))
            return path, format_line(path, label, score, tests, subs)

        with concurrent.futures.ThreadPoolExecutor(args.children) as ex:
            for n, (path, line) in enumerate(ex.map(one, labels), 1):
                results[path] = line
                if n % 200 == 0:
                    print(f"sa_reference: {n}/{len(labels)} "
                          f"({n / (time.monotonic() - t0):.1f} msg/s)", file=sys.stderr)
        spamd_cmd = sd.cmd
    elapsed = time.monotonic() - t0
    out = os.path.join(args.out, "hits.tsv.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(b"# path\tlabel\tscore\tRULE=score,...\t__SUBRULE[*hits],...\n")
        for path, _ in labels:
            f.write(results[path].encode("utf-8"))
    prov = {
        "what": "per-message rule hits and scores from real SpamAssassin (score set 0)",
        "tool": "tools/sa_reference.py",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spamassassin": subprocess.run(["spamassassin", "-V"], capture_output=True,
                                       text=True).stdout.strip().splitlines(),
        "debian_packages": package_versions(),
        "rules_sha256": rules_digest(),
        "rules_dirs": [SYS_RULES, SITE_RULES],
        "extra_cf": EXTRA_CF.splitlines(),
        "spamd_command": [c if not c.startswith(("--siteconfigpath", "--listen",
                                                 "--helper-home-dir")) else
                          c.split("=")[0] + "=..." for c in spamd_cmd],
        "client": "spamc -x -s 50000000 (one process per message)",
        "corpus": "../shared/corpus (labels.tsv order); see its README for provenance",
        "messages": len(labels),
        "seconds": round(elapsed, 1),
    }
    with open(os.path.join(args.out, "provenance.json"), "w") as f:
        json.dump(prov, f, indent=1)
        f.write("\n")
    print(f"sa_reference: {len(labels)} messages in {elapsed:.0f}s -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
