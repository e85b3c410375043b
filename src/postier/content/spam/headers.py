"""Header look-ups as SpamAssassin's rules see them (PerMsgStatus::get).

    hv = HeaderView(msg, relays)
    hv.get("From:addr")        # [b"user@example.com"]
    hv.get("Subject")          # [b"decoded subject\\n"]
    hv.get("ALL")              # every header line, decoded and unfolded
    hv.value("To")             # the joined value a `header` rule matches, or None
    hv.values(requests, names) # value() of each request; names: plain_name() of each

Requests: a header name (case-insensitive; decoded and unfolded values, one
per header, each ending in \\n) with modifiers `:raw` (undecoded, folds
kept), `:addr` / `:name` (addresses or display names, parsed with
SpamAssassin's internal address parser), `:first` / `:last`, `:host` /
`:domain` / `:ip` / `:revip`; and the pseudo-headers ALL, ALL-TRUSTED,
ALL-INTERNAL, ALL-UNTRUSTED, ALL-EXTERNAL, ToCc, MESSAGEID, EnvelopeFrom,
X-Spam-Relays-Trusted/-Untrusted/-Internal/-External.  A name the message
lacks falls back to the message metadata (the relay strings).  values()
joins the plain header names of a whole request list in one native call
(postier._native.spameng.header_values; pure twin postier._pure.spameng).
Shortcuts with the general code's answers: get() answers the relay
strings and a plain header name with only `:raw`, `:addr`, `:name`,
`:first`, `:last` without _get's dispatch (_fast_get); the address parser takes the
common shapes (bare, <addr>, "name" <addr>, name <addr>, comma lists of
them) in compiled code (_fast_addresses: postier._native.spamhdr.
fast_addresses, twin postier._pure.spamhdr); ALL:raw is the header
block itself when its lines tile it (spamhdr.all_raw); EnvelopeFrom's "a
NAME line after the first Received line" is spamhdr.line_after_received on
the ALL value (newlines found with memchr, ASCII case folded in place);
a plain ASCII display name (`:name`, no encoded word) skips decode_header
and its substitutions (the same bytes); the X-Spam-Relays-* strings are
built when first asked for (relay_str); MESSAGEID asks get_header only
for the fields the message has, EnvelopeFrom asks get() only for the
headers (X-Sender, X-Envelope-From, Envelope-Sender, Return-Path) it has.
values() answers the plain names with :raw/:addr/:name/:first/:last in
one compiled call (spamhdr.fast_values, which parses the common address
shapes itself); ALL, ALL-UNTRUSTED and ALL-EXTERNAL are one piece
(spamhdr.all_value: the joined lines and the Received lines' offsets, an
ALL-* tail a slice of it); a header line's addresses and names are
remembered across messages (_ADDR_OUT) and a line's parse is shared by
lines equal once stripped (ToCc:addr's decoded To line, To:addr's raw
one); get_str() and defined() answer a plain name from value()'s cache.
get() answers ToCc, ToCc:addr, EnvelopeFrom, EnvelopeFrom:addr, MESSAGEID
and the X-Spam-Relays-* names by direct routes (_DIRECT: _get's branch for
that request alone), values() a relay string without get(); lacks(request)
says, from the header names alone, that get() is [] (a header the message
lacks: EvalContext answers "", None or [] without asking get()).

Parameters read: none (envelope_sender_header comes from the rule set).
"""

from __future__ import annotations

from postier.content.spam import bre as re
from postier.content.spam.message import Message, decode_header
from postier.content.spam.received import IP, Relays
from postier.content.spam.uri import Registry, idn_to_ascii, is_fqdn_valid
from postier.native import load as _load_native

_eng = _load_native("spameng")
_hdr = _load_native("spamhdr")
_fast = _hdr.fast_addresses
_all_value = _hdr.all_value
_fast_values = _hdr.fast_values
_fast_answer = _hdr.fast_answer
_store_plain = _hdr.store_plain
# /^Received:.*?^NAME:/msi on a header block (name: lower-case ASCII)
_line_after_received = _hdr.line_after_received
_all_raw_value = _hdr.all_raw

_MAILRE = (r"""(?:"(?:|(?:[^"\\]++|\\.)*+)"|[^\@\s\<\>\(\)\[\]\,\:\;]+)"""
           r"""\@(?:[^\"\s\<\>\(\)\[\]\,\:\;]+|\[[\d:.]+\])""")
