"""What a forked child of the master runs: an smtpd worker or the queue process.

Both start the same way (`_child_setup`): default signal handlers, SIGINT
ignored (a Ctrl-C in the terminal of `postier run` reaches the whole
process group; the master decides), the master's file descriptors that the
child does not need closed, the log reopened under the child's service name
(the maillog file is opened before the privilege drop, and every per-service
MailLog of the process writes through a duplicate of that descriptor: a
root-owned maillog cannot be opened by $mail_owner), a fresh queue ID
counter, the privilege drop, the process name (`postier-smtpd`,
`postier-qmgr`), then PR_SET_PDEATHSIG so that the child dies with the
master.  A child tells the master it is ready by writing `R` on its status
pipe; unhandled exceptions of its event loop are logged as `error:` lines.

smtpd worker (`smtpd_worker`): one master.cf inet smtpd service.  The
settings and the restriction engine were built by the master before the
fork (shared pages, tables already open); the worker makes the SmtpdServer
in its own uvloop event loop (whose default executor has CPU_THREADS
threads: its work, the content scan's, holds the GIL), with the shared
anvil view and the new-mail notifier, and accepts on the inherited
listening sockets.  SIGHUP (reload:
a newer worker took over) and SIGTERM (stop) both stop accepting at once;
then the sessions in progress may finish -- after SIGTERM for at most
$smtpd_drain_time, after SIGHUP without a bound of its own (each session
still ends at its $smtpd_timeout) -- and the worker exits.

Queue process (`queue_worker`): the queue manager (postier.qmgr, recovery
first), the delivery agents as asyncio tasks, the pickup service
(public/pickup), and the receiving end of the new-mail notices.  SIGTERM
stops it: pickup closes, in-flight deliveries get the queue manager's grace
period, whatever is still active is recovered at the next start.  A restart
under a running master (crash, reload) does not remove `.ID.tmp` files from
incoming/: smtpd workers may be writing them (Postfix's qmgr does not
touch unfinished files either); the next full start removes leftovers.

Parameters read: smtpd_drain_time (and everything smtpd, the queue manager
and pickup read, through the Config the master passes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from postier import log

READY = b"R"


@dataclass
class ChildContext:
    """Everything a child needs, prepared by the master before the fork."""

    kind: str                        # "smtpd" or "queue"
    name: str                        # master.cf service name (or "qmgr")
    cfg: Any                         # the Config (service view for smtpd)
    status_fd: int                   # write end of the status pipe
    master_pid: int
    account: Any = None              # postier.master.privs.Account to switch to, or None
    keep_fds: set[int] = field(default_factory=set)
    close_fds: list[int] = field(default_factory=list)
    close_objs: list[Any] = field(default_factory=list)
    log_kw: dict[str, Any] = field(default_factory=dict)
    # smtpd
    socks: list[socket.socket] = field(default_factory=list)
    settings: Any = None
    engine: Any = None
    anvil: Any = None                # SharedAnvil
    column: int = -1
    notify_tx: socket.socket | None = None
    drain_time: float = 5.0
    # queue
    notify_rx: socket.socket | None = None
    with_qmgr: bool = False
    first_start: bool = True


def run_child(ctx: ChildContext) -> None:
    """Entry point after fork(); never returns."""
    code = 1
    try:
        _child_setup(ctx)
        if ctx.kind == "smtpd":
            code = smtpd_worker(ctx)
        else:
            code = queue_worker(ctx)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:   # noqa: BLE001 - report, never unwind into the master's code
        try:
            log.error(f"{ctx.name}: {type(e).__name__}: {e}")
            import traceback
            for line in traceback.format_exc().rstrip().split("\n")[-6:]:
                log.error(line)
        except BaseException:   # noqa: BLE001
            pass
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:   # noqa: BLE001
        pass
    os._exit(code)


def _child_setup(ctx: ChildContext) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for obj in ctx.close_objs:
        try:
            obj.close()
        except Exception:   # noqa: BLE001
            pass
    for fd in ctx.close_fds:
        if fd not in ctx.keep_fds:
            try:
                os.close(fd)
            except OSError:
                pass
    log.setup(ctx.kind if ctx.kind == "smtpd" else "qmgr", **ctx.log_kw)
    log.LOG.preopen()   # as root: the privilege drop comes next
    # a fresh queue ID counter per process (the module's counter was seeded
    # with the master's PID)
    import itertools

    from postier.queue import qid as _qid
    _qid._counter = itertools.count(os.getpid() & 0xFFF)
    if ctx.account is not None:
        from postier.master.privs import drop_privileges
        drop_privileges(ctx.account.uid, ctx.account.gid)
    from postier.master.privs import set_parent_death_signal, set_process_name
    set_process_name("postier-" + ("smtpd" if ctx.kind == "smtpd" else "qmgr"))
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != ctx.master_pid:
        os._exit(1)      # the master died before PR_SET_PDEATHSIG took effect


def _log_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    """Unhandled exceptions in tasks go to the mail log (as error lines),
    not to a logging module nobody configured."""
    def handler(_loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        text = context.get("message") or "unhandled exception"
        if exc is not None:
            import traceback
            where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            text = f"{text}: {type(exc).__name__}: {exc}{at}"
        log.error(text)
    loop.set_exception_handler(handler)


def _ready(ctx: ChildContext) -> None:
    try:
        os.write(ctx.status_fd, READY)
    except OSError:
        pass


def _event_loop() -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:   # pragma: no cover - uvloop is a hard dependency
        pass


# ---------------------------------------------------------------- smtpd

def smtpd_worker(ctx: ChildContext) -> int:
    _event_loop()
    return asyncio.run(_smtpd_main(ctx))


def _tracked(cls: type, tasks: set[asyncio.Task]) -> type:
    """The session class, recording each session's task (for the drain)."""
    class Tracked(cls):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            task = getattr(self, "_handler_coroutine", None)
            if task is not None and task not in tasks:
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    Tracked.__name__ = cls.__name__
    return Tracked


