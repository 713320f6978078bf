"""The composition root: wire settings to adapters (Kafka, ONNX, PostgreSQL) in one place."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable

import asyncpg
import faust
from fastapi import FastAPI

from events.catalog import topic_name
from events.codec import EventCodec
from fairstream.settings import Settings
from processors.bias.scoring import BiasScorer, load_scorer, thresholds_from_settings
from processors.bias.service import BiasScoringService
from projections.bias_results import PostgresBiasResultsProjection
from projections.migrate import checked_schema, migrate
from projections.runner import PostgresProjection, ProjectionRunner, RunStats

log = logging.getLogger(__name__)

PROJECTIONS: dict[str, Callable[[], PostgresProjection]] = {
    "bias-results": PostgresBiasResultsProjection,
}


def build_codec(settings: Settings) -> EventCodec:
    """Create the codec: single-object encoding, or Confluent wire format with a registry."""
    return EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix)


def build_scorer(settings: Settings, kind: str | None = None) -> BiasScorer:
    """Load the configured ONNX bias scorer once per worker."""
    return load_scorer(
        kind or settings.bias_model,
        settings.models_dir,
        thresholds=thresholds_from_settings(settings),
    )


def build_bias_service(settings: Settings, scorer: BiasScorer | None = None) -> BiasScoringService:
    """Create the bias scoring logic with its scorer and codec."""
    return BiasScoringService(
        scorer or build_scorer(settings),
        build_codec(settings),
        topic_prefix=settings.topic_prefix,
        dimension_floor=settings.bias_threshold_medium,
    )


def build_bias_app(settings: Settings, scorer: BiasScorer | None = None) -> faust.App:
    """Create the Faust bias scoring app."""
    from processors.bias.app import create_app

    return create_app(settings, build_bias_service(settings, scorer))


# Every other processor package exposes `create_app(settings) -> faust.App` in `app.py`.
PROCESSORS: dict[str, str] = {
    "analytics": "processors.analytics.app",
    "opportunity": "processors.opportunity.app",
    "campaign": "processors.campaign.app",
    "revenue": "processors.revenue.app",
}


def build_processor_app(settings: Settings, name: str) -> faust.App:
    """Create the Faust app of the named processor."""
    if name == "bias":
        return build_bias_app(settings)
    module = importlib.import_module(PROCESSORS[name])
    app: faust.App = module.create_app(settings)
    return app


def build_api(settings: Settings) -> FastAPI:
    """Create the query API."""
    from api.app import create_app

    return create_app(settings)


async def connect_pool(settings: Settings) -> asyncpg.Pool:
    """Open a PostgreSQL pool whose search_path is the read models' schema."""
    schema = checked_schema(settings.pg_schema)
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=4,
        server_settings={"search_path": schema, "application_name": "fairstream"},
    )
    assert pool is not None
    return pool


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply pending read-model migrations; return the names applied now."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        done = await migrate(conn, settings.pg_schema)
    finally:
        await conn.close()
    return [f"{m.version:04d}_{m.name}" for m in done]


def build_projection_runner(settings: Settings, name: str, pool: asyncpg.Pool) -> ProjectionRunner:
    """Create the runner of one named projection."""
    projection = PROJECTIONS[name]()
    topics = [topic_name(t, settings.topic_prefix) for t in projection.event_types]
    group = settings.bias_projection_group if name == "bias-results" else f"fairstream-proj-{name}"
    return ProjectionRunner(
        projection,
        pool=pool,
        codec=build_codec(settings),
        bootstrap=settings.kafka_bootstrap,
        group_id=group,
        topics=topics,
        batch_max=settings.projection_batch_max,
    )


async def run_projection(
    settings: Settings, name: str, stop: asyncio.Event | None = None
) -> RunStats:
    """Migrate, then run one projection until stopped (SIGTERM/SIGINT or `stop`)."""
    await apply_migrations(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    pool = await connect_pool(settings)
    try:
        runner = build_projection_runner(settings, name, pool)
        log.info("projection %s starting", name)
        return await runner.run(stop)
    finally:
        await pool.close()
