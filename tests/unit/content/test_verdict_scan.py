"""postier.content.scan: the end-of-DATA entry point (without clamd: banned,
bad header, a stand-in spam engine), header edits of an uncommitted queue
file, and the smtpd hook's defaults."""

from __future__ import annotations

import asyncio
import base64
import os
from types import SimpleNamespace

import pytest

import postier.content.scan as scan_mod
from postier.config import Config
from postier.content.scan import (
    content_scanner,
    edit_head,
    edit_queue_file,
    header_problems,
    scan,
)
from postier.errors import ConfigError
from postier.queue.file import Envelope, QueueWriter, Recipient, read_content
from postier.queue.postcat import format_queue_file

BASE = "mydomain = example.test\nmyhostname = mx.example.test\n"
GOOD_HEAD = (b"From: a@example.org\nTo: b@example.test\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
             b"Subject: hello\n")


def env(*rcpts: str, sender: str = "s@example.org", qid: str = "QID") -> Envelope:
    return Envelope(queue_id=qid, arrival=0.0, sender=sender,
                    recipients=[Recipient(r) for r in rcpts or ("r@example.test",)],
                    client_address="192.0.2.1")


def cfg(extra: str) -> Config:
    return Config.from_text(BASE + extra)


def attachment_message(name: str) -> bytes:
    return (GOOD_HEAD + b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
            b"--B\nContent-Type: text/plain\n\nhi\n--B\nContent-Type: application/octet-stream\n"
            b'Content-Disposition: attachment; filename="' + name.encode() + b'"\n'
            b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(b"MZ") + b"--B--\n")


# ----------------------------------------------------------------------------- defaults


def test_no_content_scan_by_default():
    assert content_scanner(Config.from_text("")) is None
    assert content_scanner(cfg("banned_filename_rules = exe")) is not None
    assert content_scanner(cfg("final_bad_header_destiny = reject")) is not None


def test_bad_scanner_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="av_scanners"):
        content_scanner(cfg("av_scanners = clamd:inet:nohost"))


# ----------------------------------------------------------------------------- scan()


def test_scan_banned_reject_and_quarantine(tmp_path):
    c = cfg(f"banned_filename_rules = exe\nquarantine_directory = {tmp_path}/q")
    v = asyncio.run(scan(attachment_message("invoice.pdf.exe"), env(), c))
    assert v.action == "reject"
    assert v.reply.line() == "554 5.7.0 Reject, id=QID - BANNED: invoice.pdf.exe"
    assert v.quarantine == f"{tmp_path}/q/banned-QID"
    with open(v.quarantine, "rb") as f:
        assert b'filename="invoice.pdf.exe"' in f.read()
    v = asyncio.run(scan(attachment_message("report.pdf"), env(), c))
    assert v.action == "pass" and not v.quarantine and v.headers == []


def test_scan_bypass_skips_the_check(tmp_path):
    c = cfg("banned_filename_rules = exe\ncontent_bypass_maps = inline:{example.test=banned}")
    v = asyncio.run(scan(attachment_message("x.exe"), env("r@example.test"), c))
    assert v.action == "pass" and v.findings.banned == []     # not even looked at


def test_scan_bad_header():
    c = cfg("final_bad_header_destiny = reject")
    msg = (b"From: a@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
           b"Subject: caf\xc3\xa9\n\nbody\n")
    v = asyncio.run(scan(msg, env(), c))
    assert v.action == "reject"
    assert v.reply.text == ("Reject, id=QID - BAD HEADER SECTION, Non-encoded 8-bit data "
                            "(char C3 hex): Subject: caf??")
    ok = Envelope(queue_id="Q", arrival=0, sender="", recipients=[Recipient("r@x.test")],
                  smtputf8=True)
    assert asyncio.run(scan(msg, ok, c)).action == "pass"


