"""Test DNS data and SMTP scenarios for the DNS-based restrictions.

Shared by record_postfix_dns.py (which plays them against a real Postfix
3.7 whose system resolver points at the same nsd, inside a private network
namespace) and test_dns_postfix_fixture.py (which plays them against
postier and compares with the recording).

`ZONES` are served by nsd; names under `DROP` are sent by the SplitProxy to
a nameserver that never answers (timeouts).  Client addresses: XCLIENT
claims 192.0.2.x / 2001:db8::x for the DNS list tests; the FCrDNS tests
connect from real loopback source addresses 127.0.0.11 ... 127.0.0.17,
whose PTR records live in 0.0.127.in-addr.arpa.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOA = "@ IN SOA ns.dns.test. hostmaster.dns.test. ( {serial} 3600 600 86400 60 )\n@ IN NS ns.dns.test.\n"


def _zone(body: str, serial: int = 1) -> str:
    return SOA.format(serial=serial) + body


#: The seed's 2005 lab table, verbatim (check_recipient_mx_access / check_sender_mx_access).
MX_ACCESS = """\
0.0.0.0/8       REJECT Domain MX in broadcast network
10.0.0.0/8      REJECT Domain MX in RFC 1918 private network
127.0.0.0/8     REJECT Domain MX in loopback network
169.254.0.0/16  REJECT Domain MX in link local network
172.16.0.0/12   REJECT Domain MX in RFC 1918 private network
192.0.2.0/24    REJECT Domain MX in TEST-NET network
192.168.0.0/16  REJECT Domain MX in RFC 1918 private network
224.0.0.0/4     REJECT Domain MX in class D multicast network
240.0.0.0/5     REJECT Domain MX in class E reserved network
248.0.0.0/5     REJECT Domain MX in IANA reserved network
"""

V6_LISTED = "2001:db8::2"
_V6_NIBBLES = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"

ZONES: dict[str, str] = {
    # DNS block list (RFC 5782 test point 127.0.0.2, clients in 192.0.2.0/24)
    "bl.test": _zone(f"""\
ns IN A 127.0.0.1
2.0.0.127 IN A 127.0.0.2
2.0.0.127 IN TXT "127.0.0.2 is listed in bl.test (test entry)"
2.2.0.192 IN A 127.0.0.2
2.2.0.192 IN TXT "Listed: 192.0.2.2 sent spam, see https://bl.test/q?192.0.2.2"
3.2.0.192 IN A 127.0.0.10
3.2.0.192 IN TXT "code 10 listing"
4.2.0.192 IN A 127.0.0.2
5.2.0.192 IN A 127.0.0.2
5.2.0.192 IN TXT "first part"
5.2.0.192 IN TXT "second part"
6.2.0.192 IN A 127.0.0.3
6.2.0.192 IN A 127.0.0.11
6.2.0.192 IN TXT "two codes"
{_V6_NIBBLES} IN A 127.0.0.2
{_V6_NIBBLES} IN TXT "IPv6 client listed"
"""),
    "bl2.test": _zone("""\
2.2.0.192 IN A 127.0.0.2
2.2.0.192 IN TXT "bl2 has it too"
7.2.0.192 IN A 127.0.0.2
7.2.0.192 IN TXT "only in bl2"
"""),
    "wl.test": _zone("""\
20.2.0.192 IN A 127.0.10.1
"""),
    "rhsbl.test": _zone("""\
spammer.example.net IN A 127.0.0.2
spammer.example.net IN TXT "spammer domain"
badhelo.example.net IN A 127.0.0.2
badhelo.example.net IN TXT "bad helo name"
listed-client.example.net IN A 127.0.0.2
listed-client.example.net IN TXT "listed client name"
blocked-rcpt.example.net IN A 127.0.0.2
"""),
    "rhswl.test": _zone("""\
friendly.example.net IN A 127.0.0.2
"""),
    "example.test": _zone("""\
@ IN MX 10 mx.example.test.
mx IN A 198.51.100.10
"""),
    "dns.test": _zone("""\
