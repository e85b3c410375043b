"""`postier install-compat`: the sendmail/mailq/newaliases links."""

from __future__ import annotations

import os

import pytest

from postier.cli import install_compat_cmd as ic


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "venv" / "bin" / "postier-sendmail"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\necho postier\n")
    path.chmod(0o755)
    return str(path)


def run(prefix, target, *extra, capsys=None):
    rc = ic.main(["--prefix", str(prefix), "--target", target, *extra])
    out = capsys.readouterr() if capsys else None
    return rc, out


def test_creates_the_package_layout_and_is_idempotent(tmp_path, target, capsys):
    prefix = tmp_path / "usr"
    rc, out = run(prefix, target, capsys=capsys)
    assert rc == 0
    for rel in ("sbin/sendmail", "bin/mailq", "bin/newaliases"):
        assert os.readlink(prefix / rel) == target
    assert out.out.count("(created)") == 3
    rc, out = run(prefix, target, capsys=capsys)
    assert rc == 0 and out.out.count("(unchanged)") == 3
    assert sorted(os.listdir(prefix / "bin")) == ["mailq", "newaliases"]   # no temp leftovers


def test_refuses_foreign_files_and_names_them(tmp_path, target, capsys):
    prefix = tmp_path / "usr"
    (prefix / "sbin").mkdir(parents=True)
    (prefix / "sbin" / "sendmail").write_text("postfix's binary")
    (prefix / "bin").mkdir()
    os.symlink("../sbin/sendmail", prefix / "bin" / "mailq")
    rc, out = run(prefix, target, capsys=capsys)
    assert rc == 1
    assert (f"postier install-compat: refusing to replace {prefix}/sbin/sendmail (a file "
            "that does not belong to postier); use --force") in out.err
    assert (f"refusing to replace {prefix}/bin/mailq (a link to ../sbin/sendmail, not to "
            "postier); use --force") in out.err
    assert (prefix / "sbin" / "sendmail").read_text() == "postfix's binary"
    assert os.readlink(prefix / "bin" / "newaliases") == target      # the free one is done
    rc, out = run(prefix, target, "--force", capsys=capsys)
    assert rc == 0
    assert os.readlink(prefix / "sbin" / "sendmail") == target
    assert os.readlink(prefix / "bin" / "mailq") == target
    assert (prefix / "sbin" / "sendmail.postier-save").read_text() == "postfix's binary"


def test_updates_an_older_postier_link(tmp_path, target, capsys):
    prefix = tmp_path / "usr"
    (prefix / "bin").mkdir(parents=True)
    os.symlink("/old/venv/bin/postier-sendmail", prefix / "bin" / "mailq")
    rc, out = run(prefix, target, capsys=capsys)
    assert rc == 0 and "mailq -> " + target + " (updated)" in out.out
    assert os.readlink(prefix / "bin" / "mailq") == target


def test_dry_run_changes_nothing(tmp_path, target, capsys):
    prefix = tmp_path / "usr"
    rc, out = run(prefix, target, "--dry-run", capsys=capsys)
    assert rc == 0 and out.out.count("(would be created)") == 3
    assert not prefix.exists()


def test_warns_when_others_cannot_run_the_script(tmp_path, target, capsys):
    os.chmod(os.path.dirname(target), 0o700)
    rc, out = run(tmp_path / "usr", target, capsys=capsys)
    assert rc == 0
    assert f"warning: {target} cannot be run by other users" in out.err
    assert "only root will be able to send mail" in out.err


def test_finds_this_installations_script():
    found = ic.find_script()
    assert found is not None and os.path.basename(found) == "postier-sendmail"
