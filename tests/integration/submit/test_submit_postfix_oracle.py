"""postier's sendmail against the real /usr/sbin/sendmail of Postfix 3.7.

Both commands run with the same private main.cf (queue_directory in a
temp directory) and the same arguments; stderr and the exit status must
be identical.  Only cases that Postfix's sendmail decides before it starts
postdrop are used (postdrop would try to write into the private queue).
Run as any user; needs the postfix package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.postfix

SENDMAIL = "/usr/sbin/sendmail"

CASES = [
    ["-Z"], ["-f"], ["-n", "x"], ["-bx"], ["-B", "foo", "a"], ["-qSx"], ["-qR"], ["-qI"],
    ["-t", "-bp"], ["-bv", "-t", "a"], ["-bv", "-N", "success", "a"], ["-bp", "a"],
    ["-bs", "a"], ["-bi", "a"], ["-q", "a"], ["-qIx", "a"], ["-qRx", "a"], ["-bd", "a"],
    ["-X", "foo"], ["-oA"], ["-N", "bogus", "-R", "bogus", "-bq"], ["-ti", "-Q"],
    ["-q", "-bs", "x"], ["-C"], ["-bm", "-bp", "x"], ["-q5m"], ["-bh"],
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not os.path.exists(SENDMAIL) or not shutil.which("postconf"):
        pytest.skip("Postfix's sendmail is not installed")
    d = tmp_path_factory.mktemp("sm_oracle")
    (d / "queue").mkdir()
    (d / "main.cf").write_text(f"queue_directory = {d / 'queue'}\nmaillog_file =\n")
    script = d / "sendmail"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      "from postier.cli.sendmail import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return str(d), str(script)


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    p = subprocess.run(argv, input=b"x\n", capture_output=True, timeout=20, env=env)
    return p.returncode, p.stderr.decode()


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) for c in CASES])
def test_same_diagnostics_and_status(setup, args):
    d, ours = setup
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    theirs = run([SENDMAIL, *args], {**env, "MAIL_CONFIG": d})
    mine = run([ours, *args], {**env, "POSTIER_CONFIG_DIR": d})
    assert mine == theirs


# ---------------------------------------------------------------------------
# the queue file of a submission: Postfix's sendmail -> postdrop -> pickup ->
# cleanup, against postier's sendmail -> pickup socket -> cleanup; both shown
# by their postcat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

SEMANTIC = {
    "myhostname": "mx.example.test", "mydomain": "example.test", "myorigin": "$mydomain",
    "mydestination": "$myhostname, localhost.$mydomain, localhost, $mydomain",
    "canonical_maps": "inline:{ {b@example.test=canon@example.test} }",
    "virtual_alias_maps": "inline:{ {c@x.test=v1@x.test,v2@x.test} }",
    "mail_name": "Postfix",
}

SUBMISSIONS = [
    ("t_i_fullname", ["-t", "-i", "-F", "Joe User"],
     b'Subject: hi\nTo: a@example.test, "Joe X" <c@example.test>\nBcc: b@example.test\n\n'
     b"body\n.\nafter dot\n"),
    ("null_sender_rewriting", ["-f", "", "b", "c@x.test", "d@example.test (Comment)"],
     b"To: b\nSubject: x\n\nbody\n"),
    ("dsn_from_line_crlf", ["-f", "Sender Name <snd@other.test>", "-N", "success,delay",
                            "-R", "hdrs", "-V", "myenvid", "Joe <a@example.test>, b"],
     b"From someone Sat Nov 28\r\nSubject: cmdline\r\n\r\nbody\r\n..\r\n.\r\nnot here\r\n"),
    ("resent", ["-t", "-i"],
     b"To: orig@example.test\nCc: cc1@example.test\nResent-To: r1@example.test\n"
     b'Resent-Cc: "R Two" <r2@example.test>, r3@example.test\nResent-Bcc: rb@example.test\n'
     b"Bcc: ob@example.test\nSubject: rs\n\nx\n"),
    ("quoted_fullname", ["-f", "a@b, c@d", "-F", 'Joe "Q" <x>', "e@example.test"],
     b"Subject: q\n\nbody\n"),
]

# lines that differ by design (sizes, times, IDs are normalized separately)
_DROP = ("message_size:", "message_arrival_time:", "create_time:", "sender_fullname:",
         "named_attribute: log_ident=")


def normalize(text: str) -> list[str]:
    import re
    out = []
    for line in text.splitlines():
        if line.startswith(_DROP):
            continue
        line = re.sub(r"\b(?:[0-9A-F]{16}|[0-9A-F]{10,12})\b", "QUEUEID", line)
        line = re.sub(r"\w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4} \(\w+\)", "DATE", line)
        line = re.sub(r"<\d{14}\.QUEUEID@", "<TIMESTAMP.QUEUEID@", line)
        out.append(line)
    # postier's postcat prints the message-level attributes in a fixed order
    # (rewrite_context first); Postfix in the order cleanup received them
    # (sendmail's envelope_id and ret_flags first): compare them as a set
    head = []
    while out and out[0].startswith(("***", "named_attribute:")) and len(head) < 10:
        head.append(out.pop(0))
    return [head[0]] + sorted(head[1:]) + out if head else out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "qmgr"))
    from peers import PostierDaemon
    from postfix_instance import PostfixInstance, postfix_available
    if not postfix_available():
        pytest.skip("needs root and the real Postfix")
    pf = PostfixInstance()
    daemon = None
    try:
        pf.write_config(SEMANTIC)
        with open(os.path.join(pf.etc, "master.cf"), "a") as f:
            f.write("pickup    unix  n       -       n       60      1       pickup\n")
        import time as _time
        past = _time.time() - 3600
        os.utime(os.path.join(pf.etc, "master.cf"), (past, past))
        pf.start()
        daemon = PostierDaemon(SEMANTIC, extra_master="")
        with open(os.path.join(daemon.etc, "master.cf")) as f:
            master = f.read()
        with open(os.path.join(daemon.etc, "master.cf"), "w") as f:   # keep mail in incoming/
            f.write("\n".join(x for x in master.split("\n") if not x.startswith("qmgr")))
        daemon.start()
        yield pf, daemon
    finally:
        if daemon is not None:
            daemon.cleanup()
        pf.stop()
        pf.cleanup()


def _wait_new(directory_files, before: set, timeout: float = 20) -> str:
    import time as _time
    deadline = _time.time() + timeout
    while _time.time() < deadline:
        new = set(directory_files()) - before
        if new:
            return new.pop()
        _time.sleep(0.05)
    raise AssertionError("no new queue file")


@pytest.mark.slow
@pytest.mark.parametrize("name,args,message", SUBMISSIONS, ids=[s[0] for s in SUBMISSIONS])
def test_queue_file_like_postfix(both, setup, name, args, message):
    pf, daemon = both
    _, ours = setup
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "NAME": "Full Name"}

    # the queue ID comes from cleanup's message-id log line: a file seen in
    # incoming/ may still carry cleanup's temporary name (it renames the file
    # to the inode-based queue ID), so it is not the ID to ask postcat for
    log_start = len(pf.read_log().encode("utf-8", "surrogateescape"))
    p = subprocess.run([SENDMAIL, *args], input=message, capture_output=True, timeout=30,
                       env={**env, "MAIL_CONFIG": pf.etc})
    assert p.returncode == 0, p.stderr
    qid = _wait_new(lambda: re.findall(r"\]: ([0-9A-Za-z]+): message-id=", pf.read_log(log_start)),
                    set())
    theirs = subprocess.run(["postcat", "-c", pf.etc, "-q", qid], capture_output=True,
                            text=True, timeout=30).stdout

    before = set(daemon.queue_files("incoming"))
    p = subprocess.run([ours, *args], input=message, capture_output=True, timeout=30,
                       env={**env, "POSTIER_CONFIG_DIR": daemon.etc})
    assert p.returncode == 0, p.stderr
    mine_id = _wait_new(lambda: daemon.queue_files("incoming"), before)
    mine = subprocess.run([os.path.join(ROOT, ".venv", "bin", "postier"), "queue", "cat",
                           "-c", daemon.etc, "-q", mine_id], capture_output=True, text=True,
                          timeout=30).stdout
    assert normalize(mine) == normalize(theirs)
