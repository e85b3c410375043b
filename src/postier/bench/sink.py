"""The sink: an asyncio SMTP server that accepts everything, like Postfix's smtp-sink.

    sink = Sink(SinkOptions(port=0, defer_fraction=0.1, record_path="arrivals.tsv"))
    await sink.start()            # sink.port is the bound port
    ...
    sink.arrivals                 # [(time.time(), bench_id, size), ...]
    sink.counters                 # sessions, messages, accepted, deferred, rejected, ...
    await sink.close()

It speaks enough ESMTP for any client (EHLO with PIPELINING, 8BITMIME,
SIZE, ENHANCEDSTATUSCODES; HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), reads
pipelined commands, and answers each message at the end of DATA:

* `reject_fraction` of the messages get `550 5.7.1 sink: rejected`,
  `defer_fraction` get `451 4.3.0 sink: deferred` (drawn with a seeded
  random generator, so a run can be repeated);
* the others get `250 2.0.0 Ok: queued as N` and are recorded: the time of
  arrival (time.time()), the message's `X-Bench-Id:` header value (the
  generator's unique id; "-" when there is none) and its size.

`greylist_first`: the first RCPT of each sender address gets `450 4.2.0
Greylisted` (a stand-in for greylisting, to test the generator's retries).

For testing the accounting, `drop_fraction` of the accepted messages are
answered 250 but not recorded (lost), and `duplicate_fraction` are recorded
twice (duplicated).

`record_path`: the arrivals are also appended to this file, one
`TIME<TAB>ID<TAB>SIZE` line each, written out at least every 0.2 s and on
close, so another process can follow them (`RecordTail`).  Counters are
printed by the CLI (`postier bench sink`) on exit, like smtp-sink -c.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

END = b"\r\n.\r\n"


@dataclass
class SinkOptions:
    host: str = "127.0.0.1"
    port: int = 0
    defer_fraction: float = 0.0
    reject_fraction: float = 0.0
    drop_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    record_path: str | None = None
    seed: int = 1
    hostname: str = "sink.example.test"
    keep_in_memory: bool = True
    greylist_first: bool = False    # 450 "Greylisted" to the first RCPT of each new sender


class _Proto(asyncio.Protocol):
    def __init__(self, sink: Sink):
        self.sink = sink
        self.buf = bytearray()
        self.in_data = False
        self.sender = b""
        self.tr: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.tr = transport
        self.sink.counters["sessions"] += 1
        transport.write(f"220 {self.sink.o.hostname} ESMTP postier-bench-sink\r\n".encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        start = max(0, len(buf) - 4)
        buf += data
        out = []
        while True:
            if self.in_data:
                i = buf.find(END, start)
                if i < 0:
                    break
                msg = bytes(buf[2:i + 2])       # buf starts with the CRLF put there at DATA
                del buf[:i + len(END)]
                self.in_data = False
                out.append(self.sink._message(msg))
                start = 0
                continue
            i = buf.find(b"\n")
            if i < 0:
                break
            line = bytes(buf[:i]).rstrip(b"\r")
            del buf[:i + 1]
            verb = line[:4].upper()
            if verb in (b"EHLO",):
                h = self.sink.o.hostname
                out.append(f"250-{h}\r\n250-PIPELINING\r\n250-SIZE 0\r\n250-8BITMIME\r\n"
                           f"250 ENHANCEDSTATUSCODES\r\n".encode())
            elif verb == b"HELO":
                out.append(f"250 {self.sink.o.hostname}\r\n".encode())
            elif verb == b"MAIL":
                self.sender = line[10:].strip().lower()
                out.append(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                seen = self.sink.greylisted
                if self.sink.o.greylist_first and self.sender not in seen:
                    seen.add(self.sender)
                    self.sink.counters["greylisted"] += 1
                    out.append(b"450 4.2.0 Greylisted, see the sink\r\n")
                else:
                    out.append(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                self.in_data = True
                buf[0:0] = b"\r\n"
                start = 0
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                self.sink.counters["quits"] += 1
                if self.tr is not None:
                    self.tr.write(b"".join(out))
                    self.tr.close()
                return
            elif verb in (b"RSET", b"NOOP"):
                out.append(b"250 2.0.0 Ok\r\n")
            else:
                out.append(b"502 5.5.2 Error: command not recognized\r\n")
        if out and self.tr is not None:
            self.tr.write(b"".join(out))


class Sink:
    def __init__(self, opts: SinkOptions):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.counters = {"sessions": 0, "quits": 0, "messages": 0, "accepted": 0,
                         "deferred": 0, "rejected": 0, "dropped": 0, "duplicated": 0,
                         "greylisted": 0}
        self.greylisted: set[bytes] = set()
        self.arrivals: list[tuple[float, str, int]] = []
        self._pending: list[str] = []
        self._rec = None
        self._server: asyncio.base_events.Server | None = None
        self._flusher: asyncio.TimerHandle | None = None
        self.port = opts.port

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        if self.o.record_path:
            self._rec = open(self.o.record_path, "a", buffering=1 << 16)
        self._server = await loop.create_server(lambda: _Proto(self), self.o.host, self.o.port,
                                                reuse_address=True, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        self._schedule_flush()
        return self

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._flusher = loop.call_later(0.2, self._flush_tick)

    def _flush_tick(self) -> None:
        self.flush()
        self._schedule_flush()

    def flush(self) -> None:
        if self._rec is not None and self._pending:
            self._rec.write("".join(self._pending))
            self._rec.flush()
        self._pending.clear()

    def _message(self, msg: bytes) -> bytes:
        c = self.counters
        c["messages"] += 1
        r = self.rng.random()
        if r < self.o.reject_fraction:
            c["rejected"] += 1
            return b"550 5.7.1 sink: rejected\r\n"
        if r < self.o.reject_fraction + self.o.defer_fraction:
            c["deferred"] += 1
            return b"451 4.3.0 sink: deferred\r\n"
        c["accepted"] += 1
        n = c["accepted"]
        r2 = self.rng.random()
        if r2 < self.o.drop_fraction:
            c["dropped"] += 1
            return f"250 2.0.0 Ok: queued as {n}\r\n".encode()
        now = time.time()
        bid = bench_id(msg)
        copies = 1
        if r2 < self.o.drop_fraction + self.o.duplicate_fraction:
            c["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            if self.o.keep_in_memory:
                self.arrivals.append((now, bid, len(msg)))
            if self._rec is not None:
                self._pending.append(f"{now:.6f}\t{bid}\t{len(msg)}\n")
        return f"250 2.0.0 Ok: queued as {n}\r\n".encode()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.flush()
        if self._rec is not None:
            self._rec.close()
            self._rec = None

    def counter_line(self) -> str:
        c = self.counters
        return (f"sess={c['sessions']} quit={c['quits']} mesg={c['messages']} "
                f"accepted={c['accepted']} deferred={c['deferred']} rejected={c['rejected']}")


def bench_id(msg: bytes) -> str:
    """The value of the first X-Bench-Id: header of the message's header
    section (it may follow headers the MTA put in front), or "-"."""
    end = msg.find(b"\r\n\r\n")
    head = msg if end < 0 else msg[:end + 2]
    i = head.find(b"X-Bench-Id:")
    if i < 0:
        low = head.lower()
        i = low.find(b"x-bench-id:")
        if i < 0:
            return "-"
    if i > 0 and head[i - 1:i] != b"\n":
        return "-"
    j = head.find(b"\r\n", i)
    return head[i + 11:j if j >= 0 else len(head)].strip().decode("latin-1") or "-"


class RecordTail:
    """Follows a sink's record file from another process: `poll()` returns
    the new (time, id, size) arrivals since the last call."""

    def __init__(self, path: str):
        self.path = path
        self.pos = 0
        self.partial = b""

    def poll(self) -> list[tuple[float, str, int]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        self.pos += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        out = []
        for ln in lines:
            parts = ln.split(b"\t")
            if len(parts) == 3:
                try:
                    out.append((float(parts[0]), parts[1].decode("latin-1"), int(parts[2])))
                except ValueError:
                    continue
        return out


async def serve(opts: SinkOptions, *, ready=None, stop: asyncio.Event | None = None) -> Sink:
    """Run a sink until `stop` is set (or SIGTERM/SIGINT when stop is None)."""
    import signal
    sink = await Sink(opts).start()
    if ready is not None:
        ready(sink)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.close()
    return sink

