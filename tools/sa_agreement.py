#!/usr/bin/env python3
"""How often postier's spam engine says what real SpamAssassin said.

    .venv/bin/python tools/sa_agreement.py [--corpus ../shared/corpus]
        [--reference tests/compat/sa_reference/hits.tsv.gz] [--limit N]
        [--jobs N] [--cache-dir DIR] [--report docs/sa_agreement.md]
        [--json docs/sa_agreement.json] [--min-pairs 0.99] [--min-verdicts 0.95]

Every message of the labeled corpus (labels.tsv order, the order of the
reference) goes through postier.content.spam.scanner.SpamScanner built from
SpamAssassin's own rule directories (/usr/share/spamassassin,
/etc/spamassassin); its run is compared with the hits real SpamAssassin
4.0.1 recorded for the same message (tools/sa_reference.py: spamd -L, score
set 0, every scored rule and every __SUBRULE that hit).

Measures (the report states the denominators):

* pair agreement, regex + meta: the universe U is every rule postier runs
  (`compiled.active`: a non-zero score, __subrules included) whose kind is a
  regex kind (conf.REGEX_KINDS: header, body, rawbody, uri, full,
  mimeheader) or conf.META.  For every message m and rule r in U the pair
  (m, r) agrees when both engines hit r on m or neither did.  Agreement =
  agreeing pairs / (messages x |U|).
* pair agreement, all kinds: the same over every active rule (eval rules and
  `empty` rules too).
* verdict agreement: spam (score >= 5.0, SpamAssassin's required_score)
  from the reference score vs postier's score, per message.

The report lists every rule with a disagreement (SpamAssassin hit and postier
did not, and the reverse; counts and example messages), every message whose
verdict differs (with the scored rules only one side hit), rules SpamAssassin
hit that postier does not run, and scan errors (a message postier failed on
counts as "no rule hit, score 0").  Written as markdown (--report) and as a
JSON summary (--json).  Exit status: 0 when pair agreement (regex + meta)
>= --min-pairs and verdict agreement >= --min-verdicts, 1 under a threshold,
2 when an input is missing.

Hyperscan is always required (postier.content.spam.hsdb); POSTIER_PURE=1
swaps the engine's compiled helpers (spameng, spamhdr, spamhtml, spammeta,
spamrcvd, ...) for their pure-Python twins, so a run with it checks that the
twins give the same results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (os.path.join(ROOT, "src"), HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from sa_reference import DEFAULT_CORPUS, SITE_RULES, SYS_RULES, read_reference  # noqa: E402

DEFAULT_REFERENCE = os.path.join(ROOT, "tests", "compat", "sa_reference", "hits.tsv.gz")
DEFAULT_REPORT = os.path.join(ROOT, "docs", "sa_agreement.md")
DEFAULT_JSON = os.path.join(ROOT, "docs", "sa_agreement.json")
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "postier-sa-agreement-cache")
RULE_DIRS = [SYS_RULES, SITE_RULES]
MIN_PAIRS = 0.99
MIN_VERDICTS = 0.95
REQUIRED = 5.0
EXAMPLES = 3


def missing_inputs(corpus: str = DEFAULT_CORPUS, reference: str = DEFAULT_REFERENCE,
                   rule_dirs: list[str] | None = None) -> str | None:
    """Why the comparison cannot run here (None when everything is present)."""
    if not os.path.exists(os.path.join(corpus, "labels.tsv")):
        return f"corpus not found: {corpus}/labels.tsv"
    if not os.path.exists(reference):
        return f"SpamAssassin reference not found: {reference} (tools/sa_reference.py)"
    for d in rule_dirs or RULE_DIRS[:1]:
        if not os.path.isdir(d) or not any(f.endswith(".cf") for f in os.listdir(d)):
            return f"SpamAssassin rules not found: {d}/*.cf (Debian package spamassassin)"
    return None


def make_scanner(cache_dir: str | None, rule_dirs: list[str] | None = None):
    """A SpamScanner over SpamAssassin's own rule directories."""
    from postier.content.spam.scanner import SpamScanner
    return SpamScanner(directories=list(rule_dirs or RULE_DIRS), cache_dir=cache_dir)


