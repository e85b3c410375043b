"""postier._native.spameval and its pure twin: the eval rules' per-message
loops give what SpamAssassin's code (as ported in the slow Python way)
gives, on hand-picked and generated inputs."""

from __future__ import annotations

import calendar
import random
import re

import pytest
from eval_refs import JIS, uppercase_reference

from postier.content.spam import evals as E


def _vertical_reference(lines):
    v = -1
    for line in lines:
        if len(line) <= 5:
            continue
        spaces = len(re.findall(rb" ", line))
        non = len(line) - spaces
        v = max(v, 100 if (spaces > non or non == 0) else int(100 * spaces / non))
    return v


def _random_lines(rnd: random.Random, n: int) -> list[bytes]:
    alphabet = [b" ", b"\t", b"\n", b"\x0b", b"\x1c", b"a", b"Q", b"7", b"+", b"/", b"=",
                b"\xe9", b"\x1b", b"\x1b$B", b"\x1b(B", b"\x00", b".", b"\xa0"]
    out = []
    for _ in range(n):
        if rnd.random() < 0.1:      # base64-looking words of lengths around 60..76
            w1 = b"A" * rnd.randrange(55, 80)
            w2 = b"b" * rnd.randrange(55, 80)
            out.append(w1 + rnd.choice([b" ", b"\t"]) + w2 + rnd.choice([b" ", b"", b" x"]))
        else:
            out.append(b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 30))))
    return out


TRICKY = [b"", b" ", b"a", b"a b", b" a ", b"ab  ", b"\x1b$BAB\x1b(B x Y", b"A" * 60 + b" " + b"B" * 60 + b" ",
          b"A" * 76 + b" " + b"B" * 76 + b" tail", b"A" * 77 + b" " + b"B" * 60 + b" ", b"A" * 59 + b" " + b"B" * 60 + b" ",
          b"HELLO WORLD", b"\x00\x00 \x00", b"a\x1cb", b"a\x0bb", b"       x", b"xxxxxx"]


def test_uppercase_counts(impl):
    m = impl("spameval")
    assert m.uppercase_counts(TRICKY, JIS) == uppercase_reference(TRICKY)
    assert m.uppercase_counts([b"Hello World 42"], JIS) == (14, 10, 2)
    rnd = random.Random(7)
    for _ in range(300):
        lines = _random_lines(rnd, rnd.randrange(0, 12))
        assert m.uppercase_counts(lines, JIS) == uppercase_reference(lines), lines


def test_vertical_words(impl):
    m = impl("spameval")
    assert m.vertical_words([]) == -1
    assert m.vertical_words([b"a b c"]) == -1          # 5 bytes: not counted
    assert m.vertical_words([b"a b c d"]) == 75
    assert m.vertical_words(TRICKY) == _vertical_reference(TRICKY)
    rnd = random.Random(8)
    for _ in range(300):
        lines = _random_lines(rnd, rnd.randrange(0, 12))
        assert m.vertical_words(lines) == _vertical_reference(lines), lines


DATES = ["Mon, 5 Jan 2020 10:11:12 +0000", "5 Jan 2020 10:11:12 -0800 (PST)",
         "  Tue,  05 Feb 2019 23:59:59 +1400  ", "Sun 29 Feb 2040 10:00:00 +0000",
         "31 Apr 2021 99:99:99 +9999", "31 Dec 2037 23:59:59 -1200", "1 Jan 1970 00:00:00 +0100",
         "0 Jan 2020 00:00:00 +0000", "1 Jan 0099 01:02:03 +0000", "31 Dec 2037 12:00:00 -0000 (UTC)",
         "5 Jan 2020 10:11:12 +0000 (TOOLONG)", "5 jan 2020 10:11:12 +0000", "5 Jan 2020 1:11:12 +0000",
         "Mon,5 Jan 2020 10:11:12 +0000", "123 Jan 2020 10:11:12 +0000", "5 Jan 20201 10:11:12 +0000",
         "5 Jan 2020 10:11:12 +00000", "5 Jan 2020 10:11:12 +0000 x", "5 Jan 2020 10:11:12 EST",
         "5\tJan\n2020 10:11:12\x0b+0000", "5 Jan 2020 10:11:12 +0000(UTC)", "5 Jan 2020 10:11:12 +0000 ()",
         "Fri, 5 Jan 2020 10:11:12 +0000 (UT)\n", "5 Jan 2020 10:11:12 +0000\x1c", "５ Jan 2020 10:11:12 +0000"]


