"""Pure-Python twin of postier._native.spameval: per-message loops of the
spam engine's eval rules (postier.content.spam.evals).

    uppercase_counts(lines, jis)   # MIMEEval check_for_uppercase's counts over body lines
    vertical_words(lines)          # BodyEval tvd_vertical_words's value
    rfc822_date_fast(date)         # Util::parse_rfc822_date of a date in the common shape
    date_seconds(y, month, dd, hh, mi, ss, zone)  # its clamps and sum, for any parsed date
    run_calls(calls, ctx, values)  # the engine's eval calls of one area (Run._evals)
    ma_counts(text, uni, counts)   # multipart_alternative_difference's words, counted
    ma_dropped(html, text)         # ... and the words the text part covers
    rcvd_date(line)                # the date of a Received line (check_for_shifted_date)
    qp_lines(lines, qp_count)      # MIMEEval's quoted-printable counts over a part's lines
    rcvd_times(lines)              # the dates of Received lines, as rfc822_date_fast gives them
    text_part_stats(lines)         # MIMEEval's size, illegal-line and &#xNNNN; counts of a part
    illegal_counts(raw)            # HeaderEval check_illegal_chars's byte counts
    forged_received(untrusted, is_private)  # RelayEval's forged trail and helo-ip counts
    at_lines(lines)                # FreeMail's body lines that can hold an address
    a_uris(detail)                 # FreeMail's anchor URIs of the URI detail list
    uri_hosts(detail)              # WLBLEval check_uri_host_listed's hosts of the list

uppercase_counts(lines, jis) -> (length, lower, upper): over the lines that
hold a white-space run between two non-space bytes (Perl /\\S\\s+\\S/) and
do not start with two base64-looking words (/^(?:[A-Za-z0-9+\\/=]{60,76}
){2}/), with the ISO-2022-JP spans (`jis`, a compiled bytes regex) removed
from lines holding an ESC: the summed length, the count of [a-z0-9] and
the count of [A-Z] bytes.

vertical_words(lines) -> int: the highest percentage of spaces to other
bytes (100 when spaces outnumber them) over lines longer than 5 bytes, -1
when there is none.

rfc822_date_fast(date) -> int | None | False: seconds since the epoch for
a date of the shape "[Mon, ]5 Jan 2020 10:11:12 +0000 [(UTC)]" (white
space runs anywhere between the fields), computed as
Util::parse_rfc822_date does (fields clamped, the day past the month's end
taken as the 1st of the next month, the year to 1970..2037, the zone
offset applied, never below 0); None for day 0; False for any other shape
(the caller takes the general way).

date_seconds(y, month, dd, hh, mi, ss, zone) -> int | None: the fields of
a parsed date (ints >= 0 of any size, ValueError for a negative one; zone
any int) as Util::parse_rfc822_date sums them: None
for day < 1 (or a month outside 1..12), hour/minute/second clamped to
23/59/59, a day past the month's end the 1st of the next month, the year
then clamped to 1970..2037, zone (the offset in seconds east of UTC)
taken away, never below 0.  rfc822_date_fast and the general parser
(postier.content.spam.evals) both end here.

ma_counts(text, uni, counts) -> None: adds to counts (word -> count) the
maximal runs of non-space characters of text that hold a word character
(what Perl's grep { /\\w/ } split /\\s+/ keeps), with Python's Unicode
classes of \\s and \\w when uni, else the ASCII ones.

rcvd_date(line) -> str | None: the first match of
(\\s.?\\d+ \\S\\S\\S \\d+ \\d+:\\d+:\\d+ \\S+) in line (ASCII classes), the
date SpamAssassin takes from a Received header line; None when none.

qp_lines(lines, qp_count) -> (qp_count, kept, longest, size): MIMEEval's
per-line loop over the raw lines of a quoted-printable part, the lines
starting with "SPAM: " left out: qp_count (an int, or a float once a line
ended in =09/=20 before trailing white space) plus each line's count of
=XX escapes of printable characters, minus a third of the length of the
=09/=20 run a line ends in, in the order Perl adds them (the same float
operations); kept: how many lines were looked at, longest: the longest of
them, size: their summed length.

rcvd_times(lines) -> (times, slow): for each line whose rcvd_date is not
None, in order, rfc822_date_fast of that date when it is an int, or the
date string itself when rfc822_date_fast is False (the caller parses those
the general way; slow tells whether there is one); lines without a date or
with a None date left out.

illegal_counts(raw) -> (ctrl, illegal): the bytes of raw that are
control characters other than TAB, LF and CR (0x00-0x08, 0x0b, 0x0c,
0x0e-0x1f), and those plus the bytes 0x7f-0xff.

text_part_stats(lines) -> (size, illegal, entities): over a text part's
raw lines, their summed length, how many hold a NUL, CR or a byte above
0x7f (MIMEEval's mime_ascii_text_illegal count), and how many
&#x[0-9A-F]{4}; entities they hold (mime_text_unicode_ratio's count).

forged_received(untrusted, is_private) -> (mf, mih): RelayEval's
_check_for_forged_received over the untrusted relays (objects with ip, by,
rdns, helo strings), with each host name made a domain as
_hostname_to_domain does (the last two labels when the last looks like a
TLD, else the last three): mf counts the relays whose `by` domain has the
shape of a domain and differs from the previous relay's rdns domain (msn.com
after hotmail.com allowed; a localhost rdns of 127.0.0.1 does not count),
mih the relays whose helo is a dotted quad of another /16 than their IP
(is_private(helo) true: not counted).

at_lines(lines) -> list[int]: the indexes, ascending, of the lines (bytes)
that hold "@" or "%40" (the only ones FreeMail's body patterns can match
or blank).

a_uris(detail) -> list: the keys of detail (URI -> info dict), in order,
whose info's "types" holds "a" and not "parsed" (FreeMail's mailto: links).

uri_hosts(detail) -> list: the hosts (the keys of each info's "hosts", when
it has some) of the URIs of detail that do not match ^mailto: (case
insensitive, ASCII letters only), each once, in the order first seen.

The native module gives the same results for every input
(tests/unit/content/test_spam_evals_native.py).  Reads no main.cf
parameters.
"""

