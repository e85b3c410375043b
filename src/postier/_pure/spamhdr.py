"""Pure-Python twin of postier._native.spamhdr: the spam engine's header-rule walk.

    header_rules(run, plan, info, vals, pdbs, count, on_match, on_first, terminated[, memo])
    header_rules_many(runs, plan, info, valss, pdbs, ...)   # header_rules of a batch, group-major
    compile_plan(plan, info)                 # the plan in header_rules' own form (once per rule set)
    new_memo(groups)                         # header_rules' memo across messages
    exists_rules(headers, strings, checks)   # names of the exists: rules that hit
    fast_addresses(s, host_invalid)          # the common address-header shapes, or None
    all_value(order, headers)                # the ALL value and its Received lines' offsets
    fast_answer(raw_headers, headers, strings, kind, memos, memo_len, memo_size, addrs,
                host_check, line_out)
    fast_values(raw_headers, headers, strings, items, cache, values, out, memos, memo_len,
                memo_size, addrs, host_check, line_out)   # :raw/:addr/:name/:first/:last
    store_plain(values, requests, names, out, plain, strings)   # HeaderView.values' plain names
    line_after_received(data, name)          # a NAME: line after the first Received: line?
    all_raw(pristine_headers)                # ALL:raw's value when its lines tile the block, or None

header_rules is Run._headers' loop (postier.content.spam.engine): for each
header group of CompiledRules.header_plan, its value (vals: one per group,
None when the request is undefined), the group's Hyperscan databases
(pdbs: hsdb.AreaDatabase.part_dbs, indexed by the group's partition)
called directly with the match handlers on_match / on_first
(postier._native.spameng; `terminated` is hyperscan.ScanTerminated), then
the rules Hyperscan reported (plus the group's "always" rules) confirmed
unless the report is final.  Groups sharing a partition scan it once per
distinct value and each keeps the reports of its own rules; hits go
into run.values as Run.hit puts them, captures through run._capture.
count(rule, value) counts a `multiple` rule's matches.  plan may also be
compile_plan(plan, info) (info is then not read): the compiled module
keeps the groups' rule lists and the rules' flags and confirmation
addresses in C arrays there, made once per rule set, instead of reading
the plan's and info's tuples (cold objects) per group and candidate on
every message; here it is the pair itself.  The compiled form decides once
whether a rule is confirmed by its fast item (no RE2 superset, rr.pre, at
compile time): search() answers the same with or without the superset.  With a memo
(new_memo, kept by the caller across messages), a group's results for a
value of at most MEMO_LEN bytes it has seen before (which rules matched it,
how often: a function of the value alone) are applied without scanning or
confirming again; each group's memo is bounded (MEMO_SIZE values) and
dropped for good when its values hardly repeat (fewer than one look-up in
MEMO_RATIO answered after MEMO_TRIAL).  header_rules_many walks a batch of
messages (CompiledRules.run_many) group-major: each group's databases and
rules for every message in turn, while they are in the CPU caches (~19 us
less CPU per message than header_rules one message after the other in
batches of 8); each message gets what header_rules gives it, and a message
whose walk raises gets that exception in its place.

exists_rules answers `exists:NAME` rules for plain header names: checks is
a tuple of (rule name, lower-cased header name); a name hits when the
message has that header (headers: lower-cased name -> values) or, absent,
a metadata string of that name (strings).

fast_addresses is the shortcut of postier.content.spam.headers.
parse_header_addresses for the shapes most address headers take: a bare
address, <address>, "quoted name" <address>, plain name <address> (no
backslash, colon, semicolon, comment or nested angle brackets anywhere; in
a list no comma inside quotes, and a space after every comma), one dict
per comma-separated item as that parser gives it (phrase, user, host, address,
comment, invalid: host_invalid(host)); None for any other value.

Same API and results as the compiled module (tests run both).  Reads no
main.cf parameters.
"""

from __future__ import annotations

import re

_SEP = b"\x00"
_TAIL = b"\x00\x00"


