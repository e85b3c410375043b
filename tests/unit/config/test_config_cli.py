"""`postier config` (postconf clone): output formats, edits, diagnostics, and real postconf parity."""

from __future__ import annotations

import os
import stat

import pytest
from _config_helpers import make_dir, postconf, run_cli, with_postfix

from postier.config import PARAMS, builtin_config_dir

MAIN = """\
# A sample main.cf
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost.$mydomain,
    {localhost}
my_networks = 10.0.0.0/8
mynetworks = 127.0.0.0/8 $my_networks
message_size_limit = 20480000
smtpd_milters = inet:localhost:8891
smtpd_banner = $myhostname   ESMTP
maximal_queue_lifetime = 3d
"""

MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
127.0.0.1:2525 inet n - n - - smtpd
  -o smtpd_recipient_limit=10
  -o { smtpd_client_restrictions = permit_mynetworks, reject }
  -o syslog_name=postfix/$service_name
pickup    unix  n       -       n       60      1       pickup
relay     unix  -       -       n       -       -       smtp -o smtp_helo_timeout=5
"""


@pytest.fixture
def cfdir(tmp_path):
    return make_dir(tmp_path, MAIN, MASTER)


def test_bare_lists_every_known_parameter_sorted(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir)
    assert rc == 0
    lines = out.splitlines()
    names = [line.split(" =")[0] for line in lines]
    assert names == sorted(names)
    assert set(names) >= {n for n, p in PARAMS.items() if not p.legacy}
    assert "message_size_limit = 20480000" in lines
    assert "my_networks = 10.0.0.0/8" in lines  # user-defined, referenced by mynetworks
    assert "relay_destination_concurrency_limit = $default_destination_concurrency_limit" in lines
    assert "smtpd_milters" not in names  # not supported: only shown by -n
    assert "smtpd_banner = $myhostname ESMTP" in lines  # whitespace normalized like postconf
    assert err == (f'postconf: warning: {cfdir}/main.cf, line 9: parameter "smtpd_milters" '
                   "is not supported by postier (ignored)\n")


def test_n_shows_main_cf_settings(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-n")
    assert rc == 0
    assert out == (
        f"config_directory = {cfdir}\n"
        "maximal_queue_lifetime = 3d\n"
        "message_size_limit = 20480000\n"
        "my_networks = 10.0.0.0/8\n"
        "mydestination = $myhostname, localhost.$mydomain, {localhost}\n"
        "mydomain = example.com\n"
        "myhostname = mx.example.com\n"
        "mynetworks = 127.0.0.0/8 $my_networks\n"
        "smtpd_banner = $myhostname ESMTP\n"
        "smtpd_milters = inet:localhost:8891\n")


def test_nx_expands(capsys, cfdir):
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-nx")
    assert "mydestination = mx.example.com, localhost.example.com, {localhost}\n" in out
    assert "mynetworks = 127.0.0.0/8 10.0.0.0/8\n" in out


def test_named_parameters_h_and_x(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-h", "myhostname", "relayhost", "smtpd_banner")
    assert (rc, out) == (0, "mx.example.com\n\n$myhostname ESMTP\n")
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-x", "smtpd_banner", "smtpd_timeout")
    assert out == "smtpd_banner = mx.example.com ESMTP\nsmtpd_timeout = 300s\n"
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-H", "myhostname", "relayhost")
    assert out == "myhostname\nrelayhost\n"


def test_raw_parameters_are_not_expanded_by_x(capsys, cfdir):
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-x", "forward_path")
    assert out == "forward_path = $home/.forward${recipient_delimiter}${extension}, $home/.forward\n"


def test_unknown_names_warn_but_exit_zero(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "nosuch", "myhostname", "my_networks")
    assert rc == 0
    assert out == "myhostname = mx.example.com\nmy_networks = 10.0.0.0/8\n"
    assert "postconf: warning: nosuch: unknown parameter\n" in err


def test_postfix_only_parameter_by_name_shows_its_value(capsys, cfdir):
    rc, out, _ = run_cli(capsys, "-c", cfdir, "smtpd_milters", "milter_protocol")
    assert out == "smtpd_milters = inet:localhost:8891\nmilter_protocol = 6\n"


def test_d_shows_defaults(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-d", "myorigin", "message_size_limit",
                           "config_directory", "milter_protocol", "nosuch")
    assert rc == 0
    assert out == ("myorigin = $myhostname\nmessage_size_limit = 10240000\n"
                   "config_directory = /etc/postier\nmilter_protocol = 6\n")
    assert err == "postconf: warning: nosuch: unknown parameter\n"
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-d")
    assert len(out.splitlines()) == len([p for p in PARAMS.values() if not p.legacy]) + 9
    assert "myhostname = mx.example.com" not in out


def test_d_and_n_are_exclusive(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-d", "-n")
    assert (rc, out, err) == (1, "", "postconf: fatal: specify one of -d or -n\n")


def test_f_folds_long_lines(capsys, tmp_path):
    d = make_dir(tmp_path, "mynetworks = " + " ".join(f"10.{i}.0.0/16" for i in range(12)) + "\n")
    rc, out, _ = run_cli(capsys, "-c", d, "-f", "mynetworks")
    lines = out.splitlines()
    assert len(lines) == 3 and all(len(line) < 80 for line in lines)
    assert lines[0].startswith("mynetworks = 10.0.0.0/16 ")
    assert all(line.startswith("    10.") for line in lines[1:])
    assert " ".join(out.split()) == "mynetworks = " + " ".join(f"10.{i}.0.0/16" for i in range(12))


def test_o_overrides_for_this_command(capsys, cfdir):
    rc, out, _ = run_cli(capsys, "-c", cfdir, "-o", "myhostname=other.example", "-x", "smtpd_banner")
    assert out == "smtpd_banner = other.example ESMTP\n"


def test_warnings_after_output(capsys, tmp_path):
    d = make_dir(tmp_path, "myorigin = a.example\nfoo = bar\nmyorigin = b.example\n"
                           "message_size_limit = 10x\n")
    rc, out, err = run_cli(capsys, "-c", d, "-n")
    assert rc == 0
    assert "message_size_limit = 10x\n" in out
    assert err.splitlines() == [
        f"postconf: warning: {d}/main.cf, line 3: overriding earlier entry: myorigin=a.example",
        f"postconf: warning: {d}/main.cf, line 2: unused parameter: foo=bar",
        f"postconf: warning: {d}/main.cf, line 4: bad numerical configuration: "
        "message_size_limit = 10x (expected a size in bytes >= 0)",
    ]


@pytest.mark.parametrize("main, message", [
    ("a = 1\njunk\n", 'line 2: missing \'=\' after attribute name: "junk" (expected name = value)'),
    ("x = $y\ny = $x\nmyorigin = $x\n",
     'line 3: parameter myorigin: unreasonable macro call nesting: "x"'),
])
def test_malformed_main_cf_is_one_fatal_line(capsys, tmp_path, main, message):
    d = make_dir(tmp_path, main)
    rc, out, err = run_cli(capsys, "-c", d, "-x", "myorigin")
    assert rc == 1
    assert err == f"postconf: fatal: {d}/main.cf, {message}\n"


def test_missing_config_directory(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "-c", str(tmp_path / "nope"), "-n")
    assert (rc, out) == (1, "")
    assert err == f"postconf: fatal: open {tmp_path}/nope/main.cf: No such file or directory\n"


def test_help_and_bad_option(capsys):
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and out.startswith("usage: postier config") and "-e" in out and "-M" in out
    rc, out, err = run_cli(capsys, "-Z")
    assert rc == 1 and err.startswith("postconf: fatal: option -Z not recognized")


def test_dispatch_through_postier_main(capsys, cfdir):
    from postier.cli.main import main
    assert main(["config", "-c", cfdir, "-h", "mydomain"]) == 0
    assert capsys.readouterr().out == "example.com\n"


def test_config_dir_from_environment(capsys, cfdir, monkeypatch, tmp_path):
    monkeypatch.setenv("POSTIER_CONFIG_DIR", cfdir)
    rc, out, _ = run_cli(capsys, "-h", "mydomain")
    assert out == "example.com\n"
    monkeypatch.delenv("POSTIER_CONFIG_DIR")
    other = make_dir(tmp_path, "mydomain = mail-config.example\n", name="mc")
    monkeypatch.setenv("MAIL_CONFIG", other)
    rc, out, _ = run_cli(capsys, "-h", "mydomain")
    assert out == "mail-config.example\n"


# -- editing ------------------------------------------------------------------

EDIT_MAIN = """\
# header comment
myhostname = old.example.com
mydestination = a,
   # comment inside
   b,
   c