from __future__ import annotations

import re

_UC_WORDS = re.compile(rb"\S\s+\S")
_UC_B64 = re.compile(rb"^(?:[A-Za-z0-9+/=]{60,76} ){2}")
_LOWER_DIGITS = b"abcdefghijklmnopqrstuvwxyz0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def uppercase_counts(lines: list[bytes], jis: re.Pattern) -> tuple[int, int, int]:
    kept = []
    for line in lines:
        if not _UC_WORDS.search(line):
            continue
        if _UC_B64.match(line):
            continue
        if b"\x1b" in line:
            line = jis.sub(b"", line)
        kept.append(line)
    # the counts add up over lines: count once on the joined text
    text = b"".join(kept)
    n = len(text)
    return (n, n - len(text.translate(None, _LOWER_DIGITS)),
            n - len(text.translate(None, _UPPER)))


def vertical_words(lines: list[bytes]) -> int:
    v = -1
    for line in lines:
        ln = len(line)
        if ln <= 5:
            continue
        spaces = line.count(b" ")
        non = ln - spaces
        pct = 100 if (spaces > non or non == 0) else int(100 * spaces / non)
        if pct > v:
            v = pct
    return v


_D_FAST = re.compile(r"\s*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),?\s+)?(\d{1,2})\s+"
                     r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{4})\s+"
                     r"(\d\d):(\d\d):(\d\d)\s+([-+])(\d\d)(\d\d)(?:\s+\([A-Za-z]{1,5}\))?\s*", re.A)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}
_CUM_DAYS = ((0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334),
             (0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335))
_MAXD = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_YEAR_DAYS = {1970: 0}
for _y in range(1971, 2039):
    _YEAR_DAYS[_y] = _YEAR_DAYS[_y - 1] + (366 if _leap(_y - 1) else 365)


