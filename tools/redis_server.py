"""Start a private Redis server on loopback for tests and benchmarks (Debian redis-server).

    from redis_server import RedisServer, redis_available

    with RedisServer() as rs:           # free port, temp dir, no persistence
        rs.port                         # 127.0.0.1:rs.port
        rs.spec                         # "redis:127.0.0.1:PORT" (postier's greylist_store)

    python3 tools/redis_server.py [--port N]     # run in the foreground, print the port

What it runs: `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no
--daemonize no --dir TMP` as a child of this process; its log goes to
TMP/redis.log.  `start()` waits until the server answers PING (spoken in
RESP over a plain socket); `stop()` sends SIGTERM to that PID, then
SIGKILL to the same PID; `cleanup()` also removes the temp directory
(tools/peer_process.py).

Loopback only.  Only the Python standard library is used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

from peer_process import PeerServer, free_port, serve_foreground

__all__ = ["REDIS_SERVER", "RedisServer", "free_port", "ping", "redis_available"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK)


def ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(PeerServer):
    """A throw-away redis-server on 127.0.0.1."""

    prefix = "postier_redis."
    name = "redis"

    @property
    def spec(self) -> str:
        return f"redis:127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> RedisServer:
        if not redis_available():
            raise RuntimeError("redis-server is not installed (tools/setup.sh --test)")
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.dir, "--logfile", self.logfile]
        self.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.wait_ready(lambda: ping(self.port), timeout, "answer PING")


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(description="run a private redis-server on 127.0.0.1")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    rs = RedisServer(args.port)
    return serve_foreground(rs, f"redis-server on 127.0.0.1:{rs.port} ({rs.spec}); "
                                "Ctrl-C stops it")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
