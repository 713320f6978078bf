"""The campaign screening processor as a Faust app.

Co-partitioning: the screening table is keyed by campaign_id, but BiasScored is keyed
(and partitioned) by content_id on a topic with a different partition count. Two
stateless agents therefore re-key CampaignPlanned and BiasScored onto one internal
topic keyed by campaign_id with as many partitions as the table; the one stateful
agent reads only that topic. Every event of a campaign then lands on the partition
(and worker) that owns the campaign's table row, in order: a plan is stored before its
ContentSubmitted go out, so its scores always come after it. A repartition topic was
chosen over a single-partition agent so screening still scales with workers.

Timeouts: a timer scans the table and, for each overdue screening, sends a deadline
check to the internal topic; the owning agent decides (a table may only change inside
its partition's stream) with the pure `timeout_verdict`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust

from events.codec import EventCodec
from events.topics import TopicSpec, topic_spec
from fairstream.settings import Settings
from processors.bias.scoring import thresholds_from_settings
from processors.campaign.domain import overdue_campaigns
from processors.campaign.service import CampaignScreeningService
from processors.deadletter import OutgoingMessage
from processors.faust_app import InternalTopicsFirstApp, new_app, raw_message, send_and_wait
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED

log = logging.getLogger(__name__)

TABLE_NAME = "screenings"


def internal_topic_name(settings: Settings) -> str:
    """Return the internal topic that carries both inputs keyed by campaign_id."""
    return f"{settings.topic_prefix}{settings.campaign_processor_group}-by-campaign"


def changelog_topic_name(settings: Settings) -> str:
    """Return the changelog topic Faust keeps the screening table in."""
    return f"{settings.campaign_processor_group}-{TABLE_NAME}-changelog"


def internal_topic_specs(settings: Settings, partitions: int) -> list[TopicSpec]:
    """Return the re-keyed input topic and the screening table's compacted changelog."""
    return [
        TopicSpec(name=internal_topic_name(settings), partitions=partitions),
        TopicSpec(
            name=changelog_topic_name(settings),
            partitions=partitions,
            retention_ms=-1,
            cleanup_policy="compact",
        ),
    ]


def timer_interval(timeout_seconds: float) -> float:
    """Return how often to scan for overdue screenings: a fifth of the timeout, 0.5..10 s."""
    return max(0.5, min(10.0, timeout_seconds / 5))


def build_service(settings: Settings) -> CampaignScreeningService:
    """Create the screening logic for these settings."""
    return CampaignScreeningService(
        EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix),
        topic_prefix=settings.topic_prefix,
        internal_topic=internal_topic_name(settings),
        thresholds=thresholds_from_settings(settings),
        timeout_seconds=settings.campaign_screening_timeout_seconds,
    )


def create_app(settings: Settings, service: CampaignScreeningService | None = None) -> faust.App:
    """Create the Faust app: route both inputs by campaign, keep state in a table, time out."""
    service = service or build_service(settings)
    partitions = topic_spec("campaign.planned").partitions
    app = cast(
        InternalTopicsFirstApp,
        new_app(
            settings,
            settings.campaign_processor_group,
            app_class=InternalTopicsFirstApp,
            # Only internal topics (the re-keyed input, the table changelog) are declared.
            topic_allow_declare=True,
            topic_partitions=partitions,
        ),
    )
    app.internal_topics = internal_topic_specs(settings, partitions)
    app.bootstrap = settings.kafka_bootstrap

    def raw_topic(name: str, **options: Any) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            **options,
        )

    planned = raw_topic(service.planned_topic)
    scored = raw_topic(service.scored_topic)
    by_campaign = raw_topic(service.internal_topic, partitions=partitions, internal=True)
    screenings = app.Table(TABLE_NAME, default=None, partitions=partitions, key_type=str)

    async def send_all(messages: list[OutgoingMessage]) -> None:
        await send_and_wait(app, messages)

    async def route(stream: faust.StreamT[bytes], event_type: str) -> None:
        async for event in stream.events():
            out = service.route(raw_message(event.message))
            if out is None:
                EVENTS_PROCESSED.labels(service.name, event_type, "not_a_campaign").inc()
                continue
            await send_all([out])
            if out.topic == service.internal_topic:
                EVENTS_PROCESSED.labels(service.name, event_type, "routed").inc()
            else:
                EVENTS_PROCESSED.labels(service.name, event_type, "dead_lettered").inc()
                DEAD_LETTERED.labels(service.name, "undecodable").inc()

    @app.agent(planned, name="route-planned")
    async def route_planned(stream: faust.StreamT[bytes]) -> None:
        await route(stream, "CampaignPlanned")

    @app.agent(scored, name="route-scores")
    async def route_scores(stream: faust.StreamT[bytes]) -> None:
        await route(stream, "BiasScored")

    @app.agent(by_campaign, name="screen")
    async def screen(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = raw_message(event.message)
            campaign_id = (message.key or b"").decode("utf-8")
            before = screenings.get(campaign_id)
            step = service.step(message, before, time.time())
            # Send first, store after the broker acknowledged: a crash in between
            # re-delivers the input, which re-sends the same (deterministic) ids.
            await send_all(step.messages)
            if step.changed and step.state is not None:
                screenings[campaign_id] = step.state
            EVENTS_PROCESSED.labels(service.name, "screening", step.outcome).inc()
            if step.outcome in ("approved", "needs_review", "incomplete"):
                log.info("campaign %s screened: %s", campaign_id, step.outcome)

    # Checks sent and not yet answered, so a slow owner is not flooded every tick.
    asked: dict[str, float] = {}
    interval = timer_interval(service.timeout_seconds)

    async def check_deadlines() -> None:
        now = time.time()
        due = overdue_campaigns(list(screenings.items()), now, service.timeout_seconds)
        for key in [k for k, at in asked.items() if k not in due or now - at > 5 * interval]:
            del asked[key]
        fresh = [k for k in due if k not in asked]
        if fresh:
            await send_all([service.deadline_check(k) for k in fresh])
            asked.update(dict.fromkeys(fresh, now))

    app.timer(interval, name="check-deadlines")(check_deadlines)
    return app
