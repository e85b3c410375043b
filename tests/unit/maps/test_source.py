"""postier.maps.source: the postmap(1) source format (logical lines, quoted
keys, warnings, case folding), with a differential check against the real
postmap."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from postier.maps.source import (
    fold_key,
    fold_text,
    logical_lines,
    printable,
    split_entry,
    table_entries,
)


def parse(text: bytes, **kw) -> tuple[list[tuple[int, bytes, bytes]], list[str]]:
    warnings: list[str] = []
    got = list(table_entries(text, "T", warnings.append, **kw))
    return got, warnings


def test_logical_lines_join_continuations():
    text = b"k1 v1\n  cont1\n\tcont2\n# comment\n  # indented comment\n\n  after\nk2 v2"
    warnings: list[str] = []
    assert list(logical_lines(text, "T", warnings.append)) == [
        (1, b"k1 v1  cont1\tcont2  after"), (8, b"k2 v2")]
    assert warnings == []


def test_leading_whitespace_is_warned_and_skipped():
    warnings: list[str] = []
    text = b"   leading text that is longer than thirty bytes\n  more\nk v\n"
    assert list(logical_lines(text, "T", warnings.append)) == [(3, b"k v")]
    assert warnings == [
        'T: logical line must not start with whitespace: "   leading text that is longer..."']
    warnings.clear()
    assert list(logical_lines(b" x\nk v\n", "T", warnings.append)) == [(2, b"k v")]
    assert warnings == ['T: logical line must not start with whitespace: " x"']


def test_entries_and_warnings():
    text = (b"# head\nkey1 value1\nkey2   spaced value \t \r\nnovalue\nnovalue2   \n"
            b"key5: colon\n\"quoted key\"\tq\n\"unbal x\nesc\\\" v\nk\\ ey v2\nlast v")
    got, warnings = parse(text)
    assert got == [(2, b"key1", b"value1"), (3, b"key2", b"spaced value"),
                   (6, b"key5:", b"colon"), (7, b'"quoted key"', b"q"),
                   (9, b'esc\\"', b"v"), (10, b"k\\ ey", b"v2"), (11, b"last", b"v")]
    assert warnings == [
        "T, line 4: expected format: key whitespace value",
        "T, line 5: expected format: key whitespace value",
        'T, line 6: record is in "key: value" format; is this an alias file?',
        "T, line 8: unbalanced '\"' in '\"unbal x' -- ignoring this line"]


def test_texthash_wording():
    _, warnings = parse(b"novalue\n", texthash=True)
    assert warnings == ["T, line 1: expected format: key whitespace value -- ignoring this line"]


def test_non_utf8_lines():
    got, warnings = parse(b"\xff\xfe bad\nok v\nk3 \xe9t\xe9\n\xc3\xa9\tk\x01\xff v\n")
    assert got == [(2, b"ok", b"v")]
    assert warnings == ['T, line 1: non-UTF-8 input "?? bad" -- ignoring this line',
                        'T, line 3: non-UTF-8 input "k3 ?t?" -- ignoring this line',
                        'T, line 4: non-UTF-8 input "é?k?? v" -- ignoring this line']
    got, warnings = parse(b"k3 \xe9t\xe9\n", utf8=False)
    assert got == [(1, b"k3", b"\xe9t\xe9")] and warnings == []


def test_nul_ends_the_line():
    got, warnings = parse(b"key val\x00ue\n\x00junk\n")
    assert got == [(1, b"key", b"val")]
    assert warnings == ["T, line 2: expected format: key whitespace value"]


def test_split_entry():
    assert split_entry(b"a b") == (b"a", b"b")
    assert split_entry(b"a") == (b"a", b"")
    assert split_entry(b'"a b" c d ') == (b'"a b"', b"c d")
    assert split_entry(b'a\\ b c') == (b"a\\ b", b"c")
    assert split_entry(b'x"y z" w') == (b'x"y z"', b"w")
    assert split_entry(b'"open') is None
    assert split_entry(b'end\\') == (b"end\\", b"")


def test_printable():
    assert printable(b"plain text") == "plain text"
    assert printable(b"tab\there") == "tab?here"
    assert printable("é ü") == "é ü"
    assert printable(b"\xff\xe9x") == "??x"
    assert printable("\udcff") == "?"


def test_folding():
    assert fold_key(b"MiXeD") == b"mixed"
    assert fold_key("STRAßE".encode()) == b"strasse"
    assert fold_key("İstanbul".encode()) == "i̇stanbul".encode()
    assert fold_key("STRAßE".encode(), utf8=False) == "straße".encode()
    assert fold_text("ΣΑΣ") == "σασ"
    assert fold_text("ABC\udcff") == "abc\udcff"
    assert fold_text("ÄB", utf8=False) == "Äb"


TRICKY = (
    "# comment\n  # indented comment\n\nkey1 value1\n  cont1\n\tcont2\n"
    "key2   spaced value   \t \nnovalue\nnovalue2   \n   leading continuation? \n"
    "key3 v3\n# comment between\n  cont-after-comment\nKEY4 Upper\nkey5: colon\n"
    "key6 v6 # not comment\n\n  \nkey7 a\n\n  after-blank\n"
    '"quoted key"\tquoted\n"a b" c\n"unterminated x\n"esc\\"q" v\n""   emptyq\n'
    "dup first\nDUP second\nÄÖÜß utf\nİstanbul i\nΣΑΣ sigma\nk1 v1\r\n"
).encode() + b"\xff\xfe bad\nlast line without newline"


def run(argv: list[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, cwd=cwd)


@pytest.mark.postfix
@pytest.mark.parametrize("flags", [[], ["-f"]])
def test_same_entries_as_postmap(tmp_path, flags):
    """Build the same tricky source with postmap and with our parser: the
    entries (postmap -s) and the warnings must be the same."""
    from postier.maps import hash as hash_map
    (tmp_path / "t").write_bytes(TRICKY)
    p = run([shutil.which("postmap"), *flags, "t"], str(tmp_path))
    assert p.returncode == 0
    s = run([shutil.which("postmap"), *flags, "-s", "t"], str(tmp_path))
    want = sorted(s.stdout.split(b"\n"))
    warnings: list[str] = []
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        pairs = list(hash_map.source_pairs(TRICKY, "t", fold=not flags,
                                           warn=warnings.append))
    finally:
        os.chdir(cwd)
    dedup: dict[bytes, bytes] = {}
    for k, v in pairs:
        dedup.setdefault(k, v)
    got = sorted([k + b"\t" + v for k, v in dedup.items()] + [b""])
    assert got == want
    postmap_warnings = [line.removeprefix("postmap: warning: ")
                        for line in p.stderr.decode().splitlines()
                        if "duplicate entry" not in line]
    assert warnings == postmap_warnings
