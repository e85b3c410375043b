# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Memory-mapped `hash:` table files (Cython; twin: postier._pure.hashtable).

The on-disk format, hash function and API are documented in
postier/_pure/hashtable.py; both modules write byte-identical files and
read each other's.  Lookups probe the read-only shared mapping in place
(key bytes are compared where they lie); only a found value becomes a
Python object.  Every offset taken from the file is checked against the
file size before it is dereferenced: a corrupt file raises MapError.

Reads no main.cf parameters.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.errno cimport errno
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, mmap, munmap
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import os
import struct

from postier._pure.hashtable import (  # shared pure-Python parts (format checks, I/O)
    FLAG_FOLDED,
    HEADER_SIZE,
    MAGIC,
    MAX_HEAP,
    MIN_SLOTS,
    SLOT_SIZE,
    VERSION,
    _check_header,
    _rebuild_hint,
    is_berkeley_db,
    slot_count,
    write_atomic,
)
from postier.errors import MapError

__all__ = ["build", "hash_key", "HashTable", "slot_count", "is_berkeley_db", "MAGIC",
           "VERSION", "FLAG_FOLDED", "HEADER_SIZE", "SLOT_SIZE", "MIN_SLOTS"]

_HEADER = struct.Struct("<8sIIQQQQQQ")

