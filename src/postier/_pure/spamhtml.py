"""Pure-Python twin of postier._native.spamhtml: SpamAssassin's HTML rendering.

Same API and results as the Cython module (POSTIER_PURE=1 selects this one);
postier.content.spam.html loads one of the two.  The Cython module imports
the cold helpers (tables, colors, relative URIs) from here.

HTML rendering as SpamAssassin does it (Mail::SpamAssassin::HTML on HTML::Parser).

Two layers:

* `Tokenizer`: a port of HTML::Parser 3.81's hparser.c in its default mode
  (api_version 3, marked_sections on, non-strict comments): start/end tags
  with MSIE-style quote skipping in end tags, attributes (first one wins,
  names lower-cased, values unquoted and entity-decoded, a bare attribute's
  value is its name), comments (`<!-- -->`, `<! ...>`, `</ ...>`),
  declarations (DOCTYPE/ENTITY), processing instructions (ignored), literal
  elements (script, style, xmp, iframe, plaintext as CDATA; title and
  textarea literal but entity-decoded), `<![CDATA[ ]]>` marked sections,
  text held back at the end of a chunk, and the end-of-document flush
  (unterminated markup becomes a comment).  Entities are decoded like
  HTML::Entities::decode (Latin-1 names without `;`, the rest with `;`,
  numeric references with or without `;`, prefix expansion in text).
* `HtmlRenderer`: Mail::SpamAssassin::HTML's handlers: rendered text with
  whitespace and invisible-text bookkeeping, the text style stack (colors,
  font sizes, CSS display/visibility), URIs with their tag types and anchor
  text (relative URIs resolved against <base href>), and the statistics the
  HTMLEval rules read (`inside` tag counts, image area, obfuscation and
  backhair counts, closed_extra, title, comments, ...).
* `space_count(text, flagged)`: the white space characters of a rendered
  text, as Node.rendered counts them for non_space_len.

Strings follow Perl's model: text is a Python str plus a flag saying
whether Perl would hold it as characters (UTF-8 flagged: decoded text, or
text that received an entity above U+00FF) or as bytes (code points below
256); the flag picks Unicode or ASCII semantics for \\s, \\w and \\b, and
decides how the rendered text is turned back into octets.

Parameters read: none.
"""

from __future__ import annotations

import re

MAX_URI_LENGTH = 8192

# HTML::Entities::%entity2char (HTML-Parser 3.81): Latin-1 names work
# without ";", the others only with it (their keys include the ";").
ENTITIES = {
    "AElig": 0xC6, "Aacute": 0xC1, "Acirc": 0xC2, "Agrave": 0xC0, "Alpha;": 0x391,
    "Aring": 0xC5, "Atilde": 0xC3, "Auml": 0xC4, "Beta;": 0x392, "Ccedil": 0xC7, "Chi;": 0x3A7,
    "Dagger;": 0x2021, "Delta;": 0x394, "ETH": 0xD0, "Eacute": 0xC9, "Ecirc": 0xCA,
    "Egrave": 0xC8, "Epsilon;": 0x395, "Eta;": 0x397, "Euml": 0xCB, "Gamma;": 0x393,
    "Iacute": 0xCD, "Icirc": 0xCE, "Igrave": 0xCC, "Iota;": 0x399, "Iuml": 0xCF, "Kappa;": 0x39A,
    "Lambda;": 0x39B, "Mu;": 0x39C, "Ntilde": 0xD1, "Nu;": 0x39D, "OElig;": 0x152,
    "Oacute": 0xD3, "Ocirc": 0xD4, "Ograve": 0xD2, "Omega;": 0x3A9, "Omicron;": 0x39F,
    "Oslash": 0xD8, "Otilde": 0xD5, "Ouml": 0xD6, "Phi;": 0x3A6, "Pi;": 0x3A0, "Prime;": 0x2033,
    "Psi;": 0x3A8, "Rho;": 0x3A1, "Scaron;": 0x160, "Sigma;": 0x3A3, "THORN": 0xDE,
    "Tau;": 0x3A4, "Theta;": 0x398, "Uacute": 0xDA, "Ucirc": 0xDB, "Ugrave": 0xD9,
    "Upsilon;": 0x3A5, "Uuml": 0xDC, "Xi;": 0x39E, "Yacute": 0xDD, "Yuml;": 0x178, "Zeta;": 0x396,
    "aacute": 0xE1, "acirc": 0xE2, "acute": 0xB4, "aelig": 0xE6, "agrave": 0xE0,
    "alefsym;": 0x2135, "alpha;": 0x3B1, "amp": 0x26, "and;": 0x2227, "ang;": 0x2220,
    "apos": 0x27, "aring": 0xE5, "asymp;": 0x2248, "atilde": 0xE3, "auml": 0xE4,
    "bdquo;": 0x201E, "beta;": 0x3B2, "brvbar": 0xA6, "bull;": 0x2022, "cap;": 0x2229,
    "ccedil": 0xE7, "cedil": 0xB8, "cent": 0xA2, "chi;": 0x3C7, "circ;": 0x2C6, "clubs;": 0x2663,
    "cong;": 0x2245, "copy": 0xA9, "crarr;": 0x21B5, "cup;": 0x222A, "curren": 0xA4,
    "dArr;": 0x21D3, "dagger;": 0x2020, "darr;": 0x2193, "deg": 0xB0, "delta;": 0x3B4,
    "diams;": 0x2666, "divide": 0xF7, "eacute": 0xE9, "ecirc": 0xEA, "egrave": 0xE8,
    "empty;": 0x2205, "emsp;": 0x2003, "ensp;": 0x2002, "epsilon;": 0x3B5, "equiv;": 0x2261,
    "eta;": 0x3B7, "eth": 0xF0, "euml": 0xEB, "euro;": 0x20AC, "exist;": 0x2203, "fnof;": 0x192,
    "forall;": 0x2200, "frac12": 0xBD, "frac14": 0xBC, "frac34": 0xBE, "frasl;": 0x2044,
    "gamma;": 0x3B3, "ge;": 0x2265, "gt": 0x3E, "hArr;": 0x21D4, "harr;": 0x2194,
    "hearts;": 0x2665, "hellip;": 0x2026, "iacute": 0xED, "icirc": 0xEE, "iexcl": 0xA1,
    "igrave": 0xEC, "image;": 0x2111, "infin;": 0x221E, "int;": 0x222B, "iota;": 0x3B9,
    "iquest": 0xBF, "isin;": 0x2208, "iuml": 0xEF, "kappa;": 0x3BA, "lArr;": 0x21D0,
    "lambda;": 0x3BB, "lang;": 0x2329, "laquo": 0xAB, "larr;": 0x2190, "lceil;": 0x2308,
    "ldquo;": 0x201C, "le;": 0x2264, "lfloor;": 0x230A, "lowast;": 0x2217, "loz;": 0x25CA,
    "lrm;": 0x200E, "lsaquo;": 0x2039, "lsquo;": 0x2018, "lt": 0x3C, "macr": 0xAF,
    "mdash;": 0x2014, "micro": 0xB5, "middot": 0xB7, "minus;": 0x2212, "mu;": 0x3BC,
    "nabla;": 0x2207, "nbsp": 0xA0, "ndash;": 0x2013, "ne;": 0x2260, "ni;": 0x220B, "not": 0xAC,
    "notin;": 0x2209, "nsub;": 0x2284, "ntilde": 0xF1, "nu;": 0x3BD, "oacute": 0xF3,
    "ocirc": 0xF4, "oelig;": 0x153, "ograve": 0xF2, "oline;": 0x203E, "omega;": 0x3C9,
    "omicron;": 0x3BF, "oplus;": 0x2295, "or;": 0x2228, "ordf": 0xAA, "ordm": 0xBA,
    "oslash": 0xF8, "otilde": 0xF5, "otimes;": 0x2297, "ouml": 0xF6, "para": 0xB6,
    "part;": 0x2202, "permil;": 0x2030, "perp;": 0x22A5, "phi;": 0x3C6, "pi;": 0x3C0,
    "piv;": 0x3D6, "plusmn": 0xB1, "pound": 0xA3, "prime;": 0x2032, "prod;": 0x220F,
    "prop;": 0x221D, "psi;": 0x3C8, "quot": 0x22, "rArr;": 0x21D2, "radic;": 0x221A,
    "rang;": 0x232A, "raquo": 0xBB, "rarr;": 0x2192, "rceil;": 0x2309, "rdquo;": 0x201D,
    "real;": 0x211C, "reg": 0xAE, "rfloor;": 0x230B, "rho;": 0x3C1, "rlm;": 0x200F,
    "rsaquo;": 0x203A, "rsquo;": 0x2019, "sbquo;": 0x201A, "scaron;": 0x161, "sdot;": 0x22C5,
    "sect": 0xA7, "shy": 0xAD, "sigma;": 0x3C3, "sigmaf;": 0x3C2, "sim;": 0x223C,
    "spades;": 0x2660, "sub;": 0x2282, "sube;": 0x2286, "sum;": 0x2211, "sup1": 0xB9,
    "sup2": 0xB2, "sup3": 0xB3, "sup;": 0x2283, "supe;": 0x2287, "szlig": 0xDF, "tau;": 0x3C4,
    "there4;": 0x2234, "theta;": 0x3B8, "thetasym;": 0x3D1, "thinsp;": 0x2009, "thorn": 0xFE,
    "tilde;": 0x2DC, "times": 0xD7, "trade;": 0x2122, "uArr;": 0x21D1, "uacute": 0xFA,
    "uarr;": 0x2191, "ucirc": 0xFB, "ugrave": 0xF9, "uml": 0xA8, "upsih;": 0x3D2,
    "upsilon;": 0x3C5, "uuml": 0xFC, "weierp;": 0x2118, "xi;": 0x3BE, "yacute": 0xFD,
    "yen": 0xA5, "yuml": 0xFF, "zeta;": 0x3B6, "zwj;": 0x200D, "zwnj;": 0x200C,
}

