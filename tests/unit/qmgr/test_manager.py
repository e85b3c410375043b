"""The queue manager with in-process test agents: queue moves, logs, DSNs,
lifetimes, recovery, concurrency, dead destinations and the control socket."""

from __future__ import annotations

import os
import re
import time

import pytest
from qmgr_harness import BODY, Harness, Recorder, run

from postier.qmgr import control
from postier.queue.file import Recipient, read_dsn_log, read_envelope

LINE = re.compile(r"^postier/(\w+): ([0-9A-F]+): (.*)$")


def test_delivered_message_is_removed_with_postfix_log_lines(tmp_path):
    h = Harness(str(tmp_path))

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test", "c@dest.test"])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    assert h.files("incoming") == h.files("active") == h.files("deferred") == []
    lines = h.log_lines(qid)
    assert lines[0] == f"postier/qmgr: {qid}: from=<a@sender.test>, size={len(h_body())}, nrcpt=2 (queue active)"
    deliveries = [x for x in lines if "to=<" in x]
    assert len(deliveries) == 2
    for x in deliveries:
        assert re.fullmatch(
            rf"postier/smtp: {qid}: to=<[bc]@dest\.test>, relay=sink\.test\[127\.0\.0\.1\]:2525, "
            r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
            r"status=sent \(250 2\.0\.0 Ok\)", x), x
    assert lines[-1] == f"postier/qmgr: {qid}: removed"
    req = h.agents["smtp"].requests[0]
    # one request for both: same transport and nexthop ([127.0.0.1]:2525 = relayhost)
    assert req.nexthop == "[127.0.0.1]:2525" and req.transport == "smtp"
    assert sorted(r.address for r in req.recipients) == ["b@dest.test", "c@dest.test"]


def h_body() -> bytes:
    return BODY


@pytest.mark.slow
def test_deferred_message_waits_with_backoff_then_is_retried(tmp_path):
    answers = {"b@dest.test": ("deferred", "4.3.0", "host x said: 450 try later (in reply to RCPT TO command)"),
               "c@dest.test": ("sent", "2.0.0", "250 Ok")}
    agent = Recorder(lambda a: answers[a])
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test", "c@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid])
        path = os.path.join(h.qdir, "deferred", qid)
        st = os.stat(path)
        # mtime = next attempt: now + max(minimal_backoff_time, age) = ~1 s
        assert 0.5 < st.st_mtime - time.time() <= 1.5
        env, _ = read_envelope(path)
        done = {r.address: r.done for r in env.recipients}
        assert done == {"b@dest.test": False, "c@dest.test": True}
        recs = read_dsn_log(os.path.join(h.qdir, "defer", qid))
        assert [(r.address, r.status, r.action) for r in recs] == [("b@dest.test", "4.3.0", "delayed")]
        # the destination answers now; the deferred scan (queue_run_delay 1s) retries
        answers["b@dest.test"] = ("sent", "2.0.0", "250 Ok")
        assert await h.wait(lambda: h.files("deferred") == [] and not h.qm.active, 6)
        await h.stop()
        return qid
    qid = run(go())
    # c was not delivered twice; b was tried twice
    assert agent.delivered.count("c@dest.test") == 1
    assert agent.delivered.count("b@dest.test") == 2
    assert not os.path.exists(os.path.join(h.qdir, "defer", qid))
    lines = h.log_lines(qid)
    assert sum("(queue active)" in x for x in lines) == 2
    assert any("status=deferred (host x said: 450 try later" in x for x in lines)
    assert lines[-1].endswith(f"{qid}: removed")


def test_bounce_queues_a_dsn_from_mailer_daemon(tmp_path):
    agent = Recorder(lambda a: ("bounced", "5.1.1", "host x said: 550 5.1.1 no such user "
                                                    "(in reply to RCPT TO command)")
                     if a == "b@dest.test" else ("sent", "2.0.0", "250 Ok"))
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    lines = h.log_lines()
    notice = [x for x in lines if "sender non-delivery notification" in x]
    assert len(notice) == 1
    m = re.fullmatch(rf"postier/bounce: {qid}: sender non-delivery notification: ([0-9A-F]+)",
                     notice[0])
    assert m
    new = m.group(1)
    # the notice went through the same queue: from=<>, delivered to the sender
    assert f"postier/qmgr: {new}: from=<>, size=" in "\n".join(lines)
    assert any(x.startswith(f"postier/smtp: {new}: to=<a@sender.test>") for x in lines)
    assert f"postier/qmgr: {qid}: removed" in lines
    # the notice is a multipart/report with Postfix's shape
    req = [r for r in agent.requests if r.queue_id == new][0]
    assert req.sender == ""


