"""`postier qshape`: queue domain and age distribution, like Postfix's qshape(1).

    postier qshape [-s] [-p] [-m min_subdomains] [-b bucket_count] [-t bucket_time]
                   [-l] [-w terminal_width] [-N batch_msg_count] [-n batch_top_domains]
                   [-c config_dir] [queue_name ...]

A port of qshape 3.7 (the Perl script): one row per recipient domain (-s:
sender domain; -p: also parent domains with at least -m subdomains, shown
with a leading dot), a TOTAL row, and one column per age bucket: the first
covers [0, bucket_time) minutes (default 5), each next one twice as long
(-l: equally long), the last has no upper limit (default 10 buckets).  Rows
are sorted by total count, then by name length; the table is right-aligned
to the terminal width (default 80, -w widens it) and long domain names are
cut with a leading `+`.  Default queues: incoming and active; names are
relative to queue_directory unless absolute.  When standard output is a
terminal only the top -n (20) rows are shown, and intermediate results are
shown every -N (1000) messages.

Messages are counted when their envelope decodes and they have at least one
recipient still to deliver; delivered recipients are not counted (as
Postfix's qshape, which sees only undelivered recipient records).

Parameters read: queue_directory.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

PROG = "qshape"

USAGE = (
    "Usage: qshape [ -s ] [ -p ] [ -m <min_subdomains> ] [ -l ]\n"
    "\t[ -b <bucket_count> ] [ -t <bucket_time> ] [ -w <terminal_width> ]\n"
    "\t[ -N <batch_msg_count> ] [ -n <batch_top_domains> ]\n"
    "\t[ -c <config_directory> ] [ <queue_name> ... ]\n"
)

HELP = USAGE + """\
(postier qshape)

The 's' option shows sender domain counts.
The 'p' option shows address counts by for parent domains.
Parent domains are shown with a leading '.' before the domain name.
Parent domains are only shown if the domain is not a TLD, and at
least <min_subdomains> (default 5) subdomains are shown in the output.

The bucket age ranges in units of <bucket_time> minutes are
[0,1), [1,2), [2,4), [4,8), [8, 16), ... i.e.:
\tthe first bucket is [0, bucket_time) minutes
\tthe second bucket is [bucket_time, 2*bucket_time) minutes
\tthe third bucket is [2*bucket_time, 4*bucket_time) minutes...
'-l' makes the ages linear, the number of buckets shown is <bucket_count>

