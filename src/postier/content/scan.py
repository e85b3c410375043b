"""The content scan at end of DATA: antivirus, banned files, spam, bad headers -> a Verdict.

    verdict = await scan(message, envelope, cfg)
    # message: bytes, a file path, or a MessageSource (postier.content.antivirus:
    #          FileSource(path, offset, size) for a queue file's content)
    # envelope: postier.queue.file.Envelope (queue_id, sender, recipients, ...)
    # cfg: postier.config.Config (or a ScanSettings made from one)
    verdict.action        # pass | reject | discard | defer
    verdict.reply         # the SMTP reply for reject/discard/defer
    verdict.headers       # header lines to add when it passes

amavisd-new's job inside postier, before the 250 to DATA.  What runs, at
the same time (the clamd scan on the event loop, the spam scan in the spam
batcher's one thread, the rest of the CPU work in the loop's executor):

* antivirus: clamd INSTREAM through the `av_scanners` list with failover
  (postier.content.antivirus);
* banned names and types, also inside archives (postier.content.banned);
* spam: the SpamAssassin-compatible engine (postier.content.spam), when
  `spam_checks = yes`; one thread per process runs every session's scan
  (a waiting session holds no thread), and the scans that wait for each
  other run together, up to `spam_scan_batch_limit`, phase by phase
  (SpamBatcher: less CPU per message under load, an ordinary scan when
  alone);
* bad header section (amavisd's checks): non-encoded 8-bit characters
  (unless SMTPUTF8), control characters, lines longer than 998 characters,
  continuation lines made of whitespace only, duplicate single-occurrence
  fields (RFC 5322 section 3.6), missing From: or Date:.

Then postier.content.verdict turns the findings into the verdict, and the
message is quarantined when it is blocked and `quarantine_directory` is set.
One summary line is logged per message, in amavisd's words:
`QUEUEID: Blocked INFECTED (Eicar-Signature) {Rejected}, [10.0.0.1] <s@x> -> <r@y>, size: 1234, 12 ms`.

Nothing is enabled by default: without `av_scanners`,
`banned_filename_rules`, `spam_checks = yes` or a `final_bad_header_destiny`
other than pass, `content_scanner(cfg)` is None and smtpd does no content
scan at all (Postfix's behaviour).

smtpd integration (`ContentScanner.end_of_data`, called once by
postier.smtpd.server after the end-of-data restrictions and cleanup's error
check, before the queue file is committed): the verdict's reply is
returned to smtpd (5xx/4xx: reject, nothing queued; 2xx: discarded, nothing
queued), or None when the message passes.  Headers are added by rewriting
the still uncommitted queue file's head (`edit_queue_file`): the added
lines come first, above smtpd's Received: header -- where Postfix puts
headers PREPENDed by smtpd access maps, and where amavisd's appear after
reinjection -- X-Spam-* headers that came with the message are removed, the
Subject gets `spam_subject_tag`; the body is copied in the kernel
(copy_file_range).  `postier queue cat` then shows them as part of the
message, as postcat shows PREPENDed headers.  Recipients blocked while
others receive the message are dropped from the envelope.

Parameters read: av_scanners, av_scanner_timeout, av_failure_action,
banned_filename_rules, banned_archive_max_depth, banned_archive_max_ratio,
banned_archive_max_size, spam_checks, final_virus_destiny,
final_banned_destiny, final_spam_destiny, final_bad_header_destiny,
spam_scan_batch_limit, spam_tag_level, spam_tag2_level, spam_kill_level, spam_subject_tag,
quarantine_directory, content_bypass_maps, content_whitelist_maps,
header_size_limit, mydomain, recipient_delimiter (and through the spam
engine, its own parameters).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import weakref
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from postier import log
from postier.content.antivirus import Antivirus, FileSource, as_source, parse_scanners
from postier.content.banned import BannedRules, check_message
from postier.content.verdict import (
    CATEGORIES,
    ContentPolicy,
    Findings,
    RecipientPolicy,
    SpamResult,
    Verdict,
    decide,
    quarantine,
)
from postier.errors import ConfigError, PostierError, Reply

MAX_LINE = 998
#: RFC 5322 3.6: fields that may occur at most once.
SINGLE_FIELDS = ("date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id",
                 "in-reply-to", "references", "subject")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_CTRL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CTRL_8BIT = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]")


# --------------------------------------------------------------------------- settings

@dataclass
class ScanSettings:
    av: Antivirus | None
    banned: BannedRules | None
    spam: bool
    bad_header: bool
    policy: ContentPolicy
    header_size_limit: int = 102400
    cfg: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.av or self.banned or self.spam or self.bad_header)

    @classmethod
    def from_config(cls, cfg: Any) -> ScanSettings:
        """ConfigError (with main.cf file and line when known) for bad values."""
        with _where(cfg, "av_scanners"):
            scanners = parse_scanners(cfg.get_list("av_scanners"))
        av = Antivirus(scanners, float(cfg.get_time("av_scanner_timeout"))) if scanners else None
        with _where(cfg, "banned_filename_rules"):
            rules = BannedRules.from_config(
                cfg.get_list("banned_filename_rules"),
                max_depth=cfg.get_int("banned_archive_max_depth"),
                max_ratio=cfg.get_int("banned_archive_max_ratio"),
                max_size=cfg.get_size("banned_archive_max_size"))
        policy = ContentPolicy.from_config(cfg)
        spam = cfg.get_bool("spam_checks")
        if spam:
            # built now (before smtpd forks its workers, which then share it),
            # not on the first message
            try:
                _spam_engine(cfg)
            except PostierError:
                raise
            except Exception as e:  # noqa: BLE001 - report it as a configuration problem
                raise ConfigError(f"spam_checks: cannot start the spam engine: "
                                  f"{type(e).__name__}: {e}") from None
        return cls(av=av, banned=rules if rules.enabled else None,
                   spam=spam,
                   bad_header=policy.destinies["bad_header"] != "pass" or bool(
                       scanners or rules.enabled or cfg.get_bool("spam_checks")),
                   policy=policy, header_size_limit=cfg.get_int("header_size_limit"), cfg=cfg)


class _where:
    """Give a ConfigError raised inside the file and line of parameter `name`."""

    def __init__(self, cfg: Any, name: str):
        self.cfg = cfg
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, ConfigError) and not exc.path:
            src = None
            try:
                src = self.cfg.source(self.name)
            except Exception:  # noqa: BLE001 - best effort: keep the message as it is
                src = None
            if src:
                raise ConfigError(exc.message, src[0], src[1]) from None
        return False


_SETTINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def settings_for(cfg: Any) -> ScanSettings:
    if isinstance(cfg, ScanSettings):
        return cfg
    st = _SETTINGS.get(cfg)
    if st is None:
        st = _SETTINGS[cfg] = ScanSettings.from_config(cfg)
    return st


def content_scanner(cfg: Any) -> ContentScanner | None:
    """The smtpd hook for this configuration, or None when no content check
    is enabled.  ConfigError for bad parameter values."""
    st = ScanSettings.from_config(cfg)
    return ContentScanner(st) if st.enabled else None


# --------------------------------------------------------------------------- spam engine

_SPAM_LOCK = threading.Lock()
_SPAM: dict[int, Any] = {}


def _spam_engine(cfg: Any) -> Any:
    """The spam engine for `cfg` (built once, in the calling thread)."""
    with _SPAM_LOCK:
        eng = _SPAM.get(id(cfg))
        if eng is None:
            # imported here: only spam_checks = yes pays for the rule engine
            from postier.content.spam.scanner import SpamScanner
            eng = _SPAM[id(cfg)] = SpamScanner(cfg)
        return eng


class SpamBatcher:
    """The spam scans of this process, run by one scan thread of its own, a
    batch at a time (one set of the engine's scratch space, one thread stack,
    however many sessions scan at once): `submit` queues a message and
    returns a concurrent.futures.Future at once, so a waiting scan holds no
    thread of its caller's.  The scan thread runs a message that finds it
    idle as an ordinary scan(); the messages queued meanwhile are the next
    batch, up to `limit` (SpamScanner.scan_many: phase by phase, less CPU per
    message).  Batching costs nothing when the host is quiet and saves CPU
    when scans pile up.  Each message's future gets its own verdict, or its
    own exception.  A forked child starts its own scan thread when it first
    scans."""

    def __init__(self, engine: Any, limit: int = 8):
        self.engine = engine
        self.limit = max(1, limit)
        self.batches: Counter = Counter()       # batch size -> how many ran
        self._reset()
        _ALL_BATCHERS.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[tuple[bytes, Future]] = deque()
        self._thread: threading.Thread | None = None

    def submit(self, data: bytes) -> Future:
        """Queue one message; its future's result is the engine's verdict."""
        fut: Future = Future()
        with self._cond:
            self._queue.append((data, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="spam-scan",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return fut

    def scan(self, data: bytes) -> Any:
        """submit(data) and wait: the verdict, or the scan's exception raised."""
        return self.submit(data).result()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch = [self._queue.popleft() for _ in range(min(self.limit, len(self._queue)))]
                # a future its caller cancelled (a session that went away) is not scanned
                batch = [(d, f) for d, f in batch if f.set_running_or_notify_cancel()]
                if not batch:
                    continue
            try:
                results = self._run([d for d, _f in batch])
            except BaseException as e:  # noqa: BLE001 - never leave a caller waiting
                results = [RuntimeError(f"spam scan interrupted: {type(e).__name__}")] * len(batch)
            with self._cond:
                self.batches[len(batch)] += 1
            for (_d, fut), v in zip(batch, results, strict=True):
                if isinstance(v, BaseException):
                    fut.set_exception(v)
                else:
                    fut.set_result(v)

    def _run(self, datas: list[bytes]) -> list:
        if len(datas) == 1:
            try:
                return [self.engine.scan(datas[0])]
            except Exception as e:  # noqa: BLE001 - the caller's to raise
                return [e]
        try:
            return self.engine.scan_many(datas)
        except Exception as e:  # noqa: BLE001 - every caller's to raise
            return [e] * len(datas)


