"""postier._native.spammeta runs only the metas whose inputs differ from a
message without values (the others take the value worked out once): one
program over many value sets gives the twin's results, key order included."""

from __future__ import annotations

import random

from postier._pure import spammeta as pure
from postier.content.spam import meta as M


def _program(impl, metas: list[tuple[str, str]]):
    return impl("spammeta").MetaProgram(*M.program([(n, M.parse(e)) for n, e in metas]))


def _twin(metas: list[tuple[str, str]]):
    return pure.MetaProgram(*M.program([(n, M.parse(e)) for n, e in metas]))


def _both(impl, metas, value_sets):
    prog, ref = _program(impl, metas), _twin(metas)
    for values in value_sets:
        got, want = dict(values), dict(values)
        prog.run(got)
        ref.run(want)
        assert list(got.items()) == list(want.items()), (metas, values)
        assert [type(x) for x in got.values()] == [type(x) for x in want.values()]
    return got


METAS = [
    ("__NOT", "!A"),                    # true on a message without values
    ("__DIV", "B / C"),                 # an error without values
    ("__SUM", "A + B + 0.5"),           # 0.5 without values
    ("M1", "__NOT && D"),
    ("M2", "!__NOT && __SUM > 1"),
    ("M3", "__DIV || !M1"),
    ("M4", "E - 3"),                    # negative without values: 1
]


def test_values_true_without_inputs_turn_false_when_an_input_is_set(impl):
    sets = [{}, {"A": 1}, {"A": 1, "B": 2}, {}, {"D": 1}, {"B": 1, "C": 4}, {"E": 5},
            {"M1": 3}, {"__NOT": 2, "A": 1}, {"A": 0}, {"A": 1.5, "D": 0.25}, {}]
    last = _both(impl, METAS, sets)
    assert last == {"__NOT": 1, "__SUM": 0.5, "M3": 1, "M4": 1}


def test_a_meta_set_before_keeps_its_value_when_it_does_not_hit(impl):
    got = _both(impl, METAS, [{"A": 1, "__NOT": 4}])
    assert got["__NOT"] == 4 and "M1" not in got


def test_random_value_sets_through_one_program(impl):
    rnd = random.Random(5)
    names = "ABCDE"
    for _ in range(40):
        metas = []
        for i in range(8):
            a, b = rnd.choice(names), rnd.choice(names)
            prev = f"X{rnd.randrange(i)}" if i else "A"
            op = rnd.choice(["&&", "||", "+", "-", "/", "<", "=="])
            neg = rnd.choice(["", "!"])
            metas.append((f"X{i}", f"{neg}({a} {op} {prev}) || ({b} && !{prev})"))
        sets = []
        for _ in range(12):
            v = {}
            for n in names:
                if rnd.random() < 0.3:
                    v[n] = rnd.choice([1, 2, 0.5])
            if rnd.random() < 0.1:
                v[f"X{rnd.randrange(8)}"] = 2
            sets.append(v)
        _both(impl, metas, sets)


def test_conjunctions_skipped_on_a_zero_rule_agree_with_the_twin(impl):
    # a meta `... && G && ...` is skipped while its rule G is unset (0
    # without values): the same values, errors and preset values included
    rnd = random.Random(17)
    names = "ABCDEF"
    parts = ["{a}", "!{a}", "{a} / {b}", "({a} || {b})", "{a} + 0.5", "{p}", "!{p}", "({a} - {b})"]
    for _ in range(60):
        metas = []
        for i in range(10):
            prev = f"Y{rnd.randrange(i)}" if i else "!A"
            terms = [rnd.choice(parts).format(a=rnd.choice(names), b=rnd.choice(names), p=prev)
                     for _ in range(rnd.randint(1, 4))]
            expr = terms[0]
            for t in terms[1:]:         # left- and right-nested && chains
                expr = f"({expr}) && {t}" if rnd.random() < 0.5 else f"{t} && ({expr})"
            metas.append((f"Y{i}", expr))
        sets = [{}]
        for _ in range(15):
            v = {n: rnd.choice([1, 3, 0.5, 0, -1]) for n in names if rnd.random() < 0.35}
            if rnd.random() < 0.15:
                v[f"Y{rnd.randrange(10)}"] = rnd.choice([2, 0.25])
            sets.append(v)
        _both(impl, metas, sets)


def test_conjunctions_of_deep_operands(impl):
    deep = "+".join(["B"] * 150)            # near meta.MAX_DEPTH
    metas = [("D1", f"A && ({deep})"), ("D2", f"({deep}) && A && C / B"), ("D3", "D1 || D2")]
    _both(impl, metas, [{}, {"B": 1}, {"A": 1}, {"A": 1, "B": 2}, {"A": 1, "B": 1, "C": 3},
                        {"D1": 2}, {"A": 1, "D2": 5}])
