"""kill -9 during greylist updates: the store reopens and the checker finds
no corruption.

A writer process makes batches of 100,000 updates (greylist decisions,
deletions, expiry passes; the table starts small, so rebuilds happen too)
until it is killed with SIGKILL at a random moment, several times over the
same file.
After each kill the file is checked read-only (a pending journal record
counts as replayed), then opened for writing (which replays it) and checked
again, and `postier greylistd --check-store` must agree.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SRC = os.path.join(ROOT, "src")

WRITER = r"""
import random, sys
kind, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "pure":
    from postier._pure import greystore as gs
else:
    from postier._native import greystore as gs
s = gs.GreyStore(path)
rnd = random.Random(seed)
now = 1_000_000 + seed * 1000
sys.stdout.write("ready\n")
sys.stdout.flush()
i = 0
while True:         # batches of 100,000 updates until killed
    i += 1
    now += rnd.randint(0, 3)
    k = rnd.randint(0, 20_000)
    s.greylist(b"10.%d.0/s%d@x/r@y" % (k % 200, k), b"awl:10.0.%d" % (k % 300), now,
               60, 3600, 3)
    if i % 97 == 0:
        s.delete(b"10.%d.0/s%d@x/r@y" % (k % 200, rnd.randint(0, 20_000)))
    if i % 500 == 0:
        s.maintain(now, 86400, 60, 3600, interval=600, budget=2048)
    if i == 100_000:
        i = 0
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_kill9_never_corrupts(impl, tmp_path):
    gs = impl("greystore")
    path = str(tmp_path / "greylist.db")
    gs.GreyStore(path, nslots=1024).close()
    rnd = random.Random(20240601)
    rounds = 10
    killed_while_running = 0
    for r in range(rounds):
        p = subprocess.Popen([sys.executable, "-c", WRITER, impl.kind, path, str(r)],
                             stdout=subprocess.PIPE, env=_env())
        assert p.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.02, 0.8))
        if p.poll() is None:
            killed_while_running += 1
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        report = gs.check_file(path)                   # read-only, nothing replayed yet
        assert report["ok"], (r, report)
        s = gs.GreyStore(path)                         # a writer: replays the journal
        after = s.check()
        assert after["ok"] and not after["pending_journal"], (r, after)
        assert after["live"] == report["live"]
        s.close()
    assert killed_while_running == rounds
    cli = subprocess.run([sys.executable, "-m", "postier.cli.main", "greylistd",
                          "--check-store", path], capture_output=True, text=True,
                         env=dict(_env(), POSTIER_PURE="1" if impl.kind == "pure" else "0"))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.rstrip().endswith(f"{path}: OK")
