"""The revenue projection processor as a Faust app: requests in, RevenueProjected out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import faust

from events.codec import EventCodec
from fairstream.settings import Settings
from processors.deadletter import OutgoingMessage, RawMessage
from processors.faust_app import new_app
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED
from processors.revenue.service import RevenueProjectionService

log = logging.getLogger(__name__)

BATCH_MAX = 100
BATCH_WAIT_SECONDS = 0.05


def create_app(settings: Settings, service: RevenueProjectionService | None = None) -> faust.App:
    """Create the Faust app whose agent projects every RevenueProjectionRequested."""
    service = service or RevenueProjectionService(
        EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix),
        topic_prefix=settings.topic_prefix,
    )
    app = new_app(
        settings,
        settings.revenue_processor_group,
    )
    source = app.topic(
        service.source_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    sinks: dict[str, faust.TopicT] = {}

    async def send_all(messages: list[OutgoingMessage]) -> None:
        pending = []
        for m in messages:
            if m.topic not in sinks:
                sinks[m.topic] = app.topic(m.topic, key_serializer="raw", value_serializer="raw")
            pending.append(
                await sinks[m.topic].send(
                    key=m.key, value=m.value, headers=list(m.headers), force=True
                )
            )
        # Wait for the broker's acknowledgement before the batch's offsets can commit.
        await asyncio.gather(*pending)

    @app.agent(source, name="project-revenue")
    async def project_revenue(stream: faust.StreamT[bytes]) -> None:
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            BATCH_MAX, within=BATCH_WAIT_SECONDS
        ):
            outcome = service.handle_batch([raw_message(e.message) for e in batch])
            await send_all(outcome.messages)
            EVENTS_PROCESSED.labels(service.name, "RevenueProjectionRequested", "projected").inc(
                outcome.projected
            )
            if outcome.dead_lettered:
                EVENTS_PROCESSED.labels(
                    service.name, "RevenueProjectionRequested", "dead_lettered"
                ).inc(outcome.dead_lettered)
                DEAD_LETTERED.labels(service.name, "undecodable").inc(outcome.dead_lettered)
            log.info(
                "batch of %d: projected=%d dead_lettered=%d",
                len(batch),
                outcome.projected,
                outcome.dead_lettered,
            )

    return app


def raw_message(message: Any) -> RawMessage:
    """Copy a consumed Faust message into a RawMessage."""
    headers = message.headers or []
    items = headers.items() if hasattr(headers, "items") else headers
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=[(str(k), bytes(v) if v is not None else b"") for k, v in items],
    )
