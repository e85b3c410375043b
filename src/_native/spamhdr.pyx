# cython: language_level=3, boundscheck=False, wraparound=False
"""The spam engine's header-rule walk, compiled (twin: postier._pure.spamhdr).

Same API and results as the pure module (see its docstring): header_rules
(Run._headers' loop over CompiledRules.header_plan: Hyperscan databases
called directly, a partition shared by several groups scanned once per
distinct value, reported rules confirmed, hits into run.values),
compile_plan (the plan and rule information in C arrays, _Plan, made once
per rule set: the walk reads each group's rule lists and each rule's flags
and confirmation addresses there instead of from tuples, cold objects
touched per group and candidate on every message; a list plan is compiled
on each call), header_rules_many (header_rules of a batch of messages,
group-major: each group's databases and rules for every message in turn,
one _group call each) and
exists_rules (the `exists:NAME` rules of plain header names); new_memo
(header_rules' memo across messages: a group's results for a short value
seen before, applied without scanning or confirming).  Reads no
main.cf parameters.  A rule whose answer is libpcre2's (info's 7th item:
pcre2_match_8's address, the pattern's code and match data addresses,
the Pcre2Regex, newline-only) is confirmed by calling pcre2_match_8
directly when the rule had no RE2 superset (rule.pre) as the plan was
compiled and, newline-only, on a value ending in a newline; an item
(0, 0, 0, pattern, False) asks the pattern's RE2 regex directly
(pattern._re2.contains, its bound method kept once asked) under the same
condition.  The twin calls the rule's search(): the same answer.  The
scanned form of a value (NUL + value + two NULs) is built in one
allocation and a NUL in the value is found with memchr; a value nothing
reported confirms its group's "always" rules (sorted by the plan) as
they are, without a union and a sort.
fast_addresses (the common address-header shapes of headers.
parse_header_addresses) scans the value character by character where the
twin uses its anchored regexes: the same dicts, or None.  all_value (the
ALL header value and its Received lines' offsets) copies each line into
one allocation; line_after_received and all_raw find newlines with
memchr; fast_values / fast_answer (HeaderView's plain header names
with :raw/:addr/:name/:first/:last) walk a request list in one call,
calling back into Python only for a header line's addresses not yet
remembered; store_plain keeps HeaderView.values' plain header values.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcpy, memset

ctypedef int (*_pcre2_match_fn)(const void *code, const char *subject, size_t length,
                                size_t start, uint32_t options, void *match_data,
                                void *context) noexcept nogil

cdef bytes _SEP = b"\x00"
cdef bytes _TAIL = b"\x00\x00"


# header_rules' memo (postier._pure.spamhdr: the same bounds)
cdef enum:
    _MEMO_LEN = 128
    _MEMO_SIZE = 128
    _MEMO_TRIAL = 512
    _MEMO_RATIO = 8

MEMO_LEN = _MEMO_LEN
MEMO_SIZE = _MEMO_SIZE
MEMO_TRIAL = _MEMO_TRIAL
MEMO_RATIO = _MEMO_RATIO


def new_memo(Py_ssize_t groups):
    """See postier._pure.spamhdr.new_memo."""
    return [[{}, 0, 0] for _ in range(groups)]


cdef bytes _joined_buf(bytes val, Py_ssize_t n):
    """b"\\x00" + val + b"\\x00\\x00" in one allocation (the joined form scanned)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + 3)
    cdef char *o = PyBytes_AS_STRING(out)
    o[0] = 0
    memcpy(o + 1, PyBytes_AS_STRING(val), n)
    o[n + 1] = 0
    o[n + 2] = 0
    return out


# ---------------------------------------------------------------- compiled plan

cdef enum:
    _K_SEARCH = 0       # rr.search(value)
    _K_COUNT = 1        # count(rr, value): a `multiple` rule
    _K_RE2 = 2          # the pattern's RE2 regex alone (pattern._re2.contains)
    _K_PCRE2 = 3        # pcre2_match_8 through the fast item's addresses


