"""postier.delivery.virtual: the mail_addr_find() search order and the
settings checks."""

from __future__ import annotations

import pytest

from postier.config import Config
from postier.delivery import virtual as V
from postier.maps import open_map


def test_mail_addr_find_order():
    t = open_map("inline:{ a@d.test=full, b@d.test=bare, @d.test=catch }", cache=False)
    assert V.mail_addr_find([t], "a@d.test", "+") == "full"
    assert V.mail_addr_find([t], "b+x@d.test", "+") == "bare"
    assert V.mail_addr_find([t], "b+x@d.test", "") == "catch"
    assert V.mail_addr_find([t], "zz@d.test", "+") == "catch"
    assert V.mail_addr_find([t], "zz@other.test", "+") is None


def test_regexp_tables_see_only_the_full_address(tmp_path):
    f = tmp_path / "re"
    f.write_text("/^@d\\.test$/ never\n/^x@d\\.test$/ yes\n")
    t = open_map(f"regexp:{f}", cache=False)
    assert V.mail_addr_find([t], "x@d.test", "+") == "yes"
    assert V.mail_addr_find([t], "y@d.test", "+") is None


@pytest.mark.parametrize("main_cf,error", [
    ("virtual_mailbox_base = rel\n", "do not specify relative pathname: virtual_mailbox_base = rel"),
    ("virtual_mailbox_base = /x\nvirtual_mailbox_limit = 100\n",
     "configuration error: virtual_mailbox_limit is smaller than message_size_limit"),
    ("virtual_mailbox_base = /x\nmessage_size_limit = 0\n",
     "configuration error: virtual_mailbox_limit is limited but message_size_limit is unlimited"),
    ("virtual_mailbox_base = /x\n", ""),
])
def test_settings_errors(main_cf, error):
    assert V.VirtualSettings(Config.from_text(main_cf)).error == error
