# cython: language_level=3, boundscheck=True, wraparound=True, cdivision=True
"""SpamAssassin's HTML rendering (Cython; twin: postier._pure.spamhtml).

What is implemented (HTML::Parser 3.81's tokenizer in its default mode and
Mail::SpamAssassin::HTML's handlers) and the API are documented in
postier/_pure/spamhtml.py; both modules give identical results (rendered
text and its whitespace/invisible bookkeeping, `results`, URIs).  Here the
tokenizer scans the byte buffer in C and calls the renderer's methods
directly (no per-event dispatch through Python attribute lookups), the
renderer's tag counters are C integers, and the cold helpers (color names,
CSS backgrounds, relative URIs, the entity table) are the twin's.  What a
style="..." attribute assigns and where a relative URI leads are remembered
(bounded memos: functions of the attribute value and of base and URI), the
one-character "punctuation class" tests of the obfuscation and backhair
counts are C tests, and only the tags _tests looks at go through it.  So
are font faces, font sizes and img dimensions (bounded memos of the regex
answers); white space of one-byte text is collapsed in one C pass, and the
local-scheme regex of a pushed URI runs only when its first character may
start one of the scheme names.  Known tag names are looked up in a C table
straight from the bytes (the interned name and its bits, no new string per
tag); a start tag's attributes are gathered only for the tags whose
handlers read them, and only the attributes those read (plus namespaced
".../href" ones); the text style stack holds small C objects with just the
fields something reads; the script/style/a/title counts on_text needs are
C integers next to the `inside` dict; `<tag/>` is rewritten by a C scan;
and an absolute "scheme://" URI without a base and without dot segments is
its own target.  space_count (the white space of a rendered text, for
non_space_len) is one pass with a 256-entry table instead of a str.count
per space character.  Further: render's rewrites of a text Perl holds as
bytes (&nbsp;, the self-closing tag rewrite, the curly quotes, the latin-1
encoding) are one C pass (_prepare1); a text event of white space alone
outside script, a and title takes on_text's outcome without making its
string (_ws_text); texts and attribute values without "&" skip
decode_entities; each known tag has a number (in its _TAGINFO bits) that
the handlers and the style stack compare instead of names, and its
`inside` count is a C integer (the dict gets the key when the tag is first
seen, for its order, and the counts when read: the `inside` property and
_end); a style copied from another keeps its _contrast answer while its
colors are the same string objects; _style_attrs switches on a number per
allowed attribute name.  Short attribute values decode through a cache
keyed on their bytes (a repeated value is the same string, its hash
known); the Tokenizer keeps which needed names a start tag holds as bits
(the tag table's masks instead of frozenset checks; a repeated name is
dropped without a dict look-up) and hands them to the renderer, whose
_style_attrs, _html_uri and _tests skip the look-ups of absent names
(_style_attrs in the attributes' order, as the pure twin).

Reads no main.cf parameters.
"""

cimport cython
from libc.string cimport memchr, memcmp, memcpy
from libc.math cimport pow
from cpython.unicode cimport (Py_UNICODE_ISALNUM, Py_UNICODE_ISSPACE, PyUnicode_1BYTE_DATA, PyUnicode_DecodeLatin1,
                              PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH, PyUnicode_KIND,
                              PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_READ)
from cpython.dict cimport PyDict_Next, PyDict_SetDefault
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

import re

from postier._pure.spamhtml import (  # shared cold parts
    _ELEMENTS,
    _FONT_FACE_OK,
    _HAIR_END_A,
    _HAIR_END_U,
    _HAIR_START_A,
    _HAIR_START_U,
    _NAMESPACE,
    _OBF_END_A,
    _OBF_END_U,
    _OBF_START_A,
    _OBF_START_U,
    _OK_ATTR,
    _TEXT_STYLE,
    _TRICKS,
    _URI_TAGS,
    ENTITIES,
    HTML_COLORS,
    MAX_URI_LENGTH,
    name_to_rgb,
    parse_css_background,
    target_uri,
)

__all__ = ["ENTITIES", "HTML_COLORS", "MAX_URI_LENGTH", "HtmlRenderer", "Tokenizer",
           "decode_entities", "name_to_rgb", "parse_css_background", "target_uri"]

cdef dict _ENTITIES = ENTITIES
cdef dict _LITERAL = {b"script": True, b"style": True, b"xmp": True, b"iframe": True,
                      b"plaintext": True, b"title": False, b"textarea": False}


cdef inline bint _lit_ends(unsigned char first, unsigned char last) noexcept nogil:
    """first and last (ASCII letters folded) can be those of a _LITERAL
    name: s/x/i/p/t and t/e/p/a."""
    first |= 0x20
    last |= 0x20
    return (first == 0x73 or first == 0x78 or first == 0x69 or first == 0x70 or first == 0x74) and \
        (last == 0x74 or last == 0x65 or last == 0x70 or last == 0x61)


cdef dict _LOWER = {c: c + 32 for c in range(0x41, 0x5B)}
cdef dict _MS_ORDER = {"include": 1, "rcdata": 2, "cdata": 3, "ignore": 4}

# what _tag does with a tag, as bits of one lookup (HTML.pm's %elements,
# %tricks, %text_style, and html_whitespace's three groups)
cdef enum:
    T_ELEM = 1
    T_TRICK = 2
    T_STYLE = 4
    T_URI = 8
    T_WS_NL = 16
    T_WS_SP = 32
    T_WS_PARA = 64
    T_TESTS = 128        # a tag _tests looks at
    T_COUNTED = 256      # script, style, a, title: inside counts on_text reads
    T_ID_SHIFT = 16      # info >> T_ID_SHIFT: the tag's number (0: not a known tag)


cdef dict _tag_table():
    cdef dict t = {}
    groups = ((_ELEMENTS, T_ELEM), (_TRICKS, T_TRICK), (_TEXT_STYLE, T_STYLE),
              (_URI_TAGS, T_URI), (("br", "div"), T_WS_NL),
              (("li", "th", "td", "dt", "dd", "embed", "h1", "h2", "h3", "h4", "h5", "h6"),
               T_WS_SP),
              (("p", "hr", "blockquote", "pre", "listing", "plaintext", "xmp", "title"),
               T_WS_PARA),
              (("font", "img", "form", "object", "embed", "a", "title", "meta"), T_TESTS),
              (("script", "style", "a", "title"), T_COUNTED))
    for names, bit in groups:
        for name in names:
            t[name] = t.get(name, 0) | bit
    # each known tag's own number above the bits (T_ID_SHIFT): the
    # handlers compare numbers, not names
    for i, name in enumerate(sorted(t), 1):
        t[name] |= i << T_ID_SHIFT
    return t


cdef dict _TAGINFO = _tag_table()
# the known tags by number (index 0: none)
cdef tuple _TAGNAMES = (None,) + tuple(sorted(_TAGINFO))
cdef enum:
    _NTAGS = 256         # room for the known tags' numbers (checked below)
if len(_TAGNAMES) > _NTAGS:
    raise ImportError("spamhtml: more known tags than _NTAGS")


cdef inline int _tid(str name) except -1:
    return <int>_TAGINFO[name] >> T_ID_SHIFT


# the numbers of the tags the handlers test for by name
cdef int ID_A = _tid("a"), ID_AREA = _tid("area"), ID_LINK = _tid("link")
cdef int ID_BODY = _tid("body"), ID_TABLE = _tid("table"), ID_TR = _tid("tr")
cdef int ID_TD = _tid("td"), ID_TH = _tid("th"), ID_IMG = _tid("img")
cdef int ID_FRAME = _tid("frame"), ID_IFRAME = _tid("iframe"), ID_EMBED = _tid("embed")
cdef int ID_SCRIPT = _tid("script"), ID_BGSOUND = _tid("bgsound"), ID_FORM = _tid("form")
cdef int ID_BASE = _tid("base"), ID_META = _tid("meta"), ID_FONT = _tid("font")
cdef int ID_BASEFONT = _tid("basefont"), ID_BIG = _tid("big"), ID_SMALL = _tid("small")
cdef int ID_HTML = _tid("html"), ID_TITLE = _tid("title"), ID_OBJECT = _tid("object")
cdef int ID_STYLE = _tid("style")


# the known tag names (_TAGINFO's keys) looked up straight from the bytes of
# a tag, ASCII letters folded: the key object itself (so the `inside` and
# table look-ups that follow find it by identity) and its bits, without
# decoding, lower-casing and hashing a new string per tag
cdef enum:
    _TT_SIZE = 512
    _TT_NAME = 24

cdef struct _TagEnt:
    Py_ssize_t n                 # 0: empty slot
    unsigned char name[_TT_NAME]
    PyObject *s
    int info
    PyObject *need               # _ATTR_NEED[name]
    unsigned long long mask      # its names as bits (_ATTRTAB: info is the bit's number)


def _attr_need() -> dict:
    """The attributes of a start tag that something reads, by tag: what
    _text_style/_style_attrs (_OK_ATTR, basefont's size), _html_uri and
    _tests look at.  Besides these, an attribute whose name holds a "/"
    (namespaced href/src) is kept."""
    need = {name: set(_OK_ATTR.get(name, ())) for name in _TAGINFO}
    need["basefont"].add("size")
    for t in ("body", "table", "tr", "td"):
        need[t].add("background")
    for t in ("a", "area", "link"):
        need[t].update(("href", "data-saferedirecturl"))
    for t in ("img", "frame", "iframe", "embed", "script", "bgsound"):
        need[t].add("src")
    need["form"].add("action")
    need["base"].add("href")
    need["meta"].update(("http-equiv", "content"))
    need["font"].add("face")
    need["img"].update(("width", "height"))
    return {k: frozenset(v) for k, v in need.items()}


cdef dict _ATTR_NEED = _attr_need()
cdef dict _OK_ATTR_T = {k: tuple(sorted(v)) for k, v in _OK_ATTR.items()}
# _OK_ATTR_T with what _style_attrs does with each name: 1 foreground color
# (text, color), 2 size, 3 style, 4 bgcolor, 0 nothing (the size bounds
# check after it only)
cdef dict _ATTR_CODE = {"text": 1, "color": 1, "size": 2, "style": 3, "bgcolor": 4}
cdef dict _OK_ATTR_C = {k: tuple((n, _ATTR_CODE.get(n, 0)) for n in v) for k, v in _OK_ATTR_T.items()}

cdef _TagEnt _TAGTAB[_TT_SIZE]
cdef _TagEnt _ATTRTAB[_TT_SIZE]      # the attribute names some _ATTR_NEED set holds


