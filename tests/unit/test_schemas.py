"""Unit tests for the schema store, fingerprints, the catalog and `fairstream schemas`."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint

from events import catalog
from events.avro import (
    QualifiedSchema,
    canonical_form,
    crc64_avro,
    describe,
    expand_shared,
    fingerprint_bytes,
    fingerprint_hex,
)
from events.consistency import (
    check_catalog,
    check_examples,
    check_lock,
    named_type_conflicts,
    read_lock,
    update_lock,
)
from events.exceptions import SchemaStoreError, UnknownEventTypeError
from events.store import ENVELOPE, SchemaStore
from events.testing import schema_of, write_schema_tree
from fairstream.cli import main

STORE = SchemaStore.default()


# -- CRC-64-AVRO and canonical form ------------------------------------------------------


def test_crc64_avro_matches_the_spec_vector_for_int() -> None:
    # The Avro spec prints the fingerprint of "int" as 8f5c393f1ad57572 (little-endian bytes).
    value = crc64_avro(b'"int"')
    assert value == 0x7275D51A3F395C8F
    assert fingerprint_hex(value) == "8f5c393f1ad57572"
    assert fingerprint_bytes(value) == bytes.fromhex("8f5c393f1ad57572")


@pytest.mark.parametrize("schema", ['"long"', '"double"', '"bytes"', '"string"', '"null"'])
def test_crc64_avro_agrees_with_fastavro_on_primitives(schema: str) -> None:
    assert fingerprint_hex(crc64_avro(schema.encode())) == fastavro_fingerprint(
        schema, "CRC-64-AVRO"
    )


@pytest.mark.parametrize("sv", list(STORE), ids=lambda sv: sv.label)
def test_every_version_fingerprint_agrees_with_fastavro(sv: Any) -> None:
    assert sv.fingerprint_hex == fastavro_fingerprint(sv.canonical_form, "CRC-64-AVRO")
    assert sv.canonical_form == canonical_form(sv.schema)
    assert STORE.by_fingerprint(sv.fingerprint) is sv


def test_canonical_form_drops_docs_defaults_and_logical_types() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "namespace": "x",
        "doc": "d",
        "fields": [
            {"name": "a", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "b", "type": "string", "default": "", "doc": "b"},
        ],
    }
    assert canonical_form(schema) == (
        '{"name":"x.T","type":"record","fields":[{"name":"a","type":"long"},'
        '{"name":"b","type":"string"}]}'
    )


# -- the shipped store --------------------------------------------------------------------


def test_store_has_exactly_the_catalog_types() -> None:
    assert set(STORE.event_types) == set(catalog.EVENT_TYPES)
    assert check_catalog(STORE) == []


def test_every_event_schema_starts_with_the_expanded_envelope() -> None:
    for sv in STORE:
        envelope = sv.record["fields"][0]
        assert envelope["name"] == "envelope"
        definition = sv.qualified.resolve(envelope["type"])
        assert definition["name"] == ENVELOPE
        assert [f["name"] for f in definition["fields"]] == [
            "event_id",
            "occurred_at",
            "source",
            "subject",
            "correlation_id",
            "causation_id",
        ]
        assert describe(sv.qualified.resolve(definition["fields"][0]["type"])) == "string (uuid)"
        assert describe(definition["fields"][1]["type"]) == "long (timestamp-millis)"


def test_fingerprints_are_unique_and_latest_is_last() -> None:
    fingerprints = [sv.fingerprint for sv in STORE]
    assert len(set(fingerprints)) == len(fingerprints)
    for event_type in STORE.event_types:
        assert STORE.latest(event_type) is STORE.versions(event_type)[-1]
        assert STORE.get(event_type, 1).version == 1


def test_records_and_fields_carry_docs() -> None:
    for sv in STORE:
        assert sv.schema.get("doc"), sv.label
        for field in sv.payload_fields():
            assert field.get("doc"), f"{sv.label}.{field['name']}"


def test_shared_named_types_are_defined_identically() -> None:
    assert named_type_conflicts(STORE) == []


def test_every_example_converts_and_encodes() -> None:
    assert check_examples(STORE) == []


def test_released_fingerprints_match_the_lock() -> None:
    report = check_lock(STORE, read_lock())
    assert report.ok, report.changed + report.removed
    assert report.unlocked == []


def _fields(event_type: str) -> list[tuple[str, str]]:
    sv = STORE.latest(event_type)
    return [(f["name"], describe(f["type"], sv.qualified)) for f in sv.payload_fields()]


def test_content_submitted_matches_the_contract() -> None:
    assert _fields("ContentSubmitted") == [
        ("content_id", "string"),
        ("text", "string"),
        ("content_type", "enum ContentType"),
        ("language", "[null, string]"),
        ("speaker", "[null, enum Speaker]"),
        ("scenario_type", "[null, enum ScenarioType]"),
        ("session_id", "[null, string]"),
        ("campaign_id", "[null, string]"),
        ("demographics", "[null, record ParticipantDemographics]"),
        ("metadata", "map"),
    ]
    qs = STORE.latest("ContentSubmitted").qualified
    content_type = qs.names["fairstream.events.ContentType"]
    assert content_type["symbols"] == [
        "therapy_transcript",
        "blog_post",
        "social_media",
        "email",
        "ad",
        "video_script",
        "landing_page",
        "other",
    ]
    assert content_type["default"] == "other"
    assert qs.names["fairstream.events.Speaker"]["symbols"] == ["user", "therapist", "ai"]
    assert qs.names["fairstream.events.ScenarioType"]["symbols"] == [
        "depression",
        "anxiety",
        "trauma",
        "substance_abuse",
        "relationship_issues",
        "general_wellness",
    ]
    demographics = qs.names["fairstream.events.ParticipantDemographics"]
    assert [(f["name"], describe(f["type"], qs)) for f in demographics["fields"]] == [
        ("age_band", "[null, string]"),
        ("gender", "[null, string]"),
        ("ethnicity", "[null, string]"),
        ("primary_language", "[null, string]"),
        ("region", "[null, string]"),
        ("cultural_background", "array"),
        ("disability_status", "[null, string]"),
    ]


def test_bias_scored_matches_the_contract() -> None:
    assert _fields("BiasScored") == [
        ("content_id", "string"),
        ("model_name", "string"),
        ("model_version", "string"),
        ("overall_score", "double"),
        ("confidence", "double"),
        ("level", "enum BiasLevel"),
        ("dimensions", "array"),
        ("evidence", "array"),
        ("content_hash", "string"),
        ("text_length", "int"),
        ("word_count", "int"),
        ("language", "string"),
        ("flags", "array"),
        ("latency_ms", "double"),
        ("campaign_id", "[null, string]"),
        ("content_type", "enum ContentType"),
    ]
    qs = STORE.latest("BiasScored").qualified
    assert qs.names["fairstream.events.BiasLevel"]["symbols"] == [
        "low",
        "medium",
        "high",
        "critical",
    ]
    dimension = qs.names["fairstream.events.BiasDimension"]
    assert dimension["symbols"][-1] == "unknown" and dimension["default"] == "unknown"
    assert dimension["symbols"] == [
        "gender",
        "race_ethnicity",
        "religion",
        "age",
        "disability",
        "nationality",
        "sexual_orientation",
        "socioeconomic",
        "physical_appearance",
        "profession",
        "unknown",
    ]
    score = qs.names["fairstream.events.DimensionScore"]
    assert [(f["name"], describe(f["type"], qs)) for f in score["fields"]] == [
        ("dimension", "enum BiasDimension"),
        ("score", "double"),
        ("confidence", "double"),
        ("evidence", "array"),
    ]
    span = qs.names["fairstream.events.EvidenceSpan"]
    assert [(f["name"], describe(f["type"], qs)) for f in span["fields"]] == [
        ("text", "string"),
        ("start", "int"),
        ("end", "int"),
        ("weight", "double"),
        ("dimension", "[null, enum BiasDimension]"),
    ]


def test_bias_alert_raised_matches_the_contract() -> None:
    assert _fields("BiasAlertRaised") == [
        ("content_id", "string"),
        ("level", "enum BiasLevel"),
        ("overall_score", "double"),
        ("confidence", "double"),
        ("reason", "string"),
        ("dimensions", "array"),
        ("model_version", "string"),
        ("escalate_after_seconds", "int"),
    ]


def test_revenue_projection_defaults_follow_the_domain() -> None:
    fields = {f["name"]: f for f in STORE.latest("RevenueProjectionRequested").payload_fields()}
    assert fields["acquisition_per_month"]["default"] == 50.0
    assert fields["conversion_rate"]["default"] == 0.2
    assert fields["churn_rate"]["default"] == 0.05
    assert fields["growth_rate"]["default"] == 0.05
    assert fields["months"]["default"] == 36
    tiers = {t["name"]: (t["price_monthly"], t["share"]) for t in fields["tiers"]["default"]}
    assert tiers == {"basic": (9.99, 0.6), "pro": (19.99, 0.3), "premium": (49.99, 0.1)}


def test_store_lookups_name_unknown_types_and_versions() -> None:
    with pytest.raises(UnknownEventTypeError, match="NoSuchEvent"):
        STORE.latest("NoSuchEvent")
    with pytest.raises(SchemaStoreError, match="ContentSubmitted has no version 9"):
        STORE.get("ContentSubmitted", 9)
    assert STORE.by_fingerprint(0) is None


# -- loading rules -------------------------------------------------------------------------


def _v1(event_type: str = "ContentSubmitted") -> dict[str, Any]:
    return schema_of(event_type, 1)


def test_store_loads_a_tree_with_several_versions(tmp_path: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "extra", "type": "string", "default": "", "doc": "x"})
    store = SchemaStore(write_schema_tree(tmp_path, {"ContentSubmitted": [_v1(), v2]}))
    assert [sv.version for sv in store.versions("ContentSubmitted")] == [1, 2]
    assert (
        store.latest("ContentSubmitted").fingerprint != store.get("ContentSubmitted", 1).fingerprint
    )
    assert (
        store.get("ContentSubmitted", 1).fingerprint == STORE.latest("ContentSubmitted").fingerprint
    )


def test_versions_differing_only_in_docs_share_a_fingerprint(tmp_path: Path) -> None:
    v2 = _v1()
    v2["doc"] = "reworded"
    store = SchemaStore(write_schema_tree(tmp_path, {"ContentSubmitted": [_v1(), v2]}))
    v1_fp = store.get("ContentSubmitted", 1).fingerprint
    assert store.by_fingerprint(v1_fp) is store.latest("ContentSubmitted")


def _start_at_v2(root: Path) -> None:
    (root / "ContentSubmitted" / "v1.avsc").rename(root / "ContentSubmitted" / "v2.avsc")


def _add_v3(root: Path) -> None:
    (root / "ContentSubmitted" / "v3.avsc").write_text("{}")


def _add_badly_named(root: Path) -> None:
    (root / "ContentSubmitted" / "latest.avsc").write_text("{}")


def _break_json(root: Path) -> None:
    (root / "ContentSubmitted" / "v1.avsc").write_text("{not json")


def _move_to_other_type(root: Path) -> None:
    (root / "Renamed").mkdir()
    (root / "ContentSubmitted" / "v1.avsc").rename(root / "Renamed" / "v1.avsc")
    (root / "ContentSubmitted").rmdir()


def _add_empty_type(root: Path) -> None:
    (root / "Empty").mkdir()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_start_at_v2, "versions must be v1..v1 without gaps, found v2"),
        (_add_v3, "versions must be v1..v2 without gaps, found v1, v3"),
        (_add_badly_named, "schema files are named v<N>.avsc"),
        (_break_json, "cannot read JSON"),
        (
            _move_to_other_type,
            "record is fairstream.events.ContentSubmitted, expected fairstream.events.Renamed",
        ),
        (_add_empty_type, "no schema versions"),
    ],
    ids=["gap-at-start", "gap", "bad-name", "bad-json", "wrong-record-name", "empty-dir"],
)
def test_store_rejects_broken_layouts(tmp_path: Path, mutate: Any, message: str) -> None:
    root = write_schema_tree(tmp_path, {"ContentSubmitted": [_v1()]})
    mutate(root)
    with pytest.raises(SchemaStoreError, match=re.escape(message)):
        SchemaStore(root)


def test_store_requires_the_envelope_first(tmp_path: Path) -> None:
    schema = _v1()
    schema["fields"] = schema["fields"][1:]
    with pytest.raises(SchemaStoreError, match="first field must be `envelope`"):
        SchemaStore(write_schema_tree(tmp_path, {"ContentSubmitted": [schema]}))


def test_store_reports_invalid_avro_with_its_path(tmp_path: Path) -> None:
    schema = _v1()
    schema["fields"].append({"name": "bad", "type": "int", "default": "not an int"})
    with pytest.raises(SchemaStoreError, match=r"v1\.avsc: invalid Avro schema"):
        SchemaStore(write_schema_tree(tmp_path, {"ContentSubmitted": [schema]}))


def test_store_without_shared_types_reports_the_unknown_envelope(tmp_path: Path) -> None:
    root = write_schema_tree(tmp_path, {"ContentSubmitted": [_v1()]}, shared=False)
    with pytest.raises(SchemaStoreError, match="ContentSubmitted"):
        SchemaStore(root)


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaStoreError, match="does not exist"):
        SchemaStore(tmp_path / "nope")


def test_a_version_may_keep_its_own_envelope_copy() -> None:
    own = {"type": "record", "name": "Envelope", "fields": [{"name": "old", "type": "string"}]}
    schema = {
        "type": "record",
        "name": "X",
        "namespace": "fairstream.events",
        "fields": [{"name": "envelope", "type": own}, {"name": "again", "type": "Envelope"}],
    }
    shared = {
        "fairstream.events.Envelope": {
            "type": "record",
            "name": "Envelope",
            "namespace": "fairstream.events",
            "fields": [],
        }
    }
    expanded = expand_shared(schema, shared)
    assert expanded["fields"][0]["type"]["fields"] == [{"name": "old", "type": "string"}]
    assert expanded["fields"][1]["type"] == "Envelope"
    assert (
        QualifiedSchema(expanded).resolve("fairstream.events.Envelope")["fields"][0]["name"]
        == "old"
    )


def test_qualified_schema_rejects_a_type_defined_twice() -> None:
    enum = {"type": "enum", "name": "E", "symbols": ["a"]}
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": enum}, {"name": "b", "type": enum}],
    }
    with pytest.raises(SchemaStoreError, match="defined twice"):
        QualifiedSchema(schema)


# -- fingerprint lock ---------------------------------------------------------------------


def test_lock_records_new_versions_and_catches_edits(tmp_path: Path) -> None:
    root = write_schema_tree(tmp_path / "schemas", {"ContentSubmitted": [_v1()]})
    lock = tmp_path / "lock.json"
    assert update_lock(SchemaStore(root), lock) == ["ContentSubmitted v1"]
    assert update_lock(SchemaStore(root), lock) == []
    assert check_lock(SchemaStore(root), read_lock(lock)).ok

    edited = _v1()
    edited["fields"].append({"name": "sneaky", "type": "string", "default": ""})
    write_schema_tree(root, {"ContentSubmitted": [edited]})
    report = check_lock(SchemaStore(root), read_lock(lock))
    assert not report.ok
    assert "ContentSubmitted v1 changed after release" in report.changed[0]

    data = json.loads(lock.read_text())
    data["ContentSubmitted"]["v2"] = "0011223344556677"
    lock.write_text(json.dumps(data))
    assert "ContentSubmitted v2 (fingerprint 0011223344556677) was removed" in (
        check_lock(SchemaStore(root), read_lock(lock)).removed
    )


# -- catalog --------------------------------------------------------------------------------


def test_topic_names_with_prefix_and_dead_letter() -> None:
    assert catalog.topic_name("ContentSubmitted") == "content.submitted"
    assert catalog.topic_name("BiasAlertRaised", "t-1a2b3c.") == "t-1a2b3c.bias.alerts"
    assert catalog.dlq_topic_name("BiasScored", "t-1.") == "t-1.bias.scored.dlq"
    assert catalog.entry("ModelUsageRecorded").dlq_topic == "model.usage.dlq"
    assert catalog.subject_field("MetricWindowClosed") == "window_key"
    assert catalog.event_type_for_topic("t-9.revenue.projected.dlq", "t-9.") == "RevenueProjected"
    topics = catalog.all_topics("p.")
    assert len(topics) == 26 and "p.agent.tasks.completed.dlq" in topics
    assert catalog.all_topics(dead_letter=False)[0] == "content.submitted"


def test_catalog_names_unknown_types_and_topics() -> None:
    with pytest.raises(UnknownEventTypeError, match="unknown event type 'Nope'"):
        catalog.topic_name("Nope")
    with pytest.raises(UnknownEventTypeError, match=r"no event type is published to topic 'x\.y'"):
        catalog.event_type_for_topic("x.y")


# -- the command line ------------------------------------------------------------------------


def test_schemas_list_prints_types_versions_fingerprints_and_topics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schemas", "list", "--prefix", "t-1."]) == 0
    out = capsys.readouterr().out
    sv = STORE.latest("BiasScored")
    line = next(line for line in out.splitlines() if line.startswith("BiasScored "))
    assert "v1 (latest)" in line and sv.fingerprint_hex in line and "t-1.bias.scored" in line


def test_schemas_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check"]) == 0
    out = capsys.readouterr().out
    assert "ContentSubmitted: v1 only, nothing to check" in out
    assert "catalog: 13 types match" in out
    assert out.strip().endswith("OK")


def test_schemas_lock_writes_a_lock_for_a_tree(tmp_path: Path) -> None:
    root = write_schema_tree(tmp_path, {"ContentSubmitted": [_v1()]})
    out = io.StringIO()
    from fairstream.cli import build_parser
    from fairstream.commands.schemas import run_lock

    args = build_parser().parse_args(["schemas", "lock", "--dir", str(root)])
    assert run_lock(args, out) == 0
    assert "locked 1 new version(s)" in out.getvalue()
    assert json.loads((root / "fingerprints.json").read_text())["ContentSubmitted"]["v1"] == (
        STORE.latest("ContentSubmitted").fingerprint_hex
    )
