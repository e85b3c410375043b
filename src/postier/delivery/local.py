"""The local delivery agent: Postfix's local(8).

    import postier.delivery.agents
    statuses = await AGENTS["local"](request)      # master.cf command "local"

Each recipient of the request goes through Postfix's delivery switch
(local/recipient.c and friends), with the same decisions, duplicate filter
keys and texts:

1. loop and sanity checks: a recipient that the message's `Delivered-To:`
   headers already name bounces with `5.4.6 mail forwarding loop for ADDR`;
   aliases nested more than 100 levels deep bounce (`5.4.6 alias database
   loop for NAME`); an empty user name bounces (`5.1.3 null username in
   "ADDR"`).
   The local part is folded to lower case and split at
   $recipient_delimiter into user and extension (postmaster,
   MAILER-DAEMON, owner-x and x-request are never split).
2. aliases ($alias_maps, the local part, then the user without extension):
   the value is parsed as an RFC 822 address list; each member is
   `/file/name` (mbox, or Maildir when it ends in `/`), `~/file`,
   `|command`, `:include:/file` or an address.  An address that resolves
   to this transport is delivered here and now (recursively); any other
   address, and every address when an `owner-NAME` alias exists or when it
   comes from an :include: file or a .forward of another user, is
   forwarded: re-submitted as a new message (see FORWARDING).  An
   `owner-NAME` alias makes `owner-NAME@$myorigin` the sender of that
   new message.  Commands and files from a root-owned alias database run
   with $default_privs; from a user-owned database with its owner's rights;
   from an :include: file with the file owner's rights.
   $allow_mail_to_commands and $allow_mail_to_files decide where `|cmd`
   and `/file` may appear (`5.7.1 mail to command is restricted`,
   `5.7.1 mail to file is restricted`).
3. `~user/.forward` files ($forward_path, `$home/.forward+$extension` first),
   read with the user's rights; a file that is not regular, is owned by
   someone else than the user or root, or is world writable is ignored with
   a warning, as Postfix does.  `\\user` delivers to the user's own mailbox.
4. the mailbox: $mailbox_transport(_maps) hands the recipient to another
   transport (for example lmtp to Dovecot); $mailbox_command(_maps) runs a
   command; $home_mailbox (Maildir when it ends in `/`) or
   $mail_spool_directory/USER (an mbox with the `From ` line, `>From `
   quoting, `Return-Path:`, `X-Original-To:`, `Delivered-To:` and a blank
   line; locked with $mailbox_delivery_lock).  Everything runs in a child
   that has switched to the recipient (postier.delivery.runas); the spool
   group is used when $mail_spool_directory is group-writable (Debian's
   /var/mail, root:mail 2775), so the mailbox is created as USER:mail 0600.
   Symlinked, hard-linked, foreign-owned ($strict_mailbox_ownership) and
   non-regular mailboxes are refused with Postfix's texts.
5. unknown users: $fallback_transport(_maps), then $luser_relay (with
   $user, $extension ... expanded), then `5.1.1 unknown user: "NAME"`;
   postmaster and MAILER-DAEMON without an alias are discarded with a
   `required alias not found` warning.

Texts (status=... (TEXT), as Postfix 3.7 logs them): `delivered to
mailbox`, `delivered to maildir`, `delivered to file: PATH`, `delivered to
command: CMD`, `forwarded as QUEUEID`, `unknown user: "NAME"`, `cannot
update mailbox PATH for user USER. REASON` (REASON from
postier.delivery.mailbox), `cannot append message to file PATH: REASON`,
`maildir delivery failed: REASON`, command failures as pipe_command():
`Command died with status N: "CMD". Command output: ...`, sysexits texts
(`user unknown`, `temporary failure` ...), `Command time limit exceeded:
"CMD"`, and a `D.S.N text` first output line taking precedence.

THE RESULT.  One `LocalStatus` (a RecipientStatus) per request recipient,
`recipient` being that request's Recipient object.  Postfix logs one line
per final delivery of an expansion (`to=<ptest1@example.test>,
orig_to=<root@example.test>, ... (delivered to mailbox)`), so the status
carries them in `events`: a list of RecipientStatus whose `recipient` is a
new Recipient(address, orig) for the log line.  The queue manager logs the
events (when there are any) instead of the aggregate; it uses the
aggregate for the queue file: `deferred` when any part was deferred (the
whole recipient is tried again later, as in Postfix), else `bounced` when
any part bounced (the sender gets the first bounce text), else `sent`.

FORWARDING.  Forwarded recipients are grouped by (Delivered-To address,
sender), like Postfix's forward.c, and each group becomes one new queue file
in `queue_directory/incoming/` written with postier.queue.file.QueueWriter:
content = `Received: by $myhostname ($mail_name)\\n\\tid NEWID; DATE`, then
`Delivered-To: ADDRESS` (lower case; with "forward" in
$prepend_delivered_header), then the original message; envelope = the
sender (or `owner-NAME@$myorigin`), each recipient with its original
recipient kept (none after an owner- alias), $virtual_alias_maps applied to
the new recipients, the client attributes copied.  Nothing is written when
another part of the same recipient was deferred.  After the commit
`FORWARD_NOTIFY(queue_id)` is called when the queue manager has set it;
otherwise a `trigger I` is sent to a running queue manager.  A queue
manager that prefers to do the submission itself sets `FORWARD_SUBMIT` to
a coroutine function (ForwardMessage -> queue ID) that allocates the queue
ID, writes `msg.render(queue_id)` with `msg.sender` and `msg.recipients`
and returns the ID.

Parameters read: alias_maps, allow_mail_to_commands, allow_mail_to_files,
biff (ignored: postier has no comsat client), command_execution_directory,
command_expansion_filter, command_time_limit, default_privs,
deliver_lock_attempts, deliver_lock_delay, duplicate_filter_limit,
execution_directory_expansion_filter, expand_owner_alias,
export_environment, fallback_transport, fallback_transport_maps,
forward_expansion_filter, forward_path, frozen_delivered_to, home_mailbox,
line_length_limit, local_command_shell, luser_relay, mail_name,
mail_spool_directory, mailbox_command, mailbox_command_maps,
mailbox_delivery_lock, mailbox_size_limit, mailbox_transport,
mailbox_transport_maps, message_size_limit, myhostname,
owner_request_special, prepend_delivered_header,
propagate_unmatched_extensions, queue_directory, recipient_delimiter,
require_home_directory, stale_lock_time, strict_mailbox_ownership,
sun_mailtool_compatibility, virtual_alias_maps (forwarded recipients), and
through postier.cleanup / postier.delivery.resolve the address rewriting
and routing parameters (myorigin, mydestination, transport_maps ...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from postier import log
from postier.delivery import AGENTS, DeliveryRequest, RecipientStatus, register
from postier.delivery import mailbox as mbx
from postier.delivery.runas import (
    Creds,
    RunAsError,
    clean_environ,
    command_argv,
    run_command,
    run_job,
)
from postier.errors import ConfigError

__all__ = ["ForwardMessage", "LocalStatus", "local_agent", "FORWARD_NOTIFY", "FORWARD_SUBMIT"]

EXP_ALIAS, EXP_FWD, EXP_INCL = 1, 2, 4
_EXP_NAMES = {"alias": EXP_ALIAS, "forward": EXP_FWD, "include": EXP_INCL}
RECURSION_LIMIT = 100
MAIL_ADDR_POSTMASTER = "postmaster"
MAIL_ADDR_MAIL_DAEMON = "MAILER-DAEMON"
FILE_TABLE_TYPES = ("hash", "texthash", "regexp", "pcre", "cidr")

# sysexits.h -> (dsn, text), Postfix's sys_exits.c
SYS_EXITS = {
    64: ("5.3.0", "command line usage error"),
    65: ("5.6.0", "data format error"),
    66: ("5.3.0", "cannot open input"),
    67: ("5.1.1", "user unknown"),
    68: ("5.1.2", "host name unknown"),
    69: ("5.3.0", "service unavailable"),
    70: ("5.3.0", "internal software error"),
    71: ("4.3.0", "system resource problem"),
    72: ("5.3.0", "critical OS file missing"),
    73: ("5.2.0", "can't create user output file"),
    74: ("5.3.0", "input/output error"),
    75: ("4.3.0", "temporary failure"),
    76: ("5.5.0", "remote error in protocol"),
    77: ("5.7.0", "permission denied"),
    78: ("5.3.5", "local configuration error"),
}


@dataclass
class ForwardMessage:
    """One message that local delivery re-submits (see FORWARDING).
    `render(queue_id)` gives the new message content: the `Received: by`
    header names the new queue ID, so the submitter calls it once it has
    allocated one."""
    sender: str
    recipients: list[Any]            # postier.queue.file.Recipient
    original: bytes                  # the original message content
    myhostname: str
    mail_name: str
    delivered: str                   # for the Delivered-To: header ("" = none)
    when: float
    attrs: dict[str, str] = field(default_factory=dict)

    def render(self, queue_id: str) -> bytes:
        from postier.cleanup.headers import mail_date
        head = (f"Received: by {self.myhostname} ({self.mail_name})\n"
                f"\tid {queue_id}; {mail_date(self.when)}\n")
        if self.delivered:
            head += f"Delivered-To: {self.delivered.lower()}\n"
        body = self.original
        if body and not body.endswith(b"\n"):
            body += b"\n"
        return head.encode("utf-8", "surrogateescape") + body


# Hooks for the queue manager (see the module docstring).
FORWARD_NOTIFY: Callable[[str], None] | None = None
FORWARD_SUBMIT: Callable[[ForwardMessage], Awaitable[str]] | None = None


@dataclass
class LocalStatus(RecipientStatus):
    """The aggregate status of one request recipient, plus the per-delivery
    log events (empty when the single event is the aggregate itself)."""
    events: list[RecipientStatus] = field(default_factory=list)


# ------------------------------------------------------------------ helpers

def dsn_valid(text: str) -> int:
    """Length of a leading RFC 3463 code (`4.1.1`), 0 when there is none."""
    from postier.delivery.smtp import dsn_valid as _dv
    return _dv(text)


def split_addr(localpart: str, delims: str, *, double_bounce: str = "double-bounce",
               ownreq: bool = True) -> tuple[str, str | None]:
    """split_addr(): (user, extension) of a folded local part."""
    if not delims:
        return localpart, None
    low = localpart.lower()
    if low in (MAIL_ADDR_POSTMASTER, MAIL_ADDR_MAIL_DAEMON.lower(), double_bounce.lower()):
        return localpart, None
    if "-" in delims and ownreq:
        if low.startswith("owner-"):
            return localpart, None
        if len(low) > 8 and low.endswith("-request"):
            return localpart, None
    for i, ch in enumerate(localpart):
        if ch in delims:
            if i == 0:
                return localpart, None
            return localpart[:i], localpart[i + 1:]
    return localpart, None


def printable_output(raw: bytes) -> str:
    """Command output as Postfix reports it: tabs and newlines become
    spaces, other unprintable characters underscores."""
    text = raw.decode("utf-8", "replace").replace("\ufffd", "_")
    text = text.replace("\t", " ").replace("\n", " ")
    return "".join(c if c.isprintable() else "_" for c in text)


def command_status(res: Any, command: str) -> tuple[str, str, str]:
    """pipe_command()'s verdict: (ok|bounce|defer, dsn, text)."""
    out = printable_output(res.output)
    tail = f". Command output: {out}" if out else ""
    if res.spawn_error:
        return "defer", "4.3.0", f"Delivery failed: {res.spawn_error}"
    if res.timed_out:
        return "bounce", "5.3.0", f'Command time limit exceeded: "{command}"{tail}'
    if res.signal:
        return "bounce", "5.3.0", f'Command died with signal {res.signal}: "{command}"{tail}'
    if res.status:
        n = dsn_valid(out)
        if n:
            dsn = out[:n]
            text = out[n:].lstrip(" \t")
            return ("defer" if dsn[0] == "4" else "bounce"), dsn, text
        if res.status in SYS_EXITS:
            dsn, text = SYS_EXITS[res.status]
            return ("defer" if dsn[0] == "4" else "bounce"), dsn, text + tail
        return "bounce", "5.3.0", f'Command died with status {res.status}: "{command}"{tail}'
    if res.write_errno:
        return "bounce", "5.3.0", (f"Command failed: error writing message: "
                                   f"{os.strerror(res.write_errno)}: \"{command}\"")
    return "ok", "2.0.0", ""


