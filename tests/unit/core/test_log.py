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
