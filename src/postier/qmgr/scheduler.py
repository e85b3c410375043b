"""Queue-manager scheduling arithmetic: per-destination concurrency and backoff.

Postfix's qmgr(8) semantics (qmgr_queue.c, qmgr_feedback.c, qmgr_active.c):

* A destination queue is keyed by (transport, nexthop), or by
  (transport, localpart@nexthop) when the transport's recipient limit is 1.
  It starts with a concurrency window of $initial_destination_concurrency
  (`<transport>_initial_destination_concurrency`), capped by
  `<transport>_destination_concurrency_limit`
  ($default_destination_concurrency_limit; 0 = no limit).
* Positive feedback after each delivery that did not fail at the site
  level: `success += feedback`; each time success reaches 1 the window
  grows by 1, while the window is below busy + initial concurrency and the
  limit.  Negative feedback after a site-level failure (connection refused,
  greeting rejected, ...): `failure -= feedback`; the window shrinks by 1
  for each whole unit, never below 1, and `fail_cohorts += 1/window`; when
  fail_cohorts reaches
  `<transport>_destination_concurrency_failed_cohort_limit` the
  destination is declared dead ("throttled", window 0) for
  $minimal_backoff_time: queued recipients are deferred with
  "delivery temporarily suspended: REASON".
* Feedback values: `N`, `N/M`, `N/concurrency` or `N/sqrt_concurrency`
  (`<transport>_destination_concurrency_positive_feedback`,
  `..._negative_feedback`); a value outside 0..1 is replaced by 1 with
  `warning: NAME: ignoring malformed or unreasonable feedback: VALUE`.
* Backoff: a message with deferred recipients waits
  max(minimal_backoff_time, min(maximal_backoff_time, its age)) before the
  next attempt (the next retry time of a deferred message is computed from
  its age, so retries spread out: 5 min, 10, 20, 40, 66 ... with the
  defaults).

Parameters read (through `TransportSettings.from_config`):
default_destination_concurrency_limit, initial_destination_concurrency,
default_destination_recipient_limit,
default_destination_concurrency_failed_cohort_limit,
default_destination_concurrency_positive_feedback,
default_destination_concurrency_negative_feedback,
default_destination_rate_delay, default_process_limit and their
`<transport>_` forms, local_destination_concurrency_limit,
local_destination_recipient_limit.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from postier import log

_FB_RX = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(?:/\s*(\S+)\s*)?$")


@dataclass(frozen=True)
class Feedback:
    base: float
    index: str = "none"           # none, concurrency, sqrt_concurrency

    def value(self, window: int) -> float:
        w = max(window, 1)
        if self.index == "concurrency":
            return self.base / w
        if self.index == "sqrt_concurrency":
            return self.base / math.sqrt(w)
        return self.base


def parse_feedback(text: str, name: str = "feedback",
                   warn: Callable[[str], None] | None = None) -> Feedback:
    """qmgr_feedback_init(): "1", "1/8", "1/concurrency", "1/sqrt_concurrency"."""
    m = _FB_RX.match(text or "")
    fb: Feedback | None = None
    if m:
        num = float(m.group(1))
        den = m.group(2)
        if den is None:
            fb = Feedback(num)
        elif den in ("concurrency", "sqrt_concurrency"):
            fb = Feedback(num, den)
        else:
            try:
                d = float(den)
            except ValueError:
                d = 0.0
            if d >= 1.0 / (2 ** 31 - 1):
                fb = Feedback(num / d)
    if fb is None or not (0 <= fb.base <= 1):
        (warn or log.warning)(f"{name}: ignoring malformed or unreasonable feedback: {text}")
        return Feedback(1.0)
    return fb


def backoff_delay(now: float, arrival: float, minimal: float, maximal: float) -> float:
    """qmgr_active_done_3_generic(): the age of the message, clamped."""
    if arrival <= 0:
        return minimal
    delay = now - arrival
    if delay > maximal:
        delay = maximal
    if delay < minimal:
        delay = minimal
    return delay


def _svc_value(cfg: Any, transport: str, suffix: str, base: str) -> Any:
    """`<transport><suffix>` when set (main.cf or -o), else $base.  A name
    that master.cf does not define as a service parameter is converted with
    the base parameter's type; a bad value is reported and $base used."""
    from postier.config.registry import BadValue, convert
    from postier.errors import ConfigError
    name = transport + suffix
    try:
        if cfg.param(name) is not None:
            return cfg.get(name)
        if cfg.is_set(name):
            bp = cfg.param(base)
            text = cfg.get_str(name)
            if bp is None:
                return text
            import msgspec
            return convert(msgspec.structs.replace(bp, name=name), text)
    except (BadValue, ConfigError) as e:
        log.warning(f"{e}; using ${base}")
    return cfg.get(base)


