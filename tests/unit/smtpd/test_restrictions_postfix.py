"""The restriction engine against real Postfix, live.

Each scenario is run on a private Postfix 3.7 instance
(tools/postfix_instance.py: loopback only, XCLIENT for the simulated
client), recorded in the compat fixture format, and replayed through the
engine (test_restrictions_support.Dialog); replies and log lines must be
the same.  Needs root and the Debian postfix package (marker `postfix`).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time

import pytest
from test_restrictions_support import ROOT, Dialog, fixture_log

pytestmark = [pytest.mark.postfix, pytest.mark.slow]

OUT = {"ADDR": "198.51.100.7", "NAME": "[UNAVAILABLE]"}
RR = {"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}
E = ["EHLO client.remote.test", "MAIL FROM:<sender@remote.test>"]
LOG_PREFIX = re.compile(
    r"^\w{3} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ (postfix(?:/[\w.-]+)*)\[\d+\]: ")


@pytest.fixture(scope="module")
def pf():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import postfix_instance as pi
    except ImportError:
        pytest.skip("tools/postfix_instance.py not available")
    if not pi.postfix_available():
        pytest.skip("real Postfix not available (needs root and the postfix package)")
    inst = pi.PostfixInstance()
    yield inst
    inst.cleanup()


def msg(text: str) -> dict:
    return {"data": text}


def record(pf, name: str, overrides: dict, tables: dict, sessions: list) -> list[dict]:
    """Run `sessions` [(xclient | None, commands)] on Postfix; fixture dialogs."""
    pf.stop()
    # one smtpd process for the whole scenario: the start-up messages it
    # logs (tables it cannot open ...) then fall before the recorded sessions
    pf.write_config({**overrides, "default_process_limit": "1"},
                    tables={k: (v[0], v[1]) for k, v in tables.items()})
    pf.start()
    out = []
    for n, (xc, cmds) in enumerate(sessions):
        start = pf.log_size()
        wire = [c if isinstance(c, str) else c["data"].replace("\n", "\r\n") + "." for c in cmds]
        replies = pf.session(wire, xclient=xc)
        pf.wait_log("disconnect from", 10, start=start)
        time.sleep(0.25)
        raw = pf.read_log(start)
        ids = list(dict.fromkeys(re.findall(r"\]: ([0-9A-F]{6,}): ", raw)))
        log = []
        for line in raw.splitlines():
            m = LOG_PREFIX.match(line)
            if not m:
                continue
            text = line[m.end():]
            if text.startswith(("connect from ", "disconnect from ")) or "public/qmgr" in text:
                continue
            for qid in ids:
                text = text.replace(qid, "QUEUEID")
            log.append(f"{m.group(1)}: " + text.replace(pf.tables, "@TABLES@"))
        steps = [{"cmd": None, "reply_code": replies[1 if xc else 0].code,
                  "reply_text": replies[1 if xc else 0].text}]
        for cmd, r in zip(cmds + ["QUIT"], replies[2 if xc else 1:], strict=False):
            step = {"data": cmd["data"]} if isinstance(cmd, dict) else {"cmd": cmd}
            text = r.text
            for qid in ids:
                text = text.replace(qid, "QUEUEID")
            step.update(reply_code=r.code, reply_text=text)
            steps.append(step)
        out.append({"id": f"{name}/{n}", "scenario": name,
                    "main_cf_overrides": list(overrides.items()),
                    "tables": {k: {"type": v[0], "text": v[1]} for k, v in tables.items()},
                    "xclient": xc, "dialog": steps, "log": log})
    return out


def replay(dialogs: list[dict], base, monkeypatch) -> None:
    for n, dialog in enumerate(dialogs):
        work = base / str(n)
        work.mkdir(parents=True)
        d = Dialog(dialog, work, monkeypatch, own_addresses_=["127.0.0.1"])
        d.run()
        bad = [(i, got, want) for i, got, want in d.checked if got != want]
        assert not bad, f"{dialog['id']}: step, got, want: {bad}"
        tdir = str(work / "tables")
        got_log = [ln.replace(tdir, "@TABLES@") for ln in d.log_lines()]
        assert got_log == fixture_log(dialog), dialog["id"]


@pytest.fixture
def compare(pf, tmp_path, monkeypatch):
    runs = iter(range(1000))

    def run(name, overrides, tables, sessions):
        dialogs = record(pf, name, {**RR, **overrides}, tables, sessions)
        replay(dialogs, tmp_path / f"run{next(runs)}", monkeypatch)
        return dialogs
    return run


RCPT_VALUES = """\
r1@example.test 550 5.1.1 r one
r2@example.test 450 4.1.7 r two
r3@example.test REJECT 5.1.2 r three
r4@example.test RELAY
r6@example.test defer_if_permit
r7@example.test defer_if_reject
r8@example.test DEFER
r10@example.test 12345
r12@example.test 550
r13@example.test 599 9.9.9 bad dsn
r15@example.test REJECT 4.7.1 mismatch
r16@example.test 550 5.1.1x nodsn
r19@example.test DEFER 5.2.2 deferred dsn
a@example.test defer_if_reject, reject
e@example.test warn_if_reject reject
g@example.test warn_if_reject defer_if_permit
h@example.test defer_if_reject reject_unauth_destination
"""


def test_access_values(compare):
    compare("values", {"smtpd_relay_restrictions": "permit_mynetworks, defer_unauth_destination",
                       "relay_domains_reject_code": "550", "reject_code": "553",
                       "smtpd_recipient_restrictions": "check_recipient_access hash:@TABLES@/r, "
                                                       "check_client_access hash:@TABLES@/c, "
                                                       "check_sender_access hash:@TABLES@/s"},
            {"r": ("hash", RCPT_VALUES),
             "c": ("hash", "198.51.100.8 550 5.1.1 client one\n"),
             "s": ("hash", "s1@remote.test 550 5.1.2 s two\n")},
            [(OUT, E + [f"RCPT TO:<{w}@example.test>" for w in
                        ("r1", "r2", "r3", "r4", "r6", "r7", "r8", "r10", "r12", "r13", "r15",
                         "r16", "r19", "a", "e", "g", "h")] + ["RCPT TO:<x@elsewhere.test>"]),
             ({"ADDR": "198.51.100.8", "NAME": "[UNAVAILABLE]"}, E + ["RCPT TO:<u@example.test>"]),
             (OUT, ["EHLO a.test", "MAIL FROM:<s1@remote.test>", "RCPT TO:<u@example.test>"])])


def test_configuration_errors(compare):
    compare("errors", {"smtpd_restriction_classes": "c2",
                       "c2": "check_recipient_access hash:@TABLES@/r",
                       "smtpd_recipient_restrictions": "c2, check_sender_access hash:/nonexistent/x, "
                                                       "reject_unauth_destination, no_such_thing"},
            {"r": ("hash", "loop@example.test c2\n"
                           "map@example.test check_sender_access hash:/etc/x\n")},
            [(OUT, E + ["RCPT TO:<loop@example.test>", "RCPT TO:<map@example.test>",
                        "RCPT TO:<u@example.test>"])])


def test_unknown_client_names(compare):
    compare("names", {"smtpd_recipient_restrictions": "reject_unknown_client_hostname, "
                                                      "reject_unknown_reverse_client_hostname"},
            {}, [(xc, E + ["RCPT TO:<u@example.test>"]) for xc in (
                OUT, {"ADDR": "198.51.100.7", "NAME": "[TEMPUNAVAIL]"},
                {"ADDR": "198.51.100.7", "NAME": "x.example.test", "REVERSE_NAME": "[UNAVAILABLE]"},
                {"ADDR": "198.51.100.7", "NAME": "x.example.test",
                 "REVERSE_NAME": "x.example.test"})])


def test_actions(compare):
    compare("actions",
            {"smtpd_log_access_permit_actions": "static:all",
             "smtpd_sender_restrictions": "check_sender_access hash:@TABLES@/s",
             "smtpd_recipient_restrictions": "check_recipient_access hash:@TABLES@/r, "
                                             "reject_multi_recipient_bounce, "
                                             "check_reverse_client_hostname_access hash:@TABLES@/c",
             "smtpd_data_restrictions": "check_sender_access hash:@TABLES@/d"},
            {"s": ("hash", "f@remote.test FILTER smtp:[127.0.0.1]:10025\nf2@remote.test FILTER x\n"
                           "h@remote.test HOLD\nd@remote.test DISCARD\nr@remote.test REDIRECT x\n"
                           "ok@remote.test OK\nw@remote.test WARN\ni@remote.test INFO note\n"),
             "r": ("hash", "rej@example.test REJECT\nh@example.test HOLD again\n"
                           "f@example.test FILTER other:x\nok@example.test OK\n"
                           "a@example.test REDIRECT x@example.test\n"
                           "b@example.test BCC b1@example.test\np@example.test PREPEND X-A: 1\n"),
             "c": ("hash", "rev.example REJECT reverse name\n"),
             "d": ("hash", "h@remote.test HOLD at data\nw@remote.test WARN data warn\n")},
            [(OUT, ["EHLO a.test", f"MAIL FROM:<{s}@remote.test>", "RCPT TO:<f@example.test>",
                    "RCPT TO:<h@example.test>", "RCPT TO:<rej@example.test>",
                    "RCPT TO:<ok@example.test>", "RCPT TO:<a@example.test>",
                    "RCPT TO:<b@example.test>", "RCPT TO:<p@example.test>", "DATA",
                    msg("Subject: x\n\nbody\n")])
             for s in ("f", "f2", "h", "d", "r", "ok", "w", "i")]
            + [(OUT, ["EHLO a.test", "MAIL FROM:<>", "RCPT TO:<u@example.test>",
                      "RCPT TO:<v@example.test>"]),
               ({**OUT, "REVERSE_NAME": "a.rev.example"}, E + ["RCPT TO:<u@example.test>"])])


def test_mynetworks_forms(compare):
    clients = [({"ADDR": a, "NAME": n}, E + ["RCPT TO:<x@elsewhere.test>"]) for a, n in (
        ("192.0.2.5", "inside.example"), ("192.0.2.7", "a.example"), ("192.0.2.8", "b.example"),
        ("IPV6:2001:db8::5", "c.example"))]
    for mn in ("inside.example", "192.0.2.0/24, !192.0.2.5", "!192.0.2.5, 192.0.2.0/24",
               "hash:@TABLES@/n", "192.0.2.5/24", "[2001:db8::]/32", "/nonexistent/hosts"):
        compare("mynetworks", {"mynetworks": mn}, {"n": ("hash", "192.0.2.7 x\n192.0.2 x\n")},
                clients)


def test_unlisted(compare):
    compare("unlisted",
            {"local_recipient_maps": "hash:@TABLES@/l", "virtual_alias_domains": "valias.test",
             "virtual_alias_maps": "hash:@TABLES@/va", "virtual_mailbox_domains": "vbox.test",
             "virtual_mailbox_maps": "hash:@TABLES@/vm", "relay_domains": "relay.test, relay2.test",
             "relay_recipient_maps": "hash:@TABLES@/rr",
             "smtpd_sender_restrictions": "reject_unlisted_sender"},
            {"l": ("hash", "known@example.test x\n"), "va": ("hash", "alias@valias.test x\n"),
             "vm": ("hash", "box@vbox.test x\n"), "rr": ("hash", "r@relay.test x\n@relay2.test x\n")},
            [(OUT, E + [f"RCPT TO:<{r}>" for r in (
                "known@example.test", "unknown@example.test", "postmaster@example.test",
                "MAILER-DAEMON@example.test", "alias@valias.test", "nope@valias.test",
                "box@vbox.test", "nope@vbox.test", "r@relay.test", "nope@relay.test",
                "any@relay2.test", "unknown", "x@[127.0.0.1]", "alias@example.test",
                "x%y@relay.test", "a!b!c@example.test", "u%example.test@example.test")]),
             (OUT, ["EHLO a.test", "MAIL FROM:<nope@example.test>", "RCPT TO:<known@example.test>"]),
             (OUT, ["EHLO a.test", "MAIL FROM:<nope@valias.test>", "RCPT TO:<known@example.test>"])])


def test_stages(compare):
    compare("stages",
            {"smtpd_sender_restrictions": "defer_if_permit, check_sender_access hash:@TABLES@/s",
             "smtpd_end_of_data_restrictions": "check_sender_access hash:@TABLES@/e",
             "smtpd_data_restrictions": "warn_if_reject reject"},
            {"s": ("hash", "rej@remote.test REJECT\n"),
             "e": ("hash", "e@remote.test REJECT eod no\nf@remote.test DEFER_IF_PERMIT later\n")},
            [(OUT, ["EHLO a.test", "MAIL FROM:<ok@remote.test>", "RCPT TO:<u@example.test>",
                    "RCPT TO:<x@elsewhere.test>"]),
             (OUT, ["EHLO a.test", "MAIL FROM:<rej@remote.test>", "RCPT TO:<u@example.test>"]),
             (OUT, ["MAIL FROM:<x@remote.test>", "RCPT TO:<postmaster>"])])
    compare("eod",
            {"smtpd_end_of_data_restrictions": "check_sender_access hash:@TABLES@/e",
             "smtpd_data_restrictions": "warn_if_reject reject"},
            {"e": ("hash", "e@remote.test REJECT eod no\nf@remote.test DEFER_IF_PERMIT later\n")},
            [(OUT, ["EHLO a.test", f"MAIL FROM:<{s}@remote.test>", "RCPT TO:<u@example.test>",
                    "RCPT TO:<v@example.test>", "DATA", msg("Subject: x\n\nbody\n")])
             for s in ("e", "f", "ok")])


def test_no_delay(compare):
    compare("nodelay", {"smtpd_delay_reject": "no",
                        "smtpd_client_restrictions": "check_client_access cidr:@TABLES@/c",
                        "smtpd_helo_restrictions": "check_helo_access hash:@TABLES@/h",
                        "smtpd_sender_restrictions": "defer_if_permit"},
            {"c": ("cidr", "127.0.0.1/32 HOLD client hold\n"),
             "h": ("hash", "bad.helo WARN helo warn\nreject.helo REJECT no\n")},
            [(None, ["EHLO bad.helo", "HELO reject.helo", "EHLO good.helo",
                     "MAIL FROM:<x@remote.test>", "RCPT TO:<u@example.test>"])])


class ThreadedPolicyServer:
    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                attrs = {}
                while True:
                    line = f.readline()
                    if not line:
                        return
                    line = line.rstrip(b"\n").decode()
                    if not line:
                        break
                    k, _, v = line.partition("=")
                    attrs[k] = v
                ans = self.answers.get(attrs.get("recipient", ""), "action=DUNNO\n\n")
                if ans == "CLOSE":
                    return
                conn.sendall(ans.encode())
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_policy_service(compare):
    srv = ThreadedPolicyServer({"rej@example.test": "action=REJECT policy says no\n\n",
                                "garbage@example.test": "foo bar\n\n",
                                "hold@example.test": "action=HOLD\n\n",
                                "close@example.test": "CLOSE",
                                "def@example.test": "action=defer_if_permit later\n\n",
                                "empty@example.test": "action=\n\n"})
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    try:
        compare("policy", {"smtpd_recipient_restrictions":
                           f"check_policy_service inet:127.0.0.1:{srv.port}"},
                {}, [(OUT, E + [f"RCPT TO:<{r}@example.test>" for r in (
                    "ok", "rej", "garbage", "hold", "close", "def", "empty")])])
        compare("policy-dead", {"smtpd_recipient_restrictions":
                                f"check_policy_service inet:127.0.0.1:{dead_port}"},
                {}, [(OUT, E + ["RCPT TO:<u@example.test>"])])
    finally:
        srv.close()
