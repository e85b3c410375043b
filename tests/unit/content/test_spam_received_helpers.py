"""Received parsing without a regex where every line would run one
(postier._native.spamrcvd and its pure twin): _starts_from, _id_field,
_by_field and _date_start give the answers of the regexes they stand for on
generated lines (NULs, tabs, non-ASCII, truncations, odd floors);
Line.any_in (the gates before groups of formats) and Line.cut_at; the
compiled entries of the native Line (inline prefix program, a subset of the
literals' pair bits, the table found by the pattern object) still match like
re.search after many patterns.
"""

from __future__ import annotations

import random
import re

from postier.content.spam import received as R

_FROM = re.compile(r"^\(?from ", re.I | re.A | re.S)
_ID = re.compile(r" id <?([^\s<>;]{3,})", re.A | re.S)
_BY = re.compile(r" by (\S+)(?:[^-A-Za-z0-9\;\.]|$)", re.A | re.S)
_DATE = re.compile(r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|"
                   r"Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$", re.A | re.S)

_LINES = [
    "from mail.example (mail.example [192.0.2.1]) by mx.example (Postfix) with ESMTP id 4F2A1; "
    "Tue, 10 Nov 2026 12:00:00 +0000",
    "(from x@localhost) by y.example (8.12.4/8.12.4/Submit) id g7S9T0C5018212; 22 Aug 2002 21:26:29 -0000",
    "FROM a.example ([10.0.0.1]) BY b.example WITH SMTP ID <abc@def>;Mon, 1 Jan 2001 1:2 EST",
    "from a by b with local id <<x>>; Sun,  3 Feb 2004 01:02:03 -0500 (EST)",
    "from [IPv6:::1] by c.example id ab;; Sat, 9 Sep 2002 03:56:09;x",
    "from x.example (HELO y) (192.0.2.9) by z.example with SMTP; 29 Aug 2002 17:01:38 -0000",
]
_TOKS = ["from ", "(from ", "FROM ", " by ", " id ", " id <", "<", ">", ";", " ", "  ", "\t", "\n",
         "\0", ",", ":", "12", "1", "Mon, ", "Thu,", " Jan ", " May", "Sep ", " 2002 ", "10:00",
         ":59", " +0000", "x.example", "\xe9", "\u0130", "\u212a", "\U0001f600", "\xff"]


def _strings(n: int, seed: int):
    rng = random.Random(seed)
    for s in _LINES:
        yield s
        for i in range(len(s) + 1):
            yield s[:i]
            yield s[i:]
    for _ in range(n):
        if rng.random() < 0.5:
            s = rng.choice(_LINES)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(s) + 1)
                if rng.random() < 0.6:
                    s = s[:i] + rng.choice(_TOKS) + s[i:]
                else:
                    s = s[:i] + s[i + rng.randint(1, 4):]
        else:
            s = "".join(rng.choice(_TOKS) for _ in range(rng.randint(0, 16)))
        yield s


def test_field_helpers_are_their_regexes(impl):
    mod = impl("spamrcvd")
    rng = random.Random(11)
    hits = [0, 0, 0, 0]
    for s in _strings(6000, 5):
        m = _ID.search(s)
        want_id = m.group(1) if m else None
        m = _BY.search(s)
        want_by = m.group(1) if m else None
        assert mod._starts_from(s) == (_FROM.search(s) is not None), s
        assert mod._id_field(s) == want_id, s
        assert mod._by_field(s) == want_by, s
        for floor in (mod._date_floor(s), 0, rng.randrange(len(s) + 1)):
            m = _DATE.search(s, floor)
            assert mod._date_start(s, floor) == (m.start() if m else -1), (s, floor)
            hits[3] += m is not None
        hits[0] += _FROM.search(s) is not None
        hits[1] += want_id is not None
        hits[2] += want_by is not None
    assert min(hits) > 100          # each helper met many matches, not only misses


def test_any_in_and_cut_at(impl):
    mod = impl("spamrcvd")
    line = mod.Line("from A.Example (Authenticated sender: x) by b", R._cache, R._compile_entry)
    assert line.any_in(("nothing", "(Authenticated"))
    assert not line.any_in(("authenticated sender",))           # case matters
    assert line.any_in(("zzz", "authenticated sender"), True)   # in the lowercased line
    assert not line.any_in((), True) and not line.any_in(("\0",))
    assert line.m(r" by (\S+)$") and line[1] == "b"
    line.cut_at(-1)
    assert line.s.endswith(" by b")
    line.cut_at(line.s.index(" by"))
    assert line.s == "from A.Example (Authenticated sender: x)"
    assert not line.m(r" by ") and not line.any_in((" by ",)) and line.any_in(("a.example",), True)
    assert line.m(r"^from (\S+) \(") and line[1] == "A.Example"


