"""Evals run as one call per per-message value (evals._value_group: the
check_for_mime, image_count/pixel_coverage, check_body_length and
check_for_uppercase rules of an area) hit what each rule's own bound call
hits; sorted_recipients/similar_recipients's pair counts by group are the
pair loop's."""

from __future__ import annotations

import os
import random
import re
from collections import Counter

import pytest

from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam.scanner import SpamScanner

CORPUS = "/work/shared/corpus"

RULES = """
body __M1 eval:check_for_mime('mime_attachment')
body __M2 eval:check_for_mime('mime_bad_iso_charset')
rawbody __M3 eval:check_for_mime('mime_base64_count')
rawbody __M4 eval:check_for_mime('mime_qp_count')
rawbody __M5 eval:check_for_mime('mime_base64_encoded_text')
body __I1 eval:image_count('gif','1','1')
body __I2 eval:image_count('png','1')
body __I3 eval:image_count('all','0','5')
body __I4 eval:pixel_coverage('gif','1','475000')
body __I5 eval:image_count('gif')
body __B1 eval:check_body_length('1024')
body __B2 eval:check_body_length('128')
body __B3 eval:check_body_length('100000')
body __U0 eval:check_for_uppercase('-1', '50')
body __U1 eval:check_for_uppercase('25', '50')
body __U2 eval:check_for_uppercase('50', '75')
body __U3 eval:check_for_uppercase('75', '100')
body __U4 eval:check_for_uppercase('0')
header __S1 eval:sorted_recipients()
header __S2 eval:similar_recipients('0.2', 'undef')
header __S3 eval:similar_recipients('0', '0.5')
"""

_GIF = b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def _messages() -> list[bytes]:
    out = []
    rnd = random.Random(5)
    for i in range(40):
        to = ", ".join(rnd.choice(["ab", "ac", "b", "zz"]) + str(rnd.randint(0, 3)) + "@" +
                       rnd.choice(["ex.com", "ex.org", "ey.com", "x"]) for _ in range(rnd.randint(0, 9)))
        text = " ".join(rnd.choice(["WORD", "word", "Mixed", "123", "\xe9t\xe9"]) for _ in range(rnd.randint(0, 90)))
        head = "From: a@b.example\nTo: " + to + "\nSubject: s\n"
        if i % 4 == 0:
            out.append((head + "Content-Type: text/plain; charset=koi8-r\n\n" + text + "\n").encode("latin-1"))
        elif i % 4 == 1:
            out.append((head + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n"
                        "Content-Type: text/plain; charset=iso-1234-x\nContent-Transfer-Encoding: "
                        "quoted-printable\n\n" + text + "=41=20\n--XX\nContent-Type: image/gif\n"
                        "Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n")
                       .encode("latin-1") + _GIF + b"\n--XX--\n")
        elif i % 4 == 2:
            out.append((head + "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n")
                       .encode() + b"SEVMTE8gV09STEQgVEhJUyBJUyBBTEwgQ0FQUw==\n")
        else:
            if i % 8 == 3:
                text = text.upper()
            out.append((head + "\n" + text * rnd.randint(1, 5) + "\n").encode("latin-1"))
    return out


def _same_as_each_call(sc: SpamScanner, messages: list[bytes]) -> set[str]:
    cr = sc.compiled
    kinds = (C.HEAD_EVAL, C.BODY_EVAL, C.RAWBODY_EVAL)
    names = {r.name for _k, r, _f in cr.evals}
    hit: set[str] = set()
    for msg in messages:
        run = sc.run(msg)
        base = {k: v for k, v in run.values.items() if k not in names}
        alone = dict(base)
        ctx = E.EvalContext(run)
        run.values = alone
        for kind in kinds:
            E._ev.run_calls([(r.name, r, *E.bind(fn, r)) for _k, r, fn in cr._evals_by_kind.get(kind, [])],
                            ctx, alone)
        together = dict(base)
        ctx = E.EvalContext(run)
        run.values = together
        for kind in kinds:
            E._ev.run_calls(E.bind_calls(cr._evals_by_kind.get(kind, [])), ctx, together)
        assert together == alone, msg[:300]
        hit |= set(together) & names
    return hit


def test_value_groups_hit_what_each_bound_call_hits():
    rs = C.parse_text(RULES, "r.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    by_kind = sc.compiled._evals_by_kind
    # the body area: one call for the two mime rules, one for the image
    # rules (I5 has no minimum: its own constant call), one for the body
    # lengths, one for the uppercase rules (U4, one argument short, its
    # plain call, which fails)
    assert len(E.bind_calls(by_kind[C.BODY_EVAL])) == 6
    assert len(E.bind_calls(by_kind[C.RAWBODY_EVAL])) == 1
    hit = _same_as_each_call(sc, _messages())
    assert {"__M1", "__M2", "__M3", "__M4", "__M5", "__I1", "__I3", "__I4", "__B1", "__B2", "__B3",
            "__U0", "__U3", "__S2", "__S3"} <= hit
    assert "__I5" not in hit


@pytest.mark.slow
def test_value_groups_on_the_corpus():
    if not os.path.isdir(CORPUS):
        pytest.skip("no corpus")
    names = [line.split("\t")[0] for line in
             open(os.path.join(CORPUS, "labels.tsv")).read().splitlines()[1:]][::25]
    sc = SpamScanner(rules=C.parse_text(RULES, "r.cf"), cache_dir=None)
    hit = _same_as_each_call(sc, [open(os.path.join(CORPUS, n), "rb").read() for n in names])
    assert len(hit) >= 8


def _similar_reference(address: list[str]) -> float:
    """The pair loop as SpamAssassin (and evals before) wrote it."""
    user = [a[:2] for a in address]
    fqhn = [(re.search(r"@(.*)", a, re.S).group(1) if "@" in a else None) for a in address]
    host = [f[:2] if f is not None else None for f in fqhn]
    hits = comb = 0
    for i in range(len(address)):
        for j in range(i + 1, len(address)):
            if user[i] == user[j]:
                hits += 1
            if host[i] == host[j] and fqhn[i] != fqhn[j]:
                hits += 1
            comb += 1
    return hits / comb


class _Ctx:
    def __init__(self, lists: dict):
        self.lists = lists
        self.cache: dict = {}

    def get_list(self, req: str) -> list[str]:
        return self.lists.get(req, [])


def test_recipient_pair_counts_are_the_pair_loops():
    rnd = random.Random(3)
    for _ in range(2000):
        n = rnd.randint(0, 70)
        addrs = ["".join(rnd.choice("ab@.cA\n") for _ in range(rnd.randint(1, 8))) for _ in range(n)]
        srt, similar = E._recipients(_Ctx({"ToCc:addr": addrs}))
        # (the evals' list: consecutive case-insensitive repeats dropped, up to 256)
        kept: list[str] = []
        prev = ""
        for a in addrs:
            if a.lower() != prev.lower():
                kept.append(a)
                prev = a
        want = _similar_reference(kept) if len(kept) >= 5 else 0.0
        assert similar == want, addrs
        assert srt == (len(kept) >= 7 and ",".join(kept) == ",".join(sorted(kept)))
    # many addresses: counted by group, not pair by pair
    many = [f"u{i % 7}@h{i % 5}.example" for i in range(256)]
    assert E._recipients(_Ctx({"ToCc:addr": many}))[1] == _similar_reference(many)
    assert E._pairs(Counter("aab")) == 1
