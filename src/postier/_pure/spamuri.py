"""Pure-Python twin of postier._native.spamuri: the common shapes of
URI canonicalisation (postier.content.spam.uri) recognised cheaply.

    simple_http(uri)   # (proto, host, rest) of a plain http(s) URL, or None
    plain_canonical(uri, lits, memo, host_domain)   # its canonical forms, or None
    quick_canonical(uri, lits, memo, host_domain)   # the same and plain mailto: URIs', or None
    text_quick(groups)   # UriExtractor._text_uri's answer for a plain http(s) URL match, or None
    detail_entries(found, html_all, text_memo, text_uri, canon_memo, canonicalize, limits, quick)
    uri_bytes(udl)     # every cleaned URI of a detail list once, as bytes
    uri_host(uri)      # uri_to_domain's host part of a plain URI, or None
    match_start(s, pos, hit)   # where a linkified URI before hit can start
    uri_lines(lines)   # the lines (bytes) in which the URI prefilter may hit
    any_in(data, lits)   # whether data, ASCII-lowercased, holds one of lits
    UriPrefilter(tlds).search(line, pos)   # where the URI prefilter hits, or -1
    host_to_domain(host, tlds, two, three, is_ip, idn)   # (domain, host) or None

simple_http(uri) -> (proto, host, rest) | None: for a URI whose every
character is printable ASCII (0x21-0x7e), that starts with "http://" or
"https://" (lowercase), holds no "\\\\", "%" or "&#", and whose host (up
to the first "/", "?", "#" or ":") is non-empty, made of [A-Za-z0-9._-],
ends in [A-Za-z0-9] and is followed by "/" or the end, and, when it starts
with a digit, holds a "." and no label starting with "0":
the scheme with its "//", the host and the rest (uri == proto + host +
rest; an "@" can only be in the rest).  Util::uri_list_canonicalize
changes nothing in such a URI before its redirector and bare-name steps
(no white space, entities, escapes, user info, port, IDN, control
characters, nor a decimal, hex or octal host to rewrite: a dotted numeric
host whose labels start with 1-9 is rewritten into itself; an "@" after
the host is neither user info nor a mail address, as "http:" has its ":"
before it; the host is kept as it is written, its IDN form being its
lowercase), so the caller goes straight to those.  None for every other
URI (the general way).

plain_canonical(uri, lits, memo, host_domain) -> (cleaned, domains, hosts,
truncated) | None: UriExtractor._canonicalize's answer for a URI that
simple_http takes, at most MAX_URI_LENGTH (8192) characters long, with no
":" after its host (no embedded URL), holding none of lits (the redirector
patterns' literals, any_in; None: no answer) and without a bare-name form
(https, or a host holding a "." other than the one of a leading "www."):
([uri], {domain: 1}, {host: domain}, False) with (domain, host) its
lowercased host's memo[host], or host_domain(host) when memo lacks it
({} and {} for None).  None for every other URI (the general way).

quick_canonical(uri, lits, memo, host_domain) -> (cleaned, domains, hosts,
truncated) | None: plain_canonical's answer, and for a plain mailto: URI
(printable, without "?", "&", "<" or "%", at most MAX_URI_LENGTH long)
([uri], {domain: 1}, {host: domain}, False) with the domain of the host
after its only "@", lowercased (memo, else host_domain; {} and {} without
one, or with no or several "@"): UriExtractor._canonicalize's answers for
them.  None for every other URI (the general way).

detail_entries(found, html_all, text_memo, text_uri, canon_memo,
canonicalize, limits, quick=None) -> dict: UriExtractor.detail_list's URI detail list
(PerMsgStatus::get_uri_detail_list) from the text matches `found` (a list
of (groups, length), UriMatcher.matches's) and the HTML parts' results
html_all: the text URIs (text_uris: a match's (raw, (uri, types) or None)
from text_memo or text_uri(groups), remembered when the match is at most
limits[1] long, text_memo emptied at limits[0] entries; a raw URI once;
each URI with a copy of its types) then each HTML part's uri_detail, each
URI's canonical forms, domains and hosts (from canon_memo, else
quick_canonical(uri, *quick) when quick is given, else canonicalize(uri), remembered when the URI is at most limits[3] long,
canon_memo emptied at limits[2] entries; a longer one for the message) merged into its
entry (a URI without canonical forms, or a text URI without a domain, is left out;
a new entry holds the remembered lists and dicts themselves, a second one
merges into new ones: types and the domain and host dicts updated, the
cleaned forms appended where new, "truncated" kept), an HTML URI's anchor
texts appended once each; a URI without types gets {"parsed": 1}, and
one whose types hold "noclean" adds no cleaned forms.

uri_bytes(udl) -> list[bytes]: every cleaned form of the detail list udl
(its entries' "cleaned" lists, in order) once (get_uri_list), each encoded
in Latin-1, or in UTF-8 (surrogates passed) when it holds a character
above U+00FF: the subjects of uri rules (Run.uri_list).

uri_host(uri) -> str | None: for a URI whose every character is printable
ASCII and that does not start with javascript:, cid:, file: or mailto:
(any case), the host part RegistryBoundaries::uri_to_domain cuts out of it
before the domain lookup: lowercased, a leading /^[a-z]+:\\/{0,2}/ removed,
cut at the first "/", "?" or "#", everything up to the last "@" removed, a
trailing /:\\d*$/ removed.  None for every other URI (the general way).

match_start(s, pos, hit) -> int: one past the last character in
s[pos:hit] that no text URI (UriExtractor's pattern) can hold between its
start and the first place the URI prefilter hits in it -- white space
(" \\t\\n\\r\\f\\v"), one of ><"`}]{[|,('@, ESC, or 0x80-0xff -- or pos
when there is none.

uri_lines(lines) -> list[bytes]: the lines (bytes objects) that hold an
"@" or a ":", or a "." followed by an ASCII letter or a byte 0x80-0xff, or
a "." after one of wWpP0-9; the others, in their order, left out.  A
necessary condition of a hit of UriExtractor's prefilter (a scheme's ":",
mailto:, "@", www./www1./ftp. or a "." and a TLD, every TLD starting with a
letter), checked without a regex call per line.

UriPrefilter(tlds): tlds an iterable of ASCII TLDs.  .search(line, pos=0)
-> int: the start of the leftmost match at or after pos in line (bytes) of
(?i)(?:(?:https?|ftp)://|(?:www[0-9]{0,2}|ftp)\\.|mailto:|@|\\.(?:TLD)) with
TLD any of tlds, ASCII case aside (re2/re on bytes: no other case folding),
or -1: the search UriExtractor's bytes prefilter regex does, without it.

UriMatcher(tlds): tlds an iterable of TLDs, each [a-z][a-z0-9-]* in any
case (ValueError for another).  .matches(lines) -> list of (groups,
length): every match, line by line in order, of UriExtractor's linkified-URI
pattern (PerMsgStatus::_tbirdurire) with those TLDs as re.finditer finds
them in each line (bytes, read as latin-1): its four groups (str or None:
the scheme/www. form, the mail form, the bare host with its tail, that bare
host) and its length.  Lines holding no prefilter anchor (uri_lines) are
skipped.  The native one matches in C with the same answers
(tests/unit/content/test_spam_uri_matcher.py); this one runs the regex.

any_in(data, lits) -> bool: whether data (bytes) with its ASCII capitals
lowered holds one of lits (a tuple of bytes; an empty one is in anything).

host_to_domain(host, tlds, two, three, is_ip, idn) -> (domain, host) | None:
RegistryBoundaries::uri_to_domain once the host part is cut out of the URI
(Registry._host_to_domain): None when the host holds a printable %-escape;
the host through idn (Util::idn_to_ascii; a host of [A-Za-z0-9_.:[]-] alone
is only lowercased, without the call); an IP address (is_ip(host) not None,
asked only of hosts holding ":" or starting with a digit) is its own
domain; else the host must be a valid FQDN (Util::is_fqdn_valid) whose last
label is in tlds, and the domain is its registry domain (trim_domain with
the 2nd/3rd-level sets two and three).

The native module gives the same results for every input
(tests/unit/content/test_spam_uri_native.py).  Reads no main.cf parameters.
"""

