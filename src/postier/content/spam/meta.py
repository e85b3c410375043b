"""SpamAssassin meta rule expressions: Perl's operators, evaluated in Python.

A meta rule is an expression over rule names (the value of a rule that did
not hit is 0; of a hit rule 1, or its number of hits with `tflags
multiple`, or the value of its expression for a meta): `!`, `&&`, `||`,
`+ - * /`, `< > <= >= == !=`, `^` (bitwise xor), `?:`, parentheses, numbers
and `rules_matching(GLOB)`.  The expression is parsed with Perl's operator
precedence and written out as a fully parenthesised Python expression with
Perl's value semantics (`&&`/`||` return an operand, `!` and comparisons
return 1 or 0).

    tree = parse("__A && !(__B || __C > 2)")
    names(tree)            # {"__A", "__B", "__C"}
    python(tree, "v")      # "((v['__A']) and (0 if ((v['__B']) or ...) else 1))"
    program([("M", tree)]) # (slot names, postfix code, constants): all the metas of a
                           # rule set as one program for postier._native.spammeta

Parameters read: none.
"""

from __future__ import annotations

from postier.content.spam import bre as re

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([A-Za-z_][A-Za-z_0-9]*)|(\|\||&&|>=|<=|==|!=|[-+*/()!<>^?:]))")
_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]{0,127}$")


class MetaError(Exception):
    """The expression cannot be parsed or would divide by zero."""


# Deeper trees are refused: each level is one pair of parentheses in the
# Python the expression is written out as (evaluate, the twin of spammeta),
# whose parser gives up near 200.  SpamAssassin 4.0.1's deepest meta (a sum
# of 120 rules, __MONEY_FRAUD_8) has 121 levels.
MAX_DEPTH = 160
_TOO_DEEP = f"expression nested too deeply (more than {MAX_DEPTH} levels)"


