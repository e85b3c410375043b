"""Parameter types, the `Param` record and value conversion (the mail_params.h/mail_conf_*.c part).

A `Param` describes one main.cf parameter: its name, type, default value text
(exactly the text `postconf -d` prints for Postfix 3.7), limits and a one-line
doc.  The table itself lives in `postier.config.params`; this module only
defines the shapes and the conversion rules, which follow Postfix's:

- bool: `yes` or `no`, case-insensitive (get_mail_conf_bool).
- int: a C `int` written in decimal, optional sign (get_mail_conf_int).
- size: a byte count; a C `long` in decimal (get_mail_conf_long).
- time: a non-negative number with an optional one-letter unit `s`, `m`, `h`,
  `d` or `w`; without a unit the parameter's default unit applies, which is
  the unit of its default value (conv_time).  Postfix ignores anything after
  the unit letter ("5s5" is 5 seconds); so does postier.
- string: any text; some have a minimal length or a fixed set of values.
- list: members separated by commas and/or whitespace; `{ ... }` groups a
  member that contains separators and the braces are stripped (mystrtokq +
  extpar).
- map_list: a list of `type:name` lookup tables, same syntax as list.

Error texts copy Postfix's daemons (`bad numerical configuration: NAME =
VALUE`, `parameter NAME: bad time value or unit: VALUE`, ...) and add what
was expected; the caller (`postier.config.maincf.Config`) adds file and line.

Reads no main.cf parameters itself.
"""

from __future__ import annotations

import re

import msgspec

STRING = "string"
BOOL = "bool"
INT = "int"
TIME = "time"
SIZE = "size"
LIST = "list"
MAP_LIST = "map_list"
TYPES = (STRING, BOOL, INT, TIME, SIZE, LIST, MAP_LIST)

TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TIME_UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1

LIST_SEPARATORS = ", \t\r\n"
BLANKS = " \t\r\n"


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """One main.cf parameter.

    `min`/`max` are value limits for int, size and time (time limits in
    seconds) and length limits for strings; None means no limit.  `choices`
    lists the accepted values of a string, or the accepted members of a list
    (case-insensitive).  `host_dependent` marks a default that is computed at
    run time (myhostname, mydomain, mynetworks, config_directory): `default`
    then holds the text Postfix would print on a reference host, and the
    effective default comes from `postier.config.maincf`.  `raw` marks a
    value that is not `$name`-expanded on load (the consumer expands it later
    with its own macros, e.g. `$home` in forward_path).  `legacy` names are
    accepted for backwards compatibility and listed only when set.
    `postier_only` marks a parameter Postfix does not have.
    `postfix_default`, when set, is Postfix's default for a parameter whose
    postier default deliberately differs (so that postier never shares a
    queue, data directory or log tag with a Postfix on the same host); the
    registry test compares it with real `postconf -d`, and docs/compat.md
    lists the difference.
    """

    name: str
    type: str
    default: str
    doc: str
    min: int | None = None
    max: int | None = None
    unit: str | None = None
    choices: tuple[str, ...] | None = None
    host_dependent: bool = False
    raw: bool = False
    legacy: bool = False
    postier_only: bool = False
    postfix_default: str | None = None
    check: str | None = None

    def expected(self) -> str:
        """What a valid value looks like, for error messages and docs."""
        if self.type == BOOL:
            return "yes or no"
        if self.check == "hostname":
            return "a hostname"
        if self.check == "compat_level":
            return "a compatibility level: major[.minor[.patch]]"
        if self.type in (INT, SIZE):
            what = "an integer" if self.type == INT else "a size in bytes"
            return what + _range_text(self.min, self.max, "")
        if self.type == TIME:
            unit = self.unit or "s"
            text = (f"a time: a number with optional unit s, m, h, d or w "
                    f"(default unit: {unit})")
            lim = _range_text(self.min, self.max, "s")
            return text + lim
        if self.choices:
            if self.type == STRING:
                return "one of: " + ", ".join(c or '""' for c in self.choices)
            return "a list of: " + ", ".join(self.choices)
        if self.type == STRING and self.min:
            return "a non-empty value"
        if self.type == MAP_LIST:
            return "a list of type:name lookup tables"
        if self.type == LIST:
            return "a list separated by commas or whitespace"
        return "text"


