"""regexp: and pcre: lookup tables, with Postfix's semantics (dict_regexp.c,
dict_pcre.c), matched through one Hyperscan database per table.

    /pattern/flags   result          first matching rule wins
    !/pattern/       result          matches when pattern does not
    /re1/!/re2/      result          regexp: only: re1 matches and re2 does not
    if /pattern/ ... endif           nested blocks, `if !/pattern/` too
    $1..$9, ${n}, $$                 substitutions in the result

`regexp:` patterns are POSIX extended REs as glibc regcomp() reads them;
flags toggle Postfix's defaults: i (case-insensitive by default, so `i`
makes a rule case-SENSITIVE), x (extended syntax on by default, so `x`
gives a basic RE), m (REG_NEWLINE).  `pcre:` patterns are PCRE2; flags i
(toggle caseless, on by default), m, s (toggle dot-all, on by default), x,
A, E, U, and the obsolete X (warned about).  Any delimiter character may be
used.  Keys are matched as one byte string (UTF-8), newlines included; a key
is cut at a NUL byte, as a C string would be.

Lines are read like Postfix's readllines(): comments and blank lines are
skipped, a line starting with whitespace continues the previous one (joined
with nothing in between, keeping the leading whitespace).  Warnings have
Postfix's wording and order (see the `warn` callback of open()).

How a lookup runs: all patterns of the table (IF conditions and both halves
of `/a/!/b/` included) form one postier.maps.patterns.PatternSet.  One
Hyperscan scan of the key tells which patterns can match; the rule list is
then walked in table order, visiting only rules whose pattern was reported
plus the "structural" ones (IF, ENDIF, negated rules, patterns Hyperscan
cannot take): an IF whose condition fails jumps past its ENDIF, a negated
pattern is true exactly when its pattern does not match.  A reported pattern
is confirmed with RE2/re unless its Hyperscan form is exact; a rule whose
result uses $n gets its captures from the same library Postfix uses (glibc
regexec(), libpcre2) when it is loadable.

Parameters read: none.  Module settings: patterns.DEFAULT_ENGINE and
patterns.CACHE_DIR (also open(..., engine=, cache_dir=)).
"""

from __future__ import annotations

import bisect
import builtins
from collections.abc import Callable, Iterator

from postier.errors import MapError
from postier.maps import patterns
from postier.maps.result import check_result

Warn = Callable[[str], None]

_SPACE = b" \t\n\v\f\r"
_OP_MATCH, _OP_IF, _OP_ENDIF = 1, 2, 3


def isspace(c: int) -> bool:
    return c in (0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)


