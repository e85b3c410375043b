"""References the eval tests compare postier's eval code with: loops as
SpamAssassin writes them, and the plain function call of each eval rule."""

from __future__ import annotations

import re

from postier.content.spam import evals as E

JIS = re.compile(rb"\x1b\$B.*\x1b\(B", re.S)


def uppercase_reference(lines):
    """check_for_uppercase's per-line loop as MIMEEval writes it."""
    ln = lower = upper = 0
    for line in lines:
        if not re.search(rb"\S\s+\S", line):
            continue
        if re.match(rb"^(?:[A-Za-z0-9+/=]{60,76} ){2}", line):
            continue
        if b"\x1b" in line:
            line = JIS.sub(b"", line)
        ln += len(line)
        lower += len(re.findall(rb"[a-z0-9]", line))
        upper += len(re.findall(rb"[A-Z]", line))
    return ln, lower, upper


def same_as_plain_calls(sc, messages) -> set[str]:
    """Each eval rule's hit in a run of SpamScanner sc equals its plain
    function call's answer on that run (a failing call is "no hit"); the
    names that hit."""
    hit: set[str] = set()
    for msg in messages:
        run = sc.run(msg)
        for _k, r, _f in sc.compiled.evals:
            try:
                want = E.FUNCTIONS[r.function](E.EvalContext(run), r, *r.args)
            except Exception:  # noqa: BLE001 - a failing eval is "no hit"
                want = 0
            assert (r.name in run.values) == bool(want), (r.name, msg)
        hit |= set(run.values)
    return hit
