"""cidr: tables: the fixture recorded from real Postfix 3.7.11, plus corner
cases checked against real postmap when it is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from postier.errors import MapError
from postier.maps import cidr, clear_cache, open_map

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "compat", "lookup_tables.json")
with open(FIXTURE, encoding="utf-8") as _f:
    DATA = json.load(_f)
CASES = [(t, i) for t in DATA["tables"] if t["table_type"] == "cidr"
         for i in range(len(t["queries"]))]


@pytest.mark.parametrize("table,index", CASES, ids=[f"{t['name']}-{i}" for t, i in CASES])
def test_fixture_query(table, index, tmp_path):
    q = table["queries"][index]
    clear_cache()
    path = tmp_path / table["name"]
    path.write_text(table["table_text"])
    warns: list[str] = []
    result = open_map(f"cidr:{path}", warn=warns.append).lookup(q["key"])
    err = "".join(f"postmap: warning: {w}\n" for w in warns).replace(str(path), "TABLE")
    assert result == q["result"]
    assert err == q["stderr"]


def test_first_match_not_longest():
    t = cidr.CidrTable("T", lambda w: None, data=b"10.0.0.0/8 wide\n10.1.0.0/16 narrow\n")
    assert t.lookup("10.1.2.3") == "wide"


def test_unreadable_file_names_it(tmp_path):
    with pytest.raises(MapError, match="open .*nonexistent: No such file"):
        open_map(f"cidr:{tmp_path}/nonexistent", warn=lambda w: None, cache=False)


def test_keys_that_are_not_addresses_never_match():
    t = cidr.CidrTable("T", lambda w: None, data=b"::/0 v6\n0.0.0.0/0 v4\n")
    for key in ("", "foo", "1.2.3", "[::1]", "::1%lo", "01.2.3.4"):
        assert t.lookup(key) is None, key
    assert t.lookup("::") == "v6"
    assert t.lookup("0.0.0.0") == "v4"


ODD = (b"endif x\nendif\nif 1.2.3.0/24 junk\n1.2.3.4 a\nif 1.2.3.4 x\n0.0.0.0/256 any\n"
       b"1.2.3.4/ b\n[1.2.3.0/24] c\n[1.2.3.0]/24 d\nIF 9.9.9.9\nENDIF\n::ffff:1.2.3.4 e\n"
       b"[::1 f\n5.5.5.0/024 g\n  leading\n1.1.1.1 x\n# c\n  continued\n")
ODD_KEYS = ["1.2.3.4", "5.5.5.5", "::ffff:1.2.3.4", "8.8.8.8", "1.1.1.1", "9.9.9.9"]


def postmap_query(spec: str, key: str) -> tuple[str | None, str]:
    p = subprocess.run(["postmap", "-q", key, spec], capture_output=True)
    out = p.stdout.decode("utf-8", "surrogateescape")
    return (out[:-1] if p.returncode == 0 else None), p.stderr.decode("utf-8", "surrogateescape")


@pytest.mark.postfix
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
def test_odd_lines_like_postmap(tmp_path):
    path = tmp_path / "odd.cidr"
    path.write_bytes(ODD)
    old = time.time() - 3600
    os.utime(path, (old, old))
    for key in ODD_KEYS:
        warns: list[str] = []
        got = cidr.CidrTable(str(path), warns.append).lookup(key)
        want, err = postmap_query(f"cidr:{path}", key)
        assert got == want, key
        assert "".join(f"postmap: warning: {w}\n" for w in warns) == err
