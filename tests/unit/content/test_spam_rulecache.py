"""The spam engine's translation cache (postier.content.spam.rulecache):
a warm start reads every rule's translation from the cache directory and
runs exactly as a cold one; regex objects are compiled on first use."""

from __future__ import annotations

import glob
import os

import pytest
from test_spam_rules import MIME, PLAIN, RULES

from postier.content.spam import conf as C
from postier.content.spam import perlre, rulecache
from postier.content.spam.scanner import SpamScanner


def _scanner(text: str, cache_dir) -> SpamScanner:
    rs = C.parse_text(text, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=str(cache_dir) if cache_dir else None)


def _state(sc: SpamScanner) -> list:
    """What the compiled rules are made of, rule by rule."""
    out = []
    for area, rules in sc.compiled.area_rules.items():
        for rr in rules:
            p = rr.pattern
            out.append((area, rr.name, rr.entry.exprs, rr.entry.flags, rr.entry.exact,
                        rr.entry.solo, rr.direct, rr.empty_hit, rr.if_unset,
                        p.hs_expr, p.hs_exact, p.ngroups, p._ref_confirms, p._nl_unsafe,
                        p._re2.pattern if p._re2 is not None else None,
                        p._py.pattern if p._py is not None else None,
                        rr.pre.pattern if rr.pre is not None else None))
    return out


EXTRA = r"""
body   B_LOOK      /(?<=cheap )pills/
body   B_BACKREF   /\b(\w)\1\1\b/
body   B_BIGREP    /pill.{1,300}beta/s
header H_TMPL      Subject =~ /%{NOSUCHTAG}/
body   B_BAD       /(unclosed/
"""


def test_warm_start_reads_every_translation_and_runs_the_same(tmp_path):
    cold = _scanner(RULES + EXTRA, None)
    first = _scanner(RULES + EXTRA, tmp_path)
    assert first.compiled.stats.translated > 0 and not first.compiled.stats.from_cache
    files = glob.glob(os.path.join(tmp_path, "spam-rules-*.msgpack"))
    assert len(files) == 1
    warm = _scanner(RULES + EXTRA, tmp_path)
    assert warm.compiled.stats.translated == 0 and warm.compiled.stats.from_cache
    assert warm.compiled.stats.compile_failed == cold.compiled.stats.compile_failed
    assert warm.compiled.stats.compile_failed[0].startswith("B_BAD: ")
    assert [t[0].name for t in warm.compiled.templates] == ["H_TMPL"]
    assert _state(warm) == _state(cold) == _state(first)
    for msg in (PLAIN, MIME, b"Subject: x\n\ncheap pills aaa beta\n"):
        assert warm.run(msg).values == cold.run(msg).values
    assert warm.run(b"Subject: x\n\ncheap pills aaa beta\n").values.keys() >= {
        "B_LOOK", "B_BACKREF"}


def test_patterns_are_compiled_on_first_use():
    rec = perlre.compile_pattern(r"(?<=a)b+(c)", "i")
    p = rulecache.pattern_from_record(rulecache.pattern_record(rec, "i"))
    assert isinstance(p, rulecache.LazyPattern)
    assert "_py" not in p.__dict__ and "_ref" not in p.__dict__
    assert p.search(b"xaBBc") and not p.search(b"xbbc")
    assert p.spans(b"xaBBc", 2) == rec.spans(b"xaBBc", 2) == [(2, 5), (4, 5)]
    assert p._py is not None and "_py" in p.__dict__
    p._re2 = None                       # an assignment wins over the lazy value
    assert p._re2 is None


def test_a_changed_rule_is_the_only_one_translated_again(tmp_path):
    _scanner(RULES, tmp_path)
    sc = _scanner(RULES.replace(r"/\bfoo\b/i", r"/\bfoo\b/"), tmp_path)
    assert sc.compiled.stats.translated == 1
    assert _scanner(RULES, tmp_path).compiled.stats.translated == 0


def test_an_unreadable_cache_file_is_translated_again(tmp_path):
    _scanner(RULES, tmp_path)
    (path,) = glob.glob(os.path.join(tmp_path, "spam-rules-*.msgpack"))
    with open(path, "wb") as f:
        f.write(b"\x93not msgpack at all")
    sc = _scanner(RULES, tmp_path)
    assert sc.compiled.stats.translated > 0
    assert sorted(n for n, _ in sc.run(PLAIN).hits)[:2] == ["B_MULT", "B_MULT"]
    assert _scanner(RULES, tmp_path).compiled.stats.translated == 0


def test_the_code_version_names_the_file(monkeypatch):
    v = rulecache.code_version()
    monkeypatch.setattr(rulecache, "_version", None)
    monkeypatch.setattr(rulecache, "FORMAT", rulecache.FORMAT + b"-test")
    assert rulecache.code_version() != v
    monkeypatch.setattr(rulecache, "_version", None)


@pytest.mark.parametrize("mods", ["", "i", "ms", "x"])
def test_pcre2_options_are_the_ones_compile_pattern_uses(mods):
    p = perlre.compile_pattern(r"^a b$", mods)
    q = rulecache.pattern_from_record(rulecache.pattern_record(p, mods))
    for s in (b"a b", b"A B", b"ab", b"x\na b\ny", b"X\nAB\n"):
        assert (q._ref.search(s) is None) == (p._ref.search(s) is None), (mods, s)


def test_libpcre2_answers_before_re_where_re2_cannot():
    if not rulecache.reflib.pcre2_available():
        pytest.skip("no libpcre2")
    src = perlre.compile_pattern(r"^From: (\w+)@.*\n(?:.*\n)*To: \1@", "m")
    assert src._re2 is None and src._py is not None
    p = rulecache.pattern_from_record(rulecache.pattern_record(src, "m"))
    yes = b"From: joe@a.example\nX: y\nTo: joe@b.example\n"
    no = b"From: joe@a.example\nTo: ann@b.example\n"
    assert p.search(yes) and not p.search(no)
    assert src.search(yes) and not src.search(no)
    assert "_py" not in p.__dict__              # `re` never needed
    # the interpreter path taken after a JIT error gives the same spans
    assert rulecache._search_no_jit(p._ref, yes) == p._ref.search(yes) == [(0, 33), (6, 9)]
    assert rulecache._search_no_jit(p._ref, no) is None


def test_files_of_other_code_versions_are_removed(tmp_path):
    old = tmp_path / "spam-rules-0123456789abcdef.msgpack"
    old.write_bytes(b"old")
    _scanner(RULES, tmp_path)
    assert not old.exists()
    assert len(glob.glob(os.path.join(tmp_path, "spam-rules-*.msgpack"))) == 1
