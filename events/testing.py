"""Helpers for tests that need events or throw-away schema stores (no services)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from events.jsonform import event_from_json, load_example
from events.model import Event
from events.registry import InMemorySchemaRegistry
from events.store import SCHEMAS_DIR, SHARED_DIR, SchemaStore

__all__ = ["InMemorySchemaRegistry", "example_event", "schema_of", "write_schema_tree"]


def example_event(
    event_type: str,
    *,
    source: str = "tests",
    correlation_id: str | None = None,
    **overrides: Any,
) -> Event:
    """Return the example event of `event_type` with payload fields replaced by `overrides`."""
    obj = {**load_example(event_type), **overrides}
    return event_from_json(event_type, obj, source=source, correlation_id=correlation_id)


def schema_of(event_type: str, version: int | None = None) -> dict[str, Any]:
    """Return a shipped schema file as written (Envelope not expanded), for editing in tests."""
    store = SchemaStore.default()
    sv = store.latest(event_type) if version is None else store.get(event_type, version)
    assert sv.path is not None
    data = json.loads(sv.path.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def write_schema_tree(
    root: Path, versions: Mapping[str, Sequence[Mapping[str, Any]]], *, shared: bool = True
) -> Path:
    """Write `<root>/<Type>/v<N>.avsc` for each type's schemas (v1 first); return `root`.

    With `shared`, the shipped `_shared/` types (the Envelope) are copied in too.
    """
    root.mkdir(parents=True, exist_ok=True)
    if shared:
        shutil.copytree(SCHEMAS_DIR / SHARED_DIR, root / SHARED_DIR, dirs_exist_ok=True)
    for event_type, schemas in versions.items():
        type_dir = root / event_type
        type_dir.mkdir(exist_ok=True)
        for number, schema in enumerate(schemas, start=1):
            (type_dir / f"v{number}.avsc").write_text(json.dumps(schema, indent=2), "utf-8")
    return root
