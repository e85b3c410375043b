"""The DNS-based restrictions (postier.smtpd.dnschecks) inside the real
restriction engine, with DNS answers from a fake backend.

Expected replies follow what real Postfix 3.7 answered for the same
situations (tests/integration/dns/postfix_dns.json, recorded with
record_postfix_dns.py); these tests pin the corner cases one at a time and
check the pre-fetching and concurrency that Postfix does not have."""

from __future__ import annotations

import asyncio

import pytest
from dns_fakes import resolver

from postier import dns
from postier.config import Config
from postier.smtpd.dnschecks import (
    DnsChecks,
    IpMatch,
    c_unescape,
    dnsxl_addr_query,
    dnsxl_domain_query,
)
from postier.smtpd.restrictions import RestrictionEngine
from postier.smtpd.state import Client, SessionState

OK, NF, RETRY = dns.OK, dns.NOTFOUND, dns.RETRY
BASE = {
    "compatibility_level": "3.6",
    "myhostname": "mx.example.test",
    "mydomain": "example.test",
    "mydestination": "$myhostname, $mydomain",
    "mynetworks": "127.0.0.1/32",
    "inet_interfaces": "127.0.0.1",
    "local_recipient_maps": "",
    "smtpd_relay_restrictions": "",
    "smtpd_recipient_restrictions": "reject_unauth_destination",
}
MX_ACCESS = ("10.0.0.0/8 REJECT Domain MX in RFC 1918 private network\n"
             "127.0.0.0/8 REJECT Domain MX in loopback network\n"
             "192.0.2.0/24 REJECT Domain MX in TEST-NET network\n")


def make(tmp_path, main_cf, answers, tables=None, delay=0.0, **settings):
    tdir = tmp_path / "tables"
    tdir.mkdir(exist_ok=True)
    for name, text in (tables or {}).items():
        (tdir / name).write_text(text)
    params = {**BASE, **main_cf}
    text = "".join(f"{k} = {v.replace('@TABLES@', str(tdir))}\n" for k, v in params.items())
    engine = RestrictionEngine(Config.from_text(text), own_addresses_=["127.0.0.1"])
    r, be = resolver(answers, delay=delay, **settings)
    engine.use_dns(DnsChecks(engine, r, hosts=None))
    return engine, be


def session(addr="192.0.2.9", name="unknown", helo="client.example.net",
            sender="sender@example.net"):
    st = SessionState()
    st.client = Client(addr=addr, name=name, name_status=2 if name != "unknown" else 5)
    st.helo_name = helo
    st.protocol = "ESMTP"
    st.sender = sender
    return st


def rcpt(engine, st, to="u@example.test"):
    async def go():
        st.rcpt_count += 1
        st.recipient = to
        return await engine.rcpt(st)
    r = asyncio.run(go())
    return None if r is None else r.line()


def listed(ip, domain, codes=("127.0.0.2",), txt=None):
    q = dnsxl_addr_query(ip, domain)
    out = {(q, "A"): (OK, list(codes))}
    if txt is not None:
        out[(q, "TXT")] = (OK, list(txt))
    return out


# --------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("pattern, yes, no", [
    ("127.0.0.2", ["127.0.0.2"], ["127.0.0.3", "127.0.0.20"]),
    ("127.0.0.[2..4]", ["127.0.0.2", "127.0.0.4"], ["127.0.0.5", "127.0.0.1"]),
    ("127.0.[0;1].[2..3;10]", ["127.0.1.10", "127.0.0.3"], ["127.0.2.2", "127.0.0.4"]),
])
def test_ip_match(pattern, yes, no):
    m = IpMatch(pattern)
    assert all(m.match(a) for a in yes)
    assert not any(m.match(a) for a in no)


@pytest.mark.parametrize("bad", ["127.0.0", "127.0.0.256", "127.0.0.[3..2]", "127.0.0.x",
                                 "127.0.0.[2", "1.2.3.4.5"])
def test_ip_match_errors(bad):
    with pytest.raises(ValueError, match="ip_match_parse"):
        IpMatch(bad)


def test_expansion_filter_escapes():
    f = c_unescape('\\t\\40!"#\\\\]^_')
    assert f == '\t !"#\\]^_'