_ALL_BATCHERS: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # the parent's scan thread (and its queue's waiters) did not come along
    for b in list(_ALL_BATCHERS):
        b._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
_BATCHERS: dict[int, SpamBatcher] = {}


def _spam_batcher(eng: Any, cfg: Any) -> SpamBatcher:
    """The batcher of spam engine `eng` (one per engine)."""
    with _SPAM_LOCK:
        b = _BATCHERS.get(id(eng))
        if b is None or b.engine is not eng:
            b = _BATCHERS[id(eng)] = SpamBatcher(eng, cfg.get_int("spam_scan_batch_limit"))
        return b


# --------------------------------------------------------------------------- bad header

def _show(line: bytes) -> str:
    text = line.decode("latin-1")
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text if len(text) <= 60 else text[:57] + "..."


def header_problems(head: bytes, *, smtputf8: bool = False, limit: int = 102400) -> list[str]:
    """amavisd's bad-header reasons for the primary header section at the
    start of `head` (content bytes, LF line ends)."""
    out: list[str] = []
    counts: dict[str, int] = {}
    pos, n = 0, min(len(head), limit)
    current = b""
    while pos < n:
        nl = head.find(b"\n", pos)
        line = head[pos:nl if nl >= 0 else n]
        pos = (nl + 1) if nl >= 0 else n
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if not line.strip():
                out.append(f"Improper folded header field made up entirely of whitespace "
                           f"(char {line[0]:02X} hex): {_show(current)}")
        else:
            m = _FIELD.match(line)
            if m is None:
                break
            current = line
            name = m.group(1).decode("latin-1").lower()
            counts[name] = counts.get(name, 0) + 1
        if len(line) > MAX_LINE:
            out.append(f"Header line longer than {MAX_LINE} characters: {_show(current)}")
        bad = (_CTRL if smtputf8 else _CTRL_8BIT).search(line)
        if bad is not None:
            ch = line[bad.start()]
            if ch >= 0x80:
                out.append(f"Non-encoded 8-bit data (char {ch:02X} hex): {_show(current)}")
            else:
                out.append(f"Improper use of control character (char {ch:02X} hex): "
                           f"{_show(current)}")
    for name in SINGLE_FIELDS:
        if counts.get(name, 0) > 1:
            out.append(f'Duplicate header field: "{_canon(name)}"')
    for name in ("from", "date"):
        if not counts.get(name):
            out.append(f'Missing required header field: "{_canon(name)}"')
    return out


