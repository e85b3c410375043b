"""DATA framing throughput: postier's native and pure readers against two baselines.

Each message (2 KB, 50 KB, 30 MB of text with some dot-stuffed lines) is fed in
64 KiB chunks, the way the SMTP server reads the socket, and read up to the end
marker:
  native     postier._native.dataframe.DataReader (memchr/memcpy)
  pure       postier._pure.dataframe.DataReader (bytes methods)
  naive      accumulate everything, then bytes.replace + a Python line loop
  aiosmtpd   aiosmtpd's SMTP.smtp_DATA way: StreamReader-style readuntil(b"\\r\\n")
             per line into a list of bytearrays, `startswith(b".")` unstuffing,
             one join at the end (emulated without the event loop, so it is a
             lower bound on aiosmtpd's real cost)
Throughput (MB/s of wire bytes) goes into each benchmark's extra_info and is
printed (-s).  POSTIER_BENCH_SMALL=1 skips the 30 MB size (CI runs
`pytest bench --benchmark-disable` with it).  No timing assertions.
"""

from __future__ import annotations

import functools
import importlib
import os
import random
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC not in sys.path:  # like tests/conftest.py: run from a checkout without installing
    sys.path.insert(0, SRC)

pure = importlib.import_module("postier._pure.dataframe")
try:
    native = importlib.import_module("postier._native.dataframe")
except ImportError:  # pragma: no cover - the build normally provides it
    native = None

CHUNK = 64 * 1024
EOD = b"\r\n.\r\n"
SIZES = {"2KB": 2 * 1024, "50KB": 50 * 1024, "30MB": 30 * 1024 * 1024}
SMALL = os.environ.get("POSTIER_BENCH_SMALL", "").strip() not in ("", "0")


@functools.cache
def message(size: int) -> tuple[list[bytes], bytes]:
    """(wire chunks, stored content) for a message of about `size` bytes."""
    rng = random.Random(size)
    header = (b"Received: from client.example.org (client.example.org [192.0.2.1])\n"
              b"\tby mx.example.net (postier) with ESMTP id 4AbCdEfGhIj\n"
              b"From: Alice <alice@example.org>\nTo: bob@example.net\n"
              b"Subject: benchmark\nMessage-ID: <bench@example.org>\n\n")
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet,", b"consectetur", b"adipiscing",
             b"elit.", b"sed", b"do", b"eiusmod", b"tempor", b"=3D", b"--boundary"]
    lines = []
    for _ in range(2000):
        r = rng.random()
        if r < 0.03:
            lines.append(b"." + b" ".join(rng.choices(words, k=rng.randrange(0, 8))))
        elif r < 0.08:
            lines.append(b"")
        else:
            lines.append(b" ".join(rng.choices(words, k=rng.randrange(1, 12))))
    block = b"\n".join(lines) + b"\n"
    body = (block * (size // len(block) + 1))[: max(0, size - len(header))]
    content = header + body[: body.rfind(b"\n") + 1]
    wire = pure.stuff(content) + b"QUIT\r\n"
    chunks = [wire[i : i + CHUNK] for i in range(0, len(wire), CHUNK)]
    return chunks, content


def read_with(mod):
    def read(chunks: list[bytes]) -> int:
        r = mod.DataReader()
        stored = 0
        for c in chunks:
            out, consumed = r.feed(c)
            stored += len(out)  # the server writes `out` to the spool file here
            if consumed >= 0:
                break
        return stored
    return read


def read_naive(chunks: list[bytes]) -> bytes:
    buf = bytearray(b"\r\n")
    for c in chunks:
        start = max(0, len(buf) - 4)
        buf += c
        i = buf.find(EOD, start)
        if i >= 0:
            break
    data = bytes(buf[2 : i + 2]).replace(b"\r\n", b"\n")
    out = []
    for line in data.split(b"\n"):
        out.append(line[1:] if line.startswith(b".") else line)
    return b"\n".join(out)


def read_aiosmtpd_style(chunks: list[bytes]) -> bytes:
    """What aiosmtpd 1.4's smtp_DATA does per line, minus the awaits."""
    buf = bytearray()
    data: list[bytearray] = []
    num_bytes = 0
    it = iter(chunks)
    while True:
        isep = buf.find(b"\r\n")
        if isep < 0:  # StreamReader waits for more data
            buf.extend(next(it))
            continue
        line = bytes(buf[: isep + 2])  # readuntil(b"\r\n")
        del buf[: isep + 2]
        if line == b".\r\n":
            break
        num_bytes += len(line)
        line_fragments = [line]
        data.append(bytearray().join(line_fragments))
    for text in data:
        if text.startswith(b"."):
            del text[0]
    return b"".join(data)


def _measure(benchmark, fn, chunks, size_name):
    total = sum(len(c) for c in chunks)
    if size_name == "30MB":
        result = benchmark.pedantic(fn, args=(chunks,), rounds=3, iterations=1, warmup_rounds=0)
    else:
        result = benchmark(fn, chunks)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        mbps = total / stats.stats.mean / 1e6
        benchmark.extra_info["MB/s"] = round(mbps, 1)
        print(f"\n{benchmark.name}: {mbps:.1f} MB/s")
    benchmark.extra_info["wire_bytes"] = total
    return result


def _sizes():
    for name in SIZES:
        marks = [pytest.mark.skip(reason="POSTIER_BENCH_SMALL=1")] if SMALL and name == "30MB" else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("size_name", list(_sizes()))
def test_native(benchmark, size_name):
    if native is None:
        pytest.skip("native module dataframe not built")
    chunks, expected = message(SIZES[size_name])
    benchmark.group = f"dataframe-{size_name}"
    stored = _measure(benchmark, read_with(native), chunks, size_name)
    assert stored == len(expected)


@pytest.mark.parametrize("size_name", list(_sizes()))
def test_pure(benchmark, size_name):
    chunks, expected = message(SIZES[size_name])
    benchmark.group = f"dataframe-{size_name}"
    stored = _measure(benchmark, read_with(pure), chunks, size_name)
    assert stored == len(expected)


@pytest.mark.parametrize("size_name", list(_sizes()))
def test_naive(benchmark, size_name):
    chunks, expected = message(SIZES[size_name])
    benchmark.group = f"dataframe-{size_name}"
    assert _measure(benchmark, read_naive, chunks, size_name) == expected


@pytest.mark.parametrize("size_name", list(_sizes()))
def test_aiosmtpd_style(benchmark, size_name):
    chunks, expected = message(SIZES[size_name])
    benchmark.group = f"dataframe-{size_name}"
    out = _measure(benchmark, read_aiosmtpd_style, chunks, size_name)
    assert out.replace(b"\r\n", b"\n") == expected


def test_same_content_all_readers():
    """The four readers agree on the stored content (checked once, not timed)."""
    chunks, expected = message(SIZES["50KB"])
    mods = [pure] + ([native] if native is not None else [])
    for mod in mods:
        r = mod.DataReader()
        out = b"".join(r.feed(c)[0] for c in chunks)
        assert out == expected and r.done
    assert read_naive(chunks) == expected
    assert read_aiosmtpd_style(chunks).replace(b"\r\n", b"\n") == expected
