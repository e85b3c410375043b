"""postier.maps.texthash: the source file as an in-memory table (Postfix
dict_thash semantics), with a differential check against postmap -q."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from postier.errors import MapError
from postier.maps import texthash

TEXT = (b"dup first\nDUP second\nnovalue\n\"q k\" v\n\"unbal x\nMixed.Case V\n"
        b"key: colon\nlong value\n  continued\n") + b"\xff bad\n  cont\n"


def write(tmp_path, data: bytes) -> str:
    path = str(tmp_path / "t")
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_lookup_and_warnings(tmp_path):
    path = write(tmp_path, TEXT)
    warnings: list[str] = []
    m = texthash.open("texthash", path, warn=warnings.append)
    assert m.type == "texthash" and m.name == path
    assert m.lookup("dup") == "first"
    assert m.lookup("DUP") == "first"
    assert m.lookup("mixed.case") == "V"
    assert m.lookup('"Q K"') == "v"
    assert m.lookup("q k") is None
    assert m.lookup("long") == "value  continued"
    assert m.lookup("key:") == "colon"
    assert warnings == [
        f'{path}, line 2: duplicate entry: "DUP"',
        f"{path}, line 3: expected format: key whitespace value -- ignoring this line",
        f"{path}, line 5: unbalanced '\"' in '\"unbal x' -- ignoring this line",
        f'{path}, line 7: record is in "key: value" format; is this an alias file?',
        f'{path}, line 10: non-UTF-8 input "? bad  cont" -- ignoring this line']
    assert list(m.items())[:3] == [("dup", "first"), ('"q k"', "v"), ("mixed.case", "V")]
    assert len(m) == 5


def test_no_fold(tmp_path):
    path = write(tmp_path, TEXT)
    warnings: list[str] = []
    m = texthash.open("texthash", path, fold=False, warn=warnings.append)
    assert m.lookup("Mixed.Case") == "V"
    assert m.lookup("mixed.case") is None
    assert m.lookup("DUP") == "second"                 # no longer a duplicate
    assert not any("duplicate" in w for w in warnings)


@pytest.mark.parametrize("dup,want", [("replace", "second"), ("ignore", "first")])
def test_duplicate_policies(tmp_path, dup, want):
    warnings: list[str] = []
    m = texthash.open("texthash", write(tmp_path, b"a first\nA second\n"), dup=dup,
                      warn=warnings.append)
    assert m.lookup("a") == want
    assert warnings == []


def test_missing_file(tmp_path):
    with pytest.raises(MapError) as e:
        texthash.open("texthash", str(tmp_path / "none"))
    assert str(e.value) == f"open database {tmp_path}/none: No such file or directory"


def test_reload_on_change(tmp_path):
    path = write(tmp_path, b"k one\n")
    m = texthash.open("texthash", path)
    assert m.lookup("k") == "one"
    write(tmp_path, b"k two, longer\n")
    m.check_interval = 0
    assert m.lookup("k") == "two, longer"


@pytest.mark.postfix
@pytest.mark.parametrize("flags", [[], ["-f"]])
def test_same_answers_as_postmap(tmp_path, flags):
    path = write(tmp_path, TEXT)
    past = time.time() - 3600                  # Postfix re-reads files younger than 2 s
    os.utime(path, (past, past))
    postmap = shutil.which("postmap")
    m = texthash.open("texthash", path, fold=not flags, warn=lambda _: None)
    for key in ["dup", "DUP", "Mixed.Case", "mixed.case", '"q k"', "q k", "long", "key:",
                "novalue", "nope", ""]:
        p = subprocess.run([postmap, *flags, "-q", key, f"texthash:{path}"],
                           capture_output=True, text=True)
        want = p.stdout[:-1] if p.returncode == 0 else None
        assert m.lookup(key) == want, key
