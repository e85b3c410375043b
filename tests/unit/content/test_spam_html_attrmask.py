"""The native HTML renderer's attribute shortcuts against the pure twin.

postier._native.spamhtml decodes short attribute values through a cache
keyed on their bytes and the decoding mode (the same value is the same
string object again), keeps which needed attribute names a start tag holds
as bits (the first of repeated names wins without a dict look-up), tells
_style_attrs which allowed names are present (it skips the others, and
applies the present ones in the attributes' own order, as the twin, with the
size bounds checked after each one) and tells the URI handler when no key
holds a "/".  Markup aimed at these must
give what the pure twin gives, in both decoding modes.
"""

from __future__ import annotations

import random

import pytest
from html_twin import snapshot

from postier._pure import spamhtml as P

PIECES = [
    "<font color=red size=+2 face=Arial>", "<FONT SIZE=1 Color=\"#ffffff\" COLOR=blue>",
    "<font size=7 size=1>", "<big>", "<big><big>", "</big>", "<small>", "</font>",
    "<basefont size=5>", "<basefont size=x color=red>", "<body text=white bgcolor=white>",
    "<body BGCOLOR=black bgcolor=white link=red>", "<td bgcolor=#000000 style=\"color:#000\">",
    "<th style=\"display:none\" bgcolor=red>", "<tr style='visibility:hidden'>", "</td>", "</tr>",
    "<table bgcolor=transparent style=\"background-color:transparent\">", "</table>",
    "<span style=\"color:transparent\">", "</span>", "<div style=\"font-size:1px\">", "</div>",
    "<p style=color:red>", "<marquee bgcolor=red>", "<a href=h1 href=h2>", "<a HREF=h3 x/href=h4>",
    "<a a/href=h5 href=h6>", "<a data-saferedirecturl=http://r.example/ href=h7>",
    "<img src=i1 src=i2 width=10 height=20>", "<img WIDTH=50% HEIGHT=50% width=1>",
    "<img x/src=i3 src=i4>", "<img src=\"i&amp;5\">", "<form action=mailto:x@y.example>",
    "<meta http-equiv=Content-Type content=\"text/html; charset=utf-8\">",
    "<meta http-equiv=refresh content=\"0; url=http://m.example/\">",
    "<base href=http://b.example/d/>", "<font face=\"Times\xe9\">", "<font color=\"\xe9\xe9\">",
    "<font color=\"\xc3\xa9\">", "<font face=\"\xc3\xa9\">", "text ", "more\n", "x",
    "<font color=#fffffe>", "<font color=>", "<font size>", "<body bgcolor>",
]


@pytest.mark.parametrize("seed", range(4))
def test_attribute_markup_matches_pure(impl, seed):
    m = impl("spamhtml")
    rnd = random.Random(7000 + seed)
    for _ in range(250):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 25)))
        for flagged in (False, True):
            assert snapshot(m, [text], flagged) == snapshot(P, [text], flagged), (text, flagged)


def test_same_value_bytes_in_both_modes(impl):
    """One value's bytes decode per mode (the cache keys on the mode)."""
    m = impl("spamhtml")
    text = "<font face=\"\xc3\xa9t\xc3\xa9\" color=\"\xc3\xa9\">x</font>"
    for order in ((False, True, False), (True, False, True)):
        for flagged in order:
            got = snapshot(m, [text], flagged)
            assert got == snapshot(P, [text], flagged)


def test_first_repeated_attribute_wins(impl):
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render("<a href=http://one.example/ HREF=http://two.example/>t</a>", False)
    assert "http://one.example/" in h.uri
    assert "http://two.example/" not in h.uri
    h = m.HtmlRenderer()
    h.render("<font color=white COLOR=black><body bgcolor=white>hidden</font>", False)
    assert h.results == snapshot(P, ["<font color=white COLOR=black><body bgcolor=white>hidden</font>"],
                                 False)[0]


def test_namespaced_href_only_when_present(impl):
    m = impl("spamhtml")
    for text in ("<a x/href=http://ns.example/>n</a><a href=http://plain.example/>p</a>",
                 "<a href=http://plain.example/>p</a><a x/href=http://ns.example/>n</a>"):
        h = m.HtmlRenderer()
        h.render(text, False)
        assert set(h.uri) == {"http://ns.example/", "http://plain.example/"}


def test_style_attrs_in_attribute_order_regression(impl):
    """The bug: the native _style_attrs applied a tag's style attributes in
    its allowed names' order, the twin in the attributes' own; the size
    bounds are checked after each one, so <big><big><FONT SIZE=1 Color=..>
    left max_size 6 natively and 5 in the twin."""
    m = impl("spamhtml")
    for text in ("<big><big><FONT SIZE=1 Color=red>x", "<big><big><font color=red size=1>x",
                 "<small><small><FONT SIZE=7 Color=red>x"):
        for flagged in (False, True):
            assert snapshot(m, [text], flagged) == snapshot(P, [text], flagged), (text, flagged)
