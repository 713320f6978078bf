"""API contract tests against real PostgreSQL, Redis and FerretDB (no mocks)."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from stacktest import drop_api_caches, free_port, schema_pool, serve, settings_env

from api.app import create_app, redis_prefix_for
from api.keys import SCOPES, PostgresApiKeyStore, ensure_dev_key_async
from fairstream.settings import Settings
from projections.documents import MongoDocumentStore, PostgresDocumentStore
from projections.runner import Position

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Client = httpx.AsyncClient


@pytest.fixture
def api_settings(isolated_settings: Settings, test_id: str) -> Settings:
    """Return the test's settings with its own MongoDB database."""
    return isolated_settings.model_copy(update={"mongo_database": f"t_{test_id}"})


@pytest.fixture
async def pool(api_settings: Settings, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool on the test's migrated schema; clean Redis and MongoDB afterwards."""
    async with schema_pool(api_settings) as created:
        yield created
    await drop_api_caches(api_settings)


@pytest.fixture
async def key(pool: asyncpg.Pool) -> str:
    """Create a key with every scope in the test's schema."""
    return await PostgresApiKeyStore(pool).create("test", SCOPES)


@pytest.fixture
async def client(api_settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Client]:
    """Serve the API over the test's schema."""
    async with serve(create_app(api_settings)) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    """Return the bearer header of a key."""
    return {"Authorization": f"Bearer {key}"}


async def insert_bias(
    pool: asyncpg.Pool,
    content_id: str,
    score: float,
    scored_at: datetime,
    *,
    level: str = "low",
    model_version: str = "fast-1",
    dimensions: dict[str, float] | None = None,
    source: str = "tests",
) -> None:
    """Insert one bias_results row as the projection would."""
    dims = {
        d: {"score": s, "confidence": 0.9, "evidence": ["term"]}
        for d, s in (dimensions or {"gender": score}).items()
    }
    await pool.execute(
        """
        INSERT INTO bias_results (content_id, model_version, model_name, event_id, overall_score,
            confidence, level, dimensions, evidence, content_hash, text_length, word_count,
            language, flags, latency_ms, content_type, campaign_id, source, scored_at)
        VALUES ($1, $2, 'fast', $3, $4, 0.9, $5, $6::jsonb, '[]'::jsonb, 'abc', 10, 2, 'en',
            '{}', 1.5, 'other', NULL, $7, $8)
        """,
        content_id,
        model_version,
        uuid.uuid4(),
        score,
        level,
        json.dumps(dims),
        source,
        scored_at,
    )


async def move_position(pool: asyncpg.Pool, projection: str, next_offset: int) -> None:
    """Store a projection's applied position as its runner would."""
    await pool.execute(
        "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
        " VALUES ($1, 'bias.scored', 0, $2) ON CONFLICT (projection, topic, partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        projection,
        next_offset,
    )


async def walk(
    client: Client, key: str, url: str, params: dict[str, Any], ident: Callable[[Any], Any]
) -> list[Any]:
    """Follow next_cursor to the end; return the ids in order."""
    seen: list[Any] = []
    cursor = None
    for _ in range(200):
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        r = await client.get(url, params=query, headers=auth(key))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= params.get("limit", 50)
        seen += [ident(item) for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


# --- auth ----------------------------------------------------------------------------------


async def test_open_routes_need_no_key(client: Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        r = await client.get(path)
        assert r.status_code == 200, path


async def test_missing_invalid_and_malformed_keys_are_401(client: Client, key: str) -> None:
    r = await client.get("/v1/bias/results")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    key_id = key.split("_")[1]
    for bad in (f"fs_{key_id}_{'x' * 43}", "fs_0000000000000000_" + "y" * 43, "nonsense"):
        r = await client.get("/v1/bias/results", headers=auth(bad))
        assert r.status_code == 401, bad
        assert r.json()["error"]["code"] == "unauthorized"


async def test_both_headers_are_accepted(client: Client, key: str) -> None:
    assert (await client.get("/v1/bias/results", headers={"X-API-Key": key})).status_code == 200
    assert (await client.get("/v1/bias/results", headers=auth(key))).status_code == 200


async def test_missing_scope_is_403(client: Client, pool: asyncpg.Pool) -> None:
    bias_only = await PostgresApiKeyStore(pool).create("bias", ["read:bias"])
    assert (await client.get("/v1/bias/results", headers=auth(bias_only))).status_code == 200
    for path in (
        "/v1/analytics/windows",
        "/v1/usage/models",
        "/v1/revenue/projections",
        "/v1/campaigns",
        "/v1/opportunities",
        "/v1/agent-tasks",
        "/v1/ops/positions",
    ):
        r = await client.get(path, headers=auth(bias_only))
        assert r.status_code == 403, path
        assert r.json()["error"]["code"] == "forbidden"


async def test_revoked_key_is_401(api_settings: Settings, pool: asyncpg.Pool) -> None:
    store = PostgresApiKeyStore(pool)
    key = await store.create("soon revoked", ["read:bias"])
    async with serve(create_app(api_settings, key_cache_seconds=0)) as client:
        assert (await client.get("/v1/bias/results", headers=auth(key))).status_code == 200
        assert await store.revoke(key.split("_")[1])
        r = await client.get("/v1/bias/results", headers=auth(key))
        assert r.status_code == 401
    assert [k.revoked_at is not None for k in await store.list()] == [True]


# --- rate limit and Redis ----------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(
    api_settings: Settings, pool: asyncpg.Pool, key: str
) -> None:
    settings = api_settings.model_copy(update={"api_rate_limit_per_minute": 3})
    async with serve(create_app(settings)) as client:
        for _ in range(3):
            r = await client.get("/v1/bias/results", headers=auth(key))
            assert r.status_code == 200
        assert r.headers["X-RateLimit-Remaining"] == "0"
        r = await client.get("/v1/bias/results", headers=auth(key))
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        other = await PostgresApiKeyStore(pool).create("other", ["read:bias"])
        assert (await client.get("/v1/bias/results", headers=auth(other))).status_code == 200


async def test_without_redis_the_api_still_answers(
    api_settings: Settings, pool: asyncpg.Pool, key: str
) -> None:
    settings = api_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "api_rate_limit_per_minute": 1}
    )
    await insert_bias(pool, "c-1", 0.1, T0)
    async with serve(create_app(settings)) as client:
        for _ in range(3):  # the limit of 1 is not enforced: rate limiting fails open
            r = await client.get("/v1/content/c-1/bias", headers=auth(key))
            assert r.status_code == 200
            assert r.headers["X-Cache"] == "miss"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"] == "unavailable"


