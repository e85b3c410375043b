"""A scanned message leaves no cyclic garbage: SpamScanner.run/scan cut
the run <-> eval context pair, and Message.find_parts' cache holds no
reference to its own node, so a message's objects go by reference counting
instead of waiting for (and feeding) the cyclic GC.  find_parts gives the
same lists as before: the node itself first when it matches, then the
matching parts below it, a fresh list each call."""

from __future__ import annotations

import gc
import re

from postier.content.spam import conf as C
from postier.content.spam.message import Message
from postier.content.spam.scanner import SpamScanner

RULES = r"""
header   H_SUBJ     Subject =~ /hello/i
describe H_SUBJ     subject
score    H_SUBJ     1.5
body     B_MONEY    /money/i
score    B_MONEY    2.0
uri      U_EX       /example\.com/
score    U_EX       0.5
rawbody  R_HTML     /<b>/
score    R_HTML     0.1
full     F_ALL      /Received/
score    F_ALL      0.1
header   E_RCVD     eval:check_for_missing_to_header()
score    E_RCVD     0.2
body     E_BODY     eval:check_stock_info()
score    E_BODY     0.2
"""

MULTIPART = (
    b"Received: from a.example.net (a.example.net [192.0.2.1]) by mx.example.org "
    b"with ESMTP id ABC123; Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"From: x@example.com\nSubject: hello there\nMessage-ID: <1@example.com>\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"BB\"\n\n"
    b"--BB\nContent-Type: text/plain\n\nsend money to http://www.example.com/x now\n"
    b"--BB\nContent-Type: text/html\n\n<html><body><b>money</b> "
    b"<a href=\"http://other.example.org/y\">click</a></body></html>\n--BB--\n")


def _scanner() -> SpamScanner:
    rs = C.parse_text(RULES, "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _garbage_after(fn) -> list:
    """The objects fn() leaves that only the cyclic GC could free."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        fn()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()


def test_scan_leaves_no_cycles():
    sc = _scanner()
    v = sc.scan(MULTIPART)                       # lazily built parts first
    names = {n for n, _ in v.hits}
    assert {"H_SUBJ", "B_MONEY", "R_HTML"} <= names
    left = _garbage_after(lambda: sc.scan(MULTIPART))
    kinds = {type(o).__name__ for o in left}
    assert not kinds & {"Run", "Message", "Node", "EvalContext", "HeaderView"}, kinds
    assert left == []


def test_run_leaves_no_cycles_and_keeps_results():
    sc = _scanner()
    r = sc.run(MULTIPART)
    assert r.eval_ctx is None
    assert r.values.get("H_SUBJ") and r.values.get("B_MONEY")
    # an eval asked for after the run builds a new context
    assert sc.scan(MULTIPART).score == round(r.score, 3)
    left = _garbage_after(lambda: sc.run(MULTIPART))
    assert not {type(o).__name__ for o in left} & {"Run", "Message", "EvalContext"}


def test_compiled_rules_run_leaves_no_cycles():
    # what tools/sa_agreement.py and `rules explain` call: the cut is in
    # CompiledRules.run itself, not only in SpamScanner.run
    sc = _scanner()
    r = sc.compiled.run(MULTIPART)
    assert r.eval_ctx is None and r.values.get("H_SUBJ")
    left = _garbage_after(lambda: sc.compiled.run(MULTIPART))
    assert not {type(o).__name__ for o in left} & {"Run", "Message", "EvalContext"}


def test_find_parts_same_lists_no_self_reference():
    m = Message(MULTIPART)
    every = m.find_parts()
    assert every[0] is m and len(every) == 3
    assert [p.type for p in every] == ["multipart/alternative", "text/plain", "text/html"]
    again = m.find_parts()
    assert again == every and again is not every
    again.append(None)                            # the caller's list: the cache is untouched
    assert m.find_parts() == every
    leaves = m.find_parts(only_leaves=True)
    assert [p.type for p in leaves] == ["text/plain", "text/html"]
    assert m.find_parts(only_leaves=True) == leaves
    text = re.compile(r"^text/")
    assert [p.type for p in m.find_parts(text)] == ["text/plain", "text/html"]
    assert m.find_parts(text) == m.find_parts(text)
    top = m.find_parts(recursive=False)
    assert top[0] is m and len(top) == 3
    for got in m._parts_cache.values():
        assert m not in got[1]
    left = _garbage_after(lambda: Message(MULTIPART).find_parts())
    assert not {type(o).__name__ for o in left} & {"Message", "Node"}
