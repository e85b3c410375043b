"""A policy request's hot path (postier._native.policyreq and its pure twin),
the server's use of it, and the log batching the server turns on.

The general parser of postier.policy.server (postgrey's line rules) is the
reference: whatever `parse` accepts must give the attributes that parser
gives, and a request must get the same answer and log lines whether it
arrives as one read (the fast path) or cut into pieces (the general path).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from postier import log
from postier._pure import policyreq as P
from postier.policy import greylist as G
from postier.policy import server as S
from postier.policy.store import MmapStore

NOW = int(time.time())


def postfix_request(**kw: str) -> bytes:
    a = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
         "client_address": "192.0.2.7", "client_name": "mail.example.org",
         "reverse_client_name": "mail.example.org", "helo_name": "mail.example.org",
         "sender": "alice@example.org", "recipient": "bob@example.net",
         "recipient_count": "0", "queue_id": "", "instance": "1a.2b.3", "size": "0",
         "etrn_domain": "", "stress": "", "sasl_method": "", "ccert_subject": "",
         "encryption_keysize": "0", "policy_context": ""}
    a.update(kw)
    return "".join(f"{k}={v}\n" for k, v in a.items()).encode() + b"\n"


def general_fields(data: bytes) -> tuple:
    return G.fields_of(S.parse_block(data[:-2], {}))


# -- parse ---------------------------------------------------------------------------------

def test_parse_a_postfix_request(impl):
    pr = impl("policyreq")
    data = postfix_request(queue_id="3F1A2B", policy_test_time="1700000000")
    f = pr.parse(data)
    assert f == ("smtpd_access_policy", "192.0.2.7", "mail.example.org", "alice@example.org",
                 "bob@example.net", "3F1A2B", "1a.2b.3", "1700000000", "")
    assert f == general_fields(data)
    assert pr.FIELDS == P.FIELDS and pr.FIELDS[pr.F_ETRN] == "etrn_domain"


def test_parse_missing_repeated_and_odd_values(impl):
    pr = impl("policyreq")
    data = (b"request=smtpd_access_policy\nsender=a=b@x\nsender=\xffz@x\nrecipient=\n"
            + "client_name=h\u00f4te.test\n".encode() + b"x=1\n\n")
    f = pr.parse(data)
    assert f == ("smtpd_access_policy", None, "h\u00f4te.test", "\udcffz@x", "", None, None,
                 None, None)
    assert f == general_fields(data)


@pytest.mark.parametrize("data", [
    b"",
    b"\n",
    b"\n\n",
    b"request=smtpd_access_policy\n",                            # no empty line yet
    b"request=smtpd_access_policy",
    b"\nrequest=smtpd_access_policy\n\n",                        # an empty request first
    b"request=smtpd_access_policy\n\nsender=a@b\n\n",            # two requests
    b"request=smtpd_access_policy\n\nsender=a",                  # and the start of another
    b"request=smtpd_access_policy\r\n\r\n",                      # CRLF
    b"request=smtpd_access_policy\ngarbage\n\n",                 # a line without "="
    b"request=smtpd_access_policy\n=odd=value\n\n",              # an empty name
    b"sender=" + b"v" * 506 + b"\n\n",                           # 513 bytes: cut by postgrey
    b"request=smtpd_access_policy\n\n\n",                        # an empty request after
])
def test_parse_leaves_the_rest_to_the_general_parser(impl, data):
    assert impl("policyreq").parse(data) is None


def test_parse_longest_line_is_accepted(impl):
    data = b"sender=" + b"v" * 505 + b"\n\n"                     # 512 bytes: nothing to cut
    assert impl("policyreq").parse(data)[P.F_SENDER] == "v" * 505


def test_parse_agrees_with_the_general_parser(impl):
    pr = impl("policyreq")
    rnd = random.Random(7)
    names = ["request", "client_address", "client_name", "sender", "recipient", "queue_id",
             "instance", "policy_test_time", "etrn_domain", "size", "", "sende", "senders"]
    chars = ["a", "=", "0", "\u00e9", "@", " ", "\t"]
    accepted = 0
    for _ in range(3000):
        lines = [rnd.choice(names) + rnd.choice(["=", "=", "=", ""])
                 + "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 5)))
                 for _ in range(rnd.randint(1, 8))]
        data = ("\n".join(lines) + "\n\n").encode()
        if rnd.random() < 0.1:
            data = data.replace(b"\xc3", b"\xff")
        f = pr.parse(data)
        assert f == P.parse(data)
        if f is not None:
            accepted += 1
            assert f == general_fields(data), data
    assert accepted > 500


# -- keys ----------------------------------------------------------------------------------

@pytest.mark.parametrize("net, sender, recipient, want", [
    ("192.0.2.0", "Alice@Example.ORG", "Bob@Example.NET",
     b"192.0.2.0/alice@example.org/bob@example.net"),
    ("192.0.2.0", "List-Bounces-12345-67@Lists.TEST", "b@x",
     b"192.0.2.0/list-bounces-#-#@lists.test/b@x"),
    ("192.0.2.0", "user+Tag@x.test", "b@x", b"192.0.2.0/user@x.test/b@x"),
    ("192.0.2.0", "abc123@x.test", "b@x", b"192.0.2.0/abc123@x.test/b@x"),
    ("192.0.2.0", "12.34_5@x12.test", "b@x", b"192.0.2.0/#.34_5@x12.test/b@x"),
    ("192.0.2.0", "a+b1 2@x", "b@x", b"192.0.2.0/a@x/b@x"),
    ("192.0.2.0", "1+2 3@x", "b@x", b"192.0.2.0/#@x/b@x"),
    ("192.0.2.0", "prvs=1234567890=User@x.test", "b@x", b"192.0.2.0/user@x.test/b@x"),
    ("192.0.2.0", "PRVS=1234567890=user@x.test", "b@x", b"192.0.2.0/prvs=#=user@x.test/b@x"),
    ("192.0.2.0", "", "", b"192.0.2.0//"),
    ("192.0.2.0", "no-at-7", "b@x", b"192.0.2.0/no-at-7/b@x"),
    ("2001:DB8:0:0:0:0:0:0", "\u00c9t\u00e9 1@X", "\u00dc@Y",
     "2001:db8:0:0:0:0:0:0/\u00c9t\u00e9 #@x/\u00dc@y".encode()),
    ("192.0.2.0", "a\udcff 9@x", "b@x", b"192.0.2.0/a\xff #@x/b@x"),
])
def test_triplet_key(impl, net, sender, recipient, want):
    pr = impl("policyreq")
    assert pr.triplet_key(net, sender, recipient) == want
    assert want == G.triplet_key(net, P.sender_substitutions(sender), recipient)


def test_triplet_key_twins_agree(impl):
    pr = impl("policyreq")
    rnd = random.Random(11)
    alphabet = "aZ09_+-.@ \n=\u00e9\udce9"
    for _ in range(5000):
        sender = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        if rnd.random() < 0.1:
            sender = "prvs=" + sender
        rcpt = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 5)))
        assert pr.triplet_key("10.0.0.0", sender, rcpt) == P.triplet_key("10.0.0.0", sender,
                                                                          rcpt), sender


@pytest.mark.parametrize("address, cidr, by_host, want", [
    ("192.0.2.77", 24, False, (0xC000024D, "192.0.2.77", "192.0.2.0", b"awl:192.0.2.77")),
    (" 192.0.2.77\t", 24, False, (0xC000024D, "192.0.2.77", "192.0.2.0", b"awl:192.0.2.77")),
    ("\u00a0192.0.2.77", 24, False, (0xC000024D, "192.0.2.77", "192.0.2.0", b"awl:192.0.2.77")),
    ("192.0.2.77", 24, True, (0xC000024D, "192.0.2.77", "192.0.2.77/32", b"awl:192.0.2.77")),
    ("192.0.2.77", 0, False, (0xC000024D, "192.0.2.77", "0.0.0.0", b"awl:192.0.2.77")),
    ("192.0.2.77", 32, False, (0xC000024D, "192.0.2.77", "192.0.2.77", b"awl:192.0.2.77")),
    ("192.0.2.77", 20, False, (0xC000024D, "192.0.2.77", "192.0.0.0", b"awl:192.0.2.77")),
    ("2001:db8::1", 24, False, None),
    ("192.0.2", 24, False, None),
    ("192.0.2.256", 24, False, None),
    ("192.0.2.7\x00", 24, False, None),
    ("\u00e9", 24, False, None),
    ("", 24, False, None),
])
def test_ipv4_client(impl, address, cidr, by_host, want):
    assert impl("policyreq").ipv4_client(address, cidr, by_host) == want


def test_client_info_ipv6_and_garbage():
    s = G.GreylistSettings()
    assert G.client_info("2001:db8::1", s) == (0x20010DB8000000000000000000000001,
                                               "2001:DB8:0:0:0:0:0:1", "2001:DB8:0:0:0:0:0:0",
                                               b"awl:2001:DB8:0:0:0:0:0:1")
    assert G.client_info("not an address", s) is None


@pytest.mark.parametrize("rcpt, want", [
    ("bob@example.net", "example.net"), ("a@b@c.test", "c.test"), ("nobody", "nobody"),
    ("a@b\nc@d", "b\nc@d"), ("x\ny@z", "x\ny@z"), ("", ""),
])
def test_recipient_domain(impl, rcpt, want):
    """postgrey's s/^.*@//: "." does not cross a newline."""
    assert impl("policyreq").recipient_domain(rcpt) == want


