"""RFC 822 address tokens and parse trees, as Postfix's tok822 library builds them.

Header address rewriting must reproduce Postfix's output byte for byte: a
rewritten `To:` header is re-generated from a parse tree, with Postfix's
spacing rules (a space between two words, before `<`, after `,` and after a
group's `:`), its quoting rules (an atom that contains a special becomes a
quoted string; an address local part that is not a dot-string is quoted) and
its comment placement.  This module is a port of that behaviour:

* `scan(text)` tokenizes (tok822_scan): comments, quoted strings, domain
  literals, single-character operators (`|%!()<>@,;:\\".[]`) and atoms.
* `parse(text)` builds the tree (tok822_parse): right to left, grouping each
  address under an `ADDR` node; comments move to the right of the address
  they belong to; missing commas are inserted.
* `externalize(tokens, line=...)` / `internalize(tokens)` turn tokens back
  into text (quoted / unquoted form).
* `quote_822_local()` / `unquote_822_local()` convert between internal and
  external address forms.

Parameters read: none (header_address_token_limit is passed in).
"""

from __future__ import annotations

import re

SPECIALS = '()<>@,;:\\".[]'
OPCHARS = "|%!" + SPECIALS

ATOM, QSTRING, COMMENT, DOMLIT, ADDR, STARTGRP = 256, 257, 258, 259, 260, 261
_SPACE = " \t\r\n"
MAX_NONADDR_LENGTH = 250
# fast paths of scan(): an atom without backslashes, a quoted string or a
# domain literal without backslashes or white space (others take _collect)
_ATOM_RE = re.compile(r'[^ \t\r\n|%!()<>@,;:\\".\[\]]+')
_CTL_RE = re.compile(r"[\x00-\x1f\x7f]")
_QSTRING_RE = re.compile(r'[^"\\\t\r\n]*"')
_DOMLIT_RE = re.compile(r"[^\]\\\t\r\n]*\]")
_DOT_STRING_RE = re.compile(r'[^ \x00-\x1f\x7f()<>@,;:\\"\[\].]+(?:\.[^ \x00-\x1f\x7f()<>@,;:\\"\[\].]+)*')


class Tok:
    """One token; ADDR tokens own a sub-list (`head`)."""

    __slots__ = ("type", "text", "prev", "next", "head", "tail", "owner")

    def __init__(self, type_: int, text: str = ""):
        self.type = type_
        self.text = text
        self.prev: Tok | None = None
        self.next: Tok | None = None
        self.head: Tok | None = None
        self.tail: Tok | None = None
        self.owner: Tok | None = None

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        t = self.type if self.type >= 256 else repr(chr(self.type))
        return f"Tok({t}, {self.text!r})"


def _iter(tp: Tok | None):
    while tp is not None:
        yield tp
        tp = tp.next


def _collect(s: str, i: int, stop) -> tuple[str, int]:
    """COLLECT: copy characters until `stop(c)`; a backslash quotes the next
    character; whitespace becomes a space."""
    out = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 1
            if i >= n:
                break
            c = s[i]
        elif stop(c):
            break
        out.append(" " if c in _SPACE else c)
        i += 1
    return "".join(out), i


def _comment(s: str, i: int) -> tuple[str, int]:
    level = 1
    out = ["("]
    n = len(s)
    while i < n:
        c = s[i]
        out.append(c)
        i += 1
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level == 0:
                break
        elif c == "\\":
            if i >= n:
                break
            out.append(s[i])
            i += 1
    return "".join(out), i


def _is_rbracket(ch: str) -> bool:
    return ch == "]"


def _is_dquote(ch: str) -> bool:
    return ch == '"'


def _atom_stop(ch: str) -> bool:
    return ch in _SPACE or ch in OPCHARS


def scan(text: str, limit: int = 0) -> tuple[Tok | None, Tok | None]:
    """Tokenize `text`; returns (head, tail) of a linked list."""
    head: Tok | None = None
    tail: Tok | None = None
    count = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c in _SPACE:
            continue
        if c == "(":
            body, i = _comment(text, i)
            tp = Tok(COMMENT, body)
        elif c == "[":
            m = _DOMLIT_RE.match(text, i)
            if m is not None:
                body, i = text[i:m.end() - 1], m.end()
            else:
                body, i = _collect(text, i, _is_rbracket)
                if i < n:
                    i += 1
            tp = Tok(DOMLIT, body)
        elif c == '"':
            m = _QSTRING_RE.match(text, i)
            if m is not None:
                body, i = text[i:m.end() - 1], m.end()
            else:
                body, i = _collect(text, i, _is_dquote)
                if i < n:
                    i += 1
            tp = Tok(QSTRING, body)
        elif c != "\\" and c in OPCHARS:
            tp = Tok(ord(c))
        else:
            m = _ATOM_RE.match(text, i - 1)
            if m is not None and text[m.end():m.end() + 1] != "\\":
                body, i = m.group(), m.end()
                typ = QSTRING if _CTL_RE.search(body) else ATOM
            else:
                body, i = _collect(text, i - 1, _atom_stop)
                typ = ATOM
                if any(ch == " " or ord(ch) < 32 or ord(ch) == 127 or ch in OPCHARS
                       for ch in body):
                    typ = QSTRING
            tp = Tok(typ, body)
        if head is None:
            head = tail = tp
        else:
            assert tail is not None
            tail.next = tp
            tp.prev = tail
            tail = tp
        count += 1
        if limit > 0 and count >= limit:
            break
    return head, tail


