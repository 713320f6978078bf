"""The bias scoring processor as a Faust app: ContentSubmitted in, BiasScored out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust

from events.catalog import topic_name
from fairstream.settings import Settings
from processors.bias.service import BatchOutcome, BiasScoringService, ScoringRound
from processors.deadletter import RawMessage
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
# Model batches per Faust batch: Faust's per-batch cost is shared by more events, and
# `score_in_rounds` has neighbours to overlap each model run with.
ROUNDS_PER_TAKE = 4


def app_options(settings: Settings) -> dict[str, Any]:
    """Return the Faust settings the bias app overrides for throughput and latency."""
    batch = max(1, settings.bias_batch_max)
    return {
        "broker_commit_every": batch * ROUNDS_PER_TAKE * COMMIT_EVERY_BATCHES,
        "broker_commit_interval": COMMIT_INTERVAL_S,
        "broker_max_poll_records": max(500, 2 * ROUNDS_PER_TAKE * batch),
        "consumer_max_fetch_size": FETCH_BYTES,
        "stream_buffer_maxsize": max(4096, 4 * ROUNDS_PER_TAKE * batch),
        "producer_linger": PRODUCER_LINGER_S,
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
    }


async def score_in_rounds(
    service: BiasScoringService,
    batch: Sequence[RawMessage],
    round_size: int,
    run_model: Callable[[ScoringRound], Awaitable[ScoringRound]],
) -> BatchOutcome:
    """Score a batch in rounds of `round_size`, overlapping each model run with Python work.

    While round k's model step runs (`run_model`, on a worker thread: onnxruntime releases
    the GIL), the event loop's thread finishes round k-1 (evidence, assessments, encoding)
    and decodes and prepares round k+1. Model runs stay one at a time and every record of
    the batch is built before this returns, so callers ack nothing early.
    """
    rounds = [batch[i : i + round_size] for i in range(0, len(batch), max(1, round_size))]
    outcomes: list[BatchOutcome] = []
    running: asyncio.Future[ScoringRound] | None = None
    for chunk in rounds:
        prepared = service.begin(chunk)
        if running is not None:
            previous = await running
            running = asyncio.ensure_future(run_model(prepared))
            outcomes.append(service.finish(previous))
        else:
            running = asyncio.ensure_future(run_model(prepared))
    if running is not None:
        outcomes.append(service.finish(await running))
    return BatchOutcome(
        [m for o in outcomes for m in o.messages],
        sum(o.scored for o in outcomes),
        sum(o.alerts for o in outcomes),
        sum(o.dead_lettered for o in outcomes),
    )


def app_and_source(settings: Settings) -> tuple[faust.App, faust.TopicT]:
    """Return the bias app (its options, its group) and its raw ContentSubmitted topic."""
    app = new_app(settings, settings.bias_processor_group, **app_options(settings))
    source = app.topic(
        topic_name("ContentSubmitted", settings.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    return app, source


def create_app(
    settings: Settings, service: BiasScoringService, *, in_executor: bool = True
) -> faust.App:
    """Create the Faust app whose agent scores ContentSubmitted in micro-batches.

    The agent takes up to ROUNDS_PER_TAKE model batches (`bias_batch_max` texts each) per
    Faust batch and scores them with `score_in_rounds`: the model step of one round runs
    on a worker thread while the loop's thread does the Python work of its neighbours.
    `in_executor=False` runs everything inline on the event loop (tests, debugging).
    """
    app, source = app_and_source(settings)

    wait = settings.bias_batch_wait_ms / 1000.0
    round_size = max(1, settings.bias_batch_max)
    # One thread: model runs are sequential, as in the raw onnxruntime reference.
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bias-model")

    async def run_model(scoring: ScoringRound) -> ScoringRound:
        if not in_executor:
            return service.run_model(scoring)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(model_thread, service.run_model, scoring)

    @app.agent(source, name="score-content")
    async def score_content(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream, not on the StreamT interface.
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            round_size * ROUNDS_PER_TAKE, within=wait
        ):
            raw = [raw_message(e.message) for e in batch]
            started = time.perf_counter()
            outcome = await score_in_rounds(service, raw, round_size, run_model)
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
