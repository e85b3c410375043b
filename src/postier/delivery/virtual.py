"""The virtual delivery agent: Postfix's virtual(8).

    statuses = await AGENTS["virtual"](request)     # master.cf command "virtual"

For each recipient (the whole address, folded to lower case, is the lookup
key; tables are searched as mail_addr_find() does: the address, the address
without its $recipient_delimiter extension, then `@domain` for non-regexp
tables):

* $virtual_mailbox_maps gives the mailbox path below $virtual_mailbox_base
  (which must be absolute); a result ending in `/` is a Maildir
  (`delivered to maildir`), else an mbox file (`delivered to mailbox`,
  locked with $virtual_mailbox_lock); not found: `5.1.1 unknown user:
  "ADDRESS"`, bounced;
* $virtual_uid_maps / $virtual_gid_maps (`static:5000` or tables) give the
  owner; a missing entry (`recipient ADDR: not found in virtual_uid_maps`),
  a uid below $virtual_minimum_uid (`recipient ADDR: bad uid N in
  virtual_uid_maps`) or a gid <= 0 is logged and the mail deferred with
  `4.3.5 mail system configuration error`;
* the write happens in a child running with exactly that uid and gid
  (postier.delivery.runas), with RLIMIT_FSIZE = $virtual_mailbox_limit;
  Maildir directories are created 0700 when missing; the mbox must be a
  regular file (`4.3.5`/`5.3.5 mail system configuration error` with a
  warning) owned by that uid when $strict_mailbox_ownership is on
  (`4.2.0 destination PATH is not owned by recipient`); failures read
  `delivery failed to mailbox PATH: REASON` / `maildir delivery failed:
  REASON` (4.x.x deferred, else bounced).

Headers added: mbox as local(8) (From_, Return-Path:, X-Original-To:,
Delivered-To:, `>From ` quoting, a blank line); Maildir: Return-Path:,
X-Original-To:, Delivered-To:.  relay=virtual (the service name).

Parameters read: virtual_mailbox_maps, virtual_mailbox_base,
virtual_uid_maps, virtual_gid_maps, virtual_minimum_uid,
virtual_mailbox_limit, virtual_mailbox_lock, message_size_limit,
strict_mailbox_ownership, recipient_delimiter, deliver_lock_attempts,
deliver_lock_delay, stale_lock_time.
"""

from __future__ import annotations

import os
from typing import Any

from postier import log
from postier.delivery import DeliveryRequest, RecipientStatus, register
from postier.delivery import mailbox as mbx
from postier.delivery.local import deliver_recipients, split_addr
from postier.delivery.runas import Creds, RunAsError, run_job

__all__ = ["mail_addr_find", "virtual_agent"]


class TableTrouble(Exception):
    pass


def mail_addr_find(tables: list[Any], address: str, delims: str) -> str | None:
    """mail_addr_find() without extension propagation.  Raises TableTrouble."""
    from postier.maps.access import is_pattern_table

    def find(key: str, partial: bool) -> str | None:
        for t in tables:
            if partial and is_pattern_table(t):
                continue
            try:
                v = t.lookup(key)
            except Exception as e:  # noqa: BLE001 - table failure
                raise TableTrouble(f"{t.type}:{t.name}: {e}") from None
            if v is not None:
                return v
        return None

    v = find(address, False)
    if v is not None:
        return v
    at = address.rfind("@")
    local, domain = (address[:at], address[at:]) if at >= 0 else (address, "")
    if delims:
        user, ext = split_addr(local, delims)
        if ext is not None:
            v = find(user + domain, True)
            if v is not None:
                return v
    if domain:
        return find(domain, True)
    return None


class VirtualSettings:
    def __init__(self, cfg: Any):
        from postier.maps import open_map
        self.cfg = cfg
        self.error = ""

        def tables(name: str) -> list[Any]:
            out = []
            for spec in cfg.get_list(name):
                if not spec:
                    continue
                if spec.startswith("proxy:"):
                    spec = spec[len("proxy:"):]
                try:
                    out.append(open_map(spec, fold=True))
                except Exception as e:  # noqa: BLE001 - reported per delivery
                    self.error = f"{name}: {spec}: {e}"
            return out

        self.mailbox_maps = tables("virtual_mailbox_maps")
        self.uid_maps = tables("virtual_uid_maps")
        self.gid_maps = tables("virtual_gid_maps")
        self.base = cfg.get_str("virtual_mailbox_base")
        self.min_uid = cfg.get_int("virtual_minimum_uid")
        self.limit = cfg.get_size("virtual_mailbox_limit")
        self.message_limit = cfg.get_size("message_size_limit")
        self.strict_owner = cfg.get_bool("strict_mailbox_ownership")
        self.delims = cfg.get_str("recipient_delimiter")
        self.lock_attempts = cfg.get_int("deliver_lock_attempts")
        self.lock_delay = cfg.get_time("deliver_lock_delay")
        self.stale = cfg.get_time("stale_lock_time")
        try:
            self.locks = mbx.lock_styles(cfg.get_list("virtual_mailbox_lock"),
                                         "virtual_mailbox_lock")
        except ValueError as e:
            self.locks = [mbx.LOCK_FCNTL]
            self.error = str(e)
        if not self.base.startswith("/"):
            self.error = f"do not specify relative pathname: virtual_mailbox_base = {self.base}"
        if self.limit:
            if not self.message_limit:
                self.error = ("configuration error: virtual_mailbox_limit is limited but "
                              "message_size_limit is unlimited")
            elif self.limit < self.message_limit:
                self.error = ("configuration error: virtual_mailbox_limit is smaller than "
                              "message_size_limit")


