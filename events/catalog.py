"""The event catalog: each event type's topic and the payload field that is its subject.

Topic names here are base names; a deployment or a test prepends a prefix
(`FAIRSTREAM_TOPIC_PREFIX`, e.g. `t-1a2b3c.`) to every one of them. Each topic has a
dead-letter topic `<topic>.dlq`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from events.exceptions import UnknownEventTypeError

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """Describe one event type: where it is published and what keys it."""

    event_type: str
    topic: str
    subject_field: str

    @property
    def dlq_topic(self) -> str:
        """Return the base name of this event type's dead-letter topic."""
        return dlq_topic(self.topic)


_ENTRIES = (
    CatalogEntry("ContentSubmitted", "content.submitted", "content_id"),
    CatalogEntry("BiasScored", "bias.scored", "content_id"),
    CatalogEntry("BiasAlertRaised", "bias.alerts", "content_id"),
    CatalogEntry("AnalyticsEventRecorded", "analytics.events", "session_id"),
    CatalogEntry("ModelUsageRecorded", "model.usage", "model"),
    CatalogEntry("MetricWindowClosed", "metrics.windows", "window_key"),
    CatalogEntry("NicheResearched", "niche.researched", "niche_id"),
    CatalogEntry("OpportunityScored", "opportunity.scored", "niche_id"),
    CatalogEntry("CampaignPlanned", "campaign.planned", "campaign_id"),
    CatalogEntry("CampaignScreened", "campaign.screened", "campaign_id"),
    CatalogEntry("RevenueProjectionRequested", "revenue.projection.requested", "projection_id"),
    CatalogEntry("RevenueProjected", "revenue.projected", "projection_id"),
    CatalogEntry("AgentTaskCompleted", "agent.tasks.completed", "task_id"),
)

CATALOG: Mapping[str, CatalogEntry] = MappingProxyType({e.event_type: e for e in _ENTRIES})
"""Every event type name mapped to its catalog entry, in data-flow order."""

EVENT_TYPES: tuple[str, ...] = tuple(CATALOG)
"""Every event type name, in data-flow order."""

_BY_TOPIC: Mapping[str, CatalogEntry] = MappingProxyType({e.topic: e for e in _ENTRIES})


def entry(event_type: str) -> CatalogEntry:
    """Return the catalog entry of `event_type`."""
    try:
        return CATALOG[event_type]
    except KeyError:
        raise UnknownEventTypeError(event_type, EVENT_TYPES) from None


def subject_field(event_type: str) -> str:
    """Return the payload field whose value is the event's subject (its Kafka key)."""
    return entry(event_type).subject_field


def topic_name(event_type: str, prefix: str = "") -> str:
    """Return the topic `event_type` is published to, with `prefix` prepended."""
    return prefix + entry(event_type).topic


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic of `topic` (prefixed or not)."""
    return topic + DLQ_SUFFIX


def dlq_topic_name(event_type: str, prefix: str = "") -> str:
    """Return the dead-letter topic of `event_type`, with `prefix` prepended."""
    return dlq_topic(topic_name(event_type, prefix))


def all_topics(prefix: str = "", *, dead_letter: bool = True) -> list[str]:
    """Return every topic name (and, unless told not to, every dead-letter topic)."""
    topics = [prefix + e.topic for e in _ENTRIES]
    if dead_letter:
        topics += [dlq_topic(t) for t in topics]
    return topics


def event_type_for_topic(topic: str, prefix: str = "") -> str:
    """Return the event type published to `topic` (its dead-letter topic counts too)."""
    base = topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic
    base = base.removesuffix(DLQ_SUFFIX)
    try:
        return _BY_TOPIC[base].event_type
    except KeyError:
        raise UnknownEventTypeError(
            "", message=f"no event type is published to topic {topic!r}"
        ) from None
