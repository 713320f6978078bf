"""Screen a planned campaign's content items for bias: state, scores, verdict, timeout.

The screening state of one campaign is a plain JSON-able dict (it lives in a Faust
table whose changelog is JSON):

    campaign_id, planned_event_id, correlation_id, occurred_at (ISO), started_at (epoch s),
    items:  {content_id: {"channel", "item_type"}},
    scores: {content_id: {"event_id", "level", "overall_score", "dimensions", "reasons",
                          "model_version"}},
    verdict: None until screened, then "approved" | "needs_review" | "incomplete".

Once screened the state is compacted to its ids and verdict, so a late or duplicated
BiasScored, or a re-delivered CampaignPlanned, is recognised and changes nothing.
Pure functions: no Kafka, no Faust, the clock is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.bias.scoring import DEFAULT_THRESHOLDS, Thresholds, level_for

State = dict[str, Any]
LEVELS: Sequence[str] = ("low", "medium", "high", "critical")
FLAG_FROM = "medium"
MISSING_REASON = "not scored: no BiasScored arrived within {timeout:g}s"
MAX_EVIDENCE_TERMS = 3


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """Describe one content item of a campaign, as it is submitted for scoring."""

    content_id: str
    channel: str
    item_type: str
    text: str
    publish_date: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Hold the outcome of a screening, shaped like the CampaignScreened payload."""

    campaign_id: str
    verdict: str
    flagged_items: list[dict[str, Any]]
    items_total: int
    items_scored: int
    model_version: str | None
    missing: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """Return the CampaignScreened payload."""
        return {
            "campaign_id": self.campaign_id,
            "verdict": self.verdict,
            "flagged_items": self.flagged_items,
            "items_total": self.items_total,
            "items_scored": self.items_scored,
            "items_flagged": len(self.flagged_items),
            "model_version": self.model_version,
        }


def planned_items(campaign: Mapping[str, Any]) -> list[PlannedItem]:
    """Return the campaign's content items, channel by channel; a repeated content_id once."""
    seen: dict[str, PlannedItem] = {}
    for plan in campaign.get("channels") or ():
        for item in plan.get("items") or ():
            content_id = str(item["content_id"])
            if content_id in seen:
                continue
            date = item.get("publish_date")
            seen[content_id] = PlannedItem(
                content_id=content_id,
                channel=str(plan.get("channel") or "other"),
                item_type=str(item.get("item_type") or "other"),
                text=str(item.get("text") or ""),
                publish_date=date.isoformat() if hasattr(date, "isoformat") else str(date or ""),
            )
    return list(seen.values())


