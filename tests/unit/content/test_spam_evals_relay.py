"""The header evals' shortcuts give what their plain forms give: the forged
Received trail counted in one pass (postier._native.spameval.forged_received
and its twin) against RelayEval's loop written the plain way, the forged
Received checks run as one group gated on the From domain, the Subject
tests without their substitutions, and EvalContext.get_list's answer for a
header the message lacks."""

from __future__ import annotations

import random
import re

import pytest
from eval_refs import same_as_plain_calls

from postier.content.spam import bre
from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam.received import Relay
from postier.content.spam.scanner import SpamScanner

# ---------------------------------------------------------------- forged_received


def _h2d_reference(h: str) -> str:
    """RelayEval's _hostname_to_domain."""
    if not bre.search(r"[a-zA-Z]", h):
        return h
    parts = h.split(".")
    while parts and parts[-1] == "":
        parts.pop()
    if len(parts) > 1 and bre.search(r"(?:\S{3,}|ie|fr|de)", parts[-1]):
        return ".".join(parts[-2:])
    if len(parts) > 2:
        return ".".join(parts[-3:])
    return h


def _forged_reference(untrusted: list) -> tuple[int, int]:
    """_check_for_forged_received's loop, regexes as written."""
    mf = mih = 0
    fromip = [r.ip for r in untrusted]
    by = [_h2d_reference(r.by.lower()) for r in untrusted]
    frm = [_h2d_reference(r.rdns.lower()) for r in untrusted]
    helo = [_h2d_reference(r.helo.lower()) for r in untrusted]
    for i in range(len(untrusted)):
        if not bre.search(r"^\w+(?:[\w.-]+\.)+\w+$", by[i]):
            continue
        if frm[i] is not None and bre.search(r"^localhost(?:\.localdomain)?$", frm[i]) and \
                fromip[i] == "127.0.0.1":
            frm[i] = None
        if bre.search(r"^\d+\.\d+\.\d+\.\d+$", helo[i]) and bre.search(r"^\d+\.\d+\.\d+\.\d+$", fromip[i]) \
                and fromip[i] != helo[i]:
            hc = bre.match(r"^(\d+\.\d+)\.\d+\.\d+$", helo[i]).group(1)
            fc = bre.match(r"^(\d+\.\d+)\.\d+\.\d+$", fromip[i]).group(1)
            if hc != fc and not E.IS_IP_PRIVATE.match(helo[i]):
                mih += 1
        if i > 0 and frm[i - 1] is not None and bre.search(r"^\w+(?:[\w.-]+\.)+\w+$", frm[i - 1]) \
                and by[i] != frm[i - 1] and not (by[i] == "msn.com" and frm[i - 1] == "hotmail.com"):
            mf += 1
    return mf, mih


def _relay(ip: str, by: str, helo: str, rdns: str) -> Relay:
    return Relay(ip=ip, by=by, helo=helo, id="", ident="", envfrom=None, auth="", rdns=rdns)


HAND = [
    [],
    [_relay("192.0.2.1", "mx.example.org", "a.example.net", "a.example.net")],
    # two hops whose by differs from the previous rdns: two forged steps
    [_relay("192.0.2.1", "mx.example.org", "h", "relay.spammer.biz"),
     _relay("192.0.2.2", "mail.other.com", "h", "x.spammer.biz"),
     _relay("192.0.2.3", "smtp.third.co.uk", "h", "")],
    # msn.com after hotmail.com is allowed; localhost of 127.0.0.1 does not count
    [_relay("192.0.2.1", "mx.example.org", "h", "mail.hotmail.com"),
     _relay("127.0.0.1", "a.msn.com", "h", "localhost.localdomain"),
     _relay("192.0.2.2", "b.example.com", "h", "")],
    # helo a dotted quad of another /16 (public, private) and the same /16
    [_relay("198.51.100.7", "mx.example.org", "203.0.113.9", "x.example.org"),
     _relay("198.51.100.7", "mx.example.org", "10.1.2.3", "x.example.org"),
     _relay("198.51.100.7", "mx.example.org", "198.51.7.7", "x.example.org")],
    # upper case, a trailing dot or newline, non-ASCII labels, the Kelvin sign
    [_relay("192.0.2.1", "MX.Example.ORG.", "H.\u212a", "Relay.Example.IE"),
     _relay("192.0.2.1", "mx.example.org\n", "1.2.3.4\n", "localhost\n"),
     _relay("192.0.2.1", "m\xe9.b\xe9.c\xe9", "x", "a..b"),
     _relay("192.0.2.1", "ab.c", "x", "-a.b")],
]


