"""The DNS-based SMTP restrictions: the `dns` hook object of the restriction engine.

    engine = RestrictionEngine(cfg)
    engine.use_dns(DnsChecks(engine, resolver))     # SmtpdServer does this

Implements, with Postfix 3.7's semantics, replies and log lines
(smtpd_check.c; the texts were recorded from a real Postfix pointed at the
same test DNS, see tests/integration/dns/):

* reject_unknown_helo_hostname (host_status: A, AAAA and MX asked at once,
  evaluated in Postfix's order), reject_unknown_sender_domain /
  reject_unknown_recipient_domain (mailhost_status: MX, A, AAAA); the engine
  turns the status into the reply (and applies
  unknown_helo_hostname_tempfail_action / unknown_address_tempfail_action).
* DNS lists (dnslist): reject_rbl_client, reject_rhsbl_client,
  reject_rhsbl_reverse_client, reject_rhsbl_helo, reject_rhsbl_sender,
  reject_rhsbl_recipient, permit_dnswl_client, permit_rhswl_client, and the
  obsolete reject_maps_rbl (maps_rbl).  `domain=127.0.0.2` /
  `domain=127.0.0.[2..11;20]` filters (Postfix's ip_match syntax); the TXT
  records (joined with " / ", at most 500 characters) are $rbl_reason; the
  reply comes from rbl_reply_maps (looked up by the restriction argument) or
  default_rbl_reply, expanded with $rbl_code $rbl_domain $rbl_what
  $rbl_class $rbl_reason $rbl_txt $client $client_address $client_name
  $client_port $reverse_client_name $helo_name $sender $sender_name
  $sender_domain $recipient $recipient_name $recipient_domain $server_name
  (values filtered through smtpd_expansion_filter).  A DNS failure of a DNS
  *black*list is not a rejection: Postfix logs "warning: NAME: RBL lookup
  error: ..." and goes on (DUNNO); a failure of a *white*list defers
  (defer_if_reject, "450 4.7.1 <what>: ... rejected: Service unavailable").
* Pre-fetch: the engine calls prefetch() when it starts a restriction list
  that names DNS lists; every list query of that list (A, then TXT when
  listed) starts at once, and each restriction then collects its answer in
  list order.
* check_{client,reverse_client_hostname,helo,sender,recipient}_{mx,ns,a}_access
  (server_access): the MX (or NS, walking up to the parent domains when a
  name has none) host names of the domain, then their addresses, looked up
  in the access table: a name without MX counts as its own MX host, an
  [address] literal as its own server; OK results are refused (451 4.3.5,
  "this is not allowed for security reasons").  All MX hosts' addresses are
  asked for at once.
* permit_mx_backup (mx_backup) with permit_mx_backup_networks.

Host addresses that Postfix gets from getaddrinfo() (MX host addresses,
permit_mx_backup) come from /etc/hosts first, then DNS, as with NSS.

Parameters read (through the engine): rbl_reply_maps, default_rbl_reply,
maps_rbl_reject_code, maps_rbl_domains, smtpd_expansion_filter,
permit_mx_backup_networks, parent_domain_matches_subdomains, inet_protocols,
myhostname, mail_name, allow_untrusted_routing.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from postier import log
from postier.config.maincf import MacroError, mac_expand
from postier.dns import (
    HOST_NOT_FOUND,
    INVAL,
    NOTFOUND,
    NULLMX,
    OK,
    POLICY,
    RETRY,
    SYSTEM_HOSTS,
    Answer,
    HostsFile,
    Resolver,
    best_status,
)
from postier.errors import MapError
from postier.maps import access
from postier.smtpd import restrictions as R
from postier.smtpd.address import valid_hostname, valid_mailhost_addr

DEFAULT_RBL_REPLY = ("$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
                     "$rbl_domain${rbl_reason?; $rbl_reason}")
DEFAULT_EXPANSION_FILTER = ("\\t\\40!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~")
RBL_TXT_LIMIT = 500

# getaddrinfo() error texts (glibc), as Postfix logs them
EAI_NONAME = "Name or service not known"
EAI_NODATA = "No address associated with hostname"
EAI_AGAIN = "Temporary failure in name resolution"
EAI_FAIL = "Non-recoverable failure in name resolution"

_SOFT = object()      # a DNS list lookup that failed temporarily


# --------------------------------------------------------------------------- small parsers

def c_unescape(text: str) -> str:
    """The C escapes Postfix allows in *_expansion_filter: \\t \\n \\r \\b \\f
    \\v \\a \\\\ and octal \\NNN."""
    out: list[str] = []
    i, n = 0, len(text)
    simple = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "a": "\a"}
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and text[j] in "01234567":
                j += 1
            out.append(chr(int(text[i + 1:j], 8) & 0xFF))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


class IpMatch:
    """Postfix's ip_match pattern for DNS list replies: four octets, each a
    number or `[list]` of numbers and `lo..hi` ranges separated by `;`,
    e.g. 127.0.0.2 or 127.0.0.[2..11;20].  Raises ValueError."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        parts, depth, cur = [], 0, ""
        for ch in pattern:
            if ch == "." and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += (ch == "[") - (ch == "]")
            cur += ch
        parts.append(cur)
        if len(parts) != 4 or depth:
            raise ValueError(f"ip_match_parse: need 4 address octets in \"{pattern}\"")
        self.octets: list[frozenset[int]] = [self._octet(p) for p in parts]

    def _octet(self, text: str) -> frozenset[int]:
        if text.startswith("[") and text.endswith("]") and len(text) > 2:
            vals: set[int] = set()
            for item in text[1:-1].split(";"):
                lo, dots, hi = item.partition("..")
                a = self._number(lo)
                b = self._number(hi) if dots else a
                if b < a:
                    raise ValueError(f"ip_match_parse: bad range \"{item}\" in \"{self.pattern}\"")
                vals.update(range(a, b + 1))
            return frozenset(vals)
        return frozenset((self._number(text),))

    def _number(self, text: str) -> int:
        if not text.isdigit() or int(text) > 255:
            raise ValueError(f"ip_match_parse: bad address octet \"{text}\" in \"{self.pattern}\"")
        return int(text)

    def match(self, addr: str) -> bool:
        parts = addr.split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return False
        return all(int(p) in o for p, o in zip(parts, self.octets, strict=True))


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _printable(text: str) -> str:
    return "".join(ch if " " <= ch <= "~" else " " for ch in text)