from __future__ import annotations

import re

from postier.content.spam.uripattern import tlds_re, trie_re, uri_pattern

_PRINTABLE = re.compile(r"[!-~]*\Z").match
_SIMPLE = re.compile(r"(https?://)([A-Za-z0-9._-]*[A-Za-z0-9])((?:/[!-~]*)?)\Z").match
_NOT_SIMPLE = re.compile(r"[\\%]|&#").search
# a host starting with a digit that the general steps rewrite: no ".", or a
# label starting with "0" (decimal, hex and octal forms)
_NUMERIC_REWRITTEN = re.compile(r"[0-9][^.]*\Z|0|.*\.0").match
_NOT_WEB = ("javascript:", "cid:", "file:", "mailto:")
_SCHEME = re.compile(r"[a-z]+:/{0,2}").match
_PATH = re.compile(r"[/?#]").search
_PORT = re.compile(r":[0-9]*\Z").search


def simple_http(uri: str) -> tuple[str, str, str] | None:
    m = _SIMPLE(uri)
    if m is None or _NOT_SIMPLE(uri) is not None:
        return None
    if "0" <= uri[m.start(2)] <= "9" and _NUMERIC_REWRITTEN(m.group(2)) is not None:
        return None
    return m.groups()


_MISSING = object()


def plain_canonical(uri: str, lits: tuple[bytes, ...] | None, memo: dict,
                    host_domain) -> tuple[list, dict, dict, bool] | None:
    if lits is None:
        return None
    simple = simple_http(uri)
    if simple is None or len(uri) > 8192:           # uri.MAX_URI_LENGTH
        return None
    proto, host, rest = simple
    if ":" in rest or (lits and any_in(uri.encode("ascii"), lits)):
        return None
    nhost = host.lower()
    if proto == "http://" and ("." not in nhost or (nhost.startswith("www.") and "." not in nhost[4:])):
        return None
    d = memo.get(nhost, _MISSING)
    if d is _MISSING:
        d = host_domain(nhost)
    if d is None:
        return [uri], {}, {}, False
    return [uri], {d[0]: 1}, {d[1]: d[0]}, False


