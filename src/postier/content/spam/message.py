"""A message as SpamAssassin 4.0.1 sees it (Mail::SpamAssassin::Message, ::Node).

    msg = Message(raw_bytes)
    msg.get_header("Subject")                 # b"decoded value\\n" (last one) or None
    msg.get_headers("Received", raw=True)     # every one, unfolded
    msg.rendered_body()                       # the `body` rule text: list of bytes lines
    msg.decoded_body()                        # the `rawbody` rule text: list of bytes chunks
    msg.pristine                              # the `full` rule text

Parsing follows Message.pm line by line: an mbox "From " line is dropped;
CRLF line ends are detected from the first and last lines; header fields
are split on the first colon, at most three malformed header lines are
skipped before the body is assumed; long header keys/values are cut
(256/8192 bytes); runs of more than 20 blank lines are shortened; a
multipart body that does not start with a blank line or the boundary gets
one; MIME parts are found with SpamAssassin's boundary regexes (the CRLF
before a boundary belongs to the boundary, one level of reused boundary
strings is tolerated, at most 1000 parts), message/rfc822 and
message/global parts are parsed as nested messages (20 levels).  Part
bodies are decoded from base64 (MIME::Base64, or SpamAssassin's uudecode
fallback for broken input) and quoted-printable.

Text follows `normalize_charset 1` (the 4.0 default): every text part is
decoded from its declared charset (UTF-8 first, Windows-1252 for
ISO-8859-1, a Windows-1252 guess, then Windows-1252 as a last resort),
HTML is rendered by postier.content.spam.html, whitespace is collapsed
with Perl's rules, and the result is UTF-8 octets; header values are
RFC 2047-decoded into UTF-8 octets.  Perl's distinction between character
strings and byte strings is kept (see postier.content.spam.html), because
it decides whether a Latin-1 entity ends up as one byte or two.

Limits: body_part_scan_size (50000) and rawbody_part_scan_size (500000)
as in SpamAssassin 4.0.  Parameters read: none.

Speed (same results): the per-line loops (splitting lines, the header
block, header unfolding, blank-line squeezing, a MIME part's body lines up
to the next boundary, the whitespace collapsing and short-line cutting of
the rendered text, get_all_headers) and quoted-printable decoding are
postier._native.spammime, with the pure twin postier._pure.spammime
(`postier.native.load("spammime")`); Content-Type values are parsed once
(a bounded memo); find_parts answers are remembered per node (the tree
does not change once parsed); the visible/invisible HTML texts are joined
only when asked for.
"""

from __future__ import annotations

import base64
import binascii
import codecs

from postier.content.spam import bre as re
from postier.content.spam.html import HtmlRenderer, space_count
from postier.native import load

_mime = load("spammime")

MAX_BODY_LINE_LENGTH = 2048
MAX_HEADER_KEY_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
MAX_HEADER_LENGTH = 65536

# Perl's \s on character strings (Unicode White_Space) and on byte strings
UNI_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_US = "[" + re.escape(UNI_SPACE) + "]"
_AS = "[\t\n\x0b\x0c\r ]"
_SPACES_U = re.compile(_US + "+")

_HDR_NAME = re.compile(rb"^[\041-\071\073-\176]+[ \t]*:")
_HDR_NAME_NOWS = re.compile(rb"^[\041-\071\073-\176]+:")
_DISP_NAME = re.compile(r"""name=\s*"?([^";]+)"?""", re.I).search   # (_parse_normal)
_MBX_SEP = re.compile(rb"^([\s\d]\d-[a-zA-Z]{3}-\d{4}\s\d{2}:\d{2}:\d{2}.*),(\d+);([\da-f]{12})-(\w{8})\r?$")
_NO_MIME_DECODE = re.compile(r"^(?:Received|(?:Resent-)?(?:Message-ID|Date)|MIME-Version|References|"
                             r"In-Reply-To|List-.*)\Z", re.I | re.S)
_NO_DECODE_NAMES: dict[str, bool] = {}     # _NO_MIME_DECODE.match by header name
_ENC_WORD = rb"=\?[A-Za-z0-9*_-]+\?[bqBQ]\?[^?]*\?="
_ENC_WORD_GAP = re.compile(b"(" + _ENC_WORD + rb")\s+(?=" + _ENC_WORD + b")", re.S)
_ENC_SECTION = re.compile(rb"=\?([A-Za-z0-9*_-]+)\?([bqBQ])\?([^?]*)\?=|([^=]+|.)", re.S)


# ---------------------------------------------------------------- decoders

qp_decode = _mime.qp_decode         # Util::qp_decode


_B64_ALPHA = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64_ALPHA)}
_B64_VALUE[ord("=")] = 63          # tr{A-Za-z0-9+/=}{ -_} maps '=' like '/'