# -- tree surgery (tok822_tree.c) ---------------------------------------------

def _cut_before(tp: Tok) -> None:
    if tp.prev is not None:
        tp.prev.next = None
        tp.prev = None


def _append(t1: Tok, t2: Tok) -> None:
    """Insert the list starting at t2 after t1."""
    nxt = t1.next
    t1.next = t2
    t2.prev = t1
    last = t2
    while last.next is not None:
        last.owner = t1.owner
        last = last.next
    last.owner = t1.owner
    last.next = nxt
    if nxt is not None:
        nxt.prev = last


def _prepend(t1: Tok, t2: Tok) -> Tok:
    """Insert the list starting at t2 before t1; return t2."""
    prev = t1.prev
    last = t2
    while last.next is not None:
        last.owner = t1.owner
        last = last.next
    last.owner = t1.owner
    if prev is not None:
        prev.next = t2
        t2.prev = prev
    last.next = t1
    t1.prev = last
    return t2


def _unlink(tp: Tok) -> Tok | None:
    prev = tp.prev
    if prev is not None:
        prev.next = tp.next
    if tp.next is not None:
        tp.next.prev = prev
    tp.prev = tp.next = None
    return prev


def _sub_append(group: Tok, first: Tok) -> None:
    tp = first
    last = first
    while tp is not None:
        tp.owner = group
        last = tp
        tp = tp.next
    if group.head is None:
        group.head = first
    else:
        assert group.tail is not None
        group.tail.next = first
        first.prev = group.tail
    group.tail = last


def _group(left: Tok, right: Tok, sync: int) -> Tok:
    first = left.next
    if left is not right and first is not right and first is not None:
        _cut_before(right)
        _cut_before(first)
        grp = Tok(ADDR)
        _sub_append(grp, first)
        _append(left, grp)
        _append(grp, right)
        if sync:
            _append(left, Tok(sync))
    return left


def parse(text: str, limit: int = 0) -> Tok | None:
    """tok822_parse: the token list of `text` with addresses grouped under
    ADDR nodes.  Returns the first top-level token (None for no tokens)."""
    first, last = scan(text, limit)
    if first is None:
        return None
    head = Tok(0)
    tail = Tok(0)
    head.next, first.prev = first, head
    assert last is not None
    last.next, tail.prev = tail, last
    DO_WORD, DO_GROUP = 1, 2
    state = DO_WORD
    right = tail
    tp = tail.prev
    while tp.type:
        if tp.type == COMMENT:
            prev = _unlink(tp)
            right = _prepend(right, tp)
            tp = prev
            continue
        if tp.type == ord(";"):
            right = _group(tp, right, ord(","))
            state = DO_GROUP | DO_WORD
        elif tp.type == ord(":") and state & DO_GROUP:
            tp.type = STARTGRP
            _group(tp, right, 0)
            while tp.type and tp.type != ord(","):
                tp = tp.prev
            right = tp
            continue
        elif tp.type == ord(">"):
            right = _group(tp, right, ord(","))
            while tp.type and tp.type != ord("<"):
                if tp.type == COMMENT:
                    prev = _unlink(tp)
                    right = _prepend(right, tp)
                    tp = prev
                    continue
                tp = tp.prev
            _group(tp, right, 0)
            while tp.type and (tp.type > 0xFF or chr(tp.type) not in ">;,:"):
                tp = tp.prev
            right = tp
            state |= DO_WORD
            continue
        elif tp.type in (ATOM, QSTRING, DOMLIT):
            if not state & DO_WORD:
                right = _group(tp, right, ord(",")).next
            state &= ~DO_WORD
        elif tp.type == ord(","):
            right = _group(tp, right, 0)
            state |= DO_WORD
        else:
            state |= DO_WORD
        tp = tp.prev
    _group(tp, right, 0)
    result = head.next if head.next is not tail else None
    if result is not None:
        _cut_before(result)
        _cut_before(tail)
    return result


def grep_addrs(tree: Tok | None) -> list[Tok]:
    """The top-level ADDR nodes (tok822_grep)."""
    return [tp for tp in _iter(tree) if tp.type == ADDR]


def scan_addr(text: str) -> Tok:
    """tok822_scan_addr: one ADDR node holding the tokens of `text`."""
    node = Tok(ADDR)
    node.head, node.tail = scan(text)
    tp = node.head
    while tp is not None:
        tp.owner = node
        tp = tp.next
    return node


