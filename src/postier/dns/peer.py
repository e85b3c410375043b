"""The SMTP client's host name: reverse lookup, then forward confirmation (FCrDNS).

    info = await lookup_peer(resolver, "192.0.2.1")
    info.name, info.name_status             # "mx.example.net", 2   or "unknown", 5
    info.reverse_name, info.reverse_status  # the PTR name even when it does not verify
    for text in info.warnings: log.warning(text)

Postfix's smtpd_peer.c with the system's name service order "files dns":

* address -> name: /etc/hosts (postier.dns.hosts), else the first PTR
  record.  NXDOMAIN / no PTR -> "unknown" with status 5 (permanent); a
  timeout or server failure -> "unknown" with status 4 (temporary).  A
  numeric PTR name ("numeric hostname: 1.2.3.4") or a malformed one is
  permanent too.  reverse_name/reverse_status keep this result.
* name -> addresses, in the client's address family only (A for an IPv4
  client, AAAA for IPv6): /etc/hosts, else DNS.  The client address must be
  among them, else name = "unknown" with status 6 (Postfix's
  SMTPD_PEER_CODE_FORGED, >= 5 counts as permanent) and the warning
  "hostname NAME does not resolve to address ADDR"; a failing lookup gives
  "hostname NAME does not resolve to address ADDR: <getaddrinfo error>" and
  status 4 for a temporary failure, 6 otherwise.

Statuses: 2 OK, 4 TEMP, 5 PERM, 6 FORGED (reject_unknown_client_hostname
rejects with unknown_client_reject_code when >= 5, with 450 when 4).

Parameters read: none (the caller checks smtpd_peername_lookup).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

from postier.dns.hosts import SYSTEM_HOSTS, HostsFile
from postier.dns.resolver import FAIL, INVAL, NO_DATA, NOTFOUND, OK, Resolver, reverse_name

PEER_OK, PEER_TEMP, PEER_PERM, PEER_FORGED = 2, 4, 5, 6

# glibc gai_strerror() texts for what getaddrinfo() would have returned
EAI_NONAME = "Name or service not known"
EAI_NODATA = "No address associated with hostname"
EAI_AGAIN = "Temporary failure in name resolution"
EAI_FAIL = "Non-recoverable failure in name resolution"


@dataclass
class PeerName:
    name: str = "unknown"
    name_status: int = PEER_PERM
    reverse_name: str = "unknown"
    reverse_status: int = PEER_PERM
    warnings: list[str] = field(default_factory=list)


def _valid(name: str) -> str | None:
    """sockaddr_to_hostname()'s sanity checks: None when the name is fine,
    else the warning text ('' when Postfix logs nothing of its own)."""
    from postier.maps.access import valid_hostaddr
    from postier.smtpd.address import valid_hostname
    if valid_hostaddr(name):
        return f"numeric hostname: {name}"
    if not valid_hostname(name):
        from postier.dns.resolver import hostname_gripe
        return hostname_gripe(name) or ""
    return None


async def lookup_peer(resolver: Resolver, addr: str, *,
                      hosts: HostsFile | None = SYSTEM_HOSTS) -> PeerName:
    """Name, reverse name and their statuses for client address `addr`."""
    out = PeerName()
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return out
    # address -> name
    name = hosts.name_for(addr) if hosts is not None else None
    if name is None:
        ans = await resolver.query(reverse_name(addr), "PTR")
        if not ans.ok:
            status = PEER_PERM if ans.status in (NOTFOUND, FAIL, INVAL) else PEER_TEMP
            out.name_status = out.reverse_status = status
            return out
        name = ans.records[0]
    problem = _valid(name)
    if problem is not None:
        if problem:
            out.warnings.append(problem)
        return out
    out.name = out.reverse_name = name
    out.name_status = out.reverse_status = PEER_OK
    # name -> addresses, in the client's family
    listed = hosts.addrs_for(name) if hosts is not None else []
    if listed:
        addrs = [a for a in listed if ipaddress.ip_address(a).version == ip.version]
        error = None if addrs else EAI_NODATA
        temp = False
    else:
        ans = await resolver.query(name, "A" if ip.version == 4 else "AAAA")
        addrs = list(ans.records) if ans.ok else []
        temp = ans.status not in (OK, NOTFOUND, FAIL, INVAL)
        if ans.ok:
            error = None
        elif ans.status == NOTFOUND:
            error = EAI_NODATA if ans.herror == NO_DATA else EAI_NONAME
        else:
            error = EAI_AGAIN if temp else EAI_FAIL
    if error is not None:
        out.warnings.append(f"hostname {name} does not resolve to address {addr}: {error}")
        out.name = "unknown"
        out.name_status = PEER_TEMP if temp else PEER_FORGED
        return out
    for a in addrs:
        try:
            if ipaddress.ip_address(a) == ip:
                return out
        except ValueError:
            continue
    out.warnings.append(f"hostname {name} does not resolve to address {addr}")
    out.name = "unknown"
    out.name_status = PEER_FORGED
    return out


async def lookup_peer_timeout(resolver: Resolver, addr: str, timeout: float, *,
                              hosts: HostsFile | None = SYSTEM_HOSTS) -> PeerName:
    """lookup_peer() with an overall time limit (temporary failure after it)."""
    try:
        return await asyncio.wait_for(lookup_peer(resolver, addr, hosts=hosts), timeout)
    except TimeoutError:
        return PeerName(name_status=PEER_TEMP, reverse_status=PEER_TEMP)