def test_no_bounce_for_null_sender(tmp_path):
    agent = Recorder(lambda a: ("bounced", "5.1.1", "nope"))
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    assert "notification" not in h.log()
    assert f"postier/qmgr: {qid}: removed" in h.log_lines(qid)
    assert len(agent.requests) == 1


def test_soft_bounce_defers_instead(tmp_path):
    agent = Recorder(lambda a: ("bounced", "5.1.1", "host x said: 550 5.1.1 nope "
                                                    "(in reply to RCPT TO command)"))
    h = Harness(str(tmp_path), "soft_bounce = yes\n", agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid])
        await h.stop()
        return qid
    qid = run(go())
    (line,) = [x for x in h.log_lines(qid) if "to=<" in x]
    assert "dsn=4.1.1, status=deferred (host x said: 550 5.1.1 nope" in line
    assert "notification" not in h.log()


def test_expired_message_is_returned_to_sender(tmp_path):
    agent = Recorder(lambda a: ("deferred", "4.4.1", "connect to x[192.0.2.1]:25: "
                                                     "Connection refused")
                     if a == "b@dest.test" else ("sent", "2.0.0", "250 Ok"))
    h = Harness(str(tmp_path), "maximal_queue_lifetime = 1h\n", agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"], arrival=time.time() - 7200)
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    lines = h.log_lines()
    assert f"postier/qmgr: {qid}: from=<a@sender.test>, status=expired, returned to sender" in lines
    assert any(f"{qid}: sender non-delivery notification: " in x for x in lines)
    assert f"postier/qmgr: {qid}: removed" in lines
    assert h.files("deferred") == []
    notice = [r for r in agent.requests if r.sender == ""][0]
    assert notice.recipients[0].address == "a@sender.test"


def test_bounce_queue_lifetime_for_null_sender(tmp_path):
    agent = Recorder(lambda a: ("deferred", "4.4.1", "connect to x[192.0.2.1]:25: refused"))
    h = Harness(str(tmp_path), "maximal_queue_lifetime = 5d\nbounce_queue_lifetime = 1h\n"
                               "notify_classes = resource, software\n", agents={"smtp": agent})

    async def go():
        await h.start()
        a = h.queue_message("", ["b@dest.test"], arrival=time.time() - 7200)
        b = h.queue_message("x@sender.test", ["b@dest.test"], arrival=time.time() - 7200)
        h.qm.on_queued(a)
        h.qm.on_queued(b)
        assert await h.idle()
        await h.stop()
        return a, b
    a, b = run(go())
    lines = h.log_lines()
    assert f"postier/qmgr: {a}: from=<>, status=expired, returned to sender" in lines
    assert f"postier/qmgr: {a}: removed" in lines        # nothing to return it to
    assert h.files("deferred") == [b]                     # 5d lifetime for a real sender


def test_delay_warning_sent_once(tmp_path):
    agent = Recorder(lambda a: ("deferred", "4.4.1", "connect to x[192.0.2.1]:25: refused")
                     if a == "b@dest.test" else ("sent", "2.0.0", "250 Ok"))
    h = Harness(str(tmp_path), "delay_warning_time = 1h\nminimal_backoff_time = 1h\n"
                               "maximal_backoff_time = 2h\nqueue_run_delay = 1h\n",
                agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"], arrival=time.time() - 4000)
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid] and not h.qm.active)
        assert await h.idle()
        env, _ = read_envelope(os.path.join(h.qdir, "deferred", qid))
        assert env.warned
        # second pass (flush): no second warning
        loop = __import__("asyncio").get_running_loop()
        assert await loop.run_in_executor(None, control.qmgr_flush, h.qdir)
        assert await h.wait(lambda: sum("(queue active)" in x for x in h.log_lines(qid)) == 2)
        assert await h.wait(lambda: h.files("deferred") == [qid] and not h.qm.active)
        await h.stop()
        return qid
    qid = run(go())
    warnings = [x for x in h.log_lines(qid) if "delay notification" in x]
    assert len(warnings) == 1 and "postier/bounce" in warnings[0]


