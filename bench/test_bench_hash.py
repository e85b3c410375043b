"""`hash:` tables: build and lookup speed, shared memory, and the same work
done by the real Postfix postmap (Berkeley DB) in the same run.

Sizes: 1,000,000 keys and 100,000 `-q -` queries by default;
POSTIER_BENCH_SMALL=1 selects 10,000 keys / 1,000 queries (CI smoke mode:
`pytest bench --benchmark-disable`).  Nothing here asserts timing: the
numbers (and postier/postmap ratios) are printed and stored in the
benchmark's extra_info.  Behaviour checks only: both tools give identical
`-q -` output, and readers of one table share its pages.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from postier.maps import hash as hash_map  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "") not in ("", "0")
N_KEYS = 10_000 if SMALL else 1_000_000
N_QUERIES = 1_000 if SMALL else 100_000
BATCH = 1_000 if SMALL else 10_000
POSTMAP = shutil.which("postmap")

RESULTS: dict[str, float] = {}


def key(i: int) -> str:
    return f"user{i}@domain{i % 5000}.example.com"


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[bench hash] {text}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_hash")
    src = d / "table"
    with open(src, "w") as f:
        f.write("".join(f"{key(i)}\tOK value {i}\n" for i in range(N_KEYS)))
    rnd = random.Random(2)
    queries = [key(rnd.randrange(2 * N_KEYS)) for _ in range(N_QUERIES)]   # ~half hit
    (d / "queries").write_text("".join(q + "\n" for q in queries))
    return d


@pytest.fixture(scope="module")
def built(workdir):
    name = str(workdir / "table")
    hash_map.build_from_source(name, open(name, "rb").read())
    return name


def env(pure: bool) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=SRC, POSTIER_PURE="1" if pure else "0")


POSTIER = [sys.executable, "-m", "postier.cli.main", "map"]


# ------------------------------------------------------------------ in-process

@pytest.mark.parametrize("impl", ["native", "pure"])
def test_build(benchmark, workdir, impl, capsys, monkeypatch):
    monkeypatch.setenv("POSTIER_PURE", "1" if impl == "pure" else "0")
    name = str(workdir / f"build_{impl}")
    shutil.copy(workdir / "table", name)
    data = open(name, "rb").read()
    benchmark.pedantic(hash_map.build_from_source, args=(name, data), rounds=1,
                       iterations=1, warmup_rounds=0)
    size = os.path.getsize(name + ".db")
    benchmark.extra_info["table_bytes"] = size
    report(capsys, f"{impl} build of {N_KEYS} keys: table {size / 1e6:.1f} MB")


@pytest.mark.parametrize("impl", ["native", "pure"])
@pytest.mark.parametrize("kind", ["hits", "misses"])
def test_lookup(benchmark, built, impl, kind, monkeypatch):
    monkeypatch.setenv("POSTIER_PURE", "1" if impl == "pure" else "0")
    table = hash_map._impl().HashTable(built + ".db")
    rnd = random.Random(1)
    base = 0 if kind == "hits" else N_KEYS
    keys = [key(base + rnd.randrange(N_KEYS)).encode() for _ in range(BATCH)]
    get = table.get

    def run():
        return sum(1 for k in keys if get(k) is not None)

    found = benchmark(run)
    assert found == (BATCH if kind == "hits" else 0)
    benchmark.extra_info["lookups_per_round"] = BATCH
    table.close()


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_map_lookup_str(benchmark, built, impl, monkeypatch):
    """The Map API smtpd uses: str key, folding, str value."""
    monkeypatch.setenv("POSTIER_PURE", "1" if impl == "pure" else "0")
    m = hash_map.open("hash", built)
    rnd = random.Random(4)
    keys = [key(rnd.randrange(2 * N_KEYS)).upper() for _ in range(BATCH)]   # ~half hit
    lookup = m.lookup
    found = benchmark(lambda: sum(1 for k in keys if lookup(k) is not None))
    assert 0 < found < BATCH
    benchmark.extra_info["lookups_per_round"] = BATCH


# ------------------------------------------------------------------ shared memory

READER = r"""
import sys
from postier import native
t = native.load("hashtable").HashTable(sys.argv[1])
n = sum(1 for k, _ in t.items() if t.get(k) is not None)
print(n, flush=True)
sys.stdin.read()
"""


def mapping_pss_kb(pid: int, path: str) -> tuple[int, int]:
    """(PSS of the mapping of `path`, total PSS) in kB for process `pid`."""
    mapped = 0
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                inside = line.rstrip().endswith(path)
            elif inside and first == "Pss:":
                mapped += int(line.split()[1])
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                total = int(line.split()[1])
    return mapped, total


def test_readers_share_one_copy(built, capsys):
    path = os.path.realpath(built + ".db")
    size_kb = os.path.getsize(path) // 1024
    procs = [subprocess.Popen([sys.executable, "-c", READER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env(False))
             for _ in range(4)]
    try:
        counts = [int(p.stdout.readline()) for p in procs]
        assert counts == [N_KEYS] * 4
        pss = [mapping_pss_kb(p.pid, path) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    table_pss = sum(m for m, _ in pss)
    report(capsys, f"4 readers of a {size_kb / 1024:.1f} MiB table: PSS of the table mapping "
           f"{[round(m / 1024, 1) for m, _ in pss]} MiB = {table_pss / 1024:.1f} MiB in all "
           f"({table_pss / size_kb:.2f}x the table); whole-process PSS "
           f"{[round(t / 1024, 1) for _, t in pss]} MiB")
    # every page is mapped shared from the page cache: four readers together
    # account for one copy (PSS splits shared pages), not four
    assert table_pss <= size_kb * 1.1 + 64


# ------------------------------------------------------------------ against Postfix

def timed(argv: list[str], cwd, stdin=None, environ=None) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, stdin=stdin, capture_output=True, env=environ)
    elapsed = time.perf_counter() - t0
    assert p.returncode in (0, 1), p.stderr
    return elapsed, p.stdout


@pytest.mark.postfix
@pytest.mark.skipif(POSTMAP is None, reason="postmap not installed")
def test_build_vs_postmap(workdir, capsys):
    for who in ("postfix", "native", "pure"):
        d = workdir / f"cmp_{who}"
        d.mkdir(exist_ok=True)
        shutil.copy(workdir / "table", d / "table")
    pf, _ = timed([POSTMAP, "hash:table"], workdir / "cmp_postfix")
    nat, _ = timed(POSTIER + ["hash:table"], workdir / "cmp_native", environ=env(False))
    pure, _ = timed(POSTIER + ["hash:table"], workdir / "cmp_pure", environ=env(True))
    RESULTS.update(build_postmap=pf, build_native=nat, build_pure=pure)
    pf_size = os.path.getsize(workdir / "cmp_postfix" / "table.db")
    our_size = os.path.getsize(workdir / "cmp_native" / "table.db")
    assert our_size == os.path.getsize(workdir / "cmp_pure" / "table.db")
    report(capsys, f"build {N_KEYS} keys: postmap {pf:.2f} s ({pf_size / 1e6:.1f} MB), "
           f"postier map {nat:.2f} s ({our_size / 1e6:.1f} MB) = {pf / nat:.2f}x postmap's "
           f"speed; pure twin {pure:.2f} s = {pf / pure:.2f}x")


@pytest.mark.postfix
@pytest.mark.skipif(POSTMAP is None, reason="postmap not installed")
def test_query_stdin_vs_postmap(workdir, capsys):
    if not (workdir / "cmp_postfix" / "table.db").exists():
        test_build_vs_postmap(workdir, capsys)
    q = workdir / "queries"
    with open(q, "rb") as f:
        pf, pf_out = timed([POSTMAP, "-q", "-", "hash:table"], workdir / "cmp_postfix", f)
    with open(q, "rb") as f:
        nat, nat_out = timed(POSTIER + ["-q", "-", "hash:table"], workdir / "cmp_native", f,
                             env(False))
    with open(q, "rb") as f:
        pure, pure_out = timed(POSTIER + ["-q", "-", "hash:table"], workdir / "cmp_pure", f,
                               env(True))
    assert nat_out == pf_out == pure_out          # same answers, same order
    hits = pf_out.count(b"\n")
    report(capsys, f"-q - over {N_QUERIES} keys ({hits} hits): postmap {pf:.3f} s, "
           f"postier map {nat:.3f} s = {pf / nat:.2f}x postmap's speed; "
           f"pure twin {pure:.3f} s = {pf / pure:.2f}x")
