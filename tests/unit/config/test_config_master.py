"""master.cf: fields, -o overrides, normalization, errors with file:line, postconf -M layout."""

from __future__ import annotations

import pytest
from _config_helpers import make_dir, postconf, with_postfix

from postier.config import ConfigError, Service, format_service, parse_master_cf, read_master_cf
from postier.config.mastercf import parse_service_pattern, split_inet_service

PATH = "/etc/postier/master.cf"

SAMPLE = """\
# comment
127.0.0.1:2525 inet n - y - - smtpd
  -o smtpd_tls_security_level=none
  -o { smtpd_client_restrictions = permit_mynetworks, reject }
  -o syslog_name=postfix/$service_name
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup

# a comment between entries
[::1]:25 inet n - - - - smtpd -v
2525 inet n - - - - smtpd
smtp inet n - - - - smtpd
qmgr      unix  n       -       n       300?    1       qmgr
local     unix  -       n       n       -       -       local
dgram     unix-dgram -  -       n       -       -       postlogd
verylongservicenamehere unix - - - - - pipe flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient} and some more arguments to make it very long indeed yes
odd unix - - n - - smtpd -oa=b -vo c=d -o { x = y } {arg one} { x } -- {a b}
"""


def test_fields_and_overrides():
    services = parse_master_cf(SAMPLE, PATH)
    first = services[0]
    assert isinstance(first, Service)
    assert (first.name, first.type, first.private, first.unpriv, first.chroot, first.wakeup,
            first.maxproc, first.command) == ("127.0.0.1:2525", "inet", "n", "-", "y", "-", "-",
                                              "smtpd")
    assert first.overrides == {"smtpd_tls_security_level": "none",
                               "smtpd_client_restrictions": "permit_mynetworks, reject",
                               "syslog_name": "postfix/$service_name"}
    assert first.line == 2 and first.path == PATH
    assert [s.line for s in services] == [2, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17]


def test_normalization_of_options_and_braces():
    odd = parse_master_cf(SAMPLE, PATH)[-1]
    assert odd.args == ["-o", "a=b", "-v", "-o", "c=d", "-o", "x=y", "arg one", "x", "--", "a b"]
    assert odd.overrides == {"a": "b", "c": "d", "x": "y"}
    assert odd.command_args() == ["-v", "arg one", "x", "--", "a b"]


def test_service_helpers():
    services = {s.name: s for s in parse_master_cf(SAMPLE, PATH)}
    smtpd = services["127.0.0.1:2525"]
    assert not smtpd.is_private and smtpd.is_unprivileged and smtpd.is_chroot
    assert smtpd.listen_address() == ("127.0.0.1", "2525")
    assert services["[::1]:25"].listen_address() == ("::1", "25")
    assert services["2525"].listen_address() == (None, "2525")
    assert services["smtp"].listen_address() == (None, "smtp")
    assert services["pickup"].wakeup_time == (60, False)
    assert services["qmgr"].wakeup_time == (300, True)
    assert services["local"].wakeup_time == (0, False)
    assert services["local"].process_limit(100) == 100
    assert services["cleanup"].process_limit(100) == 0
    assert not services["local"].is_unprivileged and services["local"].is_private
    assert not services["smtp"].is_chroot  # "-" means n


@pytest.mark.parametrize("name, expected", [
    ("smtp", (None, "smtp")), ("127.0.0.1:25", ("127.0.0.1", "25")),
    ("[::1]:2525", ("::1", "2525")), ("host.example:submission", ("host.example", "submission")),
])
def test_split_inet_service(name, expected):
    assert split_inet_service(name) == expected


@pytest.mark.parametrize("text, line, message", [
    ("smtp inet n - y\n", 1,
     "expected 8 or more fields (service type private unpriv chroot wakeup maxproc command), got 5"),
    ("# c\n\nsmtp xinet n - y - - smtpd\n", 3,
     'invalid type field "xinet" (expected one of: inet, unix, unix-dgram, fifo, pass)'),
    ("smtp inet x - y - - smtpd\n", 1, 'invalid private field "x" (expected y, n or -)'),
    ("smtp inet n yes y - - smtpd\n", 1, 'invalid unpriv field "yes" (expected y, n or -)'),
    ("smtp inet n - yy - - smtpd\n", 1, 'invalid chroot field "yy" (expected y, n or -)'),
    ("smtp inet n - y 1x - smtpd\n", 1,
     'invalid wakeup field "1x" (expected a number of seconds, optionally followed by "?", or -)'),
    ("smtp inet n - y - 1x smtpd\n", 1,
     'invalid process_limit field "1x" (expected a number or -)'),
    ("smtp inet n - y - - smtpd -o {a = b\n", 1, "missing '}' in \"{a = b\""),
    ("smtp inet n - y - - smtpd -o {a b}\n", 1,
     "bad -o option \"a b\": missing '=' after attribute name (expected -o name=value)"),
    ("smtp inet n - y - - smtpd -o novalue\n", 1,
     "bad -o option \"novalue\": missing '=' after attribute name (expected -o name=value)"),
    ("smtp inet n - y - - smtpd -o {a=b}x\n", 1, "syntax error after '}' in \"{a=b}x\""),
    ("smtp inet n - y - - smtpd -o\n", 1, "option -o without a value (expected -o name=value)"),
    ("smtp inet n - y - - smtpd x {a b\n", 1, "missing '}' in \"{a b\""),
    ("[::1 inet n - y - - smtpd\n", 1,
     'invalid inet service "[::1": bad [address] (expected [host:]port, e.g. 127.0.0.1:2525, '
     "[::1]:25, smtp or 2525)"),
    ("127.0.0.1: inet n - y - - smtpd\n", 1,
     'invalid inet service "127.0.0.1:": missing port (expected [host:]port, e.g. '
     "127.0.0.1:2525, [::1]:25, smtp or 2525)"),
    ("a unix - - - - - x\n  -o a=b\nb unix - - - - - y\na unix - - - - - z\n", 4,
     'duplicate service "a/unix" (first defined at line 1)'),
    ("a unix - - - - - x\nb unix - -\n  - - -\n", 2,
     "expected 8 or more fields (service type private unpriv chroot wakeup maxproc command), got 7"),
])
def test_malformed_entries(text, line, message):
    with pytest.raises(ConfigError) as ei:
        parse_master_cf(text, PATH)
    assert str(ei.value) == f"{PATH}, line {line}: {message}"


