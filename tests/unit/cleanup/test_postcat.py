"""postcat-format output of postier queue files (shapes recorded from real
Postfix 3.7.11 `postcat -e/-h/-b -q ID`)."""

from __future__ import annotations

import os

from postier.queue.file import Envelope, QueueWriter, Recipient
from postier.queue.postcat import content_text, format_queue_file


def make(tmp_path, content: bytes, **kw) -> str:
    d = tmp_path / "incoming"
    d.mkdir(exist_ok=True)
    w = QueueWriter(str(d))
    w.write(content)
    env = Envelope(queue_id=w.queue_id, arrival=1_800_000_000.0, sender="s@remote.test",
                   recipients=[Recipient("u@example.test", orig="u@example.test",
                                         dsn_orcpt="rfc822;u@example.test",
                                         dsn_notify="SUCCESS,FAILURE")],
                   rewrite_context="local", **kw)
    return w.commit(env)


def test_envelope_records_and_banners(tmp_path):
    path = make(tmp_path, b"Subject: hi\n\nbody\n")
    qid = os.path.basename(path)
    out = format_queue_file(path, "incoming", envelope=True, header=False, body=False)
    lines = out.splitlines()
    assert lines[0] == f"*** ENVELOPE RECORDS incoming/{qid} ***"
    assert lines[1].startswith("message_size: ")
    assert lines[2].startswith("message_arrival_time: ")
    assert lines[3].startswith("create_time: ")
    assert lines[4:7] == [f"named_attribute: log_ident={qid}",
                          "named_attribute: rewrite_context=local", "sender: s@remote.test"]
    assert lines[-7:-3] == ["named_attribute: notify_flags=6",
                            "named_attribute: dsn_orig_rcpt=rfc822;u@example.test",
                            "original_recipient: u@example.test", "recipient: u@example.test"]
    assert lines[-3] == f"*** MESSAGE CONTENTS incoming/{qid} ***"
    assert lines[-2] == f"*** HEADER EXTRACTED incoming/{qid} ***"
    assert lines[-1] == f"*** MESSAGE FILE END incoming/{qid} ***"


def test_header_and_body_split(tmp_path):
    path = make(tmp_path, b"Subject: hi\n continued\nTo: u\n\nbody\nX: not a header\n")
    assert format_queue_file(path, "incoming", envelope=False, header=True, body=False) == \
        "Subject: hi\n continued\nTo: u\n"
    assert format_queue_file(path, "incoming", envelope=False, header=False, body=True) == \
        "\nbody\nX: not a header\n"


def test_long_header_line_quirk_with_body_only():
    # Real postcat -b starts mid-line after a header longer than
    # line_length_limit: its record view splits the line, and with -b alone
    # the continuation record is judged on its own.
    content = b"Subject: " + b"x" * 5000 + b"\nX: y\n\nbody\n"
    assert content_text(content, header=True, body=False) == b"Subject: " + b"x" * 5000 + b"\nX: y\n"
    body = content_text(content, header=False, body=True)
    assert body.startswith(b"x" * 100) and body.endswith(b"X: y\n\nbody\n")
    assert len(body) == len(content) - 2048


def test_all_sections_by_default(tmp_path):
    path = make(tmp_path, b"Subject: hi\n\nbody\n", body_type="8BITMIME")
    out = format_queue_file(path, None, envelope=False, header=False, body=False)
    assert out.startswith(f"*** ENVELOPE RECORDS {path} ***\n")
    assert "named_attribute: encoding=8bit\n" in out
    assert "Subject: hi\n\nbody\n*** HEADER EXTRACTED" in out
