"""The one place events become Kafka message bytes and back.

Value framing (both carry an Avro binary body written with the latest schema):

- Avro single-object encoding (default): `C3 01`, the writer schema's CRC-64-AVRO
  fingerprint as 8 little-endian bytes, then the body. No registry needed; the
  reader finds the writer schema in the local store by fingerprint.
- Confluent wire format (when a schema registry is configured): byte `00`, the
  4-byte big-endian global schema id, then the body. The schema is registered under
  `<topic>-value` (TopicNameStrategy); readers fetch it by id.

`decode` accepts both framings whatever the codec is configured to write, and reads
with the latest local schema of the event type, so data written with any earlier
version resolves through Avro schema resolution.

Headers are CloudEvents 1.0 Kafka protocol binding, binary content mode:

| header | value |
|---|---|
| `ce_specversion` | `1.0` |
| `ce_id` | envelope.event_id |
| `ce_source` | envelope.source |
| `ce_type` | `fairstream.<EventType>.v<N>`, N = writer schema version |
| `ce_time` | envelope.occurred_at, RFC 3339 UTC with milliseconds (`...T12:00:00.123Z`) |
| `ce_subject` | envelope.subject (also the Kafka key) |
| `ce_dataschema` | `<registry-url>/schemas/ids/<id>` (Confluent wire format) or |
|  | `urn:fairstream:schema:<EventType>:v<N>` (single-object encoding) |
| `content-type` | `application/avro` (framing is told by the value's magic bytes) |
| `ce_correlationid`, `ce_causationid` | extension attributes, only when set |
| `traceparent`, `tracestate` | W3C Trace Context (events/tracecontext.py), when the |
|  | envelope has a trace; decoded into `Envelope.trace`, an invalid one is ignored |
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import fastavro
from fastavro.read import SchemaResolutionError

from events.catalog import subject_field, topic_name
from events.conform import FieldError, ValueChecker
from events.exceptions import (
    DecodeError,
    SchemaNotFoundError,
    SchemaRegistryError,
    SchemaStoreError,
    UnknownEventTypeError,
    ValidationError,
)
from events.model import Envelope, Event
from events.registry import ConfluentSchemaRegistry, SchemaRegistryClient, value_subject
from events.store import NAMESPACE, SchemaStore, SchemaVersion
from events.tracecontext import TraceContext, from_headers

__all__ = [
    "CE_SPECVERSION",
    "CONFLUENT_MAGIC",
    "CONTENT_TYPE",
    "SINGLE_OBJECT_MAGIC",
    "DecodeError",
    "EncodedMessage",
    "EventCodec",
    "ValidationError",
    "ce_type",
    "parse_ce_type",
]

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = b"\x00"
SINGLE_OBJECT_HEADER_SIZE: Final = 10
CONFLUENT_HEADER_SIZE: Final = 5
CONTENT_TYPE: Final = "application/avro"
CE_SPECVERSION: Final = "1.0"
CE_TYPE_PREFIX: Final = "fairstream."
ENCODING_SINGLE_OBJECT: Final = "single-object"
ENCODING_CONFLUENT: Final = "confluent"

Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """Hold what a producer sends: key, value, headers, and the (prefixed) topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str = field(default="")

    def header(self, name: str) -> str | None:
        """Return the first header called `name`, decoded as UTF-8."""
        for header_name, value in self.headers:
            if header_name == name:
                return value.decode("utf-8")
        return None


def ce_type(event_type: str, version: int) -> str:
    """Return the CloudEvents type of an event type's schema version."""
    return f"{CE_TYPE_PREFIX}{event_type}.v{version}"


def parse_ce_type(value: str) -> tuple[str, int | None]:
    """Split a CloudEvents type back into event type and version (None if absent)."""
    name = value.removeprefix(CE_TYPE_PREFIX)
    base, _, suffix = name.rpartition(".v")
    if base and suffix.isdigit():
        return base, int(suffix)
    return name, None


