"""Postfix-shaped mail logging: the log format is an API.

Every line has Postfix's shape, with `postier` where Postfix says `postfix`:

    Nov 28 05:16:07 host postier/smtpd[1234]: 3F1A2B: client=...

Command-line tools also write `NAME: warning: text` to stderr exactly as
Postfix's tools do (`postmap: warning: ...`), so scripts that read them work.

A line logged for another Postfix program whose work this process does
carries that program's tag: `info(text, service="cleanup")` or
`ServiceLog("cleanup").info(text)` in the smtpd process writes
`postier/cleanup[PID]: ...`, as Postfix's cleanup(8) does (pflogsumm
counts header/body check rejects by that tag); the queue process logs as
qmgr, smtp, local, bounce and pickup the same way.

A server that logs a line per request can call `LOG.batch_in_loop()`: while
an asyncio event loop runs in this thread, lines are collected and written
once per loop iteration (one write(2) for all of them, in order); fatal
lines, lines emitted with no running loop, setup(), `batch_in_loop(False)`
and process exit write what is pending first.

`last_resort(text)` writes one such line straight to standard error, for a
failure of the mail log itself (the smtpd session that hit it still ends
with a reply; see postier.smtpd.server).

Parameters read: maillog_file (write lines to this file instead of syslog),
syslog_facility, syslog_name (default "postier", the part before the slash).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import time

_FACILITIES = ("mail", "daemon", "user", "local0", "local1", "local2", "local3",
               "local4", "local5", "local6", "local7")


class MailLog:
    """One process's log: a service name, and where lines go."""

    def __init__(self) -> None:
        self.syslog_name = "postier"
        self.service = "postier"
        self.progname = "postier"
        self.stderr = False
        self.maillog_file: str | None = None
        self.use_syslog = False
        self._host = os.uname().nodename.split(".")[0]
        self._fd: int | None = None
        self._batch = False
        self._pending: list[tuple[str, str, str | None]] = []
        self._facility = "mail"
        self._ident: str | None = None     # the syslog ident last opened
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._stamp_at = -1
        self._stamp = ""

    # the maillog file opened before a privilege drop (preopen): (path, fd)
    _preopened: tuple[str, int] | None = None

    def preopen(self) -> None:
        """Open the maillog file now, as root: after a privilege drop a
        root-owned log file (Postfix's is root:root 0600, opened by postlogd
        before it drops privileges) cannot be opened for writing any more.
        A later open of the same file in this process (after setup() again)
        duplicates this descriptor instead."""
        path = self.maillog_file
        if not path:
            return
        try:
            fd = _open_append(path)
        except OSError:
            return
        MailLog._preopened = (path, fd)
        if self._fd is None:
            self._fd = os.dup(fd)

    def setup(self, service: str, *, progname: str | None = None, stderr: bool = False,
              maillog_file: str | None = None, use_syslog: bool = False,
              syslog_name: str = "postier", facility: str = "mail") -> None:
        """Configure this process's log.  `service` is the part after the slash
        (smtpd, qmgr, postmap ...); `progname` is the stderr prefix."""
        self.flush()
        self.service = service
        self.progname = progname or service
        self.stderr = stderr
        self.syslog_name = syslog_name
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.maillog_file = maillog_file or None
        self.use_syslog = use_syslog and not self.maillog_file
        self._facility = facility if facility in _FACILITIES else "mail"
        self._ident = None
        if self.use_syslog:
            self._open_syslog(self.tag)

    def _open_syslog(self, ident: str) -> None:
        import syslog
        syslog.openlog(ident, syslog.LOG_PID, getattr(syslog, "LOG_" + self._facility.upper()))
        self._ident = ident

    @property
    def tag(self) -> str:
        return f"{self.syslog_name}/{self.service}"

    def tag_of(self, service: str | None) -> str:
        """The tag of a line logged for `service` (None: this process's)."""
        return self.tag if service is None else f"{self.syslog_name}/{service}"

    def format_line(self, text: str, when: float | None = None,
                    service: str | None = None) -> str:
        """The maillog line for `text`, as postlogd writes it (tagged with
        `service` instead of this process's when given)."""
        if when:
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
        else:
            now = int(time.time())
            if now != self._stamp_at:       # one strftime per second
                self._stamp = time.strftime("%b %d %H:%M:%S", time.localtime(now))
                self._stamp_at = now
            stamp = self._stamp
        return f"{stamp} {self._host} {self.tag_of(service)}[{os.getpid()}]: {text}"

    def batch_in_loop(self, on: bool = True) -> None:
        """Write lines once per event-loop iteration (see the module doc); off:
        write what is pending now, then each line as it comes."""
        if on and not self._batch:
            atexit.register(self.flush)
        elif not on:
            self.flush()
        self._batch = on

    def flush(self) -> None:
        """Write the lines collected by batch_in_loop() (in order)."""
        self._flush_loop = None
        if self._pending:
            pending, self._pending = self._pending, []
            self._write(pending)

    def _flush_soon(self) -> None:
        """flush() from the event loop: a write that fails there has no
        caller to tell, and the loop's exception handler would log through
        this same batch (a new failing flush each iteration), so the lines
        and the error go to standard error instead (last_resort)."""
        pending = self._pending
        try:
            self.flush()
        except Exception as e:  # noqa: BLE001 - nowhere else to report to
            for _sev, body, svc in pending:
                last_resort(body, "", self.tag_of(svc))
            last_resort(f"mail log write failed: {type(e).__name__}: {e}", "error", self.tag)

    def emit(self, severity: str, text: str, service: str | None = None) -> None:
        body = f"{severity}: {text}" if severity else text
        line = (severity, body, service)
        if self._batch and severity != "fatal":
            loop = self._flush_loop
            if loop is not None and loop.is_running():     # a flush is due on this loop
                self._pending.append(line)
                return
            loop = asyncio._get_running_loop()
            if loop is not None:
                self._pending.append(line)
                if self._flush_loop is not loop:
                    self._flush_loop = loop
                    loop.call_soon(self._flush_soon)
                return
        if self._pending:
            self.flush()
        self._write((line,))

    def _write(self, lines: list[tuple[str, str, str | None]]
               | tuple[tuple[str, str, str | None], ...]) -> None:
        """(severity, body, service) lines to their destinations, one write
        per destination."""
        if self.stderr:
            sys.stderr.write("".join(f"{self.progname}: {body}\n" for _sev, body, _svc in lines))
            sys.stderr.flush()
        if self.maillog_file:
            # one O_APPEND write of whole lines: lines from several processes never interleave
            data = "".join([self.format_line(body, service=svc) + "\n"
                            for _sev, body, svc in lines]).encode(
                "utf-8", "surrogateescape")
            if self._fd is None:
                pre = MailLog._preopened
                self._fd = (os.dup(pre[1]) if pre is not None and pre[0] == self.maillog_file
                            else _open_append(self.maillog_file))
            while data:
                data = data[os.write(self._fd, data):]
        elif self.use_syslog:
            import syslog
            for severity, body, svc in lines:
                ident = self.tag_of(svc)
                if ident != self._ident:
                    self._open_syslog(ident)
                prio = {"": syslog.LOG_INFO, "warning": syslog.LOG_WARNING,
                        "error": syslog.LOG_ERR, "fatal": syslog.LOG_CRIT,
                        "panic": syslog.LOG_ALERT}.get(severity, syslog.LOG_INFO)
                syslog.syslog(prio, body)


