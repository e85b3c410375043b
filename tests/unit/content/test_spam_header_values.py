"""HeaderView's header values built the short way give the general code's answers.

- spamhdr.all_value (both twins) == the joined get_all_headers lines and
  the offsets of their Received lines (None where that takes its slow path),
- value() / get_str() of ALL, ALL-UNTRUSTED, ALL-EXTERNAL from that one
  piece == the joined lines of HeaderView._get (the general path),
- get_str() answered from value()'s cache == get()'s lines joined,
- _addr_out's answers remembered across messages (_ADDR_OUT) == the
  parse of each line (parse_header_addresses, host check included),

on crafted broken headers (NULs, folds, invalid UTF-8, encoded words,
groups, comments, CRLF, a header past MAX_HEADER_LENGTH) and on the
headers of the shared corpus when it is present.
"""

from __future__ import annotations

import os
import random
import types

import pytest

from postier.content.spam import bre
from postier.content.spam import headers as H
from postier.content.spam.message import Message, decode_header
from postier.content.spam.received import parse_relays

CORPUS = "/work/shared/corpus"

_BROKEN = [
    b"From: a\nTo: b\n\nbody\n",
    b"Received: from x by y; Mon, 1 Jan 2024\nreceived: from z\n\tby w\nRECEIVED: q\n"
    b"Received:x\nReceived : spaced\nReceivedX: no\nFrom: a\n\nb\n",
    b"From: \"A, B\" <a@b.c> (c)\nTo: Group: x@y.z, <p@q.r>;\nCc: =?utf-8?q?J=C3=B6rg?= <j@x.de>\n\n",
    b"Subject: =?utf-8?b?UmVjZWl2ZWQ6IHg=?=\nSubject: =?utf-8?q?a=0AReceived:_b?=\nReceived: r\n\n",
    b"X-Bin: \xff\x00\xfe\nTo: \xe9t\xe9 <e@x.fr>\nFrom: a@b.c\x00d\n\n",
    b"From: a\r\nTo: b\r\n c\r\nReceived: r1\r\nReceived: r2\r\n\r\nbody\r\n",
    b" leading: fold\nFrom: a\n\nbody\n",
    b"\nbody only\n",
    b"",
    b"\xc0-Name: upper latin-1\n\xe0-name: lower\nReceived: r\n\n",
    b"To: undisclosed-recipients:;\nFrom: <>\nReply-To: a@b.c, d@e.f (x), \"q\\\"\" <g@h.i>\n\n",
    b"".join(b"Received: %d " % i + b"y" * 900 + b"\n" for i in range(100)) + b"From: a\n\n",
    b"Received: a\n" * 40 + b"To: t\n\n",
]


def _random_headers(rng: random.Random, n: int) -> list[bytes]:
    names = [b"Received", b"received", b"From", b"To", b"Cc", b"Subject", b"X-A", b"Reply-To",
             b"Return-Path", b"Message-Id", b"RECEIVED"]
    vals = [b"a@b.c", b"<x@y.z>", b"\"N, M\" <n@m.o>", b"=?iso-8859-1?q?caf=E9?= <c@f.e>",
            b"x\n y", b"\xff\xfe", b"a\x00b", b"", b" ", b"G: a@b.c;", b"(c) d@e.f",
            b"from h by k", b"=?utf-8?q?a=0Ab?="]
    out = []
    for _ in range(n):
        lines = [rng.choice(names) + b": " + rng.choice(vals) + b"\n"
                 for _ in range(rng.randrange(0, 12))]
        out.append(b"".join(lines) + b"\nbody\n")
    return out


def _corpus(step: int) -> list[bytes]:
    if not os.path.isdir(CORPUS):
        return []
    lines = open(os.path.join(CORPUS, "labels.tsv")).read().splitlines()[1:]
    out = []
    for line in lines[::step]:
        with open(os.path.join(CORPUS, line.split("\t")[0]), "rb") as f:
            out.append(f.read())
    return out


def _messages(step: int = 40) -> list[bytes]:
    return _BROKEN + _random_headers(random.Random(11), 300) + _corpus(step)


def _view(data: bytes, lt: int = -1, li: int = -1) -> H.HeaderView:
    relays = types.SimpleNamespace(last_trusted_index=lt, last_internal_index=li)
    return H.HeaderView(Message(data), relays)


def _received_starts(lines: list[bytes]) -> list[int]:
    starts, pos = [], 0
    for line in lines:
        if line[:9].lower() == b"received:":
            starts.append(pos)
        pos += len(line)
    return starts


def test_all_value_is_the_joined_lines(impl):
    all_value = impl("spamhdr").all_value
    seen_none = seen_starts = 0
    for data in _messages():
        msg = Message(data)
        got = all_value(msg.header_order, msg.headers)
        ref = impl("spammime").all_headers(msg.header_order, msg.headers, False)
        if ref is None:
            assert got is None
            seen_none += 1
            continue
        assert got == (b"".join(ref), _received_starts(ref)), data[:200]
        seen_starts += bool(got[1])
    assert seen_none and seen_starts


