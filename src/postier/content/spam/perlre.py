"""SpamAssassin's Perl regular expressions, for postier's engines.

SpamAssassin writes rules as delimited Perl regexes (`/re/flags`,
`m{re}flags`, `m!re!i`, ...) and compiles them with
Mail::SpamAssassin::Util::compile_regexp: delimiters stripped, modifiers
turned into a `(?mods)` prefix, `qr//aa` (ASCII-only \\d \\s \\w, ASCII-only
case folding), matched against byte strings.  That is PCRE2 without UTF on
bytes, which postier.maps.patterns already runs (Hyperscan first, then RE2,
Python `re` or libpcre2 to confirm); this module only splits the delimiters
off and maps the modifiers.

    split_delimited("m{foo\\.bar}i")   # ("foo\\.bar", "i")
    compile_rule("/\\bviagra\\b/i")     # a postier.maps.patterns.Pattern

Parameters read: none.
"""

from __future__ import annotations

from postier.content.spam import bre as re
from postier.maps import patterns

_SYM = {"{": "}", "(": ")", "<": ">", "[": "]"}


class PerlRegexError(Exception):
    """The regex cannot be used (message worded like compile_regexp's)."""


def split_delimited(text: str) -> tuple[str, str]:
    """(pattern, modifiers) of a delimited regex, as compile_regexp strips them."""
    re_ = text
    if re_.startswith("/"):
        re_ = re_[1:]
        end = "/"
    else:
        m = re.match(r"^(?:m|qr)([{(<\[])", re_)
        if m:
            end = _SYM[m.group(1)]
            re_ = re_[m.end():]
        else:
            m = re.match(r"^(?:m|qr)(\W)", re_, re.A)
            if not m:
                raise PerlRegexError("missing regexp delimiters")
            end = m.group(1)
            if end == "\\":
                raise PerlRegexError("backslash delimiter not allowed")
            re_ = re_[m.end():]
    m = re.search(re.escape(end) + r"([a-df-z]*)\Z", re_)
    if not m:
        raise PerlRegexError("invalid end delimiter/mods")
    mods = m.group(1)
    re_ = re_[:m.start()]
    if "?{" in re_ and re.search(r"\(\?\??\{", re_):
        raise PerlRegexError("eval (?{}) found")
    if end not in "})]":
        stripped = re_.replace("\\\\", "")
        if re.search(r"(?<!\\)" + re.escape(end), stripped):
            raise PerlRegexError(f"unquoted delimiter '{end}' found")
    return re_, mods


def join_delimited(pattern: str, mods: str) -> str:
    """A delimited form that split_delimited() reads back unchanged."""
    for d in ("/", "!", "#", "|", "~", "%", ",", ";", "@"):
        if d not in pattern:
            return ("" if d == "/" else "m") + d + pattern + d + mods
    return "m{" + pattern + "}" + mods


def compile_pattern(pattern: str, mods: str) -> patterns.Pattern:
    """A Pattern for the engines; raises PerlRegexError."""
    try:
        return patterns.pcre_pattern(pattern.encode("latin-1", "replace"),
                                     caseless="i" in mods, multiline="m" in mods,
                                     dotall="s" in mods, extended="x" in mods)
    except patterns.CompileError as e:
        raise PerlRegexError(str(e)) from None


def compile_search_pattern(pattern: str, mods: str) -> patterns.Pattern:
    """compile_pattern for a pattern that is only searched and counted (a
    %{TAG} template rule, compiled for each message's tag values): the same
    matches, much cheaper to build -- libpcre2 alone (the reference
    semantics; compiled, not JIT-compiled: a template runs on few subjects),
    no RE2, `re` or Hyperscan form, so no translation.  Without libpcre2,
    compile_pattern.  Raises PerlRegexError."""
    from postier.content.spam import rulecache
    from postier.maps import reflib
    if not reflib.pcre2_available():
        return compile_pattern(pattern, mods)
    src = pattern.encode("latin-1", "replace")
    opts = rulecache.pcre2_options(mods)
    try:
        ref = reflib.Pcre2Regex(src, opts)
    except reflib.RegexCompileError as e:
        raise PerlRegexError(f"error in regex at offset {e.offset}: {e.message}") from None
    p = rulecache.pattern_from_record([src, None, 0, False, ref.capture_count, None, None,
                                       opts, True, True, False, 0])
    p.__dict__["_ref"] = ref
    return p