# -- the log line ------------------------------------------------------------------------------

def test_log_line(impl):
    pr = impl("policyreq")
    f = ("smtpd_access_policy", "192.0.2.7", "mail.example.org", "a@b", "c@d", "3F1A2B",
         "i", None, "")
    assert pr.log_line(f, "greylist", "new") == (
        "3F1A2B: action=greylist, reason=new, client_name=mail.example.org, "
        "client_address=192.0.2.7, sender=a@b, recipient=c@d")
    f = ("smtpd_access_policy", "192.0.2.7", "0", "", "c@d", "0", None, None, None)
    assert pr.log_line(f, "pass", "triplet found", "delay=301") == (
        "action=pass, reason=triplet found, delay=301, client_address=192.0.2.7, "
        "recipient=c@d")
    assert pr.log_line(f, "pass") == "action=pass, client_address=192.0.2.7, recipient=c@d"


# -- the server: one read (the fast path) or pieces (the general path) ------------------------

class _Transport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def _serve(tmp_path, name: str, pure: bool, feeds: list[bytes]) -> tuple[bytes, list[str]]:
    lines: list[str] = []
    store = MmapStore(str(tmp_path / f"{name}.db"), pure=pure)
    g = G.Greylist(G.GreylistSettings(delay=60, hostname="mx.test", version="9.9"), store,
                   emit=lines.append, pure=pure)
    srv = S.PolicyServer(g, pure=pure)
    proto = S._PolicyProtocol(srv)
    t = _Transport()
    proto.connection_made(t)            # type: ignore[arg-type]
    for chunk in feeds:
        proto.data_received(chunk)
    g.close()
    return bytes(t.data), lines


