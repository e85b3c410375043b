import pytest

from postier.cleanup import Cleanup, CleanupSettings, Rcpt
from postier.config import Config

BASE = """\
compatibility_level = 3.6
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.0/8, 192.0.2.0/24
local_header_rewrite_clients = permit_mynetworks
inet_interfaces = 127.0.0.1
recipient_delimiter = +
"""

RECEIVED = (b"Received: from c.test (ws.lan.test [192.0.2.5])\n"
            b"\tby mx.example.test (Postfix) with ESMTP id QID\n"
            b"\tfor <u@example.test>; Sat, 28 Nov 2026 05:51:02 +0000 (UTC)\n")


def settings(extra: str = "") -> CleanupSettings:
    return CleanupSettings.from_config(Config.from_text(BASE + extra))


def run(s: CleanupSettings, data: bytes, *, sender="s@remote.test", rcpts=("u@example.test",),
        client="192.0.2.5", chunk: int = 0, arrival: float = 1_800_000_000.0):
    """Cleanup one message; returns (cleanup, stored bytes without Received)."""
    c = Cleanup(s, queue_id="QID", sender=sender,
                recipients=[r if isinstance(r, Rcpt) else Rcpt(r, "", f"rfc822;{r}") for r in rcpts],
                client_addr=client, real_addr="127.0.0.1", arrival=arrival)
    out = c.received(RECEIVED)
    if chunk:
        for i in range(0, len(data), chunk):
            out += c.feed(data[i:i + chunk])
    else:
        out += c.feed(data)
    out += c.finish()
    if c.error is not None:     # Postfix stops writing content after an error
        return c, out
    assert out.startswith(RECEIVED)
    return c, out[len(RECEIVED):]


@pytest.fixture
def mk():
    return settings
