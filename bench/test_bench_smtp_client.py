"""smtp delivery agent throughput: postier's smtp client -> Postfix's smtp-sink.

Messages of 2 KB and 50 KB (headers plus text with some dot-stuffed lines),
delivered one request at a time (1 stream) or by 10 concurrent streams, each
request one recipient, through `AGENTS["smtp"]` with the default settings
(connection cache on: after the first delivery a stream reuses its
connection with a pipelined RSET probe).  msgs/s goes into extra_info and is
printed (-s).  POSTIER_BENCH_SMALL=1 delivers fewer messages per round.
smtp-sink runs as `smtp-sink -u nobody 127.0.0.1:PORT 256` (no dumps); no
timing assertions.  The end-to-end comparison with Postfix lives in the
whole-system benchmark.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration", "delivery"))

from sink import SmtpSink, sink_available  # noqa: E402

import postier.delivery.agents  # noqa: E402,F401
from postier.config import Config  # noqa: E402
from postier.delivery import AGENTS, DeliveryRequest  # noqa: E402
from postier.delivery.smtp import close_idle_sessions  # noqa: E402
from postier.queue.file import Envelope, QueueWriter, Recipient, read_envelope  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")
PER_ROUND = 100 if SMALL else 1000
SIZES = {"2KB": 2 * 1024, "50KB": 50 * 1024}

pytestmark = pytest.mark.skipif(not sink_available(), reason="smtp-sink not installed")


@functools.cache
def content(size: int) -> bytes:
    rng = random.Random(size)
    header = (b"Received: from client.example.org (client.example.org [192.0.2.1])\n"
              b"\tby mx.example.net (postier) with ESMTP id 4AbCdEfGhIj\n"
              b"From: Alice <alice@example.org>\nTo: bob@example.net\n"
              b"Subject: benchmark\nMessage-ID: <bench@example.org>\n\n")
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet,", b"consectetur", b"elit."]
    lines = []
    while sum(map(len, lines)) + len(lines) + len(header) < size:
        line = b" ".join(rng.choices(words, k=rng.randrange(1, 12)))
        lines.append(b"." + line if rng.random() < 0.03 else line)
    return header + b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def sink():
    with SmtpSink(dump=False) as s:
        yield s


@pytest.fixture(scope="module")
def queue_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("spool")
    out = {}
    for name, size in SIZES.items():
        w = QueueWriter(str(d))
        w.write(content(size))
        path = w.commit(Envelope(queue_id=w.queue_id, arrival=time.time(),
                                 sender="alice@example.org",
                                 recipients=[Recipient("bob@example.net")]))
        env, off = read_envelope(path)
        out[name] = (path, off, env)
    return out


@pytest.mark.parametrize("streams", [1, 10])
@pytest.mark.parametrize("size", list(SIZES))
def test_smtp_client_to_sink(benchmark, sink, queue_files, size, streams):
    path, off, env = queue_files[size]
    cfg = Config.from_text("myhostname = bench.example.test\n")
    nexthop = f"[127.0.0.1]:{sink.port}"

    def request() -> DeliveryRequest:
        return DeliveryRequest(queue_id=env.queue_id, queue_path=path, content_offset=off,
                               content_size=env.content_size, sender=env.sender,
                               recipients=env.recipients, transport="smtp", nexthop=nexthop,
                               config=cfg)

    async def stream(n: int) -> int:
        sent = 0
        for _ in range(n):
            [st] = await AGENTS["smtp"](request())
            sent += st.status == "sent"
        return sent

    async def batch() -> int:
        per = PER_ROUND // streams
        return sum(await asyncio.gather(*(stream(per) for _ in range(streams))))

    import uvloop
    before = sink.counters()["mesg"]
    loop = uvloop.new_event_loop()
    try:
        rounds = [0]

        def one_round() -> int:
            rounds[0] += 1
            return loop.run_until_complete(batch())

        one_round()   # warm-up: connections open, page cache warm
        t0 = time.perf_counter()
        sent = benchmark.pedantic(one_round, rounds=3 if SMALL else 5, iterations=1)
        elapsed = time.perf_counter() - t0
        close_idle_sessions()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert sent == PER_ROUND // streams * streams
    assert sink.wait_counter("mesg", before + rounds[0] * sent)  # really received by smtp-sink
    stats = getattr(benchmark, "stats", None)
    mean = stats.stats.mean if stats is not None else elapsed / (3 if SMALL else 5)
    rate = sent / mean if mean else 0.0
    benchmark.extra_info["msgs_per_s"] = round(rate, 1)
    print(f"\nsmtp client -> smtp-sink, {size}, {streams} stream(s): {rate:,.0f} msgs/s")
