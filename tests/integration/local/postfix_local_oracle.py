"""Real Postfix 3.7 as the oracle for local(8), virtual(8) and pipe(8).

    from postfix_local_oracle import LocalOracle
    with LocalOracle() as pf:
        pf.configure({"mail_spool_directory": "@ROOT@/mail"},
                     aliases="root: ptest1\\n", extra_master="mypipe unix - n n - - pipe ...")
        pf.start()
        qid = pf.send("sender@example.test", ["root@mx.example.test"], "Subject: x\\n\\nbody\\n")
        lines = pf.wait_delivery(qid)      # the local/pipe/virtual log lines of that message

A private instance (tools/postfix_instance.py) whose master.cf, unlike the
compat harness, runs qmgr and the local, virtual and pipe delivery agents.
Nothing can leave the machine: smtpd listens on 127.0.0.1 only, every
non-local transport is `error:` (default, relay), and the only peers are
files and commands under the instance root.  Bounces go to local or error
destinations too.

Only used by the recorder (record_postfix_local.py) and by the oracle
tests, which need root, the real Postfix and the test users.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import postfix_instance as _pi  # noqa: E402

MASTER_CF = """\
# postier local-delivery oracle: loopback only, no remote transports.
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
{extra}
"""

BASE = [
    ("default_transport", "error:no remote delivery here"),
    ("relay_transport", "error:no remote delivery here"),
    ("local_transport", "local:$myhostname"),
    ("virtual_transport", "virtual"),
    ("alias_maps", "hash:@ROOT@/aliases"),
    ("alias_database", "hash:@ROOT@/aliases"),
    ("mail_spool_directory", "@ROOT@/mail"),
    ("biff", "no"),
    ("local_recipient_maps", ""),
    ("queue_run_delay", "1s"),
    ("minimal_backoff_time", "1s"),
    ("maximal_backoff_time", "2s"),
    ("delay_warning_time", "0"),
    ("bounce_queue_lifetime", "0"),
]


class LocalOracle(_pi.PostfixInstance):
    """A PostfixInstance that delivers locally."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.extra_master = ""
        self.mail = os.path.join(self.root, "mail")

    def configure(self, overrides=(), *, aliases: str | None = None, extra_master: str = "",
                  tables=None) -> None:
        self.extra_master = extra_master
        os.makedirs(self.mail, exist_ok=True)
        os.chmod(self.mail, 0o1777)
        params = list(BASE) + list(overrides.items() if hasattr(overrides, "items") else overrides)
        if aliases is not None:
            path = os.path.join(self.root, "aliases")
            with open(path, "w") as f:
                f.write(aliases)
            os.chmod(path, 0o644)
            past = time.time() - 3600
            os.utime(path, (past, past))
            p = subprocess.run(["postalias", path], capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(f"postalias failed: {p.stderr}")
        self.write_config(params, tables)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port, extra=extra_master))
        past = time.time() - 3600
        os.utime(os.path.join(self.etc, "master.cf"), (past, past))
        os.utime(os.path.join(self.etc, "main.cf"), (past, past))

    def send(self, sender: str, rcpts: list[str], message: str) -> str | None:
        """One SMTP transaction; returns the queue ID (None when refused)."""
        self.remember_children()
        c = _pi.SmtpClient("127.0.0.1", self.port)
        try:
            c.read_reply()
            c.command("HELO client.example.test")
            c.command(f"MAIL FROM:<{sender}>")
            for r in rcpts:
                c.command(f"RCPT TO:<{r}>")
            if c.command("DATA").code != 354:
                return None
            for line in message.split("\n")[:-1] if message.endswith("\n") else message.split("\n"):
                c.send_line("." + line if line.startswith(".") else line)
            r = c.command(".")
            c.command("QUIT")
        finally:
            c.close()
        m = re.search(r"queued as (\w+)", r.text)
        return m.group(1) if m else None

    def wait_delivery(self, qid: str, timeout: float = 20, count: int = 1,
                      start: int = 0) -> list[str]:
        """Wait until `count` status= lines for `qid` were logged (by any
        agent); return every log line of that queue ID, stripped of the
        time stamp and host."""
        deadline = time.time() + timeout
        lines: list[str] = []
        while time.time() < deadline:
            self.remember_children()
            text = self.read_log(start)
            lines = [ln for ln in text.splitlines() if f" {qid}: " in ln or "warning" in ln]
            if sum(1 for ln in lines if f"{qid}: " in ln and "status=" in ln) >= count:
                break
            time.sleep(0.05)
        return [re.sub(r"^\w{3} [ \d]\d [\d:]{8} \S+ ", "", ln) for ln in lines]
