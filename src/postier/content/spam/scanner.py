"""The spam scanner: SpamAssassin's rule files, compiled once, one verdict per message.

    scanner = SpamScanner(cfg)                  # reads the rules, compiles (cached)
    v = scanner.scan(message_bytes)             # Verdict(score, hits, required)
    vs = scanner.scan_many([m1, m2, ...])       # the same, run phase by phase (faster)
    v.is_spam                                   # score >= required (required_score, 5.0)

This is the entry point postier.content.scan (end of DATA), `postier rules`
and the benchmarks use; postier.content.spam.conf reads the rule files,
postier.content.spam.engine compiles and runs them.  The verdict is
SpamAssassin's with score set 0 (no network tests, no Bayes): the scored
rules that hit, each with its score, and their sum.  What the verdict does
to the message (tag levels, destinies) is postier.content.verdict's.

A rule set that cannot be read at all (no rule file found) is a
ConfigError; bad lines inside the files are warnings (`rules.warnings`,
SpamAssassin's wording with file and line) and are skipped, as
SpamAssassin does.

A scan runs with Python's cyclic garbage collector paused (_gc_paused): a
scan makes no cyclic garbage (none found over the benchmark's 900 scans),
but while it runs its young containers (line lists, value dicts) are large,
and each young-generation collection that allocation counts trigger then
walks them for nothing (~50-60 us per message, ~2.5% of a scan's CPU).  The
scan's objects are freed before the collector is back on (scan, scan_many:
else the first allocation after it would trigger a young collection walking
them all).  The collector's counts carry on, so it runs as usual between
scans.

Parameters read: spam_rules_directories, spam_rules_cache_directory.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from postier.content.spam import conf as C
from postier.content.spam.engine import CompiledRules, Run
from postier.errors import ConfigError


@dataclass
class Verdict:
    """What the rules say about one message."""

    score: float
    hits: list[tuple[str, float]] = field(default_factory=list)   # scored rules that hit
    required: float = 5.0

    @property
    def is_spam(self) -> bool:
        return self.score >= self.required


def rule_directories(cfg: Any) -> list[str]:
    """$spam_rules_directories as a list."""
    return [d for d in cfg.get_list("spam_rules_directories") if d]


def cache_directory(cfg: Any) -> str | None:
    """$spam_rules_cache_directory, or None when empty."""
    d = cfg.get("spam_rules_cache_directory").strip()
    return d or None


def load(directories: list[str], extra_text: str = "") -> C.RuleSet:
    """Read a rule set; ConfigError when none of `directories` has a rule file."""
    files = C.rule_files(directories)
    if not any(f.endswith(".cf") for f in files):
        raise ConfigError("spam_rules_directories: no SpamAssassin rule file (*.cf) in "
                          + (" ".join(directories) or "(empty list)"))
    return C.load_rules(directories, extra_text)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for one scan (module docstring);
    left as it was found (a caller that paused it keeps it paused)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class SpamScanner:
    """A compiled rule set (see the module docstring)."""

    def __init__(self, cfg: Any = None, *, directories: list[str] | None = None,
                 cache_dir: str | None = None, extra_text: str = "",
                 rules: C.RuleSet | None = None):
        if cfg is not None:
            directories = rule_directories(cfg) if directories is None else directories
            cache_dir = cache_directory(cfg) if cache_dir is None else cache_dir
        if rules is None:
            rules = load(directories or [], extra_text)
        self.rules = rules
        if cache_dir:
            try:
                os.makedirs(cache_dir, exist_ok=True)
            except OSError:
                cache_dir = None            # no cache: compile in memory
        self.compiled = CompiledRules(rules, cache_dir=cache_dir)

    @property
    def required(self) -> float:
        return self.rules.required_score

    def run(self, data: bytes) -> Run:
        """The full run (every rule value, subrules included): `postier rules explain`."""
        with _gc_paused():
            return self.compiled.run(data)

    def scan(self, data: bytes) -> Verdict:
        with _gc_paused():
            r = self.compiled.run(data)
            v = self._verdict(r)
            del r       # freed before the collector is back (_gc_paused)
        return v

    def scan_many(self, datas: list[bytes]) -> list[Verdict | Exception]:
        """scan() of each message, the batch run phase by phase
        (CompiledRules.run_many: less CPU per message); a message whose scan
        raised gets that exception instead of its Verdict."""
        with _gc_paused():
            runs = self.compiled.run_many(datas)
            out = [r if isinstance(r, Exception) else self._verdict(r) for r in runs]
            del runs    # freed before the collector is back (_gc_paused)
        return out

    def _verdict(self, r: Run) -> Verdict:
        return Verdict(round(r.score, 3), list(r.hits), self.required)
