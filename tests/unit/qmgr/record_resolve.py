#!/usr/bin/env python3
"""Record real Postfix's address resolution (trivial-rewrite) into resolve_postfix.json.

    .venv/bin/python tests/unit/qmgr/record_resolve.py            # rewrite the JSON
    .venv/bin/python tests/unit/qmgr/record_resolve.py --check    # compare, exit 1 on change

Needs root and the Debian `postfix` package; about 20 s.  For each case a
private Postfix instance (tools/postfix_instance.py: 127.0.0.1 only, no qmgr,
no delivery agents) is started with the case's main.cf and tables, and every
query is sent to its trivial-rewrite(8) over the `private/rewrite` socket
with Postfix's own attribute protocol (attr_print0): `request=resolve,
sender=S, address=A`; the answer is `flags, transport, nexthop, recipient,
flags` (the second flags value is the resolve result: RESOLVE_FLAG_* |
RESOLVE_CLASS_*).  This is exactly what qmgr(8) asks, so the recording is
the oracle for postier.delivery.resolve; test_resolve.py replays it.

Tables are texthash/regexp/pcre/inline so that postier reads the very same
files (Postfix's hash: is Berkeley DB, postier's is its own format).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from postfix_instance import BASE_MAIN_CF, PostfixInstance  # noqa: E402

OUT = os.path.join(HERE, "resolve_postfix.json")

#: What every case starts from: the harness base, with real transports.
BASE = dict(BASE_MAIN_CF)
BASE.update({"default_transport": "smtp", "relay_transport": "relay",
             "local_transport": "local:$myhostname", "virtual_transport": "virtual",
             "inet_interfaces": "127.0.0.1"})

COMMON = ["user@example.com", "User@Remote.Example", "user", "user@mx.example.test",
          "user@localhost", "user@example.test", "user@[127.0.0.1]", "user@[10.9.9.9]",
          "user@10.9.9.9", "a%b@localhost", "a%b@remote.test", "b!a@localhost",
          "\"a@b\"@localhost", "user@bad..dom", "user@remote.test.", "-user@remote.test",
          "MAILER-DAEMON", "postmaster", "", "user@sub.foo.test", "user+ext@foo.test",
          "x@a.b.foo.test", "user@relay.test", "user@sub.relay.test", "u@virt.test",
          "u@valias.test", "x@[IPv6:::1]", "x@\u00e9x.test"]

CASES = [
    {"name": "defaults", "main_cf": {}},
    {"name": "relayhost_relay_domains",
     "main_cf": {"relayhost": "[127.0.0.1]:2525", "relay_domains": "relay.test"}},
    {"name": "relay_domains_dot_style",
     "main_cf": {"relay_domains": "relay.test",
                 "parent_domain_matches_subdomains": "debug_peer_list"}},
    {"name": "transport_maps_texthash",
     "main_cf": {"transport_maps": "texthash:@TABLES@/transport",
                 "recipient_delimiter": "+", "relayhost": "relay.example:25"},
     "tables": {"transport": ("texthash",
                              "user+ext@foo.test\tsmtp:[ext.example]\n"
                              "user@foo.test\tlmtp:unix:/run/lmtp\n"
                              "foo.test\t:[gw.example]\n"
                              ".foo.test\tslow:\n"
                              "x@a.b.foo.test\terror:\n"
                              "relay.test\t:\n"
                              "remote.test\terror:5.7.1 go away\n"
                              "example.com\tdiscard:silently\n"
                              "mx.example.test\tsmtp\n"
                              "*\tsmtp:[wild.example]:26\n")}},
    {"name": "transport_maps_parent_style",
     "main_cf": {"transport_maps": "texthash:@TABLES@/transport",
                 "parent_domain_matches_subdomains": "transport_maps, relay_domains"},
     "tables": {"transport": ("texthash",
                              "foo.test\tfast:[gw.example]\n"
                              "test\tcatch:\n")}},
    {"name": "transport_maps_regexp_full_only",
     "main_cf": {"transport_maps": "regexp:@TABLES@/transport, inline:{ {*=wild:} }",
                 "recipient_delimiter": "+"},
     "tables": {"transport": ("regexp",
                              "/^user\\+ext@foo\\.test$/\tsmtp:[re.example]\n"
                              "/^foo\\.test$/\tnever:[domainkey]\n"
                              "/@remote\\.test$/\tre:\n")}},
    {"name": "virtual_domains",
     "main_cf": {"virtual_alias_domains": "valias.test",
                 "virtual_mailbox_domains": "texthash:@TABLES@/vdomains",
                 "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
                 "transport_maps": "inline:{valias.test=smtp:, virt.test=virtual:}"},
     "tables": {"vdomains": ("texthash", "virt.test\tOK\n")}},
    {"name": "virtual_alias_no_table_name",
     "main_cf": {"virtual_alias_domains": "valias.test",
                 "show_user_unknown_table_name": "no"}},
    {"name": "class_transports_with_nexthop",
     "main_cf": {"local_transport": "local", "relay_transport": "relay:[relay.example]:587",
                 "default_transport": "error:outbound mail disabled",
                 "relay_domains": "relay.test", "relayhost": "[ignored.example]"}},
    {"name": "relocated",
     "main_cf": {"relocated_maps": "texthash:@TABLES@/relocated"},
     "tables": {"relocated": ("texthash",
                              "user@example.com\tuser@new.example\n"
                              "postmaster\tpm@new.example\n"
                              "@remote.test\tremote.example\n")}},
    {"name": "routing_switches",
     "main_cf": {"allow_percent_hack": "no", "swap_bangpath": "no",
                 "resolve_numeric_domain": "yes", "allow_min_user": "yes"}},
    {"name": "sender_dependent",
     "main_cf": {"sender_dependent_relayhost_maps": "texthash:@TABLES@/sdrelay",
                 "sender_dependent_default_transport_maps": "texthash:@TABLES@/sdxport",
                 "relayhost": "[default-relay.example]", "relay_domains": "relay.test"},
     "tables": {"sdrelay": ("texthash", "a@snd.test\t[a-relay.example]\n"
                                        "@snd.test\tDUNNO\n"
                                        "<>\t[null-relay.example]\n"),
                "sdxport": ("texthash", "a@snd.test\tsmtpa\n"
                                        "b@snd.test\tDUNNO\n"
                                        "<>\tbounces:[null-x.example]\n")},
     "senders": ["", "a@snd.test", "b@snd.test", "c@other.test"]},
]


def attr0(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(k.encode() + b"\0" + v.encode("utf-8", "surrogateescape") + b"\0"
                    for k, v in pairs) + b"\0"


def read_attrs(f) -> list[tuple[str, str]]:
    out = []
    while True:
        name = b""
        while True:
            c = f.read(1)
            if not c:
                raise EOFError("rewrite service closed the connection")
            if c == b"\0":
                break
            name += c
        if not name:
            return out
        value = b""
        while True:
            c = f.read(1)
            if c == b"\0":
                break
            value += c
        out.append((name.decode(), value.decode("utf-8", "surrogateescape")))


def query(pf: PostfixInstance, sender: str, address: str) -> dict:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(os.path.join(pf.queue, "private", "rewrite"))
    f = s.makefile("rb")
    try:
        hello = read_attrs(f)
        assert hello == [("protocol", "trivial_rewrite_protocol")], hello
        s.sendall(attr0([("request", "resolve"), ("sender", sender), ("address", address)]))
        reply = read_attrs(f)
    finally:
        f.close()
        s.close()
    names = [k for k, _ in reply]
    assert names == ["flags", "transport", "nexthop", "recipient", "flags"], reply
    return {"sender": sender, "address": address, "transport": reply[1][1],
            "nexthop": reply[2][1], "recipient": reply[3][1], "flags": int(reply[4][1])}


def record() -> dict:
    out = {"format": "postier/resolve/1",
           "provenance": "Postfix 3.7.11 trivial-rewrite, recorded by record_resolve.py",
           "base_main_cf": BASE, "cases": []}
    with PostfixInstance() as pf:
        for case in CASES:
            cf = dict(BASE)
            cf.update(case["main_cf"])
            tables = {k: tuple(v) for k, v in case.get("tables", {}).items()}
            if pf.master is not None:
                pf.stop()
            pf.write_config(cf, tables)
            pf.start()
            queries = []
            for sender in case.get("senders", ["user@sender.test"]):
                for addr in COMMON:
                    queries.append(query(pf, sender, addr))
            out["cases"].append({"name": case["name"], "main_cf": case["main_cf"],
                                 "tables": {k: list(v) for k, v in tables.items()},
                                 "queries": queries})
            print(f"{case['name']}: {len(queries)} queries", file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    data = record()
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            old = f.read()
        if old != text:
            print("resolve_postfix.json differs from a fresh recording", file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
