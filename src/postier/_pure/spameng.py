"""Pure-Python twin of postier._native.spameng: the spam engine's per-message loops.

    hits = set()
    db.scan(buf, match_event_handler=on_match, context=hits)   # Hyperscan callbacks
    db.scan(buf, match_event_handler=on_match_end, context=ends)   # ids and match ends
    report_subjects([(ends, None)], i, lens)    # the subjects holding entry i's report ends
    report_lines([(ends, None)], i, subjects)   # the same, from the subjects themselves
    count_literals(buf, (b"e", b"\\xc3\\xa8"), 230)            # `tflags multiple` by counting
    LiteralCounter(lits).count(buf, 230)                    # the same, for a set used often
    count_iter(rx, data, limit)          # matches of rx.finditer(data), capped at limit
    first_hit(search, lines)             # index of the first line search() accepts, or -1
    long_line(data, 998)                 # a line starting with 998 bytes but CR/LF? (__LONGLINE)
    byte_count(buf, 0)                   # buf.count(b"\\0"): a joined buffer's separators
    header_values(headers, names)        # joined header values by lower-cased name
    literal_set(re2_pattern)             # the literals an RE2 pattern stands for, or None
    LineLiteralCounter(*line_literal_form(re2_pattern)).count(buf, 100)   # /^[^>].*?<a href=/im
    SubjectCounter(subject_form(re2_pattern)).count(buf, 3)     # /^\\s*\\S/

postier.content.spam.engine and .hsdb use these on every message (selected
with postier.native.load("spameng"); POSTIER_PURE=1 selects this twin).
literal_set runs when rules are built: a `multiple` rule whose regex is a
set of literals that can never overlap is counted by looking for the
literals instead of walking a regex (SpamAssassin's __LOWER_E,
__E_LIKE_LETTER); line_literal_form likewise finds the rules whose joined
form is a line start, an allowed first byte, then a literal set on the
rest of the line (__HAS_HREF, __HAS_IMG_SRC and their ONECASE forms),
counted by LineLiteralCounter in one walk instead of RE2's finditer;
subject_form, the rules whose joined form is a subject start, bytes of a
class, then one outside it (__BODY_TEXT_LINE), counted by SubjectCounter.
Reads no main.cf parameters.
"""

from __future__ import annotations

from bisect import bisect_right

MAX_LITERALS = 256


def on_match(i: int, start: int, end: int, flags: int, hits: set) -> None:
    """Hyperscan match handler: collect the expression id."""
    hits.add(i)


def on_match_end(i: int, start: int, end: int, flags: int, ends: list) -> None:
    """Hyperscan match handler: append the expression id and the match's
    end offset (a flat list: id, end, id, end, ...)."""
    ends.append(i)
    ends.append(end)


def report_subjects(ends: list, i: int, lens: list) -> list[int]:
    """The subjects (indexes into lens, the lengths of the subjects of a
    joined buffer SEP s1 SEP s2 ... SEP SEP) holding a report end of entry
    i, in order.  ends is a list of (flat list id, end, id, end, ... of one
    scanned buffer, None when that buffer is the joined buffer itself, else
    the indexes of the subjects it joins).  Hyperscan reports every match
    end (no SINGLEMATCH; a prefilter expression's matches include the exact
    one's), and a joined form's match takes one subject and the separators
    around it: a match of entry i lies in one of these subjects.  An end
    just after a separator (or an empty match there) counts for the
    subjects on both sides of it; one in the tail, for the last subject."""
    out: set[int] = set()
    for flat, sub in ends:
        m = len(sub) if sub is not None else len(lens)
        seps = None
        for x in range(0, len(flat) - 1, 2):
            if flat[x] != i or not m:
                continue
            if seps is None:        # seps[k]: offset of the separator before subject k
                seps = [0]
                pos = 0
                for k in (sub if sub is not None else range(m)):
                    pos += lens[k] + 1
                    seps.append(pos)
            p = flat[x + 1] - 1
            k = bisect_right(seps, p) - 1 if p >= 0 else 0
            ks = (m - 1,) if k >= m else (k - 1, k) if k and seps[k] == p else (k,)
            for k in ks:
                out.add(sub[k] if sub is not None else k)
    return sorted(out)


