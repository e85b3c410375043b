"""`postier bench`: capacity planning -- scenarios, load generator, sink, comparisons.

    postier bench SCENARIO [--cores N] [--memory SIZE] [--compare postfix] [--quick]
                           [--corpus DIR] [--results DIR] [--seed N] [--keep] [--no-progress]
    postier bench list
    postier bench source [-s SESSIONS] [-m COUNT] [-l SIZE] [-r RCPTS] [--rate R]
                         [--duration S] [--eml-dir DIR] [--no-pipelining] ... HOST:PORT
    postier bench sink [--defer-fraction F] [--reject-fraction F] [--record FILE] HOST:PORT
    postier bench compare A.json B.json

SCENARIO is a name in bench/scenarios/ (lab-2005, relay-plain, burst) or
a path to a scenario .toml (see postier.bench.scenario).  The run prints a
progress bar on stderr, then the result table on stdout, and writes
results.json, report.html and PNG plots to
bench/results/<scenario>-<timestamp>/ (or --results DIR).

Reads no main.cf parameters: the scenario names its own main.cf.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from postier.errors import PostierError

SUBCOMMANDS = ("list", "source", "sink", "compare")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r}: give a loopback IP address") from None
    if not ip.is_loopback:
        raise argparse.ArgumentTypeError(f"{host}: only loopback addresses (127.0.0.0/8, ::1)")
    return host, int(port)


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") \
            from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return v


def _positive(kind):
    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") \
                from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return v
    return conv


def main(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        return {"list": cmd_list, "source": cmd_source, "sink": cmd_sink,
                "compare": cmd_compare}[argv[0]](argv[1:])
    return cmd_run(argv)


# --------------------------------------------------------------------------- run

def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier bench",
        description="Run a capacity-planning scenario: step the offered load up until "
                    "latency or deferrals cross the scenario's thresholds, measure CPU at "
                    "the real load, memory and loss; optionally against real Postfix in the "
                    "same run.  Other forms: `postier bench list|source|sink|compare ...`.")
    p.add_argument("scenario", help="scenario name (bench/scenarios/NAME.toml) or .toml path")
    p.add_argument("--cores", type=_positive(int), metavar="N",
                   help="pin the server to N CPUs (the load generator gets the others)")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory cap for the server, e.g. 256M (cgroup v2 memory.max when "
                        "possible, else RLIMIT_AS per process)")
    p.add_argument("--compare", action="append", default=[], choices=["postfix"],
                   help="also run the scenario against a private real Postfix, interleaved")
    p.add_argument("--quick", action="store_true", help="short steps (tests, smoke runs)")
    p.add_argument("--corpus", metavar="DIR",
                   help="labelled corpus directory (labels.tsv); default: the scenario's, "
                        "else a synthetic set")
    p.add_argument("--results", metavar="DIR", help="where the report directory goes "
                   "(default: bench/results of the checkout)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the results JSON to stdout")
    return p


def cmd_run(argv: list[str]) -> int:
    args = run_parser().parse_args(argv)
    from postier.bench.report import terminal_table, write_report
    from postier.bench.runner import RunOptions, run_scenario
    from postier.bench.scenario import checkout_root, find_scenario, load_scenario
    try:
        sc = load_scenario(find_scenario(args.scenario), checkout=checkout_root())
        cores = args.cores if args.cores is not None else sc.cores
        memory = args.memory if args.memory is not None else sc.memory
        if memory is not None:
            from postier.bench.scenario import parse_size
            if not parse_size(memory):
                sys.stderr.write(f"postier bench: --memory {memory!r}: expected a size "
                                 f"like 256M\n")
                return 2
        opts = RunOptions(cores=cores, memory=memory, compare=args.compare, quick=args.quick,
                          corpus=args.corpus, seed=args.seed, progress=not args.no_progress,
                          keep=args.keep)
        result = run_scenario(sc, opts)
    except (PostierError, ValueError) as e:
        sys.stderr.write(f"postier bench: {e}\n")
        return 1
    except RuntimeError as e:
        sys.stderr.write(f"postier bench: fatal: {e}\n")
        return 1
    root = checkout_root()
    results = args.results or (os.path.join(root, "bench", "results") if root
                               else "bench-results")
    out = write_report(result, results)
    print(terminal_table(result))
    print(f"\nreport: {os.path.join(out, 'report.html')}\njson:   "
          f"{os.path.join(out, 'results.json')}")
    if args.json:
        with open(os.path.join(out, "results.json")) as f:
            sys.stdout.write(f.read())
    return 0


def cmd_list(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="postier bench list",
                            description="List the scenarios in bench/scenarios/.").parse_args(argv)
    from postier.bench.scenario import find_scenario, list_scenarios, load_scenario
    for name in list_scenarios():
        try:
            sc = load_scenario(find_scenario(name))
            print(f"{name:<14} {sc.description}")
        except PostierError as e:
            print(f"{name:<14} (invalid: {e})")
    return 0


# --------------------------------------------------------------------------- source

def source_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier bench source",
        description="Load generator (like smtp-source): send COUNT messages over SESSIONS "
                    "parallel sessions, as fast as possible or at --rate msg/s; every "
                    "message carries a unique X-Bench-Id header; prints a summary with the "
                    "latency of the 250 replies.")
    p.add_argument("target", type=_hostport, help="HOST:PORT (loopback only)")
    p.add_argument("-s", "--sessions", type=_positive(int), default=1)
    p.add_argument("-m", "--count", type=_positive(int), default=None,
                   help="messages to send (default 100, or rate x duration)")
    p.add_argument("-l", "--size", type=_positive(int), default=2048,
                   help="message size in bytes (synthetic bodies)")
    p.add_argument("-r", "--recipients", type=_positive(int), default=1)
    p.add_argument("-d", "--messages-per-session", type=_positive(int), default=1,
                   help="messages per connection (smtp-source -d sends them all over one)")
    p.add_argument("-f", "--sender", default="bench@client.example.net")
    p.add_argument("-t", "--to", default="rcpt@example.test",
                   help="recipient (with -r N: N recipients rcptK+this)")
    p.add_argument("-M", "--helo", default="client.example.net")
    p.add_argument("--rate", type=_positive(float), help="open loop: messages per second")
    p.add_argument("--duration", type=_positive(float),
                   help="with --rate: seconds of load (count = rate x duration)")
    p.add_argument("--arrival", choices=["uniform", "poisson"], default="uniform")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--eml-dir", metavar="DIR",
                   help="message bodies: the files in DIR (.eml or any), drawn at random")
    p.add_argument("--id-prefix", default="bench")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=_positive(float), default=60.0)
    p.add_argument("--json", metavar="FILE", help="write every message record here")
    return p


def cmd_source(argv: list[str]) -> int:
    args = source_parser().parse_args(argv)
    import random

    from postier.bench.source import (
        Outgoing,
        SourceOptions,
        prepare_content,
        run_source,
        synthetic_content,
    )
    host, port = args.target
    if args.count is not None:
        n = args.count
    elif args.rate and args.duration:
        n = max(1, int(round(args.rate * args.duration)))
    else:
        n = 100
    rng = random.Random(args.seed)
    bodies: list[bytes] = []
    if args.eml_dir:
        try:
            names = sorted(os.listdir(args.eml_dir))
        except OSError as e:
            sys.stderr.write(f"postier bench source: {args.eml_dir}: {e.strerror}\n")
            return 1
        for name in names:
            path = os.path.join(args.eml_dir, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    bodies.append(prepare_content(f.read()))
        if not bodies:
            sys.stderr.write(f"postier bench source: {args.eml_dir}: no message files\n")
            return 1
    rcpts = [args.to] if args.recipients == 1 else [f"rcpt{i}+{args.to}"
                                                    for i in range(args.recipients)]
    msgs = []
    for i in range(1, n + 1):
        data = rng.choice(bodies) if bodies else synthetic_content(
            args.size, sender=args.sender, rcpt=rcpts[0], seq=i)
        msgs.append(Outgoing(seq=i, data=data, sender=args.sender, rcpts=rcpts,
                             helo=args.helo))
    opts = SourceOptions(host=host, port=port, sessions=args.sessions,
                         messages_per_session=args.messages_per_session,
                         pipelining=not args.no_pipelining, rate=args.rate,
                         arrival=args.arrival, id_prefix=args.id_prefix, seed=args.seed,
                         timeout=args.timeout, max_attempts=1)
    try:
        res = run_source(msgs, opts)
    except KeyboardInterrupt:
        return 130
    s = res.summary()
    print(f"messages={s['messages']} accepted={s['accepted']} rejected={s['rejected']} "
          f"deferred={s['deferred']} errors={s['errors']} sessions={s['sessions_opened']}")
    print(f"wall={s['wall_s']:.2f}s accepted/s={s['accepted_per_s']:.1f} "
          f"latency p50={_f(s['latency_p50_ms'])}ms p99={_f(s['latency_p99_ms'])}ms "
          f"(from due time: p50={_f(s['sched_latency_p50_ms'])}ms "
          f"p99={_f(s['sched_latency_p99_ms'])}ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": s, "records": [r.__dict__ for r in res.records]}, f)
    return 0 if s["errors"] == 0 else 1


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


# --------------------------------------------------------------------------- sink

def sink_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postier bench sink",
        description="SMTP sink (like smtp-sink): accepts and counts messages, answers 4xx/5xx "
                    "for a fraction, records the arrival time and X-Bench-Id of every "
                    "message; prints its counters on SIGTERM/SIGINT.")
    p.add_argument("--listen", type=_hostport, dest="listen_opt", metavar="HOST:PORT")
    p.add_argument("target", type=_hostport, nargs="?", metavar="HOST:PORT")
    p.add_argument("--defer-fraction", type=_fraction, default=0.0)
    p.add_argument("--reject-fraction", type=_fraction, default=0.0)
    p.add_argument("--drop-fraction", type=_fraction, default=0.0,
                   help="(testing) answer 250 but do not record")
    p.add_argument("--duplicate-fraction", type=_fraction, default=0.0,
                   help="(testing) record twice")
    p.add_argument("--record", metavar="FILE", help="append TIME<TAB>ID<TAB>SIZE per message")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no counters on exit")
    return p


def cmd_sink(argv: list[str]) -> int:
    p = sink_parser()
    args = p.parse_args(argv)
    where = args.listen_opt or args.target
    if where is None:
        p.error("give HOST:PORT to listen on")
    if args.defer_fraction + args.reject_fraction > 1.0:
        p.error("--defer-fraction + --reject-fraction must not exceed 1")
    import asyncio

    from postier.bench.sink import SinkOptions, serve
    opts = SinkOptions(host=where[0], port=where[1], defer_fraction=args.defer_fraction,
                       reject_fraction=args.reject_fraction, drop_fraction=args.drop_fraction,
                       duplicate_fraction=args.duplicate_fraction, record_path=args.record,
                       seed=args.seed, keep_in_memory=False)

    def ready(sink) -> None:
        if not args.quiet:
            sys.stderr.write(f"postier bench sink: listening on {where[0]}:{sink.port}\n")
            sys.stderr.flush()
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    try:
        with runner:
            sink = runner.run(serve(opts, ready=ready))
    except OSError as e:
        sys.stderr.write(f"postier bench sink: bind {where[0]}:{where[1]}: {e.strerror}\n")
        return 1
    if not args.quiet:
        print(sink.counter_line())
    return 0


# --------------------------------------------------------------------------- compare

def cmd_compare(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="postier bench compare",
        description="Compare two runs (results.json files or their directories): every "
                    "headline figure of each system in both, with the ratio B/A.")
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    from postier.bench.report import compare, compare_text, load_result
    try:
        a, b = load_result(args.a), load_result(args.b)
    except PostierError as e:
        sys.stderr.write(f"postier bench compare: {e}\n")
        return 1
    if args.json:
        print(json.dumps(compare(a, b), indent=1))
    else:
        print(compare_text(a, b))
    return 0
