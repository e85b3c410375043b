"""`postier start`: run the master as a daemon, and wait until it is up.

The classic double fork: the foreground process forks; the child calls
setsid() (a new session without a controlling terminal: the master is its
leader, and every process it forks belongs to it) and forks the master,
then exits.  The master changes to /, sets umask 022, points standard input,
output and error at /dev/null, and logs to maillog_file or syslog.  Like
Postfix's `master -w`, the foreground process waits: the master writes
`ok` on a pipe once every worker accepts (or the fatal error that stopped
it), and `postier start` exits 0 or 1 accordingly.

Parameters read: none besides the master's (see postier.master).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from postier import log


def start_daemon(cfg: Any, log_kw: dict[str, Any], summary: str) -> tuple[bool, str]:
    """(started, error text).  Only the foreground process returns."""
    from postier import __version__
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        chunks = []
        while True:       # one line: "ok" or the error (children may hold the pipe open)
            b = os.read(r, 4096)
            if not b:
                break
            chunks.append(b)
            if b.endswith(b"\n"):
                break
        os.close(r)
        os.waitpid(pid, 0)
        text = b"".join(chunks).decode("utf-8", "replace").strip()
        if text == "ok":
            return True, ""
        return False, text or "the master exited during start-up"
    code = 1
    try:      # pragma: no cover - the daemon side (integration tests)
        os.close(r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")
        os.umask(0o022)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if null > 2:
            os.close(null)
        log.setup("master", **log_kw)
        log.info(f"daemon started -- version {__version__}, {summary}")
        from postier.master.supervisor import Master
        code = Master(cfg, foreground=False, ready_fd=w, log_kw=log_kw,
                      summary=summary).serve()
    except BaseException as e:   # noqa: BLE001 - never return into the CLI from the daemon
        try:
            os.write(w, f"{type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
    os._exit(code)
