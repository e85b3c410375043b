"""The capacity search (postier.bench.capacity) on synthetic servers."""

from __future__ import annotations

from postier.bench.capacity import CapacitySearch, Step, judge, summarize
from postier.bench.scenario import Load, Thresholds

TH = Thresholds(p99_ms=1000, defer_fraction=0.01, achieved_ratio=0.9, backlog_fraction=0.25)


def fake_step(rate: float, capacity: float, seconds: float = 10) -> Step:
    """A server that answers in 20 ms up to `capacity` msg/s, then queues."""
    n = int(rate * seconds)
    over = rate > capacity
    achieved = min(rate, capacity)
    return Step(system="fake", rate=rate, seconds=seconds, messages=n, attempts=n,
                achieved_per_s=achieved, offered_per_s=rate,
                outcomes={"accepted": int(achieved * seconds)},
                sched_latency_p99_ms=5000.0 if over else 20.0,
                latency_p99_ms=20.0, latency_p50_ms=5.0, queue_start=0,
                queue_end=int(0.5 * n) if over else 2, cpu_s_per_1000=3.0)


def run(load: Load, capacity: float) -> CapacitySearch:
    s = CapacitySearch(load, TH)
    while (r := s.next_rate()) is not None:
        s.record(fake_step(r, capacity))
    return s


def test_steps_up_then_bisects():
    s = run(Load(start_rate=10, factor=2, max_rate=1000, refine_steps=2), capacity=60)
    rates = [round(x.rate, 1) for x in s.steps]
    assert rates == [10, 20, 40, 80, 56.6, 67.3]
    assert [x.ok for x in s.steps] == [True, True, True, False, True, False]
    assert round(s.sustainable().rate, 1) == 56.6
    summ = summarize(s.steps)
    assert summ["messages_per_day"] == int(round(s.sustainable().rate * 86400))
    assert not summ["capped"]


def test_capped_at_max_rate():
    s = run(Load(start_rate=10, factor=4, max_rate=160, refine_steps=2), capacity=10_000)
    assert [x.rate for x in s.steps] == [10, 40, 160]
    assert s.capped and s.sustainable().rate == 160


def test_first_step_too_fast_goes_down():
    s = run(Load(start_rate=100, factor=2, max_rate=1000, refine_steps=0), capacity=30)
    assert [x.rate for x in s.steps] == [100, 50, 25]
    assert s.sustainable().rate == 25


def test_nothing_sustainable():
    s = run(Load(start_rate=10, factor=2, max_rate=1000, refine_steps=0), capacity=0.1)
    assert len(s.steps) == 4 and s.sustainable() is None
    assert summarize(s.steps)["sustainable_per_s"] == 0.0


def test_judge_reasons():
    st = fake_step(10, 100)
    assert judge(st, TH) == (True, [])
    st.defers_unexpected = 5                  # 5% of 100 attempts
    ok, why = judge(st, TH)
    assert not ok and why == ["deferrals/errors 5.0% > 1.0%"]
    st = fake_step(10, 100)
    st.defers_expected = 50                   # greylisting does not count
    assert judge(st, TH)[0]
    st = fake_step(10, 100)
    st.queue_end = 60                         # 60 > 25% of 100 accepted
    assert judge(st, TH)[1] == ["queue grew by 60 messages (> 25% of 100 accepted)"]
    st = fake_step(10, 100)
    st.outcomes, st.sched_latency_p99_ms = {"rejected": 100}, None
    assert judge(st, TH)[1] == ["no message accepted"]
    st = fake_step(10, 100)
    st.achieved_per_s, st.offered_per_s = 8.0, 9.5
    assert "achieved 8.0 msg/s < 90% of 9.5 offered" in judge(st, TH)[1]
