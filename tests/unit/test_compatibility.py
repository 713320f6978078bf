"""Unit tests for the Avro schema-resolution checker and BACKWARD_TRANSITIVE policy."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from events.compatibility import (
    check_backward_transitive,
    check_resolution,
)
from events.store import SchemaStore
from events.testing import schema_of, write_schema_tree
from fairstream.cli import main


def record(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


def issues(reader: Any, writer: Any) -> list[str]:
    return [str(i) for i in check_resolution(reader, writer)]


def fastavro_reads(reader: Any, writer: Any, datum: Any) -> bool:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(writer)), datum)
    buffer.seek(0)
    try:
        fastavro.schemaless_reader(
            buffer,
            fastavro.parse_schema(copy.deepcopy(writer)),
            fastavro.parse_schema(copy.deepcopy(reader)),
        )
    except SchemaResolutionError:
        return False
    return True


def test_the_shipped_schemas_are_backward_transitive() -> None:
    for pair in check_backward_transitive(SchemaStore.default()):
        assert pair.problems == ()


def test_identical_schemas_are_compatible() -> None:
    schema = SchemaStore.default().latest("BiasScored").schema
    assert issues(schema, copy.deepcopy(schema)) == []


def test_reader_field_without_default_missing_in_writer() -> None:
    writer = record(field("a", "string"))
    reader = record(field("a", "string"), field("b", "int"))
    assert issues(reader, writer) == [
        "b: reader field has no default and is missing from the writer schema"
    ]
    assert not fastavro_reads(reader, writer, {"a": "x"})
    with_default = record(field("a", "string"), field("b", "int", default=0))
    assert issues(with_default, writer) == []
    assert fastavro_reads(with_default, writer, {"a": "x"})


def test_removed_writer_fields_are_ignored() -> None:
    writer = record(field("a", "string"), field("gone", "long"))
    assert issues(record(field("a", "string")), writer) == []


def test_type_change_without_promotion() -> None:
    writer = record(field("a", "string"))
    reader = record(field("a", "int"))
    assert issues(reader, writer) == ["a: type changed from string to int (no Avro promotion)"]
    assert not fastavro_reads(reader, writer, {"a": "x"})


@pytest.mark.parametrize(
    ("writer_type", "reader_type", "value"),
    [
        ("int", "long", 1),
        ("int", "float", 1),
        ("int", "double", 1),
        ("long", "float", 1),
        ("long", "double", 1),
        ("float", "double", 1.5),
        ("string", "bytes", "x"),
        ("bytes", "string", b"x"),
    ],
)
def test_promotions_are_compatible(writer_type: str, reader_type: str, value: Any) -> None:
    writer = record(field("a", writer_type))
    reader = record(field("a", reader_type))
    assert issues(reader, writer) == []
    assert fastavro_reads(reader, writer, {"a": value})


@pytest.mark.parametrize(("writer_type", "reader_type"), [("long", "int"), ("double", "float")])
def test_narrowing_is_incompatible(writer_type: str, reader_type: str) -> None:
    assert issues(record(field("a", reader_type)), record(field("a", writer_type))) == [
        f"a: type changed from {writer_type} to {reader_type} (no Avro promotion)"
    ]


def test_enum_symbol_removed_without_a_reader_default() -> None:
    writer = record(field("e", enum("a", "b", "c")))
    reader = record(field("e", enum("a", "b")))
    assert issues(reader, writer) == ["e: enum E lost symbol(s) c and has no default symbol"]
    with_default = record(field("e", enum("a", "b", default="a")))
    assert issues(with_default, writer) == []
    assert fastavro_reads(with_default, writer, {"e": "c"})


def test_enum_symbols_added_are_compatible() -> None:
    assert issues(record(field("e", enum("a", "b", "z"))), record(field("e", enum("a", "b")))) == []


def test_named_type_renamed_without_alias() -> None:
    writer = record(field("e", enum("a")))
    renamed = copy.deepcopy(writer)
    renamed["fields"][0]["type"]["name"] = "F"
    assert issues(renamed, writer) == ["e: enum name changed from E to F (add an alias to rename)"]
    renamed["fields"][0]["type"]["aliases"] = ["E"]
    assert issues(renamed, writer) == []


def test_renamed_field_with_alias_is_compatible() -> None:
    writer = record(field("old", "string"))
    reader = record(field("new", "string", aliases=["old"]))
    assert issues(reader, writer) == []


def test_union_branch_removed_from_reader() -> None:
    writer = record(field("u", ["null", "string", "int"]))
    reader = record(field("u", ["null", "string"]))
    assert issues(reader, writer) == [
        "u: writer type int matches no branch of reader union [null, string]"
    ]


def test_optional_made_required_is_incompatible() -> None:
    writer = record(field("u", ["null", "string"], default=None))
    reader = record(field("u", "string"))
    assert issues(reader, writer) == [
        "u: writer union branch null cannot be read as string: "
        "type changed from null to string (no Avro promotion)"
    ]


def test_required_made_optional_is_compatible() -> None:
    writer = record(field("u", "string"))
    reader = record(field("u", ["null", "string"], default=None))
    assert issues(reader, writer) == []
    assert fastavro_reads(reader, writer, {"u": "x"})


def test_union_branch_promotion_is_compatible() -> None:
    writer = record(field("u", ["null", "int"]))
    reader = record(field("u", ["null", "double"]))
    assert issues(reader, writer) == []


def test_nested_records_arrays_and_maps_name_the_path() -> None:
    inner_w = record(field("x", "string"), name="Inner")
    inner_r = record(field("x", "string"), field("y", "long"), name="Inner")
    writer = record(
        field("items", {"type": "array", "items": inner_w}),
        field("tags", {"type": "map", "values": "string"}),
    )
    reader = record(
        field("items", {"type": "array", "items": inner_r}),
        field("tags", {"type": "map", "values": "int"}),
    )
    assert issues(reader, writer) == [
        "items[].y: reader field has no default and is missing from the writer schema",
        "tags{}: type changed from string to int (no Avro promotion)",
    ]


def test_array_became_map_is_incompatible() -> None:
    writer = record(field("a", {"type": "array", "items": "string"}))
    reader = record(field("a", {"type": "map", "values": "string"}))
    assert issues(reader, writer) == ["a: type changed from array to map (no Avro promotion)"]


def test_fixed_size_change_is_incompatible() -> None:
    writer = record(field("f", {"type": "fixed", "name": "Hash", "size": 16}))
    reader = record(field("f", {"type": "fixed", "name": "Hash", "size": 32}))
    assert issues(reader, writer) == ["f: fixed size changed from 16 to 32"]


def test_recursive_types_terminate() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    assert issues(node, node) == []


def test_backward_transitive_checks_the_latest_against_every_earlier_version(
    tmp_path: Path,
) -> None:
    v1 = schema_of("ContentSubmitted", 1)
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "channel", "type": "string", "default": "web"})
    v3 = copy.deepcopy(v2)
    v3["fields"][-1] = {"name": "channel", "type": "string"}  # default dropped
    store = SchemaStore(write_schema_tree(tmp_path, {"ContentSubmitted": [v1, v2, v3]}))
    pairs = check_backward_transitive(store)
    assert [(p.reader_version, p.writer_version) for p in pairs] == [(3, 1), (3, 2)]
    assert [str(p) for p in pairs[0].problems] == [
        "ContentSubmitted: v3 cannot read data written with v1: field channel: "
        "reader field has no default and is missing from the writer schema"
    ]
    assert pairs[1].problems == ()


def test_schemas_check_fails_and_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = schema_of("BiasAlertRaised", 1)
    v2 = copy.deepcopy(v1)
    v2["fields"][-1]["type"] = "string"  # escalate_after_seconds int -> string
    root = write_schema_tree(tmp_path, {"BiasAlertRaised": [v1, v2]})
    assert main(["schemas", "check", "--dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "BiasAlertRaised: v2 reads v1: INCOMPATIBLE" in out
    assert (
        "BiasAlertRaised: v2 cannot read data written with v1: field escalate_after_seconds: "
        "type changed from int to string (no Avro promotion)"
    ) in out
    assert out.strip().endswith("FAILED")


def test_schemas_check_passes_a_compatible_evolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = schema_of("BiasAlertRaised", 1)
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "ticket", "type": ["null", "string"], "default": None})
    root = write_schema_tree(tmp_path, {"BiasAlertRaised": [v1, v2]})
    main(["schemas", "check", "--dir", str(root)])
    out = capsys.readouterr().out
    assert "BiasAlertRaised: v2 reads v1: ok" in out
    # The throw-away tree lacks the other catalog types, which the catalog check reports.
    assert "ContentSubmitted: in the catalog but has no schema" in out