_PLAIN_MAILTO = re.compile(r"mailto:[!-$'-;=>@-~]*\Z").match


def quick_canonical(uri: str, lits: tuple[bytes, ...] | None, memo: dict,
                    host_domain) -> tuple[list, dict, dict, bool] | None:
    """(cleaned, domains, hosts, truncated) of the URI shapes whose only
    canonical form is the URI itself, else None (the general steps then):
    plain_canonical's, and a plain mailto: URI (printable, without "?", "&",
    "<" or "%", at most MAX_URI_LENGTH characters), whose domain is the one
    of the host after its only "@" (lowercased; memo, else host_domain)."""
    if uri[:7] == "mailto:":
        if len(uri) > 8192 or _PLAIN_MAILTO(uri) is None:     # uri.MAX_URI_LENGTH
            return None
        i = uri.find("@")
        if i < 0 or uri.find("@", i + 1) >= 0:
            return [uri], {}, {}, False
        host = uri[i + 1:].lower()
        d = memo.get(host, _MISSING)
        if d is _MISSING:
            d = host_domain(host)
        if d is None:
            return [uri], {}, {}, False
        return [uri], {d[0]: 1}, {d[1]: d[0]}, False
    return plain_canonical(uri, lits, memo, host_domain)


_PUNCT = "-~!@#^&*()_+=:;'?,."


def text_quick(groups: tuple) -> tuple[str, tuple[str, dict] | None] | None:
    """UriExtractor._text_uri(groups) for a match that is an http:// or
    https:// URL (lowercase scheme; group 1 only) without ")" or a line
    feed: (raw, (raw, {"parsed": 1})), raw the URL with its trailing
    punctuation cut, or (raw, None) when only the scheme is left; None
    for every other match (the general way).  The native detail_entries
    tries it before text_uri; this twin's calls text_uri (the same answers:
    tests/unit/content/test_spam_uri_quick.py)."""
    if len(groups) != 4 or groups[1] is not None or groups[2] is not None or groups[3] is not None:
        return None
    raw = groups[0]
    if type(raw) is not str:
        return None
    if not raw.startswith(("http://", "https://")) or ")" in raw or "\n" in raw:
        return None
    raw = raw.rstrip(_PUNCT)
    if raw in ("http://", "https://"):
        return raw, None
    return raw, (raw, {"parsed": 1})


def text_uri_list(found: list, text_memo: dict, text_uri, text_memo_max: int,
                  text_uri_max: int) -> list[tuple[str, dict]]:
    """The text URIs of the matches `found` (detail_entries' first step,
    and UriExtractor.text_uris): each match's (raw, (uri, types) or None)
    from text_memo or text_uri(groups) (remembered when the match is at
    most text_uri_max long; text_memo emptied at text_memo_max entries), a
    raw URI once, each URI with a copy of its types."""
    out = []
    seen: set = set()
    for key, length in found:
        got = text_memo.get(key)
        if got is None:
            got = text_uri(key)
            if length <= text_uri_max:
                if len(text_memo) >= text_memo_max:
                    text_memo.clear()
                text_memo[key] = got
        raw, res = got
        if raw in seen:
            continue
        seen.add(raw)
        if res is not None:
            out.append((res[0], dict(res[1])))
    return out


