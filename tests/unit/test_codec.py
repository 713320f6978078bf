"""Unit tests for the codec: framings, headers, schema evolution, errors, validation."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.catalog import EVENT_TYPES, topic_name
from events.codec import (
    CONTENT_TYPE,
    DecodeError,
    EncodedMessage,
    EventCodec,
    ValidationError,
    ce_type,
    format_time,
    parse_ce_type,
)
from events.exceptions import SchemaNotFoundError, SchemaRegistryError
from events.model import Envelope, Event
from events.registry import ConfluentSchemaRegistry, InMemorySchemaRegistry
from events.store import SchemaStore
from events.testing import example_event, schema_of, write_schema_tree

STORE = SchemaStore.default()
OCCURRED = dt.datetime(2025, 6, 1, 12, 30, 45, 123000, tzinfo=dt.UTC)
EVENT_ID = uuid.UUID("0b6f5f5e-8f0e-4c8e-9d43-5a3f8b1c2d3e")


def _event(event_type: str, **overrides: Any) -> Event:
    event = example_event(event_type, correlation_id="flow-42", **overrides)
    envelope = Envelope(
        event_id=EVENT_ID,
        occurred_at=OCCURRED,
        source="tests/codec",
        subject=event.envelope.subject,
        correlation_id="flow-42",
        causation_id="cause-1",
    )
    return Event(event.type, envelope, event.payload)


def _with_payload(event: Event, **changes: Any) -> Event:
    return Event(event.type, event.envelope, {**event.payload, **changes})


def _headers(message: EncodedMessage) -> dict[str, str]:
    return {name: value.decode() for name, value in message.headers}


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_single_object_round_trip_for_every_type(event_type: str) -> None:
    codec = EventCodec()
    event = _event(event_type)
    message = codec.encode(event)
    sv = STORE.latest(event_type)
    assert message.value[:2] == b"\xc3\x01"
    assert message.value[2:10] == sv.fingerprint_bytes
    assert message.key == event.envelope.subject.encode()
    assert message.topic == topic_name(event_type)
    assert codec.decode(message.value, message.headers) == event
    assert codec.decode(message.value) == event


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_confluent_round_trip_for_every_type(event_type: str) -> None:
    registry = InMemorySchemaRegistry(first_id=100)
    codec = EventCodec(registry=registry, topic_prefix="t-1a2b3c.")
    event = _event(event_type)
    message = codec.encode(event)
    assert message.value[:1] == b"\x00"
    schema_id = int.from_bytes(message.value[1:5], "big")
    subject = f"t-1a2b3c.{topic_name(event_type)}-value"
    assert registry.versions(subject) == [schema_id]
    assert json.loads(registry.get_schema(schema_id)) == STORE.latest(event_type).schema
    assert message.topic == f"t-1a2b3c.{topic_name(event_type)}"
    # A fresh codec knows nothing cached and fetches the writer schema by id.
    assert EventCodec(registry=registry).decode(message.value, message.headers) == event


def test_headers_follow_the_cloudevents_kafka_binding() -> None:
    message = EventCodec().encode(_event("BiasScored"))
    headers = _headers(message)
    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": str(EVENT_ID),
        "ce_source": "tests/codec",
        "ce_type": "fairstream.BiasScored.v1",
        "ce_time": "2025-06-01T12:30:45.123Z",
        "ce_subject": "mk-2031-ad-03",
        "ce_dataschema": "urn:fairstream:schema:BiasScored:v1",
        "content-type": CONTENT_TYPE,
        "ce_correlationid": "flow-42",
        "ce_causationid": "cause-1",
    }
    assert all(isinstance(v, bytes) for _, v in message.headers)
    assert message.header("ce_type") == "fairstream.BiasScored.v1"
    assert message.header("missing") is None


def test_optional_extension_headers_are_left_out_when_unset() -> None:
    event = _event("BiasAlertRaised")
    bare = Event(
        event.type,
        Envelope(EVENT_ID, OCCURRED, "tests", event.envelope.subject),
        event.payload,
    )
    names = [name for name, _ in EventCodec().encode(bare).headers]
    assert "ce_correlationid" not in names and "ce_causationid" not in names


def test_confluent_dataschema_points_at_the_registry() -> None:
    registry = InMemorySchemaRegistry(first_id=7)
    message = EventCodec(registry=registry).encode(_event("ContentSubmitted"))
    assert message.header("ce_dataschema") == "urn:confluent:schema-id:7"


def test_ce_type_helpers_round_trip() -> None:
    assert ce_type("RevenueProjected", 3) == "fairstream.RevenueProjected.v3"
    assert parse_ce_type("fairstream.RevenueProjected.v3") == ("RevenueProjected", 3)
    assert parse_ce_type("fairstream.RevenueProjected") == ("RevenueProjected", None)
    offset = dt.timezone(dt.timedelta(hours=2))
    assert format_time(dt.datetime(2025, 1, 1, 14, 0, tzinfo=offset)) == "2025-01-01T12:00:00.000Z"


def test_decoded_values_use_python_types() -> None:
    codec = EventCodec()
    planned = codec.decode(codec.encode(_event("CampaignPlanned")).value)
    assert planned.payload["start_date"] == dt.date(2025, 7, 1)
    assert planned.envelope.occurred_at == OCCURRED
    assert planned.envelope.occurred_at.tzinfo is not None
    assert isinstance(planned.envelope.event_id, uuid.UUID)
    window = codec.decode(codec.encode(_event("MetricWindowClosed")).value)
    assert window.payload["window_start"] == dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    analytics = codec.decode(codec.encode(_event("AnalyticsEventRecorded")).value)
    assert analytics.payload["properties"] == {
        "scenario_type": "anxiety",
        "turns": 14,
        "duration_s": 812.5,
        "rated": True,
        "coupon": None,
    }


def test_missing_optional_fields_are_written_with_their_defaults() -> None:
    codec = EventCodec()
    envelope = Envelope.new(source="tests", subject="c-1", occurred_at=OCCURRED)
    event = Event("ContentSubmitted", envelope, {"content_id": "c-1", "text": "hello"})
    decoded = codec.decode(codec.encode(event).value)
    assert decoded.payload == {
        "content_id": "c-1",
        "text": "hello",
        "content_type": "other",
        "language": None,
        "speaker": None,
        "scenario_type": None,
        "session_id": None,
        "campaign_id": None,
        "demographics": None,
        "metadata": {},
    }


def test_decode_accepts_both_framings_whatever_it_writes() -> None:
    registry = InMemorySchemaRegistry()
    confluent = EventCodec(registry=registry)
    single = EventCodec()
    event = _event("ModelUsageRecorded")
    assert confluent.encoding == "confluent" and single.encoding == "single-object"
    assert confluent.decode(single.encode(event).value) == event
    assert confluent.decode(confluent.encode(event).value) == event


def test_decode_accepts_headers_as_a_mapping_or_str_pairs() -> None:
    codec = EventCodec()
    message = codec.encode(_event("OpportunityScored"))
    as_dict = {name: value for name, value in message.headers}
    as_str = [(name, value.decode()) for name, value in message.headers] + [("x", None)]
    assert codec.decode(message.value, as_dict) == codec.decode(message.value, as_str)


def test_registry_ids_are_cached_per_version() -> None:
    class CountingRegistry(InMemorySchemaRegistry):
        calls = 0

        def register(self, subject: str, schema: str) -> int:
            CountingRegistry.calls += 1
            return super().register(subject, schema)

    codec = EventCodec(registry=CountingRegistry())
    for _ in range(3):
        codec.encode(_event("CampaignScreened"))
    assert CountingRegistry.calls == 1


# -- schema evolution --------------------------------------------------------------------


def _evolved_store(tmp_path: Path) -> tuple[SchemaStore, SchemaStore]:
    v1 = schema_of("ContentSubmitted", 1)
    v2 = schema_of("ContentSubmitted", 1)
    v2["fields"].append({"name": "priority", "type": "int", "default": 5, "doc": "Added in v2."})
    content_type = v2["fields"][3]["type"]
    content_type["symbols"] = [*content_type["symbols"][:-1], "podcast_script", "other"]
    old = SchemaStore(write_schema_tree(tmp_path / "old", {"ContentSubmitted": [v1]}))
    new = SchemaStore(write_schema_tree(tmp_path / "new", {"ContentSubmitted": [v1, v2]}))
    return old, new


def test_v2_reader_reads_v1_data_through_schema_resolution(tmp_path: Path) -> None:
    old, new = _evolved_store(tmp_path)
    event = _event("ContentSubmitted")
    message = EventCodec(old).encode(event)
    decoded = EventCodec(new).decode(message.value, message.headers)
    assert decoded.payload == {**event.payload, "priority": 5}
    assert EventCodec(new).writer_schema(message.value).version == 1
    reencoded = EventCodec(new).encode(decoded)
    assert reencoded.header("ce_type") == "fairstream.ContentSubmitted.v2"
    assert reencoded.value[2:10] == new.latest("ContentSubmitted").fingerprint_bytes


def test_v2_reader_reads_v1_data_from_the_registry(tmp_path: Path) -> None:
    old, new = _evolved_store(tmp_path)
    registry = InMemorySchemaRegistry()
    message = EventCodec(old, registry).encode(_event("ContentSubmitted"))
    decoded = EventCodec(new, registry).decode(message.value)
    assert decoded.payload["priority"] == 5


def test_an_old_reader_reports_an_unknown_newer_fingerprint(tmp_path: Path) -> None:
    old, new = _evolved_store(tmp_path)
    message = EventCodec(new).encode(_event("ContentSubmitted"))
    fingerprint = new.latest("ContentSubmitted").fingerprint_hex
    with pytest.raises(DecodeError, match=f"unknown schema fingerprint {fingerprint}"):
        EventCodec(old).decode(message.value)


def test_registry_schema_unknown_locally_is_still_readable(tmp_path: Path) -> None:
    old, new = _evolved_store(tmp_path)
    registry = InMemorySchemaRegistry()
    event = _event("ContentSubmitted")
    message = EventCodec(new, registry).encode(_with_payload(event, content_type="ad"))
    # The old reader has never seen v2 but gets it from the registry and resolves it.
    decoded = EventCodec(old, registry).decode(message.value)
    assert decoded.payload["content_type"] == "ad"
    assert "priority" not in decoded.payload


# -- decode errors ----------------------------------------------------------------------------


@pytest.fixture
def message() -> EncodedMessage:
    return EventCodec().encode(_event("BiasScored"))


@pytest.mark.parametrize("value", [b"", None, bytearray()])
def test_empty_values_are_rejected(value: Any) -> None:
    with pytest.raises(DecodeError, match="empty value"):
        EventCodec().decode(value)


def test_unknown_magic_is_named() -> None:
    with pytest.raises(DecodeError, match="unknown magic bytes 7b 22"):
        EventCodec().decode(b'{"json": true}')
    with pytest.raises(DecodeError, match="unknown magic bytes c3 02"):
        EventCodec().decode(b"\xc3\x02" + bytes(20))


def test_truncated_headers_are_named() -> None:
    with pytest.raises(DecodeError, match="truncated single-object header: 5 bytes, need 10"):
        EventCodec().decode(b"\xc3\x01\x01\x02\x03")
    with pytest.raises(DecodeError, match="truncated Confluent header: 3 bytes, need 5"):
        EventCodec(registry=InMemorySchemaRegistry()).decode(b"\x00\x00\x01")


def test_truncated_body_is_named(message: EncodedMessage) -> None:
    with pytest.raises(DecodeError, match="truncated BiasScored v1 body"):
        EventCodec().decode(message.value[:-20])


def test_trailing_bytes_are_named(message: EncodedMessage) -> None:
    with pytest.raises(DecodeError, match="3 trailing bytes after the BiasScored v1 body"):
        EventCodec().decode(message.value + b"xyz")


def test_unknown_fingerprint_is_named(message: EncodedMessage) -> None:
    forged = b"\xc3\x01" + bytes.fromhex("0102030405060708") + message.value[10:]
    with pytest.raises(DecodeError, match="unknown schema fingerprint 0102030405060708"):
        EventCodec().decode(forged)


def test_unknown_schema_id_is_named() -> None:
    with pytest.raises(DecodeError, match="unknown schema id 4242"):
        EventCodec(registry=InMemorySchemaRegistry()).decode(
            b"\x00" + (4242).to_bytes(4, "big") + b"\x02"
        )


def test_confluent_value_without_a_registry_is_named() -> None:
    with pytest.raises(DecodeError, match="schema id 1, but no schema registry is configured"):
        EventCodec().decode(b"\x00\x00\x00\x00\x01\x02")


def test_registry_schema_of_another_kind_is_named() -> None:
    registry = InMemorySchemaRegistry()
    foreign = registry.register(
        "x-value", json.dumps({"type": "record", "name": "other.Thing", "fields": []})
    )
    with pytest.raises(DecodeError, match=r"is other\.Thing, not a fairstream event"):
        EventCodec(registry=registry).decode(b"\x00" + foreign.to_bytes(4, "big"))
    unknown = registry.register(
        "y-value",
        json.dumps(
            {"type": "record", "name": "Gone", "namespace": "fairstream.events", "fields": []}
        ),
    )
    with pytest.raises(DecodeError, match="unknown event type Gone"):
        EventCodec(registry=registry).decode(b"\x00" + unknown.to_bytes(4, "big"))


def test_corrupt_body_is_named(message: EncodedMessage) -> None:
    header = message.value[:10]
    # envelope.event_id is a string of length 36: give it invalid UTF-8.
    corrupt = header + b"\x48" + b"\xff" * 36 + message.value[47:]
    with pytest.raises(DecodeError, match="corrupt BiasScored v1 body: UnicodeDecodeError"):
        EventCodec().decode(corrupt)


def test_header_mismatches_are_named(message: EncodedMessage) -> None:
    with pytest.raises(DecodeError, match=r"ce_type header says 'fairstream\.BiasAlertRaised\.v1'"):
        EventCodec().decode(message.value, [("ce_type", b"fairstream.BiasAlertRaised.v1")])
    with pytest.raises(DecodeError, match="content-type header is 'application/json'"):
        EventCodec().decode(message.value, {"content-type": b"application/json"})


def _random_values(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    good = EventCodec().encode(_event("CampaignPlanned")).value
    for _ in range(count):
        choice = rng.random()
        if choice < 0.3:
            yield rng.randbytes(rng.randint(1, 64))
        elif choice < 0.6:
            yield good[:10] + rng.randbytes(rng.randint(0, 200))
        else:
            mutated = bytearray(good)
            for _ in range(rng.randint(1, 5)):
                mutated[rng.randrange(10, len(mutated))] = rng.randrange(256)
            yield bytes(mutated[: rng.randint(10, len(mutated))])


def test_random_bytes_raise_decode_error_or_decode_cleanly() -> None:
    codec = EventCodec(registry=InMemorySchemaRegistry())
    failures = 0
    for value in _random_values(seed=20250601, count=400):
        try:
            codec.decode(value)
        except DecodeError as exc:
            failures += 1
            assert exc.reason
    assert failures > 300


# -- validation ---------------------------------------------------------------------------


def _invalid(event: Event) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        EventCodec().encode(event)
    return info.value


def test_validation_error_names_a_nested_array_field() -> None:
    event = _event("BiasScored")
    dims = [*event.payload["dimensions"], {"dimension": "age", "score": "high", "confidence": 0.1}]
    error = _invalid(_with_payload(event, dimensions=dims))
    assert (error.event_type, error.field) == ("BiasScored", "dimensions[2].score")
    assert "expected a number (double), got str 'high'" in error.message
    assert str(error).startswith("BiasScored: dimensions[2].score: ")


@pytest.mark.parametrize(
    ("event_type", "changes", "field", "message"),
    [
        ("ContentSubmitted", {"text": 42}, "text", "expected string, got int 42"),
        ("ContentSubmitted", {"text": None}, "text", "is required (string), got null"),
        ("ContentSubmitted", {"colour": "red"}, "colour", "unknown field"),
        ("ContentSubmitted", {"metadata": {"k": 1}}, 'metadata["k"]', "expected string"),
        ("ContentSubmitted", {"speaker": "robot"}, "speaker", "not one of the symbols user"),
        (
            "ContentSubmitted",
            {"demographics": {"cultural_background": [3]}},
            "demographics.cultural_background[0]",
            "expected string",
        ),
        ("BiasScored", {"level": "severe"}, "level", "'severe' is not one of the symbols"),
        ("BiasScored", {"text_length": 2**31}, "text_length", "out of range for Avro int"),
        ("BiasScored", {"word_count": True}, "word_count", "expected int, got bool True"),
        ("CampaignPlanned", {"start_date": OCCURRED}, "start_date", "expected a date"),
        (
            "AgentTaskCompleted",
            {"started_at": dt.datetime(2025, 1, 1)},
            "started_at",
            "datetime must be timezone-aware",
        ),
        (
            "AnalyticsEventRecorded",
            {"properties": {"tags": ["a"]}},
            'properties["tags"]',
            "matches no branch of [null, boolean, long, double, string]",
        ),
    ],
)
def test_validation_errors_name_the_field(
    event_type: str, changes: dict[str, Any], field: str, message: str
) -> None:
    error = _invalid(_with_payload(_event(event_type), **changes))
    assert error.field == field
    assert message in error.message


def test_missing_required_field_is_named() -> None:
    event = _event("BiasAlertRaised")
    payload = {k: v for k, v in event.payload.items() if k != "reason"}
    error = _invalid(Event(event.type, event.envelope, payload))
    assert (error.field, error.message) == ("reason", "required field is missing")


def test_envelope_problems_are_named() -> None:
    event = _event("ContentSubmitted")
    naive = Envelope(EVENT_ID, dt.datetime(2025, 1, 1), "s", event.envelope.subject)
    assert _invalid(Event(event.type, naive, event.payload)).field == "envelope.occurred_at"
    bad_id = Envelope("nope", OCCURRED, "s", event.envelope.subject)  # type: ignore[arg-type]
    assert _invalid(Event(event.type, bad_id, event.payload)).field == "envelope.event_id"
    other = Envelope(EVENT_ID, OCCURRED, "s", "someone-else")
    error = _invalid(Event(event.type, other, event.payload))
    assert error.field == "envelope.subject"
    assert "differs from the subject field content_id" in error.message
    nested = _invalid(_with_payload(event, envelope={"x": 1}))
    assert nested.field == "envelope"


def test_unknown_event_type_is_a_validation_error() -> None:
    event = _event("ContentSubmitted")
    error = _invalid(Event("ContentDeleted", event.envelope, event.payload))
    assert (error.event_type, error.field) == ("ContentDeleted", "type")


def test_validate_accepts_what_encode_writes() -> None:
    codec = EventCodec()
    for event_type in EVENT_TYPES:
        codec.validate(_event(event_type))


# -- the Confluent REST client ----------------------------------------------------------------


class FakeConfluent:
    """Answer the few Schema Registry REST calls the client makes."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.config: dict[str, str] = {}
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        parts = request.url.path.strip("/").split("/")
        body = json.loads(request.content) if request.content else {}
        if request.method == "POST" and parts[0] == "subjects" and parts[2] == "versions":
            assert request.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
            if "incompatible" in body["schema"]:
                return httpx.Response(
                    409,
                    json={"error_code": 409, "message": "Schema being registered is incompatible"},
                )
            schema_id = next((i for i, s in self.schemas.items() if s == body["schema"]), None)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.schemas[schema_id] = body["schema"]
            self.subjects.setdefault(parts[1], []).append(schema_id)
            return httpx.Response(200, json={"id": schema_id})
        if request.method == "GET" and parts[:2] == ["schemas", "ids"]:
            schema = self.schemas.get(int(parts[2]))
            if schema is None:
                return httpx.Response(
                    404, json={"error_code": 40403, "message": "Schema not found"}
                )
            return httpx.Response(200, json={"schema": schema})
        if request.method == "PUT" and parts[0] == "config":
            self.config[parts[1]] = body["compatibility"]
            return httpx.Response(200, json=body)
        return httpx.Response(500, text="unexpected")


