"""Shared test fixtures.

`impl`: parametrizes a test over the native module and its pure-Python twin;
use as `def test_x(impl): ht = impl("hashtable")`.  The native side is skipped
(not failed) only when the compiled module is missing, which the README's
setup never leaves so.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Network safety: tests talk to loopback only.  postier's resolver asks these
# servers when a test's main.cf names none (a dead loopback port: lookups fail
# fast, locally), and every postier process a test starts inherits this.
os.environ.setdefault("POSTIER_DNS_NAMESERVERS", "127.0.0.1:9")
SRC = os.path.join(ROOT, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)


@pytest.fixture(params=["native", "pure"])
def impl(request):
    kind = request.param

    def load(name: str):
        if kind == "pure":
            return importlib.import_module(f"postier._pure.{name}")
        try:
            return importlib.import_module(f"postier._native.{name}")
        except ImportError:
            pytest.skip(f"native module {name} not built")

    load.kind = kind
    return load


@pytest.fixture(params=["0", "1"], ids=["native", "pure"])
def pure_env(request, monkeypatch):
    """Run a test (and the subprocesses it starts) with POSTIER_PURE=0 and =1."""
    monkeypatch.setenv("POSTIER_PURE", request.param)
    return request.param


def have_postfix() -> bool:
    return shutil.which("postmap") is not None and shutil.which("postconf") is not None


def pytest_collection_modifyitems(config, items):
    if have_postfix():
        return
    skip = pytest.mark.skip(reason="real Postfix tools not installed (tools/setup.sh --test)")
    for item in items:
        if "postfix" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def spam_rules_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One compiled-rules cache for every test that loads SpamAssassin's rule
    set (a cold compile takes ~40 s of CPU, a warm start ~6 s).
    tools/test.sh points POSTIER_TEST_SPAM_CACHE at one temporary directory
    for the whole run, benchmarks included."""
    d = os.environ.get("POSTIER_TEST_SPAM_CACHE") or str(tmp_path_factory.mktemp("spamrules"))
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="session")
def lab_2005_quick(spam_rules_cache: str, tmp_path_factory: pytest.TempPathFactory):
    """One `postier bench lab-2005 --quick --cores 1 --memory 256M --keep` run
    (with `--compare postfix` when real Postfix and root are there), shared by
    the tests that check it (tests/integration/bench/test_cap_run.py: the
    report; tests/regress: the server's log).  A dict: proc (the
    CompletedProcess), results (its --results directory), mta (the kept
    postier instance: maillog, postier.out), compare (bool)."""
    import glob
    import subprocess
    import tempfile

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from postfix_instance import postfix_available
    compare = postfix_available()
    results = tmp_path_factory.mktemp("lab2005") / "results"
    # the kept work directory must be reachable by the server's unprivileged
    # processes (pytest's own temp tree is not): a 0755 directory in /tmp
    work = tempfile.mkdtemp(prefix="postier_lab2005.")
    os.chmod(work, 0o755)
    # the run compiles SpamAssassin's rules into the shared cache before it
    # starts postier
    env = dict(os.environ, TMPDIR=work, POSTIER_BENCH_SPAM_CACHE=spam_rules_cache)
    argv = [sys.executable, "-m", "postier.cli.main", "bench", "lab-2005", "--quick",
            "--cores", "1", "--memory", "256M", "--keep", "--no-progress",
            "--results", str(results)] + (["--compare", "postfix"] if compare else [])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    mta = glob.glob(os.path.join(work, "postier_bench.*", "postier", "mta"))
    yield {"proc": p, "results": results, "mta": mta[0] if mta else None, "compare": compare}
    shutil.rmtree(work, ignore_errors=True)
