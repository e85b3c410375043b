"""virtual(8) delivery with real uid/gid switching (root only; see conftest.py).

Texts recorded from Postfix 3.7.11's virtual(8) (postfix_local_oracle.py).
"""

from __future__ import annotations

import os
import re

import pytest


@pytest.fixture
def vlab(lab):
    base = lab.path("vbase")
    os.makedirs(os.path.join(base, "v"))
    u = lab.users["ptest1"]
    os.chown(os.path.join(base, "v"), u.uid, u.gid)
    lab.write("@ROOT@/etc/vmailbox",
              "v1@virt.test v/v1/\nv2@virt.test v/v2.mbox\n@catch.test v/catch/\n")
    from postier.cli import map_cmd
    assert map_cmd.main([lab.path("etc", "vmailbox")]) == 0
    lab.config(f"""virtual_mailbox_domains = virt.test, catch.test
virtual_mailbox_maps = hash:@ROOT@/etc/vmailbox
virtual_mailbox_base = {base}
virtual_uid_maps = static:{u.uid}
virtual_gid_maps = static:{u.gid}
""")
    lab.vbase = base
    return lab


def test_maildir_with_static_uid_gid(vlab):
    lab = vlab
    st = lab.deliver("V1@virt.test", transport="virtual", nexthop="virt.test")
    assert (st.status, st.dsn, st.text, st.relay) == (
        "sent", "2.0.0", "delivered to maildir", "virtual")
    new = os.path.join(lab.vbase, "v", "v1", "new")
    names = os.listdir(new)
    assert len(names) == 1 and re.match(r"^\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\.", names[0])
    f = os.path.join(new, names[0])
    u = lab.users["ptest1"]
    assert (os.stat(f).st_uid, os.stat(f).st_gid) == (u.uid, u.gid)
    assert (os.stat(os.path.dirname(new)).st_mode & 0o777) == 0o700
    text = open(f).read()
    assert text.startswith("Return-Path: <sender@example.test>\nX-Original-To: V1@virt.test\n"
                           "Delivered-To: V1@virt.test\n")


def test_mbox_catchall_and_unknown(vlab):
    lab = vlab
    st = lab.deliver("v2@virt.test", transport="virtual", nexthop="virt.test")
    assert (st.status, st.text) == ("sent", "delivered to mailbox")
    mbox = open(os.path.join(lab.vbase, "v", "v2.mbox")).read()
    assert mbox.startswith("From sender@example.test  ") and "\n>From the body\n" in mbox
    st = lab.deliver("anyone@catch.test", transport="virtual", nexthop="catch.test")
    assert (st.status, st.text) == ("sent", "delivered to maildir")
    st = lab.deliver("v3@virt.test", transport="virtual", nexthop="virt.test")
    assert (st.status, st.dsn, st.text) == ("bounced", "5.1.1", 'unknown user: "v3@virt.test"')


def test_bad_uid_defers(vlab):
    lab = vlab
    lab.config(lab.extra.replace(f"virtual_uid_maps = static:{lab.users['ptest1'].uid}",
                                 "virtual_uid_maps = static:5"))
    st = lab.deliver("v1@virt.test", transport="virtual", nexthop="virt.test")
    assert (st.status, st.dsn, st.text) == ("deferred", "4.3.5", "mail system configuration error")
    assert "warning: recipient v1@virt.test: bad uid 5 in virtual_uid_maps" in lab.log()
