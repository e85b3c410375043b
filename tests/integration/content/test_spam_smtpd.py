"""Spam checks inside `postier run` (spam_checks = yes), over real SMTP.

The rule sets are small local SpamAssassin rule directories
(spam_rules_directories pointing to a temporary directory with one .cf
file that scores a token), so the scores do not depend on SpamAssassin's
release rules; one test runs the real rules of /usr/share/spamassassin
(Debian's spamassassin package) with GTUBE, with the Hyperscan cache in a
session-wide temporary directory.

Replies checked (amavisd-new's wording, postier.content.verdict):
  reject:  `554 5.7.0 Reject, id=QUEUEID - SPAM, score=N`
  discard: `250 2.7.0 Ok, discarded, id=QUEUEID - SPAM, score=N`
"""

from __future__ import annotations

import os
import re
import time

import pytest
from content_peers import PostierServer, plain, queue_cat, smtp_send

pytestmark = pytest.mark.slow

RULES = r"""
body     POSTIER_T_SPAMTOKEN  /\bxyzzyspam\b/
score    POSTIER_T_SPAMTOKEN  10
describe POSTIER_T_SPAMTOKEN  The spam token
body     POSTIER_T_TAGTOKEN   /\bplughtag\b/
score    POSTIER_T_TAGTOKEN   3
header   POSTIER_T_HDR        X-Bulk =~ /yes/
score    POSTIER_T_HDR        0.5
"""

SA_RULES = "/usr/share/spamassassin"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "50_postier_test.cf").write_text(RULES)
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    return str(d)


def spam_params(rules: str, **extra: str) -> dict[str, str]:
    return {"spam_checks": "yes", "spam_rules_directories": rules,
            "spam_rules_cache_directory": "@ROOT@/data/spamrules", **extra}


def queued(srv) -> list[str]:
    return [os.path.basename(p) for p in srv.incoming()]


def head_of(shown: str) -> str:
    """The message header as `postier queue cat` shows it."""
    return shown.split("*** MESSAGE CONTENTS", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]


def test_ham_tagged_and_spam_passed_with_subject_tag(start_postier, rules_dir):
    srv = start_postier(spam_params(rules_dir))
    # score 0: no spam headers at all (below spam_tag_level 2.0)
    _, r = smtp_send(srv.port, plain(b"just a normal note\n", subject="hello"))
    assert r.code == 250 and "queued as" in r.text
    qid = r.text.rsplit(" ", 1)[1]
    head = head_of(queue_cat(srv.etc, qid))
    assert "X-Spam" not in head and "\nSubject: hello\n" in head + "\n"
    # score 3: over spam_tag_level, under spam_tag2_level: headers, no subject tag
    _, r = smtp_send(srv.port, plain(b"a plughtag word\n", subject="hello")
                     .replace(b"Subject:", b"X-Spam-Status: Yes, forged\nSubject:"))
    assert r.code == 250
    qid = r.text.rsplit(" ", 1)[1]
    head = head_of(queue_cat(srv.etc, qid))
    assert head.startswith("X-Spam-Flag: NO\nX-Spam-Score: 3\nX-Spam-Level: ***\n"
                           "X-Spam-Status: No, score=3 tagged_above=2 required=6.31\n"
                           "\ttests=[POSTIER_T_TAGTOKEN=3]\nReceived: from client.test")
    assert "forged" not in head                  # incoming X-Spam-* headers removed
    assert "\nSubject: hello" in head
    # score 10.5: over spam_tag2_level: X-Spam-Flag: YES and the subject tag;
    # final_spam_destiny = pass (the default) delivers it
    _, r = smtp_send(srv.port, plain(b"xyzzyspam\n", subject="offer")
                     .replace(b"Subject:", b"X-Bulk: yes\nSubject:"))
    assert r.code == 250
    qid = r.text.rsplit(" ", 1)[1]
    head = head_of(queue_cat(srv.etc, qid))
    assert head.startswith("X-Spam-Flag: YES\nX-Spam-Score: 10.5\nX-Spam-Level: **********\n"
                           "X-Spam-Status: Yes, score=10.5 tagged_above=2 required=6.31\n"
                           "\ttests=[POSTIER_T_HDR=0.5, POSTIER_T_SPAMTOKEN=10]\n")
    assert "\nSubject: ***SPAM*** offer" in head
    assert len(queued(srv)) == 3


def test_reject_destiny_answers_554_at_end_of_data(start_postier, rules_dir):
    srv = start_postier(spam_params(rules_dir, final_spam_destiny="reject",
                                    spam_kill_level="5"))
    _, r = smtp_send(srv.port, plain(b"xyzzyspam\n"))
    assert r.code == 554
    m = re.fullmatch(r"554 5\.7\.0 Reject, id=(\w+) - SPAM, score=10", r.text)
    assert m, r.text
    assert queued(srv) == []
    log = srv.maillog()
    assert (f"{m.group(1)}: reject: END-OF-MESSAGE from localhost[127.0.0.1]: "
            f"554 5.7.0 Reject, id={m.group(1)} - SPAM, score=10") in log
    # under spam_kill_level: passes, tagged
    _, r = smtp_send(srv.port, plain(b"plughtag\n"))
    assert r.code == 250 and len(queued(srv)) == 1


