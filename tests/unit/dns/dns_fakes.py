"""Fakes for the postier.dns unit tests (see conftest.py for the fixtures).

`FakeBackend(answers)`: a resolver backend answering from a dict
{(name, qtype): Answer or (status, records[, ttl[, herror]])}; unknown
keys are NXDOMAIN.  It records every lookup (`asked`), can delay answers
(`delay`, seconds, or a dict per key) and counts lookups in flight at once
(`max_inflight`).  `FakeClock`: a settable monotonic clock.  `logs`: the
lines postier.log emits during the test.
"""

from __future__ import annotations

import asyncio

from postier import dns, log


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeBackend:
    def __init__(self, answers=None, *, delay=0.0):
        self.answers = dict(answers or {})
        self.delay = delay
        self.asked: list[tuple[str, str]] = []
        self.inflight = 0
        self.max_inflight = 0
        self.closed = False

    def answer(self, name: str, qtype: str) -> dns.Answer:
        a = self.answers.get((name, qtype))
        if a is None:
            return dns.failed(name, qtype, dns.NOTFOUND, dns.HOST_NOT_FOUND)
        if isinstance(a, dns.Answer):
            return a
        status, records, *rest = a
        ttl = rest[0] if rest else 300
        herror = rest[1] if len(rest) > 1 else ("" if status == dns.OK else dns.TRY_AGAIN)
        return dns.Answer(name, qtype, status, tuple(records), ttl, herror)

    async def lookup(self, name: str, qtype: str) -> dns.Answer:
        self.asked.append((name, qtype))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            d = self.delay.get((name, qtype), 0.0) if isinstance(self.delay, dict) else self.delay
            if d:
                await asyncio.sleep(d)
            return self.answer(name, qtype)
        finally:
            self.inflight -= 1

    def close(self) -> None:
        self.closed = True


def resolver(answers=None, *, clock=None, delay=0.0, **settings) -> tuple[dns.Resolver, FakeBackend]:
    be = FakeBackend(answers, delay=delay)
    r = dns.Resolver(dns.DnsSettings(**settings), backend=be, clock=clock or FakeClock())
    return r, be


class LogCapture:
    def __init__(self, monkeypatch):
        self.lines: list[str] = []
        monkeypatch.setattr(log.LOG, "emit", self._emit)

    def _emit(self, severity: str, text: str, service: str | None = None) -> None:
        self.lines.append(f"{severity}: {text}" if severity else text)

