"""inline: tables: the fixture recorded from real Postfix 3.7.11, plus
syntax corner cases checked against real postmap when installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from postier.errors import MapError
from postier.maps import clear_cache, open_map

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "compat", "lookup_tables.json")
with open(FIXTURE, encoding="utf-8") as _f:
    DATA = json.load(_f)
CASES = [(t, i) for t in DATA["tables"] if t["table_type"] in ("inline", "static")
         for i in range(len(t["queries"]))]


def replay(spec_text: str, ttype: str, key: str, fold: bool) -> tuple[str | None, str]:
    clear_cache()
    warns: list[str] = []
    fatal = ""
    try:
        result = open_map(f"{ttype}:{spec_text}", fold=fold, warn=warns.append).lookup(key)
    except MapError as e:
        result, fatal = None, f"postmap: fatal: {e}\n"
    return result, "".join(f"postmap: warning: {w}\n" for w in warns) + fatal


@pytest.mark.parametrize("table,index", CASES, ids=[f"{t['name']}-{i}" for t, i in CASES])
def test_fixture_query(table, index):
    q = table["queries"][index]
    result, err = replay(table["table_text"], table["table_type"], q["key"],
                         "-f" not in q["postmap_args"])
    assert result == q["result"]
    assert err.replace(table["table_text"], "TABLE") == q["stderr"]


def test_missing_equals_is_fatal_with_postfix_text():
    with pytest.raises(MapError) as e:
        open_map("inline:{ a=b, c = d }", warn=lambda w: None, cache=False)
    assert str(e.value) == ('missing \'=\' after attribute name: "inline:{ a=b, c = d }"; '
                            'need "inline:{name=value...}"')


SPECS = ["{a=1, a=2}", "{ÄB=x}", "{}", "{ , }", "{a=b", "a=b", "{a={b c}}", "{{a=b} x}",
         "{{a=b}}", "{a=b}}", "{ {a=b}, {c=d}junk }", "{ k = v , x=y }"]
KEYS = ["a", "äb", "k"]


@pytest.mark.postfix
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
@pytest.mark.parametrize("spec", SPECS)
def test_like_postmap(spec):
    for key in KEYS:
        for fold in (True, False):
            args = ["postmap"] + ([] if fold else ["-f"]) + ["-q", key, f"inline:{spec}"]
            p = subprocess.run(args, capture_output=True, text=True)
            want = p.stdout[:-1] if p.returncode == 0 else None
            got, err = replay(spec, "inline", key, fold)
            assert got == want, (spec, key, fold)
            assert err == p.stderr, (spec, key, fold)
