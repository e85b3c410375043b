"""URIs of a message as SpamAssassin finds them (the text `uri` rules see).

    reg = Registry(tlds, two_level, three_level)      # util_rb_tld/2tld/3tld
    ux = UriExtractor(reg, redirectors)                # redirector_pattern entries
    udl = ux.detail_list(body_lines, html_parts)       # get_uri_detail_list
    uris = ux.uri_bytes(udl)                           # get_uri_list, as uri rules see it

Sources (PerMsgStatus::get_uri_detail_list): URIs linkified the way
Thunderbird/Outlook would in the rendered body text (scheme URLs, www./ftp.
hosts, e-mail addresses, bare host names that end in a known TLD), and the
URIs HTML rendering collected from tags (a/area/link href, img/frame/iframe/
embed/script src, form action, background, meta refresh, base href), with
relative ones resolved.  Each is canonicalised by
Util::uri_list_canonicalize: whitespace and CRs dropped, `\\` turned into
`/`, %-escapes of printable characters decoded, a default scheme added,
`&#NN;` entities of printable characters decoded, user:password@ removed,
default ports dropped, dotted/hex/octal/decimal IP hosts normalised, one
level of redirector unwrapped (redirector_pattern, then any embedded
http(s) URL), `http://foo` also as `http://www.foo.com`.  The list holds
the raw and the canonical forms, de-duplicated.

Speed (same results): the text is searched only from near the places a URI
can be (UriExtractor._matches), one Hyperscan scan rules out the redirector
patterns that cannot match, the canonical forms of a URI and the domain of
a host are remembered (bounded memos: a function of the URI, as the
registry and redirectors are fixed), so is what a linkified match of the
text gives (a function of its groups), and the regexes are compiled once,
with cheap string tests in front of those that rarely apply.  The common
shapes are recognised in C (postier._native.spamuri, twin
postier._pure.spamuri): a plain http(s) URL goes straight to the redirector
and bare-name steps, uri_to_domain cuts the host of a plain URI out in one
pass, a new host's domain (FQDN check, TLD, registry boundary) is found in
one pass over its labels, a plain http(s) URL that no redirector can
match and that has no other canonical form is its own single form without
the general steps (UriExtractor._canonicalize), a URI holding none of the
literals the redirector patterns need (one per pattern, taken from its Hyperscan
expression: _redirector_literals) skips the redirector scan (spamuri.any_in),
the lines that cannot hold a prefilter hit are left out in one compiled
pass (spamuri.uri_lines), the prefilter itself is a compiled scan for its
"@", "." and ":" anchors (spamuri.UriPrefilter, the same hits as its regex),
the detail list's entries hold the remembered canonical lists and dicts
themselves (read only: a URI added twice gets merged copies), and the text
search starts after the last character no URI can hold before
its prefilter hit; on a long rest of line it tries only the start
positions near each hit (UriExtractor._window_match) instead of a search
that, finding nothing, would read the rest of the line from every position.
With ASCII TLDs ([a-z][a-z0-9-]*) that whole search runs in C
(spamuri.UriMatcher: the pattern's alternatives matched by hand at the same
start positions, the same groups as the regex's) and the regex is not run
(nor built: the regex and its RE2 prefilter are cached properties, built
only for the fallback).  The plain-URL shortcut is one compiled call
(spamuri.plain_canonical) and also takes dotted numeric hosts that no
step rewrites and an "@" after the host; a plain mailto: URI takes its
host's domain directly; and detail_list's loops (memo look-ups, entries,
merges, anchor texts) run in C (spamuri.detail_entries), calling back
only for what no memo holds yet.

Parameters read: none (the rule set supplies the TLD lists and redirector
patterns).
"""

from __future__ import annotations

from functools import cached_property

from postier import native
from postier._pure import spamuri as _pure_spamuri
from postier.content.spam import bre as re
from postier.content.spam.received import IP
from postier.content.spam.uripattern import START_CHARS, tlds_re, trie_re, uri_pattern

_su = native.load("spamuri")
_simple_http = _su.simple_http
_quick_canonical = _su.quick_canonical      # _canonicalize's plain-URL and plain-mailto: shortcut
_detail_entries = _su.detail_entries        # detail_list's loops, compiled
# text_uris alone (tests, inspection: not on the scan's path): the twin's
_text_uri_list = _pure_spamuri.text_uri_list
_uri_host = _su.uri_host
_match_start = _su.match_start
_any_in = _su.any_in                        # lowercase literals in a target
_uri_lines = _su.uri_lines                  # lines that can hold a prefilter hit
_host_to_domain = _su.host_to_domain        # Registry._host_to_domain's steps, compiled

MAX_URI_LENGTH = 8192

_US_STATES = frozenset(("ak al ar az ca co ct dc de fl ga gu hi ia id il in ks ky la ma md me mi mn "
                        "mo ms mt nc nd ne nh nj nm nv ny oh ok or pa pr ri sc sd tn tx ut va vi vt "
                        "wa wi wv wy").split())
_IS_IP = re.compile(r"^" + IP + r"$", re.A)


