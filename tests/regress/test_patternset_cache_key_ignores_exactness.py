"""Regression: PatternSet's Hyperscan cache key covered each expression and
its flags but not whether the expression is exact, nor the patterns without
one.  Two tables whose patterns translate to the same Hyperscan expressions
(`/foo/` and `/foo(?=bar)/` both give [Ff][Oo][Oo]) shared a cache file, and
the second took the first's "exact" answers: a Hyperscan report of
`foo(?=bar)` became final, so it matched "foox".  Likewise a set with one
more pattern that Hyperscan cannot take (an always candidate) read a file
that did not list it, and that pattern was never checked."""

from __future__ import annotations

from postier.maps import patterns as P


def test_exactness_is_part_of_the_cache_key(tmp_path):
    exact, lookahead = P.pcre_pattern(rb"foo"), P.pcre_pattern(rb"foo(?=bar)")
    assert exact.hs_expr == lookahead.hs_expr and exact.hs_exact and not lookahead.hs_exact
    first = P.PatternSet([exact], engine="hyperscan", cache_dir=str(tmp_path))
    assert first.matcher(b"foox").match(0)
    second = P.PatternSet([lookahead], engine="hyperscan", cache_dir=str(tmp_path))
    assert second.exact == frozenset()
    assert not second.matcher(b"foox").match(0)
    assert second.matcher(b"foobar").match(0)
    # each table still finds its own cache file
    again = P.PatternSet([P.pcre_pattern(rb"foo(?=bar)")], engine="hyperscan",
                         cache_dir=str(tmp_path))
    assert again.exact == frozenset() and len(list(tmp_path.glob("hs-*.db"))) == 2


def test_patterns_without_hyperscan_form_are_part_of_the_cache_key(tmp_path):
    foo = P.pcre_pattern(rb"foo")
    none = P.pcre_pattern(rb"bar")
    none.hs_expr = None                 # one Hyperscan cannot take: an always candidate
    P.PatternSet([foo], engine="hyperscan", cache_dir=str(tmp_path))
    both = P.PatternSet([P.pcre_pattern(rb"foo"), none], engine="hyperscan",
                        cache_dir=str(tmp_path))
    assert both.always == frozenset({1})
    assert both.matcher(b"a bar").match(1)
