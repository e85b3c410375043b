"""Limits and protocol hygiene of `postier run`.

Each behaviour test checks postier's reply (the text real Postfix 3.7.11
gives for the same input) and that the server keeps serving: a second
session afterwards gets 250 for MAIL.  The `*_matches_postfix` tests replay
the same dialog against a private real Postfix with the same main.cf
(tools/postfix_instance.py) and compare every reply; they are skipped when
Postfix is not installed.

Anvil tests keep 127.0.0.0/8 out of mynetworks (smtpd_client_event_limit_exceptions
defaults to $mynetworks) and out of smtpd_authorized_xclient_hosts (Postfix
exempts XCLIENT-authorized clients from connection accounting too).
"""

from __future__ import annotations

import os
import re

import pytest
from smtpd_peers import (
    MYHOSTNAME,
    Smtp,
    dialog,
    dot_stuff,
    message,
    new_session_accepts_mail,
    stored_body,
)

from postier.queue.file import read_content, read_envelope

EHLO = "EHLO client.example.org"
MAIL = "MAIL FROM:<sender@example.org>"
RCPT = "RCPT TO:<rcpt@example.test>"
OUTSIDE = {"mynetworks": "192.0.2.0/24", "smtpd_authorized_xclient_hosts": ""}
# Tests that connect from 127.0.0.2/3 turn client name lookups off: those
# addresses are not in /etc/hosts, and a PTR query would leave loopback.
NO_PTR = {"smtpd_peername_lookup": "no"}


def compare(start_postier, start_postfix, overrides, steps, **kw) -> list[str]:
    """The dialog on postier and on Postfix (same main.cf); returns postier's
    replies after asserting they are Postfix's."""
    want = dialog(start_postfix(overrides).port, steps, **kw)
    got = dialog(start_postier(overrides).port, steps, **kw)
    assert got == want
    return got


# ------------------------------------------------------------ SMTP smuggling

SMUGGLE = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
}
SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
            b"From: evil@example.org\r\nSubject: smuggled\r\n\r\nevil body")


def smuggling_message(sep: bytes) -> bytes:
    """A message with a fake end-of-data `sep` followed by a smuggled
    transaction, then the real <CR><LF>.<CR><LF>."""
    return (b"From: sender@example.org\r\nSubject: carrier\r\n\r\nfirst part" + sep
            + SMUGGLED + b"\r\n.\r\n")


@pytest.mark.parametrize("pure", [False, True], ids=["native", "pure"])
@pytest.mark.parametrize("variant", list(SMUGGLE))
def test_smtp_smuggling(start_postier, variant, pure):
    """Only <CR><LF>.<CR><LF> ends DATA: one message is queued and the
    smuggled commands are content, never executed."""
    srv = start_postier(pure=pure)
    with Smtp(srv.port) as c:
        c.reply()
        c.cmd(EHLO)
        assert c.cmd(MAIL).code == 250
        assert c.cmd(RCPT).code == 250
        assert c.cmd("DATA").code == 354
        c.send(smuggling_message(SMUGGLE[variant]))
        r = c.reply()
        assert r.text.startswith("250 2.0.0 Ok: queued as "), r
        # the next reply answers our NOOP: no reply to a smuggled command is pending
        assert c.cmd("NOOP").text == "250 2.0.0 Ok"
        assert c.cmd("QUIT").text == "221 2.0.0 Bye"
    files = srv.incoming()
    assert len(files) == 1
    env, _ = read_envelope(files[0])
    assert (env.sender, [x.address for x in env.recipients]) == (
        "sender@example.org", ["rcpt@example.test"])
    content = read_content(files[0])
    assert b"MAIL FROM:<evil@example.org>" in content
    assert b"RCPT TO:<victim@example.test>" in content
    assert content.endswith(b"evil body\n")
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.postfix
@pytest.mark.parametrize("variant", list(SMUGGLE))
def test_smuggling_matches_postfix_normalize(start_postier, start_postfix, variant):
    """Postfix 3.7.11 frames like postier only with smtpd_forbid_bare_newline
    = normalize and a client outside smtpd_forbid_bare_newline_exclusions
    ($mynetworks); otherwise (its default `no`, or an excluded client) it
    ends DATA at a bare-LF dot line and runs the smuggled commands, which
    postier never does (docs/compat.md)."""
    steps = [EHLO, MAIL, RCPT, "DATA", smuggling_message(SMUGGLE[variant]), "NOOP"]
    got = compare(start_postier, start_postfix, {"smtpd_forbid_bare_newline": "normalize",
                                                 "mynetworks": "192.0.2.0/24"}, steps)
    assert got[-2:] == ["250 2.0.0 Ok", "221 2.0.0 Bye"]


