"""The pickup service: local submission over `public/pickup`, and maildrop/.

`PickupService(cfg, service, loop)` runs inside `postier run` (see
postier.pickup.start).  It

* listens on the Unix socket queue_directory/public/pickup (mode 0666 in a
  0755 directory) and serves the requests of postier.pickup.protocol:
  submissions (sendmail), SMTP sessions (sendmail -bs, see
  postier.pickup.localsmtp), queue listings (mailq), flushes (sendmail -q)
  and address verification (sendmail -bv).  The submitting user is the uid
  the kernel reports for the connection (SO_PEERCRED), never a claim of the
  client; it is checked against authorized_submit_users (mailq and flush:
  authorized_mailq_users / authorized_flush_users, root and $mail_owner are
  always allowed), logged as `QUEUEID: uid=UID from=<SENDER>` and recorded
  in the `Received: by HOST (MAIL_NAME, from userid UID)` header.  The
  message goes through cleanup (postier.pickup.cleanup) in the local
  rewriting context (remote with sendmail -G) and is committed to
  incoming/ (fsync, rename, fsync of the directory) before the answer
  `ok` (content check verdicts - HOLD, FILTER, REDIRECT - go into the
  envelope, a rejection is the answer); a connection that ends before the
  end-of-message frame leaves nothing behind.  At most MAX_CLIENTS connections are served at once, and
  every frame must arrive within FRAME_TIMEOUT seconds.
* scans maildrop/ at start and every wakeup period of the master.cf pickup
  service (60 s by default): files there are postier queue files that the
  sendmail command wrote as root while the daemon was down (the envelope
  as the user gave it, the content before cleanup).  Each one goes through
  cleanup into incoming/ like a socket submission, with the file owner as
  the submitting uid, and is removed afterwards.  Only regular files
  owned by root or by the daemon's own user, with one link and not
  writable by group or others, are read; a file whose content cleanup
  refuses for good, or that does not decode, moves to corrupt/ (with a
  warning) instead of being lost; a temporary failure leaves it for the
  next scan.

Parameters read: queue_directory, myhostname, mail_name,
message_size_limit, header_from_format, content_filter,
authorized_submit_users, authorized_mailq_users, authorized_flush_users,
mail_owner, empty_address_recipient, duplicate_filter_limit,
smtputf8_enable, and everything cleanup (postier.cleanup.settings), smtpd
(for -bs) and the address resolver (for -bv) read.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from postier import log
from postier.errors import PostierError
from postier.pickup import protocol as P
from postier.pickup.cleanup import PickupCleanup, received_header
from postier.pickup.users import AclError, check_user_acl, is_privileged
from postier.queue.file import CorruptQueueFile, Envelope, QueueWriter, read_envelope

MAX_CLIENTS = 64
FRAME_TIMEOUT = 60.0
CLOSE_WAIT = 10.0
READ_CHUNK = 256 * 1024


@dataclass
class PickupSettings:
    queue_directory: str
    myhostname: str
    mail_name: str
    message_size_limit: int
    from_format: str
    content_filter: str
    submit_acl: str
    mailq_acl: str
    flush_acl: str
    mail_owner: str
    wakeup: int
    cleanup: Any

    @classmethod
    def from_config(cls, cfg: Any, wakeup: int = 60) -> PickupSettings:
        from postier.cleanup import CleanupSettings
        return cls(
            queue_directory=cfg.get("queue_directory"),
            myhostname=cfg.get("myhostname"),
            mail_name=cfg.get("mail_name"),
            message_size_limit=cfg.get_size("message_size_limit"),
            from_format=cfg.get("header_from_format"),
            content_filter=cfg.get_str("content_filter"),
            submit_acl=cfg.get_str("authorized_submit_users"),
            mailq_acl=cfg.get_str("authorized_mailq_users"),
            flush_acl=cfg.get_str("authorized_flush_users"),
            mail_owner=cfg.get("mail_owner"),
            wakeup=wakeup,
            cleanup=CleanupSettings.from_config(cfg),
        )


class _FrameReader:
    """Frames from a non-blocking socket, with a per-frame time limit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket):
        self.loop = loop
        self.sock = sock
        self.buf = bytearray()

    async def _fill(self) -> None:
        data = await self.loop.sock_recv(self.sock, READ_CHUNK)
        if not data:
            raise P.PeerGone("connection closed")
        self.buf += data

    async def _read(self, allowed: tuple[bytes, ...]) -> tuple[bytes, bytes]:
        while len(self.buf) < P.HEADER.size:
            await self._fill()
        kind, length = P.parse_header(bytes(self.buf[:P.HEADER.size]), allowed)
        need = P.HEADER.size + length
        while len(self.buf) < need:
            await self._fill()
        payload = bytes(self.buf[P.HEADER.size:need])
        del self.buf[:need]
        return kind, payload

    async def read(self, allowed: tuple[bytes, ...]) -> tuple[bytes, bytes]:
        return await asyncio.wait_for(self._read(allowed), FRAME_TIMEOUT)


