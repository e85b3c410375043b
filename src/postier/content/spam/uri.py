"""URIs of a message as SpamAssassin finds them (the text `uri` rules see).

    reg = Registry(tlds, two_level, three_level)      # util_rb_tld/2tld/3tld
    uris = uri_list(body_lines, html_parts, reg, redirector_patterns)

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

Parameters read: none (the rule set supplies the TLD lists and redirector
patterns).
"""

from __future__ import annotations

from postier.content.spam import bre as re
from postier.content.spam.received import IP

MAX_URI_LENGTH = 8192

_US_STATES = frozenset(("ak al ar az ca co ct dc de fl ga gu hi ia id il in ks ky la ma md me mi mn "
                        "mo ms mt nc nd ne nh nj nm nv ny oh ok or pa pr ri sc sd tn tx ut va vi vt "
                        "wa wi wv wy").split())
_IS_IP = re.compile(r"^" + IP + r"$", re.A)


def idn_to_ascii(s: str) -> str:
    """Util::idn_to_ascii (IDNA through Python's codec, lowercased)."""
    if all(c in _IDN_OK for c in s):
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
    u = re.sub("[\u3002\uff0e\uff61]", ".", u)
    try:
        return u.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return s.lower()


_IDN_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:[]-")
_LATIN_HOST = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
                        + bytes(range(0xc0, 0xd7)) + bytes(range(0xd8, 0xdf))
                        + bytes(range(0xe0, 0xf7)) + bytes(range(0xf8, 0xff)))


