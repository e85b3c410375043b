"""Delivery status notifications (RFC 3464) shaped exactly like Postfix's bounce(8).

The queue manager calls `flush()` when a message has recipients in one of
its delivery logs (postier.queue.file DsnRecord files under queue_directory:
`bounce/ID`, `defer/ID`, `trace/ID`), with one of four templates:

  FAILURE  recipients that bounced (bounce log), or all deferred recipients
           when the message expired (defer log: `status=expired, returned
           to sender`) - "Undelivered Mail Returned to Sender"
  DELAY    deferred recipients after delay_warning_time (defer log) -
           "Delayed Mail (still being retried)", with Will-Retry-Until:
  SUCCESS  recipients delivered with NOTIFY=SUCCESS (trace log) -
           "Successful Mail Delivery Report"

and gets back the notices to queue (`Notice`), which `queue_notice()` writes
into `incoming/` as new messages through the normal queue (a notice is a
message like any other, with its own queue ID and log lines).  Who gets
what follows bounce_notify_service.c / bounce_warn_service.c /
bounce_trace_service.c:

* sender = the failed message's sender.  A notice to the sender comes from
  the null sender `<>` and lists the recipients whose DSN NOTIFY allows it
  (no NOTIFY, or NOTIFY containing FAILURE / DELAY; NEVER never); RET=HDRS
  returns the headers, RET=FULL (the default for failures) the message, but
  only the headers when the message is larger than bounce_size_limit;
  delay and success notices return the headers (success: unless RET=FULL).
* With notify_classes `bounce` (failures) or `delay` (delay warnings), a
  postmaster copy (headers only, every recipient, no boilerplate) goes to
  $bounce_notice_recipient / $delay_notice_recipient, from
  $double_bounce_sender@$myhostname.
* A failed notice (null sender) produces a double bounce to
  $2bounce_notice_recipient (full message, every recipient) when
  notify_classes has `2bounce` or `bounce`, else nothing; a failed postmaster
  notice (sender = $double_bounce_sender@$myhostname) is discarded with
  `warning: ID: undeliverable postmaster notification discarded`.
* Success notices are not sent for the null sender or the double-bounce
  sender.

The text is Postfix's default templates (`postconf -t`) with $myhostname,
$mail_name, $delay_warning_time_<unit> and $maximal_queue_lifetime_<unit>
expanded (bounce_template_file is not supported).  The field names keep
Postfix's spelling, including `X-Postfix-Queue-ID`/`X-Postfix-Sender` (they
are `X-$mail_name-...`, and mail_name defaults to "Postfix"), because
mail-log and bounce-processing tools match them.  Dates are mail_date()'s
("Sat,  8 Nov 2026 05:49:02 +0000 (UTC)": the day is space-padded).  The
message gets the headers Postfix's cleanup would add (Received: by, Date:,
From: qualified with @$myorigin, Message-Id:), in Postfix's order.

Golden tests: tests/golden/bounce/*.in -> *.ref are recorded from real
Postfix 3.7.11 (record_postfix_dsn.py there) and replayed by
tests/unit/qmgr/test_bounce_golden.py.

Parameters read: myhostname, myorigin, mail_name, bounce_size_limit,
notify_classes, double_bounce_sender, bounce_notice_recipient,
2bounce_notice_recipient, delay_notice_recipient, delay_warning_time,
maximal_queue_lifetime, smtputf8_enable.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postier.maps.access import quote_822_local

FAILURE = "failure"
DELAY = "delay"
SUCCESS = "success"

# --------------------------------------------------------------------------
# Postfix's default templates (postconf -t, Postfix 3.7)

_SIGNATURE = "                   The mail system"
_ASSIST = ["For further assistance, please send mail to postmaster.", "",
           "If you do so, please include this problem report. You can",
           "delete your own text from the attached returned message.", ""]
TEMPLATES: dict[str, dict[str, Any]] = {
    FAILURE: {
        "subject": "Undelivered Mail Returned to Sender",
        "postmaster_subject": "Postmaster Copy: Undelivered Mail",
        "text": ["This is the mail system at host $myhostname.", "",
                 "I'm sorry to have to inform you that your message could not",
                 "be delivered to one or more recipients. It's attached below.", ""]
        + _ASSIST + [_SIGNATURE],
    },
    DELAY: {
        "subject": "Delayed Mail (still being retried)",
        "postmaster_subject": "Postmaster Warning: Delayed Mail",
        "text": ["This is the mail system at host $myhostname.", "",
                 "#" * 68,
                 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
                 "#" * 68, "",
                 "Your message could not be delivered for more than "
                 "$delay_warning_time_hours hour(s).",
                 "It will be retried until it is $maximal_queue_lifetime_days day(s) old.", ""]
        + _ASSIST + [_SIGNATURE],
    },
    SUCCESS: {
        "subject": "Successful Mail Delivery Report",
        "postmaster_subject": None,
        "text": ["This is the mail system at host $myhostname.", "",
                 "Your message was successfully delivered to the destination(s)",
                 "listed below. If the message was delivered to mailbox you will",
                 "receive no further notifications. Otherwise you may still receive",
                 "notifications of mail delivery errors from other systems.", "",
                 _SIGNATURE],
    },
}

_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_MACRO = re.compile(r"\$(\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))")


@dataclass
class BounceSettings:
    myhostname: str = "localhost"
    myorigin: str = "localhost"
    mail_name: str = "Postfix"
    bounce_size_limit: int = 50000
    notify_classes: frozenset[str] = frozenset({"resource", "software"})
    double_bounce_sender: str = "double-bounce"
    bounce_notice_recipient: str = "postmaster"
    twobounce_notice_recipient: str = "postmaster"
    delay_notice_recipient: str = "postmaster"
    delay_warning_time: int = 0
    maximal_queue_lifetime: int = 5 * 86400
    smtputf8_enable: bool = True

    @classmethod
    def from_config(cls, cfg: Any) -> BounceSettings:
        return cls(
            myhostname=cfg.get("myhostname"), myorigin=cfg.get("myorigin"),
            mail_name=cfg.get("mail_name"), bounce_size_limit=cfg.get("bounce_size_limit"),
            notify_classes=frozenset(x.lower() for x in cfg.get("notify_classes")),
            double_bounce_sender=cfg.get("double_bounce_sender"),
            bounce_notice_recipient=cfg.get("bounce_notice_recipient"),
            twobounce_notice_recipient=cfg.get("2bounce_notice_recipient"),
            delay_notice_recipient=cfg.get("delay_notice_recipient"),
            delay_warning_time=cfg.get("delay_warning_time"),
            maximal_queue_lifetime=cfg.get("maximal_queue_lifetime"),
            smtputf8_enable=cfg.get("smtputf8_enable"))

    @property
    def double_bounce_address(self) -> str:
        """mail_addr_double_bounce(): $double_bounce_sender@$myhostname."""
        return f"{self.double_bounce_sender}@{self.myhostname}"

    @property
    def mailer_daemon(self) -> str:
        """mail_addr_mail_daemon(): MAILER-DAEMON@$myhostname."""
        return f"MAILER-DAEMON@{self.myhostname}"

    def qualify(self, address: str) -> str:
        """What cleanup does to an unqualified header/envelope address."""
        return address if "@" in address else f"{address}@{self.myorigin}"

    def expand(self, line: str) -> str:
        def sub(m: re.Match) -> str:
            name = m.group(2) or m.group(3) or m.group(4)
            for param, value in (("delay_warning_time", self.delay_warning_time),
                                 ("maximal_queue_lifetime", self.maximal_queue_lifetime)):
                if name.startswith(param + "_") and name[len(param) + 1:] in _UNITS:
                    return str(int(value) // _UNITS[name[len(param) + 1:]])
            if name == "myhostname":
                return self.myhostname
            if name == "mail_name":
                return self.mail_name
            if name == "myorigin":
                return self.myorigin
            return m.group(0)
        return _MACRO.sub(sub, line)


@dataclass
class Notice:
    """One notification to queue."""
    template: str                 # FAILURE, DELAY, SUCCESS
    log_text: str                 # "sender non-delivery notification" ...
    sender: str                   # envelope sender of the notice
    recipient: str                # envelope recipient (qualified)
    orig_recipient: str           # as configured ("postmaster"), for orig_to=
    postmaster_copy: bool
    records: list[Any]            # DsnRecords listed
    headers_only: bool
    env: Any                      # the original message's Envelope
    content: bytes                # the original message content


# --------------------------------------------------------------------------
# helpers: dates, wrapping, DSN NOTIFY filters

def mail_date(when: float) -> str:
    """mail_date(): RFC 2822 date with a space-padded day and the zone name."""
    tm = time.localtime(when)
    off = tm.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off) // 60
    return (time.strftime("%a, %e %b %Y %H:%M:%S ", tm)
            + f"{sign}{off // 60:02d}{off % 60:02d} ({time.strftime('%Z', tm)})")


def line_wrap(text: str, length: int = 79, indent: int = 4) -> list[str]:
    """line_wrap(): break at blanks so lines stay within `length`; later
    lines are indented by `indent`; a longer word is not broken."""
    out: list[str] = []
    curr_indent, curr_len = (0, length) if indent >= 0 else (-indent, length + indent)
    start = 0
    word = 0
    n = len(text)
    first = True
    while word is not None:
        sp = word
        while sp < n and text[sp] not in " \t":
            sp += 1
        if word > start and sp - start > curr_len:
            end = word
            while end > start and text[end - 1].isspace():
                end -= 1
            out.append(" " * curr_indent + text[start:end])
            while word < n and text[word].isspace():
                word += 1
            if first:
                curr_indent += indent
                curr_len -= indent
                first = False
            start = word
        word = sp + 1 if sp < n else None
    end = n
    while end > start and text[end - 1].isspace():
        end -= 1
    out.append(" " * curr_indent + text[start:end])
    return out


def _notify_allows(notify: str, what: str) -> bool:
    """DSN NOTIFY filter: no NOTIFY (compat) or NOTIFY lists `what`."""
    if not notify:
        return True
    return what in {x.strip().upper() for x in notify.split(",")}


_SAY_RX = re.compile(r"^host (\S+?)\[[^\]]*\] said: (.*?)(?: \(in reply to .*? command\))?$",
                     re.S)


def diagnostics(text: str) -> tuple[str, str, str, str]:
    """(mta_type, mta_name, diag_type, diag_text) that Postfix's SMTP/LMTP
    client records with a server reply, from its log text `host NAME[ADDR]
    said: REPLY (in reply to X command)`; empty strings otherwise."""
    m = _SAY_RX.match(text)
    if m is None:
        return "", "", "", ""
    return "dns", m.group(1), "smtp", m.group(2)


def _printable(text: str, utf8: bool) -> str:
    return "".join(ch if (ch >= " " and ch != "\x7f" and (utf8 or ch < "\x80")) else "?"
                   for ch in text)


def _is_header(line: bytes) -> bool:
    """is_header(): a field name (printable, no space or colon) then ':'."""
    colon = line.find(b":")
    if colon <= 0:
        return False
    name = line[:colon]
    return all(33 <= c <= 126 for c in name)


# --------------------------------------------------------------------------
# who gets what

def flush(template: str, env: Any, records: list[Any], content: bytes | Callable[[], bytes],
          settings: BounceSettings, *, warn: Callable[[str], None] | None = None
          ) -> list[Notice]:
    """The notices Postfix's bounce service would send for `records` of the
    message `env`, with `template` FAILURE (bounce log, or the defer log of
    an expired message), DELAY (defer log) or SUCCESS (trace log)."""
    if not records:
        return []
    body = content() if callable(content) else content
    sender = env.sender
    dbl = settings.double_bounce_address
    out: list[Notice] = []
    classes = settings.notify_classes

    def notice(log_text: str, nsender: str, rcpt: str, pm: bool, recs: list[Any],
               headers_only: bool) -> None:
        if recs:
            out.append(Notice(template, log_text, nsender, settings.qualify(rcpt), rcpt, pm,
                              recs, headers_only, env, body))

    if template == SUCCESS:
        if not sender or sender.lower() == dbl.lower():
            return []
        notice("sender delivery status notification", "", sender, False, list(records),
               (env.dsn_ret or "HDRS").upper() != "FULL")
        return out

    what = "FAILURE" if template == FAILURE else "DELAY"
    word = "non-delivery" if template == FAILURE else "delay"
    if sender.lower() == dbl.lower():
        if warn is not None:
            warn(f"{env.queue_id}: undeliverable postmaster notification discarded")
        return []
    if not sender:
        wanted = ({"2bounce", "bounce"} if template == FAILURE else {"delay"})
        if classes & wanted:
            pm = (settings.twobounce_notice_recipient if template == FAILURE
                  else settings.delay_notice_recipient)
            notice(f"postmaster {word} notification", dbl, pm, True, list(records), False)
        return out
    mine = [r for r in records if _notify_allows(r.dsn_notify, what)]
    headers_only = (template == DELAY or (env.dsn_ret or "FULL").upper() == "HDRS")
    notice(f"sender {word} notification", "", sender, False, mine, headers_only)
    if (template == FAILURE and "bounce" in classes) or (template == DELAY and "delay" in classes):
        pm = (settings.bounce_notice_recipient if template == FAILURE
              else settings.delay_notice_recipient)
        notice(f"postmaster {word} notification", dbl, pm, True, list(records), True)
    return out


# --------------------------------------------------------------------------
# the message

def render(n: Notice, settings: BounceSettings, new_id: str, now: float) -> bytes:
    """The notice as queue-file content (LF line ends)."""
    env = n.env
    tpl = TEMPLATES[n.template]
    s = settings
    if s.smtputf8_enable or (env.body_type or "").upper() == "8BITMIME":
        encoding: str | None = "8bit"
    elif (env.body_type or "").upper() == "7BIT":
        encoding = "7bit"
    else:
        encoding = None
    not_7bit = encoding is not None and encoding != "7bit"
    utf8 = bool(env.smtputf8)
    boundary = f"{env.queue_id}.{int(now)}/{s.myhostname}"
    subject = tpl["postmaster_subject"] if (n.postmaster_copy and tpl["postmaster_subject"]) \
        else tpl["subject"]
    date = mail_date(now)
    L: list[str] = [
        f"Received: by {s.myhostname} ({s.mail_name})",
        f"\tid {new_id}; {date}",
        f"Date: {date}",
        f"From: Mail Delivery System <{s.qualify('MAILER-DAEMON')}>",
        f"Subject: {subject}",
        f"To: {quote_822_local(n.recipient)}",
        f"Auto-Submitted: {'auto-generated' if n.postmaster_copy else 'auto-replied'}",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    if encoding:
        L.append(f"Content-Transfer-Encoding: {encoding}")
    L.append(f"Message-Id: <{time.strftime('%Y%m%d%H%M%S', time.localtime(now))}."
             f"{new_id}@{s.myhostname}>")
    L += ["", "This is a MIME-encapsulated message.", "",
          f"--{boundary}", "Content-Description: Notification",
          f"Content-Type: text/plain; charset={'utf-8' if not_7bit else 'us-ascii'}"]
    if not_7bit:
        L.append(f"Content-Transfer-Encoding: {encoding}")
    L.append("")
    if not n.postmaster_copy:
        L += [s.expand(x) for x in tpl["text"]]
    show_utf8 = s.smtputf8_enable
    for r in n.records:
        L.append("")
        reason = _printable(r.reason, show_utf8)
        if r.orig and r.orig.lower() != r.address.lower():
            L += line_wrap(f"<{r.address}> (expanded from <{r.orig}>): {reason}")
        else:
            L += line_wrap(f"<{r.address}>: {reason}")
    # machine-readable part
    L += ["", f"--{boundary}", "Content-Description: Delivery report",
          f"Content-Type: message/{'global-' if utf8 else ''}delivery-status"]
    if not_7bit and utf8:
        L.append(f"Content-Transfer-Encoding: {encoding}")
    mail_name = re.sub(r"[ \t\r\n()<>@,;:\\\".\[\]]", "-", s.mail_name)
    L += ["", f"Reporting-MTA: dns; {s.myhostname}"]
    if env.dsn_envid:
        L.append(f"Original-Envelope-Id: {env.dsn_envid}")
    L.append(f"X-{mail_name}-Queue-ID: {env.queue_id}")
    snd = quote_822_local(env.sender) if env.sender else s.mailer_daemon

    def addr_type(a: str) -> str:
        return "utf-8" if (utf8 and not a.isascii()) else "rfc822"
    L.append(f"X-{mail_name}-Sender: {addr_type(snd)}; {snd}")
    if env.arrival > 0:
        L.append(f"Arrival-Date: {mail_date(env.arrival)}")
    for r in n.records:
        L += ["", f"Final-Recipient: {addr_type(r.address)}; {r.address}"]
        if r.dsn_orcpt:
            L.append(f"Original-Recipient: {r.dsn_orcpt}")
        elif r.orig:
            L.append(f"Original-Recipient: {addr_type(r.orig)}; {r.orig}")
        L.append(f"Action: {'failed' if n.template == FAILURE else r.action}")
        L.append(f"Status: {r.status}")
        if r.mta_type and r.mta_name:
            L += line_wrap(f"Remote-MTA: {r.mta_type}; {r.mta_name}")
        if r.diag_type and r.diag_text:
            L += line_wrap(f"Diagnostic-Code: {r.diag_type}; {_printable(r.diag_text, show_utf8)}")
        else:
            L += line_wrap(f"Diagnostic-Code: X-{mail_name}; {_printable(r.reason, show_utf8)}")
        if n.template == DELAY:
            L.append(f"Will-Retry-Until: {mail_date(env.arrival + s.maximal_queue_lifetime)}")
    # the original message
    content = n.content
    headers_only = n.headers_only
    if s.bounce_size_limit > 0 and (len(content) == 0 or len(content) > s.bounce_size_limit):
        headers_only = True
    undelivered = n.template in (FAILURE, DELAY)
    L += ["", f"--{boundary}",
          f"Content-Description: {'Undelivered ' if undelivered else ''}"
          f"{'Message Headers' if headers_only else 'Message'}"]
    if utf8:
        L.append(f"Content-Type: message/{'global-headers' if headers_only else 'global'}")
    else:
        L.append(f"Content-Type: {'text/rfc822-headers' if headers_only else 'message/rfc822'}")
    if not_7bit:
        L.append(f"Content-Transfer-Encoding: {encoding}")
    L += ["", f"Return-Path: <{snd}>"]
    head = ("\n".join(L) + "\n").encode("utf-8", "surrogateescape")
    if headers_only:
        lines = content.split(b"\n")
        kept = []
        for ln in lines:
            if ln[:1] in (b" ", b"\t") or _is_header(ln):
                kept.append(ln)
            else:
                break
        original = b"".join(x + b"\n" for x in kept)
    else:
        original = content if (not content or content.endswith(b"\n")) else content + b"\n"
    tail = f"\n--{boundary}--\n".encode()
    return head + original + tail


def queue_notice(queue_directory: str, n: Notice, settings: BounceSettings,
                 now: float | None = None) -> str:
    """Write the notice into incoming/ as a new message (fsync'd); return
    its queue ID.  Blocking."""
    from postier.queue.file import Envelope, QueueWriter, Recipient
    when = time.time() if now is None else now
    w = QueueWriter(os.path.join(queue_directory, "incoming"))
    try:
        w.write(render(n, settings, w.queue_id, when))
        rcpt = Recipient(address=n.recipient,
                         orig=n.orig_recipient if n.orig_recipient != n.recipient else "")
        env = Envelope(queue_id=w.queue_id, arrival=when, sender=n.sender,
                       recipients=[rcpt], body_type="8BITMIME" if settings.smtputf8_enable
                       else "", attrs={"origin": "bounce"})
        w.commit(env)
    except BaseException:
        w.abort()
        raise
    return w.queue_id


_RELAY_RX = re.compile(r"^([^\[\s]+)\[[^\]]*\](?::\d+)?$")
_REPLY_RX = re.compile(r"^[245]\d\d[ -]")


def make_record(rcpt: Any, dsn: str, action: str, reason: str, relay: str = "",
                now: float = 0.0, *, trace: bool = False, status: Any = None) -> Any:
    """The DsnRecord the queue manager logs for one recipient result.

    Remote-MTA/Diagnostic-Code come from the delivery agent when it says
    (RecipientStatus attributes mta_type/mta_name/diag_type/diag_text), else
    from the text Postfix's SMTP client logs: `host NAME[ADDR] said: REPLY
    (in reply to ...)`, or for a delivered recipient a bare server reply
    with relay NAME[ADDR]:PORT.  Trace (NOTIFY=SUCCESS) records get the
    reason `delivery via RELAY: TEXT` as Postfix's sent() writes it."""
    from postier.queue.file import DsnRecord
    mt, mn, dt, dx = diagnostics(reason)
    if not dt and _REPLY_RX.match(reason):
        m = _RELAY_RX.match(relay or "")
        if m:
            mt, mn, dt, dx = "dns", m.group(1), "smtp", reason
    if status is not None:
        mt = getattr(status, "mta_type", "") or mt
        mn = getattr(status, "mta_name", "") or mn
        dt = getattr(status, "diag_type", "") or dt
        dx = getattr(status, "diag_text", "") or dx
    why = f"delivery via {relay}: {reason}" if trace else reason
    orig = rcpt.orig if rcpt.orig and rcpt.orig.lower() != rcpt.address.lower() else ""
    return DsnRecord(address=rcpt.address, orig=orig, dsn_orcpt=rcpt.dsn_orcpt,
                     dsn_notify=rcpt.dsn_notify, status=dsn, action=action, reason=why,
                     relay=relay, mta_type=mt, mta_name=mn, diag_type=dt, diag_text=dx,
                     time=now)
