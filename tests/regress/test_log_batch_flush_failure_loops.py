"""Regression: a batched mail log (batch_in_loop, the policy server's) whose
write fails raised inside the event loop's flush callback; the loop's
exception handler, logging through the same batch, scheduled another
failing flush: one failure per loop iteration, and the lines were lost.
Now the failed lines and the error go to standard error once, and the
loop's exception handler is not involved."""

from __future__ import annotations

import asyncio

from postier import log


def test_failed_batched_write_goes_to_stderr_once(tmp_path, capfd):
    lg = log.MailLog()
    lg.setup("greylistd", maillog_file="/dev/full")
    handled: list[dict] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def handler(_loop, ctx):
            handled.append(ctx)
            lg.emit("error", f"loop: {ctx.get('message')}")     # as a daemon's handler would

        loop.set_exception_handler(handler)
        lg.batch_in_loop(True)
        lg.emit("", "one")
        lg.emit("warning", "two")
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(main())
    lg.batch_in_loop(False)             # nothing is pending: writes nothing
    err = capfd.readouterr().err.splitlines()
    assert handled == []
    assert [line.split(": ", 1)[1] for line in err] == [
        "one", "warning: two", "error: mail log write failed: OSError: [Errno 28] No space left on device"]
    assert all(line.split()[4].startswith("postier/greylistd[") for line in err)


def test_successful_batched_write_is_unchanged(tmp_path, capfd):
    path = tmp_path / "maillog"
    lg = log.MailLog()
    lg.setup("greylistd", maillog_file=str(path))

    async def main() -> None:
        lg.batch_in_loop(True)
        lg.emit("", "one")
        await asyncio.sleep(0)

    asyncio.run(main())
    lg.batch_in_loop(False)
    assert [line.split(": ", 1)[1] for line in path.read_text().splitlines()] == ["one"]
    assert capfd.readouterr().err == ""
