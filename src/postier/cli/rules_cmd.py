"""`postier rules`: lint, compile and explain SpamAssassin rule sets.

    postier rules check   [-c DIR] [--rules DIR]... [--cache DIR | --no-cache]
    postier rules compile [-c DIR] [--rules DIR]... [--cache DIR]
    postier rules explain [-c DIR] [--rules DIR]... [--cache DIR | --no-cache] [-v] MSG|-

The rule set is the one `spam_checks = yes` uses (postier.content.spam.scanner):
the SpamAssassin rule directories of $spam_rules_directories, or the
`--rules` options (repeatable; the last one is read as the "site" directory,
as SpamAssassin reads its site rules after the system ones).

* `check` parses the rules and compiles them, then prints every parse
  warning (`FILE, line N: ...`, SpamAssassin's wording), the counts (rules,
  scored rules, regex rules by engine: exact Hyperscan, Hyperscan
  prefilter confirmed by RE2/re/libpcre2, fallback confirmed on every
  subject, RE2 on the joined text, never matching for Hyperscan (those
  are tried only on text that holds a NUL byte); meta and eval rules),
  every scored eval rule whose function postier does not implement (it
  counts as not hitting), the eval rules that do not run with score set 0
  (network tests, Bayes), and every rule that cannot be compiled (with its
  file and line).  Nothing is dropped silently.
  Exit status: 0 when the rule set is usable as it is; 1 when there are
  errors: no rule file (*.cf) at all, a parse warning (a line SpamAssassin
  would skip too, as `spamassassin --lint` counts it), or a rule that cannot
  be compiled.  Unimplemented eval functions and the network/Bayes rules
  are a documented limit of postier, not an error: they are listed and the
  status stays 0.
* `compile` compiles the rule set and writes the Hyperscan cache
  ($spam_rules_cache_directory, or `--cache DIR`), then prints how long it
  took and whether the databases came from the cache; 1 when there is no
  cache directory or it cannot be written.
* `explain MSG` (a file, or `-` for standard input) runs the rules on one
  message and lists the scored rules that hit (score, hit count for
  `tflags multiple` rules, `describe` text), the total and required score,
  SpamAssassin's verdict, and what postier would do with that score
  (spam_tag_level, spam_tag2_level, spam_kill_level, final_spam_destiny).
  `-v` also lists the sub-rules (`__NAME`) and every other rule value.
  A message that cannot be read (missing file, empty input) is an error
  (status 1); any bytes, even binary junk, get a verdict.

Diagnostics go to standard error as `postier rules: warning: ...` /
`postier rules: fatal: ...`; results go to standard output.

Parameters read: spam_rules_directories, spam_rules_cache_directory
(through postier.content.spam.scanner), and for `explain`: spam_tag_level,
spam_tag2_level, spam_kill_level, final_spam_destiny.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from postier.errors import PostierError

PROG = "postier rules"


class Fatal(Exception):
    """A fatal error (printed as `postier rules: fatal: text`, status 1)."""


def _warn(text: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {text}\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Lint, compile and explain the SpamAssassin rule set postier's spam "
                    "checks use (spam_checks = yes).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", dest="config_dir", metavar="DIR",
                        help="configuration directory (default: $POSTIER_CONFIG_DIR, "
                             "/etc/postier, else the built-in default configuration)")
    common.add_argument("--rules", dest="rules", action="append", metavar="DIR",
                        help="a rule directory or .cf file instead of $spam_rules_directories "
                             "(repeatable; the last one is the site directory)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser(
        "check", parents=[common], help="parse and compile the rules, report every problem",
        description="Parse and compile the rule set; print every parse warning, the rule "
                    "counts by engine, the unimplemented eval functions of scored rules and "
                    "the rules that cannot be compiled.  Exit status 1 when there is no rule "
                    "file, a parse warning or a compile failure, else 0.")
    _cache_options(c)
    c.add_argument("-q", "--quiet", action="store_true",
                   help="print only problems (warnings, unsupported evals, failures)")
    k = sub.add_parser(
        "compile", parents=[common], help="compile the rules and write the cache",
        description="Compile the rule set and write the Hyperscan databases to the cache "
                    "directory ($spam_rules_cache_directory or --cache), so that postier "
                    "starts fast; print the time taken and whether the cache was used.")
    k.add_argument("--cache", metavar="DIR",
                   help="cache directory (default $spam_rules_cache_directory)")
    e = sub.add_parser(
        "explain", parents=[common], help="show which rules a message hits and why",
        description="Run the rules on one message: the scored rules that hit with their "
                    "score and description, the total and required score, the verdict.")
    _cache_options(e)
    e.add_argument("-v", "--verbose", action="store_true",
                   help="also list the sub-rules (__NAME) and unscored rule values")
    e.add_argument("message", metavar="MSG", help="message file, or - for standard input")
    return p


def _cache_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cache", metavar="DIR",
                   help="cache directory (default $spam_rules_cache_directory)")
    g.add_argument("--no-cache", action="store_true",
                   help="compile in memory, neither reading nor writing the cache")


# --------------------------------------------------------------------------- loading

def _config(args: argparse.Namespace) -> Any:
    from postier.config import load_config
    return load_config(args.config_dir)


def _directories(args: argparse.Namespace, cfg: Any) -> list[str]:
    from postier.content.spam.scanner import rule_directories
    return list(args.rules) if args.rules else rule_directories(cfg)


def _cache_dir(args: argparse.Namespace, cfg: Any) -> str | None:
    from postier.content.spam.scanner import cache_directory
    if getattr(args, "no_cache", False):
        return None
    return args.cache or cache_directory(cfg)


def _load_rules(dirs: list[str]) -> Any:
    """The parsed rule set; Fatal when there is no rule file."""
    from postier.content.spam import scanner
    for d in dirs:
        if not os.path.exists(d):
            _warn(f"rule directory {d}: No such file or directory")
    try:
        return scanner.load(dirs)
    except PostierError as e:
        raise Fatal(str(e)) from None


def _scanner(rs: Any, cache_dir: str | None) -> Any:
    from postier.content.spam.scanner import SpamScanner
    try:
        return SpamScanner(rules=rs, cache_dir=cache_dir)
    except PostierError:
        raise
    except Exception as e:  # noqa: BLE001 - an engine bug must not become a traceback
        raise Fatal(f"cannot compile the rule set: {type(e).__name__}: {e}") from None


# --------------------------------------------------------------------------- check

def rule_report(scanner: Any) -> dict[str, Any]:
    """What `check` prints, as data: the rules the engine cannot run fully."""
    from postier.content.spam import conf as C
    from postier.content.spam import evals
    cr = scanner.compiled
    rs = scanner.rules
    unsupported: dict[str, list[str]] = {}
    not_run: list[str] = []
    for name in sorted(cr.active):
        r = rs.rules[name]
        if r.kind not in C.EVAL_KINDS:
            continue
        if r.kind == C.RBL_EVAL or rs.has_flag(name, "net") or rs.has_flag(name, "learn"):
            not_run.append(name)
        elif r.function not in evals.FUNCTIONS:
            unsupported.setdefault(r.function, []).append(name)
    never: list[str] = []
    fallback: list[str] = []
    for area, rules in cr.area_rules.items():
        db = cr.dbs.get(area)
        if db is None:
            continue
        never += [rules[i].name for i in db.never]
        fallback += [rules[i].name for i in db.always if not rules[i].direct]
    failed = []
    for item in cr.stats.compile_failed:
        name, _, why = item.partition(": ")
        r = rs.rules.get(name)
        where = f"{r.path}, line {r.line}: " if r is not None and r.path else ""
        failed.append(f"{where}rule {name}: cannot compile: {why}")
    return {"unsupported": unsupported, "not_run": not_run, "never": sorted(never),
            "fallback": sorted(fallback), "failed": failed}


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    dirs = _directories(args, cfg)
    rs = _load_rules(dirs)
    for w in rs.warnings:
        _warn(w)
    sc = _scanner(rs, _cache_dir(args, cfg))
    st = sc.compiled.stats
    rep = rule_report(sc)
    out = sys.stdout.write
    if not args.quiet:
        scored = len(sc.compiled.active)
        out(f"rule files: {len(rs.files)} in {' '.join(dirs)}\n")
        out(f"rules: {st.rules} defined, {scored} scored (score set 0), "
            f"required_score {rs.required_score:g}\n")
        out(f"regex rules: {st.regex_rules} scored: {st.exact} exact (Hyperscan), "
            f"{st.prefilter} prefilter+confirm, {st.fallback} fallback (confirmed on every "
            f"subject), {st.re2_direct} RE2 on the joined text, {st.never} never (Hyperscan), "
            f"{st.template_rules} per-message templates\n")
        out(f"meta rules: {st.meta_rules} defined, {len(sc.compiled.meta_order)} run\n")
        n_unsup = sum(len(v) for v in rep["unsupported"].values())
        out(f"eval rules: {st.eval_rules} scored: "
            f"{st.eval_rules - n_unsup - len(rep['not_run'])} run, "
            f"{len(rep['not_run'])} network/Bayes (never run with score set 0), "
            f"{n_unsup} unsupported\n")
        out(f"compiled in {st.compile_seconds:.2f} s"
            f"{' (from the cache)' if st.from_cache else ''}\n")
    if rep["unsupported"]:
        out("eval functions postier does not implement (their rules never hit):\n")
        for fn in sorted(rep["unsupported"]):
            names = rep["unsupported"][fn]
            out(f"  {fn}: {' '.join(f'{n} ({rs.score(n):g})' for n in names)}\n")
    if rep["never"]:
        out("rules Hyperscan says never match (tried only on text holding a NUL byte): "
            + " ".join(rep["never"]) + "\n")
    if rep["fallback"] and not args.quiet:
        out("rules confirmed on every subject (slow): " + " ".join(rep["fallback"]) + "\n")
    for f in rep["failed"]:
        sys.stderr.write(f"{PROG}: error: {f}\n")
    errors = len(rs.warnings) + len(rep["failed"])
    if errors:
        sys.stderr.write(f"{PROG}: {len(rs.warnings)} warning(s), {len(rep['failed'])} "
                         f"rule(s) that cannot be compiled\n")
        return 1
    return 0


# --------------------------------------------------------------------------- compile

def cmd_compile(args: argparse.Namespace) -> int:
    cfg = _config(args)
    cache = _cache_dir(args, cfg)
    if not cache:
        raise Fatal("no cache directory: set spam_rules_cache_directory or give --cache DIR")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as e:
        raise Fatal(f"cache directory {cache}: {e.strerror}") from None
    if not os.access(cache, os.W_OK | os.X_OK):
        raise Fatal(f"cache directory {cache}: Permission denied")
    rs = _load_rules(_directories(args, cfg))
    for w in rs.warnings:
        _warn(w)
    t0 = time.monotonic()
    sc = _scanner(rs, cache)
    took = time.monotonic() - t0
    st = sc.compiled.stats
    missing = [area for area, db in sc.compiled.dbs.items()
               if hasattr(db, "_path") and not os.path.exists(db._path(cache))]
    if missing:
        raise Fatal(f"cache directory {cache}: could not write the databases for "
                    f"{', '.join(missing)}")
    for f in rule_report(sc)["failed"]:
        _warn(f)
    sys.stdout.write(f"compiled {len(sc.compiled.active)} scored rules ({st.rules} defined) in "
                     f"{took:.2f} s, {'from the cache' if st.from_cache else 'cache written'}: "
                     f"{cache}\n")
    return 0


# --------------------------------------------------------------------------- explain

def _read_message(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read()
        where = "standard input"
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Fatal(f"open {path}: {e.strerror}") from None
        where = path
    if not data:
        raise Fatal(f"{where}: empty message")
    return data


def _number(x: float) -> str:
    from postier.content.verdict import number
    return number(x)


def cmd_explain(args: argparse.Namespace) -> int:
    cfg = _config(args)
    data = _read_message(args.message)         # bad input: before the long compile
    from postier.content.verdict import ContentPolicy
    policy = ContentPolicy.from_config(cfg)
    rs = _load_rules(_directories(args, cfg))
    sc = _scanner(rs, _cache_dir(args, cfg))
    try:
        run = sc.run(data)
    except Exception as e:  # noqa: BLE001 - an engine bug must not become a traceback
        raise Fatal(f"the rule engine failed on this message: {type(e).__name__}: {e}") from None
    out = sys.stdout.write
    hits = sorted(set(run.hits), key=lambda h: (-h[1], h[0]))
    width = max([len(n) for n, _ in hits] + [4])
    if hits:
        out(f"{'rule':<{width}}  {'score':>7}{'hits':>6}  description\n")
    for name, score in hits:
        v = run.values.get(name, 1)
        count = f"x{v:g}" if rs.has_flag(name, "multiple") and v > 1 else ""
        line = f"{name:<{width}}  {_number(score):>7}{count:>6}  {rs.descriptions.get(name, '')}"
        out(line.rstrip() + "\n")
    if not hits:
        out("no scored rule hit\n")
    if args.verbose:
        scored = {n for n, _ in run.hits}
        rest = sorted(n for n in run.values if n not in scored)
        if rest:
            out("other rule values (sub-rules, unscored):\n")
            for n in rest:
                out(f"  {n} = {run.values[n]:g}\n")
    score = round(run.score, 3)
    required = sc.required
    out(f"score {_number(score)}, required {_number(required)}: "
        f"{'spam' if score >= required else 'not spam'}\n")
    notes = []
    if policy.tag_level is not None and score >= policy.tag_level:
        notes.append(f"X-Spam-* headers (spam_tag_level {_number(policy.tag_level)})")
    if policy.tag2_level is not None and score >= policy.tag2_level:
        notes.append(f"X-Spam-Flag: YES and the subject tag (spam_tag2_level "
                     f"{_number(policy.tag2_level)})")
    if policy.kill_level is not None and score >= policy.kill_level:
        notes.append(f"final_spam_destiny = {policy.destinies['spam']} (spam_kill_level "
                     f"{_number(policy.kill_level)})")
    out("postier: " + ("; ".join(notes) if notes else "passes untouched") + "\n")
    return 0


# --------------------------------------------------------------------------- main

COMMANDS = {"check": cmd_check, "compile": cmd_compile, "explain": cmd_explain}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Fatal as e:
        sys.stderr.write(f"{PROG}: fatal: {e}\n")
        return 1
    except PostierError as e:
        sys.stderr.write(f"{PROG}: fatal: {e}\n")
        return 1
