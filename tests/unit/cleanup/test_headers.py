"""Header fix-up, as real Postfix 3.7.11 did it.

Every expected text below was recorded from a private Postfix 3.7.11
instance (XCLIENT from 127.0.0.1, local_header_rewrite_clients =
permit_mynetworks, mynetworks including 192.0.2.0/24) and read back with
`postcat -h` / `postcat -b`; the date and queue ID differ, the rest is
byte for byte Postfix's output."""

from __future__ import annotations

import time

import pytest
from conftest import run, settings

from postier.cleanup.headers import header_name_len, mail_date

LOCAL, REMOTE = "192.0.2.5", "198.51.100.7"
ARR = 1_800_000_000.0
STAMP = time.strftime("%Y%m%d%H%M%S", time.gmtime(ARR))
ADDED = (f"Message-Id: <{STAMP}.QID@mx.example.test>\n"
         f"Date: {mail_date(ARR)}\nFrom: s@remote.test\n").encode()


def test_local_client_gets_missing_headers():
    c, out = run(settings(), b"body only\n")
    assert out == ADDED + b"\nbody only\n"


def test_remote_client_gets_nothing_added():
    c, out = run(settings(), b"body only\n", client=REMOTE)
    assert out == b"\nbody only\n"
    assert c.rewrite_context == "remote"


def test_remote_header_rewrite_domain():
    s = settings("remote_header_rewrite_domain = rw.example.test\n")
    c, out = run(s, b"To: joe\nFrom: bob\n\nb\n", client=REMOTE)
    assert out == (b"To: joe@rw.example.test\nFrom: bob@rw.example.test\n"
                   + ADDED.split(b"From:")[0] + b"\nb\n")


def test_remote_headers_not_rewritten_without_domain():
    s = settings("canonical_maps = inline:{ old@example.test=new@example.test }\n")
    _, out = run(s, b"To: joe, old@example.test\nFrom: old\n\nb\n", client=REMOTE)
    assert out == b"To: joe, old@example.test\nFrom: old\n\nb\n"


def test_empty_message_is_one_empty_line():
    _, out = run(settings(), b"\n")
    assert out == ADDED + b"\n"


def test_really_empty_message():
    _, out = run(settings(), b"")
    assert out == ADDED


def test_leading_white_space_gets_an_empty_line_first():
    _, out = run(settings(), b" foo\nSubject: x\n\nbar\n")
    assert out == ADDED + b"\n foo\nSubject: x\n\nbar\n"


def test_from_lines_become_x_mailbox_line():
    _, out = run(settings(), b"From foo@bar Mon Jan  1\n>From x\nSubject: y\n\nb\n")
    assert out == (b"X-Mailbox-Line: From foo@bar Mon Jan  1\nX-Mailbox-Line: >From x\n"
                   b"Subject: y\n" + ADDED + b"\nb\n")


def test_rewritten_address_headers_and_folding():
    s = settings("canonical_maps = inline:{ old@example.test=new@example.test }\n")
    msg = (b"Subject : spaced\nFROM: Someone Else <old@example.test> (comment)\n"
           b"To: a, old@example.test,\n  \"Q x\" <old@example.test>, grp: old@example.test,"
           b" b@x.test;, joe\nCc: aaaaaaaaaaaaaaaaaaaaaaa@example.test, "
           b"bbbbbbbbbbbbbbbbbbbbbbbbbb@example.test, ccccccccccccccccccccccc@example.test, "
           b"old@example.test\nReply-To: joe\n\nb\n")
    _, out = run(s, msg)
    assert out == (
        b"Subject: spaced\n"
        b"FROM: Someone Else <new@example.test>(comment)\n"
        b"To: a@example.test, new@example.test, \"Q x\" <new@example.test>,\n"
        b"\tgrp: new@example.test, b@x.test;, joe@example.test\n"
        b"Cc: aaaaaaaaaaaaaaaaaaaaaaa@example.test,\n"
        b"\tbbbbbbbbbbbbbbbbbbbbbbbbbb@example.test,\n"
        b"\tccccccccccccccccccccccc@example.test, new@example.test\n"
        b"Reply-To: joe@example.test\n" + ADDED.split(b"From:")[0] + b"\nb\n")


def test_resent_headers():
    s = settings("canonical_maps = inline:{ old@example.test=new@example.test }\n")
    _, out = run(s, b"Resent-From: old@example.test\nSubject: r\n\nb\n")
    assert out == (b"Resent-From: new@example.test\nSubject: r\n"
                   + f"Resent-Message-Id: <{STAMP}.QID@mx.example.test>\n"
                     f"Resent-Date: {mail_date(ARR)}\n".encode() + b"\nb\n")


