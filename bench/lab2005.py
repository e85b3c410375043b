"""The "2005-style MX" lab configuration, shared by postier and real Postfix
in the smtpd benchmarks.

It is the `mx` mode of the baseline script shared/peers/postfix_bench.sh:
loopback is an Internet client (127.0.0.0/8 is NOT in mynetworks), mail is
accepted for relay_domains = example.test only, HELO is required and must
be a valid FQDN, the client IP is looked up in a hash access map, the sender
must be fully qualified.  The header/body/mime_header regexp checks of that
script are left out on purpose (for both servers): they come with the
content-check issue, and Postfix would apply them while postier's smtpd
does not yet.

`LAB_MAIN_CF` goes on top of the common base of tools/postfix_instance.py
(HARNESS_MAIN_CF + BASE_MAIN_CF), which keeps the instance on loopback, with
no delivery agents and no qmgr (accepted mail stays in incoming/).
`LAB_TABLES` are written under @TABLES@ and compiled by each server's own
map tool (Postfix's postmap / `postier map`): the `.db` formats differ.
"""

from __future__ import annotations

#: smtp-source client identity that passes the lab restrictions
HELO = "client.example.net"
SENDER = "sender@client.example.net"
RECIPIENT = "rcpt@example.test"

CLIENT_ACCESS = """\
# hash access map, checked for the client IP (and its partial prefixes)
198.51.100.1     REJECT spam source
198.51.100.2     REJECT spam source
198.51.100       REJECT blocked network
203.0.113.7      OK
203.0.113.8      REJECT
10.66            REJECT private net not expected here
172.16.99.1      REJECT
192.168.250      REJECT
203.0.113.99     REJECT listed
198.18.0.1       REJECT
"""

LAB_TABLES: dict[str, tuple[str, str]] = {"client_access": ("hash", CLIENT_ACCESS)}

LAB_MAIN_CF: dict[str, str] = {
    # identity and routing (postfix_bench.sh setup_postfix, every mode)
    "myhostname": "mx.lab.test",
    "mydomain": "lab.test",
    "myorigin": "lab.test",
    "mydestination": "",
    "local_recipient_maps": "",
    "smtpd_peername_lookup": "no",
    "smtpd_banner": "$myhostname ESMTP",
    "compatibility_level": "3.6",
    "smtputf8_enable": "no",
    # no XCLIENT for the load generator's address (the harness base allows it)
    "smtpd_authorized_xclient_hosts": "",
    # Postfix's defaults for the limits the harness base relaxes
    "smtpd_client_connection_count_limit": "50",
    "smtpd_error_sleep_time": "1s",
    "smtpd_soft_error_limit": "10",
    "smtpd_hard_error_limit": "20",
    "smtpd_junk_command_limit": "100",
    # the 2005-style MX restrictions (postfix_bench.sh, mode mx)
    "mynetworks": "198.51.100.250/32",
    "relay_domains": "example.test",
    "smtpd_helo_required": "yes",
    "smtpd_helo_restrictions": ("permit_mynetworks, reject_invalid_helo_hostname, "
                                "reject_non_fqdn_helo_hostname"),
    "smtpd_client_restrictions": "check_client_access hash:@TABLES@/client_access, permit",
    "smtpd_sender_restrictions": "reject_non_fqdn_sender",
    "smtpd_relay_restrictions": "",
    "smtpd_recipient_restrictions": ("permit_mynetworks, reject_non_fqdn_recipient, "
                                     "reject_unauth_destination"),
}
