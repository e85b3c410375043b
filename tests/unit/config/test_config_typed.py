"""Typed values: every type, time units, limits, and the exact error texts with file:line."""

from __future__ import annotations

import socket

import pytest

from postier.config import Config, ConfigError, maincf
from postier.config.mastercf import parse_master_cf
from postier.config.registry import convert_time, parse_time

PATH = "/etc/postier/main.cf"


def cfg_of(text: str) -> Config:
    return Config.from_text(text, PATH)


def error_of(text: str, name: str) -> str:
    with pytest.raises(ConfigError) as ei:
        cfg_of(text).get(name)
    return str(ei.value)


# -- successful conversions ------------------------------------------------

def test_string_bool_int_size_list_map_list():
    cfg = cfg_of("myorigin = example.com\nbiff = NO\nsmtpd_recipient_limit = 25\n"
                 "message_size_limit = 52428800\nmynetworks = 10.0.0.0/8, [::1]/128 192.168.0.0/16\n"
                 "alias_maps = hash:/etc/aliases, {inline:{a=b}}\n")
    assert cfg.get("myorigin") == "example.com"
    assert cfg.get("biff") is False and cfg.get_bool("biff") is False
    assert cfg.get_bool("smtpd_delay_reject") is True  # default "yes"
    assert cfg.get("smtpd_recipient_limit") == 25 and cfg.get_int("smtpd_recipient_limit") == 25
    assert cfg.get_size("message_size_limit") == 52428800
    assert cfg.get_list("mynetworks") == ["10.0.0.0/8", "[::1]/128", "192.168.0.0/16"]
    assert cfg.get("alias_maps") == ["hash:/etc/aliases", "inline:{a=b}"]
    assert cfg.get("header_checks") == []


def test_size_is_64_bit():
    assert cfg_of("message_size_limit = 99999999999\n").get("message_size_limit") == 99999999999


def test_int_accepts_sign_like_strtol():
    assert cfg_of("smtpd_recipient_limit = +5\n").get("smtpd_recipient_limit") == 5


@pytest.mark.parametrize("value, seconds", [
    ("30", 30 * 86400),  # default unit of maximal_queue_lifetime is d
    ("30s", 30), ("5m", 300), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("0", 0),
    ("5s5", 5),  # Postfix ignores text after the unit letter
])
def test_time_units_and_default_unit(value, seconds):
    assert cfg_of(f"maximal_queue_lifetime = {value}\n").get_time("maximal_queue_lifetime") == seconds


def test_time_default_unit_differs_per_parameter():
    assert cfg_of("smtpd_timeout = 20\n").get_time("smtpd_timeout") == 20          # s
    assert cfg_of("delay_warning_time = 4\n").get_time("delay_warning_time") == 4 * 3600  # h
    assert cfg_of("").get_time("maximal_queue_lifetime") == 5 * 86400


@pytest.mark.parametrize("text", ["", "x", "-5s", "5 s", "1W", "1.5h", "5y", "99999999999s",
                                  "9999999w"])
def test_parse_time_rejects(text):
    assert parse_time(text, "s") is None


def test_expanded_value_is_converted():
    cfg = cfg_of("limit = 42\nsmtpd_recipient_limit = $limit\nlife = 2\n"
                 "maximal_queue_lifetime = ${life}h\n")
    assert cfg.get("smtpd_recipient_limit") == 42
    assert cfg.get_time("maximal_queue_lifetime") == 7200


def test_unregistered_names_give_expanded_text_or_keyerror():
    cfg = cfg_of("myhostname = h.example\nfoo = $myhostname/x\n")
    assert cfg.get("foo") == "h.example/x"
    assert cfg.get_list("foo") == ["h.example/x"]
    with pytest.raises(KeyError):
        cfg.get("no_such_parameter")


def test_getter_type_mismatch_is_a_programming_error():
    with pytest.raises(TypeError):
        cfg_of("").get_bool("message_size_limit")
    with pytest.raises(TypeError):
        cfg_of("").get_time("smtpd_recipient_limit")


def test_lists_returned_are_copies_of_the_cache():
    cfg = cfg_of("mynetworks = 127.0.0.0/8\n")
    cfg.get_list("mynetworks").append("junk")
    assert cfg.get_list("mynetworks") == ["127.0.0.0/8"]


# -- errors: exact texts with file and line ----------------------------------