@pytest.mark.slow
def test_hold_verdict_moves_to_hold_and_hold_is_never_scanned(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"], hold_reason="header check")
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("hold") == [qid])
        other = h.queue_message("a@sender.test", ["c@dest.test"], queue="hold")
        h.qm.trigger("WADI")
        await h.idle()
        await h.wait(lambda: False, 1.2)        # a periodic scan passes too
        await h.stop()
        return qid, other
    qid, other = run(go())
    assert sorted(h.files("hold")) == sorted([qid, other])
    assert agent.requests == []
    env, _ = read_envelope(os.path.join(h.qdir, "hold", qid))
    assert env.hold_reason == ""     # so that a release delivers it


def test_corrupt_file_goes_to_corrupt_queue(tmp_path):
    h = Harness(str(tmp_path))
    os.makedirs(os.path.join(h.qdir, "incoming"), exist_ok=True)
    bad = "0000000000000ABC"
    with open(os.path.join(h.qdir, "incoming", bad), "wb") as f:
        f.write(b"not a queue file at all")
    good = h.queue_message("a@sender.test", ["b@dest.test"])

    async def go():
        await h.start()               # the start-up scan finds both
        assert await h.idle()
        await h.stop()
    run(go())
    assert h.files("corrupt") == [bad]
    log = h.log()
    assert f'warning: saving corrupt file "{bad}" from queue "active" to queue "corrupt"' in log
    assert "postier/qmgr[" in log and f"{good}: removed" in log


def test_recovery_moves_active_back_and_delivers(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), agents={"smtp": agent})
    qid = h.queue_message("a@sender.test", ["b@dest.test"], queue="active")
    os.makedirs(os.path.join(h.qdir, "incoming"), exist_ok=True)
    with open(os.path.join(h.qdir, "incoming", ".ABCDEF.tmp"), "wb") as f:
        f.write(b"half a message")

    async def go():
        await h.start()
        assert await h.idle()
        await h.stop()
    run(go())
    assert agent.delivered == ["b@dest.test"]
    assert h.files("active") == []
    assert not os.path.exists(os.path.join(h.qdir, "incoming", ".ABCDEF.tmp"))
    assert f"{qid}: requeued from active after restart" in h.log()


def test_local_recipient_without_local_agent_is_deferred(tmp_path):
    h = Harness(str(tmp_path))

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["user@mx.example.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid])
        await h.stop()
        return qid
    qid = run(go())
    (line,) = [x for x in h.log_lines(qid) if "to=<" in x]
    assert line.endswith("relay=none, delay=0, delays=0/0/0/0, dsn=4.3.0, "
                         "status=deferred (mail transport unavailable)") or \
        re.search(r"relay=none, delay=[\d.]+, delays=[\d.]+/[\d.]+/0/0, dsn=4\.3\.0, "
                  r"status=deferred \(mail transport unavailable\)$", line), line


def test_error_transport_from_transport_maps_bounces(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), "transport_maps = inline:{ {gone.test=error:5.1.1 No such "
                               "user here} }\n", agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["u@gone.test"])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    (line,) = [x for x in h.log_lines(qid) if "to=<u@gone.test" in x]
    assert line.startswith(f"postier/error: {qid}: to=<u@gone.test>, relay=none, ")
    assert line.endswith("dsn=5.1.1, status=bounced (No such user here)")


def test_double_bounce_local_recipient_is_discarded(tmp_path):
    h = Harness(str(tmp_path))

    async def go():
        await h.start()
        qid = h.queue_message("", ["double-bounce@mx.example.test"])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    (line,) = [x for x in h.log_lines(qid) if "to=<" in x]
    assert line.startswith("postier/qmgr: ")
    assert line.endswith("dsn=2.0.0, status=sent (undeliverable postmaster notification "
                         "discarded)")


def test_recipient_limit_splits_requests(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), "smtp_destination_recipient_limit = 3\n", agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", [f"u{i}@dest.test" for i in range(7)])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
    run(go())
    assert sorted(len(r.recipients) for r in agent.requests) == [1, 3, 3]
    assert sorted(agent.delivered) == sorted(f"u{i}@dest.test" for i in range(7))


