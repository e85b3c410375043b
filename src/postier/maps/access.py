"""access(5) search order: the keys smtpd looks up, in order, for each check.

One place for the partial-key search that every check_*_access restriction
uses (Postfix smtpd_check.c + mail_addr_find.c, confirmed against real
Postfix 3.7.11 by tools/record_access_golden.py; goldens in
tests/golden/access/).  Pure functions: they build key lists, `first_match`
walks a table with them.

    address_lookups("bob+tag@sub.example.org", delimiters="+")
    # bob+tag@sub.example.org (full), bob@sub.example.org, sub.example.org,
    # example.org, org, bob+tag@, bob@
    client_keys("unknown", "2001:db8:1::5")
    # unknown, 2001:db8:1::5, 2001:db8:1:, 2001:db8:1, 2001:db8, 2001
    first_match(table, address_lookups(...))   # -> (key, value) | None

Search orders (each list stops at the first key FOUND, whatever its value:
a DUNNO found on `user@domain` ends that check, `domain` is not tried):

* address (check_sender_access, check_recipient_access): the address as
  trivial-rewrite resolved it, lower-cased.  `user+ext@domain`, then
  `user@domain` (extension stripped at the first character of
  `recipient_delimiter`; never for postmaster, mailer-daemon, the
  double-bounce sender, a leading delimiter, or owner-*/*-request when `-` is
  a delimiter), then the domain and its parents, then `user+ext@`, then
  `user@`.  Every address-shaped key is tried in quoted (RFC 822 external)
  form first and, when that differs, unquoted: `"john..doe"@x` then
  `john..doe@x`.  Null sender: only `smtpd_null_access_lookup_key`, as is.
* domain (check_helo_access, the name part of check_client_access,
  check_etrn_access): the name, then parent domains; a name that is a valid
  IPv4/IPv6 address gets no parent search.  Case is kept (fixed tables fold).
* client: the client name (`unknown` is a key like any other), then the
  address: IPv4 `a.b.c.d`, `a.b.c`, `a.b`, `a`; IPv6 cut at each colon from
  the right, `2001:db8:1::5`, `2001:db8:1:`, `2001:db8:1`, `2001:db8`, `2001`
  (empty keys are never looked up).
* Parent domains: `parent_domain_matches_subdomains` lists
  `smtpd_access_maps` (the default): `sub.example.org`, `example.org`, `org`.
  Otherwise `.domain` keys: `sub.example.org`, `.example.org`, `.org`.

Only the first key of a check (the full address; the HELO name; the client
name and the client address) is a FULL lookup.  The others are PARTIAL:
Postfix asks only fixed-string tables (hash, texthash, inline, static), never
pattern tables (regexp, pcre, cidr) for them.  `Lookup.partial` carries that
flag; `first_match` honours it.  `*_keys()` give the plain distinct keys
(what a hash table sees).

Parameters read (the caller passes them; `SearchSettings.from_main_cf`):
recipient_delimiter, parent_domain_matches_subdomains,
smtpd_null_access_lookup_key, double_bounce_sender.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

#: Table types that Postfix flags DICT_FLAG_PATTERN: no PARTIAL lookups.
PATTERN_TYPES = frozenset({"regexp", "pcre", "cidr"})

DEFAULT_NULL_KEY = "<>"
DEFAULT_DOUBLE_BOUNCE = "double-bounce"


class Lookup(NamedTuple):
    """One key of a search; `partial`: only fixed-string tables are asked."""

    key: str
    partial: bool


class Table(Protocol):
    def lookup(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class SearchSettings:
    """The main.cf parameters that shape the search (Postfix defaults)."""

    delimiters: str = ""
    parent_matches_subdomains: bool = True
    null_key: str = DEFAULT_NULL_KEY
    double_bounce: str = DEFAULT_DOUBLE_BOUNCE

    @classmethod
    def from_main_cf(cls, params: Mapping[str, str]) -> SearchSettings:
        """From expanded main.cf values; missing ones take Postfix defaults."""
        pdms = params.get("parent_domain_matches_subdomains")
        return cls(
            delimiters=params.get("recipient_delimiter", ""),
            parent_matches_subdomains=True if pdms is None else parent_style(pdms),
            null_key=params.get("smtpd_null_access_lookup_key", DEFAULT_NULL_KEY),
            double_bounce=params.get("double_bounce_sender", DEFAULT_DOUBLE_BOUNCE),
        )

    def sender(self, address: str) -> list[Lookup]:
        return address_lookups(address, delimiters=self.delimiters,
                               parent_matches_subdomains=self.parent_matches_subdomains,
                               null_key=self.null_key, double_bounce=self.double_bounce)

    recipient = sender

    def helo(self, name: str) -> list[Lookup]:
        return domain_lookups(name, parent_matches_subdomains=self.parent_matches_subdomains)

    def client(self, name: str, addr: str) -> list[Lookup]:
        return client_lookups(name, addr,
                              parent_matches_subdomains=self.parent_matches_subdomains)


def parent_style(value: str) -> bool:
    """True when a parent_domain_matches_subdomains value lists smtpd_access_maps."""
    return any(tok.lower() == "smtpd_access_maps" for tok in re.split(r"[\s,]+", value))


# ---------------------------------------------------------------------------
# Address checks

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_822_SPECIALS = frozenset('()<>@,;:\\"[]')


def _is_dot_string(local: str) -> bool:
    """RFC 822 dot-string test of quote_822_local.c (8-bit data allowed)."""
    if not local or local[0] == "." or local[-1] == ".":
        return False
    if ".." in local:
        return False
    return not any(ch == " " or ord(ch) < 32 or ord(ch) == 127 or ch in _822_SPECIALS
                   for ch in local)


def quote_822_local(address: str) -> str:
    """External (quoted) form of an internal-form address: the local part
    (everything before the last '@', after any `@route:` prefix) is quoted
    when it is not a dot-string, with '"' and '\\' backslash-escaped."""
    start = 0
    if address.startswith("@") and ":" in address:
        start = address.index(":") + 1
    end = address.rfind("@")
    if end < start:
        end = len(address)
    local = address[start:end]
    if _is_dot_string(local):
        return address
    quoted = "".join("\\" + ch if ch in '"\\\r' else ch for ch in local)
    return f'{address[:start]}"{quoted}"{address[end:]}'


def strip_extension(address: str, delimiters: str,
                    double_bounce: str = DEFAULT_DOUBLE_BOUNCE) -> str | None:
    """`user+ext@domain` -> `user@domain` (strip_addr.c/split_addr.c), or
    None when nothing is stripped.  The extension starts at the first
    character of the local part that is any of `delimiters`."""
    if not delimiters or not any(ch in address for ch in delimiters):
        return None
    at = address.rfind("@")
    local, rest = (address[:at], address[at:]) if at >= 0 else (address, "")
    folded = local.lower()
    if folded in ("postmaster", "mailer-daemon") or folded == double_bounce.lower():
        return None
    if "-" in delimiters and (folded.startswith("owner-")
                              or (len(folded) > 8 and folded.endswith("-request"))):
        return None
    cut = next((i for i, ch in enumerate(local) if ch in delimiters), -1)
    if cut <= 0:
        return None
    return local[:cut] + rest


def _domain_walk(domain: str, parent: bool) -> list[str]:
    """The name and its parents, as the loops in check_domain_access and
    mail_addr_find walk them (a trailing dot gives `example.` or `.`)."""
    out: list[str] = []
    name = domain
    while name:
        out.append(name)
        nxt = name.find(".", 1)
        if nxt < 0:
            break
        name = name[nxt + 1:] if parent else name[nxt:]
    return out


def address_lookups(address: str, *, delimiters: str = "", parent_matches_subdomains: bool = True,
                    null_key: str = DEFAULT_NULL_KEY,
                    double_bounce: str = DEFAULT_DOUBLE_BOUNCE) -> list[Lookup]:
    """Search of check_sender_access / check_recipient_access.

    `address`: the envelope address in internal (unquoted) form as
    trivial-rewrite resolved it (qualified, source route/%-hack/bang path
    already rewritten); "" is the null sender.  It is lower-cased and
    trailing dots are dropped from its domain, as the resolver does.  An
    address without '@' gives no keys (Postfix: "no @domain", DUNNO).
    """
    if address == "":
        return [Lookup(null_key, False)] if null_key else []
    addr = address.translate(_ASCII_LOWER)
    at = addr.rfind("@")
    if at < 0:
        return []
    domain = addr[at + 1:].rstrip(".")
    addr = addr[:at + 1] + domain
    out: list[Lookup] = []

    def external_first(key: str, partial: bool) -> None:
        ext = quote_822_local(key)
        out.append(Lookup(ext, partial))
        if ext != key:
            out.append(Lookup(key, partial))

    bare = strip_extension(addr, delimiters, double_bounce)
    external_first(addr, False)
    if bare is not None:
        external_first(bare, True)
    out.extend(Lookup(d, True) for d in _domain_walk(domain, parent_matches_subdomains))
    external_first(addr[:at + 1], True)
    if bare is not None:
        external_first(bare[:bare.rfind("@") + 1], True)
    return _dedup(out)


def address_keys(address: str, *, delimiters: str = "", parent_matches_subdomains: bool = True,
                 null_key: str = DEFAULT_NULL_KEY,
                 double_bounce: str = DEFAULT_DOUBLE_BOUNCE) -> list[str]:
    """The distinct keys of `address_lookups`, in order."""
    return _keys(address_lookups(address, delimiters=delimiters,
                                 parent_matches_subdomains=parent_matches_subdomains,
                                 null_key=null_key, double_bounce=double_bounce))


# ---------------------------------------------------------------------------
# Domain and client checks

def valid_ipv4(text: str) -> bool:
    """valid_ipv4_hostaddr(): four decimal bytes <= 255 (leading zeros are
    fine), and no leading 0 byte unless the address is all zeros."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return False
    if any(int(p) > 255 for p in parts):
        return False
    return not (int(parts[0]) == 0 and text.strip("0.") != "")


