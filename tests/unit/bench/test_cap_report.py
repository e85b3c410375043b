"""Reports (postier.bench.report): JSON schema, files written, table, `bench compare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _results import result  # noqa: E402

from postier.bench.report import (  # noqa: E402
    PLOT_SIZE,
    PLOTS,
    REQUIRED_KEYS,
    compare,
    compare_text,
    load_result,
    terminal_table,
    write_report,
)
from postier.errors import SourceError  # noqa: E402


def png_size(path: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.mark.slow
def test_write_report_files_and_schema(tmp_path):
    pytest.importorskip("matplotlib")
    r = result()
    out = write_report(r, str(tmp_path), stamp="20260101-000000")
    assert out == str(tmp_path / "lab-2005-20260101-000000")
    names = set(os.listdir(out))
    assert names == {"results.json", "report.html", *PLOTS}
    for p in PLOTS:
        assert png_size(os.path.join(out, p)) == PLOT_SIZE
    data = load_result(out)
    for k in REQUIRED_KEYS:
        assert k in data
    assert data["files"]["plots"] == list(PLOTS)
    pf = data["systems"]["postfix"]
    assert pf["summary"]["sustainable_per_s"] == 20.0
    assert {"lab", "memory", "accounting", "steps", "timeline"} <= set(pf)
    html = open(os.path.join(out, "report.html")).read()
    for p in PLOTS:
        assert f'src="{p}"' in html
    assert "lab-2005" in html and "2.00x" in html          # the sustained ratio
    # a second report in the same second gets its own directory
    assert write_report(r, str(tmp_path), stamp="20260101-000000").endswith("-2")


def test_terminal_table_numbers():
    text = terminal_table(result(40.0, 20.0))
    lines = {ln.split("  ")[0]: ln for ln in text.splitlines()}
    assert "40.0" in lines["sustained msg/s"] and "20.0" in lines["sustained msg/s"]
    assert lines["sustained msg/s"].rstrip().endswith("2.00x")
    assert "3,456,000" in lines["messages/day"] and "1,728,000" in lines["messages/day"]
    assert "0.15%" in lines["CPU % at real load (15,000/day)"]
    assert "58.6" in lines["peak PSS, all processes (MB)"]
    assert "note: spam rules skipped: test" in text


def test_terminal_table_reports_loss():
    r = result(postfix_rate=None)
    acc = r["systems"]["postier"]["accounting"]
    acc["lost"], acc["lost_ids"] = 2, ["postier-s1-4", "postier-s1-9"]
    text = terminal_table(r)
    assert "postier: LOST 2 accepted messages, e.g. postier-s1-4, postier-s1-9" in text
    assert "postier/postfix" not in text


def test_compare_two_runs(tmp_path):
    a, b = result(40.0, 20.0), result(60.0, 20.0)
    rows = {(x["system"], x["metric"]): x for x in compare(a, b)}
    x = rows[("postier", "sustained msg/s")]
    assert (x["a"], x["b"], x["ratio"], x["better"]) == (40.0, 60.0, 1.5, True)
    assert rows[("postfix", "sustained msg/s")]["ratio"] == 1.0
    assert rows[("postfix", "sustained msg/s")]["better"] is None
    text = compare_text(a, b)
    assert "postier: sustained msg/s" in text and "1.50x  better" in text
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    p = subprocess.run([sys.executable, "-m", "postier.cli.main", "bench", "compare",
                        str(pa), str(pb)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "1.50x  better" in p.stdout
    p = subprocess.run([sys.executable, "-m", "postier.cli.main", "bench", "compare",
                        "--json", str(pa), str(pb)], capture_output=True, text=True, timeout=60)
    assert json.loads(p.stdout)[0]["system"] == "postier"


def test_compare_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "postier-bench/1",\n "x": }\n')
    with pytest.raises(SourceError, match=r"bad.json, line 2: not JSON"):
        load_result(str(bad))
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(SourceError, match="not a postier bench result"):
        load_result(str(other))
    p = subprocess.run([sys.executable, "-m", "postier.cli.main", "bench", "compare",
                        str(bad), str(other)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"postier bench compare: {bad}, line 2: not JSON")
