"""hsdb's grouping of expressions into Hyperscan databases: the short ones
in one group, the long ones over n groups, or over `long_groups` groups
when the caller asks (the body area: one database of long expressions),
and a layout change gives another cache key (a cached database of the old
layout is not reused)."""

from __future__ import annotations

from postier.content.spam import hsdb


def _parts(lengths: list[int]) -> list[tuple[int, int, bytes, int]]:
    return [(k, k, b"a" * n, 0) for k, n in enumerate(lengths)]


def test_long_expressions_spread_or_kept_together():
    parts = _parts([10, 20] + [hsdb.LONG_EXPR + i for i in range(40)])
    spread = hsdb._groups(parts, 2)
    assert [(len(g), long_) for g, long_ in spread] == [(2, False), (20, True), (20, True)]
    one = hsdb._groups(parts, 2, long_groups=1)
    assert [(len(g), long_) for g, long_ in one] == [(2, False), (40, True)]
    assert sorted(it[0] for it in one[1][0]) == list(range(2, 42))


def test_layout_is_part_of_the_cache_key(tmp_path):
    entries = [hsdb.Entry([b"foo"]), hsdb.Entry([b"ba[rz]"])]
    a = hsdb.AreaDatabase(entries, cache_dir=str(tmp_path), workers=1, label="t")
    b = hsdb.AreaDatabase(entries, cache_dir=str(tmp_path), workers=1, label="t", long_groups=1)
    assert a.key != b.key and not b.from_cache
    assert a.scan(b"xx baz foo") == b.scan(b"xx baz foo") == {0, 1}
    c = hsdb.AreaDatabase(entries, cache_dir=str(tmp_path), workers=1, label="t", long_groups=1)
    assert c.from_cache and c.key == b.key