# the memo of header_rules (new_memo): values this long or shorter are
# remembered; a group's memo is emptied when it holds MEMO_SIZE values; after
# MEMO_TRIAL look-ups a group whose memo answered fewer than one in
# MEMO_RATIO of them stops using it (a header whose values hardly repeat)
MEMO_LEN = 128
MEMO_SIZE = 128
MEMO_TRIAL = 512
MEMO_RATIO = 8


def new_memo(groups: int) -> list:
    """An empty memo for header_rules over a plan of `groups` groups: per
    group [value -> its rules' results, look-ups, answers], or None once
    the group stops using it."""
    return [[{}, 0, 0] for _ in range(groups)]


def compile_plan(plan: list, info: list) -> tuple:
    """header_rules' plan argument made once per rule set (see the module
    docstring): here (plan, info) as tuples.  IndexError when a group names
    a rule info does not have."""
    n = len(info)
    for g in plan:
        for i in (*g[2], *g[3], *g[4]):
            if not 0 <= i < n:
                raise IndexError(f"header plan: rule index {i} out of range")
    return (tuple(plan), tuple(info))


def header_rules(run, plan, info, vals: list, pdbs: list, count, on_match,
                 on_first, terminated, memo: list | None = None) -> None:
    """Run._headers' walk (see the module docstring).  plan: per group
    (if-unset, names hit when undefined, rules, "always" rules (sorted: a
    value nothing reported confirms them in that order), negated rules,
    direct, skip solo databases, partition, members); info: per rule
    (name, final, negated, multiple, capture, RRule[, fast]; fast: what
    the compiled module asks libpcre2 or RE2 with (engine._pcre2_fast), or
    None; unused here: RRule.search makes the same call).  Groups sharing a
    partition (members: their rules as a set, else None) scan it once per
    distinct value.  memo (new_memo, kept by the caller across messages):
    a group's results for a value it has seen before (the rules that
    matched it and their counts: a function of the value alone) are
    applied without scanning or confirming again.  (The batch walk of
    one run, its error raised.)"""
    e = _walk_many([run], plan, info, [vals], pdbs, count, on_match, on_first,
                   terminated, memo)[0]
    if e is not None:
        raise e


def header_rules_many(runs: list, plan, info, valss: list, pdbs: list, count, on_match,
                      on_first, terminated, memo: list | None = None) -> list:
    """header_rules(runs[j], ..., valss[j], ...) of each run, walked
    group-major: each group's databases and rules for every run in turn
    while they are in the CPU caches, then the next group.  Each run gets
    what header_rules gives it alone (the memo's results are functions of
    the values).  Per run None, or the exception its walk raised (its
    later groups are not walked; the other runs go on)."""
    return _walk_many(runs, plan, info, valss, pdbs, count, on_match, on_first, terminated,
                      memo)


def _walk_many(runs: list, plan, info, valss: list, pdbs: list, count, on_match, on_first,
               terminated, memo: list | None) -> list:
    if isinstance(plan, tuple):
        plan, info = plan
    nr = len(runs)
    if len(valss) != nr:
        raise ValueError("header_rules_many: one vals per run")
    errs: list = [None] * nr
    scanneds: list = [{} for _ in range(nr)]
    valuess = [r.values for r in runs]
    npd = len(pdbs)
    for part, g in enumerate(plan):
        for j in range(nr):
            if errs[j] is not None:
                continue
            try:
                _group(runs[j], valuess[j], info, part, g, valss[j][part], pdbs, npd, count,
                       on_match, on_first, terminated, memo, scanneds[j])
            except Exception as e:  # noqa: BLE001 - that run's result
                errs[j] = e
    return errs