def compile_rule(text: str) -> patterns.Pattern:
    pat, mods = split_delimited(text)
    return compile_pattern(pat, mods)


# ---------------------------------------------------------------- Hyperscan form

WIDE_REPEAT = 64      # bounded repeats with more than this many optional copies are widened


def _mark_embedded_anchors(node, at_start: bool, at_end: bool):
    """Start/end-of-subject anchors Hyperscan refuses (not at the pattern's
    edges) become ("anchor", "embedded"), which _widen drops."""
    kind = node[0]
    if kind == "anchor":
        if (node[1] == "A" and not at_start) or (node[1] in ("z", "Z") and not at_end):
            return ("anchor", "embedded")
        return node
    if kind == "seq":
        items = node[1]
        last = len(items) - 1
        out = []
        for i, it in enumerate(items):
            # an item can be at the start only if everything before it can be empty;
            # keep it simple: only the first/last item keeps its edge position
            out.append(_mark_embedded_anchors(it, at_start and i == 0, at_end and i == last))
        return ("seq", out)
    if kind == "alt":
        return ("alt", [_mark_embedded_anchors(b, at_start, at_end) for b in node[1]])
    if kind == "group":
        return ("group", _mark_embedded_anchors(node[1], at_start, at_end), node[2])
    if kind == "rep":
        return ("rep", _mark_embedded_anchors(node[1], False, False)) + tuple(node[2:])
    if kind == "atomic":
        return ("atomic", _mark_embedded_anchors(node[1], at_start, at_end))
    if kind == "look":
        return ("look", _mark_embedded_anchors(node[1], False, False), node[2], node[3])
    return node


def _widen(node, limit: int, changed: list) -> tuple:
    kind = node[0]
    if kind == "anchor" and node[1] in ("bolp", "eol", "bol", "embedded"):
        # Vectorscan 5.4 loses matches of multi-line anchored patterns when
        # other such patterns share the database: drop the anchor (a superset)
        changed.append(1)
        return ("seq", [])
    if kind == "rep":
        _, sub, mn, mx, greedy, poss = node
        sub = _widen(sub, limit, changed)
        if mx is not None and mx - mn > limit:
            changed.append(1)
            return ("rep", sub, mn, None, greedy, poss)
        if mn > limit:
            changed.append(1)
            return ("rep", sub, limit, None, greedy, poss)
        return ("rep", sub, mn, mx, greedy, poss)
    if kind in ("seq", "alt"):
        return (kind, [_widen(c, limit, changed) for c in node[1]])
    if kind == "group":
        return ("group", _widen(node[1], limit, changed), node[2])
    if kind == "atomic":
        return ("atomic", _widen(node[1], limit, changed))
    if kind == "look":
        return ("look", _widen(node[1], limit, changed), node[2], node[3])
    return node


BIG_EXPR = 4000       # Hyperscan expressions longer than this are simplified further