def test_scan_with_a_spam_engine(monkeypatch):
    class Engine:
        def __init__(self) -> None:
            self.seen: list[bytes] = []

        def scan(self, data: bytes):
            self.seen.append(data)
            return SimpleNamespace(score=8.25, hits={"BAYES_99": 3.5, "URIBL_BLACK": 4.75},
                                   required=5.0)
    engine = Engine()
    monkeypatch.setattr(scan_mod, "_spam_engine", lambda cfg: engine)
    c = cfg("spam_checks = yes")
    v = asyncio.run(scan(GOOD_HEAD + b"\nbuy now\n", env(), c))
    assert engine.seen == [GOOD_HEAD + b"\nbuy now\n"]
    assert v.action == "pass" and v.subject_tag == "***SPAM***"
    assert v.headers == ["X-Spam-Flag: YES", "X-Spam-Score: 8.25",
                         "X-Spam-Level: ********",
                         "X-Spam-Status: Yes, score=8.25 tagged_above=2 required=6.31\n"
                         "\ttests=[BAYES_99=3.5, URIBL_BLACK=4.75]"]
    v = asyncio.run(scan(GOOD_HEAD + b"\nbuy now\n", env(), cfg("spam_checks = yes\n"
                                                                  "final_spam_destiny = discard")))
    assert v.action == "discard" and v.reply.code == 250


def test_waiting_spam_scans_hold_no_executor_thread(monkeypatch):
    """Regression: every session's spam scan used to wait for its batch in a
    thread of the loop's default executor (up to 6 threads, each with its
    own stack and Hyperscan scratch: the smtpd worker of the 256M lab run
    aborted with bad_alloc under load).  Now they queue for the batcher's
    one scan thread, and the executor stays free while they wait."""
    import threading

    release = threading.Event()

    class Engine:
        def __init__(self) -> None:
            self.threads: set[int] = set()
            self.scanned = 0

        def scan(self, data: bytes):
            self.threads.add(threading.get_ident())
            assert release.wait(30)
            self.scanned += 1
            return SimpleNamespace(score=0.5, hits={"X": 0.5}, required=5.0)

        def scan_many(self, datas):
            return [self.scan(d) for d in datas]

    engine = Engine()
    monkeypatch.setattr(scan_mod, "_spam_engine", lambda cfg: engine)
    c = cfg("spam_checks = yes")

    async def main():
        loop = asyncio.get_running_loop()
        sessions = [asyncio.ensure_future(scan(GOOD_HEAD + b"\nmail %d\n" % k, env(), c))
                    for k in range(20)]
        # more sessions than the default executor has threads, all waiting ...
        await asyncio.sleep(0.5)
        assert not any(s.done() for s in sessions)
        # ... and the executor still runs other work at once
        assert await asyncio.wait_for(loop.run_in_executor(None, lambda: 42), 10) == 42
        release.set()
        return await asyncio.gather(*sessions)

    verdicts = asyncio.run(main())
    assert [v.action for v in verdicts] == ["pass"] * 20
    assert all(v.findings.spam.score == 0.5 for v in verdicts)
    assert engine.scanned == 20
    assert len(engine.threads) == 1 and threading.get_ident() not in engine.threads


def test_scan_without_the_spam_engine_passes(monkeypatch):
    monkeypatch.setattr(scan_mod, "_spam_engine", lambda cfg: None)
    v = asyncio.run(scan(GOOD_HEAD + b"\nx\n", env(), cfg("spam_checks = yes")))
    assert v.action == "pass" and v.findings.spam is None


def test_scan_defers_on_an_internal_error(monkeypatch):
    def boom(data, rules):
        raise RuntimeError("bug")
    monkeypatch.setattr(scan_mod, "check_message", boom)
    v = asyncio.run(scan(attachment_message("x.exe"), env(), cfg("banned_filename_rules = exe")))
    assert v.action == "defer" and v.reply.code == 451


# ----------------------------------------------------------------------------- bad header


def test_header_problems():
    assert header_problems(GOOD_HEAD + b"\nbody \xff\n") == []
    probs = header_problems(b"From: a\nFrom: b\nSubject: x\x07y\nX-Long: " + b"a" * 1000
                            + b"\nX-Fold: a\n \t \nDate: d\n\n")
    assert probs == [
        "Improper use of control character (char 07 hex): Subject: x?y",
        "Header line longer than 998 characters: X-Long: " + "a" * 49 + "...",
        "Improper folded header field made up entirely of whitespace (char 20 hex): X-Fold: a",
        'Duplicate header field: "From"',
    ]
    assert header_problems(b"Subject: x\n\n") == ['Missing required header field: "From"',
                                                  'Missing required header field: "Date"']
    assert header_problems(b"Message-ID: <a>\nMessage-ID: <b>\n" + GOOD_HEAD) == [
        'Duplicate header field: "Message-ID"']


# ----------------------------------------------------------------------------- queue file


