"""SmtpdServer.close() left its io pool (the queue-file threads, one pool per
worker process) running: its threads were joined only at interpreter exit.
close() now shuts the pool down; a job already handed to it (a commit is a
session's message) still runs to its end, and close() waits for it without
blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import uvloop

from postier.smtpd.server import SmtpdServer, SmtpdSettings


def io_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("queue-io")}


def test_close_ends_the_io_threads_after_their_running_job(tmp_path):
    queue = str(tmp_path / "queue")
    settings = SmtpdSettings(myhostname="mx.example.org", queue_directory=queue,
                             peername_lookup=False)
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        release.wait(30)
        return "committed"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = io_threads()
        server = SmtpdServer(settings, loop=loop)
        await server.listen("127.0.0.1", 0)          # fills the queue-file pool in server.io
        running = loop.run_in_executor(server.io, job)
        assert await loop.run_in_executor(None, started.wait, 30)
        mine = io_threads() - before
        assert mine
        closing = asyncio.ensure_future(server.close())
        for _ in range(20):                           # the loop runs while close() waits
            await asyncio.sleep(0)
        assert not closing.done()
        assert not running.done()
        release.set()
        await asyncio.wait_for(closing, 30)
        assert running.result() == "committed"
        assert not any(t.is_alive() for t in mine)
        # the pool's unused queue files are gone with it
        incoming = os.path.join(queue, "incoming")
        assert os.listdir(incoming) == []

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
