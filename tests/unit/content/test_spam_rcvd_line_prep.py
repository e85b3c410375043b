"""spamrcvd.Parser.parse_line's first steps in both twins: the white-space
collapse (s/\\s+/ /g with re.A's \\s: the native twin walks a Latin-1 line's
bytes, other lines through the regex) and the formats' prefix programs (the
native twin reads a Latin-1 line directly, a \\S+ step's space found with
memchr).  A line parses as its collapsed form does, and the two twins agree
on lines whose white space, non-ASCII characters and \\S+ tokens sit where
those steps decide."""

from __future__ import annotations

import random
import re

import pytest

from postier.content.spam import received as R

_LINES = [
    "from mail.example (mail.example [10.0.0.7]) by mx.example (Postfix) with ESMTP id 4F2A1; "
    "Tue, 10 Nov 2026 12:00:00 +0000",
    "from unknown (HELO se7en.org) ([202.89.145.8]) (envelope-sender <mark@talios.com>) by 0 "
    "(qmail-ldap-1.03) with SMTP for <rpm-list@freshrpms.net>; 1 Jan 2003 00:00:00 -0000",
    "from usw-sf-list1-b.sourceforge.net ([10.3.1.13] helo=usw-sf-list1.sourceforge.net) by "
    "usw-sf-list2.sourceforge.net with esmtp (Exim 3.31-VA-mm2 #1 (Debian)) id 17kf; Mon, 2 Sep 2002",
    "from karl@localhost) by localhost.localdomain (8.11.6/8.11.6) id g857oAO12400",
    "from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) for jm@localhost (single-drop)",
    "from 65.91.218.127 [65.91.218.127] by commander with SMTPBeamer v3.30",
]
# white space re.A's \s takes (9-13, 32) and characters it does not (0x1c, 0x85, 0xa0, U+2028)
_PIECES = ["  ", "\t", "\x0b", "\x0c", "\r", "\n", " \t ", "\x1c", "\x85", "\xa0", "\u2028", "\u0100",
           "\xe9", " ", "(", ")", "[", "]", "\x00", "x"]
_WS = re.compile(r"\s+", re.A)


def _mutants(seed: int, n: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        chars = list(rnd.choice(_LINES))
        for _ in range(rnd.randrange(1, 6)):
            i = rnd.randrange(len(chars) + 1)
            if rnd.random() < 0.7:
                chars.insert(i, rnd.choice(_PIECES))
            elif i < len(chars):
                del chars[i]
        out.append("".join(chars))
    return out


_EDGES = ["", " ", "\t", "from", "from ", "from x", "from  x  (y  [1.2.3.4])  by  z ",
          "from x (y [1.2.3.4]) by", "from\tx\t(y [1.2.3.4])\tby z (Postfix) with ESMTP id abc",
          "\u0100from a (b [1.2.3.4]) by c ", "from a\u0100 (b [1.2.3.4]) by c (Postfix) with SMTP",
          "from " + "x" * 5000 + " (y [1.2.3.4]) by z ", "from x" + " " * 3000 + "(y [1.2.3.4]) by z"]


@pytest.fixture
def parser(impl):
    mod = impl("spamrcvd")
    R._compile_all()
    return mod.Parser(R._cache, R._compile_entry)


def test_a_line_parses_as_its_collapsed_form(parser):
    lines = _LINES + _EDGES + _mutants(1, 400)
    changed = 0
    for line in lines:
        collapsed = _WS.sub(" ", line)
        changed += collapsed != line
        assert parser.parse_line(line) == parser.parse_line(collapsed), repr(line)
    assert changed > 100


def test_formats_still_parse(parser):
    v = parser.parse_line(_LINES[0])
    assert (v["ip"], v["rdns"], v["helo"], v["by"], v["id"]) == (
        "10.0.0.7", "mail.example", "mail.example", "mx.example", "4F2A1")
    # the same line with its spaces doubled and tabbed collapses to the same relay
    assert parser.parse_line(_LINES[0].replace(" ", " \t ")) == v
    assert parser.parse_line("garbage without from") == 0


def test_native_and_pure_agree():
    from postier._pure import spamrcvd as pure
    try:
        from postier._native import spamrcvd as native
    except ImportError:
        pytest.skip("native spamrcvd not built")
    R._compile_all()
    pn = native.Parser(R._cache, R._compile_entry)
    pp = pure.Parser(R._cache, R._compile_entry)
    lines = _LINES + _EDGES + _mutants(2, 1500)
    for line in lines:
        assert pn.parse_line(line) == pp.parse_line(line), repr(line)
