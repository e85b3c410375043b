"""`postier start|stop|reload|status|check|flush`: the `postfix` command's verbs.

    postier start  [-c DIR]     check, then run the master as a daemon (waits until it is up)
    postier stop   [-c DIR]     SIGTERM to the master; wait for it; force after a bound
    postier reload [-c DIR]     check the configuration, then SIGHUP to the master
    postier status [-c DIR]     exit 0 when running ("... is running: PID: N"), else 1
    postier check  [-c DIR] [--fix]
                                configuration, tables, queue/data directories
                                (see postier.master.check); --fix creates and chowns
    postier flush  [-c DIR]     deliver deferred mail now (postqueue -f)

Messages have the shape of Postfix's postfix-script, on standard error and
in the mail log (maillog_file, else syslog), with syslog_name's tag:

    postier/postfix-script: the postier mail system is running: PID: 1234
    postier/postfix-script: fatal: the postier mail system is not running
    postier/postfix-script: warning: not owned by postier: /var/spool/postier/incoming

The master's pid file is queue_directory/pid/master.pid, locked while the
master runs (postier.master.pidfile): "running" means "the lock is held".
`postier run` is the same master in the foreground (both write the pid file,
so status/stop/reload work for either).

Exit status: 0 on success; 1 on failure (not running for stop/reload/status,
already running for start, fatal check problems); flush as postqueue -f
(69 when the mail system is down).

Parameters read: queue_directory, process_id_directory, maillog_file,
syslog_name, smtpd_drain_time, and what postier.master.check and the master
read.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from postier import log
from postier.errors import PostierError

SYSTEM = "the postier mail system"


class _Fatal(Exception):
    pass


def _parser(verb: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"postier {verb}", description=description)
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (default: $POSTIER_CONFIG_DIR, /etc/postier, "
                        "else the built-in default configuration)")
    return p


def _load(config_dir: str | None, *, validate: bool = True) -> Any:
    """The configuration; log set up as `SYSLOG_NAME/postfix-script`."""
    from postier.config import load_config
    log.setup("postfix-script", progname="postier/postfix-script", stderr=True)
    try:
        cfg = load_config(config_dir)
        name = cfg.get("syslog_name") or "postier"
        maillog = cfg.get("maillog_file") or None
    except PostierError as e:
        raise _Fatal(str(e)) from None
    except OSError as e:
        raise _Fatal(f"{config_dir}: {e.strerror}") from None
    writable = bool(maillog) and _log_writable(maillog)
    log.setup("postfix-script", progname=f"{name}/postfix-script", stderr=True,
              maillog_file=maillog if writable else None,
              use_syslog=not maillog, syslog_name=name)
    if validate:
        try:
            cfg.validate()
        except PostierError as e:
            raise _Fatal(str(e)) from None
    return cfg


def _log_writable(path: str) -> bool:
    if os.path.exists(path):
        return os.access(path, os.W_OK)
    return os.access(os.path.dirname(path) or ".", os.W_OK)


def _pid_path(cfg: Any) -> str:
    from postier.master.privs import pid_file
    return pid_file(cfg)


def _running(cfg: Any) -> int | None:
    from postier.master.pidfile import running_pid
    return running_pid(_pid_path(cfg))


def _run(fn, argv: list[str]) -> int:
    try:
        return fn(argv)
    except _Fatal as e:
        try:
            log.LOG.emit("fatal", str(e))
        except OSError:
            sys.stderr.write(f"postier/postfix-script: fatal: {e}\n")
        return 1


# ---------------------------------------------------------------- status

def main_status(argv: list[str]) -> int:
    return _run(_status, argv)


def _status(argv: list[str]) -> int:
    args = _parser("status", "Exit 0 when the mail system is running, else 1.").parse_args(argv)
    cfg = _load(args.config_dir, validate=False)
    pid = _running(cfg)
    if pid is None:
        log.info(f"{SYSTEM} is not running")
        return 1
    log.info(f"{SYSTEM} is running: PID: {pid}")
    return 0


# ---------------------------------------------------------------- check

def main_check(argv: list[str]) -> int:
    return _run(_check, argv)


def _report(problems: list[Any]) -> bool:
    """Log every problem; True when one is fatal."""
    fatal = False
    for p in problems:
        if p.level == "fatal":
            fatal = True
            log.LOG.emit("fatal", p.text)
        else:
            log.warning(p.text)
    return fatal


def _check(argv: list[str]) -> int:
    p = _parser("check", "Check main.cf, master.cf, the lookup tables and the queue and data "
                         "directories (ownership and permissions), like `postfix check`.")
    p.add_argument("--fix", action="store_true",
                   help="create missing directories and fix their ownership (as root), as "
                        "`postier start` does")
    args = p.parse_args(argv)
    cfg = _load(args.config_dir, validate=False)
    from postier.master.check import check
    return 1 if _report(check(cfg, fix=args.fix)) else 0


# ---------------------------------------------------------------- start

def main_start(argv: list[str]) -> int:
    return _run(_start, argv)


def _start(argv: list[str]) -> int:
    args = _parser("start", "Check the configuration and start the mail system in the "
                            "background; exit when it accepts mail (or failed).").parse_args(argv)
    cfg = _load(args.config_dir)
    pid = _running(cfg)
    if pid is not None:
        raise _Fatal(f"{SYSTEM} is already running")
    from postier.master.check import check
    if _report(check(cfg, fix=True)):
        raise _Fatal("postier integrity check failed!")
    from postier.cli.run_cmd import table_specs
    from postier.maps import open_map
    try:
        specs = table_specs(cfg)
        for spec in specs:
            open_map(spec)
        services = cfg.services
    except PostierError as e:
        raise _Fatal(str(e)) from None
    log.info(f"starting {SYSTEM}")
    maillog = cfg.get("maillog_file") or None
    name = cfg.get("syslog_name") or "postier"
    log_kw = {"progname": "postier", "stderr": False, "maillog_file": maillog,
              "use_syslog": not maillog, "syslog_name": name}
    summary = (f"configuration {cfg.config_dir}: main.cf ({len(cfg.main.entries)} parameters "
               f"set), master.cf ({len(services)} services), {len(specs)} lookup tables")
    from postier.master.daemon import start_daemon
    ok, why = start_daemon(cfg, log_kw, summary)
    if not ok:
        raise _Fatal(f"mail system startup failed: {why}")
    return 0


# ---------------------------------------------------------------- stop

def main_stop(argv: list[str]) -> int:
    return _run(_stop, argv)


def _stop(argv: list[str]) -> int:
    args = _parser("stop", "Stop the mail system: new connections are refused at once, "
                           "sessions in progress may finish for $smtpd_drain_time, "
                           "deliveries in progress for a few seconds.").parse_args(argv)
    cfg = _load(args.config_dir, validate=False)
    pid = _running(cfg)
    if pid is None:
        raise _Fatal(f"{SYSTEM} is not running")
    log.info(f"stopping {SYSTEM}")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    try:
        drain = float(cfg.get_time("smtpd_drain_time"))
    except PostierError:
        drain = 5.0
    from postier.master.supervisor import QMGR_GRACE
    deadline = time.monotonic() + max(drain, QMGR_GRACE) + 10.0
    next_note = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if _running(cfg) is None:
            return 0
        if time.monotonic() >= next_note:
            log.info(f"waiting for {SYSTEM} to terminate")
            next_note += 1.0
        time.sleep(0.1)
    log.warning(f"stopping {SYSTEM} with force")
    from postier.master.procs import descendants
    for p in [pid] + descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 5.0
    while time.monotonic() < end and _running(cfg) is not None:
        time.sleep(0.1)
    return 0


# ---------------------------------------------------------------- reload

def main_reload(argv: list[str]) -> int:
    return _run(_reload, argv)


def _reload(argv: list[str]) -> int:
    args = _parser("reload", "Check the configuration, then make the running master re-read "
                             "main.cf, master.cf and the tables (SIGHUP); sessions in "
                             "progress are not interrupted.").parse_args(argv)
    cfg = _load(args.config_dir, validate=False)
    pid = _running(cfg)
    if pid is None:
        raise _Fatal(f"{SYSTEM} is not running")
    from postier.master.check import check
    fatal = [p for p in check(cfg) if p.level == "fatal"]
    if fatal:
        _report(fatal)
        raise _Fatal("configuration errors: the running mail system was not reloaded")
    log.info(f"refreshing {SYSTEM}")
    os.kill(pid, signal.SIGHUP)
    return 0


# ---------------------------------------------------------------- flush

def main_flush(argv: list[str]) -> int:
    """postqueue -f (the same as `postier queue flush`)."""
    from postier.cli.queue_cmd import main as queue_main
    return queue_main(["flush", *argv])


def main(argv: list[str]) -> int:
    """`postier.cli.control_cmd VERB ARGS` (the dispatcher calls main_VERB)."""
    verbs = {"start": main_start, "stop": main_stop, "reload": main_reload,
             "status": main_status, "check": main_check, "flush": main_flush}
    if not argv or argv[0] not in verbs:
        sys.stderr.write(f"usage: postier {{{','.join(verbs)}}} [-c DIR]\n")
        return 2
    return verbs[argv[0]](argv[1:])


__all__ = ["main", "main_check", "main_flush", "main_reload", "main_start", "main_status",
           "main_stop"]
