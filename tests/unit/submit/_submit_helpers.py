"""Helpers for the submission tests: a private configuration and a pickup
service running on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import os
import threading

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
queue_directory = {root}/queue
data_directory = {root}/data
mail_name = Postfix
alias_maps =
alias_database =
smtputf8_enable = no
"""

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
"""


def make_config(root: str, extra: str = "", master: str = MASTER_CF) -> str:
    """ROOT/etc (main.cf, master.cf) and ROOT/queue; returns the config dir."""
    etc = os.path.join(root, "etc")
    os.makedirs(etc, exist_ok=True)
    os.makedirs(os.path.join(root, "queue", "incoming"), exist_ok=True)
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(root=root) + extra)
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(master)
    return etc


class PickupThread:
    """postier.pickup.start() on a private event loop in a thread."""

    def __init__(self, config_dir: str):
        from postier.config import load_config
        self.cfg = load_config(config_dir)
        self.loop = asyncio.new_event_loop()
        self.service = None
        self.queued: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        from postier import pickup

        async def boot() -> None:
            self.service = await pickup.start(self.cfg, self.loop)
            self.service.on_queued = self.queued.append
        try:
            self.loop.run_until_complete(boot())
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> PickupThread:
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def scan(self) -> int:
        """Wait for a maildrop scan (after the one at start)."""
        return self.call(self.service.scan_maildrop())

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.service is not None:
            self.call(self.service.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def queue_files(qdir: str, queue: str = "incoming") -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(qdir, queue)))
    except FileNotFoundError:
        return []