def _summary(node):
    """(first bytes, other bytes, min length, max length) of a node built from
    byte sets, sequences, groups and alternations only; None otherwise."""
    kind = node[0]
    if kind == "set":
        return node[1], frozenset(), 1, 1
    if kind == "group":
        return _summary(node[1])
    if kind == "seq":
        if not node[1]:
            return None
        parts = [_summary(c) for c in node[1]]
        if any(x is None for x in parts) or parts[0][2] < 1:
            return None
        first = parts[0][0]
        rest = set(parts[0][1])
        for f, r, _mn, _mx in parts[1:]:
            rest |= f | r
        return first, frozenset(rest), sum(x[2] for x in parts), sum(x[3] for x in parts)
    if kind == "rep":
        sub = _summary(node[1])
        mn, mx = node[2], node[3]
        if sub is None or mx is None:
            return None
        f, r, smin, smax = sub
        if mn == 0:
            return f, frozenset(r | f), 0, mx * smax
        rest = r | f if mx > 1 else r
        return f, frozenset(rest), mn * smin, mx * smax
    if kind == "alt":
        parts = [_summary(b) for b in node[1]]
        if any(x is None for x in parts):
            return None
        first = frozenset().union(*(x[0] for x in parts))
        rest = frozenset().union(*(x[1] for x in parts))
        return first, rest, min(x[2] for x in parts), max(x[3] for x in parts)
    return None


def _simplify(node, changed: list) -> tuple:
    """A smaller superset for prefiltering: repeats of big sub-patterns become
    + or *, and alternations of short byte sequences (the "fuzzy letter"
    classes of SpamAssassin's FUZZY_* and replace_tags rules) become one
    first-byte class followed by up to three bytes of the others' union."""
    from postier.maps import resyntax
    kind = node[0]
    if kind == "alt":
        sm = _summary(node) if len(node[1]) > 4 else None
        if sm is not None and sm[2] >= 1 and sm[3] <= 8:
            first, rest, _mn, longest = sm
            changed.append(1)
            if longest == 1 or not rest:
                return ("set", first)
            return ("seq", [("set", first), ("rep", ("set", rest), 0, longest - 1, True, False)])
        return ("alt", [_simplify(b, changed) for b in node[1]])
    if kind == "rep":
        _, sub, mn, mx, greedy, poss = node
        sub = _simplify(sub, changed)
        if (mn > 1 or (mx is not None and mx > 1)) and \
                len(resyntax.emit(sub, "hs").pattern) > 200:
            changed.append(1)
            return ("rep", sub, 1 if mn >= 1 else 0, None, greedy, poss)
        return ("rep", sub, mn, mx, greedy, poss)
    if kind == "seq":
        return ("seq", [_simplify(c, changed) for c in node[1]])
    if kind == "group":
        return ("group", _simplify(node[1], changed), node[2])
    if kind == "atomic":
        return ("atomic", _simplify(node[1], changed))
    if kind == "look":
        return ("look", _simplify(node[1], changed), node[2], node[3])
    return node


def _has_backref(node) -> bool:
    kind = node[0]
    if kind == "backref":
        return True
    if kind in ("seq", "alt"):
        return any(_has_backref(c) for c in node[1])
    if kind in ("group", "atomic", "rep", "look"):
        return _has_backref(node[1])
    return False


def _cut_backref(tree, changed: list):
    """A prefix of a pattern matches whenever the pattern does (searching):
    the top-level sequence is cut before its first item with a
    back-reference (Hyperscan would take it as "anything", reporting at
    every later position)."""
    kind = tree[0]
    if kind == "group":
        return ("group", _cut_backref(tree[1], changed), tree[2])
    if kind == "seq":
        items = tree[1]
        for k, it in enumerate(items):
            if _has_backref(it):
                if k == 0:
                    if it[0] not in ("group", "seq"):
                        return tree
                    mark: list = []
                    cut = _cut_backref(it, mark)
                    if not mark:
                        return tree
                    changed.append(1)
                    return cut          # a prefix of the first item: the rest goes
                changed.append(1)
                return ("seq", list(items[:k]))
    return tree


def _truncate_tail(tree, changed: list):
    """A prefix of a pattern matches whenever the pattern does (searching):
    a trailing repeat of a big sub-pattern `X{5}` is cut to `X{2}`."""
    from postier.maps import resyntax
    kind = tree[0]
    if kind == "group":
        return ("group", _truncate_tail(tree[1], changed), tree[2])
    if kind == "seq" and tree[1]:
        return ("seq", tree[1][:-1] + [_truncate_tail(tree[1][-1], changed)])
    if kind == "rep":
        _, sub, mn, mx, greedy, poss = tree
        if mn > 2 and len(resyntax.emit(sub, "hs").pattern) > 200:
            changed.append(1)
            return ("rep", sub, 2, 2, greedy, poss)
    return tree


