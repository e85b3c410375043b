"""Where greylist entries live: the shared memory-mapped file, or Redis.

`open_store(spec)` returns a backend by its spec (main.cf
`greylist_store`):

    /path/to/file              MmapStore: the memory-mapped hash table of
                               postier.native "greystore" (Cython, or its pure
                               twin with POSTIER_PURE=1), shared by every
                               process of this host; created when missing
                               (with its directory)
    redis:HOST:PORT[/DB]       RedisStore: a Redis server shared by several MX
    redis:[V6ADDR]:PORT[/DB]   hosts (redis-py's asyncio client; one Lua
    redis:/path/to/socket      script per decision, so it is atomic)

Both implement postgrey's decision for one triplet atomically (see
postier.policy.greylist for the rules) and return the same
`(result, first, awl_count, corrected)` tuple (result codes R_* below).
`MmapStore` is synchronous (`sync = True`: `decide()` costs microseconds
and never blocks on I/O); `RedisStore` is asynchronous (`adecide()`).
Both have `adecide()`.

Redis keeps the key text itself (`postier:greylist:t:NET/SENDER/RECIPIENT`,
`postier:greylist:c:ADDRESS`; SHA-1 hex digests with greylist privacy) with
the value `first,last,count`, and lets Redis expire entries by postgrey's
rules: a triplet that passed lives max_age after its last use, one that
never passed min(retry_window, max_age); a client max_age.  So
`maintain()` has nothing to do for Redis.

Reads no main.cf parameters (postier.policy.greylist passes the spec).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from postier import native
from postier._pure.greystore import StoreError

R_AWL, R_GREYLIST, R_DELAYED, R_PASS = 1, 2, 3, 4

Decision = tuple[int, int, int, int]
REDIS_PREFIX = "postier:greylist:"

__all__ = ["MmapStore", "RedisStore", "StoreError", "open_store", "check_store",
           "parse_redis_spec", "R_AWL", "R_GREYLIST", "R_DELAYED", "R_PASS"]


class MmapStore:
    """The shared memory-mapped greylist file (postier.native greystore)."""

    sync = True
    kind = "mmap"

    def __init__(self, path: str, *, pure: bool | None = None, nslots: int | None = None):
        self.path = path
        self.mod = native.load("greystore", pure=pure)
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create greylist store directory {directory}: "
                                 f"{e.strerror}") from None
        kw = {} if nslots is None else {"nslots": nslots}
        self.gs = self.mod.GreyStore(path, **kw)
        self.greylist = self.gs.greylist

    def describe(self) -> str:
        return self.path

    def decide(self, tkey: bytes, ckey: bytes, now: int, delay: int, retry_window: int,
               awl_clients: int, max_age: int) -> Decision:
        return self.greylist(tkey, ckey, now, delay, retry_window, awl_clients)

    async def adecide(self, tkey: bytes, ckey: bytes, now: int, delay: int, retry_window: int,
                      awl_clients: int, max_age: int) -> Decision:
        return self.greylist(tkey, ckey, now, delay, retry_window, awl_clients)

    def maintain(self, now: int, max_age: int, delay: int, retry_window: int
                 ) -> tuple | None:
        return self.gs.maintain(now, max_age, delay, retry_window)

    async def amaintain(self, now: int, max_age: int, delay: int, retry_window: int
                        ) -> tuple | None:
        return self.gs.maintain(now, max_age, delay, retry_window)

    def close(self) -> None:
        self.gs.close()

    async def aclose(self) -> None:
        self.gs.close()


# KEYS[1] triplet key, KEYS[2] client key; ARGV now, delay, retry_window,
# awl_clients, max_age.  Returns {result, first, awl_count, corrected}.
LUA_DECIDE = """
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local rw = tonumber(ARGV[3])
local awl = tonumber(ARGV[4])
local max_age = tonumber(ARGV[5])
local function parse(v)
  if not v then return nil end
  local a, b, c = string.match(v, '^(%d+),(%d+),(%d+)$')
  if not a then return nil end
  return tonumber(a), tonumber(b), tonumber(c)
end
local function fmt(a, b, c)
  return string.format('%d,%d,%d', a, b, c)
end
local cf, cl, cc
if awl > 0 then
  cf, cl, cc = parse(redis.call('GET', KEYS[2]))
  if cc and cc >= awl then
    if now >= cl + 3600 or cl > now then
      cc = cc + 1
      redis.call('SET', KEYS[2], fmt(cf, now, cc), 'EX', max_age + 1)
    end
    return {1, 0, cc, 0}
  end
end
local first, count, successful, corrected = now, 1, false, 0
local tf, tl, tc = parse(redis.call('GET', KEYS[1]))
if tf then
  first = tf
  count = tc + 1
  if tl - tf >= delay then
    successful = true
  elseif now - first > rw then
    first = now
  end
  if first > now then
    first = now
    corrected = 1
  end
end
local ttl = max_age + 1
if now - first < delay then
  ttl = math.min(rw, max_age) + 1
end
redis.call('SET', KEYS[1], fmt(first, now, count), 'EX', ttl)
local diff = delay - (now - first)
local awl_count = 0
if awl > 0 and diff <= 0 and not successful then
  if not cl or now >= cl + 3600 then
    local n = (cc or 0) + 1
    redis.call('SET', KEYS[2], fmt(cf or now, now, n), 'EX', max_age + 1)
    awl_count = n
  end
