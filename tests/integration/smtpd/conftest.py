"""Fixtures for the smtpd integration tests (see smtpd_peers.py).

`start_postier(overrides, tables=None, pure=False)`: a started PostierServer
on a free loopback port; every server a test started is stopped by PID at
teardown.  `start_postfix(overrides, tables=None)`: the same for a private
real Postfix (tools/postfix_instance.py); skips the test when Postfix is not
installed or we are not root.  `tls_cert`: (cert, key) PEM paths of a fresh
self-signed certificate (tools/testcert.py, openssl CLI), made once per
session.  `swaks`: path of swaks, or the test is skipped.
"""

from __future__ import annotations

import shutil

import pytest
from smtpd_peers import PostfixServer, PostierServer, postfix_available


@pytest.fixture
def start_postier():
    started: list[PostierServer] = []

    def start(overrides=(), tables=None, **kw) -> PostierServer:
        srv = PostierServer(overrides, tables, **kw)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.cleanup()


@pytest.fixture
def start_postfix():
    if not postfix_available():
        pytest.skip("real Postfix not installed or not root (tools/setup.sh --test)")
    started: list[PostfixServer] = []

    def start(overrides=(), tables=None, **kw) -> PostfixServer:
        srv = PostfixServer(overrides, tables, **kw)
        started.append(srv)
        srv.start()
        return srv

    yield start
    for srv in started:
        srv.cleanup()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    from testcert import make_cert, openssl_available  # tools/ (smtpd_peers adds it)
    if not openssl_available():
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("tls")
    d.chmod(0o755)
    return make_cert(str(d), "mx.example.test")


@pytest.fixture(scope="session")
def swaks():
    path = shutil.which("swaks")
    if not path:
        pytest.skip("swaks not installed (tools/setup.sh --test)")
    return path
