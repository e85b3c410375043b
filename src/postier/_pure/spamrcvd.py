"""Pure-Python twin of postier._native.spamrcvd: the matcher and the table of
Received-line formats behind postier.content.spam.received.

    entry = compile_entry(pattern, flags, {"${IP}": IP})  # (re, ordered, anyof, icase, prefix)
    L = Line(s, cache, compile_fn)          # cache: {pattern or (pattern, flags): entry}
    if L.m(r"^(\\S+) \\(\\[(${IP})\\]\\) by (\\S+) "): ip = L[2]
    L.sub(r"^from ", "")                    # first match replaced; True when replaced
    L.cut_prefix("from ")                   # the same without a regex (a literal prefix)
    L.replace_first(")by ", ") by ")        # sub() of a literal, without a regex
    L.cut_at(i)                             # the line's tail from i on dropped (i >= 0)
    L.any_in(("a", "b"), lower=False)       # one of the strings in the line (or lowercased line)?
    p = Parser(cache, compile_fn)           # compile_fn(pattern, flags) -> entry
    p.parse_line(value)     # the relay's fields (dict), 0 (skip: no handover), None (unparseable)
    parser_patterns()       # every (pattern, flags) the table uses, to compile up front
    relay_fields(fields)    # parse_line's dict cleaned up: (ip, by, ..., relay string)
    fill_relays(out, lines, p, Relay, ...)  # parse_relays' walk: out's relay lists and counters

Every pattern carries what any match needs: literal strings in pattern
order and alternatives of which one must occur (required_literals), and for
patterns anchored at the start, a program over the first tokens of the line
(prefix_program: `^(\\S+) \\((\\S+) \\[` needs "(" right after the first
space, "[" right after the next).  When the line lacks them the search is
skipped, so most of the ~40 formats tried on a line cost a substring test
instead of a regex search.  Results are exactly those of `re.search` on the
line.  Groups of formats each of which needs one of a few literals sit
behind one L.any_in gate (the ten SMTP AUTH tests, the MTA-specific formats
from SquirrelMail to Lotus Domino), so most lines skip them in one call;
the tests every line reaches are plain string scans with the same answers
as their regexes (_starts_from for ^\\(?from /i, _id_field, _by_field,
_date_start for the date cut off the end).  A format that matched ends
the table with `return S(v, ...)` (no exception); an edit that keeps a
prefix or suffix of the line (cut_prefix, the date cut off its end) keeps
what is known about the old line that still holds (native: its pair mask, a superset of the new line's; an
ASCII line's lowercase, cut alike, so the case-insensitive tests after the
cuts do not lowercase the line again).  Parser is
SpamAssassin's Metadata::Received parse_received_line, the same text as the
Cython module's (which types L as Line).

Parameters read: none.
"""

from __future__ import annotations

import re
from re import _constants as _c
from re import _parser as _p

_MIN_LITERAL = 2          # shorter runs filter too little to be worth a test
_MAX_ORDERED = 4


def _walk(items, seq: list, anyof: list, run: list) -> None:
    """Collect from a parsed sequence every match must go through: runs of
    plain characters in pattern order (seq; a None marks a break in a run),
    and for alternations the set of runs one of which must occur (anyof)."""
    for op, av in items:
        if op is _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            seq.append("".join(run))
            run.clear()
        if op is _c.AT:
            continue                        # zero-width: runs on both sides stay in order
        seq.append(None)
        if op is _c.SUBPATTERN:
            _group, add, dele, sub = av
            if not add and not dele:
                _walk(sub, seq, anyof, run)
                if run:
                    seq.append("".join(run))
                    run.clear()
                seq.append(None)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            lo, _hi, sub = av
            if lo >= 1:
                _walk(sub, seq, anyof, run)
                if run:
                    seq.append("".join(run))
                    run.clear()
                seq.append(None)
        elif op is _c.ATOMIC_GROUP:
            _walk(av, seq, anyof, run)
            if run:
                seq.append("".join(run))
                run.clear()
            seq.append(None)
        elif op is _c.BRANCH:
            alts = []
            for branch in av[1]:
                bseq: list = []
                brun: list = []
                _walk(branch, bseq, [], brun)
                if brun:
                    bseq.append("".join(brun))
                best = max((x for x in bseq if x and x.isascii()), key=len, default=None)
                if best is None:
                    alts = None
                    break
                alts.append(best)
            if alts:
                anyof.append(alts)


def required_literals(pattern: str, flags: int = 0) -> tuple[tuple, tuple, bool]:
    """(ordered, anyof, icase): strings every match of pattern contains.
    ordered: found one after the other (without overlap) in this order;
    anyof: groups of strings, one of each group present.  All ASCII and
    lowercased when the pattern ignores case (then compare with the
    lowercased subject)."""
    try:
        tree = _p.parse(pattern, flags)
    except re.error:
        return (), (), False
    icase = bool(tree.state.flags & re.I)
    seq: list = []
    anyof: list = []
    run: list = []
    _walk(tree, seq, anyof, run)
    if run:
        seq.append("".join(run))

    def norm(x: str) -> str:
        return x.lower() if icase else x
    ordered = [norm(x) for x in seq
               if x is not None and len(x) >= _MIN_LITERAL and x.isascii()]
    if len(ordered) > _MAX_ORDERED:
        # keep the longest ones, in pattern order
        keep = sorted(range(len(ordered)), key=lambda i: -len(ordered[i]))[:_MAX_ORDERED]
        ordered = [ordered[i] for i in sorted(keep)]
    groups = tuple(tuple(norm(x) for x in alts) for alts in anyof[:2])
    return tuple(ordered), groups, icase


def literals_present(h: str, ordered: tuple, anyof: tuple) -> bool:
    """Could a match exist in h, as far as its required literals tell?"""
    for alts in anyof:
        for x in alts:
            if x in h:
                break
        else:
            return False
    pos = 0
    for x in ordered:
        i = h.find(x, pos)
        if i < 0:
            return False
        pos = i + len(x)
    return True


