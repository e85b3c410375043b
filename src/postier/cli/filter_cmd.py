"""`postier filter`: the content scan as an after-queue content filter (amavisd's place).

    postier filter [-c DIR] [--listen 127.0.0.1:10024] [--reinject 127.0.0.1:10025]
                   [--lmtp] [--spool DIR]

Serves SMTP (LMTP with `--lmtp`) on `--listen` so that a real Postfix can
use postier instead of amavisd-new, with the usual set-up:

    # main.cf
    content_filter = smtp-amavis:[127.0.0.1]:10024
    # master.cf
    smtp-amavis unix - - n - 2 smtp
        -o smtp_data_done_timeout=1200 -o smtp_send_xforward_command=yes
        -o disable_dns_lookups=yes -o max_use=20
    127.0.0.1:10025 inet n - n - - smtpd
        -o content_filter= -o smtpd_authorized_xforward_hosts=127.0.0.0/8
        -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks
        -o smtpd_restriction_classes= -o smtpd_client_restrictions=
        -o smtpd_helo_restrictions= -o smtpd_sender_restrictions=
        -o smtpd_recipient_restrictions=permit_mynetworks,reject
        -o mynetworks=127.0.0.0/8 -o smtpd_data_restrictions=

Each message is received into a spool file (`--spool`, default
$queue_directory/filter; files there are temporary), gets a Received:
header (`by $myhostname (postier, port 10024)`, as amavisd adds its own),
is scanned exactly as smtpd scans before the queue (postier.content.scan:
antivirus, banned files, spam, bad header, destinies, quarantine, added
headers), then:

* pass: reinjected to `--reinject` with postier's smtp client
  (postier.delivery.smtp), with the added headers and XFORWARD (the client
  attributes Postfix passed to us, or our own client's) when the reinjection
  server offers it; the reply to Postfix is sent only after the reinjection
  answered: `250 2.0.0 Ok, id=QUEUEID, from MTA([127.0.0.1]:10025): 250 2.0.0
  Ok: queued as X`; a 4xx from the reinjection gives 451, a 5xx for every
  recipient 554 (Postfix then defers or bounces);
* reject destiny: `554 5.7.0 Reject, id=QUEUEID - VIRUS: ...` -- Postfix
  bounces the message, as with amavisd's D_BOUNCE;
* discard destiny: `250 2.7.0 Ok, discarded, id=QUEUEID - ...`, nothing reinjected;
* every virus scanner failed: `451 4.5.0 Error in processing, ...`, Postfix retries.

With `--lmtp` every accepted recipient gets its own reply at the end of
DATA (blocked recipients their reject/discard reply, the others the
reinjection's outcome), so mixed verdicts and partial reinjection failures
are exact.  In SMTP mode one reply covers the message: recipients blocked
while others pass are dropped (never bounced), and recipients the
reinjection server refused permanently while others were accepted are
logged and dropped.

Started as root, it binds its socket and then runs as `--user` (default
$mail_owner), like amavisd as user amavis: the spool directory is given to
that account; quarantine_directory and the clamd socket must be usable by it.

Parameters read: everything postier.content.scan reads, mail_owner, the smtpd
parameters of postier.smtpd.server (size limit, timeouts, myhostname), and
the smtp client's (postier.delivery.smtp; smtp_send_xforward_command and
lmtp_send_xforward_command are forced on for the reinjection),
queue_directory, maillog_file, syslog_name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from postier import log
from postier.errors import PostierError, Reply

DEFAULT_LISTEN = "127.0.0.1:10024"
DEFAULT_REINJECT = "127.0.0.1:10025"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier filter",
        description="Serve postier's content scan (clamd, banned files, spam) as an "
                    "after-queue SMTP/LMTP content filter that reinjects passed mail, "
                    "like amavisd-new.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (default: $POSTIER_CONFIG_DIR, /etc/postier, "
                        "else the built-in default configuration)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"where to accept mail from Postfix (default {DEFAULT_LISTEN})")
    p.add_argument("--reinject", default=DEFAULT_REINJECT, metavar="HOST:PORT",
                   help=f"where to send passed mail back (default {DEFAULT_REINJECT})")
    p.add_argument("--lmtp", action="store_true",
                   help="speak LMTP (one reply per recipient) instead of SMTP")
    p.add_argument("--spool", metavar="DIR",
                   help="directory for messages being filtered (default $queue_directory/filter)")
    p.add_argument("--user", metavar="NAME",
                   help="when started as root, run as this account once the socket is bound "
                        "(default $mail_owner; 'root' keeps root)")
    return p


def run_account(cfg: Any, name: str | None) -> tuple[str, int, int] | None:
    """(name, uid, gid) to switch to after binding, or None (not root, or root asked)."""
    import pwd
    if os.geteuid() != 0:
        return None
    name = name or cfg.get("mail_owner")
    if name == "root":
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise PostierError(f"--user: unknown user name: {name}") from None
    if pw.pw_uid == 0:
        raise PostierError(f"--user: user {name} has privileged user ID: 0")
    return name, pw.pw_uid, pw.pw_gid


def drop_privileges(account: tuple[str, int, int]) -> None:
    """Become `account` for good (groups, gid, uid), after importing now what
    would otherwise be imported lazily: the Python installation may not be
    readable by that account."""
    try:
        from postier.master.preload import preload
        preload()
    except ImportError:       # pragma: no cover - the master package is optional here
        pass
    import concurrent.futures.thread  # noqa: F401 - run_in_executor's pool

    import postier.delivery.smtp  # noqa: F401 - reinjection
    _, uid, gid = account
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)


def split_hostport(text: str, what: str) -> tuple[str, int]:
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = t.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PostierError(f"{what}: bad address \"{text}\" (expected HOST:PORT, e.g. "
                           f"127.0.0.1:10024)")
    return host, int(port)


class MultiReply(Reply):
    """LMTP: one reply per recipient, sent together at the end of DATA."""

    def __init__(self, replies: list[Reply]):
        self.replies = replies
        ok = [r for r in replies if r.code < 400]
        first = ok[0] if ok else replies[0]
        super().__init__(first.code, first.enhanced, first.text)

    def wire(self) -> bytes:
        return b"".join(r.wire() for r in self.replies)


def _filter_session_class(lmtp: bool) -> Any:
    from postier.smtpd.server import R_UNKNOWN, Smtpd

    class FilterSession(Smtpd):
        """An smtpd session that speaks LMTP when asked (LHLO instead of HELO/EHLO)."""

        async def command(self, raw: bytes) -> None:
            if lmtp:
                verb = raw.split(b" ", 1)[0].upper()
                if verb == b"LHLO":
                    self.last_cmd = "LHLO"
                    ok = await self.smtp_helo(raw[4:].decode("utf-8", "surrogateescape").strip(),
                                              esmtp=True)
                    if ok:
                        self.st.protocol = "LMTP"
                    self.counts.add("lhlo", ok)
                    return
                if verb in (b"HELO", b"EHLO"):
                    self.counts.add("unknown", False)
                    await self.error_reply(R_UNKNOWN)
                    return
            await super().command(raw)

    return FilterSession


class FilterContent:
    """The end-of-DATA hook of `postier filter` (SmtpdSettings.content)."""

    def __init__(self, scanner: Any, cfg: Any, reinject: tuple[str, int], lmtp: bool):
        from postier.config import Config
        self.scanner = scanner
        self.lmtp = lmtp
        host, port = reinject
        self.nexthop = f"[{host}]:{port}"
        self.cfg = Config(cfg.main, cfg.config_dir, master_path=cfg.master_path,
                          overrides={"smtp_send_xforward_command": "yes",
                                     "lmtp_send_xforward_command": "yes"},
                          parent=cfg)

    async def end_of_data(self, session: Any, writer: Any) -> Reply | None:
        rcpts = [m[0] for m in session.rcpt_meta]
        try:
            env, v = await self.scanner.scan_writer(session, writer)
        except Exception as e:  # noqa: BLE001 - a bug here must defer, never lose mail
            log.warning(f"{writer.queue_id}: content scan error: {type(e).__name__}: {e}")
            return self._answer(rcpts, {}, Reply(451, "4.5.0", f"Error in processing, "
                                                 f"id={writer.queue_id}, content scan FAILED"))
        if v.action != "pass":
            st = session.st
            log.info(f"{v.queue_id}: {'discard' if v.action == 'discard' else 'reject'}: "
                     f"END-OF-MESSAGE from {st.client.namaddr}: "
                     f"{v.reply.line() if v.reply else ''}; from=<{env.sender}> "
                     + " ".join(f"to=<{r}>" for r in rcpts)
                     + f" proto={st.protocol} helo=<{st.helo_name or ''}>")
            return self._answer(rcpts, v.per_recipient, v.reply)
        statuses = await self._reinject(session, writer, env) if env.recipients else []
        qid = v.queue_id
        sent = [s for s in statuses if s.status == "sent"]
        soft = [s for s in statuses if s.status == "deferred"]
        hard = [s for s in statuses if s.status == "bounced"]
        per: dict[str, Reply] = dict(v.per_recipient)
        for s in statuses:
            per[s.recipient.address] = self._status_reply(qid, s)
        if soft:
            overall = self._status_reply(qid, soft[0])
        elif hard and not sent:
            overall = self._status_reply(qid, hard[0])
        else:
            if hard:
                log.warning(f"{qid}: reinjection refused " + ", ".join(
                    f"<{s.recipient.address}> ({s.text})" for s in hard)
                    + "; other recipients accepted, these are dropped (use --lmtp)")
            overall = (self._status_reply(qid, sent[0]) if sent else
                       Reply(250, "2.0.0", f"Ok, id={qid}"))
        return self._answer(rcpts, per, overall)

    def _answer(self, rcpts: list[str], per: dict[str, Reply], overall: Reply | None) -> Reply:
        if overall is None:
            overall = Reply(451, "4.3.0", "Error in processing")
        if not self.lmtp:
            return overall
        return MultiReply([per.get(r, overall) for r in rcpts] or [overall])

    def _status_reply(self, qid: str, s: Any) -> Reply:
        text = f"id={qid}, from MTA({self.nexthop}): {s.text}"
        if s.status == "sent":
            return Reply(250, "2.0.0", f"Ok, {text}")
        if s.status == "deferred":
            dsn = s.dsn if s.dsn.startswith("4.") else "4.5.0"
            return Reply(451, dsn, f"Error in processing, {text}")
        dsn = s.dsn if s.dsn.startswith("5.") else "5.5.0"
        return Reply(554, dsn, f"Rejected, {text}")

    async def _reinject(self, session: Any, writer: Any, env: Any) -> list[Any]:
        from postier.delivery import DeliveryRequest
        from postier.delivery.smtp import deliver
        from postier.queue.file import MAGIC
        st = session.st
        xf = st.xforward
        attrs = {
            "client_name": xf.get("NAME") or st.client.name,
            "client_address": xf.get("ADDR") or st.client.addr,
            "client_port": xf.get("PORT") or st.client.port,
            "protocol_name": xf.get("PROTO") or st.protocol,
            "helo_name": xf.get("HELO") or (st.helo_name or ""),
            "log_ident": xf.get("IDENT") or env.queue_id,
        }
        source = xf.get("SOURCE", "").upper()
        if source in ("LOCAL", "REMOTE"):
            attrs["rewrite_context"] = source.lower()
        req = DeliveryRequest(
            queue_id=env.queue_id, queue_path=writer.tmp_path, content_offset=len(MAGIC),
            content_size=writer.size, sender=env.sender, recipients=list(env.recipients),
            transport="smtp", nexthop=self.nexthop, config=self.cfg,
            arrival=env.arrival, dsn_envid=env.dsn_envid, dsn_ret=env.dsn_ret,
            body_type=env.body_type, smtputf8=env.smtputf8,
            attrs={k: v for k, v in attrs.items() if v})
        statuses = await deliver(req, lmtp=False)
        for s in statuses:
            log.info(f"{env.queue_id}: to=<{s.recipient.address}>, relay={s.relay}, "
                     f"dsn={s.dsn}, status={s.status} ({s.text})")
        return statuses


async def serve(cfg: Any, listen: tuple[str, int], reinject: tuple[str, int], lmtp: bool,
                spool: str, ready: Any = None, stop: asyncio.Event | None = None,
                account: tuple[str, int, int] | None = None) -> int:
    """Run the filter until `stop` is set (or SIGTERM/SIGINT)."""
    from postier.content.scan import ContentScanner, ScanSettings
    from postier.smtpd.server import SmtpdServer, SmtpdSettings, parse_networks
    settings = SmtpdSettings.from_config(cfg)
    settings.cleanup = None                 # no address or header rewriting: Postfix did that
    settings.peername_lookup = False
    settings.queue_directory = spool
    settings.xforward_hosts = parse_networks(["127.0.0.0/8", "[::1]/128"])
    settings.xclient_hosts = []
    settings.conn_count_limit = settings.conn_rate_limit = 0
    settings.mail_name = f"postier, port {listen[1]}"
    settings.service_name = "filter"
    settings.content = FilterContent(ContentScanner(ScanSettings.from_config(cfg)), cfg,
                                     reinject, lmtp)
    loop = asyncio.get_running_loop()
    server = SmtpdServer(settings, None, loop=loop)
    server.session_class = _filter_session_class(lmtp)
    try:
        await server.listen(listen[0], listen[1])
    except OSError as e:
        raise PostierError(f"bind {listen[0]} port {listen[1]}: {e.strerror}") from None
    log.info(f"filter listening on {listen[0]}:{listen[1]} ({'LMTP' if lmtp else 'SMTP'}), "
             f"reinjecting to [{reinject[0]}]:{reinject[1]}"
             + (f", running as {account[0]}" if account else ""))
    if account is not None:
        drop_privileges(account)        # the log file is open already
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    await stop.wait()
    log.info("terminating on signal")
    await server.close()
    from postier.delivery.smtp import close_idle_sessions
    close_idle_sessions()
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from postier.config import load_config
    log.setup("filter", progname="postier", stderr=True)
    try:
        cfg = load_config(args.config_dir)
        cfg.validate()
        maillog = cfg.get("maillog_file")
        log.setup("filter", progname="postier", stderr=not maillog,
                  maillog_file=maillog or None, syslog_name=cfg.get("syslog_name") or "postier")
        listen = split_hostport(args.listen, "--listen")
        reinject = split_hostport(args.reinject, "--reinject")
        spool = args.spool or os.path.join(cfg.get("queue_directory"), "filter")
        os.makedirs(os.path.join(spool, "incoming"), mode=0o700, exist_ok=True)
        from postier.queue.file import recover_queues
        recover_queues(spool)               # unacknowledged messages: Postfix sends them again
        account = run_account(cfg, args.user)
        if account is not None:
            for path in (spool, os.path.join(spool, "incoming")):
                os.chown(path, account[1], account[2])
        from postier.content.scan import ScanSettings
        ScanSettings.from_config(cfg)       # bad content parameters: report them now
    except PostierError as e:
        log.fatal(str(e))
        return 1
    except OSError as e:
        log.fatal(f"spool directory: {e}")
        return 1
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        pass
    try:
        return asyncio.run(serve(cfg, listen, reinject, args.lmtp, spool, account=account))
    except PostierError as e:
        log.fatal(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
