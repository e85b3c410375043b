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
SIGKILL to the same PID; `cleanup()` also removes the temp directory.

Loopback only.  Only the Python standard library is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK)


def free_port() -> int:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throw-away redis-server on 127.0.0.1."""

    def __init__(self, port: int | None = None, *, keep: bool = False):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="postier_redis.")
        self.keep = keep
        self.proc: subprocess.Popen | None = None

    @property
    def spec(self) -> str:
        return f"redis:127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> RedisServer:
        if not redis_available():
            raise RuntimeError("redis-server is not installed (tools/setup.sh --test)")
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): "
                                   f"{self.log()[-2000:]}")
            if ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(description="run a private redis-server on 127.0.0.1")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    rs = RedisServer(args.port)
    rs.start()
    print(f"redis-server on 127.0.0.1:{rs.port} ({rs.spec}); Ctrl-C stops it", flush=True)
    try:
        while rs.proc is not None and rs.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        rs.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
