"""The JSON form of events: one NDJSON object per event, payload fields at top level.

```json
{"content_id": "c-1", "text": "...", "envelope": {"occurred_at": "2025-01-01T12:00:00Z"}}
```

The optional `envelope` object may carry any envelope field; missing ones are filled
in: `event_id` a fresh UUID, `occurred_at` now, `source` from the caller, `subject`
from the catalog's subject field. Values convert as `events.conform.JsonConverter`
documents (ISO-8601 or epoch-millisecond timestamps, plain values for unions, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from events.catalog import subject_field
from events.conform import FieldError, JsonConverter, to_json, truncate_millis
from events.exceptions import UnknownEventTypeError, ValidationError
from events.model import Envelope, Event
from events.store import SchemaStore

__all__ = ["EXAMPLES_DIR", "ValidationError", "event_from_json", "event_to_json", "load_example"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def event_from_json(
    event_type: str,
    obj: Any,
    *,
    source: str,
    correlation_id: str | None = None,
    store: SchemaStore | None = None,
) -> Event:
    """Turn one JSON object into an event of `event_type`, filling the envelope.

    Raise ValidationError naming the offending field (unknown fields included).
    """
    store = store if store is not None else SchemaStore.default()
    try:
        schema = store.latest(event_type)
    except UnknownEventTypeError as exc:
        raise ValidationError(event_type, "type", str(exc)) from None
    if not isinstance(obj, Mapping):
        raise ValidationError(event_type, "$", f"expected a JSON object, got {type(obj).__name__}")
    converter = JsonConverter(schema.qualified)
    try:
        payload = converter.convert_record(schema.record, obj, "", skip=frozenset({"envelope"}))
    except FieldError as exc:
        raise ValidationError(event_type, exc.path, exc.message) from None
    envelope = _envelope(
        event_type,
        obj.get("envelope"),
        converter,
        schema.record,
        payload,
        source=source,
        correlation_id=correlation_id,
    )
    return Event(type=event_type, envelope=envelope, payload=payload)


def _envelope(
    event_type: str,
    raw: Any,
    converter: JsonConverter,
    record: Mapping[str, Any],
    payload: Mapping[str, Any],
    *,
    source: str,
    correlation_id: str | None,
) -> Envelope:
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ValidationError(event_type, "envelope", "expected a JSON object")
    try:
        name = subject_field(event_type)
    except UnknownEventTypeError as exc:
        raise ValidationError(event_type, "type", str(exc)) from None
    subject = payload.get(name)
    filled = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime.now(dt.UTC),
        "source": source,
        "subject": subject if isinstance(subject, str) else str(subject),
        "correlation_id": correlation_id,
        "causation_id": None,
        **raw,
    }
    envelope_type = next(f["type"] for f in record["fields"] if f["name"] == "envelope")
    try:
        values = converter.convert_record(
            converter.schema.resolve(envelope_type), filled, "envelope"
        )
    except FieldError as exc:
        raise ValidationError(event_type, exc.path, exc.message) from None
    if values["subject"] != subject:
        raise ValidationError(
            event_type,
            "envelope.subject",
            f"{values['subject']!r} differs from the subject field {name} = {subject!r}",
        )
    return Envelope(
        event_id=values["event_id"],
        occurred_at=truncate_millis(values["occurred_at"]),
        source=values["source"],
        subject=values["subject"],
        correlation_id=values["correlation_id"],
        causation_id=values["causation_id"],
    )


def event_to_json(event: Event) -> dict[str, Any]:
    """Return the JSON form of `event`: payload fields at top level plus `envelope`."""
    envelope = event.envelope
    out: dict[str, Any] = {
        "envelope": {
            "event_id": str(envelope.event_id),
            "occurred_at": to_json(envelope.occurred_at),
            "source": envelope.source,
            "subject": envelope.subject,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
        }
    }
    out.update(to_json(dict(event.payload)))
    return out


def load_example(event_type: str) -> dict[str, Any]:
    """Return the example JSON object of `event_type` from `events/examples/`."""
    path = EXAMPLES_DIR / f"{event_type}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownEventTypeError(event_type, message=f"no example for {event_type}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an example must be a JSON object")
    return data
