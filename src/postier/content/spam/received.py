"""Received: headers parsed into relays, as SpamAssassin does
(Mail::SpamAssassin::Message::Metadata::Received).

    relays = parse_relays(msg, trusted_networks=None, internal_networks=None)
    relays.external_str   # "[ ip=1.2.3.4 rdns=mx.example helo=... by=... ident= envfrom= intl=0 id=... auth= msa=0 ]"

Every Received header (top first) plus a "from X-Originating-IP: a.b.c.d"
line per originating-IP header (originating_ip_headers) is parsed by
SpamAssassin's table of MTA formats (Sendmail, Postfix, Exim, qmail,
Microsoft, Lotus, ...).  Lines that are not TCP handovers (local
pickup, fetchmail, BSMTP, ...) are skipped; lines that cannot be parsed are
counted as unparseable.  Trust: with no trusted_networks/internal_networks
configured, relays from private addresses or with SMTP AUTH at the top of
the chain are trusted and internal, and trust stops at the first other
relay (SpamAssassin's inference); with networks configured, a relay is
trusted while its address is in trusted_networks (or it authenticated) and
internal while it is also in internal_networks.  The relay strings are the
pseudo-headers X-Spam-Relays-Trusted/-Untrusted/-Internal/-External that
many rules match.

Parameters read: none (the engine passes SpamAssassin's trusted_networks,
internal_networks, msa_networks and originating_ip_headers settings).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from postier.content.spam import bre as re

IP_PRIVATE_RE = r"""^(?:
  (?:   # IPv4 addresses
    10|                             # 10.0.0.0/8      Private Use (5735, 1918)
    127|                            # 127.0.0.0/8     Host-local  (5735, 1122)
    169\.254|                       # 169.254.0.0/16  Link-local  (5735, 3927)
    172\.(?:1[6-9]|2[0-9]|3[01])|   # 172.16.0.0/12   Private Use (5735, 1918)
    192\.168|                       # 192.168.0.0/16  Private Use (5735, 1918)
    100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])  # 100.64.0.0/10 CGN (6598)
    )\..*
