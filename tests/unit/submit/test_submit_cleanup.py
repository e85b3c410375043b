"""cleanup as pickup runs it: full-name From:, DSN original recipients, Received:.

Expected values were recorded from Postfix 3.7.11 (sendmail -> postdrop ->
pickup -> cleanup, then postcat) with myhostname = mx.example.test,
myorigin = $mydomain = example.test, canonical_maps mapping
b@example.test to canon@example.test and virtual_alias_maps expanding
c@x.test to v1@x.test, v2@x.test.
"""

from __future__ import annotations

import time

from postier.cleanup import LOCAL, REMOTE, CleanupSettings, Rcpt
from postier.config import Config
from postier.pickup.cleanup import PickupCleanup, from_header, received_header

BASE = """\
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
inet_interfaces = 127.0.0.1
canonical_maps = inline:{ {b@example.test=canon@example.test} }
virtual_alias_maps = inline:{ {c@x.test=v1@x.test,v2@x.test} }
"""
WHEN = 1_700_000_000.0


def settings(extra: str = "") -> CleanupSettings:
    return CleanupSettings.from_config(Config.from_text(BASE + extra))


def run(content: bytes, *, sender="root", rcpts=("a@example.test",), name="", extra="",
        ctx=LOCAL, fmt="standard"):
    c = PickupCleanup(settings(extra), full_name=name, from_format=fmt, queue_id="QID",
                      sender=sender, recipients=[Rcpt(r) for r in rcpts],
                      rewrite_context=ctx, arrival=WHEN)
    out = c.received(received_header("mx.example.test", "Postfix", 0, "QID", WHEN))
    out += c.feed(content) + c.finish()
    return c, out.decode()


def headers(text: str) -> list[str]:
    head = text.split("\n\n", 1)[0].split("\n")
    return [h for h in head if not h.startswith(("Received:", "\t", "Date:", "Resent-Date:"))]


def test_received_header_shape():
    h = received_header("mx.example.test", "Postfix", 1000, "ABC", time.time()).decode()
    first, second = h.split("\n")[:2]
    assert first == "Received: by mx.example.test (Postfix, from userid 1000)"
    assert second.startswith("\tid ABC; ") and h.endswith("\n")


def test_full_name_from_header_and_order():
    c, text = run(b"Subject: v\n\nx\n", name="root")
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(WHEN))
    # Postfix: Subject, Message-Id, Date, From: root <root@example.test>
    assert headers(text) == ["Subject: v", f"Message-Id: <{stamp}.QID@mx.example.test>",
                             "From: root <root@example.test>"]
    lines = text.split("\n")
    assert lines.index(f"Message-Id: <{stamp}.QID@mx.example.test>") < \
        [i for i, h in enumerate(lines) if h.startswith("Date: ")][0] < \
        lines.index("From: root <root@example.test>")
    assert c.sender == "root@example.test"


def test_full_name_quoting_like_postfix():
    # recorded: -f 'a@b, c@d' -F 'Joe "Q" <x>' gives From: "Joe \"Q\" <x>" <a@b>
    assert from_header("", "a@b", 'Joe "Q" <x>') == 'From: "Joe \\"Q\\" <x>" <a@b>'
    assert from_header("", "u@x.test", "  Joe   User ") == "From: Joe User <u@x.test>"
    assert from_header("", "u@x.test", "J. User") == 'From: "J. User" <u@x.test>'
    assert from_header("", "u@x.test", "100% sure") == 'From: "100% sure" <u@x.test>'
    assert from_header("Resent-", "u@x.test", "Joe") == "Resent-From: Joe <u@x.test>"
    assert from_header("", "u@x.test", "   ") == "From: <u@x.test>"
    assert from_header("", "u@x.test", "Joe User", standard=False) == \
        "From: u@x.test (Joe User)"
    assert from_header("", "u@x.test", "a\r\nb") == "From: a b <u@x.test>"


def test_null_sender_gets_mailer_daemon_without_name():
    _, text = run(b"Subject: x\n\nbody\n", sender="", name="root")
    assert "From: MAILER-DAEMON" in headers(text)


def test_existing_from_is_kept():
    _, text = run(b"From: me@x.test\nSubject: x\n\nbody\n", name="Joe")
    assert [h for h in headers(text) if h.startswith("From")] == ["From: me@x.test"]


def test_resent_headers():
    # recorded: Resent-Message-Id, Resent-Date, Resent-From: root <root@example.test>
    _, text = run(b"To: orig@example.test\nResent-To: r1@example.test\nSubject: rs\n\nx\n",
                  name="root")
    hs = headers(text)
    assert hs[-1] == "Resent-From: root <root@example.test>"
    assert hs[-2].startswith("Resent-Message-Id: <")
    assert "From: root <root@example.test>" not in hs


def test_undisclosed_recipients_header_comes_after_from():
    _, text = run(b"Subject: x\n\nbody\n", name="Joe",
                  extra="undisclosed_recipients_header = To: undisclosed-recipients:;\n")
    hs = headers(text)
    assert hs[-2:] == ["From: Joe <root@example.test>", "To: undisclosed-recipients:;"]


def test_remote_context_adds_no_headers():
    # sendmail -G: no header rewriting context, nothing added
    _, text = run(b"Subject: x\n\nbody\n", name="Joe", ctx=REMOTE)
    assert headers(text) == ["Subject: x"]


def test_dsn_original_recipients_like_postfix():
    c, _ = run(b"Subject: x\n\nbody\n", sender="",
               rcpts=("b", "c@x.test", "d@example.test"))
    # recorded from Postfix (postcat of the pickup'ed message)
    assert [(r.dsn_orcpt, r.orig, r.address) for r in c.recipients] == [
        ("rfc822;canon@example.test", "b", "canon@example.test"),
        ("rfc822;c@x.test", "c@x.test", "v1@x.test"),
        ("rfc822;c@x.test", "c@x.test", "v2@x.test"),
        ("rfc822;d@example.test", "d@example.test", "d@example.test"),
    ]


def test_automatic_bcc_gets_no_dsn_original_recipient():
    c, _ = run(b"Subject: x\n\nbody\n", rcpts=("a@example.test",),
               extra="always_bcc = archive@example.test\n")
    assert [(r.address, r.dsn_orcpt) for r in c.recipients] == [
        ("a@example.test", "rfc822;a@example.test"), ("archive@example.test", "")]
