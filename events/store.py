"""The schema store: every version of every event schema, parsed and fingerprinted.

Layout under the schema root (default `events/schemas/`):

- `_shared/<Name>.avsc`: named types every event schema may reference by name, e.g.
  `Envelope`; a reference is replaced by the definition at its first use.
- `<EventType>/v<N>.avsc`: version N of an event schema, N = 1, 2, ... without gaps.
  The record's full name is `fairstream.events.<EventType>` and its first field is
  `envelope` of type `fairstream.events.Envelope`.

A released version file is never edited; evolve a schema by adding the next version.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import parse_schema

from events.avro import (
    QualifiedSchema,
    canonical_form,
    crc64_avro,
    expand_shared,
    fingerprint_bytes,
    fingerprint_hex,
    fullname,
)
from events.exceptions import SchemaStoreError, UnknownEventTypeError

NAMESPACE = "fairstream.events"
ENVELOPE = f"{NAMESPACE}.Envelope"
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
SHARED_DIR = "_shared"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """Hold one version of one event schema in every form the codec needs."""

    event_type: str
    version: int
    schema: dict[str, Any]
    """The schema as written, shared types expanded (docs and defaults kept)."""
    qualified: QualifiedSchema = field(repr=False)
    parsed: Any = field(repr=False)
    """The schema parsed by fastavro."""
    canonical_form: str = field(repr=False)
    fingerprint: int = 0
    """CRC-64-AVRO of the Parsing Canonical Form, as an unsigned integer."""
    path: Path | None = None

    @classmethod
    def from_schema(
        cls, event_type: str, version: int, schema: Mapping[str, Any], path: Path | None = None
    ) -> SchemaVersion:
        """Parse and fingerprint an already expanded schema."""
        schema_dict = copy.deepcopy(dict(schema))
        where = str(path) if path else f"{event_type} v{version}"
        try:
            qualified = QualifiedSchema(schema_dict)
            parsed = parse_schema(copy.deepcopy(schema_dict), named_schemas={})
            pcf = canonical_form(schema_dict)
        except SchemaStoreError as exc:
            raise SchemaStoreError(f"{where}: {exc}") from exc
        except Exception as exc:  # fastavro raises several kinds for a bad schema
            raise SchemaStoreError(f"{where}: invalid Avro schema: {exc}") from exc
        return cls(
            event_type=event_type,
            version=version,
            schema=schema_dict,
            qualified=qualified,
            parsed=parsed,
            canonical_form=pcf,
            fingerprint=crc64_avro(pcf.encode("utf-8")),
            path=path,
        )

    @property
    def fingerprint_bytes(self) -> bytes:
        """Return the fingerprint as the 8 little-endian bytes of a single-object header."""
        return fingerprint_bytes(self.fingerprint)

    @property
    def fingerprint_hex(self) -> str:
        """Return the fingerprint in hex, little-endian byte order as the Avro spec prints it."""
        return fingerprint_hex(self.fingerprint)

    @functools.cached_property
    def schema_json(self) -> str:
        """Return the expanded schema as compact JSON (what a schema registry stores)."""
        return json.dumps(self.schema, separators=(",", ":"), ensure_ascii=False)

    @property
    def label(self) -> str:
        """Return a short name such as `ContentSubmitted v1`."""
        return f"{self.event_type} v{self.version}"

    @property
    def record(self) -> dict[str, Any]:
        """Return the qualified top-level record definition."""
        root = self.qualified.root
        assert isinstance(root, dict)
        return root

    def payload_fields(self) -> list[dict[str, Any]]:
        """Return the qualified record fields other than `envelope`."""
        return [f for f in self.record["fields"] if f["name"] != "envelope"]


class SchemaStore:
    """Load every schema version under a root directory and index them."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else SCHEMAS_DIR
        if not self.root.is_dir():
            raise SchemaStoreError(f"schema directory {self.root} does not exist")
        self.shared = self._load_shared()
        self._versions: dict[str, tuple[SchemaVersion, ...]] = {}
        self._by_fingerprint: dict[int, SchemaVersion] = {}
        for type_dir in sorted(self.root.iterdir()):
            if not type_dir.is_dir() or type_dir.name.startswith(("_", ".")):
                continue
            versions = self._load_type(type_dir)
            self._versions[type_dir.name] = versions
            for sv in versions:
                # Versions that differ only in docs or defaults share a fingerprint;
                # their bytes are identical, so the latest one stands for all.
                other = self._by_fingerprint.get(sv.fingerprint)
                if other is not None and other.event_type != sv.event_type:
                    raise SchemaStoreError(
                        f"{sv.label} and {other.label} have the same fingerprint "
                        f"{sv.fingerprint_hex}"
                    )
                self._by_fingerprint[sv.fingerprint] = sv

    @classmethod
    def default(cls) -> SchemaStore:
        """Return the store of the schemas shipped in `events/schemas/` (loaded once)."""
        return _default_store()

    @property
    def event_types(self) -> tuple[str, ...]:
        """Return every event type that has at least one schema version."""
        return tuple(self._versions)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._versions

    def __iter__(self) -> Iterator[SchemaVersion]:
        """Yield every version of every type, oldest first within a type."""
        for versions in self._versions.values():
            yield from versions

    def versions(self, event_type: str) -> tuple[SchemaVersion, ...]:
        """Return every version of `event_type`, oldest first."""
        try:
            return self._versions[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type, self.event_types) from None

    def latest(self, event_type: str) -> SchemaVersion:
        """Return the newest version of `event_type` (the one writers use)."""
        return self.versions(event_type)[-1]

    def get(self, event_type: str, version: int) -> SchemaVersion:
        """Return version `version` of `event_type`."""
        versions = self.versions(event_type)
        if not 1 <= version <= len(versions):
            raise SchemaStoreError(f"{event_type} has no version {version}")
        return versions[version - 1]

    def by_fingerprint(self, fingerprint: int) -> SchemaVersion | None:
        """Return the version whose CRC-64-AVRO fingerprint is `fingerprint`, if any."""
        return self._by_fingerprint.get(fingerprint)

    def _load_shared(self) -> dict[str, dict[str, Any]]:
        shared: dict[str, dict[str, Any]] = {}
        shared_dir = self.root / SHARED_DIR
        if not shared_dir.is_dir():
            return shared
        for path in sorted(shared_dir.glob("*.avsc")):
            schema = _read_json(path)
            if not isinstance(schema, dict) or "name" not in schema:
                raise SchemaStoreError(f"{path}: a shared schema must be a named type")
            full = fullname(str(schema["name"]), schema.get("namespace"))
            if full.rpartition(".")[2] != path.stem:
                raise SchemaStoreError(f"{path}: defines {full}, expected the name {path.stem}")
            shared[full] = schema
        return shared

    def _load_type(self, type_dir: Path) -> tuple[SchemaVersion, ...]:
        event_type = type_dir.name
        found: dict[int, Path] = {}
        for path in type_dir.iterdir():
            if path.suffix != ".avsc":
                continue
            match = _VERSION_FILE.match(path.name)
            if not match:
                raise SchemaStoreError(f"{path}: schema files are named v<N>.avsc")
            found[int(match.group(1))] = path
        if not found:
            raise SchemaStoreError(f"{type_dir}: no schema versions")
        expected = list(range(1, len(found) + 1))
        if sorted(found) != expected:
            raise SchemaStoreError(
                f"{type_dir}: versions must be v1..v{len(found)} without gaps, "
                f"found {', '.join(f'v{n}' for n in sorted(found))}"
            )
        versions = []
        for number in expected:
            path = found[number]
            raw = _read_json(path)
            expanded = expand_shared(raw, self.shared)
            if not isinstance(expanded, dict):
                raise SchemaStoreError(f"{path}: an event schema must be a record")
            _check_event_record(expanded, event_type, path)
            versions.append(SchemaVersion.from_schema(event_type, number, expanded, path))
        return tuple(versions)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaStoreError(f"{path}: cannot read JSON: {exc}") from exc


def _check_event_record(schema: Mapping[str, Any], event_type: str, path: Path) -> None:
    if schema.get("type") != "record":
        raise SchemaStoreError(f"{path}: an event schema must be a record")
    full = fullname(str(schema.get("name", "")), schema.get("namespace"))
    if full != f"{NAMESPACE}.{event_type}":
        raise SchemaStoreError(f"{path}: record is {full}, expected {NAMESPACE}.{event_type}")
    fields = schema.get("fields") or []
    first = fields[0] if fields else {}
    envelope_type = first.get("type") if isinstance(first, Mapping) else None
    envelope_name = (
        fullname(str(envelope_type.get("name")), envelope_type.get("namespace", NAMESPACE))
        if isinstance(envelope_type, Mapping)
        else None
    )
    if first.get("name") != "envelope" or envelope_name != ENVELOPE:
        raise SchemaStoreError(f"{path}: the first field must be `envelope` of type {ENVELOPE}")


@functools.cache
def _default_store() -> SchemaStore:
    return SchemaStore(SCHEMAS_DIR)
