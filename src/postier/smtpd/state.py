"""What one SMTP session knows, as the restriction engine and the logs see it.

The server (postier.smtpd.server) fills a `SessionState`; the restriction
engine (postier.smtpd.restrictions) reads it and records side effects
(HOLD, DISCARD, FILTER, REDIRECT, PREPEND, BCC, WARN/INFO log lines) in it.
Nothing here does I/O.

Parameters read: none (the server and the engine read main.cf).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Client:
    """The SMTP client as smtpd sees it (XCLIENT may replace it)."""

    addr: str = ""               # "192.0.2.1" or "2001:db8::1" (no brackets, no IPV6: prefix)
    name: str = "unknown"        # verified hostname, or "unknown"
    reverse_name: str = "unknown"  # PTR name (may be unverified), or "unknown"
    port: str = ""
    name_status: int = 5         # Postfix: 2 = OK, 4 = temporary failure, 5 = permanent failure
    reverse_name_status: int = 5

    @property
    def namaddr(self) -> str:
        """`name[addr]`, as in every Postfix log line and many replies."""
        return f"{self.name}[{self.addr}]"


@dataclass
class Actions:
    """Side effects of restrictions and access maps for the current message.

    The queue (or, before it exists, the spool writer) applies them when the
    message is committed.
    """

    hold: str | None = None          # reason text of the first HOLD
    discard: str | None = None       # reason text of the first DISCARD
    filter: str | None = None        # transport:destination of the last FILTER
    redirect: str | None = None      # address of the last REDIRECT
    prepend: list[str] = field(default_factory=list)   # header lines to add, in order
    bcc: list[str] = field(default_factory=list)


@dataclass
class SessionState:
    """Per-session and per-transaction facts (RSET/MAIL clear the latter)."""

    client: Client = field(default_factory=Client)
    real_client: Client = field(default_factory=Client)   # before XCLIENT: connect-time checks
    server_addr: str = ""
    server_port: str = ""
    helo_name: str | None = None     # None until HELO/EHLO
    protocol: str = "SMTP"           # SMTP, ESMTP (ESMTPS/ESMTPA ... as Postfix logs them)
    tls: bool = False
    xforward: dict[str, str] = field(default_factory=dict)   # XFORWARD attributes (for logs/Received)
    sasl_username: str | None = None
    # transaction
    sender: str | None = None        # None: no MAIL yet; "" is the null sender
    mail_params: dict[str, str] = field(default_factory=dict)
    recipient: str | None = None     # the RCPT being checked
    recipients: list[str] = field(default_factory=list)   # accepted ones
    rcpt_count: int = 0              # RCPT commands seen in this transaction
    queue_id: str | None = None      # allocated at the first accepted RCPT (Postfix behaviour)
    message_size: int = 0            # from MAIL SIZE=, or the real size at end of data
    actions: Actions = field(default_factory=Actions)
    # pipelining facts for reject_unauth_pipelining
    pipelined: bool = False          # the client sent a command before our previous reply
    ehlo_seen_pipelining: bool = False
    # the restriction engine's memory between commands (defer_if_permit
    # carried from client/HELO/MAIL to RCPT, the policy "instance");
    # postier.smtpd.restrictions owns it, the server only keeps it
    check_state: object | None = None

    @property
    def log_queue_id(self) -> str:
        return self.queue_id or "NOQUEUE"

    def reset_transaction(self) -> None:
        self.sender = None
        self.mail_params = {}
        self.recipient = None
        self.recipients = []
        self.rcpt_count = 0
        self.queue_id = None
        self.message_size = 0
        self.actions = Actions()