def is_fqdn_valid(host: str | None, is_ascii: bool = True) -> bool:
    """Util::is_fqdn_valid."""
    if host is None:
        return False
    host = host.lower() if is_ascii else idn_to_ascii(host)
    host = re.sub(r"\.+\Z", "", host)
    if len(host) > 253:
        return False
    labels = host.split(".")
    while labels and labels[-1] == "":    # Perl's split drops trailing empty fields
        labels.pop()
    cnt = len(labels)
    if cnt <= 1:
        return False
    for label in labels:
        if not 1 <= len(label) <= 63:
            return False
        if not re.fullmatch(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?", label):
            return False
        if cnt <= 2 and "_" in label:
            return False
        cnt -= 1
    return True


def _trie_re(words: set[str]) -> str:
    """A regex matching exactly the words, factored by common prefixes."""
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [re.escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if not alts:
            return ""
        if "" in node:
            return "(?:" + "|".join(alts) + ")?"
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return emit(trie)


class Registry:
    """RegistryBoundaries: TLDs and registry-controlled 2nd/3rd levels."""

    def __init__(self, tlds: set[str], two: set[str], three: set[str]):
        self.tlds = tlds
        self.two = two
        self.three = three
        # a trie, not a flat alternation of ~1500 names (which `re` tries one
        # by one): the same language, and as the look-ahead admits only a
        # whole name, at most one branch can succeed at a position
        alts = _trie_re(tlds) if tlds else "no_tlds_defined"
        self.tlds_alts = alts
        self.tlds_re = r"(?<![a-zA-Z0-9-])(?:" + alts + r")(?!(?:[a-zA-Z0-9-]|\.[a-zA-Z0-9]))"

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
        if re.search(r"\s", dom):
            return False
        m = re.search(r"\.([^.]+)$", dom)
        return bool(m) and m.group(1) in self.tlds

    def split_domain(self, domain: str, is_ascii: bool = False) -> tuple[str, str]:
        domain = domain.lower() if is_ascii else idn_to_ascii(domain)
        if not domain:
            return "", domain
        domain = re.sub(r"\.+", ".", domain)
        domain = domain.strip(".")
        parts = domain.split(".")
        host: list[str] = []
        while len(parts) > 1:
            if len(parts) == 2:
                if ".".join(parts) in self.two:
                    break
            elif len(parts) == 3:
                if parts[2] == "us":
                    if parts[1] in _US_STATES:
                        break
                elif ".".join(parts) in self.three:
                    break
            elif len(parts) == 4:
                if parts[3] == "us" and ((parts[0] == "pvt" and parts[1] == "k12")
                                         or re.match(r"^c[io]$", parts[0])):
                    if parts[2] in _US_STATES:
                        break
            host.append(parts.pop(0))
        if host:
            parts.insert(0, host.pop())
        return ".".join(host), ".".join(parts)

    def trim_domain(self, domain: str, is_ascii: bool = False) -> str:
        return self.split_domain(domain, is_ascii)[1]

    def uri_to_domain(self, uri: str) -> tuple[str, str] | None:
        uri = uri.lower()
        if re.match(r"^(?:javascript|cid|file):", uri):
            return None
        if uri.startswith("mailto:"):
            uri = uri[7:]
            uri = re.sub(r"\?.*", "", uri, count=1, flags=re.S)
            if re.search(r"@.*?@", uri, re.S):
                return None
            m = re.match(r".*@", uri, re.S)
            if not m:
                return None
            uri = uri[m.end():]
        else:
            uri = re.sub(r"^[a-z]+:/{0,2}", "", uri, flags=re.S)
            uri = re.sub(r"[/?#].*", "", uri, flags=re.S)
            uri = re.sub(r"^[^/]*@", "", uri, flags=re.S)
            uri = re.sub(r":\d*$", "", uri, flags=re.S)
        if re.search(r"%(?:2[1-9a-f]|[3-6][0-9a-f]|7[0-9a-e])", uri):
            return None
        host = idn_to_ascii(uri)
        domain = host
        if not _IS_IP.match(host):
            if not is_fqdn_valid(host, True):
                return None
            if not self.is_domain_valid(host, True):
                return None
            domain = self.trim_domain(host, True)
        return domain, host


def url_encode(url: str) -> str:
    """Util::url_encode (which, despite its name, decodes harmless %XX)."""
    parts = re.split(r"(%[0-9a-fA-F]{2})", url)
    out = []
    for p in parts:
        if re.fullmatch(r"%[0-9a-fA-F]{2}", p):
            if not re.search(r"(20|7f|[0189a-fA-F][0-9a-fA-F])", p, re.I):
                p = re.sub(r"%([2-7][0-9a-fA-F])", lambda m: chr(int(m.group(1), 16)), p)
            out.append(p)
        else:
            out.append(re.sub(r"[\000-\040\177-\377\042\045\074\076]",
                              lambda m: f"%{ord(m.group(0)):02x}", p))
    return "".join(out)


def _decode_ulong_to_ip(n: int) -> str:
    h = f"{n:08x}"
    b = bytes.fromhex(h[-8:] if len(h) > 8 else h)
    return ".".join(str(x) for x in b[:4])


def uri_list_canonicalize(redirectors: list, uris: list[str], rb: Registry | None) -> list[str]:
    """Util::uri_list_canonicalize."""
    uris = list(uris)
    nuris: list[str] = []
    i = 0
    while i < len(uris):
        uri = uris[i]
        uri = uri.replace("\n", "")
        uri = re.sub(r"^\s+", "", uri)
        uri = re.sub(r"\s+$", "", uri)
        uri = uri.replace("\r", "")
        uris[i] = uri
        i += 1
        if len(uri) <= 1 or re.match(r"^(?:[#?&]|/(?!/))", uri):
            continue
        nuri = uri
        if re.match(r"^mailto:", nuri, re.I) or re.match(r"^[^:]*@", nuri):
            m = re.match(r"^([^@]+@[^?]+)\?", nuri, re.S)
            if m:
                nuris.append(m.group(1))
            m = re.match(r"^([^@]+@[^?&]+)&", nuri, re.S)
            if m:
                nuris.append(m.group(1))
            if "%20" in nuri:
                m = re.match(r"^(?:mailto:)?(?:%20)*([^@]+@[^?&%]+)", nuri, re.S)
                if m:
                    nuris.append("mailto:" + m.group(1))
            m = re.match(r"^[^?&]*<([^@>]+@[^>]+)>", nuri, re.S)
            if m:
                nuris.append("mailto:" + m.group(1))
            continue
        nuri = nuri.replace("\\", "/")
        nuri = re.sub(r"^(https?:)/{0,2}", r"\1//", nuri, count=1, flags=re.I)
        if re.search(r"%[0-9a-fA-F]{2}", nuri):
            nuri = url_encode(nuri)
        if not re.match(r"^[-_a-z0-9]+:", nuri, re.I):
            nuri = ("ftp://" if nuri.startswith("ftp.") else "http://") + nuri
        nuri = re.sub(r"^(https?://[^/?#]+)([?#])", r"\1/\2", nuri, count=1, flags=re.I)
        nuri = re.sub(r"&#0*(3[3-9]|[4-9]\d|1[01]\d|12[0-6]);", lambda m: chr(int(m.group(1))), nuri)
        nuri = re.sub(r"&#x0*(2[1-9]|[3-6][a-fA-F0-9]|7[0-9a-eA-E]);",
                      lambda m: chr(int(m.group(1), 16)), nuri)
        nuri = re.sub(r"&#(?:x2e|12290|x3002|65294|xff0e|65377|xff61);", ".", nuri, flags=re.I)
        if nuri != uri:
            nuris.append(nuri)
        m = re.match(r"^(https?://)([^@/?#]*@)?([^/?#:]+)((?::(\d*))?.*)$", nuri, re.I | re.S)
        if not m:
            continue
        proto, host, rest = m.group(1), m.group(3), m.group(4)
        auth = m.group(2) or ""
        port = m.group(5) if m.group(5) is not None else ""
        rest_noport = None
        if port == "":
            port = "80" if proto == "http://" else "443"
        else:
            rest_noport = rest
            if proto == "http://":
                rn = re.sub(r"^:80\b", "", rest_noport, count=1)
                if rn != rest_noport:
                    rest_noport = rn
                    nuris.append(proto + host + rest_noport)
            else:
                rn = re.sub(r"^:443\b", "", rest_noport, count=1)
                if rn != rest_noport:
                    rest_noport = rn
                    nuris.append(proto + host + rest_noport)
        nhost = idn_to_ascii(host)
        if nhost != host.lower():
            nuris.append(proto + nhost + rest)
            if rest_noport:
                nuris.append(proto + nhost + rest_noport)
            host = nhost
        stripped = re.sub(r"[\x00-\x20]", "", host)
        if stripped != host:
            host = stripped
            nuris.append(proto + host + rest)
        found = False
        target = proto + host + rest
        for rx in redirectors:
            sp = rx.spans(target.encode("latin-1", "replace"), 2)
            if sp is not None:
                s, e = sp[1]
                if s < 0:
                    continue
                cap = target[s:e]
                if "." not in cap:
                    continue
                uris.append(cap)
                found = True
                break
        if not found:
            m2 = re.search(r"(https?:/{0,2}[^&#]+)", rest, re.I | re.S)
            if m2 and "." in m2.group(1):
                uris.append(m2.group(1))
        h2 = re.sub(r"^[^@]+@", "", host, flags=re.S)
        if h2 != host:
            host = h2
            nuris.append(proto + host + rest)
        h2 = re.sub(r"[^0-9A-Za-z]+$", "", host)
        if h2 != host:
            host = h2
            nuris.append(proto + host + rest)
        m3 = re.match(r"^((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)(0x[0-9a-f]+|\d+)$",
                      host, re.I | re.A)
        if m3:
            chunks = []
            for octet in m3.groups():
                octet = re.sub(r"^0x([0-9a-f]+)", lambda mm: str(int(mm.group(1), 16)), octet,
                               flags=re.I)
                octet = re.sub(r"^0+([1-3][0-7]{0,2}|[4-7][0-7]?)\b",
                               lambda mm: str(int(mm.group(1), 8)), octet, flags=re.A)
                octet = re.sub(r"^0+", "", octet)
                chunks.append(octet)
            nuris.append(proto + "".join(chunks) + rest)
        elif re.match(r"^0x[0-9a-f]+$", host, re.I):
            mm = re.match(r"^0x[0-9a-f]*?([0-9a-f]{1,8})$", host, re.I)
            n = int(mm.group(1), 16)
            nuris.append(proto + _decode_ulong_to_ip(n) + rest)
        elif re.match(r"^[0-9]+$", host, re.A):
            nuris.append(proto + _decode_ulong_to_ip(int(host)) + rest)
        elif proto == "http://" and auth == "" and nhost != "localhost" and port == "80":
            mm = re.match(r"^(?:www\.)?([^.]+)$", nhost, re.S)
            if mm and not (rb is not None and rb.is_domain_valid(nhost)):
                nuris.append(proto + "www." + mm.group(1) + ".com" + rest)
    seen: dict[str, None] = {}
    for u in uris + nuris:
        seen.setdefault(u, None)
    return list(seen)


class UriExtractor:
    """PerMsgStatus::_tbirdurire and the text/HTML URI detail list."""

    def __init__(self, rb: Registry, redirectors: list):
        self.rb = rb
        self.redirectors = redirectors
        start = "><\"'`,{[(|\\s\x1b\xa0"
        end = "><\"`}\\]{[|\\s\x1b\xa0"
        end_email = end + ",(\'\x80-\xff"
        end_at = end_email + "@"
        tlds = rb.tlds_re
        scstart = r"[\!\"\#\$\&\'\(\)\*\+\,\/\:\;\<\=\>\?\@\[\\\]\^\`\{\|\}\~\s\x1b\xa0]"
        schemeless = (r"([a-z\d][a-z\d._-]{0,251}\." + tlds + r")\.?(?::\d{1,5})?(?:\/[^" + end
                      + r"]{1,2048})?")
        known = r"(?:(?:https?|ftp):\/\/|(?:www\d{0,2}|ftp)\.)[^" + end + r"]{1,2048}"
        mail = r"(?:mailto:[^" + end_email + r"]{1,2048}|[^" + end_at + r"]{1,251}\@[^" + end_email + r"]{1,251})"
        self.re = re.compile(
            r"(?:\b|(?<=\x1b\(.)|(?<=[" + start + r"]))"
            r"(?:(?:(" + known + r")(?=(?:[" + end + r"]|\Z)))|"
            r"(?:(" + mail + r")(?=(?:[" + end_email + r"]|\Z)))|"
            r"(?:(?:^|(?<=" + scstart + r"))(" + schemeless + r")(?=(?:[" + end + r"]|\Z))))",
            re.I | re.A | re.S)
        # what every match of self.re contains (a scheme, www./ftp., mailto:,
        # an @ or a dot and a TLD): lines without any are skipped cheaply
        self.maybe = None
        try:
            import re2
            self.maybe = re2.compile(
                rb"(?i)(?:(?:https?|ftp)://|(?:www[0-9]{0,2}|ftp)\.|mailto:|@|\.(?:"
                + rb.tlds_alts.encode("latin-1") + rb"))")
        except Exception:  # noqa: BLE001 - pyre2 raises several types; then no shortcut
            self.maybe = None

    def text_uris(self, lines: list[bytes]) -> list[tuple[str, dict]]:
        """(_process_text_uri_list) URIs linkified from the rendered text."""
        out = []
        seen: set[str] = set()
        maybe = self.maybe
        for line in lines:
            if maybe is not None and maybe.search(line) is None:
                continue
            s = line.decode("latin-1")
            for m in self.re.finditer(s):
                raw = m.group(1) or m.group(2) or m.group(3)
                schost = m.group(4)
                rtype = "scheme" if m.group(1) is not None else "mail" if m.group(2) is not None else "schemeless"
                raw = re.sub(r"(^[^(]*)\).*$", r"\1", raw, count=1, flags=re.S)
                raw = re.sub(r"[-~!@#^&*()_+=:;\'?,.]*$", "", raw, count=1)
                if raw in seen:
                    continue
                seen.add(raw)
                if rtype == "mail" and "@" not in raw:
                    continue
                if schost is not None and not is_fqdn_valid(schost, True):
                    continue
                if re.match(r"^[cm]id:", raw, re.I):
                    continue
                if re.match(r"^\w+:/{0,2}$", raw, re.I | re.A):
                    continue
                types = {"parsed": 1}
                uri = raw
                if not re.match(r"^(?:https?|ftp|mailto):", uri, re.I):
                    if re.match(r"^ftp\.", uri, re.I):
                        uri = "ftp://" + uri
                    elif re.match(r"^www\d{0,2}\.", uri, re.I):
                        uri = "http://" + uri
                    elif re.search(r"/.+@", uri, re.S):
                        uri = "http://" + uri
                    elif "@" in uri:
                        if not re.search(r"@.+?\.", uri, re.S):
                            continue
                        if "&nbsp;" in uri:
                            continue
                        uri = re.sub(r"^(?:skype|e?-?mail)?:+", "", uri, count=1, flags=re.I)
                        uri = "mailto:" + uri
                    else:
                        if "." not in uri:
                            continue
                        uri = "http://" + uri
                        types["unlinked"] = 1
                    types["schemeless"] = 1
                if re.match(r"^mailto:", uri, re.I):
                    if re.search(r"%[0-9a-f]{2}", uri, re.I):
                        uri = url_encode(uri)
                    mm = re.search(r"@([^?&>]*)", uri, re.S)
                    if not mm:
                        continue
                    host = re.sub(r"(?:%20)+$", "", mm.group(1))
                    if not self.rb.is_domain_valid(host):
                        continue
                out.append((uri, types))
        return out

    def detail_list(self, lines: list[bytes], html_all: list[dict]) -> dict[str, dict]:
        """get_uri_detail_list: {raw uri: {"cleaned": [...], "types": {...}, ...}}."""
        udl: dict[str, dict] = {}
        for uri, types in self.text_uris(lines):
            self.add(udl, uri, types, True)
        for html in html_all:
            for uri, info in (html.get("uri_detail") or {}).items():
                if self.add(udl, uri, info.get("types"), False):
                    if info.get("anchor_text"):
                        ent = udl[uri].setdefault("anchor_text", [])
                        seen: set[str] = set()
                        for a in info["anchor_text"]:
                            if a not in seen:
                                seen.add(a)
                                ent.append(a)
        return udl

    @staticmethod
    def truncated_in(udl: dict) -> bool:
        """PerMsgStatus's uri_truncated: a canonical URI was cut to MAX_URI_LENGTH."""
        return any(info.get("truncated") for info in udl.values())

    def add(self, udl: dict, uri: str, types: dict | None, valid_domain: bool) -> bool:
        types = types if types is not None else {"parsed": 1}
        cleaned: dict[str, None] = {}
        domains = {}
        hosts = {}
        truncated = False
        for c in uri_list_canonicalize(self.redirectors, [uri], self.rb):
            if len(c) > MAX_URI_LENGTH:
                c = c[:MAX_URI_LENGTH]
                truncated = True
            cleaned.setdefault(c, None)
            d = self.rb.uri_to_domain(c)
            if d is not None:
                domains[d[0]] = 1
                hosts[d[1]] = d[0]
        if not cleaned:
            return False
        if valid_domain and not domains:
            return False
        ent = udl.setdefault(uri, {})
        if truncated:
            ent["truncated"] = True
        if not types.get("noclean"):
            old = ent.get("cleaned", [])
            merged = dict.fromkeys(old)
            merged.update(cleaned)
            ent["cleaned"] = list(merged)
        ent.setdefault("domains", {}).update(domains)
        ent.setdefault("hosts", {}).update(hosts)
        ent.setdefault("types", {}).update(types)
        return True


def uri_list(udl: dict[str, dict]) -> list[str]:
    """get_uri_list: every cleaned URI, once."""
    out: dict[str, None] = {}
    for info in udl.values():
        for c in info.get("cleaned", []):
            out.setdefault(c, None)
    return list(out)