# ------------------------------------------------------------------ scanning

@dataclass
class Result:
    """What postier said about one message."""

    path: str
    values: dict[str, float]       # every rule that hit (subrules included)
    score: float
    error: str = ""


_WORKER: dict = {}


def _scan_path(path: str) -> Result:
    scanner, corpus = _WORKER["scanner"], _WORKER["corpus"]
    try:
        with open(os.path.join(corpus, path), "rb") as f:
            data = f.read()
        run = scanner.run(data)
    except Exception as e:  # noqa: BLE001 - a failing message is reported, not fatal
        return Result(path, {}, 0.0, f"{type(e).__name__}: {e}"[:300])
    return Result(path, {k: v for k, v in run.values.items() if v}, round(run.score, 3))


def scan_corpus(scanner, corpus: str, paths: list[str], jobs: int = 1,
                progress=None) -> list[Result]:
    """postier's Result for every path (in order).  jobs > 1 forks worker
    processes after compilation (they share the compiled databases)."""
    _WORKER.update(scanner=scanner, corpus=corpus)
    out: list[Result] = []
    if jobs <= 1:
        for i, p in enumerate(paths, 1):
            out.append(_scan_path(p))
            if progress and i % 500 == 0:
                progress(i, len(paths))
        return out
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for i, r in enumerate(pool.imap(_scan_path, paths, chunksize=8), 1):
            out.append(r)
            if progress and i % 500 == 0:
                progress(i, len(paths))
    return out


# ------------------------------------------------------------------ comparing

@dataclass
class RuleDiff:
    kind: str
    score: float
    sa_hits: int = 0
    postier_hits: int = 0
    missed: list[str] = field(default_factory=list)    # SA hit, postier did not
    extra: list[str] = field(default_factory=list)     # postier hit, SA did not


def sa_exact_score(row: dict) -> float:
    """SpamAssassin's score for a reference row: the sum of the scored hits
    (the stored X-Spam-Status score has one decimal only)."""
    return round(sum(row["tests"].values()), 3)


def shown_score(score: float, required: float = REQUIRED) -> float:
    """The score as X-Spam-Status shows it (PerMsgStatus::_get_tag_value_for_score:
    one decimal, never rounded up to required_score)."""
    shown = float(f"{score:2.1f}")
    if shown >= required > score:
        shown = required - 0.1
    return shown


