"""postier.maps.aliases: aliases(5) parsing as postalias does it (RFC 822
tokens, internal names, external values, the @ and YP_ entries)."""

from __future__ import annotations

import pytest

from postier.maps.aliases import (
    alias_entries,
    externalize,
    internalize,
    merged_entries,
    parse_alias_line,
    tok822_scan,
    trailer,
)


def test_tokens():
    assert tok822_scan('a "b c" (x (y)) [1.2.3.4] <u@v>, |cmd') == [
        ("atom", "a"), ("qstring", "b c"), ("comment", "(x (y))"), ("domlit", "1.2.3.4"),
        ("<", "<"), ("atom", "u"), ("@", "@"), ("atom", "v"), (">", ">"), (",", ","),
        ("|", "|"), ("atom", "cmd")]
    assert tok822_scan("d\\ e") == [("qstring", "d e")]        # escaped space: quoted
    assert tok822_scan('\\"x') == [("qstring", '"x')]
    assert tok822_scan('"unterminated') == [("qstring", "unterminated")]
    assert tok822_scan("   ") == []


# Each (line, stored name, stored value) was observed with postalias 3.7.11 -s.
OBSERVED = [
    ("root: admin, Bob@Example.COM", "root", "admin, Bob@Example.COM"),
    ("trail: a ,  b  ", "trail", "a, b"),
    ('"quoted name": qv', "quoted name", "qv"),
    ("badcolon : z", "badcolon", "z"),
    ('cmd: "|/usr/bin/prog arg"', "cmd", '"|/usr/bin/prog arg"'),
    ("inc: :include:/etc/x", "inc", ":include:/etc/x"),
    ('k2: "a b" c (comment) <x@y>  d\\ e, [1.2.3.4], f.g@h', "k2",
     '"a b" c (comment) <x@y>"d e", [1.2.3.4], f.g@h'),
    ("k3:a:b", "k3", "a:b"),
    ('k4: \\"x', "k4", '"\\"x"'),
    ('k5: "unterminated', "k5", '"unterminated"'),
    ("k6: (unterminated comment", "k6", "(unterminated comment"),
    ('k7: |cmd, /file, "|q cmd"', "k7", '|cmd, /file, "|q cmd"'),
    ("k8 : a;b!c%d", "k8", "a;b!c%d"),
    ("K9\\ x: v", "K9 x", "v"),
    ('"": emptyq', "", "emptyq"),
    ('k: ""', "k", '""'),
]


@pytest.mark.parametrize("line,name,value", OBSERVED)
def test_observed_postalias_entries(line, name, value):
    assert parse_alias_line(line) == (name, value)


@pytest.mark.parametrize("line,problem", [
    ("nocolon value", "need name:value pair"),
    ("empty:", "need name:value pair"),
    (":nokey", "need name:value pair"),
    ("x,y: z", "need name:value pair"),
    ("a@b: x", "name must be local"),
    ("c%d: y", "name must be local"),
])
def test_bad_lines(line, problem):
    assert parse_alias_line(line) == problem


def test_internalize_externalize_roundtrip():
    toks = tok822_scan('"a\\"b" x')
    assert externalize(toks) == '"a\\"b" x'
    assert internalize(toks) == 'a"b x'


def test_alias_entries_warnings_and_lines():
    data = (b"# aliases\nroot: admin,\n  bob\nnocolon value\n\xff: bad\na@b: x\n"
            b"postmaster: root\n")
    warnings: list[str] = []
    got = list(alias_entries(data, "aliases", warnings.append))
    assert got == [(2, "root", "admin, bob"), (7, "postmaster", "root")]
    assert warnings == ["aliases, line 4: need name:value pair",
                        'aliases, line 5: non-UTF-8 input "?: bad" -- ignoring this line',
                        "aliases, line 6: name must be local"]


def test_trailer():
    assert trailer("mx.example.test", now=12345) == [
        ("@", "@"), ("YP_LAST_MODIFIED", "0000012345"), ("YP_MASTER_NAME", "mx.example.test")]


def test_merged_entries_fold_and_duplicates():
    warnings: list[str] = []
    got = merged_entries(b"Root: a\nroot: b\n@: x\n", "aliases", warnings.append,
                         myhostname="h", now=5, db_label="aliases.db")
    assert got == [(b"root", b"a"), (b"@", b"@"), (b"YP_LAST_MODIFIED", b"0000000005"),
                   (b"YP_MASTER_NAME", b"h")]
    assert warnings == ['aliases.db: duplicate entry: "root"',
                        "aliases, line 3: name must be local"]


def test_merged_entries_update_replaces_trailer():
    existing = [(b"root", b"a"), (b"@", b"@"), (b"YP_LAST_MODIFIED", b"0000000001"),
                (b"YP_MASTER_NAME", b"old")]
    warnings: list[str] = []
    got = merged_entries(b"ROOT: new\nbob: b\n", "stdin", warnings.append, myhostname="h",
                         existing=existing, update=True, now=9, db_label="al.db")
    assert dict(got) == {b"root": b"a", b"@": b"@", b"YP_LAST_MODIFIED": b"0000000009",
                         b"YP_MASTER_NAME": b"h", b"bob": b"b"}
    assert warnings == ['al.db: duplicate entry: "root"']
