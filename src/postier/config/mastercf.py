"""master.cf: the service table (reader, checks, postconf -M/-P formatting).

Each entry has eight or more fields, as in Postfix:

    service type private unpriv chroot wakeup maxproc command [args...]

- service: for inet services `[host:]port` (`127.0.0.1:2525`, `[::1]:25`,
  `smtp`, `2525`); otherwise a name.
- type: inet, unix, unix-dgram, fifo or pass.
- private, unpriv, chroot: y, n or `-` (default: y, y, n).
- wakeup: seconds, optionally followed by `?` (wake only when used), or `-`.
- maxproc: a number (0: no limit) or `-` ($default_process_limit).
- command and its arguments; `-o name=value` and `-o { name = value with
  spaces }` override main.cf parameters for this service.

Comments, blank lines and continuation lines (leading whitespace) work as in
main.cf.  Arguments are normalized as postconf does: `-oname=value` becomes
`-o name=value`, `-vo x=y` becomes `-v -o x=y`, and `{ text }` loses its
braces.  A malformed entry raises ConfigError naming the file and line.

Reads no main.cf parameters (the caller applies default_process_limit).
"""

from __future__ import annotations

import msgspec

from postier.config.maincf import read_logical_lines, read_text, split_nameval
from postier.config.registry import BadValue, extpar
from postier.errors import ConfigError

TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
FIELDS = ("service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command")
MIN_FIELDS = 8
BLANKS = " \t\r\n"
OPTIONS_WITH_VALUE = "o"
LINE_LIMIT = 80
INDENT = "    "