def test_discard_destiny_queues_nothing(start_postier, rules_dir):
    srv = start_postier(spam_params(rules_dir, final_spam_destiny="discard"))
    _, r = smtp_send(srv.port, plain(b"xyzzyspam\n"))
    assert r.code == 250
    assert re.fullmatch(r"250 2\.7\.0 Ok, discarded, id=\w+ - SPAM, score=10", r.text), r.text
    assert queued(srv) == []


def test_concurrent_sessions_each_get_their_own_verdict(start_postier, rules_dir):
    """Sessions ending DATA at the same time (their scans may run as one
    batch: spam_scan_batch_limit): every message gets the verdict of its own
    text -- rejected, tagged or clean -- and nothing else's."""
    import concurrent.futures
    srv = start_postier(spam_params(rules_dir, final_spam_destiny="reject",
                                    spam_kill_level="5"))
    kinds = ["spam", "tag", "ham"] * 6
    bodies = {"spam": b"xyzzyspam\n", "tag": b"plughtag\n", "ham": b"nothing to see\n"}

    def send(k: int):
        return smtp_send(srv.port, plain(bodies[kinds[k]] + b"message %d\n" % k,
                                         subject=f"m{k}"))[1]

    with concurrent.futures.ThreadPoolExecutor(len(kinds)) as ex:
        replies = list(ex.map(send, range(len(kinds))))
    for k, r in enumerate(replies):
        if kinds[k] == "spam":
            assert r.code == 554 and r.text.endswith("SPAM, score=10"), (k, r.text)
            continue
        assert r.code == 250 and "queued as" in r.text, (k, r.text)
        head = head_of(queue_cat(srv.etc, r.text.rsplit(" ", 1)[1]))
        assert f"\nSubject: m{k}" in "\n" + head
        if kinds[k] == "tag":
            assert "X-Spam-Score: 3\n" in head and "POSTIER_T_TAGTOKEN" in head, (k, head)
        else:
            assert "X-Spam" not in head, (k, head)
    assert len(queued(srv)) == 12


def test_a_workers_threads_stay_few_under_concurrent_scans(start_postier, rules_dir):
    """Regression (the smtpd worker of the 256M lab run aborted with
    bad_alloc under load): every session waiting for its content scan held a
    thread of asyncio's default executor (up to CPUs + 4, 8 MB of address
    space each).  Now a worker has the event loop, the queue-file I/O pool,
    a default executor of CPU_THREADS and one spam scan thread, however
    many sessions scan at once; every message still gets its verdict."""
    import concurrent.futures

    from postier.smtpd.server import CPU_THREADS, IO_THREADS
    srv = start_postier(spam_params(rules_dir, smtpd_worker_processes="1"))
    [worker] = _smtpd_workers(srv.pid)
    filler = b"some filler text on a line of its own\n" * 40000    # scans that overlap

    def send(k: int):
        return smtp_send(srv.port, plain(b"plughtag %d\n" % k + filler, subject=f"m{k}"))[1]

    most = 0
    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        futs = [ex.submit(send, k) for k in range(24)]
        while not all(f.done() for f in futs):
            most = max(most, len(os.listdir(f"/proc/{worker}/task")))
            time.sleep(0.01)
        replies = [f.result() for f in futs]
    assert all(r.code == 250 for r in replies), [r.text for r in replies if r.code != 250]
    assert len(queued(srv)) == 24
    assert 3 <= most <= 1 + IO_THREADS + CPU_THREADS + 1, most


def _smtpd_workers(master: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{master}/task"):
        with open(f"/proc/{master}/task/{tid}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/comm") as c:
                    if c.read().strip() == "postier-smtpd":
                        out.append(int(pid))
    return out


def test_empty_rules_directory_fails_startup(start_postier, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError) as e:
        start_postier(spam_params(str(empty)))
    text = str(e.value)
    assert "postier run exited (1)" in text
    assert f"spam_rules_directories: no SpamAssassin rule file (*.cf) in {empty}" in text


@pytest.fixture(scope="session")
def sa_cache(spam_rules_cache):
    return spam_rules_cache


def test_real_spamassassin_rules_reject_gtube(sa_cache):
    if not os.path.exists(os.path.join(SA_RULES, "20_body_tests.cf")):
        pytest.skip("SpamAssassin rules not installed (tools/setup.sh --test)")
    srv = PostierServer(spam_params(f"{SA_RULES} /etc/spamassassin", final_spam_destiny="reject")
                        | {"spam_rules_cache_directory": sa_cache})
    try:
        srv.start(timeout=600)          # a cold compile of the whole rule set takes a while
        _, r = smtp_send(srv.port, plain(b"This is the GTUBE:\n" + GTUBE + b"\n"))
        assert r.code == 554 and r.text.startswith("554 5.7.0 Reject, id="), r.text
        score = float(r.text.rsplit("score=", 1)[1])
        assert score >= 1000                     # GTUBE scores 1000
        assert queued(srv) == []
    finally:
        srv.cleanup()
    assert any(n.endswith(".hsdb") for n in os.listdir(sa_cache))