def test_fast_and_general_paths_answer_and_log_alike(impl, tmp_path, monkeypatch):
    pure = impl.kind == "pure"
    logged: list[str] = []
    monkeypatch.setattr(S.log, "info", logged.append)
    monkeypatch.setattr(S.log, "warning", lambda text: logged.append("warning: " + text))
    reqs = []
    for i, t in enumerate((NOW, NOW + 10, NOW + 61, NOW + 70, NOW + 80)):
        reqs.append(postfix_request(policy_test_time=str(t), instance=f"{i}",
                                    queue_id="" if i % 2 else "Q1"))
    reqs += [postfix_request(sender="list-1234@x.test", recipient="R@Y.test",
                             policy_test_time=str(NOW)),
             postfix_request(client_address="2001:db8::7", policy_test_time=str(NOW)),
             postfix_request(client_address="bogus", policy_test_time=str(NOW)),
             postfix_request(request="other", policy_test_time=str(NOW)),
             b"request=smtpd_access_policy\nclient_address=192.0.2.9\nsender=a@b\n\n"]
    fast, fast_lines = _serve(tmp_path, "fast", pure, reqs)
    fast_logged = logged[:]
    logged.clear()
    data = b"".join(reqs)
    general, general_lines = _serve(tmp_path, "general", pure,
                                    [data[i:i + 5] for i in range(0, len(data), 5)])
    assert fast == general
    assert fast_lines == general_lines
    assert fast_logged == logged == ["warning: can't parse client_address from postfix: bogus",
                                     "unrecognized request type: 'other'",
                                     "warning: attribute missing: client_name"]
    answers = fast.split(b"\n\n")
    assert answers[0].startswith(b"action=DEFER_IF_PERMIT 4.2.0 Greylisted, see "
                                 b"http://postgrey.schweikert.ch/help/example.net.html")
    assert answers[2].startswith(b"action=PREPEND X-Greylist: delayed 61 seconds by "
                                 b"postier-greylist-9.9 at mx.test; ")
    assert answers[3] == b"action=DUNNO"
    assert answers[5].endswith(b"/help/Y.test.html")
    assert len(answers) == 10 and answers[-1] == b""    # 9 answers: "other" gets none
    assert fast_lines[0] == ("Q1: action=greylist, reason=new, client_name=mail.example.org, "
                             "client_address=192.0.2.7, sender=alice@example.org, "
                             "recipient=bob@example.net")


