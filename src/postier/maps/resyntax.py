"""Regular-expression dialects -> one syntax tree -> Hyperscan / RE2 / `re`.

Postfix `regexp:` tables are POSIX regular expressions as glibc's regcomp()
reads them (ERE, or BRE with the `x` flag; GNU extensions \\w \\s \\b \\< \\>
\\` \\' and back-references), and `pcre:` tables are PCRE2 patterns.  Both
are parsed here into a small tree (`parse_posix`, `parse_pcre`) and written
back out (`emit`) in the dialect of each engine postier uses:

* "hs": Hyperscan.  Never fails: what Hyperscan cannot do (look-around,
  back-references, atomic groups, possessive quantifiers, word-start/-end)
  is replaced by something that matches *more* (a superset), and the result
  says it is not exact, so a hit must be confirmed.
* "re2": pyre2 in bytes (Latin-1) mode.  Raises Unsupported for what RE2
  lacks.  `nl_unsafe` marks patterns whose RE2 form is exact only when the
  subject does not end in a newline (PCRE's `$` and multi-line `^`).
* "py": Python `re` on bytes.

Matching is on bytes, as Postfix does (it never calls setlocale(), so both
glibc and PCRE2 see single bytes in the "C" locale).  Case-insensitivity is
ASCII-only and is compiled into the tree itself (each literal becomes a set
of bytes), so every engine runs case-sensitive and they cannot disagree on
case folding.  `.`, classes and escapes also become explicit byte sets.

Tree nodes are tuples:
  ("set", frozenset[int])            one byte out of the set
  ("seq", [node, ...])               concatenation
  ("alt", [node, ...])               alternation, leftmost first
  ("group", node, index | None)      capturing (index >= 1) or not
  ("rep", node, min, max | None, greedy, possessive)
  ("anchor", kind)                   A z Z bol bolp eol b B wstart wend
  ("look", node, behind, negative)
  ("backref", n, caseless)
  ("atomic", node)

Anchor kinds: A = start of subject; z = very end; Z = end or before a final
newline (PCRE `$`); bol = POSIX REG_NEWLINE `^` (start or after any newline);
bolp = PCRE multi-line `^` (not after a newline that ends the subject); eol =
before any newline or at the end; b/B = word boundary or not; wstart/wend =
GNU \\< and \\>.

Parameters read: none.
"""

from __future__ import annotations

ALL = frozenset(range(256))
_DIGIT = frozenset(range(0x30, 0x3A))
_UPPER = frozenset(range(0x41, 0x5B))
_LOWER = frozenset(range(0x61, 0x7B))
_ALPHA = _UPPER | _LOWER
_ALNUM = _ALPHA | _DIGIT
WORD = _ALNUM | {0x5F}
_SPACE = frozenset({0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20})
_POSIX_CLASSES = {
    b"alpha": _ALPHA, b"upper": _UPPER, b"lower": _LOWER, b"digit": _DIGIT,
    b"alnum": _ALNUM, b"space": _SPACE, b"blank": frozenset({0x09, 0x20}),
    b"cntrl": frozenset(range(0, 32)) | {127}, b"graph": frozenset(range(33, 127)),
    b"print": frozenset(range(32, 127)),
    b"punct": frozenset(range(33, 48)) | frozenset(range(58, 65))
    | frozenset(range(91, 97)) | frozenset(range(123, 127)),
    b"xdigit": _DIGIT | frozenset(b"ABCDEFabcdef"),
}

EMPTY = ("seq", [])


class Unsupported(Exception):
    """This construct cannot be expressed for that engine (or parsed here)."""


class PosixSyntaxError(Exception):
    """regcomp() would refuse this pattern; str() is glibc's regerror() text."""


