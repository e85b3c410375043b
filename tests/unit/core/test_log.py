"""postier.log: Postfix-shaped lines on stderr and in maillog_file."""

import os
import re

from postier import log

SYSLOG_LINE = re.compile(
    r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postier/smtpd\[(\d+)\]: (.*)$")


def test_stderr_prefix_is_progname(capsys):
    log.setup("postmap", progname="postmap", stderr=True)
    log.warning("regexp map /x, line 3: no replacement text: using empty string")
    log.info("plain")
    err = capsys.readouterr().err.splitlines()
    assert err == ["postmap: warning: regexp map /x, line 3: no replacement text: using empty string",
                   "postmap: plain"]


def test_maillog_file_lines_have_postfix_shape(tmp_path):
    path = tmp_path / "maillog"
    log.setup("smtpd", maillog_file=str(path))
    log.info("3F1A2B: client=unknown[192.0.2.1]")
    log.warning("hostname nowhere.test does not resolve to address 192.0.2.1")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    m = SYSLOG_LINE.match(lines[0])
    assert m, lines[0]
    assert int(m.group(1)) == os.getpid()
    assert m.group(2) == "3F1A2B: client=unknown[192.0.2.1]"
    assert SYSLOG_LINE.match(lines[1]).group(2).startswith("warning: hostname nowhere.test")


def test_fatal_exits_with_status_1(capsys):
    log.setup("postconf", progname="postconf", stderr=True)
    try:
        log.fatal("open /nonexistent/main.cf: No such file or directory")
    except SystemExit as e:
        assert e.code == 1
    else:
        raise AssertionError("fatal() did not exit")
    assert capsys.readouterr().err == (
        "postconf: fatal: open /nonexistent/main.cf: No such file or directory\n")


def test_service_log_lines_carry_that_programs_tag_in_order(tmp_path):
    path = tmp_path / "maillog"
    log.setup("smtpd", maillog_file=str(path), syslog_name="postfix-in")
    cleanup = log.ServiceLog("cleanup")
    log.info("3F1A2B: client=unknown[192.0.2.1]")
    cleanup.info("3F1A2B: message-id=<a@b>")
    log.warning("3F1A2B: a map said so", "qmgr")
    cleanup.warning("3F1A2B: reject: header Subject: x")
    log.info("disconnect from unknown[192.0.2.1]")
    tags = [re.match(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+)\[(\d+)\]: (.*)$", x).group(1, 3)
            for x in path.read_text().splitlines()]
    assert tags == [("postfix-in/smtpd", "3F1A2B: client=unknown[192.0.2.1]"),
                    ("postfix-in/cleanup", "3F1A2B: message-id=<a@b>"),
                    ("postfix-in/qmgr", "warning: 3F1A2B: a map said so"),
                    ("postfix-in/cleanup", "warning: 3F1A2B: reject: header Subject: x"),
                    ("postfix-in/smtpd", "disconnect from unknown[192.0.2.1]")]


def test_service_log_on_stderr_keeps_the_commands_prefix(capsys):
    log.setup("sendmail", progname="sendmail", stderr=True)
    log.ServiceLog("cleanup").warning("bad thing")
    assert capsys.readouterr().err == "sendmail: warning: bad thing\n"


def test_preopened_maillog_is_reused_after_setup_again(tmp_path):
    """After preopen() (as root, before the privilege drop) a later open of
    the same maillog in the process duplicates that descriptor: the lines
    go to the file preopened even when the path cannot be opened any more
    (here: it now names another file)."""
    path = tmp_path / "maillog"
    log.setup("qmgr", maillog_file=str(path))
    log.LOG.preopen()
    moved = tmp_path / "maillog.preopened"
    os.rename(path, moved)
    try:
        log.setup("qmgr", maillog_file=str(path))    # closes the process's descriptor
        log.info("1A: removed")
        log.ServiceLog("bounce").info("1A: sender non-delivery notification: 2B")
    finally:
        os.close(log.MailLog._preopened[1])
        log.MailLog._preopened = None
    assert not path.exists()
    lines = moved.read_text().splitlines()
    assert [x.split(": ", 1)[1] for x in lines] == [
        "1A: removed", "1A: sender non-delivery notification: 2B"]
    assert "/qmgr[" in lines[0] and "/bounce[" in lines[1]
