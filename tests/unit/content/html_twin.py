"""What the HTML renderer's tests compare between postier._native.spamhtml
and its pure twin: every field a renderer leaves after rendering texts."""

from __future__ import annotations


def snapshot(mod, texts: str | list[str], flagged: bool) -> tuple:
    """A fresh mod.HtmlRenderer after rendering texts (one or several) with flagged."""
    h = mod.HtmlRenderer()
    for text in [texts] if isinstance(texts, str) else texts:
        h.render(text, flagged)
    return (h.results, list(h.text), list(h.text_ws), list(h.text_inv), h.text_flag,
            dict(h.inside), h.uri, h.anchor, h.rendered_text(), h.rendered_text(False),
            h.rendered_text(True))


def latin1(text: str) -> str:
    """text with every character above U+00FF replaced by '?' (what an unflagged render gets)."""
    return "".join(c if ord(c) < 256 else "?" for c in text)
