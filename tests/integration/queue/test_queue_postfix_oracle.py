"""The queue tools against real Postfix 3.7.11 on the same queue (slow).

* every golden (tests/golden/queue/*.in): real postqueue -p/-j or qshape on
  the same messages written as Postfix queue files gives the .ref
  (postfix_oracle.py explains the set-up and the one normalisation);
* postsuper: the same operations on the same queue give the same stderr,
  the same exit status and the same result (which queue each message is in,
  which defer logs remain).  postier's requeue target is `incoming` where
  Postfix's is `maildrop` (docs/compat.md); the comparison maps one to the
  other.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "queue"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from _queue_spec import build_postfix, build_postier, load_spec  # noqa: E402
from postfix_instance import PostfixInstance, postfix_available  # noqa: E402
from postfix_oracle import GOLDEN_DIR, run_postfix  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postfix,
              pytest.mark.skipif(not postfix_available(),
                                 reason="needs root and the postfix package")]

POSTIER = os.path.join(ROOT, ".venv", "bin", "postier")
GOLDEN = sorted(glob.glob(os.path.join(GOLDEN_DIR, "*.in")))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: os.path.basename(p)[:-3])
def test_golden_matches_postfix(path):
    _, spec = load_spec(path)
    with open(path[:-3] + ".ref") as f:
        assert run_postfix(spec) == f.read()


A, B, C, D, E = ("6B0A6C7900000001", "6B0A6C7900000002", "6B0A6C7900000003",
                 "6B0A6C7900000004", "6B0A6C7900000005")
SPEC = {"messages": [
    {"queue": "deferred", "id": A, "arrival": 1795844942, "size": 300, "sender": "a@x.test",
     "recipients": ["r1@remote.test"], "defer": [["r1@remote.test", "deferred transport"]]},
    {"queue": "deferred", "id": B, "arrival": 1795844943, "size": 300, "sender": "b@x.test",
     "recipients": ["r2@remote.test"], "defer": [["r2@remote.test", "deferred transport"]]},
    {"queue": "incoming", "id": C, "arrival": 1795844944, "size": 300, "sender": "",
     "recipients": ["r3@remote.test"]},
    {"queue": "hold", "id": D, "arrival": 1795844945, "size": 300, "sender": "d@x.test",
     "recipients": ["r4@remote.test"]},
    {"queue": "active", "id": E, "arrival": 1795844946, "size": 300, "sender": "e@x.test",
     "recipients": ["r5@remote.test"]},
]}

# (postsuper arguments, postier queue arguments, standard input)
CASES = [
    (["-d", A], ["delete", A], ""),
    (["-d", "NOSUCH"], ["delete", "NOSUCH"], ""),
    (["-d", "-"], ["delete", "-"], f"{A}\nbad/x\nNOSUCH\n{D}\n"),
    (["-d", "ALL", "deferred"], ["delete", "ALL", "deferred"], ""),
    (["-d", "ALL"], ["delete", "ALL"], ""),
    (["-d", "ALL", "deffered"], ["delete", "ALL", "deffered"], ""),
    (["-h", A], ["hold", A], ""),
    (["-h", D], ["hold", D], ""),
    (["-h", "bad/x"], ["hold", "bad/x"], ""),
    (["-h", "ALL"], ["hold", "ALL"], ""),
    (["-h", "ALL", "deferred"], ["hold", "ALL", "deferred"], ""),
    (["-H", D], ["release", D], ""),
    (["-H", A], ["release", A], ""),
    (["-H", "ALL"], ["release", "ALL"], ""),
    (["-r", D], ["requeue", D], ""),
    (["-r", "ALL", "deferred"], ["requeue", "ALL", "deferred"], ""),
]


def state(qdir: str, requeue_dir: str) -> tuple[dict[str, str], set[str]]:
    where = {}
    for q in ("maildrop", "incoming", "active", "deferred", "hold"):
        for name in os.listdir(os.path.join(qdir, q)):
            if not name.startswith("."):
                where[name] = "REQUEUED" if q == requeue_dir and name != C else q
    return where, set(os.listdir(os.path.join(qdir, "defer")))


@pytest.mark.parametrize("pf_args,px_args,stdin", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_postsuper_same_as_postfix(pf_args, px_args, stdin, tmp_path):
    with PostfixInstance() as pf:
        pf.write_config({"hash_queue_names": "flush", "maillog_file": ""})
        build_postfix(SPEC, pf.queue, 0)
        p = subprocess.run(["postsuper", "-c", pf.etc] + pf_args, input=stdin,
                           capture_output=True, text=True)
        want = (p.returncode, p.stderr, state(pf.queue, "maildrop"))
    confdir, qdir = build_postier(SPEC, str(tmp_path))
    q = subprocess.run([POSTIER, "queue", px_args[0], "-c", confdir] + px_args[1:], input=stdin,
                       capture_output=True, text=True)
    where, defer = state(qdir, "incoming")
    if px_args[0] == "delete" and "ALL" in px_args:
        # postier removes the defer logs of the messages it deletes; Postfix's
        # `postsuper -d ALL QUEUE` leaves them behind (docs/compat.md)
        want = (want[0], want[1], (want[2][0], {x for x in want[2][1] if x in want[2][0]}))
    assert (q.returncode, q.stderr, (where, defer)) == want
