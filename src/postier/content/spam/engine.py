"""The rule engine: a parsed rule set compiled for Hyperscan, run on a message.

    cr = CompiledRules(ruleset, cache_dir="/var/lib/postier/spamrules")
    run = cr.run(message_bytes)
    run.values          # {rule: value} for every rule that hit (value: 1, hit count, eval result)
    run.score, run.hits # scored rules (not __*) with their score set 0 scores

Compilation.  Every regex rule with a non-zero score is compiled once
(postier.content.spam.perlre) and put into its area's Hyperscan databases
(postier.content.spam.hsdb): header, body, rawbody, uri, full, mimeheader.
A pattern Hyperscan takes exactly gives final answers; one it takes only as
a prefilter (or with widened repeats) is confirmed with RE2/`re`/libpcre2
on the subjects Hyperscan reported; the few it cannot take at all are
confirmed on every subject.  A rule Hyperscan reports nearly everywhere
(or a line-anchored one, whose matches Vectorscan loses in big databases)
gets a database of its own, scanned only up to its first report
(hsdb.Entry.solo).  Before a slow exact engine (Python `re`, libpcre2) runs
on a subject or on each line, a "loose" RE2 regex (perlre.re2_loose: a
superset without look-arounds, back-references or atomic groups) must
match there, on the joined buffer for the line areas; a superset that
rarely rules anything out is dropped after PRE_TRIAL subjects.  Rules whose
regex uses a capture template (%{TAG}) run once the tag is known, with the
regex built from each message's values (SpamAssassin's /o keeps the first
message's: see Run._templates).  Meta
rules are compiled into one postfix program, evaluated in dependency order
by postier._native.spammeta (its pure twin writes the same program out as
one Python function).

The translation of each regex rule (_translate: Hyperscan expressions,
flags, exactness, RE2/`re` sources, the joined-buffer form of every line
area rule, engine choice) is a record of plain values cached in the
cache directory by postier.content.spam.rulecache;
rules are always built from records (CompiledRules._add_regex), so a warm
start reads files; CompiledRules.prepare (run by the constructor) then
compiles the regex objects and joined / loose forms of the rules whose
Hyperscan report is not the answer, the Hyperscan scratch spaces and the
evals' tables, so that scanning processes forked afterwards share them
(what stays lazy depends on the messages: RE2's DFA states, the %{TAG}
template regexes -- compiled with libpcre2 alone,
perlre.compile_search_pattern).  Where
RE2 cannot answer (back-references, look-behinds), JIT-compiled libpcre2
answers before Python `re` (rulecache.LazyPattern).  A header group of at
most SMALL_GROUP plain RE2 rules skips Hyperscan (one call costs more than
the searches); the header area's "chatty" probe is a header block
(_HEADER_PROBE), and a group whose solo databases hold only inexact or
plain RE2 entries confirms those on every value instead of scanning them.

Running follows Mail::SpamAssassin::Plugin::Check: header rules match the
joined values of their header request (HeaderView; a missing header is
undef, `[if-unset: ...]` or exists:), body rules every paragraph of the
rendered body (the Subject first; `nosubject` skips it), rawbody rules every
chunk of the decoded text parts, uri rules every URI, full rules the
pristine message, mimeheader rules each MIME part's header; `tflags
multiple` counts matches (capped by maxhits; a rule whose joined form is a
set of literals that cannot overlap is counted with bytes.count, one whose
joined form starts at a line start with one finditer over the joined
buffer, one only Python `re` runs and whose matches start at a multi-line
^ with libpcre2 (rulecache.LazyPattern.ref_count), else with `re` tried
only at the line starts its loose form passes: count_line_starts).  The
line-area rules a scan always has to confirm with a long RE2 regex share
union gates (_line_gates): one failing search of the union rules them all
out (on ASCII text, the union restricted to ASCII: _ascii_gate); past a
gate (or a family gate: _family_gates; or a rule's own Hyperscan scan of
a superset of it: _wide_gates) its rules are confirmed only on the
subjects the gate matches.  A rule whose Hyperscan entry is inexact only
by one negative look-ahead of plain text takes the report as final where
the buffer lacks that text (_lookahead_gap).  The body area's databases
of long and 8-bit expressions have ASCII twins (hsdb: ascii_long), the rawbody and uri
areas' chatty probes are HTML source and a URI list (_PROBES).  The
per-message loops that stay hot (Hyperscan match handlers, match counts,
first matching line) are postier._native.spameng (pure twin:
postier._pure.spameng); the header-rule walk and the exists: rules are
postier._native.spamhdr (pure twin: postier._pure.spamhdr).  Rules with score 0 do not
run.  A meta rule whose dependencies include a meta that never runs (score
0, circular) never runs either, as in SpamAssassin.  Eval rules call
postier.content.spam.evals; the ones postier does not implement (network,
Bayes, plugins) are never ready and count as 0.

Parameters read: none (see postier.content.spam.scanner).
"""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate

import hyperscan as hs
import re2 as _re2

from postier.content.spam import bre as re
from postier.content.spam import conf as C
from postier.content.spam import meta as M
from postier.content.spam import perlre, rulecache
from postier.content.spam.asciire import VERSION as _ASCII_VERSION
from postier.content.spam.asciire import ascii_only
from postier.content.spam.gateatom import atom_gate
from postier.content.spam.gatehs import HsGate, MixedGate, hs_gate, wide_gate
from postier.content.spam.headers import HeaderView, plain_name
from postier.content.spam.hsdb import (
    CHATTY_REPORTS,
    AreaDatabase,
    Entry,
    cached,
    report_subjects,
)
from postier.content.spam.message import Message
from postier.content.spam.nulsubject import nul_plan
from postier.content.spam.received import parse_relays
from postier.content.spam.uri import Registry, UriExtractor
from postier.maps.reflib import Pcre2Regex, RegexExecError, pcre2_match_address
from postier.native import load as _load_native

_eng = _load_native("spameng")
_hdr = _load_native("spamhdr")
_ScanTerminated = hs.ScanTerminated

AREAS = ("header", "body", "rawbody", "uri", "full", "mimeheader")
LINE_AREAS = ("body", "rawbody", "uri")     # many subjects: scanned as one joined buffer
HEAVY_EXPR = 6000           # line-area rules whose inexact Hyperscan form is bigger run on RE2
HEAVY_EXACT = 32768         # ... and whose exact one (a literal alternation: scanned fast) is
_SEPB = b"\x00"
LOOSE_MAX_MEM = 32 << 20
_LINE_START = b"[\\x00\\x0a]"    # how a joined expression starts for Perl's /m ^
BIG_RE2 = 4000              # RE2 regexes this long get a bigger memory budget
PRE_TRIAL = 64              # subjects after which a superset that rarely helps is dropped
# header requests whose values are usually equal (CompiledRules: a
# shared Hyperscan partition); the request names HeaderView reads
# case-sensitively keep their case
_SHARED_REQUESTS = {"MESSAGEID": "message-id", "tocc": "to", "tocc:addr": "to:addr",
                    "envelopefrom": "return-path:addr"}
_CASED_REQUESTS = frozenset({"ALL", "ALL-TRUSTED", "ALL-INTERNAL", "ALL-UNTRUSTED",
                             "ALL-EXTERNAL", "MESSAGEID"})
_MIME_MEMO_LEN = 256        # mimeheader values this long or shorter are remembered (_mimeheaders)
_MIME_MEMO_SIZE = 128       # per group, then its memo is emptied
SMALL_GROUP = 3             # header groups this small are searched with RE2, not Hyperscan
_TEMPLATE = re.compile(r"(?<!\\)%\{([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:\([^\)\}]*\))?)\}")
_CAPTURE = re.compile(r"\(\?P?[<'][A-Z]")
_BOL_HEAD = rb"(?:\A|[\x00\x0a])"     # how perlre.re2_loose starts for a leading multi-line ^
# /^[^\r\n]{N}/m (__LONGLINE): a line of N bytes or more, checked directly
_LONG_LINE = re.compile(r"\^\[\^(?:\\r\\n|\\n\\r)\]\{([1-9][0-9]{0,5})\}")


@dataclass
class RRule:
    """A runnable regex rule."""

    name: str
    area: str
    pattern: object                 # postier.maps.patterns.Pattern
    entry: object = None            # postier.content.spam.hsdb.Entry
    multiple: bool = False
    maxhits: int = 0
    nosubject: bool = False
    negate: bool = False
    header: str = ""
    if_unset: bytes | None = None
    empty_hit: bool = False         # does the pattern match b""?
    capture: re.Pattern | None = None
    pre: object = None              # RE2 superset tried before a slow exact engine
    source: tuple[str, str] = ("", "")  # (pattern, modifiers)
    direct: bool = False            # kept out of Hyperscan: RE2 on the joined buffer
    _joined: tuple | None = None
    _joined_src: tuple | None = None    # (RE2 source or None, budget, exact, countable) from the record
    _loose: object = False          # False: not built yet
    _lits: object = False           # literals of a countable joined form (False: not looked at)
    _bol: object = False            # bol_loose() (False: not looked at)

    linelen: int = 0                # /^[^\r\n]{linelen}/m: spameng.long_line answers
    needle: bytes | None = None     # _lookahead_gap: no such text, the report is final
    _needle_try: int = 0
    _needle_ok: int = 0
    _direct: bool | None = None     # engine._direct (None: not looked at)
    _pre_pass: int = 0
    _pre_fail: int = 0

    def search(self, data: bytes) -> bool:
        if self.pre is not None and self.pre_rules_out(data):
            return False
        return self.pattern.search(data)

    def pre_rules_out(self, data: bytes) -> bool:
        """Does the superset (self.pre, not None) rule data out?  One that
        hardly ever does is dropped after PRE_TRIAL subjects."""
        if not self.pre.contains(data):
            self._pre_fail += 1
            return True
        self._pre_pass += 1
        if self._pre_pass == PRE_TRIAL and self._pre_fail * 4 < PRE_TRIAL:
            self.pre = None     # it hardly ever rules a subject out: only a cost
        return False

    def loose(self):
        """RE2 regex that must match a text for the rule to match some
        subject in it (perlre.re2_loose), or None."""
        lo = self._loose
        if lo is False:
            lo = self._loose = perlre.re2_loose(*self.source, max_mem=LOOSE_MAX_MEM)
        return lo

    def bol_loose(self):
        """For a `multiple` rule counted with Python `re` (no RE2 form)
        whose matches all start at a leading multi-line ^ and are never
        empty: its loose RE2 regex, whose head takes the newline before a
        line start (count_line_starts); else None."""
        b = self._bol
        if b is False:
            b = None
            p = self.pattern
            if self.multiple and not p._ref_confirms and p._re2 is None and p._py is not None:
                lo = self.loose()
                if lo is not None and lo.pattern.startswith(_BOL_HEAD):
                    tree = perlre._parse(*self.source)
                    if tree is not None and perlre._min_len(tree) >= 1:
                        b = lo
            self._bol = b
        return b

    def literals(self):
        """A counter whose count(data, limit) is the joined form's match
        count (capped at limit) without walking its regex, or None: a
        spameng.LiteralCounter of the literals whose counts sum to it
        (spameng.literal_set), else a spameng.LineLiteralCounter when the
        form is a line start, an allowed byte, then a literal on the rest
        of the line (spameng.line_literal_form: __HAS_HREF, __HAS_IMG_SRC;
        7 -> 1.4 us per rule and message over the corpus's rawbody), else a
        spameng.SubjectCounter of a subject start, bytes of a class, then
        one outside it (spameng.subject_form: __BODY_TEXT_LINE, ~17 us of
        RE2 finditer per body in a scan)."""
        lits = self._lits
        if lits is False:
            rx, _ex, countable = self.joined()
            lits = None
            if countable and rx is not None:
                found = _eng.literal_set(rx.pattern)
                if found is not None:
                    lits = _eng.LiteralCounter(found)
                else:
                    form = _eng.line_literal_form(rx.pattern)
                    if form is not None:
                        lits = _eng.LineLiteralCounter(*form)
                    else:
                        chars = _eng.subject_form(rx.pattern)
                        lits = _eng.SubjectCounter(chars) if chars is not None else None
            self._lits = lits
        return lits

    def joined(self, max_mem: int = perlre.RE2_MAX_MEM) -> tuple:
        """(RE2 regex for a joined buffer, exact, countable): see perlre.joined_re2."""
        j = self._joined
        if j is None:
            js = self._joined_src
            if js is not None:
                src, mem, jexact, countable = js
                j = self._joined = (rulecache.compile_re2(src, mem) if src is not None else None,
                                    jexact, countable)
            else:
                j = self._joined = perlre.joined_re2(*self.source, max_mem=max_mem)
        return j


@dataclass
class Stats:
    rules: int = 0
    regex_rules: int = 0
    exact: int = 0
    prefilter: int = 0
    fallback: int = 0
    never: int = 0
    re2_direct: int = 0
    template_rules: int = 0
    meta_rules: int = 0
    eval_rules: int = 0
    eval_unsupported: dict[str, int] = field(default_factory=dict)
    compile_failed: list[str] = field(default_factory=list)
    databases: int = 0
    compile_seconds: float = 0.0
    from_cache: bool = True
    translated: int = 0             # regex rules translated (not in the rule cache)
    prepare_seconds: float = 0.0    # CompiledRules.prepare


