"""`postier queue` verbs: postsuper's messages and counts, errors, cat glue.

The wording of every message was taken from real Postfix 3.7.11 (postsuper,
postqueue, postcat run on a private instance); tests/integration/queue/
test_queue_postfix_oracle.py re-runs the postsuper cases against the real
postsuper on the same queue.
"""

from __future__ import annotations

import io
import os
import sys
import time
import types

import pytest
from _queue_spec import build_postier, run_cli

from postier.queue.file import read_dsn_log

A, B, C, D = "6B0A6C7900000001", "6B0A6C7900000002", "6B0A6C7900000003", "6B0A6C7900000004"


def _spec(**extra):
    msgs = [
        {"queue": "deferred", "id": A, "arrival": 1795844942, "size": 300,
         "sender": "alice@example.org", "recipients": ["bob@remote.test"],
         "defer": [["bob@remote.test", "deferred transport"]]},
        {"queue": "incoming", "id": B, "arrival": 1795844943, "size": 400,
         "sender": "", "recipients": ["x@remote.test"]},
        {"queue": "hold", "id": C, "arrival": 1795844944, "size": 500,
         "sender": "eve@example.org", "recipients": ["y@remote.test"]},
        {"queue": "active", "id": D, "arrival": 1795844945, "size": 600,
         "sender": "eve@example.org", "recipients": ["z@remote.test"]},
    ]
    spec = {"command": ["queue", "list"], "messages": msgs}
    spec.update(extra)
    return spec


@pytest.fixture
def queue(tmp_path):
    confdir, qdir = build_postier(_spec(), str(tmp_path))
    return confdir, qdir


def where(qdir: str) -> dict[str, str]:
    out = {}
    for q in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt"):
        for name in os.listdir(os.path.join(qdir, q)):
            out[name] = q
    return out


def stdin(monkeypatch, text: str) -> None:
    fake = types.SimpleNamespace(buffer=io.BytesIO(text.encode()))
    monkeypatch.setattr(sys, "stdin", fake)


# -- delete -------------------------------------------------------------------

def test_delete_one_removes_message_and_logs(queue, monkeypatch):
    confdir, qdir = queue
    assert os.path.exists(os.path.join(qdir, "defer", A))
    rc, out, err = run_cli(["queue", "delete", "-c", confdir, A], monkeypatch)
    assert (rc, out) == (0, "")
    assert err == f"postsuper: {A}: removed\npostsuper: Deleted: 1 message\n"
    assert A not in where(qdir)
    assert not os.path.exists(os.path.join(qdir, "defer", A))


def test_delete_unknown_and_invalid_ids(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "NOSUCH"], monkeypatch)
    assert (rc, err) == (0, "postsuper: Deleted: 0 messages\n")
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "bad/x"], monkeypatch)
    assert err == "postsuper: warning: invalid mail queue id: bad/x\npostsuper: Deleted: 0 messages\n"
    assert len(where(qdir)) == 4


def test_delete_from_stdin(queue, monkeypatch):
    confdir, qdir = queue
    stdin(monkeypatch, f"{A}\nNOSUCH\nbad/x\n{C}\n")
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "-"], monkeypatch)
    assert rc == 0
    assert err == (f"postsuper: {A}: removed\n"
                   "postsuper: warning: invalid mail queue id: bad/x\n"
                   f"postsuper: {C}: removed\n"
                   "postsuper: Deleted: 2 messages\n")
    assert where(qdir) == {B: "incoming", D: "active"}


def test_delete_several_ids_and_a_queue(queue, monkeypatch):
    confdir, qdir = queue
    # B is in incoming, not in the named queue: left alone
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, A, B, C, "deferred", "hold"],
                         monkeypatch)
    assert err == f"postsuper: {A}: removed\npostsuper: {C}: removed\npostsuper: Deleted: 2 messages\n"
    assert where(qdir) == {B: "incoming", D: "active"}


