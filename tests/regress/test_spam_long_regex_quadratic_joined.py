"""A body rule whose regex is a long literal (900 kB in the report) held
`postier rules check` and every cold start for about an hour: perlre._joined
summed the least lengths of all the items after each item of a sequence
(sum(mins[i + 1:]) per item: quadratic in the regex's length; 90 kB took
30 s).  It now sums them once from the end.  Checked without a clock: the
number of node visits stays linear, and the joined form is unchanged."""

from __future__ import annotations

from postier.content.spam import perlre


def _counting(monkeypatch) -> list[int]:
    """Count the items perlre's sums (builtins.sum, looked up in the module)
    and least-length walks go through."""
    calls = [0]
    orig = perlre._min_len

    def counted(node):
        calls[0] += 1
        return orig(node)

    def summed(items, start=0):
        total = start
        for x in items:
            calls[0] += 1
            total += x
        return total
    monkeypatch.setattr(perlre, "_min_len", counted)
    monkeypatch.setattr(perlre, "sum", summed, raising=False)
    return calls


def test_joined_form_of_a_long_sequence_is_linear(monkeypatch):
    n = 20000
    tree = perlre._parse("abc" * (n // 3), "")
    assert tree is not None
    calls = _counting(monkeypatch)
    changed: list = []
    out = perlre._joined(tree, True, True, changed)
    assert calls[0] <= 4 * n, calls[0]         # quadratic was ~n*n/2
    assert out is not None and not changed


def test_joined_form_keeps_the_least_lengths_after_each_item():
    # ^ at the start with at least one byte after it becomes "SEP or newline";
    # the rest_min each item sees is the least length of what follows it
    tree = perlre._parse("^ab(?:cd)?e$", "m")
    out = perlre._joined(tree, True, True, [])
    first = out[1][0]
    assert first == ("set", frozenset({perlre.SEP, 0x0A}))
    assert out[1][-1] == ("set", frozenset({perlre.SEP, 0x0A}))
