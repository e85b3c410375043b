"""Fixtures for the content-scan integration tests (see content_peers.py).

`clamd`: a private real clamd (module scope) with the self-made EICAR
database; the tests are skipped when clamd is not installed
(tools/setup.sh --test installs clamav-daemon).  `start_clamd(**kw)`: more
clamd instances (another StreamMaxLength, one to stop), stopped at
teardown.  `start_postier(overrides)`: `postier run` on a private root
(tests/integration/smtpd/smtpd_peers.py), with ROOT/quarantine made
writable by $mail_owner (smtpd workers run as that account).
"""

from __future__ import annotations

import pytest
from content_peers import ClamdServer, PostierServer, clamd_available, prepare_quarantine


@pytest.fixture(scope="module")
def clamd():
    if not clamd_available():
        pytest.skip("clamd not installed (tools/setup.sh --test)")
    srv = ClamdServer()
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def start_clamd():
    if not clamd_available():
        pytest.skip("clamd not installed (tools/setup.sh --test)")
    started: list[ClamdServer] = []

    def start(**kw) -> ClamdServer:
        srv = ClamdServer(**kw)
        started.append(srv)
        srv.start()
        return srv

    yield start
    for srv in started:
        srv.cleanup()


@pytest.fixture
def start_postier():
    started: list[PostierServer] = []

    def start(overrides=(), tables=None, **kw) -> PostierServer:
        srv = PostierServer(overrides, tables, **kw)
        started.append(srv)
        prepare_quarantine(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.cleanup()