cdef struct _RuleC:
    PyObject *name
    PyObject *rr
    PyObject *pattern           # _K_RE2: the pattern whose _re2 answers
    size_t fn, code, md         # _K_PCRE2: pcre2_match_8, the code, the match data
    unsigned char final, negate, multiple, capture, kind, nl_only


cdef struct _GroupC:
    PyObject *unset             # bytes, or None
    PyObject *missing           # tuple of names
    PyObject *members           # frozenset, or None
    Py_ssize_t idx, nidx        # offsets into _Plan.arr
    Py_ssize_t always, nalways
    Py_ssize_t negs, nnegs
    Py_ssize_t dbpart
    unsigned char direct, skip


cdef class _Plan:
    """header_rules' plan and rule information in C arrays (compile_plan):
    the walk reads a group's rule lists and a rule's flags and confirmation
    addresses from here instead of from the plan's and info's tuples (one
    cold object each, per group and per candidate, on every message).  It
    holds the plan's and info's tuples, so the borrowed pointers stay valid."""
    cdef tuple groups, infos, ints
    cdef list re2c                  # per rule: its RE2 regex's bound contains, once asked
    cdef _RuleC *rules
    cdef _GroupC *gs
    cdef Py_ssize_t *arr
    cdef Py_ssize_t ngroups, nrules

    def __cinit__(self):
        self.rules = NULL
        self.gs = NULL
        self.arr = NULL

    def __dealloc__(self):
        free(self.rules)
        free(self.gs)
        free(self.arr)

    def __init__(self, list plan, list info):
        cdef Py_ssize_t i, k, n, total = 0
        cdef tuple g, it, ft
        cdef _RuleC *R
        cdef _GroupC *G
        cdef object rr, fast
        self.groups = tuple(plan)
        self.infos = tuple(info)
        self.ngroups = len(self.groups)
        self.nrules = len(self.infos)
        self.ints = tuple(range(self.nrules))
        self.re2c = [None] * self.nrules
        self.rules = <_RuleC *>malloc(sizeof(_RuleC) * (self.nrules or 1))
        self.gs = <_GroupC *>malloc(sizeof(_GroupC) * (self.ngroups or 1))
        if self.rules == NULL or self.gs == NULL:
            raise MemoryError()
        for i in range(self.nrules):
            it = <tuple>self.infos[i]
            R = &self.rules[i]
            memset(R, 0, sizeof(_RuleC))
            R.name = <PyObject *>it[0]
            rr = it[5]
            R.rr = <PyObject *>rr
            R.final = bool(it[1])
            R.negate = bool(it[2])
            R.multiple = bool(it[3])
            R.capture = bool(it[4])
            fast = it[6] if len(it) > 6 else None
            if R.multiple:
                R.kind = _K_COUNT
            elif fast is not None and rr.pre is None:
                # (a superset, rr.pre, only rules values out before the
                # exact engine: search() gives the same answer without it)
                ft = <tuple>fast
                if not ft[0]:
                    R.kind = _K_RE2
                    R.pattern = <PyObject *>ft[3]
                else:
                    R.kind = _K_PCRE2
                    R.fn = ft[0]
                    R.code = ft[1]
                    R.md = ft[2]
                    R.nl_only = bool(ft[4])
            else:
                R.kind = _K_SEARCH
        for g in self.groups:
            total += len(<tuple>g[2]) + len(<tuple>g[3]) + len(<tuple>g[4])
        self.arr = <Py_ssize_t *>malloc(sizeof(Py_ssize_t) * (total or 1))
        if self.arr == NULL:
            raise MemoryError()
        n = 0
        for k in range(self.ngroups):
            g = <tuple>self.groups[k]
            G = &self.gs[k]
            G.unset = <PyObject *>g[0]
            G.missing = <PyObject *>g[1]
            G.members = <PyObject *>g[8]
            G.direct = bool(g[5])
            G.skip = bool(g[6])
            G.dbpart = g[7]
            G.idx = n
            n = self._copy_ids(<tuple>g[2], n)
            G.nidx = n - G.idx
            G.always = n
            n = self._copy_ids(<tuple>g[3], n)
            G.nalways = n - G.always
            G.negs = n
            n = self._copy_ids(<tuple>g[4], n)
            G.nnegs = n - G.negs

    cdef Py_ssize_t _copy_ids(self, tuple ids, Py_ssize_t n) except -1:
        """The rule indexes of ids into arr from n on (each checked); the next n."""
        for i in ids:
            self._rule_index(i)
            self.arr[n] = i
            n += 1
        return n

    cdef int _rule_index(self, Py_ssize_t i) except -1:
        if i < 0 or i >= self.nrules:
            raise IndexError("header plan: rule index %d out of range" % i)
        return 0

    def __len__(self):
        return self.ngroups


