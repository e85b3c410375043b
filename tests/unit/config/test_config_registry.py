"""The parameter registry: completeness, well-formedness, and defaults equal to real postconf -d."""

from __future__ import annotations

import os
import re

import pytest
from _config_helpers import make_dir, postconf, with_postfix

from postier.config import PARAMS, Config, defaults_config, maincf, postfix_names
from postier.config.registry import TIME_UNITS, TYPES

REQUIRED = """
alias_database alias_maps allow_mail_to_commands allow_mail_to_files always_bcc append_at_myorigin
append_dot_mydomain body_checks body_checks_size_limit bounce_queue_lifetime bounce_size_limit
canonical_maps compatibility_level config_directory content_filter daemon_directory data_directory
default_database_type default_destination_concurrency_limit default_destination_recipient_limit
default_privs default_transport delay_warning_time disable_dns_lookups
disable_mime_input_processing double_bounce_sender empty_address_recipient forward_path
header_checks header_size_limit hopcount_limit home_mailbox in_flow_delay inet_interfaces
inet_protocols line_length_limit local_recipient_maps local_transport luser_relay mail_name
mail_owner mail_spool_directory mail_version mailbox_command mailbox_size_limit maillog_file
maillog_file_prefixes masquerade_classes masquerade_domains masquerade_exceptions max_idle max_use
maximal_backoff_time maximal_queue_lifetime message_size_limit mime_header_checks
minimal_backoff_time mydestination mydomain myhostname mynetworks mynetworks_style myorigin
nested_header_checks notify_classes owner_request_special parent_domain_matches_subdomains
propagate_unmatched_extensions qmgr_message_active_limit qmgr_message_recipient_limit
queue_directory queue_run_delay rbl_reply_maps recipient_bcc_maps recipient_canonical_maps
recipient_delimiter relay_domains relay_recipient_maps relay_transport relayhost relocated_maps
sender_bcc_maps sender_canonical_maps setgid_group smtp_connect_timeout smtp_data_done_timeout
smtp_dns_support_level smtp_helo_name smtp_helo_timeout smtp_host_lookup smtp_tls_security_level
smtpd_authorized_xclient_hosts smtpd_authorized_xforward_hosts smtpd_banner
smtpd_client_connection_count_limit smtpd_client_connection_rate_limit smtpd_client_restrictions
smtpd_data_restrictions smtpd_delay_reject smtpd_end_of_data_restrictions smtpd_error_sleep_time
smtpd_forbid_bare_newline smtpd_hard_error_limit smtpd_helo_required smtpd_helo_restrictions
smtpd_junk_command_limit smtpd_null_access_lookup_key smtpd_peername_lookup
smtpd_policy_service_timeout smtpd_recipient_limit smtpd_recipient_restrictions
smtpd_reject_unlisted_recipient smtpd_reject_unlisted_sender smtpd_relay_restrictions
smtpd_restriction_classes smtpd_sender_restrictions smtpd_soft_error_limit smtpd_timeout
smtpd_tls_cert_file smtpd_tls_key_file smtpd_tls_security_level smtputf8_enable soft_bounce
strict_rfc821_envelopes syslog_facility syslog_name transport_maps unknown_address_reject_code
unknown_client_reject_code unknown_hostname_reject_code unknown_local_recipient_reject_code
unknown_relay_recipient_reject_code unknown_virtual_alias_reject_code
unverified_recipient_reject_code relay_domains_reject_code access_map_reject_code
access_map_defer_code reject_code defer_code invalid_hostname_reject_code non_fqdn_reject_code
maps_rbl_reject_code unknown_helo_hostname_tempfail_action unknown_address_tempfail_action
plaintext_reject_code multi_recipient_bounce_reject_code smtpd_reject_footer
smtpd_expansion_filter anvil_rate_time_unit virtual_alias_domains virtual_alias_maps
virtual_mailbox_base virtual_mailbox_domains virtual_mailbox_maps virtual_uid_maps
virtual_gid_maps virtual_transport default_process_limit daemon_timeout ipc_timeout biff
""".split()


def test_required_parameters_are_registered():
    assert sorted(set(REQUIRED) - set(PARAMS)) == []


