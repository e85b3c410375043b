"""`postier greylistd`: a postgrey-compatible greylisting policy server.

A drop-in for postgrey behind Postfix (or postier):

    postier greylistd --inet=127.0.0.1:10023        # or --unix=/path/to/socket
    # main.cf: smtpd_recipient_restrictions = ..., reject_unauth_destination,
    #          check_policy_service inet:127.0.0.1:10023

It takes postgrey's options (--delay, --max-age, --retry-window,
--greylist-action, --greylist-text, --lookup-by-subnet/--lookup-by-host,
--ipv4cidr, --ipv6cidr, --auto-whitelist-clients[=N], --whitelist-clients,
--whitelist-recipients, --privacy, --hostname, --exim, --x-greylist-header,
--listen-queue-size, --socketmode, --user, --group, --pidfile, --dbdir,
-v, -q) with postgrey's meaning; everything not given on the command line
comes from main.cf's greylist_* parameters (`-c DIR`, else
$POSTIER_CONFIG_DIR, /etc/postier, or the built-in defaults).  The store is
`--store FILE` or `--store redis:HOST:PORT` (default: greylist_store;
`--dbdir DIR` means DIR/postier-greylist).  `--workers N` forks N server
processes that share the listening socket and the store file.  It runs in
the foreground (postgrey's -d is refused: use the service manager).
SIGTERM/SIGINT stop it, SIGHUP re-reads the whitelists.

`postier greylistd --check-store FILE [--repair]` verifies a store file
(header, journal, every slot's check word, duplicates, probe chains,
counters), prints a report, and exits 0 when it is sound, 1 when not (with
--repair: 0 when it was rebuilt from its valid entries).

Logs (postgrey's lines: `action=greylist, reason=new, client_name=...`)
go to maillog_file when main.cf sets it, else to standard error.

Parameters read: the greylist_* parameters (see postier.policy.greylist),
data_directory, maillog_file, syslog_name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from postier import __version__, log
from postier.errors import PostierError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier greylistd",
        description="Greylisting policy server for Postfix's check_policy_service, with "
                    "postgrey's behaviour and options.")
    a = p.add_argument
    a("-c", dest="config_dir", metavar="DIR", help="main.cf directory (greylist_* defaults)")
    a("-i", "--inet", metavar="[HOST:]PORT", action="append", default=[],
      help="listen on PORT (localhost when HOST is not given)")
    a("-u", "--unix", metavar="PATH", action="append", default=[],
      help="listen on the unix socket PATH")
    a("--socketmode", metavar="MODE", default="0666", help="unix socket permissions (0666)")
    a("--store", metavar="FILE|redis:HOST:PORT", help="where entries live (greylist_store)")
    a("--dbdir", metavar="DIR", help="postgrey's database directory: the store is "
      "DIR/postier-greylist")
    a("--delay", type=int, metavar="N", help="greylist for N seconds (greylist_delay)")
    a("--max-age", type=int, metavar="N", help="delete entries older than N days "
      "(greylist_max_age)")
    a("--retry-window", metavar="N|Nh", help="allow N days (or N hours) for the first retry "
      "(greylist_retry_window)")
    a("--greylist-action", metavar="A", help="action for greylisted triplets (DEFER_IF_PERMIT)")
    a("--greylist-text", metavar="TXT", help="reply text (%%s: seconds left, "
      "%%r: recipient domain)")
    a("--lookup-by-subnet", action="store_true", help="key on the client network (default)")
    a("--lookup-by-host", action="store_true", help="key on the client address")
    a("--ipv4cidr", type=int, metavar="N", help="IPv4 network prefix length (24)")
    a("--ipv6cidr", type=int, metavar="N", help="IPv6 network prefix length (64)")
    a("--auto-whitelist-clients", nargs="?", const="5", metavar="N",
      help="whitelist a client after N delivered triplets (5; 0: off)")
    a("--whitelist-clients", metavar="FILE", action="append",
      help="client whitelist file (repeatable)")
    a("--whitelist-recipients", metavar="FILE", action="append",
      help="recipient whitelist file (repeatable)")
    a("--privacy", action="store_true", help="store SHA-1 digests of the keys (Redis)")
    a("--hostname", metavar="NAME", help="%%h of the X-Greylist header (default: hostname)")
    a("--exim", action="store_true", help="close the connection after each answer")
    a("--x-greylist-header", metavar="TXT", help="header for delayed messages (%%t %%v %%h %%d)")
    a("--listen-queue-size", type=int, metavar="N", default=128, help="listen backlog")
    a("--user", metavar="USER", help="run as USER (when started as root)")
    a("--group", metavar="GROUP", help="run as GROUP (when started as root)")
    a("--pidfile", metavar="PATH", help="write the process ID here")
    a("--syslog-facility", "--syslogfacility", "--facility", metavar="F",
      help="accepted for compatibility (logging follows main.cf)")
    a("-v", "--verbose", action="store_true", help="accepted for compatibility")
    a("-q", "--quiet", action="store_true", help="do not log each decision")
    a("-d", "--daemonize", action="store_true", help="refused: postier greylistd runs in "
      "the foreground")
    a("--workers", type=int, default=1, metavar="N", help="server processes (1)")
    a("--check-store", metavar="FILE", help="verify a store file and exit")
    a("--repair", action="store_true", help="with --check-store: rebuild a damaged store")
    a("--version", action="store_true", help="print the version and exit")
    return p


def _retry_window(text: str) -> int:
    t = text.strip()
    if t[-1:].lower() == "h" and t[:-1].isdigit():
        return int(t[:-1]) * 3600
    if t.isdigit():
        return int(t) * 86400
    raise PostierError("--retry-window must be either a number of days or a number "
                       "followed by 'h' for hours ('6h' for example)")


def settings_from_args(args: argparse.Namespace, cfg) -> object:
    from postier.policy.greylist import settings_from_config

    def get(name: str) -> str | None:
        try:
            return cfg.get_str(name)
        except Exception:       # noqa: BLE001 - unknown names fall back to the defaults
            return None

    over: dict[str, object] = {"hostname": args.hostname or socket.gethostname()}
    if args.store:
        over["store"] = args.store
    elif args.dbdir:
        over["store"] = os.path.join(os.path.abspath(args.dbdir), "postier-greylist")
    if args.delay is not None:
        if args.delay <= 0:
            raise PostierError("--delay must be a positive number of seconds")
        over["delay"] = args.delay
    if args.max_age is not None:
        if args.max_age <= 0:
            raise PostierError("--max-age must be a positive number of days")
        over["max_age"] = args.max_age * 86400
    if args.retry_window is not None:
        over["retry_window"] = _retry_window(args.retry_window)
    if args.greylist_action:
        over["action"] = args.greylist_action
    if args.greylist_text:
        over["text"] = args.greylist_text
    if args.x_greylist_header is not None:
        over["header"] = args.x_greylist_header
    if args.lookup_by_host:
        over["lookup_by_host"] = True
    if args.ipv4cidr is not None:
        if not 0 <= args.ipv4cidr <= 32:
            raise PostierError("--ipv4cidr must be between 0 and 32")
        over["ipv4cidr"] = args.ipv4cidr
    if args.ipv6cidr is not None:
        if not 0 <= args.ipv6cidr <= 128:
            raise PostierError("--ipv6cidr must be between 0 and 128")
        over["ipv6cidr"] = args.ipv6cidr
    if args.auto_whitelist_clients is not None:
        v = args.auto_whitelist_clients or "5"
        if not v.isdigit():
            raise PostierError(f"--auto-whitelist-clients: not a number: {v}")
        over["awl_clients"] = int(v)
    if args.whitelist_clients:
        over["whitelist_clients"] = tuple(args.whitelist_clients)
    if args.whitelist_recipients:
        over["whitelist_recipients"] = tuple(args.whitelist_recipients)
    if args.privacy:
        over["privacy"] = True
    if args.quiet:
        over["log_actions"] = False
    return settings_from_config(get, **over)


def _check_store(args: argparse.Namespace) -> int:
    from postier.policy.store import check_store, describe_report
    path = args.check_store
    if path.startswith("redis:"):
        log.fatal("--check-store checks a store file; Redis checks its own data")
    try:
        report = check_store(path, repair=args.repair)
    except PostierError as e:
        log.fatal(str(e))
        return 2
    for line in describe_report(report):
        print(f"{path}: {line}")
    return 0 if report["ok"] else 1


def _drop_privileges(user: str | None, group: str | None) -> None:
    if os.geteuid() != 0 or not (user or group):
        return
    import grp
    import pwd
    try:
        pw = pwd.getpwnam(user) if user else None
        gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else None)
    except KeyError as e:
        raise PostierError(f"unknown user or group: {e.args[0]}") from None
    if gid is not None:
        os.setgroups([gid])
        os.setgid(gid)
    if pw is not None:
        os.setuid(pw.pw_uid)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    log.setup("greylistd", progname="postier greylistd", stderr=True)
    if args.version:
        print(f"postier greylistd {__version__}")
        return 0
    if args.check_store:
        return _check_store(args)
    if args.daemonize:
        log.fatal("-d/--daemonize is not supported: postier greylistd stays in the "
                  "foreground (run it under your service manager)")
    if not args.inet and not args.unix:
        log.fatal("--unix or --inet must be specified")
    if args.workers < 1:
        log.fatal("--workers must be at least 1")
    from postier.config import load_config
    from postier.policy.server import bind_inet, bind_unix, parse_inet
    try:
        cfg = load_config(args.config_dir)
        maillog = cfg.get("maillog_file")
        log.setup("greylistd", progname="postier greylistd", stderr=not maillog,
                  maillog_file=maillog or None, syslog_name=cfg.get("syslog_name") or "postier")
        settings = settings_from_args(args, cfg)
        mode = int(args.socketmode, 8)
    except ValueError:
        log.fatal(f"bad --socketmode: {args.socketmode}")
        return 1
    except PostierError as e:
        log.fatal(str(e))
        return 1
    socks: list[socket.socket] = []
    try:
        for value in args.inet:
            host, port = parse_inet(value)
            socks += bind_inet(host, port, args.listen_queue_size)
        for path in args.unix:
            socks.append(bind_unix(path, mode, args.listen_queue_size))
    except ValueError as e:
        log.fatal(str(e))
    except OSError as e:
        log.fatal(f"cannot listen: {e.strerror or e}")
    try:
        _drop_privileges(args.user, args.group)
    except (PostierError, OSError) as e:
        log.fatal(str(e))
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    where = ", ".join(_sock_name(s) for s in socks)
    log.info(f"postier greylistd {__version__} starting: listening on {where}, "
             f"store {settings.store}, delay {settings.delay}s")
    if args.workers == 1:
        return _serve(settings, socks, args.exim)
    return _supervise(settings, socks, args.exim, args.workers)


def _sock_name(s: socket.socket) -> str:
    name = s.getsockname()
    if isinstance(name, tuple):
        return f"[{name[0]}]:{name[1]}" if ":" in name[0] else f"{name[0]}:{name[1]}"
    return str(name)


def _supervise(settings, socks: list[socket.socket], exim: bool, workers: int) -> int:
    """Fork `workers` server processes sharing the sockets; wait for them."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _serve(settings, socks, exim)
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                st = 0
                break
        if os.waitstatus_to_exitcode(st) not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = 1
    return status


def _serve(settings, socks: list[socket.socket], exim: bool) -> int:
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    try:
        return asyncio.run(_run(settings, socks, exim))
    except PostierError as e:
        log.fatal(str(e))
        return 1


async def _run(settings, socks: list[socket.socket], exim: bool) -> int:
    from postier.policy.greylist import Greylist
    from postier.policy.server import PolicyServer
    greylist = Greylist(settings)
    server = PolicyServer(greylist, exim=exim)
    for s in socks:
        await server.listen_socket(s)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def hup() -> None:
        log.info("HUP received: reloading whitelists...")
        greylist.load_whitelists()

    loop.add_signal_handler(signal.SIGHUP, hup)
    sys.stderr.flush()
    await stop.wait()
    log.info("terminating on signal")
    await server.close()
    await greylist.aclose()
    return 0