def idn_to_ascii(s: str) -> str:
    """Util::idn_to_ascii (IDNA through Python's codec, lowercased)."""
    if _IDN_OK_RE.match(s) is not None:
        return s.lower()
    try:
        b = s.encode("latin-1")
    except UnicodeEncodeError:
        b = s.encode("utf-8", "surrogatepass")
    try:
        u = b.decode("utf-8")
    except UnicodeDecodeError:
        if all(c in _LATIN_HOST for c in b):
            u = b.decode("latin-1")
        else:
            return s.lower()
    u = u.replace("\u3002", ".").replace("\uff0e", ".").replace("\uff61", ".")
    try:
        return u.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return s.lower()


_IDN_OK_RE = re.compile(r"[a-zA-Z0-9_.:\[\]-]*\Z")
_LATIN_HOST = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
                        + bytes(range(0xc0, 0xd7)) + bytes(range(0xd8, 0xdf))
                        + bytes(range(0xe0, 0xf7)) + bytes(range(0xf8, 0xff)))


def is_fqdn_valid(host: str | None, is_ascii: bool = True) -> bool:
    """Util::is_fqdn_valid."""
    if host is None:
        return False
    host = host.lower() if is_ascii else idn_to_ascii(host)
    host = host.rstrip(".")          # s/\.+\z//; then no empty trailing field
    if len(host) > 253:
        return False
    labels = host.split(".")
    cnt = len(labels)
    if cnt <= 1:
        return False
    label_ok = _LABEL_RE.fullmatch
    for label in labels:
        if not 1 <= len(label) <= 63 or label_ok(label) is None:
            return False
        if cnt <= 2 and "_" in label:
            return False
        cnt -= 1
    return True


_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


class Registry:
    """RegistryBoundaries: TLDs and registry-controlled 2nd/3rd levels."""

    def __init__(self, tlds: set[str], two: set[str], three: set[str]):
        self.tlds = tlds
        self.two = two
        self.three = three
        # host part -> uri_to_domain's answer (a function of the host and the
        # lists above, which do not change after construction)
        self._host_memo: dict[str, tuple[str, str] | None] = {}
        # a trie (uripattern.trie_re): as the look-ahead admits only a
        # whole name, at most one branch can succeed at a position
        alts = trie_re(tlds) if tlds else "no_tlds_defined"
        self.tlds_alts = alts
        self.tlds_re = tlds_re(alts)

    @classmethod
    def from_settings(cls, settings: dict[str, list[str]]) -> Registry:
        def words(key):
            out = set()
            for line in settings.get(key, []):
                for w in line.split():
                    out.add(idn_to_ascii(w.lower()))
            return out
        return cls(words("util_rb_tld"), words("util_rb_2tld"), words("util_rb_3tld"))

    def is_domain_valid(self, dom: str | None, is_ascii: bool = False) -> bool:
        if dom is None:
            return False
        dom = dom.lower() if is_ascii else idn_to_ascii(dom)
        if _HAS_SPACE(dom) is not None:
            return False
        # /\.([^.]+)$/: the last label (no newline can be left: no \s)
        i = dom.rfind(".")
        return i >= 0 and i < len(dom) - 1 and dom[i + 1:] in self.tlds

    def split_domain(self, domain: str, is_ascii: bool = False) -> tuple[str, str]:
        domain = domain.lower() if is_ascii else idn_to_ascii(domain)
        if not domain:
            return "", domain
        if ".." in domain:
            domain = _DOTS_SUB(".", domain)
        domain = domain.strip(".")
        parts = domain.split(".")
        n = len(parts)
        if n <= 1:
            return "", domain
        two, three = self.two, self.three
        k = 0                                # parts[:k] went to the host part
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
        return ".".join(parts[:k]), ".".join(parts[k:])

    def trim_domain(self, domain: str, is_ascii: bool = False) -> str:
        return self.split_domain(domain, is_ascii)[1]

    def uri_to_domain(self, uri: str) -> tuple[str, str] | None:
        host = _uri_host(uri)             # the common shapes, cut out in C
        if host is not None:
            return self._host_domain(host)
        uri = uri.lower()
        if uri[:1] in ("j", "c", "f") and _NOT_WEB(uri) is not None:
            return None
        if uri.startswith("mailto:"):
            uri = uri[7:]
            i = uri.find("?")
            if i >= 0:
                uri = uri[:i]
            i = uri.rfind("@")
            if i < 0 or uri.find("@") != i:       # no @, or /@.*?@/
                return None
            uri = uri[i + 1:]
        else:
            m = _SCHEME(uri)                      # s/^[a-z]+:\/{0,2}//
            if m:
                uri = uri[m.end():]
            m = _PATH(uri)                        # s/[\/?#].*//
            if m:
                uri = uri[:m.start()]
            i = uri.rfind("@")                    # s/^[^\/]*@// (no / is left)
            if i >= 0:
                uri = uri[i + 1:]
            if ":" in uri:
                uri = _PORT_SUB("", uri, 1)
        return self._host_domain(uri)

    def _host_domain(self, host: str) -> tuple[str, str] | None:
        """_host_to_domain(host), remembered (up to _HOST_MEMO_MAX hosts)."""
        memo = self._host_memo
        try:
            return memo[host]
        except KeyError:
            pass
        if len(memo) >= _HOST_MEMO_MAX:
            memo.clear()
        res = memo[host] = _host_to_domain(host, self.tlds, self.two, self.three, _IS_IP_MATCH,
                                           idn_to_ascii)
        return res

    def _host_to_domain(self, uri: str) -> tuple[str, str] | None:
        """The part of uri_to_domain after the host was cut out of the URI
        (spamuri.host_to_domain, which _host_domain calls, gives the same
        answers: tests/unit/content/test_spam_uri_native.py)."""
        if "%" in uri and _PCT_PRINTABLE(uri) is not None:
            return None
        host = idn_to_ascii(uri)
        domain = host
        if not (":" in host or "0" <= host[:1] <= "9") or _IS_IP_MATCH(host) is None:
            if not is_fqdn_valid(host, True):
                return None
            if not self.is_domain_valid(host, True):
                return None
            domain = self.trim_domain(host, True)
        return domain, host


