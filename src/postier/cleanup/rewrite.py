"""Address rewriting as Postfix's trivial-rewrite and cleanup do it.

* `Rewriter.rewrite(context, external)` — trivial-rewrite's rewrite_tree in
  the `local` context (append @$myorigin, append .$mydomain when
  append_dot_mydomain, swap_bangpath, allow_percent_hack, strip a source
  route and a trailing dot) or the `remote` context (the same with
  $remote_header_rewrite_domain as origin and domain).
* `Rewriter.canonical(external, maps)` — cleanup_map11: one-to-one lookups
  repeated up to 10 times, with Postfix's key order user+ext@domain,
  user@domain, user+ext and user (domain is $myorigin or local), @domain;
  an `@domain` result keeps the user part; the unmatched extension is
  propagated when propagate_unmatched_extensions has `canonical`.
* `Rewriter.virtual(address)` — cleanup_map1n: recursive one-to-many
  expansion with virtual_alias_recursion_limit, virtual_alias_expansion_limit
  and virtual_alias_address_length_limit, an address expanding to itself
  once, breadth-first order as Postfix (the first result replaces the
  address in place, the others are appended).
* `Rewriter.masquerade(external)` — masquerade_domains with `!` exclusions
  and masquerade_exceptions.
* `Rewriter.bcc_lookup(maps, address)` and `Rewriter.relocated(address)`.

Table errors raise `TableError`; cleanup turns them into a deferral
(`451 4.3.0`) as Postfix does.

Parameters read (through CleanupSettings): myorigin, mydomain, mydestination,
inet_interfaces, proxy_interfaces, remote_header_rewrite_domain,
swap_bangpath, allow_percent_hack, append_at_myorigin, append_dot_mydomain,
recipient_delimiter, propagate_unmatched_extensions, masquerade_domains,
masquerade_exceptions, virtual_alias_maps, virtual_alias_recursion_limit,
virtual_alias_expansion_limit, virtual_alias_address_length_limit,
relocated_maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from postier import log, tok822
from postier.errors import MapError
from postier.maps.access import is_pattern_table, strip_extension
from postier.tok822 import ADDR, DOMLIT, QSTRING, Tok, quote_822_local, unquote_822_local

clog = log.ServiceLog("cleanup")   # cleanup(8)'s lines: postier/cleanup[PID]

LOCAL = "local"
REMOTE = "remote"
MAX_MAP11_RECURSION = 10


class TableError(Exception):
    """A lookup table could not be searched: the message must be deferred."""


class ExpansionError(Exception):
    """virtual alias expansion exceeded a limit: `451 4.6.0`."""


class Maps:
    """A list of tables searched in order (Postfix's maps_find)."""

    def __init__(self, title: str, tables: Sequence[Any]):
        self.title = title
        self.tables = list(tables)

    def __bool__(self) -> bool:
        return bool(self.tables)

    def find(self, key: str, partial: bool = False) -> str | None:
        if not key:
            return None
        for t in self.tables:
            if partial and is_pattern_table(t):
                continue
            try:
                value = t.lookup(key)
            except (MapError, OSError, Exception) as e:  # noqa: BLE001 - any table failure defers
                log.warning(f"{getattr(t, 'type', '?')}:{getattr(t, 'name', '?')} "
                            f'lookup error for "{key}"')
                raise TableError(f"{self.title}: {e}") from None
            if value is not None:
                if value == "":
                    log.warning(f"{self.title} lookup of {key} returns an empty string result")
                    raise TableError(f"{self.title}: empty result")
                return value
        return None


class Rewriter:
    """The address rewriting machinery of one configuration."""

    def __init__(self, *, myorigin: str, mydomain: str, remote_domain: str = "",
                 swap_bangpath: bool = True, percent_hack: bool = True,
                 append_at_myorigin: bool = True, append_dot_mydomain: bool = False,
                 is_local: Callable[[str], bool] = lambda _d: False,
                 delimiters: str = "", propagate: Sequence[str] = ("canonical", "virtual"),
                 masq_domains: Sequence[str] = (), masq_exception: Callable[[str], bool] | None = None,
                 virtual_maps: Maps | None = None, relocated_maps: Maps | None = None,
                 recursion_limit: int = 1000, expansion_limit: int = 1000,
                 addrlen_limit: int = 1000):
        self.contexts = {LOCAL: (myorigin, mydomain), REMOTE: (remote_domain, remote_domain)}
        self.myorigin = myorigin
        self.swap_bangpath = swap_bangpath
        self.percent_hack = percent_hack
        self.append_at_myorigin = append_at_myorigin
        self.append_dot_mydomain = append_dot_mydomain
        self.is_local = is_local
        self.delimiters = delimiters
        self.prop_canonical = "canonical" in propagate
        self.prop_virtual = "virtual" in propagate
        self.masq_domains = [d for d in masq_domains if d]
        self.masq_exception = masq_exception
        self.virtual_maps = virtual_maps or Maps("virtual_alias_maps", [])
        self.relocated_maps = relocated_maps or Maps("relocated_maps", [])
        self.recursion_limit = recursion_limit
        self.expansion_limit = expansion_limit
        self.addrlen_limit = addrlen_limit
        self._cache: dict[tuple[str, str], str] = {}
        # cleanup's rewritten headers when no table applies: (context, header) -> header
        self.header_cache: dict[tuple[str | None, bytes], bytes] = {}

    # -- trivial-rewrite -----------------------------------------------------

    def rewrite(self, context: str, external: str) -> str:
        """rewrite_clnt(context, external address) -> external address."""
        if not external:
            return external
        key = (context, external)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        node = tok822.scan_addr(external)
        self.rewrite_tokens(context, node)
        result = tok822.externalize(node)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = result
        return result

    def rewrite_internal(self, context: str, address: str) -> str:
        return unquote_822_local(self.rewrite(context, quote_822_local(address)))

    def rewrite_tokens(self, context: str, node: Tok) -> None:
        """rewrite_tree() on the tokens below ADDR node `node`, in place."""
        origin, domain = self.contexts.get(context, self.contexts[LOCAL])
        toks: list[Tok] = list(tok822._iter(node.head))
        if not toks:
            return
        if len(toks) == 1 and toks[0].type == QSTRING and toks[0].text == "":
            return
        if len(toks) == 1 and toks[0].type == ord("@"):
            _relink(node, [Tok(QSTRING, "")])
            return
        if toks[0].type == ord("@"):
            colon = next((i for i, t in enumerate(toks) if t.type == ord(":")), -1)
            if colon >= 0 and colon != len(toks) - 1:
                toks = toks[colon + 1:]
        if not any(t.type == ord("@") for t in toks):
            bang = next((i for i, t in enumerate(toks) if t.type == ord("!")), -1)
            pct = max((i for i, t in enumerate(toks) if t.type == ord("%")), default=-1)
            if self.swap_bangpath and bang >= 0:
                toks = toks[bang + 1:] + [Tok(ord("@"))] + toks[:bang]
            elif self.percent_hack and pct >= 0:
                toks[pct] = Tok(ord("@"))
            elif self.append_at_myorigin and origin:
                toks = toks + [Tok(ord("@"))] + _scan_list(origin)
        if self.append_dot_mydomain and domain:
            at = max((i for i, t in enumerate(toks) if t.type == ord("@")), default=-1)
            if (at >= 0 and at != len(toks) - 1
                    and not any(t.type == DOMLIT for t in toks[at:])
                    and not any(t.type == ord(".") for t in toks[at:])):
                toks = toks + [Tok(ord("."))] + _scan_list(domain)
        if (toks and toks[-1].type == ord(".") and len(toks) > 1
                and toks[-2].type not in (ord("."), ord("@"))):
            toks = toks[:-1]
        _relink(node, toks)

    # -- lookups (mail_addr_find.c, mail_addr_map.c, mail_addr_crunch.c) -----

    def _strip(self, address: str) -> tuple[str | None, str | None]:
        if not self.delimiters:
            return None, None
        bare = strip_extension(address, self.delimiters)
        if bare is None:
            return None, None
        at = address.rfind("@")
        full_local = address[:at] if at >= 0 else address
        bat = bare.rfind("@")
        bare_local = bare[:bat] if bat >= 0 else bare
        return bare, full_local[len(bare_local):]

    def find(self, maps: Maps, address: str, *, external_first: bool = False
             ) -> tuple[str | None, str | None]:
        """mail_addr_find_opt with the default strategy: (result in external
        form, unmatched extension or None).  `address` is internal form."""

        def query(key: str, partial: bool, bare_local: bool = False) -> str | None:
            ext = quote_822_local(key, bare_localpart=bare_local)
            r = maps.find(ext, partial)
            if r is None and external_first and ext != key:
                r = maps.find(key, partial)
            return r

        bare, saved_ext = self._strip(address)
        extension = None
        result = query(address, False)
        if result is None and bare is not None:
            result = query(bare, True)
            if result is not None:
                extension = saved_ext
        at = address.rfind("@")
        if result is None and at >= 0:
            domain = address[at + 1:]
            if domain.lower() == self.myorigin.lower() or self.is_local(domain):
                result = query(address[:at], True, True)
                if result is None and bare is not None:
                    result = query(bare[:bare.rfind("@")], True, True)
                    if result is not None:
                        extension = saved_ext
        if result is None and at >= 0:
            result = maps.find(address[at:], True)
        return result, extension

    def crunch(self, string: str, extension: str | None) -> list[str]:
        """mail_addr_crunch_opt: addresses in a lookup result, each
        canonicalized (local context), internal form, extension inserted."""
        if string in ("", "<>"):
            string = '""'
        out = []
        for node in tok822.grep_addrs(tok822.parse(string)):
            ext_addr = tok822.externalize(node.head)
            canon = self.rewrite(LOCAL, ext_addr)
            internal = unquote_822_local(canon)
            if extension:
                at = internal.rfind("@")
                internal = internal + extension if at < 0 else internal[:at] + extension + internal[at:]
            out.append(internal)
        return out

    def addr_map(self, maps: Maps, address: str, propagate: bool) -> list[str] | None:
        """mail_addr_map with internal-form input and output."""
        string, extension = self.find(maps, address)
        if string is None:
            return None
        if string.startswith("@"):
            at = address.rfind("@")
            user = address[:at] if at >= 0 else address
            if extension:
                user = user[:len(user) - len(extension)]
            string = quote_822_local(user + string)
        result = self.crunch(string, extension if propagate else None)
        if not result:
            log.warning(f'{maps.title} lookup of {address} returns non-address result "{string}"')
            raise TableError(f"{maps.title}: non-address result")
        return result

    # -- cleanup_map11 ---------------------------------------------------------

    def canonical(self, external: str, maps: Maps, queue_id: str = "NOQUEUE") -> str:
        addr = external
        for _ in range(MAX_MAP11_RECURSION):
            new = self.addr_map(maps, unquote_822_local(addr), self.prop_canonical)
            if new is None:
                return addr
            if len(new) > 1:
                clog.warning(f"{queue_id}: multi-valued {maps.title} entry for {addr}")
            saved = addr
            addr = quote_822_local(new[0])
            if saved.lower() == addr.lower():
                return addr
        clog.warning(f"{queue_id}: unreasonable {maps.title} map nesting for {addr} -- "
                    "message not accepted, try again later")
        return addr

    def canonical_internal(self, address: str, maps: Maps, queue_id: str = "NOQUEUE") -> str:
        return unquote_822_local(self.canonical(quote_822_local(address), maps, queue_id))

    # -- cleanup_map1n ----------------------------------------------------------

    def virtual(self, address: str, queue_id: str = "NOQUEUE") -> list[str]:
        """Expand `address` (internal form) through virtual_alias_maps."""
        maps = self.virtual_maps
        argv = [address]
        been_here: set[str] = set()
        title = maps.title
        arg = 0
        while arg < len(argv):
            if len(argv) > self.expansion_limit:
                clog.warning(f"{queue_id}: unreasonable {title} map expansion size for "
                            f"{address} -- message not accepted, try again later")
                raise ExpansionError("4.6.0 Alias expansion error")
            count = 0
            while True:
                if argv[arg].lower() in been_here:
                    break
                if count >= self.recursion_limit:
                    clog.warning(f"{queue_id}: unreasonable {title} map nesting for "
                                f"{address} -- message not accepted, try again later")
                    raise ExpansionError("4.6.0 Alias expansion error")
                try:
                    lookup = self.addr_map(maps, argv[arg], self.prop_virtual)
                except TableError:
                    clog.warning(f"{queue_id}: {title} map lookup problem for {address} -- "
                                "message not accepted, try again later")
                    raise
                if lookup is None:
                    break
                saved = argv[arg]
                for i, new in enumerate(lookup):
                    if len(new) > self.addrlen_limit:
                        clog.warning(f"{queue_id}: unreasonable {title} result {new[:300]}... -- "
                                    "message not accepted, try again later")
                        raise ExpansionError("4.6.0 Alias expansion error")
                    if i == 0:
                        argv[arg] = new
                    else:
                        argv.append(new)
                    if saved.lower() == new.lower():
                        been_here.add(saved.lower())
                count += 1
            arg += 1
        return argv

    # -- cleanup_masquerade -----------------------------------------------------

    def masquerade(self, external: str) -> str:
        at = external.rfind("@")
        if at < 0 or not self.masq_domains:
            return external
        name = external[:at]
        domain = external[at + 1:].lower()
        if self.masq_exception is not None and self.masq_exception(name):
            return external
        for masq in self.masq_domains:
            truncate = True
            while masq.startswith("!"):
                truncate = not truncate
                masq = masq[1:]
            masq = masq.lower()
            if not masq:
                continue
            if len(masq) == len(domain):
                if masq == domain:
                    break
            elif len(masq) < len(domain):
                parent = domain[len(domain) - len(masq):]
                if domain[len(domain) - len(masq) - 1] == "." and parent == masq:
                    if truncate:
                        return external[:at + 1] + masq
                    break
        return external

    def masquerade_internal(self, address: str) -> str:
        return unquote_822_local(self.masquerade(quote_822_local(address)))

    # -- bcc and relocated ---------------------------------------------------------

    def bcc_lookup(self, maps: Maps, address: str) -> str | None:
        """mail_addr_find(maps, address) for sender/recipient_bcc_maps."""
        result, _ = self.find(maps, address, external_first=True)
        return result

    def relocated(self, address: str) -> str | None:
        """New contact information for a relocated recipient (internal
        form in), or None.  trivial-rewrite's resolve() gives such a
        recipient the `error` transport with `5.1.6 User has moved to X`."""
        if not self.relocated_maps:
            return None
        result, _ = self.find(self.relocated_maps, address, external_first=True)
        return result


def _scan_list(text: str) -> list[Tok]:
    head, _ = tok822.scan(text)
    return list(tok822._iter(head))


def _relink(node: Tok, toks: list[Tok]) -> None:
    prev = None
    for t in toks:
        t.prev = prev
        t.next = None
        t.owner = node
        t.head = t.head if t.type == ADDR else None
        if prev is not None:
            prev.next = t
        prev = t
    node.head = toks[0] if toks else None
    node.tail = toks[-1] if toks else None