def detail_entries(found: list, html_all: list, text_memo: dict, text_uri, canon_memo: dict,
                   canonicalize, limits: tuple[int, int, int, int], quick: tuple | None = None) -> dict:
    text_memo_max, text_uri_max, canon_memo_max, canon_uri_max = limits
    udl: dict = {}
    memo: dict = {}

    def add(uri, types, valid_domain):
        if types is None:
            types = {"parsed": 1}
        got = canon_memo.get(uri)
        if got is None:
            long = len(uri) > canon_uri_max      # then remembered for this message
            if long:
                got = memo.get(uri)
            if got is None:
                if quick is not None:
                    got = quick_canonical(uri, *quick)
                if got is None:
                    got = canonicalize(uri)
                if not long:
                    if len(canon_memo) >= canon_memo_max:
                        canon_memo.clear()
                    canon_memo[uri] = got
                else:
                    memo[uri] = got
        cleaned, domains, hosts, truncated = got
        if not cleaned:
            return False
        if valid_domain and not domains:
            return False
        ent = udl.get(uri)
        if ent is None:
            ent = udl[uri] = {"truncated": True} if truncated else {}
            if not types.get("noclean"):
                ent["cleaned"] = cleaned
            ent["domains"] = domains
            ent["hosts"] = hosts
            ent["types"] = types
            return True
        if truncated:
            ent["truncated"] = True
        if not types.get("noclean"):
            old = ent.get("cleaned")
            if old:
                merged = dict.fromkeys(old)
                merged.update(dict.fromkeys(cleaned))
                ent["cleaned"] = list(merged)
            else:
                ent["cleaned"] = cleaned
        for key, new in (("domains", domains), ("hosts", hosts), ("types", types)):
            have = ent.get(key)
            ent[key] = {**have, **new} if have else new
        return True

    for uri, types in text_uri_list(found, text_memo, text_uri, text_memo_max, text_uri_max):
        add(uri, types, True)
    for html in html_all:
        for uri, info in (html.get("uri_detail") or {}).items():
            if add(uri, info.get("types"), False):
                if info.get("anchor_text"):
                    ent = udl[uri].setdefault("anchor_text", [])
                    aseen: set = set()
                    for a in info["anchor_text"]:
                        if a not in aseen:
                            aseen.add(a)
                            ent.append(a)
    return udl


def uri_bytes(udl: dict) -> list[bytes]:
    out: dict[str, None] = {}
    for info in udl.values():
        for c in info.get("cleaned") or ():
            out.setdefault(c, None)
    got = []
    for u in out:
        try:
            got.append(u.encode("latin-1"))
        except UnicodeEncodeError:
            got.append(u.encode("utf-8", "surrogatepass"))
    return got


def uri_host(uri: str) -> str | None:
    if _PRINTABLE(uri) is None:
        return None
    s = uri.lower()
    if s.startswith(_NOT_WEB):
        return None
    m = _SCHEME(s)                                # s/^[a-z]+:\/{0,2}//
    if m is not None:
        s = s[m.end():]
    m = _PATH(s)                                  # s/[\/?#].*//
    if m is not None:
        s = s[:m.start()]
    k = s.rfind("@")                              # s/^[^\/]*@//
    if k >= 0:
        s = s[k + 1:]
    m = _PORT(s)                                  # s/:\d*$//
    if m is not None:
        s = s[:m.start()]
    return s


_DELIMS = frozenset(" \t\n\r\f\v><\"`}]{[|\x1b,('@" + "".join(map(chr, range(0x80, 0x100))))


def match_start(s: str, pos: int, hit: int) -> int:
    i = min(hit, len(s)) - 1
    while i >= pos and i >= 0:
        if s[i] in _DELIMS:
            return i + 1
        i -= 1
    return pos


_MAY_URI = re.compile(rb"[@:]|\.[A-Za-z\x80-\xff]|[wWpP0-9]\.").search


def uri_lines(lines: list[bytes]) -> list[bytes]:
    may = _MAY_URI
    return [line for line in lines if type(line) is not bytes or may(line) is not None]