@pytest.mark.postfix
@pytest.mark.parametrize("mynetworks", ["192.0.2.0/24", "127.0.0.0/8"],
                         ids=["client-outside", "client-excluded"])
def test_bare_lf_reject_matches_postfix(start_postier, start_postfix, mynetworks):
    """smtpd_forbid_bare_newline = reject: 550 after end of data, except for
    smtpd_forbid_bare_newline_exclusions ($mynetworks)."""
    steps = [EHLO, MAIL, RCPT, "DATA", b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n", MAIL]
    got = compare(start_postier, start_postfix,
                  {"smtpd_forbid_bare_newline": "reject", "mynetworks": mynetworks}, steps)
    if mynetworks.startswith("192"):
        assert got[5] == f"550 5.5.2 {MYHOSTNAME} Error: bare <LF> received"
    else:
        assert got[5].startswith("250 2.0.0 Ok: queued as")
    assert got[6] == "250 2.1.0 Ok"


# ------------------------------------------------------------ line and header sizes


def test_long_body_line_is_accepted(start_postier):
    """A 10,000-byte body line (line_length_limit is 2048) is accepted and
    stored whole, as Postfix does (it splits and rejoins the line)."""
    srv = start_postier()
    long_line = b"y" * 10000
    msg = message(500, subject="long line") + long_line + b"\r\nend\r\n"
    with Smtp(srv.port) as c:
        c.reply()
        c.cmd(EHLO)
        c.cmd(MAIL)
        c.cmd(RCPT)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        r = c.reply()
    assert r.text.startswith("250 2.0.0 Ok: queued as"), r
    body = stored_body(read_content(srv.incoming()[0]))
    assert body == msg
    assert b"\r\n" + long_line + b"\r\n" in body
    assert new_session_accepts_mail(srv.port).code == 250


def test_long_command_line_is_truncated(start_postier):
    """Command lines, unlike message lines, are cut at line_length_limit
    (2048): the truncated MAIL command has no closing bracket."""
    srv = start_postier()
    got = dialog(srv.port, [EHLO, "MAIL FROM:<" + "a" * 3000 + "@example.org>",
                            "MAIL FROM:<" + "a" * 1000 + "@example.org>"])
    assert got[2:4] == ["501 5.1.7 Bad sender address syntax", "250 2.1.0 Ok"]
    assert srv.wait_log("warning: localhost[127.0.0.1]: request longer than 2048: "
                        "MAIL FROM:<aaaaaaaaaaaaaaaaaaa...")
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.postfix
def test_long_lines_match_postfix(start_postier, start_postfix):
    steps = [EHLO, MAIL, RCPT, "DATA", b"Subject: long\r\n\r\n" + b"y" * 10000 + b"\r\n.\r\n",
             "NOOP " + "x" * 3000, "MAIL FROM:<" + "a" * 5000 + "@example.org>",
             "MAIL FROM:<" + "a" * 1000 + "@example.org>"]
    got = compare(start_postier, start_postfix, {}, steps)
    assert got[5].startswith("250 2.0.0 Ok: queued as")
    assert got[7:9] == ["501 5.1.7 Bad sender address syntax", "250 2.1.0 Ok"]


HEADER_SECTION = (b"From: sender@example.org\r\nSubject: many headers\r\n"
                  + b"".join(b"X-Header-%02d: %s\r\n" % (i, b"z" * 60) for i in range(40))
                  + b"X-After: yes\r\n\r\nbody\r\n")
ONE_BIG_HEADER = (b"From: sender@example.org\r\nSubject: one big header\r\nX-Big: start\r\n"
                  + b"".join(b" z%03d%s\r\n" % (i, b"z" * 60) for i in range(40))
                  + b"X-After: yes\r\n\r\nbody\r\n")


@pytest.mark.parametrize("msg", [HEADER_SECTION, ONE_BIG_HEADER], ids=["section", "one-header"])
def test_header_size_limit(start_postier, msg):
    """header_size_limit = 1024 with a 2.8 KB header: the message is accepted
    (Postfix limits each header, truncating an overlong one, and never
    rejects for it); what follows the big header arrives intact."""
    srv = start_postier({"header_size_limit": "1024"})
    with Smtp(srv.port) as c:
        c.reply()
        c.cmd(EHLO)
        c.cmd(MAIL)
        c.cmd(RCPT)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        r = c.reply()
    assert r.text.startswith("250 2.0.0 Ok: queued as"), r
    content = read_content(srv.incoming()[0])
    # (a cleanup stage may append missing headers after X-After, as Postfix does)
    assert b"\nX-After: yes\n" in content
    assert content.endswith(b"\n\nbody\n")
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.postfix
@pytest.mark.parametrize("msg", [HEADER_SECTION, ONE_BIG_HEADER], ids=["section", "one-header"])
def test_header_size_limit_matches_postfix(start_postier, start_postfix, msg):
    """Same replies, and the same stored message after the Received: header
    (the overlong header cut the same way; Message-Id/Date values aside)."""
    ov = {"header_size_limit": "1024"}
    pf, pq = start_postfix(ov), start_postier(ov)
    steps = [EHLO, MAIL, RCPT, "DATA", dot_stuff(msg), MAIL]
    assert dialog(pq.port, steps) == dialog(pf.port, steps)
    want = pf.postcat(os.path.basename(pf.incoming()[0])).splitlines()
    got = read_content(pq.incoming()[0]).decode().splitlines()
    assert _after_received(got) == _after_received(want)


def _after_received(lines: list[str]) -> list[str]:
    i = 1
    while lines[i].startswith(("\t", " ")):
        i += 1
    return [re.sub(r"^(Message-Id|Date): .*", r"\1: X", x) for x in lines[i:]]


# ------------------------------------------------------------ recipients

RCPT_LIMIT_DIALOG = [EHLO, MAIL] + [f"RCPT TO:<r{i}@example.test>" for i in range(4)] + [
    "DATA", dot_stuff(message(1000))]


def test_recipient_limit(start_postier):
    srv = start_postier({"smtpd_recipient_limit": "2"})
    got = dialog(srv.port, RCPT_LIMIT_DIALOG)
    assert got[3:7] == ["250 2.1.5 Ok", "250 2.1.5 Ok",
                        "452 4.5.3 Error: too many recipients",
                        "452 4.5.3 Error: too many recipients"]
    assert got[8] == "250 2.0.0 Ok: queued as QUEUEID"
    env, _ = read_envelope(srv.incoming()[0])
    assert [x.address for x in env.recipients] == ["r0@example.test", "r1@example.test"]
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.postfix
def test_recipient_limit_matches_postfix(start_postier, start_postfix):
    compare(start_postier, start_postfix, {"smtpd_recipient_limit": "2"}, RCPT_LIMIT_DIALOG)


# ------------------------------------------------------------ error limits

ERRORS = {"smtpd_soft_error_limit": "2", "smtpd_hard_error_limit": "3",
          "smtpd_error_sleep_time": "0"}
ERROR_DIALOG = [EHLO, "FOO", "MAIL FROM:<bad", MAIL, "BAR", "NOOP"]


def test_hard_error_limit(start_postier):
    """The third error reply is followed at once by 421 and a disconnect."""
    srv = start_postier(ERRORS)
    with Smtp(srv.port) as c:
        c.reply()
        c.cmd(EHLO)
        assert c.cmd("FOO").text == "500 5.5.2 Error: command not recognized"
        assert c.cmd("MAIL FROM:<bad").text == "501 5.1.7 Bad sender address syntax"
        assert c.cmd(MAIL).text == "250 2.1.0 Ok"
        assert c.cmd("BAR").text == "500 5.5.2 Error: command not recognized"
        assert c.reply().text == f"421 4.7.0 {MYHOSTNAME} Error: too many errors"
        assert c.at_eof()
    assert srv.wait_log("too many errors after UNKNOWN from localhost[127.0.0.1]")
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.postfix
def test_error_limits_match_postfix(start_postier, start_postfix):
    got = compare(start_postier, start_postfix, ERRORS, ERROR_DIALOG)
    assert got[-1] == f"421 4.7.0 {MYHOSTNAME} Error: too many errors"


# ------------------------------------------------------------ anvil


def test_connection_count_limit(start_postier):
    srv = start_postier({**OUTSIDE, **NO_PTR, "smtpd_client_connection_count_limit": "1"})
    first = Smtp(srv.port)
    try:
        assert first.reply().code == 220
        with Smtp(srv.port) as second:
            assert second.reply().text == (
                f"421 4.7.0 {MYHOSTNAME} Error: too many connections from 127.0.0.1")
            assert second.at_eof()
        # another client is served meanwhile
        assert new_session_accepts_mail(srv.port, source="127.0.0.2").code == 250
        assert first.cmd(EHLO).code == 250
        assert first.cmd("QUIT").code == 221
    finally:
        first.close()
    assert srv.wait_log("disconnect from unknown[127.0.0.1] ehlo=1 quit=1 commands=2")
    # once the first session is gone, the same client is served again
    assert new_session_accepts_mail(srv.port).code == 250
    assert srv.wait_log("warning: Connection concurrency limit exceeded: 2 from "
                        "unknown[127.0.0.1] for service 127.0.0.1:")


def test_connection_rate_limit(start_postier):
    srv = start_postier({**OUTSIDE, **NO_PTR, "smtpd_client_connection_rate_limit": "2"})
    replies = []
    for _ in range(3):
        with Smtp(srv.port, source="127.0.0.3") as c:
            replies.append(c.reply().text)
            if replies[-1].startswith("220"):
                c.cmd("QUIT")
            else:
                assert c.at_eof()
    assert replies == [f"220 {MYHOSTNAME} ESMTP"] * 2 + [
        f"421 4.7.0 {MYHOSTNAME} Error: too many connections from 127.0.0.3"]
    assert new_session_accepts_mail(srv.port, source="127.0.0.2").code == 250


def _anvil_transcript(port: int, limit: str) -> list[str]:
    out = []
    if limit == "count":
        with Smtp(port, source="127.0.0.3") as first:
            out.append(first.reply().text)
            with Smtp(port, source="127.0.0.3") as second:
                out.append(second.reply().text)
                if out[-1].startswith("220"):
                    out.append(second.cmd("NOOP").text)
                else:
                    out.append(str(second.at_eof()))
    else:
        for _ in range(3):
            with Smtp(port, source="127.0.0.3") as c:
                out.append(c.reply().text)
                if out[-1].startswith("220"):
                    c.cmd("QUIT")
    out.append(str(new_session_accepts_mail(port, source="127.0.0.2")))
    return out


@pytest.mark.postfix
@pytest.mark.parametrize("limit", ["count", "rate"])
def test_connection_limits_match_postfix(start_postier, start_postfix, limit):
    ov = {**OUTSIDE, **NO_PTR,
          f"smtpd_client_connection_{limit}_limit": "1" if limit == "count" else "2"}
    want = _anvil_transcript(start_postfix(ov).port, limit)
    got = _anvil_transcript(start_postier(ov).port, limit)
    assert got == want
    assert f"421 4.7.0 {MYHOSTNAME} Error: too many connections from 127.0.0.3" in got


@pytest.mark.postfix
def test_xclient_hosts_are_exempt_from_anvil_like_postfix(start_postier, start_postfix):
    ov = {"mynetworks": "192.0.2.0/24", "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
          "smtpd_client_connection_count_limit": "1"}
    want = _anvil_transcript(start_postfix(ov).port, "count")
    got = _anvil_transcript(start_postier(ov).port, "count")
    assert got == want
    assert got[1:3] == [f"220 {MYHOSTNAME} ESMTP", "250 2.0.0 Ok"]


# ------------------------------------------------------------ timeout


def _timeout_transcript(port: int) -> list[str]:
    with Smtp(port) as c:
        out = [str(c.reply()), str(c.cmd(EHLO).code), str(c.cmd(MAIL))]
        out += [str(r) for r in c.rest()]          # what the server says before it hangs up
    out.append(str(new_session_accepts_mail(port)))
    return out


@pytest.mark.slow
def test_smtpd_timeout(start_postier):
    srv = start_postier({"smtpd_timeout": "2s"})
    got = _timeout_transcript(srv.port)
    assert got[3:] == [f"421 4.4.2 {MYHOSTNAME} Error: timeout exceeded", "250 2.1.0 Ok"]
    assert srv.wait_log("timeout after MAIL from localhost[127.0.0.1]")


@pytest.mark.slow
@pytest.mark.postfix
def test_smtpd_timeout_matches_postfix(start_postier, start_postfix):
    ov = {"smtpd_timeout": "2s"}
    assert _timeout_transcript(start_postier(ov).port) == _timeout_transcript(
        start_postfix(ov).port)


# ------------------------------------------------------------ bad commands

BAD_COMMANDS = [
    EHLO,
    "FOO bar",                      # unknown command
    "",                             # empty line
    "MAIL FROM <sender@example.org>",   # no colon
    "MAIL FROM:<a b@example.org>",  # two address forms
    "MAIL FROM:<sender@example.org> FOO=bar",
    "RCPT TO:<rcpt@example.test>",  # no MAIL
    "DATA x",                       # no transaction (checked before the syntax)
    "HELO",
    "RSET x",
    "VRFY",
    "ETRN",
    "GET / HTTP/1.0",               # non-SMTP: 221 and disconnect
]


def test_bad_commands(start_postier):
    srv = start_postier()
    got = dialog(srv.port, BAD_COMMANDS)
    assert got[2:] == [
        "500 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: bad syntax",
        "501 5.5.4 Syntax: MAIL FROM:<address>",
        "501 5.1.7 Bad sender address syntax",
        "555 5.5.4 Unsupported option: FOO=bar",
        "503 5.5.1 Error: need MAIL command",
        "503 5.5.1 Error: need RCPT command",
        "501 Syntax: HELO hostname",
        "501 5.5.4 Syntax: RSET",
        "501 5.5.4 Syntax: VRFY address",
        "500 Syntax: ETRN domain",
        "221 2.7.0 Error: I can break rules, too. Goodbye.",
    ]
    assert srv.wait_log("warning: non-SMTP command from localhost[127.0.0.1]: GET / HTTP/1.0")
    assert new_session_accepts_mail(srv.port).code == 250


NON_SMTP = ["GET / HTTP/1.0", "POST /x HTTP/1.1", "CONNECT mx:25 HTTP/1.0", "get / http/1.0",
            "Subject: hello", "X-Header:value", "123 abc", "<html>", "-x"]


@pytest.mark.parametrize("line", NON_SMTP)
def test_non_smtp_command(start_postier, line):
    srv = start_postier()
    assert dialog(srv.port, [line]) == [f"220 {MYHOSTNAME} ESMTP",
                                        "221 2.7.0 Error: I can break rules, too. Goodbye."]
    assert new_session_accepts_mail(srv.port).code == 250


@pytest.mark.slow
@pytest.mark.postfix
def test_bad_commands_match_postfix(start_postier, start_postfix):
    compare(start_postier, start_postfix, {}, BAD_COMMANDS)
    pf, pq = start_postfix(), start_postier()
    for line in NON_SMTP + ["NOOP extra", "QUIT x", "DATA x"]:
        assert dialog(pq.port, [EHLO, line]) == dialog(pf.port, [EHLO, line]), line
