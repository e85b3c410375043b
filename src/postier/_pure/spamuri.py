"""Pure-Python twin of postier._native.spamuri: the common shapes of
URI canonicalisation (postier.content.spam.uri) recognised cheaply.

    simple_http(uri)   # (proto, host, rest) of a plain http(s) URL, or None
    uri_host(uri)      # uri_to_domain's host part of a plain URI, or None
    match_start(s, pos, hit)   # where a linkified URI before hit can start

simple_http(uri) -> (proto, host, rest) | None: for a URI whose every
character is printable ASCII (0x21-0x7e), that starts with "http://" or
"https://" (lowercase), holds no "\\\\", "%", "@" or "&#", and whose host (up
to the first "/", "?", "#" or ":") is non-empty, made of [A-Za-z0-9._-],
does not start with a digit, ends in [A-Za-z0-9] and is followed by "/" or
the end:
the scheme with its "//", the host and the rest (uri == proto + host +
rest).  Util::uri_list_canonicalize changes nothing in such a URI before
its redirector and bare-name steps (no white space, entities, escapes,
user info, port, IDN, control characters or numeric host; the host is kept
as it is written, its IDN form being its lowercase), so the caller goes
straight to those.  None for every other URI (the general way).

uri_host(uri) -> str | None: for a URI whose every character is printable
ASCII and that does not start with javascript:, cid:, file: or mailto:
(any case), the host part RegistryBoundaries::uri_to_domain cuts out of it
before the domain lookup: lowercased, a leading /^[a-z]+:\\/{0,2}/ removed,
cut at the first "/", "?" or "#", everything up to the last "@" removed, a
trailing /:\\d*$/ removed.  None for every other URI (the general way).

match_start(s, pos, hit) -> int: one past the last character in
s[pos:hit] that no text URI (UriExtractor's pattern) can hold between its
start and the first place the URI prefilter hits in it -- white space
(" \\t\\n\\r\\f\\v"), one of ><"`}]{[|,('@, ESC, or 0x80-0xff -- or pos
when there is none.

The native module gives the same results for every input
(tests/unit/content/test_spam_uri_native.py).  Reads no main.cf parameters.
"""

from __future__ import annotations

import re

_PRINTABLE = re.compile(r"[!-~]*\Z").match
_SIMPLE = re.compile(r"(https?://)((?![0-9])[A-Za-z0-9._-]*[A-Za-z0-9])((?:/[!-~]*)?)\Z").match
_NOT_SIMPLE = re.compile(r"[\\%@]|&#").search
_NOT_WEB = ("javascript:", "cid:", "file:", "mailto:")
_SCHEME = re.compile(r"[a-z]+:/{0,2}").match
_PATH = re.compile(r"[/?#]").search
_PORT = re.compile(r":[0-9]*\Z").search


def simple_http(uri: str) -> tuple[str, str, str] | None:
    m = _SIMPLE(uri)
    if m is None or _NOT_SIMPLE(uri) is not None:
        return None
    return m.groups()


def uri_host(uri: str) -> str | None:
    if _PRINTABLE(uri) is None:
        return None
    s = uri.lower()
    if s.startswith(_NOT_WEB):
        return None
    m = _SCHEME(s)                                # s/^[a-z]+:\/{0,2}//
    if m is not None:
        s = s[m.end():]
    m = _PATH(s)                                  # s/[\/?#].*//
    if m is not None:
        s = s[:m.start()]
    k = s.rfind("@")                              # s/^[^\/]*@//
    if k >= 0:
        s = s[k + 1:]
    m = _PORT(s)                                  # s/:\d*$//
    if m is not None:
        s = s[:m.start()]
    return s


_DELIMS = frozenset(" \t\n\r\f\v><\"`}]{[|\x1b,('@" + "".join(map(chr, range(0x80, 0x100))))


def match_start(s: str, pos: int, hit: int) -> int:
    i = min(hit, len(s)) - 1
    while i >= pos and i >= 0:
        if s[i] in _DELIMS:
            return i + 1
        i -= 1
    return pos