def test_destination_concurrency_starts_at_initial_window(tmp_path):
    agent = Recorder(delay=0.2)
    h = Harness(str(tmp_path), "initial_destination_concurrency = 2\n"
                               "default_destination_concurrency_limit = 4\n",
                agents={"smtp": agent})

    async def go():
        await h.start()
        for i in range(12):
            h.qm.on_queued(h.queue_message("a@sender.test", [f"u{i}@dest.test"]))
        assert await h.idle(10)
        await h.stop()
    run(go())
    assert len(agent.requests) == 12
    # never more than the destination limit; more than the start window once it grew
    assert 2 < agent.max_active <= 4


def test_dead_destination_defers_the_rest(tmp_path):
    agent = Recorder(lambda a: ("deferred", "4.4.1",
                                "connect to sink.test[127.0.0.1]:2525: Connection refused"),
                     delay=0.05)
    h = Harness(str(tmp_path), "initial_destination_concurrency = 1\n", agents={"smtp": agent})

    async def go():
        await h.start()
        for i in range(5):
            h.qm.on_queued(h.queue_message("a@sender.test", [f"u{i}@dest.test"]))
        assert await h.idle()
        await h.stop()
    run(go())
    # the first failure killed the destination (window 1, failed cohort limit 1)
    assert len(agent.requests) == 1
    suspended = [x for x in h.log_lines() if "delivery temporarily suspended: connect to "
                 "sink.test[127.0.0.1]:2525: Connection refused" in x]
    assert len(suspended) == 4
    assert all(x.startswith("postier/error: ") and "relay=none" in x for x in suspended)
    assert len(h.files("deferred")) == 5


def test_flush_retries_deferred_mail_now(tmp_path):
    answers = {"b@dest.test": ("deferred", "4.3.0", "host x said: 450 later (in reply to "
                                                    "RCPT TO command)")}
    agent = Recorder(lambda a: answers[a])
    h = Harness(str(tmp_path), "minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\n"
                               "queue_run_delay = 1h\n", agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid] and not h.qm.active)
        assert os.stat(os.path.join(h.qdir, "deferred", qid)).st_mtime > time.time() + 3000
        answers["b@dest.test"] = ("sent", "2.0.0", "250 Ok")
        loop = __import__("asyncio").get_running_loop()
        assert await loop.run_in_executor(None, control.qmgr_running, h.qdir)
        assert await loop.run_in_executor(None, control.qmgr_flush, h.qdir)
        assert await h.wait(lambda: h.files("deferred") == [] and not h.qm.active)
        await h.stop()
    run(go())
    assert len(agent.requests) == 2
    assert control.qmgr_running(h.qdir) is False
    assert control.qmgr_flush(h.qdir) is False


def test_admin_hold_of_an_active_message_waits_for_the_delivery(tmp_path):
    agent = Recorder(lambda a: ("sent", "2.0.0", "250 Ok"), delay=0.3)
    h = Harness(str(tmp_path), "smtp_destination_recipient_limit = 1\n"
                               "smtp_destination_concurrency_limit = 1\n"
                               "initial_destination_concurrency = 1\n",
                agents={"smtp": agent})

    async def go():
        import asyncio
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test", "b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: agent.active == 1)
        loop = asyncio.get_running_loop()
        where = await loop.run_in_executor(None, control.qmgr_request, h.qdir, "hold", qid)
        assert where == "hold"
        assert await loop.run_in_executor(None, control.qmgr_request, h.qdir, "hold",
                                          "NOSUCHID") is None
        await h.stop()
        return qid
    qid = run(go())
    assert h.files("hold") == [qid]
    env, _ = read_envelope(os.path.join(h.qdir, "hold", qid))
    # the delivery in progress finished and is recorded; the other one never started
    assert [r.done for r in env.recipients] == [True, False]
    assert len(agent.requests) == 1


def test_admin_delete_and_requeue(tmp_path):
    agent = Recorder(lambda a: ("sent", "2.0.0", "250 Ok"), delay=0.3)
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        import asyncio
        await h.start()
        a = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(a)
        assert await h.wait(lambda: agent.active == 1)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, control.qmgr_request, h.qdir, "delete", a) == ""
        assert not os.path.exists(os.path.join(h.qdir, "active", a))
        await h.stop()
    run(go())