# -- log lines written once per event-loop iteration ---------------------------------------

def test_log_batching_keeps_order_and_format(tmp_path):
    path = tmp_path / "maillog"
    lg = log.MailLog()
    lg.setup("greylistd", maillog_file=str(path))

    async def main() -> list[int]:
        seen = []
        lg.batch_in_loop(True)
        lg.emit("", "one")
        lg.emit("warning", "two")
        seen.append(path.stat().st_size if path.exists() else 0)    # nothing written yet
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append(len(path.read_text().splitlines()))
        lg.emit("", "three")
        lg.batch_in_loop(False)                                     # writes what is pending
        seen.append(len(path.read_text().splitlines()))
        lg.batch_in_loop(True)
        lg.emit("", "four")
        return seen

    seen = asyncio.run(main())
    lg.emit("", "five")             # no running loop: what is pending first, then this
    lg.batch_in_loop(False)
    assert seen == [0, 2, 3]
    bodies = [line.split(": ", 1)[1] for line in path.read_text().splitlines()]
    assert bodies == ["one", "warning: two", "three", "four", "five"]
    assert all(line.split()[4].startswith("postier/greylistd[") for line in
               path.read_text().splitlines())


def test_log_batching_fatal_writes_pending_lines_first(capsys):
    lg = log.MailLog()
    lg.setup("greylistd", progname="postier greylistd", stderr=True)

    async def main() -> None:
        lg.batch_in_loop(True)
        lg.emit("", "before")
        lg.emit("fatal", "the end")

    asyncio.run(main())
    lg.batch_in_loop(False)
    assert capsys.readouterr().err == ("postier greylistd: before\n"
                                       "postier greylistd: fatal: the end\n")


# -- Fast: a whole request in one call -------------------------------------------------------

def _greylist(tmp_path, name: str, pure: bool, **settings) -> tuple[G.Greylist, list[str]]:
    lines: list[str] = []
    store = MmapStore(str(tmp_path / f"{name}.db"), pure=pure)
    s = G.GreylistSettings(delay=60, hostname="mx.test", version="9.9", **settings)
    from postier.policy import whitelist as W
    g = G.Greylist(s, store, clients=W.ClientWhitelist(), recipients=W.RecipientWhitelist(),
                   emit=lines.append, pure=pure)
    return g, lines


