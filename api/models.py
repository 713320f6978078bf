"""Response bodies of the query API; none of them carries raw submitted text by default."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` to get the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Opaque cursor of the next page; null on the last page"
    )
    limit: int


# --- bias -------------------------------------------------------------------------------


class DimensionResult(BaseModel):
    """Score, confidence and evidence terms of one bias dimension."""

    score: float
    confidence: float
    evidence: list[str]


class EvidenceSpan(BaseModel):
    """A span of the text that drove the score."""

    text: str
    start: int
    end: int
    weight: float
    dimension: str | None = None


class AlertSummary(BaseModel):
    """An alert raised for this result."""

    level: str
    overall_score: float
    reason: str
    dimensions: list[str]
    raised_at: datetime


class BiasResultItem(BaseModel):
    """The bias assessment of one content by one model version; never the raw text."""

    content_id: str
    model_name: str
    model_version: str
    overall_score: float
    confidence: float
    level: str
    dimensions: dict[str, DimensionResult]
    evidence: list[EvidenceSpan]
    content_hash: str
    text_length: int
    word_count: int
    language: str
    flags: list[str]
    latency_ms: float
    content_type: str | None = None
    campaign_id: str | None = None
    source: str | None = None
    scored_at: datetime


class BiasResult(BiasResultItem):
    """A bias result with the alerts raised for it."""

    alerts: list[AlertSummary]


class BiasAlert(BaseModel):
    """One alert raised for a content."""

    event_id: str
    content_id: str
    level: str
    overall_score: float
    confidence: float
    reason: str
    dimensions: list[str]
    model_version: str
    escalate_after_seconds: int
    raised_at: datetime


class BiasDaily(BaseModel):
    """Daily roll-up of bias scores for one model version."""

    day: date
    model_version: str
    scored_count: int
    score_sum: float
    score_avg: float | None
    score_min: float | None
    score_max: float | None
    levels: dict[str, int] = Field(description="Contents by level: low, medium, high, critical")
    histogram: dict[str, int] = Field(
        description="Contents by score bucket: lt_0.2, lt_0.4, lt_0.6, lt_0.8, ge_0.8"
    )
    latency_sum_ms: float
    updated_at: datetime


# --- analytics --------------------------------------------------------------------------


class MetricWindow(BaseModel):
    """Aggregates of one closed window (minute, hour or day) for one group."""

    window_key: str
    family: str
    window_kind: str
    window_start: datetime
    window_end: datetime
    group_by: str
    group_value: str
    count: int
    score_sum: float
    score_avg: float | None
    score_max: float | None
    score_buckets: list[int]
    latency_avg_ms: float | None
    latency_p95_ms: float | None
    tokens: int
    cost: float
    error_count: int
    late_count: int
    alert_counts: dict[str, int]
    closed_at: datetime
    emitted_count: int
    source: str


class ModelUsageDay(BaseModel):
    """Usage of one model on one UTC day."""

    day: date
    model: str
    provider: str | None
    requests: int
    successes: int
    failures: int
    cached: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    latency_avg_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None
    latency_p95_ms: float | None
    updated_at: datetime


# --- revenue ----------------------------------------------------------------------------


class RevenueMonth(BaseModel):
    """One month of a revenue projection."""

    month: int
    users: int
    free_users: int
    paid_users: int
    revenue: float
    revenue_by_tier: dict[str, float]


class RevenueProjection(BaseModel):
    """Summary of one revenue projection."""

    projection_id: str
    business_model: str
    total_revenue: float
    final_users: int
    final_paid_users: int
    arpu: float
    ltv: float | None
    currency: str
    months_count: int
    projected_at: datetime
    source: str


class RevenueProjectionDetail(RevenueProjection):
    """A revenue projection with its months."""

    months: list[RevenueMonth]


# --- ops --------------------------------------------------------------------------------


class PartitionPosition(BaseModel):
    """The next offset a projection will apply on one partition."""

    topic: str
    partition: int
    next_offset: int
    updated_at: datetime | None = None


class ProjectionPositions(BaseModel):
    """Applied positions of one projection."""

    projection: str
    store: str = Field(description="Where the positions live: postgres or mongo")
    partitions: list[PartitionPosition]
    total_next_offset: int


class Positions(BaseModel):
    """Applied positions of every projection."""

    projections: list[ProjectionPositions]


# --- documents --------------------------------------------------------------------------


class _Document(BaseModel):
    """Keep unknown document fields out of the answer unless declared."""

    model_config = ConfigDict(extra="ignore")


class CampaignItem(_Document):
    """One content item of a campaign channel; `text` only when raw text storage is on."""

    content_id: str
    item_type: str | None = None
    publish_date: str | None = None
    status: str | None = None
    text_sha256: str | None = None
    text_length: int | None = None
    text: str | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Raw text; present only with FAIRSTREAM_STORE_RAW_TEXT=true",
    )


class CampaignChannel(_Document):
    """A channel of a campaign and its items."""

    channel: str
    budget_share: float | None = None
    items: list[CampaignItem] = []


class Campaign(_Document):
    """A campaign with its plan, item scores and screening verdict."""

    id: str
    campaign_id: str | None = None
    opportunity_id: str | None = None
    name: str | None = None
    status: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    channels: list[CampaignChannel] = []
    items_total: int | None = None
    budget: dict[str, Any] | None = None
    target_metrics: dict[str, Any] | None = None
    planned_at: str | None = None
    item_scores: list[dict[str, Any]] = Field(
        default=[], description="Scores of the campaign's items, one entry per content"
    )
    screening: dict[str, Any] | None = None
    verdict: str | None = None
    screened_at: str | None = None
    events_applied: int | None = None
    updated_at: str | None = None


class Opportunity(_Document):
    """A researched niche and its opportunity score."""

    id: str
    niche_id: str | None = None
    name: str | None = None
    market_segment: str | None = None
    description: str | None = None
    market_size: str | None = None
    growth_rate: str | None = None
    competition: str | None = None
    problems: list[dict[str, Any]] = []
    solution_feasibility: float | None = None
    monetization_potential: float | None = None
    keywords: list[str] = []
    researched_at: str | None = None
    opportunity_id: str | None = None
    factors: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    overall_score: float | None = None
    band: str | None = None
    scored_at: str | None = None
    events_applied: int | None = None
    updated_at: str | None = None


class AgentTask(_Document):
    """A completed agent task with its steps."""

    id: str
    task_id: str | None = None
    team_id: str | None = None
    agent_role: str | None = None
    workflow_step: str | None = None
    status: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: float | None = None
    steps: list[dict[str, Any]] = []
    output_ref: str | None = None
    error: str | None = None
    source: str | None = None
    events_applied: int | None = None
    updated_at: str | None = None


class BiasResultPage(Page[BiasResultItem]):
    """A page of bias results."""


class BiasAlertPage(Page[BiasAlert]):
    """A page of alerts."""


class BiasDailyPage(Page[BiasDaily]):
    """A page of daily roll-up rows."""


class MetricWindowPage(Page[MetricWindow]):
    """A page of metric windows."""


class ModelUsagePage(Page[ModelUsageDay]):
    """A page of model usage rows."""


class RevenueProjectionPage(Page[RevenueProjection]):
    """A page of revenue projections."""


class CampaignPage(Page[Campaign]):
    """A page of campaigns."""


class OpportunityPage(Page[Opportunity]):
    """A page of opportunities."""


class AgentTaskPage(Page[AgentTask]):
    """A page of agent tasks."""