def test_delete_all_in_one_queue_and_everywhere(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "ALL", "deferred"], monkeypatch)
    assert (rc, err) == (0, "postsuper: Deleted: 1 message\n")    # no per-ID lines for ALL
    assert A not in where(qdir)
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "ALL"], monkeypatch)
    assert err == "postsuper: Deleted: 3 messages\n"
    assert where(qdir) == {}
    rc, out, _ = run_cli(["queue", "list", "-c", confdir], monkeypatch)
    assert out == "Mail queue is empty\n"


def test_bad_queue_name_is_fatal(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "delete", "-c", confdir, "ALL", "deffered"], monkeypatch)
    assert (rc, err) == (1, "postsuper: fatal: invalid directory name: deffered\n")
    assert len(where(qdir)) == 4


# -- hold / release -----------------------------------------------------------

def test_hold_and_release_one(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "hold", "-c", confdir, A], monkeypatch)
    assert err == f"postsuper: {A}: placed on hold\npostsuper: Placed on hold: 1 message\n"
    assert where(qdir)[A] == "hold"
    assert os.path.exists(os.path.join(qdir, "defer", A))      # hold keeps the logs
    # already on hold: not counted
    rc, _, err = run_cli(["queue", "hold", "-c", confdir, A], monkeypatch)
    assert err == "postsuper: Placed on hold: 0 messages\n"
    rc, _, err = run_cli(["queue", "release", "-c", confdir, A], monkeypatch)
    assert err == f"postsuper: {A}: released from hold\npostsuper: Released from hold: 1 message\n"
    assert where(qdir)[A] == "deferred"                          # released mail goes to deferred


def test_hold_all_and_release_all(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "hold", "-c", confdir, "ALL"], monkeypatch)
    # incoming, active (no queue manager running) and deferred; C already held
    assert err == "postsuper: Placed on hold: 3 messages\n"
    assert set(where(qdir).values()) == {"hold"}
    rc, out, _ = run_cli(["queue", "list", "-c", confdir], monkeypatch)
    assert out.count("!") == 4 and "-- 1 Kbytes in 4 Requests." in out
    rc, _, err = run_cli(["queue", "release", "-c", confdir, "ALL"], monkeypatch)
    assert err == "postsuper: Released from hold: 4 messages\n"
    assert set(where(qdir).values()) == {"deferred"}


def test_release_only_acts_on_hold(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "release", "-c", confdir, A, "deferred"], monkeypatch)
    assert err == "postsuper: Released from hold: 0 messages\n"
    assert where(qdir)[A] == "deferred"


# -- requeue ------------------------------------------------------------------

def test_requeue_moves_to_incoming_and_resets_time(queue, monkeypatch):
    confdir, qdir = queue
    old = time.time() - 86400
    path = os.path.join(qdir, "hold", C)
    os.utime(path, (old, old))
    rc, _, err = run_cli(["queue", "requeue", "-c", confdir, C], monkeypatch)
    assert err == f"postsuper: {C}: requeued\npostsuper: Requeued: 1 message\n"
    new = os.path.join(qdir, "incoming", C)
    assert where(qdir)[C] == "incoming"
    assert os.stat(new).st_mtime > old + 3600


def test_requeue_all(queue, monkeypatch):
    confdir, qdir = queue
    rc, _, err = run_cli(["queue", "requeue", "-c", confdir, "ALL"], monkeypatch)
    assert err == "postsuper: Requeued: 4 messages\n"
    assert set(where(qdir).values()) == {"incoming"}


# -- list ---------------------------------------------------------------------

def test_list_skips_damaged_file_with_warning(tmp_path, monkeypatch, utc):
    spec = _spec()
    spec["messages"].append({"queue": "deferred", "id": "0123456789ABCDEF", "raw": "garbage"})
    confdir, _ = build_postier(spec, str(tmp_path))
    rc, out, err = run_cli(["queue", "list", "-c", confdir], monkeypatch)
    assert rc == 0
    assert err == ("postqueue: warning: deferred/0123456789ABCDEF: not a postier queue file "
                   "(bad magic) -- skipping this file\n")
    assert "0123456789ABCDEF" not in out and "in 4 Requests." in out


