"""The discard delivery agent: Postfix's discard(8).

Every recipient is reported delivered (`status=sent`, relay=none) without
going anywhere.  The status text is the nexthop (`discard:some reason` ->
"some reason"; a leading RFC 3463 code sets the DSN, default 2.0.0); with an
empty nexthop it is the recipient's domain, which is what Postfix's resolver
supplies as nexthop for a bare `discard:`.

Parameters read: none.
"""

from __future__ import annotations

from postier.delivery import DeliveryRequest, RecipientStatus, register
from postier.delivery.error import dsn_split

__all__ = ["discard_agent"]


@register("discard")
async def discard_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """Report every recipient as delivered."""
    out = []
    for r in req.recipients:
        text = req.nexthop.strip() or r.address.rpartition("@")[2] or "discarded"
        dsn, reason = dsn_split(text, "2.0.0")
        if dsn[0] != "2":      # sent() takes 2.x.x codes only
            dsn = "2.0.0"
        out.append(RecipientStatus(r, "sent", dsn, reason, "none"))
    return out
