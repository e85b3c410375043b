"""The pipe delivery agent: Postfix's pipe(8).

    # master.cf
    dump  unix  -  n  n  -  -  pipe
      flags=DRO user=filter argv=/usr/local/bin/dump ${sender} ${recipient}

    statuses = await AGENTS["pipe"](request)      # request.transport = "dump"

The service's attributes come from its master.cf entry (request.transport
names it): `flags=BDFORXhqu.>`, `user=NAME[:GROUP]` (required; root, the
$mail_owner account and its group, and the $setgid_group group are
refused), `directory=`, `eol=` (C escapes), `null_sender=` (default
MAILER-DAEMON), `size=`, and `argv=` (the last attribute).  Every argv
element is macro-expanded as pipe(8) does: `${sender}`, `${nexthop}`,
`${size}`, `${client_address}`, `${client_helo}`, `${client_hostname}`,
`${client_port}`, `${client_protocol}`, `${sasl_method}`,
`${sasl_sender}`, `${sasl_username}` once; an element that uses
`${recipient}`, `${original_recipient}`, `${user}`, `${extension}`,
`${mailbox}` or `${domain}` becomes one element per recipient (an empty
${user} drops it).  `q` quotes address local parts, `u`/`h` fold the local
part/domain to lower case.  An unknown macro name is a configuration error
(`unknown macro name: "NAME"`, delivery deferred with `4.3.5 mail system
configuration error`).

The command runs directly (no shell) as the user= account in its own
session (postier.delivery.runas.run_command), with an environment of
PATH=/usr/bin:/bin and the $export_environment variables, the message on
stdin (after the From_/Return-Path:/X-Original-To:/Delivered-To: lines the
F/R/O/D flags ask for, `>From ` quoting with `>`, dot doubling with `.`, a
blank line with `B`, `eol` line ends), and `<service>_time_limit`
($command_time_limit) seconds to finish.

Results, with Postfix's texts (relay=SERVICE):
* exit 0: `status=sent (delivered via SERVICE service)`, dsn 2.0.0;
* output that starts with an enhanced status code: that code and text
  (4.x.x deferred, else bounced);
* a <sysexits.h> code: its text and DSN (`user unknown` 5.1.1 for 67,
  `temporary failure` 4.3.0 for 75 -> deferred, ...), `. Command output: `
  and the output appended when there is some;
* another exit code: `Command died with status N: "ARGV0". Command output:
  ...`, 5.3.0, bounced; a signal: `Command died with signal N: "ARGV0"`;
* time limit: `Command time limit exceeded: "ARGV0"`, 5.3.0;
* `size=` exceeded: `message too large`, 5.2.3; D flag and a recipient
  already in a Delivered-To: header: `mail forwarding loop for ADDR`,
  5.4.6; D or O flag with several recipients: 4.3.5 `mail system
  configuration error` and the warning `pipe flag `D' requires
  SERVICE_destination_recipient_limit = 1`.
Command output is cut at 4096 bytes; tabs and newlines become spaces.

Parameters read: command_time_limit and `<service>_time_limit`,
export_environment, mail_owner, setgid_group, queue_directory,
recipient_delimiter, config_directory (in warnings).
"""

from __future__ import annotations

import codecs
import grp
import os
import pwd
from dataclasses import dataclass
from typing import Any

from postier import log
from postier.delivery import DeliveryRequest, RecipientStatus, register
from postier.delivery import mailbox as mbx
from postier.delivery.local import (
    ExpandError,
    command_status,
    delivered_headers,
    export_names,
    mac_expand,
    read_request_content,
    split_addr,
)
from postier.delivery.runas import Creds, clean_environ, run_command
from postier.errors import ConfigError

__all__ = ["PipeAttr", "parse_attributes", "expand_argv", "pipe_agent"]