SEP = 0x00      # separates the subjects of a joined buffer (never in body text)
_SEP_SET = ("set", frozenset({SEP}))
_NL = 0x0A


def _min_len(node) -> int:
    kind = node[0]
    if kind == "set":
        return 1
    if kind == "seq":
        return sum(_min_len(c) for c in node[1])
    if kind == "alt":
        return min((_min_len(c) for c in node[1]), default=0)
    if kind in ("group", "atomic"):
        return _min_len(node[1])
    if kind == "rep":
        return node[2] * _min_len(node[1])
    return 0


def _joined(node, at_start: bool, at_end: bool, changed: list, rest_min: int = 1):
    """The tree for a joined buffer  SEP s1 SEP s2 ... SEP  (one search
    for all the subjects of an area): no byte set takes SEP, so a match
    cannot span two subjects; a start anchor at the pattern's start
    becomes SEP (multi-line ^: SEP or a newline that does not end the
    subject), an end anchor at its end becomes SEP (\\Z: \\n?SEP,
    multi-line $: a newline or SEP).  For deciding whether some subject
    matches that is exact; other anchors are dropped (`changed`: a
    superset).  rest_min: the least length of what follows the node."""
    kind = node[0]
    if kind == "set":
        return ("set", node[1] - {SEP}) if SEP in node[1] else node
    if kind == "anchor":
        k = node[1]
        if k == "A" and at_start:
            return _SEP_SET
        if k == "bolp" and at_start and rest_min >= 1:
            return ("set", frozenset({SEP, _NL}))
        if k == "z" and at_end:
            return _SEP_SET
        if k == "Z" and at_end:
            return ("seq", [("rep", ("set", frozenset({_NL})), 0, 1, True, False), _SEP_SET])
        if k == "eol" and at_end:
            return ("set", frozenset({SEP, _NL}))
        if k in ("b", "B", "wstart", "wend"):
            return node
        changed.append(1)
        return ("seq", [])
    if kind == "seq":
        items = node[1]
        last = len(items) - 1
        after = [0] * (last + 1)    # the least length of the items after each one
        for i in range(last - 1, -1, -1):
            after[i] = after[i + 1] + _min_len(items[i + 1])
        out = []
        for i, it in enumerate(items):
            # an item is at the start when everything before it is an anchor
            # (zero-width) -- keep it simple: only the first/last item
            out.append(_joined(it, at_start and i == 0, at_end and i == last, changed,
                               after[i] + (rest_min if i == last else 0)))
        return ("seq", out)
    if kind == "alt":
        return ("alt", [_joined(b, at_start, at_end, changed, rest_min) for b in node[1]])
    if kind == "group":
        return ("group", _joined(node[1], at_start, at_end, changed, rest_min), node[2])
    if kind == "atomic":
        return ("atomic", _joined(node[1], at_start, at_end, changed, rest_min))
    if kind == "rep":
        return ("rep", _joined(node[1], False, False, changed)) + tuple(node[2:])
    if kind == "look":
        return ("look", _joined(node[1], False, False, changed), node[2], node[3])
    return node


def _parse(pattern: str, mods: str):
    from postier.maps import resyntax
    try:
        tree, _ = resyntax.parse_pcre(pattern.encode("latin-1", "replace"),
                                      caseless="i" in mods, multiline="m" in mods,
                                      dotall="s" in mods, extended="x" in mods)
        return tree
    except (resyntax.Unsupported, resyntax.PcreSyntaxError, RecursionError):
        return None