def test_control_rejects_bad_requests(tmp_path):
    h = Harness(str(tmp_path))

    async def go():
        import asyncio
        await h.start()
        loop = asyncio.get_running_loop()
        ans = await loop.run_in_executor(None, control._ask, h.qdir, "frobnicate", 5)
        assert ans.startswith("error unknown request")
        ans = await loop.run_in_executor(None, control._ask, h.qdir, "trigger Q", 5)
        assert ans == "error unknown trigger code in Q"
        assert await loop.run_in_executor(None, control.qmgr_trigger, h.qdir, "WI")
        await h.stop()
    run(go())
    with pytest.raises(ValueError):
        control.qmgr_trigger(h.qdir, "Z")


def test_redirect_and_content_filter(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), agents={"smtp": agent, "lmtp": agent})

    async def go():
        await h.start()
        a = h.queue_message("a@sender.test", ["b@dest.test", "c@dest.test"],
                            redirect="boss@other.test")
        b = h.queue_message("a@sender.test", ["d@dest.test"],
                            content_filter="lmtp:[127.0.0.1]:10024")
        h.qm.on_queued(a)
        h.qm.on_queued(b)
        assert await h.idle()
        await h.stop()
    run(go())
    by_hop = {(r.transport, r.nexthop): [x.address for x in r.recipients] for r in agent.requests}
    assert by_hop == {("smtp", "[127.0.0.1]:2525"): ["boss@other.test"],
                      ("lmtp", "[127.0.0.1]:10024"): ["d@dest.test"]}


def test_success_notification_for_notify_success(tmp_path):
    agent = Recorder()
    h = Harness(str(tmp_path), agents={"smtp": agent})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", [Recipient(address="b@dest.test",
                                                          dsn_notify="SUCCESS")])
        h.qm.on_queued(qid)
        assert await h.idle()
        await h.stop()
        return qid
    qid = run(go())
    assert any(f"{qid}: sender delivery status notification: " in x for x in h.log_lines())


def test_agent_crash_defers_and_daemon_survives(tmp_path):
    async def boom(req):
        raise RuntimeError("agent exploded")
    h = Harness(str(tmp_path), agents={"smtp": boom})

    async def go():
        await h.start()
        qid = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid])
        await h.stop()
        return qid
    run(go())
    assert "status=deferred (unknown mail transport error)" in h.log()
    assert "delivery agent failure: RuntimeError('agent exploded')" in h.log()


@pytest.mark.slow
def test_destination_rate_delay_spaces_deliveries(tmp_path):
    starts: list[float] = []

    class Timed(Recorder):
        async def __call__(self, req):
            starts.append(time.monotonic())
            return await super().__call__(req)
    h = Harness(str(tmp_path), "smtp_destination_rate_delay = 1s\n",
                agents={"smtp": Timed()})

    async def go():
        await h.start()
        for i in range(3):       # one destination ([127.0.0.1]:2525), three messages
            h.qm.on_queued(h.queue_message("a@sender.test", [f"u{i}@dest.test"]))
        assert await h.idle()
        await h.stop()
    run(go())
    assert len(starts) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(g >= 0.99 for g in gaps), gaps


def test_unexpected_error_parks_the_message_in_deferred(tmp_path):
    h = Harness(str(tmp_path))

    async def go():
        await h.start()

        def broken(address, sender=""):
            raise RuntimeError("resolver bug")
        h.qm.resolver.resolve = broken
        qid = h.queue_message("a@sender.test", ["b@dest.test"])
        h.qm.on_queued(qid)
        assert await h.wait(lambda: h.files("deferred") == [qid])
        assert qid not in h.qm.active
        await h.stop()
        return qid
    qid = run(go())
    assert f"warning: {qid}: cannot process queue file: RuntimeError('resolver bug')" in h.log()
    assert h.files("active") == []


def test_bad_transport_specific_value_falls_back_to_default(tmp_path):
    from postier.qmgr.scheduler import TransportSettings
    h = Harness(str(tmp_path), "smtp_destination_concurrency_limit = lots\n")
    ts = TransportSettings.from_config(h.cfg, "smtp", "smtp", 100)
    assert ts.concurrency_limit == 20
    assert "bad numerical configuration: smtp_destination_concurrency_limit = lots" in h.log()


def test_second_queue_manager_on_the_same_queue_is_refused(tmp_path):
    from postier.errors import PostierError
    from postier.qmgr.manager import QueueManager
    h = Harness(str(tmp_path))

    async def go():
        await h.start()
        other = QueueManager(h.cfg, agents={})
        with pytest.raises(PostierError, match="already running"):
            await other.start()
        await h.stop()
    run(go())
