"""Every DNS-based restriction, postier against real Postfix 3.7.

postfix_dns.json was recorded by record_postfix_dns.py: a private real
Postfix whose system resolver asked the same nsd zones (dns_scenarios.py)
inside a private network namespace.  Here `postier run` gets the same
main.cf, its dns_nameservers pointing at the same zones, and must give the
same reply to every command (EHLO: code and first line only, the keyword
list is not what is being tested) and log the same smtpd lines (reject
lines, warnings, and for the client name scenarios the `connect from
NAME[ADDR]` line).
"""

from __future__ import annotations

import json
import os
import time

import dns_scenarios as S
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "postfix_dns.json"), encoding="utf-8") as _f:
    RECORDED = {s["id"]: s for s in json.load(_f)["scenarios"]}

pytestmark = pytest.mark.slow


def _comparable(replies: list[str]) -> list[str]:
    out = []
    for r in replies:
        if r.startswith("250-"):
            r = r.splitlines()[0]          # EHLO: only the first line
        out.append(r)
    return out


def test_every_scenario_was_recorded():
    assert sorted(RECORDED) == sorted(S.SCENARIO_IDS)


def _session_log(srv, start: int, timeout: float = 15) -> str:
    """The maillog written since offset `start`, once the session's
    `disconnect from` line is there."""
    deadline = time.monotonic() + timeout
    while True:
        text = srv.maillog()[start:]
        if "disconnect from" in text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


@pytest.mark.parametrize("sid", S.SCENARIO_IDS)
def test_scenario_matches_postfix(postier_dns, sid):
    sc = next(s for s in S.SCENARIOS if s.id == sid)
    rec = RECORDED[sid]
    srv = postier_dns(S.main_cf(sc), sc.tables)
    for sess, want in zip(sc.sessions, rec["sessions"], strict=True):
        start = len(srv.maillog())
        replies = S.run_session(srv.port, sess)
        log = _session_log(srv, start)
        assert _comparable(replies) == _comparable(want["replies"]), (sess, log)
        assert S.normalize_log(log, keep_connect=sc.keep_connect) == want["log"], sess
