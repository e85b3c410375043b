"""ASCII twins of Hyperscan databases (postier.content.spam.asciire,
hsdb.AreaDatabase(ascii_long=True)): an expression restricted to ASCII
reports exactly what the expression reports on ASCII data; a database of
long expressions gets a twin, used on ASCII buffers and on the ASCII
subjects of a joined buffer holding 8-bit ones, with the same reports as
the database itself; the twins are cached with the database.  A line
area's union gate has an ASCII form used on ASCII text (same answers), and
the rawbody and uri areas' chatty probes (HTML source, a URI list) give the
rules reported along nearly every 8-bit byte or URI databases of their
own."""

from __future__ import annotations

import random
import re

import hyperscan as hs
import pytest

from postier.content.spam import hsdb
from postier.content.spam.asciire import ascii_only

# look-alike alternatives as SpamAssassin's replace_tag rules write them
_C = rb"(?:[cCk\xc7\xe7@]|\xc3[\x87\xa7]|\xd1\x81|&\#(?:199|231);)"
_L = rb"(?:[ilL|!1\xa3]|\xc4[\xb9-\xbf]|\xce[\x8a\x99])"
_I = rb"(?:[iIl|!1y\xcc-\xcf]|\xc3[\x8c-\x8f]|\xd0[\x86\x87])"
_K = rb"(?:[kK\xca\xea]|\xc4[\xb6-\xb8]|\xce[\x9a\xba])"
_WS = rb"(?:=?\s|\xe2\x80[\x80-\x8d]|&nbsp;)"
_FUZZY = _C + _WS + b"*" + _L + _WS + b"*" + _I + _WS + b"*" + _C + _WS + b"*" + _K

EXPRS = [
    _FUZZY,
    rb"(?:\x00|[^\x000-9A-Za-z_])" + _FUZZY + rb"(?:\x0a?\x00|\W)",
    rb"\b(?:caf(?:e|\xc3\xa9)|na(?:i|\xc3\xaf)ve)\b",
    rb"[^\x00a-z]{2,4}x",
    rb"(?:ab|\xe2\x80){2,3}c",
    rb"(?:\xe2\x80\x8b)*zz",
    rb"(?:\xe2\x80\x8b)+zz",
    rb"^clk.$",
    rb"[\x80-\xff]{3}",
]


def _reports(expr: bytes | None, data: bytes, flags: int = hs.HS_FLAG_ALLOWEMPTY) -> set:
    if expr is None:
        return set()
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=[expr], ids=[0], elements=1, flags=[flags])
    out: set = set()
    db.scan(data, match_event_handler=lambda i, s, e, f, c: out.add(e))
    return out


def _ascii_texts() -> list[bytes]:
    rnd = random.Random(7)
    alphabet = b"cClLiIkK1|!@ \t\n=&#;nbspxzab.0\x00"
    texts = [bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(300)]
    texts += [b"click here", b"\x00c l i c k\x00\x00", b"&#199;lick", b"cafe naive", b"ababc",
              b"zz", b"clk!", b"CLICK=\tHERE", b"", b"\x00"]
    return texts


@pytest.mark.parametrize("expr", EXPRS)
def test_restriction_reports_the_same_on_ascii_data(expr):
    small = ascii_only(expr)
    for text in _ascii_texts():
        assert _reports(small, text) == _reports(expr, text), (expr, text)


def test_restriction_drops_what_needs_8bit_bytes():
    assert ascii_only(rb"\xc3\xa9t\xc3\xa9") is None
    assert ascii_only(rb"[\x80-\xff]{3}") is None
    assert ascii_only(rb"(?:\xc3\xa9)?abc") == rb"\x61\x62\x63"
    assert ascii_only(rb"(?:\xe2\x80\x8b)+zz") is None
    small = ascii_only(_FUZZY)
    assert small is not None and re.search(rb"\\x[89a-f][0-9a-f]", small) is None


@pytest.mark.parametrize("expr", [rb"(?i)abc\xc3", rb"a{,3}\xc3", rb"(a)\1\xc3", rb"a(?=b)\xc3",
                                  rb"(?:a|b", rb"\x{e9}", rb"a++\xc3"])
def test_what_it_cannot_rewrite_is_kept(expr):
    assert ascii_only(expr) == expr


