"""Snapshot read models in a comparable form and compare two snapshots row for row.

A snapshot maps each read model (PostgreSQL table or document collection) to its rows by
primary key, without the fields that record *when* something was applied or measured rather
than *what*: `applied_at`, `updated_at`, positions, the bias scorer's wall-clock `latency_ms`
with the figures derived from it, and the screening's wall-clock `screened_at`. Floats are
compared with a small tolerance: sums added in another order differ in the last bits, and
ONNX scores move in the 6th digit with the micro-batch a text was scored in.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from pymongo import MongoClient

PG_READ_MODELS: tuple[str, ...] = (
    "bias_results",
    "bias_alerts",
    "bias_daily",
    "bias_daily_contributions",
    "metric_windows",
    "model_usage_daily",
    "revenue_projections",
    "revenue_projection_months",
)
DOCUMENT_READ_MODELS: tuple[str, ...] = ("campaigns", "opportunities", "agent_tasks")
# Primary key fields of each read model: rows are paired by them, then compared field by field.
KEYS: Mapping[str, tuple[str, ...]] = {
    "bias_results": ("content_id", "model_version"),
    "bias_alerts": ("event_id",),
    "bias_daily": ("day", "model_version"),
    "bias_daily_contributions": ("content_id", "model_version"),
    "metric_windows": ("window_key",),
    "model_usage_daily": ("day", "model"),
    "revenue_projections": ("projection_id",),
    "revenue_projection_months": ("projection_id", "month"),
    "campaigns": ("_id",),
    "opportunities": ("_id",),
    "agent_tasks": ("_id",),
}
ALWAYS_VOLATILE = frozenset({"applied_at", "updated_at", "_positions"})
# Filled from BiasScored.latency_ms, the scorer's own wall-clock measurement.
BIAS_LATENCY = frozenset({"latency_ms", "latency_sum_ms", "latency_avg_ms", "latency_p95_ms"})
BIAS_LATENCY_TABLES = frozenset({"bias_results", "bias_daily", "bias_daily_contributions"})
# How many times a window was emitted: delivery bookkeeping, reported separately.
DELIVERY_FIELDS = frozenset({"emitted_count"})
# CampaignScreened.occurred_at is the screening worker's wall clock.
WALL_CLOCK_FIELDS: Mapping[str, frozenset[str]] = {"campaigns": frozenset({"screened_at"})}
# Fields whose difference is a known, named defect rather than a loss (see KNOWN_DEFECTS).
KNOWN_DEFECTS: Mapping[str, str] = {
    ".events_applied": "duplicate-delivery",
    ".item_scores.*.scored_at": "order-dependent",
}
_ID_SEGMENT = re.compile(r"\.[a-z]+-[0-9a-f]{6,}(?=\.|$)")
REL_TOLERANCE = 1e-4
# Scores are rounded to 6 decimals: a last-digit flip (1e-6) is noise, not a difference.
ABS_TOLERANCE = 2e-6

Row = dict[str, Any]
Snapshot = dict[str, dict[str, Row]]


def comparable_row(model: str, row: Mapping[str, Any]) -> Row:
    """Return one row or document of `model` without the fields that are not compared."""
    drop = set(ALWAYS_VOLATILE | DELIVERY_FIELDS)
    if model in BIAS_LATENCY_TABLES or (model == "metric_windows" and row.get("family") == "bias"):
        drop |= BIAS_LATENCY
    kept: Row = json.loads(json.dumps({k: v for k, v in row.items() if k not in drop}, default=str))
    nested = WALL_CLOCK_FIELDS.get(model)
    return _strip(kept, nested) if nested else kept


def _strip(value: Any, drop: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_strip(v, drop) for v in value]
    return value


def row_key(model: str, row: Mapping[str, Any]) -> str:
    """Return the primary key of a row as text."""
    return "|".join(str(row.get(k)) for k in KEYS.get(model, ("_id",)))


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Return the paths where two values differ (floats within the tolerance are equal)."""
    numbers = (int, float)
    if (
        isinstance(expected, numbers)
        and isinstance(actual, numbers)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        if math.isclose(expected, actual, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE):
            return []
        return [f"{path}: {expected!r} != {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for k in sorted(set(expected) | set(actual), key=str):
            if k not in actual or k not in expected:
                out.append(f"{path}.{k}: only in {'expected' if k in expected else 'actual'}")
            else:
                out += differences(expected[k], actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items != {len(actual)} items"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    if expected == actual:
        return []
    return [f"{path}: {str(expected)[:80]!r} != {str(actual)[:80]!r}"]


class ReadModelSource(Protocol):
    """Where one namespace's read models live."""

    def snapshot(self) -> Snapshot:
        """Return every read model's comparable rows by key."""

    def counts(self) -> dict[str, int]:
        """Return how many rows each read model has."""


class PostgresReadModels:
    """Read the PostgreSQL read models of one schema."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn = dsn
        self._schema = schema

    async def _fetch(self, sql: str) -> dict[str, list[Any]]:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            return {
                table: await conn.fetch(sql.format(schema=self._schema, table=table))
                for table in PG_READ_MODELS
            }
        finally:
            await conn.close()

    def snapshot(self) -> Snapshot:
        """Return every table's comparable rows by key."""
        return asyncio.run(self.snapshot_async())

    def counts(self) -> dict[str, int]:
        """Return every table's row count."""
        return asyncio.run(self.counts_async())

    async def snapshot_async(self) -> Snapshot:
        """Return every table's comparable rows by key."""
        rows = await self._fetch('SELECT to_jsonb(t)::text AS j FROM "{schema}".{table} t')
        out: Snapshot = {}
        for table, found in rows.items():
            kept = (comparable_row(table, json.loads(r["j"])) for r in found)
            out[table] = {row_key(table, row): row for row in kept}
        return out

    async def counts_async(self) -> dict[str, int]:
        """Return every table's row count."""
        rows = await self._fetch('SELECT count(*) AS n FROM "{schema}".{table}')
        return {table: int(found[0]["n"]) for table, found in rows.items()}

    async def delivery_async(self) -> dict[str, int]:
        """Return delivery bookkeeping: total and maximum `emitted_count` of metric windows."""
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            row = await conn.fetchrow(
                "SELECT coalesce(sum(emitted_count), 0) AS s, coalesce(max(emitted_count), 0)"
                f' AS m FROM "{self._schema}".metric_windows'
            )
        finally:
            await conn.close()
        assert row is not None
        return {
            "metric_windows_emitted_total": int(row["s"]),
            "metric_windows_emitted_max": int(row["m"]),
        }


class MongoReadModels:
    """Read the document read models of one MongoDB-wire database."""

    def __init__(self, url: str, database: str) -> None:
        self._url = url
        self._database = database

    def snapshot(self) -> Snapshot:
        """Return every collection's comparable documents by `_id`."""
        out: Snapshot = {}
        with MongoClient[dict[str, Any]](self._url, serverSelectionTimeoutMS=20_000) as client:
            db = client[self._database]
            for name in DOCUMENT_READ_MODELS:
                kept = (comparable_row(name, doc) for doc in db[name].find({}))
                out[name] = {row_key(name, row): row for row in kept}
        return out

    def counts(self) -> dict[str, int]:
        """Return every collection's document count."""
        with MongoClient[dict[str, Any]](self._url, serverSelectionTimeoutMS=20_000) as client:
            db = client[self._database]
            return {name: db[name].count_documents({}) for name in DOCUMENT_READ_MODELS}


@dataclass(frozen=True)
class ModelComparison:
    """Compare one read model of a run with the reference."""

    model: str
    expected_rows: int
    actual_rows: int
    missing: int  # reference rows absent in the run
    extra: int  # run rows absent in the reference
    different: int  # rows in both whose fields differ
    samples: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()  # the differing fields, ids replaced by `*`

    @property
    def defect_kinds(self) -> set[str]:
        """Return the kinds of the differences: known defect kinds, or `mismatch`/`loss`."""
        kinds = {KNOWN_DEFECTS.get(f, "mismatch") for f in self.fields}
        if self.missing or self.extra:
            kinds.add("loss" if self.missing else "mismatch")
        return kinds

    @property
    def equal(self) -> bool:
        """Tell whether the run's rows equal the reference's."""
        return self.missing == 0 and self.extra == 0 and self.different == 0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "model": self.model,
            "expected_rows": self.expected_rows,
            "actual_rows": self.actual_rows,
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "equal": self.equal,
            "fields": list(self.fields),
            "kinds": sorted(self.defect_kinds),
            "samples": list(self.samples),
        }


def compare(expected: Snapshot, actual: Snapshot, samples: int = 3) -> list[ModelComparison]:
    """Compare every read model of `actual` with `expected`, row by row on primary keys."""
    out = []
    for model in sorted(set(expected) | set(actual)):
        want = expected.get(model, {})
        got = actual.get(model, {})
        missing = [k for k in want if k not in got]
        extra = [k for k in got if k not in want]
        changed = {k: d for k in want if k in got if (d := differences(want[k], got[k]))}
        shown = [f"missing {k}" for k in missing[:samples]]
        shown += [f"extra {k}" for k in extra[:samples]]
        shown += [f"differs {k}: {'; '.join(d[:4])}" for k, d in list(changed.items())[:samples]]
        fields = sorted(
            {_ID_SEGMENT.sub(".*", d.split(":", 1)[0]) for diffs in changed.values() for d in diffs}
        )
        out.append(
            ModelComparison(
                model,
                len(want),
                len(got),
                len(missing),
                len(extra),
                len(changed),
                tuple(shown),
                tuple(fields),
            )
        )
    return out
