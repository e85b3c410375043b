"""postier.delivery.local building blocks that need no users or root:
extension splitting, $name expansion, command status texts (pipe_command()
as recorded from Postfix 3.7.11), Delivered-To: loop data, aggregation,
and the unix: table type that local_recipient_maps uses."""

from __future__ import annotations

import pwd

import pytest

from postier.delivery import local as L
from postier.delivery.runas import CommandResult, Creds, RunAsError, command_argv
from postier.queue.file import Recipient


@pytest.mark.parametrize("local,delims,expect", [
    ("user+ext", "+", ("user", "ext")),
    ("user+a+b", "+", ("user", "a+b")),
    ("user", "+", ("user", None)),
    ("+ext", "+", ("+ext", None)),
    ("user+", "+", ("user", "")),
    ("postmaster", "+", ("postmaster", None)),
    ("MAILER-DAEMON", "-", ("MAILER-DAEMON", None)),
    ("owner-list", "-", ("owner-list", None)),
    ("list-request", "-", ("list-request", None)),
    ("list-other", "-", ("list", "other")),
    ("a-b+c", "+-", ("a", "b+c")),
    ("user+ext", "", ("user+ext", None)),
])
def test_split_addr(local, delims, expect):
    assert L.split_addr(local, delims) == expect


def test_mac_expand_local_names():
    vals = {"home": "/home/u", "user": "u", "extension": None, "recipient_delimiter": None}
    out, undef, used = L.mac_expand("$home/.forward${recipient_delimiter}${extension}",
                                    vals.get, None)
    assert undef and used == {"home", "recipient_delimiter", "extension"}
    vals.update(extension="ext", recipient_delimiter="+")
    assert L.mac_expand("$home/.forward${recipient_delimiter}${extension}", vals.get,
                        None)[:2] == ("/home/u/.forward+ext", False)
    assert L.mac_expand("${extension?+$extension}x$$y", vals.get, None)[0] == "+extx$y"
    assert L.mac_expand("${nothing:dflt}", vals.get, None)[:2] == ("dflt", False)
    vals["user"] = "a;b c"
    assert L.mac_expand("/m/$user", vals.get, "abc/")[0] == "/m/a_b_c"
    with pytest.raises(L.ExpandError):
        L.mac_expand("${user", vals.get, None)


def res(**kw):
    return CommandResult(**kw)


@pytest.mark.parametrize("result,expect", [
    (res(status=0), ("ok", "2.0.0", "")),
    (res(status=1), ("bounce", "5.3.0", 'Command died with status 1: "cmd"')),
    (res(status=1, output=b"some output\n"),
     ("bounce", "5.3.0", 'Command died with status 1: "cmd". Command output: some output ')),
    (res(status=67), ("bounce", "5.1.1", "user unknown")),
    (res(status=75, output=b"try later\n"),
     ("defer", "4.3.0", "temporary failure. Command output: try later ")),
    (res(status=78), ("bounce", "5.3.5", "local configuration error")),
    (res(status=67, output=b"5.1.1 gone\n"), ("bounce", "5.1.1", "gone ")),
    (res(status=75, output=b"4.7.1 later\n"), ("defer", "4.7.1", "later ")),
    (res(status=2, output=b"a\tb\x01c"), ("bounce", "5.3.0",
                                          'Command died with status 2: "cmd". Command output: a b_c')),
    (res(signal=9), ("bounce", "5.3.0", 'Command died with signal 9: "cmd"')),
    (res(timed_out=True, signal=9, output=b"sleeping\n"),
     ("bounce", "5.3.0", 'Command time limit exceeded: "cmd". Command output: sleeping ')),
])
def test_command_status_texts(result, expect):
    assert L.command_status(result, "cmd") == expect


def test_command_argv_like_exec_command():
    assert command_argv("/bin/echo hi there") == (["/bin/echo", "hi", "there"], None)
    assert command_argv("true") == (["true"], None)
    assert command_argv("echo $HOME") == (["sh", "-c", "echo $HOME"], "/bin/sh")
    assert command_argv("cd /tmp") == (["sh", "-c", "cd /tmp"], "/bin/sh")   # no such program
    assert command_argv("x > y", "/bin/bash -c") == (["/bin/bash", "-c", "x > y"], None)


