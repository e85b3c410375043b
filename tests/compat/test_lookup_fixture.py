"""Every query of lookup_tables.json (recorded from real Postfix 3.7.11
postmap) replayed through the `postier map` command, as verify.py does:
one subprocess per query, `hash:` tables built first with
`postier map [-f] hash:FILE`, table files back-dated by one hour.

Compared: the result (stdout without its newline, or None when the exit
status is not 0), the exit status, and stderr (table path replaced by
TABLE).  For `hash:` tables the build's exit status and stderr are compared
too.  Runs with the native modules (POSTIER_PURE=0) and the pure twins
(POSTIER_PURE=1).  A failure names the table, the postmap arguments and
the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, "src")

with open(os.path.join(HERE, "lookup_tables.json"), encoding="utf-8") as _f:
    FIXTURE = json.load(_f)

INDEXED_TYPES = ("hash",)
NAME_IS_TEXT_TYPES = ("inline", "static")

CASES = [(t, i) for t in FIXTURE["tables"] for i in range(len(t["queries"]))]


def postier_map(args: list[str], pure: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, POSTIER_PURE=pure, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "postier.cli.main", "map", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


class Tables:
    """Table files written (and hash tables built) once per table and mode."""

    def __init__(self, root) -> None:
        self.root = root
        self.built: dict[tuple[str, str], tuple[str, subprocess.CompletedProcess | None]] = {}

    def get(self, table: dict, pure: str) -> tuple[str, subprocess.CompletedProcess | None]:
        key = (table["name"], pure)
        if key in self.built:
            return self.built[key]
        ttype = table["table_type"]
        build = None
        if ttype in NAME_IS_TEXT_TYPES:
            name = table["table_text"]
        else:
            d = self.root / f"{table['name']}-{'pure' if pure == '1' else 'native'}"
            d.mkdir()
            name = str(d / table["name"])
            with open(name, "w", encoding="utf-8", newline="") as f:
                f.write(table["table_text"])
            past = time.time() - 3600
            os.utime(name, (past, past))
            if ttype in INDEXED_TYPES:
                build = postier_map(table.get("build_flags", []) + [f"{ttype}:{name}"], pure)
        self.built[key] = (name, build)
        return self.built[key]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return Tables(tmp_path_factory.mktemp("lookup"))


def normalize(err: str, table: dict, name: str) -> str:
    if table["table_type"] in NAME_IS_TEXT_TYPES:
        return err.replace(table["table_text"], "TABLE")
    return err.replace(name, "TABLE")


@pytest.mark.parametrize("pure", ["0", "1"], ids=["native", "pure"])
@pytest.mark.parametrize(
    "table,index", CASES,
    ids=[f"{t['name']}-{i}-{t['queries'][i]['key']!r}" for t, i in CASES])
def test_query_matches_postmap(tables, table, index, pure):
    q = table["queries"][index]
    name, build = tables.get(table, pure)
    where = (f"table {table['name']} ({table['table_type']}), "
             f"postmap {' '.join(q['postmap_args'])} {q['key']!r}")
    if build is not None:
        want = table["build"]
        assert (build.returncode, normalize(build.stderr, table, name)) == \
            (want["exit_code"], want["stderr"]), f"building {where}"
    args = q["postmap_args"][:-1] + ["-q", q["key"], f"{table['table_type']}:{name}"]
    p = postier_map(args, pure)
    result = None
    if p.returncode == 0:
        result = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
    got = {"result": result, "exit_code": p.returncode,
           "stderr": normalize(p.stderr, table, name)}
    want = {k: q[k] for k in ("result", "exit_code", "stderr")}
    assert got == want, where


def test_fixture_provenance():
    assert "Postfix 3.7.11" in FIXTURE["provenance"]
    assert FIXTURE["oracle"]["mail_version"] == "3.7.11"
    assert len(CASES) == 333
