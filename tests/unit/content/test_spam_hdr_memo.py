"""spamhdr.header_rules' memo across messages (new_memo): a group's results
for a short value seen before are applied without scanning or confirming
again, with the same hits, counts, captures and negated rules; the memo is
bounded and dropped for a group whose values do not repeat.  Both twins."""

from __future__ import annotations

import re

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner


class _Run:
    def __init__(self):
        self.values: dict = {}
        self.captured: list = []

    def _capture(self, rr, val):
        self.captured.append((rr.name, val))


class _Rule:
    """A rule answering with Python re, counting its confirmations."""

    pre = None

    def __init__(self, name: str, rx: bytes):
        self.name, self.rx, self.calls = name, re.compile(rx), 0

    def search(self, val: bytes) -> bool:
        self.calls += 1
        return self.rx.search(val) is not None


class _Db:
    """A stand-in Hyperscan database: reports the ids whose literal is in the buffer."""

    def __init__(self, lits: dict[int, bytes]):
        self.lits, self.scans = lits, 0

    def scan(self, buf, handler, flags, ctx, scratch):
        self.scans += 1
        for i, lit in self.lits.items():
            if lit in buf:
                handler(i, 0, 0, 0, ctx)


class _Stop(Exception):
    pass


def _setup():
    rules = [_Rule("EXACT", rb"cheap"), _Rule("PRE", rb"pills?\b"), _Rule("NEG", rb"hello"),
             _Rule("MULTI", rb"x"), _Rule("CAP", rb"(?P<T>\w+)@"), _Rule("ALWAYS", rb"^\x00?$")]
    # (name, final, negated, multiple, capture, rule)
    info = [("EXACT", True, False, False, False, rules[0]), ("PRE", False, False, False, False, rules[1]),
            ("NEG", False, True, False, False, rules[2]), ("MULTI", False, False, True, False, rules[3]),
            ("CAP", False, False, False, True, rules[4]), ("ALWAYS", False, False, False, False, rules[5])]
    plan = [(None, (), (0, 1, 2, 3), (), (2,), False, False, 0, None),
            (None, ("GONE",), (4,), (), (), False, False, 1, None),
            (b"", (), (5,), (5,), (), False, False, 2, None)]
    dbs = [_Db({0: b"cheap", 1: b"pill", 2: b"hello", 3: b"x"}), _Db({4: b"@"})]
    pdbs = [(((dbs[0], "sc"),), ()), (((dbs[1], "sc"),), ()), ((), ())]
    return rules, info, plan, dbs, pdbs


def _count(rr, val):
    rr.calls += 1
    return len(rr.rx.findall(val))


def _walk(hdr, eng, plan, info, vals, pdbs, memo):
    run = _Run()
    hdr.header_rules(run, plan, info, vals, pdbs, _count, eng.on_match, eng.on_first_match, _Stop,
                     memo)
    return run


def test_memo_answers_a_value_seen_before_without_scans_or_confirmations(impl):
    hdr, eng = impl("spamhdr"), impl("spameng")
    rules, info, plan, dbs, pdbs = _setup()
    memo = hdr.new_memo(len(plan))
    vals = [b"cheap pillow xxx\n", b"ann@example.com\n", None]
    first = _walk(hdr, eng, plan, info, vals, pdbs, memo)
    assert first.values == {"EXACT": 1, "NEG": 1, "MULTI": 3, "CAP": 1, "ALWAYS": 1}
    assert first.captured == [("CAP", b"ann@example.com\n")]
    scans, calls = [d.scans for d in dbs], [r.calls for r in rules]
    again = _walk(hdr, eng, plan, info, vals, pdbs, memo)
    assert again.values == first.values and again.captured == first.captured
    assert [d.scans for d in dbs] == scans and [r.calls for r in rules] == calls
    # a negated rule that matched, from the memo: no hit; undefined: GONE (no memo)
    neg = _walk(hdr, eng, plan, info, [b"hello x\n", None, None], pdbs, memo)
    neg2 = _walk(hdr, eng, plan, info, [b"hello x\n", None, None], pdbs, memo)
    assert neg.values == neg2.values == {"MULTI": 1, "GONE": 1, "ALWAYS": 1}
    # the same results as the walk without a memo
    plain = _walk(hdr, eng, plan, info, vals, pdbs, None)
    assert plain.values == first.values and plain.captured == first.captured