def test_list_query_names():
    assert dnsxl_addr_query("192.0.2.1", "bl.test") == "1.2.0.192.bl.test"
    assert dnsxl_addr_query("2001:db8::2", "bl.test").startswith("2.0.0.0.0.0.0.0")
    assert dnsxl_addr_query("2001:db8::2", "bl.test").endswith(".8.b.d.0.1.0.0.2.bl.test")
    assert dnsxl_domain_query("x@Spammer.Example", "rhsbl.test") == "Spammer.Example.rhsbl.test"
    for skipped in ("x@[192.0.2.1]", "x@host.123", "", "x@", "bad!name.test"):
        assert dnsxl_domain_query(skipped, "rhsbl.test") is None


# --------------------------------------------------------------------------- DNS lists

RBL3 = {"smtpd_recipient_restrictions": "reject_rbl_client a.test, reject_rbl_client b.test, "
                                        "reject_rbl_client c.test, reject_unauth_destination"}


def test_all_lists_of_a_restriction_list_are_asked_at_once(tmp_path):
    e, be = make(tmp_path, RBL3, listed("192.0.2.9", "c.test", txt=["in c"]), delay=0.05)
    assert rcpt(e, session()) == ("554 5.7.1 Service unavailable; Client host [192.0.2.9] "
                                  "blocked using c.test; in c")
    assert be.max_inflight >= 3          # the three A lookups overlapped
    assert be.asked[:3] == [("9.2.0.192.a.test", "A"), ("9.2.0.192.b.test", "A"),
                            ("9.2.0.192.c.test", "A")]


def test_first_listing_in_list_order_wins(tmp_path):
    answers = {**listed("192.0.2.9", "a.test", txt=["in a"]),
               **listed("192.0.2.9", "c.test", txt=["in c"])}
    e, _be = make(tmp_path, RBL3, answers, delay={("9.2.0.192.a.test", "A"): 0.05})
    assert rcpt(e, session()).endswith("blocked using a.test; in a")


def test_unlisted_client_passes_and_answers_are_cached(tmp_path):
    e, be = make(tmp_path, RBL3, {})
    assert rcpt(e, session()) is None
    n = len(be.asked)
    assert rcpt(e, session()) is None
    assert len(be.asked) == n == 3       # A only (no TXT for unlisted), then all cached


def test_txt_records_joined_limited_and_made_printable(tmp_path):
    long = "x" * 600
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions":
                           "reject_rbl_client bl.test, reject_unauth_destination"},
                listed("192.0.2.9", "bl.test", txt=["one\ttab\x01", "two", long]))
    reply = rcpt(e, session())
    reason = reply.split("blocked using bl.test; ", 1)[1]
    assert reason.startswith("one tab  / two / xxx")
    assert len(reply) == 510                      # the SMTP reply limit cuts it first
    checks = e.dns
    got = asyncio.run(checks._lookup_list("9.2.0.192.bl.test"))
    assert got[0] == ("127.0.0.2",) and len(got[1]) == 500    # RBL_TXT_LIMIT


def test_filter_selects_reply_codes(tmp_path):
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions":
                           "reject_rbl_client bl.test=127.0.0.[10..11], reject_unauth_destination"},
                {**listed("192.0.2.9", "bl.test", ("127.0.0.2",)),
                 **listed("192.0.2.8", "bl.test", ("127.0.0.3", "127.0.0.11"))})
    assert rcpt(e, session()) is None
    assert rcpt(e, session(addr="192.0.2.8")).startswith(
        "554 5.7.1 Service unavailable; Client host [192.0.2.8] blocked using bl.test")


def test_bad_filter_is_a_configuration_error(tmp_path, logs):
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions":
                           "reject_rbl_client bl.test=127.0.0.[9..2], reject_unauth_destination"},
                listed("192.0.2.9", "bl.test"))
    assert rcpt(e, session()) == "451 4.3.5 Server configuration error"
    assert logs.lines[0] == ('warning: RBL reply error: ip_match_parse: bad range "9..2" in '
                             '"127.0.0.[9..2]"')


