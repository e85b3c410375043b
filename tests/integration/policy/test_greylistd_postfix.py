"""Real Postfix 3.7 with `check_policy_service inet:127.0.0.1:PORT`, where PORT
is `postier greylistd` (and, for comparison, the real postgrey): the first
attempt is deferred with postgrey's reply, the retry after the delay is
accepted and the queued message carries the X-Greylist header.

The private Postfix instance (tools/postfix_instance.py) listens on a
loopback port, has no delivery agents (accepted mail stays in its
incoming queue, read back with postcat) and sees the client as
198.51.100.7 through XCLIENT (outside mynetworks).
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from policy_peers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postfix]

XCLIENT = {"ADDR": "198.51.100.7", "NAME": "mail.remote.test"}
GREYLISTED = ("4.2.0 <user@example.test>: Recipient address rejected: Greylisted, see "
              "http://postgrey.schweikert.ch/help/example.test.html")


@pytest.fixture
def postfix_with_policy():
    from postfix_instance import PostfixInstance, postfix_available
    if not postfix_available() or os.geteuid() != 0:
        pytest.skip("real Postfix not installed or not root")
    started = []

    def start(port: int):
        pf = PostfixInstance()
        started.append(pf)
        pf.write_config({"smtpd_recipient_restrictions":
                         f"reject_unauth_destination, check_policy_service inet:127.0.0.1:{port}",
                         "smtpd_policy_service_try_limit": "1"})
        pf.start()
        return pf

    yield start
    for pf in started:
        pf.cleanup()


def transaction(pf, rcpt: str = "user@example.test", data: bool = False):
    cmds = ["EHLO mail.remote.test", "MAIL FROM:<alice@remote.test>", f"RCPT TO:<{rcpt}>"]
    if data:
        cmds += ["DATA", "Subject: greylisting test\r\n\r\nhello\r\n."]
    return pf.session(cmds, xclient=XCLIENT)


@pytest.mark.parametrize("server", ["greylistd", "postgrey"])
def test_postfix_greylisting(postfix_with_policy, start_greylistd, postgrey, server):
    if server == "greylistd":
        port = free_port()
        start_greylistd(["--delay=2"], port=port)
        product = "postier-greylist-"
    else:
        pg = postgrey(delay=2)
        port = pg.port
        product = "postgrey-"
    pf = postfix_with_policy(port)
    first = transaction(pf)
    rcpt = first[-2]
    assert (rcpt.code, rcpt.text) == (450, GREYLISTED)
    time.sleep(2.5)
    second = transaction(pf, data=True)
    codes = [r.code for r in second]
    assert codes[-4:] == [250, 354, 250, 221], second
    qid = re.search(r"queued as ([0-9A-Za-z]+)", second[-2].text).group(1)
    headers = subprocess.run(["postcat", "-c", pf.etc, "-hq", qid], capture_output=True,
                             text=True, check=True).stdout
    m = re.search(rf"^X-Greylist: delayed (\d+) seconds by {product}\S+ at \S+; .+$",
                  headers, re.M)
    assert m and int(m.group(1)) >= 2, headers
    assert "NOQUEUE: reject: RCPT from mail.remote.test[198.51.100.7]: 450 " + GREYLISTED \
        in pf.read_log()
