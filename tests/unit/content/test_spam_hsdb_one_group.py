"""hsdb's `one_group` layout (the header area's): a partition's short and
long expressions compile into one database (solo entries keep their own),
with the same reports as the default layout (short ones in one database,
long ones in others) on random values, and another cache key."""

from __future__ import annotations

import random

import hyperscan as hs

from postier.content.spam import hsdb

_WORDS = [b"%s%d" % (w, i) for i in range(60) for w in (b"alpha", b"kilo", b"zulu")]


def _entries() -> list[hsdb.Entry]:
    long_ = b"\\x00(?:" + b"|".join(_WORDS) + b")\\x40example\\x2ecom\\x0a?\\x00"
    assert len(long_) >= hsdb.LONG_EXPR
    long2 = b"(?:" + b"|".join(w[::-1] for w in _WORDS) + b")\\b"
    return [
        hsdb.Entry([b"foo"], part=0),
        hsdb.Entry([b"ba[rz]+\\d"], part=0),
        hsdb.Entry([long_], flags=hs.HS_FLAG_CASELESS, part=0),
        hsdb.Entry([long2], part=0),
        hsdb.Entry([b"\\x00[^\\x00]{3}"], part=1),
        hsdb.Entry([long2, b"qu+x"], part=1),
        hsdb.Entry([b"e"], part=1, solo=True),
    ]


def _values(n: int) -> list[bytes]:
    rnd = random.Random(7)
    alphabet = [b"foo", b"bar", b"bazz1", b"@example.com", b"\n", b" ", b"quux", b"Q"]
    alphabet += _WORDS[::7] + [w[::-1] for w in _WORDS[::5]] + [w.upper() for w in _WORDS[::9]]
    out = []
    for _ in range(n):
        v = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 5)))
        out.append(b"\0" + v + b"\0\0")
    return out


def test_one_database_per_partition_same_reports(tmp_path):
    base = hsdb.AreaDatabase(_entries(), cache_dir=str(tmp_path), workers=1, label="t")
    one = hsdb.AreaDatabase(_entries(), cache_dir=str(tmp_path), workers=1, label="t",
                            one_group=True)
    assert base.key != one.key and not one.from_cache
    plain = [p for p, so in zip(one.db_parts, one.db_solo, strict=True) if not so]
    assert sorted(plain) == [0, 1]
    assert sum(not so for so in base.db_solo) > 2
    assert (one.exact, one.prefilter, one.always) == (base.exact, base.prefilter, base.always)
    hits = 0
    for v in _values(400):
        for part in (0, 1):
            got = one.scan(v, part)
            assert got == base.scan(v, part), (v, part)
            hits += bool(got - {6})
    assert hits > 100
    again = hsdb.AreaDatabase(_entries(), cache_dir=str(tmp_path), workers=1, label="t",
                              one_group=True)
    assert again.from_cache and again.key == one.key
    v = b"\0ZULU3@example.com\0\0"
    assert (again.scan(v, 0), again.scan(v, 1)) == ({2}, {4, 6})
