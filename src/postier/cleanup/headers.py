"""Message header facts Postfix's cleanup uses: the known-header table
(header_opts.c), header recognition (is_header.c) and the date format of
added headers (mail_date.c).

Parameters read: message_drop_headers (passed to `HeaderTable`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DROP, SENDER, RECIP, RR, EXTRACT, MIME = 1, 2, 4, 8, 16, 32
XRECIP = RECIP | EXTRACT


@dataclass(frozen=True)
class HeaderOpts:
    name: str          # canonical spelling, e.g. "Message-Id"
    type: str          # lower-case name, or "other" for drop-only entries
    flags: int


_KNOWN = [
    ("Apparently-To", RECIP), ("Bcc", XRECIP), ("Cc", XRECIP),
    ("Content-Description", MIME), ("Content-Disposition", MIME), ("Content-ID", MIME),
    ("Content-Length", 0), ("Content-Transfer-Encoding", MIME), ("Content-Type", MIME),
    ("Delivered-To", 0), ("Disposition-Notification-To", SENDER), ("Date", 0),
    ("Errors-To", SENDER), ("From", SENDER), ("Mail-Followup-To", SENDER),
    ("Message-Id", 0), ("MIME-Version", MIME), ("Received", 0), ("Reply-To", SENDER),
    ("Resent-Bcc", XRECIP | RR), ("Resent-Cc", XRECIP | RR), ("Resent-Date", RR),
    ("Resent-From", SENDER | RR), ("Resent-Message-Id", RR),
    ("Resent-Reply-To", RECIP | RR), ("Resent-Sender", SENDER | RR),
    ("Resent-To", XRECIP | RR), ("Return-Path", SENDER), ("Return-Receipt-To", SENDER),
    ("Sender", SENDER), ("To", XRECIP),
]


class HeaderTable:
    """header_opts_find() with message_drop_headers applied."""

    def __init__(self, drop_headers: list[str] | tuple[str, ...] = (
            "bcc", "content-length", "resent-bcc", "return-path")):
        self.table: dict[str, HeaderOpts] = {
            name.lower(): HeaderOpts(name, name.lower(), flags) for name, flags in _KNOWN}
        for name in drop_headers:
            key = name.lower()
            old = self.table.get(key)
            if old is None:
                self.table[key] = HeaderOpts(key, "other", DROP)
            else:
                self.table[key] = HeaderOpts(old.name, old.type, old.flags | DROP)

    def find(self, header: bytes) -> HeaderOpts | None:
        """The options of a complete header (`Name: value`), or None."""
        colon = header.find(b":")
        if colon < 0:
            return None
        key = header[:colon].rstrip(b" \t").lower()
        try:
            return self.table.get(key.decode("ascii"))
        except UnicodeDecodeError:
            return None


def header_name_len(line: bytes) -> int:
    """is_header_buf(): the length of the header name when `line` starts
    a header (`Name:` or obsolete `Name :`), else 0."""
    state = 0          # 0 INIT, 1 IN_CHAR, 2 IN_CHAR_SPACE
    n = 0
    for c in line:
        if c == 58:    # ':'
            return n if state else 0
        if c in (32, 9):
            if state == 1:
                state = 2
            if state == 2:
                continue
            return 0
        if c == 0 or c > 126 or c < 32:
            return 0
        if state == 0:
            state = 1
        if state == 1:
            n += 1
            continue
        return 0
    return 0


def is_header(line: bytes) -> bool:
    return header_name_len(line) > 0


def mail_date(when: float) -> str:
    """Postfix's date format: `Sat,  1 Nov 2026 05:47:19 +0000 (UTC)`
    (local time, day space-padded, numeric offset and zone name)."""
    lt = time.localtime(when)
    off = lt.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    day = f"{lt.tm_mday:2d}"
    return (time.strftime("%a, ", lt) + day + time.strftime(" %b %Y %H:%M:%S ", lt)
            + f"{sign}{off // 60:02d}{off % 60:02d}" + time.strftime(" (%Z)", lt))