def export_names(export: list[str], config_dir: str) -> list[str]:
    """$export_environment for clean_environ(), with the values Postfix's
    daemons have: LANG=C (import_environment) and MAIL_CONFIG = the
    configuration directory."""
    out = []
    for name in export:
        if name == "LANG":
            out.append("LANG=C")
        elif name == "MAIL_CONFIG" and config_dir:
            out.append(f"MAIL_CONFIG={config_dir}")
        else:
            out.append(name)
    return out


class ExpandError(Exception):
    pass


def mac_expand(pattern: str, lookup: Callable[[str], str | None],
               filt: str | None = None) -> tuple[str, bool, set[str]]:
    """mac_expand() for local(8): $name, ${name}, $(name), ${name?text},
    ${name:text}, $$.  Returns (result, undefined-seen, names used).
    Characters of looked-up values outside `filt` become underscores."""
    out: list[str] = []
    used: set[str] = set()
    undef = False
    i, n = 0, len(pattern)

    def clean(v: str) -> str:
        if filt is None:
            return v
        return "".join(c if c in filt else "_" for c in v)

    while i < n:
        c = pattern[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            out.append("$")
            break
        c2 = pattern[i + 1]
        if c2 == "$":
            out.append("$")
            i += 2
            continue
        if c2 in "{(":
            close = "}" if c2 == "{" else ")"
            depth, j = 1, i + 2
            while j < n and depth:
                if pattern[j] == c2:
                    depth += 1
                elif pattern[j] == close:
                    depth -= 1
                j += 1
            if depth:
                raise ExpandError(f"unbalanced {c2} in {pattern!r}")
            inner = pattern[i + 2:j - 1]
            i = j
            name, op, rest = inner, "", ""
            for k, ch in enumerate(inner):
                if ch in "?:":
                    name, op, rest = inner[:k], ch, inner[k + 1:]
                    break
            if not name:
                raise ExpandError(f"empty macro name in {pattern!r}")
            value = lookup(name)
            used.add(name)
            if op == "?":
                if value:
                    sub, u2, used2 = mac_expand(rest, lookup, filt)
                    out.append(sub)
                    undef |= u2
                    used |= used2
            elif op == ":":
                if not value:
                    sub, u2, used2 = mac_expand(rest, lookup, filt)
                    out.append(sub)
                    undef |= u2
                    used |= used2
            elif value is None:
                undef = True
            else:
                out.append(clean(value))
            continue
        j = i + 1
        while j < n and (pattern[j].isalnum() or pattern[j] == "_"):
            j += 1
        name = pattern[i + 1:j]
        if not name:
            out.append("$")
            i += 1
            continue
        i = j
        value = lookup(name)
        used.add(name)
        if value is None:
            undef = True
        else:
            out.append(clean(value))
    return "".join(out), undef, used


# ------------------------------------------------------------------ settings

class LocalSettings:
    """The parameters of one (service) configuration, parsed once."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        g = cfg.get

        def text(name: str) -> str:
            v = g(name)
            return ", ".join(v) if isinstance(v, list) else str(v)

        def raw(name: str) -> str:
            return cfg.raw(name)

        def mask(name: str) -> int:
            m = 0
            for item in cfg.get_list(name):
                m |= _EXP_NAMES.get(item.lower(), 0)
            return m

        self.alias_specs = [s for s in cfg.get_list("alias_maps") if s]
        self.cmd_mask = mask("allow_mail_to_commands")
        self.file_mask = mask("allow_mail_to_files")
        self.exec_directory = raw("command_execution_directory")
        self.cmd_filter = text("command_expansion_filter")
        self.fwd_filter = text("forward_expansion_filter")
        self.exec_filter = text("execution_directory_expansion_filter")
        self.command_time_limit = cfg.get_time("command_time_limit")
        self.default_privs = text("default_privs")
        self.lock_attempts = cfg.get_int("deliver_lock_attempts")
        self.lock_delay = cfg.get_time("deliver_lock_delay")
        self.stale_lock_time = cfg.get_time("stale_lock_time")
        self.dup_limit = cfg.get_int("duplicate_filter_limit")
        self.expand_owner_alias = cfg.get_bool("expand_owner_alias")
        self.export_environment = cfg.get_list("export_environment")
        self.fallback_transport = text("fallback_transport")
        self.fallback_maps = [s for s in cfg.get_list("fallback_transport_maps") if s]
        self.forward_path = raw("forward_path")
        self.frozen_delivered = cfg.get_bool("frozen_delivered_to")
        self.home_mailbox = text("home_mailbox")
        self.line_limit = cfg.get_int("line_length_limit")
        self.local_command_shell = text("local_command_shell")
        self.luser_relay = raw("luser_relay")
        self.mail_name = text("mail_name")
        self.spool = text("mail_spool_directory")
        self.mailbox_command = raw("mailbox_command")
        self.mailbox_command_maps = [s for s in cfg.get_list("mailbox_command_maps") if s]
        self.mailbox_transport = text("mailbox_transport")
        self.mailbox_transport_maps = [s for s in cfg.get_list("mailbox_transport_maps") if s]
        self.mailbox_size_limit = cfg.get_size("mailbox_size_limit")
        self.message_size_limit = cfg.get_size("message_size_limit")
        self.myhostname = text("myhostname")
        self.ownreq = cfg.get_bool("owner_request_special")
        hdr = {x.lower() for x in cfg.get_list("prepend_delivered_header")}
        self.hdr_command = "command" in hdr
        self.hdr_file = "file" in hdr
        self.hdr_forward = "forward" in hdr
        prop = {x.lower() for x in cfg.get_list("propagate_unmatched_extensions")}
        self.prop_alias = "alias" in prop
        self.prop_forward = "forward" in prop
        self.prop_include = "include" in prop
        self.queue_directory = text("queue_directory")
        self.delims = text("recipient_delimiter")
        self.double_bounce = text("double_bounce_sender")
        self.require_home = cfg.get_bool("require_home_directory")
        self.strict_owner = cfg.get_bool("strict_mailbox_ownership")
        self.config_dir = getattr(cfg, "config_dir", "")
        self.config_error = ""
        try:
            self.locks = mbx.lock_styles(cfg.get_list("mailbox_delivery_lock"))
        except ValueError as e:
            self.locks = [mbx.LOCK_FCNTL]
            self.config_error = str(e)
        if cfg.get_bool("sun_mailtool_compatibility"):
            log.warning('sun_mailtool_compatibility: deprecated parameter, use '
                        '"mailbox_delivery_lock = dotlock" instead')
            self.locks = [x for x in self.locks if x == mbx.LOCK_DOT] or [mbx.LOCK_DOT]
        if self.mailbox_size_limit and (self.mailbox_size_limit < self.message_size_limit
                                        or self.message_size_limit == 0):
            self.config_error = ("main.cf configuration error: mailbox_size_limit is "
                                 "smaller than message_size_limit")
        self._rewriter: Any = None
        self._resolver: Any = None
        self._virtual: Any = None

    # lazily built heavy helpers
    def rewriter(self) -> Any:
        if self._rewriter is None:
            from postier.cleanup import CleanupSettings
            cs = CleanupSettings.from_config(self.cfg)
            self._rewriter = cs.rewriter
            self._virtual = cs.virtual
        return self._rewriter

    def resolver(self) -> Any:
        if self._resolver is None:
            from postier.delivery.resolve import TransportResolver
            self._resolver = TransportResolver(self.cfg)
        return self._resolver


_SETTINGS: dict[int, tuple[Any, LocalSettings]] = {}


def settings_for(cfg: Any) -> LocalSettings:
    hit = _SETTINGS.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    s = LocalSettings(cfg)
    if len(_SETTINGS) > 64:
        _SETTINGS.clear()
    _SETTINGS[id(cfg)] = (cfg, s)
    return s


def _open_tables(specs: list[str], what: str) -> tuple[list[Any], str]:
    """Open lookup tables (proxy: is ignored as local(8) does).  Returns
    (tables, error text or "")."""
    from postier.errors import MapError
    from postier.maps import open_map
    tables = []
    for spec in specs:
        if spec.startswith("proxy:"):
            spec = spec[len("proxy:"):]
        try:
            tables.append(open_map(spec, fold=True))
        except (MapError, OSError, ValueError) as e:
            if spec.startswith("nis:"):
                continue          # Postfix: NIS lookups disabled, no result
            return [], f"{what}: {spec}: {e}"
    return tables, ""


def _table_owner(table: Any) -> int:
    """dict_owner(): the uid owning a file-based table (0 otherwise)."""
    path = getattr(table, "path", None)
    if path is None and getattr(table, "type", "") in FILE_TABLE_TYPES:
        path = getattr(table, "name", None)
    if not path:
        return 0
    try:
        return os.stat(path).st_uid
    except OSError:
        return 0


def _getpwnam(name: str) -> Any:
    try:
        return pwd.getpwnam(name)
    except (KeyError, UnicodeEncodeError, ValueError):
        return None


# ------------------------------------------------------------------ state

@dataclass(frozen=True)
class UsrAttr:
    uid: int = 0
    gid: int = 0
    home: str | None = None
    logname: str | None = None
    shell: str | None = None

    @classmethod
    def of(cls, pw: Any) -> UsrAttr:
        return cls(pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_name, pw.pw_shell)


@dataclass(frozen=True)
class MsgAttr:
    """DELIVER_ATTR: passed by value, replaced at each level."""
    level: int = 0
    sender: str = ""
    address: str = ""            # rcpt.address
    orig: str = ""               # rcpt.orig_addr
    dsn_orcpt: str = ""
    dsn_notify: str = ""
    local: str = ""
    domain: str | None = None
    user: str = ""
    extension: str | None = None
    unmatched: str | None = None
    owner: str | None = None
    delivered: str | None = None
    exp_type: int = 0
    exp_from: str | None = None

    def up(self, **kw) -> MsgAttr:
        return dataclasses.replace(self, **kw)


@dataclass
class Event:
    address: str
    orig: str
    status: str                  # sent, bounced, deferred
    dsn: str
    text: str
    relay: str = ""


class Delivery:
    """The delivery of one request recipient (Postfix's LOCAL_STATE minus
    the per-level attributes)."""

    def __init__(self, agent: LocalAgent, top: Any):
        self.a = agent
        self.s = agent.s
        self.top = top
        self.dup: set[str] = set()
        self.events: list[Event] = []
        # forward groups: (delivered, sender) -> list of (address, orig, dsn_orcpt, notify)
        self.forwards: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}

    # -- bookkeeping --------------------------------------------------------
    def been_here(self, key: str) -> bool:
        key = key.lower()
        if key in self.dup:
            return True
        if self.s.dup_limit <= 0 or len(self.dup) < self.s.dup_limit:
            self.dup.add(key)
        return False

    def been_here_check(self, key: str) -> bool:
        return key.lower() in self.dup

    def _event(self, attr: MsgAttr, status: str, dsn: str, text: str, relay: str = "") -> None:
        self.events.append(Event(attr.address, attr.orig, status, dsn, text,
                                 relay or self.a.relay))

    def sent(self, attr: MsgAttr, dsn: str, text: str) -> int:
        self._event(attr, "sent", dsn, text)
        return 0

    def bounce(self, attr: MsgAttr, dsn: str, text: str) -> int:
        if dsn[:1] != "5":
            if dsn[:1] == "4":
                return self.defer(attr, dsn, text)
            dsn = "5.0.0"
        self._event(attr, "bounced", dsn, text)
        return 0

    def defer(self, attr: MsgAttr, dsn: str, text: str) -> int:
        if dsn[:1] != "4":
            dsn = "4.0.0"
        self._event(attr, "deferred", dsn, text)
        return 1

    def fail(self, attr: MsgAttr, dsn: str, text: str) -> int:
        """bounce or defer by the DSN class (also bounce_workaround)."""
        if dsn.startswith("4"):
            return self.defer(attr, dsn, text)
        return self.bounce(attr, dsn, text)

    # -- deliver_recipient / deliver_switch ----------------------------------
    async def recipient(self, attr: MsgAttr, usr: UsrAttr) -> int:
        attr = attr.up(level=attr.level + 1)
        if attr.level > 2 * RECURSION_LIMIT:      # a safety net; Postfix 3.7 has none here
            log.warning(f"recipient nesting limit exceeded for {attr.address}")
            return self.bounce(attr, "5.4.6", "recipient nesting limit exceeded")
        if self.been_here(f"recipient {attr.level} {attr.address}"):
            return 0
        if self.a.loop_found(attr.address):
            return self.fail(attr, "5.4.6", f"mail forwarding loop for {attr.address}")
        if attr.delivered is None:
            attr = attr.up(delivered=attr.address)
        local = attr.address.lower()
        domain: str | None = None
        at = local.rfind("@")
        if at >= 0:
            local, domain = local[:at], local[at + 1:]
        else:
            log.warning(f"no @ in recipient address: {local}")
        user, ext = split_addr(local, self.s.delims, double_bounce=self.s.double_bounce,
                               ownreq=self.s.ownreq)
        if ext is not None and "/" in ext:
            log.warning(f"{self.a.req.queue_id}: address with illegal extension: {local}")
            ext = None
            local = user
        attr = attr.up(local=local, domain=domain, user=user, extension=ext, unmatched=ext)
        if not user:
            return self.bounce(attr, "5.1.3", f'null username in "{attr.address}"')
        return await self.switch(attr, usr)

    async def switch(self, attr: MsgAttr, usr: UsrAttr) -> int:
        attr = attr.up(level=attr.level + 1)
        if attr.address.startswith("\\"):
            attr = attr.up(address=attr.address[1:], local=attr.local[1:], user=attr.user[1:])
            found, status = await self.mailbox(attr, usr)
            if not found:
                status = await self.unknown(attr, usr)
            return status
        attr = attr.up(unmatched=None)
        found, status = await self.alias(attr, usr, attr.local)
        if found:
            return status
        if attr.extension is not None:
            if self.s.prop_alias:
                attr = attr.up(unmatched=attr.extension)
            found, status = await self.alias(attr, usr, attr.user)
            if found:
                return status
            attr = attr.up(unmatched=attr.extension)
        if attr.owner is not None and attr.owner.lower() != attr.user.lower():
            return self.indirect(attr)
        if attr.exp_type == EXP_INCL:
            return self.indirect(attr)
        if self.s.require_home:
            pw = _getpwnam(attr.user)
            if pw is not None:
                res = await self.a.read_as(UsrAttr.of(pw), pw.pw_dir, follow=True,
                                           stat_only=True)
                if not res.get("exists"):
                    return self.defer(attr, "4.3.0", f"cannot access home directory "
                                                     f"{pw.pw_dir}: {res.get('reason', '')}")
        found, status = await self.dotforward(attr, usr)
        if not found:
            found, status = await self.mailbox(attr, usr)
            if not found:
                status = await self.unknown(attr, usr)
        return status

    # -- aliases --------------------------------------------------------------
    async def alias(self, attr: MsgAttr, usr: UsrAttr, name: str) -> tuple[bool, int]:
        attr = attr.up(level=attr.level + 1)
        if attr.exp_from is not None and attr.exp_from.lower() == name.lower():
            return False, 0
        if attr.level > RECURSION_LIMIT:
            log.warning(f"alias database loop for {name}")
            return True, self.bounce(attr, "5.4.6", f"alias database loop for {name}")
        attr = attr.up(exp_from=name)
        tables, err = self.a.alias_tables()
        if err:
            log.warning(err)
            return True, self.defer(attr, "4.3.0", "alias database unavailable")
        for t in tables:
            try:
                value = t.lookup(name)
            except Exception as e:  # noqa: BLE001 - any table failure defers
                log.warning(f"{t.type}:{t.name}: lookup {name}: {e}")
                return True, self.defer(attr, "4.3.0", "alias database unavailable")
            if value is None:
                continue
            attr = attr.up(exp_type=EXP_ALIAS)
            owner_uid = _table_owner(t)
            if owner_uid == 0:
                usr = UsrAttr()
            else:
                try:
                    usr = UsrAttr.of(pwd.getpwuid(owner_uid))
                except KeyError:
                    log.warning(f"cannot find alias database owner for {t.type}:{t.name}")
                    return True, self.defer(attr, "4.3.0", "cannot find alias database owner")
            canon_owner = None
            if self.s.ownreq:
                owner = "owner-" + name
                rhs = self.a.alias_find(owner)
                if rhs is not None:
                    canon_owner = self.a.canon(rhs if self.s.expand_owner_alias else owner)
            if canon_owner is not None:
                attr = attr.up(owner=canon_owner, sender=canon_owner)
            else:
                attr = attr.up(owner=None)
            if not self.s.frozen_delivered:
                attr = attr.up(delivered=attr.address)
            if canon_owner is not None:
                attr = attr.up(orig="", dsn_orcpt="")
            count, status = await self.token_string(attr, usr, value)
            if count < 1:
                log.warning(f"no recipient in alias lookup result for {name}")
                return True, self.defer(attr, "4.3.0", "alias database unavailable")
            return True, status
        return False, 0

    # -- tokens ---------------------------------------------------------------
    async def token_string(self, attr: MsgAttr, usr: UsrAttr, text: str) -> tuple[int, int]:
        from postier import tok822
        count, status = 0, 0
        tree = tok822.parse(text)
        for node in tok822.grep_addrs(tree):
            count += 1
            status |= await self.token(attr, usr, node)
        return count, status

    async def token_stream(self, attr: MsgAttr, usr: UsrAttr, text: str) -> tuple[int, int]:
        count, status = 0, 0
        limit = max(self.s.line_limit, 1)
        for line in text.splitlines():
            for i in range(0, max(len(line), 1), limit):
                piece = line[i:i + limit]
                if piece.startswith("#"):
                    continue
                n, status = await self.token_string(attr, usr, piece)
                count += n
                if status:
                    return count, status
        return count, status

    async def token(self, attr: MsgAttr, usr: UsrAttr, node: Any) -> int:
        from postier import tok822
        addr = tok822.internalize(node.head)
        if addr.startswith("/"):
            return await self.file(attr, usr, addr)
        if addr.startswith("~"):
            if addr[1:2] != "/":
                log.warning(f"bad home directory syntax for: {addr}")
                return self.bounce(attr, "5.3.5", "mail system configuration error")
            if usr.home is None:
                log.warning(f"unknown home directory for: {addr}")
                return self.bounce(attr, "5.3.5", "mail system configuration error")
            if usr.home == "/":
                return await self.file(attr, usr, addr[1:])
            return await self.file(attr, usr, usr.home + addr[1:])
        if addr.startswith("|"):
            if not self.s.cmd_mask & attr.exp_type:
                return self.fail(attr, "5.7.1", "mail to command is restricted")
            return await self.command(attr, usr, addr[1:])
        if addr[:9].lower() == ":include:":
            return await self.include(attr, usr, addr[9:])
        return await self.resolve_tree(attr, usr, node)

    async def resolve_addr(self, attr: MsgAttr, usr: UsrAttr, addr: str) -> int:
        from postier import tok822
        return await self.resolve_tree(attr, usr, tok822.scan_addr(addr))

    async def resolve_tree(self, attr: MsgAttr, usr: UsrAttr, node: Any) -> int:
        from postier import tok822
        from postier.cleanup import LOCAL
        attr = attr.up(level=attr.level + 1)
        try:
            self.s.rewriter().rewrite_tokens(LOCAL, node)
            address = tok822.internalize(node.head)
            route = self.s.resolver().resolve(address, attr.sender)
        except Exception as e:  # noqa: BLE001 - table trouble in the resolver
            log.warning(f"address resolver failure for {attr.address}: {e}")
            return self.defer(attr, "4.3.0", "address resolver failure")
        if route.fail:
            return self.defer(attr, "4.3.0", "address resolver failure")
        if route.error:
            return self.bounce(attr, "5.1.3", f"bad recipient address syntax: {route.recipient}")
        recipient = route.recipient
        if attr.unmatched:
            delim = self.s.delims[:1]
            at = recipient.rfind("@")
            if at < 0:
                recipient = recipient + delim + attr.unmatched
            else:
                recipient = recipient[:at] + delim + attr.unmatched + recipient[at:]
        attr = attr.up(address=recipient)
        if route.transport == self.a.relay:
            return await self.recipient(attr, usr)
        return self.indirect(attr)

    def indirect(self, attr: MsgAttr) -> int:
        if self.been_here(f"indirect {attr.address}"):
            return 0
        key = (attr.delivered or attr.address, attr.sender)
        self.forwards.setdefault(key, []).append(
            (attr.address, attr.orig, attr.dsn_orcpt, attr.dsn_notify))
        return 0

    # -- .forward ---------------------------------------------------------------
    async def dotforward(self, attr: MsgAttr, usr: UsrAttr) -> tuple[bool, int]:
        attr = attr.up(level=attr.level + 1)
        if not self.s.forward_path.strip():
            return False, 0
        pw = _getpwnam(attr.user)
        if pw is None:
            return False, 0
        if not self.s.frozen_delivered:
            attr = attr.up(delivered=attr.address)
        usr = UsrAttr.of(pw)
        attr = attr.up(exp_type=EXP_FWD, owner=attr.user)
        paths: list[tuple[str, bool]] = []
        for lhs in self.s.forward_path.replace(",", " ").split():
            try:
                path, undef, used = self.a.local_expand(lhs, attr, usr, self.s.fwd_filter)
            except ExpandError:
                continue
            if undef:
                continue
            paths.append((path, "extension" in used))
        if not paths:
            return False, 0
        res = await self.a.read_as(usr, [p for p, _ in paths], follow=False)
        if not res.get("exists"):
            return False, 0
        path = res["path"]
        matched = dict(paths).get(path, False)
        if matched or not self.s.prop_forward:
            attr = attr.up(unmatched=None)
        found, status = False, 0
        if not self.been_here(f"forward {path}"):
            attr = attr.up(exp_from=attr.local)
            mode = int(res.get("mode", 0))
            uid = int(res.get("uid", -1))
            if not stat.S_ISREG(mode):
                log.warning(f"file {path} is not a regular file")
            elif uid != 0 and uid != usr.uid:
                log.warning(f"file {path} has bad owner uid {uid}")
            elif mode & 0o002:
                log.warning(f"file {path} is world writable")
            elif "text" not in res:
                log.warning(f"cannot open file {path}: {res.get('open_error', '')}")
            else:
                count, status = await self.token_stream(attr, usr, res["text"])
                if count > 0:
                    found = True
                    self.been_here(f"forward-done {path}")
        elif self.been_here_check(f"forward-done {path}"):
            found = True
        return found, status

    # -- :include: --------------------------------------------------------------
    async def include(self, attr: MsgAttr, usr: UsrAttr, path: str) -> int:
        attr = attr.up(level=attr.level + 1)
        if self.been_here(f"include {usr.uid} {path}"):
            return 0
        attr = attr.up(exp_from=attr.local)
        if not path.startswith("/"):
            log.warning(f":include:{path} uses a relative path")
            return self.bounce(attr, "5.3.5", "mail system configuration error")
        res = await self.a.read_as(usr, path, follow=True)
        if not res.get("exists"):
            log.warning(f"unable to lookup :include: file {path}: {res.get('reason', '')}")
            return self.bounce(attr, "5.3.5", "mail system configuration error")
        mode = int(res.get("mode", 0))
        if not stat.S_ISREG(mode):
            log.warning(f":include: file {path} is not a regular file")
            return self.bounce(attr, "5.3.5", "mail system configuration error")
        if mode & stat.S_IWOTH:
            log.warning(f":include: file {path} is world writable")
            return self.bounce(attr, "5.3.5", "mail system configuration error")
        attr = attr.up(exp_type=EXP_INCL)
        if usr.uid == 0:
            fuid = int(res.get("uid", 0))
            try:
                fpw = pwd.getpwuid(fuid)
            except KeyError:
                log.warning(f"cannot find username for uid {fuid}")
                log.warning(f"{path}: cannot find :include: file owner username")
                return self.defer(attr, "4.3.5", "mail system configuration error")
            if fpw.pw_uid != 0:
                usr = UsrAttr.of(fpw)
                res = await self.a.read_as(usr, path, follow=True)
        if attr.owner is None:
            attr = attr.up(owner=attr.address)
        if "text" not in res:
            log.warning(f"cannot open include file {path}: {res.get('open_error', '')}")
            return self.bounce(attr, "5.3.5", "mail system configuration error")
        if not self.s.prop_include:
            attr = attr.up(unmatched=None)
        _count, status = await self.token_stream(attr, usr, res["text"])
        return status

    # -- mailbox ----------------------------------------------------------------
    async def mailbox(self, attr: MsgAttr, usr: UsrAttr) -> tuple[bool, int]:
        attr = attr.up(level=attr.level + 1)
        if self.been_here(f"mailbox {attr.local}"):
            return True, 0
        if self.s.mailbox_transport_maps:
            tables, err = _open_tables(self.s.mailbox_transport_maps, "mailbox_transport_maps")
            if err:
                log.warning(err)
                return True, self.defer(attr, "4.3.0", "table lookup failure")
            for t in tables:
                v = t.lookup(attr.user)
                if v is not None:
                    return True, await self.a.deliver_pass(self, attr, v)
        if self.s.mailbox_transport:
            return True, await self.a.deliver_pass(self, attr, self.s.mailbox_transport)
        pw = _getpwnam(attr.user)
        if pw is None:
            return False, 0
        usr = UsrAttr.of(pw)
        if self.s.mailbox_command_maps:
            tables, err = _open_tables(self.s.mailbox_command_maps, "mailbox_command_maps")
            if err:
                log.warning(err)
                return True, self.defer(attr, "4.3.0", "table lookup failure")
            for t in tables:
                v = t.lookup(attr.user)
                if v is not None:
                    return True, await self.command(attr, usr, v)
        if self.s.mailbox_command:
            return True, await self.command(attr, usr, self.s.mailbox_command)
        if self.s.home_mailbox.endswith("/"):
            return True, await self.maildir(attr, usr, f"{usr.home}/{self.s.home_mailbox}")
        if self.s.spool.endswith("/"):
            return True, await self.maildir(attr, usr, f"{self.s.spool}{attr.user}/")
        return True, await self.mailbox_file(attr, usr)

    async def mailbox_file(self, attr: MsgAttr, usr: UsrAttr) -> int:
        attr = attr.up(level=attr.level + 1)
        if not self.s.frozen_delivered:
            attr = attr.up(delivered=attr.address)
        if self.s.home_mailbox:
            spool_dir = None
            path = f"{usr.home}/{self.s.home_mailbox}"
        else:
            spool_dir = self.s.spool
            path = f"{spool_dir}/{attr.user}"
        gid = usr.gid
        if spool_dir is not None:
            try:
                st = os.stat(spool_dir)
            except OSError:
                st = None
            if st is not None and not st.st_mode & stat.S_IWOTH:
                if st.st_mode & stat.S_IWGRP:
                    gid = st.st_gid
                else:
                    log.warning(f"mail_spool_directory {spool_dir} is neither group- nor "
                                "world-writable: postier does not create mailboxes as root")
                    return self.defer(attr, "4.3.5", "mail system configuration error")
        flags = mbx.COPY_MBOX if self.s.hdr_file else mbx.COPY_MBOX & ~mbx.COPY_DELIVERED
        data = self.a.copy(attr, flags)
        job = {"op": "mbox", "path": path, "mode": 0o600, "locks": self.s.locks,
               "attempts": self.s.lock_attempts, "delay": self.s.lock_delay,
               "stale": self.s.stale_lock_time, "def_dsn": "5.2.0", "check": "mailbox",
               "owner_uid": usr.uid if self.s.strict_owner else None,
               "size_limit": self.s.mailbox_size_limit}
        try:
            pw = pwd.getpwuid(usr.uid)
            creds = Creds.for_user(pw, gid)
        except KeyError:
            creds = Creds(usr.uid, gid, (gid,))
        if gid not in creds.groups:
            creds = dataclasses.replace(creds, groups=creds.groups + (gid,))
        res = await self.a.job(creds, job, data)
        if res.get("ok"):
            return self.sent(attr, "2.0.0", "delivered to mailbox")
        reason = f"cannot update mailbox {path} for user {attr.user}. {res.get('reason', '')}"
        return self.fail(attr, res.get("dsn") or "5.2.0", reason)

    async def maildir(self, attr: MsgAttr, usr: UsrAttr, path: str) -> int:
        attr = attr.up(level=attr.level + 1)
        if not self.s.frozen_delivered:
            attr = attr.up(delivered=attr.address)
        flags = mbx.COPY_TOFILE | mbx.COPY_RETURN_PATH | mbx.COPY_ORIG_RCPT
        if self.s.hdr_file:
            flags |= mbx.COPY_DELIVERED
        data = self.a.copy(attr, flags)
        job = {"op": "maildir", "path": path, "def_dsn": "5.2.0",
               "hostname": self.a.hostname, "size_limit": self.s.mailbox_size_limit}
        creds = self.a.creds(usr)
        if creds is None:
            return self.defer(attr, "4.3.5", "mail system configuration error")
        res = await self.a.job(creds, job, data)
        if res.get("ok"):
            return self.sent(attr, "2.0.0", "delivered to maildir")
        if res.get("errno") == 13:
            log.warning(f"maildir access problem for UID/GID={creds.uid}/{creds.gid}: "
                        f"{res.get('reason', '')}")
            log.warning("perhaps you need to create the maildirs in advance")
        return self.fail(attr, res.get("dsn") or "5.2.0",
                         f"maildir delivery failed: {res.get('reason', '')}")

    # -- /file/name -------------------------------------------------------------
    async def file(self, attr: MsgAttr, usr: UsrAttr, path: str) -> int:
        attr = attr.up(level=attr.level + 1)
        if self.been_here(f"file {usr.uid} {path}"):
            return 0
        if not self.s.file_mask & attr.exp_type:
            return self.fail(attr, "5.7.1", "mail to file is restricted")
        usr = self.a.default_rights(usr)
        if usr is None:
            return self.defer(attr, "4.3.5", "mail system configuration error")
        if path.endswith("/"):
            return await self.maildir(attr, usr, path)
        flags = mbx.COPY_MBOX if self.s.hdr_file else mbx.COPY_MBOX & ~mbx.COPY_DELIVERED
        data = self.a.copy(attr, flags)
        job = {"op": "mbox", "path": path, "mode": 0o600, "locks": self.s.locks,
               "dotlock_may_fail": True, "attempts": self.s.lock_attempts,
               "delay": self.s.lock_delay, "stale": self.s.stale_lock_time,
               "def_dsn": "5.2.0", "check": "file", "owner_uid": None,
               "size_limit": self.s.mailbox_size_limit}
        creds = self.a.creds(usr)
        if creds is None:
            return self.defer(attr, "4.3.5", "mail system configuration error")
        res = await self.a.job(creds, job, data)
        if res.get("ok"):
            return self.sent(attr, "2.0.0", f"delivered to file: {path}")
        return self.fail(attr, res.get("dsn") or "5.2.0",
                         f"cannot append message to file {path}: {res.get('reason', '')}")

    # -- |command ---------------------------------------------------------------
    async def command(self, attr: MsgAttr, usr: UsrAttr, command: str) -> int:
        attr = attr.up(level=attr.level + 1)
        if self.been_here(f"command {attr.user}:{usr.uid} {command}"):
            return 0
        usr = self.a.default_rights(usr)
        if usr is None:
            return self.defer(attr, "4.3.5", "mail system configuration error")
        flags = mbx.COPY_FROM | mbx.COPY_RETURN_PATH | mbx.COPY_ORIG_RCPT
        if self.s.hdr_command:
            flags |= mbx.COPY_DELIVERED
        data = self.a.copy(attr, flags)
        env: dict[str, str] = {}
        if usr.home:
            env["HOME"] = usr.home
        env.update(LOGNAME=attr.user, USER=attr.user, SENDER=attr.sender,
                   RECIPIENT=attr.address, LOCAL=attr.local)
        if usr.shell:
            env["SHELL"] = usr.shell
        if attr.domain:
            env["DOMAIN"] = attr.domain
        if attr.extension:
            env["EXTENSION"] = attr.extension
        if attr.orig:
            env["ORIGINAL_RECIPIENT"] = attr.orig
        ra = self.a.req.attrs or {}
        for name, key in (("CLIENT_HOSTNAME", "client_name"), ("CLIENT_ADDRESS", "client_address"),
                          ("CLIENT_HELO", "helo_name"), ("CLIENT_PROTOCOL", "protocol_name"),
                          ("SASL_METHOD", "sasl_method"), ("SASL_SENDER", "sasl_sender"),
                          ("SASL_USERNAME", "sasl_username")):
            v = ra.get(key) or (ra.get("client_protocol") if key == "protocol_name" else "")
            if v:
                env[name] = v
        filt = self.s.cmd_filter
        env = {k: "".join(c if c in filt else "_" for c in v) for k, v in env.items()}
        cwd = None
        if self.s.exec_directory:
            try:
                cwd, _undef, _used = self.a.local_expand(self.s.exec_directory, attr, usr,
                                                         self.s.exec_filter)
            except ExpandError:
                log.warning(f"bad parameter value syntax for command_execution_directory: "
                            f"{self.s.exec_directory}")
                return self.defer(attr, "4.3.5", "mail system configuration error")
        creds = self.a.creds(usr)
        if creds is None:
            return self.defer(attr, "4.3.5", "mail system configuration error")
        argv, executable = command_argv(command, self.s.local_command_shell)
        res = await run_command(
            creds, argv, stdin=data, env=self.a.environ(env), cwd=cwd or self.a.cwd(),
            time_limit=self.s.command_time_limit, procname="local", executable=executable,
            exec_what="execl" if executable else "execvp")
        for w in res.warnings:
            log.warning(w)
        if res.timed_out:
            log.warning("pipe_command_read: read time limit exceeded")
        verdict, dsn, text = command_status(res, command)
        if verdict == "ok":
            return self.sent(attr, "2.0.0", f"delivered to command: {command}")
        return self.fail(attr, dsn, text)

    # -- unknown users ----------------------------------------------------------
    async def unknown(self, attr: MsgAttr, usr: UsrAttr) -> int:
        attr = attr.up(level=attr.level + 1)
        if self.been_here(f"deliver_unknown {attr.local}"):
            return 0
        if self.s.fallback_maps:
            tables, err = _open_tables(self.s.fallback_maps, "fallback_transport_maps")
            if err:
                log.warning(err)
                return self.defer(attr, "4.3.0", "table lookup failure")
            for t in tables:
                v = t.lookup(attr.user)
                if v is not None:
                    return await self.a.deliver_pass(self, attr, v)
        if self.s.fallback_transport:
            return await self.a.deliver_pass(self, attr, self.s.fallback_transport)
        if self.s.luser_relay:
            attr = attr.up(unmatched=None)
            try:
                target, _u, _used = self.a.local_expand(self.s.luser_relay, attr, usr, None)
            except ExpandError:
                log.warning(f"bad parameter value syntax for luser_relay: {self.s.luser_relay}")
                return self.defer(attr, "4.3.5", "mail system configuration error")
            return await self.resolve_addr(attr, usr, target)
        if attr.user.lower() in (MAIL_ADDR_MAIL_DAEMON.lower(), MAIL_ADDR_POSTMASTER):
            log.warning(f"required alias not found: {attr.user}")
            return self.sent(attr, "2.0.0", "discarded")
        return self.bounce(attr, "5.1.1", f'unknown user: "{attr.user}"')


class LocalAgent:
    """One delivery request."""

    def __init__(self, req: DeliveryRequest, settings: LocalSettings, content: bytes):
        self.req = req
        self.s = settings
        self.content = content
        self.relay = req.transport or "local"
        self.hostname = os.uname().nodename
        self.loop_info = delivered_headers(content)
        self._alias: tuple[list[Any], str] | None = None

    # -- shared helpers --------------------------------------------------------
    def loop_found(self, address: str) -> bool:
        if not self.loop_info:
            return False
        return mbx.quote_local(address).lower() in self.loop_info

    def alias_tables(self) -> tuple[list[Any], str]:
        if self._alias is None:
            self._alias = _open_tables(self.s.alias_specs, "alias_maps")
        return self._alias

    def alias_find(self, name: str) -> str | None:
        tables, err = self.alias_tables()
        for t in tables:
            try:
                v = t.lookup(name)
            except Exception:  # noqa: BLE001
                return None
            if v is not None:
                return v
        return None

    def canon(self, address: str) -> str:
        """canon_addr_internal()."""
        from postier.cleanup import LOCAL
        return self.s.rewriter().rewrite_internal(LOCAL, address)

    def copy(self, attr: MsgAttr, flags: int) -> bytes:
        return mbx.mail_copy(self.content, flags, sender=attr.sender, orig_rcpt=attr.orig,
                             delivered=attr.delivered or attr.address)

    def local_expand(self, pattern: str, attr: MsgAttr, usr: UsrAttr,
                     filt: str | None) -> tuple[str, bool, set[str]]:
        def lookup(name: str) -> str | None:
            if name == "user":
                return attr.user
            if name == "home":
                return usr.home
            if name == "shell":
                return usr.shell
            if name == "domain":
                return attr.domain
            if name in ("local", "mailbox"):
                return attr.local
            if name == "recipient":
                return attr.address
            if name == "extension":
                return attr.extension
            if name == "recipient_delimiter":
                c = attr.local[len(attr.user):len(attr.user) + 1]
                return c or None
            return None
        return mac_expand(pattern, lookup, filt)

    def default_rights(self, usr: UsrAttr) -> UsrAttr | None:
        """Substitute $default_privs for root rights (Postfix: "privileged
        default user id" is a panic)."""
        if usr.uid != 0 and usr.gid != 0:
            return usr
        pw = _getpwnam(self.s.default_privs)
        if pw is None:
            log.warning(f"unknown default_privs user: {self.s.default_privs}")
            return None
        uid = usr.uid or pw.pw_uid
        gid = usr.gid or pw.pw_gid
        if uid == 0 or gid == 0:
            log.error("privileged default user id")
            return None
        return dataclasses.replace(usr, uid=uid, gid=gid)

    def creds(self, usr: UsrAttr) -> Creds | None:
        if usr.uid == 0 or usr.gid == 0:
            return None
        try:
            pw = pwd.getpwuid(usr.uid)
            if pw.pw_gid == usr.gid:
                return Creds.for_user(pw)
            return Creds.for_user(pw, usr.gid)
        except KeyError:
            return Creds(usr.uid, usr.gid, (usr.gid,))

    def cwd(self) -> str | None:
        q = self.s.queue_directory
        return q if q and os.path.isdir(q) else None

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        return clean_environ(export_names(self.s.export_environment, self.s.config_dir), extra)

    async def job(self, creds: Creds, job: dict, data: bytes) -> dict:
        try:
            res = await run_job(creds, job, data)
        except RunAsError as e:
            log.error(str(e))
            return {"ok": False, "dsn": "4.3.5", "reason": "mail system configuration error"}
        for w in res.get("warnings") or []:
            log.warning(w)
        return res

    async def read_as(self, usr: UsrAttr, paths: str | list[str], *, follow: bool,
                      stat_only: bool = False) -> dict:
        """stat/lstat and read the first existing path of `paths` with the
        rights of `usr` (as root, in this process, when usr has none: a
        root-owned alias's :include: file).  The result has "path"."""
        candidates = [paths] if isinstance(paths, str) else list(paths)
        res: dict = {"exists": False, "reason": "No such file or directory"}
        for path in candidates:
            job = {"op": "read", "path": path, "follow": follow, "stat_only": stat_only,
                   "limit": 1 << 24}
            if usr.uid == 0:
                res = mbx.read_file(job, b"")
            else:
                creds = self.creds(usr)
                if creds is None:
                    return {"exists": False, "reason": "no delivery rights"}
                res = await self.job(creds, job, b"")
            if res.get("exists"):
                res["path"] = path
                return res
        return res

    async def deliver_pass(self, d: Delivery, attr: MsgAttr, spec: str) -> int:
        """deliver_pass(): hand the recipient to another transport
        (mailbox_transport, fallback_transport)."""
        transport, _, nexthop = spec.partition(":")
        cfg = self.s.cfg
        svc = next((x for x in getattr(cfg, "services", []) if x.name == transport), None)
        command = svc.command if svc is not None else transport
        agent = AGENTS.get(command)
        if agent is None or not transport or transport == self.relay:
            log.warning(f"unknown mail transport: {spec}")
            return d.defer(attr, "4.3.0", "mail transport unavailable")
        from postier.queue.file import Recipient
        if not nexthop:
            nexthop = attr.domain or self.s.myhostname
        rcpt = Recipient(address=attr.address, orig=attr.orig, dsn_orcpt=attr.dsn_orcpt,
                         dsn_notify=attr.dsn_notify)
        sub = dataclasses.replace(
            self.req, recipients=[rcpt], transport=transport, nexthop=nexthop,
            config=cfg.for_service(svc) if svc is not None and hasattr(cfg, "for_service")
            else cfg)
        try:
            statuses = await agent(sub)
        except Exception as e:  # noqa: BLE001 - the other agent failed
            log.warning(f"{transport}: {e}")
            return d.defer(attr, "4.3.0", "mail transport unavailable")
        rc = 0
        for st in statuses:
            d._event(attr, st.status, st.dsn, st.text, st.relay)
            if st.status == "deferred":
                rc = 1
        return rc

    # -- forwarding -------------------------------------------------------------
    async def forward_finish(self, d: Delivery, top: MsgAttr) -> int:
        status = 0
        for (delivered, sender), rcpts in d.forwards.items():
            try:
                qid = await self.forward_send(delivered, sender, rcpts)
            except Exception as e:  # noqa: BLE001 - the new queue file could not be written
                log.warning(f"{self.req.queue_id}: cannot forward message: {e}")
                d.defer(top, "4.3.0", "unable to forward message")
                status = 1
                continue
            d.sent(top, "2.0.0", f"forwarded as {qid}")
        return status

    def forward_recipients(self, rcpts: list[tuple[str, str, str, str]], qid: str) -> list[Any]:
        from postier.queue.file import Recipient
        out: list[Any] = []
        seen: set[tuple[str, str]] = set()
        self.s.rewriter()
        virtual = self.s._virtual
        for address, orig, orcpt, notify in rcpts:
            targets = [address]
            if virtual:
                targets = self.s.rewriter().virtual(address, qid)
            for t in targets:
                if (t.lower(), orig) in seen:
                    continue
                seen.add((t.lower(), orig))
                out.append(Recipient(address=t, orig=orig, dsn_orcpt=orcpt, dsn_notify=notify))
        return out

    async def forward_send(self, delivered: str, sender: str,
                           rcpts: list[tuple[str, str, str, str]]) -> str:
        a = self.req.attrs or {}
        now = time.time()
        msg = ForwardMessage(sender=sender, recipients=[], original=self.content,
                             myhostname=self.s.myhostname, mail_name=self.s.mail_name,
                             delivered=delivered if self.s.hdr_forward else "", when=now,
                             attrs=dict(a))
        if FORWARD_SUBMIT is not None:
            msg.recipients = self.forward_recipients(rcpts, self.req.queue_id)
            return await FORWARD_SUBMIT(msg)
        from postier.queue.file import Envelope, QueueWriter
        incoming = os.path.join(self.s.queue_directory, "incoming")
        loop = asyncio.get_running_loop()
        w = await loop.run_in_executor(None, QueueWriter, incoming)
        try:
            w.write(msg.render(w.queue_id))
            env = Envelope(queue_id=w.queue_id, arrival=now, sender=sender,
                           recipients=self.forward_recipients(rcpts, w.queue_id),
                           dsn_envid=self.req.dsn_envid if not sender.lower().startswith("owner-")
                           else "", dsn_ret=self.req.dsn_ret,
                           body_type=self.req.body_type, smtputf8=self.req.smtputf8,
                           client_address=a.get("client_address", ""),
                           client_name=a.get("client_name", ""),
                           helo_name=a.get("helo_name", ""),
                           protocol_name=a.get("protocol_name", a.get("client_protocol", "")),
                           rewrite_context=a.get("rewrite_context", "local") or "local")
            await loop.run_in_executor(None, w.commit, env)
        except BaseException:
            w.abort()
            raise
        qid = w.queue_id
        if FORWARD_NOTIFY is not None:
            FORWARD_NOTIFY(qid)
        else:
            from postier.qmgr.control import qmgr_trigger
            try:
                await loop.run_in_executor(None, qmgr_trigger, self.s.queue_directory, "I")
            except Exception:  # noqa: BLE001 - best effort: the next scan finds it
                pass
        return qid

    # -- one recipient ----------------------------------------------------------
    async def deliver_one(self, rcpt: Any) -> LocalStatus:
        d = Delivery(self, rcpt)
        top = MsgAttr(sender=self.req.sender, address=rcpt.address, orig=rcpt.orig or "",
                      dsn_orcpt=getattr(rcpt, "dsn_orcpt", ""),
                      dsn_notify=getattr(rcpt, "dsn_notify", ""))
        if self.s.config_error:
            log.error(self.s.config_error)
            d.defer(top, "4.3.5", "mail system configuration error")
            status = 1
        else:
            try:
                status = await d.recipient(top, UsrAttr())
            except RunAsError as e:
                log.error(str(e))
                status = d.defer(top, "4.3.5", "mail system configuration error")
        if status == 0 and d.forwards:
            await self.forward_finish(d, top)
        elif d.forwards:
            pass    # Postfix cancels the forwarding when the recipient is retried
        return aggregate(rcpt, d.events, self.relay)


def aggregate(rcpt: Any, events: list[Event], relay: str) -> LocalStatus:
    """The request recipient's status from its delivery events."""
    from postier.queue.file import Recipient
    if not events:
        # every expansion was a duplicate: nothing left to do
        return LocalStatus(rcpt, "sent", "2.0.0", "delivered", relay)
    pick = (next((e for e in events if e.status == "deferred"), None)
            or next((e for e in events if e.status == "bounced"), None)
            or events[-1])
    st = LocalStatus(rcpt, pick.status, pick.dsn, pick.text, pick.relay or relay)
    single = (len(events) == 1 and events[0].address == rcpt.address
              and events[0].orig == (rcpt.orig or ""))
    if not single:
        st.events = [RecipientStatus(Recipient(address=e.address, orig=e.orig), e.status,
                                     e.dsn, e.text, e.relay or relay) for e in events]
    return st


def delivered_headers(content: bytes) -> set[str]:
    """delivered_init(): the lower-cased Delivered-To: addresses of the
    message header."""
    out: set[str] = set()
    for raw in content.split(b"\n"):
        if not raw:
            break
        if raw[:1] in (b" ", b"\t"):
            continue
        colon = raw.find(b":")
        if colon <= 0:
            break
        name = raw[:colon].rstrip(b" \t")
        if any(c <= 32 or c >= 127 for c in name):
            break
        if name.lower() == b"delivered-to":
            out.add(raw[colon + 1:].strip(b" \t\r").decode("utf-8", "surrogateescape").lower())
    return out


async def read_request_content(req: DeliveryRequest) -> bytes:
    def read() -> bytes:
        with open(req.queue_path, "rb") as f:
            f.seek(req.content_offset)
            return f.read(req.content_size)
    return await asyncio.get_running_loop().run_in_executor(None, read)


async def deliver_recipients(
        req: DeliveryRequest, agent: str, settings_for: Callable[[Any], Any],
        deliverer: Callable[[Any, bytes], Callable[[Any], Awaitable[RecipientStatus]]],
) -> list[RecipientStatus]:
    """The frame of the local and virtual agents: the settings (a
    ConfigError defers every recipient), the message content (a read error
    defers every recipient), then `deliverer(settings, content)(rcpt)` for
    each recipient; a bug defers that recipient (`AGENT delivery software
    error`)."""
    transport = req.transport or agent
    try:
        settings = settings_for(req.config)
    except ConfigError as e:
        log.error(str(e))
        return [RecipientStatus(r, "deferred", "4.3.5", "mail system configuration error",
                                transport) for r in req.recipients]
    try:
        content = await read_request_content(req)
    except OSError as e:
        log.warning(f"{req.queue_id}: cannot read queue file {req.queue_path}: {e.strerror}")
        return [RecipientStatus(r, "deferred", "4.3.0", "queue file read error",
                                transport) for r in req.recipients]
    deliver = deliverer(settings, content)
    out: list[RecipientStatus] = []
    for r in req.recipients:
        try:
            out.append(await deliver(r))
        except Exception as e:  # noqa: BLE001 - never lose the recipient to a bug
            log.error(f"{req.queue_id}: {agent} delivery to {r.address} failed: "
                      f"{type(e).__name__}: {e}")
            out.append(RecipientStatus(r, "deferred", "4.3.0",
                                       f"{agent} delivery software error", transport))
    return out


@register("local")
async def local_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """Deliver every recipient of `req` locally (see the module docstring)."""
    return await deliver_recipients(
        req, "local", settings_for,
        lambda settings, content: LocalAgent(req, settings, content).deliver_one)
