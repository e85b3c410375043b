"""The native HTML renderer's shortcuts against the pure twin.

postier._native.spamhtml takes shortcuts the pure twin does not: render's
rewrites of a text Perl holds as bytes in one pass (&nbsp;, the self-closing
tag rewrite, the curly quotes, the latin-1 encoding), white-space-only text
events without their string, texts and attribute values without "&" without
decode_entities, the known tags' `inside` counts kept in C (synced into the
dict when read), tag numbers instead of names, a style's contrast answer
carried to the styles copied from it.  Generated markup aimed at these
must give what the pure twin gives.
"""

from __future__ import annotations

import random

import pytest
from html_twin import latin1, snapshot

from postier._pure import spamhtml as P

FRAGMENTS = [
    " ", "\n", "\t", "\r\n", "\x0b", "\x0c", "  \n  ", "", "x", "Word", ".", "!", "\xc2\xa0", "\xa0",
    "&nbsp;", "&nbsp", "&NBSP;", "&nbsp;&nbsp;", "&amp;", "&#32;", "&", "/", ">", "<", "/>", " />",
    "<br/>", "<br&nbsp;/>", "<p &nbsp;/>", "<a&nbsp;/>", "&nbsp;/>", "<b>/>", "<_1/>", "<\xe9/>",
    "\xe2\x80\x9c", "\xe2\x80\x9d", "\xe2\x80", "\xe2", "\x80\x9c", "<\xe2\x80\x9c/>", "\xe2\x80\x9c/>",
    "<a href=\"http://a.example/\">", "<a href=\"\xe2\x80\x9chttp://q.example/\xe2\x80\x9d\">",
    "<a href='x&amp;y'>", "<a href=&quot;z>", "</a>", "<title>", "</title>", "<script>",
    "</script>", "<style>", "</style>", "<td>", "</td>", "<tr>", "</tr>", "<th>", "</th>",
    "<font color=white>", "<font color=#fffffe>", "</font>", "<body bgcolor=white>", "</body>",
    "<span style=\"color:#ffffff\">", "</span>", "<div style='display:none'>", "</div>",
    "<p>", "</p>", "<table bgcolor=#fff>", "</table>", "<html>", "</html>", "<![CDATA[", "]]>",
    "<![ignore[", "<![rcdata[", "<![include[", "<![ [", "<!-- c -->", "<!doctype html>", "<img src=i.gif width=1 height=1>",
    "<big>", "</big>", "<small>", "<font size=1>", "<unknown>", "</unknown>", "<o:p>", "</o:p>",
]


@pytest.mark.parametrize("seed", range(6))
def test_generated_markup_matches_pure(impl, seed):
    m = impl("spamhtml")
    rnd = random.Random(seed)
    for _ in range(250):
        text = "".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(0, 40)))
        for flagged in (False, True):
            if not flagged:
                text = latin1(text)
            assert snapshot(m, [text], flagged) == snapshot(P, [text], flagged), (text, flagged)


def test_two_renders_on_one_renderer(impl):
    # the C counts of the known tags carry over to the next render like the dict's
    m = impl("spamhtml")
    texts = ["<html><td><a href=http://a.example/>x", "</a></td>\n </td></html></style><a>y"]
    for flagged in (False, True):
        assert snapshot(m, texts, flagged) == snapshot(P, texts, flagged)


@pytest.mark.parametrize("text, expected", [
    ("a&nbsp;b", "a b"),
    ("a<br&nbsp;/>b", "a\nb"),                      # the space &nbsp; leaves, then <br />
    ("x\xe2\x80\x9cq\xe2\x80\x9dy", 'x"q"y'),
    ("<p>\n  </p>  \t<p>z", "z"),
])
def test_byte_text_rewrites(impl, text, expected):
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render(text, False)
    assert h.rendered_text().strip() == expected


def test_empty_text_in_marked_section(impl):
    # an include section ending right away gives an empty text event: an
    # empty piece, not a space
    m = impl("spamhtml")
    for flagged in (False, True):
        h = m.HtmlRenderer()
        h.render("<p>a<![include[]]>b", flagged)
        assert list(h.text) == list(snapshot(P, ["<p>a<![include[]]>b"], flagged)[1])
        assert "" in list(h.text)


def test_inside_read_while_parsing(impl):
    # inside is complete when read before render's end (the tokenizer
    # driving the renderer directly)
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    tok = m.Tokenizer(h, False)
    tok.parse(b"<td><td></td><font>x</font></font><zz>")
    assert h.inside == {"td": 1, "font": 0, "zz": 1}
    tok.parse(b"</td></zz>")
    tok.eof()
    assert h.inside == {"td": 0, "font": 0, "zz": 0}


def test_whitespace_text_inside_counted_tags(impl):
    # white space inside a, title and script keeps its string there
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render("<title> \n </title><a href=http://a.example/> \t </a><script>\n</script>", False)
    assert h.results["title"] == [" \n "]
    assert h.results["script"] == ["\n"]
    assert h.results["uri_detail"]["http://a.example/"]["anchor_text"] == [" \t "]
