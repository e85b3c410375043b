"""`postier run`: run the mail system in the foreground (containers, tests).

Reads main.cf and master.cf from the configuration directory (`-c DIR`, else
POSTIER_CONFIG_DIR / MAIL_CONFIG, else /etc/postier, else the built-in
default configuration), opens every lookup table the configuration names (so
a broken table is reported at start, with its file and line), and runs the
master process (postier.master) in the foreground: it prepares the queue
directories, binds every `inet` service of master.cf whose command is
`smtpd`, and forks the smtpd worker processes ($smtpd_worker_processes, one
per CPU by default) and, when master.cf has a `qmgr` (or `pickup`) service,
the queue process (postier.qmgr: recovery of active/, then delivery through
the agents in postier.delivery; the pickup service), which hears of each
message as soon as smtpd sent its 250.  Postfix-internal services in
master.cf (cleanup, trivial-rewrite, bounce, postlog, ...) are built into
postier and are accepted without effect.  `smtpd listening on ADDR` is
logged once every worker accepts.  SIGTERM or SIGINT stops it: the listeners
close first; sessions in progress may finish for $smtpd_drain_time; a
message whose 250 was sent is already on disk.  SIGHUP reloads the
configuration (see postier.master).  `postier start` runs the same master
as a daemon.

Logs go to maillog_file when set, else to standard error.

Parameters read: queue_directory, maillog_file, syslog_name, and everything
the master, smtpd and the queue manager read (see postier.master).
"""

from __future__ import annotations

import argparse
import os
import re

from postier import __version__, log
from postier.errors import PostierError

MAP_SPEC = re.compile(r"^(hash|texthash|regexp|pcre|cidr|inline|static):")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier run",
        description="Run postier in the foreground: load main.cf/master.cf and every lookup "
                    "table they name, then serve SMTP on master.cf's inet smtpd services "
                    "until SIGTERM or SIGINT.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (default: $POSTIER_CONFIG_DIR, "
                        "/etc/postier, else the built-in default configuration)")
    p.add_argument("--check", action="store_true",
                   help="load the configuration and tables, report, and exit")
    return p


def table_specs(cfg) -> list[str]:
    """Every `type:name` lookup table named by a parameter value."""
    from postier.config import split_list
    specs: list[str] = []
    for name in cfg.main.entries:
        try:
            value = cfg.expand(cfg.raw(name) or "")
        except PostierError:
            continue
        for item in split_list(value):
            if MAP_SPEC.match(item) and item not in specs:
                specs.append(item)
    return specs


def smtpd_services(services) -> list[tuple[str, int, object]]:
    """(host, port, service) of each inet service whose command is smtpd."""
    out = []
    for svc in services:
        if svc.type != "inet" or os.path.basename(svc.command) != "smtpd":
            continue
        host, port = svc.listen_address()
        host = host or ""
        if not port.isdigit():
            try:
                import socket
                port = str(socket.getservbyname(port, "tcp"))
            except OSError:
                raise PostierError(f"master.cf: unknown service port {svc.name!r}") from None
        out.append((host, int(port), svc))
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from postier.config import load_config
    log.setup("master", progname="postier", stderr=True)
    try:
        cfg = load_config(args.config_dir)
        cfg.validate()
        maillog = cfg.get("maillog_file")
        log.setup("master", progname="postier", stderr=not maillog,
                  maillog_file=maillog or None, syslog_name=cfg.get("syslog_name") or "postier")
        services = cfg.services
        from postier.maps import open_map
        specs = table_specs(cfg)
        for spec in specs:
            open_map(spec)
        listeners = smtpd_services(services)
    except PostierError as e:
        log.fatal(str(e))
        return 1
    summary = (f"configuration {cfg.config_dir}: main.cf ({len(cfg.main.entries)} parameters "
               f"set), master.cf ({len(services)} services), {len(specs)} lookup tables")
    if args.check:
        log.info(f"{summary}: OK")
        return 0
    log.info(f"daemon started -- version {__version__}, {summary}")
    if not listeners:
        log.warning("master.cf defines no inet smtpd service: nothing to serve")
    from postier.master import Master
    log_kw = {"progname": "postier", "stderr": log.LOG.stderr,
              "maillog_file": log.LOG.maillog_file, "syslog_name": log.LOG.syslog_name}
    return Master(cfg, foreground=True, log_kw=log_kw, summary=summary).serve()
