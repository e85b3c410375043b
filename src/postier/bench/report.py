"""Reports of a scenario run: terminal table, JSON, HTML with PNG plots; `bench compare`.

    out = write_report(result, "bench/results")   # -> bench/results/<scenario>-<time>/
    #  results.json   every figure of the run (schema "postier-bench/1")
    #  report.html    headline table, plots, every step, notes
    #  throughput.png latency.png resources.png comparison.png (PLOT_SIZE pixels each)
    print(terminal_table(result))
    print(compare_text(load_result("A.json"), load_result("B.json")))

Plots are drawn with matplotlib (the `bench` extra) and its Agg backend;
without matplotlib the HTML report is written without plots and says so.
"""

from __future__ import annotations

import html
import json
import os
import time

from postier.errors import SourceError

PLOT_SIZE = (900, 500)       # pixels (width, height) of every PNG
DPI = 100
PLOTS = ("throughput.png", "latency.png", "resources.png", "comparison.png")
COLORS = {"postier": "#1f77b4", "postfix": "#d62728"}
REQUIRED_KEYS = ("schema", "scenario", "host", "limits", "systems", "ratios", "notes")


# --------------------------------------------------------------------------- formatting

def _num(v, fmt: str = "{:,.1f}", none: str = "-") -> str:
    if v is None:
        return none
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def headline_rows(result: dict) -> list[tuple[str, list[str]]]:
    """(label, [value per system]) rows of the headline table."""
    names = list(result["systems"])
    sysd = result["systems"]
    daily = result["scenario"].get("daily_messages", 15000)
    fixed = result["scenario"]["load"].get("mode") == "fixed"
    rows: list[tuple[str, list[str]]] = []

    def row(label, fn):
        rows.append((label, [fn(sysd[n]) for n in names]))
    if fixed:
        load = result["scenario"]["load"]
        row(f"offered {load.get('rate') or 0:.1f} msg/s for {load.get('duration', 0):.0f} s",
            lambda s: "kept up" if s["summary"].get("fixed_ok") else "fell behind")
        row("queue peak (messages)", lambda s: _num(s["summary"].get("queue_peak"), "{:,}"))
        row("drain after the load (s)", lambda s: _num(s["summary"].get("drain_s")))
    else:
        row("sustained msg/s", lambda s: _num(s["summary"].get("sustainable_per_s")) +
            ("+" if s["summary"].get("capped") else ""))
        row("messages/day", lambda s: _num(s["summary"].get("messages_per_day"), "{:,.0f}"))
        row("queue peak, whole run (messages)", lambda s: _num(s.get("queue_peak"), "{:,}"))
    row("p50 latency, . to 250 (ms)", lambda s: _num(s["summary"].get("latency_p50_ms"),
                                                     "{:,.1f}"))
    row("p99 latency, . to 250 (ms)", lambda s: _num(s["summary"].get("latency_p99_ms"),
                                                     "{:,.1f}"))
    row("CPU s per 1,000 msgs", lambda s: _num(s["summary"].get("cpu_s_per_1000"), "{:,.2f}"))
    row(f"CPU % at real load ({daily:,}/day)",
        lambda s: _num(s["lab"].get("cpu_at_real_load_pct"), "{:.2f}%"))
    row("idle CPU %", lambda s: _num(s["lab"].get("idle_cpu_pct"), "{:.2f}%"))
    row("peak PSS, all processes (MB)", lambda s: _num((s["memory"].get("peak_pss_kb") or 0)
                                                       / 1024))
    row("peak RSS, all processes (MB)", lambda s: _num((s["memory"].get("peak_rss_kb") or 0)
                                                       / 1024))
    row("processes (peak)", lambda s: _num(s["memory"].get("peak_procs"), "{:,}"))
    row("accepted (250)", lambda s: _num(s["accounting"]["accepted"], "{:,}"))
    row("lost", lambda s: _num(s["accounting"]["lost"], "{:,}"))
    row("duplicates", lambda s: _num(s["accounting"]["duplicates"], "{:,}"))
    return rows


