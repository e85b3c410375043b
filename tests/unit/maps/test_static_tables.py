"""static: tables (the fixture's static queries run in test_inline_tables)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from postier.errors import MapError
from postier.maps import static


def test_value_and_braces():
    assert static.StaticTable("{ 550 5.7.1 go away }", print).lookup("x") == "550 5.7.1 go away"
    assert static.StaticTable("OK", print).lookup("") == "OK"


def test_empty_braces_warn_like_postmap():
    warns: list[str] = []
    assert static.StaticTable("{}", warns.append).lookup("k") == ""
    assert warns == ["table static:{}: key k: empty string result is not allowed",
                     "table static:{} should return NO RESULT in case of NOT FOUND"]


def test_bad_brace_syntax_is_fatal():
    with pytest.raises(MapError, match=r"bad static:name syntax: missing '}' in \"\{a\""):
        static.StaticTable("{a", print)


@pytest.mark.postfix
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
@pytest.mark.parametrize("spec", ["{}", "{ a b }", "{a", "a b", "{a}b", "{ {x} }"])
def test_like_postmap(spec):
    p = subprocess.run(["postmap", "-q", "key", f"static:{spec}"], capture_output=True, text=True)
    warns: list[str] = []
    try:
        got = static.StaticTable(spec, warns.append).lookup("key")
        err = "".join(f"postmap: warning: {w}\n" for w in warns)
    except MapError as e:
        got, err = None, f"postmap: fatal: {e}\n"
    assert got == (p.stdout[:-1] if p.returncode == 0 else None)
    assert err == p.stderr
