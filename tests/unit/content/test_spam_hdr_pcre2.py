"""Header rules confirmed by libpcre2 directly (spamhdr's 7th info item),
and the reflib pieces it uses (Pcre2Regex.matches / addresses,
pcre2_match_address)."""

from __future__ import annotations

import pytest

from postier.maps import reflib

pytestmark = pytest.mark.skipif(not reflib.pcre2_available(), reason="libpcre2-8 not available")


class _Run:
    def __init__(self):
        self.values: dict = {}

    def _capture(self, rr, val):
        raise AssertionError("no capture rules here")


class _Rule:
    """A rule answering through its Pcre2Regex (what RRule.search does for
    a pattern libpcre2 confirms), counting its calls."""

    pre = None          # no RE2 superset: the compiled walk calls libpcre2 itself

    def __init__(self, name: str, ref: reflib.Pcre2Regex):
        self.name, self.ref, self.calls = name, ref, 0

    def search(self, val: bytes) -> bool:
        self.calls += 1
        return self.ref.search(val) is not None


def _fast(ref: reflib.Pcre2Regex, nl_only: bool = False) -> tuple:
    return (reflib.pcre2_match_address(), *ref.addresses, ref, nl_only)


def test_matches_and_addresses_agree_with_search():
    ref = reflib.Pcre2Regex(rb"(a)(b)?c\1", reflib.PCRE2_CASELESS)
    for data in (b"xAcA", b"abca", b"ac", b"", b"a\x00ca", b"zzz" * 1000 + b"aca"):
        assert ref.matches(data) == (ref.search(data) is not None), data
    assert ref.search(b"xacA") == [(1, 4), (1, 2), (-1, -1)]
    assert ref.search(b"abca") == [(0, 4), (0, 1), (1, 2)]
    code, md = ref.addresses
    assert code and md and code != md
    assert reflib.pcre2_match_address() > 0


def test_header_rules_call_pcre2_directly(impl):
    hdr = impl("spamhdr")
    eng = impl("spameng")
    # back-references: what RE2 cannot run and libpcre2 confirms
    refs = [reflib.Pcre2Regex(rb"(\w)\1\1", 0), reflib.Pcre2Regex(rb"^to: (\S+) \1$", reflib.PCRE2_MULTILINE),
            reflib.Pcre2Regex(rb"(x)\1", 0)]
    rules = [_Rule(n, r) for n, r in zip(("TRIPLE", "SAME", "NEG_XX"), refs, strict=True)]
    # (name, final, negated, multiple, capture, rule, fast)
    info = [(r.name, False, r.name.startswith("NEG"), False, False, r, _fast(r.ref)) for r in rules]
    info.append(("PLAIN", False, False, False, False, _Rule("PLAIN", refs[0]), None))
    # every rule an "always" rule: confirmed on each value, no database
    plan = [(None, (), (0, 1, 2, 3), (0, 1, 2, 3), (2,), False, False, -1, None)]
    cases = [(b"aaa\nto: b@c b@c\n", {"TRIPLE": 1, "SAME": 1, "NEG_XX": 1, "PLAIN": 1}),
             (b"abc\nto: b@c d@e\n", {"NEG_XX": 1}),
             (b"xx zzz\x00\n", {"TRIPLE": 1, "PLAIN": 1}),
             (b"", {"NEG_XX": 1})]
    for val, want in cases:
        run = _Run()
        hdr.header_rules(run, plan, info, [val], [], None, eng.on_match, eng.on_first_match,
                         RuntimeError)
        assert run.values == want, val
    calls = [r.calls for r in rules]
    if impl.kind == "pure":
        assert calls == [4, 4, 4]           # the twin asks the rule itself
    else:
        assert calls == [0, 0, 0]           # pcre2_match_8 called directly
    assert info[3][5].calls == 4            # no fast item: the rule's search()


def test_header_rules_fast_item_conditions(impl):
    """The rule's own search() answers while it has an RE2 superset (pre),
    and, newline-only, on a value without a final newline."""
    hdr = impl("spamhdr")
    eng = impl("spameng")
    ref = reflib.Pcre2Regex(rb"(b)\1", 0)
    gated, nl = _Rule("GATED", ref), _Rule("NL", ref)
    gated.pre = object()
    info = [("GATED", False, False, False, False, gated, _fast(ref)),
            ("NL", False, False, False, False, nl, _fast(ref, True))]
    plan = [(None, (), (0, 1), (0, 1), (), False, False, -1, None)]
    for val in (b"abba\n", b"abba", b"ab\n"):
        run = _Run()
        hdr.header_rules(run, plan, info, [val], [], None, eng.on_match, eng.on_first_match,
                         RuntimeError)
        assert run.values == ({"GATED": 1, "NL": 1} if b"bb" in val else {}), val
    assert gated.calls == 3
    assert nl.calls == (3 if impl.kind == "pure" else 1)    # b"abba" only


class _Re2Pattern:
    def __init__(self, rx: bytes):
        import re
        self._re2 = self
        self.rx, self.calls = re.compile(rx), 0

    def contains(self, val: bytes) -> bool:
        self.calls += 1
        return self.rx.search(val) is not None


def test_header_rules_ask_re2_directly(impl):
    hdr = impl("spamhdr")
    eng = impl("spameng")
    pat = _Re2Pattern(rb"cheap")

    class Rule:
        name, pre, calls = "R", None, 0

        def search(self, val):
            self.calls += 1
            return pat.rx.search(val) is not None

    rule = Rule()
    info = [("R", False, False, False, False, rule, (0, 0, 0, pat, False))]
    plan = [(None, (), (0,), (0,), (), False, False, -1, None)]
    for val, want in ((b"so cheap\n", {"R": 1}), (b"cheaq", {})):
        run = _Run()
        hdr.header_rules(run, plan, info, [val], [], None, eng.on_match, eng.on_first_match,
                         RuntimeError)
        assert run.values == want, val
    assert (rule.calls, pat.calls) == ((2, 0) if impl.kind == "pure" else (0, 2))


def test_engine_header_rules_get_the_fast_item():
    from postier.content.spam import conf as C
    from postier.content.spam.scanner import SpamScanner

    rs = C.parse_text("header H_BR Subject =~ /(\\w)\\1\\1\\1/\nscore H_BR 1\n"
                      "header H_RE Subject =~ /cheap/\nscore H_RE 1\n", "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    info = {i[0]: i for i in sc.compiled.header_info}
    re2_item = info["H_RE"][6]              # RE2 answers it: asked directly
    assert re2_item[0] == 0 and re2_item[3] is info["H_RE"][5].pattern
    for subj, hit in ((b"so cheap", True), (b"cheaq", False)):
        assert ("H_RE" in sc.run(b"Subject: " + subj + b"\n\nbody\n").values) == hit, subj
    fast = info["H_BR"][6]                  # a back-reference: libpcre2's
    assert fast is not None and fast[0] == reflib.pcre2_match_address() and not fast[4]
    for pre in (info["H_BR"][5].pre, None):   # with its RE2 superset, then without
        info["H_BR"][5].pre = pre
        for subj, hit in ((b"zzzz top", True), (b"zzz top", False), (b"zz\x00zz", False)):
            assert ("H_BR" in sc.run(b"Subject: " + subj + b"\n\nbody\n").values) == hit, subj