def test_list_lookup_failure_is_not_a_rejection(tmp_path, logs):
    q = "9.2.0.192.bl.test"
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions":
                           "reject_rbl_client bl.test, reject_unauth_destination"},
                {(q, "A"): (RETRY, [], 0, dns.TRY_AGAIN)})
    assert rcpt(e, session()) is None
    assert logs.lines[0] == (f"warning: {q}: RBL lookup error: Host or domain name not found. "
                             f"Name service error for name={q} type=A: Host not found, try again")


def test_whitelist_lookup_failure_defers_a_later_reject(tmp_path):
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions": "permit_dnswl_client wl.test, reject"},
                {("9.2.0.192.wl.test", "A"): (RETRY, [], 0, dns.TRY_AGAIN)})
    assert rcpt(e, session()) == "450 4.7.1 <192.0.2.9>: Client host rejected: Service unavailable"


def test_whitelist_never_permits_relaying(tmp_path):
    e, _ = make(tmp_path, {"smtpd_recipient_restrictions":
                           "permit_dnswl_client wl.test, reject_unauth_destination"},
                listed("192.0.2.9", "wl.test", ("127.0.10.1",)))
    assert rcpt(e, session()) is None
    assert rcpt(e, session(), "x@elsewhere.test") == \
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"


def test_rbl_reply_templates(tmp_path, logs):
    e, _ = make(tmp_path, {
        "rbl_reply_maps": "texthash:@TABLES@/r",
        "smtpd_expansion_filter": "abcdefghijklmnopqrstuvwxyz0123456789. ",
        "smtpd_recipient_restrictions": "reject_rbl_client bl.test, reject_rbl_client bad.test, "
                                        "reject_unauth_destination"},
        {**listed("192.0.2.9", "bl.test", txt=["Reason: X!"]),
         **listed("192.0.2.8", "bad.test")},
        tables={"r": "bl.test $rbl_code 5.7.3 [$rbl_reason] from $sender at $server_name "
                     "$bogus_macro\nbad.test 550 ${rbl_reason\n"})
    # not in the filter: upper case, ':', '!', '@' and (main.cf strips the
    # trailing blank of the value) the space; the unknown macro expands to nothing
    assert rcpt(e, session()) == ("554 5.7.3 [_eason____] from sender_example.net at "
                                  "mx.example.test ")
    assert 'warning: unknown macro name "bogus_macro" in expansion request' in logs.lines
    assert rcpt(e, session(addr="192.0.2.8")) == \
        "554 5.7.1 Service unavailable; _lient_host [192.0.2.8] blocked using bad.test"
    assert ("warning: rbl_reject_reply: bad rbl reply template for domain bad.test: "
            "550 ${rbl_reason") in logs.lines


def test_rhsbl_targets_and_skips(tmp_path):
    answers = {("spam.example.rhsbl.test", "A"): (OK, ["127.0.0.2"]),
               ("helo.example.rhsbl.test", "A"): (OK, ["127.0.0.2"])}
    e, be = make(tmp_path, {"smtpd_recipient_restrictions":
                            "reject_rhsbl_sender rhsbl.test, reject_rhsbl_helo rhsbl.test, "
                            "reject_rhsbl_client rhsbl.test, reject_unauth_destination"}, answers)
    assert rcpt(e, session(sender="x@spam.example")).startswith(
        "554 5.7.1 Service unavailable; Sender address [x@spam.example] blocked using rhsbl.test")
    assert rcpt(e, session(helo="helo.example")).startswith(
        "554 5.7.1 Service unavailable; Helo command [helo.example] blocked")
    be.asked.clear()
    assert rcpt(e, session(sender="", helo="[192.0.2.1]")) is None
    assert be.asked == []                # null sender, literal HELO, unknown client: no lookup


def test_maps_rbl(tmp_path, logs):
    e, _ = make(tmp_path, {"maps_rbl_domains": "bl.test",
                           "smtpd_recipient_restrictions": "reject_maps_rbl, "
                                                           "reject_unauth_destination"},
                listed("192.0.2.9", "bl.test"))
    assert rcpt(e, session()).endswith("blocked using bl.test")
    rcpt(e, session())
    assert logs.lines.count('warning: support for restriction "reject_maps_rbl" will be removed '
                            'from Postfix; use "reject_rbl_client domain-name" instead') == 1


# --------------------------------------------------------------------------- unknown names

