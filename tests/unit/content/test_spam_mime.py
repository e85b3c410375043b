"""postier._native.spammime and its twin: the line loops of the spam engine's
message parser (split_lines, text_lines, parse_header_lines), run against
both implementations and against the regexes SpamAssassin's code uses."""

from __future__ import annotations

import random
import re

import pytest

UNI_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _reference_text(prefix: bytes, text: str, flagged: bool) -> bytes:
    """get_rendered_body_text_array's substitutions, written the Perl way."""
    ws = "[" + re.escape(UNI_SPACE) + "]" if flagged else "[\t\n\x0b\x0c\r ]"
    text = re.sub(r"\n+" + ws + r"*\n+", "\x00", text)
    text = re.sub(ws + "+", " ", text)
    text = text.replace("\x00", "\n")
    return prefix + (text.encode("utf-8", "surrogatepass") if flagged else text.encode("latin-1"))


def test_split_lines(impl):
    m = impl("spammime")
    assert m.split_lines(b"") == []
    assert m.split_lines(b"a") == [b"a"]
    assert m.split_lines(b"a\n") == [b"a\n"]
    assert m.split_lines(b"a\n\nb") == [b"a\n", b"\n", b"b"]
    assert m.split_lines(b"\n\r\n") == [b"\n", b"\r\n"]


def test_text_lines_paragraphs_and_spaces(impl):
    m = impl("spammime")
    assert m.text_lines(b"S\n", "a  b\t\tc", False) == [b"S\n", b"a b c"]
    # two newlines in one run: a paragraph; the blanks around it each a space
    assert m.text_lines(b"S\n", "a \n \n b\nc", False) == [b"S\n", b"a \n", b" b c"]
    assert m.text_lines(b"", "a\n\nb", False) == [b"a\n", b"b"]
    # a NUL becomes a newline, and is not white space
    assert m.text_lines(b"", "a\x00 b", False) == [b"a\n", b" b"]
    # \xa0 is white space only in a character string
    assert m.text_lines(b"", "a\xa0\xa0b", False) == [b"a\xa0\xa0b"]
    assert m.text_lines(b"", "a\xa0\u3000b\u2028\u2029c", True) == [b"a b c"]
    assert m.text_lines(b"", "\u2029\n\u3000\n\x85x", True) == [b" \n", b" x"]
    # \x1c-\x1f are not Perl white space
    assert m.text_lines(b"", "a\x1cb", True) == [b"a\x1cb"]


def test_text_lines_long_lines(impl):
    m = impl("spammime")
    words = "w" * 3000
    assert m.text_lines(b"", words, False) == [b"w" * 2048, b"w" * 952]
    text = "x" * 2047 + " " + "y" * 10 + " z"
    assert m.text_lines(b"", text, False) == [b"x" * 2047 + b" ", b"y" * 10 + b" z"]
    text = "x" * 2048 + " " + "y"
    assert m.text_lines(b"", text, False) == [b"x" * 2048 + b" ", b"y"]


def test_text_lines_non_latin1_unflagged_is_an_encode_error(impl):
    m = impl("spammime")
    with pytest.raises(UnicodeEncodeError):
        m.text_lines(b"", "a\u0100", False)


def test_text_lines_random_against_reference(impl):
    m = impl("spammime")
    rnd = random.Random(7)
    alphabet = ["a", "b", " ", "  ", "\n", "\t", "\r", "\x0b", "\x0c", "\x00", "\xa0", "\x85", "\xe9",
                "\u3000", "\u2028", "\u200a", "\u200b", "\u1680", "\u205f", "\u202f", "\ud800",
                "\x1c", "x" * 700, " " * 5]
    for _ in range(3000):
        flagged = rnd.random() < 0.5
        parts = [rnd.choice(alphabet) for _ in range(rnd.randrange(0, 30))]
        text = "".join(parts)
        if not flagged:
            text = "".join(c for c in text if ord(c) < 256)
        prefix = rnd.choice([b"", b"Subject\n", b"x"])
        got = m.text_lines(prefix, text, flagged)
        want = _reference_text(prefix, text, flagged)
        assert b"".join(got) == want, (text, flagged)
        assert all(len(x) <= 2049 for x in got)      # 2048 and a space
        assert got == m.split_short_lines(want)


def _headers(impl, data: bytes, crlf: bool = False):
    m = impl("spammime")
    lines = m.split_lines(data)
    return m.parse_header_lines(lines, crlf), lines


