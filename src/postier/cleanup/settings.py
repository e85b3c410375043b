"""The main.cf parameters cleanup reads, parsed once per start/reload.

`CleanupSettings.from_config(cfg)` accepts a postier Config or a plain
mapping name -> value (tests); table specs are opened with
postier.maps.open_map.  `rewrite_context(...)` decides, like smtpd's
smtpd_check_rewrite(), whether a client gets local header rewriting.

Parameters read: myhostname, myorigin, mydomain, mydestination,
inet_interfaces, proxy_interfaces, mynetworks, local_header_rewrite_clients,
remote_header_rewrite_domain, always_add_missing_headers,
undisclosed_recipients_header, message_drop_headers, header_size_limit,
line_length_limit, hopcount_limit, header_address_token_limit,
duplicate_filter_limit, enable_original_recipient, empty_address_recipient,
canonical_maps, sender_canonical_maps, recipient_canonical_maps,
canonical_classes, sender_canonical_classes, recipient_canonical_classes,
masquerade_domains, masquerade_exceptions, masquerade_classes,
virtual_alias_maps, virtual_alias_recursion_limit,
virtual_alias_expansion_limit, virtual_alias_address_length_limit,
propagate_unmatched_extensions, recipient_delimiter, swap_bangpath,
allow_percent_hack, append_at_myorigin, append_dot_mydomain,
always_bcc, sender_bcc_maps, recipient_bcc_maps, relocated_maps,
smtpd_reject_unlisted_recipient; and, for the content checks that go into
`hooks`, what postier.content.checks reads (header_checks, body_checks, ...).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from postier import log
from postier.cleanup.headers import HeaderTable
from postier.cleanup.rewrite import LOCAL, REMOTE, Maps, Rewriter
from postier.errors import ConfigError
from postier.maps import open_map

ENV_FROM, ENV_RCPT, HDR_FROM, HDR_RCPT = 1, 2, 4, 8
_CLASS_BITS = {"envelope_sender": ENV_FROM, "envelope_recipient": ENV_RCPT,
               "header_sender": HDR_FROM, "header_recipient": HDR_RCPT}


def _class_mask(name: str, value: list[str], allowed: tuple[str, ...]) -> int:
    mask = 0
    for item in value:
        key = item.lower()
        if key not in allowed:
            raise ConfigError(f'unknown {name} value "{item}" in "{", ".join(value)}"')
        mask |= _CLASS_BITS[key]
    return mask


@dataclass
class CleanupSettings:
    """Everything one Cleanup needs besides the message itself."""

    myhostname: str = "localhost"
    rewriter: Rewriter = field(default_factory=lambda: Rewriter(myorigin="localhost",
                                                                mydomain="localdomain"))
    header_table: HeaderTable = field(default_factory=HeaderTable)
    header_size_limit: int = 102400
    line_length_limit: int = 2048
    hopcount_limit: int = 50
    token_limit: int = 10240
    duplicate_filter_limit: int = 1000
    enable_original_recipient: bool = True
    empty_address_recipient: str = "MAILER-DAEMON"
    always_add_missing_headers: bool = False
    undisclosed_recipients_header: str = ""
    remote_header_rewrite_domain: str = ""
    local_rewrite_clients: list[str] = field(default_factory=lambda: ["permit_inet_interfaces"])
    mynetworks: Any = None            # PatternList (host kind)
    own_addresses: frozenset = frozenset()
    canonical: Maps = field(default_factory=lambda: Maps("canonical_maps", []))
    sender_canonical: Maps = field(default_factory=lambda: Maps("sender_canonical_maps", []))
    recipient_canonical: Maps = field(default_factory=lambda: Maps("recipient_canonical_maps", []))
    canonical_flags: int = ENV_FROM | ENV_RCPT | HDR_FROM | HDR_RCPT
    sender_canonical_flags: int = ENV_FROM | HDR_FROM
    recipient_canonical_flags: int = ENV_RCPT | HDR_RCPT
    masq_flags: int = ENV_FROM | HDR_FROM | HDR_RCPT
    virtual: Maps = field(default_factory=lambda: Maps("virtual_alias_maps", []))
    always_bcc: str = ""
    sender_bcc: Maps = field(default_factory=lambda: Maps("sender_bcc_maps", []))
    recipient_bcc: Maps = field(default_factory=lambda: Maps("recipient_bcc_maps", []))
    reject_unlisted_recipient: bool = True
    addr_maps: dict[str, Maps] = field(default_factory=dict)
    # hook points for header_checks / mime_header_checks / nested_header_checks /
    # body_checks (postier.cleanup.core.ContentHooks); None = no checks
    hooks: Any = None

    @classmethod
    def from_config(cls, cfg: Any, *, opener: Any = open_map) -> CleanupSettings:
        from postier.smtpd.restrictions import (
            Params,
            PatternList,
            own_addresses,
            split_restrictions,
        )
        p = Params(cfg)

        def lst(name: str) -> list[str]:
            return split_restrictions(p.text(name))

        def maps(name: str) -> Maps:
            tables = []
            for spec in lst(name):
                try:
                    tables.append(opener(spec, fold=True))
                except Exception as e:  # noqa: BLE001 - reported as a config error
                    raise ConfigError(f"{name}: {spec}: {e}") from None
            return Maps(name, tables)

        def pint(name: str, default: int) -> int:
            try:
                return int(p.text(name, str(default)).strip())
            except ValueError:
                raise ConfigError(f'bad numerical configuration: {name} = {p.text(name)}') from None

        mydestination = PatternList("mydestination", p.text("mydestination"), "string",
                                    parent=False, opener=opener)
        own = own_addresses(lst("inet_interfaces"), lst("proxy_interfaces"))

        def is_local(domain: str) -> bool:
            if domain.endswith("."):
                domain = domain[:-1]
            if not domain or domain.endswith("."):
                return False
            if mydestination.match(domain):
                return True
            if domain.startswith("[") and domain.endswith("]"):
                text = domain[1:-1]
                if text.lower().startswith("ipv6:"):
                    text = text[5:]
                try:
                    return ipaddress.ip_address(text) in own
                except ValueError:
                    return False
            return False

        exceptions = lst("masquerade_exceptions")
        masq_exc = None
        if exceptions:
            exc_list = PatternList("masquerade_exceptions", p.text("masquerade_exceptions"),
                                   "string", parent=False, opener=opener)
            masq_exc = exc_list.match
        remote_domain = p.text("remote_header_rewrite_domain")
        rewriter = Rewriter(
            myorigin=p.text("myorigin"), mydomain=p.text("mydomain"),
            remote_domain=remote_domain,
            swap_bangpath=p.bool("swap_bangpath"), percent_hack=p.bool("allow_percent_hack"),
            append_at_myorigin=p.bool("append_at_myorigin"),
            append_dot_mydomain=p.bool("append_dot_mydomain"),
            is_local=is_local, delimiters=p.text("recipient_delimiter"),
            propagate=[x.lower() for x in lst("propagate_unmatched_extensions")],
            masq_domains=lst("masquerade_domains"), masq_exception=masq_exc,
            virtual_maps=maps("virtual_alias_maps"), relocated_maps=maps("relocated_maps"),
            recursion_limit=pint("virtual_alias_recursion_limit", 1000),
            expansion_limit=pint("virtual_alias_expansion_limit", 1000),
            addrlen_limit=pint("virtual_alias_address_length_limit", 1000))
        both = ("envelope_sender", "envelope_recipient", "header_sender", "header_recipient")
        s = cls(
            myhostname=p.text("myhostname"),
            rewriter=rewriter,
            header_table=HeaderTable(lst("message_drop_headers")),
            header_size_limit=pint("header_size_limit", 102400),
            line_length_limit=max(1, pint("line_length_limit", 2048)),
            hopcount_limit=pint("hopcount_limit", 50),
            token_limit=pint("header_address_token_limit", 10240),
            duplicate_filter_limit=pint("duplicate_filter_limit", 1000),
            enable_original_recipient=p.bool("enable_original_recipient"),
            empty_address_recipient=p.text("empty_address_recipient", "MAILER-DAEMON"),
            always_add_missing_headers=p.bool("always_add_missing_headers"),
            undisclosed_recipients_header=p.text("undisclosed_recipients_header"),
            remote_header_rewrite_domain=remote_domain,
            local_rewrite_clients=lst("local_header_rewrite_clients"),
            mynetworks=PatternList("mynetworks", p.text("mynetworks"), "host",
                                   parent=False, opener=opener),
            own_addresses=own,
            canonical=maps("canonical_maps"),
            sender_canonical=maps("sender_canonical_maps"),
            recipient_canonical=maps("recipient_canonical_maps"),
            canonical_flags=_class_mask("canonical_classes", lst("canonical_classes"), both),
            sender_canonical_flags=_class_mask("sender_canonical_classes",
                                               lst("sender_canonical_classes"),
                                               ("envelope_sender", "header_sender")),
            recipient_canonical_flags=_class_mask("recipient_canonical_classes",
                                                  lst("recipient_canonical_classes"),
                                                  ("envelope_recipient", "header_recipient")),
            masq_flags=_class_mask("masquerade_classes", lst("masquerade_classes"), both),
            virtual=rewriter.virtual_maps,
            always_bcc=p.text("always_bcc"),
            sender_bcc=maps("sender_bcc_maps"),
            recipient_bcc=maps("recipient_bcc_maps"),
            reject_unlisted_recipient=p.bool("smtpd_reject_unlisted_recipient"),
        )
        from postier.content.checks import ContentChecks
        s.hooks = ContentChecks.from_config(p, opener=opener)
        return s

    # -- smtpd_check_rewrite() ------------------------------------------------

    def rewrite_context(self, client_addr: str, real_addr: str = "",
                        sasl_username: str | None = None) -> str:
        """"local" when the client matches local_header_rewrite_clients,
        else "remote".  permit_inet_interfaces looks at the address of the
        real connection (XCLIENT does not change it), permit_mynetworks and
        check_address_map at the (XCLIENT) client address."""
        items = list(self.local_rewrite_clients)
        i = 0
        while i < len(items):
            name = items[i]
            low = name.lower()
            spec = None
            if ":" in name:
                spec = name
            elif low == "check_address_map" and i + 1 < len(items):
                i += 1
                spec = items[i]
            if spec is not None:
                tables = self.addr_maps.get(spec)
                if tables is None:
                    try:
                        tables = Maps(spec, [open_map(spec, fold=True)])
                    except Exception as e:  # noqa: BLE001
                        log.warning(f"local_header_rewrite_clients: {spec}: {e}")
                        tables = Maps(spec, [])
                    self.addr_maps[spec] = tables
                if client_addr and tables.find(client_addr) is not None:
                    return LOCAL
            elif low == "permit_inet_interfaces":
                try:
                    ip = ipaddress.ip_address((real_addr or client_addr).split("%")[0])
                    if ip.version == 6 and ip.ipv4_mapped:
                        ip = ip.ipv4_mapped
                    if ip in self.own_addresses:
                        return LOCAL
                except ValueError:
                    pass
            elif low == "permit_mynetworks":
                try:
                    if self.mynetworks is not None and self.mynetworks.match("", client_addr):
                        return LOCAL
                except Exception:  # noqa: BLE001 - a table failure does not permit
                    pass
            elif low == "permit_sasl_authenticated":
                if sasl_username:
                    return LOCAL
            elif low in ("permit_tls_clientcerts", "permit_tls_all_clientcerts"):
                pass
            else:
                log.warning(f"parameter local_header_rewrite_clients: invalid request: {name}")
            i += 1
        return REMOTE

    def header_context(self, rewrite_context: str) -> str | None:
        """cleanup's header rewriting context: local, remote (only when
        remote_header_rewrite_domain is set), or None (no rewriting)."""
        if rewrite_context == LOCAL:
            return LOCAL
        return REMOTE if self.remote_header_rewrite_domain else None