@pytest.mark.parametrize("text, name, message", [
    ("a = 1\nmessage_size_limit = 10x\n", "message_size_limit",
     "line 2: bad numerical configuration: message_size_limit = 10x "
     "(expected a size in bytes >= 0)"),
    ("message_size_limit = -1\n", "message_size_limit",
     "line 1: invalid message_size_limit parameter value -1 < 0 (expected a size in bytes >= 0)"),
    ("smtpd_recipient_limit =\n", "smtpd_recipient_limit",
     "line 1: bad numerical configuration: smtpd_recipient_limit =  (expected an integer >= 1)"),
    ("smtpd_recipient_limit = 0\n", "smtpd_recipient_limit",
     "line 1: invalid smtpd_recipient_limit parameter value 0 < 1 (expected an integer >= 1)"),
    ("smtpd_recipient_limit = 99999999999\n", "smtpd_recipient_limit",
     "line 1: bad numerical configuration: smtpd_recipient_limit = 99999999999 "
     "(expected an integer >= 1)"),
    ("unverified_recipient_reject_code = 700\n", "unverified_recipient_reject_code",
     "line 1: invalid unverified_recipient_reject_code parameter value 700 > 599 "
     "(expected an integer between 200 and 599)"),
    ("line_length_limit = 100\n", "line_length_limit",
     "line 1: invalid line_length_limit parameter value 100 < 512 (expected an integer >= 512)"),
    ("x = 1\n\nsmtpd_delay_reject = maybe\n", "smtpd_delay_reject",
     "line 3: bad boolean configuration: smtpd_delay_reject = maybe (expected yes or no)"),
    ("maximal_queue_lifetime = 5y\n", "maximal_queue_lifetime",
     "line 1: parameter maximal_queue_lifetime: bad time value or unit: 5y (expected a time: "
     "a number with optional unit s, m, h, d or w (default unit: d) between 0s and 8640000s)"),
    ("maximal_queue_lifetime = 101d\n", "maximal_queue_lifetime",
     "line 1: invalid maximal_queue_lifetime: 8726400 (max 8640000)"),
    ("max_idle = 0\n", "max_idle", "line 1: invalid max_idle: 0 (min 1)"),
    ("in_flow_delay = 11s\n", "in_flow_delay", "line 1: invalid in_flow_delay: 11 (max 10)"),
    ("smtpd_timeout = -5s\n", "smtpd_timeout",
     "line 1: parameter smtpd_timeout: bad time value or unit: -5s (expected a time: a number "
     "with optional unit s, m, h, d or w (default unit: s) >= 1s)"),
    ("mail_owner =\n", "mail_owner",
     "line 1: bad string length 0 < 1: mail_owner =  (expected a non-empty value)"),
    ("smtpd_forbid_bare_newline = maybe\n", "smtpd_forbid_bare_newline",
     "line 1: bad parameter value: 'smtpd_forbid_bare_newline = maybe' "
     "(expected one of: no, yes, normalize, reject)"),
    ("smtp_tls_security_level = bogus\n", "smtp_tls_security_level",
     "line 1: bad parameter value: 'smtp_tls_security_level = bogus' (expected one of: \"\", "
     "none, may, encrypt, dane, dane-only, fingerprint, verify, secure)"),
    ("notify_classes = resource, sofware\n", "notify_classes",
     'line 1: unknown notify_classes value "sofware" in "resource, sofware" (expected a list of: '
     "bounce, 2bounce, data, delay, policy, protocol, resource, software)"),
    ("compatibility_level = 3.x\n", "compatibility_level",
     'line 1: malformed compatibility level syntax: "3.x" '
     "(expected a compatibility level: major[.minor[.patch]])"),
    ("myhostname = a..b\n", "myhostname",
     "line 1: parameter myhostname: bad parameter value: a..b "
     "(misplaced delimiter; expected a hostname)"),
    ("mydomain = -x.example\n", "mydomain",
     "line 1: parameter mydomain: bad parameter value: -x.example "
     "(misplaced hyphen; expected a hostname)"),
])
def test_invalid_values_name_file_line_parameter_and_expectation(text, name, message):
    assert error_of(text, name) == f"{PATH}, {message}"


def test_error_for_invalid_value_reached_through_expansion_reports_the_parameter_line():
    text = "n = 10x\nsmtpd_recipient_limit = $n\n"
    assert error_of(text, "smtpd_recipient_limit") == (
        f"{PATH}, line 2: bad numerical configuration: smtpd_recipient_limit = 10x "
        "(expected an integer >= 1)")


def test_error_in_a_default_value_is_reported_as_such():
    # mime_header_checks is fine; smtpd_timeout's default depends on $stress only
    cfg = cfg_of("smtpd_tls_cert_file = x\n")
    assert cfg.get("smtpd_tls_key_file") == "x"
    bad = cfg_of("reject_tempfail_action = bogus\n")
    with pytest.raises(ConfigError) as ei:
        bad.get("unknown_address_tempfail_action")
    assert str(ei.value) == (
        f"{PATH}: bad parameter value: 'unknown_address_tempfail_action = bogus' "
        "(expected one of: defer, defer_if_permit, defer_if_reject) (default value)")


