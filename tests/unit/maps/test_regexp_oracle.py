"""regexp:/pcre: corner cases: malformed lines, huge tables, newline and
UTF-8 keys, unreadable files.  Where real postmap is installed the answers
and the warnings are compared with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from postier.errors import MapError
from postier.maps import clear_cache, open_map, patterns, regexp

HAVE_POSTMAP = shutil.which("postmap") is not None
needs_postmap = [pytest.mark.postfix, pytest.mark.slow,
                 pytest.mark.skipif(not HAVE_POSTMAP, reason="needs Postfix's postmap")]


@pytest.fixture(params=["hyperscan", "re2"])
def engine(request, monkeypatch):
    monkeypatch.setattr(patterns, "DEFAULT_ENGINE", request.param)
    return request.param


def write(tmp_path, name: str, text: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text)
    old = time.time() - 3600
    os.utime(path, (old, old))
    return str(path)


def ours(ttype: str, path: str, key: str) -> tuple[str | None, str]:
    clear_cache()
    warns: list[str] = []
    result = open_map(f"{ttype}:{path}", warn=warns.append, cache=False).lookup(key)
    return result, "".join(f"postmap: warning: {w}\n" for w in warns)


def theirs(ttype: str, path: str, key: str) -> tuple[str | None, str]:
    p = subprocess.run(["postmap", "-q", key, f"{ttype}:{path}"], capture_output=True)
    out = p.stdout.decode("utf-8", "surrogateescape")
    return (out[:-1] if p.returncode == 0 else None), p.stderr.decode("utf-8", "surrogateescape")


MALFORMED = (
    b"   leading whitespace line\n"
    b"/a/\tx\n# comment inside\n  y\n"
    b"/b/\tb1\n\n  b2\n"
    b"/c/\t$0\n/d/\t$x\n/e/\t${1\n/f/\t$\n/g/\tabc$\n/h/\t$(1)\n"
    b"/(i)/\t$(1)-${1}-$1x\n/j/\t$-\n/(k)(.)/\t${2}${1}$$\n/l/\t$1\n"
    b"/m/q\tunknown-flag\n/n/i!/o/\tn-not-o\n/p/ !/q/ repl\nif/r/\nendif\nIF /s/\n/t/\tt\nENDIF\n"
    b"ifx\nabc def\nendif2\n/(/\tbad\n/[z-a]/\tbad\n/a{1/\tbad\n/w\\\n"
    b"!\n!!/u/\tdouble-negation\n/v\\/w/\tslash\n%x%y%\t percent\n"
    b"/^$/\tempty-key\nif /nest/\nif !/deeper/\n/nest/\tnested\n"
)
KEYS = ["a", "b", "kz", "no", "nO", "fst", "ts", "nest", "v/w", "x", "u"]


@pytest.mark.parametrize("ttype", ["regexp", "pcre"])
def test_malformed_lines_keep_going(tmp_path, engine, ttype):
    path = write(tmp_path, "t", MALFORMED)
    got, err = ours(ttype, path, "kz")
    assert got == "zk$"
    assert f"{ttype} map {path}, line 8: " in err
    assert f"{path}: logical line must not start with whitespace" in err
    assert "IF has no matching ENDIF" in err.splitlines()[-1]


@pytest.mark.parametrize("ttype", ["regexp", "pcre"])
@pytest.mark.parametrize("key", KEYS)
def test_malformed_like_postmap(tmp_path, ttype, key, engine):
    if not HAVE_POSTMAP:
        pytest.skip("needs Postfix's postmap")
    path = write(tmp_path, "t", MALFORMED)
    assert ours(ttype, path, key) == theirs(ttype, path, key)


for _m in needs_postmap:
    test_malformed_like_postmap = _m(test_malformed_like_postmap)

NEWLINE_TABLE = (
    b"/^Subject:.*viagra/\tspam-subject\n"
    b"/^first.*last$/\tdot-spans-lines\n"
    b"/^line2$/m\tmultiline\n"
    b"/^x$/\tnot-before-final-newline\n"
    b"/^caf\xc3\xa9$/\tcafe\n"
    b"/^.$/\tone-byte\n/^..$/\ttwo-bytes\n"
    b"/^(.*)@(.*)$/\t$2 $1\n"
)
PCRE_NEWLINE_TABLE = (
    b"/^Subject:.*viagra/\tspam-subject\n"
    b"/^first.last$/\tdotall-default\n"
    b"/^line2$/m\tmultiline\n"
    b"/^x$/\tbefore-final-newline\n"
    b"/^y$/E\tdollar-endonly\n"
    b"/^caf\xc3\xa9$/\tcafe\n"
    b"/^.$/\tone-byte\n/^..$/\ttwo-bytes\n"
    b"/^(.*)@(.*)$/\t$2 $1\n"
)
NL_KEYS = ["Subject: buy\n\tVIAGRA now", "first\nlast", "a\nline2\nb", "x\n", "y\n", "x",
           "café", "CAFÉ", "é", "ü@ö", "a\nb@c"]


@pytest.mark.parametrize("ttype,text", [("regexp", NEWLINE_TABLE), ("pcre", PCRE_NEWLINE_TABLE)])
@pytest.mark.parametrize("key", NL_KEYS)
def test_newline_and_utf8_keys_like_postmap(tmp_path, engine, ttype, text, key):
    if not HAVE_POSTMAP:
        pytest.skip("needs Postfix's postmap")
    path = write(tmp_path, "t", text)
    assert ours(ttype, path, key) == theirs(ttype, path, key)


for _m in needs_postmap:
    test_newline_and_utf8_keys_like_postmap = _m(test_newline_and_utf8_keys_like_postmap)


def test_newline_keys_without_postmap(tmp_path, engine):
    path = write(tmp_path, "t", NEWLINE_TABLE)
    assert ours("regexp", path, "first\nlast")[0] == "dot-spans-lines"
    assert ours("regexp", path, "a\nline2\nb")[0] == "multiline"
    assert ours("regexp", path, "x\n")[0] == "two-bytes"       # $ is not before a final newline
    assert ours("regexp", path, "é")[0] == "two-bytes"        # bytes, C locale
    assert ours("regexp", path, "CAFÉ")[0] is None            # ASCII-only folding
    assert ours("regexp", path, "ü@ö")[0] == "ö ü"


def test_huge_table_compiles_and_matches(tmp_path, engine):
    n = 5000
    lines = [f"/^user{i}@(dom{i % 97})\\.example$/\tR{i}-$1\n" for i in range(n)]
    lines.insert(2500, "if !/^user/\n/^zz(.*)/\tnot-user-$1\nendif\n")
    path = write(tmp_path, "big", "".join(lines).encode())
    clear_cache()
    m = open_map(f"regexp:{path}", warn=pytest.fail, cache=False)
    assert m.engine == engine
    assert m.lookup("user0@dom0.example") == "R0-dom0"
    assert m.lookup("USER4999@DOM52.EXAMPLE") == "R4999-DOM52"
    assert m.lookup("user4999@dom53.example") is None
    assert m.lookup("zzTop") == "not-user-Top"
    assert m.lookup("user1234@dom70.example") == "R1234-dom70"


def test_unreadable_file_names_the_file(tmp_path):
    with pytest.raises(MapError, match=r"open .*missing: No such file or directory"):
        open_map(f"regexp:{tmp_path}/missing", warn=pytest.fail, cache=False)
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(MapError, match=r"open .*dir: Is a directory"):
        regexp.open("pcre", str(d), warn=pytest.fail)


def test_cache_dir_reuses_the_database(tmp_path):
    path = write(tmp_path, "t", b"".join(b"/^k%d$/\tv%d\n" % (i, i) for i in range(50)))
    cache = tmp_path / "cache"
    a = regexp.open("regexp", path, warn=pytest.fail, engine="hyperscan", cache_dir=str(cache))
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].startswith("hs-")
    b = regexp.open("regexp", path, warn=pytest.fail, engine="hyperscan", cache_dir=str(cache))
    assert os.listdir(cache) == files
    assert a.lookup("K7") == b.lookup("K7") == "v7"
    assert b.lookup("k70") is None
