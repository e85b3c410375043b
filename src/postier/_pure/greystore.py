"""Pure-Python twin of postier._native.greystore: the greylist store file.

A memory-mapped hash table of greylist entries shared by every process on
one host (smtpd workers, `postier greylistd` workers).  Same API and the
same on-disk format as the Cython module: both write byte-identical files
and work on each other's files.  POSTIER_PURE=1 selects this one.  Reads no
main.cf parameters (postier.policy.store passes the settings in).

What is stored: not the strings postgrey stores, but a 64-bit keyed hash
(BLAKE2b-64 with a per-file random 16-byte salt) of the entry's key text,
plus first-seen, last-seen, a count and the entry kind.  Two kinds: a
greylist triplet (key text "NET/SENDER/RECIPIENT", count = requests seen)
and an auto-whitelisted client (key text "awl:ADDRESS", count = postgrey's
successful-delivery count).  Timestamps are unsigned 32-bit Unix seconds.

On-disk format (all integers little-endian), version 1:

    header, 4096 bytes:
        0    8s  magic b"PSTRGREY"
        8    u32 version (1)
        12   u32 flags: bit 0 MOVED (a rebuilt table replaced this file: reopen the path)
        16   u64 nslots        number of slots, a power of two
        24   u64 live          valid entries
        32   u64 used          slots that are not empty (valid + tombstones)
        40   16s salt          BLAKE2b key of the entry hashes
        56   u64 created       Unix time the table was made
        64   u64 grow_gen      rebuild generation (increments at each rebuild start)
        72   u64 grow_slots    0, or the slot count of PATH.grow being filled
        80   u64 grow_done     slots of this table already copied into PATH.grow
        88   u64 sweep_last    start time of the last expiry pass (at first: created)
        96   u64 sweep_pos     next slot the running expiry pass looks at
        104  u64 sweep_active  1 while an expiry pass runs
        112  4*u64             the running pass: triplets before/after, clients before/after
        256  journal (one pending single-slot update):
        256  u64 jcommit       0 = none, else jsum(the fields below) | 1
        264  u64 jslot         slot index
        272  24s jimage        the slot's new 24 bytes
        296  u64 jlive         the header's new live count
        304  u64 jused         the header's new used count
        312  u64 jflags        bit 0: apply jimage/jlive/jused; bit 1: abandon the rebuild
    slots, nslots * 24 bytes from offset 4096, open addressing, linear probing:
        0    u64 key     0 = empty, 1 = tombstone, else the entry's hash (2 ... 2^64-1)
        8    u32 first   first seen (clients: when first counted)
        12   u32 last    last seen
        16   u32 meta    kind << 28 | count  (kind 1 = triplet, 2 = client; count saturates)
        20   u32 check   slot_check(key, first, last, meta): a torn slot is detected

The home slot of a key is `hash & (nslots - 1)`.  A valid slot has a key >= 2
and a matching check; anything else with a key >= 2 is "damaged": its entry
is lost, never misread; lookups probe past it and the next expiry pass
turns it into a tombstone.  New entries reuse the first tombstone on their
probe path.

Concurrency: one writer at a time per table, by flock(2) on the table file
(LOCK_EX around each operation; `check()` of a read-only file takes
LOCK_SH).  Every greylist decision is a read-modify-write of one triplet
(postgrey's semantics need it atomic), so every operation takes the lock;
it is released by the kernel when a process dies, costs two system calls,
and works the same from the pure twin (which cannot do atomic
compare-and-swap on a mapping).

Crash safety: every slot change goes through the journal: the journal
fields are written, then the commit word, then the slot and the header
counters, then the commit word is cleared.  Whoever takes the lock next
replays a committed journal (idempotent); a torn journal (commit word not
matching) means nothing was changed yet.  So a process killed at any
instant loses at most the update it was making.  After a power failure
(pages reach the disk in any order) the per-slot check turns a torn slot
into a lost entry; `check()` reports it and `check(repair=True)` rebuilds
the table.

Growth without blocking: when more than 3/5 of the slots are used, a
rebuild starts: PATH.grow is created with room for 3 * live entries (a
power of two), and each later operation (and `maintain()`) copies
MIGRATE_CHUNK slots into it while the old table goes on answering; an
update to an already-copied slot is applied to both.  When all slots are
copied, PATH.grow is fsync'd (without the lock; a second, short fsync
under it) and renamed over PATH, and the old file gets the MOVED flag:
each process checks it after taking the lock and re-opens the path (and,
once a second, compares the path's inode with its own).  A crash during a
rebuild abandons it (journal bit 1); it starts again later.

Expiry without stopping lookups: `maintain()` runs an expiry pass at most
once per `interval` seconds, SWEEP_CHUNK slots per call under the lock,
with postgrey's rules (a triplet is removed when last-seen is older than
max_age, or when it never passed and last-seen is older than the retry
window; a client when last-seen is older than max_age).

Hash collisions: two different keys with the same 64-bit hash share one
entry.  With n entries stored, a new key collides with some stored key with
probability n / 2^64 (5.4e-14 at 1M entries), and the chance that any two of
n stored keys collide is about n^2 / 2^65 (2.7e-8 at 1M).  A collision makes
a new triplet look known (it may pass greylisting at once).  The salt keeps
collisions from being chosen by a sender.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Iterator

from postier.errors import PostierError

MAGIC = b"PSTRGREY"
VERSION = 1
HEADER_SIZE = 4096
SLOT_SIZE = 24
MIN_SLOTS = 1024
MIGRATE_CHUNK = 512
SWEEP_CHUNK = 4096
GROW_NUM, GROW_DEN = 3, 5          # rebuild when used * GROW_DEN > nslots * GROW_NUM
REOPEN_CHECK = 1.0                 # seconds between inode checks of the path

EMPTY, TOMB = 0, 1
KIND_TRIPLET, KIND_CLIENT = 1, 2
COUNT_MAX = 0x0FFFFFFF
FLAG_MOVED = 1
J_APPLY, J_ABANDON = 1, 2

# results of greylist()
R_AWL, R_GREYLIST, R_DELAYED, R_PASS = 1, 2, 3, 4

# header offsets
H_FLAGS = 12
H_NSLOTS = 16
H_LIVE = 24
H_USED = 32
H_SALT = 40
H_CREATED = 56
H_GROW_GEN = 64
H_GROW_SLOTS = 72
H_GROW_DONE = 80
H_SWEEP_LAST = 88
H_SWEEP_POS = 96
H_SWEEP_ACTIVE = 104
H_SWEEP_STATS = 112
J_COMMIT = 256
J_SLOT = 264
J_IMAGE = 272
J_LIVE = 296
J_USED = 304
J_FLAGS = 312

_M64 = 0xFFFFFFFFFFFFFFFF
_Q = struct.Struct("<Q")
_I = struct.Struct("<I")
_SLOT = struct.Struct("<QIIII")
_IMAGE3 = struct.Struct("<QQQ")
_HEAD = struct.Struct("<8sIIQQQ16sQ")
_JOURNAL = struct.Struct("<QQ24sQQQ")


class StoreError(PostierError):
    """A greylist store that cannot be opened or used (missing, corrupt, full)."""


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finalizer."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    x ^= x >> 33
    return x


def slot_check(key: int, first: int, last: int, meta: int) -> int:
    """The check word of a valid slot."""
    return fmix64(key ^ fmix64(first | (last << 32)) ^ ((meta * 0x9E3779B97F4A7C15) & _M64)) \
        & 0xFFFFFFFF


def journal_sum(jslot: int, image: bytes, jlive: int, jused: int, jflags: int) -> int:
    """The commit word of a journal record (never 0)."""
    h = 0x243F6A8885A308D3
    for w in (jslot, *_IMAGE3.unpack(image), jlive, jused, jflags):
        h = fmix64(h ^ w)
    return h | 1


def key_hash(salt: bytes, key: bytes) -> int:
    """The stored hash of `key`: BLAKE2b-64 keyed with the file's salt (>= 2)."""
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8, key=salt).digest(), "little")
    return h + 2 if h < 2 else h


