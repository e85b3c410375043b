"""regexp: table lookups: one Hyperscan scan + confirm versus the naive
rule-by-rule loop (what Postfix does), and versus real Postfix
(`postmap -q - regexp:FILE` over 10,000 keys) in the same run.

Run: .venv/bin/pytest bench/test_bench_regexp.py   (--benchmark-disable in CI)
No timing assertions: the numbers are reported, not judged.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time

import pytest

from postier.maps import regexp

N_RULES = 500


def make_table(path) -> tuple[str, str, str]:
    """A header_checks-like table; keys that hit the first rule, the last, none."""
    rnd = random.Random(42)
    words = ["viagra", "casino", "lottery", "winner", "pharmacy", "replica", "bitcoin",
             "invoice", "urgent", "password", "account", "verify", "prize", "loan"]
    lines = ["/^Subject:.*\\bfirst-rule-hit\\b/\tREJECT first\n"]
    for i in range(1, N_RULES - 1):
        w = rnd.choice(words)
        kind = i % 4
        if kind == 0:
            lines.append(f"/^Subject:.*{w}{i}/\tREJECT spam {i}\n")
        elif kind == 1:
            lines.append(f"/^From:.*@(mail|smtp){i}\\.{w}\\.example$/\tREJECT from $1 {i}\n")
        elif kind == 2:
            lines.append(f"/^Received:.*\\[10\\.{i % 250}\\.[0-9]+\\.[0-9]+\\]/\tWARN {i}\n")
        else:
            lines.append(f"/^X-Mailer: {w}-{i}( [0-9.]+)?$/\tDISCARD {i}\n")
    lines.append("/^Subject:.*last-rule-hit$/\tREJECT last\n")
    with open(path, "w") as f:
        f.writelines(lines)
    return ("Subject: you are the first-rule-hit today",
            "Subject: this one is the last-rule-hit",
            "Subject: an ordinary message about the weekly meeting")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "header_checks"
    keys = make_table(path)
    return str(path), keys


@pytest.fixture(scope="module", params=["hyperscan", "re2"])
def opened(request, table):
    path, keys = table
    t = regexp.open("regexp", path, warn=print, engine=request.param)
    assert t.engine == request.param
    return request.param, t, keys


@pytest.mark.parametrize("which", ["hit_early", "hit_late", "miss"])
def test_lookup(benchmark, opened, which):
    engine, t, keys = opened
    key = keys[["hit_early", "hit_late", "miss"].index(which)]
    benchmark.group = f"regexp {N_RULES} rules: {which}"
    benchmark.name = engine
    result = benchmark(t.lookup, key)
    assert (result is None) == (which == "miss")


@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
def test_against_postmap(table, capsys):
    path, (early, late, miss) = table
    rnd = random.Random(7)
    keys = [rnd.choice((early, late, miss, miss, miss)) for _ in range(10_000)]
    old = time.time() - 3600
    os.utime(path, (old, old))
    t0 = time.perf_counter()
    p = subprocess.run(["postmap", "-q", "-", f"regexp:{path}"], input="\n".join(keys) + "\n",
                       capture_output=True, text=True)
    t_postmap = time.perf_counter() - t0
    found_postmap = len(p.stdout.splitlines())
    rates = {}
    for engine in ("hyperscan", "re2"):
        t0 = time.perf_counter()
        tab = regexp.open("regexp", path, warn=print, engine=engine)
        found = sum(tab.lookup(k) is not None for k in keys)
        rates[engine] = (len(keys) / (time.perf_counter() - t0), found)
    with capsys.disabled():
        print(f"\n{len(keys)} keys, {N_RULES}-rule regexp table (open + lookups):")
        print(f"  postmap -q -        : {len(keys) / t_postmap:10.0f} keys/s ({found_postmap} found)")
        for engine, (rate, found) in rates.items():
            print(f"  postier {engine:10s} : {rate:10.0f} keys/s ({found} found), "
                  f"{rate / (len(keys) / t_postmap):.2f}x postmap")
    assert all(found == found_postmap for _, found in rates.values())
