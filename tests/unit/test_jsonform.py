"""Unit tests for the JSON form of events (NDJSON input and output)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from events.catalog import EVENT_TYPES
from events.codec import EventCodec
from events.exceptions import UnknownEventTypeError, ValidationError
from events.jsonform import event_from_json, event_to_json, load_example


def _minimal_content(**extra: Any) -> dict[str, Any]:
    return {"content_id": "c-1", "text": "Hello there", **extra}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_example_round_trips_through_json_and_avro(event_type: str) -> None:
    event = event_from_json(event_type, load_example(event_type), source="tests")
    as_json = event_to_json(event)
    text = json.dumps(as_json)
    assert event_from_json(event_type, json.loads(text), source="ignored") == event
    codec = EventCodec()
    assert event_to_json(codec.decode(codec.encode(event).value)) == as_json


def test_envelope_is_filled_in() -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=1)
    event = event_from_json(
        "ContentSubmitted", _minimal_content(), source="cli/publish", correlation_id="run-7"
    )
    after = dt.datetime.now(dt.UTC)
    envelope = event.envelope
    assert isinstance(envelope.event_id, uuid.UUID)
    assert before <= envelope.occurred_at <= after
    assert envelope.occurred_at.microsecond % 1000 == 0
    assert envelope.source == "cli/publish"
    assert envelope.subject == "c-1"
    assert envelope.correlation_id == "run-7"
    assert envelope.causation_id is None


def test_envelope_fields_given_in_the_object_win() -> None:
    event_id = "6f1f2d0c-3f7e-4f0e-8a59-1f9d7b1e2a44"
    obj = _minimal_content(
        envelope={
            "event_id": event_id,
            "occurred_at": "2025-03-04T10:11:12.345678+02:00",
            "source": "importer",
            "correlation_id": "c",
            "causation_id": "e-0",
        }
    )
    envelope = event_from_json("ContentSubmitted", obj, source="cli", correlation_id="x").envelope
    assert envelope.event_id == uuid.UUID(event_id)
    assert envelope.occurred_at == dt.datetime(2025, 3, 4, 8, 11, 12, 345000, tzinfo=dt.UTC)
    assert (envelope.source, envelope.correlation_id, envelope.causation_id) == (
        "importer",
        "c",
        "e-0",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1735689600000, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        ("2025-01-01T00:00:00Z", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        ("2025-01-01T00:00:00", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        ("2025-01-01", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_timestamps_accept_iso_strings_and_epoch_millis(value: Any, expected: dt.datetime) -> None:
    obj = _minimal_content(envelope={"occurred_at": value})
    assert event_from_json("ContentSubmitted", obj, source="s").envelope.occurred_at == expected


def test_missing_optional_fields_get_defaults_including_nested_records() -> None:
    event = event_from_json("RevenueProjectionRequested", {"projection_id": "p-1"}, source="s")
    payload = event.payload
    assert payload["business_model"] == "freemium"
    assert payload["months"] == 36 and payload["acquisition_per_month"] == 50.0
    assert payload["tiers"][0] == {
        "name": "basic",
        "price_monthly": 9.99,
        "price_yearly": None,
        "share": 0.6,
        "features": [],
    }
    content = event_from_json("ContentSubmitted", _minimal_content(), source="s").payload
    assert content["content_type"] == "other" and content["metadata"] == {}


def test_values_convert_for_avro() -> None:
    planned = load_example("CampaignPlanned")
    event = event_from_json("CampaignPlanned", planned, source="s")
    assert event.payload["start_date"] == dt.date(2025, 7, 1)
    assert event.payload["channels"][0]["items"][0]["publish_date"] == dt.date(2025, 7, 1)
    usage = load_example("ModelUsageRecorded")
    usage["latency_ms"] = 842  # an integer is a fine double
    usage["input_tokens"] = 512.0  # an integral float is a fine int
    payload = event_from_json("ModelUsageRecorded", usage, source="s").payload
    assert payload["latency_ms"] == 842.0 and isinstance(payload["latency_ms"], float)
    assert payload["input_tokens"] == 512 and isinstance(payload["input_tokens"], int)
    task = event_from_json(
        "AgentTaskCompleted", {**load_example("AgentTaskCompleted"), "started_at": 0}, source="s"
    )
    assert task.payload["started_at"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_union_values_are_given_plainly() -> None:
    obj = {
        "session_id": "s-1",
        "name": "clicked",
        "properties": {"flag": True, "count": 3, "ratio": 0.5, "label": "x", "none": None},
    }
    payload = event_from_json("AnalyticsEventRecorded", obj, source="s").payload
    assert payload["properties"] == obj["properties"]
    assert isinstance(payload["properties"]["flag"], bool)
    assert payload["analytics_type"] == "custom" and payload["priority"] == "normal"


def test_event_to_json_is_plain_json() -> None:
    event = event_from_json("CampaignPlanned", load_example("CampaignPlanned"), source="s")
    out = event_to_json(event)
    assert out["start_date"] == "2025-07-01"
    assert out["envelope"]["occurred_at"].endswith("Z")
    assert out["envelope"]["event_id"] == str(event.envelope.event_id)
    json.dumps(out)


def _error(event_type: str, obj: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        event_from_json(event_type, obj, source="s")
    return info.value


@pytest.mark.parametrize(
    ("event_type", "obj", "field", "message"),
    [
        ("ContentSubmitted", _minimal_content(colour="red"), "colour", "unknown field"),
        (
            "ContentSubmitted",
            _minimal_content(envelope={"trace": "t"}),
            "envelope.trace",
            "unknown field",
        ),
        ("ContentSubmitted", {"text": "no id"}, "content_id", "required field is missing"),
        ("ContentSubmitted", _minimal_content(text=None), "text", "is required (string)"),
        ("ContentSubmitted", _minimal_content(text=5), "text", "expected a string, got int 5"),
        (
            "ContentSubmitted",
            _minimal_content(content_type="tweet"),
            "content_type",
            "'tweet' is not one of the symbols therapy_transcript",
        ),
        (
            "ContentSubmitted",
            _minimal_content(demographics={"age_band": 30}),
            "demographics.age_band",
            "expected a string",
        ),
        (
            "ContentSubmitted",
            _minimal_content(metadata={"a": "1", "b": 2}),
            'metadata["b"]',
            "expected a string",
        ),
        (
            "ContentSubmitted",
            _minimal_content(envelope={"occurred_at": "yesterday"}),
            "envelope.occurred_at",
            "not an ISO-8601 timestamp: 'yesterday'",
        ),
        (
            "ContentSubmitted",
            _minimal_content(envelope={"occurred_at": True}),
            "envelope.occurred_at",
            "expected an ISO-8601 string or epoch milliseconds",
        ),
        (
            "ContentSubmitted",
            _minimal_content(envelope={"event_id": "42"}),
            "envelope.event_id",
            "not a UUID: '42'",
        ),
        (
            "ContentSubmitted",
            _minimal_content(envelope={"subject": "c-2"}),
            "envelope.subject",
            "'c-2' differs from the subject field content_id = 'c-1'",
        ),
        ("ContentSubmitted", _minimal_content(envelope=[1]), "envelope", "expected a JSON object"),
        ("ContentSubmitted", [1, 2], "$", "expected a JSON object, got list"),
        ("NoSuchEvent", {}, "type", "unknown event type 'NoSuchEvent'"),
        (
            "BiasScored",
            {
                **load_example("BiasScored"),
                "dimensions": [{"dimension": "age", "score": "0.5", "confidence": 1}],
            },
            "dimensions[0].score",
            "expected a number (double), got str '0.5'",
        ),
        (
            "BiasScored",
            {**load_example("BiasScored"), "word_count": 2.5},
            "word_count",
            "expected an integer (int), got float 2.5",
        ),
        (
            "BiasScored",
            {**load_example("BiasScored"), "text_length": True},
            "text_length",
            "expected an integer (int), got bool True",
        ),
        (
            "CampaignPlanned",
            {**load_example("CampaignPlanned"), "end_date": "31/07/2025"},
            "end_date",
            "not an ISO-8601 date (YYYY-MM-DD): '31/07/2025'",
        ),
        (
            "ModelUsageRecorded",
            {**load_example("ModelUsageRecorded"), "success": "yes"},
            "success",
            "expected true or false",
        ),
        (
            "AnalyticsEventRecorded",
            {"session_id": "s", "name": "n", "properties": {"x": {"nested": 1}}},
            'properties["x"]',
            "matches no branch of [null, boolean, long, double, string]",
        ),
        (
            "MetricWindowClosed",
            {**load_example("MetricWindowClosed"), "latency_p95_ms": "fast"},
            "latency_p95_ms",
            "expected a number (double)",
        ),
    ],
)
def test_problems_name_the_field(event_type: str, obj: Any, field: str, message: str) -> None:
    error = _error(event_type, obj)
    assert error.event_type == event_type
    assert error.field == field
    assert message in error.message


def test_load_example_names_a_missing_example() -> None:
    with pytest.raises(UnknownEventTypeError, match="no example for Nope"):
        load_example("Nope")