def valid_ipv6(text: str) -> bool:
    """valid_ipv6_hostaddr() (approximated by the ipaddress module; a
    trailing IPv4 part must be a valid IPv4 address)."""
    if ":" not in text or "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def valid_hostaddr(text: str) -> bool:
    return valid_ipv6(text) if ":" in text else valid_ipv4(text)


def domain_lookups(name: str, *, parent_matches_subdomains: bool = True,
                   partial: bool = False) -> list[Lookup]:
    """Search of check_helo_access (and check_etrn_access, and the name
    part of check_client_access): `name` as given, then its parent domains,
    unless `name` is a numeric address.  The first key is FULL unless
    `partial`."""
    keys = _domain_walk(name, parent_matches_subdomains)
    if keys and valid_hostaddr(name):
        keys = keys[:1]
    return _dedup([Lookup(k, partial or i > 0) for i, k in enumerate(keys)])


def domain_keys(name: str, *, parent_matches_subdomains: bool = True) -> list[str]:
    return _keys(domain_lookups(name, parent_matches_subdomains=parent_matches_subdomains))


helo_lookups = domain_lookups
helo_keys = domain_keys


def _inet_ntop6(packed: bytes) -> str:
    """glibc inet_ntop(AF_INET6): longest zero run (>= 2 words, first on a
    tie) becomes '::'; ::a.b.c.d and ::ffff:a.b.c.d keep the dotted tail."""
    words = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words + [1]):
        if w == 0 and i < 8:
            if cur_base < 0:
                cur_base, cur_len = i, 0
            cur_len += 1
        elif cur_base >= 0:
            if best_base < 0 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if best_len < 2:
        best_base = -1
    out: list[str] = []
    for i in range(8):
        if best_base >= 0 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            continue
        if i:
            out.append(":")
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out.append(".".join(str(b) for b in packed[12:]))
            break
        out.append(f"{words[i]:x}")
    if best_base >= 0 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def normalize_addr(addr: str) -> str:
    """A client address the way smtpd holds it: IPv4 dotted quad; IPv6 as
    inet_ntop prints it (lower case, compressed); an IPv4-mapped IPv6
    address as IPv4.  Anything else ("unknown", garbage) is returned as is."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            return addr
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return _inet_ntop6(ip.packed)
    return str(ip)


def ip_lookups(addr: str, *, partial: bool = False) -> list[Lookup]:
    """check_addr_access: the address, then shorter prefixes cut at the
    last '.' (IPv4) or ':' (IPv6, when the address has a colon).  The
    address is normalized first (see normalize_addr); empty keys are skipped."""
    addr = normalize_addr(addr)
    delim = ":" if ":" in addr else "."
    out = [Lookup(addr, partial)] if addr else []
    rest = addr
    while (cut := rest.rfind(delim)) >= 0:
        rest = rest[:cut]
        if rest:
            out.append(Lookup(rest, True))
    return _dedup(out)


def ip_keys(addr: str) -> list[str]:
    return _keys(ip_lookups(addr))


def client_lookups(name: str, addr: str, *, parent_matches_subdomains: bool = True
                   ) -> list[Lookup]:
    """Search of check_client_access (and check_reverse_client_hostname_access
    with the reverse name): the client name and its parents (the name
    `unknown` included), then the client address and its prefixes."""
    return _dedup(domain_lookups(name, parent_matches_subdomains=parent_matches_subdomains)
                  + ip_lookups(addr))


def client_keys(name: str, addr: str, *, parent_matches_subdomains: bool = True) -> list[str]:
    return _keys(client_lookups(name, addr, parent_matches_subdomains=parent_matches_subdomains))


# ---------------------------------------------------------------------------
# Walking a table

def is_pattern_table(table: object) -> bool:
    """True for regexp/pcre/cidr tables (by their `.type`), which Postfix
    never asks PARTIAL keys."""
    return getattr(table, "type", None) in PATTERN_TYPES


def first_match(table: Table, keys: Iterable[Lookup | str], *,
                fixed: bool | None = None) -> tuple[str, str] | None:
    """The first (key, value) that `table.lookup` finds, walking `keys` in
    order; None when none is found.  The first key FOUND ends the search
    whatever its value (a found DUNNO stops it too).  A `Lookup` with
    `partial` set is skipped on pattern tables (`fixed=False`, or by
    default when `is_pattern_table(table)`); plain strings are always
    asked.  Table errors (MapError) propagate: Postfix answers 451 then."""
    if fixed is None:
        fixed = not is_pattern_table(table)
    for item in keys:
        key, partial = (item.key, item.partial) if isinstance(item, Lookup) else (item, False)
        if partial and not fixed:
            continue
        value = table.lookup(key)
        if value is not None:
            return key, value
    return None


def _dedup(lookups: list[Lookup]) -> list[Lookup]:
    """Drop a repeated key when asking it again cannot change the result:
    always, unless the earlier one was PARTIAL and the repeat is FULL (a
    pattern table sees only the repeat)."""
    seen: dict[str, bool] = {}
    out: list[Lookup] = []
    for lk in lookups:
        earlier = seen.get(lk.key)
        if earlier is not None and (not earlier or lk.partial):
            continue
        seen[lk.key] = lk.partial if earlier is None else False
        out.append(lk)
    return out


def _keys(lookups: list[Lookup]) -> list[str]:
    return list(dict.fromkeys(lk.key for lk in lookups))
