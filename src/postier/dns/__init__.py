"""postier's DNS layer: one cached, coalescing aiodns resolver per process.

    from postier import dns
    r = dns.get_resolver(dns.DnsSettings.from_config(cfg))
    answer = await r.query("example.test", "MX")       # dns.Answer
    answers = await r.query_all([(name, "A"), (name, "AAAA"), (name, "MX")])
    info = await dns.lookup_peer(r, "192.0.2.1")       # smtpd's FCrDNS

Modules: resolver (Resolver, Answer, statuses, settings, registry), cache
(TtlCache: TTL + LRU), hosts (/etc/hosts, the "files" name service), peer
(client name lookup with forward confirmation).  The DNS-based SMTP
restrictions built on it live in postier.smtpd.dnschecks; the smtp client's
MX lookups (postier.delivery.dnsmx) use the same resolver.

Parameters read: dns_nameservers, dns_timeout, dns_tries, dns_cache_size,
dns_negative_ttl (all postier only; see postier.dns.resolver).
"""

from postier.dns.cache import TtlCache
from postier.dns.hosts import SYSTEM_HOSTS, HostsFile
from postier.dns.peer import PEER_FORGED, PEER_OK, PEER_PERM, PEER_TEMP, PeerName, lookup_peer
from postier.dns.resolver import (
    FAIL,
    HOST_NOT_FOUND,
    INVAL,
    NO_DATA,
    NO_RECOVERY,
    NOTFOUND,
    NULLMX,
    OK,
    POLICY,
    RETRY,
    STATUS_RANK,
    TRY_AGAIN,
    AiodnsBackend,
    Answer,
    DnsSettings,
    Resolver,
    best_status,
    close_resolvers,
    failed,
    get_resolver,
    parse_nameservers,
    reverse_name,
)

__all__ = [
    "FAIL", "HOST_NOT_FOUND", "INVAL", "NO_DATA", "NO_RECOVERY", "NOTFOUND", "NULLMX", "OK",
    "PEER_FORGED", "PEER_OK", "PEER_PERM", "PEER_TEMP", "POLICY", "RETRY", "STATUS_RANK",
    "SYSTEM_HOSTS", "TRY_AGAIN", "AiodnsBackend", "Answer", "DnsSettings", "HostsFile",
    "PeerName", "Resolver", "TtlCache", "best_status", "close_resolvers", "failed",
    "get_resolver", "lookup_peer", "parse_nameservers", "reverse_name",
]