def base64_decode(s: bytes) -> bytes:
    """Util::base64_decode (without the length argument)."""
    s = s.translate(None, _B64_SPACE)                  # /\s+//g
    # /^[A-Za-z0-9+\/=]{2,}={0,2}$/ (the class holds "=" already)
    if len(s) % 4 == 0 and len(s) >= 2 and not s.translate(None, _B64_ALPHA_EQ):
        # s/(=+)(?!=*$)/"A" x length($1)/eg: every "=" before the final run
        # of them becomes "A" (a regex tried at each of the ~100 KB of an
        # attachment took milliseconds)
        body = s.rstrip(b"=")
        if b"=" in body:
            s = body.replace(b"=", b"A") + s[len(body):]
        try:
            return base64.b64decode(s)
        except (binascii.Error, ValueError):
            pass
    s = s.translate(None, _B64_JUNK)
    s = s.rstrip(b"=")                     # s/=+$// (no newline is left)
    if len(s) % 4 == 1:
        s = s[:-1]
    # Perl decodes 84-character chunks bit by bit, '=' counting as '/': for
    # whole 4-character groups that is base64 itself, and a last group of
    # 2 or 3 characters gives the bytes its bits fill
    s = s.translate(_B64_EQ_AS_SLASH)
    return base64.b64decode(s + b"=" * (-len(s) % 4))


_B64_JUNK = bytes(c for c in range(256) if c not in _B64_VALUE)
_B64_SPACE = b" \t\n\r\x0b\x0c"          # a bytes pattern's \s
_B64_ALPHA_EQ = _B64_ALPHA + b"="
_B64_EQ_AS_SLASH = bytes.maketrans(b"=", b"/")


# Perl Encode names that Python spells differently, or that Perl lacks
_ENC_ALIASES = {"x-mac-roman": "mac_roman", "macroman": "mac_roman", "x-sjis": "shift_jis",
                "hz-gb-2312": "gb2312", "tis-620": "cp874", "windows-874": "cp874",
                "unicode-1-1-utf-7": "utf_7", "big5": "big5", "gb2312": "gb2312",
                "gb2312_charset": "gb2312", "euc-cn": "gb2312", "x-euc-tw": None,
                "ks_c_5601-1987": "cp949", "ks_c_5601": None, "x-mac-cyrillic": "mac_cyrillic",
                "latin-2": "iso8859_2", "us": None, "iso-2022-jp-2": None, "csiso2022jp": None,
                "iso-8859-8-i": None, "x-user-defined": None, "unknown-8bit": None,
                "default": None, "gb18030": None, "utf8": "utf_8", "x-unknown": None}


def find_encoding(name: str) -> str | None:
    """A Python codec for a Perl Encode::find_encoding() name, or None."""
    n = name.strip().lower()
    if n in _ENC_ALIASES:
        return _ENC_ALIASES[n]
    if re.fullmatch(r"gb[ -]?18030(?:-20\d\d)?", n):
        return None
    try:
        info = codecs.lookup(n)
    except (LookupError, ValueError):
        return None
    if info.name in ("rot-13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "idna",
                     "punycode", "raw-unicode-escape", "unicode-escape", "mbcs"):
        return None
    return info.name


_CP1252_GUESS = frozenset(range(0x80)) | {0xa0, 0xa9, 0xad, 0x82, 0x84, 0x85, 0x99} | \
    frozenset(range(0x91, 0x98)) | frozenset(range(0xc0, 0xd7)) | frozenset(range(0xd8, 0xdf)) | \
    frozenset(range(0xe0, 0xf7)) | frozenset(range(0xf8, 0xff))
_CP1252_GUESS_BYTES = bytes(sorted(_CP1252_GUESS))
_FOLD_ONE = re.compile(rb"\n[ \t]")
_FOLD_RAW = re.compile(rb"\r?\n\s+")
_ASCII_DECLARED = re.compile(r"^(?:(?:US-)?ASCII|ANSI[_ ]?X3\.4-(?:1986|1968)|ISO646-US)\Z", re.I)
_EXT_ASCII = re.compile(r"^(?:ISO[ -]?8859(?:-\d{1,2})?|Windows-\d{4}|UTF-?8|(KOI8|EUC)-[A-Z]{1,2}|"
                        r"Big5|GBK|GB[ -]?18030(?:-20\d\d)?)\Z", re.I)


def _decode_strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        if codec.startswith("iso2022"):
            # Encode::JP::JIS7 stops at the first byte it cannot take and
            # returns what it decoded so far, without croaking
            return data[:e.start].decode(codec, "replace")
        return None
    except LookupError:
        return None