def rfc822_date_fast(date: str) -> int | None | bool:
    m = _D_FAST.fullmatch(date)
    if m is None:
        return False
    dd, mon, yyyy, hh, mi, ss, sign, tzh, tzm = m.groups()
    y = int(yyyy)
    month = _MONTHS[mon]
    off = (int(tzh) * 60 + int(tzm)) * 60
    return date_seconds(y, month, int(dd), int(hh), int(mi), int(ss), -off if sign == "-" else off)


def date_seconds(y: int, month: int, dd: int, hh: int, mi: int, ss: int, zone: int) -> int | None:
    if y < 0 or month < 0 or dd < 0 or hh < 0 or mi < 0 or ss < 0:
        raise ValueError("a negative date field")
    if dd < 1 or not 1 <= month <= 12:
        return None
    hh = min(hh, 23)
    mi = min(mi, 59)
    ss = min(ss, 59)
    maxd = 29 if month == 2 and _leap(y) else _MAXD[month]
    if dd > maxd:
        dd = 1
        month += 1
        if month > 12:
            month = 1
            y += 1
    y = min(max(y, 1970), 2037)
    t = ((_YEAR_DAYS[y] + _CUM_DAYS[_leap(y)][month - 1] + dd - 1) * 86400
         + hh * 3600 + mi * 60 + ss) - zone
    return 0 if t < 0 else t


def run_calls(calls: list, ctx, values: dict) -> None:
    """Call each eval (name, rule, fn, args) of calls as fn(ctx, rule, *args),
    in order; a true result is a hit: values[name] becomes the result when it
    is a positive number (not a bool), else 1, unless name is in values
    already.  An exception is "no hit" (SpamAssassin's way)."""
    for name, r, fn, args in calls:
        try:
            res = fn(ctx, r, *args)
        except Exception:  # noqa: BLE001 - SpamAssassin: a failing eval is "no hit"
            continue
        if res and name not in values:
            if not isinstance(res, (int, float)) or isinstance(res, bool) or res <= 0:
                res = 1
            values[name] = res


_MA_WORDS_A = re.compile(r"(?<!\S)\S*\w\S*", re.A)
_MA_WORDS_U = re.compile(r"(?<!\S)\S*\w\S*")


def ma_counts(text: str, uni: bool, counts: dict) -> None:
    for w in (_MA_WORDS_U if uni else _MA_WORDS_A).findall(text):
        counts[w] = counts.get(w, 0) + 1


def ma_dropped(html: dict, text: dict) -> int:
    """multipart_alternative_difference's dropped words: those of both
    counts (word -> count, as ma_counts makes them) whose html count the
    text count matches or exceeds (html[w] - text[w] < 1)."""
    return sum(1 for k in text.keys() & html.keys() if html[k] - text[k] < 1)


_RT_DATE = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)", re.A)


def rcvd_date(line: str) -> str | None:
    m = _RT_DATE.search(line)
    return m.group(1) if m else None


_QP_CHAR = re.compile(rb"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])")
_QP_TRAIL = re.compile(rb"((?:=09|=20)+)\s*$")


def qp_lines(lines: list[bytes], qp_count: int | float) -> tuple[int | float, int, int, int]:
    kept = longest = size = 0
    for line in lines:
        if line.startswith(b"SPAM: "):
            continue
        kept += 1
        n = len(line)
        size += n
        if n > longest:
            longest = n
        if b"=" not in line:
            continue
        qp = len(_QP_CHAR.findall(line))
        if qp:
            qp_count += qp
            if line.rstrip().endswith((b"=09", b"=20")):
                m = _QP_TRAIL.search(line)
                if m:
                    qp_count -= len(m.group(1)) / 3
    return qp_count, kept, longest, size


def rcvd_times(lines: list[str]) -> tuple[list, bool]:
    out: list = []
    slow = False
    for line in lines:
        d = rcvd_date(line)
        if d is None:
            continue
        t = rfc822_date_fast(d)
        if t is False:
            out.append(d)
            slow = True
        elif t is not None:
            out.append(t)
    return out, slow


