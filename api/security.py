"""Authenticate API keys, enforce scopes and rate-limit per key.

Verified keys are cached in memory for `KEY_CACHE_SECONDS` because scrypt is slow on
purpose: a revoked key therefore keeps working on an API process for at most that long.
Failed verifications are cached for the same time, so guessing secrets of a known key id
cannot make the API burn CPU on scrypt. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ErrorBody
from api.keys import ApiKeyRecord, PostgresApiKeyStore
from api.redisio import GuardedRedis

KEY_CACHE_SECONDS = 30.0
KEY_CACHE_SIZE = 10_000
RATE_WINDOW_SECONDS = 60

api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKeyHeader",
    description="An API key `fs_<id>_<secret>` (create one with `fairstream apikey create`).",
    auto_error=False,
)
bearer = HTTPBearer(
    scheme_name="BearerKey",
    description="The same API key as a bearer token: `Authorization: Bearer fs_<id>_<secret>`.",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, name and scopes."""

    key_id: str
    name: str
    scopes: frozenset[str]


def _fingerprint(presented: str) -> bytes:
    return hashlib.sha256(presented.encode()).digest()


class KeyVerifier:
    """Verify presented keys against the store, remembering results for a short while."""

    def __init__(self, store: PostgresApiKeyStore, ttl_seconds: float = KEY_CACHE_SECONDS) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._valid: OrderedDict[bytes, tuple[float, ApiKeyRecord]] = OrderedDict()
        self._invalid: OrderedDict[bytes, float] = OrderedDict()

    def _remember(self, table: OrderedDict[bytes, Any], fp: bytes, value: Any) -> None:
        table[fp] = value
        table.move_to_end(fp)
        while len(table) > KEY_CACHE_SIZE:
            table.popitem(last=False)

    async def verify(self, presented: str) -> ApiKeyRecord | None:
        """Return the record of a valid key or None, using the cache when fresh."""
        now = time.monotonic()
        fp = _fingerprint(presented)
        cached = self._valid.get(fp)
        if cached is not None and cached[0] > now:
            return cached[1]
        failed_until = self._invalid.get(fp)
        if failed_until is not None and failed_until > now:
            return None
        record = await self._store.verify(presented)
        if record is None:
            self._valid.pop(fp, None)
            self._remember(self._invalid, fp, now + self._ttl)
        else:
            self._invalid.pop(fp, None)
            self._remember(self._valid, fp, (now + self._ttl, record))
        return record

    def forget(self) -> None:
        """Drop every cached verification (e.g. after revoking in-process)."""
        self._valid.clear()
        self._invalid.clear()


def _presented_key(
    header_key: str | None, credentials: HTTPAuthorizationCredentials | None
) -> str | None:
    bearer_key = credentials.credentials if credentials is not None else None
    if header_key and bearer_key and not hmac.compare_digest(header_key, bearer_key):
        raise HTTPException(401, "X-API-Key and Authorization name different keys")
    return header_key or bearer_key


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="fairstream"'}


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Create a dependency that authenticates the key, rate-limits it and checks `scope`."""

    async def dependency(
        request: Request,
        header_key: Annotated[str | None, Depends(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        presented = _presented_key(header_key, credentials)
        if not presented:
            raise HTTPException(401, "an API key is required", headers=UNAUTHORIZED_HEADERS)
        verifier: KeyVerifier = request.app.state.key_verifier
        record = await verifier.verify(presented)
        if record is None:
            raise HTTPException(
                401, "the API key is invalid or revoked", headers=UNAUTHORIZED_HEADERS
            )
        principal = Principal(record.key_id, record.name, frozenset(record.scopes))
        await enforce_rate_limit(request, principal)
        if scope not in principal.scopes:
            raise HTTPException(403, f"the API key lacks the scope {scope!r}")
        request.state.principal = principal
        return principal

    return dependency


async def enforce_rate_limit(request: Request, principal: Principal) -> None:
    """Count the request in the key's window; raise 429 with Retry-After over the limit."""
    limit: int = request.app.state.settings.api_rate_limit_per_minute
    if limit <= 0:
        return
    redis: GuardedRedis = request.app.state.redis
    counted = await redis.hit_window(f"rl:{principal.key_id}", RATE_WINDOW_SECONDS)
    if counted is None:  # Redis unavailable: fail open, counted in a metric
        return
    count, seconds_left = counted
    remaining = max(limit - count, 0)
    request.state.rate_limit_headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(seconds_left),
    }
    if count > limit:
        raise HTTPException(
            429,
            f"rate limit of {limit} requests per minute exceeded",
            headers={"Retry-After": str(seconds_left), **request.state.rate_limit_headers},
        )


def scope_docs(scope: str, extra: dict[int | str, Any] | None = None) -> dict[str, Any]:
    """Return route keyword arguments that document the scope, auth errors and `extra`."""
    responses: dict[int | str, Any] = {
        304: {"description": "Not modified: the `If-None-Match` ETag is current"},
        401: {"model": ErrorBody, "description": "No API key, or an invalid or revoked one"},
        403: {"model": ErrorBody, "description": f"The API key lacks the scope `{scope}`"},
        422: {"model": ErrorBody, "description": "Invalid parameters or cursor"},
        429: {
            "model": ErrorBody,
            "description": "Rate limit exceeded; retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
        503: {
            "model": ErrorBody,
            "description": "A read-model store is unavailable; retry after `Retry-After`",
        },
        **(extra or {}),
    }
    return {
        "openapi_extra": {
            "x-required-scope": scope,
            "security": [{"ApiKeyHeader": [scope]}, {"BearerKey": [scope]}],
        },
        "responses": responses,
    }
