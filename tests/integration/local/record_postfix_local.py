"""Record what real Postfix 3.7's local(8), pipe(8) and virtual(8) log for the
scenarios of local_scenarios.py, into data/postfix_local.json.

    sudo .venv/bin/python tests/integration/local/record_postfix_local.py

Needs root, the Debian postfix package and the test users (created here
with tools/testusers.py and removed at the end).  Each scenario restarts a
private loopback-only instance (postfix_local_oracle.py) with the
scenario's main.cf, aliases and master.cf, sends one message by SMTP and
keeps the delivery status lines of that queue ID (normalized, see
local_scenarios.normalize) plus the lines local(8) prepends to a mailbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "tools"))

import local_scenarios as S  # noqa: E402
import testusers  # noqa: E402
from postfix_local_oracle import LocalOracle  # noqa: E402

OUT = os.path.join(HERE, "data", "postfix_local.json")


def mailbox_head(root: str, user: str) -> list[str]:
    path = os.path.join(root, "mail", user)
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        return []
    head = []
    for line in lines:
        if line.startswith("Received:"):
            break
        head.append(re.sub(r"  \w{3} \w{3} [ \d]\d [\d:]{8} \d{4}$", "  DATE", line))
    return head


def run_scenario(pf: LocalOracle, sc: dict) -> dict:
    root = pf.root
    for d in ("mail", "pub", "vbase"):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    for name in ("staff.list", "inc.list", "passwd-like"):
        try:
            os.unlink(os.path.join(root, name))
        except FileNotFoundError:
            pass
    os.makedirs(os.path.join(root, "mail"))
    os.makedirs(os.path.join(root, "pub"))
    os.chmod(os.path.join(root, "pub"), 0o1777)
    S.clean_homes()
    overrides = {"myhostname": "mx.example.test", "recipient_delimiter": "+"}
    for k, v in sc.get("main_cf", {}).items():
        overrides[k] = S.subst(v, root)
    tables = {}
    transport = sc.get("transport")
    if transport and transport not in ("local", "virtual"):
        dom = sc["rcpt"].rsplit("@", 1)[1]
        tables["transport"] = ("hash", f"{dom} {transport}:\n")
        overrides["transport_maps"] = "hash:@TABLES@/transport"
    pf.stop()
    aliases = S.subst(sc["aliases"], root) if sc.get("aliases") is not None else ""
    pf.configure(overrides, aliases=aliases, extra_master=S.subst(sc.get("master", ""), root),
                 tables=tables)
    os.chmod(os.path.join(root, "mail"), 0o2775)
    S.prepare(root, sc)
    for t in sc.get("tables", []):
        import subprocess
        subprocess.run(["postmap", S.subst(t, root)], check=True)
    pf.start()
    start = pf.log_size()
    body = sc.get("body", S.BODY)
    qid = pf.send(sc.get("sender", S.SENDER), [sc["rcpt"]], body)
    if qid is None:
        raise RuntimeError(f"{sc['id']}: message refused")
    deadline = time.time() + 30
    while time.time() < deadline:
        text = pf.read_log(start)
        if f"{qid}: removed" in text or re.search(rf"{qid}: to=.*status=deferred", text):
            break
        time.sleep(0.1)
    time.sleep(0.3)
    lines = pf.read_log(start).splitlines()
    statuses, warnings = [], []
    for line in lines:
        m = re.search(r"postfix/(local|pipe|virtual)\[\d+\]: (.*)$", line)
        if not m:
            continue
        msg = m.group(2)
        if msg.startswith(f"{qid}: to="):
            st = S.parse_log_line(msg, root)
            if st:
                statuses.append(st)
        elif msg.startswith("warning: "):
            warnings.append(S.normalize_text(msg, root))
    out = {"id": sc["id"], "qid_lines": statuses, "warnings": warnings}
    user = sc["rcpt"].split("@")[0].split("+")[0]
    if sc["id"] in ("mailbox", "mailbox_null_sender", "alias_root", "extension"):
        out["mailbox_head"] = mailbox_head(root, "ptest1" if user == "root" else user)
    return out


def main() -> int:
    if not testusers.can_manage_users():
        print("needs root", file=sys.stderr)
        return 1
    base = tempfile.mkdtemp(prefix="postier-rec.")
    os.chmod(base, 0o755)
    users = testusers.TestUsers(base)
    results = []
    try:
        for name in ("ptest1", "ptest2", "ptest3"):
            users.add(name)
        with LocalOracle() as pf:
            os.chmod(pf.root, 0o755)
            for sc in S.SCENARIOS:
                r = run_scenario(pf, sc)
                print(sc["id"], json.dumps(r["qid_lines"]), flush=True)
                results.append(r)
            version = subprocess_version()
    finally:
        users.close()
        shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"format": "postier/local-delivery/1",
                   "provenance": f"recorded from Postfix {version} (Debian) with "
                                 "tests/integration/local/record_postfix_local.py",
                   "scenarios": results}, f, indent=1)
        f.write("\n")
    return 0


def subprocess_version() -> str:
    import subprocess
    return subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                          text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