def test_parameters_referenced_by_registered_defaults_are_registered():
    missing = set()
    for p in PARAMS.values():
        if p.raw or p.host_dependent:
            continue
        for name in maincf.mac_scan(p.default):
            if name not in PARAMS:
                missing.add((p.name, name))
    assert missing == set()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_entry_is_well_formed(name):
    p = PARAMS[name]
    assert p.name == name and re.fullmatch(r"[A-Za-z0-9_]+", name)
    assert p.type in TYPES
    assert p.doc and "\n" not in p.doc and p.doc.endswith(".") and len(p.doc) < 160
    if p.type == "time":
        assert p.unit in TIME_UNITS
    else:
        assert p.unit is None
    if p.min is not None and p.max is not None:
        assert p.min <= p.max
    if p.choices:
        assert all(c == c.lower() for c in p.choices)
    assert not (p.legacy and p.postier_only)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_default_value_is_valid_for_its_type(name):
    # every default converts without error in an empty configuration
    Config.from_text("").get(name)
    Config.from_text("compatibility_level = 3.6\n").get(name)


def test_postfix_parameters_are_in_the_postfix_name_list():
    pf = postfix_names()
    assert [n for n, p in PARAMS.items() if not p.postier_only and n not in pf] == []
    assert [n for n, p in PARAMS.items() if p.postier_only and n in pf] == []


def test_registry_defaults_equal_postfix_data_file():
    pf = postfix_names()
    for n, p in PARAMS.items():
        if not p.host_dependent and not p.postier_only:
            assert pf[n][1] == (p.postfix_default or p.default), n


def test_names_data_file_has_provenance():
    path = os.path.join(maincf.data_dir(), "postfix-3.7-parameters.txt")
    head = open(path).read(600)
    assert head.startswith("# Postfix 3.7")
    assert "Provenance:" in head and "postconf" in head


def test_defaults_config_ignores_main_cf(tmp_path):
    d = make_dir(tmp_path, "myorigin = x.example\n")
    assert defaults_config(d).get("myorigin") == defaults_config(d).get("myhostname")


@with_postfix
def test_registry_defaults_equal_real_postconf_d():
    names = sorted(n for n, p in PARAMS.items() if not p.host_dependent and not p.postier_only)
    r = postconf("-d", "-h", *names)
    assert r.returncode == 0
    got = r.stdout.split("\n")[:-1]
    assert len(got) == len(names)
    for name, value in zip(names, got, strict=True):
        p = PARAMS[name]
        assert " ".join((p.postfix_default or p.default).split()) == value, name


@with_postfix
def test_host_dependent_defaults_equal_real_postconf_d():
    cfg = defaults_config("/nonexistent")
    for name in ("myhostname", "mydomain", "mynetworks"):
        assert postconf("-d", "-h", name).stdout == " ".join(cfg.raw(name).split()) + "\n", name


@with_postfix
@pytest.mark.parametrize("main", [
    "mynetworks_style = host\n",
    "mynetworks_style = class\n",
    "inet_interfaces = 127.0.0.1\n",
    "inet_interfaces = loopback-only\n",
    "inet_protocols = ipv4\n",
    "compatibility_level = 2\n",
    "mydomain = example.org\n",
    "myhostname = a.b.c.example\n",
])
def test_host_dependent_values_equal_real_postconf(tmp_path, main):
    d = make_dir(tmp_path, main)
    cfg = maincf.load_config(d)
    for name in ("mynetworks", "myhostname", "mydomain"):
        assert postconf("-c", d, "-h", name).stdout == " ".join(cfg.raw(name).split()) + "\n"


def test_resolve_config_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv("POSTIER_CONFIG_DIR", raising=False)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    monkeypatch.setattr(maincf, "DEFAULT_CONFIG_DIR", str(tmp_path / "etc-postier"))
    assert maincf.resolve_config_dir() == maincf.builtin_config_dir()
    os.mkdir(tmp_path / "etc-postier")
    assert maincf.resolve_config_dir() == str(tmp_path / "etc-postier")
    monkeypatch.setenv("MAIL_CONFIG", "/from/mail_config")
    assert maincf.resolve_config_dir() == "/from/mail_config"
    monkeypatch.setenv("POSTIER_CONFIG_DIR", "/from/postier")
    assert maincf.resolve_config_dir() == "/from/postier"
    assert maincf.resolve_config_dir("/explicit") == "/explicit"