def format_time(value: dt.datetime) -> str:
    """Return an RFC 3339 UTC timestamp with millisecond precision."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = aware.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class EventCodec:
    """Encode events to Kafka messages and decode them back (Avro + CloudEvents headers).

    With no `registry` the codec writes single-object encoding; with one (a
    `SchemaRegistryClient`, e.g. `ConfluentSchemaRegistry` or `InMemorySchemaRegistry`)
    it writes the Confluent wire format, registering schemas under
    `<topic_prefix><topic>-value`.
    """

    def __init__(
        self,
        store: SchemaStore | None = None,
        registry: SchemaRegistryClient | None = None,
        *,
        topic_prefix: str = "",
    ) -> None:
        self.store = store if store is not None else SchemaStore.default()
        self.registry = registry
        self.topic_prefix = topic_prefix
        self._checkers: dict[SchemaVersion, ValueChecker] = {}
        self._ids_by_version: dict[tuple[str, int], int] = {}
        self._versions_by_id: dict[int, SchemaVersion] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        schema_registry_url: str | None,
        *,
        topic_prefix: str = "",
        store: SchemaStore | None = None,
    ) -> EventCodec:
        """Create a codec that uses the Confluent registry at the URL, or none if it is empty."""
        registry = ConfluentSchemaRegistry(schema_registry_url) if schema_registry_url else None
        return cls(store, registry, topic_prefix=topic_prefix)

    @property
    def encoding(self) -> str:
        """Return the framing `encode` writes: `single-object` or `confluent`."""
        return ENCODING_CONFLUENT if self.registry is not None else ENCODING_SINGLE_OBJECT

    def close(self) -> None:
        """Release the registry client if it has a `close` method."""
        close = getattr(self.registry, "close", None)
        if callable(close):
            close()

    # -- validation -------------------------------------------------------------------

    def validate(self, event: Event) -> None:
        """Raise ValidationError unless `event` fits the latest schema of its type."""
        self._record_for(event)

    def _record_for(
        self, event: Event, *, deep: bool = True
    ) -> tuple[SchemaVersion, dict[str, Any]]:
        """Validate `event` and return the writer schema and the Avro record to write.

        With `deep=False` only the shape is checked (known type, envelope, payload
        mapping, subject); the per-field walk against the schema is skipped.
        """
        try:
            writer = self.store.latest(event.type)
        except UnknownEventTypeError as exc:
            raise ValidationError(event.type, "type", str(exc)) from None
        if not isinstance(event.envelope, Envelope):
            raise ValidationError(event.type, "envelope", "expected an Envelope")
        if not isinstance(event.payload, Mapping):
            raise ValidationError(event.type, "payload", "expected a mapping of payload fields")
        if "envelope" in event.payload:
            raise ValidationError(
                event.type, "envelope", "the payload must not contain an `envelope` field"
            )
        envelope = event.envelope
        record: dict[str, Any] = {
            "envelope": {
                "event_id": envelope.event_id,
                "occurred_at": envelope.occurred_at,
                "source": envelope.source,
                "subject": envelope.subject,
                "correlation_id": envelope.correlation_id,
                "causation_id": envelope.causation_id,
            },
            **event.payload,
        }
        if deep:
            try:
                self._checker(writer).check(writer.record, record, "")
            except FieldError as exc:
                raise ValidationError(event.type, exc.path, exc.message) from None
        self._check_subject(event)
        return writer, record

    def _check_subject(self, event: Event) -> None:
        try:
            name = subject_field(event.type)
        except UnknownEventTypeError as exc:
            raise ValidationError(event.type, "type", f"not in the catalog: {exc}") from None
        value = event.payload.get(name)
        if not event.envelope.subject:
            raise ValidationError(event.type, "envelope.subject", "must not be empty")
        if value != event.envelope.subject:
            raise ValidationError(
                event.type,
                "envelope.subject",
                f"{event.envelope.subject!r} differs from the subject field {name} = {value!r}",
            )

    def _checker(self, sv: SchemaVersion) -> ValueChecker:
        checker = self._checkers.get(sv)
        if checker is None:
            checker = self._checkers[sv] = ValueChecker(sv.qualified)
        return checker

    # -- encoding ---------------------------------------------------------------------

    def encode(self, event: Event, *, validate: bool = True) -> EncodedMessage:
        """Validate `event` and return its Kafka key, framed Avro value and headers.

        `validate=False` is the trusted path for records a processor builds itself from
        already-decoded input (e.g. BiasScored from a scorer's assessment): it skips the
        deep per-field check, which costs more than the Avro write. Everything else
        stays: the type, envelope and subject checks, and fastavro's writer, which
        still refuses values of the wrong type (as ValidationError), though with a less
        precise path than the deep check gives. Code that publishes external or
        user-supplied events must keep the default.
        """
        writer, record = self._record_for(event, deep=validate)
        body = io.BytesIO()
        try:
            fastavro.schemaless_writer(body, writer.parsed, record, disable_tuple_notation=True)
        except (ValueError, TypeError, OverflowError, struct.error, AttributeError) as exc:
            # Validation mirrors fastavro's rules; this is a safety net, not a path.
            raise ValidationError(event.type, "$", f"Avro writer refused the event: {exc}") from exc
        topic = topic_name(event.type, self.topic_prefix)
        if self.registry is None:
            prefix = SINGLE_OBJECT_MAGIC + writer.fingerprint_bytes
            dataschema = f"urn:fairstream:schema:{writer.event_type}:v{writer.version}"
        else:
            schema_id = self._schema_id(writer, topic)
            prefix = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
            dataschema = self._dataschema_url(schema_id)
        return EncodedMessage(
            key=event.key,
            value=prefix + body.getvalue(),
            headers=self._headers(event, writer, dataschema),
            topic=topic,
        )

    def _schema_id(self, writer: SchemaVersion, topic: str) -> int:
        assert self.registry is not None
        cache_key = (writer.event_type, writer.version)
        schema_id = self._ids_by_version.get(cache_key)
        if schema_id is None:
            schema_id = self.registry.register(value_subject(topic), writer.schema_json)
            with self._lock:
                self._ids_by_version[cache_key] = schema_id
                self._versions_by_id[schema_id] = writer
        return schema_id

    def _dataschema_url(self, schema_id: int) -> str:
        url = getattr(self.registry, "url", None)
        if isinstance(url, str) and url:
            return f"{url}/schemas/ids/{schema_id}"
        return f"urn:confluent:schema-id:{schema_id}"

    @staticmethod
    def _headers(event: Event, writer: SchemaVersion, dataschema: str) -> list[tuple[str, bytes]]:
        envelope = event.envelope
        pairs = [
            ("ce_specversion", CE_SPECVERSION),
            ("ce_id", str(envelope.event_id)),
            ("ce_source", envelope.source),
            ("ce_type", ce_type(writer.event_type, writer.version)),
            ("ce_time", format_time(envelope.occurred_at)),
            ("ce_subject", envelope.subject),
            ("ce_dataschema", dataschema),
            ("content-type", CONTENT_TYPE),
        ]
        if envelope.correlation_id is not None:
            pairs.append(("ce_correlationid", envelope.correlation_id))
        if envelope.causation_id is not None:
            pairs.append(("ce_causationid", envelope.causation_id))
        headers = [(name, value.encode("utf-8")) for name, value in pairs]
        if envelope.trace is not None:
            headers += envelope.trace.headers()
        return headers

    # -- decoding ---------------------------------------------------------------------

    def decode(
        self, value: bytes | bytearray | memoryview | None, headers: Headers | None = None
    ) -> Event:
        """Turn a Kafka message value (either framing) back into an event."""
        if value is None or len(value) == 0:
            raise DecodeError("empty value: a null or zero-length message is not an event")
        data = bytes(value)
        writer, body = self._writer_and_body(data)
        try:
            reader = self.store.latest(writer.event_type)
        except UnknownEventTypeError:
            raise DecodeError(
                f"unknown event type {writer.event_type}: no local schema to read it with"
            ) from None
        if headers is not None:
            self._check_headers(headers, writer.event_type)
        record = self._read_body(body, writer, reader)
        return _event_from_record(reader.event_type, record, from_headers(headers))

    def writer_schema(self, value: bytes) -> SchemaVersion:
        """Return the schema version a framed value was written with."""
        if not value:
            raise DecodeError("empty value: a null or zero-length message is not an event")
        return self._writer_and_body(bytes(value))[0]

    def _writer_and_body(self, data: bytes) -> tuple[SchemaVersion, bytes]:
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < SINGLE_OBJECT_HEADER_SIZE:
                raise DecodeError(
                    f"truncated single-object header: {len(data)} bytes, "
                    f"need {SINGLE_OBJECT_HEADER_SIZE}"
                )
            fingerprint = int.from_bytes(data[2:SINGLE_OBJECT_HEADER_SIZE], "little")
            writer = self.store.by_fingerprint(fingerprint)
            if writer is None:
                raise DecodeError(
                    f"unknown schema fingerprint {data[2:SINGLE_OBJECT_HEADER_SIZE].hex()} "
                    "(CRC-64-AVRO): no local schema version has it"
                )
            return writer, data[SINGLE_OBJECT_HEADER_SIZE:]
        if data[:1] == CONFLUENT_MAGIC:
            if len(data) < CONFLUENT_HEADER_SIZE:
                raise DecodeError(
                    f"truncated Confluent header: {len(data)} bytes, need {CONFLUENT_HEADER_SIZE}"
                )
            schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big")
            return self._writer_for_id(schema_id), data[CONFLUENT_HEADER_SIZE:]
        raise DecodeError(
            f"unknown magic bytes {data[:2].hex(' ')}: expected c3 01 (Avro single-object) "
            "or 00 (Confluent wire format)"
        )

    def _writer_for_id(self, schema_id: int) -> SchemaVersion:
        known = self._versions_by_id.get(schema_id)
        if known is not None:
            return known
        if self.registry is None:
            raise DecodeError(
                f"Confluent-framed value with schema id {schema_id}, "
                "but no schema registry is configured"
            )
        try:
            schema_json = self.registry.get_schema(schema_id)
        except SchemaNotFoundError:
            raise DecodeError(
                f"unknown schema id {schema_id}: the registry does not have it"
            ) from None
        except SchemaRegistryError as exc:
            raise DecodeError(f"cannot fetch schema id {schema_id}: {exc}") from exc
        writer = self._version_from_registry(schema_id, schema_json)
        with self._lock:
            self._versions_by_id[schema_id] = writer
        return writer

    def _version_from_registry(self, schema_id: int, schema_json: str) -> SchemaVersion:
        try:
            schema = json.loads(schema_json)
            name = str(schema["name"])
            namespace = schema.get("namespace")
        except (ValueError, KeyError, TypeError):
            raise DecodeError(f"schema id {schema_id} is not an Avro record schema") from None
        full = name if "." in name else f"{namespace}.{name}" if namespace else name
        prefix = f"{NAMESPACE}."
        if not full.startswith(prefix):
            raise DecodeError(f"schema id {schema_id} is {full}, not a fairstream event")
        event_type = full.removeprefix(prefix)
        try:
            adhoc = SchemaVersion.from_schema(event_type, 0, schema)
        except SchemaStoreError as exc:
            raise DecodeError(f"schema id {schema_id} cannot be parsed: {exc}") from exc
        # Prefer the local copy: same fingerprint means the same bytes on the wire.
        return self.store.by_fingerprint(adhoc.fingerprint) or adhoc

    @staticmethod
    def _check_headers(headers: Headers, event_type: str) -> None:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, raw in items:
            if raw is None:
                continue
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if name == "ce_type":
                named, _ = parse_ce_type(text)
                if named != event_type:
                    raise DecodeError(
                        f"ce_type header says {text!r} but the value holds a {event_type}"
                    )
            elif name == "content-type" and text.split(";")[0].strip() not in _AVRO_TYPES:
                raise DecodeError(f"content-type header is {text!r}, expected {CONTENT_TYPE}")

    @staticmethod
    def _read_body(body: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
        stream = io.BytesIO(body)
        same = writer.fingerprint == reader.fingerprint
        try:
            record = fastavro.schemaless_reader(
                stream, writer.parsed, None if same else reader.parsed
            )
        except EOFError as exc:
            raise DecodeError(f"truncated {writer.label} body: {exc}") from None
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"cannot read {writer.label} data with {reader.label}: {exc}"
            ) from None
        except Exception as exc:  # corrupt bytes surface as many exception kinds
            raise DecodeError(f"corrupt {writer.label} body: {type(exc).__name__}: {exc}") from None
        left = len(body) - stream.tell()
        if left:
            raise DecodeError(f"{left} trailing bytes after the {writer.label} body")
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.label} body is not a record")
        return record


_AVRO_TYPES = frozenset({CONTENT_TYPE, "application/vnd.apache.avro+binary", "avro/binary"})


def _event_from_record(
    event_type: str, record: dict[str, Any], trace: TraceContext | None = None
) -> Event:
    raw = record.pop("envelope")
    try:
        event_id = raw["event_id"]
        envelope = Envelope(
            event_id=event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)),
            occurred_at=raw["occurred_at"],
            source=raw["source"],
            subject=raw["subject"],
            correlation_id=raw.get("correlation_id"),
            causation_id=raw.get("causation_id"),
            trace=trace,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise DecodeError(f"{event_type} envelope is malformed: {exc}") from None
    return Event(type=event_type, envelope=envelope, payload=record)
