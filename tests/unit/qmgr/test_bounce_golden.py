"""DSNs: postier.delivery.bounce against notifications recorded from real Postfix.

tests/golden/bounce/NAME.in holds the failed message (envelope, queue-file
content) and the per-recipient results Postfix logged; NAME.ref holds every
notification Postfix 3.7.11 sent for it, captured by smtp-sink (see
record_postfix_dsn.py there).  Here the same results go through postier's
bounce generator; dates, queue IDs of the notices, boundary time stamps and
Message-Id local parts are normalised on both sides.
"""

from __future__ import annotations

import glob
import json
import os
import re

import pytest

from postier.config import Config
from postier.delivery import bounce as B
from postier.queue.file import Envelope, Recipient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
GOLDEN = os.path.join(ROOT, "tests", "golden", "bounce")
CASES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(GOLDEN, "*.in")))

DATE_RX = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s+\d{1,2} [A-Z][a-z]{2} \d{4} "
                     r"\d\d:\d\d:\d\d [+-]\d{4}( \([A-Za-z0-9+-]+\))?")
QID_RX = re.compile(r"\b([0-9A-F]{10,12}|[0-9A-F]{16})\b")


def normalise(text: str, orig_qid: str) -> str:
    text = DATE_RX.sub("DATE", text)
    text = re.sub(r"boundary=\"([0-9A-F]+)\.\d+/", r'boundary="\1.TIME/', text)
    text = re.sub(r"^--([0-9A-F]+)\.\d+/", r"--\1.TIME/", text, flags=re.M)
    text = re.sub(r"^Message-Id: <\d+\.[0-9A-F]+@", "Message-Id: <MSGID@", text, flags=re.M)
    return QID_RX.sub(lambda m: "QUEUEID" if m.group(1) == orig_qid else "NEWID", text)


def split_ref(text: str) -> list[str]:
    parts = re.split(r"^===== notification \d+\n", text, flags=re.M)
    return [p for p in parts if p]


def sort_key(n: str) -> tuple[str, str]:
    to = re.search(r"^To: (.*)$", n, re.M)
    subj = re.search(r"^Subject: (.*)$", n, re.M)
    return (to.group(1) if to else "", subj.group(1) if subj else "")


def run_case(data: dict) -> tuple[list[str], list[str]]:
    cf = Config.from_text("".join(f"{k} = {v}\n" for k, v in data["main_cf"].items()))
    settings = B.BounceSettings.from_config(cf)
    e = data["envelope"]
    rcpts = {r["address"]: Recipient(**r) for r in e["recipients"]}
    env = Envelope(queue_id=e["queue_id"], arrival=1_700_000_000.0, sender=e["sender"],
                   recipients=list(rcpts.values()), dsn_ret=e.get("dsn_ret", ""),
                   dsn_envid=e.get("dsn_envid", ""), body_type=e.get("body_type", ""))
    content = data["content"].encode("utf-8")
    bounced, deferred, traced = [], {}, []
    for res in data["results"]:
        r = rcpts[res["address"]]
        if res["status"] == "bounced":
            bounced.append(B.make_record(r, res["dsn"], "failed", res["text"], res["relay"]))
        elif res["status"] == "deferred":
            deferred[r.address] = B.make_record(r, res["dsn"], "delayed", res["text"],
                                                res["relay"])
        elif res["status"] == "sent" and "SUCCESS" in r.dsn_notify:
            traced.append(B.make_record(r, res["dsn"], "relayed", res["text"], res["relay"],
                                        trace=True))
    warnings: list[str] = []
    notices = []
    notices += B.flush(B.FAILURE, env, bounced, content, settings, warn=warnings.append)
    notices += B.flush(B.SUCCESS, env, traced, content, settings)
    if deferred:
        notices += B.flush(B.DELAY, env, list(deferred.values()), content, settings)
        notices += B.flush(B.FAILURE, env, list(deferred.values()), content, settings)
    rendered = [normalise(B.render(n, settings, "0123456789AB", 1_700_000_100.0).decode(
        "utf-8", "surrogateescape"), e["queue_id"]) for n in notices]
    events = [f"QUEUEID: {n.log_text}: NEWID" for n in notices]
    return rendered, events