cdef enum:
    C_HEADER_SIZE = 64
    C_SLOT_SIZE = 8

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline uint32_t pst_rd32(const unsigned char *p) {
        uint32_t v; memcpy(&v, p, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        return v;
    }
    static inline void pst_wr32(unsigned char *p, uint32_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        memcpy(p, &v, 4);
    }
    """
    uint32_t rd32 "pst_rd32"(const unsigned char *p) nogil
    void wr32 "pst_wr32"(unsigned char *p, uint32_t v) nogil


cdef inline uint64_t _hash(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 0xCBF29CE484222325ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 0x100000001B3ULL
    h ^= h >> 33
    h *= 0xFF51AFD7ED558CCDULL
    h ^= h >> 33
    h *= 0xC4CEB9FE1A85EC53ULL
    h ^= h >> 33
    return h


def hash_key(bytes key) -> int:
    """The 64-bit hash of `key`: FNV-1a 64, then the fmix64 finalizer."""
    return _hash(<const unsigned char *> key, len(key))


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


# ------------------------------------------------------------------ build

cdef class _Builder:
    """Scratch storage for build(): records in a growable C heap, a
    dedup index (open addressing over entry numbers)."""
    cdef unsigned char *heap
    cdef uint64_t heap_len, heap_cap
    cdef uint64_t *hashes
    cdef uint64_t *offs
    cdef Py_ssize_t n, cap
    cdef Py_ssize_t *index
    cdef Py_ssize_t index_size
    cdef bint moved

    def __cinit__(self):
        self.heap = NULL
        self.hashes = NULL
        self.offs = NULL
        self.index = NULL
        self.heap_len = self.heap_cap = 0
        self.n = self.cap = 0
        self.index_size = 0
        self.moved = False

    def __dealloc__(self):
        free(self.heap)
        free(self.hashes)
        free(self.offs)
        free(self.index)

    cdef int _grow_entries(self) except -1:
        cdef Py_ssize_t cap = self.cap * 2 if self.cap else 1024
        cdef uint64_t *h = <uint64_t *> realloc(self.hashes, cap * sizeof(uint64_t))
        if h == NULL:
            raise MemoryError()
        self.hashes = h
        cdef uint64_t *o = <uint64_t *> realloc(self.offs, cap * sizeof(uint64_t))
        if o == NULL:
            raise MemoryError()
        self.offs = o
        self.cap = cap
        return 0

    cdef int _rehash(self, Py_ssize_t size) except -1:
        cdef Py_ssize_t *idx = <Py_ssize_t *> malloc(size * sizeof(Py_ssize_t))
        cdef Py_ssize_t e, i, mask = size - 1
        if idx == NULL:
            raise MemoryError()
        for i in range(size):
            idx[i] = -1
        for e in range(self.n):
            i = <Py_ssize_t> (self.hashes[e] & <uint64_t> mask)
            while idx[i] != -1:
                i = (i + 1) & mask
            idx[i] = e
        free(self.index)
        self.index = idx
        self.index_size = size
        return 0

    cdef uint64_t _append(self, const unsigned char *k, uint32_t klen,
                          const unsigned char *v, uint32_t vlen) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t need = 8 + <uint64_t> klen + vlen
        need += (-need) & 3
        cdef uint64_t cap
        cdef unsigned char *nh
        if self.heap_len + need > self.heap_cap:
            cap = self.heap_cap * 2 if self.heap_cap else 65536
            while cap < self.heap_len + need:
                cap *= 2
            nh = <unsigned char *> realloc(self.heap, cap)
            if nh == NULL:
                raise MemoryError()
            self.heap = nh
            self.heap_cap = cap
        cdef uint64_t off = self.heap_len
        cdef unsigned char *p = self.heap + off
        wr32(p, klen)
        wr32(p + 4, vlen)
        memcpy(p + 8, k, klen)
        memcpy(p + 8 + klen, v, vlen)
        memset(p + 8 + klen + vlen, 0, need - 8 - klen - vlen)
        self.heap_len += need
        return off

    cdef Py_ssize_t add(self, bytes key, bytes value, int dup) except -2:
        """Add one entry.  Returns -1 when added, else the entry number of
        the existing key (its value is replaced when dup == 2)."""
        cdef const unsigned char *k = <const unsigned char *> key
        cdef const unsigned char *v = <const unsigned char *> value
        cdef Py_ssize_t klen = len(key), vlen = len(value)
        if klen > 0xFFFFFFFF or vlen > 0xFFFFFFFF:
            raise MapError("key or value too long (4 GiB limit)")
        cdef uint64_t h = _hash(k, klen)
        cdef Py_ssize_t mask, i, e
        cdef const unsigned char *r
        if (self.n + 1) * 2 > self.index_size:
            self._rehash(self.index_size * 2 if self.index_size else 2048)
        mask = self.index_size - 1
        i = <Py_ssize_t> (h & <uint64_t> mask)
        while True:
            e = self.index[i]
            if e == -1:
                break
            if self.hashes[e] == h:
                r = self.heap + self.offs[e]
                if rd32(r) == klen and memcmp(r + 8, k, klen) == 0:
                    if dup == 2:
                        self.offs[e] = self._append(k, <uint32_t> klen, v, <uint32_t> vlen)
                        self.moved = True
                    return e
            i = (i + 1) & mask
        if self.n == self.cap:
            self._grow_entries()
        self.offs[self.n] = self._append(k, <uint32_t> klen, v, <uint32_t> vlen)
        self.hashes[self.n] = h
        self.index[i] = self.n
        self.n += 1
        return -1


cdef class _Buffer:
    """An owned C buffer exposed through the buffer protocol (for writing)."""
    cdef unsigned char *data
    cdef Py_ssize_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t size):
        self.data = <unsigned char *> calloc(size if size > 0 else 1, 1)
        if self.data == NULL:
            raise MemoryError()
        self.size = size

    def __dealloc__(self):
        free(self.data)

    def __getbuffer__(self, Py_buffer *buf, int flags):
        self.shape[0] = self.size
        self.strides[0] = 1
        buf.buf = self.data
        buf.obj = self
        buf.len = self.size
        buf.readonly = 1
        buf.itemsize = 1
        buf.format = NULL
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass


def build(path, entries, fold_flag=False, dup="warn", on_duplicate=None,
          int mode=0o644, owner=None):
    """Write the table `path` from (key, value) byte pairs, atomically.

    dup: "warn" (first wins, on_duplicate(key) is called), "ignore" (first
    wins, silently) or "replace" (last wins).  fold_flag is recorded in the
    header (keys are stored exactly as given).  mode/owner apply to the new
    file.  Returns (entries written, duplicates seen)."""
    cdef int dmode
    if dup == "warn":
        dmode = 0
    elif dup == "ignore":
        dmode = 1
    elif dup == "replace":
        dmode = 2
    else:
        raise ValueError(f"dup must be warn, ignore or replace, not {dup!r}")
    cdef _Builder b = _Builder()
    cdef Py_ssize_t dups = 0
    cdef Py_ssize_t r
    for item in entries:
        key, value = item
        if type(key) is not bytes or type(value) is not bytes:
            raise TypeError("hash table keys and values must be bytes")
        r = b.add(<bytes> key, <bytes> value, dmode)
        if r >= 0:
            dups += 1
            if dmode == 0 and on_duplicate is not None:
                on_duplicate(key)
    return _write(path, b, bool(fold_flag), mode, owner), dups


cdef object _write(path, _Builder b, bint folded, int mode, owner):
    cdef uint64_t count = b.n
    cdef uint64_t nslots = slot_count(count)
    cdef uint64_t heap_size = 0
    cdef Py_ssize_t e
    cdef const unsigned char *r
    cdef uint64_t rl
    # final heap: the scratch heap itself unless values were replaced
    for e in range(b.n):
        r = b.heap + b.offs[e]
        rl = 8 + <uint64_t> rd32(r) + rd32(r + 4)
        heap_size += rl + ((-rl) & 3)
    cdef _Buffer slots = _Buffer(nslots * SLOT_SIZE)
    cdef _Buffer heap = None
    cdef unsigned char *dst = b.heap
    if b.moved:
        heap = _Buffer(heap_size)
        dst = heap.data
    cdef uint64_t pos = 0
    cdef uint64_t i, h
    cdef unsigned char *s
    for e in range(b.n):
        r = b.heap + b.offs[e]
        rl = 8 + <uint64_t> rd32(r) + rd32(r + 4)
        rl += (-rl) & 3
        if pos > MAX_HEAP:
            raise MapError("table too large (16 GiB heap limit)", path=path)
        if b.moved:
            memcpy(dst + pos, r, rl)
        elif pos != b.offs[e]:      # cannot happen: records are contiguous
            raise RuntimeError("hashtable build: heap out of order")
        h = b.hashes[e]
        i = h % nslots
        while True:
            s = slots.data + i * C_SLOT_SIZE
            if rd32(s + 4) == 0:
                break
            i += 1
            if i == nslots:
                i = 0
        wr32(s, <uint32_t> (h >> 32))
        wr32(s + 4, <uint32_t> (pos // 4 + 1))
        pos += rl
    heap_off = HEADER_SIZE + nslots * SLOT_SIZE
    header = _HEADER.pack(MAGIC, VERSION, FLAG_FOLDED if folded else 0, count, nslots,
                          HEADER_SIZE, heap_off, heap_size, heap_off + heap_size)
    if b.moved:
        heap_view = memoryview(heap)
    else:
        heap_view = memoryview(_borrow(b, heap_size))
    write_atomic(path, (header, memoryview(slots), heap_view), mode, owner)
    return count


cdef class _Borrowed:
    """Buffer-protocol view of a _Builder's heap (kept alive by reference)."""
    cdef _Builder owner
    cdef Py_ssize_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *buf, int flags):
        self.shape[0] = self.size
        self.strides[0] = 1
        buf.buf = self.owner.heap if self.owner.heap != NULL else <unsigned char *> ""
        buf.obj = self
        buf.len = self.size
        buf.readonly = 1
        buf.itemsize = 1
        buf.format = NULL
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass


