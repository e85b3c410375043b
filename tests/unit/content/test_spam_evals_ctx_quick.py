"""EvalContext.get and get_list answer from what the header phase left in
the message's HeaderView (a plain header name's value(), a request's get()
lines) exactly what they answer without it: HeaderView.lacks, get_str and
get of a HeaderView that has seen no request."""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam.headers import HeaderView
from postier.content.spam.scanner import SpamScanner

RULES = r"""
header   H_SUBJ   Subject =~ /zz/
header   H_RCVD   Received =~ /zz/
header   H_CT     Content-Type =~ /zz/
header   H_TO     To =~ /zz/
header   H_CC     Cc =~ /zz/
header   H_MISS   X-Missing =~ /zz/
header   H_FROMA  From:addr =~ /zz/
header   H_RTA    Reply-To:addr =~ /zz/
header   H_RTN    Reply-To:name =~ /zz/
header   H_MISSA  X-Missing:addr =~ /zz/
header   H_ENVF   EnvelopeFrom:addr =~ /zz/
header   H_ALL    ALL =~ /zz/
score H_SUBJ 0.1
"""

MESSAGES = [
    b"From: A <a@example.com>\nReply-To: b@example.com, \"c\" <c@example.com>\nTo: d@example.org\n"
    b"Cc:\nSubject: s\nReceived: from a by b; Mon, 2 Jan 2006 10:00:00 +0000\n"
    b"Received: from c\n  by d; Mon, 2 Jan 2006 09:00:00 +0000\n\nbody\n",
    b"Subject: =?utf-8?q?caf=C3=A9?= \xe9\xff\nTo: x\x00y@example.com\nContent-Type: text/plain;\n"
    b" charset=\"iso-8859-1\"\n\nbody\n",
    b"Subject:\nSubject: second\nFrom: <>\nX-Missing-Not: 1\n\nno headers asked are here\n",
    b"\nno header at all\n",
    b"Content-Type: multipart/alternative; boundary=\"b\"\nTo: \"Q\" <q@example.com>,\n r@example.com\n\n"
    b"--b\nContent-Type: text/plain\n\nx\n--b--\n",
]

REQUESTS = ("Subject", "Received", "Content-Type", "To", "Cc", "X-Missing", "From", "Date",
            "subject", "ALL", "Subject:raw", "From:addr", "Reply-To:addr", "Reply-To:name",
            "X-Missing:addr", "EnvelopeFrom:addr", "Reply-To:addr:addr", "ToCc:addr")


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _fresh_hv(run) -> HeaderView:
    return HeaderView(run.msg, run.relays, run.cr.envelope_sender_header, run.cr.registry)


@pytest.mark.parametrize("msg", MESSAGES)
def test_get_and_get_list_are_the_plain_answers(sc, msg):
    run = sc.run(msg)
    hv = _fresh_hv(run)
    for req in REQUESTS:
        want = "" if hv.lacks(req) else E._s(hv.get_str(req))
        assert E.EvalContext(run).get(req) == want, req
        assert E.EvalContext(run).get_list(req) == [E._s(x) for x in _fresh_hv(run).get(req)], req


def test_the_header_phase_left_the_answers_read(sc):
    # (the quick paths are taken: the values and lines they read are there)
    run = sc.run(MESSAGES[0])
    assert {"Subject", "Received", "Content-Type", "To", "X-Missing"} <= set(run.hv.made_values)
    assert run.hv.made_values["X-Missing"] is None
    assert run.hv.made_lists.get("Reply-To:addr") == [b"b@example.com", b"c@example.com"]
    ctx = E.EvalContext(run)
    assert ctx.get("Subject") == "s\n"
    assert ctx.get("Cc") == "\n"
    assert ctx.get("X-Missing") == ""
    assert ctx.get("Received") == ("from a by b; Mon, 2 Jan 2006 10:00:00 +0000\n"
                                   "from c by d; Mon, 2 Jan 2006 09:00:00 +0000\n")
    assert ctx.get_list("Reply-To:addr") == ["b@example.com", "c@example.com"]
    assert ctx.get_list("X-Missing:addr") == []