def test_creds_refuse_root():
    with pytest.raises(RunAsError):
        Creds(0, 100).popen_kw()
    with pytest.raises(RunAsError):
        Creds(100, 0).popen_kw()
    c = Creds.for_user(pwd.getpwnam("nobody"))
    assert c.uid == pwd.getpwnam("nobody").pw_uid and c.gid in c.groups


def test_delivered_headers():
    content = (b"Received: x\n\ty\nDelivered-To: A@Example.test\n"
               b"delivered-to:  b@example.test \nSubject: s\n\nDelivered-To: c@example.test\n")
    assert L.delivered_headers(content) == {"a@example.test", "b@example.test"}
    assert L.delivered_headers(b"From nobody\nDelivered-To: x@y\n") == set()


def test_aggregate():
    r = Recipient("root@mx.example.test", orig="root@mx.example.test")
    ev = [L.Event("ptest1@example.test", "root@mx.example.test", "sent", "2.0.0",
                  "delivered to mailbox", "local")]
    st = L.aggregate(r, ev, "local")
    assert st.recipient is r and (st.status, st.text) == ("sent", "delivered to mailbox")
    assert [(e.recipient.address, e.recipient.orig) for e in st.events] == [
        ("ptest1@example.test", "root@mx.example.test")]
    same = [L.Event(r.address, r.orig, "sent", "2.0.0", "delivered to mailbox", "local")]
    assert L.aggregate(r, same, "local").events == []
    mixed = ev + [L.Event("x@example.test", r.orig, "bounced", "5.1.1", "unknown user: \"x\"",
                          "local"),
                  L.Event("y@example.test", r.orig, "deferred", "4.3.0", "temporary failure",
                          "local")]
    st = L.aggregate(r, mixed, "local")
    assert (st.status, st.dsn) == ("deferred", "4.3.0") and len(st.events) == 3
    st = L.aggregate(r, mixed[:2], "local")
    assert (st.status, st.text) == ("bounced", 'unknown user: "x"')


def test_unix_passwd_table():
    from postier.errors import MapError
    from postier.maps import open_map
    t = open_map("unix:passwd.byname")
    assert t.lookup("ROOT").startswith("root:x:0:0:")
    assert t.lookup("no-such-user-here") is None
    assert open_map("unix:group.byname").lookup("root").startswith("root:x:0:")
    with pytest.raises(MapError, match="unknown table: unix:foo"):
        open_map("unix:foo")


def test_settings_reject_bad_lock_style_and_small_mailbox_limit():
    from postier.config import Config
    from postier.errors import ConfigError
    with pytest.raises(ConfigError, match='unknown mailbox_delivery_lock value "lockf"'):
        L.LocalSettings(Config.from_text("mailbox_delivery_lock = lockf\n"))
    s = L.LocalSettings(Config.from_text("mailbox_size_limit = 100\n"))
    assert s.config_error == ("main.cf configuration error: mailbox_size_limit is smaller "
                              "than message_size_limit")
    s = L.LocalSettings(Config.from_text(""))
    assert s.config_error == "" and s.locks == ["fcntl", "dotlock"]
    assert s.forward_path == "$home/.forward${recipient_delimiter}${extension}, $home/.forward"


def test_agent_defers_on_configuration_errors(tmp_path):
    import asyncio
    import time

    from postier.config import Config
    from postier.delivery import DeliveryRequest
    from postier.queue.file import Envelope, QueueWriter, read_envelope
    w = QueueWriter(str(tmp_path))
    w.write(b"Subject: x\n\nbody\n")
    path = w.commit(Envelope(queue_id=w.queue_id, arrival=time.time(), sender="s@example.test",
                             recipients=[Recipient("u@example.test")]))
    env, off = read_envelope(path)
    req = DeliveryRequest(queue_id=env.queue_id, queue_path=path, content_offset=off,
                          content_size=env.content_size, sender=env.sender,
                          recipients=env.recipients, transport="local", nexthop="example.test",
                          config=Config.from_text("mailbox_delivery_lock = lockf\n"))
    out = asyncio.run(L.local_agent(req))
    assert [(s.status, s.dsn, s.text) for s in out] == [
        ("deferred", "4.3.5", "mail system configuration error")]
