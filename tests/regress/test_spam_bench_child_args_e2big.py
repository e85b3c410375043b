"""Regression: `POSTIER_BENCH_SPAM_MESSAGES=all` failed with OSError E2BIG.

bench/test_bench_spam.py handed its measuring child the message paths as one
JSON command-line argument; the whole corpus's 3,384 paths are ~135 KB, over
Linux's 128 KiB limit for a single argument (MAX_ARG_STRLEN), so the
documented "all" setting could not run.  The arguments now go on stdin.
"""

from __future__ import annotations

import os
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import test_bench_spam as B  # noqa: E402


def test_spam_bench_child_takes_more_paths_than_one_argument_holds(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10_local.cf").write_text("body T_HELLO /hello/\nscore T_HELLO 1.0\n")
    paths = [str(tmp_path / f"{'m' * 60}-{i}.eml") for i in range(3000)]
    assert len(" ".join(paths)) > 131072          # more than one argument may hold
    out = B.run_child("start", str(tmp_path / "cache"), rules=[str(rules)], paths=paths,
                      warmup=[])
    assert out["active"] == 1 and out["start_s"] > 0
