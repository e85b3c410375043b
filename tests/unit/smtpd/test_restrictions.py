"""The restriction engine, one behaviour at a time.

Every expected reply and log line here was first observed on real Postfix
3.7.11 (a private loopback instance with the compat fixtures' base main.cf,
driven through XCLIENT; test_restrictions_postfix.py repeats the comparison
live).  Tables are hash (built with postier's builder) or texthash files.
"""

from __future__ import annotations

import asyncio

import pytest
from test_restrictions_support import (  # noqa: F401
    engine_for,
    logs,
    open_map_for_tests,
    rcpt,
    session,
)

from postier.errors import ConfigError
from postier.smtpd import restrictions as R

RR = {"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}
FROM = "from=<sender@remote.test>"
TAIL = "proto=ESMTP helo=<client.remote.test>"


def replies(engine, st, *rcpts):
    async def go():
        return [await rcpt(engine, st, r) for r in rcpts]
    return [r.line() if r is not None else None for r in asyncio.run(go())]


def one(engine, st, r):
    return replies(engine, st, r)[0]


def reject_line(reply: str, to: str, qid: str = "NOQUEUE", what: str = "reject",
                sender: str = FROM, client: str = "unknown[198.51.100.7]") -> str:
    return f"{qid}: {what}: RCPT from {client}: {reply}; {sender} to=<{to}> {TAIL}"


# ---------------------------------------------------------------------------
# access(5) results and reply codes

RCPT_TABLE = """\
r1@example.test 550 5.1.1 r one
r2@example.test 450 4.1.7 r two
r3@example.test REJECT 5.1.2 r three
r4@example.test RELAY
r5@example.test ok trailing
r6@example.test defer_if_permit
r7@example.test defer_if_reject
r8@example.test defer
r9@example.test reject
r10@example.test 12345
r11@example.test 550
r13@example.test 599 9.9.9 bad dsn
r14@example.test 421
r15@example.test REJECT 4.7.1 mismatch
r16@example.test 550 5.1.1x nodsn
r19@example.test DEFER 5.2.2 deferred dsn
r20@example.test 421 4.7.0 go away
r21@example.test dunno
"""


@pytest.fixture
def codes_engine(tmp_path):
    return engine_for({"smtpd_relay_restrictions": "permit_mynetworks, defer_unauth_destination",
                       "relay_domains_reject_code": "550",
                       "smtpd_recipient_restrictions": "check_recipient_access hash:@TABLES@/r"},
                      tmp_path, {"r": {"type": "hash", "text": RCPT_TABLE}})


@pytest.mark.parametrize("who, want", [
    ("r1", "550 5.1.1 <r1@example.test>: Recipient address rejected: r one"),
    ("r2", "450 4.1.3 <r2@example.test>: Recipient address rejected: r two"),
    ("r3", "554 5.1.2 <r3@example.test>: Recipient address rejected: r three"),
    ("r4", None), ("r5", None), ("r7", None), ("r10", None), ("r11", None), ("r14", None),
    ("r21", None),
    ("r6", "450 4.7.1 <r6@example.test>: Recipient address rejected: Service unavailable"),
    ("r8", "450 4.7.1 <r8@example.test>: Recipient address rejected: Access denied"),
    ("r9", "554 5.7.1 <r9@example.test>: Recipient address rejected: Access denied"),
    ("r13", "599 5.7.1 <r13@example.test>: Recipient address rejected: 9.9.9 bad dsn"),
    ("r15", "554 5.7.1 <r15@example.test>: Recipient address rejected: mismatch"),
    ("r16", "550 5.7.1 <r16@example.test>: Recipient address rejected: 5.1.1x nodsn"),
    ("r19", "450 4.2.2 <r19@example.test>: Recipient address rejected: deferred dsn"),
    ("r20", "421 4.7.0 <r20@example.test>: Recipient address rejected: go away"),
])
def test_access_results(codes_engine, who, want, logs):  # noqa: F811
    got = one(codes_engine, session(), f"{who}@example.test")
    assert got == want
    if want is not None:
        assert logs.lines[-1] == reject_line(want, f"{who}@example.test")


def test_dsn_mapping_is_logged(codes_engine, logs):  # noqa: F811
    one(codes_engine, session(), "r2@example.test")
    assert logs.lines[0] == "mapping DSN status 4.1.7 into Recipient address status 4.1.3"


def test_421_disconnects(codes_engine):
    async def go():
        return await rcpt(codes_engine, session(), "r20@example.test")
    r = asyncio.run(go())
    assert r.disconnect and r.error_class == "policy"


def test_defer_unauth_destination_code_follows_relay_code(codes_engine):
    assert one(codes_engine, session(), "x@elsewhere.test") == \
        "450 4.7.1 <x@elsewhere.test>: Relay access denied"


@pytest.mark.parametrize("ctx, value, want", [
    ("client", "550 5.1.1 client one",
     "550 5.0.0 <unknown[198.51.100.7]>: Client host rejected: client one"),
    ("client", "REJECT 5.1.3 client three",
     "554 5.0.0 <unknown[198.51.100.7]>: Client host rejected: client three"),
    ("sender", "550 5.1.1 s one", "550 5.1.7 <sender@remote.test>: Sender address rejected: s one"),
    ("sender", "550 5.1.3 s", "550 5.1.7 <sender@remote.test>: Sender address rejected: s"),
    ("sender", "550 5.1.2 s", "550 5.1.8 <sender@remote.test>: Sender address rejected: s"),
    ("sender", "550 5.1.9 s", "550 5.1.0 <sender@remote.test>: Sender address rejected: s"),
])
def test_dsn_fix_per_context(tmp_path, ctx, value, want):
    key = "198.51.100.7" if ctx == "client" else "sender@remote.test"
    e = engine_for({**RR, "smtpd_recipient_restrictions":
                    f"check_{ctx}_access texthash:@TABLES@/t"},
                   tmp_path, {"t": {"type": "texthash", "text": f"{key} {value}\n"}})
    assert one(e, session(), "u@example.test") == want


def test_dsn_helpers():
    assert R.dsn_split("5.7.1", "4.2.0 mailbox busy") == ("4.2.0", "mailbox busy")
    assert R.dsn_split("5.7.1", "5.1.1x no") == ("5.7.1", "5.1.1x no")
    assert R.dsn_split("5.7.1", "9.9.9 no") == ("5.7.1", "9.9.9 no")
    assert R.dsn_fix("5.7.1", R.CLIENT) == "5.7.1"


# ---------------------------------------------------------------------------
# generic restrictions, warn_if_reject, defer_if_*

@pytest.mark.parametrize("restr, extra, want", [
    ("defer", {"defer_code": "451"},
     "451 4.3.2 <u@example.test>: Recipient address rejected: Try again later"),
    ("reject", {"reject_code": "553"},
     "553 5.7.1 <u@example.test>: Recipient address rejected: Access denied"),
    ("defer_if_permit, permit", {},
     "450 4.7.0 <u@example.test>: Recipient address rejected: defer_if_permit requested"),
    ("defer_if_reject, reject", {},
     "450 4.7.0 <u@example.test>: Recipient address rejected: defer_if_reject requested"),
    ("defer_if_reject, reject_unauth_destination", {}, None),
    ("warn_if_reject reject, reject_unauth_destination", {}, None),
    ("soft_reject_check, reject", {"soft_bounce": "yes", "smtpd_restriction_classes":
                                   "soft_reject_check", "soft_reject_check": "permit_auth_destination"},
     None),
    ("reject", {"soft_bounce": "yes"},
     "454 4.7.1 <u@example.test>: Recipient address rejected: Access denied"),
])
def test_generic(tmp_path, restr, extra, want):
    e = engine_for({"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": restr,
                    **extra}, tmp_path)
    assert one(e, session(), "u@example.test") == want


def test_warn_if_reject_logs_reject_warning(tmp_path, logs):  # noqa: F811
    e = engine_for({"smtpd_relay_restrictions": "", "reject_code": "553",
                    "smtpd_recipient_restrictions":
                        "warn_if_reject reject, warn_if_reject defer_if_permit, "
                        "reject_unauth_destination"}, tmp_path)
    assert one(e, session(), "e@example.test") is None
    assert logs.lines == [
        reject_line("553 5.7.1 <e@example.test>: Recipient address rejected: Access denied",
                    "e@example.test", what="reject_warning"),
        reject_line("450 4.7.0 <e@example.test>: Recipient address rejected: "
                    "defer_if_permit requested", "e@example.test", what="reject_warning")]


def test_warn_if_reject_applies_to_one_restriction_only(tmp_path):
    e = engine_for({"smtpd_relay_restrictions": "",
                    "smtpd_recipient_restrictions": "warn_if_reject, reject_non_fqdn_recipient, "
                                                    "reject_unauth_destination"}, tmp_path)
    st = session()
    assert one(e, st, "u@example") is not None      # not FQDN... and relaying: rejected
    assert one(e, st, "u@example.test") is None


def test_defer_if_permit_from_sender_stage_is_settled_at_rcpt(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_sender_restrictions":
                    "defer_if_permit, check_sender_access texthash:@TABLES@/s"},
                   tmp_path, {"s": {"type": "texthash", "text": "ok@remote.test OK\n"
                                                                "rej@remote.test REJECT\n"}})
    st = session(sender="ok@remote.test")
    assert replies(e, st, "u@example.test", "x@elsewhere.test") == [
        "450 4.7.0 <ok@remote.test>: Sender address rejected: defer_if_permit requested",
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"]
    st = session(sender="rej@remote.test")
    assert one(e, st, "u@example.test") == \
        "554 5.7.1 <rej@remote.test>: Sender address rejected: Access denied"


def test_defer_if_permit_without_delay_reject(tmp_path):
    e = engine_for({**RR, "smtpd_delay_reject": "no",
                    "smtpd_sender_restrictions": "defer_if_permit"}, tmp_path)
    st = session(sender="x@remote.test")
    assert asyncio.run(e.mail(st)) is None
    assert one(e, st, "u@example.test") == \
        "450 4.7.0 <x@remote.test>: Sender address rejected: defer_if_permit requested"


def test_defer_if_permit_comes_before_unlisted_recipient(tmp_path):
    e = engine_for({**RR, "smtpd_recipient_restrictions": "defer_if_permit",
                    "local_recipient_maps": "texthash:@TABLES@/l"},
                   tmp_path, {"l": {"type": "texthash", "text": "known x\n"}})
    assert one(e, session(), "nope@example.test") == \
        "450 4.7.0 <nope@example.test>: Recipient address rejected: defer_if_permit requested"


def test_permit_after_warning(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_recipient_restrictions": "permit, reject"}, tmp_path)
    logs.take()
    assert one(e, session(), "u@example.test") is None
    assert logs.lines == ["warning: restriction `reject' after `permit' is ignored"]


# ---------------------------------------------------------------------------
# configuration errors

def test_recursion_through_a_table(tmp_path, logs):  # noqa: F811
    e = engine_for({"smtpd_relay_restrictions": "", "smtpd_restriction_classes": "c2",
                    "c2": "check_recipient_access texthash:@TABLES@/r",
                    "smtpd_recipient_restrictions": "c2, reject_unauth_destination"},
                   tmp_path, {"r": {"type": "texthash", "text": "u@example.test c2\n"}})
    r = asyncio.run(rcpt(e, session(), "u@example.test"))
    assert (r.line(), r.error_class) == ("451 4.3.5 Server configuration error", "software")
    assert logs.lines[0] == (f"warning: access table texthash:{tmp_path}/tables/r entry c2 "
                             "causes unreasonable recursion")
    assert logs.lines[1] == reject_line("451 4.3.5 Server configuration error", "u@example.test")


def test_class_naming_itself_fails_cleanly(tmp_path, logs):  # noqa: F811
    # real Postfix crashes (SIGSEGV) here; postier warns at start-up and
    # answers 451 4.3.5 when the class is reached
    e = engine_for({"smtpd_relay_restrictions": "", "smtpd_restriction_classes": "c1",
                    "c1": "c1", "smtpd_recipient_restrictions": "reject_unauth_destination, c1"},
                   tmp_path)
    assert "warning: restriction class c1 refers to itself" in logs.take()[0]
    assert one(e, session(), "u@example.test") == "451 4.3.5 Server configuration error"
    assert logs.lines[0] == "warning: restriction class c1 causes unreasonable recursion"


def test_lookup_table_inside_an_access_table(tmp_path, logs):  # noqa: F811
    e = engine_for({"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions":
                    "check_recipient_access texthash:@TABLES@/r, reject_unauth_destination"},
                   tmp_path, {"r": {"type": "texthash",
                                    "text": "u@example.test check_sender_access hash:/etc/x\n"}})
    assert one(e, session(), "u@example.test") == "451 4.3.5 Server configuration error"
    assert logs.lines[:3] == [
        f"warning: access table texthash:{tmp_path}/tables/r has entry with lookup table: "
        "check_sender_access hash:/etc/x",
        "warning: do not specify lookup tables inside SMTPD access maps",
        "warning: define a restriction class and specify its name instead."]


@pytest.mark.parametrize("spec, reason", [
    ("hash:/nonexistent/x", "/nonexistent/x.db"),
    ("foo:/bar", "foo"),
])
def test_unavailable_table(tmp_path, logs, spec, reason):  # noqa: F811
    e = engine_for({**RR, "smtpd_recipient_restrictions": f"check_sender_access {spec}"},
                   tmp_path)
    r = one(e, session(), "u@example.test")
    assert r == ("451 4.3.5 <sender@remote.test>: Sender address rejected: "
                 "Server configuration error")
    assert logs.lines[0].startswith(f"warning: {spec} is unavailable. ")
    assert reason in logs.lines[0]
    assert logs.lines[1] == f'warning: {spec} lookup error for "sender@remote.test"'


@pytest.mark.parametrize("restr, warning", [
    ("reject_unauth_destination, check_sender_access",
     'restriction check_sender_access: bad argument "check_sender_access": need maptype:mapname'),
    ("reject_unauth_destination, check_recipient_access permit",
     'restriction check_recipient_access: bad argument "permit": need maptype:mapname'),
    ("no_such_thing, reject_unauth_destination", 'unknown smtpd restriction: "no_such_thing"'),
    ("sleep, reject_unauth_destination", "restriction sleep must be followed by number"),
])
def test_bad_restrictions(tmp_path, logs, restr, warning):  # noqa: F811
    e = engine_for({"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": restr},
                   tmp_path)
    st = session()
    r = asyncio.run(rcpt(e, st, "u@example.test"))
    assert (r.line(), r.error_class) == ("451 4.3.5 Server configuration error", "software")
    assert logs.lines == [f"warning: {warning}",
                          reject_line("451 4.3.5 Server configuration error", "u@example.test")]


def test_bare_map_needs_a_default_check_in_data_restrictions(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_data_restrictions": "texthash:@TABLES@/t"}, tmp_path,
                   {"t": {"type": "texthash", "text": "x y\n"}})
    st = session()
    asyncio.run(rcpt(e, st, "u@example.test"))
    r = asyncio.run(e.data(st))
    assert r.line() == "451 4.3.5 Server configuration error"
    assert logs.lines[0] == (
        "warning: specify one of (check_client_access, check_reverse_client_hostname_access, "
        "check_helo_access, check_sender_access, check_recipient_access, check_etrn_access) "
        f'before Data command restriction "texthash:{tmp_path}/tables/t"')


def test_bare_map_uses_the_list_default(tmp_path):
    e = engine_for({**RR, "smtpd_recipient_restrictions": "texthash:@TABLES@/r"},
                   tmp_path, {"r": {"type": "texthash", "text": "u@example.test REJECT bare\n"}})
    assert one(e, session(), "u@example.test") == \
        "554 5.7.1 <u@example.test>: Recipient address rejected: bare"


def test_required_restriction_at_start_up(tmp_path, logs):  # noqa: F811
    with pytest.raises(ConfigError) as exc:
        engine_for({"smtpd_relay_restrictions": "",
                    "smtpd_recipient_restrictions": "permit_mynetworks, permit, "
                                                    "reject_unauth_destination"}, tmp_path)
    assert "specify at least one working instance of: reject_unauth_destination" in str(exc.value)
    assert logs.lines == ["warning: restriction `reject_unauth_destination' after `permit' "
                          "is ignored"]


def test_restriction_class_needs_a_definition(tmp_path):
    with pytest.raises(ConfigError, match="restriction class `nothing' needs a definition"):
        engine_for({**RR, "smtpd_restriction_classes": "nothing"}, tmp_path)


def test_compat_level_0_relay_default(tmp_path, logs):  # noqa: F811
    # compatibility_level < 1 without smtpd_relay_restrictions: the recipient
    # restrictions decide; an info line notes what the new default would do
    e = engine_for({"compatibility_level": "0", "relay_domains": "",
                    "smtpd_recipient_restrictions": "permit_mynetworks, check_sender_access "
                                                    "texthash:@TABLES@/s, "
                                                    "reject_unauth_destination"},
                   tmp_path, {"s": {"type": "texthash", "text": "ok@remote.test OK\n"}})
    st = session(sender="ok@remote.test")
    assert one(e, st, "x@elsewhere.test") is None
    assert logs.lines == ['using backwards-compatible default setting "smtpd_relay_restrictions '
                          '= (empty)" to avoid "Relay access denied" error for recipient '
                          '"x@elsewhere.test" from client "unknown[198.51.100.7]"']


# ---------------------------------------------------------------------------
# client host names

@pytest.mark.parametrize("name, status, rev, rev_status, want", [
    ("unknown", 5, "unknown", 5, "450 4.7.25 Client host rejected: cannot find your hostname, "
                                 "[198.51.100.7]"),
    ("unknown", 4, "unknown", 4, "450 4.7.25 Client host rejected: cannot find your hostname, "
                                 "[198.51.100.7]"),
    ("x.example.test", 2, "unknown", 5, "450 4.7.1 Client host rejected: cannot find your "
                                        "reverse hostname, [198.51.100.7]"),
    ("x.example.test", 2, "unknown", 4, "450 4.7.1 Client host rejected: cannot find your "
                                        "reverse hostname, [198.51.100.7]"),
    ("x.example.test", 2, "x.example.test", 2, None),
])
def test_unknown_client_hostname(tmp_path, name, status, rev, rev_status, want):
    e = engine_for({**RR, "smtpd_recipient_restrictions":
                    "reject_unknown_client_hostname, reject_unknown_reverse_client_hostname"},
                   tmp_path)
    st = session(name=name)
    st.client.name_status = status
    st.client.reverse_name, st.client.reverse_name_status = rev, rev_status
    assert one(e, st, "u@example.test") == want


def test_reverse_client_access(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_recipient_restrictions":
                    "check_reverse_client_hostname_access texthash:@TABLES@/c"},
                   tmp_path, {"c": {"type": "texthash", "text": "rev.example REJECT reverse name\n"
                                                                "ok.example OK\n"}})
    st = session()
    st.client.reverse_name = "a.rev.example"
    assert one(e, st, "u@example.test") == \
        "554 5.7.1 <a.rev.example>: Unverified Client host rejected: reverse name"
    st = session()
    st.client.reverse_name = "ok.example"
    assert one(e, st, "u@example.test") == "451 4.3.5 Server configuration error"
    assert "warning: this is not allowed for security reasons" in logs.lines


# ---------------------------------------------------------------------------
# actions recorded for the message

ACTIONS = """\
f@remote.test FILTER smtp:[127.0.0.1]:10025
f2@remote.test FILTER nocolon
f3@remote.test FILTER
h@remote.test HOLD
d@remote.test DISCARD
r@remote.test REDIRECT nobody
b@remote.test BCC nobody
p@remote.test PREPEND not a header
ok@remote.test OK
w@remote.test WARN
i@remote.test INFO
"""
RCPT_ACTIONS = """\
rej@example.test REJECT
h@example.test HOLD held again
f@example.test FILTER other:x
d@example.test DISCARD
ok@example.test OK
num@example.test 12345
a@example.test REDIRECT x@example.test
b@example.test REDIRECT y@example.test
bcc@example.test BCC b1@example.test
bcc2@example.test BCC b2@example.test
p@example.test PREPEND X-A: 1
p2@example.test PREPEND X-B: 2
"""


@pytest.fixture
def actions_engine(tmp_path):
    return engine_for({**RR, "smtpd_log_access_permit_actions": "static:all",
                       "smtpd_sender_restrictions": "check_sender_access texthash:@TABLES@/s",
                       "smtpd_recipient_restrictions": "check_recipient_access "
                                                       "texthash:@TABLES@/r, "
                                                       "reject_multi_recipient_bounce"},
                      tmp_path, {"s": {"type": "texthash", "text": ACTIONS},
                                 "r": {"type": "texthash", "text": RCPT_ACTIONS}})


def table(tmp_path, name):
    return f"texthash:{tmp_path}/tables/{name}"


def test_filter(actions_engine, tmp_path, logs):  # noqa: F811
    st = session(sender="f@remote.test")
    assert replies(actions_engine, st, "f@example.test", "u@example.test") == [None, None]
    assert st.actions.filter == "smtp:[127.0.0.1]:10025"     # the last FILTER wins
    f = "from=<f@remote.test>"
    assert logs.lines == [
        reject_line("<f@remote.test>: Sender address triggers FILTER smtp:[127.0.0.1]:10025",
                    "f@example.test", what="filter", sender=f),
        reject_line("<f@example.test>: Recipient address triggers FILTER other:x",
                    "f@example.test", what="filter", sender=f),
        reject_line("<f@remote.test>: Sender address triggers FILTER smtp:[127.0.0.1]:10025",
                    "u@example.test", qid="QUEUEID", what="filter", sender=f)]


@pytest.mark.parametrize("sender, warning", [
    ("f2", 'entry "f2@remote.test" requires transport:destination'),
    ("f3", 'entry "f3@remote.test" has FILTER entry without value'),
    ("r", 'entry "r@remote.test" requires user@domain target'),
    ("b", 'entry "b@remote.test" requires user@domain target'),
    ("p", 'entry "p@remote.test" requires header: text'),
])
def test_action_warnings(actions_engine, tmp_path, logs, sender, warning):  # noqa: F811
    st = session(sender=f"{sender}@remote.test")
    assert one(actions_engine, st, "u@example.test") is None
    assert logs.lines == [f"warning: access table {table(tmp_path, 's')} {warning}"]
    assert (st.actions.filter, st.actions.redirect, st.actions.bcc, st.actions.prepend) == \
        (None, None, [], [])


def test_hold_once(actions_engine, logs):  # noqa: F811
    st = session(sender="h@remote.test")
    assert replies(actions_engine, st, "h@example.test", "u@example.test") == [None, None]
    assert st.actions.hold == "triggers HOLD action"
    assert logs.lines == [reject_line("<h@remote.test>: Sender address triggers HOLD action",
                                      "h@example.test", what="hold",
                                      sender="from=<h@remote.test>")]


def test_discard_accepts_everything_after(actions_engine, tmp_path, logs):  # noqa: F811
    st = session(sender="d@remote.test")
    assert replies(actions_engine, st, "rej@example.test", "x@elsewhere.test") == [None, None]
    assert st.actions.discard == "triggers DISCARD action"
    f = "from=<d@remote.test>"
    assert logs.lines == [
        reject_line("<d@remote.test>: Sender address triggers DISCARD action",
                    "rej@example.test", what="discard", sender=f),
        reject_line(f"action=DISCARD for Sender address=d@remote.test from "
                    f"{table(tmp_path, 's')}", "rej@example.test", what="permit", sender=f)]


def test_permit_logging(actions_engine, tmp_path, logs):  # noqa: F811
    st = session(sender="ok@remote.test")
    assert replies(actions_engine, st, "ok@example.test", "num@example.test") == [None, None]
    f = "from=<ok@remote.test>"
    assert logs.lines == [
        reject_line(f"action=OK for Sender address=ok@remote.test from {table(tmp_path, 's')}",
                    "ok@example.test", what="permit", sender=f),
        reject_line(f"action=OK for Recipient address=ok@example.test from "
                    f"{table(tmp_path, 'r')}", "ok@example.test", what="permit", sender=f),
        reject_line(f"action=OK for Sender address=ok@remote.test from {table(tmp_path, 's')}",
                    "num@example.test", qid="QUEUEID", what="permit", sender=f),
        reject_line(f"action=12345 for Recipient address=num@example.test from "
                    f"{table(tmp_path, 'r')}", "num@example.test", qid="QUEUEID", what="permit",
                    sender=f)]


def test_permit_mynetworks_logging(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_log_access_permit_actions": "permit_mynetworks"}, tmp_path)
    st = session(addr="127.0.0.5", name="inside.example")
    assert one(e, st, "x@elsewhere.test") is None
    assert logs.lines == [reject_line("action=permit_mynetworks for Client host="
                                      "inside.example[127.0.0.5] ", "x@elsewhere.test",
                                      what="permit", client="inside.example[127.0.0.5]")]


@pytest.mark.parametrize("sender, what", [("w", "warn"), ("i", "info")])
def test_warn_info_without_text(actions_engine, logs, sender, what):  # noqa: F811
    st = session(sender=f"{sender}@remote.test")
    assert one(actions_engine, st, "u@example.test") is None
    assert logs.lines == [reject_line("", "u@example.test", what=what,
                                      sender=f"from=<{sender}@remote.test>")]


def test_redirect_bcc_prepend(actions_engine, logs):  # noqa: F811
    st = session()
    assert replies(actions_engine, st, "a@example.test", "b@example.test", "bcc@example.test",
                   "bcc2@example.test", "p@example.test", "p2@example.test") == [None] * 6
    assert st.actions.redirect == "y@example.test"
    assert st.actions.bcc == ["b1@example.test", "b2@example.test"]
    assert st.actions.prepend == ["X-A: 1", "X-B: 2"]
    assert logs.lines[0] == reject_line("<a@example.test>: Recipient address triggers REDIRECT "
                                        "x@example.test", "a@example.test", what="redirect")
    assert logs.lines[2] == reject_line("<bcc@example.test>: Recipient address triggers BCC "
                                        "b1@example.test", "bcc@example.test", qid="QUEUEID",
                                        what="bcc")
    assert len(logs.lines) == 4         # PREPEND is not logged


def test_multi_recipient_bounce_at_rcpt(actions_engine, logs):  # noqa: F811
    st = session(sender="")
    assert replies(actions_engine, st, "u@example.test", "v@example.test") == [
        None, "550 5.5.3 <v@example.test>: Recipient address rejected: Multi-recipient bounce"]


def test_actions_in_client_and_helo_restrictions_without_delay(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_delay_reject": "no",
                    "smtpd_client_restrictions": "check_client_access texthash:@TABLES@/c",
                    "smtpd_helo_restrictions": "check_helo_access texthash:@TABLES@/h"},
                   tmp_path, {"c": {"type": "texthash", "text": "127.0.0.1 HOLD client hold\n"},
                              "h": {"type": "texthash", "text": "bad.helo WARN helo warn\n"
                                                                "hold.helo HOLD\n"}})
    st = session(addr="127.0.0.1", name="localhost", helo=None, sender=None)
    assert asyncio.run(e.connect(st)) is None
    assert asyncio.run(e.helo(st, "bad.helo", command="EHLO")) is None
    assert asyncio.run(e.helo(st, "hold.helo", command="EHLO")) is None
    assert st.actions.hold is None
    skipped = ("with smtpd_delay_reject=no, action HOLD is always skipped in Client host or "
               "Helo command restrictions")
    assert logs.lines == [
        f"warning: access table {table(tmp_path, 'c')}: {skipped}",
        "NOQUEUE: warn: EHLO from localhost[127.0.0.1]: helo warn; proto=SMTP helo=<bad.helo>",
        f"warning: access table {table(tmp_path, 'h')}: {skipped}"]


# ---------------------------------------------------------------------------
# mynetworks

@pytest.mark.parametrize("mynetworks, accepted", [
    ("inside.example", {"192.0.2.5"}),
    ("192.0.2.0/24, !192.0.2.5", {"192.0.2.5", "192.0.2.7", "192.0.2.8"}),
    ("!192.0.2.5, 192.0.2.0/24", {"192.0.2.7", "192.0.2.8"}),
    ("texthash:@TABLES@/n", {"192.0.2.7"}),
    ("[2001:db8::]/32", {"2001:db8::5"}),
    ("192.0.2.7 [2001:db8::5]", {"192.0.2.7", "2001:db8::5"}),
    ("example", {"192.0.2.5"}),     # parent domain style for mynetworks
])
def test_mynetworks(tmp_path, mynetworks, accepted):
    e = engine_for({**RR, "mynetworks": mynetworks}, tmp_path,
                   {"n": {"type": "texthash", "text": "192.0.2.7 x\n192.0.2 x\n"}})
    got = set()
    for addr, name in (("192.0.2.5", "inside.example"), ("192.0.2.7", "a.test"),
                       ("192.0.2.8", "b.test"), ("2001:db8::5", "c.test")):
        if one(e, session(addr=addr, name=name), "x@elsewhere.test") is None:
            got.add(addr)
    assert got == accepted


@pytest.mark.parametrize("mynetworks, warnings", [
    ("192.0.2.5/24", ['warning: mynetworks: non-null host address bits in "192.0.2.5/24", '
                      'perhaps you should use "192.0.2.0/24" instead']),
    ("/nonexistent/hosts", ["warning: non-existent:/nonexistent/hosts is unavailable. "
                            "open file /nonexistent/hosts: No such file or directory",
                            "warning: mynetworks: non-existent:/nonexistent/hosts: "
                            "table lookup problem"]),
])
def test_mynetworks_errors(tmp_path, logs, mynetworks, warnings):  # noqa: F811
    e = engine_for({**RR, "mynetworks": mynetworks}, tmp_path)
    assert one(e, session(addr="192.0.2.7"), "x@elsewhere.test") == \
        "451 4.3.0 <x@elsewhere.test>: Temporary lookup failure"
    assert logs.lines[:-1] == warnings
    r = asyncio.run(rcpt(e, session(addr="192.0.2.7"), "x@elsewhere.test"))
    assert r.error_class == "resource"


def test_mynetworks_file(tmp_path):
    path = tmp_path / "nets"
    path.write_text("# inside\n192.0.2.0/24\n  !192.0.2.9\n")
    e = engine_for({**RR, "mynetworks": str(path)}, tmp_path)
    assert one(e, session(addr="192.0.2.7"), "x@elsewhere.test") is None


# ---------------------------------------------------------------------------
# unlisted senders and recipients, address classes

@pytest.fixture
def unlisted_engine(tmp_path):
    return engine_for(
        {**RR, "local_recipient_maps": "texthash:@TABLES@/l",
         "virtual_alias_domains": "valias.test", "virtual_alias_maps": "texthash:@TABLES@/va",
         "virtual_mailbox_domains": "vbox.test", "virtual_mailbox_maps": "texthash:@TABLES@/vm",
         "relay_domains": "relay.test, relay2.test", "relay_recipient_maps": "texthash:@TABLES@/rr",
         "smtpd_sender_restrictions": "reject_unlisted_sender"},
        tmp_path, {"l": {"type": "texthash", "text": "known@example.test x\n"},
                   "va": {"type": "texthash", "text": "alias@valias.test x\n"},
                   "vm": {"type": "texthash", "text": "box@vbox.test x\n"},
                   "rr": {"type": "texthash", "text": "r@relay.test x\n@relay2.test x\n"}})


@pytest.mark.parametrize("to, table", [
    ("known@example.test", None), ("unknown@example.test", "local recipient"),
    ("postmaster@example.test", None), ("MAILER-DAEMON@example.test", None),
    ("alias@valias.test", None), ("nope@valias.test", "virtual alias"),
    ("box@vbox.test", None), ("nope@vbox.test", "virtual mailbox"),
    ("r@relay.test", None), ("nope@relay.test", "relay recipient"),
    ("any@relay2.test", None), ("unknown", "local recipient"),
    ("x@[127.0.0.1]", "local recipient"), ("alias@example.test", "local recipient"),
])
def test_unlisted_recipients(unlisted_engine, to, table):
    want = (f"550 5.1.1 <{to}>: Recipient address rejected: User unknown in {table} table"
            if table else None)
    assert one(unlisted_engine, session(), to) == want


@pytest.mark.parametrize("sender, want", [
    ("nope@example.test", "550 5.1.0 <nope@example.test>: Sender address rejected: "
                          "User unknown in local recipient table"),
    ("nope@valias.test", "550 5.1.7 <nope@valias.test>: Sender address rejected: "
                         "User unknown in virtual alias table"),
    ("known@example.test", None), ("", None),
])
def test_unlisted_senders(unlisted_engine, sender, want):
    assert one(unlisted_engine, session(sender=sender), "known@example.test") == want


def test_show_user_unknown_table_name_no(tmp_path):
    e = engine_for({**RR, "local_recipient_maps": "texthash:@TABLES@/l",
                    "show_user_unknown_table_name": "no"},
                   tmp_path, {"l": {"type": "texthash", "text": "known x\n"}})
    assert one(e, session(), "known@example.test") is None      # bare local part key
    assert one(e, session(), "nope@example.test") == \
        "550 5.1.1 <nope@example.test>: Recipient address rejected: User unknown"


def test_relay_and_local_classes(tmp_path):
    e = engine_for({**RR, "relay_domains": "relay.test"}, tmp_path)
    st = session()
    assert replies(e, st, "x@relay.test", "x@sub.relay.test", "x@RELAY.TEST", "x@notrelay.test",
                   "x%y@relay.test", "x@[127.0.0.1]", "x@[198.51.100.1]", "postmaster",
                   "x@sub.example.test") == [
        None, None, None, "554 5.7.1 <x@notrelay.test>: Relay access denied",
        "554 5.7.1 <x%y@relay.test>: Relay access denied", None,
        "554 5.7.1 <x@[198.51.100.1]>: Relay access denied", None,
        "554 5.7.1 <x@sub.example.test>: Relay access denied"]


def test_untrusted_routing_allowed(tmp_path):
    e = engine_for({**RR, "relay_domains": "relay.test", "allow_untrusted_routing": "yes"},
                   tmp_path)
    assert one(e, session(), "x%y@relay.test") is None


def test_bare_postmaster_skips_everything(tmp_path):
    e = engine_for({**RR, "smtpd_client_restrictions": "reject"}, tmp_path)
    st = session()
    assert replies(e, st, "postmaster", "Postmaster", "postmaster@example.test") == [
        None, None, "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"]


def test_vrfy(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_client_restrictions": "reject"}, tmp_path)
    st = session()
    r = asyncio.run(e.vrfy(st, "u@example.test"))
    assert r.line() == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"
    assert logs.lines == [
        "NOQUEUE: reject: VRFY from unknown[198.51.100.7]: 554 5.7.1 <unknown[198.51.100.7]>: "
        f"Client host rejected: Access denied; {FROM} to=<u@example.test> {TAIL}"]
    assert asyncio.run(e.vrfy(st, "postmaster")) is None


# ---------------------------------------------------------------------------
# DATA, END-OF-MESSAGE, ETRN

@pytest.fixture
def data_engine(tmp_path):
    return engine_for({**RR, "smtpd_data_restrictions": "check_sender_access texthash:@TABLES@/s",
                       "smtpd_end_of_data_restrictions": "check_sender_access "
                                                         "texthash:@TABLES@/e"},
                      tmp_path,
                      {"s": {"type": "texthash", "text": "d@remote.test REJECT no data\n"
                                                        "w@remote.test WARN warned\n"
                                                        "h@remote.test HOLD\n"},
                       "e": {"type": "texthash", "text": "e@remote.test REJECT eod no\n"
                                                        "f@remote.test DEFER_IF_PERMIT eod later\n"
                                                        "p@remote.test PREPEND X-Foo: bar\n"}})


def data_session(engine, sender, *rcpts):
    st = session(sender=sender)
    replies(engine, st, *rcpts)
    return st


def test_data_reject_logs_the_single_recipient(data_engine, logs):  # noqa: F811
    st = data_session(data_engine, "d@remote.test", "u@example.test")
    r = asyncio.run(data_engine.data(st))
    assert r.line() == "554 5.7.1 <d@remote.test>: Sender address rejected: no data"
    assert logs.lines == [
        "QUEUEID: reject: DATA from unknown[198.51.100.7]: 554 5.7.1 <d@remote.test>: Sender "
        "address rejected: no data; from=<d@remote.test> to=<u@example.test> " + TAIL]


def test_data_actions(data_engine, logs):  # noqa: F811
    st = data_session(data_engine, "w@remote.test", "u@example.test", "x@elsewhere.test")
    logs.take()
    assert asyncio.run(data_engine.data(st)) is None
    assert logs.take() == ["QUEUEID: warn: DATA from unknown[198.51.100.7]: warned; "
                           "from=<w@remote.test> to=<u@example.test> " + TAIL]
    st = data_session(data_engine, "h@remote.test", "u@example.test", "v@example.test")
    logs.take()
    assert asyncio.run(data_engine.data(st)) is None
    assert st.actions.hold == "triggers HOLD action"
    assert logs.take() == ["QUEUEID: hold: DATA from unknown[198.51.100.7]: <h@remote.test>: "
                           "Sender address triggers HOLD action; from=<h@remote.test> " + TAIL]


def test_end_of_data(data_engine, tmp_path, logs):  # noqa: F811
    st = data_session(data_engine, "e@remote.test", "u@example.test")
    r = asyncio.run(data_engine.end_of_data(st))
    assert r.line() == "554 5.7.1 <e@remote.test>: Sender address rejected: eod no"
    assert logs.lines[-1] == (
        "QUEUEID: reject: END-OF-MESSAGE from unknown[198.51.100.7]: 554 5.7.1 <e@remote.test>: "
        "Sender address rejected: eod no; from=<e@remote.test> to=<u@example.test> " + TAIL)
    st = data_session(data_engine, "f@remote.test", "u@example.test", "v@example.test")
    r = asyncio.run(data_engine.end_of_data(st))
    assert r.line() == "450 4.7.1 <f@remote.test>: Sender address rejected: eod later"
    assert logs.lines[-1].endswith("eod later; from=<f@remote.test> " + TAIL)
    st = data_session(data_engine, "p@remote.test", "u@example.test")
    assert asyncio.run(data_engine.end_of_data(st)) is None
    assert st.actions.prepend == []
    assert logs.lines[-1] == (f"warning: access table {table(tmp_path, 'e')}: action PREPEND "
                              "must be used before smtpd_end_of_data_restrictions")


def test_generic_data_and_eod_replies(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_end_of_data_restrictions": "reject",
                    "smtpd_data_restrictions": "reject_unauth_pipelining, warn_if_reject reject"},
                   tmp_path)
    st = data_session(e, "x@remote.test", "u@example.test")
    assert asyncio.run(e.data(st)) is None
    r = asyncio.run(e.end_of_data(st))
    assert r.line() == "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"
    assert logs.lines == [
        "QUEUEID: reject_warning: DATA from unknown[198.51.100.7]: 554 5.7.1 <DATA>: Data "
        "command rejected: Access denied; from=<x@remote.test> to=<u@example.test> " + TAIL,
        "QUEUEID: reject: END-OF-MESSAGE from unknown[198.51.100.7]: 554 5.7.1 <END-OF-MESSAGE>: "
        "End-of-data rejected: Access denied; from=<x@remote.test> to=<u@example.test> " + TAIL]


def test_unauth_pipelining(tmp_path):
    e = engine_for({**RR, "smtpd_data_restrictions": "reject_unauth_pipelining"}, tmp_path)
    st = data_session(e, "x@remote.test", "u@example.test")
    st.pipelined = True
    r = asyncio.run(e.data(st))
    assert (r.line(), r.error_class) == (
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining",
        "protocol")
    st.ehlo_seen_pipelining = True
    assert asyncio.run(e.data(st)) is None


def test_etrn(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_etrn_restrictions": "check_etrn_access texthash:@TABLES@/e"},
                   tmp_path, {"e": {"type": "texthash", "text": "bad.test REJECT no etrn\n"
                                                                "hold.test HOLD\n"}})
    st = session(helo="a.test", sender=None)
    r = asyncio.run(e.etrn(st, "bad.test"))
    assert r.line() == "554 5.7.1 <bad.test>: Etrn command rejected: no etrn"
    assert asyncio.run(e.etrn(st, "hold.test")) is None
    assert logs.lines == [
        "NOQUEUE: reject: ETRN from unknown[198.51.100.7]: 554 5.7.1 <bad.test>: Etrn command "
        "rejected: no etrn; proto=ESMTP helo=<a.test>",
        f"warning: access table {table(tmp_path, 'e')}: action HOLD is unavailable in "
        "smtpd_etrn_restrictions"]


# ---------------------------------------------------------------------------
# connect and HELO time (smtpd_delay_reject = no)

def test_connect_reject(tmp_path, logs):  # noqa: F811
    e = engine_for({**RR, "smtpd_delay_reject": "no",
                    "smtpd_client_restrictions": "check_client_access texthash:@TABLES@/c"},
                   tmp_path, {"c": {"type": "texthash", "text": "127.0.0.1 REJECT loopback refused\n"}})
    st = session(addr="127.0.0.1", name="localhost", helo=None, sender=None)
    r = asyncio.run(e.connect(st))
    assert r.line() == "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: loopback refused"
    assert logs.lines == ["NOQUEUE: reject: CONNECT from localhost[127.0.0.1]: 554 5.7.1 "
                          "<localhost[127.0.0.1]>: Client host rejected: loopback refused; "
                          "proto=SMTP"]


def test_delay_reject_yes_skips_early_stages(tmp_path):
    e = engine_for({**RR, "smtpd_client_restrictions": "reject"}, tmp_path)
    st = session()
    assert asyncio.run(e.connect(st)) is None
    assert asyncio.run(e.helo(st)) is None
    assert asyncio.run(e.mail(st)) is None
    assert one(e, st, "u@example.test") is not None


@pytest.mark.parametrize("helo, want", [
    ("bad_host!name", "501 5.5.2 <bad_host!name>: Helo command rejected: Invalid name"),
    ("localhost", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"),
    ("198.51.100.7", "504 5.5.2 <198.51.100.7>: Helo command rejected: need fully-qualified "
                     "hostname"),
    ("[IPv6:2001:db8::zz]", "501 5.5.2 <[IPv6:2001:db8::zz]>: Helo command rejected: invalid ip "
                            "address"),
    ("[198.51.100.7]", None), ("mail.remote.test.", None), ("host.123", None),
    (None, None),
])
def test_helo_name_checks(tmp_path, helo, want):
    e = engine_for({**RR, "smtpd_helo_restrictions": "reject_invalid_helo_hostname, "
                                                     "reject_non_fqdn_helo_hostname, "
                                                     "reject_unknown_helo_hostname"}, tmp_path)
    assert one(e, session(helo=helo), "u@example.test") == want


# ---------------------------------------------------------------------------
# DNS hooks

class FakeDns:
    configured = True

    def __init__(self, host: str, mailhost: str):
        self.host, self.mailhost = host, mailhost
        self.asked: list[str] = []

    async def host_status(self, name):
        self.asked.append(name)
        return self.host

    async def mailhost_status(self, name):
        self.asked.append(name)
        return self.mailhost


@pytest.mark.parametrize("host, mailhost, want", [
    (R.DNS_OK, R.DNS_OK, None),
    (R.DNS_NOTFOUND, R.DNS_OK,
     "450 4.7.1 <client.remote.test>: Helo command rejected: Host not found"),
    (R.DNS_OK, R.DNS_NOTFOUND,
     "450 4.1.8 <sender@remote.test>: Sender address rejected: Domain not found"),
    (R.DNS_OK, R.DNS_NULLMX,
     "550 5.7.27 <sender@remote.test>: Sender address rejected: Domain remote.test does not "
     "accept mail (nullMX)"),
    (R.DNS_RETRY, R.DNS_OK,
     # real Postfix 3.7.11 says "Host not found" for a timed-out HELO lookup
     # (recorded in tests/integration/dns/postfix_dns.json)
     "450 4.7.1 <client.remote.test>: Helo command rejected: Host not found"),
])
def test_dns_hooks(tmp_path, host, mailhost, want):
    dns = FakeDns(host, mailhost)
    e = engine_for({**RR, "smtpd_helo_restrictions": "reject_unknown_helo_hostname",
                    "smtpd_sender_restrictions": "reject_unknown_sender_domain",
                    "smtpd_recipient_restrictions": "reject_unknown_recipient_domain"},
                   tmp_path, dns=dns)
    assert one(e, session(), "u@example.test") == want
    assert "example.test" not in dns.asked      # local destinations are not looked up


def test_no_dns_means_dunno(tmp_path):
    e = engine_for({**RR, "smtpd_recipient_restrictions":
                    "reject_unknown_helo_hostname, reject_unknown_sender_domain, "
                    "reject_unknown_recipient_domain, reject_rbl_client zen.example, "
                    "permit_mx_backup"}, tmp_path)
    assert one(e, session(), "x@elsewhere.test") == \
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    assert one(e, session(), "u@example.test") is None


# ---------------------------------------------------------------------------
# the parameter adapter

def test_params_expansion_and_compat_defaults():
    p = R.Params({"compatibility_level": "3.6", "myhostname": "mx.example.test",
                  "mydomain": "example.test", "x": "${myhostname?{yes}}", "y": "$(mydomain)"})
    assert p.text("mydestination") == "mx.example.test, localhost.example.test, localhost"
    assert p.text("smtpd_relay_restrictions") == \
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
    assert p.text("relay_domains") == ""
    assert p.text("y") == "example.test"
    assert p.optional("no_such_class") is None
    old = R.Params({"compatibility_level": "0", "myhostname": "h.example"})
    assert old.text("relay_domains") == "h.example, localhost.localdomain, localhost"
    assert old.text("smtpd_relay_restrictions") == ""
    assert not old.is_set("smtpd_relay_restrictions")


def test_split_restrictions_keeps_braces():
    assert R.split_restrictions("check_policy_service { inet:127.0.0.1:1, timeout=1s }, "
                                "permit") == [
        "check_policy_service", "{ inet:127.0.0.1:1, timeout=1s }", "permit"]


def test_a_table_failing_oddly_is_a_451_not_a_traceback(tmp_path, logs):  # noqa: F811
    class Odd:
        type = "odd"

        def lookup(self, key):
            raise ValueError("odd table broke")

    def opener(spec, fold=True, **kw):
        return Odd() if spec.startswith("odd:") else open_map_for_tests(spec, fold=fold, **kw)

    e = engine_for({**RR, "smtpd_recipient_restrictions": "check_helo_access odd:x"}, tmp_path,
                   open_map=opener)
    assert one(e, session(), "u@example.test") == "451 4.3.5 Server configuration error"
    assert logs.lines[0] == "warning: Recipient address restrictions: ValueError: odd table broke"