def test_parse_header_lines_basic(impl):
    (fields, pristine, i, flags), lines = _headers(impl, b"A: 1\nB :2\n  cont\n\nbody\n")
    assert fields == [(b"A", b" 1\n"), (b"B", b"2\n  cont\n")]
    assert pristine == [b"A: 1\n", b"B :2\n", b"  cont\n", b"\n"]
    assert lines[i:] == [b"body\n"]
    assert flags == []


def test_parse_header_lines_problems(impl):
    # no separator: the body starts at the "--" line
    (fields, _p, i, flags), lines = _headers(impl, b"A: 1\n--bound\nx\n")
    assert fields == [(b"A", b" 1\n")] and lines[i:] == [b"--bound\n", b"x\n"]
    assert flags == ["missing_head_body_separator"]
    # four bad lines end the header
    (fields, _p, i, flags), lines = _headers(impl, b"A: 1\nx\ny\nz\nw\nv\n")
    assert lines[i:] == [b"w\n", b"v\n"] and flags == ["missing_head_body_separator"]
    assert fields == [(b"A", b" 1\n")]
    # end of input without a blank line
    (fields, _p, i, flags), lines = _headers(impl, b"A: 1")
    assert fields == [(b"A", b" 1")] and i == 1 and flags == ["missing_head_body_separator"]
    # long keys and values are cut
    (fields, _p, _i, flags), _l = _headers(impl, b"K" * 300 + b": " + b"v" * 9000 + b"\n\n")
    assert fields == [(b"K" * 256, (b" " + b"v" * 9000 + b"\n")[:8192])]
    assert flags == ["truncated_header", "truncated_header"]


def test_parse_header_lines_crlf(impl):
    (fields, pristine, i, flags), lines = _headers(impl, b"A: 1\r\nB: 2\n x\r\n\r\nbody\r\n", True)
    assert fields == [(b"A", b" 1\n"), (b"B", b" 2\n x\n")]
    assert pristine == [b"A: 1\r\n", b"B: 2\r\n", b" x\r\n", b"\r\n"]
    assert lines[i:] == [b"body\r\n"] and flags == []


def test_parse_header_lines_random_native_equals_pure(impl):
    if impl.kind == "pure":
        pytest.skip("compares the native module with the twin")
    import postier._pure.spammime as pure
    m = impl("spammime")
    rnd = random.Random(11)
    pieces = [b"Subject: hi\n", b" folded\n", b"\tfolded\n", b"X-A :b\n", b"bad line\n", b"\n",
              b"\r\n", b"--b\n", b":x\n", b"K\xe9y: v\n", b"A:\r\n", b"B: c\rd\n", b"\x00: z\n",
              b"no-newline"]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 12)))
        lines = pure.split_lines(data) or [b"\n"]
        assert m.split_lines(data) == pure.split_lines(data)
        for crlf in (False, True):
            assert m.parse_header_lines(lines, crlf) == pure.parse_header_lines(lines, crlf), data


def test_prepare_fields(impl):
    m = impl("spammime")
    got = m.prepare_fields([(b"Subject", b" hi\n  there\n"), (b"X-\xc9", b" =?utf-8?q?a?=\n"),
                            (b"To", b" \xe9\n"), (b"Empty", b"\n"), (b"CR", b" a\rb\n"),
                            (b"Tab", b"\tx\n\ty\t\n")])
    assert got == [(b"Subject", "subject", b"hi there", b" hi\n  there\n", True),
                   (b"X-\xc9", "x-\xe9", b"=?utf-8?q?a?=", b" =?utf-8?q?a?=\n", False),
                   (b"To", "to", b"\xe9", b" \xe9\n", False),
                   (b"Empty", "empty", b"", b"\n", True),
                   (b"CR", "cr", b"a\rb", b" a\rb\n", True),
                   (b"Tab", "tab", b"x y", b"\tx\n\ty\t\n", True)]
    # a newline not followed by a blank stays (and the value is not final)
    assert m.prepare_fields([(b"A", b" x\ny\n")]) == [(b"A", "a", b"x\ny", b" x\ny\n", False)]


def test_body_lines(impl):
    m = impl("spammime")
    lines = [b"H: 1\r\n", b"\r\n", b"a\r\n", b"\r\n", b"b\r", b"c"]
    assert m.body_lines(lines, 2, True) == [b"a\n", b"\n", b"b\r", b"c"]
    assert m.body_lines(lines, 2, False) == [b"a\r\n", b"\r\n", b"b\r", b"c"]
    # 30 blank lines between text: 20 stay; 30 at the start: 21 stay
    body = [b"x\n"] + [b" \n"] * 30 + [b"y\n"]
    assert m.body_lines(body, 0, False) == [b"x\n"] + [b" \n"] * 20 + [b"y\n"]
    body = [b"\n"] * 30 + [b"y\n"]
    assert m.body_lines(body, 0, False) == [b"\n"] * 21 + [b"y\n"]
    body = [b"x\n"] + [b"\t\n"] * 20 + [b"y"]
    assert m.body_lines(body, 0, False) == body


