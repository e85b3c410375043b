"""The queue manager's log lines, in Postfix's exact shape (pflogsumm parses them).

    QUEUEID: from=<sender>, size=N, nrcpt=N (queue active)
    QUEUEID: to=<rcpt>, orig_to=<orig>, relay=host[ip]:port, [conn_use=N, ]delay=1.2,
        delays=0.1/0.01/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)
    QUEUEID: from=<sender>, status=expired, returned to sender
    QUEUEID: removed

`format_tv()` is Postfix's format_tv.c: two significant digits, at most
$delay_logging_resolution_limit decimals, integral seconds from 100 s up.
`orig_to=` appears when the original recipient differs (case-insensitively)
from the recipient, as log_adhoc.c does.  Every log line of one delivery
carries the tag of the transport's program (smtp, lmtp, error, discard,
...), or of `-o syslog_name` when master.cf sets one.

Parameters read: delay_logging_resolution_limit (through the caller).
"""

from __future__ import annotations

MILLION = 1_000_000
_POW10 = (1, 10, 100, 1000, 10000, 100000, 1000000)


def format_tv(seconds: float, sig_dig: int = 2, max_dig: int = 2) -> str:
    """format_tv(): print a duration with limited precision."""
    if seconds < 0:
        seconds = 0.0
    sec = int(seconds)
    usec = int(round((seconds - sec) * MILLION))
    if usec >= MILLION:
        sec += 1
        usec -= MILLION
    ures = MILLION // _POW10[max_dig]
    wid = _POW10[sig_dig]
    if ures < MILLION:
        if sec > 0:
            n = 1
            while sec >= n and n <= wid // 10:
                n *= 10
            ures = (MILLION // wid) * n
        else:
            while usec >= wid * ures:
                ures *= 10
    if ures > 1:
        usec += ures // 2
        if usec >= MILLION:
            sec += 1
            usec -= MILLION
    out = str(sec)
    if usec >= ures:
        digits = []
        rem = usec
        n = MILLION // 10
        while rem >= ures and n > 0:
            digits.append("0123456789"[rem // n])
            rem %= n
            n //= 10
        out += "." + "".join(digits)
    return out


def delivery_line(qid: str, address: str, orig: str, relay: str, delay: float,
                  delays: tuple[float, float, float, float], dsn: str, status: str,
                  reason: str, max_dig: int = 2, conn_use: int = 0) -> str:
    """log_adhoc(): the `to=<...>` line of one recipient (conn_use > 1: the
    connection had been used before, `conn_use=N` follows relay=)."""
    parts = [f"{qid}: to=<{address}>"]
    if orig and orig.lower() != address.lower():
        parts.append(f", orig_to=<{orig}>")
    parts.append(f", relay={relay}")
    if conn_use > 1:
        parts.append(f", conn_use={conn_use}")
    parts.append(f", delay={format_tv(delay, 2, max_dig)}")
    parts.append(", delays=" + "/".join(format_tv(d, 2, max_dig) for d in delays))
    parts.append(f", dsn={dsn}, status={status} ({reason})")
    return "".join(parts)


