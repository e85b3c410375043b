"""`postier queue VERB`: the mail queue tools (mailq, postqueue, postsuper, postcat).

    postier queue list [-j] [-c DIR]                  mailq / postqueue -p (-j: postqueue -j)
    postier queue cat [-bhe] [-c DIR] -q ID | FILE... postcat
    postier queue delete ID|ALL|- [ID...] [QUEUE...]  postsuper -d
    postier queue hold ID|ALL|- [ID...] [QUEUE...]    postsuper -h
    postier queue release ID|ALL|- [ID...] [QUEUE...] postsuper -H
    postier queue requeue ID|ALL|- [ID...] [QUEUE...] postsuper -r
    postier queue flush [-c DIR]                      postqueue -f

Output and diagnostics are those of the Postfix tool named on the right, with
its stderr prefix (`postqueue:`, `postsuper:`, `postcat:`): the listing has
postqueue's long-queue-ID layout (postier queue IDs have 16 characters);
postsuper reports `ID: removed` etc. per named message and `Deleted: N
messages` etc. once, on stderr and in the mail log.  `-` reads queue IDs
from standard input, one per line; `ALL` (upper case) acts on every message
of the listed (or default) queues.  QUEUE arguments are queue names
(maildrop, incoming, active, deferred, hold, corrupt); further arguments
that have the form of a postier queue ID are more IDs.  A message in
`active` is handed to the running queue manager (see postier.queue.tools).

Parameters read: queue_directory, maillog_file, syslog_name,
empty_address_recipient, duplicate_filter_limit, smtputf8_enable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from postier import log
from postier.errors import PostierError

EX_UNAVAILABLE = 69

USAGE = """\
usage: postier queue VERB [ARGS...]

verbs (Postfix equivalent in parentheses):
  list [-j] [-c DIR]                    list the queue (mailq, postqueue -p; -j: postqueue -j)
  cat [-bhe] [-c DIR] -q ID | FILE...   show a queue file (postcat)
  delete ID|ALL|- [QUEUE...]            delete messages (postsuper -d)
  hold ID|ALL|- [QUEUE...]              put messages on hold (postsuper -h)
  release ID|ALL|- [QUEUE...]           release messages from hold (postsuper -H)
  requeue ID|ALL|- [QUEUE...]           queue messages again for delivery (postsuper -r)
  flush [-c DIR]                        retry deferred mail now (postqueue -f)

`postier queue VERB --help` describes each verb.
"""


class _Fatal(Exception):
    def __init__(self, prog: str, text: str, status: int = 1):
        super().__init__(text)
        self.prog = prog
        self.text = text
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as `PROG: fatal: usage ...` with exit 2."""

    def __init__(self, *args, tool: str = "postier queue", **kw):
        self.tool = tool
        super().__init__(*args, **kw)

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.tool}: fatal: {message}\n")
        raise SystemExit(2)


def _write_out(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))


def _load(prog: str, config_dir: str | None):
    from postier.config import load_config
    try:
        cfg = load_config(config_dir)
    except PostierError as e:
        raise _Fatal(prog, str(e)) from None
    except OSError as e:
        raise _Fatal(prog, f"{config_dir}: {e.strerror}") from None
    return cfg


def _queue_dir(prog: str, cfg, status: int = 1) -> str:
    from postier.queue.tools import QueueError, check_queue_directory
    try:
        qdir = cfg.get("queue_directory")
    except PostierError as e:
        raise _Fatal(prog, str(e)) from None
    try:
        check_queue_directory(qdir)
    except QueueError as e:
        raise _Fatal(prog, str(e), status) from None
    return qdir


def _setup_log(prog: str, cfg) -> None:
    """stderr always; the mail log too when maillog_file is set and writable."""
    maillog = None
    try:
        maillog = cfg.get("maillog_file") or None
        syslog_name = cfg.get("syslog_name") or "postier"
    except PostierError:
        syslog_name = "postier"
    if maillog:
        try:
            fd = os.open(maillog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.close(fd)
        except OSError:
            maillog = None
    log.setup(prog, progname=prog, stderr=True, maillog_file=maillog, syslog_name=syslog_name)


# ---------------------------------------------------------------------------
# list


def _list_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="postier queue list", tool="postqueue",
                description="List the mail queue like mailq / postqueue -p: one entry per "
                            "message (queue ID, size, arrival time, sender), the reason why "
                            "delivery was deferred, the recipients still to deliver, and a "
                            "summary line.  A '*' after the ID marks a message in the active "
                            "queue (being delivered), '!' a message on hold.  Queues are "
                            "listed in the order maildrop, active, incoming, deferred, hold, "
                            "each in queue ID (arrival) order.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (main.cf gives queue_directory)")
    p.add_argument("-j", dest="json", action="store_true",
                   help="JSON output like postqueue -j: one object per line with queue_name, "
                        "queue_id, arrival_time, message_size, forced_expire, sender and "
                        "recipients [{address, delay_reason}]")
    p.add_argument("-p", dest="plain", action="store_true",
                   help="the mailq layout (the default; accepted for postqueue compatibility)")
    return p


