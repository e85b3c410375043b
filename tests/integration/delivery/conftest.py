"""Fixtures for the delivery agent integration tests.

`make_request(body, rcpts, nexthop, main_cf="", transport="smtp", **kw)`:
writes a real queue file (QueueWriter) with `body` and returns a
DeliveryRequest for it with a Config built from `main_cf`.  `run(coro)`:
runs a coroutine on uvloop and closes cached idle sessions afterwards.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from postier.config import Config
from postier.delivery import DeliveryRequest
from postier.queue.file import Envelope, QueueWriter, Recipient, read_envelope


@pytest.fixture
def make_request(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()

    def make(body: bytes, rcpts, nexthop: str, main_cf: str = "", transport: str = "smtp",
             sender: str = "sender@example.test", orig: bool = False, **kw) -> DeliveryRequest:
        w = QueueWriter(str(spool))
        w.write(body)
        recipients = [r if isinstance(r, Recipient) else Recipient(r, orig=r if orig else "")
                      for r in rcpts]
        env = Envelope(queue_id=w.queue_id, arrival=time.time(), sender=sender,
                       recipients=recipients)
        path = w.commit(env)
        env, off = read_envelope(path)
        cfg = Config.from_text(main_cf)
        return DeliveryRequest(queue_id=env.queue_id, queue_path=path, content_offset=off,
                               content_size=env.content_size, sender=sender,
                               recipients=env.recipients, transport=transport, nexthop=nexthop,
                               config=cfg, arrival=env.arrival, **kw)

    return make


@pytest.fixture
def run():
    from postier.delivery.smtp import close_idle_sessions

    def runner(coro):
        async def wrapped():
            try:
                return await coro
            finally:
                close_idle_sessions()
                await asyncio.sleep(0)
        return uvloop.run(wrapped())

    return runner
