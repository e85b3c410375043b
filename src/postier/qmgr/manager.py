"""The queue manager proper: see the package docstring (postier.qmgr) for the design."""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from postier import log
from postier.delivery import AGENTS, DeliveryRequest, RecipientStatus
from postier.delivery import bounce as B
from postier.delivery.resolve import CLASS_LOCAL, Route, TransportResolver
from postier.qmgr.control import SOCKET_NAME, TRIGGERS
from postier.qmgr.logfmt import delivery_line
from postier.qmgr.scheduler import DestQueue, TransportSettings, backoff_delay
from postier.queue.file import (
    CorruptQueueFile,
    Envelope,
    Recipient,
    append_dsn_log,
    append_envelope,
    read_content,
    read_dsn_log,
    read_envelope,
    recover_queues,
)

#: Postfix's default master.cf delivery services, used when master.cf
#: defines none (tests, minimal setups): service name -> program.
DEFAULT_TRANSPORTS = {"smtp": "smtp", "relay": "smtp", "lmtp": "lmtp", "error": "error",
                      "retry": "error", "discard": "discard", "local": "local",
                      "virtual": "virtual", "pipe": "pipe"}

#: Texts of site-level failures (the destination as a whole failed, not one
#: recipient or one message): negative concurrency feedback, as Postfix's
#: delivery agents report them with a non-empty per-request reason.
SITE_FAILURE_RX = re.compile(
    r"^(connect to |host \S+ refused to talk to me|Host or domain name not found|"
    r"Name service error|TLS is required|Server certificate not|"
    r"(conversation|lost connection) with \S+ (timed out )?while (receiving the initial "
    r"server greeting|sending (EHLO|HELO|LHLO)|performing the (EHLO|HELO|LHLO|TLS))|"
    r"server unavailable|delivery temporarily suspended)")

_PEERCRED = struct.Struct("3i")

#: Modules whose import registers delivery agents (those that exist).
AGENT_MODULES = ("postier.delivery.smtp", "postier.delivery.error", "postier.delivery.discard",
                 "postier.delivery.local", "postier.delivery.virtual", "postier.delivery.pipe")


def _warn(text: str) -> None:
    log.warning(text, "qmgr")


def _info(text: str) -> None:
    log.info(text, "qmgr")


