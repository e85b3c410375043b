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

The format table runs in postier._native.spamrcvd (twin: postier._pure.
spamrcvd): each of its ~160 patterns is compiled once (the first parse)
together with the literal text and line prefix any match needs, so most
formats are ruled out by a substring test instead of a regex search; the
fields of a parsed line are cleaned up and its relay string made there too
(relay_fields); most lines go through about 20 of the table's tests (gates
skip the groups of formats whose literals a line lacks) and run one or two
regex searches.  The walk over the lines (each line parsed, its Relay made
from relay_fields' tuple and placed by the trust decisions, the intl/msa
patches of its string) is _rcvd.fill_relays, compiled like the table.
trusted/internal/msa networks are parsed once per distinct setting
(_netset), and not looked up at all when neither trusted_networks nor
internal_networks is set (the walk then reads none); a relay string is
patched for intl/msa only when the patch changes it.

Parameters read: none (the engine passes SpamAssassin's trusted_networks,
internal_networks, msa_networks and originating_ip_headers settings).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from postier import native
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

_rcvd = native.load("spamrcvd")

# pattern (or (pattern, flags)) -> _rcvd.compile_entry's tuple, shared by every Line
_cache: dict = {}


def _compile_entry(p: str, flags: int = 0) -> tuple:
    return _rcvd.compile_entry(p, int(flags) | _AS, _MACROS)


_AS = int(re.A | re.S)
_MACROS = {"${IP}": IP, "${LOCALHOST}": LOCALHOST}
_warm = False


def _compile_all() -> None:
    """Compile every pattern of the format table once (the first parse)."""
    global _warm
    _warm = True
    try:
        pats = _rcvd.parser_patterns()
    except (OSError, TypeError, SyntaxError):   # no source to read: compile as they come
        return
    for pat, flags in pats:
        _rx(pat, flags)


def _rx(p: str, flags: int = 0) -> re.Pattern:
    key = (p, flags) if flags else p
    e = _cache.get(key)
    if e is None:
        e = _cache[key] = _compile_entry(p, flags)
    return e[0]


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


_PRIVATE: dict[str, bool] = {}      # IP_PRIVATE's answer by address, across messages


_IP_SEARCH = re.compile("(" + IP + ")").search


_NETSETS: dict[tuple, NetSet] = {}     # NetSet by its specs, across messages
_NO_NETS = NetSet([])


def _netset(specs: list[str] | None) -> NetSet:
    """NetSet(specs), parsed once per distinct list (the rule set's settings)."""
    key = tuple(specs or ())
    got = _NETSETS.get(key)
    if got is None:
        if len(_NETSETS) > 64:
            _NETSETS.clear()
        got = _NETSETS[key] = NetSet(list(key))
    return got


def parse_relays(received: list[str], originating: list[str] | None = None,
                 trusted_networks: list[str] | None = None,
                 internal_networks: list[str] | None = None,
                 msa_networks: list[str] | None = None) -> Relays:
    """Metadata::parse_received_headers.  `received`: the Received values
    (decoded, unfolded, top first; a trailing newline or not, the same
    relays: a line's whitespace is collapsed and stripped, and a line
    without tabs, newlines or double spaces skips that pass); `originating`:
    the values of the originating-IP headers, in originating_ip_headers order."""
    if not _warm:
        _compile_all()
    out = Relays()
    user_trust = bool(trusted_networks)
    user_internal = bool(internal_networks)
    # (fill_relays reads the network sets only when some are configured)
    trusted = internal = msa = _NO_NETS
    if user_trust or user_internal:
        trusted = _netset(trusted_networks)
        internal = _netset(internal_networks)
        msa = _netset(msa_networks)
        if user_trust != user_internal:
            if not user_internal:
                internal = trusted
            else:
                trusted = internal
    lines = received
    for val in originating or ():
        if val:             # (the engine passes one value per header, most empty)
            m = _IP_SEARCH(val)
            if m:
                if lines is received:
                    lines = list(received)
                lines.append(f"from X-Originating-IP: {m.group(1)}")
    # the walk over the lines runs in _rcvd.fill_relays: each line parsed,
    # its fields cleaned up and relay string made (relay_fields), a Relay
    # made of them and placed in out's lists by the trust decisions
    _rcvd.fill_relays(out, lines, _rcvd.Parser(_cache, _compile_entry), Relay, _PRIVATE,
                      IP_PRIVATE.search, trusted, internal, msa, user_trust or user_internal)
    return out
