"""cleanup: what Postfix's cleanup(8) and trivial-rewrite(8) do to a message
between smtpd and the queue.

    from postier.cleanup import Cleanup, CleanupSettings, Rcpt
    settings = CleanupSettings.from_config(cfg)          # once per start/reload
    c = Cleanup(settings, queue_id=qid, sender=sender, recipients=[Rcpt(addr, notify, orcpt)],
                client_addr=addr, real_addr=peer_addr)
    out = c.received(received_header) + c.feed(chunk) + ... + c.finish()
    c.error / c.sender / c.recipients / c.rewrite_context / c.header_encoding

Modules: core (the streaming Cleanup), rewrite (trivial-rewrite, canonical,
virtual, masquerade, bcc, relocated), headers (header table, is_header, date
format), settings (the parameters).  RFC 822 address parsing as Postfix does
it is postier.tok822 (shared with maps, delivery, pickup and content).  `relocated_reply()` is the RCPT-time relocated_maps check
that smtpd calls.

Parameters read: see postier.cleanup.settings.
"""

from postier.cleanup.core import Cleanup, Rcpt, notify_mask, notify_words
from postier.cleanup.rewrite import LOCAL, REMOTE, Maps, Rewriter, TableError
from postier.cleanup.settings import CleanupSettings
from postier.errors import Reply


def relocated_reply(settings: CleanupSettings, recipient: str) -> Reply | None:
    """smtpd's reject_unlisted_recipient for relocated users: `550 5.1.6
    <rcpt>: Recipient address rejected: User has moved to NEWLOC` when
    relocated_maps knows `recipient` (internal form) and it is not matched by
    recipient_canonical_maps, canonical_maps or virtual_alias_maps (Postfix
    accepts such a recipient without looking further).  A table failure
    answers `451 4.3.0 <rcpt>: Recipient address rejected: Temporary lookup
    failure`."""
    rw = settings.rewriter
    if not rw.relocated_maps:
        return None
    try:
        for maps in (settings.recipient_canonical, settings.canonical, settings.virtual):
            if maps and rw.find(maps, recipient, external_first=True)[0] is not None:
                return None
        newloc = rw.relocated(recipient)
    except TableError:
        return Reply(451, "4.3.0", f"<{recipient}>: Recipient address rejected: "
                                   "Temporary lookup failure")
    if newloc is None:
        return None
    return Reply(550, "5.1.6", f"<{recipient}>: Recipient address rejected: "
                               f"User has moved to {newloc}")


__all__ = ["Cleanup", "CleanupSettings", "LOCAL", "Maps", "REMOTE", "Rcpt", "Rewriter",
           "TableError", "notify_mask", "notify_words", "relocated_reply"]