RATIO_ROWS = {"sustained msg/s": "sustainable", "messages/day": "sustainable",
              "p50 latency, . to 250 (ms)": "latency_p50",
              "p99 latency, . to 250 (ms)": "latency_p99",
              "CPU s per 1,000 msgs": "cpu_per_1000", "peak PSS, all processes (MB)": "peak_pss"}


def terminal_table(result: dict) -> str:
    sc = result["scenario"]
    names = list(result["systems"])
    ratios = result.get("ratios") or {}
    lim = result["limits"]
    head = (f"postier bench {sc['name']}{' (quick)' if sc.get('quick') else ''}: "
            f"{lim.get('cpus')}; {lim.get('memory')}")
    rows = headline_rows(result)
    w0 = max(len(r[0]) for r in rows) + 2
    cols = names + (["postier/postfix"] if ratios else [])
    w = max(14, *(len(c) + 2 for c in cols))
    lines = [head, "", " " * w0 + "".join(f"{c:>{w}}" for c in cols)]
    for label, vals in rows:
        line = f"{label:<{w0}}" + "".join(f"{v:>{w}}" for v in vals)
        if ratios:
            key = RATIO_ROWS.get(label)
            r = ratios.get(key) if key else None
            line += f"{_num(r, '{:.2f}x'):>{w}}" if key else ""
        lines.append(line)
    for n in names:
        acc = result["systems"][n]["accounting"]
        if acc["lost"]:
            lines.append(f"{n}: LOST {acc['lost']} accepted messages, e.g. "
                         f"{', '.join(acc['lost_ids'][:5])}")
    if result.get("notes"):
        lines.append("")
        lines += [f"note: {x}" for x in result["notes"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _fig(plt, nrows: int = 1, ncols: int = 1):
    return plt.subplots(nrows, ncols, figsize=(PLOT_SIZE[0] / DPI, PLOT_SIZE[1] / DPI),
                        dpi=DPI)


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)      # no bbox "tight": the size stays PLOT_SIZE


def plot_throughput(result: dict, path: str) -> None:
    plt = _plt()
    fig, ax = _fig(plt)
    top = 1.0
    for name, s in result["systems"].items():
        steps = sorted((x for x in s["steps"] if x["phase"] in ("search", "refine", "fixed")),
                       key=lambda x: x["rate"])
        if not steps:
            continue
        xs = [x["rate"] for x in steps]
        top = max(top, *xs)
        c = COLORS.get(name)
        ax.plot(xs, [x["achieved_per_s"] for x in steps], "o-", color=c,
                label=f"{name}: answered/s")
        ax.plot(xs, [x["accepted_per_s"] for x in steps], "d-.", color=c, alpha=0.8,
                label=f"{name}: accepted (250)/s")
        ax.plot(xs, [x["delivered_per_s"] for x in steps], "s--", color=c, alpha=0.5,
                label=f"{name}: delivered/s")
        bad = [x for x in steps if x.get("ok") is False]
        if bad:
            ax.scatter([x["rate"] for x in bad], [x["achieved_per_s"] for x in bad],
                       marker="x", s=90, color="black", zorder=5)
        sus = s["summary"].get("sustainable_per_s")
        if sus:
            ax.axvline(sus, color=c, linestyle=":", alpha=0.8)
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered")
    ax.set_xlabel("offered load (msg/s)")
    ax.set_ylabel("msg/s")
    ax.set_title("Throughput vs offered load (x: step over a threshold; dotted: sustained)\n"
                 "answered = any reply (250, reject, greylisting); delivered = at the sink",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_latency(result: dict, path: str) -> None:
    plt = _plt()
    fig, (a1, a2) = _fig(plt, 1, 2)
    for name, s in result["systems"].items():
        c = COLORS.get(name)
        steps = sorted((x for x in s["steps"] if x["phase"] in ("search", "refine", "fixed")),
                       key=lambda x: x["rate"])
        xs = [x["rate"] for x in steps]
        for key, style, lab in (("latency_p50_ms", "o-", "p50"), ("latency_p99_ms", "s--", "p99"),
                                ("sched_latency_p99_ms", "^:", "p99 incl. wait")):
            ys = [x[key] if x[key] is not None else float("nan") for x in steps]
            a1.plot(xs, ys, style, color=c, label=f"{name} {lab}", alpha=0.9)
        lat = sorted(s.get("latencies_ms") or [])
        if lat:
            n = len(lat)
            a2.plot(lat, [100.0 * (i + 1) / n for i in range(n)], color=c, label=name)
    a1.set_xlabel("offered load (msg/s)")
    a1.set_ylabel("ms (log)")
    a1.set_yscale("log")
    a1.set_title("Latency percentiles by step")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=7)
    a2.set_xscale("log")
    a2.set_xlabel(". to 250 (ms, log)")
    a2.set_ylabel("% of messages")
    a2.set_title("Latency distribution (all steps)")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_resources(result: dict, path: str) -> None:
    plt = _plt()
    fig, (a1, a2) = _fig(plt, 2, 1)
    for name, s in result["systems"].items():
        c = COLORS.get(name)
        tl = s.get("timeline") or []
        a1.plot([x["t"] for x in tl], [x["cpu_pct"] if x["cpu_pct"] is not None
                                       else float("nan") for x in tl], color=c, label=name)
        a2.plot([x["t"] for x in tl], [x["pss_kb"] / 1024 for x in tl], color=c,
                label=f"{name} PSS")
        a2.plot([x["t"] for x in tl], [x["rss_kb"] / 1024 for x in tl], color=c, alpha=0.4,
                linestyle="--", label=f"{name} RSS")
    a1.set_ylabel("CPU % (one core = 100)")
    a1.set_title("CPU and memory of all server processes over time")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    a2.set_xlabel("seconds since start")
    a2.set_ylabel("MB")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8, ncol=2)
    _save(fig, path)
    plt.close(fig)


