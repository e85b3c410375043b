"""spameval.date_seconds (both twins): the one copy of Util::parse_rfc822_date's
clamps, used by rfc822_date_fast and by evals._parse_date_slow, gives what
the general parser computed with its own clamps and calendar.timegm before
(the reference below is that code), on random fields, on random and broken
date strings and on the corpus's Date and Received dates."""

from __future__ import annotations

import calendar
import os
import random
import re

import pytest

from postier.content.spam import evals as E

CORPUS = "/work/shared/corpus"


def _ref_seconds(y: int, month: int, d: int, hh: int, mm: int, ss: int, tz: str) -> int | None:
    """evals._parse_date_slow's tail as it was (its own clamps, timegm)."""
    ss = min(ss, 59)
    mm = min(mm, 59)
    hh = min(hh, 23)
    maxd = 31
    if month in (4, 6, 9, 11):
        maxd = 30
    elif month == 2:
        maxd = 29 if (y % 4 == 0 and (y % 100 or y % 400 == 0)) else 28
    if d > maxd:
        d = 1
        month += 1
        if month > 12:
            month = 1
            y += 1
    y = min(max(y, 1970), 2037)
    if month < 1 or d < 1:
        return None
    t = calendar.timegm((y, month, d, hh, mm, ss, 0, 0, 0))
    m = re.search(r"([-+])(\d\d)(\d\d)$", tz)
    if m:
        off = (int(m.group(2)) * 60 + int(m.group(3))) * 60
        if m.group(1) == "-":
            t += off
        elif t < off:
            t = 0
        else:
            t -= off
    return t


def _zone(tz: str) -> int:
    off = (int(tz[1:3]) * 60 + int(tz[3:5])) * 60
    return -off if tz[0] == "-" else off


def test_date_seconds_matches_the_old_clamps_on_random_fields(impl):
    m = impl("spameval")
    rnd = random.Random(7)
    years = [0, 1, 49, 99, 100, 999, 1899, 1900, 1969, 1970, 1999, 2000, 2004, 2036, 2037,
             2038, 2100, 2400, 2899, 9999]
    for _ in range(20000):
        y = rnd.choice(years) if rnd.random() < 0.5 else rnd.randint(0, 9999)
        month = rnd.randint(1, 12)
        d = rnd.choice([0, 1, 28, 29, 30, 31, 32, 99, 10 ** 30, rnd.randint(0, 40)])
        hh, mm, ss = rnd.randint(0, 99), rnd.randint(0, 99), rnd.randint(0, 99)
        tz = rnd.choice("+-") + f"{rnd.randint(0, 99):02d}{rnd.randint(0, 99):02d}"
        assert m.date_seconds(y, month, d, hh, mm, ss, _zone(tz)) == \
            _ref_seconds(y, month, d, hh, mm, ss, tz), (y, month, d, hh, mm, ss, tz)


def test_date_seconds_edges(impl):
    m = impl("spameval")
    assert m.date_seconds(2020, 1, 0, 0, 0, 0, 0) is None                  # day 0
    assert m.date_seconds(2020, 2, 30, 0, 0, 0, 0) == calendar.timegm((2020, 3, 1, 0, 0, 0))
    assert m.date_seconds(2021, 2, 29, 0, 0, 0, 0) == calendar.timegm((2021, 3, 1, 0, 0, 0))
    assert m.date_seconds(2037, 12, 32, 0, 0, 0, 0) == calendar.timegm((2037, 1, 1, 0, 0, 0))
    assert m.date_seconds(1960, 1, 1, 0, 0, 0, 3600) == 0                  # never below 0
    assert m.date_seconds(1970, 1, 1, 0, 0, 0, -3600) == 3600
    assert m.date_seconds(2020, 1, 10 ** 40, 99, 99, 99, 0) == calendar.timegm((2020, 2, 1, 23, 59, 59))
    # a year past four digits keeps its leap kind (a 29th of February)
    assert m.date_seconds(10 ** 20, 2, 29, 0, 0, 0, 0) == calendar.timegm((2037, 2, 28, 0, 0, 0)) + 86400
    assert m.date_seconds(10 ** 20 + 1, 2, 29, 0, 0, 0, 0) == calendar.timegm((2037, 3, 1, 0, 0, 0))
    assert m.date_seconds(2020, 10 ** 30, 1, 0, 0, 0, 0) is None
    assert m.date_seconds(2020, 1, 1, 0, 0, 0, 10 ** 30) == 0
    assert m.date_seconds(2020, 1, 1, 0, 0, 0, -10 ** 30) == 10 ** 30 + calendar.timegm((2020, 1, 1, 0, 0, 0))
    assert m.date_seconds(2020, 1, 0, 0, 0, 0, -10 ** 30) is None
    for bad in range(6):
        fields = [2020, 1, 1, 0, 0, 0]
        fields[bad] = -10 ** bad
        with pytest.raises(ValueError):
            m.date_seconds(*fields, 0)


