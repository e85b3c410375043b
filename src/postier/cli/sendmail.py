"""`postier-sendmail` (also as `sendmail`, `mailq`, `newaliases`): Postfix's sendmail(1).

The name the command is run as picks the default mode, as in Postfix:
`mailq` lists the queue (-bp), `newaliases` rebuilds the alias database
(-bi), anything else reads a message and queues it (-bm).  Options and
their diagnostics follow Postfix 3.7's sendmail: option parsing stops at
the first non-option argument (or `--`), each recipient argument is parsed
as an address list (`"Joe" <joe@example.com>, jane`), `-t` adds the To:,
Cc: and Bcc: recipients (only the Resent- ones when the message has Resent-
recipient headers), `-f`/`-r` set the sender (default: the login name),
`-F` the full name (default: $NAME or the GECOS field), `-i`/`-oi` turn
off the lone `.` end of input, `-N`, `-R`, `-V` set the DSN NOTIFY, RET and
ENVID, `-B` the body type, `-G` gateway submission (remote rewriting
context), `-C` the configuration directory (or main.cf file), `-oA` the
alias database; `-q` flushes the queue, `-bp` lists it, `-bi`/`-I` run
`postier alias` on $alias_database, `-bs` speaks SMTP on stdin/stdout,
`-bv` reports where each recipient would be delivered, `-bd`/`-bl` start
`postier run` in the background; `-Am -Ac -bh -bH -bm -c -e -h -L -m -O -o7
-o8 -om -oX -p -qTIME -U -x` are accepted and ignored.  Message content:
leading `From ` lines are dropped and line ends converted as
sendmail_fix_line_endings says (always: <CR><LF> -> <LF>).

Errors are `sendmail: fatal: ...` on stderr (also in the mail log when
maillog_file is writable) and, as with Postfix's sendmail (whose run-time
error handler exits with EX_TEMPFAIL whatever status the code asks for),
exit status 75.  The listing and flush modes answer as postqueue
(`postqueue: fatal: ...`, 69 when the mail system is down, 77 when the
user is not authorized), the alias mode as postalias.

Submission: the message is read completely (spooled to $TMPDIR when it
is large), then sent over the pickup socket to the running daemon, which
runs cleanup and commits it to the queue before answering; see
postier.pickup for the protocol and the security design, including the
root-only maildrop/ fallback when the daemon is not running.

Differences from Postfix: -v prints progress on stderr instead of
requesting a delivery report; -bv answers at once on stdout instead of
mailing a report; -qR and -qI flush the whole queue; VERP (-XV) is not
supported; -bs needs the running daemon.

Parameters read: queue_directory, authorized_submit_users,
authorized_mailq_users, authorized_flush_users, mail_owner,
sendmail_fix_line_endings, message_size_limit, header_size_limit,
alias_database, maillog_file, syslog_name.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from postier import log
from postier.errors import PostierError

EX_OK = 0
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_OSERR = 71
EX_TEMPFAIL = 75
EX_NOPERM = 77

GETOPT_LIST = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"

ENQUEUE, NEWALIAS, MAILQ, DAEMON, USER, FLUSHQ, IGNORE = range(1, 8)

NOTIFY_WORDS = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
SPOOL_MEMORY = 4 << 20
ANSWER_TIMEOUT = 3600.0


class Fatal(Exception):
    """`PROG: fatal: text`, exit `status` (PROG defaults to the command name)."""

    def __init__(self, text: str, status: int = EX_TEMPFAIL, prog: str | None = None):
        super().__init__(text)
        self.text = text
        self.status = status
        self.prog = prog


class Options:
    def __init__(self, prog: str):
        self.prog = prog
        self.mode = {"mailq": MAILQ, "newaliases": NEWALIAS, "smtpd": DAEMON}.get(prog, ENQUEUE)
        self.aeof = True
        self.extract = False
        self.verify = False
        self.verbose = 0
        self.sender: str | None = None
        self.full_name: str | None = None
        self.encoding = ""
        self.notify = ""
        self.ret = ""
        self.envid = ""
        self.rewrite_context = "local"
        self.site_to_flush: str | None = None
        self.id_to_flush: str | None = None
        self.qtime: str | None = None
        self.alias_db: str | None = None
        self.config_dir: str | None = None
        self.verp = False
        self.args: list[str] = []


# ---------------------------------------------------------------------------
# options


def _getopt(argv: list[str], prog: str, special: Callable[[list[str], int], int] | None,
            handle: Callable[[str, str | None], None]) -> int:
    """One pass of glibc getopt in "+" mode (as Postfix's GETOPT on Linux)
    over argv[1:]; returns the index of the first operand.  `special` may
    consume an argument itself first (returns the next index, or -1)."""
    spec = GETOPT_LIST
    i = 1
    while i < len(argv):
        if special is not None:
            nxt = special(argv, i)
            if nxt >= 0:
                i = nxt
                continue
        a = argv[i]
        if a == "--":
            return i + 1
        if not a.startswith("-") or a == "-":
            return i
        j = 1
        while j < len(a):
            c = a[j]
            pos = spec.find(c)
            if c == ":" or pos < 0:
                sys.stderr.write(f"{prog}: invalid option -- '{c}'\n")
                handle("?", None)
                j += 1
                continue
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                if j + 1 < len(a):
                    arg = a[j + 1:]
                else:
                    i += 1
                    if i >= len(argv):
                        sys.stderr.write(f"{prog}: option requires an argument -- '{c}'\n")
                        handle("?", None)
                        return i
                    arg = argv[i]
                handle(c, arg)
                break
            handle(c, None)
            j += 1
        i += 1
    return i


def _prescan(argv: list[str], prog: str) -> str | None:
    """Postfix's first pass: only -C (which main.cf to read) matters."""
    found: list[str] = []

    def special(av: list[str], i: int) -> int:
        return i + 1 if av[i] == "-q" else -1

    def handle(c: str, arg: str | None) -> None:
        if c == "C" and arg is not None:
            found.append(os.path.dirname(arg) if os.path.basename(arg) == "main.cf" else arg)
    _getopt(argv, prog, special, handle)
    return found[-1] if found else None


def notify_mask(value: str) -> str:
    """dsn_notify_mask(): the NOTIFY words, or "" (with Postfix's warning)."""
    words: list[str] = []
    for w in value.replace(",", " ").split():
        up = w.upper()
        if up not in NOTIFY_WORDS:
            log.warning(f'unknown DSN NOTIFY command value "{w}" in "{value}"')
            return ""
        if up not in words:
            words.append(up)
    if not words or ("NEVER" in words and len(words) > 1):
        return ""
    return ",".join(w for w in NOTIFY_WORDS if w in words)


def parse_args(argv: list[str], prog: str) -> Options:
    """Postfix's second (real) option pass; Fatal on usage errors."""
    o = Options(prog)

    def special(av: list[str], i: int) -> int:
        a = av[i]
        if a == "-q":
            if o.mode == DAEMON:
                log.warning("ignoring -q option in daemon mode")
            else:
                o.mode = FLUSHQ
            return i + 1
        if a == "-V" and i + 1 < len(av) and len(av[i + 1]) == 2:
            log.warning("option -V is deprecated with Postfix 2.3; specify -XV instead")
            av[i] = a = "-XV"
        if a.startswith("-V") and len(a) == 4:
            log.warning(f"option {a} is deprecated with Postfix 2.3; specify -X{a[1:]} instead")
            av[i] = a = "-X" + a[1:]
        if a == "-XV":
            o.verp = True
            return i + 1
        return -1

    def handle(c: str, arg: str | None) -> None:
        assert arg is not None or c in "GIUcimntvx?"
        if c == "?":
            raise Fatal(f"usage: {prog} [options]")
        if c == "n":
            raise Fatal("-n option not supported", EX_USAGE)
        if c == "B":
            if arg not in ("8BITMIME", "7BIT"):
                raise Fatal("-B option needs 8BITMIME or 7BIT", EX_USAGE)
            o.encoding = arg
        elif c == "F":
            o.full_name = arg
        elif c == "G":
            o.rewrite_context = "remote"
        elif c == "I":
            o.mode = NEWALIAS
        elif c == "N":
            o.notify = notify_mask(arg or "")
            if not o.notify:
                log.warning("bad -N option value -- ignored")
        elif c == "R":
            low = (arg or "").lower()
            if low in ("full", "hdrs"):
                o.ret = low.upper()
            else:
                log.warning("bad -R option value -- ignored")
        elif c == "V":
            assert arg is not None
            if len(arg) > 100:
                log.warning("too long -V option value -- ignored")
            elif not all(32 <= ord(ch) < 127 for ch in arg):
                log.warning("bad syntax in -V option value -- ignored")
            else:
                o.envid = arg
        elif c == "X":
            assert arg is not None
            if not arg.startswith("V"):
                raise Fatal(f"unsupported: -X{arg[:1]}", EX_USAGE)
            o.verp = True
        elif c == "b":
            assert arg is not None
            b = arg[:1]
            if b == "d" or b == "l":
                if o.mode == FLUSHQ:
                    log.warning("ignoring -q option in daemon mode")
                o.mode = DAEMON
            elif b in ("h", "H"):
                o.mode = IGNORE
            elif b == "i":
                o.mode = NEWALIAS
            elif b == "m":
                o.mode = ENQUEUE
            elif b == "p":
                o.mode = MAILQ
            elif b == "s":
                o.mode = USER
            elif b == "v":
                o.verify = True
            else:
                raise Fatal(f"unsupported: -b{b}", EX_USAGE)
        elif c in ("f", "r"):
            o.sender = arg
        elif c == "i":
            o.aeof = False
        elif c == "o":
            assert arg is not None
            if arg.startswith("A"):
                if len(arg) == 1:
                    raise Fatal("-oA requires pathname", EX_USAGE)
                o.alias_db = arg[1:]
            elif arg.startswith("i"):
                o.aeof = False
        elif c == "q":
            assert arg is not None
            if arg[:1].isdigit():
                o.qtime = arg
            elif arg.startswith("R"):
                o.site_to_flush = arg[1:]
                if not o.site_to_flush:
                    raise Fatal("specify: -qRsitename", EX_USAGE)
            elif arg.startswith("I"):
                o.id_to_flush = arg[1:]
                if not o.id_to_flush:
                    raise Fatal("specify: -qIqueueid", EX_USAGE)
            else:
                raise Fatal(f"-q{arg[:1]} is not implemented", EX_USAGE)
        elif c == "t":
            o.extract = True
        elif c == "v":
            o.verbose += 1
        # A C L O U c e h m p x: accepted and ignored (C was handled first)

    args = list(argv)
    first = _getopt(args, prog, special, handle)
    o.args = args[first:]
    if o.extract and o.mode != ENQUEUE:
        raise Fatal("-t can be used only in delivery mode", EX_USAGE)
    if o.site_to_flush and o.mode != ENQUEUE:
        raise Fatal("-qR can be used only in delivery mode", EX_USAGE)
    if o.id_to_flush and o.mode != ENQUEUE:
        raise Fatal("-qI can be used only in delivery mode", EX_USAGE)
    if o.verify:
        if o.extract:
            raise Fatal("-t option cannot be used with -bv", EX_USAGE)
        if o.notify:
            raise Fatal("-N option cannot be used with -bv", EX_USAGE)
        if o.verbose == 1:
            raise Fatal("-v option cannot be used with -bv", EX_USAGE)
    return o


# ---------------------------------------------------------------------------
# addresses and the message


def parse_addresses(text: str) -> list[str]:
    """Internal forms of the addresses in `text` (an RFC 822 address list,
    as Postfix parses sendmail's arguments and -t headers)."""
    from postier import tok822
    return [tok822.internalize(tp.head) for tp in tok822.grep_addrs(tok822.parse(text))]


class InputFilter:
    """sendmail's input loop: drop leading `From ` lines, fix line ends
    (sendmail_fix_line_endings), stop at a lone `.` unless -i.  Bytes in,
    LF-terminated lines out."""

    PARTIAL = 1 << 20

    def __init__(self, fix_eol: str = "always", aeof: bool = True, line_limit: int = 2048):
        self.strip: bool | None = {"always": True, "never": False}.get(fix_eol)
        self.aeof = aeof
        self.line_limit = line_limit
        self.skip_from = True
        self.done = False
        self.pending = b""
        self.partial = False        # the pending line was partly written out already

    def _line(self, raw: bytes) -> bytes:
        if self.strip is None:
            self.strip = raw.endswith(b"\r")
        if self.skip_from:
            if (not self.partial and len(raw) <= self.line_limit
                    and raw.lstrip(b">").startswith(b"From ")):
                return b""
            self.skip_from = False
        if self.strip:
            raw = raw.rstrip(b"\r")
        if self.aeof and not self.partial and raw == b".":
            self.done = True
            return b""
        self.partial = False
        return raw + b"\n"

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        data = self.pending + data
        out: list[bytes] = []
        start = 0
        while not self.done:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            out.append(self._line(data[start:nl]))
            start = nl + 1
        self.pending = b"" if self.done else data[start:]
        if len(self.pending) > self.PARTIAL:
            # a very long line (never a `From ` line to drop): pass its start
            # on, keep trailing CRs for the line end
            self.skip_from = False
            keep = len(self.pending) - len(self.pending.rstrip(b"\r"))
            cut = len(self.pending) - keep
            out.append(self.pending[:cut])
            self.pending = self.pending[cut:]
            self.partial = True
        return b"".join(out)

    def finish(self) -> bytes:
        if self.done or (not self.pending and not self.partial):
            return b""
        line, self.pending = self.pending, b""
        return self._line(line)


class HeaderExtractor:
    """-t: the recipients of the primary header's To:, Cc:, Bcc: (or, once
    a Resent- recipient header was seen, only the Resent- ones)."""

    def __init__(self, header_size_limit: int = 102400):
        from postier.cleanup.headers import HeaderTable
        self.table = HeaderTable(())
        self.limit = header_size_limit
        self.recipients: list[str] = []
        self.resent_recipients: list[str] = []
        self.resent = False
        self.done = False
        self.current: bytearray | None = None
        self.first = True
        self.error = ""

    def _flush(self) -> None:
        from postier.cleanup.headers import EXTRACT, RECIP, RR
        if self.current is None:
            return
        header = bytes(self.current)
        self.current = None
        opts = self.table.find(header)
        if opts is None or not (opts.flags & RECIP and opts.flags & EXTRACT):
            return
        if self.resent and not opts.flags & RR:
            return
        if opts.flags & RR:
            target = self.resent_recipients
            self.resent = True
        else:
            target = self.recipients
        value = header.split(b":", 1)[1].decode("utf-8", "surrogateescape")
        target.extend(parse_addresses(value))

    def line(self, line: bytes) -> None:
        """One complete output line (with its LF)."""
        if self.done:
            return
        from postier.cleanup.headers import header_name_len
        text = line[:-1] if line.endswith(b"\n") else line
        if self.current is not None and text[:1] in (b" ", b"\t"):
            self.current += b"\n" + text
        elif not self.first or text[:1] not in (b" ", b"\t"):
            self.first = False
            self._flush()
            if header_name_len(text) > 0:
                self.current = bytearray(text)
            else:
                self.done = True
                return
        else:
            self.done = True
            return
        if self.current is not None and len(self.current) > self.limit:
            self.error = "message header length exceeds safety limit"
            self.done = True

    def finish(self) -> list[str]:
        if not self.done:
            self._flush()
            self.done = True
        return self.resent_recipients if self.resent else self.recipients


def read_message(stream: BinaryIO, filt: InputFilter, extractor: HeaderExtractor | None,
                 size_limit: int, spool: BinaryIO) -> int:
    """Copy stdin through the filter into `spool`; returns the size.  Fatal
    texts: 'message file too big', the extractor's error."""
    size = 0
    lines_pending = b""

    def emit(data: bytes) -> None:
        nonlocal size, lines_pending
        if not data:
            return
        if extractor is not None and not extractor.done:
            buf = lines_pending + data
            start = 0
            while not extractor.done:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                extractor.line(buf[start:nl + 1])
                start = nl + 1
            lines_pending = b"" if extractor.done else buf[start:]
            if len(lines_pending) > extractor.limit:
                extractor.error = "message header length exceeds safety limit"
            if extractor.error:
                raise Fatal(f"unable to extract recipients: {extractor.error}")
        spool.write(data)
        size += len(data)
        if size_limit and size > size_limit:
            raise Fatal("message file too big")

    while not filt.done:
        chunk = stream.read(65536)
        if not chunk:
            break
        emit(filt.feed(chunk))
    emit(filt.finish())
    return size


# ---------------------------------------------------------------------------
# the command


class Sendmail:
    def __init__(self, argv: list[str]):
        self.argv = argv
        self.prog = os.path.basename(argv[0]) if argv and argv[0] else "sendmail"
        self.uid = os.getuid()
        self.cfg: Any = None
        self.config_dir = ""
        self.qdir = ""

    # -- setup ------------------------------------------------------------

    def load(self, config_dir: str | None) -> None:
        from postier.config import load_config, resolve_config_dir
        try:
            self.config_dir = resolve_config_dir(config_dir)
            self.cfg = load_config(self.config_dir)
            maillog = self.cfg.get("maillog_file") or None
            syslog_name = self.cfg.get("syslog_name") or "postier"
            self.qdir = self.cfg.get("queue_directory")
        except PostierError as e:
            raise Fatal(str(e)) from None
        if maillog:
            try:
                os.close(os.open(maillog, os.O_WRONLY | os.O_APPEND))
            except OSError:
                maillog = None
        log.setup("sendmail", progname=self.prog, stderr=True, maillog_file=maillog,
                  syslog_name=syslog_name)
        try:
            if not stat.S_ISDIR(os.stat(self.qdir).st_mode):
                raise Fatal(f"chdir {self.qdir}: Not a directory", EX_UNAVAILABLE)
        except OSError as e:
            raise Fatal(f"chdir {self.qdir}: {e.strerror}", EX_UNAVAILABLE) from None

    def get(self, name: str) -> Any:
        try:
            return self.cfg.get(name)
        except PostierError as e:
            raise Fatal(str(e)) from None

    def get_text(self, name: str) -> str:
        try:
            return self.cfg.get_str(name)
        except PostierError as e:
            raise Fatal(str(e)) from None

    def queue_owner(self) -> bool:
        """root, or the user who owns the queue directory (private instances)."""
        euid = os.geteuid()
        if euid == 0:
            return True
        try:
            return os.stat(self.qdir).st_uid == euid
        except OSError:
            return False

    def connect(self) -> Any:
        """A Connection to the pickup service, or None when it does not run."""
        from postier.pickup.protocol import Connection
        try:
            conn = Connection.open(self.qdir)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as e:
            raise Fatal(f"connect to {os.path.join(self.qdir, 'public/pickup')}: "
                        f"{e.strerror or e}") from None
        # the other end must be the mail system: root or the queue owner
        server = conn.server_uid()
        try:
            owner = os.stat(self.qdir).st_uid
        except OSError:
            owner = 0
        if server not in (0, owner):
            conn.close()
            raise Fatal(f"{self.qdir}/public/pickup is served by uid {server}, not by the "
                        "mail system -- refusing to submit")
        return conn

    def check_acl(self, param: str, what: str) -> None:
        from postier.pickup.users import AclError, check_user_acl
        try:
            name = check_user_acl(param, self.get_text(param), self.uid)
        except AclError as e:
            raise Fatal(str(e)) from None
        if name is not None:
            raise Fatal(f"User {name}({self.uid}) is not allowed to {what}", EX_NOPERM)

    # -- modes ------------------------------------------------------------

    def run(self) -> int:
        config_dir = _prescan(self.argv, self.prog)
        self.load(config_dir)
        o = parse_args(self.argv, self.prog)
        if o.qtime is not None and o.mode != DAEMON:
            return EX_OK
        if o.verp:
            raise Fatal("-XV: VERP is not supported by postier", EX_USAGE)
        if o.mode == ENQUEUE:
            if o.site_to_flush is not None:
                if o.args:
                    raise Fatal("flush site requires no recipient", EX_USAGE)
                return self.flush()
            if o.id_to_flush is not None:
                if o.args:
                    raise Fatal("flush queue_id requires no recipient", EX_USAGE)
                return self.flush()
            return self.enqueue(o)
        if o.mode == MAILQ:
            if o.args:
                raise Fatal("display queue mode requires no recipient", EX_USAGE)
            return self.mailq()
        if o.mode == FLUSHQ:
            if o.args:
                raise Fatal("flush queue mode requires no recipient", EX_USAGE)
            return self.flush()
        if o.mode == DAEMON:
            if o.args:
                raise Fatal("daemon mode requires no recipient", EX_USAGE)
            return self.daemon()
        if o.mode == NEWALIAS:
            if o.args:
                raise Fatal("alias initialization mode requires no recipient", EX_USAGE)
            return self.newaliases(o)
        if o.mode == USER:
            if o.args:
                raise Fatal("stand-alone mode requires no recipient", EX_USAGE)
            self.check_acl("authorized_submit_users", "submit mail")
            return self.smtp()
        return EX_OK

    def build_request(self, o: Options) -> Any:
        from postier.pickup.protocol import Request
        from postier.pickup.users import full_name, login_name
        if o.sender is not None:
            addrs = parse_addresses(o.sender)
            if len(addrs) > 1:
                log.warning(f"-f option specified malformed sender: {o.sender}")
            sender = addrs[0] if addrs else ""
        else:
            name = login_name(self.uid)
            if name is None:
                raise Fatal(f"no login name found for user ID {self.uid}", EX_OSERR)
            sender = name
        recipients: list[str] = []
        for arg in o.args:
            addrs = parse_addresses(arg)
            recipients.extend(addrs if addrs else [""])
        fname = o.full_name if o.full_name is not None else full_name(self.uid)
        return Request(mode="verify" if o.verify else "submit", sender=sender,
                       full_name=fname or "", recipients=recipients, notify=o.notify,
                       ret=o.ret, envid=o.envid, body_type=o.encoding,
                       rewrite_context=o.rewrite_context, verbose=o.verbose)

    def enqueue(self, o: Options) -> int:
        self.check_acl("authorized_submit_users", "submit mail")
        req = self.build_request(o)
        who = f"{req.sender}({self.uid})"
        if o.verify:
            return self.verify(req)
        if not o.extract and not req.recipients:
            raise Fatal(f"{who}: Recipient addresses must be specified on the command line "
                        "or via the -t option", EX_USAGE)
        fix = self.get_text("sendmail_fix_line_endings")
        if fix not in ("always", "strict", "never"):
            raise Fatal(f"invalid sendmail_fix_line_endings value: {fix}", EX_USAGE)
        filt = InputFilter(fix, o.aeof, int(self.get("line_length_limit")))
        extractor = HeaderExtractor(int(self.get("header_size_limit"))) if o.extract else None
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        arrival = time.time()
        try:
            read_message(sys.stdin.buffer, filt, extractor,
                         int(self.get("message_size_limit")), spool)
        except Fatal as e:
            raise Fatal(f"{who}: {e.text}", e.status) from None
        except OSError as e:
            raise Fatal(f"{who}: error reading input: {e.strerror}") from None
        if extractor is not None:
            req.extracted = extractor.finish()
        if not req.recipients and not req.extracted:
            if o.extract:
                raise Fatal(f"{who}: No recipient addresses found in message header", EX_USAGE)
            raise Fatal(f"{who}: Recipient addresses must be specified on the command line "
                        "or via the -t option", EX_USAGE)
        conn = self.connect()
        if conn is None:
            return self.maildrop(req, spool, arrival, who)
        return self.send(conn, req, spool, who)

    def send(self, conn: Any, req: Any, spool: BinaryIO, who: str) -> int:
        from postier.pickup import protocol as P
        try:
            try:
                try:
                    request = P.encode_request(req)
                except P.FrameError:
                    raise Fatal(f"{who}: too many recipients for one message") from None
                conn.send(request)
                spool.seek(0)
                while True:
                    chunk = spool.read(P.DATA_CHUNK)
                    if not chunk:
                        break
                    conn.send_data(chunk)
                conn.send_end()
            except OSError:
                pass        # the service may have answered early: read its answer
            conn.sock.settimeout(ANSWER_TIMEOUT)
            answer = conn.read_answer()
        except (P.PeerGone, P.FrameError, OSError) as e:
            raise Fatal(f"{who}: lost connection with the pickup service: {e}") from None
        finally:
            conn.close()
        if answer.status != P.OK:
            raise Fatal(answer.text or f"{who}: submission refused")
        if req.verbose:
            log.info(f"{answer.queue_id}: queued")
        return EX_OK

    def maildrop(self, req: Any, spool: BinaryIO, arrival: float, who: str) -> int:
        """The daemon is not running: only root (or the queue owner) may
        leave the message in maildrop/ for the pickup service."""
        mdir = os.path.join(self.qdir, "maildrop")
        if not self.queue_owner():
            raise Fatal(f"{who}: unable to submit mail: the mail system is not running "
                        f"(connect to {self.qdir}/public/pickup: no pickup service)")
        from postier.queue.file import Envelope, QueueWriter, Recipient
        try:
            os.makedirs(mdir, mode=0o700, exist_ok=True)
            st = os.lstat(mdir)
            if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) & 0o022:
                raise Fatal(f"{who}: {mdir}: unsafe maildrop directory (mode "
                            f"{stat.S_IMODE(st.st_mode):04o})")
            w = QueueWriter(mdir, mode=0o600)
            try:
                spool.seek(0)
                while True:
                    chunk = spool.read(1 << 20)
                    if not chunk:
                        break
                    w.write(chunk)
                rcpts = [Recipient(address=a, dsn_notify=req.notify) for a in req.recipients]
                rcpts += [Recipient(address=a, dsn_notify=req.notify, segment="extracted")
                          for a in req.extracted]
                env = Envelope(queue_id=w.queue_id, arrival=arrival, sender=req.sender,
                               recipients=rcpts, dsn_envid=req.envid, dsn_ret=req.ret,
                               body_type=req.body_type, rewrite_context=req.rewrite_context,
                               attrs={"full_name": req.full_name} if req.full_name else {})
                w.commit(env)
            except BaseException:
                w.abort()
                raise
        except OSError as e:
            raise Fatal(f"{who}: error writing queue file: {e.strerror}") from None
        log.warning("unable to look up public/pickup: No such file or directory")
        if req.verbose:
            log.info(f"{w.queue_id}: queued in maildrop/ for the pickup service")
        return EX_OK

    def verify(self, req: Any) -> int:
        from postier.pickup import protocol as P
        if not req.recipients:
            raise Fatal(f"{req.sender}({self.uid}): Recipient addresses must be specified on "
                        "the command line or via the -t option", EX_USAGE)
        conn = self.connect()
        if conn is not None:
            try:
                conn.send_request(req)
                conn.sock.settimeout(ANSWER_TIMEOUT)
                answer = conn.read_answer(_stdout)
            except (P.PeerGone, P.FrameError, OSError) as e:
                raise Fatal(f"lost connection with the pickup service: {e}") from None
            finally:
                conn.close()
            if answer.status != P.OK:
                raise Fatal(answer.text)
            return EX_OK
        from postier.cleanup import CleanupSettings
        from postier.pickup.verify import verify_report
        try:
            text = verify_report(self.cfg, CleanupSettings.from_config(self.cfg), req)
        except (PostierError, OSError) as e:
            raise Fatal(str(e)) from None
        _stdout(text.encode("utf-8", "surrogateescape"))
        return EX_OK

    def mailq(self) -> int:
        if self.queue_owner():
            from postier.cli import queue_cmd
            return queue_cmd.main(["list", "-c", self.config_dir])
        self.postqueue_acl("authorized_mailq_users", "view the mail queue")
        return self.postqueue_request("mailq", "Queue report unavailable - mail system is down")

    def flush(self) -> int:
        if self.queue_owner():
            from postier.cli import queue_cmd
            return queue_cmd.main(["flush", "-c", self.config_dir])
        self.postqueue_acl("authorized_flush_users", "flush the mail queue")
        return self.postqueue_request("flush", "Cannot flush mail queue - mail system is down")

    def postqueue_acl(self, param: str, what: str) -> None:
        from postier.pickup.users import is_privileged
        if is_privileged(self.uid, str(self.get("mail_owner"))):
            return
        try:
            self.check_acl(param, what)
        except Fatal as e:
            e.prog = "postqueue"
            raise

    def postqueue_request(self, mode: str, down: str) -> int:
        from postier.pickup import protocol as P
        try:
            conn = self.connect()
        except Fatal as e:
            raise Fatal(e.text, EX_UNAVAILABLE, "postqueue") from None
        if conn is None:
            raise Fatal(down, EX_UNAVAILABLE, "postqueue")
        try:
            conn.send_request(P.Request(mode=mode))
            conn.sock.settimeout(ANSWER_TIMEOUT)
            answer = conn.read_answer(_stdout)
        except (P.PeerGone, P.FrameError, OSError):
            raise Fatal(down, EX_UNAVAILABLE, "postqueue") from None
        finally:
            conn.close()
        if answer.status != P.OK:
            status = EX_NOPERM if "is not allowed" in answer.text else EX_UNAVAILABLE
            raise Fatal(answer.text, status, "postqueue")
        return EX_OK

    def newaliases(self, o: Options) -> int:
        from postier.config import split_list
        value = o.alias_db if o.alias_db is not None else self.get_text("alias_database")
        maps = split_list(value)
        if not maps:
            return EX_OK
        from postier.cli import alias_cmd
        return alias_cmd.main(["-c", self.config_dir, *maps])

    def daemon(self) -> int:
        conn = self.connect()
        if conn is not None:
            conn.close()
            log.warning("the mail system is already running")
            return EX_OK
        if not self.queue_owner():
            raise Fatal(f"the mail system can be started only by root or by the owner of "
                        f"{self.qdir}", EX_NOPERM)
        import subprocess
        try:
            subprocess.Popen([sys.executable, "-m", "postier.cli.main", "run", "-c",
                              self.config_dir],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError as e:
            raise Fatal(f"unable to start postier run: {e.strerror}") from None
        return EX_OK

    def smtp(self) -> int:
        """-bs: relay stdin/stdout to an SMTP session of the daemon."""
        from postier.pickup import protocol as P
        conn = self.connect()
        if conn is None:
            raise Fatal("unable to start an SMTP session: the mail system is not running "
                        f"(connect to {self.qdir}/public/pickup: no pickup service)")
        try:
            conn.send_request(P.Request(mode="smtp"))
            answer = conn.read_answer()
        except (P.PeerGone, P.FrameError, OSError) as e:
            conn.close()
            raise Fatal(f"lost connection with the pickup service: {e}") from None
        if answer.status != P.OK:
            conn.close()
            raise Fatal(answer.text)
        sock = conn.sock
        sock.settimeout(None)

        def pump_in() -> None:
            try:
                while True:
                    data = os.read(0, 65536)
                    if not data:
                        break
                    sock.sendall(data)
            except OSError:
                pass
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        threading.Thread(target=pump_in, daemon=True).start()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                _stdout(data)
        except OSError:
            pass
        finally:
            conn.close()
        return EX_OK


def _stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def main(argv: list[str] | None = None) -> int:
    """Run as `sendmail`, `mailq` or `newaliases` (argv[0] decides).  A
    sendmail fatal error exits with 75 whatever status the Fatal names
    (Postfix's sendmail does the same; the named status documents what
    Postfix's code asks for); postqueue-style errors keep their status."""
    argv = list(sys.argv if argv is None else argv)
    cmd = Sendmail(argv)
    log.setup("sendmail", progname=cmd.prog, stderr=True)
    os.umask(0o022)
    try:
        return cmd.run()
    except Fatal as e:
        try:
            sys.stdout.flush()
        except OSError:
            pass
        prog = e.prog or cmd.prog
        if e.prog and e.prog != cmd.prog:
            sys.stderr.write(f"{prog}: fatal: {e.text}\n")
        else:
            log.LOG.emit("fatal", e.text)
        return EX_TEMPFAIL if e.prog is None else e.status
    except KeyboardInterrupt:
        return EX_TEMPFAIL
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