def tokenize(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    n = len(expr)
    while pos < n:
        if expr[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise MetaError(f"syntax error near \"{expr[pos:pos + 10]}\"")
        if m.group(1) is not None:
            out.append(("num", m.group(1)))
        elif m.group(2) is not None:
            out.append(("name", m.group(2)))
        else:
            out.append(("op", m.group(3)))
        pos = m.end()
    return out


# binding powers (Perl: ?: < || < && < ^ < == != < relational < + - < * / < ! unary)
_BINARY = {"||": 2, "&&": 3, "^": 4, "==": 5, "!=": 5, "<": 6, ">": 6, "<=": 6, ">=": 6,
           "+": 7, "-": 7, "*": 8, "/": 8}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.t = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise MetaError("syntax error at end of expression")
        self.i += 1
        return tok

    def expr(self, minbp: int = 0):
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op":
                break
            op = tok[1]
            if op == "?" and minbp <= 1:
                self.i += 1
                a = self.expr(0)
                colon = self.take()
                if colon != ("op", ":"):
                    raise MetaError("syntax error: missing ':'")
                b = self.expr(1)
                left = ("?:", left, a, b)
                continue
            bp = _BINARY.get(op)
            if bp is None or bp < minbp:
                break
            self.i += 1
            right = self.expr(bp + 1)
            left = (op, left, right)
        return left

    def unary(self):
        tok = self.take()
        kind, val = tok
        if kind == "num":
            return ("num", float(val) if "." in val else int(val))
        if kind == "name":
            if self.peek() == ("op", "("):
                raise MetaError(f"function call {val}() is not allowed")
            return ("name", val)
        if val == "(":
            if self.peek() == ("op", ")"):
                self.i += 1
                return ("num", 0)
            e = self.expr(0)
            if self.take() != ("op", ")"):
                raise MetaError("syntax error: missing ')'")
            return e
        if val == "!":
            return ("!", self.unary())
        if val == "-":
            return ("neg", self.unary())
        if val == "+":
            return self.unary()
        raise MetaError(f"syntax error near \"{val}\"")


def parse(expr: str):
    """The expression tree (tuples); raises MetaError."""
    toks = tokenize(expr)
    if not toks:
        raise MetaError("empty expression")
    p = _Parser(toks)
    try:
        tree = p.expr(0)
    except RecursionError:
        raise MetaError(_TOO_DEEP) from None
    if p.i != len(toks):
        raise MetaError(f"syntax error near \"{toks[p.i][1]}\"")
    if depth(tree) > MAX_DEPTH:
        raise MetaError(_TOO_DEEP)
    return tree


def depth(tree) -> int:
    """Levels of the tree (a name or number: 1), without recursion."""
    best = 0
    todo = [(tree, 1)]
    while todo:
        t, d = todo.pop()
        best = max(best, d)
        if t[0] not in ("name", "num"):
            todo.extend((c, d + 1) for c in t[1:])
    return best


def names(tree) -> set[str]:
    out: set[str] = set()

    def walk(t):
        if t[0] == "name":
            out.add(t[1])
        elif t[0] != "num":
            for c in t[1:]:
                walk(c)
    walk(tree)
    return out


def python(tree, ref) -> str:
    """Python source for the tree; `ref(name)` gives the source of a rule's value."""
    k = tree[0]
    if k == "num":
        return repr(tree[1])
    if k == "name":
        return ref(tree[1])
    if k == "!":
        return f"(0 if {python(tree[1], ref)} else 1)"
    if k == "neg":
        return f"(-{python(tree[1], ref)})"
    if k == "?:":
        return f"({python(tree[2], ref)} if {python(tree[1], ref)} else {python(tree[3], ref)})"
    a, b = python(tree[1], ref), python(tree[2], ref)
    if k == "&&":
        return f"({a} and {b})"
    if k == "||":
        return f"({a} or {b})"
    if k == "^":
        return f"(int({a}) ^ int({b}))"
    if k == "/":
        return f"_div({a}, {b})"
    if k in ("<", ">", "<=", ">=", "==", "!="):
        return f"(1 if {a} {k} {b} else 0)"
    return f"({a} {k} {b})"


def _div(a, b):
    if not b:
        raise ZeroDivisionError
    return a / b


def evaluate(tree, values: dict[str, float]):
    """Evaluate with a dict of rule values (missing = 0)."""
    code = python(tree, lambda n: f"v.get({n!r}, 0)")
    return eval(code, {"__builtins__": {}, "_div": _div, "int": int}, {"v": values})  # noqa: S307


def check_expression(expr: str) -> None:
    """Parser::is_meta_valid: parse, then evaluate with every rule at 0 (a
    division by zero there makes SpamAssassin refuse the rule)."""
    tree = parse(expr)
    try:
        evaluate(tree, {})
    except ZeroDivisionError:
        raise MetaError("division by zero possible") from None


def expand_rules_matching(expr: str, rule_names, self_name: str) -> str:
    """Replace rules_matching(GLOB) by (A+B+...) over the known rule names."""
    from postier.content.spam.conf import META_RULES_MATCHING_RE

    def repl(m: re.Match) -> str:
        glob = m.group(1)
        rx = "^" + glob.replace("?", ".").replace("*", ".*?") + "$"
        found = sorted(n for n in rule_names if n != self_name and re.match(rx, n))
        return " (" + ("+".join(found) if found else "0") + ") "
    return META_RULES_MATCHING_RE.sub(repl, expr)


# -- meta rules as one program (postier._native.spammeta / postier._pure.spammeta)

# opcodes of the postfix code: SLOT and CONST take one operand (a slot or
# constant index), END one (the slot the meta's value goes to)
SLOT, CONST, NOT, NEG, AND, OR, COND, ADD, SUB, MUL, DIV, XOR, LT, GT, LE, GE, EQ, NE, END = range(19)
_BINOP = {"&&": AND, "||": OR, "+": ADD, "-": SUB, "*": MUL, "/": DIV, "^": XOR,
          "<": LT, ">": GT, "<=": LE, ">=": GE, "==": EQ, "!=": NE}


def postfix(tree, slot, consts: list, code: list) -> None:
    """Append the tree's postfix code (operands before their operator) to
    `code`; `slot(name)` gives a rule's slot, numbers go to `consts`."""
    k = tree[0]
    if k == "num":
        code.append(CONST)
        code.append(len(consts))
        consts.append(tree[1])
    elif k == "name":
        code.append(SLOT)
        code.append(slot(tree[1]))
    elif k == "!":
        postfix(tree[1], slot, consts, code)
        code.append(NOT)
    elif k == "neg":
        postfix(tree[1], slot, consts, code)
        code.append(NEG)
    elif k == "?:":
        for t in tree[1:]:
            postfix(t, slot, consts, code)
        code.append(COND)
    else:
        postfix(tree[1], slot, consts, code)
        postfix(tree[2], slot, consts, code)
        code.append(_BINOP[k])


def program(trees: list[tuple[str, object]]) -> tuple[list[str], list[int], list]:
    """(slot names, code, constants) of meta rules (name, tree) in the order
    they run: each rule's postfix code, then END and its slot."""
    slots: dict[str, int] = {}

    def slot(n: str) -> int:
        i = slots.get(n)
        if i is None:
            i = slots[n] = len(slots)
        return i
    code: list[int] = []
    consts: list = []
    for name, tree in trees:
        postfix(tree, slot, consts, code)
        code.append(END)
        code.append(slot(name))
    return list(slots), code, consts
