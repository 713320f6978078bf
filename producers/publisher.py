"""Publish typed events: the `EventPublisher` port and its Kafka and in-memory adapters.

`KafkaEventPublisher` counts an event as published only once the broker has
acknowledged it (acks=all, idempotent producer); everything is encoded and
validated before the first message is produced, so a bad event in a batch
means nothing of that batch is sent.

Every record gets a W3C `traceparent` header (events/tracecontext.py): the caller's
`traceparent` (and `tracestate`) when given, so the caller's span is the parent of what
consumes the record; else the trace the event's envelope already carries; else a new
trace of its own per event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from events.catalog import topic_name
from events.codec import EncodedMessage, EventCodec
from events.model import Event
from events.tracecontext import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TraceContext,
    parse_traceparent,
    parse_tracestate,
)
from fairstream.kafka_security import librdkafka_security, redact_client_config
from fairstream.settings import Settings

__all__ = [
    "TRACEPARENT_HEADER",
    "EventPublisher",
    "InMemoryEventPublisher",
    "KafkaEventPublisher",
    "PublishError",
    "PublishFailure",
    "PublishReport",
    "check_traceparent",
]

DEFAULT_FLUSH_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class PublishFailure:
    """Describe one event the broker did not confirm."""

    index: int
    event_type: str
    event_id: str
    error: str
    retriable: bool = False


@dataclass(frozen=True, slots=True)
class PublishReport:
    """Count what one `publish_all` call delivered and list what it did not."""

    attempted: int
    delivered: int
    failures: tuple[PublishFailure, ...] = ()

    @property
    def failed(self) -> int:
        """Return how many events were not delivered."""
        return self.attempted - self.delivered

    @property
    def ok(self) -> bool:
        """Tell whether every attempted event was confirmed by the broker."""
        return not self.failures and self.delivered == self.attempted

    def raise_for_failures(self) -> None:
        """Raise `PublishError` unless every event was delivered."""
        if not self.ok:
            raise PublishError(self)

    def merged(self, other: PublishReport) -> PublishReport:
        """Return this report followed by `other`, with `other`'s indexes shifted."""
        shifted = tuple(
            PublishFailure(
                index=f.index + self.attempted,
                event_type=f.event_type,
                event_id=f.event_id,
                error=f.error,
                retriable=f.retriable,
            )
            for f in other.failures
        )
        return PublishReport(
            attempted=self.attempted + other.attempted,
            delivered=self.delivered + other.delivered,
            failures=self.failures + shifted,
        )


class PublishError(RuntimeError):
    """Signal that some events of a batch were not delivered."""

    def __init__(self, report: PublishReport) -> None:
        self.report = report
        first = report.failures[0].error if report.failures else "unconfirmed delivery"
        super().__init__(
            f"{len(report.failures)} of {report.attempted} event(s) not delivered; first: {first}"
        )