def test_fast_decides_like_the_greylist_procedure(impl, tmp_path, monkeypatch):
    pure = impl.kind == "pure"
    warnings: list[str] = []
    monkeypatch.setattr(log, "warning", warnings.append)
    fast_g, fast_lines = _greylist(tmp_path, "fast", pure, awl_clients=2)
    ref_g, ref_lines = _greylist(tmp_path, "ref", pure, awl_clients=2)
    assert fast_g.fast is not None and ref_g.fast is not None
    seq = []
    for k, dt in enumerate((0, 10, 61, 70, 200)):       # new, early retry, pass, known
        seq.append(postfix_request(policy_test_time=str(NOW + dt), instance=str(k)))
    # counted for the AWL at most once an hour: the second pass whitelists the client
    seq.append(postfix_request(sender="b@x.test", policy_test_time=str(NOW + 4000)))
    seq.append(postfix_request(sender="b@x.test", policy_test_time=str(NOW + 4100)))
    seq.append(postfix_request(sender="c@x.test", policy_test_time=str(NOW + 4200)))  # AWL
    seq.append(postfix_request(client_address="192.0.2.99", recipient="z@q.test",
                               policy_test_time=str(NOW)))
    seq.append(postfix_request(client_address="192.0.2.99", recipient="z@q.test",
                               policy_test_time=str(NOW - 7200)))   # a first seen in the future
    seq.append(postfix_request(client_address="192.0.2.98", queue_id="Q9",
                               policy_test_time=str(NOW)).replace(b"etrn_domain=\n", b""))
    handled = []
    for data in seq:
        got = fast_g.fast.handle(data)
        assert isinstance(got, str), data
        handled.append(got)
    want = [ref_g.decide_fields(P.parse(data)) for data in seq]
    assert handled == want
    assert fast_lines == ref_lines
    assert warnings == []
    assert want[0].startswith("DEFER_IF_PERMIT 4.2.0 Greylisted") and want[3] == "DUNNO"
    assert want[2].startswith("PREPEND X-Greylist: delayed 61 seconds")
    assert want[-1] == ("DEFER_IF_PERMIT Greylisted, see "
                        "http://postgrey.schweikert.ch/help/example.net.html")
    assert "whitelisted: mail.example.org[192.0.2.7]" in ref_lines
    assert "action=pass, reason=client AWL, client_name=mail.example.org, " \
           "client_address=192.0.2.7, sender=c@x.test, recipient=bob@example.net" in ref_lines
    assert "correcting date for first seen in the future!" in ref_lines
    assert ref_lines[1] == ("action=greylist, reason=early-retry (50s missing), "
                            "client_name=mail.example.org, client_address=192.0.2.7, "
                            "sender=alice@example.org, recipient=bob@example.net")
    fast_g.close()
    ref_g.close()


@pytest.mark.parametrize("data", [
    postfix_request(client_address="2001:db8::1"),
    postfix_request(client_address="bogus"),
    postfix_request(request="other"),
    postfix_request(policy_test_time="+5"),
    postfix_request(policy_test_time=" 5"),
    postfix_request(policy_test_time="1" * 19),
    b"request=smtpd_access_policy\nclient_address=192.0.2.9\nsender=a@b\nrecipient=c@d\n\n",
])
def test_fast_leaves_odd_requests_to_the_greylist_procedure(impl, tmp_path, data):
    g, lines = _greylist(tmp_path, "g", impl.kind == "pure")
    assert g.fast.handle(data) == P.parse(data)
    assert g.fast.handle(b"request=smtpd_access_policy\ngarbage\n\n") is None
    assert lines == [] and g.store.gs.stats()["live"] == 0      # nothing decided
    g.close()


def test_fast_is_off_with_whitelists_and_privacy(tmp_path):
    from postier.policy import whitelist as W
    g, _ = _greylist(tmp_path, "a", False)
    assert g.fast is not None
    g.close()
    store = MmapStore(str(tmp_path / "b.db"))
    g = G.Greylist(G.GreylistSettings(), store, recipients=W.recipients_from_text("x@y\n"))
    assert g.fast is None
    g.close()
    g, _ = _greylist(tmp_path, "c", False, privacy=True)
    assert g.fast is None
    g.close()
    g, lines = _greylist(tmp_path, "d", False, log_actions=False)
    assert g.fast.handle(postfix_request(policy_test_time=str(NOW))).startswith("DEFER")
    assert lines == []
    g.close()


