"""`postier greylistd` as a program: options and their errors, the unix
socket, SIGHUP reloading the whitelists, several worker processes sharing
one store file, main.cf defaults, and --check-store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from policy_peers import Greylistd, PolicyConn, env, postfix_request

pytestmark = pytest.mark.slow

NOW = int(time.time())


def cli(*args: str, config_dir: str | None = None) -> subprocess.CompletedProcess:
    e = env()
    if config_dir:
        e["POSTIER_CONFIG_DIR"] = config_dir
    return subprocess.run([sys.executable, "-m", "postier.cli.main", "greylistd", *args],
                          capture_output=True, text=True, env=e, timeout=60)


@pytest.mark.parametrize("args, message", [
    ([], "postier greylistd: fatal: --unix or --inet must be specified"),
    (["--inet=10023", "-d"], "fatal: -d/--daemonize is not supported"),
    (["--inet=127.0.0.1:0", "--retry-window=2x"],
     "fatal: --retry-window must be either a number of days or a number followed by 'h'"),
    (["--inet=127.0.0.1:0", "--ipv4cidr=40"], "fatal: --ipv4cidr must be between 0 and 32"),
    (["--inet=127.0.0.1:0", "--store=relative/path"],
     'fatal: greylist store "relative/path": expected an absolute path or redis:HOST:PORT'),
    (["--inet=127.0.0.1:port"], "fatal: bad --inet value '127.0.0.1:port'"),
])
def test_option_errors(args, message, tmp_path):
    (tmp_path / "main.cf").write_text("")
    p = cli(*args, config_dir=str(tmp_path))
    assert p.returncode == 1
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_unix_socket_and_hup_reload(tmp_path):
    wl = tmp_path / "whitelist_recipients"
    wl.write_text("")
    sock = str(tmp_path / "greylist.sock")
    g = Greylistd(["--unix", sock, "--delay=60", f"--whitelist-recipients={wl}"])
    # no --inet: wait for the socket instead of the port
    g.argv = lambda: [sys.executable, "-m", "postier.cli.main", "greylistd", "--unix", sock,
                      "--store", g.store, "--delay=60", f"--whitelist-recipients={wl}"]
    e = env()
    open(os.path.join(g.dir, "main.cf"), "w").close()
    e["POSTIER_CONFIG_DIR"] = g.dir
    with open(g.log_path, "ab") as log:
        g.proc = subprocess.Popen(g.argv(), env=e, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert oct(os.stat(sock).st_mode & 0o777) == "0o666"

        def ask(**kw):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            a = postfix_request(**kw)
            s.sendall("".join(f"{k}={v}\n" for k, v in a.items()).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n\n"):
                data += s.recv(4096)
            s.close()
            return data.decode()

        assert ask(recipient="vip@example.net").startswith("action=DEFER_IF_PERMIT")
        wl.write_text("vip@example.net\n")
        g.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reloading whitelists" not in g.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ask(recipient="vip@example.net") == "action=DUNNO\n\n"
        assert "action=pass, reason=recipient whitelist" in g.log()
    finally:
        assert g.stop() == 0
        g.cleanup()


def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_workers_share_the_store(start_greylistd):
    g = start_greylistd(["--delay=60", "--workers=3"])
    deadline = time.monotonic() + 10
    while len(children(g.proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children(g.proc.pid)) == 3
    conns = [PolicyConn(g.port) for _ in range(12)]
    try:
        first = [c.ask(recipient=f"u{i}@x.test", policy_test_time=str(NOW))
                 for i, c in enumerate(conns)]
        # each retry may reach another worker process: the store is shared
        later = [c.ask(recipient=f"u{i}@x.test", policy_test_time=str(NOW + 61),
                       instance=f"m{i}") for i, c in enumerate(conns)]
    finally:
        for c in conns:
            c.close()
    assert all(a.startswith("DEFER_IF_PERMIT") for a in first)
    assert all(a.startswith("PREPEND X-Greylist: delayed 61 seconds") for a in later)
    assert g.stop() == 0
    report = cli("--check-store", g.store)
    assert report.returncode == 0 and report.stdout.rstrip().endswith(": OK"), report.stdout
    assert "entries: 13 (12 triplets, 1 auto-whitelisted clients)" in report.stdout


def test_main_cf_defaults(tmp_path, start_greylistd):
    (tmp_path / "main.cf").write_text(
        f"greylist_delay = 1m\ngreylist_text = Try again in %s seconds\n"
        f"maillog_file = {tmp_path}/maillog\n")
    g = start_greylistd([], config_dir=str(tmp_path))
    c = PolicyConn(g.port)
    try:
        assert c.ask(policy_test_time=str(NOW)) == "DEFER_IF_PERMIT 4.2.0 Try again in 60 seconds"
    finally:
        c.close()
    g.stop()
    log = (tmp_path / "maillog").read_text()
    assert "postier/greylistd[" in log and "action=greylist, reason=new" in log


def test_check_store_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"x" * 5000)
    p = cli("--check-store", str(bad))
    assert p.returncode == 1
    assert "fatal: greylist store" in p.stderr and "bad magic" in p.stderr
    p = cli("--check-store", str(tmp_path / "missing"))
    assert p.returncode == 1 and "No such file or directory" in p.stderr
