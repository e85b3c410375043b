"""Accounts, privilege drop and the ownership of the queue tree.

* `mail_account(cfg)`: the uid/gid of $mail_owner, with Postfix's errors
  (`file /etc/postier/main.cf: parameter mail_owner: unknown user name
  value: postier`; `... user postier has privileged user ID: 0`).
* `drop_privileges(uid, gid)`: setgroups([gid]), setgid, setuid, then a
  check that uid 0 cannot be regained (Postfix's set_ugid()).
* `set_parent_death_signal(sig)`: prctl(PR_SET_PDEATHSIG): a worker dies
  with its master (a `kill -9` of the master must not leave workers
  holding the listening sockets).  Must be called after the privilege
  drop (the kernel clears it when credentials change).
* `probe_access(uid, gid, wants)`: a forked child takes the credentials and
  tries access(2) on each path; the problems it found.  Used by the master
  before it lets a worker drop its privileges (a queue directory below a
  0700 directory cannot be reached by $mail_owner).
* `queue_tree(...)`, `fix_tree(...)`, `check_tree(...)`: what must exist
  under queue_directory and data_directory, and who owns it (postier's
  postfix-files):

      queue_directory            root        0755
      queue_directory/pid        root        0755   master.pid
      incoming active deferred   $mail_owner 0700   recursive (files too)
      hold corrupt bounce defer trace
      public                     QUEUE_USER  0755   pickup and qmgr sockets
      maildrop                   QUEUE_USER  0700   recursive
      data_directory             $mail_owner 0700   recursive

  QUEUE_USER is the account the queue manager process runs as: root when
  master.cf has local, virtual or pipe services with unpriv = n (they
  switch to the recipient), else $mail_owner (postier.pickup serves
  public/pickup from that process and wants it owned by itself).  Files
  below the $mail_owner directories may also belong to QUEUE_USER (a root
  queue manager writes defer logs and notices): check_tree accepts them,
  fix_tree gives them to $mail_owner at the next start.
* `set_process_name(name)`: /proc/PID/comm (`postier-smtpd`,
  `postier-qmgr`), what ps and top show.

Parameters read: mail_owner, queue_directory, data_directory,
process_id_directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import signal
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from postier.errors import ConfigError

PR_SET_PDEATHSIG = 1

#: queue subdirectories owned by $mail_owner (recursive), as in postfix-files
OWNER_DIRS = ("incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace")
#: owned by the queue manager process's account
QUEUE_USER_DIRS = (("public", 0o755, False), ("maildrop", 0o700, True))
#: commands of master.cf services that switch to the recipient's uid
SWITCHING_COMMANDS = ("local", "virtual", "pipe")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def mail_account(cfg: Any) -> Account:
    """$mail_owner as an Account; ConfigError as Postfix words it."""
    name = cfg.get("mail_owner")
    where = cfg.source("mail_owner")
    path = where[0] if where else cfg.path
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"file {path}: parameter mail_owner: unknown user name value: "
                          f"{name}") from None
    if pw.pw_uid == 0:
        raise ConfigError(f"file {path}: parameter mail_owner: user {name} has privileged "
                          f"user ID: 0")
    if pw.pw_gid == 0:
        raise ConfigError(f"file {path}: parameter mail_owner: user {name} has privileged "
                          f"group ID: 0")
    return Account(name, pw.pw_uid, pw.pw_gid)


ROOT = Account("root", 0, 0)


def queue_needs_root(services: Iterable[Any]) -> bool:
    """Must the queue manager process (delivery agents) keep root?  Yes when
    master.cf runs local, virtual or pipe with unpriv = n, or defines no
    delivery service at all (the queue manager then uses Postfix's default
    services, local among them)."""
    unix = [s for s in services if s.type == "unix"]
    delivery = [s for s in unix if os.path.basename(s.command) in
                SWITCHING_COMMANDS + ("smtp", "lmtp", "error", "discard")]
    if not unix or not delivery:
        return True
    return any(os.path.basename(s.command) in SWITCHING_COMMANDS and not s.is_unprivileged
               for s in unix)


def drop_privileges(uid: int, gid: int) -> None:
    """Postfix's set_ugid(): groups, gid, uid; then make sure root is gone."""
    if os.geteuid() != 0:
        return
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise RuntimeError("privilege drop failed: uid 0 can be regained")


_libc: Any = None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """prctl(PR_SET_PDEATHSIG, sig); a no-op where there is no prctl."""
    libc = load_libc()
    if libc:
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def load_libc() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    return _libc


PR_SET_NAME = 15