@pytest.mark.parametrize("lt,li", [(-1, -1), (0, 0), (0, 1), (1, 2), (3, 5), (-2, -3)])
def test_all_requests_answer_like_the_general_path(lt, li):
    for data in _messages():
        hv = _view(data, lt, li)
        ref = _view(data, lt, li)
        for req in ("ALL", "ALL-UNTRUSTED", "ALL-EXTERNAL"):
            want = ref._get(req)
            assert hv.value(req) == H._joined(want), (req, data[:200])
            assert hv.get_str(req) == b"".join(want), (req, data[:200])
            assert hv.get(req) == want


_REQUESTS = ("From", "To", "Received", "Subject", "Subject:raw", "From:raw", "To:raw", "Cc",
             "ToCc", "ToCc:addr", "From:addr", "From:name", "From:name:raw", "Reply-To:addr",
             "MESSAGEID", "Message-Id", "ALL", "ALL:raw", "X-Spam-Relays-Untrusted",
             "EnvelopeFrom", "EnvelopeFrom:addr", "X-Bin", "Lacking", "lacking:raw")


def _ref_get_str(hv: H.HeaderView, request: str) -> bytes:
    v = hv.get(request)
    if not v:
        return b""
    if bre.search(r":(?:addr|name|host|domain|ip|revip)\b", request) or request == "EnvelopeFrom":
        return v[0][:-1] if v[0].endswith(b"\n") else v[0]
    return b"".join(v)


def _real_view(data: bytes) -> H.HeaderView:
    msg = Message(data)
    if data.startswith(b"To: meta"):
        msg.metadata.setdefault("strings", {})["lacking"] = b"meta one"
    received = [v.decode("latin-1") for v in msg.header_all("Received")]
    return H.HeaderView(msg, parse_relays(received, [], [], [], []))


def test_get_str_answers_like_the_joined_lines():
    names = tuple(H.plain_name(r) for r in _REQUESTS)
    for data in _messages() + [b"To: meta\n\n"]:
        for warm in (False, True):
            hv = _real_view(data)
            if warm:
                hv.values(_REQUESTS, names)     # value()'s cache first, as Run._headers fills it
            ref = _real_view(data)
            for req in _REQUESTS:
                assert hv.get_str(req) == _ref_get_str(ref, req), (req, warm, data[:200])


def _ref_addr_out(lines: list[bytes], getaddr: bool, getraw: bool) -> list[bytes]:
    """HeaderView._addr_out as it was before its memo: parse_header_addresses
    (host check included) of each line, decode_header for a name."""
    out = []
    for line in lines:
        for a in H.parse_header_addresses(line.decode("latin-1")):
            if getaddr:
                if a["address"] is not None:
                    out.append(a["address"].encode("latin-1"))
                continue
            ph = a["phrase"]
            if ph is None:
                continue
            if getraw:
                out.append(ph.encode("latin-1"))
                continue
            dec = decode_header(ph.encode("latin-1"), "PMS:get:From:name")
            if bre.search(rb"\S", dec):
                dec = bre.sub(rb"\s+", b" ", dec).strip(b" ")
                dec = bre.sub(rb"^'(.*?)'$", rb"\1", dec, flags=bre.S)
            out.append(dec)
    return out


def test_addr_out_memo_gives_each_lines_parse():
    lines = []
    for data in _messages(20):
        msg = Message(data)
        for name in ("from", "to", "cc", "reply-to", "return-path", "x-bin"):
            lines += msg.raw_headers.get(name, [])
            lines += [v + b"\n" for v in msg.headers.get(name, [])]
    lines += [b" a@b.c\n", b"a@b.c", b"=?utf-8?q?J=C3=B6rg?= <j@x.de>\n", b"'q' <q@r.s>\n",
              b"\"x\" <y@z>, w <v@u.t>\n", b"Group: a@b.c;\n", b"\xff <a@b.c>\n"]
    assert len(lines) > 200
    for memo in H._ADDR_OUT:
        memo.clear()
    for _ in range(2):                          # cold, then answered from the memo
        for line in lines:
            for getaddr, getraw in ((True, False), (False, True), (False, False)):
                hv = _view(b"")
                assert hv._addr_out([line], getaddr, getraw, "X:addr") == \
                    _ref_addr_out([line], getaddr, getraw), (line, getaddr, getraw)
    assert any(H._ADDR_OUT)


