"""Unit tests for the sample-traffic generator and `fairstream generate` (no services)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from events.catalog import EVENT_TYPES
from events.codec import EventCodec
from events.exceptions import UnknownEventTypeError
from events.model import Event
from fairstream.cli import build_parser
from fairstream.commands import generate, publish
from producers.generator import (
    DERIVED_TYPES,
    OPPORTUNITY_WEIGHTS,
    SOURCE_TYPES,
    TrafficGenerator,
    parse_types,
    project_revenue,
)
from producers.ndjson import event_line, parse_ndjson
from producers.publisher import EventPublisher, InMemoryEventPublisher
from producers.sample_text import GROUPS, BiasLabel, Register, compose

START = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bias"


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    """Return one codec for the module; building schema checkers is not free."""
    return EventCodec()


@pytest.fixture(scope="module")
def mixed() -> list[Event]:
    """Return 3000 events of every type from one seeded generator."""
    return list(TrafficGenerator(types=EVENT_TYPES, seed=42, start=START).events(3000))


def test_source_and_derived_types_cover_the_catalog() -> None:
    assert set(SOURCE_TYPES) | set(DERIVED_TYPES) == set(EVENT_TYPES)
    assert not set(SOURCE_TYPES) & set(DERIVED_TYPES)
    assert TrafficGenerator().types == SOURCE_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_type_validates_and_round_trips(event_type: str, codec: EventCodec) -> None:
    generator = TrafficGenerator(types=(event_type,), seed=7, start=START)
    for event in generator.events(60):
        assert event.type == event_type
        codec.validate(event)
        decoded = codec.decode(codec.encode(event).value)
        assert decoded.envelope == event.envelope
        assert dict(decoded.payload) == dict(event.payload)


def test_mixed_stream_validates_and_survives_the_json_form(
    mixed: list[Event], codec: EventCodec
) -> None:
    assert set(Counter(e.type for e in mixed)) == set(EVENT_TYPES)
    for event in mixed:
        codec.validate(event)
    by_type: dict[str, list[Event]] = {}
    for event in mixed:
        by_type.setdefault(event.type, []).append(event)
    for event_type, events in by_type.items():
        batch = parse_ndjson(
            [event_line(e) for e in events], event_type, source="unused", codec=codec
        )
        assert batch.errors == []
        assert [p.event for p in batch.events] == events


def test_same_seed_same_stream_different_seed_different_stream() -> None:
    def lines(seed: int) -> list[str]:
        generator = TrafficGenerator(types=EVENT_TYPES, seed=seed, start=START)
        return [event_line(e) for e in generator.events(200)]

    assert lines(1) == lines(1)
    assert lines(1) != lines(2)


def test_pinned_timestamps_advance_by_the_interval() -> None:
    generator = TrafficGenerator(seed=1, start=START, interval=0.5)
    times = [e.envelope.occurred_at for e in generator.events(4)]
    assert times == [START + dt.timedelta(seconds=0.5 * i) for i in range(4)]


def test_content_mixes_neutral_mild_and_clear_bias() -> None:
    generator = TrafficGenerator(types=("ContentSubmitted",), seed=4)
    events = list(generator.events(600))
    labels = Counter(e.payload["metadata"]["expected_bias"] for e in events)
    assert labels["neutral"] > labels["mild"] > 50
    assert labels["clear"] > 50
    kinds = Counter(e.payload["content_type"] for e in events)
    assert kinds["therapy_transcript"] > 100 and len(kinds) >= 5
    dimensions = {e.payload["metadata"].get("expected_dimension") for e in events}
    assert set(GROUPS) <= dimensions
    texts = [e.payload["text"] for e in events]
    assert len(set(texts)) > 0.8 * len(texts)


def test_neutral_samples_mention_groups_too() -> None:
    import random

    rng = random.Random(0)
    samples = [compose(rng, Register.THERAPY, BiasLabel.NEUTRAL) for _ in range(300)]
    assert any(s.dimension is not None for s in samples)
    assert any(s.dimension is None for s in samples)


def test_sentences_are_not_copied_from_the_bias_data_sets() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared/data/bias is not beside the repository")
    known: set[str] = set()
    for path in (
        SHARED_DATA / "stereoset" / "stereoset_intrasentence.csv",
        SHARED_DATA / "stereotype_reddit" / "stereotype.csv",
    ):
        with path.open(encoding="utf-8") as handle:
            known |= {row["text"].strip().lower() for row in csv.DictReader(handle)}
    import random

    rng = random.Random(1)
    for register in Register:
        for label in BiasLabel:
            for _ in range(200):
                assert compose(rng, register, label).text.strip().lower() not in known


def test_campaign_items_are_later_submitted_with_their_campaign(mixed: list[Event]) -> None:
    planned = {}
    for event in mixed:
        if event.type == "CampaignPlanned":
            for channel in event.payload["channels"]:
                for item in channel["items"]:
                    planned[item["content_id"]] = (event, item)
    submitted = [
        e for e in mixed if e.type == "ContentSubmitted" and e.payload["content_id"] in planned
    ]
    assert len(submitted) > 20
    for event in submitted:
        campaign, item = planned[event.payload["content_id"]]
        assert event.payload["campaign_id"] == campaign.payload["campaign_id"]
        assert event.payload["text"] == item["text"]
        assert event.payload["content_type"] == item["item_type"]
        assert event.envelope.correlation_id == campaign.envelope.correlation_id
        assert event.envelope.causation_id == str(campaign.envelope.event_id)


def test_sessions_tie_content_analytics_and_usage_together(mixed: list[Event]) -> None:
    def sessions(event_type: str) -> set[str]:
        return {
            e.payload["session_id"]
            for e in mixed
            if e.type == event_type and e.payload.get("session_id")
        }

    content = sessions("ContentSubmitted")
    assert content & sessions("AnalyticsEventRecorded")
    assert content & sessions("ModelUsageRecorded")


def test_niche_workflow_is_correlated(mixed: list[Event]) -> None:
    niches = {e.payload["niche_id"]: e for e in mixed if e.type == "NicheResearched"}
    scored = [e for e in mixed if e.type == "OpportunityScored" and e.payload["niche_id"] in niches]
    assert scored
    for event in scored:
        niche = niches[event.payload["niche_id"]]
        assert event.envelope.correlation_id == niche.envelope.correlation_id
        assert event.envelope.causation_id == str(niche.envelope.event_id)
        factors = event.payload["factors"]
        expected = sum(factors[k] * w for k, w in OPPORTUNITY_WEIGHTS.items())
        assert event.payload["overall_score"] == pytest.approx(expected, abs=1e-3)
    opportunities = {e.payload["opportunity_id"] for e in scored}
    campaigns = {e.payload["opportunity_id"] for e in mixed if e.type == "CampaignPlanned"}
    assert opportunities & campaigns
    tasks = [e for e in mixed if e.type == "AgentTaskCompleted"]
    workflows = {e.envelope.correlation_id for e in niches.values()}
    assert any(t.envelope.correlation_id in workflows for t in tasks)


def test_model_usage_is_plausible(mixed: list[Event]) -> None:
    usage = [e for e in mixed if e.type == "ModelUsageRecorded"]
    assert {e.payload["provider"] for e in usage} >= {"openai", "anthropic", "local"}
    for event in usage:
        p = event.payload
        assert p["total_tokens"] == p["input_tokens"] + p["output_tokens"]
        assert p["cost"] >= 0 and p["latency_ms"] > 0
        assert p["success"] or p["error_code"]
        assert event.envelope.subject == p["model"]


def test_bias_scores_follow_the_label_written(mixed: list[Event]) -> None:
    content = {e.payload["content_id"]: e for e in mixed if e.type == "ContentSubmitted"}
    for event in mixed:
        if event.type != "BiasScored" or event.payload["content_id"] not in content:
            continue
        label = content[event.payload["content_id"]].payload["metadata"]["expected_bias"]
        score = event.payload["overall_score"]
        if label == "clear":
            assert score >= 0.6
        elif label == "neutral":
            assert score < 0.3


def test_revenue_projection_follows_the_domain_defaults() -> None:
    request = {
        "projection_id": "p-1",
        "business_model": "freemium",
        "tiers": [
            {"name": "basic", "price_monthly": 9.99, "share": 0.6},
            {"name": "pro", "price_monthly": 19.99, "share": 0.3},
            {"name": "premium", "price_monthly": 49.99, "share": 0.1},
        ],
        "initial_users": 0,
        "acquisition_per_month": 50.0,
        "conversion_rate": 0.2,
        "churn_rate": 0.05,
        "growth_rate": 0.05,
        "months": 36,
        "currency": "USD",
    }
    result = project_revenue(request)
    assert len(result["months"]) == 36
    assert result["months"][0]["users"] == 50
    assert result["final_paid_users"] > 0 and result["total_revenue"] > 0
    assert result["ltv"] == pytest.approx(result["arpu"] / 0.05, rel=1e-3)


def test_parse_types() -> None:
    assert parse_types(None) == SOURCE_TYPES
    assert parse_types("all") == EVENT_TYPES
    assert parse_types("BiasScored, ContentSubmitted,BiasScored") == (
        "BiasScored",
        "ContentSubmitted",
    )
    with pytest.raises(UnknownEventTypeError):
        parse_types("ContentSubmitted,Nope")


class FakeClock:
    """Advance time only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """Return the fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the fake time."""
        self.slept.append(seconds)
        self.now += seconds


