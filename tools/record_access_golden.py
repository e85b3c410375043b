#!/usr/bin/env python3
"""Record the access(5) partial-key search order of real Postfix into tests/golden/access/.

    tools/record_access_golden.py            # re-record; rewrite files whose data changed
    tools/record_access_golden.py --check    # re-record and diff against the files (exit 1)
    tools/record_access_golden.py --keep -v  # keep the instance root, show progress

Needs root and the Debian `postfix` + `postfix-pcre` packages.  Takes about
half a minute.  Run by hand; tests/unit/maps/test_access.py replays the files
against postier.maps.access, and its slow `postfix` test runs `--check`.

For every case (one check: client, helo, sender or recipient, one input, one
set of main.cf parameters) a private Postfix instance (tools/postfix_instance.py,
127.0.0.1 only, `discard:` transports, no qmgr) is asked three ways:

keys       The table of each check is a `hash:` table (built with the real
           postmap) holding a generous superset of candidate keys (every
           prefix/suffix of the input at `. : @ + - [ ]`, local part x domain
           combinations, myorigin/myhostname forms), each mapped to
           `REJECT k=<id>`.  The RCPT reply names the key Postfix found first;
           that key is removed and the session repeated until nothing is found.
           Result: the ordered list of distinct keys that a hash table sees
           (folded to lower case, as smtpd folds fixed-table lookups).
full_keys  The table is `pcre:` and echoes the key (`REJECT k=$1`), with a
           case-sensitive negative look-ahead for the keys already seen.
           Pattern tables only get smtpd's FULL lookups (not the PARTIAL
           ones), so this is the exact-case list of full keys.
trace      The table is `proxy:hash:` and proxymap(8) runs with -v; its log
           shows every lookup of the fixed table in order, duplicates and
           empty keys included, in one session where nothing is found.
           This catches keys the candidate superset might have missed.

Every session uses XCLIENT (NAME, ADDR), HELO, MAIL FROM and RCPT TO; the
values of the checks not under test are neutral (`neutral.invalid`,
10.255.255.250, `neutral@neutral.invalid`) and never in any table.  All checks
are evaluated at RCPT time (smtpd_delay_reject = yes).  When smtpd refuses
the input itself (XCLIENT/HELO/MAIL/RCPT syntax), the reply is recorded in
`refused` instead of keys.

A file is rewritten only when its recorded data changed, so the provenance
date says when the behaviour was last seen to change.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import re
import sys
import time
from collections.abc import Iterable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from postfix_instance import (  # noqa: E402
    BASE_MAIN_CF,
    PostfixInstance,
    Reply,
    mail_version,
    postfix_available,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden", "access")
FORMAT = "postier/access-golden/1"

ROLES = ("client", "helo", "sender", "recipient")
ROLE_TAG = {"client": "c", "helo": "h", "sender": "s", "recipient": "r"}
RESTRICTION = {
    "client": ("smtpd_client_restrictions", "check_client_access {t}"),
    "helo": ("smtpd_helo_restrictions", "check_helo_access {t}"),
    "sender": ("smtpd_sender_restrictions", "check_sender_access {t}"),
    "recipient": ("smtpd_recipient_restrictions", "check_recipient_access {t}, reject"),
}

NEUTRAL = {
    "client": {"NAME": "neutral.invalid", "ADDR": "10.255.255.250"},
    "helo": "neutral.invalid",
    "sender": "neutral@neutral.invalid",
    "recipient": "neutral@neutral.invalid",
}
NEUTRAL_KEYS = {
    "neutral.invalid", "invalid", ".invalid", ".neutral.invalid",
    "10.255.255.250", "10.255.255", "10.255", "10",
    "neutral@neutral.invalid", "neutral@",
}

DEFAULT_PARENT = (
    "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,"
    "qmqpd_authorized_clients,relay_domains,smtpd_access_maps")
DOT_STYLE = {"parent_domain_matches_subdomains":
             DEFAULT_PARENT.replace(",smtpd_access_maps", "")}
PLUS = {"recipient_delimiter": "+"}
PLUS_DASH = {"recipient_delimiter": "+-"}

BASE = dict(BASE_MAIN_CF)
MYORIGIN = BASE["mydomain"]          # myorigin = $mydomain
MYHOSTNAME = BASE["myhostname"]


# ---------------------------------------------------------------------------
# The cases.  `smtp`: what is sent (address inside <>, HELO argument, or the
# XCLIENT attributes).  `state`: what smtpd passes to the check, i.e. the
# input of postier.maps.access (address / helo name / client name+addr).

def _addr_cases(topic: str, params: dict, addrs: Iterable, roles=("sender", "recipient"),
                note: str = "") -> list[dict]:
    out = []
    for a in addrs:
        smtp, state = (a, a) if isinstance(a, str) else a
        for role in roles:
            out.append({"topic": topic, "check": role, "params": dict(params),
                        "smtp": smtp, "state": {"address": state}, "note": note})
    return out


def _helo_cases(topic: str, params: dict, names: Iterable[str]) -> list[dict]:
    return [{"topic": topic, "check": "helo", "params": dict(params), "smtp": n,
             "state": {"helo": n}} for n in names]


def _client_cases(topic: str, params: dict, clients: Iterable[tuple[str, str, str, str]]
                  ) -> list[dict]:
    out = []
    for xname, xaddr, name, addr in clients:
        out.append({"topic": topic, "check": "client", "params": dict(params),
                    "smtp": {"NAME": xname, "ADDR": xaddr},
                    "state": {"name": name, "addr": addr}})
    return out


def all_cases() -> list[dict]:
    cases: list[dict] = []
    cases += _addr_cases("address", {}, [
        "alice@mail.example.org",
        "Carol.Upper@Sub.Example.ORG",
        "heidi@a.b.c.example.net",
        "ivan@singlelabel",
        "bob+tag@nodelim.example.com",
        "erin@[192.0.2.7]",
        "frank@198.51.100.9",
        "mallory@[IPv6:2001:db8::7]",
    ])
    cases += _addr_cases("address_extension", PLUS, [
        "bob+tag@ext.example.org",
        "Upper+Ext@Ext-Upper.Example.ORG",
        "empty+@empty-ext.example.net",
        "+lead@lead.example.com",
        "two+a+b@two.example.org",
        "postmaster+x@pm.example.net",
        "MAILER-DAEMON+x@md.example.com",
        "double-bounce+x@db.example.org",
        "plain@noext.example.net",
        "owner-list@owner.example.org",
    ])
    cases += _addr_cases("address_multi_delimiter", PLUS_DASH, [
        "bob+tag@m1.example.org",
        "carl-tag@m2.example.net",
        "dora-x+y@m3.example.com",
        "erin+y-z@m4.example.org",
        "owner-list@m5.example.net",
        "list-request@m6.example.com",
        "owner+x@m7.example.org",
        "user@my-domain.example.net",
        "MAILER-DAEMON@m8.example.com",
        "double-bounce@m9.example.org",
        "-lead@m10.example.net",
    ])
    cases += _addr_cases("address_dot_style", {**DOT_STYLE, **PLUS}, [
        "alice@mail.example.org",
        "bob+tag@deep.sub.example.net",
        "ivan@singlelabel",
        "erin@[192.0.2.7]",
    ])
    cases += _addr_cases("null_sender", {}, [""], roles=("sender",))
    cases += _addr_cases("null_sender", {"smtpd_null_access_lookup_key": "null-sender"}, [""],
                         roles=("sender",))
    cases += _addr_cases("null_sender", {"smtpd_null_access_lookup_key": "Null-Sender"}, [""],
                         roles=("sender",))
    # Addresses whose keys depend on trivial-rewrite's resolved form.
    cases += _addr_cases("resolver", PLUS, [
        "dave",
        "dave+ext",
        "Eve@Example.TEST",
        "grace@trailing.example.org.",
        ('"john..doe"@quoted.example.org', "john..doe@quoted.example.org"),
        ('"john+x..doe"@quoted2.example.org', "john+x..doe@quoted2.example.org"),
        ('"john..x+tag"@quoted3.example.org', "john..x+tag@quoted3.example.org"),
        ('"a b+c"@quoted4.example.org', "a b+c@quoted4.example.org"),
        ('"a@b"@quoted5.example.org', "a@b@quoted5.example.org"),
        ('"Mixed..Case"@Quoted6.Example.ORG', "Mixed..Case@Quoted6.Example.ORG"),
        ("@hop.example.net:kim@routed.example.org", "@hop.example.net:kim@routed.example.org"),
        "judy%relay.example.net@example.test",
        "relay.example.net!kim",
    ])
    cases += _helo_cases("helo", {}, [
        "mail.example.org",
        "MAIL.Upper.Example.ORG",
        "helohost",
        "host.example.",
        "a.b.c.d.example.net",
        "[192.0.2.1]",
        "192.0.2.1",
        "[IPv6:2001:db8::1]",
        "2001:db8::1",
        "1.2.3",
        "01.2.3.4",
        "0.1.2.3",
        "256.1.1.1",
        "1.2.3.4.",
        "::ffff:192.0.2.9",
    ])
    cases += _helo_cases("helo_dot_style", DOT_STYLE, [
        "mail.example.org",
        "host.example.",
        "[192.0.2.1]",
        "192.0.2.1",
    ])
    cases += _client_cases("client", {}, [
        ("mail.client.example", "203.0.113.5", "mail.client.example", "203.0.113.5"),
        ("[UNAVAILABLE]", "203.0.113.6", "unknown", "203.0.113.6"),
        ("[TEMPUNAVAIL]", "203.0.113.9", "unknown", "203.0.113.9"),
        ("Host.Upper.EXAMPLE", "203.0.113.7", "Host.Upper.EXAMPLE", "203.0.113.7"),
        ("[UNAVAILABLE]", "IPV6:2001:db8:1::5", "unknown", "2001:db8:1::5"),
        ("v6.client.example", "IPV6:2001:DB8:0:0:1:0:0:7", "v6.client.example",
         "2001:db8::1:0:0:7"),
        ("[UNAVAILABLE]", "IPV6:2001:db8:1:2:3:4:5:6", "unknown", "2001:db8:1:2:3:4:5:6"),
        ("[UNAVAILABLE]", "IPV6:::ffff:203.0.113.8", "unknown", "203.0.113.8"),
        ("[UNAVAILABLE]", "IPV6:2001:db8::", "unknown", "2001:db8::"),
        ("[UNAVAILABLE]", "IPV6:::1", "unknown", "::1"),
        ("[UNAVAILABLE]", "IPV6:::1.2.3.4", "unknown", "::1.2.3.4"),
        ("[UNAVAILABLE]", "IPV6:::FFFF:198.51.100.3", "unknown", "198.51.100.3"),
        ("[UNAVAILABLE]", "IPV6:FE80::A", "unknown", "fe80::a"),
        ("[UNAVAILABLE]", "[UNAVAILABLE]", "unknown", "unknown"),
    ])
    cases += _client_cases("client_dot_style", DOT_STYLE, [
        ("mail.client.example", "203.0.113.5", "mail.client.example", "203.0.113.5"),
        ("[UNAVAILABLE]", "IPV6:2001:db8:1::5", "unknown", "2001:db8:1::5"),
    ])
    seen: dict[str, int] = {}
    for c in cases:
        base = f"{c['topic']}/{c['check']}/{_slug(c)}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        c["id"] = base if n == 0 else f"{base}#{n}"
    return cases


def _slug(c: dict) -> str:
    smtp = c["smtp"]
    if isinstance(smtp, dict):
        s = f"{smtp['NAME']}_{smtp['ADDR']}"
    else:
        s = smtp or "<>"
    extra = ",".join(f"{k}={v}" for k, v in sorted(c["params"].items())
                     if k != "parent_domain_matches_subdomains")
    return s + (f"[{extra}]" if extra else "")


# ---------------------------------------------------------------------------
# Candidate keys: a deliberately generous superset (the recorder must not
# presuppose the order; the proxymap trace checks that nothing was missed).

DELIMS = ".:@+-[]!%"


def _cuts(s: str) -> set[str]:
    out = {s}
    for i, ch in enumerate(s):
        if ch in DELIMS:
            out.update((s[:i], s[:i + 1], s[i:], s[i + 1:]))
    return out


def _domain_forms(d: str) -> set[str]:
    out = {d, d.rstrip(".")}
    for x in list(out):
        parts = x.split(".")
        for i in range(len(parts)):
            suf = ".".join(parts[i:])
            out.update((suf, "." + suf))
    return out


def candidates(case: dict) -> set[str]:
    check = case["check"]
    strings: list[str] = []
    if check == "client":
        strings += [case["smtp"]["NAME"], case["smtp"]["ADDR"], case["state"]["name"],
                    case["state"]["addr"], "unknown"]
        addr = case["state"]["addr"]
        if ":" in addr:
            groups = addr.split(":")
            for i in range(1, len(groups) + 1):
                strings.append(":".join(groups[:i]))
    elif check == "helo":
        strings += [case["smtp"]]
    else:
        strings += [case["smtp"], case["state"]["address"], "<>",
                    case["params"].get("smtpd_null_access_lookup_key", "<>")]
    out: set[str] = set()
    for s in strings:
        out |= _cuts(s)
    if check in ("helo", "client"):
        for s in strings:
            out |= _domain_forms(s)
    if check in ("sender", "recipient"):
        delims = case["params"].get("recipient_delimiter", "") + "+-=_.%!"
        for s in (case["smtp"], case["state"]["address"]):
            local, at, domain = s.rpartition("@")
            if not at:
                local, domain = s, ""
            bang_host, bang, bang_user = s.partition("!")
            locals_ = {local, local.strip('"'), f'"{local}"'}
            if bang:
                locals_.add(bang_user)
            for lp in list(locals_):
                for d in delims:
                    if d in lp:
                        locals_.add(lp.split(d, 1)[0])
                        locals_.add(lp.rsplit(d, 1)[0])
                if ":" in lp:
                    locals_.add(lp.rsplit(":", 1)[1])
                if "%" in lp:
                    locals_.add(lp.split("%", 1)[0])
                    out |= _domain_forms(lp.split("%", 1)[1])
            locals_ |= {f'"{lp.strip(chr(34))}"' for lp in locals_}
            domains = set()
            for d in (domain, MYORIGIN, MYHOSTNAME, bang_host if bang else ""):
                if d:
                    domains |= _domain_forms(d)
                    domains |= _cuts(d)
                    if "%" in local:
                        domains |= _domain_forms(local.split("%", 1)[1])
            for lp in locals_:
                out.update((lp, lp + "@"))
                for d in domains:
                    out.update((lp + "@" + d, "@" + d, d))
    keys = set()
    for k in out:
        k = k.lower()
        # postmap's source syntax: no "#" first, no white space outside a
        # quoted part, and '"' balanced (a quoted part is stored with its quotes)
        if (k and not k[0] == "#" and k.count('"') % 2 == 0
                and not any(ch.isspace() for ch in re.sub(r'"[^"]*"', "", k))):
            keys.add(k)
    clash = keys & NEUTRAL_KEYS
    if clash:
        raise ValueError(f"{case['id']}: candidate keys {sorted(clash)} are also keys of the "
                         "neutral values; choose other test input")
    return keys


# ---------------------------------------------------------------------------
# Sessions

K_RX = re.compile(r"k=([chsr]\d+)\s*$")
ECHO_RX = re.compile(r"k=(.*)$")


def run_case_session(pf: PostfixInstance, case: dict) -> tuple[list[Reply], Reply | None]:
    """One session with `case` under test and neutral values elsewhere.
    Returns (replies, refusal) where refusal is the first reply that is not
    part of the access check (XCLIENT/HELO/MAIL refused), else None."""
    check = case["check"]
    xclient = dict(case["smtp"]) if check == "client" else dict(NEUTRAL["client"])
    helo = case["smtp"] if check == "helo" else NEUTRAL["helo"]
    sender = case["smtp"] if check == "sender" else NEUTRAL["sender"]
    rcpt = case["smtp"] if check == "recipient" else NEUTRAL["recipient"]
    replies = pf.session([f"HELO {helo}", f"MAIL FROM:<{sender}>", f"RCPT TO:<{rcpt}>"],
                         xclient=xclient)
    for r in replies[1:]:
        if r.cmd and r.cmd.startswith("RCPT"):
            return replies, None
        if r.cmd and not r.cmd.startswith("RCPT") and r.code not in (220, 250):
            return replies, r
    return replies, replies[-1]


def rcpt_reply(replies: list[Reply]) -> Reply:
    for r in replies:
        if r.cmd and r.cmd.startswith("RCPT"):
            return r
    raise RuntimeError(f"no RCPT reply in {replies}")


def _config(table_type: str, extra: dict) -> dict:
    over = {"smtpd_relay_restrictions": "", "smtpd_delay_reject": "yes"}
    for role in ROLES:
        param, tmpl = RESTRICTION[role]
        over[param] = tmpl.format(t=f"{table_type}:@TABLES@/{role}")
    if table_type.startswith("proxy:"):
        over["proxy_read_maps"] = " ".join(f"{table_type}:@TABLES@/{r}" for r in ROLES)
    over.update(extra)
    return over


class Recorder:
    def __init__(self, verbose: bool = False, keep: bool = False):
        self.verbose = verbose
        self.pf = PostfixInstance(keep=keep, smtpd_args=["-o", "max_use=1"])
        self.sessions = 0
        self.written: dict[str, tuple[str, str]] = {}

    def write_table(self, role: str, ttype: str, text: str) -> None:
        """Rebuild a table only when its content changes (max_use=1 gives
        every session a fresh smtpd that opens the tables as they are now)."""
        if self.written.get(role) == (ttype, text):
            return
        # keys ending in ":" (IPv6 prefixes) are stored as they are; postmap
        # merely warns that the line looks like an alias
        self.pf.write_table(role, ttype, text, allow_warning='record is in "key: value" format')
        self.written[role] = (ttype, text)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr)

    def close(self) -> None:
        self.pf.cleanup()

    def configure(self, table_type: str, params: dict, proxymap_verbose: bool = False) -> None:
        pf = self.pf
        pf.stop()
        tables = {}
        for role in ROLES:
            if table_type.endswith("hash"):
                tables[role] = ("hash", "never.matches.example REJECT never\n")
            else:
                tables[role] = ("pcre", "")
        pf.write_config(_config(table_type, params), tables)
        self.written = dict(tables)
        if proxymap_verbose:
            path = os.path.join(pf.etc, "master.cf")
            text = open(path).read()
            text = re.sub(r"^(proxymap\s.*proxymap)$", r"\1 -v", text, flags=re.M)
            with open(path, "w") as f:
                f.write(text)
        pf.start()

    def session(self, case: dict) -> tuple[list[Reply], Reply | None]:
        self.sessions += 1
        return run_case_session(self.pf, case)

    # -- keys: hash table with candidate removal ------------------------------

    def record_keys(self, cases: list[dict]) -> None:
        cands = {c["id"]: candidates(c) for c in cases}
        groups: list[list[dict]] = []
        for c in cases:
            for g in groups:
                if all(o["check"] != c["check"] or not (cands[o["id"]] & cands[c["id"]])
                       for o in g):
                    g.append(c)
                    break
            else:
                groups.append([c])
        for g in groups:
            self._record_group(g, cands)

    def _record_group(self, group: list[dict], cands: dict[str, set[str]]) -> None:
        remaining = {c["id"]: set(cands[c["id"]]) for c in group}
        found: dict[str, list[str]] = {c["id"]: [] for c in group}
        pending = list(group)
        while pending:
            ids: dict[str, tuple[str, str]] = {}
            for role in ROLES:
                lines = []
                n = 0
                for c in pending:
                    if c["check"] != role:
                        continue
                    for key in sorted(remaining[c["id"]]):
                        n += 1
                        tag = f"{ROLE_TAG[role]}{n}"
                        ids[tag] = (c["id"], key)
                        lines.append(f"{key}\tREJECT k={tag}\n")
                if not lines:
                    lines = ["never.matches.example\tREJECT never\n"]
                self.write_table(role, "hash", "".join(lines))
            still = []
            for c in pending:
                for _attempt in range(20):
                    replies, refused = self.session(c)
                    if refused is not None:
                        c["refused"] = f"{refused.code} {refused.last_line}"
                        c["keys"] = None
                        break
                    r = rcpt_reply(replies)
                    m = K_RX.search(r.last_line)
                    if not m:
                        if "Access denied" not in r.last_line:
                            c["refused"] = f"{r.code} {r.last_line}"
                            c["keys"] = None
                        else:
                            c["keys"] = found[c["id"]]
                        break
                    owner, key = ids.get(m.group(1), (None, None))
                    if owner != c["id"]:
                        raise RuntimeError(f"{c['id']}: reply names {m.group(1)} of {owner}: "
                                           f"{rcpt_reply(replies)}")
                    if key in found[c["id"]]:
                        time.sleep(0.1)          # stale smtpd process; ask again
                        continue
                    found[c["id"]].append(key)
                    remaining[c["id"]].discard(key)
                    still.append(c)
                    break
                else:
                    raise RuntimeError(f"{c['id']}: table change never seen")
            pending = still
        for c in group:
            self.log(f"keys  {c['id']}: {c.get('keys')}")

    # -- full keys: pcre echo with exclusion ---------------------------------

    def record_full_keys(self, cases: list[dict]) -> None:
        for c in cases:
            if c.get("refused"):
                c["full_keys"] = None
                continue
            seen: list[str] = []
            while True:
                if len(seen) > 20:
                    raise RuntimeError(f"{c['id']}: runaway pcre loop {seen}")
                if seen:
                    alt = "|".join(_pcre_escape(k) for k in seen)
                    rule = f"/^(?!(?:{alt})$)(.*)$/i\tREJECT k=$1\n"
                else:
                    rule = "/^(.*)$/i\tREJECT k=$1\n"
                for role in ROLES:
                    self.write_table(role, "pcre", rule if role == c["check"] else "")
                replies, refused = self.session(c)
                if refused is not None:
                    raise RuntimeError(f"{c['id']}: refused only in pcre mode: {refused}")
                m = ECHO_RX.search(rcpt_reply(replies).last_line)
                if not m or "Access denied" in rcpt_reply(replies).last_line:
                    break
                if m.group(1) in seen:
                    time.sleep(0.1)
                    continue
                seen.append(m.group(1))
            c["full_keys"] = seen
            self.log(f"full  {c['id']}: {seen}")

    # -- trace: proxymap -v --------------------------------------------------

    def record_trace(self, cases: list[dict]) -> None:
        for c in cases:
            if c.get("refused"):
                c["trace"] = None
                continue
            start = self.pf.log_size()
            replies, refused = self.session(c)
            # proxymap logged its lookups before smtpd answered RCPT
            if not self.pf.wait_log("disconnect from", 10, start=start):
                raise RuntimeError(f"{c['id']}: session not logged; see {self.pf.maillog}")
            time.sleep(0.02)
            if K_RX.search(rcpt_reply(replies).last_line):
                raise RuntimeError(f"{c['id']}: trace session found a key: {replies}")
            table = f"hash:{self.pf.table_path(c['check'])}"
            c["trace"] = [key for t, key in parse_proxymap_lookups(self.pf.read_log(start))
                          if t == table]
            self.log(f"trace {c['id']}: {c['trace']}")


def _pcre_escape(key: str) -> str:
    return "".join(ch if ch.isalnum() else "\\" + ch for ch in key)


ATTR_RX = re.compile(r"postfix/proxymap\[\d+\]: input attribute (name|value): ?(.*)$")


def parse_proxymap_lookups(log: str) -> list[tuple[str, str]]:
    """(table, key) of every `lookup` request in proxymap -v log lines."""
    out = []
    req: dict[str, str] = {}
    name = None
    for line in log.splitlines():
        m = ATTR_RX.search(line)
        if not m:
            continue
        kind, val = m.groups()
        if kind == "name":
            name = val
            continue
        if name is None:
            continue
        if name == "request":
            req = {"request": val}
        else:
            req[name] = val
        if name == "key" and req.get("request") == "lookup":
            out.append((req.get("table", ""), val))
        name = None
    return out


# ---------------------------------------------------------------------------
# Driver

def record(verbose: bool = False, keep: bool = False) -> dict[str, list[dict]]:
    cases = all_cases()
    by_params: dict[str, list[dict]] = {}
    for c in cases:
        by_params.setdefault(json.dumps(c["params"], sort_keys=True), []).append(c)
    rec = Recorder(verbose=verbose, keep=keep)
    try:
        for pjson, group in by_params.items():
            params = json.loads(pjson)
            rec.log(f"== params {params}: {len(group)} cases")
            rec.configure("hash", params)
            rec.record_keys(group)
            rec.configure("pcre", params)
            rec.record_full_keys(group)
            rec.configure("proxy:hash", params, proxymap_verbose=True)
            rec.record_trace(group)
    finally:
        rec.log(f"{rec.sessions} SMTP sessions")
        rec.close()
    topics: dict[str, list[dict]] = {}
    for c in cases:
        out = {"id": c["id"], "check": c["check"], "params": c["params"], "smtp": c["smtp"],
               "state": c["state"]}
        if c.get("refused"):
            out["refused"] = c["refused"]
        else:
            if c["check"] in ("sender", "recipient") and c["smtp"]:
                # reply->recipient of smtpd's resolver call = the last FULL key
                # (the unquoted form when the quoted one differs)
                out["resolved"] = c["full_keys"][-1]
            out.update(keys=c["keys"], full_keys=c["full_keys"], trace=c["trace"])
        topics.setdefault(c["topic"], []).append(out)
    return topics


DESCRIPTIONS = {
    "address": "check_sender_access / check_recipient_access, no recipient_delimiter",
    "address_extension": "address checks with recipient_delimiter = +",
    "address_multi_delimiter": "address checks with recipient_delimiter = +- (each character "
                               "is a delimiter)",
    "address_dot_style": "address checks with smtpd_access_maps removed from "
                         "parent_domain_matches_subdomains (.domain keys), delimiter +",
    "null_sender": "check_sender_access with MAIL FROM:<> and smtpd_null_access_lookup_key",
    "resolver": "address checks whose keys come from trivial-rewrite's resolved form "
                "(unqualified, quoted, source-routed, %-hack, bang path, trailing dot); "
                "delimiter +",
    "helo": "check_helo_access",
    "helo_dot_style": "check_helo_access, smtpd_access_maps removed from "
                      "parent_domain_matches_subdomains",
    "client": "check_client_access (XCLIENT NAME/ADDR)",
    "client_dot_style": "check_client_access, smtpd_access_maps removed from "
                        "parent_domain_matches_subdomains",
}


def golden_document(topic: str, cases: list[dict], date: str, version: str) -> dict:
    base = {k: BASE[k] for k in ("myhostname", "mydomain", "myorigin", "mydestination")}
    return {
        "format": FORMAT,
        "provenance": f"Recorded from real Postfix {version} (Debian) by "
                      f"tools/record_access_golden.py on {date}. Do not edit by hand.",
        "topic": topic,
        "description": DESCRIPTIONS.get(topic, ""),
        "base_main_cf": base,
        "fields": {
            "keys": "distinct keys a hash: table sees, in order (lower-cased), found by "
                    "removing the key Postfix found first and asking again; keys that a "
                    "postmap source cannot hold (white space outside quotes) are "
                    "missing here but present in trace",
            "full_keys": "keys a pcre: table sees (FULL lookups only), exact case",
            "resolved": "address checks: the address as smtpd's resolver returned it "
                        "(internal form, lower case), i.e. the last of full_keys",
            "trace": "every lookup of a proxy:hash: table (proxymap -v) when nothing is "
                     "found, duplicates and empty keys included",
            "refused": "smtpd refused the input before any access check ran",
        },
        "cases": cases,
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="re-record and compare with the files; exit 1 on difference")
    ap.add_argument("--out", default=GOLDEN_DIR, help="golden directory (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the Postfix instance root")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not postfix_available():
        print("record_access_golden: real Postfix (and root) needed", file=sys.stderr)
        return 2
    t0 = time.time()
    topics = record(verbose=args.verbose, keep=args.keep)
    version = mail_version()
    today = datetime.date.today().isoformat()
    status = 0
    os.makedirs(args.out, exist_ok=True)
    for topic, cases in topics.items():
        path = os.path.join(args.out, f"{topic}.json")
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        date = today
        if old and old.get("cases") == cases and old.get("format") == FORMAT:
            m = re.search(r" on (\d{4}-\d\d-\d\d)\.", old.get("provenance", ""))
            date = m.group(1) if m else today
        new = golden_document(topic, cases, date, version)
        new_text = dumps(new)
        old_text = dumps(old) if old is not None else ""
        if args.check:
            if old is None or old.get("cases") != cases:
                status = 1
                sys.stdout.writelines(difflib.unified_diff(
                    old_text.splitlines(True), new_text.splitlines(True),
                    f"{path} (file)", f"{path} (Postfix now)"))
        elif new_text != old_text:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(new_text)
            os.replace(path + ".tmp", path)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    print(f"record_access_golden: {sum(len(c) for c in topics.values())} cases, "
          f"{'differences found' if status else 'ok'} ({time.time() - t0:.1f}s)",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