def report_lines(ends: list, i: int, subjects: list) -> list[int]:
    """report_subjects(ends, i, [len(s) for s in subjects]) (the compiled
    twin reads the lengths itself)."""
    return report_subjects(ends, i, [len(s) for s in subjects])


def on_first_match(i: int, start: int, end: int, flags: int, hits: set) -> bool:
    """Hyperscan match handler that stops the scan at the first report."""
    hits.add(i)
    return True


def count_literals(data: bytes, lits: tuple, limit: int = 0) -> int:
    """Occurrences of the literals in data (non-overlapping; the literals
    come from literal_set, so they never overlap each other), capped at
    limit (0: no cap)."""
    n = 0
    for lit in lits:
        n += data.count(lit)
    if limit and n > limit:
        n = limit
    return n


class LiteralCounter:
    """count_literals for one literal set, built once per rule: the
    compiled twin walks the data once and stops at the limit."""

    def __init__(self, lits: tuple):
        self.lits = tuple(lits)
        if not all(self.lits):
            raise ValueError("empty literal")

    def count(self, data: bytes, limit: int = 0) -> int:
        return count_literals(data, self.lits, limit)


def count_iter(rx, data: bytes, limit: int = 0) -> int:
    """Matches of rx.finditer(data), stopping at limit (0: no cap)."""
    n = 0
    for _m in rx.finditer(data):
        n += 1
        if limit and n >= limit:
            break
    return n


def long_line(data: bytes, n: int) -> bool:
    """Does a line of data (from its start or a newline) begin with n
    bytes none of which is CR or LF (Perl's /^[^\\r\\n]{n}/m)?"""
    if n <= 0:
        return True
    return any(len(line.split(b"\r", 1)[0]) >= n for line in data.split(b"\n"))


def byte_count(data: bytes, c: int) -> int:
    """data.count(bytes([c]))."""
    return data.count(bytes((c,)))


def first_hit(search, lines: list) -> int:
    """Index of the first line for which search(line) is true, or -1."""
    for i, line in enumerate(lines):
        if search(line):
            return i
    return -1


_HEX = b"0123456789abcdefABCDEF"


def _parse_alt(p: bytes, i: int, depth: int):
    """(set of literals, next index) of an alternation starting at p[i]."""
    alts: list[set[bytes]] = []
    cur: set[bytes] = {b""}
    n = len(p)
    while i < n:
        c = p[i]
        if c == 0x7C:                                   # |
            alts.append(cur)
            cur = {b""}
            i += 1
            continue
        if c == 0x29:                                   # )
            if depth == 0:
                raise ValueError("unbalanced")
            break
        if c == 0x28:                                   # (
            if not p.startswith(b"(?:", i):
                raise ValueError("capture or flags")
            sub, i = _parse_alt(p, i + 3, depth + 1)
            if i >= n or p[i] != 0x29:
                raise ValueError("unclosed")
            i += 1
            piece = sub
        elif c == 0x5B:                                 # [
            piece, i = _parse_class(p, i + 1)
        elif c == 0x5C:                                 # backslash
            b, i = _parse_escape(p, i + 1)
            piece = {bytes([b])}
        elif c in b".^$*+?{}":
            raise ValueError("operator")
        else:
            piece = {bytes([c])}
            i += 1
        if i < n and p[i] in b"*+?{":
            raise ValueError("repeat")
        cur = {a + b for a in cur for b in piece}
        if len(cur) > MAX_LITERALS:
            raise ValueError("too many")
    alts.append(cur)
    out: set[bytes] = set()
    for a in alts:
        out |= a
    if len(out) > MAX_LITERALS:
        raise ValueError("too many")
    return out, i


