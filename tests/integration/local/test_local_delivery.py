"""local(8) delivery as real Unix users (root only; see conftest.py).

Expected texts were recorded from Postfix 3.7.11's local(8) with the same
configurations (tests/integration/local/postfix_local_oracle.py; the
recorded answers are in data/postfix_local.json and compared in
test_local_postfix_fixture.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat

import pytest

FROM_LINE = re.compile(r"^From sender@example\.test  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")


def uid_of(name: str) -> int:
    import pwd
    return pwd.getpwnam(name).pw_uid


def split_mbox(text: str) -> list[str]:
    """Messages of an mbox: each starts at a `From ` line that follows a
    blank line (or the start of the file)."""
    msgs: list[list[str]] = []
    prev_blank = True
    for line in text.split("\n"):
        if line.startswith("From ") and prev_blank:
            msgs.append([line])
        elif msgs:
            msgs[-1].append(line)
        prev_blank = line == ""
    return ["\n".join(m) for m in msgs]


def test_mbox_framing_and_headers(lab):
    st = lab.deliver("ptest1@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("sent", "2.0.0", "delivered to mailbox")
    assert st.relay == "local"
    assert st.events == []
    path = os.path.join(lab.mail, "ptest1")
    s = os.stat(path)
    import grp
    assert s.st_uid == uid_of("ptest1") and s.st_gid == grp.getgrnam("mail").gr_gid
    assert stat.S_IMODE(s.st_mode) == 0o600
    text = lab.mbox("ptest1")
    lines = text.split("\n")
    assert FROM_LINE.match(lines[0]), lines[0]
    assert lines[1:4] == ["Return-Path: <sender@example.test>",
                          "X-Original-To: ptest1@mx.example.test",
                          "Delivered-To: ptest1@mx.example.test"]
    assert "\n>From the body\nline2\n\n" in text
    assert text.endswith("line2\n\n")
    assert not os.path.exists(path + ".lock")


def test_null_sender_and_second_message_appends(lab):
    lab.deliver("ptest1@mx.example.test", sender="")
    lab.deliver("ptest1@mx.example.test")
    msgs = split_mbox(lab.mbox("ptest1"))
    assert len(msgs) == 2
    assert re.match(r"^From MAILER-DAEMON  \w{3} ", msgs[0])
    assert "\nReturn-Path: <>\n" in msgs[0]
    assert FROM_LINE.match(msgs[1].split("\n")[0])


@pytest.mark.slow
def test_twenty_concurrent_deliveries_never_interleave(lab):
    import postier.delivery.agents  # noqa: F401
    from postier.delivery import AGENTS
    cfg = lab.make_config()
    bodies = {}
    reqs = []
    for i in range(20):
        lines = [f"Subject: message {i}", ""] + [f"msg {i} line {n} " + "x" * 60
                                                   for n in range(300)]
        lines.insert(50, f"From inside message {i}")
        body = ("\n".join(lines) + "\n").encode()
        bodies[i] = body
        reqs.append(lab.request("ptest1@mx.example.test", body=body, cfg=cfg))

    async def all_at_once():
        return await asyncio.gather(*(AGENTS["local"](r) for r in reqs))

    results = lab.run(all_at_once())
    assert [r[0].status for r in results] == ["sent"] * 20, [r[0].text for r in results]
    msgs = split_mbox(lab.mbox("ptest1"))
    assert len(msgs) == 20
    seen = set()
    for m in msgs:
        head, _, body = m.partition("\n\n")
        subject = re.search(r"^Subject: message (\d+)$", head + "\n" + body, re.M)
        assert subject, head
        i = int(subject.group(1))
        seen.add(i)
        expected = bodies[i].decode().split("\n\n", 1)[1].replace("\nFrom inside", "\n>From inside")
        # each message ends with its last line and the blank separator line
        assert body.rstrip("\n") == expected.rstrip("\n"), f"message {i} damaged"
        assert m.endswith("\n") or m == msgs[-1]
    assert seen == set(range(20))
    assert not os.path.exists(os.path.join(lab.mail, "ptest1.lock"))


def test_home_maildir(lab):
    lab.config("home_mailbox = Maildir/")
    st = lab.deliver("ptest1@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to maildir")
    new = os.path.join(lab.users["ptest1"].home, "Maildir", "new")
    names = os.listdir(new)
    assert len(names) == 1
    host = os.uname().nodename
    assert re.match(r"^\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\." + re.escape(host) + "$", names[0])
    assert os.listdir(os.path.join(lab.users["ptest1"].home, "Maildir", "tmp")) == []
    f = os.path.join(new, names[0])
    assert os.stat(f).st_uid == uid_of("ptest1")
    assert stat.S_IMODE(os.stat(os.path.dirname(new)).st_mode) == 0o700
    text = open(f).read()
    assert text.startswith("Return-Path: <sender@example.test>\nX-Original-To: "
                           "ptest1@mx.example.test\nDelivered-To: ptest1@mx.example.test\n")
    assert "\nFrom the body\n" in text and text.endswith("line2\n")


def test_alias_to_local_user_logs_expansion(lab):
    lab.aliases("root: ptest1\n")
    st = lab.deliver("root@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to mailbox")
    assert [(e.recipient.address, e.recipient.orig, e.status, e.text) for e in st.events] == [
        ("ptest1@example.test", "root@mx.example.test", "sent", "delivered to mailbox")]
    text = lab.mbox("ptest1")
    assert "X-Original-To: root@mx.example.test\nDelivered-To: root@mx.example.test\n" in text


def test_alias_command_runs_as_default_privs(lab):
    lab.aliases('cmd: "|/bin/sh -c \'id -u > @ROOT@/pub/marker; cat > @ROOT@/pub/msg\'"\n')
    st = lab.deliver("cmd@mx.example.test")
    assert st.status == "sent", st.text
    assert st.text == (f"delivered to command: /bin/sh -c 'id -u > {lab.pub}/marker; "
                       f"cat > {lab.pub}/msg'")
    assert open(os.path.join(lab.pub, "marker")).read().strip() == str(uid_of("nobody"))
    msg = open(os.path.join(lab.pub, "msg")).read()
    assert FROM_LINE.match(msg.split("\n")[0])
    assert "\nDelivered-To: cmd@mx.example.test\n" in msg
    assert "\nFrom the body\n" in msg        # no >From quoting for commands


def test_alias_command_failures(lab):
    lab.aliases('fail: "|/bin/sh -c \'echo oops; exit 1\'"\n'
                'fail67: "|/bin/sh -c \'exit 67\'"\n'
                'fail75: "|/bin/sh -c \'echo try later; exit 75\'"\n'
                'dsn: "|/bin/sh -c \'echo 5.7.1 go away; exit 1\'"\n')
    st = lab.deliver("fail@mx.example.test")
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.3.0",
        "Command died with status 1: \"/bin/sh -c 'echo oops; exit 1'\". Command output: oops ")
    st = lab.deliver("fail67@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("bounced", "5.1.1", "user unknown")
    st = lab.deliver("fail75@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("deferred", "4.3.0",
                                            "temporary failure. Command output: try later ")
    st = lab.deliver("dsn@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("bounced", "5.7.1", "go away ")


def test_alias_file(lab):
    lab.aliases("tofile: @ROOT@/pub/file.mbox\nbitbucket: /dev/null\n")
    st = lab.deliver("tofile@mx.example.test")
    path = os.path.join(lab.pub, "file.mbox")
    assert (st.status, st.text) == ("sent", f"delivered to file: {path}")
    assert os.stat(path).st_uid == uid_of("nobody")
    assert FROM_LINE.match(open(path).read().split("\n")[0])
    st = lab.deliver("bitbucket@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to file: /dev/null")


def test_include_forwards_as_new_message(lab):
    lab.write("@ROOT@/staff.list", "ptest1\n# a comment\nptest2\n")
    lab.aliases("staff: :include:@ROOT@/staff.list\n")
    before = set(lab.incoming())
    st = lab.deliver("staff@mx.example.test")
    assert st.status == "sent"
    m = re.match(r"^forwarded as ([0-9A-F]+)$", st.text)
    assert m, st.text
    qid = m.group(1)
    assert set(lab.incoming()) - before >= {qid}
    from postier.queue.file import read_content, read_envelope
    path = os.path.join(lab.queue, "incoming", qid)
    env, _ = read_envelope(path)
    assert env.sender == "sender@example.test"
    assert [(r.address, r.orig) for r in env.recipients] == [
        ("ptest1@example.test", "staff@mx.example.test"),
        ("ptest2@example.test", "staff@mx.example.test")]
    content = read_content(path).decode()
    assert re.match(r"^Received: by mx\.example\.test \(Postfix\)\n\tid " + qid + r"; \w{3}, ",
                    content)
    assert "\nDelivered-To: staff@mx.example.test\nReceived: from client.example.test" in content
    # the queue manager would now deliver the new message: do what it does
    import postier.delivery.agents  # noqa: F401
    from postier.delivery import AGENTS, DeliveryRequest
    env, off = read_envelope(path)
    req = DeliveryRequest(queue_id=qid, queue_path=path, content_offset=off,
                          content_size=env.content_size, sender=env.sender,
                          recipients=env.recipients, transport="local",
                          nexthop="mx.example.test", config=lab.make_config())
    out = lab.run(AGENTS["local"](req))
    assert [(s.status, s.text) for s in out] == [("sent", "delivered to mailbox")] * 2
    assert "Delivered-To: staff@mx.example.test" in lab.mbox("ptest2")


@pytest.mark.slow
def test_seed_lab_aliases(lab):
    """A typical lab /etc/aliases: every route delivers where it should."""
    lab.write("@ROOT@/staff.list", "ptest1\nptest2\n")
    lab.aliases("""# lab aliases
