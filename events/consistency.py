"""Checks that keep schemas, catalog, examples and released fingerprints in step.

The fingerprint lock (`events/schemas/fingerprints.json`) records the CRC-64-AVRO
fingerprint of every released schema version. Single-object readers find writer
schemas by fingerprint, so editing a released version in place would make its data
unreadable; the lock turns that mistake into a failing `fairstream schemas check`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.avro import kind_of
from events.catalog import CATALOG
from events.exceptions import EventsError
from events.store import SCHEMAS_DIR, SchemaStore

LOCK_FILE = SCHEMAS_DIR / "fingerprints.json"


def check_catalog(store: SchemaStore) -> list[str]:
    """Return problems between the catalog and the store (missing types, bad subject fields)."""
    problems = []
    for event_type, entry in CATALOG.items():
        if event_type not in store:
            problems.append(f"{event_type}: in the catalog but has no schema")
            continue
        latest = store.latest(event_type)
        fields = {f["name"]: f for f in latest.record["fields"]}
        subject = fields.get(entry.subject_field)
        if subject is None:
            problems.append(
                f"{latest.label}: subject field {entry.subject_field} is not in the schema"
            )
        elif kind_of(latest.qualified.resolve(subject["type"])) != "string":
            problems.append(
                f"{latest.label}: subject field {entry.subject_field} must be a plain string"
            )
    for event_type in store.event_types:
        if event_type not in CATALOG:
            problems.append(f"{event_type}: has a schema but is not in the catalog")
    return problems


def named_type_conflicts(store: SchemaStore) -> list[str]:
    """Return named types the latest versions of different event types define differently.

    Types such as `BiasLevel` or `ContentType` are copied into every schema that uses
    them; the copies must agree (docs aside) so every consumer sees one vocabulary.
    """
    seen: dict[str, tuple[str, Any]] = {}
    conflicts = []
    for event_type in store.event_types:
        latest = store.latest(event_type)
        for name, definition in latest.qualified.names.items():
            shape = _definition_shape(definition)
            if name in seen and seen[name][1] != shape:
                conflicts.append(f"{name} differs between {seen[name][0]} and {latest.label}")
            seen.setdefault(name, (latest.label, shape))
    return conflicts


def _definition_shape(definition: dict[str, Any]) -> Any:
    kind = kind_of(definition)
    if kind == "enum":
        return ("enum", tuple(definition["symbols"]), definition.get("default"))
    if kind == "fixed":
        return ("fixed", definition["size"])
    return (
        "record",
        tuple(
            (f["name"], _type_shape(f["type"]), json.dumps(f.get("default", "<none>")))
            for f in definition["fields"]
        ),
    )


def _type_shape(node: Any) -> Any:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return tuple(_type_shape(b) for b in node)
    if "name" in node:
        return node["name"]
    kind = kind_of(node)
    if kind == "array":
        return ("array", _type_shape(node["items"]))
    if kind == "map":
        return ("map", _type_shape(node["values"]))
    return (kind, node.get("logicalType"))


def check_examples(store: SchemaStore, examples_dir: Path | None = None) -> list[str]:
    """Return problems with the example JSON objects (missing, invalid, not encodable)."""
    from events.codec import EventCodec
    from events.jsonform import EXAMPLES_DIR, event_from_json

    directory = examples_dir or EXAMPLES_DIR
    codec = EventCodec(store)
    problems = []
    for event_type in store.event_types:
        path = directory / f"{event_type}.json"
        if not path.is_file():
            problems.append(f"{event_type}: no example at {path}")
            continue
        try:
            event = event_from_json(
                event_type, json.loads(path.read_text("utf-8")), source="examples", store=store
            )
            codec.decode(codec.encode(event).value)
        except (EventsError, ValueError) as exc:
            problems.append(f"{event_type}: example {path.name} is invalid: {exc}")
    return problems


@dataclass
class LockReport:
    """Outcome of comparing the store with the fingerprint lock."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unlocked: list[str] = field(default_factory=list)
    locked: int = 0

    @property
    def ok(self) -> bool:
        """Return whether no released version changed or disappeared."""
        return not self.changed and not self.removed


def read_lock(path: Path = LOCK_FILE) -> dict[str, dict[str, str]]:
    """Return the recorded fingerprints: event type -> `v<N>` -> hex fingerprint."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return {str(k): {str(v): str(fp) for v, fp in dict(vs).items()} for k, vs in data.items()}


def check_lock(store: SchemaStore, lock: dict[str, dict[str, str]]) -> LockReport:
    """Compare every schema version's fingerprint with the recorded one."""
    report = LockReport()
    for event_type, versions in lock.items():
        for label, recorded in versions.items():
            number = int(label.removeprefix("v"))
            if event_type not in store or number > len(store.versions(event_type)):
                report.removed.append(f"{event_type} {label} (fingerprint {recorded}) was removed")
                continue
            actual = store.get(event_type, number).fingerprint_hex
            if actual != recorded:
                report.changed.append(
                    f"{event_type} {label} changed after release: fingerprint {actual}, "
                    f"recorded {recorded} (add a new version instead of editing)"
                )
            else:
                report.locked += 1
    for sv in store:
        if f"v{sv.version}" not in lock.get(sv.event_type, {}):
            report.unlocked.append(sv.label)
    return report


def update_lock(store: SchemaStore, path: Path = LOCK_FILE) -> list[str]:
    """Record the fingerprints of versions not yet in the lock; return what was added."""
    lock = read_lock(path)
    added = []
    for sv in store:
        versions = lock.setdefault(sv.event_type, {})
        if f"v{sv.version}" not in versions:
            versions[f"v{sv.version}"] = sv.fingerprint_hex
            added.append(sv.label)
    ordered = {
        t: dict(sorted(v.items(), key=lambda kv: int(kv[0][1:]))) for t, v in sorted(lock.items())
    }
    path.write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")
    return added