def plot_comparison(result: dict, path: str) -> None:
    plt = _plt()
    fig, axes = _fig(plt, 1, 4)
    names = list(result["systems"])
    metrics = [("sustained msg/s", lambda s: s["summary"].get("sustainable_per_s")
                or s["summary"].get("fixed_rate")),
               ("p99 . to 250 (ms)", lambda s: s["summary"].get("latency_p99_ms")),
               ("CPU s / 1,000 msgs", lambda s: s["summary"].get("cpu_s_per_1000")),
               ("peak PSS (MB)", lambda s: (s["memory"].get("peak_pss_kb") or 0) / 1024)]
    for ax, (title, fn) in zip(axes, metrics, strict=True):
        vals = [fn(result["systems"][n]) or 0 for n in names]
        ax.bar(names, vals, color=[COLORS.get(n, "#888888") for n in names])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:,.1f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle("postier vs Postfix" if len(names) > 1 else "postier")
    _save(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- files

def write_report(result: dict, results_dir: str, *, stamp: str | None = None) -> str:
    """Write results.json, the PNG plots and report.html into a new
    directory `results_dir/<scenario>-<timestamp>/`; returns its path."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S", time.localtime(result.get("started")))
    out = os.path.join(results_dir, f"{result['scenario']['name']}-{stamp}")
    n = 1
    base = out
    while os.path.exists(out):
        n += 1
        out = f"{base}-{n}"
    os.makedirs(out)
    plots: list[str] = []
    plot_error = None
    try:
        for name, fn in zip(PLOTS, (plot_throughput, plot_latency, plot_resources,
                                    plot_comparison), strict=True):
            fn(result, os.path.join(out, name))
            plots.append(name)
    except ImportError as e:
        plot_error = f"no plots: matplotlib is not installed ({e}); pip install 'postier[bench]'"
    result = dict(result)
    result["files"] = {"dir": out, "json": "results.json", "html": "report.html",
                       "plots": plots, "plot_size": list(PLOT_SIZE), "plot_error": plot_error}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(os.path.join(out, "report.html"), "w", encoding="utf-8") as f:
        f.write(html_report(result, plots, plot_error))
    return out


def html_report(result: dict, plots: list[str], plot_error: str | None = None) -> str:
    e = html.escape
    sc = result["scenario"]
    names = list(result["systems"])
    ratios = result.get("ratios") or {}
    rows = headline_rows(result)
    th = "".join(f"<th>{e(n)}</th>" for n in names) + ("<th>postier/postfix</th>"
                                                         if ratios else "")
    body = []
    for label, vals in rows:
        cells = "".join(f"<td>{e(v)}</td>" for v in vals)
        if ratios:
            key = RATIO_ROWS.get(label)
            cells += f"<td>{e(_num(ratios.get(key), '{:.2f}x')) if key else ''}</td>"
        body.append(f"<tr><th class=l>{e(label)}</th>{cells}</tr>")
    steps_html = []
    for n in names:
        srows = []
        for x in result["systems"][n]["steps"]:
            verdict = "ok" if x.get("ok") else ("over: " + "; ".join(x.get("reasons") or []))
            srows.append(
                "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in (
                    x["phase"], _num(x["rate"], "{:.2f}"), x["messages"],
                    _num(x["achieved_per_s"]), _num(x["delivered_per_s"]),
                    _num(x["latency_p50_ms"]), _num(x["latency_p99_ms"]),
                    _num(x["sched_latency_p99_ms"]), x["defers_expected"],
                    x["defers_unexpected"] + x["errors"], x["queue_peak"],
                    _num(x["cpu_pct"]), _num(x["cpu_s_per_1000"], "{:.2f}"),
                    _num(x["peak_pss_kb"] / 1024), verdict)) + "</tr>")
        steps_html.append(
            f"<h3>{e(n)}: steps</h3><table><tr><th>phase</th><th>offered/s</th>"
            "<th>msgs</th><th>answered/s</th><th>delivered/s</th><th>p50 ms</th>"
            "<th>p99 ms</th><th>p99 incl. wait</th><th>greylisted</th><th>4xx+errors</th>"
            "<th>queue peak</th><th>CPU %</th><th>CPU s/1000</th><th>PSS MB</th>"
            "<th>verdict</th></tr>" + "".join(srows) + "</table>")
        oc = result["systems"][n].get("outcomes_by_class") or {}
        if oc:
            kinds = sorted({k for v in oc.values() for k in v})
            steps_html.append(
                f"<h3>{e(n)}: outcomes by traffic class</h3><table><tr><th>class</th>"
                + "".join(f"<th>{e(k)}</th>" for k in kinds) + "</tr>"
                + "".join(f"<tr><th class=l>{e(c)}</th>"
                          + "".join(f"<td>{v.get(k, 0):,}</td>" for k in kinds) + "</tr>"
                          for c, v in sorted(oc.items())) + "</table>")
    w, h = PLOT_SIZE
    imgs = "".join(f'<figure><img src="{e(p)}" width="{w}" height="{h}" alt="{e(p)}">'
                   f"</figure>" for p in plots)
    if plot_error:
        imgs = f"<p class=warn>{e(plot_error)}</p>"
    notes = "".join(f"<li>{e(x)}</li>" for x in result.get("notes") or [])
    host = result.get("host") or {}
    lim = result.get("limits") or {}
    feats = result.get("features") or {}
    th_ = sc.get("thresholds") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>postier bench {e(sc['name'])}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th.l {{ text-align: left; font-weight: normal; }}
figure {{ margin: 10px 0; }}
.warn {{ color: #a00; }}
.meta {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>postier bench: {e(sc['name'])}{' (quick)' if sc.get('quick') else ''}</h1>
<p>{e(sc.get('description') or '')}</p>
<p class=meta>{e(host.get('cpu_model') or '')}, {host.get('cpus')} CPUs, kernel
{e(str(host.get('kernel')))}, Python {e(str(host.get('python')))}, postier
{e(str(host.get('postier')))}, Postfix {e(str(host.get('postfix')))}<br>
{e(str(lim.get('cpus')))}; {e(str(lim.get('memory')))}<br>
corpus: {e(str(result.get('corpus')))}; features: {e(', '.join(
        k for k in ('greylist', 'antivirus', 'spam') if feats.get(k)) or 'none')}<br>
thresholds: p99 &le; {th_.get('p99_ms')} ms, deferrals &le;
{100 * (th_.get('defer_fraction') or 0):.1f}%, answered &ge;
{100 * (th_.get('achieved_ratio') or 0):.0f}% of offered, queue growth &le;
{100 * (th_.get('backlog_fraction') or 0):.0f}% of accepted<br>
started {e(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(result.get('started') or 0)))},
{_num(result.get('duration_s'), '{:.0f}')} s</p>
<h2>Summary</h2>
<table><tr><th></th>{th}</tr>{''.join(body)}</table>
<h2>Plots</h2>{imgs}
<h2>Steps</h2>{''.join(steps_html)}
<h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul>
</body></html>
"""


# --------------------------------------------------------------------------- compare

def load_result(path: str) -> dict:
    """A results.json (or the directory holding one), checked for its shape."""
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"not JSON: {e.msg}", path, e.lineno) from None
    if not isinstance(data, dict):
        raise SourceError("not a postier bench result (expected a JSON object)", path)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise SourceError(f"not a postier bench result (missing {', '.join(missing)})", path)
    if not str(data["schema"]).startswith("postier-bench/"):
        raise SourceError(f"unknown schema {data['schema']!r}", path)
    return data


