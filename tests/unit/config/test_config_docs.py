"""docs/parameters.md is generated from the registry and must be up to date."""

from __future__ import annotations

import importlib.util
import os
import re

from postier.config import PARAMS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DOC = os.path.join(ROOT, "docs", "parameters.md")


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "gen_params_doc", os.path.join(ROOT, "tools", "gen_params_doc.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def documented_names() -> list[str]:
    text = open(DOC, encoding="utf-8").read()
    return re.findall(r"^\| `([A-Za-z0-9_]+)` \|", text, re.M)


def test_parameters_md_is_up_to_date():
    current = open(DOC, encoding="utf-8").read()
    assert current == load_tool().render(), (
        "docs/parameters.md is out of date: run .venv/bin/python tools/gen_params_doc.py")


def test_every_registered_parameter_is_documented_with_a_doc_line():
    assert sorted(documented_names()) == sorted(PARAMS)
    for name, p in PARAMS.items():
        assert p.doc.strip(), name


def test_every_documented_parameter_is_registered():
    assert [n for n in documented_names() if n not in PARAMS] == []


def test_check_mode_detects_stale_docs(tmp_path, monkeypatch, capsys):
    tool = load_tool()
    stale = tmp_path / "parameters.md"
    stale.write_text("stale\n")
    monkeypatch.setattr(tool, "DOC_PATH", str(stale))
    assert tool.main(["--check"]) == 1
    assert tool.main([]) == 0
    assert tool.main(["--check"]) == 0
