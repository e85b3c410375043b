# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The greylist store file (Cython; twin: postier._pure.greystore).

The on-disk format, locking, journal, rebuild and expiry rules and the API
are documented in postier/_pure/greystore.py; both modules write
byte-identical files and work on each other's files.  This one maps the
file with mmap(2), takes flock(2) itself and probes the slots in C, so a
decision costs two system calls, two BLAKE2b hashes (computed in C here,
the values of hashlib's keyed BLAKE2b-64) and a few memory reads.  Stores
of the journal commit word and the slot key are aligned 8-byte stores,
with compiler barriers between the journal, slot and commit phases (the
crash order is the program order).

Reads no main.cf parameters.
"""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcpy, memset
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, msync, MS_SYNC

import hashlib
import os
import time

from postier._pure.greystore import (  # shared pure-Python parts (files, format constants)
    COUNT_MAX,
    EMPTY,
    FLAG_MOVED,
    GROW_DEN,
    GROW_NUM,
    HEADER_SIZE,
    J_ABANDON,
    J_APPLY,
    KIND_CLIENT,
    KIND_TRIPLET,
    MAGIC,
    MIGRATE_CHUNK,
    MIN_SLOTS,
    R_AWL,
    R_DELAYED,
    R_GREYLIST,
    R_PASS,
    REOPEN_CHECK,
    SLOT_SIZE,
    SWEEP_CHUNK,
    TOMB,
    VERSION,
    StoreError,
    _write_new_file,
    check_table as _py_check_table,
    create_file,
    journal_sum,
    key_hash,
    meta_word,
    open_file,
    path_inode,
    read_header,
    slot_check,
    slot_image,
    table_size,
    target_slots,
)

__all__ = ["GreyStore", "StoreError", "check_file", "check_table", "create_file", "key_hash",
           "slot_check", "journal_sum", "MAGIC", "VERSION", "HEADER_SIZE", "SLOT_SIZE",
           "MIN_SLOTS", "KIND_TRIPLET", "KIND_CLIENT", "R_AWL", "R_GREYLIST", "R_DELAYED",
           "R_PASS", "COUNT_MAX"]

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int operation)
    enum:
        LOCK_SH
        LOCK_EX
        LOCK_UN

cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EINTR

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline uint64_t gs_rd64(const unsigned char *p) {
        uint64_t v; memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        return v;
    }
    static inline uint32_t gs_rd32(const unsigned char *p) {
        uint32_t v; memcpy(&v, p, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        return v;
    }
    static inline void gs_wr64(unsigned char *p, uint64_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        memcpy(p, &v, 8);
    }
    /* an aligned 8-byte word of the mapping, stored in one instruction */
    static inline void gs_wr64a(unsigned char *p, uint64_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        __atomic_store_n((uint64_t *) p, v, __ATOMIC_RELAXED);
    }
    static inline void gs_wr32(unsigned char *p, uint32_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        memcpy(p, &v, 4);
    }
    static inline void gs_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
    static inline uint64_t gs_fmix64(uint64_t x) {
        x ^= x >> 33; x *= 0xFF51AFD7ED558CCDULL;
        x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53ULL;
        x ^= x >> 33; return x;
    }
    static int gs_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
    }
    /* BLAKE2b (RFC 7693) with an 8-byte digest, keyed: the slot key hash,
       the same value as hashlib.blake2b(msg, digest_size=8, key=salt)
       read as a little-endian word, without a Python object per hash */
    static const uint64_t gs_b2_iv[8] = {
        0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
        0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
        0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
    static const unsigned char gs_b2_sigma[12][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};
    #define GS_ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
    #define GS_B2G(a, b, c, d, x, y) do { \
        a = a + b + (x); d = GS_ROTR64(d ^ a, 32); c = c + d; b = GS_ROTR64(b ^ c, 24); \
        a = a + b + (y); d = GS_ROTR64(d ^ a, 16); c = c + d; b = GS_ROTR64(b ^ c, 63); \
    } while (0)
    static void gs_b2_compress(uint64_t h[8], const unsigned char *block, uint64_t t,
                               int last) {
        uint64_t m[16], v[16];
        int i, r;
        for (i = 0; i < 16; i++) m[i] = gs_rd64(block + 8 * i);
        for (i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = gs_b2_iv[i]; }
        v[12] ^= t;                 /* byte counter: keys are far below 2**64 bytes */
        if (last) v[14] = ~v[14];
        for (r = 0; r < 12; r++) {
            const unsigned char *s = gs_b2_sigma[r];
            GS_B2G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
            GS_B2G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
            GS_B2G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
            GS_B2G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
            GS_B2G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
            GS_B2G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
            GS_B2G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
            GS_B2G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
        }
        for (i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
    }
    /* the state after the key block (1 <= keylen <= 64): valid for a
       non-empty message only (an empty one makes the key block the last) */
    static void gs_b2_key_state(uint64_t h[8], const unsigned char *key, size_t keylen) {
        unsigned char block[128];
        int i;
        for (i = 0; i < 8; i++) h[i] = gs_b2_iv[i];
        h[0] ^= 0x01010000ULL ^ ((uint64_t) keylen << 8) ^ 8;
        memset(block, 0, sizeof block);
        memcpy(block, key, keylen);
        gs_b2_compress(h, block, 128, 0);
    }
    static uint64_t gs_b2_64(const uint64_t hk[8], const unsigned char *msg, size_t len) {
        uint64_t h[8], t = 128;
        unsigned char block[128];
        memcpy(h, hk, sizeof h);
        while (len > 128) {
            t += 128;
            gs_b2_compress(h, msg, t, 0);
            msg += 128;
            len -= 128;
        }
        memset(block, 0, sizeof block);
        memcpy(block, msg, len);
        gs_b2_compress(h, block, t + len, 1);
        return h[0];
    }
    """
    uint64_t rd64 "gs_rd64"(const unsigned char *p) nogil
    uint32_t rd32 "gs_rd32"(const unsigned char *p) nogil
    void wr64 "gs_wr64"(unsigned char *p, uint64_t v) nogil
    void wr64a "gs_wr64a"(unsigned char *p, uint64_t v) nogil
    void wr32 "gs_wr32"(unsigned char *p, uint32_t v) nogil
    void barrier "gs_barrier"() nogil
    uint64_t fmix64 "gs_fmix64"(uint64_t x) nogil
    int cmp_u64 "gs_cmp_u64"(const void *a, const void *b) nogil
    void b2_key_state "gs_b2_key_state"(uint64_t *h, const unsigned char *key,
                                         size_t keylen) nogil
    uint64_t b2_64 "gs_b2_64"(const uint64_t *hk, const unsigned char *msg, size_t len) nogil

cdef enum:
    C_HEADER = 4096
    C_SLOT = 24
    C_FLAGS = 12
    C_NSLOTS = 16
    C_LIVE = 24
    C_USED = 32
    C_SALT = 40
    C_CREATED = 56
    C_GROW_GEN = 64
    C_GROW_SLOTS = 72
    C_GROW_DONE = 80
    C_SWEEP_LAST = 88
    C_SWEEP_POS = 96
    C_SWEEP_ACTIVE = 104
    C_SWEEP_STATS = 112
    C_J_COMMIT = 256
    C_J_SLOT = 264
    C_J_IMAGE = 272
    C_J_LIVE = 296
    C_J_USED = 304
    C_J_FLAGS = 312
    C_APPLY = 1
    C_ABANDON = 2
    C_MOVED = 1
    C_KIND_TRIPLET = 1
    C_KIND_CLIENT = 2
    C_COUNT_MAX = 0x0FFFFFFF


cdef inline uint32_t c_check(uint64_t key, uint32_t first, uint32_t last, uint32_t meta) noexcept nogil:
    return <uint32_t> (fmix64(key ^ fmix64(<uint64_t> first | (<uint64_t> last << 32))
                              ^ (<uint64_t> meta * 0x9E3779B97F4A7C15ULL)) & 0xFFFFFFFFULL)


cdef inline uint64_t c_jsum(uint64_t jslot, const unsigned char *image, uint64_t jlive,
                            uint64_t jused, uint64_t jflags) noexcept nogil:
    cdef uint64_t h = 0x243F6A8885A308D3ULL
    h = fmix64(h ^ jslot)
    h = fmix64(h ^ rd64(image))
    h = fmix64(h ^ rd64(image + 8))
    h = fmix64(h ^ rd64(image + 16))
    h = fmix64(h ^ jlive)
    h = fmix64(h ^ jused)
    h = fmix64(h ^ jflags)
    return h | 1


cdef inline void c_image(unsigned char *out, uint64_t key, uint32_t first, uint32_t last,
                         uint32_t meta) noexcept nogil:
    if key < 2:
        memset(out, 0, C_SLOT)
        wr64(out, key)
        return
    wr64(out, key)
    wr32(out + 8, first)
    wr32(out + 12, last)
    wr32(out + 16, meta)
    wr32(out + 20, c_check(key, first, last, meta))


cdef inline uint32_t c_meta(uint32_t kind, int64_t count) noexcept nogil:
    if count < 0:
        count = 0
    if count > C_COUNT_MAX:
        count = C_COUNT_MAX
    return (kind << 28) | <uint32_t> count


cdef class _Map:
    """One mapped table file (the main one, or PATH.grow during a rebuild)."""
    cdef int fd
    cdef unsigned char *base
    cdef size_t size
    cdef uint64_t nslots
    cdef uint64_t mask
    cdef object ino

    def __cinit__(self):
        self.fd = -1
        self.base = NULL
        self.size = 0

    cdef int setup(self, int fd, size_t size, uint64_t nslots, bint readonly) except -1:
        cdef int prot = PROT_READ if readonly else (PROT_READ | PROT_WRITE)
        cdef void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            raise StoreError(f"cannot map greylist store: {os.strerror(errno)}")
        self.fd = fd
        self.base = <unsigned char *> p
        self.size = size
        self.nslots = nslots
        self.mask = nslots - 1
        st = os.fstat(fd)
        self.ino = (st.st_dev, st.st_ino)
        return 0

    cdef void close(self):
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL
        # the fd is closed by close(); a leaked _Map keeps it (never reached in practice)

    cdef inline uint64_t q(self, size_t off) noexcept nogil:
        return rd64(self.base + off)

    cdef inline void setq(self, size_t off, uint64_t v) noexcept nogil:
        wr64(self.base + off, v)

    cdef inline unsigned char *slot(self, uint64_t i) noexcept nogil:
        return self.base + C_HEADER + i * C_SLOT

    cdef int64_t find(self, uint64_t h, int64_t *free_out) noexcept nogil:
        """Index of the valid entry for h or -1; *free_out = first free index or -1."""
        cdef uint64_t i = h & self.mask
        cdef uint64_t n
        cdef int64_t free = -1
        cdef unsigned char *s
        cdef uint64_t key
        for n in range(self.nslots):
            s = self.base + C_HEADER + i * C_SLOT
            key = rd64(s)
            if key == h:
                if rd32(s + 20) == c_check(key, rd32(s + 8), rd32(s + 12), rd32(s + 16)):
                    free_out[0] = free
                    return <int64_t> i
            elif key == 0:
                free_out[0] = free if free >= 0 else <int64_t> i
                return -1
            elif key == 1 and free < 0:
                free = <int64_t> i
            i = (i + 1) & self.mask
        free_out[0] = free
        return -1

    cdef int upsert_raw(self, uint64_t h, const unsigned char *image) except -1:
        """Unjournaled insert/overwrite (rebuild targets only)."""
        cdef int64_t free = -1
        cdef int64_t idx = self.find(h, &free)
        cdef uint64_t live = self.q(C_LIVE), used = self.q(C_USED)
        cdef uint64_t key0
        if rd64(image) == 1:
            if idx >= 0:
                memcpy(self.slot(idx), image, C_SLOT)
                self.setq(C_LIVE, live - 1)
            return 0
        if idx >= 0:
            memcpy(self.slot(idx), image, C_SLOT)
            return 0
        if free < 0:
            raise StoreError("greylist store: rebuild table full")
        key0 = rd64(self.slot(free))
        memcpy(self.slot(free), image, C_SLOT)
        self.setq(C_LIVE, live + 1)
        if key0 == 0:
            self.setq(C_USED, used + 1)
        return 0


cdef _Map _map_file(str path, bint readonly):
    fd, size, nslots = open_file(path, readonly)
    cdef _Map m = _Map()
    try:
        m.setup(fd, size, nslots, readonly)
    except BaseException:
        os.close(fd)
        raise
    return m


cdef class GreyStore:
    """The greylist store at `path`; see postier._pure.greystore.GreyStore."""
    cdef readonly str path
    cdef readonly bint readonly
    cdef readonly bytes salt
    cdef _Map t
    cdef _Map g
    cdef uint64_t g_gen
    cdef bint locked
    cdef double next_ino_check
    cdef object _bstate     # hashlib's BLAKE2b-64 keyed with the salt (empty keys)
    cdef uint64_t _hk[8]    # the C BLAKE2b state after the salt's key block

    def __init__(self, str path, *, bint create=True, nslots=MIN_SLOTS, salt=None, now=None,
                 bint readonly=False):
        self.path = path
        self.readonly = readonly
        if create and not readonly and not os.path.exists(path):
            create_file(path, nslots, salt, now)
        self.t = None
        self.g = None
        self.g_gen = <uint64_t> -1
        self.locked = False
        self.next_ino_check = 0.0
        self._open()

    # -- files -----------------------------------------------------------------
    cdef _open(self):
        self.t = _map_file(self.path, self.readonly)
        self.salt = (<char *> self.t.base + C_SALT)[:16]
        self._bstate = hashlib.blake2b(digest_size=8, key=self.salt)
        cdef const unsigned char *k = self.salt
        b2_key_state(self._hk, k, len(self.salt))

    cdef _drop_grow(self):
        if self.g is not None:
            self.g.close()
            self.g = None
            self.g_gen = <uint64_t> -1

    cdef _reopen(self):
        self._drop_grow()
        if self.t is not None:
            self.t.close()
            self.t = None
        self._open()

    def close(self):
        """Unmap and close (idempotent)."""
        self._drop_grow()
        if self.t is not None:
            self.t.close()
            self.t = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        if self.g is not None:
            self.g.close()
        if self.t is not None:
            self.t.close()

    cdef inline uint64_t _hash(self, bytes key):
        cdef const unsigned char *p = key
        cdef uint64_t h
        cdef bytes d
        if len(key):
            h = b2_64(self._hk, p, len(key))
        else:
            d = self._bstate.copy().digest()
            h = rd64(<const unsigned char *> d)
        return h + 2 if h < 2 else h

    # -- locking and recovery ------------------------------------------------------
    cdef _Map _lock(self, bint shared=False):
        cdef _Map t
        cdef int r
        while True:
            t = self.t
            if t is None:
                raise StoreError(f"greylist store {self.path} is closed")
            with nogil:
                r = flock(t.fd, LOCK_SH if shared else LOCK_EX)
                while r != 0 and errno == EINTR:
                    r = flock(t.fd, LOCK_SH if shared else LOCK_EX)
            if r != 0:
                raise StoreError(f"greylist store {self.path}: flock: {os.strerror(errno)}")
            if rd32(t.base + C_FLAGS) & C_MOVED:
                flock(t.fd, LOCK_UN)
                self._reopen()
                continue
            self.locked = True
            if not shared and t.q(C_J_COMMIT) != 0:
                self._recover(t)
            return t

    cdef void _unlock(self):
        if self.locked and self.t is not None:
            self.locked = False
            flock(self.t.fd, LOCK_UN)

    cdef bint _recover(self, _Map t) except -1:
        cdef unsigned char *b = t.base
        cdef uint64_t commit = rd64(b + C_J_COMMIT)
        cdef uint64_t jslot = rd64(b + C_J_SLOT), jlive = rd64(b + C_J_LIVE)
        cdef uint64_t jused = rd64(b + C_J_USED), jflags = rd64(b + C_J_FLAGS)
        if commit == 0:
            return False
        if commit != c_jsum(jslot, b + C_J_IMAGE, jlive, jused, jflags):
            wr64a(t.base + C_J_COMMIT, 0)
            return False
        if jflags & C_APPLY and jslot < t.nslots:
            memcpy(t.slot(jslot), b + C_J_IMAGE, C_SLOT)
            t.setq(C_LIVE, jlive)
            t.setq(C_USED, jused)
        if jflags & C_ABANDON:
            self._abandon_rebuild(t)
        barrier()
        wr64a(t.base + C_J_COMMIT, 0)
        return True

    cdef _abandon_rebuild(self, _Map t):
        t.setq(C_GROW_SLOTS, 0)
        t.setq(C_GROW_DONE, 0)
        self._drop_grow()
        try:
            os.unlink(self.path + ".grow")
        except OSError:
            pass

    # -- journaled slot writes ---------------------------------------------------------
    cdef int _write(self, _Map t, uint64_t i, uint64_t key, const unsigned char *image,
                    uint64_t live, uint64_t used) except -1:
        cdef unsigned char *b = t.base
        cdef bint growing = t.q(C_GROW_SLOTS) != 0
        cdef uint64_t flags = C_APPLY | (C_ABANDON if growing else 0)
        cdef _Map g
        wr64a(b + C_J_COMMIT, 0)
        wr64(b + C_J_SLOT, i)
        memcpy(b + C_J_IMAGE, image, C_SLOT)
        wr64(b + C_J_LIVE, live)
        wr64(b + C_J_USED, used)
        wr64(b + C_J_FLAGS, flags)
        barrier()
        wr64a(b + C_J_COMMIT, c_jsum(i, image, live, used, flags))
        barrier()
        memcpy(t.slot(i), image, C_SLOT)
        t.setq(C_LIVE, live)
        t.setq(C_USED, used)
        if growing and i < t.q(C_GROW_DONE):
            g = self._grow_table(t)
            if g is not None:
                g.upsert_raw(key, image)
        barrier()
        wr64a(b + C_J_COMMIT, 0)
        return 0

    cdef bint _set(self, _Map t, uint64_t h, uint32_t first, uint32_t last, uint32_t meta,
                   int64_t idx, int64_t free) except -1:
        cdef unsigned char image[24]
        cdef uint64_t live = t.q(C_LIVE), used = t.q(C_USED)
        c_image(image, h, first, last, meta)
        if idx >= 0:
            self._write(t, idx, h, image, live, used)
            return True
        if free < 0:
            return False
        if rd64(t.slot(free)) == 0:
            used += 1
        self._write(t, free, h, image, live + 1, used)
        return True

    cdef int _delete_at(self, _Map t, uint64_t i, uint64_t h) except -1:
        cdef unsigned char image[24]
        c_image(image, 1, 0, 0, 0)
        self._write(t, i, h, image, t.q(C_LIVE) - 1, t.q(C_USED))
        return 0

    # -- rebuild (growth) ------------------------------------------------------------------
    cdef _Map _grow_table(self, _Map t):
        cdef uint64_t gen = t.q(C_GROW_GEN)
        if self.g is not None and self.g_gen == gen:
            return self.g
        self._drop_grow()
        try:
            g = _map_file(self.path + ".grow", False)
        except StoreError:
            self._abandon_rebuild(t)
            return None
        if (<_Map> g).nslots != t.q(C_GROW_SLOTS):
            (<_Map> g).close()
            self._abandon_rebuild(t)
            return None
        self.g = g
        self.g_gen = gen
        return self.g

    cdef _start_rebuild(self, _Map t, uint64_t nslots):
        gpath = self.path + ".grow"
        self._drop_grow()
        try:
            os.unlink(gpath)
        except OSError:
            pass
        try:
            _write_new_file(gpath, nslots, self.salt, t.q(C_CREATED))
        except OSError as e:
            raise StoreError(f"cannot create {gpath}: {e.strerror}") from None
        t.setq(C_GROW_DONE, 0)
        t.setq(C_GROW_GEN, t.q(C_GROW_GEN) + 1)
        barrier()
        t.setq(C_GROW_SLOTS, nslots)

    cdef bint _migrate(self, _Map t, uint64_t chunk) except -1:
        cdef _Map g = self._grow_table(t)
        cdef unsigned char zero[24]
        cdef unsigned char image[24]
        cdef uint64_t done, end, i, key
        cdef unsigned char *s
        cdef unsigned char *b = t.base
        if g is None:
            return False
        memset(zero, 0, 24)
        done = t.q(C_GROW_DONE)
        if done >= t.nslots:
            return True
        end = done + chunk
        if end > t.nslots:
            end = t.nslots
        wr64a(b + C_J_COMMIT, 0)
        wr64(b + C_J_SLOT, 0)
        memset(b + C_J_IMAGE, 0, C_SLOT)
        wr64(b + C_J_LIVE, 0)
        wr64(b + C_J_USED, 0)
        wr64(b + C_J_FLAGS, C_ABANDON)
        barrier()
        wr64a(b + C_J_COMMIT, c_jsum(0, zero, 0, 0, C_ABANDON))
        barrier()
        for i in range(done, end):
            s = t.slot(i)
            key = rd64(s)
            if key >= 2 and rd32(s + 20) == c_check(key, rd32(s + 8), rd32(s + 12), rd32(s + 16)):
                g.upsert_raw(key, s)
        t.setq(C_GROW_DONE, end)
        barrier()
        wr64a(b + C_J_COMMIT, 0)
        return end >= t.nslots

    cdef _finish_rebuild(self, _Map t):
        """Every slot is copied (lock held); see the twin: the slow fsync runs
        without the lock, a second one and the rename under it."""
        cdef _Map g = self._grow_table(t)
        if g is None:
            return
        cdef uint64_t gen = t.q(C_GROW_GEN)
        self._unlock()
        with nogil:
            msync(g.base, g.size, MS_SYNC)
        os.fsync(g.fd)
        t = self._lock(False)
        if not (t.q(C_GROW_SLOTS) and t.q(C_GROW_GEN) == gen and t.q(C_GROW_DONE) >= t.nslots):
            return
        g = self._grow_table(t)
        if g is None:
            return
        msync(g.base, g.size, MS_SYNC)
        os.fsync(g.fd)
        os.rename(self.path + ".grow", self.path)
        wr32(t.base + C_FLAGS, rd32(t.base + C_FLAGS) | C_MOVED)
        self._unlock()
        self._reopen()

    cdef _after_write(self, _Map t):
        if t.q(C_GROW_SLOTS):
            if self._migrate(t, MIGRATE_CHUNK):
                self._finish_rebuild(t)
            return
        if t.q(C_USED) * GROW_DEN > t.nslots * GROW_NUM:
            self._start_rebuild(t, target_slots(t.q(C_LIVE)))

    # -- public: lookups and updates ---------------------------------------------------------
    def hash(self, bytes key):
        """The stored hash of `key` in this file (keyed with its salt)."""
        return self._hash(key)

    def get(self, bytes key):
        """(first, last, count, kind) of `key`, or None."""
        cdef uint64_t h = self._hash(key)
        cdef int64_t free = -1
        cdef int64_t idx
        cdef unsigned char *s
        cdef _Map t = self._lock(self.readonly)
        try:
            idx = t.find(h, &free)
            if idx < 0:
                return None
            s = t.slot(idx)
            return rd32(s + 8), rd32(s + 12), rd32(s + 16) & C_COUNT_MAX, rd32(s + 16) >> 28
        finally:
            self._unlock()

    def put(self, bytes key, first, last, count, kind=KIND_TRIPLET, now=None):
        """Store an entry (insert or overwrite)."""
        cdef uint64_t h = self._hash(key)
        cdef int64_t free = -1
        cdef int64_t idx
        cdef _Map t = self._lock(False)
        try:
            idx = t.find(h, &free)
            if not self._set(t, h, <uint32_t> (first & 0xFFFFFFFF), <uint32_t> (last & 0xFFFFFFFF),
                             c_meta(kind, count), idx, free):
                raise StoreError(f"greylist store {self.path} is full")
            self._after_write(t)
        finally:
            self._unlock()

    def delete(self, bytes key, now=None):
        """Remove an entry; True when it existed."""
        cdef uint64_t h = self._hash(key)
        cdef int64_t free = -1
        cdef int64_t idx
        cdef _Map t = self._lock(False)
        try:
            idx = t.find(h, &free)
            if idx < 0:
                return False
            self._delete_at(t, idx, h)
            self._after_write(t)
            return True
        finally:
            self._unlock()

    def greylist(self, bytes tkey, bytes ckey, int64_t now, int64_t delay, int64_t retry_window,
                 int64_t awl_clients):
        """postgrey's decision for one triplet, atomically; see the twin."""
        cdef uint64_t th = self._hash(tkey)
        cdef uint64_t ch = self._hash(ckey) if awl_clients > 0 else 0
        cdef int64_t cidx = -1, cfree = -1, tidx, tfree = -1
        cdef bint have_c = False, successful = False
        cdef int64_t cfirst = 0, clast = 0, ccount = 0, count, first, last, diff, n
        cdef int64_t awl_count = 0
        cdef int corrected = 0
        cdef unsigned char *s
        cdef _Map t = self._lock(False)
        try:
            if awl_clients > 0:
                cidx = t.find(ch, &cfree)
                if cidx >= 0:
                    s = t.slot(cidx)
                    have_c = True
                    cfirst = rd32(s + 8)
                    clast = rd32(s + 12)
                    ccount = rd32(s + 16) & C_COUNT_MAX
                    if ccount >= awl_clients:
                        count = ccount
                        if now >= clast + 3600 or clast > now:
                            count = ccount + 1 if ccount < C_COUNT_MAX else ccount
                            self._set(t, ch, <uint32_t> cfirst, <uint32_t> now,
                                      c_meta(C_KIND_CLIENT, count), cidx, -1)
                            self._after_write(t)
                        return R_AWL, 0, count, 0
            tidx = t.find(th, &tfree)
            if tidx >= 0:
                s = t.slot(tidx)
                first = rd32(s + 8)
                last = rd32(s + 12)
                count = (rd32(s + 16) & C_COUNT_MAX) + 1
                if last - first >= delay:
                    successful = True
                elif now - first > retry_window:
                    first = now
                if first > now:
                    first = now
                    corrected = 1
            else:
                first = now
                count = 1
            if not self._set(t, th, <uint32_t> first, <uint32_t> now,
                             c_meta(C_KIND_TRIPLET, count), tidx, tfree):
                raise StoreError(f"greylist store {self.path} is full")
            diff = delay - (now - first)
            if awl_clients > 0 and diff <= 0 and not successful:
                if not have_c or now >= clast + 3600:
                    n = (ccount if have_c else 0) + 1
                    if n > C_COUNT_MAX:
                        n = C_COUNT_MAX
                    cidx = t.find(ch, &cfree)
                    self._set(t, ch, <uint32_t> (cfirst if have_c else now), <uint32_t> now,
                              c_meta(C_KIND_CLIENT, n), cidx, cfree)
                    awl_count = n
            self._after_write(t)
            if diff > 0:
                return R_GREYLIST, first, awl_count, corrected
            return (R_PASS if successful else R_DELAYED), first, awl_count, corrected
        finally:
            self._unlock()

    # -- maintenance ----------------------------------------------------------------------------
    def maintain(self, int64_t now, int64_t max_age, int64_t delay, int64_t retry_window, *,
                 int64_t interval=3600, int64_t budget=SWEEP_CHUNK):
        """Bounded background work: a rebuild step, else an expiry pass step;
        see the twin."""
        if self.readonly:
            return None
        mono = time.monotonic()
        if mono >= self.next_ino_check:
            self.next_ino_check = mono + REOPEN_CHECK
            if self.t is None:
                raise StoreError(f"greylist store {self.path} is closed")
            if path_inode(self.path) not in (None, self.t.ino):
                self._reopen()
        cdef _Map t = self._lock(False)
        cdef uint64_t pos, end, i, key, st0, st1, st2, st3
        cdef int64_t last, first, lastc
        cdef uint32_t meta, kind
        cdef unsigned char *s
        cdef uint64_t chunk
        event = None
        try:
            if t.q(C_GROW_SLOTS):
                chunk = <uint64_t> (budget // 8)
                if chunk < <uint64_t> MIGRATE_CHUNK:
                    chunk = MIGRATE_CHUNK
                if self._migrate(t, chunk):
                    self._finish_rebuild(t)
                return ("busy", 0, 0, 0, 0)
            if not t.q(C_SWEEP_ACTIVE):
                lastc = <int64_t> t.q(C_SWEEP_LAST)
                if lastc and now - lastc < interval and lastc - now < interval:
                    return None
                t.setq(C_SWEEP_LAST, <uint64_t> now)
                t.setq(C_SWEEP_POS, 0)
                for i in range(4):
                    t.setq(C_SWEEP_STATS + 8 * i, 0)
                t.setq(C_SWEEP_ACTIVE, 1)
                event = "start"
            pos = t.q(C_SWEEP_POS)
            end = pos + <uint64_t> budget
            if end > t.nslots:
                end = t.nslots
            st0 = t.q(C_SWEEP_STATS)
            st1 = t.q(C_SWEEP_STATS + 8)
            st2 = t.q(C_SWEEP_STATS + 16)
            st3 = t.q(C_SWEEP_STATS + 24)
            for i in range(pos, end):
                s = t.slot(i)
                key = rd64(s)
                if key < 2:
                    continue
                first = rd32(s + 8)
                last = rd32(s + 12)
                meta = rd32(s + 16)
                if rd32(s + 20) != c_check(key, <uint32_t> first, <uint32_t> last, meta):
                    self._delete_at(t, i, key)
                    continue
                kind = meta >> 28
                if kind == C_KIND_TRIPLET:
                    st0 += 1
                else:
                    st2 += 1
                if now - last > max_age or (kind == C_KIND_TRIPLET and last - first < delay
                                            and now - last > retry_window):
                    self._delete_at(t, i, key)
                elif kind == C_KIND_TRIPLET:
                    st1 += 1
                else:
                    st3 += 1
            t.setq(C_SWEEP_STATS, st0)
            t.setq(C_SWEEP_STATS + 8, st1)
            t.setq(C_SWEEP_STATS + 16, st2)
            t.setq(C_SWEEP_STATS + 24, st3)
            t.setq(C_SWEEP_POS, end)
            if end >= t.nslots:
                t.setq(C_SWEEP_ACTIVE, 0)
                return ("done", st0, st1, st2, st3)
            return (event or "busy", 0, 0, 0, 0)
        finally:
            self._unlock()

    # -- inspection -------------------------------------------------------------------------------
    def stats(self):
        """Header fields (nslots, live, used, rebuild and pass state)."""
        cdef _Map t = self._lock(True)
        try:
            h = read_header((<char *> t.base)[:512])
        finally:
            self._unlock()
        h.pop("magic", None)
        h["salt"] = h["salt"].hex()
        h["file_size"] = table_size(h["nslots"])
        return h

    def items(self):
        """(hash, first, last, count, kind) of every valid entry (a snapshot)."""
        cdef _Map t = self._lock(True)
        cdef uint64_t i, key
        cdef unsigned char *s
        out = []
        try:
            for i in range(t.nslots):
                s = t.slot(i)
                key = rd64(s)
                if key >= 2 and rd32(s + 20) == c_check(key, rd32(s + 8), rd32(s + 12), rd32(s + 16)):
                    out.append((key, rd32(s + 8), rd32(s + 12), rd32(s + 16) & C_COUNT_MAX,
                                rd32(s + 16) >> 28))
        finally:
            self._unlock()
        return iter(out)

    def check(self, bint repair=False):
        """Verify the whole table; with repair=True rebuild it from its valid
        entries when the check fails.  See the twin."""
        cdef _Map t = self._lock(self.readonly)
        try:
            report = _check_map(t)
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

    cdef _repair(self, _Map t):
        cdef dict entries = {}
        cdef uint64_t i, key
        cdef unsigned char *s
        for i in range(t.nslots):
            s = t.slot(i)
            key = rd64(s)
            if key >= 2 and rd32(s + 20) == c_check(key, rd32(s + 8), rd32(s + 12), rd32(s + 16)):
                prev = entries.get(key)
                if prev is None or rd32(<const unsigned char *> (<bytes> prev) + 12) < rd32(s + 12):
                    entries[key] = (<char *> s)[:24]
        n = len(entries)
        nslots = target_slots(n)
        if n * GROW_DEN <= t.nslots * GROW_NUM and t.nslots > nslots:
            nslots = t.nslots
        self._abandon_rebuild(t)
        gpath = self.path + ".grow"
        _write_new_file(gpath, nslots, self.salt, t.q(C_CREATED))
        cdef _Map g = _map_file(gpath, False)
        try:
            for key_obj, image in entries.items():
                g.upsert_raw(<uint64_t> key_obj, <const unsigned char *> (<bytes> image))
            msync(g.base, g.size, MS_SYNC)
            os.fsync(g.fd)
        finally:
            g.close()
        os.rename(gpath, self.path)
        wr32(t.base + C_FLAGS, rd32(t.base + C_FLAGS) | C_MOVED)
        self._unlock()
        self._reopen()
        self._lock(False)


cdef dict _check_map(_Map t):
    """check_table() over a mapped table, in C (same report as the twin)."""
    cdef unsigned char *b = t.base
    cdef uint64_t nslots = t.nslots, mask = t.mask
    cdef uint64_t commit = rd64(b + C_J_COMMIT)
    cdef uint64_t jslot = rd64(b + C_J_SLOT), jlive = rd64(b + C_J_LIVE)
    cdef uint64_t jused = rd64(b + C_J_USED), jflags = rd64(b + C_J_FLAGS)
    cdef bint pending = False, apply = False
    cdef uint64_t live_h = rd64(b + C_LIVE), used_h = rd64(b + C_USED)
    if commit != 0 and commit == c_jsum(jslot, b + C_J_IMAGE, jlive, jused, jflags):
        pending = True
        if jflags & C_APPLY and jslot < nslots:
            apply = True
            live_h = jlive
            used_h = jused
    cdef unsigned char *state = <unsigned char *> malloc(nslots if nslots else 1)
    cdef uint64_t *keys = <uint64_t *> malloc((nslots if nslots else 1) * 8)
    if state == NULL or keys == NULL:
        free(state)
        free(keys)
        raise MemoryError()
    cdef uint64_t i, j, key, nkeys = 0
    cdef uint64_t empty = 0, tombs = 0, damaged = 0, triplets = 0, clients = 0, unknown = 0
    cdef uint64_t dups = 0, unreachable = 0
    cdef uint32_t first, last, meta, check, kind
    cdef const unsigned char *s
    try:
        for i in range(nslots):
            s = (b + C_J_IMAGE) if (apply and i == jslot) else (b + C_HEADER + i * C_SLOT)
            key = rd64(s)
            first = rd32(s + 8)
            last = rd32(s + 12)
            meta = rd32(s + 16)
            check = rd32(s + 20)
            state[i] = 0
            if key == 0:
                empty += 1
                state[i] = 2
                if first or last or meta or check:
                    damaged += 1
                    state[i] = 0
                continue
            if key == 1:
                tombs += 1
                if first or last or meta or check:
                    damaged += 1
                continue
            if check != c_check(key, first, last, meta):
                damaged += 1
                continue
            state[i] = 1
            kind = meta >> 28
            if kind == C_KIND_TRIPLET:
                triplets += 1
            elif kind == C_KIND_CLIENT:
                clients += 1
            else:
                unknown += 1
            keys[nkeys] = key
            nkeys += 1
        qsort(keys, nkeys, 8, cmp_u64)
        for i in range(1, nkeys):
            if keys[i] == keys[i - 1]:
                dups += 1
        for i in range(nslots):
            if state[i] != 1:
                continue
            s = (b + C_J_IMAGE) if (apply and i == jslot) else (b + C_HEADER + i * C_SLOT)
            j = rd64(s) & mask
            while j != i:
                if state[j] == 2:
                    unreachable += 1
                    break
                j = (j + 1) & mask
    finally:
        free(state)
        free(keys)
    problems = []
    live = triplets + clients + unknown
    if damaged:
        problems.append(f"{damaged} damaged slots (entries lost)")
    if dups:
        problems.append(f"{dups} duplicate keys")
    if unreachable:
        problems.append(f"{unreachable} entries unreachable from their home slot")
    if unknown:
        problems.append(f"{unknown} entries of unknown kind")
    if (<char *> b)[:8] != MAGIC:
        problems.insert(0, "bad magic")
    if live != live_h:
        problems.append(f"header says {live_h} live entries, found {live}")
    if nslots - empty != used_h:
        problems.append(f"header says {used_h} used slots, found {nslots - empty}")
    if empty == 0:
        problems.append("no empty slot")
    return {"ok": not problems, "problems": problems, "nslots": nslots,
            "triplets": triplets, "clients": clients, "live": live, "tombstones": tombs,
            "damaged": damaged, "empty": empty, "pending_journal": bool(pending),
            "rebuild": rd64(b + C_GROW_SLOTS), "rebuild_done": rd64(b + C_GROW_DONE),
            "file_size": table_size(nslots)}


def check_table(buf, nslots):
    """Verify a table given as a buffer (see the twin)."""
    return _py_check_table(buf, nslots)


def check_file(str path, bint repair=False):
    """`postier greylistd --check-store`: open (read-only unless repairing) and check."""
    store = GreyStore(path, create=False, readonly=not repair)
    try:
        return store.check(repair=repair)
    finally:
        store.close()
