"""`postier greylistd` against the real postgrey: same options, same requests,
same answers and same log lines.

Both servers get the same command-line options (postgrey's names) and the
same whitelist files, then the same request sequence, each request with
a `policy_test_time` attribute (postgrey's own testing hook: the decision
clock), so hours and days pass without sleeping.  The answers must be
equal except for the X-Greylist header's product name, host and date; the
decision lines of both logs (`action=...`, `whitelisted: ...`, the
garbage/unrecognized-request lines, `correcting date ...`) must be equal.
"""

from __future__ import annotations

import re
import time

import pytest
from policy_peers import PolicyConn

pytestmark = pytest.mark.slow

CLIENTS_WL = """\
# client whitelist (postgrey format)
trusted.example
/^relay\\d+\\.bulk\\.test$/
203.0.113.0/28
198.18.7
2001:db8:feed::/48
"""

RECIPIENTS_WL = """\
postmaster@
whitelisted.example
/^no-grey-.*@example\\.net$/
"""

HEADER = re.compile(r"^(PREPEND X-Greylist: delayed \d+ seconds) by \S+ at \S+; .*$")


def normalise(action: str) -> str:
    m = HEADER.match(action)
    return m.group(1) if m else action


def decision_lines(lines: list[str]) -> list[str]:
    keep = ("action=", "whitelisted:", "ignoring garbage", "unrecognized request",
            "correcting date")
    return [ln for ln in lines if any(k in ln for k in keep)]


def scenario(t0: int) -> list[dict[str, str]]:
    """(attributes) of each request; policy_test_time is the clock."""
    T = t0
    reqs: list[dict[str, str]] = []

    def r(dt: int, **kw: str) -> None:
        kw["policy_test_time"] = str(T + dt)
        reqs.append(kw)

    a = {"sender": "alice@example.org", "recipient": "bob@example.net"}
    r(0, **a)
    r(0, **a)                                               # same second: still "new"
    r(30, **a)                                              # early retry
    r(61, instance="i-1", **a)                              # passes: header
    r(62, instance="i-1", **a)                              # known
    r(63, recipient="Bob@Example.NET", sender="ALICE@example.org")   # lc key: known
    # VERP and BATV senders normalise to one triplet
    r(100, sender="list-bounces-123-456@lists.test", recipient="carol@example.net")
    r(170, sender="list-bounces-789-1@lists.test", recipient="carol@example.net",
      instance="i-2")
    r(200, sender="prvs=0123456789=joe@x.test", recipient="dave@example.net")
    r(270, sender="joe@x.test", recipient="dave@example.net", instance="i-3")
    r(300, sender="prvs=joe=0123456789@x.test", recipient="erin@example.net")
    r(370, sender="joe+tag@x.test", recipient="erin@example.net", instance="i-4")
    # retry window (2 days): a first retry 3 days later starts over
    r(400, sender="slow@example.org", recipient="frank@example.net")
    r(400 + 3 * 86400, sender="slow@example.org", recipient="frank@example.net")
    # a first-seen time in the future is corrected
    r(5000, sender="future@example.org", recipient="gina@example.net")
    r(4000, sender="future@example.org", recipient="gina@example.net")
    # same /24 retries from another address; IPv6 /64 likewise
    r(500, client_address="192.0.2.200", client_name="other.example.org",
      sender="hop@example.org", recipient="hank@example.net")
    r(600, client_address="192.0.2.201", client_name="unknown",
      sender="hop@example.org", recipient="hank@example.net", instance="i-5")
    r(700, client_address="2001:db8:1:2::5", client_name="v6.example.org",
      sender="six@example.org", recipient="ivy@example.net")
    r(800, client_address="2001:db8:1:2:abcd::9", client_name="v6b.example.org",
      sender="six@example.org", recipient="ivy@example.net", instance="i-6")
    # whitelists
    r(900, client_name="mx.trusted.example")
    r(901, client_name="relay12.bulk.test")
    r(902, client_address="203.0.113.9", client_name="unknown")
    r(903, client_address="203.0.113.17", client_name="unknown")
    r(904, client_address="198.18.7.33", client_name="unknown")
    r(905, client_address="2001:db8:feed:1::1", client_name="unknown")
    r(906, recipient="postmaster@example.net")
    r(907, recipient="Postmaster+x@anything.test")
    r(908, recipient="user@sub.whitelisted.example")
    r(909, recipient="no-grey-list@example.net")
    # auto-whitelisting (--auto-whitelist-clients=2): one count per hour
    c = {"client_address": "198.51.100.9", "client_name": "unknown"}
    for i, base in enumerate((10_000, 10_100, 14_000)):
        trip = {"sender": f"awl{i}@example.org", "recipient": "judy@example.net", **c}
        r(base, **trip)
        r(base + 61, instance=f"awl-{i}", **trip)
    r(14_200, sender="after-awl@example.org", recipient="judy@example.net", **c)
    # queue ID in the log line, null sender, empty client name
    r(15_000, queue_id="4F2A1B3C", sender="", client_name="")
    return reqs


def run(port: int, reqs: list[dict[str, str]], garbage: bool = False) -> list[str]:
    conn = PolicyConn(port)
    out = []
    try:
        if garbage:
            conn.sock.sendall(b"this is garbage\nrequest=other\n\n")
        for kw in reqs:
            out.append(normalise(conn.ask(**kw)))
    finally:
        conn.close()
    return out


@pytest.mark.parametrize("options", [
    ["--delay=60", "--auto-whitelist-clients=2"],
    ["--delay=60", "--lookup-by-host", "--retry-window=1h", "--auto-whitelist-clients=0",
     "--greylist-text=Wait %s s for %r", "--ipv6cidr=48"],
    ["--delay=60", "--ipv4cidr=16", "--greylist-action=451", "--auto-whitelist-clients"],
], ids=["defaults", "by-host", "subnet16"])
def test_same_answers_and_log_as_postgrey(postgrey, start_greylistd, options):
    delay = 60
    pg = postgrey(delay=delay, whitelist_clients=CLIENTS_WL, whitelist_recipients=RECIPIENTS_WL,
                  extra_args=[o for o in options if not o.startswith("--delay")])
    gd = start_greylistd(options + [f"--whitelist-clients={pg.wl_clients}",
                                    f"--whitelist-recipients={pg.wl_recipients}"])
    reqs = scenario(int(time.time()))
    want = run(pg.port, reqs, garbage=True)
    got = run(gd.port, reqs, garbage=True)
    assert any(a.startswith("PREPEND") for a in want)
    assert got == want
    time.sleep(0.3)
    pg_lines = decision_lines(pg.log_lines())
    gd_lines = decision_lines(gd.log_lines())
    assert len(pg_lines) >= len(reqs)
    assert gd_lines == pg_lines
