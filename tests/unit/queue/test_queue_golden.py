"""Golden files for the queue listings: tests/golden/queue/*.in -> *.ref.

Each .in describes a queue (see _queue_spec.py); the queue is built with
QueueWriter and the queue manager's defer-log records, the command runs
in-process with TZ=UTC (and, for qshape, the spec's clock), and stdout must
equal the .ref byte for byte.  Every .ref was produced by real Postfix 3.7.11
on the same messages (tests/integration/queue/postfix_oracle.py; the slow
test tests/integration/queue/test_queue_postfix_oracle.py re-checks that).
"""

from __future__ import annotations

import glob
import os

import pytest
from _queue_spec import build_postier, load_spec, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GOLDEN = sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "queue", "*.in")))


def with_config(command: list[str], confdir: str) -> list[str]:
    if command[0] == "queue":
        return command[:2] + ["-c", confdir] + command[2:]
    return [command[0], "-c", confdir] + command[1:]


def test_goldens_exist():
    names = {os.path.basename(p)[:-3] for p in GOLDEN}
    assert {"mailq_mixed", "mailq_json", "mailq_empty", "qshape_deferred"} <= names
    for p in GOLDEN:
        assert os.path.exists(p[:-3] + ".ref"), p


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: os.path.basename(p)[:-3])
def test_golden(path, tmp_path, monkeypatch, utc):
    header, spec = load_spec(path)
    assert "Confirmed" in header, "a golden's header says how it was confirmed"
    confdir, _ = build_postier(spec, str(tmp_path))
    rc, out, err = run_cli(with_config(spec["command"], confdir), monkeypatch,
                           now=spec.get("now"))
    with open(path[:-3] + ".ref", encoding="utf-8") as f:
        want = f.read()
    assert rc == 0, err
    assert out == want
    expected_warnings = [m for m in spec["messages"] if "raw" in m]
    if not expected_warnings and spec["command"][0] == "queue":
        assert err == ""
