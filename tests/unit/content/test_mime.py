"""postier.content.mime: Postfix's mime_state machine.

The classification of every line of Postfix's own MIME test messages
(src/global/mime_*.in) is checked against what real Postfix 3.7.11 logged
for them with header_checks = body_checks = static:warn (the
upstream_mime_warn_all dialogs of tests/compat/content_checks.json): each
logged `header ...` is a header the machine passes on as a header, each
`body ...` a non-empty body line, in order.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from postier.content import mime as M

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "..", "compat", "content_checks.json")


class Recorder:
    """A MimeParser handler that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def mime_header(self, cls, header, opts):
        self.events.append(("header", M.CLASS_NAMES[cls], header))

    def mime_head_end(self):
        self.events.append(("end",))

    def mime_body(self, piece, offset, cont):
        self.events.append(("body", piece, offset, cont))

    def mime_error(self, code, text):
        self.events.append(("error", code, text))


def parse(text: bytes, **kw) -> tuple[M.MimeParser, Recorder]:
    rec = Recorder()
    p = M.MimeParser(rec, **kw)
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        p.line(line)
    p.end()
    return p, rec


def shown(b: bytes) -> str:
    return "".join(chr(c) if 32 <= c < 127 else "?" for c in b[:200])


def upstream_dialogs():
    with open(FIXTURE, encoding="utf-8") as f:
        data = json.load(f)
    return [d for d in data["dialogs"] if d["scenario"] == "upstream_mime_warn_all"]


@pytest.mark.parametrize("dialog", upstream_dialogs(), ids=lambda d: d["id"].split("/")[1])
def test_upstream_messages_are_classified_like_postfix(dialog):
    text = [s["data"] for s in dialog["dialog"] if "data" in s][0].encode("utf-8", "surrogateescape")
    _, rec = parse(text, options=M.REPORT_NESTING)
    got = []
    for ev in rec.events:
        if ev[0] == "header":
            got.append("header " + shown(ev[2]))
        elif ev[0] == "body" and ev[1]:
            got.append("body " + shown(ev[1]))
    want = []
    for line in dialog["log"]:
        m = re.match(r"postfix/cleanup: QUEUEID: warning: (header|body) (.*) from mail\.remote", line)
        if m and not m.group(2).startswith("Received:"):
            want.append(f"{m.group(1)} {m.group(2)}")
    assert got == want


# ---------------------------------------------------------------- header_token

@pytest.mark.parametrize("text,maxn,term,tokens", [
    (b" text/plain; charset=x", 3, 0x3B, [(M.TOKEN, b"text"), (0x2F, b"/"), (M.TOKEN, b"plain")]),
    (b' multipart/(co\\m\\)ment)mumble mumble; x', 3, 0x3B,
     [(M.TOKEN, b"multipart"), (0x2F, b"/"), (M.TOKEN, b"mumble")]),
    (b' boundary = "ab\\cd \n ef" mumble', 3, 0x3B,
     [(M.TOKEN, b"boundary"), (0x3D, b"="), (M.QSTRING, b"abcd ef")]),
    (b" (only (nested) comment)", 3, 0x3B, []),
    (b' "unterminated', 3, 0x3B, [(M.QSTRING, b"unterminated")]),
])
def test_header_token(text, maxn, term, tokens):
    got, count, _ = M.header_token(text, 0, maxn, M.RFC2045_TSPECIALS, term)
    assert got == tokens
    assert count == (len(tokens) if tokens else -1)


def test_header_token_stops_after_the_terminator():
    text = b"a/b; boundary=x; other=y"
    toks, n, pos = M.header_token(text, 0, 3, M.RFC2045_TSPECIALS, 0x3B)
    assert n == 3 and text[pos:] == b" boundary=x; other=y"
    toks, n, pos = M.header_token(text, pos, 3, M.RFC2045_TSPECIALS, 0x3B)
    assert toks[2] == (M.TOKEN, b"x")
    assert M.header_token(text, len(text), 3, M.RFC2045_TSPECIALS, 0x3B)[1] == -1


# ---------------------------------------------------------------- structure

def test_multipart_parts_and_nested_message():
    p, rec = parse(b"Content-Type: multipart/mixed; boundary=BB\n\npre\n--BB\nX-A: 1\n\n"
                   b"text\n--BB\nContent-Type: message/rfc822\n\nSubject: in\n\nbody\n--BB--\nepi\n")
    heads = [(e[1], e[2]) for e in rec.events if e[0] == "header"]
    assert heads == [("primary", b"Content-Type: multipart/mixed; boundary=BB"),
                     ("multipart", b"X-A: 1"), ("multipart", b"Content-Type: message/rfc822"),
                     ("nested", b"Subject: in")]
    bodies = [e[1] for e in rec.events if e[0] == "body"]
    assert bodies == [b"", b"pre", b"--BB", b"", b"text", b"--BB", b"", b"", b"body",
                      b"--BB--", b"epi"]
    assert p.stack == [] and p.state == M.BODY


def test_obsolete_header_form_is_normalised():
    _, rec = parse(b"Subject : x\n\nb\n")
    assert rec.events[0] == ("header", "primary", b"Subject: x")


def test_boundary_with_trailing_junk_and_truncation():
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=abcdef\n\n--abcdefJUNK\nX-H: 1\n\n",
                   bound_len=3)
    assert ("header", "multipart", b"X-H: 1") in rec.events


