"""error(8)/retry and discard(8): statuses, DSN codes and texts as real Postfix 3.7 logs them.

Expected values were recorded from a real Postfix 3.7.11 (transport_maps
entries error:..., retry:..., discard:...; the log's to=<...> lines)."""

from __future__ import annotations

import asyncio

import pytest

import postier.delivery.agents  # noqa: F401
from postier import log
from postier.delivery import AGENTS, DeliveryRequest
from postier.queue.file import Recipient


def _run(command, transport, nexthop, rcpts=("user@a.test",)):
    req = DeliveryRequest(queue_id="Q", queue_path="/nonexistent", content_offset=0,
                          content_size=0, sender="s@example.test",
                          recipients=[Recipient(r) for r in rcpts], transport=transport,
                          nexthop=nexthop)
    return asyncio.run(AGENTS[command](req))


def test_all_agents_registered():
    assert {"smtp", "lmtp", "error", "discard"} <= set(AGENTS)


@pytest.mark.parametrize("transport, nexthop, status, dsn, text, warning", [
    ("error", "5.1.1 custom text", "bounced", "5.1.1", "custom text", None),
    ("error", "plain text", "bounced", "5.0.0", "plain text", None),
    ("error", "4.2.2 four text", "bounced", "5.0.0", "four text",
     'bounce_append: ignoring dsn code "4.2.2"'),
    ("error", "", "bounced", "5.0.0", "Address is undeliverable", None),
    ("retry", "4.3.3 retry text", "deferred", "4.3.3", "retry text", None),
    ("retry", "plain retry", "deferred", "4.0.0", "plain retry", None),
    ("retry", "5.5.5 five", "deferred", "4.0.0", "five", 'defer_append: ignoring dsn code "5.5.5"'),
])
def test_error_and_retry(transport, nexthop, status, dsn, text, warning, capsys):
    log.setup("error", stderr=True, progname="postier/error")
    try:
        res = _run("error", transport, nexthop, ["a@x.test", "b@x.test"])
    finally:
        log.setup("postier")
    assert [(r.status, r.dsn, r.text, r.relay) for r in res] == [(status, dsn, text, "none")] * 2
    err = capsys.readouterr().err
    if warning:
        assert f"warning: {warning}" in err
    else:
        assert "warning" not in err


@pytest.mark.parametrize("nexthop, dsn, text", [
    ("", "2.0.0", "a.test"),                 # empty nexthop: the recipient domain
    ("some reason", "2.0.0", "some reason"),
    ("2.1.1 ok text", "2.1.1", "ok text"),
])
def test_discard(nexthop, dsn, text):
    [r] = _run("discard", "discard", nexthop)
    assert (r.status, r.dsn, r.text, r.relay) == ("sent", dsn, text, "none")