def compare(rules, active: set[str], rows: list[dict], results: list[Result],
            required: float = REQUIRED) -> dict:
    """The agreement summary (see the module docstring) as a JSON-able dict.

    rules: the RuleSet (kinds, scores, tflags); active: the rules postier runs;
    rows: tools/sa_reference.read_reference() rows; results: scan_corpus()."""
    from postier.content.spam import conf as C
    regex_meta = {n for n in active if rules.rules[n].kind in C.REGEX_KINDS
                  or rules.rules[n].kind == C.META}
    kind_of = {n: rules.rules[n].kind for n in active}
    by_rule: dict[str, RuleDiff] = {}
    hit_sa: Counter = Counter()
    hit_po: Counter = Counter()
    outside: dict[str, list[str]] = defaultdict(list)   # SA hit, postier does not run it
    verdicts = []
    errors = []
    scores_equal = 0
    label_ok = Counter()
    count_pairs = count_same = 0
    shown_mismatch: list[str] = []
    score_only: list[dict] = []
    for row, res in zip(rows, results, strict=True):
        assert row["path"] == res.path
        ref = set(row["tests"]) | set(row["subs"])
        mine = set(res.values)
        if res.error:
            errors.append({"path": res.path, "error": res.error})
        for r in ref:
            if r in active:
                hit_sa[r] += 1
            else:
                outside[r].append(res.path)
        for r in mine:
            hit_po[r] += 1
        for r in ref - mine:
            if r in active:
                d = by_rule.setdefault(r, RuleDiff(kind_of[r], rules.score(r)))
                d.missed.append(res.path)
        for r in mine - ref:
            if r in active:
                d = by_rule.setdefault(r, RuleDiff(kind_of[r], rules.score(r)))
                d.extra.append(res.path)
        # hit counts of `tflags multiple` subrules both engines hit
        for r in mine & set(row["subs"]):
            if r in active and rules.has_flag(r, "multiple") and kind_of[r] in C.REGEX_KINDS:
                count_pairs += 1
                count_same += int(res.values[r]) == row["subs"][r]
        # SpamAssassin's score: the sum of its hits' scores, rounded as
        # PerMsgStatus does (%0.3f); X-Spam-Status shows it with one decimal
        sa_score = sa_exact_score(row)
        if abs(shown_score(sa_score, required) - row["score"]) > 0.051:
            shown_mismatch.append(res.path)
        sa_spam = sa_score >= required
        po_spam = res.score >= required
        scores_equal += abs(sa_score - res.score) < 0.0015
        label_ok["sa"] += sa_spam == (row["label"] == "spam")
        label_ok["postier"] += po_spam == (row["label"] == "spam")
        sa_scored = set(row["tests"])
        po_scored = {k for k in mine if not k.startswith("__") and rules.score(k) != 0}
        if sa_scored == po_scored and abs(sa_score - res.score) >= 0.0015:
            score_only.append({"path": res.path, "sa_score": sa_score,
                               "postier_score": res.score,
                               "rules": sorted(f"{k}: SA {row['tests'][k]:g}, postier "
                                               f"{rules.score(k):g}" for k in sa_scored
                                               if abs(row["tests"][k] - rules.score(k)) > 5e-4)})
        if sa_spam != po_spam:
            verdicts.append({
                "path": res.path, "label": row["label"], "sa_score": sa_score,
                "postier_score": res.score, "error": res.error,
                "only_sa": sorted(f"{k}={row['tests'][k]:g}" for k in sa_scored - po_scored),
                "only_postier": sorted(f"{k}={rules.score(k):g}" for k in po_scored - sa_scored)})
    n = len(results)
    for r, d in by_rule.items():
        d.sa_hits, d.postier_hits = hit_sa[r], hit_po[r]

    def pairs(universe: set[str]) -> dict:
        total = n * len(universe)
        wrong = sum(len(d.missed) + len(d.extra) for r, d in by_rule.items() if r in universe)
        return {"rules": len(universe), "pairs": total, "disagreeing": wrong,
                "agreement": (total - wrong) / total if total else 1.0}

    per_kind = {}
    for kind in sorted(set(kind_of.values())):
        per_kind[kind] = pairs({r for r in active if kind_of[r] == kind})
    diffs = sorted(by_rule.items(), key=lambda kv: (-(len(kv[1].missed) + len(kv[1].extra)), kv[0]))
    return {
        "messages": n,
        "required_score": required,
        "pairs_regex_meta": pairs(regex_meta),
        "pairs_all": pairs(set(active)),
        "pairs_by_kind": per_kind,
        "verdicts": {"messages": n, "agreeing": n - len(verdicts),
                     "agreement": (n - len(verdicts)) / n if n else 1.0},
        "scores_equal": scores_equal,
        "reference_score_inconsistent": shown_mismatch,
        "score_differences_same_rules": score_only,
        "multiple_counts": {"pairs": count_pairs, "same": count_same},
        "label_accuracy": {k: v / n if n else 0.0 for k, v in sorted(label_ok.items())},
        "rules_with_disagreements": [
            {"rule": r, "kind": d.kind, "score": d.score, "regex_or_meta": r in regex_meta,
             "sa_hits": d.sa_hits, "postier_hits": d.postier_hits,
             "missed": len(d.missed), "extra": len(d.extra),
             "missed_examples": d.missed[:EXAMPLES], "extra_examples": d.extra[:EXAMPLES]}
            for r, d in diffs],
        "verdict_differences": verdicts,
        "sa_hits_on_rules_postier_does_not_run": [
            {"rule": r, "count": len(p), "examples": p[:EXAMPLES],
             "known": r in rules.rules}
            for r, p in sorted(outside.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
        "errors": errors,
    }


def short_failures(summary: dict, limit: int = 40) -> str:
    """The disagreement list, for an assertion message."""
    lines = []
    for d in summary["rules_with_disagreements"][:limit]:
        ex = (d["missed_examples"] or d["extra_examples"])[:1]
        lines.append(f"  {d['rule']} ({d['kind']}): SA-only {d['missed']}, postier-only "
                     f"{d['extra']}; e.g. {ex[0] if ex else '-'}")
    more = len(summary["rules_with_disagreements"]) - limit
    if more > 0:
        lines.append(f"  ... and {more} more rules")
    for v in summary["verdict_differences"][:limit]:
        lines.append(f"  verdict {v['path']}: SA {v['sa_score']:g}, postier "
                     f"{v['postier_score']:g}; SA-only {v['only_sa']}, postier-only "
                     f"{v['only_postier']}")
    for e in summary["errors"][:10]:
        lines.append(f"  error {e['path']}: {e['error']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the report

def _git_head() -> str:
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _engine_modified() -> bool:
    """Does the working tree change the engine since HEAD?"""
    try:
        r = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--",
                            "src/postier/content/spam"], capture_output=True, text=True,
                           timeout=10)
        return bool(r.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return False


def _pct(x: float) -> str:
    return f"{100 * x:.4f} %"


def _md_paths(paths: list[str]) -> str:
    return "<br>".join(f"`{p}`" for p in paths) or "-"


def render_markdown(s: dict) -> str:
    """The report (docs/sa_agreement.md)."""
    m = s["meta"]
    pm, pa, v = s["pairs_regex_meta"], s["pairs_all"], s["verdicts"]
    ok = s["passed"]
    out = [
        "# postier's spam engine vs real SpamAssassin",
        "",
        "Generated by `tools/sa_agreement.py` (do not edit by hand; run "
        "`.venv/bin/python tools/sa_agreement.py` to refresh it).",
        "",
        f"* reference: `{m['reference']}`: {m['sa_version']}, {m['sa_packages']}, score set 0 "
        f"(`spamd -L`, no Bayes, no network), recorded {m['reference_date']}",
        f"* rules: {', '.join(m['rule_dirs'])} (SHA-256 of the rule files at reference time "
        f"`{m['reference_rules_sha256'][:16]}...`, now `{m['rules_sha256'][:16]}...`"
        f"{'' if m['rules_sha256'] == m['reference_rules_sha256'] else ': DIFFERENT'})",
        f"* corpus: `{m['corpus']}`, {s['messages']} messages"
        f"{' (--limit)' if m['limit'] else ''}",
        f"* postier commit {m['git']}, {m['date']}; rules compiled in "
        f"{m['compile_seconds']:.1f} s ({'cache' if m['from_cache'] else 'cold'}), scanned at "
        f"{m['msgs_per_s']:.1f} msg/s ({m['jobs']} process{'es' if m['jobs'] > 1 else ''})",
        "",
        "## Summary",
        "",
        "| measure | agreeing / total | agreement | threshold |",
        "|---|---:|---:|---:|",
        f"| (message, rule) pairs, regex + meta rules ({pm['rules']} rules) | "
        f"{pm['pairs'] - pm['disagreeing']} / {pm['pairs']} | {_pct(pm['agreement'])} | "
        f"{_pct(m['min_pairs'])} |",
        f"| (message, rule) pairs, all rules incl. eval ({pa['rules']} rules) | "
        f"{pa['pairs'] - pa['disagreeing']} / {pa['pairs']} | {_pct(pa['agreement'])} | - |",
        f"| spam/ham verdict at {s['required_score']:g} | {v['agreeing']} / {v['messages']} | "
        f"{_pct(v['agreement'])} | {_pct(m['min_verdicts'])} |",
        "",
        f"Result: **{'PASS' if ok else 'FAIL'}**.  Same score (within 0.001) on "
        f"{s['scores_equal']} / {s['messages']} messages.  Accuracy against the corpus "
        f"labels: SpamAssassin {_pct(s['label_accuracy'].get('sa', 0))}, postier "
        f"{_pct(s['label_accuracy'].get('postier', 0))}.  "
        f"`tflags multiple` subrules both engines hit: same hit count in "
        f"{s['multiple_counts']['same']} / {s['multiple_counts']['pairs']} pairs.",
        "",
        "### Definitions",
        "",
        "* Rules compared: every rule postier runs, `CompiledRules.active` (a non-zero "
        "score in score set 0; `__` subrules included).  \"regex + meta\": those whose kind "
        "is in `conf.REGEX_KINDS` (header, body, rawbody, uri, full, mimeheader) or "
        "`conf.META`.",
        "* A pair (message, rule) agrees when both engines hit the rule on the message or "
        "neither did (SpamAssassin's hits: the `_TESTSSCORES_` and `_SUBTESTS_` lists it "
        "recorded).  Denominator: messages x rules.",
        "* Verdict: spam when the score is >= required_score.  SpamAssassin's score: the "
        "sum of the scores of the rules it hit (from the reference, rounded to 0.001 as "
        "PerMsgStatus does; the X-Spam-Status score it also stored has one decimal only, "
        "never rounded up to required_score, "
        f"and agrees with that sum on {s['messages'] - len(s['reference_score_inconsistent'])}"
        f" / {s['messages']} messages); postier's from `SpamScanner.run()`.",
        "* A message postier failed on counts as \"no rule hit, score 0\" (see Errors).",
        "",
        "### Pairs by rule kind",
        "",
        "| kind | rules | pairs | disagreeing | agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, p in s["pairs_by_kind"].items():
        out.append(f"| {kind} | {p['rules']} | {p['pairs']} | {p['disagreeing']} | "
                   f"{_pct(p['agreement'])} |")
    rd = s["rules_with_disagreements"]
    out += ["", f"## Rules with disagreements ({len(rd)})", ""]
    if rd:
        out += ["SA-only: SpamAssassin hit the rule, postier did not; postier-only: the "
                "reverse.  Examples: the first messages (corpus order).", "",
                "| rule | kind | score | SA hits | postier hits | SA-only | postier-only | "
                "examples SA-only | examples postier-only |",
                "|---|---|---:|---:|---:|---:|---:|---|---|"]
        for d in rd:
            out.append(f"| {d['rule']} | {d['kind']} | {d['score']:g} | {d['sa_hits']} | "
                       f"{d['postier_hits']} | {d['missed']} | {d['extra']} | "
                       f"{_md_paths(d['missed_examples'])} | {_md_paths(d['extra_examples'])} |")
    else:
        out.append("None.")
    vd = s["verdict_differences"]
    out += ["", f"## Messages whose verdict differs ({len(vd)})", ""]
    if vd:
        out += ["| message | label | SA score | postier score | scored rules only SA hit | "
                "scored rules only postier hit |", "|---|---|---:|---:|---|---|"]
        for x in vd:
            out.append(f"| `{x['path']}` | {x['label']} | {x['sa_score']:g} | "
                       f"{x['postier_score']:g} | {', '.join(x['only_sa']) or '-'} | "
                       f"{', '.join(x['only_postier']) or '-'} |")
    else:
        out.append("None.")
    so = s["score_differences_same_rules"]
    out += ["", f"## Messages with the same scored rules but another score ({len(so)})", ""]
    if so:
        out += ["| message | SA score | postier score | rules scored differently |",
                "|---|---:|---:|---|"]
        for x in so:
            out.append(f"| `{x['path']}` | {x['sa_score']:g} | {x['postier_score']:g} | "
                       f"{'; '.join(x['rules']) or '-'} |")
    else:
        out.append("None: where both engines hit the same scored rules, the scores are equal.")
    outside = s["sa_hits_on_rules_postier_does_not_run"]
    out += ["", f"## Rules SpamAssassin hit that postier does not run ({len(outside)})", ""]
    if outside:
        out += ["Outside the compared universe (a zero score in postier's reading of the "
                "rules, or a rule postier does not know).", "",
                "| rule | known to postier | messages | examples |", "|---|---|---:|---|"]
        for x in outside:
            out.append(f"| {x['rule']} | {'yes' if x['known'] else 'no'} | {x['count']} | "
                       f"{_md_paths(x['examples'])} |")
    else:
        out.append("None.")
    out += ["", f"## Errors ({len(s['errors'])})", ""]
    if s["errors"]:
        out += ["| message | error |", "|---|---|"]
        for e in s["errors"]:
            out.append(f"| `{e['path']}` | {e['error'].replace('|', '/')} |")
    else:
        out.append("None: postier scanned every message.")
    st = m["engine_stats"]
    out += ["", "## Engine", "",
            f"{st['rules']} rules read, {st['regex_rules']} regex rules compiled "
            f"({st['exact']} exact in Hyperscan, {st['prefilter']} prefiltered, "
            f"{st['fallback']} confirmed on every subject, {st['re2_direct']} RE2 direct, "
            f"{st['template_rules']} templates), {st['meta_rules']} meta rules, "
            f"{st['eval_rules']} eval rules; "
            f"compile failures: {len(st['compile_failed'])}.",
            ""]
    if st["eval_unsupported"]:
        out.append("Eval functions postier does not implement (their rules never hit): "
                   + ", ".join(f"{k} ({v})" for k, v in sorted(st["eval_unsupported"].items()))
                   + ".")
        out.append("")
    if st["compile_failed"]:
        out.append("Compile failures: " + "; ".join(st["compile_failed"]) + ".")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ main

def run_agreement(corpus: str = DEFAULT_CORPUS, reference: str = DEFAULT_REFERENCE,
                  cache_dir: str | None = DEFAULT_CACHE, limit: int = 0, jobs: int = 1,
                  scanner=None, progress=None, min_pairs: float = MIN_PAIRS,
                  min_verdicts: float = MIN_VERDICTS) -> dict:
    """Scan, compare, and return the summary (with "meta" and "passed")."""
    from dataclasses import asdict

    from sa_reference import rules_digest
    rows = read_reference(reference)
    if limit:
        rows = rows[:limit]
    t0 = time.monotonic()
    if scanner is None:
        scanner = make_scanner(cache_dir)
    compile_s = time.monotonic() - t0
    t1 = time.monotonic()
    results = scan_corpus(scanner, corpus, [r["path"] for r in rows], jobs, progress)
    scan_s = time.monotonic() - t1
    s = compare(scanner.rules, scanner.compiled.active, rows, results, scanner.required)
    prov_path = os.path.join(os.path.dirname(reference), "provenance.json")
    try:
        with open(prov_path) as f:
            prov = json.load(f)
    except (OSError, ValueError):
        prov = {}
    s["meta"] = {
        "reference": os.path.relpath(reference, ROOT),
        "reference_date": prov.get("date", "?"),
        "sa_version": (prov.get("spamassassin") or ["?"])[0],
        "sa_packages": " ".join(f"{k} {v}" for k, v in prov.get("debian_packages", {}).items()),
        "reference_rules_sha256": prov.get("rules_sha256", "?"),
        "rules_sha256": rules_digest(),
        "rule_dirs": RULE_DIRS,
        "corpus": os.path.relpath(corpus, ROOT),
        "limit": limit,
        "git": _git_head() + (" + uncommitted engine changes" if _engine_modified() else ""),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "compile_seconds": round(compile_s, 2),
        "from_cache": scanner.compiled.stats.from_cache,
        "scan_seconds": round(scan_s, 2),
        "msgs_per_s": round(len(rows) / scan_s, 1) if scan_s else 0.0,
        "jobs": jobs,
        "min_pairs": min_pairs,
        "min_verdicts": min_verdicts,
        "engine_stats": asdict(scanner.compiled.stats),
    }
    s["passed"] = (s["pairs_regex_meta"]["agreement"] >= min_pairs
                   and s["verdicts"]["agreement"] >= min_verdicts)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="sa_agreement",
        description="Compare postier's spam engine with real SpamAssassin's recorded hits "
                    "over the labeled corpus; write a markdown report and a JSON summary.")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="corpus directory (labels.tsv)")
    ap.add_argument("--reference", default=DEFAULT_REFERENCE, help="hits.tsv.gz from "
                    "tools/sa_reference.py")
    ap.add_argument("--cache-dir", default=DEFAULT_CACHE,
                    help="compiled-rules cache (default %(default)s; '' for none)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N messages")
    ap.add_argument("--jobs", type=int, default=1, help="scanning processes (default 1)")
    ap.add_argument("--report", default=DEFAULT_REPORT, help="markdown report "
                    "(default docs/sa_agreement.md; '' for none)")
    ap.add_argument("--json", default=DEFAULT_JSON, help="JSON summary "
                    "(default docs/sa_agreement.json; '-' for stdout, '' for none)")
    ap.add_argument("--min-pairs", type=float, default=MIN_PAIRS,
                    help="pair agreement (regex + meta) needed to pass (default %(default)s)")
    ap.add_argument("--min-verdicts", type=float, default=MIN_VERDICTS,
                    help="verdict agreement needed to pass (default %(default)s)")
    args = ap.parse_args(argv)
    if args.limit < 0 or args.jobs < 1:
        print("sa_agreement: fatal: --limit must be >= 0 and --jobs >= 1", file=sys.stderr)
        return 2
    why = missing_inputs(args.corpus, args.reference, RULE_DIRS[:1])
    if why:
        print(f"sa_agreement: fatal: {why}", file=sys.stderr)
        return 2

    def progress(i: int, n: int) -> None:
        print(f"sa_agreement: {i}/{n}", file=sys.stderr)
    try:
        s = run_agreement(args.corpus, args.reference, args.cache_dir or None, args.limit,
                          args.jobs, progress=progress, min_pairs=args.min_pairs,
                          min_verdicts=args.min_verdicts)
    except Exception as e:  # noqa: BLE001 - e.g. ConfigError from the rule directories
        print(f"sa_agreement: fatal: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(render_markdown(s))
    if args.json == "-":
        json.dump(s, sys.stdout, indent=1)
        print()
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(s, f, indent=1)
            f.write("\n")
    pm, pa, v = s["pairs_regex_meta"], s["pairs_all"], s["verdicts"]
    print(f"sa_agreement: {s['messages']} messages, {s['meta']['msgs_per_s']} msg/s; pairs "
          f"regex+meta {pm['agreement']:.6f} ({pm['disagreeing']} of {pm['pairs']} differ), "
          f"all {pa['agreement']:.6f}; verdicts {v['agreement']:.4f} "
          f"({v['messages'] - v['agreeing']} differ); errors {len(s['errors'])}: "
          f"{'PASS' if s['passed'] else 'FAIL'}", file=sys.stderr)
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
