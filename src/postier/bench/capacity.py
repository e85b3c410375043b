"""The capacity search: step the offered rate up until the server stops keeping up.

    search = CapacitySearch(load, thresholds)       # scenario.Load, scenario.Thresholds
    while (rate := search.next_rate()) is not None:
        step = measure(rate)                        # a Step (below), filled by the runner
        search.record(step)                         # judges it: step.ok, step.reasons
    search.sustainable()                            # the best Step that passed, or None

A step offers `rate` msg/s (open loop) for `step_seconds`.  It passes when
all of these hold (thresholds from the scenario's [thresholds]):

* p99 latency (from each message's due time to its 250, so waiting for a
  free session counts) is at most `p99_ms`;
* unexpected deferrals (4xx that are not greylisting) plus connection
  errors are at most `defer_fraction` of the attempts;
* the achieved rate (messages answered per second, whatever the answer) is
  at least `achieved_ratio` of the offered rate (as drawn: with Poisson
  arrivals the offered count over the window varies around the target);
* the queue grew by at most `backlog_fraction` of the messages accepted in
  the step (delivery kept up with acceptance).

Rates go up geometrically (start_rate, x factor, ...) until a step fails
or `max_rate` passes; then `refine_steps` bisections (geometric means)
between the last passing and the first failing rate.  When the first step
already fails, the rate goes down by the factor (at most three times).
The sustainable rate is the highest passing step's offered rate; its
messages/day is that x 86,400.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from postier.bench.scenario import Load, Thresholds


@dataclass
class Step:
    system: str
    rate: float                       # offered msg/s (the target)
    seconds: float                    # offered window
    offered_per_s: float = 0.0        # offered as drawn (Poisson arrivals vary around rate)
    messages: int = 0
    attempts: int = 0
    achieved_per_s: float = 0.0       # messages answered (first attempts) per second
    accepted_per_s: float = 0.0
    delivered_per_s: float = 0.0
    outcomes: dict = field(default_factory=dict)
    defers_expected: int = 0
    defers_unexpected: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None       # final "." -> 250
    latency_p99_ms: float | None = None
    sched_latency_p50_ms: float | None = None  # due -> 250
    sched_latency_p99_ms: float | None = None
    queue_start: int = 0
    queue_end: int = 0
    queue_peak: int = 0
    queue_growth_per_s: float = 0.0
    wall_s: float = 0.0                       # generator start to end (retries included)
    cpu_s: float = 0.0
    cpu_pct: float = 0.0                      # % of one core over the window
    cpu_s_per_1000: float | None = None
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    ok: bool | None = None
    reasons: list = field(default_factory=list)
    phase: str = "search"                     # search | refine | fixed | lab

    def to_dict(self) -> dict:
        return asdict(self)


def judge(step: Step, th: Thresholds) -> tuple[bool, list[str]]:
    """(passed, reasons it failed) for one step."""
    reasons = []
    p99 = step.sched_latency_p99_ms
    if p99 is None and step.outcomes.get("accepted", 0) == 0 and step.messages:
        reasons.append("no message accepted")
    elif p99 is not None and p99 > th.p99_ms:
        reasons.append(f"p99 latency {p99:.0f} ms > {th.p99_ms:.0f} ms")
    attempts = max(1, step.attempts)
    bad = step.defers_unexpected + step.errors
    if bad / attempts > th.defer_fraction:
        reasons.append(f"deferrals/errors {100 * bad / attempts:.1f}% > "
                       f"{100 * th.defer_fraction:.1f}%")
    offered = step.offered_per_s or step.rate
    if offered > 0 and step.achieved_per_s < th.achieved_ratio * offered:
        reasons.append(f"achieved {step.achieved_per_s:.1f} msg/s < "
                       f"{100 * th.achieved_ratio:.0f}% of {offered:.1f} offered")
    accepted = step.outcomes.get("accepted", 0)
    growth = step.queue_end - step.queue_start
    if accepted and growth > th.backlog_fraction * accepted:
        reasons.append(f"queue grew by {growth} messages (> {100 * th.backlog_fraction:.0f}% "
                       f"of {accepted} accepted)")
    return not reasons, reasons


class CapacitySearch:
    def __init__(self, load: Load, thresholds: Thresholds):
        self.load = load
        self.th = thresholds
        self.steps: list[Step] = []
        self._next: float | None = load.start_rate
        self._lo: float | None = None      # highest passing rate
        self._hi: float | None = None      # lowest failing rate
        self._refines = 0
        self._downs = 0
        self.capped = False                # max_rate passed: the capacity is at least that

    def next_rate(self) -> float | None:
        return self._next

    def record(self, step: Step) -> Step:
        ok, reasons = judge(step, self.th)
        step.ok, step.reasons = ok, reasons
        self.steps.append(step)
        r = step.rate
        if ok:
            self._lo = r if self._lo is None else max(self._lo, r)
        else:
            self._hi = r if self._hi is None else min(self._hi, r)
        self._next = self._decide(r, ok)
        return step

    def _decide(self, r: float, ok: bool) -> float | None:
        L = self.load
        if self._hi is None:                    # still going up
            if r >= L.max_rate:
                self.capped = True
                return None
            return min(L.max_rate, r * L.factor)
        if self._lo is None:                    # nothing passed yet: go down
            if self._downs >= 3:
                return None
            self._downs += 1
            return r / L.factor
        if self._refines >= L.refine_steps or self._hi / self._lo < 1.05:
            return None
        self._refines += 1
        return math.sqrt(self._lo * self._hi)

    def sustainable(self) -> Step | None:
        good = [s for s in self.steps if s.ok]
        return max(good, key=lambda s: s.rate) if good else None


def summarize(search_steps: list[Step], capped: bool = False) -> dict:
    """The headline figures from a system's steps."""
    good = [s for s in search_steps if s.ok and s.phase in ("search", "refine")]
    best = max(good, key=lambda s: s.rate) if good else None
    if best is None:
        return {"sustainable_per_s": 0.0, "messages_per_day": 0, "capped": capped,
                "step": None}
    return {"sustainable_per_s": best.rate, "achieved_per_s": best.achieved_per_s,
            "messages_per_day": int(round(best.rate * 86400)), "capped": capped,
            "latency_p50_ms": best.latency_p50_ms, "latency_p99_ms": best.latency_p99_ms,
            "sched_latency_p50_ms": best.sched_latency_p50_ms,
            "sched_latency_p99_ms": best.sched_latency_p99_ms,
            "cpu_s_per_1000": best.cpu_s_per_1000, "step": best.to_dict()}