def _range_text(lo: int | None, hi: int | None, suffix: str) -> str:
    if lo is not None and hi is not None:
        return f" between {lo}{suffix} and {hi}{suffix}"
    if lo is not None:
        return f" >= {lo}{suffix}"
    if hi is not None:
        return f" <= {hi}{suffix}"
    return ""


def P(name: str, type: str, default: str, doc: str, **kw) -> Param:
    """Build a Param; a time parameter's default unit is taken from its default."""
    if type not in TYPES:
        raise ValueError(f"{name}: unknown type {type!r}")
    if type == TIME and "unit" not in kw:
        kw["unit"] = time_default_unit(default)
    if "choices" in kw and kw["choices"] is not None:
        kw["choices"] = tuple(kw["choices"])
    return Param(name=name, type=type, default=default, doc=doc, **kw)


def time_default_unit(default: str) -> str:
    """The default unit of a time parameter: the last letter of its default
    (`5d` -> d, `${stress?{10}:{300}}s` -> s), as Postfix's get_def_time_unit."""
    m = re.search(r"([a-z])\s*$", default)
    if not m or m.group(1) not in TIME_UNITS:
        raise ValueError(f"time default without unit: {default!r}")
    return m.group(1)


class BadValue(ValueError):
    """A value that does not convert; str() is the message without file/line."""


def _strtol(text: str) -> tuple[int, str] | None:
    """C strtol(text, &end, 10): leading whitespace and a sign are accepted.
    Returns (value, rest) or None when no digits were found."""
    m = re.match(r"[ \t\r\n\v\f]*([+-]?[0-9]+)", text)
    if not m:
        return None
    return int(m.group(1)), text[m.end():]


def convert_bool(name: str, value: str) -> bool:
    v = value.lower()
    if v == "yes":
        return True
    if v == "no":
        return False
    raise BadValue(f"bad boolean configuration: {name} = {value} (expected yes or no)")


def convert_int(p: Param, value: str) -> int:
    lo, hi = (INT_MIN, INT_MAX) if p.type == INT else (LONG_MIN, LONG_MAX)
    got = _strtol(value)
    if got is None or got[1] != "" or not lo <= got[0] <= hi:
        raise BadValue(f"bad numerical configuration: {p.name} = {value} "
                       f"(expected {p.expected()})")
    n = got[0]
    if p.min is not None and n < p.min:
        raise BadValue(f"invalid {p.name} parameter value {n} < {p.min} "
                       f"(expected {p.expected()})")
    if p.max is not None and n > p.max:
        raise BadValue(f"invalid {p.name} parameter value {n} > {p.max} "
                       f"(expected {p.expected()})")
    return n


def parse_time(value: str, unit: str) -> int | None:
    """Postfix conv_time(): seconds, or None when the text is not a time."""
    got = _strtol(value)
    if got is None:
        return None
    n, rest = got
    if n < 0 or n > INT_MAX:
        return None
    mult = TIME_UNITS.get(rest[0] if rest else unit)
    if mult is None or n > INT_MAX // mult:
        return None
    return n * mult


def convert_time(p: Param, value: str) -> int:
    secs = parse_time(value, p.unit or "s")
    if secs is None:
        raise BadValue(f"parameter {p.name}: bad time value or unit: {value} "
                       f"(expected {p.expected()})")
    if p.min is not None and secs < p.min:
        raise BadValue(f"invalid {p.name}: {secs} (min {p.min})")
    if p.max is not None and secs > p.max:
        raise BadValue(f"invalid {p.name}: {secs} (max {p.max})")
    return secs


