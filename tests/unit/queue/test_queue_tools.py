"""postier.queue.tools: formatting primitives, defer logs, QueueAdmin and the
queue manager hand-off for messages in the active queue."""

from __future__ import annotations

import os

import pytest
from _queue_spec import build_postier

from postier.queue import tools
from postier.queue.tools import (
    ListSettings,
    QueueAdmin,
    QueueError,
    format_json,
    format_message,
    json_quote,
    list_messages,
    parse_defer_log,
    printable,
    queue_id_ok,
)

A, B = "6B0A6C7900000001", "6B0A6C7900000002"


def test_queue_id_syntax_is_postfix_mail_queue_id_ok():
    assert queue_id_ok(A) and queue_id_ok("4jbzrH73qKzJ9v7") and queue_id_ok("A_B")
    assert not queue_id_ok("") and not queue_id_ok("a/b") and not queue_id_ok("ID*")
    assert not queue_id_ok("x" * 256)


def test_printable_and_json_quote():
    assert printable("a\tb\x7fc") == "a?b?c"
    assert printable("jösé") == "jösé"
    assert printable("jösé", utf8=False) == "j?s?"
    assert printable("bad\udcff") == "bad?"
    assert json_quote('say "hi"\\\n\x01') == 'say \\"hi\\"\\\\\\n\\u0001'


def test_parse_postfix_text_defer_log():
    text = ("\n<dave@other.test>: connect refused\nrecipient=dave@other.test\noffset=792\n"
            "status=4.4.1\naction=delayed\nreason=connect to x: Connection refused\n\n"
            "\n<\"a b\"@x.test>: later\nrecipient=\"a b\"@x.test\nreason=later\n\n"
            "<legacy@x.test>: legacy reason\n")
    assert parse_defer_log(text) == [("dave@other.test", "connect to x: Connection refused"),
                                     ('"a b"@x.test', "later"),
                                     ("legacy@x.test", "legacy reason")]


def test_reason_layout():
    msg = tools.QueueMessage(queue="deferred", queue_id=A, arrival=0, size=5, sender="s@x",
                             recipients=[("a@x", "r" * 10), ("b@x", "r" * 10), ("c@x", ""),
                                         ("d@x", "q" * 80)])
    lines = format_message(msg).splitlines()
    assert lines[1] == " " * 66 + "(" + "r" * 10 + ")"   # 76 - len(reason)
    assert lines[3] == " " * 47 + "b@x"                       # same reason: not repeated
    assert lines[4] == " " * 58 + "(reason unavailable)"
    assert lines[6] == "(" + "q" * 80 + ")"                   # longer than 76: column 1


def test_list_order_and_maildrop(tmp_path):
    spec = {"messages": [
        {"queue": q, "id": f"6B0A6C790000000{i}", "arrival": 1795844942, "size": 1,
         "sender": "s@x.test", "recipients": ["r@x.test"]}
        for i, q in enumerate(["hold", "deferred", "incoming", "active", "maildrop",
                               "corrupt", "deferred"])]}
    _, qdir = build_postier(spec, str(tmp_path))
    got = [(m.queue, m.queue_id[-1]) for m in list_messages(qdir)]
    # showq order: maildrop, active, incoming, deferred, hold; corrupt is not listed
    assert got == [("maildrop", "4"), ("active", "3"), ("incoming", "2"), ("deferred", "1"),
                   ("deferred", "6"), ("hold", "0")]


def test_temporary_files_are_not_listed(tmp_path):
    _, qdir = build_postier({"messages": []}, str(tmp_path))
    open(os.path.join(qdir, "incoming", f".{A}.tmp"), "w").write("partial")
    assert list(list_messages(qdir)) == []


def test_json_forced_expire_and_utf8(tmp_path):
    msg = tools.QueueMessage(queue="hold", queue_id=A, arrival=7, size=1, sender="jö@x",
                             recipients=[("r@x", "")], forced_expire=True)
    assert format_json(msg) == ('{"queue_name": "hold", "queue_id": "' + A + '", '
                                '"arrival_time": 7, "message_size": 1, "forced_expire": true, '
                                '"sender": "jö@x", "recipients": [{"address": "r@x"}]}\n')
    assert '"sender": "j?@x"' in format_json(msg, utf8=False)
    assert format_message(msg).startswith(f"{A}!#")


def test_settings_from_config():
    from postier.config import Config
    cfg = Config.from_text("empty_address_recipient = postmaster\nduplicate_filter_limit = 3\n"
                           "smtputf8_enable = no\n")
    assert ListSettings.from_config(cfg) == ListSettings("postmaster", 3, False)


def test_check_queue_directory(tmp_path):
    with pytest.raises(QueueError, match="chdir .*/nope: No such file or directory"):
        tools.check_queue_directory(str(tmp_path / "nope"))
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(QueueError, match="Not a directory"):
        tools.check_queue_directory(str(f))


# -- the active queue belongs to a running queue manager --------------------------