RE2_MAX_MEM = 8 << 20     # RE2's memory budget for joined-buffer regexes (its default)
JOIN_TAIL = bytes([SEP, SEP])


def joined_buffer(subjects: list[bytes]) -> bytes:
    """SEP s1 SEP s2 ... SEP SEP: the buffer joined forms are scanned in."""
    return b"\x00" + b"\x00".join(subjects) + JOIN_TAIL


def joined_re2(pattern: str, mods: str, max_mem: int = RE2_MAX_MEM) -> tuple[object, bool, bool]:
    """(RE2 regex for the joined buffer (see _joined), whether "it matches
    the buffer" is exactly "the pattern matches some subject", whether its
    non-overlapping matches there are exactly the subjects' (no SEP in
    it, or only in a leading start-anchor set: _countable_line_start));
    (None, False, False) when RE2 cannot run it."""
    import re2

    from postier.maps import resyntax
    tree = _parse(pattern, mods)
    if tree is None:
        return None, False, False
    changed: list = []
    jt = _joined(tree, True, True, changed)
    try:
        em = resyntax.emit(jt, "re2")
        rx = re2._compile(em.pattern, 0, max_mem)
    except Exception:  # noqa: BLE001 - Unsupported, or pyre2's own errors
        return None, False, False
    # a joined buffer ends in SEP SEP (no match may end at the very end of
    # a Hyperscan buffer: Vectorscan 5.4 loses some), so it holds a phantom
    # empty subject: a pattern matching the empty subject is not exact
    exact = not changed and not em.nl_unsafe and rx.search(JOIN_TAIL) is None
    return rx, exact, exact and (SEP not in _all_literal_bytes(jt) and _min_len(jt) >= 1
                                 or _countable_line_start(jt))


def _countable_line_start(jt) -> bool:
    """Are the non-overlapping matches of a joined form that starts with the
    byte set of a start anchor (SEP, or SEP/newline for multi-line ^: see
    _joined) the subjects' matches, one for one?  Yes when nothing else in
    it takes SEP, what follows the set is never empty (so no match is), and
    a match never ends just after a newline: then the separator or newline
    a match starts with was consumed by no earlier match (Perl's ^ at the
    end of an earlier match needs the newline before it), and Perl's //g
    and RE2's finditer walk the same matches."""
    if jt[0] != "seq" or len(jt[1]) < 2:
        return False
    head, rest = jt[1][0], ("seq", list(jt[1][1:]))
    if head not in (_SEP_SET, ("set", frozenset({SEP, _NL}))):
        return False
    if SEP in _all_literal_bytes(rest) or _min_len(rest) < 1:
        return False
    last = edge_bytes(rest, last=True)
    return last is not None and _NL not in last


def edge_bytes(node, last: bool = False) -> frozenset | None:
    """The bytes a match of node can start with (last: end with); zero-width
    items give none, and past an item that may match empty the next ones
    (last: the previous ones) count too.  None when that is not known
    (back-references, unknown nodes)."""
    kind = node[0]
    if kind == "set":
        return node[1]
    if kind in ("anchor", "look"):
        return frozenset()
    if kind in ("group", "atomic", "rep"):
        return edge_bytes(node[1], last)
    if kind == "alt":
        out: frozenset = frozenset()
        for b in node[1]:
            eb = edge_bytes(b, last)
            if eb is None:
                return None
            out |= eb
        return out
    if kind == "seq":
        out = frozenset()
        for it in (reversed(node[1]) if last else node[1]):
            eb = edge_bytes(it, last)
            if eb is None:
                return None
            out |= eb
            if _min_len(it) >= 1:
                return out
        return out
    return None


def _all_literal_bytes(node) -> set:
    """Bytes that some set of the tree may take (is SEP used anywhere?)."""
    out: set = set()
    if node[0] == "set":
        if SEP in node[1]:
            out.add(SEP)
    elif node[0] in ("seq", "alt"):
        for c in node[1]:
            out |= _all_literal_bytes(c)
    elif node[0] in ("group", "atomic", "rep", "look"):
        out |= _all_literal_bytes(node[1])
    return out