def normalize(data: bytes, charset: str, return_decoded: bool,
              insist: bool = False) -> tuple[bytes | str, bool]:
    """Node::_normalize: (result, is_characters).  The result is the
    original bytes, decoded characters (return_decoded) or UTF-8 octets."""
    high = not data.isascii()
    if not high and _ASCII_DECLARED.match(charset):
        return data, False
    if not high and _EXT_ASCII.match(charset):
        return data, False
    tried_utf8 = False
    rv: str | None = None
    if high and not insist:
        rv = _decode_strict(data, "utf_8")
        if rv is not None:
            return (rv, True) if return_decoded else (data, False)
        tried_utf8 = True
    if re.match(r"^(?:US-)?ASCII\Z", charset, re.I) and not insist:
        pass
    elif re.match(r"^UTF[ -]?16", charset, re.I):
        dec = _detect_utf16(data)
        if dec is not None:
            rv = _decode_strict(data, dec)
            if rv is not None:
                return (rv, True) if return_decoded else (data, False)
    else:
        if re.match(r"^(?:ISO-?8859-1|Windows-1252|CP1252)\Z", charset, re.I):
            codec: str | None = "cp1252"
        elif re.match(r"^UTF-?8\Z", charset, re.I):
            codec = "utf_8"
        else:
            codec = find_encoding(charset)
            if codec is None and re.match(r"^GB[ -]?18030(?:-20\d\d)?\Z", charset, re.I):
                codec = "gbk"
        if codec is None or (tried_utf8 and codec == "utf_8"):
            pass
        elif insist:
            rv = data.decode(codec, "replace")
        else:
            rv = _decode_strict(data, codec)
    if rv is None and not high:
        return data, False
    if rv is None and not data.translate(None, _CP1252_GUESS_BYTES):
        rv = data.decode("cp1252", "replace")
    if rv is None:
        rv = data.decode("cp1252", "replace")
    if return_decoded:
        return rv, True
    return rv.encode("utf-8", "surrogatepass"), False


def _detect_utf16(data: bytes) -> str | None:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf_16"
    le = be = 0
    sh_e = sh_o = sl_e = sl_o = 0
    for i in range(0, len(data), 2):
        a = data[i]
        b = data[i + 1] if i + 1 < len(data) else 0
        sh_e += a >> 4
        sl_e += a & 15
        sh_o += b >> 4
        sl_o += b & 15
        if a == 0x20 and b == 0:
            le += 1
        if a == 0 and b == 0x20:
            be += 1
        # the Perl code also compares "20 00" across the pair boundary
    if (sh_e + sl_e) > (sh_o + sl_o) * 4:
        le += 1
    if (sh_o + sl_o) * 4 > (sh_e + sl_e):
        be += 1
    if le > be:
        return "utf_16_le"
    if be > le:
        return "utf_16_be"
    return None


def _decode_encoded_word(cte: bytes, data: bytes) -> bytes:
    if cte.upper() == b"B":
        return base64_decode(data)
    return qp_decode(data.replace(b"_", b"=20"))


def decode_header(body: bytes, name: str) -> bytes:
    """Node::_decode_header: unfolded, RFC 2047-decoded, as UTF-8 octets."""
    if not body:
        return b""
    if b"\n" in body:          # (without one, the three are no-ops)
        body = _FOLD_ONE.sub(b"\n ", body).replace(b"\r\n", b"").replace(b"\n", b"")
    if not body.isascii():
        body = normalize(body, "UTF-8", False)[0]
    nodec = _NO_DECODE_NAMES.get(name)
    if nodec is None:
        nodec = bool(_NO_MIME_DECODE.match(name))
        if len(_NO_DECODE_NAMES) > 4096:
            _NO_DECODE_NAMES.clear()
        _NO_DECODE_NAMES[name] = nodec
    if nodec:
        return body
    if b"=?" not in body:
        return body
    body = _ENC_WORD_GAP.sub(rb"\1", body)
    sections: list[list] = []
    last = None
    for m in _ENC_SECTION.finditer(body):
        if m.group(1) is not None:
            enc = m.group(1).lower()
            s = _decode_encoded_word(m.group(2), m.group(3))
        else:
            enc = b""
            s = m.group(4)
        if enc == last and sections:
            sections[-1][0] += s
        else:
            sections.append([s, enc])
        last = enc
    out = []
    for s, enc in sections:
        enc = re.sub(rb"\*.*\Z", b"", enc, flags=re.S)
        if enc == b"":
            out.append(s)
        else:
            out.append(normalize(s, enc.decode("latin-1"), False, True)[0])
    return b"".join(out)


def parse_content_type(values: list[bytes]) -> tuple[str, str | None, str | None, str | None, bool]:
    """Util::parse_content_type(all Content-Type values): type, boundary,
    charset, name, missing (a function of the last value: remembered)."""
    last = values[-1] if values else b""
    got = _CT_MEMO.get(last)
    if got is None:
        got = _parse_content_type([last])
        if len(last) <= 256:                 # (bounded: at most ~2048 x 0.5 KB)
            if len(_CT_MEMO) >= 2048:
                _CT_MEMO.clear()
            _CT_MEMO[last] = got
    return got


