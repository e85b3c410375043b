"""`sendmail -bv`: where would mail to these recipients go?

Postfix queues a probe that the queue manager resolves without delivering,
and mails the sender a "Mail Delivery Status Report".  postier answers at
once, on standard output: each recipient goes through cleanup's envelope
rewriting (trivial-rewrite in the local context, canonical maps,
masquerading, virtual alias expansion, automatic BCC) and then through the
address resolver (transport_maps, relayhost, relocated_maps ...), one line
per resulting recipient:

    <user@example.com>: deliverable via smtp:[relay.example.com]:587
    <canon@example.test> (expanded from <b>): deliverable via local:example.test
    <x@virtual.test>: undeliverable: 5.1.1 User unknown in virtual alias table
    <y@example.org>: address resolver failure (a table lookup failed)

This is a simplified answer: local(8)'s alias and .forward expansion and
the remote server's opinion (what Postfix's verify probes ask) are not
consulted.

Parameters read: everything cleanup (postier.cleanup.settings) and the
address resolver (postier.delivery.resolve) read.
"""

from __future__ import annotations

from typing import Any

from postier.errors import PostierError

NOTE = ("(postier resolves the addresses without delivering: local alias and .forward "
        "expansion and the remote servers are not consulted)\n")


def verify_report(cfg: Any, cleanup_settings: Any, req: Any) -> str:
    from postier.cleanup import LOCAL, Rcpt
    from postier.delivery.resolve import TransportResolver
    from postier.pickup.cleanup import PickupCleanup
    from postier.smtpd.address import external
    c = PickupCleanup(cleanup_settings, queue_id="NOQUEUE", sender=req.sender,
                      recipients=[Rcpt(a) for a in req.recipients], rewrite_context=LOCAL)
    if c.error is not None:
        raise PostierError(f"{c.error.enhanced} {c.error.text}".strip())
    try:
        resolver = TransportResolver(cfg)
    except (OSError, ValueError) as e:
        raise PostierError(f"address resolver: {e}") from None
    lines = []
    for r in c.recipients:
        who = f"<{external(r.address)}>"
        if r.orig and r.orig.lower() != r.address.lower():
            who += f" (expanded from <{external(r.orig)}>)"
        try:
            route = resolver.resolve(r.address, c.sender)
        except PostierError as e:
            lines.append(f"{who}: address resolver failure ({e})")
            continue
        if route.fail:
            lines.append(f"{who}: address resolver failure (a table lookup failed)")
        elif route.error:
            lines.append(f"{who}: undeliverable: bad address syntax")
        elif route.transport == "error":
            lines.append(f"{who}: undeliverable: {route.nexthop}")
        else:
            lines.append(f"{who}: deliverable via {route.transport}:{route.nexthop}")
    return "".join(line + "\n" for line in lines) + NOTE
