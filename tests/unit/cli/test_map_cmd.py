"""`postier map` (postier.cli.map_cmd): postmap's options, output, exit codes
and diagnostics.  In-process tests for the behaviours, then a differential
test that runs the same shell commands with the real postmap and with
`postier map` and compares exit status, stdout and stderr."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest

from postier.cli import map_cmd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SRC = os.path.join(ROOT, "src")


def cli(module, argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, str]:
    """Run module.main(argv) in-process: (exit status, stdout bytes, stderr)."""
    out = io.BytesIO()
    err = io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    fake_in = io.TextIOWrapper(io.BytesIO(stdin))
    fake_out = io.TextIOWrapper(out, write_through=True)
    sys.stdin, sys.stdout, sys.stderr = fake_in, fake_out, err
    try:
        try:
            rc = module.main(argv)
        except SystemExit as e:
            rc = e.code
        fake_out.flush()
        data = out.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        fake_out.detach()
        fake_in.detach()
    return rc, data, err.getvalue()


def pm(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, str]:
    return cli(map_cmd, argv, stdin)


@pytest.fixture
def table(tmp_path, pure_env):
    """A source file `access` in tmp_path (built as hash: by the test)."""
    path = tmp_path / "access"
    path.write_text("Example.COM REJECT\nuser@example.com OK\ndup first\ndup second\n"
                    "novalue\n")
    return str(path)


def test_build_and_query(table):
    rc, out, err = pm([table])
    assert (rc, out) == (0, b"")
    assert err == (f'postmap: warning: {table}.db: duplicate entry: "dup"\n'
                   f"postmap: warning: {table}, line 5: expected format: key whitespace value\n")
    assert pm(["-q", "EXAMPLE.com", f"hash:{table}"]) == (0, b"REJECT\n", "")
    assert pm(["-q", "example.com", table]) == (0, b"REJECT\n", "")   # default type: hash
    assert pm(["-q", "dup", table]) == (0, b"first\n", "")
    assert pm(["-q", "nope", table]) == (1, b"", "")
    assert pm(["-f", "-q", "EXAMPLE.com", table]) == (1, b"", "")


def test_query_stdin(table):
    pm([table])
    rc, out, err = pm(["-q", "-", table], b"example.com\nnope\nUSER@example.com\n\nlast")
    assert (rc, out, err) == (0, b"example.com\tREJECT\nUSER@example.com\tOK\n", "")
    assert pm(["-q", "-", table], b"nope\n") == (1, b"", "")
    assert pm(["-q", "-", table], b"") == (1, b"", "")


def test_query_several_tables(table, tmp_path):
    other = tmp_path / "other"
    other.write_text("only.here yes\nexample.com second-table\n")
    pm([table])
    pm([str(other)])
    assert pm(["-q", "only.here", table, str(other)]) == (0, b"yes\n", "")
    assert pm(["-q", "example.com", str(other), table]) == (0, b"second-table\n", "")
    rc, out, err = pm(["-q", "nope", table, f"hash:{tmp_path}/missing"])
    assert rc == 1 and out == b""
    assert err == f"postmap: fatal: open database {tmp_path}/missing.db: No such file or directory\n"


def test_sequence_and_delete(table):
    pm([table])
    rc, out, _ = pm(["-s", table])
    assert rc == 0
    assert out == b"example.com\tREJECT\nuser@example.com\tOK\ndup\tfirst\n"
    assert pm(["-d", "EXAMPLE.COM", table]) == (0, b"", "")
    assert pm(["-d", "example.com", table]) == (1, b"", "")
    assert pm(["-d", "-", table], b"dup\nnope\n") == (0, b"", "")
    assert pm(["-s", table])[1] == b"user@example.com\tOK\n"


def test_incremental(table):
    pm([table])
    rc, _, err = pm(["-i", table], b"New.Key nv\ndup idup\nbad\n")
    assert rc == 0
    assert err == (f'postmap: warning: {table}.db: duplicate entry: "dup"\n'
                   'postmap: warning: stdin, line 3: expected format: key whitespace value\n')
    assert pm(["-q", "new.key", table]) == (0, b"nv\n", "")
    assert pm(["-q", "dup", table]) == (0, b"first\n", "")
    assert pm(["-i", "-r", table], b"dup replaced\n")[0] == 0
    assert pm(["-q", "dup", table]) == (0, b"replaced\n", "")


def test_incremental_creates_table(tmp_path, pure_env):
    name = str(tmp_path / "fresh")
    assert pm(["-i", name], b"k v\n") == (0, b"", "")
    assert pm(["-q", "k", name]) == (0, b"v\n", "")


@pytest.mark.parametrize("flag,want", [("-r", b"second\n"), ("-w", b"first\n")])
def test_duplicate_options(table, flag, want):
    rc, _, err = pm([flag, table])
    assert rc == 0 and "duplicate entry" not in err
    assert pm(["-q", "dup", table]) == (0, want, "")


def test_rhs_is_file(tmp_path, pure_env):
    (tmp_path / "f1").write_text("hello\n")
    (tmp_path / "f2").write_text("world")
    src = tmp_path / "t"
    src.write_text(f"k {tmp_path}/f1, {tmp_path}/f2\nbad {tmp_path}/none\n")
    rc, _, err = pm(["-F", str(src)])
    assert rc == 0
    assert err == (f"postmap: warning: {src}, line 2: open {tmp_path}/none: "
                   "No such file or directory: skipping this entry\n")
    assert pm(["-q", "k", str(src)]) == (0, b"aGVsbG8KCndvcmxk\n", "")
    assert pm(["-F", "-q", "k", str(src)]) == (0, b"hello\n\nworld\n", "")


def test_header_and_body_queries(tmp_path, pure_env):
    src = tmp_path / "t"
    src.write_text("body1 B1\nbody2 B2\n")
    pm([str(src)])
    msg = b"Subject: x\nX-Long: a\n b\n\nbody1\nbody2\n"
    assert pm(["-b", "-q", "-", str(src)], msg) == (0, b"body1\tB1\nbody2\tB2\n", "")
    assert pm(["-h", "-q", "-", str(src)], msg) == (1, b"", "")
    rc, _, err = pm(["-h", "-q", "key", str(src)])
    assert rc == 1 and err == 'postmap: fatal: specify -b -h or -m only with "-q -"\n'
    rc, _, err = pm(["-h", "-m", "-q", "-", str(src)], msg)
    assert rc == 1 and "not supported" in err


def test_option_errors(table):
    usage = ("postmap: fatal: usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] "
             "[-q key] [map_type:]file...\n")
    assert pm([]) == (1, b"", usage)
    assert pm(["-q", "x"]) == (1, b"", usage)
    assert pm(["-Z", table]) == (1, b"", "postmap: invalid option -- 'Z'\n" + usage)
    assert pm(["-q"]) == (1, b"", "postmap: option requires an argument -- 'q'\n" + usage)
    assert pm(["-q", "a", "-d", "b", table]) == \
        (1, b"", "postmap: fatal: specify only one of -s -q or -d\n")
    assert pm(["-q", "a", "-s", table]) == \
        (1, b"", "postmap: fatal: specify only one of -s or -q or -d\n")
    assert pm(["-s"]) == (1, b"", "")


def test_unbuildable_and_unknown_types(table):
    assert pm([f"texthash:{table}"]) == (1, b"", "postmap: fatal: unsupported dictionary "
                                         "type: texthash does not support bulk-mode creation.\n")
    rc, _, err = pm(["-q", "a", f"nosuch:{table}"])
    assert (rc, err) == (1, "postmap: fatal: unsupported dictionary type: nosuch\n")
    rc, _, err = pm(["-d", "a", f"texthash:{table}"])
    assert (rc, err) == (1, f"postmap: fatal: texthash:{table} map requires O_RDONLY access "
                         "mode\n")


def test_missing_source_and_config(tmp_path, pure_env):
    rc, _, err = pm([str(tmp_path / "none")])
    assert (rc, err) == (1, f"postmap: fatal: open {tmp_path}/none: No such file or directory\n")
    rc, _, err = pm(["-c", str(tmp_path / "etc"), "-q", "a", "t"])
    assert (rc, err) == (1, f"postmap: fatal: open {tmp_path}/etc/main.cf: No such file or "
                         "directory\n")
    (tmp_path / "main.cf").write_text("# x\ndefault_database_type =\n    texthash\n")
    src = tmp_path / "t"
    src.write_text("a b\n")
    assert pm(["-c", str(tmp_path), "-q", "a", str(src)]) == (0, b"b\n", "")


def test_corrupt_table_is_a_fatal_error(table):
    pm([table])
    with open(table + ".db", "r+b") as f:
        f.write(b"garbage!")
    rc, out, err = pm(["-q", "a", table])
    assert rc == 1 and out == b""
    assert err.startswith(f"postmap: fatal: {table}.db: not a postier hash table")
    assert f"postier map hash:{table}" in err


def test_non_utf8_key(table):
    pm([table])
    rc, out, err = pm(["-q", "-", table], b"\xff\nexample.com\n")
    assert (rc, out) == (0, b"example.com\tREJECT\n")
    assert err == (f'postmap: warning: hash:{table}.db: non-UTF-8 key "?": malformed UTF-8 or '
                   "invalid codepoint\n")


def test_new_table_permissions(tmp_path, pure_env):
    src = tmp_path / "t"
    src.write_text("a b\n")
    src.chmod(0o640)
    pm([str(src)])
    assert os.stat(f"{src}.db").st_mode & 0o777 == 0o640
    os.unlink(f"{src}.db")
    pm(["-p", str(src)])
    assert os.stat(f"{src}.db").st_mode & 0o777 == 0o644


def test_help():
    rc, out, _ = pm(["--help"])
    assert rc == 0 and b"usage: postmap" in out


# ------------------------------------------------------------------ differential

SCENARIOS = {
    "source_format": (
        r'printf "# c\nk1 v1\n  cont1\n\tcont2\nkey2   spaced value   \t \nnovalue\n'
        r'KEY4 Upper\nkey5: colon\ndup first\nDUP second\n\"quoted key\"\tq\n\"unbal x\n'
        r'\xff bad\nÄÖÜß utf\nİstanbul i\nesc\\\\\" v\n  lead\n" > t; touch -d "-1 hour" t',
        ["$PM t", "$PM -s t | sort", "$PM -q k1 t", "$PM -q KEY2 hash:t", "$PM -f -q KEY4 t",
         "$PM -q '\"QUOTED key\"' t", "$PM -q äöüss t", "$PM -q ÄÖÜSS t", "$PM -q İSTANBUL t",
         "$PM -q $(printf '\\xff') t", "printf 'k1\\nnone\\nkey4\\n\\xff\\nÄÖÜß\\n' | $PM -q - t",
         "$PM -q nope t", "$PM -q k1 texthash:t", "$PM -q dup texthash:t",
         "$PM -s texthash:t | sort", "$PM -f -q DUP texthash:t", "$PM -u -q İSTANBUL t"]),
    "errors": (
        r'printf "a b\n" > t; printf "/x/ y\n" > r',
        ["$PM -q a missing", "$PM -q a hash:missing", "$PM missing", "$PM -s missing",
         "$PM -d a missing", "$PM -q a foo:t", "$PM regexp:r", "$PM -i regexp:r </dev/null",
         "$PM -d k texthash:t", "$PM -q x texthash:nonexist", "$PM", "$PM -q", "$PM -Z t",
         "$PM t -q a", "$PM -q -- t", "$PM -qa t", "$PM -d a -q a t", "$PM -q a -s t",
         "$PM -s -s t", "$PM -q a -i t", "$PM -s", "$PM -c /nonexistent -q a t"]),
    "updates": (
        r'printf "dup first\nDUP second\ndup third\nx y\n" > t',
        ["$PM t", "$PM -q dup t", "$PM -r t", "$PM -q dup t", "$PM -w t", "$PM -q dup t",
         "printf 'new nv\\ndup idup\\nNEW2 nv2\\nbad\\n' | $PM -i t", "$PM -s t | sort",
         "printf 'dup rdup\\n' | $PM -i -r t", "$PM -q dup t", "$PM -d DUP t", "$PM -d dup t",
         "printf 'x\\nnope\\nNEW\\n' | $PM -d - t", "$PM -s t | sort", "$PM -fr t",
         "$PM -f -s t | sort", "printf 'k v\\n' | $PM -i nosrc", "$PM -s nosrc"]),
    "stale_and_queries": (
        r'printf "a b\nc d\n" > t',
        ['$PM t; touch -d "-1 hour" t.db; touch -d "-10 min" t; $PM -q a t',
         "printf 'a\\nzz\\nc\\n\\n' | $PM -q - t", "printf 'zz\\n' | $PM -q - t",
         "printf 'a\\r\\n' | $PM -q - t", "printf 'a' | $PM -q - t",
         "$PM -q zz hash:t hash:missing", "$PM -q a hash:t hash:missing",
         "printf 'a\\n' | $PM -q - t missing", "$PM -m -q - t </dev/null",
         "$PM -o -p -q c t", "$PM -q '' t"]),
    "rhs_is_file": (
        r'printf "hello\n" > f1; printf "world" > f2; printf "k f1, f2\nk2 f1\nk3 nonexist\n" > t;'
        r' printf "k v\n" > t2',
        ["$PM -F t", "$PM -s t | sort", "$PM -F -s t | sort", "$PM -F -q k t",
         "printf 'k\\nk2\\n' | $PM -F -q - t", "$PM t2; $PM -F -q k t2"]),
    "message_queries": (
        r'printf "Subject: hello\nX-Long: a\n b\nFrom: x\n\nbody1\n\nSubject:\nbody2\n" > msg;'
        r' printf "Received: x\nnot a header\nbody3\n" > msg2;'
        r' printf "body1 B1\nbody2 B2\nbody3 B3\nsubject: S\nnot Nah\n" > t',
        ["$PM t", "$PM -b -q - t < msg", "$PM -b -q - t < msg2", "$PM -h -b -q - t < msg",
         "$PM -h -q - t < msg2", "printf '\\nbody1\\n' | $PM -b -q - t"]),
}


@pytest.mark.slow          # Postfix sleeps 1 s after every fatal error
@pytest.mark.postfix
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_postmap(tmp_path, pure_env, scenario):
    setup, commands = SCENARIOS[scenario]
    ours = f"{sys.executable} -m postier.cli.main map"
    dirs = {}
    for who in ("postfix", "postier"):
        d = tmp_path / who
        d.mkdir()
        subprocess.run(["bash", "-c", setup], cwd=d, check=True)
        dirs[who] = d
    env = dict(os.environ, PYTHONPATH=SRC)
    for cmd in commands:
        got = {}
        for who, prog in (("postfix", shutil.which("postmap")), ("postier", ours)):
            p = subprocess.run(["bash", "-c", cmd], cwd=dirs[who], capture_output=True,
                               env=dict(env, PM=prog))
            got[who] = (p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
        assert got["postier"] == got["postfix"], f"{scenario}: {cmd}"
