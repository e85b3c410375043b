"""Pure-Python twin of postier._native.spammeta: SpamAssassin meta rules run
as one program over a message's rule values.

    prog = MetaProgram(names, code, consts)     # from postier.content.spam.meta.program
    prog.run(values)                            # sets values[META] for every meta that hits

`names` are the slots (every rule a meta reads, and the metas), `code` the
metas' postfix code in the order they run (postier.content.spam.meta:
SLOT i and CONST k push a rule's value -- values.get(name, 0) -- or a
constant; operators pop their operands; END i ends a meta whose slot is i),
`consts` the numbers.  Perl's semantics as postier.content.spam.meta.python
writes them: `&&`/`||` give an operand, `!` and comparisons 1 or 0, `^`
works on integers, a division by zero makes the meta's value 0; a meta
whose value is true gets it (1 when it is negative) in `values` before the
metas after it read it.

This twin writes the program out as one Python function (the expressions of
meta.python); the native module interprets the code in C with the same
results, value types included (int or float).  Reads no main.cf parameters.
"""

from __future__ import annotations

(SLOT, CONST, NOT, NEG, AND, OR, COND, ADD, SUB, MUL, DIV, XOR, LT, GT, LE, GE, EQ, NE,
 END) = range(19)
_ARITH = {ADD: "+", SUB: "-", MUL: "*"}
_CMP = {LT: "<", GT: ">", LE: "<=", GE: ">=", EQ: "==", NE: "!="}


def _div(a, b):
    if not b:
        raise ZeroDivisionError
    return a / b


def source(names: list[str], code: list[int], consts: list) -> str:
    """The Python source of run_metas(v) for the program."""
    lines = ["def run_metas(v):", "    g = v.get"]
    stack: list[str] = []
    i, n = 0, len(code)
    while i < n:
        op = code[i]
        i += 1
        if op == SLOT:
            stack.append(f"g({names[code[i]]!r}, 0)")
            i += 1
        elif op == CONST:
            stack.append(repr(consts[code[i]]))
            i += 1
        elif op == NOT:
            stack.append(f"(0 if {stack.pop()} else 1)")
        elif op == NEG:
            stack.append(f"(-{stack.pop()})")
        elif op == COND:
            c = stack.pop()
            b = stack.pop()
            a = stack.pop()
            stack.append(f"({b} if {a} else {c})")
        elif op == END:
            expr = stack.pop()
            lines += ["    try:", f"        x = {expr}", "    except ZeroDivisionError:",
                      "        x = 0", "    if x:", f"        v[{names[code[i]]!r}] = x if x > 0 else 1"]
            i += 1
        else:
            b = stack.pop()
            a = stack.pop()
            if op == AND:
                stack.append(f"({a} and {b})")
            elif op == OR:
                stack.append(f"({a} or {b})")
            elif op == DIV:
                stack.append(f"_div({a}, {b})")
            elif op == XOR:
                stack.append(f"(int({a}) ^ int({b}))")
            elif op in _CMP:
                stack.append(f"(1 if {a} {_CMP[op]} {b} else 0)")
            else:
                stack.append(f"({a} {_ARITH[op]} {b})")
    if len(lines) == 2:
        lines.append("    return")
    return "\n".join(lines)


class MetaProgram:
    """The metas of a rule set, ready to run (see the module docstring)."""

    def __init__(self, names: list[str], code: list[int], consts: list):
        ns = {"_div": _div, "int": int, "ZeroDivisionError": ZeroDivisionError}
        exec(compile(source(names, code, consts), "<spam-metas>", "exec"), ns)  # noqa: S102 - generated from parsed trees
        self.run = ns["run_metas"]
