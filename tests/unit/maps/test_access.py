"""postier.maps.access against the search orders recorded from real Postfix.

The goldens (tests/golden/access/*.json) were recorded by
tools/record_access_golden.py from Postfix 3.7.11.  Each case gives, for one
check and one input: `trace` (every lookup Postfix made in a fixed table,
from proxymap -v), `keys` (the distinct keys a hash table sees, found by
removing the key Postfix found first), and `full_keys` (what a pcre table
sees: the FULL lookups only, exact case).  postier's key list must equal
all three exactly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from postier.maps import access as acc
from postier.maps.access import (
    Lookup,
    SearchSettings,
    address_keys,
    address_lookups,
    client_keys,
    client_lookups,
    domain_keys,
    first_match,
    helo_keys,
    ip_keys,
    normalize_addr,
    quote_822_local,
    strip_extension,
)

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "access"
TOPICS = {"address", "address_extension", "address_multi_delimiter", "address_dot_style",
          "null_sender", "resolver", "helo", "helo_dot_style", "client", "client_dot_style"}


def _docs() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(GOLDEN.glob("*.json"))]


DOCS = _docs()
CASES = [(d["topic"], c) for d in DOCS for c in d["cases"]]
RECORDED = [(t, c) for t, c in CASES if "refused" not in c]


def _canonical(address: str) -> str:
    """What postier itself does to an address before the search."""
    local, at, domain = address.lower().rpartition("@")
    return f"{local}{at}{domain.rstrip('.')}" if at else address.lower()


def _lookups_for(topic: str, case: dict) -> list[Lookup]:
    settings = SearchSettings.from_main_cf(case["params"])
    state = case["state"]
    if case["check"] in ("sender", "recipient"):
        address = state["address"]
        if address and _canonical(address) != case["resolved"]:
            # trivial-rewrite's job (myorigin, source route, %-hack, bang path):
            # search with the address as Postfix resolved it
            assert topic == "resolver", case["id"]
            address = case["resolved"]
        return settings.sender(address)
    if case["check"] == "helo":
        return settings.helo(state["helo"])
    return settings.client(state["name"], state["addr"])


def _representable(key: str) -> bool:
    """Can a postmap source line hold this key (balanced quotes, no white
    space outside them)?"""
    return key.count('"') % 2 == 0 and not re.search(r"\s", re.sub(r'"[^"]*"', "", key))


# ---------------------------------------------------------------------------
# The golden files themselves


def test_golden_files_cover_every_topic_with_provenance():
    assert {d["topic"] for d in DOCS} == TOPICS
    for d in DOCS:
        assert d["format"] == "postier/access-golden/1"
        assert re.search(r"real Postfix 3\.7\.\d+ .*tools/record_access_golden\.py on "
                         r"\d{4}-\d\d-\d\d", d["provenance"]), d["provenance"]
        for c in d["cases"]:
            assert ("refused" in c) != ("keys" in c), c["id"]
    assert len(RECORDED) >= 100


def test_golden_refusals_are_smtp_syntax_errors():
    """Inputs smtpd itself refuses never reach the access check (documented
    here for the SMTP server: numeric domain without [], leading '-')."""
    refused = {c["id"]: c["refused"] for _, c in CASES if "refused" in c}
    assert refused, "expected some refused inputs in the goldens"
    for cid, reply in refused.items():
        assert re.match(r"501 5\.1\.[37] Bad (sender|recipient) address syntax$", reply), cid


def test_resolver_cases_need_trivial_rewrite():
    """These inputs only give Postfix's keys after trivial-rewrite; postier's
    search takes the resolved address (recorded as `resolved`)."""
    need = {c["smtp"]: c["resolved"] for t, c in RECORDED
            if c["check"] == "sender" and c["smtp"]
            and _canonical(c["state"]["address"]) != c["resolved"]}
    assert need == {
        "dave": "dave@example.test",
        "dave+ext": "dave+ext@example.test",
        "@hop.example.net:kim@routed.example.org": "kim@routed.example.org",
        "judy%relay.example.net@example.test": "judy@relay.example.net",
        "relay.example.net!kim": "kim@relay.example.net",
    }


# ---------------------------------------------------------------------------
# postier's search order == Postfix's, case by case


@pytest.mark.parametrize("topic,case", RECORDED, ids=[c["id"] for _, c in RECORDED])
def test_search_order_matches_postfix(topic, case):
    lookups = _lookups_for(topic, case)
    ours = list(dict.fromkeys(lk.key.lower() for lk in lookups))
    # every lookup a fixed table saw (proxymap trace), duplicates folded
    assert ours == list(dict.fromkeys(k.lower() for k in case["trace"]))
    # the removal-method order of a real hash table
    assert [k for k in ours if _representable(k)] == case["keys"]
    # what a pattern table sees: FULL lookups only, exact case
    assert [lk.key for lk in lookups if not lk.partial] == case["full_keys"]


@pytest.mark.parametrize("topic,case", RECORDED, ids=[c["id"] for _, c in RECORDED])
def test_first_match_walks_the_recorded_order(topic, case):
    """With a table holding keys[i:], Postfix found keys[i]; so must we."""
    lookups = _lookups_for(topic, case)
    keys = case["keys"]
    for i, key in enumerate(keys):
        table = DictTable({k: f"REJECT {k}" for k in keys[i:]})
        assert first_match(table, lookups) == (_original_case(lookups, key), f"REJECT {key}")
    assert first_match(DictTable({}), lookups) is None


def _original_case(lookups: list[Lookup], folded: str) -> str:
    return next(lk.key for lk in lookups if lk.key.lower() == folded)


@pytest.mark.parametrize("topic,case", RECORDED, ids=[c["id"] for _, c in RECORDED])
def test_pattern_table_sees_only_full_keys(topic, case):
    lookups = _lookups_for(topic, case)
    everything = PatternTable(lambda k: "REJECT")
    assert first_match(everything, lookups) == (case["full_keys"][0], "REJECT")
    only_partial = PatternTable(lambda k: None if k in case["full_keys"] else "REJECT")
    assert first_match(only_partial, lookups) is None


CLIENTS = [(t, c) for t, c in RECORDED
           if c["check"] == "client" and not c["smtp"]["ADDR"].startswith("[")]


@pytest.mark.parametrize("topic,case", CLIENTS, ids=[c["id"] for _, c in CLIENTS])
def test_client_address_as_sent_in_xclient_is_normalized(topic, case):
    """XCLIENT ADDR=IPV6:2001:DB8:0:0:1:0:0:7 is searched as 2001:db8::1:0:0:7."""
    raw = re.sub(r"(?i)^ipv6:", "", case["smtp"]["ADDR"])
    pdms = SearchSettings.from_main_cf(case["params"]).parent_matches_subdomains
    keys = client_keys(case["state"]["name"], raw, parent_matches_subdomains=pdms)
    assert [k.lower() for k in keys] == case["keys"]


# ---------------------------------------------------------------------------
# first_match with dict-backed tables


class DictTable:
    """A fixed-string table that folds keys like hash: and records lookups."""

    def __init__(self, entries: dict[str, str]):
        self.entries = {k.lower(): v for k, v in entries.items()}
        self.asked: list[str] = []

    def lookup(self, key: str) -> str | None:
        self.asked.append(key)
        return self.entries.get(key.lower())


class PatternTable:
    type = "regexp"

    def __init__(self, fn):
        self.fn = fn
        self.asked: list[str] = []

    def lookup(self, key: str) -> str | None:
        self.asked.append(key)
        return self.fn(key)


def test_dunno_found_on_a_specific_key_stops_the_search():
    table = DictTable({"bob@example.org": "DUNNO", "example.org": "REJECT spam domain"})
    found = first_match(table, address_lookups("bob+x@example.org", delimiters="+"))
    assert found == ("bob@example.org", "DUNNO")
    assert table.asked == ["bob+x@example.org", "bob@example.org"]


def test_domain_is_tried_before_user_at():
    table = DictTable({"bob@": "OK", "org": "REJECT"})
    assert first_match(table, address_lookups("bob@mail.example.org")) == ("org", "REJECT")


def test_nothing_found_asks_every_key_once():
    table = DictTable({})
    lookups = address_lookups("bob+x@mail.example.org", delimiters="+")
    assert first_match(table, lookups) is None
    assert table.asked == ["bob+x@mail.example.org", "bob@mail.example.org",
                           "mail.example.org", "example.org", "org", "bob+x@", "bob@"]


def test_pattern_table_is_never_asked_partial_keys():
    table = PatternTable(lambda k: "REJECT" if k == "example.org" else None)
    assert first_match(table, address_lookups("bob@example.org")) is None
    assert table.asked == ["bob@example.org"]
    # the same keys on a fixed table find the domain
    assert first_match(DictTable({"example.org": "REJECT"}),
                       address_lookups("bob@example.org")) == ("example.org", "REJECT")


def test_fixed_flag_overrides_table_type_and_plain_strings_are_always_asked():
    table = PatternTable(lambda k: "OK" if k == "org" else None)
    lookups = domain_keys("mail.example.org")   # plain strings: no partial flag
    assert first_match(table, lookups) == ("org", "OK")
    assert first_match(table, acc.domain_lookups("mail.example.org")) is None
    assert first_match(table, acc.domain_lookups("mail.example.org"), fixed=True) == ("org", "OK")


def test_parent_domain_style():
    parent = address_lookups("bob@sub.example.org")
    dots = address_lookups("bob@sub.example.org", parent_matches_subdomains=False)
    bare_parent = DictTable({"example.org": "REJECT"})
    dot_parent = DictTable({".example.org": "REJECT"})
    assert first_match(bare_parent, parent) == ("example.org", "REJECT")
    assert first_match(dot_parent, parent) is None
    assert first_match(bare_parent, dots) is None
    assert first_match(dot_parent, dots) == (".example.org", "REJECT")
    # the name itself always matches without a dot
    assert first_match(DictTable({"sub.example.org": "OK"}), dots) == ("sub.example.org", "OK")


def test_client_name_unknown_is_a_key_before_the_address():
    table = DictTable({"unknown": "REJECT no rDNS", "192.0.2": "OK"})
    assert first_match(table, client_lookups("unknown", "192.0.2.7")) == \
        ("unknown", "REJECT no rDNS")
    assert first_match(table, client_lookups("mx.example.org", "192.0.2.7")) == ("192.0.2", "OK")


def test_client_name_wins_over_a_more_specific_address():
    table = DictTable({"example.org": "REJECT", "192.0.2.7": "OK"})
    assert first_match(table, client_lookups("mx.example.org", "192.0.2.7")) == \
        ("example.org", "REJECT")


def test_partial_key_repeated_as_full_key_is_kept_for_pattern_tables():
    """A name like host.192.0.2.1 yields 192.0.2.1 as a PARTIAL parent key;
    the client address repeats it as a FULL key, which a cidr-like pattern
    table must still see."""
    lookups = client_lookups("host.192.0.2.1", "192.0.2.1")
    assert [lk for lk in lookups if lk.key == "192.0.2.1"] == [Lookup("192.0.2.1", True),
                                                              Lookup("192.0.2.1", False)]
    assert client_keys("host.192.0.2.1", "192.0.2.1").count("192.0.2.1") == 1
    table = PatternTable(lambda k: "REJECT" if k == "192.0.2.1" else None)
    assert first_match(table, lookups) == ("192.0.2.1", "REJECT")
    assert table.asked == ["host.192.0.2.1", "192.0.2.1"]


def test_real_table_types_are_classified(tmp_path):
    maps = pytest.importorskip("postier.maps")
    (tmp_path / "c.cidr").write_text("192.0.2.0/24 REJECT\n")
    (tmp_path / "r.regexp").write_text("/^org$/ REJECT\n")
    (tmp_path / "t.txt").write_text("org REJECT\n")
    specs = {f"cidr:{tmp_path}/c.cidr": True, f"regexp:{tmp_path}/r.regexp": True,
             f"pcre:{tmp_path}/r.regexp": True, f"texthash:{tmp_path}/t.txt": False,
             "inline:{org=REJECT}": False, "static:REJECT": False}
    for spec, pattern in specs.items():
        table = maps.open_map(spec, cache=False)
        assert acc.is_pattern_table(table) is pattern, spec
    # a cidr table answers the client address, not the name or its parents
    cidr = maps.open_map(f"cidr:{tmp_path}/c.cidr", cache=False)
    assert first_match(cidr, client_lookups("unknown", "192.0.2.9")) == ("192.0.2.9", "REJECT")
    regexp = maps.open_map(f"regexp:{tmp_path}/r.regexp", cache=False)
    assert first_match(regexp, address_lookups("bob@example.org")) is None
    texthash = maps.open_map(f"texthash:{tmp_path}/t.txt", cache=False)
    assert first_match(texthash, address_lookups("bob@example.org")) == ("org", "REJECT")


# ---------------------------------------------------------------------------
# Settings and helpers


def test_settings_from_main_cf():
    assert SearchSettings.from_main_cf({}) == SearchSettings()
    s = SearchSettings.from_main_cf({
        "recipient_delimiter": "+-",
        "parent_domain_matches_subdomains": "debug_peer_list, relay_domains\n mynetworks",
        "smtpd_null_access_lookup_key": "MAILER-DAEMON",
        "double_bounce_sender": "bounce-me",
    })
    assert s == SearchSettings("+-", False, "MAILER-DAEMON", "bounce-me")
    assert s.sender("") == [Lookup("MAILER-DAEMON", False)]
    assert s.recipient("x-y@a.b") == s.sender("x-y@a.b")
    assert [lk.key for lk in s.sender("x-y@a.b")] == ["x-y@a.b", "x@a.b", "a.b", ".b", "x-y@", "x@"]
    assert acc.parent_style("relay_domains,SMTPD_ACCESS_MAPS")
    assert not acc.parent_style("smtpd_access_maps_x relay_domains")


@pytest.mark.parametrize("internal,external", [
    ("plain.name@x.test", "plain.name@x.test"),
    ("john..doe@x.test", '"john..doe"@x.test'),
    ("a b@x.test", '"a b"@x.test'),
    ('a"b@x.test', '"a\\"b"@x.test'),
    ("a@b@x.test", '"a@b"@x.test'),
    (".lead@x.test", '".lead"@x.test'),
    ("trail.@x.test", '"trail."@x.test'),
    ("john..doe@", '"john..doe"@'),
    ("@x.test", '""@x.test'),
    ("@hop:j..d@x.test", '@hop:"j..d"@x.test'),
    ("no.domain..", '"no.domain.."'),
    ("ünï@x.test", "ünï@x.test"),
])
def test_quote_822_local(internal, external):
    assert quote_822_local(internal) == external


@pytest.mark.parametrize("address,delims,expected", [
    ("a+b+c@x", "+", "a@x"),
    ("a-b+c@x", "+-", "a@x"),
    ("a+b@x+y", "+", "a@x+y"),
    ("a@x+y", "+", None),
    ("+a@x", "+", None),
    ("a+@x", "+", "a@x"),
    ("postmaster@x", "st", None),
    ("postmaster+1@x", "+", "postmaster@x"),
    ("mailer-daemon@x", "-", None),
    ("double-bounce@x", "-", None),
    ("owner-list@x", "-", None),
    ("owner+list@x", "+-", "owner@x"),
    ("list-request@x", "-", None),
    ("-request@x", "-", None),
    ("list-request@x", "+", None),
    ("noext", "+", None),
    ("user+ext", "+", "user"),
    ("user+ext@x", "", None),
])
def test_strip_extension(address, delims, expected):
    assert strip_extension(address, delims) == expected


def test_strip_extension_custom_double_bounce():
    assert strip_extension("bounce-me@x", "-", "bounce-me") is None
    assert strip_extension("double-bounce@x", "-", "bounce-me") == "double@x"


@pytest.mark.parametrize("name,expected", [
    ("192.0.2.1", ["192.0.2.1"]),
    ("01.2.3.4", ["01.2.3.4"]),
    ("0.1.2.3", ["0.1.2.3", "1.2.3", "2.3", "3"]),
    ("0.0.0.0", ["0.0.0.0"]),
    ("256.1.1.1", ["256.1.1.1", "1.1.1", "1.1", "1"]),
    ("::ffff:192.0.2.9", ["::ffff:192.0.2.9"]),
    ("1:2::3.4", ["1:2::3.4", "4"]),
    ("[192.0.2.1]", ["[192.0.2.1]", "0.2.1]", "2.1]", "1]"]),
])
def test_numeric_names_have_no_parent_search(name, expected):
    assert helo_keys(name) == expected


def test_inet_ntop_matches_the_c_library():
    """Postfix prints client addresses with inet_ntop(); Python's socket
    module calls the same C library function."""
    rng = random.Random(20241128)
    samples = ["::", "::1", "::2:3", "1::", "1:0:0:2:0:0:0:3", "1:0:0:2:0:0:3:4",
               "1:0:2:3:4:5:6:7", "0:0:1::", "::1.2.3.4", "::0.0.1.0", "::ffff:0:1.2.3.4",
               "64:ff9b::1.2.3.4", "fe80::1", "2001:db8:0:0:1:0:0:7"]
    for _ in range(2000):
        words = [rng.choice([0, 0, 0, 1, 0xffff, rng.randrange(65536)]) for _ in range(8)]
        samples.append(":".join(f"{w:x}" for w in words))
    for text in samples:
        ip = ipaddress.IPv6Address(text)
        expected = (str(ip.ipv4_mapped) if ip.ipv4_mapped
                    else socket.inet_ntop(socket.AF_INET6, ip.packed))
        assert normalize_addr(text) == expected, text


def test_normalize_addr():
    assert normalize_addr("203.0.113.5") == "203.0.113.5"
    assert normalize_addr("::FFFF:203.0.113.5") == "203.0.113.5"
    assert normalize_addr("2001:DB8::A") == "2001:db8::a"
    assert normalize_addr("unknown") == "unknown"
    assert normalize_addr("01.2.3.4") == "01.2.3.4"


# ---------------------------------------------------------------------------
# Bad input: a sensible list or an empty one, never an exception

BAD_ADDRESSES = ["", "@", "@@", "user@", "@example.org", "user", '"', '""@x', "a@b@c",
                 "user@.", "user@..", "user@...example.org..", "\x00@x", "ü@exämple.org",
                 "   ", "<>", "user@[", "user@[]", "x" * 5000 + "@" + "y." * 500 + "z",
                 "@a,@b:c@d", "@route-without-colon", "a+b", "+", "+@+"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("delims", ["", "+", "+-", "@."])
def test_bad_addresses_never_raise(address, delims):
    for pdms in (True, False):
        lookups = address_lookups(address, delimiters=delims, parent_matches_subdomains=pdms)
        assert all(isinstance(lk.key, str) and lk.key for lk in lookups)
        assert len({lk.key for lk in lookups}) == len(lookups)
        assert address_keys(address, delimiters=delims) == [lk.key for lk in
                                                            address_lookups(address,
                                                                            delimiters=delims)]


def test_bad_addresses_give_sensible_keys():
    assert address_keys("") == ["<>"]
    assert address_keys("", null_key="") == []
    assert address_keys("user") == []                 # unqualified: resolve first
    assert address_keys("user@") == ["user@"]
    assert address_keys("@") == ['""@', "@"]
    assert address_keys("user@example.org.") == address_keys("user@example.org")
    assert address_keys("USER@Example.ORG") == ["user@example.org", "example.org", "org",
                                                "user@"]


BAD_IPS = ["", "garbage", "999.1.1.1", "1.2.3", "1.2.3.4.", "2001:db8:::1", ":::", "::",
           ":", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "[2001:db8::1]", "IPv6:2001:db8::1",
           "unknown", "...", "1..2", "\x00", "12345678901234567890"]


@pytest.mark.parametrize("addr", BAD_IPS)
def test_bad_client_addresses_never_raise(addr):
    for name in ("unknown", "", ".", "..", "a..b", "[", "x" * 300):
        keys = client_keys(name, addr)
        assert all(isinstance(k, str) and k for k in keys)
        assert len(set(keys)) == len(keys)
        assert keys[:1] == ([name] if name else keys[:1])


def test_bad_client_addresses_give_sensible_keys():
    assert ip_keys("") == []
    assert ip_keys("garbage") == ["garbage"]
    assert ip_keys("::") == ["::", ":"]
    assert ip_keys("1.2.3") == ["1.2.3", "1.2", "1"]
    assert ip_keys("...") == ["...", "..", "."]
    assert client_keys("unknown", "unknown") == ["unknown"]
    assert domain_keys("") == []
    assert domain_keys(".") == ["."]
    assert domain_keys("..", parent_matches_subdomains=False) == ["..", "."]


# ---------------------------------------------------------------------------
# The recorder still agrees with real Postfix


def _postfix_usable() -> bool:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from postfix_instance import postfix_available
    finally:
        sys.path.pop(0)
    return postfix_available()


@pytest.mark.slow
@pytest.mark.postfix
@pytest.mark.skipif(os.name != "posix" or not _postfix_usable(),
                    reason="needs real Postfix and root (private master(8) instance)")
def test_recorder_check_against_real_postfix():
    """Re-record every case from a private Postfix instance and diff (~20 s)."""
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "record_access_golden.py"),
                        "--check"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-3000:]
