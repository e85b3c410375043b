"""Run._templates: %{TAG} rules of the same tags, required tags, case
folding and subjects share one test of their values per message; each
rule still gets its own answer (its own pattern, count, subjects)."""

from __future__ import annotations

import pytest

from postier.content.spam import conf as C
from postier.content.spam.scanner import SpamScanner

RULES = r"""
util_rb_tld           org net com
header __TO_CAP       To:addr =~ /(?<TO_ADDR>.+)/
header __SUBJ_CAP     Subject =~ /^tag (?<WORD>\w+)/
uri    U_CASE         /[?&]to=%{TO_ADDR}/
uri    U_FOLD         /[?&]to=%{TO_ADDR}/i
uri    U_XPARAM       /[?&]to=%{TO_ADDR}&x=1/i
uri    U_MULTI        /[?&]to=%{TO_ADDR}/i
tflags U_MULTI        multiple
body   B_WORD         /see %{WORD}\b/i
header H_XA           X-A =~ /%{TO_ADDR}/
header H_XB           X-B =~ /%{TO_ADDR}/
score  __TO_CAP 0.01
score  __SUBJ_CAP 0.01
score  U_FOLD 1
score  U_XPARAM 1
score  U_MULTI 1
score  U_CASE 1
score  B_WORD 1
score  H_XA 1
score  H_XB 1
"""


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _msg(to: bytes, subject: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"From: a@example.com\nTo: <" + to + b">\nSubject: " + subject + b"\n" + extra
            + b"Content-Type: text/plain\n\n" + body + b"\n")


def test_rules_of_one_group_answer_apart(sc):
    v = sc.run(_msg(b"bob@example.net", b"tag zebra",
                    b"http://a.example.org/?to=BOB@example.net http://b.example.org/?to=bob@example.net"
                    b" see zebra",
                    b"X-A: bob@example.net\nX-B: nobody\n")).values
    assert "U_FOLD" in v and "U_CASE" in v
    assert "U_XPARAM" not in v                           # same values, its pattern fails
    assert v["U_MULTI"] == 2                        # counted over both URIs
    assert "B_WORD" in v                            # another tag: its own test
    assert "H_XA" in v and "H_XB" not in v          # same tag, other header


def test_case_folding_is_part_of_the_group(sc):
    # only an upper-case copy: the case-sensitive rule (run first: by name)
    # finds no subject; the /i rules (another group) must still look
    v = sc.run(_msg(b"bob@example.net", b"s", b"http://a.example.org/?to=BOB@EXAMPLE.NET")).values
    assert "U_FOLD" in v and "U_MULTI" in v and "U_CASE" not in v


def test_no_value_or_no_subject_no_hit(sc):
    v = sc.run(_msg(b"eve@example.org", b"plain", b"http://a.example.org/?to=bob@example.net")).values
    assert not {"U_FOLD", "U_XPARAM", "U_MULTI", "U_CASE", "B_WORD", "H_XA", "H_XB"} & set(v)
    w = sc.run(b"Subject: tag zebra\n\nsee zebra http://a.example.org/?to=x\n").values
    assert "B_WORD" in w and "U_FOLD" not in w         # no To: no TO_ADDR
