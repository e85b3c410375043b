"""`sendmail -bs`: postier's smtpd serving a local user over the pickup socket.

Postfix runs smtpd(8) in stand-alone mode on the user's stdin/stdout and
hands the messages to postdrop.  postier's sendmail instead relays stdin
and stdout over the pickup socket, and the running daemon serves the
session with its own smtpd code (postier.smtpd.server) as Postfix's
stand-alone smtpd would: the client is `localhost[127.0.0.1]`, no access
restrictions apply (relaying is allowed), XCLIENT, XFORWARD and STARTTLS
are not offered, and headers are rewritten in the local context.  Each
accepted message gets pickup's `Received: by HOST (MAIL_NAME, from userid
UID)` header in front of smtpd's own, and the log shows
`QUEUEID: uid=UID from=<SENDER>` as pickup logs it for the message.

Parameters read: content_filter (through the caller), and everything smtpd
reads (postier.smtpd.server), through SmtpdSettings.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from postier.cleanup import LOCAL, Rcpt
from postier.pickup.cleanup import PickupCleanup, received_header
from postier.smtpd.server import PermitAll, Smtpd, SmtpdServer, SmtpdSettings
from postier.smtpd.state import Client


def local_settings(settings: SmtpdSettings) -> SmtpdSettings:
    """smtpd's settings as stand-alone mode uses them."""
    return dataclasses.replace(
        settings, xclient_hosts=[], xforward_hosts=[], tls_context=None,
        peername_lookup=True,           # see LocalSmtpdServer.lookup_peer
        conn_count_limit=0, conn_rate_limit=0, event_limit_exceptions=[])


class LocalSmtpd(Smtpd):
    """One `sendmail -bs` session of the local user `uid`."""

    def __init__(self, server: LocalSmtpdServer, uid: int, log_info: Any):
        super().__init__(server)
        self.uid = uid
        self.log_info = log_info

    def eof_received(self) -> bool:
        # aiosmtpd cancels the session at end of input; stand-alone smtpd
        # first answers every command it has read (a script ends with QUIT
        # and then closes its end): let the reader see the end instead
        return asyncio.StreamReaderProtocol.eof_received(self)

    def _open_queue_file(self) -> bool:
        ok = super()._open_queue_file()
        if ok:
            from postier.smtpd.address import external
            self.log_info(f"{self.st.queue_id}: uid={self.uid} "
                          f"from=<{external(self.st.sender or '')}>")
        return ok

    def _envelope(self):
        env = super()._envelope()
        env.server_address = env.server_port = ""    # a Unix socket has no address
        if not env.content_filter:
            env.content_filter = self.server.content_filter   # pickup adds it in Postfix
        return env

    def _received_header(self) -> bytes:
        mine = received_header(self.s.myhostname, self.s.mail_name, self.uid,
                               self.st.queue_id or "", self.arrival)
        return mine + super()._received_header()

    def _start_cleanup(self) -> bytes:
        settings = self.s.cleanup
        if settings is None:
            self.cleanup = None
            return self._received_header()
        st = self.st
        self.cleanup = PickupCleanup(
            settings, queue_id=st.queue_id or "", sender=st.sender or "",
            recipients=[Rcpt(addr, notify, orcpt) for addr, notify, orcpt, _ in self.rcpt_meta],
            client_addr=st.client.addr, real_addr=st.real_client.addr,
            arrival=self.arrival, rewrite_context=LOCAL)
        self.cleanup.log_origin = "local"          # Postfix: pickup -> cleanup
        return self.cleanup.received(self._received_header())


class LocalSmtpdServer(SmtpdServer):
    """The shared state of the -bs sessions: no restrictions, and every
    client is localhost[127.0.0.1] (Postfix's stand-alone mode)."""

    def __init__(self, settings: SmtpdSettings, loop: Any, content_filter: str = ""):
        super().__init__(local_settings(settings), PermitAll(), loop=loop)
        self.content_filter = content_filter

    async def lookup_peer(self, client: Client) -> None:
        client.addr = "127.0.0.1"
        client.name = client.reverse_name = "localhost"
        client.name_status = client.reverse_name_status = 2

    async def serve(self, sock: Any, uid: int, log_info: Any) -> None:
        """Run one session on an accepted Unix socket."""
        await self.loop.connect_accepted_socket(lambda: LocalSmtpd(self, uid, log_info), sock)
