"""Cheaper confirmations of line-area rules (engine.Run._lines / _line_rule).

- Past a family gate (engine._family_gates), its two rules are confirmed
  only on the subjects the gate itself matches.
- A `multiple` rule counted at line starts with Python `re` is counted with
  libpcre2 (rulecache.LazyPattern.ref_count), which must give finditer's
  count.
- A rule whose Hyperscan entry is inexact only because of one negative
  look-ahead of plain text (engine._lookahead_gap) takes Hyperscan's report
  as final where the buffer does not hold that text.

Each is compared with the plain answer (Python `re` per subject, or the
scan without the shortcut).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam import perlre, rulecache
from postier.content.spam.scanner import SpamScanner


def _msg(body: bytes, subject: bytes = b"s") -> bytes:
    return b"From: a@example.com\nSubject: " + subject + b"\n\n" + body


# -- family gate: members confirmed on the subjects the gate matches

FAMILY = r"""
body  __F_LONG   /(?:(?:name|age|phone)[\s,:]{0,3}(?:\((?:req|opt)\))?[\s,]+){4}/i
body  __F_SHORT  /(?:(?:name|age|phone)[\s,:]{0,3}[\s,]+){2}/i
score __F_LONG   0.1
score __F_SHORT  0.1
"""

FAMILY_BODIES = [
    b"hello\n\nname, age, phone, name, and more\n\nbye\n",
    b"intro\n\nName (req), AGE (opt), phone, name here\n\nname x\n",
    b"name\n\nage, phone\n",
    b"x name age y\n\nnothing\n\nphone name z\n",
]


def _family_scanner() -> tuple[SpamScanner, object]:
    sc = SpamScanner(rules=C.parse_text(FAMILY, "rules.cf"), cache_dir=None)
    cr = sc.compiled
    rules = cr.area_rules["body"]
    gates = E._family_gates(rules, SimpleNamespace(always=frozenset(range(len(rules)))))
    assert len(gates) == 1
    cr.__dict__["_line_gates"] = {"body": gates}
    return sc, gates[0][0]


def test_family_members_see_only_the_subjects_the_gate_matches(monkeypatch):
    sc, gate = _family_scanner()
    plain = SpamScanner(rules=C.parse_text(FAMILY, "rules.cf"), cache_dir=None)
    plain.compiled.__dict__["_line_gates"] = {"body": []}
    seen: dict[str, list[list[bytes]]] = {}
    line_rule = E.Run._line_rule

    def spy(self, rr, lines):
        seen.setdefault(rr.name, []).append(list(lines))
        return line_rule(self, rr, lines)

    monkeypatch.setattr(E.Run, "_line_rule", spy)
    hits = set()
    for body in FAMILY_BODIES:
        seen.clear()
        run = sc.run(_msg(body))
        got = {n for n in run.values if n.startswith("__F")}
        assert got == {n for n in plain.run(_msg(body)).values if n.startswith("__F")}, body
        hits |= got
        matching = [s for s in run.body() if gate.contains(perlre.joined_buffer([s]))]
        for calls in seen.get("__F_LONG", []):
            assert calls == matching        # never the subjects the gate rules out
            assert len(calls) < len(run.body())
    assert hits == {"__F_LONG", "__F_SHORT"}


# -- libpcre2 counts of line-start rules

FORM = ("^(?>\\s{0,50})(?:(?:\\d{1,3}[).:]\\s?)?(?:your\\s)?)?(?:name|e-?mail|address)"
        "(?:\\s*[/,]\\s*|\\s)?:?(?:[-_.:\\s]|=20){1,4}$")

FORM_TEXTS = [
    b"Name:\n  email : ___\n\t\tADDRESS:\nname: x\n e-mail:__ \n",
    b"1. your name: ____\n2) e-mail ....\n\n\n   address=20\nnot a name: here\n",
    b"name\n\nname\n \n name \nname:",
    b"\n" * 5 + b"Address: \t\n" * 7,
    b"xname: __\nyour  name: __\n 12. Email:  \n",
    b"name:\x00\nname:\r\n\xff\xfe name: \n",
    b"",
]


def _lazy(pattern: str, mods: str) -> rulecache.LazyPattern:
    p = perlre.compile_pattern(pattern, mods)
    return rulecache.pattern_from_record(rulecache.pattern_record(p, mods))


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
def test_ref_count_is_finditer(limit):
    lp = _lazy(FORM, "im")
    if lp._ref is None:
        pytest.skip("libpcre2 not available")
    py = re.compile(FORM.encode(), re.I | re.M)
    for text in FORM_TEXTS:
        for data in (text, text.replace(b"\n", b"\r\n"), text * 3):
            want = sum(1 for _ in py.finditer(data))
            if limit:
                want = min(want, limit)
            assert lp.ref_count(data, limit) == want, data


def test_ref_count_without_libpcre2_form_is_none():
    lp = _lazy(FORM, "im")
    lp.__dict__["_ref"] = None
    assert lp.ref_count(b"name:\n", 0) is None


def test_line_start_rule_counts_with_and_without_libpcre2(monkeypatch):
    rules = f"rawbody __FORM m!{FORM}!im\ntflags __FORM multiple\nscore __FORM 0.1\n"
    msg = _msg(b"".join(FORM_TEXTS[:5]))
    sc = SpamScanner(rules=C.parse_text(rules, "rules.cf"), cache_dir=None)
    run = sc.run(msg)
    py = re.compile(FORM.encode(), re.I | re.M)
    want = sum(len(py.findall(s)) for s in run.rawbody())
    assert want >= 10
    assert run.values.get("__FORM") == want
    monkeypatch.setattr(rulecache.LazyPattern, "ref_count", lambda self, data, limit=0: None)
    sc2 = SpamScanner(rules=C.parse_text(rules, "rules.cf"), cache_dir=None)
    assert sc2.run(msg).values.get("__FORM") == want


# -- negative look-ahead gaps

def _gap(pattern: str, mods: str) -> bytes | None:
    p = perlre.compile_pattern(pattern, mods)
    return E._lookahead_gap(pattern, mods, perlre.hyperscan_entry(p, pattern, mods, joined=True))


@pytest.mark.parametrize(("pattern", "mods", "needle"), [
    (r"https?://(?:[A-Za-z0-9-_]+)\.(?!paypal\.com)(?:[A-Za-z0-9-_\.]+)", "i", b"paypal.com"),
    (r"\bx(?!CIALI[sz])\w+", "", b"ciali"),     # the text every match of it starts with
    (r"\bx(?=abc)\w+", "", None),               # positive
    (r"(?<!abc)x\w+", "", None),                # look-behind
    (r"\bx(?!abc)(?!def)\w+", "", None),        # two look-arounds
    (r"\bx(?!ab)\w+", "", None),                # too short to be worth a test
    (r"\bx(?![ab]cd)\w+", "", None),            # no plain text at its start
    (r"\bx(?:y(?!abc))?\w+", "", None),         # nested (a tree of another shape): not proved
    (r"\bx(?!abc)(\w)\1", "", None),            # the rest is inexact too
    (r"\bx\w+", "", None),                      # no look-ahead
])
def test_lookahead_gap(pattern, mods, needle):
    assert _gap(pattern, mods) == needle


GAP_RULES = r"""
body     __NOTPP   /\bgo\s(?!paypal\.com)[a-z.]+/i
rawbody  __URLNPP  m'https?://(?:[A-Za-z0-9-_]+)\.(?!paypal\.com)(?:[A-Za-z0-9-_\.]+)'i
score    __NOTPP   0.1
score    __URLNPP  0.1
"""


@pytest.mark.parametrize(("body", "want"), [
    (b"go example.com now\n", {"__NOTPP"}),
    (b"go paypal.com now\n", set()),
    (b"go PayPal.Com now\n", set()),
    (b"go paypal.com now\n\nand go example.org\n", {"__NOTPP"}),
    (b"see paypal.com\n\ngo example.org\n", {"__NOTPP"}),
    (b"go paypal.comx\n", set()),
    (b"http://www.example.com/\n", {"__URLNPP"}),
    (b"http://www.paypal.com/\n", set()),
    (b"http://www.PAYPAL.COM/ http://www.example.com/\n", {"__URLNPP"}),
    (b"http://localhost/ go\n", set()),
    (b"http://www.paypal.company.example/\n", set()),
    (b"http://www.paypal.com/\n\nhttp://www.example.com/\n", {"__URLNPP"}),
])
def test_lookahead_gap_rules_hit_like_the_pattern(body, want):
    sc = SpamScanner(rules=C.parse_text(GAP_RULES, "rules.cf"), cache_dir=None)
    needles = {rr.name: rr.needle for a in E.LINE_AREAS for rr in sc.compiled.area_rules[a]}
    assert needles == {"__NOTPP": b"paypal.com", "__URLNPP": b"paypal.com"}
    run = sc.run(_msg(body))
    assert {n for n in run.values if n.startswith("__")} & {"__NOTPP", "__URLNPP"} == want


def test_a_needle_nearly_always_there_is_dropped_and_results_stay():
    sc = SpamScanner(rules=C.parse_text(GAP_RULES, "rules.cf"), cache_dir=None)
    rr = next(r for r in sc.compiled.area_rules["body"] if r.name == "__NOTPP")
    for k in range(E.PRE_TRIAL):
        assert rr.needle == b"paypal.com", k
        body = b"go paypal.com now\n\ngo example.org\n" if k % 2 else b"go paypal.com\n"
        assert ("__NOTPP" in sc.run(_msg(body)).values) == bool(k % 2)
    assert rr.needle is None            # 64 tries, the text was there every time
    assert "__NOTPP" in sc.run(_msg(b"go example.org\n")).values
    assert "__NOTPP" not in sc.run(_msg(b"go paypal.com\n")).values