relayhost=[x]
  :25

mynetworks = 127.0.0.0/8
#relayhost = commented
x = 1
"""


def edit(capsys, tmp_path, *args):
    d = make_dir(tmp_path, EDIT_MAIN)
    rc, out, err = run_cli(capsys, "-c", d, *args)
    with open(os.path.join(d, "main.cf")) as f:
        return rc, f.read(), err, d


def test_e_replaces_in_place_and_appends_sorted(capsys, tmp_path):
    rc, text, err, d = edit(capsys, tmp_path, "-e", "mydestination = q, r", "zz=1", "aa = 2",
                            "myhostname=new.example.com")
    assert (rc, err) == (0, "")
    assert text == ("# header comment\nmyhostname = new.example.com\nmydestination = q, r\n"
                    "   # comment inside\nrelayhost=[x]\n  :25\n\nmynetworks = 127.0.0.0/8\n"
                    "#relayhost = commented\nx = 1\naa = 2\nzz = 1\n")
    assert sorted(os.listdir(d)) == ["main.cf", "master.cf"]  # no temporary file left


def test_X_removes_entries_and_continuations(capsys, tmp_path):
    rc, text, err, _ = edit(capsys, tmp_path, "-X", "relayhost", "mydestination", "nosuch")
    assert rc == 0
    assert text == ("# header comment\nmyhostname = old.example.com\n   # comment inside\n\n"
                    "mynetworks = 127.0.0.0/8\n#relayhost = commented\nx = 1\n")


def test_hash_comments_out(capsys, tmp_path):
    rc, text, err, _ = edit(capsys, tmp_path, "-#", "relayhost", "mynetworks")
    assert text == ("# header comment\nmyhostname = old.example.com\nmydestination = a,\n"
                    "   # comment inside\n   b,\n   c\n#relayhost=[x]\n#  :25\n\n"
                    "#mynetworks = 127.0.0.0/8\n#relayhost = commented\nx = 1\n")


def test_e_multiple_entries_and_repeated_requests_warn(capsys, tmp_path):
    d = make_dir(tmp_path, "a = 1\nb = 2\na = 3\n")
    rc, out, err = run_cli(capsys, "-c", d, "-e", "a=x", "a=y")
    assert rc == 0
    assert err.splitlines() == ["postconf: warning: ignoring earlier request: 'a = x'",
                                f'postconf: warning: {d}/main.cf: multiple entries for "a"']
    assert open(os.path.join(d, "main.cf")).read() == "a = y\nb = 2\na = y\n"


def test_e_keeps_file_mode(capsys, tmp_path):
    d = make_dir(tmp_path, "a = 1\n")
    path = os.path.join(d, "main.cf")
    os.chmod(path, 0o640)
    run_cli(capsys, "-c", d, "-e", "a=2")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("args, message", [
    (["-e", "myhostname"], "missing '=' after attribute name: \"myhostname\""),
    (["-e", "=x"], 'missing attribute name: "=x"'),
    (["-e", "a=1\nb=2"], "-e, -X, or -# accepts no multi-line input"),
    (["-e", "# a=1"], "-e, -X, or -# accepts no comment input"),
    (["-X", "a=b"], "-X or -# requires parameter names without value"),
    (["-#", " "], "-X or -# requires non-blank parameter names"),
    (["-e"], "-e, -X or -# requires name[=value] arguments"),
    (["-e", "-X", "a"], "specify one of -e, -X or -#"),
])
def test_edit_argument_errors(capsys, tmp_path, args, message):
    d = make_dir(tmp_path, "a = 1\n")
    rc, out, err = run_cli(capsys, "-c", d, *args)
    assert (rc, out) == (1, "")
    assert err == f"postconf: fatal: {message}\n"
    assert open(os.path.join(d, "main.cf")).read() == "a = 1\n"


def test_edit_missing_main_cf(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "-c", str(tmp_path), "-e", "a=1")
    assert rc == 1
    assert err == f"postconf: fatal: open {tmp_path}/main.cf for reading: No such file or directory\n"


def test_builtin_default_configuration_is_not_edited(capsys):
    before = open(os.path.join(builtin_config_dir(), "main.cf")).read()
    rc, out, err = run_cli(capsys, "-c", builtin_config_dir(), "-e", "myhostname=x")
    assert rc == 1 and "refusing to edit the built-in default configuration" in err
    assert open(os.path.join(builtin_config_dir(), "main.cf")).read() == before


# -- master.cf ------------------------------------------------------------------

def test_M_all_and_filtered(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-M")
    assert out == (
        "smtp       inet  n       -       n       -       -       smtpd\n"
        "127.0.0.1:2525 inet n    -       n       -       -       smtpd -o smtpd_recipient_limit=10"
        " -o {smtpd_client_restrictions=permit_mynetworks, reject}"
        " -o syslog_name=postfix/$service_name\n"
        "pickup     unix  n       -       n       60      1       pickup\n"
        "relay      unix  -       -       n       -       -       smtp -o smtp_helo_timeout=5\n")
    rc, out, err = run_cli(capsys, "-c", cfdir, "-M", "smtp/inet", "pickup", "nosuch/unix")
    assert out.splitlines() == [
        "smtp       inet  n       -       n       -       -       smtpd",
        "pickup     unix  n       -       n       60      1       pickup"]
    assert err == 'postconf: warning: unmatched request: "nosuch/unix"\n'
    rc, out, err = run_cli(capsys, "-c", cfdir, "-M", "a/b/c")
    assert (rc, err) == (1, "postconf: fatal: -M option requires service_name[/type]\n")


def test_P_overrides(capsys, cfdir):
    rc, out, err = run_cli(capsys, "-c", cfdir, "-P")
    assert out == ("127.0.0.1:2525/inet/smtpd_client_restrictions = permit_mynetworks, reject\n"
                   "127.0.0.1:2525/inet/smtpd_recipient_limit = 10\n"
                   "127.0.0.1:2525/inet/syslog_name = postfix/$service_name\n"
                   "relay/unix/smtp_helo_timeout = 5\n")
    rc, out, err = run_cli(capsys, "-c", cfdir, "-Px", "*/*/syslog_name", "relay/unix/nosuch")
    assert out == "127.0.0.1:2525/inet/syslog_name = postfix/127.0.0.1:2525\n"
    assert err == 'postconf: warning: unmatched request: "relay/unix/nosuch"\n'


def test_malformed_master_cf_is_one_fatal_line(capsys, tmp_path):
    d = make_dir(tmp_path, "", "smtp inet n - n - - smtpd\nbad inet\n")
    rc, out, err = run_cli(capsys, "-c", d, "-M")
    assert (rc, out) == (1, "")
    assert err == (f"postconf: fatal: {d}/master.cf, line 2: expected 8 or more fields (service type "
                   "private unpriv chroot wakeup maxproc command), got 2\n")
    rc, out, err = run_cli(capsys, "-c", d, "-n")
    assert rc == 1 and "line 2: expected 8 or more fields" in err


# -- parity with real postconf ------------------------------------------------------

@with_postfix
def test_n_M_P_match_real_postconf(capsys, cfdir):
    for args in (["-n"], ["-nx"], ["-M"], ["-Mf"], ["-P"], ["-Px"], ["-h", "mydestination"],
                 ["-x", "mynetworks", "smtpd_banner", "relay_domains", "smtputf8_enable"]):
        rc, out, _ = run_cli(capsys, "-c", cfdir, *args)
        assert out == postconf("-c", cfdir, *args).stdout, args


@with_postfix
def test_registered_values_match_real_postconf(capsys, cfdir):
    # names whose postier default deliberately differs (postfix_default) are
    # compared by test_config_registry against Postfix's default instead
    names = sorted(n for n, p in PARAMS.items()
                   if not p.legacy and not p.postier_only and n != "config_directory"
                   and p.postfix_default is None)
    for flags in ("", "-x", "-d"):
        args = [flags] if flags else []
        rc, out, _ = run_cli(capsys, "-c", cfdir, *args, *names)
        assert out == postconf("-c", cfdir, *args, *names).stdout, flags


@with_postfix
@pytest.mark.parametrize("args, appended", [
    (["-e", "myhostname=new.example.com", "zz=1", "aa = 2", "mm=3"], 3),
    (["-e", "mydestination = q, r", "relayhost=r"], 0),
    (["-X", "relayhost", "mydestination", "nosuch"], 0),
    (["-#", "relayhost", "mynetworks"], 0),
])
def test_edits_match_real_postconf(capsys, tmp_path, args, appended):
    ours = make_dir(tmp_path, EDIT_MAIN, name="ours")
    theirs = make_dir(tmp_path, EDIT_MAIN, name="theirs")
    run_cli(capsys, "-c", ours, *args)
    postconf("-c", theirs, *args)
    a = open(os.path.join(ours, "main.cf")).read().splitlines()
    b = open(os.path.join(theirs, "main.cf")).read().splitlines()
    # postconf appends new entries in (randomized) hash-table order; postier sorts them
    cut = len(a) - appended
    assert a[:cut] == b[:cut]
    assert a[cut:] == sorted(b[cut:])


def test_non_utf8_bytes_round_trip_without_traceback(tmp_path):
    import subprocess
    import sys
    d = tmp_path / "l1"
    d.mkdir()
    (d / "main.cf").write_bytes(b"smtpd_banner = caf\xe9 $myhostname\n")
    src = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    r = subprocess.run([sys.executable, "-m", "postier.cli.main", "config", "-c", str(d), "-h",
                        "smtpd_banner"], capture_output=True, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"caf\xe9 $myhostname\n", b"")
    (d / "main.cf").write_bytes(b"bad\xff line\n")
    r = subprocess.run([sys.executable, "-m", "postier.cli.main", "config", "-c", str(d), "-n"],
                       capture_output=True, env=env)
    assert r.returncode == 1
    assert r.stderr == (b"postconf: fatal: " + str(d).encode() +
                        b"/main.cf, line 1: missing '=' after attribute name: \"bad\xff line\" "
                        b"(expected name = value)\n")


def test_process_id_and_name_expand(capsys, tmp_path):
    d = make_dir(tmp_path, "x = $process_name[$process_id]\nmyorigin = $x\n")
    rc, out, _ = run_cli(capsys, "-c", d, "-xh", "x")
    assert out == f"postconf[{os.getpid()}]\n"