def test_validate_collects_all_errors():
    text = ("message_size_limit = 10x\nsmtpd_delay_reject = maybe\nok = 1\n"
            "maximal_queue_lifetime = 5y\nmyorigin = fine.example\n")
    errors = Config.from_text(text, PATH).validate(raise_errors=False)
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (1, "bad numerical configuration"), (2, "bad boolean configuration"),
        (4, "parameter maximal_queue_lifetime")]
    with pytest.raises(ConfigError) as ei:
        Config.from_text(text, PATH).validate()
    assert str(ei.value).startswith(f"{PATH}, line 1: bad numerical configuration")
    assert str(ei.value).endswith("(and 2 more errors)")
    assert [e.line for e in ei.value.errors] == [1, 2, 4]
    assert Config.from_text("myorigin = x.example\n").validate() == []


def test_validation_is_lazy():
    cfg = cfg_of("message_size_limit = 10x\n")
    assert cfg.get("myorigin")  # other parameters still work
    with pytest.raises(ConfigError):
        cfg.get("message_size_limit")


def test_convert_time_uses_parameter_unit():
    from postier.config import PARAMS
    assert convert_time(PARAMS["delay_warning_time"], "3") == 3 * 3600


# -- master.cf -o overrides ------------------------------------------------

def test_service_overrides_take_precedence_and_errors_name_master_cf():
    cfg = Config.from_text(
        "smtpd_recipient_limit = 100\nmail_name = postier\n", PATH,
        master_text="smtp inet n - n - - smtpd\n"
                    "2525 inet n - n - - smtpd -o smtpd_recipient_limit=5\n"
                    "  -o syslog_name=$mail_name/$service_name\n"
                    "bad inet n - n - - smtpd -o smtpd_recipient_limit=lots\n",
        master_path="/etc/postier/master.cf")
    smtp, sub, bad = cfg.services
    assert cfg.for_service(smtp).get("smtpd_recipient_limit") == 100
    scoped = cfg.for_service(sub)
    assert scoped.get("smtpd_recipient_limit") == 5
    assert scoped.get("syslog_name") == "postier/2525"
    assert scoped.source("smtpd_recipient_limit") == ("/etc/postier/master.cf", 2)
    assert cfg.get("smtpd_recipient_limit") == 100  # the parent is unchanged
    assert cfg.get("service_name") == ""
    with pytest.raises(ConfigError) as ei:
        cfg.for_service(bad).validate()
    assert str(ei.value) == (
        "/etc/postier/master.cf, line 4: bad numerical configuration: "
        "smtpd_recipient_limit = lots (expected an integer >= 1)")


def test_service_defined_parameters_follow_master_cf():
    cfg = Config.from_text(
        "default_destination_concurrency_limit = 10\nrelay_destination_concurrency_limit = 3\n",
        PATH, master_text="relay unix - - n - - smtp\nmaildrop unix - n n - - pipe\n"
                          "smtpd inet n - n - - smtpd\n")
    assert cfg.get("relay_destination_concurrency_limit") == 3
    assert cfg.get("maildrop_destination_concurrency_limit") == 10
    assert cfg.get_time("maildrop_time_limit") == 1000
    assert cfg.param("relay_time_limit") is None  # smtp services have no _time_limit
    assert cfg.param("smtpd_destination_concurrency_limit") is None  # not a delivery service
    bad = Config.from_text("relay_destination_concurrency_limit = x\n", PATH,
                           master_text="relay unix - - n - - smtp\n")
    with pytest.raises(ConfigError, match="line 1: bad numerical configuration: "
                                          "relay_destination_concurrency_limit = x"):
        bad.get("relay_destination_concurrency_limit")


# -- host-dependent defaults -----------------------------------------------

def test_myhostname_and_mydomain_defaults(monkeypatch):
    monkeypatch.setattr(maincf, "_hostname", lambda: "box")
    assert cfg_of("").get("myhostname") == "box.localdomain"
    assert cfg_of("").get("mydomain") == "localdomain"
    assert cfg_of("mydomain = example.org\n").get("myhostname") == "box.example.org"
    assert cfg_of("myhostname = mx.example.com\n").get("mydomain") == "example.com"
    assert cfg_of("myhostname = example.com\n").get("mydomain") == "com"
    assert cfg_of("myhostname = foo\n").get("mydomain") == "localdomain"
    monkeypatch.setattr(maincf, "_hostname", lambda: "mx.lab.example")
    assert cfg_of("").get("myhostname") == "mx.lab.example"
    assert cfg_of("").get("mydomain") == "lab.example"


