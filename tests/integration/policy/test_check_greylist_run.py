"""check_greylist inside `postier run` (smtpd_recipient_restrictions), driven
by Python's smtplib with XCLIENT: the first attempt is deferred with
postgrey's reply, the retry after greylist_delay is accepted and the queued
message carries the X-Greylist header; whitelists and auto-whitelisting
work in-process; and two `postier run` processes sharing one Redis
(greylist_store = redis:127.0.0.1:PORT) see each other's triplets.

The servers are policy_peers.PostierRun (main.cf = the private Postfix
instance's base + overrides, one smtpd on a loopback port, no queue
manager: accepted mail stays in incoming/).
"""

from __future__ import annotations

import os
import smtplib
import time

import pytest
from policy_peers import PostierRun

from postier.queue.file import read_content

pytestmark = pytest.mark.slow

GREYLISTED = ("4.2.0 <user@example.test>: Recipient address rejected: Greylisted, see "
              "http://postgrey.schweikert.ch/help/example.test.html")


def overrides(**extra: str) -> dict[str, str]:
    o = {"smtpd_recipient_restrictions": "reject_unauth_destination, check_greylist",
         "greylist_delay": "2"}
    o.update(extra)
    return o


def attempt(port: int, rcpt: str = "user@example.test", client: str = "198.51.100.7",
            sender: str = "alice@remote.test") -> tuple[int, str, str | None]:
    """One transaction: (RCPT code, RCPT text, queue ID when DATA was accepted)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        s.ehlo("mail.remote.test")
        code, _ = s.docmd("XCLIENT", f"ADDR={client} NAME=mail.remote.test")
        assert code == 220
        s.ehlo("mail.remote.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        qid = None
        if code == 250:
            dcode, dtext = s.data(b"Subject: greylisting\r\n\r\nhello\r\n")
            assert dcode == 250
            qid = dtext.decode().rsplit(" ", 1)[-1]
        return code, text.decode(), qid
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


@pytest.fixture
def postier_servers():
    started: list[PostierRun] = []

    def start(ovr, **kw) -> PostierRun:
        srv = PostierRun(ovr, **kw)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.cleanup()


@pytest.mark.parametrize("pure", [False, True], ids=["native", "pure"])
def test_in_process_greylisting(postier_servers, pure):
    srv = postier_servers(overrides(greylist_auto_whitelist_clients="1"), pure=pure)
    code, text, _ = attempt(srv.port)
    assert (code, text) == (450, GREYLISTED)
    assert attempt(srv.port)[0] == 450          # an early retry
    time.sleep(2.5)
    code, _, qid = attempt(srv.port)
    assert code == 250 and qid
    log = srv.maillog()
    assert "action=greylist, reason=new, client_name=mail.remote.test, " \
           "client_address=198.51.100.7, sender=alice@remote.test, " \
           "recipient=user@example.test" in log
    assert "action=pass, reason=triplet found, delay=" in log
    assert "whitelisted: mail.remote.test[198.51.100.7]" in log
    # auto-whitelisted after 1 delivery: a new triplet from that client passes at once
    assert attempt(srv.port, sender="other@remote.test")[0] == 250
    assert "action=pass, reason=client AWL" in srv.maillog()
    # the store file is where greylist_store's default puts it, and sound
    path = os.path.join(srv.root, "data", "greylist")
    from postier.policy.store import check_store
    assert check_store(path)["ok"]


def test_in_process_header_is_prepended(postier_servers):
    srv = postier_servers(overrides())
    assert attempt(srv.port)[0] == 450
    time.sleep(2.5)
    code, _, qid = attempt(srv.port)
    assert code == 250
    content = read_content(srv.queue_file(qid)).decode()
    # Postfix puts PREPEND headers above its own Received: header
    assert content.startswith("X-Greylist: delayed "), content[:300]
    assert " seconds by postier-greylist-" in content.split("\n", 1)[0]


def test_in_process_whitelists(postier_servers, tmp_path):
    wc = tmp_path / "whitelist_clients"
    wc.write_text("198.51.100.0/24\n")
    wr = tmp_path / "whitelist_recipients"
    wr.write_text("postmaster@\n")
    srv = postier_servers(overrides(greylist_whitelist_clients=str(wc),
                                    greylist_whitelist_recipients=str(wr)))
    assert attempt(srv.port)[0] == 250
    assert attempt(srv.port, client="192.0.2.1")[0] == 450
    assert attempt(srv.port, client="192.0.2.1", rcpt="postmaster@example.test")[0] == 250
    log = srv.maillog()
    assert "action=pass, reason=client whitelist" in log
    assert "action=pass, reason=recipient whitelist" in log


def test_two_instances_share_redis(postier_servers, redis):
    a = postier_servers(overrides(greylist_store=redis.spec, greylist_delay="3"))
    b = postier_servers(overrides(greylist_store=redis.spec, greylist_delay="3"))
    code, text, _ = attempt(a.port)
    assert (code, text) == (450, GREYLISTED)
    # the other MX sees the triplet: an early retry there, then a pass
    time.sleep(1.1)
    assert attempt(b.port)[0] == 450
    assert "reason=early-retry (" in b.maillog()
    time.sleep(2.5)
    code, _, qid = attempt(b.port)
    assert code == 250 and qid
    assert "action=pass, reason=triplet found, delay=" in b.maillog()
    # and back on the first one the triplet is known
    assert attempt(a.port)[0] == 250
    assert "action=pass, reason=triplet found, client_name=" in a.maillog()
