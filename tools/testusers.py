"""Create and remove real Unix test users for the local delivery tests.

    from testusers import TestUsers, can_manage_users

    with TestUsers(base_dir) as users:          # base_dir: a temp directory
        u = users.add("ptest1")                 # useradd, home base_dir/home/ptest1
        u.name, u.uid, u.gid, u.home
    # on exit every user this object created is removed (userdel), homes too

    python3 tools/testusers.py add ptest1 [ptest2 ...] --base DIR
    python3 tools/testusers.py remove ptest1 [ptest2 ...]

Users are made with `useradd -U -M` (a private group of the same name, no
skeleton copy) plus our own `mkdir` of the home directory under
`base_dir/home/NAME` (mode 0755, owned by the user), shell /bin/sh and no
password.  Names must look like test users (`ptest` followed by digits or
lower-case letters) so that a mistake can never remove a real account.

Idempotent: `add()` of a user that already exists reuses it (it is not
removed later unless `adopt=True`); `remove()` of a missing user is a no-op.
Needs root (`can_manage_users()` says whether this process can).

Only the Python standard library is used (the tests import this file by path).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

NAME_RE = re.compile(r"^ptest[a-z0-9]{1,10}$")
USERADD = shutil.which("useradd") or "/usr/sbin/useradd"
USERDEL = shutil.which("userdel") or "/usr/sbin/userdel"
GROUPDEL = shutil.which("groupdel") or "/usr/sbin/groupdel"


@dataclass
class TestUser:
    name: str
    uid: int
    gid: int
    home: str
    created: bool = True


def can_manage_users() -> bool:
    """True when we are root and useradd/userdel exist."""
    return os.geteuid() == 0 and os.path.exists(USERADD) and os.path.exists(USERDEL)


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"refusing to manage non-test user name {name!r} "
                         "(test users are named ptest...)")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def add_user(name: str, home: str) -> TestUser:
    """useradd NAME with home directory `home` (created, owned by the user).
    An existing user is returned as is (created=False)."""
    _check_name(name)
    if user_exists(name):
        pw = pwd.getpwnam(name)
        return TestUser(name, pw.pw_uid, pw.pw_gid, pw.pw_dir, created=False)
    os.makedirs(os.path.dirname(home), exist_ok=True)
    p = subprocess.run([USERADD, "-M", "-U", "-d", home, "-s", "/bin/sh", name],
                       capture_output=True, text=True)
    if p.returncode != 0 and not user_exists(name):
        raise RuntimeError(f"useradd {name} failed ({p.returncode}): {p.stderr.strip()}")
    pw = pwd.getpwnam(name)
    os.makedirs(home, exist_ok=True)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o755)
    return TestUser(name, pw.pw_uid, pw.pw_gid, home)


def remove_user(name: str, home: str | None = None) -> None:
    """userdel NAME (and its private group); remove `home` if given."""
    _check_name(name)
    if user_exists(name):
        subprocess.run([USERDEL, name], capture_output=True, text=True)
    try:
        grp.getgrnam(name)
        subprocess.run([GROUPDEL, name], capture_output=True, text=True)
    except KeyError:
        pass
    if home and os.path.isdir(home):
        shutil.rmtree(home, ignore_errors=True)


class TestUsers:
    """A set of test users living under `base_dir/home`; removed on close()."""

    def __init__(self, base_dir: str):
        self.base_dir = base_dir
        self.users: dict[str, TestUser] = {}

    def add(self, name: str, *, adopt: bool = False) -> TestUser:
        if name in self.users:
            return self.users[name]
        u = add_user(name, os.path.join(self.base_dir, "home", name))
        if adopt:
            u.created = True
        self.users[name] = u
        return u

    def close(self) -> None:
        for u in list(self.users.values()):
            if u.created:
                remove_user(u.name, u.home)
        self.users.clear()

    def __enter__(self) -> TestUsers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("add", "remove"):
        print("usage: testusers.py add|remove NAME... [--base DIR]", file=sys.stderr)
        return 2
    op, rest = argv[0], argv[1:]
    base = "/tmp/postier-testusers"
    if "--base" in rest:
        i = rest.index("--base")
        base = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    for name in rest:
        if op == "add":
            u = add_user(name, os.path.join(base, "home", name))
            print(f"{u.name} uid={u.uid} gid={u.gid} home={u.home}")
        else:
            try:
                home = pwd.getpwnam(name).pw_dir
            except KeyError:
                home = None
            remove_user(name, home)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