def _canon(name: str) -> str:
    return "Message-ID" if name == "message-id" else "-".join(
        p.capitalize() for p in name.split("-"))


# --------------------------------------------------------------------------- scan

def _recipients(envelope: Any) -> list[str]:
    out: list[str] = []
    for r in getattr(envelope, "recipients", []) or []:
        addr = getattr(r, "address", r)
        if getattr(r, "done", False):
            continue
        if addr not in out:
            out.append(addr)
    return out


async def scan(message: Any, envelope: Any, cfg: Any) -> Verdict:
    """Scan one message (see the module docstring) and return its verdict;
    the message is quarantined here when the verdict blocks it."""
    st = settings_for(cfg)
    t0 = time.monotonic()
    source = as_source(message)
    qid = getattr(envelope, "queue_id", "") or ""
    sender = getattr(envelope, "sender", "") or ""
    rcpts = _recipients(envelope)
    pol = st.policy
    policies = {r: pol.recipient(r) for r in rcpts}

    def wanted(check: str) -> bool:
        return not rcpts or any(check not in (policies.get(r) or RecipientPolicy()).bypass
                                for r in rcpts)

    f = Findings()
    loop = asyncio.get_running_loop()
    av_task = None
    if st.av is not None and wanted("virus"):
        av_task = asyncio.ensure_future(st.av.scan(source))
    need_banned = st.banned is not None and wanted("banned")
    need_spam = st.spam and wanted("spam") and not (rcpts and all(
        (policies.get(r) or RecipientPolicy()).whitelisted(sender) for r in rcpts))
    need_header = st.bad_header and wanted("bad_header")
    smtputf8 = bool(getattr(envelope, "smtputf8", False))

    def cpu_work() -> tuple[list[Any], SpamResult | None, list[str]]:
        if need_banned or need_spam:
            data = source.read(0, source.size)
        else:
            data = source.read(0, min(source.size, st.header_size_limit + 4096))
        # the spam scan runs in the batcher's own thread, meanwhile the rest here
        eng = _spam_engine(st.cfg) if need_spam else None
        spam = _spam_batcher(eng, st.cfg).submit(data) if eng is not None else None
        banned = check_message(data, st.banned) if need_banned else []
        head = header_problems(data, smtputf8=smtputf8,
                               limit=st.header_size_limit) if need_header else []
        return banned, spam, head

    cpu_error: BaseException | None = None
    if need_banned or need_spam or need_header:
        try:
            f.banned, spam, f.bad_header = await loop.run_in_executor(None, cpu_work)
            if spam is not None:
                f.spam = SpamResult.from_engine(await asyncio.wrap_future(spam))
        except Exception as e:  # noqa: BLE001 - a scanner bug must defer, not lose mail
            cpu_error = e
    if av_task is not None:
        r = await av_task
        f.av_status, f.viruses, f.av_failures = r.status, r.viruses, r.failures
        for text in r.failures:
            log.warning(f"{qid or 'NOQUEUE'}: virus scanner failed: {text}")
    if cpu_error is not None:
        log.warning(f"{qid or 'NOQUEUE'}: content scan error: {type(cpu_error).__name__}: "
                    f"{cpu_error}")
        v = Verdict(action="defer", category="unchecked", queue_id=qid, findings=f,
                    reason="content scan FAILED",
                    reply=Reply(451, "4.5.0", f"Error in processing, id={qid}, "
                                              f"content scan FAILED"))
        v.per_recipient = {r: v.reply for r in rcpts}
    else:
        v = decide(f, sender, rcpts, pol, qid, policies)
    if v.blocked and pol.quarantine_directory:
        try:
            v.quarantine = await loop.run_in_executor(
                None, quarantine, pol.quarantine_directory, v, sender, rcpts, source)
        except OSError as e:
            log.warning(f"{qid}: quarantine to {pol.quarantine_directory} failed: {e}")
            if v.action == "discard":
                # never drop a message that was meant to be kept
                v.action, v.reply = "defer", Reply(451, "4.5.0",
                                                   f"Error in processing, id={qid}, "
                                                   f"quarantine FAILED")
    v.elapsed = time.monotonic() - t0
    _log_summary(v, envelope, sender, rcpts, source.size)
    return v