_HOST_MEMO_MAX = 20000
_HAS_SPACE = re.compile(r"\s").search
_DOTS_SUB = re.compile(r"\.+").sub
_CI_CO = frozenset(("ci", "co", "ci\n", "co\n"))     # /^c[io]$/
_NOT_WEB = re.compile(r"(?:javascript|cid|file):").match
_SCHEME = re.compile(r"^[a-z]+:/{0,2}", re.S).match
_PATH = re.compile(r"[/?#]").search
_PORT_SUB = re.compile(r":\d*$", re.S).sub
_PCT_PRINTABLE = re.compile(r"%(?:2[1-9a-f]|[3-6][0-9a-f]|7[0-9a-e])").search
_IS_IP_MATCH = _IS_IP.match


def url_encode(url: str) -> str:
    """Util::url_encode (which, despite its name, decodes harmless %XX)."""
    parts = _PCT_SPLIT(url)
    out = []
    for p in parts:
        if _PCT_FULL(p) is not None:
            if _PCT_KEEP(p) is None:
                p = _PCT_DECODE(_chr16, p)
            out.append(p)
        else:
            out.append(_UNSAFE_SUB(_pct_hex, p))
    return "".join(out)


_PCT_SPLIT = re.compile(r"(%[0-9a-fA-F]{2})").split
_PCT_FULL = re.compile(r"%[0-9a-fA-F]{2}").fullmatch
_PCT_KEEP = re.compile(r"(20|7f|[0189a-fA-F][0-9a-fA-F])", re.I).search
_PCT_DECODE = re.compile(r"%([2-7][0-9a-fA-F])").sub
_UNSAFE_SUB = re.compile(r"[\000-\040\177-\377\042\045\074\076]").sub


def _chr16(m: re.Match) -> str:
    return chr(int(m.group(1), 16))


def _chr10(m: re.Match) -> str:
    return chr(int(m.group(1)))


def _pct_hex(m: re.Match) -> str:
    return f"%{ord(m.group(0)):02x}"


def _decode_ulong_to_ip(n: int) -> str:
    h = f"{n:08x}"
    b = bytes.fromhex(h[-8:] if len(h) > 8 else h)
    return ".".join(str(x) for x in b[:4])


_WS = " \t\n\r\f\v"                     # Perl's (and re.A's) \s
_SKIP_RE = re.compile(r"[#?&]|/(?!/)").match
_MAILTO_RE = re.compile(r"mailto:", re.I).match
_M_Q = re.compile(r"^([^@]+@[^?]+)\?", re.S).match
_M_AMP = re.compile(r"^([^@]+@[^?&]+)&", re.S).match
_M_20 = re.compile(r"^(?:mailto:)?(?:%20)*([^@]+@[^?&%]+)", re.S).match
_M_ANGLE = re.compile(r"^[^?&]*<([^@>]+@[^>]+)>", re.S).match
_HTTP_SLASHES = re.compile(r"^(https?:)/{0,2}", re.I).match
_PCT_ANY = re.compile(r"%[0-9a-fA-F]{2}").search
_HAS_SCHEME = re.compile(r"[-_a-z0-9]+:", re.I).match
_HOST_QUERY = re.compile(r"^(https?://[^/?#]+)([?#])", re.I).match
_ENT_DEC = re.compile(r"&#0*(3[3-9]|[4-9]\d|1[01]\d|12[0-6]);").sub
_ENT_HEX = re.compile(r"&#x0*(2[1-9]|[3-6][a-fA-F0-9]|7[0-9a-eA-E]);").sub
_ENT_DOT = re.compile(r"&#(?:x2e|12290|x3002|65294|xff0e|65377|xff61);", re.I).sub
_HTTP_URL = re.compile(r"^(https?://)([^@/?#]*@)?([^/?#:]+)((?::(\d*))?.*)$", re.I | re.S).match
_PORT80 = re.compile(r"^:80\b").subn
_PORT443 = re.compile(r"^:443\b").subn
_CTL_SUB = re.compile(r"[\x00-\x20]").sub
_PLAIN = re.compile(r"[\x21-\x7e]*\Z").match
_EMBEDDED = re.compile(r"(https?:/{0,2}[^&#]+)", re.I | re.S).search
_HOST_USER = re.compile(r"^[^@]+@", re.S).sub
_HOST_TAIL = re.compile(r"[^0-9A-Za-z]+$").sub
_DOTTED_NUM = re.compile(r"^((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)"
                         r"(0x[0-9a-f]+|\d+)$", re.I).match
