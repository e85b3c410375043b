"""postier._native.hashtable and its twin postier._pure.hashtable: the hash:
table file format, lookups, atomic rebuilds, re-mapping, corrupt files.

Every test runs against both implementations (fixture `impl`); files written
by one must be byte-identical to files written by the other.
"""

from __future__ import annotations

import importlib
import os
import random
import struct

import pytest

from postier.errors import MapError

PURE = importlib.import_module("postier._pure.hashtable")
try:
    NATIVE = importlib.import_module("postier._native.hashtable")
except ImportError:  # pragma: no cover - the setup always builds it
    NATIVE = None

needs_native = pytest.mark.skipif(NATIVE is None, reason="native hashtable not built")

M64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


@pytest.fixture
def ht(impl):
    return impl("hashtable")


def entries(n: int, prefix: str = "key") -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}{i}@example.com".encode(), f"value {i}".encode() * (i % 4))
            for i in range(n)]


# ------------------------------------------------------------------ hash function

def test_fnv_reference_vectors():
    # published FNV-1a 64 test vectors: the reference used below is right
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_hash_is_fnv1a_then_fmix(ht):
    for key in (b"", b"a", b"foobar", b"user@example.com", bytes(range(256))):
        assert ht.hash_key(key) == fmix64(fnv1a64(key))


@needs_native
def test_native_and_pure_hash_agree():
    rnd = random.Random(7)
    for _ in range(2000):
        key = rnd.randbytes(rnd.randrange(0, 80))
        assert NATIVE.hash_key(key) == PURE.hash_key(key), key


# ------------------------------------------------------------------ build and read

def test_roundtrip(ht, tmp_path):
    path = str(tmp_path / "t.db")
    data = entries(3000)
    count, dups = ht.build(path, data, True)
    assert (count, dups) == (3000, 0)
    with ht.HashTable(path) as t:
        assert t.count == len(t) == 3000
        assert t.folded
        for k, v in data:
            assert t.get(k) == v
            assert k in t
        assert t.get(b"missing@example.com") is None
        assert b"missing" not in t
        assert t.get(b"key1@example.co") is None       # prefix of a key
        assert t.get(b"key1@example.comm") is None     # key plus a byte
        assert t.get_text(b"key5@example.com") == "value 5"


def test_items_in_insertion_order(ht, tmp_path):
    path = str(tmp_path / "t.db")
    data = entries(500)
    ht.build(path, reversed(data), False)
    with ht.HashTable(path) as t:
        assert list(t.items()) == list(reversed(data))
        assert not t.folded


def test_empty_table(ht, tmp_path):
    path = str(tmp_path / "t.db")
    assert ht.build(path, [], False) == (0, 0)
    with ht.HashTable(path) as t:
        assert t.count == 0
        assert t.get(b"") is None
        assert t.get(b"x") is None
        assert list(t.items()) == []


def test_odd_keys_and_values(ht, tmp_path):
    path = str(tmp_path / "t.db")
    data = [(b"", b"empty key"), (b"empty value", b""), (b"\x00nul\x00", b"\xff\xfe"),
            (b"\xc3\xa4\xc3\xb6", "äö".encode()), (b"big", b"x" * 200_000), (b"k", b"v")]
    ht.build(path, data, False)
    with ht.HashTable(path) as t:
        for k, v in data:
            assert t.get(k) == v
        assert t.get_text(b"\x00nul\x00") == "\udcff\udcfe"     # surrogateescape
        assert t.get_text(b"\xc3\xa4\xc3\xb6") == "äö"
        assert list(t.items()) == data


def test_duplicates_warn_first_wins(ht, tmp_path):
    path = str(tmp_path / "t.db")
    seen: list[bytes] = []
    data = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"a", b"4"), (b"c", b"5")]
    assert ht.build(path, data, True, "warn", seen.append) == (3, 2)
    assert seen == [b"a", b"a"]
    with ht.HashTable(path) as t:
        assert t.get(b"a") == b"1"
        assert list(t.items()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"5")]


def test_duplicates_ignore_and_replace(ht, tmp_path):
    data = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"a", b"longer value 4")]
    seen: list[bytes] = []
    p1 = str(tmp_path / "ignore.db")
    assert ht.build(p1, data, False, "ignore", seen.append) == (2, 2)
    p2 = str(tmp_path / "replace.db")
    assert ht.build(p2, data, False, "replace", seen.append) == (2, 2)
    assert seen == []
    with ht.HashTable(p1) as t:
        assert t.get(b"a") == b"1"
    with ht.HashTable(p2) as t:
        assert t.get(b"a") == b"longer value 4"
        assert list(t.items()) == [(b"a", b"longer value 4"), (b"b", b"2")]
    with pytest.raises(ValueError):
        ht.build(p1, data, False, "fatal")


