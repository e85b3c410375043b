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