def test_fields_and_body_random_native_equals_pure(impl):
    if impl.kind == "pure":
        pytest.skip("compares the native module with the twin")
    import postier._pure.spammime as pure
    m = impl("spammime")
    rnd = random.Random(5)
    bits = [b" ", b"\t", b"\n", b"\r", b"\r\n", b"a", b"=?", b"=", b"?", b"\xe9", b"\x0b", b"\x00", b"\n "]
    for _ in range(5000):
        fields = [(rnd.choice([b"A", b"K\xc9y", b""]),
                   b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 10))))
                  for _ in range(rnd.randrange(0, 4))]
        assert m.prepare_fields(fields) == pure.prepare_fields(fields), fields
        lines = [rnd.choice([b"\n", b"\r\n", b" \n", b"x\n", b"x\r\n", b"\r", b"y"])
                 for _ in range(rnd.randrange(0, 60))]
        start = rnd.randrange(0, len(lines) + 1)
        for crlf in (False, True):
            assert m.body_lines(list(lines), start, crlf) == pure.body_lines(list(lines), start, crlf)


def test_part_lines(impl):
    m = impl("spammime")
    body = [b"a\n", b"--x\n", b"b\n"]
    assert m.part_lines(body, 0, b"--x", 3) == (1, [b"a\n"])
    assert m.part_lines(body, 1, b"--x", 3) == (1, [])
    assert m.part_lines(body, 2, b"--x", 3) == (3, [b"b\n"])
    # stops at stop, and cuts lines longer than 2048 bytes
    long = b"y" * 4100 + b"\n"
    assert m.part_lines([long, b"c\n", b"d\n"], 0, b"--x", 2) == \
        (2, [b"y" * 2048 + b"\n", b"y" * 2048 + b"\n", b"y" * 4 + b"\n", b"c\n"])
    assert m.part_lines([b"y" * 4096], 0, b"--", 1) == (1, [b"y" * 2048 + b"\n", b"y" * 2048])
    assert m.part_lines([b"-", b"--"], 0, b"--", 2) == (1, [b"-"])


def test_multipart_messages_parse_the_same_with_both(impl, monkeypatch):
    """Message's multipart loop, which takes runs of body lines through
    part_lines, on generated MIME: the same parts as the line-by-line loop
    alone (part_lines taking nothing) gives."""
    import types

    from postier.content.spam import message
    m = impl("spammime")
    slow = types.SimpleNamespace(**{k: getattr(m, k) for k in dir(m) if not k.startswith("__")})
    slow.part_lines = lambda body, idx, delim, stop: (idx, [])
    rnd = random.Random(3)
    bits = [b"--b\n", b"--b--\n", b"--bb\n", b"Content-Type: text/plain\n", b"\n", b"text\n",
            b"x" * 3000 + b"\n", b"Content-Type: multipart/mixed; boundary=b\n", b" cont\n",
            b"--b \n", b"-- b\n", b"tail", b"--c\n", b"Content-Type: multipart/alternative; boundary=c\n"]
    for _ in range(400):
        data = (b"Content-Type: multipart/mixed; boundary=b\n\n"
                + b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 25))))
        monkeypatch.setattr(message, "_mime", m)
        a = message.Message(data)
        monkeypatch.setattr(message, "_mime", slow)
        b = message.Message(data)
        assert [(p.type, p.raw, p.headers) for p in a.find_parts()] == \
            [(p.type, p.raw, p.headers) for p in b.find_parts()], data
        assert (a.flags, a.mime_boundary_state) == (b.flags, b.mime_boundary_state)