_OCT_HEX = re.compile(r"^0x([0-9a-f]+)", re.I).sub
_OCT_OCT = re.compile(r"^0+([1-3][0-7]{0,2}|[4-7][0-7]?)\b").sub
_OCT_ZEROS = re.compile(r"^0+").sub
_HEX_HOST = re.compile(r"^0x[0-9a-f]+$", re.I).match
_HEX_TAIL = re.compile(r"^0x[0-9a-f]*?([0-9a-f]{1,8})$", re.I).match
_DEC_HOST = re.compile(r"^[0-9]+$").match
_BARE_NAME = re.compile(r"^(?:www\.)?([^.]+)$", re.S).match


def _int8(m: re.Match) -> str:
    return str(int(m.group(1), 8))


def uri_list_canonicalize(redirectors: list, uris: list[str], rb: Registry | None,
                          redirector_set=None) -> list[str]:
    """Util::uri_list_canonicalize.  redirector_set: a PatternSet of the
    redirectors (only a shortcut: the ones it rules out cannot match)."""
    uris = list(uris)
    nuris: list[str] = []
    i = 0
    while i < len(uris):
        uri = uris[i]
        simple = _simple_http(uri)
        if simple is not None:
            # nothing before the redirector step changes such a URI (see
            # postier._pure.spamuri): the same steps as below, on it as it is
            i += 1
            proto, host, rest = simple
            if not (redirectors and _redirect(redirectors, redirector_set, uri, uris)) \
                    and ":" in rest:
                _embedded(rest, uris)
            nhost = host.lower()              # idn_to_ascii(host)
            if proto == "http://" and nhost != "localhost" and \
                    ("." not in nhost or nhost.startswith("www.")):
                mm = _BARE_NAME(nhost)
                if mm and not (rb is not None and rb.is_domain_valid(nhost)):
                    nuris.append(proto + "www." + mm.group(1) + ".com" + rest)
            continue
        if "\n" in uri:
            uri = uri.replace("\n", "")
        uri = uri.strip(_WS)
        if "\r" in uri:
            uri = uri.replace("\r", "")
        uris[i] = uri
        i += 1
        if len(uri) <= 1 or uri[0] in "#?&" or (uri[0] == "/" and uri[1] != "/"):
            continue
        nuri = uri
        # /^[^:]*@/: an "@" before the first ":" (the first "@" is the one)
        if "@" in nuri and (_MAILTO_RE(nuri) is not None or nuri.find(":", 0, nuri.find("@")) < 0):
            m = _M_Q(nuri)
            if m:
                nuris.append(m.group(1))
            m = _M_AMP(nuri)
            if m:
                nuris.append(m.group(1))
            if "%20" in nuri:
                m = _M_20(nuri)
                if m:
                    nuris.append("mailto:" + m.group(1))
            m = _M_ANGLE(nuri)
            if m:
                nuris.append("mailto:" + m.group(1))
            continue
        elif nuri[0] in "mM" and _MAILTO_RE(nuri) is not None:
            continue
        if "\\" in nuri:
            nuri = nuri.replace("\\", "/")
        web = nuri.startswith(("http://", "https://"))    # s/^(https?:)\/{0,2}/$1\/\// is a no-op
        if not web and nuri[0] in "hH":
            m = _HTTP_SLASHES(nuri)
            if m:
                nuri = m.group(1) + "//" + nuri[m.end():]
        if "%" in nuri and _PCT_ANY(nuri) is not None:
            nuri = url_encode(nuri)
        if not (web or _HAS_SCHEME(nuri) is not None):
            nuri = ("ftp://" if nuri.startswith("ftp.") else "http://") + nuri
        if "?" in nuri or "#" in nuri:
            m = _HOST_QUERY(nuri)
            if m:
                nuri = m.group(1) + "/" + m.group(2) + nuri[m.end():]
        if "&#" in nuri:
            nuri = _ENT_DEC(_chr10, nuri)
            nuri = _ENT_HEX(_chr16, nuri)
            nuri = _ENT_DOT(".", nuri)
        if nuri != uri:
            nuris.append(nuri)
        m = _HTTP_URL(nuri)
        if not m:
            continue
        proto, auth, host, rest, port = m.groups()
        if auth is None:
            auth = ""
        if port is None:
            port = ""
        rest_noport = None
        if port == "":
            port = "80" if proto == "http://" else "443"
        else:
            rest_noport = rest
            rn, k = (_PORT80 if proto == "http://" else _PORT443)("", rest_noport, 1)
            if k:
                rest_noport = rn
                nuris.append(proto + host + rest_noport)
        nhost = idn_to_ascii(host)
        if nhost != host.lower():
            nuris.append(proto + nhost + rest)
            if rest_noport:
                nuris.append(proto + nhost + rest_noport)
            host = nhost
        stripped = host if _PLAIN(host) is not None else _CTL_SUB("", host)
        if stripped != host:
            host = stripped
            nuris.append(proto + host + rest)
        found = bool(redirectors) and _redirect(redirectors, redirector_set,
                                                proto + host + rest, uris)
        if not found and ":" in rest:
            _embedded(rest, uris)
        if "@" in host:
            h2 = _HOST_USER("", host, 1)
            if h2 != host:
                host = h2
                nuris.append(proto + host + rest)
        last = host[-1:]
        if not ("0" <= last <= "9" or "a" <= last <= "z" or "A" <= last <= "Z"):
            h2 = _HOST_TAIL("", host, 1)
            if h2 != host:
                host = h2
                nuris.append(proto + host + rest)
        numeric = "0" <= host[:1] <= "9"      # all three numeric forms start with a digit
        m3 = _DOTTED_NUM(host) if numeric else None
        if m3:
            chunks = []
            for octet in m3.groups():
                octet = _OCT_HEX(_int16, octet, 1)
                octet = _OCT_OCT(_int8, octet, 1)
                octet = _OCT_ZEROS("", octet, 1)
                chunks.append(octet)
            nuris.append(proto + "".join(chunks) + rest)
        elif numeric and _HEX_HOST(host):
            mm = _HEX_TAIL(host)
            n = int(mm.group(1), 16)
            nuris.append(proto + _decode_ulong_to_ip(n) + rest)
        elif numeric and _DEC_HOST(host):
            nuris.append(proto + _decode_ulong_to_ip(int(host)) + rest)
        elif proto == "http://" and auth == "" and nhost != "localhost" and port == "80":
            mm = _BARE_NAME(nhost) if ("." not in nhost or nhost.startswith("www.")) else None
            if mm and not (rb is not None and rb.is_domain_valid(nhost)):
                nuris.append(proto + "www." + mm.group(1) + ".com" + rest)
    seen: dict[str, None] = dict.fromkeys(uris)
    seen.update(dict.fromkeys(nuris))
    return list(seen)


