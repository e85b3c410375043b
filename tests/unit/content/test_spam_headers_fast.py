"""The header-rule side of the spam engine: the shortcuts taken for speed
give the answers of the general code they stand in for.

- headers._fast_addresses (common address shapes) == the general parser,
- HeaderView.value("ALL:raw")'s shortcut == the joined header lines,
- headers._line_after_received == /^Received:.*?^NAME:/msi,
- Run._headers (one walk over CompiledRules.header_plan), Run._mimeheaders
  (plain rules checked where Hyperscan reports them) and Run._templates
  (cached per rule set, per message values) on crafted rules and messages,
- hsdb.AreaDatabase.part_dbs and the `chatty` probe threshold.
"""

from __future__ import annotations

import random
import re

import pytest

from postier.content.spam import conf as C
from postier.content.spam import headers as H
from postier.content.spam.scanner import SpamScanner


def _scanner(text: str) -> SpamScanner:
    rs = C.parse_text(text, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


# ---------------------------------------------------------------- addresses

_SHAPES = ["a@b.c", "  john.smith@example.com ", "<x@y.org>", " <x_y+z@mail.example.co.uk>  ",
           '"John Smith" <js@example.com>', '"" <a@b.c>', '"a@b.c" <a@b.c>', '"J" \t<j@x.y>',
           "John Q. Public <jqp@example.com>", "O'Neil <o@example.ie>", "x <a@localhost>",
           "a@b_c.d", "a@-bad-.com", "a@b.c\n", "=?utf-8?q?x?= <a@b.c>",
           "a@b.c, <d@e.f>, Ann <g@h.i> , j@k.l", "A & B! <ab@c.d>", "caf\xe9@example.com", '"caf\xe9" <c@example.com>']
_OTHER = ["a@b.c (comment)", "Group: a@b.c;", '"J\\"o" <a@b.c>', "<a@b.c> <d@e.f>",
          "undisclosed-recipients:;", "", "   ", "a", "<>", '"x" <"q"@b.c>', "a@[1.2.3.4]",
          "Name <a@b.c> junk", "a\\\\b@c.d", "<a@b.c>,<d@e.f>", "a@b.c,d@e.f",
          '"x, y" <a@b.c>, d@e.f', "a@b.c,", "a@b.c, , d@e.f", "a@b.c; d@e.f"]


def test_fast_addresses_take_the_common_shapes():
    for s in _SHAPES:
        assert H._fast_addresses(s) is not None, s
    for s in _OTHER:
        assert H._fast_addresses(s) is None, s


def test_fast_addresses_answer_like_the_general_parser():
    rng = random.Random(7)
    alphabet = list(' \t"<>@.,;:()\\\'-_aZ9\xe9\n\x00[]')
    cases = _SHAPES + _OTHER
    items = ["a@b.c", " <x@y.org>", "<x@y.org>", "N <n@m.o>", "", " ", "Tab\tName <t@n.x>"]
    for _ in range(3000):
        cases.append(",".join(rng.choice(items) for _ in range(rng.randint(2, 4))))
    for s in _SHAPES + _OTHER:
        for _ in range(60):
            t = list(s)
            for _ in range(rng.randint(1, 3)):
                pos = rng.randint(0, len(t))
                if rng.random() < 0.5 or not t:
                    t.insert(pos, rng.choice(alphabet))
                else:
                    del t[min(pos, len(t) - 1)]
            cases.append("".join(t))
    fast = 0
    for s in cases:
        got = H._fast_addresses(s)
        if got is not None:
            fast += 1
            assert got == H._parse_header_addresses(s), s
        assert H.parse_header_addresses(s) == H._parse_header_addresses(s), s
    assert fast > len(_SHAPES) * 5


def test_fast_address_fields():
    [a] = H.parse_header_addresses('"Ann B" <ann@example.com>')
    # the space before "<" stays in the phrase (get(":name") strips it)
    assert a == {"phrase": "Ann B ", "user": "ann", "host": "example.com",
                 "address": "ann@example.com", "comment": None, "invalid": False}
    [b] = H.parse_header_addresses("Bob <bob@localhost>")
    assert b["phrase"] == "Bob " and b["invalid"] is True


# ---------------------------------------------------------------- header block

def test_line_after_received_matches_the_regex():
    rng = random.Random(11)
    lines = [b"Received: from x\n", b"received: by y\n", b"Return-Path: <a@b>\n", b"RETURN-PATH: <c>\n",
             b" Return-Path: folded\n", b"X-Envelope-From: z\n", b"Subject: Received: Return-Path:\n",
             b"envelope-sender: q\n", b"X: \xff\x00\xc9\n", b"\n", b"Received:\n"]
    for _ in range(3000):
        allh = b"".join(rng.choice(lines) for _ in range(rng.randrange(0, 8)))
        for name in ("X-Envelope-From", "Envelope-Sender", "Return-Path"):
            want = bool(re.search(rb"^Received:.*?^" + name.encode() + rb":", allh, re.M | re.S | re.I))
            assert H._line_after_received(allh.lower(), name.lower().encode()) == want, (allh, name)


def _view(data: bytes) -> H.HeaderView:
    from postier.content.spam.message import Message
    from postier.content.spam.received import parse_relays
    return H.HeaderView(Message(data), parse_relays([], [], [], [], []))


@pytest.mark.parametrize("data", [
    b"From: a\nTo: b\n\nbody\n",
    b"From: a\n b\n\tc\nTo: b\n\nbody\n",
    b"From: a\nTo: b\n",
    b"From: a\r\nTo: b\r\n\r\nbody\r\n",
    b" leading: fold\nFrom: a\n\nbody\n",
    b"\nbody only\n",
    b"X-Bin: \xff\x00\nSubject: s\n\n",
    b"",
])
def test_all_raw_value_is_the_joined_lines(data):
    hv = _view(data)
    arr = hv.get("ALL:raw")
    want = (b"" if arr[0].endswith(b"\n") else b"\n").join(arr) if arr else None
    assert _view(data).value("ALL:raw") == want



_FAST_DATA = [
    b"From: \"Ann B\" <ann@example.com>\nTo: a@b.c, Bo <bo@x.org>\nTo: <t@u.v>\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\n  folded\nReply-To: r@s.t (c)\nDate: d\n\nbody\n",
    b"from: x@y.z\nFROM: second <s@y.z>\nReturn-Path: <>\nX-Envelope-From: e@f.g\n\n",
    b"Subject: \xff\x00bin\nFrom: Group: a@b.c;\n\n",
    b"X-Only: 1\n\n",
    b"",
]
_FAST_REQUESTS = ["From:addr", "From:name", "From:name:raw", "From:raw", "Subject:raw", "To:raw",
                  "To:addr", "To:first:addr", "To:addr:last", "To:first", "To:last:raw",
                  "Reply-To:addr", "Reply-To:name", "Return-Path:addr", "X-Envelope-From:addr",
                  "Date:raw", "X-Gone:raw", "X-Gone:addr", "X-Spam-Relays-Untrusted",
                  "x-spam-relays-external", "X-Spam-Relays-Trusted", "X-Spam-Relays-Internal",
                  "From :raw", "From:ADDR", "ToCc:addr", "ALL:raw", "From:host", "MESSAGEID"]


@pytest.mark.parametrize("data", _FAST_DATA)
def test_fast_get_answers_like_the_general_code(data, monkeypatch):
    fast = _view(data)
    got = [fast.get(r) for r in _FAST_REQUESTS]
    monkeypatch.setattr(H, "_fast_kind", lambda request: None)
    slow = _view(data)
    assert got == [slow.get(r) for r in _FAST_REQUESTS]
    assert H._fast_kind.__name__ == "<lambda>"


def test_fast_kind_classifies_requests():
    assert H._fast_kind("X-Spam-Relays-External") is True
    assert H._fast_kind("From:first:addr")[:8] == ("From", "from", "from", False, True, False,
                                                   True, False)
    for other in ("ALL:raw", "ToCc:addr", "EnvelopeFrom", "From:host", "From", "MESSAGEID:raw",
                  "X-Spam-Relays-External:raw", ":raw"):
        assert H._fast_kind(other) is None, other


@pytest.mark.parametrize("data", _FAST_DATA)
def test_values_are_each_requests_value(data):
    requests = tuple(_FAST_REQUESTS + ["From", "Subject", "X-Gone", "to"])
    names = tuple(H.plain_name(r) for r in requests)
    for strings in ({}, {"x-gone": b"meta\n"}):
        ref = _view(data)
        ref.msg.metadata["strings"] = dict(strings)
        want = [ref.value(r) for r in requests]
        assert (want[requests.index("X-Gone")] is None) == (not strings)
        hv = _view(data)
        hv.msg.metadata["strings"] = dict(strings)
        assert hv.values(requests, names) == want
    assert hv.values(requests, names) == want       # a second call: the cached split



@pytest.mark.parametrize("data,hit", [
    (b"From: a\nSubject: \xe9\xe9\xe9 x\n\nbody\n", True),
    (b"X-A: \x01\x02\nX-B:\n folded \xff\xfe\n\nb\n", True),
    (b"From: caf\xc3\xa9\nTo: b\n\n", False),
    (b" leading: \xff\xff\xff\nFrom: a\n\nbody\n", False),    # not a header line
    (b"\nbody only\n", False),
    (b"", False),
])
def test_illegal_chars_on_all_reads_the_joined_lines(data, hit):
    """evals.check_illegal_chars('ALL') takes HeaderView.value("ALL:raw"):
    the same answer as from get_str's join of the lines."""
    from postier.content.spam import evals

    class Ctx:
        hv = _view(data)

    class Ref:
        hv = None

    def reference(ratio, count):
        hv = _view(data)
        raw = hv.get_str("ALL:raw")
        if not hv.get("ALL:raw") or not raw.strip():
            return 0
        # check_illegal_chars' arithmetic on that string, through a header
        # name that takes its general branch
        hv.made_lists["X-Same:raw"] = [raw]
        Ref.hv = hv
        return evals.check_illegal_chars(Ref(), None, "X-Same", ratio, count)

    hits = 0
    for ratio, count in (("0.010", "2"), ("0", "1"), ("0.5", "1")):
        got = evals.check_illegal_chars(Ctx(), None, "ALL", ratio, count)
        assert got == reference(ratio, count), (ratio, count)
        hits += got
    assert (hits > 0) == hit


# ---------------------------------------------------------------- rules

RULES = r"""
util_rb_tld           org net com
header H_SUBJ         Subject =~ /\bcheap\b/i
header H_NEG          Subject !~ /hello/
header H_NEG_UNSET    X-Gone !~ /x/
header H_UNSET_EMPTY  X-Gone =~ /^$/
header H_ADDR         From:addr =~ /\@example\.com$/
header H_NAME         From:name =~ /^Ann B$/
header H_ALLRAW       ALL:raw =~ /^X-Folded: a\n\s+b$/m
header H_MULTI        ALL =~ /^X-(?!Skip)[a-z]+: (?=\w)\w+$/mi
tflags H_MULTI        multiple maxhits=3
header __TO_CAP       To:addr =~ /(?<TO_ADDR>.+)/
uri    U_TMPL         /^https?:\/\/.{3,40}[?&]to=%{TO_ADDR}/i
uri    U_ATMPL        /[?&]to=%{TO_ADDR}/
body   B_TMPL         /dear %{TO_ADDR}\b/i
mimeheader M_CT       Content-Type =~ /text\/html/
mimeheader M_CT_UNSET Content-Disposition =~ /^$/
mimeheader M_NEG      Content-Type !~ /nothing/
mimeheader M_CONCAT   Content-Type =~ /plain.*\n.*html/s
tflags M_CONCAT       concat
score  H_SUBJ 1
score  H_NEG 1
score  H_NEG_UNSET 1
score  H_UNSET_EMPTY 1
score  H_ADDR 1
score  H_NAME 1
score  H_ALLRAW 1
score  H_MULTI 1
score  __TO_CAP 0.01
score  U_TMPL 1
score  U_ATMPL 1
score  B_TMPL 1
score  M_CT 1
score  M_CT_UNSET 1
score  M_NEG 1
score  M_CONCAT 1
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    return _scanner(RULES)


def _msg(to: bytes, subject: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"From: \"Ann B\" <ann@example.com>\nTo: <" + to + b">\nSubject: " + subject + b"\n"
            + extra + b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
            b"--b\nContent-Type: text/plain\n\n" + body + b"\n"
            b"--b\nContent-Type: text/html\n\n<p>" + body + b"</p>\n--b--\n")


def test_header_rules(sc):
    r = sc.run(_msg(b"bob@example.net", b"cheap pills",
                    b"hi", b"X-Folded: a\n  b\nX-Abc: one\nX-Skip: two\nx-def: three\nX-G: x y\n"))
    v = r.values
    assert {"H_SUBJ", "H_NEG", "H_NEG_UNSET", "H_UNSET_EMPTY", "H_ADDR", "H_NAME",
            "H_ALLRAW"} <= set(v)
    assert v["H_MULTI"] == 2                    # X-Abc, x-def (not X-Skip, not "x y")
    r2 = sc.run(_msg(b"bob@example.net", b"hello", b"hi",
                     b"X-A: 1\nX-B: 2\nX-C: 3\nX-D: 4\nX-Gone: x\n"))
    assert "H_SUBJ" not in r2.values and "H_NEG" not in r2.values
    assert "H_NEG_UNSET" not in r2.values and "H_UNSET_EMPTY" not in r2.values
    assert r2.values["H_MULTI"] == 3            # maxhits
    assert "H_ALLRAW" not in r2.values


def test_template_rules_use_each_messages_values(sc):
    a = sc.run(_msg(b"bob@example.net", b"s", b"dear bob@example.net see http://t.example.org/x?to=bob@example.net"))
    assert "U_TMPL" in a.values and "B_TMPL" in a.values
    b = sc.run(_msg(b"eve@example.org", b"s", b"dear bob@example.net see http://t.example.org/x?to=bob@example.net"))
    assert "U_TMPL" not in b.values and "B_TMPL" not in b.values
    c = sc.run(_msg(b"eve@example.org", b"s", b"Dear EVE@example.org: http://t.example.org/y?a=1&to=eve@example.org"))
    assert "U_TMPL" in c.values and "B_TMPL" in c.values
    again = sc.run(_msg(b"bob@example.net", b"s", b"dear bob@example.net see http://t.example.org/x?to=bob@example.net"))
    assert again.values == a.values and "U_ATMPL" in a.values
    # U_ATMPL (case-sensitive, run first) finds no subject; U_TMPL (/i) must still look
    up = sc.run(_msg(b"bob@example.net", b"s", b"see http://t.example.org/x?to=BOB@EXAMPLE.NET"))
    assert "U_TMPL" in up.values and "U_ATMPL" not in up.values


def test_mimeheader_rules(sc):
    r = sc.run(_msg(b"bob@example.net", b"s", b"hi"))
    assert {"M_CT", "M_CT_UNSET", "M_NEG", "M_CONCAT"} <= set(r.values)
    plain = (b"From: a@example.com\nTo: b@example.net\nSubject: s\nContent-Type: text/plain\n"
             b"Content-Disposition: inline\n\nhi\n")
    p = sc.run(plain)
    assert "M_CT" not in p.values and "M_CT_UNSET" not in p.values and "M_CONCAT" not in p.values
    assert "M_NEG" in p.values                  # negated mimeheader rules hit (as before)


def test_bad_header_input_scans(sc):
    for data in (b"", b"\x00" * 100, b"Subject: cheap\x00\nFrom: \xff@\x00\n\nx\n",
                 b"From: " + b"a" * 100000 + b"@example.com\n\nx\n",
                 b"To: <" + b"\xe9" * 50 + b"@example.org>\nContent-Type: text/html\x00\n\n<a href=x>\n"):
        r = sc.run(data)
        assert r.score >= 0
    nul = sc.run(b"Subject: cheap \x00 pills\n\nx\n")
    assert "H_SUBJ" in nul.values


# ---------------------------------------------------------------- hsdb

def test_part_dbs_and_chatty_threshold(tmp_path):
    from postier.content.spam.hsdb import AreaDatabase, Entry
    entries = [Entry([b"a"], part=0), Entry([b"b"], part=1), Entry([b"c"], part=1),
               Entry([b"zz"], part=2)]
    probe = b"\x00" + b"abababab c" + b"\x00\x00"
    db = AreaDatabase(entries, cache_dir=str(tmp_path), label="t", probe=probe, chatty=4)
    assert entries[0].solo and entries[1].solo and not entries[2].solo and not entries[3].solo
    pd = db.part_dbs()
    assert len(pd) == 3
    assert len(pd[0][1]) == 1 and not pd[0][0]          # "a": its own database
    assert len(pd[1][1]) == 1 and len(pd[1][0]) == 1
    assert db.part_dbs() is pd                          # once per thread
    assert db.scan(b"\x00xbx\x00\x00", 1) == {1} and db.scan(b"\x00c\x00\x00", 1) == {2}
    again = [Entry([b"a"], part=0), Entry([b"b"], part=1), Entry([b"c"], part=1),
             Entry([b"zz"], part=2)]
    cached = AreaDatabase(again, cache_dir=str(tmp_path), label="t", probe=probe, chatty=4)
    assert cached.from_cache and again[0].solo and not again[2].solo
    other = AreaDatabase([Entry([b"a"]), Entry([b"b"])], label="t", probe=probe)
    assert other.key != db.key and not any(e.solo for e in other.entries)


# ---------------------------------------------------------------- spamhdr (native and pure)

class _Run:
    def __init__(self):
        self.values: dict = {}
        self.captured: list = []

    def _capture(self, rr, val):
        self.captured.append((rr.name, val))


class _Rule:
    def __init__(self, name: str, rx: bytes):
        self.name = name
        self.rx = re.compile(rx)

    def search(self, val: bytes) -> bool:
        return self.rx.search(val) is not None


class _Db:
    """A stand-in Hyperscan database: reports the ids whose literal is in the buffer."""

    def __init__(self, lits: dict[int, bytes], stop: bool = False):
        self.lits, self.stop, self.scans = lits, stop, 0

    def scan(self, buf, handler, flags, ctx, scratch):
        assert buf.startswith(b"\x00") and buf.endswith(b"\x00\x00") and scratch == "sc"
        self.scans += 1
        for i, lit in self.lits.items():
            if lit in buf and handler(i, 0, 0, 0, ctx):
                raise _Stop


class _Stop(Exception):
    pass


def test_header_rules_walk(impl):
    hdr = impl("spamhdr")
    eng = impl("spameng")
    rules = [_Rule("EXACT", rb"cheap"), _Rule("PRE", rb"pills?\b"), _Rule("NEG", rb"hello"),
             _Rule("MULTI", rb"x"), _Rule("CAP", rb"(?P<T>\w+)@"), _Rule("ALWAYS", rb"^\x00?$"),
             _Rule("SOLO", rb"zz"), _Rule("DIRECT", rb"d")]
    # (name, final, negated, multiple, capture, rule)
    info = [("EXACT", True, False, False, False, rules[0]), ("PRE", False, False, False, False, rules[1]),
            ("NEG", False, True, False, False, rules[2]), ("MULTI", False, False, True, False, rules[3]),
            ("CAP", True, False, False, True, rules[4]), ("ALWAYS", False, False, False, False, rules[5]),
            ("SOLO", False, False, False, False, rules[6]), ("DIRECT", False, False, False, False, rules[7])]
    # (if-unset, hit when undefined, rules, always, negated, direct, skip solos,
    # partition, members)
    plan = [(None, (), (0, 1, 2, 3), (), (2,), False, False, 0, None),
            (None, ("GONE",), (4,), (), (), False, False, 1, None),
            (b"", (), (5,), (5,), (), False, False, 2, None),
            (None, (), (6,), (6,), (), False, True, 3, None),
            (None, (), (7,), (), (), True, False, 4, None)]
    db0, db1, solo = _Db({0: b"cheap", 1: b"pill", 3: b"x"}), _Db({4: b"@"}), _Db({6: b"z"}, True)
    pdbs = [(((db0, "sc"),), ()), (((db1, "sc"),), ()), ((), ()), ((), ((solo, "sc"),))]

    def count(rr, val):
        return len(rr.rx.findall(val))

    run = _Run()
    vals = [b"cheap pillow xxx\n", b"ann@example.com\n", None, b"zz\n", b"abcd\n"]
    hdr.header_rules(run, plan, info, vals, pdbs, count, eng.on_match, eng.on_first_match, _Stop)
    assert run.values == {"EXACT": 1, "NEG": 1, "MULTI": 3, "CAP": 1, "ALWAYS": 1, "SOLO": 1,
                          "DIRECT": 1}
    assert run.captured == [("CAP", b"ann@example.com\n")]
    assert solo.scans == 0                  # skip: its entry is an "always" rule instead
    run2 = _Run()
    vals2 = [b"hello\x00cheap\n", None, b"x\n", b"q\n", None]
    hdr.header_rules(run2, plan, info, vals2, pdbs, count, eng.on_match, eng.on_first_match, _Stop)
    # a NUL: every rule of the group confirmed (EXACT by its regex); undefined: GONE
    assert run2.values == {"EXACT": 1, "GONE": 1}
    run3 = _Run()
    run3.values["EXACT"] = 1
    plan3 = [p[:6] + (False,) + p[7:] for p in plan]
    hdr.header_rules(run3, plan3, info, [b"cheap pill\n", None, None, b"zz\n", None], pdbs, count,
                     eng.on_match, eng.on_first_match, _Stop)
    assert run3.values == {"EXACT": 1, "PRE": 1, "NEG": 1, "GONE": 1, "ALWAYS": 1, "SOLO": 1}
    assert solo.scans == 1



def test_shared_partition_is_scanned_once_per_value(impl):
    """Groups sharing a partition (one request with several [if-unset], or
    equal relay strings) scan it once per distinct value; each group sees
    only its own rules' reports."""
    hdr = impl("spamhdr")
    eng = impl("spameng")
    rules = [_Rule("A", rb"cheap"), _Rule("B", rb"pill"), _Rule("C", rb"unset"),
             _Rule("D", rb"cheap")]
    info = [(r.name, True, False, False, False, r) for r in rules]
    plan = [(None, (), (0,), (), (), False, False, 0, frozenset({0})),
            (b"unset\n", (), (1, 2), (), (), False, False, 0, frozenset({1, 2})),
            (None, (), (3,), (), (), False, False, 1, None)]
    db = _Db({0: b"cheap", 1: b"pill", 2: b"unset"})
    db1 = _Db({3: b"cheap"})
    pdbs = [(((db, "sc"),), ()), (((db1, "sc"),), ())]
    run = _Run()
    hdr.header_rules(run, plan, info, [b"cheap pill\n", b"cheap pill\n", b"cheap\n"], pdbs,
                     None, eng.on_match, eng.on_first_match, _Stop)
    assert run.values == {"A": 1, "B": 1, "D": 1} and db.scans == 1 and db1.scans == 1
    run = _Run()
    hdr.header_rules(run, plan, info, [b"cheap\n", None, b"x\n"], pdbs,
                     None, eng.on_match, eng.on_first_match, _Stop)
    assert run.values == {"A": 1, "C": 1} and db.scans == 3    # the if-unset value: a 2nd scan
    run = _Run()
    hdr.header_rules(run, plan, info, [b"pill\n", b"cheap\n", None], pdbs,
                     None, eng.on_match, eng.on_first_match, _Stop)
    assert run.values == {} and db.scans == 5


def test_header_groups_share_partitions():
    sc = _scanner(r"""
header H_TO_1   To =~ /cheap/
header H_TO_2   To =~ /unset/ [if-unset: unset]
header H_TO_3   To =~ /pill/ [if-unset: x]
header H_RU     X-Spam-Relays-Untrusted =~ /helo=bad /
header H_RE     X-Spam-Relays-External =~ /rdns=bad /
header H_SUBJ   Subject =~ /cheap/
header H_TOCC   ToCc =~ /pill/
header H_MID    MESSAGEID =~ /\@a\.example/
header H_MID2   Message-Id =~ /\@b\.example/
score H_TOCC 1
score H_MID 1
score H_MID2 1
score H_TO_1 1
score H_TO_2 1
score H_TO_3 1
score H_RU 1
score H_RE 1
score H_SUBJ 1
""")
    cr = sc.compiled
    parts = dict(zip(cr.header_requests, cr.header_parts, strict=True))
    assert len(cr.header_requests) == 9 and len(set(cr.header_parts)) == 4
    assert parts["X-Spam-Relays-Untrusted"] == parts["X-Spam-Relays-External"]
    assert parts["MESSAGEID"] == parts["Message-Id"] and parts["ToCc"] == parts["To"]
    assert len({p for r, p in zip(cr.header_requests, cr.header_parts, strict=True) if r == "To"}) == 1
    assert [p[8] is None for p in cr.header_plan] == [r == "Subject" for r in cr.header_requests]
    hit = sc.run(b"Subject: cheap\n\nx\n").values
    assert {"H_TO_2", "H_SUBJ"} <= set(hit) and not {"H_TO_1", "H_TO_3"} & set(hit)
    hit = sc.run(b"To: cheap pill\nSubject: x\nMessage-Id: <1@a.example>\n\nx\n").values
    assert {"H_TO_1", "H_TO_3", "H_TOCC", "H_MID"} <= set(hit)
    assert not {"H_TO_2", "H_SUBJ", "H_MID2"} & set(hit)
    hit = sc.run(b"To: cheap\nCc: pill\nX-Message-Id: <2@a.example>\n"
                 b"Message-Id: <1@b.example>\n\nx\n").values
    assert {"H_TO_1", "H_TOCC", "H_MID", "H_MID2"} <= set(hit) and "H_TO_3" not in hit
    rcvd = (b"Received: from bad (bad [10.1.1.1]) by mx.example.org with SMTP id x;"
            b" Mon, 1 Jan 2024 00:00:00 +0000\n")
    r = sc.run(rcvd + b"Subject: x\n\nx\n")
    for name, meta, rx in (("H_RU", "x-spam-relays-untrusted", rb"helo=bad "),
                           ("H_RE", "x-spam-relays-external", rb"rdns=bad ")):
        assert (name in r.values) == bool(re.search(rx, r.hv.metadata[meta])), name


def test_exists_rules(impl):
    hdr = impl("spamhdr")
    headers = {"x-a": [b"1"], "x-empty": [], "subject": [b""]}
    checks = (("E_A", "x-a"), ("E_EMPTY", "x-empty"), ("E_SUBJ", "subject"), ("E_META", "x-meta"),
              ("E_NONE", "x-none"))
    assert hdr.exists_rules(headers, {"x-meta": b""}, checks) == ["E_A", "E_SUBJ", "E_META"]
    assert hdr.exists_rules({}, {}, checks) == []


def test_received_ranges_match_the_line_walk():
    """HeaderView._rcvd_range's slice for ALL-UNTRUSTED/-EXTERNAL against
    the walk it shortcuts."""
    rng = random.Random(13)
    lines = [b"Received: from a\n", b"received: by b\n", b"X-A: 1\n", b"Subject: Received: x\n",
             b"RECEIVED: c\n", b"From: d\n"]
    for _ in range(400):
        data = b"".join(rng.choice(lines) for _ in range(rng.randrange(0, 9))) + b"\nbody\n"
        hv = _view(data)
        hdrs = hv.msg.get_all_headers(False)
        for start in range(0, 5):
            cur, want = -1, []
            for h in hdrs:
                if h[:9].lower() == b"received:":
                    cur += 1
                if start <= cur:
                    want.append(h)
            assert hv._rcvd_range(start, None, False) == want, (data, start)


def test_chatty_backreference_rule_is_confirmed_without_its_scan():
    """An inexact header entry Hyperscan reports all over the header probe
    gets a database of its own (hsdb.Entry.solo), which the walk does not
    scan: the rule is confirmed on every value (an "always" rule)."""
    sc = _scanner(r"""
header H_BACKREF  ALL =~ /^From: (\w+)[^\n]*\n(?:[^\n]*\n)*Subject: [^\n]*\b\1\b/m
header H_PLAIN    ALL =~ /^Subject: [^\n]*report/m
score  H_BACKREF  1
score  H_PLAIN    1
""")
    cr = sc.compiled
    names = [rr.name for rr in cr.area_rules["header"]]
    i = names.index("H_BACKREF")
    assert cr.area_rules["header"][i].entry.solo
    [(unset, _m, idx, always, _n, direct, skip, part, members)] = cr.header_plan
    assert part == 0 and members is None
    assert skip and i in always and not direct
    yes = sc.run(b"From: John <j@example.com>\nTo: m@example.org\nSubject: for John: the report\n\nx\n")
    assert {"H_BACKREF", "H_PLAIN"} <= set(yes.values)
    no = sc.run(b"From: John <j@example.com>\nTo: m@example.org\nSubject: for Mary\n\nx\n")
    assert "H_BACKREF" not in no.values and "H_PLAIN" not in no.values


def test_ascii_display_names_skip_decoding_with_the_same_answer(monkeypatch):
    """HeaderView._addr_out's shortcut for a plain ASCII phrase (no
    encoded word, no newline): the \\s runs made one space, stripped,
    '...' unquoted -- what decode_header and the three substitutions give."""
    from postier.content.spam import bre
    from postier.content.spam.message import decode_header

    def ref(ph: str) -> bytes:
        dec = decode_header(ph.encode("latin-1"), "PMS:get:From:name")
        if bre.search(rb"\S", dec):
            dec = bre.sub(rb"\s+", b" ", dec).strip(b" ")
            dec = bre.sub(rb"^'(.*?)'$", rb"\1", dec, flags=bre.S)
        return dec

    rnd = random.Random(3)
    alphabet = [" ", "\t", "\r", "\x0b", "\x0c", "\x1c", "'", "a", "B", "=", "?", ",", "\x00"]
    phrases = ["'x'", "'", "''", " ' a ' ", "\t", "", "a  b", "'a' 'b'", "x=?y"]
    phrases += ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(8))) for _ in range(3000)]
    view = _view(b"From: x@y.z\n\nbody\n")
    for ph in phrases:
        view._addrs.clear()
        for memo in H._ADDR_OUT:
            memo.clear()
        monkeypatch.setattr(H, "_fast", lambda s, check, ph=ph: [{"phrase": ph, "address": None}])
        assert view._addr_out([b"line\n"], False, False, "From:name") == [ref(ph)], repr(ph)
