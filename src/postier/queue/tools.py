"""Queue administration shared by `postier queue` and `postier qshape`.

What Postfix spreads over showq(8), postqueue(1) and postsuper(1):

* `find_message(qdir, qid, queues)`: which queue holds a message.
* `list_messages(qdir, ...)`: every message in the listed queues, in
  showq's order (maildrop, active, incoming, deferred, hold; within a queue
  by queue ID, which is arrival order), each with its envelope and the
  per-recipient delay reasons of its defer log; damaged files are reported
  through a callback and skipped.
* `QueueAdmin`: delete / hold / release / requeue one message or ALL,
  with postsuper's counting rules, following the queue manager's protocol
  (postier.qmgr): files in incoming, deferred, hold and corrupt are moved
  with rename(2) inside queue_directory and the target directory is
  fsync'd; a deleted message loses its defer/bounce/trace logs too.  A
  message in `active` belongs to the running queue manager: the request
  goes to it on public/qmgr (it finishes the deliveries in progress,
  records the done recipients, then moves or deletes the file); when no
  queue manager answers, the tool moves the file itself.  Released mail
  goes to deferred with a current time stamp (tried at the next deferred
  scan or `flush`); requeued mail goes to incoming with a current time
  stamp and the queue manager is told to scan incoming (`trigger I`).
* `format_mailq()` / `format_json()`: postqueue -p / -j output.

Queue names: maildrop, incoming, active, deferred, hold, corrupt hold
messages; bounce, defer, trace hold per-message logs (the defer log gives
the reason of each deferred recipient; see `read_defer_log`).

Parameters read (through the caller): queue_directory,
empty_address_recipient, duplicate_filter_limit, smtputf8_enable.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from postier.errors import PostierError
from postier.maps.access import quote_822_local
from postier.queue.file import CorruptQueueFile, Envelope, read_envelope

#: Queues that hold messages (postier adds `corrupt`, where damaged files go).
MESSAGE_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
#: Per-message log directories, removed together with their message.
LOG_QUEUES = ("bounce", "defer", "trace")
#: showq(8)'s listing order.
LIST_QUEUES = ("maildrop", "active", "incoming", "deferred", "hold")
#: postsuper -d / -r default queues (postsuper's default_queues, message part).
DEFAULT_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
#: postsuper -h default queues.
HOLD_QUEUES = ("incoming", "active", "deferred")
#: postsuper -H default queues.
RELEASE_QUEUES = ("hold",)
#: postcat -q search order (postier adds corrupt, so damaged files can be shown).
CAT_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
#: Where `requeue` puts a message: the queue manager takes it as new mail.
REQUEUE_TARGET = "incoming"

_QUEUE_ID_OK = re.compile(r"^[A-Za-z0-9_]{1,255}$")


class QueueError(PostierError):
    """A fatal queue-tool error (printed as `PROG: fatal: text`)."""


def queue_id_ok(qid: str) -> bool:
    """Postfix's mail_queue_id_ok(): letters, digits and '_' only."""
    return bool(_QUEUE_ID_OK.match(qid))


def check_queue_names(names: Iterable[str], allowed: Iterable[str] = MESSAGE_QUEUES) -> list[str]:
    """Validate queue names given on a command line (postsuper: `invalid
    directory name: X`)."""
    allowed = tuple(allowed)
    out = []
    for name in names:
        if name not in allowed:
            raise QueueError(f"invalid directory name: {name}")
        out.append(name)
    return out


def check_queue_directory(qdir: str) -> None:
    """Fail like Postfix's tools when queue_directory is unusable:
    `chdir /x: No such file or directory`."""
    try:
        st = os.stat(qdir)
    except OSError as e:
        raise QueueError(f"chdir {qdir}: {e.strerror}") from None
    import stat as _stat
    if not _stat.S_ISDIR(st.st_mode):
        raise QueueError(f"chdir {qdir}: Not a directory")
    if not os.access(qdir, os.R_OK | os.X_OK):
        raise QueueError(f"chdir {qdir}: Permission denied")


