"""The load generator and the sink (postier.bench.source, .sink, .account):
end-to-end loss and duplicate counting, 4xx/5xx fractions, retries after
greylisting, open-loop pacing (as a count, never a timing assertion)."""

from __future__ import annotations

import asyncio

import pytest

from postier.bench.account import account, percentile
from postier.bench.sink import RecordTail, Sink, SinkOptions, bench_id
from postier.bench.source import Outgoing, Source, SourceOptions, prepare_content, synthetic_content


def _run(coro):
    return asyncio.run(coro)


def msgs(n: int, **kw) -> list[Outgoing]:
    return [Outgoing(seq=i, data=synthetic_content(600, seq=i), **kw) for i in range(1, n + 1)]


async def _send(n: int, sink_opts: SinkOptions, src: dict | None = None,
                messages: list[Outgoing] | None = None):
    sink = await Sink(sink_opts).start()
    try:
        res = await Source(SourceOptions(port=sink.port, **(src or {"sessions": 5}))).run(
            messages or msgs(n))
    finally:
        await sink.close()
    return res, sink


def test_every_message_arrives_once_with_its_id():
    res, sink = _run(_send(120, SinkOptions()))
    acc = account(res.records, sink.arrivals)
    assert res.count("accepted") == 120
    assert acc["accepted"] == acc["delivered"] == 120
    assert acc["lost"] == acc["duplicates"] == acc["unexpected"] == 0
    assert sorted(a[1] for a in sink.arrivals) == sorted(f"bench-{i}" for i in range(1, 121))


def test_a_sink_that_drops_and_duplicates_is_caught():
    res, sink = _run(_send(400, SinkOptions(drop_fraction=0.1, duplicate_fraction=0.1,
                                            seed=3)))
    acc = account(res.records, sink.arrivals)
    c = sink.counters
    assert c["dropped"] > 0 and c["duplicated"] > 0
    assert acc["lost"] == c["dropped"]
    assert acc["duplicates"] == c["duplicated"] == acc["duplicated_messages"]
    assert set(acc["lost_ids"]).isdisjoint(a[1] for a in sink.arrivals)


def test_dropping_everything_loses_everything():
    res, sink = _run(_send(30, SinkOptions(drop_fraction=1.0)))
    acc = account(res.records, sink.arrivals)
    assert acc["accepted"] == 30 and acc["lost"] == 30 and acc["delivered"] == 0


def test_defer_and_reject_fractions():
    res, sink = _run(_send(500, SinkOptions(defer_fraction=0.2, reject_fraction=0.1, seed=5),
                           {"sessions": 10}))
    c = sink.counters
    assert res.count("deferred") == c["deferred"]
    assert res.count("rejected") == c["rejected"]
    assert res.count("accepted") == c["accepted"] == 500 - c["deferred"] - c["rejected"]
    assert 50 <= c["deferred"] <= 150           # 20% of 500, generously
    assert 20 <= c["rejected"] <= 85            # 10%
    s = res.summary()
    assert s["defers_unexpected"] == c["deferred"] and s["defers_expected"] == 0
    codes = {r.code for r in res.records if r.outcome == "deferred"}
    assert codes == {451}
    acc = account(res.records, sink.arrivals)
    assert acc["lost"] == 0 and acc["unexpected"] == 0


