"""sendmail's message input: From_ lines, line ends, the lone dot, -t extraction.

The behaviours are those of Postfix 3.7.11's sendmail (enqueue() and
output_header() in sendmail.c), checked against the real command: leading
`From ` lines (also `>From `) are dropped, <CR><LF> becomes <LF>
(sendmail_fix_line_endings = always), a lone `.` ends the input unless -i,
`..` is kept as it is, and -t collects To:, Cc: and Bcc: of the primary
header - or only the Resent- ones when there are any.
"""

from __future__ import annotations

import io

import pytest

from postier.cli.sendmail import Fatal, HeaderExtractor, InputFilter, parse_addresses, read_message


def filt(data: bytes, **kw) -> bytes:
    f = InputFilter(**kw)
    out = f.feed(data) + f.finish()
    return out


def test_from_lines_dropped_and_crlf_fixed():
    data = b"From someone Sat Nov 28\r\n>From x\r\nSubject: s\r\n\r\nbody\r\n..\r\n.\r\nnot here\r\n"
    # recorded from Postfix: content "Subject: cmdline / body / .." (the lone dot ends it)
    assert filt(data) == b"Subject: s\n\nbody\n..\n"


def test_dash_i_keeps_lone_dot():
    assert filt(b"a\n.\nb\n", aeof=False) == b"a\n.\nb\n"
    assert filt(b"a\n.\nb\n", aeof=True) == b"a\n"


def test_lone_dot_after_cr_stripping_ends_input():
    assert filt(b"a\r\n.\r\nb\r\n") == b"a\n"
    assert filt(b"a\r\n.\r\nb\r\n", fix_eol="never") == b"a\r\n.\r\nb\r\n"


def test_strict_line_ends_follow_the_first_line():
    assert filt(b"a\r\nb\r\n", fix_eol="strict") == b"a\nb\n"
    assert filt(b"a\nb\r\n", fix_eol="strict") == b"a\nb\r\n"


def test_only_leading_from_lines_are_dropped():
    assert filt(b"Subject: x\nFrom here\n") == b"Subject: x\nFrom here\n"
    assert filt(b"From a\nFrom b\n>>From c\nX: y\n") == b"X: y\n"


def test_last_line_without_newline_and_chunking():
    f = InputFilter()
    out = b"".join(f.feed(bytes([c])) for c in b"Subject: x\r\n\r\nlast") + f.finish()
    assert out == b"Subject: x\n\nlast\n"
    assert filt(b"") == b""


def test_long_line_streams_without_buffering_everything():
    f = InputFilter()
    big = b"x" * (3 * InputFilter.PARTIAL)
    first = f.feed(big)
    assert len(first) >= 2 * InputFilter.PARTIAL          # passed on before the line ends
    rest = f.feed(b"\r\nnext\n") + f.finish()
    assert first + rest == big + b"\nnext\n"


def test_long_from_line_is_not_dropped():
    line = b"From " + b"y" * 3000
    assert filt(line + b"\nX: y\n") == line + b"\nX: y\n"


def extract(text: bytes, limit: int = 102400) -> list[str]:
    ex = HeaderExtractor(limit)
    out = filt(text)
    for line in out.splitlines(keepends=True):
        ex.line(line)
    return ex.finish()


def test_extract_to_cc_bcc():
    msg = (b'To: a@example.test, "Joe X" <c@example.test>\nSubject: hi\n'
           b"Cc: d@example.test (Dee),\n\te@example.test\nBcc: b@example.test\n"
           b"Reply-To: no@example.test\nApparently-To: no2@example.test\n\n"
           b"To: body@example.test\n")
    assert extract(msg) == ["a@example.test", "c@example.test", "d@example.test",
                            "e@example.test", "b@example.test"]


def test_extract_resent_only():
    # recorded from Postfix: only r1, r2, r3, rb were queued
    msg = (b"To: orig@example.test\nCc: cc1@example.test\nResent-To: r1@example.test\n"
           b'Resent-Cc: "R Two" <r2@example.test>, r3@example.test\n'
           b"Resent-Bcc: rb@example.test\nBcc: ob@example.test\nSubject: rs\n\nx\n")
    assert extract(msg) == ["r1@example.test", "r2@example.test", "r3@example.test",
                            "rb@example.test"]


def test_extract_header_end_rules():
    assert extract(b" To: a@x.test\n") == []                  # starts with white space
    assert extract(b"Subject: x\nnot a header\nTo: a@x.test\n") == []
    assert extract(b"To: local, \"q u\"@x.test\n") == ["local", "q u@x.test"]


def test_extract_header_too_long():
    ex = HeaderExtractor(100)
    ex.line(b"To: " + b"a@x.test, " * 20 + b"\n")
    assert ex.error == "message header length exceeds safety limit"


def test_read_message_spools_and_limits():
    spool = io.BytesIO()
    ex = HeaderExtractor()
    size = read_message(io.BytesIO(b"To: a@x.test\r\n\r\nbody\r\n"), InputFilter(), ex, 0, spool)
    assert spool.getvalue() == b"To: a@x.test\n\nbody\n" and size == len(spool.getvalue())
    assert ex.finish() == ["a@x.test"]
    with pytest.raises(Fatal, match="message file too big"):
        read_message(io.BytesIO(b"x" * 100 + b"\n"), InputFilter(), None, 50, io.BytesIO())


def test_parse_addresses():
    assert parse_addresses('Joe <a@b.test>, c') == ["a@b.test", "c"]
    assert parse_addresses('"a b"@x.test (comment)') == ["a b@x.test"]
    assert parse_addresses("") == []


def test_build_request_sender_and_recipients(capsys, monkeypatch):
    from postier import log
    from postier.cli.sendmail import Sendmail, parse_args
    monkeypatch.setenv("NAME", "Env Name")
    log.setup("sendmail", progname="sendmail", stderr=True)
    cmd = Sendmail(["sendmail"])

    def req(*args):
        return cmd.build_request(parse_args(["sendmail", *args], "sendmail"))
    # recorded from Postfix: -f '' and -f '<>' give the null sender; only the
    # first address of -f counts (with a warning); an argument without any
    # address is an empty recipient
    assert req("-f", "", "a").sender == ""
    assert req("-f", "<>", "a").sender == ""
    r = req("-f", "a@b, c@d", "-F", 'Joe "Q" <x>', "Joe <a@example.test>, b", "")
    assert r.sender == "a@b" and r.full_name == 'Joe "Q" <x>'
    assert r.recipients == ["a@example.test", "b", ""]
    assert "sendmail: warning: -f option specified malformed sender: a@b, c@d" in (
        capsys.readouterr().err)
    r = req("a")
    from postier.pickup.users import login_name
    assert r.sender == login_name(cmd.uid) and r.full_name == "Env Name"
