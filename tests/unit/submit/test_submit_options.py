"""sendmail's command line: option parsing, argv[0] dispatch, diagnostics, exit codes.

The expected stderr and exit status of the error cases were recorded from
Postfix 3.7.11's /usr/sbin/sendmail (Debian 12), run as root with
MAIL_CONFIG pointing at a private main.cf; Postfix's sendmail exits 75
(EX_TEMPFAIL) for every fatal error, whatever status its code names.
tests/integration/submit/test_submit_postfix_oracle.py replays them
against the live Postfix when it is installed.
"""

from __future__ import annotations

import io
import os
import sys

import pytest
from _submit_helpers import make_config

from postier.cli import sendmail as sm


@pytest.fixture
def config(tmp_path, monkeypatch):
    etc = make_config(str(tmp_path))
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    return etc


def run(argv, stdin=b"", monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return sm.main(argv)


# recorded from Postfix 3.7.11 (see the module docstring)
POSTFIX_ERRORS = [
    (["-Z"], ["sendmail: invalid option -- 'Z'", "sendmail: invalid option -- 'Z'",
              "sendmail: fatal: usage: sendmail [options]"]),
    (["-n", "x"], ["sendmail: fatal: -n option not supported"]),
    (["-bx"], ["sendmail: fatal: unsupported: -bx"]),
    (["-B", "foo", "a"], ["sendmail: fatal: -B option needs 8BITMIME or 7BIT"]),
    (["-qSx"], ["sendmail: fatal: -qS is not implemented"]),
    (["-qR"], ["sendmail: fatal: specify: -qRsitename"]),
    (["-qI"], ["sendmail: fatal: specify: -qIqueueid"]),
    (["-t", "-bp"], ["sendmail: fatal: -t can be used only in delivery mode"]),
    (["-bv", "-t", "a"], ["sendmail: fatal: -t option cannot be used with -bv"]),
    (["-bp", "a"], ["sendmail: fatal: display queue mode requires no recipient"]),
    (["-bs", "a"], ["sendmail: fatal: stand-alone mode requires no recipient"]),
    (["-bi", "a"], ["sendmail: fatal: alias initialization mode requires no recipient"]),
    (["-q", "a"], ["sendmail: fatal: flush queue mode requires no recipient"]),
    (["-qIx", "a"], ["sendmail: fatal: flush queue_id requires no recipient"]),
    (["-bd", "a"], ["sendmail: fatal: daemon mode requires no recipient"]),
    (["-f"], ["sendmail: option requires an argument -- 'f'",
              "sendmail: option requires an argument -- 'f'",
              "sendmail: fatal: usage: sendmail [options]"]),
    (["-X", "foo"], ["sendmail: fatal: unsupported: -Xf"]),
    (["-oA"], ["sendmail: fatal: -oA requires pathname"]),
]


@pytest.mark.parametrize("args,expected", POSTFIX_ERRORS,
                         ids=[" ".join(a) for a, _ in POSTFIX_ERRORS])
def test_postfix_error_messages_and_exit_75(config, capsys, monkeypatch, args, expected):
    rc = run(["/usr/sbin/sendmail", *args], b"x\n", monkeypatch)
    err = capsys.readouterr().err.splitlines()
    assert err == expected
    assert rc == 75


def test_no_recipients_messages(config, capsys, monkeypatch):
    me = sm.Sendmail(["sendmail"])
    from postier.pickup.users import login_name
    name = login_name(me.uid)
    assert run(["sendmail"], b"Subject: x\n\nb\n", monkeypatch) == 75
    assert capsys.readouterr().err == (
        f"sendmail: fatal: {name}({me.uid}): Recipient addresses must be specified on the "
        "command line or via the -t option\n")
    assert run(["sendmail", "-t"], b"Subject: x\n\nb\n", monkeypatch) == 75
    assert capsys.readouterr().err == (
        f"sendmail: fatal: {name}({me.uid}): No recipient addresses found in message header\n")


def test_bad_dsn_values_are_warnings(config, capsys, monkeypatch):
    # Postfix: the warnings, then the mode runs (here -bq is refused afterwards)
    assert run(["sendmail", "-N", "bogus", "-R", "bogus", "-bq"], b"", monkeypatch) == 75
    assert capsys.readouterr().err.splitlines() == [
        'sendmail: warning: unknown DSN NOTIFY command value "bogus" in "bogus"',
        "sendmail: warning: bad -N option value -- ignored",
        "sendmail: warning: bad -R option value -- ignored",
        "sendmail: fatal: unsupported: -bq",
    ]


def test_ignored_modes_exit_0(config, monkeypatch, capsys):
    assert run(["sendmail", "-q5m"], b"", monkeypatch) == 0      # -qTIME outside daemon mode
    assert run(["sendmail", "-bh"], b"", monkeypatch) == 0
    assert run(["sendmail", "-bH"], b"", monkeypatch) == 0
    assert capsys.readouterr().err == ""


def test_missing_queue_directory(tmp_path, monkeypatch, capsys):
    etc = make_config(str(tmp_path))
    os.rmdir(os.path.join(str(tmp_path), "queue", "incoming"))
    os.rmdir(os.path.join(str(tmp_path), "queue"))
    monkeypatch.setenv("POSTIER_CONFIG_DIR", etc)
    assert run(["sendmail", "a"], b"x\n", monkeypatch) == 75
    assert capsys.readouterr().err == (
        f"sendmail: fatal: chdir {tmp_path}/queue: No such file or directory\n")


def test_dash_C_selects_the_configuration(tmp_path, monkeypatch, capsys):
    etc = make_config(str(tmp_path))
    monkeypatch.setenv("POSTIER_CONFIG_DIR", "/nonexistent")
    # -C DIR or -C DIR/main.cf; the bad option is still reported by both passes
    for arg in (etc, os.path.join(etc, "main.cf")):
        assert run(["sendmail", "-C", arg, "-q", "x"], b"", monkeypatch) == 75
        assert capsys.readouterr().err == (
            "sendmail: fatal: flush queue mode requires no recipient\n")
    assert run(["sendmail", "-q", "x"], b"", monkeypatch) == 75
    assert "open /nonexistent/main.cf" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# parse_args


def parse(*args, prog="sendmail"):
    return sm.parse_args([prog, *args], prog)


def test_argv0_dispatch():
    assert sm.Options("mailq").mode == sm.MAILQ
    assert sm.Options("newaliases").mode == sm.NEWALIAS
    assert sm.Options("sendmail").mode == sm.ENQUEUE
    assert sm.Options("postier-sendmail").mode == sm.ENQUEUE
    # options override the name, as in Postfix ("newaliases -bp" lists the queue)
    assert parse("-bp", prog="newaliases").mode == sm.MAILQ
    assert parse("-bm", prog="mailq").mode == sm.ENQUEUE


def test_getopt_stops_at_first_operand():
    o = parse("-ti", "-fa@b.test", "rcpt@x.test", "-f", "other")
    assert o.extract and not o.aeof and o.sender == "a@b.test"
    assert o.args == ["rcpt@x.test", "-f", "other"]
    o = parse("-oi", "--", "-weird@x.test")
    assert o.args == ["-weird@x.test"] and not o.aeof


def test_option_values():
    o = parse("-F", "Joe User", "-r", "r@x.test", "-N", "success, Delay", "-R", "HDRS",
              "-V", "env-1", "-B", "8BITMIME", "-G", "-v", "-v", "a")
    assert o.full_name == "Joe User" and o.sender == "r@x.test"
    assert o.notify == "SUCCESS,DELAY" and o.ret == "HDRS" and o.envid == "env-1"
    assert o.encoding == "8BITMIME" and o.rewrite_context == "remote" and o.verbose == 2
    assert parse("-N", "never").notify == "NEVER"
    assert parse("-N", "never,success").notify == ""          # NEVER is exclusive
    assert parse("-oAhash:/etc/other").alias_db == "hash:/etc/other"
    assert parse("-I").mode == sm.NEWALIAS
    assert parse("-bi").mode == sm.NEWALIAS
    assert parse("-bs").mode == sm.USER
    assert parse("-bd").mode == sm.DAEMON and parse("-bl").mode == sm.DAEMON
    assert parse("-q").mode == sm.FLUSHQ
    assert parse("-qRexample.test").site_to_flush == "example.test"
    assert parse("-qIABC").id_to_flush == "ABC"
    assert parse("-q30m").qtime == "30m"
    assert parse("-bv", "a").verify


def test_ignored_options_are_accepted():
    o = parse("-Am", "-Ac", "-o7", "-o8", "-om", "-oQ/x", "-Oa=b", "-L", "tag", "-U", "-m",
              "-c", "-x", "-h", "5", "-e", "q", "-p", "x", "-X" "V", "a@x.test")
    assert o.args == ["a@x.test"] and o.mode == sm.ENQUEUE and o.aeof


def test_dash_V_two_characters_is_the_old_verp_option(capsys):
    o = parse("-V", "xy", "a")
    assert o.verp and o.args == ["xy", "a"]
    assert "option -V is deprecated with Postfix 2.3; specify -XV instead" in capsys.readouterr().err


def test_bad_envid_ignored(capsys):
    assert parse("-V", "x" * 101).envid == ""
    assert parse("-V", "a\x01b").envid == ""
    err = capsys.readouterr().err
    assert "too long -V option value -- ignored" in err
    assert "bad syntax in -V option value -- ignored" in err


def test_verify_conflicts():
    with pytest.raises(sm.Fatal, match="-N option cannot be used with -bv"):
        parse("-bv", "-N", "success", "a")
    with pytest.raises(sm.Fatal, match="-v option cannot be used with -bv"):
        parse("-bv", "-v", "a")
    with pytest.raises(sm.Fatal, match="-qR can be used only in delivery mode"):
        parse("-bp", "-qRx")