_NOT_SPACE = [(_c.IN, [(_c.CATEGORY, _c.CATEGORY_NOT_SPACE)])]


def prefix_program(pattern: str, flags: int = 0) -> tuple:
    """The start of an anchored pattern as a cheap test: a tuple of steps,
    each a string (the next character must be one of these) or an int n
    (a run of at least n non-spaces up to the next space, which the next
    step matches: `(\\S+) ` can only end at the first space).  Valid for a
    subject whose only whitespace is " " (Line checks).  () when the
    pattern does not start that way or is not ASCII-mode."""
    if not flags & re.A or flags & re.M:
        return ()
    try:
        items = list(_p.parse(pattern, flags))
    except re.error:
        return ()
    if not items or items[0] != (_c.AT, _c.AT_BEGINNING):
        return ()
    icase = bool(flags & re.I)
    prog: list = []
    i = 1
    while i < len(items):
        op, av = items[i]
        if op is _c.LITERAL:
            ch = chr(av)
            if not ch.isascii():
                break
            prog.append(ch.lower() + ch.upper() if icase and ch.isalpha() else ch)
            i += 1
            continue
        if op is _c.SUBPATTERN and not av[1] and not av[2] and len(av[3]) == 1:
            op, av = av[3][0]
        if (op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[0] in (0, 1) and av[1] == _c.MAXREPEAT
                and list(av[2]) == _NOT_SPACE and i + 1 < len(items)
                and items[i + 1] == (_c.LITERAL, 32)):
            prog.append(av[0])
            i += 1
            continue
        break
    return tuple(prog)


def prefix_ok(s: str, prog: tuple) -> bool:
    """Could s match, as far as its prefix_program tells?"""
    pos = 0
    n = len(s)
    for step in prog:
        if step.__class__ is int:
            e = s.find(" ", pos)
            if e < 0 or e - pos < step:
                return False
            pos = e
        else:
            if pos >= n or s[pos] not in step:
                return False
            pos += 1
    return True


def literal_only(pattern: str, flags: int = 0) -> bool:
    """Is the pattern nothing but a plain ASCII string of 2 or more characters
    (then a match is there exactly when the string is)?"""
    try:
        tree = _p.parse(pattern, flags)
    except re.error:
        return False
    return (len(tree) >= _MIN_LITERAL and all(op is _c.LITERAL for op, _av in tree)
            and "".join(chr(av) for _op, av in tree).isascii())


def compile_entry(pattern: str, flags: int = 0, macros: dict | None = None) -> tuple:
    """(compiled pattern, ordered, anyof, icase, prefix program, literal only)
    for Line (see required_literals, prefix_program, literal_only).  macros: {"${NAME}": text} expanded
    in pattern; each text must be one group with its own flags, "(?i:...)",
    which the analysis skips (so it analyses a stand-in, not the long text)."""
    analysed = pattern
    for name, text in (macros or {}).items():
        if name in pattern:
            pattern = pattern.replace(name, text)
            analysed = analysed.replace(name, "(?i:x)" if _one_group(text) else text)
    rx = re.compile(pattern, flags)
    ordered, anyof, icase = required_literals(analysed, rx.flags)
    exact = len(ordered) == 1 and not anyof and literal_only(analysed, rx.flags)
    return rx, ordered, anyof, icase, prefix_program(analysed, rx.flags), exact


def _one_group(text: str) -> bool:
    """Is text a single "(?i:...)" group (its parentheses balance only at the end)?"""
    ok = _one_group_seen.get(text)
    if ok is None:
        ok = False
        if text.startswith("(?i:") and text.endswith(")"):
            try:
                tree = _p.parse(text)
                ok = len(tree) == 1 and tree[0][0] is _c.SUBPATTERN and tree[0][1][1] == re.I
            except re.error:
                ok = False
        _one_group_seen[text] = ok
    return ok


_one_group_seen: dict[str, bool] = {}


def parser_patterns() -> list[tuple[str, int]]:
    """Every (pattern, flags) Parser.parse_line may try, read from its source
    (to compile them all up front)."""
    import ast
    import inspect
    import textwrap
    tree = ast.parse(textwrap.dedent(inspect.getsource(Parser)))
    env = globals()

    def value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return value(node.left) | value(node.right)
        return None
    out: dict[tuple[str, int], None] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "L"
                and node.func.attr in ("m", "sub") and node.args):
            pat = value(node.args[0])
            fpos = 1 if node.func.attr == "m" else 2
            flags = value(node.args[fpos]) if len(node.args) > fpos else 0
            if isinstance(pat, str) and isinstance(flags, int):
                out[pat, flags] = None
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            for elt in node.iter.elts:
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    out[elt.value, 0] = None
    return list(out)


_OTHER_WS = re.compile(r"[\t\n\r\f\v]").search