def test_keys_must_be_bytes(ht, tmp_path):
    with pytest.raises(TypeError):
        ht.build(str(tmp_path / "t.db"), [("str", b"v")], False)
    with pytest.raises(TypeError):
        ht.build(str(tmp_path / "t.db"), [(b"k", "str")], False)
    assert not (tmp_path / "t.db").exists()


def test_load_factor_and_layout(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, entries(1000), False)
    raw = open(path, "rb").read()
    (magic, version, flags, count, nslots, slots_off, heap_off, heap_size,
     file_size) = struct.unpack_from("<8sIIQQQQQQ", raw)
    assert magic == b"PSTRHASH" and version == 1 and flags == 0
    assert count == 1000 and count / nslots <= 0.6
    assert slots_off == 64 and heap_off == 64 + nslots * 8
    assert file_size == len(raw) == heap_off + heap_size
    used = sum(1 for i in range(nslots) if struct.unpack_from("<II", raw, 64 + 8 * i)[1])
    assert used == count


@needs_native
@pytest.mark.parametrize("dup", ["warn", "ignore", "replace"])
def test_native_and_pure_files_identical(tmp_path, dup):
    rnd = random.Random(3)
    data = [(rnd.randbytes(rnd.randrange(0, 40)), rnd.randbytes(rnd.randrange(0, 60)))
            for _ in range(4000)]
    data += data[:300]                    # duplicates
    a, b = str(tmp_path / "native.db"), str(tmp_path / "pure.db")
    assert NATIVE.build(a, data, True, dup) == PURE.build(b, data, True, dup)
    assert open(a, "rb").read() == open(b, "rb").read()
    with NATIVE.HashTable(b) as t1, PURE.HashTable(a) as t2:   # each reads the other's
        assert list(t1.items()) == list(t2.items())
        for k, _ in data[:500]:
            assert t1.get(k) == t2.get(k)


# ------------------------------------------------------------------ atomic writes, re-mapping

def test_build_replaces_atomically(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, [(b"k", b"old")], False, mode=0o640)
    assert os.stat(path).st_mode & 0o777 == 0o640
    reader = ht.HashTable(path)
    ino = os.stat(path).st_ino
    ht.build(path, [(b"k", b"new"), (b"k2", b"v2")], False)
    assert os.stat(path).st_ino != ino                 # a new file was renamed in
    assert reader.get(b"k") == b"old"                  # old mapping still intact
    assert sorted(os.listdir(tmp_path)) == ["t.db"]    # no temp files left
    reader.close()


def test_failed_build_leaves_old_table(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, [(b"k", b"old")], False)

    def bad():
        yield b"a", b"1"
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        ht.build(path, bad(), False)
    with ht.HashTable(path) as t:
        assert t.get(b"k") == b"old"
    assert sorted(os.listdir(tmp_path)) == ["t.db"]


def test_build_into_missing_directory(ht, tmp_path):
    with pytest.raises(MapError) as e:
        ht.build(str(tmp_path / "nodir" / "t.db"), [(b"k", b"v")], False)
    assert "nodir/t.db" in str(e.value)


def test_reopen_if_changed(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, [(b"k", b"one")], False)
    t = ht.HashTable(path)
    assert t.reopen_if_changed(0) is False             # unchanged
    ht.build(path, [(b"k", b"two"), (b"other", b"x")], False)
    assert t.reopen_if_changed(3600) is False          # throttled: not checked yet
    assert t.get(b"k") == b"one"
    assert t.reopen_if_changed(0) is True
    assert t.get(b"k") == b"two" and t.count == 2
    os.unlink(path)
    assert t.reopen_if_changed(0) is False             # gone: keep serving the old copy
    assert t.get(b"k") == b"two"
    t.close()


def test_closed_table(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, [(b"k", b"v")], False)
    t = ht.HashTable(path)
    t.close()
    t.close()
    with pytest.raises(MapError):
        t.get(b"k")
    with pytest.raises(MapError):
        list(t.items())


# ------------------------------------------------------------------ bad files

def test_missing_file(ht, tmp_path):
    path = str(tmp_path / "nope.db")
    with pytest.raises(MapError) as e:
        ht.HashTable(path)
    assert str(e.value) == f"open database {path}: No such file or directory"


def test_directory_instead_of_file(ht, tmp_path):
    with pytest.raises(MapError):
        ht.HashTable(str(tmp_path))


@pytest.fixture
def good(ht, tmp_path):
    path = str(tmp_path / "t.db")
    ht.build(path, entries(200), True)
    return path