def _long(word: bytes) -> bytes:
    """A long (hsdb.LONG_EXPR) fuzzy expression ending in word."""
    alts = b"|".join(b"\xc3[\\x%02x\\x%02x]" % (0x80 + i, 0xa0 + i) for i in range(16))
    tail = b"(?:" + alts + b")"
    expr = _FUZZY + b"(?:" + tail + b"|\\s)" + word
    while len(expr) < hsdb.LONG_EXPR:
        expr = b"(?:" + expr + b"|" + _FUZZY + tail + word + b")"
    return expr


def _entries() -> list[hsdb.Entry]:
    return [hsdb.Entry([_long(b"here")]), hsdb.Entry([_long(b"now")]),
            hsdb.Entry([rb"caf(?:e|\xc3\xa9)"]), hsdb.Entry([rb"\xc3\xa9\xc3\xa9"])]


def _joined(subjects: list[bytes]) -> bytes:
    return b"\x00" + b"\x00".join(subjects) + b"\x00\x00"


BUFFERS = [
    _joined([b"please click here", b"nothing"]),
    _joined([b"c l i c k here", b"caf\xc3\xa9 now", b"\xc3\xa9\xc3\xa9"]),
    _joined([b"cl\xc3\x8cck\xc3\x80now", b"plain text", b"cafe"]),
    _joined([b"\xc3\xa9t\xc3\xa9 " * 40, b"click now"]),
    _joined([b""]),
    b"no separators: click here caf\xc3\xa9",
    b"\x00click\x00here\xc3",
]


def test_twin_scans_report_what_the_databases_report(tmp_path):
    plain = hsdb.AreaDatabase(_entries(), workers=1, label="t")
    twin = hsdb.AreaDatabase(_entries(), cache_dir=str(tmp_path), workers=1, label="t",
                             ascii_long=True)
    assert twin.key != plain.key
    assert any(t is not None and not isinstance(t, bytes) for t in twin.db_ascii)
    assert all(t is None for t in plain.db_ascii)
    for buf in BUFFERS:
        assert twin.scan(buf) == plain.scan(buf), buf
    assert twin.scan(BUFFERS[0]) == {0}
    assert twin.scan(BUFFERS[1]) == {0, 2, 3}
    assert twin.scan(BUFFERS[2]) == {1, 2}      # an 8-bit subject's hit, an ASCII one's
    cached = hsdb.AreaDatabase(_entries(), cache_dir=str(tmp_path), workers=1, label="t",
                               ascii_long=True)
    assert cached.from_cache
    assert [t is None for t in cached.db_ascii] == [t is None for t in twin.db_ascii]
    for buf in BUFFERS:
        assert cached.scan(buf) == plain.scan(buf), buf


_LOOK = (r"(?:c|\xc3\xa7|\xc4[\x86-\x8d]|\xd1\x81|\xe1\xb8[\x88\x89])"
         r"(?:l|\xc4[\xb9-\xbf]|\xce[\x8a\x99]|\xe1\xb8[\xb6-\xbd])"
         r"(?:i|\xc3[\xac-\xaf]|\xd0[\x86\x87]|\xe1\xbb[\x88-\x8b])")
GATED = f"""
body  __F1   /^{_LOOK}ck(?!x)/m
body  __F2   /^{_LOOK}mb(?!x)/im
body  __F3   /^\\xc3\\xa9t\\xc3\\xa9(?!x)/m
meta  F      __F1 || __F2 || __F3
score F      0.1
score __F1   0.1
score __F2   0.1
score __F3   0.1
"""


def test_ascii_form_of_a_union_gate_changes_no_result(monkeypatch):
    from postier.content.spam import conf as C
    from postier.content.spam import engine as E
    from postier.content.spam.scanner import SpamScanner
    monkeypatch.setattr(E, "GATE_BIG", 0)
    gated = SpamScanner(rules=C.parse_text(GATED, "rules.cf"), cache_dir=None)
    cr = gated.compiled
    (urx, members), = cr.__dict__["_line_gates"]["body"]
    assert {cr.area_rules["body"][i].name for i in members} == {"__F1", "__F2", "__F3"}
    agate, = cr.__dict__["_line_gates_ascii"]["body"][1]
    assert agate is not None and len(agate.pattern) * 2 <= len(urx.pattern)
    monkeypatch.setattr(E, "_line_gates", lambda rules, db, cache_dir=None: [])
    plain = SpamScanner(rules=C.parse_text(GATED, "rules.cf"), cache_dir=None)
    seen = set()
    for body in (b"nothing here\n", b"click\n", b"x\n\nCLImb yes\n", b"clickx\n", b"x click\n",
                 b"\xc3\xa7lick\n", b"\xc3\xa9t\xc3\xa9\n", b"caf\xc3\xa9\n\nclimb\n",
                 b"\xc3\xa9t\xc3\xa9x\n"):
        msg = b"From: a@example.com\nSubject: s\n\n" + body
        got = {n for n in gated.run(msg).values if n.startswith("__F")}
        assert got == {n for n in plain.run(msg).values if n.startswith("__F")}, body
        seen |= got
    assert seen == {"__F1", "__F2", "__F3"}