def slot_image(key: int, first: int, last: int, meta: int) -> bytes:
    if key < 2:
        return _SLOT.pack(key, 0, 0, 0, 0)
    return _SLOT.pack(key, first, last, meta, slot_check(key, first, last, meta))


def meta_word(kind: int, count: int) -> int:
    return (kind << 28) | min(max(count, 0), COUNT_MAX)


def table_size(nslots: int) -> int:
    return HEADER_SIZE + nslots * SLOT_SIZE


def target_slots(live: int) -> int:
    """Slot count of a rebuilt table holding `live` entries: room for 3x."""
    n = MIN_SLOTS
    while n < live * 3:
        n *= 2
    return n


def header_bytes(nslots: int, salt: bytes, created: int) -> bytes:
    """The header of an empty table (the first expiry pass is due an interval
    after `created`)."""
    head = _HEAD.pack(MAGIC, VERSION, 0, nslots, 0, 0, salt, created)
    head += bytes(H_SWEEP_LAST - len(head)) + _Q.pack(created)
    return head + bytes(HEADER_SIZE - len(head))


def _write_new_file(path: str, nslots: int, salt: bytes, created: int) -> None:
    """An empty table file at `path` (created or truncated)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, table_size(nslots))
        os.pwrite(fd, header_bytes(nslots, salt, created), 0)
    finally:
        os.close(fd)


def create_file(path: str, nslots: int = MIN_SLOTS, salt: bytes | None = None,
                now: int | None = None) -> bool:
    """Create an empty store at `path` unless one exists (atomic: temp file,
    then link(2)).  True when this call created it."""
    if nslots < 8 or nslots & (nslots - 1):
        raise StoreError(f"greylist store {path}: slot count {nslots} is not a power of two >= 8")
    salt = os.urandom(16) if salt is None else salt
    if len(salt) != 16:
        raise StoreError("greylist store salt must be 16 bytes")
    created = int(time.time()) if now is None else now
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        _write_new_file(tmp, nslots, salt, created)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    except OSError as e:
        raise StoreError(f"cannot create greylist store {path}: {e.strerror}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def read_header(buf) -> dict:
    """The header fields of a mapped table (no validation)."""
    magic, version, flags, nslots, live, used, salt, created = _HEAD.unpack_from(buf, 0)
    q = _Q.unpack_from
    return {"magic": magic, "version": version, "flags": flags, "nslots": nslots,
            "live": live, "used": used, "salt": salt, "created": created,
            "grow_gen": q(buf, H_GROW_GEN)[0], "grow_slots": q(buf, H_GROW_SLOTS)[0],
            "grow_done": q(buf, H_GROW_DONE)[0], "sweep_last": q(buf, H_SWEEP_LAST)[0],
            "sweep_pos": q(buf, H_SWEEP_POS)[0], "sweep_active": q(buf, H_SWEEP_ACTIVE)[0],
            "jcommit": q(buf, J_COMMIT)[0]}


def validate_header(path: str, head: bytes, size: int) -> int:
    """Check magic, version and size; the slot count."""
    if size < HEADER_SIZE:
        raise StoreError(f"greylist store {path}: file too short ({size} bytes)")
    magic, version, _flags, nslots = struct.unpack_from("<8sIIQ", head, 0)
    if magic != MAGIC:
        raise StoreError(f"greylist store {path}: not a postier greylist store (bad magic)")
    if version != VERSION:
        raise StoreError(f"greylist store {path}: unsupported version {version}")
    if nslots < 8 or nslots & (nslots - 1):
        raise StoreError(f"greylist store {path}: bad slot count {nslots}")
    if size != table_size(nslots):
        raise StoreError(f"greylist store {path}: size {size} does not match "
                         f"{nslots} slots ({table_size(nslots)} bytes)")
    return nslots


def open_file(path: str, readonly: bool = False) -> tuple[int, int, int]:
    """Open and validate a table file: (fd, size, nslots)."""
    try:
        fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
    except OSError as e:
        raise StoreError(f"cannot open greylist store {path}: {e.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 64, 0)
        nslots = validate_header(path, head, size)
    except BaseException:
        os.close(fd)
        raise
    return fd, size, nslots


def _set_moved(t: _Table) -> None:
    _I.pack_into(t.mm, H_FLAGS, _I.unpack_from(t.mm, H_FLAGS)[0] | FLAG_MOVED)


def path_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Table:
    """One mapped table file (the main one, or PATH.grow during a rebuild)."""

    __slots__ = ("fd", "mm", "nslots", "mask", "ino")

    def __init__(self, fd: int, size: int, nslots: int, readonly: bool = False):
        self.fd = fd
        self.mm = mmap.mmap(fd, size, mmap.MAP_SHARED,
                            mmap.PROT_READ if readonly else mmap.PROT_READ | mmap.PROT_WRITE)
        self.nslots = nslots
        self.mask = nslots - 1
        st = os.fstat(fd)
        self.ino = (st.st_dev, st.st_ino)

    def close(self) -> None:
        try:
            self.mm.close()
        finally:
            os.close(self.fd)

    # -- header fields --------------------------------------------------------
    def q(self, off: int) -> int:
        return _Q.unpack_from(self.mm, off)[0]

    def setq(self, off: int, value: int) -> None:
        _Q.pack_into(self.mm, off, value)

    # -- slots ------------------------------------------------------------------
    def slot(self, i: int) -> tuple[int, int, int, int, int]:
        return _SLOT.unpack_from(self.mm, HEADER_SIZE + i * SLOT_SIZE)

    def put_image(self, i: int, image: bytes) -> None:
        off = HEADER_SIZE + i * SLOT_SIZE
        self.mm[off:off + SLOT_SIZE] = image

    def find(self, h: int) -> tuple[int, int]:
        """(index of the valid entry for h or -1, first free index or -1)."""
        mask = self.mask
        i = h & mask
        free = -1
        unpack = _SLOT.unpack_from
        mm = self.mm
        for _ in range(self.nslots):
            key, first, last, meta, check = unpack(mm, HEADER_SIZE + i * SLOT_SIZE)
            if key == h:
                if check == slot_check(key, first, last, meta):
                    return i, free
            elif key == EMPTY:
                return -1, (free if free >= 0 else i)
            elif key == TOMB and free < 0:
                free = i
            i = (i + 1) & mask
        return -1, free

    def upsert_raw(self, h: int, image: bytes) -> None:
        """Unjournaled insert/overwrite (rebuild targets only); tombstone when
        image is a tombstone."""
        idx, free = self.find(h)
        live, used = self.q(H_LIVE), self.q(H_USED)
        if _Q.unpack_from(image, 0)[0] == TOMB:
            if idx >= 0:
                self.put_image(idx, image)
                self.setq(H_LIVE, live - 1)
            return
        if idx >= 0:
            self.put_image(idx, image)
            return
        if free < 0:
            raise StoreError("greylist store: rebuild table full")
        key0 = self.slot(free)[0]
        self.put_image(free, image)
        self.setq(H_LIVE, live + 1)
        if key0 == EMPTY:
            self.setq(H_USED, used + 1)


class GreyStore:
    """The greylist store at `path` (see the module docstring).

    `GreyStore(path)` opens it, creating an empty one (MIN_SLOTS slots, or
    `nslots`) when the file does not exist.  `salt` and `now` make a new
    file reproducible (tests).  `readonly=True` opens without write access
    (only get/items/check/stats work)."""

    def __init__(self, path: str, *, create: bool = True, nslots: int = MIN_SLOTS,
                 salt: bytes | None = None, now: int | None = None, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        if create and not readonly and not os.path.exists(path):
            create_file(path, nslots, salt, now)
        self._t: _Table | None = None
        self._g: _Table | None = None
        self._g_gen = -1
        self._locked = False
        self._next_ino_check = 0.0
        self._open()

    # -- files -----------------------------------------------------------------
    def _open(self) -> None:
        fd, size, nslots = open_file(self.path, self.readonly)
        try:
            self._t = _Table(fd, size, nslots, self.readonly)
        except BaseException:
            os.close(fd)
            raise
        self.salt = bytes(self._t.mm[H_SALT:H_SALT + 16])

    def _drop_grow(self) -> None:
        if self._g is not None:
            self._g.close()
            self._g = None
            self._g_gen = -1

    def _reopen(self) -> None:
        self._drop_grow()
        if self._t is not None:
            self._t.close()
            self._t = None
        self._open()

    def close(self) -> None:
        """Unmap and close (idempotent)."""
        self._drop_grow()
        if self._t is not None:
            self._t.close()
            self._t = None

    def __enter__(self) -> GreyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _table(self) -> _Table:
        if self._t is None:
            raise StoreError(f"greylist store {self.path} is closed")
        return self._t

    # -- locking and recovery ----------------------------------------------------
    def _lock(self, shared: bool = False) -> _Table:
        while True:
            t = self._table()
            fcntl.flock(t.fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            if _I.unpack_from(t.mm, H_FLAGS)[0] & FLAG_MOVED:
                fcntl.flock(t.fd, fcntl.LOCK_UN)
                self._reopen()
                continue
            self._locked = True
            if not shared and t.q(J_COMMIT):
                self._recover(t)
            return t

    def _unlock(self) -> None:
        if self._locked and self._t is not None:
            self._locked = False
            fcntl.flock(self._t.fd, fcntl.LOCK_UN)

    def _recover(self, t: _Table) -> bool:
        """Replay or drop a pending journal record (lock held).  True when a
        committed record was found."""
        commit, jslot, image, jlive, jused, jflags = _JOURNAL.unpack_from(t.mm, J_COMMIT)
        if commit == 0:
            return False
        if commit != journal_sum(jslot, image, jlive, jused, jflags):
            t.setq(J_COMMIT, 0)            # torn before commit: nothing was changed
            return False
        if jflags & J_APPLY and jslot < t.nslots:
            t.put_image(jslot, image)
            t.setq(H_LIVE, jlive)
            t.setq(H_USED, jused)
        if jflags & J_ABANDON:
            self._abandon_rebuild(t)
        t.setq(J_COMMIT, 0)
        return True

    def _abandon_rebuild(self, t: _Table) -> None:
        t.setq(H_GROW_SLOTS, 0)
        t.setq(H_GROW_DONE, 0)
        self._drop_grow()
        try:
            os.unlink(self.path + ".grow")
        except OSError:
            pass

    # -- journaled slot writes -----------------------------------------------------
    def _write(self, t: _Table, i: int, key: int, image: bytes, live: int, used: int) -> None:
        """Change slot i (and the counters) through the journal; during a
        rebuild also apply the change to the copied part."""
        growing = t.q(H_GROW_SLOTS) != 0
        flags = J_APPLY | (J_ABANDON if growing else 0)
        _JOURNAL.pack_into(t.mm, J_COMMIT, 0, i, image, live, used, flags)
        t.setq(J_COMMIT, journal_sum(i, image, live, used, flags))
        t.put_image(i, image)
        t.setq(H_LIVE, live)
        t.setq(H_USED, used)
        if growing and i < t.q(H_GROW_DONE):
            g = self._grow_table(t)
            if g is not None:
                g.upsert_raw(key, image)
        t.setq(J_COMMIT, 0)

    def _set(self, t: _Table, h: int, first: int, last: int, meta: int,
             idx: int, free: int) -> bool:
        """Store an entry, at idx (found) or free (new).  False when full."""
        image = slot_image(h, first & 0xFFFFFFFF, last & 0xFFFFFFFF, meta)
        live, used = t.q(H_LIVE), t.q(H_USED)
        if idx >= 0:
            self._write(t, idx, h, image, live, used)
            return True
        if free < 0:
            return False
        if t.slot(free)[0] == EMPTY:
            used += 1
        self._write(t, free, h, image, live + 1, used)
        return True

    def _delete_at(self, t: _Table, i: int, h: int) -> None:
        self._write(t, i, h, slot_image(TOMB, 0, 0, 0), t.q(H_LIVE) - 1, t.q(H_USED))

    # -- rebuild (growth) ------------------------------------------------------------
    def _grow_table(self, t: _Table) -> _Table | None:
        gen = t.q(H_GROW_GEN)
        if self._g is not None and self._g_gen == gen:
            return self._g
        self._drop_grow()
        try:
            fd, size, nslots = open_file(self.path + ".grow")
        except StoreError:
            self._abandon_rebuild(t)
            return None
        if nslots != t.q(H_GROW_SLOTS):
            os.close(fd)
            self._abandon_rebuild(t)
            return None
        self._g = _Table(fd, size, nslots)
        self._g_gen = gen
        return self._g

    def _start_rebuild(self, t: _Table, nslots: int) -> None:
        gpath = self.path + ".grow"
        self._drop_grow()
        try:
            os.unlink(gpath)
        except OSError:
            pass
        try:
            _write_new_file(gpath, nslots, self.salt, t.q(H_CREATED))
        except OSError as e:
            raise StoreError(f"cannot create {gpath}: {e.strerror}") from None
        t.setq(H_GROW_DONE, 0)
        t.setq(H_GROW_GEN, t.q(H_GROW_GEN) + 1)
        t.setq(H_GROW_SLOTS, nslots)

    def _migrate(self, t: _Table, chunk: int) -> bool:
        """Copy the next `chunk` slots into the rebuild table (lock held).
        True when every slot has been copied."""
        g = self._grow_table(t)
        if g is None:
            return False
        done = t.q(H_GROW_DONE)
        if done >= t.nslots:
            return True
        end = min(done + chunk, t.nslots)
        _JOURNAL.pack_into(t.mm, J_COMMIT, 0, 0, bytes(SLOT_SIZE), 0, 0, J_ABANDON)
        t.setq(J_COMMIT, journal_sum(0, bytes(SLOT_SIZE), 0, 0, J_ABANDON))
        for i in range(done, end):
            key, first, last, meta, check = t.slot(i)
            if key >= 2 and check == slot_check(key, first, last, meta):
                g.upsert_raw(key, slot_image(key, first, last, meta))
        t.setq(H_GROW_DONE, end)
        t.setq(J_COMMIT, 0)
        return end >= t.nslots

    def _finish_rebuild(self, t: _Table) -> None:
        """Every slot is copied (lock held): make PATH.grow durable, rename it
        over PATH, mark this file MOVED and switch to the new one.  The slow
        fsync runs without the lock (others go on, their updates reach both
        tables); under the lock again a second fsync writes what changed
        meanwhile, then the rename."""
        g = self._grow_table(t)
        if g is None:
            return
        gen = t.q(H_GROW_GEN)
        self._unlock()
        g.mm.flush()
        os.fsync(g.fd)
        t = self._lock()
        if not (t.q(H_GROW_SLOTS) and t.q(H_GROW_GEN) == gen and t.q(H_GROW_DONE) >= t.nslots):
            return                  # another process finished (or abandoned) it
        g = self._grow_table(t)
        if g is None:
            return
        g.mm.flush()
        os.fsync(g.fd)
        os.rename(self.path + ".grow", self.path)
        _set_moved(t)
        self._unlock()
        self._reopen()

    def _after_write(self, t: _Table, now: int) -> None:
        """Growth work after a mutating operation (lock held; may unlock)."""
        if t.q(H_GROW_SLOTS):
            if self._migrate(t, MIGRATE_CHUNK):
                self._finish_rebuild(t)
            return
        used, nslots = t.q(H_USED), t.nslots
        if used * GROW_DEN > nslots * GROW_NUM:
            self._start_rebuild(t, target_slots(t.q(H_LIVE)))

    # -- public: lookups and updates ----------------------------------------------------
    def hash(self, key: bytes) -> int:
        """The stored hash of `key` in this file (keyed with its salt)."""
        return key_hash(self.salt, key)

    def get(self, key: bytes) -> tuple[int, int, int, int] | None:
        """(first, last, count, kind) of `key`, or None."""
        h = key_hash(self.salt, key)
        t = self._lock(shared=self.readonly)
        try:
            idx, _ = t.find(h)
            if idx < 0:
                return None
            _, first, last, meta, _ = t.slot(idx)
            return first, last, meta & COUNT_MAX, meta >> 28
        finally:
            self._unlock()

    def put(self, key: bytes, first: int, last: int, count: int, kind: int = KIND_TRIPLET,
            now: int | None = None) -> None:
        """Store an entry (insert or overwrite)."""
        h = key_hash(self.salt, key)
        now = int(time.time()) if now is None else now
        t = self._lock()
        try:
            idx, free = t.find(h)
            if not self._set(t, h, first, last, meta_word(kind, count), idx, free):
                raise StoreError(f"greylist store {self.path} is full")
            self._after_write(t, now)
        finally:
            self._unlock()

    def delete(self, key: bytes, now: int | None = None) -> bool:
        """Remove an entry; True when it existed."""
        h = key_hash(self.salt, key)
        t = self._lock()
        try:
            idx, _ = t.find(h)
            if idx < 0:
                return False
            self._delete_at(t, idx, h)
            self._after_write(t, int(time.time()) if now is None else now)
            return True
        finally:
            self._unlock()

    def greylist(self, tkey: bytes, ckey: bytes, now: int, delay: int, retry_window: int,
                 awl_clients: int) -> tuple[int, int, int, int]:
        """postgrey's decision for one triplet, atomically (see policy.greylist).

        `tkey`: the triplet key text, `ckey`: the client's auto-whitelist
        key text (used when awl_clients > 0).  Returns (result, first,
        awl_count, corrected): result R_AWL (client auto-whitelisted),
        R_GREYLIST (delay not over), R_DELAYED (first pass after being
        greylisted) or R_PASS (known triplet); first = first-seen time of
        the triplet; awl_count = the client's new count when this pass
        counted (else 0; with R_AWL its current count); corrected = 1 when a
        first-seen time in the future was reset to now."""
        th = key_hash(self.salt, tkey)
        ch = key_hash(self.salt, ckey) if awl_clients > 0 else 0
        t = self._lock()
        try:
            c = None
            cidx = -1
            if awl_clients > 0:
                cidx, cfree = t.find(ch)
                if cidx >= 0:
                    _, cf, cl, cm, _ = t.slot(cidx)
                    c = (cf, cl, cm & COUNT_MAX)
                    if c[2] >= awl_clients:
                        count = c[2]
                        if now >= cl + 3600 or cl > now:
                            count = min(count + 1, COUNT_MAX)
                            self._set(t, ch, cf, now, meta_word(KIND_CLIENT, count), cidx, -1)
                            self._after_write(t, now)
                        return R_AWL, 0, count, 0
            tidx, tfree = t.find(th)
            successful = False
            corrected = 0
            if tidx >= 0:
                _, first, last, meta, _ = t.slot(tidx)
                count = (meta & COUNT_MAX) + 1
                if last - first >= delay:
                    successful = True
                elif now - first > retry_window:
                    first = now
                if first > now:
                    first = now
                    corrected = 1
            else:
                first, count = now, 1
            if not self._set(t, th, first, now, meta_word(KIND_TRIPLET, count), tidx, tfree):
                raise StoreError(f"greylist store {self.path} is full")
            diff = delay - (now - first)
            awl_count = 0
            if awl_clients > 0 and diff <= 0 and not successful:
                if c is None or now >= c[1] + 3600:
                    n = min((c[2] if c is not None else 0) + 1, COUNT_MAX)
                    cidx, cfree = t.find(ch)
                    self._set(t, ch, c[0] if c is not None else now, now,
                              meta_word(KIND_CLIENT, n), cidx, cfree)
                    awl_count = n
            self._after_write(t, now)
            if diff > 0:
                return R_GREYLIST, first, awl_count, corrected
            return (R_PASS if successful else R_DELAYED), first, awl_count, corrected
        finally:
            self._unlock()

    # -- maintenance -------------------------------------------------------------------------
    def maintain(self, now: int, max_age: int, delay: int, retry_window: int, *,
                 interval: int = 3600, budget: int = SWEEP_CHUNK
                 ) -> tuple[str, int, int, int, int] | None:
        """A bounded amount of background work (lock held for at most
        `budget` slots): a rebuild step, else an expiry pass step (a pass
        starts when the last one started `interval` seconds ago).  Returns
        None when there was nothing to do, ("start", 0, 0, 0, 0) when this
        call started a pass, ("done", triplets_before, triplets_after,
        clients_before, clients_after) when it finished one, else ("busy",
        0, 0, 0, 0) (a pass or a rebuild goes on: call again soon)."""
        if self.readonly:
            return None
        mono = time.monotonic()
        if mono >= self._next_ino_check:
            self._next_ino_check = mono + REOPEN_CHECK
            t = self._table()
            if path_inode(self.path) not in (None, t.ino):
                self._reopen()
        t = self._lock()
        try:
            if t.q(H_GROW_SLOTS):
                if self._migrate(t, max(budget // 8, MIGRATE_CHUNK)):
                    self._finish_rebuild(t)
                return ("busy", 0, 0, 0, 0)
            event = None
            if not t.q(H_SWEEP_ACTIVE):
                last = t.q(H_SWEEP_LAST)
                if last and abs(now - last) < interval:     # (a clock set back counts too)
                    return None
                t.setq(H_SWEEP_LAST, now)
                t.setq(H_SWEEP_POS, 0)
                for k in range(4):
                    t.setq(H_SWEEP_STATS + 8 * k, 0)
                t.setq(H_SWEEP_ACTIVE, 1)
                event = "start"
            pos = t.q(H_SWEEP_POS)
            end = min(pos + budget, t.nslots)
            stats = [t.q(H_SWEEP_STATS + 8 * k) for k in range(4)]
            for i in range(pos, end):
                key, first, last, meta, check = t.slot(i)
                if key < 2:
                    continue
                if check != slot_check(key, first, last, meta):
                    self._delete_at(t, i, key)      # damaged: drop it
                    continue
                kind = meta >> 28
                base = 0 if kind == KIND_TRIPLET else 2
                stats[base] += 1
                if now - last > max_age or (kind == KIND_TRIPLET and last - first < delay
                                             and now - last > retry_window):
                    self._delete_at(t, i, key)
                else:
                    stats[base + 1] += 1
            for k in range(4):
                t.setq(H_SWEEP_STATS + 8 * k, stats[k])
            t.setq(H_SWEEP_POS, end)
            if end >= t.nslots:
                t.setq(H_SWEEP_ACTIVE, 0)
                return ("done", *stats)
            return (event or "busy", 0, 0, 0, 0)
        finally:
            self._unlock()

    # -- inspection --------------------------------------------------------------------------
    def stats(self) -> dict:
        """Header fields (nslots, live, used, rebuild and pass state)."""
        t = self._lock(shared=True)
        try:
            h = read_header(t.mm)
        finally:
            self._unlock()
        h.pop("magic", None)
        h["salt"] = h["salt"].hex()
        h["file_size"] = table_size(h["nslots"])
        return h

    def items(self) -> Iterator[tuple[int, int, int, int, int]]:
        """(hash, first, last, count, kind) of every valid entry (a snapshot
        taken under the lock)."""
        t = self._lock(shared=True)
        try:
            out = []
            for i in range(t.nslots):
                key, first, last, meta, check = t.slot(i)
                if key >= 2 and check == slot_check(key, first, last, meta):
                    out.append((key, first, last, meta & COUNT_MAX, meta >> 28))
        finally:
            self._unlock()
        return iter(out)

    def check(self, repair: bool = False) -> dict:
        """Verify the whole table (see `check_table`); with repair=True (and
        a writable store) rebuild it from its valid entries when the check
        fails.  Returns the report (`ok`, counts, `problems`)."""
        t = self._lock(shared=self.readonly)
        try:
            report = check_table(t.mm, t.nslots)
            if repair and not report["ok"] and not self.readonly:
                self._repair(t)
                report["repaired"] = True
        finally:
            self._unlock()
        if report.get("repaired"):
            after = self.check()
            after["repaired"] = True
            after["problems_before"] = report["problems"]
            return after
        return report

    def _repair(self, t: _Table) -> None:
        """Synchronous rebuild from the valid, unique entries (lock held)."""
        entries: dict[int, bytes] = {}
        for i in range(t.nslots):
            key, first, last, meta, check = t.slot(i)
            if key >= 2 and check == slot_check(key, first, last, meta):
                prev = entries.get(key)
                if prev is None or _SLOT.unpack(prev)[2] < last:
                    entries[key] = slot_image(key, first, last, meta)
        nslots = max(target_slots(len(entries)), t.nslots if len(entries) * 5 <= t.nslots * 3
                     else 0)
        self._abandon_rebuild(t)
        gpath = self.path + ".grow"
        created = t.q(H_CREATED)
        _write_new_file(gpath, nslots, self.salt, created)
        fd, size, n = open_file(gpath)
        g = _Table(fd, size, n)
        try:
            for key, image in entries.items():
                g.upsert_raw(key, image)
            g.mm.flush()
            os.fsync(g.fd)
        finally:
            g.close()
        os.rename(gpath, self.path)
        _set_moved(t)
        self._unlock()
        self._reopen()
        self._lock()


def check_table(buf, nslots: int) -> dict:
    """Verify a mapped table: header, journal, every slot's check word, no
    duplicate keys, every entry reachable from its home slot, counters.
    A committed journal record is checked as if it had been replayed (the
    next writer replays it)."""
    problems: list[str] = []
    head = read_header(buf)
    if head["magic"] != MAGIC:
        problems.append("bad magic")
    pending = None
    commit, jslot, image, jlive, jused, jflags = _JOURNAL.unpack_from(buf, J_COMMIT)
    if commit:
        if commit == journal_sum(jslot, image, jlive, jused, jflags):
            pending = (jslot, image, jlive, jused, jflags)
        # else: torn before commit, ignored by recovery
    live_h, used_h = head["live"], head["used"]
    if pending is not None and pending[4] & J_APPLY:
        live_h, used_h = pending[2], pending[3]

    def slot(i: int) -> tuple[int, int, int, int, int]:
        if pending is not None and pending[4] & J_APPLY and i == pending[0]:
            return _SLOT.unpack(pending[1])
        return _SLOT.unpack_from(buf, HEADER_SIZE + i * SLOT_SIZE)

    empty = tombs = damaged = 0
    kinds = {KIND_TRIPLET: 0, KIND_CLIENT: 0}
    unknown_kind = 0
    valid = bytearray(nslots)      # 1 = valid, 2 = empty
    seen: set[int] = set()
    dups = 0
    for i in range(nslots):
        key, first, last, meta, check = slot(i)
        if key == EMPTY:
            empty += 1
            valid[i] = 2
            if first or last or meta or check:
                damaged += 1
                valid[i] = 0
            continue
        if key == TOMB:
            tombs += 1
            if first or last or meta or check:
                damaged += 1
            continue
        if check != slot_check(key, first, last, meta):
            damaged += 1
            continue
        valid[i] = 1
        kind = meta >> 28
        if kind in kinds:
            kinds[kind] += 1
        else:
            unknown_kind += 1
        if key in seen:
            dups += 1
        seen.add(key)
    unreachable = 0
    mask = nslots - 1
    for i in range(nslots):
        if valid[i] != 1:
            continue
        key = slot(i)[0]
        j = key & mask
        while j != i:
            if valid[j] == 2:
                unreachable += 1
                break
            j = (j + 1) & mask
    live = sum(kinds.values()) + unknown_kind
    if damaged:
        problems.append(f"{damaged} damaged slots (entries lost)")
    if dups:
        problems.append(f"{dups} duplicate keys")
    if unreachable:
        problems.append(f"{unreachable} entries unreachable from their home slot")
    if unknown_kind:
        problems.append(f"{unknown_kind} entries of unknown kind")
    if live != live_h:
        problems.append(f"header says {live_h} live entries, found {live}")
    if nslots - empty != used_h:
        problems.append(f"header says {used_h} used slots, found {nslots - empty}")
    if empty == 0:
        problems.append("no empty slot")
    return {"ok": not problems, "problems": problems, "nslots": nslots,
            "triplets": kinds[KIND_TRIPLET], "clients": kinds[KIND_CLIENT],
            "live": live, "tombstones": tombs, "damaged": damaged, "empty": empty,
            "pending_journal": pending is not None,
            "rebuild": head["grow_slots"], "rebuild_done": head["grow_done"],
            "file_size": table_size(nslots)}


def check_file(path: str, repair: bool = False) -> dict:
    """`postier greylistd --check-store`: open (read-only unless repairing)
    and check.  Raises StoreError for a file that is not a store."""
    try:
        store = GreyStore(path, create=False, readonly=not repair)
    except StoreError:
        raise
    except OSError as e:
        raise StoreError(f"cannot open greylist store {path}: "
                         f"{e.strerror or errno.errorcode.get(e.errno, '')}") from None
    with store:
        return store.check(repair=repair)
