"""Project BiasScored and BiasAlertRaised into PostgreSQL: results per content, alert history.

A batch is written with one statement per table: the rows travel as arrays and are
`unnest`-ed server-side, so the cost is one round trip whatever the batch size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from events.model import Event
from projections.rows import columns, latest_per_key
from projections.runner import Position

UPSERT_RESULTS = """
INSERT INTO bias_results (
    content_id, model_version, model_name, event_id, overall_score, confidence,
    level, dimensions, evidence, content_hash, text_length, word_count, language,
    flags, latency_ms, content_type, campaign_id, source, correlation_id, scored_at)
SELECT r.content_id, r.model_version, r.model_name, r.event_id, r.overall_score, r.confidence,
    r.level, r.dimensions::jsonb, r.evidence::jsonb, r.content_hash, r.text_length,
    r.word_count, r.language, ARRAY(SELECT jsonb_array_elements_text(r.flags::jsonb)),
    r.latency_ms, r.content_type, r.campaign_id, r.source, r.correlation_id, r.scored_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::float8[], $6::float8[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::int[],
            $13::text[], $14::text[], $15::float8[], $16::text[], $17::text[], $18::text[],
            $19::text[], $20::timestamptz[])
    AS r(content_id, model_version, model_name, event_id, overall_score, confidence,
         level, dimensions, evidence, content_hash, text_length, word_count, language,
         flags, latency_ms, content_type, campaign_id, source, correlation_id, scored_at)
ON CONFLICT (content_id, model_version) DO UPDATE SET
    model_name = EXCLUDED.model_name, event_id = EXCLUDED.event_id,
    overall_score = EXCLUDED.overall_score, confidence = EXCLUDED.confidence,
    level = EXCLUDED.level, dimensions = EXCLUDED.dimensions,
    evidence = EXCLUDED.evidence, content_hash = EXCLUDED.content_hash,
    text_length = EXCLUDED.text_length, word_count = EXCLUDED.word_count,
    language = EXCLUDED.language, flags = EXCLUDED.flags,
    latency_ms = EXCLUDED.latency_ms, content_type = EXCLUDED.content_type,
    campaign_id = EXCLUDED.campaign_id, source = EXCLUDED.source,
    correlation_id = EXCLUDED.correlation_id, scored_at = EXCLUDED.scored_at,
    applied_at = now()
WHERE bias_results.scored_at <= EXCLUDED.scored_at
"""

INSERT_ALERTS = """
INSERT INTO bias_alerts (event_id, content_id, level, overall_score, confidence,
    reason, dimensions, model_version, escalate_after_seconds, raised_at)
SELECT a.event_id, a.content_id, a.level, a.overall_score, a.confidence, a.reason,
    ARRAY(SELECT jsonb_array_elements_text(a.dimensions::jsonb)), a.model_version,
    a.escalate_after_seconds, a.raised_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[],
            $7::text[], $8::text[], $9::int[], $10::timestamptz[])
    AS a(event_id, content_id, level, overall_score, confidence, reason, dimensions,
         model_version, escalate_after_seconds, raised_at)
ON CONFLICT (event_id) DO NOTHING
"""


class PostgresBiasResultsProjection:
    """Keep one row per (content, model version) and every alert raised."""

    name: str = "bias-results"
    event_types: tuple[str, ...] = ("BiasScored", "BiasAlertRaised")

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Upsert the result or record the alert."""
        await self.apply_batch(conn, [(event, position)])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Upsert the latest result per (content, model version); insert the alerts."""
        scored = [(e, p) for e, p in events if e.type == "BiasScored"]
        alerts = [e for e, _ in events if e.type == "BiasAlertRaised"]
        if scored:
            latest = latest_per_key(scored, "content_id", "model_version")
            rows = [_result_row(e) for e, _ in latest]
            await conn.execute(UPSERT_RESULTS, *columns(rows, 20))
        if alerts:
            await conn.execute(INSERT_ALERTS, *columns([_alert_row(e) for e in alerts], 10))


def _result_row(event: Event) -> tuple[Any, ...]:
    p = event.payload
    env = event.envelope
    dimensions = {
        d["dimension"]: {
            "score": d["score"],
            "confidence": d["confidence"],
            "evidence": list(d["evidence"]),
        }
        for d in p["dimensions"]
    }
    return (
        p["content_id"],
        p["model_version"],
        p["model_name"],
        env.event_id,
        float(p["overall_score"]),
        float(p["confidence"]),
        p["level"],
        json.dumps(dimensions),
        json.dumps([dict(s) for s in p["evidence"]]),
        p["content_hash"],
        int(p["text_length"]),
        int(p["word_count"]),
        p["language"],
        json.dumps(list(p["flags"])),
        float(p["latency_ms"]),
        p.get("content_type"),
        p.get("campaign_id"),
        env.source,
        env.correlation_id,
        env.occurred_at,
    )


def _alert_row(event: Event) -> tuple[Any, ...]:
    p = event.payload
    return (
        event.envelope.event_id,
        p["content_id"],
        p["level"],
        float(p["overall_score"]),
        float(p["confidence"]),
        p["reason"],
        json.dumps(list(p["dimensions"])),
        p["model_version"],
        int(p["escalate_after_seconds"]),
        event.envelope.occurred_at,
    )