def test_fast_whitelists_from_files_switch_it_off_on_reload(tmp_path):
    wl = tmp_path / "clients"
    wl.write_text("")
    s = G.GreylistSettings(whitelist_clients=(str(wl),), whitelist_recipients=())
    g = G.Greylist(s, MmapStore(str(tmp_path / "g.db")))
    assert g.fast is not None
    wl.write_text("mail.example.org\n")
    g.load_whitelists()
    assert g.fast is None
    g.close()


def test_store_failure_on_the_fast_path(tmp_path, monkeypatch):
    from postier.policy.store import StoreError
    logged: list[str] = []
    monkeypatch.setattr(S.log, "warning", logged.append)
    g, _ = _greylist(tmp_path, "g", False)

    class Failing:
        def handle(self, data: bytes) -> str:
            raise StoreError("greylist store /x: flock: Input/output error")

    g.fast = Failing()
    srv = S.PolicyServer(g)
    proto = S._PolicyProtocol(srv)
    t = _Transport()
    proto.connection_made(t)            # type: ignore[arg-type]
    proto.data_received(postfix_request())
    assert bytes(t.data) == b"action=451 4.3.5 Server configuration problem\n\n"
    assert logged == ["greylist store: greylist store /x: flock: Input/output error"]
    assert srv.requests == 1
    g.close()


_CLIENT = r"""
import socket, sys
path, maillog, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns = []
for i in range(3):
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    conns.append(c)
for k, t in enumerate((now, now + 61, now + 70)):
    for i, c in enumerate(conns):
        c.sendall(("request=smtpd_access_policy\nclient_address=192.0.2.7\n"
                   "client_name=mail.example.org\nsender=alice@example.org\n"
                   f"recipient=r{i}@x.test\ninstance={k}.{i}\npolicy_test_time={t}\n\n"
                   ).encode())
    for i, c in enumerate(conns):
        answer = b""
        while not answer.endswith(b"\n\n"):
            answer += c.recv(4096)
        with open(maillog) as f:            # read at once, as a log watcher would
            lines = [x for x in f.read().splitlines() if f"recipient=r{i}@x.test" in x]
        print(answer.decode().split()[0], len(lines), flush=True)
"""


def test_answers_go_out_after_their_log_lines(tmp_path):
    """The server batches log lines per event-loop iteration and sends the
    answers of an iteration after writing them: a client (another process)
    that has its answer finds the decision's line in the log."""
    import sys
    maillog = tmp_path / "maillog"
    log.setup("greylistd", maillog_file=str(maillog))
    try:
        async def main() -> bytes:
            store = MmapStore(str(tmp_path / "g.db"))
            g = G.Greylist(G.GreylistSettings(delay=60, hostname="mx.test"), store)
            srv = S.PolicyServer(g)
            path = str(tmp_path / "policy.sock")
            await srv.listen_socket(S.bind_unix(path))
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", _CLIENT, path, str(maillog), str(NOW),
                    stdout=asyncio.subprocess.PIPE)
                out, _ = await asyncio.wait_for(proc.communicate(), 30)
            finally:
                await srv.close()
                g.close()
            return out

        out = asyncio.run(main()).decode().splitlines()
    finally:
        log.setup("postier")
    # each answer, and how many lines of its recipient the log had when it came:
    # the line of the request just answered is always there
    assert out == ([f"action=DEFER_IF_PERMIT {1}" for _ in range(3)]
                   + [f"action=PREPEND {2}" for _ in range(3)]
                   + [f"action=DUNNO {3}" for _ in range(3)])
    final = [x.split(": ", 1)[1] for x in maillog.read_text().splitlines() if "action=" in x]
    assert len(final) == 9
    assert final[0].startswith("action=greylist, reason=new, client_name=mail.example.org, ")
    assert sum(x.startswith("action=pass, reason=triplet found, delay=61") for x in final) == 3
