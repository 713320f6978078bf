"""The read-only query API (FastAPI): bias results, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api import views
from api.errors import ErrorBody, error_response, install_error_handlers
from api.metrics import record_request
from fairstream.settings import Settings
from projections.migrate import checked_schema

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"


class DimensionResult(BaseModel):
    """Score, confidence and evidence terms of one bias dimension."""

    score: float
    confidence: float
    evidence: list[str]


class EvidenceSpan(BaseModel):
    """A span of the text that drove the score."""

    text: str
    start: int
    end: int
    weight: float
    dimension: str | None = None


class AlertSummary(BaseModel):
    """An alert raised for this result."""

    level: str
    overall_score: float
    reason: str
    dimensions: list[str]
    raised_at: datetime


class BiasResult(BaseModel):
    """The bias assessment of one content by one model version; never the raw text."""

    content_id: str
    model_name: str
    model_version: str
    overall_score: float
    confidence: float
    level: str
    dimensions: dict[str, DimensionResult]
    evidence: list[EvidenceSpan]
    content_hash: str
    text_length: int
    word_count: int
    language: str
    flags: list[str]
    latency_ms: float
    content_type: str | None = None
    campaign_id: str | None = None
    scored_at: datetime
    alerts: list[AlertSummary]


class Health(BaseModel):
    """Liveness or readiness with the state of each dependency."""

    status: str
    checks: dict[str, str] = {}


def create_app(settings: Settings) -> FastAPI:
    """Create the API bound to the read models named in `settings`."""
    schema = checked_schema(settings.pg_schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=10,
            server_settings={"search_path": schema, "application_name": "fairstream-api"},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="fairstream query API",
        version="1.0.0",
        description="Read-only access to the read models fairstream builds from Kafka events.",
        lifespan=lifespan,
        responses={422: {"model": ErrorBody, "description": "Invalid parameters"}},
    )
    install_error_handlers(app)
    app.middleware("http")(record_request)

    @app.get(
        "/v1/content/{content_id}/bias",
        response_model=BiasResult,
        responses={404: {"model": ErrorBody, "description": "No result for this content"}},
        tags=["bias"],
        summary="Bias result of one content",
    )
    async def content_bias(
        request: Request,
        content_id: Annotated[str, Path(pattern=ID_PATTERN, description="Content id")],
        model_version: Annotated[
            str | None, Query(pattern=ID_PATTERN, description="A model version; default newest")
        ] = None,
    ) -> Any:
        """Return the newest bias result of a content, or the one of a model version."""
        result = await views.bias_for_content(request.app.state.pool, content_id, model_version)
        if result is None:
            return error_response(404, f"no bias result for content {content_id!r}")
        return result

    @app.get("/healthz", response_model=Health, tags=["ops"], summary="Liveness")
    async def healthz() -> Health:
        """Answer while the process is alive."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Health, "description": "A dependency is not ready"}},
        tags=["ops"],
        summary="Readiness: PostgreSQL answers and the read models exist",
    )
    async def readyz(request: Request) -> Any:
        """Check the API's dependencies."""
        checks: dict[str, str] = {}
        try:
            async with request.app.state.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1 FROM bias_results LIMIT 1")
            checks["postgres"] = "ok"
        except Exception as exc:  # readiness reports any failure, it never raises
            checks["postgres"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ready else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """Expose Prometheus metrics in the text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