|
  (?:   # IPv6 addresses
    # don't use \b here, it hits on :'s
    (?:IPv6:    # with optional prefix
      | (?<![a-f0-9:])
    )
    (?:
      # IPv4 mapped in IPv6
      # note the colon after the 12th byte in each here
      (?:
        # first 6 (12 bytes) non-zero
        (?:0{1,4}:){5}          ffff:
        |
        # leading zeros omitted (note {0,5} not {1,5})
        ::(?:0{1,4}:){0,4}              ffff:
        |
        # trailing zeros (in the first 6) omitted
        (?:0{1,4}:){1,4}:               ffff:
        |
        # 0000 in second up to (including) fifth omitted
        0{1,4}::(?:0{1,4}:){1,3}        ffff:
        |
        # 0000 in third up to (including) fifth omitted
        (?:0{1,4}:){2}:0{1,2}:  ffff:
        |
        # 0000 in fourth up to (including) fifth omitted
        (?:0{1,4}:){3}:0:               ffff:
        |
        # 0000 in fifth omitted
        (?:0{1,4}:){4}:         ffff:
      )
      # and the IPv4 address appended to all of the 12 bytes above
      (?:
        10|
        127|
        169\.254|
        172\.(?:1[6-9]|2[0-9]|3[01])|
        192\.168|
        100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])
      )\..*

    | # or IPv6 link-local address space, fe80::/10
      fe[89ab][0-9a-f]:.*

    | # or the host-local ::1 addr, as a pure IPv6 address

      # all 8 (16 bytes) of them present
      (?:0{1,4}:){7}                    0{0,3}1
      |
      # leading zeros omitted
      :(?::0{1,4}){0,6}:                0{0,3}1
      |
      # 0000 in second up to (including) seventh omitted
      0{1,4}:(?::0{1,4}){0,5}:  0{0,3}1
      |
      # 0000 in third up to (including) seventh omitted
      (?:0{1,4}:){2}(?::0{1,4}){0,4}:   0{0,3}1
      |
      # 0000 in fourth up to (including) seventh omitted
      (?:0{1,4}:){3}(?::0{1,4}){0,3}:   0{0,3}1
      |
      # 0000 in fifth up to (including) seventh omitted
      (?:0{1,4}:){4}(?::0{1,4}){0,2}:   0{0,3}1
      |
      # 0000 in sixth up to (including) seventh omitted
      (?:0{1,4}:){5}(?::0{1,4}){0,1}:   0{0,3}1
      |
      # 0000 in seventh omitted
      (?:0{1,4}:){6}:                   0{0,3}1
    )
    (?![a-f0-9:])
  )
)"""

LOCALHOST_RE = r"""
                    (?:
                      # as a string
                      localhost(?:\.localdomain)?
                    |
                      \b(?<!:)  # ensure no "::" IPv6 marker before this one
                      # plain IPv4
                      127\.0\.0\.1 \b
                    |
                      # IPv6 addresses
                      # don't use \b here, it hits on :'s
                      (?:IPv6:    # with optional prefix
                        | (?<![a-f0-9:])
                      )
                      (?:
                        # IPv4 mapped in IPv6
                        # note the colon after the 12th byte in each here
                        (?:
                          # first 6 (12 bytes) non-zero
                          (?:0{1,4}:){5}                ffff:
                          |
                          # leading zeros omitted (note {0,5} not {1,5})
                          ::(?:0{1,4}:){0,4}            ffff:
                          |
                          # trailing zeros (in the first 6) omitted
                          (?:0{1,4}:){1,4}:             ffff:
                          |
                          # 0000 in second up to (including) fifth omitted
                          0{1,4}::(?:0{1,4}:){1,3}      ffff:
                          |
                          # 0000 in third up to (including) fifth omitted
                          (?:0{1,4}:){2}:0{1,2}:        ffff:
                          |
                          # 0000 in fourth up to (including) fifth omitted
                          (?:0{1,4}:){3}:0:             ffff:
                          |
                          # 0000 in fifth omitted
                          (?:0{1,4}:){4}:               ffff:
                        )
                        # and the IPv4 address appended to all of the 12 bytes above
                        127\.0\.0\.1    # no \b, we check later

                        | # or (separately) a pure IPv6 address

                        # all 8 (16 bytes) of them present
                        (?:0{1,4}:){7}                  0{0,3}1
                        |
                        # leading zeros omitted
                        :(?::0{1,4}){0,6}:              0{0,3}1
                        |
                        # 0000 in second up to (including) seventh omitted
                        0{1,4}:(?::0{1,4}){0,5}:        0{0,3}1
                        |
                        # 0000 in third up to (including) seventh omitted
                        (?:0{1,4}:){2}(?::0{1,4}){0,4}: 0{0,3}1
                        |
                        # 0000 in fourth up to (including) seventh omitted
                        (?:0{1,4}:){3}(?::0{1,4}){0,3}: 0{0,3}1
                        |
                        # 0000 in fifth up to (including) seventh omitted
                        (?:0{1,4}:){4}(?::0{1,4}){0,2}: 0{0,3}1
                        |
                        # 0000 in sixth up to (including) seventh omitted
                        (?:0{1,4}:){5}(?::0{1,4}){0,1}: 0{0,3}1
                        |
                        # 0000 in seventh omitted
                        (?:0{1,4}:){6}:                 0{0,3}1
                      )
                      (?![a-f0-9:])
                    )"""

IP_ADDRESS_RE = r"""
                    (?:
                      \b(?<!:)  # ensure no "::" IPv4 marker before this one
                      # plain IPv4, as above
                      (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                      (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                      (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                      (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\b
                    |
                      # IPv6 addresses
                      # don't use \b here, it hits on :'s
                      (?:IPv6:    # with optional prefix
                        | (?<![a-f0-9:])
                      )
                      (?:
                        # IPv4 mapped in IPv6
                        # note the colon after the 12th byte in each here
                        (?:
                          # first 6 (12 bytes) non-zero
                          (?:[a-f0-9]{1,4}:){6}
                          |
                          # leading zeros omitted (note {0,5} not {1,5})
                          ::(?:[a-f0-9]{1,4}:){0,5}
                          |
                          # trailing zeros (in the first 6) omitted
                          (?:[a-f0-9]{1,4}:){1,5}:
                          |
                          # 0000 in second up to (including) fifth omitted
                          [a-f0-9]{1,4}::(?:[a-f0-9]{1,4}:){1,4}
                          |
                          # 0000 in third up to (including) fifth omitted
                          (?:[a-f0-9]{1,4}:){2}:(?:[a-f0-9]{1,4}:){1,3}
                          |
                          # 0000 in fourth up to (including) fifth omitted
                          (?:[a-f0-9]{1,4}:){3}:(?:[a-f0-9]{1,4}:){1,2}
                          |
                          # 0000 in fifth omitted
                          (?:[a-f0-9]{1,4}:){4}:[a-f0-9]{1,4}:
                        )
                        # and the IPv4 address appended to all of the 12 bytes above
                        (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                        (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                        (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
                        (?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)   # no \b, we check later

                        | # or (separately) a pure IPv6 address

                        # all 8 (16 bytes) of them present
                        (?:[a-f0-9]{1,4}:){7}[a-f0-9]{1,4}
                        |
                        # leading zeros omitted
                        :(?::[a-f0-9]{1,4}){1,7}
                        |
                        # trailing zeros omitted
                        (?:[a-f0-9]{1,4}:){1,7}:
                        |
                        # 0000 in second up to (including) seventh omitted
                        [a-f0-9]{1,4}:(?::[a-f0-9]{1,4}){1,6}
                        |
                        # 0000 in third up to (including) seventh omitted
                        (?:[a-f0-9]{1,4}:){2}(?::[a-f0-9]{1,4}){1,5}
                        |
                        # 0000 in fourth up to (including) seventh omitted
                        (?:[a-f0-9]{1,4}:){3}(?::[a-f0-9]{1,4}){1,4}
                        |
                        # 0000 in fifth up to (including) seventh omitted
                        (?:[a-f0-9]{1,4}:){4}(?::[a-f0-9]{1,4}){1,3}
                        |
                        # 0000 in sixth up to (including) seventh omitted
                        (?:[a-f0-9]{1,4}:){5}(?::[a-f0-9]{1,4}){1,2}
                        |
                        # 0000 in seventh omitted
                        (?:[a-f0-9]{1,4}:){6}:[a-f0-9]{1,4}
                        |
                        # :: (the unspecified address 0:0:0:0:0:0:0:0)
                        # dos: I don't expect to see this address in a header, and
                        # it may cause non-address strings to match, but we'll
                        # include it for now since it is valid
                        ::
                      )
                      (?![a-f0-9:])
                    )"""


IPV4_RE = r"""\b(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.
(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\b"""

IP_ADDRESS = re.compile(IP_ADDRESS_RE, re.X | re.I | re.A)
IP_PRIVATE = re.compile(IP_PRIVATE_RE, re.X | re.I | re.A)
IPV4_ADDRESS = re.compile(IPV4_RE, re.X | re.A)


def _compact(verbose: str) -> str:
    out = []
    for line in verbose.split("\n"):
        line = re.sub(r"(?<!\\)#.*$", "", line)
        out.append(re.sub(r"\s+", "", line))
    return "".join(out)


IP = "(?i:" + _compact(IP_ADDRESS_RE) + ")"
LOCALHOST = "(?i:" + _compact(LOCALHOST_RE) + ")"

_cache: dict[str, re.Pattern] = {}


def _rx(p: str, flags: int = 0) -> re.Pattern:
    key = (p, flags)
    r = _cache.get(key)
    if r is None:
        r = _cache[key] = re.compile(p.replace("${IP}", IP).replace("${LOCALHOST}", LOCALHOST),
                                     flags | re.A | re.S)
    return r


@dataclass
class Relay:
    ip: str
    by: str
    helo: str
    id: str
    ident: str
    envfrom: str | None
    auth: str
    rdns: str = ""
    no_reverse_dns: bool = False
    rdns_not_in_headers: bool = False
    ip_private: bool = False
    internal: bool = False
    msa: bool = False
    as_string: str = ""

    @property
    def lc_helo(self) -> str:
        return self.helo.lower()

    @property
    def lc_rdns(self) -> str:
        return self.rdns.lower()

    @property
    def lc_by(self) -> str:
        return self.by.lower()

    def make_string(self) -> None:
        self.as_string = (f"[ ip={self.ip} rdns={self.rdns} helo={self.helo} by={self.by} "
                          f"ident={self.ident} envfrom={self.envfrom or ''} intl={int(self.internal)} "
                          f"id={self.id} auth={self.auth} msa={int(self.msa)} ]")


@dataclass
class Relays:
    trusted: list[Relay] = field(default_factory=list)
    untrusted: list[Relay] = field(default_factory=list)
    internal: list[Relay] = field(default_factory=list)
    external: list[Relay] = field(default_factory=list)
    num_unparseable: int = 0
    last_trusted_index: int = -1
    last_internal_index: int = -1

    @staticmethod
    def _s(lst: list[Relay]) -> str:
        return " ".join(r.as_string for r in lst)

    @property
    def trusted_str(self) -> str:
        return self._s(self.trusted)

    @property
    def untrusted_str(self) -> str:
        return self._s(self.untrusted)

    @property
    def internal_str(self) -> str:
        return self._s(self.internal)

    @property
    def external_str(self) -> str:
        return self._s(self.external)


class NetSet:
    """A list of networks (trusted_networks and friends), `!` exclusions first-match."""

    def __init__(self, specs: list[str]):
        self.nets: list[tuple[bool, ipaddress._BaseNetwork]] = []
        for spec in specs:
            for tok in spec.split():
                neg = tok.startswith("!")
                tok = tok.lstrip("!")
                try:
                    if "/" not in tok and tok.count(".") < 3 and ":" not in tok:
                        parts = [p for p in tok.split(".") if p]
                        tok = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
                    self.nets.append((neg, ipaddress.ip_network(tok, strict=False)))
                except ValueError:
                    continue

    def __bool__(self) -> bool:
        return bool(self.nets)

    def contains_ip(self, ip: str) -> bool:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        for neg, net in self.nets:
            if a.version == net.version and a in net:
                return not neg
        return False


class _Line:
    """A Received line being matched; m(pattern) searches it like Perl's /.../."""

    __slots__ = ("s", "g")

    def __init__(self, s: str):
        self.s = s
        self.g: re.Match | None = None

    def m(self, pat: str, flags: int = 0) -> bool:
        self.g = _rx(pat, flags).search(self.s)
        return self.g is not None

    def sub(self, pat: str, repl: str, flags: int = 0) -> bool:
        new, n = _rx(pat, flags).subn(repl, self.s, count=1)
        self.s = new
        return n > 0

    def __getitem__(self, i: int) -> str | None:
        return self.g.group(i) if self.g else None


class _Enough(Exception):
    pass


class _Parser:
    def __init__(self):
        self.qmail_scanner_env_from = None
        self.pop_fetcher = False

    def parse_line(self, line: str):
        """parse_received_line: a Relay, 0 (not a handover: skip), or None (unparseable)."""
        s = re.sub(r"\s+", " ", line, flags=re.A)
        s = re.sub(r"^ ", "", s)
        s = re.sub(r" $", "", s)
        while True:
            s2 = re.sub(r"\s?;$", "", s, count=1, flags=re.A)
            if s2 == s:
                break
            s = s2
        L = _Line(s)
        v = {"ip": "", "helo": "", "rdns": "", "by": "", "id": "", "ident": "", "envfrom": None,
             "dns": False, "auth": ""}
        if not L.m(r"^\(?from ", re.I):
            return 0
        if L.m(r"\bwith local for\b"):
            return 0
        if L.m(r"^from (\S+) by [^\s;]+ ?;", re.I) and not re.match(r"^\[[\d.]+\]$", L[1]):
            return 0
        L.sub(r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|Ma[ry]|"
              r"A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$", "")
        L.sub(r"\)by ", ") by ")
        if L.m(r" id <?([^\s<>;]{3,})"):
            v["id"] = L[1]
        hc = r"-A-Za-z0-9\.\^+_&:=?!@%*\$\\\/"
        if L.m(r"\bhelo=([" + hc + r"]+)(?:[^" + hc + r"]|$)"):
            v["helo"] = L[1]
        elif L.m(r"\b(?:HELO|EHLO) ([" + hc + r"]+)(?:[^" + hc + r"]|$)"):
            v["helo"] = L[1]
        if L.m(r" by (\S+)(?:[^-A-Za-z0-9\;\.]|$)"):
            v["by"] = L[1]
        self._auth(L, v)
        try:
            res = self._body(L, v)
            if res is not True:
                return res
        except _Enough:
            pass
        return self._enough(v)

    def _auth(self, L: _Line, v: dict) -> None:
        if L.m(r" by ") and L.m(r" with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)", re.I):
            v["auth"] = L[1]
        elif L.m(r" by mx\.google\.com with ESMTPS id [a-z0-9]{1,4}sm[0-9]{2,9}[a-z]{3}\.[0-9]{1,3}\.[0-9]{4}\.(?:[0-6][0-9]\.){4}[0-6][0-9]") \
                and L.m(r"\(version=([^ ]+) cipher=([^\)]+)\)"):
            v["auth"] = "GMail - transport=" + L[1] + " cipher=" + L[2]
        elif L.m(r"^from .*?(?:\]\)|\)\]) \(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5) \S+(?:, .*?)?\) by "):
            v["auth"] = L[1]
        elif L.m(r"authenticated") and L.m(r"^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by"):
            v["auth"] = "Sendmail"
        elif L.m(r"from \S* \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (mail\.gmx\.(?:net|com)) \([^\)]+\) with ((?:ESMTP|SMTP))"):
            v["auth"] = f"GMX ({L[4]} / {L[3]})"
        elif L.m(r" \(authenticated as ") and L.m(r"\) by .+ \(\d{1,2}\.\d\.\d{3}(?:\.\d{1,3})?\) \(authenticated as .+\) id "):
            v["auth"] = "CriticalPath"
        elif L.m(r"\) \(Authenticated sender: \S+\) by \S+ \(([^\)]+)\) with "):
            v["auth"] = L[1] if L[1] == "Postfix" else f"Postfix ({L[1]})"
        elif L.m(r"CommuniGate Pro (HTTP|SMTP|XIMSS|IMAP)") and L.m(r" \(account "):
            v["auth"] = "Communigate"
        elif L.m(r" with Microsoft Exchange Server HTTP-DAV\b"):
            v["auth"] = "HTTP-DAV"
        elif L.m(r" by ") and L.m(r" \(via (HTTP.?)\)(?: |;|$)", re.I):
            v["auth"] = L[1]

    def _set(self, v: dict, **kw) -> None:
        v.update(kw)
        raise _Enough

    def _body(self, L: _Line, v: dict):
        """The format table; raises _Enough when a format matched, returns 0
        to skip the line, None when it cannot be parsed, True to go on."""
        S = self._set
        if L.sub(r"^from ", ""):
            if L.m(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", re.I):
                v["envfrom"] = L[1]
            if L.m(r" \((?:SquirrelMail|NaSMail) authenticated user "):
                if L.m(r"(${IP})\b(?![.-]).{10,80}by (\S+) with HTTP"):
                    S(v, ip=L[1], by=L[2])
            if L.m(r"aol\.com") and L.m(r"with HTTP \(WebMailUI\)"):
                if L.m(r"(${IP}) by (\S+) \(${IP}\) with HTTP \(WebMailUI\)"):
                    S(v, ip=L[1], by=L[2])
            if L.m(r" SMTPSVC"):
                if L.m(r"^(\S*) \(\[(${IP})\][^\)]{0,40}\) by (\S+) with Microsoft SMTPSVC"):
                    S(v, helo=L[1], ip=L[2], by=L[3])
                if L.m(r"^mail pickup service by (\S+) with Microsoft SMTPSVC$"):
                    return 0
            elif L.m(r" with (?:Microsoft SMTP Server|mapi id) (?:\([^\)]+\) )?\d+\.\d+\.\d+\.\d+(?:$| )"):
                if L.m(r"^(\S+) \(\[?(${IP})(?:%[A-Z0-9._~-]*)?\]?\) by (\S+) "):
                    S(v, helo=L[1], ip=L[2], by=L[3], id="")
            elif L.m(r"\[XMail "):
                if L.m(r"^(\S+) \((\[?${IP}\]?)(?::\d+)\) by (\S+)(?: \(\S+\))? with \[XMail"):
                    helo, ip, by = L[1], L[2], L[3]
                    if L.m(r" id <(\S+)>"):
                        v["id"] = L[1]
                    if L.m(r" from <(\S+)>"):
                        v["envfrom"] = L[1]
                    S(v, helo=helo, ip=ip, by=by)
            elif L.m(r"\(ecelerity\b"):
                if L.m(r"^\(\[(${IP}):\d+\] helo=(\S+)\) by (\S+) "):
                    S(v, ip=L[1], helo=L[2], by=L[3])
                if L.m(r"^\S+ \(\[(${IP}):\d+\]\) by (\S+) "):
                    S(v, ip=L[1], by=L[2])
            elif L.m(r"Exim"):
                if L.m(r"\bwith local(?:-\S+)? "):
                    return 0
                if L.m(r"^\[(${IP})\] \((.*?)\) by (\S+) "):
                    ip, sub, by = L[1], L[2], L[3]
                    m = re.search(r"helo=(\S+)", sub, re.A)
                    if m:
                        v["helo"] = m.group(1)
                        sub = sub[:m.start()] + sub[m.end():]
                    m = re.search(r"ident=(\S*)", sub, re.A)
                    if m:
                        v["ident"] = m.group(1)
                    S(v, ip=ip, by=by)
                if L.m(r"^(\S+) \(\[(${IP})\](.*?)\) by (\S+) "):
                    rdns, ip, sub, by = L[1], L[2], L[3], L[4]
                    v["helo"] = rdns
                    m = re.search(r"helo=(\S+)", sub, re.A)
                    if m:
                        v["helo"] = m.group(1)
                        sub = sub[:m.start()] + sub[m.end():]
                    m = re.search(r"ident=(\S*)", sub, re.A)
                    if m:
                        v["ident"] = m.group(1)
                    S(v, rdns=rdns, ip=ip, by=by)
                if L.m(r"^(\S+) \[(${IP})\](:\d+)? by (\S+) "):
                    S(v, rdns=L[1], ip=L[2], helo=L[1], by=L[4])
                if L.m(r"^(\S+) "):
                    v["rdns"] = L[1]
                if L.m(r" \((\S+)\) "):
                    v["helo"] = L[1]
                if L.m(r" \[(${IP})(?:\.\d+)?\] "):
                    v["ip"] = L[1]
                if L.m(r"by (\S+) "):
                    v["by"] = L[1]
                    if v["ip"]:
                        raise _Enough
            elif L.m(r" \(Postfix\) with"):
                if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) "):
                    S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
                if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                    S(v, dns=True, helo=L[1], rdns="" if L[2] == "unknown" else L[2], ip=L[3], by=L[4])
            elif L.m(r"\(Scalix SMTP Relay"):
                if L.m(r"^(\S+) \( ?(${IP})\) by (\S+)"):
                    S(v, helo=L[1], ip=L[2], by=L[3])
            elif L.m(r" \(Lotus Domino "):
                if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \(Lotus"):
                    S(v, dns=False, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"\bwith HTTP\b") and L.m(r"^(${IP}) \(\[${IP}\]\) by (\S+)"):
                S(v, ip=L[1], by=L[2])
            if not L.m(r" by \S+ \(qmail-\S+\) with "):
                if L.m(r"^(\S+) \((\S+) \[(${IP})\].*\) by (\S+) \("):
                    helo, rdns, ip, by = L[1], L[2], L[3], L[4]
                    m = re.match(r"^IDENT:([^\@]*)\@", rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    m = re.match(r"^([^\@]*)\@", rdns)
                    if m:
                        v["ident"] = m.group(1)
                        rdns = rdns[m.end():]
                    S(v, dns=True, helo=helo, rdns=rdns, ip=ip, by=by)
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with \S+ \("):
                S(v, dns=True, rdns=L[2], ip=L[3], helo=L[1], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\] helo=(\S+)\) by (\S+) with "):
                S(v, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r"^(\S+) \(<unknown\S*>\[(${IP})\]\) by (\S+) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+\.\S+)\[(${IP})\]\) by (\S+) "):
                S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((\S*)\@\[(${IP})\].*\) by (\S+) \("):
                S(v, dns=True, helo=L[1], ip=L[3], by=L[4], ident=L[2])
            if L.m(r"by (\S+\.hotmail\.msn\.com) "):
                v["by"] = L[1]
                if L.m(r"^(${IP}) "):
                    v["ip"] = L[1]
                raise _Enough
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((${IP})\) by (\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)"):
                S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(LHLO (\S*)\) \((${IP})\) by (\S+) with LMTP"):
                S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \[(${IP})\] by (\S+) \([^\)]+\) with (?:ESMTP|SMTP)"):
                S(v, rdns=L[1], helo=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) via smtpd \(for \S+\) with SMTP\("):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+( \((?:HELO|EHLO) \S*\))? \((\S+\@)?\[?${IP}\]?\)( \(envelope-sender <\S+>\))? by \S+( \(.+\))* with (.* )?(SMTP|QMQP)(?! id )"):
                if L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ident=L[3], ip=L[4], by=L[6])
                elif L.m(r"^(\S+) \((?:HELO|EHLO) ([^ \(\)]*)\) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(rdns=L[1], helo=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \((\S*)\@\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ident=L[2], ip=L[3], by=L[5])
                elif L.m(r"^(\S+) \(\[?(${IP})\]?\)( \(envelope-sender <\S+>\))? by (\S+)"):
                    v.update(helo=L[1], rdns=L[1], ip=L[2], by=L[4])
                if v["rdns"] != "unknown":
                    v["dns"] = True
                else:
                    v["rdns"] = ""
                raise _Enough
            if L.m(r" via HTTP$") and L.m(r"^\[(${IP})\] by (\S+) via HTTP$"):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \( \[(${IP})\]\).*? by (\S+) "):
                S(v, ip=L[2], by=L[3])
            if L.m(r"^\((\S+) \[(${IP})\]\) by (\S+) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^\(\[?(${IP})\]?\) by (\S+) "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) \[${IP}\] with "):
                S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \[\((${IP})\)\] by (\S+) \(${IP}\) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \(\[(${IP})\]\) by (\S+) \("):
                S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\).*? by (\S+)\b"):
                if L[2] == "softdnserr":
                    v["dns"] = False
                else:
                    v["dns"] = True
                    v["rdns"] = L[2]
                S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \(\[(${IP})(?:[.:]\d+)?\]\).*? by (\S+) "):
                S(v, dns=True, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\)(?: \(authenticated bits=\d+\))? by (\S+) \("):
                S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"with (?:POP3|IMAP)"):
                self.pop_fetcher = True
                return 0
            if L.m(r"^(\S+) \((?:HELO|EHLO) ([^\)]*)\) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[3] if L[3] is not None else ""
                S(v, dns=True, rdns=L[1], helo=L[2], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[4], by=L[5])
            if L.m(r"^(\S+) \((\S*@)?\[?(${IP})\]?\).* by (\S+) "):
                ident = L[2] if L[2] is not None else ""
                S(v, dns=True, rdns=L[1], helo=L[1], ident=ident[:-1] if ident.endswith("@") else ident,
                  ip=L[3], by=L[4])
            if L.m(r" with http for ") and L.m(r"^\[(${IP})\] by (\S+) with http for "):
                S(v, ip=L[1], by=L[2])
            if L.m(r" via smap ") and L.m(r"^(\S+)\((${IP})\) by (\S+) via smap "):
                S(v, dns=True, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP}), (?:HELO|EHLO) (\S*)\) by (\S+) via smap "):
                S(v, dns=True, rdns=L[1], ip=L[2], helo=L[3], by=L[4])
            if L.m(r" \(Post") and L.m(r"^\[(${IP})\] by (\S+) \(Post"):
                S(v, ip=L[1], by=L[2])
            if L.m(r" \(ArGoSoft") and L.m(r"^\[(${IP})\] by (\S+) \(ArGoSoft"):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^(${IP}) by (\S+) \((?:SMTPL|InterScan)\b"):
                S(v, ip=L[1], by=L[2])
            if L.m(r" with BSMTP") and L.m(r"^\S+ by \S+ with BSMTP"):
                return 0
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) by (\S+) with "):
                S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((?:(\S+)\@)?(${IP}).*?\) by (\S+) with "):
                if L[3] is not None:
                    v["ident"] = L[3]
                S(v, dns=True, rdns=L[1], helo=L[2], ip=L[4], by=L[5])
            if L.m(r"^\[(${IP})\] \((?:account \S+ )?(?:HELO|EHLO) (\S*)\) by (\S+) \("):
                S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r" \(CommuniGate Pro") and L.m(r"^(\S+) \(\[(${IP})\] verified\) by (\S+) \("):
                S(v, dns=True, rdns=L[1], helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\(\[(${IP})\]\) by (\S+) with "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^([^\d]\S+) \((${IP})\) by (\S+) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+ \(\S+\) by \S+ \(Content Technologies "):
                return 0
            if L.m(r"^(\S+) \(\[(${IP})\] \[(\S+)\]\) by (\S+) with "):
                S(v, helo=L[1], ip=L[2], by=L[4])
            if L.m(r"^(${IP}) by (\S+) with "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \((\S+)\[(${IP})\]\) by (\S+) "):
                S(v, dns=True, helo=L[1], rdns=L[2], ip=L[3], by=L[4])
            if L.m(r"^\[(${IP})\]\S+ \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(${IP}) \((?:HELO|EHLO) (\S*)\) by (\S+) "):
                S(v, ip=L[1], helo=L[2], by=L[3])
            if L.m(r"^(\S+) \[(${IP})\] by (\S+) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\) by (\S+) "):
                S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^\[(${IP})\] by (\S+) \(MailGate "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^(\S+) \(unverified \[(${IP})\]\) by (\S+) "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^(${IP}) \([A-Za-z][^\)]+\) by (\S+) with "):
                S(v, ip=L[1], by=L[2])
            if L.m(r"^\[(${IP})\] \(([^\)]+)\) by (\S+) "):
                ip, sub, by = L[1], L[2], L[3]
                m = re.search(r"helo=(\S+)", sub, re.A)
                if m:
                    v["helo"] = m.group(1)
                    sub = sub[:m.start()] + sub[m.end():]
                m = re.search(r"ident=(\S*)", sub, re.A)
                if m:
                    v["ident"] = m.group(1)
                S(v, ip=ip, by=by)
            if L.m(r"^(\S+) \((?:\S+\@)?(${IP})\) by (\S+) with "):
                S(v, rdns=L[1], ip=L[2], by=L[3])
            if L.m(r"^(\S+)\((${IP})\)(?:, claiming to be \"(\S+)\")? via \S+ by (\S+),"):
                v.update(rdns=L[1], ip=L[2], helo=L[3] if L[3] is not None else "", by=L[4])
                if L[1] != "UNKNOWN":
                    v["dns"] = True
                raise _Enough
            if L.m(r"^(\S+) \((\S+)@(${IP}) with login\) by (\S+\.yahoo\.com) with SMTP"):
                S(v, helo=L[1], ip=L[3], by=L[4])
            if L.m(r"^X-Originating-IP: (${IP})$"):
                S(v, ip=L[1], by="")
            # stuff to ignore
            for pat in (r"^\S+ \([^\s\@]+\@${LOCALHOST}\) by \S+ \(",
                        r"^\S+ \S+ by \S+ with local-e?smtp ",
                        r"^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)",
                        r"^\S+\@\S+ by \S+ by uid \S+ ",
                        r"^\S+\@\S+ by \S+ ",
                        r"^Unknown/Local \(",
                        r"^${LOCALHOST} \((?:\S+\@)?${LOCALHOST}[\)\[]",
                        r"^\S+ \((?:\S+\@)?${LOCALHOST}\) ",
                        r"^\S+ \(\S+\@\S+ \[${LOCALHOST}\]\) ",
                        r"^\(AUTH: \S+\) by \S+ with ",
                        r"^localhost \(localhost \[\[UNIX: localhost\]\]\) by ",
                        r"^\S+\.amazon\.com by \S+\.amazon\.com with ESMTP \(peer crosscheck: ",
                        r"^[^\.]+ by \S+ with Novell_GroupWise",
                        r"^no\.name\.available by \S+ via smtpd \(for "):
                if L.m(pat):
                    return 0
            if L.m(r"^\S+ by \S+ \(.{0,100}\) with qmail-scanner"):
                env = v["envfrom"]
                if env is not None:
                    env = re.sub(r"^\s*<*", "", env)
                    env = re.sub(r">*\s*$", "", env)
                    env = re.sub(r"[\s\000\#\[\]\(\)\<\>\|]", "!", env)
                self.qmail_scanner_env_from = env
                return 0
            for pat in (r"^\S+ by \S+ with local",
                        r"^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA",
                        r"^\S+ by \S+ (?:with|via|for|\()",
                        r"^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b",
                        r"^\S+ \(unknown\) by \S+ \(SG\) with \b",
                        r"^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b",
                        r"\(LSMTP for",
                        r"^\(\[${LOCALHOST}\]\) with MailEnable ",
                        r"^facebook\.com \([^\)]+\) by facebook\.com with Thrift id \S+$",
                        r"^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$",
                        r"^\S+ id \S+$",
                        r"^\[<.*? \(Jetsend"):
                if L.m(pat):
                    return 0
            if not v["helo"] and L.m(r"^(\S+)[^-A-Za-z0-9\.]"):
                v["helo"] = L[1]
        elif L.sub(r"^FROM ", ""):
            if L.m(r"^(\S+) \((\S+) \[(${IP})\]\) BY (\S+) (?:\([^\)]+\) WITH SMTP )?ID <?(\S+?)>?(?: FOR <[^>]+>)?$"):
                S(v, dns=True, helo=L[1], rdns="" if L[2] == "unverified" else L[2], ip=L[3], by=L[4], id=L[5])
        elif L.sub(r"^\(from ", ""):
            if L.m(r"^(\S*) \[(${IP})\]\) by (\S+) \(NAVGW .*?\) with "):
                S(v, helo=L[1], ip=L[2], by=L[3])
            if L.m(r"^\S+\@localhost\) by \S+ "):
                return 0
            if L.m(r"^[^\s\@]+\@[^)]+\) by \S+\(jqueuemail\) id [^\s;]+"):
                return 0
        if not v["ip"] and L.m(r"\[(${IP})\]"):
            v["ip"] = L[1]
        if v["ip"] and v["by"]:
            raise _Enough
        return None

    def _enough(self, v: dict) -> Relay:
        strip = re.compile(r"[\s\000\#\[\]\(\)\<\>\|]", re.A)
        rdns = re.sub(r"\.+\Z", "", v["rdns"] or "")
        if re.match(r"^unknown$", rdns, re.I) or rdns.startswith("["):
            rdns = ""
        ip = v["ip"] or ""
        ip = re.sub(r"^ipv6:", "", ip, flags=re.I)
        ip = re.sub(r"^\[", "", ip)
        ip = re.sub(r"\]\Z", "", ip)
        ip = re.sub(r"%[A-Z0-9._~-]*\Z", "", ip, flags=re.I | re.S)
        ip = re.sub(r"^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$", r"\1", ip, flags=re.I | re.A)
        by = re.sub(r";$", "", v["by"] or "")
        ip = strip.sub("!", ip)
        rdns = strip.sub("!", rdns)
        helo = strip.sub("!", v["helo"] or "")
        by = strip.sub("!", by)
        ident = strip.sub("!", v["ident"] or "")
        env = v["envfrom"]
        if env is not None:
            env = re.sub(r"^\s*<*", "", env, flags=re.A)
            env = re.sub(r">*\s*$", "", env, flags=re.A)
            env = strip.sub("!", env)
        r = Relay(ip=ip, by=by, helo=helo, id=v["id"] or "", ident=ident, envfrom=env,
                  auth=v["auth"] or "")
        if rdns == "":
            if v["dns"]:
                r.no_reverse_dns = True
            else:
                r.rdns_not_in_headers = True
        r.rdns = rdns
        r.make_string()
        r.ip_private = IP_PRIVATE.search(ip) is not None
        return r


def parse_relays(received: list[str], originating: list[str] | None = None,
                 trusted_networks: list[str] | None = None,
                 internal_networks: list[str] | None = None,
                 msa_networks: list[str] | None = None) -> Relays:
    """Metadata::parse_received_headers.  `received`: the Received values
    (decoded, unfolded, top first); `originating`: the values of the
    originating-IP headers, in originating_ip_headers order."""
    out = Relays()
    trusted = NetSet(trusted_networks or [])
    internal = NetSet(internal_networks or [])
    msa = NetSet(msa_networks or [])
    user_trust = bool(trusted_networks)
    user_internal = bool(internal_networks)
    if user_trust != user_internal:
        if not user_internal:
            internal = trusted
        else:
            trusted = internal
    in_trusted = in_internal = True
    found_msa = False
    allow_fetch = True
    lines = list(received)
    for val in originating or []:
        m = re.search("(" + IP + ")", val, re.A)
        if val and m:
            lines.append(f"from X-Originating-IP: {m.group(1)}\n")
    p = _Parser()
    for line in lines:
        qms = p.qmail_scanner_env_from
        p.qmail_scanner_env_from = None
        line = re.sub(r"\n[ \t]+", " ", line)
        p.pop_fetcher = False
        relay = p.parse_line(line)
        if p.pop_fetcher:
            if allow_fetch:
                out.trusted, out.internal, out.external = [], [], []
        if relay is None:
            out.num_unparseable += 1
        if not relay:
            if in_trusted:
                out.last_trusted_index += 1
            if in_internal:
                out.last_internal_index += 1
            continue
        if qms:
            relay.envfrom = qms
            relay.make_string()
        if in_trusted and not found_msa:
            if not (user_trust or user_internal):
                if not (relay.ip_private or relay.auth):
                    in_trusted = in_internal = False
            else:
                if not relay.auth and not trusted.contains_ip(relay.ip):
                    in_trusted = False
                    in_internal = False
                else:
                    if in_internal and not relay.auth and not internal.contains_ip(relay.ip):
                        in_internal = False
                    if msa.contains_ip(relay.ip):
                        found_msa = True
                        relay.msa = True
        relay.internal = in_internal
        relay.as_string = re.sub(r" intl=\d ", f" intl={int(relay.internal)} ", relay.as_string, count=1)
        relay.as_string = re.sub(r" msa=\d ", f" msa={int(relay.msa)} ", relay.as_string, count=1)
        if in_trusted:
            out.trusted.append(relay)
            allow_fetch = True
            out.last_trusted_index += 1
        else:
            out.untrusted.append(relay)
            allow_fetch = False
        if in_internal:
            out.internal.append(relay)
            out.last_internal_index += 1
        else:
            out.external.append(relay)
    return out
