"""The Hyperscan + RE2/re engine (postier.maps.patterns, .resyntax):
differential tests against the reference libraries Postfix uses (glibc
regex, libpcre2), Hyperscan's no-false-negative guarantee, the PatternSet
API and the on-disk database cache."""

from __future__ import annotations

import random

import pytest

from postier.maps import patterns, reflib, resyntax

POSIX_TOKENS = ["a", "b", "A", ".", "*", "+", "?", "|", "(", ")", "[", "]", "^", "$", "{", "}",
                "1", ",", "-", "\\", "\\w", "\\W", "\\s", "\\b", "\\B", "\\<", "\\>", "\\(",
                "\\)", "\\{", "\\}", "\\|", "\\.", "[[:upper:]]", "[^a]", "[a-c]", "\n", " ",
                "_", "\\1"]
PCRE_TOKENS = ["a", "b", "A", ".", "*", "+", "?", "*?", "+?", "|", "(", ")", "(?:", "(?i)",
               "(?-i)", "[", "]", "^", "$", "{2}", "{1,3}", "\\d", "\\w", "\\W", "\\s", "\\S",
               "\\b", "\\B", "\\A", "\\z", "\\Z", "[^a]", "[a-c]", "[[:alpha:]]", "\n", " ",
                "_", "\\n", "\\x41", "\\Qa.\\E", "(?=a)", "(?!b)", "(?<=a)", "\\1", "(?>a+)",
                "a++", "(?<n>b)", "\\h", "\\v"]
DATA = ["a", "b", "A", "B", "\n", " ", "_", ".", "1", "(", "c", "é"]
POSIX_FLAGS = [reflib.REG_EXTENDED | reflib.REG_ICASE, reflib.REG_EXTENDED, reflib.REG_ICASE,
               reflib.REG_EXTENDED | reflib.REG_NEWLINE | reflib.REG_ICASE, reflib.REG_NEWLINE]

needs_posix = pytest.mark.skipif(not reflib.posix_available(), reason="no glibc regex")
needs_pcre2 = pytest.mark.skipif(not reflib.pcre2_available(), reason="no libpcre2")


def subjects(rnd: random.Random, n: int = 25) -> list[bytes]:
    return ["".join(rnd.choice(DATA) for _ in range(rnd.randint(0, 6))).encode()
            for _ in range(n)]


def check_engines(p: patterns.Pattern, ref_search, data: list[bytes], what) -> None:
    """RE2/re confirmation equals the reference; Hyperscan never misses."""
    ps = patterns.PatternSet([p], engine="hyperscan")
    for d in data:
        want = ref_search(d)
        assert p.search(d) == want, (what, d)
        hits = ps.candidates(d)
        if want:
            assert 0 in hits, ("hyperscan missed", what, d)
        if 0 in ps.exact:
            assert (0 in hits) == want, ("inexact hyperscan", what, d)


@needs_posix
@pytest.mark.parametrize("seed", range(4))
def test_posix_translation_agrees_with_glibc(seed, monkeypatch):
    rnd = random.Random(seed)
    compared = 0
    for _ in range(300):
        pat = "".join(rnd.choice(POSIX_TOKENS) for _ in range(rnd.randint(1, 7))).encode()
        fl = rnd.choice(POSIX_FLAGS)
        kw = dict(extended=bool(fl & reflib.REG_EXTENDED), icase=bool(fl & reflib.REG_ICASE),
                  newline=bool(fl & reflib.REG_NEWLINE))
        try:
            ref = reflib.PosixRegex(pat, fl)
        except reflib.RegexCompileError as e:
            with pytest.raises(patterns.CompileError, match=str(e)[:10]):
                patterns.posix_pattern(pat, **kw)
            continue
        p = patterns.posix_pattern(pat, **kw)
        assert p.ngroups == ref.nsub
        # the same answers without glibc in the loop (pure translation)
        monkeypatch.setenv("POSTIER_NO_REFLIB", "1")
        try:
            q = patterns.posix_pattern(pat, **kw)
        except patterns.CompileError:
            q = None
        monkeypatch.delenv("POSTIER_NO_REFLIB")
        data = subjects(rnd)
        check_engines(p, lambda d, ref=ref: ref.search(d, 0) is not None, data, (pat, fl))
        if q is not None and not p._ref_confirms:
            check_engines(q, lambda d, ref=ref: ref.search(d, 0) is not None, data, (pat, fl, "pure"))
            compared += 1
    assert compared > 100


