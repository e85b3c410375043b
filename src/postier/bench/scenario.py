"""Scenario files: a main.cf, a traffic mix, a load shape and resource limits, as TOML.

    sc = load_scenario("bench/scenarios/lab-2005.toml")   # or find_scenario("lab-2005")
    sc.name, sc.mix, sc.load.mode, sc.thresholds.p99_ms
    sc = sc.quick()                                       # --quick: short steps

Errors (bad TOML, unknown section or key, wrong type or value) raise
SourceError with the file and line: `lab-2005.toml, line 12: [load]
step_seconds: expected a number above 0`.  tomllib reports its own line
numbers; for the checks made here the line of the key (or of its section)
is found in the text.

Layout (every section but [scenario] and [mta] is optional):

    [scenario]  name, description, daily_messages (the real load: 15000 = the lab)
    [mta]       main_cf, master_cf (paths relative to the .toml), tables
                ({file = "hash"}: indexed tables to compile, files next to main.cf)
    [traffic]   mix ({ham, spam, virus, rejected} -> share), sessions,
                messages_per_session, pipelining, recipients, arrival
                (uniform | poisson), corpus (directory; relative to the checkout)
    [features]  greylist, antivirus, spam (true: use when available)
    [greylist]  delay (s), retry_after ([lo, hi] s), new_fraction, spam_retry_fraction
    [load]      mode (search | fixed); search: start_rate, factor, max_rate,
                step_seconds, refine_steps; fixed: rate (msg/s, or "100x" of the
                daily average), duration
    [thresholds] p99_ms, defer_fraction, achieved_ratio, backlog_fraction
    [limits]    cores, memory ("256M"; defaults for --cores/--memory)
    [quick]     overrides of [load] keys for --quick (and lab_window)
    [measure]   lab_window (s, the CPU window at the real load), drain_timeout (s)

main.cf and master.cf may use @ROOT@ (the instance directory), @TABLES@
(where the table files are copied), @PORT@ (the SMTP port), @SINK_PORT@,
@GREYLIST@ (check_greylist for postier, check_policy_service to postgrey for
Postfix, empty when greylisting is off), @CLAMD@ (av_scanners value) and
@SPAM@ (yes/no).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from postier.errors import SourceError

SCENARIO_DIR_ENV = "POSTIER_BENCH_SCENARIOS"
LAB_DAILY = 15000


@dataclass
class Load:
    mode: str = "search"
    start_rate: float = 5.0
    factor: float = 2.0
    max_rate: float = 2000.0
    step_seconds: float = 10.0
    refine_steps: int = 2
    rate: float | None = None
    duration: float = 60.0


@dataclass
class Thresholds:
    p99_ms: float = 1000.0
    defer_fraction: float = 0.01
    achieved_ratio: float = 0.9
    backlog_fraction: float = 0.25


@dataclass
class Greylist:
    delay: int = 3
    retry_after: tuple[float, float] = (4.0, 8.0)
    new_fraction: float = 0.3
    spam_retry_fraction: float = 0.5


@dataclass
class Scenario:
    path: str
    name: str
    description: str = ""
    daily_messages: int = LAB_DAILY
    main_cf: str = ""
    master_cf: str | None = None
    tables: dict[str, str] = field(default_factory=dict)
    mix: dict[str, float] = field(default_factory=lambda: {"ham": 1.0})
    sessions: int = 20
    messages_per_session: int = 1
    pipelining: bool = True
    recipients: int = 1
    arrival: str = "poisson"
    corpus: str | None = None
    features: dict[str, bool] = field(default_factory=dict)
    greylist: Greylist = field(default_factory=Greylist)
    load: Load = field(default_factory=Load)
    thresholds: Thresholds = field(default_factory=Thresholds)
    cores: int | None = None
    memory: str | None = None
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    lab_window: float = 20.0
    drain_timeout: float = 120.0

    @property
    def daily_rate(self) -> float:
        """The real average load in msg/s (15,000/day = 0.17 msg/s)."""
        return self.daily_messages / 86400.0

    @property
    def dir(self) -> str:
        return os.path.dirname(self.main_cf)

    def quick(self) -> Scenario:
        """The scenario with its [quick] overrides (short steps, for tests)."""
        load = dataclasses.replace(self.load)
        q = dict(self.quick_overrides)
        lab_window = q.pop("lab_window", min(self.lab_window, 4.0))
        drain = q.pop("drain_timeout", min(self.drain_timeout, 30.0))
        for k, v in q.items():
            setattr(load, k, v)
        if "step_seconds" not in q:
            load.step_seconds = min(load.step_seconds, 2.0)
        if "duration" not in q:
            load.duration = min(load.duration, 5.0)
        return dataclasses.replace(self, load=load, lab_window=lab_window, drain_timeout=drain)

    def fixed_rate(self) -> float:
        return float(self.load.rate or 0.0)


# --------------------------------------------------------------------------- loading

_SECTIONS: dict[str, dict[str, str]] = {
    "scenario": {"name": "str", "description": "str", "daily_messages": "posint"},
    "mta": {"main_cf": "str", "master_cf": "str", "tables": "table"},
    "traffic": {"mix": "mix", "sessions": "posint", "messages_per_session": "posint",
                "pipelining": "bool", "recipients": "posint", "arrival": "arrival",
                "corpus": "str"},
    "features": {"greylist": "bool", "antivirus": "bool", "spam": "bool"},
    "greylist": {"delay": "posint", "retry_after": "range", "new_fraction": "fraction",
                 "spam_retry_fraction": "fraction"},
    "load": {"mode": "mode", "start_rate": "posnum", "factor": "factor", "max_rate": "posnum",
             "step_seconds": "posnum", "refine_steps": "nonnegint", "rate": "rate",
             "duration": "posnum"},
    "thresholds": {"p99_ms": "posnum", "defer_fraction": "fraction",
                   "achieved_ratio": "fraction", "backlog_fraction": "posnum"},
    "limits": {"cores": "posint", "memory": "size"},
    "quick": {"start_rate": "posnum", "factor": "factor", "max_rate": "posnum",
              "step_seconds": "posnum", "refine_steps": "nonnegint", "rate": "rate",
              "duration": "posnum", "lab_window": "posnum", "drain_timeout": "posnum"},
    "measure": {"lab_window": "posnum", "drain_timeout": "posnum"},
}
_REQUIRED = {"scenario": ("name",), "mta": ("main_cf",)}
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
SIZE_RX = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?$")


def parse_size(text: str) -> int | None:
    """'256M' -> bytes (k, M, G are powers of 1024); None when malformed."""
    m = SIZE_RX.match(str(text).strip())
    if not m:
        return None
    mult = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


class _Locator:
    """Finds the line of a section or key in the TOML text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def line(self, section: str, key: str | None = None) -> int | None:
        sec_line = None
        cur = None
        for i, raw in enumerate(self.lines, 1):
            s = raw.strip()
            m = re.match(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]", s)
            if m:
                cur = m.group(1)
                if cur == section and sec_line is None:
                    sec_line = i
                continue
            if cur == section and key is not None and re.match(
                    rf"^{re.escape(key)}\s*=", s):
                return i
            if cur is None and key is not None and section == "" and re.match(
                    rf"^{re.escape(key)}\s*=", s):
                return i
        return sec_line