_ADDR_RE = re.compile(r"""^\s*(?:(?:((?:"(?:|(?:[^"\\]++|\\.)*+)"|[^",;<]++)+)\s*)?"""
                      r"""<\s*([^>\@]*\S+|\s*)\s*>"""
                      r"""(?:\s*<\s*(?:(?:"(?:|(?:[^"\\]++|\\.)*+)")?\S+|\s*)\s*>)*"""
                      r"""|(?:(""" + _MAILRE + r""")|((?:"(?:|(?:[^"\\]++|\\.)*+)"|[^",;<]++)+)))"""
                      r"""(?:\s*\(((?:|(?:[^()\\]++|\\.)*+))\))?\s*(?:[,;]|\Z)""", re.I | re.S)
_MAIL_FULL = re.compile(r"^" + _MAILRE + r"$", re.I)
_COMMENT = re.compile(r"\((?:|(?:[^()\\]++|\\.)*+)\)", re.S)
_PHRASE_PART = re.compile(r"""(?:"(|(?:[^"\\]++|\\.)*+)"|([^"]++))""", re.I | re.S)


def _valid_address(a: str | None) -> bool:
    return a is not None and not a.startswith('""@') and a.count('"') != 1


_FQDN_OK: dict[str, bool] = {}


def _host_invalid(host: str) -> bool:
    ok = _FQDN_OK.get(host)
    if ok is None:
        if len(_FQDN_OK) > 4096:
            _FQDN_OK.clear()
        ok = _FQDN_OK[host] = is_fqdn_valid(idn_to_ascii(host), True)
    return not ok


def _fast_addresses(s: str) -> list[dict] | None:
    """parse_header_addresses' answer for the common shapes (a bare
    address, <address>, "quoted name" <address>, plain name <address>,
    comma lists of them: postier._native.spamhdr.fast_addresses, twin
    postier._pure.spamhdr), or None for anything else."""
    return _fast(s, _host_invalid)


def parse_header_addresses(s: str) -> list[dict]:
    """Util::_parse_header_addresses (the internal parser; no Email::Address::XS).
    The common shapes take a shortcut (_fast_addresses) with the same answer."""
    fast = _fast(s, _host_invalid)
    if fast is not None:
        return fast
    return _parse_header_addresses(s)


def _parse_header_addresses(s: str) -> list[dict]:
    if not re.search(r"\S", s):
        return []
    s = re.sub(r"\s+\Z", "", s)
    s = s.replace("\\\\", "")
    s = re.sub(r"^[^\"()<>]+:\s*(.*?)\s*(?:;.*)?", r"\1", s, flags=re.S)
    if not re.search(r"\S", s):
        return []
    results = []
    while True:
        m = _ADDR_RE.match(s)
        if not m or (m.end() == 0 and not s):
            break
        s = s[m.end():]
        phrase = m.group(1) if m.group(1) is not None else m.group(4)
        address = m.group(2) if m.group(2) is not None else m.group(3)
        comment = m.group(5)
        if m.group(2) is not None:
            address = _COMMENT.sub("", address)
            if not _MAIL_FULL.match(address):
                address = None
        if not _valid_address(address):
            address = None
        if phrase is not None:
            newphrase = None
            for pm in _PHRASE_PART.finditer(phrase):
                qs, nqs = pm.group(1), pm.group(2)
                if qs is not None:
                    qs = re.sub(r"\\(?!\\)", "", qs)
                    qs = qs.replace("\\\\", "\\")
                    newphrase = (newphrase or "") + qs
                else:
                    newphrase = (newphrase or "") + _COMMENT.sub("", nqs)
            phrase = newphrase
            hm = re.match(r"^[^\@]*\@([^\@]*)", phrase) if phrase is not None else None
            if address is None and phrase is not None and _MAIL_FULL.match(phrase) and \
                    _valid_address(phrase) and hm and is_fqdn_valid(idn_to_ascii(hm.group(1)), True):
                address = phrase
                phrase = None
            else:
                if address is not None and phrase == address:
                    phrase = None
                elif phrase == "":
                    phrase = None
        if phrase is None and comment is not None:
            phrase = comment
        user = host = None
        if address is not None:
            am = re.match(r"^(([^\@]*)\@([^\@]*)).*", address, re.S)
            if am:
                address, user, host = am.group(1), am.group(2), am.group(3)
        results.append({"phrase": phrase, "user": user, "host": host, "address": address,
                        "comment": comment,
                        "invalid": host is None or not is_fqdn_valid(idn_to_ascii(host), True)})
        if not s:
            break
    if "@" in s:
        for mm in re.finditer(r"<(" + _MAILRE + r")>", s, re.I | re.S):
            address = mm.group(1)
            if not _valid_address(address):
                continue
            am = re.match(r"^(([^\@]*)\@([^\@]*)).*", address, re.S)
            address, user, host = am.group(1), am.group(2), am.group(3)
            results.append({"phrase": None, "user": user, "host": host, "address": address,
                            "comment": None, "invalid": not is_fqdn_valid(idn_to_ascii(host), True)})
    return results