def compile_plan(list plan, list info):
    """See postier._pure.spamhdr.compile_plan."""
    return _Plan(plan, info)


cdef void _apply(run, dict values, _Plan cp, Py_ssize_t negs, Py_ssize_t nnegs, tuple res,
                   object val) except *:
    """A group's results into run.values (postier._pure.spamhdr._apply), with the
    rule flags of the compiled plan."""
    cdef tuple item
    cdef object name, n
    cdef Py_ssize_t i, k, j, nmatched = 0
    cdef _RuleC *R
    cdef Py_ssize_t matched[8]
    cdef set more = None
    for item in res:
        i = item[0]
        n = item[1]
        R = &cp.rules[i]
        name = <object>R.name
        if R.negate:
            if nmatched < 8:
                matched[nmatched] = i
                nmatched += 1
            else:
                if more is None:
                    more = set()
                more.add(i)
        else:
            if R.multiple:
                values[name] = values.get(name, 0) + n
            elif not values.get(name):
                values[name] = 1
            if R.capture:
                run._capture(<object>R.rr, val)
    for k in range(nnegs):
        i = cp.arr[negs + k]
        for j in range(nmatched):
            if matched[j] == i:
                break
        else:
            if more is None or i not in more:
                name = <object>cp.rules[i].name
                if not values.get(name):
                    values[name] = 1


