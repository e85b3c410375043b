"""The native HTML renderer's byte scans and memos against the pure twin.

postier._native.spamhtml finds the next "<", a quoted attribute value's
closing quote and the bytes render rewrites ("&", "/", "\\xe2") with
memchr, copies the runs between them at once, checks a tag's first and
last letters before asking whether it starts a literal section, looks at
namespaced href/src keys only when some key holds a "/", replaces a BOM in
an href only where there is one, and remembers the last contrast answer by
the colors' identity.  Markup aimed at these (runs at the buffer's ends,
unterminated quotes, literal tags in any case, look-alike names) must give
what the pure twin gives.
"""

from __future__ import annotations

import random

import pytest
from html_twin import latin1, snapshot

from postier._pure import spamhtml as P

PIECES = [
    "", " ", "\n", "x", "word ", "<", ">", "/", "/>", "&", "&nbsp;", "&nbsp", "\xe2", "\xe2\x80\x9c",
    "\xe2\x80\x9d", "\xe2\x80", "'", '"', "=", "<p>", "</p>", "<br/>", "<b />",
    "<SCRIPT>", "</ScRiPt>", "<Style>", "</STYLE>", "<xmp>", "</XMP>", "<IFRAME src=f.html>",
    "</iframe>", "<PlainText>", "<Title>", "</title>", "<textarea>", "</TextArea>",
    "<table>", "<tbody>", "<strong>", "<sxp>", "<ixe>", "<piece>", "<tempo>", "<scripta>",
    "<a href=\"http://a.example/\ufeffx\">", "<a href='http://b.example/\xef\xbb\xbfy'>",
    "<a xlink/href=\"http://ns.example/\">", "<a href=\"h\" a/b=c>", "<img x/src=\"i.gif\">",
    "<img src='i.gif' width=\"1\" height='2'>", "<a href=\"unterminated", "<a href='open",
    "<font color=\"#ffffff\">", "<font color=#fffffe>", "</font>", "<body bgcolor=\"white\">",
    "<span style=\"color:#fff;background-color:#fff\">", "</span>", "<font color=red>x",
]


@pytest.mark.parametrize("seed", range(6))
def test_generated_markup_matches_pure(impl, seed):
    m = impl("spamhtml")
    rnd = random.Random(1000 + seed)
    for _ in range(200):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 30)))
        for flagged in (False, True):
            t = text if flagged else latin1(text)
            assert snapshot(m, [t], flagged) == snapshot(P, [t], flagged), (t, flagged)


@pytest.mark.parametrize("tag", ["script", "SCRIPT", "Style", "xmp", "IFRAME", "plaintext",
                                 "TITLE", "textarea"])
def test_literal_tags_in_any_case(impl, tag):
    m = impl("spamhtml")
    text = f"a<{tag}>b <p> c</{tag}>d"
    for flagged in (False, True):
        assert snapshot(m, [text], flagged) == snapshot(P, [text], flagged)


@pytest.mark.parametrize("tag", ["table", "tbody", "strong", "small", "sxp", "piece"])
def test_look_alike_names_are_not_literal(impl, tag):
    # the same lengths and letters at one end as a literal name: markup
    # inside stays markup
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render(f"<{tag}>a<b>c</b></{tag}>", False)
    assert h.rendered_text().strip() == "ac"


def test_bom_in_href(impl):
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render('<a href="http://a.example/\ufeffx">t</a>', True)
    assert "http://a.example/x" in h.results["uri"]
    h = m.HtmlRenderer()
    h.render("<a href='http://b.example/\xef\xbb\xbfy'>t</a><a href=http://c.example/>u</a>", False)
    assert h.results["uri"] == ["http://b.example/y", "http://c.example/"]


def test_namespaced_href_and_src(impl):
    m = impl("spamhtml")
    text = ('<a x:href="http://x.example/">t</a><a xlink/href="http://ns.example/">t</a>'
            '<img v/src="http://i.example/i.gif"><a a/b=c>u</a>')
    for flagged in (False, True):
        got = snapshot(m, [text], flagged)
        assert got == snapshot(P, [text], flagged)
        assert "http://ns.example/" in got[0]["uri"] and "http://i.example/i.gif" in got[0]["uri"]


def test_same_colors_again(impl):
    # one contrast answer asked for twice in a row, and another in between
    m = impl("spamhtml")
    text = ("<font color=#ffffff>a</font><body bgcolor=#ffffff><font color=#ffffff>b</font>"
            "<font color=#000000>c</font><font color=#ffffff>d</font>")
    for flagged in (False, True):
        got = snapshot(m, [text], flagged)
        assert got == snapshot(P, [text], flagged)
        assert got[0].get("font_low_contrast") == 1


def test_unterminated_quote_and_long_runs(impl):
    m = impl("spamhtml")
    long_run = "y" * 5000
    for text in (f"<a href='{long_run}", f"{long_run}<p>{long_run}&nbsp;{long_run}/>",
                 f"<p title=\"{long_run}\">z", "<" * 300 + ">" * 300):
        for flagged in (False, True):
            assert snapshot(m, [text], flagged) == snapshot(P, [text], flagged)