def test_null_sender_gets_mailer_daemon():
    _, out = run(settings(), b"Subject: n\n\nb\n", sender="")
    assert out.endswith(b"From: MAILER-DAEMON\n\nb\n")


def test_dropped_headers():
    _, out = run(settings(), b"Return-Path: <x@y>\nBcc: a@example.test\nContent-Length: 5\n"
                             b"Subject: d\nTo: u@example.test\n\nb\n")
    assert out == b"Subject: d\nTo: u@example.test\n" + ADDED + b"\nb\n"


def test_no_separator_and_lower_case_names():
    _, out = run(settings(), b"message-id: <x@y>\ndate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                             b"from: a@b.test\nto: c@d.test")
    assert out == (b"message-id: <x@y>\ndate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                   b"from: a@b.test\nto: c@d.test\n")


def test_non_header_first_line_ends_headers():
    _, out = run(settings(), b"not a header\nSubject: late\n\nb\n")
    assert out == ADDED + b"\nnot a header\nSubject: late\n\nb\n"


def test_8bit_headers_pass_unchanged():
    msg = "Subject: café über\nTo: ü@example.test\n\nbé\n".encode()
    _, out = run(settings(), msg)
    assert out == msg.split(b"\n\n")[0] + b"\n" + ADDED + b"\nb\xc3\xa9\n"


def test_undisclosed_recipients_header():
    s = settings("undisclosed_recipients_header = To: undisclosed-recipients:;\n")
    _, out = run(s, b"Subject: n\n\nb\n")
    assert out == b"Subject: n\n" + ADDED + b"To: undisclosed-recipients:;\n\nb\n"


def test_header_over_header_size_limit_is_cut():
    s = settings("header_size_limit = 1000\n")
    lines = [f"w{i:03d}" + "a" * 60 for i in range(40)]
    msg = ("Subject: big\nX-Big: " + "\n ".join(lines) + "\nX-After: z\n\nbody\n").encode()
    _, out = run(s, msg)
    want = "X-Big: " + "\n ".join(lines[:15]) + "\n"
    assert out == b"Subject: big\n" + want.encode() + b"X-After: z\n" + ADDED + b"\nbody\n"


def test_long_lines_kept_whole():
    msg = b"Subject: " + b"x" * 5000 + b"\nX-Long: a\n " + b"y" * 3000 + b"\n\n" + b"z" * 5000 + b"\n"
    _, out = run(settings(), msg)
    head, body = msg.split(b"\n\n")
    assert out == head + b"\n" + ADDED + b"\n" + body


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunking_does_not_matter(chunk):
    msg = (b"Subject: x\nTo: joe,\n bob\nFrom: old\n\nline 1\nline 2\n" + b"q" * 300 + b"\nend")
    _, whole = run(settings(), msg)
    _, parts = run(settings(), msg, chunk=chunk)
    assert parts == whole
    assert whole.endswith(b"\nline 1\nline 2\n" + b"q" * 300 + b"\nend\n")


def test_hopcount_limit():
    s = settings("hopcount_limit = 3\n")
    c, _ = run(s, b"Received: a\nReceived: b\nReceived: c\n\nb\n")
    assert c.error is not None and (c.error.code, c.error.enhanced) == (554, "5.4.0")


def test_header_name_recognition():
    assert header_name_len(b"Subject: x") == 7
    assert header_name_len(b"Subject : x") == 7
    assert header_name_len(b"From foo") == 0
    assert header_name_len(b": x") == 0
    assert header_name_len(b"Sub ject: x") == 0
    assert header_name_len("Süb: x".encode()) == 0


def test_mail_date_format():
    d = mail_date(ARR)
    assert len(d.split()) == 7 or "  " in d
    assert d.endswith(")") and "(" in d


def test_rewritten_headers_are_remembered_only_without_tables():
    s = settings()
    msg = b"To: joe, \"A B\" <ab>\nFrom: bob\n\nb\n"
    _, first = run(s, msg)
    assert first.startswith(b"To: joe@example.test, \"A B\" <ab@example.test>\nFrom: bob@example.test\n")
    assert len(s.rewriter.header_cache) == 2
    _, again = run(s, msg)                       # from the cache: the same bytes
    assert again == first
    mapped = settings("canonical_maps = inline:{ bob@example.test=robert@example.test }\n")
    _, out = run(mapped, msg)
    assert b"From: robert@example.test\n" in out
    assert b"To: joe@example.test" in out
    # To: depends on the table too (canonical_classes): neither is remembered
    assert mapped.rewriter.header_cache == {}
