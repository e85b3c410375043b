"""Message's pristine text (the `full` rule text, the header block, the
body after it) and a part's name from Content-Disposition, with the
native spammime and its twin: the pristine text is the message after an
mbox line (sliced from the input when the message has no CRLF, joined
from the parsed lines when it has), and the name is found as Message.pm's
/name=\\s*"?([^";]+)"?/i finds it."""

from __future__ import annotations

import random

import pytest

from postier.content.spam import message

# (input, the header block SpamAssassin keeps as pristine headers)
CASES = [
    (b"Subject: a\nTo: b\n\nbody\nmore\n", b"Subject: a\nTo: b\n\n"),
    (b"From x@y Mon Jan  1 00:00:00 2024\nSubject: a\n\nbody", b"Subject: a\n\n"),
    (b"Subject: a\n folded\n\n", b"Subject: a\n folded\n\n"),
    (b"Subject: a", b"Subject: a"),                                   # no newline at all
    (b"Subject: a\n", b"Subject: a\n"),                               # no body separator
    (b"Subject: a\n--b\nx\n", b"Subject: a\n"),                       # body starts at the --
    (b"bad\nbad\nbad\nbad\nbad\n\nx", b"bad\nbad\nbad\n"),            # 4th junk line: body
    (b" lead\nA: b\n\nz\n", b" lead\nA: b\n\n"),
    (b"\n\nbody only\n", b"\n"),
    (b"\x00\xff: \x00\n\n\x00", b"\x00\xff: \x00\n\n"),
    (b" 1-Jan-2002 10:00:00 +0000,123;000000000000-00000000\nA: b\n\nq", b"A: b\n\n"),
]


@pytest.fixture
def use(impl, monkeypatch):
    def set_impl():
        monkeypatch.setattr(message, "_mime", impl("spammime"))
    return set_impl


@pytest.mark.parametrize("data,headers", CASES)
def test_pristine_is_the_message_after_the_mbox_line(use, data, headers):
    use()
    msg = message.Message(data)
    assert msg.pristine_headers == headers
    assert msg.pristine_body == data[len(msg.mbox_sep or b""):][len(headers):]
    assert msg.pristine == data[len(msg.mbox_sep or b""):]


def test_pristine_of_an_empty_message_is_one_newline(use):
    use()
    msg = message.Message(b"")
    # (the one line is the blank line that ends the header block)
    assert (msg.pristine, msg.pristine_headers, msg.pristine_body) == (b"\n", b"\n", b"")


def test_pristine_with_crlf_mends_lone_newlines_in_the_headers(use):
    use()
    msg = message.Message(b"Subject: a\r\nX: b\nc\r\n\r\nbody\nz\r\n")
    # the header lines as parse_header_lines keeps them (a lone LF made CRLF),
    # the body lines as they are
    assert msg.pristine_headers == b"Subject: a\r\nX: b\r\nc\r\n\r\n"
    assert msg.pristine_body == b"body\nz\r\n"
    assert msg.pristine == msg.pristine_headers + msg.pristine_body


def test_pristine_of_random_messages_tiles_the_input(use):
    use()
    rnd = random.Random(11)
    bits = [b"Subject: x\n", b"\n", b" cont\n", b"--b\n", b"junk\n", b"From a b\n", b"\r\n",
            b"body text\n", b"\x00\xff", b"To: y", b"Content-Type: text/plain\n"]
    for _ in range(500):
        data = b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 20)))
        msg = message.Message(data)
        assert msg.pristine == msg.pristine_headers + msg.pristine_body, data
        if data and msg.line_ending == b"\n":
            assert msg.pristine == data[len(msg.mbox_sep or b""):], data


@pytest.mark.parametrize("disposition,name", [
    (None, None),
    (b"inline", None),
    (b"attachment; filename=\"a b.txt\"", "a b.txt"),
    (b"attachment; FILENAME=report.pdf; size=3", "report.pdf"),
    (b"attachment; name= x", "x"),
    (b"attachment; size=3", None),
])
def test_part_name_from_content_disposition(use, disposition, name):
    use()
    cd = b"" if disposition is None else b"Content-Disposition: " + disposition + b"\n"
    data = (b"Content-Type: multipart/mixed; boundary=q\n\n--q\n"
            b"Content-Type: text/plain\n" + cd + b"\nhello\n--q--\n")
    parts = [p for p in message.Message(data).find_parts() if p.type == "text/plain"]
    assert [p.name for p in parts] == [name]


def test_part_name_falls_back_to_the_content_type_name(use):
    use()
    data = (b"Content-Type: multipart/mixed; boundary=q\n\n--q\n"
            b"Content-Type: text/plain; name=\"ct.txt\"\nContent-Disposition: inline\n\nhello\n--q--\n")
    parts = [p for p in message.Message(data).find_parts() if p.type == "text/plain"]
    assert [p.name for p in parts] == ["ct.txt"]


def test_header_names_short_and_long_stored_lowercased(impl):
    """add_fields keys (remembered for names up to 256 bytes, made each
    time for longer ones, which a MIME part's header can have)."""
    m = impl("spammime")
    for name in (b"X-Mixed-Case", b"X-" + b"Ab" * 200, b"\xc4-\xe9"):
        for _ in range(2):                  # (the second time: a remembered name)
            order: list = []
            headers: dict = {}
            raw: dict = {}
            m.add_fields([(name, b" v\n")], order, headers, raw, lambda v, k: v)
            assert order == [name]
            assert list(headers) == [name.decode("latin-1").lower()]
            assert headers[name.decode("latin-1").lower()] == [b"v"]
