"""The bias scoring processor as a Faust app: ContentSubmitted in, BiasScored out."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust

from events.catalog import topic_name
from fairstream.settings import Settings
from processors.bias.service import BiasScoringService
from processors.deadletter import OutgoingMessage, RawMessage
from processors.faust_app import new_app
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED, SCORING_LATENCY

log = logging.getLogger(__name__)


def create_app(settings: Settings, service: BiasScoringService) -> faust.App:
    """Create the Faust app whose agent scores ContentSubmitted in micro-batches."""
    app = new_app(
        settings,
        settings.bias_processor_group,
        broker_commit_every=max(1, settings.bias_batch_max),
    )
    source = app.topic(
        topic_name("ContentSubmitted", settings.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    sinks: dict[str, faust.TopicT] = {}

    def sink(name: str) -> faust.TopicT:
        if name not in sinks:
            sinks[name] = app.topic(name, key_serializer="raw", value_serializer="raw")
        return sinks[name]

    async def send_all(messages: list[OutgoingMessage]) -> None:
        pending = [
            await sink(m.topic).send(key=m.key, value=m.value, headers=list(m.headers), force=True)
            for m in messages
        ]
        # Wait for the broker's acknowledgement before the batch's offsets can commit.
        await asyncio.gather(*pending)

    wait = settings.bias_batch_wait_ms / 1000.0
    loop_executor: Any = None

    @app.agent(source, name="score-content")
    async def score_content(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream, not on the StreamT interface.
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            settings.bias_batch_max, within=wait
        ):
            raw = [
                RawMessage(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                    headers=_headers(e.message.headers),
                )
                for e in batch
            ]
            started = time.perf_counter()
            outcome = await asyncio.get_running_loop().run_in_executor(
                loop_executor, service.handle_batch, raw
            )
            SCORING_LATENCY.observe(time.perf_counter() - started)
            await send_all(outcome.messages)
            EVENTS_PROCESSED.labels(service.name, "ContentSubmitted", "scored").inc(outcome.scored)
            EVENTS_PROCESSED.labels(service.name, "ContentSubmitted", "dead_lettered").inc(
                outcome.dead_lettered
            )
            if outcome.dead_lettered:
                DEAD_LETTERED.labels(service.name, "undecodable").inc(outcome.dead_lettered)
            log.info(
                "batch of %d: scored=%d alerts=%d dead_lettered=%d",
                len(raw),
                outcome.scored,
                outcome.alerts,
                outcome.dead_lettered,
            )

    return app


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]
