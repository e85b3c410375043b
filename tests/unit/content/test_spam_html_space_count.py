"""spamhtml.space_count (both twins): the white space Node.rendered counts
for an HTML part's non_space_len, one pass instead of a str.count per
character, checked against the per-character counts on every character
class that matters and on random texts."""

from __future__ import annotations

import random

import pytest

from postier.content.spam.message import UNI_SPACE


def _reference(text: str, flagged: bool) -> int:
    return sum(map(text.count, UNI_SPACE if flagged else " \t\n\r\x0b"))


def test_every_character_below_0x3100(impl):
    sc = impl("spamhtml").space_count
    for flagged in (False, True):
        for c in map(chr, range(0x3100)):
            want = _reference(c, flagged)
            assert sc(c, flagged) == want, (hex(ord(c)), flagged)
            assert sc("a" + c * 3 + "\u0100", flagged) == 3 * want, (hex(ord(c)), flagged)


def test_counts_by_flag(impl):
    sc = impl("spamhtml").space_count
    text = "a b\tc\nd\re\x0bf\x0cg\x85h\xa0i\u2003j\u3000k\u200bl"
    assert sc(text, False) == 5                 # no form feed, nothing above ASCII
    assert sc(text, True) == 10                 # Unicode White_Space (not U+200B)
    assert sc("", True) == 0 and sc("", False) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_texts(impl, seed):
    sc = impl("spamhtml").space_count
    rng = random.Random(seed)
    alphabet = list(UNI_SPACE) + ["a", "\x00", "\x1c", "\x1f", "\xe9", "\u2028", "\u200b", "\U0001f600",
                                  "\ud800", "\x0c", "\x0b"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for flagged in (False, True):
            assert sc(text, flagged) == _reference(text, flagged), (text, flagged)
