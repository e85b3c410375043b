"""regexp:/pcre: tables replayed against the fixture recorded from real
Postfix 3.7.11 (tests/compat/lookup_tables.json), in-process through
open_map(), with the Hyperscan engine and with the plain RE2/re engine,
with and without the reference libraries (glibc regex, libpcre2)."""

from __future__ import annotations

import json
import os

import pytest

from postier.errors import MapError
from postier.maps import clear_cache, open_map, patterns, reflib

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "compat", "lookup_tables.json")
with open(FIXTURE, encoding="utf-8") as _f:
    DATA = json.load(_f)

TYPES = ("regexp", "pcre")
CASES = [(t, i) for t in DATA["tables"] if t["table_type"] in TYPES
         for i in range(len(t["queries"]))]


def replay(table: dict, q: dict, tmp_path) -> tuple[str | None, str]:
    """Run one fixture query in-process: (result, stderr as postmap prints it)."""
    clear_cache()
    warns: list[str] = []
    fold = "-f" not in q["postmap_args"]
    if table["table_type"] in ("inline", "static"):
        name = table["table_text"]
    else:
        name = str(tmp_path / table["name"])
        with open(name, "w", encoding="utf-8") as f:
            f.write(table["table_text"])
    spec = f"{table['table_type']}:{name}"
    fatal = ""
    try:
        result = open_map(spec, fold=fold, warn=warns.append).lookup(q["key"])
    except MapError as e:
        result, fatal = None, f"postmap: fatal: {e}\n"
    err = "".join(f"postmap: warning: {w}\n" for w in warns) + fatal
    return result, err.replace(name, "TABLE")


@pytest.fixture(params=["hyperscan", "re2"])
def engine(request, monkeypatch):
    monkeypatch.setattr(patterns, "DEFAULT_ENGINE", request.param)
    return request.param


@pytest.fixture(params=["reflib", "noreflib"])
def reference(request, monkeypatch):
    if request.param == "noreflib":
        monkeypatch.setenv("POSTIER_NO_REFLIB", "1")
    else:
        monkeypatch.delenv("POSTIER_NO_REFLIB", raising=False)
    return request.param


@pytest.mark.parametrize("table,index", CASES,
                         ids=[f"{t['name']}-{i}" for t, i in CASES])
def test_fixture_query(table, index, engine, reference, tmp_path):
    q = table["queries"][index]
    result, err = replay(table, q, tmp_path)
    assert result == q["result"], (table["name"], q["key"])
    assert err == q["stderr"], (table["name"], q["key"])


def test_fixture_tables_use_hyperscan_database(tmp_path, monkeypatch):
    """The fixture tables really go through one Hyperscan database."""
    monkeypatch.setattr(patterns, "DEFAULT_ENGINE", "auto")
    for table in DATA["tables"]:
        if table["table_type"] not in TYPES:
            continue
        path = tmp_path / table["name"]
        path.write_text(table["table_text"])
        clear_cache()
        m = open_map(f"{table['table_type']}:{path}", warn=lambda w: None, cache=False)
        if len(m._set.patterns) >= patterns.SMALL_SET:
            assert m.engine == "hyperscan", table["name"]
            assert m._set._db is not None
        else:
            assert m.engine == "re2", table["name"]


def test_reference_libraries_present():
    """This platform (Debian, glibc, libpcre2) has the reference libraries;
    the noreflib runs above prove the fallbacks."""
    assert reflib.posix_available()
    assert reflib.pcre2_available()