def _redirect(redirectors: list, redirector_set, target: str, uris: list[str]) -> bool:
    """The first redirector's capture (holding a dot) in target appended to
    uris: whether there was one."""
    tb = target.encode("latin-1", "replace")
    if redirector_set is None:
        cands = redirectors
    else:
        lits = getattr(redirector_set, "postier_literals", None)
        if lits is not None and not _any_in(tb, lits):
            return False
        cands = _candidates(redirector_set, tb)
    for rx in cands:
        sp = rx.spans(tb, 2)
        if sp is not None:
            s, e = sp[1]
            if s < 0:
                continue
            cap = target[s:e]
            if "." not in cap:
                continue
            uris.append(cap)
            return True
    return False


def _embedded(rest: str, uris: list[str]) -> bool:
    """An http(s) URL embedded in rest (holding a dot) appended to uris."""
    m2 = _EMBEDDED(rest)
    if m2 and "." in m2.group(1):
        uris.append(m2.group(1))
        return True
    return False


def _int16(m: re.Match) -> str:
    return str(int(m.group(1), 16))


def _required_literal(expr: bytes) -> bytes | None:
    """A lowercase byte string (3 bytes or more) that every match of the
    Hyperscan expression expr holds, ASCII case aside, or None: the longest
    run of single-byte items (a byte, or a letter in either case) in the
    items of its top-level sequence, of groups in it and of repeats of them
    taken at least once.  Parsed caselessly, so it holds for expr compiled
    with or without HS_FLAG_CASELESS."""
    from postier.maps import resyntax
    try:
        tree, _ = resyntax.parse_pcre(expr, caseless=True, multiline=False, dotall=False,
                                      extended=False)
    except Exception:  # noqa: BLE001 - any parse problem: no literal, no shortcut
        return None
    runs: list[bytes] = []

    def walk(node) -> None:
        kind = node[0]
        if kind == "group":
            walk(node[1])
        elif kind == "rep":
            if node[2] >= 1:
                walk(node[1])
        elif kind == "seq":
            run = bytearray()
            for it in node[1]:
                c = _one_byte(it)
                if c is not None:
                    run.append(c)
                    continue
                runs.append(bytes(run))
                run = bytearray()
                walk(it)
            runs.append(bytes(run))
        else:
            c = _one_byte(node)
            if c is not None:
                runs.append(bytes((c,)))

    try:
        walk(tree)
    except (IndexError, TypeError):
        return None
    best = max(runs, key=len, default=b"")
    return best if len(best) >= 3 else None


def _one_byte(node) -> int | None:
    """The lowercase byte a ("set", bytes) node stands for when it is one byte
    or one ASCII letter in both cases, else None."""
    if node[0] != "set":
        return None
    bs = node[1]
    if len(bs) == 1:
        (c,) = bs
        return c + 32 if 0x41 <= c <= 0x5a else c
    if len(bs) == 2:
        a, b = sorted(bs)
        if 0x41 <= a <= 0x5a and b == a + 32:
            return b
    return None


def _redirector_literals(pset) -> tuple[bytes, ...] | None:
    """For each redirector of pset, a lowercase string every match of its
    Hyperscan expression holds (_required_literal): a target whose lowercase
    form holds none of them is matched by no redirector (each pattern's
    matches are among its expression's, which Hyperscan may only widen).
    None when a pattern has none, is not in pset's database (always) or is
    compiled for UTF-8 (where a caseless k or s may match a multibyte
    character)."""
    if pset.always:
        return None
    lits = []
    for p in pset.patterns:
        expr = p.hs_expr
        if p.hs_flags > 0 and p.hs_flags & (_HS_FLAG_UTF8 | _HS_FLAG_UCP):
            return None
        lit = _required_literal(expr) if expr is not None else None
        if lit is None:
            return None
        lits.append(lit)
    return tuple(dict.fromkeys(lits))