def _random_relays(rnd: random.Random) -> list:
    atoms = ["a", "mx", "com", "net", "ie", "fr", "de", "hotmail", "msn", "localhost", "localdomain",
             "1", "10", "192", "168", "127", "0", "", "-", "_", " ", "\n", "\xe9", "\u212a", "co", "uk"]

    def host() -> str:
        s = ".".join(rnd.choice(atoms) for _ in range(rnd.randrange(0, 6)))
        if rnd.random() < 0.1:
            s += "."
        return s.upper() if rnd.random() < 0.1 else s

    def ip() -> str:
        if rnd.random() < 0.2:
            return "127.0.0.1"
        return ".".join(rnd.choice(["1", "10", "192", "168", "172", "16", "0"]) for _ in range(4))

    return [_relay(ip(), host(), ip() if rnd.random() < 0.3 else host(), host())
            for _ in range(rnd.randrange(0, 6))]


def test_forged_received_is_the_plain_loop(impl):
    m = impl("spameval")
    for u in HAND:
        assert m.forged_received(u, E.IS_IP_PRIVATE.match) == _forged_reference(u), u
    assert m.forged_received(HAND[2], E.IS_IP_PRIVATE.match) == (2, 0)
    assert m.forged_received(HAND[3], E.IS_IP_PRIVATE.match) == (0, 0)
    assert m.forged_received(HAND[4], E.IS_IP_PRIVATE.match) == (0, 1)
    rnd = random.Random(11)
    seen = set()
    for _ in range(3000):
        u = _random_relays(rnd)
        got = m.forged_received(u, E.IS_IP_PRIVATE.match)
        assert got == _forged_reference(u), [(r.ip, r.by, r.helo, r.rdns) for r in u]
        seen.add((min(got[0], 2), min(got[1], 1)))
    assert len(seen) == 6          # every outcome exercised
    for u in HAND:                 # (again: the host names' domains now remembered)
        assert m.forged_received(u, E.IS_IP_PRIVATE.match) == _forged_reference(u), u


# ---------------------------------------------------------------- Subject tests


class _Ctx:
    def __init__(self, **headers: str):
        self.h = headers

    def get(self, req: str) -> str:
        return self.h.get(req, "")