FOLD_USER, FOLD_HOST, QUOTE_LOCAL, FINAL_DELIVERY = 1 << 16, 1 << 17, 1 << 18, 1 << 19
FLAG_BITS = {"B": mbx.COPY_BLANK, "D": mbx.COPY_DELIVERED, "F": mbx.COPY_FROM,
             "O": mbx.COPY_ORIG_RCPT, "R": mbx.COPY_RETURN_PATH, "X": FINAL_DELIVERY,
             ".": mbx.COPY_DOT, ">": mbx.COPY_QUOTE, "h": FOLD_HOST, "q": QUOTE_LOCAL,
             "u": FOLD_USER}
RCPT_MACROS = {"recipient", "original_recipient", "user", "extension", "mailbox", "domain"}
OTHER_MACROS = {"nexthop", "sender", "size", "client_address", "client_hostname",
                "client_port", "client_protocol", "client_helo", "sasl_method",
                "sasl_username", "sasl_sender"}


class PipeConfigError(Exception):
    """A master.cf pipe entry that pipe(8) would refuse (msg_fatal)."""


@dataclass
class PipeAttr:
    command: list[str]
    creds: Creds
    flags: int = 0
    exec_dir: str | None = None
    eol: bytes = b"\n"
    null_sender: str = "MAILER-DAEMON"
    size_limit: int = 0


def parse_attributes(args: list[str], cfg: Any = None) -> PipeAttr:
    """get_service_attr(): the master.cf attributes after `pipe`.  Raises
    PipeConfigError with pipe(8)'s fatal texts."""
    user = group = None
    command: list[str] | None = None
    flags = 0
    exec_dir = None
    eol = b"\n"
    null_sender = "MAILER-DAEMON"
    size_limit = 0
    for i, arg in enumerate(args):
        low = arg.lower()
        if low.startswith("flags="):
            for c in arg[6:]:
                if c not in FLAG_BITS:
                    raise PipeConfigError(f"unknown flag: {c} (ignored)")
                flags |= FLAG_BITS[c]
        elif low.startswith("user="):
            user, _, group = arg[5:].partition(":")
            group = group or None
        elif low.startswith("directory="):
            exec_dir = arg[10:]
        elif low.startswith("chroot="):
            raise PipeConfigError("chroot= is not supported by postier's pipe agent")
        elif low.startswith("eol="):
            try:
                eol = codecs.escape_decode(arg[4:].encode())[0]
            except ValueError:
                raise PipeConfigError(f"bad eol= value: {arg[4:]}") from None
        elif low.startswith("null_sender="):
            null_sender = arg[12:]
        elif low.startswith("size="):
            try:
                size_limit = int(arg[5:])
                if size_limit < 0:
                    raise ValueError
            except ValueError:
                raise PipeConfigError(f"get_service_attr: bad size= value: {arg[5:]}") from None
        elif low.startswith("argv="):
            command = [arg[5:]] + list(args[i + 1:])
            break
        else:
            raise PipeConfigError(f"unknown attribute name: {arg}")
    if user is None:
        raise PipeConfigError("missing user= command-line attribute")
    if command is None or not command[0]:
        raise PipeConfigError("missing argv= command-line attribute")
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PipeConfigError(f"get_service_attr: unknown username: {user}") from None
    gid = pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PipeConfigError(f"get_service_attr: unknown group: {group}") from None
    owner = _cfg_text(cfg, "mail_owner", "postfix")
    sgid = _cfg_text(cfg, "setgid_group", "postdrop")
    owner_pw = _getpw(owner)
    sgid_gid = _getgr(sgid)
    if pw.pw_uid == 0:
        raise PipeConfigError("user= command-line attribute specifies root privileges")
    if owner_pw is not None and pw.pw_uid == owner_pw.pw_uid:
        raise PipeConfigError(f"user= command-line attribute specifies mail system owner {owner}")
    if gid == 0:
        raise PipeConfigError("user= command-line attribute specifies privileged group id 0")
    if owner_pw is not None and gid == owner_pw.pw_gid:
        raise PipeConfigError(f"user= command-line attribute specifies mail system owner "
                              f"{owner} group id {gid}")
    if sgid_gid is not None and gid == sgid_gid:
        raise PipeConfigError(f"user= command-line attribute specifies mail system {sgid} "
                              f"group id {gid}")
    return PipeAttr(command=command, creds=Creds.for_user(pw, gid), flags=flags,
                    exec_dir=exec_dir, eol=eol, null_sender=null_sender, size_limit=size_limit)