# hctype (HTML-Parser's mkhctype as built on Debian): bytes
_SPACE = frozenset(b" \t\n\v\f\r")
_RUN_SPACE = re.compile(rb"[ \t\n\x0b\x0c\r]*")          # runs the tokenizer skips
_RUN_NAME = re.compile(rb"[^ \t\n\x0b\x0c\r>]*")
_RUN_ATTR = re.compile(rb"[^ \t\n\x0b\x0c\r=>]*")
_NAME_FIRST = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:")
_NAME_CHAR = _NAME_FIRST | frozenset(b"0123456789.-")
_LITERAL = {b"script": True, b"style": True, b"xmp": True, b"iframe": True,
            b"plaintext": True, b"title": False, b"textarea": False}
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_HEX = "0123456789abcdefABCDEF"


_SPACES_FLAGGED = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                   "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_SPACES_BYTES = " \t\n\r\x0b"


def space_count(text: str, flagged: bool) -> int:
    """How many white space characters a rendered text holds, as
    Node.rendered counts them for html_results' non_space_len: the
    characters of Perl's \\s on characters (Unicode White_Space) when
    flagged, else space, tab, newline, CR and vertical tab (no form feed)."""
    return sum(map(text.count, _SPACES_FLAGGED if flagged else _SPACES_BYTES))