_CT_MEMO: dict[bytes, tuple[str, str | None, str | None, str | None, bool]] = {}


def _parse_content_type(values: list[bytes]) -> tuple[str, str | None, str | None, str | None, bool]:
    missing = False
    if values and values[-1]:
        ct = values[-1].decode("latin-1")
    else:
        missing = True
        ct = "text/plain; charset=us-ascii"
    m = re.search(r"""\bboundary\s*=\s*("[^"]+|[^\s";]+(?=[\s;]|$))""", ct, re.I)
    boundary = m.group(1).replace('"', "") if m else None
    m = re.search(r"""\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)""", ct, re.I)
    charset = m.group(1) if m else None
    m = re.search(r"""\b(?:file)?name\s*=\s*["']?(.*?)["']?(?:;|$)""", ct, re.I)
    name = m.group(1) if m else None
    if not name and re.search(r"\b(?:file)?name\*0\s*=", ct, re.I):
        parts: dict[int, str] = {}
        for pm in re.finditer(r"""\b(?:file)?name\*(\d+)\s*=\s*["']?(.*?)["']?(?:;|$)""", ct, re.I):
            parts[int(pm.group(1))] = pm.group(2)
        name = "".join(parts[k] for k in sorted(parts))
    t = re.sub(r"^\s+", "", ct)
    t = re.sub(r";.*$", "", t, flags=re.S)
    t = re.sub(r"^([^/]+(?:/[^/\s]*)?).*$", r"\1", t, flags=re.S)
    t = t.lower()
    if not t:
        missing = True
    if not t or (re.match(r"^text\b", t) and not re.match(r"^text/(?:x-vcard|calendar|html)$", t)):
        t = "text/plain"
    t = re.sub(r"[\000-\040\177-\377\042\050\051\054\072-\077\100\133-\135]", "", t)
    return t, boundary, charset, name, missing


# ---------------------------------------------------------------- nodes

