"""Errors raised by the events package: schema store, validation, decoding, registry."""

from __future__ import annotations


class EventsError(Exception):
    """Base class of every error the events package raises."""


class SchemaStoreError(EventsError):
    """A schema file is missing, malformed or breaks the layout rules."""


class UnknownEventTypeError(EventsError, LookupError):
    """An event type name is not in the catalog or the schema store."""

    def __init__(
        self, event_type: str, known: tuple[str, ...] = (), *, message: str | None = None
    ) -> None:
        self.event_type = event_type
        hint = f"; known: {', '.join(known)}" if known else ""
        super().__init__(message or f"unknown event type {event_type!r}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class ValidationError(EventsError, ValueError):
    """An event (or its JSON form) does not fit its schema.

    `field` is the dotted path of the offending value, e.g. `dimensions[2].score`,
    `envelope.occurred_at` or `metadata["lang"]`; `$` means the whole object.
    """

    def __init__(self, event_type: str, field: str, message: str) -> None:
        self.event_type = event_type
        self.field = field
        self.message = message
        super().__init__(f"{event_type}: {field}: {message}")


class DecodeError(EventsError, ValueError):
    """A Kafka message value cannot be turned back into an event; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SchemaRegistryError(EventsError):
    """The schema registry refused a request or could not be reached."""


class SchemaNotFoundError(SchemaRegistryError):
    """The schema registry knows no schema with the requested id."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"schema id {schema_id} not found in the registry")