def _iface(name, family, text, prefix, loopback=False):
    return maincf._Iface(name, family, socket.inet_pton(family, text), prefix, loopback)


@pytest.fixture
def fake_interfaces(monkeypatch):
    ifaces = [
        _iface("lo", socket.AF_INET, "127.0.0.1", 8, True),
        _iface("eth0", socket.AF_INET, "192.0.2.2", 24),
        _iface("eth1", socket.AF_INET, "172.16.5.4", 12),
        _iface("lo", socket.AF_INET6, "::1", 128, True),
        _iface("eth0", socket.AF_INET6, "fe80::fc:ff:fe00:1", 64),
        _iface("eth0", socket.AF_INET6, "fd00::2", 64),
    ]
    monkeypatch.setattr(maincf, "local_interfaces", lambda: ifaces)


@pytest.mark.parametrize("text, expected", [
    ("", "127.0.0.0/8 172.16.0.0/12 192.0.2.0/24 [::1]/128 [fd00::]/64 [fe80::]/64"),
    ("mynetworks_style = host\n",
     "127.0.0.1/32 172.16.5.4/32 192.0.2.2/32 [::1]/128 [fd00::2]/128 [fe80::fc:ff:fe00:1]/128"),
    ("mynetworks_style = class\n",
     "127.0.0.0/8 172.16.0.0/16 192.0.2.0/24 [::1]/128 [fd00::]/64 [fe80::]/64"),
    ("compatibility_level = 2\n",
     "127.0.0.1/32 172.16.5.4/32 192.0.2.2/32 [::1]/128 [fd00::2]/128 [fe80::fc:ff:fe00:1]/128"),
    ("inet_protocols = ipv4\n", "127.0.0.0/8 172.16.0.0/12 192.0.2.0/24"),
    ("inet_interfaces = loopback-only\n", "127.0.0.0/8 [::1]/128"),
    ("inet_interfaces = 192.0.2.2, [::1]\nmynetworks_style = host\n", "192.0.2.2/32 [::1]/128"),
])
def test_mynetworks_default(fake_interfaces, text, expected):
    cfg = cfg_of(text)
    assert cfg.raw("mynetworks") == expected
    assert cfg.get_list("mynetworks") == expected.split()


def test_mynetworks_default_errors(fake_interfaces):
    with pytest.raises(ConfigError) as ei:
        cfg_of("inet_interfaces = 10.9.9.9\n").get("mynetworks")
    assert str(ei.value) == (f"{PATH}: parameter inet_interfaces: "
                             "no local interface found for 10.9.9.9")
    assert cfg_of("mynetworks = 10.0.0.0/8\ninet_interfaces = 10.9.9.9\n").get(
        "mynetworks") == ["10.0.0.0/8"]


def test_config_directory_is_the_directory_read(tmp_path):
    (tmp_path / "main.cf").write_text("")
    cfg = maincf.load_config(str(tmp_path))
    assert cfg.get("config_directory") == str(tmp_path)
    assert maincf.defaults_config(str(tmp_path)).get("config_directory") == "/etc/postier"


def test_master_cf_parse_is_lazy_and_its_errors_surface_on_use(tmp_path):
    (tmp_path / "main.cf").write_text("relay_destination_concurrency_limit = 2\n")
    (tmp_path / "master.cf").write_text("relay unix - - n - - smtp\nbroken\n")
    cfg = maincf.load_config(str(tmp_path))
    assert cfg.get("myorigin")  # no master.cf needed
    with pytest.raises(ConfigError, match=r"master.cf, line 2: expected 8 or more fields"):
        cfg.get("relay_destination_concurrency_limit")


def test_override_referring_to_itself_loops_as_in_postfix():
    # -o replaces the main.cf value, so $syslog_name inside it refers to itself
    cfg = Config.from_text("syslog_name = base\n", PATH,
                           master_text="x unix - - n - - smtp -o syslog_name=$syslog_name/x\n",
                           master_path="/etc/postier/master.cf")
    with pytest.raises(ConfigError, match=r"^/etc/postier/master.cf, line 1: parameter "
                                          r"syslog_name: unreasonable macro call nesting"):
        cfg.for_service(cfg.services[0]).get("syslog_name")


def test_for_service_with_parsed_service_object():
    svc = parse_master_cf("x unix - - n - - smtp -o smtp_helo_name=me.example\n")[0]
    assert Config.from_text("").for_service(svc).get("smtp_helo_name") == "me.example"
