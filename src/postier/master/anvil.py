"""Anvil shared by all smtpd workers: connection count and rate per client.

Postfix's anvil(8) is a server that smtpd asks at each connection.  postier
keeps the same table in shared memory instead: the master creates it (a
memfd, mapped MAP_SHARED) before it forks the workers, and each worker
updates it in place under a POSIX record lock on the bucket it touches
(lockf(3); released by the kernel if a worker dies holding it).  A connect
costs a hash, a lock, a few struct reads and writes, an unlock: a few
microseconds, no round trip to another process.

Layout: NBUCKETS buckets of WAYS slots.  A slot holds the client key (16
bytes of BLAKE2b over `service\\0address`, so limits are per master.cf
service as in Postfix), the end of the current rate window (CLOCK_MONOTONIC
seconds, system-wide), the connection rate in that window, and one 16-bit
connection count per worker *column*.  Each worker process owns a column;
when a worker dies (crash, kill -9) the master zeroes its column, so the
connections it held stop counting (Postfix: anvil sees the disconnects when
the dead smtpd's sockets close).  The count of a client is the sum of its
columns.

The rate follows Postfix's anvil: a window of $anvil_rate_time_unit starts
at a client's first connection; each connection in the window adds one; the
first connection after the window starts a new one.  A slot is free again
when its counts are all zero and its window is over.  When every slot of a
bucket is in use, the connection is not counted (fail open) and a warning
is logged at most once a minute.

    table = SharedAnvil.create(columns=64)          # master, before fork
    view = table.view("smtp", column)               # worker: SmtpdServer.anvil
    view.connect(addr, unit, rate_on) -> (count, rate)
    view.disconnect(addr)
    table.clear_column(column)                      # master, after a worker died

Parameters read: none (smtpd passes anvil_rate_time_unit per connect).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import time

from postier import log

NBUCKETS = 1024
WAYS = 8
HEAD = struct.Struct("<16sdi")          # key, window end, rate
HEAD_SIZE = HEAD.size + 4               # + padding to 8-byte alignment of counts
ZERO_KEY = bytes(16)


class SharedAnvil:
    """The shared table (see the module docstring)."""

    def __init__(self, fd: int, columns: int, nbuckets: int = NBUCKETS, ways: int = WAYS):
        self.fd = fd
        self.columns = columns
        self.nbuckets = nbuckets
        self.ways = ways
        self.slot_size = HEAD_SIZE + 2 * columns
        self.bucket_size = self.slot_size * ways
        self.size = self.bucket_size * nbuckets
        self.mem = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._warned = 0.0

    @classmethod
    def create(cls, columns: int = 64, nbuckets: int = NBUCKETS, ways: int = WAYS) -> SharedAnvil:
        fd = os.memfd_create("postier-anvil", 0)     # close-on-exec, inherited by fork
        size = (HEAD_SIZE + 2 * columns) * ways * nbuckets
        os.ftruncate(fd, size)
        return cls(fd, columns, nbuckets, ways)

    def close(self) -> None:
        try:
            self.mem.close()
        except (BufferError, ValueError):
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass

    def view(self, service: str, column: int) -> AnvilView:
        return AnvilView(self, service, column)

    # -- locking ---------------------------------------------------------------
    def _lock(self, start: int, length: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX, length, start, os.SEEK_SET)

    def _unlock(self, start: int, length: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, length, start, os.SEEK_SET)

    # -- operations ------------------------------------------------------------
    @staticmethod
    def key(service: str, addr: str) -> bytes:
        return hashlib.blake2b(f"{service}\0{addr}".encode("utf-8", "surrogateescape"),
                               digest_size=16).digest()

    def _counts(self, off: int) -> memoryview:
        return memoryview(self.mem)[off + HEAD_SIZE: off + self.slot_size].cast("H")

    def connect(self, key: bytes, column: int, unit: float, rate_on: bool = True
                ) -> tuple[int, int]:
        """Count a connection of `key` in `column`; (count, rate) after it."""
        base = (int.from_bytes(key[:4], "little") % self.nbuckets) * self.bucket_size
        now = time.monotonic()
        mem = self.mem
        self._lock(base, self.bucket_size)
        try:
            found = free = -1
            for i in range(self.ways):
                off = base + i * self.slot_size
                k, end, rate = HEAD.unpack_from(mem, off)
                if k == key:
                    found = off
                    break
                if free < 0 and (k == ZERO_KEY or (now >= end and not any(self._counts(off)))):
                    free = off
            if found < 0:
                if free < 0:
                    self._full(now)
                    return 1, 1
                found = free
                mem[found + HEAD_SIZE:found + self.slot_size] = bytes(2 * self.columns)
                HEAD.pack_into(mem, found, key, now + unit, 1)
                rate = 1
            else:
                _, end, rate = HEAD.unpack_from(mem, found)
                if rate_on:
                    if now >= end:
                        rate, end = 1, now + unit
                    else:
                        rate += 1
                    HEAD.pack_into(mem, found, key, end, rate)
            counts = self._counts(found)
            if counts[column] < 0xFFFF:
                counts[column] += 1
            total = sum(counts)
            counts.release()
            return total, rate if rate_on else 0
        finally:
            self._unlock(base, self.bucket_size)

    def disconnect(self, key: bytes, column: int) -> None:
        base = (int.from_bytes(key[:4], "little") % self.nbuckets) * self.bucket_size
        mem = self.mem
        self._lock(base, self.bucket_size)
        try:
            for i in range(self.ways):
                off = base + i * self.slot_size
                if mem[off:off + 16] == key:
                    counts = self._counts(off)
                    if counts[column]:
                        counts[column] -= 1
                    counts.release()
                    return
        finally:
            self._unlock(base, self.bucket_size)

    def count(self, key: bytes) -> int:
        """The client's connection count (all columns); for tests and logs."""
        base = (int.from_bytes(key[:4], "little") % self.nbuckets) * self.bucket_size
        for i in range(self.ways):
            off = base + i * self.slot_size
            if self.mem[off:off + 16] == key:
                counts = self._counts(off)
                total = sum(counts)
                counts.release()
                return total
        return 0

    def clear_column(self, column: int) -> None:
        """Forget every connection counted in `column` (its worker is gone)."""
        self._lock(0, self.size)
        try:
            pos = HEAD_SIZE + 2 * column
            for slot in range(self.nbuckets * self.ways):
                off = slot * self.slot_size + pos
                self.mem[off:off + 2] = b"\0\0"
        finally:
            self._unlock(0, self.size)

    def _full(self, now: float) -> None:
        if now - self._warned >= 60:
            self._warned = now
            log.warning("anvil: connection table bucket full: a client's connections are "
                        "not counted (too many concurrent clients)")


class AnvilView:
    """What SmtpdServer.anvil needs: connect(addr, unit, rate) -> (count,
    rate) and disconnect(addr), for one service and one worker column."""

    def __init__(self, table: SharedAnvil, service: str, column: int):
        self.table = table
        self.service = service
        self.column = column

    def connect(self, addr: str, unit: float, rate: bool = True) -> tuple[int, int]:
        return self.table.connect(SharedAnvil.key(self.service, addr), self.column, unit, rate)

    def disconnect(self, addr: str) -> None:
        self.table.disconnect(SharedAnvil.key(self.service, addr), self.column)