def test_list_json_is_parseable(queue, monkeypatch):
    import json
    confdir, _ = queue
    rc, out, _ = run_cli(["queue", "list", "-j", "-c", confdir], monkeypatch)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["queue_name"] for r in rows] == ["active", "incoming", "deferred", "hold"]
    assert rows[2]["recipients"] == [{"address": "bob@remote.test",
                                      "delay_reason": "deferred transport"}]
    assert rows[1]["sender"] == "MAILER-DAEMON"


def test_list_reason_from_latest_attempt_and_done_recipients(tmp_path, monkeypatch):
    from postier.queue.file import DsnRecord, append_dsn_log
    spec = {"messages": [{"queue": "deferred", "id": A, "arrival": 1795844942, "size": 10,
                          "sender": "s@example.org",
                          "recipients": ["a@x.test", {"address": "b@x.test", "done": True}]}]}
    confdir, qdir = build_postier(spec, str(tmp_path))
    log = os.path.join(qdir, "defer", A)
    append_dsn_log(log, [DsnRecord(address="a@x.test", reason="first try"),
                         DsnRecord(address="b@x.test", reason="first try")])
    append_dsn_log(log, [DsnRecord(address="a@x.test", reason="second try")])
    assert len(read_dsn_log(log)) == 3
    rc, out, _ = run_cli(["queue", "list", "-j", "-c", confdir], monkeypatch)
    # b@x.test was delivered on the second attempt; a@x.test shows its latest reason
    assert '"recipients": [{"address": "a@x.test", "delay_reason": "second try"}]' in out


# -- errors -------------------------------------------------------------------

def test_missing_queue_directory(tmp_path, monkeypatch):
    confdir = tmp_path / "etc"
    confdir.mkdir()
    (confdir / "main.cf").write_text(f"queue_directory = {tmp_path}/nonexist\n")
    msg = f"chdir {tmp_path}/nonexist: No such file or directory\n"
    assert run_cli(["queue", "list", "-c", str(confdir)], monkeypatch) == (
        69, "", "postqueue: fatal: " + msg)
    assert run_cli(["queue", "delete", "-c", str(confdir), "ALL"], monkeypatch) == (
        1, "", "postsuper: fatal: " + msg)
    assert run_cli(["queue", "cat", "-c", str(confdir), "-q", A], monkeypatch) == (
        1, "", "postcat: fatal: " + msg)
    assert run_cli(["qshape", "-c", str(confdir)], monkeypatch) == (
        2, "", f"qshape: chdir({tmp_path}/nonexist): No such file or directory\n")


def test_bad_config_is_one_line(tmp_path, monkeypatch):
    confdir = tmp_path / "etc"
    confdir.mkdir()
    (confdir / "main.cf").write_text("queue_directory = /x\n  bad continuation\n= oops\n")
    rc, out, err = run_cli(["queue", "list", "-c", str(confdir)], monkeypatch)
    assert rc == 1 and out == ""
    assert err.startswith("postqueue: fatal: ") and err.count("\n") == 1


def test_usage_errors(queue, monkeypatch):
    confdir, _ = queue
    rc, _, err = run_cli(["queue", "delete"], monkeypatch)
    assert rc == 2 and "postsuper: fatal: the following arguments are required" in err
    rc, _, err = run_cli(["queue", "frobnicate"], monkeypatch)
    assert rc == 2 and "unknown verb 'frobnicate'" in err


@pytest.mark.parametrize("verb,postfix", [
    ("list", "postqueue -p"), ("cat", "postcat"), ("delete", "postsuper -d"),
    ("hold", "postsuper -h"), ("release", "postsuper -H"), ("requeue", "postsuper -r"),
    ("flush", "postqueue -f")])