def _ref_parse(date: str) -> int | None:
    """The general parser as it was: its field extraction, then _ref_seconds."""
    s = " " + date + " "
    s = re.sub(r", *", " ", s)
    s = re.sub(r"\s+", " ", s, flags=re.A)
    mons = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
    m = re.search(r" (\d+) (" + mons + r") (\d{4}) ", s, re.I | re.A)
    if m:
        dd, mon, yyyy = m.group(1), m.group(2).lower(), m.group(3)
    else:
        m = re.search(r" (" + mons + r") +(\d+) \d+:\d+:\d+ (\d{4}) ", s, re.I | re.A)
        if m:
            dd, mon, yyyy = m.group(2), m.group(1).lower(), m.group(3)
        else:
            m = re.search(r" (\d+) (" + mons + r") (\d{2,3}) ", s, re.I | re.A)
            if not m:
                return None
            dd, mon, yyyy = m.group(1), m.group(2).lower(), m.group(3)
    s = s[:m.start()] + " " + s[m.end():]
    y = int(yyyy)
    if len(yyyy) == 2 and y < 50:
        y += 2000
    elif len(yyyy) != 4:
        y += 1900
    hh = mm = ss = 0
    m = re.search(r" (\d?\d):(\d\d)(:(\d\d))? ", s, re.A)
    if m:
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(4) or 0)
        s = s[:m.start()] + " " + s[m.end():]
    tz = None
    m = re.search(r" ([-+]\d{4}) ", s, re.A)
    if m:
        tz = m.group(1)
    else:
        m = re.search(r"\b([A-Z]{2,4}(?:-DST)?)\b", s, re.A)
        if m and m.group(1) in E._TZ:
            tz = E._TZ[m.group(1)]
    month = E._MONTH.get(mon, 0)
    return _ref_seconds(y, month, int(dd), hh, mm, ss, tz or "-0000")


_SHAPES = ["Mon, 5 Jan 2020 10:11:12 +0100", "5 Jan 2020 10:11:12 EST", "Tue, 29 Feb 2021 1:2 PDT",
           "Jan 31 23:59:60 2037 GMT", "31 Apr 99 25:61:61 -2359", "0 Dec 1969 00:00 +9999",
           "32 Dec 2037 12:00:00 +0000", "7 feb 049 12:00:00 CEST", "Wed,  3   Mar  2004 7:08 (UTC)",
           "99999999999999999999 Jan 2020 00:00:00 +0000", "1 Jan 1970 00:00:00 +0001",
           "garbage", "", "12 Jun 2019 08:00:00 +0200 (CEST)", "Fri, 13 Sep 2002 24:00:00 -0000"]


@pytest.mark.parametrize("date", _SHAPES)
def test_parse_rfc822_date_same_as_before_on_shapes(date):
    assert E.parse_rfc822_date(date) == _ref_parse(date)
    assert E._parse_date_slow(date) == _ref_parse(date)


def test_parse_rfc822_date_same_as_before_on_random_dates():
    rnd = random.Random(11)
    mons = ["Jan", "feb", "MAR", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]
    zones = ["+0000", "-0700", "+1399", "-9999", "EST", "PDT", "CEST", "XYZ", "", "(UTC)", "GMT-DST"]
    for _ in range(5000):
        parts = [rnd.choice(["", "Mon,", "Tue, "]), str(rnd.randint(0, 40)), rnd.choice(mons),
                 str(rnd.choice([rnd.randint(0, 99), rnd.randint(100, 999), rnd.randint(1960, 2050)])),
                 f"{rnd.randint(0, 30)}:{rnd.randint(0, 70):02d}"
                 + rnd.choice(["", f":{rnd.randint(0, 70):02d}"]),
                 rnd.choice(zones)]
        if rnd.random() < 0.2:
            rnd.shuffle(parts)
        date = rnd.choice([" ", "  ", "\t"]).join(parts)
        assert E.parse_rfc822_date(date) == _ref_parse(date), date


@pytest.mark.slow
def test_parse_rfc822_date_same_as_before_on_the_corpus():
    if not os.path.isdir(CORPUS):
        pytest.skip("no corpus")
    names = [line.split("\t")[0] for line in
             open(os.path.join(CORPUS, "labels.tsv")).read().splitlines()[1:]]
    seen = 0
    for name in names:
        head = open(os.path.join(CORPUS, name), "rb").read().split(b"\n\n", 1)[0]
        for m in re.finditer(rb"^(?:Resent-)?Date:[ \t]*(.*(?:\n[ \t].*)*)", head, re.M | re.I):
            d = m.group(1).decode("latin-1").replace("\n", " ").strip()
            assert E.parse_rfc822_date(d) == _ref_parse(d), (name, d)
            seen += 1
        for m in re.finditer(rb"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)", head):
            d = m.group(1).decode("latin-1")
            assert E.parse_rfc822_date(d) == _ref_parse(d), (name, d)
            seen += 1
    assert seen > 3000