postmaster: root
root: admin1
admin1: ptest1
abuse: postmaster
staff: :include:@ROOT@/staff.list
lablist: ptest1, ptest2
owner-lablist: lablist-owner
lablist-owner: ptest3
bitbucket: /dev/null
nobody: /dev/null
""")
    expect_mailbox = [("postmaster", "ptest1"), ("root", "ptest1"), ("abuse", "ptest1"),
                      ("admin1", "ptest1"), ("lablist-owner", "ptest3"),
                      ("owner-lablist", "ptest3")]
    for alias, user in expect_mailbox:
        st = lab.deliver(f"{alias}@mx.example.test")
        assert (st.status, st.text) == ("sent", "delivered to mailbox"), alias
        events = st.events or [st]
        assert events[-1].recipient.address == f"{user}@example.test", alias
    assert len(split_mbox(lab.mbox("ptest1"))) == 4
    assert len(split_mbox(lab.mbox("ptest3"))) == 2
    for alias in ("bitbucket", "nobody"):
        st = lab.deliver(f"{alias}@mx.example.test")
        assert (st.status, st.text) == ("sent", "delivered to file: /dev/null"), alias
    assert not os.path.exists(os.path.join(lab.mail, "nobody"))
    from postier.queue.file import read_envelope
    for alias, sender, orig in (("staff", "sender@example.test", "staff@mx.example.test"),
                                ("lablist", "owner-lablist@example.test", "")):
        st = lab.deliver(f"{alias}@mx.example.test")
        qid = st.text.removeprefix("forwarded as ")
        env, _ = read_envelope(os.path.join(lab.queue, "incoming", qid))
        assert env.sender == sender, alias
        assert [(r.address, r.orig) for r in env.recipients] == [
            ("ptest1@example.test", orig), ("ptest2@example.test", orig)], alias


def test_dot_forward(lab):
    lab.write(os.path.join(lab.users["ptest2"].home, ".forward"),
              'ptest1, \\ptest2, @ROOT@/pub/fwd.mbox\n"|/usr/bin/env > @ROOT@/pub/fwd.env"\n',
              owner="ptest2")
    st = lab.deliver("ptest2@mx.example.test")
    assert st.status == "sent"
    got = [(e.recipient.address, e.text) for e in st.events]
    assert got[:3] == [
        ("ptest2@example.test", "delivered to mailbox"),
        ("ptest2@mx.example.test", f"delivered to file: {lab.pub}/fwd.mbox"),
        ("ptest2@mx.example.test", f"delivered to command: /usr/bin/env > {lab.pub}/fwd.env")]
    assert got[3][0] == "ptest2@mx.example.test" and got[3][1].startswith("forwarded as ")
    assert os.stat(os.path.join(lab.pub, "fwd.mbox")).st_uid == uid_of("ptest2")
    env = open(os.path.join(lab.pub, "fwd.env")).read()
    assert "USER=ptest2\n" in env and "RECIPIENT=ptest2@mx.example.test\n" in env


def test_dot_forward_checks(lab):
    fwd = os.path.join(lab.users["ptest2"].home, ".forward")
    lab.write(fwd, "ptest1\n", owner="ptest2", mode=0o666)
    st = lab.deliver("ptest2@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to mailbox")
    assert f"warning: file {fwd} is world writable" in lab.log()
    lab.write(fwd, "ptest1\n", owner="ptest3", mode=0o644)
    st = lab.deliver("ptest2@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to mailbox")
    assert f"warning: file {fwd} has bad owner uid {uid_of('ptest3')}" in lab.log()
    # .forward+EXT wins for user+EXT
    lab.write(fwd, "\\ptest2\n", owner="ptest2")
    lab.write(fwd + "+ext", "ptest1\n", owner="ptest2")
    st = lab.deliver("ptest2+ext@mx.example.test")
    assert st.status == "sent" and st.text.startswith("forwarded as "), st.text


def test_symlinked_mailbox_is_refused(lab):
    target = lab.write("@ROOT@/pub/passwd-like", "root:x:0:0:root:/root:/bin/bash\n",
                       owner="ptest1", mode=0o644)
    os.symlink(target, os.path.join(lab.mail, "ptest1"))
    st = lab.deliver("ptest1@mx.example.test")
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.2.0",
        f"cannot update mailbox {lab.mail}/ptest1 for user ptest1. file is a symbolic link")
    assert open(target).read() == "root:x:0:0:root:/root:/bin/bash\n"
    from postier.qmgr.logfmt import delivery_line
    line = delivery_line("QID", "ptest1@mx.example.test", "", st.relay, 0.1, (0, 0, 0, 0.1),
                         st.dsn, st.status, st.text)
    assert "status=bounced (cannot update mailbox" in line and "symbolic link" in line
    # a root-owned target is not even opened
    root_target = lab.write("@ROOT@/passwd-root", "root:x:0:0\n", mode=0o644)
    os.symlink(root_target, os.path.join(lab.mail, "ptest2"))
    st = lab.deliver("ptest2@mx.example.test")
    assert (st.status, st.dsn) == ("bounced", "5.2.0")
    assert st.text.endswith("for user ptest2. cannot open file: Permission denied")
    assert open(root_target).read() == "root:x:0:0\n"


def test_foreign_owned_mailbox_is_refused(lab):
    path = lab.write("@ROOT@/mail/ptest2", "", owner="ptest1", mode=0o666)
    st = lab.deliver("ptest2@mx.example.test")
    assert (st.status, st.dsn, st.text) == (
        "deferred", "4.2.0", f"cannot update mailbox {path} for user ptest2. "
                             f"destination {path} is not owned by recipient")
    assert ('warning: specify "strict_mailbox_ownership = no" to ignore mailbox ownership '
            "mismatch") in lab.log()
    assert open(path).read() == ""
    os.chmod(path, 0o600)
    st = lab.deliver("ptest2@mx.example.test")
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.2.0",
        f"cannot update mailbox {path} for user ptest2. cannot open file: Permission denied")


def test_hard_linked_and_directory_mailboxes(lab):
    other = lab.write("@ROOT@/pub/other", "", owner="ptest2", mode=0o600)
    os.link(other, os.path.join(lab.mail, "ptest2"))
    st = lab.deliver("ptest2@mx.example.test")
    assert st.status == "bounced" and st.text.endswith("file has 2 hard links"), st.text
    os.unlink(os.path.join(lab.mail, "ptest2"))
    os.mkdir(os.path.join(lab.mail, "ptest2"))
    st = lab.deliver("ptest2@mx.example.test")
    assert st.status == "bounced" and st.text.endswith("cannot open file: Is a directory")


def test_mailbox_size_limit(lab):
    lab.config("mailbox_size_limit = 20000\nmessage_size_limit = 10000\n")
    path = lab.write("@ROOT@/mail/ptest1", "x" * 19900, owner="ptest1", mode=0o600)
    st = lab.deliver("ptest1@mx.example.test")
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.2.2",
        f"cannot update mailbox {path} for user ptest1. error writing message: File too large")
    assert os.path.getsize(path) == 19900
    lab.config("mailbox_size_limit = 5000\n")
    st = lab.deliver("ptest1@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("deferred", "4.3.5", "mail system configuration error")
    assert ("mailbox_size_limit is smaller than message_size_limit") in lab.log()


def test_mailbox_command_environment(lab):
    lab.config("mailbox_command = /usr/bin/env > @ROOT@/pub/env.$USER\n")
    st = lab.deliver("ptest1+foo@mx.example.test")
    assert (st.status, st.text) == (
        "sent", f"delivered to command: /usr/bin/env > {lab.pub}/env.$USER")
    env = dict(line.split("=", 1) for line in
               open(os.path.join(lab.pub, "env.ptest1")).read().splitlines())
    home = lab.users["ptest1"].home
    assert {k: env.get(k) for k in ("HOME", "USER", "LOGNAME", "SHELL", "EXTENSION", "DOMAIN",
                                     "LOCAL", "RECIPIENT", "SENDER", "ORIGINAL_RECIPIENT",
                                     "PATH", "CLIENT_ADDRESS", "CLIENT_HELO")} == {
        "HOME": home, "USER": "ptest1", "LOGNAME": "ptest1", "SHELL": "/bin/sh",
        "EXTENSION": "foo", "DOMAIN": "mx.example.test", "LOCAL": "ptest1+foo",
        "RECIPIENT": "ptest1+foo@mx.example.test", "SENDER": "sender@example.test",
        "ORIGINAL_RECIPIENT": "ptest1+foo@mx.example.test", "PATH": "/usr/bin:/bin",
        "CLIENT_ADDRESS": "127.0.0.1", "CLIENT_HELO": "client.example.test"}
    assert (env.get("LANG"), env.get("MAIL_CONFIG")) == ("C", lab.etc)
    assert os.stat(os.path.join(lab.pub, "env.ptest1")).st_uid == uid_of("ptest1")


def test_luser_relay(lab):
    lab.config("luser_relay = ptest1+$user\n")
    st = lab.deliver("Nosuch+x@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to mailbox")
    assert [(e.recipient.address, e.recipient.orig) for e in st.events] == [
        ("ptest1+nosuch@example.test", "Nosuch+x@mx.example.test")]
    assert "\nDelivered-To: Nosuch+x@mx.example.test\n" in lab.mbox("ptest1")


def test_unknown_user_and_required_aliases(lab):
    st = lab.deliver("nosuch@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("bounced", "5.1.1", 'unknown user: "nosuch"')
    st = lab.deliver("Postmaster@mx.example.test")
    assert (st.status, st.dsn, st.text) == ("sent", "2.0.0", "discarded")
    assert "warning: required alias not found: postmaster" in lab.log()


def test_mail_forwarding_loop(lab):
    body = b"Delivered-To: ptest2@mx.example.test\nSubject: loop\n\nbody\n"
    st = lab.deliver("ptest2@mx.example.test", body=body)
    assert (st.status, st.dsn, st.text) == ("bounced", "5.4.6",
                                            "mail forwarding loop for ptest2@mx.example.test")


def test_include_file_restrictions(lab):
    lab.write("@ROOT@/inc.list", '"|/bin/echo hi"\n@ROOT@/pub/inc.mbox\n')
    lab.aliases("incl: :include:@ROOT@/inc.list\n")
    st = lab.deliver("incl@mx.example.test")
    assert st.status == "bounced"
    assert [(e.dsn, e.text) for e in st.events] == [
        ("5.7.1", "mail to command is restricted"), ("5.7.1", "mail to file is restricted")]
    assert not os.path.exists(os.path.join(lab.pub, "inc.mbox"))


def test_spool_maildir(lab):
    """mail_spool_directory ending in / means maildirs in the spool, made by
    the user: in Debian's root:mail 2775 spool the user cannot (as with
    Postfix, which also writes maildirs with the user's own group)."""
    lab.config("mail_spool_directory = @ROOT@/mail/\n")
    st = lab.deliver("ptest3@mx.example.test")
    assert (st.status, st.dsn) == ("bounced", "5.2.0")
    assert re.match(rf"^maildir delivery failed: create maildir file {lab.mail}/ptest3/tmp/"
                    r"\d+\.P\d+\.\S+: Permission denied$", st.text), st.text
    assert "warning: perhaps you need to create the maildirs in advance" in lab.log()
    os.chmod(lab.mail, 0o1777)
    st = lab.deliver("ptest3@mx.example.test")
    assert (st.status, st.text) == ("sent", "delivered to maildir")
    assert len(os.listdir(os.path.join(lab.mail, "ptest3", "new"))) == 1
    assert os.stat(os.path.join(lab.mail, "ptest3")).st_uid == uid_of("ptest3")


def test_forward_submit_hook(lab, monkeypatch):
    """A queue manager can take over re-submission (FORWARD_SUBMIT)."""
    from postier.delivery import local as L
    seen = []

    async def submit(msg):
        seen.append(msg)
        return "HOOKQID"

    monkeypatch.setattr(L, "FORWARD_SUBMIT", submit)
    lab.aliases("lablist: ptest1, ptest2\nowner-lablist: ptest3\n")
    before = lab.incoming()
    st = lab.deliver("lablist@mx.example.test")
    assert (st.status, st.text) == ("sent", "forwarded as HOOKQID")
    assert len(lab.incoming()) == len(before) + 1     # only the request's own file
    (msg,) = seen
    assert msg.sender == "owner-lablist@example.test"
    assert [(r.address, r.orig) for r in msg.recipients] == [("ptest1@example.test", ""),
                                                            ("ptest2@example.test", "")]
    text = msg.render("ABC").decode()
    assert text.startswith("Received: by mx.example.test (Postfix)\n\tid ABC; ")
    assert "\nDelivered-To: lablist@mx.example.test\nReceived: from client" in text
