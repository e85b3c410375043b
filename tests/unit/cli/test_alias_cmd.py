"""`postier alias` (postier.cli.alias_cmd): postalias's options, output and
diagnostics, in-process and differentially against the real postalias."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from test_map_cmd import SRC, cli

from postier.cli import alias_cmd


def pa(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, str]:
    return cli(alias_cmd, argv, stdin)


@pytest.fixture
def aliases(tmp_path, pure_env):
    path = tmp_path / "aliases"
    path.write_text("# aliases\nroot: admin, Bob@Example.COM\npostmaster:    root\n"
                    "Mixed:  x\n  , y\n\"quoted name\": qv\nnocolon value\nroot: dup\n")
    return str(path)


def test_build_query_and_list(aliases):
    rc, out, err = pa([aliases])
    assert (rc, out) == (0, b"")
    assert err == (f"postalias: warning: {aliases}, line 7: need name:value pair\n"
                   f'postalias: warning: {aliases}.db: duplicate entry: "root"\n')
    assert pa(["-q", "ROOT", aliases]) == (0, b"admin, Bob@Example.COM\n", "")
    assert pa(["-q", "quoted name", aliases]) == (0, b"qv\n", "")
    assert pa(["-q", '"quoted name"', aliases]) == (1, b"", "")
    assert pa(["-q", "@", aliases]) == (0, b"@\n", "")
    rc, out, _ = pa(["-q", "-", aliases], b"mixed\nnope\npostmaster\n")
    assert (rc, out) == (0, b"mixed:\tx, y\npostmaster:\troot\n")
    rc, out, _ = pa(["-s", aliases])
    lines = out.decode().splitlines()
    assert lines[:4] == ["root:\tadmin, Bob@Example.COM", "postmaster:\troot", "mixed:\tx, y",
                         "quoted name:\tqv"]
    assert lines[4] == "@:\t@"
    assert lines[5].startswith("YP_LAST_MODIFIED:\t") and len(lines[5]) == 28
    assert lines[6].startswith("YP_MASTER_NAME:\t")


def test_incremental_and_delete(aliases):
    pa([aliases])
    assert pa(["-i", aliases], b"new: n\nroot: r2\n") == \
        (0, b"", f'postalias: warning: {aliases}.db: duplicate entry: "root"\n')
    assert pa(["-q", "new", aliases]) == (0, b"n\n", "")
    assert pa(["-q", "root", aliases]) == (0, b"admin, Bob@Example.COM\n", "")
    assert pa(["-d", "NEW", aliases]) == (0, b"", "")
    assert pa(["-q", "new", aliases]) == (1, b"", "")


def test_myhostname_from_config(aliases, tmp_path):
    (tmp_path / "main.cf").write_text("myhostname = mx.example.test\n")
    pa(["-c", str(tmp_path), aliases])
    assert pa(["-q", "YP_MASTER_NAME", "-f", aliases]) == (0, b"mx.example.test\n", "")


def test_usage(aliases):
    usage = ("postalias: fatal: usage: postalias [-Nfinoprsuvw] [-c config_dir] [-d key] "
             "[-q key] [map_type:]file...\n")
    assert pa([]) == (1, b"", usage)
    assert pa(["-b", aliases]) == (1, b"", "postalias: invalid option -- 'b'\n" + usage)
    assert pa(["-s", "-q", "x", aliases]) == \
        (1, b"", "postalias: fatal: specify only one of -s -q or -d\n")


SCENARIOS = {
    "syntax": (
        r'printf "a@b: x\nc%%d: y\nx,y: z\n:nokey\n\"\": emptyq\nk: \"\"\n'
        r'k2: \"a b\" c (comment) <x@y>  d\\ e, [1.2.3.4], f.g@h\nk3:a:b\nk4: \\\"x\n'
        r'k5: \"unterminated\nk6: (unterminated comment\nk7: |cmd, /file, \"|q cmd\"\n'
        r'k8 : a;b!c%%d\nK9\\ x: v\nROOT: a\nroot: b\n@: x\n\xff: bad\nÄÖ: x\n  lead: x\n'
        r'q\\\"x: y\n[dom]: z\n(c) name: zz\n" > al',
        ["$PA al", "$PA -s al | grep -v YP_ | sort", "$PA -q äö al", "$PA -q k2 al",
         "$PA -q '' al"]),
    "updates": (
        r'printf "root: a\nbob: b, c\n" > al',
        ["$PA al", "$PA -q ROOT al", "$PA -q nope al", "printf 'root\\nx\\nBOB\\n' | $PA -q - al",
         "printf 'new: n\\nroot: r2\\n' | $PA -i al", "$PA -s al | grep -v YP_ | sort",
         "$PA -d BOB al", "$PA -d BOB al", "printf 'new: n2\\n' | $PA -i -r al",
         "$PA -q new al", "$PA -q @ al",]),
    "errors": (
        r'printf "root: a\n" > al',
        ["$PA", "$PA -Z", "$PA -q", "$PA -q x -s al", "$PA -s -q x al", "$PA -q x missing",
         "$PA missing", "$PA -d x texthash:al"]),
}


@pytest.mark.slow          # Postfix sleeps 1 s after every fatal error
@pytest.mark.postfix
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_postalias(tmp_path, pure_env, scenario):
    setup, commands = SCENARIOS[scenario]
    ours = f"{sys.executable} -m postier.cli.main alias"
    dirs = {}
    for who in ("postfix", "postier"):
        d = tmp_path / who
        d.mkdir()
        subprocess.run(["bash", "-c", setup], cwd=d, check=True)
        dirs[who] = d
    env = dict(os.environ, PYTHONPATH=SRC)
    for cmd in commands:
        got = {}
        for who, prog in (("postfix", shutil.which("postalias")), ("postier", ours)):
            p = subprocess.run(["bash", "-c", cmd], cwd=dirs[who], capture_output=True,
                               env=dict(env, PA=prog))
            got[who] = (p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
        assert got["postier"] == got["postfix"], f"{scenario}: {cmd}"
