"""Delivery scenarios shared by the Postfix recorder and the postier replay.

Each scenario is one message to one recipient under a given configuration.
`prepare(root, homes, sc)` creates the files it needs (the same way for both
sides); `normalize()` turns a status line into comparable data:
`{"to", "orig_to", "relay", "dsn", "status", "text"}` with the instance
root replaced by @ROOT@, each test user's home by @HOME_<name>@ and queue
IDs after "forwarded as " by QUEUEID.

Fields of a scenario:
  id, rcpt, sender (default sender@example.test), body (default BODY),
  aliases (aliases(5) text or None), main_cf (dict of overrides),
  master (extra master.cf text; pipe services), transport (postier: the
  master.cf service; Postfix: the recipient domain is routed there with
  transport_maps), files [(path, text, owner, mode)], symlinks
  [(target, link)], links [(target, link)], dirs [(path, owner, mode)],
  spool_mode (octal; default 0o2775 root:mail), skip_postfix_reason.
Paths may use @ROOT@ and ~NAME/ (a test user's home).
"""

from __future__ import annotations

import grp
import os
import pwd
import re

BODY = "From: a@example.test\nSubject: test\n\nFrom the body\nline2\n"
RECEIVED = ("Received: from client.example.test (localhost [127.0.0.1])\n"
            "\tby mx.example.test (Postfix) with SMTP id TEST\n")
SENDER = "sender@example.test"

PIPE_MASTER = """\
dump unix - n n - - pipe
  flags=DRO user=ptest2 argv=@ROOT@/pub/dump.sh ${sender} ${recipient} ${nexthop} ${extension} ${mailbox} ${user} ${domain} ${original_recipient}
ex unix - n n - - pipe
  user=ptest1 argv=@ROOT@/pub/exit.sh ${user} ${extension}
big unix - n n - - pipe
  user=ptest1 size=50 argv=@ROOT@/pub/exit.sh 0
"""
EXIT_SH = "#!/bin/sh\ntest -n \"$2\" && echo \"$2\" | tr _ ' '\nexit $1\n"
DUMP_SH = "#!/bin/sh\ncat > /dev/null\nexit 0\n"
PIPE_FILES = [("@ROOT@/pub/exit.sh", EXIT_SH, None, 0o755),
              ("@ROOT@/pub/dump.sh", DUMP_SH, None, 0o755)]

LAB_ALIASES = """postmaster: root
root: admin1
admin1: ptest1
abuse: postmaster
staff: :include:@ROOT@/staff.list
lablist: ptest1, ptest2
owner-lablist: lablist-owner
lablist-owner: ptest3
bitbucket: /dev/null
nobody: /dev/null
cmd: "|/bin/sh -c 'cat > @ROOT@/pub/cmd.msg'"
fail: "|/bin/sh -c 'echo oops; exit 1'"
fail67: "|/bin/sh -c 'exit 67'"
fail75: "|/bin/sh -c 'echo try later; exit 75'"
faildsn: "|/bin/sh -c 'echo 5.7.1 go away; exit 1'"
tofile: @ROOT@/pub/file.mbox
incl: :include:@ROOT@/inc.list
remote: someone@remote.test
"""
LAB_FILES = [("@ROOT@/staff.list", "ptest1\n# a comment\nptest2\n", None, 0o644),
             ("@ROOT@/inc.list", '"|/bin/echo hi"\n@ROOT@/pub/inc.mbox\n', None, 0o644)]

SCENARIOS: list[dict] = [
    {"id": "mailbox", "rcpt": "ptest1@mx.example.test"},
    {"id": "mailbox_null_sender", "rcpt": "ptest1@mx.example.test", "sender": ""},
    {"id": "extension", "rcpt": "ptest1+ext@mx.example.test"},
    {"id": "unknown_user", "rcpt": "nosuch@mx.example.test"},
    {"id": "postmaster_without_alias", "rcpt": "postmaster@mx.example.test", "aliases": ""},
]
for _name in ("root", "postmaster", "abuse", "admin1", "staff", "lablist", "owner-lablist",
              "bitbucket", "nobody", "cmd", "fail", "fail67", "fail75", "faildsn", "tofile",
              "incl", "remote"):
    SCENARIOS.append({"id": f"alias_{_name}", "rcpt": f"{_name}@mx.example.test",
                      "aliases": LAB_ALIASES, "files": LAB_FILES})