def hyperscan_entry(p: patterns.Pattern, pattern: str, mods: str, limit: int = WIDE_REPEAT,
                    joined: bool = False):
    """The Hyperscan side of a rule (an hsdb.Entry): its expression(s) and
    whether a report is final.

    The expression is rewritten so that Hyperscan takes it and compiles it
    quickly: bounded repeats with many optional copies (`[^>]{0,2048}`)
    become unbounded; multi-line ^/$ anchors are dropped (Vectorscan misses
    matches of such patterns when several share a database); a huge
    expression has its big repeats and "fuzzy letter" alternations
    simplified.  Each of these matches a superset, so the entry is then
    inexact (reports are confirmed by the exact engine).  Finally a still
    huge expression is shared out over several expressions along its
    biggest top-level alternation (an exact split).

    joined=True: the form for a buffer of several subjects (see _joined)."""
    from postier.content.spam.hsdb import Entry
    from postier.maps import resyntax
    if p.hs_expr is None:
        return Entry([], 0, False)
    flags = p.hs_flags if p.hs_flags > 0 else 0
    tree = _parse(pattern, mods)
    if tree is None:
        return Entry([], 0, False) if joined else Entry([p.hs_expr], flags, p.hs_exact)
    changed: list = []
    if joined:
        tree = _joined(tree, True, True, changed)
    tree = _mark_embedded_anchors(tree, True, True)
    tree = _widen(tree, limit, changed)
    tree = _cut_backref(tree, changed)
    em = resyntax.emit(tree, "hs")
    if len(em.pattern) > BIG_EXPR:
        tree = _truncate_tail(tree, changed)
        em = resyntax.emit(tree, "hs")
    if len(em.pattern) > BIG_EXPR:
        tree = _simplify(tree, changed)
        em = resyntax.emit(tree, "hs")
    exact = p.hs_exact and em.exact and not changed and not (joined and p.search(b""))
    trees = _split_trees(tree, len(em.pattern), 4) if len(em.pattern) > SPLIT_TARGET else [tree]
    exprs = [em.pattern] if len(trees) < 2 else [resyntax.emit(t, "hs").pattern for t in trees]
    return Entry(exprs, flags, exact)

def compile_pattern_fallback(pattern: str, mods: str) -> patterns.Pattern:
    """For patterns libpcre2 refuses for size only: RE2/re and Hyperscan."""
    try:
        return patterns.pcre_pattern_unchecked(pattern.encode("latin-1", "replace"),
                                               caseless="i" in mods, multiline="m" in mods,
                                               dotall="s" in mods, extended="x" in mods)
    except patterns.CompileError as e:
        raise PerlRegexError(str(e)) from None


SPLIT_TARGET = 6000   # Hyperscan expression size aimed at when splitting an alternation


