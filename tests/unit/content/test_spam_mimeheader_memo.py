"""The mimeheader area's memos (engine.Run._mimeheaders): the area's hits
are a function of the part values of every header group, so a message whose
values were seen before replays them (the whole-message memo), and a group's
values seen before give its results again (the per-group memo).  Compared
here with the area run with no memo at all, on mutated messages (NULs, 8-bit
bytes, unterminated quotes, huge values, many parts)."""

from __future__ import annotations

import random

from postier.content.spam import conf as C
from postier.content.spam import engine as E
from postier.content.spam.scanner import SpamScanner

_RULES = """
mimeheader M_TEXT Content-Type =~ /text\\/plain/
mimeheader M_CS Content-Type =~ /charset=/
tflags M_CS multiple
mimeheader M_RAW Content-Type:raw =~ /utf-8/i
mimeheader M_NEG Content-Transfer-Encoding !~ /base64/
mimeheader M_UNSET X-Nope =~ /^$/
mimeheader M_NUL Content-Type =~ /\\x00/
mimeheader M_HI Content-Disposition =~ /\\xe9/
mimeheader M_QUOTE Content-Disposition =~ /filename="[^"]*$/m
mimeheader M_ALL ALL =~ /^X-Tag: (?:a|b)$/m
tflags M_ALL multiple
"""


def _msg(ct: bytes, cte: bytes, cd: bytes, extra: int) -> bytes:
    parts = b"".join(b"--b\nContent-Type: text/plain; charset=us-ascii\nX-Tag: a\n\nho\n"
                     for _ in range(extra))
    return (b"From: a@b.c\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            b"--b\nContent-Type: " + ct + b"\nContent-Transfer-Encoding: " + cte +
            b"\nContent-Disposition: " + cd + b"\n\nhi\n" + parts + b"--b--\n")


def _messages() -> list[bytes]:
    rnd = random.Random(7)
    cts = [b"text/plain; charset=UTF-8", b"text/plain", b"text/html; charset=\"utf-8",
           b"text/pl\x00ain", b"text/plain; charset=\xe9t\xe9", b"x" * 5000, b""]
    ctes = [b"7bit", b"base64", b"", b"8bit\x00"]
    cds = [b"attachment; filename=\"r\xe9sum\xe9.doc", b"inline", b"attachment; filename=\"a.pdf\"",
           b"a" * 300]
    out = [_msg(rnd.choice(cts), rnd.choice(ctes), rnd.choice(cds), rnd.choice([0, 0, 1, 3]))
           for _ in range(60)]
    return out + out[:20] + [b"", b"Subject: no parts\n\nbody\n"]


def _no_memo(sc: SpamScanner, data: bytes) -> dict:
    d = sc.compiled.__dict__
    d.pop("_mime_whole", None)
    d.pop("_mime_memo", None)
    d.pop("_mime_absent", None)
    return sc.run(data).values


def test_the_whole_message_memo_gives_what_the_area_gives_without_memos():
    rs = C.parse_text(_RULES, "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    msgs = _messages()
    plain = [_no_memo(sc, m) for m in msgs]
    first = [sc.run(m).values for m in msgs]
    again = [sc.run(m).values for m in reversed(msgs)][::-1]
    assert first == again == plain
    assert any("M_NUL" in v for v in plain) and any("M_QUOTE" in v for v in plain)
    assert any(v.get("M_ALL", 0) > 1 for v in plain)
    whole = sc.compiled.__dict__["_mime_whole"]
    assert whole and len(whole) <= E._MIME_MEMO_SIZE
    # only short values are remembered
    assert all(sum(len(v) for pv in k for v in pv if v) <= E._MIME_MEMO_LEN for k in whole)


def test_the_whole_message_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(E, "_MIME_MEMO_SIZE", 4)
    rs = C.parse_text(_RULES, "rules.cf")
    sc = SpamScanner(rules=rs, cache_dir=None)
    msgs = [_msg(b"text/plain; n=%d" % i, b"7bit", b"inline", 0) for i in range(10)]
    got = [sc.run(m).values for m in msgs]
    assert len(sc.compiled.__dict__["_mime_whole"]) <= 4
    assert got == [_no_memo(sc, m) for m in msgs]


def _mime_msg(cte: bytes) -> bytes:
    return (b"From: a@b.c\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            b"--b\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: " + cte +
            b"\n\nhi\n--b\nContent-Type: text/plain; charset=us-ascii\n\nho\n--b--\n")


def test_the_per_group_memo_gives_what_the_area_gives_without_memos():
    rs = C.parse_text(_RULES, "rules.cf")
    assert rs.warnings == []
    sc = SpamScanner(rules=rs, cache_dir=None)
    msgs = [_mime_msg(b"7bit"), _mime_msg(b"base64"), _mime_msg(b"7bit")]
    first = [sc.run(m).values for m in msgs]
    assert any(sc.compiled.__dict__["_mime_memo"])      # the part values are remembered
    sc.compiled.__dict__["_mime_whole"].clear()          # (the per-group memo answers)
    again = [sc.run(m).values for m in msgs]
    plain = [_no_memo(sc, m) for m in msgs]
    assert first == again == plain
    assert first[0]["M_TEXT"] == 1 and first[0]["M_CS"] == 2 and first[0]["M_RAW"] == 1
    assert first[0]["M_NEG"] == 1 and "M_NEG" in first[1]      # (a negated rule always hits)
    assert first[0]["M_UNSET"] == 1