def _reverse_ip(ip: str) -> str:
    if ":" in ip:
        import ipaddress
        try:
            return ".".join(reversed(ipaddress.ip_address(ip).exploded.replace(":", "")))
        except ValueError:
            return ""
    return ".".join(reversed(ip.split(".")))


# requests _get answers other than by header name (lower case; ALL-* and
# MESSAGEID are case-sensitive there, so the lower-case forms send a
# differently cased request to _get too, which then reads it as a name)
_SPECIAL = frozenset({"all", "all-trusted", "all-internal", "all-untrusted", "all-external",
                      "envelopefrom", "tocc", "messageid"})
_RECEIVED_LINE = re.compile(rb"^Received:", re.M | re.I)
# the request names _get compares case-sensitively
_NAMED_SPECIAL = frozenset({"ALL", "ALL-TRUSTED", "ALL-INTERNAL", "ALL-UNTRUSTED", "ALL-EXTERNAL",
                            "MESSAGEID"})
_FIRST_ONLY: dict[str, bool] = {}     # get_str: does the request answer its first value only?
# value() from HeaderView._all_value's one piece (the decoded header lines)
_ALL_TAILS = frozenset({"ALL", "ALL-UNTRUSTED", "ALL-EXTERNAL"})
_IP_RE = re.compile(r"(?<!\.)\b(" + IP + r")\b(?!\.)", re.A)
_HOST_RES: dict[int, tuple] = {}


def _host_res(rb: Registry) -> tuple:
    """(host regex, "...@host" regex) for a registry's TLDs, compiled once
    (building the pattern text per request hashed a TLD list of kilobytes)."""
    got = _HOST_RES.get(id(rb))
    if got is None or got[0] is not rb:
        hostre = re.compile(r"(?<![._-])(\S{1,251}\." + rb.tlds_re + r")(?![._-])", re.I | re.A)
        got = _HOST_RES[id(rb)] = (rb, hostre, re.compile(r".*@" + hostre.pattern, re.I | re.A))
    return got[1], got[2]


_METADATA = ("x-spam-relays-trusted", "x-spam-relays-untrusted", "x-spam-relays-internal",
             "x-spam-relays-external")
_METADATA_SET = frozenset(_METADATA)
_RELAY_ATTR = {"x-spam-relays-" + k: k + "_str" for k in ("trusted", "untrusted", "internal", "external")}


def plain_name(request: str) -> str | None:
    """The lower-cased header name of a request that is a plain header name
    (no modifier, no pseudo-header: HeaderView.get's common case), else None."""
    lc = request.lower()
    if ":" in request or lc in _SPECIAL or lc in _METADATA:
        return None
    return lc


_REQUESTS: dict[str, tuple] = {}


def _parse_request(request: str) -> tuple:
    """A request's name, lower-cased name, modifiers and the flags
    HeaderView._get tests (parsed once per request string)."""
    got = _REQUESTS.get(request)
    if got is None:
        name = request
        mods: frozenset[str] = frozenset()
        if ":" in request:
            parts = request.split(":")
            name = parts[0]
            mods = frozenset(parts[1:])
        getaddr = "addr" in mods
        getname = "name" in mods
        getdomain = "domain" in mods
        getrevip = "revip" in mods
        got = (name, name.lower(), mods, "raw" in mods, getaddr, getname, getaddr or getname,
               getdomain, "host" in mods or getdomain, getrevip, "ip" in mods or getrevip)
        if len(_REQUESTS) > 4096:
            _REQUESTS.clear()
        _REQUESTS[request] = got
    return got


_LACK_KEYS: dict[str, tuple[str, str] | None] = {}


def _lack_key(request: str) -> tuple[str, str] | None:
    """HeaderView.lacks' key of a request: (lower-cased name, stripped)
    for a header name with any modifiers, None for a pseudo-header (parsed
    once per request string)."""
    name = request.split(":", 1)[0]
    nl = name.lower()
    key = None if (name in _NAMED_SPECIAL or nl in _SPECIAL or nl in _METADATA_SET) \
        else (nl, nl.strip())
    if len(_LACK_KEYS) > 4096:
        _LACK_KEYS.clear()
    _LACK_KEYS[request] = key
    return key


