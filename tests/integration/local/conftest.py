"""Fixtures for the local, virtual and pipe delivery tests: real Unix users.

These tests create Unix accounts (ptest1, ptest2, ptest3; tools/testusers.py)
and deliver as them, so they need root; otherwise they are skipped with that
reason.  Everything lives under one world-traversable temp directory:

    ROOT/               0755
      home/ptestN/      the users' home directories
      mail/             the mail spool, root:mail 2775 as on Debian
      pub/              1777, for files written by commands and file aliases
      queue/incoming/   queue files (requests are written here; forwarded
                        messages appear here too)
      etc/aliases(.db)  built with `postier alias`

`lab` (function scope) gives a Lab object:

    lab.aliases("root: ptest1\\n")             write and build ROOT/etc/aliases
    lab.config("home_mailbox = Maildir/")      main.cf text on top of the base
    st = lab.deliver("root@mx.example.test")   one local delivery -> LocalStatus
    lab.mbox("ptest1")                         the spool mailbox text
    lab.log()                                  warnings logged by the agents

The base main.cf: myhostname mx.example.test, mydomain/myorigin
example.test, mydestination with both, alias_maps/alias_database ROOT/etc/
aliases, mail_spool_directory ROOT/mail, queue_directory ROOT/queue,
recipient_delimiter +, message_size_limit 10240000.
"""

from __future__ import annotations

import asyncio
import grp
import io
import os
import shutil
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TOOLS = os.path.join(ROOT_DIR, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import testusers  # noqa: E402

USERS = ("ptest1", "ptest2", "ptest3")
NEED_ROOT = "needs root: creates Unix test users (tools/testusers.py) and delivers as them"


@pytest.fixture(scope="session")
def base_dir():
    if not testusers.can_manage_users():
        pytest.skip(NEED_ROOT)
    d = tempfile.mkdtemp(prefix="postier-local.")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def users(base_dir):
    tu = testusers.TestUsers(base_dir)
    try:
        out = {name: tu.add(name) for name in USERS}
        yield out
    finally:
        tu.close()


class Lab:
    """One test's delivery world (see the module docstring)."""

    def __init__(self, root: str, users: dict):
        self.root = root
        self.users = users
        self.mail = os.path.join(root, "mail")
        self.pub = os.path.join(root, "pub")
        self.queue = os.path.join(root, "queue")
        self.etc = os.path.join(root, "etc")
        for d in (self.mail, self.pub, os.path.join(self.queue, "incoming"), self.etc):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(self.pub, 0o1777)
        os.chown(self.mail, 0, grp.getgrnam("mail").gr_gid)
        os.chmod(self.mail, 0o2775)
        self.extra = ""
        self.master = ""
        self.logbuf = io.StringIO()
        self._aliases = False
        for u in users.values():          # fresh homes for every test
            for name in os.listdir(u.home):
                p = os.path.join(u.home, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def aliases(self, text: str) -> str:
        from postier.cli import alias_cmd
        path = os.path.join(self.etc, "aliases")
        with open(path, "w") as f:
            f.write(text.replace("@ROOT@", self.root))
        past = time.time() - 3600
        os.utime(path, (past, past))
        assert alias_cmd.main([path]) == 0
        from postier.maps import clear_cache
        clear_cache()
        return path

    def base_main_cf(self) -> str:
        return f"""
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
alias_maps = hash:{self.etc}/aliases
alias_database = hash:{self.etc}/aliases
mail_spool_directory = {self.mail}
queue_directory = {self.queue}
recipient_delimiter = +
message_size_limit = 10240000
biff = no
"""

    def config(self, extra: str = "", master: str = "") -> None:
        self.extra = extra.replace("@ROOT@", self.root)
        self.master = master.replace("@ROOT@", self.root)

    def make_config(self):
        from postier.config import Config
        if not os.path.exists(os.path.join(self.etc, "aliases.db")):
            self.aliases("")
        return Config.from_text(self.base_main_cf() + self.extra,
                                path=os.path.join(self.etc, "main.cf"),
                                master_text=self.master or None)

    def request(self, rcpts, *, sender="sender@example.test", body=None, transport="local",
                nexthop="mx.example.test", cfg=None, orig=True):
        from postier.delivery import DeliveryRequest
        from postier.queue.file import Envelope, QueueWriter, Recipient, read_envelope
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if body is None:
            body = (b"Received: from client.example.test (localhost [127.0.0.1])\n"
                    b"\tby mx.example.test (Postfix) with SMTP id TEST\n"
                    b"From: a@example.test\nSubject: test\n\nFrom the body\nline2\n")
        w = QueueWriter(os.path.join(self.queue, "incoming"))
        w.write(body)
        env = Envelope(queue_id=w.queue_id, arrival=time.time(), sender=sender,
                       recipients=[Recipient(r, orig=r if orig else "") for r in rcpts])
        path = w.commit(env)
        env, off = read_envelope(path)
        cfg = cfg or self.make_config()
        if transport not in ("local", "virtual") and hasattr(cfg, "services"):
            svc = next((s for s in cfg.services if s.name == transport), None)
            if svc is not None:
                cfg = cfg.for_service(svc)
        return DeliveryRequest(
            queue_id=env.queue_id, queue_path=path, content_offset=off,
            content_size=env.content_size, sender=sender, recipients=env.recipients,
            transport=transport, nexthop=nexthop, config=cfg, arrival=env.arrival,
            attrs={"client_address": "127.0.0.1", "client_name": "localhost",
                   "helo_name": "client.example.test", "protocol_name": "SMTP"})

    def run(self, coro):
        from postier import log
        old = (log.LOG.service, log.LOG.stderr, log.LOG.maillog_file)
        log.setup("local", maillog_file=os.path.join(self.root, "maillog"))
        try:
            return asyncio.run(coro)
        finally:
            log.setup(old[0], stderr=old[1], maillog_file=old[2])

    def deliver(self, rcpt, **kw):
        """One request to the local agent; returns the status of its first
        recipient."""
        return self.deliver_all(rcpt, **kw)[0]

    def deliver_all(self, rcpts, **kw):
        import postier.delivery.agents  # noqa: F401
        from postier.delivery import AGENTS
        req = self.request(rcpts, **kw)
        command = req.transport if req.transport in ("local", "virtual") else "pipe"
        return self.run(AGENTS[command](req))

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "maillog")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def mbox(self, user: str) -> str:
        with open(os.path.join(self.mail, user), encoding="utf-8") as f:
            return f.read()

    def incoming(self) -> list[str]:
        d = os.path.join(self.queue, "incoming")
        return sorted(x for x in os.listdir(d) if not x.startswith("."))

    def write(self, path: str, text: str, owner: str | None = None, mode: int = 0o644) -> str:
        path = path.replace("@ROOT@", self.root)
        with open(path, "w") as f:
            f.write(text.replace("@ROOT@", self.root))
        os.chmod(path, mode)
        if owner:
            u = self.users[owner]
            os.chown(path, u.uid, u.gid)
        return path


@pytest.fixture
def lab(users, base_dir):
    root = tempfile.mkdtemp(prefix="lab.", dir=base_dir)
    os.chmod(root, 0o755)
    from postier.delivery import local as _local
    _local._SETTINGS.clear()
    yield Lab(root, users)
    shutil.rmtree(root, ignore_errors=True)
