"""The master process: binds, forks, supervises, reloads, stops.

See the package docstring (postier.master) for the process and privilege
model.  `Master(cfg, ...).serve()` runs until SIGTERM/SIGINT and returns
the exit status; `postier run` calls it in the foreground, `postier start`
in a daemonized process.

The loop is plain synchronous Python (no event loop in the master: every
child creates its own after the fork): Python signal handlers set flags and
`signal.set_wakeup_fd` wakes a select() that also watches the children's
status pipes (`R` = ready, EOF = gone) and the restart timers.

Restart policy (`Backoff`): a worker that dies after it became ready is
restarted at once the first time, then after 1, 2, 4, ... seconds while it
keeps dying within STABLE_TIME of its start, at most $service_throttle_time
apart; one that dies before it was ready is throttled for
$service_throttle_time (Postfix: `warning: .../smtpd: bad command startup
-- throttling`).  At the first start of the master, a child that dies
before it is ready is fatal instead (nothing to serve; `postier run` exits
with status 1 as it did when it was one process).

Parameters read: smtpd_worker_processes, default_process_limit,
service_throttle_time, smtpd_drain_time, master_service_disable,
mail_owner, queue_directory, data_directory, process_id_directory,
inet_interfaces, inet_protocols, plus everything smtpd, the queue manager
and pickup read.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from postier import __version__, log
from postier.errors import PostierError
from postier.master import listeners as L
from postier.master import privs
from postier.master.pidfile import PidFile
from postier.master.workers import READY, ChildContext, run_child

STABLE_TIME = 10.0          # a worker that lived this long is healthy again
QMGR_GRACE = 5.0            # QueueManager.stop()'s default grace period
READY_TIMEOUT = 300.0       # first start: a child that is not ready by then is fatal
BIND_RETRY = 5.0            # EADDRINUSE at start: the old instance's children may be dying
ANVIL_COLUMNS = 64


class Backoff:
    """Restart delays of one worker slot (see the module docstring)."""

    def __init__(self, throttle: float, stable: float = STABLE_TIME, base: float = 1.0):
        self.throttle = float(throttle)
        self.stable = stable
        self.base = base
        self.failures = 0

    def delay(self, lived: float, was_ready: bool) -> float:
        """Seconds to wait before the next start after an unexpected exit."""
        if not was_ready:
            self.failures += 1
            return self.throttle
        if lived >= self.stable:
            self.failures = 0
        self.failures += 1
        if self.failures == 1:
            return 0.0
        return min(self.throttle, self.base * 2 ** (self.failures - 2))

    def throttled(self, was_ready: bool) -> bool:
        """Is this the startup-failure throttle (for the warning)?"""
        return not was_ready


def worker_count(scfg: Any, svc: Any) -> int:
    """smtpd workers for one service: $smtpd_worker_processes (0: the CPUs
    this process may run on), at most master.cf's maxproc ("-":
    $default_process_limit; 0: no limit)."""
    n = int(scfg.get("smtpd_worker_processes") or 0)
    if n <= 0:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
    limit = svc.process_limit(scfg.get("default_process_limit"))
    if limit > 0:
        n = min(n, limit)
    return max(1, n)


def disabled(svc: Any, patterns: list[str]) -> bool:
    """master_service_disable: `type` or `name/type` (case-insensitive type)."""
    for p in patterns:
        name, slash, typ = p.rpartition("/")
        if slash:
            if name == svc.name and typ.lower() == svc.type:
                return True
        elif p.lower() == svc.type:
            return True
    return False


def is_smtpd(svc: Any) -> bool:
    return svc.type == "inet" and os.path.basename(svc.command) == "smtpd"


@dataclass
class SmtpdService:
    """One inet smtpd service of one configuration generation."""

    svc: Any
    scfg: Any
    settings: Any
    engine: Any
    workers: int
    addrs: list[tuple[str | None, int]]


@dataclass
class Child:
    pid: int
    kind: str
    name: str
    generation: int
    slot: int
    started: float
    status_fd: int
    column: int = -1
    ready: bool = False
    stopping: bool = False


@dataclass
class Generation:
    """What one configuration (start or reload) runs."""

    number: int
    cfg: Any
    smtpd: list[SmtpdService] = field(default_factory=list)
    queue: bool = False                 # a queue process (qmgr and/or pickup)
    with_qmgr: bool = False
    smtpd_account: Any = None
    queue_account: Any = None


class StartupError(PostierError):
    """The first start failed (fatal)."""


class Master:
    """See the module docstring."""

    def __init__(self, cfg: Any, *, foreground: bool = True, ready_fd: int | None = None,
                 log_kw: dict[str, Any] | None = None, summary: str = ""):
        self.cfg = cfg
        self.config_dir = cfg.config_dir
        self.foreground = foreground
        self.ready_fd = ready_fd
        self.log_kw = log_kw or {}
        self.summary = summary
        self.pid = os.getpid()
        self.gen: Generation | None = None
        self.listeners: dict[tuple[str | None, int], list[socket.socket]] = {}
        self.children: dict[int, Child] = {}
        self.by_fd: dict[int, Child] = {}
        self.backoff: dict[tuple[str, str, int], Backoff] = {}
        self.restarts: list[tuple[float, str, str, int]] = []
        self.pidfile: PidFile | None = None
        self.anvil: Any = None
        self.free_columns: list[int] = list(range(ANVIL_COLUMNS))
        self.notify_rx: socket.socket | None = None
        self.notify_tx: socket.socket | None = None
        self.queue_pending = False       # start a queue process once the old one is gone
        self.queue_starts = 0
        self._flags: set[int] = set()
        self._wake_r = self._wake_w = -1
        self.stopping = False
        self.exit_code = 0

    # ------------------------------------------------------------ signals
    def _on_signal(self, sig: int, _frame: Any) -> None:
        self._flags.add(sig)

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    # ------------------------------------------------------------ configuration
    def build(self, cfg: Any, number: int) -> Generation:
        """Everything a configuration runs, prepared in the master (settings,
        restriction engines and tables built before the fork are shared by
        the workers).  PostierError when something is wrong."""
        from postier.smtpd.restrictions import RestrictionEngine
        from postier.smtpd.server import SmtpdSettings
        gen = Generation(number, cfg)
        patterns = cfg.get_list("master_service_disable")
        services = [s for s in cfg.services if not disabled(s, patterns)]
        for svc in services:
            if not is_smtpd(svc):
                continue
            scfg = cfg.for_service(svc)
            try:
                settings = SmtpdSettings.from_config(scfg)
                engine = RestrictionEngine(scfg)
            except PostierError:
                raise
            except (OSError, ValueError) as e:
                raise PostierError(f"master.cf service {svc.name}: {e}") from None
            gen.smtpd.append(SmtpdService(svc, scfg, settings, engine,
                                          worker_count(scfg, svc),
                                          L.service_addresses(svc, cfg)))
        cmds = {os.path.basename(s.command) for s in services}
        gen.with_qmgr = bool(cmds & {"qmgr", "oqmgr"})
        gen.queue = gen.with_qmgr or "pickup" in cmds
        if os.geteuid() == 0:
            owner = privs.mail_account(cfg)
            gen.smtpd_account = owner
            gen.queue_account = privs.ROOT if privs.queue_needs_root(services) else owner
        return gen

    def prepare_tree(self, gen: Generation, full: bool = True) -> None:
        """Create the queue tree and give it to its owners (root only), then
        check that the unprivileged accounts can use it; where they cannot
        (a queue directory below a directory they may not enter), that
        process keeps root and a warning says why.  `full`: also the files
        below the directories (at start; at a reload only when an account
        changed)."""
        qdir = gen.cfg.get("queue_directory")
        if os.geteuid() != 0:
            from postier.queue import QUEUE_NAMES
            for q in QUEUE_NAMES:
                os.makedirs(os.path.join(qdir, q), exist_ok=True)
            return
        entries = privs.queue_tree(gen.cfg, gen.smtpd_account, gen.queue_account)
        if not full:
            entries = [dataclasses.replace(e, recursive=False) for e in entries]
        try:
            privs.fix_tree(entries)
        except OSError as e:
            raise PostierError(f"queue directory set-up: {e.filename}: {e.strerror}") from None
        ddir = gen.cfg.get("data_directory")
        if gen.smtpd and gen.smtpd_account.uid != 0:
            wants = [(os.path.join(qdir, "incoming"), os.W_OK | os.X_OK)]
            if ddir and os.path.isdir(ddir):
                wants.append((ddir, os.W_OK | os.X_OK))
            problems = privs.probe_access(gen.smtpd_account, wants)
            if problems:
                log.warning(f"mail_owner {gen.smtpd_account.name} cannot use {problems[0]}; "
                            f"smtpd processes keep running as root")
                gen.smtpd_account = privs.ROOT
        if gen.queue and gen.queue_account.uid != 0:
            from postier.queue import QUEUE_NAMES
            wants = [(os.path.join(qdir, q), os.R_OK | os.W_OK | os.X_OK)
                     for q in QUEUE_NAMES + ("public",)]
            problems = privs.probe_access(gen.queue_account, wants)
            if problems:
                log.warning(f"mail_owner {gen.queue_account.name} cannot use {problems[0]}; "
                            f"the queue manager keeps running as root")
                gen.queue_account = privs.ROOT
                privs.fix_tree([e for e in privs.queue_tree(gen.cfg, gen.smtpd_account,
                                                            privs.ROOT)
                                if os.path.basename(e.path) in ("public", "maildrop")])

    def bind_all(self, gen: Generation, retry: float = 0.0) -> list[str]:
        """Bind what the generation needs and is not bound yet, then close the
        sockets it no longer needs (draining workers keep their own copies);
        nothing changes when a bind fails.  Returns the addresses (for the log)."""
        want = {a for s in gen.smtpd for a in s.addrs}
        new: dict[tuple[str | None, int], list[socket.socket]] = {}
        try:
            for addr in sorted(want, key=lambda a: (a[1], a[0] or "")):
                if addr in self.listeners:
                    continue
                deadline = time.monotonic() + retry
                while True:
                    try:
                        new[addr] = L.bind(addr[0], addr[1], gen.cfg)
                        break
                    except PostierError as e:
                        if "in use" not in str(e) or time.monotonic() >= deadline:
                            raise
                        time.sleep(0.1)
        except PostierError:
            for socks in new.values():
                for s in socks:
                    s.close()
            raise
        for addr in [a for a in self.listeners if a not in want]:
            for s in self.listeners.pop(addr):
                s.close()
        self.listeners.update(new)
        return [L.describe(*a) for s in gen.smtpd for a in s.addrs]

    # ------------------------------------------------------------ children
    def _all_fds(self) -> list[int]:
        fds = [self._wake_r, self._wake_w]
        fds += list(self.by_fd)
        if self.ready_fd is not None:
            fds.append(self.ready_fd)
        if self.pidfile is not None and self.pidfile.fd is not None:
            fds.append(self.pidfile.fd)
        return [f for f in fds if f >= 0]

    def spawn(self, kind: str, name: str, slot: int) -> Child | None:
        gen = self.gen
        assert gen is not None
        r, w = os.pipe2(os.O_CLOEXEC)
        ctx = ChildContext(kind=kind, name=name, cfg=gen.cfg, status_fd=w,
                           master_pid=self.pid, log_kw=dict(self.log_kw),
                           close_fds=self._all_fds() + [r])
        own_socks: list[socket.socket] = []
        if kind == "smtpd":
            svc = next((s for s in gen.smtpd if s.svc.name == name), None)
            if svc is None:
                os.close(r)
                os.close(w)
                return None
            own_socks = [s for a in svc.addrs for s in self.listeners.get(a, [])]
            ctx.cfg = svc.scfg
            ctx.socks = own_socks
            ctx.settings = svc.settings
            ctx.engine = svc.engine
            ctx.account = gen.smtpd_account if gen.smtpd_account and gen.smtpd_account.uid else None
            ctx.anvil = self.anvil
            ctx.column = self.free_columns.pop(0) if self.free_columns else -1
            ctx.notify_tx = self.notify_tx if gen.with_qmgr else None
            ctx.drain_time = float(svc.scfg.get_time("smtpd_drain_time"))
            if self.notify_rx is not None:
                ctx.close_objs.append(self.notify_rx)
        else:
            ctx.account = (gen.queue_account
                           if gen.queue_account and gen.queue_account.uid else None)
            ctx.notify_rx = self.notify_rx
            ctx.with_qmgr = gen.with_qmgr
            ctx.first_start = self.queue_starts == 0
            if self.notify_tx is not None:
                ctx.close_objs.append(self.notify_tx)
        ctx.close_objs += [s for socks in self.listeners.values() for s in socks
                           if s not in own_socks]
        pid = os.fork()
        if pid == 0:     # pragma: no cover - the child
            run_child(ctx)
        os.close(w)
        child = Child(pid, kind, name, gen.number, slot, time.monotonic(), r, ctx.column)
        self.children[pid] = child
        self.by_fd[r] = child
        if kind == "queue":
            self.queue_starts += 1
        return child

    def _spawn_generation(self) -> None:
        gen = self.gen
        assert gen is not None
        for s in gen.smtpd:
            for slot in range(s.workers):
                self.spawn("smtpd", s.svc.name, slot)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self._gone(child, status)

    def _gone(self, child: Child, status: int) -> None:
        self.by_fd.pop(child.status_fd, None)
        try:
            if not child.ready:
                self._read_status(child)
            os.close(child.status_fd)
        except OSError:
            pass
        prog = "smtpd" if child.kind == "smtpd" else "qmgr"
        if os.WIFSIGNALED(status):
            log.warning(f"process {prog} pid {child.pid} killed by signal "
                        f"{os.WTERMSIG(status)}")
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
            log.warning(f"process {prog} pid {child.pid} exit status {os.WEXITSTATUS(status)}")
        if child.column >= 0 and self.anvil is not None:
            self.anvil.clear_column(child.column)
            self.free_columns.append(child.column)
        if self.stopping:
            return
        gen = self.gen
        assert gen is not None
        if child.kind == "queue":
            if any(c.kind == "queue" for c in self.children.values()):
                return                          # another one is still stopping
            if self.queue_pending:
                # reload: the old queue process is gone, the new one may start
                self.queue_pending = False
                if gen.queue:
                    self.restarts.append((time.monotonic(), "queue", "qmgr", 0))
                return
            if child.generation == gen.number and not child.stopping and gen.queue:
                if not child.ready and self.queue_starts == 1:
                    raise StartupError("the queue manager process failed to start")
                self._schedule(child, prog)
            return
        if child.generation != gen.number or child.stopping:
            return
        if not child.ready and self._first_start:
            raise StartupError(f"smtpd process for service {child.name} failed to start")
        self._schedule(child, prog)

    def _schedule(self, child: Child, prog: str) -> None:
        """A restart of the child's slot after its back-off delay."""
        gen = self.gen
        assert gen is not None
        key = (child.kind, child.name, child.slot)
        throttle = float(gen.cfg.get_time("service_throttle_time"))
        b = self.backoff.setdefault(key, Backoff(throttle))
        b.throttle = throttle
        delay = b.delay(time.monotonic() - child.started, child.ready)
        if not child.ready:
            log.warning(f"{prog}: bad command startup -- throttling")
        self.restarts.append((time.monotonic() + delay, child.kind, child.name, child.slot))

    def _run_restarts(self) -> None:
        if self.stopping:
            return
        now = time.monotonic()
        due = [r for r in self.restarts if r[0] <= now]
        if not due:
            return
        self.restarts = [r for r in self.restarts if r[0] > now]
        for _, kind, name, slot in due:
            if kind == "queue":
                if self.gen is not None and self.gen.queue:
                    self.spawn("queue", "qmgr", 0)
            else:
                self.spawn(kind, name, slot)

    def _read_status(self, child: Child) -> bool:
        """Read what the child wrote; False at EOF."""
        try:
            data = os.read(child.status_fd, 64)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        if READY in data:
            child.ready = True
        return True

    def poll(self, timeout: float | None) -> None:
        """One turn: wait for a signal, a status pipe or a restart timer."""
        if self.restarts:
            nxt = min(r[0] for r in self.restarts) - time.monotonic()
            timeout = max(0.0, nxt) if timeout is None else max(0.0, min(timeout, nxt))
        fds = [self._wake_r] + list(self.by_fd)
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            readable = []
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        for fd in readable:
            child = self.by_fd.get(fd)
            if child is not None and not self._read_status(child):
                # EOF: the child is exiting; SIGCHLD reaps it
                self.by_fd.pop(fd, None)
        flags, self._flags = self._flags, set()
        self._reap()
        if signal.SIGTERM in flags or signal.SIGINT in flags:
            sig = signal.SIGTERM if signal.SIGTERM in flags else signal.SIGINT
            raise _Stop(int(sig))
        if signal.SIGHUP in flags and not self.stopping:
            if self._first_start:
                self._reload_pending = True
            else:
                self.reload()
        self._run_restarts()

    # ------------------------------------------------------------ life cycle
    _first_start = True
    _reload_pending = False

    def start(self) -> list[str]:
        """Everything up to 'listening'; StartupError/PostierError when it
        cannot.  Returns the listening addresses."""
        from postier.master.anvil import SharedAnvil
        from postier.master.notify import make_pair
        cfg = self.cfg
        gen = self.build(cfg, 1)
        self.gen = gen
        self.pidfile = PidFile(privs.pid_file(cfg))
        self.pidfile.acquire()          # before touching a queue another master may own
        self.prepare_tree(gen)
        self.anvil = SharedAnvil.create(ANVIL_COLUMNS)
        self.notify_rx, self.notify_tx = make_pair()
        self._install_signals()
        from postier.master.preload import preload
        preload()        # shared by the children, and importable after the privilege drop
        privs.load_libc()
        gc.collect()
        gc.freeze()      # keep the pages the children inherit shared (no GC writes)
        if gen.queue:
            # recovery first, and pickup ready, before the SMTP port opens
            q = self.spawn("queue", "qmgr", 0)
            self._wait_ready([q] if q else [])
        where = self.bind_all(gen, retry=BIND_RETRY)
        self._spawn_generation()
        self._wait_ready([c for c in self.children.values() if c.kind == "smtpd"])
        self._first_start = False
        return where

    def _wait_ready(self, children: list[Child]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while any(not c.ready for c in children):
            for c in children:
                if c.pid not in self.children and not c.ready:
                    raise StartupError(f"{c.kind} process pid {c.pid} failed to start")
            if time.monotonic() > deadline:
                slow = [c for c in children if not c.ready]
                raise StartupError(f"{slow[0].kind} process pid {slow[0].pid} not ready "
                                   f"after {READY_TIMEOUT:.0f}s")
            self.poll(1.0)

    def reload(self) -> None:
        """SIGHUP: re-read main.cf, master.cf and the tables; new workers
        take over the listening sockets, the old ones finish their sessions."""
        from postier.config import load_config
        from postier.maps import clear_cache, open_map
        try:
            cfg = load_config(self.config_dir)
            cfg.validate()
            clear_cache()
            from postier.cli.run_cmd import table_specs
            for spec in table_specs(cfg):
                open_map(spec)
            gen = self.build(cfg, (self.gen.number if self.gen else 0) + 1)
            old = self.gen
            self.prepare_tree(gen, full=old is None or (
                (gen.smtpd_account, gen.queue_account) != (old.smtpd_account,
                                                           old.queue_account)))
        except PostierError as e:
            log.warning(f"reload failed, configuration not changed: {e}")
            return
        except Exception as e:   # noqa: BLE001 - a reload must never kill the master
            log.warning(f"reload failed, configuration not changed: {type(e).__name__}: {e}")
            return
        old = self.gen
        try:
            self.gen = gen
            self.bind_all(gen)
        except PostierError as e:
            self.gen = old
            log.warning(f"reload failed, configuration not changed: {e}")
            return
        self.cfg = cfg
        log.info(f"reload -- version {__version__}, configuration {cfg.config_dir}")
        self.restarts = [r for r in self.restarts if r[1] == "queue"]
        self.backoff.clear()
        for c in self.children.values():
            if c.kind == "smtpd" and c.generation < gen.number and not c.stopping:
                c.stopping = True
                _kill(c.pid, signal.SIGHUP)
        self._spawn_generation()
        # the queue process: the old one stops (in-flight deliveries get their
        # grace period), the new one starts only when it is gone
        queue = [c for c in self.children.values() if c.kind == "queue"]
        for c in queue:
            if not c.stopping:
                c.stopping = True
                _kill(c.pid, signal.SIGTERM)
        self.restarts = [r for r in self.restarts if r[1] != "queue"]
        if queue:
            self.queue_pending = gen.queue
        elif gen.queue:
            self.spawn("queue", "qmgr", 0)
        gc.collect()
        gc.freeze()

    def stop(self, sig: int) -> None:
        """Drain and end every child; then release the pid file."""
        self.stopping = True
        log.info(f"terminating on signal {sig}")
        for c in self.children.values():
            _kill(c.pid, signal.SIGTERM)
        for socks in self.listeners.values():
            for s in socks:
                s.close()
        self.listeners.clear()
        drain = 0.0
        if self.gen is not None:
            try:
                drain = float(self.gen.cfg.get_time("smtpd_drain_time"))
            except PostierError:
                drain = 5.0
        deadline = time.monotonic() + max(drain, QMGR_GRACE) + 5.0
        while self.children and time.monotonic() < deadline:
            try:
                self.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            except _Stop:
                pass
        for c in list(self.children.values()):
            _kill(c.pid, signal.SIGKILL)
        end = time.monotonic() + 5.0
        while self.children and time.monotonic() < end:
            try:
                self.poll(0.2)
            except _Stop:
                pass

    def close(self) -> None:
        if self.pidfile is not None:
            self.pidfile.release()
        for socks in self.listeners.values():
            for s in socks:
                s.close()
        self.listeners.clear()

    def serve(self) -> int:
        """start(), announce, supervise until SIGTERM/SIGINT, stop."""
        try:
            try:
                where = self.start()
            except _Stop as e:
                self.stop(e.signum)
                return 0
            log.info(f"smtpd listening on {', '.join(where)}" if where else "no SMTP listener")
            self._announce("ok")
            try:
                if self._reload_pending:
                    self.reload()
                while True:
                    self.poll(None)
            except _Stop as e:
                self.stop(e.signum)
            return self.exit_code
        except PostierError as e:
            self._abort(str(e))
            return 1
        except Exception as e:   # noqa: BLE001 - log it the mail-log way, then go
            import traceback
            for line in traceback.format_exc().rstrip().split("\n")[-8:]:
                log.error(line)
            self._abort(f"internal error: {type(e).__name__}: {e}")
            return 1
        finally:
            self.close()

    def _abort(self, text: str) -> None:
        """Fatal: report, SIGKILL the children (by PID), log `fatal: TEXT`."""
        self._announce(text)
        if self.children:
            self.stopping = True
            for c in self.children.values():
                _kill(c.pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while self.children and time.monotonic() < end:
                self._reap()
                time.sleep(0.05)
        log.LOG.emit("fatal", text)

    def _announce(self, text: str) -> None:
        """`postier start`: tell the waiting foreground process how it went."""
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, (text + "\n").encode("utf-8", "replace"))
            os.close(self.ready_fd)
        except OSError:
            pass
        self.ready_fd = None


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise
