"""postier's smtp/lmtp agent against the scripted servers real Postfix 3.7 was recorded with.

data/postfix_smtp_client.json holds, for each scenario, the script of the
server, the commands Postfix's smtp(8)/lmtp(8) sent and the status line it
logged per recipient (recorded by record_postfix_smtp.py from a real
Postfix).  Each scenario is replayed here with postier's agent; status,
dsn, relay, text and the command sequence must be the same.
"""

from __future__ import annotations

import json
import os
import re
import socket

import pytest
from scripted import ScriptedServer

import postier.delivery.agents  # noqa: F401
from postier.delivery import AGENTS

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = json.load(open(os.path.join(HERE, "data", "postfix_smtp_client.json")))
SCENARIOS = {s["id"]: s for s in FIXTURE["scenarios"]}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def original_part(message: bytes) -> list[bytes]:
    """The lines of a received message that come from the submitted message:
    the X-Long header (with its continuation lines) and the body.  Postfix's
    copy also has its own Received:, Message-Id:, Date: and From: headers."""
    lines = message.split(b"\r\n")
    blank = lines.index(b"")
    head = lines[:blank]
    out = []
    for i, line in enumerate(head):
        if line.startswith(b"X-Long:"):
            out.append(line)
            out += [x for x in head[i + 1:] if x.startswith(b" ")][:10]
    return out + lines[blank:]


def normalize(text: str) -> str:
    # the message sizes differ: Postfix's queue file holds its own Received: header
    return re.sub(r"message size \d+", "message size N", text)


@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_same_result_as_postfix(sid, make_request, run):
    scn = SCENARIOS[sid]
    lmtp = scn.get("lmtp", False)
    # Postfix's qmgr hands recipients over sorted by address; so does this test
    rcpts = sorted(scn.get("rcpts", ["user@remote.test"]))
    main_cf = "myhostname = mx.example.test\nsmtp_connection_cache_on_demand = no\n" \
              "lmtp_connection_cache_on_demand = no\n"
    main_cf += "".join(f"{k} = {v}\n" for k, v in scn.get("main_cf", {}).items())
    srv = ScriptedServer(scn["script"], lmtp=lmtp) if scn["script"] is not None else None
    port = srv.port if srv else free_port()
    try:
        nexthop = f"inet:[127.0.0.1]:{port}" if lmtp else f"[127.0.0.1]:{port}"
        body = scn.get("body", FIXTURE["body"]).encode()
        if "size" in (scn["script"] or {}):   # bigger than the server's SIZE, as Postfix's copy was
            body = b"X-Pad: " + b"x" * 400 + b"\n" + body
        req = make_request(body, rcpts, nexthop, main_cf,
                           transport="lmtp" if lmtp else "smtp", orig=True)
        statuses = run(AGENTS["lmtp" if lmtp else "smtp"](req))
        got = sorted([{"rcpt": s.recipient.address, "relay": s.relay.replace(str(port), "PORT"),
                "dsn": s.dsn, "status": s.status, "text": normalize(s.text.replace(f":{port}", ":PORT"))}
               for s in statuses], key=lambda x: x["rcpt"])
        want = sorted([dict(x, text=normalize(x["text"])) for x in scn["postfix"]],
                      key=lambda x: x["rcpt"])
        assert got == want
        if srv is not None:
            assert srv.wait_sessions(1) or not scn["commands_seen"]
            assert srv.commands() == scn["commands_seen"]
            ours = [m for sess in srv.sessions for m in sess.messages]
            theirs = [m.encode("utf-8", "surrogateescape") for m in scn["messages_seen"]]
            assert [original_part(m) for m in ours] == [original_part(m) for m in theirs]
    finally:
        if srv is not None:
            srv.close()
