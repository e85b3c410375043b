"""The SMTP access restriction engine: Postfix's smtpd_check.c for postier.

The server calls one method per protocol stage; each returns None (go on) or
the `CheckReply` to send, and writes Postfix's log line for what it decided:

    engine = RestrictionEngine(cfg)
    await engine.connect(st)      # smtpd_client_restrictions   (smtpd_delay_reject = no)
    await engine.helo(st)         # smtpd_helo_restrictions     (smtpd_delay_reject = no)
    await engine.mail(st)         # smtpd_sender_restrictions   (smtpd_delay_reject = no)
    await engine.rcpt(st)         # [client, helo, sender when delayed], then
                                  # smtpd_relay_restrictions, smtpd_recipient_restrictions,
                                  # the implicit reject_unlisted_recipient
    await engine.data(st)         # smtpd_data_restrictions
    await engine.end_of_data(st)  # smtpd_end_of_data_restrictions
    await engine.etrn(st, domain) / engine.vrfy(st, address)

Semantics follow Postfix 3.7 (checked against the real thing; the compat
fixture smtpd_restrictions.json and tests/unit/smtpd/test_restrictions*.py):

* Lists are compiled once into steps; a step returns DUNNO/OK/REJECT.  The
  first OK or REJECT ends a list.  `warn_if_reject` turns the next rejection
  into a `reject_warning:` log line; `defer_if_permit` / `defer_if_reject`
  (restrictions or access actions) remember a 4xx reply that replaces a later
  permit / 5xx reject, the permit case being settled at the end of RCPT (and
  DATA, END-OF-MESSAGE, ETRN) as Postfix does.
* Replies: `<what>: <Context> rejected: <text>` with the contexts Client host,
  Unverified Client host, Helo command, Sender address, Recipient address,
  Data command, End-of-data and Etrn command; the SMTP code comes from the
  *_code parameters, the enhanced code's class always follows the SMTP code,
  X.1.Y codes are mapped per context (smtpd_dsn_fix: "mapping DSN status ..."),
  soft_bounce turns 5xx into 4xx, and a 421 reply carries `disconnect=True`.
* access(5) results: OK, RELAY, all-numeric (permit), REJECT, DEFER, 4NN/5NN
  text, DUNNO, HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND, WARN, INFO,
  DEFER_IF_PERMIT, DEFER_IF_REJECT, a restriction class name or any list of
  restrictions.  HOLD/DISCARD/FILTER/REDIRECT/BCC/PREPEND are recorded in
  `st.actions`.  Lookup tables are searched in access(5) order
  (postier.maps.access); tables that cannot be opened or read give
  `451 4.3.5 <what>: <Context> rejected: Server configuration error`.
* Configuration errors reached at run time (unknown restriction, missing
  table argument, lookup table inside an access table value, recursion
  deeper than 100) log a warning and answer `451 4.3.5 Server configuration
  error` (`error_class == "software"`: Postfix would also notify postmaster).
  A main.cf without any of reject_unauth_destination, defer_unauth_destination,
  reject, defer, defer_if_permit or check_relay_domains in the relay or
  recipient restrictions is refused at start-up (ConfigError), like Postfix.
* DNS-based checks (reject_unknown_helo_hostname, reject_unknown_sender_domain,
  reject_unknown_recipient_domain, DNS lists, permit_mx_backup, MX/NS/A
  access) ask the injected `dns` object; the default `NoDns` answers "not
  configured" and the checks are DUNNO.  SmtpdServer installs the real one,
  postier.smtpd.dnschecks.DnsChecks (use_dns()); a list that names DNS
  lists first lets it start all their lookups at once (prefetch).
  reject_unknown_client_hostname and reject_unknown_reverse_client_hostname
  use the lookup status the server stored in `st.client`.
* Not (yet) backed by anything: permit_sasl_authenticated (no SASL: never
  matches), the *_sender_login_mismatch restrictions ("ignored: no SASL
  support", as Postfix without SASL), permit_tls_*clientcerts and
  check_ccert_access (no client certificates), reject_unverified_* (no
  verify service: DUNNO with one warning).  A restriction class that names
  itself is warned about at start-up and fails with 451 4.3.5 when reached
  (Postfix crashes).  reject_unauth_pipelining rejects when `st.pipelined`
  is set and `st.ehlo_seen_pipelining` is not.  `unix:passwd.byname` (in the
  default local_recipient_maps) is the local user list; `nis:` tables are
  never found, as in Postfix without a NIS domain.

Parameters read: smtpd_delay_reject, smtpd_client_restrictions,
smtpd_helo_restrictions, smtpd_sender_restrictions, smtpd_relay_restrictions,
smtpd_recipient_restrictions, smtpd_data_restrictions,
smtpd_end_of_data_restrictions, smtpd_etrn_restrictions,
smtpd_restriction_classes (and the classes named there), compatibility_level,
mynetworks, mydestination, myhostname, mydomain, myorigin, relay_domains,
virtual_alias_domains, virtual_mailbox_domains, inet_interfaces,
proxy_interfaces, parent_domain_matches_subdomains, recipient_delimiter,
smtpd_null_access_lookup_key, double_bounce_sender, allow_untrusted_routing,
swap_bangpath, allow_percent_hack, append_at_myorigin, append_dot_mydomain,
resolve_null_domain, resolve_numeric_domain, empty_address_recipient,
smtputf8_enable, smtpd_reject_unlisted_recipient, smtpd_reject_unlisted_sender,
local_recipient_maps, virtual_alias_maps, virtual_mailbox_maps,
relay_recipient_maps, canonical_maps, recipient_canonical_maps,
sender_canonical_maps, show_user_unknown_table_name, reject_code, defer_code,
access_map_reject_code, access_map_defer_code, relay_domains_reject_code,
invalid_hostname_reject_code, non_fqdn_reject_code, unknown_address_reject_code,
unknown_client_reject_code, unknown_hostname_reject_code,
unknown_local_recipient_reject_code, unknown_relay_recipient_reject_code,
unknown_virtual_alias_reject_code, unknown_virtual_mailbox_reject_code,
multi_recipient_bounce_reject_code, plaintext_reject_code, soft_bounce,
unknown_helo_hostname_tempfail_action, unknown_address_tempfail_action,
smtpd_log_access_permit_actions, smtpd_policy_service_* (see
postier.smtpd.policy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from postier import log
from postier import maps as _maps
from postier.config.mastercf import splitq
from postier.errors import ConfigError, MapError, PostierError, Reply
from postier.maps import access
from postier.smtpd import policy as _policy
from postier.smtpd.address import (
    ALIAS,
    LOCAL,
    RELAY,
    VIRTUAL,
    LookupFailure,
    Resolution,
    Resolver,
    external,
    literal_address,
    strip_one_dot,
    valid_hostaddr,
    valid_hostname,
    valid_mailhost_addr,
    valid_utf8_hostname,
)
from postier.smtpd.state import SessionState

DUNNO, OK, REJECT = 0, 1, 2
_MARK = -1          # warn_if_reject: do not clear the flag after this step

# reply contexts (SMTPD_NAME_*)
CLIENT = "Client host"
REV_CLIENT = "Unverified Client host"
HELO = "Helo command"
SENDER = "Sender address"
RECIPIENT = "Recipient address"
DATA = "Data command"
EOD = "End-of-data"
ETRN = "Etrn command"

# error classes (MAIL_ERROR_*), for notify_classes
POLICY = "policy"
PROTOCOL = "protocol"
BOUNCE = "bounce"
SOFTWARE = "software"
RESOURCE = "resource"

# default access checks (def_acl) of each list
CHECK_CLIENT_ACL = "check_client_access"
CHECK_REVERSE_CLIENT_ACL = "check_reverse_client_hostname_access"
CHECK_HELO_ACL = "check_helo_access"
CHECK_SENDER_ACL = "check_sender_access"
CHECK_RECIP_ACL = "check_recipient_access"
CHECK_ETRN_ACL = "check_etrn_access"

RCPT_REQUIRED = ("reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                 "defer_if_permit", "check_relay_domains")

# DNS hook answers (dns_lookup status)
DNS_OK = "ok"
DNS_NOTFOUND = "notfound"
DNS_RETRY = "retry"
DNS_INVAL = "inval"
DNS_NULLMX = "nullmx"
DNS_POLICY = "policy"


class NoDns:
    """The default DNS hook: no resolver configured.  DNS-based restrictions
    are DUNNO (no lookup, no waiting).  The DNS component replaces this with
    an object whose coroutines return one of the DNS_* statuses:

    * host_status(name): A/AAAA then MX of a HELO name (reject_unknown_helo_hostname)
    * mailhost_status(domain): MX then A/AAAA of an address domain
      (reject_unknown_sender_domain, reject_unknown_recipient_domain)

    Optional, looked up with getattr (absent: the restriction is DUNNO):

    * dnslist(engine, ctx, command, arg, reply_name, reply_class) -> status:
      reject_rbl_client, reject_rhsbl_*, permit_dnswl_client,
      permit_rhswl_client (`arg` is the list domain with its optional
      `=filter`; use engine._reject / engine._acl_permit for the answer)
    * mx_backup(engine, ctx) -> status: permit_mx_backup
    * server_access(engine, ctx, command, table, reply_name, reply_class,
      def_acl) -> status: check_{client,reverse_client,helo,sender,
      recipient}_{mx,ns,a}_access (`table` is the opened Table)
    * prefetch(engine, ctx, specs) -> None: called (not awaited) when a
      restriction list that names DNS lists starts; `specs` are its
      (command, argument) pairs, so that all list lookups go out at once
    * maps_rbl(engine, ctx) -> status: the obsolete reject_maps_rbl

    postier.smtpd.dnschecks.DnsChecks is the real implementation
    (RestrictionEngine.use_dns() installs it; SmtpdServer does that).
    """

    configured = False

    async def host_status(self, name: str) -> str | None:
        return None

    async def mailhost_status(self, name: str) -> str | None:
        return None


class CheckReply(Reply):
    """A restriction's reply: `Reply` plus what the server needs to know.

    `error_class`: policy, protocol, bounce, software or resource (Postfix's
    notify_classes); `disconnect`: the server closes the session after
    sending it (a 421 reply)."""

    def __init__(self, code: int, enhanced: str = "", text: str = "", *,
                 error_class: str = POLICY):
        super().__init__(code, enhanced, text)
        self.error_class = error_class
        self.disconnect = code == 421


class _Abort(Exception):
    """longjmp(smtpd_check_buf): the reply is in ctx.reply already."""


# ---------------------------------------------------------------------------
# main.cf access

_COMPAT_RX = re.compile(r"\$\{\{\$compatibility_level\}\s*<level\s*\{([\d.]+)\}\s*\?\s*"
                        r"\{([^{}]*)\}\s*:\s*\{([^{}]*)\}\}")
_NAME_RX = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?:([?:])([^{}]*))?\}|\(([A-Za-z0-9_]+)\)"
                      r"|([A-Za-z0-9_]+))")

#: Postfix 3.7 defaults used when the configuration object does not know a
#: parameter (the registry in postier.config normally supplies them).
DEFAULTS: dict[str, str] = {
    "compatibility_level": "0",
    "smtpd_delay_reject": "yes",
    "smtpd_client_restrictions": "",
    "smtpd_helo_restrictions": "",
    "smtpd_sender_restrictions": "",
    "smtpd_relay_restrictions": "${{$compatibility_level} <level {1} ? {} : "
                                "{permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}",
    "smtpd_recipient_restrictions": "",
    "smtpd_data_restrictions": "",
    "smtpd_end_of_data_restrictions": "",
    "smtpd_etrn_restrictions": "",
    "smtpd_restriction_classes": "",
    "myhostname": socket.gethostname(),
    "mydomain": "localdomain",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "relay_domains": "${{$compatibility_level} <level {2} ? {$mydestination} : {}}",
    "virtual_maps": "",
    "virtual_alias_maps": "$virtual_maps",
    "virtual_alias_domains": "$virtual_alias_maps",
    "virtual_mailbox_maps": "",
    "virtual_mailbox_domains": "$virtual_mailbox_maps",
    "inet_interfaces": "all",
    "proxy_interfaces": "",
    "parent_domain_matches_subdomains": "debug_peer_list,fast_flush_domains,mynetworks,"
                                        "permit_mx_backup_networks,qmqpd_authorized_clients,"
                                        "relay_domains,smtpd_access_maps",
    "recipient_delimiter": "",
    "smtpd_null_access_lookup_key": "<>",
    "double_bounce_sender": "double-bounce",
    "allow_untrusted_routing": "no",
    "swap_bangpath": "yes",
    "allow_percent_hack": "yes",
    "append_at_myorigin": "yes",
    "append_dot_mydomain": "${{$compatibility_level} <level {1} ? {yes} : {no}}",
    "resolve_dequoted_address": "yes",
    "resolve_null_domain": "no",
    "resolve_numeric_domain": "no",
    "empty_address_recipient": "MAILER-DAEMON",
    "smtputf8_enable": "${{$compatibility_level} <level {1} ? {no} : {yes}}",
    "smtpd_reject_unlisted_recipient": "yes",
    "smtpd_reject_unlisted_sender": "no",
    "alias_maps": "hash:/etc/aliases",
    "local_recipient_maps": "proxy:unix:passwd.byname $alias_maps",
    "relay_recipient_maps": "",
    "canonical_maps": "",
    "recipient_canonical_maps": "",
    "sender_canonical_maps": "",
    "show_user_unknown_table_name": "yes",
    "reject_code": "554",
    "defer_code": "450",
    "access_map_reject_code": "554",
    "access_map_defer_code": "450",
    "relay_domains_reject_code": "554",
    "invalid_hostname_reject_code": "501",
    "non_fqdn_reject_code": "504",
    "unknown_address_reject_code": "450",
    "unknown_client_reject_code": "450",
    "unknown_hostname_reject_code": "450",
    "unknown_local_recipient_reject_code": "550",
    "unknown_relay_recipient_reject_code": "550",
    "unknown_virtual_alias_reject_code": "550",
    "unknown_virtual_mailbox_reject_code": "550",
    "multi_recipient_bounce_reject_code": "550",
    "plaintext_reject_code": "450",
    "maps_rbl_reject_code": "554",
    "reject_tempfail_action": "defer_if_permit",
    "unknown_helo_hostname_tempfail_action": "$reject_tempfail_action",
    "unknown_address_tempfail_action": "$reject_tempfail_action",
    "soft_bounce": "no",
    "smtpd_log_access_permit_actions": "",
    "smtpd_policy_service_timeout": "100s",
    "smtpd_policy_service_max_idle": "300s",
    "smtpd_policy_service_max_ttl": "1000s",
    "smtpd_policy_service_try_limit": "2",
    "smtpd_policy_service_retry_delay": "1s",
    "smtpd_policy_service_request_limit": "0",
    "smtpd_policy_service_default_action": "451 4.3.5 Server configuration problem",
    "smtpd_policy_service_policy_context": "",
}


def _join_list(items: Iterable[str]) -> str:
    """Re-join a split list value; members with separators regain braces."""
    out = []
    for it in items:
        s = str(it)
        out.append("{ " + s + " }" if any(c in s for c in ", \t\r\n") else s)
    return ", ".join(out)


class Params:
    """Text values of main.cf parameters, from a postier.config Config (its
    get/raw/expand) or from a plain mapping name -> value (tests, tools).

    Everything is handed out as expanded text and parsed here, so that the
    engine works the same whatever types the configuration layer returns."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self._mapping = isinstance(cfg, Mapping)
        self._cache: dict[str, str | None] = {}

    def _expand_plain(self, text: str, depth: int = 0) -> str:
        if "$" not in text or depth > 20:
            return text

        def compat(m: re.Match) -> str:
            level = self._compat_level()
            return m.group(2) if level < float(m.group(1)) else m.group(3)

        text = _COMPAT_RX.sub(compat, text)

        def name(m: re.Match) -> str:
            key = m.group(1) or m.group(4) or m.group(5)
            val = self._raw_value(key)
            if m.group(2) == "?":
                return self._expand_plain(m.group(3), depth + 1) if val else ""
            if m.group(2) == ":":
                return "" if val else self._expand_plain(m.group(3), depth + 1)
            return self._expand_plain(val or "", depth + 1)

        return _NAME_RX.sub(name, text)

    def _compat_level(self) -> float:
        raw = self._raw_value("compatibility_level") or "0"
        try:
            return float(re.match(r"[\d.]*", raw).group(0).rstrip(".") or "0")
        except ValueError:
            return 0.0

    def _raw_value(self, name: str) -> str | None:
        if self._mapping:
            v = self.cfg.get(name)
            return DEFAULTS.get(name) if v is None else str(v)
        return self._lookup(name)

    def _lookup(self, name: str) -> str | None:
        cfg = self.cfg
        for attr in ("get_str", "get"):
            fn = getattr(cfg, attr, None)
            if fn is None:
                continue
            try:
                v = fn(name)
            except Exception:       # noqa: BLE001 - unknown parameter, bad value
                continue
            if v is None:
                continue
            if isinstance(v, bool):
                return "yes" if v else "no"
            if isinstance(v, list | tuple):
                return _join_list(v)
            return str(v)
        raw = getattr(cfg, "raw", None)
        if raw is not None:
            try:
                v = raw(name)
            except Exception:       # noqa: BLE001
                v = None
            if v is not None:
                expand = getattr(cfg, "expand", None)
                if expand is not None:
                    try:
                        return str(expand(v))
                    except Exception:   # noqa: BLE001
                        pass
                return self._expand_plain(str(v))
        default = DEFAULTS.get(name)
        if default is None:
            return None
        expand = getattr(cfg, "expand", None)
        if expand is not None:
            try:
                return str(expand(default))
            except Exception:       # noqa: BLE001
                pass
        return self._expand_plain(default)

    def is_set(self, name: str) -> bool:
        """Whether main.cf sets `name` explicitly (not a default)."""
        if self._mapping:
            return name in self.cfg
        for attr in ("is_set", "explicit", "has"):
            fn = getattr(self.cfg, attr, None)
            if fn is not None:
                try:
                    return bool(fn(name))
                except Exception:   # noqa: BLE001
                    pass
        raw = getattr(self.cfg, "raw", None)
        if raw is not None:
            try:
                return raw(name) is not None
            except Exception:       # noqa: BLE001
                return False
        return True

    def text(self, name: str, default: str | None = None) -> str:
        if name in self._cache:
            v = self._cache[name]
        else:
            v = self._raw_value(name)
            if self._mapping and v is not None:
                v = self._expand_plain(v)
            self._cache[name] = v
        if v is None:
            return default if default is not None else ""
        return v

    def optional(self, name: str) -> str | None:
        """The value of a parameter that may not exist (restriction classes)."""
        v = self.text(name, "\0")
        return None if v == "\0" else v

    def bool(self, name: str) -> bool:
        return self.text(name).strip().lower() == "yes"

    def int(self, name: str) -> int:
        v = self.text(name).strip()
        try:
            return int(v)
        except ValueError:
            return int(DEFAULTS.get(name, "0"))

    def list(self, name: str) -> list[str]:
        return split_restrictions(self.text(name))

    def compat_level(self) -> float:
        v = self.text("compatibility_level", "0")
        m = re.match(r"\d+(?:\.\d+)?", v.strip())
        return float(m.group(0)) if m else 0.0