def test_fast_addresses_is_a_function_of_the_stripped_line(impl):
    """HeaderView shares a parse between lines equal once stripped of ASCII
    white space (bytes.strip's set): fast_addresses gives them one answer."""
    fast = impl("spamhdr").fast_addresses
    rng = random.Random(5)
    cores = ["a@b.c", "<x@y.z>", '"N M" <n@m.o>', "Ann <a@b.c>", "a@b.c, d@e.f", "a@b.c,d@e.f",
             "x", "", '"q" x <a@b.c>', "\xe9 <e@x.fr>", "a@b.c (c)"]
    pads = ["", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", " \t ", "\x1c", "\xa0", "\x85"]
    n_fast = 0
    for _ in range(2000):
        core = rng.choice(cores)
        s = rng.choice(pads) + core + rng.choice(pads)
        t = s.encode("latin-1").strip().decode("latin-1")
        got = fast(s, lambda h: False)
        assert got == fast(t, lambda h: False), repr(s)
        n_fast += got is not None
    assert n_fast > 500


def test_tocc_and_to_addresses_share_a_parse():
    data = b"To: Ann <a@b.c>, d@e.f\nCc: \"Q\" <q@r.s>\nFrom: =?utf-8?q?J=C3=B6rg?= <j@x.de>\n\n"
    for memo in H._ADDR_OUT:
        memo.clear()
    hv = _real_view(data)
    assert hv.get("ToCc:addr") == [b"a@b.c", b"d@e.f", b"q@r.s"]
    n = len(hv._addrs)
    assert hv.get("To:addr") == [b"a@b.c", b"d@e.f"]
    assert hv.get("To:name") == [b"Ann"]
    assert n == 2 and len(hv._addrs) == n      # the raw To line: the decoded one's parse
    assert hv.get("From:name") == ["Jörg".encode()]
    assert hv.get("From:addr") == [b"j@x.de"]


def test_defined_answers_like_get():
    names = tuple(H.plain_name(r) for r in _REQUESTS)
    seen = set()
    for data in _messages() + [b"To: meta\n\n", b"Lacking:\n\n"]:
        for warm in (False, True):
            hv = _real_view(data)
            if warm:
                hv.values(_REQUESTS, names)
            ref = _real_view(data)
            for req in _REQUESTS:
                want = bool(ref.get(req))
                assert hv.defined(req) == want, (req, warm, data[:200])
                seen.add(want)
    assert seen == {False, True}


_FAST_REQUESTS = ("From:addr", "From:raw", "From:name", "Reply-To:addr", "Reply-To:name",
                  "Subject:raw", "From:name:raw", "To:addr", "Date:raw", "Return-Path:addr",
                  "X-Envelope-From:addr", "To:raw", "To:first:addr", "Cc:last:name",
                  "Received:last", "Received:first:raw", "X-Bin:raw", "x-bin:name",
                  "Lacking:addr", "lacking:raw", "Subject:first")


def _ref_fast_answer(msg: Message, request: str) -> list[bytes]:
    """HeaderView._fast_answer as it was (Python, parse per line)."""
    name, lc, lcs, raw, getaddr, getname, first, last = H._fast_kind(request)
    res = msg.raw_headers.get(lcs) if raw or getaddr or getname else msg.headers.get(lc)
    if res:
        res = list(res) if raw or getaddr or getname else [v + b"\n" for v in res]
    else:
        m = msg.metadata.get("strings", {}).get(lc)
        if m is None:
            return []
        res = [m]
    if first:
        res = res[:1]
    elif last:
        res = res[-1:]
    if getaddr or getname:
        res = _ref_addr_out(res, getaddr, raw)
    return [x for x in res if x is not None]


def test_fast_values_answer_like_the_python_path(impl):
    hdr = impl("spamhdr")
    kinds = tuple((i, r, H._fast_kind(r)) for i, r in enumerate(_FAST_REQUESTS))
    assert all(k.__class__ is tuple for _i, _r, k in kinds)
    nonempty = 0
    for data in _messages() + [b"To: meta\n\n"]:
        hv = _real_view(data)
        msg = hv.msg
        memos = ({}, {}, {})
        for _round in range(2):                 # the second: lines from the memos
            cache: dict = {}
            values: dict = {}
            out = [b"?"] * len(kinds)
            hdr.fast_values(msg.raw_headers, msg.headers, msg.metadata.get("strings"), kinds,
                            cache, values, out, memos, 256, 4, hv._addrs, H._no_host_check,
                            hv._line_addr_out)
            for i, request, kind in kinds:
                want = _ref_fast_answer(msg, request)
                assert cache[request] == want, (request, data[:200])
                assert out[i] == values[request] == H._joined(want), (request, data[:200])
                assert hdr.fast_answer(msg.raw_headers, msg.headers, msg.metadata.get("strings"),
                                       kind, memos, 256, 4, hv._addrs, H._no_host_check,
                                       hv._line_addr_out) == want
                nonempty += bool(want)
        # a value already made is taken as it is
        out = [None] * len(kinds)
        hdr.fast_values(msg.raw_headers, msg.headers, None, kinds, {}, {"From:addr": b"kept"}, out,
                        memos, 256, 4, hv._addrs, H._no_host_check, hv._line_addr_out)
        assert out[0] == b"kept"
    assert nonempty > 1000


def test_store_plain(impl):
    store = impl("spamhdr").store_plain
    requests = ("From", "X:addr", "To", "Lacking", "Other")
    names = ("from", None, "to", "lacking", "other")
    for strings, want in ((None, [b"f\n", b"x", None, None, None]),
                          ({}, [b"f\n", b"x", None, None, None]),
                          ({"lacking": b"meta", "from": b"m2"}, [b"f\n", b"x", None, b"meta", None])):
        out = [b"f\n", b"x", None, None, None]
        values = {"X:addr": b"x"}
        store(values, requests, names, out, (0, 2, 3, 4), strings)
        assert out == want
        assert values == dict(zip(requests, want, strict=True))
