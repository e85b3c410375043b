"""The queue-manager tests point the process log at a temp maillog: put
the previous log settings back after each test."""

from __future__ import annotations

import pytest

from postier import log


@pytest.fixture(autouse=True)
def _restore_log():
    lg = log.LOG
    saved = dict(service=lg.service, progname=lg.progname, stderr=lg.stderr,
                 maillog_file=lg.maillog_file, syslog_name=lg.syslog_name)
    yield
    log.setup(saved.pop("service"), **saved)
