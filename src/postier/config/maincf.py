"""main.cf: reader, `$name` expander, typed `Config`, and the in-place editor.

Syntax (as Postfix's readllines + split_nameval):

- A line whose first non-blank character is `#` is a comment; blank lines are
  ignored.  Neither ends a multi-line entry.
- A line that starts with whitespace continues the previous line; the text
  is joined as is (without the newline).  A logical line that *starts* with
  whitespace is skipped with a warning.
- `name = value`: blanks around `=` are optional, the value is trimmed.  A
  later entry for the same name wins, with the warning `PATH, line N:
  overriding earlier entry: NAME=OLDVALUE`.

Expansion is a port of Postfix's mac_parse/mac_expand: `$name`, `${name}`,
`$(name)`, `$$`, `${name?value}`, `${name:value}`, `${name?{a}:{b}}`, and the
relational forms `${{x} == {y} ? {a} : {b}}` with `==`, `!=`, `<`, `<=`,
`>`, `>=` (numbers compare numerically) and the `level` suffix (`<level`,
...) that compares compatibility levels.  Expansion is recursive; more than
100 nested references (e.g. `a = $b`, `b = $a`) is an error, not a hang.

`Config` gives typed values (see `postier.config.registry` for the types):
`get`, `get_str`, `get_bool`, `get_int`, `get_time`, `get_size`,
`get_list`, plus `raw`, `expand`, `source`, `is_default`, `validate`.
Defaults that depend on the host are computed here the way Postfix computes
them: myhostname (gethostname(), plus ".$mydomain" or ".localdomain" when it
has no dot), mydomain ($myhostname minus its first label, or
"localdomain"), mynetworks (the networks of the local interface addresses
selected by inet_interfaces and inet_protocols, shaped by
mynetworks_style), config_directory (the directory actually read).

Parameters read: every registered parameter on demand; for host-dependent
defaults: mydomain, myhostname, inet_interfaces, inet_protocols,
mynetworks_style; smtpd_restriction_classes (to find user-defined names).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable

from postier.config import params as _params
from postier.config.registry import (
    BOOL,
    INT,
    LIST,
    MAP_LIST,
    SIZE,
    STRING,
    TIME,
    BadValue,
    Param,
    compat_level,
    convert,
    split_list,
)
from postier.errors import ConfigError

DEFAULT_CONFIG_DIR = "/etc/postier"
MAIN_CF = "main.cf"
MASTER_CF = "master.cf"
SPACE = " \t\r\n\v\f"
EXP_SPACE = " \t\r\n"  # MAC_EXP_WHITESPACE
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
NESTING_LIMIT = 100


# --------------------------------------------------------------------------
# Reading logical lines and name = value entries
# --------------------------------------------------------------------------

def read_logical_lines(text: str, path: str, warnings: list[str] | None = None
                       ) -> list[tuple[int, str]]:
    """Split `text` into logical lines (first line number, joined text), as
    Postfix's readllines(): comments and blank lines are dropped, lines that
    start with whitespace continue the previous one."""
    out: list[tuple[int, str]] = []
    cur_line = 0
    cur: list[str] | None = None
    bad = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        body = raw.lstrip(SPACE)
        if not body or body[0] == "#":
            continue
        if raw[0] in SPACE:
            if cur is None:
                cur_line, cur, bad = lineno, [raw], True
            else:
                cur.append(raw)
            continue
        if cur is not None:
            _flush(out, cur_line, cur, bad, path, warnings)
        cur_line, cur, bad = lineno, [raw], False
    if cur is not None:
        _flush(out, cur_line, cur, bad, path, warnings)
    return out


def _flush(out, line, parts, bad, path, warnings) -> None:
    joined = "".join(parts)
    if bad:
        if warnings is not None:
            shown = joined[:30] + ("..." if len(joined) > 30 else "")
            warnings.append(f'{path}, line {line}: logical line must not start with '
                            f'whitespace: "{shown}"')
        return
    out.append((line, joined))


def split_nameval(text: str) -> tuple[str, str]:
    """`name = value` -> (name, value); ValueError with Postfix's wording."""
    s = text.lstrip(SPACE)
    if not s or s[0] == "=":
        raise ValueError("missing attribute name")
    i = 0
    while i < len(s) and s[i] not in SPACE and s[i] != "=":
        i += 1
    name = s[:i]
    rest = s[i:].lstrip(SPACE)
    if not rest.startswith("="):
        raise ValueError("missing '=' after attribute name")
    return name, rest[1:].strip(SPACE)


class Entry:
    """One `name = value` in main.cf."""

    __slots__ = ("name", "value", "line")

    def __init__(self, name: str, value: str, line: int):
        self.name, self.value, self.line = name, value, line

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.value!r}, line={self.line})"


class MainCf:
    """The parsed main.cf: entries by name (last wins) and parse warnings."""

    def __init__(self, path: str, entries: dict[str, Entry], warnings: list[str]):
        self.path = path
        self.entries = entries
        self.warnings = warnings