def cmd_list(argv: list[str]) -> int:
    args = _list_parser().parse_args(argv)
    prog = "postqueue"
    log.setup(prog, progname=prog, stderr=True)
    cfg = _load(prog, args.config_dir)
    qdir = _queue_dir(prog, cfg, EX_UNAVAILABLE)
    from postier.queue.tools import (
        ListSettings,
        QueueError,
        format_json,
        format_mailq,
        list_messages,
    )
    try:
        settings = ListSettings.from_config(cfg)
    except PostierError as e:
        raise _Fatal(prog, str(e)) from None
    messages = list_messages(qdir, settings=settings, warn=log.warning)
    try:
        if args.json:
            for msg in messages:
                _write_out(format_json(msg, settings.utf8))
                sys.stdout.flush()
        else:
            format_mailq(messages, _write_out)
    except QueueError as e:
        raise _Fatal(prog, str(e), EX_UNAVAILABLE) from None
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# cat


def _cat_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="postier queue cat", tool="postcat", add_help=False,
                description="Show the contents of a queue file like postcat: the envelope, "
                            "the message header and the body.  Without -e, -h or -b all three "
                            "are shown.  With -q the arguments are queue IDs, looked up in the "
                            "maildrop, incoming, active, deferred, hold and corrupt queues; "
                            "otherwise they are queue file names.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (main.cf gives queue_directory)")
    p.add_argument("-e", dest="envelope", action="store_true", help="show the envelope")
    p.add_argument("-h", dest="header", action="store_true", help="show the message header")
    p.add_argument("-b", dest="body", action="store_true", help="show the message body")
    p.add_argument("-q", dest="by_id", action="store_true",
                   help="the arguments are queue IDs, not file names")
    p.add_argument("names", nargs="*", metavar="ID|FILE")
    p.add_argument("--help", action="help", help="show this help message and exit")
    return p


def cmd_cat(argv: list[str]) -> int:
    args = _cat_parser().parse_args(argv)
    prog = "postcat"
    log.setup(prog, progname=prog, stderr=True)
    try:
        from postier.queue import postcat
    except ImportError:
        raise _Fatal(prog, "postier queue cat is not available yet: "
                           "the postcat module (postier.queue.postcat) is missing") from None
    if not args.names:
        raise _Fatal(prog, "usage: postier queue cat [-bhe] [-c DIR] -q ID | FILE...")
    show_all = not (args.envelope or args.header or args.body)
    from postier.queue.file import CorruptQueueFile
    from postier.queue.tools import CAT_QUEUES, find_message, queue_id_ok
    targets: list[tuple[str, str | None]] = []
    cfg = _load(prog, args.config_dir)
    try:
        line_limit = cfg.get_int("line_length_limit")
    except PostierError as e:
        raise _Fatal(prog, str(e)) from None
    if args.by_id:
        qdir = _queue_dir(prog, cfg)
        for qid in args.names:
            if not queue_id_ok(qid):
                raise _Fatal(prog, f"bad mail queue ID: {qid}")
            found = find_message(qdir, qid, CAT_QUEUES)
            if found is None:
                raise _Fatal(prog, f"open queue file {qid}: No such file or directory")
            queue, path = found
            targets.append((path, queue))
    else:
        for path in args.names:
            if not os.path.exists(path):
                raise _Fatal(prog, f"open {path}: No such file or directory")
            targets.append((path, None))
    for path, queue in targets:
        try:
            out = postcat.format_queue_file(path, queue, envelope=show_all or args.envelope,
                                            header=show_all or args.header,
                                            body=show_all or args.body,
                                            line_length_limit=line_limit)
        except CorruptQueueFile as e:
            text = str(e)
            detail = text[len(path) + 2:] if text.startswith(path + ": ") else text
            name = f"{queue}/{os.path.basename(path)}" if queue else path
            raise _Fatal(prog, f"{name}: damaged queue file: {detail}") from None
        except PostierError as e:
            raise _Fatal(prog, str(e)) from None
        except OSError as e:
            raise _Fatal(prog, f"open {path}: {e.strerror}") from None
        if isinstance(out, bytes):
            sys.stdout.buffer.write(out)
        elif isinstance(out, str):
            _write_out(out)
        sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# delete / hold / release / requeue

_SUPER_VERBS = {
    # verb: (postsuper option, default queues attr, summary, description)
    "delete": ("-d", "DEFAULT_QUEUES", "Deleted",
               "Delete messages like postsuper -d, together with their defer, bounce and "
               "trace logs.  Default queues: maildrop, incoming, active, deferred, hold."),
    "hold": ("-h", "HOLD_QUEUES", "Placed on hold",
             "Put messages on hold like postsuper -h: they move to the hold queue and are "
             "not delivered (nor expired) until released.  Default queues: incoming, "
             "active, deferred."),
    "release": ("-H", "RELEASE_QUEUES", "Released from hold",
                "Release messages from hold like postsuper -H: they move to the deferred "
                "queue with a current time stamp and are tried at the next deferred-queue "
                "scan ($queue_run_delay), or at once after `postier queue flush`.  Default "
                "queue: hold."),
    "requeue": ("-r", "DEFAULT_QUEUES", "Requeued",
                "Queue messages again like postsuper -r: they move to the incoming queue, "
                "where the queue manager takes them as new mail (routes are resolved again "
                "and delivery is tried at once).  Default queues: incoming, active, "
                "deferred, hold."),
}


