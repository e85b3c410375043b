"""Line-area rules confirmed only on the subjects Hyperscan reported.

hsdb.AreaDatabase.scanner_ends records every report's end (the match
handler spameng.on_match_end, both twins), hsdb.report_subjects turns the
ends of one entry into the subjects of the joined buffer that hold them,
and engine.Run._reported confirms a prefilter entry on those subjects only.
Checked against Python `re` per subject: every subject where the pattern
matches is among the reported ones, on ASCII buffers, on 8-bit ones (the
ASCII twins' split scan) and with reports just after a separator; and a
rule set's hits are the same with and without the narrowing.
"""

from __future__ import annotations

import random
import re

import hyperscan as hs
import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam import hsdb, perlre
from postier.content.spam.scanner import SpamScanner


def test_on_match_end_records_ids_and_ends(impl):
    eng = impl("spameng")
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=[b"ab", b"cd"], ids=[3, 7], elements=2, flags=[0, 0])
    flat: list = []
    db.scan(b"xxabyycdab", match_event_handler=eng.on_match_end, context=flat)
    assert flat == [3, 4, 7, 8, 3, 10]


# subjects b"ab", b"", b"cdef": SEP a b SEP SEP c d e f SEP SEP
#   offsets:                      0   1 2  3   4  5 6 7 8  9  10
LENS = [2, 0, 4]


@pytest.mark.parametrize(("ends", "want"), [
    ([0, 2], [0]),              # last byte 1: in subject 0
    ([0, 3], [0]),              # last byte 2
    ([0, 4], [0, 1]),           # last byte 3: the separator before subject 1 (empty)
    ([0, 5], [1, 2]),           # last byte 4: the separator before subject 2
    ([0, 7], [2]),
    ([0, 10], [2]),             # the separator after the last subject
    ([0, 11], [2]),             # the tail
    ([0, 0], [0]),              # an empty match at the very start
    ([1, 7], []),               # another entry's report
    ([0, 2, 1, 7, 0, 8], [0, 2]),
])
def test_report_subjects_by_hand(impl, ends, want):
    assert impl("spameng").report_subjects([(ends, None)], 0, LENS) == want


def test_report_subjects_of_a_split_buffer(impl):
    report_subjects = impl("spameng").report_subjects
    # a buffer joining subjects 2 and 0 (in that order) of the data: the
    # reports map back through the subject list
    lens = [3, 5, 2]
    sub = [0, 2]                # SEP s0(3) SEP s2(2) SEP SEP
    assert report_subjects([([], None), ([0, 3], sub)], 0, lens) == [0]
    assert report_subjects([([], None), ([0, 6], sub)], 0, lens) == [2]
    assert report_subjects([([], None), ([0, 5], sub)], 0, lens) == [0, 2]
    assert report_subjects([([0, 9], None), ([0, 6], sub)], 0, lens) == [1, 2]
    assert report_subjects([([0, 9], None), ([0, 99], sub)], 0, lens) == [1, 2]


PATTERNS = [
    (r"\bfree\s+money\b", "i"),
    (r"^\s*click\b", "im"),
    (r"(\w)\1{3}", ""),                         # a back-reference: prefilter only
    (r"v[\W_]{0,3}i[\W_]{0,3}a[\W_]{0,3}g", "i"),
    (r"\xe9t\xe9", ""),
    (r"^$", "m"),                               # empty subjects
    (r"x$", "m"),
]

WORDS = [b"free", b"money", b"click", b"aaaa", b"v.i-a g", b"\xe9t\xe9", b"x",
         b"FREE  MONEY", b" ", b"\t", b"zz", b"\xc3\xa9", b"Click", b"m", b"v"]


def _subjects(rng: random.Random) -> list[bytes]:
    return [b" ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 5)))
            for _ in range(rng.randrange(1, 9))]


def _database(long_: bool) -> tuple[hsdb.AreaDatabase, list[re.Pattern]]:
    entries = []
    pys = []
    for pat, mods in PATTERNS:
        p = perlre.compile_pattern(pat, mods)
        en = perlre.hyperscan_entry(p, pat, mods, joined=True)
        en.flags |= hs.HS_FLAG_PREFILTER        # reports to be confirmed
        en.exact = False
        if long_:
            # long enough for the "long" group and its ASCII twin (the split scan)
            en.exprs = [b"(?:" + e + b")|(?:" + b"q" * hsdb.LONG_EXPR + b")" for e in en.exprs]
        entries.append(en)
        flags = (re.I if "i" in mods else 0) | (re.M if "m" in mods else 0)
        pys.append(re.compile(pat.encode("latin-1"), flags))
    return hsdb.AreaDatabase(entries, ascii_long=long_, label="t"), pys


@pytest.mark.parametrize("long_", [False, True], ids=["short", "twinned"])
def test_every_matching_subject_is_reported(long_):
    db, pys = _database(long_)
    if long_:
        assert any(t is not None for t in db.db_ascii)
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        lines = _subjects(rng)
        buf = perlre.joined_buffer(lines)
        found, ends = db.scan_ends(buf)
        assert found == db.scan(buf)
        for i, py in enumerate(pys):
            want = [k for k, s in enumerate(lines) if py.search(s)]
            if not want:
                continue
            assert i in found
            got = hsdb.report_subjects(ends, i, [len(s) for s in lines])
            assert set(want) <= set(got), (lines, i)
            checked += 1
    assert checked > 300


RULES = r"""
body    __R1  /\bfree\s+(m)oney\s\1/i
body    __R2  /\b(cl)ick\b.*\b\1/
body    __R3  /^\s*click\b/im
body    __R4  /(v)[\W_]{0,3}i[\W_]{0,3}a[\W_]{0,3}g\W*\1/i
tflags  __R4  multiple
rawbody __R5  /\b(free)\b.*\b\1\b/
tflags  __R5  nosubject
score   __R1  0.1
score   __R2  0.1
score   __R3  0.1
score   __R4  0.1
score   __R5  0.1
"""


def test_hits_are_the_same_without_narrowing(monkeypatch):
    sc = SpamScanner(rules=C.parse_text(RULES, "rules.cf"), cache_dir=None)
    rng = random.Random(11)
    bodies = [b"\n\n".join(_subjects(rng)) + b"\n" for _ in range(120)]
    bodies += [b"aaaa\n\nfree money\n\nclick here v.i.a.g v-i-a-g\n\nbbbx\n"]
    narrowed = 0
    reported = E.Run._reported

    def spy(i, ends, lines, b, ls):
        nonlocal narrowed
        out = reported(i, ends, lines, b, ls)
        narrowed += out[0] is not b
        return out

    monkeypatch.setattr(E.Run, "_reported", staticmethod(spy))
    got = [{n: v for n, v in sc.run(_msg(b)).values.items() if n.startswith("__R")}
           for b in bodies]
    assert narrowed > 20
    monkeypatch.setattr(E.Run, "_reported", staticmethod(lambda i, ends, lines, b, ls: (b, ls)))
    want = [{n: v for n, v in sc.run(_msg(b)).values.items() if n.startswith("__R")}
            for b in bodies]
    assert got == want
    for name in ("__R1", "__R2", "__R4", "__R5"):   # each hits some bodies, not all
        assert 0 < sum(name in w for w in want) < len(want), name


def _msg(body: bytes) -> bytes:
    return b"From: a@example.com\nSubject: aaaa free money\n\n" + body
