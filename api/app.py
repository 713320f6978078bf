"""The read-only query API (FastAPI): every read model, behind API keys with scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.document_views import DocumentVersionScope, VersionedDocumentStore
from api.errors import RETRY_AFTER_SECONDS, ErrorBody, install_error_handlers
from api.keys import PostgresApiKeyStore
from api.listing import reject_nul_bytes
from api.log_redaction import install_key_redaction
from api.metrics import record_request
from api.redisio import GuardedRedis
from api.routes import analytics, bias, documents, lag, ops, revenue
from api.security import KEY_CACHE_SECONDS, KeyVerifier
from fairstream.settings import Settings
from projections.documents import build_document_store
from projections.migrate import checked_schema

DESCRIPTION = """Read-only access to the read models fairstream builds from Kafka events.

**Authentication**: every `/v1` route needs an API key (`fairstream apikey create`), sent as
`Authorization: Bearer fs_<id>_<secret>` or `X-API-Key: fs_<id>_<secret>`; each route names
the scope it needs (`x-required-scope`). 401 without a valid key, 403 without the scope.
`/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs` are open.

**Rate limit**: per key and minute (429 with `Retry-After`).

**Caching**: answers carry an `ETag` (send it back in `If-None-Match` for a 304) and
`Cache-Control: private, no-cache`; the server-side cache is keyed by the applied Kafka
positions of the projection behind the route, so an answer is never older than one already
given.

**Lists**: `limit` (1..500), `sort`, `order` and an opaque `cursor` (the previous page's
`next_cursor`, valid only with the same sort and order).

**Privacy**: raw submitted text is never returned unless `FAIRSTREAM_STORE_RAW_TEXT` is on
and the read model kept it (campaign items).
"""


# Bounds on every PostgreSQL wait, so an outage is a prompt 503 and never a hang.
CONNECT_TIMEOUT_SECONDS = 3.0
COMMAND_TIMEOUT_SECONDS = 5.0
READY_CHECK_SECONDS = 2.0


class Health(BaseModel):
    """Liveness or readiness with the state of each dependency."""

    status: str
    checks: dict[str, str] = {}


def redis_prefix_for(settings: Settings) -> str:
    """Return the Redis key prefix of an API serving this schema (isolates deployments)."""
    return f"fairstream:api:{checked_schema(settings.pg_schema)}:"


def create_app(
    settings: Settings,
    *,
    redis_prefix: str | None = None,
    key_cache_seconds: float = KEY_CACHE_SECONDS,
) -> FastAPI:
    """Create the API bound to the read models named in `settings`."""
    schema = checked_schema(settings.pg_schema)
    install_key_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size=0: the API starts (and answers 503) while PostgreSQL is down, and a dead
        # connection is replaced on the next acquire, so the API recovers without a restart.
        pool = await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(),
            min_size=0,
            max_size=10,
            timeout=CONNECT_TIMEOUT_SECONDS,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
            server_settings={"search_path": schema, "application_name": "fairstream-api"},
        )
        app.state.pool = pool
        prefix = redis_prefix or redis_prefix_for(settings)
        app.state.redis = GuardedRedis(settings.redis_url, prefix)
        app.state.key_verifier = KeyVerifier(PostgresApiKeyStore(pool), key_cache_seconds)
        if settings.document_store.strip().lower() == "mongo":
            # Rebuilt document projections are read from their active database (replay).
            app.state.document_store = VersionedDocumentStore.connect(
                settings.mongo_url, settings.mongo_database, pool
            )
        else:
            app.state.document_store = await build_document_store(settings, pool)
        await lag.start_monitor(app, settings, pool)
        try:
            yield
        finally:
            await lag.stop_monitor(app)
            await app.state.document_store.close()
            await app.state.redis.close()
            await pool.close()

    app = FastAPI(
        title="fairstream query API",
        version="1.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_bytes)],
        responses={422: {"model": ErrorBody, "description": "Invalid parameters"}},
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.middleware("http")(record_request)
    app.add_middleware(DocumentVersionScope)  # outermost: one version view per request
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key", "If-None-Match"],
            expose_headers=["ETag", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"],
        )
    for router in (
        bias.router,
        analytics.router,
        revenue.router,
        documents.campaign_router,
        documents.opportunity_router,
        documents.agent_task_router,
        ops.router,
        lag.router,
        lag.page_router,
    ):
        app.include_router(router)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness")
    async def healthz() -> Health:
        """Answer while the process is alive."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={
            503: {"model": Health, "description": "PostgreSQL or the document store is down"}
        },
        tags=["health"],
        summary="Readiness: PostgreSQL (and MongoDB when used) answer and the read models exist",
        description="Redis is reported but optional: without it the API serves uncached and"
        " does not rate-limit (fail open). `Retry-After` comes with a 503.",
    )
    async def readyz(request: Request) -> Any:
        """Check the API's dependencies, each within a short timeout."""
        state = request.app.state
        checks: dict[str, str] = {"postgres": await _check(_postgres_ready(state.pool))}
        if settings.document_store.strip().lower() == "mongo":
            checks["mongo"] = await _check(state.document_store.ping())
        checks["redis"] = "ok" if await state.redis.ping() else "unavailable"
        ready = all(v == "ok" for k, v in checks.items() if k != "redis")
        body = Health(status="ok" if ready else "unavailable", checks=checks)
        if ready:
            return JSONResponse(body.model_dump())
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(body.model_dump(), status_code=503, headers=headers)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """Expose Prometheus metrics in the text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _postgres_ready(pool: asyncpg.Pool) -> None:
    async with pool.acquire(timeout=READY_CHECK_SECONDS) as conn:
        await conn.fetchval("SELECT 1 FROM bias_results LIMIT 1", timeout=READY_CHECK_SECONDS)
        await conn.fetchval("SELECT 1 FROM api_keys LIMIT 1", timeout=READY_CHECK_SECONDS)


async def _check(probe: Awaitable[Any]) -> str:
    """Run one readiness probe; return "ok" or the error's type, never raise."""
    try:
        await asyncio.wait_for(probe, READY_CHECK_SECONDS + 0.5)
    except Exception as exc:  # readiness reports any failure
        return f"error: {type(exc).__name__}"
    return "ok"