def _parse_escape(p: bytes, i: int) -> tuple[int, int]:
    if i >= len(p):
        raise ValueError("trailing backslash")
    c = p[i]
    if c == 0x78:                                       # \xHH
        h = p[i + 1:i + 3]
        if len(h) != 2 or any(x not in _HEX for x in h):
            raise ValueError("bad hex")
        return int(h, 16), i + 3
    if (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A):
        raise ValueError("escape class or assertion")   # \d \s \b \A \1 ...
    return c, i + 1


def _parse_class(p: bytes, i: int) -> tuple[set[bytes], int]:
    n = len(p)
    if i < n and p[i] == 0x5E:
        raise ValueError("negated class")
    members: set[int] = set()
    first = True
    while i < n and (p[i] != 0x5D or first):
        first = False
        if p[i] == 0x5C:
            lo, i = _parse_escape(p, i + 1)
        elif p[i] == 0x5B:
            raise ValueError("nested class")
        else:
            lo, i = p[i], i + 1
        if i + 1 < n and p[i] == 0x2D and p[i + 1] != 0x5D:
            if p[i + 1] == 0x5C:
                hi, i = _parse_escape(p, i + 2)
            else:
                hi, i = p[i + 1], i + 2
            if hi < lo:
                raise ValueError("bad range")
            members.update(range(lo, hi + 1))
        else:
            members.add(lo)
        if len(members) > MAX_LITERALS:
            raise ValueError("too many")
    if i >= n:
        raise ValueError("unclosed class")
    return {bytes([b]) for b in members}, i + 1


def literal_set(pattern: bytes) -> tuple | None:
    """The literals a case-sensitive RE2 pattern (as postier.maps.resyntax
    emits it: `(?:`, `|`, `[...]`, `\\xHH`, escaped punctuation, plain
    bytes) stands for, when its non-overlapping matches can be counted as
    the sum of the literals' counts: no literal is empty, holds a NUL
    (the joined buffer's separator), contains another or overlaps another
    -- otherwise, or for any other regex syntax, None."""
    if isinstance(pattern, str):
        pattern = pattern.encode("latin-1")
    try:
        lits, i = _parse_alt(pattern, 0, 0)
    except (ValueError, IndexError):
        return None
    if i != len(pattern) or not lits:
        return None
    out = sorted(lits)
    for a in out:
        if not a or 0 in a:
            return None
    for a in out:
        for b in out:
            if a is b:
                continue        # a literal overlapping itself is counted as a regex does
            if a in b:
                return None
            # a proper suffix of a that is a proper prefix of b: occurrences
            # of the two could overlap
            for k in range(1, min(len(a), len(b))):
                if a[-k:] == b[:k]:
                    return None
    return tuple(out)


_LINE_HEAD = b"[\\x00\\x0a][^"
_LINE_GAP = b"[^\\x00\\x0a]*?"


def line_literal_form(pattern: bytes) -> tuple | None:
    """(excluded first bytes, literals) when an RE2 pattern (as resyntax
    emits a joined line form) is [\\x00\\x0a][^X][^\\x00\\x0a]*?L, X a
    class holding the NUL and L a literal set (literal_set's syntax) whose
    literals are not empty and hold no NUL or newline: a line start, a
    first byte not in X, then the first literal of L on the rest of that
    line (SpamAssassin's /^[^>].*?<a href=/im, counted by
    LineLiteralCounter); else None."""
    if isinstance(pattern, str):
        pattern = pattern.encode("latin-1")
    if not pattern.startswith(_LINE_HEAD):
        return None
    try:
        members, i = _parse_class(pattern, len(_LINE_HEAD))
        if not pattern.startswith(_LINE_GAP, i):
            return None
        lits, j = _parse_alt(pattern, i + len(_LINE_GAP), 0)
    except (ValueError, IndexError):
        return None
    if j != len(pattern) or not lits or b"\0" not in members:
        return None
    if any(not a or 0 in a or 10 in a for a in lits):
        return None
    return b"".join(sorted(members)), tuple(sorted(lits))


