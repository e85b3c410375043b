"""$name expansion (mac_expand port) and list splitting, checked against real postconf -x."""

from __future__ import annotations

import pytest
from _config_helpers import make_dir, postconf, with_postfix

from postier.config import Config, ConfigError, split_list
from postier.config.maincf import MacroError, mac_expand, mac_scan
from postier.config.registry import BadValue

BASE = "a = 1\nb = 2\ne =\nc = 3.6\nn1 = $n2\nn2 = ${n1?x}\n"

# (expression, expected expansion) with BASE defined
CASES = [
    ("$a$a ${a}x $(a) $$ $$$a", "11 1x 1 $ $1"),
    ("$u|${u}|$(u)", "||"),
    ("${a?yes}|${e?yes}|${u?yes}|${a:no}|${e:no}|${u:no}", "yes||||no|no"),
    ("${a?{x y}:{z}}|${e?{x}:{ z w }}", "x y| z w "),
    ("${a?x:y}|${e?x:y}", "x:y|"),
    ("${a?{x}:y}|${e?{x}:y}", "x|y"),
    ("${{$a} == {1} ? {eq} : {ne}}|${{$a} != {1} ? {eq} : {ne}}", "eq|ne"),
    ("${{10} < {9}?{lt}:{ge}}|${{abc} < {abd}?{lt}:{ge}}|${{10} <= {10}?{le}:{gt}}"
     "|${{2} > {10}?{gt}:{le}}|${{b} >= {a}?{ge}:{lt}}", "ge|lt|le|le|ge"),
    ("${{3.6} <level {3.10}?{lt}:{ge}}|${{3} ==level {3.0.0}?{eq}:{ne}}"
     "|${{$c} <level {2}?{old}:{new}}", "lt|eq|new"),
    ("${a?${b?{in}}}|${{${a}} == {1}?{ok}}|${{$a} == {1}}|${{$a} == {2}}|", "in|ok|true||"),
    ("${ a ? {x} }|${ a }|${a ?x}", "x|1|x"),
    ("$n1", "x"),
    ("${{} == {}?{y}:{n}}|${{1} == {}?{y}:{n}}", "y|n"),
    ("{$a}", "{1}"),
    ("no dollars at all", "no dollars at all"),
]

ERRORS = [
    ("${a?{x}y}", '":" expected at: "...x}>>>y"'),
    ("${{a} ~ {b}?{x}}",
     '"==" or "!="" or "<"" or "<="" or ">="" or ">" expected at: "...a}>>>~ {b}?{x}"'),
    ("${a", 'truncated macro reference: "${a"'),
    ("${a b}", 'attribute name syntax error at: "...a>>> b"'),
    ("${{a} == b}", '"{expression}" expected at: "...{a} ==>>> b"'),
    ("${{a} ==lvl {b}?{x}}", 'bad operator suffix at: "...==>>>lvl"'),
    ("${{a} <level {b}?{x}}", 'malformed compatibility level syntax: "a"'),
    ("${{$a} == {1} ? {eq} x}", '":" expected at: "...eq}>>>x"'),
    ("${a?{x}:{y}z}", 'unexpected input at: "...y}>>>z"'),
    ("${a?{x}:{y}:{z}}", 'unexpected input at: "...y}>>>:{z}"'),
    ("${{a}}", '"==" or "!="" or "<"" or "<="" or ">="" or ">" expected at: "...a}>>>"'),
    ("$", 'empty macro name: "$"'),
    ("${}", 'empty macro name: "${}"'),
    ("${a:{x}:{y}}", 'unexpected input at: "...x}>>>:{y}"'),
    ("${a?{un{bal}}", 'truncated macro reference: "${a?{un{bal}}"'),
]


def expand_v(expr: str) -> str:
    cfg = Config.from_text(BASE + f"v = {expr}\n", "/etc/postier/main.cf")
    return cfg.expand(cfg.raw("v"), name="v")


@pytest.mark.parametrize("expr, expected", CASES)
def test_expansion_forms(expr, expected):
    assert expand_v(expr) == expected


@pytest.mark.parametrize("expr, message", ERRORS)
def test_expansion_errors_name_file_line_and_parameter(expr, message):
    with pytest.raises(ConfigError) as ei:
        expand_v(expr)
    assert str(ei.value) == f"/etc/postier/main.cf, line 7: parameter v: {message}"


def test_recursive_loop_is_an_error_not_a_hang():
    cfg = Config.from_text("x = 1\nd = $e\ne = $f\nf = ${d}\n", "/etc/postier/main.cf")
    with pytest.raises(ConfigError) as ei:
        cfg.get_str("d")
    assert str(ei.value).startswith(
        "/etc/postier/main.cf, line 2: parameter d: unreasonable macro call nesting: ")


def test_self_reference_in_registered_parameter():
    cfg = Config.from_text("myorigin = $myorigin.x\n", "main.cf")
    with pytest.raises(ConfigError, match=r"main.cf, line 1: parameter myorigin: "
                                          r"unreasonable macro call nesting"):
        cfg.get("myorigin")


def test_deep_but_finite_chain_expands():
    text = "".join(f"p{i} = $p{i + 1}\n" for i in range(50)) + "p50 = end\n"
    assert Config.from_text(text).get_str("p0") == "end"