def _isalnum(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def text(b: bytes) -> str:
    """Bytes from a table or key -> str, keeping undecodable bytes."""
    return b.decode("utf-8", "surrogateescape")


def logical_lines(data: bytes, path: str, warn: Warn) -> Iterator[tuple[int, bytes]]:
    """Postfix readllines(): (first physical line number, logical line).

    Blank and comment lines are skipped; a line that starts with whitespace
    continues the logical line (comment and blank lines in between do not
    end it).  A logical line that itself starts with whitespace is skipped
    with Postfix's warning."""
    n = len(data)
    pos = 0
    lineno = 0
    while True:
        buf = bytearray()
        first = 0
        eof = False
        while True:
            start = len(buf)
            nl = data.find(b"\n", pos)
            if nl < 0:
                chunk = data[pos:]
                pos = n
                eof = True
            else:
                chunk = data[pos:nl]
                pos = nl + 1
            buf += chunk
            if not eof or len(buf) > start:
                lineno += 1
            stripped = chunk.lstrip(_SPACE)
            if not stripped or stripped[0] == 0x23:
                del buf[start:]
            elif start == 0:
                first = lineno
            if eof or pos >= n:
                eof = eof or pos >= n
                break
            if len(buf) > 0:
                nxt = data[pos]
                if nxt != 0x23 and not isspace(nxt):
                    break
        if buf and isspace(buf[0]):
            shown = bytes(buf[:30])
            warn(f'{path}: logical line must not start with whitespace: '
                 f'"{text(shown)}{"..." if len(buf) > 30 else ""}"')
        elif buf:
            yield first, bytes(buf)
        if eof:
            return


def mac_parse(value: bytes, action: Callable[[bool, bytes], bool], warn: Warn) -> bool:
    """Postfix mac_parse(): split into literals and $name/${name}/$(name);
    action(is_name, text) returns True on error.  Returns True on error."""
    error = False
    buf = bytearray()
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c != 0x24:
            buf.append(c)
            i += 1
        elif i + 1 < n and value[i + 1] == 0x24:
            buf.append(0x24)
            i += 2
        else:
            if buf:
                error |= action(False, bytes(buf))
                buf.clear()
            i += 1
            if i < n and value[i] in (0x28, 0x7B):
                open_c = value[i]
                close_c = 0x29 if open_c == 0x28 else 0x7D
                level = 1
                i += 1
                j = i
                truncated = False
                while level > 0:
                    if j >= n:
                        warn(f'truncated macro reference: "{text(value)}"')
                        truncated = True
                        break
                    if value[j] == open_c:
                        level += 1
                    if value[j] == close_c:
                        level -= 1
                    j += 1
                if truncated:
                    error = True
                    break
                buf += value[i:j - 1]
                i = j
            else:
                j = i
                while j < n and (_isalnum(value[j]) or value[j] == 0x5F):
                    j += 1
                buf += value[i:j]
                i = j
            if not buf:
                warn(f'empty macro name: "{text(value)}"')
                error = True
                break
            error |= action(True, bytes(buf))
            buf.clear()
    if buf and not error:
        error |= action(False, bytes(buf))
    return error


class _Pat:
    """One /pattern/flags as read from the table."""

    __slots__ = ("regexp", "match", "opts")

    def __init__(self, regexp: bytes, match: bool, opts: dict):
        self.regexp = regexp
        self.match = match
        self.opts = opts


class _Rule:
    __slots__ = ("op", "lineno", "pat1", "match1", "pat2", "match2", "parts", "max_sub",
                 "endif", "literal")

    def __init__(self, op: int, lineno: int):
        self.op = op
        self.lineno = lineno
        self.pat1 = -1
        self.match1 = True
        self.pat2 = -1
        self.match2 = True
        self.parts: list = []
        self.max_sub = 0
        self.endif = -1
        self.literal: str | None = None


class RegexpTable:
    """An opened regexp: or pcre: table (see the module docstring)."""

    def __init__(self, ttype: str, name: str, warn: Warn, *, engine: str | None = None,
                 cache_dir: str | None = None, data: bytes | None = None):
        self.type = ttype
        self.name = name
        self.warn = warn
        self._pcre = ttype == "pcre"
        if data is None:
            try:
                with builtins.open(name, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise MapError(f"open {name}: {e.strerror or e}") from None
        self._pats: list[patterns.Pattern] = []
        self._rules: list[_Rule] = []
        self._parse(data)
        self._set = patterns.PatternSet(self._pats, engine=engine, cache_dir=cache_dir)
        self.engine = self._set.engine
        # pattern index -> rules it can trigger; rules that must always be visited
        trig: dict[int, list[int]] = {}
        structural = []
        always = self._set.always
        for i, r in enumerate(self._rules):
            if r.op != _OP_MATCH or not r.match1 or r.pat1 in always:
                structural.append(i)
            else:
                trig.setdefault(r.pat1, []).append(i)
        self._trigger = trig
        self._structural = structural

    # ---------------------------------------------------------------- parsing
    def _w(self, lineno: int, msg: str) -> None:
        self.warn(f"{self.type} map {self.name}, line {lineno}: {msg}")

    def _get_pat(self, line: bytes, p: int, lineno: int) -> tuple[_Pat, int] | None:
        n = len(line)
        match = True
        while p < n:
            if line[p] == 0x21:
                match = not match
            elif not isspace(line[p]):
                break
            p += 1
        if p >= n:
            self._w(lineno, "no regexp: skipping this rule")
            return None
        delim = line[p]
        p += 1
        start = p
        if self._pcre:
            while p < n:
                if line[p] == 0x5C:
                    p += 1
                    if p >= n:
                        break
                elif line[p] == delim:
                    break
                p += 1
        else:
            while p < n:
                if line[p] == 0x5C:
                    if p + 1 < n:
                        p += 1
                    else:
                        break          # a final backslash ends the pattern
                elif line[p] == delim:
                    break
                p += 1
        if p >= n:
            what = "ignoring" if self._pcre else "skipping"
            self._w(lineno, f'no closing regexp delimiter "{text(bytes((delim,)))}": '
                            f"{what} this rule")
            return None
        regexp = line[start:p]
        p += 1
        if self._pcre:
            opts = {"i": True, "m": False, "s": True, "x": False, "A": False, "E": False,
                    "U": False}
            while p < n and not isspace(line[p]):
                c = chr(line[p])
                if c in opts:
                    opts[c] = not opts[c]
                elif c == "X":
                    self._w(lineno, 'ignoring obsolete regexp option "X"')
                else:
                    self._w(lineno, f'unknown regexp option "{text(line[p:p + 1])}": '
                                    "skipping this rule")
                    return None
                p += 1
        else:
            opts = {"i": True, "m": False, "x": True}
            while p < n and not isspace(line[p]) and line[p] != 0x21:
                c = chr(line[p])
                if c in opts:
                    opts[c] = not opts[c]
                else:
                    self._w(lineno, f'unknown regexp option "{text(line[p:p + 1])}": '
                                    "skipping this rule")
                    return None
                p += 1
        return _Pat(regexp, match, opts), p

    def _compile(self, pat: _Pat, lineno: int, nmatch: int = 0) -> int | None:
        """Compile into the pattern list; index, or None after a warning."""
        o = pat.opts
        try:
            if self._pcre:
                cp = patterns.pcre_pattern(pat.regexp, caseless=o["i"], multiline=o["m"],
                                           dotall=o["s"], extended=o["x"], anchored=o["A"],
                                           dollar_endonly=o["E"], ungreedy=o["U"])
            else:
                cp = patterns.posix_pattern(pat.regexp, extended=o["x"], icase=o["i"],
                                            newline=o["m"], nmatch=nmatch)
        except patterns.CompileError as e:
            self._w(lineno, str(e))
            return None
        self._pats.append(cp)
        return len(self._pats) - 1

    def _prescan(self, repl: bytes, lineno: int) -> tuple[bool, int, list]:
        state = {"max": 0}
        parts: list = []
        hyphen = "out of range" if self._pcre else "out-of-range"

        def action(is_name: bool, txt: bytes) -> bool:
            if not is_name:
                parts.append(txt)
                return False
            if not txt.isdigit():
                self._w(lineno, f'non-numeric replacement index "{text(txt)}"')
                return True
            k = int(txt)
            if k < 1:
                self._w(lineno, f'{hyphen} replacement index "{text(txt)}"')
                return True
            state["max"] = max(state["max"], k)
            parts.append(k)
            return False

        err = mac_parse(repl, action, self.warn)
        return err, state["max"], parts

    def _parse_line(self, line: bytes, lineno: int, nesting: int) -> _Rule | None:
        if not _isalnum(line[0]):
            got = self._get_pat(line, 0, lineno)
            if got is None:
                return None
            first, p = got
            second = None
            if not self._pcre and p < len(line) and line[p] == 0x21:
                got = self._get_pat(line, p, lineno)
                if got is None:
                    return None
                second, p = got
            while p < len(line) and isspace(line[p]):
                p += 1
            if p >= len(line):
                self._w(lineno, "no replacement text: using empty string")
            repl = line[p:]
            err, max_sub, parts = self._prescan(repl, lineno)
            if err:
                self._w(lineno, "bad replacement syntax: skipping this rule")
                return None
            if max_sub > 0 and not first.match:
                self._w(lineno, "$number found in negative match replacement text: "
                                "skipping this rule")
                return None
            npats = len(self._pats)
            i1 = self._compile(first, lineno, max_sub + 1 if max_sub else 0)
            if i1 is None:
                return None
            if max_sub > self._pats[i1].ngroups:
                self._w(lineno, f'out of range replacement index "{max_sub}": '
                                "skipping this rule")
                del self._pats[npats:]
                return None
            rule = _Rule(_OP_MATCH, lineno)
            rule.pat1, rule.match1 = i1, first.match
            if second is not None:
                i2 = self._compile(second, lineno)
                if i2 is None:
                    del self._pats[npats:]
                    return None
                rule.pat2, rule.match2 = i2, second.match
            rule.parts = parts
            rule.max_sub = max_sub
            if max_sub == 0:
                rule.literal = text(b"".join(parts))
            return rule
        if line[:2].lower() == b"if" and (len(line) == 2 or not _isalnum(line[2])):
            p = 2
            while p < len(line) and isspace(line[p]):
                p += 1
            got = self._get_pat(line, p, lineno)
            if got is None:
                return None
            pat, p = got
            while p < len(line) and isspace(line[p]):
                p += 1
            if p < len(line):
                self._w(lineno, f'ignoring extra text after IF statement: "{text(line[p:])}"')
                self._w(lineno, "do not prepend whitespace to statements between IF and ENDIF")
            i1 = self._compile(pat, lineno)
            if i1 is None:
                return None
            rule = _Rule(_OP_IF, lineno)
            rule.pat1, rule.match1 = i1, pat.match
            return rule
        if line[:5].lower() == b"endif" and (len(line) == 5 or not _isalnum(line[5])):
            if nesting == 0:
                self._w(lineno, "ignoring ENDIF without matching IF")
                return None
            if line[5:].strip(_SPACE):
                self._w(lineno, "ignoring extra text after ENDIF")
            return _Rule(_OP_ENDIF, lineno)
        self._w(lineno, "ignoring unrecognized request")
        return None

    def _parse(self, data: bytes) -> None:
        stack: list[int] = []
        for lineno, line in logical_lines(data, self.name, self.warn):
            nul = line.find(b"\0")
            if nul >= 0:
                line = line[:nul]
            line = line.rstrip(_SPACE)
            if not line:
                continue
            rule = self._parse_line(line, lineno, len(stack))
            if rule is None:
                continue
            idx = len(self._rules)
            self._rules.append(rule)
            if rule.op == _OP_IF:
                stack.append(idx)
            elif rule.op == _OP_ENDIF:
                self._rules[stack.pop()].endif = idx
        while stack:
            self._w(self._rules[stack.pop()].lineno, "IF has no matching ENDIF")

    # ---------------------------------------------------------------- lookup
    def lookup(self, key: str) -> str | None:
        """The result of the first matching rule, or None."""
        value = self.lookup_bytes(key.encode("utf-8", "surrogateescape"))
        if value is None:
            return None
        return check_result(self.type, self.name, key, value, self.warn)

    def lookup_bytes(self, data: bytes) -> str | None:
        nul = data.find(b"\0")
        if nul >= 0:
            data = data[:nul]
        m = self._set.matcher(data)
        rules = self._rules
        if m.hits is None:
            order: list[int] | range = range(len(rules))
        else:
            trig = self._trigger
            cand = [r for p in m.hits if p in trig for r in trig[p]]
            if self._structural:
                cand.extend(self._structural)
            if not cand:
                return None
            cand.sort()
            order = cand
        i = 0
        n = len(order)
        while i < n:
            r = rules[order[i]]
            op = r.op
            if op == _OP_MATCH:
                if m.match(r.pat1) == r.match1 and \
                        (r.pat2 < 0 or m.match(r.pat2) == r.match2):
                    if r.literal is not None:
                        return r.literal
                    spans = m.spans(r.pat1, r.max_sub + 1)
                    if spans is not None:
                        return self._expand(r, data, spans)
            elif op == _OP_IF:
                if m.match(r.pat1) != r.match1:
                    if r.endif < 0:
                        return None
                    # jump past the matching ENDIF
                    if isinstance(order, range):
                        i = r.endif + 1
                    else:
                        i = bisect.bisect_right(order, r.endif, i)
                    continue
            i += 1
        return None

    @staticmethod
    def _expand(r: _Rule, data: bytes, spans: list[tuple[int, int]]) -> str:
        out = []
        for part in r.parts:
            if isinstance(part, int):
                s, e = spans[part] if part < len(spans) else (-1, -1)
                if s >= 0 and e > s:
                    out.append(data[s:e])
            else:
                out.append(part)
        return text(b"".join(out))


def open(ttype: str, name: str, *, fold: bool = True, warn: Warn,  # noqa: A001
         engine: str | None = None, cache_dir: str | None = None) -> RegexpTable:
    """Open a regexp: or pcre: table (fold is ignored: the flags decide)."""
    del fold
    return RegexpTable(ttype, name, warn, engine=engine, cache_dir=cache_dir)
