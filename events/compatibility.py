"""Schema compatibility: can a reader schema read data written with a writer schema?

Implements the Avro specification's schema-resolution rules as a static check and the
BACKWARD_TRANSITIVE policy on top: the latest version of each event type must read
data written with every earlier version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from events.avro import QualifiedSchema, describe, kind_of, short_name
from events.store import SchemaStore, SchemaVersion

# Writer type -> reader types it promotes to (Avro spec, "Schema Resolution").
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data, at a field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


@dataclass(frozen=True, slots=True)
class CompatibilityProblem:
    """An incompatibility between two versions of one event type."""

    event_type: str
    reader_version: int
    writer_version: int
    path: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.event_type}: v{self.reader_version} cannot read data written with "
            f"v{self.writer_version}: field {self.path or '<root>'}: {self.message}"
        )


@dataclass(frozen=True, slots=True)
class PairChecked:
    """Record that a reader version was checked against a writer version."""

    event_type: str
    reader_version: int
    writer_version: int
    problems: tuple[CompatibilityProblem, ...]


def check_resolution(reader: Any, writer: Any) -> list[Incompatibility]:
    """Return every reason `reader` cannot read data written with `writer` (JSON schemas)."""
    reader_qs = reader if isinstance(reader, QualifiedSchema) else QualifiedSchema(reader)
    writer_qs = writer if isinstance(writer, QualifiedSchema) else QualifiedSchema(writer)
    return _Resolver(reader_qs, writer_qs).run()


def check_versions(reader: SchemaVersion, writer: SchemaVersion) -> list[CompatibilityProblem]:
    """Return the problems of reading `writer`'s data with `reader`."""
    return [
        CompatibilityProblem(
            reader.event_type, reader.version, writer.version, issue.path, issue.message
        )
        for issue in check_resolution(reader.qualified, writer.qualified)
    ]


def check_backward_transitive(
    store: SchemaStore, event_types: Iterable[str] | None = None
) -> list[PairChecked]:
    """Check that each type's latest version reads every earlier version's data."""
    results = []
    for event_type in event_types if event_types is not None else store.event_types:
        versions = store.versions(event_type)
        latest = versions[-1]
        for writer in versions[:-1]:
            problems = tuple(check_versions(latest, writer))
            results.append(PairChecked(event_type, latest.version, writer.version, problems))
    return results


class _Resolver:
    """Walk a reader and a writer schema side by side, collecting incompatibilities."""

    def __init__(self, reader: QualifiedSchema, writer: QualifiedSchema) -> None:
        self.reader = reader
        self.writer = writer
        self.issues: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    def run(self) -> list[Incompatibility]:
        self.issues = self._resolve(self.reader.root, self.writer.root, "")
        return self.issues

    def _resolve(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        r = self.reader.resolve(reader)
        w = self.writer.resolve(writer)
        rk, wk = kind_of(r), kind_of(w)
        if wk == "union":
            issues = []
            for branch in w:
                branch_w = self.writer.resolve(branch)
                found = self._resolve(r, branch, path)
                if found and rk != "union":
                    issues.append(
                        Incompatibility(
                            path,
                            f"writer union branch {describe(branch_w, self.writer)} cannot be "
                            f"read as {describe(r, self.reader)}: {found[0].message}",
                        )
                    )
                else:
                    issues.extend(found)
            return issues
        if rk == "union":
            return self._resolve_into_union(r, w, path)
        if rk != wk:
            if rk in PROMOTIONS.get(wk, frozenset()):
                return []
            return [
                Incompatibility(
                    path,
                    f"type changed from {describe(w, self.writer)} to "
                    f"{describe(r, self.reader)} (no Avro promotion)",
                )
            ]
        if rk == "record":
            return self._resolve_record(r, w, path)
        if rk == "enum":
            return self._resolve_enum(r, w, path)
        if rk == "fixed":
            issues = self._check_name(r, w, path)
            if r["size"] != w["size"]:
                issues.append(
                    Incompatibility(path, f"fixed size changed from {w['size']} to {r['size']}")
                )
            return issues
        if rk == "array":
            return self._resolve(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return self._resolve(r["values"], w["values"], f"{path}{{}}")
        return []

    def _resolve_into_union(self, r: list[Any], w: Any, path: str) -> list[Incompatibility]:
        # The first reader branch that matches the writer's kind (and name) is used.
        w_kind = kind_of(w)
        branches = [self.reader.resolve(b) for b in r]
        same_kind = [
            b
            for b in branches
            if kind_of(b) == w_kind
            and (not isinstance(b, Mapping) or "name" not in b or self._names_match(b, w))
        ]
        promoted = [b for b in branches if kind_of(b) in PROMOTIONS.get(w_kind, frozenset())]
        for branch in same_kind + promoted:
            found = self._resolve(branch, w, path)
            if not found:
                return []
            if branch in same_kind:
                return found
        return [
            Incompatibility(
                path,
                f"writer type {describe(w, self.writer)} matches no branch of reader union "
                f"{describe(r, self.reader)}",
            )
        ]

    @staticmethod
    def _names_match(r: Mapping[str, Any], w: Mapping[str, Any]) -> bool:
        return short_name(r["name"]) == short_name(w["name"]) or w["name"] in r.get("aliases", [])

    def _check_name(
        self, r: Mapping[str, Any], w: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        if self._names_match(r, w):
            return []
        return [
            Incompatibility(
                path,
                f"{kind_of(r)} name changed from {short_name(w['name'])} to "
                f"{short_name(r['name'])} (add an alias to rename)",
            )
        ]

    def _resolve_record(
        self, r: Mapping[str, Any], w: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        issues = self._check_name(r, w, path)
        pair = (r["name"], w["name"])
        if pair in self._seen:  # a recursive type already being checked
            return issues
        self._seen.add(pair)
        writer_fields = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            match = writer_fields.get(field["name"])
            if match is None:
                match = next(
                    (writer_fields[a] for a in field.get("aliases", []) if a in writer_fields),
                    None,
                )
            if match is not None:
                issues.extend(self._resolve(field["type"], match["type"], field_path))
            elif "default" not in field:
                issues.append(
                    Incompatibility(
                        field_path,
                        "reader field has no default and is missing from the writer schema",
                    )
                )
        self._seen.discard(pair)
        return issues

    def _resolve_enum(
        self, r: Mapping[str, Any], w: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        issues = self._check_name(r, w, path)
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            issues.append(
                Incompatibility(
                    path,
                    f"enum {short_name(r['name'])} lost symbol(s) {', '.join(missing)} "
                    "and has no default symbol",
                )
            )
        return issues