class Line:
    """A Received line being matched; m(pattern) searches it like Perl's /.../."""

    __slots__ = ("s", "_g", "_pend", "_lower", "_plain", "_cache", "_compile")

    def __init__(self, s: str, cache: dict, compile_fn):
        self.s = s
        self._g = None
        self._pend = None           # a literal-only pattern that matched: g not yet made
        self._lower = None
        self._plain = None          # no whitespace but " " (prefix programs apply)
        self._cache = cache
        self._compile = compile_fn

    def _entry(self, pat: str, flags: int):
        key = (pat, flags) if flags else pat
        e = self._cache.get(key)
        if e is None:
            e = self._cache[key] = self._compile(pat, flags)
        return e

    def _may_match(self, e: tuple) -> bool:
        """Do the entry's prefix program and literals allow a match in s?"""
        _rx, ordered, anyof, icase, prog, _exact = e
        if prog:
            plain = self._plain
            if plain is None:
                plain = self._plain = _OTHER_WS(self.s) is None
            if plain and not prefix_ok(self.s, prog):
                return False
        if ordered or anyof:
            if icase:
                h = self._lower
                if h is None:
                    h = self._lower = self.s.lower()
            else:
                h = self.s
            if not literals_present(h, ordered, anyof):
                return False
        return True

    @property
    def g(self):
        """The match object of the last m() (None when it failed)."""
        if self._pend is not None:
            self._g = self._pend.search(self.s)
            self._pend = None
        return self._g

    def m(self, pat: str, flags: int = 0) -> bool:
        e = self._entry(pat, flags)
        self._pend = None
        if not self._may_match(e):
            self._g = None
            return False
        if e[5]:                    # the literal is there: the match object when asked
            self._pend = e[0]
            return True
        self._g = e[0].search(self.s)
        return self._g is not None

    def any_in(self, lits: tuple, lower: bool = False) -> bool:
        """Does one of the strings lits occur in the line (lower: in the
        lowercased line; then lits are lowercase)?  A gate before formats each
        of which needs one of them."""
        if lower:
            h = self._lower
            if h is None:
                h = self._lower = self.s.lower()
        else:
            h = self.s
        for x in lits:
            if x in h:
                return True
        return False

    def _set_s(self, s: str, part: bool = False, lower: str | None = None) -> None:
        """s becomes the line; part: it is a prefix or suffix of the old one
        (then "no whitespace but spaces" still holds if it held); lower:
        s.lower() when the caller has it."""
        if self._pend is not None:  # g belongs to the line before the change
            self._g = self._pend.search(self.s)
            self._pend = None
        self.s = s
        self._lower = lower
        if not part or not self._plain:
            self._plain = None

    def cut_at(self, i: int) -> None:
        """The line cut off at i (its tail dropped; nothing when i < 0)."""
        if i >= 0:
            lower = self._lower
            # an ASCII line's lowercase is per character: it is cut alike
            self._set_s(self.s[:i], True, lower[:i] if lower is not None and self.s.isascii() else None)

    def cut_prefix(self, p: str) -> bool:
        """sub(re.escape(p) anchored at the start, ""): drop p from the start
        of the line if it is there (True when it was)."""
        if not self.s.startswith(p):
            return False
        lower = self._lower
        self._set_s(self.s[len(p):], True,
                    lower[len(p):] if lower is not None and self.s.isascii() else None)
        return True

    def replace_first(self, old: str, new: str) -> bool:
        """sub(re.escape(old), new) without a regex: the first occurrence of
        old replaced (True when there was one)."""
        i = self.s.find(old)
        if i < 0:
            return False
        self._set_s(self.s[:i] + new + self.s[i + len(old):])
        return True

    def sub(self, pat: str, repl: str, flags: int = 0) -> bool:
        e = self._entry(pat, flags)
        if not self._may_match(e):
            return False
        new, n = e[0].subn(repl, self.s, count=1)
        if n:
            self._set_s(new)
        return n > 0

    def sub_from(self, pat: str, repl: str, pos: int, flags: int = 0) -> bool:
        """sub(), for a pattern none of whose matches can start before pos
        (the caller knows): the search starts there."""
        e = self._entry(pat, flags)
        if not self._may_match(e):
            return False
        s = self.s
        m = e[0].search(s, pos)
        if m is None:
            return False
        # (a replacement without a backslash is itself: no template to parse)
        if not repl and m.end() == len(s):          # a tail cut off
            self._set_s(s[:m.start()], True)
            return True
        self._set_s(s[:m.start()] + (m.expand(repl) if "\\" in repl else repl) + s[m.end():])
        return True

    def __getitem__(self, i: int):
        g = self.g
        return g.group(i) if g is not None else None


# -------------------------------------------------------------- the format table

_I = int(re.I)
_BRACKET_IP = re.compile(r"^\[[\d.]+\]$", re.A).match
_HELO_EQ = re.compile(r"helo=(\S+)", re.A).search
_IDENT_EQ = re.compile(r"ident=(\S*)", re.A).search
_IDENT_COLON = re.compile(r"^IDENT:([^\@]*)\@", re.A).match
_IDENT_AT = re.compile(r"^([^\@]*)\@", re.A).match
_ENV_HEAD = re.compile(r"^\s*<*", re.A).sub
_ENV_TAIL = re.compile(r">*\s*$", re.A).sub
_ENV_STRIP = re.compile(r"[\s\000\#\[\]\(\)\<\>\|]", re.A).sub
_WS_RUNS = re.compile(r"\s+", re.A).sub


def _collapse_ws(line: str) -> str:
    """s/\\s+/ /g (re.A's \\s: [ \\t\\n\\v\\f\\r]); the native twin walks a
    Latin-1 line's bytes instead of running the regex."""
    return _WS_RUNS(" ", line)


def _ws_odd(line: str) -> bool:
    """Would s/\\s+/ /g change line (tabs, newlines, ... or two spaces in a row)?"""
    return ("  " in line or "\t" in line or "\n" in line or "\r" in line or "\f" in line
            or "\v" in line)


def _date_floor(s: str) -> int:
    """Where a match of the date pattern ([\\s;]+ then a date of at most 5
    spaces, to the end) can start at the earliest, in a line whose only
    whitespace is " ": the [ ;] run around the 6th space from the end."""
    i = len(s)
    for _ in range(6):
        i = s.rfind(" ", 0, i)
        if i < 0:
            return 0
    while i > 0 and s[i - 1] in " ;":
        i -= 1
    return i


# -- the line's first tests and generic fields without a regex (each the
# same answer as the regex in its docstring; Line.m would run that regex on
# nearly every line)
_SPACES = " \t\n\r\f\v"             # re.A's \s
_DAYS = frozenset(("Mon", "Tue", "Thu", "Wed", "Fri", "Sat", "Sun"))
_MONTHS = frozenset(("Jan", "Jun", "Jul", "Feb", "Mar", "May", "Apr", "Aug", "Sep", "Oct", "Nov",
                     "Dec"))
