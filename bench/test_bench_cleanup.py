"""Cleanup stage throughput: a 2 KB and a 50 KB message through
postier.cleanup.Cleanup (header rewriting for a local client, envelope
canonical + virtual lookups in hash tables built with `postier map`), fed in
64 KiB chunks as the SMTP server does.

MB/s goes into each benchmark's extra_info.  POSTIER_BENCH_SMALL=1 keeps the
run short (fewer rounds).  No timing assertions; the checks only make sure
the benchmark measured real work.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from postier.cleanup import Cleanup, CleanupSettings, Rcpt  # noqa: E402
from postier.config import Config  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL") == "1"
CHUNK = 64 * 1024
RECEIVED = (b"Received: from c.test (ws.lan.test [192.0.2.5])\n"
            b"\tby mx.example.test (Postfix) with ESMTP id QID\n"
            b"\tfor <u@example.test>; Sat, 28 Nov 2026 05:51:02 +0000 (UTC)\n")


def _message(size: int) -> bytes:
    head = (b"From: Old User <old@example.test>\nTo: sales@example.test, a@example.test\n"
            b"Cc: team@example.test\nSubject: benchmark\nDate: Mon, 01 Jan 2024 00:00:00 +0000\n"
            b"Message-ID: <bench@example.test>\n\n")
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[:size - len(head)]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    canon = d / "canonical"
    canon.write_text("old@example.test new@example.test\n@olddomain.test @example.test\n"
                     + "".join(f"user{i}@example.test person{i}@example.test\n" for i in range(1000)))
    virt = d / "virtual"
    virt.write_text("sales@example.test alice@example.test, bob@example.test\n"
                    + "".join(f"alias{i}@example.test user{i}@example.test\n" for i in range(1000)))
    for t in (canon, virt):
        subprocess.run([sys.executable, "-m", "postier.cli.main", "map", f"hash:{t}"],
                       check=True, env=dict(os.environ, PYTHONPATH=SRC))
    cfg = Config.from_text(
        "myhostname = mx.example.test\nmydomain = example.test\nmyorigin = $mydomain\n"
        "mydestination = $myhostname, $mydomain\nmynetworks = 192.0.2.0/24\n"
        "local_header_rewrite_clients = permit_mynetworks\nrecipient_delimiter = +\n"
        f"canonical_maps = hash:{canon}\nvirtual_alias_maps = hash:{virt}\n")
    return CleanupSettings.from_config(cfg)


def _run(settings: CleanupSettings, msg: bytes) -> int:
    c = Cleanup(settings, queue_id="QID", sender="old@example.test",
                recipients=[Rcpt("sales@example.test", "", "rfc822;sales@example.test"),
                            Rcpt("user7@example.test", "", "rfc822;user7@example.test")],
                client_addr="192.0.2.5", real_addr="127.0.0.1")
    n = len(c.received(RECEIVED))
    for i in range(0, len(msg), CHUNK):
        n += len(c.feed(msg[i:i + CHUNK]))
    n += len(c.finish())
    assert c.error is None and c.sender == "new@example.test"
    assert [r.address for r in c.recipients] == ["alice@example.test", "bob@example.test",
                                                 "person7@example.test"]
    return n


@pytest.mark.parametrize("size", [2 * 1024, 50 * 1024], ids=["2KB", "50KB"])
def test_bench_cleanup(benchmark, settings, size):
    msg = _message(size)
    rounds = 20 if SMALL else 200
    out = benchmark.pedantic(_run, args=(settings, msg), rounds=rounds, iterations=1)
    assert out > size
    mean = benchmark.stats.stats.mean if benchmark.stats else 0
    if mean:
        benchmark.extra_info["MB/s"] = round(size / mean / 1e6, 1)
        print(f"\ncleanup {size // 1024} KB: {size / mean / 1e6:.1f} MB/s, "
              f"{1 / mean:.0f} msg/s")
