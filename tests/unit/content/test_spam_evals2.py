"""postier._native.spamrcvd's pair mask and postier._native.spameval's
run_calls, native and pure twin: the Received matcher still answers like
re.search after the line changed under it, and the eval calls store hits
the way Run.hit does for a rule that is not `multiple`."""

from __future__ import annotations

import random
import re
import time

from postier.content.spam import conf as C
from postier.content.spam import evals as E
from postier.content.spam import received as R
from postier.content.spam.scanner import SpamScanner


def test_line_match_after_changes_is_re_search(impl):
    """m() after sub()/sub_from() changed the line (its literal tests and pair
    mask redone for the new text) == re.search on the new text."""
    mod = impl("spamrcvd")
    pats = mod.parser_patterns()
    toks = ["from ", "by ", " ", "(", ")", "[", "]", "192.0.2.1", "helo=", "HELO ", "with ", "ESMTP",
            "SMTP", "Postfix", "id ", "x.example", "@", "<", ">", ";", ")by ", "Exim", "FROM ",
            "envelope-from ", "authenticated", "\xe9", "\u0130", "\u212a", "K", "k"]
    rng = random.Random(5)
    changed = matched = 0
    for _ in range(150):
        s = "from " + "".join(rng.choice(toks) for _ in range(rng.randint(1, 20)))
        line = mod.Line(s, R._cache, R._compile_entry)
        for pat, flags in rng.sample(pats, 20):             # masks made for the first text
            line.m(pat, flags)
        before = line.s
        line.sub(r"^from ", "")
        line.sub(r"\)by ", ") by ")
        line.sub_from(r" (\w+)$", r" <\1>", 0)
        changed += line.s != before
        for pat, flags in pats:
            want = R._rx(pat, flags).search(line.s)
            assert line.m(pat, flags) == (want is not None), (line.s, pat)
            matched += want is not None
    assert changed == 150 and matched > 300


def test_line_literals_absent_from_the_mask(impl):
    """A literal whose character pairs the line lacks is absent; one whose
    pairs are all there (in another order) still needs the real search."""
    mod = impl("spamrcvd")
    line = mod.Line("a by b", R._cache, R._compile_entry)
    assert line.m(" by ")
    assert not line.m(" with ")
    line = mod.Line("yb by", R._cache, R._compile_entry)     # pairs "yb", "b ", " b", "by"
    assert not line.m(" by ") and line.m("by")
    line = mod.Line("FROM x \u0130 BY y", R._cache, R._compile_entry)   # lower() is longer
    assert line.m(r"^from x", 2) and line.m(r" by y", 2) and not line.m(r" with ", 2)


class _Rule:
    def __init__(self, name: str):
        self.name = name


def test_run_calls_stores_hits_like_run_hit(impl):
    m = impl("spameval")
    seen = []

    def fn(ctx, rule, *args):
        seen.append((ctx, rule.name, args))
        return {"A": 1, "B": 0, "C": 2.5, "D": True, "E": "yes", "F": -3, "G": 7}[rule.name]

    def boom(ctx, rule):
        raise ValueError("bad input")

    calls = [(n, _Rule(n), fn, args) for n, args in
             (("A", ()), ("B", ("x",)), ("C", ("1", "2")), ("D", ()), ("E", ()), ("F", ()))]
    calls.insert(2, ("X", _Rule("X"), boom, ()))
    calls.append(("G", _Rule("G"), fn, ()))
    values = {"G": 1}
    m.run_calls(calls, "ctx", values)
    assert values == {"A": 1, "C": 2.5, "D": 1, "E": 1, "F": 1, "G": 1}
    assert isinstance(values["D"], int) and not isinstance(values["D"], bool)
    assert seen[:3] == [("ctx", "A", ()), ("ctx", "B", ("x",)), ("ctx", "C", ("1", "2"))]
    assert [n for _c, n, _a in seen] == ["A", "B", "C", "D", "E", "F", "G"]


def _qp_reference(lines: list[bytes]) -> tuple[int, float]:
    """MIMEEval's quoted-printable loop as SpamAssassin writes it: (bytes, count)."""
    qp_bytes = qp_count = 0
    for line in lines:
        qp_bytes += len(line)
        qp = len(re.findall(rb"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])", line))
        if qp:
            qp_count += qp
            m = re.search(rb"((?:=09|=20)+)\s*$", line)
            if m:
                qp_count -= len(m.group(1)) / 3
    return qp_bytes, qp_count


