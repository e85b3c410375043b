"""postier.maps.hash: the `hash:` table type (folding, stale warnings,
rebuild pick-up, empty results, Berkeley DB files), native and pure."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from postier.errors import MapError
from postier.maps import hash as hash_map


@pytest.fixture(autouse=True)
def _both(pure_env):
    """Every test here runs with POSTIER_PURE=0 and =1."""


def make(tmp_path, text: str, **kw) -> tuple[str, list[str]]:
    name = str(tmp_path / "access")
    with open(name, "w", encoding="utf-8") as f:
        f.write(text)
    warnings: list[str] = []
    hash_map.build_from_source(name, text.encode(), warn=warnings.append, **kw)
    return name, warnings


def test_implementation_follows_postier_pure(pure_env):
    mod = hash_map._impl()
    assert mod.__name__ == ("postier._pure.hashtable" if pure_env == "1"
                            else "postier._native.hashtable")


def test_lookup_folds_keys(tmp_path):
    name, warnings = make(tmp_path, "Example.COM REJECT\nuser@Example.com OK\n")
    assert warnings == []
    m = hash_map.open("hash", name)
    assert m.type == "hash" and m.name == name
    assert m.lookup("example.com") == "REJECT"
    assert m.lookup("EXAMPLE.com") == "REJECT"
    assert m.lookup("USER@example.COM") == "OK"
    assert m.lookup("other.com") is None
    assert list(m.items()) == [("example.com", "REJECT"), ("user@example.com", "OK")]


def test_no_fold(tmp_path):
    name, _ = make(tmp_path, "Mixed.Case x\nlower y\n", fold=False)
    m = hash_map.open("hash", name, fold=False)
    assert m.lookup("Mixed.Case") == "x"
    assert m.lookup("mixed.case") is None
    folded = hash_map.open("hash", name)          # table built with -f, query folded
    assert folded.lookup("Mixed.Case") is None
    assert folded.lookup("LOWER") == "y"


def test_unicode_case_folding(tmp_path):
    name, _ = make(tmp_path, "STRAßE street\nΣΑΣ sigma\n")
    m = hash_map.open("hash", name)
    assert m.lookup("strasse") == "street"        # full case folding: ß -> ss
    assert m.lookup("STRASSE") == "street"
    assert m.lookup("σας") == "sigma"             # final sigma folds to σ
    ascii_only = hash_map.open("hash", name, utf8=False)
    assert ascii_only.lookup("STRAßE") is None    # ASCII-only folding keeps ß


def test_duplicate_warning_wording(tmp_path):
    name, warnings = make(tmp_path, "dup.test first\nDUP.test second\n")
    assert warnings == [f'{name}.db: duplicate entry: "dup.test"']
    assert hash_map.open("hash", name).lookup("dup.test") == "first"


def test_missing_table(tmp_path):
    with pytest.raises(MapError) as e:
        hash_map.open("hash", str(tmp_path / "none"))
    assert str(e.value) == f"open database {tmp_path}/none.db: No such file or directory"


def test_stale_table_warning(tmp_path):
    name, _ = make(tmp_path, "a b\n")
    old = time.time() - 3600
    os.utime(name + ".db", (old, old))
    os.utime(name, (old + 600, old + 600))       # edited after the build, 50 min ago
    warnings: list[str] = []
    hash_map.open("hash", name, warn=warnings.append)
    assert warnings == [f"database {name}.db is older than source file {name}"]
    os.utime(name, None)                          # just edited: Postfix stays quiet
    warnings.clear()
    hash_map.open("hash", name, warn=warnings.append)
    assert warnings == []


def test_rebuilt_table_is_picked_up(tmp_path):
    name, _ = make(tmp_path, "k old\n")
    m = hash_map.open("hash", name)
    assert m.lookup("k") == "old"
    hash_map.build_from_source(name, b"k new\nk2 v2\n")
    m.check_interval = 0
    assert m.lookup("k") == "new"
    assert m.lookup("k2") == "v2"


def test_empty_value_warns(tmp_path):
    name = str(tmp_path / "t")
    hash_map.build(name, [(b"empty", b""), (b"k", b"v")], fold_flag=True)
    warnings: list[str] = []
    m = hash_map.open("hash", name, warn=warnings.append)
    assert m.lookup("empty") == ""
    assert warnings == [
        f"table hash:{name}: key empty: empty string result is not allowed",
        f"table hash:{name} should return NO RESULT in case of NOT FOUND"]


def test_open_map_registry(tmp_path):
    from postier.maps import open_map
    name, _ = make(tmp_path, "a b\n")
    m = open_map(f"hash:{name}", cache=False)
    assert m.lookup("A") == "b"


def test_file_mode_for(tmp_path):
    path = str(tmp_path / "t.db")
    assert hash_map.file_mode_for(0o640, path) == 0o640
    assert hash_map.file_mode_for(0o600, path) == 0o600
    assert hash_map.file_mode_for(0o666, path) == 0o644
    assert hash_map.file_mode_for(0o600, path, keep_perm=False) == 0o644
    assert hash_map.file_mode_for(None, path) == 0o644
    with open(path, "w"):
        pass
    os.chmod(path, 0o604)
    assert hash_map.file_mode_for(0o600, path) == 0o604     # existing file keeps its mode


@pytest.mark.postfix
def test_postfix_berkeley_db_is_refused(tmp_path):
    name = str(tmp_path / "access")
    with open(name, "w") as f:
        f.write("a b\n")
    subprocess.run([shutil.which("postmap"), name], check=True)
    with pytest.raises(MapError) as e:
        hash_map.open("hash", name)
    msg = str(e.value)
    assert "Berkeley DB" in msg and f"postier map hash:{name}" in msg


WRITER = r"""
import sys
from postier.maps import hash as hash_map
name, rounds = sys.argv[1], int(sys.argv[2])
for r in range(rounds):
    text = "".join(f"key{i} round{r}\n" for i in range(2000)).encode()
    hash_map.build_from_source(name, text)
"""


def test_readers_never_see_a_partial_table(tmp_path, pure_env):
    """A writer rebuilds the table over and over while this process keeps
    re-mapping it: every lookup sees a complete table from one round."""
    import subprocess
    import sys
    name, _ = make(tmp_path, "".join(f"key{i} round-first\n" for i in range(2000)))
    m = hash_map.open("hash", name)
    m.check_interval = 3600          # re-mapped below, between batches of lookups
    src = os.path.join(os.path.dirname(hash_map.__file__), "..", "..")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, name, "30"],
                              env=dict(os.environ, PYTHONPATH=os.path.abspath(src)))
    seen = set()
    try:
        while writer.poll() is None:
            m.table.reopen_if_changed(0)
            values = {m.lookup(f"key{i}") for i in (0, 999, 1999)}
            assert len(values) == 1 and None not in values, values
            seen |= values
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    m.table.reopen_if_changed(0)
    assert m.lookup("key5") == "round29"
    assert len(seen) >= 2