def _external(address: str) -> str:
    from postier.tok822 import quote_822_local
    return quote_822_local(address) if address else ""


class PickupService:
    """See the module docstring."""

    def __init__(self, cfg: Any, settings: PickupSettings,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.cfg = cfg
        self.s = settings
        self.loop = loop or asyncio.get_event_loop()
        self.log = log.ServiceLog("pickup")
        self.on_queued: Callable[[str], Any] | None = None
        self.path = P.socket_path(settings.queue_directory)
        self.listener: socket.socket | None = None
        self.tasks: set[asyncio.Task] = set()
        self.slots = asyncio.Semaphore(MAX_CLIENTS)
        self._accept_task: asyncio.Task | None = None
        self._scan_task: asyncio.Task | None = None
        self._smtpd: Any = None
        self._resolver: Any = None
        self._unsafe_seen: set[str] = set()
        self._scan_lock = asyncio.Lock()

    # ---------------------------------------------------------- lifecycle

    def prepare_directories(self) -> None:
        """public/ 0755 and maildrop/ 0700, owned by the daemon's user."""
        qdir = self.s.queue_directory
        for name, mode in (("public", 0o755), ("maildrop", 0o700)):
            path = os.path.join(qdir, name)
            os.makedirs(path, mode=mode, exist_ok=True)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise PostierError(f"{path}: not a directory")
            if st.st_uid == os.geteuid():
                if stat.S_IMODE(st.st_mode) != mode:
                    os.chmod(path, mode)
            elif st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o022:
                raise PostierError(f"{path}: unsafe ownership or permissions "
                                   f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")

    def _bind(self) -> socket.socket:
        path = self.path
        if os.path.lexists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(2)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)                  # stale socket of an earlier run
            else:
                raise PostierError(f"{path}: another pickup service is running")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o666)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        try:
            self.prepare_directories()
            self.listener = self._bind()
        except OSError as e:
            raise PostierError(f"pickup: {self.path}: {e.strerror}") from None
        self._accept_task = self.loop.create_task(self._accept_loop())
        self._scan_task = self.loop.create_task(self._scan_loop())

    async def close(self) -> None:
        for t in (self._accept_task, self._scan_task):
            if t is not None:
                t.cancel()
        for t in (self._accept_task, self._scan_task):
            if t is not None:
                try:
                    await t
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self.tasks:
            # let submissions in progress finish (their clients wait for the
            # answer); what is left after CLOSE_WAIT is aborted (no queue
            # file, the client exits 75 and tries again)
            _, pending = await asyncio.wait(list(self.tasks), timeout=CLOSE_WAIT)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._smtpd is not None:
            await self._smtpd.close()

    # ---------------------------------------------------------- connections

    async def _accept_loop(self) -> None:
        assert self.listener is not None
        while True:
            await self.slots.acquire()
            try:
                conn, _ = await self.loop.sock_accept(self.listener)
            except OSError as e:
                self.slots.release()
                self.log.warning(f"accept {self.path}: {e.strerror}")
                await asyncio.sleep(1)
                continue
            except BaseException:
                self.slots.release()
                raise
            conn.setblocking(False)
            task = self.loop.create_task(self._serve(conn))
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.slots.release()
        if not task.cancelled() and task.exception() is not None:
            self.log.warning(f"pickup connection: {task.exception()!r}")

    async def _send(self, conn: socket.socket, data: bytes) -> None:
        await asyncio.wait_for(self.loop.sock_sendall(conn, data), FRAME_TIMEOUT)

    async def _serve(self, conn: socket.socket) -> None:
        handed_off = False
        uid = -1
        try:
            _, uid, _ = P.peer_credentials(conn)
            reader = _FrameReader(self.loop, conn)
            answer: P.Answer | None = None
            try:
                _, payload = await reader.read((P.REQUEST,))
                req = P.decode_request(payload)
                if req.mode == "submit":
                    answer = await self._submit_socket(req, uid, reader)
                elif req.mode == "smtp":
                    answer = self._acl(self.s.submit_acl, "authorized_submit_users", uid,
                                       "submit mail")
                    if answer is None:
                        if reader.buf:
                            raise P.FrameError("SMTP data before the answer")
                        try:
                            smtpd = self._smtp_server()
                        except (PostierError, OSError, ValueError) as e:
                            self.log.warning(f"sendmail -bs: smtpd configuration: {e}")
                            answer = P.Answer(P.TEMPFAIL, f"SMTP service unavailable: {e}")
                        else:
                            await self._send(conn, P.encode_answer(P.Answer(pid=os.getpid())))
                            await smtpd.serve(conn, uid, self.log.info)
                            handed_off = True
                            return
                elif req.mode == "mailq":
                    answer = await self._mailq(conn, uid)
                elif req.mode == "flush":
                    answer = await self._flush(uid)
                elif req.mode == "verify":
                    answer = await self._verify(conn, req, uid)
                else:
                    answer = P.Answer()
            except P.FrameError as e:
                self.log.warning(f"uid={uid}: malformed request: {e}")
                answer = P.Answer(P.FAIL, f"protocol error: {e}")
            if answer.pid == 0:
                answer.pid = os.getpid()
            await self._send(conn, P.encode_answer(answer))
        except (P.PeerGone, ConnectionError, BrokenPipeError):
            pass
        except TimeoutError:
            self.log.warning(f"uid={uid}: timeout on the pickup socket")
        except OSError as e:
            self.log.warning(f"uid={uid}: pickup socket: {e.strerror}")
        finally:
            if not handed_off:
                conn.close()

    def _acl(self, acl: str, param: str, uid: int, what: str,
             privileged_ok: bool = False) -> P.Answer | None:
        if privileged_ok and is_privileged(uid, self.s.mail_owner):
            return None
        try:
            name = check_user_acl(param, acl, uid)
        except AclError as e:
            self.log.warning(str(e))
            return P.Answer(P.TEMPFAIL, f"{param}: table lookup problem")
        if name is None:
            return None
        self.log.warning(f"User {name}({uid}) is not allowed to {what}")
        return P.Answer(P.FAIL, f"User {name}({uid}) is not allowed to {what}")

    async def _submit_socket(self, req: P.Request, uid: int, reader: _FrameReader) -> P.Answer:
        denied = self._acl(self.s.submit_acl, "authorized_submit_users", uid, "submit mail")
        if denied is not None:
            return denied

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                kind, payload = await reader.read((P.DATA, P.END))
                if kind == P.END:
                    return
                yield payload

        return await self.submit(req, uid, chunks(), time.time())

    # ---------------------------------------------------------- one message

    async def submit(self, req: P.Request, uid: int, chunks: AsyncIterator[bytes],
                     arrival: float) -> P.Answer:
        """Cleanup and queue one message; the Answer for the submitter.
        Exceptions from `chunks` (the client went away) abort the queue
        file and propagate."""
        s = self.s
        who = f"{req.sender}({uid})"
        try:
            writer = QueueWriter(os.path.join(s.queue_directory, "incoming"))
        except OSError as e:
            self.log.warning(f"queue file create error: {e.strerror}")
            return P.Answer(P.TEMPFAIL, f"{who}: queue file write error")
        qid = writer.queue_id
        committed = False
        try:
            self.log.info(f"{qid}: uid={uid} from=<{_external(req.sender)}>")
            from postier.cleanup import Rcpt
            c = PickupCleanup(
                s.cleanup, full_name=req.full_name, from_format=s.from_format,
                queue_id=qid, sender=req.sender,
                recipients=[Rcpt(a, req.notify, "") for a in req.recipients + req.extracted],
                rewrite_context=req.rewrite_context, arrival=arrival)
            c.log_origin = "local"              # content check log lines: "from local"
            writer.write(c.received(received_header(s.myhostname, s.mail_name, uid, qid,
                                                    arrival)))
            limit = s.message_size_limit
            async for chunk in chunks:
                writer.write(c.feed(chunk))
                if limit and writer.size > limit:
                    self.log.warning(f"{qid}: queue file size limit exceeded")
                    return P.Answer(P.FAIL, f"{who}: message file too big", qid)
            writer.write(c.finish())
            if limit and writer.size > limit:
                self.log.warning(f"{qid}: queue file size limit exceeded")
                return P.Answer(P.FAIL, f"{who}: message file too big", qid)
            if c.error is not None:
                status = P.TEMPFAIL if c.error.temporary else P.FAIL
                text = f"{c.error.enhanced} {c.error.text}".strip()
                return P.Answer(status, f"{who}: {text}", qid)
            if c.discard:
                return P.Answer(P.OK, queue_id=qid)
            if not c.recipients:
                return P.Answer(P.FAIL, f"{who}: no recipients specified", qid)
            extracted = set(req.extracted) - set(req.recipients)
            for r in c.recipients:
                if not r.segment and r.orig in extracted:
                    r.segment = "extracted"
            # content check verdicts (HOLD, FILTER, REDIRECT), when cleanup has them
            env = Envelope(
                queue_id=qid, arrival=arrival, sender=c.sender, recipients=c.recipients,
                dsn_envid=req.envid, dsn_ret=req.ret, body_type=req.body_type,
                rewrite_context=c.rewrite_context, header_encoding=c.header_encoding,
                content_filter=getattr(c, "content_filter", "") or s.content_filter,
                redirect=getattr(c, "redirect", "") or "",
                hold_reason=getattr(c, "hold_reason", None) or "")
            await self.loop.run_in_executor(None, writer.commit, env)
            committed = True
        except (TimeoutError, ConnectionError):
            raise                               # the client, not the queue file
        except OSError as e:
            self.log.warning(f"{qid}: queue file write error: {e.strerror}")
            return P.Answer(P.TEMPFAIL, f"{who}: queue file write error", qid)
        finally:
            if not committed:
                writer.abort()
        self._queued(qid)
        return P.Answer(P.OK, queue_id=qid)

    def _queued(self, qid: str) -> None:
        if self.on_queued is not None:
            try:
                self.on_queued(qid)
            except Exception as e:  # noqa: BLE001 - the message is safe on disk anyway
                self.log.warning(f"{qid}: queue manager notification failed: {e}")
            return

        def trigger() -> None:
            from postier.qmgr.control import qmgr_trigger
            try:
                qmgr_trigger(self.s.queue_directory, "I")
            except Exception:  # noqa: BLE001 - qmgr rescans incoming/ anyway
                pass
        self.loop.run_in_executor(None, trigger)

    # ---------------------------------------------------------- other modes

    def _smtp_server(self) -> Any:
        if self._smtpd is None:
            from postier.pickup.localsmtp import LocalSmtpdServer
            from postier.smtpd.server import SmtpdSettings
            settings = SmtpdSettings.from_config(self.cfg)
            settings.cleanup = self.s.cleanup
            self._smtpd = LocalSmtpdServer(settings, self.loop, self.s.content_filter)
            self._smtpd.on_queued = self._queued
        return self._smtpd

    async def _output(self, conn: socket.socket, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        for i in range(0, len(data), P.MAX_PAYLOAD):
            await self._send(conn, P.frame(P.OUTPUT, data[i:i + P.MAX_PAYLOAD]))

    async def _mailq(self, conn: socket.socket, uid: int) -> P.Answer:
        denied = self._acl(self.s.mailq_acl, "authorized_mailq_users", uid,
                           "view the mail queue", privileged_ok=True)
        if denied is not None:
            return denied
        try:
            text = await self.loop.run_in_executor(None, showq, self.cfg)
        except PostierError as e:
            return P.Answer(P.TEMPFAIL, str(e))
        await self._output(conn, text)
        return P.Answer()

    async def _flush(self, uid: int) -> P.Answer:
        denied = self._acl(self.s.flush_acl, "authorized_flush_users", uid,
                           "flush the mail queue", privileged_ok=True)
        if denied is not None:
            return denied
        from postier.qmgr.control import qmgr_flush

        def flush() -> bool:
            try:
                return qmgr_flush(self.s.queue_directory)
            except (OSError, PostierError):
                return False
        if not await self.loop.run_in_executor(None, flush):
            return P.Answer(P.TEMPFAIL, "Cannot flush mail queue - mail system is down")
        return P.Answer()

    async def _verify(self, conn: socket.socket, req: P.Request, uid: int) -> P.Answer:
        denied = self._acl(self.s.submit_acl, "authorized_submit_users", uid, "submit mail")
        if denied is not None:
            return denied
        from postier.pickup.verify import verify_report
        try:
            text = await self.loop.run_in_executor(
                None, verify_report, self.cfg, self.s.cleanup, req)
        except PostierError as e:
            return P.Answer(P.TEMPFAIL, str(e))
        await self._output(conn, text)
        return P.Answer()

    # ---------------------------------------------------------- maildrop

    async def _scan_loop(self) -> None:
        while True:
            try:
                await self.scan_maildrop()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - keep scanning; report it
                self.log.warning(f"maildrop scan: {e!r}")
            await asyncio.sleep(self.s.wakeup if self.s.wakeup > 0 else 60)

    async def scan_maildrop(self) -> int:
        """Feed every complete maildrop file to cleanup; the number queued."""
        from postier.queue.qid import is_queue_id
        mdir = os.path.join(self.s.queue_directory, "maildrop")
        try:
            names = sorted(n for n in os.listdir(mdir) if is_queue_id(n))
        except FileNotFoundError:
            return 0
        count = 0
        async with self._scan_lock:         # one scan at a time: a file is queued once
            for name in names:
                if await self._pickup_file(mdir, name):
                    count += 1
        return count

    def _safe(self, path: str, name: str) -> os.stat_result | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        problem = ""
        if not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif st.st_nlink != 1:
            problem = f"file has {st.st_nlink} hard links"
        elif st.st_uid not in (0, os.geteuid()):
            problem = f"owned by uid {st.st_uid}"
        elif stat.S_IMODE(st.st_mode) & 0o022:
            problem = f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
        if problem:
            if name not in self._unsafe_seen:
                self._unsafe_seen.add(name)
                self.log.warning(f"maildrop/{name}: {problem} -- skipped")
            return None
        return st

    async def _pickup_file(self, mdir: str, name: str) -> bool:
        path = os.path.join(mdir, name)
        st = self._safe(path, name)
        if st is None:
            return False
        try:
            env, start = read_envelope(path)
        except CorruptQueueFile as e:
            self._to_corrupt(path, name, str(e).replace(path + ": ", ""))
            return False
        req = P.Request(
            sender=env.sender,
            recipients=[r.address for r in env.recipients if r.segment != "extracted"],
            extracted=[r.address for r in env.recipients if r.segment == "extracted"],
            notify=env.recipients[0].dsn_notify if env.recipients else "",
            ret=env.dsn_ret, envid=env.dsn_envid, body_type=env.body_type,
            rewrite_context=env.rewrite_context if env.rewrite_context == "remote" else "local",
            full_name=env.attrs.get("full_name", ""))
        size = env.content_size

        async def chunks() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:
                f.seek(start)
                left = size
                while left > 0:
                    data = f.read(min(READ_CHUNK, left))
                    if not data:
                        raise CorruptQueueFile(f"{path}: truncated content")
                    left -= len(data)
                    yield data
        try:
            answer = await self.submit(req, st.st_uid, chunks(), env.arrival or st.st_mtime)
        except CorruptQueueFile as e:
            self._to_corrupt(path, name, str(e).replace(path + ": ", ""))
            return False
        except OSError as e:
            self.log.warning(f"maildrop/{name}: {e.strerror}")
            return False
        if answer.status == P.TEMPFAIL:
            self.log.warning(f"maildrop/{name}: {answer.text} -- will try again")
            return False
        if answer.status == P.FAIL:
            self._to_corrupt(path, name, answer.text)
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return True

    def _to_corrupt(self, path: str, name: str, why: str) -> None:
        target = os.path.join(self.s.queue_directory, "corrupt")
        os.makedirs(target, mode=0o700, exist_ok=True)
        self.log.warning(f"maildrop/{name}: {why}")
        self.log.warning(f'saving corrupt file "{name}" from queue "maildrop" '
                         f'to queue "corrupt"')
        try:
            os.rename(path, os.path.join(target, name))
        except OSError as e:
            self.log.warning(f"maildrop/{name}: rename to corrupt/: {e.strerror}")


def showq(cfg: Any) -> str:
    """The mailq listing, as postier.queue.tools formats it (blocking)."""
    from postier.queue.tools import ListSettings, QueueError, format_mailq, list_messages
    qdir = cfg.get("queue_directory")
    out: list[str] = []
    warnings: list[str] = []
    try:
        format_mailq(list_messages(qdir, settings=ListSettings.from_config(cfg),
                                   warn=warnings.append), out.append)
    except QueueError as e:
        raise PostierError(str(e)) from None
    for w in warnings:
        log.warning(w)
    return "".join(out)