@dataclass
class TransportSettings:
    name: str
    command: str = ""
    concurrency_limit: int = 20
    initial_concurrency: int = 5
    recipient_limit: int = 50
    failed_cohort_limit: int = 1
    positive: Feedback = field(default_factory=lambda: Feedback(1.0))
    negative: Feedback = field(default_factory=lambda: Feedback(1.0))
    process_limit: int = 100
    rate_delay: float = 0.0

    @classmethod
    def from_config(cls, cfg: Any, name: str, command: str, process_limit: int
                    ) -> TransportSettings:
        def get(suffix: str, base: str) -> Any:
            return _svc_value(cfg, name, suffix, base)
        conc = get("_destination_concurrency_limit", "default_destination_concurrency_limit")
        rlimit = get("_destination_recipient_limit", "default_destination_recipient_limit")
        init = get("_initial_destination_concurrency", "initial_destination_concurrency")
        pos_name = f"{name}_destination_concurrency_positive_feedback"
        neg_name = f"{name}_destination_concurrency_negative_feedback"
        pos = parse_feedback(str(get("_destination_concurrency_positive_feedback",
                                     "default_destination_concurrency_positive_feedback")),
                             pos_name if cfg.is_set(pos_name) else
                             "default_destination_concurrency_positive_feedback")
        neg = parse_feedback(str(get("_destination_concurrency_negative_feedback",
                                     "default_destination_concurrency_negative_feedback")),
                             neg_name if cfg.is_set(neg_name) else
                             "default_destination_concurrency_negative_feedback")
        return cls(name=name, command=command, concurrency_limit=int(conc),
                   initial_concurrency=max(1, int(init)), recipient_limit=int(rlimit),
                   failed_cohort_limit=int(get("_destination_concurrency_failed_cohort_limit",
                                               "default_destination_concurrency_failed_cohort_limit")),
                   positive=pos, negative=neg, process_limit=max(1, process_limit),
                   rate_delay=float(get("_destination_rate_delay",
                                        "default_destination_rate_delay")))

    @property
    def start_window(self) -> int:
        if self.concurrency_limit > 0:
            return max(1, min(self.initial_concurrency, self.concurrency_limit))
        return self.initial_concurrency


class DestQueue:
    """One destination: its todo list, busy count and concurrency window."""

    __slots__ = ("name", "nexthop", "ts", "window", "busy", "todo", "success", "failure",
                 "fail_cohorts", "dead_reason", "dead_status", "timer", "last_start",
                 "transport")

    def __init__(self, name: str, nexthop: str, ts: TransportSettings, transport: Any = None):
        self.name = name
        self.nexthop = nexthop
        self.ts = ts
        self.transport = transport
        self.window = ts.start_window
        self.busy = 0
        self.todo: deque[Any] = deque()
        self.success = 0.0
        self.failure = 0.0
        self.fail_cohorts = 0.0
        self.dead_reason = ""       # "" = alive
        self.dead_status = ""
        self.timer: Any = None
        self.last_start = 0.0

    @property
    def dead(self) -> bool:
        return self.window <= 0

    def ready(self) -> bool:
        return self.window > self.busy

    def positive(self) -> None:
        """qmgr_queue_unthrottle() for a live queue: positive feedback."""
        ts = self.ts
        if self.dead:
            return
        self.fail_cohorts = 0.0
        if ts.concurrency_limit == 0 or ts.concurrency_limit > self.window:
            if self.window < self.busy + ts.initial_concurrency:
                fb = ts.positive.value(self.window)
                self.success += fb
                while self.success + fb / 2 >= 1:
                    self.window += 1
                    self.success -= 1
                    self.failure = 0
                if ts.concurrency_limit > 0 and self.window > ts.concurrency_limit:
                    self.window = ts.concurrency_limit

    def negative(self, status: str, reason: str) -> bool:
        """qmgr_queue_throttle(): negative feedback; True when the queue has
        just been declared dead."""
        ts = self.ts
        if self.dead:
            return False
        if ts.failed_cohort_limit > 0:
            self.fail_cohorts += 1.0 / max(self.window, 1)
            if self.fail_cohorts >= ts.failed_cohort_limit:
                self.window = 0
        if not self.dead:
            fb = ts.negative.value(self.window)
            self.failure -= fb
            while self.failure - fb / 2 < 0:
                self.window -= 1
                self.success = 0
                self.failure += 1
            if self.window < 1:
                self.window = 1
        if self.dead:
            self.dead_status = status
            self.dead_reason = reason
            return True
        return False

    def revive(self) -> None:
        """End of the dead period ("back from the almost grave"): the window
        is the number of deliveries in progress, else the initial one."""
        self.window = self.busy if self.busy > 0 else self.ts.start_window
        self.success = self.failure = self.fail_cohorts = 0.0
        self.dead_reason = self.dead_status = ""
        self.timer = None