def _split_trees(tree, size: int, depth: int) -> list:
    """Cut a huge expression's tree (its Hyperscan form `size` bytes long)
    into several whose union matches exactly the same strings: the biggest
    alternation reachable from the top through sequences, groups and other
    alternations (not under a repeat or look-around, where one match may
    need several branches) is shared out, again (down to `depth` times) in
    the pieces that are still bigger than SPLIT_TARGET.  [tree] when there
    is no such alternation or the expression is small."""
    from postier.maps import resyntax
    if size <= SPLIT_TARGET or depth <= 0:
        return [tree]
    best: list = []

    def find(node, path):
        kind = node[0]
        if kind == "alt":
            sz = len(resyntax.emit(node, "hs").pattern)
            if len(node[1]) > 1 and (not best or sz > best[0][0]):
                best[:] = [(sz, list(path))]
            for i, b in enumerate(node[1]):
                find(b, path + [i])
        elif kind == "seq":
            for i, c in enumerate(node[1]):
                find(c, path + [i])
        elif kind == "group":
            find(node[1], path + [0])

    find(tree, [])
    if not best:
        return [tree]
    path = best[0][1]

    def get(node, path):
        for i in path:
            node = node[1][i] if node[0] in ("seq", "alt") else node[1]
        return node

    def replace(node, path, new):
        if not path:
            return new
        i = path[0]
        if node[0] in ("seq", "alt"):
            kids = list(node[1])
            kids[i] = replace(kids[i], path[1:], new)
            return (node[0], kids)
        if node[0] == "group":
            return ("group", replace(node[1], path[1:], new), node[2])
        return node

    branches = get(tree, path)[1]
    base = size - best[0][0]
    pieces: list = []
    chunk: list = []
    csize = 0
    for b in branches:
        bs = len(resyntax.emit(b, "hs").pattern) + 1
        if chunk and base + csize + bs > SPLIT_TARGET:
            pieces.append(replace(tree, path, ("alt", chunk) if len(chunk) > 1 else chunk[0]))
            chunk, csize = [], 0
        chunk.append(b)
        csize += bs
    if chunk:
        pieces.append(replace(tree, path, ("alt", chunk) if len(chunk) > 1 else chunk[0]))
    if len(pieces) < 2:
        return [tree]
    out: list = []
    for t in pieces:
        out += _split_trees(t, len(resyntax.emit(t, "hs").pattern), depth - 1)
    return out


def _widen_ranges(node):
    kind = node[0]
    if kind == "rep":
        _, sub, mn, mx, greedy, poss = node
        sub = _widen_ranges(sub)
        if mx is not None and mx > mn and mx > 1:
            return ("rep", sub, mn, None, greedy, poss)
        return ("rep", sub, mn, mx, greedy, poss)
    if kind in ("seq", "alt"):
        return (kind, [_widen_ranges(c) for c in node[1]])
    if kind == "group":
        return ("group", _widen_ranges(node[1]), node[2])
    if kind == "atomic":
        return ("atomic", _widen_ranges(node[1]))
    if kind == "look":
        return ("look", _widen_ranges(node[1]), node[2], node[3])
    return node


def re2_superset(pattern: str, mods: str):
    """For a pattern only Python `re` or libpcre2 can run (RE2 refuses its
    repeat counts): an RE2 regex matching a superset (bounded ranges made
    unbounded), to rule subjects out cheaply before the slow exact engine.
    None when RE2 cannot take even that."""
    import re2
    p = _re2_pattern(pattern, mods, _widen_ranges)
    if p is None:
        return None
    try:
        return re2.compile(p)
    except Exception:  # noqa: BLE001 - pyre2 raises several types
        return None


def _re2_pattern(pattern: str, mods: str, transform) -> str | None:
    """RE2 syntax for transform(the pattern's tree), or None when the
    pattern cannot be parsed, emitted or run newline-safely by RE2."""
    from postier.maps import resyntax
    tree = _parse(pattern, mods)
    if tree is None:
        return None
    try:
        em = resyntax.emit(transform(tree), "re2")
    except (resyntax.Unsupported, resyntax.PcreSyntaxError, RecursionError):
        return None
    return None if em.nl_unsafe else em.pattern


_ANY_BYTES = ("rep", ("set", frozenset(range(256))), 0, None, True, False)
_EMPTY = ("seq", [])


