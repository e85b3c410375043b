"""SpamAssassin HTML rendering: postier._native.spamhtml and its pure twin.

Each tricky input is checked for what SpamAssassin's HTML.pm/HTML::Parser
make of it (rendered and invisible text, results, URIs), and both
implementations must give identical results on every input, on generated
markup soup and on HTML parts of the corpus (slow).
"""

from __future__ import annotations

import os
import random

import pytest

from postier._pure import spamhtml as P

CORPUS = "/work/shared/corpus"


def render(mod, text: str, flagged: bool = False):
    h = mod.HtmlRenderer()
    h.render(text, flagged)
    return h


def snapshot(mod, text: str, flagged: bool = False) -> tuple:
    """Everything a renderer produces, comparable across implementations."""
    h = render(mod, text, flagged)
    return (h.results, list(h.text), list(h.text_ws), list(h.text_inv), h.text_flag,
            h.rendered_text(), h.rendered_text(False), h.rendered_text(True))


TRICKY = {
    "unclosed": ("<html><body><b>bold <i>text<p>para", False),
    "comment": ("a<!-- hidden <b> -->b<!x>c<!-- unterminated", False),
    "entities": ("&amp; &lt;&gt; &#65;&#x42; &eacute &euro; &euro &#0; &#xD800; &#1114112; "
                 "&ampx &notin; &noti", False),
    "entities_flagged": ("&#233; &#x2019; &#xFFFE; &#xD800;", True),
    "entity_flags_text": ("plain &#x263A; smile", False),
    "cdata": ("a<![CDATA[x<b>y&amp;]]>z", False),
    "script_style": ('<script>var a="<b>";</script><style>p{color:red}</style>text<script>x',
                     False),
    "bad_attributes": ("<a href=\"http://x.test/a\"\" title= =x 'q'=1><img src= >t</a>", False),
    "nul_bytes": ("a\x00b<b\x00c>d</b\x00c>", False),
    "huge_attribute": ('<a href="http://x.test/' + "a" * 10000 + '">link</a>', False),
    "latin1_bytes": ('caf\xe9 \xc2\xa0x\xff<font color="#ffffff">hidden</font>', False),
    "utf8_chars": ('caf\xe9 \u2019 \u201cq\u201d<a href="http://\ufeffx.test/">y</a>', True),
    "base_href": ('<base href="http://b.test/dir/page.html"><a href="../up/x.html?q#f">r</a>'
                  "<img src=i.png>", False),
    "styles": ('<div style="display:none">gone</div><p style="color: rgb(255,255,255)">white</p>'
               "<font size=1>tiny</font>shown", False),
    "marked_sections": ("<![ ignore [ hidden ]]>vis<![ rcdata [ <b>&amp; ]]>", False),
    "marked_section_at_end": ("x<![include[&#0;]]", False),
    "declarations": ('<!DOCTYPE html PUBLIC "-//W3C//DTD"><?php x ?></ x>', False),
    "literal_elements": ("<title>T &amp; <b>x</title><textarea>a &lt; b</textarea>"
                         "<xmp><b>raw</b></xmp>", False),
    "uppercase_and_namespaces": ('<A HREF="HTTP://Up.test/">u</A><o:p>x</o:p><st1:place>y', False),
    "refresh_and_charset": ("<meta http-equiv=refresh content='0; url=http://r.test/;x'>"
                            "<meta http-equiv='Content-Type' content='text/html; charset=koi8-r'>",
                            False),
    "self_closing": ("a<br/>b<br />c<hr/>d", False),
    "text_at_chunk_end": ("word1 word2 <b", False),
}