SCENARIOS += [
    {"id": "luser_relay", "rcpt": "Nosuch+x@mx.example.test",
     "main_cf": {"luser_relay": "ptest1+$user"}},
    {"id": "symlinked_mailbox", "rcpt": "ptest1@mx.example.test",
     "files": [("@ROOT@/pub/target", "root:x:0:0\n", "ptest1", 0o644)],
     "symlinks": [("@ROOT@/pub/target", "@ROOT@/mail/ptest1")]},
    {"id": "symlink_to_root_file", "rcpt": "ptest1@mx.example.test",
     "files": [("@ROOT@/passwd-like", "root:x:0:0\n", None, 0o644)],
     "symlinks": [("@ROOT@/passwd-like", "@ROOT@/mail/ptest1")]},
    {"id": "foreign_mailbox", "rcpt": "ptest2@mx.example.test",
     "files": [("@ROOT@/mail/ptest2", "", "ptest1", 0o666)]},
    {"id": "foreign_mailbox_closed", "rcpt": "ptest2@mx.example.test",
     "files": [("@ROOT@/mail/ptest2", "", "ptest1", 0o600)]},
    {"id": "directory_mailbox", "rcpt": "ptest2@mx.example.test",
     "dirs": [("@ROOT@/mail/ptest2", "ptest2", 0o700)]},
    {"id": "mailbox_size_limit", "rcpt": "ptest1@mx.example.test",
     "main_cf": {"mailbox_size_limit": "20000", "message_size_limit": "10000"},
     "files": [("@ROOT@/mail/ptest1", "x" * 19900, "ptest1", 0o600)]},
    {"id": "forwarding_loop", "rcpt": "ptest2@mx.example.test",
     "body": "Delivered-To: ptest2@mx.example.test\nSubject: loop\n\nbody\n"},
    {"id": "dot_forward", "rcpt": "ptest2@mx.example.test",
     "files": [("~ptest2/.forward",
                'ptest1, \\ptest2, @ROOT@/pub/fwd.mbox\n"|/bin/cat > @ROOT@/pub/fwd.out"\n',
                "ptest2", 0o644)]},
    {"id": "dot_forward_world_writable", "rcpt": "ptest2@mx.example.test",
     "files": [("~ptest2/.forward", "ptest1\n", "ptest2", 0o666)]},
    {"id": "dot_forward_extension", "rcpt": "ptest2+ext@mx.example.test",
     "files": [("~ptest2/.forward", "\\ptest2\n", "ptest2", 0o644),
               ("~ptest2/.forward+ext", "ptest1\n", "ptest2", 0o644)]},
    {"id": "dot_forward_bad_owner", "rcpt": "ptest2@mx.example.test",
     "files": [("~ptest2/.forward", "ptest1\n", "ptest3", 0o644)]},
    {"id": "alias_loop", "rcpt": "loopa@mx.example.test",
     "aliases": "loopa: loopb\nloopb: loopa\n"},
    {"id": "alias_includes_itself", "rcpt": "ptest3@mx.example.test",
     "aliases": "ptest3: ptest3, ptest1\n"},
    {"id": "mailbox_command", "rcpt": "ptest1+foo@mx.example.test",
     "main_cf": {"mailbox_command": "/usr/bin/env > @ROOT@/pub/env.$USER"}},
    {"id": "home_maildir", "rcpt": "ptest1@mx.example.test",
     "main_cf": {"home_mailbox": "Maildir/"}},
    {"id": "spool_maildir_denied", "rcpt": "ptest3@mx.example.test",
     "main_cf": {"mail_spool_directory": "@ROOT@/mail/"}, "normalize_maildir": True},
]
for _rcpt in ("Ab+Cd@dump.test", "75@ex.test", "67@ex.test", "1@ex.test",
              "1+some_output@ex.test", "67+5.1.1_gone@ex.test", "75+4.7.1_later@ex.test",
              "78@ex.test", "0@ex.test", "x@big.test"):
    SCENARIOS.append({"id": "pipe_" + re.sub(r"\W", "_", _rcpt), "rcpt": _rcpt,
                      "transport": _rcpt.split("@")[1].split(".")[0],
                      "master": PIPE_MASTER, "files": PIPE_FILES})