def _log_summary(v: Verdict, envelope: Any, sender: str, rcpts: list[str], size: int) -> None:
    f = v.findings
    label = {"clean": "CLEAN", "virus": f"INFECTED ({', '.join(f.viruses)})",
             "banned": "BANNED (" + v.reason[len("BANNED: "):] + ")" if v.category == "banned"
             else "BANNED", "spam": "SPAM", "bad_header": "BAD-HEADER",
             "unchecked": "UNCHECKED"}.get(v.category, v.category.upper())
    what = {"pass": "Passed", "reject": "Blocked", "discard": "Blocked",
            "defer": "Deferred"}[v.action]
    tags = {"pass": "Relayed", "reject": "Rejected", "discard": "Discarded",
            "defer": "TempFailed"}[v.action]
    tag_list = [tags]
    if v.blocked and v.action == "pass":
        tag_list.append("Dropped " + ",".join(f"<{r}>" for r in v.blocked))
    if v.quarantine:
        tag_list.append("Quarantined")
    client = getattr(envelope, "client_address", "") or ""
    hits = f"Hits: {f.spam.score:.3f}".rstrip("0").rstrip(".") if f.spam else "Hits: -"
    text = (f"{what} {label} {{{', '.join(tag_list)}}}, [{client}] <{sender}> -> "
            + ",".join(f"<{r}>" for r in rcpts)
            + (f", quarantine: {os.path.basename(v.quarantine)}" if v.quarantine else "")
            + f", {hits}, size: {size}, {int(v.elapsed * 1000)} ms")
    log.info(f"{v.queue_id or 'NOQUEUE'}: {text}")


