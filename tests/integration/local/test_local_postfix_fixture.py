"""Replay the scenarios recorded from real Postfix (data/postfix_local.json,
made by record_postfix_local.py) through postier's local, pipe and virtual
agents, and compare every delivery status line: recipient, original
recipient, relay, DSN, status and text; and the lines local(8) prepends to a
mailbox.  Root only (real users; see conftest.py)."""

from __future__ import annotations

import json
import os
import re

import local_scenarios as S
import pytest

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "postfix_local.json")
with open(DATA) as _f:
    RECORDED = {sc["id"]: sc for sc in json.load(_f)["scenarios"]}


def status_lines(st, root: str) -> list[dict]:
    events = getattr(st, "events", None) or [st]
    return [S.normalize(e.recipient.address, e.recipient.orig or "", e.relay, e.dsn, e.status,
                        e.text, root) for e in events]


def mailbox_head(path: str) -> list[str]:
    head = []
    with open(path) as f:
        for line in f.read().split("\n"):
            if line.startswith("Received:"):
                break
            head.append(re.sub(r"  \w{3} \w{3} [ \d]\d [\d:]{8} \d{4}$", "  DATE", line))
    return head


@pytest.mark.parametrize("sc", S.SCENARIOS, ids=[sc["id"] for sc in S.SCENARIOS])
def test_same_status_as_postfix(lab, sc):
    rec = RECORDED.get(sc["id"])
    if rec is None:
        pytest.skip("not recorded yet: run record_postfix_local.py")
    root = lab.root
    if sc.get("aliases") is not None:
        lab.aliases(S.subst(sc["aliases"], root))
    extra = "".join(f"{k} = {S.subst(v, root)}\n" for k, v in sc.get("main_cf", {}).items())
    lab.config(extra, master=S.subst(sc.get("master", ""), root))
    S.prepare(root, sc)
    for t in sc.get("tables", []):
        from postier.cli import map_cmd
        assert map_cmd.main([S.subst(t, root)]) == 0
    # what smtpd would have put in front of the message
    body = (S.RECEIVED + sc.get("body", S.BODY)).encode()
    rcpt = sc["rcpt"]
    transport = sc.get("transport", "local")
    nexthop = rcpt.rsplit("@", 1)[1] if transport != "local" else "mx.example.test"
    st = lab.deliver(rcpt, sender=sc.get("sender", S.SENDER), body=body, transport=transport,
                     nexthop=nexthop)
    assert status_lines(st, root) == rec["qid_lines"]
    if "mailbox_head" in rec:
        user = "ptest1"
        assert mailbox_head(os.path.join(lab.mail, user)) == rec["mailbox_head"]
    logged = S.normalize_text(lab.log(), root)
    for w in rec["warnings"]:
        assert w in logged