def test_tricky_inputs_render_as_spamassassin(impl):
    m = impl("spamhtml")
    h = render(m, *TRICKY["unclosed"])
    assert h.rendered_text() == "bold text\n\npara"
    assert h.results["inside"] == {"html": 1, "body": 1, "b": 1, "i": 1, "p": 1}

    h = render(m, *TRICKY["comment"])
    assert h.rendered_text() == "abc"
    assert h.results["comment"] == ["<!-- hidden <b> -->", "<!x>", "<!-- unterminated"]

    h = render(m, *TRICKY["entities"])
    assert h.rendered_text() == "& <> AB \xe9 \u20ac &euro &#0; \ufffd &#1114112; &x \u2209 \xaci"
    assert h.text_flag        # entities above U+00FF make Perl's string characters

    h = render(m, *TRICKY["entities_flagged"])
    assert h.rendered_text() == "\xe9 \u2019 &#xFFFE; \ufffd"

    h = render(m, *TRICKY["cdata"])
    assert h.rendered_text() == "ax<b>y&amp;z"          # CDATA: neither markup nor entities

    h = render(m, *TRICKY["script_style"])
    assert h.rendered_text() == "text"
    assert h.results["script"] == ['var a="<b>";', "x"]
    assert h.results["inside"] == {"script": 0, "style": 0}

    h = render(m, *TRICKY["bad_attributes"])
    assert h.results["uri"] == ["http://x.test/a"]
    assert h.results["anchor"] == ["<img>\nt"]

    h = render(m, *TRICKY["nul_bytes"])
    assert h.rendered_text() == "a\x00bd"
    assert h.results["inside"] == {"b\x00c": 0}

    h = render(m, *TRICKY["huge_attribute"])
    assert h.results["uri_truncated"] is True
    assert len(h.results["uri"][0]) == P.MAX_URI_LENGTH

    h = render(m, *TRICKY["latin1_bytes"])
    assert h.rendered_text() == "caf\xe9  x\xffhidden"     # "\xc2\xa0" collapses to a space
    assert h.rendered_text(True) == "hidden"
    assert h.results["font_low_contrast"] == 1
    assert not h.text_flag

    h = render(m, *TRICKY["utf8_chars"])
    assert h.rendered_text() == 'caf\xe9 \u2019 "q"y'
    assert h.results["uri"] == ["http://x.test/"]          # BOM removed from href

    h = render(m, *TRICKY["base_href"])
    assert h.results["uri"] == ["http://b.test/dir/page.html", "http://b.test/up/x.html?q#f",
                                "../up/x.html?q#f", "http://b.test/dir/i.png"]

    h = render(m, *TRICKY["styles"])
    assert h.rendered_text(True) == "gonewhitetiny"
    assert h.rendered_text(False).strip() == "shown"
    assert h.results["min_size"] == 1

    h = render(m, *TRICKY["marked_sections"])
    assert h.rendered_text() == "vis <b>& "

    h = render(m, *TRICKY["marked_section_at_end"])      # ran past the buffer once
    assert h.rendered_text().startswith("x")

    h = render(m, *TRICKY["declarations"])
    assert h.results["inside"] == {"!doctype": 0}
    assert h.results["comment"] == ["</ x>"]

    h = render(m, *TRICKY["literal_elements"])
    assert h.results["title"] == ["T & <b>x"]
    assert "<b>raw</b>" in h.rendered_text()

    h = render(m, *TRICKY["uppercase_and_namespaces"])
    assert h.results["uri"] == ["HTTP://Up.test/"]
    assert h.results["inside"]["o:p"] == 0

    h = render(m, *TRICKY["refresh_and_charset"])
    assert h.results["uri"] == ["http://r.test/"]
    assert h.results["charsets"] == "koi8-r"

    h = render(m, *TRICKY["self_closing"])
    assert h.rendered_text() == "a\nb\nc\n\nd"


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_native_matches_pure_on_tricky_inputs(impl, name):
    text, flagged = TRICKY[name]
    assert snapshot(impl("spamhtml"), text, flagged) == snapshot(P, text, flagged)


def test_decode_entities(impl):
    m = impl("spamhtml")
    assert m.decode_entities("a &amp b", False, True) == ("a & b", False)
    assert m.decode_entities("&ampx", False, True) == ("&x", False)
    assert m.decode_entities("&ampx", False, False) == ("&ampx", False)
    assert m.decode_entities("&#x263a;", False, False) == ("\u263a", True)
    assert m.decode_entities("&#233;", False, False) == ("\xe9", False)
    assert m.decode_entities("&#xFFFF; &#99999999;", True, False) == ("&#xFFFF; &#99999999;", True)
    assert m.decode_entities("&#xFDD0;&#55296", True, False) == ("\ufffd\ufffd", True)
    assert m.decode_entities("no entities", True, True) == ("no entities", True)


class Recorder:
    def __init__(self):
        self.events = []

    def on_start(self, tag, attrs, flagged):
        self.events.append(("start", tag, attrs, flagged))

    def on_end(self, tag):
        self.events.append(("end", tag))

    def on_text(self, text, is_cdata, flagged):
        self.events.append(("text", text, is_cdata, flagged))

    def on_comment(self, text):
        self.events.append(("comment", text))

    def on_declaration(self, text):
        self.events.append(("decl", text))