def test_help_for_each_verb(verb, postfix, monkeypatch, capsys):
    from postier.cli import queue_cmd
    assert queue_cmd.main([verb, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert postfix.split()[0] in out and "-c DIR" in out


def test_queue_usage(monkeypatch):
    rc, out, _ = run_cli(["queue", "--help"], monkeypatch)
    assert rc == 0
    for verb in ("list", "cat", "delete", "hold", "release", "requeue", "flush"):
        assert f"  {verb} " in out


# -- cat ----------------------------------------------------------------------

def test_cat_calls_postcat_with_queue_and_flags(queue, monkeypatch):
    confdir, qdir = queue
    calls = []
    fake = types.ModuleType("postier.queue.postcat")

    def format_queue_file(path, queue_name, *, envelope, header, body, line_length_limit):
        calls.append((path, queue_name, envelope, header, body, line_length_limit))
        return "TEXT\n"
    fake.format_queue_file = format_queue_file
    monkeypatch.setitem(sys.modules, "postier.queue.postcat", fake)
    import postier.queue
    monkeypatch.setattr(postier.queue, "postcat", fake, raising=False)
    rc, out, err = run_cli(["queue", "cat", "-c", confdir, "-q", A], monkeypatch)
    assert (rc, out, err) == (0, "TEXT\n", "")
    assert calls[-1] == (os.path.join(qdir, "deferred", A), "deferred", True, True, True, 2048)
    rc, out, err = run_cli(["queue", "cat", "-c", confdir, "-h", "-q", C], monkeypatch)
    assert calls[-1] == (os.path.join(qdir, "hold", C), "hold", False, True, False, 2048)


def test_cat_real_postcat_output(queue, monkeypatch, utc):
    confdir, qdir = queue
    rc, out, err = run_cli(["queue", "cat", "-c", confdir, "-e", "-q", A], monkeypatch)
    assert rc == 0, err
    assert out.startswith(f"*** ENVELOPE RECORDS deferred/{A} ***\n")
    assert "sender: alice@example.org\n" in out


def test_cat_errors(tmp_path, monkeypatch):
    spec = _spec()
    spec["messages"].append({"queue": "corrupt", "id": "0123456789ABCDEF", "raw": "garbage"})
    confdir, qdir = build_postier(spec, str(tmp_path))
    assert run_cli(["queue", "cat", "-c", confdir, "-q", "6B0A6C79FFFFFFFF"], monkeypatch) == (
        1, "", "postcat: fatal: open queue file 6B0A6C79FFFFFFFF: No such file or directory\n")
    assert run_cli(["queue", "cat", "-c", confdir, "-q", "a/b"], monkeypatch) == (
        1, "", "postcat: fatal: bad mail queue ID: a/b\n")
    assert run_cli(["queue", "cat", "-c", confdir, "-q", "0123456789ABCDEF"], monkeypatch) == (
        1, "", "postcat: fatal: corrupt/0123456789ABCDEF: damaged queue file: "
               "not a postier queue file (bad magic)\n")


def test_cat_without_postcat_module(queue, monkeypatch):
    confdir, _ = queue
    import postier.queue
    monkeypatch.setitem(sys.modules, "postier.queue.postcat", None)
    monkeypatch.delattr(postier.queue, "postcat", raising=False)
    rc, out, err = run_cli(["queue", "cat", "-c", confdir, "-q", A], monkeypatch)
    assert rc == 1 and out == ""
    assert err.startswith("postcat: fatal: postier queue cat is not available")


# -- flush ----------------------------------------------------------------------

def test_flush_reports_mail_system_down(queue, monkeypatch):
    confdir, _ = queue
    from postier.queue import tools
    monkeypatch.setattr(tools, "qmgr_flush", lambda qdir: False)
    assert run_cli(["queue", "flush", "-c", confdir], monkeypatch) == (
        69, "", "postqueue: fatal: Cannot flush mail queue - mail system is down\n")
    seen = []
    monkeypatch.setattr(tools, "qmgr_flush", lambda qdir: seen.append(qdir) or True)
    assert run_cli(["queue", "flush", "-c", confdir], monkeypatch) == (0, "", "")
    assert seen == [queue[1]]