def _group(run, values: dict, info, part: int, g: tuple, val, pdbs: list, npd: int, count,
           on_match, on_first, terminated, memo: list | None, scanned: dict) -> None:
    """One group of header_rules' walk on one message's value (scanned:
    that message's partitions scanned so far)."""
    unset, missing, idxs, always, negs, direct, skip, dbpart, members = g
    if val is None:
        if unset is None:
            for name in missing:
                if not values.get(name):
                    values[name] = 1
            return
        val = unset
    mem = None
    if memo is not None:
        ment = memo[part]
        if ment is not None and len(val) <= MEMO_LEN:
            mem = ment[0]
            res = mem.get(val)
            ment[1] += 1
            if res is not None:
                ment[2] += 1
                _apply(run, values, info, negs, res, val)
                return
    if direct or _SEP in val:
        hits = None                 # a NUL: no joined form; every rule is a candidate
        cand = idxs
    else:
        got = scanned.get(dbpart) if members is not None else None
        if got is not None and got[0] == val:
            found = got[1]
        else:
            found = set()
            if 0 <= dbpart < npd:
                pairs, solos = pdbs[dbpart]
                buf = _SEP + val + _TAIL
                # Database.scan(data, handler, flags, context, scratch), positional
                for d, sc in pairs:
                    d.scan(buf, on_match, 0, found, sc)
                if not skip:
                    for d, sc in solos:
                        try:
                            d.scan(buf, on_first, 0, found, sc)
                        except terminated:
                            pass
            if members is not None:
                scanned[dbpart] = (val, found)
        hits = found if members is None else found & members
        if always and not hits:
            cand = always               # sorted (CompiledRules.header_plan)
        else:
            cand = hits.union(always) if always else hits
            if len(cand) > 1:
                cand = sorted(cand)
    res = []
    for i in cand:
        final, multiple, rr = info[i][1], info[i][3], info[i][5]
        if final and hits is not None and i in hits:
            n = 1
        elif multiple:
            n = count(rr, val)
        else:
            n = 1 if rr.search(val) else 0
        if n:
            res.append((i, n))
    res = tuple(res)
    _apply(run, values, info, negs, res, val)
    if mem is not None:
        if len(mem) >= MEMO_SIZE:
            mem.clear()
        mem[val] = res
        if ment[1] >= MEMO_TRIAL and ment[2] * MEMO_RATIO < ment[1]:
            memo[part] = None       # its values hardly repeat: no more look-ups


def _apply(run, values: dict, info: list, negs: tuple, res: tuple, val: bytes) -> None:
    """A group's results res ((rule, count) of each rule that matched val,
    in rule order) into run.values as Run.hit puts them (captures through
    run._capture); the negated rules that did not match hit."""
    matched = None
    for i, n in res:
        name, _final, negate, multiple, capture, rr = info[i][:6]
        if negate:
            if matched is None:
                matched = set()
            matched.add(i)
        else:
            if multiple:
                values[name] = values.get(name, 0) + n
            elif not values.get(name):
                values[name] = 1
            if capture:
                run._capture(rr, val)
    for i in negs:
        if matched is None or i not in matched:
            name = info[i][0]
            if not values.get(name):
                values[name] = 1


def exists_rules(headers: dict, strings: dict, checks: tuple) -> list:
    """The rule names of checks whose header the message has (or whose
    name has a metadata string)."""
    out = []
    for name, lc in checks:
        if headers.get(lc) or strings.get(lc) is not None:
            out.append(name)
    return out


# Perl's \s (ASCII: re.ASCII's \s), and the address shapes fast_addresses takes
_WS = " \t\n\r\f\v"
_USER = r"""([^\s"<>()\[\],:;@\\]+)@([A-Za-z0-9._-]+)"""
_FAST_BARE = re.compile(r"\s*" + _USER, re.A)
_FAST_ANGLE = re.compile(r"\s*<" + _USER + r">", re.A)
_FAST_QUOTED = re.compile(r"""\s*"([^"\\:\r\n]*)"([ \t]*)<""" + _USER + r">", re.A)
_FAST_NAMED = re.compile(r"""\s*([^\s"<>()\[\],:;@\\][^"<>()\[\],:;@\\\r\n]*)<""" + _USER + r">",
                         re.A)
_COMMA_TIGHT = re.compile(r",\S", re.A)