_HS_FLAG_UTF8 = 32             # hyperscan.HS_FLAG_UTF8
_HS_FLAG_UCP = 64              # hyperscan.HS_FLAG_UCP


def _re2_hit(msearch):
    """A UriExtractor.hit function from the prefilter regex's search."""
    def hit(line: bytes, pos: int = 0) -> int:
        t = msearch(line, pos)
        return -1 if t is None else t.start()
    return hit


def _candidates(pset, data: bytes) -> list:
    """The redirectors that may match data, in their order."""
    hits = pset.scan(data)
    pats = pset.patterns
    if hits is None:
        return pats
    hits |= pset.always
    if not hits:
        return []
    return [pats[i] for i in sorted(hits)]


class UriExtractor:
    """PerMsgStatus::_tbirdurire and the text/HTML URI detail list."""

    def __init__(self, rb: Registry, redirectors: list):
        self.rb = rb
        self.redirectors = redirectors
        self._canon_memo: dict[str, tuple] = {}
        self._text_memo: dict[tuple, tuple] = {}     # text_uris: groups of a match -> _text_uri
        # one Hyperscan scan rules out the redirectors that cannot match
        self.redirector_set = None
        if len(redirectors) > 1:
            try:
                from postier.maps.patterns import PatternSet
                self.redirector_set = PatternSet(redirectors)
                # lowercase literals one of which a target must hold to
                # need the scan at all (_redirect)
                self.redirector_set.postier_literals = _redirector_literals(self.redirector_set)
            except Exception:  # noqa: BLE001 - no shortcut then; every pattern is tried
                self.redirector_set = None
        # _canonicalize's shortcut: () without redirectors, their literals
        # (one of which a URI they match holds) when known, else None (no
        # shortcut: every URI takes the general steps)
        self._redirector_lits: tuple[bytes, ...] | None = None
        if not redirectors:
            self._redirector_lits = ()
        elif self.redirector_set is not None:
            self._redirector_lits = getattr(self.redirector_set, "postier_literals", None)
        # spamuri.quick_canonical's arguments after the URI
        self._quick = (self._redirector_lits, rb._host_memo, rb._host_domain)
        # self.re (the linkified-URI regex), self.maybe and self.hit (its
        # prefilter) are built when first asked for (cached properties
        # below): with the compiled matcher, only the fallback for TLDs
        # outside [a-z][a-z0-9-]* and the tests ask
        # spamuri.uri_lines keeps the lines holding "@", ":", a "." after
        # [wWpP0-9] or a "." before [A-Za-z\x80-\xff]: every hit of self.maybe
        # holds one (a scheme's or mailto:'s ":", "@", the "." of www./www1./
        # ftp., or the "." before a TLD) as long as every TLD starts with a
        # letter (or a non-ASCII character); else every line is searched
        self.lines_filter = None
        if all(t and ("a" <= t[0].lower() <= "z" or t[0] >= "\x80") for t in rb.tlds):
            self.lines_filter = _uri_lines
        tl = rb.tlds or {"no_tlds_defined"}          # (tlds_alts for no TLDs)
        # text_uris' matcher: spamuri.UriMatcher, self.re's matches found in C
        # (the same groups and lengths: tests/unit/content/test_spam_uri_matcher.py)
        # when every TLD is [a-z][a-z0-9-]*, else None (self._matches)
        try:
            self.matcher = _su.UriMatcher(tl)
        except ValueError:
            self.matcher = None

    @cached_property
    def re(self):
        """PerMsgStatus::_tbirdurire with the registry's TLDs."""
        return uri_pattern(self.rb.tlds_re)

    @cached_property
    def maybe(self):
        """What every match of self.re contains (a scheme, www./ftp., mailto:,
        an @ or a dot and a TLD), an RE2 regex on bytes: lines without any
        are skipped cheaply.  None without pyre2."""
        try:
            import re2
            return re2.compile(
                rb"(?i)(?:(?:https?|ftp)://|(?:www[0-9]{0,2}|ftp)\.|mailto:|@|\.(?:"
                + self.rb.tlds_alts.encode("latin-1") + rb"))")
        except Exception:  # noqa: BLE001 - pyre2 raises several types; then no shortcut
            return None

    @cached_property
    def hit(self):
        """hit(line, pos): the start of self.maybe's first hit at or after
        pos, or -1: spamuri.UriPrefilter's compiled scan when the TLDs are
        ASCII (the same answers: tests/unit/content/test_spam_uri_lines.py),
        else self.maybe's search; None without either (finditer then)."""
        tl = self.rb.tlds or {"no_tlds_defined"}          # (tlds_alts for no TLDs)
        if all(t.isascii() for t in tl):
            return _su.UriPrefilter(tl).search
        if self.maybe is not None:
            return _re2_hit(self.maybe.search)
        return None

    def _matches(self, lines: list[bytes]):
        """The matches of self.re in each line, as re.finditer finds them."""
        lf = self.lines_filter
        if lf is not None and self.hit is not None:
            lines = lf(lines)
        line_matches = self._line_matches
        for line in lines:
            yield from line_matches(line)

    def _line_matches(self, line: bytes) -> list:
        """The matches of self.re in line, as re.finditer finds them.

        Every match contains a hit of self.maybe (self.hit: a scheme, www./ftp.,
        mailto:, an @, or a dot and a TLD), at most _BEFORE_HIT characters
        after the match start and with no space in between (the mail and
        bare-host forms take no spaces).  So the search for the next match
        starts at the first hit at or after the end of the previous one, less
        that distance, and after the last character before it that no
        match holds between its start and its first hit (white space, one
        of ><"`}]{[|,('@, ESC, 0x80-0xff: spamuri.match_start): no match can
        start earlier, and the search sees the whole line for \\b and the
        look-behinds, as finditer does."""
        find = self.hit
        if find is None:
            return list(self.re.finditer(line.decode("latin-1")))
        hit = find(line, 0)
        if hit < 0:
            return []
        out = []
        search = self.re.search
        s = line.decode("latin-1")
        end = 0
        while True:
            pos = hit - _BEFORE_HIT
            if pos < end:
                pos = end
            pos = _match_start(s, pos, hit)
            if len(s) - pos <= _LONG_REST:
                m = search(s, pos)
            else:
                m = self._window_match(s, line, pos, hit)
            if m is None:
                break
            out.append(m)
            end = m.end()
            hit = find(line, end)
            if hit < 0:
                break
        return out

    def _window_match(self, s: str, line: bytes, pos: int, hit: int):
        """self.re.search(s, pos) when pos comes from the hit `hit` (the first
        at or after pos) as in _matches: a match starting at q has its first
        hit h at or after q, at most _BEFORE_HIT after it and with no
        delimiter in between, so q lies in the window that hit h gives
        (_match_start's) -- hit's window, or a later hit's.  The windows are
        tried in order, each position where the pattern's start condition
        (\\b, or after ESC ( x, or after a start character) holds with
        re.match: the first match is search's.  A search that finds nothing
        reads the rest of the line from every position (~0.1 ms on a 2 KB
        line); this reads the windows only."""
        match = self.re.match
        find = self.hit
        word = _WORD
        start = _START
        n = len(s)
        while True:
            q = pos
            prev = s[q - 1] if q > 0 else ""
            pw = prev in word if prev else False
            while q <= hit and q < n:
                c = s[q]
                cw = c in word
                if (cw != pw or prev in start
                        or (q >= 3 and s[q - 3] == "\x1b" and s[q - 2] == "(")):
                    m = match(s, q)
                    if m is not None:
                        return m
                prev = c
                pw = cw
                q += 1
            nh = find(line, hit + 1)
            if nh < 0:
                return None
            p = nh - _BEFORE_HIT
            if p <= hit:
                p = hit + 1
            pos = _match_start(s, p, nh)
            hit = nh

    def text_uris(self, lines: list[bytes]) -> list[tuple[str, dict]]:
        """(_process_text_uri_list) URIs linkified from the rendered text."""
        return _text_uri_list(self._found(lines), self._text_memo, self._text_uri,
                              _TEXT_MEMO_MAX, _TEXT_MEMO_URI_MAX)

    def _found(self, lines: list[bytes]) -> list[tuple[tuple, int]]:
        """(groups, length) of each linkified match in lines."""
        if self.matcher is not None:
            return self.matcher.matches(lines)
        return [(m.groups(), m.end() - m.start()) for m in self._matches(lines)]

    def _text_uri(self, groups: tuple) -> tuple[str, tuple[str, dict] | None]:
        """(raw, (uri, types) or None) of one match of self.re: a function of
        its groups (remembered across messages by text_uris)."""
        g1, g2, g3, schost = groups
        raw = g1 or g2 or g3
        if ")" in raw:
            raw = _PAREN_TAIL(r"\1", raw, 1)
        raw = raw.rstrip(_PUNCT_CHARS)          # s/[-~!@#^&*()_+=:;\'?,.]*$// (no "\n" in a match)
        if g1 is None and g2 is not None and "@" not in raw:
            return raw, None
        if schost is not None and not is_fqdn_valid(schost, True):
            return raw, None
        if _CID(raw) is not None or _BARE_SCHEME(raw) is not None:
            return raw, None
        types = {"parsed": 1}
        uri = raw
        if _KNOWN_SCHEME(uri) is None:
            if _FTP_HOST(uri) is not None:
                uri = "ftp://" + uri
            elif _WWW_HOST(uri) is not None:
                uri = "http://" + uri
            elif "@" in uri and _SLASH_AT(uri) is not None:
                uri = "http://" + uri
            elif "@" in uri:
                if _AT_DOT(uri) is None:
                    return raw, None
                if "&nbsp;" in uri:
                    return raw, None
                uri = "mailto:" + _MAIL_PREFIX("", uri, 1)
            else:
                if "." not in uri:
                    return raw, None
                uri = "http://" + uri
                types["unlinked"] = 1
            types["schemeless"] = 1
        if _MAILTO_RE(uri) is not None:
            if "%" in uri and _PCT_ANY_I(uri) is not None:
                uri = url_encode(uri)
            mm = _AT_HOST(uri)
            if not mm:
                return raw, None
            host = _PCT20_TAIL("", mm.group(1), 1)
            if not self.rb.is_domain_valid(host):
                return raw, None
        return raw, (uri, types)

    def detail_list(self, lines: list[bytes], html_all: list[dict]) -> dict[str, dict]:
        """get_uri_detail_list: {raw uri: {"cleaned": [...], "types": {...}, ...}}."""
        # text_uris, then each of its URIs and each HTML part's into the
        # entries (the same entries in the same order), in one compiled call;
        # the plain URLs and mailto: URIs (_canonicalize's shortcut) are
        # canonicalised there too, the others by _general
        return _detail_entries(self._found(lines), html_all, self._text_memo, self._text_uri, self._canon_memo,
                               self._general, _DETAIL_LIMITS, self._quick)

    # the uri rules' subjects: every cleaned URI of a detail list once,
    # encoded (Latin-1, else UTF-8), in one compiled loop
    uri_bytes = staticmethod(_su.uri_bytes)

    @staticmethod
    def truncated_in(udl: dict) -> bool:
        """PerMsgStatus's uri_truncated: a canonical URI was cut to MAX_URI_LENGTH."""
        return any(info.get("truncated") for info in udl.values())

    def _canonical(self, uri: str) -> tuple[list, dict, dict, bool]:
        """(cleaned, domains, hosts, truncated) of uri, remembered across messages
        (a function of uri: the registry and redirectors do not change)."""
        memo = self._canon_memo
        got = memo.get(uri)
        if got is None:
            got = self._canonicalize(uri)
            if len(uri) <= _CANON_MEMO_URI_MAX:
                if len(memo) >= _CANON_MEMO_MAX:
                    memo.clear()
                memo[uri] = got
        return got

    def _canonicalize(self, uri: str) -> tuple[list, dict, dict, bool]:
        """(cleaned, domains, hosts, truncated) of uri: uri_list_canonicalize's
        forms (at most MAX_URI_LENGTH characters), their domains and hosts.

        A plain http(s) URL (spamuri.simple_http) that no redirector can
        match (it holds none of their literals), with no ":" after its host
        (no embedded URL) and no bare-name form (https, or a "." in its host
        after a leading "www.") is its only canonical form, and its host
        part is its host lowercased (spamuri.uri_host's answer for it):
        answered in one compiled call without the general steps (the same
        result; spamuri.quick_canonical).  So is a plain mailto: URI (printable,
        without "?", "&", "<" or "%"): its only form is itself, its domain the
        one of the host after its only "@"."""
        # (a mailto: URI so: uri_list_canonicalize keeps it as its only
        # form, none of its mail forms applying, and uri_to_domain takes
        # the host after its only "@")
        got = _quick_canonical(uri, *self._quick)
        if got is not None:
            return got
        return self._general(uri)

    def _general(self, uri: str) -> tuple[list, dict, dict, bool]:
        """_canonicalize's general steps (any URI; detail_entries calls it
        for those its quick_canonical does not answer)."""
        cleaned: dict[str, None] = {}
        domains: dict[str, int] = {}
        hosts: dict[str, str] = {}
        truncated = False
        to_domain = self.rb.uri_to_domain
        for c in uri_list_canonicalize(self.redirectors, [uri], self.rb, self.redirector_set):
            if len(c) > MAX_URI_LENGTH:
                c = c[:MAX_URI_LENGTH]
                truncated = True
            if c in cleaned:
                continue
            cleaned[c] = None
            d = to_domain(c)
            if d is not None:
                domains[d[0]] = 1
                hosts[d[1]] = d[0]
        return list(cleaned), domains, hosts, truncated