_SPLITS: dict[int, tuple] = {}     # values(): names -> (names, other, plain, requests)
_FAST_MODS = frozenset({"raw", "addr", "name", "first", "last"})
_FAST_KINDS: dict[str, object] = {}


def _fast_kind(request: str):
    """How HeaderView._fast_get answers a request: True (a relay string),
    (name, lower-cased name, stripped, raw, addr, name, first, last) for a
    plain header name with modifiers of _FAST_MODS only, or None (parsed
    once per request string)."""
    got = _FAST_KINDS.get(request, _FAST_MODS)
    if got is _FAST_MODS:
        got = None
        if ":" not in request:
            if request.lower() in _METADATA:
                got = True
        else:
            name, lc, mods, getraw, getaddr, getname = _parse_request(request)[:6]
            if mods <= _FAST_MODS and name not in _NAMED_SPECIAL and lc not in _SPECIAL \
                    and lc not in _METADATA and lc:
                got = (name, lc, lc.strip(), getraw, getaddr, getname, "first" in mods,
                       "last" in mods)
        if len(_FAST_KINDS) > 4096:
            _FAST_KINDS.clear()
        _FAST_KINDS[request] = got
    return got


# _addr_out's answers by header line, across messages: [addr, name:raw,
# name] forms; lines up to _ADDR_OUT_LEN bytes, each dict cleared when full
_ADDR_OUT: tuple[dict[bytes, tuple[bytes, ...]], ...] = ({}, {}, {})
_ADDR_OUT_LEN = 256
_ADDR_OUT_SIZE = 1024


def _no_host_check(host: str) -> bool:
    """_fast's host check where the answer's "invalid" is not read."""
    return False


def _joined(arr: list[bytes] | None) -> bytes | None:
    """The string a header rule matches from get()'s lines: joined, with a
    newline between them unless they end in one; None when there are none."""
    return (b"" if arr[0].endswith(b"\n") else b"\n").join(arr) if arr else None


