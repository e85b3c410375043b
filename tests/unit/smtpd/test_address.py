"""postier.smtpd.address: path parsing, external form, tokens, resolution.

The accept/refuse table below is what real Postfix 3.7.11 answered to
`MAIL FROM:<arg>` (250, or 501 5.1.7 with or without the "Illegal address
syntax" warning), recorded with a private instance (same base main.cf as
the compat fixtures, inet_interfaces = 127.0.0.1).
"""

from __future__ import annotations

import pytest

from postier.smtpd import address as a

# arg -> (accepted, Postfix logged "Illegal address syntax")
POSTFIX_MAIL_FROM = {
    '<"a""b"@c.test>': (False, True),
    "<Joe <a@b.test>>": (True, False),
    "<a(comment)@b.test>": (True, False),
    "<@a.test>": (True, False),
    "<@>": (False, True),
    "<x@-bad.test>": (False, True),
    "<x@bad_.test>": (True, False),
    "<x@[IPv6:::1]>": (True, False),
    "<x@b.test.>": (True, False),
    "<x@b.test..>": (False, True),
    "<x y>": (False, True),
    "<x@é.test>": (False, True),
    '<""@b.test>': (True, False),
    "<a.@b.test>": (True, False),
    "<.a@b.test>": (True, False),
    "<a..b@c.test>": (True, False),
    '<"a b"@c.test>': (True, False),
    "<a@b@c.test>": (True, False),
    "<a@[127.0.0.1]>": (True, False),
    "<a@[ipv6:::1]>": (True, False),
    "<a@[IPv6:zz]>": (False, True),
    "<a@b.123>": (True, False),
    "<a@123>": (False, True),
    "<a@1.2.3.4.5>": (False, True),
    '<\\"a@b.test>': (True, False),
    "<a\\@b@c.test>": (True, False),
    "<a@b.test.x_y>": (True, False),
    "<a@b.test >": (True, False),
    "< a@b.test>": (True, False),
    "<a@>": (False, True),
    "<@b.test:>": (True, False),
    '<"@">': (False, True),
    "<user@>": (False, True),
    "<x@1.2.3.4>": (False, True),
    "<x@[1.2.3]>": (False, True),
    "<a@b..c>": (False, True),
    "<a@b,c@d>": (False, True),
    # from the compat fixture (protocol_basics/mail_syntax_errors)
    "<a b@c.test>": (False, True),
    "<a@remote.test": (False, False),
}


@pytest.mark.parametrize("arg", sorted(POSTFIX_MAIL_FROM))
def test_mail_from_syntax_like_postfix(arg):
    accepted, warned = POSTFIX_MAIL_FROM[arg]
    if accepted:
        a.parse_path(arg, sender=True)
        return
    with pytest.raises(a.AddressError) as e:
        a.parse_path(arg, sender=True)
    assert e.value.warn is warned


@pytest.mark.parametrize("arg, internal", [
    ('<"x@elsewhere.test"@example.test>', "x@elsewhere.test@example.test"),
    ("<x@elsewhere.test@example.test>", "x@elsewhere.test@example.test"),
    ("<@example.test:x@elsewhere.test>", "x@elsewhere.test"),
    ("<@a,@b:u@example.test>", "u@example.test"),
    ('<"john doe"@bad.test>', "john doe@bad.test"),
    ("spammer@bad.test", "spammer@bad.test"),
    ("<x@bad.test.>", "x@bad.test."),
    ("<postmaster>", "postmaster"),
    ("<Joe <a@b.test>>", "a@b.test"),
    ("<a(comment)@b.test>", "a@b.test"),
    ('<"a\\"b"@c.test>', 'a"b@c.test'),
])
def test_internal_form(arg, internal):
    assert a.parse_path(arg) == internal


def test_null_address_only_for_mail():
    assert a.parse_path("<>", sender=True) == ""
    with pytest.raises(a.AddressError) as e:
        a.parse_path("<>", sender=False)
    assert e.value.warn
    assert a.parse("<>", True).null


def test_strict_rfc821():
    assert a.parse_path("a@b.test", sender=True) == "a@b.test"
    with pytest.raises(a.AddressError):
        a.parse_path("a@b.test", sender=True, strict_rfc821=True)
    with pytest.raises(a.AddressError):
        a.parse_path("<a@b.test;>", sender=True, strict_rfc821=True)


@pytest.mark.parametrize("internal, shown", [
    ("x@elsewhere.test@example.test", '"x@elsewhere.test"@example.test'),
    ("john doe@bad.test", '"john doe"@bad.test'),
    ("plain@example.test", "plain@example.test"),
    ("a..b@c.test", '"a..b"@c.test'),
    ("", ""),
])
def test_external_form(internal, shown):
    assert a.external(internal) == shown


def test_warning_text():
    assert a.illegal_syntax_warning("unknown[198.51.100.7]", "MAIL", "<a b@c.test>") == (
        "Illegal address syntax from unknown[198.51.100.7] in MAIL command: <a b@c.test>")
    assert a.printable("<x@\u00e9\r>") == "<x@\u00e9?>"


