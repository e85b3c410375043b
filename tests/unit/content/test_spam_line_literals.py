"""Line-literal counting of `tflags multiple` line rules (spameng.LineLiteralCounter).

A rule such as __HAS_HREF (/^[^>].*?<a href=/im, multiple) has the joined
form [\\x00\\x0a][^\\x00>][^\\x00\\x0a]*?L (L a set of literals);
spameng.line_literal_form recognizes it and LineLiteralCounter counts its
matches on a joined buffer without RE2.  These tests check the counter
against RE2's finditer on the joined buffer and against per-subject
counts with Python `re` (Perl's semantics on these patterns), in both
twins, on hand-made and random subjects, with limits; that other forms are
not taken; and that spameng.report_lines equals report_subjects.
"""

from __future__ import annotations

import random
import re

import pytest
import re2

from postier.content.spam import perlre

PATTERNS = [
    ("^[^>].*?<a href=", "im"),
    ("^[^>].*?<(?:a href|A HREF)=", "m"),
    ("^[^>].*?<img src=", "im"),
    ("^[^>x].*?(?:ab|c)", "m"),         # literals with two first bytes, one of one byte
    ("^[^>].*?e", "m"),                 # a one-byte literal
]

SUBJECTS = [
    b"x<a href=\"http://a.example/\">a</a> <a href=\"b\">",
    b"\n<a href=x>",
    b">\n<a href=y><a href=z>",
    b">no <a href=here",
    b"",
    b"<A HREF=q>\n\n<a href=r>\n",
    b"plain text line\nwith <a href=\nand <img src=x> and <IMG SRC=y>",
    b"\n",
    b"\n\n<a href=1>\n>\n\n>x<a href=2",
    b"<a href=<a href=\n<img src=<IMG SRC=",
    b"ab c\n>ab\nxab\n\nc\n\n\nab",
    b"eee\ne\n\ne\n>e\n",
]

PIECES = [b"\n", b">", b"<a href=", b"<A HREF=", b"<img src=", b"<IMG SRC=", b"<a hre",
          b"x", b" ", b"<", b"\n\n", b"ab", b"c", b"e", b"\xc3\xa9"]


def _joined_rx(pattern: str, mods: str):
    rx, exact, countable = perlre.joined_re2(pattern, mods)
    assert rx is not None and exact and countable
    return rx


def _per_subject(pattern: str, mods: str, subjects: list[bytes]) -> int:
    flags = (re.I if "i" in mods else 0) | (re.M if "m" in mods else 0)
    rx = re.compile(pattern.encode(), flags)
    return sum(len(rx.findall(s)) for s in subjects)


def _random_subjects(rnd: random.Random) -> list[bytes]:
    return [b"".join(rnd.choice(PIECES) for _ in range(rnd.randrange(0, 12)))
            for _ in range(rnd.randrange(1, 6))]


@pytest.mark.parametrize(("pattern", "mods"), PATTERNS)
def test_counts_equal_re2_and_perl_semantics(impl, pattern, mods):
    eng = impl("spameng")
    rx = _joined_rx(pattern, mods)
    form = eng.line_literal_form(rx.pattern)
    assert form is not None
    counter = eng.LineLiteralCounter(*form)
    rnd = random.Random(7)
    cases = [SUBJECTS[k:] + SUBJECTS[:k] for k in range(len(SUBJECTS))]
    cases += [_random_subjects(rnd) for _ in range(1500)]
    for subjects in cases:
        buf = perlre.joined_buffer(subjects)
        want = sum(1 for _ in rx.finditer(buf))
        assert want == _per_subject(pattern, mods, subjects)
        assert counter.count(buf) == want, subjects
        for limit in (1, 2, 3):
            assert counter.count(buf, limit) == min(want, limit), (subjects, limit)


def test_counts_on_any_bytes(impl):
    """Buffers not shaped like a joined buffer (NULs anywhere, no leading
    NUL) count as RE2 does."""
    eng = impl("spameng")
    rx = _joined_rx("^[^>].*?<a href=", "im")
    counter = eng.LineLiteralCounter(*eng.line_literal_form(rx.pattern))
    rnd = random.Random(3)
    pieces = PIECES + [b"\0", b"\0\0", b"\0>"]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 30)))
        assert counter.count(data) == sum(1 for _ in rx.finditer(data)), data


def test_form_of_has_href(impl):
    eng = impl("spameng")
    rx = _joined_rx("^[^>].*?<(?:a href|A HREF)=", "m")
    excluded, lits = eng.line_literal_form(rx.pattern)
    assert set(excluded) == {0, ord(">")}
    assert sorted(lits) == [b"<A HREF=", b"<a href="]


@pytest.mark.parametrize("pattern", [
    rb"\x00[Mm][Aa][Ii][Ll][Tt][Oo]\x3a",                      # no gap
    rb"[\x00\x0a][^\x00\x3e][^\x00\x0a]*?\x3c[Aa]\x0a",         # a literal holding a newline
    rb"[\x00\x0a][^\x3e][^\x00\x0a]*?\x3c[Aa]",                 # the class lets the NUL in
    rb"[\x00\x0a][^\x00\x3e][^\x00\x0a]*?\x3c[Aa]+",            # not a literal set
    rb"[\x00\x0a][^\x00\x3e][^\x00\x0a]*\x3c[Aa]",              # a greedy gap
    rb"[\x00\x0a][^\x00\x3e][^\x00\x0a]*?",                     # no literal
])
def test_other_forms_are_not_taken(impl, pattern):
    assert impl("spameng").line_literal_form(pattern) is None