def _fast_one(s: str, host_invalid) -> dict | None:
    phrase = None
    c = s.lstrip(_WS)[:1]           # the one shape that can match, by its first character
    if c == "<" or "<" not in s:
        m = (_FAST_ANGLE if c == "<" else _FAST_BARE).fullmatch(s)
        if m is None:
            return None
        user, host = m.group(1), m.group(2)
    elif c == '"':
        m = _FAST_QUOTED.fullmatch(s)
        if m is None:
            return None
        phrase = m.group(1) + m.group(2)
        user, host = m.group(3), m.group(4)
    else:
        m = _FAST_NAMED.fullmatch(s)
        if m is None:
            return None
        phrase = m.group(1)
        user, host = m.group(2), m.group(3)
    address = user + "@" + host
    if phrase == "" or phrase == address:
        phrase = None
    return {"phrase": phrase, "user": user, "host": host, "address": address, "comment": None,
            "invalid": host_invalid(host)}


def fast_addresses(s: str, host_invalid) -> list | None:
    """parse_header_addresses' answer for the common shapes (see the
    module docstring), or None for anything else."""
    s = s.rstrip(_WS)
    if "," not in s:
        one = _fast_one(s, host_invalid)
        return None if one is None else [one]
    if _COMMA_TIGHT.search(s):
        return None     # "<a>,<b>": the general parser's \S+ spans both
    items = s.split(",")
    if '"' in s and any(item.count('"') & 1 for item in items):
        return None     # a comma inside quotes (_fast_one takes one leading "name" only)
    out = []
    for item in items:
        one = _fast_one(item.rstrip(_WS), host_invalid)
        if one is None:
            return None
        out.append(one)
    return out


MAX_HEADER_LENGTH = 65536      # (postier._pure.spammime.all_headers' bound)


def all_value(order: list[bytes], headers: dict[str, list[bytes]]) -> tuple[bytes, list[int]] | None:
    """The ALL header value in one piece: b"".join(spammime.all_headers(order,
    headers, False)) -- each field's b"Name: value\\n" line in order, the n-th
    field of a name taking headers[lower-cased name][n] -- and the offsets
    in it of the lines whose first 9 bytes, ASCII-lower-cased, are
    b"received:"; None past MAX_HEADER_LENGTH (all_headers' None)."""
    seen: dict[str, int] = {}
    out = []
    starts = []
    size = 0
    pos = 0
    for k in order:
        key = k.decode("latin-1").lower()
        j = seen.get(key, 0)
        seen[key] = j + 1
        vals = headers.get(key)
        if vals is None or j >= len(vals):
            continue
        line = k + b": " + vals[j] + b"\n"
        size += len(key) + len(vals[j]) + 3
        if line[:9].lower() == b"received:":
            starts.append(pos)
        pos += len(line)
        out.append(line)
    if size > MAX_HEADER_LENGTH:
        return None
    return b"".join(out), starts


def line_after_received(data: bytes, name: bytes) -> bool:
    """/^Received:.*?^NAME:/msi on a header block: is there a NAME: line
    after the first Received: line (A-Z folded to a-z, as /i does on
    bytes)?  name: lower-case ASCII."""
    low = data.lower()
    if low.startswith(b"received:"):
        start = 9
    else:
        i = low.find(b"\nreceived:")
        if i < 0:
            return False
        start = i + 10
    # a line start at or after start (its newline at start-1 or later)
    return low.find(b"\n" + name + b":", start - 1) >= 0


def all_raw(ph: bytes) -> bytes | None:
    """get("ALL:raw")'s joined value when its lines tile the header block:
    ph (the pristine header block) without the empty line ending it, when
    that is not empty, starts with no space, tab or newline, ends in a
    newline and holds no empty line; else None."""
    if ph.endswith(b"\n\n"):
        ph = ph[:-1]
    if ph and ph[0] not in b" \t\n" and ph.endswith(b"\n") and b"\n\n" not in ph:
        return ph
    return None