def _super_parser(verb: str) -> argparse.ArgumentParser:
    _opt, _default, _summary, description = _SUPER_VERBS[verb]
    p = _Parser(prog=f"postier queue {verb}", tool="postsuper", description=description,
                epilog="ID is a queue ID as `postier queue list` shows it (without the * or ! "
                       "mark); ALL (upper case) means every message in the queues; - reads "
                       "queue IDs from standard input, one per line.  Further arguments are "
                       "more queue IDs (when they have the form of a postier queue ID) or "
                       "queue names: maildrop, incoming, active, deferred, hold, corrupt.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (main.cf gives queue_directory)")
    p.add_argument("target", metavar="ID|ALL|-",
                   help="a queue ID, ALL, or - (queue IDs from standard input)")
    p.add_argument("rest", nargs="*", metavar="ID|QUEUE",
                   help="more queue IDs, and the queues to act on")
    return p


def cmd_super(verb: str, argv: list[str]) -> int:
    args = _super_parser(verb).parse_args(argv)
    prog = "postsuper"
    log.setup(prog, progname=prog, stderr=True)
    from postier.queue import tools
    from postier.queue.qid import is_queue_id
    ids = [args.target]
    queue_args: list[str] = []
    for item in args.rest:
        if is_queue_id(item) or item in ("ALL", "-"):
            ids.append(item)
        else:
            queue_args.append(item)
    cfg = _load(prog, args.config_dir)
    qdir = _queue_dir(prog, cfg)
    _setup_log(prog, cfg)
    try:
        queues = tools.check_queue_names(queue_args) if queue_args else None
    except tools.QueueError as e:
        raise _Fatal(prog, str(e)) from None
    _opt, default_name, summary, _ = _SUPER_VERBS[verb]
    if queues is None:
        queues = list(getattr(tools, default_name))
    admin = tools.QueueAdmin(qdir, info=log.info, warn=log.warning)
    one: Callable[[str, list[str]], bool] = getattr(admin, verb)
    count = 0
    try:
        if "ALL" in ids:
            count = getattr(admin, f"{verb}_all")(queues)
        else:
            for qid in ids:
                if qid == "-":
                    for line in sys.stdin.buffer:
                        text = line.decode("utf-8", "surrogateescape").rstrip("\n")
                        count += one(text, queues)
                else:
                    count += one(qid, queues)
    except tools.QueueError as e:
        admin.sync()
        raise _Fatal(prog, str(e)) from None
    finally:
        admin.sync()
    log.info(f"{summary}: {count} message{'' if count == 1 else 's'}")
    return 0


# ---------------------------------------------------------------------------
# flush


def _flush_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="postier queue flush", tool="postqueue",
                description="Ask the queue manager to try every deferred message now, like "
                            "postqueue -f (sendmail -q).  Fails when the mail system is not "
                            "running.")
    p.add_argument("-c", dest="config_dir", metavar="DIR",
                   help="configuration directory (main.cf gives queue_directory)")
    return p


def cmd_flush(argv: list[str]) -> int:
    args = _flush_parser().parse_args(argv)
    prog = "postqueue"
    log.setup(prog, progname=prog, stderr=True)
    cfg = _load(prog, args.config_dir)
    qdir = _queue_dir(prog, cfg, EX_UNAVAILABLE)
    from postier.queue.tools import qmgr_flush
    try:
        ok = qmgr_flush(qdir)
    except PostierError as e:
        raise _Fatal(prog, str(e), EX_UNAVAILABLE) from None
    if not ok:
        raise _Fatal(prog, "Cannot flush mail queue - mail system is down", EX_UNAVAILABLE)
    return 0


# ---------------------------------------------------------------------------

VERBS: dict[str, Callable[[list[str]], int]] = {
    "list": cmd_list,
    "cat": cmd_cat,
    "delete": lambda argv: cmd_super("delete", argv),
    "hold": lambda argv: cmd_super("hold", argv),
    "release": lambda argv: cmd_super("release", argv),
    "requeue": lambda argv: cmd_super("requeue", argv),
    "flush": cmd_flush,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    verb = argv[0]
    if verb not in VERBS:
        sys.stderr.write(f"postier queue: unknown verb {verb!r}\n\n{USAGE}")
        return 2
    try:
        return VERBS[verb](argv[1:])
    except SystemExit as e:     # argparse: --help (0) and usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    except _Fatal as e:
        sys.stdout.flush()
        sys.stderr.write(f"{e.prog}: fatal: {e.text}\n")
        return e.status