LOG = MailLog()


def setup(service: str, **kw) -> None:
    LOG.setup(service, **kw)


def _open_append(path: str) -> int:
    """The maillog file opened for appending whole lines (created 0644)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class ServiceLog:
    """The log of another Postfix program whose work this process does
    (cleanup inside smtpd, pickup and the filter; qmgr, bounce and the
    delivery agents inside the queue process): its lines carry that
    program's tag (`postier/cleanup[PID]`), in this process's log, in order
    with its other lines."""

    def __init__(self, service: str) -> None:
        self.service = service

    def info(self, text: str) -> None:
        LOG.emit("", text, self.service)

    def warning(self, text: str) -> None:
        LOG.emit("warning", text, self.service)

    def error(self, text: str) -> None:
        LOG.emit("error", text, self.service)


def info(text: str, service: str | None = None) -> None:
    LOG.emit("", text, service)


def warning(text: str, service: str | None = None) -> None:
    LOG.emit("warning", text, service)


def error(text: str) -> None:
    LOG.emit("error", text)


def fatal(text: str, status: int = 1) -> None:
    """Log `fatal: text` and exit, as Postfix's msg_fatal() does."""
    LOG.emit("fatal", text)
    raise SystemExit(status)


def last_resort(text: str, severity: str = "error", tag: str | None = None) -> None:
    """Write `severity: text` (`text` alone with severity "") as one
    maillog-shaped line straight to standard error (file descriptor 2),
    bypassing MailLog: the report of last resort
    when the mail log itself fails (a broken emit(), a full or unwritable
    maillog file), so that the failure is never silent.  `tag` defaults to
    this process's (LOG.tag).  Never raises."""
    try:
        tag = tag or LOG.tag
        stamp = time.strftime("%b %d %H:%M:%S")
        body = f"{severity}: {text}" if severity else text
        line = f"{stamp} {os.uname().nodename.split('.')[0]} {tag}[{os.getpid()}]: {body}\n"
        data = line.encode("utf-8", "surrogateescape")
        while data:
            data = data[os.write(2, data):]
    except Exception:   # noqa: BLE001 - nowhere left to report to
        pass
