"""Project BiasScored and BiasAlertRaised into PostgreSQL: results per content, alert history."""

from __future__ import annotations

import json

import asyncpg

from events.model import Event
from projections.runner import Position


class PostgresBiasResultsProjection:
    """Keep one row per (content, model version) and every alert raised."""

    name: str = "bias-results"
    event_types: tuple[str, ...] = ("BiasScored", "BiasAlertRaised")

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Upsert the result or record the alert."""
        if event.type == "BiasScored":
            await self._apply_scored(conn, event)
        elif event.type == "BiasAlertRaised":
            await self._apply_alert(conn, event)

    async def _apply_scored(self, conn: asyncpg.Connection, event: Event) -> None:
        p = event.payload
        env = event.envelope
        await conn.execute(
            """
            INSERT INTO bias_results (
                content_id, model_version, model_name, event_id, overall_score, confidence,
                level, dimensions, evidence, content_hash, text_length, word_count, language,
                flags, latency_ms, content_type, campaign_id, source, correlation_id, scored_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, $13,
                    $14, $15, $16, $17, $18, $19, $20)
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
            """,
            p["content_id"],
            p["model_version"],
            p["model_name"],
            env.event_id,
            float(p["overall_score"]),
            float(p["confidence"]),
            p["level"],
            json.dumps(
                {
                    d["dimension"]: {
                        "score": d["score"],
                        "confidence": d["confidence"],
                        "evidence": list(d["evidence"]),
                    }
                    for d in p["dimensions"]
                }
            ),
            json.dumps([dict(s) for s in p["evidence"]]),
            p["content_hash"],
            int(p["text_length"]),
            int(p["word_count"]),
            p["language"],
            list(p["flags"]),
            float(p["latency_ms"]),
            p.get("content_type"),
            p.get("campaign_id"),
            env.source,
            env.correlation_id,
            env.occurred_at,
        )

    async def _apply_alert(self, conn: asyncpg.Connection, event: Event) -> None:
        p = event.payload
        await conn.execute(
            """
            INSERT INTO bias_alerts (event_id, content_id, level, overall_score, confidence,
                reason, dimensions, model_version, escalate_after_seconds, raised_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (event_id) DO NOTHING
            """,
            event.envelope.event_id,
            p["content_id"],
            p["level"],
            float(p["overall_score"]),
            float(p["confidence"]),
            p["reason"],
            list(p["dimensions"]),
            p["model_version"],
            int(p["escalate_after_seconds"]),
            event.envelope.occurred_at,
        )
