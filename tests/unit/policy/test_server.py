"""The policy delegation protocol server (postier.policy.server), in-process.

Parsing follows postgrey's mux_input: LF or CRLF line ends, `name=value`
attributes, garbage lines logged, the empty line ends a request, requests
of another type get no answer, answers come in order on a persistent
connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from postier.policy import greylist as G
from postier.policy import server as S
from postier.policy import whitelist as W
from postier.policy.store import MmapStore

NOW = int(time.time())


def request(**kw) -> bytes:
    a = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
         "client_address": "192.0.2.7", "client_name": "mail.example.org",
         "sender": "alice@example.org", "recipient": "bob@example.net",
         "instance": "1a.2b.3", "etrn_domain": "", "policy_test_time": str(NOW)}
    a.update(kw)
    return "".join(f"{k}={v}\n" for k, v in a.items()).encode() + b"\n"


GREY = b"action=DEFER_IF_PERMIT 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/"


@pytest.fixture(params=["native", "pure"])
def served(request, tmp_path, monkeypatch):
    """(run, lines): run(coro_fn) runs coro_fn(path, server) against a
    server on a unix socket; lines are the log lines."""
    lines: list[str] = []
    monkeypatch.setattr(S.log, "info", lines.append)

    def run(fn, exim=False, recipients=""):
        async def main():
            settings = G.GreylistSettings(delay=60, hostname="mx.test")
            store = MmapStore(str(tmp_path / "g.db"), pure=request.param == "pure")
            pure = request.param == "pure"
            g = G.Greylist(settings, store, recipients=W.recipients_from_text(recipients),
                           emit=lines.append, pure=pure)
            srv = S.PolicyServer(g, exim=exim, pure=pure)
            path = str(tmp_path / "policy.sock")
            await srv.listen_socket(S.bind_unix(path))
            try:
                return await fn(path, srv)
            finally:
                await srv.close()
                g.close()
        return asyncio.run(main())
    return run, lines


async def read_answers(reader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(reader.readuntil(b"\n\n"), 5))
    return out


def test_persistent_connection(served):
    run, lines = served

    async def go(path, srv):
        r, w = await asyncio.open_unix_connection(path)
        answers = []
        for t in (NOW, NOW + 10, NOW + 61, NOW + 70):
            w.write(request(policy_test_time=str(t)))
            answers += await read_answers(r, 1)
        w.close()
        return answers

    a = run(go)
    assert a[0].startswith(GREY) and a[1].startswith(GREY)
    assert a[2].startswith(b"action=PREPEND X-Greylist: delayed 61 seconds by postier-greylist-")
    assert a[3] == b"action=DUNNO\n\n"
    assert lines[1].startswith("action=greylist, reason=early-retry (50s missing), ")


def test_pipelined_crlf_and_split_writes(served):
    run, lines = served
    data = (request(recipient="a@x.test").replace(b"\n", b"\r\n")
            + request(recipient="b@y.test") + request(recipient="c@z.test"))

    async def go(path, srv):
        r, w = await asyncio.open_unix_connection(path)
        for i in range(0, len(data), 7):          # arbitrary cuts, even inside CRLF
            w.write(data[i:i + 7])
            await w.drain()
            await asyncio.sleep(0)
        answers = await read_answers(r, 3)
        w.close()
        return answers

    a = run(go)
    assert [x.split(b"help/")[1] for x in a] == [b"x.test.html\n\n", b"y.test.html\n\n",
                                                b"z.test.html\n\n"]


def test_garbage_and_unrecognized_requests(served):
    run, lines = served

    async def go(path, srv):
        r, w = await asyncio.open_unix_connection(path)
        w.write(b"this is garbage\n" + request(request="other_request")
                + b"=odd=value\n" + request(recipient="p@q.test"))
        answers = await read_answers(r, 1)
        w.write(b"\n")                            # an empty request: no type
        w.write(request(recipient="r@s.test"))
        answers += await read_answers(r, 1)
        w.close()
        return answers

    a = run(go)
    assert a[0].startswith(GREY) and a[0].endswith(b"q.test.html\n\n")
    assert a[1].endswith(b"s.test.html\n\n")
    assert "ignoring garbage: <this is garbage>" in lines
    assert "unrecognized request type: 'other_request'" in lines
    assert "unrecognized request type: ''" in lines


def test_exim_mode_closes_after_each_answer(served):
    run, lines = served

    async def go(path, srv):
        r, w = await asyncio.open_unix_connection(path)
        w.write(request())
        a = await read_answers(r, 1)
        rest = await asyncio.wait_for(r.read(), 5)
        w.close()
        return a, rest

    a, rest = run(go, exim=True)
    assert a[0].startswith(GREY) and rest == b""


def test_many_connections(served):
    run, lines = served

    async def client(path, i):
        r, w = await asyncio.open_unix_connection(path)
        got = []
        for j in range(5):
            w.write(request(recipient=f"u{i}.{j}@x.test", instance=f"{i}.{j}"))
            got += await read_answers(r, 1)
        w.close()
        return got

    async def go(path, srv):
        results = await asyncio.gather(*(client(path, i) for i in range(60)))
        return results, srv.requests

    results, count = run(go, recipients="u7.3@x.test\n")
    flat = [a for res in results for a in res]
    assert count == 300 and len(flat) == 300
    assert flat.count(b"action=DUNNO\n\n") == 1          # the whitelisted recipient
    assert sum(a.startswith(GREY) for a in flat) == 299


@pytest.mark.parametrize("value, want", [
    ("10023", ("localhost", 10023)), ("127.0.0.1:10023", ("127.0.0.1", 10023)),
    ("[::1]:10023", ("::1", 10023)),
])
def test_parse_inet(value, want):
    assert S.parse_inet(value) == want


def test_parse_inet_errors():
    with pytest.raises(ValueError, match="expected \\[HOST:\\]PORT"):
        S.parse_inet("127.0.0.1:port")


def _reference_parse(block: bytes) -> dict[str, str]:
    """postgrey's per-line rules, line by line (the slow path)."""
    attrs: dict[str, str] = {}
    S._parse_lines(block.split(b"\n"), attrs)
    return attrs


@pytest.mark.parametrize("block", [
    request()[:-2],                                              # Postfix's usual request
    b"a=1\nb=x=y\na=2",                                          # "=" in a value, last one wins
    b"name=" + b"v" * 600 + b"\nother=1",                        # a value cut at 512 bytes
    b"n" * 600 + b"=value\nother=1",                             # a name cut at 512 bytes
    b"a=1\n=odd=value\nb=2",                                     # an empty name
    b"sender=" + "\u00e9".encode() * 300 + b"\nb=2",           # 300 chars, 600 bytes: cut
    "client_name=h\u00f4te.example\nb=2".encode(),               # non-ASCII, short
    b"sender=a\xffb@x.test\nb=2",                                # not UTF-8
])
def test_parse_block_matches_the_line_rules(block):
    got = S.parse_block(block, {})
    assert got == _reference_parse(block)
    assert all(len(v.encode("utf-8", "surrogateescape")) <= 512 for v in got.values())


def test_parse_block_garbage_line_is_logged(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(S.log, "info", lines.append)
    assert S.parse_block(b"a=1\nno equals sign\nb=2", {"x": "0"}) == {"x": "0", "a": "1",
                                                                    "b": "2"}
    assert lines == ["ignoring garbage: <no equals sign>"]