class Node:
    """A MIME part (Mail::SpamAssassin::Message::Node)."""

    def __init__(self, normalize_charset: bool = True):
        self.headers: dict[str, list[bytes]] = {}
        self.raw_headers: dict[str, list[bytes]] = {}
        self.header_order: list[bytes] = []
        self.normalize = normalize_charset
        self.type = ""
        self.charset: str | None = None
        self.name: str | None = None
        self.boundary: str | None = None
        self.body_parts: list[Node] | None = None
        self.raw: list[bytes] | None = None
        self._decoded: bytes | None = None
        self._rendered: tuple | None = None
        self.html_results: dict | None = None
        self.mbox_sep: bytes | None = None
        self._parts_cache: dict | None = None

    # -- headers
    def add_header(self, rawkey: bytes, raw_value: bytes) -> None:
        self._add_fields([(rawkey, raw_value)])

    def _add_fields(self, fields: list[tuple[bytes, bytes]]) -> None:
        """add_header of each (key, value) (the loop in spammime.add_fields)."""
        _mime.add_fields(fields, self.header_order, self.headers, self.raw_headers,
                         decode_header)

    def header(self, name: str) -> bytes:
        """Scalar-context header(): the last decoded value, or b""."""
        v = self.headers.get(name.lower())
        return v[-1] if v else b""

    def header_all(self, name: str) -> list[bytes]:
        return self.headers.get(name.lower(), [])

    def raw_header(self, name: str) -> list[bytes]:
        return self.raw_headers.get(name.lower().strip(), [])

    def get_headers(self, name: str, raw: bool = False) -> list[bytes]:
        """get_header() in list context: unfolded values ending in \\n (decoded
        ones) or raw values with folds turned into spaces."""
        if raw:
            return [_FOLD_RAW.sub(b" ", v) for v in self.raw_header(name)]
        return [v + b"\n" for v in self.header_all(name)]

    def get_header(self, name: str, raw: bool = False) -> bytes | None:
        """get_header() in scalar context: the last of get_headers (made alone)."""
        if raw:
            v = self.raw_header(name)
            return _FOLD_RAW.sub(b" ", v[-1]) if v else None
        v = self.headers.get(name.lower())
        return v[-1] + b"\n" if v else None

    def get_all_headers(self, raw: bool = False) -> list[bytes]:
        """Every header "Name: value\\n" in original order (unfolded)."""
        cache = self.__dict__.setdefault("_all_headers", {})
        key = (raw, len(self.header_order))
        got = cache.get(key)
        if got is None:
            got = cache[key] = self._get_all_headers(raw)
        return list(got)

    def _get_all_headers(self, raw: bool) -> list[bytes]:
        # the common case in one pass over the header order: the whole
        # header within MAX_HEADER_LENGTH (else _get_all_headers_slow, which
        # stops where SpamAssassin's loop stops)
        out = _mime.all_headers(self.header_order, self.raw_headers if raw else self.headers, raw)
        if out is None:
            return self._get_all_headers_slow(raw)
        return out

    def _get_all_headers_slow(self, raw: bool) -> list[bytes]:
        locations: dict[str, list[int]] = {}
        for i, k in enumerate(self.header_order):
            locations.setdefault(k.decode("latin-1").lower(), []).append(i)
        lines: list[bytes | None] = [None] * len(self.header_order)
        size = 0
        truncated = False
        for name in sorted(locations, key=lambda n: locations[n][0]):
            positions = list(locations[name])
            stop = False
            for contents in self.get_headers(name, raw):
                if not positions:
                    break
                pos = positions.pop(0)
                size += len(name) + len(contents) + 2
                if size > MAX_HEADER_LENGTH:
                    truncated = True
                    stop = True
                    break
                lines[pos] = self.header_order[pos] + b": " + contents
            if stop:
                break
        if truncated:
            self.truncated_header = True
        return [x for x in lines if x is not None]

    # -- tree
    def is_leaf(self) -> bool:
        return self.body_parts is None

    def find_parts(self, rx=None, only_leaves: bool = False, recursive: bool = True) -> list[Node]:
        """The parts (this one and those below it, depth first) whose type
        rx finds (remembered: the tree does not change once parsed; as
        (this one is first, the others), so that the cache holds no
        reference to its own node: a node with a cache is freed at once,
        not left to the cyclic GC)."""
        if self.body_parts is None:         # a leaf (most messages): itself or nothing
            return [self] if rx is None or rx.search(self.type) else []
        key = (rx, only_leaves, recursive)
        cache = self._parts_cache
        if cache is None:
            cache = self._parts_cache = {}
        got = cache.get(key)
        if got is None:
            found = self._find_parts(rx, only_leaves, recursive)
            if found and found[0] is self:
                got = cache[key] = (True, tuple(found[1:]))
            else:
                got = cache[key] = (False, tuple(found))
            return found
        if got[0]:
            return [self, *got[1]]
        return list(got[1])

    def _find_parts(self, rx, only_leaves: bool, recursive: bool) -> list[Node]:
        out = []
        search: list[Node] = [self]
        depth = None if recursive else 1
        while search:
            p = search.pop(0)
            leaf = p.is_leaf()
            if (rx is None or rx.search(p.type)) and (not only_leaves or leaf):
                out.append(p)
            if not leaf and (depth is None or depth > 0):
                if depth is not None:
                    depth -= 1
                search[0:0] = p.body_parts
        return out

    def effective_type(self) -> str:
        if self.name and _HTML_NAME.search(self.name):
            return "text/html"
        return self.type

    # -- content
    def decode(self) -> bytes | None:
        if self._decoded is None:
            if self.raw is None:
                return None
            raw = b"".join(self.raw)
            enc = self.header("content-transfer-encoding").decode("latin-1").lower()
            if enc == "quoted-printable":
                self._decoded = qp_decode(raw).replace(b"\r\n", b"\n")
            elif enc == "base64":
                d = base64_decode(raw)
                if _TEXT_OR_MESSAGE_SLASH(self.type):
                    d = d.replace(b"\r\n", b"\n")
                self._decoded = d
            else:
                self._decoded = raw
        return self._decoded

    def rendered(self) -> tuple[str | None, str | None, bool]:
        """(rendered type, text, is_characters); text None for non-text parts."""
        if self._rendered is not None:
            return self._rendered[:3]
        typ = self.effective_type()
        if typ not in ("text/plain", "text/html"):
            self._rendered = (None, None, False, None, None)
            return None, None, False
        text = self.decode() or b""
        text_len = len(text)
        charset = self.charset if self.charset is not None else "us-ascii"
        if text and typ == "text/html":
            if self.normalize:
                val, chars = normalize(text, charset, True)
            else:
                val, chars = text, False
                if re.match(r"^(?:US-ASCII|UTF-8)\Z", charset, re.I) and not text.isascii():
                    try:
                        val, chars = text.decode("utf-8"), True
                    except UnicodeDecodeError:
                        pass
            s = val if isinstance(val, str) else val.decode("latin-1")
            html = HtmlRenderer()
            html.render(s, chars)
            flag = html.text_flag
            rendered = html.rendered_text()
            self.html_results = r = html.results
            space = space_count(rendered, flag)     # _SPACES_U's characters when flagged
            r["html_length"] = len(rendered)
            r["non_space_len"] = len(rendered) - space
            if text_len:
                r["ratio"] = (text_len - len(rendered)) / text_len
            # the visible and invisible texts when asked for (visible_rendered)
            self._rendered = ("text/html", rendered, flag, html, None)
        else:
            if self.normalize:
                val, chars = normalize(text, charset, True)
            else:
                val, chars = text, False
            s = val if isinstance(val, str) else val.decode("latin-1")
            self._rendered = (typ, s, chars, s, "")
        return self._rendered[:3]

    def _html_split(self) -> tuple:
        """_rendered with an HTML part's visible and invisible texts filled in."""
        self.rendered()
        r = self._rendered
        if r[4] is None and r[3] is not None:
            html = r[3]
            r = self._rendered = (r[0], r[1], r[2], html.rendered_text(False), html.rendered_text(True))
        return r

    def visible_rendered(self) -> tuple[str | None, str | None, bool]:
        r = self._html_split()
        return r[0], r[3], r[2]

    def invisible_rendered(self) -> tuple[str | None, str | None, bool]:
        r = self._html_split()
        return r[0], r[4], r[2]


