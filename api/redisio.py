"""Redis behind a breaker: rate limiting and the response cache must never take the API down.

When Redis fails, calls are skipped for a few seconds instead of each request waiting on
a timeout; the API then answers without cache and without rate limiting (fail open).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as redis
from prometheus_client import Counter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

REDIS_ERRORS = Counter(
    "fairstream_api_redis_errors_total",
    "Redis calls the API skipped or that failed (the API then fails open).",
    ["operation"],
)

# Fixed window that starts with the key's first request: INCR, and set the TTL only on the
# first hit (or if it is somehow missing), in one atomic script.
_RATE_LIMIT_LUA = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class GuardedRedis:
    """Wrap a Redis client: short timeouts, and a pause after a failure."""

    def __init__(self, url: str, prefix: str, pause_seconds: float = 5.0) -> None:
        self.prefix = prefix
        self._client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry_on_timeout=False
        )
        self._pause = pause_seconds
        self._down_until = 0.0
        self._script: Any = self._client.register_script(_RATE_LIMIT_LUA)

    def available(self) -> bool:
        """Say whether Redis is worth calling now."""
        return time.monotonic() >= self._down_until

    def _failed(self, operation: str, exc: Exception) -> None:
        REDIS_ERRORS.labels(operation).inc()
        if self.available():
            name = type(exc).__name__
            log.warning("redis %s failed (%s); continuing without it", operation, name)
        self._down_until = time.monotonic() + self._pause

    async def hit_window(self, key: str, window_seconds: int) -> tuple[int, int] | None:
        """Count one request in the key's window; return (count, seconds left) or None."""
        if not self.available():
            REDIS_ERRORS.labels("rate_limit_skipped").inc()
            return None
        try:
            count, ttl = await self._script(keys=[self.prefix + key], args=[window_seconds])
            return int(count), max(int(ttl), 1)
        except (RedisError, OSError) as exc:
            self._failed("rate_limit", exc)
            return None

    async def get(self, key: str) -> bytes | None:
        """Read a cached value, or None on a miss or when Redis is unavailable."""
        if not self.available():
            return None
        try:
            value = await self._client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("cache_get", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store a value with a TTL unless the key exists; failures are logged and ignored."""
        if not self.available() or ttl_seconds <= 0:
            return
        try:
            await self._client.set(self.prefix + key, value, ex=ttl_seconds, nx=True)
        except (RedisError, OSError) as exc:
            self._failed("cache_set", exc)

    async def ping(self) -> bool:
        """Say whether Redis answers now."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