def split_restrictions(value: str) -> list[str]:
    """argv_splitq(value, ", \\t\\r\\n", "{}"): `{...}` groups stay whole,
    braces included (check_policy_service { ... } needs them)."""
    return splitq(value, ", \t\r\n")


# ---------------------------------------------------------------------------
# Lookup tables

class _Unavailable(Exception):
    pass


class Table:
    """A lookup table as the engine uses it: an opened map, or the reason
    it could not be opened (reported at lookup time, as Postfix's
    surrogate tables do)."""

    __slots__ = ("spec", "map", "reason", "type")

    def __init__(self, spec: str, opener: Callable[..., Any]):
        self.spec = spec
        self.map = None
        self.reason = ""
        real = spec[6:] if spec.startswith("proxy:") else spec
        self.type = real.partition(":")[0]
        try:
            if real == "unix:passwd.byname":
                self.map = _PasswdMap()
            elif self.type == "nis":
                self.map = _NisMap()
            else:
                self.map = opener(real, fold=True)
        except (MapError, OSError, ValueError, ImportError) as e:
            self.reason = _error_text(e)

    def lookup(self, key: str) -> str | None:
        if self.map is None:
            raise _Unavailable(self.reason)
        return self.map.lookup(key)


def _error_text(e: BaseException) -> str:
    if isinstance(e, MapError):
        return e.message
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)


class _NisMap:
    """nis: tables, as Postfix without a NIS domain: never found."""

    type = "nis"
    warned = False

    def lookup(self, key: str) -> str | None:
        if not _NisMap.warned:
            _NisMap.warned = True
            log.warning("NIS domain name not set - NIS lookups disabled")
        return None


class _PasswdMap:
    """unix:passwd.byname: the local user names."""

    type = "unix"

    def lookup(self, key: str) -> str | None:
        import pwd
        try:
            p = pwd.getpwnam(key)
        except (KeyError, OSError):
            return None
        return f"{p.pw_name}:x:{p.pw_uid}:{p.pw_gid}:{p.pw_gecos}:{p.pw_dir}:{p.pw_shell}"


# ---------------------------------------------------------------------------
# Pattern lists (match_list.c): mydestination, relay_domains, mynetworks ...

@dataclass
class _Pattern:
    text: str
    negate: bool = False
    table: Table | None = None
    net: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    error: str = ""           # logged and failing at match time
    missing: bool = False     # a /file/name that could not be read


