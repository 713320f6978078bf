"""Campaign screening through Kafka, with the real bias processor scoring the items.

Each test runs `fairstream processor campaign` (and `fairstream processor bias` where
items must really be scored) as subprocesses on the test's topic prefix and groups.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from stacktest import decode, read_topic, run_processor

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from events.testing import example_event
from fairstream.settings import Settings
from processors.campaign.app import changelog_topic_name, internal_topic_name
from processors.campaign.service import screened_event_id
from producers.publisher import KafkaEventPublisher

pytestmark = pytest.mark.integration

ITEMS = {"mk-2031-social-01", "mk-2031-ad-03", "mk-2031-email-01"}
LEVELS = ("low", "medium", "high", "critical")


@pytest.fixture
def settings(isolated_settings: Settings, test_id: str) -> Iterator[Settings]:
    """Return the test's settings with its own screening group; drop its internal topics after."""
    settings = isolated_settings.model_copy(
        update={"campaign_processor_group": f"t-{test_id}-campaign-screening"}
    )
    yield settings
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    internal = [internal_topic_name(settings), changelog_topic_name(settings)]
    for future in admin.delete_topics(internal, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # never created when a test failed early
            future.result(30)


def events(
    settings: Settings, event_type: str, count: int, timeout: float = 120.0, linger: float = 0.0
) -> list[Event]:
    """Read and decode `count` events of `event_type` under the test's prefix (`read_topic`)."""
    codec = EventCodec.from_url(None, topic_prefix=settings.topic_prefix)
    topic = topic_name(event_type, settings.topic_prefix)
    return decode(codec, read_topic(settings, topic, count, timeout, linger))


def publish(settings: Settings, *batch: Event) -> None:
    """Publish events with the project's publisher."""
    with KafkaEventPublisher.from_settings(settings) as publisher:
        publisher.publish_all(list(batch)).raise_for_failures()


def test_campaign_items_are_scored_by_the_bias_processor_and_screened(
    settings: Settings, event_topics: list[str], test_id: str, tmp_path: Path
) -> None:
    channels = example_event("CampaignPlanned").payload["channels"]
    biased = {
        "content_id": "mk-2031-ad-04",
        "item_type": "ad",
        "publish_date": "2025-07-09",
        "status": "scheduled",
        "text": "Women are too emotional to be good engineers or leaders.",
    }
    channels[0]["items"].append(biased)
    plan = example_event("CampaignPlanned", correlation_id="wf-campaign-1", channels=channels)
    items = {*ITEMS, "mk-2031-ad-04"}
    with (
        run_processor("bias", settings, tmp_path, test_id),
        run_processor("campaign", settings, tmp_path, test_id) as campaign,
    ):
        # The same plan twice: the duplicate must not submit or screen anything twice.
        publish(settings, plan, plan)
        [screened] = events(settings, "CampaignScreened", 1, linger=5.0)
        assert campaign.poll() is None, "the campaign processor exited"

    plan_id = str(plan.envelope.event_id)
    submitted = events(settings, "ContentSubmitted", 4, timeout=10.0, linger=2.0)
    assert sorted(e.payload["content_id"] for e in submitted) == sorted(items)
    assert all(e.envelope.causation_id == plan_id for e in submitted)
    assert all(e.payload["campaign_id"] == "mk-2031" for e in submitted)
    assert {e.payload["content_id"]: e.payload["content_type"] for e in submitted}[
        "mk-2031-ad-03"
    ] == "ad"

    scores = {e.payload["content_id"]: e for e in events(settings, "BiasScored", 4, timeout=10.0)}
    assert set(scores) == items
    assert all(s.envelope.correlation_id == "wf-campaign-1" for s in scores.values())

    p = screened.payload
    assert screened.envelope.event_id == screened_event_id(plan_id)
    assert screened.envelope.causation_id == plan_id
    assert screened.envelope.correlation_id == "wf-campaign-1"
    assert (p["campaign_id"], p["items_total"], p["items_scored"]) == ("mk-2031", 4, 4)
    # Flagged exactly where the bias processor scored medium or above.
    expected = {
        cid
        for cid, s in scores.items()
        if LEVELS.index(s.payload["level"]) >= LEVELS.index("medium")
        or s.payload["overall_score"] >= settings.bias_threshold_medium
    }
    assert {f["content_id"] for f in p["flagged_items"]} == expected
    assert "mk-2031-ad-04" in expected  # the fast model scores this sentence medium (0.45)
    assert p["verdict"] == "needs_review"
    assert p["items_flagged"] == len(expected)
    for item in p["flagged_items"]:
        assert item["overall_score"] == scores[item["content_id"]].payload["overall_score"]
        assert item["reasons"] and item["reasons"][0].startswith("overall bias score")
    assert p["model_version"] == scores["mk-2031-ad-03"].payload["model_version"]


def test_unscored_campaign_times_out_as_incomplete(
    settings: Settings, event_topics: list[str], test_id: str, tmp_path: Path
) -> None:
    plan = example_event("CampaignPlanned")
    # No bias processor: the submitted items are never scored.
    with run_processor(
        "campaign", settings, tmp_path, test_id, FAIRSTREAM_CAMPAIGN_SCREENING_TIMEOUT_SECONDS="3"
    ) as campaign:
        publish(settings, plan)
        [screened] = events(settings, "CampaignScreened", 1, timeout=90.0)
        assert campaign.poll() is None, "the campaign processor exited"

    p = screened.payload
    assert p["verdict"] == "incomplete"
    assert (p["items_total"], p["items_scored"], p["items_flagged"]) == (3, 0, 3)
    assert {f["content_id"] for f in p["flagged_items"]} == ITEMS
    assert all(
        f["reasons"] == ["not scored: no BiasScored arrived within 3s"] for f in p["flagged_items"]
    )
    assert p["model_version"] is None
    assert len(events(settings, "ContentSubmitted", 3, timeout=10.0)) == 3


def test_restarted_worker_recovers_open_screenings_from_the_changelog(
    settings: Settings, event_topics: list[str], test_id: str, tmp_path: Path
) -> None:
    plan = example_event("CampaignPlanned")
    with run_processor("campaign", settings, tmp_path, test_id):
        publish(settings, plan)
        assert len(events(settings, "ContentSubmitted", 3, timeout=90.0)) == 3
    # The worker is gone with its in-memory table; the scores arrive only now.
    with (
        run_processor("bias", settings, tmp_path, test_id),
        run_processor("campaign", settings, tmp_path, test_id),
    ):
        [screened] = events(settings, "CampaignScreened", 1)
    assert screened.payload["items_scored"] == 3
    assert screened.payload["verdict"] in {"approved", "needs_review"}
    # Had the new worker started from nothing it would have taken the plan as new and
    # submitted the items again; the recovered state made the re-read plan a duplicate.
    assert len(events(settings, "ContentSubmitted", 3, timeout=10.0, linger=3.0)) == 3
    assert screened.envelope.causation_id == str(plan.envelope.event_id)