def test_other_content_types_leave_the_type_alone():
    # a later Content-Type of another kind does not undo multipart (Postfix)
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\nContent-Type: application/x\n\n"
                   b"--b\nX-H: 1\n\n")
    assert ("header", "multipart", b"X-H: 1") in rec.events


@pytest.mark.parametrize("subtype,nested", [(b"rfc822", True), (b"global", True),
                                            (b"partial", False), (b"external-body", False)])
def test_which_message_types_have_nested_headers(subtype, nested):
    _, rec = parse(b"Content-Type: message/" + subtype + b"\n\nSubject: x\n\nb\n")
    assert (("header", "nested", b"Subject: x") in rec.events) == nested


def test_garbage_in_headers():
    # primary: a blank line is put in front; multipart/nested: not
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\njunk\n--b\nX: 1\njunk2\n")
    bodies = [e[1] for e in rec.events if e[0] == "body"]
    assert bodies == [b"", b"junk", b"--b", b"junk2"]


def test_nesting_counter_and_limit():
    def nest(n):
        s = b"Content-Type: multipart/mixed; boundary=b0\n\n"
        for i in range(1, n + 1):
            s += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
        return s
    p, rec = parse(nest(4), max_depth=3, options=M.REPORT_NESTING)
    assert not [e for e in rec.events if e[0] == "error"]
    p, rec = parse(nest(5), max_depth=3, options=M.REPORT_NESTING)
    assert [e for e in rec.events if e[0] == "error"] == [
        ("error", M.ERR_NESTING, b"Content-Type: multipart/mixed; boundary=b5")]
    p, rec = parse(nest(5), max_depth=3)
    assert not [e for e in rec.events if e[0] == "error"]


def test_body_offsets_restart_per_part():
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\n\nab\ncd\n--b\n\nxy\n--b--\nz\n")
    offs = [(e[1], e[2]) for e in rec.events if e[0] == "body"]
    # the blank line after a header block counts; a closing boundary starts again
    assert offs == [(b"", 0), (b"ab", 1), (b"cd", 4), (b"--b", 7), (b"", 0), (b"xy", 1),
                    (b"--b--", 0), (b"z", 6)]


def test_long_lines_become_pieces_and_boundaries_need_a_line_start():
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\n\n" + b"x" * 64 + b"--b\n",
                   line_limit=64)
    pieces = [(e[1], e[3]) for e in rec.events if e[0] == "body"]
    assert pieces == [(b"", False), (b"x" * 64, True), (b"--b", False)]
    assert not any(e[0] == "header" and e[1] == "multipart" for e in rec.events)
    p = M.MimeParser(Recorder(), line_limit=4)
    assert p.pieces(b"abcd") == [b"abcd", b""]
    assert p.pieces(b"abcdefghi") == [b"abcd", b"efgh", b"i"]
    assert p.pieces(b"") == [b""]


def test_header_size_limit_discards_the_excess():
    _, rec = parse(b"X-Long: " + b"a" * 50 + b"\n " + b"b" * 50 + b"\n\n", header_limit=40)
    assert rec.events[0] == ("header", "primary", b"X-Long: " + b"a" * 50)


@pytest.mark.parametrize("text,options,code,detail", [
    (b"Subject: caf\xc3\xa9\n\nx\n", M.REPORT_8BIT_IN_HEADER, M.ERR_8BIT_IN_HEADER,
     b"Subject: caf\xc3\xa9"),
    (b"Subject: x\n\ncaf\xc3\xa9\n", M.REPORT_8BIT_IN_7BIT_BODY, M.ERR_8BIT_IN_7BIT_BODY,
     b"caf\xc3\xa9"),
    (b"Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: quoted-printable\n\n",
     M.REPORT_ENCODING_DOMAIN, M.ERR_ENCODING_DOMAIN, b"quoted-printable"),
])
def test_errors_are_reported_once(text, options, code, detail):
    _, rec = parse(text + text.split(b"\n\n", 1)[1], options=options)
    assert [e for e in rec.events if e[0] == "error"] == [("error", code, detail)]


def test_declared_8bit_body_is_fine():
    _, rec = parse(b"Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n",
                   options=M.REPORT_8BIT_IN_7BIT_BODY)
    assert not [e for e in rec.events if e[0] == "error"]


def test_disable_mime():
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\n\n--b\nX: 1\n\n",
                   options=M.DISABLE_MIME)
    assert [e for e in rec.events if e[0] == "header"] == [
        ("header", "primary", b"Content-Type: multipart/mixed; boundary=b")]


def test_end_flushes_a_pending_header():
    _, rec = parse(b"Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Last: 1")
    assert rec.events[-1] == ("header", "multipart", b"X-Last: 1")


def test_error_text_picks_the_most_serious():
    assert M.error_text(M.ERR_ENCODING_DOMAIN | M.ERR_NESTING) == "MIME nesting exceeds safety limit"
    with pytest.raises(ValueError):
        M.error_text(0)


def test_body_run_end():
    p = M.MimeParser(Recorder())
    p.state = M.BODY
    data = b"a\nb\n--x\nc\n"
    assert p.body_run_end(data, 0, len(data)) == len(data)        # no boundary pending
    p.stack.append(M._Frame(M.CT_TEXT, M.ST_PLAIN, b"x"))
    assert p.body_run_end(data, 0, len(data)) == 4
    assert p.body_run_end(data, 4, len(data)) == 4
    p.options = M.REPORT_8BIT_IN_7BIT_BODY
    data = b"a\nb\xff\nc\n"
    assert p.body_run_end(data, 0, len(data)) == 2
