"""engine._header_count (a `multiple` header rule's count): its RE2
superset (rr.pre) is dropped after PRE_TRIAL values when it hardly ever
rules a value out, kept when it does; the counts never change."""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

RULES = r"""
header H_RAND   ALL =~ /^(?!X-Skip)[a-z]+-[a-z]+:\s+\d+$/mi
tflags H_RAND   multiple maxhits=4
score  H_RAND   1
"""

# (value, count): the first passes the superset but not the pattern (the
# look-ahead), the second matches twice, the third fails the superset
PASSING = (b"X-Skip: 12\nSubject: x\n", 0)
MATCHING = (b"X-Skip-Me: 12\nX-Foo: 3\nA-B: 1\n", 2)
FAILING = (b"Subject: x\nFrom: a@b.c\n", 0)


def _rule():
    sc = SpamScanner(rules=C.parse_text(RULES, "rules.cf"), cache_dir=None)
    rr = next(r for r in sc.compiled.area_rules["header"] if r.name == "H_RAND")
    assert rr.multiple and rr.pre is not None
    return rr


@pytest.mark.parametrize("values,dropped", [
    ([PASSING, MATCHING], True),            # the superset passes every value
    ([FAILING, FAILING, MATCHING], False),  # it rules most values out: kept
])
def test_superset_dropped_only_when_it_rarely_helps(values, dropped):
    rr = _rule()
    pre = rr.pre
    for k in range(E.PRE_TRIAL * 3):
        val, want = values[k % len(values)]
        assert E._header_count(rr, val) == want
    assert (rr.pre is None) == dropped
    if dropped:
        # same counts without it, on every kind of value
        for val, want in (PASSING, MATCHING, FAILING):
            assert E._header_count(rr, val) == want
    else:
        assert rr.pre is pre
