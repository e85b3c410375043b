"""`postier rules check|compile|explain` on small rule directories."""

from __future__ import annotations

import io
import os
import sys

import pytest

from postier.cli import main as cli_main
from postier.cli import rules_cmd

GOOD = r"""
header T_SUBJ   Subject =~ /viagra/i
score  T_SUBJ   3.5
describe T_SUBJ Subject mentions viagra
body   T_BODY   /cheap pills/
score  T_BODY   2
describe T_BODY Cheap pills
body   __PILLS  /pills/
meta   T_META   T_SUBJ && __PILLS
score  T_META   1
body   T_MULT   /pill/
tflags T_MULT   multiple maxhits=3
score  T_MULT   0.5
body   T_EVAL   eval:check_nonexistent_thing()
score  T_EVAL   1.2
header T_DNS    eval:check_rbl('zen', 'zen.example.')
tflags T_DNS    net
body   T_NEVER  /a\bb/
"""

BAD = """body OK /alpha/
bogus line here
body T_BAD /(unclosed/
"""

SPAM = b"Subject: buy Viagra\n\ncheap pills here pill pill pill pill\n"


@pytest.fixture
def setup(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "50_local.cf").write_text(GOOD)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "main.cf").write_text(f"spam_rules_directories = {rules}\n"
                                 f"spam_rules_cache_directory = {tmp_path}/cache\n"
                                 f"spam_kill_level = 6\nfinal_spam_destiny = reject\n")
    return tmp_path


