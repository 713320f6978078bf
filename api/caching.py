"""Response caching keyed by the projections' applied positions, ETag and Cache-Control.

The cache key holds the request (path and sorted query) and a position token: the sum of
`next_offset` over the partitions of the projections a route reads, with their count and
last update. Positions only grow and are committed in the same transaction as the rows,
so an entry made at token T holds data at least as new as T; once a projection applies a
new event the token changes and the old entries are never read again (they expire after
`api_cache_ttl_seconds`). A client therefore never gets data older than it already saw.
The token and a cache miss's query run in one repeatable-read snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from fastapi import Request, Response
from prometheus_client import Counter
from pydantic import BaseModel

from api.redisio import GuardedRedis
from projections.documents import DocumentStore, PostgresDocumentStore
from projections.migrate import checked_schema

CACHE_RESULTS = Counter(
    "fairstream_api_cache_total", "Response cache lookups by outcome.", ["outcome"]
)
CACHE_CONTROL = "private, no-cache"
# Longest wait for a pooled PostgreSQL connection (including connecting): then 503.
ACQUIRE_TIMEOUT_SECONDS = 5.0
VARY = "Authorization, X-API-Key"


async def position_token(conn: asyncpg.Connection, projections: Sequence[str]) -> str:
    """Return a token that changes whenever one of the projections applies an event."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(next_offset), 0) AS total, count(*) AS parts,"
        " coalesce(extract(epoch FROM max(updated_at)), 0) AS last"
        " FROM projection_positions WHERE projection = ANY($1::text[])",
        list(projections),
    )
    assert row is not None
    return f"{row['total']}.{row['parts']}.{row['last']}"


async def read_active_versions(conn: asyncpg.Connection, projections: Sequence[str]) -> None:
    """Make this transaction read the active version of the projections (`fairstream replay`).

    `read_model_versions` names the schema serving a rebuilt projection; it is read in the
    request's snapshot, so a switch is seen whole or not at all. The live schema stays on the
    search path for everything else (API keys, other read models).
    """
    if await conn.fetchval("SELECT to_regclass('read_model_versions')") is None:
        return
    schemas = await conn.fetch(
        "SELECT DISTINCT active_schema FROM read_model_versions WHERE projection = ANY($1::text[])",
        list(projections),
    )
    if len(schemas) != 1:
        return  # never rebuilt (or, not yet supported, versions in several schemas)
    active = checked_schema(schemas[0]["active_schema"])
    live = checked_schema(await conn.fetchval("SELECT current_schema()"))
    if active != live:
        await conn.execute(f'SET LOCAL search_path TO "{active}", "{live}"')


def request_signature(request: Request) -> str:
    """Return the path with its query parameters in a canonical order."""
    query = sorted(request.query_params.multi_items())
    return request.url.path + "?" + "&".join(f"{k}={v}" for k, v in query)


def entity_tag(body: bytes) -> str:
    """Return the strong ETag of a body."""
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Say whether an If-None-Match header names this ETag (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def _headers(request: Request, etag: str, outcome: str) -> dict[str, str]:
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Vary": VARY,
        "X-Cache": outcome,
    }
    headers.update(getattr(request.state, "rate_limit_headers", {}))
    return headers


def respond(request: Request, body: bytes, outcome: str) -> Response:
    """Answer 200 with the body, or 304 when the client already has it."""
    etag = entity_tag(body)
    headers = _headers(request, etag, outcome)
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


Compute = Callable[[asyncpg.Connection], Awaitable[BaseModel | None]]
Missing = Callable[[], Response]


async def cached_response(
    request: Request,
    projections: Sequence[str],
    compute: Compute,
    missing: Missing | None = None,
) -> Response:
    """Serve from the cache at the current position token, or compute, store and serve.

    `compute` gets a connection in the snapshot the token was read in; returning None
    means "not found" and is answered by `missing` (never cached).
    """
    pool: asyncpg.Pool = request.app.state.pool
    async with (
        pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        await read_active_versions(conn, projections)
        key = _cache_key(request, await position_token(conn, projections))
        return await _serve(request, key, lambda: compute(conn), missing)


def _cache_key(request: Request, token: str) -> str:
    return "cache:" + hashlib.sha256(f"{request_signature(request)}|{token}".encode()).hexdigest()


async def _serve(
    request: Request,
    key: str,
    compute: Callable[[], Awaitable[BaseModel | None]],
    missing: Missing | None,
) -> Response:
    redis: GuardedRedis = request.app.state.redis
    ttl: int = request.app.state.settings.api_cache_ttl_seconds
    body = await redis.get(key) if ttl > 0 else None
    if body is not None:
        CACHE_RESULTS.labels("hit").inc()
        return respond(request, body, "hit")
    result = await compute()
    if result is None:
        assert missing is not None
        return missing()
    body = result.model_dump_json().encode()
    CACHE_RESULTS.labels("miss").inc()
    await redis.set(key, body, ttl)
    return respond(request, body, "miss")


DocumentCompute = Callable[[DocumentStore], Awaitable[BaseModel | None]]


async def document_cached_response(
    request: Request,
    projection: str,
    compute: DocumentCompute,
    missing: Missing | None = None,
) -> Response:
    """Serve a document read model through the cache, keyed by its projection's position.

    With the PostgreSQL document store the reads run in the token's snapshot. With MongoDB
    the positions live in its `projection_positions` collection and are saved after each
    batch's documents, so an entry holds data at least as new as its token; concurrent
    misses store with SET NX, so every later reader of a token gets the first stored body.
    """
    settings = request.app.state.settings
    if settings.document_store.strip().lower() == "postgres":

        async def in_snapshot(conn: asyncpg.Connection) -> BaseModel | None:
            return await compute(PostgresDocumentStore(request.app.state.pool, conn))

        return await cached_response(request, [projection], in_snapshot, missing)
    store: DocumentStore = request.app.state.document_store
    positions = await store.stored_positions(projection)
    # A blue/green switch can keep the position sums: name the database that answers.
    database_of = getattr(store, "database_of", None)
    database = await database_of(projection) if database_of is not None else ""
    token = f"mongo.{database}.{sum(positions.values())}.{len(positions)}"
    key = _cache_key(request, token)
    return await _serve(request, key, lambda: compute(store), missing)
