"""Recipient address -> (transport, nexthop, recipient): trivial-rewrite's resolve service.

`TransportResolver(cfg).resolve(address, sender="")` returns a `Route` the
way Postfix's trivial-rewrite(8) answers the queue manager (resolve.c,
transport.c):

1. Address class (the part shared with smtpd, `postier.smtpd.address.Resolver`):
   local domains ($mydestination, own `[address literals]` per
   $inet_interfaces/$proxy_interfaces) are stripped, `%` and `!` routing is
   undone, a bare local part gets `@$myhostname`, and the remaining domain
   is classified: virtual alias ($virtual_alias_domains), virtual mailbox
   ($virtual_mailbox_domains), relay ($relay_domains, parent domains per
   $parent_domain_matches_subdomains), default; no domain left = local.
2. Class transport and nexthop:
   local -> $local_transport, nexthop = recipient domain;
   virtual alias -> `error`, nexthop `5.1.1 User unknown in virtual alias
   table` (the table name only with $show_user_unknown_table_name);
   virtual mailbox -> $virtual_transport, nexthop = recipient domain;
   relay -> $relay_transport, default -> $default_transport (or the
   $sender_dependent_default_transport_maps result); for both, nexthop =
   $sender_dependent_relayhost_maps result (DUNNO: as if not found), else
   $relayhost, else the
   recipient domain.  A `transport:nexthop` value in any of these
   parameters overrides the nexthop (`local:$myhostname` makes all local
   domains share one queue).  An empty transport is an error
   (`parameter X: null transport is not allowed`, FAIL).
3. $transport_maps (not for the virtual alias class): keys are the full
   address, the address without its extension ($recipient_delimiter), the
   domain, then each parent as `.parent` (or `parent` when
   $parent_domain_matches_subdomains lists transport_maps), then `*`.
   regexp/pcre tables only see the full address and `*`.  Values:
   `transport:nexthop`; `:nexthop` keeps the transport; `transport:` (or
   `transport`) sets the transport and resets the nexthop to the recipient
   domain (to "Address is undeliverable" for `error`); `:` changes nothing.
4. $relocated_maps (address, then local part for local domains, then
   @domain) -> `error`, `5.1.6 User has moved to NEWLOCATION`.
5. A recipient starting with `-` is an ERROR unless $allow_min_user.

Flags: ERROR (bad domain syntax: the queue manager bounces with `5.1.3 bad
address syntax`), FAIL (a table lookup failed: deferred with `4.3.0 address
resolver failure`), ROUTED (routing operators left in the local part).
The answers are pinned to real Postfix 3.7's trivial-rewrite by
tests/unit/qmgr/test_resolve.py (recorded through its private/rewrite
socket).

Parameters read: myhostname, mydestination, inet_interfaces,
proxy_interfaces, relay_domains, virtual_alias_domains,
virtual_mailbox_domains, parent_domain_matches_subdomains,
local_transport, virtual_transport, relay_transport, default_transport,
relayhost, sender_dependent_relayhost_maps,
sender_dependent_default_transport_maps,
empty_address_relayhost_maps_lookup_key,
empty_address_default_transport_maps_lookup_key, transport_maps,
relocated_maps, recipient_delimiter, show_user_unknown_table_name,
allow_min_user, swap_bangpath, allow_percent_hack, append_at_myorigin,
myorigin, append_dot_mydomain, mydomain, resolve_dequoted_address,
resolve_null_domain, resolve_numeric_domain, empty_address_recipient,
smtputf8_enable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from postier import log
from postier.errors import MapError
from postier.maps.access import strip_extension

# resolve_clnt.h flag bits (what trivial-rewrite returns)
FLAG_FINAL = 1 << 0
FLAG_ROUTED = 1 << 1
FLAG_ERROR = 1 << 2
FLAG_FAIL = 1 << 3
CLASS_LOCAL = 1 << 8
CLASS_ALIAS = 1 << 9
CLASS_VIRTUAL = 1 << 10
CLASS_RELAY = 1 << 11
CLASS_DEFAULT = 1 << 12
CLASS_MASK = CLASS_LOCAL | CLASS_ALIAS | CLASS_VIRTUAL | CLASS_RELAY | CLASS_DEFAULT

_CLASS_FLAG = {"local": CLASS_LOCAL, "virtual_alias": CLASS_ALIAS,
               "virtual_mailbox": CLASS_VIRTUAL, "relay": CLASS_RELAY,
               "default": CLASS_DEFAULT}

ERROR_TRANSPORT = "error"
RETRY_TRANSPORT = "retry"


@dataclass(frozen=True)
class Route:
    transport: str      # master.cf service name: smtp, relay, local, error, ...
    nexthop: str        # destination, or the error text for `error`
    recipient: str      # the resolved recipient address
    flags: int          # FLAG_* | CLASS_*

    @property
    def error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def fail(self) -> bool:
        return bool(self.flags & FLAG_FAIL)

    @property
    def address_class(self) -> str:
        for name, bit in _CLASS_FLAG.items():
            if self.flags & bit:
                return name
        return ""


class _Tables:
    """One map-list parameter: maps_find() over its tables in order."""

    def __init__(self, name: str, specs: Sequence[str], opener: Callable[..., Any]):
        self.name = name
        self.tables: list[Any] = []
        self.broken: str = ""
        for spec in specs:
            try:
                self.tables.append(opener(spec, fold=True))
            except (MapError, OSError, ValueError) as e:
                self.broken = f"{spec}: {e}"

    def __bool__(self) -> bool:
        return bool(self.tables) or bool(self.broken)

    def find(self, key: str, partial: bool = False) -> str | None:
        """First value for `key`; pattern tables skip partial keys.
        Raises LookupError when a table is unusable."""
        if self.broken:
            log.warning(f"{self.name}: {self.broken}")
            raise LookupError(self.name)
        from postier.maps.access import is_pattern_table
        for t in self.tables:
            if partial and is_pattern_table(t):
                continue
            try:
                v = t.lookup(key)
            except (MapError, OSError) as e:
                log.warning(f"{self.name}: {e}")
                raise LookupError(self.name) from None
            if v is not None:
                return v
        return None


class TransportResolver:
    """resolve_addr() with a small per-(sender, address) cache."""

    CACHE_SIZE = 4096

    def __init__(self, cfg: Any, *, own_addresses: Sequence[str] | None = None,
                 opener: Callable[..., Any] | None = None):
        from postier.maps import open_map
        from postier.smtpd import address as _addr
        from postier.smtpd import restrictions as _r
        self.cfg = cfg
        self._open = opener or open_map
        get = cfg.get

        def text(name: str) -> str:
            v = get(name)
            if isinstance(v, list):
                return ", ".join(v)
            return str(v)

        parent = {x.lower() for x in _r.split_restrictions(text("parent_domain_matches_subdomains"))}
        self.parent_style_transport = "transport_maps" in parent

        def plist(name: str, kind: str) -> Any:
            return _r.PatternList(name, text(name), kind, parent=name in parent,
                                  opener=self._open)

        self.mydestination = plist("mydestination", "string")
        self.relay_domains = plist("relay_domains", "domain")
        self.virtual_alias_domains = plist("virtual_alias_domains", "string")
        self.virtual_mailbox_domains = plist("virtual_mailbox_domains", "string")
        if own_addresses is not None:
            import ipaddress
            self.own = frozenset(ipaddress.ip_address(a) for a in own_addresses)
        else:
            self.own = _r.own_addresses(_r.split_restrictions(text("inet_interfaces")),
                                        _r.split_restrictions(text("proxy_interfaces")))

        def list_test(pl: Any) -> Callable[[str], bool]:
            return pl.match if pl else (lambda _d: False)

        self.myhostname = text("myhostname")
        self.classifier = _addr.Resolver(
            myhostname=self.myhostname, is_local=self._is_local,
            virtual_alias=list_test(self.virtual_alias_domains),
            virtual_mailbox=list_test(self.virtual_mailbox_domains),
            relay=list_test(self.relay_domains),
            swap_bangpath=get("swap_bangpath"), percent_hack=get("allow_percent_hack"),
            myorigin=text("myorigin"), append_at_myorigin=get("append_at_myorigin"),
            append_dot_mydomain=get("append_dot_mydomain"), mydomain=text("mydomain"),
            resolve_dequoted=get("resolve_dequoted_address"),
            resolve_null_domain=get("resolve_null_domain"),
            resolve_numeric_domain=get("resolve_numeric_domain"),
            empty_address_recipient=text("empty_address_recipient"),
            smtputf8=get("smtputf8_enable"))
        self._literal = _addr.literal_address
        self.local_transport = text("local_transport")
        self.virtual_transport = text("virtual_transport")
        self.relay_transport = text("relay_transport")
        self.default_transport = text("default_transport")
        self.relayhost = text("relayhost")
        self.show_table = get("show_user_unknown_table_name")
        self.allow_min_user = get("allow_min_user")
        self.delims = text("recipient_delimiter")
        self.double_bounce = text("double_bounce_sender")
        self.transport_maps = _Tables("transport_maps", get("transport_maps"), self._open)
        self.relocated_maps = _Tables("relocated_maps", get("relocated_maps"), self._open)
        self.snd_relay = _Tables("sender_dependent_relayhost_maps",
                                 get("sender_dependent_relayhost_maps"), self._open)
        self.snd_xport = _Tables("sender_dependent_default_transport_maps",
                                 get("sender_dependent_default_transport_maps"), self._open)
        self.null_relay_key = text("empty_address_relayhost_maps_lookup_key")
        self.null_xport_key = text("empty_address_default_transport_maps_lookup_key")
        self.config_file = getattr(cfg, "path", "main.cf")
        self._cache: dict[tuple[str, str], Route] = {}
        self._wildcard: tuple[str, str] | None | bool = False   # False = not looked up

    # -- helpers ----------------------------------------------------------------

    def _is_local(self, domain: str) -> bool:
        if self.mydestination and self.mydestination.match(domain):
            return True
        ip = self._literal(domain)
        return ip is not None and ip in self.own

    def _addr_find(self, tables: _Tables, address: str, local_domain: bool) -> str | None:
        """mail_addr_find() without extension stripping: address, local
        part (local domains only), @domain."""
        v = tables.find(address)
        if v is not None:
            return v
        at = address.rfind("@")
        if at < 0:
            return None
        if local_domain:
            v = tables.find(address[:at], partial=True)
            if v is not None:
                return v
        return tables.find(address[at:], partial=True)

    @staticmethod
    def _update(value: str, rcpt_domain: str, channel: str, nexthop: str) -> tuple[str, str]:
        """transport.c update_entry()."""
        new_channel, _, new_nexthop = value.partition(":")
        if not new_channel:
            return channel, (new_nexthop or nexthop)
        if new_nexthop:
            return new_channel, new_nexthop
        if new_channel != ERROR_TRANSPORT:
            return new_channel, rcpt_domain
        return new_channel, "Address is undeliverable"

    def _transport_lookup(self, addr: str, rcpt_domain: str, channel: str,
                          nexthop: str) -> tuple[str, str] | None:
        t = self.transport_maps
        v = t.find(addr)
        if v is not None:
            return self._update(v, rcpt_domain, channel, nexthop)
        stripped = strip_extension(addr, self.delims, self.double_bounce)
        if stripped is not None:
            v = t.find(stripped, partial=True)
            if v is not None:
                return self._update(v, rcpt_domain, channel, nexthop)
        name = addr[addr.rfind("@") + 1:]
        while name:
            v = t.find(name, partial=True)
            if v is not None:
                return self._update(v, rcpt_domain, channel, nexthop)
            nxt = name.find(".", 1)
            if nxt < 0:
                break
            name = name[nxt + 1:] if self.parent_style_transport else name[nxt:]
        if self._wildcard is False:
            self._wildcard = None
            w = t.find("*")
            if w is not None:
                self._wildcard = self._update(w, "", "", "")
        if self._wildcard:
            wc, wn = self._wildcard          # type: ignore[misc]
            return self._update(f"{wc}:{wn}", rcpt_domain, channel, nexthop)
        return None

    # -- the resolver --------------------------------------------------------------

    def resolve(self, address: str, sender: str = "") -> Route:
        key = (sender, address)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        route = self._resolve(address, sender)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = route
        return route

    def _fail(self, address: str, what: str, flags: int = 0) -> Route:
        log.warning(f"{what} lookup failure")
        return Route(RETRY_TRANSPORT, "4.3.0 address resolver failure", address,
                     flags | FLAG_FAIL)

    def _resolve(self, address: str, sender: str) -> Route:
        from postier.smtpd.address import ALIAS, LOCAL, RELAY, VIRTUAL, LookupFailure
        try:
            res = self.classifier.resolve(address)
        except LookupFailure as e:
            return self._fail(address, str(e))
        rcpt = res.recipient
        rcpt_domain = res.domain
        flags = (FLAG_ROUTED if res.routed else 0)
        if res.error:
            return Route(ERROR_TRANSPORT, "5.1.3 bad address syntax", rcpt,
                         flags | FLAG_ERROR | CLASS_DEFAULT)
        cls = res.cls
        blame = ""
        try:
            if cls == LOCAL:
                channel, nexthop, blame = self.local_transport, rcpt_domain, "local_transport"
                flags |= CLASS_LOCAL
            elif cls == ALIAS:
                channel = ERROR_TRANSPORT
                nexthop = "5.1.1 User unknown" + (" in virtual alias table"
                                                  if self.show_table else "")
                flags |= CLASS_ALIAS
            elif cls == VIRTUAL:
                channel, nexthop = self.virtual_transport, rcpt_domain
                blame = "virtual_transport"
                flags |= CLASS_VIRTUAL
            else:
                if cls == RELAY:
                    channel, blame = self.relay_transport, "relay_transport"
                    flags |= CLASS_RELAY
                else:
                    skey = sender or self.null_xport_key
                    x = (self._addr_find(self.snd_xport, skey, False) if self.snd_xport
                         else None)
                    if x is not None:
                        if not x:
                            log.warning("sender_dependent_default_transport_maps: ignoring "
                                        f"null lookup result for {skey}")
                            x = "DUNNO"
                        channel = self.default_transport if x.upper() == "DUNNO" else x
                        blame = "sender_dependent_default_transport_maps"
                    else:
                        channel, blame = self.default_transport, "default_transport"
                    flags |= CLASS_DEFAULT
                skey = sender or self.null_relay_key
                relay = self._addr_find(self.snd_relay, skey, False) if self.snd_relay else None
                if relay is not None:
                    if not relay:
                        log.warning("sender_dependent_relayhost_maps: ignoring null lookup "
                                    f"result for {skey}")
                        relay = "DUNNO"
                if relay is not None and relay.upper() != "DUNNO":
                    nexthop = relay
                elif self.relayhost:
                    nexthop = self.relayhost
                else:
                    nexthop = rcpt_domain
        except LookupError as e:
            return self._fail(rcpt, str(e))
        if ":" in channel:
            channel, _, dest = channel.partition(":")
            if dest:
                nexthop = dest
        if not channel:
            log.warning(f"file {self.config_file}: parameter {blame}: null transport is "
                        "not allowed")
            return Route(RETRY_TRANSPORT, "4.3.0 address resolver failure", rcpt,
                         flags | FLAG_FAIL)
        try:
            if self.transport_maps and not flags & CLASS_ALIAS:
                found = self._transport_lookup(rcpt, rcpt_domain, channel, nexthop)
                if found is not None:
                    channel, nexthop = found
            if self.relocated_maps:
                newloc = self._addr_find(self.relocated_maps, rcpt, bool(flags & CLASS_LOCAL))
                if newloc is not None:
                    channel, nexthop = ERROR_TRANSPORT, f"5.1.6 User has moved to {newloc}"
        except LookupError as e:
            return self._fail(rcpt, str(e))
        if not self.allow_min_user and rcpt.startswith("-"):
            return Route(channel, nexthop, rcpt, flags | FLAG_ERROR)
        return Route(channel, nexthop, rcpt, flags)