def test_default_values_expand_through_registry_and_compatibility_level():
    cfg = Config.from_text("myhostname = mx.example.com\n")
    assert cfg.get("mydestination") == ["mx.example.com", "localhost.example.com", "localhost"]
    assert cfg.get("relay_domains") == cfg.get("mydestination")  # compatibility_level 0
    assert cfg.get_bool("smtputf8_enable") is False
    new = Config.from_text("myhostname = mx.example.com\ncompatibility_level = 3.6\n")
    assert new.get("relay_domains") == []
    assert new.get_bool("smtputf8_enable") is True
    assert new.get("smtpd_relay_restrictions") == [
        "permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"]


def test_stress_conditional_defaults():
    assert Config.from_text("").get_time("smtpd_timeout") == 300
    assert Config.from_text("stress = yes\n").get_time("smtpd_timeout") == 10
    assert Config.from_text("stress = yes\n").get_int("smtpd_hard_error_limit") == 1


def test_unregistered_postfix_parameter_expands_to_its_postfix_default():
    cfg = Config.from_text("x = $smtpd_sasl_security_options\nmilter_protocol = 2\ny = $milter_protocol\n")
    assert cfg.get_str("x") == "noanonymous"
    assert cfg.get_str("y") == "2"


def test_expand_text_and_undefined_names():
    cfg = Config.from_text("myhostname = h.example\n")
    assert cfg.expand("$myhostname/${nosuch}/$$") == "h.example//$"


def test_mac_expand_without_recursion():
    look = {"a": "$b", "b": "B"}.get
    assert mac_expand("$a", look) == "B"
    assert mac_expand("$a", look, recurse=False) == "$b"


def test_mac_scan_sees_both_branches():
    assert mac_scan("${x?{$y}:{$z}} ${{$p} == {$q}?{$r}}") == ["x", "y", "z", "p", "q", "r"]
    with pytest.raises(MacroError):
        mac_scan("${a")


@pytest.mark.parametrize("value, expected", [
    ("a, b c,,d\te\n f", ["a", "b", "c", "d", "e", "f"]),
    ("", []),
    ("  ,  ", []),
    ("{a b}, c", ["a b", "c"]),
    ("{ a b } {c}", ["a b", "c"]),
    ("check_policy_service { inet:127.0.0.1:10023, default_action=DUNNO }, permit",
     ["check_policy_service", "inet:127.0.0.1:10023, default_action=DUNNO", "permit"]),
    ("inline:{ a=b, {c = d e} }, hash:/x", ["inline:{ a=b, {c = d e} }", "hash:/x"]),
    ("{a {b c} d}", ["a {b c} d"]),
])
def test_list_splitting_with_braces(value, expected):
    assert split_list(value) == expected


@pytest.mark.parametrize("value, message", [
    ("{a b}c", "mynetworks: syntax error after '}' in \"{a b}c\""),
    ("{a b", "mynetworks: missing '}' in \"{a b\""),
])
def test_list_brace_errors(value, message):
    with pytest.raises(BadValue, match="^" + message.replace("{", r"\{").replace("}", r"\}")):
        split_list(value, "mynetworks")
    cfg = Config.from_text(f"a = 1\nmynetworks = {value}\n", "/etc/postier/main.cf")
    with pytest.raises(ConfigError) as ei:
        cfg.get_list("mynetworks")
    assert str(ei.value).startswith("/etc/postier/main.cf, line 2: mynetworks: ")


def test_braces_survive_expansion_and_are_stripped_by_lists():
    cfg = Config.from_text("myhostname = h.example\nmydestination = $myhostname, {a b}\n")
    assert cfg.get_str("mydestination") == "h.example, {a b}"
    assert cfg.get_list("mydestination") == ["h.example", "a b"]


@with_postfix
def test_expansion_matches_real_postconf(tmp_path):
    # one postconf run for all cases (each warning costs postconf a syslog timeout here)
    names = [f"v{i}" for i in range(len(CASES))]
    main = BASE + "".join(f"{n} = {expr}\n" for n, (expr, _) in zip(names, CASES, strict=True))
    main += "w = " + " ".join("$" + n for n in names) + "\n"  # makes v0.. used parameters
    r = postconf("-c", make_dir(tmp_path, main), "-xh", *names)
    got = r.stdout.split("\n")[:-1]
    for (expr, expected), line in zip(CASES, got, strict=True):
        # postconf prints whitespace-normalized values
        assert line == " ".join(expected.split()), expr


@with_postfix
@pytest.mark.slow
def test_expansion_errors_match_real_postconf(tmp_path):
    # postconf reports syntax errors of every main.cf value while it scans for
    # $name references; the compatibility-level check happens only with -x.
    scan = [(e, m) for e, m in ERRORS if "compatibility level" not in m]
    main = BASE + "".join(f"v{i} = {expr}\n" for i, (expr, _) in enumerate(scan))
    r = postconf("-c", make_dir(tmp_path, main), "-h", "a")
    for expr, message in scan:
        assert f"postconf: warning: {message}\n" in r.stderr, expr
    main = BASE + "w = $v\nv = ${{a} <level {b}?{x}}\n"
    r = postconf("-c", make_dir(tmp_path, main, name="lvl"), "-xh", "v")
    assert 'postconf: warning: malformed compatibility level syntax: "a"\n' in r.stderr