class HeaderView:
    """PerMsgStatus::get with its cache."""

    def __init__(self, msg: Message, relays: Relays, envelope_sender_header: str | None = None,
                 registry: Registry | None = None):
        self.msg = msg
        self.relays = relays
        self.esh = envelope_sender_header
        self.rb = registry
        # the answers made so far, by request: get()'s (made_lists) and
        # value()'s (made_values; None: the message lacks the header).
        # Callers may read them to reuse an answer without asking for it
        # (EvalContext reuses the header phase's); only HeaderView writes.
        self.made_lists: dict[str, list[bytes]] = {}
        self._addrs: dict[bytes, list[dict]] = {}      # _fast's parses by stripped header line
        self._slow: dict[bytes, list[dict]] = {}       # the general parser's, by header line
        self.made_values: dict[str, bytes | None] = {}
        self._envfrom: list[bytes] | None = None
        self._relay_strs: dict[str, bytes] = {}
        self._all: tuple[bytes, list[int]] | None | bool = False     # _all_value

    def relay_str(self, lc: str) -> bytes:
        """The relay string of a lower-cased X-Spam-Relays-* name (each
        built on first use: most messages ask for two of the four)."""
        v = self._relay_strs.get(lc)
        if v is None:
            relays = self.relays
            v = self._relay_strs[lc] = getattr(relays, _RELAY_ATTR[lc]).encode("latin-1", "replace")
        return v

    @property
    def metadata(self) -> dict[str, bytes]:
        """The relay strings by lower-cased X-Spam-Relays-* name."""
        return {lc: self.relay_str(lc) for lc in _METADATA}

    def get(self, request: str) -> list[bytes]:
        r = self.made_lists.get(request)
        if r is None:
            direct = _DIRECT.get(request)
            if direct is not None:
                # ToCc, EnvelopeFrom, MESSAGEID, ...: _get's answer without its dispatch
                r = self.made_lists[request] = direct(self)
                return r
            lc = request.lower()
            if ":" not in request and lc not in _SPECIAL and lc not in _METADATA_SET:
                # a plain header name (most requests): _get's last branch
                r = self.msg.get_headers(request)
                if not r:
                    m = self.msg.metadata.get("strings", {}).get(lc)
                    r = [m] if m is not None else []
            else:
                r = self._fast_get(request)
            if r is None:
                name = _parse_request(request)[0]
                nl = name.lower()
                msg = self.msg
                if name not in _NAMED_SPECIAL and nl not in _SPECIAL and nl not in _METADATA_SET \
                        and not msg.raw_headers.get(nl.strip()) and not msg.headers.get(nl) \
                        and msg.metadata.get("strings", {}).get(nl) is None:
                    r = []          # a header the message lacks, with modifiers: _get's []
                else:
                    r = [x for x in self._get(request) if x is not None]
            self.made_lists[request] = r
        return r

    def lacks(self, request: str) -> bool:
        """True when get(request) is [] because the message lacks the
        request's header (no field of that name, decoded or raw, and no
        metadata string of it): a header name with any modifiers, not a
        pseudo-header.  False means "ask get()"."""
        key = _LACK_KEYS.get(request, _LACK_KEYS)
        if key is _LACK_KEYS:
            key = _lack_key(request)
        if key is None:
            return False
        msg = self.msg
        if msg.headers.get(key[0]) or msg.raw_headers.get(key[1]):
            return False
        strings = msg.metadata.get("strings")
        return not strings or strings.get(key[0]) is None

    def defined(self, request: str) -> bool:
        """bool(get(request)); a plain header name whose value() is made
        answers from it (None exactly when get() has no lines) without
        building get()'s lines."""
        v = self.made_values.get(request, self)
        if v is not self and ":" not in request:
            lc = request.lower()
            if lc not in _SPECIAL and lc not in _METADATA_SET:
                return v is not None
        return bool(self.get(request))

    def get_str(self, request: str) -> bytes:
        """Scalar-context get(): first value for address-type queries, else all joined.
        A joined value value() already made is that string when get()'s
        first line ends in a newline or there is one line (_joined joins
        with b"" then); a plain header name's lines all end in one (or it
        is one metadata string), so its value() answers without get()."""
        first = _FIRST_ONLY.get(request)
        if first is None:
            first = _FIRST_ONLY[request] = bool(
                re.search(r":(?:addr|name|host|domain|ip|revip)\b", request) or request == "EnvelopeFrom")
        if not first:
            if request in _ALL_TAILS:
                # the decoded header lines all end in a newline
                return self.value(request) or b""
            j = self.made_values.get(request, self)
            if j is not self and ":" not in request:
                lc = request.lower()
                if lc not in _SPECIAL and lc not in _METADATA_SET:
                    return j or b""
        v = self.get(request)
        if not v:
            return b""
        if first:
            return v[0][:-1] if v[0].endswith(b"\n") else v[0]
        if len(v) == 1:
            return v[0]
        if v[0].endswith(b"\n"):
            return self.value(request)
        return b"".join(v)

    def value(self, request: str) -> bytes | None:
        """The string a header rule matches (None: undefined).  ALL, and
        ALL-UNTRUSTED / ALL-EXTERNAL (its tail from a Received line on),
        come from _all_value's one piece when it has one."""
        v = self.made_values.get(request, self)
        if v is self:
            if request in _ALL_TAILS:
                av = self._all_value()
                if av is not None:
                    joined, starts = av
                    if request == "ALL":
                        v = joined or None          # (no lines: _joined's None)
                    else:
                        relays = self.relays
                        start = (relays.last_trusted_index if request == "ALL-UNTRUSTED"
                                 else relays.last_internal_index) + 1
                        if start < 0:
                            v = self.made_values[request] = _joined(self.get(request))
                            return v
                        v = joined[starts[start]:] if start < len(starts) else None
                    self.made_values[request] = v
                    return v
            if request == "ALL:raw":
                # the header block without its ending empty line, when
                # _all_raw's lines tile it (spamhdr.all_raw)
                v = _all_raw_value(self.msg.pristine_headers)
                if v is not None:
                    self.made_values[request] = v
                    return v
            v = self.made_values[request] = _joined(self.get(request))
        return v

    def _all_value(self) -> tuple[bytes, list[int]] | None:
        """spamhdr.all_value of the message: b"".join(get("ALL")) (each
        decoded "Name: value\\n" line, as get_all_headers makes them) and
        its Received lines' offsets; None when get_all_headers takes its
        slow path (a header past MAX_HEADER_LENGTH)."""
        av = self._all
        if av is False:
            msg = self.msg
            av = self._all = _all_value(msg.header_order, msg.headers)
        return av

    def values(self, requests: tuple, names: tuple) -> list:
        """[value(r) for r in requests], names being [plain_name(r) for r in
        requests]: the plain header names are joined in one native call
        (spameng.header_values), the plain names with _fast_kind's
        modifiers in another (spamhdr.fast_values: _fast_answer's lines,
        value()'s and get()'s answers, cached as they cache them), the
        rest through value()."""
        msg = self.msg
        out = _eng.header_values(msg.headers, names)
        split = _SPLITS.get(id(names))
        if split is None or split[0] is not names or split[3] is not requests:
            kinds = [(i, requests[i], _fast_kind(requests[i]))
                     for i, n in enumerate(names) if n is None]
            split = _SPLITS[id(names)] = (
                names, tuple((i, r) for i, r, k in kinds if k.__class__ is not tuple),
                tuple(i for i, n in enumerate(names) if n is not None), requests,
                tuple(item for item in kinds if item[2].__class__ is tuple))
        strings = msg.metadata.get("strings")
        _fast_values(msg.raw_headers, msg.headers, strings, split[4], self.made_lists, self.made_values,
                     out, _ADDR_OUT, _ADDR_OUT_LEN, _ADDR_OUT_SIZE, self._addrs, _no_host_check,
                     self._line_addr_out)
        value = self.value
        values = self.made_values
        for i, request in split[1]:
            lc = _RELAY_VALUE.get(request)
            if lc is not None:
                # (a relay string: get()'s one line, value() itself)
                v = values.get(request, values)
                if v is values:
                    v = values[request] = self.relay_str(lc)
                out[i] = v
            else:
                out[i] = value(request)
        # (the others stored their values already; an absent plain header:
        # the metadata string of that name, if any)
        _store_plain(self.made_values, requests, names, out, split[2], strings)
        return out

    def _fast_get(self, request: str) -> list[bytes] | None:
        """get() of the common requests with modifiers, without _get's
        dispatch: a relay string (X-Spam-Relays-*) and a plain header name
        with `:raw`, `:addr`, `:name`, `:first`, `:last` only (the same
        answer as _get's last branch); None for any other request."""
        kind = _fast_kind(request)
        if kind is None:
            return None
        if kind is True:
            return [self.relay_str(request.lower())]
        return self._fast_answer(kind, request)

    def _fast_answer(self, kind: tuple, request: str) -> list[bytes]:
        """_fast_get's answer for a plain header name with modifiers
        (kind: _fast_kind's tuple of the request): spamhdr.fast_answer,
        the addresses and names as _addr_out gives them."""
        msg = self.msg
        return _fast_answer(msg.raw_headers, msg.headers, msg.metadata.get("strings"), kind,
                            _ADDR_OUT, _ADDR_OUT_LEN, _ADDR_OUT_SIZE, self._addrs, _no_host_check,
                            self._line_addr_out)

    def _addr_out(self, results: list[bytes], getaddr: bool, getraw: bool,
                  request: str) -> list[bytes]:
        """The addresses (getaddr) or display names of header lines, as
        _get answers `:addr` / `:name` (`:name:raw`: undecoded names).
        A line's answer depends on the line and the form only (decode_header's
        name, "PMS:get:" + request, never names a no-decode header), so a
        short line's answer is remembered across messages (_ADDR_OUT: To,
        Return-Path, Reply-To lines repeat)."""
        memo = _ADDR_OUT[0 if getaddr else (1 if getraw else 2)]
        out: list[bytes] = []
        for line in results:
            got = memo.get(line)
            if got is None:
                got = self._line_addr_out(line, getaddr, getraw)
                if len(line) <= _ADDR_OUT_LEN:
                    if len(memo) >= _ADDR_OUT_SIZE:
                        memo.clear()
                    memo[line] = got
            out += got
        return out

    def _line_addr_out(self, line: bytes, getaddr: bool, getraw: bool) -> tuple[bytes, ...]:
        """_addr_out's answer for one header line."""
        # From:addr, From:name and From:name:raw parse the same lines; a
        # common shape's parse (_fast) is a function of the line stripped of
        # ASCII white space (it strips both ends), so ToCc:addr's decoded To
        # line and To:addr's raw one, the same when the field is plain ASCII
        # and unfolded, share one parse (self._addrs by stripped line; the
        # general parser's answers by line, in self._slow)
        key = line.strip()
        addrs = self._addrs.get(key)
        if addrs is None:
            addrs = self._slow.get(line)
            if addrs is None:
                s = line.decode("latin-1")
                addrs = _fast(s, _no_host_check)
                if addrs is not None:
                    self._addrs[key] = addrs
                else:
                    addrs = self._slow[line] = _parse_header_addresses(s)
        out = []
        for a in addrs:
            if getaddr:
                if a["address"] is not None:
                    out.append(a["address"].encode("latin-1"))
            else:
                ph = a["phrase"]
                if ph is None:
                    continue
                if getraw:
                    out.append(ph.encode("latin-1"))
                elif ph.isascii() and "\n" not in ph and "=?" not in ph:
                    # decode_header leaves such a phrase as it is; the
                    # \s runs made one space and stripped (bytes.split:
                    # Perl's ASCII \s set), then ^'(.*?)'$ unquoted
                    dec = ph.encode("ascii")
                    words = dec.split()
                    if words:
                        dec = b" ".join(words)
                        if len(dec) > 1 and dec[0] == 39 and dec[-1] == 39:
                            dec = dec[1:-1]
                    out.append(dec)
                else:
                    dec = decode_header(ph.encode("latin-1"), "PMS:get:name")
                    if re.search(rb"\S", dec):
                        dec = re.sub(rb"\s+", b" ", dec)
                        dec = dec.strip(b" ")
                        dec = re.sub(rb"^'(.*?)'$", rb"\1", dec, flags=re.S)
                    out.append(dec)
        return tuple(out)

    def _all_raw(self) -> list[bytes]:
        return re.findall(rb"^([^ \t].*?\n)(?![ \t])", self.msg.pristine_headers, re.M | re.S)

    def _get(self, request: str) -> list[bytes]:
        msg = self.msg
        (request, lc, mods, getraw, getaddr, getname, needraw, getdomain, gethost, getrevip,
         getip) = _parse_request(request)
        results: list[bytes] = []
        if request == "ALL":
            return self._all_raw() if getraw else msg.get_all_headers(False)
        if request in ("ALL-TRUSTED", "ALL-INTERNAL", "ALL-UNTRUSTED", "ALL-EXTERNAL"):
            lt = self.relays.last_trusted_index + 1
            li = self.relays.last_internal_index + 1
            start, end = {"ALL-TRUSTED": (None, lt), "ALL-INTERNAL": (None, li),
                          "ALL-UNTRUSTED": (lt, None), "ALL-EXTERNAL": (li, None)}[request]
            return self._rcvd_range(start, end, getraw)
        if lc == "envelopefrom":
            results = self._envelope_from()
        elif lc in _METADATA_SET:
            results = [self.relay_str(lc)]
        elif lc == "tocc":
            results = self._header("To", getraw) + self._header("Cc", getraw)
        elif request == "MESSAGEID":
            present = msg.raw_headers if getraw else msg.headers
            for h in ("x-message-id", "resent-message-id", "x-original-message-id", "message-id"):
                if not present.get(h):
                    continue            # (get_header's None)
                v = msg.get_header(h, getraw)
                if v is not None and v != b"":
                    results.append(v)
        else:
            if getraw or needraw:
                res = list(msg.raw_header(request))
            else:
                res = msg.get_headers(request)
            if not res:
                m = msg.metadata.get("strings", {}).get(lc)
                if m is not None:
                    res = [m]
            results = res
        if not results:
            return []
        if "first" in mods:
            results = results[:1]
        elif "last" in mods:
            results = results[-1:]
        if getaddr or getname:
            results = self._addr_out(results, getaddr, getraw, request)
        if results and (gethost or getip):
            out = []
            if gethost and self.rb is not None:
                hostre, athostre = _host_res(self.rb)
                for line in results:
                    s = line.decode("latin-1")
                    host = None
                    if getaddr:
                        m = re.match(r".*@(\S+)", s, re.S)
                        if m:
                            host = m.group(1)
                    else:
                        m = athostre.search(s)
                        if m and is_fqdn_valid(idn_to_ascii(m.group(1)), True):
                            host = m.group(1)
                        if not host:
                            for m in hostre.finditer(s):
                                if is_fqdn_valid(idn_to_ascii(m.group(1)), True):
                                    host = m.group(1)
                                    break
                    if host:
                        if getdomain:
                            host = self.rb.trim_domain(host, True)
                        out.append(host.encode("latin-1"))
            elif getip:
                ipre = _IP_RE
                for line in results:
                    m = ipre.search(line.decode("latin-1"))
                    if m:
                        out.append((_reverse_ip(m.group(1)) if getrevip else m.group(1)).encode())
            results = out
        return results

    def _tocc(self) -> list[bytes]:
        """get("ToCc"): the decoded To and Cc lines."""
        hs = self.msg.headers
        to = hs.get("to")
        cc = hs.get("cc")
        if cc:
            return [v + b"\n" for v in (to + cc if to else cc)]
        return [v + b"\n" for v in to] if to else []

    def _tocc_addr(self) -> list[bytes]:
        """get("ToCc:addr"): the addresses of the decoded To and Cc lines."""
        lines = self._tocc()
        return self._addr_out(lines, True, False, "ToCc:addr") if lines else []

    def _envfrom_list(self) -> list[bytes]:
        """get("EnvelopeFrom")."""
        return list(self._envelope_from())

    def _envfrom_addr(self) -> list[bytes]:
        """get("EnvelopeFrom:addr")."""
        ef = self._envelope_from()
        return self._addr_out(ef, True, False, "EnvelopeFrom:addr") if ef else []

    def _messageid(self) -> list[bytes]:
        """get("MESSAGEID"): the values of the message-id fields the message has."""
        msg = self.msg
        hs = msg.headers
        results = []
        for h in ("x-message-id", "resent-message-id", "x-original-message-id", "message-id"):
            if hs.get(h):
                v = msg.get_header(h, False)
                if v is not None and v != b"":
                    results.append(v)
        return results

    def _header(self, name: str, raw: bool) -> list[bytes]:
        return self.msg.get_headers(name, raw)

    def _rcvd_range(self, start, end, raw: bool) -> list[bytes]:
        if end is not None and end < 0:
            return []
        hdrs = self._all_raw() if raw else self.msg.get_all_headers(False)
        cur = -1
        if end is None and start is not None and start >= 0:
            # ALL-UNTRUSTED / ALL-EXTERNAL: everything from the start-th Received line on
            for pos, h in enumerate(hdrs):
                if h[:9].lower() == b"received:":
                    cur += 1
                    if cur == start:
                        return hdrs[pos:]
            return []
        out = []
        for h in hdrs:
            if h[:9].lower() == b"received:":
                cur += 1
            if (start is None or start <= cur) and (end is None or cur < end):
                out.append(h)
            elif end is not None and cur == end:
                out.append(h)
                break
        return out

    def _envelope_from(self) -> list[bytes]:
        if self._envfrom is not None:
            return self._envfrom
        self._envfrom = []
        res = self._envelope_from_inner()
        if res is not None:
            self._envfrom = [res]
        return self._envfrom

    def _envelope_from_inner(self) -> bytes | None:
        if self.esh:
            v = self.get(self.esh + ":first:addr")
            if v and (v[0].find(b"@") > 0 or v[0] == b""):
                return v[0]
            return None
        relays = self.relays
        last = relays.untrusted[0] if relays.untrusted else (relays.trusted[-1] if relays.trusted else None)
        if last is not None and last.envfrom is not None:
            e = last.envfrom
            if e.find("@") > 0 or e == "":
                return e.encode("latin-1", "replace")
        # (a header the message lacks, without a metadata string of its
        # name, answers get()'s [] without asking get())
        raw = self.msg.raw_headers
        strings = self.msg.metadata.get("strings") or {}
        xs = (self.get("X-Sender:first:addr")
              if raw.get("x-sender") or strings.get("x-sender") is not None else None)
        if xs and b"@" in xs[0]:
            for r in self.get("Received"):
                if b"(fetchmail" in r:
                    return None
        block = None
        for lc, request, name, stop in _ENVFROM_HEADERS:
            if not raw.get(lc) and strings.get(lc) is None:
                continue
            v = self.get(request)
            if v:
                if block is None:
                    # (value(): the joined lines, remembered; None for none)
                    block = self.value("ALL") or b""
                if _line_after_received(block, name):
                    if stop:
                        return None
                    continue
                return v[0]
        return None


# get()'s direct routes: request -> the HeaderView method giving _get's answer
_DIRECT = {"ToCc": HeaderView._tocc, "ToCc:addr": HeaderView._tocc_addr,
           "EnvelopeFrom": HeaderView._envfrom_list, "EnvelopeFrom:addr": HeaderView._envfrom_addr,
           "MESSAGEID": HeaderView._messageid}
for _lc, _attr in _RELAY_ATTR.items():
    _DIRECT["X-Spam-Relays-" + _lc[14:].capitalize()] = (
        lambda hv, lc=_lc: [hv.relay_str(lc)])
del _lc, _attr

# values(): the relay-string requests (value() is the string itself) -> lower-cased name
_RELAY_VALUE = {r: r.lower() for r in _DIRECT if r.startswith("X-Spam-Relays-")}

# _envelope_from_inner's headers after X-Sender: (lower-cased name, request,
# the name as _line_after_received takes it, stop: a NAME line after the
# first Received line means no envelope sender at all)
_ENVFROM_HEADERS = tuple((n.lower(), n + ":first:addr", n.lower().encode(), stop)
                         for n, stop in (("X-Envelope-From", True), ("Envelope-Sender", False),
                                         ("Return-Path", False)))
