"""The address_rewriting dialogs of content_checks.json (recorded from real
Postfix 3.7.11) replayed against `postier run`: every reply, and the queue
file as postcat shows it (headers, body, envelope records), must match.

The queue file is read back with postier.queue.postcat (the code behind
`postier queue cat`) and normalised the way the recording harness
normalised Postfix's postcat output (compat/pfdiff/oracle.py:
postcat_capture, strip_postcat_banner, normalize_dates, parse_envelope),
re-implemented here because the shared harness is not part of the checkout.
Runs with the native modules and with the pure twins.
"""

from __future__ import annotations

import os
import re

import pytest
from smtp_harness import PostierInstance, comparable, load_fixture, run_dialog

from postier.queue.postcat import format_queue_file

FIXTURE = load_fixture("content_checks.json")
DIALOGS = [d for d in FIXTURE["dialogs"] if d["scenario"] == "address_rewriting"]

DATE_RX = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]?\d "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d:\d\d [+-]\d{4} \([^)]*\)")
MSGID_RX = re.compile(r"<\d{14}\.(QUEUEID\d*)@")
BANNER_RX = re.compile(r"^\*\*\* ENVELOPE RECORDS (?:(\w+)/)?(\S+) \*\*\*", re.M)
DROP_ATTR = ("log_client_address", "log_client_name", "log_helo_name", "log_message_origin",
             "log_protocol_name", "log_client_port", "client_address_type", "client_name",
             "reverse_client_name", "client_address", "client_port", "helo_name",
             "protocol_name", "rewrite_context", "trace_flags", "sasl_method",
             "sasl_username", "server_address", "server_port", "create_time",
             "message_origin", "log_ident")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def normalize_ids(text: str, ids: list[str]) -> str:
    for i, qid in enumerate(ids):
        text = text.replace(qid, "QUEUEID" if len(ids) == 1 else f"QUEUEID{i}")
    return text


def normalize_dates(text: str) -> str:
    return MSGID_RX.sub(r"<TIMESTAMP.\1@", DATE_RX.sub("DATE", text))


def strip_banner(text: str) -> str:
    keep = [x for x in text.splitlines() if not (x.startswith("*** ") and x.endswith(" ***"))]
    return "\n".join(keep) + ("\n" if keep else "")


def parse_envelope(text: str) -> list[list[str]]:
    env = []
    for line in text.splitlines():
        if line.startswith("*** ") or ": " not in line:
            continue
        key, _, val = line.partition(": ")
        key = key.strip()
        if key in ("message_size", "message_arrival_time", "create_time",
                   "warning_message_time", "named_attribute_size"):
            continue
        if key == "named_attribute" and val.split("=", 1)[0] in DROP_ATTR:
            continue
        env.append([key, val])
    return env


def queue_files(root: str) -> dict[str, tuple[str, str]]:
    found = {}
    for q in QUEUES:
        d = os.path.join(root, "queue", q)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if not name.startswith("."):
                    found[name] = (q, os.path.join(d, name))
    return found


def capture(qid: str, queue: str, path: str, ids: list[str]) -> dict:
    """postcat_capture() of the recording harness, on postier's queue file."""
    res = {"queue": None}
    env_txt = format_queue_file(path, queue, envelope=True, header=False, body=False)
    m = BANNER_RX.search(env_txt)
    res["queue"] = m.group(1) if m and m.group(1) else "unknown"
    res["headers"] = normalize_dates(strip_banner(normalize_ids(
        format_queue_file(path, queue, envelope=False, header=True, body=False), ids)))
    res["body"] = strip_banner(normalize_ids(
        format_queue_file(path, queue, envelope=False, header=False, body=True), ids))
    res["envelope"] = parse_envelope(normalize_ids(env_txt, ids))
    return res


@pytest.fixture(scope="module", params=["native", "pure"])
def instance(request):
    inst = PostierInstance(FIXTURE, pure=request.param == "pure")
    yield inst
    inst.close()


@pytest.mark.slow
@pytest.mark.parametrize("dialog", DIALOGS, ids=[d["id"] for d in DIALOGS])
def test_rewriting_matches_postfix(instance, dialog):
    if instance.scenario != dialog["scenario"]:
        instance.configure(dialog)
    before = set(queue_files(instance.root))
    got = comparable(run_dialog(instance.port, dialog))
    assert got == comparable(dialog["dialog"]), f"postier output:\n{instance.output()[-1500:]}"
    now = queue_files(instance.root)
    ids = sorted(set(now) - before)
    actual = [capture(qid, *now[qid], ids) for qid in ids]
    want = [{k: q[k] for k in ("queue", "headers", "body", "envelope")}
            for q in dialog["queue_files"] if q["queue"] is not None]
    assert actual == want
