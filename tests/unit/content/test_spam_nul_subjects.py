"""Line-area subjects holding a NUL byte (engine.Run._lines_slow).

The joined buffer's separator is NUL, so such an area is checked subject
by subject; the subjects where each rule can match come from one
Hyperscan scan with NUL replaced by a stand-in byte
(postier.content.spam.nulsubject).  These tests compare every rule value
and capture with SpamAssassin's own loop (every rule on every subject:
_reference below, the former _lines_slow), on messages whose Subject (the
body's first subject), body text or UTF-16 parts hold NULs, and check the
stand-in analysis itself.
"""

from __future__ import annotations

import base64
import os

import pytest

from postier.content.spam import conf as C
from postier.content.spam import engine, perlre
from postier.content.spam.nulsubject import STAND_INS, nul_plan, stand_in_safe
from postier.content.spam.scanner import SpamScanner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")


def _reference(self, area: str, lines: list[bytes], subject_first: bool) -> None:
    """SpamAssassin's loop: every rule of the area on every subject."""
    for rr in self.cr.area_rules[area]:
        self._line_rule(rr, lines[1:] if subject_first and rr.nosubject else lines)


def tree(pattern: str, mods: str = ""):
    t = perlre._parse(pattern, mods)
    assert t is not None
    return t


@pytest.mark.parametrize(("pattern", "mods", "x", "safe"), [
    ("foo.bar", "", 1, True),           # . takes NUL and \x01
    ("foo.bar", "s", 1, True),
    ("a\\x00b", "", 1, False),          # takes NUL, not the stand-in
    ("a[\\x00\\x01]b", "", 1, True),
    ("[^\\x01]zz", "", 1, False),
    ("[^\\x01]zz", "", 2, True),
    ("[^\\r\\n]{3}", "", 0x0D, False),  # white space: never a candidate
    ("\\Wbar\\b", "i", 1, True),
    ("^bar$", "m", 1, True),
    ("foo(?![\\x00-\\x08])", "", 1, True),    # look-around: both or neither
    ("foo(?!\\x00)", "", 1, False),
    ("foo(?![^\\x00])", "", 1, False),        # takes \x01, not NUL: a lost match
    ("(?>[^\\x00\\n]*)z", "", 1, False),      # atomic: it would eat the stand-in
    ("[^\\x00\\n]*+z", "", 1, False),          # possessive: the same
    ("[^\\x00\\n]*z", "", 1, True),            # backtracking: a superset only
    ("(a.)\\1", "", 1, True),
])
def test_stand_in_safety(pattern, mods, x, safe):
    assert stand_in_safe(tree(pattern, mods), x) is safe


def test_stand_in_candidates_and_unknown_trees():
    for x in STAND_INS:
        assert x < 0x80 and not chr(x).isalnum() and chr(x) not in "_\t\n\v\f\r "
    assert not stand_in_safe(None, 1)
    assert not stand_in_safe(("mystery", 1), 1)


def test_nul_plan_picks_the_fewest_unsafe_and_is_cached(tmp_path):
    sources = [("[^\\x01]a", ""),
               ("[^\\x01-\\x08\\x0e-\\x1f\\x7f]b", ""),   # unsafe whatever the byte
               ("x\\x00", ""), ("(", "")]                 # (does not parse)
    x, unsafe = nul_plan(sources, str(tmp_path), "body")
    assert x == b"\x02" and unsafe == frozenset({1, 2, 3})
    files = [n for n in os.listdir(tmp_path) if n.startswith("spam-nul-body-")]
    assert len(files) == 1
    assert nul_plan(sources, str(tmp_path), "body") == (x, unsafe)
    path = tmp_path / files[0]
    path.write_bytes(b"=" + b"\0" * 16 + b'{"x": 2, "unsafe": []}')   # digest wrong
    assert nul_plan(sources, str(tmp_path), "body") == (x, unsafe)
    assert path.read_bytes() != b"=" + b"\0" * 16 + b'{"x": 2, "unsafe": []}'
    assert nul_plan(sources[:1], None) == (b"\x02", frozenset())
    assert nul_plan(sources[2:], None) == (b"\x01", frozenset({0, 1}))


