"""pipe(8) delivery with real users (root only; see conftest.py).

Texts recorded from Postfix 3.7.11's pipe(8) (postfix_local_oracle.py).
"""

from __future__ import annotations

import os
import pwd

import pytest

DUMP = """#!/bin/sh
out=$(dirname "$0")
for a in "$@"; do echo "[$a]"; done > "$out/pipe.argv"
id -u > "$out/pipe.uid"
cat > "$out/pipe.in"
"""
EXIT = """#!/bin/sh
test -n "$2" && echo "$2" | tr _ ' '
exit $1
"""

MASTER = """
dump unix - n n - - pipe
  flags=DROFB. user=ptest2 argv=@ROOT@/pub/dump.sh ${sender} ${recipient} ${nexthop} ${extension} ${mailbox} ${user} ${domain} ${original_recipient} ${client_address} ${size} x${user}y
multi unix - n n - - pipe
  flags=R user=ptest3:mail argv=@ROOT@/pub/dump.sh ${recipient} -- ${user}
ex unix - n n - - pipe
  user=ptest1 argv=@ROOT@/pub/exit.sh ${user} ${extension}
big unix - n n - - pipe
  user=ptest1 size=100 argv=@ROOT@/pub/exit.sh 0
slow unix - n n - - pipe
  user=ptest1 argv=/bin/sleep 30
bad unix - n n - - pipe
  user=ptest1 argv=/bin/echo ${nosuchmacro}
root unix - n n - - pipe
  user=root argv=/bin/true
"""


@pytest.fixture
def pipelab(lab):
    lab.write("@ROOT@/pub/dump.sh", DUMP, mode=0o755)
    lab.write("@ROOT@/pub/exit.sh", EXIT, mode=0o755)
    lab.config("slow_time_limit = 1s\n", master=MASTER)
    return lab


def test_argv_macros_stdin_flags_and_user(pipelab):
    lab = pipelab
    st = lab.deliver("Ab+Cd@dump.test", transport="dump", nexthop="dump.test")
    assert (st.status, st.dsn, st.text, st.relay) == (
        "sent", "2.0.0", "delivered via dump service", "dump")
    argv = open(lab.path("pub", "pipe.argv")).read().splitlines()
    assert argv[:9] == ["[sender@example.test]", "[Ab+Cd@dump.test]", "[dump.test]", "[Cd]",
                        "[Ab+Cd]", "[Ab]", "[dump.test]", "[Ab+Cd@dump.test]", "[127.0.0.1]"]
    assert 100 < int(argv[9].strip("[]")) < 1000 and argv[10] == "[xAby]"
    assert open(lab.path("pub", "pipe.uid")).read().strip() == str(pwd.getpwnam("ptest2").pw_uid)
    data = open(lab.path("pub", "pipe.in")).read()
    lines = data.split("\n")
    assert lines[0].startswith("From sender@example.test  ")
    assert lines[1:4] == ["Return-Path: <sender@example.test>", "X-Original-To: Ab+Cd@dump.test",
                          "Delivered-To: Ab+Cd@dump.test"]
    assert "\nFrom the body\n" in data          # no `>' flag: no quoting
    assert data.endswith("line2\n\n")           # B flag


def test_one_argument_per_recipient(pipelab):
    lab = pipelab
    out = lab.deliver_all(["a@multi.test", "b+x@multi.test"], transport="multi",
                          nexthop="multi.test")
    assert [(s.recipient.address, s.status) for s in out] == [
        ("a@multi.test", "sent"), ("b+x@multi.test", "sent")]
    argv = open(lab.path("pub", "pipe.argv")).read().splitlines()
    assert argv == ["[a@multi.test]", "[b+x@multi.test]", "[--]", "[a]", "[b]"]
    import grp
    assert open(lab.path("pub", "pipe.uid")).read().strip() == str(pwd.getpwnam("ptest3").pw_uid)
    assert os.stat(lab.path("pub", "pipe.in")).st_gid == grp.getgrnam("mail").gr_gid


@pytest.mark.parametrize("rcpt,status,dsn,text", [
    ("75@ex.test", "deferred", "4.3.0", "temporary failure"),
    ("67@ex.test", "bounced", "5.1.1", "user unknown"),
    ("1@ex.test", "bounced", "5.3.0", 'Command died with status 1: "@ROOT@/pub/exit.sh"'),
    ("1+some_output@ex.test", "bounced", "5.3.0",
     'Command died with status 1: "@ROOT@/pub/exit.sh". Command output: some output '),
    ("67+5.1.1_gone@ex.test", "bounced", "5.1.1", "gone "),
    ("75+4.7.1_later@ex.test", "deferred", "4.7.1", "later "),
    ("78@ex.test", "bounced", "5.3.5", "local configuration error"),
    ("77@ex.test", "bounced", "5.7.0", "permission denied"),
    ("0@ex.test", "sent", "2.0.0", "delivered via ex service"),
])
def test_exit_status_mapping(pipelab, rcpt, status, dsn, text):
    st = pipelab.deliver(rcpt, transport="ex", nexthop="ex.test")
    assert (st.status, st.dsn, st.text) == (status, dsn, text.replace("@ROOT@", pipelab.root))


def test_size_limit_and_config_errors(pipelab):
    lab = pipelab
    st = lab.deliver("x@big.test", transport="big", nexthop="big.test")
    assert (st.status, st.dsn, st.text) == ("bounced", "5.2.3", "message too large")
    st = lab.deliver("x@bad.test", transport="bad", nexthop="bad.test")
    assert (st.status, st.dsn, st.text) == ("deferred", "4.3.5", "mail system configuration error")
    assert 'service bad: unknown macro name: "nosuchmacro"' in lab.log()
    st = lab.deliver("x@root.test", transport="root", nexthop="root.test")
    assert (st.status, st.dsn) == ("deferred", "4.3.5")
    assert "user= command-line attribute specifies root privileges" in lab.log()


def test_delivered_to_loop_and_multi_recipient_d_flag(pipelab):
    lab = pipelab
    body = b"Delivered-To: ab@dump.test\nSubject: x\n\nbody\n"
    st = lab.deliver("AB@dump.test", transport="dump", nexthop="dump.test", body=body)
    assert (st.status, st.dsn, st.text) == ("bounced", "5.4.6", "mail forwarding loop for AB@dump.test")
    out = lab.deliver_all(["a@dump.test", "b@dump.test"], transport="dump", nexthop="dump.test")
    assert {(s.status, s.dsn, s.text) for s in out} == {
        ("deferred", "4.3.5", "mail system configuration error")}
    assert "pipe flag `D' requires dump_destination_recipient_limit = 1" in lab.log()


@pytest.mark.slow
def test_time_limit(pipelab):
    st = pipelab.deliver("x@slow.test", transport="slow", nexthop="slow.test")
    assert (st.status, st.dsn, st.text) == (
        "bounced", "5.3.0", 'Command time limit exceeded: "/bin/sleep"')
