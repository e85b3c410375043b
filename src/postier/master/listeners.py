"""Listening sockets of master.cf's inet services, bound by the master.

The master binds them (as root: port 25 works) before it forks the workers;
every worker of a service accepts on the same inherited sockets.  The first
worker's create_server() makes a socket listen: until a worker is ready,
connections are refused rather than left waiting in the backlog.  On reload
a socket whose address is still in master.cf is kept (new workers inherit
it, nothing in its backlog is lost); sockets of removed services are closed
once no worker uses them.

A service name with a host (`127.0.0.1:25`, `[::1]:25`, `mx.example:smtp`)
binds that address.  Without a host (`smtp`, `2525`) the addresses come
from inet_interfaces as in Postfix: `all` is the wildcard address of each
protocol in inet_protocols, `loopback-only` is 127.0.0.1 and/or ::1,
anything else is the listed addresses.

Parameters read: inet_interfaces, inet_protocols.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from postier.errors import PostierError

BACKLOG = 1024


def service_port(svc: Any) -> int:
    _, port = svc.listen_address()
    if port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise PostierError(f"master.cf: unknown service port {svc.name!r}") from None


def _families(cfg: Any) -> list[int]:
    protos = [p.lower() for p in cfg.get_list("inet_protocols")] or ["all"]
    fams = []
    if "all" in protos or "ipv4" in protos:
        fams.append(socket.AF_INET)
    if ("all" in protos or "ipv6" in protos) and socket.has_ipv6:
        fams.append(socket.AF_INET6)
    return fams


def service_addresses(svc: Any, cfg: Any) -> list[tuple[str | None, int]]:
    """(host or None for the wildcard, port) pairs the service listens on."""
    host, _ = svc.listen_address()
    port = service_port(svc)
    if host:
        return [(host, port)]
    ifaces = [i.lower() for i in cfg.get_list("inet_interfaces")] or ["all"]
    if "all" in ifaces:
        return [(None, port)]
    out: list[tuple[str | None, int]] = []
    fams = _families(cfg)
    for i in ifaces:
        if i == "loopback-only":
            if socket.AF_INET in fams:
                out.append(("127.0.0.1", port))
            if socket.AF_INET6 in fams:
                out.append(("::1", port))
        else:
            out.append((i.strip("[]"), port))
    return out


def bind(host: str | None, port: int, cfg: Any, listen: bool = False) -> list[socket.socket]:
    """Bound, non-blocking sockets for one address (a wildcard gives one per
    protocol), listening only with `listen`: the master leaves listen(2) to
    the workers (asyncio's create_server does it), so the port accepts
    connections only once a worker is about to serve them, as when `postier
    run` was one process.  A port another process listens on is refused at
    bind time already.  PostierError `bind HOST port N: REASON`."""
    fams = _families(cfg)
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PostierError(f"bind {host or '*'} port {port}: {e.strerror}") from None
    socks: list[socket.socket] = []
    seen = set()
    for fam, stype, proto, _, addr in infos:
        if fam not in fams or (fam, addr) in seen:
            continue
        seen.add((fam, addr))
        s = socket.socket(fam, stype, proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
            if listen:
                s.listen(BACKLOG)
            s.setblocking(False)
        except OSError as e:
            s.close()
            if host is None and fam == socket.AF_INET6 and e.errno in (
                    errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                continue        # wildcard on a host without IPv6
            for other in socks:
                other.close()
            raise PostierError(f"bind {addr[0] if host else '*'} port {port}: "
                               f"{e.strerror}") from None
        socks.append(s)
    if not socks:
        raise PostierError(f"bind {host or '*'} port {port}: no usable address "
                           f"for inet_protocols")
    return socks


def describe(host: str | None, port: int) -> str:
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