RULES = r"""
body    NB_DOT      /foo.bar/
body    NB_NUL      /a\x00b/
body    NB_TWONUL   /\x00\x00/
body    NB_NOT1     /[^\x01]zz/
body    NB_NOT2     /[^\x02]yy/
body    NB_START    /^bar/
body    NB_END      /foo$/
body    NB_WORD     /\bbar\b/
body    NB_LOOK     /foo(?![\x00-\x08])/
body    NB_LOOK2    /foo(?!\x00)/
body    NB_ATOM     /(?>[^\x00\n]*)z/
body    NB_MULTI    /o/
tflags  NB_MULTI    multiple maxhits=7
body    NB_WORDS    /\w+/
tflags  NB_WORDS    multiple
body    NB_NOSUB    /^x/
tflags  NB_NOSUB    nosubject
body    NB_NOSUB2   /\x00/
tflags  NB_NOSUB2   nosubject multiple
body    NB_CAP      /\b(?<NBWORD>b[a-z]+)\b/
body    NB_EMPTY    /^$/
body    NB_ANY      /^.{3,}$/
body    NB_TAIL     /\x00$/
body    NB_HEAD     /^\x00/
body    NB_PARA     /next para/
rawbody RB_P        /<\/?p.{0,5}>/i
rawbody RB_NUL      /\x00</
rawbody RB_NULS     /\x00/
tflags  RB_NULS     multiple maxhits=20
rawbody RB_LINE     /^[^\r\n]{3,}$/m
rawbody RB_D        /D.e.a.r/
rawbody RB_DEAR     /Dear/
uri     U_DOT       /example.com/
uri     U_NUL       /\x00/
"""


def _scores(text: str) -> str:
    names = [ln.split()[1] for ln in text.splitlines() if ln.split()[:1] in (["body"], ["rawbody"],
                                                                          ["uri"])]
    return text + "".join(f"score {n} 0.1\n" for n in names)


@pytest.fixture(scope="module")
def sc() -> SpamScanner:
    rs = C.parse_text(_scores(RULES), "rules.cf")
    assert rs.warnings == []
    return SpamScanner(rules=rs, cache_dir=None)


def _message(subject: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"From: a@example.com\nTo: b@example.net\nSubject: " + subject + b"\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
            b"--b\nContent-Type: text/plain\n\n" + body + b"\n"
            b"--b\nContent-Type: text/html\n\n<html><body><p>see http://www.example.com/x "
            b"and <a href=\"http://a.example.com/\">a</a></p></body></html>\n" + extra
            + b"--b--\n")


def _utf16_part(text: str) -> bytes:
    b64 = base64.encodebytes(text.encode("utf-16")).replace(b"\n", b"\n")
    return (b"--b\nContent-Type: text/plain; charset=utf-16\n"
            b"Content-Transfer-Encoding: base64\n\n" + b64)


MESSAGES = [
    _message(b"foo\0bar", b"plain text\nfoo bar here\n"),
    _message(b"\0x foo\0", b"xx\0yy zz\nbar\0foo\0\n"),
    _message(b"x\0\0y", b"a\0b\nfoo\0\nbar\0\n\0\0\n"),
    _message(b"\0", b"\0\n\n\0\n" + b"oooo\0oooo\0o\n" * 3),
    _message(b"\0zz \0yy \x01zz", b"\x01zz \0zz \x02yy \0yy\nbob\0bill ben\n"),
    _message(b"no nul here", b"foo\0\nbar\0baz\n<p>\0<p\0>\0</P>\nnext\0para\n"),
    _message(b"no nul here either", b"clean text only\n", _utf16_part("Dear friend,\r\nbuy now\r\n")),
    _message(b"D\0e\0a\0r", b"", _utf16_part("<P>Dear</P>\r\nfoo bar\r\nhttp://www.example.com/\r\n")),
    _message(b"x" * 300 + b"\0" + b"z" * 300, b"line\0" * 50),
    _message(b"", b"\0"),
]


def _both(sc, monkeypatch, data: bytes):
    calls = []
    new = engine.Run._lines_slow

    def counting(self, area, lines, subject_first):
        calls.append(area)
        return new(self, area, lines, subject_first)

    with monkeypatch.context() as m:
        m.setattr(engine.Run, "_lines_slow", counting)
        got = sc.run(data)
    with monkeypatch.context() as m:
        m.setattr(engine.Run, "_lines_slow", _reference)
        want = sc.run(data)
    return got, want, calls