def test_smtpd_tokens():
    toks = a.smtpd_tokens("MAIL FROM:<a b@c> SIZE=1")
    assert [t.text for t in toks] == ["MAIL", "FROM:", "<a b@c>", "SIZE=1"]
    toks = a.smtpd_tokens('RCPT TO:<"a>b"@c> NOTIFY=NEVER')
    assert [t.text for t in toks] == ["RCPT", "TO:", '<"a>b"@c>', "NOTIFY=NEVER"]
    assert a.smtpd_tokens("MAIL FROM:<a@remote.test")[-1].error
    assert [t.text for t in a.smtpd_tokens("mail from: <x@y>")] == ["mail", "from:", "<x@y>"]


@pytest.mark.parametrize("name, ok", [
    ("mail.remote.test", True), ("host.123", True), ("my_host.remote.test", True),
    ("198.51.100.7", False), ("-bad-.remote.test", False), ("a.b.", False), ("", False),
    ("bad_host!name", False), ("a" * 64 + ".test", False), ("a-.test", False),
])
def test_valid_hostname(name, ok):
    assert a.valid_hostname(name) is ok


@pytest.mark.parametrize("text, ok", [
    ("[192.0.2.1]", True), ("[IPv6:2001:db8::1]", True), ("[ipv6:::1]", True),
    ("[IPv6:2001:db8::zz]", False), ("[1.2.3]", False), ("[2001:db8::1]", False), ("[]", False),
])
def test_valid_mailhost_literal(text, ok):
    assert a.valid_mailhost_literal(text) is ok


# ---------------------------------------------------------------------------
# resolution: the fixture's main.cf (mydestination = mx.example.test,
# localhost.example.test, localhost, example.test; relay_domains = relay.test)

MYDEST = {"mx.example.test", "localhost.example.test", "localhost", "example.test"}


def resolver(**kw) -> a.Resolver:
    def is_local(d: str) -> bool:
        if d.lower() in MYDEST:
            return True
        return a.literal_address(d) is not None and str(a.literal_address(d)) == "127.0.0.1"

    def relay(d: str) -> bool:
        d = d.lower()
        return d == "relay.test" or d.endswith(".relay.test")

    kw.setdefault("myhostname", "mx.example.test")
    kw.setdefault("myorigin", "example.test")
    return a.Resolver(is_local=is_local, relay=relay,
                      virtual_alias=lambda d: d.lower() == "valias.test",
                      virtual_mailbox=lambda d: d.lower() == "vbox.test", **kw)


@pytest.mark.parametrize("addr, recipient, cls, routed", [
    ("user@example.test", "user@example.test", a.LOCAL, False),
    ("User@EXAMPLE.TEST", "User@EXAMPLE.TEST", a.LOCAL, False),
    ("abuse", "abuse@mx.example.test", a.LOCAL, False),
    ("x%elsewhere.test@example.test", "x@elsewhere.test", a.DEFAULT, False),
    ("x!y@example.test", "y@x", a.DEFAULT, False),
    ("elsewhere.test!x@example.test", "x@elsewhere.test", a.DEFAULT, False),
    ("x@elsewhere.test@example.test", "x@elsewhere.test", a.DEFAULT, False),
    ("a!b!c@example.test", "b!c@a", a.DEFAULT, True),
    ("u%example.test@example.test", "u@example.test", a.LOCAL, False),
    ("x@[127.0.0.1]", "x@[127.0.0.1]", a.LOCAL, False),
    ("x@[198.51.100.1]", "x@[198.51.100.1]", a.DEFAULT, False),
    ("x@relay.test", "x@relay.test", a.RELAY, False),
    ("x@sub.relay.test", "x@sub.relay.test", a.RELAY, False),
    ("x%y@relay.test", "x%y@relay.test", a.RELAY, True),
    ("x@y@relay.test", "x@y@relay.test", a.RELAY, True),
    ("x@bad.test.", "x@bad.test", a.DEFAULT, False),
    ("x@valias.test", "x@valias.test", a.ALIAS, False),
    ("x@vbox.test", "x@vbox.test", a.VIRTUAL, False),
    ("x@sub.example.test", "x@sub.example.test", a.DEFAULT, False),
])
def test_resolve(addr, recipient, cls, routed):
    res = resolver().resolve(addr)
    assert (res.recipient, res.cls, res.routed, res.error) == (recipient, cls, routed, False)
    assert res.final is (cls in (a.LOCAL, a.ALIAS, a.VIRTUAL))


def test_resolve_flags():
    assert resolver(percent_hack=False).resolve("x%y@example.test").routed
    assert resolver(percent_hack=False).resolve("x%y@example.test").cls == a.LOCAL
    assert resolver().resolve("user@").error
    assert resolver().resolve("x@1.2.3.4").error
    numeric = resolver(resolve_numeric_domain=True).resolve("x@127.0.0.1")
    assert (numeric.recipient, numeric.cls, numeric.error) == ("x@[127.0.0.1]", a.LOCAL, False)
    dotted = resolver(append_dot_mydomain=True, mydomain="example.test").resolve("x%y@localhost")
    assert dotted.recipient == "x@y.example.test"


def test_resolver_lookup_failure_propagates():
    def broken(_d: str) -> bool:
        raise a.LookupFailure("relay_domains")
    r = a.Resolver(myhostname="mx.example.test", relay=broken)
    with pytest.raises(a.LookupFailure):
        r.resolve("x@elsewhere.test")
