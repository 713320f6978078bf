"""The opportunity scoring processor as a Faust app: NicheResearched in, OpportunityScored out."""

from __future__ import annotations

import faust

from events.codec import EventCodec
from fairstream.settings import Settings
from processors.faust_app import create_mapping_app
from processors.opportunity.service import OpportunityScoringService


def create_app(settings: Settings, service: OpportunityScoringService | None = None) -> faust.App:
    """Create the Faust app whose agent handles every NicheResearched."""
    service = service or OpportunityScoringService(
        EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix),
        topic_prefix=settings.topic_prefix,
    )
    return create_mapping_app(
        settings,
        settings.opportunity_processor_group,
        service,
        agent_name="score-opportunities",
        event_type="NicheResearched",
    )
