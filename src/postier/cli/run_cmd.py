"""`postier run`: run the mail system in the foreground (containers, tests).

Reads main.cf and master.cf from the configuration directory (`-c DIR`, else
POSTIER_CONFIG_DIR / MAIL_CONFIG, else /etc/postier, else the built-in
default configuration), opens every lookup table the configuration names (so
a broken table is reported at start, with its file and line), creates the
queue directories, and serves SMTP on every `inet` service of master.cf whose
command is `smtpd`.  When master.cf has a `qmgr` service, the queue manager
(postier.qmgr: recovery of active/, then delivery through the agents in
postier.delivery) runs in the same event loop, and smtpd hands it each
message as soon as its 250 is sent.  Postfix-internal services in master.cf (cleanup,
trivial-rewrite, qmgr, bounce, postlog, ...) are built into postier and are
accepted without effect.  SIGTERM or SIGINT stops it: the listeners close
first; a message whose 250 was sent is already on disk.

Logs go to maillog_file when set, else to standard error.

Parameters read: queue_directory, maillog_file, syslog_name, and everything
smtpd reads (see postier.smtpd.server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys

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
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        pass
    try:
        return asyncio.run(_serve(cfg, listeners))
    except PostierError as e:
        log.fatal(str(e))
        return 1


async def _serve(cfg, listeners: list[tuple[str, int, object]]) -> int:
    from postier.smtpd.restrictions import RestrictionEngine
    from postier.smtpd.server import SmtpdServer, SmtpdSettings
    log.setup("smtpd", progname="postier", stderr=log.LOG.stderr,
              maillog_file=log.LOG.maillog_file, syslog_name=log.LOG.syslog_name)
    from postier.queue import QUEUE_NAMES
    qdir = cfg.get("queue_directory")
    for q in QUEUE_NAMES:
        os.makedirs(os.path.join(qdir, q), exist_ok=True)
    loop = asyncio.get_running_loop()
    qmgr = None
    if any(s.command in ("qmgr", "oqmgr") for s in cfg.services):
        # before any listener: start-up recovery of active/ comes first
        from postier.qmgr.manager import QueueManager, load_agents
        load_agents()
        qmgr = QueueManager(cfg, loop=loop)
        await qmgr.start()
    servers = []
    for host, port, svc in listeners:
        scfg = cfg.for_service(svc)     # master.cf -o overrides apply to this service
        server = SmtpdServer(SmtpdSettings.from_config(scfg), RestrictionEngine(scfg), loop=loop)
        if qmgr is not None:
            server.on_queued = qmgr.on_queued     # picked up at once, no directory scan
        try:
            await server.listen(host, port)
        except OSError as e:
            raise PostierError(f"bind {host or '*'} port {port}: {e.strerror}") from None
        servers.append(server)
    from postier import pickup
    submission = await pickup.start(cfg, loop)     # public/pickup: sendmail, mailq, -bs
    if submission is not None and qmgr is not None:
        submission.on_queued = qmgr.on_queued
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = ", ".join(f"{h or '*'}:{p}" for h, p, _ in listeners)
    sys.stderr.flush()
    log.info(f"smtpd listening on {where}" if where else "no SMTP listener")
    await stop.wait()
    log.info("terminating on signal")
    for server in servers:
        await server.close()
    if submission is not None:
        await submission.close()
    if qmgr is not None:
        await qmgr.stop()
    return 0