def test_rfc822_date_fast_agrees_with_the_general_parser(impl):
    m = impl("spameval")
    assert m.rfc822_date_fast("Mon, 5 Jan 2020 10:11:12 +0100") == \
        calendar.timegm((2020, 1, 5, 9, 11, 12, 0, 0, 0))
    assert m.rfc822_date_fast("5 Jan 2020 10:11:12 EST") is False       # not the common shape
    assert m.rfc822_date_fast("0 Jan 2020 00:00:00 +0000") is None
    rnd = random.Random(9)
    cases = list(DATES)
    for d in DATES:
        for _ in range(40):
            s = list(d)
            i = rnd.randrange(len(s) + 1)
            s.insert(i, rnd.choice(" ,\t0123456789JanFebDec+-:()\nMon"))
            if rnd.random() < 0.3 and s:
                del s[rnd.randrange(len(s))]
            cases.append("".join(s))
    for d in cases:
        got = m.rfc822_date_fast(d)
        if got is not False:
            assert got == E._parse_date_slow(d), d
        assert E.parse_rfc822_date(d) == E._parse_date_slow(d), d


@pytest.mark.parametrize("date", DATES)
def test_parse_rfc822_date_bad_input_gives_a_result(date):
    got = E.parse_rfc822_date(date + "\x00\udcff")
    assert got is None or isinstance(got, int)


def _at_lines_reference(lines):
    # FreeMail's lines that can change: the lines of the joined body where
    # "@" or "%40" is found
    joined = b"\n".join(lines)
    starts = [0]
    for x in lines:
        starts.append(starts[-1] + len(x) + 1)
    found = set()
    for needle in (b"@", b"%40"):
        p = joined.find(needle)
        while p >= 0:
            found.add(max(i for i in range(len(lines)) if starts[i] <= p))
            p = joined.find(needle, p + 1)
    return sorted(found)


def test_at_lines(impl):
    m = impl("spameval")
    tricky = [b"", b"@", b"%40", b"%4", b"%%40", b"%4%40", b"x%40", b"%40x", b"40%", b"%", b"%4",
              b"a\x00@", b"\x00%40", b"\xff@\xff", b"%\n40", b"%" * 1000 + b"40", b"x" * 100000 + b"@",
              bytearray(b"a@b"), bytearray(b"plain")]
    assert m.at_lines(tricky) == _at_lines_reference([bytes(x) for x in tricky])
    assert m.at_lines([]) == []
    rnd = random.Random(11)
    alphabet = [b"@", b"%", b"4", b"0", b"a", b" ", b"\x00", b"\xe9", b"%40"]
    for _ in range(500):
        lines = [b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 12)))
                 for _ in range(rnd.randrange(0, 8))]
        assert m.at_lines(lines) == _at_lines_reference(lines), lines


def test_a_uris(impl):
    m = impl("spameval")
    detail = {"mailto:a@b.com": {"types": {"a": 1}}, "http://x": {"types": {"a": 1, "parsed": 1}},
              "mailto:c@d.com": {"types": {"parsed": 1}}, "u": {"types": None}, "v": {},
              "w": {"types": {"img": 1, "a": 1}}, "z": {"types": {}}}
    assert m.a_uris(detail) == ["mailto:a@b.com", "w"]
    assert m.a_uris({}) == []


def test_uri_hosts(impl):
    m = impl("spameval")
    mailto = re.compile(r"^mailto:", re.I | re.A)

    def reference(detail):
        out = []
        for uri, info in detail.items():
            if mailto.match(uri):
                continue
            for host in info.get("hosts") or {}:
                if host not in out:
                    out.append(host)
        return out

    detail = {"http://a.com/": {"hosts": {"a.com": 1}}, "MAILTO:x@b.com": {"hosts": {"b.com": 1}},
              "mailto:": {"hosts": {"c.com": 1}}, "mailt": {"hosts": {"d.com": 1}},
              "\u212ailto:x": {"hosts": {"k.com": 1}}, "ma\u017flto:x": {"hosts": {"s.com": 1}},
              "mAiLtO:y@e.org": {"hosts": {"e.org": 1}}, "www.a.com": {"hosts": {"a.com": 1, "f.net": 1}},
              "x": {"hosts": None}, "y": {}, "m\u00e9ilto:": {"hosts": {"g.com": 1}}}
    assert m.uri_hosts(detail) == reference(detail)
    assert m.uri_hosts({}) == []
    rnd = random.Random(5)
    pieces = ["m", "M", "a", "A", "i", "l", "t", "o", "O", ":", "\u212a", "\u017f", "\u0130", "\u00e9", "\0", "/"]
    for _ in range(500):
        detail = {"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 10))):
                  {"hosts": {rnd.choice("abcde"): 1 for _ in range(rnd.randrange(0, 3))}}
                  for _ in range(rnd.randrange(0, 6))}
        assert m.uri_hosts(detail) == reference(detail), detail