def test_qp_ratio_is_mimeevals():
    """The QP summary (the trailing =20/=09 runs looked for only on lines that
    end in one) counts what SpamAssassin's loop counts, in the same float order."""
    sc = SpamScanner(rules=C.parse_text("body __QP eval:check_for_mime('mime_qp_count')\n", "r.cf"),
                     cache_dir=None)
    rng = random.Random(3)
    toks = [b"a", b" ", b"=20", b"=09", b"=3D", b"=41", b"=7F", b"\t", b"=", b"x=2", b"\r", b"=20 ", b"==20"]
    for _ in range(40):
        lines = [b"".join(rng.choice(toks) for _ in range(rng.randint(0, 12))) for _ in range(8)]
        msg = (b"Subject: qp\nMIME-Version: 1.0\nContent-Type: text/plain\n"
               b"Content-Transfer-Encoding: quoted-printable\n\n" + b"\n".join(lines) + b"\n")
        run = sc.run(msg)
        st = E._attachments(E.EvalContext(run))
        raw = [p.raw for p in run.msg.find_parts(None, False) if p.is_leaf()][0]
        qp_bytes, qp_count = _qp_reference(raw)
        if qp_bytes:
            assert st["mime_qp_ratio"] == qp_count / qp_bytes and st["mime_qp_count"] == qp_count


def _received_times_reference(rcvd: str):
    """HeaderEval's _get_received_header_times as written (no prefilters)."""
    received = [x for x in rcvd.split("\n") if x.strip(" \t\n\r\f\v")]
    local, times, ft = [], [], []
    if received:
        if re.search(r"\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)", received[0], re.A) or \
                re.search(r"qmail \d+ invoked by uid \d+", received[0], re.A):
            local.append(received.pop(0))
        if received and re.search(r"\bby localhost with \w+ \(fetchmail-[\d.]+", received[0], re.A):
            local.append(received.pop(0))
        elif local:
            received.insert(0, local.pop(0))
    date = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)", re.A)
    for r in local:
        m = date.search(r)
        t = E.parse_rfc822_date(m.group(1)) if m else None
        if t is not None and time.time() >= t:
            ft.append(t)
    for r in received:
        m = date.search(r)
        t = E.parse_rfc822_date(m.group(1)) if m else None
        if t is not None:
            times.append(t)
    return times, (max(ft) if ft else None)


def test_received_times_local_and_fetchmail_lines():
    sc = SpamScanner(rules=C.parse_text("header __X eval:check_for_shifted_date('-1', '1')\n", "r.cf"),
                     cache_dir=None)
    firsts = ["from localhost (localhost [127.0.0.1]) by a.example; Tue, 3 Nov 2020 10:00:00 +0000",
              "from a.example (x 127.0.0.1) by b.example; Tue, 3 Nov 2020 10:00:01 +0000",
              "from a b c 127.0.0.1 by b; Tue, 3 Nov 2020 10:00:02 +0000",
              "(qmail 123 invoked by uid 0); 3 Nov 2020 10:00:03 -0000",
              "from qmail  by b; 3 Nov 2020 10:00:04 -0000",
              "from LOCALHOST by b; 3 Nov 2020 10:00:05 -0000"]
    seconds = ["by localhost with POP3 (fetchmail-6.4.0) for <u@x>; Tue, 3 Nov 2020 11:00:00 +0100",
               "from c.example by d.example; Tue, 3 Nov 2020 09:00:00 +0000"]
    hits = 0
    for first in firsts:
        for second in seconds:
            msg = (f"Received: {first}\nReceived: {second}\n"
                   "Received: from e by f; Mon, 2 Nov 2020 08:00:00 +0000\nSubject: t\n\nbody\n").encode()
            run = sc.run(msg)
            ctx = E.EvalContext(run)
            want = _received_times_reference(ctx.get("Received"))
            assert E._received_times(ctx) == want, (first, second)
            hits += want[1] is not None
    assert hits >= 3