class PcreSyntaxError(Exception):
    """pcre2_compile() would refuse this pattern (message, offset)."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def fold_set(s: frozenset[int]) -> frozenset[int]:
    """ASCII case closure of a byte set."""
    extra = {c ^ 0x20 for c in s if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A}
    return s | extra if extra else s


def _char(c: int, icase: bool) -> tuple:
    return ("set", fold_set(frozenset((c,))) if icase else frozenset((c,)))


# ---------------------------------------------------------------- POSIX (glibc)

_E_BADPAT = "Invalid regular expression"
_E_COLLATE = "Invalid collation character"
_E_CTYPE = "Invalid character class name"
_E_ESCAPE = "Trailing backslash"
_E_SUBREG = "Invalid back reference"
_E_BRACK = "Unmatched [, [^, [:, [., or [="
_E_PAREN = "Unmatched ( or \\("
_E_BRACE = "Unmatched \\{"
_E_BADBR = "Invalid content of \\{\\}"
_E_RANGE = "Invalid range end"
_E_BADRPT = "Invalid preceding regular expression"
_E_SIZE = "Regular expression too big"
_RE_DUP_MAX = 0x7FFF

# token types
_CHAR, _ALT, _STAR, _PLUS, _QMARK, _ODUP, _CDUP, _OSUB, _CSUB, _BRACKET, _PERIOD, \
    _ANCHOR, _BACKREF, _CLASS, _BSEND, _END = range(16)


class _PosixParser:
    """A transcription of glibc's regcomp.c parser (C locale, single bytes)."""

    def __init__(self, pat: bytes, extended: bool, icase: bool, newline: bool):
        self.p = pat
        self.ere = extended
        self.icase = icase
        self.newline = newline
        self.nsub = 0
        self.completed = set()
        self.pos = 0
        self.tok = None

    # token = (type, value, length)
    def peek(self, pos: int, caret_here: bool = False) -> tuple:
        p = self.p
        if pos >= len(p):
            return (_END, None, 0)
        c = p[pos]
        ere = self.ere
        if c == 0x5C:  # backslash
            if pos + 1 >= len(p):
                return (_BSEND, None, 1)
            c2 = p[pos + 1]
            t = (_CHAR, c2, 2)
            if c2 == 0x7C and not ere:
                t = (_ALT, None, 2)
            elif 0x31 <= c2 <= 0x39:
                t = (_BACKREF, c2 - 0x30, 2)
            elif c2 == 0x3C:
                t = (_ANCHOR, "wstart", 2)
            elif c2 == 0x3E:
                t = (_ANCHOR, "wend", 2)
            elif c2 == 0x62:
                t = (_ANCHOR, "b", 2)
            elif c2 == 0x42:
                t = (_ANCHOR, "B", 2)
            elif c2 == 0x77:
                t = (_CLASS, WORD, 2)
            elif c2 == 0x57:
                t = (_CLASS, ALL - WORD, 2)
            elif c2 == 0x73:
                t = (_CLASS, _SPACE, 2)
            elif c2 == 0x53:
                t = (_CLASS, ALL - _SPACE, 2)
            elif c2 == 0x60:
                t = (_ANCHOR, "A", 2)
            elif c2 == 0x27:
                t = (_ANCHOR, "z", 2)
            elif c2 == 0x28 and not ere:
                t = (_OSUB, None, 2)
            elif c2 == 0x29 and not ere:
                t = (_CSUB, None, 2)
            elif c2 == 0x2B and not ere:
                t = (_PLUS, None, 2)
            elif c2 == 0x3F and not ere:
                t = (_QMARK, None, 2)
            elif c2 == 0x7B and not ere:
                t = (_ODUP, None, 2)
            elif c2 == 0x7D and not ere:
                t = (_CDUP, None, 2)
            return t
        if c == 0x7C and ere:
            return (_ALT, None, 1)
        if c == 0x2A:
            return (_STAR, None, 1)
        if c == 0x2B and ere:
            return (_PLUS, None, 1)
        if c == 0x3F and ere:
            return (_QMARK, None, 1)
        if c == 0x7B and ere:
            return (_ODUP, None, 1)
        if c == 0x7D and ere:
            return (_CDUP, c, 1)
        if c == 0x28 and ere:
            return (_OSUB, None, 1)
        if c == 0x29 and ere:
            return (_CSUB, c, 1)
        if c == 0x5B:
            return (_BRACKET, None, 1)
        if c == 0x2E:
            return (_PERIOD, None, 1)
        if c == 0x5E:
            if ere or caret_here or pos == 0:
                return (_ANCHOR, "^", 1)
            return (_CHAR, c, 1)
        if c == 0x24:
            if not ere and pos + 1 != len(p):
                nxt = self.peek(pos + 1)
                if nxt[0] not in (_ALT, _CSUB):
                    return (_CHAR, c, 1)
            return (_ANCHOR, "$", 1)
        return (_CHAR, c, 1)

    def fetch(self, caret_here: bool = False) -> None:
        self.tok = self.peek(self.pos, caret_here)
        self.pos += self.tok[2]

    def parse(self) -> tuple:
        self.fetch(caret_here=True)
        tree = self.reg_exp(0)
        return tree

    def reg_exp(self, nest: int) -> tuple:
        branches = [self.branch(nest)]
        while self.tok[0] == _ALT:
            self.fetch(caret_here=True)
            t = self.tok[0]
            if t != _ALT and t != _END and (nest == 0 or t != _CSUB):
                branches.append(self.branch(nest))
            else:
                branches.append(EMPTY)
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def branch(self, nest: int) -> tuple:
        items = []
        while True:
            t = self.tok[0]
            if t == _ALT or t == _END or (nest != 0 and t == _CSUB):
                break
            e = self.expression(nest)
            if e is not None:
                items.append(e)
        return items[0] if len(items) == 1 else ("seq", items)

    def expression(self, nest: int):
        t, v, _ = self.tok
        icase = self.icase
        if t == _CHAR:
            if icase and self.tok[2] == 2 and 0x61 <= v <= 0x7A:
                # glibc quirk: with REG_ICASE an escaped lower-case letter
                # ("\\a") never matches, an escaped upper-case one matches both.
                tree = ("set", frozenset())
            else:
                tree = _char(v, icase)
        elif t == _OSUB:
            tree = self.sub_exp(nest + 1)
        elif t == _BRACKET:
            tree = ("set", self.bracket())
        elif t == _BACKREF:
            if v not in self.completed:
                raise PosixSyntaxError(_E_SUBREG)
            tree = ("backref", v, icase)
        elif t in (_ODUP, _STAR, _PLUS, _QMARK):
            if t == _ODUP and not self.ere:
                raise PosixSyntaxError(_E_BADRPT)
            if self.ere:
                raise PosixSyntaxError(_E_BADRPT)
            tree = _char(self.p[self.pos - 1], icase)
        elif t == _ALT or t == _END:
            return None
        elif t == _CSUB:
            if not self.ere:
                raise PosixSyntaxError(_E_PAREN)
            tree = _char(v, icase)
        elif t == _CDUP:
            tree = _char(0x7D, icase)
        elif t == _ANCHOR:
            kind = v
            if kind == "^":
                kind = "bol" if self.newline else "A"
            elif kind == "$":
                kind = "eol" if self.newline else "z"
            self.fetch()
            return ("anchor", kind)
        elif t == _PERIOD:
            s = ALL - {0}
            if self.newline:
                s = s - {0x0A}
            tree = ("set", s)
        elif t == _CLASS:
            tree = ("set", v)
        elif t == _BSEND:
            raise PosixSyntaxError(_E_ESCAPE)
        else:  # pragma: no cover
            raise Unsupported("token")
        self.fetch()
        while self.tok[0] in (_STAR, _PLUS, _QMARK, _ODUP):
            tree = self.dup_op(tree)
            if not self.ere and self.tok[0] in (_STAR, _ODUP):
                raise PosixSyntaxError(_E_BADRPT)
        return tree

    def sub_exp(self, nest: int) -> tuple:
        cur = self.nsub
        self.nsub += 1
        self.fetch(caret_here=True)
        if self.tok[0] == _CSUB:
            tree = EMPTY
        else:
            tree = self.reg_exp(nest)
            if self.tok[0] != _CSUB:
                raise PosixSyntaxError(_E_PAREN)
        if cur <= 8:
            self.completed.add(cur + 1)
        return ("group", tree, cur + 1)

    def fetch_number(self) -> tuple[int, tuple]:
        num = -1
        while True:
            self.fetch()
            t, c, _ = self.tok
            if t == _END:
                return -2, self.tok
            if t == _CDUP or c == 0x2C:
                break
            if t != _CHAR or c is None or not (0x30 <= c <= 0x39) or num == -2:
                num = -2
            elif num == -1:
                num = c - 0x30
            else:
                num = min(_RE_DUP_MAX + 1, num * 10 + c - 0x30)
        return num, self.tok

    def dup_op(self, elem) -> tuple | None:
        t = self.tok[0]
        if t == _ODUP:
            start, stok = self.fetch_number()
            if start == -1:
                if stok[0] == _CHAR and stok[1] == 0x2C:
                    start = 0
                else:
                    raise PosixSyntaxError(_E_BADBR)
            end = 0
            if start != -2:
                if stok[0] == _CDUP:
                    end = start
                elif stok[0] == _CHAR and stok[1] == 0x2C:
                    end, _ = self.fetch_number()
                else:
                    end = -2
            if start == -2 or end == -2:
                raise PosixSyntaxError(_E_BRACE if self.tok[0] == _END else _E_BADBR)
            if (end != -1 and start > end) or self.tok[0] != _CDUP:
                raise PosixSyntaxError(_E_BADBR)
            if _RE_DUP_MAX < (start if end == -1 else end):
                raise PosixSyntaxError(_E_SIZE)
            mx = None if end == -1 else end
        else:
            start = 1 if t == _PLUS else 0
            mx = 1 if t == _QMARK else None
        self.fetch()
        if elem is None:
            return None
        if start == 0 and mx == 0:
            return EMPTY
        return ("rep", elem, start, mx, True, False)

    def bracket(self) -> frozenset[int]:
        p = self.p
        n = len(p)
        s: set[int] = set()
        non_match = False

        def peekb(pos: int) -> tuple:
            if pos >= n:
                return ("end", None, 0)
            c = p[pos]
            if c == 0x5B:
                c2 = p[pos + 1] if pos + 1 < n else 0
                if c2 == 0x2E:
                    return ("coll", c2, 2)
                if c2 == 0x3D:
                    return ("equiv", c2, 2)
                if c2 == 0x3A:
                    return ("class", c2, 2)
                return ("char", c, 1)
            if c == 0x2D:
                return ("range", c, 1)
            if c == 0x5D:
                return ("close", c, 1)
            if c == 0x5E:
                return ("not", c, 1)
            return ("char", c, 1)

        pos = self.pos
        tok = peekb(pos)
        if tok[0] == "end":
            raise PosixSyntaxError(_E_BADPAT)
        if tok[0] == "not":
            non_match = True
            if self.newline:
                s.add(0x0A)
            pos += tok[2]
            tok = peekb(pos)
            if tok[0] == "end":
                raise PosixSyntaxError(_E_BADPAT)
        if tok[0] == "close":
            tok = ("char", tok[1], tok[2])

        def element(tok, pos, accept_hyphen):
            pos += tok[2]
            if tok[0] in ("coll", "equiv", "class"):
                delim = tok[1]
                name = bytearray()
                if pos >= n:
                    raise PosixSyntaxError(_E_BRACK)
                i = 0
                while True:
                    if i >= 32:
                        raise PosixSyntaxError(_E_BRACK)
                    ch = p[pos]
                    pos += 1
                    if pos >= n:
                        raise PosixSyntaxError(_E_BRACK)
                    if ch == delim and p[pos] == 0x5D:
                        break
                    name.append(ch)
                    i += 1
                pos += 1
                return (tok[0], bytes(name)), pos
            if tok[0] == "range" and not accept_hyphen:
                t2 = peekb(pos)
                if t2[0] != "close":
                    raise PosixSyntaxError(_E_RANGE)
            return ("char", tok[1]), pos

        def single(elem) -> int:
            kind, val = elem
            if kind == "char":
                return val
            if kind == "coll":
                if len(val) != 1:
                    raise PosixSyntaxError(_E_COLLATE)
                return val[0]
            raise PosixSyntaxError(_E_RANGE)

        first = True
        while True:
            start, pos = element(tok, pos, first)
            first = False
            tok = peekb(pos)
            is_range = False
            if start[0] not in ("class", "equiv"):
                if tok[0] == "end":
                    raise PosixSyntaxError(_E_BRACK)
                if tok[0] == "range":
                    pos += tok[2]
                    tok2 = peekb(pos)
                    if tok2[0] == "end":
                        raise PosixSyntaxError(_E_BRACK)
                    if tok2[0] == "close":
                        pos -= tok[2]
                        tok = ("char", tok[1], tok[2])
                    else:
                        is_range = True
            if is_range:
                end, pos = element(tok2, pos, True)
                tok = peekb(pos)
                if start[0] in ("class", "equiv") or end[0] in ("class", "equiv"):
                    raise PosixSyntaxError(_E_RANGE)
                a, b = single(start), single(end)
                if a > b:
                    raise PosixSyntaxError(_E_RANGE)
                s.update(range(a, b + 1))
            else:
                kind, val = start
                if kind == "char":
                    s.add(val)
                elif kind in ("coll", "equiv"):
                    if len(val) != 1:
                        raise PosixSyntaxError(_E_COLLATE)
                    s.add(val[0])
                else:
                    name = val
                    if self.icase and name in (b"upper", b"lower"):
                        name = b"alpha"
                    cls = _POSIX_CLASSES.get(name)
                    if cls is None:
                        raise PosixSyntaxError(_E_CTYPE)
                    s.update(cls)
            if tok[0] == "end":
                raise PosixSyntaxError(_E_BRACK)
            if tok[0] == "close":
                break
        pos += tok[2]
        self.pos = pos
        res = frozenset(s)
        if self.icase:
            res = fold_set(res)
        if non_match:
            res = ALL - res
        return res