def set_process_name(name: str) -> None:
    """The kernel's name of this process (/proc/PID/comm, `ps -o comm`,
    top): at most 15 bytes, e.g. `postier-smtpd`."""
    libc = load_libc()
    if libc:
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def probe_access(account: Account, wants: list[tuple[str, int]]) -> list[str]:
    """Can `account` use these paths?  `wants` holds (path, os.R_OK|W_OK|X_OK
    ...); returns `PATH: Permission denied`-style problems.  A forked child
    takes the account's credentials and asks access(2): the kernel's answer,
    parent directories and ACLs included.  Without root nothing is probed."""
    if os.geteuid() != 0 or account.uid == 0 or not wants:
        return []
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:     # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            drop_privileges(account.uid, account.gid)
            out = []
            for path, mode in wants:
                if not os.access(path, mode):
                    try:
                        os.stat(path)
                        why = "Permission denied"
                    except OSError as e:
                        why = e.strerror or "not accessible"
                    out.append(f"{path}: {why}")
            os.write(w, "\n".join(out).encode("utf-8", "surrogateescape"))
        except BaseException:   # noqa: BLE001 - never return into the caller's code
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return [f"cannot probe the access rights of {account.name}"]
    text = b"".join(chunks).decode("utf-8", "surrogateescape")
    return [x for x in text.split("\n") if x]


# ---------------------------------------------------------------- the tree

@dataclass(frozen=True)
class TreeEntry:
    path: str
    owner: Account
    mode: int           # for directories that must be created
    recursive: bool
    root_owned: bool = False
    also: int = -1        # a second uid accepted for files below (the queue process's)


def queue_tree(cfg: Any, owner: Account, queue_user: Account) -> list[TreeEntry]:
    """What must exist, and who owns it (see the module docstring)."""
    qdir = cfg.get("queue_directory")
    piddir = _pid_dir(cfg)
    out = [TreeEntry(qdir, ROOT, 0o755, False, True),
           TreeEntry(piddir, ROOT, 0o755, False, True)]
    out += [TreeEntry(os.path.join(qdir, d), owner, 0o700, True, also=queue_user.uid)
            for d in OWNER_DIRS]
    out += [TreeEntry(os.path.join(qdir, d), queue_user, mode, rec)
            for d, mode, rec in QUEUE_USER_DIRS]
    ddir = cfg.get("data_directory")
    if ddir and os.path.abspath(ddir) != "/":
        out.append(TreeEntry(ddir, owner, 0o700, True))
    return out


def _pid_dir(cfg: Any) -> str:
    qdir = cfg.get("queue_directory")
    piddir = cfg.get("process_id_directory") or "pid"
    return piddir if os.path.isabs(piddir) else os.path.join(qdir, piddir)


def pid_file(cfg: Any) -> str:
    """queue_directory/pid/master.pid (process_id_directory relative to
    queue_directory, as in Postfix)."""
    return os.path.join(_pid_dir(cfg), "master.pid")


def _walk(path: str) -> Iterable[tuple[str, os.stat_result]]:
    """path and everything below it (lstat; symlinks are not followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    yield path, st
    if not stat.S_ISDIR(st.st_mode):
        return
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return
    for name in names:
        yield from _walk(os.path.join(path, name))


def fix_tree(entries: list[TreeEntry]) -> list[str]:
    """Create missing directories and give every entry (recursively where
    marked) to its owner; only root can.  Returns what was changed, for the
    log (`created PATH`, `owner of PATH: uid A -> B`)."""
    changes: list[str] = []
    if os.geteuid() != 0:
        for e in entries:
            if not os.path.isdir(e.path):
                os.makedirs(e.path, mode=e.mode, exist_ok=True)
                changes.append(f"created {e.path}")
        return changes
    for e in entries:
        if not os.path.lexists(e.path):
            parent = os.path.dirname(e.path.rstrip("/"))
            if parent and not os.path.isdir(parent):
                os.makedirs(parent, mode=0o755, exist_ok=True)
            os.mkdir(e.path, e.mode)
            os.chmod(e.path, e.mode)
            changes.append(f"created {e.path}")
        items = _walk(e.path) if e.recursive else [(e.path, os.lstat(e.path))]
        for path, st in items:
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_uid != e.owner.uid:
                os.chown(path, e.owner.uid, e.owner.gid)
                changes.append(f"owner of {path}: uid {st.st_uid} -> {e.owner.uid}")
    return changes


def check_tree(entries: list[TreeEntry]) -> list[str]:
    """postfix-script check-warn: `not owned by NAME: PATH`, `group or other
    writable: PATH`, `missing directory: PATH`."""
    out: list[str] = []
    for e in entries:
        if not os.path.lexists(e.path):
            out.append(f"missing directory: {e.path}")
            continue
        items = _walk(e.path) if e.recursive else [(e.path, os.lstat(e.path))]
        for path, st in items:
            if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                continue
            if st.st_uid != e.owner.uid and not (path != e.path and st.st_uid == e.also):
                out.append(f"not owned by {e.owner.name}: {path}")
            if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022:
                out.append(f"group or other writable: {path}")
    return out
