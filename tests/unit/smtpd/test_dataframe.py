"""SMTP DATA / BDAT framing (postier._native.dataframe and its pure twin).

Every test runs against both implementations (fixture `impl`); the fuzz tests
also compare native against pure directly and both against `oracle()`, a
deliberately naive line-by-line statement of the rules in the module
docstring.
"""

from __future__ import annotations

import importlib
import random

import pytest

EOD = b"\r\n.\r\n"
ATTRS = ("done", "size", "oversize", "bare_lf_seen", "lines", "header_end", "max_line")


# --------------------------------------------------------------------------- helpers


def oracle(wire: bytes, size_limit: int = 0) -> tuple[bytes, int, dict]:
    """The rules, one line at a time over the whole input (complete messages only)."""
    out = []
    pos = 0
    prev_crlf = True
    bare = False
    while True:
        j = wire.find(b"\n", pos)
        assert j >= 0, "oracle needs a complete message"
        line = wire[pos:j]
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        if line == b"." and crlf and prev_crlf:
            consumed = j + 1
            break
        if line.startswith(b".") and line != b".":
            line = line[1:]
        out.append(line)
        bare = bare or not crlf
        prev_crlf = crlf
        pos = j + 1
    content = b"".join(x + b"\n" for x in out)
    header_end = -1
    offset = 0
    for x in out:
        offset += len(x) + 1
        if not x:
            header_end = offset
            break
    attrs = {
        "done": True,
        "size": len(content),
        "oversize": bool(size_limit) and len(content) > size_limit,
        "bare_lf_seen": bare,
        "lines": len(out),
        "header_end": header_end,
        "max_line": max((len(x) for x in out), default=0),
    }
    return (content[:size_limit] if size_limit else content), consumed, attrs


def run(mod, chunks, **kw) -> tuple[bytes, int, dict]:
    """Feed chunks until end of data: (content, absolute end offset or -1, attributes)."""
    r = mod.DataReader(**kw)
    outs = []
    offset = 0
    end = -1
    for c in chunks:
        out, consumed = r.feed(c)
        assert isinstance(out, bytes)
        outs.append(out)
        if consumed >= 0:
            assert r.done
            assert 0 < consumed <= len(c)
            end = offset + consumed
            break
        assert not r.done
        offset += len(c)
    return b"".join(outs), end, {a: getattr(r, a) for a in ATTRS}


def run_bdat(mod, chunks, **kw) -> tuple[bytes, dict]:
    r = mod.BdatReader(**kw)
    outs = [r.feed(c, i == len(chunks) - 1) for i, c in enumerate(chunks)]
    assert r.done
    return b"".join(outs), {a: getattr(r, a) for a in ATTRS}


def splits(data: bytes, points) -> list[bytes]:
    points = sorted(points)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def all_splits(data: bytes):
    """One chunk, every 2-chunk split, every 3-chunk split (short inputs), byte at a time."""
    n = len(data)
    yield [data]
    for i in range(n + 1):
        yield splits(data, [i])
    if n <= 24:
        for i in range(1, n):
            for j in range(i, n):
                yield splits(data, [i, j])
    yield [data[i : i + 1] for i in range(n)]


def normalized(x: bytes) -> bytes:
    x = x.replace(b"\r\n", b"\n")
    if x and not x.endswith(b"\n"):
        x += b"\n"
    return x


def both():
    try:
        native = importlib.import_module("postier._native.dataframe")
    except ImportError:
        pytest.skip("native module dataframe not built")
    return native, importlib.import_module("postier._pure.dataframe")


ALPHABET = [b"\r", b"\n", b".", b"a", b"\x00", b" ", b"\r\n", b"\r\n.", b"\n.", b":"]
WEIGHTS = [5, 5, 5, 4, 1, 1, 4, 3, 2, 1]


def random_bytes(rng: random.Random, n: int) -> bytes:
    return b"".join(rng.choices(ALPHABET, WEIGHTS, k=n))