def test_helo_name_lookups_are_concurrent_and_nullmx_is_fine(tmp_path):
    e, be = make(tmp_path, {"smtpd_helo_restrictions": "reject_unknown_helo_hostname"},
                 {("n.test", "MX"): (dns.NULLMX, [])}, delay=0.03)
    assert rcpt(e, session(helo="n.test")) is None
    assert be.max_inflight == 3


@pytest.mark.parametrize("action, want", [
    ("defer_if_permit", "554 5.7.1 <client.example.net>: Helo command rejected: Access denied"),
    ("defer", "450 4.7.1 <client.example.net>: Helo command rejected: Host not found"),
])
def test_helo_tempfail_action(tmp_path, action, want):
    e, _ = make(tmp_path, {"unknown_helo_hostname_tempfail_action": action,
                           "smtpd_helo_restrictions": "reject_unknown_helo_hostname, reject"},
                {("client.example.net", "A"): (RETRY, [], 0, dns.TRY_AGAIN)})
    assert rcpt(e, session()) == want


def test_helo_retry_beats_not_found(tmp_path):
    # dns_lookup_l() precedence: A times out, AAAA and MX not found -> retry
    e, _ = make(tmp_path, {"smtpd_helo_restrictions": "reject_unknown_helo_hostname"},
                {("client.example.net", "A"): (RETRY, [], 0, dns.TRY_AGAIN)})
    assert rcpt(e, session()) == \
        "450 4.7.1 <client.example.net>: Helo command rejected: Host not found"


@pytest.mark.parametrize("answers, want", [
    ({("d.test", "MX"): (dns.INVAL, [])},
     "450 4.1.8 <x@d.test>: Sender address rejected: Malformed DNS server reply"),
    ({("d.test", "A"): (OK, ["198.51.100.1"])}, None),
    ({}, "450 4.1.8 <x@d.test>: Sender address rejected: Domain not found"),
    ({("d.test", "MX"): (dns.NULLMX, [])},
     "550 5.7.27 <x@d.test>: Sender address rejected: Domain d.test does not accept mail "
     "(nullMX)"),
])
def test_unknown_sender_domain(tmp_path, answers, want):
    e, _ = make(tmp_path, {"smtpd_sender_restrictions": "reject_unknown_sender_domain"}, answers)
    assert rcpt(e, session(sender="x@d.test")) == want


# --------------------------------------------------------------------------- MX/NS/A access

MXCF = {"smtpd_sender_restrictions": "check_sender_mx_access cidr:@TABLES@/mx"}


def test_mx_hosts_addresses_are_looked_up_together(tmp_path):
    answers = {("d.test", "MX"): (OK, [(10, "m1.d.test"), (20, "m2.d.test"), (30, "m3.d.test")]),
               ("m1.d.test", "A"): (OK, ["198.51.100.1"]),
               ("m2.d.test", "A"): (OK, ["198.51.100.2"]),
               ("m3.d.test", "A"): (OK, ["10.9.9.9"])}
    e, be = make(tmp_path, MXCF, answers, tables={"mx": MX_ACCESS}, delay=0.02)
    assert rcpt(e, session(sender="x@d.test")) == \
        "554 5.7.1 <x@d.test>: Sender address rejected: Domain MX in RFC 1918 private network"
    assert be.max_inflight >= 6          # A and AAAA of the three hosts at once


def test_name_without_mx_is_its_own_mx(tmp_path):
    e, _ = make(tmp_path, MXCF, {("d.test", "A"): (OK, ["192.0.2.7"])}, tables={"mx": MX_ACCESS})
    assert rcpt(e, session(sender="x@d.test")) == \
        "554 5.7.1 <x@d.test>: Sender address rejected: Domain MX in TEST-NET network"


def test_mx_lookup_problems_are_warnings(tmp_path, logs):
    answers = {("t.test", "MX"): (RETRY, [], 0, dns.TRY_AGAIN),
               ("h.test", "MX"): (OK, [(10, "gone.h.test")])}
    e, _ = make(tmp_path, MXCF, answers, tables={"mx": MX_ACCESS})
    assert rcpt(e, session(sender="x@t.test")) is None
    assert rcpt(e, session(sender="x@h.test")) is None
    assert [x for x in logs.lines if x.startswith("warning")] == [
        "warning: Unable to look up MX host for t.test: Host not found, try again",
        "warning: Unable to look up MX host gone.h.test for Sender address x@h.test: "
        "Name or service not known"]


