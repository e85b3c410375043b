"""The content scan inside `postier run`, before the 250 to DATA, with a real
clamd: destinies (reject 554, discard 250 + quarantine, nothing queued),
defer (451) when clamd is down or StreamMaxLength is exceeded, failover,
banned names (double extension, inside a zip, zip bomb), and the headers a
passed message gets (`postier queue cat`)."""

from __future__ import annotations

import os
import stat

import pytest
from content_peers import (
    EICAR,
    Smtp,
    plain,
    queue_cat,
    smtp_send,
    with_attachment,
    zip_of,
)

pytestmark = pytest.mark.slow

NAME = "Postier.Test.EICAR.UNOFFICIAL"
OVERRIDES = {"banned_filename_rules": "exe scr vbs", "quarantine_directory": "@ROOT@/quarantine"}


def queued(srv) -> list[str]:
    return [os.path.basename(p) for p in srv.incoming()]


def test_reject_destiny_and_clean_mail(clamd, start_postier):
    srv = start_postier({**OVERRIDES, "av_scanners": f"clamd:unix:@ROOT@/dead.sock, "
                                                     f"{clamd.unix_spec}"})
    dead = f"clamd:unix:{srv.root}/dead.sock"
    bomb = zip_of({"zeros.bin": b"\0" * (8 << 20)})
    cases = {
        "inline": (plain(EICAR + b"\n"), f"VIRUS: {NAME}"),
        "attachment": (with_attachment("eicar.com", EICAR), f"VIRUS: {NAME}"),
        "zip": (with_attachment("eicar.zip", zip_of({"eicar.com": EICAR}), "application/zip"),
                f"VIRUS: {NAME}"),
        "double extension": (with_attachment("invoice.pdf.exe", b"MZ\x90\x00"),
                             "BANNED: invoice.pdf.exe"),
        "name in zip": (with_attachment("docs.zip", zip_of({"a/readme.txt": b"x",
                                                            "a/setup.scr": b"MZ"})),
                        "BANNED: docs.zip/a/setup.scr"),
        "zip bomb": (with_attachment("bomb.zip", bomb),
                     "BANNED: archive bomb: compression ratio"),
    }
    for what, (msg, reason) in cases.items():
        _, r = smtp_send(srv.port, msg)
        assert r.code == 554, (what, r.text)
        assert r.text.startswith("554 5.7.0 Reject, id="), what
        assert r.text.split(" - ", 1)[1].startswith(reason), (what, r.text)
    assert queued(srv) == []
    _, r = smtp_send(srv.port, plain(b"clean mail\n"))
    assert r.code == 250 and "queued as" in r.text
    (qid,) = queued(srv)
    shown = queue_cat(srv.etc, qid)
    head = shown.split("*** MESSAGE CONTENTS", 1)[1].split("\n", 1)[1]
    assert head.startswith("X-Virus-Scanned: postier at example.test\nReceived: from client.test")
    log = srv.maillog()
    assert log.count(f"virus scanner failed: {dead}: No such file or directory") >= 7
    assert f"Blocked INFECTED ({NAME}) {{Rejected, Quarantined}}" in log
    assert "reject: END-OF-MESSAGE from localhost[127.0.0.1]: 554 5.7.0 Reject, id=" in log
    assert "Passed CLEAN {Relayed}" in log
    qdir = os.path.join(srv.root, "quarantine")
    names = sorted(os.listdir(qdir))
    assert [n.split("-")[0] for n in names].count("virus") == 3
    assert [n.split("-")[0] for n in names].count("banned") == 3