def decode_entities(text: str, flagged: bool, expand_prefix: bool) -> tuple[str, bool]:
    """util.c decode_entities: (decoded text, flag after decoding)."""
    if "&" not in text:
        return text, flagged
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find("&", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        s = j + 1
        repl = None
        if s < n and text[s] == "#":
            s += 1
            num = 0
            ok = False
            if s < n and text[s] in "xX":
                s += 1
                while s < n and text[s] in _HEX:
                    num = num << 4 | int(text[s], 16)
                    if num > 0x10FFFF:
                        ok = False
                        break
                    s += 1
                    ok = True
            else:
                while s < n and "0" <= text[s] <= "9":
                    num = num * 10 + ord(text[s]) - 48
                    if num > 0x10FFFF:
                        ok = False
                        break
                    s += 1
                    ok = True
            if num and ok:
                if not flagged and num <= 255:
                    repl = chr(num)
                elif num in (0xFFFE, 0xFFFF):
                    pass
                else:
                    if 0xD800 <= num <= 0xDFFF or 0xFDD0 <= num <= 0xFDEF or (num & 0xFFFE) == 0xFFFE:
                        num = 0xFFFD
                    repl = chr(num)
                    flagged = True
        else:
            k = s
            while k < n and ord(text[k]) < 128 and ord(text[k]) in _ALNUM:
                k += 1
            if k != s:
                name = text[s:k]
                cp = ENTITIES.get(name)
                if cp is None and k < n and text[k] == ";":
                    cp = ENTITIES.get(name + ";")
                if cp is not None:
                    s = k
                elif expand_prefix:
                    ss = k - 1
                    while ss > s:
                        cp = ENTITIES.get(text[s:ss])
                        if cp is not None:
                            s = ss
                            break
                        ss -= 1
                if cp is not None:
                    repl = chr(cp)
                    if cp > 255:
                        flagged = True
            if repl is None:
                s = k
        if repl is not None:
            if s < n and text[s] == ";":
                s += 1
            out.append(repl)
        else:
            out.append(text[j:s])
        i = s
    return "".join(out), flagged


class Tokenizer:
    """HTML::Parser's parse()/eof() over bytes, calling the handler's
    on_start(tag, attrs, flagged), on_end(tag), on_text(text, is_cdata,
    flagged), on_comment(text), on_declaration(text)."""

    def __init__(self, handler, utf8: bool):
        self.h = handler
        self.utf8 = utf8
        self.buf = b""
        self.literal: bytes | None = None
        self.is_cdata = False
        self.ms_stack: list[list[str]] = []
        self.ms = 0                   # 0 none, 1 include, 2 rcdata, 3 cdata, 4 ignore
        self.pending_end_tag: bytes | None = None
        self.no_dash_dash = False

    def _dec(self, b: bytes) -> str:
        return b.decode("utf-8", "surrogateescape") if self.utf8 else b.decode("latin-1")

    # -- events
    def _event(self, kind: str, *args) -> None:
        if self.pending_end_tag is not None and kind not in ("text", "comment"):
            tag = self.pending_end_tag
            self.pending_end_tag = None
            self.h.on_end(tag.decode("latin-1").lower())
        if kind == "none" or self.ms == 4:
            return
        if kind == "text":
            data, = args
            text = self._dec(data)
            flagged = self.utf8
            if not self.is_cdata:
                text, flagged = decode_entities(text, flagged, True)
            self.h.on_text(text, self.is_cdata, flagged)
        elif kind == "start":
            name, attrs = args
            d: dict[str, str] = {}
            flagged = self.utf8
            for an, av in attrs:
                key = self._dec(an).lower() if not self.utf8 else _ascii_lower(self._dec(an))
                if av is None:
                    val = self._dec(an)
                else:
                    if av[:1] in (b'"', b"'"):
                        av = av[1:-1]
                    val, _f = decode_entities(self._dec(av), self.utf8, False)
                    flagged = flagged or _f
                if key not in d:
                    d[key] = val
            self.h.on_start(_ascii_lower(self._dec(name)), d, flagged)
        elif kind == "end":
            name, = args
            self.h.on_end(_ascii_lower(self._dec(name)))
        elif kind == "comment":
            self.h.on_comment(self._dec(args[0]))
        elif kind == "decl":
            self.h.on_declaration(self._dec(args[0]))

    # -- parse_* functions: return new position, the start position when more
    # data is needed, or None when it is not markup
    def _skip_until_gt(self, b: bytes, s: int, end: int) -> int:
        quote = 0
        prev = 0x20
        while s < end:
            c = b[s]
            if not quote and c == 0x3E:
                return s
            if c in (0x22, 0x27):
                if c == quote:
                    quote = 0
                elif not quote and prev in (0x20, 0x3D):
                    quote = c
            prev = c
            s += 1
        return end

    def _parse_comment(self, b: bytes, beg: int, end: int, start: int):
        s = beg
        if self.no_dash_dash:
            while s < end and b[s] != 0x3E:
                s += 1
            if s < end:
                s += 1
                self._event("comment", b[start:s])
                return s
            return beg
        while True:
            while s < end and b[s] != 0x2D:
                s += 1
            tok_end = s
            if s < end:
                s += 1
                if s < end and b[s] == 0x2D:
                    s += 1
                    while s < end and b[s] in _SPACE:
                        s += 1
                    if s < end and b[s] == 0x3E:
                        s += 1
                        self._event("comment", b[start:s])
                        return s
                if s < end:
                    s = tok_end + 1
                    continue
            if s >= end:
                return beg
        return None  # pragma: no cover

    def _parse_marked_section(self, b: bytes, beg: int, end: int):
        s = beg + 3
        tokens: list[str] | None = None
        while True:
            while s < end and b[s] in _SPACE:
                s += 1
            while s < end and b[s] in _NAME_FIRST:
                ns = s
                s += 1
                while s < end and b[s] in _NAME_CHAR:
                    s += 1
                ne = s
                while s < end and b[s] in _SPACE:
                    s += 1
                if s >= end:
                    return beg
                if tokens is None:
                    tokens = []
                tokens.append(b[ns:ne].decode("latin-1").lower())
            if s < end and b[s] == 0x2D:
                s += 1
                if s < end and b[s] == 0x2D:
                    s += 1
                    while True:
                        while s < end and b[s] != 0x2D:
                            s += 1
                        if s >= end:
                            return beg
                        s += 1
                        if s < end and b[s] == 0x2D:
                            s += 1
                            break
                    continue
                return None
            break
        if s < end and b[s] == 0x5B:
            s += 1
            if tokens is None:
                tokens = ["include"]
            self.ms_stack.append(tokens)
            self._ms_update()
            self._event("none")
            return s
        return None

    def _ms_update(self) -> None:
        order = {"include": 1, "rcdata": 2, "cdata": 3, "ignore": 4}
        ms = 0
        for toks in self.ms_stack:
            for t in toks:
                ms = max(ms, order.get(t, 0))
        self.ms = ms
        self.is_cdata = ms == 3

    def _parse_decl(self, b: bytes, beg: int, end: int):
        s = beg + 2
        if s < end and b[s] == 0x2D:
            s += 1
            if s >= end:
                return beg
            if b[s] != 0x2D:
                return self._decl_fail(b, beg, s, end)
            s += 1
            tmp = self._parse_comment(b, s, end, beg)
            return beg if tmp == s else tmp
        if s < end and b[s] == 0x5B:
            tmp = self._parse_marked_section(b, beg, end)
            if tmp is None:
                return self._decl_fail(b, beg, s, end)
            return tmp
        if s < end and b[s] == 0x3E:
            s += 1
            self._event("comment", b[beg:s])
            return s
        if s < end and (0x41 <= b[s] <= 0x5A or 0x61 <= b[s] <= 0x7A):
            decl = s
            s += 1
            while s < end and b[s] in _NAME_CHAR:
                s += 1
            if s >= end:
                return beg
            name = b[decl:s].lower()
            if name not in (b"doctype", b"entity"):
                return self._decl_fail(b, beg, s, end)
            while True:
                while s < end and b[s] in _SPACE:
                    s += 1
                if s >= end:
                    return beg
                c = b[s]
                if c in (0x22, 0x27):
                    q = c
                    s += 1
                    while s < end and b[s] != q:
                        s += 1
                    if s >= end:
                        return beg
                    s += 1
                elif c == 0x2D:
                    s += 1
                    if s >= end:
                        return beg
                    if b[s] != 0x2D:
                        return self._decl_fail(b, beg, s, end)
                    s += 1
                    while True:
                        while s < end and b[s] != 0x2D:
                            s += 1
                        if s >= end:
                            return beg
                        s += 1
                        if s >= end:
                            return beg
                        if b[s] == 0x2D:
                            s += 1
                            break
                elif c != 0x3E:
                    s += 1
                    while s < end and b[s] not in _SPACE and b[s] != 0x3E:
                        s += 1
                    if s >= end:
                        return beg
                else:
                    break
            if s >= end:
                return beg
            if b[s] == 0x3E:
                s += 1
                self._event("decl", b[beg:s])
                return s
            return self._decl_fail(b, beg, s, end)
        return self._decl_fail(b, beg, s, end)

    def _decl_fail(self, b: bytes, beg: int, s: int, end: int):
        while s < end and b[s] != 0x3E:
            s += 1
        if s < end:
            s += 1
            self._event("comment", b[beg:s])
            return s
        return beg

    def _parse_start(self, b: bytes, beg: int, end: int):
        s = _RUN_NAME.match(b, beg + 2, end).end()
        name = b[beg + 1:s]
        s = _RUN_SPACE.match(b, s, end).end()
        if s >= end:
            return beg
        attrs = []
        while s < end and b[s] not in _SPACE and b[s] != 0x3E:
            an = s
            s = _RUN_ATTR.match(b, s + 1, end).end()
            if s >= end:
                return beg
            aname = b[an:s]
            s = _RUN_SPACE.match(b, s, end).end()
            if s >= end:
                return beg
            if b[s] == 0x3D:
                s = _RUN_SPACE.match(b, s + 1, end).end()
                if s >= end:
                    return beg
                if b[s] == 0x3E:
                    attrs.append((aname, b""))
                    break
                if b[s] in (0x22, 0x27):
                    vs = s
                    k = b.find(b[s:s + 1], s + 1, end)
                    if k < 0:
                        return beg
                    s = k + 1
                    attrs.append((aname, b[vs:s]))
                else:
                    vs = s
                    s = _RUN_NAME.match(b, s, end).end()
                    if s >= end:
                        return beg
                    attrs.append((aname, b[vs:s]))
                s = _RUN_SPACE.match(b, s, end).end()
                if s >= end:
                    return beg
            else:
                attrs.append((aname, None))
        if s < end and b[s] == 0x3E:
            s += 1
            self._event("start", name, attrs)
            lit = name.lower()
            if lit in _LITERAL:
                self.literal = lit
                self.is_cdata = _LITERAL[lit]
            return s
        return None

    def _parse_end(self, b: bytes, beg: int, end: int):
        s = beg + 2
        if s < end and b[s] not in _SPACE and b[s] != 0x3E:
            ts = s
            s += 1
            while s < end and b[s] not in _SPACE and b[s] != 0x3E:
                s += 1
            te = s
            s = self._skip_until_gt(b, s, end)
            if s < end:
                if b[s] == 0x3E:
                    s += 1
                    self._event("end", b[ts:te])
                    return s
                return None  # pragma: no cover
            return beg
        s = self._skip_until_gt(b, s, end)
        if s < end:
            s += 1
            self._event("comment", b[beg:s])
            return s
        return beg

    def _parse_process(self, b: bytes, beg: int, end: int):
        s = beg + 2
        while s < end:
            if b[s] == 0x3E:
                s += 1
                self._event("process")
                return s
            s += 1
        return beg

    def _parse_buf(self, b: bytes, beg: int, end: int) -> int:
        s = t = beg
        while True:
            while self.literal is not None:
                lit = self.literal
                k = b.find(b"<", s, end)
                s = end if k < 0 else k
                if s >= end:
                    return t
                end_text = s
                s += 1
                if s < end and b[s] == 0x2F:
                    s += 1
                    k = 0
                    while k < len(lit) and s < end and (b[s] | 0x20 if 0x41 <= b[s] <= 0x5A else b[s]) == lit[k]:
                        s += 1
                        k += 1
                    if k == len(lit) and lit != b"plaintext":
                        te = s
                        while s < end and b[s] in _SPACE:
                            s += 1
                        if s < end and b[s] == 0x3E:
                            s += 1
                            if t != end_text:
                                self._event("text", b[t:end_text])
                            self._event("end", b[end_text + 2:te])
                            self.literal = None
                            self.is_cdata = False
                            t = s
            while self.ms in (2, 3):
                while s < end and b[s] != 0x5D:
                    s += 1
                if s < end and b[s] == 0x5D:
                    end_text = s
                    s += 1
                    if s + 1 < end + 1 and b[s:s + 2] == b"]>":
                        s += 2
                        if t != end_text:
                            self._event("text", b[t:end_text])
                        self._event("none")
                        t = s
                        self.ms_stack.pop()
                        self._ms_update()
                        continue
                if s >= end:
                    return t
            if not self.ms:
                k = b.find(b"<", s, end)
                s = end if k < 0 else k
            while s < end and b[s] != 0x3C:
                if self.ms and b[s] == 0x5D:
                    end_text = s
                    s += 1
                    if s < end and b[s] == 0x5D:
                        s += 1
                        if s < end and b[s] == 0x3E:
                            s += 1
                            self._event("text", b[t:end_text])
                            self._event("none")
                            t = s
                            self.ms_stack.pop()
                            self._ms_update()
                            continue
                s += 1
            if s != t:
                if s < end and b[s] == 0x3C:
                    self._event("text", b[t:s])
                    t = s
                else:
                    s -= 1
                    if s >= end:
                        # "]]" ending the buffer in a marked section: hparser.c
                        # steps past it and reads the NUL after it, not a space
                        s = end - 1
                    if b[s] in _SPACE:
                        while s >= t and b[s] in _SPACE:
                            s -= 1
                    else:
                        while s >= t and b[s] not in _SPACE:
                            s -= 1
                        while s >= t and b[s] in _SPACE:
                            s -= 1
                    s += 1
                    if s != t:
                        self._event("text", b[t:s])
                    return s
            if end - s < 3:
                return s
            c = b[s + 1]
            if c in _NAME_FIRST:
                new = self._parse_start(b, t, end)
            elif c == 0x2F:
                new = self._parse_end(b, t, end)
            elif c == 0x21:
                new = self._parse_decl(b, t, end)
            elif c == 0x3F:
                new = self._parse_process(b, t, end)
            else:
                new = None
            s += 1
            if new is not None:
                if new == t:
                    return t
                t = s = new

    def parse(self, chunk: bytes) -> None:
        if not chunk:
            return
        b = self.buf + chunk
        s = self._parse_buf(b, 0, len(b))
        self.buf = b[s:]

    def eof(self) -> None:
        b = self.buf
        s, end = 0, len(b)
        while s < end:
            if self.literal is not None:
                lit = self.literal
                if lit in (b"plaintext", b"xmp", b"iframe", b"textarea"):
                    break
                if lit in (b"script", b"style"):
                    self._event("end", lit)
                else:
                    self.pending_end_tag = lit
                self.literal = None
                s = self._parse_buf(b, s, end)
                continue
            if not self.no_dash_dash and b[s] == 0x3C:
                self.no_dash_dash = True
                s = self._parse_buf(b, s, end)
                continue
            if b[s] == 0x3C:
                if s + 1 == end or b[s + 1] in _NAME_FIRST or b[s + 1] in (0x2F, 0x21, 0x3F):
                    self._event("comment", b[s:end])
                    s = end
            break
        if s < end:
            self._event("text", b[s:end])
        self.buf = b""
        self.literal = None
        self.is_cdata = False


def _ascii_lower(s: str) -> str:
    return s.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(0x41, 0x5B)}

