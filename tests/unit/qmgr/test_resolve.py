"""postier.delivery.resolve against real Postfix's trivial-rewrite.

resolve_postfix.json was recorded by record_resolve.py from Postfix 3.7.11
(the answers its queue manager gets over private/rewrite).  Every query is
replayed here with the same main.cf and the same table files.  For results
Postfix flags as ERROR (bad address syntax) the transport fields are
meaningless ("CHANNEL NOT UPDATED") and only the flags are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from postier.config import Config
from postier.delivery import resolve as R
from postier.maps import clear_cache

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = json.load(open(os.path.join(HERE, "resolve_postfix.json"), encoding="utf-8"))
COMPARED_FLAGS = (R.FLAG_ROUTED | R.FLAG_ERROR | R.FLAG_FAIL | R.CLASS_MASK)


def _resolver(case: dict, tmp_path) -> R.TransportResolver:
    tables = tmp_path / "tables"
    tables.mkdir(exist_ok=True)
    for name, (_ttype, text) in case["tables"].items():
        (tables / name).write_text(text)
    cf = dict(DATA["base_main_cf"])
    cf.update(case["main_cf"])
    text = "".join(f"{k} = {v.replace('@TABLES@', str(tables))}\n" for k, v in cf.items())
    clear_cache()
    return R.TransportResolver(Config.from_text(text, str(tmp_path / "main.cf")))


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_resolve_matches_postfix(case, tmp_path):
    r = _resolver(case, tmp_path)
    bad = []
    for q in case["queries"]:
        route = r.resolve(q["address"], q["sender"])
        want_flags = q["flags"] & COMPARED_FLAGS
        got_flags = route.flags & COMPARED_FLAGS
        if q["flags"] & R.FLAG_ERROR:
            ok = got_flags == want_flags
        else:
            ok = (got_flags == want_flags and route.transport == q["transport"]
                  and route.nexthop == q["nexthop"] and route.recipient == q["recipient"])
        if not ok:
            bad.append(f"{q['sender']!r} {q['address']!r}: postfix {q['transport']} "
                       f"{q['nexthop']!r} {q['recipient']!r} {q['flags']}; postier "
                       f"{route.transport} {route.nexthop!r} {route.recipient!r} {route.flags}")
    assert not bad, "\n".join(bad)


def test_transport_maps_failure_defers(tmp_path):
    """A table that cannot be opened: FAIL, 4.3.0 address resolver failure."""
    cfg = Config.from_text(f"myhostname = mx.example.test\ninet_interfaces = 127.0.0.1\n"
                           f"transport_maps = texthash:{tmp_path}/missing\n")
    route = R.TransportResolver(cfg).resolve("user@remote.test")
    assert route.fail and route.transport == "retry"
    assert route.nexthop == "4.3.0 address resolver failure"


def test_update_entry_semantics():
    up = R.TransportResolver._update
    assert up(":", "d.test", "smtp", "[relay]") == ("smtp", "[relay]")
    assert up(":[gw]", "d.test", "smtp", "[relay]") == ("smtp", "[gw]")
    assert up("slow:", "d.test", "smtp", "[relay]") == ("slow", "d.test")
    assert up("slow", "d.test", "smtp", "[relay]") == ("slow", "d.test")
    assert up("error:", "d.test", "smtp", "[relay]") == ("error", "Address is undeliverable")
    assert up("error:5.1.1 gone", "d.test", "smtp", "x") == ("error", "5.1.1 gone")


@pytest.mark.slow
@pytest.mark.postfix
def test_recording_is_current():
    """Re-ask real Postfix: the recorded answers have not changed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a private Postfix")
    p = subprocess.run([sys.executable, os.path.join(HERE, "record_resolve.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