@pytest.mark.parametrize("k", range(len(MESSAGES)))
def test_same_values_as_every_rule_on_every_subject(sc, monkeypatch, k):
    got, want, calls = _both(sc, monkeypatch, MESSAGES[k])
    assert calls, "no area took the NUL path"
    assert got.values == want.values
    assert got.captures == want.captures


def test_what_the_nuls_change(sc, monkeypatch):
    got, want, _ = _both(sc, monkeypatch, MESSAGES[0])
    assert got.values == want.values
    v = got.values
    assert "NB_DOT" in v            # foo NUL bar: . takes the NUL
    assert "NB_START" not in v      # ^ is not after a NUL
    assert "NB_WORD" in v           # \b between NUL and "bar"
    got, _want, _ = _both(sc, monkeypatch, MESSAGES[3])
    v = got.values
    assert v.get("NB_MULTI") == 7 and v.get("NB_NOSUB2") is None
    assert v.get("NB_HEAD") == 1 and v.get("NB_TAIL") == 1
    assert v.get("RB_NULS") == 8
    got, want, _ = _both(sc, monkeypatch, MESSAGES[1])
    assert got.values == want.values
    # the body text's NULs end lines there: only the Subject "\0x foo\0" holds
    # some, which the nosubject rules skip
    assert "NB_TAIL" in got.values and "NB_HEAD" in got.values
    assert "NB_NOSUB2" not in got.values and "NB_TWONUL" not in got.values
    got, want, _ = _both(sc, monkeypatch, MESSAGES[4])
    assert {"NB_NOT1", "NB_NOT2"} <= set(got.values)


def test_the_nul_path_on_a_clean_message_gives_the_fast_paths_values(sc):
    data = _message(b"foo bar", b"xx yy zz\nbar foo\nbob bill\n<p>text</p>\n")
    run = sc.run(data)
    lines = run.body()
    assert lines and all(b"\0" not in x for x in lines)
    for area, subjects, sf in (("body", lines, True), ("rawbody", run.rawbody(), False)):
        names = {rr.name for rr in sc.compiled.area_rules[area]}
        fast = {k: v for k, v in run.values.items() if k in names}
        slow = sc.compiled.run(data)
        for n in names:
            slow.values.pop(n, None)
        slow._lines_slow(area, subjects, sf)
        assert {k: v for k, v in slow.values.items() if k in names} == fast
        assert fast


def _inject(data: bytes, k: int) -> bytes:
    cut = data.find(b"\n\n")
    head, body = (data[:cut + 2], data[cut + 2:]) if cut >= 0 else (b"", data)
    if k == 0:
        return head.replace(b"Subject: ", b"Subject: \0", 1) + body
    if k == 1:
        return head + body.replace(b" ", b"\0", 40)
    if k == 2:
        return head + b"\n".join(x + b"\0" if i % 3 == 0 else x
                                 for i, x in enumerate(body.split(b"\n")))
    return head + body.replace(b"<", b"\0<").replace(b":", b":\0")


@pytest.mark.slow
def test_spamassassin_rules_on_nul_messages(spam_rules_cache, monkeypatch):
    if not (os.path.isdir("/usr/share/spamassassin") and os.path.exists(f"{CORPUS}/labels.tsv")):
        pytest.skip("SpamAssassin's rules or the corpus are absent")
    with open(f"{CORPUS}/labels.tsv") as f:
        paths = [r.split("\t")[0] for r in f.read().splitlines()[1:]][::211]
    datas = []
    with open(f"{CORPUS}/sa-testdata/spam/utf16.eml", "rb") as f:
        datas.append(f.read())
    for i, p in enumerate(paths):
        with open(os.path.join(CORPUS, p), "rb") as f:
            datas.append(_inject(f.read(), i % 4))
    sc = SpamScanner(directories=["/usr/share/spamassassin", "/etc/spamassassin"],
                     cache_dir=spam_rules_cache)
    taken = 0
    for data in datas:
        got, want, calls = _both(sc, monkeypatch, data)
        taken += bool(calls)
        assert got.values == want.values
        assert got.captures == want.captures
    assert taken >= len(datas) // 2