CHATTY = r"""
rawbody __HI    /[\x80-\xff]/
rawbody __FONT  /<font\s/i
uri     __DOT   /\./
uri     __UNSUB /unsubscribe/
meta    M       __HI || __FONT || __DOT || __UNSUB
score   M       0.1
score   __HI    0.1
score   __FONT  0.1
score   __DOT   0.1
score   __UNSUB 0.1
"""


def test_rawbody_and_uri_probes_find_the_chatty_rules():
    """The rawbody area's probe is HTML source, the uri area's a URI list
    (engine._PROBES): a rule reported along nearly every 8-bit byte or URI
    gets a database of its own, a rare one does not; same answers."""
    from postier.content.spam import conf as C
    from postier.content.spam.scanner import SpamScanner
    sc = SpamScanner(rules=C.parse_text(CHATTY, "rules.cf"), cache_dir=None)
    solo = {rr.name for area in ("rawbody", "uri") for rr in sc.compiled.area_rules[area]
            if rr.entry is not None and rr.entry.solo}
    assert solo == {"__HI", "__DOT"}
    msg = (b"From: a@example.com\nSubject: s\nContent-Type: text/html; charset=utf-8\n\n"
           b"<html><font size=2>caf\xc3\xa9</font> <a href=\"https://example.com/unsubscribe\">x</a>"
           b"</html>\n")
    got = {n for n in sc.run(msg).values if n.startswith("__")}
    assert {"__HI", "__FONT", "__DOT", "__UNSUB"} <= got
    plain = b"From: a@example.com\nSubject: s\n\nplain text\n"
    assert not {n for n in sc.run(plain).values if n in ("__HI", "__FONT", "__DOT", "__UNSUB")}


def test_ascii_gate_is_kept_in_the_cache_directory(tmp_path, monkeypatch):
    import re2

    from postier.content.spam import engine as E
    urx = re2.compile(rb"(?:c|\xc3\xa7|\xc4[\x86-\x8d]|\xd1\x81)(?:l|\xc4[\xb9-\xbf])ick" * 40)
    monkeypatch.setattr(E, "GATE_BIG", 0)
    first = E._ascii_gate(urx, str(tmp_path))
    assert first is not None and first.contains(b"xx " + b"click" * 40)
    assert not first.contains(b"xx " + b"click" * 39)
    assert len(list(tmp_path.glob("spam-asciigate-*"))) == 1

    def fail(expr):
        raise AssertionError("restricted again")
    monkeypatch.setattr(E, "ascii_only", fail)
    again = E._ascii_gate(urx, str(tmp_path))
    assert again is not None and again.pattern == first.pattern
    never = re2.compile(rb"\xc3\xa9" * 10)
    monkeypatch.undo()
    monkeypatch.setattr(E, "GATE_BIG", 0)
    assert not E._ascii_gate(never, str(tmp_path)).contains(b"anything")   # no ASCII match
    assert not E._ascii_gate(never, str(tmp_path)).contains(b"anything")   # from the cache


def test_a_damaged_ascii_gate_file_is_made_again(tmp_path, monkeypatch):
    import re2

    from postier.content.spam import engine as E
    monkeypatch.setattr(E, "GATE_BIG", 0)
    urx = re2.compile(rb"(?:a|\xc3\xa0|\xc3\xa1|\xc3\xa2)(?:b|\xc3\xa8|\xc3\xa9)c" * 30)
    good = E._ascii_gate(urx, str(tmp_path)).pattern
    path, = tmp_path.glob("spam-asciigate-*")
    blob = path.read_bytes()
    path.write_bytes(blob[:-20])            # cut: a shorter regex would still compile
    assert E._ascii_gate(urx, str(tmp_path)).pattern == good
    assert path.read_bytes() == blob
