#!/usr/bin/env python3
"""Record real Postfix 3.7 DSNs (bounces, delay warnings, success reports,
postmaster copies) into tests/golden/bounce/NAME.in + NAME.ref.

    .venv/bin/python tests/golden/bounce/record_postfix_dsn.py [-v] [NAME...]

Needs root, the Debian `postfix` package and smtp-sink.  For each scenario a
private Postfix (tests/integration/qmgr/peers.py PostfixRelay: qmgr + smtp,
127.0.0.1 only) relays one message to a loopback smtp-sink that answers 5xx
(`-f RCPT`), 4xx (`-r RCPT`) or 2xx; the sender's domain (and postmaster) is
routed by transport_maps to a second smtp-sink with `-d DIR` that captures
every notification Postfix sends.  The capture minus smtp-sink's own
X-*/Received lines is the `.ref` (normalised, see `normalise()`); the `.in`
holds what postier's bounce generator needs to produce the same thing: the
main.cf values, the envelope, the original queue-file content (taken from
the returned message, or its headers plus the known body), the per-recipient
delivery results exactly as Postfix logged them, and which notifications
were generated (from Postfix's log).

tests/unit/qmgr/test_bounce_golden.py replays every .in through
postier.delivery.bounce and compares with the .ref.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "qmgr"))

from peers import PostfixRelay, SmtpSink, wait_for  # noqa: E402

DATE_RX = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s+\d{1,2} [A-Z][a-z]{2} \d{4} "
                     r"\d\d:\d\d:\d\d [+-]\d{4}( \([A-Za-z0-9+-]+\))?")

BODY = "Hello body line 1\r\nline 2\r\n"


def message(subject: str, sender: str = "user@sender.test", body: str = BODY,
            rcpt: str = "rcpt@dest.test", extra: str = "") -> str:
    return (f"From: Sender <{sender}>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@sender.test>\r\n{extra}\r\n{body}")


SCENARIOS = [
    # name, sink kind, main.cf overrides, mail options, recipients + rcpt options, message, wait
    dict(name="bounce_hdrs_envid_orcpt", sink="5xx", cf={},
         mail=["RET=HDRS", "ENVID=abc123"],
         rcpts=[("rcpt@dest.test", ["NOTIFY=FAILURE", "ORCPT=rfc822;orig@dest.test"]),
                ("other@dest.test", ["NOTIFY=FAILURE,DELAY"])],
         subject="test bounce hdrs"),
    dict(name="bounce_full_default", sink="5xx", cf={}, mail=[],
         rcpts=[("rcpt@dest.test", [])], subject="test bounce full"),
    dict(name="bounce_full_smtputf8", sink="5xx", cf={"smtputf8_enable": "yes"}, mail=[],
         rcpts=[("rcpt@dest.test", [])], subject="test bounce utf8"),
    dict(name="bounce_8bitmime", sink="5xx", cf={"smtputf8_enable": "no"},
         mail=["BODY=8BITMIME"], rcpts=[("rcpt@dest.test", [])], subject="test 8bit",
         body="caf\u00e9 body\r\n"),
    dict(name="bounce_size_limit", sink="5xx", cf={"bounce_size_limit": "200"}, mail=[],
         rcpts=[("rcpt@dest.test", [])], subject="test big",
         body="".join(f"body line {i:04d} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
                      for i in range(20))),
    dict(name="bounce_notify_never", sink="5xx", cf={}, mail=[],
         rcpts=[("rcpt@dest.test", ["NOTIFY=NEVER"]), ("other@dest.test", [])],
         subject="test never"),
    dict(name="bounce_postmaster_copy", sink="5xx", cf={"notify_classes": "bounce"}, mail=[],
         rcpts=[("rcpt@dest.test", [])], subject="test pm copy"),
    dict(name="double_bounce", sink="5xx", cf={"notify_classes": "2bounce"}, mail=[],
         sender="", rcpts=[("rcpt@dest.test", [])], subject="test double"),
    dict(name="error_transport", sink="5xx",
         cf={"transport_maps": "inline:{ {dest.test=error:5.1.1 No such user here}, "
                               "sender.test=smtp:[127.0.0.1]:{cap} }",
             "smtpd_reject_unlisted_recipient": "no"},
         mail=[], rcpts=[("rcpt@dest.test", [])], subject="test error transport"),
    dict(name="success_relayed", sink="2xx-nodsn", cf={}, mail=["RET=HDRS"],
         rcpts=[("rcpt@dest.test", ["NOTIFY=SUCCESS"])], subject="test success"),
    dict(name="delay_and_expire", sink="4xx",
         cf={"notify_classes": "delay, bounce", "delay_warning_time": "2s",
             "maximal_queue_lifetime": "6s", "bounce_queue_lifetime": "6s",
             "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
             "queue_run_delay": "1s"},
         mail=[], rcpts=[("rcpt@dest.test", [])], subject="test delay", wait=12),
]

QID_RX = re.compile(r"\b([0-9A-F]{10,12}|[0-9A-F]{16})\b")


def normalise(text: str, orig_qid: str) -> str:
    """Dates -> DATE; the original queue ID -> QUEUEID; other queue IDs
    (the notification's own) -> NEWID; the boundary time stamp -> TIME;
    the Message-Id local part -> MSGID."""
    text = DATE_RX.sub("DATE", text)
    text = re.sub(r"boundary=\"([0-9A-F]+)\.\d+/", r'boundary="\1.TIME/', text)
    text = re.sub(r"^--([0-9A-F]+)\.\d+/", r"--\1.TIME/", text, flags=re.M)
    text = re.sub(r"^Message-Id: <\d+\.[0-9A-F]+@", "Message-Id: <MSGID@", text, flags=re.M)

    def qid(m: re.Match) -> str:
        return "QUEUEID" if m.group(1) == orig_qid else "NEWID"
    return QID_RX.sub(qid, text)


def strip_sink(dump: str) -> str:
    """Drop smtp-sink's X-Client-*/X-*-Args lines and its 3-line Received."""
    lines = dump.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith("X-"):
        i += 1
    assert lines[i].startswith("Received: from") and "smtp-sink" in lines[i + 1]
    i += 3
    out = "\n".join(lines[i:])
    # smtp-sink appends an empty line after the message
    return out[:-1] if out.endswith("\n\n") else out


LOG_RX = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix/(\w+)\[\d+\]: (.*)$")


def run(sc: dict, verbose: bool) -> dict:
    tmp = tempfile.mkdtemp(prefix="pfdsn.")
    os.chmod(tmp, 0o755)
    sink_args = {"5xx": ["-f", "RCPT"], "4xx": ["-r", "RCPT"], "2xx-nodsn": ["-N"]}[sc["sink"]]
    dest = SmtpSink(sink_args).start()
    cap = SmtpSink([], dump_dir=os.path.join(tmp, "cap")).start()
    pf = PostfixRelay()
    try:
        cap_hop = f"smtp:[127.0.0.1]:{cap.port}"
        cf = {"relayhost": f"[127.0.0.1]:{dest.port}",
              "transport_maps": (f"inline:{{sender.test={cap_hop}, "
                                 f"postmaster@example.test={cap_hop}}}"),
              "notify_classes": "resource, software"}
        for k, v in sc["cf"].items():
            cf[k] = v.replace("{cap}", str(cap.port))
        pf.write_config(cf)
        pf.start()
        sender = sc.get("sender", "user@sender.test")
        body = sc.get("body", BODY)
        msg = message(sc["subject"], sender or "MAILER-DAEMON@example.test", body)
        # RCPT options differ per recipient: one session by hand
        import smtplib
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.ehlo("client.example.test")
            opts = list(sc["mail"]) + (["SMTPUTF8"] if False else [])
            code, _ = s.mail(sender, opts)
            assert code == 250
            for rcpt, ropts in sc["rcpts"]:
                code, txt = s.rcpt(rcpt, ropts)
                assert code == 250, (code, txt)
            code, txt = s.data(msg.encode("utf-8"))
            assert code == 250, txt
            qid = txt.decode().split()[-1]
        wait = sc.get("wait", 3)
        wait_for(lambda: f"{qid}: removed" in pf.read_log(), wait + 10)
        time.sleep(1.0)
        log = []
        for line in pf.read_log().splitlines():
            m = LOG_RX.match(line)
            if m and m.group(1) in ("qmgr", "smtp", "bounce", "error", "discard", "cleanup"):
                log.append(f"postfix/{m.group(1)}: {m.group(2)}")
        dumps = [strip_sink(d.decode("utf-8", "surrogateescape")) for d in cap.dumps()]
        if verbose:
            print("\n".join(log))
            for d in dumps:
                print("=====\n" + d)
    finally:
        pf.cleanup()
        dest.stop()
        cap.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"qid": qid, "log": log, "dumps": dumps, "body": body, "sender": sender}


