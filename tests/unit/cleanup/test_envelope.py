"""Envelope rewriting, virtual expansion, duplicates, BCC and relocated,
with the results real Postfix 3.7.11 gave (recorded through a private
instance and postcat -e; see tests/compat for the replayed fixture)."""

from __future__ import annotations

import pytest
from conftest import run, settings

from postier.cleanup import Rcpt, relocated_reply
from postier.cleanup.rewrite import LOCAL, REMOTE
from postier.tok822 import quote_822_local, unquote_822_local

VIRT = ("virtual_alias_maps = inline:{ {loop1@example.test=loop2@example.test}, "
        "{loop2@example.test=loop1@example.test}, {dup@example.test=u@example.test}, "
        "{sales@example.test=alice@example.test, bob@example.test}, "
        "{team@virt.test=sales@example.test, carol@elsewhere.test}, "
        "{info@virt.test=info@virt.test, archive@example.test}, "
        "{@virt.test=catchall@example.test} }\n"
        "virtual_alias_domains = virt.test\n")


def rows(c):
    return [(r.segment, r.dsn_notify, r.dsn_orcpt, r.orig, r.address) for r in c.recipients]


@pytest.mark.parametrize("ctx,addr,want", [
    (LOCAL, "joe", "joe@example.test"),
    (LOCAL, "other.test!bob", "bob@other.test"),
    (LOCAL, "u%host.test", "u@host.test"),
    (LOCAL, "u%other.test@example.test", "u%other.test@example.test"),
    (LOCAL, "@a.test,@b.test:u@c.test", "u@c.test"),
    (LOCAL, "u@host.test.", "u@host.test"),
    (LOCAL, '"a b"@example.test', '"a b"@example.test'),
    (LOCAL, "@", '""'),
    (REMOTE, "joe", "joe"),
])
def test_trivial_rewrite(ctx, addr, want):
    assert settings().rewriter.rewrite(ctx, addr) == want


def test_append_dot_mydomain_follows_compatibility_level():
    assert settings().rewriter.rewrite(LOCAL, "u@host") == "u@host"
    old = settings("compatibility_level = 0\n")
    assert old.rewriter.rewrite(LOCAL, "u@host") == "u@host.example.test"


def test_quote_unquote():
    assert quote_822_local("a b@x") == '"a b"@x'
    assert unquote_822_local('"a b"@x') == "a b@x"
    assert unquote_822_local('"a\\"b"@x') == 'a"b@x'


def test_canonical_lookup_order_and_extension():
    s = settings("canonical_maps = inline:{ {old@example.test=new@example.test}, "
                 "{@olddomain.test=@example.test}, {john.doe=jdoe} }\n"
                 "sender_canonical_maps = inline:{ jdoe@example.test=John.Doe@example.test }\n")
    c, _ = run(s, b"\n", sender="someone@olddomain.test", rcpts=["someone+ext@olddomain.test"])
    assert c.sender == "someone@example.test"
    assert rows(c) == [("", "", "rfc822;someone+ext@olddomain.test",
                        "someone+ext@olddomain.test", "someone+ext@example.test")]
    c, _ = run(s, b"\n", sender="john.doe@example.test", rcpts=["john.doe@example.test"])
    assert c.sender == "jdoe@example.test"
    assert [r.address for r in c.recipients] == ["jdoe@example.test"]


def test_virtual_one_to_many_recursive_self_catchall_extension():
    s = settings(VIRT)
    c, _ = run(s, b"\n", rcpts=["team@virt.test"])
    assert [r.address for r in c.recipients] == ["alice@example.test", "carol@elsewhere.test",
                                                 "bob@example.test"]
    c, _ = run(s, b"\n", rcpts=["info@virt.test"])
    assert [r.address for r in c.recipients] == ["info@virt.test", "archive@example.test"]
    c, _ = run(s, b"\n", rcpts=["nobody@virt.test", "nobody+tag@virt.test"])
    assert [(r.orig, r.address) for r in c.recipients] == [
        ("nobody@virt.test", "catchall@example.test"),
        ("nobody+tag@virt.test", "catchall@example.test")]
    c, _ = run(s, b"\n", rcpts=["sales+promo@example.test"])
    assert [r.address for r in c.recipients] == ["alice+promo@example.test", "bob+promo@example.test"]


