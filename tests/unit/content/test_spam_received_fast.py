"""Received parsing shortcuts (postier.content.spam.received with
postier._native.spamrcvd and its pure twin): the regex-free line edits
(Line.cut_prefix, Line.replace_first, a tail cut by sub_from) give the
regex substitutions' strings and leave the line matching like re.search;
the relay strings patch intl/msa exactly as SpamAssassin's substitutions do.
"""

from __future__ import annotations

import random
import re

import pytest

from postier.content.spam import received as R


@pytest.fixture
def rcvd(impl, monkeypatch):
    mod = impl("spamrcvd")
    monkeypatch.setattr(R, "_rcvd", mod)
    return mod


_TOKS = ["from ", "FROM ", "(from ", "by ", " ", "(", ")", ")by ", "[", "]", "192.0.2.1", "helo=",
         "with ", "ESMTP", "Postfix", " id ", "x.example", "@", "<", ">", ";", "Exim",
         "Tue, 10 Nov 2026 12:00:00 +0000", "\xe9", "\u0130", "fROM "]
_DATE = (r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|Ma[ry]|"
         r"A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$")


def test_line_edits_are_the_regex_substitutions(impl):
    """cut_prefix(p) == re.sub("^" + escape(p), "", s, 1), replace_first(a, b)
    == re.sub(escape(a), b, s, 1), a tail cut by sub_from == sub; after each,
    m() answers as re.search on the new line (the pair mask kept across a
    prefix or tail cut must still hold)."""
    mod = impl("spamrcvd")
    pats = mod.parser_patterns()
    rng = random.Random(7)
    edits = cuts = 0
    for _ in range(300):
        s = rng.choice(["from ", "FROM ", "(from ", ""]) + \
            "".join(rng.choice(_TOKS) for _ in range(rng.randint(1, 14)))
        line = mod.Line(s, R._cache, R._compile_entry)
        # prime the masks and the lower-cased copy on the old line
        line.m(r" by (\S+)(?:[^-A-Za-z0-9\;\.]|$)")
        line.m(r"^\(?from ", re.I)
        for p in ("from ", "FROM ", "(from "):
            want = re.sub("^" + re.escape(p), "", line.s, count=1)
            got = line.cut_prefix(p)
            assert got == (want != s or s.startswith(p))
            assert line.s == want
            s = want
            cuts += got
        want = re.sub(re.escape(")by "), ") by ", s, count=1)
        assert line.replace_first(")by ", ") by ") == (")by " in s)
        assert line.s == want
        s = want
        floor = mod._date_floor(s)
        m = re.compile(_DATE, re.A | re.S).search(s, floor)
        assert line.sub_from(_DATE, "", floor) == (m is not None)
        if m is not None:
            s = s[:m.start()] + s[m.end():]
            edits += 1
        assert line.s == s
        for pat, flags in pats:
            want_m = R._rx(pat, flags).search(s)
            assert line.m(pat, flags) == (want_m is not None), (s, pat)
            if want_m is not None:
                assert line[0] == want_m.group(0)
    assert cuts > 50 and edits > 20


def test_cut_keeps_matching_after_the_cut(impl):
    mod = impl("spamrcvd")
    line = mod.Line("from a.example (b [192.0.2.1]) by c.example", R._cache, R._compile_entry)
    assert line.m(r" by ") and line.m("from a", 0)
    assert line.cut_prefix("from ") and line.s == "a.example (b [192.0.2.1]) by c.example"
    assert not line.m("from a") and line.m(r"^(\S+) \((\S+) \[")
    assert line[2] == "b"
    assert not line.cut_prefix("from ")
    assert not line.replace_first(")by ", ") by ") and line.s.endswith("by c.example")


_AUTH_MSA = ("from h.example (h.example [192.0.2.4]) (Authenticated sender: u) by mx.example "
             "(x msa=1 y) with ESMTP id ABCD; Tue, 10 Nov 2026 12:00:00 +0000")