VIRTUAL_CF = {"virtual_mailbox_domains": "virt.test",
              "virtual_mailbox_maps": "hash:@ROOT@/etc/vmailbox",
              "virtual_mailbox_base": "@ROOT@/vbase",
              "virtual_uid_maps": "static:@UID_ptest1@", "virtual_gid_maps": "static:@GID_ptest1@"}
VIRTUAL_FILES = [("@ROOT@/etc/vmailbox", "v1@virt.test v/v1/\nv2@virt.test v/v2.mbox\n", None,
                  0o644)]
VIRTUAL_DIRS = [("@ROOT@/vbase", None, 0o755), ("@ROOT@/vbase/v", "ptest1", 0o755)]
for _rcpt in ("v1@virt.test", "v2@virt.test"):
    SCENARIOS.append({"id": "virtual_" + _rcpt.split("@")[0], "rcpt": _rcpt,
                      "transport": "virtual", "main_cf": VIRTUAL_CF, "files": VIRTUAL_FILES,
                      "dirs": VIRTUAL_DIRS, "tables": ["@ROOT@/etc/vmailbox"]})


def subst(text: str, root: str) -> str:
    out = text.replace("@ROOT@", root)
    for name in ("ptest1", "ptest2", "ptest3"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        out = out.replace(f"@UID_{name}@", str(pw.pw_uid)).replace(f"@GID_{name}@",
                                                                    str(pw.pw_gid))
        out = out.replace(f"~{name}/", pw.pw_dir + "/")
    return out


def prepare(root: str, sc: dict) -> None:
    """Create the scenario's directories and files (after the spool exists)."""
    mail = os.path.join(root, "mail")
    os.chown(mail, 0, grp.getgrnam("mail").gr_gid)
    os.chmod(mail, sc.get("spool_mode", 0o2775))
    for path, owner, mode in sc.get("dirs", []):
        p = subst(path, root)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(p, pw.pw_uid, pw.pw_gid)
    for path, text, owner, mode in sc.get("files", []):
        p = subst(path, root)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(subst(text, root))
        os.chmod(p, mode)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(p, pw.pw_uid, pw.pw_gid)
    for target, link in sc.get("symlinks", []):
        os.symlink(subst(target, root), subst(link, root))
    for target, link in sc.get("links", []):
        os.link(subst(target, root), subst(link, root))


def clean_homes() -> None:
    for name in ("ptest1", "ptest2", "ptest3"):
        try:
            home = pwd.getpwnam(name).pw_dir
        except KeyError:
            continue
        if not os.path.isdir(home):
            continue
        for entry in os.listdir(home):
            p = os.path.join(home, entry)
            if os.path.isdir(p) and not os.path.islink(p):
                import shutil
                shutil.rmtree(p)
            else:
                os.unlink(p)


LINE_RE = re.compile(r"to=<(?P<to>[^>]*)>(?:, orig_to=<(?P<orig>[^>]*)>)?, relay=(?P<relay>[^,]+), "
                     r"delay=[^,]+, delays=[^,]+, dsn=(?P<dsn>[^,]+), status=(?P<status>\w+) "
                     r"\((?P<text>.*)\)$")


def normalize_text(text: str, root: str) -> str:
    out = text.replace(root, "@ROOT@")
    for name in ("ptest1", "ptest2", "ptest3"):
        try:
            home = pwd.getpwnam(name).pw_dir
        except KeyError:
            continue
        out = out.replace(home, f"@HOME_{name}@")
    out = re.sub(r"^forwarded as [0-9A-F]+$", "forwarded as QUEUEID", out)
    out = re.sub(r"/tmp/(\d+)\.P\d+\.\S+:", "/tmp/TIME.PPID.HOST:", out)
    return out


def normalize(to: str, orig: str, relay: str, dsn: str, status: str, text: str,
              root: str) -> dict:
    return {"to": to, "orig_to": orig if orig and orig.lower() != to.lower() else "",
            "relay": relay, "dsn": dsn, "status": status, "text": normalize_text(text, root)}


def parse_log_line(line: str, root: str) -> dict | None:
    m = LINE_RE.search(line)
    if not m:
        return None
    return normalize(m["to"], m["orig"] or "", m["relay"], m["dsn"], m["status"], m["text"],
                     root)
