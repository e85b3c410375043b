"""spamhdr.compile_plan: header_rules over the plan compiled once per rule set
gives the same run.values, captures (in order) and memo as the pure walk
over the plan's and info's tuples: on random plans with stand-in databases
(shared partitions, if-unset values, NULs, negated, `multiple`, capture and
final rules, a memo across calls), and on a real rule set whose rules are
confirmed by libpcre2, RE2 or their own search(), over corpus-shaped and
broken header blocks.  Both twins (impl); the reference is always the pure
walk with the list plan."""

from __future__ import annotations

import random
import re

import pytest

from postier._pure import spamhdr as pure_hdr
from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner
from postier.maps import reflib


class _Run:
    def __init__(self):
        self.values: dict = {}
        self.captured: list = []

    def _capture(self, rr, val):
        self.captured.append((rr.name, val))


class _Rule:
    pre = None

    def __init__(self, name: str, rx: bytes):
        self.name, self.rx = name, re.compile(rx)

    def search(self, val: bytes) -> bool:
        return self.rx.search(val) is not None


class _Db:
    """A stand-in Hyperscan database: reports the ids whose literal is in the buffer."""

    def __init__(self, lits: dict[int, bytes], stop: bool = False):
        self.lits, self.stop = lits, stop

    def scan(self, buf, handler, flags, ctx, scratch):
        for i, lit in self.lits.items():
            if lit in buf and handler(i, 0, 0, 0, ctx):
                raise _Stop


class _Stop(Exception):
    pass


_LITS = [b"a", b"b", b"ab", b"ba", b"c", b"zz", b"\n", b"x"]


def _count(rr, val):
    return len(rr.rx.findall(val))


def _random_setup(rnd: random.Random):
    nrules = rnd.randint(1, 14)
    rules = [_Rule(f"R{i}", re.escape(rnd.choice(_LITS)) + rnd.choice([b"", b"+", b"$", b"\\b"]))
             for i in range(nrules)]
    info = []
    for r in rules:
        multiple = rnd.random() < 0.2
        info.append((r.name, rnd.random() < 0.5, rnd.random() < 0.15, multiple,
                     rnd.random() < 0.15, r))
    ids = list(range(nrules))
    rnd.shuffle(ids)
    groups: list[list[int]] = []
    while ids:
        k = rnd.randint(1, 4)
        groups.append(sorted(ids[:k]))
        ids = ids[k:]
    nparts = max(1, len(groups) - rnd.randint(0, 2))
    parts = [rnd.randrange(nparts) for _ in groups]
    plan = []
    for g, part in zip(groups, parts, strict=True):
        shared = parts.count(part) > 1
        always = tuple(sorted(rnd.sample(g, rnd.randint(0, len(g)))))
        negs = tuple(i for i in g if info[i][2])
        unset = rnd.choice([None, None, b"", b"ab\n"])
        missing = tuple(info[i][0] for i in g if rnd.random() < 0.3)
        plan.append((unset, missing, tuple(g), always, negs, rnd.random() < 0.15,
                     rnd.random() < 0.3, part, frozenset(g) if shared else None))
    pdbs = []
    for part in range(nparts):
        mine = [i for g, p in zip(groups, parts, strict=True) if p == part for i in g]
        lits = {i: rnd.choice(_LITS) for i in mine}
        solo = {i: lits.pop(i) for i in list(lits) if rnd.random() < 0.2}
        pdbs.append((((_Db(lits), "sc"),), ((_Db(solo, True), "sc"),) if solo else ()))
    return plan, info, pdbs


def _random_vals(rnd: random.Random, n: int) -> list:
    out = []
    for _ in range(n):
        if rnd.random() < 0.25:
            out.append(None)
        else:
            out.append(b"".join(rnd.choice(_LITS + [b"\x00", b" ", b"\xff"])
                                for _ in range(rnd.randint(0, 6))))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_compiled_plan_walks_like_the_list_plan(impl, seed):
    hdr = impl("spamhdr")
    eng = impl("spameng")
    rnd = random.Random(seed)
    plan, info, pdbs = _random_setup(rnd)
    cplan = hdr.compile_plan(plan, info)
    memo_ref = pure_hdr.new_memo(len(plan))
    memo_got = hdr.new_memo(len(plan))
    for _ in range(12):
        vals = _random_vals(rnd, len(plan))
        ref, got = _Run(), _Run()
        start = {"R0": 1} if rnd.random() < 0.2 else {}
        ref.values.update(start)
        got.values.update(start)
        pure_hdr.header_rules(ref, plan, info, list(vals), pdbs, _count, eng.on_match,
                              eng.on_first_match, _Stop, memo_ref)
        hdr.header_rules(got, cplan, None, list(vals), pdbs, _count, eng.on_match,
                         eng.on_first_match, _Stop, memo_got)
        assert got.values == ref.values, (seed, vals)
        assert got.captured == ref.captured, (seed, vals)
    assert memo_got == memo_ref


