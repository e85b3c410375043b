"""Shared helpers for the postier.config tests: temp config dirs and the real-Postfix oracle."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

POSTCONF = shutil.which("postconf") or (
    "/usr/sbin/postconf" if os.access("/usr/sbin/postconf", os.X_OK) else None)

needs_postfix = [pytest.mark.postfix,
                 pytest.mark.skipif(POSTCONF is None, reason="needs real Postfix (postconf)")]


def with_postfix(func):
    for mark in needs_postfix:
        func = mark(func)
    return func


def make_dir(base, main: str, master: str = "", name: str = "cf") -> str:
    """Write main.cf and master.cf into base/name and return the directory."""
    d = os.path.join(str(base), name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write(main)
    with open(os.path.join(d, "master.cf"), "w") as f:
        f.write(master)
    return d


def postconf(*args: str) -> subprocess.CompletedProcess:
    """Run the real postconf (stdout and stderr as text)."""
    return subprocess.run([POSTCONF, *args], capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C"})


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `postier config ARGS` in-process; (exit status, stdout, stderr)."""
    from postier.cli import config_cmd
    capsys.readouterr()
    rc = config_cmd.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err