class CompiledRules:
    """A RuleSet ready to scan (see the module docstring)."""

    def __init__(self, rs: C.RuleSet, cache_dir: str | None = None, workers: int = 0,
                 prepare: bool = True):
        from postier.content.spam import evals
        t0 = time.monotonic()
        self.rs = rs
        self.cache_dir = cache_dir      # also where _ascii_gate keeps its restrictions
        self.stats = st = Stats()
        self.active = {n for n in rs.rules if rs.score(n) != 0}
        st.rules = len(rs.rules)
        self.area_rules: dict[str, list[RRule]] = {a: [] for a in AREAS}
        self.templates: list[tuple[C.Rule, str, str]] = []
        self.exists_rules: list[C.Rule] = []
        self.evals: list[tuple[str, C.Rule, object]] = []
        self.capture_names: set[str] = set()
        tc = rulecache.TranslationCache(cache_dir)
        for name in sorted(self.active):
            r = rs.rules[name]
            if r.kind in C.REGEX_KINDS:
                if r.kind == C.HEADER and r.exists:
                    self.exists_rules.append(r)
                    continue
                multiple = rs.has_flag(name, "multiple")
                rec = tc.get(r.kind, r.regex, multiple)
                if rec is None:
                    rec = _translate(r.kind, r.regex, multiple)
                    tc.put(r.kind, r.regex, multiple, rec)
                    st.translated += 1
                self._add_regex(r, rec)
            elif r.kind in C.EVAL_KINDS:
                st.eval_rules += 1
                if r.kind == C.RBL_EVAL or rs.has_flag(name, "net") or rs.has_flag(name, "learn"):
                    continue      # score set 0: network and Bayes rules do not run
                fn = evals.FUNCTIONS.get(r.function)
                if fn is None:
                    st.eval_unsupported[r.function] = st.eval_unsupported.get(r.function, 0) + 1
                    continue
                self.evals.append((r.kind, r, fn))
        tc.save()
        st.from_cache = not st.translated
        st.regex_rules = sum(len(v) for v in self.area_rules.values()) + len(self.templates)
        st.template_rules = len(self.templates)
        # header rules grouped by request, mimeheader rules by header: one
        # Hyperscan partition per group, so that a value is scanned only by
        # the rules that read it.  Groups whose values are equal on most
        # messages share a partition (scanned once per distinct value:
        # Run._headers): one request with several [if-unset], a header
        # name in any case (Message-ID, Message-Id), the pairs of
        # _SHARED_REQUESTS, and X-Spam-Relays-Untrusted / -External when
        # internal_networks is unset or equal to trusted_networks
        self.header_groups: list[tuple[str, bytes | None, list[int]]] = []
        self.header_parts: list[int] = []       # each group's partition
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(self.area_rules["header"]):
            groups[(r.header, r.if_unset)].append(i)
        internal = rs.setting("internal_networks")
        share_relays = not internal or internal == rs.setting("trusted_networks")
        part_of: dict[str, int] = {}
        for (h, unset), idx in groups.items():
            key = h if h.split(":")[0] in _CASED_REQUESTS else h.lower()
            key = _SHARED_REQUESTS.get(key, key)
            if share_relays and key == "x-spam-relays-untrusted":
                key = "x-spam-relays-external"
            part = part_of.setdefault(key, len(part_of))
            self.header_groups.append((h, unset, idx))
            self.header_parts.append(part)
            for i in idx:
                self.area_rules["header"][i].entry.part = part
        self.mime_groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
        for i, r in enumerate(self.area_rules["mimeheader"]):
            raw = r.header.endswith(":raw")
            self.mime_groups[(r.header[:-4] if raw else r.header, raw)].append(i)
        for part, idx in enumerate(self.mime_groups.values()):
            for i in idx:
                self.area_rules["mimeheader"][i].entry.part = part
        self.dbs: dict[str, AreaDatabase] = {}
        for area, rules in self.area_rules.items():
            if not rules:
                continue
            # the area's chatty probe (_PROBES: a header block, HTML source,
            # a URI list; the body's text otherwise) and its threshold
            probe, chatty = _PROBES.get(area, (_PROBE, CHATTY_REPORTS))
            db = AreaDatabase([r.entry for r in rules], cache_dir=cache_dir, workers=workers,
                              label=area, probe=probe, chatty=chatty,
                              long_groups=BODY_LONG_GROUPS if area == "body" else 0,
                              ascii_long=area == "body", one_group=area == "header")
            self.dbs[area] = db
            st.exact += len(db.exact)
            st.prefilter += len(db.prefilter)
            st.fallback += len(db.always - {i for i, r in enumerate(rules) if r.direct})
            st.re2_direct += sum(1 for r in rules if r.direct)
            st.never += len(db.never)
            st.databases += len(db.dbs)
            st.from_cache = st.from_cache and db.from_cache
        # per header group: (request, if-unset, rules, "always" rules, negated rules)
        hdb = self.dbs.get("header")
        hrules = self.area_rules["header"]
        # a small group of plain RE2 rules is searched with RE2 directly:
        # cheaper than a Hyperscan call on a short value
        self.header_groups_run = [
            (h, unset, idx, sorted(i for i in idx if hdb is not None and i in hdb.always),
             [i for i in idx if hrules[i].negate],
             len(idx) <= SMALL_GROUP and all(_plain_re2(hrules[i]) for i in idx))
            for h, unset, idx in self.header_groups]
        # what _headers reads per message, computed once: each group's
        # request (and its plain header name, for HeaderView.values) and the
        # rules that hit when the request is undefined
        self.exists_runs = [(r, plain_name(r.header)) for r in self.exists_rules]
        # exists: rules of plain header names (spamhdr.exists_rules), the others
        self.exists_plain = tuple((r.name, lc) for r, lc in self.exists_runs if lc is not None)
        self.exists_other = [r for r, lc in self.exists_runs if lc is None]
        self.header_requests = tuple(g[0] for g in self.header_groups_run)
        self.header_names = tuple(plain_name(h) for h in self.header_requests)
        self.header_missing = [[hrules[i].name for i in idx
                                if hrules[i].empty_hit != hrules[i].negate]
                               for _h, _u, idx in self.header_groups]
        # per header rule: (name, final, negated, multiple, capture, rule),
        # final: a Hyperscan report is the answer (exact, not `multiple`);
        # per group: (if-unset, rules hit when undefined, rules, "always"
        # rules, negated rules, direct, skip, partition, members): what
        # Run._headers walks (members: the group's rules as a set when its
        # partition is shared, else None)
        hexact = hdb.exact - hdb.always if hdb is not None else frozenset()
        self.header_info = [(rr.name, i in hexact and not rr.multiple, rr.negate, rr.multiple,
                             rr.capture is not None, rr, _pcre2_fast(rr))
                            for i, rr in enumerate(hrules)]
        # A header rule that libpcre2 or RE2 confirms on its own (the fast
        # item above) runs without its RE2 superset (rr.pre): on a header
        # value, first passes measured, the superset's search (its DFA
        # built lazily) costs more than the confirmations it saves
        for info in self.header_info:
            if info[6] is not None:
                info[5].pre = None
        # A group whose solo databases (hsdb.Entry.solo) all hold inexact
        # entries or plain RE2 ones does not scan them: such an entry (one
        # Hyperscan reports on nearly every value: why it is solo) is
        # confirmed on every value instead, an "always" rule of its group
        # (skip: True): cheaper than a scan stopped by an exception
        # (decided per partition)
        part_rules: dict[int, list[int]] = defaultdict(list)
        for part, (_h, _u, idx) in zip(self.header_parts, self.header_groups, strict=True):
            part_rules[part] += idx
        part_skip = {}
        for part, idx in part_rules.items():
            solo = [i for i in idx if hrules[i].entry.solo]
            part_skip[part] = bool(solo) and hdb is not None and all(
                i in hdb.prefilter or (_plain_re2(hrules[i]) and not hrules[i].multiple)
                for i in solo)
        shared = {p for p in part_rules if self.header_parts.count(p) > 1}
        self.header_plan = []
        for (_h, unset, idx, always, negs, direct), miss, part in zip(
                self.header_groups_run, self.header_missing, self.header_parts, strict=True):
            skip = part_skip[part]
            if skip:
                always = sorted(set(always) | {i for i in idx if hrules[i].entry.solo})
            self.header_plan.append((unset, tuple(miss), tuple(idx), tuple(always), tuple(negs),
                                     direct, skip, part,
                                     frozenset(idx) if part in shared else None))
        # each group's results by short value, across messages (spamhdr.new_memo:
        # a value seen before is neither scanned nor confirmed again)
        self.header_memo = _hdr.new_memo(len(self.header_plan))
        # the plan and rule information in header_rules' own form, made
        # once (spamhdr.compile_plan: C arrays in the compiled module)
        self.header_cplan = _hdr.compile_plan(self.header_plan, self.header_info)
        self._compile_metas()
        rb = Registry.from_settings(rs.settings)
        self.registry = rb
        redirectors = []
        for line in rs.setting("redirector_pattern"):
            try:
                redirectors.append(perlre.compile_rule(line.strip()))
            except perlre.PerlRegexError:
                pass
        self.uris = UriExtractor(rb, redirectors)
        esh = rs.setting("envelope_sender_header")
        self.envelope_sender_header = esh[-1].strip() if esh else None
        self.originating = []
        for line in rs.setting("originating_ip_headers"):
            for h in line.split():
                if h.lower() not in [x.lower() for x in self.originating]:
                    self.originating.append(h)
        if "originating_ip_headers" in rs.settings and any(
                k == "clear_originating_ip_headers" for k in rs.settings):
            pass
        self.trusted = rs.setting("trusted_networks")
        self.internal = rs.setting("internal_networks")
        self.msa = rs.setting("msa_networks")
        self.body_scan = _int_setting(rs, "body_part_scan_size", 50000)
        self.rawbody_scan = _int_setting(rs, "rawbody_part_scan_size", 500000)
        self.normalize = _bool_setting(rs, "normalize_charset", True)
        self._mime_opts = [_mime_options(rs.tflags.get(r.name, ""))
                           for r in self.area_rules["mimeheader"]]
        by_kind: dict[str, list] = {}
        for e in self.evals:
            by_kind.setdefault(e[0], []).append(e)
        self._evals_by_kind = by_kind
        if prepare:
            self.prepare()
        st.compile_seconds = time.monotonic() - t0

    def prepare(self) -> None:
        """Build now what the first scans would otherwise build lazily: the
        RE2 / libpcre2 / `re` objects of the rules a Hyperscan report does
        not answer, the joined, "loose" and literal forms of the line-area
        rules that need them, the Hyperscan
        scratch spaces and scanners, the eval rules' compiled arguments, and
        (by scanning a tiny message) the per-rule-set tables the evals build
        on first use.  Called by __init__, so that a process that forks
        scanning workers after building the rules (spamd's way) shares them
        copy-on-write.  Changes no result; what stays lazy depends on the
        messages (RE2's DFA states, %{TAG} template regexes, the URI and
        host caches)."""
        t0 = time.monotonic()
        for area, rules in self.area_rules.items():
            db = self.dbs.get(area)
            exact = db.exact if db is not None else ()
            line = area in LINE_AREAS
            for i, rr in enumerate(rules):
                # a rule whose Hyperscan report is its answer needs nothing
                # more (building its objects anyway costs RE2 programs,
                # ~15 kB each, that no scan may ever use)
                final = i in exact and not rr.multiple and rr.capture is None
                if line:
                    if final and not (rr.nosubject and area == "body"):
                        continue
                    rx, jexact, countable = rr.joined()
                    if rr.multiple and countable:
                        rr.literals()
                        continue
                    if rx is None or (rr.multiple and not countable):
                        rr.loose()
                    if rx is not None and jexact and not rr.multiple and rr.capture is None:
                        continue        # the joined form answers
                elif final and not rr.direct:
                    continue
                _prepare_pattern(rr.pattern, rr.multiple)
        for db in self.dbs.values():
            db.scanners()
        from postier.content.spam import evals
        evals.prepare(self.evals)
        self.run(_PRIME_MESSAGE)
        self.stats.prepare_seconds = time.monotonic() - t0

    # -- compilation helpers
    def _add_regex(self, r: C.Rule, rec: dict) -> None:
        """Build a regex rule from its translation record (_translate)."""
        rs = self.rs
        t = rec["t"]
        if t == "fail":
            self.stats.compile_failed.append(f"{r.name}: {rec['msg']}")
            return
        pat, mods = rec["pat"], rec["mods"]
        if t == "tmpl":
            self.templates.append((r, pat, mods))
            return
        capture = None
        if _CAPTURE.search(pat):
            try:
                capture = re.compile(_to_python_named(pat), _py_flags(mods) | re.A)
                self.capture_names.update(capture.groupindex)
            except re.error:
                capture = None
        p = rulecache.pattern_from_record(rec["p"])
        exprs, flags, exact, solo = rec["e"]
        multiple = rs.has_flag(r.name, "multiple")
        m = _LONG_LINE.fullmatch(pat)
        linelen = int(m.group(1)) if (m is not None and mods == "m" and not multiple
                                      and r.kind != C.HEADER) else 0
        # a line-length rule (/^[^\r\n]{998}/m, __LONGLINE) has no Hyperscan
        # form: its expression is a loose prefilter (a 64-byte line) that
        # reports on nearly every message, in a solo database of its own,
        # while spameng.long_line answers it exactly; so it is an always
        # candidate (no Hyperscan call, no ScanTerminated)
        entry = Entry([]) if linelen else Entry(exprs, flags, exact, solo=solo)
        rr = RRule(r.name, AREA_OF[r.kind], p, entry, multiple=multiple,
                   maxhits=rs.maxhits(r.name), nosubject=rs.has_flag(r.name, "nosubject"),
                   negate=r.negate, header=r.header, capture=capture, source=(pat, mods),
                   direct=rec["dir"], linelen=linelen)
        pre = rec["pre"]
        if pre is not None:
            rr.pre = rulecache.compile_re2(*pre)
        lo = rec["lo"]
        if lo:
            rr._loose = rr.pre if lo == 2 else None
        j = rec["j"]
        if j is not None:
            if rr.direct:
                src, mem, jexact, countable = j
                rr._joined = (rulecache.compile_re2(src, mem) if src is not None else None,
                              jexact, countable)
            else:
                rr._joined_src = tuple(j)   # compiled on first use
        if rr.capture is None and not rr.multiple:
            rr.needle = rec.get("nla")
        if r.kind == C.HEADER:
            rr.if_unset = r.if_unset.encode("latin-1") if r.if_unset is not None else None
            rr.empty_hit = rec["eh"]
        if r.kind == C.MIMEHEADER:
            rr.if_unset = (r.if_unset or "").encode("latin-1")
        self.area_rules[rr.area].append(rr)

    def _compile_metas(self) -> None:
        rs = self.rs
        metas = {n: r for n, r in rs.rules.items() if r.kind == C.META}
        self.stats.meta_rules = len(metas)
        score_names = set(rs.scores)
        trees = {}
        deps: dict[str, set[str]] = {}
        for name, r in metas.items():
            text = M.expand_rules_matching(r.text, score_names, name)
            try:
                tree = M.parse(text) if text.strip() not in ("()", "( )") else ("num", 0)
            except M.MetaError:
                continue
            trees[name] = tree
            deps[name] = M.names(tree)
        # metas that run: non-zero score, every meta dependency runs (no cycles)
        runs: dict[str, bool] = {}

        def check(n: str, stack: set[str]) -> bool:
            if n in runs:
                return runs[n]
            if n in stack or n not in self.active or n not in trees:
                runs[n] = False
                return False
            stack.add(n)
            ok = all(check(d, stack) for d in deps[n] if d in metas)
            stack.discard(n)
            runs[n] = ok
            return ok
        order: list[str] = []
        done: set[str] = set()

        def visit(n: str) -> None:
            if n in done:
                return
            done.add(n)
            for d in sorted(deps[n]):
                if d in metas and runs.get(d):
                    visit(d)
            order.append(n)
        for n in sorted(trees):
            check(n, set())
        for n in sorted(trees):
            if runs.get(n):
                visit(n)
        self.meta_order = order
        # one program for all metas, run by postier._native.spammeta (its
        # pure twin writes it out as one Python function)
        self.meta_program = _load_native("spammeta").MetaProgram(
            *M.program([(n, trees[n]) for n in order]))
        self.run_metas = self.meta_program.run

    # -- scanning
    def run(self, data: bytes) -> Run:
        r = Run(self, data)
        r.execute()
        # the run's eval context points back at the run: without this cut
        # the pair (and the message's lists and dicts they hold, ~180
        # objects) waits for the cyclic GC instead of going at once
        r.eval_ctx = None
        return r

    def run_many(self, datas: list[bytes]) -> list[Run | Exception]:
        """run() of each message, phase by phase across them (Run.steps:
        every message's header rules, then every message's head evals, and
        so on): each phase's databases, regexes and memos are used for the
        whole batch while they are in the CPU caches (a first-pass scan is
        mostly cold-cache cost; batches of 4-8 cost ~12% less CPU per
        message than one at a time).  Every message gets what run() gives
        it alone: a phase reads and writes only its own message's state
        besides memos that are functions of their keys.  A message whose
        run raises gets that exception in its place; the others go on.
        The header phase walks group-major (spamhdr.header_rules_many: each
        header group's databases and rules for every message in turn)."""
        out: list[Run | Exception] = []
        runs: list[tuple[int, Run]] = []
        for k, data in enumerate(datas):
            try:
                r = Run(self, data)
            except Exception as e:  # noqa: BLE001 - that message's result
                out.append(e)
                continue
            out.append(r)
            runs.append((k, r))
        db = self.dbs.get("header")
        done = db is not None and len(runs) > 1
        if done:
            ok, valss = [], []
            for k, r in runs:
                try:
                    valss.append(r.hv.values(self.header_requests, self.header_names))
                except Exception as e:  # noqa: BLE001 - that message's result
                    out[k] = e
                    continue
                ok.append((k, r))
            errs = _hdr.header_rules_many([r for _, r in ok], self.header_cplan, None, valss,
                                          db.part_dbs(), _header_count, _eng.on_match,
                                          _eng.on_first_match, _ScanTerminated, self.header_memo)
            runs = []
            for (k, r), e in zip(ok, errs, strict=True):
                if e is None:
                    runs.append((k, r))
                else:
                    out[k] = e
        live = [(k, r, r.steps(headers_done=done)) for k, r in runs]
        while live:
            nxt = []
            for k, r, st in live:
                try:
                    next(st)
                except StopIteration:
                    r.eval_ctx = None           # as in run()
                    continue
                except Exception as e:  # noqa: BLE001 - that message's result
                    r.eval_ctx = None
                    out[k] = e
                    continue
                nxt.append((k, r, st))
            live = nxt
        return out


