"""authorized_*_users lists, login and full names (Postfix's user_acl.c, fullname.c)."""

from __future__ import annotations

import os
import pwd

import pytest

from postier.pickup import users


class FakePw:
    def __init__(self, name, gecos, uid=4242):
        self.pw_name, self.pw_gecos, self.pw_uid = name, gecos, uid


@pytest.mark.parametrize("gecos,expected", [
    ("Joe User,Room 1,555-1234,", "Joe User"),
    ("& Smith;x", "Joe Smith"),
    ("100%,x", "100"),
    ("", ""),
])
def test_full_name_from_gecos(monkeypatch, gecos, expected):
    monkeypatch.delenv("NAME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: FakePw("joe", gecos))
    assert users.full_name(4242) == expected


def test_full_name_prefers_NAME(monkeypatch):
    monkeypatch.setenv("NAME", "From Env")
    assert users.full_name(os.getuid()) == "From Env"


def test_static_acl_allows_everybody_without_lookups():
    assert users.check_user_acl("authorized_submit_users", "static:anyone", 12345) is None
    assert users.check_user_acl("authorized_submit_users", "static:whatever", 0) is None


def test_name_lists_and_negation():
    me = pwd.getpwuid(os.getuid()).pw_name
    p = "authorized_submit_users"
    assert users.check_user_acl(p, f"nosuch, {me}", os.getuid()) is None
    assert users.check_user_acl(p, f"!{me}, static:anyone", os.getuid()) == me
    assert users.check_user_acl(p, "nosuch", os.getuid()) == me
    assert users.check_user_acl(p, "inline:{ {" + me + "=ok} }", os.getuid()) is None


def test_unknown_uid_is_unknown():
    uid = 2 ** 31 - 7
    assert users.check_user_acl("authorized_mailq_users", "root", uid) == "unknown"
    assert users.check_user_acl("authorized_mailq_users", "unknown", uid) is None


def test_privileged_users():
    assert users.is_privileged(0, "postfix")
    assert not users.is_privileged(2 ** 31 - 7, "postfix")
    assert users.is_privileged(os.getuid(), pwd.getpwuid(os.getuid()).pw_name)