@pytest.mark.parametrize("name", CASES)
def test_dsn_matches_postfix(name):
    with open(os.path.join(GOLDEN, name + ".in"), encoding="utf-8") as f:
        data = json.load(f)
    with open(os.path.join(GOLDEN, name + ".ref"), encoding="utf-8",
              errors="surrogateescape") as f:
        ref = split_ref(f.read())
    got, events = run_case(data)
    want_events = sorted(x for x in data["events"] if "notification" in x)
    assert sorted(events) == want_events
    assert sorted(got, key=sort_key) == sorted(ref, key=sort_key)


def test_line_wrap_like_postfix():
    text = ("<rcpt@dest.test>: host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command "
            "failed (in reply to RCPT TO command)")
    assert B.line_wrap(text) == [
        "<rcpt@dest.test>: host 127.0.0.1[127.0.0.1] said: 500 5.3.0 Error: command",
        "    failed (in reply to RCPT TO command)"]
    long_word = "x" * 100
    assert B.line_wrap(f"a {long_word} b") == ["a", "    " + long_word, "    b"]
    assert B.line_wrap("short") == ["short"]


def test_mail_date_pads_day_with_space(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time
    time.tzset()
    try:
        assert B.mail_date(1_794_000_000 - 86400 * 20) .startswith(
            time.strftime("%a, %e %b %Y", time.gmtime(1_794_000_000 - 86400 * 20)))
        assert B.mail_date(0) == "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_double_bounce_sender_is_discarded():
    s = B.BounceSettings(myhostname="mx.example.test", myorigin="example.test")
    env = Envelope(queue_id="A1", arrival=1.0, sender="double-bounce@mx.example.test",
                   recipients=[Recipient(address="postmaster@example.test")])
    rec = B.make_record(env.recipients[0], "5.0.0", "failed", "nope")
    warned: list[str] = []
    assert B.flush(B.FAILURE, env, [rec], b"", s, warn=warned.append) == []
    assert warned == ["A1: undeliverable postmaster notification discarded"]


def test_null_sender_failure_without_2bounce_sends_nothing():
    s = B.BounceSettings(myhostname="mx.example.test", myorigin="example.test")
    env = Envelope(queue_id="A1", arrival=1.0, sender="",
                   recipients=[Recipient(address="user@remote.test")])
    rec = B.make_record(env.recipients[0], "5.0.0", "failed", "nope")
    assert B.flush(B.FAILURE, env, [rec], b"", s) == []
    s2 = B.BounceSettings(myhostname="mx.example.test", myorigin="example.test",
                          notify_classes=frozenset({"bounce"}))
    (n,) = B.flush(B.FAILURE, env, [rec], b"Subject: x\n\nbody\n", s2)
    assert (n.sender, n.recipient, n.orig_recipient) == (
        "double-bounce@mx.example.test", "postmaster@example.test", "postmaster")
    assert n.log_text == "postmaster non-delivery notification" and not n.headers_only


def test_delay_notice_filters_notify():
    s = B.BounceSettings(myhostname="mx.example.test", myorigin="example.test")
    rcpts = [Recipient(address="a@x.test", dsn_notify="FAILURE"),
             Recipient(address="b@x.test", dsn_notify="DELAY,FAILURE"),
             Recipient(address="c@x.test")]
    env = Envelope(queue_id="A1", arrival=1.0, sender="s@x.test", recipients=rcpts)
    recs = [B.make_record(r, "4.0.0", "delayed", "later") for r in rcpts]
    (n,) = B.flush(B.DELAY, env, recs, b"Subject: x\n\nbody\n", s)
    assert [r.address for r in n.records] == ["b@x.test", "c@x.test"]
    assert n.headers_only