class Message(Node):
    """The whole message (Mail::SpamAssassin::Message)."""

    def __init__(self, data: bytes, normalize_charset: bool = True, subparse: int = 20,
                 body_part_scan_size: int = 50000, rawbody_part_scan_size: int = 500000,
                 _queue: list | None = None):
        super().__init__(normalize_charset)
        self.body_part_scan_size = body_part_scan_size
        self.rawbody_part_scan_size = rawbody_part_scan_size
        self.flags: set[str] = set()      # missing_head_body_separator, ...
        self.mime_boundary_state: dict[str, int] = {}
        self.metadata: dict = {}
        self._text_cache: dict = {}
        if type(data) is not bytes:
            data = bytes(data)          # (a bytearray or memoryview)
        lines = _split_lines(data)
        if not lines:
            lines = [b"\n"]
        if _FROM_SEP(lines[0]):
            self.mbox_sep = lines.pop(0)
        elif _MBX_SEP.match(lines[0]):
            self.mbox_sep = lines.pop(0)
        crlf = False
        if lines and (b"\r\n" in lines[0] or b"\r\n" in lines[-1]):
            crlf = True
        self.line_ending = b"\r\n" if crlf else b"\n"
        fields, pristine_headers, i, flags = _mime.parse_header_lines(lines, crlf)
        self._add_fields(fields)
        if flags:
            self.flags.update(flags)
        ph = self.pristine_headers = b"".join(pristine_headers)
        if crlf or not data:
            self.pristine_body = b"".join(lines[i:])
            self.pristine = ph + self.pristine_body
        else:
            # (without CRLF the header lines are lines[:i] unchanged, and
            # the lines tile data after the mbox line: slices of it instead
            # of joining every body line and concatenating the two)
            full = data if self.mbox_sep is None else data[len(self.mbox_sep):]
            self.pristine = full
            self.pristine_body = full[len(ph):]
        # CRLF -> LF, and cap runs of blank lines at 20
        body = _mime.body_lines(lines, i, crlf)
        self.type, boundary, _cs, _nm, _miss = parse_content_type(self.header_all("content-type"))
        if self.type.startswith("multipart/") and len(body) > 1 and _NON_SPACE(body[0]):
            if boundary is None or not body[0].startswith(b"--" + boundary.encode("latin-1")):
                body.insert(0, b"\n")
        queue = [(self, boundary, body, subparse)]
        if _queue is not None:
            _queue.extend(queue)
            return
        self._parse_body(queue)

    # -- MIME tree
    def _parse_body(self, queue: list) -> None:
        while queue:
            msg, boundary, body, subparse = queue.pop(0)
            if msg.type.startswith("multipart/") and boundary is not None and subparse > 0:
                self._parse_multipart(queue, msg, boundary, body, subparse)
            else:
                self._parse_normal(msg, boundary, body)
                if msg.type.startswith("message/") and msg.type != "message/partial" and subparse > 0:
                    dec = msg.decode()
                    if msg.type in ("message/rfc822", "message/global") and dec:
                        sub = Message(dec, self.normalize, subparse - 1,
                                      self.body_part_scan_size, self.rawbody_part_scan_size,
                                      _queue=queue)
                        msg.body_parts = (msg.body_parts or []) + [sub]
                        msg.raw = None
                        msg._decoded = None

    def _parse_multipart(self, queue, msg: Node, boundary: str, body: list[bytes], subparse: int) -> None:
        msg.body_parts = []
        subparse -= 1
        bnd = boundary.encode("latin-1")
        delim = b"--" + bnd        # a boundary line: /^--BND\s*$/, closing: /^--BND(--)?\s*$/
        dlen = len(delim)
        nested = False
        n = len(body)
        line = 0
        while line < n:
            if body[line].startswith(delim) and not body[line][dlen:].strip():
                self.mime_boundary_state[boundary] = 1
                if line + 1 < n and not _HDR_NAME_NOWS.match(body[line + 1]):
                    self.flags.add("missing_mime_headers")
                break
            line += 1
        if line < n:
            body = body[line + 1:]
        part = Node(self.normalize)
        in_body = False
        header: bytes | None = None
        part_array: list[bytes] | None = None
        line_count = len(body)
        partcnt = 0
        idx = 0
        last_line = len(body) - 1
        while idx < len(body):
            if in_body and idx < last_line:
                # the part's body lines up to the next one that may be a
                # boundary (and before the last line), as the loop takes them
                j, chunk = _mime.part_lines(body, idx, delim, last_line)
                if j > idx:
                    if part_array is None:
                        part_array = chunk
                    else:
                        part_array.extend(chunk)
                    line_count -= j - idx
                    idx = j
                    continue
            cur = body[idx]
            idx += 1
            found_end = found_last = False
            if cur.startswith(delim):
                rest = cur[dlen:]
                if rest[:2] == b"--" and not rest[2:].strip():
                    found_end = found_last = True
                elif not rest.strip():
                    found_end = True
            if found_end and nested:
                found_end = False
                if found_last:
                    nested = False
            line_count -= 1
            if line_count == 0 or found_end:
                if not found_end:
                    part_array = part_array if part_array is not None else []
                    while len(cur) > MAX_BODY_LINE_LENGTH:
                        part_array.append(cur[:MAX_BODY_LINE_LENGTH] + b"\n")
                        cur = cur[MAX_BODY_LINE_LENGTH:]
                    part_array.append(cur)
                elif part_array:
                    last = part_array[-1]
                    if last.endswith(b"\n"):
                        last = last[:-1]
                    part_array[-1] = last
                    if last == b"":
                        part_array.pop()
                else:
                    part_array = []
                ptype, p_bound, _c, _n, missing = parse_content_type(part.header_all("content-type"))
                part.type = ptype
                if missing and msg.type == "multipart/digest":
                    part.type = "message/rfc822"
                p_bound = p_bound or boundary
                queue.append((part, p_bound, part_array, subparse))
                msg.body_parts.append(part)
                if found_last:
                    self.mime_boundary_state[boundary] = self.mime_boundary_state.get(boundary, 0) - 1
                    break
                elif line_count and not _HDR_NAME_NOWS.match(body[-line_count]):
                    self.flags.add("missing_mime_headers")
                partcnt += 1
                if partcnt == 1000:
                    self.flags.add("mimepart_limit_exceeded")
                    return
                in_body = False
                part = Node(self.normalize)
                part_array = None
                header = None
                continue
            if not in_body:
                if _HDR_NAME.match(cur):
                    if header:
                        _add_part_header(part, header)
                    header = cur
                    continue
                if cur[:1] in (b" ", b"\t") and header:
                    header += cur
                    continue
                if header:
                    key = _add_part_header(part, header)
                    if key == "content-type":
                        _t, nb, _c, _n, _m = parse_content_type(part.header_all("content-type"))
                        if nb is not None and nb == boundary:
                            nested = True
                in_body = True
                if _BLANK.match(cur):
                    continue
                self.flags.add("missing_mime_head_body_separator")
            part_array = part_array if part_array is not None else []
            while len(cur) > MAX_BODY_LINE_LENGTH:
                part_array.append(cur[:MAX_BODY_LINE_LENGTH] + b"\n")
                cur = cur[MAX_BODY_LINE_LENGTH:]
            part_array.append(cur)
        if line_count:
            for k in range(line_count, 0, -1):
                if _EPILOGUE_TEXT(body[-k]):
                    self.flags.add("mime_epilogue_exists")
                    break

    def _parse_normal(self, msg: Node, boundary, body: list[bytes]) -> None:
        t, _b, charset, name, missing = parse_content_type(msg.header_all("content-type"))
        if not missing:
            msg.type = t if (not t.startswith("multipart/") or boundary is not None) else "text/plain"
        msg.charset = charset
        cd = msg.headers.get("content-disposition")
        disp = cd[-1] if cd else b""
        # (no "=" in the value: no name= match; most parts have no value)
        m = _DISP_NAME(disp.decode("latin-1")) if b"=" in disp else None
        if m:
            msg.name = m.group(1)
        elif name:
            msg.name = name
        msg.boundary = boundary
        msg.raw = body

    # -- text arrays
    def _text_array(self, method: str) -> list[bytes]:
        cached = self._text_cache.get(method)
        if cached is not None:
            return cached
        parts = self.find_parts(_ANY, True)
        if not parts:
            self._text_cache[method] = []
            return []
        needs_html = "html" not in self.metadata
        if method == "invisible":
            subject = b""
        else:
            subject = self.get_header("subject") or b"\n"
        pieces: list[str] = []
        flagged = False
        nonempty = False
        scansize = self.body_part_scan_size
        for p in parts:
            if nonempty:
                pieces.append("\n")
            if method == "rendered":
                typ, rnd, chars = p.rendered()
            elif method == "visible":
                typ, rnd, chars = p.visible_rendered()
            else:
                typ, rnd, chars = p.invisible_rendered()
            if rnd is not None:
                if scansize and len(rnd) > scansize:
                    rnd = _truncate(rnd, scansize, ("\n", " "))
                if rnd:
                    nonempty = True
                pieces.append(rnd)
                flagged = flagged or chars
                if needs_html and typ == "text/html":
                    self.metadata["html"] = p.html_results
                    self.metadata.setdefault("html_all", []).append(p.html_results)
        out = _mime.text_lines(subject, "".join(pieces), flagged)
        self._text_cache[method] = out
        if needs_html and "html" not in self.metadata:
            self.metadata["html"] = None
        return out

    def rendered_body(self) -> list[bytes]:
        """get_rendered_body_text_array: the text `body` rules see."""
        got = self._text_cache.get("rendered")
        return got if got is not None else self._text_array("rendered")

    def visible_rendered_body(self) -> list[bytes]:
        return self._text_array("visible")

    def invisible_rendered_body(self) -> list[bytes]:
        return self._text_array("invisible")

    def decoded_body(self) -> list[bytes]:
        """get_decoded_body_text_array: the text `rawbody` rules see."""
        cached = self._text_cache.get("decoded")
        if cached is not None:
            return cached
        out: list[bytes] = []
        scansize = self.rawbody_part_scan_size
        for p in self.find_parts(_ANY, True):
            if not _TEXT_OR_MESSAGE(p.effective_type()):
                continue
            if p.type == "text/calendar":
                continue
            raw = p.decode() or b""
            if scansize and len(raw) > scansize:
                raw = _truncate(raw, scansize, (b"\n", b">", b" "))
            out.extend(split_short_paragraphs(raw))
        self._text_cache["decoded"] = out
        return out

    def html_all(self) -> list[dict]:
        got = self._text_cache.get("html_all")
        if got is None:
            self.rendered_body()
            got = self._text_cache["html_all"] = [h if h is not None else {}
                                                  for h in self.metadata.get("html_all", [])]
        return got

    def html(self) -> dict:
        self.rendered_body()
        return self.metadata.get("html") or {}


