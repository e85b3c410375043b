"""The master process end to end: `postier start/status/reload/stop/check`,
worker supervision, the privilege drop and anvil across workers.

Each test starts its own instance (master_peers.Instance: smtpd on a free
loopback port with 2 worker processes, qmgr + smtp relaying to a loopback
smtp-sink) with `postier start`, and stops it with `postier stop` (then
SIGKILL by PID to anything of its tree still alive).  They need root: the
master binds, chowns the queue to $mail_owner and switches the workers to
it, as a real installation does.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import time

import pytest
from master_peers import (
    Instance,
    SmtpSink,
    alive,
    comm,
    peers_available,
    proc_uid,
    processes_in_session,
    send,
    smtp_session,
    swaks,
    wait_for,
    wait_gone,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the master tests need root (privilege "
                                                 "drop to mail_owner, queue ownership)"),
    pytest.mark.skipif(not peers_available(), reason="smtp-sink/smtp-source not installed"),
]


def mail_owner_uid() -> int:
    try:
        return pwd.getpwnam("postier").pw_uid
    except KeyError:
        pytest.skip("the postier account does not exist (tools/setup.sh creates it)")


@pytest.fixture
def sink():
    s = SmtpSink([]).start()
    yield s
    s.stop()


@pytest.fixture
def inst(sink):
    made: list[Instance] = []

    def make(main_cf: dict[str, str] | None = None, start: bool = True) -> Instance:
        cf = {"relayhost": f"[127.0.0.1]:{sink.port}"}
        cf.update(main_cf or {})
        i = Instance(cf)
        made.append(i)
        if start:
            i.start()
        return i
    yield make
    for i in made:
        i.cleanup()


def test_status_start_stop_and_nothing_left_behind(inst, sink):
    i = inst(start=False)
    rc, err = i.ctl("status")
    assert rc == 1 and "postier/postfix-script: the postier mail system is not running" in err
    i.start()
    pid = i.master_pid()
    rc, err = i.ctl("status")
    assert rc == 0, err
    assert f"postier/postfix-script: the postier mail system is running: PID: {pid}" in err
    rc, err = i.ctl("start")
    assert rc == 1 and "fatal: the postier mail system is already running" in err
    # the daemon: its own session (setsid), not ours
    assert i.sid is not None and i.sid != os.getsid(0)
    tree = [pid] + i.children()
    assert len(tree) == 4, i.tree()             # master, queue process, 2 smtpd workers
    assert send(i.port).startswith("2.0.0 Ok: queued as")
    assert wait_for(lambda: sink.messages >= 1, 20)
    rc, err = i.ctl("stop")
    assert rc == 0 and "stopping the postier mail system" in err
    assert wait_gone(tree, 5)
    assert processes_in_session(i.sid) == []
    assert not os.path.exists(os.path.join(i.queue, "pid", "master.pid"))
    rc, err = i.ctl("status")
    assert rc == 1 and "is not running" in err
    rc, err = i.ctl("stop")
    assert rc == 1 and "fatal: the postier mail system is not running" in err
    log = i.log()
    assert re.search(rf"postier/master\[{pid}\]: daemon started -- version \S+, configuration "
                     rf"{re.escape(i.etc)}", log)
    assert f"postier/master[{pid}]: terminating on signal 15" in log
    # the connection is refused once stopped
    with pytest.raises(OSError):
        send(i.port)


def test_smtpd_workers_run_as_mail_owner_and_own_the_queue(inst):
    uid = mail_owner_uid()
    i = inst()
    workers = i.workers()
    assert len(workers) == 2
    assert [proc_uid(p) for p in workers] == [uid, uid]
    # local is unpriv=n: the queue process keeps root for it; the master is root
    assert proc_uid(i.queue_pid()) == 0
    assert proc_uid(i.master_pid()) == 0
    assert os.stat(os.path.join(i.queue, "incoming")).st_uid == uid
    assert os.stat(os.path.join(i.root, "data")).st_uid == uid
    assert os.stat(os.path.join(i.queue, "pid")).st_uid == 0
    text = send(i.port)
    qid = text.split()[-1]
    log = i.log()
    # the worker that wrote the file is one of the unprivileged ones
    m = re.search(rf"postier/smtpd\[(\d+)\]: {qid}: client=", log)
    assert m and int(m.group(1)) in workers


def test_queue_process_drops_root_without_switching_agents(inst, sink):
    uid = mail_owner_uid()
    from master_peers import MASTER_CF
    i = Instance({"relayhost": f"[127.0.0.1]:{sink.port}"},
                 master_cf=MASTER_CF.replace("local     unix  -       n ",
                                             "local     unix  -       - "))
    try:
        i.start()
        assert proc_uid(i.queue_pid()) == uid
        assert os.stat(os.path.join(i.queue, "public")).st_uid == uid
        before = sink.messages
        send(i.port)
        assert wait_for(lambda: sink.messages >= before + 1, 20), i.log()
    finally:
        i.cleanup()


def test_reload_during_an_open_session_completes_it(inst, sink):
    i = inst()
    old = sorted(i.workers())
    queue_old = i.queue_pid()
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as \w+", swaks(i.port, subject="before reload"))
    s = smtp_session(i.port)
    try:
        assert s.reply().startswith("220 ")
        assert s.cmd("EHLO client.example.test").startswith("250")
        assert s.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
        assert s.cmd("RCPT TO:<sink@dest.test>").startswith("250")
        rc, err = i.ctl("reload")
        assert rc == 0 and "refreshing the postier mail system" in err
        assert i.wait_log("reload -- version")
        # new workers take over; a new session is served at once by one of them
        assert wait_for(lambda: len(set(i.workers()) - set(old)) == 2, 20), i.tree()
        assert re.search(r"<-  250 2\.0\.0 Ok: queued as \w+",
                         swaks(i.port, subject="after reload"))
        # the session begun before the reload goes on
        assert s.cmd("DATA").startswith("354")
        assert s.data(b"Subject: across a reload\r\n\r\nbody").startswith(
            "250 2.0.0 Ok: queued as ")
        assert s.cmd("QUIT").startswith("221")
    finally:
        s.close()
    # the old worker that held the session exits after it; the other already did
    assert wait_gone(old, 20), i.tree()
    assert i.queue_pid() not in (None, queue_old)       # the queue process was restarted
    assert wait_for(lambda: sink.messages >= 3, 30), i.log()
    pid = i.master_pid()
    assert re.search(rf"postier/master\[{pid}\]: reload -- version \S+, configuration "
                     rf"{re.escape(i.etc)}\n", i.log())


def test_reload_refuses_a_broken_configuration(inst):
    i = inst()
    old = sorted(i.workers())
    i.params["message_size_limit"] = "lots"
    i.write()
    rc, err = i.ctl("reload")
    assert rc == 1
    assert "message_size_limit" in err and "was not reloaded" in err
    assert sorted(i.workers()) == old
    # the master itself refuses too (SIGHUP sent by hand)
    os.kill(i.master_pid(), signal.SIGHUP)
    assert i.wait_log("warning: reload failed, configuration not changed")
    assert sorted(i.workers()) == old
    assert send(i.port).startswith("2.0.0")


def test_killed_worker_is_restarted_and_mail_keeps_flowing(inst, sink):
    i = inst()
    victim = i.workers()[0]
    os.kill(victim, signal.SIGKILL)
    pid = i.master_pid()
    assert i.wait_log(f"postier/master[{pid}]: warning: process smtpd pid {victim} "
                      f"killed by signal 9")
    assert wait_for(lambda: len(i.workers()) == 2 and victim not in i.workers(), 20), i.tree()
    before = sink.messages
    for n in range(6):
        send(i.port, subject=f"after kill {n}")
    assert wait_for(lambda: sink.messages >= before + 6, 30), i.log()


def test_killed_queue_process_is_restarted(inst, sink):
    i = inst()
    victim = i.queue_pid()
    os.kill(victim, signal.SIGKILL)
    assert i.wait_log(f"warning: process qmgr pid {victim} killed by signal 9")
    assert wait_for(lambda: i.queue_pid() not in (None, victim), 20), i.tree()
    before = sink.messages
    send(i.port)
    assert wait_for(lambda: sink.messages >= before + 1, 30), i.log()


def test_master_killed_takes_its_workers_along(inst):
    i = inst()
    pid = i.master_pid()
    tree = [pid] + i.children()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(tree, 10), [(p, comm(p)) for p in tree if alive(p)]
    rc, err = i.ctl("status")
    assert rc == 1
    i.start()                      # the stale pid file and the port are free again
    assert send(i.port).startswith("2.0.0")


def test_anvil_counts_connections_across_workers(inst):
    """smtpd_client_connection_count_limit = 1: one session is held open; a
    connection that reaches the *other* worker (which holds no session
    itself) must be refused too."""
    i = inst({"mynetworks": "192.0.2.0/24", "smtpd_authorized_xclient_hosts": "",
              "smtpd_client_connection_count_limit": "1"})
    held = smtp_session(i.port)
    try:
        assert held.reply().startswith("220 ")
        log = i.log()
        m = re.findall(r"postier/smtpd\[(\d+)\]: connect from", log)
        assert m
        holder = int(m[-1])
        other_refused = False
        rx = re.compile(r"postier/smtpd\[(\d+)\]: warning: Connection concurrency limit "
                        r"exceeded: 2 from unknown\[127\.0\.0\.1\] for service "
                        rf"127\.0\.0\.1:{i.port}")
        for _ in range(40):
            s = smtp_session(i.port)
            try:
                r = s.reply()
            finally:
                s.close()
            assert r.startswith("421 4.7.0 mx.example.test Error: too many connections "
                                "from 127.0.0.1"), r
            assert wait_for(lambda: rx.search(i.log()) is not None, 5)
            pids = {int(p) for p in rx.findall(i.log())}
            if pids - {holder}:
                other_refused = True
                break
        assert other_refused, "every connection went to the worker holding the session"
        ended = i.log().count("disconnect from")
    finally:
        held.close()
    # once the held session ended, a new one is accepted
    assert wait_for(lambda: i.log().count("disconnect from") >= ended + 1, 10)
    s = smtp_session(i.port)
    try:
        assert s.reply().startswith("220 ")
    finally:
        s.close()


def test_check_good_broken_and_fix(inst):
    i = inst(start=False)
    rc, err = i.ctl("check", "--fix")
    assert rc == 0, err
    rc, err = i.ctl("check")
    assert (rc, err) == (0, "")
    # ownership: what postfix check says, then --fix repairs it
    incoming = os.path.join(i.queue, "incoming")
    os.chown(incoming, 0, 0)
    os.chmod(os.path.join(i.queue, "hold"), 0o777)
    rc, err = i.ctl("check")
    assert rc == 0
    assert f"postier/postfix-script: warning: not owned by postier: {incoming}\n" in err
    assert f"warning: group or other writable: {i.queue}/hold" in err
    rc, err = i.ctl("check", "--fix")
    assert rc == 0 and "not owned by" not in err
    os.chmod(os.path.join(i.queue, "hold"), 0o700)
    # broken: a bad value, an unknown account and a missing table
    i.params.update({"message_size_limit": "lots", "mail_owner": "no-such-user-here"})
    i.write()
    rc, err = i.ctl("check")
    assert rc == 1
    assert "postier/postfix-script: fatal: " in err and "message_size_limit" in err
    i.params.update({"message_size_limit": "10240000",
                     "smtpd_client_restrictions": f"check_client_access hash:{i.root}/nope"})
    i.write()
    rc, err = i.ctl("check")
    assert rc == 1
    assert "parameter mail_owner: unknown user name value: no-such-user-here" in err
    assert f"{i.root}/nope.db" in err
    rc, err = i.ctl("start")
    assert rc == 1 and "integrity check failed" in err
    assert i.master_pid() is None


def test_run_in_the_foreground_is_the_same_master(inst):
    """`postier run` (the tests' and containers' way): same process tree,
    status works, SIGTERM stops everything."""
    import subprocess

    from master_peers import POSTIER
    i = inst(start=False)
    out = open(os.path.join(i.root, "run.out"), "wb")
    p = subprocess.Popen([POSTIER, "run", "-c", i.etc], stdout=out, stderr=out,
                         stdin=subprocess.DEVNULL)
    try:
        assert i.wait_log("smtpd listening on 127.0.0.1:"), i.log()
        assert i.master_pid() == p.pid
        assert os.getsid(p.pid) == os.getsid(0)      # not daemonized
        kids = i.children()
        assert len(i.workers()) == 2 and i.queue_pid() is not None
        rc, err = i.ctl("status")
        assert rc == 0 and f"PID: {p.pid}" in err
        send(i.port)
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert wait_gone(kids, 5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.close()


def test_stop_lets_a_session_finish_within_the_drain_time(inst):
    i = inst({"smtpd_drain_time": "20s"})
    s = smtp_session(i.port)
    try:
        assert s.reply().startswith("220 ")
        assert s.cmd("EHLO client.example.test").startswith("250")
        assert s.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
        assert s.cmd("RCPT TO:<sink@dest.test>").startswith("250")
        import subprocess

        from master_peers import POSTIER
        stopper = subprocess.Popen([POSTIER, "stop", "-c", i.etc], stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
        pid = i.master_pid()
        assert i.wait_log(f"postier/master[{pid}]: terminating on signal 15")
        time.sleep(0.5)
        # no new connections...
        with pytest.raises(OSError):
            send(i.port)
        # ...but the open session completes
        assert s.cmd("DATA").startswith("354")
        assert s.data(b"Subject: drained\r\n\r\nbody").startswith("250 2.0.0 Ok: queued as ")
        assert s.cmd("QUIT").startswith("221")
        assert stopper.wait(30) == 0
    finally:
        s.close()
    assert i.master_pid() is None


def test_flush_delivers_deferred_mail_now(inst):
    """`postier flush` (postqueue -f): deferred mail goes out at once; with
    the mail system down it fails like postqueue."""
    from master_peers import free_port
    port = free_port()                    # nothing listens there yet
    i = inst({"relayhost": f"[127.0.0.1]:{port}", "queue_run_delay": "300s",
              "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"})
    send(i.port)
    assert wait_for(lambda: len(os.listdir(os.path.join(i.queue, "deferred"))) == 1, 20), i.log()
    with SmtpSink([], port=port) as late:
        rc, err = i.ctl("flush")
        assert (rc, err) == (0, "")
        assert wait_for(lambda: late.messages >= 1, 20), i.log()
    rc, err = i.ctl("stop")
    assert rc == 0
    rc, err = i.ctl("flush")
    assert rc == 69
    assert "postqueue: fatal: Cannot flush mail queue - mail system is down" in err