_SETTINGS: dict[int, tuple[Any, VirtualSettings]] = {}


def settings_for(cfg: Any) -> VirtualSettings:
    hit = _SETTINGS.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    s = VirtualSettings(cfg)
    if len(_SETTINGS) > 64:
        _SETTINGS.clear()
    _SETTINGS[id(cfg)] = (cfg, s)
    return s


async def deliver_one(s: VirtualSettings, req: DeliveryRequest, rcpt: Any,
                      content: bytes) -> RecipientStatus:
    relay = req.transport or "virtual"

    def status(st: str, dsn: str, text: str) -> RecipientStatus:
        if st == "failed":
            st = "deferred" if dsn.startswith("4") else "bounced"
        return RecipientStatus(rcpt, st, dsn, text, relay)

    def config_error() -> RecipientStatus:
        return status("deferred", "4.3.5", "mail system configuration error")

    if s.error:
        log.error(s.error)
        return config_error()
    user = rcpt.address.lower()
    try:
        res = mail_addr_find(s.mailbox_maps, user, s.delims)
    except TableTrouble as e:
        log.warning(f"table virtual_mailbox_maps: lookup {user}: {e}")
        return config_error()
    if res is None:
        return status("bounced", "5.1.1", f'unknown user: "{user}"')
    mailbox = f"{s.base}/{res}"
    ids = []
    for maps, title, minimum in ((s.uid_maps, "virtual_uid_maps", s.min_uid),
                                 (s.gid_maps, "virtual_gid_maps", 1)):
        try:
            v = mail_addr_find(maps, user, s.delims)
        except TableTrouble as e:
            log.warning(f"table {title}: lookup {user}: {e}")
            return config_error()
        if v is None:
            log.warning(f"recipient {user}: not found in {title}")
            return config_error()
        try:
            n = int(v.strip())
        except ValueError:
            n = 0
        if n < minimum:
            what = "uid" if title == "virtual_uid_maps" else "gid"
            log.warning(f"recipient {user}: bad {what} {v} in {title}")
            return config_error()
        ids.append(n)
    uid, gid = ids
    creds = Creds(uid, gid, (gid,))
    if mailbox.endswith("/"):
        data = mbx.mail_copy(content, mbx.COPY_TOFILE | mbx.COPY_RETURN_PATH
                             | mbx.COPY_DELIVERED | mbx.COPY_ORIG_RCPT,
                             sender=req.sender, orig_rcpt=rcpt.orig or "", delivered=rcpt.address)
        job = {"op": "maildir", "path": mailbox, "def_dsn": "4.2.0",
               "hostname": os.uname().nodename, "size_limit": s.limit}
    else:
        data = mbx.mail_copy(content, mbx.COPY_MBOX, sender=req.sender,
                             orig_rcpt=rcpt.orig or "", delivered=rcpt.address)
        job = {"op": "mbox", "path": mailbox, "mode": 0o600, "locks": s.locks,
               "attempts": s.lock_attempts, "delay": s.lock_delay, "stale": s.stale,
               "def_dsn": "4.2.0", "check": "mailbox",
               "owner_uid": uid if s.strict_owner else None, "size_limit": s.limit}
    try:
        out = await run_job(creds, job, data)
    except RunAsError as e:
        log.error(str(e))
        return config_error()
    for w in out.get("warnings") or []:
        log.warning(w)
    if out.get("ok"):
        return status("sent", "2.0.0", "delivered to maildir" if mailbox.endswith("/")
                      else "delivered to mailbox")
    reason = out.get("reason", "")
    dsn = out.get("dsn") or "4.2.0"
    if mailbox.endswith("/"):
        if out.get("errno") == 13:
            log.warning(f"maildir access problem for UID/GID={uid}/{gid}: {reason}")
            log.warning("perhaps you need to create the maildirs in advance")
        return status("failed", dsn, f"maildir delivery failed: {reason}")
    if reason.startswith("destination ") and reason.endswith("is not a regular file"):
        log.warning(f"recipient {rcpt.address}: {reason}")
        return status("failed", "5.3.5", "mail system configuration error")
    return status("failed", dsn, f"delivery failed to mailbox {mailbox}: {reason}")


@register("virtual")
async def virtual_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """Deliver every recipient of `req` to its virtual mailbox."""
    return await deliver_recipients(
        req, "virtual", settings_for,
        lambda s, content: lambda r: deliver_one(s, req, r, content))