def start_screening(
    campaign: Mapping[str, Any],
    *,
    planned_event_id: str,
    correlation_id: str,
    occurred_at: str,
    now: float,
) -> State:
    """Return the state of a campaign whose screening starts now."""
    return {
        "campaign_id": str(campaign["campaign_id"]),
        "planned_event_id": planned_event_id,
        "correlation_id": correlation_id,
        "occurred_at": occurred_at,
        "started_at": now,
        "items": {
            i.content_id: {"channel": i.channel, "item_type": i.item_type}
            for i in planned_items(campaign)
        },
        "scores": {},
        "verdict": None,
    }


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def assess_score(scored: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> State:
    """Reduce a BiasScored payload to what screening keeps: level, dimensions and why.

    The level is the more severe of the one BiasScored reports and the one this
    processor's thresholds give the overall score, so a stricter screening
    configuration is never weakened by the scorer's.
    """
    score = float(scored["overall_score"])
    reported = str(scored.get("level") or "low")
    computed = level_for(score, thresholds)
    level = reported if _rank(reported) >= _rank(computed) else computed
    dims = sorted(scored.get("dimensions") or (), key=lambda d: -float(d["score"]))
    drivers = [d for d in dims if float(d["score"]) >= thresholds.medium] or dims[:1]
    reasons = [f"overall bias score {score:.2f} is {level}"]
    for d in drivers:
        terms = list(dict.fromkeys(str(t) for t in d.get("evidence") or ()))[:MAX_EVIDENCE_TERMS]
        if not terms:
            terms = [
                str(span["text"])
                for span in scored.get("evidence") or ()
                if span.get("dimension") == d["dimension"]
            ][:MAX_EVIDENCE_TERMS]
        reasons.append(
            f"{d['dimension']} {float(d['score']):.2f}"
            + (f": evidence {', '.join(repr(t) for t in terms)}" if terms else "")
        )
    return {
        "level": level,
        "overall_score": score,
        "dimensions": [str(d["dimension"]) for d in drivers],
        "reasons": reasons,
        "model_version": str(scored.get("model_version") or ""),
    }


def record_score(state: State, content_id: str, event_id: str, assessed: Mapping[str, Any]) -> bool:
    """Record an item's score in `state`; return False when it changes nothing.

    Nothing changes for a screened campaign, an item the campaign does not have, or
    an item already scored (the same BiasScored delivered twice, or a second score).
    """
    if state.get("verdict") is not None or content_id not in state["items"]:
        return False
    if content_id in state["scores"]:
        return False
    state["scores"][content_id] = {"event_id": event_id, **assessed}
    return True


def is_flagged(assessed: Mapping[str, Any]) -> bool:
    """Tell whether a scored item needs review: level medium or above."""
    return _rank(str(assessed["level"])) >= _rank(FLAG_FROM)


def _flagged_entry(content_id: str, channel: str, assessed: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "content_id": content_id,
        "channel": channel,
        "level": assessed["level"],
        "overall_score": assessed["overall_score"],
        "dimensions": list(assessed["dimensions"]),
        "reasons": list(assessed["reasons"]),
    }


def _model_version(state: State) -> str | None:
    versions = sorted({s["model_version"] for s in state["scores"].values() if s["model_version"]})
    return ",".join(versions) or None


def _flagged(state: State) -> list[dict[str, Any]]:
    # In the plan's item order, not the order the scores arrived in (which a rebalance or a
    # restart changes): the same scores always give the same verdict.
    scores = state["scores"]
    return [
        _flagged_entry(cid, item["channel"], scores[cid])
        for cid, item in state["items"].items()
        if cid in scores and is_flagged(scores[cid])
    ]


def complete_verdict(state: State) -> Verdict | None:
    """Return approved or needs_review once every item is scored; None before."""
    if state.get("verdict") is not None:
        return None
    items = state["items"]
    if len(state["scores"]) < len(items):
        return None
    flagged = _flagged(state)
    return Verdict(
        campaign_id=state["campaign_id"],
        verdict="needs_review" if flagged else "approved",
        flagged_items=flagged,
        items_total=len(items),
        items_scored=len(state["scores"]),
        model_version=_model_version(state),
    )


def is_overdue(state: Mapping[str, Any], now: float, timeout: float) -> bool:
    """Tell whether a screening still open has waited `timeout` seconds or more."""
    return state.get("verdict") is None and now - float(state["started_at"]) >= timeout


def overdue_campaigns(
    states: Iterable[tuple[str, Mapping[str, Any] | None]], now: float, timeout: float
) -> list[str]:
    """Return the ids of the open screenings whose time is up."""
    return [key for key, state in states if state is not None and is_overdue(state, now, timeout)]


def timeout_verdict(state: State, now: float, timeout: float) -> Verdict | None:
    """Return the incomplete verdict of an overdue screening, listing the missing items.

    Items that got a score and are flagged are listed as usual; each missing item is
    listed too, with level low, score 0 and the reason that no score arrived (the
    CampaignScreened v1 schema has no separate field for missing items).
    """
    if not is_overdue(state, now, timeout):
        return None
    missing = [cid for cid in state["items"] if cid not in state["scores"]]
    if not missing:
        return complete_verdict(state)
    reason = MISSING_REASON.format(timeout=timeout)
    flagged = _flagged(state) + [
        {
            "content_id": cid,
            "channel": state["items"][cid]["channel"],
            "level": "low",
            "overall_score": 0.0,
            "dimensions": [],
            "reasons": [reason],
        }
        for cid in missing
    ]
    return Verdict(
        campaign_id=state["campaign_id"],
        verdict="incomplete",
        flagged_items=flagged,
        items_total=len(state["items"]),
        items_scored=len(state["scores"]),
        model_version=_model_version(state),
        missing=missing,
    )


def screened_state(state: State, verdict: Verdict, now: float) -> State:
    """Return the compact state kept after a verdict: enough to ignore what comes later."""
    return {
        "campaign_id": state["campaign_id"],
        "planned_event_id": state["planned_event_id"],
        "correlation_id": state["correlation_id"],
        "started_at": state["started_at"],
        "screened_at": now,
        "verdict": verdict.verdict,
    }
