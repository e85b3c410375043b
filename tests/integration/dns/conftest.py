"""Fixtures for the DNS integration tests.

`dns_server`: (module scope) a real nsd (tools/nsd_server.py) serving
dns_scenarios.ZONES on 127.0.0.1:<free port>, behind a SplitProxy whose
DROP names never get an answer; yields (nsd, proxy).  Skips when nsd is
not installed.  `postier_dns(overrides, tables)`: a started `postier run`
(tests/integration/smtpd/smtpd_peers.PostierServer) whose dns_nameservers
is the proxy, with 1 s DNS timeouts; stopped by PID at teardown.
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
for _p in (os.path.join(ROOT, "tests", "integration", "smtpd"), HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import dns_scenarios as S  # noqa: E402
from dnstools import NsdServer, SplitProxy, nsd_available  # noqa: E402


@pytest.fixture(scope="module")
def dns_server():
    if not nsd_available():
        pytest.skip("nsd not installed (tools/setup.sh --test)")
    with NsdServer(S.ZONES) as nsd, SplitProxy(nsd.port, S.DROP) as proxy:
        yield nsd, proxy


def dns_overrides(proxy) -> dict[str, str]:
    return {"dns_nameservers": proxy.address, "dns_timeout": f"{S.TIMEOUT}s", "dns_tries": "1"}


@pytest.fixture
def postier_dns(dns_server):
    from smtpd_peers import PostierServer
    started: list = []
    _nsd, proxy = dns_server

    def start(overrides=(), tables=None, **kw):
        srv = PostierServer({**dict(overrides), **dns_overrides(proxy)}, tables, **kw)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.cleanup()
