"""Test harness for the queue manager: a temp queue_directory, a Config,
trivial delivery agents registered in the test (not mocks of a peer: the
end-to-end tests in tests/integration/qmgr use the real smtp agent against
smtp-sink), and helpers to put messages in the queue and wait for results."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from postier import log
from postier.config import Config
from postier.delivery import DeliveryRequest, RecipientStatus
from postier.qmgr.manager import QueueManager
from postier.queue.file import Envelope, QueueWriter, Recipient

BASE_CF = """\
queue_directory = {root}/queue
maillog_file = {root}/maillog
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost
inet_interfaces = 127.0.0.1
compatibility_level = 3.6
relayhost = [127.0.0.1]:2525
smtputf8_enable = no
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
"""

BODY = b"Received: from x\nFrom: a@sender.test\nSubject: hello\n\nbody line\n"


class Recorder:
    """A delivery agent whose answer per recipient comes from `decide`
    (address -> (status, dsn, text)); it records every request."""

    def __init__(self, decide: Callable[[str], tuple[str, str, str]] | None = None,
                 delay: float = 0.0):
        self.decide = decide or (lambda a: ("sent", "2.0.0", "250 2.0.0 Ok"))
        self.delay = delay
        self.requests: list[DeliveryRequest] = []
        self.active = 0
        self.max_active = 0

    async def __call__(self, req: DeliveryRequest) -> list[RecipientStatus]:
        self.requests.append(req)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            out = []
            for r in req.recipients:
                status, dsn, text = self.decide(r.address)
                out.append(RecipientStatus(r, status, dsn, text, "sink.test[127.0.0.1]:2525",
                                           conn_delay=0.001, xmit_delay=0.002))
            return out
        finally:
            self.active -= 1

    @property
    def delivered(self) -> list[str]:
        return [r.address for req in self.requests for r in req.recipients]


class Harness:
    def __init__(self, root: str, extra_cf: str = "", agents: dict[str, Any] | None = None):
        self.root = root
        self.qdir = os.path.join(root, "queue")
        os.makedirs(self.qdir, exist_ok=True)
        text = BASE_CF.format(root=root) + extra_cf
        self.cfg = Config.from_text(text, os.path.join(root, "main.cf"))
        self.agents = agents if agents is not None else {"smtp": Recorder()}
        log.setup("qmgr", progname="postier", maillog_file=os.path.join(root, "maillog"))
        self.qm: QueueManager | None = None

    # -- queue files ----------------------------------------------------------

    def queue_message(self, sender: str, rcpts: list[str | Recipient], *, queue: str = "incoming",
                      arrival: float | None = None, body: bytes = BODY, **env_kw: Any) -> str:
        d = os.path.join(self.qdir, queue)
        os.makedirs(d, exist_ok=True)
        w = QueueWriter(d)
        w.write(body)
        recipients = [r if isinstance(r, Recipient) else Recipient(address=r, orig=r)
                      for r in rcpts]
        env = Envelope(queue_id=w.queue_id, arrival=arrival if arrival is not None else time.time(),
                       sender=sender, recipients=recipients, **env_kw)
        w.commit(env)
        return w.queue_id

    def files(self, queue: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(os.path.join(self.qdir, queue))
                          if not n.startswith("."))
        except FileNotFoundError:
            return []

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "maillog"), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self, needle: str = "") -> list[str]:
        """Log lines without time stamp/host/pid: 'postier/qmgr: ID: ...'."""
        out = []
        for line in self.log().splitlines():
            rest = line.split(" ", 4)[4] if line.count(" ") >= 4 else line
            tag, _, text = rest.partition(": ")
            tag = tag.split("[", 1)[0]
            if needle in text:
                out.append(f"{tag}: {text}")
        return out

    # -- running ---------------------------------------------------------------

    async def start(self) -> QueueManager:
        self.qm = QueueManager(self.cfg, agents=self.agents)
        await self.qm.start()
        return self.qm

    async def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            await asyncio.sleep(0.01)
        return pred()

    async def idle(self, timeout: float = 5.0) -> bool:
        """Wait until nothing is active or pending."""
        qm = self.qm
        assert qm is not None
        return await self.wait(lambda: not qm.active and not qm.new_ids and not qm.old_ids
                               and not [t for t in qm._tasks if not t.done()], timeout)

    async def stop(self) -> None:
        if self.qm is not None:
            await self.qm.stop()


def run(coro) -> Any:
    return asyncio.run(coro)
