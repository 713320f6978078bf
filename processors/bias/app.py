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
from processors.faust_app import new_app, raw_message, send_and_wait
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED, SCORING_LATENCY

log = logging.getLogger(__name__)


# Faust/aiokafka options for the bias app (see bench/README.md for how they were chosen):
# - commit by time, not after every batch: each commit flushes the producer and costs a
#   broker round trip; at-least-once is unaffected because a batch's outputs are
#   acknowledged before its events are acked (and faust flushes again before committing);
# - larger fetches and poll batches so a micro-batch is already buffered when asked for;
# - a short producer linger: one batch's outputs go out in a few produce requests.
COMMIT_INTERVAL_S = 0.5
COMMIT_EVERY_BATCHES = 16
FETCH_BYTES = 4 * 1024 * 1024
PRODUCER_LINGER_S = 0.002
PRODUCER_BATCH_BYTES = 512 * 1024


def app_options(settings: Settings) -> dict[str, Any]:
    """Return the Faust settings the bias app overrides for throughput and latency."""
    batch = max(1, settings.bias_batch_max)
    return {
        "broker_commit_every": batch * COMMIT_EVERY_BATCHES,
        "broker_commit_interval": COMMIT_INTERVAL_S,
        "broker_max_poll_records": max(500, 4 * batch),
        "consumer_max_fetch_size": FETCH_BYTES,
        "stream_buffer_maxsize": max(4096, 8 * batch),
        "producer_linger": PRODUCER_LINGER_S,
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
    }


def create_app(
    settings: Settings, service: BiasScoringService, *, in_executor: bool = False
) -> faust.App:
    """Create the Faust app whose agent scores ContentSubmitted in micro-batches.

    The scorer runs inline on the event loop by default: onnxruntime releases the GIL
    inside a session run, but the Python around it does not, so an executor thread
    only added hand-off cost (measured in bench/README.md). `in_executor=True` keeps
    the loop responsive (heartbeats) for models whose batches take seconds.
    """
    app = new_app(settings, settings.bias_processor_group, **app_options(settings))
    source = app.topic(
        topic_name("ContentSubmitted", settings.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    wait = settings.bias_batch_wait_ms / 1000.0

    @app.agent(source, name="score-content")
    async def score_content(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream, not on the StreamT interface.
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            settings.bias_batch_max, within=wait
        ):
            raw = [raw_message(e.message) for e in batch]
            started = time.perf_counter()
            if in_executor:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    None, service.handle_batch, raw
                )
            else:
                outcome = service.handle_batch(raw)
            SCORING_LATENCY.observe(time.perf_counter() - started)
            await send_and_wait(app, outcome.messages)
            EVENTS_PROCESSED.labels(service.name, "ContentSubmitted", "scored").inc(outcome.scored)
            EVENTS_PROCESSED.labels(service.name, "ContentSubmitted", "dead_lettered").inc(
                outcome.dead_lettered
            )
            if outcome.dead_lettered:
                DEAD_LETTERED.labels(service.name, "undecodable").inc(outcome.dead_lettered)
            log.debug(
                "batch of %d: scored=%d alerts=%d dead_lettered=%d",
                len(raw),
                outcome.scored,
                outcome.alerts,
                outcome.dead_lettered,
            )

    return app