def test_many_patterns_still_match_like_re_search(impl):
    """More patterns than the native table's slots, with and without flags:
    every m() answers as re.search, every group as the match's."""
    mod = impl("spamrcvd")
    cache: dict = {}
    rng = random.Random(3)
    pats = [(r"^(\S+) \((\S+) \[", 0), (r"^\(?from ", re.I), (r" by (\S+)", 0), (r"with (ESMTPS?A)", re.I),
            (r"^(\S+) \[(\d+\.\d+\.\d+\.\d+)\] by (\S+) ", 0), (r"^\S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ "
                                                               r"\S+ \S+ \S+ \S+ (\S+)", 0)]
    pats += [(f"x{i}y", 0) for i in range(500)] + [(f"(?:Q{i}|z)w", re.I) for i in range(20)]
    for s in list(_strings(300, 9)) + ["a (b [c by d with esmtpa x3y", "q7W x499y Zw"]:
        line = mod.Line(s, cache, lambda p, f: mod.compile_entry(p, f | re.A | re.S))
        for pat, flags in rng.sample(pats, 40) + pats[:6]:
            want = re.compile(pat, flags | re.A | re.S).search(s)
            assert line.m(pat, flags) == (want is not None), (s, pat)
            if want is not None:
                assert all(line[i] == want.group(i) for i in range(want.re.groups + 1))


def test_cuts_keep_the_lowercase_answers(impl):
    """cut_at and cut_prefix keep an ASCII line's lowercase (cut alike) for
    the case-insensitive tests and lowercase gates after them: every answer
    after a cut is the one a new Line of the cut text gives, also on lines
    whose lowercase is not per character (dotted I, final sigma, Kelvin)."""
    mod = impl("spamrcvd")
    cache: dict = {}

    def comp(p: str, f: int) -> tuple:
        return mod.compile_entry(p, f | re.A | re.S)

    icase = [(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", re.I), (r"^from (\S+) by", re.I),
             (r" WITH (ESMTPS?A)\b", re.I), (r"\bx\.EXAMPLE\b", re.I), (r"by\b", re.I)]
    gates = ("envelope-from", "x.example", " by ", "\u0131", "i\u0307", "\u03c3", "\u03c2", "k", "mon, ")
    rng = random.Random(17)
    extra = ["from X.Example (Return-Path: <a@B>) by y with ESMTPA id 1; Mon, 1 Jan 2001 1:2:3 +0000",
             "from \u0130X.EXAMPLE (\u03a3A\u03a3) by \u212a with esmtpa; Mon, 1 Jan 2001 1:2:3 +0000",
             "from A\u03a3 envelope-from=\u03a3 by B\u03a3 WITH ESMTPSA"]
    checked = 0
    for s in list(_strings(1500, 21)) + extra:
        line = mod.Line(s, cache, comp)
        for pat, flags in icase[:2]:
            line.m(pat, flags)                  # the lowercase made before the cuts
        line.any_in(gates, True)
        for step in range(3):
            if step == 1:
                line.cut_prefix(rng.choice(["from ", "(from ", "FROM ", "x"]))
            elif step == 2:
                line.cut_at(rng.randrange(len(line.s) + 1) if rng.random() < 0.8 else -1)
            fresh = mod.Line(line.s, cache, comp)
            for pat, flags in icase:
                assert line.m(pat, flags) == fresh.m(pat, flags), (s, line.s, pat)
                if fresh.m(pat, flags):
                    assert line[0] == fresh[0]
            for g in gates:
                assert line.any_in((g,), True) == fresh.any_in((g,), True), (s, line.s, g)
            checked += 1
    assert checked > 3000


def test_ws_odd_is_whether_the_whitespace_pass_changes_the_line(impl):
    """_ws_odd (the native one reads a Latin-1 line's bytes) answers whether
    s/\\s+/ /g (re.A) would change the line."""
    mod = impl("spamrcvd")
    rng = random.Random(23)
    chars = [" ", "a", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "\xa0", "\x85", "\xff",
             "\u2028", "\u3000", "\U0001f600"]
    odd = 0
    for s in list(_strings(500, 29)) + ["".join(rng.choice(chars) for _ in range(rng.randrange(9)))
                                        for _ in range(20000)]:
        want = re.sub(r"\s+", " ", s, flags=re.A) != s
        assert mod._ws_odd(s) == want, repr(s)
        odd += want
    assert 1000 < odd < 19000