def parse_posix(pattern: bytes, extended: bool = True, icase: bool = True,
                newline: bool = False) -> tuple[tuple, int]:
    """Parse a POSIX regex the way glibc regcomp() does: (tree, re_nsub).

    Raises PosixSyntaxError with regerror()'s wording for what glibc refuses.
    Raises Unsupported for a `^` that is not at the start or a `$` that is
    not at the end of the pattern without REG_NEWLINE: glibc then matches
    them next to newlines, differently depending on the number of submatches
    asked for; only glibc itself reproduces that."""
    parser = _PosixParser(pattern, extended, icase, newline)
    tree = parser.parse()
    if not _anchors_at_edges(tree, True, True):
        raise Unsupported("anchor inside the pattern")
    return tree, parser.nsub


def posix_nsub(pattern: bytes, extended: bool = True) -> int | None:
    """re_nsub by counting groups with the parser, or None if it cannot parse."""
    try:
        parser = _PosixParser(pattern, extended, False, False)
        parser.parse()
        return parser.nsub
    except (PosixSyntaxError, Unsupported):
        return None


def _anchors_at_edges(node, at_start: bool, at_end: bool) -> bool:
    kind = node[0]
    if kind == "anchor":
        if node[1] == "A":
            return at_start
        if node[1] == "z":
            return at_end
        return True
    if kind == "seq":
        items = node[1]
        last = len(items) - 1
        return all(_anchors_at_edges(it, at_start and i == 0, at_end and i == last)
                   for i, it in enumerate(items))
    if kind == "alt":
        return all(_anchors_at_edges(b, at_start, at_end) for b in node[1])
    if kind == "group":
        return _anchors_at_edges(node[1], at_start, at_end)
    if kind == "rep":
        return _anchors_at_edges(node[1], False, False)
    return True


