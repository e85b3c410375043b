"""Pure-Python twin of postier._native.hashtable: the `hash:` table file.

Same API and the same on-disk format as the Cython module (files written by
either are byte-identical); POSTIER_PURE=1 selects this one.  Reads no
main.cf parameters.

On-disk format (all integers little-endian), version 1:

    header, 64 bytes:
        0   8s  magic b"PSTRHASH"
        8   u32 version (1)
        12  u32 flags (bit 0: keys were case-folded at build time)
        16  u64 count       number of entries
        24  u64 nslots      number of slots (count * 5 // 3 + 1, at least 8)
        32  u64 slots_off   always 64
        40  u64 heap_off    64 + nslots * 8
        48  u64 heap_size   bytes of records
        56  u64 file_size   heap_off + heap_size (detects truncation)
    slots, nslots * 8 bytes, open addressing with linear probing:
        u32 tag             high 32 bits of the key's 64-bit hash
        u32 ref             0 = empty, else (record offset in heap) / 4 + 1
    heap, records in insertion order, each padded to a multiple of 4 bytes:
        u32 key_len, u32 value_len, key bytes, value bytes, padding

The hash is FNV-1a 64 followed by the MurmurHash3 fmix64 finalizer; the
home slot is hash % nslots.  Keys and values are UTF-8 bytes (any bytes are
stored as given).  Every offset read from a file is checked against the
file size before it is used, so a corrupt or truncated file raises
MapError, never reads out of bounds.

Writers build into a temporary file in the same directory, fsync it and
rename it over the old table: a reader never sees a half-built table.  A
reader keeps the file mapped (read-only, shared page cache) and
`reopen_if_changed()` re-maps it when (st_dev, st_ino, st_mtime_ns,
st_size) changed, at most once per `interval` seconds.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator

from postier.errors import MapError

MAGIC = b"PSTRHASH"
VERSION = 1
HEADER_SIZE = 64
SLOT_SIZE = 8
FLAG_FOLDED = 1
MIN_SLOTS = 8
MAX_HEAP = (0xFFFFFFFF - 1) * 4

_HEADER = struct.Struct("<8sIIQQQQQQ")
_SLOT = struct.Struct("<II")
_REC = struct.Struct("<II")

_M64 = 0xFFFFFFFFFFFFFFFF
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3

# Berkeley DB files (what Postfix's postmap writes): magic at offset 12
# (DB 2.x and later) or 0 (DB 1.85), in either byte order.
_BDB_MAGICS = (0x061561, 0x053162, 0x042253, 0x040988)


def hash_key(key: bytes) -> int:
    """The 64-bit hash of `key`: FNV-1a 64, then the fmix64 finalizer."""
    h = _FNV_OFFSET
    for b in key:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    h ^= h >> 33
    return h


def slot_count(count: int) -> int:
    """Slots for `count` entries: load factor at most 0.6, never full."""
    return max(MIN_SLOTS, count * 5 // 3 + 1)


def is_berkeley_db(head: bytes) -> bool:
    """True when `head` (the first bytes of a file) looks like Berkeley DB."""
    for off in (12, 0):
        if len(head) >= off + 4:
            for order in ("little", "big"):
                if int.from_bytes(head[off:off + 4], order) in _BDB_MAGICS:
                    return True
    return False


def _source_name(path: str) -> str:
    return path[:-3] if path.endswith(".db") else path


def _rebuild_hint(path: str) -> str:
    return f"rebuild it with `postier map hash:{_source_name(path)}`"


# ------------------------------------------------------------------ build

def build(path: str, entries: Iterable[tuple[bytes, bytes]], fold_flag: bool = False,
          dup: str = "warn", on_duplicate: Callable[[bytes], None] | None = None,
          mode: int = 0o644, owner: tuple[int, int] | None = None) -> tuple[int, int]:
    """Write the table `path` from (key, value) byte pairs, atomically.

    dup: "warn" (first wins, on_duplicate(key) is called), "ignore" (first
    wins, silently) or "replace" (last wins).  fold_flag is recorded in the
    header (keys are stored exactly as given).  mode/owner apply to the new
    file.  Returns (entries written, duplicates seen)."""
    if dup not in ("warn", "ignore", "replace"):
        raise ValueError(f"dup must be warn, ignore or replace, not {dup!r}")
    index: dict[bytes, int] = {}
    keys: list[bytes] = []
    values: list[bytes] = []
    dups = 0
    for key, value in entries:
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise TypeError("hash table keys and values must be bytes")
        if len(key) > 0xFFFFFFFF or len(value) > 0xFFFFFFFF:
            raise MapError("key or value too long (4 GiB limit)", path=path)
        i = index.get(key)
        if i is None:
            index[key] = len(keys)
            keys.append(key)
            values.append(value)
            continue
        dups += 1
        if dup == "replace":
            values[i] = value
        elif dup == "warn" and on_duplicate is not None:
            on_duplicate(key)
    count = len(keys)
    nslots = slot_count(count)
    heap = bytearray()
    slots = bytearray(nslots * SLOT_SIZE)
    for key, value in zip(keys, values, strict=True):
        rel = len(heap)
        if rel > MAX_HEAP:
            raise MapError("table too large (16 GiB heap limit)", path=path)
        heap += _REC.pack(len(key), len(value))
        heap += key
        heap += value
        pad = -len(heap) & 3
        if pad:
            heap += b"\0" * pad
        h = hash_key(key)
        i = h % nslots
        while _SLOT.unpack_from(slots, i * SLOT_SIZE)[1]:
            i += 1
            if i == nslots:
                i = 0
        _SLOT.pack_into(slots, i * SLOT_SIZE, h >> 32, rel // 4 + 1)
    heap_off = HEADER_SIZE + nslots * SLOT_SIZE
    header = _HEADER.pack(MAGIC, VERSION, FLAG_FOLDED if fold_flag else 0, count, nslots,
                          HEADER_SIZE, heap_off, len(heap), heap_off + len(heap))
    write_atomic(path, (header, slots, heap), mode, owner)
    return count, dups


def write_atomic(path: str, chunks: Iterable[bytes | bytearray | memoryview], mode: int,
                 owner: tuple[int, int] | None) -> None:
    """Write `chunks` to a temp file next to `path`, fsync, rename over `path`."""
    import tempfile

    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp", dir=directory)
    except OSError as e:
        raise MapError(f"open database {path}: {e.strerror}") from None
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise MapError(f"write database {path}: {e.strerror}") from None
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ------------------------------------------------------------------ read

class HashTable:
    """A read-only, memory-mapped `hash:` table file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mm: mmap.mmap | None = None
        self._checked = time.monotonic()
        self._map()

    # -- opening and validation
    def _map(self) -> None:
        path = self.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise MapError(f"open database {path}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            size = st.st_size
            head = os.pread(fd, HEADER_SIZE, 0)
            _check_header(path, head, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        except OSError as e:
            raise MapError(f"open database {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        (_, _, flags, count, nslots, _, heap_off, heap_size, _) = _HEADER.unpack_from(mm, 0)
        old = self._mm
        self._mm = mm
        self._ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        self.mtime = st.st_mtime
        self.flags = flags
        self.count = count
        self._nslots = nslots
        self._heap_off = heap_off
        self._heap_size = heap_size
        if old is not None:
            old.close()

    @property
    def folded(self) -> bool:
        return bool(self.flags & FLAG_FOLDED)

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __enter__(self) -> HashTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reopen_if_changed(self, interval: float = 1.0) -> bool:
        """Re-map the file if it was replaced since it was mapped.  Checks
        (one os.stat) at most once per `interval` seconds; returns True when
        a new file was mapped."""
        now = time.monotonic()
        if now - self._checked < interval:
            return False
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return False      # being replaced, or removed: keep the old copy
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == self._ident:
            return False
        self._map()
        return True

    # -- lookups
    def _record(self, mm: mmap.mmap, ref: int) -> tuple[int, int, int]:
        """(key offset, key length, value length) of record `ref`, checked."""
        rel = (ref - 1) * 4
        heap_size = self._heap_size
        if rel + 8 > heap_size:
            raise MapError("corrupt hash table: record offset out of range; "
                           + _rebuild_hint(self.path), path=self.path)
        off = self._heap_off + rel
        klen, vlen = _REC.unpack_from(mm, off)
        if rel + 8 + klen + vlen > heap_size:
            raise MapError("corrupt hash table: record extends beyond the end of the file; "
                           + _rebuild_hint(self.path), path=self.path)
        return off + 8, klen, vlen

    def _find(self, key: bytes) -> tuple[int, int] | None:
        mm = self._mm
        if mm is None:
            raise MapError("table is closed", path=self.path)
        h = hash_key(key)
        tag = h >> 32
        nslots = self._nslots
        i = h % nslots
        klen = len(key)
        for _ in range(nslots):
            stag, ref = _SLOT.unpack_from(mm, HEADER_SIZE + i * SLOT_SIZE)
            if ref == 0:
                return None
            if stag == tag:
                koff, rklen, vlen = self._record(mm, ref)
                if rklen == klen and mm[koff:koff + klen] == key:
                    return koff + klen, vlen
            i += 1
            if i == nslots:
                i = 0
        return None

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key` (exact bytes), or None."""
        found = self._find(key)
        if found is None:
            return None
        off, vlen = found
        return self._mm[off:off + vlen]

    def get_text(self, key: bytes) -> str | None:
        """Like get(), decoded as UTF-8 (surrogateescape for bad bytes)."""
        found = self._find(key)
        if found is None:
            return None
        off, vlen = found
        return self._mm[off:off + vlen].decode("utf-8", "surrogateescape")

    def __contains__(self, key: bytes) -> bool:
        return self._find(key) is not None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """All (key, value) pairs, in the order they were added."""
        mm = self._mm
        if mm is None:
            raise MapError("table is closed", path=self.path)
        rel = 0
        seen = 0
        heap_size = self._heap_size
        while rel < heap_size and seen < self.count:
            if self._mm is not mm:
                raise MapError("table was closed or re-mapped during iteration", path=self.path)
            koff, klen, vlen = self._record(mm, rel // 4 + 1)
            yield mm[koff:koff + klen], mm[koff + klen:koff + klen + vlen]
            seen += 1
            rel += 8 + klen + vlen
            rel += -rel & 3
        if seen != self.count:
            raise MapError(f"corrupt hash table: header says {self.count} entries, "
                           f"found {seen}; " + _rebuild_hint(self.path), path=self.path)


def _check_header(path: str, head: bytes, size: int) -> None:
    """Raise MapError unless `head` is a sane version-1 header for a file of
    `size` bytes."""
    hint = _rebuild_hint(path)
    if is_berkeley_db(head):
        raise MapError("this is a Berkeley DB file (made by Postfix postmap?), not a "
                       f"postier hash table; {hint}", path=path)
    if size < HEADER_SIZE or len(head) < HEADER_SIZE:
        if head[:len(MAGIC)] == MAGIC[:len(head)] and head:
            raise MapError(f"corrupt hash table: truncated header ({size} bytes); {hint}",
                           path=path)
        raise MapError(f"not a postier hash table (file too short: {size} bytes); {hint}",
                       path=path)
    (magic, version, _flags, count, nslots, slots_off, heap_off, heap_size,
     file_size) = _HEADER.unpack_from(head, 0)
    if magic != MAGIC:
        raise MapError(f"not a postier hash table (bad magic); {hint}", path=path)
    if version != VERSION:
        raise MapError(f"unsupported hash table version {version} (this postier reads "
                       f"version {VERSION}); {hint}", path=path)
    if file_size != size:
        raise MapError(f"corrupt hash table: file is {size} bytes, header says {file_size} "
                       f"(truncated or damaged); {hint}", path=path)
    if (slots_off != HEADER_SIZE or nslots < 1 or nslots > (size - HEADER_SIZE) // SLOT_SIZE
            or heap_off != HEADER_SIZE + nslots * SLOT_SIZE
            or heap_off + heap_size != size or count >= nslots):
        raise MapError(f"corrupt hash table: inconsistent header sizes; {hint}", path=path)