def test_tokenizer_events_with_any_handler(impl):
    m = impl("spamhtml")
    rec = Recorder()
    tok = m.Tokenizer(rec, False)
    tok.parse(b"<P Class=x CLASS=y checked a='&#x263a;'>hi &amp; <!--c-->")
    tok.parse(b"<script>1<2</script ><!DOCTYPE x>tail")
    tok.eof()
    assert rec.events == [
        ("start", "p", {"class": "x", "checked": "checked", "a": "\u263a"}, True),
        ("text", "hi & ", False, False),
        ("comment", "<!--c-->"),
        ("start", "script", {}, False),
        ("text", "1<2", True, False),
        ("end", "script"),
        ("decl", "<!DOCTYPE x>"),
        ("text", "tail", False, False),
    ]


_ATOMS = [
    "<", ">", "</", "/>", "<!--", "-->", "--", "<!", "<![CDATA[", "]]>", "]]", "<?", "?>",
    "<!DOCTYPE html>", "<!ENTITY x 'y'>", "<![ ignore [", "<![ rcdata [", "<![include[",
    "&amp;", "&amp", "&#65;", "&#x41", "&#xD800;", "&#1114112;", "&#0;", "&nbsp;", "&eacute",
    "&euro;", "&eur", "&ampx", "&#xFFFE;", "&", ";", "#",
    "<a href='http://www.x.test/a/../b/./c.html?q#f'>", "<a href=x.test/y >", "</a>",
    "<base href='http://base.test/dir/file.htm'>", "<img src=./i.png width=10 height=5%>",
    "<img x/src=\"y\">", "<font color=red size=+2 face='Arial'>", "<font color=#fff>", "</font>",
    "<p style='color: rgb(1,2,300); background: url(x) #fff, red'>",
    "<div style='display:none'>", "<span style='visibility: hidden; color: transparent'>",
    "<td bgcolor=white>", "<tr>", "</td>", "<table>", "</table>", "<script>", "</script>",
    "<style>", "</style >", "</STYLE>", "<title>", "</title>", "<textarea>", "<xmp>",
    "<plaintext>", "<iframe src=http://i.test>", "<br>", "<br />", "<o:p>", "</o:p>",
    "<meta http-equiv=refresh content='0; url=http://r.test/;x'>", "<form action='mailto:a@b'>",
    "<embed src=e.swf>", "<basefont size=5>", "<big>", "<small>", "<body bgcolor=#000 text=#000001>",
    "</body>", "</html>", "<li>", "<h1>", " ", "  ", "\n", "\t", "\r\n", "\xa0", "\xc2\xa0",
    "\u201c", "x", "Hello", "w0rld", "!!", "...", "\x00", "\xff", "\xe9", "\u0100", "\ufeff",
    "<a b=\"", "'", '"', "=", "<x a=1 a=2 B=3 c>", "<a\thref=\tfoo\t>", "<ab:cd>",
    "<a href=' http://sp.test '>", "<!-- a -- b -->", "<! x >", "</ x>", "<a href=../up>",
]
_CHARS = "<>/!-[]&#;=\"' abAB\nx1:?\xa0\xc2"


@pytest.mark.parametrize("seed", range(4))
def test_native_matches_pure_on_markup_soup(impl, seed):
    m = impl("spamhtml")
    rng = random.Random(seed)
    for _ in range(150):
        parts = [rng.choice(_ATOMS) if rng.random() < 0.6 else
                 "".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 8)))
                 for _ in range(rng.randint(0, 30))]
        text = "".join(parts)
        flagged = rng.random() < 0.5
        if not flagged:     # Perl bytes: code points below 256
            text = text.encode("utf-8", "surrogatepass").decode("latin-1")
        assert snapshot(m, text, flagged) == snapshot(P, text, flagged), text


def _corpus_html_parts(limit: int) -> list[tuple[str, bool]]:
    from postier.content.spam import message

    parts: list[tuple[str, bool]] = []

    class Recording(P.HtmlRenderer):
        def render(self, text, flagged):
            parts.append((text, flagged))
            super().render(text, flagged)

    with open(os.path.join(CORPUS, "labels.tsv")) as f:
        paths = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    saved = message.HtmlRenderer
    message.HtmlRenderer = Recording
    try:
        for path in paths[::3]:
            with open(os.path.join(CORPUS, path), "rb") as f:
                msg = message.Message(f.read())
            for part in msg.find_parts():
                part.rendered()
            if len(parts) >= limit:
                break
    finally:
        message.HtmlRenderer = saved
    return parts[:limit]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(CORPUS, "labels.tsv")),
                    reason="corpus not present")
def test_native_matches_pure_on_corpus_html():
    from postier.native import load

    native = load("spamhtml", pure=False)
    if not native.__name__.startswith("postier._native."):
        pytest.skip("native module spamhtml not built")
    parts = _corpus_html_parts(200)
    assert len(parts) == 200
    for text, flagged in parts:
        assert snapshot(native, text, flagged) == snapshot(P, text, flagged), text[:200]