class UriPrefilter:
    def __init__(self, tlds) -> None:
        alts = b"|".join(re.escape(t.lower().encode("ascii"))
                         for t in sorted(tlds, key=len, reverse=True) if t)
        self._search = re.compile(rb"(?:(?:https?|ftp)://|(?:www[0-9]{0,2}|ftp)\.|mailto:|@|\.(?:"
                                  + (alts or b"(?!)") + rb"))", re.I).search

    def search(self, line: bytes, pos: int = 0) -> int:
        m = self._search(line, max(pos, 0))
        return -1 if m is None else m.start()


def any_in(data: bytes, lits: tuple[bytes, ...]) -> bool:
    low = data.lower()
    return any(lit in low for lit in lits)


_PCT_PRINTABLE = re.compile(r"%(?:2[1-9a-f]|[3-6][0-9a-f]|7[0-9a-e])", re.A).search
_IDN_FAST = re.compile(r"[a-zA-Z0-9_.:\[\]-]*\Z").match
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?", re.A).fullmatch
_SPACE = re.compile(r"\s", re.A).search
_DOTS = re.compile(r"\.+").sub
_US_STATES = frozenset(("ak al ar az ca co ct dc de fl ga gu hi ia id il in ks ky la ma md me mi mn "
                        "mo ms mt nc nd ne nh nj nm nv ny oh ok or pa pr ri sc sd tn tx ut va vi vt "
                        "wa wi wv wy").split())
_CI_CO = frozenset(("ci", "co", "ci\n", "co\n"))     # /^c[io]$/


def _fqdn_valid(host: str) -> bool:
    """Util::is_fqdn_valid of an ASCII-converted host."""
    host = host.lower().rstrip(".")
    if len(host) > 253:
        return False
    labels = host.split(".")
    cnt = len(labels)
    if cnt <= 1:
        return False
    for label in labels:
        if not 1 <= len(label) <= 63 or _LABEL(label) is None:
            return False
        if cnt <= 2 and "_" in label:
            return False
        cnt -= 1
    return True


def _registry_domain(domain: str, two, three) -> str:
    """RegistryBoundaries::trim_domain of an ASCII-converted name."""
    domain = domain.lower()
    if not domain:
        return domain
    if ".." in domain:
        domain = _DOTS(".", domain)
    domain = domain.strip(".")
    parts = domain.split(".")
    n = len(parts)
    if n <= 1:
        return domain
    k = 0
    while n - k > 1:
        left = n - k
        if left == 2:
            if parts[k] + "." + parts[k + 1] in two:
                break
        elif left == 3:
            if parts[k + 2] == "us":
                if parts[k + 1] in _US_STATES:
                    break
            elif ".".join(parts[k:]) in three:
                break
        elif left == 4:
            if parts[k + 3] == "us" and ((parts[k] == "pvt" and parts[k + 1] == "k12")
                                         or parts[k] in _CI_CO):
                if parts[k + 2] in _US_STATES:
                    break
        k += 1
    if k:
        k -= 1
    return ".".join(parts[k:])


def host_to_domain(host: str, tlds, two, three, is_ip, idn) -> tuple[str, str] | None:
    if "%" in host and _PCT_PRINTABLE(host) is not None:
        return None
    h = host.lower() if _IDN_FAST(host) is not None else idn(host)
    return _domain_of(h, tlds, two, three, is_ip)


def _domain_of(h: str, tlds, two, three, is_ip) -> tuple[str, str] | None:
    """host_to_domain after the IDN step (h: idn's answer)."""
    domain = h
    if not (":" in h or "0" <= h[:1] <= "9") or is_ip(h) is None:
        if not _fqdn_valid(h):
            return None
        dom = h.lower()                         # RegistryBoundaries::is_domain_valid
        if _SPACE(dom) is not None:
            return None
        i = dom.rfind(".")
        if not (i >= 0 and i < len(dom) - 1 and dom[i + 1:] in tlds):
            return None
        domain = _registry_domain(h, two, three)
    return domain, h


_TLD_OK = re.compile(r"[a-z][a-z0-9-]*\Z").match


class UriMatcher:
    def __init__(self, tlds) -> None:
        got = set()
        for t in tlds:
            t = t.lower()
            if _TLD_OK(t) is None:
                raise ValueError(f"TLD {t!r} is not [a-z][a-z0-9-]*")
            got.add(t)
        self._finditer = uri_pattern(tlds_re(trie_re(got) if got else "no_tlds_defined")).finditer

    def matches(self, lines: list) -> list:
        out = []
        finditer = self._finditer
        for line in uri_lines(lines):
            for m in finditer(line.decode("latin-1")):
                out.append((m.groups(), m.end() - m.start()))
        return out
