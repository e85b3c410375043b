# cython: language_level=3, boundscheck=False, wraparound=False
"""The spam engine's header-rule walk, compiled (twin: postier._pure.spamhdr).

Same API and results as the pure module (see its docstring): header_rules
(Run._headers' loop over CompiledRules.header_plan: Hyperscan databases
called directly, a partition shared by several groups scanned once per
distinct value, reported rules confirmed, hits into run.values) and
exists_rules (the `exists:NAME` rules of plain header names).  Reads no
main.cf parameters.
"""

cdef bytes _SEP = b"\x00"
cdef bytes _TAIL = b"\x00\x00"


def header_rules(run, list plan, list info, list vals, list pdbs, count, on_match,
                 on_first, terminated):
    """Run._headers' walk (see postier._pure.spamhdr.header_rules)."""
    cdef dict values = run.values
    cdef Py_ssize_t npd = len(pdbs)
    cdef Py_ssize_t part, k, dbpart
    cdef tuple g, rinfo, pd, got
    cdef object val, unset, name, rr, n, cand, d, sc, members
    cdef bytes buf
    cdef set found, hits, matched
    cdef dict scanned = {}
    cdef tuple idxs, always, negs, missing, pairs, solos
    cdef bint direct, skip, final, negate, multiple, capture, checked
    cdef Py_ssize_t i
    for part in range(len(plan)):
        g = <tuple>plan[part]
        unset, missing, idxs, always, negs, direct, skip, dbpart, members = g
        val = vals[part]
        if val is None:
            if unset is None:
                for name in missing:
                    if not values.get(name):
                        values[name] = 1
                continue
            val = unset
        if direct or _SEP in <bytes>val:
            checked = False             # a NUL: no joined form; every rule is a candidate
            hits = None
            cand = idxs
        else:
            got = None
            if members is not None:
                got = <tuple>scanned.get(dbpart)
            if got is not None and got[0] == val:
                found = <set>got[1]
            else:
                found = set()
                if 0 <= dbpart < npd:
                    pd = <tuple>pdbs[dbpart]
                    pairs = <tuple>pd[0]
                    solos = <tuple>pd[1]
                    buf = _SEP + <bytes>val + _TAIL
                    for k in range(len(pairs)):
                        d, sc = <tuple>pairs[k]
                        d.scan(buf, on_match, 0, found, sc)
                    if not skip:
                        for k in range(len(solos)):
                            d, sc = <tuple>solos[k]
                            try:
                                d.scan(buf, on_first, 0, found, sc)
                            except terminated:
                                pass
                if members is not None:
                    scanned[dbpart] = (val, found)
            checked = True
            if members is None:
                hits = found
            else:
                hits = found & members
            if always:
                cand = hits.union(always)
            else:
                cand = hits
            if len(cand) > 1:
                cand = sorted(cand)
        matched = None
        for i in cand:
            rinfo = <tuple>info[i]
            name = rinfo[0]
            final = rinfo[1]
            negate = rinfo[2]
            multiple = rinfo[3]
            capture = rinfo[4]
            rr = rinfo[5]
            if final and checked and i in hits:
                n = 1
            elif multiple:
                n = count(rr, val)
            else:
                n = 1 if rr.search(val) else 0
            if not n:
                continue
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
                name = (<tuple>info[i])[0]
                if not values.get(name):
                    values[name] = 1


def exists_rules(dict headers, strings, tuple checks):
    """The rule names of checks whose header the message has (or whose
    name has a metadata string)."""
    cdef list out = []
    cdef tuple c
    for c in checks:
        if headers.get(c[1]) or strings.get(c[1]) is not None:
            out.append(c[0])
    return out
