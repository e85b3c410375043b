"""Record what real Postfix 3.7 answers for the DNS-based restrictions.

    sudo .venv/bin/python tests/integration/dns/record_postfix_dns.py [--out FILE] [--only ID]

Postfix asks the system resolver (glibc, /etc/resolv.conf, port 53), so the
recording runs inside a private network namespace (`unshare --net --mount`,
only `lo` up: nothing can leave the machine) where

* nsd (tools/nsd_server.py) serves dns_scenarios.ZONES on 127.0.0.1:5353,
* a SplitProxy on 127.0.0.1:53 relays to it, except names under
  dns_scenarios.DROP, which go to a nameserver that never answers,
* /etc/resolv.conf is bind-mounted over with "nameserver 127.0.0.1" and
  "options timeout:1 attempts:1" (the same 1 s budget postier gets),
* a private Postfix (tools/postfix_instance.py) plays every scenario of
  dns_scenarios.SCENARIOS: XCLIENT sessions, and sessions from real loopback
  source addresses 127.0.0.11-17 for the client name lookups.

The output (default tests/integration/dns/postfix_dns.json) holds, per
scenario and session, every reply and the normalized smtpd log lines, with
the Postfix version and the date; test_dns_postfix_fixture.py replays it
against postier.  Needs root, Debian postfix and nsd, util-linux unshare
and iproute2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [HERE, os.path.join(ROOT, "tools")]

import dns_scenarios as S  # noqa: E402
from nsd_server import NsdServer, SplitProxy  # noqa: E402
from postfix_instance import PostfixInstance, mail_version  # noqa: E402

OUT = os.path.join(HERE, "postfix_dns.json")


def in_namespace(argv: list[str]) -> None:
    """Re-exec this script in a private net+mount namespace (lo up)."""
    if os.environ.get("POSTIER_DNS_NETNS") == "1":
        return
    if os.geteuid() != 0:
        sys.exit("record_postfix_dns.py: needs root (private network namespace, Postfix)")
    cmd = ("ip link set lo up && exec env POSTIER_DNS_NETNS=1 "
           + " ".join(f"'{a}'" for a in [sys.executable, os.path.abspath(sys.argv[0])] + argv))
    os.execvp("unshare", ["unshare", "--net", "--mount", "--", "sh", "-c", cmd])


def private_resolv_conf() -> str:
    """Bind-mount a resolv.conf naming 127.0.0.1 over /etc/resolv.conf (in
    our private mount namespace only); returns its directory."""
    d = tempfile.mkdtemp(prefix="postier_resolv.")
    path = os.path.join(d, "resolv.conf")
    with open(path, "w") as f:
        f.write(f"nameserver 127.0.0.1\noptions timeout:{S.TIMEOUT} attempts:1\n")
    os.chmod(d, 0o755)
    os.chmod(path, 0o644)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", path, "/etc/resolv.conf"], check=True)
    return d


def drop_resolv_conf(d: str) -> None:
    subprocess.run(["umount", "/etc/resolv.conf"], check=False)
    shutil.rmtree(d, ignore_errors=True)


def record(only: set[str] | None) -> dict:
    out: dict = {"format": "postier/dns-oracle/1",
                 "postfix": mail_version(),
                 "recorded": datetime.datetime.now(datetime.UTC).isoformat(
                     timespec="seconds"),
                 "how": "tests/integration/dns/record_postfix_dns.py: private netns, nsd + "
                        "SplitProxy on 127.0.0.1:53, resolv.conf 'options timeout:1 attempts:1'",
                 "scenarios": []}
    with NsdServer(S.ZONES, port=5353) as nsd, SplitProxy(nsd.port, S.DROP, port=53), \
            PostfixInstance() as pf:
        for sc in S.SCENARIOS:
            if only and sc.id not in only:
                continue
            pf.stop()
            pf.write_config(S.main_cf(sc), sc.tables)
            pf.start()
            rec = {"id": sc.id, "main_cf": S.main_cf(sc), "sessions": []}
            for sess in sc.sessions:
                start = pf.log_size()
                pf.remember_children()
                replies = S.run_session(pf.port, sess)
                pf.remember_children()
                if not pf.wait_log("disconnect from", 15, start=start):
                    raise RuntimeError(f"{sc.id}: no disconnect line in the log")
                time.sleep(0.05)
                log = S.normalize_log(pf.read_log(start), keep_connect=sc.keep_connect)
                rec["sessions"].append({"steps": sess.steps, "xclient": sess.xclient,
                                        "source": sess.source, "replies": replies, "log": log})
                print(f"{sc.id}: {replies[-2].splitlines()[-1]}", flush=True)
            out["scenarios"].append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--only", action="append", help="scenario id (repeatable)")
    args = ap.parse_args(argv)
    in_namespace(argv)
    resolv_dir = private_resolv_conf()
    try:
        data = record(set(args.only) if args.only else None)
    finally:
        drop_resolv_conf(resolv_dir)
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        keep = [s for s in old["scenarios"] if s["id"] not in set(args.only)]
        data["scenarios"] = sorted(keep + data["scenarios"],
                                   key=lambda s: S.SCENARIO_IDS.index(s["id"])
                                   if s["id"] in S.SCENARIO_IDS else 999)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
