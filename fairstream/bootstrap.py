"""The composition root: wire settings to adapters (Kafka, ONNX, PostgreSQL) in one place."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable, Sequence

import asyncpg
import faust
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI

from events.catalog import topic_name
from events.codec import EventCodec
from fairstream import aiokafka_rebootstrap
from fairstream.logs import configure_logging, url_password
from fairstream.settings import Settings
from processors.bias.scoring import BiasScorer, load_scorer, thresholds_from_settings
from processors.bias.service import BiasScoringService
from projections.agent_tasks import AgentTasksProjection
from projections.analytics_metrics import PostgresAnalyticsMetricsProjection
from projections.bias_daily import PostgresBiasDailyProjection
from projections.bias_results import PostgresBiasResultsProjection
from projections.campaigns import CampaignsProjection
from projections.documents import (
    DocumentProjection,
    DocumentSink,
    DocumentStore,
    build_document_store,
)
from projections.migrate import checked_schema, migrate
from projections.model_usage import PostgresModelUsageProjection
from projections.opportunities import OpportunitiesProjection
from projections.revenue import PostgresRevenueProjection
from projections.runner import (
    STORE_RETRIES,
    STORE_UP,
    Backoff,
    PostgresProjection,
    ProjectionRunner,
    RunStats,
    store_unavailable,
)

log = logging.getLogger(__name__)

POSTGRES_PROJECTIONS: dict[str, Callable[[Settings], PostgresProjection]] = {
    "bias-results": lambda _s: PostgresBiasResultsProjection(),
    "bias-daily": lambda _s: PostgresBiasDailyProjection(),
    "analytics-metrics": lambda _s: PostgresAnalyticsMetricsProjection(),
    "model-usage": lambda _s: PostgresModelUsageProjection(),
    "revenue-projections": lambda _s: PostgresRevenueProjection(),
}
# Document-shaped projections run on Settings.document_store ("mongo" or "postgres").
DOCUMENT_PROJECTIONS: dict[str, Callable[[Settings], DocumentProjection]] = {
    "campaigns": lambda s: CampaignsProjection(store_raw_text=s.store_raw_text),
    "opportunities": lambda _s: OpportunitiesProjection(),
    "agent-tasks": lambda _s: AgentTasksProjection(),
}
PROJECTIONS: dict[str, Callable[[Settings], PostgresProjection | DocumentProjection]] = {
    **POSTGRES_PROJECTIONS,
    **DOCUMENT_PROJECTIONS,
}


def settings_secrets(settings: Settings) -> list[str]:
    """Return the secret values in `settings` that logs must never show."""
    found: list[str | None] = [url_password(settings.postgres_dsn.get_secret_value())]
    for name in ("kafka_sasl_password", "kafka_ssl_key_password"):
        value = getattr(settings, name, None)
        found.append(value.get_secret_value() if value is not None else None)
    for url in (settings.redis_url, settings.mongo_url, settings.schema_registry_url):
        found.append(url_password(url))
    return [value for value in found if value]


def configure_service_logging(settings: Settings, service: str) -> None:
    """Set up the logs of one service: FAIRSTREAM_LOG_FORMAT (json|text), level, redaction."""
    configure_logging(
        service=service,
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=settings_secrets(settings),
    )


def serve_metrics(settings: Settings) -> int | None:
    """Serve Prometheus metrics on FAIRSTREAM_METRICS_PORT if set; return the port.

    Processors and projections have no HTTP server of their own: this one (a daemon
    thread of prometheus_client) is what Prometheus scrapes and what Kubernetes probes.
    """
    if settings.metrics_port is None:
        return None
    from prometheus_client import start_http_server

    start_http_server(settings.metrics_port, addr="0.0.0.0")  # every interface of the pod
    log.info("metrics on :%d/metrics", settings.metrics_port)
    return settings.metrics_port


def build_codec(settings: Settings) -> EventCodec:
    """Create the codec: single-object encoding, or Confluent wire format with a registry."""
    return EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix)


def build_scorer(settings: Settings, kind: str | None = None) -> BiasScorer:
    """Load the configured ONNX bias scorer once per worker."""
    return load_scorer(
        kind or settings.bias_model,
        settings.models_dir,
        thresholds=thresholds_from_settings(settings),
        intra_op_threads=settings.bias_intra_op_threads,
        evidence_spans=settings.bias_evidence_spans,
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


def wait_for_kafka(
    settings: Settings,
    service: str,
    backoff: Backoff | None = None,
    give_up_after: float | None = None,
) -> int:
    """Block until Kafka answers a bootstrap (metadata) request; return the retries it took.

    A Faust worker that cannot bootstrap exits, so a processor started while the broker
    restarts would die; it waits here first instead (capped exponential backoff, a warning
    per retry). Runs on an event loop of its own, leaving the one Faust will use alone.
    Raise KafkaConnectionError once `give_up_after` seconds have passed, if given.
    """
    from aiokafka.client import AIOKafkaClient

    from fairstream.kafka_security import aiokafka_security

    backoff = backoff or Backoff()
    loop = asyncio.new_event_loop()
    started = loop.time()

    async def bootstrap() -> None:
        client = AIOKafkaClient(
            bootstrap_servers=settings.kafka_bootstrap, **aiokafka_security(settings)
        )
        try:
            await client.bootstrap()
        finally:
            await client.close()

    try:
        attempt = 0
        while True:
            try:
                loop.run_until_complete(bootstrap())
                return attempt
            except KafkaConnectionError as exc:
                delay = backoff.delay(attempt)
                waited = loop.time() - started
                if give_up_after is not None and waited + delay > give_up_after:
                    raise
                attempt += 1
                log.warning(
                    "%s: Kafka unreachable at startup (%s); retrying in %.1fs",
                    service,
                    exc,
                    delay,
                )
                loop.run_until_complete(asyncio.sleep(delay))
    finally:
        loop.close()


def build_processor_app(settings: Settings, name: str) -> faust.App:
    """Create the Faust app of the named processor."""
    aiokafka_rebootstrap.install()
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


def projection_group(settings: Settings, name: str) -> str:
    """Return the consumer group of a projection."""
    if name == "bias-results":
        return settings.bias_projection_group
    return f"{settings.projection_group_prefix}{name}"


async def prepare_document_store(
    settings: Settings, pool: asyncpg.Pool | None, names: Sequence[str] | None = None
) -> DocumentStore:
    """Open the configured document store and create the document collections' indexes.

    `names` limits this to some projections (a rebuilt version's database holds only one).
    """
    store = await build_document_store(settings, pool)
    for name, factory in DOCUMENT_PROJECTIONS.items():
        if names is not None and name not in names:
            continue
        for collection, fields in factory(settings).indexes.items():
            await store.ensure_collection(collection, fields)
    return store


def build_projection_runner(
    settings: Settings,
    name: str,
    pool: asyncpg.Pool,
    document_store: DocumentStore | None = None,
) -> ProjectionRunner:
    """Create the runner of one named projection (document ones need `document_store`)."""
    aiokafka_rebootstrap.install()
    if name in DOCUMENT_PROJECTIONS:
        if document_store is None:
            raise ValueError(f"projection {name!r} needs a document store")
        doc_projection = DOCUMENT_PROJECTIONS[name](settings)
        projection: PostgresProjection | DocumentProjection = doc_projection
        sink: DocumentSink | None = DocumentSink(doc_projection, document_store)
    else:
        projection = POSTGRES_PROJECTIONS[name](settings)
        sink = None
    topics = [topic_name(t, settings.topic_prefix) for t in projection.event_types]
    return ProjectionRunner(
        projection,
        sink=sink,
        pool=pool,
        codec=build_codec(settings),
        bootstrap=settings.kafka_bootstrap,
        group_id=projection_group(settings, name),
        topics=topics,
        batch_max=settings.projection_batch_max,
    )


async def active_schema(settings: Settings, name: str) -> str:
    """Return the PostgreSQL schema that serves projection `name` now."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        schema = checked_schema(settings.pg_schema)
        active = await conn.fetchval(
            f'SELECT active_schema FROM "{schema}".read_model_versions WHERE projection = $1',
            name,
        )
    finally:
        await conn.close()
    return str(active) if active else settings.pg_schema


async def active_database(settings: Settings, name: str) -> str:
    """Return the MongoDB database that serves document projection `name` now.

    `fairstream replay` names it in `read_model_versions.active_database` (migration 0041);
    the configured database serves a projection never rebuilt.
    """
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        schema = checked_schema(settings.pg_schema)
        try:
            active = await conn.fetchval(
                f'SELECT active_database FROM "{schema}".read_model_versions WHERE projection = $1',
                name,
            )
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
            active = None
    finally:
        await conn.close()
    return str(active) if active else settings.mongo_database


async def run_projection(
    settings: Settings,
    name: str,
    stop: asyncio.Event | None = None,
    backoff: Backoff | None = None,
) -> RunStats:
    """Migrate, then run one projection until stopped (SIGTERM/SIGINT or `stop`).

    A PostgreSQL projection writes into the schema `read_model_versions` names as active
    (the one `fairstream replay` switched the API to), or the live schema when none is named;
    a document projection on MongoDB writes into the database named as active the same way.
    A store or Kafka that cannot be reached at startup is waited for (capped exponential
    backoff; `fairstream_projection_store_up` 0 while the store is away), as while running.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    backoff = backoff or Backoff()
    attempt = 0
    while True:
        try:
            return await _run_projection_once(settings, name, stop)
        except Exception as exc:
            if stop.is_set():
                raise
            if store_unavailable(exc):
                what = "store"
                STORE_UP.labels(name).set(0)
                STORE_RETRIES.labels(name).inc()
            elif isinstance(exc, KafkaConnectionError):
                what = "Kafka"  # e.g. started while the broker restarts
            else:
                raise
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning(
                "projection %s: %s unreachable at startup (%s: %s); retrying in %.1fs",
                name,
                what,
                type(exc).__name__,
                exc,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return RunStats()


async def _run_projection_once(settings: Settings, name: str, stop: asyncio.Event) -> RunStats:
    await apply_migrations(settings)
    only: list[str] | None = None
    if name in POSTGRES_PROJECTIONS:
        settings = settings.model_copy(update={"pg_schema": await active_schema(settings, name)})
    elif name in DOCUMENT_PROJECTIONS and settings.document_store.strip().lower() == "mongo":
        database = await active_database(settings, name)
        if database != settings.mongo_database:
            settings = settings.model_copy(update={"mongo_database": database})
            only = [name]
    pool = await connect_pool(settings)
    store: DocumentStore | None = None
    try:
        if name in DOCUMENT_PROJECTIONS:
            store = await prepare_document_store(settings, pool, only)
        runner = build_projection_runner(settings, name, pool, store)
        log.info("projection %s starting", name)
        return await runner.run(stop)
    finally:
        if store is not None:
            await store.close()
        await pool.close()