def dnsxl_addr_query(addr: str, domain: str) -> str:
    """<reversed address>.<domain>: octets reversed for IPv4, the 32 nibbles
    reversed for IPv6 (find_dnsxl_addr())."""
    if ":" in addr:
        try:
            ip = ipaddress.IPv6Address(addr)
        except ValueError:
            pass
        else:
            return ".".join(reversed(ip.exploded.replace(":", ""))) + "." + domain
    return ".".join(reversed(addr.split("."))) + "." + domain


def dnsxl_domain_query(what: str, domain: str) -> str | None:
    """<domain part of `what`>.<domain>, or None when Postfix skips the lookup
    (address literal, empty, numeric last label, invalid name)."""
    at = what.rfind("@")
    name = what[at + 1:] if at >= 0 else what
    if not name or (at >= 0 and name.startswith("[")):
        return None
    last = name.rsplit(".", 1)[-1]
    if last.isdigit():
        return None
    name = _ascii_domain(name)
    if not name or not valid_hostname(name):
        return None
    return f"{name}.{domain}"


# --------------------------------------------------------------------------- the hook object

Status = int


class DnsChecks:
    """The restriction engine's DNS hooks (see the module docstring)."""

    configured = True

    def __init__(self, engine: Any, resolver: Resolver | Callable[[], Resolver], *,
                 hosts: HostsFile | None = SYSTEM_HOSTS):
        self._resolver = resolver
        self.hosts = hosts
        p = engine.params
        self.rbl_code = engine.code.get("maps_rbl_reject_code", 554)
        self.default_rbl_reply = _raw_param(engine, "default_rbl_reply", DEFAULT_RBL_REPLY)
        self.rbl_reply_maps = [engine._table(spec)
                               for spec in R.split_restrictions(p.text("rbl_reply_maps"))]
        self.expansion_filter = frozenset(c_unescape(
            _raw_param(engine, "smtpd_expansion_filter", DEFAULT_EXPANSION_FILTER)))
        self.maps_rbl_domains = R.split_restrictions(p.text("maps_rbl_domains"))
        parent = {x.lower() for x in R.split_restrictions(p.text("parent_domain_matches_subdomains"))}
        self.mx_backup_networks = R.PatternList(
            "permit_mx_backup_networks", p.text("permit_mx_backup_networks"), "host",
            parent="permit_mx_backup_networks" in parent, opener=engine._open)
        protos = {x.lower() for x in R.split_restrictions(p.text("inet_protocols", "all"))}
        if not protos or "all" in protos:
            protos = {"ipv4", "ipv6"}
        self.addr_types = tuple(t for proto, t in (("ipv4", "A"), ("ipv6", "AAAA"))
                                if proto in protos) or ("A",)
        self.myhostname = p.text("myhostname")
        self.mail_name = p.text("mail_name", "Postfix")
        self._filters: dict[str, IpMatch | str] = {}
        self._warned_maps_rbl = False

    @property
    def resolver(self) -> Resolver:
        r = self._resolver
        return r if isinstance(r, Resolver) else r()

    # -- helpers ------------------------------------------------------------

    async def _host_addrs(self, host: str) -> tuple[list[str], str | None, bool]:
        """hostname_to_sockaddr(): (addresses, getaddrinfo error text or None,
        temporary) from /etc/hosts, else DNS (A/AAAA per inet_protocols)."""
        if self.hosts is not None:
            listed = self.hosts.addrs_for(host)
            if listed:
                fams = {"A": 4, "AAAA": 6}
                keep = {fams[t] for t in self.addr_types}
                addrs = [a for a in listed if ipaddress.ip_address(a).version in keep]
                return (addrs, None, False) if addrs else ([], EAI_NODATA, False)
        answers = await self.resolver.query_all([(host, t) for t in self.addr_types])
        addrs = [a for ans in answers if ans.ok for a in ans.records]
        if addrs:
            return addrs, None, False
        statuses = [a.status for a in answers]
        if RETRY in statuses or POLICY in statuses:
            return [], EAI_AGAIN, True
        if all(a.status == NOTFOUND for a in answers):
            nxdomain = any(a.herror == HOST_NOT_FOUND for a in answers)
            return [], EAI_NONAME if nxdomain else EAI_NODATA, False
        return [], EAI_FAIL, False

    # -- reject_unknown_helo_hostname / reject_unknown_*_domain ----------------

    async def host_status(self, name: str) -> str:
        """dns_lookup_l(name, STOP_OK, A, AAAA, MX): the three asked at once."""
        name = _ascii_domain(name)
        answers = await self.resolver.query_all([(name, "A"), (name, "AAAA"), (name, "MX")])
        seen: list[str] = []
        for ans in answers:
            if ans.status == OK:
                return OK
            seen.append(ans.status)
        return best_status(seen)

    async def mailhost_status(self, domain: str) -> str:
        """dns_lookup_l(domain, STOP_OK|STOP_INVAL|STOP_NULLMX|STOP_MX_POLICY,
        MX, A, AAAA): the three asked at once."""
        domain = _ascii_domain(domain)
        answers = await self.resolver.query_all([(domain, "MX"), (domain, "A"),
                                                 (domain, "AAAA")])
        seen: list[str] = []
        for i, ans in enumerate(answers):
            st = ans.status
            seen.append(st)
            if st == OK:
                return OK
            if st in (INVAL, NULLMX) or (st == POLICY and i == 0):
                break
        return best_status(seen)

    # -- DNS white/black lists -------------------------------------------------

    @staticmethod
    def _target(ctx: Any, command: str) -> tuple[str | None, str, bool]:
        """(what to look up, reply class, is an address lookup)."""
        c = ctx.st.client
        if command in ("reject_rbl_client", "permit_dnswl_client"):
            return c.addr, R.CLIENT, True
        if command in ("reject_rhsbl_client", "permit_rhswl_client"):
            return (None if c.name.lower() == "unknown" else c.name), R.CLIENT, False
        if command == "reject_rhsbl_reverse_client":
            return (None if c.reverse_name.lower() == "unknown" else c.reverse_name), \
                R.REV_CLIENT, False
        if command == "reject_rhsbl_helo":
            return ctx.helo, R.HELO, False
        if command == "reject_rhsbl_sender":
            return (ctx.sender or None), R.SENDER, False
        if command == "reject_rhsbl_recipient":
            return ctx.recipient, R.RECIPIENT, False
        return None, R.CLIENT, False

    @staticmethod
    def _query_name(what: str, arg: str, by_addr: bool) -> tuple[str | None, str | None]:
        """(query name, reply filter) for a list argument `domain[=filter]`."""
        if by_addr:
            query = dnsxl_addr_query(what, arg)
        else:
            query = dnsxl_domain_query(what, arg)
            if query is None:
                return None, None
        name, eq, filt = query.partition("=")
        return name, (filt if eq else None)

    def _filter(self, engine: Any, ctx: Any, text: str) -> IpMatch:
        f = self._filters.get(text)
        if f is None:
            try:
                f = IpMatch(text)
            except ValueError as e:
                f = str(e)
            self._filters[text] = f
        if isinstance(f, str):
            log.warning(f"RBL reply error: {f}")
            engine._server_error(ctx)
        return f

    async def _lookup_list(self, query: str) -> Any:
        """rbl_pagein(): None (not listed), _SOFT (lookup failed), or
        (A records, TXT text or None)."""
        r = self.resolver
        a = await r.query(query, "A")
        if a.status != OK:
            if a.status != NOTFOUND:
                log.warning(f"{query}: RBL lookup error: {a.why}")
                return _SOFT
            return None
        txt = await r.query(query, "TXT")
        text = None
        if txt.ok:
            parts: list[str] = []
            left = RBL_TXT_LIMIT
            for i, rec in enumerate(txt.records):
                if left <= 0:
                    break
                piece = _printable(rec)[:left]
                parts.append(piece)
                left -= len(piece)
                if i + 1 < len(txt.records) and left > 3:
                    parts.append(" / ")
                    left -= 3
            text = "".join(parts)
        elif txt.status == POLICY:
            log.warning(f"{query}: TXT lookup error: DNS reply filter drops all results")
        return (a.records, text)

    async def _warm_list(self, query: str) -> None:
        r = self.resolver
        a = await r.query(query, "A")
        if a.ok:
            await r.query(query, "TXT")

    def prefetch(self, engine: Any, ctx: Any, specs: Sequence[tuple[str, str]]) -> None:
        """Start every DNS list lookup of a restriction list at once."""
        r = self.resolver
        for command, arg in specs:
            if command == "reject_maps_rbl":
                pairs = [("reject_rbl_client", d) for d in self.maps_rbl_domains]
            else:
                pairs = [(command, arg)]
            for cmd, a in pairs:
                what, _rc, by_addr = self._target(ctx, cmd)
                if not what:
                    continue
                query, _f = self._query_name(what, a, by_addr)
                if query is None or r.cached(query, "A") is not None:
                    continue
                r.spawn(self._warm_list(query))

    async def dnslist(self, engine: Any, ctx: Any, command: str, arg: str, rn: str,
                      rc: str) -> Status:
        what, reply_class, by_addr = self._target(ctx, command)
        if not what:
            return R.DUNNO
        permit = command.startswith("permit_")
        if (permit and ctx.where == "RCPT" and ctx.recipient is not None
                and engine._permit_auth_destination(ctx, ctx.recipient) != R.OK):
            return R.DUNNO
        query, filt = self._query_name(what, arg, by_addr)
        if query is None:
            return R.DUNNO
        match = self._filter(engine, ctx, filt) if filt is not None else None
        result = await self._lookup_list(query)
        if result is not None and result is not _SOFT and match is not None:
            if not any(match.match(a) for a in result[0]):
                result = None
        if permit:
            if result is None:
                return R.DUNNO
            if result is _SOFT:
                ctx.dir.set(R.POLICY, 450, "4.7.1",
                            f"<{what}>: {reply_class} rejected: Service unavailable")
                return R.DUNNO
            return engine._acl_permit(ctx, command, R.CLIENT, ctx.namaddr)
        if result is None or result is _SOFT:
            return R.DUNNO
        return self._rbl_reply(engine, ctx, result[1], arg, what, reply_class)

    async def maps_rbl(self, engine: Any, ctx: Any) -> Status:
        """reject_maps_rbl: reject_rbl_client for each of maps_rbl_domains."""
        if not self._warned_maps_rbl:
            self._warned_maps_rbl = True
            log.warning(f'support for restriction "reject_maps_rbl" will be removed from '
                        f'{self.mail_name}; use "reject_rbl_client domain-name" instead')
        for domain in self.maps_rbl_domains:
            status = await self.dnslist(engine, ctx, "reject_rbl_client", domain,
                                        ctx.namaddr, R.CLIENT)
            if status != R.DUNNO:
                return status
        return R.DUNNO

    def _expand_lookup(self, ctx: Any, values: dict[str, str]) -> Callable[[str], str | None]:
        st = ctx.st
        c = st.client
        allowed = self.expansion_filter

        def clean(v: str) -> str:
            return "".join(ch if ch in allowed else "_" for ch in v)

        def addr_part(addr: str | None, suffix: str) -> str | None:
            if addr is None:
                return None
            if suffix == "":
                return addr
            at = addr.rfind("@")
            if suffix == "_name":
                return addr[:at] if at >= 0 else addr
            if suffix == "_domain":
                return addr[at + 1:] if at >= 0 else ""
            return None

        def lookup(name: str) -> str | None:
            if name in values:
                v: str | None = values[name]
            elif name == "client":
                v = ctx.namaddr
            elif name == "client_address":
                v = c.addr
            elif name == "client_name":
                v = c.name
            elif name == "client_port":
                v = c.port
            elif name == "reverse_client_name":
                v = c.reverse_name
            elif name == "helo_name":
                v = ctx.helo
            elif name == "server_name":
                v = self.myhostname
            elif name.startswith("sender"):
                v = addr_part(ctx.sender, name[6:])
            elif name.startswith("recipient"):
                v = addr_part(ctx.recipient, name[9:])
            else:
                log.warning(f'unknown macro name "{name}" in expansion request')
                return None
            return None if v is None else clean(v)
        return lookup

    def _rbl_reply(self, engine: Any, ctx: Any, txt: str | None, arg: str, what: str,
                   reply_class: str) -> Status:
        """rbl_reject_reply()."""
        template = None
        for table in self.rbl_reply_maps:
            try:
                template = table.lookup(arg)
            except (MapError, OSError, R._Unavailable) as e:
                if isinstance(e, R._Unavailable):
                    log.warning(f"{table.spec} is unavailable. {e}")
                log.warning(f'{table.spec} lookup error for "{arg}"')
                engine._server_error(ctx)
            if template is not None:
                break
        values = {"rbl_code": str(self.rbl_code), "rbl_domain": arg.split("=", 1)[0],
                  "rbl_reason": txt or "", "rbl_txt": txt or "", "rbl_what": what,
                  "rbl_class": reply_class}
        lookup = self._expand_lookup(ctx, values)
        while True:
            if template is None:
                template = self.default_rbl_reply
            try:
                why = mac_expand(template, lookup, recurse=False)
                break
            except MacroError:
                if template == self.default_rbl_reply:
                    log.warning(f"rbl_reject_reply: bad default rbl reply template: {template}")
                    why = "450 4.7.1 Service unavailable"
                    break
                log.warning(f"rbl_reject_reply: bad rbl reply template for domain {arg}: "
                            f"{template}")
                template = None
        if (len(why) < 4 or why[0] not in "45" or not why[1:3].isdigit() or why[3] != " "):
            log.warning(f"rbl response code configuration error: {why}")
            return engine._reject(ctx, R.POLICY, 450, "4.7.1", "Service unavailable")
        code = int(why[:3])
        dsn, text = R.dsn_split("4.7.1", why[4:])
        return engine._reject(ctx, R.POLICY, code, R.dsn_fix(dsn, reply_class),
                              text or "Service unavailable")

    # -- check_*_{mx,ns,a}_access ------------------------------------------------

    @staticmethod
    def _server_target(ctx: Any, command: str) -> tuple[str | None, str, str]:
        """(name, reply name, reply class) of a check_*_{ns,mx,a}_access."""
        c = ctx.st.client
        if command.startswith("check_client_"):
            name = None if c.name.lower() == "unknown" else c.name
            return name, ctx.namaddr, R.CLIENT
        if command.startswith("check_reverse_client_"):
            name = None if c.reverse_name.lower() == "unknown" else c.reverse_name
            return name, c.reverse_name, R.REV_CLIENT
        if command.startswith("check_helo_"):
            return ctx.helo, ctx.helo or "", R.HELO
        if command.startswith("check_sender_"):
            return (ctx.sender or None), ctx.sender or "", R.SENDER
        return (ctx.recipient or None), ctx.recipient or "", R.RECIPIENT

    async def server_access(self, engine: Any, ctx: Any, command: str, table: Any, rn: str,
                            rc: str, acl: str | None) -> Status:
        name, reply_name, reply_class = self._server_target(ctx, command)
        if not name:
            return R.DUNNO
        qtype = command.rsplit("_", 2)[-2].upper()          # MX, NS or A
        status = await self._check_server(engine, ctx, table, name, qtype, reply_name,
                                          reply_class, acl)
        if ctx.st.actions.discard is None and status == R.OK:
            log.warning(f"restriction {command} returns OK for {name}")
            log.warning("this is not allowed for security reasons")
            log.warning("use DUNNO instead of OK if you want to make an exception")
            engine._server_error(ctx)
        return status

    async def _check_addr(self, engine: Any, ctx: Any, table: Any, addr: str, rn: str,
                          rc: str, acl: str | None) -> tuple[Status, bool]:
        """check_addr_access(): (status, found)."""
        try:
            hit = engine._lookup(table, access.ip_lookups(addr))
        except (MapError, R._Unavailable, OSError) as e:
            value = engine._lookup_failed(ctx, table, e, addr)
            return await R._await(engine._table_result(ctx, table.spec, value, addr, rn, rc,
                                                       acl)), True
        if hit is None:
            return R.DUNNO, False
        return await R._await(engine._table_result(ctx, table.spec, hit[1], addr, rn, rc,
                                                   acl)), True

    async def _check_server(self, engine: Any, ctx: Any, table: Any, name: str, qtype: str,
                            rn: str, rc: str, acl: str | None) -> Status:
        """check_server_access()."""
        at = name.rfind("@")
        domain = name[at + 1:] if at >= 0 else name
        if domain.startswith("["):
            if qtype not in ("A", "MX") or not domain.endswith("]"):
                return R.DUNNO
            bare = valid_mailhost_addr(domain[1:-1])
            if bare is None:
                return R.DUNNO
            status, _found = await self._check_addr(engine, ctx, table, bare, rn, rc, acl)
            return status
        domain = _ascii_domain(domain)
        r = self.resolver
        if qtype == "A":
            servers = [domain]
        else:
            ans = await r.query(domain, qtype)
            where = domain
            if ans.status == NULLMX:
                return R.DUNNO
            if ans.status == NOTFOUND:
                if qtype == "MX":
                    ans = Answer(domain, "MX", OK, ((0, domain),))
                else:                    # NS: try the parent domains
                    where = None
                    rest = domain
                    while "." in rest and rest.split(".", 1)[1]:
                        rest = rest.split(".", 1)[1]
                        where = rest
                        ans = await r.query(rest, "NS")
                        if ans.status != NOTFOUND:
                            break
            if ans.status != OK:
                log.warning(f"Unable to look up {qtype} host for {where or name}: "
                            f"{'DNS reply filter policy' if ans.status == POLICY else ans.herror}")
                return R.DUNNO
            servers = [rec[1] if qtype == "MX" else rec for rec in ans.records]
        # every server's addresses at once
        names = [s for s in servers if not access.valid_hostaddr(s)]
        lookups: dict[str, asyncio.Task] = {}
        for s in names:
            if s not in lookups:
                lookups[s] = asyncio.ensure_future(self._host_addrs(s))
        try:
            for server in servers:
                if access.valid_hostaddr(server):
                    status, found = await self._check_addr(engine, ctx, table, server, rn, rc,
                                                           acl)
                    if status or found:
                        return status
                    continue
                if qtype != "A":
                    found_list: list[bool] = []
                    status = await R._await(engine._check_domain(ctx, table, server, rn, rc,
                                                                 acl, found_list))
                    if status or found_list:
                        return status
                addrs, error, _temp = await lookups[server]
                if error is not None:
                    if qtype != "A":
                        log.warning(f"Unable to look up {qtype} host {server} for {rc} {rn}: "
                                    f"{error}")
                    continue
                for addr in addrs:
                    status, found = await self._check_addr(engine, ctx, table, addr, rn, rc,
                                                           acl)
                    if status or found:
                        return status
            return R.DUNNO
        finally:
            for t in lookups.values():
                if not t.done():
                    t.cancel()

    # -- permit_mx_backup ---------------------------------------------------------

    async def mx_backup(self, engine: Any, ctx: Any) -> Status:
        rcpt = ctx.recipient
        status = await self._permit_mx_backup(engine, ctx, rcpt, rcpt, R.RECIPIENT)
        if status == R.OK:
            return engine._acl_permit(ctx, "permit_mx_backup", R.RECIPIENT, rcpt)
        return status

    async def _permit_mx_backup(self, engine: Any, ctx: Any, rcpt: str, rn: str,
                                rc: str) -> Status:
        res = engine._resolve(ctx, rcpt)
        at = res.recipient.rfind("@")
        if at < 0:
            return R.OK
        domain = res.recipient[at + 1:]
        if not engine.allow_untrusted_routing and res.routed:
            return R.DUNNO
        if res.final or res.cls == R.RELAY:
            return R.OK
        if domain.startswith("[") and domain.endswith("]"):
            return R.DUNNO
        domain = _ascii_domain(domain)
        ans = await self.resolver.query(domain, "MX")
        if ans.status != OK:
            if ans.status in (RETRY, POLICY):
                why = "DNS reply filter policy" if ans.status == POLICY else ans.herror
                ctx.dir.set(R.POLICY, 450, "4.4.4",
                            f"<{rn}>: {rc} rejected: Unable to look up mail exchanger "
                            f"information: {why}")
            return R.DUNNO
        mxs = sorted(ans.records, key=lambda m: m[0])
        best = [h for p, h in mxs if p == mxs[0][0]]
        rest = [h for p, h in mxs if p != mxs[0][0]]
        if await self._i_am_mx(engine, ctx, best, rn, rc):
            return R.DUNNO
        if not rest or not await self._i_am_mx(engine, ctx, rest, rn, rc):
            return R.DUNNO
        if self.mx_backup_networks and not await self._primary_ok(engine, ctx, best, rn, rc):
            return R.DUNNO
        return R.OK

    async def _i_am_mx(self, engine: Any, ctx: Any, hosts: list[str], rn: str, rc: str) -> bool:
        for h in hosts:
            try:
                if engine._is_local(h):
                    return True
            except R.LookupFailure:
                continue
        for h in hosts:
            addrs, error, _temp = await self._host_addrs(h)
            if error is not None:
                ctx.dir.set(R.POLICY, 450, "4.4.4",
                            f"<{rn}>: {rc} rejected: Unable to look up mail exchanger host "
                            f"{h}: {error}")
                continue
            for a in addrs:
                try:
                    if ipaddress.ip_address(a) in engine.own:
                        return True
                except ValueError:
                    continue
        return False

    async def _primary_ok(self, engine: Any, ctx: Any, hosts: list[str], rn: str,
                          rc: str) -> bool:
        """permit_mx_primary(): every address of every best MX host is in
        permit_mx_backup_networks."""
        for h in hosts:
            answers = await self.resolver.query_all([(h, t) for t in self.addr_types])
            addrs = [a for ans in answers if ans.ok for a in ans.records]
            if not addrs:
                status = best_status([a.status for a in answers])
                why = next((a.herror for a in answers if a.status == status), "")
                ctx.dir.set(R.POLICY, 450, "4.4.4",
                            f"<{rn}>: {rc} rejected: Unable to look up host {h} as mail "
                            f"exchanger: {'DNS reply filter policy' if status == POLICY else why}")
                return False
            for a in addrs:
                try:
                    ok = self.mx_backup_networks.match(h, a)
                except R.LookupFailure:
                    log.warning(f"all_auth_mx_addr: permit_mx_backup_networks lookup error "
                                f"for address {a} for {h}")
                    ctx.dir.set(R.POLICY, 450, "4.4.4",
                                f"<{rn}>: {rc} rejected: Unable to verify host {h} as mail "
                                f"exchanger")
                    return False
                if not ok:
                    return False
        return True


def _raw_param(engine: Any, name: str, default: str) -> str:
    """A parameter's unexpanded text (its $names are expanded later, by us)."""
    cfg = engine.params.cfg
    if isinstance(cfg, dict):
        v = cfg.get(name)
        return default if v is None else str(v)
    raw = getattr(cfg, "raw", None)
    if raw is not None:
        try:
            return str(raw(name))
        except (KeyError, ValueError):
            return default
    v = engine.params.text(name, default)
    return v or default

