"""Batched spam scans: CompiledRules.run_many / SpamScanner.scan_many run a
batch of messages phase by phase (Run.steps) and give every message what
run() / scan() give it alone; a message whose run raises gets its own
exception and the others go on.  postier.content.scan.SpamBatcher runs the
scans that wait for each other in one process as one batch, up to its limit,
and hands each caller its own verdict or exception, in one scan thread of
its own (a forked child starts its own)."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from postier.content import scan as S
from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")   # tools/sa_reference's

RULES = r"""
header   H_SUBJ     Subject =~ /hello/i
score    H_SUBJ     1.5
header   H_FROM     From =~ /example\.com/
score    H_FROM     0.3
body     B_MONEY    /money/i
score    B_MONEY    2.0
body     B_MANY     /\bsend\b/i
tflags   B_MANY     multiple maxhits=5
score    B_MANY     0.25
uri      U_EX       /example\.com/
score    U_EX       0.5
rawbody  R_HTML     /<b>/
score    R_HTML     0.1
full     F_ALL      /Received/
score    F_ALL      0.1
header   E_MISS     eval:check_for_missing_to_header()
score    E_MISS     0.2
meta     M_BOTH     H_SUBJ && B_MONEY
score    M_BOTH     1.0
"""

MULTIPART = (
    b"Received: from a.example.net (a.example.net [192.0.2.1]) by mx.example.org "
    b"with ESMTP id ABC123; Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"From: x@example.com\nSubject: hello there\nMessage-ID: <1@example.com>\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"BB\"\n\n"
    b"--BB\nContent-Type: text/plain\n\nsend money, send it to http://www.example.com/x now\n"
    b"--BB\nContent-Type: text/html\n\n<html><body><b>money</b> "
    b"<a href=\"http://other.example.org/y\">click</a></body></html>\n--BB--\n")

MESSAGES = [
    MULTIPART,
    b"From: a@b.example\nTo: c@d.example\nSubject: nothing\n\nplain text\n",
    b"",                                                   # empty
    b"Subject: hello\n\nmoney\x00money\n",                 # a NUL in the body
    b"Content-Type: multipart/mixed; boundary=X\n\n--X\nbroken",     # broken MIME
    b"Subject: hello\n\n" + b"send " * 50000 + b"\n",      # a huge line
    b"\xff\xfe\x80 not a header\n\n\xc3\x28 money \xa0\n",  # not UTF-8 at all
    MULTIPART.replace(b"hello", b"bye"),
]


def _scanner() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _alone(sc: SpamScanner, data: bytes) -> tuple:
    r = sc.compiled.run(data)
    return dict(r.values), r.hits, r.score


def test_run_many_gives_each_message_what_run_gives_it():
    sc = _scanner()
    want = [_alone(sc, m) for m in MESSAGES]
    assert want[0][0]["M_BOTH"] == 1 and want[0][0]["B_MANY"] == 2    # the rules do hit
    for order in (MESSAGES, MESSAGES[::-1]):
        got = sc.compiled.run_many(order)
        exp = want if order is MESSAGES else want[::-1]
        assert [(dict(r.values), r.hits, r.score) for r in got] == exp
    for size in (1, 2, 3, 5):
        for i in range(0, len(MESSAGES), size):
            got = sc.compiled.run_many(MESSAGES[i:i + size])
            assert [(dict(r.values), r.hits, r.score) for r in got] == want[i:i + size]
    assert sc.compiled.run_many([]) == []


def test_scan_many_verdicts_equal_scan():
    sc = _scanner()
    assert sc.scan_many(MESSAGES) == [sc.scan(m) for m in MESSAGES]


def test_a_failing_message_gets_its_own_exception(monkeypatch):
    sc = _scanner()
    want = [sc.scan(m) for m in MESSAGES]
    real = E.Run._mimeheaders

    def boom(self):
        if b"bye" in self.data:
            raise RuntimeError("a bug in one phase")
        return real(self)

    monkeypatch.setattr(E.Run, "_mimeheaders", boom)
    got = sc.scan_many(MESSAGES)
    assert isinstance(got[-1], RuntimeError) and str(got[-1]) == "a bug in one phase"
    assert got[:-1] == want[:-1]
    # and a message that fails before its first phase (Run() itself)
    real_init = E.Run.__init__

    def bad_init(self, cr, data):
        if data == b"":
            raise ValueError("cannot parse")
        real_init(self, cr, data)

    monkeypatch.setattr(E.Run, "__init__", bad_init)
    got = sc.scan_many(MESSAGES)
    assert isinstance(got[2], ValueError) and isinstance(got[-1], RuntimeError)
    assert [g for k, g in enumerate(got) if k not in (2, len(got) - 1)] == \
        [w for k, w in enumerate(want) if k not in (2, len(want) - 1)]


def test_a_scan_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    sc = _scanner()
    seen = []
    real = E.Run._mimeheaders

    def spy(self):
        seen.append(gc.isenabled())
        if b"bye" in self.data:
            raise RuntimeError("a bug in one phase")
        return real(self)

    monkeypatch.setattr(E.Run, "_mimeheaders", spy)
    assert gc.isenabled()
    sc.scan(MESSAGES[0])
    got = sc.scan_many(MESSAGES)
    assert isinstance(got[-1], RuntimeError)
    with pytest.raises(RuntimeError):
        sc.scan(MESSAGES[-1])
    assert seen and not any(seen)       # paused inside every scan
    assert gc.isenabled()               # and back on after each, a failing one too
    gc.disable()
    try:
        sc.scan(MESSAGES[0])
        assert not gc.isenabled()       # a caller's own pause is left alone
    finally:
        gc.enable()


def test_a_batch_leaves_no_young_collection_behind():
    """A batch's objects are freed before the collector is back on: the
    allocation counts they ran up (~1800 live containers for these 32
    messages, over the young generation's threshold of 700) must not trigger
    a young collection that walks them right after the scan, which cost what
    the pause saved.  (scan() frees its run the same way.)"""
    sc = _scanner()
    batch = MESSAGES * 4
    want = sc.scan_many(batch)            # lazily built matchers, memos
    seen = []

    def cb(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(cb)
    try:
        gc.collect()
        seen.clear()
        got = sc.scan_many(batch)
        assert seen == [], seen
    finally:
        gc.callbacks.remove(cb)
    assert got == want


class _HeldFirst:
    """The real scanner, whose first scan() waits for `release`: the scans
    that arrive meanwhile queue up behind it, deterministically."""

    def __init__(self, sc: SpamScanner):
        self.sc = sc
        self.release = threading.Event()
        self.calls: list[tuple[str, int]] = []

        self.threads: set[int] = set()

    def scan(self, data):
        self.calls.append(("scan", 1))
        self.threads.add(threading.get_ident())
        if len(self.calls) == 1:
            assert self.release.wait(30)
        return self.sc.scan(data)

    def scan_many(self, datas):
        self.calls.append(("scan_many", len(datas)))
        self.threads.add(threading.get_ident())
        return self.sc.scan_many(datas)


def _run_threads(batcher, datas):
    results: dict[int, object] = {}

    def one(k):
        try:
            results[k] = batcher.scan(datas[k])
        except Exception as e:  # noqa: BLE001 - checked by the caller
            results[k] = e
    threads = [threading.Thread(target=one, args=(0,))]
    threads[0].start()
    deadline = time.monotonic() + 30
    while not batcher.engine.calls and time.monotonic() < deadline:
        time.sleep(0.005)
    for k in range(1, len(datas)):
        threads.append(threading.Thread(target=one, args=(k,)))
        threads[-1].start()
    while len(batcher._queue) < len(datas) - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    batcher.engine.release.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a scan hangs"
    return [results[k] for k in range(len(datas))]


def test_batcher_runs_waiting_scans_as_batches_up_to_its_limit():
    sc = _scanner()
    datas = [MESSAGES[k % len(MESSAGES)] for k in range(10)]
    b = S.SpamBatcher(_HeldFirst(sc), limit=4)
    got = _run_threads(b, datas)
    assert got == [sc.scan(d) for d in datas]
    assert b.batches == {1: 2, 4: 2}          # the held one, 4 + 4, the last one
    assert sorted(b.engine.calls) == [("scan", 1), ("scan", 1), ("scan_many", 4),
                                      ("scan_many", 4)]
    assert not b._queue
    # every batch ran in the batcher's one scan thread, none in a caller's
    [tid] = b.engine.threads
    assert b._thread is not None and b._thread.ident == tid and b._thread.name == "spam-scan"


def test_a_cancelled_scan_is_skipped_and_the_scan_thread_goes_on():
    sc = _scanner()
    b = S.SpamBatcher(_HeldFirst(sc), limit=8)
    first = b.submit(MESSAGES[0])
    deadline = time.monotonic() + 30
    while not b.engine.calls and time.monotonic() < deadline:
        time.sleep(0.005)
    gone, kept = b.submit(MESSAGES[1]), b.submit(MESSAGES[3])
    assert gone.cancel()                # its session went away while it waited
    b.engine.release.set()
    assert first.result(30) == sc.scan(MESSAGES[0])
    assert kept.result(30) == sc.scan(MESSAGES[3])
    assert b.engine.calls == [("scan", 1), ("scan", 1)] and b.batches == {1: 2}
    assert b.scan(MESSAGES[1]) == sc.scan(MESSAGES[1])     # and it serves on


def test_a_forked_child_scans_in_a_thread_of_its_own():
    """smtpd forks its workers after loading the rules: a batcher whose scan
    thread ran in the parent must start a new one in the child."""
    import warnings

    sc = _scanner()
    b = S.SpamBatcher(sc, limit=8)
    want = b.scan(MESSAGES[0])
    assert b._thread is not None and b._thread.is_alive()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork with threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if b.scan(MESSAGES[0]) == want else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the child's scan hangs")
    assert os.waitstatus_to_exitcode(status) == 0


def test_batcher_hands_each_caller_its_own_exception(monkeypatch):
    sc = _scanner()
    real = E.Run._full

    def boom(self):
        if b"bye" in self.data:
            raise RuntimeError("only this message")
        return real(self)

    monkeypatch.setattr(E.Run, "_full", boom)
    datas = [MESSAGES[0], MESSAGES[1], MESSAGES[-1], MESSAGES[3]]
    b = S.SpamBatcher(_HeldFirst(sc), limit=8)
    got = _run_threads(b, datas)
    assert isinstance(got[2], RuntimeError) and str(got[2]) == "only this message"
    assert [got[0], got[1], got[3]] == [sc.scan(d) for d in (MESSAGES[0], MESSAGES[1], MESSAGES[3])]
    assert b.batches == {1: 1, 3: 1}


def test_batch_limit_one_scans_one_at_a_time():
    sc = _scanner()
    datas = MESSAGES[:5]
    b = S.SpamBatcher(_HeldFirst(sc), limit=1)
    assert _run_threads(b, datas) == [sc.scan(d) for d in datas]
    assert b.batches == {1: 5} and {c for c, _n in b.engine.calls} == {"scan"}


@pytest.mark.slow
def test_scan_many_equals_scan_on_corpus_messages_with_spamassassin_rules(spam_rules_cache):
    corpus = CORPUS
    if not (os.path.isdir("/usr/share/spamassassin") and os.path.exists(f"{corpus}/labels.tsv")):
        pytest.skip("SpamAssassin's rules or the corpus are absent")
    with open(f"{corpus}/labels.tsv") as f:
        rows = f.read().splitlines()[1:]
    paths = [r.split("\t")[0] for r in rows[::113]]
    datas = []
    for p in paths:
        with open(os.path.join(corpus, p), "rb") as f:
            datas.append(f.read())
    sc = SpamScanner(directories=["/usr/share/spamassassin", "/etc/spamassassin"],
                     cache_dir=spam_rules_cache)
    want = [sc.scan(d) for d in datas]
    assert any(v.is_spam for v in want) and not all(v.is_spam for v in want)
    for size in (len(datas), 7, 2):
        got = []
        for i in range(0, len(datas), size):
            got += sc.scan_many(datas[i:i + size])
        assert got == want
