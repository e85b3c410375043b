"""Shared helpers for the restriction engine tests (imported by the other
test_restrictions*.py modules), plus self-tests of the helpers.

* `config(pairs)`: a configuration object for the engine from main.cf
  name/value pairs (postier.config's Config when it offers `from_text`,
  else a plain mapping, which RestrictionEngine also accepts).
* `open_map_for_tests`: postier.maps.open_map, with small stand-ins for the
  table types whose modules are not there yet (inline, static, cidr, regexp).
* `write_tables()`: table files (hash tables built with postier.maps.hash).
* `LogCapture`: the lines the code under test logs, without timestamps.
* `Dialog`: replays a fixture dialog against the engine, doing what the SMTP
  server would do around it (XCLIENT identity, HELO/MAIL/RCPT bookkeeping,
  queue ID at the first accepted RCPT, canned 250/354 replies), and records
  the replies and log lines that the engine and parse_path are responsible
  for, to compare with what real Postfix did.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from postier import log
from postier import maps as pmaps
from postier.errors import MapError
from postier.smtpd import address
from postier.smtpd.restrictions import RestrictionEngine
from postier.smtpd.state import Client, SessionState

ROOT = Path(__file__).resolve().parents[3]
FIXTURE_PATH = ROOT / "tests" / "compat" / "smtpd_restrictions.json"


def load_fixture() -> dict:
    with open(FIXTURE_PATH, encoding="utf-8") as f:
        return json.load(f)


FIXTURE = load_fixture()
DIALOGS = {d["id"]: d for d in FIXTURE["dialogs"]}
BASE = [tuple(x) for x in FIXTURE["base_main_cf"]]


# ---------------------------------------------------------------------------
# configuration

def config(pairs: Iterable[tuple[str, str]] | dict, *, base: bool = True):
    """main.cf = the fixture base (unless base=False) with `pairs` applied."""
    params: dict[str, str] = dict(BASE) if base else {}
    items = pairs.items() if isinstance(pairs, dict) else pairs
    for k, v in items:
        params[k] = v
    params.setdefault("inet_interfaces", "127.0.0.1")
    try:
        from postier.config import Config  # type: ignore[attr-defined]
        from_text = Config.from_text
    except (ImportError, AttributeError):
        return params
    text = "".join(f"{k} = {v}\n" for k, v in params.items())
    return from_text(text, path="main.cf")


# ---------------------------------------------------------------------------
# tables

class _Inline:
    type = "inline"

    def __init__(self, text: str):
        body = text.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        self.d: dict[str, str] = {}
        for item in re.findall(r"\{[^{}]*\}|[^,\s{}]+", body):
            item = item.strip("{} ")
            k, _, v = item.partition("=")
            self.d[k.strip().lower()] = v.strip()

    def lookup(self, key: str) -> str | None:
        return self.d.get(key.lower())


class _Static:
    type = "static"

    def __init__(self, text: str):
        self.v = text[1:-1].strip() if text.startswith("{") else text

    def lookup(self, key: str) -> str | None:
        return self.v


class _Cidr:
    type = "cidr"

    def __init__(self, path: str):
        self.rules = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                pat, _, val = line.partition(" ") if " " in line else line.partition("\t")
                pat = pat.strip("[]")
                self.rules.append((ipaddress.ip_network(pat, strict=False), val.strip()))

    def lookup(self, key: str) -> str | None:
        try:
            ip = ipaddress.ip_address(key)
        except ValueError:
            return None
        for net, val in self.rules:
            if ip.version == net.version and ip in net:
                return val
        return None


class _Regexp:
    def __init__(self, ttype: str, path: str):
        self.type = ttype
        self.rules = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                m = re.match(r"/(.*)/([a-z]*)\s+(.*)", line)
                if m:
                    self.rules.append((re.compile(m.group(1), re.I), m.group(3)))

    def lookup(self, key: str) -> str | None:
        for rx, val in self.rules:
            m = rx.search(key)
            if m:
                return re.sub(r"\$(\d)", lambda g, m=m: m.group(int(g.group(1))) or "", val)
        return None


def open_map_for_tests(spec: str, *, fold: bool = True, **kw):
    """postier.maps.open_map, or a stand-in while a type's module is missing."""
    try:
        return pmaps.open_map(spec, fold=fold, **kw)
    except (ImportError, MapError) as e:
        if isinstance(e, MapError) and "No module" not in str(e):
            raise
        ttype, _, name = spec.partition(":")
        if ttype == "inline":
            return _Inline(name)
        if ttype == "static":
            return _Static(name)
        if ttype == "cidr":
            return _Cidr(name)
        if ttype in ("regexp", "pcre"):
            return _Regexp(ttype, name)
        raise