# -------------------------------------------------------------- SA's renderer

_ELEMENTS = frozenset((
    "a abbr acronym address area b base bdo big blockquote body br button caption cite code col "
    "colgroup dd del dfn div dl dt em fieldset form h1 h2 h3 h4 h5 h6 head hr html i img input ins "
    "kbd label legend li link map meta noscript object ol optgroup option p param pre q samp script "
    "select small span strong style sub sup table tbody td textarea tfoot th thead title tr tt ul var "
    "applet basefont center dir font frame frameset iframe isindex menu noframes s strike u "
    "nobr x-sigsep x-tab").split())
_TRICKS = frozenset("bgsound embed listing plaintext xmp".split())
_TEXT_STYLE = frozenset("body font table tr th td big small basefont marquee span p div a".split())
_WS_SPACE = frozenset("li th td dt dd embed h1 h2 h3 h4 h5 h6".split())
_WS_PARA = frozenset("p hr blockquote pre listing plaintext xmp title".split())
_HEX6 = re.compile(r"^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$")
_WHITESPACE = frozenset(("br div li th td dt dd p hr blockquote pre embed listing plaintext xmp "
                         "title h1 h2 h3 h4 h5 h6").split())
_URI_TAGS = frozenset(("body table tr td a area link img frame iframe embed script form base "
                       "bgsound meta").split())
_OK_ATTR = {
    "basefont": {"color", "face", "size"}, "body": {"text", "bgcolor", "link", "alink", "vlink",
                                                    "background"},
    "font": {"color", "face", "size"}, "marquee": {"bgcolor", "background"},
    "table": {"bgcolor", "style"}, "td": {"bgcolor", "style"}, "th": {"bgcolor", "style"},
    "tr": {"bgcolor", "style"}, "span": {"style"}, "p": {"style"}, "div": {"style"},
    "a": {"style"},
}
_NAMESPACE = re.compile(r"^(?:o|st\d):[\w-]+/?$", re.A)
_PUNCT_CLASS = r"[^\s\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]"
_OBF_START_U = re.compile("^" + _PUNCT_CLASS, re.S)
_OBF_END_U = re.compile(_PUNCT_CLASS + r"\Z", re.S)
_OBF_START_A = re.compile("^" + _PUNCT_CLASS, re.S | re.A)
_OBF_END_A = re.compile(_PUNCT_CLASS + r"\Z", re.S | re.A)
_HAIR_END_U = re.compile(r"\b(" + _PUNCT_CLASS + r"{1,7})\Z", re.S)
_HAIR_END_A = re.compile(r"\b(" + _PUNCT_CLASS + r"{1,7})\Z", re.S | re.A)
_HAIR_START_U = re.compile(r"^(" + _PUNCT_CLASS + r"{1,7})\b", re.S)
_HAIR_START_A = re.compile(r"^(" + _PUNCT_CLASS + r"{1,7})\b", re.S | re.A)
_WS_OR_NBSP = re.compile(r"[ \t\n\r\f\x0b]|\xc2\xa0")
_DISPLAY_WS = re.compile(r"[ \t\n\r\f\x0b]+|\xc2\xa0")
_FONT_FACE_OK = re.compile(r"""^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$""",
                           re.I)

