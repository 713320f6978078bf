"""Generate realistic sample traffic for every event type, with related events correlated.

The generator keeps a little world: therapy sessions (content, analytics and
model usage share their session and user ids), niche workflows (a niche, its
opportunity, campaigns whose content items are later submitted for scoring,
revenue projections and the agent tasks that produced them), and recent
submissions that derived events (scores, alerts, windows) refer to.

By default it emits the *source* event types, the ones people and agents
produce; the derived types (`DERIVED_TYPES`) are what processors compute and
are generated only when asked for, so sample traffic does not compete with the
real processors. The same seed gives the same ids and payloads; pass `start`
to pin timestamps too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.catalog import EVENT_TYPES, entry
from events.model import Envelope, Event
from processors.opportunity.domain import (
    FACTOR_VALUES,
    SEVERITY,
    band_for,
    overall_score,
    problem_severity,
)
from processors.opportunity.domain import WEIGHTS as OPPORTUNITY_WEIGHTS
from processors.revenue.domain import project_revenue as project_revenue
from producers.sample_text import (
    BiasLabel,
    Register,
    TextSample,
    compose,
    compose_passage,
    non_english,
)

DEFAULT_SOURCE = "fairstream-generator"

SOURCE_TYPES: tuple[str, ...] = (
    "ContentSubmitted",
    "AnalyticsEventRecorded",
    "ModelUsageRecorded",
    "NicheResearched",
    "CampaignPlanned",
    "RevenueProjectionRequested",
    "AgentTaskCompleted",
)
DERIVED_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t not in SOURCE_TYPES)

# Relative volume of each type in mixed traffic.
WEIGHTS: Mapping[str, float] = {
    "ContentSubmitted": 30,
    "AnalyticsEventRecorded": 30,
    "ModelUsageRecorded": 18,
    "NicheResearched": 3,
    "CampaignPlanned": 3,
    "RevenueProjectionRequested": 3,
    "AgentTaskCompleted": 6,
    "BiasScored": 12,
    "BiasAlertRaised": 3,
    "MetricWindowClosed": 3,
    "OpportunityScored": 3,
    "CampaignScreened": 3,
    "RevenueProjected": 3,
}

SCENARIOS = (
    "depression",
    "anxiety",
    "trauma",
    "substance_abuse",
    "relationship_issues",
    "general_wellness",
)
AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "65+")
GENDERS = ("female", "male", "non_binary", None)
ETHNICITIES = ("asian", "black", "hispanic", "white", "middle_eastern", "mixed", None)
LANGUAGES = ("en", "en", "en", "es", "de", "fr", "zh")
REGIONS = ("north_america", "europe", "latin_america", "asia_pacific", "africa", None)
CULTURES = ("latin_american", "east_asian", "south_asian", "western_european", "west_african")
DISABILITIES = (None, None, None, "hearing", "mobility", "visual", "neurodivergent")
MARKETING_TYPES = ("blog_post", "social_media", "email", "ad", "video_script", "landing_page")
CHANNEL_ITEM_TYPES: Mapping[str, tuple[str, ...]] = {
    "social_media": ("social_media", "ad"),
    "email": ("email",),
    "content": ("blog_post",),
    "seo": ("blog_post", "landing_page"),
    "ppc": ("ad", "landing_page"),
    "display": ("ad",),
    "influencer": ("social_media", "video_script"),
    "video": ("video_script",),
    "podcast": ("video_script",),
}
PAGES = ("/", "/pricing", "/sessions", "/sessions/new", "/dashboard", "/settings", "/help")
ACTIONS = ("click_start_session", "toggle_dark_mode", "download_report", "share_result")
MODELS: Mapping[str, tuple[tuple[str, float, float], ...]] = {
    # provider -> (model, USD per 1k input tokens, USD per 1k output tokens)
    "openai": (("gpt-4o-mini", 0.00015, 0.0006), ("gpt-4o", 0.0025, 0.01)),
    "anthropic": (("claude-3-5-haiku", 0.0008, 0.004), ("claude-3-5-sonnet", 0.003, 0.015)),
    "together": (("meta-llama/Llama-3.1-70B-Instruct-Turbo", 0.00088, 0.00088),),
    "huggingface": (("mistralai/Mistral-7B-Instruct-v0.3", 0.0002, 0.0002),),
    "local": (("fairstream-bias-fast", 0.0, 0.0),),
}
NICHES = (
    ("Meal planning for shift workers", "food"),
    ("Budget tracking for freelancers", "personal finance"),
    ("Language practice for nurses abroad", "education"),
    ("Home workouts for new parents", "fitness"),
    ("Inventory tools for craft sellers", "e-commerce"),
    ("Study planners for adult learners", "education"),
    ("Sleep coaching for remote workers", "wellness"),
    ("Client booking for dog groomers", "small business"),
)
PROBLEMS = (
    "Not enough time to plan ahead",
    "Existing tools are too expensive",
    "Hard to stay consistent",
    "Information is scattered across apps",
    "No guidance for beginners",
    "Manual bookkeeping eats evenings",
)
WORKFLOW = (
    ("researcher", "run_niche_analysis"),
    ("researcher", "select_niche"),
    ("developer", "develop_solution"),
    ("monetization", "create_monetization_strategy"),
    ("marketing", "create_marketing_plan"),
    ("feedback", "process_feedback"),
)
MAX_SESSIONS = 12
LABEL_SCORES = {
    BiasLabel.NEUTRAL: (0.02, 0.25),
    BiasLabel.MILD: (0.3, 0.65),
    BiasLabel.CLEAR: (0.6, 0.98),
}


@dataclass(slots=True)
class _Session:
    session_id: str
    user_id: str
    scenario: str
    demographics: dict[str, Any]
    turns: int = 0


@dataclass(slots=True)
class _Niche:
    niche_id: str
    opportunity_id: str
    team_id: str
    workflow_id: str
    name: str
    segment: str
    market_size: str
    growth_rate: str
    competition: str
    severities: list[str]
    feasibility: float
    monetization: float
    event_id: str = ""
    next_step: int = 0


@dataclass(slots=True)
class _Content:
    content_id: str
    text: str
    label: BiasLabel
    dimension: str | None
    content_type: str
    campaign_id: str | None
    channel: str | None
    correlation_id: str | None
    caused_by: str | None = None
    event_id: str = ""


@dataclass(slots=True)
class _Campaign:
    campaign_id: str
    niche: _Niche
    items: list[_Content]
    event_id: str = ""


@dataclass(slots=True)
class _Projection:
    projection_id: str
    niche: _Niche | None
    payload: dict[str, Any]
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class _Scored:
    content: _Content
    score: float
    confidence: float
    level: str
    dimensions: tuple[str, ...]
    event_id: str


@dataclass(slots=True)
class _World:
    sessions: deque[_Session] = field(default_factory=lambda: deque(maxlen=MAX_SESSIONS))
    niches: deque[_Niche] = field(default_factory=lambda: deque(maxlen=10))
    campaigns: deque[_Campaign] = field(default_factory=lambda: deque(maxlen=10))
    pending_items: deque[_Content] = field(default_factory=lambda: deque(maxlen=200))
    submitted: deque[_Content] = field(default_factory=lambda: deque(maxlen=200))
    scored: deque[_Scored] = field(default_factory=lambda: deque(maxlen=200))
    projections: deque[_Projection] = field(default_factory=lambda: deque(maxlen=20))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrafficGenerator:
    """Produce an endless, seeded stream of plausible, mutually consistent events."""

    def __init__(
        self,
        *,
        types: Sequence[str] = SOURCE_TYPES,
        seed: int | None = None,
        source: str = DEFAULT_SOURCE,
        start: dt.datetime | None = None,
        interval: float = 0.1,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        if not types:
            raise ValueError("choose at least one event type")
        for name in types:
            entry(name)  # raises UnknownEventTypeError for a name the catalog lacks
        self.types = tuple(types)
        self._rng = random.Random(seed)
        self._source = source
        self._start = start
        self._interval = interval
        self._clock = clock
        self._emitted = 0
        self._world = _World()
        self._builders: dict[str, Callable[[], Event]] = {
            "ContentSubmitted": self.content_submitted,
            "AnalyticsEventRecorded": self.analytics_event_recorded,
            "ModelUsageRecorded": self.model_usage_recorded,
            "NicheResearched": self.niche_researched,
            "CampaignPlanned": self.campaign_planned,
            "RevenueProjectionRequested": self.revenue_projection_requested,
            "AgentTaskCompleted": self.agent_task_completed,
            "BiasScored": self.bias_scored,
            "BiasAlertRaised": self.bias_alert_raised,
            "MetricWindowClosed": self.metric_window_closed,
            "OpportunityScored": self.opportunity_scored,
            "CampaignScreened": self.campaign_screened,
            "RevenueProjected": self.revenue_projected,
        }
        missing = set(EVENT_TYPES) - set(self._builders)
        if missing:
            raise RuntimeError(f"no generator for {sorted(missing)}")
        self._weights = [WEIGHTS.get(name, 1.0) for name in self.types]

    # -- stream -----------------------------------------------------------------------

    def next_event(self) -> Event:
        """Return the next event, its type drawn by the relative weights of `types`."""
        name = self._rng.choices(self.types, weights=self._weights)[0]
        return self.make(name)

    def make(self, event_type: str) -> Event:
        """Return one event of `event_type`, consistent with what came before."""
        return self._builders[event_type]()

    def events(self, count: int | None = None) -> Iterator[Event]:
        """Yield `count` events (forever when None)."""
        produced = 0
        while count is None or produced < count:
            yield self.next_event()
            produced += 1

    # -- helpers ----------------------------------------------------------------------

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{self._uuid().hex[:12]}"

    def _now(self) -> dt.datetime:
        if self._start is not None:
            moment = self._start + dt.timedelta(seconds=self._emitted * self._interval)
        else:
            moment = self._clock()
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _event(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Event:
        subject = payload[entry(event_type).subject_field]
        envelope = Envelope.new(
            source=self._source,
            subject=str(subject),
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=self._uuid(),
            occurred_at=self._now(),
        )
        self._emitted += 1
        return Event(type=event_type, envelope=envelope, payload=payload)

    def _session(self) -> _Session:
        sessions = self._world.sessions
        if not sessions or (len(sessions) < MAX_SESSIONS and self._rng.random() < 0.15):
            sessions.append(
                _Session(
                    session_id=self._id("sess"),
                    user_id=self._id("user"),
                    scenario=self._rng.choice(SCENARIOS),
                    demographics=self._demographics(),
                )
            )
            return sessions[-1]
        return self._rng.choice(sessions)

    def _demographics(self) -> dict[str, Any]:
        rng = self._rng
        return {
            "age_band": rng.choice(AGE_BANDS),
            "gender": rng.choice(GENDERS),
            "ethnicity": rng.choice(ETHNICITIES),
            "primary_language": rng.choice(LANGUAGES),
            "region": rng.choice(REGIONS),
            "cultural_background": rng.sample(CULTURES, k=rng.choice((0, 1, 1, 2))),
            "disability_status": rng.choice(DISABILITIES),
        }

    def _niche(self) -> _Niche:
        if not self._world.niches:
            self._new_niche()
        return self._rng.choice(self._world.niches)

    def _new_niche(self) -> _Niche:
        rng = self._rng
        name, segment = rng.choice(NICHES)
        niche = _Niche(
            niche_id=self._id("niche"),
            opportunity_id=self._id("opp"),
            team_id=self._id("team"),
            workflow_id=self._id("wf"),
            name=name,
            segment=segment,
            market_size=rng.choice(tuple(FACTOR_VALUES["market_size"])),
            growth_rate=rng.choice(tuple(FACTOR_VALUES["growth_rate"])),
            competition=rng.choice(tuple(FACTOR_VALUES["competition"])),
            severities=sorted(
                rng.choices(tuple(SEVERITY), k=rng.randint(0, 3)),
                key=lambda s: -SEVERITY[s],
            ),
            feasibility=round(rng.uniform(0.3, 0.95), 2),
            monetization=round(rng.uniform(0.2, 0.9), 2),
        )
        self._world.niches.append(niche)
        return niche

    def _campaign(self) -> _Campaign:
        if not self._world.campaigns:
            self.campaign_planned()
        return self._rng.choice(self._world.campaigns)

    def _submitted(self) -> _Content:
        if not self._world.submitted:
            self.content_submitted()
        return self._rng.choice(self._world.submitted)

    # -- source events ----------------------------------------------------------------

    def content_submitted(self) -> Event:
        """Submit a therapy turn, a campaign item awaiting scoring, or standalone copy."""
        rng = self._rng
        world = self._world
        roll = rng.random()
        if world.pending_items and roll < 0.35:
            content = world.pending_items.popleft()
            payload = self._content_payload(content, content_type=content.content_type)
            payload["language"] = "en"
        elif roll < 0.7:
            session = self._session()
            session.turns += 1
            speaker = rng.choice(("user", "user", "therapist", "ai"))
            sample = self._edge_case() or compose_passage(rng, Register.THERAPY, rng.randint(1, 3))
            content = _Content(
                content_id=self._id("turn"),
                text=sample.text,
                label=sample.label,
                dimension=sample.dimension,
                content_type="therapy_transcript",
                campaign_id=None,
                channel=None,
                correlation_id=session.session_id,
            )
            payload = self._content_payload(content, content_type="therapy_transcript")
            payload.update(
                language=None if rng.random() < 0.5 else session.demographics["primary_language"],
                speaker=speaker,
                scenario_type=session.scenario,
                session_id=session.session_id,
                demographics=dict(session.demographics) if rng.random() < 0.7 else None,
            )
            payload["metadata"]["turn"] = str(session.turns)
        else:
            language = "en"
            if rng.random() < 0.05:
                language, text = non_english(rng)
                sample = TextSample(text, BiasLabel.NEUTRAL, None)
            else:
                sample = compose_passage(rng, Register.MARKETING, rng.randint(1, 2))
            content = _Content(
                content_id=self._id("content"),
                text=sample.text,
                label=sample.label,
                dimension=sample.dimension,
                content_type=rng.choice((*MARKETING_TYPES, "other")),
                campaign_id=None,
                channel=None,
                correlation_id=None,
            )
            payload = self._content_payload(content, content_type=content.content_type)
            payload["language"] = language if rng.random() < 0.6 else None
        event = self._event(
            "ContentSubmitted",
            payload,
            correlation_id=content.correlation_id,
            causation_id=content.caused_by,
        )
        content.event_id = str(event.envelope.event_id)
        world.submitted.append(content)
        return event

    def _edge_case(self) -> TextSample | None:
        roll = self._rng.random()
        if roll < 0.01:
            return TextSample("", BiasLabel.NEUTRAL, None)
        if roll < 0.02:
            return TextSample("   \n\t ", BiasLabel.NEUTRAL, None)
        if roll < 0.03:
            long = compose_passage(self._rng, Register.THERAPY, 60)
            return long
        return None

    @staticmethod
    def _content_payload(content: _Content, *, content_type: str) -> dict[str, Any]:
        metadata = {"synthetic": "true", "expected_bias": content.label.value}
        if content.dimension:
            metadata["expected_dimension"] = content.dimension
        if content.channel:
            metadata["channel"] = content.channel
        return {
            "content_id": content.content_id,
            "text": content.text,
            "content_type": content_type,
            "language": None,
            "speaker": None,
            "scenario_type": None,
            "session_id": None,
            "campaign_id": content.campaign_id,
            "demographics": None,
            "metadata": metadata,
        }

    def analytics_event_recorded(self) -> Event:
        """Record a page view, action, session milestone, error or performance sample."""
        rng = self._rng
        session = self._session()
        kind = rng.choices(
            (
                "page_view",
                "user_action",
                "therapy_session",
                "performance",
                "error",
                "notification",
                "security",
                "custom",
            ),
            weights=(40, 20, 12, 10, 5, 6, 2, 5),
        )[0]
        priority = "normal"
        properties: dict[str, Any] = {}
        if kind == "page_view":
            name = rng.choice(PAGES)
            properties = {
                "referrer": rng.choice(("direct", "search", "email", "social")),
                "duration_ms": rng.randint(300, 120_000),
            }
        elif kind == "user_action":
            name = rng.choice(ACTIONS)
            properties = {"page": rng.choice(PAGES), "success": rng.random() > 0.03}
        elif kind == "therapy_session":
            name = rng.choice(("start_session", "end_session", "pause_session"))
            properties = {"scenario": session.scenario, "turns": session.turns}
        elif kind == "performance":
            name = rng.choice(("api_latency", "page_load", "scoring_latency"))
            properties = {"value_ms": round(rng.lognormvariate(4.5, 0.6), 1), "p": 0.95}
        elif kind == "error":
            name = rng.choice(("http_500", "timeout", "validation_failed"))
            priority = rng.choice(("high", "normal", "critical"))
            properties = {
                "endpoint": rng.choice(("/api/score", "/api/sessions", "/api/plans")),
                "retryable": rng.random() < 0.5,
            }
        elif kind == "security":
            name = rng.choice(("login_failed", "password_reset", "mfa_enabled"))
            priority = "high" if name == "login_failed" else "normal"
            properties = {"ip_country": rng.choice(("US", "DE", "BR", "IN", "NG"))}
        elif kind == "notification":
            name = rng.choice(("reminder_sent", "digest_opened", "push_dismissed"))
            priority = "low"
            properties = {"channel": rng.choice(("email", "push", "sms"))}
        else:
            name = rng.choice(("feedback_submitted", "survey_answered"))
            properties = {"rating": rng.randint(1, 5), "comment": None}
        payload = {
            "session_id": session.session_id,
            "user_id": session.user_id if rng.random() < 0.9 else None,
            "analytics_type": kind,
            "name": name,
            "priority": priority,
            "properties": properties,
        }
        return self._event("AnalyticsEventRecorded", payload, correlation_id=session.session_id)

    def model_usage_recorded(self) -> Event:
        """Record one model call with tokens, latency and cost from a provider's price list."""
        rng = self._rng
        provider = rng.choices(tuple(MODELS), weights=(35, 25, 15, 10, 15))[0]
        model, price_in, price_out = rng.choice(MODELS[provider])
        session = self._session() if rng.random() < 0.7 else None
        success = rng.random() > 0.04
        cached = success and rng.random() < 0.1
        input_tokens = int(rng.lognormvariate(6.2, 0.7))
        output_tokens = int(rng.lognormvariate(5.3, 0.8)) if success else 0
        cost = 0.0 if cached else (input_tokens * price_in + output_tokens * price_out) / 1000
        latency = rng.lognormvariate(6.5, 0.5) if provider != "local" else rng.uniform(3, 40)
        payload = {
            "request_id": self._id("req"),
            "provider": provider,
            "model": model,
            "latency_ms": round(latency * (0.05 if cached else 1.0), 2),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "success": success,
            "error_code": None
            if success
            else rng.choice(("rate_limited", "timeout", "overloaded")),
            "cached": cached,
            "cost": round(cost, 6),
            "user_id": session.user_id if session else None,
            "session_id": session.session_id if session else None,
        }
        correlation = session.session_id if session else None
        return self._event("ModelUsageRecorded", payload, correlation_id=correlation)

    def niche_researched(self) -> Event:
        """Research a new niche; it starts a workflow that later events refer to."""
        rng = self._rng
        niche = self._new_niche()
        problems = [
            {
                "title": title,
                "description": f"{title} is the most common complaint in {niche.segment} forums.",
                "severity": severity,
            }
            for title, severity in zip(
                rng.sample(PROBLEMS, k=len(niche.severities)), niche.severities, strict=True
            )
        ]
        words = niche.name.lower().split()
        payload = {
            "niche_id": niche.niche_id,
            "name": niche.name,
            "market_segment": niche.segment,
            "description": f"{niche.name}: underserved by general-purpose tools.",
            "market_size": niche.market_size,
            "growth_rate": niche.growth_rate,
            "competition": niche.competition,
            "problems": problems,
            "solution_feasibility": niche.feasibility,
            "monetization_potential": niche.monetization,
            "keywords": sorted({w for w in words if len(w) > 3})[:5],
        }
        event = self._event("NicheResearched", payload, correlation_id=niche.workflow_id)
        niche.event_id = str(event.envelope.event_id)
        return event

    def campaign_planned(self) -> Event:
        """Plan a campaign for a niche's opportunity; its items are submitted for scoring later."""
        rng = self._rng
        niche = self._niche()
        campaign_id = self._id("camp")
        start = self._now().date() + dt.timedelta(days=rng.randint(1, 14))
        end = start + dt.timedelta(days=rng.choice((14, 28, 30, 60, 90)))
        channels = rng.sample(tuple(CHANNEL_ITEM_TYPES), k=rng.randint(1, 3))
        shares = [rng.uniform(0.5, 1.5) for _ in channels]
        items: list[_Content] = []
        channel_plans = []
        for channel, share in zip(channels, shares, strict=True):
            plan_items = []
            for _ in range(rng.randint(1, 4)):
                sample = compose(rng, Register.MARKETING)
                content = _Content(
                    content_id=self._id("item"),
                    text=sample.text,
                    label=sample.label,
                    dimension=sample.dimension,
                    content_type=rng.choice(CHANNEL_ITEM_TYPES[channel]),
                    campaign_id=campaign_id,
                    channel=channel,
                    correlation_id=niche.workflow_id,
                )
                items.append(content)
                plan_items.append(
                    {
                        "content_id": content.content_id,
                        "item_type": content.content_type,
                        "publish_date": start
                        + dt.timedelta(days=rng.randint(0, (end - start).days)),
                        "status": "scheduled",
                        "text": content.text,
                    }
                )
            channel_plans.append(
                {
                    "channel": channel,
                    "budget_share": round(share / sum(shares), 4),
                    "items": plan_items,
                }
            )
        allocated = float(rng.choice((500, 1000, 2500, 5000, 10000)))
        impressions = int(allocated * rng.uniform(40, 120))
        clicks = int(impressions * rng.uniform(0.01, 0.04))
        payload = {
            "campaign_id": campaign_id,
            "opportunity_id": niche.opportunity_id,
            "name": f"{niche.name} launch {start:%b %Y}",
            "status": "draft",
            "start_date": start,
            "end_date": end,
            "channels": channel_plans,
            "budget": {
                "allocated": allocated,
                "spent": 0.0,
                "remaining": allocated,
                "currency": "USD",
            },
            "target_metrics": {
                "impressions": impressions,
                "clicks": clicks,
                "conversions": int(clicks * rng.uniform(0.02, 0.08)),
                "roi": round(rng.uniform(0.2, 2.5), 2),
            },
        }
        event = self._event(
            "CampaignPlanned",
            payload,
            correlation_id=niche.workflow_id,
            causation_id=niche.event_id or None,
        )
        campaign = _Campaign(campaign_id, niche, items, str(event.envelope.event_id))
        for item in items:
            item.caused_by = campaign.event_id
        self._world.campaigns.append(campaign)
        self._world.pending_items.extend(items)
        return event

    def revenue_projection_requested(self) -> Event:
        """Ask for a revenue projection of a niche's monetisation strategy."""
        rng = self._rng
        niche = self._niche() if rng.random() < 0.85 else None
        model = rng.choice(("freemium", "freemium", "subscription", "mixed"))
        scale = rng.choice((0.8, 1.0, 1.0, 1.5))
        tiers = [
            {
                "name": name,
                "price_monthly": round(price * scale, 2),
                "price_yearly": None if rng.random() < 0.6 else round(price * scale * 10, 2),
                "share": share,
                "features": features,
            }
            for name, price, share, features in (
                ("basic", 9.99, 0.6, ["core features"]),
                ("pro", 19.99, 0.3, ["core features", "exports", "priority support"]),
                ("premium", 49.99, 0.1, ["everything in pro", "team seats", "api access"]),
            )
        ]
        projection_id = self._id("proj")
        payload: dict[str, Any] = {
            "projection_id": projection_id,
            "opportunity_id": niche.opportunity_id if niche else None,
            "business_model": model,
            "tiers": tiers,
            "initial_users": rng.choice((0, 0, 100, 500)),
            "acquisition_per_month": float(rng.choice((50, 50, 100, 250))),
            "conversion_rate": rng.choice((0.2, 0.1, 0.05)),
            "churn_rate": rng.choice((0.05, 0.03, 0.08)),
            "growth_rate": rng.choice((0.05, 0.1, 0.02)),
            "months": rng.choice((12, 24, 36, 36)),
            "currency": "USD",
        }
        projection = _Projection(projection_id, niche, payload)
        event = self._event(
            "RevenueProjectionRequested",
            payload,
            correlation_id=niche.workflow_id if niche else None,
            causation_id=(niche.event_id or None) if niche else None,
        )
        projection.event_id = str(event.envelope.event_id)
        self._world.projections.append(projection)
        return event

    def agent_task_completed(self) -> Event:
        """Complete the next workflow step of a niche's agent team."""
        rng = self._rng
        niche = self._niche()
        role, step = WORKFLOW[niche.next_step % len(WORKFLOW)]
        niche.next_step += 1
        started = self._now() - dt.timedelta(seconds=rng.randint(5, 900))
        status = rng.choices(("completed", "failed", "cancelled"), weights=(88, 9, 3))[0]
        steps: list[dict[str, Any]] = []
        moment = started
        for attempt in range(rng.randint(1, 3)):
            ended = moment + dt.timedelta(seconds=rng.randint(1, 240))
            last = attempt == 0 or rng.random() < 0.5
            step_status = status if last else "completed"
            steps.append(
                {
                    "agent_id": f"{niche.team_id}/{role}-{attempt + 1}",
                    "step": step,
                    "started_at": moment,
                    "ended_at": None if step_status == "cancelled" else ended,
                    "status": step_status,
                    "error": "upstream model timed out" if step_status == "failed" else None,
                }
            )
            moment = ended
            if last:
                break
        output_ref = {
            "run_niche_analysis": niche.niche_id,
            "select_niche": niche.niche_id,
            "create_monetization_strategy": niche.opportunity_id,
            "create_marketing_plan": niche.opportunity_id,
        }.get(step)
        payload = {
            "task_id": self._id("task"),
            "team_id": niche.team_id,
            "agent_role": role,
            "workflow_step": step,
            "status": status,
            "started_at": started.replace(microsecond=started.microsecond // 1000 * 1000),
            "steps": [
                {**s, "started_at": _millis(s["started_at"]), "ended_at": _millis(s["ended_at"])}
                for s in steps
            ],
            "output_ref": output_ref if status == "completed" else None,
            "error": "step failed after retries" if status == "failed" else None,
        }
        return self._event("AgentTaskCompleted", payload, correlation_id=niche.workflow_id)

    # -- derived events (normally computed by processors) -----------------------------

    def bias_scored(self) -> Event:
        """Score a recent submission, consistently with the bias it was written with."""
        rng = self._rng
        content = self._submitted()
        low, high = LABEL_SCORES[content.label]
        empty = not content.text.strip()
        score = 0.0 if empty else round(rng.uniform(low, high), 4)
        confidence = round(rng.uniform(0.55, 0.97), 4)
        level = _level(score)
        dims: list[dict[str, Any]] = []
        if content.dimension and content.label is not BiasLabel.NEUTRAL:
            dims.append(
                {
                    "dimension": content.dimension,
                    "score": score,
                    "confidence": confidence,
                    "evidence": content.text.split()[:3],
                }
            )
        dims.append(
            {
                "dimension": "unknown",
                "score": round(score * rng.uniform(0.1, 0.5), 4),
                "confidence": round(confidence * 0.6, 4),
                "evidence": [],
            }
        )
        words = content.text.split()
        evidence = []
        if dims[0]["dimension"] != "unknown" and words:
            span = " ".join(words[:3])
            evidence.append(
                {
                    "text": span,
                    "start": content.text.index(words[0]),
                    "end": content.text.index(words[0]) + len(span),
                    "weight": round(score * 0.8, 4),
                    "dimension": content.dimension,
                }
            )
        flags = []
        if not content.text:
            flags.append("empty")
        elif empty:
            flags.append("whitespace_only")
        payload = {
            "content_id": content.content_id,
            "model_name": "fast",
            "model_version": "fast-2025.1",
            "overall_score": score,
            "confidence": confidence,
            "level": level,
            "dimensions": dims,
            "evidence": evidence,
            "content_hash": hashlib.sha256(content.text.encode("utf-8")).hexdigest(),
            "text_length": len(content.text),
            "word_count": len(words),
            "language": "und" if empty else "en",
            "flags": flags,
            "latency_ms": round(rng.uniform(2.0, 35.0), 3),
            "campaign_id": content.campaign_id,
            "content_type": content.content_type,
        }
        event = self._event(
            "BiasScored",
            payload,
            correlation_id=content.correlation_id,
            causation_id=content.event_id or None,
        )
        self._world.scored.append(
            _Scored(
                content,
                score,
                confidence,
                level,
                tuple(d["dimension"] for d in dims if d["dimension"] != "unknown"),
                str(event.envelope.event_id),
            )
        )
        return event

    def bias_alert_raised(self) -> Event:
        """Raise an alert for a recent high score, by the domain's alert rules."""
        candidates = [s for s in self._world.scored if s.score > 0.5]
        if not candidates:
            content = _Content(
                content_id=self._id("content"),
                text="",
                label=BiasLabel.CLEAR,
                dimension=None,
                content_type="other",
                campaign_id=None,
                channel=None,
                correlation_id=None,
            )
            candidates = [_Scored(content, 0.85, 0.8, "critical", (), "")]
        scored = self._rng.choice(candidates)
        if scored.score > 0.9:
            level, reason, escalate = "critical", "score > 0.9", 60
        elif scored.score > 0.7:
            level, reason, escalate = "high", "score > 0.7", 300
        elif scored.confidence < 0.5:
            level, reason, escalate = "medium", "low confidence with score > 0.5: needs review", 900
        else:
            level, reason, escalate = _level(scored.score), "score above alert threshold", 900
        payload = {
            "content_id": scored.content.content_id,
            "level": level,
            "overall_score": scored.score,
            "confidence": scored.confidence,
            "reason": reason,
            "dimensions": list(scored.dimensions) or ["unknown"],
            "model_version": "fast-2025.1",
            "escalate_after_seconds": escalate,
        }
        return self._event(
            "BiasAlertRaised",
            payload,
            correlation_id=scored.content.correlation_id,
            causation_id=scored.event_id or None,
        )

    def metric_window_closed(self) -> Event:
        """Close a one-minute window of bias, model-usage or analytics figures."""
        rng = self._rng
        family = rng.choice(("bias", "model_usage", "analytics"))
        now = self._now()
        start = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
        end = start + dt.timedelta(minutes=1)
        group_by, group_value = rng.choice(
            {
                "bias": (
                    ("all", "*"),
                    ("content_type", "therapy_transcript"),
                    ("content_type", "ad"),
                ),
                "model_usage": (
                    ("all", "*"),
                    ("model", "gpt-4o-mini"),
                    ("model", "claude-3-5-haiku"),
                ),
                "analytics": (("all", "*"), ("analytics_type", "page_view")),
            }[family]
        )
        count = rng.randint(1, 400)
        payload: dict[str, Any] = {
            "window_key": f"{family}/minute/{group_by}={group_value}/{start.isoformat()}",
            "family": family,
            "window": "minute",
            "window_start": start,
            "window_end": end,
            "group_by": group_by,
            "group_value": group_value,
            "count": count,
            "score_sum": 0.0,
            "score_avg": None,
            "score_max": None,
            "score_buckets": [],
            "latency_avg_ms": None,
            "latency_p95_ms": None,
            "tokens": 0,
            "cost": 0.0,
            "error_count": 0,
            "alert_counts": {},
            "late_count": rng.choice((0, 0, 0, 1, 2)),
        }
        if family == "bias":
            buckets = [0] * 5
            for _ in range(count):
                buckets[min(4, int(rng.betavariate(1.2, 3.0) * 5))] += 1
            avg = round(rng.uniform(0.1, 0.4), 4)
            payload.update(
                score_sum=round(avg * count, 4),
                score_avg=avg,
                score_max=round(rng.uniform(max(avg, 0.5), 1.0), 4),
                score_buckets=buckets,
                latency_avg_ms=round(rng.uniform(3, 20), 3),
                latency_p95_ms=round(rng.uniform(20, 60), 3),
                alert_counts={"high": buckets[3], "critical": buckets[4]},
            )
        elif family == "model_usage":
            latency = rng.uniform(300, 1500)
            payload.update(
                latency_avg_ms=round(latency, 3),
                latency_p95_ms=round(latency * rng.uniform(1.5, 3.0), 3),
                tokens=count * rng.randint(300, 2000),
                cost=round(count * rng.uniform(0.0005, 0.02), 6),
                error_count=rng.randint(0, max(1, count // 25)),
            )
        else:
            payload.update(error_count=rng.randint(0, max(1, count // 50)))
        return self._event("MetricWindowClosed", payload)

    def opportunity_scored(self) -> Event:
        """Score a niche as an opportunity with the domain's weighted factors."""
        niche = self._niche()
        severity = problem_severity(niche.severities)
        factors = {
            "market_size": FACTOR_VALUES["market_size"][niche.market_size],
            "growth_rate": FACTOR_VALUES["growth_rate"][niche.growth_rate],
            "competition": FACTOR_VALUES["competition"][niche.competition],
            "problem_severity": round(severity, 4),
            "solution_feasibility": niche.feasibility,
            "monetization_potential": niche.monetization,
        }
        overall = round(overall_score(factors), 4)
        payload = {
            "niche_id": niche.niche_id,
            "opportunity_id": niche.opportunity_id,
            "factors": factors,
            "weights": dict(OPPORTUNITY_WEIGHTS),
            "overall_score": overall,
            "band": band_for(overall),
        }
        return self._event(
            "OpportunityScored",
            payload,
            correlation_id=niche.workflow_id,
            causation_id=niche.event_id or None,
        )

    def campaign_screened(self) -> Event:
        """Screen every item of a planned campaign by the bias it was written with."""
        rng = self._rng
        campaign = self._campaign()
        flagged = []
        scored = 0
        for item in campaign.items:
            if rng.random() < 0.03:
                continue
            scored += 1
            low, high = LABEL_SCORES[item.label]
            score = round(rng.uniform(low, high), 4)
            if score >= 0.3:
                flagged.append(
                    {
                        "content_id": item.content_id,
                        "channel": item.channel or "other",
                        "level": _level(score),
                        "overall_score": score,
                        "dimensions": [item.dimension] if item.dimension else ["unknown"],
                        "reasons": [f"{item.label.value} bias in generated copy"],
                    }
                )
        total = len(campaign.items)
        verdict = "incomplete" if scored < total else "needs_review" if flagged else "approved"
        payload = {
            "campaign_id": campaign.campaign_id,
            "verdict": verdict,
            "flagged_items": flagged,
            "items_total": total,
            "items_scored": scored,
            "items_flagged": len(flagged),
            "model_version": "fast-2025.1",
        }
        return self._event(
            "CampaignScreened",
            payload,
            correlation_id=campaign.niche.workflow_id,
            causation_id=campaign.event_id or None,
        )

    def revenue_projected(self) -> Event:
        """Compute a requested projection with the domain's month-by-month model."""
        if not self._world.projections:
            self.revenue_projection_requested()
        request = self._rng.choice(self._world.projections)
        payload = project_revenue(request.payload)
        return self._event(
            "RevenueProjected",
            payload,
            correlation_id=request.niche.workflow_id if request.niche else None,
            causation_id=request.event_id or None,
        )


def _millis(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _level(score: float) -> str:
    if score >= 0.8:
        return "critical"
    if score >= 0.6:
        return "high"
    if score >= 0.3:
        return "medium"
    return "low"


def parse_types(text: str | None) -> tuple[str, ...]:
    """Turn `a,b` into event type names; None or `source` means SOURCE_TYPES, `all` all."""
    if text is None or text.strip() in ("", "source"):
        return SOURCE_TYPES
    if text.strip() == "all":
        return EVENT_TYPES
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        entry(name)
    return names
