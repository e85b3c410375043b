"""Record what real Postfix 3.7's smtp(8)/lmtp(8) logs for scripted servers.

    .venv/bin/python tests/integration/delivery/record_postfix_smtp.py   # as root

For each scenario below: a ScriptedServer answers as the scenario says, a
private real Postfix (tools/postfix_instance.py plus qmgr and the smtp/lmtp
delivery agents, relayhost = [127.0.0.1]:PORT of the scripted server, or a
default_transport lmtp:[127.0.0.1]:PORT) receives one message over SMTP and
delivers it; the `to=<...>` lines Postfix logs are parsed into
(recipient, relay, dsn, status, text) and written, with the scenario, to
data/postfix_smtp_client.json.  The port numbers are replaced by PORT.
test_smtp_postfix_oracle.py replays every scenario against postier's agent
and expects the same results.  Loopback only; the message never leaves the
scripted server.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)

from postfix_instance import MASTER_CF, PostfixInstance, SmtpClient, mail_version  # noqa: E402
from scripted import ScriptedServer  # noqa: E402

OUT = os.path.join(HERE, "data", "postfix_smtp_client.json")

FULL_MASTER = MASTER_CF + """\
qmgr      unix  n       -       n       300     1       qmgr
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
scache    unix  -       -       n       -       1       scache
"""

BODY = "Subject: oracle\n\nline one\n.leading dot\n"

# id, script, recipients, main.cf overrides (client side), lmtp?
SCENARIOS: list[dict] = [
    {"id": "ok", "script": {}},
    {"id": "rcpt_mixed", "rcpts": ["good@remote.test", "bad@remote.test"],
     "script": {"rcpt": {"bad@remote.test": "550 5.1.1 <bad@remote.test>: Recipient address rejected: User unknown"}}},
    {"id": "rcpt_no_enhanced_code", "script": {"rcpt": "550 no such user here"}},
    {"id": "rcpt_class_mismatch", "script": {"rcpt": "550 4.1.1 odd code"}},
    {"id": "rcpt_multiline", "script": {"rcpt": "550 5.7.1 first line\n550 5.7.1 second line"}},
    {"id": "rcpt_all_4xx", "rcpts": ["a@remote.test", "b@remote.test"],
     "script": {"rcpt": "450 4.2.0 <x>: Recipient address rejected: Greylisted"}},
    {"id": "rcpt_3xx", "script": {"rcpt": "354 what"}},
    {"id": "mail_rejected", "script": {"mail": "553 5.1.8 <sender@example.test>: Sender address rejected"}},
    {"id": "mail_421", "script": {"mail": "421 4.4.2 closing"}},
    {"id": "data_rejected", "script": {"data": "554 5.5.1 Error: no valid recipients"}},
    {"id": "data_250", "script": {"data": "250 ok but wrong"}},
    {"id": "dot_rejected", "script": {"dot": "552 5.3.4 Message too big"}},
    {"id": "dot_4xx", "script": {"dot": "451 4.3.0 Error: queue file write error"}},
    {"id": "greeting_554", "script": {"greeting": "554 5.7.1 go away"}},
    {"id": "greeting_421", "script": {"greeting": "421 4.3.2 busy"}},
    {"id": "greeting_554_no_skip", "script": {"greeting": "554 5.7.1 go away"},
     "main_cf": {"smtp_skip_5xx_greeting": "no"}},
    {"id": "ehlo_502_helo_ok", "script": {"ehlo": "502 5.5.2 Error: command not recognized"}},
    {"id": "ehlo_421", "script": {"ehlo": "421 4.7.0 too busy"}},
    {"id": "ehlo_502_helo_501", "script": {"ehlo": "502 5.5.2 no", "helo": "501 bad helo"}},
    {"id": "close_at_greeting", "script": {"greeting": "@close"}},
    {"id": "close_after_ehlo", "script": {"ehlo": "@close"}},
    {"id": "close_after_mail", "script": {"mail": "@close"}},
    {"id": "close_after_rcpt", "script": {"rcpt": "@close"}},
    {"id": "close_after_data", "script": {"data": "@close"}},
    {"id": "close_after_dot", "script": {"dot": "@close"}},
    {"id": "timeout_greeting", "script": {"greeting": "@hang"},
     "main_cf": {"smtp_helo_timeout": "1s"}},
    {"id": "timeout_rcpt", "script": {"rcpt": "@hang"}, "main_cf": {"smtp_rcpt_timeout": "1s"}},
    {"id": "timeout_dot", "script": {"dot": "@hang"}, "main_cf": {"smtp_data_done_timeout": "1s"}},
    {"id": "size_limit", "script": {"size": 100}},
    {"id": "refused", "script": None},
    {"id": "lmtp_per_recipient", "lmtp": True, "rcpts": ["a@remote.test", "b@remote.test"],
     "script": {"dot": ["250 2.0.0 <a@remote.test> Saved", "552 5.2.2 <b@remote.test> Quota exceeded"]}},
    {"id": "lmtp_lhlo_rejected", "lmtp": True, "script": {"lhlo": "500 5.5.1 no"}},
    {"id": "lmtp_all_ok", "lmtp": True, "rcpts": ["a@remote.test", "b@remote.test"],
     "script": {"dot": "250 2.0.0 Ok saved"}},
    {"id": "long_lines", "script": {},
     "body": "Subject: long\nX-Long: " + "y" * 1500 + "\n\n" + "b" * 2100 + "\n.end\n"},
]


class Full(PostfixInstance):
    """The test instance plus qmgr and delivery agents."""

    def write_config(self, overrides=(), tables=None):
        super().write_config(overrides, tables)
        path = os.path.join(self.etc, "master.cf")
        with open(path, "w") as f:
            f.write(FULL_MASTER.format(port=self.port, smtpd_args=""))
        past = time.time() - 3600
        os.utime(path, (past, past))


def submit(pf: PostfixInstance, rcpts: list[str], body: str = BODY) -> str:
    c = SmtpClient("127.0.0.1", pf.port)
    try:
        c.read_reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<sender@example.test>")
        for r in rcpts:
            c.command(f"RCPT TO:<{r}>")
        c.command("DATA")
        for line in body.split("\n")[:-1]:
            c.send_line("." + line if line.startswith(".") else line)
        r = c.command(".")
        c.command("QUIT")
    finally:
        c.close()
    m = re.search(r"queued as (\w+)", r.text)
    if not m:
        raise RuntimeError(f"submission failed: {r.code} {r.text}")
    return m.group(1)


LINE = re.compile(r"postfix/(?P<svc>\w+)\[\d+\]: (?P<qid>\w+): to=<(?P<rcpt>[^>]*)>, "
                  r"(?:orig_to=<[^>]*>, )?relay=(?P<relay>\S+), .*?dsn=(?P<dsn>[\d.]+), "
                  r"status=(?P<status>\w+) \((?P<text>.*)\)$")


def run(scn: dict, pf: PostfixInstance) -> dict:
    rcpts = scn.get("rcpts", ["user@remote.test"])
    lmtp = scn.get("lmtp", False)
    srv = ScriptedServer(scn["script"], lmtp=lmtp) if scn["script"] is not None else None
    if srv is None:
        from postfix_instance import free_port
        port = free_port()
    else:
        port = srv.port
    try:
        overrides = {"default_transport": "smtp", "relay_transport": "smtp",
                     "relayhost": f"[127.0.0.1]:{port}",
                     "smtp_connection_cache_on_demand": "no", "lmtp_connection_cache_on_demand": "no"}
        if lmtp:
            overrides["default_transport"] = f"lmtp:inet:[127.0.0.1]:{port}"
            overrides["relay_transport"] = overrides["default_transport"]
            overrides["relayhost"] = ""
        overrides.update(scn.get("main_cf", {}))
        pf.restart(overrides)
        start = pf.log_size()
        qid = submit(pf, rcpts, scn.get("body", BODY))
        deadline = time.time() + 30
        results = {}
        while time.time() < deadline and len(results) < len(rcpts):
            for line in pf.read_log(start).splitlines():
                m = LINE.search(line)
                if m and m.group("qid") == qid:
                    results[m.group("rcpt")] = m
            time.sleep(0.1)
        if len(results) < len(rcpts):
            raise RuntimeError(f"{scn['id']}: no result in the log:\n{pf.read_log(start)}")
        out = []
        for r in rcpts:
            m = results[r]
            out.append({"rcpt": r, "relay": m.group("relay").replace(str(port), "PORT"),
                        "dsn": m.group("dsn"), "status": m.group("status"),
                        "text": m.group("text").replace(f":{port}", ":PORT")})
        rec = dict(scn)
        rec["postfix"] = out
        if srv is not None:
            srv.wait_sessions(1)
            rec["commands_seen"] = [c for s in srv.sessions for c in s.commands]
            rec["messages_seen"] = [m.decode("utf-8", "surrogateescape")
                                    for s in srv.sessions for m in s.messages]
        return rec
    finally:
        if srv is not None:
            srv.close()


def main() -> int:
    records = []
    with Full() as pf:
        pf.write_config({})
        for scn in SCENARIOS:
            rec = run(scn, pf)
            print(rec["id"], [(x["status"], x["dsn"], x["text"]) for x in rec["postfix"]])
            records.append(rec)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"format": "postier/smtp-client-oracle/1",
                   "provenance": f"recorded from real Postfix {mail_version()} smtp(8)/lmtp(8) by "
                                 "tests/integration/delivery/record_postfix_smtp.py",
                   "body": BODY, "scenarios": records}, f, indent=1)
        f.write("\n")
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