def test_ns_lookup_walks_up_to_the_parent(tmp_path):
    answers = {("p.test", "NS"): (OK, ["ns1.p.test"]), ("ns1.p.test", "A"): (OK, ["10.0.0.53"])}
    e, be = make(tmp_path, {"smtpd_sender_restrictions":
                            "check_sender_ns_access cidr:@TABLES@/mx"}, answers,
                 tables={"mx": MX_ACCESS})
    assert rcpt(e, session(sender="x@a.b.p.test")).endswith(
        "Sender address rejected: Domain MX in RFC 1918 private network")
    assert [q for q in be.asked if q[1] == "NS"] == [("a.b.p.test", "NS"), ("b.p.test", "NS"),
                                                     ("p.test", "NS")]


def test_address_literal_and_a_access(tmp_path):
    e, _ = make(tmp_path, {"smtpd_helo_restrictions": "check_helo_a_access cidr:@TABLES@/mx",
                           **MXCF}, {("h.test", "A"): (OK, ["127.0.0.5"])},
                tables={"mx": MX_ACCESS})
    assert rcpt(e, session(sender="x@[10.1.1.1]")) == \
        "554 5.7.1 <x@[10.1.1.1]>: Sender address rejected: Domain MX in RFC 1918 private network"
    assert rcpt(e, session(helo="h.test")) == \
        "554 5.7.1 <h.test>: Helo command rejected: Domain MX in loopback network"


def test_ok_from_a_dns_derived_lookup_is_refused(tmp_path, logs):
    e, _ = make(tmp_path, MXCF, {("d.test", "A"): (OK, ["198.51.100.7"])},
                tables={"mx": "198.51.100.0/24 OK\n"})
    assert rcpt(e, session(sender="x@d.test")) == "451 4.3.5 Server configuration error"
    assert logs.lines[:3] == [
        "warning: restriction check_sender_mx_access returns OK for x@d.test",
        "warning: this is not allowed for security reasons",
        "warning: use DUNNO instead of OK if you want to make an exception"]


# --------------------------------------------------------------------------- permit_mx_backup

MXB = {"smtpd_recipient_restrictions": "permit_mx_backup, reject_unauth_destination"}


def test_permit_mx_backup(tmp_path):
    answers = {("b.test", "MX"): (OK, [(10, "mx.good.test"), (20, "mx.example.test")]),
               ("p.test", "MX"): (OK, [(10, "mx.example.test"), (20, "mx.good.test")]),
               ("a.test", "MX"): (OK, [(10, "mx.good.test"), (20, "me.a.test")]),
               ("me.a.test", "A"): (OK, ["127.0.0.1"])}
    e, _ = make(tmp_path, MXB, answers)
    assert rcpt(e, session(), "x@b.test") is None          # we are a backup MX (by name)
    assert rcpt(e, session(), "x@a.test") is None          # ... by address
    assert rcpt(e, session(), "x@p.test") == "554 5.7.1 <x@p.test>: Relay access denied"


def test_permit_mx_backup_networks(tmp_path):
    answers = {("b.test", "MX"): (OK, [(10, "mx.good.test"), (20, "mx.example.test")]),
               ("mx.good.test", "A"): (OK, ["198.51.100.25"])}
    e, _ = make(tmp_path, {**MXB, "permit_mx_backup_networks": "198.51.100.0/24"}, answers)
    assert rcpt(e, session(), "x@b.test") is None
    e, _ = make(tmp_path, {**MXB, "permit_mx_backup_networks": "203.0.113.0/24"}, answers)
    assert rcpt(e, session(), "x@b.test") == "554 5.7.1 <x@b.test>: Relay access denied"


def test_permit_mx_backup_lookup_failure_defers(tmp_path):
    e, _ = make(tmp_path, MXB, {("s.test", "MX"): (RETRY, [], 0, dns.TRY_AGAIN)})
    assert rcpt(e, session(), "x@s.test") == (
        "450 4.4.4 <x@s.test>: Recipient address rejected: Unable to look up mail exchanger "
        "information: Host not found, try again")