def _line_out(line, getaddr: bool, getraw: bool, addrs: dict, host_check, line_out) -> tuple:
    """A header line's addresses (getaddr), raw display names (getraw) or
    display names: a common shape (fast_addresses, its parse kept in addrs
    by the line stripped of ASCII white space) answered here, a display
    name only when plain ASCII (one space for each white-space run,
    stripped, '...' unquoted); else line_out(line, getaddr, getraw)."""
    if line.__class__ is not bytes:
        return line_out(line, getaddr, getraw)
    key = line.strip()
    parsed = addrs.get(key)
    if parsed is None:
        parsed = fast_addresses(line.decode("latin-1"), host_check)
        if parsed is None:
            return line_out(line, getaddr, getraw)
        addrs[key] = parsed
    out = []
    for a in parsed:
        if getaddr:
            if a["address"] is not None:
                out.append(a["address"].encode("latin-1"))
            continue
        ph = a["phrase"]
        if ph is None:
            continue
        if getraw:
            out.append(ph.encode("latin-1"))
        elif ph.isascii() and "\n" not in ph and "=?" not in ph:
            dec = ph.encode("ascii")
            words = dec.split()
            if words:
                dec = b" ".join(words)
                if len(dec) > 1 and dec[0] == 39 and dec[-1] == 39:
                    dec = dec[1:-1]
            out.append(dec)
        else:
            return line_out(line, getaddr, getraw)
    return tuple(out)


def fast_answer(raw_headers: dict, headers: dict, strings: dict | None, kind: tuple,
                memos: tuple, memo_len: int, memo_size: int, addrs: dict, host_check,
                line_out) -> list:
    """HeaderView.get()'s lines for a plain header name with modifiers of
    :raw, :addr, :name, :first, :last only (kind: headers._fast_kind's
    tuple: name, lower-cased name, stripped, raw, addr, name, first, last):
    the raw values (addr/name/raw) or the decoded ones with a newline, else
    the metadata string of the name (strings; [] without one), the first or
    last one kept, then for addr/name each line's answer from memos[0]
    (addr), memos[1] (name:raw) or memos[2] (name), else _line_out's
    (fast_addresses with host_check, parses kept in addrs; line_out(line,
    getaddr, getraw) for the other lines), remembered for a line of at
    most memo_len bytes (a memo holding memo_size lines is emptied first)."""
    raw, getaddr, getname, first, last = kind[3], kind[4], kind[5], kind[6], kind[7]
    if raw or getaddr or getname:
        res = raw_headers.get(kind[2])
        if res:
            res = list(res)
    else:
        res = headers.get(kind[1])
        if res:
            res = [v + b"\n" for v in res]
    if not res:
        m = strings.get(kind[1]) if strings else None
        if m is None:
            return []
        res = [m]
    if first:
        res = res[:1]
    elif last:
        res = res[-1:]
    if getaddr or getname:
        memo = memos[0 if getaddr else (1 if raw else 2)]
        out: list = []
        for line in res:
            got = memo.get(line)
            if got is None:
                got = _line_out(line, getaddr, raw, addrs, host_check, line_out)
                if len(line) <= memo_len:
                    if len(memo) >= memo_size:
                        memo.clear()
                    memo[line] = got
            out += got
        res = out
    return [x for x in res if x is not None]


def fast_values(raw_headers: dict, headers: dict, strings: dict | None, items: tuple,
                cache: dict, values: dict, out: list, memos: tuple, memo_len: int,
                memo_size: int, addrs: dict, host_check, line_out) -> None:
    """For each (index, request, kind) of items: out[index] = the request's
    joined value (values[request] when it is there, else fast_answer's
    lines -- cache[request], made and stored when missing -- joined with a
    newline between them unless the first ends in one, None for none;
    stored in values)."""
    for i, request, kind in items:
        v = values.get(request, values)
        if v is values:
            r = cache.get(request)
            if r is None:
                r = cache[request] = fast_answer(raw_headers, headers, strings, kind, memos,
                                                 memo_len, memo_size, addrs, host_check, line_out)
            v = values[request] = (b"" if r[0].endswith(b"\n") else b"\n").join(r) if r else None
        out[i] = v


def store_plain(values: dict, requests: tuple, names: tuple, out: list, plain: tuple,
                strings: dict | None) -> None:
    """HeaderView.values' plain header names (plain: their indexes): an
    absent one (out[i] None) takes the metadata string of its name
    (strings.get(names[i]), when strings is not empty), and each
    out[i] is stored as values[requests[i]]."""
    for i in plain:
        v = out[i]
        if v is None and strings:
            v = out[i] = strings.get(names[i])
        values[requests[i]] = v