_CANON_MEMO_MAX = 4096         # URIs remembered (then forgotten all at once)
_CANON_MEMO_URI_MAX = 1024     # longer ones are not remembered
_TEXT_MEMO_MAX = 2048          # text_uris: matches remembered (then forgotten all at once)
_TEXT_MEMO_URI_MAX = 512       # longer ones are not remembered
_DETAIL_LIMITS = (_TEXT_MEMO_MAX, _TEXT_MEMO_URI_MAX, _CANON_MEMO_MAX, _CANON_MEMO_URI_MAX)
_BEFORE_HIT = 256        # >= the 252 characters a host or mailbox may have before its hit
_LONG_REST = 128         # _matches: a longer rest of the line is searched window by window
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")   # re.A's \w
# what may stand before a URI (besides \b and ESC ( x): the pattern's
# (?<=[start]) class, and as a set for _window_match (re.A's \s spelt out)
_START = frozenset(START_CHARS + " \t\n\r\f\v")
_PAREN_TAIL = re.compile(r"(^[^(]*)\).*$", re.S).sub
_PUNCT_CHARS = "-~!@#^&*()_+=:;'?,."
_CID = re.compile(r"[cm]id:", re.I).match
_BARE_SCHEME = re.compile(r"^\w+:/{0,2}$", re.I).match
_KNOWN_SCHEME = re.compile(r"(?:https?|ftp|mailto):", re.I).match
_FTP_HOST = re.compile(r"ftp\.", re.I).match
_WWW_HOST = re.compile(r"www\d{0,2}\.", re.I).match
_SLASH_AT = re.compile(r"/.+@", re.S).search
_AT_DOT = re.compile(r"@.+?\.", re.S).search
_MAIL_PREFIX = re.compile(r"^(?:skype|e?-?mail)?:+", re.I).sub
_PCT_ANY_I = re.compile(r"%[0-9a-f]{2}", re.I).search
_AT_HOST = re.compile(r"@([^?&>]*)", re.S).search
_PCT20_TAIL = re.compile(r"(?:%20)+$").sub
