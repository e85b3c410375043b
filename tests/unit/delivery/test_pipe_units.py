"""postier.delivery.pipe: master.cf attribute parsing (pipe(8)'s fatal
texts) and argv macro expansion, without running commands."""

from __future__ import annotations

import pwd

import pytest

from postier.delivery import mailbox as m
from postier.delivery import pipe as P
from postier.queue.file import Recipient


def test_parse_attributes():
    a = P.parse_attributes(["flags=DRX.>hqu", "user=nobody", r"eol=\r\n", "size=1000",
                            "null_sender=", "directory=/tmp", "argv=/bin/cat", "-", "x=y"])
    assert a.command == ["/bin/cat", "-", "x=y"]
    assert a.flags & m.COPY_DELIVERED and a.flags & m.COPY_RETURN_PATH
    assert a.flags & m.COPY_DOT and a.flags & m.COPY_QUOTE
    assert a.flags & P.FINAL_DELIVERY and a.flags & P.QUOTE_LOCAL
    assert a.flags & P.FOLD_HOST and a.flags & P.FOLD_USER
    assert not a.flags & m.COPY_FROM
    assert (a.eol, a.size_limit, a.null_sender, a.exec_dir) == (b"\r\n", 1000, "", "/tmp")
    assert a.creds.uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize("args,error", [
    (["argv=/bin/true"], "missing user= command-line attribute"),
    (["user=nobody"], "missing argv= command-line attribute"),
    (["user=root", "argv=/bin/true"], "user= command-line attribute specifies root privileges"),
    (["user=nobody:root", "argv=/bin/true"],
     "user= command-line attribute specifies privileged group id 0"),
    (["user=no-such-user-x", "argv=/bin/true"], "get_service_attr: unknown username: no-such-user-x"),
    (["flags=Z", "user=nobody", "argv=/bin/true"], "unknown flag: Z (ignored)"),
    (["bogus=1", "user=nobody", "argv=/bin/true"], "unknown attribute name: bogus=1"),
    (["size=big", "user=nobody", "argv=/bin/true"], "get_service_attr: bad size= value: big"),
])
def test_parse_attribute_errors(args, error):
    with pytest.raises(P.PipeConfigError) as e:
        P.parse_attributes(args)
    assert str(e.value) == error


def test_mail_owner_refused():
    from postier.config import Config
    with pytest.raises(P.PipeConfigError, match="specifies mail system owner nobody"):
        P.parse_attributes(["user=nobody", "argv=/bin/true"],
                           Config.from_text("mail_owner = nobody\n"))


def test_expand_argv_per_recipient():
    rcpts = [Recipient("Ab+Cd@Dom.Test", orig="orig@x"), Recipient("+cyrus@dom.test")]
    values = {"sender": "s@x", "nexthop": "dom.test", "size": "123"}
    argv = ["/bin/x", "-f", "${sender}", "$nexthop", "$(size)", "--", "${recipient}",
            "u=${user}", "e=${extension}"]
    out = P.expand_argv("svc", argv, rcpts, 0, values, "+")
    # split_addr() does not split a local part that starts with the
    # delimiter, so "+cyrus" is the user and the extension is empty
    assert out == ["/bin/x", "-f", "s@x", "dom.test", "123", "--", "Ab+Cd@Dom.Test",
                   "+cyrus@dom.test", "u=Ab", "u=+cyrus", "e=Cd", "e="]
    out = P.expand_argv("svc", ["${recipient}", "${mailbox}", "${domain}", "${original_recipient}"],
                        rcpts[:1], P.FOLD_USER | P.FOLD_HOST, values, "+")
    assert out == ["ab+cd@dom.test", "ab+cd", "dom.test", "orig@x"]
    out = P.expand_argv("svc", ["${recipient}"], [Recipient("a b@x.test")], P.QUOTE_LOCAL,
                        values, "")
    assert out == ['"a b"@x.test']
    with pytest.raises(P.PipeConfigError, match='unknown macro name: "bogus"'):
        P.expand_argv("svc", ["${bogus}"], rcpts, 0, values, "+")