def _active_queue(tmp_path):
    spec = {"messages": [
        {"queue": "active", "id": A, "arrival": 1795844942, "size": 1, "sender": "s@x.test",
         "recipients": ["r@x.test"]},
        {"queue": "deferred", "id": B, "arrival": 1795844942, "size": 1, "sender": "s@x.test",
         "recipients": ["r@x.test"]}]}
    return build_postier(spec, str(tmp_path))[1]


def test_active_goes_through_running_qmgr(tmp_path):
    qdir = _active_queue(tmp_path)
    requests = []

    def request(qdir_, op, qid):
        requests.append((op, qid))
        os.rename(os.path.join(qdir_, "active", qid), os.path.join(qdir_, "hold", qid))
        return "hold"
    info = []
    admin = QueueAdmin(qdir, info=info.append, qmgr=(lambda q: True, request))
    assert admin.hold(A) is True
    assert admin.hold(B) is True                 # not active: moved directly
    assert requests == [("hold", A)]
    assert info == [f"{A}: placed on hold", f"{B}: placed on hold"]
    assert sorted(os.listdir(os.path.join(qdir, "hold"))) == [A, B]


def test_active_moved_directly_when_qmgr_is_down(tmp_path):
    qdir = _active_queue(tmp_path)

    def request(*args):
        raise AssertionError("must not be asked")
    admin = QueueAdmin(qdir, qmgr=(lambda q: False, request))
    assert admin.delete_all(["active"]) == 1
    assert os.listdir(os.path.join(qdir, "active")) == []


def test_qmgr_says_message_is_gone(tmp_path):
    qdir = _active_queue(tmp_path)
    admin = QueueAdmin(qdir, qmgr=(lambda q: True, lambda q, op, qid: None))
    assert admin.delete(A) is False              # delivered meanwhile: not counted
    assert admin.hold_all(["active"]) == 0


def test_rename_never_overwrites(tmp_path):
    qdir = _active_queue(tmp_path)
    open(os.path.join(qdir, "hold", B), "w").write("other")
    warnings = []
    admin = QueueAdmin(qdir, warn=warnings.append, qmgr=None)
    assert admin.hold(B) is False
    assert warnings == [f"{B}: a message with this ID is already in the hold queue; left in deferred"]
    assert open(os.path.join(qdir, "hold", B)).read() == "other"


def test_release_resets_time_stamp_and_requeue_wakes_qmgr(tmp_path, monkeypatch):
    import time
    spec = {"messages": [
        {"queue": "hold", "id": A, "arrival": 1795844942, "size": 1, "sender": "s@x.test",
         "recipients": ["r@x.test"]},
        {"queue": "deferred", "id": B, "arrival": 1795844942, "size": 1, "sender": "s@x.test",
         "recipients": ["r@x.test"]}]}
    _, qdir = build_postier(spec, str(tmp_path))
    future = time.time() + 7200
    os.utime(os.path.join(qdir, "hold", A), (future, future))
    woken = []
    monkeypatch.setattr(tools, "qmgr_trigger_incoming", lambda q: woken.append(q) or True)
    admin = QueueAdmin(qdir, qmgr=(lambda q: True, lambda q, op, qid: None))
    assert admin.release(A)
    assert os.stat(os.path.join(qdir, "deferred", A)).st_mtime < future - 3600
    admin.sync()
    assert woken == []                       # released mail waits for a deferred scan
    assert admin.requeue(B)
    admin.sync()
    assert woken == [qdir]                   # requeued mail: `trigger I`


def test_cli_talks_to_queue_manager_socket(tmp_path, monkeypatch):
    """`postier queue hold` on a message in active, with something answering
    the postier.qmgr.control protocol on public/qmgr."""
    import socket
    import threading

    from _queue_spec import run_cli
    confdir, qdir = build_postier({"messages": [
        {"queue": "active", "id": A, "arrival": 1795844942, "size": 1, "sender": "s@x.test",
         "recipients": ["r@x.test"]}]}, str(tmp_path))
    os.makedirs(os.path.join(qdir, "public"), exist_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(os.path.join(qdir, "public", "qmgr"))
    srv.listen(5)
    seen = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline().decode().strip()
                seen.append(line)
                if line == "ping":
                    conn.sendall(b"ok\n")
                elif line == f"hold {A}":
                    os.rename(os.path.join(qdir, "active", A), os.path.join(qdir, "hold", A))
                    conn.sendall(b"ok hold\n")
                else:
                    conn.sendall(b"none\n")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rc, out, err = run_cli(["queue", "hold", "-c", confdir, A], monkeypatch)
        rc2, _, err2 = run_cli(["queue", "delete", "-c", confdir, A, "active"], monkeypatch)
    finally:
        srv.close()
    assert (rc, err) == (0, f"postsuper: {A}: placed on hold\npostsuper: Placed on hold: 1 message\n")
    assert seen[:2] == ["ping", f"hold {A}"]
    assert os.listdir(os.path.join(qdir, "hold")) == [A]
    assert err2 == "postsuper: Deleted: 0 messages\n"      # not in active any more
