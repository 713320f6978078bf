"""Create Faust apps with the settings every fairstream processor shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol, cast

import faust

from events.topics import TopicSpec, apply_topics
from fairstream.kafka_security import faust_security, librdkafka_security
from fairstream.settings import Settings
from processors.commits import LowWatermarks, StrictCommitApp
from processors.deadletter import (
    DeadLetterLedger,
    OutgoingMessage,
    RawMessage,
    dead_letter_source,
)
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED

log = logging.getLogger(__name__)


def new_app(
    settings: Settings,
    app_id: str,
    *,
    app_class: type[faust.App] = StrictCommitApp,
    **overrides: Any,
) -> faust.App:
    """Create a Faust app: raw bytes on the wire (the codec owns Avro), acks=all, commits that
    never pass an unprocessed record (`processors.commits`), local state under the stack
    directory, no web server; `overrides` win."""
    datadir = settings.stack_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        **faust_security(settings),
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "web_enabled": False,
        "datadir": str(datadir),
        "broker_session_timeout": settings.processor_session_timeout_seconds,
        "broker_heartbeat_interval": min(3.0, settings.processor_session_timeout_seconds / 4),
    }
    options.update(overrides)
    app = app_class(app_id, **options)
    if isinstance(app, StrictCommitApp):
        client = {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
        app.offsets = LowWatermarks(client)
        app.dead_letter_ledger = DeadLetterLedger(client)
    return app


class InternalTopicsFirstApp(StrictCommitApp):
    """Declare the app's internal topics before its consumer first joins the group.

    Faust declares them itself, but a consumer that joins before the new topics appear in
    its metadata leaves them unassigned until the next rebalance (an agent then never sees
    a record); creating them first, and waiting for their leaders, avoids that. Set
    `internal_topics` and `bootstrap` before the app starts.
    """

    internal_topics: list[TopicSpec]
    bootstrap: str

    async def on_first_start(self) -> None:
        """Create the missing internal topics, then start as usual."""
        specs = list(self.internal_topics)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, apply_topics, self.bootstrap, specs)
        await super().on_first_start()


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


async def send_and_wait(app: faust.App, messages: Sequence[OutgoingMessage]) -> None:
    """Produce every record, then wait until the broker acknowledged all of them.

    Callers ack their input events only after this returns, so an offset is committed
    only once what it produced is durable. Dead letters the app's `dead_letter_ledger`
    finds already written (by a predecessor that died before committing) are not sent.
    The producer is used directly: Faust's Topic.send adds per-record bookkeeping
    (callbacks, FutureMessage) nobody here uses.
    """
    producer = app.producer
    ledger = app.dead_letter_ledger if isinstance(app, StrictCommitApp) else None
    if ledger is not None and any(dead_letter_source(m) is not None for m in messages):
        loop = asyncio.get_running_loop()
        messages = await loop.run_in_executor(None, ledger.unsent, messages)
    pending = [
        await producer.send(m.topic, m.key, m.value, None, None, list(m.headers)) for m in messages
    ]
    if pending:
        await asyncio.gather(*pending)


class MappingOutcome(Protocol):
    """What a stateless service returns for one batch."""

    @property
    def messages(self) -> list[OutgoingMessage]: ...

    @property
    def dead_lettered(self) -> int: ...


class MappingService(Protocol):
    """A stateless processor's logic: a batch of records in, records out."""

    name: str
    source_topic: str

    def handle_batch(self, batch: list[RawMessage]) -> MappingOutcome:
        """Turn one batch of input records into output records."""


def create_mapping_app(
    settings: Settings,
    app_id: str,
    service: MappingService,
    *,
    agent_name: str,
    event_type: str,
    batch_max: int = 100,
    batch_wait_seconds: float = 0.05,
) -> faust.App:
    """Create a Faust app whose one agent maps micro-batches of one topic through `service`."""
    app = new_app(settings, app_id)
    source = app.topic(
        service.source_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def process(stream: faust.StreamT[bytes]) -> None:
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            batch_max, within=batch_wait_seconds
        ):
            outcome = service.handle_batch([raw_message(e.message) for e in batch])
            await send_and_wait(app, outcome.messages)
            done = len(batch) - outcome.dead_lettered
            EVENTS_PROCESSED.labels(service.name, event_type, "processed").inc(done)
            if outcome.dead_lettered:
                EVENTS_PROCESSED.labels(service.name, event_type, "dead_lettered").inc(
                    outcome.dead_lettered
                )
                DEAD_LETTERED.labels(service.name, "undecodable").inc(outcome.dead_lettered)
            log.debug("%s: batch of %d, %d dead-lettered", agent_name, len(batch), done)

    app.agent(source, name=agent_name)(process)
    return app
