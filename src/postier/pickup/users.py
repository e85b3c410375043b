"""Who is asking: user names, full names and the authorized_*_users lists.

`check_user_acl(param, acl, uid)` is Postfix's check_user_acl_byuid(): a
value starting with `static:` allows everybody without looking anything up;
otherwise the login name of `uid` ("unknown" when the password file has no
entry) is matched against the list (names, `!name`, `type:table`), and the
name is returned when it does not match (None = allowed).  A table that
fails raises AclError.

`login_name(uid)` and `full_name(uid)` are Postfix's username() and
fullname(): $NAME first, else the GECOS field up to the first `,`, `;` or
`%`, with `&` replaced by the capitalised login name.

Parameters read (through the caller): authorized_submit_users,
authorized_flush_users, authorized_mailq_users, mail_owner.
"""

from __future__ import annotations

import os
import pwd

from postier.errors import PostierError


class AclError(PostierError):
    """A table in an authorized_*_users list could not be searched."""


def login_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def full_name(uid: int, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = env.get("NAME")
    if name is not None:
        return name
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return ""
    out: list[str] = []
    for ch in pw.pw_gecos:
        if ch in ",;%":
            break
        if ch == "&":
            if pw.pw_name:
                out.append(pw.pw_name[0].upper() + pw.pw_name[1:])
        else:
            out.append(ch)
    return "".join(out)


def check_user_acl(param: str, acl: str, uid: int) -> str | None:
    """None when `uid` may proceed, else the user name to report."""
    text = acl.strip()
    if text.startswith("static:"):
        return None
    name = login_name(uid) or "unknown"
    from postier.maps import open_map
    from postier.smtpd.restrictions import LookupFailure, PatternList
    try:
        matched = PatternList(param, text, "string", parent=False, opener=open_map).match(name)
    except LookupFailure:
        raise AclError(f"{param}: table lookup problem") from None
    except PostierError as e:
        raise AclError(f"{param}: {e}") from None
    return None if matched else name


def is_privileged(uid: int, mail_owner: str) -> bool:
    """root and $mail_owner may always list and flush the queue (Postfix)."""
    if uid == 0:
        return True
    try:
        return pwd.getpwnam(mail_owner).pw_uid == uid
    except KeyError:
        return False