def queue_path(qdir: str, queue: str, qid: str) -> str:
    return os.path.join(qdir, queue, qid)


def queue_ids(qdir: str, queue: str) -> list[str]:
    """The message file names in one queue, sorted (= arrival order for
    postier IDs).  Temporary files (`.ID.tmp`) and other names that are not
    queue IDs are ignored; a missing directory is an empty queue."""
    try:
        names = os.listdir(os.path.join(qdir, queue))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as e:
        raise QueueError(f"open directory {os.path.join(qdir, queue)}: {e.strerror}") from None
    out = []
    for name in names:
        if queue_id_ok(name):
            out.append(name)
    out.sort()
    return out


def find_message(qdir: str, qid: str, queues: Iterable[str] = DEFAULT_QUEUES) -> tuple[str, str] | None:
    """(queue, path) of the first queue in `queues` holding `qid`, or None."""
    for queue in queues:
        path = queue_path(qdir, queue, qid)
        if os.path.isfile(path):
            return queue, path
    return None


# ---------------------------------------------------------------------------
# Per-recipient delay reasons (defer logs)

def read_defer_log(qdir: str, qid: str) -> list[tuple[str, str, bool]] | None:
    """[(recipient, reason, quoted)] from `defer/ID`, or None when there is
    no defer log.  `quoted` says whether the address is already in
    external (quoted) form.

    The queue manager writes postier.queue.file DsnRecords (msgpack); a
    recipient tried more than once keeps only its latest record, in the
    order of the latest records.  A Postfix-format text log (blocks of
    `name=value` lines, `recipient=` and `reason=`, with or without the
    legacy `<recipient>: reason` line) is read too."""
    from postier.queue.file import read_dsn_log
    path = os.path.join(qdir, "defer", qid)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data:
        return []
    records = read_dsn_log(path)
    if records:
        latest: dict[str, tuple[str, str, bool]] = {}
        for r in records:
            latest.pop(r.address, None)
            latest[r.address] = (r.address, r.reason, False)
        return list(latest.values())
    return [(a, why, True) for a, why in parse_defer_log(data.decode("utf-8", "surrogateescape"))]