def build_in(sc: dict, rec: dict) -> dict:
    """The .in record: what the bounce generator gets."""
    qid = rec["qid"]
    content = None
    for d in rec["dumps"]:
        m = re.search(r"Content-Type: message/rfc822\n(Content-Transfer-Encoding: \S+\n)?\n", d)
        if m:
            part = d[m.end():]
            part = part.rsplit("\n--", 1)[0]
            assert part.startswith("Return-Path: ")
            content = part.split("\n", 1)[1]
            break
    if content is None:
        for d in rec["dumps"]:
            m = re.search(r"Content-Type: text/rfc822-headers\n(Content-Transfer-Encoding: "
                          r"\S+\n)?\n", d)
            if m:
                part = d[m.end():]
                part = part.rsplit("\n--", 1)[0]
                content = part.split("\n", 1)[1].rstrip("\n") + "\n\n" + \
                    rec["body"].replace("\r\n", "\n")
                break
    results = []
    for line in rec["log"]:
        m = re.match(rf"postfix/(\w+): {qid}: to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?"
                     r"relay=([^,]*), delay=[^,]*, delays=[^,]*, dsn=([^,]*), "
                     r"status=(\w+) \((.*)\)$", line)
        if m:
            results.append({"service": m.group(1), "address": m.group(2),
                            "relay": m.group(4), "dsn": m.group(5), "status": m.group(6),
                            "text": m.group(7)})
    rcpts = []
    for addr, ropts in sc["rcpts"]:
        notify = ""
        orcpt = f"rfc822;{addr}"
        for o in ropts:
            k, _, v = o.partition("=")
            if k == "NOTIFY":
                notify = v
            elif k == "ORCPT":
                orcpt = v
        rcpts.append({"address": addr, "orig": addr, "dsn_notify": notify, "dsn_orcpt": orcpt})
    env = {"queue_id": qid, "sender": rec["sender"], "recipients": rcpts}
    for o in sc["mail"]:
        k, _, v = o.partition("=")
        if k == "RET":
            env["dsn_ret"] = v
        elif k == "ENVID":
            env["dsn_envid"] = v
        elif k == "BODY":
            env["body_type"] = v
    events = [ln.split(": ", 1)[1] for ln in rec["log"]
              if re.search(r"notification: [0-9A-F]+$|status=expired", ln)]
    events = [normalise(e, qid) for e in events]
    cf = {"myhostname": "mx.example.test", "mydomain": "example.test",
          "myorigin": "$mydomain", "notify_classes": "resource, software",
          "smtputf8_enable": "no"}
    cf.update({k: v for k, v in sc["cf"].items() if k != "transport_maps"})
    return {"format": "postier/bounce-golden/1",
            "provenance": "recorded from Postfix 3.7.11 by record_postfix_dsn.py",
            "scenario": sc["name"], "main_cf": cf, "envelope": env, "content": content,
            "results": results, "events": events}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-v", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    for sc in SCENARIOS:
        if args.names and sc["name"] not in args.names:
            continue
        print(f"recording {sc['name']} ...", flush=True)
        rec = run(sc, args.v)
        data = build_in(sc, rec)
        with open(os.path.join(HERE, sc["name"] + ".in"), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)
            f.write("\n")
        ref = "".join(f"===== notification {i + 1}\n{normalise(d, rec['qid'])}"
                      for i, d in enumerate(rec["dumps"]))
        with open(os.path.join(HERE, sc["name"] + ".ref"), "w", encoding="utf-8",
                  errors="surrogateescape") as f:
            f.write(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