ns IN A 127.0.0.1
good IN MX 10 mx.good.dns.test.
mx.good IN A 198.51.100.25
private-mx IN MX 10 mx.private-mx.dns.test.
mx.private-mx IN A 10.1.2.3
loop-mx IN MX 10 mx.loop-mx.dns.test.
mx.loop-mx IN A 127.0.0.1
testnet-mx IN MX 10 mx.testnet-mx.dns.test.
mx.testnet-mx IN A 192.0.2.25
mixed-mx IN MX 10 mx1.mixed-mx.dns.test.
mixed-mx IN MX 20 mx2.mixed-mx.dns.test.
mx1.mixed-mx IN A 198.51.100.26
mx2.mixed-mx IN A 172.16.5.5
only-a IN A 198.51.100.30
only-a-private IN A 192.168.7.7
txt-only IN TXT "no mail here"
nullmx IN MX 0 .
mx-noaddr IN MX 10 nowhere.dns.test.
mx-numeric IN MX 10 10.0.0.5.
mx-malformed IN MX 10 bad!name.dns.test.
slow-mx IN MX 10 mx.slow.test.
helo-a IN A 198.51.100.40
helo-mx IN MX 10 mx.good.dns.test.
helo-aaaa IN AAAA 2001:db8::40
fcrdns-ok IN A 127.0.0.11
fcrdns-bad IN A 127.0.0.99
backup IN MX 10 mx.good.dns.test.
backup IN MX 20 mx.example.test.
backup-addr IN MX 10 mx.good.dns.test.
backup-addr IN MX 20 backup-mx.dns.test.
backup-mx IN A 127.0.0.1
backup-private IN MX 10 mx.private-mx.dns.test.
backup-private IN MX 20 mx.example.test.
primary IN MX 10 mx.example.test.
primary IN MX 20 mx.good.dns.test.
"""),
    "ns-private.test": """\
@ IN SOA ns1.ns-private.test. hostmaster.dns.test. ( 1 3600 600 86400 60 )
@ IN NS ns1.ns-private.test.
ns1 IN A 10.0.0.53
www IN A 198.51.100.80
""",
    "0.0.127.in-addr.arpa": _zone("""\
