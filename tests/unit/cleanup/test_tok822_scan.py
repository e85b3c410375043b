"""tok822.scan(): the fast paths (whole atoms, quoted strings and domain
literals matched at once) give the tokens of the character-by-character
rules (tok822_scan): backslash quoting, white space as a space, control
characters making an atom a quoted string."""

from __future__ import annotations

import pytest

from postier import tok822
from postier.tok822 import ATOM, COMMENT, DOMLIT, QSTRING


def tokens(text: str) -> list[tuple[int, str]]:
    head, _ = tok822.scan(text)
    out = []
    while head is not None:
        out.append((head.type, head.text))
        head = head.next
    return out


@pytest.mark.parametrize("text, want", [
    ("user@example.test", [(ATOM, "user"), (ord("@"), ""), (ATOM, "example"), (ord("."), ""),
                           (ATOM, "test")]),
    ("a\\ b@x", [(QSTRING, "a b"), (ord("@"), ""), (ATOM, "x")]),      # quoted space
    ("a\\@b", [(QSTRING, "a@b")]),                                     # quoted special
    ("ab\\", [(ATOM, "ab")]),                                          # backslash at the end
    ("a\x01b c", [(QSTRING, "a\x01b"), (ATOM, "c")]),                  # control character
    ("a\x7f", [(QSTRING, "a\x7f")]),
    ('"John Q. Public" <j@x>', [(QSTRING, "John Q. Public"), (ord("<"), ""), (ATOM, "j"),
                                (ord("@"), ""), (ATOM, "x"), (ord(">"), "")]),
    ('"tab\there"', [(QSTRING, "tab here")]),                          # white space -> space
    ('"q\\"x"', [(QSTRING, 'q"x')]),                                   # quoted quote
    ('"open', [(QSTRING, "open")]),                                    # unterminated
    ("[1.2.3.4]", [(DOMLIT, "1.2.3.4")]),
    ("[a\\]b]", [(DOMLIT, "a]b")]),
    ("[a\tb]", [(DOMLIT, "a b")]),
    ("(c (nested) \\) x) y", [(COMMENT, "(c (nested) \\) x)"), (ATOM, "y")]),
    ("é@ü.test", [(ATOM, "é"), (ord("@"), ""), (ATOM, "ü"), (ord("."), ""), (ATOM, "test")]),
])
def test_scan(text, want):
    assert tokens(text) == want


@pytest.mark.parametrize("local, dot", [
    ("user", True), ("first.last", True), ("a..b", False), (".a", False), ("a.", False),
    ("", False), ("a b", False), ("a\x01", False), ("a@b", False), ("é.ü", True),
])
def test_dot_string(local, dot):
    assert tok822._is_dot_string(local) is dot
    assert (tok822.quote_822_local(f"{local}@x") == f"{local}@x") is dot


@pytest.mark.parametrize("external, internal", [
    ("user@x", "user@x"), ('"a b"@x', "a b@x"), ('"a\\"b"@x', 'a"b@x'),
    ("@r:u@x", "@r:u@x"), ('@r:"a b"@x', "@r:a b@x"),
])
def test_unquote(external, internal):
    assert tok822.unquote_822_local(external) == internal