def test_greylisted_messages_are_retried_like_an_mta():
    opts = {"sessions": 4, "max_attempts": 3, "retry_after": (0.05, 0.1)}
    m = [Outgoing(seq=i, data=synthetic_content(500), sender=f"s{i}@example.net")
         for i in range(1, 21)]
    m[0].retry = False                           # a spam bot: gives up
    res, sink = _run(_send(0, SinkOptions(greylist_first=True), opts, m))
    assert sink.counters["greylisted"] == 20
    assert res.count("accepted") == 19 and res.records[0].outcome == "deferred"
    assert all(r.attempts == 2 for r in res.records[1:])
    assert all(r.defers_expected == 1 and r.defers_unexpected == 0 for r in res.records)
    # latency is that of the attempt that got the 250, not of the wait for the retry
    assert all(r.sched_latency is not None and r.sched_latency < r.done - r.due
               for r in res.records[1:])


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_on_and_off_and_several_messages_per_session(pipelining):
    res, sink = _run(_send(40, SinkOptions(),
                           {"sessions": 2, "pipelining": pipelining, "messages_per_session": 10}))
    assert res.count("accepted") == 40
    assert res.sessions_opened < 40
    assert sink.counters["sessions"] == res.sessions_opened


@pytest.mark.slow
def test_open_loop_sends_about_rate_times_seconds():
    # 1,000 messages due at 40/s, cut off after 1 s: about 40 go out, never all
    res, _ = _run(_send(0, SinkOptions(), {"sessions": 5, "rate": 40.0, "deadline": 1.0},
                        msgs(1000)))
    sent = res.count("accepted")
    assert 10 <= sent <= 160
    assert res.count("unfinished") == 1000 - sent


def test_closed_loop_sends_everything():
    res, _ = _run(_send(0, SinkOptions(), {"sessions": 8}, msgs(150)))
    assert res.count("accepted") == 150


def test_connection_refused_is_an_error():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = _run(Source(SourceOptions(port=port, timeout=5)).run(msgs(3)))
    assert res.count("error") == 3 and res.records[0].reply


def test_source_addresses_are_used():
    async def go():
        seen = []

        async def handle(r, w):
            seen.append(w.get_extra_info("peername")[0])
            w.write(b"421 bye\r\n")
            await w.drain()
            w.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        m = msgs(3)
        for i, x in enumerate(m):
            x.source_ip = f"127.9.0.{i + 1}"
        res = await Source(SourceOptions(port=port)).run(m)
        srv.close()
        return seen, res
    seen, res = _run(go())
    assert sorted(seen) == ["127.9.0.1", "127.9.0.2", "127.9.0.3"]
    assert res.count("deferred") == 3            # 421 is a temporary failure


def test_prepare_content_crlf_and_dot_stuffing():
    out = prepare_content(b"Subject: x\n\n.hidden\nline\r\nlast")
    assert out == b"Subject: x\r\n\r\n..hidden\r\nline\r\nlast\r\n"
    long = prepare_content(b"a" * 2500 + b"\n")
    assert all(len(x) <= 998 for x in long.split(b"\r\n"))


def test_bench_id_parsing():
    assert bench_id(b"Received: x\r\nX-Bench-Id: p-7\r\nSubject: y\r\n\r\nbody") == "p-7"
    assert bench_id(b"Subject: y\r\n\r\nX-Bench-Id: in-the-body\r\n") == "-"
    assert bench_id(b"x-bench-id: low-1\r\n\r\n") == "low-1"


def test_record_tail_reads_growing_file(tmp_path):
    p = tmp_path / "rec.tsv"
    t = RecordTail(str(p))
    assert t.poll() == []
    p.write_text("1.5\ta-1\t100\n2.5\ta-")
    assert t.poll() == [(1.5, "a-1", 100)]
    with open(p, "a") as f:
        f.write("2\t200\n")
    assert t.poll() == [(2.5, "a-2", 200)]


def test_sink_record_file(tmp_path):
    path = tmp_path / "arrivals.tsv"
    res, sink = _run(_send(25, SinkOptions(record_path=str(path))))
    got = RecordTail(str(path)).poll()
    assert sorted(x[1] for x in got) == sorted(r.id for r in res.records)


def test_percentile_nearest_rank():
    v = list(range(1, 101))
    assert percentile(v, 50) == 50 and percentile(v, 99) == 99 and percentile(v, 100) == 100
    assert percentile([], 50) is None and percentile([7], 99) == 7
