"""Run a delivery step as another user: never as root, never in the agent itself.

The local, virtual and pipe agents run inside the (root) queue manager
process, which is multi-threaded and asynchronous, so they never change their
own uid.  Every step that touches a mailbox, a user's file or runs a command
happens in a child process that has irrevocably dropped its privileges
before it does anything else:

    creds = Creds.for_user(pw)                       # uid, gid, supplementary groups
    result = await run_job(creds, {"op": "mbox", "path": ...}, data)
    cmd = await run_command(creds, argv, stdin=data, env=env, time_limit=1000)

* `run_job()` starts a fresh interpreter on postier/delivery/mailbox.py
  (`python -I -S .../mailbox.py`: standard library only, no site packages;
  the interpreter may live where only root can read it, so it is started
  as root).  The child reads one JSON job line from stdin, sets
  RLIMIT_FSIZE to the job's `size_limit` (mailbox_size_limit,
  virtual_mailbox_limit; SIGXFSZ ignored, so an oversized write fails with
  EFBIG as after Postfix's set_file_limit()), then drops its privileges for
  good -- setgroups(2) with the user's groups as initgroups(3) sets them,
  setgid(2), setuid(2), and a check that uid 0 cannot be regained -- before
  it reads the data, touches any file, runs the operation from
  postier.delivery.mailbox.CHILD_OPS (mbox, maildir, read) and writes one
  JSON result line.
* `run_command()` runs a command (argv, or `/bin/sh -c TEXT` for shell
  text) with the same privilege drop, in a new session, with a clean
  environment (PATH=/usr/bin:/bin, the export_environment names, then the
  given variables), the message on stdin, stdout+stderr captured (the first
  4096 bytes kept, as Postfix's pipe_command), and a time limit after which
  the whole process group is killed.

uid 0 or gid 0 is refused with RunAsError (Postfix panics on "privileged
default user id"); the callers substitute default_privs first.  When the
agent itself is not root it cannot switch users; then a child still runs
with the agent's own uid (tests as an ordinary user), and `Creds.switch`
is False.

Parameters read: none (the callers pass export_environment values and
time limits).
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

OUTPUT_LIMIT = 4096          # VSTREAM_BUFSIZE: what Postfix keeps of command output
DEFAULT_PATH = "/usr/bin:/bin"


class RunAsError(Exception):
    """A delivery step would run with privileges it must never have."""


@dataclass(frozen=True)
class Creds:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    name: str = ""

    @classmethod
    def for_user(cls, pw: Any, gid: int | None = None) -> Creds:
        """The credentials of passwd entry `pw` (initgroups semantics),
        optionally with another primary group."""
        g = pw.pw_gid if gid is None else gid
        try:
            groups = tuple(os.getgrouplist(pw.pw_name, g))
        except OSError:
            groups = (g,)
        return cls(pw.pw_uid, g, groups, pw.pw_name)

    @classmethod
    def for_ids(cls, uid: int, gid: int) -> Creds:
        """Numeric credentials (virtual_uid_maps); the groups are those of
        the user with that uid when there is one, else just `gid`."""
        try:
            pw = pwd.getpwuid(uid)
            groups = tuple(os.getgrouplist(pw.pw_name, gid))
            name = pw.pw_name
        except (KeyError, OSError):
            groups, name = (gid,), ""
        return cls(uid, gid, groups, name)

    @classmethod
    def by_name(cls, user: str, group: str | None = None) -> Creds:
        """`user` or `user:group` as pipe(8)'s user= attribute.  KeyError
        for an unknown user or group."""
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else None
        return cls.for_user(pw, gid)

    @property
    def switch(self) -> bool:
        """True when this process can (and must) change to these ids."""
        return os.geteuid() == 0

    def check(self) -> None:
        if self.uid == 0:
            raise RunAsError("privileged default user id")
        if self.gid == 0:
            raise RunAsError("privileged default group id")

    def popen_kw(self) -> dict:
        self.check()
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def _child_script() -> str:
    from postier.delivery import mailbox
    return os.path.abspath(mailbox.__file__)


async def run_job(creds: Creds, job: dict, data: bytes = b"", *,
                  timeout: float = 600) -> dict:
    """Run one file operation (see postier.delivery.mailbox) as `creds`.
    Returns the operation's result dict; a child that fails without an
    answer gives {"ok": False, "dsn": "4.3.0", "reason": ..., "crash": True}."""
    creds.check()
    job = dict(job, creds=[creds.uid, creds.gid, list(creds.groups)] if creds.switch else None)
    head = json.dumps(job).encode() + b"\n"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", _child_script(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd="/", env={"PATH": DEFAULT_PATH},
            close_fds=True)
    except OSError as e:
        return {"ok": False, "dsn": "4.3.0", "reason": f"Delivery failed: {e.strerror}",
                "warnings": [f"fork: {e.strerror}"], "errno": e.errno, "crash": True}
    try:
        out, err = await asyncio.wait_for(proc.communicate(head + data), timeout)
    except TimeoutError:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        await proc.wait()
        return {"ok": False, "dsn": "4.3.0", "reason": "delivery helper time limit exceeded",
                "warnings": [], "errno": 0, "crash": True}
    try:
        res = json.loads(out.decode("utf-8", "surrogateescape").splitlines()[-1])
        if not isinstance(res, dict):
            raise ValueError("not an object")
        return res
    except (ValueError, IndexError):
        detail = err.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"exit status {proc.returncode}"
        return {"ok": False, "dsn": "4.3.0", "reason": "mail system configuration error",
                "warnings": [f"delivery helper failed: {why}"], "errno": 0, "crash": True}


# --------------------------------------------------------------- commands

@dataclass
class CommandResult:
    status: int | None = None        # exit status, None when killed by a signal
    signal: int = 0
    output: bytes = b""               # first OUTPUT_LIMIT bytes of stdout+stderr
    timed_out: bool = False
    write_errno: int = 0              # writing the message failed (not EPIPE)
    spawn_error: str = ""             # could not start (fork/exec problem)
    warnings: list[str] = field(default_factory=list)


# exec_command.c: commands made of these characters (and blanks) run without a shell
OK_CHARS = set("1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \t")
BSHELL = "/bin/sh"


def command_argv(command: str, shell: str = "") -> tuple[list[str], str | None]:
    """How Postfix runs a command string (exec_command.c): with
    $local_command_shell when set; directly (split at blanks) when it has
    no shell meta characters and the program exists; else `sh -c TEXT`
    through /bin/sh.  Returns (argv, executable or None)."""
    if shell.strip():
        return shell.split() + [command], None
    words = command.split()
    if words and all(c in OK_CHARS for c in command):
        import shutil
        if "/" in words[0] or shutil.which(words[0], path=DEFAULT_PATH):
            return words, None
    return ["sh", "-c", command], BSHELL


def clean_environ(export: list[str], extra: dict[str, str]) -> dict[str, str]:
    """clean_env() + PATH + the delivery variables."""
    env: dict[str, str] = {}
    for name in export:
        if "=" in name:
            k, _, v = name.partition("=")
            env[k] = v
        elif name in os.environ:
            env[name] = os.environ[name]
    env["PATH"] = DEFAULT_PATH
    env.update(extra)
    return env


async def run_command(creds: Creds, argv: list[str], *, stdin: bytes,
                      env: dict[str, str], cwd: str | None = None,
                      time_limit: float = 1000, procname: str = "local",
                      executable: str | None = None, exec_what: str = "execvp") -> CommandResult:
    """Run `argv` as `creds` with `stdin`; see the module docstring."""
    kw = creds.popen_kw()
    res = CommandResult()
    loop = asyncio.get_running_loop()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=cwd or "/", env=env,
            start_new_session=True, close_fds=True, executable=executable, **kw)
    except OSError as e:
        # Postfix's child logs to the command output and exits with
        # EX_TEMPFAIL when exec or chdir fails (pipe_child_cleanup)
        if e.filename is not None or isinstance(e, (FileNotFoundError, PermissionError)):
            res.status = 75
            if cwd and e.filename == cwd and cwd != "/":
                what = (f'cannot change directory to "{cwd}" for uid={creds.uid} '
                        f"gid={creds.gid}: {e.strerror}")
            else:
                what = f"{exec_what} {executable or argv[0]}: {e.strerror}"
            res.output = f"{procname}: fatal: {what}\n".encode("utf-8", "surrogateescape")
            return res
        res.spawn_error = e.strerror or str(e)
        return res
    deadline = loop.time() + time_limit
    chunks: list[bytes] = []
    kept = 0

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError as e:
            res.write_errno = e.errno or 0
        finally:
            try:
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass

    async def collect() -> None:
        nonlocal kept
        assert proc.stdout is not None
        while True:
            b = await proc.stdout.read(65536)
            if not b:
                return
            if kept < OUTPUT_LIMIT:
                chunks.append(b[:OUTPUT_LIMIT - kept])
                kept += len(chunks[-1])

    async def whole() -> None:
        await asyncio.gather(feed(), collect())
        await proc.wait()

    try:
        await asyncio.wait_for(whole(), max(deadline - loop.time(), 0.001))
    except TimeoutError:
        res.timed_out = True
        for target in (-proc.pid, proc.pid):
            try:
                os.kill(target, signal.SIGKILL)
                break
            except (ProcessLookupError, PermissionError):
                continue
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            res.warnings.append(f"cannot kill process (group) {proc.pid}")
    res.output = b"".join(chunks)
    rc = proc.returncode
    if rc is not None and rc < 0:
        res.signal = -rc
        res.status = None
    else:
        res.status = rc
    return res
