"""Work with Avro schemas as JSON: qualify names, resolve references, fingerprint.

Everything here is pure and has no fastavro dependency except the Parsing Canonical
Form, which fastavro implements per the specification.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from events.exceptions import SchemaStoreError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})

# CRC-64-AVRO (Rabin) as given in the Avro specification, "Schema Fingerprints".
CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()

JsonSchema = Any
"""A schema node as parsed from JSON: a name string, a list (union) or a dict."""


def crc64_avro(data: bytes) -> int:
    """Return the CRC-64-AVRO fingerprint of `data` as an unsigned 64-bit integer."""
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint_bytes(fingerprint: int) -> bytes:
    """Return the 8 little-endian bytes a single-object header carries for `fingerprint`."""
    return fingerprint.to_bytes(8, "little")


def fingerprint_hex(fingerprint: int) -> str:
    """Return the fingerprint the way the Avro spec prints it: its little-endian bytes in hex."""
    return fingerprint_bytes(fingerprint).hex()


def canonical_form(schema: JsonSchema) -> str:
    """Return the Parsing Canonical Form of a JSON schema."""
    return str(to_parsing_canonical_form(copy.deepcopy(schema)))


def fullname(name: str, namespace: str | None) -> str:
    """Return the full name of `name` declared or referenced inside `namespace`."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def short_name(name: str) -> str:
    """Return the unqualified part of a (possibly full) name."""
    return name.rpartition(".")[2]


def _namespace_of(full: str) -> str | None:
    return full.rpartition(".")[0] or None


class QualifiedSchema:
    """Hold a schema with every name fully qualified and its named types by full name.

    References to named types are full-name strings; `resolve` follows them.
    """

    __slots__ = ("names", "root")

    def __init__(self, schema: JsonSchema, namespace: str | None = None) -> None:
        self.names: dict[str, dict[str, Any]] = {}
        self.root: JsonSchema = self._qualify(schema, namespace)

    def resolve(self, node: JsonSchema) -> JsonSchema:
        """Follow a named-type reference; return other nodes unchanged."""
        if isinstance(node, str) and node not in PRIMITIVES:
            try:
                return self.names[node]
            except KeyError:
                raise SchemaStoreError(f"unknown named type {node!r}") from None
        return node

    def _qualify(self, node: JsonSchema, namespace: str | None) -> JsonSchema:
        if isinstance(node, str):
            return node if node in PRIMITIVES else fullname(node, namespace)
        if isinstance(node, list):
            return [self._qualify(branch, namespace) for branch in node]
        if not isinstance(node, Mapping) or "type" not in node:
            raise SchemaStoreError(f"not an Avro schema: {node!r}")
        kind = node["type"]
        if isinstance(kind, (list, Mapping)):
            return self._qualify(kind, namespace)
        if kind in NAMED_KINDS:
            return self._qualify_named(node, namespace)
        if kind == "array":
            return {**node, "items": self._qualify(node["items"], namespace)}
        if kind == "map":
            return {**node, "values": self._qualify(node["values"], namespace)}
        if kind in PRIMITIVES:
            return dict(node)
        return fullname(str(kind), namespace)

    def _qualify_named(self, node: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        declared = node.get("namespace", namespace)
        full = fullname(str(node["name"]), declared or None)
        if full in self.names:
            raise SchemaStoreError(f"named type {full} is defined twice")
        inner = _namespace_of(full)
        out: dict[str, Any] = {k: v for k, v in node.items() if k != "namespace"}
        out["name"] = full
        if "aliases" in node:
            out["aliases"] = [fullname(str(alias), inner) for alias in node["aliases"]]
        # Register before the fields so recursive references resolve.
        self.names[full] = out
        if node["type"] in ("record", "error"):
            out["fields"] = [
                {**field, "type": self._qualify(field["type"], inner)} for field in node["fields"]
            ]
        return out


def kind_of(node: JsonSchema) -> str:
    """Return the kind of a resolved node: a primitive name, union, record, enum, ..."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    kind = node["type"]
    return "record" if kind == "error" else str(kind)


def logical_type(node: JsonSchema) -> str | None:
    """Return the logicalType annotation of a node, if any."""
    if isinstance(node, Mapping):
        value = node.get("logicalType")
        return str(value) if value is not None else None
    return None


def describe(node: JsonSchema, schema: QualifiedSchema | None = None) -> str:
    """Return a short human name for a node, e.g. `string`, `enum BiasLevel`.

    With `schema`, named-type references (also inside unions) are resolved first.
    """
    if schema is not None:
        node = schema.resolve(node)
    kind = kind_of(node)
    if kind == "union":
        return "[" + ", ".join(describe(branch, schema) for branch in node) + "]"
    if isinstance(node, str) and kind not in PRIMITIVES:
        return short_name(node)
    if isinstance(node, Mapping) and "name" in node:
        return f"{kind} {short_name(str(node['name']))}"
    if kind == "array":
        return "array"
    if kind == "map":
        return "map"
    lt = logical_type(node)
    return f"{kind} ({lt})" if lt else kind


def expand_shared(
    schema: JsonSchema, shared: Mapping[str, JsonSchema], namespace: str | None = None
) -> JsonSchema:
    """Inline shared named types (e.g. the Envelope) at their first reference.

    A type the schema defines itself is left alone, so an old version file can keep
    its own copy of a shared type after the shared one evolves.
    """
    defined: set[str] = set()

    def walk(node: JsonSchema, ns: str | None) -> JsonSchema:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            full = fullname(node, ns)
            if full in shared and full not in defined:
                definition = copy.deepcopy(shared[full])
                return walk(definition, _namespace_of(full))
            return node
        if isinstance(node, list):
            return [walk(branch, ns) for branch in node]
        if not isinstance(node, Mapping):
            return node
        kind = node.get("type")
        if isinstance(kind, (list, Mapping)):
            return {**node, "type": walk(kind, ns)}
        if kind in NAMED_KINDS:
            full = fullname(str(node["name"]), node.get("namespace", ns) or None)
            defined.add(full)
            out = dict(node)
            if "." not in str(node["name"]) and "namespace" not in node and ns:
                out["namespace"] = ns
            if kind in ("record", "error"):
                inner = _namespace_of(full)
                out["fields"] = [
                    {**field, "type": walk(field["type"], inner)} for field in node["fields"]
                ]
            return out
        if kind == "array":
            return {**node, "items": walk(node["items"], ns)}
        if kind == "map":
            return {**node, "values": walk(node["values"], ns)}
        if isinstance(kind, str) and kind not in PRIMITIVES:
            return {**node, "type": walk(kind, ns)}
        return node

    return walk(schema, namespace)