def load_scenario(path: str, *, checkout: str | None = None) -> Scenario:
    """Read and validate a scenario file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SourceError(f"cannot read scenario: {e.strerror}", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SourceError("not UTF-8 text", path, line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_LINE.search(msg)
        line = int(m.group(1)) if m else None
        raise SourceError(f"bad TOML: {_TOML_LINE.sub('', msg).strip()}", path, line) from None
    loc = _Locator(text)

    def fail(section: str, key: str | None, what: str) -> SourceError:
        where = f"[{section}] {key}" if key else f"[{section}]"
        return SourceError(f"{where}: {what}", path, loc.line(section, key))

    for sec, body in data.items():
        if sec not in _SECTIONS:
            return_line = loc.line(sec) or loc.line("", sec)
            raise SourceError(f"unknown section [{sec}] (known: "
                              f"{', '.join(sorted(_SECTIONS))})", path, return_line)
        if not isinstance(body, dict):
            raise SourceError(f"{sec} must be a [section]", path, loc.line("", sec))
        for key, value in body.items():
            kind = _SECTIONS[sec].get(key)
            if kind is None:
                raise fail(sec, key, f"unknown key (known: {', '.join(_SECTIONS[sec])})")
            problem = _check(kind, value)
            if problem:
                raise fail(sec, key, problem)
    for sec, keys in _REQUIRED.items():
        for key in keys:
            if key not in data.get(sec, {}):
                line = loc.line(sec) or 1
                raise SourceError(f"[{sec}] {key} is required", path, line)

    base = os.path.dirname(os.path.abspath(path))
    s = data["scenario"]
    m = data["mta"]
    t = data.get("traffic", {})
    sc = Scenario(path=os.path.abspath(path), name=s["name"],
                  description=s.get("description", ""),
                  daily_messages=s.get("daily_messages", LAB_DAILY),
                  main_cf=os.path.join(base, m["main_cf"]),
                  master_cf=os.path.join(base, m["master_cf"]) if m.get("master_cf") else None,
                  tables=dict(m.get("tables", {})))
    for key, p in (("main_cf", sc.main_cf), ("master_cf", sc.master_cf)):
        if p and not os.path.isfile(p):
            raise fail("mta", key, f"no such file: {p}")
    for name in sc.tables:
        if not os.path.isfile(os.path.join(sc.dir, name)):
            raise fail("mta", "tables", f"no table file {name!r} next to main.cf")
    if "mix" in t:
        sc.mix = {k: float(v) for k, v in t["mix"].items()}
    for key in ("sessions", "messages_per_session", "pipelining", "recipients", "arrival"):
        if key in t:
            setattr(sc, key, t[key])
    if "corpus" in t:
        root = checkout or os.path.dirname(os.path.dirname(base))
        sc.corpus = os.path.normpath(os.path.join(root, t["corpus"]))
    sc.features = dict(data.get("features", {}))
    g = data.get("greylist", {})
    sc.greylist = Greylist(delay=g.get("delay", 3),
                           retry_after=tuple(g.get("retry_after", (4.0, 8.0))),  # type: ignore[arg-type]
                           new_fraction=g.get("new_fraction", 0.3),
                           spam_retry_fraction=g.get("spam_retry_fraction", 0.5))
    ld = data.get("load", {})
    sc.load = Load(**{k: v for k, v in ld.items() if k != "rate"})
    if "rate" in ld:
        sc.load.rate = _rate(ld["rate"], sc.daily_messages)
    if sc.load.mode == "fixed" and sc.load.rate is None:
        raise fail("load", "mode", "mode = \"fixed\" needs a rate")
    th = data.get("thresholds", {})
    sc.thresholds = Thresholds(**th)
    lim = data.get("limits", {})
    sc.cores = lim.get("cores")
    sc.memory = lim.get("memory")
    q = dict(data.get("quick", {}))
    if "rate" in q:
        q["rate"] = _rate(q["rate"], sc.daily_messages)
    sc.quick_overrides = q
    meas = data.get("measure", {})
    sc.lab_window = float(meas.get("lab_window", sc.lab_window))
    sc.drain_timeout = float(meas.get("drain_timeout", sc.drain_timeout))
    return sc


def _rate(value: Any, daily: int) -> float:
    if isinstance(value, str):
        return float(value[:-1]) * daily / 86400.0
    return float(value)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(kind: str, v: Any) -> str | None:
    """None when `v` is a valid `kind`, else what was expected."""
    if kind == "str":
        return None if isinstance(v, str) else "expected a string"
    if kind == "bool":
        return None if isinstance(v, bool) else "expected true or false"
    if kind == "posint":
        return None if isinstance(v, int) and not isinstance(v, bool) and v > 0 \
            else "expected a whole number above 0"
    if kind == "nonnegint":
        return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 \
            else "expected a whole number, 0 or more"
    if kind == "posnum":
        return None if _num(v) and v > 0 else "expected a number above 0"
    if kind == "fraction":
        return None if _num(v) and 0 <= v <= 1 else "expected a number from 0 to 1"
    if kind == "factor":
        return None if _num(v) and v > 1 else "expected a number above 1"
    if kind == "mode":
        return None if v in ("search", "fixed") else 'expected "search" or "fixed"'
    if kind == "arrival":
        return None if v in ("uniform", "poisson") else 'expected "uniform" or "poisson"'
    if kind == "size":
        return None if isinstance(v, str) and parse_size(v) else \
            'expected a size like "256M"'
    if kind == "range":
        return None if (isinstance(v, list) and len(v) == 2 and all(_num(x) for x in v)
                        and 0 <= v[0] <= v[1]) else "expected [low, high] seconds"
    if kind == "rate":
        if _num(v) and v > 0:
            return None
        if isinstance(v, str) and re.fullmatch(r"\d+(\.\d+)?x", v.strip()):
            return None
        return 'expected msg/s above 0, or "Nx" (N times the daily average)'
    if kind == "mix":
        from postier.bench.corpus import CLASSES
        if not isinstance(v, dict) or not v:
            return "expected a table of class = share"
        for k, x in v.items():
            if k not in CLASSES:
                return f"unknown traffic class {k!r} (known: {', '.join(CLASSES)})"
            if not _num(x) or x < 0:
                return f"share of {k!r}: expected a number, 0 or more"
        if not any(x > 0 for x in v.values()):
            return "no class has a share above 0"
        return None
    if kind == "table":
        if not isinstance(v, dict):
            return 'expected a table of file = "hash"'
        for k, x in v.items():
            if x not in ("hash", "texthash", "regexp", "pcre", "cidr"):
                return f"table {k!r}: unknown type {x!r}"
        return None
    return f"internal: unknown kind {kind}"  # pragma: no cover


# --------------------------------------------------------------------------- finding

def checkout_root() -> str | None:
    """The source checkout this package runs from (it has bench/scenarios), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    for up in (3, 2, 4):
        root = os.path.abspath(os.path.join(here, *[".."] * up))
        if os.path.isdir(os.path.join(root, "bench", "scenarios")):
            return root
    cwd = os.getcwd()
    if os.path.isdir(os.path.join(cwd, "bench", "scenarios")):
        return cwd
    return None


def scenario_dirs() -> list[str]:
    out = []
    env = os.environ.get(SCENARIO_DIR_ENV)
    if env:
        out.append(env)
    root = checkout_root()
    if root:
        out.append(os.path.join(root, "bench", "scenarios"))
    return out


def find_scenario(name: str) -> str:
    """A scenario file: a path to a .toml, or a name in bench/scenarios/."""
    if name.endswith(".toml") or os.sep in name:
        return name
    for d in scenario_dirs():
        p = os.path.join(d, name + ".toml")
        if os.path.isfile(p):
            return p
    known = list_scenarios()
    raise SourceError(f"no scenario {name!r} (known: {', '.join(known) or 'none'}; "
                      f"or give a path to a .toml file)")


def list_scenarios() -> list[str]:
    out: list[str] = []
    for d in scenario_dirs():
        try:
            out += sorted(f[:-5] for f in os.listdir(d) if f.endswith(".toml"))
        except OSError:
            pass
    return out
