"""smtpd's maillog lines have Postfix's shape (the log format is an API:
pflogsumm and admins' scripts parse it).

Each test runs one session against `postier run` with maillog_file set and
checks the session's lines; the `*_matches_postfix` tests run the same
dialog against a private real Postfix and compare the session lines
(without the "Mon DD HH:MM:SS host prog[pid]: " prefix, queue IDs replaced).
Only the lines smtpd(8) writes for a session are compared (connect, client=,
reject, lost connection, timeout/too many errors, disconnect); cleanup's
message-id= line is checked for its tag only (postier/cleanup[PID]).
"""

from __future__ import annotations

import re

import pytest
from smtpd_peers import MYHOSTNAME, Smtp, dialog

EHLO = "EHLO client.example.org"
MAIL = "MAIL FROM:<sender@example.org>"
RCPT = "RCPT TO:<rcpt@example.test>"
RELAY = "RCPT TO:<rcpt@other.test>"
OUTSIDE = {"mynetworks": "192.0.2.0/24"}
DATA = b"From: sender@example.org\r\nSubject: log\r\n\r\nhello\r\n.\r\n"

PREFIX = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) (\w[\w.-]*)/smtpd\[(\d+)\]: (.*)$")
SESSION = re.compile(r"^(connect from |disconnect from |lost connection |timeout after |"
                     r"too many errors |warning: |NOQUEUE: |[0-9A-Z]+: (client=|reject))")
QID = re.compile(r"\b[0-9A-Z]{10,20}\b")


def session_lines(text: str, pids: list[int] | None = None) -> list[str]:
    """The smtpd session lines of a maillog, prefix stripped, queue IDs ->
    QUEUEID.  With `pids` (postier's processes), every smtpd line must come
    from one of them, and all session lines from the same one."""
    out, seen = [], set()
    for line in text.splitlines():
        m = PREFIX.match(line)
        if not m:
            continue
        body = m.group(5)
        if pids is not None:
            assert int(m.group(4)) in pids, line
        if SESSION.match(body):
            seen.add(int(m.group(4)))
            out.append(QID.sub("QUEUEID", body))
    if pids is not None:
        assert len(seen) <= 1, text
    return out


def run(srv, steps, **kw) -> tuple[list[str], list[str]]:
    start = len(srv.maillog())
    before = srv.maillog().count("disconnect from")
    replies = dialog(srv.port, steps, **kw)
    assert srv.wait_log("disconnect from", count=before + 1), srv.maillog()
    return replies, session_lines(srv.maillog()[start:], srv.pids())


def test_full_session_log_lines(start_postier):
    srv = start_postier(OUTSIDE)
    start = len(srv.maillog())
    with Smtp(srv.port) as c:
        c.reply()
        c.cmd(EHLO)
        c.cmd(MAIL)
        assert c.cmd(RELAY).text == "454 4.7.1 <rcpt@other.test>: Relay access denied"
        c.cmd(RCPT)
        c.cmd("DATA")
        c.send(DATA)
        qid = re.search(r"queued as (\w+)", c.reply().text).group(1)
        c.cmd("QUIT")
    assert srv.wait_log("disconnect from")
    raw = srv.maillog()[start:]
    # the Postfix prefix: "Mon DD HH:MM:SS host NAME/smtpd[PID]: "
    assert all(PREFIX.match(x) for x in raw.splitlines() if "/smtpd[" in x)
    lines = [x for x in session_lines(raw, srv.pids()) if not x.startswith("warning")]
    assert lines == [
        "connect from localhost[127.0.0.1]",
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 454 4.7.1 <rcpt@other.test>: "
        "Relay access denied; from=<sender@example.org> to=<rcpt@other.test> proto=ESMTP "
        "helo=<client.example.org>",
        "QUEUEID: client=localhost[127.0.0.1]",
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6",
    ]
    assert f"]: {qid}: client=localhost[127.0.0.1]\n" in raw
    # cleanup runs inside smtpd, and its line carries cleanup(8)'s tag, as
    # in Postfix's log (postier/cleanup[PID of that smtpd])
    smtpd_pid = re.search(rf"/smtpd\[(\d+)\]: {qid}: client=", raw).group(1)
    mid = [x for x in raw.splitlines() if f"]: {qid}: message-id=" in x]
    assert len(mid) == 1 and f" postier/cleanup[{smtpd_pid}]: {qid}: message-id=<" in mid[0], raw


def test_clean_session_counts(start_postier):
    srv = start_postier()
    _, lines = run(srv, [EHLO, MAIL, RCPT, "DATA", DATA])
    assert lines[-1] == ("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 "
                         "quit=1 commands=5")


def test_failed_command_counts(start_postier):
    srv = start_postier(OUTSIDE)
    _, lines = run(srv, [EHLO, MAIL, RELAY, "DATA"])
    assert lines[-1] == ("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=0/1 data=0/1 "
                         "quit=1 commands=3/5")


def test_lost_connection(start_postier):
    srv = start_postier()
    _, lines = run(srv, [EHLO, MAIL, RCPT], quit=False)
    assert lines[-2:] == [
        "lost connection after RCPT from localhost[127.0.0.1]",
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 commands=3",
    ]


def test_too_many_errors(start_postier):
    srv = start_postier({"smtpd_hard_error_limit": "2", "smtpd_error_sleep_time": "0"})
    replies, lines = run(srv, [EHLO, "FOO", "BAR"])
    assert replies[-1] == f"421 4.7.0 {MYHOSTNAME} Error: too many errors"
    assert lines[-2:] == [
        "too many errors after UNKNOWN from localhost[127.0.0.1]",
        "disconnect from localhost[127.0.0.1] ehlo=1 unknown=0/2 commands=1/3",
    ]


SESSIONS = {
    "clean": ({}, [EHLO, MAIL, RCPT, "DATA", DATA], {}),
    "reject": (OUTSIDE, [EHLO, MAIL, RELAY, RCPT, "DATA", DATA], {}),
    "failed": (OUTSIDE, [EHLO, MAIL, RELAY, "DATA", "RSET", "NOOP", "VRFY x"], {}),
    "helo-only": ({}, ["HELO client.example.org", "FOO"], {}),
    "lost": ({}, [EHLO, MAIL, RCPT], {"quit": False}),
    "errors": ({"smtpd_hard_error_limit": "2"}, [EHLO, "FOO", "BAR"], {}),
    "non-smtp": ({}, [EHLO, "GET / HTTP/1.0"], {}),
    "size": ({"message_size_limit": "1000"},
             [EHLO, "MAIL FROM:<sender@example.org> SIZE=2000", MAIL, RCPT, "DATA",
              b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n"], {}),
    "bdat": ({}, [EHLO, MAIL, RCPT, b"BDAT 5\r\nab\r\nc", b"BDAT 3 LAST\r\nd\r\n"], {}),
    "long-command": ({}, [EHLO, "MAIL FROM:<" + "a" * 3000 + "@example.org>"], {}),
}


@pytest.mark.postfix
@pytest.mark.parametrize("name", list(SESSIONS))
def test_session_lines_match_postfix(start_postier, start_postfix, name):
    overrides, steps, kw = SESSIONS[name]
    pf = start_postfix(overrides)
    start = pf.log_size()
    before = pf.read_log().count("disconnect from")
    want_replies = dialog(pf.port, steps, **kw)
    assert pf.wait_log("disconnect from", 10, count=before + 1)
    want = session_lines(pf.read_log(start))
    got_replies, got = run(start_postier(overrides), steps, **kw)
    assert got_replies == want_replies
    assert got == want
