"""Start a private real postgrey (Debian package postgrey) on loopback: the
oracle and the baseline of postier's greylisting.

    from postgrey_server import PostgreyServer, postgrey_available

    with PostgreyServer(delay=2) as pg:        # free port, temp --dbdir
        pg.port                                # policy server on 127.0.0.1:pg.port
        pg.log_lines()                         # its decision lines (action=..., ...)

    python3 tools/postgrey_server.py [--port N] [--delay N]   # foreground

What it runs: `postgrey --inet=127.0.0.1:PORT --dbdir=TMP --delay=N
--whitelist-clients=F --whitelist-recipients=F [extra args]` in the
foreground, as a child of this process (postgrey itself drops to the
`postgrey` user when started as root, so TMP is chowned to it).  The
whitelist files are empty temp files unless given: postgrey would
otherwise read /etc/postgrey/whitelist_*.  Its log (stderr) goes to
TMP/postgrey.log.  `start()` waits until the port accepts connections;
`stop()` sends SIGTERM to that PID, then SIGKILL to the same PID
(tools/peer_process.py).

Loopback only.  Only the Python standard library is used.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from collections.abc import Sequence

from peer_process import PeerServer, accepts, free_port, serve_foreground

__all__ = ["POSTGREY", "PostgreyServer", "free_port", "postgrey_available"]

POSTGREY = shutil.which("postgrey") or "/usr/sbin/postgrey"


def postgrey_available() -> bool:
    return os.access(POSTGREY, os.X_OK)


class PostgreyServer(PeerServer):
    """A throw-away postgrey on 127.0.0.1."""

    prefix = "postier_postgrey."
    name = "postgrey"

    def __init__(self, port: int | None = None, *, delay: int = 2,
                 whitelist_clients: str = "", whitelist_recipients: str = "",
                 extra_args: Sequence[str] = (), keep: bool = False):
        super().__init__(port, keep=keep)
        self.delay = delay
        os.chmod(self.dir, 0o755)
        self.extra_args = list(extra_args)
        self.wl_clients = os.path.join(self.dir, "whitelist_clients")
        self.wl_recipients = os.path.join(self.dir, "whitelist_recipients")
        with open(self.wl_clients, "w") as f:
            f.write(whitelist_clients)
        with open(self.wl_recipients, "w") as f:
            f.write(whitelist_recipients)
        self.dbdir = os.path.join(self.dir, "db")
        os.makedirs(self.dbdir)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgrey")
                os.chown(self.dbdir, pw.pw_uid, pw.pw_gid)
            except KeyError:
                pass

    def argv(self) -> list[str]:
        argv = [POSTGREY, f"--inet=127.0.0.1:{self.port}", f"--dbdir={self.dbdir}",
                f"--delay={self.delay}", f"--whitelist-clients={self.wl_clients}",
                f"--whitelist-recipients={self.wl_recipients}"]
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            argv += [f"--user={me}", f"--group={me}"]
        return argv + self.extra_args

    def start(self, timeout: float = 20) -> PostgreyServer:
        if not postgrey_available():
            raise RuntimeError("postgrey is not installed (tools/setup.sh --test)")
        with open(self.logfile, "ab") as log:
            self.spawn(self.argv(), stdout=log, stderr=log, cwd=self.dir)
        return self.wait_ready(lambda: accepts(self.port), timeout, "start listening")

    def log_lines(self) -> list[str]:
        """postgrey's decision and event lines (its start-up chatter left out)."""
        skip = ("Binding to", "Setting gid", "Setting uid", "postgrey (type",
                "Server closing", "Process Backgrounded")
        return [ln for ln in self.log().splitlines()
                if ln and not ln.startswith(skip) and " starting! pid(" not in ln]


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(description="run a private postgrey on 127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--delay", type=int, default=2)
    args = p.parse_args(argv)
    pg = PostgreyServer(args.port, delay=args.delay)
    return serve_foreground(pg, f"postgrey on 127.0.0.1:{pg.port} (log {pg.logfile}); "
                                "Ctrl-C stops it")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