def test_edit_head():
    head = (b"Received: from x\n\tby y\nX-Spam-Flag: YES\nX-Spam-Status: Yes,\n\tscore=9\n"
            b"Subject: offer\nFrom: a\n\nX-Spam-Flag: in the body\n")
    new, used = edit_head(head, ["X-Virus-Scanned: postier", "X-Spam-Flag: NO"],
                          ("x-spam-flag", "x-spam-status"), "***SPAM***")
    assert new == (b"X-Virus-Scanned: postier\nX-Spam-Flag: NO\nReceived: from x\n\tby y\n"
                   b"Subject: ***SPAM*** offer\nFrom: a\n")
    assert head[used:] == b"\nX-Spam-Flag: in the body\n"
    new, used = edit_head(b"From: a\n\nbody\n", [], (), "***SPAM***")
    assert new == b"Subject: ***SPAM***\nFrom: a\n"


def test_edit_queue_file_then_commit(tmp_path):
    d = str(tmp_path / "incoming")
    os.makedirs(d)
    w = QueueWriter(d)
    body = b"line %d\n" * 1
    content = (b"Received: from c.test\n\tby mx.example.test (Postfix) with ESMTP id X\n"
               + GOOD_HEAD + b"X-Spam-Score: 99\n\n" + b"".join(body % i for i in range(50000)))
    w.write(content)
    edit_queue_file(w, ["X-Virus-Scanned: postier at example.test", "X-Spam-Flag: NO"],
                    ("x-spam-score",), "")
    assert sorted(os.listdir(d)) == [f".{w.queue_id}.tmp"]       # the edit's temp file is gone
    path = w.commit(Envelope(queue_id=w.queue_id, arrival=0.0, sender="s@example.org",
                             recipients=[Recipient("r@example.test")]))
    stored = read_content(path)
    assert stored == (b"X-Virus-Scanned: postier at example.test\nX-Spam-Flag: NO\n"
                      + content.replace(b"X-Spam-Score: 99\n", b""))
    shown = format_queue_file(path, "incoming", envelope=False, header=True, body=False)
    assert shown.startswith("X-Virus-Scanned: postier at example.test\nX-Spam-Flag: NO\n"
                            "Received: from c.test\n")


def test_edit_queue_file_nothing_to_do(tmp_path):
    w = QueueWriter(str(tmp_path))
    w.write(b"From: a\n\nx\n")
    before = os.stat(w.tmp_path).st_ino
    edit_queue_file(w, [], (), "")
    edit_queue_file(w, [], ("x-spam-flag",), "")
    assert os.stat(w.tmp_path).st_ino == before and w.size == len(b"From: a\n\nx\n")
    w.abort()


# ----------------------------------------------------------------------------- postier filter


def test_filter_replies():
    from postier.cli.filter_cmd import MultiReply, split_hostport
    from postier.errors import PostierError, Reply
    m = MultiReply([Reply(554, "5.7.0", "Reject, id=Q - VIRUS: V"), Reply(250, "2.0.0", "Ok")])
    assert m.code == 250
    assert m.wire() == b"554 5.7.0 Reject, id=Q - VIRUS: V\r\n250 2.0.0 Ok\r\n"
    assert split_hostport("127.0.0.1:10024", "--listen") == ("127.0.0.1", 10024)
    assert split_hostport("[::1]:10025", "--reinject") == ("::1", 10025)
    for bad in ("127.0.0.1", "host:0", "[::1]10025", ":25"):
        with pytest.raises(PostierError, match="expected HOST:PORT"):
            split_hostport(bad, "--listen")


def test_filter_status_replies():
    from postier.cli.filter_cmd import FilterContent
    fc = FilterContent.__new__(FilterContent)
    fc.nexthop = "[127.0.0.1]:10025"
    sent = SimpleNamespace(status="sent", dsn="2.0.0", text="250 2.0.0 Ok: queued as X")
    soft = SimpleNamespace(status="deferred", dsn="4.4.1", text="connect to ...: refused")
    hard = SimpleNamespace(status="bounced", dsn="5.1.1", text="host said: 550 5.1.1 unknown")
    assert fc._status_reply("Q", sent).line() == (
        "250 2.0.0 Ok, id=Q, from MTA([127.0.0.1]:10025): 250 2.0.0 Ok: queued as X")
    assert fc._status_reply("Q", soft).line().startswith("451 4.4.1 Error in processing, id=Q")
    assert fc._status_reply("Q", hard).line().startswith("554 5.1.1 Rejected, id=Q")