_DATE_RX = re.compile(r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|"
                      r"Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$", re.A | re.S)


def _starts_from(s: str) -> bool:
    """re.match(r"\\(?from ", s, re.I | re.A) is not None"""
    t = s[1:6] if s[:1] == "(" else s[:5]
    return t.isascii() and t.lower() == "from "


def _id_field(s: str):
    """re.search(r" id <?([^\\s<>;]{3,})", s, re.A): group 1, or None"""
    n = len(s)
    i = s.find(" id ")
    while i >= 0:
        j = i + 4
        if j < n and s[j] == "<":
            j += 1
        k = j
        while k < n and s[k] not in " \t\n\r\f\v<>;":
            k += 1
        if k - j >= 3:
            return s[j:k]
        i = s.find(" id ", i + 1)
    return None


def _by_field(s: str):
    """re.search(r" by (\\S+)(?:[^-A-Za-z0-9\\;\\.]|$)", s, re.A): group 1, or None
    (the longest \\S run after " by " ends before white space or the end)"""
    n = len(s)
    i = s.find(" by ")
    while i >= 0:
        k = j = i + 4
        while k < n and s[k] not in _SPACES:
            k += 1
        if k > j:
            return s[j:k]
        i = s.find(" by ", i + 1)
    return None


def _digits_back(s: str, k: int) -> int:
    """The start of the run of ASCII digits ending before k."""
    while k > 0 and "0" <= s[k - 1] <= "9":
        k -= 1
    return k


def _date_start(s: str, floor: int) -> int:
    """Where _DATE_RX.search(s, floor) starts (the date at the line's end), or -1.
    Read from the end: " TZ", " H:M[:S]", " D2", " Mon", then D1 after
    [\\s;] or after "Day, " after [\\s;], and the [\\s;] run before it."""
    if "\n" in s:                      # ($ may match before a last newline)
        m = _DATE_RX.search(s, floor)
        return m.start() if m else -1
    n = len(s)
    p = n
    while p > 0 and s[p - 1] not in _SPACES:
        p -= 1
    if p == n or p == 0 or s[p - 1] != " ":         # \\S+$ after a space
        return -1
    k = p - 1                                        # the time ends here
    a = _digits_back(s, k)
    if a == k or a == 0 or s[a - 1] != ":":
        return -1
    b = _digits_back(s, a - 1)
    if b == a - 1 or b == 0:
        return -1
    if s[b - 1] == ":":                              # H:M:S
        c = _digits_back(s, b - 1)
        if c == b - 1 or c == 0:
            return -1
        b = c
    if s[b - 1] != " ":
        return -1
    k = b - 1                                        # D2 ends here
    a = _digits_back(s, k)
    if a == k or a < 5 or s[a - 1] != " " or s[a - 5] != " " or s[a - 4:a - 1] not in _MONTHS:
        return -1
    k = a - 5                                        # D1 ends here
    u = _digits_back(s, k)
    if u == k or u == 0:
        return -1
    if u >= 6 and s[u - 1] == " " and s[u - 2] == "," and s[u - 5:u - 2] in _DAYS \
            and (s[u - 6] in _SPACES or s[u - 6] == ";") and u - 6 >= floor:
        e = u - 6
    elif (s[u - 1] in _SPACES or s[u - 1] == ";") and u - 1 >= floor:
        e = u - 1
    else:
        return -1
    while e > floor and (s[e - 1] in _SPACES or s[e - 1] == ";"):
        e -= 1
    return e


_STRIP_ANY = re.compile(r"[\s\000\#\[\]\(\)\<\>\|]", re.A).search
_UNKNOWN = re.compile(r"^unknown$", re.I | re.A).match
_SCOPE_SUB = re.compile(r"%[A-Z0-9._~-]*\Z", re.I | re.S | re.A).sub
_MAPPED_SUB = re.compile(r"^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$", re.I | re.A).sub
_SEMI_SUB = re.compile(r";$", re.A).sub


def relay_fields(v: dict) -> tuple:
    """The relay of parse_line's fields v, cleaned up as parse_received_headers
    does (make_relay_as_string's input): (ip, by, helo, id, ident, envfrom,
    auth, rdns, no_reverse_dns, rdns_not_in_headers, as_string), as_string
    with intl=0 msa=0."""
    rdns = (v["rdns"] or "").rstrip(".")          # s/\.+\z//
    if rdns.startswith("[") or _UNKNOWN(rdns) is not None:
        rdns = ""
    ip = v["ip"] or ""
    if ip[:5].lower() == "ipv6:" and ip[:5].isascii():
        ip = ip[5:]
    if ip.startswith("["):
        ip = ip[1:]
    if ip.endswith("]"):
        ip = ip[:-1]
    if "%" in ip:
        ip = _SCOPE_SUB("", ip, 1)
    if ":" in ip:
        ip = _MAPPED_SUB(r"\1", ip, 1)
    by = v["by"] or ""
    if by.endswith(";") or by.endswith(";\n"):     # s/;$//
        by = _SEMI_SUB("", by, 1)
    helo = v["helo"] or ""
    ident = v["ident"] or ""
    if _STRIP_ANY("".join((ip, rdns, helo, by, ident))) is not None:
        ip = _ENV_STRIP("!", ip)
        rdns = _ENV_STRIP("!", rdns)
        helo = _ENV_STRIP("!", helo)
        by = _ENV_STRIP("!", by)
        ident = _ENV_STRIP("!", ident)
    env = v["envfrom"]
    if env is not None:
        env = _ENV_HEAD("", env, 1)
        env = _ENV_TAIL("", env, 1)
        env = _ENV_STRIP("!", env)
    rid = v["id"] or ""
    auth = v["auth"] or ""
    no_rdns = not_in = False
    if rdns == "":
        if v["dns"]:
            no_rdns = True
        else:
            not_in = True
    s = (f"[ ip={ip} rdns={rdns} helo={helo} by={by} ident={ident} envfrom={env or ''} "
         f"intl=0 id={rid} auth={auth} msa=0 ]")
    return ip, by, helo, rid, ident, env, auth, rdns, no_rdns, not_in, s


