"""sendmail, mailq, newaliases and sendmail -bs against a running `postier run` (slow).

An unprivileged account is created with useradd (home under a temp
directory, removed afterwards) and the commands run as that user with
runuser.  The user runs the `sendmail`/`mailq` links of a small wrapper
script: the project's virtualenv interpreter may live where other users
cannot execute it (e.g. under /root), in which case the wrapper uses the
system python3 with the checkout's source and site-packages on sys.path.

postier relays to smtp-sink (relayhost = [127.0.0.1]:PORT, loopback only);
processes are stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "qmgr"))

from peers import PostierDaemon, SmtpSink, peers_available, wait_for  # noqa: E402

from postier.cli.install_compat_cmd import _others_can_run  # noqa: E402
from postier.queue.file import read_content, read_envelope  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not peers_available(), reason="needs smtp-sink (postfix package)")]

RUNUSER = shutil.which("runuser")
USERADD = shutil.which("useradd")
USERDEL = shutil.which("userdel")
POSTIER = os.path.join(ROOT, ".venv", "bin", "postier")
FAST = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"}
QUEUED = re.compile(r"queued as ([0-9A-F]{16})")


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def area():
    """A 0755 directory other users can reach (pytest's tmp_path lives
    under a 0700 directory)."""
    import pathlib
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="postier_submit."))
    d.chmod(0o755)
    yield d
    if not os.environ.get("POSTIER_KEEP_TEST_ROOT"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def bindir(area):
    """sendmail, mailq, newaliases: links to a wrapper runnable by every user."""
    b = area / "bin"
    b.mkdir()
    b.chmod(0o755)
    if _others_can_run(sys.executable) is None:
        text = f"#!{sys.executable}\n"
    else:
        py = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
        site = sysconfig.get_paths()["purelib"]
        text = (f"#!{py}\nimport sys\n"
                f"sys.path[:0] = [{os.path.join(ROOT, 'src')!r}, {site!r}]\n")
    text += "from postier.cli.sendmail import main\nsys.exit(main())\n"
    if "import sys" not in text:
        text = text.replace("\nfrom", "\nimport sys\nfrom", 1)
    wrapper = b / "postier-sendmail"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    for name in ("sendmail", "mailq", "newaliases"):
        os.symlink("postier-sendmail", b / name)
    return b


@pytest.fixture(scope="module")
def user(area):
    """An unprivileged account with a GECOS full name."""
    if os.geteuid() != 0 or not (RUNUSER and USERADD and USERDEL):
        pytest.skip("needs root, useradd, userdel and runuser")
    name = "pstsm" + secrets.token_hex(3)
    home = area / "home"
    home.mkdir()
    home.chmod(0o755)
    p = subprocess.run([USERADD, "-m", "-d", str(home / name), "-s", "/bin/sh",
                        "-c", "Postier Tester,,,", name], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"useradd failed: {p.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run([USERDEL, "-r", name], capture_output=True)


@pytest.fixture
def sink(area):
    s = SmtpSink([], dump_dir=str(area / f"sink{secrets.token_hex(2)}")).start()
    yield s
    s.stop()


@pytest.fixture
def daemon(area, sink):
    d = PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}", "myorigin": "$mydomain",
                       "mydestination": "$myhostname, localhost", "mail_name": "Postfix",
                       "alias_maps": "", "alias_database": "", **FAST},
                      root=str(area / f"root{secrets.token_hex(2)}"))
    os.chmod(d.root, 0o755)
    d.start()
    yield d
    d.cleanup()
    shutil.rmtree(d.root, ignore_errors=True)


def run_as(user, argv: list[str], d: PostierDaemon, stdin: bytes = b"",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """argv as `user` (None: as root), with a clean environment."""
    base = {"PATH": "/usr/bin:/bin", "POSTIER_CONFIG_DIR": d.etc, "LANG": "C"}
    base.update(env or {})
    envargs = ["env", "-i"] + [f"{k}={v}" for k, v in base.items()]
    if user is not None:
        cmd = [RUNUSER, "-u", user.pw_name, "--", *envargs, *argv]
    else:
        cmd = [*envargs, *argv]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, cwd="/")


def incoming_or_sent(d: PostierDaemon, sink: SmtpSink) -> None:
    assert wait_for(lambda: sink.messages >= 1, 30), d.log()


# ---------------------------------------------------------------------------
# tests


def test_user_sendmail_t_i_is_queued_and_delivered(daemon, sink, user, bindir):
    msg = (b"To: rcpt@remote.test\nCc: Other <other@remote.test>\nBcc: hidden@remote.test\n"
           b"Subject: from a user\n\nbody\n.\nafter the dot\n")
    p = run_as(user, [str(bindir / "sendmail"), "-t", "-i"], daemon, msg)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stderr == b""
    uid, name = user.pw_uid, user.pw_name
    assert daemon.wait_log(re.compile(rf"postier/pickup\[\d+\]: [0-9A-F]{{16}}: uid={uid} "
                                      rf"from=<{name}>"), 10), daemon.log()
    incoming_or_sent(daemon, sink)
    (dump,) = sink.dumps()
    text = dump.decode()
    assert f"X-Mail-Args: <{name}@example.test>" in text
    assert "X-Rcpt-Args: <rcpt@remote.test>" in text
    assert "X-Rcpt-Args: <hidden@remote.test>" in text
    body = text.replace("\r\n", "\n")
    assert f"Received: by mx.example.test (Postfix, from userid {uid})" in body
    assert f"\nFrom: Postier Tester <{name}@example.test>\n" in body
    assert "\nBcc:" not in body                      # cleanup removed it
    assert "\nbody\n.\nafter the dot\n" in body      # -i: the lone dot is content
    m = re.search(r"postier/pickup\[\d+\]: ([0-9A-F]{16}): uid=", daemon.log())
    assert re.search(rf"{m.group(1)}: from=<{name}@example\.test>, size=\d+, nrcpt=3 "
                     r"\(queue active\)", daemon.log())


def without_qmgr(d: PostierDaemon) -> None:
    """Restart `d` without its queue manager: submitted mail stays in incoming/."""
    d.stop()
    with open(os.path.join(d.etc, "master.cf")) as f:
        master = f.read()
    with open(os.path.join(d.etc, "master.cf"), "w") as f:
        f.write("\n".join(x for x in master.split("\n") if not x.startswith("qmgr")))
    d.start()


def test_user_submission_sits_in_incoming_with_the_envelope(daemon, user, bindir):
    without_qmgr(daemon)
    p = run_as(user, [str(bindir / "sendmail"), "-f", "", "-N", "success,delay",
                      "first@remote.test"], daemon, b"Subject: s\n\nb\n",
               env={"NAME": "Env Name"})
    assert p.returncode == 0, p.stderr.decode()
    p = run_as(user, [str(bindir / "sendmail"), "-F", "Joe User", "second@remote.test"],
               daemon, b"Subject: s\n\nb\n")
    assert p.returncode == 0, p.stderr.decode()
    files = daemon.queue_files("incoming")
    assert len(files) == 2
    envs = [read_envelope(os.path.join(daemon.queue, "incoming", q))[0] for q in files]
    null = next(e for e in envs if e.sender == "")
    joe = next(e for e in envs if e.sender)
    assert [(r.address, r.dsn_notify) for r in null.recipients] == [
        ("first@remote.test", "SUCCESS,DELAY")]
    assert joe.sender == f"{user.pw_name}@example.test"
    text = read_content(os.path.join(daemon.queue, "incoming", joe.queue_id)).decode()
    assert f"\nFrom: Joe User <{user.pw_name}@example.test>\n" in text
    text = read_content(os.path.join(daemon.queue, "incoming", null.queue_id)).decode()
    assert "\nFrom: MAILER-DAEMON\n" in text


def test_mailq_format_for_root_and_user(daemon, user, bindir):
    p = run_as(None, [str(bindir / "mailq")], daemon)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"Mail queue is empty\n", b"")
    p = run_as(user, [str(bindir / "mailq")], daemon)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"Mail queue is empty\n", b"")
    without_qmgr(daemon)            # the message stays in incoming/ to be listed
    p = run_as(user, [str(bindir / "sendmail"), "held@remote.test"], daemon, b"Subject: q\n\nq\n")
    assert p.returncode == 0
    qid = re.search(r"([0-9A-F]{16}): uid=", daemon.log()).group(1)
    as_root = run_as(None, [str(bindir / "mailq")], daemon)
    as_user = run_as(user, [str(bindir / "sendmail"), "-bp"], daemon)
    assert as_root.returncode == as_user.returncode == 0
    assert as_root.stdout == as_user.stdout            # the daemon's showq = the queue tool
    out = as_user.stdout.decode()
    assert out.startswith("----Queue ID----- --Size-- ---Arrival Time---- "
                          "--Sender/Recipient------\n")
    assert re.search(rf"^{qid} +\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d +"
                     rf"{user.pw_name}@example\.test\n {{47}}held@remote\.test\n", out, re.M)
    assert out.endswith(" in 1 Request.\n")


def test_mailq_acl(daemon, user, bindir):
    with open(os.path.join(daemon.etc, "main.cf"), "a") as f:
        f.write("authorized_mailq_users = root\nauthorized_flush_users = root\n")
    daemon.stop()
    daemon.start()
    p = run_as(user, [str(bindir / "mailq")], daemon)
    assert p.returncode == 77
    assert p.stderr.decode() == (f"postqueue: fatal: User {user.pw_name}({user.pw_uid}) is not "
                                 "allowed to view the mail queue\n")
    p = run_as(user, [str(bindir / "sendmail"), "-q"], daemon)
    assert p.returncode == 77
    assert "is not allowed to flush the mail queue" in p.stderr.decode()
    assert run_as(None, [str(bindir / "mailq")], daemon).returncode == 0


def test_user_flush_delivers_deferred_mail_now(area, user, bindir):
    sink = SmtpSink(["-r", "RCPT"]).start()         # 4xx: the message is deferred
    d = PostierDaemon({"relayhost": f"[127.0.0.1]:{sink.port}", "myorigin": "$mydomain",
                       "minimal_backoff_time": "1h", "maximal_backoff_time": "2h",
                       "queue_run_delay": "1h"},
                      root=str(area / f"root{secrets.token_hex(2)}"))
    os.chmod(d.root, 0o755)
    try:
        d.start()
        p = run_as(user, [str(bindir / "sendmail"), "later@remote.test"], d, b"Subject: f\n\nf\n")
        assert p.returncode == 0, p.stderr.decode()
        assert d.wait_log("status=deferred", 20), d.log()
        assert wait_for(lambda: d.queue_files("deferred"), 10)
        sink.restart([])
        p = run_as(user, [str(bindir / "sendmail"), "-q"], d)
        assert (p.returncode, p.stderr) == (0, b"")
        # next retry would be in an hour: only the flush can deliver it now
        assert wait_for(lambda: sink.messages >= 1, 20), d.log()
    finally:
        d.cleanup()
        shutil.rmtree(d.root, ignore_errors=True)
        sink.stop()


def test_newaliases_builds_the_alias_database(daemon, bindir):
    aliases = os.path.join(daemon.etc, "aliases")
    with open(aliases, "w") as f:
        f.write("postmaster: root\nstaff: alice, bob\n")
    with open(os.path.join(daemon.etc, "main.cf"), "a") as f:
        f.write(f"alias_database = hash:{aliases}\n")
    p = run_as(None, [str(bindir / "newaliases")], daemon)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()
    assert os.path.exists(aliases + ".db")
    q = subprocess.run([POSTIER, "alias", "-q", "staff", f"hash:{aliases}"],
                       capture_output=True, text=True, timeout=60)
    assert (q.returncode, q.stdout) == (0, "alice, bob\n")
    p = run_as(None, [str(bindir / "sendmail"), "-bi", f"-oA{aliases}2"], daemon)
    assert p.returncode != 0 and "postalias: fatal: open " in p.stderr.decode()


def test_bs_speaks_smtp_as_the_local_user(daemon, sink, user, bindir):
    dialog = (b"EHLO client.test\r\nMAIL FROM:<me@client.test>\r\n"
              b"RCPT TO:<far@remote.test>\r\nDATA\r\nSubject: via -bs\r\n\r\nhello\r\n.\r\n"
              b"XCLIENT ADDR=192.0.2.1\r\nQUIT\r\n")
    p = run_as(user, [str(bindir / "sendmail"), "-bs"], daemon, dialog)
    assert p.returncode == 0, p.stderr.decode()
    lines = p.stdout.decode().split("\r\n")
    assert lines[0] == "220 mx.example.test ESMTP Postfix"
    assert lines[1] == "250-mx.example.test" and "250 CHUNKING" in lines
    assert "STARTTLS" not in p.stdout.decode() and "XCLIENT" not in lines[1:11]
    assert "250 2.1.0 Ok" in lines and "250 2.1.5 Ok" in lines
    assert "354 End data with <CR><LF>.<CR><LF>" in lines
    qid = QUEUED.search(p.stdout.decode()).group(1)
    assert "550 5.7.0 Error: insufficient authorization" in lines
    assert lines[-2] == "221 2.0.0 Bye"
    incoming_or_sent(daemon, sink)
    text = sink.dumps()[0].decode().replace("\r\n", "\n")
    assert f"Received: by mx.example.test (Postfix, from userid {user.pw_uid})\n\tid {qid}" in text
    assert f"Received: from client.test (localhost [127.0.0.1])\n\tby mx.example.test " \
           f"(Postfix) with ESMTP id {qid}" in text
    assert "\nFrom: me@client.test\n" in text
    log = daemon.log()
    assert f"{qid}: uid={user.pw_uid} from=<me@client.test>" in log
    assert "disconnect from localhost[127.0.0.1] ehlo=1 xclient=0/1 mail=1 rcpt=1 data=1 " \
           "quit=1 commands=5/6" in log


def test_daemon_down_user_tempfails_root_uses_maildrop(daemon, sink, user, bindir):
    daemon.stop()
    p = run_as(user, [str(bindir / "sendmail"), "a@remote.test"], daemon, b"Subject: x\n\nx\n")
    assert p.returncode == 75
    assert p.stderr.decode().startswith(
        f"sendmail: fatal: {user.pw_name}({user.pw_uid}): unable to submit mail: the mail "
        "system is not running")
    p = run_as(user, [str(bindir / "mailq")], daemon)
    assert (p.returncode, p.stderr) == (
        69, b"postqueue: fatal: Queue report unavailable - mail system is down\n")
    p = run_as(None, [str(bindir / "sendmail"), "-t"], daemon,
               b"To: dropped@remote.test\nSubject: while down\n\nx\n")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stderr == b"sendmail: warning: unable to look up public/pickup: No such file or " \
                       b"directory\n"
    (name,) = daemon.queue_files("maildrop")
    p = run_as(None, [str(bindir / "mailq")], daemon)       # root lists maildrop directly
    assert name in p.stdout.decode() and "dropped@remote.test" in p.stdout.decode()
    daemon.start()
    incoming_or_sent(daemon, sink)
    assert wait_for(lambda: daemon.queue_files("maildrop") == [], 10)
    text = sink.dumps()[0].decode()
    assert "Subject: while down" in text and "X-Rcpt-Args: <dropped@remote.test>" in text


def test_install_compat_links_work(daemon, area):
    prefix = area / f"prefix{secrets.token_hex(2)}"
    p = subprocess.run([POSTIER, "install-compat", "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for rel in ("sbin/sendmail", "bin/mailq", "bin/newaliases"):
        assert os.path.basename(os.readlink(prefix / rel)) == "postier-sendmail"
    q = run_as(None, [str(prefix / "bin" / "mailq")], daemon)
    assert (q.returncode, q.stdout) == (0, b"Mail queue is empty\n")
    s = run_as(None, [str(prefix / "sbin" / "sendmail"), "-bp"], daemon)
    assert s.stdout == q.stdout
    again = subprocess.run([POSTIER, "install-compat", "--prefix", str(prefix)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.count("(unchanged)") == 3