@pytest.fixture
def fake() -> FakeConfluent:
    return FakeConfluent()


@pytest.fixture
def confluent(fake: FakeConfluent) -> Iterator[ConfluentSchemaRegistry]:
    client = httpx.Client(transport=httpx.MockTransport(fake))
    with ConfluentSchemaRegistry("http://registry:8081/", client=client) as registry:
        yield registry
    client.close()


def test_confluent_client_registers_fetches_and_caches(
    fake: FakeConfluent, confluent: ConfluentSchemaRegistry
) -> None:
    schema = STORE.latest("BiasScored").schema_json
    assert confluent.register("p.bias.scored-value", schema) == 1
    assert confluent.register("p.bias.scored-value", schema) == 1
    assert confluent.get_schema(1) == schema
    assert fake.requests == ["POST /subjects/p.bias.scored-value/versions"]
    confluent.set_compatibility("p.bias.scored-value")
    assert fake.config == {"p.bias.scored-value": "BACKWARD_TRANSITIVE"}


def test_confluent_client_reports_errors(confluent: ConfluentSchemaRegistry) -> None:
    with pytest.raises(SchemaNotFoundError, match="schema id 99 not found"):
        confluent.get_schema(99)
    with pytest.raises(SchemaRegistryError, match=r"HTTP 409 .*incompatible"):
        confluent.register("s-value", '{"type": "string", "doc": "incompatible"}')


