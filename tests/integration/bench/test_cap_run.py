"""`postier bench` end to end: the CLI source/sink pair, and quick scenario runs.

The relay-plain run needs only postier; the lab-2005 run with `--compare
postfix` needs real Postfix and root (skipped otherwise).  Both check
behaviour, never speed: the run finishes, every message answered 250
arrived exactly once, the report files are there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

pytestmark = pytest.mark.slow


def postier(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postier.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_cli_source_to_cli_sink(tmp_path):
    port = free_port()
    rec = tmp_path / "arrivals.tsv"
    sink = subprocess.Popen([sys.executable, "-m", "postier.cli.main", "bench", "sink",
                             f"127.0.0.1:{port}", "--record", str(rec),
                             "--defer-fraction", "0.25", "--seed", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        out = tmp_path / "source.json"
        p = postier("bench", "source", "-s", "4", "-m", "200", "-l", "3000",
                    "--json", str(out), f"127.0.0.1:{port}", timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("messages=200 accepted=")
        data = json.loads(out.read_text())
        accepted = {r["id"] for r in data["records"] if r["outcome"] == "accepted"}
        deferred = [r for r in data["records"] if r["outcome"] == "deferred"]
        assert len(accepted) + len(deferred) == 200 and 20 <= len(deferred) <= 90
    finally:
        sink.terminate()
        so, _ = sink.communicate(timeout=20)
    assert f"mesg=200 accepted={len(accepted)} deferred={len(deferred)}" in so
    got = [ln.split("\t")[1] for ln in rec.read_text().splitlines()]
    assert sorted(got) == sorted(accepted)


def test_source_refuses_non_loopback():
    p = postier("bench", "source", "192.0.2.1:25", timeout=60)
    assert p.returncode == 2
    assert "only loopback addresses" in p.stderr and "Traceback" not in p.stderr


def _check_run(p: subprocess.CompletedProcess, results, systems: list[str]) -> dict:
    assert p.returncode == 0, p.stderr[-3000:]
    dirs = os.listdir(results)
    assert len(dirs) == 1
    out = os.path.join(results, dirs[0])
    assert {"results.json", "report.html"} <= set(os.listdir(out))
    data = json.load(open(os.path.join(out, "results.json")))
    assert list(data["systems"]) == systems
    for name in systems:
        s = data["systems"][name]
        acc = s["accounting"]
        assert acc["accepted"] > 0, name
        assert acc["lost"] == 0, (name, acc["lost_ids"][:10])
        assert acc["unexpected"] == 0
        assert acc["delivered"] == acc["accepted"]
        assert s["steps"] and all(x["messages"] > 0 for x in s["steps"])
        assert s["memory"]["peak_pss_kb"] > 0
        assert s["lab"]["messages"] > 0
    assert "sustained msg/s" in p.stdout and "duplicates" in p.stdout
    return data


def test_relay_plain_quick(tmp_path):
    results = tmp_path / "results"
    p = postier("bench", "relay-plain", "--quick", "--cores", "1", "--no-progress",
                "--results", str(results))
    data = _check_run(p, results, ["postier"])
    s = data["systems"]["postier"]
    assert s["outcomes_by_class"].keys() == {"ham"}
    assert data["limits"]["cores"] == 1


def test_lab_2005_quick_against_postfix(lab_2005_quick):
    # the run (shared with tests/regress) is the conftest fixture's
    if not lab_2005_quick["compare"]:
        pytest.skip("real Postfix and root needed")
    p, results = lab_2005_quick["proc"], lab_2005_quick["results"]
    data = _check_run(p, results, ["postier", "postfix"])
    assert data["ratios"]["sustainable"] is not None
    assert "postier/postfix" in p.stdout
    by = data["systems"]["postier"]["outcomes_by_class"]
    assert by["rejected"].get("accepted", 0) == 0          # refused in the dialog
    if data["features"].get("antivirus"):
        assert by["virus"].get("accepted", 0) == 0         # clamd found EICAR
    if os.path.exists("/usr/share/spamassassin/20_body_tests.cf"):
        assert data["features"]["spam"]                    # SpamAssassin's rules ran