# ---------------------------------------------------------------- PCRE2

_PCRE_ESC_SETS = {
    ord("d"): _DIGIT, ord("D"): ALL - _DIGIT,
    ord("w"): WORD, ord("W"): ALL - WORD,
    ord("s"): _SPACE, ord("S"): ALL - _SPACE,
    ord("h"): frozenset({0x09, 0x20, 0xA0}), ord("H"): ALL - {0x09, 0x20, 0xA0},
    ord("v"): frozenset({0x0A, 0x0B, 0x0C, 0x0D, 0x85}),
    ord("V"): ALL - {0x0A, 0x0B, 0x0C, 0x0D, 0x85},
}
_PCRE_ESC_CHARS = {ord("a"): 7, ord("e"): 27, ord("f"): 12, ord("n"): 10, ord("r"): 13,
                   ord("t"): 9}
_HEX = b"0123456789abcdefABCDEF"
_WS_X = frozenset({0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D})


class _PcreParser:
    """PCRE2 syntax (no UTF, default tables) into the tree.  Constructs the
    tree cannot hold raise Unsupported; obvious syntax errors raise
    PcreSyntaxError with PCRE2's message (libpcre2 stays the authority)."""

    def __init__(self, pat: bytes, caseless: bool, multiline: bool, dotall: bool,
                 extended: bool, dollar_endonly: bool, ungreedy: bool):
        self.p = pat
        self.pos = 0
        self.ncap = 0
        self.flags = {"i": caseless, "m": multiline, "s": dotall, "x": extended,
                      "E": dollar_endonly, "U": ungreedy, "n": False}

    def error(self, msg: str, off: int | None = None):
        raise PcreSyntaxError(msg, self.pos if off is None else off)

    def parse(self) -> tuple:
        tree = self.alternation()
        if self.pos < len(self.p):
            # a ")" with no "(" to close
            self.error("unmatched closing parenthesis")
        return tree

    def skip_x(self) -> None:
        p = self.p
        if not self.flags["x"]:
            return
        while self.pos < len(p):
            c = p[self.pos]
            if c in _WS_X:
                self.pos += 1
            elif c == 0x23:
                while self.pos < len(p) and p[self.pos] != 0x0A:
                    self.pos += 1
            else:
                break

    def alternation(self) -> tuple:
        saved = dict(self.flags)
        branches = [self.sequence()]
        while self.pos < len(self.p) and self.p[self.pos] == 0x7C:
            self.pos += 1
            branches.append(self.sequence())
        self.flags = saved
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> tuple:
        p = self.p
        items: list = []
        while True:
            self.skip_x()
            if self.pos >= len(p) or p[self.pos] in (0x7C, 0x29):
                break
            atom = self.atom()
            if atom is None:
                continue
            if atom[0] == "__multi":
                # \Q...\E: a quantifier applies to the last character only
                items.extend(atom[1][:-1])
                atom = atom[1][-1]
            self.skip_x()
            items.append(self.quantifiers(atom))
        return items[0] if len(items) == 1 else ("seq", items)

    def quantifiers(self, atom: tuple) -> tuple:
        p = self.p
        while self.pos < len(p):
            c = p[self.pos]
            start = self.pos
            if c == 0x2A:
                mn, mx = 0, None
                self.pos += 1
            elif c == 0x2B:
                mn, mx = 1, None
                self.pos += 1
            elif c == 0x3F:
                mn, mx = 0, 1
                self.pos += 1
            elif c == 0x7B:
                q = self.brace_quant()
                if q is None:
                    break
                mn, mx = q
            else:
                break
            if atom[0] in ("anchor", "look"):
                # PCRE2 allows quantified assertions in some cases; keep exact
                # semantics by leaving this to the reference library.
                raise Unsupported("quantified assertion")
            if atom is EMPTY or atom[0] == "seq" and not atom[1]:
                self.error("quantifier does not follow a repeatable item", start)
            greedy = not self.flags["U"]
            possessive = False
            if self.pos < len(p) and p[self.pos] == 0x3F:
                greedy = not greedy
                self.pos += 1
            elif self.pos < len(p) and p[self.pos] == 0x2B:
                possessive = True
                self.pos += 1
            if mx is not None and mn > mx:
                self.error("numbers out of order in {} quantifier", self.pos - 1)
            if mn > 65535 or (mx or 0) > 65535:
                self.error("number too big in {} quantifier", self.pos - 1)
            atom = ("rep", atom, mn, mx, greedy, possessive)
            self.skip_x()
        return atom

    def brace_quant(self):
        # PCRE2 10.42: {n} {n,} {n,m}; anything else is literal text
        p = self.p
        i = self.pos + 1
        j = i
        while j < len(p) and 0x30 <= p[j] <= 0x39:
            j += 1
        if j == i:
            return None
        mn = int(p[i:j])
        if j < len(p) and p[j] == 0x7D:
            self.pos = j + 1
            return mn, mn
        if j >= len(p) or p[j] != 0x2C:
            return None
        k = j + 1
        m = k
        while m < len(p) and 0x30 <= p[m] <= 0x39:
            m += 1
        if m >= len(p) or p[m] != 0x7D:
            return None
        mx = int(p[k:m]) if m > k else None
        self.pos = m + 1
        return mn, mx

    def lit(self, c: int) -> tuple:
        return _char(c, self.flags["i"])

    def atom(self):
        p = self.p
        c = p[self.pos]
        f = self.flags
        if c == 0x28:
            return self.group()
        if c == 0x5B:
            self.pos += 1
            return ("set", self.char_class())
        if c == 0x2E:
            self.pos += 1
            return ("set", ALL if f["s"] else ALL - {0x0A})
        if c == 0x5E:
            self.pos += 1
            return ("anchor", "bolp" if f["m"] else "A")
        if c == 0x24:
            self.pos += 1
            if f["m"]:
                return ("anchor", "eol")
            return ("anchor", "z" if f["E"] else "Z")
        if c == 0x5C:
            return self.escape()
        if c in (0x2A, 0x2B, 0x3F):
            self.error("quantifier does not follow a repeatable item")
        if c == 0x7B and self.brace_quant_peek():
            self.error("quantifier does not follow a repeatable item")
        self.pos += 1
        return self.lit(c)

    def brace_quant_peek(self) -> bool:
        save = self.pos
        r = self.brace_quant()
        self.pos = save
        return r is not None

    def escape(self):
        p = self.p
        start = self.pos
        self.pos += 1
        if self.pos >= len(p):
            self.error("\\ at end of pattern", len(p))
        c = p[self.pos]
        self.pos += 1
        f = self.flags
        if c in _PCRE_ESC_SETS:
            return ("set", _PCRE_ESC_SETS[c])
        if c == 0x4E:  # \N
            if self.pos < len(p) and p[self.pos] == 0x7B:
                raise Unsupported("\\N{")
            return ("set", ALL - {0x0A})
        if c == 0x41:
            return ("anchor", "A")
        if c == 0x47:
            return ("anchor", "A")
        if c == 0x7A:
            return ("anchor", "z")
        if c == 0x5A:
            return ("anchor", "Z")
        if c == 0x62:
            return ("anchor", "b")
        if c == 0x42:
            return ("anchor", "B")
        if c == 0x51:  # \Q...\E
            end = p.find(b"\\E", self.pos)
            text = p[self.pos:] if end < 0 else p[self.pos:end]
            self.pos = len(p) if end < 0 else end + 2
            if not text:
                return None
            items = [self.lit(b) for b in text]
            return items[0] if len(items) == 1 else ("__multi", items)
        if c == 0x45:  # \E alone
            return None
        if c in _PCRE_ESC_CHARS:
            return self.lit(_PCRE_ESC_CHARS[c])
        if c == 0x78:  # \x
            return self.lit(self.hex_escape())
        if c == 0x6F and self.pos < len(p) and p[self.pos] == 0x7B:
            end = p.find(b"}", self.pos)
            if end < 0:
                raise Unsupported("\\o{")
            try:
                v = int(p[self.pos + 1:end], 8)
            except ValueError:
                raise Unsupported("\\o{") from None
            if v > 255:
                self.error("character code point value in \\x{} or \\o{} is too large", end)
            self.pos = end + 1
            return self.lit(v)
        if c == 0x63:  # \cX
            if self.pos >= len(p):
                self.error("\\c at end of pattern", len(p))
            x = p[self.pos]
            self.pos += 1
            if x >= 0x80:
                raise Unsupported("\\c")
            if 0x61 <= x <= 0x7A:
                x -= 0x20
            return self.lit(x ^ 0x40)
        if c == 0x30:  # \0 octal
            j = self.pos
            while j < len(p) and j < self.pos + 2 and 0x30 <= p[j] <= 0x37:
                j += 1
            v = int(p[self.pos - 1:j], 8)
            self.pos = j
            return self.lit(v & 0xFF)
        if 0x31 <= c <= 0x39:
            if self.pos < len(p) and 0x30 <= p[self.pos] <= 0x39:
                raise Unsupported("multi-digit back-reference or octal")
            return ("backref", c - 0x30, f["i"])
        if c == 0x67 or c == 0x6B:  # \g \k
            raise Unsupported("\\g/\\k")
        if c == 0x52:  # \R
            return ("atomic", ("alt", [("seq", [("set", frozenset({13})), ("set", frozenset({10}))]),
                                       ("set", frozenset({10, 11, 12, 13, 0x85}))]))
        if (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A):
            # \p \P \X \C \K \u \U \L \l \i ... : not for the tree
            if c in b"pPXCKuUlLNi":
                raise Unsupported("\\" + chr(c))
            self.error("unrecognized character follows \\", self.pos - 1 if self.pos > start else start)
        return self.lit(c)

    def hex_escape(self) -> int:
        p = self.p
        if self.pos < len(p) and p[self.pos] == 0x7B:
            end = p.find(b"}", self.pos)
            digits = p[self.pos + 1:end] if end > 0 else b""
            if end < 0 or not digits or any(d not in _HEX for d in digits):
                raise Unsupported("\\x{")
            v = int(digits, 16)
            if v > 255:
                self.error("character code point value in \\x{} or \\o{} is too large", end)
            self.pos = end + 1
            return v
        j = self.pos
        while j < len(p) and j < self.pos + 2 and p[j] in _HEX:
            j += 1
        v = int(p[self.pos:j], 16) if j > self.pos else 0
        self.pos = j
        return v

    def char_class(self) -> frozenset[int]:
        p = self.p
        start = self.pos - 1
        s: set[int] = set()
        neg = False
        if self.pos < len(p) and p[self.pos] == 0x5E:
            neg = True
            self.pos += 1
        first = True
        prev: int | None = None   # last single char (for ranges)
        while True:
            if self.pos >= len(p):
                self.error("missing terminating ] for character class", len(p))
            c = p[self.pos]
            if c == 0x5D and not first:
                self.pos += 1
                break
            first = False
            if c == 0x5B and self.pos + 1 < len(p) and p[self.pos + 1] in (0x3A, 0x2E, 0x3D):
                kind = p[self.pos + 1]
                end = p.find(bytes((kind, 0x5D)), self.pos + 2)
                if end >= 0 and kind == 0x3A:
                    name = p[self.pos + 2:end]
                    cneg = name.startswith(b"^")
                    if cneg:
                        name = name[1:]
                    cls = WORD if name == b"word" else _POSIX_CLASSES.get(name)
                    if cls is None:
                        self.error("unknown POSIX class name", self.pos + 2)
                    s.update(ALL - cls if cneg else cls)
                    self.pos = end + 2
                    prev = None
                    continue
                if end >= 0:
                    self.error("POSIX collating elements are not supported", self.pos)
            if c == 0x5C:
                self.pos += 1
                if self.pos >= len(p):
                    self.error("\\ at end of pattern", len(p))
                e = p[self.pos]
                self.pos += 1
                if e in _PCRE_ESC_SETS:
                    s.update(_PCRE_ESC_SETS[e])
                    prev = None
                    continue
                if e == 0x62:
                    ch = 8
                elif e in _PCRE_ESC_CHARS:
                    ch = _PCRE_ESC_CHARS[e]
                elif e == 0x78:
                    ch = self.hex_escape()
                elif e == 0x30 or 0x31 <= e <= 0x37:
                    j = self.pos
                    while j < len(p) and j < self.pos + 2 and 0x30 <= p[j] <= 0x37:
                        j += 1
                    ch = int(p[self.pos - 1:j], 8) & 0xFF
                    self.pos = j
                elif e == 0x51 or e == 0x45:
                    raise Unsupported("\\Q in class")
                elif (0x41 <= e <= 0x5A) or (0x61 <= e <= 0x7A) or 0x38 <= e <= 0x39:
                    raise Unsupported("escape in class")
                else:
                    ch = e
            else:
                ch = c
                self.pos += 1
            # range?
            if (self.pos + 1 < len(p) and p[self.pos] == 0x2D and p[self.pos + 1] != 0x5D):
                save = self.pos
                self.pos += 1
                d = p[self.pos]
                if d == 0x5B and self.pos + 1 < len(p) and p[self.pos + 1] in (0x3A, 0x2E, 0x3D):
                    self.pos = save
                    raise Unsupported("range to class")
                if d == 0x5C:
                    self.pos += 1
                    if self.pos >= len(p):
                        self.error("\\ at end of pattern", len(p))
                    e = p[self.pos]
                    self.pos += 1
                    if e in _PCRE_ESC_SETS:
                        raise Unsupported("range to escape class")
                    if e == 0x62:
                        d = 8
                    elif e in _PCRE_ESC_CHARS:
                        d = _PCRE_ESC_CHARS[e]
                    elif e == 0x78:
                        d = self.hex_escape()
                    elif (0x41 <= e <= 0x5A) or (0x61 <= e <= 0x7A) or 0x30 <= e <= 0x39:
                        raise Unsupported("escape in range")
                    else:
                        d = e
                else:
                    self.pos += 1
                if d < ch:
                    self.error("range out of order in character class", self.pos - 1)
                s.update(range(ch, d + 1))
                prev = None
                continue
            s.add(ch)
            prev = ch
        del prev, start
        res = frozenset(s)
        if self.flags["i"]:
            res = fold_set(res)
        return ALL - res if neg else res

    def group(self):
        p = self.p
        start = self.pos
        self.pos += 1
        if self.pos < len(p) and p[self.pos] == 0x2A:
            raise Unsupported("(*VERB)")
        capture = None
        kind = "group"
        if self.pos < len(p) and p[self.pos] == 0x3F:
            self.pos += 1
            if self.pos >= len(p):
                self.error("unrecognized character after (? or (?-", self.pos)
            c = p[self.pos]
            if c == 0x3A:
                self.pos += 1
            elif c == 0x23:  # comment
                end = p.find(b")", self.pos)
                if end < 0:
                    self.error("missing ) at end of (?# comment", len(p))
                self.pos = end + 1
                return None
            elif c == 0x3D or c == 0x21:
                self.pos += 1
                kind = ("look", False, c == 0x21)
            elif c == 0x3C and self.pos + 1 < len(p) and p[self.pos + 1] in (0x3D, 0x21):
                kind = ("look", True, p[self.pos + 1] == 0x21)
                self.pos += 2
            elif c == 0x3E:
                self.pos += 1
                kind = "atomic"
            elif c == 0x3C or c == 0x27 or (c == 0x50 and self.pos + 1 < len(p)
                                             and p[self.pos + 1] == 0x3C):
                if c == 0x50:
                    self.pos += 1
                close = 0x3E if p[self.pos] == 0x3C else 0x27
                end = p.find(bytes((close,)), self.pos + 1)
                name = p[self.pos + 1:end] if end > 0 else b""
                if end < 0 or not name or not all(ch in WORD for ch in name) \
                        or name[0] in _DIGIT:
                    raise Unsupported("group name")
                self.pos = end + 1
                self.ncap += 1
                capture = self.ncap
            elif c in b"imsxnU-^)" or c == 0x29:
                return self.options(start)
            else:
                raise Unsupported("(?" + chr(c))
        elif not self.flags["n"]:
            self.ncap += 1
            capture = self.ncap
        saved = dict(self.flags)
        inner = self.alternation()
        self.flags = saved
        if self.pos >= len(p) or p[self.pos] != 0x29:
            self.error("missing closing parenthesis", len(p))
        self.pos += 1
        if kind == "atomic":
            return ("atomic", inner)
        if isinstance(kind, tuple):
            return ("look", inner, kind[1], kind[2])
        return ("group", inner, capture)

    def options(self, start: int):
        p = self.p
        on = True
        newf = dict(self.flags)
        if p[self.pos] == 0x5E:
            for k in "imsnx":
                newf[k] = False
            self.pos += 1
        while self.pos < len(p):
            c = p[self.pos]
            if c == 0x2D:
                on = False
            elif chr(c) in "imsxnU":
                if c == 0x78 and self.pos + 1 < len(p) and p[self.pos + 1] == 0x78:
                    raise Unsupported("(?xx)")
                newf[chr(c)] = on
            elif c == 0x29:
                self.pos += 1
                self.flags.update(newf)   # rest of the enclosing group
                return None
            elif c == 0x3A:
                self.pos += 1
                saved = self.flags
                self.flags = newf
                inner = self.alternation()
                self.flags = saved
                if self.pos >= len(p) or p[self.pos] != 0x29:
                    self.error("missing closing parenthesis", len(p))
                self.pos += 1
                return ("group", inner, None)
            else:
                self.error("unrecognized character after (? or (?-", self.pos)
            self.pos += 1
        self.error("missing closing parenthesis", len(p))


