"""Run real Postfix's postqueue(1) and qshape(1) on a queue described by a
golden spec (tests/golden/queue/*.in), and compare with the .ref files.

    python tests/integration/queue/postfix_oracle.py [--write] [GOLDEN.in ...]

For each spec: a private Postfix configuration (tools/postfix_instance.py,
not started: `postfix check` only creates the queue tree) with
`hash_queue_names = flush` (flat message and defer-log directories) and `enable_long_queue_ids =
yes` (postqueue's layout for long queue IDs, which postier always uses);
the spec's messages are written as Postfix queue files with the same queue
IDs, arrival times, sizes, senders and recipients, plus Postfix text defer
logs.  Then `postqueue -c DIR -p|-j` (showq stand-alone, the mail system is
down) or `qshape -c DIR ...` runs with TZ=UTC.  For qshape the arrival times
are shifted so that the ages relative to the real clock are those of the
spec's `now`.

Normalisation (documented differences, see docs/compat.md): showq lists a
queue in readdir order, postier by queue ID: the Postfix output's message
blocks (JSON lines) are put in (queue, ID) order.  postqueue's "Mail system
is down -- accessing queue directly" warning goes to stderr and is ignored.

--write stores the normalised Postfix output as the .ref; without it the
.ref files are compared and differences printed (exit 1).  Needs root and
the postfix package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "queue"))
sys.path.insert(0, os.path.join(ROOT, "src"))

from _queue_spec import build_postfix, load_spec  # noqa: E402
from postfix_instance import PostfixInstance, postfix_available  # noqa: E402

GOLDEN_DIR = os.path.join(ROOT, "tests", "golden", "queue")
SHOWQ_ORDER = ("maildrop", "active", "incoming", "deferred", "hold")


def postfix_argv(command: list[str], etc: str) -> list[str]:
    if command[:2] == ["queue", "list"]:
        rest = command[2:]
        return ["postqueue", "-c", etc, "-j" if "-j" in rest else "-p"]
    if command[:1] == ["qshape"]:
        return ["qshape", "-c", etc] + command[1:]
    raise ValueError(f"no Postfix equivalent for {command}")


def _order_key(spec: dict):
    where = {m["id"]: SHOWQ_ORDER.index(m["queue"]) for m in spec.get("messages", [])
             if m["queue"] in SHOWQ_ORDER}

    def key(qid: str) -> tuple[int, str]:
        return where.get(qid, 99), qid
    return key


def normalise(command: list[str], spec: dict, out: str) -> str:
    key = _order_key(spec)
    if command[:2] == ["queue", "list"] and "-j" in command:
        import json
        lines = [x for x in out.splitlines(keepends=True) if x.strip()]
        lines.sort(key=lambda x: key(json.loads(x)["queue_id"]))
        return "".join(lines)
    if command[:2] == ["queue", "list"]:
        if out == "Mail queue is empty\n":
            return out
        head, rest = out.split("\n", 1)
        body, footer = rest.rsplit("\n\n-- ", 1)
        blocks = body.split("\n\n")
        blocks.sort(key=lambda b: key(b.split(" ", 1)[0].rstrip("*!#")))
        return head + "\n" + "\n\n".join(blocks) + "\n\n-- " + footer
    return out


def run_postfix(spec: dict) -> str:
    """The normalised output of the real tool for this spec."""
    command = spec["command"]
    with PostfixInstance() as pf:
        pf.write_config({"hash_queue_names": "flush", "enable_long_queue_ids": "yes",
                         **spec.get("main_cf", {})})
        real_now = time.time()
        shift = real_now - float(spec.get("now", real_now))
        shifted = dict(spec)
        if command[:1] == ["qshape"]:
            shifted["messages"] = [dict(m, arrival=(m["arrival"] + shift)) if "arrival" in m
                                   else m for m in spec.get("messages", [])]
        build_postfix(shifted, pf.queue, real_now)
        env = dict(os.environ, TZ="UTC")
        p = subprocess.run(postfix_argv(command, pf.etc), capture_output=True, text=True,
                           env=env, cwd=pf.root)
        if p.returncode != 0:
            raise RuntimeError(f"{command}: exit {p.returncode}: {p.stderr.strip()}")
        return normalise(command, spec, p.stdout)


def main(argv: list[str]) -> int:
    write = "--write" in argv
    names = [a for a in argv if a != "--write"]
    if not names:
        names = sorted(os.path.join(GOLDEN_DIR, n) for n in os.listdir(GOLDEN_DIR)
                       if n.endswith(".in"))
    if not postfix_available():
        print("needs root and the postfix package", file=sys.stderr)
        return 2
    bad = 0
    for path in names:
        _, spec = load_spec(path)
        try:
            got = run_postfix(spec)
        except ValueError:
            print(f"{os.path.basename(path)}: no Postfix equivalent, skipped")
            continue
        ref = path[:-3] + ".ref"
        if write:
            with open(ref, "w") as f:
                f.write(got)
            print(f"wrote {ref}")
            continue
        with open(ref) as f:
            want = f.read()
        if got == want:
            print(f"{os.path.basename(path)}: same as Postfix")
        else:
            bad += 1
            import difflib
            print(f"{os.path.basename(path)}: DIFFERS from Postfix")
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True),
                                                       got.splitlines(True), "ref", "postfix"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
