"""The Redis greylist store against a real redis-server: the same decisions
as the memory-mapped store for the same request sequence, expiry by Redis
TTLs following postgrey's cleanup rules, atomic updates from concurrent
clients, and `postier greylistd --store redis:...`.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from policy_peers import PolicyConn

from postier.policy.store import MmapStore, RedisStore, StoreError

DAY = 86400
NOW = 1_900_000_000


def test_same_decisions_as_the_mmap_store(redis, tmp_path):
    mm = MmapStore(str(tmp_path / "g.db"))
    rnd = random.Random(11)
    seq = []
    t = NOW
    for _ in range(3000):
        t += rnd.randint(0, 90)
        k = rnd.randint(0, 150)
        seq.append((b"10.0.%d.0/s@x/r@y" % k, b"awl:10.0.0.%d" % (k % 9), t))
    seq.append((b"future", b"awl:f", NOW + 10**6))
    seq.append((b"future", b"awl:f", NOW + 10**6 - 500))

    async def go():
        rs = RedisStore(redis.spec)
        try:
            return [await rs.adecide(a, b, now, 300, 2 * DAY, 3, 35 * DAY) for a, b, now in seq]
        finally:
            await rs.aclose()

    got = asyncio.run(go())
    want = [mm.decide(a, b, now, 300, 2 * DAY, 3, 35 * DAY) for a, b, now in seq]
    mm.close()
    assert got == want
    kinds = {r[0] for r in got}
    assert kinds == {1, 2, 3, 4}            # AWL, greylist, delayed pass, known pass
    assert got[-1][3] == 1                  # first-seen in the future corrected


def test_ttls_follow_postgrey_cleanup_rules(redis):
    async def go():
        rs = RedisStore(redis.spec)
        try:
            await rs.adecide(b"t", b"awl:c", NOW, 300, 2 * DAY, 5, 35 * DAY)
            fresh = await rs.client.ttl(b"postier:greylist:t:t")
            await rs.adecide(b"t", b"awl:c", NOW + 400, 300, 2 * DAY, 5, 35 * DAY)
            passed = await rs.client.ttl(b"postier:greylist:t:t")
            client = await rs.client.ttl(b"postier:greylist:c:awl:c")
            value = await rs.aget(b"t")
            return fresh, passed, client, value
        finally:
            await rs.aclose()

    fresh, passed, client, value = asyncio.run(go())
    assert 2 * DAY - 5 <= fresh <= 2 * DAY + 1      # never passed: the retry window
    assert 35 * DAY - 5 <= passed <= 35 * DAY + 1   # passed: max-age after last use
    assert 35 * DAY - 5 <= client <= 35 * DAY + 1
    assert value == (NOW, NOW + 400, 2)


def test_concurrent_clients_update_atomically(redis):
    async def worker(seed):
        rs = RedisStore(redis.spec)
        try:
            rnd = random.Random(seed)
            for _ in range(300):
                k = rnd.randint(0, 20)
                await rs.adecide(b"k%d" % k, b"awl:x", NOW, 300, DAY, 0, 35 * DAY)
        finally:
            await rs.aclose()

    async def go():
        await asyncio.gather(*(worker(s) for s in range(8)))
        rs = RedisStore(redis.spec)
        try:
            counts = [(await rs.aget(b"k%d" % k)) for k in range(21)]
        finally:
            await rs.aclose()
        return counts

    counts = asyncio.run(go())
    assert sum(c[2] for c in counts if c) == 8 * 300


def test_unreachable_redis_is_a_store_error():
    from policy_peers import free_port

    async def go():
        rs = RedisStore(f"redis:127.0.0.1:{free_port()}")
        try:
            await rs.adecide(b"t", b"c", NOW, 300, DAY, 5, DAY)
        finally:
            await rs.aclose()

    with pytest.raises(StoreError, match="greylist store redis:127.0.0.1:"):
        asyncio.run(go())


@pytest.mark.slow
def test_greylistd_on_redis_two_servers(redis, start_greylistd):
    a = start_greylistd(["--delay=60"], store=redis.spec)
    b = start_greylistd(["--delay=60"], store=redis.spec)
    ca, cb = PolicyConn(a.port), PolicyConn(b.port)
    try:
        assert ca.ask(policy_test_time=str(NOW)).startswith("DEFER_IF_PERMIT")
        assert cb.ask(policy_test_time=str(NOW + 61)).startswith("PREPEND X-Greylist: delayed 61")
        assert ca.ask(policy_test_time=str(NOW + 62)) == "DUNNO"
    finally:
        ca.close()
        cb.close()


@pytest.mark.slow
def test_greylistd_answers_when_redis_is_down(start_greylistd):
    from policy_peers import free_port
    g = start_greylistd(["--delay=60"], store=f"redis:127.0.0.1:{free_port()}")
    c = PolicyConn(g.port)
    try:
        assert c.ask() == "451 4.3.5 Server configuration problem"
    finally:
        c.close()
    assert "warning: greylist store: greylist store redis:127.0.0.1:" in g.log()