def parse_pcre(pattern: bytes, *, caseless: bool = True, multiline: bool = False,
               dotall: bool = True, extended: bool = False, anchored: bool = False,
               dollar_endonly: bool = False, ungreedy: bool = False) -> tuple[tuple, int]:
    """Parse a PCRE2 pattern with Postfix's option bits: (tree, capture count).

    Raises Unsupported for constructs outside the tree (recursion,
    conditionals, \\K, \\p, verbs, ...) and PcreSyntaxError for errors."""
    parser = _PcreParser(pattern, caseless, multiline, dotall, extended, dollar_endonly,
                         ungreedy)
    tree = parser.parse()
    if anchored:
        tree = ("seq", [("anchor", "A"), ("group", tree, None)])
    return tree, parser.ncap


# ---------------------------------------------------------------- emitters

def _byte(c: int) -> str:
    if 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
        return chr(c)
    return f"\\x{c:02x}"


def _ranges(s: frozenset[int]) -> str:
    out = []
    items = sorted(s)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        a, b = items[i], items[j]
        if b == a:
            out.append(_byte(a))
        elif b == a + 1:
            out.append(_byte(a) + _byte(b))
        else:
            out.append(_byte(a) + "-" + _byte(b))
        i = j + 1
    return "".join(out)


def emit_set(s: frozenset[int]) -> str:
    if len(s) == 1:
        return _byte(next(iter(s)))
    if len(s) == 256:
        return "[\\x00-\\xff]"
    if not s:
        return "[^\\x00-\\xff]"
    if len(s) > 128:
        return "[^" + _ranges(ALL - s) + "]"
    return "[" + _ranges(s) + "]"