def test_memo_skips_long_values_and_is_bounded(impl):
    hdr, eng = impl("spamhdr"), impl("spameng")
    rules, info, plan, dbs, pdbs = _setup()
    memo = hdr.new_memo(len(plan))
    long_val = b"cheap " + b"y" * hdr.MEMO_LEN + b"\n"
    for _ in range(2):
        run = _walk(hdr, eng, plan, info, [long_val, None, None], pdbs, memo)
        assert run.values == {"EXACT": 1, "NEG": 1, "GONE": 1, "ALWAYS": 1}
    assert dbs[0].scans == 2                    # too long to remember: scanned each time
    assert long_val not in memo[0][0]
    # distinct short values that repeat half the time: the memo stays, bounded
    for k in range(hdr.MEMO_SIZE * 3):
        v = b"cheap %d\n" % (k // 2)
        run = _walk(hdr, eng, plan, info, [v, None, None], pdbs, memo)
        assert run.values == {"EXACT": 1, "NEG": 1, "GONE": 1, "ALWAYS": 1}
        assert memo[0] is not None and len(memo[0][0]) <= hdr.MEMO_SIZE


def test_memo_is_dropped_for_values_that_do_not_repeat(impl):
    hdr, eng = impl("spamhdr"), impl("spameng")
    rules, info, plan, dbs, pdbs = _setup()
    memo = hdr.new_memo(len(plan))
    for k in range(hdr.MEMO_TRIAL + 1):
        run = _walk(hdr, eng, plan, info, [b"x%d\n" % k, b"a@b\n", None], pdbs, memo)
        assert run.values == {"NEG": 1, "MULTI": 1, "CAP": 1, "ALWAYS": 1}
    assert memo[0] is None                      # every value new: no more look-ups
    assert memo[1] is not None and memo[1][2] >= hdr.MEMO_TRIAL     # always the same value
    scans = dbs[0].scans
    _walk(hdr, eng, plan, info, [b"x1\n", b"a@b\n", None], pdbs, memo)
    assert dbs[0].scans == scans + 1


_RULES = """
header H_SUBJ Subject =~ /cheap/
header H_MULTI Subject =~ /e/
tflags H_MULTI multiple
header H_NEG X-Mailer !~ /mutt/
header __H_CAP To:addr =~ /(?<HT>[^@]+)@/
header H_TMPL Subject =~ /%{HT}/
header H_UNSET X-None =~ /^u$/ [if-unset: u]
"""


def test_engine_results_with_and_without_the_memo():
    rs = C.parse_text(_RULES, "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    memo = sc.compiled.header_memo
    msgs = [b"To: bob@example.net\nSubject: cheap for bob, free\nX-Mailer: mutt\n\nhi\n",
            b"To: ann@example.net\nSubject: cheap for bob, free\n\nhi\n"]
    first = [sc.run(m) for m in msgs]
    assert any(m is not None and m[2] for m in memo)        # answers from the memo
    again = [sc.run(m) for m in msgs]
    sc.compiled.header_memo = None                          # the walk without a memo
    plain = [sc.run(m) for m in msgs]
    for a, b, c in zip(first, again, plain, strict=True):
        assert a.values == b.values == c.values
        assert a.captures == b.captures == c.captures
    assert first[0].values["H_MULTI"] == 3 and "H_NEG" not in first[0].values
    assert first[0].values["H_TMPL"] == 1 and "H_TMPL" not in first[1].values
    assert first[1].values["H_NEG"] == 1 and first[1].values["H_UNSET"] == 1


def _envfrom_reference(hv) -> list:
    """HeaderView._envelope_from_inner's answer asking get() for every header
    (no relay envelope sender, no envelope_sender_header)."""
    xs = hv.get("X-Sender:first:addr")
    if xs and b"@" in xs[0]:
        for r in hv.get("Received"):
            if b"(fetchmail" in r:
                return []
    for name, stop in (("X-Envelope-From", True), ("Envelope-Sender", False), ("Return-Path", False)):
        v = hv.get(name + ":first:addr")
        if v:
            low = (hv.value("ALL") or b"").lower()
            if re.search(rb"^received:.*?^" + name.lower().encode() + rb":", low, re.M | re.S):
                if stop:
                    return []
                continue
            return [v[0]]
    return []


_ENVFROM_MSGS = [
    b"Return-Path: <r@x.org>\nReceived: from a by b; now\n\nhi\n",
    b"Received: from a by b; now\nReturn-Path: <r@x.org>\n\nhi\n",
    b"X-Envelope-From: <e@x.org>\nReceived: from a by b\nReturn-Path: <r@x.org>\n\n",
    b"Received: from a by b\nX-Envelope-From: <e@x.org>\nReturn-Path: <r@x.org>\n\n",
    b"Envelope-Sender: s@x.org\nReceived: from a by b\nReturn-Path: <r@x.org>\n\n",
    b"Received: from a by b\nEnvelope-Sender: s@x.org\nReturn-Path: <r@x.org>\n\n",
    b"X-Sender: <q@x.org>\nReceived: by localhost with POP3 (fetchmail-6.4.0)\nReturn-Path: <r@x.org>\n\n",
    b"X-Sender: nobody\nReturn-Path: <r@x.org>\n\n",
    b"Return-Path: <>\nEnvelope-Sender:\n\n",
    b"Subject: none\n\n",
    b"",
]


def test_envelope_from_skips_absent_headers_with_the_same_answer():
    from postier.content.spam import headers as H
    from postier.content.spam.message import Message
    from postier.content.spam.received import parse_relays
    def view(data: bytes):
        return H.HeaderView(Message(data), parse_relays([], [], [], [], []))

    for data in _ENVFROM_MSGS:
        assert view(data).get("EnvelopeFrom") == _envfrom_reference(view(data)), data
    got = [view(data).get("EnvelopeFrom") for data in _ENVFROM_MSGS]
    # (a NAME line after the first Received line does not count)
    assert got[:6] == [[b"r@x.org"], [], [b"e@x.org"], [], [b"s@x.org"], []]
    assert got[6] == [] and got[-1] == []       # X-Sender and a fetchmail line; nothing at all