@needs_pcre2
@pytest.mark.parametrize("seed", range(4))
def test_pcre_translation_agrees_with_libpcre2(seed, monkeypatch):
    rnd = random.Random(100 + seed)
    compared = 0
    for _ in range(300):
        pat = "".join(rnd.choice(PCRE_TOKENS) for _ in range(rnd.randint(1, 6))).encode()
        opts = dict(caseless=rnd.random() < 0.7, multiline=rnd.random() < 0.3,
                    dotall=rnd.random() < 0.7, dollar_endonly=rnd.random() < 0.2,
                    ungreedy=rnd.random() < 0.2, anchored=rnd.random() < 0.1)
        bits = (reflib.PCRE2_CASELESS if opts["caseless"] else 0) \
            | (reflib.PCRE2_MULTILINE if opts["multiline"] else 0) \
            | (reflib.PCRE2_DOTALL if opts["dotall"] else 0) \
            | (reflib.PCRE2_DOLLAR_ENDONLY if opts["dollar_endonly"] else 0) \
            | (reflib.PCRE2_UNGREEDY if opts["ungreedy"] else 0) \
            | (reflib.PCRE2_ANCHORED if opts["anchored"] else 0)
        try:
            ref = reflib.Pcre2Regex(pat, bits)
        except reflib.RegexCompileError:
            with pytest.raises(patterns.CompileError, match="error in regex at offset"):
                patterns.pcre_pattern(pat, **opts)
            continue
        p = patterns.pcre_pattern(pat, **opts)
        assert p.ngroups == ref.capture_count
        monkeypatch.setenv("POSTIER_NO_REFLIB", "1")
        try:
            q = patterns.pcre_pattern(pat, **opts)
        except patterns.CompileError:
            q = None
        monkeypatch.delenv("POSTIER_NO_REFLIB")
        data = subjects(rnd)
        check_engines(p, lambda d, ref=ref: ref.search(d) is not None, data, (pat, opts))
        if q is not None and not p._ref_confirms:
            check_engines(q, lambda d, ref=ref: ref.search(d) is not None, data, (pat, opts, "pure"))
            for d in data:
                want = ref.search(d)
                if want is not None:
                    assert q.spans(d, q.ngroups + 1) == want, (pat, opts, d)
            compared += 1
    assert compared > 80


def test_pattern_set_first_match_and_candidates():
    pats = [patterns.pcre_pattern(rb"viagra"), patterns.posix_pattern(rb"^From:.*@example\.com$"),
            patterns.pcre_pattern(rb"(?<=x)y"), patterns.posix_pattern(rb"(a)(b)?(c)")]
    for engine in ("hyperscan", "re2"):
        ps = patterns.PatternSet(pats, engine=engine)
        assert ps.first_match(b"Subject: cheap VIAGRA") == (0, [(15, 21)])
        assert ps.first_match(b"from: joe@EXAMPLE.com") == (1, [(0, 21)])
        assert ps.first_match(b"xy") == (2, [(1, 2)])
        assert ps.first_match(b"zac") == (3, [(1, 3), (1, 2), (-1, -1), (2, 3)])
        assert ps.first_match(b"nothing") is None
        m = ps.matcher(b"xy viagra")
        assert m.match(0) and m.match(2) and not m.match(1)
    ps = patterns.PatternSet(pats, engine="hyperscan")
    assert ps.candidates(b"plain text") <= ps.always | {2}
    assert 2 not in ps.exact          # look-behind: prefilter only, confirmed by re


def test_hyperscan_refusals_fall_back():
    # an embedded start anchor, a pattern that can never match, a plain one
    pats = [patterns.posix_pattern(rb"a\`b"), patterns.pcre_pattern(rb"[^\x00-\xff]"),
            patterns.pcre_pattern(rb"plain")]
    ps = patterns.PatternSet(pats, engine="hyperscan")
    assert ps.first_match(b"a plain b") == (2, [(2, 7)])
    assert ps.matcher(b"ab").match(0) is False


def test_compile_errors_use_library_wording():
    with pytest.raises(patterns.CompileError, match=r"^Unmatched \( or \\\($"):
        patterns.posix_pattern(b"(")
    with pytest.raises(patterns.CompileError,
                       match="^error in regex at offset 1: missing closing parenthesis$"):
        patterns.pcre_pattern(b"(")


def test_parsers_report_errors_without_reference_library():
    with pytest.raises(resyntax.PosixSyntaxError, match="Invalid preceding regular expression"):
        resyntax.parse_posix(b"*a")
    with pytest.raises(resyntax.PcreSyntaxError) as e:
        resyntax.parse_pcre(b"a(b")
    assert (e.value.message, e.value.offset) == ("missing closing parenthesis", 3)


def test_database_cache_round_trip(tmp_path):
    pats = [patterns.pcre_pattern(b"k%d$" % i) for i in range(20)]
    ps1 = patterns.PatternSet(pats, engine="hyperscan", cache_dir=str(tmp_path))
    ps2 = patterns.PatternSet(pats, engine="hyperscan", cache_dir=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    assert ps1.candidates(b"xk13") == ps2.candidates(b"xk13") == {13}
    assert ps2.exact == ps1.exact


@needs_pcre2
@pytest.mark.parametrize("limit", [0, 2])
def test_pcre2_count_is_perl_while_g(limit):
    """Pcre2Regex.count: non-overlapping matches as Perl's while //g counts
    them (an empty match moves on one byte; a multi-line ^ sees the byte
    before the search start), capped at limit."""
    import re
    cases = [(rb"a+", b"aa b aaa a", re.compile(rb"a+")),
             (rb"x*", b"axxb", re.compile(rb"x*")),
             (rb"^\w", b"ab\ncd\n\nef", re.compile(rb"^\w", re.M))]
    for pat, data, py in cases:
        opts = 0x400 if py.flags & re.M else 0      # PCRE2_MULTILINE
        want = len(py.findall(data))
        got = reflib.Pcre2Regex(pat, opts).count(data, limit)
        assert got == (min(want, limit) if limit else want), (pat, data)


@needs_pcre2
def test_pcre2_count_reports_a_match_limit():
    # catastrophic backtracking past libpcre2's default match limit: an
    # error, not a made-up count
    ref = reflib.Pcre2Regex(rb"(a+)+$", 0)
    with pytest.raises(reflib.RegexExecError):
        ref.count(b"a" * 40 + b"b")