class Emitted:
    """An emitted pattern: text (bytes) plus what the caller must know."""

    __slots__ = ("pattern", "exact", "nl_unsafe")

    def __init__(self, pattern: bytes, exact: bool, nl_unsafe: bool):
        self.pattern = pattern
        self.exact = exact
        self.nl_unsafe = nl_unsafe


class _Emitter:
    def __init__(self, target: str):
        self.t = target
        self.exact = True
        self.nl_unsafe = False

    def approx(self, what: str) -> None:
        if self.t == "hs":
            self.exact = False
        else:
            raise Unsupported(what)

    def emit(self, node, at_start: bool = False, in_capture: bool = False) -> str:
        kind = node[0]
        t = self.t
        if kind == "set":
            return emit_set(node[1])
        if kind == "seq":
            items = node[1]
            out = []
            for i, it in enumerate(items):
                if it[0] == "anchor" and it[1] in ("wstart", "wend") and t == "re2":
                    j = i + 1 if it[1] == "wstart" else i - 1
                    if 0 <= j < len(items) and _word_edge(items[j]):
                        out.append("\\b")
                        continue
                out.append(self.emit(it, at_start and i == 0, in_capture))
            return "".join(out)
        if kind == "alt":
            return "(?:" + "|".join(self.emit(b, at_start, in_capture) for b in node[1]) + ")"
        if kind == "group":
            inner = self.emit(node[1], at_start, in_capture or node[2] is not None)
            if node[2] is None or t == "hs":
                return "(?:" + inner + ")"
            return "(" + inner + ")"
        if kind == "rep":
            _, sub, mn, mx, greedy, possessive = node
            body = self.emit(sub, False, in_capture)
            if sub[0] != "set" and not (sub[0] == "group" and body.startswith("(")
                                        and _balanced_group(body)):
                body = "(?:" + body + ")"
            if mx is None:
                q = "*" if mn == 0 else "+" if mn == 1 else f"{{{mn},}}"
            elif mn == 0 and mx == 1:
                q = "?"
            elif mn == mx:
                q = f"{{{mn}}}"
            else:
                q = f"{{{mn},{mx}}}"
            if t == "re2" and ((mx or mn) > 1000):
                raise Unsupported("repeat count above 1000")
            if possessive:
                if t == "hs":
                    self.exact = False
                    return body + q
                if t == "re2":
                    raise Unsupported("possessive")
                return body + q + "+"
            if not greedy and t != "hs":
                q += "?"
            return body + q
        if kind == "anchor":
            return self.anchor(node[1], at_start, in_capture)
        if kind == "look":
            _, sub, behind, negative = node
            if t == "hs":
                self.exact = False
                return ""
            if t == "re2":
                raise Unsupported("look-around")
            inner = self.emit(sub, False, in_capture)
            return "(?" + ("<" if behind else "") + ("!" if negative else "=") + inner + ")"
        if kind == "backref":
            _, n, caseless = node
            if t == "hs":
                self.exact = False
                return "[\\x00-\\xff]*"
            if t == "re2":
                raise Unsupported("back-reference")
            return ("(?i:\\%d)" if caseless else "(?:\\%d)") % n
        if kind == "atomic":
            if t == "hs":
                self.exact = False
                return "(?:" + self.emit(node[1], at_start, in_capture) + ")"
            if t == "re2":
                raise Unsupported("atomic group")
            return "(?>" + self.emit(node[1], False, in_capture) + ")"
        raise Unsupported(kind)  # pragma: no cover

    def anchor(self, k: str, at_start: bool, in_capture: bool) -> str:
        t = self.t
        if k == "A":
            if t == "hs" and not at_start:
                self.exact = False      # Hyperscan refuses embedded start anchors
                return ""
            return "\\A"
        if k == "z":
            return "\\Z" if t == "py" else "\\z"
        if k == "Z":
            if t == "hs":
                return "\\Z"
            if t == "py":
                return "(?=\\n?\\Z)"
            self.nl_unsafe = True
            return "\\z"
        if k == "bol":
            if t == "hs":
                if at_start:
                    return "(?:\\A|\\n)"
                self.exact = False
                return "(?:(?m:^)|\\z)"
            return "(?m:^)"
        if k == "bolp":
            if t == "py":
                return "(?:\\A|(?<=\\n)(?=[\\x00-\\xff]))"
            if t == "re2":
                self.nl_unsafe = True
            return "(?m:^)"
        if k == "eol":
            return "(?m:$)"
        if k == "b":
            return "\\b"
        if k == "B":
            # Python's \B never matches an empty subject; glibc's and PCRE's do
            return "(?:\\B|\\A\\Z)" if t == "py" else "\\B"
        if k in ("wstart", "wend"):
            if t == "hs":
                self.exact = False
                return "\\b"
            if t == "re2":
                raise Unsupported("word start/end")
            return "\\b(?=\\w)" if k == "wstart" else "\\b(?<=\\w)"
        raise Unsupported(k)  # pragma: no cover


def _balanced_group(text: str) -> bool:
    """True when text is one parenthesised group "( ... )" as a whole."""
    depth = 0
    i = 0
    in_class = False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if text[i + 1:i + 2] == "^":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
        i += 1
    return depth == 0


def _word_edge(node) -> bool:
    """True when node always starts/ends with a word character."""
    if node[0] == "set":
        return bool(node[1]) and node[1] <= WORD
    if node[0] == "rep":
        return node[2] >= 1 and _word_edge(node[1])
    return False


def emit(tree: tuple, target: str) -> Emitted:
    """Write the tree for target "hs", "re2" or "py".  Raises Unsupported
    (never for "hs", which approximates instead and sets exact=False)."""
    e = _Emitter(target)
    text = e.emit(tree, at_start=True)
    return Emitted(text.encode("latin-1"), e.exact, e.nl_unsafe)