def random_message(rng: random.Random) -> bytes:
    """Random hostile content, a real end marker, then pipelined commands."""
    return random_bytes(rng, rng.randrange(0, 40)) + EOD + b"RSET\r\n" * rng.randrange(2)


def random_chunks(rng: random.Random, data: bytes) -> list[bytes]:
    k = rng.randrange(0, min(len(data), 12) + 1)
    return splits(data, rng.sample(range(len(data) + 1), k))


# --------------------------------------------------------------------------- DataReader basics

BASIC = [
    # id, wire (ending with the end marker), expected content
    ("empty-message", b".\r\n", b""),
    ("one-line", b"abc\r\n.\r\n", b"abc\n"),
    ("one-empty-line", b"\r\n.\r\n", b"\n"),
    ("header-body", b"Subject: x\r\n\r\nhello\r\n.\r\n", b"Subject: x\n\nhello\n"),
    ("dot-stuffed", b"..x\r\n.y\r\n...\r\n.\r\n", b".x\ny\n..\n"),
    ("dot-cr-content", b".\rx\r\n.\r\n", b"\rx\n"),
    ("bare-cr-content", b"a\rb\r\n.\r\n", b"a\rb\n"),
    ("cr-cr-lf", b"a\r\r\n.\r\n", b"a\r\n"),
    ("bare-lf-lines", b"a\nb\n\r\n.\r\n", b"a\nb\n\n"),
    ("nul-bytes", b"a\x00b\r\n\x00\r\n.\r\n", b"a\x00b\n\x00\n"),
    ("dot-in-line", b"a.b.\r\n.\r\n", b"a.b.\n"),
    ("dot-dot-end-lookalike", b"..\r\n.\r\n", b".\n"),
    ("lone-dot-after-bare-lf", b"a\n.\r\nb\r\n.\r\n", b"a\n.\nb\n"),
]


@pytest.mark.parametrize("wire,content", [c[1:] for c in BASIC], ids=[c[0] for c in BASIC])
def test_basic(impl, wire, content):
    mod = impl("dataframe")
    r = mod.DataReader()
    out, used = r.feed(wire + b"NOOP\r\n")
    assert (out, used, r.done) == (content, len(wire), True)
    assert r.size == len(content)
    assert r.lines == content.count(b"\n")


def test_message_without_final_newline_is_not_ended(impl):
    """`abc.<CR><LF>` is a content line "abc." - only `<CR><LF>.<CR><LF>` ends."""
    mod = impl("dataframe")
    r = mod.DataReader()
    assert r.feed(b"abc.\r\n") == (b"abc.\n", -1)
    assert not r.done
    assert r.feed(b".\r\nQUIT\r\n") == (b"", 3)
    assert r.done and r.lines == 1 and r.size == 5


