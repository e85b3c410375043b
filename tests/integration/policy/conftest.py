"""Fixtures for the greylisting integration tests (see policy_peers.py).

`start_greylistd(args, **kw)`: a started `postier greylistd` (stopped by
PID at teardown).  `redis`: a private redis-server (tools/redis_server.py),
skipped when not installed.  `postgrey`: a factory for private real
postgrey servers (tools/postgrey_server.py), skipped when not installed.
"""

from __future__ import annotations

import pytest
from policy_peers import Greylistd


@pytest.fixture
def start_greylistd():
    started: list[Greylistd] = []

    def start(args=(), **kw) -> Greylistd:
        g = Greylistd(args, **kw)
        started.append(g)
        return g.start()

    yield start
    for g in started:
        g.cleanup()


@pytest.fixture
def redis():
    from redis_server import RedisServer, redis_available
    if not redis_available():
        pytest.skip("redis-server not installed (tools/setup.sh --test)")
    rs = RedisServer()
    rs.start()
    yield rs
    rs.cleanup()


@pytest.fixture
def postgrey():
    from postgrey_server import PostgreyServer, postgrey_available
    if not postgrey_available():
        pytest.skip("postgrey not installed (tools/setup.sh --test)")
    started: list[PostgreyServer] = []

    def start(**kw) -> PostgreyServer:
        pg = PostgreyServer(**kw)
        started.append(pg)
        return pg.start()

    yield start
    for pg in started:
        pg.cleanup()
