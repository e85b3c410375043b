"""Scenario files (postier.bench.scenario): the shipped ones load; bad ones give file:line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from postier.bench.scenario import find_scenario, list_scenarios, load_scenario, parse_size
from postier.errors import SourceError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

GOOD = """\
[scenario]
name = "t"

[mta]
main_cf = "main.cf"
"""


@pytest.fixture
def sdir(tmp_path):
    (tmp_path / "main.cf").write_text("myhostname = mx.test\n")
    return tmp_path


def write(sdir, text: str) -> str:
    p = sdir / "s.toml"
    p.write_text(text)
    return str(p)


def test_shipped_scenarios_load():
    names = list_scenarios()
    assert {"lab-2005", "relay-plain", "burst"} <= set(names)
    lab = load_scenario(find_scenario("lab-2005"))
    assert lab.daily_messages == 15000
    assert abs(lab.daily_rate - 15000 / 86400) < 1e-9
    assert set(lab.mix) == {"ham", "spam", "virus", "rejected"}
    assert lab.tables == {"client_access": "hash", "transport": "hash"}
    assert lab.features == {"greylist": True, "antivirus": True, "spam": True}
    assert lab.cores == 1 and parse_size(lab.memory) == 256 * 1024 * 1024
    assert lab.corpus == os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))
    burst = load_scenario(find_scenario("burst"))
    assert burst.load.mode == "fixed"
    assert abs(burst.load.rate - 100 * 15000 / 86400) < 1e-9       # "100x"
    plain = load_scenario(find_scenario("relay-plain"))
    assert plain.mix == {"ham": 1.0} and not plain.features


def test_quick_overrides():
    lab = load_scenario(find_scenario("lab-2005"))
    q = lab.quick()
    assert q.load.step_seconds == 2 and q.load.refine_steps == 0 and q.lab_window == 4
    assert lab.load.step_seconds == 8        # the original is untouched


def test_minimal_scenario_defaults(sdir):
    sc = load_scenario(write(sdir, GOOD))
    assert sc.name == "t" and sc.load.mode == "search" and sc.mix == {"ham": 1.0}


@pytest.mark.parametrize("text,line,words", [
    (GOOD + "[load]\nstep_seconds = \n", 7, "bad TOML"),
    (GOOD + "[load]\nstep_seconds = -3\n", 7, "[load] step_seconds: expected a number above 0"),
    (GOOD + "\n[traffic]\nsessions = 2\nbogus = 1\n", 9, "[traffic] bogus: unknown key"),
    (GOOD + "[loads]\nx = 1\n", 6, "unknown section [loads]"),
    (GOOD + "[traffic]\nmix = { ham = 1, phish = 2 }\n", 7, "unknown traffic class 'phish'"),
    (GOOD + "[load]\nmode = \"fixed\"\n", 7, 'mode = "fixed" needs a rate'),
    (GOOD + "[limits]\nmemory = \"lots\"\n", 7, 'expected a size like "256M"'),
    (GOOD + "[greylist]\nretry_after = [5, 1]\n", 7, "expected [low, high] seconds"),
    ("[scenario]\nname = \"t\"\n", 1, "[mta] main_cf is required"),
    ("[scenario]\nname = \"t\"\n[mta]\nmain_cf = \"nope.cf\"\n", 4, "no such file"),
])
def test_bad_scenarios_name_file_and_line(sdir, text, line, words):
    path = write(sdir, text)
    with pytest.raises(SourceError) as ei:
        load_scenario(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}, line {line}: "), msg
    assert words in msg


def test_cli_reports_a_bad_scenario_without_traceback(sdir):
    path = write(sdir, GOOD + "[thresholds]\np99_ms = \"fast\"\n")
    p = subprocess.run([sys.executable, "-m", "postier.cli.main", "bench", path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"postier bench: {path}, line 7: [thresholds] p99_ms: "
                                f"expected a number above 0")


def test_unknown_scenario_name():
    with pytest.raises(SourceError, match="no scenario 'nope'.*lab-2005"):
        find_scenario("nope")


def test_parse_size():
    assert parse_size("256M") == 256 * 2**20 and parse_size("1g") == 2**30
    assert parse_size("512k") == 512 * 1024 and parse_size("100") == 100
    assert parse_size("x") is None and parse_size("-1M") is None