COMPARE_METRICS = [
    ("sustained msg/s", lambda s: s["summary"].get("sustainable_per_s"), True),
    ("p50 latency (ms)", lambda s: s["summary"].get("latency_p50_ms"), False),
    ("p99 latency (ms)", lambda s: s["summary"].get("latency_p99_ms"), False),
    ("CPU s per 1,000 msgs", lambda s: s["summary"].get("cpu_s_per_1000"), False),
    ("CPU % at real load", lambda s: s["lab"].get("cpu_at_real_load_pct"), False),
    ("peak PSS (MB)", lambda s: (s["memory"].get("peak_pss_kb") or 0) / 1024, False),
    ("lost", lambda s: s["accounting"].get("lost"), False),
    ("duplicates", lambda s: s["accounting"].get("duplicates"), False),
]


def compare(a: dict, b: dict) -> list[dict]:
    """Per system present in both runs and per metric: A, B, B/A."""
    out = []
    for name in a["systems"]:
        if name not in b["systems"]:
            continue
        for label, fn, higher_better in COMPARE_METRICS:
            va, vb = fn(a["systems"][name]), fn(b["systems"][name])
            ratio = (vb / va) if (va not in (None, 0) and vb is not None) else None
            better = None
            if ratio is not None and ratio != 1.0:
                better = (ratio > 1.0) == higher_better
            out.append({"system": name, "metric": label, "a": va, "b": vb, "ratio": ratio,
                        "better": better})
    return out


def compare_text(a: dict, b: dict, a_name: str = "A", b_name: str = "B") -> str:
    rows = compare(a, b)
    if not rows:
        return "no system in common between the two runs"
    lines = [f"A: {a['scenario']['name']} {_when(a)}  ({a['limits'].get('cpus')})",
             f"B: {b['scenario']['name']} {_when(b)}  ({b['limits'].get('cpus')})", ""]
    w0 = max(len(r["system"]) + len(r["metric"]) + 3 for r in rows)
    lines.append(f"{'':<{w0}}{'A':>14}{'B':>14}{'B/A':>9}")
    for r in rows:
        mark = {True: "  better", False: "  worse", None: ""}[r["better"]]
        lines.append(f"{r['system'] + ': ' + r['metric']:<{w0}}{_num(r['a'], '{:,.2f}'):>14}"
                     f"{_num(r['b'], '{:,.2f}'):>14}{_num(r['ratio'], '{:.2f}x'):>9}{mark}")
    if a["scenario"]["name"] != b["scenario"]["name"]:
        lines.append("note: the runs are of different scenarios")
    return "\n".join(lines)


def _when(r: dict) -> str:
    t = r.get("started")
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "?"
