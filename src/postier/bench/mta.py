"""The servers under test: postier (`postier run`) or a private real Postfix, for a scenario.

    feats = resolve_features(scenario)          # what is available here, with notes
    m = PostierMta(scenario, root, sink_port=P, feats=feats, limits=lim, cap=cap)
    m.start()                                   # writes etc/, tables/, starts, waits for SMTP
    m.port, m.root_pid, m.queue_dir, m.pids()
    m.stop()                                    # SIGTERM by PID, then SIGKILL by PID

Both get the scenario's main.cf with the placeholders filled in (see
postier.bench.scenario), on top of the instance's own directories
(queue_directory, data_directory, maillog_file under the instance root;
inet_interfaces = 127.0.0.1: loopback only).  Table files next to main.cf are
copied into ROOT/tables (placeholders filled in too) and the scenario's
indexed tables compiled by each server's own tool (`postier map`, Postfix's
postmap; the .db formats differ).

Postfix gets what it knows: parameters marked postier-only in postier's
registry (spam_checks, av_scanners, greylist_*, ...) are left out of its
main.cf, and @GREYLIST@ becomes `check_policy_service
inet:127.0.0.1:PORT` to a private postgrey (tools/postgrey_server.py) with
the same delay and whitelist.  Antivirus and spam rules have no Postfix
counterpart here (amavisd-new is not part of the baseline): that half of
the lab runs on postier only, and the report says so.  Postfix's master.cf
is a full relaying one (qmgr, smtp; chroot off) with smtpd on
127.0.0.1:PORT.

Real Postfix, clamd and postgrey come from the checkout's tools/
(postfix_instance.py, clamd_server.py, postgrey_server.py); when the
checkout or the program is missing the feature is reported unavailable.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from postier.bench.limits import Limits, MemoryCap
from postier.bench.procstat import tree
from postier.bench.scenario import Scenario, checkout_root

POSTFIX_MASTER_CF = """\
# postier bench and tests: a real Postfix that relays (qmgr + smtp); loopback only.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def tools_dir() -> str | None:
    root = checkout_root()
    d = os.path.join(root, "tools") if root else None
    if d and os.path.isfile(os.path.join(d, "postfix_instance.py")):
        if d not in sys.path:
            sys.path.insert(0, d)
        return d
    return None


def free_port() -> int:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            try:
                s.settimeout(5)
                s.recv(512)
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def server_env(cap_method: str) -> dict[str, str]:
    """The environment of the postier server under a memory cap.  RLIMIT_AS
    caps address space, not memory: glibc reserves 64 MB of it for every
    extra malloc arena (one per busy thread), which with the spam rules
    loaded ran the smtpd worker into bad_alloc at 256 MB with a third of
    that resident; one arena keeps the address space near the memory used."""
    env = dict(os.environ)
    if cap_method == "rlimit":
        env.setdefault("MALLOC_ARENA_MAX", "1")
    return env


# --------------------------------------------------------------------------- features

@dataclass
class Features:
    greylist: bool = False          # postier side
    greylist_postfix: bool = False  # postgrey available for the Postfix side
    antivirus: bool = False
    spam: bool = False
    postfix: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"greylist": self.greylist, "greylist_postfix": self.greylist_postfix,
                "antivirus": self.antivirus, "spam": self.spam, "postfix": self.postfix,
                "notes": list(self.notes)}


