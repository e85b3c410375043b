"""The address_rewriting dialogs of content_checks.json (recorded from real
Postfix 3.7.11) replayed against `postier run`: every reply, and the queue
file as postcat shows it (headers, body, envelope records), must match.

The queue file is read back with postier.queue.postcat (the code behind
`postier queue cat`) and normalised the way the recording harness
normalised Postfix's postcat output (smtp_harness.capture_queue_file).
Runs with the native modules and with the pure twins.
"""

from __future__ import annotations

import pytest
from smtp_harness import (
    PostierInstance,
    capture_queue_file,
    comparable,
    load_fixture,
    queue_files,
    run_dialog,
)

FIXTURE = load_fixture("content_checks.json")
DIALOGS = [d for d in FIXTURE["dialogs"] if d["scenario"] == "address_rewriting"]


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
    actual = [capture_queue_file(qid, *now[qid], ids) for qid in ids]
    want = [{k: q[k] for k in ("queue", "headers", "body", "envelope")}
            for q in dialog["queue_files"] if q["queue"] is not None]
    assert actual == want