def write_tables(tables: dict, directory: Path) -> None:
    """Fixture-style tables {name: {"type": t, "text": s}} into `directory`."""
    from postier.maps import hash as phash
    for name, spec in tables.items():
        path = directory / name
        path.write_text(spec["text"], encoding="utf-8")
        if spec["type"] == "hash":
            phash.build_from_source(str(path), spec["text"].encode(), fold=spec.get("fold", True))


def engine_for(pairs, tmp_path: Path, tables: dict | None = None, **kw) -> RestrictionEngine:
    """An engine for main.cf `pairs` (values may use @TABLES@)."""
    tdir = tmp_path / "tables"
    tdir.mkdir(exist_ok=True)
    write_tables(tables or {}, tdir)
    items = pairs.items() if isinstance(pairs, dict) else pairs
    pairs = [(k, v.replace("@TABLES@", str(tdir))) for k, v in items]
    kw.setdefault("open_map", open_map_for_tests)
    kw.setdefault("own_addresses_", ["127.0.0.1", "::1"])
    return RestrictionEngine(config(pairs), **kw)


# ---------------------------------------------------------------------------
# log capture

class LogCapture:
    """Collects what postier.log emits: "text" for info, "warning: text" ..."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.lines: list[str] = []
        monkeypatch.setattr(log.LOG, "emit", self._emit)

    def _emit(self, severity: str, text: str, service: str | None = None) -> None:
        self.lines.append(f"{severity}: {text}" if severity else text)

    def take(self) -> list[str]:
        out, self.lines = self.lines, []
        return out


@pytest.fixture
def logs(monkeypatch):
    return LogCapture(monkeypatch)


# ---------------------------------------------------------------------------
# state helpers

def client(addr: str = "198.51.100.7", name: str = "unknown", *, reverse: str | None = None,
           status: int | None = None) -> Client:
    if status is None:
        status = 5 if name == "unknown" else 2
    rev = reverse if reverse is not None else name
    return Client(addr=addr, name=name, reverse_name=rev, name_status=status,
                  reverse_name_status=5 if rev == "unknown" else 2)


def session(*, addr: str = "198.51.100.7", name: str = "unknown", helo: str | None =
            "client.remote.test", sender: str | None = "sender@remote.test",
            protocol: str = "ESMTP") -> SessionState:
    st = SessionState()
    st.client = client(addr, name)
    st.real_client = client("127.0.0.1", "localhost")
    st.helo_name = helo
    st.protocol = protocol if helo is not None else "SMTP"
    st.sender = sender
    st.server_addr, st.server_port = "127.0.0.1", "25"
    return st


def run(coro):
    return asyncio.run(coro)


async def rcpt(engine: RestrictionEngine, st: SessionState, rcpt_addr: str):
    """RCPT as the server does it: on acceptance the recipient is added and
    the queue ID allocated."""
    st.rcpt_count += 1
    st.recipient = rcpt_addr
    r = await engine.rcpt(st)
    if r is None:
        st.recipients.append(rcpt_addr)
        st.queue_id = st.queue_id or "QUEUEID"
    return r


# ---------------------------------------------------------------------------
# fixture dialogs

SERVER_LOG = re.compile(
    r"^QUEUEID\d*: client=|^warning: unknown DSN NOTIFY|^warning: reject: ETRN"
    r"|queue file size limit|^NOQUEUE: reject: MAIL from .*: 552 5\.3\.4|"
    r"^warning: QUEUEID\d*: queue file")


def fixture_log(dialog: dict) -> list[str]:
    """The smtpd log lines of a dialog that the engine (or parse_path's
    warning flag) accounts for."""
    out = []
    for line in dialog["log"]:
        if not line.startswith("postfix/smtpd: "):
            continue
        text = re.sub(r"QUEUEID\d+", "QUEUEID", line[len("postfix/smtpd: "):])
        if SERVER_LOG.search(text):
            continue
        out.append(text)
    return out


class Dialog:
    """Replays one fixture dialog against a RestrictionEngine."""

    def __init__(self, dialog: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw):
        self.d = dialog
        self.logs = LogCapture(monkeypatch)
        overrides = [tuple(x) for x in dialog["main_cf_overrides"]]
        self.engine = engine_for(overrides, tmp_path, dialog.get("tables") or {}, **kw)
        self.logs.take()        # table building and start-up: not the session's log
        self.params = dict(BASE)
        self.params.update(dict(overrides))
        self.delay = self.params.get("smtpd_delay_reject", "yes") == "yes"
        self.checked: list[tuple[int, tuple, tuple]] = []   # (index, got, want)

    def _client(self) -> tuple[Client, Client]:
        real = Client(addr="127.0.0.1", name="localhost", reverse_name="localhost",
                      name_status=2, reverse_name_status=2)
        xc = self.d["xclient"]
        if not xc:
            return real, Client(**real.__dict__)
        c = Client(**real.__dict__)
        addr = xc.get("ADDR", real.addr)
        c.addr = addr[5:] if addr.upper().startswith("IPV6:") else addr
        name = xc.get("NAME")
        if name is not None:
            c.name, c.name_status = {"[UNAVAILABLE]": ("unknown", 5),
                                     "[TEMPUNAVAIL]": ("unknown", 4)}.get(name, (name, 2))
        rev = xc.get("REVERSE_NAME")
        if rev is not None:
            c.reverse_name, c.reverse_name_status = {
                "[UNAVAILABLE]": ("unknown", 5), "[TEMPUNAVAIL]": ("unknown", 4)}.get(rev, (rev, 2))
        return real, c

    async def replay(self) -> None:
        e = self.engine
        st = SessionState()
        real, xclient = self._client()
        st.client, st.real_client = real, Client(**real.__dict__)
        st.server_addr, st.server_port = "127.0.0.1", "25"
        denied = None
        steps = self.d["dialog"]
        for i, step in enumerate(steps):
            want = (step.get("reply_code"), step.get("reply_text"))
            if "data" in step:
                if step.get("skipped") or step.get("reply_code") == 552:
                    continue        # refused DATA; message size limit (the server's)
                r = await e.end_of_data(st)
                got = (r.code, r.line()[4:]) if r else (250, "2.0.0 Ok: queued as QUEUEID")
                if r is None:
                    want = (want[0], re.sub(r"QUEUEID\d*", "QUEUEID", want[1]))
                self.checked.append((i, got, want))
                st.reset_transaction()
                continue
            cmd = step["cmd"]
            if cmd is None:
                if not self.delay:
                    r = await e.connect(st)
                    if r is not None:
                        denied = r
                        self.checked.append((i, (r.code, r.line()[4:]), want))
                st.client = xclient
                continue
            verb, _, arg = cmd.partition(" ")
            verb = verb.upper()
            if denied is not None and verb != "QUIT":
                continue
            if verb in ("EHLO", "HELO"):
                if not arg.strip():
                    continue
                name = arg.strip() if verb == "EHLO" else arg.strip().replace(" ", "?")
                if verb == "EHLO":
                    name = name.split()[0]
                st.reset_transaction()
                if not self.delay:
                    r = await e.helo(st, name, command=verb)
                    if r is not None:
                        self.checked.append((i, (r.code, r.line()[4:]), want))
                        continue
                st.helo_name = name
                st.protocol = "ESMTP" if verb == "EHLO" else "SMTP"
                self.checked.append((i, (250,), (want[0],)))
            elif verb == "MAIL":
                head, _, rest = arg.partition(":")
                if head.upper() != "FROM" or not rest.strip() or st.sender is not None:
                    continue
                if self.params.get("smtpd_helo_required") == "yes" and st.helo_name is None:
                    continue
                path, *params = rest.strip().split(" ") if not rest.strip().startswith("<") \
                    else self._split(rest.strip())
                if any(not p.upper().startswith(("SIZE=", "BODY=")) for p in params):
                    continue
                if any(p.upper().startswith("SIZE=") and (not p[5:].isdigit()
                       or int(p[5:]) > int(self.params.get("message_size_limit", "10240000")))
                       for p in params):
                    continue
                try:
                    sender = address.parse_path(path, sender=True,
                                                resolver=e.resolver)
                except address.AddressError as err:
                    if err.warn:
                        log.warning(address.illegal_syntax_warning(st.client.namaddr, "MAIL",
                                                                   path))
                    self.checked.append((i, (501, "5.1.7 Bad sender address syntax"), want))
                    continue
                st.sender = sender
                if not self.delay:
                    r = await e.mail(st)
                    if r is not None:
                        st.sender = None
                        self.checked.append((i, (r.code, r.line()[4:]), want))
                        continue
                self.checked.append((i, (250, "2.1.0 Ok"), want))
            elif verb == "RCPT":
                head, _, rest = arg.partition(":")
                if head.upper() != "TO" or not rest.strip() or st.sender is None:
                    continue
                path, *params = self._split(rest.strip())
                if params:
                    continue
                limit = int(self.params.get("smtpd_recipient_limit", "1000"))
                try:
                    rcpt_addr = address.parse_path(path, sender=False, resolver=e.resolver)
                except address.AddressError as err:
                    if err.warn:
                        log.warning(address.illegal_syntax_warning(st.client.namaddr, "RCPT",
                                                                   path))
                    self.checked.append((i, (501, "5.1.3 Bad recipient address syntax"), want))
                    continue
                if st.rcpt_count >= limit:
                    st.rcpt_count += 1
                    continue
                r = await rcpt(e, st, rcpt_addr)
                got = (r.code, r.line()[4:]) if r else (250, "2.1.5 Ok")
                self.checked.append((i, got, want))
                if r is not None and r.disconnect:
                    break
            elif verb == "DATA":
                if not st.recipients:
                    continue
                r = await e.data(st)
                got = (r.code, r.line()[4:]) if r else (354, "End data with <CR><LF>.<CR><LF>")
                self.checked.append((i, got, want))
            elif verb == "RSET":
                st.reset_transaction()

    @staticmethod
    def _split(rest: str) -> list[str]:
        toks = address.smtpd_tokens(rest)
        return [t.text for t in toks] or [rest]

    def run(self) -> None:
        asyncio.run(self.replay())
        self.engine.close()

    def log_lines(self) -> list[str]:
        return self.logs.take()


# ---------------------------------------------------------------------------
# self-tests of the helpers

def test_fixture_is_the_recorded_one():
    assert FIXTURE["oracle"]["mail_version"].startswith("3.7") if isinstance(
        FIXTURE.get("oracle"), dict) else FIXTURE.get("oracle")
    assert len(DIALOGS) == 139


def test_inline_stand_in():
    m = _Inline("{ a@b.test=REJECT, { c = OK fine } }")
    assert m.lookup("A@B.TEST") == "REJECT"
    assert m.lookup("c") == "OK fine"
    assert m.lookup("x") is None


def test_hash_tables_are_built(tmp_path):
    write_tables({"t": {"type": "hash", "text": "Key value one\n"}}, tmp_path)
    assert os.path.exists(tmp_path / "t.db")
    assert pmaps.open_map(f"hash:{tmp_path / 't'}").lookup("key") == "value one"
