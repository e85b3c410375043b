"""Regression: `postier bench lab-2005 --memory 256M` on a box without a cgroup v2
memory controller caps each server process with RLIMIT_AS.  With the spam
rules loaded, the smtpd worker's threads each got a glibc malloc arena (64 MB
of address space reserved apiece, MALLOC_ARENA_MAX=2), so the worker ran out
of address space with ~150 MB resident: `std::bad_alloc` (abort, signal 6)
and MemoryError in the content scan ("content scan FAILED", 451), and the
run "sustained" 10 msg/s.  The server environment now allows one arena
(postier.bench.mta.server_env).

The test reads the server's log and output of the quick lab-2005 run under
that cap (the `lab_2005_quick` fixture of tests/conftest.py, shared with
tests/integration/bench/test_cap_run.py): no MemoryError, no abort."""

from __future__ import annotations

import glob
import json
import os

import pytest


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/share/spamassassin/20_body_tests.cf"),
                    reason="SpamAssassin's rules not installed")
def test_lab_2005_with_spam_rules_fits_in_256m(lab_2005_quick):
    p = lab_2005_quick["proc"]
    assert p.returncode == 0, p.stderr[-3000:]
    mta = lab_2005_quick["mta"]
    with open(os.path.join(mta, "maillog"), errors="replace") as f:
        log = f.read()
    with open(os.path.join(mta, "postier.out"), errors="replace") as f:
        out = f.read()
    [res] = glob.glob(str(lab_2005_quick["results"] / "*" / "results.json"))
    with open(res) as f:
        data = json.load(f)
    assert data["features"]["spam"]                 # SpamAssassin's rules were loaded
    assert data["systems"]["postier"]["accounting"]["accepted"] > 0
    assert "MemoryError" not in log and "killed by signal" not in log, \
        [ln for ln in log.splitlines() if "MemoryError" in ln or "killed by" in ln][:5]
    assert "bad_alloc" not in out, out[-2000:]
