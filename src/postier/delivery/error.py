"""The error delivery agent: Postfix's error(8), also serving the `retry` service.

Every recipient of the request fails with the nexthop text, the way
Postfix's error(8) does (`transport_maps` entry `error:5.1.1 text`):

* service `error` (or any service name but `retry`): `status=bounced`, the
  DSN taken from the start of the text when it is one (`5.1.1 text` ->
  dsn 5.1.1, text "text"), else 5.0.0.  A 4.x.x code there is not a bounce
  code: Postfix warns `bounce_append: ignoring dsn code "4.2.2"` and uses
  5.0.0; so does this agent.
* service `retry` (master.cf `retry unix - - n - - error`): `status=deferred`
  with 4.0.0 by default; a 5.x.x code gives `defer_append: ignoring dsn code`.

relay=none.  An empty nexthop gives "Address is undeliverable" (what
Postfix's resolver supplies for a bare `error:`).

Parameters read: none.
"""

from __future__ import annotations

from postier import log
from postier.delivery import DeliveryRequest, RecipientStatus, register
from postier.delivery.smtp import dsn_valid

__all__ = ["dsn_split", "error_agent"]


def dsn_split(text: str, default: str) -> tuple[str, str]:
    """Postfix dsn_split(): a leading RFC 3463 code and the rest of the text."""
    n = dsn_valid(text)
    if n:
        return text[:n], text[n:].lstrip(" \t")
    return default, text


@register("error")
async def error_agent(req: DeliveryRequest) -> list[RecipientStatus]:
    """Bounce (or, as `retry`, defer) every recipient with the nexthop text."""
    retry = req.transport == "retry"
    text = req.nexthop.strip() or "Address is undeliverable"
    dsn, reason = dsn_split(text, "4.0.0" if retry else "5.0.0")
    want = "4" if retry else "5"
    if dsn[0] != want:
        log.warning(f'{"defer" if retry else "bounce"}_append: ignoring dsn code "{dsn}"')
        dsn = want + ".0.0"
    status = "deferred" if retry else "bounced"
    return [RecipientStatus(r, status, dsn, reason, "none") for r in req.recipients]