def set_addr(node: Tok, text: str) -> None:
    """Replace the tokens below ADDR `node` by those of `text`."""
    node.head, node.tail = scan(text)
    tp = node.head
    while tp is not None:
        tp.owner = node
        tp = tp.next


_NON_OPERATOR = (ATOM, QSTRING, COMMENT, DOMLIT, ADDR)


def _append_space(tp: Tok) -> bool:
    nxt = tp.next
    if nxt is None or tp.owner is not None:
        return False
    if tp.type in (ord(","), STARTGRP) or nxt.type == ord("<"):
        return True
    return tp.type in _NON_OPERATOR and nxt.type in _NON_OPERATOR


def internalize(tree: Tok | None, line: bool = False) -> str:
    out: list[str] = []
    for tp in _iter(tree):
        t = tp.type
        if t == ord(","):
            out.append(",")
            if line:
                out.append("\n")
                continue
        elif t == ADDR:
            out.append(internalize(tp.head))
        elif t in (COMMENT, ATOM, QSTRING):
            out.append(tp.text)
        elif t == DOMLIT:
            out.append("[" + tp.text + "]")
        elif t == STARTGRP:
            out.append(":")
        else:
            out.append(chr(t))
        if _append_space(tp):
            out.append(" ")
    return "".join(out)


def _copy_quoted(text: str, quote_set: str) -> str:
    return "".join("\\" + c if c in quote_set else c for c in text)


def externalize(tree: Tok | None, *, line: bool = False, truncate: bool = False) -> str:
    """tok822_externalize; `line`/`truncate` are TOK822_STR_LINE/_TRNC
    (TOK822_STR_HEAD sets both)."""
    out: list[str] = []
    start = 0
    addr: Tok | None = None
    addr_len = 0

    def length() -> int:
        return sum(len(x) for x in out)

    def enforce() -> None:
        nonlocal out
        if addr is not None and length() - addr_len > start + MAX_NONADDR_LENGTH:
            text = "".join(out)
            out = [text[:start], "<"]
            if addr.type == ADDR and addr.head is not None:
                out.append(quote_822_local(internalize(addr.head)))
            out.append(">")

    for tp in _iter(tree):
        t = tp.type
        if t == ord(","):
            if truncate:
                enforce()
            out.append(",")
            out.append("\n" if line else " ")
            if truncate:
                start = length()
                addr = None
                addr_len = 0
            continue
        if t == ADDR:
            addr = tp
            text = quote_822_local(internalize(tp.head))
            out.append(text)
            addr_len = len(text)
        elif t in (ATOM, COMMENT):
            out.append(tp.text)
        elif t == QSTRING:
            out.append('"' + _copy_quoted(tp.text, '"\\\r\n') + '"')
        elif t == DOMLIT:
            out.append("[" + _copy_quoted(tp.text, "\\\r\n") + "]")
        elif t == STARTGRP:
            out.append(":")
        elif t == ord("<"):
            if tp.next is not None and tp.next.type == ord(">"):
                addr = tp
                addr_len = 0
            out.append("<")
        else:
            out.append(chr(t))
        if _append_space(tp):
            out.append(" ")
    if truncate:
        enforce()
    return "".join(out)


# -- quote_822_local.c --------------------------------------------------------

def _is_dot_string(local: str) -> bool:
    """Atoms (no white space, controls or specials other than '.')
    separated by single dots."""
    return _DOT_STRING_RE.fullmatch(local) is not None


def quote_822_local(address: str, *, bare_localpart: bool = False) -> str:
    """External form of an internal-form address (8-bit clean)."""
    start = 0
    if address.startswith("@") and ":" in address:
        start = address.index(":") + 1
    end = len(address) if bare_localpart else address.rfind("@")
    if end < start:
        end = len(address)
    local = address[start:end]
    if _is_dot_string(local):
        return address
    quoted = "".join("\\" + c if c in '"\\\r' else c for c in local)
    return f'{address[:start]}"{quoted}"{address[end:]}'


def unquote_822_local(address: str) -> str:
    """Internal form of an external-form address."""
    if '"' not in address and "\\" not in address:
        return address          # nothing quoted: the same text
    start = 0
    prefix = ""
    if address.startswith("@") and ":" in address:
        start = address.index(":") + 1
        prefix = address[:start]
    out: list[str] = []
    in_quote = False
    bare_at_dst = -1
    bare_at_src = -1
    i = start
    n = len(address)
    while i < n:
        c = address[i]
        if c == '"':
            in_quote = not in_quote
            i += 1
            continue
        if c == "@":
            if not in_quote:
                bare_at_dst = len(out)
                bare_at_src = i
        elif c == "\\":
            if i + 1 >= n:
                i += 1
                continue
            i += 1
            c = address[i]
        out.append(c)
        i += 1
    if bare_at_dst >= 0:
        return prefix + "".join(out[:bare_at_dst]) + address[bare_at_src:]
    return prefix + "".join(out)
