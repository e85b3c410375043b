"""What goes on the wire: xtext, RFC 5321 quoting, MAIL/RCPT parameters, XFORWARD."""

from __future__ import annotations

import pytest

from postier.config import Config
from postier.delivery import DeliveryRequest
from postier.delivery import smtp as S
from postier.queue.file import Recipient


@pytest.mark.parametrize("value, special, out", [
    ("abc", "", "abc"),
    ("a+b", "", "a+2Bb"),
    ("a=b", "", "a=b"),
    ("a=b", "=", "a+3Db"),
    ("a b", "", "a+20b"),
    ("\u00e9", "", "+C3+A9"),
    ("rfc822;user+ext@example.test", "=", "rfc822;user+2Bext@example.test"),
    ("~!", "", "~!"),
    ("\x7f", "", "+7F"),
])
def test_xtext(value, special, out):
    assert S.xtext(value, special) == out


@pytest.mark.parametrize("addr, out", [
    ("user@example.test", "user@example.test"),
    ("first.last@example.test", "first.last@example.test"),
    ("a b@example.test", '"a b"@example.test'),
    ("a..b@example.test", '"a..b"@example.test'),
    (".a@example.test", '".a"@example.test'),
    ('a"b@example.test', '"a\\"b"@example.test'),
    ('"quoted x"@example.test', '"quoted x"@example.test'),
    ("a@b@example.test", '"a@b"@example.test'),
    ("", ""),
    ("postmaster", "postmaster"),
])
def test_quote_821(addr, out):
    assert S.quote_821_address(addr) == out


def _req(**kw):
    base = dict(queue_id="Q1", queue_path="/nonexistent", content_offset=8, content_size=1234,
                sender="s@example.test", recipients=[Recipient("u@example.test")],
                transport="smtp", nexthop="[127.0.0.1]:25", config=Config.from_text(""))
    base.update(kw)
    return DeliveryRequest(**base)


class _Sess:
    def __init__(self, features, xforward=()):
        self.features = features
        self.xforward = set(xforward)


def _delivery(req, main_cf=""):
    return S._Delivery(req, S.Settings(Config.from_text(main_cf), False))


def test_mail_command_parameters():
    req = _req(body_type="8BITMIME", dsn_envid="id+1 x", dsn_ret="hdrs", smtputf8=True)
    d = _delivery(req)
    assert d._mail_command(_Sess(0)) == b"MAIL FROM:<s@example.test>"
    all_features = S.F_SIZE | S.F_8BITMIME | S.F_DSN | S.F_SMTPUTF8
    assert d._mail_command(_Sess(all_features)) == (
        b"MAIL FROM:<s@example.test> SIZE=1234 BODY=8BITMIME ENVID=id+2B1+20x RET=HDRS SMTPUTF8")


def test_mail_command_null_sender_and_7bit():
    d = _delivery(_req(sender="", body_type="7BIT"))
    assert d._mail_command(_Sess(S.F_8BITMIME)) == b"MAIL FROM:<> BODY=7BIT"


def test_rcpt_command_dsn():
    rcpts = [Recipient("u@example.test", orig="Orig+x@example.test", dsn_notify="SUCCESS,DELAY"),
             Recipient("v@example.test", dsn_orcpt="rfc822;a=b@example.test", dsn_notify="never"),
             Recipient("w@example.test"),
             Recipient("x@example.test", orig="a b@example.test")]
    d = _delivery(_req(recipients=rcpts))
    s = _Sess(S.F_DSN)
    assert d._rcpt_command(s, 0) == b"RCPT TO:<u@example.test> ORCPT=rfc822;Orig+2Bx@example.test NOTIFY=SUCCESS,DELAY"
    assert d._rcpt_command(s, 1) == b"RCPT TO:<v@example.test> ORCPT=rfc822;a+3Db@example.test NOTIFY=NEVER"
    assert d._rcpt_command(s, 2) == b"RCPT TO:<w@example.test>"
    assert d._rcpt_command(s, 3) == b'RCPT TO:<x@example.test> ORCPT=rfc822;"a+20b"@example.test'
    assert d._rcpt_command(_Sess(0), 0) == b"RCPT TO:<u@example.test>"


def test_rcpt_utf8_orcpt_uses_unitext():
    rcpts = [Recipient("u@example.test", orig="j\u00f6rg@example.test")]
    d = _delivery(_req(recipients=rcpts, smtputf8=True))
    assert d._rcpt_command(_Sess(S.F_DSN), 0) == \
        b"RCPT TO:<u@example.test> ORCPT=utf-8;j\\x{F6}rg@example.test"


def test_xforward_commands():
    attrs = {"client_name": "c.example", "client_address": "192.0.2.1", "client_port": "unknown",
             "protocol_name": "ESMTP", "helo_name": "h e", "rewrite_context": "local"}
    d = _delivery(_req(attrs=attrs), "smtp_send_xforward_command = yes\n")
    s = _Sess(S.F_XFORWARD, ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"])
    cmds = [c for c, *_ in d._xforward_commands(s)]
    assert cmds == [b"XFORWARD NAME=c.example ADDR=192.0.2.1",
                    b"XFORWARD PROTO=ESMTP HELO=h+20e IDENT=Q1 SOURCE=LOCAL"]
    # only the attributes the server named; nothing when not enabled or not offered
    assert [c for c, *_ in d._xforward_commands(_Sess(S.F_XFORWARD, ["ADDR"]))] == \
        [b"XFORWARD ADDR=192.0.2.1"]
    assert d._xforward_commands(_Sess(0, ["NAME"])) == []
    assert _delivery(_req(attrs=attrs))._xforward_commands(s) == []


def test_unknown_client_is_not_forwarded():
    d = _delivery(_req(attrs={"client_name": "unknown", "client_address": "192.0.2.1"}),
                  "smtp_send_xforward_command = yes\n")
    s = _Sess(S.F_XFORWARD, ["NAME", "ADDR"])
    assert [c for c, *_ in d._xforward_commands(s)] == [b"XFORWARD ADDR=192.0.2.1"]
