"""The load generator: an asyncio SMTP client like Postfix's smtp-source.

    msgs = [Outgoing(seq=i, data=template, sender=..., rcpts=[...]) for i in ...]
    opts = SourceOptions(host="127.0.0.1", port=2525, sessions=20, rate=50.0)
    result = run_source(msgs, opts)          # or: await Source(opts).run(msgs)
    result.records[0].latency                 # seconds from the final "." to the 250

What it does, per message: connect (optionally from a chosen loopback
source address, so that different messages come from different "clients"),
read the banner, EHLO (HELO when EHLO is refused), MAIL FROM, RCPT TO for
each recipient, DATA, the content with an `X-Bench-Id: PREFIX-SEQ` header in
front (dot-stuffed, CRLF line ends), then QUIT -- or the next message in
the same session (`messages_per_session`).  With PIPELINING (when the
server offers it and `pipelining` is on) MAIL, RCPT and DATA go out in one
write, as smtp-source does.

Two modes:

* closed loop (`rate=None`): `sessions` connections send back to back, as
  fast as the server answers (smtp-source's behaviour);
* open loop (`rate=R` msg/s): message i is due at t0 + i/R (`arrival =
  "uniform"`) or after exponential gaps (`"poisson"`); at most `sessions`
  are in flight, a message that finds no free session waits.  Latency is
  measured both from the final "." to the 250 (`latency`) and from the
  message's due time to the 250 (`sched_latency`: it includes the wait
  for a session, so an overloaded server cannot hide behind a slow client).

Outcomes: `accepted` (250 to DATA), `rejected` (5xx: to MAIL, to every
RCPT, to DATA or its end), `deferred` (4xx, and no retries left),
`error` (connection refused or reset, timeout, no reply).  A 4xx whose text
matches `retry_regex` (default: greylisting's "Greylisted") is retried
after a delay drawn from `retry_after` (seconds, uniform), up to
`max_attempts`: the behaviour of a real MTA facing greylisting, compressed
in time.  Every 4xx is counted as expected (it matches `expected_defer_regex`)
or unexpected (overload, errors); the capacity search uses the latter.

Only loopback addresses are meant here (the CLI refuses others).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ID_HEADER = b"X-Bench-Id"
CRLF = b"\r\n"


@dataclass
class Outgoing:
    """One message to send.  `data` is the content as it goes on the wire
    after DATA (CRLF line ends, dot-stuffed, ending in CRLF), without the
    bench id header (added at send time) and without the final ".".  The
    helpers `prepare_content()` and `synthetic_content()` make it."""

    seq: int
    data: bytes
    sender: str = "bench@client.example.net"
    rcpts: Sequence[str] = ("rcpt@example.test",)
    cls: str = "ham"               # traffic class (ham, spam, virus, rejected)
    kind: str = ""                 # finer label (e.g. "relay-attempt")
    source_ip: str | None = None   # local address to connect from
    helo: str = "client.example.net"
    retry: bool = True             # retry after a retryable 4xx (greylisting)


@dataclass
class SourceOptions:
    host: str = "127.0.0.1"
    port: int = 25
    sessions: int = 1
    messages_per_session: int = 1
    pipelining: bool = True
    rate: float | None = None              # msg/s (open loop); None: closed loop
    arrival: str = "uniform"               # uniform | poisson
    id_prefix: str = "bench"
    timeout: float = 60.0
    retry_regex: str | None = "Greylisted"
    retry_after: tuple[float, float] = (5.0, 10.0)
    max_attempts: int = 1                  # 1: never retry
    expected_defer_regex: str | None = "Greylisted"
    deadline: float | None = None          # seconds; unfinished messages end as "unfinished"
    seed: int = 1
    progress: object = None                # callable(done, total) or None


@dataclass
class Record:
    """The fate of one message (all times are time.time() seconds)."""

    id: str
    seq: int
    cls: str
    kind: str
    size: int
    due: float = 0.0              # due time of the first attempt
    attempt_due: float = 0.0      # due time of the last attempt
    start: float = 0.0            # start of the last attempt (connect or MAIL)
    done: float = 0.0             # reply to the end of DATA (or the final failure)
    first_done: float = 0.0       # when the first attempt ended (whatever the answer)
    latency: float | None = None  # final "." -> 250 (accepted only)
    sched_latency: float | None = None  # due time of the last attempt -> 250 (accepted only)
    outcome: str = "unfinished"   # accepted | rejected | deferred | error | unfinished
    code: int | None = None
    reply: str = ""
    attempts: int = 0
    defers_expected: int = 0
    defers_unexpected: int = 0


@dataclass
class SourceResult:
    records: list[Record]
    started: float
    finished: float
    sessions_opened: int = 0
    options: dict = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.records if r.outcome == outcome)

    def summary(self) -> dict:
        from postier.bench.account import percentile
        lat = sorted(r.latency for r in self.records if r.latency is not None)
        slat = sorted(r.sched_latency for r in self.records if r.sched_latency is not None)
        wall = max(1e-9, self.finished - self.started)
        acc = self.count("accepted")
        return {
            "messages": len(self.records), "accepted": acc,
            "rejected": self.count("rejected"), "deferred": self.count("deferred"),
            "errors": self.count("error"), "unfinished": self.count("unfinished"),
            "defers_expected": sum(r.defers_expected for r in self.records),
            "defers_unexpected": sum(r.defers_unexpected for r in self.records),
            "retried": sum(1 for r in self.records if r.attempts > 1),
            "wall_s": wall, "accepted_per_s": acc / wall,
            "sessions_opened": self.sessions_opened,
            "latency_p50_ms": _ms(percentile(lat, 50)), "latency_p99_ms": _ms(percentile(lat, 99)),
            "sched_latency_p50_ms": _ms(percentile(slat, 50)),
            "sched_latency_p99_ms": _ms(percentile(slat, 99)),
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else 1000.0 * v


# --------------------------------------------------------------------------- content

def prepare_content(raw: bytes, *, max_line: int = 998) -> bytes:
    """A message file as it goes after DATA: CRLF line ends (bare LF and
    bare CR become CRLF), lines starting with "." doubled, a final CRLF.
    Lines longer than `max_line` are folded with a space at the start of
    the continuation (so that no server refuses them for length)."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.endswith(b"\n"):
        text = text[:-1]
    out = []
    for line in text.split(b"\n"):
        while len(line) > max_line:
            out.append(line[:max_line])
            line = b" " + line[max_line:]
        if line.startswith(b"."):
            line = b"." + line
        out.append(line)
    return CRLF.join(out) + CRLF


