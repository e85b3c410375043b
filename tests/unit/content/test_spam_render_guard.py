"""Guard of the rendered body: the spam engine's speed work must not change it.

* A corpus hash guard: for a sample of the corpus (every 20th message of
  labels.tsv), a hash of everything the message model and the HTML renderer
  expose -- the rendered, visible, invisible and decoded bodies, the HTML
  results of every part (text, URIs, tag counts, ratios, ...), and each HTML
  part's text pieces with their whitespace/invisible flags -- compared with
  the hashes recorded in tests/golden/spam_render/corpus_guard.json, for the
  native renderer and its pure twin.  Skipped when the corpus is absent.
  Re-record (only after a change meant to alter results) with
  `.venv/bin/python tests/unit/content/test_spam_render_guard.py --record`.
* Generated markup aimed at the renderer's shortcuts (the text style stack,
  the attributes parsed only for the tags that read them, the tag table,
  the self-closing tag rewrite, absolute URIs without a base), where both
  implementations must agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys

import pytest
from html_twin import snapshot

from postier._pure import spamhtml as P

CORPUS = "/work/shared/corpus"
GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "golden", "spam_render",
                      "corpus_guard.json")
STEP = 20


def _sample_paths() -> list[str]:
    with open(os.path.join(CORPUS, "labels.tsv")) as f:
        paths = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    return paths[::STEP]


def _message_hash(data: bytes, renderer_cls) -> str:
    """The hash of what the message model gives with that renderer class."""
    from postier.content.spam import message

    created = []

    def factory():
        r = renderer_cls()
        created.append(r)
        return r

    saved = message.HtmlRenderer
    message.HtmlRenderer = factory
    try:
        msg = message.Message(data)
        h = hashlib.sha256()
        for got in (msg.rendered_body(), msg.visible_rendered_body(), msg.invisible_rendered_body(),
                    msg.decoded_body(), msg.html_all(), sorted(msg.flags)):
            h.update(repr(got).encode())
        for part in msg.find_parts():
            h.update(repr((part.type, part.rendered(), part.html_results)).encode())
        for r in created:
            h.update(repr((r.results, list(r.text), list(r.text_ws), list(r.text_inv),
                           r.text_flag)).encode())
    finally:
        message.HtmlRenderer = saved
    return h.hexdigest()[:16]


def _hashes(renderer_cls) -> dict[str, str]:
    out = {}
    for path in _sample_paths():
        with open(os.path.join(CORPUS, path), "rb") as f:
            out[path] = _message_hash(f.read(), renderer_cls)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(CORPUS, "labels.tsv")),
                    reason="corpus not present")
def test_corpus_render_guard(impl):
    with open(GOLDEN) as f:
        expected = json.load(f)["messages"]
    got = _hashes(impl("spamhtml").HtmlRenderer)
    assert len(got) == len(expected) > 100
    changed = [p for p in expected if got.get(p) != expected[p]]
    assert not changed, f"{len(changed)} messages render differently, e.g. {changed[:5]}"


# -- generated markup aimed at the shortcuts

FRAGMENTS = [
    "<", "/", ">", "a", "B", "1", "_", " ", "\t", "\n", "\x1c", "\xa0", "\xe9", "\u2003", "\u0663",
    "\xdf", "-", "/>", "<br", "<x />", "<br/>", "<BR />", "<\xe9/>", "<p\u2003/>", "<\u0663 />",
    "<td bgcolor=red style='color:transparent'>", "<TD STYLE=\"display:none\">", "<tr>", "</td>",
    "</TR>", "<font color=#fff size=+2 face=x>", "</font>", "<font size=1>", "<th bgcolor=#000>",
    "<span style=\"visibility:hidden;background-color:transparent\">", "</span>",
    "<div style=\"color: rgb(1,2,3); font-size:1px\">", "</div>", "<dIv StYlE='DISPLAY:NONE'>",
    "<a href=\"http://x.example.com/p?q#f\">", "<a HREF=http://y.com/./z>", "</a>",
    "<A o:href=\"http://ns.com/\" href=\"http://h.com\">", "<a href=x href=y class=z>",
    "<a href=\"javascript:void(0)\" x/href=\"http://nsx.com\">", "<a h\xe9f=1 HrEf='http://u.com'>",
    "<img src=\"cid:foo\" width=10 height=20%>", "<img SRC=/rel/p.gif WIDTH=0 alt=x>",
    "<base href=\"http://b.com/dir/f.html\">", "<base href=x>", "<marquee bgcolor=red>",
    "<body text=white bgcolor=white background=\"bg.gif\" link=red>", "</body>", "</html>",
    "<meta http-equiv=refresh content=\"0; url=http://r.com/\">", "<title>", "</title>",
    "<meta http-equiv=Content-Type content=\"text/html; charset=utf-8\">", "<script>", "</script>",
    "<style>p{}</style>", "<big>", "<small>", "</big>", "<basefont size=5>", "<basefont size=x>",
    "<p style=\"color:#000\">", "<table bgcolor=#000000 style=\"background:#fff\">", "<th>",
    "<form action=mailto:x@y>", "<embed src=e.swf>", "<object>", "<st1:place>", "</st1:place>",
    "<o:p>", "<!-- c -->", "<!doctype html>", "&amp;", "&#x263A;", "&nbsp;", "word", "w.o.r.d",
    "<iframe src=\"http://i.com\">", "</iframe>", "<td style=\"color:inherit\">", "<FONT COLOR=\"#FEFEFE\">",
    "<area href=\"http://area.com\" data-saferedirecturl=\"http://s.com/?q=1\">",
    "<link href=\"http://l.com\n/x#a\nb\">", "<a href='http:/x.com'>", "<a href='http://x.com/a/../b'>",
    "<a href=\"HTTP://Up.COM\">", "<a href=\"://x\">", "<a href=\"h:/\">", "<a href=\"s?c:/x\">",
    "<a href=\"  http://sp.com  \">", "<unknowntag a=b>", "</unknowntag>", "<A\xe9>", "<blockquote>",
]


@pytest.mark.parametrize("seed", range(4))
def test_generated_markup_matches_pure(impl, seed):
    m = impl("spamhtml")
    rnd = random.Random(seed)
    for _ in range(300):
        text = "".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(0, 30)))
        for flagged in (False, True):
            if not flagged:
                text = "".join(c if ord(c) < 256 else "?" for c in text)
            assert snapshot(m, text, flagged) == snapshot(P, text, flagged), (text, flagged)


def test_self_closing_tags(impl):
    # <(\w+)\s*/> becomes <\1>, with Unicode's \w and \s for character
    # strings: <br/> and <p\u2003/> are tags then, <\u0663/> (a digit
    # first) is text, and a tag with no name or a space first is not one
    h = impl("spamhtml").HtmlRenderer()
    h.render("a<br/>b<br />c<p\u2003/>d<\u0663/>e</>f< br/>g", True)
    assert h.rendered_text() == "a\nb\nc\n\nd<\u0663>ef< br/>g"
    # bytes: NBSP is no \s, so "<br\xa0/>" stays an unknown tag (no text)
    h = impl("spamhtml").HtmlRenderer()
    h.render("a<br\xa0/>b<br\t/>c", False)
    assert h.rendered_text() == "ab\nc"


def test_style_stack_and_filtered_attributes(impl):
    m = impl("spamhtml")
    h = m.HtmlRenderer()
    h.render("<td style='display:none'>hidden</td> <td>shown "
             "<span style='color:transparent;background-color:#fff'>gone</span> "
             "<font size=1>tiny</font> <font size=+4>big</font> "
             "<a href=x CLASS=c v/href='http://ns.example.com/'>ns</a> "
             "<img src=i.gif width=10 height=20 alt=pic>", False)
    # display:none, a transparent color (the background's) and size 1 hide
    assert h.rendered_text(True) == "hiddengonetiny"
    assert h.rendered_text(False).split() == ["shown", "big", "ns"]
    r = h.results
    assert (r["max_size"], r["min_size"]) == (7, 1)          # 3 + 4, 1
    # the namespaced href replaces href; the img's area is 10 x 20
    assert list(r["uri_detail"]) == ["http://ns.example.com/", "i.gif"]
    assert r["image_area"] == 200
    assert r["inside"] == {"td": 1, "span": 0, "font": 0, "a": 0, "img": 1}


if __name__ == "__main__" and "--record" in sys.argv:
    from postier.native import load

    hashes = _hashes(load("spamhtml").HtmlRenderer)
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w") as f:
        json.dump({"recorded_with": "postier._pure.spamhtml (POSTIER_PURE=1), before the renderer speed work of issue #7",
                   "sample": f"every {STEP}th message of {CORPUS}/labels.tsv",
                   "messages": hashes}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(hashes)} messages recorded in {GOLDEN}")