def parse_defer_log(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    attrs: dict[str, str] = {}
    legacy: tuple[str, str] | None = None

    def flush() -> None:
        nonlocal attrs, legacy
        if "recipient" in attrs:
            out.append((attrs["recipient"], attrs.get("reason", "")))
        elif legacy is not None:
            out.append(legacy)
        attrs = {}
        legacy = None

    for line in text.split("\n"):
        if not line.strip():
            flush()
            continue
        if line.startswith("<") and ">: " in line and not attrs:
            addr, _, reason = line[1:].partition(">: ")
            legacy = (addr, reason)
            continue
        name, eq, value = line.partition("=")
        if eq:
            attrs.setdefault(name, value)
    flush()
    return out


# ---------------------------------------------------------------------------
# Reading messages for listings

def printable(text: str, utf8: bool = True, replacement: str = "?") -> str:
    """Postfix printable(): control characters (and, without SMTPUTF8,
    non-ASCII characters) become `replacement`; undecodable bytes too."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF or (o > 0x7F and not utf8):
            out.append(replacement)
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class ListSettings:
    """The main.cf values a listing needs."""

    empty_address: str = "MAILER-DAEMON"     # empty_address_recipient
    dup_filter_limit: int = 1000             # duplicate_filter_limit
    utf8: bool = True                        # smtputf8_enable

    @classmethod
    def from_config(cls, cfg) -> ListSettings:
        return cls(empty_address=cfg.get("empty_address_recipient") or "MAILER-DAEMON",
                   dup_filter_limit=cfg.get_int("duplicate_filter_limit"),
                   utf8=cfg.get_bool("smtputf8_enable"))


@dataclass
class QueueMessage:
    """One message as the listing shows it."""

    queue: str
    queue_id: str
    arrival: int                    # seconds since the epoch
    size: int                       # message content size in bytes
    sender: str                     # printable external form, empty -> MAILER-DAEMON
    recipients: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)
    forced_expire: bool = False
    envelope: Envelope | None = None


def external(address: str, settings: ListSettings) -> str:
    return printable(quote_822_local(address or settings.empty_address), settings.utf8)


def describe(qdir: str, queue: str, qid: str, env: Envelope, settings: ListSettings,
             mtime: float = 0.0) -> QueueMessage:
    """The listing view of one message: showq's rules.  Recipients from the
    defer log come first, each with its reason; then the not-yet-finished
    recipients of the queue file that the defer log did not name."""
    arrival = int(env.arrival) if env.arrival > 0 else int(mtime)
    msg = QueueMessage(queue=queue, queue_id=qid, arrival=arrival, size=env.content_size,
                       sender=external(env.sender, settings),
                       forced_expire=env.attrs.get("forced_expire", "") in ("1", "yes", "true"),
                       envelope=env)
    seen: set[str] | None = None
    deferred = read_defer_log(qdir, qid)
    if deferred is not None:
        seen = set()
        limit = settings.dup_filter_limit
        pending = {r.address for r in env.recipients if not r.done}
        finished = {r.address for r in env.recipients if r.done} - pending
        for raw, reason, quoted in deferred:
            if not quoted and raw in finished:
                continue            # delivered or bounced on a later attempt
            addr = printable(raw, settings.utf8) if quoted else external(raw, settings)
            if limit == 0 or len(seen) < limit:
                seen.add(addr)
            msg.recipients.append((addr, reason))
    for rcpt in env.recipients:
        if rcpt.done:
            continue
        addr = external(rcpt.address, settings)
        if seen is None or addr not in seen:
            msg.recipients.append((addr, ""))
    return msg


def _strip_path(message: str, path: str) -> str:
    prefix = path + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


def list_messages(qdir: str, queues: Iterable[str] = LIST_QUEUES,
                  settings: ListSettings | None = None,
                  warn: Callable[[str], None] | None = None) -> Iterator[QueueMessage]:
    """Every readable message in `queues`, in order.  A file that vanishes
    while we look (the queue manager moved it) is skipped silently; a
    damaged one is reported through `warn` and skipped."""
    settings = settings or ListSettings()
    for queue in queues:
        for qid in queue_ids(qdir, queue):
            path = queue_path(qdir, queue, qid)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            try:
                env, _ = read_envelope(path)
            except CorruptQueueFile as e:
                if not os.path.exists(path):
                    continue            # moved or removed meanwhile
                if warn:
                    warn(f"{queue}/{qid}: {_strip_path(str(e), path)} -- skipping this file")
                continue
            yield describe(qdir, queue, qid, env, settings, st.st_mtime)


# ---------------------------------------------------------------------------
# postqueue -p / -j output

L_HEADINGS = ("----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
_RCPT_INDENT = " " * 47     # "%-17s %8s %-19s %s" with three empty fields


def _asctime19(t: int) -> str:
    return time.asctime(time.localtime(t))[:19]


def _blen(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - _blen(text))


def format_message(msg: QueueMessage) -> str:
    """One message in postqueue -p layout (the long-queue-ID layout: postier
    queue IDs have 16 characters)."""
    status = msg.queue_id
    if msg.queue == "active":
        status += "*"
    elif msg.queue == "hold":
        status += "!"
    if msg.forced_expire:
        status += "#"
    lines = [f"{_ljust(status, 17)} {msg.size:>8} {_asctime19(msg.arrival):>19.19} {msg.sender}"]
    saved = ""
    for addr, why in msg.recipients:
        if why != saved:
            saved = why
            show = why or "reason unavailable"
            lines.append(" " * max(0, 76 - _blen(show)) + f"({show})")
        lines.append(_RCPT_INDENT + addr)
    return "\n".join(lines) + "\n"


def format_mailq(messages: Iterable[QueueMessage], write: Callable[[str], object]) -> int:
    """Write the whole postqueue -p listing; returns the message count."""
    count = 0
    total = 0
    for msg in messages:
        if count == 0:
            write(f"{L_HEADINGS[0]:<17} {L_HEADINGS[1]:>8} {L_HEADINGS[2]:<19} {L_HEADINGS[3]}\n")
        else:
            write("\n")
        write(format_message(msg))
        total += msg.size
        count += 1
    if count == 0:
        write("Mail queue is empty\n")
    else:
        write(f"\n-- {total // 1024} Kbytes in {count} Request{'' if count == 1 else 's'}.\n")
    return count


_JSON_SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_quote(text: str, utf8: bool = True) -> str:
    """showq_json.c json_quote(): short escapes for common controls, \\u00XX
    for the others, backslash and quote escaped, then printable()."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append(_JSON_SHORT.get(ch) or f"\\u{o:04X}")
        elif ch in '\\"':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return printable("".join(out), utf8)


def format_json(msg: QueueMessage, utf8: bool = True) -> str:
    """One postqueue -j line."""
    rcpts = []
    for addr, why in msg.recipients:
        item = f'{{"address": "{json_quote(addr, utf8)}"'
        if why:
            item += f', "delay_reason": "{json_quote(why, utf8)}"'
        rcpts.append(item + "}")
    return (f'{{"queue_name": "{json_quote(msg.queue, utf8)}", '
            f'"queue_id": "{json_quote(msg.queue_id, utf8)}", '
            f'"arrival_time": {msg.arrival}, "message_size": {msg.size}, '
            f'"forced_expire": {"true" if msg.forced_expire else "false"}, '
            f'"sender": "{json_quote(msg.sender, utf8)}", '
            f'"recipients": [{", ".join(rcpts)}]}}\n')


# ---------------------------------------------------------------------------
# postsuper operations

def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: The queue manager's control interface (postier.qmgr.control):
#: `qmgr_running(qdir) -> bool` and `qmgr_request(qdir, op, qid) -> str|None`
#: (op in "delete", "hold", "requeue"; returns the queue the file went to,
#: "" when deleted, None when the message is not in active any more).
QmgrHook = tuple[Callable[[str], bool], Callable[[str, str, str], "str | None"]]


def default_qmgr_hook() -> QmgrHook | None:
    """The running queue manager's request interface, or None when
    postier.qmgr does not offer one."""
    try:
        from postier.qmgr import control  # type: ignore[attr-defined]
    except ImportError:
        return None
    running = getattr(control, "qmgr_running", None)
    request = getattr(control, "qmgr_request", None)
    if callable(running) and callable(request):
        return running, request
    return None


def qmgr_trigger_incoming(qdir: str) -> bool:
    """Tell a running queue manager to scan incoming now (`trigger I`);
    False when none runs or postier.qmgr has no trigger."""
    try:
        from postier.qmgr import control  # type: ignore[attr-defined]
    except ImportError:
        return False
    trigger = getattr(control, "qmgr_trigger", None)
    if not callable(trigger):
        return False
    try:
        return bool(trigger(qdir, "I"))
    except (PostierError, OSError):
        return False


class _Conflict(Exception):
    """The target queue already has a file with this name."""


class QueueAdmin:
    """postsuper's per-message and mass operations on one queue directory.

    Each operation returns True when it acted on a message (postsuper
    counts those), and reports `ID: removed` / `placed on hold` / ... via
    `info`.  Invalid queue IDs give `warning: invalid mail queue id: X`."""

    def __init__(self, qdir: str, *, info: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None,
                 qmgr: QmgrHook | None | bool = True) -> None:
        self.qdir = qdir
        self.info = info or (lambda text: None)
        self.warn = warn or (lambda text: None)
        self.qmgr = default_qmgr_hook() if qmgr is True else (qmgr or None)
        self._qmgr_up: bool | None = None
        self._touched: set[str] = set()
        self._wake_incoming = False

    # -- helpers ------------------------------------------------------------

    def _qmgr_owns_active(self) -> bool:
        """Is a queue manager running (asked once per QueueAdmin)?"""
        if self._qmgr_up is None:
            up = False
            if self.qmgr is not None:
                try:
                    up = bool(self.qmgr[0](self.qdir))
                except (OSError, PostierError):
                    up = False
            self._qmgr_up = up
        return self._qmgr_up

    def _via_qmgr(self, op: str, qid: str) -> str | None | bool:
        """The queue manager's answer (see QmgrHook), or False when it
        stopped meanwhile (the caller then moves the file itself)."""
        assert self.qmgr is not None
        try:
            return self.qmgr[1](self.qdir, op, qid)
        except (PostierError, OSError) as e:
            try:
                still_up = bool(self.qmgr[0](self.qdir))
            except (OSError, PostierError):
                still_up = False
            if not still_up:
                self._qmgr_up = False
                return False
            text = e.strerror if isinstance(e, OSError) else str(e)
            raise QueueError(f"{qid}: queue manager request failed: {text}") from None

    def _remove_logs(self, qid: str) -> None:
        for log_queue in LOG_QUEUES:
            path = queue_path(self.qdir, log_queue, qid)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise QueueError(f"remove file {path}: {e.strerror}") from None

    def _rename(self, queue: str, qid: str, target: str, *, touch: bool = False) -> bool:
        src = queue_path(self.qdir, queue, qid)
        dst_dir = os.path.join(self.qdir, target)
        dst = os.path.join(dst_dir, qid)
        if queue == target:         # requeue of a message that is already there
            if touch:
                now = time.time()
                try:
                    os.utime(src, (now, now))
                except FileNotFoundError:
                    return False
                except OSError as e:
                    self.warn(f"{src}: reset time stamps: {e.strerror}")
            if not os.path.isfile(src):
                return False
            self._wake_incoming = self._wake_incoming or target == "incoming"
            return True
        if os.path.lexists(dst):
            self.warn(f"{qid}: a message with this ID is already in the {target} queue; "
                      f"left in {queue}")
            raise _Conflict
        try:
            os.makedirs(dst_dir, exist_ok=True)
            os.rename(src, dst)
        except FileNotFoundError:
            return False            # lost a race with the queue manager
        except OSError as e:
            raise QueueError(f"rename file {src} as {dst}: {e.strerror}") from None
        if touch:
            now = time.time()
            try:
                os.utime(dst, (now, now))
            except OSError as e:
                self.warn(f"{dst}: reset time stamps: {e.strerror}")
        self._touched.add(dst_dir)
        if target == "incoming":
            self._wake_incoming = True
        return True

    def _unlink(self, queue: str, qid: str) -> bool:
        path = queue_path(self.qdir, queue, qid)
        if not os.path.isfile(path):
            return False
        self._remove_logs(qid)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise QueueError(f"remove file {path}: {e.strerror}") from None
        self._touched.add(os.path.dirname(path))
        return True

    def sync(self) -> None:
        """fsync every directory changed so far; when mail was moved into
        incoming, tell a running queue manager to scan it now."""
        for d in sorted(self._touched):
            _fsync_dir(d)
        self._touched.clear()
        if self._wake_incoming:
            self._wake_incoming = False
            if self.qmgr is not None and self._qmgr_owns_active():
                qmgr_trigger_incoming(self.qdir)

    def _operate(self, op: str, qid: str, queues: Iterable[str], target: str | None,
                 skip: tuple[str, ...], touch: bool = False) -> bool:
        try:
            return self._operate1(op, qid, queues, target, skip, touch)
        except _Conflict:
            return False

    def _operate1(self, op: str, qid: str, queues: Iterable[str], target: str | None,
                  skip: tuple[str, ...], touch: bool) -> bool:
        queues = [q for q in queues if q not in skip]
        for _ in range(2):            # postsuper tries twice: a file may move meanwhile
            for queue in queues:
                path = queue_path(self.qdir, queue, qid)
                if not os.path.isfile(path):
                    continue
                if queue == "active" and self._qmgr_owns_active():
                    where = self._via_qmgr(op, qid)
                    if where is None:
                        continue
                    if where is not False:
                        return True
                if target is None:
                    if self._unlink(queue, qid):
                        return True
                elif self._rename(queue, qid, target, touch=touch):
                    return True
        return False

    # -- one message ----------------------------------------------------------

    def _check_id(self, qid: str) -> bool:
        if not queue_id_ok(qid):
            self.warn(f"invalid mail queue id: {qid}")
            return False
        return True

    def delete(self, qid: str, queues: Iterable[str] = DEFAULT_QUEUES) -> bool:
        if not self._check_id(qid):
            return False
        if self._operate("delete", qid, queues, None, ()):
            self.info(f"{qid}: removed")
            return True
        return False

    def hold(self, qid: str, queues: Iterable[str] = HOLD_QUEUES) -> bool:
        if not self._check_id(qid):
            return False
        if self._operate("hold", qid, queues, "hold", ("maildrop", "hold")):
            self.info(f"{qid}: placed on hold")
            return True
        return False

    def release(self, qid: str, queues: Iterable[str] = RELEASE_QUEUES) -> bool:
        if not self._check_id(qid):
            return False
        if "hold" not in queues:
            return False
        if self._operate("release", qid, ["hold"], "deferred", (), touch=True):
            self.info(f"{qid}: released from hold")
            return True
        return False

    def requeue(self, qid: str, queues: Iterable[str] = DEFAULT_QUEUES) -> bool:
        if not self._check_id(qid):
            return False
        if self._operate("requeue", qid, queues, REQUEUE_TARGET, ("maildrop",), touch=True):
            self.info(f"{qid}: requeued")
            return True
        return False

    # -- ALL ------------------------------------------------------------------

    def _all(self, op: str, queues: Iterable[str], target: str | None,
             skip: tuple[str, ...], touch: bool = False) -> int:
        count = 0
        for queue in queues:
            if queue in skip:
                continue
            for qid in queue_ids(self.qdir, queue):
                path = queue_path(self.qdir, queue, qid)
                if not os.path.isfile(path):
                    continue
                if queue == "active" and self._qmgr_owns_active():
                    where = self._via_qmgr(op, qid)
                    if where is not False:
                        count += where is not None
                        continue
                if target is None:
                    if self._unlink(queue, qid):
                        count += 1
                    continue
                try:
                    if self._rename(queue, qid, target, touch=touch):
                        count += 1
                except _Conflict:
                    pass
        return count

    def delete_all(self, queues: Iterable[str] = DEFAULT_QUEUES) -> int:
        return self._all("delete", queues, None, ())

    def hold_all(self, queues: Iterable[str] = HOLD_QUEUES) -> int:
        return self._all("hold", queues, "hold", ("maildrop", "hold"))

    def release_all(self, queues: Iterable[str] = RELEASE_QUEUES) -> int:
        return self._all("release", [q for q in queues if q == "hold"], "deferred", (),
                         touch=True)

    def requeue_all(self, queues: Iterable[str] = DEFAULT_QUEUES) -> int:
        return self._all("requeue", queues, REQUEUE_TARGET, ("maildrop",), touch=True)


def qmgr_flush(qdir: str) -> bool:
    """Ask the running queue manager to retry deferred mail now (postqueue
    -f).  False when no queue manager is running; QueueError when
    postier.qmgr offers no way to ask."""
    try:
        from postier.qmgr import control  # type: ignore[attr-defined]
    except ImportError:
        control = None
    flush = getattr(control, "qmgr_flush", None)
    if not callable(flush):
        raise QueueError("cannot flush the mail queue: this postier has no queue manager "
                         "trigger yet (postier.qmgr)")
    return bool(flush(qdir))