class Service(msgspec.Struct, kw_only=True):
    """One master.cf entry.  `args` are the normalized arguments after the
    command (including the `-o`, `name=value` pairs); `overrides` are the
    parsed `-o` settings."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    args: list[str] = []
    overrides: dict[str, str] = {}
    path: str = "master.cf"
    line: int = 0

    @property
    def argv(self) -> list[str]:
        return [self.name, self.type, self.private, self.unpriv, self.chroot,
                self.wakeup, self.maxproc, self.command, *self.args]

    @property
    def is_private(self) -> bool:
        return self.private != "n"

    @property
    def is_unprivileged(self) -> bool:
        return self.unpriv != "n"

    @property
    def is_chroot(self) -> bool:
        return self.chroot == "y"

    @property
    def wakeup_time(self) -> tuple[int, bool]:
        """(seconds, only-when-used); (0, False) when there is no wakeup."""
        if self.wakeup == "-":
            return 0, False
        if self.wakeup.endswith("?"):
            return int(self.wakeup[:-1]), True
        return int(self.wakeup), False

    def process_limit(self, default: int) -> int:
        """The maxproc field; `default` ($default_process_limit) for `-`."""
        return default if self.maxproc == "-" else int(self.maxproc)

    def listen_address(self) -> tuple[str | None, str]:
        """(host or None for all addresses, port) of an inet service."""
        host, port = split_inet_service(self.name)
        return host, port

    def command_args(self) -> list[str]:
        """The arguments after the command, without the `-o name=value` pairs."""
        out, i = [], 0
        while i < len(self.args):
            if self.args[i] == "-o" and i + 1 < len(self.args):
                i += 2
                continue
            out.append(self.args[i])
            i += 1
        return out


def split_inet_service(name: str) -> tuple[str | None, str]:
    """`127.0.0.1:2525` -> ("127.0.0.1", "2525"), `[::1]:25` -> ("::1", "25"),
    `smtp` -> (None, "smtp").  ValueError for a malformed name."""
    if ":" not in name:
        if not name:
            raise ValueError("empty service name")
        return None, name
    host, _, port = name.rpartition(":")
    if not port:
        raise ValueError("missing port")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError("bad [address]")
        host = host[1:-1]
    elif "[" in host or "]" in host:
        raise ValueError("bad [address]")
    return host or None, port


def splitq(text: str, seps: str = BLANKS) -> list[str]:
    """argv_splitq(): split on `seps`, keeping `{...}` together (braces kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in seps:
            i += 1
        if i >= n:
            return out
        start, level = i, 0
        while i < n:
            ch = text[i]
            if ch == "{":
                level += 1
            elif level > 0 and ch == "}":
                level -= 1
            elif level == 0 and ch in seps:
                break
            i += 1
        out.append(text[start:i])


def _fail(msg: str, path: str, line: int):
    raise ConfigError(msg, path, line)


def _check_fields(argv: list[str], path: str, line: int) -> None:
    t = argv[1]
    if t not in TYPES:
        _fail(f'invalid type field "{t}" (expected one of: {", ".join(TYPES)})', path, line)
    for idx in (2, 3, 4):
        v = argv[idx]
        if len(v) != 1 or v not in "yn-":
            _fail(f'invalid {FIELDS[idx]} field "{v}" (expected y, n or -)', path, line)
    w = argv[5]
    digits = w[:-1] if w.endswith("?") else w
    if w != "-" and not (digits.isdigit() and digits.isascii()):
        _fail(f'invalid wakeup field "{w}" (expected a number of seconds, '
              f'optionally followed by "?", or -)', path, line)
    m = argv[6]
    if m != "-" and not (m.isdigit() and m.isascii()):
        _fail(f'invalid process_limit field "{m}" (expected a number or -)', path, line)
    if t == "inet":
        try:
            split_inet_service(argv[0])
        except ValueError as e:
            _fail(f'invalid inet service "{argv[0]}": {e} (expected [host:]port, '
                  f"e.g. 127.0.0.1:2525, [::1]:25, smtp or 2525)", path, line)


def normalize_args(argv: list[str], path: str = "master.cf", line: int = 0) -> list[str]:
    """pcf_normalize_daemon_args: split combined options, extract `{}` text."""
    argv = list(argv)
    field = MIN_FIELDS
    while field < len(argv):
        arg = argv[field]
        if not arg.startswith("-") or arg == "--":
            break
        for k in range(2, len(arg)):
            if arg[k] in OPTIONS_WITH_VALUE:
                argv[field:field + 1] = [arg[:k], "-" + arg[k:]]
                arg = argv[field]
                break
        if len(arg) < 2 or arg[1] not in OPTIONS_WITH_VALUE:
            field += 1
            continue
        if len(arg) > 2:
            argv[field:field + 1] = [arg[:2], arg[2:]]
        if field + 1 >= len(argv):
            _fail(f"option {arg[:2]} without a value (expected {arg[:2]} name=value)", path, line)
        field += 1
        if argv[field].startswith("{"):
            argv[field] = _extract(argv[field], path, line)
            if argv[field - 1] == "-o":
                try:
                    n, v = split_nameval(argv[field])
                except ValueError as e:
                    _fail(f'bad -o option "{argv[field]}": {e} (expected -o name=value)', path, line)
                argv[field] = f"{n}={v}"
        field += 1
    while field < len(argv):
        if argv[field].startswith("{"):
            argv[field] = _extract(argv[field], path, line)
        field += 1
    return argv


def _extract(arg: str, path: str, line: int) -> str:
    try:
        return extpar(arg)
    except BadValue as e:
        _fail(str(e), path, line)


def parse_entry(text: str, path: str, line: int) -> Service:
    """Parse one logical master.cf line."""
    argv = splitq(text)
    if len(argv) < MIN_FIELDS:
        _fail(f"expected {MIN_FIELDS} or more fields ({' '.join(FIELDS)}), got {len(argv)}",
              path, line)
    _check_fields(argv, path, line)
    argv = normalize_args(argv, path, line)
    overrides: dict[str, str] = {}
    i = MIN_FIELDS
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-") or a == "--":
            break
        if a == "-o" and i + 1 < len(argv):
            try:
                n, v = split_nameval(argv[i + 1])
            except ValueError as e:
                _fail(f'bad -o option "{argv[i + 1]}": {e} (expected -o name=value)', path, line)
            overrides[n] = v
            i += 2
            continue
        i += 1
    return Service(name=argv[0], type=argv[1], private=argv[2], unpriv=argv[3],
                   chroot=argv[4], wakeup=argv[5], maxproc=argv[6], command=argv[7],
                   args=argv[8:], overrides=overrides, path=path, line=line)


def parse_master_cf(text: str, path: str = "master.cf",
                    warnings: list[str] | None = None) -> list[Service]:
    """Parse master.cf text into services; ConfigError on a malformed entry
    or a duplicate service name/type."""
    services: list[Service] = []
    seen: dict[tuple[str, str], int] = {}
    for line, logical in read_logical_lines(text, path, warnings):
        svc = parse_entry(logical, path, line)
        key = (svc.name, svc.type)
        if key in seen:
            _fail(f'duplicate service "{svc.name}/{svc.type}" (first defined at line {seen[key]})',
                  path, line)
        seen[key] = line
        services.append(svc)
    return services


def read_master_cf(path: str, warnings: list[str] | None = None) -> list[Service]:
    """Read and parse a master.cf file; ConfigError when it cannot be read."""
    try:
        text = read_text(path)
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    return parse_master_cf(text, path, warnings)


# --------------------------------------------------------------------------
# postconf -M / -P formatting
# --------------------------------------------------------------------------

_COLUMNS = (0, 11, 17, 25, 33, 41, 49, 57)


def format_service(svc: Service, fold: bool = False, expand=None) -> str:
    """One entry in postconf -M's normalized form (pcf_print_master_entry);
    `fold` wraps long lines like -Mf, `expand(value)` expands -o values (-Mx)."""
    argv = svc.argv
    out: list[str] = []
    line_len = 0
    for field in range(MIN_FIELDS):
        arg = argv[field]
        if line_len > 0:
            while True:
                out.append(" ")
                line_len += 1
                if line_len >= _COLUMNS[field]:
                    break
        out.append(arg)
        line_len += len(arg)
    in_options = True
    field = MIN_FIELDS
    while field < len(argv):
        arg = argv[field]
        arg_len = len(arg)
        aval = None
        need_parens = False
        if in_options:
            if not arg.startswith("-") or arg == "--":
                in_options = False
            elif len(arg) > 1 and arg[1] in OPTIONS_WITH_VALUE and field + 1 < len(argv):
                aval = argv[field + 1]
                line_len = LINE_LIMIT
                if arg == "-o" and expand is not None:
                    aval = expand(aval)
                arg_len += len(aval) + 3
                need_parens = _has_blank(aval)
                if need_parens:
                    arg_len += 2
        else:
            need_parens = _has_blank(arg)
        if line_len > len(INDENT):
            if not fold or line_len + 1 + arg_len < LINE_LIMIT:
                out.append(" ")
                line_len += 1
            else:
                out.append("\n" + INDENT)
                line_len = len(INDENT)
        if not in_options and need_parens:
            out.append("{")
            line_len += 1
        out.append(arg)
        line_len += len(arg)
        if not in_options and need_parens:
            out.append("}")
            line_len += 1
        if aval is not None:
            out.append(" ")
            out.append("{" + aval + "}" if need_parens else aval)
            field += 1
            line_len = LINE_LIMIT
        field += 1
    return "".join(out)


def _has_blank(s: str) -> bool:
    return any(c in BLANKS for c in s)


def parse_service_pattern(pattern: str, min_expr: int, max_expr: int) -> list[str] | None:
    """`name[/type[/param]]` -> components ('*' matches anything), or None."""
    if pattern.startswith("/"):
        return None
    parts = [p for p in pattern.split("/") if p]
    if not min_expr <= len(parts) <= max_expr:
        return None
    if any(p != "*" and "*" in p for p in parts):
        return None
    return parts + ["*"] * (max_expr - len(parts))


def match_service(pattern: list[str], svc: Service) -> bool:
    return (pattern[0] in ("*", svc.name)) and (pattern[1] in ("*", svc.type))
