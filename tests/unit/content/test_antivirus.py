"""postier.content.antivirus: scanner specs, clamd replies, INSTREAM framing,
failover, timeouts and the size-limit error -- against a fake clamd that
speaks the protocol on a unix socket (the real clamd is in
tests/integration/content)."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from postier.content.antivirus import (
    CHUNK,
    ONE_WRITE,
    Antivirus,
    ClamdClient,
    FileSource,
    ScannerError,
    parse_reply,
    parse_scanner,
    parse_scanners,
)
from postier.errors import ConfigError

# ----------------------------------------------------------------------------- specs


def test_parse_scanner_forms():
    s = parse_scanner("clamd:unix:/run/clamav/clamd.ctl")
    assert (s.family, s.path) == ("unix", "/run/clamav/clamd.ctl")
    s = parse_scanner("clamd:inet:127.0.0.1:3310")
    assert (s.family, s.host, s.port) == ("inet", "127.0.0.1", 3310)
    s = parse_scanner("clamd:inet:[::1]:3310")
    assert (s.family, s.host, s.port) == ("inet", "::1", 3310)
    assert parse_scanner("clamd:/tmp/c.sock").path == "/tmp/c.sock"
    s = parse_scanner("CLAMD:127.0.0.1:3310")
    assert (s.family, s.port) == ("inet", 3310)
    assert s.label == "CLAMD:127.0.0.1:3310"
    assert [x.family for x in parse_scanners(["clamd:/a", "clamd:inet:h:1", " "])] == [
        "unix", "inet"]


@pytest.mark.parametrize("text", ["sophie:/x", "clamd:unix:relative/path", "clamd:inet:host",
                                  "clamd:inet:host:99999", "clamd:inet:[::1:3310", "clamd"])
def test_parse_scanner_errors(text):
    with pytest.raises(ConfigError, match="av_scanners"):
        parse_scanner(text)


# ----------------------------------------------------------------------------- replies


def test_parse_reply():
    assert parse_reply(b"stream: OK\0") == []
    assert parse_reply(b"stream: Eicar-Signature FOUND\0") == ["Eicar-Signature"]
    assert parse_reply(b"stream: A FOUND\0stream: B.C FOUND\0") == ["A", "B.C"]
    assert parse_reply(b"stream: Heuristics.Broken.Executable FOUND\n") == [
        "Heuristics.Broken.Executable"]
    with pytest.raises(ScannerError, match="size limit exceeded"):
        parse_reply(b"INSTREAM size limit exceeded. ERROR\0")
    with pytest.raises(ScannerError, match="unexpected reply"):
        parse_reply(b"UNKNOWN COMMAND\0")
    with pytest.raises(ScannerError, match="empty reply"):
        parse_reply(b"\0")


# ----------------------------------------------------------------------------- fake clamd


class FakeClamd:
    """A unix-socket server speaking zINSTREAM; `mode` decides the answer:
    scan (FOUND when the stream contains VIRUS), error, silent, limit:N, close."""

    def __init__(self, path: str, mode: str = "scan"):
        self.path = path
        self.mode = mode
        self.streams: list[bytes] = []
        self.chunk_sizes: list[list[int]] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> FakeClamd:
        self.server = await asyncio.start_unix_server(self.handle, self.path)
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            cmd = await reader.readuntil(b"\0")
            if cmd != b"zINSTREAM\0":
                writer.write(b"UNKNOWN COMMAND\0")
                return
            if self.mode == "close":
                return
            limit = int(self.mode[6:]) if self.mode.startswith("limit:") else None
            data = bytearray()
            sizes: list[int] = []
            while True:
                (n,) = struct.unpack(">I", await reader.readexactly(4))
                if n == 0:
                    break
                sizes.append(n)
                data += await reader.readexactly(n)
                if limit is not None and len(data) > limit:
                    writer.write(b"INSTREAM size limit exceeded. ERROR\0")
                    return
            self.streams.append(bytes(data))
            self.chunk_sizes.append(sizes)
            if self.mode == "silent":
                await asyncio.sleep(30)
            elif self.mode == "error":
                writer.write(b"stream: Can't allocate memory ERROR\0")
            elif b"VIRUS" in data:
                writer.write(b"stream: Test.Virus FOUND\0")
            else:
                writer.write(b"stream: OK\0")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()


def run(coro):
    return asyncio.run(coro)


def spec(path: str):
    return parse_scanner(f"clamd:unix:{path}")


def test_instream_small_and_large_framing(tmp_path):
    async def go():
        fake = await FakeClamd(str(tmp_path / "c.sock")).start()
        try:
            client = ClamdClient(spec(fake.path), timeout=10)
            assert await client.instream(b"hello world\n") == []
            big = bytes(range(256)) * ((ONE_WRITE + 3 * CHUNK) // 256 + 7)
            assert await client.instream(big + b"VIRUS") == ["Test.Virus"]
            assert await client.instream(b"") == []
            return fake
        finally:
            await fake.stop()
    fake = run(go())
    assert fake.streams[0] == b"hello world\n"
    assert fake.chunk_sizes[0] == [12]
    big = fake.streams[1]
    assert big.endswith(b"VIRUS") and len(big) > ONE_WRITE
    assert max(fake.chunk_sizes[1]) == CHUNK and len(fake.chunk_sizes[1]) > 1
    assert fake.streams[2] == b"" and fake.chunk_sizes[2] == []


def test_file_source_offset_and_size(tmp_path):
    p = tmp_path / "q"
    p.write_bytes(b"HEADERxxmessage body VIRUS here\nTRAILER")
    src = FileSource(str(p), 8, len(b"message body VIRUS here\n"))
    assert src.read(0, 1000) == b"message body VIRUS here\n"
    assert src.read(13, 5) == b"VIRUS"

    async def go():
        fake = await FakeClamd(str(tmp_path / "c.sock")).start()
        try:
            r = await Antivirus([spec(fake.path)]).scan(src)
            return r, fake.streams
        finally:
            await fake.stop()
    r, streams = run(go())
    src.close()
    assert r.status == "infected" and r.viruses == ["Test.Virus"]
    assert streams == [b"message body VIRUS here\n"]


def test_failover_to_secondary(tmp_path):
    dead = str(tmp_path / "dead.sock")

    async def go():
        fake = await FakeClamd(str(tmp_path / "c.sock")).start()
        try:
            av = Antivirus([spec(dead), spec(fake.path)], timeout=5)
            return await av.scan(b"a VIRUS b"), await av.scan(b"clean")
        finally:
            await fake.stop()
    infected, clean = run(go())
    assert infected.status == "infected" and infected.scanner.endswith("c.sock")
    assert infected.failures == [f"clamd:unix:{dead}: No such file or directory"]
    assert clean.status == "clean" and clean.viruses == []


@pytest.mark.parametrize("mode,reason", [
    ("error", "Can't allocate memory ERROR"),
    ("close", "connection closed without a reply"),
    ("limit:1000", "INSTREAM size limit exceeded"),
])
def test_scanner_failures_fall_through(tmp_path, mode, reason):
    async def go():
        bad = await FakeClamd(str(tmp_path / "bad.sock"), mode).start()
        good = await FakeClamd(str(tmp_path / "good.sock")).start()
        try:
            one = await Antivirus([spec(bad.path)]).scan(b"x" * 5000)
            two = await Antivirus([spec(bad.path), spec(good.path)]).scan(b"x" * 5000)
            return one, two
        finally:
            await bad.stop()
            await good.stop()
    one, two = run(go())
    assert one.status == "failed" and reason in one.failures[0]
    assert two.status == "clean" and reason in two.failures[0]


def test_size_limit_on_a_large_stream_is_a_failure(tmp_path):
    # clamd stops reading and closes while we are still sending chunks
    async def go():
        fake = await FakeClamd(str(tmp_path / "c.sock"), f"limit:{CHUNK}").start()
        try:
            return await Antivirus([spec(fake.path)]).scan(b"y" * (ONE_WRITE + 4 * CHUNK))
        finally:
            await fake.stop()
    r = run(go())
    assert r.status == "failed"
    # the reply clamd wrote before closing is read even though the send failed
    assert "INSTREAM size limit exceeded. ERROR" in r.failures[0]


def test_timeout(tmp_path):
    async def go():
        fake = await FakeClamd(str(tmp_path / "c.sock"), "silent").start()
        try:
            return await Antivirus([spec(fake.path)], timeout=0.3).scan(b"x")
        finally:
            await fake.stop()
    r = run(go())
    assert r.status == "failed" and "timed out after 0.3s" in r.failures[0]


def test_no_scanner_is_a_failure():
    r = run(Antivirus([]).scan(b"x"))
    assert r.status == "failed" and r.failures == ["no scanner configured"]


def test_command_ping(tmp_path):
    path = str(tmp_path / "p.sock")

    async def go():
        async def h(reader, writer):
            cmd = await reader.readuntil(b"\0")
            writer.write(b"PONG\0" if cmd == b"zPING\0" else b"?\0")
            await writer.drain()
            writer.close()
        srv = await asyncio.start_unix_server(h, path)
        try:
            return await ClamdClient(spec(path)).command("PING")
        finally:
            srv.close()
            await srv.wait_closed()
    assert run(go()) == "PONG"
    assert not os.path.exists(str(tmp_path / "dead"))
