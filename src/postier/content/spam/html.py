"""HTML rendering as SpamAssassin does it (Mail::SpamAssassin::HTML on HTML::Parser).

The implementation lives in the native module postier._native.spamhtml
(Cython) and its pure-Python twin postier._pure.spamhtml (same API, same
results; POSTIER_PURE=1 selects the twin); this module re-exports the one
`postier.native.load("spamhtml")` picks.  See the twin's docstring for what
is implemented:

* `Tokenizer`: a port of HTML::Parser 3.81's hparser.c in its default mode
  (start/end tags, attributes, comments, declarations, literal elements,
  marked sections, end-of-document flush), entities decoded like
  HTML::Entities::decode (`decode_entities`).
* `space_count(text, flagged)`: the white space a rendered text holds (for
  non_space_len), in one pass.
* `HtmlRenderer`: Mail::SpamAssassin::HTML's handlers: rendered text with
  whitespace and invisible-text bookkeeping, the text style stack, URIs with
  their tag types and anchor text, and the statistics the HTMLEval rules read.

Strings follow Perl's model: text is a Python str plus a flag saying whether
Perl would hold it as characters (UTF-8 flagged) or as bytes.

Parameters read: none.
"""

from __future__ import annotations

from postier.native import load

_impl = load("spamhtml")

HtmlRenderer = _impl.HtmlRenderer
Tokenizer = _impl.Tokenizer
decode_entities = _impl.decode_entities
space_count = _impl.space_count

# cold helpers and tables: always the pure module's (the native one imports them)
from postier._pure.spamhtml import (  # noqa: E402
    ENTITIES,
    HTML_COLORS,
    MAX_URI_LENGTH,
    name_to_rgb,
    parse_css_background,
    target_uri,
)

__all__ = ["ENTITIES", "HTML_COLORS", "MAX_URI_LENGTH", "HtmlRenderer", "Tokenizer",
           "decode_entities", "name_to_rgb", "parse_css_background", "space_count", "target_uri"]
