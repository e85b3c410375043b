"""A meta rule nested ~250 levels deep made `postier rules check` (and every
scanner start) end in a MemoryError traceback from Python's parser, and one
~400 levels deep in a RecursionError in meta.parse.  Such a meta is now an
invalid expression: a warning with file and line (`rules check` exits 1),
the rule left out, the rest of the rule set loaded.  Metas up to meta.MAX_DEPTH levels (above
SpamAssassin's deepest, 121) still run, natively and in the pure twin."""

from __future__ import annotations

import pytest

from postier.cli import rules_cmd
from postier.content.spam import meta as M


def _nested(levels: int) -> str:
    e = "__A"
    for i in range(levels - 1):
        e = f"(__B || {e})" if i % 2 else f"(__B && {e})"
    return e


@pytest.mark.parametrize("expr", [_nested(M.MAX_DEPTH + 1), _nested(250),
                                  "(" * 5000 + "__A" + ")" * 5000,
                                  " + ".join(["__A"] * 400)])
def test_too_deep_is_a_meta_error(expr):
    with pytest.raises(M.MetaError, match="nested too deeply"):
        M.parse(expr)


def test_deepest_allowed_runs_in_both_twins(impl):
    tree = M.parse(_nested(M.MAX_DEPTH))
    assert M.depth(tree) == M.MAX_DEPTH
    prog = impl("spammeta").MetaProgram(*M.program([("DEEP", tree)]))
    for vals in ({"__A": 1, "__B": 1}, {"__A": 1}, {}):
        v = dict(vals)
        prog.run(v)
        assert v.get("DEEP", 0) == (M.evaluate(tree, dict(vals)) and 1)


def test_rules_check_warns_with_file_and_line(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "local.cf").write_text(
        "body __A /viagra/\n"
        f"meta DEEP {_nested(250)}\nscore DEEP 1\n"
        "body OK /cheap pills/\nscore OK 1\n")
    rc = rules_cmd.main(["check", "--rules", str(rules), "--no-cache"])
    out, err = capsys.readouterr()
    assert rc == 1                  # a lint finding, as for any invalid rule
    assert f"{rules}/local.cf, line 2: config: invalid expression for rule DEEP" in err
    assert "nested too deeply (more than 160 levels)" in err
    assert "Traceback" not in err + out
    assert "meta rules: 0 defined" in out and "1 warning(s)" in err


def test_refused_meta_warning_shows_only_the_start_of_a_long_expression(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    expr = _nested(250)
    (rules / "local.cf").write_text(f"body __A /viagra/\nmeta DEEP {expr}\nscore DEEP 1\n")
    rc = rules_cmd.main(["check", "--rules", str(rules), "--no-cache"])
    _out, err = capsys.readouterr()
    assert rc == 1
    line = next(ln for ln in err.splitlines() if "invalid expression for rule DEEP" in ln)
    assert f'"{expr[:200]}... ({len(expr)} characters)"' in line
    assert expr not in err
    assert len(line) < 600
