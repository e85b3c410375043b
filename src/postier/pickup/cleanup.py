"""cleanup as Postfix runs it for pickup(8): locally submitted mail.

`PickupCleanup` is postier.cleanup's Cleanup with the two things cleanup
does differently for mail from the sendmail command:

* an added From: header carries the sender's full name (sendmail -F,
  $NAME or the GECOS field) when the envelope sender is not null, in the
  form header_from_format selects: `From: Full Name <user@origin>`
  (standard; the name becomes a quoted string when it contains `%`, `!`
  or RFC 822 specials) or `From: user@origin (Full Name)` (obsolete);
* a recipient without a DSN original recipient gets `rfc822;ADDRESS`,
  ADDRESS being the recipient after trivial-rewrite and canonical mapping
  and before virtual alias expansion (what Postfix 3.7 records for
  sendmail recipients, pinned by the oracle tests); automatic BCC
  recipients get none, as in Postfix.

`received_header(...)` is the header pickup(8) puts in front of the
content: `Received: by HOST (MAIL_NAME, from userid UID)` / `id QID; DATE`.

Parameters read: header_from_format, myhostname, mail_name (through the
caller), and everything postier.cleanup reads.
"""

from __future__ import annotations

from postier import tok822
from postier.cleanup import Cleanup
from postier.cleanup.headers import mail_date

_NAME_SPECIALS = "%!" + tok822.SPECIALS


def received_header(myhostname: str, mail_name: str, uid: int, queue_id: str,
                    when: float) -> bytes:
    return (f"Received: by {myhostname} ({mail_name}, from userid {uid})\n"
            f"\tid {queue_id}; {mail_date(when)}\n").encode("utf-8", "surrogateescape")


def from_header(resent: str, sender: str, name: str, standard: bool = True,
                token_limit: int = 10240) -> str:
    """The From: header cleanup adds for `sender` (internal form) with a
    full name (cleanup_header_done_callback)."""
    addr = tok822.quote_822_local(sender)
    name = name.replace("\r", " ").replace("\n", " ")
    if standard:
        if any(c in _NAME_SPECIALS for c in name):
            phrase = tok822.externalize(tok822.Tok(tok822.QSTRING, name))
        else:
            head, _ = tok822.scan(name, token_limit)
            phrase = tok822.externalize(head) if head is not None else ""
        return f"{resent}From: " + (phrase + " " if phrase else "") + f"<{addr}>"
    comment = tok822.externalize(tok822.parse(f"({name})"))
    return f"{resent}From: {addr} {comment}"


class PickupCleanup(Cleanup):
    """Cleanup for one locally submitted message (see the module docstring)."""

    def __init__(self, settings, *, full_name: str = "", from_format: str = "standard",
                 **kw):
        self.full_name = full_name
        self.from_standard = from_format != "obsolete"
        self._in_bcc = False
        super().__init__(settings, **kw)

    # -- envelope ---------------------------------------------------------

    def _add_bcc(self, bcc: str, segment: str) -> None:
        self._in_bcc = True
        try:
            super()._add_bcc(bcc, segment)
        finally:
            self._in_bcc = False

    def _out_recipient(self, dsn_orcpt: str, notify: int, orcpt: str, recip: str,
                       segment: str) -> None:
        if not dsn_orcpt and not self._in_bcc:
            dsn_orcpt = "rfc822;" + recip
        super()._out_recipient(dsn_orcpt, notify, orcpt, recip, segment)

    # -- headers ----------------------------------------------------------

    def _header_done(self, out: list[bytes]) -> None:
        key = "resent-from" if self._resent else "from"
        add = self.hdr_ctx is not None or self.s.always_add_missing_headers
        if (not self.full_name or not self.sender or not add or key in self._seen
                or not self._out_ok()):
            super()._header_done(out)
            return
        start = len(out)
        self._seen.add(key)
        super()._header_done(out)
        header = from_header(self._resent, self.sender, self.full_name, self.from_standard,
                             self.s.token_limit)
        line = header.encode("utf-8", "surrogateescape") + b"\n"
        # Postfix's order: Message-Id, Date, From, then the undisclosed
        # recipients header (which the base class adds last, if at all)
        pos = len(out)
        hdr = self.s.undisclosed_recipients_header
        if hdr and pos > start and out[-1] == hdr.encode("utf-8", "surrogateescape") + b"\n":
            pos -= 1
        out.insert(pos, line)