def load_agents() -> list[str]:
    """Import the delivery agent modules that exist; their names."""
    import importlib
    try:
        agents = importlib.import_module("postier.delivery.agents")
        return list(getattr(agents, "loaded", []))
    except ModuleNotFoundError as e:
        if e.name != "postier.delivery.agents":
            raise
    found = []
    for mod in AGENT_MODULES:
        try:
            importlib.import_module(mod)
            found.append(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    return found


class Transport:
    """A master.cf delivery service as the queue manager uses it."""

    def __init__(self, name: str, command: str, settings: TransportSettings,
                 agent: Callable[[DeliveryRequest], Awaitable[list[RecipientStatus]]] | None,
                 config: Any, log_name: str):
        self.name = name
        self.command = command
        self.settings = settings
        self.agent = agent
        self.config = config
        self.log_name = log_name
        self.queues: dict[str, DestQueue] = {}
        self.busy = 0
        self.waiting: deque[DestQueue] = deque()
        self.dead_reason = ""
        self.timer: Any = None


class Message:
    __slots__ = ("qid", "path", "env", "content_offset", "active_time", "refcount", "deferred",
                 "done", "bounce_recs", "defer_recs", "trace_recs", "admin", "changed",
                 "origin", "flush", "finishing", "gone")

    def __init__(self, qid: str, path: str, env: Envelope, content_offset: int, now: float,
                 origin: str, flush: bool):
        self.qid = qid
        self.path = path
        self.env = env
        self.content_offset = content_offset
        self.active_time = now
        self.refcount = 0
        self.deferred = False
        self.done: set[int] = set()
        self.bounce_recs: list[Any] = []
        self.defer_recs: dict[int, Any] = {}
        self.trace_recs: list[Any] = []
        self.admin: list[tuple[str, asyncio.Future]] = []
        self.changed = False
        self.origin = origin
        self.flush = flush
        self.finishing = False
        self.gone: asyncio.Future | None = None


class Entry:
    __slots__ = ("message", "queue", "transport", "items")

    def __init__(self, message: Message, queue: DestQueue, transport: Transport):
        self.message = message
        self.queue = queue
        self.transport = transport
        self.items: list[tuple[int, Recipient]] = []


# -- built-in stand-ins for the error, retry and discard programs -------------

_DSN_PREFIX = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def _dsn_split(text: str, default: str) -> tuple[str, str]:
    m = _DSN_PREFIX.match(text)
    if m is None:
        return default, text
    return m.group(0).strip(), text[m.end():]


async def builtin_error(req: DeliveryRequest) -> list[RecipientStatus]:
    """error(8): bounce with the nexthop text (`X.Y.Z text`, default 5.0.0)."""
    dsn, text = _dsn_split(req.nexthop, "5.0.0")
    status = "deferred" if dsn[0] == "4" else "bounced"
    return [RecipientStatus(r, status, dsn, text or "Address is undeliverable")
            for r in req.recipients]


async def builtin_retry(req: DeliveryRequest) -> list[RecipientStatus]:
    """error(8) run as `retry`: defer with the nexthop text (default 4.0.0)."""
    dsn, text = _dsn_split(req.nexthop, "4.0.0")
    if dsn[0] != "4":
        dsn = "4" + dsn[1:]
    return [RecipientStatus(r, "deferred", dsn, text) for r in req.recipients]


async def builtin_discard(req: DeliveryRequest) -> list[RecipientStatus]:
    """discard(8): report delivery, the nexthop is the reason."""
    return [RecipientStatus(r, "sent", "2.0.0", req.nexthop or "discarded")
            for r in req.recipients]


BUILTIN = {"error": builtin_error, "discard": builtin_discard}


class QueueManager:
    """One queue manager for one queue_directory (see postier.qmgr)."""

    def __init__(self, cfg: Any, *, loop: asyncio.AbstractEventLoop | None = None,
                 agents: dict[str, Any] | None = None):
        self.cfg = cfg
        self.loop = loop or asyncio.get_event_loop()
        self.agents = AGENTS if agents is None else agents
        g = cfg.get
        self.qdir = g("queue_directory")
        self.active_limit = g("qmgr_message_active_limit")
        self.rcpt_limit = g("qmgr_message_recipient_limit")
        self.min_backoff = g("minimal_backoff_time")
        self.max_backoff = g("maximal_backoff_time")
        self.queue_run_delay = g("queue_run_delay")
        self.max_lifetime = g("maximal_queue_lifetime")
        self.bounce_lifetime = g("bounce_queue_lifetime")
        self.delay_warning = g("delay_warning_time")
        self.soft_bounce = g("soft_bounce")
        self.defer_transports = set(g("defer_transports"))
        self.filter_nexthop = g("default_filter_nexthop")
        self.myhostname = g("myhostname")
        self.double_bounce = g("double_bounce_sender").lower()
        self.transport_retry = g("transport_retry_time")
        self.max_dig = g("delay_logging_resolution_limit")
        self.default_process_limit = g("default_process_limit")
        self.resolver = TransportResolver(cfg)
        self.bsettings = B.BounceSettings.from_config(cfg)
        self.services = {s.name: s for s in cfg.services if s.type == "unix"}
        self.transports: dict[str, Transport] = {}
        self.active: dict[str, Message] = {}
        self.rcpt_count = 0
        self.new_ids: deque[str] = deque()
        self.old_ids: deque[str] = deque()
        self.pending: set[str] = set()
        self.fresh: set[str] = set()      # fed by on_queued: new files, no logs yet
        self._pump_handle: Any = None
        self._turn = 0
        self._scan_all = False
        self._flush_next = False
        self._wake = asyncio.Event()
        self._scan_incoming = False
        self._scan_deferred = False
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._scanner: asyncio.Task | None = None
        self._closing = False
        self.delivered = 0        # statistics (tests, benchmarks)
        # the queue manager's own blocking file work (fsync'd updates, notices)
        # gets its own threads, so it never delays smtpd's fsyncs in
        # the loop's default executor
        from concurrent.futures import ThreadPoolExecutor
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qmgr-io")

    # -- life cycle -------------------------------------------------------------

    def recover(self) -> None:
        """Start-up recovery (synchronous; before smtpd accepts mail)."""
        from postier.queue import QUEUE_NAMES
        for q in QUEUE_NAMES + ("public",):
            os.makedirs(os.path.join(self.qdir, q), exist_ok=True)
        moved, removed = recover_queues(self.qdir)
        for qid in moved:
            _info(f"{qid}: requeued from active after restart")
        for name in removed:
            _info(f"removed unfinished queue file {name}")

    async def start(self) -> None:
        """Refuses to run beside another queue manager on the same queue
        directory (PostierError); then recovery, public/qmgr, first scans."""
        from postier.errors import PostierError
        path = os.path.join(self.qdir, SOCKET_NAME)
        if os.path.exists(path) and _listening(path):
            raise PostierError(f"a queue manager is already running on {self.qdir}")
        self.recover()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            self._server = await asyncio.start_unix_server(self._control, path=path)
            os.chmod(path, 0o666)
        except OSError as e:
            _warn(f"cannot listen on {path}: {e.strerror or e}; flush and queue requests "
                  "will not reach this queue manager")
        self._scan("incoming", ignore_time=True)
        self._scan("deferred", ignore_time=False)
        self._scanner = self.loop.create_task(self._scan_loop())
        _info(f"queue manager started: {len(self.new_ids)} incoming, "
                 f"{len(self.old_ids)} deferred ready")
        self._kick()

    async def stop(self, grace: float = 5.0) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
            try:
                os.unlink(os.path.join(self.qdir, SOCKET_NAME))
            except OSError:
                pass
        if self._scanner is not None:
            self._scanner.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._io.shutdown(wait=True)
        import sys
        smtp = sys.modules.get("postier.delivery.smtp")
        closer = getattr(smtp, "close_idle_sessions", None) if smtp else None
        if closer is not None:
            try:
                closer()
            except Exception:   # noqa: BLE001 - best effort at shutdown
                pass

    def on_queued(self, qid: str) -> None:
        """smtpd's hook: a message was committed to incoming/."""
        self._enqueue(qid, fresh=True)

    def _enqueue(self, qid: str, fresh: bool) -> None:
        if qid not in self.pending and qid not in self.active:
            self.pending.add(qid)
            if fresh:
                self.fresh.add(qid)
            self.new_ids.append(qid)
            self._kick()

    # -- feeding the active queue ---------------------------------------------------

    def _kick(self) -> None:
        if self._pump_handle is None and not self._closing:
            self._pump_handle = self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_handle = None
        budget = 200
        while budget and (self.new_ids or self.old_ids):
            if len(self.active) >= self.active_limit:
                return
            if self.rcpt_count >= self.rcpt_limit and self.active:
                return
            budget -= 1
            self._turn ^= 1
            if self.new_ids and (self._turn or not self.old_ids):
                qid, origin = self.new_ids.popleft(), "incoming"
            else:
                qid, origin = self.old_ids.popleft(), "deferred"
            self.pending.discard(qid)
            try:
                self._activate(qid, origin)
            except Exception as e:   # noqa: BLE001 - never let one file stop the queue
                _warn(f"{qid}: cannot process queue file: {e!r}")
                self._park(qid)
        if self.new_ids or self.old_ids:
            self._kick()

    def _park(self, qid: str) -> None:
        """After an unexpected error: forget the message and put its file in
        deferred/ for a retry after $minimal_backoff_time."""
        msg = self.active.pop(qid, None)
        if msg is not None and msg.refcount:
            return          # deliveries were started: let them finish normally
        src = os.path.join(self.qdir, "active", qid)
        try:
            now = time.time()
            os.utime(src, (now, now + self.min_backoff))
            os.rename(src, os.path.join(self.qdir, "deferred", qid))
        except FileNotFoundError:
            pass
        except OSError as e:
            _warn(f"{qid}: cannot move to the deferred queue: {e.strerror}")

    def _corrupt(self, qid: str, queue: str, reason: str) -> None:
        _warn(f"{qid}: {reason}")
        _warn(f'saving corrupt file "{qid}" from queue "{queue}" to queue "corrupt"')
        try:
            os.rename(os.path.join(self.qdir, queue, qid),
                      os.path.join(self.qdir, "corrupt", qid))
        except OSError as e:
            _warn(f"{qid}: cannot move to the corrupt queue: {e.strerror}")

    def _activate(self, qid: str, origin: str) -> None:
        src = os.path.join(self.qdir, origin, qid)
        path = os.path.join(self.qdir, "active", qid)
        fresh = qid in self.fresh
        if fresh:
            self.fresh.discard(qid)
        try:
            os.rename(src, path)
        except FileNotFoundError:
            return
        try:
            env, offset = read_envelope(path)
        except CorruptQueueFile as e:
            self._corrupt(qid, "active", str(e).replace(path + ": ", ""))
            return
        if env.attrs.get("discard"):
            self._unlink_all(qid, path)
            return
        if env.hold_reason:
            env.hold_reason = ""
            try:
                append_envelope(path, env, sync=False)
                os.rename(path, os.path.join(self.qdir, "hold", qid))
            except OSError as e:
                _warn(f"{qid}: cannot move to the hold queue: {e.strerror}")
            return
        now = time.time()
        flush = self._flush_next and origin == "deferred"
        if fresh:
            origin = "new"
        msg = Message(qid, path, env, offset, now, origin, flush)
        self.active[qid] = msg
        log.info(f"{qid}: from=<{env.sender}>, size={env.content_size}, "
                 f"nrcpt={len(env.recipients)} (queue active)", "qmgr")
        if origin != "new":
            _remove(os.path.join(self.qdir, "defer", qid))
        self._assign(msg)
        if msg.refcount == 0:
            self._spawn(self._finish(msg))

    def _route(self, msg: Message, r: Recipient, first: bool) -> Route | None:
        env = msg.env
        if env.redirect:
            if not first:
                return None
            return self.resolver.resolve(env.redirect, env.sender)
        if env.content_filter:
            xport, _, nexthop = env.content_filter.partition(":")
            if not nexthop:
                nexthop = self.filter_nexthop
                if not nexthop:
                    at = r.address.rfind("@")
                    nexthop = r.address[at + 1:] if at >= 0 and at + 1 < len(r.address) \
                        else self.myhostname
            return Route(xport, nexthop, r.address, 0)
        return self.resolver.resolve(r.address, env.sender)

    def _assign(self, msg: Message) -> None:
        """qmgr_message_resolve() + qmgr_message_assign()."""
        env = msg.env
        todo: list[tuple[str, str, str, int, Recipient]] = []
        first = True
        for idx, r in enumerate(env.recipients):
            if r.done:
                continue
            route = self._route(msg, r, first)
            first = False
            if route is None:            # redirect: the other recipients are dropped
                msg.done.add(idx)
                msg.changed = True
                continue
            transport, nexthop = route.transport, route.nexthop
            if route.fail:
                transport, nexthop = "retry", "4.3.0 address resolver failure"
            elif route.error:
                transport, nexthop = "error", "5.1.3 bad address syntax"
            elif not r.address:
                transport, nexthop = "error", "5.1.3 null recipient address"
            dr = Recipient(address=route.recipient or r.address, orig=r.orig or r.address,
                           dsn_orcpt=r.dsn_orcpt, dsn_notify=r.dsn_notify)
            if route.flags & CLASS_LOCAL:
                local = dr.address[:dr.address.rfind("@")] if "@" in dr.address else dr.address
                if local.lower() == self.double_bounce:
                    self._result(msg, idx, dr, "sent", "2.0.0",
                                 "undeliverable postmaster notification discarded", "none",
                                 "qmgr", None, 0.0, 0.0)
                    continue
            if (self.defer_transports and transport in self.defer_transports
                    and not msg.flush):
                transport, nexthop = "retry", "4.3.2 deferred transport"
            todo.append((transport, nexthop, dr.address, idx, dr))
        # Postfix sorts by transport, queue, recipient domain, recipient
        todo.sort(key=lambda t: (t[0], t[1], t[2][t[2].rfind("@"):].lower(), t[2]))
        entry: Entry | None = None
        touched: dict[int, DestQueue] = {}
        for transport_name, nexthop, _addr, idx, dr in todo:
            t = self._transport(transport_name)
            if t.dead_reason:
                saved = t.dead_reason
                t = self._transport("retry")
                nexthop = saved
            qname = nexthop
            if t.settings.recipient_limit == 1 and t.command != "error":
                local = dr.address[:dr.address.rfind("@")] if "@" in dr.address else dr.address
                delim = self.resolver.delims
                if delim:
                    cut = min((i for i in (local.find(d) for d in delim) if i > 0), default=-1)
                    if cut > 0:
                        local = local[:cut]
                qname = f"{local}@{nexthop}"
            qname = qname.lower()
            q = t.queues.get(qname)
            if q is None:
                q = t.queues[qname] = DestQueue(qname, nexthop, t.settings, t)
            if q.dead:
                saved = f"{q.dead_status} {q.dead_reason}"
                rt = self._transport("retry")
                qn = saved.lower()
                q = rt.queues.get(qn) or rt.queues.setdefault(qn, DestQueue(qn, saved,
                                                                             rt.settings, rt))
                t = rt
            limit = t.settings.recipient_limit
            if (entry is None or entry.queue is not q
                    or (limit and len(entry.items) >= limit)):
                entry = Entry(msg, q, t)
                q.todo.append(entry)
                msg.refcount += 1
            entry.items.append((idx, dr))
            self.rcpt_count += 1
            touched[id(q)] = q
        touched_queues = list(touched.values())
        for q in touched_queues:
            self._run_queue(q)

    def _transport(self, name: str) -> Transport:
        """The Transport for a master.cf service name (created on first use).
        A name that master.cf does not define, or whose program has no
        delivery agent, is "mail transport unavailable" (deferred) until
        transport_retry_time has passed."""
        t = self.transports.get(name)
        if t is not None:
            return t
        svc = self.services.get(name)
        command, scfg, plimit, log_name = "", self.cfg, self.default_process_limit, ""
        if svc is not None:
            command = os.path.basename(svc.command)
            scfg = self.cfg.for_service(svc)
            plimit = svc.process_limit(self.default_process_limit)
            log_name = svc.overrides.get("syslog_name", "")
            if "/" in log_name:
                log_name = log_name.split("/", 1)[1]
        elif (not self.services and name in DEFAULT_TRANSPORTS) or name == "retry":
            command = DEFAULT_TRANSPORTS.get(name, "error")
        agent = self.agents.get(command) if command else None
        if name == "retry" and agent is None:
            agent = builtin_retry       # the queue manager's own deferrals
        if agent is None and command in BUILTIN:
            agent = BUILTIN[command]
        settings = TransportSettings.from_config(scfg, name, command, plimit)
        t = Transport(name, command, settings, agent, scfg, log_name or command or name)
        if agent is None:
            if not command:
                _warn(f"connect to transport private/{name}: No such file or directory")
            else:
                _warn(f"connect to transport private/{name}: this postier has no "
                            f"{command} delivery agent")
            self._throttle_transport(t, "4.3.0", "mail transport unavailable")
        self.transports[name] = t
        return t

    def _throttle_transport(self, t: Transport, status: str, reason: str) -> None:
        t.dead_reason = f"{status} {reason}"
        if t.timer is not None:
            t.timer.cancel()
        t.timer = self.loop.call_later(self.transport_retry, self._revive_transport, t)

    def _revive_transport(self, t: Transport) -> None:
        t.timer = None
        if t.agent is None:
            t.agent = self.agents.get(t.command) or BUILTIN.get(t.command)
        if t.agent is not None:
            t.dead_reason = ""
        else:
            self._throttle_transport(t, "4.3.0", "mail transport unavailable")

    # -- delivery ---------------------------------------------------------------------

    def _run_queue(self, q: DestQueue) -> None:
        t: Transport = q.transport
        rate = t.settings.rate_delay
        while q.todo and q.ready():
            if t.busy >= t.settings.process_limit:
                if q not in t.waiting:
                    t.waiting.append(q)
                return
            if rate > 0:
                # <transport>_destination_rate_delay: one delivery at a time,
                # at least `rate` seconds apart
                now = time.monotonic()
                if q.busy or q.timer is not None:
                    return
                wait = q.last_start + rate - now
                if wait > 0:
                    q.timer = self.loop.call_later(wait, self._rate_wakeup, q)
                    return
                q.last_start = now
            entry = q.todo.popleft()
            if entry.message.admin:
                self._drop_entry(entry)
                continue
            q.busy += 1
            t.busy += 1
            self._spawn(self._deliver(entry))

    def _rate_wakeup(self, q: DestQueue) -> None:
        q.timer = None
        self._run_queue(q)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drop_entry(self, entry: Entry) -> None:
        """An entry that will not be tried (the message is being held/deleted)."""
        msg = entry.message
        self.rcpt_count -= len(entry.items)
        msg.refcount -= 1
        if msg.refcount == 0:
            self._spawn(self._finish(msg))

    async def _deliver(self, entry: Entry) -> None:
        msg = entry.message
        env = msg.env
        t = entry.transport
        q = entry.queue
        recipients = [r for _, r in entry.items]
        handoff = time.time()
        site_failure: tuple[str, str] | None = None
        try:
            req = DeliveryRequest(
                queue_id=msg.qid, queue_path=msg.path, content_offset=msg.content_offset,
                content_size=env.content_size, sender=env.sender, recipients=recipients,
                transport=t.name, nexthop=q.nexthop, config=t.config, arrival=env.arrival,
                dsn_envid=env.dsn_envid, dsn_ret=env.dsn_ret, body_type=env.body_type,
                smtputf8=env.smtputf8, attrs=_request_attrs(env))
            agent = t.agent or builtin_retry
            try:
                statuses = await agent(req)
            except asyncio.CancelledError:
                raise
            except Exception as e:   # noqa: BLE001 - a crashed agent defers, as in Postfix
                _warn(f"{msg.qid}: {t.name} delivery agent failure: {e!r}")
                statuses = [RecipientStatus(r, "deferred", "4.3.0",
                                            "unknown mail transport error") for r in recipients]
                self._throttle_transport(t, "4.3.0", "unknown mail transport error")
            now = time.time()
            by_id = {id(s.recipient): s for s in statuses}
            results = []
            for idx, r in entry.items:
                st = by_id.get(id(r))
                if st is None:
                    st = RecipientStatus(r, "deferred", "4.3.0",
                                         "delivery agent did not report this recipient")
                results.append((idx, r, st))
            explicit = [getattr(st, "site_failure", None) for _, _, st in results]
            if any(x is not None for x in explicit):
                site = any(explicit)
            else:
                site = bool(results) and all(
                    st.status == "deferred" and SITE_FAILURE_RX.match(st.text or "")
                    for _, _, st in results)
            if site:
                st0 = results[0][2]
                site_failure = (st0.dsn, st0.text)
            for idx, r, st in results:
                self._result(msg, idx, r, st.status, st.dsn, st.text, st.relay or "none",
                             t.log_name, handoff, st.conn_delay, st.xmit_delay, now=now,
                             status_obj=st, transport=t)
        finally:
            q.busy -= 1
            t.busy -= 1
            self.rcpt_count -= len(entry.items)
        if site_failure is not None and t.command not in ("error",):
            self._queue_failed(q, *site_failure)
        elif t.command not in ("error",):
            q.positive()
        # start the next deliveries before the (slower) end of this message
        self._run_queue(q)
        while t.waiting and t.busy < t.settings.process_limit:
            self._run_queue(t.waiting.popleft())
        if not q.todo and not q.busy and not q.dead and q.timer is None \
                and not t.settings.rate_delay and t.queues.get(q.name) is q:
            del t.queues[q.name]
        msg.refcount -= 1
        if msg.refcount == 0:
            await self._finish(msg)

    def _queue_failed(self, q: DestQueue, status: str, text: str) -> None:
        reason = text if text.startswith("delivery temporarily suspended") \
            else f"delivery temporarily suspended: {text}"
        if q.negative(status, reason):
            q.timer = self.loop.call_later(self.min_backoff, self._revive_queue, q)
            # qmgr_defer_todo(): everything waiting for this destination
            while q.todo:
                entry = q.todo.popleft()
                msg = entry.message
                now = time.time()
                for idx, r in entry.items:
                    self._result(msg, idx, r, "deferred", status, reason, "none",
                                 "error", None, 0.0, 0.0, now=now)
                self.rcpt_count -= len(entry.items)
                msg.refcount -= 1
                if msg.refcount == 0:
                    self._spawn(self._finish(msg))

    def _revive_queue(self, q: DestQueue) -> None:
        q.revive()
        t: Transport = q.transport
        if not q.todo and not q.busy:
            t.queues.pop(q.name, None)
        else:
            self._run_queue(q)

    def _result(self, msg: Message, idx: int, r: Recipient, status: str, dsn: str, text: str,
                relay: str, service: str, handoff: float | None, conn_delay: float,
                xmit_delay: float, *, now: float | None = None, status_obj: Any = None,
                transport: Transport | None = None) -> None:
        """Log one recipient's outcome and remember it for the message."""
        now = time.time() if now is None else now
        env = msg.env
        if status not in ("sent", "bounced", "deferred"):
            status, dsn = "deferred", "4.3.0"
        if not dsn or dsn[0] not in "245":
            dsn = {"sent": "2.0.0", "bounced": "5.0.0"}.get(status, "4.0.0")
        if status == "bounced" and self.soft_bounce:
            status = "deferred"
            dsn = "4" + dsn[1:]
        a = max(0.0, msg.active_time - env.arrival)
        if handoff is None:
            b, c, d = max(0.0, now - msg.active_time), 0.0, 0.0
        else:
            b = max(0.0, handoff - msg.active_time)
            c = max(0.0, conn_delay)
            d = max(0.0, xmit_delay) if (conn_delay or xmit_delay) else max(0.0, now - handoff)
        orig = r.orig if r.orig and r.orig.lower() != r.address.lower() else ""
        log.info(delivery_line(msg.qid, r.address, orig, relay,
                               now - env.arrival, (a, b, c, d), dsn, status,
                               text, self.max_dig,
                               getattr(status_obj, "conn_use", 0)), service)
        if status == "sent":
            msg.done.add(idx)
            msg.changed = True
            self.delivered += 1
            if "SUCCESS" in r.dsn_notify.upper():
                action = getattr(status_obj, "action", "") if status_obj is not None else ""
                if not action:
                    cmd = transport.command if transport is not None else ""
                    action = "relayed" if cmd in ("smtp", "lmtp") else "delivered"
                msg.trace_recs.append(B.make_record(r, dsn, action, text, relay, now,
                                                    trace=True, status=status_obj))
        elif status == "bounced":
            msg.done.add(idx)
            msg.changed = True
            msg.bounce_recs.append(B.make_record(r, dsn, "failed", text, relay, now,
                                                 status=status_obj))
        else:
            msg.deferred = True
            msg.defer_recs[idx] = B.make_record(r, dsn, "delayed", text, relay, now,
                                                status=status_obj)

    # -- end of a pass over one message -------------------------------------------------

    def _unlink_all(self, qid: str, path: str, logs: bool = True) -> bool:
        """Remove a queue file and its logs (blocking: unlink of a file in a
        busy directory can take a good part of a millisecond)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            _warn(f"{qid}: remove {os.path.relpath(path, self.qdir)}: "
                  "No such file or directory")
            return False
        for lq in (("defer", "bounce", "trace") if logs else ()):
            try:
                os.unlink(os.path.join(self.qdir, lq, qid))
            except OSError:
                pass
        return True

    async def _notify(self, msg: Message, template: str, records: list[Any]) -> bool:
        """Queue the notices for `records`; False when that failed."""
        if not records:
            return True

        def content() -> bytes:
            try:
                return read_content(msg.path)
            except CorruptQueueFile:
                return b""
        try:
            notices = B.flush(template, msg.env, records, content, self.bsettings,
                              warn=log.ServiceLog("bounce").warning)
        except OSError as e:
            _warn(f"{msg.qid}: cannot read the message for a notice: {e.strerror}")
            return False
        for n in notices:
            try:
                new_id = await self.loop.run_in_executor(
                    self._io, B.queue_notice, self.qdir, n, self.bsettings)
            except OSError as e:
                log.warning(f"{msg.qid}: cannot queue {n.log_text}: "
                            f"{e.strerror}", "bounce")
                return False
            log.info(f"{msg.qid}: {n.log_text}: {new_id}", "bounce")
            self.on_queued(new_id)
        return True

    async def _finish(self, msg: Message) -> None:
        qid = msg.qid
        env = msg.env
        path = msg.path
        msg.finishing = True
        try:
            deleting = any(op == "delete" for op, _ in msg.admin)
            if not deleting:
                leftover = (read_dsn_log(os.path.join(self.qdir, "bounce", qid))
                            if msg.origin != "new" else [])
                bounced = leftover + msg.bounce_recs
                if bounced and not await self._notify(msg, B.FAILURE, bounced):
                    await self._run(append_dsn_log, os.path.join(self.qdir, "bounce", qid),
                                    msg.bounce_recs, sync=True)
                    msg.deferred = True
                elif leftover:
                    _remove(os.path.join(self.qdir, "bounce", qid))
                if msg.trace_recs:
                    await self._notify(msg, B.SUCCESS, msg.trace_recs)
            if msg.admin:
                await self._admin_finish(msg)
                return
            if msg.deferred:
                now = time.time()
                lifetime = self.max_lifetime if env.sender else self.bounce_lifetime
                defer = list(msg.defer_recs.values())
                if now >= env.arrival + lifetime:
                    log.info(f"{qid}: from=<{env.sender}>, status=expired, "
                             "returned to sender", "qmgr")
                    if await self._notify(msg, B.FAILURE, defer):
                        msg.deferred = False
                elif (self.delay_warning > 0 and not env.warned
                      and now >= env.arrival + self.delay_warning - 1 and defer):
                    if await self._notify(msg, B.DELAY, defer):
                        env.warned = True
                        msg.changed = True
            if msg.deferred:
                await self._defer(msg)
            elif self._unlink_all(qid, path, msg.origin != "new"):
                # inline: the queue process's loop serves only deliveries (smtpd
                # runs in its own processes), and a hand-off to a thread costs
                # more CPU than the unlink itself
                log.info(f"{qid}: removed", "qmgr")
        except Exception as e:   # noqa: BLE001 - keep the daemon alive; the file stays
            _warn(f"{qid}: queue manager error: {e!r}")
        finally:
            if self.active.get(qid) is msg:
                del self.active[qid]
            if msg.gone is not None and not msg.gone.done():
                msg.gone.set_result(None)
            self._kick()

    async def _run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await self.loop.run_in_executor(self._io, lambda: fn(*args, **kw))

    def _mark_done(self, msg: Message) -> None:
        for idx in msg.done:
            msg.env.recipients[idx].done = True

    async def _defer(self, msg: Message) -> None:
        """qmgr_active_defer(): done marks (fsync'd), defer log, time stamps,
        then rename into deferred/."""
        qid = msg.qid
        now = time.time()
        delay = backoff_delay(now, msg.env.arrival, self.min_backoff, self.max_backoff)
        defer = list(msg.defer_recs.values())
        changed = msg.changed
        self._mark_done(msg)
        dst = os.path.join(self.qdir, "deferred", qid)

        def work() -> None:
            if changed:
                append_envelope(msg.path, msg.env, sync=True)
            if defer:
                append_dsn_log(os.path.join(self.qdir, "defer", qid), defer)
            os.utime(msg.path, (now, now + delay))
            os.rename(msg.path, dst)
        try:
            await self.loop.run_in_executor(self._io, work)
        except FileNotFoundError:
            _warn(f"{qid}: rename active/{qid} to deferred: No such file or directory")

    async def _admin_finish(self, msg: Message) -> None:
        """Carry out hold/delete/requeue requests that waited for this message."""
        qid = msg.qid
        ops = msg.admin
        msg.admin = []
        op = ops[0][0]
        result: str | None
        try:
            if op == "delete":
                result = "" if self._unlink_all(qid, msg.path) else None
            else:
                target = {"hold": "hold", "requeue": "incoming"}[op]
                self._mark_done(msg)
                changed = msg.changed
                defer = list(msg.defer_recs.values())

                def work() -> None:
                    if changed:
                        append_envelope(msg.path, msg.env, sync=True)
                    if defer:
                        append_dsn_log(os.path.join(self.qdir, "defer", qid), defer)
                    now = time.time()
                    os.utime(msg.path, (now, now))
                    os.rename(msg.path, os.path.join(self.qdir, target, qid))
                try:
                    await self.loop.run_in_executor(self._io, work)
                    result = target
                except FileNotFoundError:
                    result = None
                if result == "incoming":
                    self.active.pop(qid, None)
                    self._enqueue(qid, fresh=False)
        except OSError as e:
            for _, fut in ops:
                if not fut.done():
                    fut.set_exception(e)
            return
        for _, fut in ops:
            if not fut.done():
                fut.set_result(result)

    # -- scanning and triggers ---------------------------------------------------------

    def _scan(self, queue: str, ignore_time: bool) -> int:
        d = os.path.join(self.qdir, queue)
        now = time.time()
        found = 0
        target = self.new_ids if queue == "incoming" else self.old_ids
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            return 0
        with it:
            names = []
            for e in it:
                name = e.name
                if name.startswith(".") or name in self.pending or name in self.active:
                    continue
                if queue == "deferred" and not ignore_time:
                    try:
                        if e.stat().st_mtime > now + 1:
                            continue
                    except FileNotFoundError:
                        continue
                names.append(name)
        names.sort()
        for name in names:
            self.pending.add(name)
            target.append(name)
            found += 1
        return found

    async def _scan_loop(self) -> None:
        delay = float(self.queue_run_delay)
        next_scan = time.monotonic() + delay
        while not self._closing:
            timeout = max(0.0, next_scan - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            periodic = time.monotonic() >= next_scan
            if periodic:
                self._scan_incoming = self._scan_deferred = True
                next_scan = time.monotonic() + delay * (0.95 + 0.1 * random.random())
            try:
                if self._scan_incoming:
                    self._scan_incoming = False
                    self._scan("incoming", ignore_time=True)
                if self._scan_deferred:
                    self._scan_deferred = False
                    all_ = self._scan_all
                    self._scan_all = False
                    self._flush_next = all_
                    self._scan("deferred", ignore_time=all_)
            except OSError as e:
                _warn(f"queue scan error: {e.strerror}")
            self._kick()

    def trigger(self, letters: str) -> None:
        """Postfix qmgr trigger codes: I, D, A, F, W."""
        for c in letters:
            if c == "I":
                self._scan_incoming = True
            elif c == "D":
                self._scan_deferred = True
            elif c == "A":
                self._scan_all = True
                self._scan_deferred = True
            elif c == "F":
                self._revive_all()
            elif c == "W":
                self._scan_incoming = self._scan_deferred = True
        self._wake.set()

    def _revive_all(self) -> None:
        for t in self.transports.values():
            if t.dead_reason and t.agent is not None:
                if t.timer is not None:
                    t.timer.cancel()
                t.timer = None
                t.dead_reason = ""
            for q in list(t.queues.values()):
                if q.dead:
                    if q.timer is not None:
                        q.timer.cancel()
                    self._revive_queue(q)

    async def admin(self, op: str, qid: str) -> str | None:
        """hold/delete/requeue a message in active (see postier.qmgr.control)."""
        msg = self.active.get(qid)
        if msg is None:
            return None
        if msg.finishing:
            # too late to intervene: let it land, the tool finds it there
            if msg.gone is None:
                msg.gone = self.loop.create_future()
            await msg.gone
            return None
        fut: asyncio.Future = self.loop.create_future()
        msg.admin.append((op, fut))
        if len(msg.admin) == 1:
            # take its waiting entries off the destination queues
            for t in self.transports.values():
                for q in t.queues.values():
                    keep = deque(e for e in q.todo if e.message is not msg)
                    dropped = [e for e in q.todo if e.message is msg]
                    q.todo = keep
                    for e in dropped:
                        self._drop_entry(e)
        return await fut

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            words = line.decode("utf-8", "surrogateescape").split()
            answer = await self._command(words, writer)
            writer.write(answer.encode("utf-8", "surrogateescape") + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _command(self, words: list[str], writer: asyncio.StreamWriter) -> str:
        if not words:
            return "error empty request"
        cmd = words[0].lower()
        if cmd == "ping":
            return "ok"
        if cmd == "flush":
            self.trigger("FADI")
            return "ok"
        if cmd == "trigger" and len(words) == 2:
            if any(c not in TRIGGERS for c in words[1]):
                return f"error unknown trigger code in {words[1]}"
            self.trigger(words[1])
            return "ok"
        if cmd in ("hold", "delete", "requeue", "release") and len(words) == 2:
            if not _privileged(writer):
                return "error permission denied"
            if cmd == "release":
                return "none"       # nothing in active is on hold
            try:
                where = await self.admin(cmd, words[1])
            except OSError as e:
                return f"error {e.strerror}"
            if where is None:
                return "none"
            return "ok" if where == "" else f"ok {where}"
        return f"error unknown request: {' '.join(words)[:100]}"


def _privileged(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           _PEERCRED.size))
    except (OSError, AttributeError):
        return False
    return uid == 0 or uid == os.geteuid()


def _listening(path: str) -> bool:
    """Does something accept connections on this Unix socket?"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _request_attrs(env: Envelope) -> dict[str, str]:
    attrs = {}
    if env.client_name:
        attrs["client_name"] = env.client_name
    if env.client_address:
        attrs["client_address"] = env.client_address
    port = getattr(env, "client_port", "")
    if port:
        attrs["client_port"] = port
    if env.helo_name:
        attrs["helo_name"] = env.helo_name
    if env.protocol_name:
        attrs["protocol_name"] = env.protocol_name
    ctx = getattr(env, "rewrite_context", "")
    if ctx:
        attrs["rewrite_context"] = ctx
    attrs["log_ident"] = env.queue_id
    return attrs