_HC = r"-A-Za-z0-9\.\^+_&:=?!@%*\$\\\/"
_HELO_PAT = r"\bhelo=([" + _HC + r"]+)(?:[^" + _HC + r"]|$)"
_HELO_CMD_PAT = r"\b(?:HELO|EHLO) ([" + _HC + r"]+)(?:[^" + _HC + r"]|$)"



# a parsed line's fields before the format table fills them in
_V0 = {"ip": "", "helo": "", "rdns": "", "by": "", "id": "", "ident": "", "envfrom": None,
        "dns": False, "auth": ""}


class Parser:
    """Metadata::Received's parse_received_line over SpamAssassin's table of
    MTA formats.  cache/compile_fn: as for Line (patterns use ${IP} and
    ${LOCALHOST}, which compile_fn expands).  State kept between the lines
    of one message: qmail_scanner_env_from, pop_fetcher."""

    def __init__(self, cache: dict, compile_fn):
        self.qmail_scanner_env_from = None
        self.pop_fetcher = False
        self._cache = cache
        self._compile = compile_fn

    # --- parser: the same text as in src/_native/spamrcvd.pyx (tests compare them) ---
    def parse_line(self, line: str):
        """parse_received_line: the relay's fields (a dict), 0 (not a handover: skip),
        or None (unparseable)."""
        s = _collapse_ws(line) if _ws_odd(line) else line       # s/\s+/ /g
        if s.startswith(" "):
            s = s[1:]
        if s.endswith(" "):
            s = s[:-1]
        while s.endswith(";"):           # s/\s?;$// until it no longer applies
            s = s[:-2] if s.endswith(" ;") else s[:-1]
        L = Line(s, self._cache, self._compile)
        v = _V0.copy()
        if not _starts_from(L.s):                   # ^\(?from /i
            return 0
        if L.m(r"\bwith local for\b"):
            return 0
        if L.m(r"^from (\S+) by [^\s;]+ ?;", _I) and _BRACKET_IP(L[1]) is None:
            return 0
        # the date cut off: where _DATE_RX, searched from _date_floor on, matches
        L.cut_at(_date_start(L.s, _date_floor(L.s)))
        L.replace_first(")by ", ") by ")
        x = _id_field(L.s)                          # / id <?([^\s<>;]{3,})/
        if x is not None:
            v["id"] = x
        if L.m(_HELO_PAT):
            v["helo"] = L[1]
        elif L.m(_HELO_CMD_PAT):
            v["helo"] = L[1]
        x = _by_field(L.s)                          # / by (\S+)(?:[^-A-Za-z0-9\;\.]|$)/
        if x is not None:
            v["by"] = x
        self._auth(L, v)
        return self._body(L, v)

    def _auth(self, L, v: dict) -> None:
        # every format below needs one of these in the lowercased line: a line
        # without any (most lines) skips the ten tests
        if not L.any_in(("mtpa", "mtpsa", "asmtp", "with http", "mx.google.com", "(auth: ",
                         "authenticated", "mail.gmx.", "communigate pro", "http-dav", "(via http"), True):
            return
        if L.m(r" by ") and L.m(r" with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)", _I):
            v["auth"] = L[1]
        elif L.m(r" by mx\.google\.com with ESMTPS id [a-z0-9]{1,4}sm[0-9]{2,9}[a-z]{3}\.[0-9]{1,3}\.[0-9]{4}\.(?:[0-6][0-9]\.){4}[0-6][0-9]") \
                and L.m(r"\(version=([^ ]+) cipher=([^\)]+)\)"):
            v["auth"] = "GMail - transport=" + L[1] + " cipher=" + L[2]
        elif L.m(r"^from .*?(?:\]\)|\)\]) \(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5) \S+(?:, .*?)?\) by "):
            v["auth"] = L[1]
        elif L.m(r"authenticated") and L.m(r"^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by"):
            v["auth"] = "Sendmail"
        elif L.m(r"from \S* \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (mail\.gmx\.(?:net|com)) \([^\)]+\) with ((?:ESMTP|SMTP))"):
            v["auth"] = f"GMX ({L[4]} / {L[3]})"
        elif L.m(r" \(authenticated as ") and L.m(r"\) by .+ \(\d{1,2}\.\d\.\d{3}(?:\.\d{1,3})?\) \(authenticated as .+\) id "):
            v["auth"] = "CriticalPath"
        elif L.m(r"\) \(Authenticated sender: \S+\) by \S+ \(([^\)]+)\) with "):
            v["auth"] = L[1] if L[1] == "Postfix" else f"Postfix ({L[1]})"
        elif L.m(r"CommuniGate Pro (HTTP|SMTP|XIMSS|IMAP)") and L.m(r" \(account "):
            v["auth"] = "Communigate"
        elif L.m(r" with Microsoft Exchange Server HTTP-DAV\b"):
            v["auth"] = "HTTP-DAV"
        elif L.m(r" by ") and L.m(r" \(via (HTTP.?)\)(?: |;|$)", _I):
            v["auth"] = L[1]

    def _set(self, v: dict, **kw) -> dict:
        v.update(kw)
        return v

    def _body(self, L, v: dict):
        """The format table: v (its fields filled in) when a format matched,
        0 to skip the line, None when it cannot be parsed."""
        S = self._set
        if L.cut_prefix("from "):
            if L.m(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", _I):
                v["envfrom"] = L[1]
            # the formats from here to Lotus Domino each need one of these
            if L.any_in((" authenticated user ", "aol.com", " SMTPSVC", " with Microsoft SMTP Server",
                         " with mapi id", "[XMail ", "(ecelerity", "Exim", " (Postfix) with",
                         "(Scalix SMTP Relay", " (Lotus Domino ")):
                if L.m(r" \((?:SquirrelMail|NaSMail) authenticated user "):
                    if L.m(r"(${IP})\b(?![.-]).{10,80}by (\S+) with HTTP"):
                        return S(v, ip=L[1], by=L[2])
                if L.m(r"aol\.com") and L.m(r"with HTTP \(WebMailUI\)"):
                    if L.m(r"(${IP}) by (\S+) \(${IP}\) with HTTP \(WebMailUI\)"):
                        return S(v, ip=L[1], by=L[2])
                if L.m(r" SMTPSVC"):
                    if L.m(r"^(\S*) \(\[(${IP})\][^\)]{0,40}\) by (\S+) with Microsoft SMTPSVC"):
                        return S(v, helo=L[1], ip=L[2], by=L[3])
                    if L.m(r"^mail pickup service by (\S+) with Microsoft SMTPSVC$"):
                        return 0
                elif L.m(r" with (?:Microsoft SMTP Server|mapi id) (?:\([^\)]+\) )?\d+\.\d+\.\d+\.\d+(?:$| )"):
                    if L.m(r"^(\S+) \(\[?(${IP})(?:%[A-Z0-9._~-]*)?\]?\) by (\S+) "):
                        return S(v, helo=L[1], ip=L[2], by=L[3], id="")
                elif L.m(r"\[XMail "):
                    if L.m(r"^(\S+) \((\[?${IP}\]?)(?::\d+)\) by (\S+)(?: \(\S+\))? with \[XMail"):
                        helo, ip, by = L[1], L[2], L[3]
                        if L.m(r" id <(\S+)>"):
                            v["id"] = L[1]
                        if L.m(r" from <(\S+)>"):
                            v["envfrom"] = L[1]
                        return S(v, helo=helo, ip=ip, by=by)
                elif L.m(r"\(ecelerity\b"):
                    if L.m(r"^\(\[(${IP}):\d+\] helo=(\S+)\) by (\S+) "):
                        return S(v, ip=L[1], helo=L[2], by=L[3])
                    if L.m(r"^\S+ \(\[(${IP}):\d+\]\) by (\S+) "):
                        return S(v, ip=L[1], by=L[2])
                elif L.m(r"Exim"):
                    if L.m(r"\bwith local(?:-\S+)? "):
                        return 0
                    if L.m(r"^\[(${IP})\] \((.*?)\) by (\S+) "):
                        ip, sub, by = L[1], L[2], L[3]
                        m = _HELO_EQ(sub)
                        if m:
                            v["helo"] = m.group(1)
                            sub = sub[:m.start()] + sub[m.end():]
                        m = _IDENT_EQ(sub)
                        if m:
                            v["ident"] = m.group(1)
                        return S(v, ip=ip, by=by)
                    if L.m(r"^(\S+) \(\[(${IP})\](.*?)\) by (\S+) "):
                        rdns, ip, sub, by = L[1], L[2], L[3], L[4]
                        v["helo"] = rdns
                        m = _HELO_EQ(sub)
                        if m:
                            v["helo"] = m.group(1)
                            sub = sub[:m.start()] + sub[m.end():]
                        m = _IDENT_EQ(sub)
                        if m:
                            v["ident"] = m.group(1)
                        return S(v, rdns=rdns, ip=ip, by=by)
                    if L.m(r"^(\S+) \[(${IP})\](:\d+)? by (\S+) "):
                        return S(v, rdns=L[1], ip=L[2], helo=L[1], by=L[4])
                    if L.m(r"^(\S+) "):
                        v["rdns"] = L[1]
                    if L.m(r" \((\S+)\) "):
                        v["helo"] = L[1]
                    if L.m(r" \[(${IP})(?:\.\d+)?\] "):
                        v["ip"] = L[1]
                    if L.m(r"by (\S+) "):
                        v["by"] = L[1]
                        if v["ip"]:
                            return v
                elif L.m(r" \(Postfix\) with"):
                    if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) "):
                        return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
                    if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                        return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
                elif L.m(r"\(Scalix SMTP Relay"):
                    if L.m(r"^(\S+) \( ?(${IP})\) by (\S+)"):
                        return S(v, helo=L[1], ip=L[2], by=L[3])
                elif L.m(r" \(Lotus Domino "):
                    if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \(Lotus"):
                        return S(v, dns=False, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"\bwith HTTP\b") and L.m(r"^(${IP}) \(\[${IP}\]\) by (\S+)"):
                return S(v, ip=L[1], by=L[2])
            if not L.m(r" by \S+ \(qmail-\S+\) with "):
                if L.m(r"^(\S+) \((\S+) \[(${IP})\].*\) by (\S+) \("):
                    helo, rdns, ip, by = L[1], L[2], L[3], L[4]
                    m = _IDENT_COLON(rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    m = _IDENT_AT(rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    return S(v, dns=True, helo=helo, rdns=rdns, ip=ip, by=by)
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with \S+ \("):
                return S(v, dns=True, rdns=L[2], ip=L[3], helo=L[1], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\] helo=(\S+)\) by (\S+) with "):
                return S(v, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r"^(\S+) \(<unknown\S*>\[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+\.\S+)\[(${IP})\]\) by (\S+) "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((\S*)\@\[(${IP})\].*\) by (\S+) \("):
                return S(v, dns=True, helo=L[1], ip=L[3], by=L[4], ident=L[2])
            if L.m(r"by (\S+\.hotmail\.msn\.com) "):
                v["by"] = L[1]
                if L.m(r"^(${IP}) "):
                    v["ip"] = L[1]
                return v
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((${IP})\) by (\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(LHLO (\S*)\) \((${IP})\) by (\S+) with LMTP"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (\S+) \([^\)]+\) with (?:ESMTP|SMTP)"):
                return S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) via smtpd \(for \S+\) with SMTP\("):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            # SpamAssassin's `by \S+( \(.+\))* with` written `by \S+(?: \(.+\))? with`: the
            # same strings (one " (.+)" takes in any more), without the exponential
            # backtracking, and with a look-ahead that fails fast on most lines (the
            # character before SMTP/QMQP is a space); only whether it matches is used
            if L.m(r"^(?=.* (?:SMTP|QMQP)(?! id ))\S+(?: \((?:HELO|EHLO) \S*\))? \((?:\S+\@)?\[?${IP}\]?\)(?: \(envelope-sender <\S+>\))? by \S+(?: \(.+\))? with (?:.* )?(?:SMTP|QMQP)(?! id )"):
                if L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ident=L[3], ip=L[4], by=L[6])
                elif L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ident=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ip=L[2], by=L[4])
                if v["rdns"] != "unknown":
                    v["dns"] = True
                else:
                    v["rdns"] = ""
                return v
            if L.m(r" via HTTP$") and L.m(r"^\[(${IP})\] by (\S+) via HTTP$"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \( \[(${IP})\]\).*? by (\S+) "):
                return S(v, ip=L[2], by=L[3])
            if L.m(r"^\((\S+) \[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^\(\[?(${IP})\]?\) by (\S+) "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) \[${IP}\] with "):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \[\((${IP})\)\] by (\S+) \(${IP}\) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \("):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\).*? by (\S+)\b"):
                if L[2] == "softdnserr":
                    v["dns"] = False
                else:
                    v["dns"] = True
                    v["rdns"] = L[2]
                return S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})(?:[.:]\d+)?\]\).*? by (\S+) "):
                return S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\)(?: \(authenticated bits=\d+\))? by (\S+) \("):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"with (?:POP3|IMAP)"):
                self.pop_fetcher = True
                return 0
            if L.m(r"^(\S+) \((?:HELO|EHLO) ([^\)]*)\) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[3] if L[3] is not None else ""
                return S(v, dns=True, rdns=L[1], helo=L[2], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[4], by=L[5])
            if L.m(r"^(\S+) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[2] if L[2] is not None else ""
                return S(v, dns=True, rdns=L[1], helo=L[1], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[3], by=L[4])
            if L.m(r" with http for ") and L.m(r"^\[(${IP})\] by (\S+) with http for "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" via smap ") and L.m(r"^(\S+)\((${IP})\) by (\S+) via smap "):
                return S(v, dns=True, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP}), (?:HELO|EHLO) (\S*)\) by (\S+) via smap "):
                return S(v, dns=True, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r" \(Post") and L.m(r"^\[(${IP})\] by (\S+) \(Post"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" \(ArGoSoft") and L.m(r"^\[(${IP})\] by (\S+) \(ArGoSoft"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(${IP}) by (\S+) \((?:SMTPL|InterScan)\b"):
                return S(v, ip=L[1], by=L[2])
            if L.m(r" with BSMTP") and L.m(r"^\S+ by \S+ with BSMTP"):
                return 0
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((?:(\S+)\@)?(${IP}).*?\) by (\S+) with "):
                if L[3] is not None:
                    v["ident"] = L[3]
                return S(v, dns=True, rdns=L[1], helo=L[2], ip=L[4], by=L[5])
            if L.m(r"^\[(${IP})\] \((?:account \S+ )?(?:HELO|EHLO) (\S*)\) by (\S+) \("):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r" \(CommuniGate Pro") and L.m(r"^(\S+) \(\[(${IP})\] verified\) by (\S+) \("):
                return S(v, dns=True, rdns=L[1], helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\(\[(${IP})\]\) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^([^\d]\S+) \((${IP})\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+ \(\S+\) by \S+ \(Content Technologies "):
                return 0
            if L.m(r"^(\S+) \(\[(${IP})\] \[(\S+)\]\) by (\S+) with "):
                return S(v, helo=L[1], ip=L[2], by=L[4])
            if L.m(r"^(${IP}) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                return S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^\[(${IP})\]\S+ \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(${IP}) \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                return S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\) by (\S+) "):
                return S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) \(MailGate "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \(unverified \[(${IP})\]\) by (\S+) "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(${IP}) \([A-Za-z][^\)]+\) by (\S+) with "):
                return S(v, ip=L[1], by=L[2])
            if L.m(r"^\[(${IP})\] \(([^\)]+)\) by (\S+) "):
                ip, sub, by = L[1], L[2], L[3]
                m = _HELO_EQ(sub)
                if m:
                    v["helo"] = m.group(1)
                    sub = sub[:m.start()] + sub[m.end():]
                m = _IDENT_EQ(sub)
                if m:
                    v["ident"] = m.group(1)
                return S(v, ip=ip, by=by)
            if L.m(r"^(\S+) \((?:\S+\@)?(${IP})\) by (\S+) with "):
                return S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\)(?:, claiming to be \"(\S+)\")? via \S+ by (\S+),"):
                v.update(rdns=L[1], ip=L[2], helo=L[3] if L[3] is not None else "", by=L[4])
                if L[1] != "UNKNOWN":
                    v["dns"] = True
                return v
            if L.m(r"^(\S+) \((\S+)@(${IP}) with login\) by (\S+\.yahoo\.com) with SMTP"):
                return S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^X-Originating-IP: (${IP})$"):
                return S(v, ip=L[1], by="")
            # stuff to ignore
            for pat in (r"^\S+ \([^\s\@]+\@${LOCALHOST}\) by \S+ \(",
                        r"^\S+ \S+ by \S+ with local-e?smtp ",
                        r"^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)",
                        r"^\S+\@\S+ by \S+ by uid \S+ ",
                        r"^\S+\@\S+ by \S+ ",
                        r"^Unknown/Local \(",
                        r"^${LOCALHOST} \((?:\S+\@)?${LOCALHOST}[\)\[]",
                        r"^\S+ \((?:\S+\@)?${LOCALHOST}\) ",
                        r"^\S+ \(\S+\@\S+ \[${LOCALHOST}\]\) ",
                        r"^\(AUTH: \S+\) by \S+ with ",
                        r"^localhost \(localhost \[\[UNIX: localhost\]\]\) by ",
                        r"^\S+\.amazon\.com by \S+\.amazon\.com with ESMTP \(peer crosscheck: ",
                        r"^[^\.]+ by \S+ with Novell_GroupWise",
                        r"^no\.name\.available by \S+ via smtpd \(for "):
                if L.m(pat):
                    return 0
            if L.m(r"^\S+ by \S+ \(.{0,100}\) with qmail-scanner"):
                env = v["envfrom"]
                if env is not None:
                    env = _ENV_HEAD("", env, 1)
                    env = _ENV_TAIL("", env)
                    env = _ENV_STRIP("!", env)
                self.qmail_scanner_env_from = env
                return 0
            for pat in (r"^\S+ by \S+ with local",
                        r"^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA",
                        r"^\S+ by \S+ (?:with|via|for|\()",
                        r"^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b",
                        r"^\S+ \(unknown\) by \S+ \(SG\) with \b",
                        r"^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b",
                        r"\(LSMTP for",
                        r"^\(\[${LOCALHOST}\]\) with MailEnable ",
                        r"^facebook\.com \([^\)]+\) by facebook\.com with Thrift id \S+$",
                        r"^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$",
                        r"^\S+ id \S+$",
                        r"^\[<.*? \(Jetsend"):
                if L.m(pat):
                    return 0
            if not v["helo"] and L.m(r"^(\S+)[^-A-Za-z0-9\.]"):
                v["helo"] = L[1]
        elif L.cut_prefix("FROM "):
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) BY (\S+) (?:\([^\)]+\) WITH SMTP )?ID <?(\S+?)>?(?: FOR <[^>]+>)?$"):
                return S(v, dns=True, helo=L[1], rdns="" if L[2] == "unverified" else L[2], ip=L[3], by=L[4], id=L[5])
        elif L.cut_prefix("(from "):
            if L.m(r"^(\S*) \[(${IP})\]\) by (\S+) \(NAVGW .*?\) with "):
                return S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+\@localhost\) by \S+ "):
                return 0
            if L.m(r"^[^\s\@]+\@[^)]+\) by \S+\(jqueuemail\) id [^\s;]+"):
                return 0
        if not v["ip"] and L.m(r"\[(${IP})\]"):
            v["ip"] = L[1]
        if v["ip"] and v["by"]:
            return v
        return None
    # --- end parser ---