def postier_has_greylist() -> bool:
    try:
        from postier.smtpd import restrictions
    except Exception:  # noqa: BLE001 - a half-built module counts as absent
        return False
    return "check_greylist" in getattr(restrictions, "_SIMPLE", {})


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_features(sc: Scenario, *, want_postfix: bool = False) -> Features:
    f = Features()
    want = sc.features
    tools = tools_dir()
    if want_postfix:
        ok = False
        if tools:
            from postfix_instance import postfix_available  # type: ignore[import-not-found]
            ok = postfix_available()
        f.postfix = ok
        if not ok:
            f.notes.append("Postfix comparison skipped: real Postfix (Debian postfix) and root "
                           "are needed, with the checkout's tools/postfix_instance.py")
    if want.get("greylist"):
        f.greylist = postier_has_greylist()
        if not f.greylist:
            f.notes.append("greylisting skipped: this postier has no check_greylist")
        if want_postfix and f.postfix:
            ok = False
            if tools:
                from postgrey_server import postgrey_available  # type: ignore[import-not-found]
                ok = postgrey_available()
            f.greylist_postfix = ok and f.greylist
            if not ok:
                f.notes.append("Postfix runs without greylisting: postgrey is not installed")
    if want.get("antivirus"):
        ok = _has_module("postier.content.antivirus") and _has_module("postier.content.scan")
        if not ok:
            f.notes.append("antivirus skipped: postier.content.antivirus is not available")
        elif not tools:
            ok = False
            f.notes.append("antivirus skipped: no checkout tools/clamd_server.py to start clamd")
        else:
            from clamd_server import clamd_available  # type: ignore[import-not-found]
            ok = clamd_available()
            if not ok:
                f.notes.append("antivirus skipped: clamd is not installed (Debian clamav-daemon)")
        f.antivirus = ok
    if want.get("spam"):
        from postier.config import Config
        from postier.content.spam.conf import rule_files
        from postier.content.spam.scanner import rule_directories
        dirs = rule_directories(Config.from_text(""))
        f.spam = any(p.endswith(".cf") for p in rule_files(dirs))
        if not f.spam:
            f.notes.append(f"spam rules skipped: no SpamAssassin rule file in {' '.join(dirs)} "
                           f"(Debian package spamassassin)")
    return f


# --------------------------------------------------------------------------- config

def spam_cache_directory() -> str:
    """Where postier bench keeps compiled SpamAssassin rules between runs:
    $POSTIER_BENCH_SPAM_CACHE, else $XDG_CACHE_HOME/postier/spamrules
    (~/.cache/postier/spamrules)."""
    d = os.environ.get("POSTIER_BENCH_SPAM_CACHE", "").strip()
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "postier", "spamrules")
    os.makedirs(d, mode=0o755, exist_ok=True)
    return d


def render(text: str, subst: dict[str, str]) -> str:
    for k, v in subst.items():
        text = text.replace(f"@{k}@", v)
    return text


def postier_only_params() -> set[str]:
    from postier.config.params import PARAMS
    return {name for name, p in PARAMS.items() if getattr(p, "postier_only", False)}