# --------------------------------------------------------------------------- queue file

def edit_head(head: bytes, headers: list[str], remove: tuple[str, ...],
              subject_tag: str) -> tuple[bytes, int]:
    """(new header bytes, end offset in `head` of the part they replace).
    The header section is scanned up to its end or the end of `head`; added
    lines come first."""
    out: list[bytes] = []
    pos = 0
    n = len(head)
    drop = False
    tagged = not subject_tag
    removing = {r.lower() for r in remove}
    while pos < n:
        nl = head.find(b"\n", pos)
        if nl < 0:
            break
        line = head[pos:nl + 1]
        body = line.rstrip(b"\r\n")
        if not body:
            break
        if body[:1] in (b" ", b"\t"):
            if not drop:
                out.append(line)
            pos = nl + 1
            continue
        m = _FIELD.match(body)
        if m is None:
            break
        name = m.group(1).decode("latin-1").lower()
        drop = name in removing
        if not drop:
            if not tagged and name == "subject":
                value = body[m.end():].lstrip(b" \t")
                line = (body[:m.end()] + b" " + subject_tag.strip().encode("utf-8") + b" "
                        + value + line[len(body):])
                tagged = True
            out.append(line)
        pos = nl + 1
    added = [h.encode("utf-8", "surrogateescape") + b"\n" for h in headers]
    if not tagged:
        added.append(b"Subject: " + subject_tag.strip().encode("utf-8") + b"\n")
    return b"".join(added) + b"".join(out), pos