class EventPublisher(Protocol):
    """Publish events to their catalog topics and report what the broker confirmed."""

    def publish_all(
        self,
        events: Sequence[Event],
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> PublishReport:
        """Validate, then publish every event; return once each one is confirmed or failed.

        `traceparent` (W3C) continues the caller's trace on every record; without it each
        event keeps its envelope's trace or starts a new one.
        """
        ...

    def flush(self, timeout: float | None = None) -> int:
        """Wait for outstanding deliveries; return how many are still pending."""
        ...


def check_traceparent(value: str) -> str:
    """Return a caller's W3C traceparent as version 00, raising ValueError if it is malformed.

    A caller's value is read case-insensitively; what is sent is lowercase, as the spec says.
    """
    return parse_traceparent(value.strip().lower()).traceparent


def _record_traceparent(event: Event, traceparent: str | None) -> str | None:
    """Return the traceparent to put on `event`'s record, None if its encoding carries one."""
    if traceparent is not None:
        return traceparent
    if event.envelope.trace is not None:
        return None
    return TraceContext.new().traceparent


def _header_list(
    encoded: EncodedMessage, traceparent: str | None, tracestate: str | None = None
) -> list[tuple[str, str | bytes | None]]:
    """Return the record's headers with `traceparent` (and `tracestate`) set, if given."""
    if traceparent is None:
        return list(encoded.headers)
    headers: list[tuple[str, str | bytes | None]] = [
        (name, value)
        for name, value in encoded.headers
        if name not in (TRACEPARENT_HEADER, TRACESTATE_HEADER)
    ]
    headers.append((TRACEPARENT_HEADER, traceparent.encode("ascii")))
    if tracestate:
        headers.append((TRACESTATE_HEADER, tracestate.encode("ascii")))
    return headers


class KafkaEventPublisher:
    """Publish events with an idempotent, acks=all confluent-kafka producer."""

    def __init__(
        self,
        bootstrap: str,
        codec: EventCodec | None = None,
        *,
        topic_prefix: str = "",
        compression: str = "lz4",
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        client_id: str = "fairstream-publisher",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if flush_timeout <= 1:
            raise ValueError("flush_timeout must be more than one second")
        self._codec = codec or EventCodec(topic_prefix=topic_prefix)
        self._prefix = topic_prefix
        self._flush_timeout = flush_timeout
        # Let librdkafka give up on a message before our flush does, so every
        # message ends with a delivery report instead of an unknown outcome.
        delivery_timeout_ms = int((flush_timeout - 1) * 1000)
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            **librdkafka_security(),  # FAIRSTREAM_KAFKA_* of the environment; `config` wins
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": 5,
            "delivery.timeout.ms": delivery_timeout_ms,
        }
        settings.update(config or {})
        # What the producer was given, passwords masked: benchmarks and logs may show it.
        self.producer_config: Mapping[str, Any] = MappingProxyType(redact_client_config(settings))
        self._producer = Producer(settings)
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> KafkaEventPublisher:
        """Create a publisher for the bootstrap, prefix and schema registry in `settings`."""
        codec = EventCodec.from_url(
            settings.schema_registry_url, topic_prefix=settings.topic_prefix
        )
        options["config"] = {**librdkafka_security(settings), **(options.get("config") or {})}
        return cls(settings.kafka_bootstrap, codec, topic_prefix=settings.topic_prefix, **options)

    def publish_all(
        self,
        events: Sequence[Event],
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> PublishReport:
        """Validate and encode every event, produce them, and wait for the broker's answers."""
        if traceparent is not None:
            traceparent = check_traceparent(traceparent)
            tracestate = parse_tracestate(tracestate)
        else:
            tracestate = None
        # Encoding validates; doing all of it first means a bad event stops the batch unsent.
        prepared: list[tuple[str, list[tuple[str, str | bytes | None]], EncodedMessage]] = []
        for event in events:
            encoded = self._codec.encode(event)
            headers = _header_list(encoded, _record_traceparent(event, traceparent), tracestate)
            prepared.append((topic_name(event.type, self._prefix), headers, encoded))

        outcome: list[str | None] = [None] * len(events)
        retriable = [False] * len(events)
        answered = [False] * len(events)

        def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, _msg: Message) -> None:
                answered[index] = True
                if err is not None:
                    outcome[index] = err.str()
                    retriable[index] = err.retriable()

            return report

        with self._lock:
            for index, (topic, headers, encoded) in enumerate(prepared):
                self._produce(index, topic, encoded, headers, on_delivery(index), outcome)
                if outcome[index] is not None:
                    answered[index] = True
            remaining = self._producer.flush(self._flush_timeout)
            if remaining:
                # Drop what never left the client so it cannot arrive after we said it failed.
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)
                self._producer.poll(0)

        failures: list[PublishFailure] = []
        for index, event in enumerate(events):
            error = outcome[index]
            if error is None and not answered[index]:
                error = (
                    f"delivery not confirmed within {self._flush_timeout:.0f}s "
                    "(the message may still arrive)"
                )
            if error is not None:
                failures.append(
                    PublishFailure(
                        index=index,
                        event_type=event.type,
                        event_id=str(event.envelope.event_id),
                        error=error,
                        retriable=retriable[index],
                    )
                )
        return PublishReport(
            attempted=len(events), delivered=len(events) - len(failures), failures=tuple(failures)
        )

    def _produce(
        self,
        index: int,
        topic: str,
        encoded: EncodedMessage,
        headers: list[tuple[str, str | bytes | None]],
        callback: Callable[[KafkaError | None, Message], None],
        outcome: list[str | None],
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=encoded.value,
                    key=encoded.key,
                    headers=headers,
                    on_delivery=callback,
                )
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                self._producer.poll(0.5)
                continue
            except KafkaException as exc:
                outcome[index] = str(exc.args[0] if exc.args else exc)
            self._producer.poll(0)
            return

    def flush(self, timeout: float | None = None) -> int:
        """Wait for outstanding deliveries; return how many are still pending."""
        return self._producer.flush(self._flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Flush what is left and release the producer; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        self._producer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class InMemoryEventPublisher:
    """Keep published events in a list; validates like the Kafka adapter, for unit tests."""

    codec: EventCodec | None = None
    published: list[Event] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)
    batches: int = 0

    def publish_all(
        self,
        events: Sequence[Event],
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> PublishReport:
        """Validate every event, then append them all with the traceparent each would get."""
        if traceparent is not None:
            traceparent = check_traceparent(traceparent)
        codec = self.codec or EventCodec()
        for event in events:
            codec.validate(event)
        self.published.extend(events)
        for event in events:
            own = event.envelope.trace
            chosen = _record_traceparent(event, traceparent)
            self.traceparents.append(chosen or (own.traceparent if own else None))
        self.batches += 1
        return PublishReport(attempted=len(events), delivered=len(events))

    def flush(self, timeout: float | None = None) -> int:
        """Return 0: nothing is ever pending."""
        return 0
