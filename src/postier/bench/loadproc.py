"""One step of load in its own process: `python -m postier.bench.loadproc SPEC.json`.

The scenario runner starts this for every step, pinned to the load CPUs,
so that the generator never competes with the server under test for a
core (and never with the runner's sampling for the GIL).  SPEC (JSON):

    {"host", "port", "n", "first_seq", "seed", "rate" (null: closed loop),
     "arrival", "sessions", "messages_per_session", "pipelining",
     "recipients", "mix", "corpus" (directory or null: synthetic),
     "greylist_new_fraction", "spam_retry_fraction", "retry_after",
     "max_attempts", "id_prefix", "deadline", "out"}

It writes `out` (JSON): {"summary": {...}, "records": [[id, cls, kind,
outcome, code, attempts, due, first_done, done, latency, sched_latency,
defers_expected, defers_unexpected, size], ...], "started", "finished"}.
"""

from __future__ import annotations

import json
import sys

FIELDS = ("id", "cls", "kind", "outcome", "code", "attempts", "due", "first_done", "done",
          "latency", "sched_latency", "defers_expected", "defers_unexpected", "size")


def build_messages(spec: dict) -> list:
    from postier.bench.corpus import Corpus, TrafficMix
    corpus = None
    if spec.get("corpus"):
        try:
            corpus = Corpus.load(spec["corpus"])
        except OSError:
            corpus = None
    if corpus is None:
        corpus = Corpus.synthetic(seed=spec.get("seed", 1))
    mix = TrafficMix(spec["mix"], corpus, seed=spec.get("seed", 1),
                     greylist_new_fraction=spec.get("greylist_new_fraction", 0.0),
                     spam_retry_fraction=spec.get("spam_retry_fraction", 0.5),
                     recipients=spec.get("recipients", 1))
    return mix.messages(spec["n"], first_seq=spec.get("first_seq", 1))


def run_spec(spec: dict) -> dict:
    from postier.bench.source import SourceOptions, run_source
    msgs = build_messages(spec)
    opts = SourceOptions(host=spec.get("host", "127.0.0.1"), port=spec["port"],
                         sessions=spec.get("sessions", 20),
                         messages_per_session=spec.get("messages_per_session", 1),
                         pipelining=spec.get("pipelining", True), rate=spec.get("rate"),
                         arrival=spec.get("arrival", "uniform"),
                         id_prefix=spec.get("id_prefix", "bench"),
                         retry_after=tuple(spec.get("retry_after", (5.0, 10.0))),
                         max_attempts=spec.get("max_attempts", 1),
                         deadline=spec.get("deadline"), seed=spec.get("seed", 1),
                         timeout=spec.get("timeout", 60.0))
    res = run_source(msgs, opts)
    recs = [[getattr(r, f) for f in FIELDS] for r in res.records]
    return {"summary": res.summary(), "records": recs, "fields": list(FIELDS),
            "started": res.started, "finished": res.finished}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m postier.bench.loadproc SPEC.json\n")
        return 2
    with open(argv[0]) as f:
        spec = json.load(f)
    out = run_spec(spec)
    with open(spec["out"], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
