"""Read-side queries: plain SQL over the read models, returning plain dicts."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def bias_for_content(
    pool: asyncpg.Pool, content_id: str, model_version: str | None = None
) -> dict[str, Any] | None:
    """Return the newest result for a content (or for one model version), with its alerts."""
    row = await pool.fetchrow(
        """
        SELECT content_id, model_name, model_version, overall_score, confidence, level,
               dimensions, evidence, content_hash, text_length, word_count, language, flags,
               latency_ms, content_type, campaign_id, scored_at
        FROM bias_results
        WHERE content_id = $1 AND ($2::text IS NULL OR model_version = $2)
        ORDER BY scored_at DESC, model_version DESC
        LIMIT 1
        """,
        content_id,
        model_version,
    )
    if row is None:
        return None
    alerts = await pool.fetch(
        """
        SELECT level, overall_score, reason, dimensions, raised_at
        FROM bias_alerts WHERE content_id = $1 AND model_version = $2
        ORDER BY raised_at
        """,
        content_id,
        row["model_version"],
    )
    result = dict(row)
    result["dimensions"] = json.loads(row["dimensions"])
    result["evidence"] = json.loads(row["evidence"])
    result["flags"] = list(row["flags"])
    result["alerts"] = [dict(a) | {"dimensions": list(a["dimensions"])} for a in alerts]
    return result
