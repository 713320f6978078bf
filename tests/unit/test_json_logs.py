"""Unit tests for fairstream/logs.py: JSON lines, event context, redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from events.model import Envelope, Event
from events.tracecontext import parse_traceparent
from fairstream.logs import (
    configure_logging,
    handling_batch,
    handling_event,
    log_batch,
    redact,
)
from fairstream.settings import Settings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def root_restored() -> Iterator[None]:
    """Put the root logger's handlers and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _capture(fmt: str = "json", secrets: tuple[str, ...] = ()) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(
        service="projection-test", fmt=fmt, level="DEBUG", secrets=secrets, stream=stream
    )
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _event(correlation_id: str | None = "corr-1", traced: bool = True) -> Event:
    envelope = Envelope.new(
        source="test",
        subject="c-1",
        correlation_id=correlation_id,
        trace=parse_traceparent(TRACEPARENT) if traced else None,
    )
    return Event(type="ContentSubmitted", envelope=envelope, payload={"content_id": "c-1"})


def test_every_record_is_one_json_object_with_the_base_fields(root_restored: None) -> None:
    stream = _capture()
    logging.getLogger("fairstream.test").info("hello %s\nsecond line", "world")
    [line] = _lines(stream)
    assert line["message"] == "hello world\nsecond line"
    assert line["level"] == "INFO"
    assert line["logger"] == "fairstream.test"
    assert line["service"] == "projection-test"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert "event_id" not in line and "trace_id" not in line
    assert stream.getvalue().count("\n") == 1


def test_records_logged_while_handling_an_event_carry_its_ids(root_restored: None) -> None:
    stream = _capture()
    event = _event()
    log = logging.getLogger("fairstream.test")
    with handling_event(event):
        log.warning("inside")
    log.warning("outside")
    inside, outside = _lines(stream)
    assert inside["event_id"] == str(event.envelope.event_id)
    assert inside["correlation_id"] == "corr-1"
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside["span_id"] == "00f067aa0ba902b7"
    assert "event_id" not in outside


def test_an_uncorrelated_untraced_event_is_its_own_correlation(root_restored: None) -> None:
    stream = _capture()
    event = _event(correlation_id=None, traced=False)
    with handling_event(event):
        logging.getLogger("x").info("m")
    [line] = _lines(stream)
    assert line["correlation_id"] == line["event_id"] == str(event.envelope.event_id)
    assert "trace_id" not in line


def test_a_batch_logs_its_last_event_and_first_id_and_size(root_restored: None) -> None:
    stream = _capture()
    events = [_event(correlation_id=f"c-{i}") for i in range(3)]
    with handling_batch(events):
        logging.getLogger("x").info("batch")
    log_batch(logging.getLogger("y"), events, "applied %d", 3)
    lines = _lines(stream)
    batch = lines[0]
    assert batch["event_id"] == str(events[-1].envelope.event_id)
    assert batch["correlation_id"] == "c-2"
    assert batch["first_event_id"] == str(events[0].envelope.event_id)
    assert batch["batch_size"] == 3
    # log_batch at DEBUG: one line per event with that event's ids, then the batch line.
    assert [line["event_id"] for line in lines[1:4]] == [str(e.envelope.event_id) for e in events]
    assert lines[4]["message"] == "applied 3" and lines[4]["batch_size"] == 3


def test_text_format_appends_the_event_ids(root_restored: None) -> None:
    stream = _capture(fmt="text")
    event = _event()
    with handling_event(event):
        logging.getLogger("x").info("plain")
    text = stream.getvalue()
    assert " INFO x: plain [" in text
    assert f"event_id={event.envelope.event_id}" in text
    with pytest.raises(ValueError, match="log format"):
        configure_logging(service="s", fmt="xml")


SECRETS = {
    "dsn": "postgresql://fairstream:Pg-Secret-123@db:5432/fairstream",
    "libpq": "host=db user=fairstream password=Pg-Secret-123 dbname=x",
    "sasl": 'sasl.jaas.config=ScramLoginModule required username="svc" password="Sasl-Pw-456";',
    "env": "FAIRSTREAM_KAFKA_SASL_PASSWORD=Sasl-Pw-456",
    "api_key": "Authorization: Bearer fs_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "bare_key": "key fs_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz012345 refused",
    "json": '{"api_key": "Key-789-xyz", "user": "u"}',
    "redis": "redis://:Redis-Pw-000@redis:6379/0",
    "known": "connected with Configured-Secret-42 as a plain word",
}
LEAKS = (
    "Pg-Secret-123",
    "Sasl-Pw-456",
    "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "Key-789-xyz",
    "Redis-Pw-000",
    "Configured-Secret-42",
)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_reaches_the_log(fmt: str, root_restored: None) -> None:
    stream = _capture(fmt=fmt, secrets=("Configured-Secret-42",))
    log = logging.getLogger("fairstream.secrets")
    for name, text in SECRETS.items():
        log.info("%s: %s", name, text)
    try:
        raise ConnectionError(f"cannot connect to {SECRETS['dsn']}")
    except ConnectionError:
        log.exception("failed with %s", SECRETS["sasl"])
    output = stream.getvalue()
    for leak in LEAKS:
        assert leak not in output, leak
    assert "***" in output
    assert 'username="svc"' in output or 'username=\\"svc\\"' in output  # not over-redacted
    assert "ConnectionError" in output  # the traceback is kept, redacted


def test_redaction_keeps_ordinary_text() -> None:
    text = "max_tokens=256 applied 3 events to postgresql://fairstream@db:5432/x"
    assert redact(text) == text
    assert redact("password: hunter22") == "password: ***"
    # Kafka's protocol debug lines name api keys by number; longer numbers are redacted.
    assert redact("(api_key=3, min_version=0)") == "(api_key=3, min_version=0)"
    assert redact("pwd=123456") == "pwd=***"


def test_settings_secrets_are_collected_for_redaction() -> None:
    from fairstream.bootstrap import settings_secrets

    settings = Settings(
        postgres_dsn=SecretStr("postgresql://fs:Pg-Secret-123@db/fs"),
        redis_url="redis://:Redis-Pw-000@redis:6379/0",
        mongo_url="mongodb://fs:Mongo-Pw-1@mongo:27017/",
        kafka_sasl_password=SecretStr("Sasl-Pw-456"),
    )
    found = settings_secrets(settings)
    assert {"Pg-Secret-123", "Redis-Pw-000", "Mongo-Pw-1", "Sasl-Pw-456"} <= set(found)
    assert settings_secrets(Settings(postgres_dsn=SecretStr("postgresql://fs@db/fs"))) == []


def test_event_ids_are_strings_in_json(root_restored: None) -> None:
    stream = _capture()
    event = _event()
    with handling_event(event):
        logging.getLogger("x").info("m")
    assert uuid.UUID(_lines(stream)[0]["event_id"]) == event.envelope.event_id