HTML_COLORS = {
    "aqua": 0x00ffff, "black": 0x000000, "blue": 0x0000ff, "fuchsia": 0xff00ff, "gray": 0x808080,
    "green": 0x008000, "lime": 0x00ff00, "maroon": 0x800000, "navy": 0x000080, "olive": 0x808000,
    "purple": 0x800080, "red": 0xff0000, "silver": 0xc0c0c0, "teal": 0x008080, "white": 0xffffff,
    "yellow": 0xffff00, "aliceblue": 0xf0f8ff, "antiquewhite": 0xfaebd7, "aquamarine": 0x7fffd4,
    "azure": 0xf0ffff, "beige": 0xf5f5dc, "bisque": 0xffe4c4, "blanchedalmond": 0xffebcd,
    "blueviolet": 0x8a2be2, "brown": 0xa52a2a, "burlywood": 0xdeb887, "cadetblue": 0x5f9ea0,
    "chartreuse": 0x7fff00, "chocolate": 0xd2691e, "coral": 0xff7f50, "cornflowerblue": 0x6495ed,
    "cornsilk": 0xfff8dc, "crimson": 0xdc143c, "cyan": 0x00ffff, "darkblue": 0x00008b,
    "darkcyan": 0x008b8b, "darkgoldenrod": 0xb8860b, "darkgray": 0xa9a9a9, "darkgreen": 0x006400,
    "darkgrey": 0xa9a9a9, "darkkhaki": 0xbdb76b, "darkmagenta": 0x8b008b,
    "darkolivegreen": 0x556b2f, "darkorange": 0xff8c00, "darkorchid": 0x9932cc,
    "darkred": 0x8b0000, "darksalmon": 0xe9967a, "darkseagreen": 0x8fbc8f,
    "darkslateblue": 0x483d8b, "darkslategray": 0x2f4f4f, "darkslategrey": 0x2f4f4f,
    "darkturquoise": 0x00ced1, "darkviolet": 0x9400d3, "deeppink": 0xff1493,
    "deepskyblue": 0x00bfff, "dimgray": 0x696969, "dimgrey": 0x696969, "dodgerblue": 0x1e90ff,
    "firebrick": 0xb22222, "floralwhite": 0xfffaf0, "forestgreen": 0x228b22,
    "gainsboro": 0xdcdcdc, "ghostwhite": 0xf8f8ff, "gold": 0xffd700, "goldenrod": 0xdaa520,
    "greenyellow": 0xadff2f, "grey": 0x808080, "honeydew": 0xf0fff0, "hotpink": 0xff69b4,
    "indianred": 0xcd5c5c, "indigo": 0x4b0082, "ivory": 0xfffff0, "khaki": 0xf0e68c,
    "lavender": 0xe6e6fa, "lavenderblush": 0xfff0f5, "lawngreen": 0x7cfc00,
    "lemonchiffon": 0xfffacd, "lightblue": 0xadd8e6, "lightcoral": 0xf08080,
    "lightcyan": 0xe0ffff, "lightgoldenrodyellow": 0xfafad2, "lightgray": 0xd3d3d3,
    "lightgreen": 0x90ee90, "lightgrey": 0xd3d3d3, "lightpink": 0xffb6c1, "lightsalmon": 0xffa07a,
    "lightseagreen": 0x20b2aa, "lightskyblue": 0x87cefa, "lightslategray": 0x778899,
    "lightslategrey": 0x778899, "lightsteelblue": 0xb0c4de, "lightyellow": 0xffffe0,
    "limegreen": 0x32cd32, "linen": 0xfaf0e6, "magenta": 0xff00ff, "mediumaquamarine": 0x66cdaa,
    "mediumblue": 0x0000cd, "mediumorchid": 0xba55d3, "mediumpurple": 0x9370db,
    "mediumseagreen": 0x3cb371, "mediumslateblue": 0x7b68ee, "mediumspringgreen": 0x00fa9a,
    "mediumturquoise": 0x48d1cc, "mediumvioletred": 0xc71585, "midnightblue": 0x191970,
    "mintcream": 0xf5fffa, "mistyrose": 0xffe4e1, "moccasin": 0xffe4b5, "navajowhite": 0xffdead,
    "oldlace": 0xfdf5e6, "olivedrab": 0x6b8e23, "orange": 0xffa500, "orangered": 0xff4500,
    "orchid": 0xda70d6, "palegoldenrod": 0xeee8aa, "palegreen": 0x98fb98,
    "paleturquoise": 0xafeeee, "palevioletred": 0xdb7093, "papayawhip": 0xffefd5,
    "peachpuff": 0xffdab9, "peru": 0xcd853f, "pink": 0xffc0cb, "plum": 0xdda0dd,
    "powderblue": 0xb0e0e6, "rosybrown": 0xbc8f8f, "royalblue": 0x4169e1, "saddlebrown": 0x8b4513,
    "salmon": 0xfa8072, "sandybrown": 0xf4a460, "seagreen": 0x2e8b57, "seashell": 0xfff5ee,
    "sienna": 0xa0522d, "skyblue": 0x87ceeb, "slateblue": 0x6a5acd, "slategray": 0x708090,
    "slategrey": 0x708090, "snow": 0xfffafa, "springgreen": 0x00ff7f, "steelblue": 0x4682b4,
    "tan": 0xd2b48c, "thistle": 0xd8bfd8, "tomato": 0xff6347, "turquoise": 0x40e0d0,
    "violet": 0xee82ee, "wheat": 0xf5deb3, "whitesmoke": 0xf5f5f5, "yellowgreen": 0x9acd32,
}


def name_to_rgb(color: str) -> str:
    """HTML.pm name_to_rgb."""
    c = color.lower()
    c = re.sub(r"^\s*", "", c)
    c = re.sub(r"\s*$", "", c)
    hexv = HTML_COLORS.get(c)
    if hexv is not None:
        return f"#{hexv:06x}"
    if re.search(r"^[#a-f0-9]*$|rgb\([\d%, ]*\)", c, re.I | re.A):
        m = re.search(r"rgb\((\d+)%,\s*(\d+)%,\s*(\d+)%\s*\)", c, re.I | re.A)
        if m:
            c = "#" + "".join(_dec2hex(int(int(x) / 100 * 255)) for x in m.groups())
        m = re.search(r"rgb\((\d+),\s*(\d+),\s*(\d+)\s*\)", c, re.I | re.A)
        if m:
            c = "#" + "".join(_dec2hex(int(x)) for x in m.groups())
        if c.startswith("#"):
            c = re.sub(r"[^a-f0-9]", "", c, flags=re.I)
            if len(c) > 6:
                c = c[:6]
            if 3 < len(c) < 6:
                c = c[:3]
            if len(c) % 3:
                c += "0" * (3 - len(c) % 3)
            if len(c) == 3:
                c = c[0] * 2 + c[1] * 2 + c[2] * 2
        else:
            return "invalid"
    else:
        return "invalid"
    return "#" + c


def _dec2hex(d: int) -> str:
    return ("0" if d < 16 else "") + f"{d:x}"


