"""engine._lazy_bridges: a header rule's libpcre2 form with its top-level
line bridges, (?:[^\\n]+\\n+)*, made lazy (what the compiled header walk
confirms a yes/no rule with, _pcre2_fast): the same yes/no answer as the
pattern itself on every subject."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import engine as E
from postier.maps import reflib

pytestmark = pytest.mark.skipif(not reflib.pcre2_available(), reason="libpcre2-8 not available")

_ISM = reflib.PCRE2_CASELESS | reflib.PCRE2_MULTILINE | reflib.PCRE2_DOTALL      # /ism

# SpamAssassin's rules with a bridge (72_active.cf), as the rule cache hands
# them to libpcre2, and a few made up around the same bridge
PATTERNS = [
    rb"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]",
    rb"\nSubject:(?=[^\n]{0,200}@)[^\n]{0,200}([a-z][a-z0-9_.]{3,80}@(?:[a-z0-9_]{1,80}\.){1,4}"
    rb"[a-z]{2,30})(?:[^\n]+\n+)*To: [^\n]{0,100}\1[^a-z0-9.]",
    rb"^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b",
    rb"(?:[^\n]+\n+)*X",
    rb"a(?:[^\n]+\n+)*(?>b+)c|(?:[^\n]+\n+)*\Ad",
    rb"(?i)\nFrom: (\S+)\n(?:[^\n]+\n+)*(?:[^\n]+\n+)*To: \1$",
]


def test_rewrites_top_level_bridges_only():
    lz = E._lazy_bridges
    assert lz(PATTERNS[0]) == PATTERNS[0].replace(rb"\n+)*", rb"\n+)*?")
    assert lz(PATTERNS[5]).count(rb"\n+)*?") == 2
    assert lz(rb"[[:alpha:]](?:[^\n]+\n+)*b") == rb"[[:alpha:]](?:[^\n]+\n+)*?b"
    for src in (rb"plain", rb"(?:[^\n]{1,100}\n+)*x",
                rb"((?:[^\n]+\n+)*)x",            # inside a group (atomic, lookaround, ...)
                rb"(?=(?:[^\n]+\n+)*x)",
                rb"(?:[^\n]+\n+)*?x", rb"(?:[^\n]+\n+)*+x",   # lazy or possessive already
                rb"[(?:[^\n]+\n+)*]", rb"[]a(?:[^\n]+\n+)*]",  # in a class
                rb"\(?:[^\n]+\n+)*x",             # an escaped parenthesis
                rb"\Q(?:[^\n]+\n+)*\E", rb"(*COMMIT)(?:[^\n]+\n+)*x", rb"(?x)(?:[^\n]+\n+)*x",
                rb"(?#c)(?:[^\n]+\n+)*x", rb"(?R)?(?:[^\n]+\n+)*x", rb"a)(?:[^\n]+\n+)*x",
                rb"((?:[^\n]+\n+)*x"):
        assert lz(src) is None, src


def _subjects(rng: random.Random) -> list[bytes]:
    """ALL-like header blocks and mutations: NULs, 8-bit bytes, empty and
    huge lines, unterminated quotes, the names the patterns look for."""
    names = [b"Received: from x by y for <a@b.example>; now", b"Received: by z for joe;",
             b"Subject: hello a@b.example!", b"Subject: joe", b"subject: \"brand", b"To: <x@brand.com>",
             b"To: someone <a@b.example>", b"From: joe", b"From: \"q <j@k.l>", b"X", b"d", b"abbc",
             b"Subject: hi abcd@ex.com x", b"to: ABCD@ex.com!", b"To: joe",
             b"", b"\x00", b"caf\xe9 \xff", b"Received: " + b"y" * 300 + b" for <q@r.s>;",
             b"Subject: " + b"z" * 5000 + b"q@r.s."]
    out = []
    for _ in range(300):
        lines = [rng.choice(names) for _ in range(rng.randint(0, 12))]
        s = b"\n".join(lines) + rng.choice([b"\n", b"", b"\n\n"])
        if s and rng.random() < 0.3:
            k = rng.randrange(len(s))
            s = s[:k] + bytes([rng.randrange(256)]) + s[k + 1:]
        out.append(s)
    return out


def test_same_answers_as_the_pattern():
    rng = random.Random(12)
    subjects = _subjects(rng)
    for src in PATTERNS:
        lazy = E._lazy_bridges(src)
        assert lazy is not None and lazy != src
        for opts in (_ISM, 0):
            a = reflib.Pcre2Regex(src, opts)
            b = reflib.Pcre2Regex(lazy, opts)
            for s in subjects:
                assert a.matches(s) == b.matches(s), (src, opts, s[:200])


def test_header_info_uses_the_lazy_form_for_bridged_rules():
    """_pcre2_fast of a rule-cache pattern with a bridge: a Pcre2Regex of the
    lazy form (held by the item); without one, the pattern's own."""
    class _P(E.rulecache.LazyPattern):
        def __init__(self, src):
            self.__dict__["_spec"] = (None, None, src, _ISM)
            self.__dict__["_ref"] = reflib.Pcre2Regex(src, _ISM)
            self.__dict__["_ref_confirms"] = True

    class _R:
        multiple = False

        def __init__(self, src):
            self.pattern = _P(src)

    if not reflib.pcre2_match_address():
        pytest.skip("no pcre2_match_8 address")
    rr = _R(PATTERNS[0])
    fast = E._pcre2_fast(rr)
    assert fast is not None and fast[3] is not rr.pattern._ref
    assert fast[1:3] == fast[3].addresses
    for s in _subjects(random.Random(3))[:50] + [b"\nReceived: x for <a@b>;\nSubject: a@b!\n"]:
        assert fast[3].matches(s) == rr.pattern._ref.matches(s)
    plain = _R(rb"\nFrom: (\S+)\n\1")
    fast = E._pcre2_fast(plain)
    assert fast is not None and fast[3] is plain.pattern._ref


def _answer(ref: reflib.Pcre2Regex, s: bytes) -> bool | str:
    try:
        return ref.matches(s)
    except reflib.RegexExecError:
        return "error"          # (the header walk then asks the rule's search())


def test_huge_values_same_answers_or_both_fall_back():
    """Many lines between a Received line and the Subject: where JIT's stack
    runs out, it runs out for both forms (the walk's fallback, the rule's
    own search(), answers then); below that, the same answers."""
    src = PATTERNS[0]
    a = reflib.Pcre2Regex(src, _ISM)
    b = reflib.Pcre2Regex(E._lazy_bridges(src), _ISM)
    for ref in (a, b):
        E.rulecache._jit_compile(ref)
    for n in (10, 1000, 1300, 1400, 5000, 100000):
        for tail in (b"Subject: a@b!\n", b"Subject: zz\n", b"Subject: " + b"q" * 100000 + b"\n"):
            s = b"X: y\nReceived: x for <a@b>; now\n" + b"x\n" * n + tail
            assert _answer(a, s) == _answer(b, s), (n, tail[:20])
    assert _answer(b, b"X: y\nReceived: x for <a@b>; now\n" + b"x\n" * 10 + b"Subject: a@b!\n") is True
