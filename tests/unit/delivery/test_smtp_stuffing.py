"""Content streamed in chunks: the same bytes as one stuff() of the whole content,
for every chunk size and both dataframe implementations; long-line folding."""

from __future__ import annotations

import io
import random

import pytest

from postier.delivery.smtp import fold_long_lines, stuffed_chunks

PIECES = [b"a", b".", b"..", b"\n", b"\r\n", b"\r", b"x" * 7, b".\n", b"\n.\n", b"line\n"]


def _wire(impl, content: bytes, chunk: int, offset: int = 5) -> bytes:
    f = io.BytesIO(b"HEAD!" [:offset] + content + b"TRAILER")
    return b"".join(stuffed_chunks(f, offset, len(content), chunk=chunk, stuff=impl("dataframe").stuff))


@pytest.mark.parametrize("content", [
    b"", b"\n", b".", b".\n", b"a\n.b\n..c\n", b"no final newline", b"a\r\nb\r\n.\r\n",
    b"\n\n.\n\n", b"x" * 100, (b"." * 10 + b"\n") * 20,
])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 18])
def test_chunked_equals_whole(impl, content, chunk):
    whole = impl("dataframe").stuff(content)
    assert _wire(impl, content, chunk) == whole
    assert whole.endswith(b".\r\n")


def test_chunked_random(impl):
    rng = random.Random(4711)
    stuff = impl("dataframe").stuff
    for _ in range(300):
        content = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 60)))
        chunk = rng.choice([1, 2, 3, 5, 8, 13, 100])
        assert _wire(impl, content, chunk) == stuff(content), (content, chunk)


def test_round_trip_through_the_server_reader(impl):
    df = impl("dataframe")
    content = b"Subject: x\n\n.one\n..two\n.\nend\n"
    wire = _wire(impl, content, 4)
    assert df.unstuff_all(wire) == content


def test_short_queue_file_is_an_error(impl):
    f = io.BytesIO(b"12345abc")
    with pytest.raises(OSError):
        list(stuffed_chunks(f, 5, 10, chunk=2, stuff=impl("dataframe").stuff))


@pytest.mark.parametrize("data, limit, out", [
    (b"short\n", 998, b"short\n"),
    (b"abcdefghij\n", 4, b"abcd\n efg\n hij\n"),
    (b"abcdefgh\r\n", 4, b"abcd\n efg\n h\r\n"),
    (b"abcd\nefghi\n", 4, b"abcd\nefgh\n i\n"),
    (b"abcdefghij", 4, b"abcd\n efg\n hij"),
    (b"abcdefghij\n", 0, b"abcdefghij\n"),
    # a line one over the limit: fine when that one is the CR of CRLF
    (b"abcd\r\nabc\n", 4, b"abcd\r\nabc\n"),
    (b"abcd\r\nabcde\n", 4, b"abcd\r\nabcd\n e\n"),
    (b"abcd\nabc\r\n", 4, b"abcd\nabc\r\n"),
])
def test_fold_long_lines(data, limit, out):
    assert fold_long_lines(data, limit) == out


def test_folded_lines_never_exceed_the_limit():
    rng = random.Random(1)
    for _ in range(100):
        data = b"\n".join(b"y" * rng.randrange(0, 40) for _ in range(rng.randrange(1, 8))) + b"\n"
        out = fold_long_lines(data, 10)
        assert all(len(x) <= 10 for x in out.split(b"\n"))
        assert out.replace(b"\n ", b"") == data