def parse_css_background(bg: str) -> list[list[str]]:
    layers: list[list[str]] = []
    tokens: list[str] = []
    stack: list[int] = []
    state = 0
    token = ""
    for ch in bg:
        if state == 0:
            if ch == " ":
                if token:
                    tokens.append(token)
                token = ""
            elif ch == "(":
                token += ch
                stack.append(state)
                state = 1
            elif ch == '"':
                token += ch
                stack.append(state)
                state = 2
            elif ch == "'":
                token += ch
                stack.append(state)
                state = 3
            elif ch == ",":
                if token:
                    tokens.append(token)
                token = ""
                layers.append(tokens)
                tokens = []
            else:
                token += ch
        elif state == 1:
            if ch == ")":
                token += ch
                tokens.append(token)
                token = ""
                state = stack.pop()
            elif ch == '"':
                token += ch
                stack.append(state)
                state = 2
            elif ch == "'":
                token += ch
                stack.append(state)
                state = 3
            else:
                token += ch
        elif state == 2:
            token += ch
            if ch == '"':
                state = stack.pop()
        elif state == 3:
            token += ch
            if ch == "'":
                state = stack.pop()
    if token:
        tokens.append(token)
    if tokens:
        layers.append(tokens)
    return layers


# -- relative URIs (HTML.pm target_uri, RFC 2396 steps)
_URI_PARTS = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?")


def _parse_uri(u: str) -> dict:
    m = _URI_PARTS.match(u)
    return {"scheme": m.group(1), "authority": m.group(2), "path": m.group(3),
            "query": m.group(4), "fragment": m.group(5)}


def _remove_dot_segments(inp: str) -> str:
    out = ""
    if "/." not in inp and not inp.startswith(("./", "../")):
        return inp    # no dot segment: what the loop below rebuilds, segment by segment
    inp = re.sub(r"^(?:\.\.?/)", "/", inp, count=1)
    while inp:
        m = re.match(r"^/\.(?:$|/)", inp)
        if m:
            inp = "/" + inp[m.end():]
            continue
        m = re.match(r"^/\.\.(?:$|/)", inp)
        if m:
            inp = "/" + inp[m.end():]
            out = re.sub(r"/?[^/]*$", "", out, count=1)
            continue
        m = re.match(r"(/?[^/]*)", inp)
        out += m.group(1)
        inp = inp[m.end():]
        if m.end() == 0:    # Perl's loop cannot stall either: ($input) is false only when ""
            break
    return out


def _merge_uri(base_auth, base_path, r_path: str) -> str:
    if base_auth is not None and not base_path:
        return "/" + r_path
    if "/" in (base_path or ""):
        base_path = re.sub(r"(?<=/)[^/]*$", "", base_path)
    else:
        base_path = ""
    return base_path + r_path


def target_uri(base: str, r: str) -> str:
    R = _parse_uri(r)
    B = _parse_uri(base)
    T: dict = {}
    if R["scheme"] is not None and B["scheme"] is not None and R["scheme"] == B["scheme"]:
        R["scheme"] = None
    if R["scheme"] is not None:
        T["scheme"] = R["scheme"]
        T["authority"] = R["authority"]
        T["path"] = _remove_dot_segments(R["path"])
        T["query"] = R["query"]
    else:
        if R["authority"] is not None:
            T["authority"] = R["authority"]
            T["path"] = _remove_dot_segments(R["path"])
            T["query"] = R["query"]
        else:
            if R["path"] == "":
                T["path"] = B["path"]
                T["query"] = R["query"] if R["query"] is not None else B["query"]
            else:
                if R["path"].startswith("/"):
                    T["path"] = _remove_dot_segments(R["path"])
                else:
                    T["path"] = _remove_dot_segments(_merge_uri(B["authority"], B["path"], R["path"]))
                T["query"] = R["query"]
            T["authority"] = B["authority"]
        T["scheme"] = B["scheme"]
    T["fragment"] = R["fragment"]
    out = ""
    if T.get("scheme"):
        out += T["scheme"] + ":"
    elif T.get("authority") is not None:
        if re.match(r"^www\d*\.", T["authority"], re.I | re.A):
            out += "http:"
        elif re.match(r"^ftp\d*\.", T["authority"], re.I | re.A):
            out += "ftp:"
    if T.get("authority") is not None:
        out += "//" + T["authority"]
    out += T["path"] or ""
    if T.get("query") is not None:
        out += "?" + T["query"]
    if T.get("fragment") is not None:
        out += "#" + T["fragment"]
    return out