AREA_OF = {C.HEADER: "header", C.BODY: "body", C.RAWBODY: "rawbody", C.URI: "uri",
           C.FULL: "full", C.MIMEHEADER: "mimeheader"}


def _translate(kind: str, regex: str, multiple: bool) -> dict:
    """A regex rule's translation record (postier.content.spam.rulecache):
    the plain values CompiledRules._add_regex builds the rule from -- its
    Pattern's forms, Hyperscan entry, RE2 pre-check, joined form, engine.
    "t": "rx" (a rule), "tmpl" (a %{TAG} template rule) or "fail" ("msg")."""
    try:
        pat, mods = perlre.split_delimited(regex)
    except perlre.PerlRegexError as e:
        return {"t": "fail", "msg": str(e)}
    if _TEMPLATE.search(pat):
        return {"t": "tmpl", "pat": pat, "mods": mods}
    try:
        p = perlre.compile_pattern(pat, mods)
    except perlre.PerlRegexError as e:
        try:
            p = perlre.compile_pattern_fallback(pat, mods)
        except perlre.PerlRegexError:
            return {"t": "fail", "msg": str(e)}
    re2_mem = 0
    if p._re2 is not None and len(p._re2.pattern) > BIG_RE2:
        # RE2's default budget is too small for the lazy DFA of such a
        # regex: it prints "DFA out of memory" and runs the slow NFA
        try:
            p._re2 = _re2._compile(p._re2.pattern, 0, perlre.RE2_MAX_MEM * 8)
            re2_mem = perlre.RE2_MAX_MEM * 8
        except Exception:  # noqa: BLE001, S110 - pyre2 raises several types; keep the old one
            pass
    entry = perlre.hyperscan_entry(p, pat, mods, joined=True)
    rr = RRule("", AREA_OF[kind], p, entry, multiple=multiple, source=(pat, mods))
    pre = None
    if p._re2 is None:
        rr.pre = perlre.re2_superset(pat, mods)
        if rr.pre is not None:
            pre = [rr.pre.pattern, 0]
    if rr.pre is None and (p._re2 is None or p._nl_unsafe or p._ref_confirms):
        rr.pre = rr.loose()             # rules the slow exact engine out cheaply
        if rr.pre is not None:
            pre = [rr.pre.pattern, LOOSE_MAX_MEM]
    jmem = _choose_engine(rr)
    if rr._joined is None and rr.area in LINE_AREAS and rr.entry.exprs:
        # the joined form of a Hyperscan rule is needed on most scans that
        # report it: translated now (costly), its RE2 compiled on first use
        rr.joined()
        jmem = perlre.RE2_MAX_MEM
    j = None
    if rr._joined is not None:
        rx, jexact, countable = rr._joined
        j = [rx.pattern if rx is not None else None, jmem, bool(jexact), bool(countable)]
    en = rr.entry
    return {"t": "rx", "pat": pat, "mods": mods,
            "p": rulecache.pattern_record(p, mods, re2_mem),
            "e": [list(en.exprs), en.flags, bool(en.exact), bool(en.solo)],
            "pre": pre, "lo": 0 if rr._loose is False else (1 if rr._loose is None else 2),
            "dir": rr.direct, "j": j,
            "eh": bool(p.search(b"")) if kind == C.HEADER else False,
            "nla": _lookahead_gap(pat, mods, en)
            if rr.area in LINE_AREAS and not multiple and not _CAPTURE.search(pat) else None}


def _choose_engine(rr: RRule) -> int:
    """Keep a rule out of Hyperscan when RE2 does better on it: a huge
    expression (slow to compile and to scan), or one whose Hyperscan
    form matches nearly everywhere (Hyperscan calls back for every
    match end: its SINGLEMATCH flag cannot be used, Vectorscan 5.4
    loses matches with it).  Such a rule runs as an RE2 search of the
    joined buffer (line areas; then per line when that is inexact) or
    of the value (one-subject areas).  The RE2 budget of the joined form
    kept for a direct rule is returned."""
    size = sum(len(e) for e in rr.entry.exprs)
    p = rr.pattern
    plain_re2 = p._re2 is not None and not p._ref_confirms and rr.pre is None
    mem = 0
    if not rr.entry.exprs:
        return mem
    if rr.area in LINE_AREAS:
        # a huge simplified (inexact) form -- the fuzzy-letter phrase rules
        # -- is slow in Hyperscan; a big exact one is a list of literals
        # Hyperscan scans fast and answers (URI_GOOG_STO_SPAMMY)
        heavy = size > (HEAVY_EXACT if rr.entry.exact else HEAVY_EXPR)
        if heavy or (rr.multiple and _chatty(rr.entry.exprs)):
            # a `multiple` rule that matches everywhere is counted with
            # RE2 anyway: Hyperscan would only add a scan
            mem = perlre.RE2_MAX_MEM * 8 if heavy else perlre.RE2_MAX_MEM
            rx, _exact, _c = rr.joined(mem)
            rr.direct = rx is not None or (not heavy and plain_re2)
        elif _chatty(rr.entry.exprs) or rr.entry.exprs[0].startswith(_LINE_START):
            # alone, scanned up to its first report; a line-anchored
            # expression too: in a big database Vectorscan 5.4 loses
            # some of its matches (__HAS_HREF after an empty line)
            rr.entry.solo = True
        if not rr.direct:
            rr._joined = None           # built again when needed (memory)
    elif _chatty(rr.entry.exprs):
        rr.entry.solo = True
    if rr.direct:
        rr.entry = Entry([], 0, False)
    return mem


# Text like a message's, to find the patterns that match nearly everywhere
_PROBE_TEXT = b"""Subject: Re: your order #12345 - meeting on Monday 10:30 AM
Hello John,

Thanks for your message of 12/03/2024.  As discussed, I have attached the
report (PDF, 2.3 MB) and the figures for Q3: revenue $1,234,567.89, costs
EUR 987.654,32 and 15% growth.  Please call me at +1 (555) 123-4567 or write
to john.smith@example.com; see https://www.example.com/path/page.html?id=42&x=y
and http://192.168.1.10:8080/index.php for the details.

--\x20
Best regards,   Mary O'Neil   |   ACME Corp.   |   www.acme-corp.example
<html><head><title>Newsletter</title></head><body bgcolor="#ffffff">
<p style="font-size:12px;color:#333333">Click <a href="http://t.example.net/c?u=abc">here</a>
to unsubscribe.  <img src="cid:image001.png@01D9" width="1" height="1"></p>
<table><tr><td>Item</td><td>Price</td></tr><tr><td>Widget</td><td>9.99</td></tr></table>
</body></html>
THIS IS A VERY LONG LINE OF UPPERCASE TEXT THAT GOES ON AND ON WITHOUT ANY BREAK AT ALL, REALLY
Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e \xe4\xf6\xfc -- ========== ********** !!!!! ????? .....
1. First item: name, address, phone
2. Second item; 3) third
 > quoted reply line
 > another quoted line
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable
Content-Disposition: attachment; filename="report.pdf"
Received: from mail.example.com (mail.example.com [192.0.2.25]) by mx.example.org
 (Postfix) with ESMTPS id 4F2A31234 for <john@example.org>; Mon, 4 Mar 2024 10:30:01 +0100
[ ip=192.0.2.25 rdns=mail.example.com helo=mail.example.com by=mx.example.org ident= envfrom= intl=0 id=4F2A31234 auth= msa=0 ]
Message-ID: <20240304093001.12345@mail.example.com>
"""
_PROBE = perlre.joined_buffer(_PROBE_TEXT.split(b"\n"))
CHATTY_MATCHES = 12         # matches on the probe from which a pattern is "everywhere"
# The header area's probe: the values of a plain message's main header
# groups (ALL, the relay strings, To, Subject, From), joined.  An entry
# Hyperscan reports HEADER_CHATTY times on it (typically an inexact
# back-reference prefilter reporting at every end of a line run, tens of
# Python callbacks per message) gets a database of its own, scanned up to
# its first report (hsdb.Entry.solo).
_HEADER_ALL = (
    b"Return-Path: <john.smith@example.com>\n"
    b"Received: from mail.example.com (mail.example.com [192.0.2.25]) by mx.example.org"
    b" (Postfix) with ESMTPS id 4F2A31234 for <mary@example.org>; Mon, 4 Mar 2024 10:30:01 +0100\n"
    b"Received: from [10.0.0.5] (unknown [198.51.100.7]) by mail.example.com with ESMTPSA"
    b" id abc123 for <mary@example.org>; Mon, 4 Mar 2024 10:29:58 +0100\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel1;"
    b" h=from:to:subject:date; bh=abcdefghijklmnop=; b=ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    b"From: John Smith <john.smith@example.com>\n"
    b"To: Mary O'Neil <mary@example.org>\n"
    b"Cc: team@example.org\n"
    b"Subject: Re: your order #12345 for mary@example.org - meeting on Monday 10:30 AM\n"
    b"Date: Mon, 4 Mar 2024 10:29:55 +0100\n"
    b"Message-ID: <20240304092955.12345@mail.example.com>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: multipart/alternative; boundary=\"----=_Part_123_456.789\"\n"
    b"X-Mailer: Microsoft Outlook 16.0\n"
    b"List-Unsubscribe: <mailto:unsub@example.com>, <https://example.com/unsub?id=42>\n")