def test_messages_from_junk_parse_without_errors_and_alike(impl, monkeypatch):
    """NULs, CRs, huge lines, broken MIME, encoded words and 8-bit junk: a
    message always comes out, the same with the native module and the twin."""
    import postier._pure.spammime as pure
    from postier.content.spam import message
    m = impl("spammime")
    rnd = random.Random(9)
    bits = [b"Subject: =?utf-8?b?w6k=?= x\r\n", b"From: a\x00b\n", b"\r\n", b"\n", b" fold\n",
            b"Content-Type: multipart/mixed; boundary=\"q\"\n", b"--q\n", b"--q--\n",
            b"Content-Transfer-Encoding: quoted-printable\n", b"=3D=\n", b"=E9t=E9\r\n",
            b"Content-Transfer-Encoding: base64\n", b"w6lhYmM=\n", b"<html><b>x</b>\xff\xfe</html>\n",
            b"Content-Type: text/html; charset=utf-8\n", b"\xe9\xa0\x00\x85 \t\n", b"a" * 5000,
            b"Content-Type: message/rfc822\n", b"From junk\n", b"\x00\x00\n"]

    def view(mod):
        monkeypatch.setattr(message, "_mime", mod)
        msg = message.Message(data)
        return (msg.headers, sorted(msg.flags), msg.rendered_body(), msg.decoded_body(),
                msg.visible_rendered_body(), msg.invisible_rendered_body(), msg.get_all_headers(),
                [(p.type, p.raw) for p in msg.find_parts()])

    for _ in range(300):
        data = b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 30)))
        got = view(m)
        assert got == view(pure), data
        assert all(len(line) <= 2049 for line in got[2])     # 2048 and a space


def test_all_headers(impl):
    m = impl("spammime")
    order = [b"Subject", b"X-A", b"subject", b"Gone", b"X-A"]
    dec = {"subject": [b"one", b"two"], "x-a": [b"a"]}
    assert m.all_headers(order, dec, False) == [b"Subject: one\n", b"X-A: a\n", b"subject: two\n"]
    raw = {"subject": [b" one\r\n  more\n", b"\ttwo\n"], "x-a": [b" a\n\r\nb\r\n\t\n c\n"]}
    # (a newline then white space, new lines included: one space; not a lone CR)
    raw["b"] = [b" x\ry\r\nz\n"]
    assert m.all_headers([b"B"], raw, True) == [b"B:  x\ry\r\nz\n"]
    assert m.all_headers(order, raw, True) == [b"Subject:  one more\n", b"X-A:  a b c\n",
                                               b"subject: \ttwo\n"]
    assert m.all_headers([b"A"] * 3, {"a": [b"x" * 30000] * 3}, False) is None


def test_all_headers_random_native_equals_pure(impl):
    if impl.kind == "pure":
        pytest.skip("compares the native module with the twin")
    import postier._pure.spammime as pure
    m = impl("spammime")
    rnd = random.Random(2)
    bits = [b" ", b"\t", b"\n", b"\r", b"\r\n", b"a", b"\x0b", b"\x0c", b"\n ", b"\r\n\t", b"\xe9"]
    names = [b"A", b"a", b"B ", b"K\xc9y", b"K\xe9y", b"C\xa0"]
    for _ in range(3000):
        order = [rnd.choice(names) for _ in range(rnd.randrange(0, 6))]
        values = {}
        for nm in names:
            key = nm.decode("latin-1").lower()
            key = key.strip() if rnd.random() < 0.5 else key
            values[key] = [b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 8)))
                           for _ in range(rnd.randrange(0, 3))]
        for raw in (False, True):
            assert m.all_headers(order, values, raw) == pure.all_headers(order, values, raw)


def test_message_from_a_bytearray_or_memoryview():
    from postier.content.spam.message import Message
    raw = b"Subject: s\r\nX: a\r\n b\r\n\r\nline one\r\nline two\r\n"
    want = Message(raw)
    for data in (bytearray(raw), memoryview(raw)):
        m = Message(data)
        assert m.headers == want.headers == {"subject": [b"s"], "x": [b"a b"]}
        assert m.rendered_body() == want.rendered_body() == [b"s\n", b"line one line two "]
        assert m.decoded_body() == [b"line one\nline two\n"]


def _qp_reference(s: bytes) -> bytes:
    """Util::qp_decode's three substitutions, as written in Perl."""
    s = re.sub(rb"[ \t]+(?=\r?\n)", b"", s)
    s = re.sub(rb"=\r?\n", b"", s)
    return re.sub(rb"=([0-9a-fA-F]{2})", lambda m: bytes((int(m.group(1), 16),)), s)


def test_qp_decode(impl):
    m = impl("spammime")
    assert m.qp_decode(b"caf=C3=A9 =3d=3D= \n=\r\nx=ZZ=4") == b"caf\xc3\xa9 ==x=ZZ=4"
    assert m.qp_decode(b"a \t \r\nb  \nc  d=") == b"a\r\nb\nc  d="
    assert m.qp_decode(b"==41=\r=\r\n") == b"=A=\r"
    assert m.qp_decode(b"==\n\n") == b"=\n"          # one pass each: a new "=\n" stays
    assert m.qp_decode(b"") == b""