def test_intl_and_msa_patched_like_spamassassin(rcvd):
    """SpamAssassin fixes the relay string with s/ intl=\\d / intl=N / and
    s/ msa=\\d / msa=N /: the first occurrence, which for msa can sit in the
    auth text (here "Postfix (x msa=1 y)": rewritten to msa=0)."""
    rel = R.parse_relays([_AUTH_MSA], [], ["192.0.2.0/24"], None, None)
    assert rel.trusted_str.endswith(" intl=1 id=ABCD auth=Postfix (x msa=0 y) msa=0 ]")
    rel = R.parse_relays([_AUTH_MSA], [], ["192.0.2.0/24"], None, ["192.0.2.4"])
    assert rel.trusted_str.endswith(" intl=1 id=ABCD auth=Postfix (x msa=1 y) msa=0 ]")
    # not trusted (nor authenticated): nothing to patch
    rel = R.parse_relays([_AUTH_MSA.replace(" (Authenticated sender: u)", "")], [], ["10.0.0.0/8"],
                         None, None)
    assert rel.trusted_str == ""
    assert rel.untrusted_str.endswith(" envfrom= intl=0 id=ABCD auth= msa=0 ]")
    # an MSA relay: msa=1
    line = ("from h.example (h.example [10.1.2.3]) by mx.example (Postfix) with ESMTP id QQQQ; "
            "Tue, 10 Nov 2026 12:00:00 +0000")
    rel = R.parse_relays([line], [], ["10.0.0.0/8"], None, ["10.1.2.3"])
    assert rel.trusted_str.endswith(" intl=1 id=QQQQ auth= msa=1 ]")


def test_network_sets_parsed_once():
    a = R._netset(["!10.9.0.0/16 10.0.0.0/8"])
    assert a is R._netset(["!10.9.0.0/16 10.0.0.0/8"])
    assert a.contains_ip("10.1.2.3") and not a.contains_ip("10.9.1.1")
    assert not R._netset(None) and R._netset(None) is R._netset([])


def test_trailing_newline_makes_no_difference(rcvd):
    """Run passes the Received values without get_headers' trailing "\\n":
    the relays are those of the values with it (whitespace is collapsed and
    stripped either way), also for values ending in spaces or holding tabs."""
    base = ("from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org (Postfix) "
            "with ESMTP id 4AbC12 for <u@example.org>; Tue, 10 Nov 2026 12:00:00 +0000")
    values = [base, base + " ", base + "  ", base.replace(" by ", "\tby "), " " + base,
              base.replace(" (Postfix)", "  (Postfix)"), "", " ",
              "from [10.0.0.2] by mx.example.org with SMTP id QQ; Tue, 10 Nov 2026 12:00:00 +0000 "]
    for v in values:
        for orig in ([], ["203.0.113.9"], ["203.0.113.9\n"]):
            def strs(lines, orig=orig):
                rel = R.parse_relays(lines, orig, None, None, None)
                return (rel.trusted_str, rel.untrusted_str, rel.internal_str, rel.external_str,
                        rel.num_unparseable, rel.last_trusted_index, rel.last_internal_index)
            got = strs([v])
            assert got == strs([v + "\n"]), repr(v)
    rel = R.parse_relays([base], ["203.0.113.9"], None, None, None)
    assert rel.untrusted_str.startswith("[ ip=192.0.2.1 rdns=mail.example.com ")
    assert "[ ip=203.0.113.9 rdns= helo= by= " in rel.untrusted_str


def test_lines_of_other_caches_use_their_own_entries(impl):
    """Line remembers the last cache's typed table (every Line of a run has
    the same cache): a Line of another cache must still look its patterns up
    (and compile them) in its own cache, also when the caches alternate."""
    mod = impl("spamrcvd")
    s = "from a.example (b [192.0.2.1]) by c.example"
    pat = r"^from (\S+) \((\S+) \[(${IP})\]\) by (\S+)"
    caches = [{}, {}, R._cache]
    for _ in range(2):
        for c in caches:
            line = mod.Line(s, c, R._compile_entry)
            assert line.m(pat) and line[3] == "192.0.2.1" and line[4] == "c.example"
            assert pat in c
            assert not mod.Line("from x by y", c, R._compile_entry).m(pat)


def test_network_sets_only_when_configured():
    """Without trusted_networks and internal_networks the network sets are
    not parsed (the walk reads none); msa_networks alone changes nothing,
    and with trusted_networks the msa set applies."""
    lines = ["from a.example (a.example [198.51.100.7]) by mx.example.org (Postfix) with ESMTP id 1; "
             "Tue, 10 Nov 2026 12:00:00 +0000",
             "from b.example (b.example [10.0.0.5]) by a.example (Postfix) with ESMTP id 2; "
             "Tue, 10 Nov 2026 11:00:00 +0000"]

    def strs(*nets):
        rel = R.parse_relays(lines, [], *nets)
        return (rel.trusted_str, rel.untrusted_str, rel.internal_str, rel.external_str,
                rel.last_trusted_index, rel.last_internal_index)
    plain = strs(None, None, None)
    assert strs([], [], []) == plain == strs(None, None, ["198.51.100.0/24"])
    msa = strs(["198.51.100.0/24"], None, ["198.51.100.0/24"])
    assert msa != plain and "msa=1" in msa[0]
    assert strs(["198.51.100.0/24"], None, None) != msa
