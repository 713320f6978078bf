"""Read-side queries: plain SQL over the PostgreSQL read models, returning plain dicts."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg

from api.pagination import ListSpec

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection

_BIAS_COLUMNS = """content_id, model_name, model_version, overall_score, confidence, level,
    dimensions, evidence, content_hash, text_length, word_count, language, flags,
    latency_ms, content_type, campaign_id, source, scored_at"""


def bias_row(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """Decode the jsonb and array columns of a bias_results row."""
    result = dict(row)
    result["dimensions"] = json.loads(row["dimensions"])
    result["evidence"] = json.loads(row["evidence"])
    result["flags"] = list(row["flags"])
    return result


async def bias_for_content(
    conn: Conn,
    content_id: str,
    model_version: str | None = None,
    active_version: str | None = None,
) -> dict[str, Any] | None:
    """Return a content's result for one model version, else the active one, else the newest."""
    row = await conn.fetchrow(
        f"""
        SELECT {_BIAS_COLUMNS}
        FROM bias_results
        WHERE content_id = $1 AND ($2::text IS NULL OR model_version = $2)
        ORDER BY model_version IS NOT DISTINCT FROM $3::text DESC, scored_at DESC,
            model_version DESC
        LIMIT 1
        """,
        content_id,
        model_version,
        active_version,
    )
    if row is None:
        return None
    alerts = await conn.fetch(
        """
        SELECT level, overall_score, reason, dimensions, raised_at
        FROM bias_alerts WHERE content_id = $1 AND model_version = $2
        ORDER BY raised_at
        """,
        content_id,
        row["model_version"],
    )
    result = bias_row(row)
    result["alerts"] = [dict(a) | {"dimensions": list(a["dimensions"])} for a in alerts]
    return result


BIAS_RESULTS = ListSpec(
    table="bias_results",
    select=_BIAS_COLUMNS,
    ids={"content_id": "text", "model_version": "text"},
    sorts={"scored_at": "timestamptz", "overall_score": "float8", "content_id": "text"},
    default_sort="scored_at",
)

BIAS_ALERTS = ListSpec(
    table="bias_alerts",
    select="""event_id::text AS event_id, content_id, level, overall_score, confidence, reason,
        dimensions, model_version, escalate_after_seconds, raised_at""",
    ids={"event_id": "uuid"},
    sorts={"raised_at": "timestamptz", "overall_score": "float8"},
    default_sort="raised_at",
)


def alert_row(row: dict[str, Any]) -> dict[str, Any]:
    """Turn the dimensions array of an alert row into a list."""
    return row | {"dimensions": list(row["dimensions"])}


BIAS_DAILY = ListSpec(
    table="bias_daily",
    select="""day, model_version, scored_count, score_sum, score_avg, score_min, score_max,
        level_low, level_medium, level_high, level_critical, bucket_lt_02, bucket_lt_04,
        bucket_lt_06, bucket_lt_08, bucket_ge_08, latency_sum_ms, updated_at""",
    ids={"day": "date", "model_version": "text"},
    sorts={"day": "date", "scored_count": "int8"},
    default_sort="day",
)


def daily_row(row: dict[str, Any]) -> dict[str, Any]:
    """Group the level and histogram columns of a bias_daily row."""
    levels = {lv: row.pop(f"level_{lv}") for lv in ("low", "medium", "high", "critical")}
    buckets = {
        "lt_0.2": row.pop("bucket_lt_02"),
        "lt_0.4": row.pop("bucket_lt_04"),
        "lt_0.6": row.pop("bucket_lt_06"),
        "lt_0.8": row.pop("bucket_lt_08"),
        "ge_0.8": row.pop("bucket_ge_08"),
    }
    return row | {"levels": levels, "histogram": buckets}


METRIC_WINDOWS = ListSpec(
    table="metric_windows",
    select="""window_key, family, window_kind, window_start, window_end, group_by, group_value,
        count, score_sum, score_avg, score_max, score_buckets, latency_avg_ms, latency_p95_ms,
        tokens, cost, error_count, late_count, alert_counts, closed_at, emitted_count, source""",
    ids={"window_key": "text"},
    sorts={
        "window_start": "timestamptz",
        "window_end": "timestamptz",
        "closed_at": "timestamptz",
        "count": "int8",
    },
    default_sort="window_start",
)


def window_row(row: dict[str, Any]) -> dict[str, Any]:
    """Decode the jsonb and array columns of a metric_windows row."""
    alerts = row["alert_counts"]
    return row | {
        "score_buckets": list(row["score_buckets"] or []),
        "alert_counts": json.loads(alerts) if isinstance(alerts, str) else dict(alerts or {}),
    }


MODEL_USAGE = ListSpec(
    table="model_usage_daily",
    select="""day, model, provider, requests, successes, failures, cached, input_tokens,
        output_tokens, total_tokens, cost, latency_avg_ms, latency_min_ms, latency_max_ms,
        latency_p95_ms, updated_at""",
    ids={"day": "date", "model": "text"},
    sorts={"day": "date", "requests": "int8", "total_tokens": "int8", "cost": "float8"},
    default_sort="day",
)

_REVENUE_COLUMNS = """projection_id, business_model, total_revenue, final_users,
    final_paid_users, arpu, ltv, currency, months_count, projected_at, source"""

REVENUE_PROJECTIONS = ListSpec(
    table="revenue_projections",
    select=_REVENUE_COLUMNS,
    ids={"projection_id": "text"},
    sorts={"projected_at": "timestamptz", "total_revenue": "float8", "projection_id": "text"},
    default_sort="projected_at",
)


async def revenue_projection(conn: Conn, projection_id: str) -> dict[str, Any] | None:
    """Return one revenue projection with its months in order, or None."""
    row = await conn.fetchrow(
        f"SELECT {_REVENUE_COLUMNS} FROM revenue_projections WHERE projection_id = $1",
        projection_id,
    )
    if row is None:
        return None
    months = await conn.fetch(
        "SELECT month, users, free_users, paid_users, revenue, revenue_by_tier"
        " FROM revenue_projection_months WHERE projection_id = $1 ORDER BY month",
        projection_id,
    )
    result = dict(row)
    result["months"] = [
        dict(m)
        | {
            "revenue_by_tier": json.loads(m["revenue_by_tier"])
            if isinstance(m["revenue_by_tier"], str)
            else dict(m["revenue_by_tier"] or {})
        }
        for m in months
    ]
    return result


async def postgres_positions(conn: Conn, projection: str | None) -> list[dict[str, Any]]:
    """Return the applied positions stored in PostgreSQL, by projection, topic and partition."""
    rows = await conn.fetch(
        "SELECT projection, topic, partition, next_offset, updated_at FROM projection_positions"
        " WHERE $1::text IS NULL OR projection = $1 ORDER BY projection, topic, partition",
        projection,
    )
    return [dict(r) for r in rows]
