"""The spam rule cache directory does not grow without bound: every rule
change names new database files (their name is a hash of the expressions),
so per area only the current file and the most recently used other one are
kept (hsdb.prune_cache), loading a file marks it used, the ASCII gate files
keep a few spares, and a failed write leaves no temporary file behind."""

from __future__ import annotations

import os

import pytest

from postier.content.spam import engine, hsdb


def _names(d) -> list[str]:
    return sorted(os.listdir(d))


def _age(path, seconds: int) -> None:
    st = os.stat(path)
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_prune_keeps_current_and_the_most_recent_spares(tmp_path):
    for i, age in enumerate([500, 100, 300, 0]):
        p = tmp_path / f"spam-body-{i}.hsdb"
        p.write_bytes(b"x")
        _age(p, age)
    (tmp_path / "spam-header-9.hsdb").write_bytes(b"other area")
    (tmp_path / "spam-hs-classes.json").write_text("{}")
    hsdb.prune_cache(str(tmp_path), "spam-body-", "spam-body-0.hsdb", spare=1)
    # the oldest is current (kept), the newest other (3) is the spare
    assert _names(tmp_path) == ["spam-body-0.hsdb", "spam-body-3.hsdb",
                                "spam-header-9.hsdb", "spam-hs-classes.json"]
    hsdb.prune_cache(str(tmp_path), "spam-body-", "spam-body-3.hsdb", spare=0)
    assert _names(tmp_path) == ["spam-body-3.hsdb", "spam-header-9.hsdb",
                                "spam-hs-classes.json"]


def test_prune_of_a_missing_directory_is_quiet(tmp_path):
    hsdb.prune_cache(str(tmp_path / "nope"), "spam-body-", "x")
    hsdb.touch(str(tmp_path / "nope" / "x"))


def test_rule_changes_keep_two_files_per_area(tmp_path):
    d = str(tmp_path)
    sets = [[hsdb.Entry([b"foo%d" % i]), hsdb.Entry([b"ba[rz]"])] for i in range(3)]
    first = hsdb.AreaDatabase(sets[0], cache_dir=d, workers=1, label="t")
    _age(first._path(d), 100)
    second = hsdb.AreaDatabase(sets[1], cache_dir=d, workers=1, label="t")
    assert not second.from_cache
    assert len([n for n in _names(d) if n.startswith("spam-t-")]) == 2
    _age(second._path(d), 50)
    # loading the first set again marks its file used: it is the newest spare now
    again = hsdb.AreaDatabase(sets[0], cache_dir=d, workers=1, label="t")
    assert again.from_cache and again.scan(b"a foo0 bar") == {0, 1}
    third = hsdb.AreaDatabase(sets[2], cache_dir=d, workers=1, label="t")
    assert not third.from_cache
    kept = {n for n in _names(d) if n.startswith("spam-t-")}
    assert kept == {os.path.basename(third._path(d)), os.path.basename(first._path(d))}
    assert not os.path.exists(second._path(d))


def test_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "spam-t-x.hsdb"
    target.mkdir()                      # os.replace onto a directory fails
    hsdb._atomic_write(str(tmp_path), str(target), b"data")
    assert _names(tmp_path) == ["spam-t-x.hsdb"] and target.is_dir()


def test_ascii_gate_files_keep_a_few_spares(tmp_path):
    re2 = pytest.importorskip("re2")
    d = str(tmp_path)
    for i in range(engine.ASCII_GATE_SPARE + 3):
        p = tmp_path / f"spam-asciigate-old{i}"
        p.write_bytes(b"-")
        _age(p, 1000 + i)
    # a gate long enough to have an ASCII form: (?:wordN|...) over GATE_BIG bytes
    words = b"|".join(b"w%05d\xc3\xa9" % i for i in range(engine.GATE_BIG // 6))
    gate = re2.compile(b"(?:" + words + b")")
    engine._ascii_gate(gate, d)
    names = _names(d)
    assert len(names) == engine.ASCII_GATE_SPARE + 1
    # the spares are the most recently used old ones
    assert {f"spam-asciigate-old{i}" for i in range(engine.ASCII_GATE_SPARE)} < set(names)


def test_cached_keeps_checks_and_remakes(tmp_path):
    """hsdb.cached: made once and read back, a refusal remembered, a damaged
    file or one load() refuses made again, a hit marked used."""
    d = str(tmp_path)
    made = []

    def make(v):
        def f():
            made.append(v)
            return v
        return f
    assert hsdb.cached(d, "spam-x-", "k1", make(b"abc"), 1) == b"abc"
    assert hsdb.cached(d, "spam-x-", "k1", make(b"zzz"), 1) == b"abc"
    assert made == [b"abc"]
    assert hsdb.cached(d, "spam-x-", "k2", make(None), 1) is None
    assert hsdb.cached(d, "spam-x-", "k2", make(b"no"), 1) is None       # the refusal is kept
    p = tmp_path / "spam-x-k1"
    p.write_bytes(p.read_bytes()[:-1] + b"!")                            # damaged: digest wrong
    assert hsdb.cached(d, "spam-x-", "k1", make(b"new"), 1) == b"new"
    assert hsdb.cached(d, "spam-x-", "k1", make(b"x"), 1, load=lambda b: None) == b"x"
    assert hsdb.cached(d, "spam-x-", "k1", make(b"y"), 1, load=bytes.upper) == b"X"
    os.utime(p, (1, 1))
    hsdb.cached(d, "spam-x-", "k1", make(b"y"), 1)
    assert os.stat(p).st_mtime > 1                                       # a hit marks it used
    assert hsdb.cached(None, "spam-x-", "k1", make(b"mem"), 1) == b"mem"  # no directory