_ILLEGAL_ASCII = re.compile(rb"[\x00\x0d\x80-\xff]")
_UNICODE_ENT = re.compile(rb"&#x[0-9A-F]{4};")


_CTRL = bytes(list(range(0x00, 0x09)) + [0x0b, 0x0c] + list(range(0x0e, 0x20)))
_ILLEGAL = _CTRL + bytes(range(0x7f, 0x100))


def illegal_counts(raw: bytes) -> tuple[int, int]:
    return len(raw) - len(raw.translate(None, _CTRL)), len(raw) - len(raw.translate(None, _ILLEGAL))


def text_part_stats(lines: list[bytes]) -> tuple[int, int, int]:
    size = illegal = ents = 0
    for line in lines:
        size += len(line)
        if _ILLEGAL_ASCII.search(line):
            illegal += 1
        if b"&#x" in line:
            ents += len(_UNICODE_ENT.findall(line))
    return size, illegal, ents


_ALPHA = re.compile(r"[a-zA-Z]", re.A).search
_TLD_SHAPE = re.compile(r"(?:\S{3,}|ie|fr|de)", re.A).search
_FR_DOM = re.compile(r"^\w+(?:[\w.-]+\.)+\w+$", re.A).match
_LOCALHOST = re.compile(r"^localhost(?:\.localdomain)?$", re.A).match
_DOTTED4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$", re.A).match
_CLASS_B = re.compile(r"^(\d+\.\d+)\.\d+\.\d+$", re.A).match


def _h2d(h: str) -> str:
    if not _ALPHA(h):
        return h
    parts = h.split(".")
    while parts and parts[-1] == "":
        parts.pop()
    if len(parts) > 1 and ((len(parts[-1]) >= 3 and parts[-1].isalnum()) or _TLD_SHAPE(parts[-1])):
        return ".".join(parts[-2:])
    if len(parts) > 2:
        return ".".join(parts[-3:])
    return h


def forged_received(untrusted: list, is_private) -> tuple[int, int]:
    mf = mih = 0
    fromip = [r.ip for r in untrusted]
    by = [_h2d(r.by.lower()) for r in untrusted]
    frm: list[str | None] = [_h2d(r.rdns.lower()) for r in untrusted]
    helo = [_h2d(r.helo.lower()) for r in untrusted]
    for i in range(len(untrusted)):
        if not _FR_DOM(by[i]):
            continue
        f = frm[i]
        if f is not None and _LOCALHOST(f) and fromip[i] == "127.0.0.1":
            frm[i] = None
        hlo, fip = helo[i], fromip[i]
        if _DOTTED4(hlo) and _DOTTED4(fip) and fip != hlo:
            hc = _CLASS_B(hlo).group(1)
            fc = _CLASS_B(fip).group(1)
            if hc and fc and hc != fc and not is_private(hlo):
                mih += 1
        prev = frm[i - 1]
        if prev is not None and i > 0 and _FR_DOM(prev) and by[i] != prev and \
                not (by[i] == "msn.com" and prev == "hotmail.com"):
            mf += 1
    return mf, mih


def at_lines(lines: list[bytes]) -> list[int]:
    return [i for i, x in enumerate(lines) if b"@" in x or b"%40" in x]


def a_uris(detail: dict) -> list:
    out = []
    for uri, info in detail.items():
        types = info.get("types") or {}
        if "a" in types and "parsed" not in types:
            out.append(uri)
    return out


_MAILTO_I = re.compile(r"^mailto:", re.I | re.A).match


def uri_hosts(detail: dict) -> list:
    seen: dict = {}
    for uri, info in detail.items():
        # (only "m" and "M" match m in any case: the pattern is tried on
        # the URIs that start with one)
        if uri[:1] in ("m", "M") and _MAILTO_I(uri):
            continue
        for host in info.get("hosts") or {}:
            seen[host] = None
    return list(seen)