class HtmlRenderer:
    """Mail::SpamAssassin::HTML: feed with render(text, flagged)."""

    def __init__(self):
        self.results: dict = {}
        self.text: list[str] = []
        self.text_ws: list[bool] = []
        self.text_inv: list[bool] = []
        self.text_flag = False
        self.inside: dict[str, int] = {}
        self.uri: dict[str, dict] = {}
        self.anchor: list[str] = []
        self.anchor_last = ""
        self.base_href = ""
        self.uri_truncated = False
        self.counts = {"elements": 0, "elements_seen": 0, "tags": 0, "tags_seen": 0,
                       "closed_extra": 0}
        self.has = set()           # which counters exist (Perl's `exists`)
        self.obfuscation = 0
        self.backhair: dict[str, int] = {}
        self.comment: list[str] = []
        self.script: list[str] = []
        self.title: list[str] = []
        self.title_index = -1
        self.charsets: str | None = None
        self.image_area = 0
        self.max_size = 3
        self.min_size = 3
        self.closed_html = 0
        self.closed_body = 0
        self.length = 0
        self.basefont = 3
        self.text_style: list[dict] = []

    # -- driver (HTML.pm parse)
    def render(self, text: str, flagged: bool) -> None:
        self.results["html"] = 1
        self.basefont = 3
        self.text_style = [{"tag": "default", "fgcolor": "#000000", "bgcolor": "#ffffff",
                            "size": self.basefont}]
        self.length += len(text)
        text = text.replace("&nbsp;", " ")
        if "/>" in text:
            text = re.sub(r"<(\w+)\s*/>", r"<\1>", text, flags=re.I if flagged else re.I | re.A)
        if flagged:
            text = text.replace("\u201c", '"').replace("\u201d", '"')
        else:
            text = text.replace("\xe2\x80\x9c", '"').replace("\xe2\x80\x9d", '"')
        self.text_flag = flagged
        data = text.encode("utf-8", "surrogatepass") if flagged else text.encode("latin-1")
        tok = Tokenizer(self, flagged)
        tok.parse(data)
        while self.inside.get("style", 0) > 0:
            before = self.inside.get("style", 0)
            tok.parse(b"</style>")
            if self.inside.get("style", 0) >= before:
                break
        while self.inside.get("script", 0) > 0:
            before = self.inside.get("script", 0)
            tok.parse(b"</script>")
            if self.inside.get("script", 0) >= before:
                break
        tok.eof()
        self._end()

    def _end(self) -> None:
        r = self.results
        self.text_style = []
        r["uri"] = list(self.uri)
        r["anchor"] = self.anchor
        r["uri_detail"] = self.uri
        r["uri_truncated"] = self.uri_truncated
        r["image_area"] = self.image_area
        r["length"] = self.length
        r["min_size"] = self.min_size
        r["max_size"] = self.max_size
        c = self.counts
        if "tags" in self.has:
            r["closed_extra_ratio"] = c["closed_extra"] / c["tags"]
        r["comment"] = self.comment
        r["script"] = self.script
        r["title"] = self.title
        r["inside"] = self.inside
        if self.backhair:
            r["backhair_count"] = len(self.backhair)
        if "elements" in self.has and "tags" in self.has:
            r["bad_tag_ratio"] = (c["tags"] - c["elements"]) / c["tags"]
        if "elements_seen" in self.has and "tags_seen" in self.has:
            r["non_element_ratio"] = (c["tags_seen"] - c["elements_seen"]) / c["tags_seen"]
        if "tags" in self.has and self.obfuscation:
            r["obfuscation_ratio"] = self.obfuscation / c["tags"]
        if self.charsets is not None:
            r["charsets"] = self.charsets

    def _inc(self, key: str) -> None:
        self.counts[key] += 1
        self.has.add(key)

    # -- rendered text
    def rendered_text(self, invisible: bool | None = None) -> str:
        if invisible is None:
            return "".join(self.text)
        return "".join(t for t, inv in zip(self.text, self.text_inv, strict=True) if inv == invisible)

    def display_text(self, text: str, whitespace: bool = False, invisible: bool = False) -> None:
        if whitespace:
            if self.text and not self.text_ws[-1] and not self.text_inv[-1]:
                if self.text[-1].endswith(" "):
                    self.text[-1] = self.text[-1][:-1]
        else:
            text = _DISPLAY_WS.sub(" ", text)
            if self.text and not invisible and self.text_ws[-1]:
                if text.startswith(" "):
                    text = text[1:]
        self.text.append(text)
        self.text_ws.append(whitespace)
        self.text_inv.append(invisible)

    # -- tokenizer callbacks
    def on_start(self, tag: str, attrs: dict, flagged: bool) -> None:
        self._tag(tag, attrs, 1)

    def on_end(self, tag: str) -> None:
        self._tag(tag, None, -1)

    def on_text(self, text: str, is_cdata: bool, flagged: bool) -> None:
        ins = self.inside
        if ins.get("script", 0) > 0:
            self.script.append(text)
            return
        if ins.get("style", 0) > 0:
            return
        if ins.get("a", 0) > 0:
            ent = self.uri.setdefault(self.anchor_last, {})
            at = ent.setdefault("anchor_text", [])
            if at:
                at[-1] += text
            else:
                at.append(text)
            if self.anchor:
                self.anchor[-1] += text
            else:
                self.anchor.append(text)
        if ins.get("title", 0) > 0:
            while len(self.title) <= self.title_index:
                self.title.append("")
            self.title[self.title_index] += text
        if flagged:
            self.text_flag = True
        invisible = False
        rest = text.strip(" \t\n\r\f\x0b")
        if rest and ("\xc2" not in rest or _WS_OR_NBSP.sub("", text)):
            invisible = self._font_invisible()
        if self.text:
            u = flagged
            last = self.text[-1]
            # the patterns are anchored at one end and match at most 7
            # characters (8 with the \b): the same searches on the ends only
            if (_OBF_START_U if u else _OBF_START_A).search(text[:1]) and \
                    (_OBF_END_U if u else _OBF_END_A).search(last[-1:]):
                self.obfuscation += 1
            m = (_HAIR_END_U if u else _HAIR_END_A).search(last[-8:])
            if m:
                m2 = (_HAIR_START_U if u else _HAIR_START_A).search(text[:8])
                if m2:
                    k = f"{len(m.group(1))}_{len(m2.group(1))}"
                    self.backhair[k] = self.backhair.get(k, 0) + 1
        self.display_text(text, invisible=invisible)

    def on_comment(self, text: str) -> None:
        self.comment.append(text)

    def on_declaration(self, text: str) -> None:
        if re.match(r"^<!doctype", text, re.I):
            self._inc("elements")
            self._inc("tags")
            self.inside["!doctype"] = 0

    # -- HTML.pm html_tag and friends
    def _tag(self, tag: str, attr: dict | None, num: int) -> None:
        maybe_ns = ":" in tag and _NAMESPACE.match(tag) is not None
        ins = self.inside
        if tag in _ELEMENTS or maybe_ns:
            self._inc("elements")
            if tag not in ins:
                self._inc("elements_seen")
        self._inc("tags")
        if tag not in ins:
            self._inc("tags_seen")
        ins[tag] = ins.get(tag, 0) + num
        if ins[tag] < 0:
            ins[tag] = 0
            self._inc("closed_extra")
        if maybe_ns:
            return
        if tag in _ELEMENTS or tag in _TRICKS:
            if tag in _TEXT_STYLE:
                self._text_style(tag, attr, num)
            if tag in _WHITESPACE:
                self._whitespace(tag)
            if num == 1:
                if tag in _URI_TAGS:
                    self._html_uri(tag, attr)
                self._tests(tag, attr)
            else:
                if tag == "html":
                    self.closed_html = 1
                if tag == "body":
                    self.closed_body = 1

    def _whitespace(self, tag: str) -> None:
        if tag in ("br", "div"):
            self.display_text("\n", whitespace=True)
        elif tag in _WS_SPACE:
            self.display_text(" ", whitespace=True)
        elif tag in _WS_PARA:
            self.display_text("\n\n", whitespace=True)

    def canon_uri(self, uri: str) -> str:
        if not uri or uri[0].isspace() or uri[-1].isspace() or uri[0] == "\xa0" or uri[-1] == "\xa0":
            # (otherwise neither end is \s, ASCII or Unicode, or NBSP: nothing to strip)
            uri = re.sub(r"^[\s\xa0]+", "", uri) if self.text_flag else re.sub(r"^[\s\xa0]+", "", uri, flags=re.A)
            uri = re.sub(r"[\s\xa0]+$", "", uri) if self.text_flag else re.sub(r"[\s\xa0]+$", "", uri, flags=re.A)
        if len(uri) > MAX_URI_LENGTH:
            self.uri_truncated = True
            uri = uri[:MAX_URI_LENGTH]
        return uri

    def push_uri(self, typ: str, uri: str) -> None:
        uri = self.canon_uri(uri)
        if uri == "":
            return
        if re.match(r"^(?:data|mailto|file|cid|tel):", uri, re.I):
            self.uri.setdefault(uri, {}).setdefault("types", {})[typ] = 1
        else:
            target = target_uri(self.base_href or "", uri)
            if target != "":
                self.uri.setdefault(target, {}).setdefault("types", {})[typ] = 1

    def _html_uri(self, tag: str, attr: dict) -> None:
        if tag in ("body", "table", "tr", "td"):
            if attr.get("background") is not None:
                self.push_uri(tag, attr["background"])
        elif tag in ("a", "area", "link"):
            for k in list(attr):
                if re.search(r"\w{1,8}/href", k):
                    attr["href"] = attr.pop(k)
            if attr.get("href") is not None:
                href = attr["href"].replace("\ufeff", "") if self.text_flag else \
                    attr["href"].replace("\xef\xbb\xbf", "")
                attr["href"] = href
                self.push_uri(tag, href)
            if attr.get("data-saferedirecturl") is not None:
                self.push_uri(tag, attr["data-saferedirecturl"])
        elif tag in ("img", "frame", "iframe", "embed", "script", "bgsound"):
            for k in list(attr):
                if re.search(r"\w{1,8}/src", k):
                    attr["src"] = attr.pop(k)
            if attr.get("src") is not None:
                self.push_uri(tag, attr["src"])
        elif tag == "form":
            if attr.get("action") is not None:
                self.push_uri(tag, attr["action"])
        elif tag == "base":
            uri = attr.get("href")
            if uri:
                uri = self.canon_uri(uri)
                self.push_uri(tag, uri)
                if re.match(r"^(?:https?|ftp):/{0,2}", uri, re.I):
                    uri = re.sub(r"^([a-z]+:/{0,2}[^/]+/.*?)[^/\.]+\.[^/\.]{2,4}$", r"\1", uri,
                                 flags=re.I)
                    if not uri.endswith("/"):
                        uri += "/"
                    self.base_href = uri
        elif tag == "meta":
            he = attr.get("http-equiv")
            content = attr.get("content")
            if he is not None and content is not None and re.search("refresh", he, re.I) and \
                    re.search(r"\burl\s*=", content, re.I):
                uri = re.sub(r"^.*\burl\s*=\s*", "", content, count=1, flags=re.I)
                uri = re.sub(r"\s*;.*", "", uri, count=1, flags=re.I)
                self.push_uri(tag, uri)

    def _close_table_tag(self, tag: str) -> None:
        if not any(st["tag"] == tag for st in self.text_style):
            return
        while self.text_style:
            top = self.text_style[-1]["tag"]
            if not top:
                break
            if (tag == "td" and top in ("font", "td")) or (tag == "tr" and top in ("font", "td", "tr")):
                self.text_style.pop()
            else:
                break

    def _close_tag(self, tag: str) -> None:
        if not any(st["tag"] == tag for st in self.text_style):
            return
        while self.text_style:
            cur = self.text_style.pop()
            if cur["tag"] == tag:
                break

    def _text_style(self, tag: str, attr: dict | None, num: int) -> None:
        if tag == "th":
            tag = "td"
        if num == 1:
            if tag == "basefont" and "size" in attr:
                m = re.match(r"^\s*(\d+)", attr["size"] or "")
                if m:
                    self.basefont = int(m.group(1))
                    return
            if tag in ("td", "tr"):
                self._close_table_tag(tag)
            new = dict(self.text_style[-1]) if self.text_style else \
                {"tag": "default", "fgcolor": "#000000", "bgcolor": "#ffffff", "size": 3}
            new["tag"] = tag
            if tag == "big":
                new["size"] += 1
                self.text_style.append(new)
                return
            if tag == "small":
                new["size"] -= 1
                self.text_style.append(new)
                return
            ok = _OK_ATTR.get(tag, ())
            for name in list(attr):
                if name not in ok:
                    continue
                val = attr[name] if attr[name] is not None else ""
                if name in ("text", "color"):
                    new["fgcolor"] = name_to_rgb(val)
                elif name == "size":
                    m = re.match(r"^\s*([+-]\d+)", val)
                    if m:
                        new["size"] = self.basefont + int(m.group(1))
                    else:
                        m = re.match(r"^\s*(\d+)", val)
                        if m:
                            new["size"] = int(m.group(1))
                elif name == "style":
                    new["style"] = val
                    for part in val.split(";"):
                        m = re.match(r"^\s*(background-)?color:\s*(.+?)\s*$", part, re.I)
                        if m:
                            which = "bgcolor" if m.group(1) else "fgcolor"
                            value = m.group(2).lower()
                            value = re.sub(r"\s*!\s*important$", "", value)
                            if "rgb" in value:
                                value = re.sub(r"[^0-9,]", "", value)
                                rgb = (value.split(",") + ["", "", ""])[:3]
                                vals = []
                                for x in rgb:
                                    try:
                                        xv = int(x) if x else 0
                                    except ValueError:
                                        xv = 0
                                    vals.append(0 if not xv else 255 if xv > 255 else xv)
                                new[which] = "#{:02x}{:02x}{:02x}".format(*vals)
                            elif value == "inherit":
                                pass
                            elif value == "transparent":
                                new[which] = value
                            else:
                                new[which] = name_to_rgb(value)
                            continue
                        m = re.match(r"^\s*background:\s*(.+?)\s*$", part)
                        if m:
                            layers = parse_css_background(m.group(1).lower())
                            for v in (layers[-1] if layers else []):
                                color = name_to_rgb(v)
                                if color != "invalid":
                                    new["bgcolor"] = color
                                    break
                            continue
                        m = re.match(r"^\s*([a-z_-]+)\s*:\s*(\S.*?)\s*$", part, re.I)
                        if m:
                            new["style_" + m.group(1)] = m.group(2)
                    if new["bgcolor"] == "transparent":
                        new["bgcolor"] = self.text_style[-1]["bgcolor"] if self.text_style else "#ffffff"
                    if new["fgcolor"] == "transparent":
                        new["fgcolor"] = new["bgcolor"]
                elif name == "bgcolor":
                    attr["bgcolor"] = name_to_rgb(val)
                else:
                    new[name] = val
                if new["size"] > self.max_size:
                    self.max_size = new["size"]
                elif new["size"] < self.min_size:
                    self.min_size = new["size"]
            self.text_style.append(new)
        else:
            if tag != "body":
                self._close_tag(tag)

    def _font_invisible(self) -> bool:
        st = self.text_style[-1] if self.text_style else \
            {"fgcolor": "#000000", "bgcolor": "#ffffff", "size": 3}
        fg, bg, size = st["fgcolor"], st["bgcolor"], st["size"]
        display = st.get("style_display")
        visibility = st.get("style_visibility")
        if fg[-6:] == bg[-6:]:
            self.results["font_low_contrast"] = 1
            return True
        m1 = _HEX6.match(fg)
        if m1:
            m2 = _HEX6.match(bg)
            if m2:
                r = int(m1.group(1), 16) - int(m2.group(1), 16)
                g = int(m1.group(2), 16) - int(m2.group(2), 16)
                b = int(m1.group(3), 16) - int(m2.group(3), 16)
                dist = ((0.2126 * r) ** 2 + (0.7152 * g) ** 2 + (0.0722 * b) ** 2) ** 0.5
                if dist < 12:
                    self.results["font_low_contrast"] = 1
                    return True
        if fg == "invalid" or bg == "invalid":
            self.results["font_invalid_color"] = 1
            return True
        if size <= 1:
            return True
        if display and display.lower() == "none":
            return True
        if visibility and visibility.lower() == "hidden":
            return True
        return False

    def _tests(self, tag: str, attr: dict) -> None:
        if tag == "font" and "face" in attr:
            if not _FONT_FACE_OK.match(attr["face"] or ""):
                self.results["font_face_bad"] = 1
        if tag == "img" and self.inside.get("a", 0) > 0:
            ent = self.uri.setdefault(self.anchor_last, {})
            at = ent.setdefault("anchor_text", [])
            if at:
                at[-1] += "<img>\n"
            else:
                at.append("<img>\n")
            if self.anchor:
                self.anchor[-1] += "<img>\n"
            else:
                self.anchor.append("<img>\n")
        if tag == "img" and "width" in attr and "height" in attr:
            width = height = 0
            m = re.match(r"^(\d+)(%)?$", attr["width"] or "")
            if m:
                width = int(m.group(1)) * (8 if m.group(2) else 1)
            m = re.match(r"^(\d+)(%)?$", attr["height"] or "")
            if m:
                height = int(m.group(1)) * (6 if m.group(2) else 1)
            if width <= 0:
                width = 200
            if height <= 0:
                height = 200
            self.image_area += width * height
        if tag == "form" and "action" in attr:
            if re.search("mailto:", attr["action"] or "", re.I):
                self.results["form_action_mailto"] = 1
        if tag in ("object", "embed"):
            self.results["embeds"] = 1
        if tag == "a":
            uri = self.anchor_last = self.canon_uri(attr["href"] or "") if "href" in attr else ""
            self.uri.setdefault(uri, {}).setdefault("anchor_text", []).append("")
            self.anchor.append("")
        if tag == "title":
            self.title_index += 1
            while len(self.title) <= self.title_index:
                self.title.append("")
            self.title[self.title_index] = ""
        if tag == "meta":
            he = attr.get("http-equiv")
            content = attr.get("content")
            if he is not None and content is not None and re.search("Content-Type", he, re.I):
                m = re.search(r"""\bcharset\s*=\s*["']?([^"']+)""", content, re.I)
                if m:
                    self.charsets = m.group(1) if self.charsets is None else \
                        self.charsets + " " + m.group(1)
