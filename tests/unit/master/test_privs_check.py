"""Accounts, the queue tree, listener addresses and `postier check`'s findings."""

from __future__ import annotations

import os
import pwd

import pytest

from postier.config import Config
from postier.errors import ConfigError
from postier.master import privs
from postier.master.check import check
from postier.master.listeners import service_addresses

ME = privs.Account(pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getgid())


def cfg(main: str, master: str = "", path: str = "/nonexistent/main.cf") -> Config:
    return Config.from_text(main, path, master_text=master)


@pytest.mark.parametrize("master, root", [
    ("local unix - n n - - local\nsmtp unix - - n - - smtp\n", True),
    ("local unix - - n - - local\nsmtp unix - - n - - smtp\n", False),   # unpriv local
    ("smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n", False),
    ("x unix - n n - - pipe flags=R user=nobody argv=/bin/true\nsmtp unix - - n - - smtp\n", True),
    ("smtpd inet n - n - - smtpd\n", True),          # no delivery service: Postfix's defaults
    ("", True),
])
def test_queue_process_keeps_root_only_for_switching_agents(master, root):
    assert privs.queue_needs_root(cfg("", master).services) is root


def test_mail_owner_errors_are_postfix_s():
    with pytest.raises(ConfigError, match=r"parameter mail_owner: unknown user name value: "
                                          r"no-such-user-here"):
        privs.mail_account(cfg("mail_owner = no-such-user-here\n"))
    with pytest.raises(ConfigError, match="user root has privileged user ID: 0"):
        privs.mail_account(cfg("mail_owner = root\n"))


def test_default_mail_owner_is_postier_s_own_account():
    c = cfg("")
    assert c.get("mail_owner") == "postier"


def test_queue_tree_owners_and_pid_file(tmp_path):
    c = cfg(f"queue_directory = {tmp_path}/q\ndata_directory = {tmp_path}/d\n")
    owner = privs.Account("o", 1001, 1001)
    tree = {os.path.relpath(e.path, tmp_path): e for e in privs.queue_tree(c, owner, privs.ROOT)}
    assert tree["q"].owner == privs.ROOT and tree["q/pid"].owner == privs.ROOT
    assert tree["q/incoming"].owner == owner and tree["q/incoming"].recursive
    assert tree["q/public"].owner == privs.ROOT and tree["q/maildrop"].owner == privs.ROOT
    assert tree["d"].owner == owner
    assert privs.pid_file(c) == f"{tmp_path}/q/pid/master.pid"
    c2 = cfg(f"queue_directory = {tmp_path}/q\nprocess_id_directory = /run/px\n")
    assert privs.pid_file(c2) == "/run/px/master.pid"


def test_check_tree_reports_missing_foreign_and_writable(tmp_path):
    q = tmp_path / "q"
    (q / "incoming").mkdir(parents=True)
    (q / "incoming" / "ID1").write_text("x")
    (q / "hold").mkdir()
    os.chmod(q / "hold", 0o777)
    other = privs.Account("somebody", ME.uid + 1, ME.gid)
    entries = [privs.TreeEntry(str(q / "incoming"), ME, 0o700, True),
               privs.TreeEntry(str(q / "hold"), ME, 0o700, True),
               privs.TreeEntry(str(q / "deferred"), ME, 0o700, True),
               privs.TreeEntry(str(q / "active"), other, 0o700, True)]
    (q / "active").mkdir()
    got = privs.check_tree(entries)
    assert f"group or other writable: {q}/hold" in got
    assert f"missing directory: {q}/deferred" in got
    assert f"not owned by somebody: {q}/active" in got
    assert not any("incoming" in x for x in got)


def test_fix_tree_without_root_creates_directories_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("as root fix_tree also chowns (integration tests)")
    q = tmp_path / "q"
    changes = privs.fix_tree([privs.TreeEntry(str(q / "incoming"), ME, 0o700, True)])
    assert (q / "incoming").is_dir() and changes == [f"created {q}/incoming"]


@pytest.mark.parametrize("name, ifaces, protos, want", [
    ("127.0.0.1:2525", "all", "all", [("127.0.0.1", 2525)]),
    ("[::1]:25", "all", "all", [("::1", 25)]),
    ("2525", "all", "all", [(None, 2525)]),
    ("smtp", "127.0.0.1, 192.0.2.1", "ipv4", [("127.0.0.1", 25), ("192.0.2.1", 25)]),
    ("2525", "loopback-only", "ipv4", [("127.0.0.1", 2525)]),
    ("2525", "loopback-only", "all", [("127.0.0.1", 2525), ("::1", 2525)]),
])
def test_listen_addresses_follow_inet_interfaces(name, ifaces, protos, want):
    c = cfg(f"inet_interfaces = {ifaces}\ninet_protocols = {protos}\n",
            f"{name} inet n - n - - smtpd\n")
    assert service_addresses(c.services[0], c) == want


def write_config(d, main: str, master: str = "127.0.0.1:2525 inet n - n - - smtpd\n") -> Config:
    from postier.config import load_config
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.cf").write_text(main)
    (d / "master.cf").write_text(master)
    return load_config(str(d))


def test_check_good_configuration_has_no_fatal_problem(tmp_path):
    (tmp_path / "access").write_text("/^spam@/ REJECT\n")
    c = write_config(tmp_path / "etc", f"queue_directory = {tmp_path}/q\n"
                                       f"data_directory = {tmp_path}/d\n"
                                       f"smtpd_sender_restrictions = check_sender_access "
                                       f"regexp:{tmp_path}/access\n")
    problems = check(c, fix=True)
    assert [p for p in problems if p.level == "fatal"] == []
    assert (tmp_path / "q" / "incoming").is_dir()


def test_check_broken_configuration_reports_every_fatal_problem(tmp_path):
    c = write_config(tmp_path / "etc",
                     f"queue_directory = {tmp_path}/q\nmessage_size_limit = lots\n"
                     f"smtpd_helo_required = maybe\n",
                     "127.0.0.1:2525 inet n - n - - smtpd\npostscreen_x inet n - n - 1 postscreen\n")
    problems = check(c)
    fatal = [p.text for p in problems if p.level == "fatal"]
    assert len(fatal) == 2
    assert any("message_size_limit" in t for t in fatal)
    assert any("smtpd_helo_required" in t for t in fatal)
    warn = [p.text for p in problems if p.level == "warning"]
    assert any("program postscreen is not supported by postier" in t for t in warn)


def test_check_missing_table_is_fatal_and_damaged_messages_are_listed(tmp_path):
    c = write_config(tmp_path / "etc",
                     f"queue_directory = {tmp_path}/q\ndata_directory = {tmp_path}/d\n"
                     f"smtpd_client_restrictions = check_client_access hash:{tmp_path}/nope\n")
    (tmp_path / "q" / "corrupt").mkdir(parents=True)
    (tmp_path / "q" / "corrupt" / "6B0A7AA4070227F6").write_text("junk")
    problems = check(c)
    assert any(p.level == "fatal" and f"{tmp_path}/nope.db" in p.text for p in problems)
    assert any(p.level == "warning" and p.text == "damaged message: corrupt/6B0A7AA4070227F6"
               for p in problems)