def test_pipelined_commands_after_marker(impl):
    mod = impl("dataframe")
    wire = b"Subject: t\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
    r = mod.DataReader()
    out, consumed = r.feed(wire)
    assert out == b"Subject: t\n\nbody\n"
    assert wire[consumed:] == b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
    # the same when the marker straddles chunks
    r = mod.DataReader()
    cut = wire.index(b".\r\nMAIL") + 1
    assert r.feed(wire[:cut]) == (b"Subject: t\n\nbody\n", -1)
    out, consumed = r.feed(wire[cut:])
    assert (out, wire[cut:][consumed:]) == (b"", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")


def test_pipelined_bytes_look_like_data(impl):
    """Bytes after the marker are never read, whatever they contain."""
    mod = impl("dataframe")
    r = mod.DataReader()
    out, consumed = r.feed(b"x\r\n.\r\n.\r\n\r\n.\r\n")
    assert (out, consumed) == (b"x\n", 6)


def test_feed_after_done_raises(impl):
    mod = impl("dataframe")
    r = mod.DataReader()
    r.feed(b".\r\n")
    with pytest.raises(ValueError):
        r.feed(b"more\r\n")


def test_empty_chunks(impl):
    mod = impl("dataframe")
    r = mod.DataReader()
    assert r.feed(b"") == (b"", -1)
    assert r.feed(b"a\r") == (b"a", -1)
    assert r.feed(b"") == (b"", -1)
    assert r.feed(b"\n.") == (b"\n", -1)
    assert r.feed(b"") == (b"", -1)
    assert r.feed(b"\r\n") == (b"", 2)


def test_buffer_types(impl):
    mod = impl("dataframe")
    wire = b"a\r\n..b\r\n.\r\n"
    for conv in (bytes, bytearray, memoryview):
        r = mod.DataReader()
        assert r.feed(conv(wire)) == (b"a\n.b\n", len(wire))
    assert mod.unstuff_all(bytearray(wire)) == b"a\n.b\n"
    assert mod.stuff(memoryview(b"a\n.b")) == b"a\r\n..b\r\n.\r\n"


def test_initial_state(impl):
    mod = impl("dataframe")
    r = mod.DataReader()
    assert (r.done, r.size, r.oversize, r.bare_lf_seen, r.lines, r.header_end, r.max_line) == (
        False, 0, False, False, 0, -1, 0)
    assert r.bare_lf == "normalize"


@pytest.mark.parametrize("mode,stored", [("normalize", "normalize"), ("yes", "normalize"),
                                         ("REJECT", "reject"), ("reject", "reject")])
def test_bare_lf_modes(impl, mode, stored):
    mod = impl("dataframe")
    assert mod.DataReader(bare_lf=mode).bare_lf == stored


@pytest.mark.parametrize("mode", ["no", "", "strict"])
def test_bare_lf_bad_mode(impl, mode):
    mod = impl("dataframe")
    with pytest.raises(ValueError):
        mod.DataReader(bare_lf=mode)


def test_negative_size_limit(impl):
    mod = impl("dataframe")
    with pytest.raises(ValueError):
        mod.DataReader(size_limit=-1)
    with pytest.raises(ValueError):
        mod.BdatReader(size_limit=-1)


# --------------------------------------------------------------------------- smuggling

# Each variant sits between "body" and a smuggled transaction; the real end of
# data comes later.  `stored` is what the variant and the smuggled MAIL line
# become in the content (the "." of a lone-dot line is kept, see the rules).
SMUGGLE = [
    ("LF.LF", b"\n.\n", b"\n.\nMAIL"),
    ("CR.CR", b"\r.\r", b"\r.\rMAIL"),
    ("LF.CRLF", b"\n.\r\n", b"\n.\nMAIL"),
    ("CRLF.LF", b"\r\n.\n", b"\n.\nMAIL"),
    ("CRLF.CR", b"\r\n.\r", b"\n\rMAIL"),
    ("CR.CRLF", b"\r.\r\n", b"\r.\nMAIL"),
    ("LF.CR", b"\n.\r", b"\n\rMAIL"),
    ("CRLF.CRCRLF", b"\r\n.\r\r\n", b"\n\r\nMAIL"),
    ("LF.LF-NUL", b"\n.\n\x00", b"\n.\n\x00MAIL"),
    ("CRLF.NUL-CRLF", b"\r\n.\x00\r\n", b"\n\x00\nMAIL"),
    ("CRLF-NUL.CRLF", b"\r\n\x00.\r\n", b"\n\x00.\nMAIL"),
    ("CR-NUL-LF.CRLF", b"\r\x00\n.\r\n", b"\r\x00\n.\nMAIL"),
    ("CRLF.SP-CRLF", b"\r\n. \r\n", b"\n \nMAIL"),
    ("CRLF-SP.CRLF", b"\r\n .\r\n", b"\n .\nMAIL"),
    ("CRLF.CR.CRLF", b"\r\n.\r.\r\n", b"\n\r.\nMAIL"),
    ("LF.LF-doubled", b"\n.\n\n.\n", b"\n.\n\n.\nMAIL"),
    ("CRLF.LF.CRLF", b"\r\n.\n.\r\n", b"\n.\n.\nMAIL"),
    ("CRLF..CRLF", b"\r\n..\r\n", b"\n.\nMAIL"),
]
SMUGGLED = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nforged\r\n"
PIPELINED = b"QUIT\r\n"


@pytest.mark.parametrize("variant,stored", [s[1:] for s in SMUGGLE], ids=[s[0] for s in SMUGGLE])
def test_smuggling_variant_is_content(impl, variant, stored):
    mod = impl("dataframe")
    wire = b"Subject: t\r\n\r\nbody" + variant + SMUGGLED + EOD + PIPELINED
    expect = (b"Subject: t\n\nbody" + stored + SMUGGLED[4:].replace(b"\r\n", b"\n") + b"\n")
    for chunks in ([wire], splits(wire, [wire.index(variant) + 2]),
                   [wire[i : i + 1] for i in range(len(wire))]):
        content, end, attrs = run(mod, chunks)
        assert end == len(wire) - len(PIPELINED), chunks
        assert content == expect
        assert b"RCPT TO:<victim@example.net>\n" in content
        assert attrs["bare_lf_seen"] == (b"\n" in variant.replace(b"\r\n", b""))
        assert attrs["header_end"] == len(b"Subject: t\n\n")
    assert oracle(wire)[0] == expect


@pytest.mark.parametrize("variant", [s[1] for s in SMUGGLE], ids=[s[0] for s in SMUGGLE])
def test_smuggling_variant_at_start(impl, variant):
    """Right after 354 the reader is at the start of a line after a CRLF."""
    mod = impl("dataframe")
    wire = variant + SMUGGLED + EOD
    content, end, _ = run(mod, [wire])
    expected, consumed, _ = oracle(wire)
    assert (content, end) == (expected, consumed)
    assert end == len(wire)


@pytest.mark.parametrize("mode", ["normalize", "reject"])
def test_reject_mode_same_framing(impl, mode):
    mod = impl("dataframe")
    wire = b"a\n.\nb\r\n.\r\nQUIT\r\n"
    content, end, attrs = run(mod, [wire], bare_lf=mode)
    assert (content, end, attrs["bare_lf_seen"]) == (b"a\n.\nb\n", len(wire) - 6, True)
    content, end, attrs = run(mod, [b"a\r\n.\r\n"], bare_lf=mode)
    assert attrs["bare_lf_seen"] is False


def test_bare_lf_after_marker_not_seen(impl):
    mod = impl("dataframe")
    _, _, attrs = run(mod, [b"a\r\n.\r\nb\nc\n"])
    assert attrs["bare_lf_seen"] is False


# --------------------------------------------------------------------------- attributes


def test_statistics(impl):
    mod = impl("dataframe")
    wire = b"From: a\r\nX-Long: 0123456789\r\n\r\n..body\r\n\r\nend\r\n.\r\n"
    content, end, attrs = run(mod, [wire])
    assert content == b"From: a\nX-Long: 0123456789\n\n.body\n\nend\n"
    assert attrs["lines"] == 6
    assert attrs["max_line"] == len(b"X-Long: 0123456789")
    assert attrs["header_end"] == len(b"From: a\nX-Long: 0123456789\n\n")
    assert content[attrs["header_end"]:] == b".body\n\nend\n"


def test_header_end_none_and_first(impl):
    mod = impl("dataframe")
    assert run(mod, [b"a\r\nb\r\n.\r\n"])[2]["header_end"] == -1
    assert run(mod, [b"\r\nbody\r\n.\r\n"])[2]["header_end"] == 1
    # a line holding a bare CR (stored "\r\n") is not empty
    assert run(mod, [b"h\r\n\r\r\n.\r\n"])[2]["header_end"] == -1
    # a lone "." line (bare LF) does not end the header
    assert run(mod, [b"h\n.\nb\r\n\r\n.\r\n"])[2]["header_end"] == len(b"h\n.\nb\n\n")


def test_max_line_counts_partial_line(impl):
    mod = impl("dataframe")
    r = mod.DataReader()
    r.feed(b"ab\r\n" + b"x" * 10)
    assert (r.max_line, r.lines) == (10, 1)
    r.feed(b"y" * 5 + b"\r")
    assert (r.max_line, r.lines) == (15, 1)
    r.feed(b"\n.\r\n")
    assert (r.max_line, r.lines, r.done) == (15, 2, True)


# --------------------------------------------------------------------------- size limit


@pytest.mark.parametrize("limit", [1, 5, 9, 10, 11, 100])
def test_size_limit(impl, limit):
    mod = impl("dataframe")
    wire = b"0123\r\n..678\r\n.\r\nNOOP\r\n"
    full = b"0123\n.678\n"  # 10 stored bytes
    for chunks in all_splits(wire):
        content, end, attrs = run(mod, chunks, size_limit=limit)
        assert content == full[:limit]
        assert end == len(wire) - 6
        assert attrs["size"] == 10
        assert attrs["oversize"] == (limit < 10)
        assert attrs["lines"] == 2 and attrs["done"]


def test_size_limit_keeps_consuming(impl):
    mod = impl("dataframe")
    r = mod.DataReader(size_limit=1000)
    total = 0
    for _ in range(50):
        out, consumed = r.feed(b"x" * 98 + b"\r\n")
        total += len(out)
        assert consumed == -1
    assert r.oversize and total == 1000 and r.size == 50 * 99
    assert r.feed(b".\r\n") == (b"", 3)
    assert r.done and r.lines == 50


def test_size_limit_zero_is_unlimited(impl):
    mod = impl("dataframe")
    r = mod.DataReader(size_limit=0)
    out, _ = r.feed(b"y" * 100000 + b"\r\n.\r\n")
    assert len(out) == 100001 and not r.oversize


# --------------------------------------------------------------------------- chunking

SPLIT_CASES = [
    b".\r\n",
    b"\r\n.\r\n",
    b"abc\r\n.\r\nQUIT\r\n",
    b"a\n.\nb\r\n.\r\n",
    b"..\r\n.\r\r\n.\r\n.\r\n",
    b"x\r\r\n.\r\n",
    b"\n.\r\n\r\n.\r\nN",
    b".\n.\r\n..\r\n.\r\n",
    b"H: v\r\n\r\n\r.\r\r\n.\r\n",
    b"\r.\r\n\r\n.\r\n",
    b"a\r\n.\rb\r\n.\r\n",
    b"\r\n\r\n\n\r\n.\r\n",
]


@pytest.mark.parametrize("wire", SPLIT_CASES, ids=[repr(w)[2:-1] for w in SPLIT_CASES])
def test_every_split_same_result(impl, wire):
    mod = impl("dataframe")
    expected = oracle(wire)
    for chunks in all_splits(wire):
        assert run(mod, chunks) == expected, chunks


def test_random_splits_against_oracle(impl):
    mod = impl("dataframe")
    rng = random.Random(5321)
    for _ in range(1500):
        wire = random_message(rng)
        limit = rng.choice([0, 0, 0, 1, 7, 30])
        expected = oracle(wire, limit)
        assert run(mod, [wire], size_limit=limit) == expected, wire
        assert run(mod, random_chunks(rng, wire), size_limit=limit) == expected, wire


def test_byte_at_a_time_random(impl):
    mod = impl("dataframe")
    rng = random.Random(2045)
    for _ in range(200):
        wire = random_message(rng)
        assert run(mod, [wire[i : i + 1] for i in range(len(wire))]) == oracle(wire), wire


def test_large_message_random_chunks(impl):
    """A few hundred KB of realistic text with hostile lines, fed in random chunks."""
    mod = impl("dataframe")
    rng = random.Random(7)
    parts = []
    for _ in range(6000):
        kind = rng.random()
        if kind < 0.05:
            parts.append(random_bytes(rng, rng.randrange(1, 8)))
        elif kind < 0.15:
            parts.append(b"." * rng.randrange(1, 4) + b"dotted line\r\n")
        else:
            parts.append(b"line %d " % rng.randrange(10**6) + b"t" * rng.randrange(0, 90) + b"\r\n")
    wire = b"".join(parts) + EOD + b"QUIT\r\n"
    expected = oracle(wire, 0)
    for size in (1 << 16, 4096, 1000, 7, None):
        if size is None:
            chunks = random_chunks(rng, wire)
        else:
            chunks = [wire[i : i + size] for i in range(0, len(wire), size)]
        assert run(mod, chunks) == expected


def test_incomplete_input_split_invariance(impl):
    """Without an end marker the output so far does not depend on the chunking
    (apart from undecided bytes held back at the end)."""
    mod = impl("dataframe")
    rng = random.Random(11)
    for _ in range(300):
        wire = random_bytes(rng, rng.randrange(0, 30))
        whole = run(mod, [wire])
        assert whole[1] == -1 or EOD in b"\r\n" + wire
        if whole[1] == -1:
            assert run(mod, random_chunks(rng, wire)) == whole, wire


def test_native_equals_pure_fuzz():
    native, pure = both()
    rng = random.Random(25)
    for _ in range(3000):
        if rng.random() < 0.8:
            wire = random_message(rng)
        else:
            wire = random_bytes(rng, rng.randrange(0, 60))  # maybe no marker at all
        chunks = random_chunks(rng, wire)
        limit = rng.choice([0, 0, 3, 20])
        mode = rng.choice(["normalize", "reject"])
        rn, rp = native.DataReader(limit, mode), pure.DataReader(limit, mode)
        for c in chunks:
            a, b = rn.feed(c), rp.feed(c)
            assert a == b, (wire, chunks)
            assert [getattr(rn, x) for x in ATTRS] == [getattr(rp, x) for x in ATTRS], wire
            if a[1] >= 0:
                break
        chunks = random_chunks(rng, wire) or [b""]
        assert run_bdat(native, chunks, size_limit=limit) == run_bdat(pure, chunks, size_limit=limit)
        assert native.stuff(wire) == pure.stuff(wire)
        assert native.unstuff_all(wire) == pure.unstuff_all(wire)


# --------------------------------------------------------------------------- BdatReader

BDAT = [
    # id, chunks, content
    ("plain", [b"a\r\nb\r\n"], b"a\nb\n"),
    ("crlf-across-chunks", [b"a\r", b"\nb\r\n"], b"a\nb\n"),
    ("cr-at-end-of-last", [b"a\r"], b"a\r"),
    ("cr-then-empty-last", [b"a\r", b""], b"a\r"),
    ("cr-then-empty-then-lf", [b"a\r", b"", b"\n"], b"a\n"),
    ("cr-cr-across", [b"a\r", b"\r\n"], b"a\r\n"),
    ("bare-cr-across", [b"a\r", b"b"], b"a\rb"),
    ("no-dot-unstuffing", [b"..x\r\n.\r\n"], b"..x\n.\n"),
    ("no-end-marker", [b"a\r\n.\r\n", b"b\r\n"], b"a\n.\nb\n"),
    ("bare-lf-kept", [b"a\nb\r\n"], b"a\nb\n"),
    ("empty", [b""], b""),
    ("no-final-newline", [b"abc"], b"abc"),
]


@pytest.mark.parametrize("chunks,content", [b[1:] for b in BDAT], ids=[b[0] for b in BDAT])
def test_bdat(impl, chunks, content):
    mod = impl("dataframe")
    out, attrs = run_bdat(mod, chunks)
    assert out == content
    assert attrs["size"] == len(content)
    joined = b"".join(chunks)
    assert attrs["bare_lf_seen"] == (joined.count(b"\n") != joined.count(b"\r\n"))


def test_bdat_statistics(impl):
    mod = impl("dataframe")
    out, attrs = run_bdat(mod, [b"Subject: x\r\n\r", b"\nbody line\r\nlast"])
    assert out == b"Subject: x\n\nbody line\nlast"
    assert attrs["lines"] == 4
    assert attrs["header_end"] == len(b"Subject: x\n\n")
    assert attrs["max_line"] == len(b"Subject: x")
    assert run_bdat(mod, [b"a\r\n"])[1]["lines"] == 1
    assert run_bdat(mod, [b""])[1]["lines"] == 0


def test_bdat_feed_after_last_raises(impl):
    mod = impl("dataframe")
    r = mod.BdatReader()
    assert r.feed(b"x", True) == b"x"
    with pytest.raises(ValueError):
        r.feed(b"y", True)


def test_bdat_size_limit(impl):
    mod = impl("dataframe")
    r = mod.BdatReader(size_limit=5)
    assert r.feed(b"abc\r\n", False) == b"abc\n"
    assert not r.oversize
    assert r.feed(b"def\r\n", False) == b"d"
    assert r.feed(b"ghi", True) == b""
    assert (r.oversize, r.size, r.lines, r.done) == (True, 11, 3, True)


def test_bdat_every_split(impl):
    mod = impl("dataframe")
    for data in (b"a\r\n\r\nb\r\r\n.\r\n\nc\r", b"\r\r\n\r", b"x\r\n\r\n..\n"):
        expected = run_bdat(mod, [data])
        for chunks in all_splits(data):
            assert run_bdat(mod, chunks) == expected, chunks
        assert expected[0] == data.replace(b"\r\n", b"\n")


def test_bdat_random_splits(impl):
    mod = impl("dataframe")
    rng = random.Random(3030)
    for _ in range(1000):
        data = random_bytes(rng, rng.randrange(0, 40))
        chunks = random_chunks(rng, data) or [b""]
        limit = rng.choice([0, 0, 5])
        out, attrs = run_bdat(mod, chunks, size_limit=limit)
        full = data.replace(b"\r\n", b"\n")
        assert out == (full[:limit] if limit else full)
        assert attrs["size"] == len(full)
        assert attrs["lines"] == len(full.split(b"\n")) - (1 if full.endswith(b"\n") or not full else 0)
        assert attrs["max_line"] == max(map(len, full.split(b"\n")))


# --------------------------------------------------------------------------- stuff


STUFF = [
    ("empty", b"", b".\r\n"),
    ("one-line", b"a\n", b"a\r\n.\r\n"),
    ("no-final-newline", b"a", b"a\r\n.\r\n"),
    ("crlf-kept", b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    ("leading-dot", b".a\n", b"..a\r\n.\r\n"),
    ("lone-dot-line", b"x\n.\ny", b"x\r\n..\r\ny\r\n.\r\n"),
    ("dot-only", b".", b"..\r\n.\r\n"),
    ("bare-cr-content", b"a\rb\n", b"a\rb\r\n.\r\n"),
    ("final-cr", b"a\r", b"a\r\r\n.\r\n"),
    ("empty-lines", b"\n\n", b"\r\n\r\n.\r\n"),
]


@pytest.mark.parametrize("content,wire", [s[1:] for s in STUFF], ids=[s[0] for s in STUFF])
def test_stuff(impl, content, wire):
    mod = impl("dataframe")
    assert mod.stuff(content) == wire
    assert mod.unstuff_all(wire) == normalized(content)


def test_stuff_round_trip_random(impl):
    mod = impl("dataframe")
    rng = random.Random(821)
    for _ in range(2000):
        x = random_bytes(rng, rng.randrange(0, 40))
        wire = mod.stuff(x)
        # the only end-of-data marker is the one appended
        assert (b"\r\n" + wire).find(EOD) == len(wire) - 3, x
        assert mod.unstuff_all(wire) == normalized(x), x
        assert mod.unstuff_all(wire + b"MAIL FROM:<>\r\n") == normalized(x)
        r = mod.DataReader()
        assert r.feed(wire)[1] == len(wire) and not r.bare_lf_seen


def test_unstuff_all_without_marker(impl):
    mod = impl("dataframe")
    assert mod.unstuff_all(b"a\r\n..b\r\n.") == b"a\n.b\n"
    assert mod.unstuff_all(b"") == b""
