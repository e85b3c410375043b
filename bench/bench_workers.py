"""pytest plugin: run the benchmarks with a chosen number of smtpd workers.

    POSTIER_BENCH_WORKERS=1 PYTHONPATH=bench \\
        .venv/bin/pytest -p bench_workers bench/test_bench_e2e.py -s
    POSTIER_BENCH_WORKERS=2 POSTIER_BENCH_PIN=0 PYTHONPATH=bench \\
        .venv/bin/pytest -p bench_workers bench/test_bench_smtpd.py -s

It adds `smtpd_worker_processes = N` to every main.cf the benchmark helpers
write (tests/integration/qmgr/peers.PostierDaemon for the end-to-end
benchmark, tests/integration/smtpd/smtpd_peers.PostierServer for the smtpd
one), unless the benchmark sets it itself.  Without POSTIER_BENCH_WORKERS it
does nothing (the default, 0, is one worker per CPU the server may use).
`python bench/scaling.py` runs both benchmarks with 1 and
with 2 workers and prints the scaling factors.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest hook
    n = os.environ.get("POSTIER_BENCH_WORKERS", "").strip()
    if not n:
        return
    for p in (os.path.join(ROOT, "src"), os.path.join(ROOT, "tools"),
              os.path.join(ROOT, "tests", "integration", "qmgr"),
              os.path.join(ROOT, "tests", "integration", "smtpd")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import peers
    import smtpd_peers

    daemon_init = peers.PostierDaemon.__init__

    def init(self, main_cf, *args, **kw):  # noqa: ANN001, ANN202
        main_cf = dict(main_cf)
        main_cf.setdefault("smtpd_worker_processes", n)
        daemon_init(self, main_cf, *args, **kw)
    peers.PostierDaemon.__init__ = init

    merged = smtpd_peers.merged_main_cf

    def merged_main_cf(overrides=()):  # noqa: ANN001, ANN202
        params = merged(overrides)
        params.setdefault("smtpd_worker_processes", n)
        return params
    smtpd_peers.merged_main_cf = merged_main_cf