def rewrite(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def expect_error(ht, path: str, *words: str) -> str:
    with pytest.raises(MapError) as e:
        t = ht.HashTable(path)
        for k, _ in entries(200):
            t.get(k)
        list(t.items())
    msg = str(e.value)
    assert msg.startswith(path + ": "), msg
    assert f"postier map hash:{path[:-3]}" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.mark.parametrize("size", [0, 1, 8, 63, 64, 100, -1])
def test_truncated(ht, good, size):
    raw = open(good, "rb").read()
    rewrite(good, raw[:size] if size >= 0 else raw[:-1])
    expect_error(ht, good)


def test_bad_magic(ht, good):
    raw = bytearray(open(good, "rb").read())
    raw[0] ^= 0x20
    rewrite(good, bytes(raw))
    expect_error(ht, good, "bad magic")


def test_bad_version(ht, good):
    raw = bytearray(open(good, "rb").read())
    struct.pack_into("<I", raw, 8, 99)
    rewrite(good, bytes(raw))
    expect_error(ht, good, "version 99")


def test_random_garbage(ht, tmp_path):
    rnd = random.Random(11)
    for n in range(50):
        path = str(tmp_path / f"g{n}.db")
        rewrite(path, rnd.randbytes(rnd.randrange(0, 4096)))
        expect_error(ht, path)


def test_berkeley_db_file_is_named(ht, tmp_path):
    # the first page of a Berkeley DB hash file as Postfix's postmap writes it
    head = bytes(12) + struct.pack("<I", 0x061561) + struct.pack("<I", 9) + bytes(4076)
    path = str(tmp_path / "access.db")
    rewrite(path, head)
    msg = expect_error(ht, path, "Berkeley DB")
    assert "postier map hash:" + str(tmp_path / "access") in msg


def test_inconsistent_sizes(ht, good):
    raw = bytearray(open(good, "rb").read())
    nslots = struct.unpack_from("<Q", raw, 24)[0]
    for off, value in ((24, nslots * 1000), (24, 0), (40, 12345), (48, 1 << 62),
                       (16, nslots), (32, 0)):
        bad = bytearray(raw)
        struct.pack_into("<Q", bad, off, value)
        rewrite(good, bytes(bad))
        expect_error(ht, good)


def _slot_table(raw: bytes) -> tuple[int, int]:
    nslots = struct.unpack_from("<Q", raw, 24)[0]
    heap_off = struct.unpack_from("<Q", raw, 40)[0]
    return nslots, heap_off


def test_slot_pointing_outside_the_file(ht, good):
    raw = bytearray(open(good, "rb").read())
    nslots, _ = _slot_table(raw)
    for i in range(nslots):                    # every used slot points far away
        tag, ref = struct.unpack_from("<II", raw, 64 + 8 * i)
        if ref:
            struct.pack_into("<II", raw, 64 + 8 * i, tag, 0xFFFFFFF0)
    rewrite(good, bytes(raw))
    t = ht.HashTable(good)                     # the header is fine
    with pytest.raises(MapError) as e:
        for k, _ in entries(200):
            t.get(k)
    assert "out of range" in str(e.value)


def test_record_length_beyond_end(ht, good):
    raw = bytearray(open(good, "rb").read())
    _, heap_off = _slot_table(raw)
    struct.pack_into("<I", raw, heap_off, 0x7FFFFFFF)      # first record's key length
    rewrite(good, bytes(raw))
    t = ht.HashTable(good)
    with pytest.raises(MapError) as e:
        list(t.items())
    assert "beyond the end" in str(e.value)
    with pytest.raises(MapError):
        for k, _ in entries(200):
            t.get(k)


def test_full_slot_table_does_not_hang(ht, good):
    raw = bytearray(open(good, "rb").read())
    nslots, _ = _slot_table(raw)
    used = [struct.unpack_from("<II", raw, 64 + 8 * i) for i in range(nslots)]
    some = next(s for s in used if s[1])
    for i in range(nslots):                    # no empty slot left anywhere
        if not used[i][1]:
            struct.pack_into("<II", raw, 64 + 8 * i, some[0] ^ 1, some[1])
    rewrite(good, bytes(raw))
    t = ht.HashTable(good)
    assert t.get(b"not there at all") is None
    assert t.get(entries(1)[0][0]) == b""


def test_random_corruption_never_crashes(ht, good):
    """Flip bytes anywhere: every call returns or raises MapError."""
    raw = open(good, "rb").read()
    rnd = random.Random(5)
    keys = [k for k, _ in entries(200)] + [b"absent"]
    for _ in range(300):
        bad = bytearray(raw)
        for _ in range(rnd.randrange(1, 12)):
            bad[rnd.randrange(len(bad))] = rnd.randrange(256)
        rewrite(good, bytes(bad))
        try:
            t = ht.HashTable(good)
        except MapError:
            continue
        try:
            for k in keys:
                v = t.get(k)
                assert v is None or isinstance(v, bytes)
            for k, v in t.items():
                assert isinstance(k, bytes) and isinstance(v, bytes)
        except MapError:
            pass
        t.close()
