"""The built-in default configuration (src/postier/data/default): valid, local-only, commented."""

from __future__ import annotations

import os

from _config_helpers import postconf, run_cli, with_postfix

from postier.config import builtin_config_dir, load_config, maincf, read_master_cf


def test_builtin_default_loads_and_validates():
    cfg = load_config(builtin_config_dir())
    assert cfg.validate() == []
    assert cfg.check_names() == []
    assert cfg.warnings == []


def test_builtin_default_values():
    cfg = load_config(builtin_config_dir())
    assert cfg.get("myhostname") == "localhost.localdomain"
    assert cfg.get("inet_interfaces") == ["127.0.0.1"]
    assert cfg.get("mynetworks") == ["127.0.0.0/8", "[::1]/128"]
    assert cfg.get("relay_domains") == []
    assert cfg.get("mydestination") == ["localhost.localdomain", "localhost.localdomain",
                                        "localhost"]
    assert cfg.get("queue_directory") == "/var/spool/postier"
    assert cfg.get("data_directory") == "/var/lib/postier"
    assert cfg.get("config_directory") == builtin_config_dir()


def test_builtin_master_cf_listens_on_loopback_2525():
    services = read_master_cf(os.path.join(builtin_config_dir(), "master.cf"))
    smtpd = [s for s in services if s.type == "inet"]
    assert [(s.command, s.listen_address()) for s in smtpd] == [("smtpd", ("127.0.0.1", "2525"))]


def test_every_group_of_settings_is_explained_by_a_comment():
    text = open(os.path.join(builtin_config_dir(), "main.cf")).read()
    for block in text.strip().split("\n\n"):
        assert block.lstrip().startswith("#"), block


def test_used_when_nothing_else_is_configured(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("POSTIER_CONFIG_DIR", raising=False)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    monkeypatch.setattr(maincf, "DEFAULT_CONFIG_DIR", str(tmp_path / "absent"))
    assert load_config().config_dir == builtin_config_dir()


@with_postfix
def test_real_postfix_reads_the_builtin_default_the_same_way(capsys):
    d = builtin_config_dir()
    for args in (["-n"], ["-M"], ["-x", "mydestination", "smtpd_banner", "relay_domains"]):
        theirs = postconf("-c", d, *args)
        assert theirs.stderr == "", args  # Postfix finds nothing to warn about either
        assert run_cli(capsys, "-c", d, *args)[1] == theirs.stdout, args