def run(argv, capsys, stdin: bytes | None = None):
    if stdin is not None:
        old = sys.stdin
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        rc = rules_cmd.main(argv)
    finally:
        if stdin is not None:
            sys.stdin = old
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_good_rules(setup, capsys):
    rc, out, err = run(["check", "-c", str(setup / "etc"), "--no-cache"], capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"rule files: 1 in {setup}/rules"
    assert lines[1] == "rules: 8 defined, 8 scored (score set 0), required_score 5"
    assert lines[2] == ("regex rules: 5 scored: 4 exact (Hyperscan), 0 prefilter+confirm, "
                        "0 fallback (confirmed on every subject), 0 RE2 on the joined text, "
                        "1 never (Hyperscan), 0 per-message templates")
    assert lines[3] == "meta rules: 1 defined, 1 run"
    assert lines[4] == ("eval rules: 2 scored: 0 run, 1 network/Bayes (never run with score "
                        "set 0), 1 unsupported")
    assert lines[5].startswith("compiled in ")
    assert lines[6:] == ["eval functions postier does not implement (their rules never hit):",
                         "  check_nonexistent_thing: T_EVAL (1.2)",
                         "rules Hyperscan says never match (tried only on text holding a "
                         "NUL byte): T_NEVER"]


def test_check_reports_every_problem_and_fails(setup, capsys):
    (setup / "rules" / "60_bad.cf").write_text(BAD)
    bad = f"{setup}/rules/60_bad.cf"
    rc, out, err = run(["check", "-q", "--rules", str(setup / "rules"), "--no-cache",
                        "-c", str(setup / "etc")], capsys)
    assert rc == 1
    assert err.splitlines() == [
        f"postier rules: warning: {bad}, line 2: config: failed to parse line in {bad} "
        f"(line 2): bogus line here",
        f"postier rules: error: {bad}, line 3: rule T_BAD: cannot compile: error in regex "
        f"at offset 9: missing closing parenthesis",
        "postier rules: 1 warning(s), 1 rule(s) that cannot be compiled"]
    assert "  check_nonexistent_thing: T_EVAL (1.2)" in out.splitlines()


def test_check_without_rule_files(setup, capsys):
    empty = setup / "empty"
    empty.mkdir()
    rc, out, err = run(["check", "-c", str(setup / "etc"), "--rules", str(empty),
                        "--rules", str(setup / "nowhere")], capsys)
    assert rc == 1 and out == ""
    assert err.splitlines() == [
        f"postier rules: warning: rule directory {setup}/nowhere: No such file or directory",
        f"postier rules: fatal: spam_rules_directories: no SpamAssassin rule file (*.cf) in "
        f"{empty} {setup}/nowhere"]


def test_compile_writes_then_reads_the_cache(setup, capsys):
    etc = str(setup / "etc")
    rc, out, err = run(["compile", "-c", etc], capsys)
    assert rc == 0 and err == ""
    assert out.startswith("compiled 8 scored rules (8 defined) in ")
    assert out.endswith(f"s, cache written: {setup}/cache\n")
    assert any(n.endswith(".hsdb") for n in os.listdir(setup / "cache"))
    rc, out, err = run(["compile", "-c", etc], capsys)
    assert rc == 0 and out.endswith(f"s, from the cache: {setup}/cache\n")
    other = setup / "other"
    rc, out, err = run(["compile", "-c", etc, "--cache", str(other)], capsys)
    assert rc == 0 and out.endswith(f"s, cache written: {other}\n")


def test_compile_needs_a_usable_cache_directory(setup, capsys):
    (setup / "etc" / "main.cf").write_text(f"spam_rules_directories = {setup}/rules\n"
                                           "spam_rules_cache_directory =\n")
    rc, out, err = run(["compile", "-c", str(setup / "etc")], capsys)
    assert rc == 1 and out == ""
    assert err == ("postier rules: fatal: no cache directory: set spam_rules_cache_directory "
                   "or give --cache DIR\n")
    (setup / "file").write_text("x")
    rc, out, err = run(["compile", "-c", str(setup / "etc"), "--cache",
                        str(setup / "file" / "sub")], capsys)
    assert rc == 1 and err == f"postier rules: fatal: cache directory {setup}/file/sub: Not a directory\n"


def test_explain_lists_hits_scores_and_verdict(setup, capsys, tmp_path):
    msg = tmp_path / "msg"
    msg.write_bytes(SPAM)
    rc, out, err = run(["explain", "-c", str(setup / "etc"), "--no-cache", str(msg)], capsys)
    assert rc == 0 and err == ""
    assert out.splitlines() == [
        "rule      score  hits  description",
        "T_SUBJ      3.5        Subject mentions viagra",
        "T_BODY        2        Cheap pills",
        "T_META        1",
        "T_MULT      0.5    x3",
        "score 8, required 5: spam",           # T_MULT scores each of its 3 hits
        "postier: X-Spam-* headers (spam_tag_level 2); X-Spam-Flag: YES and the subject "
        "tag (spam_tag2_level 6.31); final_spam_destiny = reject (spam_kill_level 6)"]
    rc, out, err = run(["explain", "-v", "-c", str(setup / "etc"), "--no-cache", "-"], capsys,
                       stdin=SPAM)
    assert rc == 0
    assert "other rule values (sub-rules, unscored):\n  __PILLS = 1\n" in out


def test_explain_ham(setup, capsys):
    rc, out, err = run(["explain", "-c", str(setup / "etc"), "--no-cache", "-"], capsys,
                       stdin=b"Subject: hello\n\nnothing to see\n")
    assert rc == 0
    assert out.splitlines() == ["no scored rule hit", "score 0, required 5: not spam",
                                "postier: passes untouched"]


def test_explain_bad_input(setup, capsys, tmp_path):
    etc = str(setup / "etc")
    rc, out, err = run(["explain", "-c", etc, str(tmp_path / "nope")], capsys)
    assert rc == 1 and out == ""
    assert err == f"postier rules: fatal: open {tmp_path}/nope: No such file or directory\n"
    rc, out, err = run(["explain", "-c", etc, "-"], capsys, stdin=b"")
    assert rc == 1 and err == "postier rules: fatal: standard input: empty message\n"
    rc, out, err = run(["explain", "-c", etc, str(tmp_path)], capsys)
    assert rc == 1 and err == f"postier rules: fatal: open {tmp_path}: Is a directory\n"
    junk = bytes(range(256)) * 64 + b"\x00\xff\r\r\n\n--\x00"
    rc, out, err = run(["explain", "-c", etc, "--no-cache", "-"], capsys, stdin=junk)
    assert rc == 0 and err == ""
    assert out.splitlines()[-2] == "score 0, required 5: not spam"


def test_help_on_every_command(capsys):
    for argv in (["--help"], ["check", "--help"], ["compile", "--help"], ["explain", "--help"]):
        with pytest.raises(SystemExit) as e:
            rules_cmd.main(argv)
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: postier rules")
    assert cli_main.COMMANDS["rules"][0] == "postier.cli.rules_cmd"
    with pytest.raises(SystemExit) as e:
        rules_cmd.main([])
    assert e.value.code == 2