async def _smtpd_main(ctx: ChildContext) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from postier.smtpd.server import CPU_THREADS, THREAD_STACK, SmtpdServer
    loop = asyncio.get_running_loop()
    _log_exceptions(loop)
    # the content scan's CPU work holds the GIL: asyncio's default pool (up
    # to CPUs + 4 threads) only adds thread stacks (8 MB of address space
    # each), which under a RLIMIT_AS cap (`postier bench --memory`) ran the
    # worker into bad_alloc; the spam scans have one thread of their own.
    # Half pthread's 8 MB stack is plenty (a spam scan of the whole corpus
    # runs in 256 KB) and leaves the address space to memory in use.
    threading.stack_size(THREAD_STACK)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=CPU_THREADS,
                                                 thread_name_prefix="smtpd-cpu"))
    server = SmtpdServer(ctx.settings, ctx.engine, loop=loop)
    if ctx.anvil is not None and ctx.column >= 0:
        server.anvil = ctx.anvil.view(ctx.settings.service_name, ctx.column)
    if ctx.notify_tx is not None:
        from postier.master.notify import Notifier
        server.on_queued = Notifier(ctx.notify_tx, loop)
    tasks: set[asyncio.Task] = set()
    server.session_class = _tracked(server.session_class, tasks)
    for sock in ctx.socks:
        await server.listen("", 0, sock=sock)
    stop: asyncio.Future = loop.create_future()

    def request(bound: float | None) -> None:
        if not stop.done():
            stop.set_result(bound)
        elif bound is not None and stop.result() is None:
            # SIGTERM while draining after a reload: the bound applies now
            drain_deadline[0] = loop.time() + bound
    drain_deadline = [float("inf")]
    loop.add_signal_handler(signal.SIGTERM, request, ctx.drain_time)
    loop.add_signal_handler(signal.SIGHUP, request, None)
    _ready(ctx)
    bound = await stop
    for srv in server.servers:           # stop accepting: this process's copies only
        srv.close()                      # (not wait_closed(): on Python 3.12+ it also
                                         # waits for the sessions, without a bound)
    if bound is not None:
        drain_deadline[0] = loop.time() + bound
    while tasks:
        left = drain_deadline[0] - loop.time()
        if left <= 0:
            break
        await asyncio.wait(list(tasks), timeout=min(left, 1.0))
    if tasks:
        for t in list(tasks):
            t.cancel()                  # logs "lost connection after ..."
        await asyncio.gather(*tasks, return_exceptions=True)
    await server.close()                # the sessions are over: join the io threads
    return 0


# ---------------------------------------------------------------- queue

def queue_worker(ctx: ChildContext) -> int:
    _event_loop()
    return asyncio.run(_queue_main(ctx))


def _manager_class() -> type:
    from postier.qmgr.manager import QueueManager

    class SupervisedQueueManager(QueueManager):
        """A queue manager under a running master: at a restart, active/ is
        recovered but incoming/ temporary files are left alone (smtpd
        workers may be writing them)."""

        first_start = True

        def recover(self) -> None:
            if self.first_start:
                return super().recover()
            from postier.queue import QUEUE_NAMES
            for q in QUEUE_NAMES + ("public",):
                os.makedirs(os.path.join(self.qdir, q), exist_ok=True)
            active = os.path.join(self.qdir, "active")
            incoming = os.path.join(self.qdir, "incoming")
            try:
                names = sorted(n for n in os.listdir(active) if not n.startswith("."))
            except FileNotFoundError:
                names = []
            moved = []
            for n in names:          # recover_queues()'s renames, not its .tmp removal
                try:
                    os.rename(os.path.join(active, n), os.path.join(incoming, n))
                    moved.append(n)
                except FileNotFoundError:
                    pass
            if moved:
                fd = os.open(incoming, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for qid in moved:
                log.info(f"{qid}: requeued from active after restart", "qmgr")
    return SupervisedQueueManager


async def _queue_main(ctx: ChildContext) -> int:
    from postier.master.notify import Receiver, drain
    loop = asyncio.get_running_loop()
    _log_exceptions(loop)
    cfg = ctx.cfg
    if ctx.notify_rx is not None:
        drain(ctx.notify_rx)           # the start-up scan of incoming/ finds those files
    qmgr = None
    if ctx.with_qmgr:
        from postier.qmgr.manager import load_agents
        load_agents()
        cls = _manager_class()
        qmgr = cls(cfg, loop=loop)
        qmgr.first_start = ctx.first_start
        await qmgr.start()
    receiver = None
    if ctx.notify_rx is not None:
        receiver = Receiver(ctx.notify_rx, loop,
                            qmgr.on_queued if qmgr is not None else (lambda qid: None))
    from postier import pickup
    submission = await pickup.start(cfg, loop)
    if submission is not None and qmgr is not None:
        submission.on_queued = qmgr.on_queued
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, stop.set)
    _ready(ctx)
    await stop.wait()
    if receiver is not None:
        receiver.close()
    if submission is not None:
        await submission.close()
    if qmgr is not None:
        await qmgr.stop()
    return 0