def _list_items(value: str, name: str) -> list[tuple[str, bool]]:
    """(pattern, negated) items, /file/name patterns expanded."""
    out: list[tuple[str, bool]] = []
    for item in split_restrictions(value):
        if item.startswith("{") and item.endswith("}"):
            item = item[1:-1].strip()
        neg = False
        while item.startswith("!"):
            neg = not neg
            item = item[1:]
        if item.startswith("/"):
            try:
                with open(item, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError as e:
                out.append(("\0non-existent:" + item + "\0" + f"open file {item}: "
                            f"{e.strerror}", neg))
                continue
            lines = [ln.split("#", 1)[0] if ln.lstrip().startswith("#") else ln
                     for ln in text.splitlines()]
            for sub, sneg in _list_items(" ".join(lines), name):
                out.append((sub, sneg != neg))
            continue
        if item:
            out.append((item, neg))
    return out


class PatternList:
    """A Postfix match list.  kind: "string" (string_list: exact or table),
    "domain" (domain_list: host names, parent domains) or "host" (namadr_list:
    host names and addresses, mynetworks)."""

    def __init__(self, name: str, value: str, kind: str, *, parent: bool,
                 opener: Callable[..., Any]):
        self.name = name
        self.kind = kind
        self.parent = parent
        self.patterns: list[_Pattern] = []
        self._cache: dict[tuple[str, str], bool] = {}
        self.cacheable = True
        for item, neg in _list_items(value, name):
            if item.startswith("\0"):
                _, spec, reason = item.split("\0")
                p = _Pattern(spec, neg, error=f"{spec} is unavailable. {reason}", missing=True)
            elif ":" in item and not (kind == "host" and item.startswith("[")):
                t = Table(item, opener)
                p = _Pattern(item, neg, table=t)
                self.cacheable = False
            else:
                p = _Pattern(item.lower(), neg)
                if kind == "host" and (item.startswith("[") or "/" in item):
                    self._compile_net(p, item)
            self.patterns.append(p)

    def _compile_net(self, p: _Pattern, item: str) -> None:
        text = item
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                p.error = f'{self.name}: bad address pattern: "{item}"'
                return
            text = text[1:close] + text[close + 1:]
        addr, _, plen = text.partition("/")
        try:
            ip = ipaddress.ip_address(addr)
            bits = int(plen) if plen else ip.max_prefixlen
            net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        except ValueError:
            p.error = f'{self.name}: bad net/mask pattern: "{item}"'
            return
        if net.network_address != ip:
            shown = f"[{net.network_address}]/{bits}" if ip.version == 6 else f"{net}"
            p.error = (f'{self.name}: non-null host address bits in "{item}", '
                       f'perhaps you should use "{shown}" instead')
            p.net = net
            return
        p.net = net

    def _fail(self, p: _Pattern, exc: BaseException | None = None) -> None:
        """Log like match_list and fail the match (451 4.3.0 for the caller)."""
        if p.table is not None:
            if isinstance(exc, _Unavailable):
                log.warning(f"{p.table.spec} is unavailable. {exc}")
            log.warning(f"{self.name}: {p.table.spec}: table lookup problem")
        elif p.missing:
            log.warning(p.error)
            log.warning(f"{self.name}: {p.text}: table lookup problem")
        else:
            log.warning(p.error)
        raise LookupFailure(self.name)

    # -- single pattern tests -------------------------------------------------

    def _table_host(self, p: _Pattern, name: str) -> bool:
        t = p.table
        fixed = not access.is_pattern_table(t)
        for i, key in enumerate(access._domain_walk(name, self.parent)):
            if i and not fixed:
                break
            if t.lookup(key) is not None:
                return True
        return False

    def _match_host(self, p: _Pattern, name: str) -> bool:
        if not name:
            return False
        if p.table is not None:
            return self._table_host(p, name)
        pat = p.text
        if name == pat:
            return True
        if self.parent:
            return len(name) > len(pat) and name.endswith(pat) and name[-len(pat) - 1] == "."
        if pat.startswith("."):
            return len(name) > len(pat) and name.endswith(pat)
        return False

    def _match_addr(self, p: _Pattern, addr: str) -> bool:
        if not addr or addr.strip("0123456789.abcdefABCDEF:"):
            return False
        if p.table is not None:
            return p.table.lookup(addr) is not None
        if addr == p.text:
            return True
        if p.net is None and not p.error:
            return False
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        if p.net is not None and p.net.version != ip.version:
            return False
        if p.error:
            self._fail(p)
        return ip in p.net

    def _match_string(self, p: _Pattern, s: str) -> bool:
        if p.table is not None:
            return p.table.lookup(s) is not None
        return s == p.text

    # -- list tests -----------------------------------------------------------

    def match(self, name: str, addr: str = "") -> bool:
        """string/domain lists: match(name); host lists: match(name, addr).
        Raises LookupFailure (after logging) when a table fails."""
        key = (name, addr)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        lname = name.lower()
        for p in self.patterns:
            try:
                if p.error and p.net is None and p.table is None:
                    self._fail(p)
                if self.kind == "string":
                    found = self._match_string(p, lname)
                elif self.kind == "domain":
                    found = self._match_host(p, lname)
                else:
                    found = self._match_host(p, lname) or self._match_addr(p, addr)
            except (_Unavailable, MapError, OSError) as e:
                self._fail(p, e)
            if found:
                result = not p.negate
                break
        else:
            result = False
        if self.cacheable:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[key] = result
        return result

    def __bool__(self) -> bool:
        return bool(self.patterns)


# ---------------------------------------------------------------------------
# The machine's own addresses (inet_interfaces, proxy_interfaces)

def interface_addresses() -> set[str]:
    """Addresses of the local network interfaces (Linux: ioctl + /proc)."""
    found: set[str] = {"127.0.0.1", "::1"}
    try:
        import fcntl
        import struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _, ifname in socket.if_nameindex():
                try:
                    res = fcntl.ioctl(s.fileno(), 0x8915,   # SIOCGIFADDR
                                      struct.pack("256s", ifname.encode()[:15]))
                    found.add(socket.inet_ntoa(res[20:24]))
                except OSError:
                    continue
        finally:
            s.close()
    except (ImportError, OSError):
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexaddr = line.split()[0]
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    except (OSError, ValueError, IndexError):
        pass
    return found


def own_addresses(inet_interfaces: Sequence[str], proxy_interfaces: Sequence[str] = ()
                  ) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """What `[address]` literals count as local (resolve_local)."""
    out: set[str] = set()
    for item in list(inet_interfaces) + list(proxy_interfaces):
        low = item.lower()
        if low == "all":
            out |= interface_addresses()
        elif low == "loopback-only":
            out |= {"127.0.0.1", "::1"}
        else:
            bare = item[1:-1] if item.startswith("[") and item.endswith("]") else item
            try:
                out.add(str(ipaddress.ip_address(bare)))
            except ValueError:
                try:
                    for info in socket.getaddrinfo(bare, None):
                        out.add(info[4][0])
                except OSError:
                    log.warning(f"unable to look up interface address {item}")
    result = set()
    for a in out:
        try:
            result.add(ipaddress.ip_address(a.split("%")[0]))
        except ValueError:
            pass
    return frozenset(result)


# ---------------------------------------------------------------------------
# DSN codes (dsn_util.c, smtpd_dsn_fix.c)

_DSN_RX = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?=$|[ \t])")

# micro code -> (sender status, recipient status) for X.1.Y codes
_DSN_MAP = {"1": ("4.1.7", "4.1.1"), "2": ("4.1.8", "4.1.2"), "3": ("4.1.7", "4.1.3"),
            "4": ("4.1.7", "4.1.4"), "5": ("4.1.0", "4.1.5"), "6": ("4.1.7", "4.1.6"),
            "7": ("4.1.7", "4.1.3"), "8": ("4.1.8", "4.1.2")}


def dsn_split(default: str, text: str) -> tuple[str, str]:
    """A leading "X.Y.Z " status in `text`, or `default`; and the rest."""
    m = _DSN_RX.match(text)
    if m is None:
        return default, text
    return m.group(0), text[m.end():].lstrip(" \t")


def dsn_fix(status: str, reply_class: str) -> str:
    """smtpd_dsn_fix(): address status codes (X.1.Y) become the matching
    sender or recipient code, or X.0.0 in other contexts."""
    if status[1:4] != ".1.":
        return status
    if reply_class == SENDER:
        fixed = _DSN_MAP.get(status[4:], ("4.1.0", "4.1.0"))[0]
    elif reply_class == RECIPIENT:
        fixed = _DSN_MAP.get(status[4:], ("4.1.0", "4.1.0"))[1]
    else:
        fixed = "4.0.0"
    fixed = status[0] + fixed[1:]
    if fixed != status:
        log.info(f"mapping DSN status {status} into {reply_class} status {fixed}")
    return fixed


def _is_header(text: str) -> bool:
    """is_header(): a header name (printable, no blank or colon), then ':'."""
    i = 0
    for i, ch in enumerate(text):
        if ch == ":":
            return i > 0
        if ord(ch) <= 32 or ord(ch) >= 127:
            return False
    return False