_HEADER_RELAYS = (
    b"[ ip=192.0.2.25 rdns=mail.example.com helo=mail.example.com by=mx.example.org ident="
    b" envfrom= intl=0 id=4F2A31234 auth= msa=0 ] [ ip=198.51.100.7 rdns= helo=[10.0.0.5]"
    b" by=mail.example.com ident= envfrom= intl=0 id=abc123 auth=ESMTPSA msa=0 ]"
    b" [ ip=203.0.113.9 rdns=relay.example.net helo=relay.example.net by=mail.example.com"
    b" ident= envfrom= intl=0 id=xyz789 auth= msa=0 ]\n")
_HEADER_PROBE = perlre.joined_buffer([
    _HEADER_ALL, _HEADER_RELAYS, b"mary@example.org\n",
    b"Re: your order #12345 for mary@example.org - meeting on Monday 10:30 AM\n",
    b"John Smith <john.smith@example.com>\n"])
HEADER_CHATTY = 14
# The rawbody area's probe: a newsletter's HTML source (rawbody rules see
# HTML parts undecoded), and the uri area's: its URI list.  An entry
# reported LINE_CHATTY times on it (__SPOOFED_URL at every byte after an
# href=, __L_BODY_8BITS at every 8-bit byte, __LOCAL_PP_NONPPURL along
# every URI, ...: ~100 Python callbacks per real message in each area)
# gets a database of its own, scanned up to its first report.
_RAWBODY_PROBE = perlre.joined_buffer(b"""\
<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>
<body style="margin:0;padding:0">
<table width="600" cellpadding="0" cellspacing="0" border="0" align="center">
<tr><td><a href="https://www.example.com/newsletter?id=42&amp;utm_source=mail"><img \
src="https://cdn.example.com/img/logo.png" width="200" height="50" alt="Example"></a></td></tr>
<tr><td><font face="Arial" size="2" color="#333333">Hello John, here are this \
week\xe2\x80\x99s offers \xe2\x80\x93 save up to 30%:</font></td></tr>
<tr><td><a href="https://www.example.com/offers/1">Garden chairs</a> | \
<a href="https://www.example.com/offers/2">Caf\xc3\xa9 tables</a></td></tr>
<tr><td><font face="Arial" size="1">You receive this message because you subscribed at \
www.example.com.
<a href="https://www.example.com/unsubscribe?u=12345">Unsubscribe</a> &nbsp;|&nbsp; \
<a href="mailto:info@example.com">Contact us</a></font></td></tr>
<tr><td><img src="https://track.example.com/open.gif?u=12345" width="1" height="1"></td></tr>
</table></body></html>""".split(b"\n"))
_URI_PROBE = perlre.joined_buffer([
    b"https://www.example.com/newsletter?id=42&utm_source=mail",
    b"https://cdn.example.com/img/logo.png", b"https://www.example.com/offers/1",
    b"https://www.example.com/offers/2", b"http://www.example.com",
    b"https://www.example.com/unsubscribe?u=12345", b"mailto:info@example.com",
    b"https://track.example.com/open.gif?u=12345", b"www.example.com",
    b"http://www.example.com/"])
LINE_CHATTY = 8
_PROBES = {"header": (_HEADER_PROBE, HEADER_CHATTY), "rawbody": (_RAWBODY_PROBE, LINE_CHATTY),
           "uri": (_URI_PROBE, LINE_CHATTY)}
CHATTY_BYTES = 200


def _chatty(exprs: list[bytes]) -> bool:
    """Does a Hyperscan expression match nearly everywhere in the probe
    text (many matches, or long ones: Hyperscan reports every end)?"""
    import re2
    n = covered = 0
    for e in exprs:
        try:
            rx = re2.compile(e)
        except Exception:  # noqa: BLE001 - pyre2 raises several types
            continue
        for m in rx.finditer(_PROBE):
            n += 1
            covered += m.end() - m.start()
            if n >= CHATTY_MATCHES or covered >= CHATTY_BYTES:
                return True
    return False


def _int_setting(rs: C.RuleSet, key: str, default: int) -> int:
    v = rs.setting(key)
    try:
        return int(v[-1]) if v else default
    except ValueError:
        return default


def _bool_setting(rs: C.RuleSet, key: str, default: bool) -> bool:
    v = rs.setting(key)
    if not v:
        return default
    return v[-1].strip().lower() in ("1", "yes")


def _py_flags(mods: str) -> int:
    f = 0
    for c, v in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)):
        if c in mods:
            f |= v
    return f