# ------------------------------------------------------------ the relay chain

_UNFOLD = re.compile(r"\n[ \t]+", re.A).sub
_MSA_SUB = re.compile(r" msa=\d ", re.A).sub
_MSA = {False: " msa=0 ", True: " msa=1 "}


def fill_relays(out, lines: list, p: Parser, relay_cls, private_ips: dict, ip_private_search,
                trusted, internal, msa, user_nets: bool) -> None:
    """parse_relays' walk over the lines (top first): each line parsed by p,
    its relay (relay_cls, from relay_fields' tuple) appended to out's
    trusted/untrusted and internal/external lists with SpamAssassin's trust
    decisions; out's num_unparseable, last_trusted_index and
    last_internal_index counted.  private_ips: ip_private_search's answer
    by address (kept across messages); trusted/internal/msa: the network
    sets (contains_ip) used when user_nets (networks configured)."""
    in_trusted = in_internal = True
    found_msa = False
    allow_fetch = True
    trusted_list = out.trusted
    internal_list = out.internal
    untrusted_list = out.untrusted
    for line in lines:
        qms = p.qmail_scanner_env_from
        p.qmail_scanner_env_from = None
        if "\n" in line:
            line = _UNFOLD(" ", line)
        p.pop_fetcher = False
        v = p.parse_line(line)
        if p.pop_fetcher:
            if allow_fetch:
                out.trusted, out.internal, out.external = [], [], []
                trusted_list = out.trusted
                internal_list = out.internal
        if v.__class__ is not dict:
            if v is None:
                out.num_unparseable += 1
            if in_trusted:
                out.last_trusted_index += 1
            if in_internal:
                out.last_internal_index += 1
            continue
        ip, by, helo, rid, ident, env, auth, rdns, no_rdns, not_in, st = relay_fields(v)
        private = private_ips.get(ip)
        if private is None:
            if len(private_ips) > 20000:
                private_ips.clear()
            private = private_ips[ip] = ip_private_search(ip) is not None
        relay = relay_cls(ip, by, helo, rid, ident, env, auth, rdns, no_rdns, not_in, private, False, False, st)
        if qms:
            relay.envfrom = qms
            relay.make_string()
        is_msa = False
        if in_trusted and not found_msa:
            if not user_nets:
                if not (private or auth):
                    in_trusted = in_internal = False
            else:
                if not auth and not trusted.contains_ip(ip):
                    in_trusted = False
                    in_internal = False
                else:
                    if in_internal and not auth and not internal.contains_ip(ip):
                        in_internal = False
                    if msa.contains_ip(ip):
                        found_msa = True
                        is_msa = relay.msa = True
        relay.internal = in_internal
        # SpamAssassin's s/ intl=\d / intl=N / and s/ msa=\d / msa=N / on the
        # string made with intl=0 msa=0: only a 1 changes it (the first
        # " intl=" is the field itself: no field before it holds a space, so
        # the first " intl=0 " is the field) or an auth text holding " msa="
        # (auth comes before msa and may hold spaces)
        if in_internal:
            relay.as_string = relay.as_string.replace(" intl=0 ", " intl=1 ", 1)
        if is_msa or "msa=" in auth:
            relay.as_string = _MSA_SUB(_MSA[is_msa], relay.as_string, 1)
        if in_trusted:
            trusted_list.append(relay)
            allow_fetch = True
            out.last_trusted_index += 1
        else:
            untrusted_list.append(relay)
            allow_fetch = False
        if in_internal:
            internal_list.append(relay)
            out.last_internal_index += 1
        else:
            out.external.append(relay)