def run_generate(
    argv: Sequence[str], publisher: InMemoryEventPublisher | None = None
) -> tuple[int, str, str, FakeClock]:
    """Run `fairstream generate` with a fake clock and captured streams."""
    used = publisher or InMemoryEventPublisher()

    def factory(bootstrap: str, prefix: str, timeout: float) -> EventPublisher:
        return used

    clock = FakeClock()
    args = build_parser().parse_args(["generate", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = generate.run(
        args,
        publisher_factory=factory,
        out=out,
        err=err,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    return code, out.getvalue(), err.getvalue(), clock


def test_generate_writes_ndjson_that_publish_accepts() -> None:
    code, out, err, _ = run_generate(
        ["--output", "-", "--types", "ContentSubmitted", "--count", "25", "--seed", "3"]
    )
    assert code == 0
    assert len(out.splitlines()) == 25
    assert "written 25" in err

    target = InMemoryEventPublisher()
    args = build_parser().parse_args(["publish", "ContentSubmitted", "-"])
    result = publish.run(
        args,
        publisher_factory=lambda *_: target,
        stdin=io.StringIO(out),
        out=io.StringIO(),
        err=io.StringIO(),
    )
    assert result == 0
    assert [event_line(e) for e in target.published] == out.splitlines()


def test_generate_output_file(tmp_path: Path) -> None:
    path = tmp_path / "sample.ndjson"
    code, out, err, _ = run_generate(["--output", str(path), "--count", "30", "--types", "all"])
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 30 and all("envelope" in r for r in rows)
    assert "several event types" in err


def test_generate_publishes_through_the_publisher() -> None:
    publisher = InMemoryEventPublisher()
    code, _, err, _ = run_generate(
        ["--count", "120", "--batch-size", "50", "--source", "load-test"], publisher
    )
    assert code == 0
    assert len(publisher.published) == 120
    assert publisher.batches >= 3
    assert {e.type for e in publisher.published} <= set(SOURCE_TYPES)
    assert {e.envelope.source for e in publisher.published} == {"load-test"}
    assert "published 120, failed 0" in err


def test_generate_paces_to_the_rate() -> None:
    code, _, _, clock = run_generate(["--output", "-", "--count", "21", "--rate", "10"])
    assert code == 0
    assert sum(clock.slept) == pytest.approx(2.0)


def test_generate_stops_after_the_duration() -> None:
    code, out, _, clock = run_generate(["--output", "-", "--duration", "3", "--rate", "5"])
    assert code == 0
    assert len(out.splitlines()) == 15
    assert clock.now - 1000.0 == pytest.approx(3.0)


def test_generate_restricts_types_and_rejects_unknown_ones() -> None:
    code, out, _, _ = run_generate(
        ["--output", "-", "--count", "40", "--types", "NicheResearched,BiasScored"]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(("market_size" in row) != ("model_name" in row) for row in rows)
    assert any("market_size" in row for row in rows) and any("model_name" in row for row in rows)
    code, _, err, _ = run_generate(["--output", "-", "--types", "Nope"])
    assert code == 2 and "Nope" in err


def test_generate_count_zero_emits_nothing() -> None:
    code, out, err, _ = run_generate(["--output", "-", "--count", "0"])
    assert code == 0 and out == "" and "generated 0" in err