cdef inline unsigned int _tt_hash(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef unsigned int h = 2166136261u
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if 0x41 <= c <= 0x5A:
            c |= 0x20
        h = (h ^ c) * 16777619u
    return h


# Attribute values decode through a small direct-mapped cache keyed on the
# value's bytes and the decoding mode: a repeated value ("#ffffff", "2",
# "100%", a font face) is the same str object again, so its hash is already
# computed when the memos (_rgb, _font_size, _dim, _font_face_ok, _css_ops)
# look it up, and no new string is built (str is immutable: same results).
cdef enum:
    _VC_SIZE = 1024
    _VC_MAX = 32


cdef struct _ValEnt:
    PyObject *s
    int n
    int mode
    unsigned char b[_VC_MAX]


cdef _ValEnt _VALCACHE[_VC_SIZE]


cdef void _tt_insert(_TagEnt *tab, str name, int info, object need,
                     unsigned long long mask=0):
    """tab[name] (name: lower-case ASCII, kept alive by the caller)."""
    cdef bytes nb = name.encode("ascii")
    cdef Py_ssize_t i, n = len(nb)
    cdef unsigned int h
    if n >= _TT_NAME:
        raise ValueError(name)
    h = _tt_hash(nb, n) & (_TT_SIZE - 1)
    while tab[h].n:
        h = (h + 1) & (_TT_SIZE - 1)
    tab[h].n = n
    for i in range(n):
        tab[h].name[i] = nb[i]
    tab[h].s = <PyObject *>name
    tab[h].info = info
    tab[h].need = <PyObject *>need
    tab[h].mask = mask


cdef tuple _ATTR_NAMES = tuple(sorted(set().union(*_ATTR_NEED.values())))


cdef void _tt_init():
    cdef unsigned long long mask
    if len(_ATTR_NAMES) > 64:
        raise ValueError("more than 64 attribute names")
    for name, info in _TAGINFO.items():
        mask = 0
        for an in _ATTR_NEED[name]:
            mask |= 1ULL << _ATTR_NAMES.index(an)
        _tt_insert(_TAGTAB, name, info, _ATTR_NEED[name], mask)
    for i, name in enumerate(_ATTR_NAMES):
        _tt_insert(_ATTRTAB, name, i, None)


_tt_init()


# _OK_ATTR_C by tag number, with each name's _ATTRTAB bit: _style_attrs
# skips the names the Tokenizer says the tag lacks without a dict look-up
cdef enum:
    _OK_MAXN = 8
cdef int _OKA_N[_NTAGS]
cdef PyObject *_OKA_NAME[_NTAGS][_OK_MAXN]
cdef int _OKA_CODE[_NTAGS][_OK_MAXN]
cdef unsigned long long _OKA_BIT[_NTAGS][_OK_MAXN]
cdef unsigned long long _OKA_MASK[_NTAGS]


cdef void _oka_init() except *:
    cdef int t, k
    for tag, ok in _OK_ATTR_C.items():
        if tag not in _TAGINFO:
            continue
        t = _tid(tag)
        if len(ok) > _OK_MAXN:
            raise ImportError("spamhtml: more allowed attributes than _OK_MAXN")
        _OKA_N[t] = len(ok)
        for k, (name, code) in enumerate(ok):
            _OKA_NAME[t][k] = <PyObject *>name
            _OKA_CODE[t][k] = code
            _OKA_BIT[t][k] = 1ULL << _ATTR_NAMES.index(name)
            _OKA_MASK[t] |= _OKA_BIT[t][k]


_oka_init()

# the _ATTRTAB bits of the names _html_uri and _tests look up
cdef unsigned long long B_BACKGROUND = 1ULL << _ATTR_NAMES.index("background")
cdef unsigned long long B_HREF = 1ULL << _ATTR_NAMES.index("href")
cdef unsigned long long B_SAFEREDIR = 1ULL << _ATTR_NAMES.index("data-saferedirecturl")
cdef unsigned long long B_SRC = 1ULL << _ATTR_NAMES.index("src")
cdef unsigned long long B_FACE = 1ULL << _ATTR_NAMES.index("face")
cdef unsigned long long B_WH = (1ULL << _ATTR_NAMES.index("width")) | (1ULL << _ATTR_NAMES.index("height"))


cdef inline _TagEnt *_tt_find(const unsigned char *p, Py_ssize_t n,
                              _TagEnt *tab=_TAGTAB) noexcept nogil:
    """The entry of tab (the known tags) for the name p[:n] (ASCII letters
    folded), else NULL."""
    cdef unsigned int h
    cdef Py_ssize_t i
    cdef unsigned char c
    if n <= 0 or n >= _TT_NAME:
        return NULL
    h = _tt_hash(p, n) & (_TT_SIZE - 1)
    while tab[h].n:
        if tab[h].n == n:
            i = 0
            while i < n:
                c = p[i]
                if 0x41 <= c <= 0x5A:
                    c |= 0x20
                if c != tab[h].name[i]:
                    break
                i += 1
            if i == n:
                return &tab[h]
        h = (h + 1) & (_TT_SIZE - 1)
    return NULL
_DOCTYPE = re.compile(r"^<!doctype", re.I)
_HEX6 = re.compile(r"^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$")
_URI_LEAD_U = re.compile(r"^[\s\xa0]+")
_URI_TRAIL_U = re.compile(r"[\s\xa0]+$")
_URI_LEAD_A = re.compile(r"^[\s\xa0]+", re.A)
_URI_TRAIL_A = re.compile(r"[\s\xa0]+$", re.A)
_RE_SCHEME_LOCAL = re.compile(r"^(?:data|mailto|file|cid|tel):", re.I)
_RE_NS_HREF = re.compile(r"\w{1,8}/href")
_RE_NS_SRC = re.compile(r"\w{1,8}/src")
_RE_BASE_SCHEME = re.compile(r"^(?:https?|ftp):/{0,2}", re.I)
_RE_BASE_FILE = re.compile(r"^([a-z]+:/{0,2}[^/]+/.*?)[^/\.]+\.[^/\.]{2,4}$", re.I)
_RE_REFRESH = re.compile("refresh", re.I)
_RE_URL_EQ = re.compile(r"\burl\s*=", re.I)
_RE_URL_PREFIX = re.compile(r"^.*\burl\s*=\s*", re.I)
_RE_SEMI_REST = re.compile(r"\s*;.*", re.I)
_RE_LEAD_SIGNED = re.compile(r"^\s*([+-]\d+)")
_RE_LEAD_NUM = re.compile(r"^\s*(\d+)")
_RE_CSS_COLOR = re.compile(r"^\s*(background-)?color:\s*(.+?)\s*$", re.I)
_RE_IMPORTANT = re.compile(r"\s*!\s*important$")
_RE_NOT_DIGIT_COMMA = re.compile(r"[^0-9,]")
_RE_CSS_BACKGROUND = re.compile(r"^\s*background:\s*(.+?)\s*$")
_RE_CSS_PROP = re.compile(r"^\s*([a-z_-]+)\s*:\s*(\S.*?)\s*$", re.I)
_RE_DIM = re.compile(r"^(\d+)(%)?$")
_RE_MAILTO = re.compile("mailto:", re.I)
_RE_CONTENT_TYPE = re.compile("Content-Type", re.I)
_RE_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?([^"']+)""", re.I)


cdef class HtmlRenderer


cdef inline dict _sub_dict(dict d, object key):
    """d.setdefault(key, {}) without making a dict when key is there."""
    cdef object got = d.get(key)
    if got is None:
        got = d[key] = {}
    return <dict>got


cdef bint _has_slash_key(dict attr) except -1:
    """Some key of attr holds a "/"."""
    for k in attr:
        if "/" in <str>k:
            return True
    return False


cdef inline list _anchor_texts(dict uri, object key):
    """uri.setdefault(key, {}).setdefault("anchor_text", []) without the
    throw-away dict and list."""
    cdef dict ent = _sub_dict(uri, key)
    cdef object got = ent.get("anchor_text")
    if got is None:
        got = ent["anchor_text"] = []
    return <list>got


cdef bint _has_visible(str text) except -1:
    """bool(_WS_OR_NBSP.sub("", text)): a character other than [ \\t\\n\\r\\f\\v]
    that is not part of a "\\xc2\\xa0" pair (taken left to right)."""
    cdef Py_ssize_t i = 0, n = len(text)
    cdef Py_UCS4 c
    while i < n:
        c = text[i]
        if c == 0x20 or 9 <= c <= 13:
            i += 1
        elif c == 0xC2 and i + 1 < n and text[i + 1] == 0xA0:
            i += 2
        else:
            return True
    return False


cdef inline bint _punct_class(Py_UCS4 c, bint u) noexcept:
    """c matches _PUNCT_CLASS, [^\\s\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e]
    (\\s of re.A, or Unicode's when u)."""
    if c < 128:
        if 0x21 <= c <= 0x2f or 0x3a <= c <= 0x40 or 0x5b <= c <= 0x60 or 0x7b <= c <= 0x7e:
            return False
        if c == 0x20 or 9 <= c <= 13:
            return False
        if u and 0x1c <= c <= 0x1f:
            return False
        return True
    return not (u and Py_UNICODE_ISSPACE(c))


cdef inline bint _ws1(unsigned char c) noexcept nogil:
    return c == 0x20 or 9 <= c <= 13


cdef unsigned char _CW1_SPECIAL[256]      # [ \t\n\v\f\r] and \xc2: _collapse_ws1 looks closer
for _c in (0x20, 9, 10, 11, 12, 13, 0xC2):
    _CW1_SPECIAL[_c] = 1


cdef str _collapse_ws1(str text):
    """_collapse_ws of a one-byte-kind string: one pass, one new string."""
    cdef const unsigned char *p = <const unsigned char *>PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, o, j
    cdef unsigned char c
    cdef unsigned char small[512]
    cdef unsigned char *out
    # the first place something changes: a white-space run other than a
    # single " ", or "\xc2\xa0"
    while i < n:
        c = p[i]
        if not _CW1_SPECIAL[c]:
            i += 1
            continue
        if _ws1(c):
            if c == 0x20 and (i + 1 == n or not _ws1(p[i + 1])):
                i += 1
                continue
            break
        if c == 0xC2 and i + 1 < n and p[i + 1] == 0xA0:
            break
        i += 1
    if i == n:
        return text
    if n <= 512:
        out = &small[0]
    else:
        out = <unsigned char *>PyMem_Malloc(n)
    if out == NULL:
        raise MemoryError()
    try:
        for j in range(i):
            out[j] = p[j]
        o = i
        while i < n:
            c = p[i]
            if not _CW1_SPECIAL[c]:
                out[o] = c
                o += 1
                i += 1
                continue
            if _ws1(c):
                i += 1
                while i < n and _ws1(p[i]):
                    i += 1
                out[o] = 0x20
            elif c == 0xC2 and i + 1 < n and p[i + 1] == 0xA0:
                i += 2
                out[o] = 0x20
            else:
                out[o] = c
                i += 1
            o += 1
        return PyUnicode_DecodeLatin1(<const char *>out, o, NULL)
    finally:
        if out != &small[0]:
            PyMem_Free(out)


cdef inline bint _re_w(Py_UCS4 c, bint u) noexcept:
    """c matches \\w (Unicode's when u, else re.A's)."""
    if c < 128:
        return (0x61 <= (<unsigned int>c | 0x20) <= 0x7A) or 0x30 <= c <= 0x39 or c == 0x5F
    return u and Py_UNICODE_ISALNUM(c)


cdef inline bint _re_s(Py_UCS4 c, bint u) noexcept:
    """c matches \\s (Unicode's when u, else re.A's)."""
    if c < 128:
        return c == 0x20 or 9 <= c <= 13 or (u and 0x1C <= c <= 0x1F)
    return u and Py_UNICODE_ISSPACE(c)


cdef str _self_close(str text, bint u):
    """re.sub(r"<(\\w+)\\s*/>", r"<\\1>", text) (flags re.I, and re.A unless
    u): from each "/>" back over \\s* and \\w+ to a "<".  (\\w and \\s are
    disjoint, so a "/>" ends at most one match, and matches cannot overlap.)"""
    cdef Py_ssize_t j = text.find("/>"), k, w, start = 0
    cdef list parts = None
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    while j >= 0:
        k = j
        while k > start and _re_s(PyUnicode_READ(kind, data, k - 1), u):
            k -= 1
        w = k
        while w > start and _re_w(PyUnicode_READ(kind, data, w - 1), u):
            w -= 1
        if w < k and w > start and PyUnicode_READ(kind, data, w - 1) == 0x3C:
            if parts is None:
                parts = []
            parts.append(text[start:k])
            parts.append(">")
            start = j + 2
        j = text.find("/>", j + 2)
    if parts is None:
        return text
    parts.append(text[start:])
    return "".join(parts)


cdef unsigned char _CL[256]       # 1: _space, 2: ">", 4: "=" (a start tag's scan)
for _c in (0x20, 9, 10, 11, 12, 13):
    _CL[_c] = 1
_CL[0x3E] = 2
_CL[0x3D] = 4


cdef inline Py_ssize_t _memidx(const unsigned char *p, Py_ssize_t i, Py_ssize_t n,
                               unsigned char c) noexcept nogil:
    """The index of the first c in p[i:n], n when none."""
    cdef const unsigned char *q = <const unsigned char *>memchr(p + i, c, n - i)
    return n if q == NULL else q - p


cdef bytes _prepare1(str text):
    """render's rewrites of a one-byte-kind text Perl holds as bytes, in one
    pass: text.replace("&nbsp;", " "), then _self_close(., False), then the
    two "\xe2\x80\x9c"/"\xe2\x80\x9d" -> '"' replaces, then
    .encode("latin-1").  (None of the rewrites makes or breaks what another
    looks for: "&nbsp;" and the quotes hold no "/" or ">", and neither a
    quote's bytes nor '"' are re.A's \s or \w, which _self_close steps back
    over; its "<" test sees '"' where it would see the quote's last byte.)"""
    cdef const unsigned char *p = <const unsigned char *>PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, o = 0, start = 0, k, w
    cdef Py_ssize_t na = -1, ns = -1, ne = -1
    cdef unsigned char c
    cdef unsigned char *out = <unsigned char *>PyMem_Malloc(n + 1)
    if out == NULL:
        raise MemoryError()
    try:
        while i < n:
            # (a run of bytes none of the rewrites starts at, copied at once;
            # the next "&", "/" and "\xe2" found by memchr, each searched
            # again only once passed)
            if na < i:
                na = _memidx(p, i, n, 0x26)
            if ns < i:
                ns = _memidx(p, i, n, 0x2F)
            if ne < i:
                ne = _memidx(p, i, n, 0xE2)
            k = na if na < ns else ns
            if ne < k:
                k = ne
            if k > i:
                memcpy(out + o, p + i, k - i)
                o += k - i
                i = k
                if i >= n:
                    break
            c = p[i]
            if c == 0x26:         # &
                if i + 5 < n and p[i + 1] == 0x6E and p[i + 2] == 0x62 and p[i + 3] == 0x73 \
                        and p[i + 4] == 0x70 and p[i + 5] == 0x3B:
                    out[o] = 0x20
                    o += 1
                    i += 6
                    continue
            elif c == 0x2F:       # "/>": _self_close, stepping back over the output
                if i + 1 < n and p[i + 1] == 0x3E:
                    k = o
                    while k > start and _ws1(out[k - 1]):
                        k -= 1
                    w = k
                    while w > start and out[w - 1] < 0x80 and _re_w(out[w - 1], False):
                        w -= 1
                    if w < k and w > start and out[w - 1] == 0x3C:
                        o = k
                        out[o] = 0x3E
                        o += 1
                        start = o
                        i += 2
                        continue
                    out[o] = 0x2F
                    out[o + 1] = 0x3E
                    o += 2
                    i += 2
                    continue
            elif c == 0xE2:
                if i + 2 < n and p[i + 1] == 0x80 and (p[i + 2] == 0x9C or p[i + 2] == 0x9D):
                    out[o] = 0x22
                    o += 1
                    i += 3
                    continue
            out[o] = c
            o += 1
            i += 1
        return (<const char *>out)[:o]
    finally:
        PyMem_Free(out)


cdef str _collapse_ws(str text):
    """_DISPLAY_WS.sub(" ", text): each run of [ \\t\\n\\r\\f\\v] and each
    "\\xc2\\xa0" becomes one space (text itself when nothing changes)."""
    if PyUnicode_KIND(text) == 1:
        return _collapse_ws1(text)
    cdef Py_ssize_t i = 0, n = len(text), start = 0, j
    cdef list parts = None
    cdef Py_UCS4 c
    while i < n:
        c = text[i]
        if c == 0x20 or 9 <= c <= 13:
            j = i + 1
            while j < n:
                c = text[j]
                if not (c == 0x20 or 9 <= c <= 13):
                    break
                j += 1
            if j - i == 1 and text[i] == 0x20:
                i = j
                continue
        elif c == 0xC2 and i + 1 < n and text[i + 1] == 0xA0:
            j = i + 2
        else:
            i += 1
            continue
        if parts is None:
            parts = []
        parts.append(text[start:i])
        parts.append(" ")
        start = i = j
    if parts is None:
        return text
    parts.append(text[start:])
    return "".join(parts)


cdef dict _CSS_MEMO = {}


cdef list _css_ops(str val):
    """The assignments a style="val" attribute makes to a text style, in
    order (remembered: a function of val)."""
    cdef object got = _CSS_MEMO.get(val)
    if got is not None:
        return <list>got
    ops = []
    for part in val.split(";"):
        m = _RE_CSS_COLOR.match(part)
        if m:
            which = "bgcolor" if m.group(1) else "fgcolor"
            value = m.group(2).lower()
            value = _RE_IMPORTANT.sub("", value)
            if "rgb" in value:
                value = _RE_NOT_DIGIT_COMMA.sub("", value)
                rgb = (value.split(",") + ["", "", ""])[:3]
                vals = []
                for x in rgb:
                    try:
                        xv = int(x) if x else 0
                    except ValueError:
                        xv = 0
                    vals.append(0 if not xv else 255 if xv > 255 else xv)
                ops.append((which, "#{:02x}{:02x}{:02x}".format(*vals)))
            elif value == "inherit":
                pass
            elif value == "transparent":
                ops.append((which, value))
            else:
                ops.append((which, _rgb(value)))
            continue
        m = _RE_CSS_BACKGROUND.match(part)
        if m:
            layers = parse_css_background(m.group(1).lower())
            for v in (layers[-1] if layers else []):
                color = _rgb(v)
                if color != "invalid":
                    ops.append(("bgcolor", color))
                    break
            continue
        m = _RE_CSS_PROP.match(part)
        if m:
            ops.append(("style_" + m.group(1), m.group(2)))
    if len(val) <= 512:                       # (bounded: at most ~2048 x 1 KB)
        if len(_CSS_MEMO) >= 2048:
            _CSS_MEMO.clear()
        _CSS_MEMO[val] = ops
    return ops


@cython.final
cdef class _Style:
    """One entry of the text style stack: of the keys HTML.pm's style hashes
    hold, the ones something reads (the tag, the colors, the size, CSS
    display and visibility); the rest are written and never read."""
    cdef str tag
    cdef int tid                 # the tag's number (_TAGINFO), 0 for none
    cdef str fgcolor
    cdef str bgcolor
    cdef object size
    cdef object display          # style_display, None when not set
    cdef object visibility       # style_visibility, None when not set
    cdef object cfg, cbg         # the colors `code` is _contrast's answer for (None: none yet)
    cdef int code


cdef _Style _new_style(str tag, object size, int tid=0):
    """{"tag": tag, "fgcolor": "#000000", "bgcolor": "#ffffff", "size": size}"""
    cdef _Style n = _Style.__new__(_Style)
    n.tag = tag
    n.tid = tid
    n.fgcolor = "#000000"
    n.bgcolor = "#ffffff"
    n.size = size
    n.display = None
    n.visibility = None
    return n


cdef inline _Style _copy_style(_Style st, str tag, int tid):
    """dict(st) with "tag" set to tag."""
    cdef _Style n = _Style.__new__(_Style)
    n.tag = tag
    n.tid = tid
    n.fgcolor = st.fgcolor
    n.bgcolor = st.bgcolor
    n.size = st.size
    n.display = st.display
    n.visibility = st.visibility
    n.cfg = st.cfg
    n.cbg = st.cbg
    n.code = st.code
    return n


cdef bint _in_style_stack(list ts, int tid) except -1:
    """Some style on the stack has that tag (by its number, not 0: looked
    for from the top, where the one an end tag closes usually is)."""
    cdef Py_ssize_t i = len(ts) - 1
    while i >= 0:
        if (<_Style>ts[i]).tid == tid:
            return True
        i -= 1
    return False


cdef dict _FACE_MEMO = {}


cdef inline void _remember(dict memo, object key, object value):
    """memo[key] = value, the memo of a pure function bounded at 4096
    entries (then forgotten all at once)."""
    if len(memo) >= 4096:
        memo.clear()
    memo[key] = value


cdef bint _font_face_ok(str face) except -1:
    """_FONT_FACE_OK matches face (remembered: a pure function; bounded)."""
    cdef object got = _FACE_MEMO.get(face)
    if got is None:
        got = _FONT_FACE_OK.match(face) is not None
        _remember(_FACE_MEMO, face, got)
    return got


cdef dict _SIZE_MEMO = {}


cdef object _font_size(str v):
    """(relative, number) of a font size attribute: (True, n) where
    _RE_LEAD_SIGNED matches (n is added to the base font size), else
    (False, n) where _RE_LEAD_NUM matches, else None (remembered: a pure
    function; bounded)."""
    cdef object got = _SIZE_MEMO.get(v, False)
    if got is False:
        m = _RE_LEAD_SIGNED.match(v)
        if m:
            got = (True, int(m.group(1)))
        else:
            m = _RE_LEAD_NUM.match(v)
            got = (False, int(m.group(1))) if m else None
        _remember(_SIZE_MEMO, v, got)
    return got


cdef dict _DIM_MEMO = {}


cdef object _dim(str v):
    """(number, is a percentage) of an img width/height matching _RE_DIM,
    else None (remembered: a pure function; bounded)."""
    cdef object got = _DIM_MEMO.get(v, False)
    if got is False:
        m = _RE_DIM.match(v)
        got = (int(m.group(1)), bool(m.group(2))) if m else None
        _remember(_DIM_MEMO, v, got)
    return got


cdef dict _RGB = {}
cdef dict _CONTRAST = {}


cdef str _rgb(str color):
    """name_to_rgb, memoized (a pure function; the memo is bounded)."""
    cdef object v = _RGB.get(color)
    if v is None:
        v = name_to_rgb(color)
        _remember(_RGB, color, v)
    return v


cdef object _LAST_FG = None, _LAST_BG = None    # _contrast's last question (by identity)
cdef int _LAST_CODE = 0


cdef int _contrast(str fg, str bg) except -1:
    """_font_invisible's color checks: 1 low contrast, 2 invalid color, else 0."""
    global _LAST_FG, _LAST_BG, _LAST_CODE
    cdef tuple key
    cdef object v
    cdef int code = 0
    cdef double r, g, b, dist
    if fg is _LAST_FG and bg is _LAST_BG:
        return _LAST_CODE                     # (the same string objects as last time)
    key = (fg, bg)
    v = _CONTRAST.get(key)
    if v is not None:
        _LAST_FG, _LAST_BG, _LAST_CODE = fg, bg, v
        return v
    if fg[-6:] == bg[-6:]:
        code = 1
    else:
        m1 = _HEX6.match(fg)
        if m1:
            m2 = _HEX6.match(bg)
            if m2:
                r = int(m1.group(1), 16) - int(m2.group(1), 16)
                g = int(m1.group(2), 16) - int(m2.group(2), 16)
                b = int(m1.group(3), 16) - int(m2.group(3), 16)
                # libm pow, as Python's float ** does
                dist = pow(pow(0.2126 * r, 2.0) + pow(0.7152 * g, 2.0) + pow(0.0722 * b, 2.0), 0.5)
                if dist < 12:
                    code = 1
        if not code and (fg == "invalid" or bg == "invalid"):
            code = 2
    _remember(_CONTRAST, key, code)
    _LAST_FG, _LAST_BG, _LAST_CODE = fg, bg, code
    return code


cdef inline bint _space(unsigned char c) noexcept nogil:
    return c == 0x20 or 9 <= c <= 13


cdef inline bint _name_first(unsigned char c) noexcept nogil:
    return (0x61 <= (c | 0x20) <= 0x7A) or c == 0x5F or c == 0x3A


cdef inline bint _name_char(unsigned char c) noexcept nogil:
    return _name_first(c) or 0x30 <= c <= 0x39 or c == 0x2E or c == 0x2D


cdef inline int _hexval(unsigned int c) noexcept:
    if 0x30 <= c <= 0x39:
        return c - 0x30
    if 0x61 <= c <= 0x66:
        return c - 0x61 + 10
    if 0x41 <= c <= 0x46:
        return c - 0x41 + 10
    return -1


cdef inline bint _alnum(unsigned int c) noexcept:
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F


def space_count(str text, bint flagged) -> int:
    """The white space characters in text (the twin's docstring): one pass,
    instead of a str.count per character."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i, cnt = 0
    cdef const unsigned char* p
    cdef const unsigned char* table = &_SPACE_A8[0]
    cdef Py_UCS4 c
    if flagged:
        table = &_SPACE_U8[0]
    if PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND:
        p = PyUnicode_1BYTE_DATA(text)
        for i in range(n):
            cnt += table[p[i]]
        return cnt
    for i in range(n):
        c = text[i]
        if c < 256:
            cnt += table[c]
        elif flagged and (c == 0x1680 or 0x2000 <= c <= 0x200a or c == 0x2028 or c == 0x2029
                          or c == 0x202f or c == 0x205f or c == 0x3000):
            cnt += 1
    return cnt


cdef unsigned char _SPACE_A8[256]       # space_count's characters below 256, not flagged
cdef unsigned char _SPACE_U8[256]       # and flagged
for _c in (0x20, 0x09, 0x0a, 0x0d, 0x0b):
    _SPACE_A8[_c] = 1
    _SPACE_U8[_c] = 1
for _c in (0x0c, 0x85, 0xa0):
    _SPACE_U8[_c] = 1


cpdef tuple decode_entities(str text, bint flagged, bint expand_prefix):
    """util.c decode_entities: (decoded text, flag after decoding)."""
    if "&" not in text:
        return text, flagged
    cdef list out = []
    cdef Py_ssize_t i = 0, n = len(text), j, s, k, ss
    cdef long num
    cdef int hv
    cdef bint ok
    cdef unsigned int ch
    cdef object repl, cp
    cdef str name
    while i < n:
        j = text.find("&", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        s = j + 1
        repl = None
        ch = <Py_UCS4>text[s] if s < n else 0
        if ch == 0x23:
            s += 1
            num = 0
            ok = False
            ch = <Py_UCS4>text[s] if s < n else 0
            if ch == 0x78 or ch == 0x58:
                s += 1
                while s < n:
                    ch = <Py_UCS4>text[s]
                    hv = _hexval(ch)
                    if hv < 0:
                        break
                    num = num << 4 | hv
                    if num > 0x10FFFF:
                        ok = False
                        break
                    s += 1
                    ok = True
            else:
                while s < n:
                    ch = <Py_UCS4>text[s]
                    if not (0x30 <= ch <= 0x39):
                        break
                    num = num * 10 + <long>ch - 48
                    if num > 0x10FFFF:
                        ok = False
                        break
                    s += 1
                    ok = True
            if num and ok:
                if not flagged and num <= 255:
                    repl = chr(num)
                elif num == 0xFFFE or num == 0xFFFF:
                    pass
                else:
                    if 0xD800 <= num <= 0xDFFF or 0xFDD0 <= num <= 0xFDEF or (num & 0xFFFE) == 0xFFFE:
                        num = 0xFFFD
                    repl = chr(num)
                    flagged = True
        else:
            k = s
            while k < n:
                ch = <Py_UCS4>text[k]
                if not _alnum(ch):
                    break
                k += 1
            cp = None
            if k != s:
                name = text[s:k]
                cp = _ENTITIES.get(name)
                ch = <Py_UCS4>text[k] if k < n else 0
                if cp is None and ch == 0x3B:
                    cp = _ENTITIES.get(name + ";")
                if cp is not None:
                    s = k
                elif expand_prefix:
                    ss = k - 1
                    while ss > s:
                        cp = _ENTITIES.get(text[s:ss])
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
            ch = <Py_UCS4>text[s] if s < n else 0
            if ch == 0x3B:
                s += 1
            out.append(repl)
        else:
            out.append(text[j:s])
        i = s
    return "".join(out), flagged


# -- relative URIs (HTML.pm target_uri, RFC 2396 steps); the twin's code
# with compiled patterns and a shortcut for paths without dots
_URI_PARTS = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?")
_RE_DOT_LEAD = re.compile(r"^(?:\.\.?/)")
_RE_DOT1 = re.compile(r"^/\.(?:$|/)")
_RE_DOT2 = re.compile(r"^/\.\.(?:$|/)")
_RE_LAST_SEG = re.compile(r"/?[^/]*$")
_RE_SEG = re.compile(r"(/?[^/]*)")
_RE_MERGE = re.compile(r"(?<=/)[^/]*$")
_RE_WWW = re.compile(r"^www\d*\.", re.I | re.A)
_RE_FTP = re.compile(r"^ftp\d*\.", re.I | re.A)


cdef str _remove_dot_segments(str inp):
    cdef str out = ""
    if "/." not in inp and not inp.startswith("./") and not inp.startswith("../"):
        return inp    # no dot segment: what the loop below rebuilds, segment by segment
    inp = _RE_DOT_LEAD.sub("/", inp, count=1)
    while inp:
        m = _RE_DOT1.match(inp)
        if m:
            inp = "/" + inp[m.end():]
            continue
        m = _RE_DOT2.match(inp)
        if m:
            inp = "/" + inp[m.end():]
            out = _RE_LAST_SEG.sub("", out, count=1)
            continue
        m = _RE_SEG.match(inp)
        out += m.group(1)
        inp = inp[m.end():]
        if m.end() == 0:
            break
    return out


cdef str _merge_uri(base_auth, base_path, str r_path):
    if base_auth is not None and not base_path:
        return "/" + r_path
    if "/" in (base_path or ""):
        base_path = _RE_MERGE.sub("", base_path)
    else:
        base_path = ""
    return base_path + r_path


cdef dict _TARGET_MEMO = {}


cdef bint _plain_absolute(str r) except -1:
    """_target_uri_parts("", r) is r itself: r is "scheme://...", without
    dot segments (no "/.") and without a newline (the fragment's "." stops
    at one)."""
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(r)
    cdef int kind = PyUnicode_KIND(r)
    cdef void *data = PyUnicode_DATA(r)
    cdef Py_UCS4 c
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if c == 0x3A:          # ":" ending a non-empty scheme, then "//"
            if i == 0 or i + 2 >= n or PyUnicode_READ(kind, data, i + 1) != 0x2F or \
                    PyUnicode_READ(kind, data, i + 2) != 0x2F:
                return False
            break
        if c == 0x2F or c == 0x3F or c == 0x23 or c == 0x0A:
            return False
    else:
        return False
    # no "/." and no "\n" in the rest (the part before holds neither)
    for i in range(i + 3, n):
        c = PyUnicode_READ(kind, data, i)
        if c == 0x0A or (c == 0x2E and PyUnicode_READ(kind, data, i - 1) == 0x2F):
            return False
    return True


cdef str _target_uri(str base, str r):
    """_target_uri_parts(base, r), remembered (a function of the two)."""
    if not base and _plain_absolute(r):
        return r
    cdef tuple key = (base, r)
    cdef object got = _TARGET_MEMO.get(key)
    if got is not None:
        return <str>got
    got = _target_uri_parts(base, r)
    if len(r) + len(base) <= 1024:           # (bounded: at most ~2048 x 1 KB)
        if len(_TARGET_MEMO) >= 2048:
            _TARGET_MEMO.clear()
        _TARGET_MEMO[key] = got
    return <str>got


cdef str _target_uri_parts(str base, str r):
    R = _URI_PARTS.match(r)
    r_scheme, r_auth, r_path, r_query, r_frag = R.groups()
    if base:
        b_scheme, b_auth, b_path, b_query, _ = _URI_PARTS.match(base).groups()
    else:
        b_scheme, b_auth, b_path, b_query = None, None, "", None
    if r_scheme is not None and b_scheme is not None and r_scheme == b_scheme:
        r_scheme = None
    if r_scheme is not None:
        t_scheme = r_scheme
        t_auth = r_auth
        t_path = _remove_dot_segments(r_path)
        t_query = r_query
    else:
        if r_auth is not None:
            t_auth = r_auth
            t_path = _remove_dot_segments(r_path)
            t_query = r_query
        else:
            if r_path == "":
                t_path = b_path
                t_query = r_query if r_query is not None else b_query
            else:
                if r_path.startswith("/"):
                    t_path = _remove_dot_segments(r_path)
                else:
                    t_path = _remove_dot_segments(_merge_uri(b_auth, b_path, r_path))
                t_query = r_query
            t_auth = b_auth
        t_scheme = b_scheme
    out = ""
    if t_scheme:
        out += t_scheme + ":"
    elif t_auth is not None:
        if _RE_WWW.match(t_auth):
            out += "http:"
        elif _RE_FTP.match(t_auth):
            out += "ftp:"
    if t_auth is not None:
        out += "//" + t_auth
    out += t_path or ""
    if t_query is not None:
        out += "?" + t_query
    if r_frag is not None:
        out += "#" + r_frag
    return out


@cython.final
cdef class Tokenizer:
    """HTML::Parser's parse()/eof() over bytes, calling the handler's
    on_start(tag, attrs, flagged), on_end(tag), on_text(text, is_cdata,
    flagged), on_comment(text), on_declaration(text)."""

    cdef object h
    cdef HtmlRenderer r           # the handler when it is our renderer: direct calls
    cdef public bint utf8
    cdef public bytes buf
    cdef public object literal    # bytes or None
    cdef public bint is_cdata
    cdef public list ms_stack
    cdef public int ms            # 0 none, 1 include, 2 rcdata, 3 cdata, 4 ignore
    cdef public object pending_end_tag
    cdef public bint no_dash_dash
    cdef bint _aflag              # start tag being built: some attribute value got flagged
    cdef bint _slash              # and some key not in _ATTRTAB (one with a "/") was kept
    cdef unsigned long long _seen # the _ATTRTAB names of the last complete start tag's dict

    def __init__(self, handler, bint utf8):
        self.h = handler
        self.r = handler if isinstance(handler, HtmlRenderer) else None
        self.utf8 = utf8
        self.buf = b""
        self.literal = None
        self.is_cdata = False
        self.ms_stack = []
        self.ms = 0
        self.pending_end_tag = None
        self.no_dash_dash = False

    cdef inline str _dec(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e):
        if self.utf8:
            return PyUnicode_DecodeUTF8(<const char*>p + s, e - s, "surrogateescape")
        return PyUnicode_DecodeLatin1(<const char*>p + s, e - s, NULL)

    cdef str _dec_val(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e):
        """_dec of an attribute value, through _VALCACHE (short values)."""
        cdef Py_ssize_t n = e - s, i
        cdef unsigned int h
        cdef int mode = 1 if self.utf8 else 0
        cdef _ValEnt *ent
        cdef str v
        if n <= 0 or n > _VC_MAX:
            return self._dec(p, s, e)
        h = 2166136261u ^ <unsigned int>mode
        for i in range(s, e):
            h = (h ^ p[i]) * 16777619u
        ent = &_VALCACHE[(h ^ (h >> 15)) & (_VC_SIZE - 1)]
        if ent.s != NULL and ent.n == n and ent.mode == mode and \
                memcmp(ent.b, p + s, n) == 0:
            return <str>ent.s
        v = self._dec(p, s, e)
        Py_INCREF(v)
        Py_XDECREF(ent.s)
        ent.s = <PyObject*>v
        ent.n = <int>n
        ent.mode = mode
        memcpy(ent.b, p + s, n)
        return v

    # -- events
    cdef inline void _flush(self) except *:
        cdef bytes tag
        if self.pending_end_tag is not None:
            tag = self.pending_end_tag
            self.pending_end_tag = None
            self._call_end(tag.decode("latin-1").lower())

    cdef void _call_end(self, str tag) except *:
        if self.r is not None:
            self.r._tag(tag, None, -1, -1)
        else:
            self.h.on_end(tag)

    cdef void _ev_none(self) except *:
        self._flush()

    cdef void _ev_text(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e) except *:
        cdef str text
        cdef bint flagged
        cdef HtmlRenderer r = self.r
        cdef Py_ssize_t i
        if self.ms == 4:
            return
        if r is not None and r.n_script == 0 and r.n_a == 0 and r.n_title == 0:
            # white space alone (two thirds of the text events): on_text's
            # outcome without the string (see _ws_text)
            i = s
            while i < e and _ws1(p[i]):
                i += 1
            if i == e:
                if r.n_style == 0:
                    r._ws_text(e > s, self.utf8)
                return
        text = self._dec(p, s, e)
        flagged = self.utf8
        if not self.is_cdata and memchr(p + s, 0x26, e - s) != NULL:
            text, flagged = decode_entities(text, flagged, True)
        if self.r is not None:
            self.r.on_text(text, self.is_cdata, flagged)
        else:
            self.h.on_text(text, self.is_cdata, flagged)

    cdef void _ev_comment(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e) except *:
        if self.ms == 4:
            return
        if self.r is not None:
            self.r.comment.append(self._dec(p, s, e))
        else:
            self.h.on_comment(self._dec(p, s, e))

    cdef void _ev_decl(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e) except *:
        self._flush()
        if self.ms == 4:
            return
        if self.r is not None:
            self.r.on_declaration(self._dec(p, s, e))
        else:
            self.h.on_declaration(self._dec(p, s, e))

    cdef void _ev_end(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e) except *:
        self._flush()
        if self.ms == 4:
            return
        cdef _TagEnt *te
        if self.r is not None:
            te = _tt_find(p + s, e - s)
            if te != NULL:
                self.r._tag(<str>te.s, None, -1, te.info)
                return
        cdef str tag = self._dec(p, s, e)
        if not tag.isascii() or not tag.islower():
            tag = tag.translate(_LOWER)
        self._call_end(tag)

    cdef Py_ssize_t _skip_until_gt(self, const unsigned char* b, Py_ssize_t s, Py_ssize_t end):
        cdef unsigned char quote = 0, prev = 0x20, c
        while s < end:
            c = b[s]
            if not quote and c == 0x3E:
                return s
            if c == 0x22 or c == 0x27:
                if c == quote:
                    quote = 0
                elif not quote and (prev == 0x20 or prev == 0x3D):
                    quote = c
            prev = c
            s += 1
        return end

    # -- parse_* functions: return the new position, the start position when
    # more data is needed, or -1 when it is not markup
    cdef Py_ssize_t _parse_comment(self, const unsigned char* b, Py_ssize_t beg, Py_ssize_t end,
                                   Py_ssize_t start) except -2:
        cdef Py_ssize_t s = beg, tok_end
        if self.no_dash_dash:
            while s < end and b[s] != 0x3E:
                s += 1
            if s < end:
                s += 1
                self._ev_comment(b, start, s)
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
                    while s < end and _space(b[s]):
                        s += 1
                    if s < end and b[s] == 0x3E:
                        s += 1
                        self._ev_comment(b, start, s)
                        return s
                if s < end:
                    s = tok_end + 1
                    continue
            if s >= end:
                return beg

    cdef Py_ssize_t _parse_marked_section(self, const unsigned char* b, Py_ssize_t beg,
                                          Py_ssize_t end) except -2:
        cdef Py_ssize_t s = beg + 3, ns, ne
        cdef list tokens = None
        while True:
            while s < end and _space(b[s]):
                s += 1
            while s < end and _name_first(b[s]):
                ns = s
                s += 1
                while s < end and _name_char(b[s]):
                    s += 1
                ne = s
                while s < end and _space(b[s]):
                    s += 1
                if s >= end:
                    return beg
                if tokens is None:
                    tokens = []
                tokens.append(PyUnicode_DecodeLatin1(<const char*>b + ns, ne - ns, NULL).lower())
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
                return -1
            break
        if s < end and b[s] == 0x5B:
            s += 1
            if tokens is None:
                tokens = ["include"]
            self.ms_stack.append(tokens)
            self._ms_update()
            self._ev_none()
            return s
        return -1

    cdef void _ms_update(self) except *:
        cdef int ms = 0, v
        for toks in self.ms_stack:
            for t in toks:
                v = _MS_ORDER.get(t, 0)
                if v > ms:
                    ms = v
        self.ms = ms
        self.is_cdata = ms == 3

    cdef Py_ssize_t _parse_decl(self, const unsigned char* b, Py_ssize_t beg,
                                Py_ssize_t end) except -2:
        cdef Py_ssize_t s = beg + 2, tmp, decl
        cdef unsigned char c, q
        cdef bytes name
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
            if tmp == -1:
                return self._decl_fail(b, beg, s, end)
            return tmp
        if s < end and b[s] == 0x3E:
            s += 1
            self._ev_comment(b, beg, s)
            return s
        if s < end and (0x41 <= b[s] <= 0x5A or 0x61 <= b[s] <= 0x7A):
            decl = s
            s += 1
            while s < end and _name_char(b[s]):
                s += 1
            if s >= end:
                return beg
            name = (<const char*>b)[decl:s].lower()
            if name != b"doctype" and name != b"entity":
                return self._decl_fail(b, beg, s, end)
            while True:
                while s < end and _space(b[s]):
                    s += 1
                if s >= end:
                    return beg
                c = b[s]
                if c == 0x22 or c == 0x27:
                    q = c
                    s += 1
                    if s < end:                 # (the closing quote: memchr)
                        s = _memidx(b, s, end, q)
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
                    while s < end and not _space(b[s]) and b[s] != 0x3E:
                        s += 1
                    if s >= end:
                        return beg
                else:
                    break
            if s >= end:
                return beg
            if b[s] == 0x3E:
                s += 1
                self._ev_decl(b, beg, s)
                return s
            return self._decl_fail(b, beg, s, end)
        return self._decl_fail(b, beg, s, end)

    cdef Py_ssize_t _decl_fail(self, const unsigned char* b, Py_ssize_t beg, Py_ssize_t s,
                               Py_ssize_t end) except -2:
        while s < end and b[s] != 0x3E:
            s += 1
        if s < end:
            s += 1
            self._ev_comment(b, beg, s)
            return s
        return beg

    cdef Py_ssize_t _scan_start(self, const unsigned char* b, Py_ssize_t beg, Py_ssize_t end,
                                dict d, frozenset need=None,
                                unsigned long long mask=0) except -2:
        """Scan a start tag from `beg` ("<" + name); with d, fill it with the
        attributes (the tag is known to be complete then).  Returns the
        position of the closing ">", beg when more data is needed, -1 when
        it is not a tag.  _attr sets self._aflag when a value got flagged.
        (mask: need's names as _ATTRTAB bits)"""
        cdef Py_ssize_t s = beg + 2, an, ae, vs, ve
        cdef unsigned long long seen = 0        # the _ATTRTAB names d holds
        cdef unsigned char q
        while s < end and not (_CL[b[s]] & 3):
            s += 1
        while s < end and _CL[b[s]] & 1:
            s += 1
        if s >= end:
            return beg
        while s < end and not (_CL[b[s]] & 3):
            an = s
            s += 1
            while s < end and not (_CL[b[s]] & 7):
                s += 1
            if s >= end:
                return beg
            ae = s
            while s < end and _CL[b[s]] & 1:
                s += 1
            if s >= end:
                return beg
            if b[s] == 0x3D:
                s += 1
                while s < end and _CL[b[s]] & 1:
                    s += 1
                if s >= end:
                    return beg
                if b[s] == 0x3E:
                    if d is not None:
                        self._attr(d, b, an, ae, s, s, need, mask, &seen)
                    break
                if b[s] == 0x22 or b[s] == 0x27:
                    q = b[s]
                    s += 1
                    vs = s
                    if s < end:                 # (the closing quote: memchr)
                        s = _memidx(b, s, end, q)
                    if s >= end:
                        return beg
                    ve = s
                    s += 1
                    if d is not None:
                        self._attr(d, b, an, ae, vs, ve, need, mask, &seen)
                else:
                    vs = s
                    while s < end and not (_CL[b[s]] & 3):
                        s += 1
                    if s >= end:
                        return beg
                    if d is not None:
                        self._attr(d, b, an, ae, vs, s, need, mask, &seen)
                while s < end and _CL[b[s]] & 1:
                    s += 1
                if s >= end:
                    return beg
            elif d is not None:
                self._attr(d, b, an, ae, -1, -1, need, mask, &seen)
        if s < end and b[s] == 0x3E:
            self._seen = seen
            return s
        return -1

    cdef void _attr(self, dict d, const unsigned char* b, Py_ssize_t an, Py_ssize_t ae,
                    Py_ssize_t vs, Py_ssize_t ve, frozenset need,
                    unsigned long long mask, unsigned long long *seen) except *:
        """d[name] = value unless d has name (or need is given and neither
        holds name nor does name hold a "/").  With need, mask holds its
        names as _ATTRTAB bits and seen the _ATTRTAB names d holds (the
        others, with a "/", are looked up in d)."""
        cdef unsigned long long bit = 0
        cdef str key = None, val
        cdef str name = None
        cdef bint f
        cdef _TagEnt *ae_ent
        cdef Py_ssize_t i
        if need is not None:
            # (only ASCII letters fold to the ASCII names of the sets: in
            # either mode the lower-cased name is one of them exactly when
            # its bytes, ASCII letters folded, are; it is then that name)
            ae_ent = _tt_find(b + an, ae - an, _ATTRTAB)
            if ae_ent != NULL:
                bit = 1ULL << ae_ent.info
                if not (mask & bit) or seen[0] & bit:
                    return              # (not needed; or the first one wins)
                key = <str>ae_ent.s
            else:
                for i in range(an, ae):
                    if b[i] == 0x2F:
                        break
                else:
                    return
        if key is None:
            name = self._dec(b, an, ae)
            if self.utf8:
                key = name if name.isascii() and name.islower() else name.translate(_LOWER)
            else:
                key = name.lower()
            if need is not None and key not in need and "/" not in key:
                return
        if need is not None and not bit and key in d:
            return                  # (the first one wins; _aflag is not ours)
        if vs < 0:
            if name is None:
                name = self._dec(b, an, ae)
            val = name
        elif memchr(b + vs, 0x26, ve - vs) == NULL:      # no "&": decode_entities changes nothing
            val = self._dec_val(b, vs, ve)
            if self.utf8:
                self._aflag = True
        else:
            val, f = decode_entities(self._dec(b, vs, ve), self.utf8, False)
            if f:
                self._aflag = True
        if bit:
            seen[0] |= bit
        else:
            self._slash = True
        PyDict_SetDefault(d, key, val)      # (d[key] = val unless d has key)

    cdef Py_ssize_t _parse_start(self, const unsigned char* b, Py_ssize_t beg,
                                 Py_ssize_t end) except -2:
        cdef Py_ssize_t gt, ne
        cdef dict d = None
        cdef str tag
        cdef bytes lit
        cdef object islit
        cdef _TagEnt *te = NULL
        cdef int info = 0
        ne = beg + 2
        while ne < end and not (_CL[b[ne]] & 3):
            ne += 1
        if self.ms != 4 and self.r is not None:
            # our renderer: the attributes only for the tags whose handlers
            # read them, gathered by the scan that finds the tag's end (and
            # dropped when the tag is incomplete)
            te = _tt_find(b + beg + 1, ne - beg - 1)
            if te != NULL:
                info = te.info
                if info & (T_ELEM | T_TRICK) and info & (T_STYLE | T_URI | T_TESTS):
                    d = {}
            if d is not None:
                self._slash = False
                gt = self._scan_start(b, beg, end, d, <frozenset>te.need, te.mask)
            else:
                gt = self._scan_start(b, beg, end, None)
        else:
            gt = self._scan_start(b, beg, end, None)
        if gt <= beg:
            return gt
        self._flush()
        if self.ms != 4 and self.r is not None:
            if te != NULL:
                if d is not None:
                    # (what d holds, for _html_uri and _style_attrs)
                    self.r._noslash = not self._slash
                    self.r._aseen = self._seen
                    self.r._aseen_ok = True
                    self.r._tag(<str>te.s, d, 1, info)
                    self.r._noslash = False
                    self.r._aseen_ok = False
                else:
                    self.r._tag(<str>te.s, d, 1, info)
            else:
                tag = self._dec(b, beg + 1, ne)
                if not tag.isascii() or not tag.islower():
                    tag = tag.translate(_LOWER)
                self.r._tag(tag, None, 1, -1)
        elif self.ms != 4:
            d = {}
            self._aflag = self.utf8
            self._scan_start(b, beg, end, d)
            tag = self._dec(b, beg + 1, ne)
            if not tag.isascii() or not tag.islower():
                tag = tag.translate(_LOWER)
            self.h.on_start(tag, d, self._aflag)
        if ne - beg - 1 in (3, 5, 6, 8, 9) and _lit_ends(b[beg + 1], b[ne - 1]):
            # (the lengths, first and last letters of the _LITERAL names)
            lit = (<const char*>b)[beg + 1:ne].lower()
            islit = _LITERAL.get(lit)
            if islit is not None:
                self.literal = lit
                self.is_cdata = islit
        return gt + 1

    cdef Py_ssize_t _parse_end(self, const unsigned char* b, Py_ssize_t beg,
                               Py_ssize_t end) except -2:
        cdef Py_ssize_t s = beg + 2, ts, te
        if s < end and not _space(b[s]) and b[s] != 0x3E:
            ts = s
            s += 1
            while s < end and not _space(b[s]) and b[s] != 0x3E:
                s += 1
            te = s
            s = self._skip_until_gt(b, s, end)
            if s < end:
                s += 1
                self._ev_end(b, ts, te)
                return s
            return beg
        s = self._skip_until_gt(b, s, end)
        if s < end:
            s += 1
            self._ev_comment(b, beg, s)
            return s
        return beg

    cdef Py_ssize_t _parse_process(self, const unsigned char* b, Py_ssize_t beg,
                                   Py_ssize_t end) except -2:
        cdef Py_ssize_t s = beg + 2
        while s < end:
            if b[s] == 0x3E:
                s += 1
                self._ev_none()
                return s
            s += 1
        return beg

    cdef Py_ssize_t _parse_buf(self, bytes data, Py_ssize_t beg, Py_ssize_t end) except -2:
        cdef const unsigned char* b = data
        cdef Py_ssize_t s = beg, t = beg, end_text, k, litlen, te, new
        cdef const unsigned char* lp
        cdef bytes lit
        cdef unsigned char c
        while True:
            while self.literal is not None:
                lit = self.literal
                lp = lit
                litlen = len(lit)
                if s < end:                 # (the next "<": memchr)
                    s = _memidx(b, s, end, 0x3C)
                if s >= end:
                    return t
                end_text = s
                s += 1
                if s < end and b[s] == 0x2F:
                    s += 1
                    k = 0
                    while k < litlen and s < end and \
                            ((b[s] | 0x20) if 0x41 <= b[s] <= 0x5A else b[s]) == lp[k]:
                        s += 1
                        k += 1
                    if k == litlen and lit != b"plaintext":
                        te = s
                        while s < end and _space(b[s]):
                            s += 1
                        if s < end and b[s] == 0x3E:
                            s += 1
                            if t != end_text:
                                self._ev_text(b, t, end_text)
                            self._ev_end(b, end_text + 2, te)
                            self.literal = None
                            self.is_cdata = False
                            t = s
            while self.ms == 2 or self.ms == 3:
                while s < end and b[s] != 0x5D:
                    s += 1
                if s < end and b[s] == 0x5D:
                    end_text = s
                    s += 1
                    if s + 1 < end and b[s] == 0x5D and b[s + 1] == 0x3E:
                        s += 2
                        if t != end_text:
                            self._ev_text(b, t, end_text)
                        self._ev_none()
                        t = s
                        self.ms_stack.pop()
                        self._ms_update()
                        continue
                if s >= end:
                    return t
            if not self.ms:
                if s < end:                 # (the next "<": memchr)
                    s = _memidx(b, s, end, 0x3C)
            while s < end and b[s] != 0x3C:
                if self.ms and b[s] == 0x5D:
                    end_text = s
                    s += 1
                    if s < end and b[s] == 0x5D:
                        s += 1
                        if s < end and b[s] == 0x3E:
                            s += 1
                            self._ev_text(b, t, end_text)
                            self._ev_none()
                            t = s
                            self.ms_stack.pop()
                            self._ms_update()
                            continue
                s += 1
            if s != t:
                if s < end and b[s] == 0x3C:
                    self._ev_text(b, t, s)
                    t = s
                else:
                    s -= 1
                    if s >= end:
                        # "]]" ending the buffer in a marked section: hparser.c
                        # steps past it and reads the NUL after it, not a space
                        s = end - 1
                    if _space(b[s]):
                        while s >= t and _space(b[s]):
                            s -= 1
                    else:
                        while s >= t and not _space(b[s]):
                            s -= 1
                        while s >= t and _space(b[s]):
                            s -= 1
                    s += 1
                    if s != t:
                        self._ev_text(b, t, s)
                    return s
            if end - s < 3:
                return s
            c = b[s + 1]
            if _name_first(c):
                new = self._parse_start(b, t, end)
            elif c == 0x2F:
                new = self._parse_end(b, t, end)
            elif c == 0x21:
                new = self._parse_decl(b, t, end)
            elif c == 0x3F:
                new = self._parse_process(b, t, end)
            else:
                new = -1
            s += 1
            if new != -1:
                if new == t:
                    return t
                t = s = new

    def parse(self, bytes chunk) -> None:
        cdef bytes b
        cdef Py_ssize_t s
        if not chunk:
            return
        b = self.buf + chunk
        s = self._parse_buf(b, 0, len(b))
        self.buf = b[s:]

    def eof(self) -> None:
        cdef bytes b = self.buf
        cdef const unsigned char* p = b
        cdef Py_ssize_t s = 0, end = len(b)
        cdef bytes lit
        while s < end:
            if self.literal is not None:
                lit = self.literal
                if lit in (b"plaintext", b"xmp", b"iframe", b"textarea"):
                    break
                if lit in (b"script", b"style"):
                    self._flush()
                    if self.ms != 4:
                        self._call_end(lit.decode("latin-1").translate(_LOWER))
                else:
                    self.pending_end_tag = lit
                self.literal = None
                s = self._parse_buf(b, s, end)
                continue
            if not self.no_dash_dash and p[s] == 0x3C:
                self.no_dash_dash = True
                s = self._parse_buf(b, s, end)
                continue
            if p[s] == 0x3C:
                if s + 1 == end or _name_first(p[s + 1]) or p[s + 1] in (0x2F, 0x21, 0x3F):
                    self._ev_comment(p, s, end)
                    s = end
            break
        if s < end:
            self._ev_text(p, s, end)
        self.buf = b""
        self.literal = None
        self.is_cdata = False


# -------------------------------------------------------------- SA's renderer

@cython.final
cdef class HtmlRenderer:
    """Mail::SpamAssassin::HTML: feed with render(text, flagged)."""

    cdef public dict results
    cdef public list text
    cdef public list text_ws
    cdef public list text_inv
    cdef public bint text_flag
    cdef dict _inside             # inside (its known tags' counts: _cnt)
    cdef bint _noslash            # the Tokenizer says: no key of _tag's attr holds a "/"
    cdef bint _aseen_ok           # and _aseen: the _ATTRTAB names it holds (bits)
    cdef unsigned long long _aseen
    cdef public dict uri
    cdef public list anchor
    cdef public str anchor_last
    cdef public str base_href
    cdef public bint uri_truncated
    cdef Py_ssize_t n_elements, n_elements_seen, n_tags, n_tags_seen, n_closed_extra
    cdef public Py_ssize_t obfuscation
    cdef public dict backhair
    cdef public list comment
    cdef public list script
    cdef public list title
    cdef public Py_ssize_t title_index
    cdef public object charsets
    cdef public object image_area
    cdef public object max_size
    cdef public object min_size
    cdef public int closed_html
    cdef public int closed_body
    cdef public Py_ssize_t length
    cdef public object basefont
    cdef public list text_style
    cdef object _inv_style            # _font_invisible: the style _inv_value is for
    cdef bint _inv_value
    cdef Py_ssize_t n_script, n_style, n_a, n_title     # inside["script"], ... (0: none)
    # inside[name] of the known tags by number, -1 while not in inside
    # (inside gets the key when first seen, for its order, and the counts
    # when rendering ends: _sync_inside)
    cdef Py_ssize_t _cnt[_NTAGS]

    def __cinit__(self):
        cdef Py_ssize_t i
        for i in range(_NTAGS):
            self._cnt[i] = -1

    def __init__(self):
        self.results = {}
        self.text = []
        self.text_ws = []
        self.text_inv = []
        self.text_flag = False
        self._inside = {}
        self.uri = {}
        self.anchor = []
        self.anchor_last = ""
        self.base_href = ""
        self.uri_truncated = False
        self.obfuscation = 0
        self.backhair = {}
        self.comment = []
        self.script = []
        self.title = []
        self.title_index = -1
        self.charsets = None
        self.image_area = 0
        self.max_size = 3
        self.min_size = 3
        self.closed_html = 0
        self.closed_body = 0
        self.length = 0
        self.basefont = 3
        self.text_style = []

    @property
    def inside(self) -> dict:
        """HTML.pm's inside: tag -> open count."""
        self._sync_inside()
        return self._inside

    @property
    def counts(self) -> dict:
        return {"elements": self.n_elements, "elements_seen": self.n_elements_seen,
                "tags": self.n_tags, "tags_seen": self.n_tags_seen,
                "closed_extra": self.n_closed_extra}

    # -- driver (HTML.pm parse)
    def render(self, str text, bint flagged) -> None:
        cdef Tokenizer tok
        cdef Py_ssize_t before
        self.results["html"] = 1
        self.basefont = 3
        self.text_style = [_new_style("default", self.basefont)]
        self.length += len(text)
        if not flagged and PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND:
            data = _prepare1(text)
        else:
            text = text.replace("&nbsp;", " ")
            text = _self_close(text, flagged)
            if flagged:
                text = text.replace("\u201c", '"').replace("\u201d", '"')
            else:
                text = text.replace("\xe2\x80\x9c", '"').replace("\xe2\x80\x9d", '"')
            data = text.encode("utf-8", "surrogatepass") if flagged else text.encode("latin-1")
        self.text_flag = flagged
        tok = Tokenizer(self, flagged)
        tok.parse(data)
        # (n_style and n_script: inside's "style" and "script" counts)
        while self.n_style > 0:
            before = self.n_style
            tok.parse(b"</style>")
            if self.n_style >= before:
                break
        while self.n_script > 0:
            before = self.n_script
            tok.parse(b"</script>")
            if self.n_script >= before:
                break
        tok.eof()
        self._end()

    cdef void _sync_inside(self) except *:
        """inside's counts of the known tags from _cnt."""
        cdef dict ins = self._inside
        cdef Py_ssize_t i
        for i in range(1, len(_TAGNAMES)):
            if self._cnt[i] >= 0:
                ins[_TAGNAMES[i]] = self._cnt[i]

    cdef void _end(self) except *:
        r = self.results
        self._sync_inside()
        self.text_style = []
        r["uri"] = list(self.uri)
        r["anchor"] = self.anchor
        r["uri_detail"] = self.uri
        r["uri_truncated"] = self.uri_truncated
        r["image_area"] = self.image_area
        r["length"] = self.length
        r["min_size"] = self.min_size
        r["max_size"] = self.max_size
        if self.n_tags:
            r["closed_extra_ratio"] = self.n_closed_extra / <double>self.n_tags
        r["comment"] = self.comment
        r["script"] = self.script
        r["title"] = self.title
        r["inside"] = self._inside
        if self.backhair:
            r["backhair_count"] = len(self.backhair)
        if self.n_elements and self.n_tags:
            r["bad_tag_ratio"] = (self.n_tags - self.n_elements) / <double>self.n_tags
        if self.n_elements_seen and self.n_tags_seen:
            r["non_element_ratio"] = (self.n_tags_seen - self.n_elements_seen) / <double>self.n_tags_seen
        if self.n_tags and self.obfuscation:
            r["obfuscation_ratio"] = self.obfuscation / <double>self.n_tags
        if self.charsets is not None:
            r["charsets"] = self.charsets

    # -- rendered text
    def rendered_text(self, invisible=None) -> str:
        if invisible is None:
            return "".join(self.text)
        return "".join([t for t, inv in zip(self.text, self.text_inv, strict=True) if inv == invisible])

    cpdef display_text(self, str text, bint whitespace=False, bint invisible=False):
        cdef list tx = self.text
        cdef str last
        cdef Py_ssize_t n
        if whitespace:
            if tx and not self.text_ws[-1] and not self.text_inv[-1]:
                last = tx[-1]
                n = len(last)
                if n and last[n - 1] == 0x20:
                    tx[-1] = last[:n - 1]
        else:
            text = _collapse_ws(text)
            if tx and not invisible and self.text_ws[-1]:
                if len(text) and text[0] == 0x20:
                    text = text[1:]
        tx.append(text)
        self.text_ws.append(whitespace)
        self.text_inv.append(invisible)

    # -- tokenizer callbacks
    def on_start(self, str tag, dict attrs, bint flagged) -> None:
        self._tag(tag, attrs, 1, -1)

    def on_end(self, str tag) -> None:
        self._tag(tag, None, -1, -1)

    cpdef on_text(self, str text, bint is_cdata, bint flagged):
        cdef dict ins = self._inside
        cdef bint invisible, u, s_ok, e_ok
        cdef list at
        cdef str last, k
        if ins:
            # (inside's script, style, a and title counts, kept in C by _tag)
            if self.n_script > 0:
                self.script.append(text)
                return
            if self.n_style > 0:
                return
            if self.n_a > 0:
                at = _anchor_texts(self.uri, self.anchor_last)
                if at:
                    at[-1] += text
                else:
                    at.append(text)
                if self.anchor:
                    self.anchor[-1] += text
                else:
                    self.anchor.append(text)
            if self.n_title > 0:
                while len(self.title) <= self.title_index:
                    self.title.append("")
                self.title[self.title_index] += text
        if flagged:
            self.text_flag = True
        invisible = False
        if _has_visible(text):
            invisible = self._font_invisible()
        if self.text:
            u = flagged
            last = self.text[-1]
            # the patterns are anchored at one end and match at most 7
            # characters (8 with the \b): the same searches on the ends only
            if text and last:
                # _OBF_START/_OBF_END on one character each: _punct_class;
                # the _HAIR patterns need that character too
                s_ok = _punct_class(text[0], u)
                e_ok = _punct_class(last[len(last) - 1], u)
                if s_ok and e_ok:
                    self.obfuscation += 1
                m = (_HAIR_END_U if u else _HAIR_END_A).search(last[-8:]) if e_ok and s_ok else None
            else:
                m = None
                s_ok = False
            if m and s_ok:
                m2 = (_HAIR_START_U if u else _HAIR_START_A).search(text[:8])
                if m2:
                    k = f"{len(m.group(1))}_{len(m2.group(1))}"
                    self.backhair[k] = self.backhair.get(k, 0) + 1
        self.display_text(text, False, invisible)

    cdef void _ws_text(self, bint nonempty, bint flagged) except *:
        """on_text(text, ., flagged) for a text of [ \t\n\r\f\v] alone
        outside script, style, a and title: no visible character (so not
        invisible), a first character _punct_class rejects (no obfuscation
        or backhair count), collapsed to " " (or "" when empty)."""
        if flagged:
            self.text_flag = True
        self.display_text(" " if nonempty else "", False, False)

    def on_comment(self, str text) -> None:
        self.comment.append(text)

    cpdef on_declaration(self, str text):
        if _DOCTYPE.match(text):
            self.n_elements += 1
            self.n_tags += 1
            self._inside["!doctype"] = 0

    # -- HTML.pm html_tag and friends
    cdef void _tag(self, str tag, dict attr, int num, int info) except *:
        """html_tag; info: tag's _TAGINFO bits, -1 when not looked up yet.
        attr may be None where none of the handlers reads it."""
        cdef dict ins = self._inside
        cdef object o
        cdef Py_ssize_t cur = -1           # inside[tag], -1 when not there
        cdef object infoo
        cdef bint maybe_ns = False
        cdef bint is_elem
        cdef Py_ssize_t v
        cdef int tid
        if info < 0:
            infoo = _TAGINFO.get(tag)
            info = 0 if infoo is None else infoo
        tid = info >> T_ID_SHIFT
        if tid:
            cur = self._cnt[tid]
        else:
            o = ins.get(tag)
            if o is not None:
                cur = o
        if info == 0:           # (no known tag holds a ":")
            maybe_ns = ":" in tag and _NAMESPACE.match(tag) is not None
        is_elem = info & T_ELEM
        if is_elem or maybe_ns:
            self.n_elements += 1
            if cur < 0:
                self.n_elements_seen += 1
        self.n_tags += 1
        if cur < 0:
            self.n_tags_seen += 1
            v = num
        else:
            v = cur + num
        if v < 0:
            self.n_closed_extra += 1
            v = 0
        if tid:
            if cur < 0:
                ins[tag] = v        # (the key's place; the count: _sync_inside)
            self._cnt[tid] = v
        else:
            ins[tag] = v
        if info & T_COUNTED:
            if tid == ID_A:
                self.n_a = v
            elif tid == ID_SCRIPT:
                self.n_script = v
            elif tid == ID_STYLE:
                self.n_style = v
            else:
                self.n_title = v
        if maybe_ns:
            return
        if info & (T_ELEM | T_TRICK):
            if info & T_STYLE:
                self._text_style(tag, attr, num, tid)
            if info & T_WS_NL:
                self.display_text("\n", True, False)
            elif info & T_WS_SP:
                self.display_text(" ", True, False)
            elif info & T_WS_PARA:
                self.display_text("\n\n", True, False)
            if num == 1:
                if info & T_URI:
                    self._html_uri(tag, attr, tid)
                if info & T_TESTS:
                    self._tests(tag, attr, tid)
            else:
                if tid == ID_HTML:
                    self.closed_html = 1
                elif tid == ID_BODY:
                    self.closed_body = 1

    cpdef str canon_uri(self, str uri):
        cdef Py_UCS4 c0, c1
        if uri:
            c0 = uri[0]
            c1 = uri[len(uri) - 1]
            if c0 != 0xA0 and c1 != 0xA0 and not c0.isspace() and not c1.isspace():
                # neither end is \s (ASCII or Unicode) or NBSP: the subs change nothing
                if len(uri) > MAX_URI_LENGTH:
                    self.uri_truncated = True
                    uri = uri[:MAX_URI_LENGTH]
                return uri
        if self.text_flag:
            uri = _URI_TRAIL_U.sub("", _URI_LEAD_U.sub("", uri))
        else:
            uri = _URI_TRAIL_A.sub("", _URI_LEAD_A.sub("", uri))
        if len(uri) > MAX_URI_LENGTH:
            self.uri_truncated = True
            uri = uri[:MAX_URI_LENGTH]
        return uri

    cpdef push_uri(self, str typ, str uri):
        uri = self.canon_uri(uri)
        if uri == "":
            return
        cdef Py_UCS4 c0 = uri[0]
        cdef dict ent
        # (the regex only where the first character may start one of its
        # words: any non-ASCII one too, for re.I's Unicode case folding)
        if (c0 >= 0x80 or c0 in "dDmMfFcCtT") and _RE_SCHEME_LOCAL.match(uri):
            target = uri
        else:
            target = _target_uri(self.base_href or "", uri)
            if target == "":
                return
        ent = self.uri.get(target)
        if ent is None:
            ent = self.uri[target] = {}
        _sub_dict(ent, "types")[typ] = 1

    cdef inline bint _lacks(self, unsigned long long bits) noexcept:
        """The Tokenizer says attr (its dict, no key with a "/") holds
        none of the names of bits: no need to look them up."""
        return self._aseen_ok and self._noslash and not (self._aseen & bits)

    cdef void _html_uri(self, str tag, dict attr, int tid) except *:
        if tid == ID_BODY or tid == ID_TABLE or tid == ID_TR or tid == ID_TD:
            if not self._lacks(B_BACKGROUND) and attr.get("background") is not None:
                self.push_uri(tag, attr["background"])
        elif tid == ID_A or tid == ID_AREA or tid == ID_LINK:
            if not self._noslash and _has_slash_key(attr):
                for k in list(attr):
                    if "/href" in k and _RE_NS_HREF.search(k):
                        attr["href"] = attr.pop(k)
            if not self._lacks(B_HREF) and attr.get("href") is not None:
                href = attr["href"]
                # (str.replace gives href itself where it finds nothing)
                if self.text_flag:
                    if "\ufeff" in href:
                        href = href.replace("\ufeff", "")
                        attr["href"] = href
                elif "\xef\xbb\xbf" in href:
                    href = href.replace("\xef\xbb\xbf", "")
                    attr["href"] = href
                self.push_uri(tag, href)
            if not self._lacks(B_SAFEREDIR) and attr.get("data-saferedirecturl") is not None:
                self.push_uri(tag, attr["data-saferedirecturl"])
        elif tid == ID_IMG or tid == ID_FRAME or tid == ID_IFRAME or tid == ID_EMBED or \
                tid == ID_SCRIPT or tid == ID_BGSOUND:
            if not self._noslash and _has_slash_key(attr):
                for k in list(attr):
                    if "/src" in k and _RE_NS_SRC.search(k):
                        attr["src"] = attr.pop(k)
            if not self._lacks(B_SRC) and attr.get("src") is not None:
                self.push_uri(tag, attr["src"])
        elif tid == ID_FORM:
            if attr.get("action") is not None:
                self.push_uri(tag, attr["action"])
        elif tid == ID_BASE:
            uri = attr.get("href")
            if uri:
                uri = self.canon_uri(uri)
                self.push_uri(tag, uri)
                if _RE_BASE_SCHEME.match(uri):
                    uri = _RE_BASE_FILE.sub(r"\1", uri)
                    if not uri.endswith("/"):
                        uri += "/"
                    self.base_href = uri
        elif tid == ID_META:
            he = attr.get("http-equiv")
            content = attr.get("content")
            if he is not None and content is not None and _RE_REFRESH.search(he) and \
                    _RE_URL_EQ.search(content):
                uri = _RE_URL_PREFIX.sub("", content, count=1)
                uri = _RE_SEMI_REST.sub("", uri, count=1)
                self.push_uri(tag, uri)

    cdef void _close_table_tag(self, int tid) except *:
        cdef list ts = self.text_style
        cdef int top
        if not _in_style_stack(ts, tid):
            return
        while ts:
            top = (<_Style>ts[-1]).tid
            if not top:
                break
            if (tid == ID_TD and (top == ID_FONT or top == ID_TD)) or \
                    (tid == ID_TR and (top == ID_FONT or top == ID_TD or top == ID_TR)):
                ts.pop()
            else:
                break

    cdef void _close_tag(self, int tid) except *:
        cdef _Style st
        cdef list ts = self.text_style
        if not _in_style_stack(ts, tid):
            return
        while ts:
            st = ts.pop()
            if st.tid == tid:
                break

    cdef void _text_style(self, str tag, dict attr, int num, int tid) except *:
        """(tid: tag's number, not 0: the tags with T_STYLE are known)"""
        cdef _Style new
        if tid == ID_TH:
            tag = "td"
            tid = ID_TD
        if num == 1:
            if tid == ID_BASEFONT and "size" in attr:
                m = _RE_LEAD_NUM.match(attr["size"] or "")
                if m:
                    self.basefont = int(m.group(1))
                    return
            if tid == ID_TD or tid == ID_TR:
                self._close_table_tag(tid)
            new = _copy_style(self.text_style[-1], tag, tid) if self.text_style else \
                _new_style(tag, 3, tid)
            if tid == ID_BIG:
                new.size += 1
                self.text_style.append(new)
                return
            if tid == ID_SMALL:
                new.size -= 1
                self.text_style.append(new)
                return
            if attr:
                self._style_attrs(tag, attr, new, tid)
            self.text_style.append(new)
        else:
            if tid != ID_BODY:
                self._close_tag(tid)

    cdef void _style_attrs(self, str tag, dict attr, _Style new, int tid) except *:
        # (the keys HTML.pm also sets that nothing reads: "style", the other
        # CSS properties, and the other attributes _OK_ATTR allows)
        # (in the attributes' order, as the pure twin: the size bounds are
        # checked after each allowed one)
        cdef int code, k, n
        cdef Py_ssize_t pos = 0
        cdef PyObject *kp
        cdef PyObject *vp
        if 0 < tid < _NTAGS and _OKA_N[tid]:
            if self._aseen_ok and not (self._aseen & _OKA_MASK[tid]):
                return              # (none of the allowed names)
            n = _OKA_N[tid]
            # (code 4 replaces the value of a key the dict has: no resize)
            while PyDict_Next(attr, &pos, &kp, &vp):
                for k in range(n):
                    if _OKA_NAME[tid][k] == kp or (<str>_OKA_NAME[tid][k]) == <object>kp:
                        break
                else:
                    continue
                self._style_one(attr, new, _OKA_CODE[tid][k], <object>vp if <object>vp is not None else "")
            return
        ok = _OK_ATTR_C.get(tag)
        if ok is None:
            return
        okd = dict(<tuple>ok)
        for name in list(attr):
            got = okd.get(name)
            if got is not None:
                val = attr[name]
                self._style_one(attr, new, got, val if val is not None else "")

    cdef void _style_one(self, dict attr, _Style new, int code, object val) except *:
        """_style_attrs for one allowed attribute present (what code says)
        and the size bounds check after it."""
        if code == 1:
            new.fgcolor = _rgb(val)
        elif code == 2:
            m = _font_size(val)
            if m is not None:
                new.size = self.basefont + m[1] if m[0] else m[1]
        elif code == 3:
            for k, v in _css_ops(val):
                if k == "fgcolor":
                    new.fgcolor = v
                elif k == "bgcolor":
                    new.bgcolor = v
                elif k == "style_display":
                    new.display = v
                elif k == "style_visibility":
                    new.visibility = v
            if new.bgcolor == "transparent":
                new.bgcolor = (<_Style>self.text_style[-1]).bgcolor if self.text_style else "#ffffff"
            if new.fgcolor == "transparent":
                new.fgcolor = new.bgcolor
        elif code == 4:
            attr["bgcolor"] = _rgb(val)
        if new.size > self.max_size:
            self.max_size = new.size
        elif new.size < self.min_size:
            self.min_size = new.size

    cdef bint _font_invisible(self) except -1:
        """_font_invisible_of the style on top (remembered for that style
        object: the styles on the stack do not change once pushed, and the
        results it sets stay set)."""
        cdef _Style st = self.text_style[-1] if self.text_style else _new_style("", 3)
        if st is self._inv_style:
            return self._inv_value
        self._inv_value = self._font_invisible_of(st)
        self._inv_style = st
        return self._inv_value

    cdef bint _font_invisible_of(self, _Style st) except -1:
        cdef int code
        if st.cfg is st.fgcolor and st.cbg is st.bgcolor:
            code = st.code                # (the same string objects: the same answer)
        else:
            code = _contrast(st.fgcolor, st.bgcolor)
            st.cfg = st.fgcolor
            st.cbg = st.bgcolor
            st.code = code
        size = st.size
        display = st.display
        visibility = st.visibility
        if code == 1:
            self.results["font_low_contrast"] = 1
            return True
        if code == 2:
            self.results["font_invalid_color"] = 1
            return True
        if size <= 1:
            return True
        if display and display.lower() == "none":
            return True
        if visibility and visibility.lower() == "hidden":
            return True
        return False

    cdef void _tests(self, str tag, dict attr, int tid) except *:
        if tid == ID_FONT:
            if not self._lacks(B_FACE) and "face" in attr and not _font_face_ok(attr["face"] or ""):
                self.results["font_face_bad"] = 1
        elif tid == ID_IMG:
            if self.n_a > 0:
                at = _anchor_texts(self.uri, self.anchor_last)
                if at:
                    at[-1] += "<img>\n"
                else:
                    at.append("<img>\n")
                if self.anchor:
                    self.anchor[-1] += "<img>\n"
                else:
                    self.anchor.append("<img>\n")
            if not self._lacks(B_WH) and "width" in attr and "height" in attr:
                width = height = 0
                m = _dim(attr["width"] or "")
                if m is not None:
                    width = m[0] * (8 if m[1] else 1)
                m = _dim(attr["height"] or "")
                if m is not None:
                    height = m[0] * (6 if m[1] else 1)
                if width <= 0:
                    width = 200
                if height <= 0:
                    height = 200
                self.image_area += width * height
        elif tid == ID_FORM:
            if "action" in attr:
                if _RE_MAILTO.search(attr["action"] or ""):
                    self.results["form_action_mailto"] = 1
        elif tid == ID_OBJECT or tid == ID_EMBED:
            self.results["embeds"] = 1
        elif tid == ID_A:
            uri = self.anchor_last = self.canon_uri(attr["href"] or "") \
                if not self._lacks(B_HREF) and "href" in attr else ""
            _anchor_texts(self.uri, uri).append("")
            self.anchor.append("")
        elif tid == ID_TITLE:
            self.title_index += 1
            while len(self.title) <= self.title_index:
                self.title.append("")
            self.title[self.title_index] = ""
        elif tid == ID_META:
            he = attr.get("http-equiv")
            content = attr.get("content")
            if he is not None and content is not None and _RE_CONTENT_TYPE.search(he):
                m = _RE_CHARSET.search(content)
                if m:
                    self.charsets = m.group(1) if self.charsets is None else \
                        self.charsets + " " + m.group(1)