def test_qp_decode_random_against_reference(impl):
    m = impl("spammime")
    rnd = random.Random(4)
    bits = [b"=", b"3D", b"A", b"f", b"g", b"\n", b"\r", b"\r\n", b" ", b"\t", b"_", b"\xe9",
            b"=4", b"x", b"\x00", b"=0a", b"= \n", b"=\t\r\n"]
    for _ in range(20000):
        s = b"".join(rnd.choice(bits) for _ in range(rnd.randrange(0, 16)))
        assert m.qp_decode(s) == _qp_reference(s), s


def test_part_header_split_is_the_regex_split():
    """_add_part_header splits at the first colon and drops the bytes \\s
    after it as SpamAssassin's split(/:\\s*/, $header, 2) (re.split before):
    the same keys and values on headers with NULs, 8-bit bytes, CRs, folds,
    no colon, several colons and every kind of white space."""
    from postier.content.spam import message

    def reference(header: bytes) -> tuple[str, list]:
        kv = re.split(rb":\s*", header, maxsplit=1)
        return kv[0].decode("latin-1").lower(), ([(kv[0], kv[1])] if len(kv) == 2 else [])

    rnd = random.Random(11)
    bits = [b"Content-Type", b"X-\xe9", b":", b": ", b":\t", b":\r\n ", b":\x0b\x0c", b" ", b"\t",
            b"\x00", b"\xff", b"text/plain", b"\n", b"\r\n", b"\n\t", b"=?utf-8?q?a?=", b"a" * 3000]
    headers = [b"", b":", b"::", b"Subject", b"Subject:", b"Subject:   \n", b"K:\x00v"]
    headers += [b"".join(rnd.choice(bits) for _ in range(rnd.randrange(1, 12))) for _ in range(3000)]
    for h in headers:
        part = message.Node()
        got = message._add_part_header(part, h)
        key, fields = reference(h)
        want = message.Node()
        for k, v in fields:
            want.add_header(k, v)
        assert (got, part.headers, part.raw_headers, part.header_order) == \
            (key, want.headers, want.raw_headers, want.header_order), h


def test_memchr_paths_random_long_inputs(impl):
    """qp_decode, text_lines and prepare_fields copy the text between the
    places they act on with memchr/memcpy and test whole words for 8-bit
    octets: long, mutated inputs (NULs, 8-bit octets, blank runs, lone
    CRs, a last line without its newline, huge lines) give what the
    reference substitutions (and the twin) give."""
    import postier._pure.spammime as pure
    m = impl("spammime")
    rnd = random.Random(13)
    qp_bits = [b"=", b"=3D", b"=C3=A9", b"=\n", b"=\r\n", b"= \t\r\n", b" ", b"\t", b"  \n", b"\t\r\n",
               b"\r", b"\n", b"\x00", b"\xff", b"word", b"x" * 5000, b"=4", b"=g0", b" \r \n"]
    for _ in range(250):
        s = b"".join(rnd.choice(qp_bits) for _ in range(rnd.randrange(0, 60)))
        assert m.qp_decode(s) == _qp_reference(s), s
    text_bits = ["word", " ", "  ", "\n", "\n\n", " \n \n ", "\t", "\r", "\x00", "\xa0", "\xe9", "\xc2",
                 "\u3000", "\u2028", "\u1680", "\u205f", "\u20ac", "y" * 3000, "z " * 1500]
    for _ in range(200):
        flagged = rnd.random() < 0.5
        text = "".join(rnd.choice(text_bits) for _ in range(rnd.randrange(0, 40)))
        if not flagged:
            text = "".join(c for c in text if ord(c) < 256)
        got = m.text_lines(b"S\n", text, flagged)
        assert b"".join(got) == _reference_text(b"S\n", text, flagged), (text, flagged)
        assert got == pure.text_lines(b"S\n", text, flagged)
    field_bits = [b"a", b"value ", b"\n", b"\n ", b"\n\t\t", b"\r\n ", b" ", b"\t", b"=?", b"=", b"?",
                  b"\xe9", b"\x00", b"\x80", b"b" * 700, b"\n\n"]
    for _ in range(250):
        fields = [(b"K", b"".join(rnd.choice(field_bits) for _ in range(rnd.randrange(0, 40))))
                  for _ in range(rnd.randrange(1, 4))]
        assert m.prepare_fields(fields) == pure.prepare_fields(fields), fields
