"""The queue tools on a running `postier run` (slow).

postier relays everything to smtp-sink on a loopback port.  While the sink
is down, mail is deferred ("connect to 127.0.0.1[127.0.0.1]:PORT: Connection
refused", as `postier queue list` shows).  Then, with postier still running:

* a held message is not delivered by `postier queue flush`, the others
  are; after `release` (and a flush) it is delivered too;
* a deleted message is never delivered;
* a requeued message is delivered at once (no flush: requeue tells the
  queue manager to scan incoming);
* `hold` of a message that the queue manager is delivering (active) goes
  through the queue manager, and the message ends up on hold, not
  delivered.

Only loopback addresses are used; processes are stopped by PID.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "qmgr"))

from peers import PostierDaemon, SmtpSink, free_port, peers_available, send_message, wait_for  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not peers_available(), reason="needs smtp-sink (postfix package)")]

POSTIER = os.path.join(ROOT, ".venv", "bin", "postier")
QUEUED = re.compile(r"queued as ([0-9A-F]{16})")


def queue_cmd(daemon: PostierDaemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([POSTIER, "queue", args[0], "-c", daemon.etc, *args[1:]],
                          capture_output=True, text=True, input=stdin, timeout=120)


def where(daemon: PostierDaemon, qid: str) -> str | None:
    for q in ("incoming", "active", "deferred", "hold"):
        if qid in daemon.queue_files(q):
            return q
    return None


def submit(daemon: PostierDaemon, n: int) -> str:
    reply = send_message(daemon.port, "alice@example.test", [f"rcpt{n}@remote.test"],
                         f"Subject: message {n}\r\n\r\nbody {n}\r\n")
    m = QUEUED.search(reply)
    assert m, reply
    return m.group(1)


@pytest.fixture
def daemon_and_sink(tmp_path):
    sink_port = free_port()
    daemon = PostierDaemon({
        "relayhost": f"[127.0.0.1]:{sink_port}",
        "default_transport": "smtp",
        "relay_domains": "",
        "queue_run_delay": "3600s",          # only flush, requeue and triggers deliver
        "minimal_backoff_time": "3600s",
        "maximal_backoff_time": "3600s",
        "smtp_helo_timeout": "5s",           # a silent relay ends an attempt quickly
    }, root=str(tmp_path / "root"))
    daemon.start()
    try:
        from postier.qmgr.control import qmgr_running
    except ImportError:
        qmgr_running = None
    if qmgr_running is None or not wait_for(lambda: qmgr_running(daemon.queue), 10):
        daemon.cleanup()
        pytest.skip("`postier run` starts no queue manager (public/qmgr does not answer)")
    sink = SmtpSink(port=sink_port)
    try:
        yield daemon, sink
    finally:
        sink.stop()
        daemon.cleanup()


def test_hold_release_delete_requeue_while_running(daemon_and_sink):
    daemon, sink = daemon_and_sink
    held, deleted, plain, requeued = (submit(daemon, i) for i in range(4))
    ids = [held, deleted, plain, requeued]
    assert wait_for(lambda: all(where(daemon, q) == "deferred" for q in ids), 30), \
        {q: where(daemon, q) for q in ids}

    listing = queue_cmd(daemon, "list")
    assert listing.returncode == 0
    for qid in ids:
        assert re.search(rf"^{qid} ", listing.stdout, re.M)
    assert "Connection refused)" in listing.stdout
    assert listing.stdout.endswith("in 4 Requests.\n")

    r = queue_cmd(daemon, "hold", held)
    assert r.stderr == f"postsuper: {held}: placed on hold\npostsuper: Placed on hold: 1 message\n"
    r = queue_cmd(daemon, "delete", deleted)
    assert r.stderr == f"postsuper: {deleted}: removed\npostsuper: Deleted: 1 message\n"
    assert re.search(rf"^{held}!", queue_cmd(daemon, "list").stdout, re.M)

    sink.start()
    r = queue_cmd(daemon, "flush")
    assert (r.returncode, r.stderr) == (0, "")
    # the deferred messages go out; the held one stays on hold
    assert wait_for(lambda: sink.messages >= 2, 60), sink.counts()
    assert wait_for(lambda: where(daemon, plain) is None and where(daemon, requeued) is None, 30)
    assert sink.messages == 2
    assert where(daemon, held) == "hold" and where(daemon, deleted) is None
    assert daemon.log().count(f"{held}: to=") == 1          # only its first, deferred, attempt

    r = queue_cmd(daemon, "release", held)
    assert r.stderr == (f"postsuper: {held}: released from hold\n"
                        "postsuper: Released from hold: 1 message\n")
    assert where(daemon, held) == "deferred"
    assert queue_cmd(daemon, "flush").returncode == 0
    assert wait_for(lambda: where(daemon, held) is None, 60)
    assert wait_for(lambda: sink.messages == 3, 30), sink.counts()
    assert re.search(rf"{held}: to=<rcpt0@remote.test>.*status=sent", daemon.log())
    assert not re.search(rf"{deleted}: to=<.*status=sent", daemon.log())

    # requeue: delivered without a flush (queue_run_delay is an hour)
    sink.stop()
    late = submit(daemon, 9)
    assert wait_for(lambda: where(daemon, late) == "deferred", 30)
    sink.start()
    r = queue_cmd(daemon, "requeue", late)
    assert r.stderr == f"postsuper: {late}: requeued\npostsuper: Requeued: 1 message\n"
    assert wait_for(lambda: where(daemon, late) is None, 60)
    assert wait_for(lambda: sink.messages >= 1, 30)
    assert queue_cmd(daemon, "list").stdout == "Mail queue is empty\n"


def test_hold_of_active_message_goes_through_queue_manager(daemon_and_sink, tmp_path):
    """A message stuck in active (the relay accepts the connection but never
    answers) is put on hold by the queue manager on request."""
    import socket
    daemon, sink = daemon_and_sink
    silent = socket.socket()
    silent.bind(("127.0.0.1", sink.port))
    silent.listen(10)                        # accepts TCP, never says 220
    try:
        qid = submit(daemon, 1)
        assert wait_for(lambda: where(daemon, qid) == "active", 30), where(daemon, qid)
        r = queue_cmd(daemon, "hold", qid)
        assert r.returncode == 0, r.stderr
        assert r.stderr == f"postsuper: {qid}: placed on hold\npostsuper: Placed on hold: 1 message\n"
        assert where(daemon, qid) == "hold"
        assert re.search(rf"^{qid}!", queue_cmd(daemon, "list").stdout, re.M)
        # the queue manager moved it (a rename under its feet would make it warn
        # about active/ID vanishing), and it was not delivered
        assert f"active/{qid}" not in daemon.log()
        assert not re.search(rf"{qid}: to=<.*status=sent", daemon.log())
    finally:
        silent.close()