def _loosen(node, groups: dict | None = None):
    """A tree matching a superset of node's matches anywhere in a longer
    text: bounded ranges unbounded, atomic groups and possessive repeats
    plain, look-arounds and anchors (but \\b, \\B) dropped, a
    back-reference the loosened group it refers to (groups: capture index
    -> its tree; the text it matches is one the group matched; case-folded
    for a caseless reference) or else any text, groups non-capturing."""
    kind = node[0]
    if kind == "rep":
        _, sub, mn, mx, greedy, _poss = node
        sub = _loosen(sub, groups)
        if mx is not None and mx > mn and mx > 1:
            mx = None
        return ("rep", sub, mn, mx, greedy, False)
    if kind in ("seq", "alt"):
        return (kind, [_loosen(c, groups) for c in node[1]])
    if kind in ("group", "atomic"):
        return ("group", _loosen(node[1], groups), None)
    if kind == "look":
        return _EMPTY
    if kind == "backref":
        target = groups.get(node[1]) if groups else None
        if target is None:
            return _ANY_BYTES
        sub = _loosen(target, None)     # a reference inside it: any text
        return _fold_case(sub) if node[2] else sub
    if kind == "anchor":
        return node if node[1] in ("b", "B") else _EMPTY
    return node


def _capture_groups(node, out: dict) -> dict:
    """{capture index: sub-tree} of the capturing groups in a tree."""
    kind = node[0]
    if kind == "group" and isinstance(node[2], int):
        out[node[2]] = node[1]
    if kind in ("seq", "alt"):
        for c in node[1]:
            _capture_groups(c, out)
    elif kind in ("group", "atomic", "rep", "look"):
        _capture_groups(node[1], out)
    return out


def _fold_case(node):
    """node with every byte set closed under ASCII case (what a caseless
    back-reference may match of the group's text)."""
    kind = node[0]
    if kind == "set":
        extra = {b ^ 0x20 for b in node[1] if 0x41 <= (b & ~0x20) <= 0x5A}
        return ("set", node[1] | extra) if extra - node[1] else node
    if kind in ("seq", "alt"):
        return (kind, [_fold_case(c) for c in node[1]])
    if kind in ("group", "atomic", "rep", "look"):
        return (kind, _fold_case(node[1])) + tuple(node[2:])
    return node


_START_ANCHORS = {"A": ("alt", [("anchor", "A"), ("set", frozenset({SEP}))]),
                  "bol": ("alt", [("anchor", "A"), ("set", frozenset({SEP, 10}))]),
                  "bolp": ("alt", [("anchor", "A"), ("set", frozenset({SEP, 10}))])}
_END_ANCHORS = {"z": ("alt", [("anchor", "z"), ("set", frozenset({SEP}))]),
                "Z": ("alt", [("anchor", "z"), ("set", frozenset({SEP, 10}))]),
                "eol": ("alt", [("anchor", "z"), ("set", frozenset({SEP, 10}))])}


def _loosen_top(tree, refs: bool = True):
    """_loosen, keeping a leading or trailing anchor of the whole pattern
    as the byte before/after the match that makes it true (the start or
    end of the text, SEP, a newline): nothing else in the pattern consumes
    that byte, so this is still a superset.  refs=False: back-references
    become any text (not copies of their groups)."""
    groups = _capture_groups(tree, {}) if refs else None
    if tree[0] != "seq" or not tree[1]:
        return _loosen(tree, groups)
    items = list(tree[1])
    head = tail = None
    if items[0][0] == "anchor" and items[0][1] in _START_ANCHORS:
        head = _START_ANCHORS[items.pop(0)[1]]
    if items and items[-1][0] == "anchor" and items[-1][1] in _END_ANCHORS:
        tail = _END_ANCHORS[items.pop()[1]]
    body = [_loosen(c, groups) for c in items]
    return ("seq", ([head] if head else []) + body + ([tail] if tail else []))


def re2_loose(pattern: str, mods: str, max_mem: int = RE2_MAX_MEM):
    """An RE2 regex matching wherever the pattern could match a subject
    that is part of the text searched (see _loosen): "no match" in a joined
    buffer or in one subject rules the pattern out there.  None when RE2
    cannot take it."""
    import re2
    for refs in (True, False):
        p = _re2_pattern(pattern, mods, lambda t, refs=refs: _loosen_top(t, refs))
        if p is None:
            continue
        try:
            return re2._compile(p, 0, max_mem)
        except Exception:  # noqa: BLE001, S112 - pyre2 raises several types; try the other form
            continue
    return None