def test_virtual_loop_is_deferred():
    c, _ = run(settings(VIRT + "virtual_alias_recursion_limit = 3\n"), b"\n",
               rcpts=["loop1@example.test"])
    assert (c.error.code, c.error.enhanced, c.error.text) == (451, "4.6.0", "Alias expansion error")


def test_virtual_expansion_limit():
    s = settings(VIRT + "virtual_alias_expansion_limit = 1\n")
    c, _ = run(s, b"\n", rcpts=["sales@example.test"])
    assert c.error is not None and c.error.code == 451


def test_duplicates_bcc_and_order():
    s = settings(VIRT + "always_bcc = audit@example.test\n"
                 "sender_bcc_maps = inline:{ s@remote.test=sbcc@example.test }\n"
                 "recipient_bcc_maps = inline:{ u@example.test=rbcc@example.test }\n")
    c, _ = run(s, b"\n", rcpts=["u@example.test", "U@example.test", "dup@example.test",
                                Rcpt("u@example.test", "NEVER", "rfc822;u@example.test")])
    assert rows(c) == [
        ("after_sender", "NEVER", "", "sbcc@example.test", "sbcc@example.test"),
        ("", "", "rfc822;u@example.test", "u@example.test", "u@example.test"),
        ("", "NEVER", "", "rbcc@example.test", "rbcc@example.test"),
        ("", "", "rfc822;dup@example.test", "dup@example.test", "u@example.test"),
        ("", "NEVER", "rfc822;u@example.test", "u@example.test", "u@example.test"),
        ("extracted", "NEVER", "", "audit@example.test", "audit@example.test"),
    ]


def test_duplicate_filter_limit():
    s = settings("duplicate_filter_limit = 1\n")
    c, _ = run(s, b"\n", rcpts=["a@example.test", "b@example.test", "b@example.test"])
    assert [r.address for r in c.recipients] == ["a@example.test", "b@example.test",
                                                 "b@example.test"]


def test_masquerade_with_exclusion_and_exception():
    s = settings("masquerade_domains = !mx.example.test, example.test\n"
                 "masquerade_exceptions = root\n")
    rw = s.rewriter
    assert rw.masquerade("user@host1.example.test") == "user@example.test"
    assert rw.masquerade("user@mx.example.test") == "user@mx.example.test"
    assert rw.masquerade("root@host1.example.test") == "root@host1.example.test"
    c, out = run(s, b"To: user@a.b.example.test\n\nb\n", sender="user@host1.example.test",
                 rcpts=["user@host1.example.test"])
    assert c.sender == "user@example.test"
    assert c.recipients[0].address == "user@host1.example.test"
    assert out.startswith(b"To: user@example.test\n")


def test_mailer_daemon_sender_becomes_null():
    c, _ = run(settings(), b"\n", sender="MAILER-DAEMON@example.test")
    assert c.sender == ""


def test_relocated_reply():
    s = settings("relocated_maps = inline:{ {gone@example.test=gone@new.test}, "
                 "{@olddom.test=new place} }\n")
    r = relocated_reply(s, "gone@example.test")
    assert (r.code, r.enhanced, r.text) == (
        550, "5.1.6", "<gone@example.test>: Recipient address rejected: User has moved to gone@new.test")
    r = relocated_reply(s, "x@olddom.test")
    assert r.text.endswith("User has moved to new place")
    assert relocated_reply(s, "u@example.test") is None


def test_bad_class_name_is_config_error():
    from postier.errors import ConfigError
    with pytest.raises(ConfigError):
        settings("masquerade_classes = envelope_sender, bogus\n")