_ANY = re.compile(".", re.S)
_HTML_NAME = re.compile(r"\.s?html?$", re.I)


_BLANK = re.compile(rb"\A\r?\n?\Z")
# (compiled here: bre.match(pattern, ...) looks its pattern up on each call)
_FROM_SEP = re.compile(rb"^From\s+(?!:)").match
_NON_SPACE = re.compile(rb"\S").search
_EPILOGUE_TEXT = re.compile(rb"[^\s.]").search
_TEXT_OR_MESSAGE = re.compile(r"^(?:text|message)\b").match
_TEXT_OR_MESSAGE_SLASH = re.compile(r"^(?:text|message)\b/", re.I).match


def _add_part_header(part: Node, header: bytes) -> str:
    # split(/:\s*/, $header, 2): the first colon and the (bytes) \s after it
    key, colon, value = header.partition(b":")
    if colon:
        part.add_header(key, value.lstrip(b" \t\n\r\x0b\x0c"))
    return key.decode("latin-1").lower()


_split_lines = _mime.split_lines        # Perl's split /^/m


def _truncate(text, size: int, seps):
    for sep in seps:
        idx = text.find(sep, size)
        if idx >= 0 and idx - size <= 1024:
            return text[:idx + 1]
    return text[:size]


split_short_lines = _mime.split_short_lines     # Message::split_into_array_of_short_lines


def split_short_paragraphs(text: bytes) -> list[bytes]:
    """Message::split_into_array_of_short_paragraphs."""
    n = len(text)
    if n <= MAX_BODY_LINE_LENGTH:
        return [text]
    out = []
    ofs = 0
    while n - ofs > 2 * MAX_BODY_LINE_LENGTH:
        j = -1
        for sep in (b"\n", b">", b" "):
            j = text.find(sep, ofs + MAX_BODY_LINE_LENGTH)
            if j >= 0 and j - ofs + 1 <= 2 * MAX_BODY_LINE_LENGTH:
                break
            j = -1
        if j < 0:
            j = ofs + MAX_BODY_LINE_LENGTH
        out.append(text[ofs:j + 1])
        ofs = j + 1
    if ofs < n:
        out.append(text[ofs:])
    return out
