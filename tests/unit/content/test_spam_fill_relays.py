"""spamrcvd.fill_relays (native and pure twin), parse_relays' walk over the
Received lines: trust inferred or from trusted/internal/msa networks, the
intl/msa patches of each relay string, a fetchmail line discarding the
trusted chain above it, a qmail-scanner line's envelope sender given to the
next relay, unparseable and skipped lines counted, folded lines, a tuple of
lines, and the X-Originating-IP pseudo-line."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import received as R

_POSTFIX = ("from mail.example (mail.example [10.0.0.7]) by mx.example (Postfix) with ESMTP id 4F2A1; "
            "Tue, 10 Nov 2026 12:00:00 +0000")
_FETCH = ("from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) for z@localhost (single-drop); "
          "Thu, 22 Aug 2002 12:36:16 +0100")
_QMAIL = ("from qmail by host.example (envelope-from <a@b.example>, uid 201) with qmail-scanner-1.25 "
          "(clamdscan: 0.90.1. Clear:RC:0(10.1.2.3):. Processed in 0.1 secs); 1 Jan 2007 00:00:00 -0000")
_AUTH = ("from out.example (out.example [192.0.2.9]) by mail.example (8.12/8.12) with ESMTPA id gg1; "
         "Tue, 10 Nov 2026 11:59:00 +0000")
_EXT = ("from ext.example (ext.example [198.51.100.3]) by out.example (8.12/8.12) with ESMTP id g0; "
        "Tue, 10 Nov 2026 11:58:00 +0000")
_CHAIN = [_FETCH, _QMAIL, _POSTFIX, "garbage line without from", "from nowhere by nothing", _AUTH, _EXT]


@pytest.fixture
def rcvd(impl, monkeypatch):
    mod = impl("spamrcvd")
    monkeypatch.setattr(R, "_rcvd", mod)
    return mod


def _ips(rs: R.Relays) -> tuple:
    return tuple([r.ip for r in lst] for lst in (rs.trusted, rs.untrusted, rs.internal, rs.external)) + (
        rs.num_unparseable, rs.last_trusted_index, rs.last_internal_index)


def test_inferred_trust(rcvd):
    rs = R.parse_relays(_CHAIN, [])
    assert _ips(rs) == (["10.0.0.7", "192.0.2.9"], ["198.51.100.3"], ["10.0.0.7", "192.0.2.9"],
                        ["198.51.100.3"], 1, 5, 5)
    assert rs.trusted_str == (
        "[ ip=10.0.0.7 rdns=mail.example helo=mail.example by=mx.example ident= envfrom=a@b.example "
        "intl=1 id=4F2A1 auth= msa=0 ] [ ip=192.0.2.9 rdns=out.example helo=out.example by=mail.example "
        "ident= envfrom= intl=1 id=gg1 auth=ESMTPA msa=0 ]")
    assert rs.untrusted_str == rs.external_str == (
        "[ ip=198.51.100.3 rdns=ext.example helo=ext.example by=out.example ident= envfrom= intl=0 "
        "id= auth= msa=0 ]")
    assert [r.internal for r in rs.trusted + rs.untrusted] == [True, True, False]
    assert [r.ip_private for r in rs.trusted + rs.untrusted] == [True, False, False]


def test_networks_and_msa(rcvd):
    rs = R.parse_relays(tuple(_CHAIN), None, ["10.0.0.0/8 192.0.2.0/24"], ["10.0.0.0/8"], ["192.0.2.0/24"])
    # 192.0.2.9 is the MSA: itself and every relay below it trusted and internal
    assert _ips(rs) == (["10.0.0.7", "192.0.2.9", "198.51.100.3"], [],
                        ["10.0.0.7", "192.0.2.9", "198.51.100.3"], [], 1, 6, 6)
    assert [r.msa for r in rs.trusted] == [False, True, False]
    assert [s.split(" msa=")[1] for s in rs.trusted_str.split(" ] ")] == ["0", "1", "0 ]"]
    assert rs.internal_str.count(" intl=1 ") == 3 and rs.untrusted_str == ""


def test_fetchmail_line_discards_the_trusted_chain_above(rcvd):
    rs = R.parse_relays([_POSTFIX, _FETCH, _EXT], ["", "203.0.113.5"])
    assert _ips(rs) == ([], ["198.51.100.3", "203.0.113.5"], [], ["198.51.100.3", "203.0.113.5"], 0, 1, 1)
    # below an untrusted relay it does not
    rs = R.parse_relays([_EXT, _FETCH, _POSTFIX], [])
    assert _ips(rs) == ([], ["198.51.100.3", "10.0.0.7"], [], ["198.51.100.3", "10.0.0.7"], 0, -1, -1)


def test_folded_line_and_originating_ip(rcvd):
    folded = "from a\n\t(b [10.1.1.1]) by c (Postfix) with ESMTP id 123; Tue, 10 Nov 2026 12:00:00 +0000"
    rs = R.parse_relays([_POSTFIX, folded], ["", "203.0.113.5"])
    assert _ips(rs) == (["10.0.0.7", "10.1.1.1"], ["203.0.113.5"], ["10.0.0.7", "10.1.1.1"], ["203.0.113.5"],
                        0, 1, 1)
    assert rs.trusted[1].helo == "a" and rs.trusted[1].rdns == "b"
    assert rs.untrusted[0].by == "" and rs.untrusted[0].as_string.startswith("[ ip=203.0.113.5 rdns= ")


def test_twins_agree_on_broken_chains(monkeypatch):
    """Both twins build the same relays from truncated, NUL-holding and
    shuffled chains under each trust setting."""
    native = pytest.importorskip("postier._native.spamrcvd")
    from postier._pure import spamrcvd as pure

    lines = [_POSTFIX, _FETCH, _QMAIL, _AUTH, _EXT, "from [10.0.0.1] by x (auth: msa=1 x) id abc"]
    settings = [(None, None, None), (["10.0.0.0/8"], None, None), (["0.0.0.0/0"], ["10.0.0.0/8"], ["10.0.0.0/8"])]
    got = []
    for mod in (native, pure):
        monkeypatch.setattr(R, "_rcvd", mod)
        rng = random.Random(5)
        out = []
        for _ in range(300):
            chain = [rng.choice(lines) for _ in range(rng.randint(0, 6))]
            chain = [c[:rng.randrange(len(c) + 1)] if rng.random() < 0.2 else c for c in chain]
            chain = [c.replace(" ", "\0 ", 1) if rng.random() < 0.1 else c for c in chain]
            for tr, it, msa in settings:
                rs = R.parse_relays(chain, ["10.9.9.9"], tr, it, msa)
                out.append((_ips(rs), rs.trusted_str, rs.untrusted_str, rs.internal_str, rs.external_str))
        got.append(out)
    assert got[0] == got[1]
    assert sum(1 for o in got[0] if o[0][0]) > 100 and sum(1 for o in got[0] if o[0][1]) > 100


def test_ident_in_the_sendmail_rdns(rcvd):
    """The Sendmail format's rdns with IDENT:user@host, user@host or no @
    (native: the two ident regexes run only when an @ can make them match)."""
    got = []
    for rdns in ("IDENT:joe@mail.example", "joe@mail.example", "IDENT:mail.example", "mail.example",
                 "IDENT:@x", "@x", "IDENT:a@b@c"):
        rs = R.parse_relays([f"from helo.example ({rdns} [192.0.2.5]) by mx.example (8.12/8.12) "
                             "with ESMTP id abc123; Tue, 10 Nov 2026 12:00:00 +0000"], [])
        r = (rs.trusted + rs.untrusted)[0]
        got.append((r.ident, r.rdns))
    assert got == [("joe", "mail.example"), ("joe", "mail.example"), ("", "IDENT:mail.example"),
                   ("", "mail.example"), ("", "x"), ("", "x"), ("b", "c")]