cdef _Borrowed _borrow(_Builder b, uint64_t size):
    cdef _Borrowed v = _Borrowed.__new__(_Borrowed)
    v.owner = b
    v.size = size
    return v


# ------------------------------------------------------------------ read

cdef class HashTable:
    """A read-only, memory-mapped `hash:` table file."""
    cdef readonly str path
    cdef readonly uint64_t count
    cdef readonly unsigned int flags
    cdef readonly double mtime
    cdef const unsigned char *base
    cdef size_t size
    cdef uint64_t nslots, heap_off, heap_size
    cdef double checked
    cdef object ident

    def __cinit__(self, path):
        self.base = NULL
        self.size = 0

    def __init__(self, path):
        self.path = os.fspath(path)
        self.checked = _now()
        self._map()

    def __dealloc__(self):
        if self.base != NULL:
            munmap(<void *> self.base, self.size)
            self.base = NULL

    cdef _map(self):
        path = self.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise MapError(f"open database {path}: {e.strerror}") from None
        cdef void *p
        cdef size_t size
        try:
            st = os.fstat(fd)
            head = os.pread(fd, HEADER_SIZE, 0)
            _check_header(path, head, st.st_size)
            size = st.st_size
            p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
            if p == MAP_FAILED:
                raise OSError(errno, os.strerror(errno))
        except OSError as e:
            raise MapError(f"open database {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        (_, _, flags, count, nslots, _, heap_off, heap_size, _) = _HEADER.unpack_from(head, 0)
        if self.base != NULL:
            munmap(<void *> self.base, self.size)
        self.base = <const unsigned char *> p
        self.size = size
        self.flags = flags
        self.count = count
        self.nslots = nslots
        self.heap_off = heap_off
        self.heap_size = heap_size
        self.mtime = st.st_mtime
        self.ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    @property
    def folded(self):
        return bool(self.flags & FLAG_FOLDED)

    def __len__(self):
        return self.count

    def close(self):
        if self.base != NULL:
            munmap(<void *> self.base, self.size)
            self.base = NULL
            self.size = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reopen_if_changed(self, double interval=1.0):
        """Re-map the file if it was replaced since it was mapped.  Checks
        (one os.stat) at most once per `interval` seconds; returns True when
        a new file was mapped."""
        cdef double now = _now()
        if now - self.checked < interval:
            return False
        self.checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == self.ident:
            return False
        self._map()
        return True

    cdef int _corrupt(self, int what) except -1:
        if self.base == NULL:
            raise MapError("table is closed", path=self.path)
        if what == 1:
            raise MapError("corrupt hash table: record offset out of range; "
                           + _rebuild_hint(self.path), path=self.path)
        raise MapError("corrupt hash table: record extends beyond the end of the file; "
                       + _rebuild_hint(self.path), path=self.path)

    cdef const unsigned char *_find(self, const unsigned char *k, Py_ssize_t klen,
                                    uint32_t *vlen_out) except? NULL:
        """Pointer to the value of key k (length in *vlen_out), NULL if absent."""
        if self.base == NULL:
            self._corrupt(0)
        cdef uint64_t h = _hash(k, klen)
        cdef uint32_t tag = <uint32_t> (h >> 32)
        cdef uint64_t nslots = self.nslots
        cdef uint64_t i = h % nslots
        cdef uint64_t n, rel
        cdef uint32_t ref, rklen, rvlen
        cdef const unsigned char *slots = self.base + C_HEADER_SIZE
        cdef const unsigned char *heap = self.base + self.heap_off
        cdef const unsigned char *s
        for n in range(nslots):
            s = slots + i * 8
            ref = rd32(s + 4)
            if ref == 0:
                return NULL
            if rd32(s) == tag:
                rel = (<uint64_t> ref - 1) * 4
                if rel + 8 > self.heap_size:
                    self._corrupt(1)
                rklen = rd32(heap + rel)
                rvlen = rd32(heap + rel + 4)
                if rel + 8 + <uint64_t> rklen + rvlen > self.heap_size:
                    self._corrupt(2)
                if rklen == klen and memcmp(heap + rel + 8, k, klen) == 0:
                    vlen_out[0] = rvlen
                    return heap + rel + 8 + rklen
            i += 1
            if i == nslots:
                i = 0
        return NULL

    def get(self, bytes key):
        """The value stored under `key` (exact bytes), or None."""
        cdef uint32_t vlen = 0
        cdef const unsigned char *v = self._find(<const unsigned char *> key, len(key), &vlen)
        if v == NULL:
            return None
        return PyBytes_FromStringAndSize(<const char *> v, vlen)

    def get_text(self, bytes key):
        """Like get(), decoded as UTF-8 (surrogateescape for bad bytes)."""
        cdef uint32_t vlen = 0
        cdef const unsigned char *v = self._find(<const unsigned char *> key, len(key), &vlen)
        if v == NULL:
            return None
        return PyUnicode_DecodeUTF8(<const char *> v, vlen, "surrogateescape")

    def __contains__(self, bytes key):
        cdef uint32_t vlen = 0
        return self._find(<const unsigned char *> key, len(key), &vlen) != NULL

    def items(self):
        """All (key, value) pairs, in the order they were added."""
        if self.base == NULL:
            self._corrupt(0)
        return _Items(self)


cdef class _Items:
    cdef HashTable t
    cdef uint64_t rel, seen
    cdef const unsigned char *base

    def __cinit__(self, HashTable t):
        self.t = t
        self.rel = 0
        self.seen = 0
        self.base = t.base

    def __iter__(self):
        return self

    def __next__(self):
        cdef HashTable t = self.t
        if t.base == NULL or t.base != self.base:
            raise MapError("table was closed or re-mapped during iteration", path=t.path)
        if self.rel >= t.heap_size or self.seen >= t.count:
            if self.seen != t.count:
                raise MapError(f"corrupt hash table: header says {t.count} entries, "
                               f"found {self.seen}; " + _rebuild_hint(t.path), path=t.path)
            raise StopIteration
        cdef const unsigned char *heap = t.base + t.heap_off
        cdef uint64_t rel = self.rel
        if rel + 8 > t.heap_size:
            t._corrupt(1)
        cdef uint32_t klen = rd32(heap + rel), vlen = rd32(heap + rel + 4)
        cdef uint64_t rl = 8 + <uint64_t> klen + vlen
        if rel + rl > t.heap_size:
            t._corrupt(2)
        key = PyBytes_FromStringAndSize(<const char *> heap + rel + 8, klen)
        value = PyBytes_FromStringAndSize(<const char *> heap + rel + 8 + klen, vlen)
        rl += (-rl) & 3
        self.rel = rel + rl
        self.seen += 1
        return key, value