end
local r = 3
if diff > 0 then
  r = 2
elseif successful then
  r = 4
end
return {r, first, awl_count, corrected}
"""

_REDIS_SPEC = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+)"
                         r"(?:/(?P<db>\d+))?$")


def parse_redis_spec(spec: str) -> dict:
    """`redis:HOST:PORT[/DB]`, `redis:[V6]:PORT[/DB]` or `redis:/socket/path`
    -> redis-py connection keywords.  Raises StoreError."""
    rest = spec[len("redis:"):] if spec.startswith("redis:") else spec
    if rest.startswith("/"):
        return {"unix_socket_path": rest}
    m = _REDIS_SPEC.match(rest)
    if not m:
        raise StoreError(f'bad greylist store "{spec}": expected redis:HOST:PORT[/DB], '
                         f"redis:[IPV6]:PORT[/DB] or redis:/SOCKET")
    out = {"host": m.group("v6") or m.group("host"), "port": int(m.group("port"))}
    if m.group("db"):
        out["db"] = int(m.group("db"))
    return out


class RedisStore:
    """Greylist entries in Redis (shared by several MX hosts)."""

    sync = False
    kind = "redis"

    def __init__(self, spec: str, *, prefix: str = REDIS_PREFIX, timeout: float = 10.0):
        try:
            import redis.asyncio as aioredis
        except ImportError as e:     # pragma: no cover - redis is a dependency
            raise StoreError(f"greylist store {spec}: the redis package is not installed") from e
        self.spec = spec
        self.prefix = prefix
        kw = parse_redis_spec(spec)
        self.client = aioredis.Redis(socket_timeout=timeout, socket_connect_timeout=timeout,
                                     decode_responses=False, **kw)
        self.script = self.client.register_script(LUA_DECIDE)
        import redis.exceptions as rexc
        self._errors = (rexc.RedisError, OSError)

    def describe(self) -> str:
        return self.spec

    def keys(self, tkey: bytes, ckey: bytes) -> list[bytes]:
        p = self.prefix.encode()
        return [p + b"t:" + tkey, p + b"c:" + ckey]

    def decide(self, *args: object) -> Decision:    # pragma: no cover - sync use is a bug
        raise StoreError("the Redis greylist store is asynchronous: use adecide()")

    async def adecide(self, tkey: bytes, ckey: bytes, now: int, delay: int, retry_window: int,
                      awl_clients: int, max_age: int) -> Decision:
        try:
            r = await self.script(keys=self.keys(tkey, ckey),
                                  args=[now, delay, retry_window, awl_clients, max_age])
        except self._errors as e:
            raise StoreError(f"greylist store {self.spec}: {e}") from None
        return int(r[0]), int(r[1]), int(r[2]), int(r[3])

    def maintain(self, now: int, max_age: int, delay: int, retry_window: int) -> None:
        return None

    async def amaintain(self, now: int, max_age: int, delay: int, retry_window: int) -> None:
        return None

    async def aget(self, key: bytes, client: bool = False) -> tuple[int, int, int] | None:
        """(first, last, count) of a triplet (or client) key, or None."""
        k = self.keys(key, key)[1 if client else 0]
        v = await self.client.get(k)
        if v is None:
            return None
        a, b, c = v.decode().split(",")
        return int(a), int(b), int(c)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except AttributeError:      # redis-py < 5.0.1
            await self.client.close()


def open_store(spec: str, *, pure: bool | None = None) -> MmapStore | RedisStore:
    """The backend for a `greylist_store` value."""
    spec = spec.strip()
    if not spec:
        raise StoreError("greylist_store is empty")
    if spec.startswith("redis:"):
        return RedisStore(spec)
    if spec.startswith("mmap:"):
        spec = spec[len("mmap:"):]
    if not os.path.isabs(spec):
        raise StoreError(f'greylist store "{spec}": expected an absolute path or redis:HOST:PORT')
    return MmapStore(spec, pure=pure)


def check_store(path: str, *, repair: bool = False, pure: bool | None = None) -> dict:
    """`postier greylistd --check-store FILE`: the checker's report."""
    mod = native.load("greystore", pure=pure)
    if not os.path.exists(path):
        raise StoreError(f"cannot open greylist store {path}: No such file or directory")
    return mod.check_file(path, repair=repair)


def describe_report(report: dict) -> Sequence[str]:
    """Human-readable lines of a check report."""
    lines = [f"slots: {report['nslots']}, file size: {report['file_size']} bytes",
             f"entries: {report['live']} ({report['triplets']} triplets, "
             f"{report['clients']} auto-whitelisted clients), "
             f"{report['tombstones']} tombstones, {report['empty']} empty slots"]
    if report.get("pending_journal"):
        lines.append("an interrupted update is pending (replayed by the next writer)")
    if report.get("rebuild"):
        lines.append(f"rebuild in progress: {report['rebuild_done']} of {report['nslots']} "
                     f"slots copied into a {report['rebuild']}-slot table")
    if report.get("repaired"):
        for p in report.get("problems_before", []):
            lines.append(f"repaired: {p}")
    for p in report["problems"]:
        lines.append(f"problem: {p}")
    lines.append("OK" if report["ok"] else "CORRUPT")
    return lines