def count_line_literals(data: bytes, excluded: bytes, lits: tuple, limit: int = 0) -> int:
    """Matches of [\\x00\\x0a][^X][^\\x00\\x0a]*?L in data (line_literal_form:
    X the bytes of excluded, L the literals), as RE2's finditer counts them
    (leftmost, not overlapping), capped at limit (0: no cap).  A match
    starts at the first separator (NUL or newline) s from which one can:
    data[s + 1] not in X, then a literal at or after s + 2 before the next
    separator; the next match starts at that separator or later."""
    n = len(data)
    pos = c = 0
    while pos < n:
        s = _next_sep(data, pos)
        if s + 1 >= n:
            break
        if data[s + 1] in excluded:
            pos = s + 1
            continue
        e = _next_sep(data, s + 2)
        t = min((k for k in (data.find(lit, s + 2, e) for lit in lits) if k >= 0), default=-1)
        if t < 0:
            pos = s + 1
            continue
        c += 1
        if limit and c >= limit:
            break
        pos = e
    return c


def _next_sep(data: bytes, pos: int) -> int:
    """The offset of the first NUL or newline at or after pos, or len(data)."""
    a = data.find(b"\0", pos)
    b = data.find(b"\n", pos)
    if a < 0:
        return b if b >= 0 else len(data)
    return a if b < 0 or a < b else b


class LineLiteralCounter:
    """count_line_literals for one line_literal_form, built once per rule."""

    def __init__(self, excluded: bytes, lits: tuple):
        self.excluded = bytes(excluded)
        self.lits = tuple(lits)
        if not self.lits or any(not a or 0 in a or 10 in a for a in self.lits):
            raise ValueError("empty literal or one holding a separator")

    def count(self, data: bytes, limit: int = 0) -> int:
        return count_line_literals(data, self.excluded, self.lits, limit)


_SUBJECT_HEAD = b"\\x00["


def subject_form(pattern: bytes) -> bytes | None:
    """The bytes C when an RE2 pattern (as resyntax emits a joined form)
    is \\x00[C]*[^\\x00C], C a class without the NUL: a subject start, bytes
    of C, then one that is neither (SpamAssassin's /^\\s*\\S/, counted by
    SubjectCounter); else None."""
    if isinstance(pattern, str):
        pattern = pattern.encode("latin-1")
    if not pattern.startswith(_SUBJECT_HEAD):
        return None
    try:
        members, i = _parse_class(pattern, len(_SUBJECT_HEAD))
        if not pattern.startswith(b"*[^", i):
            return None
        others, j = _parse_class(pattern, i + 3)
    except (ValueError, IndexError):
        return None
    if j != len(pattern) or not members or b"\0" in members or others != members | {b"\0"}:
        return None
    return b"".join(sorted(members))


class SubjectCounter:
    """count(data, limit): the matches (capped at limit, 0: no cap) of a
    subject_form \\x00[C]*[^\\x00C] in a joined buffer whose subjects hold
    no NUL: one per subject holding a byte outside C (a match starts at
    the separator before a subject and ends in it), as RE2's finditer
    counts them."""

    def __init__(self, chars: bytes):
        self.chars = bytes(chars)
        if 0 in self.chars:
            raise ValueError("the separator in the class")

    def count(self, data: bytes, limit: int = 0) -> int:
        n = 0
        for s in data.split(b"\0"):
            if s.strip(self.chars):
                n += 1
                if n == limit:
                    break
        return n


def header_values(headers: dict, names: tuple) -> list:
    """For each lower-cased header name (None: skipped), its values in
    headers (name -> list of decoded values, without their newline) joined
    as a header rule sees them: b"\\n".join(values) + b"\\n", or None when
    absent or when the name is None."""
    out: list = [None] * len(names)
    for i, name in enumerate(names):
        if name is not None:
            hl = headers.get(name)
            if hl:
                out[i] = b"\n".join(hl) + b"\n"
    return out
