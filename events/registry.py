"""Schema registry port: the Confluent Schema Registry REST API and an in-memory twin.

The codec needs two calls: register a schema under a subject (getting its global
id) and fetch a schema by id. Subjects follow the TopicNameStrategy: `<topic>-value`.
"""

from __future__ import annotations

import json
import threading
from types import TracebackType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import httpx

from events.exceptions import SchemaNotFoundError, SchemaRegistryError

SCHEMA_REGISTRY_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def value_subject(topic: str) -> str:
    """Return the TopicNameStrategy subject of a topic's values."""
    return f"{topic}-value"


@runtime_checkable
class SchemaRegistryClient(Protocol):
    """Register schemas and fetch them by global id."""

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` (Avro JSON) under `subject`; return its global id."""
        ...

    def get_schema(self, schema_id: int) -> str:
        """Return the Avro JSON of schema `schema_id`; raise SchemaNotFoundError if unknown."""
        ...


def _normalise(schema: str) -> str:
    try:
        return json.dumps(json.loads(schema), separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:
        raise SchemaRegistryError(f"schema is not valid JSON: {exc}") from exc


class InMemorySchemaRegistry:
    """Keep schemas in memory with Confluent's id semantics (for unit tests).

    One global id per distinct schema; each subject lists the ids registered under it.
    """

    def __init__(self, first_id: int = 1) -> None:
        self._next_id = first_id
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` under `subject`; return its global id."""
        normalised = _normalise(schema)
        with self._lock:
            schema_id = self._ids.get(normalised)
            if schema_id is None:
                schema_id = self._next_id
                self._next_id += 1
                self._ids[normalised] = schema_id
                self._schemas[schema_id] = normalised
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def get_schema(self, schema_id: int) -> str:
        """Return schema `schema_id`."""
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise SchemaNotFoundError(schema_id) from None

    def subjects(self) -> list[str]:
        """Return every subject with at least one schema."""
        return sorted(self._subjects)

    def versions(self, subject: str) -> list[int]:
        """Return the schema ids registered under `subject`, oldest first."""
        return list(self._subjects.get(subject, []))


class ConfluentSchemaRegistry:
    """Talk to a Confluent-compatible Schema Registry over its REST API, caching answers."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, auth=auth)
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` under `subject` (idempotent); return its global id."""
        cached = self._ids.get((subject, schema))
        if cached is not None:
            return cached
        body = self._request(
            "POST", f"/subjects/{quote(subject, safe='')}/versions", {"schema": schema}
        )
        schema_id = int(body["id"])
        self._ids[(subject, schema)] = schema_id
        self._schemas.setdefault(schema_id, schema)
        return schema_id

    def get_schema(self, schema_id: int) -> str:
        """Return the Avro JSON of schema `schema_id`."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        body = self._request("GET", f"/schemas/ids/{schema_id}", schema_id=schema_id)
        schema_type = body.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is {schema_type}, not AVRO")
        schema = str(body["schema"])
        self._schemas[schema_id] = schema
        return schema

    def set_compatibility(self, subject: str, level: str = "BACKWARD_TRANSITIVE") -> None:
        """Set the compatibility level the registry enforces for `subject`."""
        self._request("PUT", f"/config/{quote(subject, safe='')}", {"compatibility": level})

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ConfluentSchemaRegistry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        schema_id: int | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": SCHEMA_REGISTRY_CONTENT_TYPE}
        content = None
        if payload is not None:
            headers["Content-Type"] = SCHEMA_REGISTRY_CONTENT_TYPE
            content = json.dumps(payload).encode("utf-8")
        try:
            response = self._client.request(
                method, self.url + path, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(
                f"cannot reach the schema registry at {self.url}: {exc}"
            ) from exc
        if response.status_code == 404 and schema_id is not None:
            raise SchemaNotFoundError(schema_id)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not response.is_success:
            code = body.get("error_code", response.status_code) if isinstance(body, dict) else ""
            message = body.get("message", response.text) if isinstance(body, dict) else ""
            raise SchemaRegistryError(
                f"{method} {path}: HTTP {response.status_code} (error {code}): {message}"
            )
        if not isinstance(body, dict):
            raise SchemaRegistryError(f"{method} {path}: unexpected response {body!r}")
        return body