def test_discard_destiny_quarantines_and_queues_nothing(clamd, start_postier):
    srv = start_postier({**OVERRIDES, "av_scanners": clamd.inet_spec,
                         "final_virus_destiny": "discard"})
    _, r = smtp_send(srv.port, with_attachment("eicar.com", EICAR))
    assert r.code == 250
    assert r.text.startswith("250 2.7.0 Ok, discarded, id=") and r.text.endswith(f"VIRUS: {NAME}")
    qid = r.text.split("id=")[1].split()[0]
    assert queued(srv) == []
    path = os.path.join(srv.root, "quarantine", f"virus-{qid}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(b"X-Envelope-From: <sender@example.org>\n"
                           b"X-Envelope-To: <user@example.test>\n")
    assert b'filename="eicar.com"' in data
    assert f"{qid}: discard: END-OF-MESSAGE from localhost[127.0.0.1]: 250 2.7.0" in srv.maillog()


def test_clamd_stopped_defers(start_clamd, start_postier):
    c = start_clamd()
    srv = start_postier({**OVERRIDES, "av_scanners": f"{c.unix_spec}, {c.inet_spec}"})
    _, r = smtp_send(srv.port, plain(b"clean\n"))
    assert r.code == 250
    c.stop()
    _, r = smtp_send(srv.port, plain(b"clean\n"))
    assert r.code == 451
    assert r.text.startswith("451 4.5.0 Error in processing, id=")
    assert r.text.endswith("virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED")
    # a banned attachment is refused for good even without a scanner
    _, r = smtp_send(srv.port, with_attachment("x.exe", b"MZ"))
    assert r.code == 554
    assert len(queued(srv)) == 1
    c.start()
    _, r = smtp_send(srv.port, plain(b"clean again\n"))
    assert r.code == 250 and len(queued(srv)) == 2


def test_failure_action_pass_marks_unchecked(start_postier, tmp_path):
    srv = start_postier({"av_scanners": f"clamd:unix:{tmp_path}/none.sock",
                         "av_failure_action": "pass"})
    _, r = smtp_send(srv.port, plain(b"clean\n"))
    assert r.code == 250
    (qid,) = queued(srv)
    assert "X-Postier-Alert: UNCHECKED, virus scan failed\n" in queue_cat(srv.etc, qid)


def test_stream_max_length_exceeded_defers(start_clamd, start_postier):
    c = start_clamd(stream_max_length="64K")
    srv = start_postier({"av_scanners": c.inet_spec, "message_size_limit": "10240000"})
    _, r = smtp_send(srv.port, plain(b"x" * 100 + b"\n"))
    assert r.code == 250
    _, r = smtp_send(srv.port, plain((b"0123456789abcdef" * 4 + b"\n") * 2000))
    assert r.code == 451 and "virus_scan FAILED" in r.text
    assert "INSTREAM size limit exceeded. ERROR" in srv.maillog()


def test_bdat_is_scanned_too(clamd, start_postier):
    srv = start_postier({"av_scanners": clamd.unix_spec})
    data = plain(EICAR + b"\n").replace(b"\n", b"\r\n")
    with Smtp(srv.port) as s:
        s.reply()
        s.cmd("EHLO client.test")
        s.cmd("MAIL FROM:<sender@example.org>")
        s.cmd("RCPT TO:<user@example.test>")
        s.send(b"BDAT %d LAST\r\n" % len(data) + data)
        r = s.reply()
    assert r.code == 554 and r.text.endswith(f"VIRUS: {NAME}")
    assert queued(srv) == []


def test_mixed_recipients_bypass(clamd, start_postier):
    srv = start_postier({"av_scanners": clamd.unix_spec,
                         "content_bypass_maps": "inline:{lover@example.test=virus}"})
    rr, r = smtp_send(srv.port, plain(EICAR + b"\n"),
                      rcpts=("lover@example.test", "user@example.test"))
    assert [x.code for x in rr] == [250, 250] and r.code == 250
    (qid,) = queued(srv)
    shown = queue_cat(srv.etc, qid)
    assert "recipient: lover@example.test" in shown and "user@example.test" not in shown.split(
        "*** MESSAGE CONTENTS")[0]
    assert f"X-Postier-Alert: INFECTED, message contains virus: {NAME}" in shown
