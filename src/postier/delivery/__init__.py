"""Delivery agents: the contract between the queue manager and each transport.

The queue manager (postier.qmgr) groups the recipients of one queue file by
(transport, nexthop), as Postfix's trivial-rewrite resolves them, and hands
each group to the delivery agent of that transport as a `DeliveryRequest`.
The agent returns one `RecipientStatus` per recipient; the queue manager
alone decides what happens next (mark done, defer with backoff, bounce),
logs the `to=<...>, relay=..., delay=..., delays=a/b/c/d, dsn=..., status=...`
line and writes the bounce/defer logs.

Agents are asyncio coroutines registered in AGENTS by transport *command*
name (master.cf's command: smtp, lmtp, error, discard, local, virtual, pipe);
master.cf service names (smtp, relay, smtp-amavis, ...) map to a command and
may carry `-o` overrides, which the request carries as `config`.

Parameters read: none here (each agent documents its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DeliveryRequest:
    queue_id: str
    queue_path: str               # committed queue file (read content with postier.queue.file)
    content_offset: int           # start of the message content in the file
    content_size: int
    sender: str                   # envelope sender ("" = null sender)
    recipients: list[Any]         # postier.queue.file.Recipient objects of this group
    transport: str                # master.cf service name, e.g. "smtp", "relay", "smtp-amavis"
    nexthop: str                  # e.g. "example.test", "[127.0.0.1]:10024", "" for default
    config: Any = None            # postier.config.Config as seen by that master.cf service
    arrival: float = 0.0          # message arrival time (for delays=)
    dsn_envid: str = ""
    dsn_ret: str = ""
    body_type: str = ""
    smtputf8: bool = False
    attrs: dict[str, str] = field(default_factory=dict)   # client_*, helo, protocol for XFORWARD


@dataclass
class RecipientStatus:
    recipient: Any                # the Recipient it is about
    status: str                   # "sent", "deferred", "bounced" (soft_bounce is applied by qmgr)
    dsn: str                      # enhanced status, e.g. "2.0.0", "4.4.1", "5.1.1"
    text: str                     # Postfix-style explanation: "250 2.0.0 Ok: queued as X" or
                                  # "host x[1.2.3.4] said: 550 5.1.1 ... (in reply to RCPT TO command)"
    relay: str = "none"           # "host[ip]:port", "local", "none"
    conn_delay: float = 0.0       # delays=a/b/c/d: c = connection setup, d = transmission
    xmit_delay: float = 0.0
    conn_use: int = 0             # > 1: the connection's use count (a reused connection)


Agent = Callable[[DeliveryRequest], Awaitable[list[RecipientStatus]]]
AGENTS: dict[str, Agent] = {}


def register(command: str) -> Callable[[Agent], Agent]:
    """Decorator: make `fn` the delivery agent for master.cf command `command`."""
    def deco(fn: Agent) -> Agent:
        AGENTS[command] = fn
        return fn
    return deco