def synthetic_content(size: int, *, subject: str = "bench message",
                      sender: str = "bench@client.example.net",
                      rcpt: str = "rcpt@example.test", seq: int = 0) -> bytes:
    """A plain text message of about `size` bytes (like smtp-source -l)."""
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            f"Message-ID: <bench.{seq}@client.example.net>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop\r\n"
    n = max(1, (size - len(head)) // len(line) + 1)
    return head + line * n


# --------------------------------------------------------------------------- client

class _Conn:
    """One SMTP connection: buffered reply reading over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.r = reader
        self.w = writer
        self.pipelining = False

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionResetError("connection closed by server")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        last = lines[-1]
        try:
            code = int(last[:3])
        except ValueError:
            raise ConnectionResetError(f"bad reply: {last[:80]!r}") from None
        text = b"\n".join(x[4:].rstrip(b"\r\n") for x in lines).decode("latin-1")
        return code, text

    def close(self) -> None:
        try:
            self.w.close()
        except (OSError, RuntimeError):
            pass


class _Fail(Exception):
    def __init__(self, code: int | None, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


class Source:
    def __init__(self, opts: SourceOptions):
        self.o = opts
        self.retry_rx = re.compile(opts.retry_regex) if opts.retry_regex else None
        self.expect_rx = (re.compile(opts.expected_defer_regex)
                          if opts.expected_defer_regex else None)
        self.rng = random.Random(opts.seed)
        self.sessions_opened = 0

    async def _connect(self, msg: Outgoing) -> _Conn:
        local = (msg.source_ip, 0) if msg.source_ip else None
        r, w = await asyncio.open_connection(self.o.host, self.o.port, local_addr=local,
                                             limit=1 << 20)
        self.sessions_opened += 1
        c = _Conn(r, w)
        code, text = await c.reply()
        if code != 220:
            c.close()
            raise _Fail(code, text)
        w.write(f"EHLO {msg.helo}\r\n".encode())
        code, text = await c.reply()
        if code == 250:
            c.pipelining = self.o.pipelining and any(
                ln.upper().startswith("PIPELINING") for ln in text.split("\n"))
        else:
            if code == 421:
                c.close()
                raise _Fail(code, text)
            w.write(f"HELO {msg.helo}\r\n".encode())
            code, text = await c.reply()
            if code != 250:
                c.close()
                raise _Fail(code, text)
        return c

    async def _transaction(self, c: _Conn, msg: Outgoing, rec: Record) -> None:
        """MAIL/RCPT/DATA for one message; raises _Fail with the deciding
        reply unless the content was accepted."""
        w = c.w
        cmds = [f"MAIL FROM:<{msg.sender}>\r\n".encode()]
        cmds += [f"RCPT TO:<{r}>\r\n".encode() for r in msg.rcpts]
        rec.start = time.time()
        if c.pipelining:
            w.write(b"".join(cmds) + b"DATA\r\n")
            replies = [await c.reply() for _ in range(len(cmds) + 1)]
        else:
            replies = []
            for cmd in cmds:
                w.write(cmd)
                replies.append(await c.reply())
                if len(replies) == 1 and replies[0][0] != 250:
                    break
            if replies[0][0] == 250 and any(x[0] in (250, 251) for x in replies[1:]):
                w.write(b"DATA\r\n")
                replies.append(await c.reply())
        mail = replies[0]
        if mail[0] != 250:
            if c.pipelining and replies[-1][0] == 354:
                w.write(b".\r\n")           # the server took DATA after all: end it
                await c.reply()
            raise _Fail(*mail)
        rcpt = replies[1:1 + len(msg.rcpts)]
        data = replies[1 + len(msg.rcpts)] if len(replies) > 1 + len(msg.rcpts) else None
        ok = [x for x in rcpt if x[0] in (250, 251)]
        if ok:          # refused recipients of a message that goes to the others
            self._count_defers(rec, rcpt)
        else:
            if data is not None and data[0] == 354:
                w.write(b".\r\n")
                await c.reply()
            # every recipient refused: a 5xx decides over 4xx only when all are 5xx
            worst = next((x for x in rcpt if x[0] // 100 == 4), rcpt[0])
            raise _Fail(*worst)
        if data is None or data[0] != 354:
            raise _Fail(*(data or (None, "no reply to DATA")))
        bid = f"{self.o.id_prefix}-{msg.seq}".encode()
        w.write(ID_HEADER + b": " + bid + CRLF)
        w.write(msg.data)
        w.write(b".\r\n")
        t_dot = time.time()
        code, text = await c.reply()
        now = time.time()
        if code != 250:
            raise _Fail(code, text)
        rec.latency = now - t_dot
        rec.sched_latency = now - rec.attempt_due
        rec.done = now
        rec.outcome, rec.code, rec.reply = "accepted", code, text[:200]

    def _count_defers(self, rec: Record, replies: Iterable[tuple[int, str]]) -> None:
        for code, text in replies:
            if code // 100 == 4:
                if self.expect_rx is not None and self.expect_rx.search(text):
                    rec.defers_expected += 1
                else:
                    rec.defers_unexpected += 1

    async def run(self, messages: Sequence[Outgoing]) -> SourceResult:
        o = self.o
        loop = asyncio.get_running_loop()
        started = time.time()
        t0 = loop.time()
        recs = {m.seq: Record(id=f"{o.id_prefix}-{m.seq}", seq=m.seq, cls=m.cls, kind=m.kind,
                              size=len(m.data)) for m in messages}
        # due times (loop clock) of the first attempts
        heap: list[tuple[float, int, int]] = []
        t = 0.0
        for i, m in enumerate(messages):
            if o.rate:
                if o.arrival == "poisson":
                    t += self.rng.expovariate(o.rate)
                    due = t
                else:
                    due = i / o.rate
            else:
                due = 0.0
            heap.append((t0 + due, i, m.seq))
            recs[m.seq].due = recs[m.seq].attempt_due = started + due
        heapq.heapify(heap)
        by_seq = {m.seq: m for m in messages}
        sem = asyncio.Semaphore(max(1, o.sessions))
        wake = asyncio.Event()
        inflight: set[asyncio.Task] = set()
        total = len(messages)
        finished = 0
        end_at = t0 + o.deadline if o.deadline else None
        counter = total

        def done_cb(task: asyncio.Task) -> None:
            inflight.discard(task)
            sem.release()
            wake.set()

        async def session(first: int) -> None:
            nonlocal finished, counter
            seq: int | None = first
            sent = 0
            c: _Conn | None = None
            try:
                while seq is not None:
                    msg, rec = by_seq[seq], recs[seq]
                    rec.attempts += 1
                    rec.start = time.time()
                    retry = False
                    try:
                        if c is None:
                            c = await asyncio.wait_for(self._connect(msg), o.timeout)
                        await asyncio.wait_for(self._transaction(c, msg, rec), o.timeout)
                    except _Fail as f:
                        rec.code, rec.reply, rec.done = f.code, f.text[:200], time.time()
                        if f.code is not None and f.code // 100 == 4:
                            self._count_defers(rec, [(f.code, f.text)])
                            rec.outcome = "deferred"
                            retry = (msg.retry and self.retry_rx is not None
                                     and rec.attempts < o.max_attempts
                                     and bool(self.retry_rx.search(f.text)))
                        elif f.code is not None and f.code // 100 == 5:
                            rec.outcome = "rejected"
                        else:
                            rec.outcome = "error"
                        if f.code == 421 and c is not None:
                            c.close()
                            c = None
                    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                        rec.outcome, rec.done = "error", time.time()
                        rec.reply = f"{type(e).__name__}: {e}"[:200]
                        if c is not None:
                            c.close()
                        c = None
                    if not rec.first_done:
                        rec.first_done = rec.done or time.time()
                    if retry:
                        lo, hi = o.retry_after
                        delay = self.rng.uniform(lo, hi)
                        rec.attempt_due = time.time() + delay
                        heapq.heappush(heap, (loop.time() + delay, counter, seq))
                        counter += 1
                        wake.set()
                    else:
                        finished += 1
                        if o.progress is not None:
                            o.progress(finished, total)
                    sent += 1
                    seq = None
                    # the next message over the same connection: one that is due now
                    if (c is not None and sent < o.messages_per_session and heap
                            and heap[0][0] <= loop.time()):
                        seq = heapq.heappop(heap)[2]
                if c is not None:
                    try:
                        c.w.write(b"QUIT\r\n")
                        await asyncio.wait_for(c.reply(), 2.0)
                    except (TimeoutError, OSError, ConnectionResetError):
                        pass
            finally:
                if c is not None:
                    c.close()

        while heap or inflight:
            if end_at is not None and loop.time() >= end_at:
                break
            if not heap:
                wake.clear()
                await _wait_event(wake, end_at, loop)
                continue
            due = heap[0][0]
            now = loop.time()
            if due > now:
                wake.clear()
                limit = due if end_at is None else min(due, end_at)
                await _wait_event(wake, limit, loop)
                continue
            await sem.acquire()
            if not heap:            # a retry may have been taken by a session
                sem.release()
                continue
            _, _, seq = heapq.heappop(heap)
            task = asyncio.ensure_future(session(seq))
            inflight.add(task)
            task.add_done_callback(done_cb)
        for task in list(inflight):
            task.cancel()
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
        for _, _, seq in heap:
            if recs[seq].outcome == "deferred":
                continue
            recs[seq].outcome = "unfinished"
        return SourceResult(records=[recs[m.seq] for m in messages], started=started,
                            finished=time.time(), sessions_opened=self.sessions_opened,
                            options={"sessions": o.sessions, "rate": o.rate,
                                     "pipelining": o.pipelining, "arrival": o.arrival,
                                     "messages_per_session": o.messages_per_session})


async def _wait_event(ev: asyncio.Event, until: float | None, loop) -> None:
    if until is None:
        await ev.wait()
        return
    delay = until - loop.time()
    if delay <= 0:
        return
    try:
        await asyncio.wait_for(ev.wait(), delay)
    except TimeoutError:
        pass


def run_source(messages: Sequence[Outgoing], opts: SourceOptions) -> SourceResult:
    """Run the generator in a new event loop (uvloop when installed)."""
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.Runner()
    with runner:
        return runner.run(Source(opts).run(messages))