cdef inline void _isort(Py_ssize_t *a, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i, j, x
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


cdef int _group(run, dict values, _Plan cp, Py_ssize_t part, object val, list pdbs, count,
                on_match, on_first, terminated, list memo, dict scanned, Py_ssize_t *cbuf,
                unsigned char *mark) except -1:
    """One group of header_rules' walk on one message's value (scanned: that
    message's partitions scanned so far)."""
    cdef Py_ssize_t npd = len(pdbs)
    cdef Py_ssize_t k, ncand, i, vlen
    cdef tuple pd, got, pairs, solos, rtup
    cdef object name, n, d, sc, members, cached, c, obj
    cdef int rc
    cdef bytes buf
    cdef set found
    cdef dict mem
    cdef list ment, res
    cdef tuple ints = cp.ints
    cdef list re2c = cp.re2c
    cdef bint checked
    cdef _GroupC *G = &cp.gs[part]
    cdef _RuleC *R
    if val is None:
        if <object>G.unset is None:
            for name in <tuple>G.missing:
                if not values.get(name):
                    values[name] = 1
            return 0
        val = <object>G.unset
    mem = None
    ment = None
    if memo is not None:
        cached = memo[part]
        if cached is not None and len(<bytes>val) <= _MEMO_LEN:
            ment = <list>cached
            mem = <dict>ment[0]
            ment[1] += 1
            cached = mem.get(val)
            if cached is not None:
                ment[2] += 1
                _apply(run, values, cp, G.negs, G.nnegs, <tuple>cached, val)
                return 0
    vlen = PyBytes_GET_SIZE(<bytes>val)
    ncand = 0
    if G.direct or memchr(PyBytes_AS_STRING(<bytes>val), 0, vlen) != NULL:
        checked = False             # a NUL: no joined form; every rule is a candidate
        for k in range(G.nidx):
            cbuf[ncand] = cp.arr[G.idx + k]
            ncand += 1
    else:
        members = <object>G.members
        got = None
        if members is not None:
            got = <tuple>scanned.get(G.dbpart)
        if got is not None and got[0] == val:
            found = <set>got[1]
        else:
            found = set()
            if 0 <= G.dbpart < npd:
                pd = <tuple>pdbs[G.dbpart]
                pairs = <tuple>pd[0]
                solos = <tuple>pd[1]
                buf = _joined_buf(<bytes>val, vlen)
                for k in range(len(pairs)):
                    d, sc = <tuple>pairs[k]
                    d.scan(buf, on_match, 0, found, sc)
                if not G.skip:
                    for k in range(len(solos)):
                        d, sc = <tuple>solos[k]
                        try:
                            d.scan(buf, on_first, 0, found, sc)
                        except terminated:
                            pass
            if members is not None:
                scanned[G.dbpart] = (val, found)
        checked = True
        # the candidates: the reports of the group's rules (2: reported)
        # and its "always" rules (1), in rule order
        for obj in found:
            if members is not None and obj not in members:
                continue
            i = obj
            cp._rule_index(i)
            if not mark[i]:
                mark[i] = 2
                cbuf[ncand] = i
                ncand += 1
        for k in range(G.nalways):
            i = cp.arr[G.always + k]
            if not mark[i]:
                mark[i] = 1
                cbuf[ncand] = i
                ncand += 1
        _isort(cbuf, ncand)
    res = []
    try:
        for k in range(ncand):
            i = cbuf[k]
            R = &cp.rules[i]
            if R.final and checked and mark[i] == 2:
                n = 1
            elif R.kind == _K_COUNT:
                n = count(<object>R.rr, val)
            elif R.kind == _K_PCRE2:
                if R.nl_only and not (<bytes>val).endswith(b"\n"):
                    n = 1 if (<object>R.rr).search(val) else 0
                else:
                    rc = (<_pcre2_match_fn>R.fn)(<const void *>R.code,
                                                 <const char *>PyBytes_AS_STRING(<bytes>val),
                                                 vlen, 0, 0, <void *>R.md, NULL)
                    if rc >= 0:
                        n = 1
                    elif rc == -1:          # PCRE2_ERROR_NOMATCH
                        n = 0
                    else:                   # an error: the rule itself handles it
                        n = 1 if (<object>R.rr).search(val) else 0
            elif R.kind == _K_RE2:
                c = re2c[i]
                if c is None:
                    c = re2c[i] = (<object>R.pattern)._re2.contains
                n = 1 if c(val) else 0
            else:
                n = 1 if (<object>R.rr).search(val) else 0
            if n:
                res.append((ints[i], n))
    finally:
        for k in range(ncand):
            mark[cbuf[k]] = 0
    rtup = tuple(res)
    _apply(run, values, cp, G.negs, G.nnegs, rtup, val)
    if mem is not None:
        if len(mem) >= _MEMO_SIZE:
            mem.clear()
        mem[val] = rtup
        if <Py_ssize_t>ment[1] >= _MEMO_TRIAL and <Py_ssize_t>ment[2] * _MEMO_RATIO < <Py_ssize_t>ment[1]:
            memo[part] = None       # its values hardly repeat: no more look-ups
    return 0


cdef _Plan _as_plan(plan, info):
    if type(plan) is _Plan:
        return <_Plan>plan
    return _Plan(plan, info)


cdef Py_ssize_t *_work(_Plan cp) except NULL:
    """The walk's work space, one block (one free): nrules candidate
    slots, then nrules marks, zeroed."""
    cdef Py_ssize_t n = cp.nrules or 1
    cdef Py_ssize_t *w = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + n)
    if w == NULL:
        raise MemoryError()
    memset(<unsigned char *>(w + n), 0, n)
    return w


def header_rules(run, plan, info, list vals, list pdbs, count, on_match,
                 on_first, terminated, list memo=None):
    """Run._headers' walk (see postier._pure.spamhdr.header_rules): the
    batch walk of one run, its error raised."""
    cdef object e = header_rules_many([run], plan, info, [vals], pdbs, count, on_match,
                                      on_first, terminated, memo)[0]
    if e is not None:
        raise e