def parse_main_cf(text: str, path: str = MAIN_CF) -> MainCf:
    """Parse main.cf text; a malformed entry raises ConfigError(path, line)."""
    warnings: list[str] = []
    entries: dict[str, Entry] = {}
    for line, logical in read_logical_lines(text, path, warnings):
        try:
            name, value = split_nameval(logical)
        except ValueError as e:
            raise ConfigError(f'{e}: "{logical}" (expected name = value)', path, line) from None
        old = entries.get(name)
        if old is not None and old.value != value:
            warnings.append(f"{path}, line {line}: overriding earlier entry: {name}={old.value}")
        entries[name] = Entry(name, value, line)
    return MainCf(path, entries, warnings)


def read_text(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def read_main_cf(path: str) -> MainCf:
    """Read and parse a main.cf file (OSError when it cannot be read)."""
    return parse_main_cf(read_text(path), path)


# --------------------------------------------------------------------------
# $name expansion (mac_parse + mac_expand)
# --------------------------------------------------------------------------

class MacroError(Exception):
    """A syntax error or runaway recursion in a $name expression."""


class _Ctx:
    __slots__ = ("lookup", "recurse", "scan", "level", "out", "undefined")

    def __init__(self, lookup, recurse: bool, scan: bool):
        self.lookup = lookup
        self.recurse = recurse
        self.scan = scan
        self.level = 0
        self.out: list[str] = []
        self.undefined = False


def _mac_parse(value: str, ctx: _Ctx) -> None:
    """Split `value` into literal text and $name references (mac_parse)."""
    buf: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c != "$":
            j = value.find("$", i)
            if j < 0:
                j = n
            buf.append(value[i:j])
            i = j
            continue
        if i + 1 < n and value[i + 1] == "$":
            buf.append("$")
            i += 2
            continue
        if buf:
            if not ctx.scan:
                ctx.out.append("".join(buf))
            buf = []
        i += 1
        if i < n and value[i] in "({":
            open_ch = value[i]
            close_ch = ")" if open_ch == "(" else "}"
            level = 1
            i += 1
            start = i
            while level > 0:
                if i >= n:
                    raise MacroError(f'truncated macro reference: "{value}"')
                if value[i] == open_ch:
                    level += 1
                elif value[i] == close_ch:
                    level -= 1
                i += 1
            name = value[start:i - 1]
        else:
            start = i
            while i < n and value[i] in _NAME_CHARS:
                i += 1
            name = value[start:i]
        if not name:
            raise MacroError(f'empty macro name: "{value}"')
        _expand_expr(name, ctx)
    if buf and not ctx.scan:
        ctx.out.append("".join(buf))


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in EXP_SPACE:
        i += 1
    return i


def _curly_payload(s: str, i: int) -> tuple[str, int]:
    """s[i] == '{': return (payload, index after '}' and trailing blanks)."""
    level = 1
    j = i + 1
    while True:
        if j >= len(s):
            raise MacroError(f'unbalanced {{}} in attribute expression: "{s[i:]}"')
        if s[j] == "{":
            level += 1
        elif s[j] == "}":
            level -= 1
            if level <= 0:
                break
        j += 1
    return s[i + 1:j], _skip_ws(s, j + 1)


_RELOPS = ("==", "!=", "<", "<=", ">=", ">")
_RELOP_CHARS = "<>!=?+-*/~&|%"
_RELOPS_TEXT = '"==" or "!="" or "<"" or "<="" or ">="" or ">"'  # sic: Postfix's text


def _relop(left: str, op: str, right: str) -> bool:
    if left.isdigit() and right.isdigit() and left.isascii() and right.isascii():
        delta = int(left) - int(right)
    else:
        delta = (left > right) - (left < right)
    return _cmp(delta, op)


def _cmp(delta: int, op: str) -> bool:
    return {"==": delta == 0, "!=": delta != 0, "<": delta < 0, "<=": delta <= 0,
            ">=": delta >= 0, ">": delta > 0}[op]


def _compat_relop(left: str, op: str, right: str) -> bool:
    lv, rv = compat_level(left), compat_level(right)
    for text, v in ((left, lv), (right, rv)):
        if v is None:
            raise MacroError(f'malformed compatibility level syntax: "{text}"')
    delta = (lv > rv) - (lv < rv)
    return _cmp(delta, op)


def _sub_expand(text: str, ctx: _Ctx) -> str:
    sub = _Ctx(ctx.lookup, ctx.recurse, ctx.scan)
    sub.level = ctx.level
    _mac_parse(text, sub)
    ctx.undefined |= sub.undefined
    return "".join(sub.out)


def _parse_relational(s: str, i: int, ctx: _Ctx) -> tuple[str | None, int]:
    left, i = _curly_payload(s, i)
    j = i
    while j < len(s) and s[j] in _RELOP_CHARS:
        j += 1
    op = s[i:j]
    if op not in _RELOPS:
        raise MacroError(f'{_RELOPS_TEXT} expected at: "...{left}}}>>>{s[i:i + 20]}"')
    relop = _relop
    k = j
    while k < len(s) and s[k].isascii() and s[k].isalnum():
        k += 1
    if k > j:
        if s[j:k] != "level":
            raise MacroError(f'bad operator suffix at: "...{op}>>>{s[j:k]}"')
        relop = _compat_relop
    m = _skip_ws(s, k)
    if m >= len(s) or s[m] != "{":
        raise MacroError(f'"{{expression}}" expected at: "...{{{left}}} {op}>>>{s[k:k + 20]}"')
    right, m = _curly_payload(s, m)
    lval = _sub_expand(left, ctx)
    rval = _sub_expand(right, ctx)
    if ctx.scan:
        return None, m
    return ("true" if relop(lval, op, rval) else ""), m


def _expand_expr(text: str, ctx: _Ctx) -> None:
    """One ${...} or $name (mac_expand_callback)."""
    ctx.level += 1
    if ctx.level > NESTING_LIMIT:
        raise MacroError(f'unreasonable macro call nesting: "{text}"')
    s = text
    i = _skip_ws(s, 0)
    if i < len(s) and s[i] == "{":
        lookup, i = _parse_relational(s, i, ctx)
        ch = ""
        if i < len(s):
            ch = s[i]
            if ch not in "?:":
                raise MacroError(f'"?" or ":" expected at: "...}}>>>{s[i:i + 20]}"')
            i += 1
    else:
        start = i
        ch = ""
        while True:
            k = _skip_ws(s, i)
            if k >= len(s):
                name = s[start:i]
                break
            if s[k] in "?:":
                name = s[start:i]
                ch = s[k]
                i = k + 1
                break
            if s[i] not in _NAME_CHARS:
                raise MacroError(f'attribute name syntax error at: "...{s[:i]}>>>{s[i:i + 20]}"')
            i += 1
        lookup = ctx.lookup(name)
    if ch == "?":
        k = _skip_ws(s, i)
        if k < len(s) and s[k] == "{":
            iftrue, i = _curly_payload(s, k)
        else:
            iftrue, i = s[i:], len(s)
        if lookup or ctx.scan:
            _mac_parse(iftrue, ctx)
        if i < len(s):
            if s[i] != ":":
                raise MacroError(f'":" expected at: "...{iftrue}}}>>>{s[i:i + 20]}"')
            i += 1
            ch = ":"
    if ch == ":":
        k = _skip_ws(s, i)
        if k < len(s) and s[k] == "{":
            iffalse, i = _curly_payload(s, k)
        else:
            iffalse, i = s[i:], len(s)
        if not lookup or ctx.scan:
            _mac_parse(iffalse, ctx)
        if i < len(s):
            raise MacroError(f'unexpected input at: "...{iffalse}}}>>>{s[i:i + 20]}"')
    elif ch == "":
        if lookup is None:
            ctx.undefined = True
        elif lookup and not ctx.scan:
            if ctx.recurse:
                _mac_parse(lookup, ctx)
            else:
                ctx.out.append(lookup)
    ctx.level -= 1


def mac_expand(text: str, lookup: Callable[[str], str | None], recurse: bool = True) -> str:
    """Expand $name references in `text`; `lookup(name)` returns the raw value
    or None (undefined: expands to nothing).  Raises MacroError."""
    if "$" not in text:
        return text
    ctx = _Ctx(lookup, recurse, False)
    _mac_parse(text, ctx)
    return "".join(ctx.out)


def mac_scan(text: str) -> list[str]:
    """Every $name referenced in `text`, in both branches of conditionals
    (MAC_EXP_FLAG_SCAN).  Raises MacroError on syntax errors."""
    names: list[str] = []
    if "$" not in text:
        return names

    def record(name: str) -> None:
        names.append(name)
        return None

    _mac_parse(text, _Ctx(record, False, True))
    return names


# --------------------------------------------------------------------------
# Postfix's own parameter names (data file) and host-dependent defaults
# --------------------------------------------------------------------------

_POSTFIX_NAMES: dict[str, tuple[str, str | None]] | None = None


def data_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def builtin_config_dir() -> str:
    """The built-in default configuration shipped with the package."""
    return os.path.join(data_dir(), "default")


def postfix_names() -> dict[str, tuple[str, str | None]]:
    """Postfix 3.7's parameter names: name -> (kind, default text or None for
    host-dependent ones).  kind is builtin, service (derived from the stock
    master.cf) or legacy.  Loaded once from data/postfix-3.7-parameters.txt."""
    global _POSTFIX_NAMES
    if _POSTFIX_NAMES is None:
        names: dict[str, tuple[str, str | None]] = {}
        kind = "builtin"
        with open(os.path.join(data_dir(), "postfix-3.7-parameters.txt"), encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line or line.startswith("#"):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    kind = line[1:-1]
                    continue
                if line.startswith("!"):
                    names[line[1:].strip()] = (kind, None)
                    continue
                name, _, value = line.partition(" =")
                names[name] = (kind, value[1:] if value.startswith(" ") else value)
        _POSTFIX_NAMES = names
    return _POSTFIX_NAMES


def _hostname() -> str:
    return socket.gethostname()


class _Iface:
    __slots__ = ("name", "family", "addr", "prefix", "loopback")

    def __init__(self, name, family, addr, prefix, loopback):
        self.name, self.family, self.addr = name, family, addr
        self.prefix, self.loopback = prefix, loopback


def local_interfaces() -> list[_Iface]:
    """The addresses of the local network interfaces that are up (getifaddrs)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - non-glibc platform
        return _fallback_interfaces()

    class Ifaddrs(ctypes.Structure):
        pass

    Ifaddrs._fields_ = [("ifa_next", ctypes.POINTER(Ifaddrs)), ("ifa_name", ctypes.c_char_p),
                        ("ifa_flags", ctypes.c_uint), ("ifa_addr", ctypes.c_void_p),
                        ("ifa_netmask", ctypes.c_void_p), ("ifa_ifu", ctypes.c_void_p),
                        ("ifa_data", ctypes.c_void_p)]
    head = ctypes.POINTER(Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:  # pragma: no cover
        return _fallback_interfaces()
    out: list[_Iface] = []
    try:
        p = head
        while p:
            ifa = p.contents
            p = ifa.ifa_next
            if not ifa.ifa_addr or not (ifa.ifa_flags & 1):  # IFF_UP
                continue
            family = ctypes.c_ushort.from_address(ifa.ifa_addr).value
            if family == socket.AF_INET:
                off, size, bits = 4, 4, 32
            elif family == socket.AF_INET6:
                off, size, bits = 8, 16, 128
            else:
                continue
            addr = ctypes.string_at(ifa.ifa_addr + off, size)
            prefix = bits
            if ifa.ifa_netmask:
                mask = int.from_bytes(ctypes.string_at(ifa.ifa_netmask + off, size), "big")
                prefix = bin(mask).count("1")
            out.append(_Iface(ifa.ifa_name.decode(errors="replace"), family, addr, prefix,
                              bool(ifa.ifa_flags & 8)))  # IFF_LOOPBACK
    finally:
        libc.freeifaddrs(head)
    return out


def _fallback_interfaces() -> list[_Iface]:  # pragma: no cover
    return [_Iface("lo", socket.AF_INET, socket.inet_pton(socket.AF_INET, "127.0.0.1"), 8, True),
            _Iface("lo", socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "::1"), 128, True)]


def compute_mynetworks(interfaces: list[str], protocols: list[str], style: str) -> str:
    """The default mynetworks value, as Postfix's mynetworks(): the networks of
    the addresses in `interfaces` (inet_interfaces), sorted and deduplicated,
    each shaped by `style` (host, subnet, class)."""
    import ipaddress

    fams = set()
    for p in protocols:
        p = p.lower()
        if p in ("all", "ipv4"):
            fams.add(socket.AF_INET)
        if p in ("all", "ipv6"):
            fams.add(socket.AF_INET6)
    style = style.lower()
    if style not in ("host", "subnet", "class"):
        raise BadValue(f'unknown mynetworks mask style value "{style}" in "{style}"')
    local = [i for i in local_interfaces() if i.family in fams]
    chosen: list[tuple[int, bytes, int]] = []
    lowered = [x.lower() for x in interfaces]
    if not lowered or "all" in lowered:
        chosen = [(i.family, i.addr, i.prefix) for i in local]
    else:
        for item in interfaces:
            if item.lower() == "loopback-only":
                chosen += [(i.family, i.addr, i.prefix) for i in local if i.loopback]
                continue
            for fam, addr in _resolve(item.strip("[]"), fams):
                match = [i for i in local if i.family == fam and i.addr == addr]
                if not match:
                    raise BadValue(f"parameter inet_interfaces: no local interface found for {item}")
                chosen.append((fam, addr, match[0].prefix))
    seen: dict[tuple[int, bytes], int] = {}
    for fam, addr, prefix in chosen:
        seen.setdefault((fam, addr), prefix)
    out = []
    for (fam, addr), prefix in sorted(seen.items()):
        bits = 32 if fam == socket.AF_INET else 128
        num = int.from_bytes(addr, "big")
        if style == "host":
            prefix = bits
        elif style == "class" and fam == socket.AF_INET:
            prefix = 8 if num >> 31 == 0 else 16 if num >> 30 == 2 else 24 if num >> 29 == 6 else 4
        net = num & (((1 << prefix) - 1) << (bits - prefix)) if prefix else 0
        text = str(ipaddress.ip_address(net if fam == socket.AF_INET else net.to_bytes(16, "big")))
        out.append(f"{text}/{prefix}" if fam == socket.AF_INET else f"[{text}]/{prefix}")
    return " ".join(out)


def _resolve(host: str, fams: set[int]) -> list[tuple[int, bytes]]:
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            return [(fam, socket.inet_pton(fam, host))] if fam in fams else []
        except OSError:
            continue
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise BadValue(f"parameter inet_interfaces: host not found: {host}: {e}") from None
    out = []
    for fam, _t, _p, _c, sa in infos:
        if fam in fams:
            item = (fam, socket.inet_pton(fam, sa[0].split("%")[0]))
            if item not in out:
                out.append(item)
    return out


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

class Config:
    """Typed, lazily validated access to one main.cf (plus master.cf for
    service-defined parameter names and `-o` overrides).

    Values are expanded and converted on first use and cached; `validate()`
    checks every registered parameter that main.cf sets.  A bad value raises
    ConfigError naming the file, line, parameter and what was expected.
    """

    def __init__(self, main: MainCf, config_dir: str | None = None, *,
                 master_path: str | None = None,
                 overrides: dict[str, str] | None = None,
                 override_source: tuple[str, int] | None = None,
                 parent: Config | None = None,
                 services: list | None = None):
        self.main = main
        self.path = main.path
        self.config_dir = config_dir if config_dir is not None else (
            os.path.dirname(main.path) or ".")
        self.master_path = master_path
        self.warnings: list[str] = list(main.warnings)
        self._overrides = overrides or {}
        self._override_source = override_source
        self._parent = parent
        self._services = services
        self._raw_cache: dict[str, str | None] = {}
        self._exp_cache: dict[str, str] = {}
        self._typed: dict[str, object] = {}
        self._host_cache: dict[str, str] = {}
        self._service_params: dict[str, Param] | None = None
        self.defaults_only = False
        self._forced: dict[str, str] = {}

    # -- construction ------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, path: str = MAIN_CF, *, master_text: str | None = None,
                  master_path: str = MASTER_CF) -> Config:
        """A Config from main.cf text (and optionally master.cf text, else no
        services), for tests."""
        services: list = []
        if master_text is not None:
            from postier.config.mastercf import parse_master_cf
            services = parse_master_cf(master_text, master_path)
        return cls(parse_main_cf(text, path), config_dir=os.path.dirname(path) or ".",
                   master_path=master_path, services=services)

    def for_service(self, service) -> Config:
        """This configuration as seen by one master.cf service: its `-o
        name=value` overrides take precedence (Postfix's local name space)."""
        child = Config(self.main, self.config_dir, master_path=self.master_path,
                       overrides=dict(service.overrides),
                       override_source=(service.path, service.line),
                       parent=self, services=self._services)
        child._forced["service_name"] = service.name
        return child

    # -- master.cf ----------------------------------------------------------
    @property
    def services(self) -> list:
        """The master.cf services (read on first use; [] when there is none)."""
        if self._services is None:
            from postier.config.mastercf import read_master_cf
            path = self.master_path or os.path.join(self.config_dir, MASTER_CF)
            self._services = read_master_cf(path) if os.path.exists(path) else []
        return self._services

    def service_params(self) -> dict[str, Param]:
        """Service-defined parameters (e.g. relay_destination_concurrency_limit)
        for the delivery services in master.cf."""
        if self._service_params is None:
            out: dict[str, Param] = {}
            for svc in self.services:
                prog = svc.command
                if prog not in _params.DELIVERY_PROGRAMS:
                    continue
                pairs: list[tuple[str, str]] = []
                if prog in ("pipe", "spawn"):
                    pairs.append(_params.COMMAND_TIME_SUFFIX)
                if prog != "spawn":
                    pairs += list(_params.SERVICE_SUFFIXES.items())
                for suffix, base in pairs:
                    name = svc.name + suffix
                    if name in _params.PARAMS or name in out:
                        continue
                    bp = _params.PARAMS[base]
                    out[name] = Param(name=name, type=bp.type, default="$" + base,
                                      doc=f"{svc.name} service: {bp.doc}", min=bp.min,
                                      max=bp.max, unit=bp.unit, choices=bp.choices)
            self._service_params = out
        return self._service_params

    # -- parameter metadata ---------------------------------------------------
    def param(self, name: str) -> Param | None:
        """The registry entry (or service-defined entry) for `name`, or None."""
        p = _params.PARAMS.get(name)
        if p is None and name.endswith(_SERVICE_ENDINGS):
            p = self.service_params().get(name)
        return p

    def is_set(self, name: str) -> bool:
        """True when main.cf (or a service override) sets `name`."""
        return name in self._overrides or name in self.main.entries

    def is_default(self, name: str) -> bool:
        return not self.is_set(name)

    def source(self, name: str) -> tuple[str, int] | None:
        """(path, line) of the entry that sets `name`, or None for a default."""
        if name in self._overrides:
            return self._override_source
        e = self.main.entries.get(name)
        return (self.path, e.line) if e is not None else None

    # -- raw values -------------------------------------------------------
    def lookup(self, name: str) -> str | None:
        """The unexpanded value of `name` as Postfix's daemons see it: a
        service override, main.cf, the registered default, the Postfix 3.7
        default of a parameter postier does not implement, or None."""
        try:
            return self._raw_cache[name]
        except KeyError:
            pass
        if name in self._forced:
            v: str | None = self._forced[name]
        elif name in self._overrides:
            v = self._overrides[name]
        elif name in self.main.entries:
            v = self.main.entries[name].value
        else:
            v = self.default(name)
        self._raw_cache[name] = v
        return v

    def default(self, name: str) -> str | None:
        """The default value text of `name` (host-dependent ones computed)."""
        p = self.param(name)
        if p is not None:
            if p.host_dependent:
                return self._host_default(name)
            return p.default
        if name == "process_id":
            return str(os.getpid())
        if name == "process_name":
            from postier import log
            return log.LOG.service
        known = postfix_names().get(name)
        if known is not None:
            return known[1] if known[1] is not None else ""
        return None

    def raw(self, name: str) -> str:
        """The unexpanded value text of `name` (main.cf or default)."""
        v = self.lookup(name)
        if v is None:
            raise KeyError(f"unknown parameter: {name}")
        return v

    def _host_default(self, name: str) -> str:
        if name in self._host_cache:
            return self._host_cache[name]
        where = (self.path, None)
        try:
            if name == "config_directory":
                v = DEFAULT_CONFIG_DIR if self.defaults_only else self.config_dir
            elif name == "myhostname":
                v = _hostname()
                if "." not in v:
                    dom = self._expand_param("mydomain") if self.is_set("mydomain") else "localdomain"
                    v = f"{v}.{dom}"
            elif name == "mydomain":
                host = self._expand_param("myhostname")
                v = host.split(".", 1)[1] if "." in host else "localdomain"
            elif name == "mynetworks":
                v = compute_mynetworks(self.get_list("inet_interfaces"),
                                       self.get_list("inet_protocols"),
                                       self.get_str("mynetworks_style"))
            else:  # pragma: no cover - registry/code mismatch
                raise KeyError(name)
        except BadValue as e:
            raise ConfigError(str(e), *where) from None
        self._host_cache[name] = v
        return v

    # -- expansion --------------------------------------------------------
    def expand(self, text: str, *, name: str | None = None) -> str:
        """Expand $name references in `text` with this configuration."""
        try:
            return mac_expand(text, self.lookup)
        except MacroError as e:
            where = self.source(name) if name else None
            prefix = f"parameter {name}: " if name else ""
            raise ConfigError(prefix + str(e), *(where or (self.path, None))) from None

    def _expand_param(self, name: str) -> str:
        try:
            return self._exp_cache[name]
        except KeyError:
            pass
        raw = self.raw(name)
        p = self.param(name)
        value = raw if (p is not None and p.raw) else self.expand(raw, name=name)
        self._exp_cache[name] = value
        return value

    # -- typed getters ----------------------------------------------------
    def get(self, name: str):
        """The typed value of a registered parameter: str, bool, int (int,
        size, time in seconds) or list[str].  An unregistered name that main.cf
        sets (or that Postfix knows) gives its expanded text."""
        try:
            value = self._typed[name]
            return list(value) if isinstance(value, list) else value
        except KeyError:
            pass
        p = self.param(name)
        if p is None:
            value = self._expand_param(name)
        else:
            text = self._expand_param(name)
            try:
                value = convert(p, text)
            except BadValue as e:
                where = self.source(name)
                if where is None:
                    raise ConfigError(f"{e} (default value)", self.path) from None
                raise ConfigError(str(e), *where) from None
        self._typed[name] = value
        return list(value) if isinstance(value, list) else value

    def _typed_get(self, name: str, types: tuple[str, ...], what: str):
        p = self.param(name)
        if p is not None and p.type not in types:
            raise TypeError(f"parameter {name} is of type {p.type}, not {what}")
        return self.get(name)

    def get_str(self, name: str) -> str:
        """The expanded text of any parameter (typed ones are not converted)."""
        p = self.param(name)
        if p is not None and p.type == STRING:
            return self.get(name)
        return self._expand_param(name)

    def get_bool(self, name: str) -> bool:
        return self._typed_get(name, (BOOL,), "bool")

    def get_int(self, name: str) -> int:
        return self._typed_get(name, (INT, SIZE, TIME), "int")

    def get_size(self, name: str) -> int:
        return self._typed_get(name, (SIZE, INT), "size")

    def get_time(self, name: str) -> int:
        """A time parameter in seconds."""
        return self._typed_get(name, (TIME,), "time")

    def get_list(self, name: str) -> list[str]:
        p = self.param(name)
        if p is None or p.type not in (LIST, MAP_LIST):
            try:
                return split_list(self._expand_param(name), name)
            except BadValue as e:
                raise ConfigError(str(e), *(self.source(name) or (self.path, None))) from None
        return self.get(name)

    # -- validation ---------------------------------------------------------
    def validate(self, raise_errors: bool = True) -> list[ConfigError]:
        """Check every registered (or service-defined) parameter that main.cf
        or a service override sets; return the errors, or raise the first
        when `raise_errors` (its message says how many more there are, and its
        `errors` attribute holds them all)."""
        errors: list[ConfigError] = []
        names = list(self.main.entries) + [n for n in self._overrides if n not in self.main.entries]
        for name in names:
            if self.param(name) is None:
                continue
            try:
                self.get(name)
            except ConfigError as e:
                errors.append(e)
        if errors and raise_errors:
            first = errors[0]
            if len(errors) > 1:
                first = ConfigError(f"{first.message} (and {len(errors) - 1} more errors)",
                                    first.path, first.line)
            first.errors = errors  # every error, for callers that report them all
            raise first
        return errors

    # -- names --------------------------------------------------------------
    def user_defined(self) -> tuple[set[str], list[str]]:
        """(valid user-defined names, undefined-reference warnings), following
        postconf: a name set in main.cf (or in a master.cf -o) is valid when
        it is referenced as $name from a main.cf value, a registered default
        or a master.cf -o value, or listed in smtpd_restriction_classes."""
        valid: set[str] = set()
        warns: list[str] = []
        entries = self.main.entries
        try:
            services = self.services
        except ConfigError:
            services = []
        local_names = {n for svc in services for n in svc.overrides}

        def known(n: str) -> bool:
            return self.param(n) is not None or n in postfix_names()

        def consider(refs: Iterable[str], where: str, local: dict[str, str] | None) -> None:
            for n in refs:
                if n in entries:
                    valid.add(n)
                elif local is not None and n in local:
                    pass
                elif local is None and n in local_names:
                    valid.add(n)  # $n in main.cf refers to a master.cf -o n=value
                elif not known(n):
                    warns.append(f"{where}: undefined parameter: {n}")

        def scan(text: str, where: str, local=None) -> None:
            try:
                consider(mac_scan(text), where, local)
            except MacroError as e:
                warns.append(f"{where}: {e}")

        try:
            classes = split_list(self.expand(self.lookup("smtpd_restriction_classes") or ""))
        except (ConfigError, BadValue):
            classes = []
        # restriction class names are valid in main.cf and in master.cf -o
        valid.update(classes)
        for p in _params.PARAMS.values():
            if p.raw or p.host_dependent or p.name in entries:
                continue
            scan(p.default, f"{self.path}: default {p.name}")
        for e in entries.values():
            p = self.param(e.name)
            if p is not None and p.raw:
                continue
            scan(e.value, f"{self.path}, line {e.line}")
        for svc in services:
            for v in svc.overrides.values():
                scan(v, f"{svc.path}, line {svc.line}", svc.overrides)
        return valid, warns

    def check_names(self) -> list[str]:
        """Warnings about parameter names in main.cf and master.cf `-o`:

        - `PATH, line N: parameter "NAME" is not supported by postier (ignored)`
          for a Postfix 3.7 parameter postier does not implement;
        - `PATH, line N: unused parameter: NAME=VALUE` for a name neither
          Postfix nor postier knows and that no $NAME reference uses;
        - `PATH, line N: undefined parameter: NAME` for a $NAME reference to a
          name that is set nowhere and known to neither.
        """
        valid, warns = self.user_defined()
        out = list(warns)
        pf = postfix_names()
        for e in self.main.entries.values():
            if self.param(e.name) is not None or e.name in valid:
                continue
            if e.name in pf:
                out.append(f'{self.path}, line {e.line}: parameter "{e.name}" is not '
                           f"supported by postier (ignored)")
            else:
                out.append(f"{self.path}, line {e.line}: unused parameter: {e.name}={e.value}")
        try:
            services = self.services
        except ConfigError:
            services = []
        for svc in services:
            refs: set[str] = set()
            for v in svc.overrides.values():
                try:
                    refs.update(mac_scan(v))
                except MacroError:
                    pass
            for n, v in svc.overrides.items():
                if self.param(n) is not None or n in refs or n in valid:
                    continue
                if n in pf:
                    out.append(f'{svc.path}, line {svc.line}: parameter "{n}" is not '
                               f"supported by postier (ignored)")
                else:
                    out.append(f"{svc.path}, line {svc.line}: unused parameter: {n}={v}")
        return out

    def names(self, *, include_user: bool = True) -> list[str]:
        """All parameter names this configuration knows, sorted: registered
        (legacy ones only when set), service-defined and valid user-defined."""
        out = {p.name for p in _params.PARAMS.values() if not p.legacy or self.is_set(p.name)}
        out.update(self.service_params())
        if include_user:
            out.update(self.user_defined()[0])
        return sorted(out)


_SERVICE_ENDINGS = tuple(_params.SERVICE_SUFFIXES) + (_params.COMMAND_TIME_SUFFIX[0],)


# --------------------------------------------------------------------------
# Locating and loading the configuration
# --------------------------------------------------------------------------

def resolve_config_dir(config_dir: str | None = None) -> str:
    """The configuration directory: the argument, else $POSTIER_CONFIG_DIR,
    else $MAIL_CONFIG, else /etc/postier when it exists, else the built-in
    default configuration in the package (data/default)."""
    if config_dir:
        return config_dir
    for var in ("POSTIER_CONFIG_DIR", "MAIL_CONFIG"):
        v = os.environ.get(var)
        if v:
            return v
    if os.path.isdir(DEFAULT_CONFIG_DIR):
        return DEFAULT_CONFIG_DIR
    return builtin_config_dir()


def load_config(config_dir: str | None = None) -> Config:
    """Read DIR/main.cf (see resolve_config_dir for DIR).  master.cf is read
    on first use.  Raises ConfigError for a missing or malformed main.cf."""
    d = resolve_config_dir(config_dir)
    path = os.path.join(d, MAIN_CF)
    try:
        text = read_text(path)
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    return Config(parse_main_cf(text, path), config_dir=d,
                  master_path=os.path.join(d, MASTER_CF))


def defaults_config(config_dir: str | None = None) -> Config:
    """A Config with an empty main.cf: every value is its default (postconf -d)."""
    d = config_dir if config_dir is not None else resolve_config_dir(None)
    cfg = Config(MainCf(os.path.join(d, MAIN_CF), {}, []), config_dir=d,
                 master_path=os.path.join(d, MASTER_CF))
    cfg.defaults_only = True
    return cfg


# --------------------------------------------------------------------------
# Editing main.cf in place (postconf -e, -X, -#)
# --------------------------------------------------------------------------

EDIT, REMOVE, COMMENT_OUT = "edit", "remove", "comment"


def edit_main_cf(path: str, mode: str, args: list[str],
                 warn: Callable[[str], None] | None = None) -> None:
    """Edit main.cf like postconf -e (mode EDIT, args "name=value"), -X
    (REMOVE, args names) or -# (COMMENT_OUT).  An edited entry replaces the
    first line of the existing entry and drops its continuation lines;
    comments and the order of everything else are kept; new entries are
    appended sorted by name.  The result is written to a temporary file in the
    same directory and renamed over main.cf.  Raises ConfigError for bad
    arguments and OSError when the file cannot be read or written."""
    table: dict[str, list] = {}
    for arg in args:
        if "\n" in arg:
            raise ConfigError("-e, -X, or -# accepts no multi-line input")
        cp = arg.lstrip(SPACE)
        if cp.startswith("#"):
            raise ConfigError("-e, -X, or -# accepts no comment input")
        if mode == EDIT:
            try:
                name, value = split_nameval(cp)
            except ValueError as e:
                raise ConfigError(f'{e}: "{cp}"') from None
        else:
            if not cp.strip(SPACE):
                raise ConfigError("-X or -# requires non-blank parameter names")
            if "=" in cp:
                raise ConfigError("-X or -# requires parameter names without value")
            name, value = cp.rstrip(SPACE), None
        if name in table and warn:
            warn(f"ignoring earlier request: '{name} = {table[name][0]}'")
        table[name] = [value, 0]

    with open(path, "rb") as f:
        src = f.read().decode("utf-8", "surrogateescape")
    st = os.stat(path)
    out: list[str] = []
    interesting = False
    lines = src.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for raw in lines:
        line = raw + "\n"
        body = raw.lstrip(SPACE)
        if not body or body.startswith("#"):
            out.append(line)
            continue
        if raw[0] in SPACE:
            if not interesting:
                out.append(line)
            elif mode == COMMENT_OUT:
                out.append("#" + line)
            continue
        i = 0
        while i < len(raw) and raw[i] not in SPACE and raw[i] != "=":
            i += 1
        key = raw[:i]
        req = table.get(key)
        interesting = req is not None
        if req is None:
            out.append(line)
            continue
        req[1] += 1
        if req[1] == 2 and warn:
            warn(f'{path}: multiple entries for "{key}"')
        if mode == EDIT:
            out.append(f"{key} = {req[0]}\n")
        elif mode == COMMENT_OUT:
            out.append("#" + line)
    if mode == EDIT:
        for name in sorted(table):
            value, found = table[name]
            if not found:
                out.append(f"{name} = {value}\n")
    import tempfile

    data = "".join(out).encode("utf-8", "surrogateescape")
    fd, tmp = tempfile.mkstemp(prefix=".main.cf.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