# --- bias ----------------------------------------------------------------------------------


async def test_content_bias_and_model_version(client: Client, pool: asyncpg.Pool, key: str) -> None:
    await insert_bias(pool, "c-1", 0.2, T0, model_version="fast-1")
    await insert_bias(pool, "c-1", 0.7, T0 + timedelta(hours=1), model_version="fast-2")
    r = await client.get("/v1/content/c-1/bias", headers=auth(key))
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "fast-2" and body["alerts"] == []
    assert "text" not in body
    r = await client.get("/v1/content/c-1/bias?model_version=fast-1", headers=auth(key))
    assert r.json()["overall_score"] == 0.2
    r = await client.get("/v1/content/nope/bias", headers=auth(key))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.get("/v1/content/bad%20id/bias", headers=auth(key))
    assert r.status_code == 422


def sort_key_and_id(sort: str) -> Callable[[Any], Any]:
    """Return a function picking (sort value, content id) of an item."""
    return lambda item: (item[sort], item["content_id"])


async def test_bias_results_pages_without_duplicates_or_gaps(
    client: Client, pool: asyncpg.Pool, key: str
) -> None:
    for i in range(23):  # groups of three share a timestamp and a score: ties on the sort key
        await insert_bias(pool, f"c-{i:02d}", round((i // 3) / 10, 2), T0 + timedelta(i // 3))
    everything = {f"c-{i:02d}" for i in range(23)}
    for sort in ("scored_at", "overall_score", "content_id"):
        for order in ("asc", "desc"):
            got = await walk(
                client,
                key,
                "/v1/bias/results",
                {"limit": 4, "sort": sort, "order": order},
                sort_key_and_id(sort),
            )
            ids = [cid for _, cid in got]
            assert len(ids) == len(set(ids)) == 23, (sort, order)
            assert set(ids) == everything
            keys = [k for k, _ in got]
            assert keys == sorted(keys, reverse=order == "desc"), (sort, order)


async def test_bias_results_filters(client: Client, pool: asyncpg.Pool, key: str) -> None:
    await insert_bias(pool, "a", 0.1, T0, level="low", dimensions={"age": 0.1})
    await insert_bias(pool, "b", 0.7, T0 + timedelta(hours=1), level="high", source="web")
    await insert_bias(pool, "c", 0.9, T0 + timedelta(hours=2), level="critical")

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/v1/bias/results", params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        return sorted(item["content_id"] for item in r.json()["items"])

    assert await ids(level="high") == ["b"]
    assert await ids(dimension="age") == ["a"]
    assert await ids(dimension="gender") == ["b", "c"]
    assert await ids(source="web") == ["b"]
    assert await ids(min_score=0.5) == ["b", "c"]
    assert await ids(since=(T0 + timedelta(hours=1)).isoformat()) == ["b", "c"]
    assert await ids(until=(T0 + timedelta(hours=1)).isoformat()) == ["a"]
    assert await ids(model_version="other") == []


async def test_bad_parameters_are_422(client: Client, pool: asyncpg.Pool, key: str) -> None:
    for i in range(3):
        await insert_bias(pool, f"c-{i}", 0.1 * i, T0 + timedelta(minutes=i))
    first = (await client.get("/v1/bias/results?limit=1", headers=auth(key))).json()
    cursor = first["next_cursor"]
    assert cursor
    bad: list[dict[str, Any]] = [
        {"limit": 0},
        {"limit": 501},
        {"sort": "content_hash"},
        {"order": "sideways"},
        {"level": "extreme"},
        {"since": "yesterday"},
        {"since": "2026-03-01T00:00:00"},  # no time zone
        {"cursor": "not-a-cursor!!"},
        {"cursor": "eyJmb28iOiAxfQ"},  # valid base64 JSON, not a cursor
        {"cursor": cursor, "sort": "overall_score"},  # made for another sort
        {"cursor": cursor, "order": "asc"},
    ]
    for params in bad:
        r = await client.get("/v1/bias/results", params=params, headers=auth(key))
        assert r.status_code == 422, params
        assert r.json()["error"]["code"] == "invalid_parameter"
    r = await client.get("/v1/bias/results", params={"cursor": cursor}, headers=auth(key))
    assert r.status_code == 200


async def test_alerts_and_daily_rollup(client: Client, pool: asyncpg.Pool, key: str) -> None:
    for i, level in enumerate(("high", "critical", "high")):
        await pool.execute(
            "INSERT INTO bias_alerts (event_id, content_id, level, overall_score, confidence,"
            " reason, dimensions, model_version, escalate_after_seconds, raised_at)"
            " VALUES ($1, $2, $3, 0.8, 0.9, 'r', $4, 'fast-1', 60, $5)",
            uuid.uuid4(),
            f"c-{i}",
            level,
            ["gender"] if i else ["age"],
            T0 + timedelta(minutes=i),
        )
    got = await walk(client, key, "/v1/bias/alerts", {"limit": 2}, lambda a: a["content_id"])
    assert got == ["c-2", "c-1", "c-0"]
    got = await walk(
        client, key, "/v1/bias/alerts", {"level": "high", "dimension": "gender"}, lambda a: a
    )
    assert [a["content_id"] for a in got] == ["c-2"] and got[0]["dimensions"] == ["gender"]
    await pool.execute(
        "INSERT INTO bias_daily (day, model_version, scored_count, score_sum, score_min,"
        " score_max, level_high, bucket_ge_08) VALUES ($1, 'fast-1', 2, 1.0, 0.2, 0.8, 1, 1),"
        " ($2, 'fast-1', 1, 0.5, 0.5, 0.5, 0, 0)",
        date(2026, 3, 1),
        date(2026, 3, 2),
    )
    r = await client.get(
        "/v1/bias/daily", params={"since": "2026-03-01", "until": "2026-03-02"}, headers=auth(key)
    )
    items = r.json()["items"]
    assert len(items) == 1
    assert items[0]["score_avg"] == 0.5
    assert items[0]["levels"]["high"] == 1 and items[0]["histogram"]["ge_0.8"] == 1


# --- caching -------------------------------------------------------------------------------


async def test_etag_304_and_invalidation_by_position(
    client: Client, pool: asyncpg.Pool, key: str
) -> None:
    await insert_bias(pool, "c-1", 0.1, T0)
    await move_position(pool, "bias-results", 1)
    url = "/v1/bias/results"
    first = await client.get(url, headers=auth(key))
    assert first.headers["X-Cache"] == "miss"
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    again = await client.get(url, headers=auth(key))
    assert again.headers["X-Cache"] == "hit" and again.headers["ETag"] == etag
    not_modified = await client.get(url, headers=auth(key) | {"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    # A row written without its position (impossible for a real projection) stays unseen...
    await insert_bias(pool, "c-2", 0.2, T0 + timedelta(1))
    assert (await client.get(url, headers=auth(key))).headers["ETag"] == etag
    # ...and the position moving makes the next answer fresh.
    await move_position(pool, "bias-results", 2)
    fresh = await client.get(url, headers=auth(key) | {"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["X-Cache"] == "miss"
    assert fresh.headers["ETag"] != etag
    assert [i["content_id"] for i in fresh.json()["items"]] == ["c-2", "c-1"]
    # Another projection's position does not touch this route's cache.
    await move_position(pool, "model-usage", 5)
    assert (await client.get(url, headers=auth(key))).headers["X-Cache"] == "hit"


# --- analytics, usage, revenue, ops ------------------------------------------------------


async def test_metric_windows_and_model_usage(client: Client, pool: asyncpg.Pool, key: str) -> None:
    for i, (group_by, value) in enumerate(
        [("dimension", "gender"), ("model", "gpt-x"), ("event_type", "page_view")]
    ):
        await pool.execute(
            "INSERT INTO metric_windows (window_key, family, window_kind, window_start,"
            " window_end, group_by, group_value, count, score_sum, score_buckets, tokens, cost,"
            " error_count, alert_counts, late_count, event_id, closed_at, source)"
            " VALUES ($1, 'bias', 'minute', $2, $3, $4, $5, $6, 0, '{1,2}', 0, 0, 0,"
            " '{\"high\": 2}', 0, $7, $3, 'tests')",
            f"w-{i}",
            T0 + timedelta(minutes=i),
            T0 + timedelta(minutes=i + 1),
            group_by,
            value,
            10 + i,
            uuid.uuid4(),
        )
    got = await walk(client, key, "/v1/analytics/windows", {"limit": 2}, lambda w: w)
    assert [w["window_key"] for w in got] == ["w-2", "w-1", "w-0"]
    assert got[0]["alert_counts"] == {"high": 2} and got[0]["score_buckets"] == [1, 2]
    r = await client.get("/v1/analytics/windows?dimension=gender", headers=auth(key))
    assert [w["window_key"] for w in r.json()["items"]] == ["w-0"]
    r = await client.get("/v1/analytics/windows?sort=count&order=asc", headers=auth(key))
    assert [w["count"] for w in r.json()["items"]] == [10, 11, 12]

    for day, model, requests in [(1, "a", 5), (1, "b", 7), (2, "a", 3)]:
        await pool.execute(
            "INSERT INTO model_usage_daily (day, model, provider, requests, successes, failures,"
            " cached, input_tokens, output_tokens, total_tokens, cost, latency_sum_ms,"
            " latency_min_ms, latency_max_ms, latency_p95_ms, latency_histogram)"
            " VALUES ($1, $2, 'p', $3, $3, 0, 0, 1, 1, 2, 0.5, 100, 1, 50, 40, '{}')",
            date(2026, 3, day),
            model,
            requests,
        )
    got = await walk(client, key, "/v1/usage/models", {"limit": 1, "model": "a"}, lambda u: u)
    assert [(u["day"], u["requests"]) for u in got] == [("2026-03-02", 3), ("2026-03-01", 5)]
    assert got[0]["latency_avg_ms"] == 100 / 3


async def test_revenue_projections(client: Client, pool: asyncpg.Pool, key: str) -> None:
    for i in range(3):
        await pool.execute(
            "INSERT INTO revenue_projections (projection_id, business_model, total_revenue,"
            " final_users, final_paid_users, arpu, ltv, currency, months_count, event_id,"
            " projected_at, source) VALUES ($1, 'freemium', $2, 100, 10, 1.5, NULL, 'USD', 2,"
            " $3, $4, 'tests')",
            f"p-{i}",
            100.0 * i,
            uuid.uuid4(),
            T0 + timedelta(hours=i),
        )
    await pool.execute(
        "INSERT INTO revenue_projection_months VALUES ('p-1', 2, 20, 18, 2, 9.5, '{\"pro\": 9.5}'),"
        " ('p-1', 1, 10, 9, 1, 4.5, '{\"pro\": 4.5}')"
    )
    got = await walk(
        client, key, "/v1/revenue/projections", {"limit": 2, "sort": "total_revenue"}, lambda p: p
    )
    assert [p["projection_id"] for p in got] == ["p-2", "p-1", "p-0"]
    r = await client.get("/v1/revenue/projections/p-1", headers=auth(key))
    assert [m["month"] for m in r.json()["months"]] == [1, 2]
    assert r.json()["months"][0]["revenue_by_tier"] == {"pro": 4.5}
    r = await client.get("/v1/revenue/projections/p-9", headers=auth(key))
    assert r.status_code == 404


async def test_ops_positions(client: Client, pool: asyncpg.Pool, key: str) -> None:
    await move_position(pool, "bias-results", 42)
    r = await client.get("/v1/ops/positions", headers=auth(key))
    assert r.status_code == 200
    found = {p["projection"]: p for p in r.json()["projections"]}
    assert found["bias-results"]["total_next_offset"] == 42
    assert found["bias-results"]["store"] == "postgres"


# --- documents -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mongo", "postgres"])
async def test_documents_through_the_port(
    api_settings: Settings, pool: asyncpg.Pool, key: str, backend: str
) -> None:
    settings = api_settings.model_copy(update={"document_store": backend})
    store: Any = (
        MongoDocumentStore.connect(settings.mongo_url, settings.mongo_database)
        if backend == "mongo"
        else PostgresDocumentStore(pool)
    )
    try:
        for i in range(7):
            planned = T0 + timedelta(hours=i // 2)  # ties on planned_at
            await store.apply(
                "campaigns",
                f"camp-{i}",
                Position("campaign.planned", 0, i),
                {
                    "$set": {
                        "campaign_id": f"camp-{i}",
                        "name": f"Campaign {i}",
                        "status": "active" if i % 2 else "draft",
                        "start_date": date(2026, 4, 1 + i).isoformat(),
                        "planned_at": planned,
                        "updated_at": planned,
                        "channels": [
                            {
                                "channel": "blog",
                                "budget_share": 1.0,
                                "items": [
                                    {
                                        "content_id": f"item-{i}",
                                        "text_sha256": "ab",
                                        "text_length": 5,
                                        "text": "hello",
                                    }
                                ],
                            }
                        ],
                        f"item_scores.item-{i}": {"content_id": f"item-{i}", "level": "low"},
                    },
                    "$inc": {"events_applied": 1},
                },
            )
        await store.apply(
            "opportunities",
            "niche-1",
            Position("opportunity.scored", 0, 0),
            {
                "$set": {
                    "niche_id": "niche-1",
                    "overall_score": 0.8,
                    "band": "very_good",
                    "updated_at": T0,
                }
            },
        )
        await store.apply(
            "agent_tasks",
            "task-1",
            Position("agent.tasks.completed", 0, 0),
            {"$set": {"task_id": "task-1", "status": "failed", "completed_at": T0}},
        )
        if backend == "mongo":
            await store.save_position("campaigns", "campaign.planned", 0, 7)
    finally:
        if backend == "mongo":
            await store.close()

    async with serve(create_app(settings)) as client:
        for sort in ("planned_at", "id", "start_date", "updated_at"):
            for order in ("asc", "desc"):
                got = await walk(
                    client,
                    key,
                    "/v1/campaigns",
                    {"limit": 3, "sort": sort, "order": order},
                    lambda c: c,
                )
                ids = [c["id"] for c in got]
                assert sorted(ids) == [f"camp-{i}" for i in range(7)], (sort, order)
                field = "id" if sort == "id" else sort
                values = [c[field] for c in got]
                assert values == sorted(values, reverse=order == "desc"), (sort, order)
        r = await client.get("/v1/campaigns?status=active", headers=auth(key))
        assert sorted(c["id"] for c in r.json()["items"]) == ["camp-1", "camp-3", "camp-5"]
        r = await client.get(
            "/v1/campaigns",
            params={"start_from": "2026-04-02", "start_until": "2026-04-04"},
            headers=auth(key),
        )
        assert sorted(c["id"] for c in r.json()["items"]) == ["camp-1", "camp-2"]
        r = await client.get("/v1/campaigns/camp-2", headers=auth(key))
        body = r.json()
        assert body["name"] == "Campaign 2" and body["events_applied"] == 1
        assert "text" not in json.dumps(body["channels"]).replace("text_", "")  # privacy
        assert "_positions" not in r.text
        assert body["item_scores"] == [{"content_id": "item-2", "level": "low"}]
        assert (await client.get("/v1/campaigns/nope", headers=auth(key))).status_code == 404
        r = await client.get("/v1/opportunities?band=very_good", headers=auth(key))
        assert [o["id"] for o in r.json()["items"]] == ["niche-1"]
        assert (await client.get("/v1/opportunities/niche-1", headers=auth(key))).json()[
            "overall_score"
        ] == 0.8
        r = await client.get("/v1/agent-tasks?status=failed", headers=auth(key))
        assert [t["id"] for t in r.json()["items"]] == ["task-1"]
        assert (await client.get("/v1/agent-tasks/task-1", headers=auth(key))).status_code == 200
        r = await client.get("/v1/campaigns?cursor=abc", headers=auth(key))
        assert r.status_code == 422
        if backend == "mongo":
            r = await client.get("/v1/ops/positions?projection=campaigns", headers=auth(key))
            assert r.json()["projections"][0]["store"] == "mongo"

    raw = settings.model_copy(update={"store_raw_text": True})
    async with serve(create_app(raw, redis_prefix=redis_prefix_for(raw) + "raw:")) as client:
        r = await client.get("/v1/campaigns/camp-2", headers=auth(key))
        assert r.json()["channels"][0]["items"][0]["text"] == "hello"


async def test_openapi_documents_scopes_and_errors(client: Client) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {"ApiKeyHeader", "BearerKey"} <= set(schemes)
    for path, methods in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        op = methods["get"]
        assert op["x-required-scope"] in SCOPES, path
        assert {"401", "403", "422", "429", "503"} <= set(op["responses"]), path
        assert op["security"], path
        if "{" in path:
            assert "404" in op["responses"], path
    paths = set(spec["paths"])
    assert {
        "/v1/bias/results",
        "/v1/bias/alerts",
        "/v1/bias/daily",
        "/v1/analytics/windows",
        "/v1/usage/models",
        "/v1/revenue/projections/{projection_id}",
        "/v1/campaigns/{campaign_id}",
        "/v1/opportunities/{niche_id}",
        "/v1/agent-tasks/{task_id}",
        "/v1/ops/positions",
    } <= paths


# --- key management ------------------------------------------------------------------------


async def test_dev_key_is_created_once_and_replaced_when_revoked(
    api_settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "stack" / "dev-api-key"
    key = await ensure_dev_key_async(api_settings, path)
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await ensure_dev_key_async(api_settings, path) == key
    store = PostgresApiKeyStore(pool)
    record = await store.verify(key)
    assert record is not None and record.scopes == SCOPES
    assert await store.revoke(record.key_id)
    replaced = await ensure_dev_key_async(api_settings, path)
    assert replaced != key and path.read_text().strip() == replaced
    async with serve(create_app(api_settings)) as client:
        for url in ("/v1/bias/results", "/v1/campaigns", "/v1/ops/positions"):
            assert (await client.get(url, headers=auth(replaced))).status_code == 200


async def test_apikey_command_creates_lists_and_revokes(
    api_settings: Settings, pool: asyncpg.Pool
) -> None:
    fs = str(Path(sys.executable).with_name("fairstream"))
    env = settings_env(api_settings)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [fs, "apikey", *argv], env=env, capture_output=True, text=True, timeout=60
        )

    created = await asyncio.to_thread(
        run, "create", "--name", "cli", "--scope", "read:bias", "--scope", "read:ops"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    listed = await asyncio.to_thread(run, "list")
    assert key_id in listed.stdout and "read:bias,read:ops" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # never the secret
    assert (await asyncio.to_thread(run, "create", "--name", "x")).returncode == 2
    assert (await asyncio.to_thread(run, "revoke", key_id)).returncode == 0
    assert (await asyncio.to_thread(run, "revoke", key_id)).returncode == 1
    assert await PostgresApiKeyStore(pool).verify(key) is None


async def test_unavailable_document_store_is_503(
    api_settings: Settings, pool: asyncpg.Pool, key: str
) -> None:
    settings = api_settings.model_copy(
        update={
            "document_store": "mongo",
            "mongo_url": f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300",
        }
    )
    async with serve(create_app(settings)) as client:
        r = await client.get("/v1/campaigns", headers=auth(key))
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable" and r.headers["Retry-After"]
        assert (await client.get("/v1/bias/results", headers=auth(key))).status_code == 200