def header_rules_many(list runs, plan, info, list valss, list pdbs, count, on_match,
                      on_first, terminated, list memo=None):
    """header_rules of each run (valss: the runs' vals) group-major (see
    postier._pure.spamhdr.header_rules_many); per run None, or the
    exception its walk raised (its later groups are not walked)."""
    cdef _Plan cp = _as_plan(plan, info)
    cdef Py_ssize_t nr = len(runs), part, j
    cdef list errs = [None] * nr
    cdef list valuess = [None] * nr
    cdef list scanneds = [{} for _ in range(nr)]
    cdef list vals
    cdef object v
    cdef Py_ssize_t *cbuf
    cdef unsigned char *mark
    if len(valss) != nr:
        raise ValueError("header_rules_many: one vals per run")
    for j in range(nr):
        # (header_rules' own argument checks, per run)
        v = runs[j].values
        if type(v) is not dict:
            errs[j] = TypeError("run.values: expected dict, got %s" % type(v).__name__)
        elif type(valss[j]) is not list:
            errs[j] = TypeError("vals: expected list, got %s" % type(valss[j]).__name__)
        elif len(<list>valss[j]) < cp.ngroups:
            errs[j] = IndexError("header_rules: fewer values than groups")
        valuess[j] = v
    cbuf = _work(cp)
    mark = <unsigned char *>(cbuf + (cp.nrules or 1))
    try:
        for part in range(cp.ngroups):
            for j in range(nr):
                if errs[j] is not None:
                    continue
                vals = <list>valss[j]
                try:
                    _group(runs[j], <dict>valuess[j], cp, part, vals[part], pdbs, count,
                           on_match, on_first, terminated, memo, <dict>scanneds[j], cbuf, mark)
                except Exception as e:  # that run's result
                    errs[j] = e
    finally:
        free(cbuf)
    return errs


def exists_rules(dict headers, strings, tuple checks):
    """The rule names of checks whose header the message has (or whose
    name has a metadata string)."""
    cdef list out = []
    cdef tuple c
    for c in checks:
        if headers.get(c[1]) or strings.get(c[1]) is not None:
            out.append(c[0])
    return out



# ---------------------------------------------------------------- addresses
# the twin's regexes, character by character (re.ASCII: \s is [ \t\n\r\f\v])

cdef inline bint _ws(Py_UCS4 c) noexcept:
    return c == 32 or 9 <= c <= 13


cdef inline bint _user_ch(Py_UCS4 c) noexcept:
    """[^\\s"<>()\\[\\],:;@\\\\]"""
    if _ws(c):
        return False
    return not (c == 34 or c == 60 or c == 62 or c == 40 or c == 41 or c == 91 or c == 93
                or c == 44 or c == 58 or c == 59 or c == 64 or c == 92)


cdef inline bint _host_ch(Py_UCS4 c) noexcept:
    """[A-Za-z0-9._-]"""
    return (65 <= c <= 90) or (97 <= c <= 122) or (48 <= c <= 57) or c == 46 or c == 95 or c == 45


cdef inline bint _phrase_ch(Py_UCS4 c) noexcept:
    """[^"<>()\\[\\],:;@\\\\\\r\\n] (the rest of a plain name)"""
    return not (c == 34 or c == 60 or c == 62 or c == 40 or c == 41 or c == 91 or c == 93
                or c == 44 or c == 58 or c == 59 or c == 64 or c == 92 or c == 13 or c == 10)


cdef Py_ssize_t _user_host(str s, Py_ssize_t i, Py_ssize_t n, bint angle, Py_ssize_t *at):
    """USER@HOST from i to the end (angle: USER@HOST> to the end): the
    index of the '@' in at[0] and 1, or 0 when the text is not of that shape."""
    cdef Py_ssize_t j = i
    while j < n and _user_ch(s[j]):
        j += 1
    if j == i or j >= n or s[j] != "@":
        return 0
    at[0] = j
    j += 1
    cdef Py_ssize_t h = j
    while j < n and _host_ch(s[j]):
        j += 1
    if j == h:
        return 0
    if angle:
        if j != n - 1 or s[j] != ">":
            return 0
    elif j != n:
        return 0
    return 1