def _alldig(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def _printable_reply(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " for ch in text)


# ---------------------------------------------------------------------------
# Per-session and per-evaluation state

class _Defer:
    __slots__ = ("active", "error_class", "code", "dsn", "reason")

    def __init__(self) -> None:
        self.active = False
        self.error_class = POLICY
        self.code = 450
        self.dsn = "4.7.1"
        self.reason = ""

    def set(self, error_class: str, code: int, dsn: str, reason: str) -> None:
        """defer_if(): keep the first reason while active."""
        if not self.active:
            self.active = True
            self.error_class, self.code, self.dsn, self.reason = error_class, code, dsn, reason


class SessionChecks:
    """What the engine remembers between commands (kept in st.check_state)."""

    __slots__ = ("dip", "dip_client", "dip_helo", "dip_sender", "instance", "instance_key",
                 "seqno")

    def __init__(self) -> None:
        self.dip = _Defer()
        self.dip_client = False
        self.dip_helo = False
        self.dip_sender = False
        self.instance = ""
        self.instance_key = -1
        self.seqno = 0


class _Ctx:
    """One evaluation (smtpd_check_*): the SMTPD_STATE fields it uses."""

    __slots__ = ("st", "ses", "where", "namaddr", "sender", "recipient", "helo", "etrn",
                 "recursion", "warn_if_reject", "dir", "reply", "rcpt_checked",
                 "sender_checked", "policy_nesting")

    def __init__(self, st: SessionState, ses: SessionChecks, where: str):
        self.st = st
        self.ses = ses
        self.where = where
        self.namaddr = st.client.namaddr
        self.sender = st.sender
        self.recipient: str | None = None
        self.helo = st.helo_name
        self.etrn: str | None = None
        self.recursion = 0
        self.warn_if_reject = 0
        self.dir = _Defer()
        self.reply: CheckReply | None = None
        self.rcpt_checked = False
        self.sender_checked = False
        self.policy_nesting = 0

    def reset(self) -> None:
        """SMTPD_CHECK_RESET()."""
        self.recursion = 0
        self.warn_if_reject = 0
        self.dir.active = False


Step = Callable[[_Ctx, str, str, "str | None"], "int | Awaitable[int]"]


# ---------------------------------------------------------------------------
# The engine

_ALIASES = {
    "reject_unknown_client": "reject_unknown_client_hostname",
    "reject_unknown_hostname": "reject_unknown_helo_hostname",
    "reject_invalid_hostname": "reject_invalid_helo_hostname",
    "reject_non_fqdn_hostname": "reject_non_fqdn_helo_hostname",
    "reject_rbl": "reject_rbl_client",
    "reject_unknown_address": "reject_unknown_sender_domain",
}

_MAP_COMMANDS = (CHECK_CLIENT_ACL, CHECK_REVERSE_CLIENT_ACL, CHECK_HELO_ACL, CHECK_SENDER_ACL,
                 CHECK_RECIP_ACL, CHECK_ETRN_ACL,
                 "check_ccert_access", "check_sasl_access",
                 "check_client_ns_access", "check_client_mx_access", "check_client_a_access",
                 "check_reverse_client_hostname_ns_access",
                 "check_reverse_client_hostname_mx_access",
                 "check_reverse_client_hostname_a_access",
                 "check_helo_ns_access", "check_helo_mx_access", "check_helo_a_access",
                 "check_sender_ns_access", "check_sender_mx_access", "check_sender_a_access",
                 "check_recipient_ns_access", "check_recipient_mx_access",
                 "check_recipient_a_access")

#: check_*_{ns,mx,a}_access: access tables searched with DNS-derived names.
_SERVER_ACCESS = frozenset(c for c in _MAP_COMMANDS
                           if c.endswith(("_ns_access", "_mx_access", "_a_access")))

#: Restrictions that take a DNS list domain as their argument.
_DNSLIST_COMMANDS = ("reject_rbl_client", "permit_dnswl_client", "reject_rhsbl_client",
                     "permit_rhswl_client", "reject_rhsbl_reverse_client", "reject_rhsbl_helo",
                     "reject_rhsbl_sender", "reject_rhsbl_recipient")

_SASL_MISMATCH = ("reject_sender_login_mismatch", "reject_authenticated_sender_login_mismatch",
                  "reject_known_sender_login_mismatch",
                  "reject_unauthenticated_sender_login_mismatch")


class RestrictionEngine:
    """Postfix's smtpd restriction engine (see the module docstring)."""

    def __init__(self, cfg: Any, *, open_map: Callable[..., Any] = _maps.open_map,
                 dns: Any = None, own_addresses_: Iterable[str] | None = None):
        p = self.params = Params(cfg)
        self._open = open_map
        self.dns = dns or NoDns()
        self.dns_configured = bool(getattr(self.dns, "configured", True))
        self._tables: dict[str, Table] = {}
        self._value_lists: dict[str, tuple[Step, ...]] = {}
        self._addr_lookups: dict[str, list[access.Lookup]] = {}
        self._warned: set[str] = set()

        self.compat = p.compat_level()
        self.delay_reject = p.bool("smtpd_delay_reject")
        self.soft_bounce = p.bool("soft_bounce")
        self.allow_untrusted_routing = p.bool("allow_untrusted_routing")
        self.reject_unlisted_rcpt = p.bool("smtpd_reject_unlisted_recipient")
        self.reject_unlisted_sender = p.bool("smtpd_reject_unlisted_sender")
        self.show_table = p.bool("show_user_unknown_table_name")
        self.double_bounce = p.text("double_bounce_sender", "double-bounce")
        codes = ("reject_code", "defer_code", "access_map_reject_code", "access_map_defer_code",
                 "relay_domains_reject_code", "invalid_hostname_reject_code",
                 "non_fqdn_reject_code", "unknown_address_reject_code",
                 "unknown_client_reject_code", "unknown_hostname_reject_code",
                 "unknown_local_recipient_reject_code", "unknown_relay_recipient_reject_code",
                 "unknown_virtual_alias_reject_code", "unknown_virtual_mailbox_reject_code",
                 "multi_recipient_bounce_reject_code", "plaintext_reject_code",
                 "maps_rbl_reject_code")
        self.code = {name: p.int(name) for name in codes}
        # DEFER_IF_PERMIT2(): "defer" rejects at once, anything else is defer_if_permit
        self.unk_name_tf_defer = p.text("unknown_helo_hostname_tempfail_action").strip() == "defer"
        self.unk_addr_tf_defer = p.text("unknown_address_tempfail_action").strip() == "defer"

        parent_params = {x.lower() for x in split_restrictions(
            p.text("parent_domain_matches_subdomains"))}
        self.search = access.SearchSettings(
            delimiters=p.text("recipient_delimiter"),
            parent_matches_subdomains="smtpd_access_maps" in parent_params,
            null_key=p.text("smtpd_null_access_lookup_key", "<>"),
            double_bounce=self.double_bounce)

        def plist(name: str, kind: str) -> PatternList:
            return PatternList(name, p.text(name), kind, parent=name in parent_params,
                               opener=self._open)

        self.mynetworks = plist("mynetworks", "host")
        self.mydestination = plist("mydestination", "string")
        self.relay_domains = plist("relay_domains", "domain")
        self.virtual_alias_domains = plist("virtual_alias_domains", "string")
        self.virtual_mailbox_domains = plist("virtual_mailbox_domains", "string")
        self.permit_log = plist("smtpd_log_access_permit_actions", "string")
        if own_addresses_ is not None:
            self.own = frozenset(ipaddress.ip_address(a) for a in own_addresses_)
        else:
            self.own = own_addresses(split_restrictions(p.text("inet_interfaces")),
                                     split_restrictions(p.text("proxy_interfaces")))
        self.myhostname = p.text("myhostname")
        self.resolver = Resolver(
            myhostname=self.myhostname, is_local=self._is_local,
            virtual_alias=self._list_test(self.virtual_alias_domains),
            virtual_mailbox=self._list_test(self.virtual_mailbox_domains),
            relay=self._list_test(self.relay_domains),
            swap_bangpath=p.bool("swap_bangpath"), percent_hack=p.bool("allow_percent_hack"),
            myorigin=p.text("myorigin"), append_at_myorigin=p.bool("append_at_myorigin"),
            append_dot_mydomain=p.bool("append_dot_mydomain"), mydomain=p.text("mydomain"),
            resolve_dequoted=p.bool("resolve_dequoted_address"),
            resolve_null_domain=p.bool("resolve_null_domain"),
            resolve_numeric_domain=p.bool("resolve_numeric_domain"),
            empty_address_recipient=p.text("empty_address_recipient", "MAILER-DAEMON"),
            smtputf8=p.bool("smtputf8_enable"))

        def maplist(name: str) -> list[Table]:
            return [self._table(spec) for spec in split_restrictions(p.text(name))]

        self.local_rcpt_maps = maplist("local_recipient_maps")
        self.virtual_alias_maps = maplist("virtual_alias_maps")
        self.virtual_mailbox_maps = maplist("virtual_mailbox_maps")
        self.relay_rcpt_maps = maplist("relay_recipient_maps")
        self.canonical_maps = maplist("canonical_maps")
        self.rcpt_canonical_maps = maplist("recipient_canonical_maps")
        self.sender_canonical_maps = maplist("sender_canonical_maps")

        self.policy = _policy.PolicyClients(_policy.PolicySettings.from_params(
            lambda n, d: p.text(n, d)))

        # restriction classes
        self.class_tokens: dict[str, list[str]] = {}
        for name in split_restrictions(p.text("smtpd_restriction_classes")):
            value = p.optional(name)
            if value is None or not value.strip():
                raise ConfigError(f"restriction class `{name}' needs a definition")
            self.class_tokens[name] = split_restrictions(value)
        self.classes: dict[str, tuple[Step, ...]] = {}
        for name, tokens in self.class_tokens.items():
            self.classes[name] = self._compile(tokens)
        for name in self.class_tokens:
            if self._class_loop(name):
                log.warning(f"restriction class {name} refers to itself; "
                            f"evaluating it will fail with 451 4.3.5")

        # compatibility_level < 1 and no explicit smtpd_relay_restrictions: old behaviour
        self.warn_compat_relay = self.compat < 1 and not p.is_set("smtpd_relay_restrictions")
        relay_tokens = [] if self.warn_compat_relay else p.list("smtpd_relay_restrictions")
        rcpt_tokens = p.list("smtpd_recipient_restrictions")
        if not (self._has_required(rcpt_tokens, set()) or self._has_required(relay_tokens, set())):
            raise ConfigError(
                "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify "
                "at least one working instance of: reject_unauth_destination, "
                "defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains")
        self.client_list = self._compile(p.list("smtpd_client_restrictions"))
        self.helo_list = self._compile(p.list("smtpd_helo_restrictions"))
        self.sender_list = self._compile(p.list("smtpd_sender_restrictions"))
        self.relay_list = self._compile(relay_tokens)
        self.rcpt_list = self._compile(rcpt_tokens)
        self.fake_relay_list = self._compile(["permit_mynetworks", "permit_sasl_authenticated",
                                              "permit_auth_destination"])
        self.data_list = self._compile(p.list("smtpd_data_restrictions"))
        self.eod_list = self._compile(p.list("smtpd_end_of_data_restrictions"))
        self.etrn_list = self._compile(p.list("smtpd_etrn_restrictions"))

    def use_dns(self, dns: Any) -> None:
        """Install the DNS hook object (postier.smtpd.dnschecks.DnsChecks)."""
        self.dns = dns
        self.dns_configured = bool(getattr(dns, "configured", True))

    # -- start-up helpers -----------------------------------------------------

    def _table(self, spec: str) -> Table:
        t = self._tables.get(spec)
        if t is None:
            t = self._tables[spec] = Table(spec, self._open)
        return t

    @staticmethod
    def _list_test(plist: PatternList) -> Callable[[str], bool]:
        if not plist:
            return lambda _d: False
        return plist.match

    def _is_local(self, domain: str) -> bool:
        """resolve_local(): mydestination, or an own [address literal]."""
        if self.mydestination.match(domain):
            return True
        ip = literal_address(domain)
        return ip is not None and ip in self.own

    def _has_required(self, tokens: list[str], seen: set[str]) -> bool:
        """has_required(): a restriction that rejects by default is listed."""
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            low = tok.lower()
            if low == "warn_if_reject" and i + 1 < len(tokens):
                i += 2
                continue
            if low == "permit":
                if i + 1 < len(tokens):
                    log.warning(f"restriction `{tokens[i + 1]}' after `{tok}' is ignored")
                return False
            if low in RCPT_REQUIRED:
                return True
            if tok in self.class_tokens and tok not in seen:
                seen.add(tok)
                if self._has_required(self.class_tokens[tok], seen):
                    return True
            i += 1
        return False

    def _class_loop(self, start: str) -> bool:
        todo, seen = [start], set()
        while todo:
            name = todo.pop()
            for tok in self.class_tokens.get(name, ()):
                if tok == start:
                    return True
                if tok in self.class_tokens and tok not in seen:
                    seen.add(tok)
                    todo.append(tok)
        return False

    # -- compilation ----------------------------------------------------------

    def _compile(self, tokens: Sequence[str]) -> tuple[Step, ...]:
        steps: list[Step] = []
        i, n = 0, len(tokens)
        while i < n:
            tok = tokens[i]
            low = _ALIASES.get(tok.lower(), tok.lower())
            nxt = tokens[i + 1] if i + 1 < n else None
            if ":" in tok and low not in _MAP_COMMANDS:
                steps.append(self._bare_map_step(tok))
                i += 1
            elif low in _MAP_COMMANDS:
                if nxt is None or ":" not in nxt:
                    steps.append(self._bad_map_arg_step(low, nxt or tok))
                    i += 2 if nxt is not None else 1
                else:
                    steps.append(self._map_step(low, nxt))
                    i += 2
            elif low == "check_policy_service":
                if nxt is None or ":" not in nxt:
                    steps.append(self._config_error_step(
                        "restriction check_policy_service must be followed by transport:server"))
                    i += 1
                else:
                    steps.append(self._policy_step(nxt))
                    i += 2
            elif low == "sleep":
                if nxt is None or not _alldig(nxt):
                    steps.append(self._config_error_step(
                        "restriction sleep must be followed by number"))
                    i += 1
                else:
                    steps.append(self._sleep_step(int(nxt)))
                    i += 2
            elif low in _DNSLIST_COMMANDS:
                if nxt is None:
                    steps.append(self._config_error_step(
                        f"restriction {tok} requires domain name argument"))
                    i += 1
                else:
                    steps.append(self._dnslist_step(low, nxt))
                    i += 2
            else:
                steps.append(self._named_step(tok, low, tuple(tokens[i + 1:])))
                i += 1
        dnsxl = [(low, tokens[j + 1]) for j, low in
                 ((j, _ALIASES.get(t.lower(), t.lower())) for j, t in enumerate(tokens[:-1]))
                 if low in _DNSLIST_COMMANDS]
        dnsxl += [("reject_maps_rbl", "") for t in tokens if t.lower() == "reject_maps_rbl"]
        if dnsxl:
            steps.insert(0, self._prefetch_step(tuple(dnsxl)))
        return tuple(steps)

    def _prefetch_step(self, specs: tuple[tuple[str, str], ...]) -> Step:
        """Start all DNS list lookups of a list at once (hook `prefetch`);
        neutral for the list itself (like warn_if_reject's marker)."""
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            hook = getattr(self.dns, "prefetch", None)
            if self.dns_configured and hook is not None:
                hook(self, ctx, specs)
            return _MARK
        return step

    def _named_step(self, tok: str, low: str, rest: tuple[str, ...]) -> Step:
        simple = _SIMPLE.get(low)
        if simple is not None:
            if low in ("permit", "reject", "defer", "check_relay_domains") and rest:
                return _with_after_warning(simple(self), low, rest[0])
            return simple(self)
        if low == "warn_if_reject":
            return _warn_if_reject
        if low in _SASL_MISMATCH:
            def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
                log.warning(f"restriction `{tok}' ignored: no SASL support")
                return DUNNO
            return step
        if low in ("reject_unverified_sender", "reject_unverified_recipient"):
            def unverified(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
                if tok not in self._warned:
                    self._warned.add(tok)
                    log.warning(f"restriction {tok}: address verification is not "
                                f"implemented; the restriction is ignored")
                return DUNNO
            return unverified
        name = tok

        def class_or_unknown(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
            steps = self.classes.get(name)
            if steps is None:
                log.warning(f'unknown smtpd restriction: "{name}"')
                self._server_error(ctx)
            if ctx.recursion > 150:      # Postfix has no guard here (it crashes)
                log.warning(f"restriction class {name} causes unreasonable recursion")
                self._server_error(ctx)
            return self._run(ctx, steps, rn, rc, acl)
        return class_or_unknown

    def _config_error_step(self, message: str) -> Step:
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            log.warning(message)
            self._server_error(ctx)
            return REJECT
        return step

    def _bad_map_arg_step(self, command: str, arg: str) -> Step:
        return self._config_error_step(
            f'restriction {command}: bad argument "{arg}": need maptype:mapname')

    def _bare_map_step(self, spec: str) -> Step:
        """`type:table` alone: the list's default access check."""
        steps = {acl: self._map_step(acl, spec) for acl in
                 (CHECK_CLIENT_ACL, CHECK_REVERSE_CLIENT_ACL, CHECK_HELO_ACL, CHECK_SENDER_ACL,
                  CHECK_RECIP_ACL, CHECK_ETRN_ACL)}

        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
            if acl is None:
                log.warning(f"specify one of ({CHECK_CLIENT_ACL}, {CHECK_REVERSE_CLIENT_ACL}, "
                            f"{CHECK_HELO_ACL}, {CHECK_SENDER_ACL}, {CHECK_RECIP_ACL}, "
                            f"{CHECK_ETRN_ACL}) before {rc} restriction \"{spec}\"")
                self._server_error(ctx)
            return steps[acl](ctx, rn, rc, acl)
        return step

    def _map_step(self, command: str, spec: str) -> Step:
        table = self._table(spec)
        if command == CHECK_CLIENT_ACL:
            def client(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> Awaitable[int]:
                c = ctx.st.client
                return self._check_namadr(ctx, table, c.name, c.addr, ctx.namaddr, CLIENT, acl)
            return client
        if command == CHECK_REVERSE_CLIENT_ACL:
            async def reverse(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
                c = ctx.st.client
                status = await self._check_namadr(ctx, table, c.reverse_name, c.addr,
                                                  c.reverse_name, REV_CLIENT, acl)
                if status == OK:
                    log.warning(f"restriction {command} returns OK for {c.reverse_name}")
                    log.warning("this is not allowed for security reasons")
                    log.warning("use DUNNO instead of OK if you want to make an exception")
                    self._server_error(ctx)
                return status
            return reverse
        if command == CHECK_HELO_ACL:
            def helo(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
                if ctx.helo is None:
                    return DUNNO
                return self._check_domain(ctx, table, ctx.helo, ctx.helo, HELO, acl)
            return helo
        if command == CHECK_SENDER_ACL:
            def sender(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
                s = ctx.sender
                if s is None:
                    return DUNNO
                if s:
                    return self._check_mail(ctx, table, s, s, SENDER, acl)
                return self._check_access(ctx, table, [self.search.null_key], s, SENDER, acl,
                                          self.search.null_key)
            return sender
        if command == CHECK_RECIP_ACL:
            def rcpt(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
                if ctx.recipient is None:
                    return DUNNO
                return self._check_mail(ctx, table, ctx.recipient, ctx.recipient, RECIPIENT, acl)
            return rcpt
        if command == CHECK_ETRN_ACL:
            def etrn(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
                if ctx.etrn is None:
                    return DUNNO
                return self._check_domain(ctx, table, ctx.etrn, ctx.etrn, ETRN, acl)
            return etrn
        if command in _SERVER_ACCESS:
            async def server(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
                hook = getattr(self.dns, "server_access", None)
                if not self.dns_configured or hook is None:
                    return DUNNO
                return await hook(self, ctx, command, table, rn, rc, acl)
            return server
        # TLS certificates, SASL logins: not available (yet)
        return _dunno

    def _policy_step(self, arg: str) -> Step:
        try:
            client = self.policy.register(arg)
        except _policy.PolicyError as e:
            return self._config_error_step(str(e))
        endpoint = client.endpoint

        async def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            action = await client.query(self._policy_attrs(ctx, client))
            if action is not None:
                return await _await(self._table_result(ctx, endpoint, action, "policy query",
                                                       rn, rc, acl))
            # the default action; guard against it failing the same way again
            ctx.policy_nesting += 1
            try:
                value = (client.settings.default_action if ctx.policy_nesting == 1
                         else _policy.DEFAULT_ACTION)
                return await _await(self._table_result(ctx, endpoint, value, "policy query",
                                                       rn, rc, acl))
            finally:
                ctx.policy_nesting -= 1
        return step

    def _sleep_step(self, seconds: int) -> Step:
        async def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            await asyncio.sleep(seconds)
            return DUNNO
        return step

    def _dnslist_step(self, command: str, domain: str) -> Step:
        """DNS white/black lists: need the DNS component (hook `dnslist`)."""
        async def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            hook = getattr(self.dns, "dnslist", None)
            if not self.dns_configured or hook is None:
                return DUNNO
            return await hook(self, ctx, command, domain, rn, rc)
        return step

    # -- running lists ----------------------------------------------------------

    async def _run(self, ctx: _Ctx, steps: Sequence[Step], rn: str, rc: str,
                   acl: str | None) -> int:
        """generic_checks()."""
        saved = ctx.recursion
        ctx.recursion = saved + 1
        status = DUNNO
        actions = ctx.st.actions
        ses = ctx.ses
        for step in steps:
            if actions.discard is not None:
                break
            try:
                r = step(ctx, rn, rc, acl)
                if r.__class__ is not int:
                    r = await r
            except LookupFailure:
                self._dict_retry(ctx, rn)
            if r == _MARK:
                continue
            if ctx.warn_if_reject >= ctx.recursion:
                ctx.warn_if_reject = 0
            if r:
                status = r
                break
            if ses.dip.active and ctx.dir.active:
                break
        ctx.recursion = saved
        if ctx.warn_if_reject >= ctx.recursion:
            ctx.warn_if_reject = 0
        return status

    async def _stage(self, ctx: _Ctx, steps: Sequence[Step], rn: str, rc: str,
                     acl: str | None) -> int:
        """One list behind a setjmp(): an abort is a REJECT (the caller did
        SMTPD_CHECK_RESET() where Postfix does)."""
        if not steps:
            return DUNNO
        try:
            return await self._run(ctx, steps, rn, rc, acl)
        except _Abort:
            return REJECT
        except (MapError, OSError, ValueError, LookupError, UnicodeError) as e:
            # a table or helper failing in an unforeseen way: never a traceback
            log.warning(f"{rc} restrictions: {type(e).__name__}: {e}")
            try:
                self._server_error(ctx)
            except _Abort:
                pass
            return REJECT

    # -- replies and logging ----------------------------------------------------

    def _log_whatsup(self, ctx: _Ctx, whatsup: str, text: str) -> None:
        st = ctx.st
        out = [f"{st.queue_id or 'NOQUEUE'}: {whatsup}: {ctx.where} from {ctx.namaddr}: {text};"]
        if ctx.sender is not None:
            out.append(f" from=<{external(ctx.sender)}>")
        if ctx.recipient is not None:
            out.append(f" to=<{external(ctx.recipient)}>")
        if st.protocol:
            out.append(f" proto={st.protocol}")
        if ctx.helo is not None:
            out.append(f" helo=<{ctx.helo}>")
        log.info("".join(out))

    def _reject(self, ctx: _Ctx, error_class: str, code: int, dsn: str, text: str) -> int:
        """smtpd_check_reject()."""
        warn = bool(ctx.warn_if_reject) and error_class not in (SOFTWARE, RESOURCE, "data")
        whatsup = "reject_warning" if warn else "reject"
        if code < 400 or code > 599:
            log.warning(f"SMTP reply code configuration error: {code} {dsn} {text}")
            code, dsn, text = 450, "4.7.1", "Service unavailable"
        elif _DSN_RX.fullmatch(dsn) is None:
            log.warning(f"DSN detail code configuration error: {code} {dsn} {text}")
            code, dsn, text = 450, "4.7.1", "Service unavailable"
        text = _printable_reply(text)
        text = text[:510 - len(dsn) - 5]
        if not warn and ctx.dir.active and code >= 500:
            ctx.warn_if_reject = 0
            d = ctx.dir
            d.active = False
            return self._reject(ctx, d.error_class, d.code, d.dsn, d.reason)
        if self.soft_bounce and code >= 500:
            code -= 100
        dsn = str(code)[0] + dsn[1:]
        reply = CheckReply(code, dsn, text, error_class=error_class)
        self._log_whatsup(ctx, whatsup, reply.line())
        if warn:
            return DUNNO
        ctx.reply = reply
        return REJECT

    def _server_error(self, ctx: _Ctx) -> None:
        """reject_server_error(): 451 4.3.5, abandon the whole check."""
        self._reject(ctx, SOFTWARE, 451, "4.3.5", "Server configuration error")
        raise _Abort

    def _dict_retry(self, ctx: _Ctx, reply_name: str) -> None:
        """reject_dict_retry(): 451 4.3.0, abandon the whole check."""
        self._reject(ctx, RESOURCE, 451, "4.3.0", f"<{reply_name}>: Temporary lookup failure")
        raise _Abort

    def _defer_if_permit(self, ctx: _Ctx, error_class: str, code: int, dsn: str,
                         text: str) -> int:
        if ctx.warn_if_reject == 0:
            ctx.ses.dip.set(error_class, code, dsn, text)
            return DUNNO
        self._reject(ctx, error_class, code, dsn, text)
        return DUNNO

    def _acl_permit(self, ctx: _Ctx, action: str, rc: str, rn: str,
                    table: str | None = None) -> int:
        """smtpd_acl_permit(): OK, logged when smtpd_log_access_permit_actions says so."""
        if self.permit_log and not ctx.ses.dip.active:
            try:
                hit = self.permit_log.match(action)
            except LookupFailure:
                hit = False
            if hit:
                tail = f" from {table}" if table is not None else " "
                self._log_whatsup(ctx, "permit", f"action={action} for {rc}={rn}{tail}")
        return OK

    # -- access tables ------------------------------------------------------------

    def _lookup(self, table: Table, lookups: Iterable[access.Lookup | str]
                ) -> tuple[str, str] | None:
        return access.first_match(table, lookups)

    def _lookup_failed(self, ctx: _Ctx, table: Table, e: BaseException, key: str) -> str:
        if isinstance(e, _Unavailable):
            log.warning(f"{table.spec} is unavailable. {e}")
        log.warning(f'{table.spec} lookup error for "{key}"')
        if isinstance(e, MapError | _Unavailable):
            return "451 4.3.5 Server configuration error"
        return "451 4.3.0 Temporary lookup failure"

    def _check_access(self, ctx: _Ctx, table: Table, keys: Sequence[str], rn: str, rc: str,
                      acl: str | None, datum: str) -> int | Awaitable[int]:
        """check_access(): one FULL lookup."""
        try:
            hit = self._lookup(table, keys)
        except (MapError, _Unavailable, OSError) as e:
            value = self._lookup_failed(ctx, table, e, keys[0])
            return self._table_result(ctx, table.spec, value, datum, rn, rc, acl)
        if hit is None:
            return DUNNO
        return self._table_result(ctx, table.spec, hit[1], datum, rn, rc, acl)

    def _check_domain(self, ctx: _Ctx, table: Table, domain: str, rn: str, rc: str,
                      acl: str | None, found: list[bool] | None = None) -> int | Awaitable[int]:
        """check_domain_access(): the name, then its parent domains."""
        lookups = access.domain_lookups(domain,
                                        parent_matches_subdomains=self.search.parent_matches_subdomains)
        try:
            hit = self._lookup(table, lookups)
        except (MapError, _Unavailable, OSError) as e:
            if found is not None:
                found.append(True)
            value = self._lookup_failed(ctx, table, e, domain)
            return self._table_result(ctx, table.spec, value, domain, rn, rc, acl)
        if hit is None:
            return DUNNO
        if found is not None:
            found.append(True)
        return self._table_result(ctx, table.spec, hit[1], domain, rn, rc, acl)

    async def _check_namadr(self, ctx: _Ctx, table: Table, name: str, addr: str, rn: str,
                            rc: str, acl: str | None) -> int:
        """check_namadr_access(): host name and parents, then the address and
        its network prefixes; a found DUNNO on the name ends the search."""
        found: list[bool] = []
        status = await _await(self._check_domain(ctx, table, name, rn, rc, acl, found))
        if status or found:
            return status
        lookups = access.ip_lookups(addr)
        if not lookups:
            return DUNNO
        try:
            hit = self._lookup(table, lookups)
        except (MapError, _Unavailable, OSError) as e:
            value = self._lookup_failed(ctx, table, e, addr)
            return await _await(self._table_result(ctx, table.spec, value, addr, rn, rc, acl))
        if hit is None:
            return DUNNO
        return await _await(self._table_result(ctx, table.spec, hit[1], addr, rn, rc, acl))

    def _resolve(self, ctx: _Ctx, addr: str) -> Resolution:
        try:
            return self.resolver.resolve(addr)
        except LookupFailure:
            self._dict_retry(ctx, addr)
            raise   # not reached

    def _check_mail(self, ctx: _Ctx, table: Table, addr: str, rn: str, rc: str,
                    acl: str | None) -> int | Awaitable[int]:
        """check_mail_access(): the resolved address in access(5) order."""
        res = self._resolve(ctx, addr)
        recipient = res.recipient
        if "@" not in recipient:
            log.warning(f"check_mail_access: no @domain in address: {recipient}")
            return DUNNO
        lookups = self._addr_lookups.get(recipient)
        if lookups is None:
            lookups = self.search.sender(recipient)
            if len(self._addr_lookups) >= 2048:
                self._addr_lookups.clear()
            self._addr_lookups[recipient] = lookups
        try:
            hit = self._lookup(table, lookups)
        except (MapError, _Unavailable, OSError) as e:
            value = self._lookup_failed(ctx, table, e, recipient)
            return self._table_result(ctx, table.spec, value, recipient, rn, rc, acl)
        if hit is None:
            return DUNNO
        status = self._table_result(ctx, table.spec, hit[1], recipient, rn, rc, acl)
        suspicious = (not self.allow_untrusted_routing and res.routed and rc == RECIPIENT)
        if not suspicious:
            return status
        if status.__class__ is int:
            return DUNNO if status == OK else status

        async def later() -> int:
            s = await status
            return DUNNO if s == OK else s
        return later()

    # -- check_table_result() ------------------------------------------------------

    def _can_delegate(self, ctx: _Ctx, table: str, action: str) -> bool:
        if ctx.where == "ETRN":
            log.warning(f"access table {table}: action {action} is unavailable in "
                        f"smtpd_etrn_restrictions")
            return False
        return self._not_in_client_helo(ctx, table, action)

    @staticmethod
    def _not_in_client_helo(ctx: _Ctx, table: str, action: str) -> bool:
        if ctx.sender is None:
            log.warning(f"access table {table}: with smtpd_delay_reject=no, action {action} "
                        f"is always skipped in {CLIENT} or {HELO} restrictions")
            return False
        return True

    def _table_result(self, ctx: _Ctx, table: str, value: str, datum: str, rn: str, rc: str,
                      acl: str | None) -> int | Awaitable[int]:
        """check_table_result(): interpret an access(5) value."""
        cut = len(value)
        for i, ch in enumerate(value):
            if ch in " \t":
                cut = i
                break
        cmd = value[:cut]
        text = value[cut:].lstrip(" \t")
        up = cmd.upper()
        actions = ctx.st.actions

        if up == "DUNNO":
            return DUNNO
        if up == "REJECT":
            dsn, txt = dsn_split("5.7.1", text)
            return self._reject(ctx, POLICY, self.code["access_map_reject_code"], dsn_fix(dsn, rc),
                                f"<{rn}>: {rc} rejected: {txt or 'Access denied'}")
        if up == "DEFER":
            dsn, txt = dsn_split("4.7.1", text)
            return self._reject(ctx, POLICY, self.code["access_map_defer_code"], dsn_fix(dsn, rc),
                                f"<{rn}>: {rc} rejected: {txt or 'Access denied'}")
        if up == "INFO":
            self._log_whatsup(ctx, "info", text)
            return DUNNO
        if up == "WARN":
            self._log_whatsup(ctx, "warn", text)
            return DUNNO
        if up == "FILTER":
            if not self._can_delegate(ctx, table, "FILTER"):
                return DUNNO
            if not text:
                log.warning(f'access table {table} entry "{datum}" has FILTER entry without value')
            elif ":" not in text:
                log.warning(f'access table {table} entry "{datum}" requires transport:destination')
            else:
                self._log_whatsup(ctx, "filter", f"<{rn}>: {rc} triggers FILTER {text}")
                actions.filter = text
            return DUNNO
        if up == "HOLD":
            if not self._can_delegate(ctx, table, "HOLD") or actions.hold is not None:
                return DUNNO
            reason = text or "triggers HOLD action"
            self._log_whatsup(ctx, "hold", f"<{rn}>: {rc} {reason}")
            actions.hold = reason
            return DUNNO
        if up == "DISCARD":
            if not self._can_delegate(ctx, table, "DISCARD"):
                return DUNNO
            reason = text or "triggers DISCARD action"
            self._log_whatsup(ctx, "discard", f"<{rn}>: {rc} {reason}")
            if actions.discard is None:
                actions.discard = reason
            return self._acl_permit(ctx, cmd, rc, rn, table)
        if up == "REDIRECT":
            if not self._can_delegate(ctx, table, "REDIRECT"):
                return DUNNO
            if "@" not in text:
                log.warning(f'access table {table} entry "{datum}" requires user@domain target')
            else:
                self._log_whatsup(ctx, "redirect", f"<{rn}>: {rc} triggers REDIRECT {text}")
                actions.redirect = text
            return DUNNO
        if up == "BCC":
            if not self._can_delegate(ctx, table, "BCC"):
                return DUNNO
            if "@" not in value:
                log.warning(f'access table {table} entry "{datum}" requires user@domain target')
            else:
                self._log_whatsup(ctx, "bcc", f"<{rn}>: {rc} triggers BCC {text}")
                actions.bcc.append(text)
            return DUNNO
        if up == "DEFER_IF_PERMIT":
            dsn, txt = dsn_split("4.7.1", text)
            return self._defer_if_permit(ctx, POLICY, self.code["access_map_defer_code"],
                                         dsn_fix(dsn, rc),
                                         f"<{rn}>: {rc} rejected: {txt or 'Service unavailable'}")
        if up == "DEFER_IF_REJECT":
            dsn, txt = dsn_split("4.7.1", text)
            ctx.dir.set(POLICY, self.code["access_map_defer_code"], dsn_fix(dsn, rc),
                        f"<{rn}>: {rc} rejected: {txt or 'Service unavailable'}")
            return DUNNO
        if up == "PREPEND":
            if not self._not_in_client_helo(ctx, table, "PREPEND"):
                return DUNNO
            if ctx.where == "END-OF-MESSAGE":
                log.warning(f"access table {table}: action PREPEND must be used before "
                            f"smtpd_end_of_data_restrictions")
                return DUNNO
            if not text or not _is_header(text):
                log.warning(f'access table {table} entry "{datum}" requires header: text')
                return DUNNO
            actions.prepend.append(text)
            return DUNNO
        if _alldig(value):
            return self._acl_permit(ctx, cmd, rc, rn, table)
        if (len(cmd) == 3 and text and cmd[0] in "45" and cmd[1].isdigit() and cmd[2].isdigit()
                and cmd.isascii()):
            dsn, txt = dsn_split(cmd[0] + ".7.1", text)
            return self._reject(ctx, POLICY, int(cmd), dsn_fix(dsn, rc),
                                f"<{rn}>: {rc} rejected: {txt or 'Access denied'}")
        if up in ("OK", "RELAY"):
            return self._acl_permit(ctx, cmd, rc, rn, table)
        if ":" in value:
            log.warning(f"access table {table} has entry with lookup table: {value}")
            log.warning("do not specify lookup tables inside SMTPD access maps")
            log.warning("define a restriction class and specify its name instead.")
            self._server_error(ctx)
        if ctx.recursion > 100:
            log.warning(f"access table {table} entry {value} causes unreasonable recursion")
            self._server_error(ctx)
        steps = self._value_lists.get(value)
        if steps is None:
            tokens = split_restrictions(value)
            if not tokens:
                log.warning(f"access table {table} entry {value} has empty value")
                return OK
            steps = self._compile(tokens)
            if len(self._value_lists) > 4096:
                self._value_lists.clear()
            self._value_lists[value] = steps
        return self._run(ctx, steps, rn, rc, acl)

    # -- address classes ------------------------------------------------------------

    def _permit_auth_destination(self, ctx: _Ctx, rcpt: str) -> int:
        res = self._resolve(ctx, rcpt)
        if "@" not in res.recipient:
            return OK
        if not self.allow_untrusted_routing and res.routed:
            return DUNNO
        if res.final or res.cls == RELAY:
            return OK
        return DUNNO

    def _reject_unauth_destination(self, ctx: _Ctx, rcpt: str, code: int, dsn: str) -> int:
        if self._permit_auth_destination(ctx, rcpt) == OK:
            return DUNNO
        return self._reject(ctx, POLICY, code, dsn, f"<{rcpt}>: Relay access denied")

    def _addr_find(self, tables: Sequence[Table], address: str, ctx: _Ctx) -> bool:
        """mail_addr_find() over a map list: user+ext@domain, user@domain,
        (user+ext, user when the domain is local), @domain."""
        if not tables:
            return False
        addr = address.lower()
        at = addr.rfind("@")
        local, domain = (addr[:at], addr[at + 1:]) if at >= 0 else (addr, "")
        keys: list[access.Lookup] = []

        def add(key: str, partial: bool) -> None:
            ext = access.quote_822_local(key) if "@" in key else key
            keys.append(access.Lookup(ext, partial))
            if ext != key:
                keys.append(access.Lookup(key, partial))

        add(addr, False)
        bare = access.strip_extension(addr, self.search.delimiters, self.double_bounce)
        if bare is not None:
            add(bare, True)
        if domain and self._is_local(domain):
            add(local, True)
            if bare is not None:
                add(bare[:bare.rfind("@")], True)
        if domain:
            keys.append(access.Lookup("@" + domain, True))
        for lk in keys:
            for t in tables:
                if lk.partial and access.is_pattern_table(t):
                    continue
                try:
                    if t.lookup(lk.key) is not None:
                        return True
                except (MapError, _Unavailable, OSError) as e:
                    if isinstance(e, _Unavailable):
                        log.warning(f"{t.spec} is unavailable. {e}")
                    log.warning(f'{t.spec} lookup error for "{lk.key}"')
                    self._dict_retry(ctx, address)
        return False

    def _rcpt_maps(self, ctx: _Ctx, addr: str, rc: str) -> int:
        """check_rcpt_maps(): reject unknown users in local, virtual and
        relay domains."""
        res = self._resolve(ctx, addr)
        rr = res.recipient
        if (self._addr_find(self.rcpt_canonical_maps, rr, ctx)
                or (rc == SENDER and self._addr_find(self.sender_canonical_maps, rr, ctx))
                or self._addr_find(self.canonical_maps, rr, ctx)
                or self._addr_find(self.virtual_alias_maps, rr, ctx)):
            return DUNNO
        table = " in %s table"
        if res.cls == ALIAS:
            nexthop = "5.1.1 User unknown" + (table % "virtual alias" if self.show_table else "")
            dsn, txt = dsn_split("5.1.0" if rc == SENDER else "5.1.1", nexthop)
            return self._reject(ctx, BOUNCE, self.code["unknown_virtual_alias_reject_code"],
                                dsn_fix(dsn, rc), f"<{addr}>: {rc} rejected: {txt}")
        dsn = "5.1.0" if rc == SENDER else "5.1.1"
        if res.cls == LOCAL:
            left = res.localpart.lower()
            if (self.local_rcpt_maps
                    and left not in (self.double_bounce.lower(), "postmaster", "mailer-daemon")
                    and not self._addr_find(self.local_rcpt_maps, rr, ctx)):
                return self._reject(
                    ctx, BOUNCE, self.code["unknown_local_recipient_reject_code"], dsn,
                    f"<{addr}>: {rc} rejected: User unknown"
                    + (table % "local recipient" if self.show_table else ""))
        elif res.cls == VIRTUAL:
            if self.virtual_mailbox_maps and not self._addr_find(self.virtual_mailbox_maps, rr, ctx):
                return self._reject(
                    ctx, BOUNCE, self.code["unknown_virtual_mailbox_reject_code"], dsn,
                    f"<{addr}>: {rc} rejected: User unknown"
                    + (table % "virtual mailbox" if self.show_table else ""))
        elif res.cls == RELAY:
            if self.relay_rcpt_maps and not self._addr_find(self.relay_rcpt_maps, rr, ctx):
                return self._reject(
                    ctx, BOUNCE, self.code["unknown_relay_recipient_reject_code"], dsn,
                    f"<{addr}>: {rc} rejected: User unknown"
                    + (table % "relay recipient" if self.show_table else ""))
        return DUNNO

    def _check_recipient_rcpt_maps(self, ctx: _Ctx, rcpt: str) -> int:
        if ctx.rcpt_checked:
            return DUNNO
        if ctx.warn_if_reject == 0:
            ctx.rcpt_checked = True
        return self._rcpt_maps(ctx, rcpt, RECIPIENT)

    def _check_sender_rcpt_maps(self, ctx: _Ctx, sender: str) -> int:
        if ctx.sender_checked:
            return DUNNO
        if ctx.warn_if_reject == 0:
            ctx.sender_checked = True
        return self._rcpt_maps(ctx, sender, SENDER)

    # -- host names -----------------------------------------------------------------

    def _reject_invalid_hostaddr(self, ctx: _Ctx, addr: str, rn: str, rc: str) -> int:
        test = addr[1:-1] if len(addr) > 2 and addr[0] == "[" and addr[-1] == "]" else addr
        if valid_mailhost_addr(test) is None:
            return self._reject(ctx, POLICY, self.code["invalid_hostname_reject_code"], "5.5.2",
                                f"<{rn}>: {rc} rejected: invalid ip address")
        return DUNNO

    def _reject_invalid_hostname(self, ctx: _Ctx, name: str, rn: str, rc: str) -> int:
        test = strip_one_dot(name)
        if not valid_hostname(test) and not valid_hostaddr(test):
            return self._reject(ctx, POLICY, self.code["invalid_hostname_reject_code"], "5.5.2",
                                f"<{rn}>: {rc} rejected: Invalid name")
        return DUNNO

    def _reject_non_fqdn_hostname(self, ctx: _Ctx, name: str, rn: str, rc: str) -> int:
        test = strip_one_dot(name)
        if not valid_hostname(test) or "." not in test:
            return self._reject(ctx, POLICY, self.code["non_fqdn_reject_code"], "4.5.2",
                                f"<{rn}>: {rc} rejected: need fully-qualified hostname")
        return DUNNO

    def _reject_non_fqdn_address(self, ctx: _Ctx, addr: str, rn: str, rc: str) -> int:
        at = addr.rfind("@")
        domain = addr[at + 1:] if at >= 0 else ""
        if domain.startswith("[") and domain.endswith("]"):
            return DUNNO
        test = strip_one_dot(domain)
        if not test or not valid_utf8_hostname(test, self.resolver.smtputf8) or "." not in test:
            return self._reject(ctx, POLICY, self.code["non_fqdn_reject_code"], "4.5.2",
                                f"<{rn}>: {rc} rejected: need fully-qualified address")
        return DUNNO

    async def _reject_unknown_hostname(self, ctx: _Ctx, name: str, rn: str, rc: str) -> int:
        status = await self.dns.host_status(name)
        if status is None or status in (DNS_OK, DNS_NULLMX):
            return DUNNO
        if status == DNS_POLICY:
            log.warning(f"{name}: address or MX lookup error: DNS reply filter drops all results")
            return DUNNO
        why = "Malformed DNS server reply" if status == DNS_INVAL else None
        if status != DNS_RETRY:
            return self._reject(ctx, POLICY, self.code["unknown_hostname_reject_code"], "4.7.1",
                                f"<{rn}>: {rc} rejected: {why or 'Host not found'}")
        if self.unk_name_tf_defer:
            return self._reject(ctx, POLICY, 450, "4.7.1", f"<{rn}>: {rc} rejected: Host not found")
        return self._defer_if_permit(ctx, POLICY, 450, "4.7.1",
                                     f"<{rn}>: {rc} rejected: Host not found")

    async def _reject_unknown_address(self, ctx: _Ctx, addr: str, rn: str, rc: str) -> int:
        res = self._resolve(ctx, addr)
        at = res.recipient.rfind("@")
        if at < 0 or res.final:
            return DUNNO
        domain = res.recipient[at + 1:]
        if domain.startswith("[") and domain.endswith("]"):
            return DUNNO
        status = await self.dns.mailhost_status(domain)
        if status is None or status == DNS_OK:
            return DUNNO
        if status == DNS_POLICY:
            log.warning(f"{domain}: MX or address lookup error: DNS reply filter drops all results")
            return DUNNO
        is_sender = rc == SENDER
        if status == DNS_NULLMX:
            return self._reject(ctx, POLICY, 550 if is_sender else 556,
                                "5.7.27" if is_sender else "5.1.10",
                                f"<{rn}>: {rc} rejected: Domain {domain} "
                                f"does not accept mail (nullMX)")
        dsn = "4.1.8" if is_sender else "4.1.2"
        why = "Malformed DNS server reply" if status == DNS_INVAL else "Domain not found"
        if status != DNS_RETRY:
            return self._reject(ctx, POLICY, self.code["unknown_address_reject_code"], dsn,
                                f"<{rn}>: {rc} rejected: {why}")
        if self.unk_addr_tf_defer:
            return self._reject(ctx, POLICY, 450, dsn, f"<{rn}>: {rc} rejected: Domain not found")
        return self._defer_if_permit(ctx, POLICY, 450, dsn,
                                     f"<{rn}>: {rc} rejected: Domain not found")

    # -- policy requests ------------------------------------------------------------

    def _instance(self, ctx: _Ctx) -> str:
        ses = ctx.ses
        key = id(ctx.st.actions)
        if ses.instance_key != key:
            now = time.time()
            ses.instance = (f"{os.getpid():x}.{int(now):x}.{int((now % 1) * 1e6):x}."
                            f"{ses.seqno:x}")
            ses.seqno += 1
            ses.instance_key = key
        return ses.instance

    def _policy_attrs(self, ctx: _Ctx, client: _policy.PolicyClient) -> list[tuple[str, str]]:
        st = ctx.st
        c = st.client
        where = "DATA" if ctx.where == "BDAT" else ctx.where
        count = len(st.recipients) if ctx.where in ("DATA", "BDAT", "END-OF-MESSAGE") else 0
        return [
            ("request", "smtpd_access_policy"), ("protocol_state", where),
            ("protocol_name", st.protocol or ""), ("client_address", c.addr),
            ("client_name", c.name), ("client_port", c.port),
            ("reverse_client_name", c.reverse_name), ("server_address", st.server_addr),
            ("server_port", st.server_port), ("helo_name", ctx.helo or ""),
            ("sender", ctx.sender or ""), ("recipient", ctx.recipient or ""),
            ("recipient_count", str(count)), ("queue_id", st.queue_id or ""),
            ("instance", self._instance(ctx)), ("size", str(max(st.message_size, 0))),
            ("etrn_domain", ctx.etrn or ""), ("stress", ""), ("sasl_method", ""),
            ("sasl_username", st.sasl_username or ""), ("sasl_sender", ""),
            ("ccert_subject", ""), ("ccert_issuer", ""), ("ccert_fingerprint", ""),
            ("ccert_pubkey_fingerprint", ""), ("encryption_protocol", ""),
            ("encryption_cipher", ""), ("encryption_keysize", "0"),
            ("policy_context", client.settings.policy_context),
        ]

    # -- the protocol stages (smtpd_check_*) -------------------------------------------

    @staticmethod
    def _session(st: SessionState) -> SessionChecks:
        ses = getattr(st, "check_state", None)
        if not isinstance(ses, SessionChecks):
            ses = SessionChecks()
            try:
                st.check_state = ses       # type: ignore[attr-defined]
            except AttributeError:
                pass
        return ses

    async def _client_stage(self, ctx: _Ctx) -> CheckReply | None:
        st = ctx.st
        if not st.client.addr:
            return None
        ses = ctx.ses
        ses.dip.active = False
        ctx.reset()
        status = await self._stage(ctx, self.client_list, ctx.namaddr, CLIENT, CHECK_CLIENT_ACL)
        ses.dip_client = ses.dip.active
        return ctx.reply if status == REJECT else None

    async def _helo_stage(self, ctx: _Ctx, helo: str | None) -> CheckReply | None:
        if helo is None:
            return None
        saved, ctx.helo = ctx.helo, helo
        ses = ctx.ses
        ses.dip.active = ses.dip_client
        ctx.reset()
        status = await self._stage(ctx, self.helo_list, helo, HELO, CHECK_HELO_ACL)
        ses.dip_helo = ses.dip.active
        if status == REJECT:
            return ctx.reply
        ctx.helo = saved
        return None

    async def _sender_stage(self, ctx: _Ctx, sender: str | None) -> CheckReply | None:
        if sender is None:
            return None
        saved, ctx.sender = ctx.sender, sender
        ses = ctx.ses
        ses.dip.active = ses.dip_client or ses.dip_helo
        ctx.sender_checked = False
        ctx.reset()
        status = await self._stage(ctx, self.sender_list, sender, SENDER, CHECK_SENDER_ACL)
        if (self.reject_unlisted_sender and status != REJECT and not ctx.sender_checked
                and ctx.st.actions.discard is None and sender):
            try:
                status = self._check_sender_rcpt_maps(ctx, sender)
            except _Abort:
                status = REJECT
        ses.dip_sender = ses.dip.active
        ctx.sender = saved
        return ctx.reply if status == REJECT else None

    def _finish_dip(self, ctx: _Ctx, status: int) -> int:
        """Force permission into deferral when defer_if_permit is pending."""
        dip = ctx.ses.dip
        if status != REJECT and dip.active:
            return self._reject(ctx, dip.error_class, dip.code, dip.dsn, dip.reason)
        return status

    async def _check_rcpt(self, st: SessionState, rcpt: str, where: str) -> CheckReply | None:
        if rcpt.lower() == "postmaster":
            return None
        ses = self._session(st)
        ctx = _Ctx(st, ses, where)
        ctx.recipient = rcpt
        if self.delay_reject:
            r = (await self._client_stage(ctx) or await self._helo_stage(ctx, st.helo_name)
                 or await self._sender_stage(ctx, st.sender))
            if r is not None:
                return r
        ses.dip.active = ses.dip_sender
        ctx.rcpt_checked = False
        if self.warn_compat_relay:
            lists = ((self.rcpt_list, False), (self.fake_relay_list, True))
        else:
            lists = ((self.relay_list, False), (self.rcpt_list, False))
        status = DUNNO
        ctx.reset()
        for steps, fake in lists:
            status = await self._stage(ctx, steps, rcpt, RECIPIENT, CHECK_RECIP_ACL)
            if fake and status == DUNNO:
                log.info('using backwards-compatible default setting "smtpd_relay_restrictions '
                         f'= (empty)" to avoid "Relay access denied" error for recipient '
                         f'"{rcpt}" from client "{ctx.namaddr}"')
            if status == REJECT:
                break
        status = self._finish_dip(ctx, status)
        if (self.reject_unlisted_rcpt and status != REJECT and not ctx.rcpt_checked
                and st.actions.discard is None):
            try:
                status = self._check_recipient_rcpt_maps(ctx, rcpt)
            except _Abort:
                status = REJECT
        return ctx.reply if status == REJECT else None

    # -- public API ----------------------------------------------------------------------

    async def connect(self, st: SessionState) -> CheckReply | None:
        """smtpd_client_restrictions at connect time (smtpd_delay_reject = no)."""
        if self.delay_reject:
            return None
        ctx = _Ctx(st, self._session(st), "CONNECT")
        ctx.sender = ctx.helo = None
        return await self._client_stage(ctx)

    async def helo(self, st: SessionState, name: str | None = None, *,
                   command: str | None = None) -> CheckReply | None:
        """smtpd_helo_restrictions for HELO/EHLO `name` (default st.helo_name)
        when smtpd_delay_reject = no.  `command`: "HELO" or "EHLO" for the
        log (default: from st.protocol)."""
        if self.delay_reject:
            return None
        helo = st.helo_name if name is None else name
        where = command.upper() if command else (
            "EHLO" if (st.protocol or "").upper().startswith("ESMTP") else "HELO")
        ctx = _Ctx(st, self._session(st), where)
        ctx.sender = None
        return await self._helo_stage(ctx, helo)

    async def mail(self, st: SessionState) -> CheckReply | None:
        """smtpd_sender_restrictions at MAIL FROM (smtpd_delay_reject = no)."""
        if self.delay_reject:
            return None
        ctx = _Ctx(st, self._session(st), "MAIL")
        return await self._sender_stage(ctx, st.sender)

    async def rcpt(self, st: SessionState) -> CheckReply | None:
        """Everything for RCPT TO `st.recipient`."""
        if st.recipient is None:
            return None
        return await self._check_rcpt(st, st.recipient, "RCPT")

    async def vrfy(self, st: SessionState, address: str) -> CheckReply | None:
        """VRFY: the recipient checks for `address`."""
        return await self._check_rcpt(st, address, "VRFY")

    async def data(self, st: SessionState, *, command: str = "DATA") -> CheckReply | None:
        """smtpd_data_restrictions (DATA, or the first BDAT)."""
        ctx = _Ctx(st, self._session(st), command.upper())
        ctx.recipient = st.recipients[0] if len(st.recipients) == 1 else None
        ctx.ses.dip.active = False
        ctx.reset()
        status = await self._stage(ctx, self.data_list, "DATA", DATA, None)
        status = self._finish_dip(ctx, status)
        return ctx.reply if status == REJECT else None

    async def end_of_data(self, st: SessionState) -> CheckReply | None:
        """smtpd_end_of_data_restrictions, after the message content."""
        ctx = _Ctx(st, self._session(st), "END-OF-MESSAGE")
        ctx.recipient = st.recipients[0] if len(st.recipients) == 1 else None
        ctx.ses.dip.active = False
        ctx.reset()
        status = await self._stage(ctx, self.eod_list, "END-OF-MESSAGE", EOD, None)
        status = self._finish_dip(ctx, status)
        return ctx.reply if status == REJECT else None

    async def etrn(self, st: SessionState, domain: str) -> CheckReply | None:
        """smtpd_etrn_restrictions for ETRN `domain`."""
        ses = self._session(st)
        ctx = _Ctx(st, ses, "ETRN")
        ctx.sender = None
        if self.delay_reject:
            r = await self._client_stage(ctx) or await self._helo_stage(ctx, st.helo_name)
            if r is not None:
                return r
        ctx.etrn = domain
        ses.dip.active = ses.dip_client or ses.dip_helo
        ctx.reset()
        status = await self._stage(ctx, self.etrn_list, domain, ETRN, CHECK_ETRN_ACL)
        status = self._finish_dip(ctx, status)
        return ctx.reply if status == REJECT else None

    def close(self) -> None:
        """Close pooled policy service connections."""
        self.policy.close()


# ---------------------------------------------------------------------------
# Simple restrictions (no argument)

async def _await(r: int | Awaitable[int]) -> int:
    return r if r.__class__ is int else await r   # type: ignore[misc]


def _dunno(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
    return DUNNO


def _warn_if_reject(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
    if ctx.warn_if_reject == 0:
        ctx.warn_if_reject = ctx.recursion
    return _MARK


def _with_after_warning(step: Step, name: str, after: str) -> Step:
    def wrapped(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
        r = step(ctx, rn, rc, acl)
        if r.__class__ is not int:
            return r
        if (name == "permit" and r == OK) or (name != "permit" and ctx.warn_if_reject == 0):
            log.warning(f"restriction `{after}' after `{name}' is ignored")
        return r
    return wrapped


def _s_permit(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        return e._acl_permit(ctx, "permit", rc, rn)
    return step


def _s_reject(e: RestrictionEngine) -> Step:
    code = e.code["reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        return e._reject(ctx, POLICY, code, "5.7.1", f"<{rn}>: {rc} rejected: Access denied")
    return step


def _s_defer(e: RestrictionEngine) -> Step:
    code = e.code["defer_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        return e._reject(ctx, POLICY, code, "4.3.2", f"<{rn}>: {rc} rejected: Try again later")
    return step


def _s_defer_if_permit(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        return e._defer_if_permit(ctx, POLICY, 450, "4.7.0",
                                  f"<{rn}>: {rc} rejected: defer_if_permit requested")
    return step


def _s_defer_if_reject(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        ctx.dir.set(POLICY, 450, "4.7.0", f"<{rn}>: {rc} rejected: defer_if_reject requested")
        return DUNNO
    return step


def _s_reject_unauth_pipelining(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        st = ctx.st
        if st.pipelined and not st.ehlo_seen_pipelining:
            return e._reject(ctx, PROTOCOL, 503, "5.5.0",
                             f"<{rn}>: {rc} rejected: Improper use of SMTP command pipelining")
        return DUNNO
    return step


def _s_reject_plaintext_session(e: RestrictionEngine) -> Step:
    code = e.code["plaintext_reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        if not ctx.st.tls:
            return e._reject(ctx, POLICY, code, "4.7.1", "Session encryption is required")
        return DUNNO
    return step


def _s_reject_unknown_client(e: RestrictionEngine) -> Step:
    code = e.code["unknown_client_reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        c = ctx.st.client
        if c.name_status != 2:
            return e._reject(ctx, POLICY, code if c.name_status >= 5 else 450, "4.7.25",
                             f"Client host rejected: cannot find your hostname, [{c.addr}]")
        return DUNNO
    return step


def _s_reject_unknown_reverse(e: RestrictionEngine) -> Step:
    code = e.code["unknown_client_reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        c = ctx.st.client
        if c.reverse_name_status != 2:
            return e._reject(ctx, POLICY, code if c.reverse_name_status >= 5 else 450, "4.7.1",
                             f"Client host rejected: cannot find your reverse hostname, [{c.addr}]")
        return DUNNO
    return step


def _s_permit_mynetworks(e: RestrictionEngine) -> Step:
    nets = e.mynetworks

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        c = ctx.st.client
        if nets.match(c.name, c.addr):
            return e._acl_permit(ctx, "permit_mynetworks", CLIENT, ctx.namaddr)
        return DUNNO
    return step


def _s_permit_inet_interfaces(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        try:
            ip = ipaddress.ip_address(ctx.st.client.addr)
        except ValueError:
            return DUNNO
        if ip in e.own:
            return e._acl_permit(ctx, "permit_inet_interfaces", CLIENT, ctx.namaddr)
        return DUNNO
    return step


def _s_helo_check(kind: str) -> Callable[[RestrictionEngine], Step]:
    def make(e: RestrictionEngine) -> Step:
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
            h = ctx.helo
            if h is None:
                return DUNNO
            if h.startswith("["):
                return e._reject_invalid_hostaddr(ctx, h, h, HELO)
            if kind == "invalid":
                return e._reject_invalid_hostname(ctx, h, h, HELO)
            if kind == "non_fqdn":
                return e._reject_non_fqdn_hostname(ctx, h, h, HELO)
            if not e.dns_configured:
                return DUNNO
            return e._reject_unknown_hostname(ctx, h, h, HELO)
        return step
    return make


def _s_permit_naked_ip(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        log.warning("restriction permit_naked_ip_address is deprecated. "
                    "Use permit_mynetworks or permit_sasl_authenticated instead")
        h = ctx.helo
        if h is not None and not h.strip("0123456789.:"):
            if e._reject_invalid_hostaddr(ctx, h, h, HELO) == DUNNO:
                return e._acl_permit(ctx, "permit_naked_ip_address", HELO, h)
        return DUNNO
    return step


def _s_non_fqdn_addr(which: str) -> Callable[[RestrictionEngine], Step]:
    def make(e: RestrictionEngine) -> Step:
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            if which == "sender":
                s = ctx.sender
                if s:
                    return e._reject_non_fqdn_address(ctx, s, s, SENDER)
                return DUNNO
            r = ctx.recipient
            if r is not None:
                return e._reject_non_fqdn_address(ctx, r, r, RECIPIENT)
            return DUNNO
        return step
    return make


def _s_unknown_addr(which: str) -> Callable[[RestrictionEngine], Step]:
    def make(e: RestrictionEngine) -> Step:
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
            addr = ctx.sender if which == "sender" else ctx.recipient
            if not addr or not e.dns_configured:
                return DUNNO
            return e._reject_unknown_address(ctx, addr, addr,
                                             SENDER if which == "sender" else RECIPIENT)
        return step
    return make


def _s_unlisted(which: str) -> Callable[[RestrictionEngine], Step]:
    def make(e: RestrictionEngine) -> Step:
        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            if which == "sender":
                s = ctx.sender
                return e._check_sender_rcpt_maps(ctx, s) if s else DUNNO
            r = ctx.recipient
            return e._check_recipient_rcpt_maps(ctx, r) if r is not None else DUNNO
        return step
    return make


def _s_permit_auth_destination(e: RestrictionEngine) -> Step:
    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        r = ctx.recipient
        if r is None:
            return DUNNO
        if e._permit_auth_destination(ctx, r) == OK:
            return e._acl_permit(ctx, "permit_auth_destination", RECIPIENT, r)
        return DUNNO
    return step


def _s_unauth_destination(defer: bool) -> Callable[[RestrictionEngine], Step]:
    def make(e: RestrictionEngine) -> Step:
        code = e.code["relay_domains_reject_code"] - (100 if defer else 0)
        dsn = "4.7.1" if defer else "5.7.1"

        def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
            r = ctx.recipient
            if r is None:
                return DUNNO
            return e._reject_unauth_destination(ctx, r, code, dsn)
        return step
    return make


def _s_check_relay_domains(e: RestrictionEngine) -> Step:
    code = e.code["relay_domains_reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        r = ctx.recipient
        if r is None:
            return DUNNO
        if "check_relay_domains" not in e._warned:
            e._warned.add("check_relay_domains")
            log.warning('support for restriction "check_relay_domains" has been removed in '
                        'Postfix 2.2; use "reject_unauth_destination" instead')
        if e.relay_domains and e.relay_domains.match(ctx.st.client.name):
            return OK
        if e._permit_auth_destination(ctx, r) == OK:
            return OK
        return e._reject(ctx, POLICY, code, "5.7.1",
                         f"<{r}>: {RECIPIENT} rejected: Relay access denied")
    return step


def _s_multi_rcpt_bounce(e: RestrictionEngine) -> Step:
    code = e.code["multi_recipient_bounce_reject_code"]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        count = len(ctx.st.recipients)
        if ctx.sender == "" and count > (0 if ctx.where == "RCPT" else 1):
            return e._reject(ctx, POLICY, code, "5.5.3",
                             f"<{rn}>: {rc} rejected: Multi-recipient bounce")
        return DUNNO
    return step


def _s_dns_only(e: RestrictionEngine) -> Step:
    """permit_mx_backup: needs the DNS component (hook `mx_backup`)."""
    async def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        hook = getattr(e.dns, "mx_backup", None)
        if not e.dns_configured or hook is None or ctx.recipient is None:
            return DUNNO
        return await hook(e, ctx)
    return step


def _s_maps_rbl(e: RestrictionEngine) -> Step:
    """reject_maps_rbl: needs the DNS component (hook `maps_rbl`)."""
    async def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int:
        hook = getattr(e.dns, "maps_rbl", None)
        if not e.dns_configured or hook is None:
            return DUNNO
        return await hook(e, ctx)
    return step


def _s_check_greylist(e: RestrictionEngine) -> Step:
    """check_greylist: postgrey's greylisting in-process (postier.policy.greylist;
    reads the greylist_* parameters), answered like a policy server's action."""
    from postier.policy.greylist import Greylist, settings_from_config
    g = getattr(e, "greylist", None)
    if g is None:
        g = e.greylist = Greylist(settings_from_config(e.params.optional))  # type: ignore[attr-defined]

    def step(ctx: _Ctx, rn: str, rc: str, acl: str | None) -> int | Awaitable[int]:
        st = ctx.st
        attrs = {"client_address": st.client.addr, "client_name": st.client.name,
                 "sender": ctx.sender or "", "recipient": ctx.recipient or "",
                 "instance": e._instance(ctx), "queue_id": st.queue_id or "", "etrn_domain": ""}
        if g.sync:
            try:
                action = g.decide(attrs)
            except (PostierError, OSError) as err:
                log.warning(f"check_greylist: {err}")
                action = _policy.DEFAULT_ACTION
            return e._table_result(ctx, "check_greylist", action, "greylist", rn, rc, acl)

        async def run() -> int:
            try:
                action = await g.adecide(attrs)
            except (PostierError, OSError) as err:
                log.warning(f"check_greylist: {err}")
                action = _policy.DEFAULT_ACTION
            return await _await(e._table_result(ctx, "check_greylist", action, "greylist",
                                                rn, rc, acl))
        return run()
    return step


def _s_dunno(e: RestrictionEngine) -> Step:
    return _dunno


_SIMPLE: dict[str, Callable[[RestrictionEngine], Step]] = {
    "permit": _s_permit,
    "reject": _s_reject,
    "defer": _s_defer,
    "defer_if_permit": _s_defer_if_permit,
    "defer_if_reject": _s_defer_if_reject,
    "reject_unauth_pipelining": _s_reject_unauth_pipelining,
    "reject_plaintext_session": _s_reject_plaintext_session,
    "reject_unknown_client_hostname": _s_reject_unknown_client,
    "reject_unknown_reverse_client_hostname": _s_reject_unknown_reverse,
    "permit_mynetworks": _s_permit_mynetworks,
    "permit_inet_interfaces": _s_permit_inet_interfaces,
    "permit_sasl_authenticated": _s_dunno,
    "permit_tls_clientcerts": _s_dunno,
    "permit_tls_all_clientcerts": _s_dunno,
    "reject_maps_rbl": _s_maps_rbl,
    "reject_invalid_helo_hostname": _s_helo_check("invalid"),
    "reject_non_fqdn_helo_hostname": _s_helo_check("non_fqdn"),
    "reject_unknown_helo_hostname": _s_helo_check("unknown"),
    "permit_naked_ip_address": _s_permit_naked_ip,
    "reject_non_fqdn_sender": _s_non_fqdn_addr("sender"),
    "reject_non_fqdn_recipient": _s_non_fqdn_addr("recipient"),
    "reject_unknown_sender_domain": _s_unknown_addr("sender"),
    "reject_unknown_recipient_domain": _s_unknown_addr("recipient"),
    "reject_unlisted_sender": _s_unlisted("sender"),
    "reject_unlisted_recipient": _s_unlisted("recipient"),
    "permit_auth_destination": _s_permit_auth_destination,
    "reject_unauth_destination": _s_unauth_destination(False),
    "defer_unauth_destination": _s_unauth_destination(True),
    "check_relay_domains": _s_check_relay_domains,
    "reject_multi_recipient_bounce": _s_multi_rcpt_bounce,
    "permit_mx_backup": _s_dns_only,
    "check_greylist": _s_check_greylist,
}