def test_leading_whitespace_entry_is_skipped_with_warning():
    warnings: list[str] = []
    services = parse_master_cf("  smtp inet n - y - - smtpd\nb unix - - - - - y\n", PATH, warnings)
    assert [s.name for s in services] == ["b"]
    assert warnings == [f'{PATH}, line 1: logical line must not start with whitespace: '
                        '"  smtp inet n - y - - smtpd"']


def test_read_master_cf_missing_file(tmp_path):
    with pytest.raises(ConfigError) as ei:
        read_master_cf(str(tmp_path / "master.cf"))
    assert str(ei.value) == f"open {tmp_path}/master.cf: No such file or directory"


GOLDEN_M = """\
127.0.0.1:2525 inet n    -       y       -       -       smtpd -o smtpd_tls_security_level=none -o {smtpd_client_restrictions=permit_mynetworks, reject} -o syslog_name=postfix/$service_name
pickup     unix  n       -       y       60      1       pickup
cleanup    unix  n       -       y       -       0       cleanup
[::1]:25   inet  n       -       -       -       -       smtpd -v
2525       inet  n       -       -       -       -       smtpd
smtp       inet  n       -       -       -       -       smtpd
qmgr       unix  n       -       n       300?    1       qmgr
local      unix  -       n       n       -       -       local
dgram      unix-dgram -  -       n       -       -       postlogd
verylongservicenamehere unix - - -       -       -       pipe flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient} and some more arguments to make it very long indeed yes
odd        unix  -       -       n       -       -       smtpd -o a=b -v -o c=d -o x=y arg one x -- {a b}
"""

GOLDEN_MF = """\
127.0.0.1:2525 inet n    -       y       -       -       smtpd
    -o smtpd_tls_security_level=none
    -o {smtpd_client_restrictions=permit_mynetworks, reject}
    -o syslog_name=postfix/$service_name
pickup     unix  n       -       y       60      1       pickup
cleanup    unix  n       -       y       -       0       cleanup
[::1]:25   inet  n       -       -       -       -       smtpd -v
2525       inet  n       -       -       -       -       smtpd
smtp       inet  n       -       -       -       -       smtpd
qmgr       unix  n       -       n       300?    1       qmgr
local      unix  -       n       n       -       -       local
dgram      unix-dgram -  -       n       -       -       postlogd
verylongservicenamehere unix - - -       -       -       pipe flags=DRhu
    user=vmail argv=/usr/bin/maildrop -d ${recipient} and some more arguments
    to make it very long indeed yes
odd        unix  -       -       n       -       -       smtpd
    -o a=b
    -v
    -o c=d
    -o x=y
    arg one x -- {a b}
"""


def test_postconf_M_layout_golden():
    services = parse_master_cf(SAMPLE, PATH)
    assert "".join(format_service(s) + "\n" for s in services) == GOLDEN_M
    assert "".join(format_service(s, fold=True) + "\n" for s in services) == GOLDEN_MF


def test_format_with_expansion_callback():
    svc = parse_master_cf("x unix - - n - - smtp -o a=$b\n", PATH)[0]
    assert format_service(svc, expand=lambda v: v.replace("$b", "B")) == (
        "x          unix  -       -       n       -       -       smtp -o a=B")


@pytest.mark.parametrize("pattern, lo, hi, expected", [
    ("smtp", 1, 2, ["smtp", "*"]), ("smtp/inet", 1, 2, ["smtp", "inet"]),
    ("*/unix", 1, 2, ["*", "unix"]), ("a/b/c", 1, 2, None), ("/x", 1, 2, None),
    ("sm*", 1, 2, None), ("a/b/c", 1, 3, ["a", "b", "c"]),
])
def test_service_patterns(pattern, lo, hi, expected):
    assert parse_service_pattern(pattern, lo, hi) == expected


@with_postfix
def test_layout_matches_real_postconf(tmp_path):
    d = make_dir(tmp_path, "", SAMPLE)
    assert postconf("-c", d, "-M").stdout == GOLDEN_M
    assert postconf("-c", d, "-Mf").stdout == GOLDEN_MF