cdef object _fast_one(str s, object host_invalid):
    cdef Py_ssize_t n = len(s)
    cdef Py_ssize_t i = 0, j, k, at = 0
    cdef Py_UCS4 c
    cdef object phrase = None
    while i < n and _ws(s[i]):
        i += 1
    c = s[i] if i < n else 0
    if c == "<" or s.find("<") < 0:
        if c == "<":
            if not _user_host(s, i + 1, n, True, &at):
                return None
            user = s[i + 1:at]
            host = s[at + 1:n - 1]
        else:
            if not _user_host(s, i, n, False, &at):
                return None
            user = s[i:at]
            host = s[at + 1:n]
    elif c == '"':
        j = i + 1
        while j < n and s[j] != '"' and s[j] != "\\" and s[j] != ":" and s[j] != "\r" and s[j] != "\n":
            j += 1
        if j >= n or s[j] != '"':
            return None
        k = j + 1
        while k < n and (s[k] == " " or s[k] == "\t"):
            k += 1
        if k >= n or s[k] != "<" or not _user_host(s, k + 1, n, True, &at):
            return None
        phrase = s[i + 1:j] + s[j + 1:k]
        user = s[k + 1:at]
        host = s[at + 1:n - 1]
    else:
        if i >= n or not _user_ch(c):     # the name's first character: [^\\s"<>()\\[\\],:;@\\\\]
            return None
        j = i + 1
        while j < n and _phrase_ch(s[j]):
            j += 1
        if j >= n or s[j] != "<" or not _user_host(s, j + 1, n, True, &at):
            return None
        phrase = s[i:j]
        user = s[j + 1:at]
        host = s[at + 1:n - 1]
    address = user + "@" + host
    if phrase == "" or phrase == address:
        phrase = None
    return {"phrase": phrase, "user": user, "host": host, "address": address, "comment": None,
            "invalid": host_invalid(host)}


def fast_addresses(str s, host_invalid):
    """See postier._pure.spamhdr.fast_addresses."""
    cdef Py_ssize_t n, k
    cdef list out
    s = s.rstrip(" \t\n\r\f\v")
    if s.find(",") < 0:
        one = _fast_one(s, host_invalid)
        return None if one is None else [one]
    n = len(s)
    for k in range(n - 1):
        if s[k] == "," and not _ws(s[k + 1]):
            return None
    items = s.split(",")
    if s.find('"') >= 0:
        # a comma inside quotes leaves an odd count in a piece (_fast_one
        # takes one leading "name" only)
        for item in items:
            if (<str>item).count('"') & 1:
                return None
    out = []
    for item in items:
        one = _fast_one(item.rstrip(" \t\n\r\f\v"), host_invalid)
        if one is None:
            return None
        out.append(one)
    return out


# ---------------------------------------------------------------- ALL

cdef enum:
    _MAX_HEADER_LENGTH = 65536

MAX_HEADER_LENGTH = _MAX_HEADER_LENGTH

cdef const char *_RECEIVED = b"received:"
# each field name's lower-cased str (names repeat across messages; bounded)
cdef dict _LOWER_KEYS = {}