def convert_string(p: Param, value: str) -> str:
    if p.min is not None and len(value) < p.min:
        raise BadValue(f"bad string length {len(value)} < {p.min}: {p.name} = {value} "
                       f"(expected {p.expected()})")
    if p.max is not None and len(value) > p.max:
        raise BadValue(f"bad string length {len(value)} > {p.max}: {p.name} = {value}")
    if p.choices is not None and value.lower() not in p.choices:
        raise BadValue(f"bad parameter value: '{p.name} = {value}' "
                       f"(expected {p.expected()})")
    if p.check == "hostname":
        why = hostname_problem(value)
        if why:
            raise BadValue(f"parameter {p.name}: bad parameter value: {value} "
                           f"({why}; expected {p.expected()})")
    elif p.check == "compat_level" and compat_level(value) is None:
        raise BadValue(f'malformed compatibility level syntax: "{value}" '
                       f"(expected {p.expected()})")
    return value


def hostname_problem(name: str) -> str | None:
    """Why `name` is not a valid hostname (Postfix valid_hostname), or None."""
    if not name:
        return "empty hostname"
    if len(name) > 255:
        return "bad length"
    label = 0
    numeric = True
    for i, ch in enumerate(name):
        nxt = name[i + 1] if i + 1 < len(name) else ""
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            label += 1
            if label > 63:
                return "bad label length"
            if not ch.isdigit():
                numeric = False
        elif ch == ".":
            if label == 0 or nxt == "":
                return "misplaced delimiter"
            label = 0
        elif ch == "-":
            numeric = False
            label += 1
            if label == 1 or nxt in ("", "."):
                return "misplaced hyphen"
        else:
            return "invalid character"
    if numeric:
        return "numeric hostname"
    return None


def compat_level(text: str) -> tuple[int, int, int] | None:
    """Parse a compatibility level "major[.minor[.patch]]" (compat_level.c);
    None when malformed.  Minor and patch range over 0..1023."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(x.isdigit() and x.isascii() for x in parts):
        return None
    nums = [int(x) for x in parts] + [0] * (3 - len(parts))
    if nums[1] > 1023 or nums[2] > 1023:
        return None
    return nums[0], nums[1], nums[2]


def split_list(value: str, name: str = "", separators: str = LIST_SEPARATORS) -> list[str]:
    """Split a list value like Postfix's mystrtokq(): members are separated by
    commas and/or whitespace, and text between balanced `{}` is not split.  A
    member that starts with `{` loses its braces and surrounding whitespace
    (extpar with EXTPAR_FLAG_STRIP)."""
    out: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in separators:
            i += 1
        if i >= n:
            return out
        start, level = i, 0
        while i < n:
            ch = value[i]
            if ch == "{":
                level += 1
            elif level > 0 and ch == "}":
                level -= 1
            elif level == 0 and ch in separators:
                break
            i += 1
        item = value[start:i]
        if item.startswith("{"):
            item = extpar(item, name)
        out.append(item)


def extpar(item: str, name: str = "") -> str:
    """Strip the outer `{}` of `item` (balanced) and the blanks inside them."""
    level = 0
    for j, ch in enumerate(item):
        if ch == "{":
            level += 1
        elif ch == "}":
            level -= 1
            if level == 0:
                if j != len(item) - 1:
                    raise BadValue(_where(name) + f"syntax error after '}}' in \"{item}\"")
                return item[1:j].strip(BLANKS)
    raise BadValue(_where(name) + f"missing '}}' in \"{item}\"")


def _where(name: str) -> str:
    return f"{name}: " if name else ""


def convert_list(p: Param, value: str) -> list[str]:
    items = split_list(value, p.name)
    if p.choices is not None:
        for item in items:
            if item.lower() not in p.choices:
                raise BadValue(f'unknown {p.name} value "{item}" in "{value}" '
                               f"(expected {p.expected()})")
    return items


def convert(p: Param, value: str):
    """The typed value of `value` (already $name-expanded) for parameter `p`."""
    t = p.type
    if t == STRING:
        return convert_string(p, value)
    if t == BOOL:
        return convert_bool(p.name, value)
    if t in (INT, SIZE):
        return convert_int(p, value)
    if t == TIME:
        return convert_time(p, value)
    return convert_list(p, value)