def _cfg_text(cfg: Any, name: str, default: str) -> str:
    if cfg is None:
        return default
    try:
        v = cfg.get(name)
    except Exception:  # noqa: BLE001
        return default
    return ", ".join(v) if isinstance(v, list) else str(v)


def _getpw(name: str) -> Any:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _getgr(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def morph(address: str, flags: int) -> str:
    """morph_recipient(): quote (q) and fold (u, h) an address."""
    out = mbx.quote_local(address) if flags & QUOTE_LOCAL else address
    return fold(out, flags)


def fold(address: str, flags: int) -> str:
    if not flags & (FOLD_USER | FOLD_HOST):
        return address
    at = address.rfind("@")
    local, dom = (address[:at], address[at:]) if at >= 0 else (address, "")
    if flags & FOLD_USER:
        local = local.lower()
    if flags & FOLD_HOST:
        dom = dom.lower()
    return local + dom


def expand_argv(service: str, argv: list[str], rcpts: list[Any], flags: int,
                values: dict[str, str], delims: str, config_dir: str = "") -> list[str]:
    """expand_argv(): see the module docstring.  Raises PipeConfigError for
    an unknown macro name (after the warning pipe(8) logs)."""
    out: list[str] = []
    for arg in argv:
        try:
            _, _, used = mac_expand(arg, lambda _n: "", None)
        except ExpandError as e:
            log.warning(f"{e}")
            raise PipeConfigError(str(e)) from None
        for name in used:
            if name not in RCPT_MACROS and name not in OTHER_MACROS:
                log.warning(f"file {config_dir}/master.cf: service {service}: "
                            f'unknown macro name: "{name}"')
                raise PipeConfigError(f'unknown macro name: "{name}"')
        if not used & RCPT_MACROS:
            out.append(mac_expand(arg, values.get, None)[0])
            continue
        fold_only = flags & (FOLD_USER | FOLD_HOST)
        for r in rcpts:
            table = dict(values)
            table["recipient"] = morph(r.address, flags)
            table["original_recipient"] = morph(r.orig or "", flags)
            bare = fold(r.address, fold_only)
            at = bare.rfind("@")
            if at < 0:
                log.warning(f"no @ in recipient address: {r.address}")
                local_part, domain = bare, ""
            else:
                local_part, domain = bare[:at], bare[at + 1:]
            user, ext = split_addr(local_part, delims) if delims else (local_part, None)
            if "user" in used and not user:
                continue
            table["user"] = user
            table["extension"] = ext or ""
            table["mailbox"] = local_part
            table["domain"] = domain
            out.append(mac_expand(arg, table.get, None)[0])
    return out


def _service(cfg: Any, name: str) -> Any:
    for svc in getattr(cfg, "services", []) or []:
        if svc.name == name and svc.command == "pipe":
            return svc
    return None


def _time_limit(cfg: Any, service: str) -> int:
    for name in (f"{service}_time_limit", "command_time_limit"):
        try:
            return int(cfg.get_time(name))
        except Exception:  # noqa: BLE001 - not registered for this service
            continue
    return 1000


@register("pipe")
async def pipe_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """Deliver `req` through the external command of its master.cf service."""
    service = req.transport or "pipe"
    cfg = req.config
    rcpts = list(req.recipients)

    def all_(status: str, dsn: str, text: str) -> list[RecipientStatus]:
        return [RecipientStatus(r, status, dsn, text, service) for r in rcpts]

    def config_error(why: str) -> list[RecipientStatus]:
        log.error(f"{service}: {why}")
        return all_("deferred", "4.3.5", "mail system configuration error")

    try:
        svc = _service(cfg, service)
        if svc is None:
            return config_error(f"no master.cf pipe service named {service}")
        attr = parse_attributes(svc.command_args(), cfg)
        export = export_names(cfg.get_list("export_environment") if cfg is not None else [],
                              getattr(cfg, "config_dir", ""))
        time_limit = _time_limit(cfg, service)
    except (PipeConfigError, ConfigError) as e:
        return config_error(str(e))
    if attr.flags & mbx.COPY_DELIVERED and len(rcpts) > 1:
        log.warning(f"pipe flag `D' requires {service}_destination_recipient_limit = 1")
        return all_("deferred", "4.3.5", "mail system configuration error")
    if attr.flags & mbx.COPY_ORIG_RCPT and len(rcpts) > 1:
        log.warning(f"pipe flag `O' requires {service}_destination_recipient_limit = 1")
        return all_("deferred", "4.3.5", "mail system configuration error")
    if attr.size_limit and req.content_size > attr.size_limit:
        return all_("bounced", "5.2.3", "message too large")
    try:
        content = await read_request_content(req)
    except OSError as e:
        log.warning(f"{req.queue_id}: cannot read queue file {req.queue_path}: {e.strerror}")
        return all_("deferred", "4.3.0", "queue file read error")
    if attr.flags & mbx.COPY_DELIVERED:
        seen = delivered_headers(content)
        if mbx.quote_local(rcpts[0].address).lower() in seen:
            return all_("bounced", "5.4.6", f"mail forwarding loop for {rcpts[0].address}")
    sender = req.sender or attr.null_sender
    a = req.attrs or {}
    values = {
        "sender": mbx.quote_local(sender) if sender and attr.flags & QUOTE_LOCAL else sender,
        "nexthop": req.nexthop.lower() if attr.flags & FOLD_HOST else req.nexthop,
        "size": str(req.content_size),
        "client_address": a.get("client_address", ""),
        "client_helo": a.get("helo_name", ""),
        "client_hostname": a.get("client_name", ""),
        "client_port": a.get("client_port", ""),
        "client_protocol": a.get("protocol_name", a.get("client_protocol", "")),
        "sasl_method": a.get("sasl_method", ""),
        "sasl_username": a.get("sasl_username", ""),
        "sasl_sender": a.get("sasl_sender", ""),
    }
    delims = _cfg_text(cfg, "recipient_delimiter", "")
    config_dir = getattr(cfg, "config_dir", "") or ""
    try:
        argv = expand_argv(service, attr.command, rcpts, attr.flags, values, delims, config_dir)
    except PipeConfigError:
        return all_("deferred", "4.3.5", "mail system configuration error")
    copy_flags = attr.flags & 0xFFFF
    data = mbx.mail_copy(content, copy_flags, sender=sender, orig_rcpt=rcpts[0].orig or "",
                         delivered=rcpts[0].address, eol=attr.eol)
    qdir = _cfg_text(cfg, "queue_directory", "")
    cwd = attr.exec_dir or (qdir if qdir and os.path.isdir(qdir) else None)
    res = await run_command(attr.creds, argv, stdin=data, env=clean_environ(export, {}),
                            cwd=cwd, time_limit=time_limit, procname="pipe",
                            exec_what="pipe_command: execvp")
    for w in res.warnings:
        log.warning(w)
    if res.timed_out:
        log.warning("pipe_command_read: read time limit exceeded")
    verdict, dsn, text = command_status(res, argv[0])
    if verdict == "ok":
        return all_("sent", "2.0.0", f"delivered via {service} service")
    if dsn.startswith("4"):
        return all_("deferred", dsn, text)
    return all_("bounced", dsn, text)