def all_value(list order, dict headers):
    """See postier._pure.spamhdr.all_value."""
    cdef dict seen = {}
    cdef list ks = [], vs = []
    cdef list starts = []
    cdef Py_ssize_t size = 0, total = 0, j, i, m, nk, nv, pos = 0
    cdef bytes k, v, out
    cdef str key
    cdef object got
    cdef char *o
    cdef unsigned char c
    for k in order:
        got = _LOWER_KEYS.get(k)
        if got is None:
            got = k.decode("latin-1").lower()
            if len(_LOWER_KEYS) >= 4096:
                _LOWER_KEYS.clear()
            _LOWER_KEYS[k] = got
        key = <str>got
        got = seen.get(key)
        j = 0 if got is None else <Py_ssize_t>got
        seen[key] = j + 1
        got = headers.get(key)
        if got is None or j >= len(<list>got):
            continue
        v = <bytes>(<list>got)[j]
        ks.append(k)
        vs.append(v)
        size += len(key) + len(v) + 3
        total += len(k) + len(v) + 3
    if size > _MAX_HEADER_LENGTH:
        return None
    out = PyBytes_FromStringAndSize(NULL, total)
    o = PyBytes_AS_STRING(out)
    for i in range(len(ks)):
        k = <bytes>ks[i]
        v = <bytes>vs[i]
        nk = PyBytes_GET_SIZE(k)
        nv = PyBytes_GET_SIZE(v)
        memcpy(o + pos, PyBytes_AS_STRING(k), nk)
        o[pos + nk] = 0x3A
        o[pos + nk + 1] = 0x20
        memcpy(o + pos + nk + 2, PyBytes_AS_STRING(v), nv)
        o[pos + nk + 2 + nv] = 10
        if nk + nv + 3 >= 9:
            for m in range(9):
                c = <unsigned char>o[pos + m]
                if 65 <= c <= 90:
                    c += 32
                if c != <unsigned char>_RECEIVED[m]:
                    break
            else:
                starts.append(pos)
        pos += nk + nv + 3
    return out, starts


cdef inline bint _folded_at(const unsigned char *p, Py_ssize_t n, Py_ssize_t at,
                            const unsigned char *lc, Py_ssize_t m) noexcept:
    """Do the m bytes at p[at:], A-Z folded to a-z, equal lc (lower case)?"""
    cdef Py_ssize_t k
    cdef unsigned char c
    if at + m > n:
        return False
    for k in range(m):
        c = p[at + k]
        if 65 <= c <= 90:
            c += 32
        if c != lc[k]:
            return False
    return True


def line_after_received(bytes data, bytes name):
    """See postier._pure.spamhdr.line_after_received."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const unsigned char *lc = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef Py_ssize_t m = PyBytes_GET_SIZE(name)
    cdef Py_ssize_t start, k
    cdef const unsigned char *q
    if _folded_at(p, n, 0, <const unsigned char *>_RECEIVED, 9):
        start = 9
    else:
        start = -1
        k = 0
        while k < n:
            q = <const unsigned char *>memchr(p + k, 10, n - k)
            if q == NULL:
                break
            k = q - p
            if _folded_at(p, n, k + 1, <const unsigned char *>_RECEIVED, 9):
                start = k + 10
                break
            k += 1
        if start < 0:
            return False
    # a newline at start-1 or later followed by NAME:
    k = start - 1
    while k < n:
        q = <const unsigned char *>memchr(p + k, 10, n - k)
        if q == NULL:
            return False
        k = q - p
        if _folded_at(p, n, k + 1, lc, m) and k + 1 + m < n and p[k + 1 + m] == 58:
            return True
        k += 1
    return False


def all_raw(bytes ph):
    """See postier._pure.spamhdr.all_raw."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(ph)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(ph)
    cdef Py_ssize_t k = 0
    cdef const unsigned char *q
    if n >= 2 and p[n - 1] == 10 and p[n - 2] == 10:
        n -= 1
    if n == 0 or p[0] == 32 or p[0] == 9 or p[0] == 10 or p[n - 1] != 10:
        return None
    while k < n - 1:
        q = <const unsigned char *>memchr(p + k, 10, n - 1 - k)
        if q == NULL:
            break
        k = q - p
        if p[k + 1] == 10:
            return None
        k += 1
    return ph if n == PyBytes_GET_SIZE(ph) else ph[:n]


# ---------------------------------------------------------------- fast answers