def test_confluent_client_reports_an_unreachable_registry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    registry = ConfluentSchemaRegistry("http://nowhere:8081", client=client)
    with pytest.raises(
        SchemaRegistryError, match="cannot reach the schema registry at http://nowhere:8081"
    ):
        registry.get_schema(1)
    client.close()
    codec = EventCodec(
        registry=ConfluentSchemaRegistry(
            "http://nowhere:8081", client=httpx.Client(transport=httpx.MockTransport(refuse))
        )
    )
    with pytest.raises(DecodeError, match="cannot fetch schema id 5"):
        codec.decode(b"\x00\x00\x00\x00\x05\x00")
    codec.close()


def test_codec_over_the_rest_client_round_trips(
    fake: FakeConfluent, confluent: ConfluentSchemaRegistry
) -> None:
    codec = EventCodec(registry=confluent, topic_prefix="t-9.")
    event = _event("RevenueProjectionRequested")
    message = codec.encode(event)
    assert fake.subjects == {"t-9.revenue.projection.requested-value": [1]}
    assert message.header("ce_dataschema") == "http://registry:8081/schemas/ids/1"
    other = FakeConfluent()
    other.schemas = fake.schemas
    client = httpx.Client(transport=httpx.MockTransport(other))
    reader = EventCodec(registry=ConfluentSchemaRegistry("http://registry:8081", client=client))
    assert reader.decode(message.value, message.headers) == event
    assert other.requests == ["GET /schemas/ids/1"]
    client.close()


def test_from_url_picks_the_framing() -> None:
    assert EventCodec.from_url(None).encoding == "single-object"
    codec = EventCodec.from_url("http://registry:8081", topic_prefix="p.")
    assert codec.encoding == "confluent" and codec.topic_prefix == "p."
    codec.close()


def test_a_fresh_envelope_survives_the_round_trip() -> None:
    codec = EventCodec()
    envelope = Envelope.new(source="tests", subject="c-9")
    event = Event("ContentSubmitted", envelope, {"content_id": "c-9", "text": "hi"})
    decoded = codec.decode(codec.encode(event).value)
    assert decoded.envelope == envelope


def test_trusted_encode_skips_the_deep_check_but_the_writer_still_refuses_wrong_types() -> None:
    import dataclasses

    from events.jsonform import event_from_json

    codec = EventCodec()
    event = event_from_json("ContentSubmitted", {"content_id": "c-1", "text": "hi"}, source="t")
    assert codec.encode(event, validate=False).value == codec.encode(event).value
    bad = dataclasses.replace(event, payload={**event.payload, "text": 5})
    with pytest.raises(ValidationError, match="text"):
        codec.encode(bad, validate=False)
