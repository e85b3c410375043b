"""`postier filter` behind a real private Postfix, in amavisd-new's place:
Postfix's smtp client (transport smtp-amavis, content_filter) delivers to
postier filter, which scans with a real clamd and reinjects passed mail into
Postfix's 127.0.0.1:REINJECT smtpd service (-o content_filter=), which queues
it (and HOLDs it, so that postcat can read it).  A virus is answered with
554 and Postfix bounces the message, as with amavisd's D_BOUNCE."""

from __future__ import annotations

import time

import pytest
from content_peers import (
    EICAR,
    FilterProcess,
    PostfixWithFilter,
    free_port,
    plain,
    postfix_available,
    smtp_send,
)

pytestmark = [pytest.mark.slow, pytest.mark.postfix]

NAME = "Postier.Test.EICAR.UNOFFICIAL"


@pytest.fixture
def stack(clamd):
    if not postfix_available():
        pytest.skip("real Postfix not installed or not root (tools/setup.sh --test)")
    made: list = []

    def start(*, lmtp: bool = False, main_cf: dict[str, str] | None = None):
        pf = PostfixWithFilter(free_port(), lmtp=lmtp)
        made.append(pf)
        params = {"av_scanners": clamd.unix_spec, "quarantine_directory": "@ROOT@/quarantine"}
        params.update(main_cf or {})
        flt = FilterProcess(params, pf.reinject_port, lmtp=lmtp, port=pf.filter_port)
        made.append(flt)
        pf.write_config()
        flt.start()
        pf.start()
        return pf, flt

    yield start
    for x in made:
        x.cleanup()


def wait_for(pred, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_clean_mail_reinjected_with_headers_and_xforward(stack):
    pf, flt = stack()
    _, r = smtp_send(pf.port, plain(b"hello, clean\n"),
                     xclient="XCLIENT NAME=mail.example.org ADDR=192.0.2.7")
    assert r.code == 250
    first = r.text.rsplit(" ", 1)[1]
    assert wait_for(lambda: pf.queue_ids("hold")), pf.read_log()
    (held,) = pf.queue_ids("hold")
    text = pf.postcat(held)
    content = text.split("*** MESSAGE CONTENTS", 1)[1].split("\n", 1)[1].splitlines()
    # Postfix's reinjection Received:, postier's header, postier filter's own
    # Received:, then the message as Postfix first received it
    assert content[0].startswith("Received: from filter.example.test (localhost [127.0.0.1])")
    assert content[3] == "X-Virus-Scanned: postier at example.test"
    assert content[4].startswith("Received: from mx.example.test")
    assert f"(postier, port {pf.filter_port}) with ESMTP id" in content[5]
    assert content[7].startswith("Received: from client.test (mail.example.org [192.0.2.7])")
    # XFORWARD carried the original client through the filter
    assert "named_attribute: log_client_address=192.0.2.7" in text
    assert f"named_attribute: log_ident={first}" in text
    log = pf.read_log()
    assert f"orig_queue_id={first}, orig_client=mail.example.org[192.0.2.7]" in log
    assert f"{first}: to=<user@example.test>, relay=127.0.0.1[127.0.0.1]:{pf.filter_port}" in log
    assert "status=sent (250 2.0.0 Ok, id=" in log
    assert f"from MTA([127.0.0.1]:{pf.reinject_port}): 250 2.0.0 Ok: queued as {held})" in log
    assert "[192.0.2.7] <sender@example.org> -> <user@example.test>" in flt.maillog()


def test_virus_is_bounced_by_postfix(stack):
    pf, flt = stack()
    _, r = smtp_send(pf.port, plain(EICAR + b"\n"))
    assert r.code == 250                     # Postfix queued it; the filter decides later
    qid = r.text.rsplit(" ", 1)[1]
    assert wait_for(lambda: f"{qid}: removed" in pf.read_log()), pf.read_log()
    log = pf.read_log()
    line = next(x for x in log.splitlines() if f"{qid}: to=<user@example.test>" in x)
    assert "status=bounced (host 127.0.0.1[127.0.0.1] said: 554 5.7.0 Reject, id=" in line
    assert line.endswith(f"VIRUS: {NAME} (in reply to end of DATA command))")
    assert f"{qid}: sender non-delivery notification" in log
    assert "Blocked INFECTED" in flt.maillog()


def test_scanner_down_postfix_defers(stack, tmp_path):
    pf, _ = stack(main_cf={"av_scanners": f"clamd:unix:{tmp_path}/none.sock"})
    _, r = smtp_send(pf.port, plain(b"clean\n"))
    qid = r.text.rsplit(" ", 1)[1]
    assert wait_for(lambda: f"{qid}: to=<user@example.test>" in pf.read_log()), pf.read_log()
    line = next(x for x in pf.read_log().splitlines() if f"{qid}: to=<user@example.test>" in x)
    assert "status=deferred" in line and "451 4.5.0 Error in processing" in line
    assert pf.queue_ids("deferred") == [qid]


def test_lmtp_per_recipient_replies(stack):
    pf, flt = stack(lmtp=True, main_cf={
        "content_bypass_maps": "inline:{lover@example.test=virus}"})
    _, r = smtp_send(pf.port, plain(EICAR + b"\n"),
                     rcpts=("lover@example.test", "user@example.test"))
    qid = r.text.rsplit(" ", 1)[1]
    assert wait_for(lambda: f"{qid}: removed" in pf.read_log()), pf.read_log()
    lines = pf.read_log().splitlines()
    lover = next(x for x in lines if f"{qid}: to=<lover@example.test>" in x)
    user = next(x for x in lines if f"{qid}: to=<user@example.test>" in x)
    assert "status=sent (250 2.0.0 Ok, id=" in lover
    assert "status=bounced" in user and "554 5.7.0 Reject, id=" in user
    assert f"VIRUS: {NAME}" in user
    (held,) = pf.queue_ids("hold")
    text = pf.postcat(held)
    assert "recipient: lover@example.test" in text and "recipient: user@example.test" not in text
    assert f"X-Postier-Alert: INFECTED, message contains virus: {NAME}" in text
    assert "ehlo=0" not in flt.maillog() and "lhlo=1" in flt.maillog()
