"""The revenue projection processor as a Faust app: requests in, RevenueProjected out."""

from __future__ import annotations

import faust

from events.codec import EventCodec
from fairstream.settings import Settings
from processors.faust_app import create_mapping_app
from processors.revenue.service import RevenueProjectionService


def create_app(settings: Settings, service: RevenueProjectionService | None = None) -> faust.App:
    """Create the Faust app whose agent handles every RevenueProjectionRequested."""
    service = service or RevenueProjectionService(
        EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix),
        topic_prefix=settings.topic_prefix,
    )
    return create_mapping_app(
        settings,
        settings.revenue_processor_group,
        service,
        agent_name="project-revenue",
        event_type="RevenueProjectionRequested",
    )