def main_cf_entries(text: str) -> list[tuple[str, str]]:
    """(name, value) of a main.cf text, continuation lines joined."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1].isspace() and out:
            name, value = out[-1]
            out[-1] = (name, (value + " " + line.strip()).strip())
            continue
        name, sep, value = line.partition("=")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


class _Base:
    kind = "?"

    def __init__(self, sc: Scenario, root: str, *, sink_port: int, feats: Features,
                 limits: Limits, cap: MemoryCap, clamd_spec: str = "",
                 postgrey_port: int | None = None):
        self.sc = sc
        self.root = root
        self.port = free_port()
        self.sink_port = sink_port
        self.feats = feats
        self.limits = limits
        self.cap = cap
        self.clamd_spec = clamd_spec
        self.postgrey_port = postgrey_port
        self.etc = os.path.join(root, "etc")
        self.tables = os.path.join(root, "tables")
        self.queue_dir = os.path.join(root, "queue")
        self.data_dir = os.path.join(root, "data")
        self.maillog = os.path.join(root, "maillog")
        self.proc: subprocess.Popen | None = None
        self.seen: set[int] = set()
        self.dropped: list[str] = []
        for d in (root, self.etc, self.tables, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)

    def subst(self) -> dict[str, str]:
        return {"ROOT": self.root, "TABLES": self.tables, "PORT": str(self.port),
                "SINK_PORT": str(self.sink_port)}

    def copy_tables(self) -> list[str]:
        """Copy the files next to main.cf into tables/ (placeholders filled in)."""
        src = self.sc.dir
        names = []
        for name in sorted(os.listdir(src)):
            p = os.path.join(src, name)
            if not os.path.isfile(p) or name in ("main.cf", "master.cf") or \
                    name.endswith((".db", ".toml")):
                continue
            with open(p, encoding="utf-8") as f:
                text = render(f.read(), self.subst())
            out = os.path.join(self.tables, name)
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(out, 0o644)
            past = time.time() - 3600
            os.utime(out, (past, past))
            names.append(name)
        return names

    def main_cf(self) -> list[tuple[str, str]]:
        with open(self.sc.main_cf, encoding="utf-8") as f:
            return main_cf_entries(render(f.read(), self.subst()))

    @property
    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        p = tree(self.proc.pid)
        self.seen.update(p)
        return p

    def remember(self, pids: list[int]) -> None:
        self.seen.update(pids)

    def _stop_tree(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        self.pids()
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.time() + 5
        for pid in sorted(self.seen - {self.proc.pid}):
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


POSTIER_MASTER_CF = """\
127.0.0.1:@PORT@ inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
"""


class PostierMta(_Base):
    kind = "postier"

    def subst(self) -> dict[str, str]:
        s = super().subst()
        s["GREYLIST"] = "check_greylist" if self.feats.greylist else ""
        s["CLAMD"] = self.clamd_spec if self.feats.antivirus else ""
        s["SPAM"] = "yes" if self.feats.spam else "no"
        return s

    def write(self) -> None:
        self.copy_tables()
        params = [("queue_directory", self.queue_dir), ("data_directory", self.data_dir),
                  ("maillog_file", self.maillog), ("inet_interfaces", "127.0.0.1")]
        params += self.main_cf()
        if self.feats.greylist:
            params.append(("greylist_delay", f"{self.sc.greylist.delay}s"))
        if self.feats.spam:
            params.append(("spam_rules_cache_directory", spam_cache_directory()))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# generated by postier bench from " + self.sc.main_cf + "\n")
            f.writelines(f"{k} = {v}\n" for k, v in params)
        text = POSTIER_MASTER_CF
        if self.sc.master_cf:
            with open(self.sc.master_cf, encoding="utf-8") as f:
                text = f.read()
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(render(text, self.subst()))
        for name, ttype in self.sc.tables.items():
            if ttype == "hash":
                p = subprocess.run([sys.executable, "-m", "postier.cli.main", "map",
                                    f"hash:{os.path.join(self.tables, name)}"],
                                   capture_output=True, text=True)
                if p.returncode:
                    raise RuntimeError(f"postier map hash:{name}: {p.stderr.strip()}")

    def start(self, timeout: float = 60) -> None:
        self.write()
        # the master's children may run as $mail_owner: let them append to the log
        open(self.maillog, "a").close()
        owner = dict(self.main_cf()).get("mail_owner", "postier")
        try:
            import pwd
            pw = pwd.getpwnam(owner)
            if os.geteuid() == 0:
                os.chown(self.maillog, pw.pw_uid, pw.pw_gid)
        except (KeyError, OSError):
            pass
        if self.feats.spam:
            # compile SpamAssassin's rules ahead, outside the resource limits,
            # as an administrator runs `postier rules compile`: the server
            # then starts from the cache (once compiled, for every later run)
            p = subprocess.run([sys.executable, "-m", "postier.cli.main", "rules", "compile",
                                "-c", self.etc], capture_output=True, text=True, timeout=900)
            if p.returncode:
                raise RuntimeError(f"postier rules compile: {p.stderr.strip()[-2000:]}")
        env = server_env(self.cap.method)
        out = open(os.path.join(self.root, "postier.out"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "postier.cli.main", "run", "-c",
                                      self.etc], stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=self.limits.server_preexec(self.cap))
        out.close()
        if not wait_port(self.port, timeout, self.proc):
            tail = self.output()[-2000:]
            self.stop()
            raise RuntimeError(f"postier run did not start listening: {tail}")

    def output(self) -> str:
        try:
            with open(os.path.join(self.root, "postier.out"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop_tree()


class PostfixMta(_Base):
    kind = "postfix"

    def subst(self) -> dict[str, str]:
        s = super().subst()
        s["GREYLIST"] = (f"check_policy_service inet:127.0.0.1:{self.postgrey_port}"
                         if self.feats.greylist_postfix and self.postgrey_port else "")
        s["CLAMD"] = ""
        s["SPAM"] = "no"
        return s

    def write(self) -> None:
        tools_dir()
        import postfix_instance as pi  # type: ignore[import-not-found]
        self.copy_tables()
        drop = postier_only_params()
        params = [("queue_directory", self.queue_dir), ("data_directory", self.data_dir),
                  ("maillog_file", self.maillog), ("maillog_file_prefixes", self.root),
                  ("inet_interfaces", "127.0.0.1"), ("inet_protocols", "ipv4"),
                  ("in_flow_delay", "0")]
        for k, v in self.main_cf():
            if k in drop:
                self.dropped.append(k)
                continue
            params.append((k, v))
        shutil.chown(self.data_dir, "postfix")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# generated by postier bench from " + self.sc.main_cf + "\n")
            f.writelines(f"{k} = {v}\n" for k, v in params)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(port=self.port))
        past = time.time() - 3600
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.etc, name), (past, past))
        for name, ttype in self.sc.tables.items():
            if ttype == "hash":
                p = subprocess.run([pi.POSTMAP, f"hash:{os.path.join(self.tables, name)}"],
                                   capture_output=True, text=True)
                if p.returncode:
                    raise RuntimeError(f"postmap hash:{name}: {p.stderr.strip()}")
                os.chmod(os.path.join(self.tables, name + ".db"), 0o644)
        p = subprocess.run([pi.POSTFIX, "-c", self.etc, "check"], capture_output=True,
                           text=True)
        if p.returncode:
            raise RuntimeError(f"postfix check failed: {p.stderr.strip()}")

    def start(self, timeout: float = 60) -> None:
        self.write()
        import postfix_instance as pi  # type: ignore[import-not-found]
        out = open(os.path.join(self.root, "master.out"), "ab")
        self.proc = subprocess.Popen([os.path.join(pi.daemon_directory(), "master"), "-c",
                                      self.etc, "-s"], stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, cwd=self.root,
                                     preexec_fn=self.limits.server_preexec(self.cap))
        out.close()
        if not wait_port(self.port, timeout, self.proc):
            rc = self.proc.poll()
            self.stop()
            raise RuntimeError(f"Postfix master did not start (exit {rc}); see "
                               f"{self.root}/master.out and {self.maillog}")

    def stop(self) -> None:
        self._stop_tree()


# --------------------------------------------------------------------------- helpers

class Helpers:
    """clamd (for postier's antivirus) and postgrey (Postfix's greylisting)."""

    def __init__(self, root: str, sc: Scenario, feats: Features, *, postfix: bool):
        self.root = root
        self.sc = sc
        self.feats = feats
        self.postfix = postfix
        self.clamd = None
        self.postgrey = None

    def start(self) -> None:
        if self.feats.antivirus:
            tools_dir()
            from clamd_server import ClamdServer  # type: ignore[import-not-found]
            try:
                self.clamd = ClamdServer()
                self.clamd.start()
            except (RuntimeError, OSError) as e:
                self.clamd = None
                self.feats.antivirus = False
                self.feats.notes.append(f"antivirus skipped: clamd did not start ({e})")
        if self.postfix and self.feats.greylist_postfix:
            tools_dir()
            from postgrey_server import PostgreyServer  # type: ignore[import-not-found]
            wl = ""
            p = os.path.join(self.sc.dir, "greylist_whitelist_clients")
            if os.path.isfile(p):
                with open(p) as f:
                    wl = f.read()
            try:
                self.postgrey = PostgreyServer(delay=self.sc.greylist.delay,
                                               whitelist_clients=wl)
                self.postgrey.start()
            except (RuntimeError, OSError) as e:
                self.postgrey = None
                self.feats.greylist_postfix = False
                self.feats.notes.append(f"Postfix runs without greylisting: postgrey did not "
                                        f"start ({e})")

    @property
    def clamd_spec(self) -> str:
        return self.clamd.unix_spec if self.clamd is not None else ""

    @property
    def postgrey_port(self) -> int | None:
        return self.postgrey.port if self.postgrey is not None else None

    def pids(self) -> dict[str, int]:
        out = {}
        if self.clamd is not None and self.clamd.pid:
            out["clamd"] = self.clamd.pid
        if self.postgrey is not None and self.postgrey.proc is not None:
            out["postgrey"] = self.postgrey.proc.pid
        return out

    def stop(self) -> None:
        if self.clamd is not None:
            self.clamd.cleanup()
            self.clamd = None
        if self.postgrey is not None:
            self.postgrey.cleanup()
            self.postgrey = None