cdef object _line_out(object line, bint getaddr, bint getraw, dict addrs, object host_check,
                      object line_out):
    """A header line's addresses (getaddr), raw display names (getraw) or
    display names as a tuple: a common shape (fast_addresses, its parse
    kept in addrs by the line stripped of ASCII white space) answered
    here, with a display name only when plain ASCII (one space for each
    white-space run, stripped, '...' unquoted); else line_out(line,
    getaddr, getraw)."""
    cdef object key, parsed, ph, dec
    cdef list out = []
    cdef dict a
    cdef bytes b
    if type(line) is not bytes:
        return line_out(line, getaddr, getraw)
    key = (<bytes>line).strip()
    parsed = addrs.get(key)
    if parsed is None:
        parsed = fast_addresses((<bytes>line).decode("latin-1"), host_check)
        if parsed is None:
            return line_out(line, getaddr, getraw)
        addrs[key] = parsed
    for a in <list>parsed:
        if getaddr:
            if a["address"] is not None:
                out.append((<str>a["address"]).encode("latin-1"))
            continue
        ph = a["phrase"]
        if ph is None:
            continue
        if getraw:
            out.append((<str>ph).encode("latin-1"))
        elif (<str>ph).isascii() and "\n" not in <str>ph and "=?" not in <str>ph:
            b = (<str>ph).encode("ascii")
            dec = b.split()
            if dec:
                b = b" ".join(dec)
                if len(b) > 1 and b[0] == 39 and b[len(b) - 1] == 39:
                    b = b[1:len(b) - 1]
            out.append(b)
        else:
            return line_out(line, getaddr, getraw)
    return tuple(out)


cdef list _fast_answer(dict raw_headers, dict headers, object strings, tuple kind,
                       tuple memos, Py_ssize_t memo_len, Py_ssize_t memo_size, dict addrs,
                       object host_check, object line_out):
    cdef bint raw = kind[3], getaddr = kind[4], getname = kind[5]
    cdef object res, m, line, got
    cdef list lst, out
    cdef dict memo
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
    lst = <list>res
    if kind[6]:
        lst = lst[:1]
    elif kind[7]:
        lst = lst[len(lst) - 1:]
    if getaddr or getname:
        memo = <dict>memos[0 if getaddr else (1 if raw else 2)]
        out = []
        for line in lst:
            got = memo.get(line)
            if got is None:
                got = _line_out(line, getaddr, raw, addrs, host_check, line_out)
                if len(line) <= memo_len:
                    if len(memo) >= memo_size:
                        memo.clear()
                    memo[line] = got
            out.extend(got)
        lst = out
    for line in lst:
        if line is None:
            return [x for x in lst if x is not None]
    return lst


def fast_answer(dict raw_headers, dict headers, strings, tuple kind, tuple memos,
                Py_ssize_t memo_len, Py_ssize_t memo_size, dict addrs, host_check, line_out):
    """See postier._pure.spamhdr.fast_answer."""
    return _fast_answer(raw_headers, headers, strings, kind, memos, memo_len, memo_size, addrs,
                        host_check, line_out)


def fast_values(dict raw_headers, dict headers, strings, tuple items, dict cache, dict values,
                list out, tuple memos, Py_ssize_t memo_len, Py_ssize_t memo_size, dict addrs,
                host_check, line_out):
    """See postier._pure.spamhdr.fast_values."""
    cdef tuple item
    cdef object request, v, r
    cdef list lst
    for item in items:
        request = item[1]
        v = values.get(request, values)
        if v is values:
            r = cache.get(request)
            if r is None:
                r = _fast_answer(raw_headers, headers, strings, <tuple>item[2], memos, memo_len,
                                 memo_size, addrs, host_check, line_out)
                cache[request] = r
            lst = <list>r
            if not lst:
                v = None
            elif lst[0].endswith(b"\n"):
                v = b"".join(lst)
            else:
                v = b"\n".join(lst)
            values[request] = v
        out[<Py_ssize_t>item[0]] = v


def store_plain(dict values, tuple requests, tuple names, list out, tuple plain, strings):
    """See postier._pure.spamhdr.store_plain."""
    cdef object i, v
    for i in plain:
        v = out[<Py_ssize_t>i]
        if v is None and strings:
            v = strings.get(names[<Py_ssize_t>i])
            out[<Py_ssize_t>i] = v
        values[requests[<Py_ssize_t>i]] = v
