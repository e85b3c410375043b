"""SMTP reply parsing as Postfix's smtp_chat_resp(): codes, enhanced status codes, multi-line."""

from __future__ import annotations

import pytest

from postier.delivery.smtp import dsn_valid, line_ends_reply, parse_reply, printable


@pytest.mark.parametrize("lines, code, dsn", [
    (["250 2.1.0 Ok"], 250, "2.1.0"),
    (["550 5.1.1 <u@x>: User unknown"], 550, "5.1.1"),
    (["550 no such user"], 550, "5.0.0"),             # no enhanced code: class from the reply code
    (["450 try later"], 450, "4.0.0"),
    (["250 Ok"], 250, "2.0.0"),
    (["550 4.1.1 odd"], 550, "5.0.0"),                # class mismatch: ignored
    (["354 go ahead"], 354, "5.5.0"),                 # 3xx: no status, protocol-error default
    (["221 2.0.0 Bye"], 221, "2.0.0"),
    (["550  5.7.1 two spaces"], 550, "5.7.1"),        # spaces before the code are skipped
    (["550 5.7.1text"], 550, "5.0.0"),                # a code must be followed by space or end
    (["550 5.7.1"], 550, "5.7.1"),
    (["550 5.1234.1 bad"], 550, "5.0.0"),             # at most three digits per part
    (["550 6.1.1 bad class"], 550, "5.0.0"),
    (["550-5.7.1 first", "550 5.7.2 second"], 550, "5.7.2"),   # the last line decides
    (["hello"], 0, "5.5.0"),                          # garbage
    (["55 short"], 0, "5.5.0"),
    (["5500 long code"], 0, "5.5.0"),
])
def test_code_and_dsn(lines, code, dsn):
    r = parse_reply(lines)
    assert (r.code, r.dsn) == (code, dsn)
    assert r.text == "\n".join(lines)


def test_multiline_text_on_one_line():
    r = parse_reply(["550-5.7.1 first line", "550 5.7.1 second line"])
    assert r.line == "550-5.7.1 first line 550 5.7.1 second line"


def test_last_line_read_decides_even_when_text_was_truncated():
    r = parse_reply(["250-a"], "550 5.1.1 last")
    assert (r.code, r.dsn, r.text) == (550, "5.1.1", "250-a")


@pytest.mark.parametrize("line, ends", [
    ("250 ok", True), ("250", True), ("250-more", False), ("25o ok", False),
    ("garbage", False), ("250x", False), ("2500 x", False),
])
def test_line_ends_reply(line, ends):
    assert line_ends_reply(line) is ends


@pytest.mark.parametrize("raw, text", [
    (b"250 ok\r\n", "250 ok"),
    (b"250 ok\n", "250 ok"),
    (b"250 ok\r\r\n", "250 ok"),
    (b"250 a\tb\x01c\r\n", "250 a?b?c"),
    (b"250 caf\xc3\xa9\r\n", "250 caf\u00e9"),
    (b"250 bad \xff byte\r\n", "250 bad ? byte"),
    (b"250 del\x7f\r\n", "250 del?"),
])
def test_printable(raw, text):
    assert printable(raw) == text


@pytest.mark.parametrize("text, n", [
    ("5.1.1", 5), ("5.1.1 rest", 5), ("2.0.0\tx", 5), ("4.123.456 x", 9),
    ("5.1", 0), ("3.1.1", 0), ("5.1.1x", 0), ("", 0), ("x5.1.1", 0),
])
def test_dsn_valid(text, n):
    assert dsn_valid(text) == n