The default summary is for the incoming and active queues. An explicit
list of queue names can be given on the command line. Non-absolute queue
names are interpreted relative to the queue_directory of main.cf in
<config_directory> (-c, else the default configuration directory).
"""

OPTS_WITH_ARG = "cwbtmnN"
OPTS_FLAGS = "lhps"

_QFILE = re.compile(r"^[A-Za-z0-9]{6,}$")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


_now = time.time       # the reference clock (tests replace it)


class UsageError(Exception):
    pass


@dataclass
class Options:
    senders: bool = False
    parents: bool = False
    linear: bool = False
    help: bool = False
    config_dir: str | None = None
    width: int = 80
    buckets: int = 10
    tick: float = 5
    min_sub: float = 5
    batch_msg_count: int | None = None
    batch_top_domains: int | None = None
    queues: list[str] = field(default_factory=lambda: ["incoming", "active"])


def _number(opt: str, value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise UsageError(f"-{opt}: not a number: {value}") from None
    if not math.isfinite(n):
        raise UsageError(f"-{opt}: not a number: {value}")
    return n


def parse_args(argv: list[str]) -> Options:
    """Perl Getopt::Std getopts("lhc:psw:b:t:m:n:N:") semantics: bundled
    flags, option values attached or in the next argument, `--` ends the
    options, the first non-option argument too."""
    raw: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg == "--help":
            raw["h"] = True
            i += 1
            continue
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            ch = arg[j]
            if ch in OPTS_WITH_ARG:
                value = arg[j + 1:]
                if not value:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"option requires an argument -- {ch}")
                    value = argv[i]
                raw[ch] = value
                break
            if ch in OPTS_FLAGS:
                raw[ch] = True
                j += 1
                continue
            raise UsageError(f"Unknown option: {ch}")
        i += 1
    opts = Options()
    opts.senders = bool(raw.get("s"))
    opts.parents = bool(raw.get("p"))
    opts.linear = bool(raw.get("l"))
    opts.help = bool(raw.get("h"))
    if "c" in raw:
        opts.config_dir = str(raw["c"])
    # qshape ignores values out of range: -w at most 80, -b/-t/-m not > 0
    if "w" in raw:
        w = _number("w", str(raw["w"]))
        if w > 80:
            opts.width = int(w)
    if "b" in raw:
        b = _number("b", str(raw["b"]))
        if b > 0:
            opts.buckets = int(b) if b == int(b) else _bad_int("b", str(raw["b"]))
    if "t" in raw:
        t = _number("t", str(raw["t"]))
        if t > 0:
            opts.tick = t
    if "m" in raw:
        m = _number("m", str(raw["m"]))
        if m > 0:
            opts.min_sub = m
    if "N" in raw:
        opts.batch_msg_count = int(_number("N", str(raw["N"])))
    if "n" in raw:
        opts.batch_top_domains = int(_number("n", str(raw["n"])))
    if argv[i:]:
        opts.queues = list(argv[i:])
    return opts


def _bad_int(opt: str, value: str) -> int:
    raise UsageError(f"-{opt}: not a whole number: {value}")


def perl_num(x: float) -> str:
    """A number as Perl prints it (%.15g)."""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.15g}"


def domain_of(address: str) -> str:
    """qshape's domain key: lower-cased (ASCII), everything up to the last
    '@' removed, '..' collapsed, one leading and one trailing dot dropped."""
    a = address.translate(_ASCII_LOWER)
    if a == "":
        return "MAILER-DAEMON"
    a = re.sub(r"^.*@", "", a, count=1, flags=re.S)
    a = re.sub(r"\.\.", ".", a)
    a = re.sub(r"\.?(.+?)\.?$", r"\1", a, count=1, flags=re.S)
    return a


_PARENT = re.compile(r"^(?:\.)?[^.]+\.(.*\.)", re.S)


class Shape:
    """The counters: q[domain] = [total, bucket1..bucketN], sub[parent]."""

    def __init__(self, opts: Options, now: float):
        self.opts = opts
        self.now = now
        self.q: dict[str, list[int]] = {}
        self.sub: dict[str, int] = {}
        self.messages = 0

    def _row(self, key: str) -> list[int]:
        row = self.q.get(key)
        if row is None:
            row = self.q[key] = [0] * (self.opts.buckets + 1)
        return row

    def bucket(self, qt: float) -> int:
        m = (self.now - qt) / (60 * self.opts.tick)
        if m < 1:
            return 1
        b = int(m + 1) if self.opts.linear else 2 + int(math.log(m) / math.log(2))
        return b if b < self.opts.buckets else self.opts.buckets

    def add(self, arrival: float, sender: str, recipients: list[str]) -> None:
        b = self.bucket(arrival)
        total = self._row("TOTAL")
        for addr in ([sender] if self.opts.senders else recipients):
            total[0] += 1
            total[b] += 1
            a = domain_of(addr)
            new = False
            while True:
                row = self._row(a)
                row[0] += 1
                old = row[0] > 1
                row[b] += 1
                if new:
                    self.sub[a] = self.sub.get(a, 0) + 1
                new = not old
                if not self.opts.parents:
                    break
                m = _PARENT.match(a)
                if not m:
                    break
                a = "." + m.group(1) + a[m.end():]
        self.messages += 1

    def render(self, top: int = 0) -> str:
        opts = self.opts
        bnum = opts.buckets
        total = self._row("TOTAL")
        heads: list[str] = []
        widths: list[int] = []
        dw = opts.width
        t: float | str = 0
        i = 0
        while i <= bnum:
            count_len = len(str(total[i]))
            h = "T" if i == 0 else (t if isinstance(t, str) else perl_num(t))
            length = max(count_len, len(h))
            length = length + 1 if length > 2 else 3
            heads.append(h)
            widths.append(length)
            dw -= length
            i += 1
            if i < bnum:
                assert not isinstance(t, str)
                t = t + (t if (t and not opts.linear) else opts.tick)
            else:
                t = f"{t if isinstance(t, str) else perl_num(t)}+"
        dw = max(dw, 18)
        out = [self._pdomain("", heads, widths, dw)]
        keys = sorted(self.q, key=lambda d: (-self.q[d][0], _blen(d), d != "TOTAL", d))
        n = 0
        for d in keys:
            if d.startswith(".") and self.sub.get(d, 0) < opts.min_sub:
                continue
            n += 1
            if top > 0 and n > top:
                break
            out.append(self._pdomain(d, [str(c) for c in self.q[d]], widths, dw))
        return "".join(out)

    @staticmethod
    def _pdomain(d: str, cells: list[str], widths: list[int], dw: int) -> str:
        raw = d.encode("utf-8", "surrogateescape")
        n = len(raw)
        if n > dw:
            if raw[:1] == b".":
                raw = b".+" + raw[n - dw + 2:]
            else:
                raw = b"+" + raw[n - dw + 1:]
        else:
            raw = b" " * (dw - n) + raw
        head = raw.decode("utf-8", "surrogateescape")
        return head + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + "\n"


def _blen(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def queue_files(paths: Iterable[tuple[str, str]]) -> Iterator[str]:
    """Every file below each (name, path) queue whose name looks like a
    queue ID (File::Find's directory order is not kept: names are sorted)."""
    for name, top in paths:
        if not os.path.exists(top):
            sys.stderr.write(f"{PROG}: Can't stat {name}: No such file or directory\n")
            continue
        if os.path.isfile(top):
            if _QFILE.match(os.path.basename(top)):
                yield top
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if _QFILE.match(name):
                    yield os.path.join(root, name)


def collect(shape: Shape, paths: Iterable[tuple[str, str]], on_batch=None, batch: int = 0) -> None:
    from postier.queue.file import CorruptQueueFile, read_envelope
    for path in queue_files(paths):
        try:
            if os.path.islink(path):
                continue
            env, _ = read_envelope(path)
        except CorruptQueueFile:
            continue                # qshape skips what is not a queue file
        rcpts = [r.address for r in env.recipients if not r.done]
        if not rcpts:
            continue
        shape.add(env.arrival, env.sender, rcpts)
        if batch > 0 and on_batch and shape.messages % batch == 0:
            on_batch()


def main(argv: list[str]) -> int:
    try:
        opts = parse_args(argv)
    except UsageError as e:
        sys.stderr.write(f"{PROG}: {e}\n{USAGE}")
        return 255
    if opts.help:
        sys.stdout.write(HELP)
        return 0
    paths: list[tuple[str, str]] = []
    qdir: str | int | None = None
    for name in opts.queues:
        if os.path.isabs(name):
            paths.append((name, name))
            continue
        if qdir is None:
            qdir = _queue_directory(opts.config_dir)
            if isinstance(qdir, int):
                return qdir
        assert isinstance(qdir, str)
        paths.append((name, os.path.join(qdir, name)))
    tty = sys.stdout.isatty()
    if tty:
        batch = 1000 if opts.batch_msg_count is None else opts.batch_msg_count
        top = 20 if opts.batch_top_domains is None else opts.batch_top_domains
        cls = "\033[H\033[2J"
    else:
        batch, top, cls = 0, 0, ""
    shape = Shape(opts, _now())

    def show() -> None:
        sys.stdout.write(cls + shape.render(top))
        sys.stdout.flush()

    collect(shape, paths, on_batch=show, batch=batch)
    out = cls + shape.render(top)
    sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
    return 0


def _queue_directory(config_dir: str | None) -> str | int:
    from postier.config import load_config
    from postier.errors import PostierError
    try:
        qdir = load_config(config_dir).get("queue_directory")
    except PostierError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    if not os.path.isdir(qdir):
        err = os.strerror(2) if not os.path.exists(qdir) else os.strerror(20)
        sys.stderr.write(f"{PROG}: chdir({qdir}): {err}\n")
        return 2
    return qdir
