"""check_policy_service: the client side of Postfix's policy delegation protocol.

A policy server gets one request per check: `name=value` lines, ended by an
empty line, in exactly the order Postfix 3.7 sends them (request,
protocol_state, protocol_name, client_address, client_name, client_port,
reverse_client_name, server_address, server_port, helo_name, sender,
recipient, recipient_count, queue_id, instance, size, etrn_domain, stress,
sasl_method, sasl_username, sasl_sender, ccert_subject, ccert_issuer,
ccert_fingerprint, ccert_pubkey_fingerprint, encryption_protocol,
encryption_cipher, encryption_keysize, policy_context).  It answers with
`action=...` lines and an empty line; the action is an access(5) result that
the restriction engine interprets (`PolicyClient.query` only transports it).

Endpoints: `inet:host:port` (`inet:[v6addr]:port` too) and `unix:/path`
(the bare `host:port` and `/path` forms are accepted as well).  Connections
are kept and reused: a pool per endpoint, each connection closed after
max_idle seconds unused, after max_ttl seconds of age, or after
request_limit requests.  A failed attempt is retried (try_limit attempts in
all, retry_delay apart) on a new connection.  Failures are logged the way
Postfix's attr_clnt does (`warning: connect to 127.0.0.1:9998: Connection
refused`, `warning: missing attribute action in input from 127.0.0.1:9998`,
`warning: problem talking to server 127.0.0.1:9998: Connection refused`), and
`query()` then returns None: the caller applies the default action
(`451 4.3.5 Server configuration problem` unless configured).

Per-service settings may be given in the restriction itself, as Postfix 3.0+
allows: `check_policy_service { inet:127.0.0.1:9998, timeout=10s,
default_action=DUNNO }` (`parse_service()`).

Parameters read (by `PolicySettings.from_params`, the caller passes the
values): smtpd_policy_service_timeout, smtpd_policy_service_max_idle,
smtpd_policy_service_max_ttl, smtpd_policy_service_try_limit,
smtpd_policy_service_retry_delay, smtpd_policy_service_request_limit,
smtpd_policy_service_default_action, smtpd_policy_service_policy_context.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from postier import log
from postier.config.mastercf import splitq

DEFAULT_ACTION = "451 4.3.5 Server configuration problem"

#: The request attributes, in Postfix 3.7's order.
ATTRIBUTES = (
    "request", "protocol_state", "protocol_name", "client_address", "client_name",
    "client_port", "reverse_client_name", "server_address", "server_port", "helo_name",
    "sender", "recipient", "recipient_count", "queue_id", "instance", "size",
    "etrn_domain", "stress", "sasl_method", "sasl_username", "sasl_sender",
    "ccert_subject", "ccert_issuer", "ccert_fingerprint", "ccert_pubkey_fingerprint",
    "encryption_protocol", "encryption_cipher", "encryption_keysize", "policy_context",
)

MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 100


class PolicyError(Exception):
    """A broken restriction argument (`check_policy_service { ... }`)."""


def _time(value: str, default_unit: str = "s") -> float:
    """Postfix time value: a number with an optional s/m/h/d/w unit."""
    v = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    unit = default_unit
    if v and v[-1].lower() in units:
        unit = v[-1].lower()
        v = v[:-1]
    if not v.isdigit():
        raise PolicyError(f"bad time value: {value}")
    return int(v) * units[unit]


@dataclass(frozen=True)
class PolicySettings:
    timeout: float = 100.0
    max_idle: float = 300.0
    max_ttl: float = 1000.0
    try_limit: int = 2
    retry_delay: float = 1.0
    request_limit: int = 0
    default_action: str = DEFAULT_ACTION
    policy_context: str = ""

    @classmethod
    def from_params(cls, get: Callable[[str, str], str]) -> PolicySettings:
        """`get(name, default)` returns a main.cf value as text."""
        return cls(
            timeout=_time(get("smtpd_policy_service_timeout", "100s")),
            max_idle=_time(get("smtpd_policy_service_max_idle", "300s")),
            max_ttl=_time(get("smtpd_policy_service_max_ttl", "1000s")),
            try_limit=int(get("smtpd_policy_service_try_limit", "2")),
            retry_delay=_time(get("smtpd_policy_service_retry_delay", "1s")),
            request_limit=int(get("smtpd_policy_service_request_limit", "0")),
            default_action=get("smtpd_policy_service_default_action", DEFAULT_ACTION),
            policy_context=get("smtpd_policy_service_policy_context", ""),
        )


_OVERRIDES = {
    "timeout": ("timeout", "time"), "max_idle": ("max_idle", "time"),
    "max_ttl": ("max_ttl", "time"), "try_limit": ("try_limit", "int"),
    "retry_delay": ("retry_delay", "time"), "request_limit": ("request_limit", "int"),
    "default_action": ("default_action", "str"), "policy_context": ("policy_context", "str"),
}


def _split_braced(text: str) -> list[str]:
    """Split on commas/blanks, keeping `{ ... }` groups (braces stripped)."""
    out: list[str] = []
    for item in splitq(text, ", \t\r\n"):
        if item.startswith("{") and item.endswith("}"):
            item = item[1:-1].strip()
        out.append(item)
    return out


def parse_service(arg: str, base: PolicySettings) -> tuple[str, PolicySettings]:
    """`inet:host:port` or `{ inet:host:port, name=value, ... }` ->
    (endpoint, settings with the overrides applied)."""
    if not arg.startswith("{"):
        return arg, base
    if not arg.endswith("}"):
        raise PolicyError(f"policy service syntax error: {arg}")
    items = _split_braced(arg[1:-1])
    if not items:
        raise PolicyError(f'empty policy service: "{arg}"')
    endpoint, changes = items[0], {}
    for item in items[1:]:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name not in _OVERRIDES:
            raise PolicyError(f'policy service {endpoint}: unknown attribute "{item}"')
        field_name, kind = _OVERRIDES[name]
        value = value.strip()
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1].strip()
        try:
            changes[field_name] = (_time(value) if kind == "time"
                                   else int(value) if kind == "int" else value)
        except ValueError as e:
            raise PolicyError(f"policy service {endpoint}: bad value for {name}: {value}") from e
    return endpoint, replace(base, **changes)


def endpoint_address(endpoint: str) -> tuple[str, str | tuple[str, int]]:
    """("inet", (host, port)) or ("unix", path); raises PolicyError."""
    kind, sep, rest = endpoint.partition(":")
    if not sep:
        kind, rest = ("unix", endpoint) if endpoint.startswith("/") else ("inet", endpoint)
    elif kind not in ("inet", "unix", "local"):
        if endpoint.startswith("/"):
            kind, rest = "unix", endpoint
        else:
            kind, rest = "inet", endpoint
    if kind in ("unix", "local"):
        return "unix", rest
    host, _, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise PolicyError(f"bad policy service address: {endpoint}")
    return "inet", (host, int(port))


def _errno(e: BaseException | None) -> int:
    if isinstance(e, TimeoutError):
        return errno.ETIMEDOUT
    if isinstance(e, OSError):
        return e.errno or 0
    return 0


def _strerror(e: BaseException | None) -> str:
    """%m as Postfix prints it; errno 0 is "Application error"."""
    code = _errno(e)
    return os.strerror(code) if code else "Application error"


class _Conn:
    __slots__ = ("reader", "writer", "created", "used", "requests")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.created = self.used = time.monotonic()
        self.requests = 0

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:       # noqa: BLE001 - closing a dead socket
            pass


class _AppError(Exception):
    """A reply without an action (errno 0: "Application error")."""


class PolicyClient:
    """Requests to one policy service, over pooled persistent connections."""

    def __init__(self, endpoint: str, settings: PolicySettings | None = None):
        self.endpoint = endpoint
        self.settings = settings or PolicySettings()
        self.kind, self.address = endpoint_address(endpoint)
        if self.kind == "unix":
            self.name = str(self.address)
        else:
            host, port = self.address       # type: ignore[misc]
            self.name = f"{host}:{port}"
        self._idle: list[_Conn] = []

    # -- connections ----------------------------------------------------------

    async def _connect(self) -> _Conn:
        s = self.settings
        try:
            if self.kind == "unix":
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(str(self.address), limit=1 << 16), s.timeout)
            else:
                host, port = self.address   # type: ignore[misc]
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, limit=1 << 16), s.timeout)
        except (TimeoutError, OSError) as e:
            log.warning(f"connect to {self.name}: {_strerror(e)}")
            raise
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        now = time.monotonic()
        s = self.settings
        while self._idle:
            conn = self._idle.pop()
            stale = (now - conn.used > s.max_idle or now - conn.created > s.max_ttl
                     or conn.reader.at_eof() or conn.writer.is_closing())
            # a readable connection before we sent anything: the server hung up
            if not stale and len(getattr(conn.reader, "_buffer", b"")) > 0:
                stale = True
            if stale:
                conn.close()
                continue
            return conn
        return None

    def _release(self, conn: _Conn) -> None:
        s = self.settings
        conn.used = time.monotonic()
        if s.request_limit > 0 and conn.requests >= s.request_limit:
            conn.close()
        elif conn.used - conn.created > s.max_ttl:
            conn.close()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # -- one request ----------------------------------------------------------

    async def _exchange(self, conn: _Conn, request: bytes) -> str:
        conn.writer.write(request)
        await asyncio.wait_for(conn.writer.drain(), self.settings.timeout)
        action: str | None = None
        for _ in range(MAX_REPLY_LINES):
            line = await asyncio.wait_for(conn.reader.readline(), self.settings.timeout)
            if not line:
                raise _AppError("EOF")
            text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            if not text:
                break
            name, eq, value = text.partition("=")
            if eq and name == "action" and action is None:
                action = value
        else:
            raise _AppError("reply too long")
        if action is None:
            log.warning(f"missing attribute action in input from {self.name}")
            raise _AppError("no action")
        return action

    async def query(self, attrs: Sequence[tuple[str, str]]) -> str | None:
        """Send one request; the `action` value, or None after try_limit
        failed attempts (each logged as Postfix logs it)."""
        request = "".join(f"{k}={v}\n" for k, v in attrs) + "\n"
        data = request.encode("utf-8", "surrogateescape")
        s = self.settings
        tries = max(1, s.try_limit)
        for attempt in range(1, tries + 1):
            conn: _Conn | None = None
            err: BaseException | None = None
            try:
                conn = self._take_idle() or await self._connect()
                action = await self._exchange(conn, data)
            except (TimeoutError, OSError, _AppError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                err = e
                if conn is not None:
                    conn.close()
            else:
                conn.requests += 1
                self._release(conn)
                return action
            quiet = _errno(err) in (0, errno.EPIPE, errno.ENOENT, errno.ECONNRESET)
            if attempt >= tries or not quiet:
                log.warning(f"problem talking to server {self.name}: {_strerror(err)}")
            if attempt >= tries:
                return None
            if s.retry_delay > 0:
                await asyncio.sleep(s.retry_delay)
        return None


class PolicyClients:
    """One PolicyClient per distinct `check_policy_service` argument."""

    def __init__(self, base: PolicySettings):
        self.base = base
        self._clients: dict[str, PolicyClient] = {}

    def register(self, arg: str) -> PolicyClient:
        client = self._clients.get(arg)
        if client is None:
            endpoint, settings = parse_service(arg, self.base)
            client = PolicyClient(endpoint, settings)
            self._clients[arg] = client
        return client

    def get(self, arg: str) -> PolicyClient | None:
        return self._clients.get(arg)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
