"""postier._native.spamhtml against its twin where the native renderer
tests characters in C instead of with the twin's regexes: the obfuscation
and "backhair" counts of HTML.pm's text handler, which look at the last
character of the text so far and the first of the next text."""

from __future__ import annotations

import itertools

import pytest

from postier._pure import spamhtml as P

# ASCII punctuation, letters, digits, blanks, the controls Perl's Unicode \s
# adds (\x1c-\x1f), DEL, Latin-1 and Unicode spaces, letters above ASCII
_EDGE = ["a", "Z", "5", "_", "!", "/", ":", "@", "[", "`", "{", "~", " ", "\t", "\x1c", "\x1f",
         "\x7f", "\x01", "\x85", "\xa0", "\xe9", "\u3000", "\u2028", "\u0100", "\ud800"]


def _counts(mod, text: str, flagged: bool) -> tuple:
    h = mod.HtmlRenderer()
    h.render(text, flagged)
    r = h.results
    return r.get("obfuscation_ratio"), r.get("backhair_count"), h.backhair, h.rendered_text()


@pytest.mark.parametrize("flagged", [False, True])
def test_obfuscation_and_backhair_edges(impl, flagged):
    m = impl("spamhtml")
    for a, b in itertools.product(_EDGE, repeat=2):
        if not flagged and (ord(a) > 255 or ord(b) > 255):
            continue
        for text in (f"x{a}<b>{b}y", f"word{a}{a}<i>{b}{b}word", f"{a}<u>{b}"):
            assert _counts(m, text, flagged) == _counts(P, text, flagged), (text, flagged)


def test_obfuscation_counts_letters_split_by_tags(impl):
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render("V<b>i</b>a<i>g</i>ra, and . <b>,</b> x", False)
    # V|i, i|a, a|g, g|ra are letter pairs split by markup; "." / "," are not
    assert h.obfuscation == 4
    assert h.results["obfuscation_ratio"] == 4 / 6