def _to_python_named(pat: str) -> str:
    return re.sub(r"\(\?P?<([A-Za-z_]\w*)>", r"(?P<\1>", re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", pat))


def _mime_options(tf: str) -> tuple[int, int, bool]:
    """(first part, last part, concat) of a mimeheader rule's tflags."""
    lo, hi = 0, 1000
    m = re.search(r"(?:^|\s)range=(\d+)?(-)?(\d+)?(?:\s|$)", tf)
    if m:
        a, dash, b = m.groups()
        if a and dash and b:
            lo, hi = int(a), int(b)
        elif a and dash:
            lo = int(a)
        elif dash and b:
            hi = int(b)
        elif a:
            lo = hi = int(a)
    return lo, hi, re.search(r"\bconcat\b", tf) is not None


_NON_WORD = re.compile(r"(\W)")


def _quote_value(v: str) -> str:
    """A tag value quoted for a template alternation (Perl's quotemeta)."""
    return _NON_WORD.sub(r"\\\1", v)


_REQUIRED_CACHE: dict[str, tuple[str, ...]] = {}
# what keeps a %{TAG} template's superset form out (_template_superset):
# backtracking verbs, recursion, \Q...\E quoting, inline extended mode, a
# tag followed by + (possessive: (?s:.+)++ would leave nothing to the rest)
_SUPERSET_UNSAFE = re.compile(r"\(\*|\(\?(?:R|0)|\\Q|\(\?[\^a-zA-Z-]*x|%\{[^}]*\}\+")


def _template_superset(pat: str, mods: str, required: tuple[str, ...]):
    """The template rule pat with every %{TAG} replaced by (?s:.+) (any
    non-empty string; tag values are non-empty), compiled once per rule
    set, or None.  Only when every tag of pat is required
    (_required_templates: at depth 0, outside any group, class or
    repeat, no top-level alternation): a match of the rule for some values
    then passes through each tag's alternation with what precedes and
    follows it unchanged, and the same path matches the superset, so
    a subject it does not match is matched by no values (Run._templates
    skips compiling the rule for this message's values; most messages
    whose values appear in a subject still hold no match)."""
    if not required or "x" in mods or len(_TEMPLATE.findall(pat)) != len(required) \
            or _SUPERSET_UNSAFE.search(pat):
        return None
    try:
        return perlre.compile_search_pattern(_TEMPLATE.sub("(?s:.+)", pat), mods)
    except perlre.PerlRegexError:
        return None


def _superset_matches(sup, subjects: list[bytes]) -> bool:
    """Does the superset form sup match one of subjects?  (True when
    libpcre2 gives up on one: the rule itself then runs.)"""
    try:
        for s in subjects:
            if sup.search(s):
                return True
    except RegexExecError:
        return True
    return False


def _required_templates(pat: str) -> tuple[str, ...]:
    """The %{TAG} templates of pat that every match must contain literally:
    at depth 0 (outside any group or class) of a pattern with no top-level
    alternation."""
    got = _REQUIRED_CACHE.get(pat)
    if got is not None:
        return got
    out: list[str] = []
    depth = 0
    i = 0
    n = len(pat)
    in_class = False
    while i < n:
        c = pat[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pat.startswith("[]", i) or pat.startswith("[^]", i):
                i += 2 if pat[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out = []
            break
        elif c == "%" and depth == 0:
            m = _TEMPLATE.match(pat, i)
            if m:
                j = m.end()
                if j < n and pat[j] in "?*{":
                    i = j
                    continue        # optional or repeated: not required
                out.append(m.group(1))
                i = j
                continue
        i += 1
    got = _REQUIRED_CACHE[pat] = tuple(out)
    return got


def _plain_re2(rr: RRule) -> bool:
    """Is RE2 alone the rule's exact engine on any subject (no pre-check,
    no libpcre2 or `re` confirmation)?"""
    p = rr.pattern
    return (rr.pre is None and not p._ref_confirms and not p._nl_unsafe
            and p.__dict__["_spec"][0] is not None)


def _prepare_pattern(p, multiple: bool) -> None:
    """Compile the lazy regex objects of a rule's LazyPattern (rulecache)
    that its searches and match counts can use (see LazyPattern.search,
    count_matches, Pattern.spans): RE2 first; libpcre2 where it confirms or
    stands in for RE2; `re` where count_matches or a search would use it."""
    if not isinstance(p, rulecache.LazyPattern):
        return
    if p._ref_confirms:
        p._ref  # noqa: B018 - builds it
        return
    rx = p._re2
    if rx is None or p._nl_unsafe:
        ref = p._ref
        if multiple or ref is None:
            p._py  # noqa: B018 - builds it


# a minimal message scanned by CompiledRules.prepare: the evals' per-rule-set
# tables (freemail, address lists, ...) are built on the first scan
_PRIME_MESSAGE = (b"Received: from a.example (a.example [192.0.2.1]) by b.example with ESMTP"
                  b" id 1; Mon, 2 Jan 2023 10:00:00 +0000\n"
                  b"From: A <a@a.example>\nTo: b@b.example\nSubject: hello\n"
                  b"Date: Mon, 2 Jan 2023 10:00:00 +0000\nMessage-ID: <1@a.example>\n"
                  b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
                  b"--b\nContent-Type: text/plain\n\nhello http://www.example.com/\n"
                  b"--b\nContent-Type: text/html\n\n<html><body><p>hello <a href=\"http://"
                  b"www.example.com/\">x</a><img src=\"cid:i\"></p></body></html>\n--b--\n")


def _no_hits(data: bytes) -> set[int]:
    return set()


# the body area's long Hyperscan expressions (fuzzy-word phrases, ...) in
# one database: scans ~0.03 ms/message faster than two (hsdb._groups)
BODY_LONG_GROUPS = 1
GATE_BIG = 16384            # RE2 forms at least this long share a union gate (Run._lines)
GATE_MEM = 512 << 20        # the union's RE2 budget (a cap: states are built as needed)
ASCII_GATE_SPARE = 4        # spam-asciigate-* files kept besides the one in use (other areas')


def _gate_form(rr: RRule, exact: bool):
    """The RE2 regex Run._lines tests a line-area rule with first on the
    joined buffer (no match there: the rule does not hit), or None when it
    starts otherwise (a Hyperscan answer, a literal or match count, a
    capture)."""
    if rr.capture is not None:
        return None
    rx, _jexact, countable = rr.joined()
    if rr.multiple:
        if countable:
            return None
        return rx if rx is not None else rr.loose()
    if exact:
        return None
    return rx if rx is not None else rr.loose()


DIRECT_LINES = 8            # Run._lines: at most this many subjects, all reported, go _direct too


def _direct(rr: RRule) -> bool:
    """May Run._lines confirm a report of rr (not `multiple`, no capture,
    no RE2 form of the joined buffer, its per-line pre-check rr.pre its
    loose form) on the reported subjects with rr.pattern.search alone?
    Where that search is libpcre2 or an exact RE2 regex (a rule-cache
    pattern), not Python `re`: the same answers (rr.pre and the loose form
    are supersets), without the two RE2 passes that nearly always pass
    there (19.5 -> 8.6 us per body over the corpus's reports)."""
    d = rr._direct
    if d is None:
        p = rr.pattern
        d = rr._direct = isinstance(p, rulecache.LazyPattern) and (
            bool(p._ref_confirms) or (p._re2 is not None and not p._nl_unsafe)
            or p._ref is not None)
    return d


def _line_gates(rules: list[RRule], db: AreaDatabase,
                cache_dir: str | None = None) -> list[tuple[object, frozenset]]:
    """Union gates of a line area: the rules a scan always (or nearly
    always: a solo entry) has to confirm with a very long RE2 regex on the
    joined buffer (SpamAssassin's fuzzy-word phrase rules, __MY_MALWARE,
    __PAY_ME, ...: 30-200 kB each) share one union, whose single search
    rules them all out when it fails (an RE2 pass for all instead of one
    per rule; on a first pass the union also builds fewer DFA states than
    its parts).  The shorter ones (__FILL_THIS_FORM_*) stay apart: in a
    union they cost more on a first pass than they save; but pairs of them
    share a family gate (_family_gates), appended to the list.  Each gate
    is (RE2 regex, member rule indexes); past a gate, Run._lines confirms
    its members only on the subjects it matches alone (a member's match
    in a subject is one of the gate's there).  A rule left out of these
    whose RE2 form is at least WIDE_GATE_MIN long gets a gate of its own
    where Hyperscan takes its wide form (_wide_gates)."""
    groups: dict[bool, list[tuple[int, object]]] = {}
    for i, rr in enumerate(rules):
        if i not in db.always and not (rr.entry is not None and rr.entry.solo):
            continue
        form = _gate_form(rr, i in db.exact)
        if form is None or len(form.pattern) < GATE_BIG:
            continue
        groups.setdefault(True, []).append((i, form))
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        src = b"|".join(b"(?:" + f.pattern + b")" for _i, f in members)
        try:
            urx = _re2._compile(src, 0, GATE_MEM)
        except Exception:  # noqa: BLE001, S112 - pyre2 raises several types: no gate
            continue
        out.append((urx, frozenset(i for i, _f in members)))
    out += _family_gates(rules, db, cache_dir)
    return out + _wide_gates(rules, db, frozenset().union(*(m for _g, m in out)), cache_dir)


def _final_reports(rules: list[RRule], db: AreaDatabase,
                   subject_first: bool) -> frozenset:
    """The rules of a line area whose Hyperscan report is their hit in
    Run._lines (exact, not `multiple`, no capture, scanned with the whole
    buffer: not `nosubject` where the area's first subject is the
    Subject): the loop's own test (i in exact and b is buf) picks the same
    rules, one at a time (7.4k of the 19.5k rules reported on 1200 corpus
    messages' line areas)."""
    return frozenset(i for i, rr in enumerate(rules)
                     if i in db.exact and not rr.multiple and rr.capture is None
                     and not (subject_first and rr.nosubject))


WIDE_GATE_MIN = 4000        # RE2 forms this long (not in another gate) get a wide gate


def _wide_gates(rules: list[RRule], db: AreaDatabase, taken: frozenset,
                cache_dir: str | None = None) -> list[tuple[object, frozenset]]:
    """Gates of one rule each (gatehs.wide_gate: a Hyperscan scan of a
    superset of the rule's joined form) for the rules of a line area a scan
    always (or nearly always: a solo entry) confirms with an RE2 form of
    at least WIDE_GATE_MIN bytes that no other gate holds (the rules of
    `taken`): __FILL_THIS_FORM_PARTIAL and _RAW, whose RE2 search cost
    ~15-25 us per body on a first pass (their Hyperscan prefilter form
    reports on nearly every body; the wide form on ~2-8%)."""
    out = []
    for i, rr in enumerate(rules):
        if i in taken or (i not in db.always and not (rr.entry is not None and rr.entry.solo)):
            continue
        form = _gate_form(rr, i in db.exact)
        if form is None or len(form.pattern) < WIDE_GATE_MIN:
            continue
        gate = wide_gate(*rr.source, form.pattern, cache_dir)
        if gate is not None:
            out.append((gate, frozenset((i,))))
    return out


class _NoMatch:
    """A gate whose ASCII form cannot match (_ascii_gate)."""

    pattern = b""

    @staticmethod
    def contains(data: bytes) -> bool:
        return False


def _ascii_gate(urx, cache_dir: str | None = None):
    """The RE2 form of a gate restricted to ASCII text (asciire.ascii_only:
    the same answers on ASCII text), when it is less than half as long
    (the union of the fuzzy-word rules: ~4x smaller, its first searches
    ~2x cheaper), else None (the gate itself).  The restriction (~0.5 s of
    CPU for that union) is kept in cache_dir (spam-asciigate-HASH; the
    ASCII_GATE_SPARE most recently used others are kept with it).  Where
    Hyperscan takes the restriction exactly, its Hyperscan form instead
    (gatehs.hs_gate: one scan of ~4 us per body instead of RE2's DFA
    building on every new text; the same answers on ASCII text)."""
    if len(urx.pattern) < GATE_BIG:
        return None
    key = hashlib.sha256(b"%d\0" % _ASCII_VERSION + urx.pattern).hexdigest()[:40]
    a = cached(cache_dir, "spam-asciigate-", key, lambda: ascii_only(urx.pattern),
               ASCII_GATE_SPARE)
    if a is None:
        return _NoMatch()
    if len(a) * 2 > len(urx.pattern):
        return None
    hg = hs_gate(a, cache_dir)      # its exact Hyperscan form, when taken (gatehs)
    if hg is not None:
        return hg
    try:
        return _re2._compile(a, 0, GATE_MEM)
    except Exception:  # noqa: BLE001 - pyre2 raises several types: the gate itself
        return None


FAMILY_GATE_MEM = 64 << 20  # RE2 budget of a family gate (a cap: states are built as needed)
_COUNTED_TAIL = re.compile(r"\{(\d+)\}\Z")
_UNSAFE_FAMILY = re.compile(r"\(\?[>=!<]|\\[1-9gkQ]|[*+?}]\+")


def _group_spans(p: str) -> dict[int, int] | None:
    """{index of "(": index of its ")"} for a Perl regex source (escapes
    and character classes skipped), or None when the parentheses do not
    balance."""
    spans: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and p[j] == "^":
                j += 1
            if j < n and p[j] == "]":
                j += 1
            while j < n and p[j] != "]":
                j += 2 if p[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            stack.append(i)
        elif c == ")":
            if not stack:
                return None
            spans[stack.pop()] = i
        i += 1
    return spans if not stack else None


def _counted_group(p: str) -> tuple[str, int] | None:
    """(X, n) for a pattern that is exactly (?:X){n}, else None."""
    m = _COUNTED_TAIL.search(p)
    if m is None or not p.startswith("(?:") or _UNSAFE_FAMILY.search(p):
        return None
    spans = _group_spans(p)
    if spans is None or spans.get(0) != m.start() - 1:
        return None
    return p[3:m.start() - 1], int(m.group(1))


def _drops_optional(big: str, small: str) -> bool:
    """Is small the regex big with one optional group (?:...)? left out
    (so that small's matches are big's)?"""
    d = len(big) - len(small)
    if d <= 0:
        return False
    spans = _group_spans(big)
    if spans is None:
        return False
    for o, c in spans.items():
        if (c + 2 - o == d and big.startswith("(?:", o) and big[c + 1:c + 2] == "?"
                and big[c + 2:c + 3] != "+" and big[:o] + big[c + 2:] == small):
            return True
    return False


def _family_gates(rules: list[RRule], db: AreaDatabase,
                  cache_dir: str | None = None) -> list[tuple[object, frozenset]]:
    """Family gates of a line area: two rules always confirmed with RE2
    whose patterns are (?:X){n} and (?:Y){m}, Y being X or X with an
    optional group left out (__FILL_THIS_FORM_SHORT2 / _LONG2, _SHORT1 /
    _LONG1), both need min(n, m) consecutive X: one RE2 search of
    (?:X){min(n, m)} rules the pair out on nearly every message (a first
    pass builds the DFA states of one regex instead of two).  A match of
    either needs one of the gate in the same subject: Run._lines confirms
    them on the subjects the gate matches (a few lines, where their own
    RE2 / Python `re` forms build few DFA states or backtrack little).
    Where X has a required item (<FF_ALL>), the gate is an atom gate
    (postier.content.spam.gateatom): the same answers, from a Hyperscan
    scan for that item and short anchored RE2 walks after its reports."""
    cands = []
    for i, rr in enumerate(rules):
        if i not in db.always and not (rr.entry is not None and rr.entry.solo):
            continue
        cg = _counted_group(rr.source[0])
        if cg is not None:
            cands.append((i, rr.source[1], cg))
    out = []
    used: set[int] = set()
    for a, (i, mods, (x, n)) in enumerate(cands):
        for j, mods2, (y, m) in cands[a + 1:]:
            if i in used or j in used or mods != mods2:
                continue
            big = x if x == y or _drops_optional(x, y) else y if _drops_optional(y, x) else None
            if big is None:
                continue
            try:
                rx = perlre.joined_re2(f"(?:{big}){{{min(n, m)}}}", mods,
                                       max_mem=FAMILY_GATE_MEM)[0]
            except Exception:  # noqa: BLE001 - no gate then
                rx = None
            if rx is not None:
                # its atom test first where X has one (gateatom: same answers)
                out.append((atom_gate(big, mods, min(n, m), rx, cache_dir) or rx, frozenset((i, j))))
                used |= {i, j}
    return out


def _looks(node, out: list) -> list:
    """The look-around nodes of a perlre tree."""
    kind = node[0]
    if kind == "look":
        out.append(node)
    if kind in ("seq", "alt"):
        for c in node[1]:
            _looks(c, out)
    elif kind in ("group", "atomic", "rep", "look"):
        _looks(node[1], out)
    return out


def _drop_node(node, target):
    """node with target (a sub-tree, by identity) left out of the sequence
    that holds it, or None when it is not in a sequence of node."""
    kind = node[0]
    if kind in ("seq", "alt"):
        kids = list(node[1])
        for k, c in enumerate(kids):
            if kind == "seq" and c is target:
                return ("seq", kids[:k] + kids[k + 1:])
            d = _drop_node(c, target)
            if d is not None:
                return (kind, kids[:k] + [d] + kids[k + 1:])
        return None
    if kind in ("group", "atomic", "rep", "look"):
        d = _drop_node(node[1], target)
        if d is not None:
            return (kind, d) + tuple(node[2:])
    return None


NEEDLE_MIN = 3              # shorter look-ahead texts are nearly always there


def _needle(node) -> bytes | None:
    """The text every match of a look-around's sub-tree starts with,
    lower-cased: its leading single bytes or ASCII letter case pairs (at
    least NEEDLE_MIN of them), else None."""
    items = node[1] if node[0] == "seq" else [node]
    out = bytearray()
    for it in items:
        if it[0] != "set" or not 1 <= len(it[1]) <= 2:
            break
        b = min(it[1])
        if len(it[1]) == 2 and not (65 <= b <= 90 and set(it[1]) == {b, b + 32}):
            break
        out.append(b + 32 if 65 <= b <= 90 else b)
    return bytes(out) if len(out) >= NEEDLE_MIN else None


def _lookahead_gap(pat: str, mods: str, entry: Entry) -> bytes | None:
    """For a line-area rule whose Hyperscan entry is inexact only because
    of one negative look-ahead whose matches start with plain text
    (__LOCAL_PP_NONPPURL's (?!paypal\\.com), FUZZY_MILLION's
    (?!milli?[o\\xf3\\xd3]n)): that text, lower-cased, else None.  Where the
    lower-cased joined buffer does not hold it, the look-ahead holds
    everywhere and the report is final (Run._lines).  Proved here: the
    pattern without the look-ahead parses to the tree without it and has
    an exact Hyperscan entry with the same expressions and flags."""
    if entry.exact or not entry.exprs:
        return None
    tree = perlre._parse(pat, mods)
    if tree is None:
        return None
    looks = _looks(tree, [])
    if len(looks) != 1 or looks[0][2] or not looks[0][3]:     # one (?!...)
        return None
    needle = _needle(looks[0][1])
    want = _drop_node(tree, looks[0])
    spans = _group_spans(pat)
    if needle is None or want is None or spans is None:
        return None
    for o, c in spans.items():
        if not pat.startswith("(?!", o):
            continue
        bare = pat[:o] + pat[c + 1:]
        if perlre._parse(bare, mods) != want:
            return None
        try:
            e2 = perlre.hyperscan_entry(perlre.compile_pattern(bare, mods), bare, mods,
                                        joined=True)
        except perlre.PerlRegexError:
            return None
        if e2.exact and list(e2.exprs) == list(entry.exprs) and e2.flags == entry.flags:
            return needle
        return None
    return None


def _pcre2_fast(rr: RRule) -> tuple | None:
    """(pcre2_match_8's address, code and match data addresses, Pcre2Regex,
    newline-only) of a rule whose search() answers with libpcre2 alone once
    its RE2 superset (rr.pre) is gone or absent: a pattern libpcre2 confirms,
    or a rule-cache pattern without RE2 (newline-only False) or whose RE2
    form is unsafe on a subject ending in a newline (newline-only True:
    libpcre2 answers those subjects only).  spamhdr.header_rules then calls
    pcre2_match_8 itself, with the options search() uses, when rr.pre is
    None.  (0, 0, 0, pattern, False) for a rule-cache pattern whose RE2
    form answers every subject (header_rules asks pattern._re2 itself);
    else (not `multiple` rules only) None."""
    p = rr.pattern
    if rr.multiple:
        return None
    if getattr(p, "_ref_confirms", False):
        nl_only = False
    elif isinstance(p, rulecache.LazyPattern):     # the rule cache's: libpcre2 before `re`
        nl_only = p.__dict__["_spec"][0] is not None   # an RE2 form (not built here)
        if nl_only and not p._nl_unsafe:
            return (0, 0, 0, p, False)              # RE2 answers every subject
    else:
        return None
    fn = pcre2_match_address()
    ref = p._ref if fn else None                # a LazyPattern compiles it here
    if not isinstance(ref, Pcre2Regex):
        return None
    spec = p.__dict__.get("_spec") if isinstance(p, rulecache.LazyPattern) else None
    if spec is not None and spec[3] is not None and not spec[3] & _PCRE2_EXTENDED:
        lazy = _lazy_bridges(spec[2])
        if lazy is not None:
            # (the item holds it: its addresses stay valid)
            ref = Pcre2Regex(lazy, spec[3])
            rulecache._jit_compile(ref)     # (as the rule cache JIT-compiles its own)
    code, md = ref.addresses
    return (fn, code, md, ref, nl_only)


_PCRE2_EXTENDED = 0x00000080
# an unbounded line bridge of a libpcre2 pattern (SA's "any lines, then ...")
_LINE_BRIDGE = rb"(?:[^\n]+\n+)*"
# what _lazy_bridges does not read: \Q..\E, backtracking verbs, comments,
# extended mode (its # comments), a recursion into the whole pattern
_BRIDGE_UNSAFE = re.compile(rb"\\Q|\(\*|\(\?#|\(\?[\^a-zA-Z-]*x|\(\?(?:R|[+-]?0\))|\\g[<'{]?[+-]?0")


def _lazy_bridges(src: bytes) -> bytes | None:
    """src with each line bridge (_LINE_BRIDGE) outside any group and
    class made lazy (`*?`); None when it has none (or constructs this
    reader does not follow).  Whether a pattern matches a subject at all
    does not depend on a quantifier being greedy or lazy there (the
    backtracking search tries the same ways, in another order; nothing
    around a top-level group can cut it short without a verb): the header
    walk's confirmation of a yes/no rule (_pcre2_fast) may use this form.
    Greedy, such a bridge runs to the end of the value and back for every
    candidate start (__SUBJ_HAS_TO_2 on ALL: ~30% of its time)."""
    if _LINE_BRIDGE not in src or _BRIDGE_UNSAFE.search(src):
        return None
    out = []
    n = len(src)
    i = last = depth = 0
    while i < n:
        c = src[i]
        if c == 0x5C:                           # an escape: two bytes
            i += 2
            continue
        if c == 0x5B:                           # a class, up to its closing ]
            j = i + 1
            if src[j:j + 1] == b"^":
                j += 1
            if src[j:j + 1] == b"]":            # (a leading ] is a member)
                j += 1
            while j < n and src[j] != 0x5D:
                if src[j] == 0x5C:
                    j += 2
                    continue
                if src[j:j + 2] == b"[:":       # [:alpha:]
                    k = src.find(b":]", j + 2)
                    if k >= 0:
                        j = k + 2
                        continue
                j += 1
            i = j + 1
            continue
        if c == 0x28:
            if depth == 0 and src.startswith(_LINE_BRIDGE, i):
                e = i + len(_LINE_BRIDGE)
                if src[e:e + 1] not in (b"?", b"+"):
                    out.append(src[last:e] + b"?")
                    last = i = e
                    continue
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth < 0:
                return None
        i += 1
    if not out or depth != 0 or i != n:
        return None
    out.append(src[last:])
    return b"".join(out)


def _header_count(rr: RRule, data: bytes) -> int:
    """Run._confirm_count of a `multiple` header rule, searching first
    where the count would run Python `re` (a pattern RE2 cannot answer on
    this value): most values Hyperscan reports hold no match at all, and
    libpcre2's search says so much faster than `re`'s finditer.  A
    superset (rr.pre) that hardly ever rules a value out is dropped after
    PRE_TRIAL values (RRule.pre_rules_out: __RAND_HEADER's passes on most
    header blocks, a second pass over each)."""
    if rr.pre is not None and rr.pre_rules_out(data):
        return 0
    p = rr.pattern
    if not p._ref_confirms and (p._re2 is None or (p._nl_unsafe and data.endswith(b"\n"))):
        try:
            if not p.search(data):
                return 0
        except RegexExecError:
            pass                # libpcre2 gave up: the count decides
    return count_matches(p, data, rr.maxhits)


def count_matches(p, data: bytes, limit: int = 0) -> int:
    """Non-overlapping matches of a Pattern in data (Perl's while //g)."""
    n = 0
    if not p._ref_confirms:
        rx = p._re2
        if rx is None or (p._nl_unsafe and data.endswith(b"\n")):
            rx = p._py
    else:
        rx = None           # libpcre2 confirms: no `re` object is needed (nor compiled)
    if rx is not None:
        return _eng.count_iter(rx, data, limit)
    pos = 0
    while pos <= len(data):
        sp = p.spans(data[pos:], 1)
        if sp is None:
            break
        s, e = sp[0]
        n += 1
        if limit and n >= limit:
            break
        pos += e if e > s else e + 1
    return n


def count_line_starts(py, lo, data: bytes, limit: int = 0) -> int:
    """count_matches for a Python `re` pattern whose matches all start at
    the start of data or just after a newline and are never empty
    (RRule.bol_loose): `re` is tried only at the line starts where lo, its
    loose RE2 form (head: \\A or the newline before the start), matches,
    the next try at or after the end of the last match, as finditer does."""
    n = 0
    pos = 0
    p = 0
    end = len(data)
    match = py.match
    lmatch = lo.match
    find = data.find
    while p < end:
        if p >= pos and lmatch(data, p - 1 if p else 0) is not None:
            m = match(data, p)
            if m is not None:
                n += 1
                if limit and n >= limit:
                    break
                pos = m.end()
        q = find(b"\n", p)
        if q < 0:
            break
        p = q + 1
    return n


class Run:
    """One message through the compiled rules."""

    def __init__(self, cr: CompiledRules, data: bytes):
        self.cr = cr
        self.data = data
        self.values: dict[str, float] = {}
        self.captures: dict[str, list[str]] = {}
        self.msg = Message(data, cr.normalize, body_part_scan_size=cr.body_scan,
                           rawbody_part_scan_size=cr.rawbody_scan)
        msg = self.msg
        # the decoded values without get_headers' "\n": parse_relays gives
        # the same relays (the line's whitespace is collapsed and stripped)
        # without a whitespace pass over every line for its last character
        received = [v.decode("latin-1") for v in msg.header_all("Received")]
        hdrs = msg.headers
        orig = []
        for h in cr.originating:
            v = hdrs.get(h.lower())             # get_header(h): the last value
            orig.append((v[-1] + b"\n").decode("latin-1") if v else "")
        self.relays = parse_relays(received, orig, cr.trusted, cr.internal, cr.msa)
        self.hv = HeaderView(msg, self.relays, cr.envelope_sender_header, cr.registry)
        self._uris: list[bytes] | None = None
        self._udl: dict | None = None
        self._body: list[bytes] | None = None
        self.eval_ctx = None

    # -- lazily computed views
    def body(self) -> list[bytes]:
        if self._body is not None:
            return self._body
        return self.msg.rendered_body()

    def set_body(self, lines: list[bytes]) -> None:
        """Replace the body text rules see from now on (FreeMail's side effect)."""
        self._body = lines

    def rawbody(self) -> list[bytes]:
        return self.msg.decoded_body()

    def uri_detail(self) -> dict:
        if self._udl is None:
            self._udl = self.cr.uris.detail_list(self.body(), self.msg.html_all())
        return self._udl

    def uri_list(self) -> list[bytes]:
        if self._uris is None:
            self._uris = self.cr.uris.uri_bytes(self.uri_detail())
        return self._uris

    def hit(self, name: str, value: float = 1, multiple: bool = False) -> None:
        v = self.values.get(name)
        if v and not multiple:
            return
        if not value or value <= 0:
            value = 1
        self.values[name] = (v or 0) + value

    # -- the run
    def execute(self) -> None:
        """All the steps (steps()) at once."""
        for _ in self.steps():
            pass

    def steps(self, headers_done: bool = False):
        """The rule areas in Plugin::Check's order (head, head evals, body,
        uri, body evals, rawbody, rawbody evals, full, full evals, metas):
        an eval may change what later areas see (FreeMail edits the body).
        A generator that pauses between phases: CompiledRules.run_many
        runs a batch of messages phase by phase (headers_done: it has
        walked the header rules (_headers) of the batch already)."""
        cr = self.cr
        if not headers_done:
            self._headers()
        # exists: a plain name the message lacks falls back to its metadata
        # string (HeaderView.get's way); hit(name) inline: a rule is set once, to 1
        values = self.values
        for name in _hdr.exists_rules(self.msg.headers, self.msg.metadata.get("strings", {}),
                                      cr.exists_plain):
            if not values.get(name):
                values[name] = 1
        for r in cr.exists_other:
            if self.hv.get(r.header):
                self.hit(r.name)
        yield
        self._evals((C.HEAD_EVAL,))
        yield
        self._lines("body", self.body(), subject_first=True)
        yield
        if cr.templates:
            self._templates()
        self._lines("uri", self.uri_list())
        yield
        self._evals((C.BODY_EVAL,))
        yield
        self._mimeheaders()
        yield
        self._lines("rawbody", self.rawbody())
        yield
        self._evals((C.RAWBODY_EVAL,))
        yield
        self._full()
        yield
        self._evals((C.FULL_EVAL,))
        yield
        cr.run_metas(self.values)
        # the scored rules that hit, in name order; a `tflags multiple` rule
        # scores every hit, listed once per hit (SpamAssassin's got_hit per
        # match: tests=RULE,RULE,...).  (score, multiple) of every rule that
        # can be listed is worked out once per rule set and score set.
        scored = cr.__dict__.get("_scored")
        rs = cr.rs
        if scored is None or scored[0] != rs.score_set:
            scored = cr.__dict__["_scored"] = (rs.score_set, {
                n: (rs.score(n), rs.has_flag(n, "multiple")) for n in rs.scores
                if not n.startswith("__") and rs.score(n) != 0})
        table = scored[1]
        values = self.values
        hits: list[tuple[str, float]] = []
        # (the few scored names sorted, not the ~70 values; the key views'
        # intersection looks the values up in the table without bytecode)
        for n in sorted(values.keys() & table.keys()):
            t = table[n]
            if t[1]:
                hits.extend([(n, t[0])] * max(1, int(values[n])))
            else:
                hits.append((n, t[0]))
        self.hits = hits
        self.score = sum(s for _, s in hits)

    def _confirm_count(self, rr: RRule, data: bytes, limit: int) -> int:
        if rr.linelen:
            return 1 if _eng.long_line(data, rr.linelen) else 0
        if rr.multiple:
            if rr.pre is not None and not rr.pre.contains(data):
                return 0
            return count_matches(rr.pattern, data, limit)
        return 1 if rr.search(data) else 0

    def _capture(self, rr: RRule, data: bytes) -> None:
        if rr.capture is None:
            return
        s = data.decode("latin-1")
        for m in (rr.capture.finditer(s) if rr.multiple else filter(None, [rr.capture.search(s)])):
            for k, v in m.groupdict().items():
                if v:
                    lst = self.captures.setdefault(k, [])
                    if v not in lst:
                        lst.append(v)

    def _headers(self) -> None:
        """The header rules, group by group (CompiledRules.header_plan): the
        group's value (HeaderView.values: one call for all groups), its
        Hyperscan databases called directly (AreaDatabase.part_dbs), then
        the reported rules confirmed unless the report is final; the walk
        is compiled (postier._native.spamhdr.header_rules, over the plan
        compiled once: CompiledRules.header_cplan).  A group's
        results for a short value it has seen in an earlier message come
        from CompiledRules.header_memo (MIME-Version, Content-Type, To,
        X-Mailer, ... repeat across messages)."""
        cr = self.cr
        db = cr.dbs.get("header")
        if db is None:
            return
        _hdr.header_rules(self, cr.header_cplan, None,
                          self.hv.values(cr.header_requests, cr.header_names), db.part_dbs(),
                          _header_count, _eng.on_match, _eng.on_first_match, _ScanTerminated,
                          cr.header_memo)

    def _single(self, db: AreaDatabase, scan, rules: list[RRule], idxs, val: bytes, limit: int = 0):
        """(rule, match count) for the rules idxs of a one-subject area on val
        (for a rule that is not `multiple`, a count of 1 means "matches")."""
        if _SEPB in val:
            hits = None                 # a NUL: no joined form; every rule is a candidate
        else:
            hits = scan(_SEPB + val + perlre.JOIN_TAIL)
        exact, always = db.exact, db.always
        for i in idxs:
            rr = rules[i]
            if hits is None or i in hits:
                if hits is not None and i in exact and not rr.multiple:
                    n = 1
                else:
                    n = self._confirm_count(rr, val, limit or rr.maxhits)
            elif i in always:
                n = self._confirm_count(rr, val, limit or rr.maxhits)
            else:
                n = 0
            yield rr, n

    def _full(self) -> None:
        cr = self.cr
        db = cr.dbs.get("full")
        if db is None:
            return
        rules = cr.area_rules["full"]
        val = self.msg.pristine
        for rr, n in self._single(db, db.scanners().get(0, _no_hits), rules, range(len(rules)),
                                  val):
            if n:
                self.hit(rr.name, n if rr.multiple else 1, rr.multiple)
                self._capture(rr, val)

    def _lines(self, area: str, lines: list[bytes], subject_first: bool = False) -> None:
        """The rules of a line area on its subjects, scanned as one joined
        buffer (perlre._joined): one Hyperscan call per area.  A report
        that must be confirmed (a prefilter entry) is confirmed on the
        subjects holding its reports only (_reported); where its RE2
        pre-checks would nearly always pass there, by its exact engine
        alone (_direct)."""
        cr = self.cr
        db = cr.dbs.get(area)
        if db is None or not lines:
            return
        rules = cr.area_rules[area]
        buf = perlre.joined_buffer(lines)
        if _eng.byte_count(buf, 0) != len(lines) + 2:
            self._lines_slow(area, lines, subject_first)     # a subject holds a NUL
            return
        found, ends = db.scan_ends(buf)
        found.update(db.always)
        gates = cr.__dict__.setdefault("_line_gates", {})
        g = gates.get(area)
        if g is None:
            g = gates[area] = _line_gates(rules, db, cr.cache_dir)
        # on ASCII text, the gates' ASCII forms where they are much smaller;
        # on other text, their Hyperscan forms then RE2 on the non-ASCII subjects
        ag = cr.__dict__.setdefault("_line_gates_ascii", {})
        a = ag.get(area)
        if a is None or a[0] is not g:
            asc = [_ascii_gate(urx, cr.cache_dir) for urx, _m in g]
            a = ag[area] = (g, asc, [MixedGate(x, urx) if isinstance(x, HsGate) else None
                                     for x, (urx, _m) in zip(asc, g, strict=True)])
        agates = a[1] if buf.isascii() else a[2]
        gated: frozenset = frozenset()  # members of the gates that passed
        per_line: dict[int, object] = {}    # member of a gate that passed -> that gate
        for k, (urx, members) in enumerate(g):
            if not members.isdisjoint(found):
                if agates is not None and agates[k] is not None:
                    urx = agates[k]
                if not urx.contains(buf):
                    found -= members    # none of their first RE2 checks can pass
                else:
                    gated = gated | members
                    per_line.update(dict.fromkeys(members, urx))
        narrowed: dict = {}     # (gate, nosubject) -> (joined buffer, subjects the gate matches)
        exact = db.exact
        always = db.always
        prefilter = db.prefilter    # confirmed where Hyperscan reported (_reported)
        low = None          # buf.lower(), for the rules with a look-ahead gap
        rest = None
        finals = cr.__dict__.setdefault("_line_finals", {})
        final = finals.get((area, subject_first))
        if final is None:
            final = finals[area, subject_first] = _final_reports(rules, db, subject_first)
        done = found & final
        if done:
            # Hyperscan's report is their hit (hit(name) without the loop's tests)
            values = self.values
            for i in done:
                name = rules[i].name
                if not values.get(name):
                    values[name] = 1
            found = found - done
        for i in found:
            rr = rules[i]
            if subject_first and rr.nosubject:
                if rest is None:
                    rest = buf[len(lines[0]) + 1:]
                b, ls = rest, lines[1:]
                if not ls:
                    continue
            else:
                b, ls = buf, lines
            gate = per_line.get(i)
            if gate is not None and rr.capture is None and not (i in exact and b is buf):
                # only the subjects the gate matches can hold a match
                key = (gate, b is not buf)
                nb = narrowed.get(key)
                if nb is None:
                    subjects = getattr(gate, "subjects", None)  # one scan (AtomGate, HsGate)
                    sub = (subjects(b, ls) if subjects is not None
                           else [s for s in ls if gate.contains(perlre.joined_buffer([s]))])
                    nb = narrowed[key] = (perlre.joined_buffer(sub), sub)
                b, ls = nb
                if not ls:
                    continue
            elif rr.capture is None:
                # (an exact entry's reports, too, hold every match's end: a
                # count line by line needs only the subjects holding them)
                if (rr.multiple and (i in prefilter or (i in exact and not rr.joined()[2]))
                        and not db.entries[i].solo):
                    b, ls = self._reported(i, ends, lines, b, ls)
            if rr.capture is not None:
                self._line_rule(rr, ls)
                continue
            if rr.multiple:
                rx, _ex, countable = rr.joined()
                if countable:
                    lits = rr.literals()
                    if lits is not None:
                        n = lits.count(b, rr.maxhits)
                    else:
                        n = _eng.count_iter(rx, b, rr.maxhits)
                    if n:
                        self.hit(rr.name, n, True)
                else:
                    lo = rr.loose() if rx is None else rx
                    # (past a gate, a loose form that is also the per-line
                    # pre-check answers in _line_rule's pass alone, as below;
                    # an exact entry's reports are matches of its joined form,
                    # in the subjects _reported kept: that search would pass)
                    if (lo is None or (lo is rr.pre and i in gated)
                            or (i in exact and gate is None and b is not rest)
                            or lo.contains(b)):
                        self._line_rule(rr, ls)
                continue
            if i in exact and b is buf:
                self.hit(rr.name)
                continue
            if rr.needle is not None and b is buf and i not in always:
                # Hyperscan's report is final where the look-ahead's text is absent
                if low is None:
                    low = buf.lower()
                rr._needle_try += 1
                if rr.needle not in low:
                    rr._needle_ok += 1
                    self.hit(rr.name)
                    continue
                if rr._needle_try == PRE_TRIAL and rr._needle_ok * 4 < PRE_TRIAL:
                    rr.needle = None    # its reports come from that very text: only a cost
            reported = False
            if gate is None and i in prefilter and not db.entries[i].solo:
                nls = len(ls)
                b, ls = self._reported(i, ends, lines, b, ls)
                reported = len(ls) < nls or nls <= DIRECT_LINES
            rx, jexact, _c = rr.joined()
            if rx is not None:
                if not rx.contains(b):
                    continue
                if jexact:
                    self.hit(rr.name)
                    continue
            else:
                lo = rr.loose()
                if reported and lo is rr.pre and _direct(rr):
                    # the subjects holding Hyperscan's reports nearly always
                    # pass the loose form (it and the report both drop the
                    # rule's look-arounds: the fuzzy-word rules' (?!amazon)
                    # is the very text reported): the exact engine alone
                    if _eng.first_hit(rr.pattern.search, ls) >= 0:
                        self.hit(rr.name)
                    continue
                # past a gate, a loose form that is also the per-line pre-check
                # (__FILL_THIS_FORM_LONG2) would scan the text twice: its first
                # pass over the lines answers alone (and builds fewer DFA states)
                if (lo is not None and not (lo is rr.pre and i in gated)
                        and not lo.contains(b)):
                    continue
            self._line_rule(rr, ls)

    @staticmethod
    def _reported(i: int, ends: list, lines: list[bytes], b: bytes,
                  ls: list[bytes]) -> tuple[bytes, list[bytes]]:
        """(joined buffer, subjects) of the subjects of ls (lines, or
        lines[1:] for a `nosubject` rule) holding a Hyperscan report of
        entry i (not solo, not always: hsdb.report_subjects), the only ones
        where the rule can match; (b, ls) when that is all of them."""
        ks = _eng.report_lines(ends, i, lines)
        if len(ls) < len(lines):
            ks = [k - 1 for k in ks if k]
        if not ks or len(ks) >= len(ls):
            return b, ls
        sub = [ls[k] for k in ks]
        return perlre.joined_buffer(sub), sub

    def _line_rule(self, rr: RRule, lines: list[bytes]) -> None:
        """One rule on each subject (SpamAssassin's own loop)."""
        if not rr.multiple:
            if rr.capture is None:
                pre = rr.pre
                if pre is None:
                    if _eng.first_hit(rr.search, lines) >= 0:
                        self.hit(rr.name)
                    return
                # rr.search is pre, then the pattern: the lines pre passes
                # are found by one compiled loop, the pattern runs on those
                search = rr.pattern.search
                i = _eng.first_hit(pre.contains, lines)
                while i >= 0:
                    if search(lines[i]):
                        self.hit(rr.name)
                        return
                    j = _eng.first_hit(pre.contains, lines[i + 1:])
                    i = i + 1 + j if j >= 0 else -1
                return
            for line in lines:
                if rr.search(line):
                    self.hit(rr.name)
                    self._capture(rr, line)
            return
        total = 0
        limit = rr.maxhits
        bol = rr.bol_loose()
        pcre2_count = bol is not None and isinstance(rr.pattern, rulecache.LazyPattern)
        for line in lines:
            if rr.pre is not None and not rr.pre.contains(line):
                continue
            if bol is not None:
                # libpcre2 (JIT: it tries the line starts alone), else `re`
                left = limit - total if limit else 0
                c = rr.pattern.ref_count(line, left) if pcre2_count else None
                total += c if c is not None else count_line_starts(rr.pattern._py, bol, line, left)
            else:
                total += count_matches(rr.pattern, line, limit - total if limit else 0)
            if limit and total >= limit:
                break
        if total:
            self.hit(rr.name, total, True)

    def _lines_slow(self, area: str, lines: list[bytes], subject_first: bool) -> None:
        """_lines when a subject holds a NUL (the joined buffer's separator):
        each rule checked on each subject alone (_line_rule), but only on
        the subjects where it can match.  Those come from one Hyperscan
        scan of the joined buffer with each NUL replaced by a stand-in byte
        (nulsubject.nul_plan: a sound prefilter for every rule but the
        `unsafe` ones, which are checked on every NUL-holding subject) and
        report_subjects; an exact report in NUL-free subjects only is final.
        Rules run in the area's order, as SpamAssassin's loop does."""
        cr = self.cr
        db = cr.dbs[area]
        rules = cr.area_rules[area]
        plans = cr.__dict__.setdefault("_nul_plans", {})
        plan = plans.get(area)
        if plan is None:
            plan = plans[area] = nul_plan([rr.source for rr in rules], cr.cache_dir, area)
        stand_in, unsafe = plan
        nul = frozenset(k for k, s in enumerate(lines) if _SEPB in s)
        buf = perlre.joined_buffer([s.replace(_SEPB, stand_in) for s in lines])
        found, ends = db.scan_ends(buf)
        lens = [len(s) for s in lines]
        exact, always, entries = db.exact, db.always, db.entries
        rest = None
        for i in sorted(found.union(always, unsafe)):
            rr = rules[i]
            first = 1 if subject_first and rr.nosubject else 0
            ks = None           # None: every subject from `first` on
            if i in found and not entries[i].solo:
                ks = report_subjects(ends, i, lens)
                if (ks and ks[0] >= first and nul.isdisjoint(ks) and i in exact
                        and not rr.multiple and rr.capture is None):
                    self.hit(rr.name)
                    continue
                if i in unsafe:
                    ks = sorted(nul.union(ks))
            elif i not in found and i not in always:
                ks = sorted(nul)        # unsafe, not reported: its NUL subjects
            elif rr.direct and i not in unsafe:
                rx = rr.joined()[0]     # RE2 of its joined form: a prefilter here too
                if rx is not None:
                    if first and rest is None:
                        rest = buf[lens[0] + 1:]
                    if not rx.contains(rest if first else buf):
                        continue
            sub = lines[first:] if ks is None else [lines[k] for k in ks if k >= first]
            if sub:
                self._line_rule(rr, sub)

    def _mimeheaders(self) -> None:
        """The mimeheader rules, group by group (one header of each MIME
        part).  A rule with the default range, not concat nor negated (a
        "plain" one, nearly all) is checked only on the part values where
        Hyperscan reports it (or where it is an "always" rule); the others
        take the general loop.  The plain rules' counts on a part value of
        at most _MIME_MEMO_LEN bytes are remembered across messages (per
        group, up to _MIME_MEMO_SIZE values): a value seen before is neither
        scanned nor confirmed again.  The whole area's hits are a function
        of the part values of every group: for values of at most
        _MIME_MEMO_LEN bytes in all they are remembered across messages (up
        to _MIME_MEMO_SIZE) and replayed (most messages are one text part
        with the same few headers)."""
        cr = self.cr
        db = cr.dbs.get("mimeheader")
        if db is None:
            return
        rules = cr.area_rules["mimeheader"]
        parts = self.msg.find_parts(None, False)
        scanners = db.scanners()
        opts = cr._mime_opts
        plan = cr.__dict__.get("_mime_plan")
        if plan is None:
            # per group: its plain rules (all), those of them by if-unset
            # value, its other rules
            plan = []
            for idxs in cr.mime_groups.values():
                pl = [i for i in idxs if opts[i] == (0, 1000, False) and not rules[i].negate]
                by_unset: dict[bytes, list[int]] = {}
                for i in pl:
                    by_unset.setdefault(rules[i].if_unset, []).append(i)
                plan.append((frozenset(pl), [(v, frozenset(r)) for v, r in by_unset.items()],
                             frozenset(i for i in idxs if i not in pl)))
            cr.__dict__["_mime_plan"] = plan
        allvals = []                    # per group: its header value of each part, read once
        for hdr, raw in cr.mime_groups:
            pvals: list = []
            for p in parts:
                if hdr == "ALL":
                    pvals.append(b"".join(p.get_all_headers(raw)))
                elif raw:
                    rv = p.raw_header(hdr)
                    pvals.append(rv[-1] if rv else b"")
                else:
                    pvals.append(p.get_header(hdr))
            allvals.append(tuple(pvals))
        key = tuple(allvals)
        whole = cr.__dict__.setdefault("_mime_whole", {})
        out = whole.get(key)
        if out is None:
            out = self._mime_groups(db, rules, scanners, allvals)
            if sum(len(v) for pv in allvals for v in pv if v) <= _MIME_MEMO_LEN:
                if len(whole) >= _MIME_MEMO_SIZE:
                    whole.clear()
                whole[key] = out
        hit = self.hit
        for args in out:
            hit(*args)

    def _mime_groups(self, db: AreaDatabase, rules: list[RRule], scanners: dict,
                     allvals: list) -> tuple:
        """The hit() calls (name, value, multiple) of _mimeheaders' rules, in
        order, on the groups' part values allvals."""
        cr = self.cr
        opts = cr._mime_opts
        plan = cr._mime_plan
        always = db.always
        check = self._mime_check
        self._mime_scans = scans = {}   # (scanner, value) -> Hyperscan's reports
        absent = cr.__dict__.setdefault("_mime_absent", {})
        memo = cr.__dict__.get("_mime_memo")
        if memo is None:
            # per group: its plain rules' counts by part value, across messages
            memo = cr.__dict__["_mime_memo"] = [{} for _ in cr.mime_groups]
        out = []
        for part, pvals in enumerate(allvals):
            scan = scanners.get(part, _no_hits)
            plain, by_unset, others = plan[part]
            gmemo = memo[part]
            counts: dict[int, int] = {}     # plain rule -> its count over the parts
            for idx, val in enumerate(pvals, 1):
                if idx > 1000:
                    break
                if val is None:
                    # a part without the header: its plain rules see the
                    # if-unset values, the same every time, so their counts
                    # are worked out once per rule set (absent[part])
                    got = absent.get(part)
                    if got is None:
                        got = absent[part] = self._mime_unset_counts(db, scan, rules, by_unset)
                    for i, n in got:
                        counts[i] = counts.get(i, 0) + n
                    continue
                got = gmemo.get(val)
                if got is None:
                    # the plain rules' counts on this value (a function of
                    # the value alone), remembered across messages for
                    # short values (part headers repeat: Content-Type,
                    # Content-Transfer-Encoding, ...)
                    if _SEPB in val:
                        todo = plain            # no joined form: every rule is a candidate
                    else:
                        found = scans.get((scan, val))
                        if found is None:
                            found = scans[scan, val] = scan(_SEPB + val + perlre.JOIN_TAIL)
                        todo = plain & found
                        if always:
                            todo |= plain & always
                    got = []
                    for i in todo:
                        rr = rules[i]
                        n = check(db, scan, i, rr, val, rr.maxhits or (1000 if rr.multiple else 1))
                        if n:
                            got.append((i, n))
                    if len(val) <= _MIME_MEMO_LEN:
                        if len(gmemo) >= _MIME_MEMO_SIZE:
                            gmemo.clear()
                        gmemo[val] = got = tuple(got)
                for i, n in got:
                    counts[i] = counts.get(i, 0) + n
            # the rules that can hit, in the group's order (the others: plain, no count)
            for i in sorted(others.union(counts)) if others else sorted(counts):
                rr = rules[i]
                if i in plain:
                    hits = counts[i]
                else:
                    hits = self._mime_rule(db, scan, i, rr, pvals, opts[i])
                if rr.negate:
                    out.append((rr.name, 1, False))
                elif hits:
                    out.append((rr.name, hits if rr.multiple else 1, rr.multiple))
        return tuple(out)

    def _mime_unset_counts(self, db: AreaDatabase, scan, rules: list[RRule],
                           by_unset: list) -> tuple:
        """((rule, count), ...) of a mimeheader group's plain rules on a part
        lacking the header: each rule on its if-unset value (what the loop of
        _mimeheaders does for such a part; the values do not depend on the
        message, so neither do the counts)."""
        out: dict[int, int] = {}
        always = db.always
        for v, sel in by_unset:
            if _SEPB in v:
                todo = sel
            else:
                todo = sel & scan(_SEPB + v + perlre.JOIN_TAIL)
                if always:
                    todo |= sel & always
            for i in todo:
                rr = rules[i]
                n = self._mime_check(db, scan, i, rr, v, rr.maxhits or (1000 if rr.multiple else 1))
                if n:
                    out[i] = out.get(i, 0) + n
        return tuple(out.items())

    def _mime_rule(self, db: AreaDatabase, scan, i: int, rr: RRule, pvals: list,
                   opt: tuple[int, int, bool]) -> int:
        """A mimeheader rule's count over the part values pvals (its range,
        concat), for a rule _mimeheaders does not take the short way."""
        lo, hi, concat = opt
        maxhits = rr.maxhits or (1000 if rr.multiple else 1)
        cval = b""
        hits = 0
        for idx, val in enumerate(pvals, 1):
            if idx > hi:
                break
            if idx < lo:
                continue
            if val is None:
                val = rr.if_unset
            if concat:
                if not val.endswith(b"\n"):
                    val += b"\n"
                cval += val
                continue
            if not rr.negate:
                hits += self._mime_check(db, scan, i, rr, val, maxhits)
        if concat and not rr.negate:
            hits += self._mime_check(db, scan, i, rr, cval, maxhits)
        return hits

    def _mime_check(self, db: AreaDatabase, scan, i: int, rr: RRule, val: bytes,
                    maxhits: int) -> int:
        if _SEPB in val:
            return self._confirm_count(rr, val, maxhits)
        cache = self._mime_scans
        key = (scan, val)
        hits = cache.get(key)
        if hits is None:
            hits = cache[key] = scan(_SEPB + val + perlre.JOIN_TAIL)
        if i in hits:
            if i in db.exact and not rr.multiple:
                return 1
            return self._confirm_count(rr, val, maxhits)
        if i in db.always:
            return self._confirm_count(rr, val, maxhits)
        return 0

    def _templates(self) -> None:
        """Rules whose regex holds %{TAG}: run when every tag they use has a
        value, with the values quoted into an alternation, built from each
        message's own values.  (SpamAssassin 4.0.1's rule code matches
        header, body, rawbody and uri rules with /o, compile once, so a
        spamd child keeps the values of the first message it ran them on;
        postier does not copy that: a verdict must not depend on which
        message came first.)  Each rule's tags are listed once per rule
        set, the compiled pattern is cached by (pattern, tag values), and
        the subjects are decoded once per message for the test of the
        values a pattern requires (_template_possible).  A rule whose tags
        are all required first searches those subjects with its superset
        form (_template_superset: each tag any non-empty string, compiled
        once per rule set): where that finds nothing the rule is neither
        compiled for these values nor run (on the corpus 3109 of 3192
        such tests; the rule's answers are the same)."""
        cr = self.cr
        cache = cr.__dict__.setdefault("_template_cache", {})
        info = cr.__dict__.get("_template_info")
        if info is None:
            # the rules as runs of consecutive rules of one group (below),
            # each run (group key, [(rule, pat, mods, tags, required,
            # multiple, superset)]): a message whose values rule a group
            # out passes its run in one step; the group's key a small int (a
            # nested tuple's hash is not remembered, it would be worked out
            # at each look-up)
            groups: dict = {}
            info = cr.__dict__["_template_info"] = []
            for r, pat, mods in cr.templates:
                tags = tuple(sorted({m.group(1) for m in _TEMPLATE.finditer(pat)}))
                required = _required_templates(pat)
                gk = groups.setdefault((tags, required, "i" in mods, r.kind,
                                        (r.header, r.if_unset) if r.kind == C.HEADER else None),
                                       len(groups))
                ent = (r, pat, mods, tags, required, cr.rs.has_flag(r.name, "multiple"),
                       None if r.kind == C.HEADER and r.negate
                       else _template_superset(pat, mods, required))
                if info and info[-1][0] == gk:
                    info[-1][1].append(ent)
                else:
                    info.append((gk, [ent]))
        captures = self.captures
        texts: dict = {}        # id(subjects) -> (subjects, {fold: decoded texts})
        # rules of the same tags, required tags, case folding and subjects
        # (SpamAssassin's are six uri rules of %{GB_TO_ADDR}) share one
        # test of their tag values and subjects per message: (vals, the
        # subjects that may match), or None (none of them runs)
        prep: dict = {}
        for gk, run in info:
            if gk in prep:
                got = prep[gk]
                if got is None:
                    continue
                vals, possible = got
            else:
                r, pat, mods, tags, required = run[0][:5]
                prep[gk] = None
                vals = {}
                for t in tags:
                    vs = [v for v in captures.get(t, ()) if v != ""]
                    if not vs:
                        break
                    vals[t] = vs
                else:
                    if r.kind == C.HEADER:
                        v = self.hv.value(r.header)
                        subjects = [v if v is not None
                                    else (r.if_unset or "").encode("latin-1")]
                    else:
                        subjects = self._subjects(r.kind)
                    if not subjects:
                        continue        # the match never runs (nor compiles)
                    possible = subjects
                    if required:
                        got = texts.get(id(subjects))
                        if got is None or got[0] is not subjects:
                            got = texts[id(subjects)] = (subjects, {})
                        possible = self._template_possible(required, "i" in mods, subjects,
                                                           vals, got[1])
                        if not possible:
                            continue    # a value the pattern requires appears in no subject
                    prep[gk] = (vals, possible)
                if prep[gk] is None:
                    continue
            for r, pat, mods, tags, _required, multiple, sup in run:
                if sup is not None and not _superset_matches(sup, possible):
                    continue        # no match, whatever the values (_template_superset)
                key = (pat, mods, *(tuple(vals[t]) for t in tags))
                p = cache.get(key)
                if p is False:
                    continue
                if p is None:
                    p = self._template_pattern(cache, key, pat, mods, vals)
                    if p is False:
                        continue
                n = 0
                try:
                    for s in possible:
                        if multiple:
                            n += count_matches(p, s)
                        elif p.search(s):
                            n = 1
                            break
                except RegexExecError:
                    pass            # libpcre2 gave up (its match limit): no match
                if r.kind == C.HEADER and r.negate:
                    if not n:
                        self.hit(r.name)
                elif n:
                    self.hit(r.name, n if multiple else 1, multiple)

    @staticmethod
    def _template_pattern(cache: dict, key: tuple, pat: str, mods: str,
                          vals: dict[str, list[str]]):
        """The rule compiled for these tag values, cached under key
        (False: it does not compile)."""
        def repl(m: re.Match) -> str:
            return "(?:" + "|".join(_quote_value(v) for v in vals[m.group(1)]) + ")"
        if len(cache) > 2000:
            cache.clear()
        try:
            p = perlre.compile_search_pattern(_TEMPLATE.sub(repl, pat), mods)
        except perlre.PerlRegexError:
            p = False
        cache[key] = p
        return p

    def _subjects(self, kind: str) -> list[bytes]:
        if kind == C.URI:
            return self.uri_list()
        if kind == C.BODY:
            return self.body()
        if kind == C.RAWBODY:
            return self.rawbody()
        return [self.msg.pristine]

    @staticmethod
    def _template_possible(required: tuple[str, ...], fold: bool, subjects: list[bytes],
                           values: dict[str, list[str]], texts: dict) -> list[bytes]:
        """The subjects holding a captured value of every template the
        pattern requires (_required_templates: one outside every group, in a
        pattern without a top-level `|`): a match needs them literally, so
        the pattern runs on those only, and when there are none it is not
        even compiled for this message's values.  texts caches the decoded
        (and, for fold, lower-cased: a superset of libpcre2's caseless
        match) subjects by fold.  Values all ASCII without a line feed (the
        common case) are looked for in the subjects as bytes, lower-cased
        by bytes.lower for fold: the same answer (str.lower on Latin-1 text
        keeps every character ASCII or not, as it was), without decoding
        them; and in their join alone, each place a value is found telling
        the subject that holds it."""
        need = tuple([tuple([v.lower() for v in values.get(tag, ())]) if fold
                      else tuple(values.get(tag, ())) for tag in required])
        out = texts.get((fold, need))   # the rules of a message often share their values
        if out is not None:
            return out
        bneed = []
        for vals in need:
            bvals = [v.encode("ascii") for v in vals if v and v.isascii() and "\n" not in v]
            if len(bvals) != len(vals):
                break
            bneed.append(bvals)
        else:
            joined = texts.get((fold, b""))
            if joined is None:
                # (bytes.lower of the join is the join of each lowered)
                joined = b"\n".join(subjects)
                joined = texts[fold, b""] = joined.lower() if fold else joined
            # the indices of the subjects holding a value of every tag: a
            # value without a line feed found in joined lies within one
            # subject (the one starting last at or before it); the search
            # goes on from the next subject's start
            keep = None
            for bvals in bneed:
                idx = set()
                for v in bvals:
                    i = joined.find(v)
                    if i >= 0:
                        # (rarely: a value is in a subject)
                        starts = texts.get("starts")
                        if starts is None:
                            starts = texts["starts"] = list(
                                accumulate([len(s) + 1 for s in subjects], initial=0))
                        while i >= 0:
                            k = bisect_right(starts, i)
                            idx.add(k - 1)
                            i = joined.find(v, starts[k])
                keep = idx if keep is None else keep & idx
                if not keep:
                    break
            out = [subjects[k] for k in sorted(keep)] if keep else []
            texts[fold, need] = out
            return out
        got = texts.get(fold)
        if got is None:
            got = [s.decode("latin-1") for s in subjects]
            if fold:
                got = [t.lower() for t in got]
            texts[fold] = (got, "\n".join(got))
        else:
            got = got[0]
        joined = texts[fold][1]
        if all(any(v in joined for v in vals) for vals in need):
            out = [s for s, t in zip(subjects, got, strict=True)
                   if all(any(v in t for v in vals) for vals in need)]
        else:
            out = []                # (a value found in joined may still span two subjects)
        texts[fold, need] = out
        return out

    def _evals(self, kinds: tuple[str, ...]) -> None:
        """Run the eval rules of these kinds (in rule-set order), each as
        evals.bind_calls made it (its arguments worked out once per rule
        set; a few groups of rules as one call)."""
        ctx = self.eval_ctx
        if ctx is None:
            from postier.content.spam import evals  # (once per message)
            ctx = self.eval_ctx = evals.EvalContext(self)
        cr = self.cr
        todo = cr._evals_by_kind.get(kinds[0], []) if len(kinds) == 1 else \
            [e for e in cr.evals if e[0] in kinds]
        # the bound calls, per list of (kind, rule, function) entries (rebuilt
        # when the entries change: profilers wrap the functions in place)
        bound = cr.__dict__.setdefault("_eval_calls", {})
        key = (kinds, len(todo), id(todo[0][2]) if todo else 0)
        calls = bound.get(key)
        if calls is None:
            from postier.content.spam import evals
            calls = bound[key] = evals.bind_calls(todo)
        # each call; a hit is Run.hit(name, value) for a rule that is not
        # `multiple`; a failing eval is "no hit" (postier._native.spameval)
        ctx.run_calls(calls, ctx, self.values)