11 IN PTR fcrdns-ok.dns.test.
12 IN PTR fcrdns-bad.dns.test.
14 IN PTR nxname.dns.test.
15 IN PTR fcrdns.slow.test.
17 IN PTR 1.2.3.4.
"""),
}

#: Names that only the blackhole "serves": every query for them times out.
DROP = ("slow.test", "slowbl.test", "16.0.0.127.in-addr.arpa")

#: Resolver timeouts on both sides: glibc `options timeout:1 attempts:1`,
#: postier dns_timeout = 1s, dns_tries = 1.
TIMEOUT = 1

EHLO = "EHLO client.example.net"
MAIL = "MAIL FROM:<sender@example.net>"
RCPT = "RCPT TO:<u@example.test>"


@dataclass
class Session:
    steps: list[str]
    xclient: dict[str, str] | None = None      # XCLIENT attributes (sent first)
    source: str | None = None                  # client source address (real peer lookup)


@dataclass
class Scenario:
    id: str
    main_cf: dict[str, str]
    sessions: list[Session]
    tables: dict[str, tuple[str, str]] = field(default_factory=dict)
    keep_connect: bool = False                  # compare "connect from" lines too


def xc(addr: str, name: str = "[UNAVAILABLE]", **more: str) -> dict[str, str]:
    return {"ADDR": addr, "NAME": name, **more}


def simple(*addrs: str, steps: list[str] | None = None) -> list[Session]:
    return [Session(steps or [EHLO, MAIL, RCPT], xclient=xc(a)) for a in addrs]


BASE = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_relay_restrictions": "",
    "smtpd_recipient_restrictions": "reject_unauth_destination",
}

SCENARIOS: list[Scenario] = [
    Scenario("rbl_client", {
        "smtpd_recipient_restrictions":
            "reject_rbl_client bl.test, reject_rbl_client bl2.test, reject_unauth_destination"},
        simple("192.0.2.2", "192.0.2.7", "192.0.2.4", "192.0.2.5", "192.0.2.9", "127.0.0.2",
               "IPV6:" + V6_LISTED)),
    Scenario("rbl_filter", {
        "smtpd_recipient_restrictions":
            "reject_rbl_client bl.test=127.0.0.10, reject_rbl_client bl.test=127.0.0.[2..3], "
            "reject_unauth_destination"},
        simple("192.0.2.3", "192.0.2.6", "192.0.2.2", "192.0.2.9")),
    Scenario("rbl_reply_maps", {
        "maps_rbl_reject_code": "550",
        "rbl_reply_maps": "texthash:@TABLES@/rbl_reply",
        "smtpd_recipient_restrictions":
            "reject_rbl_client bl.test=127.0.0.10, reject_rbl_client bl2.test, "
            "reject_rbl_client bl.test, reject_unauth_destination"},
        simple("192.0.2.2", "192.0.2.7", "192.0.2.3", "192.0.2.4"),
        tables={"rbl_reply": ("texthash",
                              "bl.test $rbl_code 5.7.2 Blocked: $client_address at $rbl_domain "
                              "(${rbl_reason?$rbl_reason:no reason}) helo=$helo_name "
                              "from=<$sender> to=<$recipient_name at $recipient_domain> "
                              "$rbl_class/$rbl_what\n"
                              "bl2.test 451 4.7.1 try later $client\n"
                              "bl.test=127.0.0.10 no code here\n")}),
    Scenario("default_rbl_reply", {
        "default_rbl_reply": "$rbl_code 5.7.9 Go away: [$rbl_what] in $rbl_domain${rbl_reason?: "
                             "$rbl_reason}",
        "smtpd_recipient_restrictions": "reject_rbl_client bl.test, reject_unauth_destination"},
        simple("192.0.2.2", "192.0.2.4")),
    Scenario("rbl_timeout", {
        "smtpd_recipient_restrictions":
            "reject_rbl_client slowbl.test, reject_rbl_client bl.test, reject_unauth_destination"},
        simple("192.0.2.2", "192.0.2.9")),
    Scenario("rhsbl", {
        "smtpd_recipient_restrictions":
            "reject_rhsbl_helo rhsbl.test, reject_rhsbl_sender rhsbl.test, "
            "reject_rhsbl_client rhsbl.test, reject_rhsbl_recipient rhsbl.test, "
            "reject_unauth_destination"},
        [Session(["EHLO badhelo.example.net", MAIL, RCPT], xclient=xc("192.0.2.9")),
         Session([EHLO, "MAIL FROM:<x@spammer.example.net>", RCPT], xclient=xc("192.0.2.9")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.9", "listed-client.example.net")),
         Session([EHLO, MAIL, "RCPT TO:<x@blocked-rcpt.example.net>"], xclient=xc("192.0.2.9")),
         Session([EHLO, "MAIL FROM:<x@[192.0.2.1]>", RCPT], xclient=xc("192.0.2.9")),
         Session([EHLO, "MAIL FROM:<>", RCPT], xclient=xc("192.0.2.9"))]),
    Scenario("dnswl", {
        "smtpd_recipient_restrictions":
            "permit_dnswl_client wl.test, permit_rhswl_client rhswl.test, "
            "reject_rbl_client bl.test, reject_unauth_destination"},
        [Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.20")),
         Session([EHLO, MAIL, "RCPT TO:<x@elsewhere.example.net>"], xclient=xc("192.0.2.20")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.2", "friendly.example.net")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.2"))]),
    Scenario("dnswl_timeout", {
        "smtpd_recipient_restrictions": "permit_dnswl_client slowbl.test, reject"},
        simple("192.0.2.9")),
    Scenario("unknown_helo", {
        "smtpd_helo_restrictions": "reject_unknown_helo_hostname"},
        [Session([f"EHLO {h}", MAIL, RCPT], xclient=xc("192.0.2.9")) for h in (
            "helo-a.dns.test", "helo-mx.dns.test", "helo-aaaa.dns.test", "nx.dns.test",
            "txt-only.dns.test", "nullmx.dns.test", "x.slow.test", "[192.0.2.1]",
            "helo-a.dns.test.", "UPPER.helo-a.dns.test")]),
    Scenario("unknown_helo_defer", {
        "unknown_helo_hostname_tempfail_action": "defer",
        "smtpd_helo_restrictions": "reject_unknown_helo_hostname"},
        [Session(["EHLO x.slow.test", MAIL, RCPT], xclient=xc("192.0.2.9"))]),
    Scenario("unknown_sender", {
        "smtpd_sender_restrictions": "reject_unknown_sender_domain"},
        [Session([EHLO, f"MAIL FROM:<x@{d}>", RCPT], xclient=xc("192.0.2.9")) for d in (
            "good.dns.test", "only-a.dns.test", "txt-only.dns.test", "nx.dns.test",
            "nullmx.dns.test", "mx-malformed.dns.test", "slow.test", "[192.0.2.1]")]),
    Scenario("unknown_recipient", {
        "smtpd_recipient_restrictions":
            "reject_unknown_recipient_domain, reject_unauth_destination"},
        [Session([EHLO, MAIL, f"RCPT TO:<x@{d}>"], xclient=xc("192.0.2.9")) for d in (
            "nx.dns.test", "nullmx.dns.test", "txt-only.dns.test", "slow.test",
            "good.dns.test")]),
    Scenario("unknown_address_defer", {
        "unknown_address_tempfail_action": "defer",
        "smtpd_sender_restrictions": "reject_unknown_sender_domain"},
        [Session([EHLO, "MAIL FROM:<x@slow.test>", RCPT], xclient=xc("192.0.2.9"))]),
    Scenario("mx_access", {
        "smtpd_sender_restrictions": "check_sender_mx_access cidr:@TABLES@/mx_access",
        "smtpd_recipient_restrictions":
            "check_recipient_mx_access cidr:@TABLES@/mx_access, reject_unauth_destination"},
        [Session([EHLO, f"MAIL FROM:<x@{d}>", RCPT], xclient=xc("192.0.2.9")) for d in (
            "private-mx.dns.test", "loop-mx.dns.test", "testnet-mx.dns.test",
            "mixed-mx.dns.test", "only-a-private.dns.test", "only-a.dns.test",
            "good.dns.test", "nx.dns.test", "mx-noaddr.dns.test", "mx-numeric.dns.test",
            "nullmx.dns.test", "[10.1.1.1]", "slow-mx.dns.test", "slow.test")]
        + [Session([EHLO, MAIL, "RCPT TO:<x@private-mx.dns.test>"], xclient=xc("192.0.2.9"))],
        tables={"mx_access": ("cidr", MX_ACCESS)}),
    Scenario("mx_access_ok_forbidden", {
        "smtpd_sender_restrictions": "check_sender_mx_access cidr:@TABLES@/mx_ok"},
        [Session([EHLO, "MAIL FROM:<x@good.dns.test>", RCPT], xclient=xc("192.0.2.9"))],
        tables={"mx_ok": ("cidr", "198.51.100.0/24 OK\n")}),
    Scenario("ns_a_access", {
        "smtpd_helo_restrictions": "check_helo_a_access cidr:@TABLES@/mx_access",
        "smtpd_sender_restrictions": "check_sender_ns_access cidr:@TABLES@/mx_access"},
        [Session([EHLO, "MAIL FROM:<x@www.ns-private.test>", RCPT], xclient=xc("192.0.2.9")),
         Session([EHLO, "MAIL FROM:<x@ns-private.test>", RCPT], xclient=xc("192.0.2.9")),
         Session(["EHLO only-a-private.dns.test", MAIL, RCPT], xclient=xc("192.0.2.9")),
         Session(["EHLO helo-a.dns.test", MAIL, RCPT], xclient=xc("192.0.2.9"))],
        tables={"mx_access": ("cidr", MX_ACCESS)}),
    Scenario("client_mx_ns_a_access", {
        "smtpd_client_restrictions":
            "check_client_a_access cidr:@TABLES@/mx_access, "
            "check_client_mx_access cidr:@TABLES@/mx_access, "
            "check_reverse_client_hostname_ns_access cidr:@TABLES@/mx_access"},
        [Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.9", "only-a-private.dns.test")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.9", "private-mx.dns.test")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.9", "[UNAVAILABLE]",
                                                 REVERSE_NAME="www.ns-private.test")),
         Session([EHLO, MAIL, RCPT], xclient=xc("192.0.2.9", "good.dns.test"))],
        tables={"mx_access": ("cidr", MX_ACCESS)}),
    Scenario("unknown_client", {
        "smtpd_recipient_restrictions": "reject_unknown_client_hostname, reject_unauth_destination"},
        [Session([EHLO, MAIL, RCPT], source=f"127.0.0.{n}") for n in range(11, 18)],
        keep_connect=True),
    Scenario("unknown_reverse_client", {
        "smtpd_recipient_restrictions":
            "reject_unknown_reverse_client_hostname, reject_unauth_destination"},
        [Session([EHLO, MAIL, RCPT], source=f"127.0.0.{n}") for n in (11, 12, 13, 16)],
        keep_connect=True),
    Scenario("permit_mx_backup", {
        "smtpd_recipient_restrictions": "permit_mx_backup, reject_unauth_destination"},
        [Session([EHLO, MAIL, f"RCPT TO:<x@{d}>"], xclient=xc("192.0.2.9")) for d in (
            "backup.dns.test", "backup-addr.dns.test", "primary.dns.test", "good.dns.test",
            "slow.test")]),
    Scenario("permit_mx_backup_networks", {
        "permit_mx_backup_networks": "198.51.100.0/24",
        "smtpd_recipient_restrictions": "permit_mx_backup, reject_unauth_destination"},
        [Session([EHLO, MAIL, f"RCPT TO:<x@{d}>"], xclient=xc("192.0.2.9")) for d in (
            "backup.dns.test", "backup-private.dns.test")]),
]

SCENARIO_IDS = [s.id for s in SCENARIOS]


def main_cf(s: Scenario) -> dict[str, str]:
    return {**BASE, **s.main_cf}


# --------------------------------------------------------------------------- logs

_SKIP = ("disconnect from", "lost connection", "improper command pipelining",
         "using backwards-compatible default setting", "NOQUEUE: filter")


def normalize_log(text: str, *, keep_connect: bool = False) -> list[str]:
    """The smtpd lines of a maillog, without timestamp/host/program[pid], for
    comparison: 'connect from' only when `keep_connect`, and no queue IDs."""
    import re
    out = []
    for line in text.splitlines():
        m = re.search(r" (?:postfix|postier)/smtpd\[\d+\]: (.*)$", line)
        if m is None:
            continue
        msg = m.group(1)
        if any(k in msg for k in _SKIP):
            continue
        if msg.startswith("connect from") and not keep_connect:
            continue
        if re.match(r"[0-9A-F]{6,}: client=", msg) or re.match(r"[0-9A-Za-z]{10,}: client=", msg):
            continue
        out.append(msg)
    return out


# --------------------------------------------------------------------------- SMTP

def run_session(port: int, session: Session, *, timeout: float = 30) -> list[str]:
    """Banner, XCLIENT (if any), the steps and QUIT, on 127.0.0.1:port from
    `session.source`; every reply as 'CODE text' lines joined with \\n."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(session.source, 0) if session.source else None)
    f = sock.makefile("rb")

    def reply() -> str:
        lines = []
        while True:
            raw = f.readline()
            if not raw:
                return "\n".join(lines) if lines else "(closed)"
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(text: str) -> str:
        sock.sendall(text.encode() + b"\r\n")
        return reply()

    try:
        out = [reply()]
        steps = list(session.steps) + ["QUIT"]
        if session.xclient:
            steps.insert(0, "XCLIENT " + " ".join(f"{k}={v}" for k, v in session.xclient.items()))
        for step in steps:
            r = cmd(step)
            out.append(r)
            if r == "(closed)" or r[:3] in ("221", "421"):
                break
        return out
    finally:
        f.close()
        sock.close()