def _caps_reference(ctx) -> int:
    subj = ctx.get("Subject")
    subj = bre.sub(r"^\s+", "", subj)
    subj = bre.sub(r"\s+$", "", subj)
    subj = bre.sub(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+", "", subj, flags=re.I)
    if not bre.search(r"\s", subj) or len(subj) < 10:
        return 0
    letters = bre.sub(r"[^a-zA-Z]", "", subj)
    if re.search(r"=\?" + E._CLTFAC + r"\?", ctx.get("Subject:raw"), re.I):
        return 0
    return 1 if letters and letters == letters.upper() else 0


SUBJECTS = ["", "HELLO WORLD", "Hello World", "Re: HELLO WORLD AGAIN", "1234 5678 90", "\xc9T\xc9 BIG NEWS",
            "BIG NEWS \xe9t\xe9", "  SPACED   OUT  ", "ALL CAPS \u212a NEWS", "SHORT ONE", "TEN LETTER S",
            "MIXED Caps HERE", "fwd: FW: LOUD SUBJECT\n"]


def test_subject_is_all_caps_is_the_plain_test():
    hits = 0
    for s in SUBJECTS:
        for raw in ("", "=?koi8-r?B?xx?="):
            ctx = _Ctx(Subject=s, **{"Subject:raw": raw})
            got = E.subject_is_all_caps(ctx, None)
            assert got == _caps_reference(ctx), (s, raw)
            hits += got
    assert hits >= 3


def _to_user_reference(ctx) -> int:
    full_to = ctx.get("To:addr")
    if full_to == "":
        return 0
    subject = ctx.get("Subject")
    to = re.escape(bre.sub(r"@.*", "", full_to, flags=re.S))
    pat = (r"^(?:(?:re|fw):\s*(?:\w+\s+)?" + to + r"$|(?-i:" + to + r")\s*[,:;!?-](?:$|\s)|"
           + to + r"$|,\s*" + to + r"[,:;!?-]$)")
    return 1 if bre.search(pat, subject, re.I) else 0


def test_to_in_subject_user_is_the_plain_test():
    hits = 0
    for to in ("bob@example.com", "BOB@example.com", "b.o+b@x", "@x", "bob", "\u212aate@x"):
        for subj in ("bob", "Bob", "re: bob", "RE: hi bob", "bob, hello", "Bob: hi", ", bob!", "hello bob",
                     "", "bob\n", "kate: x", "\u212aate: x", "xbob", "b.o+b, x"):
            ctx = _Ctx(**{"To:addr": to, "Subject": subj})
            got = E.check_for_to_in_subject(ctx, None, "user")
            assert got == _to_user_reference(ctx), (to, subj)
            hits += got
    assert hits >= 8


# ---------------------------------------------------------------- the From-domain group

RULES = r"""
header   FG   eval:check_for_forged_gmail_received_headers()
header   FY   eval:check_for_forged_yahoo_received_headers()
header   FJ   eval:check_for_forged_juno_received_headers()
header   FE   eval:check_for_forged_eudoramail_received_headers()
header   FH   eval:check_for_forged_hotmail_received_headers()
header   FH2  eval:check_for_no_hotmail_received_headers()
header   FBAD eval:check_for_forged_gmail_received_headers('extra')
"""
for _n in re.findall(r"^\w+\s+(\w+)", RULES, re.M):
    RULES += f"score {_n} 1\n"

RCVD = (b"Received: from pc (helo=pc) by mx.example.net with smtp; Mon, 1 Jan 2024 01:59:58 +0000\n")


def _msg(frm: bytes, rcvd: bytes = RCVD) -> bytes:
    return rcvd + b"From: " + frm + b"\nTo: a@example.org\nSubject: s\n\nbody\n"


MESSAGES = [_msg(b"x@gmail.com"), _msg(b"X@GMAIL.COM"), _msg(b"x@yahoo.com"), _msg(b"x@juno.com"),
            _msg(b"x@eudoramail.com"), _msg(b"x@hotmail.com"), _msg(b"x@example.com"),
            _msg(b"x@example.com", RCVD + b"Received: from a.hotmail.com by b.example.net; "
                                          b"Mon, 1 Jan 2024 01:59:58 +0000\n"),
            _msg(b"x@notgmail.com.example"), _msg(b"\"gmail.com\" <x@example.com>")]


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def test_from_domain_group_gives_the_plain_calls_results(sc):
    hit = same_as_plain_calls(sc, MESSAGES)
    assert {"FG", "FY", "FJ", "FE", "FH", "FH2"} <= hit
    assert "FBAD" not in hit
    # the group stands for the six rules (the failing call is one of them)
    calls = sc.compiled.__dict__["_eval_calls"]
    assert [len(c) for c in calls.values() if c] == [1]


# ---------------------------------------------------------------- get_list


def test_get_list_of_a_missing_header_is_headerviews_answer(sc):
    msg = (b"From: A <a@example.com>\nReply-To: b@example.com, \"c\" <c@example.com>\n"
           b"To: d@example.org\nCc:\nSubject: s\n\nbody\n")
    run = sc.run(msg)
    for req in ("From:addr", "Reply-To:addr", "Reply-To:name", "Reply-To:raw", "Cc:addr", "Bcc:addr",
                "X-Missing:addr", "X-Missing:first:addr", "x-missing:name:raw", "Mail-Reply-To:addr",
                "EnvelopeFrom:addr", "ToCc:addr", "X-Spam-Relays-Untrusted", "From", "X-Missing"):
        got = E.EvalContext(run).get_list(req)
        assert got == [E._s(x) for x in run.hv.get(req)], req
    ctx = E.EvalContext(run)
    assert ctx.get_list("Reply-To:addr") == ["b@example.com", "c@example.com"]
    assert ctx.get_list("X-Missing:addr") == []


# ---------------------------------------------------------------- the address-list group, evals never hit

LIST_RULES = r"""
enlist_addrlist (BANKS) *@bank.example
enlist_addrlist (BANKS) boss@corp.example
blocklist_from *@spam.example
header   FL_BANKS  eval:check_from_in_list('BANKS')
header   FL_NONE   eval:check_from_in_list('NOPE')
header   RL_BANKS  eval:check_replyto_in_list('BANKS')
header   TL_BANKS  eval:check_to_in_list('BANKS')
header   BL_FROM   eval:check_from_in_blocklist()
header   WL_TO     eval:check_to_in_welcomelist()
header   BL_BAD    eval:check_from_in_blocklist('x')
header   FAR_H     eval:check_for_faraway_charset_in_headers()
body     FAR_B     eval:check_for_faraway_charset()
"""
for _n in re.findall(r"^\w+\s+(\w+)\s+eval", LIST_RULES, re.M):
    LIST_RULES += f"score {_n} 1\n"

LIST_MESSAGES = [
    b"From: a@bank.example\nTo: x@example.org\nSubject: s\n\nbody\n",
    b"From: x@example.org\nReply-To: Boss <BOSS@corp.example>\nTo: x@example.org\nSubject: s\n\nbody\n",
    b"From: x@spam.example\nTo: teller@bank.example\nSubject: s\n\nbody\n",
    b"From: x@example.org\nTo: y@example.org\nSubject: s\nContent-Type: text/plain; charset=koi8-r\n\nbody\n",
]


def test_list_group_and_never_hit_evals_give_the_plain_calls_results():
    rs = C.parse_text(LIST_RULES, "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    hit = same_as_plain_calls(sc, LIST_MESSAGES)
    assert {"FL_BANKS", "RL_BANKS", "TL_BANKS", "BL_FROM"} <= hit
    assert not {"FL_NONE", "WL_TO", "BL_BAD", "FAR_H", "FAR_B"} & hit
    calls = sc.compiled.__dict__["_eval_calls"]
    # one call for the six list rules, BL_BAD's own (its arguments do not
    # fit: the call fails, no hit), none for the two never-hit ones
    assert sorted(len(c) for c in calls.values() if c) == [2]
    assert sum(len(m[1]) for m in sc.compiled.__dict__["_list_calls"].values()) == 4


# ---------------------------------------------------------------- address lists as string tests


def test_addr_matcher_is_the_lists_regexes():
    entries = ["*@*.gov", "*@*.gov.uk", "*@parliament.uk", "*@*.paypal.com", "*@paypal.com", "boss@corp.example",
               "**@**.icu", "*@*", "*@*(x", "*@*.a\\b"]
    lists = []
    for k in range(1, len(entries) + 1):
        d: dict = {}
        for a in entries[:k]:
            E._add_addr(d, a)
        lists.append(d)
    m = E._AddrMatcher(lists[4])
    assert m.fast and m.at_suffixes == (".gov", ".gov.uk", ".paypal.com")
    assert m.match("x@y.gov") and m.match("x@dept.gov.uk\n") and m.match("x@.gov")
    assert not m.match("x.gov") and not m.match("@gov") and not m.match("x@y.gov.")
    rnd = random.Random(5)
    atoms = ["x", "@", ".", "gov", "uk", "paypal", "com", "parliament", "icu", "\n", "_", "(", "\\", "corp",
             "example", "boss", "a", "b"]
    for d in lists:
        m = E._AddrMatcher(d)
        assert m.fast
        for _ in range(2000):
            addr = "".join(rnd.choice(atoms) for _ in range(rnd.randrange(0, 8)))
            assert m.match(addr) == E._in_list(d, addr), (list(d), addr)
    # an entry the string tests do not cover leaves the list to the regexes
    d = {}
    for a in ("*@*.gov", "*@x*y.com"):
        E._add_addr(d, a)
    assert not E._AddrMatcher(d).fast


# ---------------------------------------------------------------- check_for_no_rdns_dotcom_helo

def _no_rdns_dotcom_reference(untrusted: list) -> int:
    """RelayEval's loop as written: each public relay resets the hit."""
    hit = 0
    for r in untrusted:
        if r.ip_private:
            continue
        hit = 0
        if bre.search(r"(?:\.|^)(lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com|excite\.com|"
                      r"caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com|drizzle\.com)$", r.helo, re.I):
            if r.no_reverse_dns:
                hit = 1
    return hit


def test_no_rdns_dotcom_helo_takes_the_last_public_relay() -> None:
    from types import SimpleNamespace
    rnd = random.Random(3)
    helos = ["hotmail.com", "mx.AOL.com", "example.com", "", "yahoo.com\n", "x.msn.com.evil", "\0aol.com"]
    for _ in range(2000):
        untrusted = [SimpleNamespace(ip_private=rnd.random() < 0.3, helo=rnd.choice(helos),
                                     no_reverse_dns=rnd.random() < 0.5)
                     for _ in range(rnd.randrange(0, 5))]
        ctx = SimpleNamespace(relays=SimpleNamespace(untrusted=untrusted))
        assert E.check_for_no_rdns_dotcom_helo(ctx, None) == _no_rdns_dotcom_reference(untrusted), untrusted
