"""W3C trace context from the publisher through the bias processor to the projection's logs.

Runs `fairstream processor bias` and `fairstream projection bias-results` as subprocesses
(JSON logs) against the local stack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from stacktest import ARTIFACTS, byte_headers, read_topic, settings_env

from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from events.tracecontext import from_headers, parse_traceparent
from fairstream.settings import Settings
from producers.publisher import KafkaEventPublisher

pytestmark = pytest.mark.integration

FS = str(Path(sys.executable).with_name("fairstream"))
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACESTATE = "fairstream-test=1"


class Service:
    """Run one `fairstream` service as a subprocess with JSON logs written to a file."""

    def __init__(
        self, settings: Settings, argv: list[str], log_path: Path, cwd: Path, level: str = "INFO"
    ) -> None:
        self.log_path = log_path
        env = settings_env(settings) | {
            "FAIRSTREAM_LOG_FORMAT": "json",
            "FAIRSTREAM_LOG_LEVEL": level,
        }
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [FS, *argv], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def lines(self) -> list[str]:
        """Return the non-empty lines the service has written so far."""
        return [line for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """Stop the service with SIGTERM (SIGKILL if it does not exit)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def services(
    isolated_settings: Settings, event_topics: list[str], tmp_path: Path
) -> Iterator[dict[str, Service]]:
    """Start the bias processor; the test starts the projection when it needs it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = isolated_settings.topic_prefix.strip(".")
    started: dict[str, Service] = {
        "bias": Service(
            isolated_settings,
            ["processor", "bias"],
            ARTIFACTS / f"trace-{prefix}-processor-bias.log",
            tmp_path,
        )
    }
    try:
        yield started
    finally:
        for service in started.values():
            service.stop()


def _json_lines(service: Service, *, strict: bool = True) -> list[dict[str, Any]]:
    """Parse the service's log lines; `strict=False` skips lines not (yet) complete."""
    parsed = []
    for line in service.lines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            if strict:
                pytest.fail(f"{service.log_path.name}: not a JSON log line: {line!r}")
    return parsed


async def test_trace_continues_from_publisher_to_processor_outputs_and_projection_logs(
    isolated_settings: Settings, pg_schema: str, services: dict[str, Service], tmp_path: Path
) -> None:
    settings = isolated_settings
    traced = example_event("ContentSubmitted", content_id="traced-1", correlation_id="wf-trace")
    with KafkaEventPublisher.from_settings(settings) as publisher:
        report = publisher.publish_all([traced], traceparent=TRACEPARENT, tracestate=TRACESTATE)
    report.raise_for_failures()
    # Another client's record without traceparent: the processor starts a trace for it.
    foreign = example_event("ContentSubmitted", content_id="foreign-1")
    encoded = EventCodec().encode(foreign)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    producer.produce(
        topic_name("ContentSubmitted", settings.topic_prefix),
        key=encoded.key,
        value=encoded.value,
        headers=encoded.headers,
    )
    assert producer.flush(30) == 0
    assert encoded.header("traceparent") is None

    scored = read_topic(settings, topic_name("BiasScored", settings.topic_prefix), 2)
    assert len(scored) == 2, "the bias processor produced no BiasScored in time"
    by_content = {}
    for message in scored:
        event = EventCodec().decode(message.value(), message.headers())
        by_content[event.payload["content_id"]] = (event, byte_headers(message))

    event, headers = by_content["traced-1"]
    out = parse_traceparent(headers["traceparent"], headers.get("tracestate"))
    assert out.trace_id == TRACE_ID
    assert out.span_id != CALLER_SPAN
    assert headers["tracestate"] == TRACESTATE.encode()
    assert event.envelope.trace == out

    _, foreign_headers = by_content["foreign-1"]
    started = from_headers(foreign_headers)
    assert started is not None and started.trace_id != TRACE_ID

    # The projection logs the trace of what it applies, as JSON, with the event's ids: one
    # line per event at DEBUG (the INFO line of a batch names its last event only).
    prefix = settings.topic_prefix.strip(".")
    projection = Service(
        settings,
        ["projection", "bias-results"],
        ARTIFACTS / f"trace-{prefix}-projection-bias-results.log",
        tmp_path,
        level="DEBUG",
    )
    services["projection"] = projection
    deadline = time.monotonic() + 90
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        time.sleep(0.5)
        running = _json_lines(projection, strict=False)
        mine = [line for line in running if line.get("trace_id") == TRACE_ID]
    assert mine, f"no log line of the projection names trace {TRACE_ID}"
    line = mine[0]
    assert line["span_id"] == out.span_id
    assert line["event_id"] == str(event.envelope.event_id)
    assert line["correlation_id"] == "wf-trace"
    assert line["service"] == "projection-bias-results"
    assert {"timestamp", "level", "logger", "message"} <= line.keys()
    projection.stop()
    entries = _json_lines(projection)
    assert all(entry["service"] == "projection-bias-results" for entry in entries)
    batches = [e for e in entries if e["logger"] == "projections.runner" and e["level"] == "INFO"]
    assert batches, "no batch line from the projection runner"
    assert all(
        {"event_id", "correlation_id", "first_event_id", "batch_size"} <= b.keys() for b in batches
    )
