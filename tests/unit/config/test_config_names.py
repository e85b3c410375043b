"""Parameter names: unsupported (Postfix-only), unused, undefined, user-defined, service-defined."""

from __future__ import annotations

from postier.config import PARAMS, Config, postfix_names

PATH = "/etc/postier/main.cf"
MPATH = "/etc/postier/master.cf"


def warnings_of(main: str, master: str = "") -> list[str]:
    return Config.from_text(main, PATH, master_text=master, master_path=MPATH).check_names()


def test_registered_parameters_are_silent():
    assert warnings_of("myhostname = mx.example.com\nmessage_size_limit = 1\n") == []


def test_postfix_parameter_not_implemented_by_postier():
    assert warnings_of("myorigin = x.example\nsmtpd_milters = inet:localhost:8891\n") == [
        f'{PATH}, line 2: parameter "smtpd_milters" is not supported by postier (ignored)']


def test_unknown_parameter_is_unused():
    assert warnings_of("milter_foo = 1\n") == [f"{PATH}, line 1: unused parameter: milter_foo=1"]


def test_user_defined_parameter_referenced_from_a_value_is_valid():
    text = "my_nets = 10.0.0.0/8\nmynetworks = 127.0.0.0/8 $my_nets\n"
    assert warnings_of(text) == []
    assert Config.from_text(text).get_list("mynetworks") == ["127.0.0.0/8", "10.0.0.0/8"]


def test_reference_from_an_unused_parameter_still_validates():
    # postconf: b is valid because c references it, even though c itself is unused
    assert warnings_of("b = 1\nc = $b\n") == [f"{PATH}, line 2: unused parameter: c=$b"]


def test_references_in_both_conditional_branches_count():
    text = "x = 1\ny = 2\nmyorigin = ${x?{$y}:{h.example}}\n"
    assert warnings_of(text) == []


def test_restriction_classes_are_user_defined():
    text = ("smtpd_restriction_classes = strict, {relaxed}\n"
            "strict = reject_unknown_sender_domain\nrelaxed = permit\nunused_class = permit\n")
    assert warnings_of(text) == [f"{PATH}, line 4: unused parameter: unused_class=permit"]


def test_references_from_master_cf_overrides():
    text = "submission_restrictions = permit_sasl_authenticated, reject\n"
    master = ("submission inet n - n - - smtpd\n"
              "  -o smtpd_client_restrictions=$submission_restrictions\n")
    assert warnings_of(text, master) == []
    assert warnings_of(text) == [
        f"{PATH}, line 1: unused parameter: "
        "submission_restrictions=permit_sasl_authenticated, reject"]


def test_master_cf_override_names():
    master = ("submission inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes\n"
              "  -o milter_macro_daemon_name=ORIGINATING\n"
              "  -o my_thing=1 -o smtpd_helo_restrictions=$my_local\n  -o my_local=permit\n")
    assert warnings_of("", master) == [
        f'{MPATH}, line 1: parameter "milter_macro_daemon_name" is not supported by postier '
        "(ignored)",
        f"{MPATH}, line 1: unused parameter: my_thing=1"]


def test_undefined_references_are_reported_with_line():
    text = "myorigin = h.example\nmydestination = $myorigin, $nosuch\nx = ${also_missing?{y}}\n"
    w = warnings_of(text)
    assert f"{PATH}, line 2: undefined parameter: nosuch" in w
    assert f"{PATH}, line 3: undefined parameter: also_missing" in w


def test_postfix_known_references_are_not_undefined():
    assert warnings_of("myorigin = $smtpd_sasl_type\n") == []


def test_raw_parameters_are_not_scanned():
    # $home, $user and $extension are expanded per recipient by local delivery
    assert warnings_of("forward_path = $home/.forward$extension\nluser_relay = $user@x\n") == []


def test_syntax_errors_found_by_the_scan():
    assert warnings_of("myorigin = ${a\n") == [f'{PATH}, line 1: truncated macro reference: "${{a"']


def test_legacy_names_are_valid_and_used():
    cfg = Config.from_text("virtual_maps = hash:/etc/postier/virtual\n")
    assert cfg.check_names() == []
    assert cfg.get("virtual_alias_maps") == ["hash:/etc/postier/virtual"]
    assert "virtual_maps" in cfg.names()
    assert "virtual_maps" not in Config.from_text("").names()


def test_service_defined_names():
    master = "relay unix - - n - - smtp\nfilter unix - n n - 10 pipe flags=Rq argv=/x\n"
    text = ("relay_destination_concurrency_limit = 5\nfilter_time_limit = 60s\n"
            "filter_destination_recipient_limit = 1\nretry_destination_concurrency_limit = 1\n")
    w = warnings_of(text, master)
    # retry is a service in Postfix's stock master.cf, but not in this one
    assert w == [f'{PATH}, line 4: parameter "retry_destination_concurrency_limit" is not '
                 "supported by postier (ignored)"]
    names = Config.from_text(text, master_text=master).names()
    assert {"relay_destination_concurrency_limit", "filter_time_limit",
            "filter_initial_destination_concurrency"} <= set(names)
    assert "relay_time_limit" not in names


def test_names_lists_registered_service_and_user_parameters():
    cfg = Config.from_text("a = 1\nmyorigin = $a\n")
    names = cfg.names()
    assert names == sorted(names)
    assert "a" in names and "message_size_limit" in names
    assert set(names) >= {p for p, v in PARAMS.items() if not v.legacy}


def test_postfix_names_data_file():
    pf = postfix_names()
    assert len(pf) > 1000
    assert pf["smtpd_milters"] == ("builtin", "")
    assert pf["relay_destination_concurrency_limit"] == (
        "service", "$default_destination_concurrency_limit")
    assert pf["virtual_maps"][0] == "legacy"
    assert pf["myhostname"] == ("builtin", None)  # host-dependent: not recorded


def test_main_cf_reference_to_a_master_cf_only_name_is_valid():
    text = "smtpd_client_restrictions = $extra\n"
    master = "smtp inet n - n - - smtpd -o extra=permit_mynetworks\n"
    assert warnings_of(text, master) == []
    assert warnings_of(text) == [f"{PATH}, line 1: undefined parameter: extra"]


def test_restriction_class_names_are_valid_in_master_cf():
    text = "smtpd_restriction_classes = strict\nstrict = reject\n"
    master = "smtp inet n - n - - smtpd -o strict=permit\n"
    assert warnings_of(text, master) == []