def test_counter_refuses_separator_literals(impl):
    eng = impl("spameng")
    for lits in ((b"a\n",), (b"",), (b"\0b",)):
        with pytest.raises(ValueError):
            eng.LineLiteralCounter(b"\0", lits)


def test_report_lines_is_report_subjects(impl):
    eng = impl("spameng")
    rnd = random.Random(5)
    for _ in range(500):
        subjects = [bytes(rnd.randrange(1, 255) for _ in range(rnd.randrange(0, 9)))
                    for _ in range(rnd.randrange(1, 8))]
        total = len(perlre.joined_buffer(subjects))
        flat: list = []
        for _r in range(rnd.randrange(0, 12)):
            flat += [rnd.randrange(3), rnd.randrange(0, total + 1)]
        ends = [(flat, None)]
        if len(subjects) > 2 and rnd.random() < 0.3:
            ends.append(([1, 2, 2, 3], [0, 2]))
        for i in range(3):
            assert eng.report_lines(ends, i, subjects) == eng.report_subjects(
                ends, i, [len(s) for s in subjects])


def test_re2_module_agrees_on_a_known_count():
    """A hand-counted case, so that the reference itself is checked: the
    lines '<a href=1' (reached through the empty line before it) and
    'x<a href=2' match; '>...' and a line starting with the literal
    (after a non-empty line) do not."""
    subjects = [b"a\n\n<a href=1\n><a href=3\nx<a href=2\n<a href=4"]
    rx = _joined_rx("^[^>].*?<a href=", "m")
    assert sum(1 for _ in rx.finditer(perlre.joined_buffer(subjects))) == 2
    assert isinstance(rx, re2.Pattern)


def test_rule_counter_is_the_line_literal_one():
    """RRule.literals picks the line-literal counter for such a rule, and
    its count is the rule's Perl count over the subjects."""
    from postier.content.spam.engine import RRule

    src = ("^[^>].*?<a href=", "im")
    rr = RRule("__H", "rawbody", perlre.compile_pattern(*src), multiple=True, maxhits=100,
               source=src)
    counter = rr.literals()
    assert type(counter).__name__ == "LineLiteralCounter"
    subjects = SUBJECTS[::-1]
    assert counter.count(perlre.joined_buffer(subjects), 100) == _per_subject(*src, subjects) > 3


def test_subject_counter_equals_re2(impl):
    """A joined form  SEP [C]* [^SEP C]  (/^\\s*\\S/: __BODY_TEXT_LINE) is
    counted by spameng.SubjectCounter: RE2's finditer count on joined
    buffers of random subjects (blank, 8-bit, huge, unterminated), with
    limits, and the rule's Perl count over the subjects."""
    from postier.content.spam.engine import RRule

    eng = impl("spameng")
    src = (r"^\s*\S", "")
    rr = RRule("__T", "body", perlre.compile_pattern(*src), multiple=True, maxhits=3, source=src)
    rx, _exact, countable = rr.joined()
    chars = eng.subject_form(rx.pattern)
    assert countable and chars == b"\t\n\x0b\x0c\r "
    assert type(rr.literals()).__name__ == "SubjectCounter"
    counter = eng.SubjectCounter(chars)
    rnd = random.Random(4)
    pieces = [b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\xa0", b"\x85", b"x", b"\xff", b"\"", b""]
    lists = [[b""], [b" " * 100000], [b" " * 100000 + b"x"], [b"\n", b"", b" \t"], SUBJECTS]
    for _ in range(500):
        lists.append([b"".join(rnd.choice(pieces) for _p in range(rnd.randint(0, 8)))
                      for _s in range(rnd.randint(1, 12))])
    for subjects in lists:
        buf = perlre.joined_buffer(subjects)
        want = sum(1 for _ in rx.finditer(buf))
        assert want == _per_subject(*src, subjects)
        for limit in (0, 1, 3, 50):
            assert counter.count(buf, limit) == (min(want, limit) if limit else want), subjects
            assert counter.count(buf[len(subjects[0]) + 1:], limit) == eng.count_iter(
                rx, buf[len(subjects[0]) + 1:], limit)      # a nosubject rule's rest


@pytest.mark.parametrize("pattern", [rb"\x00[\x20]*[^\x00\x09]", rb"\x00[\x00\x20]*[^\x00\x20]",
                                     rb"[\x20]*[^\x00\x20]", rb"\x00[\x20]*[^\x00\x20]x",
                                     rb"\x00[\x20]*[^\x20]", rb"\x00[^\x20]*[^\x00\x20]",
                                     rb"\x00[\x20]*[^\x00\x20", rb"\x00[]*[^\x00]",
                                     rb"[\x00\x0a][\x09-\x0d\x20]*[^\x00\x09-\x0d\x20]"])
def test_subject_counter_other_forms(impl, pattern):
    eng = impl("spameng")
    assert eng.subject_form(pattern) is None
    assert eng.subject_form(rb"\x00[\x20\x09]*[^\x00\x09\x20]") == b"\t "
    with pytest.raises(ValueError):
        eng.SubjectCounter(b" \x00")