def edit_queue_file(writer: Any, headers: list[str], remove: tuple[str, ...] = (),
                    subject_tag: str = "", limit: int = 102400) -> None:
    """Add/remove headers of an uncommitted queue file (a QueueWriter):
    the head is rewritten into a new temporary file beside it, the rest is
    copied by the kernel, and the new file replaces the old one under the
    writer's name.  Blocking: call it from an executor."""
    from postier.queue.file import MAGIC
    if not headers and not remove and not subject_tag:
        return
    start = len(MAGIC)
    src = os.open(writer.tmp_path, os.O_RDONLY)
    try:
        head = os.pread(src, min(writer.size, limit + 65536), start)
        new_head, used = edit_head(head, headers, remove, subject_tag)
        if new_head == head[:used]:
            return
        tmp = os.path.join(os.path.dirname(writer.tmp_path),
                           f".{writer.queue_id}.hdr.tmp")
        dst = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(dst, MAGIC + new_head)
            left = writer.size - used
            off = start + used
            while left > 0:
                try:
                    k = os.copy_file_range(src, dst, left, off)
                except OSError:
                    k = 0
                if k <= 0:
                    data = os.pread(src, min(left, 1 << 20), off)
                    if not data:
                        raise OSError(f"short read from {writer.tmp_path}")
                    _write_all(dst, data)
                    k = len(data)
                left -= k
                off += k
            os.lseek(dst, 0, os.SEEK_END)
            os.rename(tmp, writer.tmp_path)
        except BaseException:
            os.close(dst)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        old = writer.fd
        writer.fd = dst
        writer.size = len(new_head) + (writer.size - used)
        if old is not None:
            os.close(old)
    finally:
        os.close(src)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


# --------------------------------------------------------------------------- smtpd hook

class ContentScanner:
    """The object smtpd calls at end of DATA (SmtpdSettings.content)."""

    def __init__(self, settings: ScanSettings):
        self.settings = settings

    async def scan_writer(self, session: Any, writer: Any) -> tuple[Any, Verdict]:
        """Scan the uncommitted queue file of `session`; apply a passing
        verdict's header edits and recipient drops.  (envelope, verdict)."""
        from postier.queue.file import MAGIC
        env = session._envelope()
        env.queue_id = env.queue_id or writer.queue_id
        xf = getattr(session.st, "xforward", None) or {}
        if xf.get("ADDR"):                  # behind a content_filter: the original client
            env.client_address = xf["ADDR"]
        source = FileSource(writer.tmp_path, len(MAGIC), writer.size)
        try:
            v = await scan(source, env, self.settings)
        finally:
            source.close()
        if v.action == "pass":
            if v.headers or v.remove_headers or v.subject_tag:
                await asyncio.get_running_loop().run_in_executor(
                    None, edit_queue_file, writer, v.headers, v.remove_headers,
                    v.subject_tag, self.settings.header_size_limit)
            if v.blocked:
                _drop_recipients(session, env, set(v.blocked))
        return env, v

    async def end_of_data(self, session: Any, writer: Any) -> Reply | None:
        """smtpd's hook: None to commit the message, else the reply
        (4xx/5xx: refused; 2xx: discarded, nothing is queued)."""
        try:
            env, v = await self.scan_writer(session, writer)
        except Exception as e:  # noqa: BLE001 - a bug here must defer, never lose mail
            qid = getattr(writer, "queue_id", "")
            log.warning(f"{qid}: content scan error: {type(e).__name__}: {e}")
            return Reply(451, "4.5.0", f"Error in processing, id={qid}, content scan FAILED")
        if v.action == "pass":
            return None
        _log_reply(session, env, v)
        return v.reply


def _drop_recipients(session: Any, env: Any, blocked: set[str]) -> None:
    env.recipients = [r for r in env.recipients if r.address not in blocked]
    c = getattr(session, "cleanup", None)
    if c is not None and getattr(c, "recipients", None) is not None:
        c.recipients = [r for r in c.recipients if r.address not in blocked]
    meta = getattr(session, "rcpt_meta", None)
    if meta:
        session.rcpt_meta = [m for m in meta if m[0] not in blocked]


def _log_reply(session: Any, env: Any, v: Verdict) -> None:
    st = session.st
    what = "discard" if v.action == "discard" else "reject"
    to = f" to=<{env.recipients[0].address}>" if env.recipients else ""
    log.info(f"{v.queue_id}: {what}: END-OF-MESSAGE from {st.client.namaddr}: "
             f"{v.reply.line() if v.reply else ''}; from=<{env.sender}>{to} "
             f"proto={st.protocol} helo=<{st.helo_name or ''}>")


__all__ = ["CATEGORIES", "ContentScanner", "ScanSettings", "Verdict", "content_scanner",
           "edit_queue_file", "header_problems", "scan", "settings_for", "ConfigError"]
