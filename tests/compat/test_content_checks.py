"""The content_actions and upstream_mime_warn_all dialogs of
content_checks.json (recorded from real Postfix 3.7.11) replayed against
`postier run`: every reply, the queue file as postcat shows it (queue,
headers, body, envelope records) and the log lines of the session must
match.

content_actions: header_checks (regexp + pcre), mime_header_checks (the
header_checks(5) attachment-name rule), nested_header_checks and
body_checks with every action.  upstream_mime_warn_all: Postfix's own MIME
test messages (src/global/mime_*.in) with header_checks and body_checks
both `static:warn`, so the log shows how every line was classified.

Log lines (those of smtpd and cleanup) are compared without the program
name: postier logs cleanup's lines from the smtpd process.  Runs with the native modules and with the
pure twins.
"""

from __future__ import annotations

import os
import time

import pytest
from smtp_harness import (
    PostierInstance,
    capture_queue_file,
    comparable,
    load_fixture,
    queue_files,
    run_dialog,
    session_log,
)

FIXTURE = load_fixture("content_checks.json")
SCENARIOS = ("content_actions", "upstream_mime_warn_all")
DIALOGS = [d for d in FIXTURE["dialogs"] if d["scenario"] in SCENARIOS]


def _text(line: str) -> str:
    """A log line without its `postfix/SERVICE: ` tag."""
    return line.split(": ", 1)[1] if line.startswith("postfix/") else line


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path: str, start: int) -> str:
    deadline = time.time() + 5
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "surrogateescape")
        except OSError:
            text = ""
        if "disconnect from" in text or time.time() > deadline:
            return text
        time.sleep(0.02)


@pytest.fixture(scope="module", params=["native", "pure"])
def instance(request):
    inst = PostierInstance(FIXTURE, pure=request.param == "pure")
    yield inst
    inst.close()


def test_fixture_has_the_dialogs():
    assert len([d for d in DIALOGS if d["scenario"] == "content_actions"]) == 38
    assert len([d for d in DIALOGS if d["scenario"] == "upstream_mime_warn_all"]) == 9


@pytest.mark.slow
@pytest.mark.parametrize("dialog", DIALOGS, ids=[d["id"] for d in DIALOGS])
def test_content_checks_match_postfix(instance, dialog):
    if instance.scenario != dialog["scenario"]:
        instance.configure(dialog)
    maillog = os.path.join(instance.root, "maillog")
    before = set(queue_files(instance.root))
    start = _log_size(maillog)
    records = run_dialog(instance.port, dialog)
    assert comparable(records) == comparable(dialog["dialog"]), \
        f"postier output:\n{instance.output()[-1500:]}"
    now = queue_files(instance.root)
    new = sorted(set(now) - before)
    # the session's queue IDs, in order (a rejected or discarded message has no file)
    raw = _read_from(maillog, start)
    ids = []
    for qid in _logged_ids(raw) + new:
        if qid not in ids:
            ids.append(qid)
    actual = [capture_queue_file(qid, *now[qid], ids) for qid in new]
    want = [{k: q[k] for k in ("queue", "headers", "body", "envelope")}
            for q in dialog["queue_files"] if q["queue"] is not None]
    assert actual == want
    # the harness's readiness probe (connect, then close) may be logged late
    # by a worker process, inside the first dialog's log window
    got_log = [_text(x) for x in session_log(raw, ids)
               if x.startswith(("postfix/smtpd:", "postfix/cleanup:"))
               and not x.endswith("lost connection after CONNECT from localhost[127.0.0.1]")]
    want_log = [_text(x) for x in dialog["log"]]
    assert got_log == want_log


def _logged_ids(text: str) -> list[str]:
    """Queue IDs named by `ID: client=` lines (a rejected message's ID)."""
    out = []
    for line in text.splitlines():
        marker = ": client="
        if marker in line:
            head = line.split(marker, 1)[0]
            out.append(head.rsplit(" ", 1)[-1])
    return out