def test_compile_plan_rejects_a_rule_index_out_of_range(impl):
    hdr = impl("spamhdr")
    info = [("A", True, False, False, False, _Rule("A", b"a"))]
    plan = [(None, (), (0, 1), (), (), False, False, 0, None)]
    with pytest.raises(IndexError):
        hdr.compile_plan(plan, info)
    run = _Run()
    hdr.header_rules(run, hdr.compile_plan(plan[:0], info), None, [], [], _count, None, None,
                     _Stop)
    assert run.values == {}


RULES = r"""
header H_PLAIN      Subject =~ /cheap\s+pills/i
header H_LOOK       Subject =~ /^(?!re:)\w+ top/i
header H_DOLLAR     Subject =~ /top$/
header H_BACK       From:addr =~ /^([a-z]+)\@\1\./i
header H_NEG        Subject !~ /zzz/
header H_NEG_BACK   From !~ /(\w)\1\1/
header H_MULTI      Subject =~ /o/
tflags H_MULTI      multiple maxhits=3
header H_CAP        From =~ /(?<FRM>[a-z]+)\@/
header H_UNSET      X-Foo =~ /^UNSET$/ [if-unset: UNSET]
header H_MID1       Message-ID =~ /\@example\.com>$/
header H_MID2       Message-Id =~ /^<\d+/
header H_ALL        ALL =~ /^To: .*abab/m
header H_RAW        Subject:raw =~ /=\?utf-8\?/i
header H_MISS       Reply-To =~ /x/
header H_MISS2      Reply-To !~ /x/
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _messages() -> list[bytes]:
    rnd = random.Random(7)
    base = [
        b"From: joe@joe.example\nTo: abab@y.z\nSubject: cheap   PILLS top\n"
        b"Message-ID: <123@example.com>\n\nhi\n",
        b"From: Ann <aaa@b.c>\nSubject: re: zzz top\nMessage-Id: <x@y>\nX-Foo: bar\n\nhi\n",
        b"From: \"x\" <mail@abc.abc>\nSubject: =?utf-8?q?top?=\nReply-To: x\n\nhi\n",
        b"Subject: a\x00b top\nFrom: bob\xff@c.d\n\nhi\n",
        b"From: broken <<@>\nSubject:\nTo:\n\n",
        b"From: x@y.z\nSubject: hello top\n\nhi\n",
    ]
    out = list(base)
    parts = [b"cheap", b" pills", b" top", b"zzz", b"\xff", b"\x00", b"aaa", b"@", b"=?utf-8?",
             b"\n ", b"<", b">", b"1"]
    for _ in range(40):
        hdrs = []
        for name in (b"From", b"To", b"Subject", b"Message-ID", b"Message-Id", b"Reply-To",
                     b"X-Foo"):
            if rnd.random() < 0.7:
                hdrs.append(name + b": " + b"".join(rnd.choice(parts)
                                                    for _ in range(rnd.randint(0, 5))))
        out.append(b"\n".join(hdrs) + b"\n\nbody\n")
    return out


def test_rule_set_walk_matches_the_pure_list_walk(impl, sc):
    from postier.content.spam import engine as E
    hdr = impl("spamhdr")
    eng = impl("spameng")
    cr = sc.compiled
    if reflib.pcre2_available():
        fast = [i[6] for i in cr.header_info if i[6] is not None]
        assert any(f[0] for f in fast) and any(not f[0] for f in fast)   # libpcre2 and RE2
    cplan = hdr.compile_plan(cr.header_plan, cr.header_info)
    pdbs = cr.dbs["header"].part_dbs()
    hit_any = set()
    for data in _messages():
        run = E.Run(cr, data)
        vals = run.hv.values(cr.header_requests, cr.header_names)
        ref, got = _Run(), _Run()
        pure_hdr.header_rules(ref, cr.header_plan, cr.header_info, list(vals), pdbs,
                              E._header_count, eng.on_match, eng.on_first_match,
                              E._ScanTerminated)
        hdr.header_rules(got, cplan, None, list(vals), pdbs, E._header_count, eng.on_match,
                         eng.on_first_match, E._ScanTerminated)
        assert got.values == ref.values, data
        assert got.captured == ref.captured, data
        hit_any |= set(ref.values)
    # the rule set's confirmation kinds all took part
    assert {"H_PLAIN", "H_LOOK", "H_DOLLAR", "H_BACK", "H_NEG", "H_NEG_BACK", "H_MULTI",
            "H_CAP", "H_UNSET", "H_MID1", "H_MID2", "H_ALL", "H_RAW"} - hit_any == set()
