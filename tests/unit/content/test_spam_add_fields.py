"""spammime.add_fields (native and twin): the header fields stored as
Node::header does -- keys in order, decoded values and raw values by
lower-cased name, the decoder called only for values prepare_fields does
not mark final -- the same as prepare_fields plus the loop Message used to
run in Python."""

from __future__ import annotations

import random

from postier.content.spam.message import Message, decode_header


def _reference(m, fields, decode):
    order: list = []
    headers: dict = {}
    raw: dict = {}
    for rawkey, key, dec, r, final in m.prepare_fields(fields):
        order.append(rawkey)
        if not final:
            dec = decode(dec, key)
        headers.setdefault(key, []).append(dec)
        raw.setdefault(key, []).append(r)
    return order, headers, raw


def test_add_fields_stores_like_node_header(impl):
    m = impl("spammime")
    calls = []

    def decode(v: bytes, key: str) -> bytes:
        calls.append((v, key))
        return b"<" + v + b">"

    order: list = [b"Old"]
    headers: dict = {"old": [b"o"]}
    raw: dict = {"old": [b" o\n"]}
    fields = [(b"Subject", b" hi\n  there\n"), (b"X-\xc9", b" =?utf-8?q?a?=\n"),
              (b"subject", b" two\n"), (b"Empty", b"\n"), (b"To", b" \xe9\n")]
    assert m.add_fields(fields, order, headers, raw, decode) == 0
    assert order == [b"Old", b"Subject", b"X-\xc9", b"subject", b"Empty", b"To"]
    assert headers == {"old": [b"o"], "subject": [b"hi there", b"two"],
                       "x-\xe9": [b"<=?utf-8?q?a?=>"], "empty": [b""], "to": [b"<\xe9>"]}
    assert raw == {"old": [b" o\n"], "subject": [b" hi\n  there\n", b" two\n"],
                   "x-\xe9": [b" =?utf-8?q?a?=\n"], "empty": [b"\n"], "to": [b" \xe9\n"]}
    # the decoder runs for the non-final values only, with the lower-cased key
    assert calls == [(b"=?utf-8?q?a?=", "x-\xe9"), (b"\xe9", "to")]


def test_add_fields_random_equals_reference(impl):
    m = impl("spammime")
    rnd = random.Random(11)
    bits = [b" ", b"\t", b"\n", b"\r", b"\r\n", b"a", b"=?", b"=", b"?", b"\xe9", b"\x00", b"\n ",
            b"=?utf-8?b?w6k=?=", b"=?iso-8859-1?q?caf=E9?="]
    for _ in range(2000):
        fields = [(rnd.choice([b"A", b"a", b"K\xc9y", b"", b"Subject"]),
                   b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 8))))
                  for _ in range(rnd.randrange(0, 5))]
        order: list = []
        headers: dict = {}
        raw: dict = {}
        m.add_fields(fields, order, headers, raw, decode_header)
        assert (order, headers, raw) == _reference(m, fields, decode_header), fields


def test_message_headers_through_add_fields():
    msg = Message(b"Subject: =?utf-8?q?caf=C3=A9?=\nX-A: 1\nx-a:  2\n  folded\n"
                  b"To: a@b.c\n\nbody\n")
    assert msg.header_order == [b"Subject", b"X-A", b"x-a", b"To"]
    assert msg.header_all("X-A") == [b"1", b"2 folded"]
    assert msg.raw_header("x-a") == [b" 1\n", b"  2\n  folded\n"]
    assert msg.header("subject") == "café".encode()
    part = Message(b"Content-Type: text/plain\n\nx\n")
    part.add_header(b"X-New", b" v\n")
    assert part.header_all("x-new") == [b"v"] and part.header_order[-1] == b"X-New"
