"""HeaderView's direct routes and "lacks" answers give the general code's answers.

- get() of ToCc, ToCc:addr, EnvelopeFrom, EnvelopeFrom:addr, MESSAGEID and
  the X-Spam-Relays-* names (HeaderView's _DIRECT routes), and values()'s
  relay strings == _get's answers (the general path),
- lacks(request) True only where get(request) is [], for header names of
  any case and modifiers; EvalContext's get/get_or_none/get_list/first
  answer as they do without it,
- spamhdr.line_after_received (both twins) == /^Received:.*?^NAME:/msi,
- spamhdr.all_raw (both twins) == the ALL:raw shortcut's old test and,
  where it answers, the joined lines of _all_raw,

on crafted broken headers (NULs, folds, invalid bytes, encoded words,
CRLF, empty lines), random headers and the shared corpus when present.
"""

from __future__ import annotations

import random
import re
import types

from test_spam_header_values import _messages, _real_view

from postier.content.spam import evals as EV
from postier.content.spam import headers as H

_DIRECT_REQUESTS = ("ToCc", "ToCc:addr", "EnvelopeFrom", "EnvelopeFrom:addr", "MESSAGEID",
                    "X-Spam-Relays-Trusted", "X-Spam-Relays-Untrusted",
                    "X-Spam-Relays-Internal", "X-Spam-Relays-External")

_LACK_REQUESTS = ("Subject", "subject", "From:addr", "From:name", "from:name:raw", "To:addr",
                  "Cc", "Reply-To:addr", "Reply-To:addr:addr", "Resent-From:first:addr",
                  "Mailing-List", "Content-Type", "Received", "Received:raw", "X-A:host",
                  "X-A:ip", "X-A:revip", "Return-Path:first:addr", "Message-Id", "lacking",
                  "lacking:addr", "Lacking:raw", "X-Bin", "Date", "Bcc:addr", " To", "To :addr",
                  "", ":addr", "ALL", "all", "ALL-TRUSTED", "MESSAGEID", "MessageId", "ToCc:addr",
                  "EnvelopeFrom", "X-Spam-Relays-External", "x-spam-relays-trusted:raw")


def _ref(hv: H.HeaderView, request: str) -> list[bytes]:
    return [x for x in hv._get(request) if x is not None]


def test_direct_routes_answer_like_get():
    assert set(_DIRECT_REQUESTS) == set(H._DIRECT)
    seen = 0
    for data in _messages() + [b"To: meta\n\n", b"Message-ID: \nX-Message-Id: <a@b>\n\n"]:
        hv = _real_view(data)
        ref = _real_view(data)
        for request in _DIRECT_REQUESTS:
            want = _ref(ref, request)
            assert hv.get(request) == want, (request, data[:200])
            seen += bool(want)
    assert seen > 500


def test_values_relay_strings_and_direct_requests():
    requests = _DIRECT_REQUESTS + ("From", "To:addr", "ALL")
    names = tuple(H.plain_name(r) for r in requests)
    for data in _messages():
        hv = _real_view(data)
        ref = _real_view(data)
        got = hv.values(requests, names)
        assert got == [H._joined(ref.get(r)) if n is None else ref.value(r)
                       for r, n in zip(requests, names, strict=True)], data[:200]


def test_lacks_only_where_get_has_no_lines():
    lacking = 0
    for data in _messages() + [b"To: meta\n\n", b"To: meta\nlacking: \n\n"]:
        hv = _real_view(data)
        for request in _LACK_REQUESTS:
            if hv.lacks(request):
                lacking += 1
                assert _ref(_real_view(data), request) == [], (request, data[:200])
                assert hv.get(request) == []
    assert lacking > 1000
    hv = _real_view(b"To: meta\n\n")
    assert not hv.lacks("lacking") and not hv.lacks("Lacking:addr")   # a metadata string
    assert not hv.lacks("ALL") and not hv.lacks("ToCc") and not hv.lacks("X-Spam-Relays-Trusted")
    assert hv.lacks("Cc:addr") and not hv.lacks("to:addr")


def test_eval_context_answers_like_without_lacks(monkeypatch):
    def ctx(data: bytes) -> EV.EvalContext:
        hv = _real_view(data)
        run = types.SimpleNamespace(msg=hv.msg, hv=hv, relays=hv.relays,
                                    cr=types.SimpleNamespace(rs=None, registry=None))
        return EV.EvalContext(run)

    def answers(data: bytes) -> list:
        c = ctx(data)
        return [(c.get(r), c.get_or_none(r), c.get_list(r), c.first(r)) for r in _LACK_REQUESTS]

    datas = _messages(80) + [b"To: meta\n\n"]
    new = [answers(d) for d in datas]
    monkeypatch.setattr(H.HeaderView, "lacks", lambda self, request: False)
    old = [answers(d) for d in datas]
    assert new == old
    assert sum(a[1] is None for msg in new for a in msg) > 500


def _ref_line_after_received(data: bytes, name: bytes) -> bool:
    return re.search(rb"^Received:.*?^" + re.escape(name) + rb":", data,
                     re.M | re.S | re.I) is not None


def test_line_after_received(impl):
    hdr = impl("spamhdr")
    rng = random.Random(5)
    parts = [b"Received:", b"received: x", b"RECEIVED:", b"Return-Path:", b"return-path: <a@b>",
             b"RETURN-PATH", b"Return-Path :", b"X-Envelope-From:", b"x", b"\n", b"\n\n", b" ",
             b"\x00", b"\xff", b"Received", b":", b"eceived:", b"R\xc9CEIVED:"]
    datas = [b"", b"\n", b"Received:", b"Received:\nReturn-Path:", b"Return-Path:\nReceived: x\n",
             b"Received: a\nReturn-Path:", b"Received: a\nReturn-Path", b"Received:Return-Path:",
             b"x\nReceived:\nreturn-path:"]
    datas += [b"".join(rng.choice(parts) for _ in range(rng.randrange(0, 14))) for _ in range(3000)]
    datas += _messages(40)
    hits = 0
    for data in datas:
        for name in (b"return-path", b"x-envelope-from", b"envelope-sender"):
            want = _ref_line_after_received(data, name)
            assert hdr.line_after_received(data, name) is want, (data[:200], name)
            hits += want
    assert hits > 100


def _ref_all_raw(ph: bytes) -> bytes | None:
    if ph.endswith(b"\n\n"):
        ph = ph[:-1]
    if ph and ph[0] not in b" \t\n" and ph.endswith(b"\n") and b"\n\n" not in ph:
        return ph
    return None


def test_all_raw(impl):
    hdr = impl("spamhdr")
    rng = random.Random(9)
    parts = [b"A: b\n", b"\n", b" fold\n", b"\t", b"x", b"\r\n", b"\x00", b"\xff", b"\n\n"]
    datas = [b"", b"\n", b"\n\n", b"a", b"a\n", b"a\n\n", b"a\n\n\n", b" a\n", b"\ta\n",
             b"a\n\nb\n", b"A: b\n c\n\n"]
    datas += [b"".join(rng.choice(parts) for _ in range(rng.randrange(0, 10))) for _ in range(3000)]
    datas += [H.HeaderView(_real_view(d).msg, None).msg.pristine_headers for d in _messages(40)]
    answered = 0
    for ph in datas:
        want = _ref_all_raw(ph)
        assert hdr.all_raw(ph) == want, ph[:200]
        answered += want is not None
    assert answered > 100
    for data in _messages(40):
        hv = _real_view(data)
        v = hdr.all_raw(hv.msg.pristine_headers)
        if v is not None:
            assert v == b"".join(hv._all_raw()), data[:200]
