"""Database outages: a private PostgreSQL, FerretDB and Redis stopped under a serving API.

The shared stack is never touched: the test starts its own servers on free ports in a stack
directory of its own (sharing only the download cache), stops them one by one while polling
every route, and starts them again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from stacktest import app_routes, private_settings, private_stack, schema_pool, serve

from api.app import create_app
from api.keys import SCOPES, PostgresApiKeyStore
from fairstream.bootstrap import apply_migrations
from fairstream.settings import Settings
from fairstream.stack.local_stack import LocalStack
from projections.documents import MongoDocumentStore
from projections.runner import Position

pytestmark = pytest.mark.integration

# A request may take at most this long, outage or not (timeouts are 2 to 5 s).
MAX_SECONDS = 8.0


@pytest.fixture
def outage_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """Start a PostgreSQL, FerretDB (on it) and Redis of the test's own; stop and purge them."""
    with private_stack(tmp_path / "stack") as stack:
        yield stack


@pytest.fixture
def outage_settings(stack_settings: Settings, outage_stack: LocalStack, test_id: str) -> Settings:
    """Point the API at the private servers (MongoDB document store, short lag interval)."""
    # No rate limit: the test polls every route in a loop for as long as a server takes to
    # stop, which can exceed any per-minute budget on a loaded machine.
    return private_settings(stack_settings, outage_stack, test_id, api_rate_limit_per_minute=0)


def get_urls(app: FastAPI) -> list[str]:
    """Return one URL per GET route of the app, path parameters filled with known ids."""
    ids = {"content_id": "c-1", "projection_id": "p-1", "campaign_id": "camp-1", "name": "lag.js"}
    urls = []
    for route in app_routes(app.routes, APIRoute):
        if "GET" not in (route.methods or set()):
            continue
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", ids.get(name, "x-1"))
        urls.append(path)
    return sorted(urls)


async def seed(settings: Settings) -> str:
    """Migrate the private database, add a key, a bias result and a campaign; return the key."""
    await apply_migrations(settings)
    conn = await asyncpg.connect(
        settings.postgres_dsn.get_secret_value(),
        server_settings={"search_path": settings.pg_schema},
    )
    try:
        await conn.execute(
            """
            INSERT INTO bias_results (content_id, model_version, model_name, event_id,
                overall_score, confidence, level, dimensions, evidence, content_hash, text_length,
                word_count, language, flags, latency_ms, content_type, campaign_id, source,
                scored_at)
            VALUES ('c-1', 'fast-1', 'fast', $1, 0.2, 0.9, 'low', '{}'::jsonb, '[]'::jsonb, 'abc',
                10, 2, 'en', '{}', 1.5, 'other', NULL, 'tests', now())
            """,
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    async with schema_pool(settings, max_size=1) as pool:
        key = await PostgresApiKeyStore(pool).create("outage", SCOPES)
    store = MongoDocumentStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        await store.apply(
            "campaigns",
            "camp-1",
            Position("campaign.planned", 0, 0),
            {"$set": {"status": "active", "updated_at": "2026-03-01T12:00:00.000Z"}},
        )
    finally:
        await store.close()
    return key


async def poll(client: httpx.AsyncClient, urls: list[str], key: str) -> dict[str, httpx.Response]:
    """GET every URL with the key; assert none took longer than MAX_SECONDS."""
    answers = {}
    for url in urls:
        started = time.monotonic()
        answers[url] = await client.get(url, headers={"Authorization": f"Bearer {key}"})
        took = time.monotonic() - started
        assert took < MAX_SECONDS, f"{url} took {took:.1f}s"
    return answers


def assert_outage_answers(answers: dict[str, httpx.Response], dependency: str) -> None:
    """Assert every /v1 answer is 503 with Retry-After and a body naming the dependency.

    Open routes that need no store (liveness, metrics, the dashboard page) stay 200.
    """
    for url, r in answers.items():
        if not url.startswith("/v1/"):
            assert r.status_code == (503 if url == "/readyz" else 200), (url, r.text)
            continue
        if url.startswith("/v1/ops/lag") and r.status_code != 503:
            # Lag comes from the collector's memory; only its history is in PostgreSQL.
            assert r.status_code == 404 and url.endswith("/x-1"), (url, r.text)
            continue
        assert r.status_code == 503, (url, r.status_code, r.text)
        assert int(r.headers["Retry-After"]) > 0, url
        error = r.json()["error"]
        assert error["code"] == "unavailable", url
        if not url.startswith("/v1/ops/lag"):  # the lag collector's own 503s name no store
            assert error["details"][0]["dependency"] == dependency, (url, error)


def assert_serving(answers: dict[str, httpx.Response]) -> None:
    """Assert the routes answer from the data again (404 only for unknown ids)."""
    for url, r in answers.items():
        expected = 404 if url.endswith("/x-1") or url.endswith("/p-1") else 200
        assert r.status_code == expected, (url, r.status_code, r.text)


async def until_serving(
    client: httpx.AsyncClient, urls: list[str], key: str, timeout: float = 60.0
) -> dict[str, httpx.Response]:
    """Poll until every route answers from the data again; return the last answers."""
    deadline = time.monotonic() + timeout
    while True:
        answers = await poll(client, urls, key)
        try:
            assert_serving(answers)
            return answers
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def until_unavailable(
    client: httpx.AsyncClient,
    urls: list[str],
    key: str,
    dependency: str,
    timeout: float = 30.0,
) -> None:
    """Poll until every route reading the stopped store answers 503 naming `dependency`.

    A store's clients notice it is gone at their next use (FerretDB's own PostgreSQL pool,
    a pooled connection), so a route may still answer 200 from a live connection for a
    moment after the server stopped; poll_while has already checked those were 2xx.
    """
    deadline = time.monotonic() + timeout
    while True:
        answers = await poll(client, urls, key)
        try:
            assert_outage_answers(answers, dependency)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def poll_while(
    client: httpx.AsyncClient, urls: list[str], key: str, action: Callable[[], object]
) -> int:
    """Poll every route while `action` runs in a thread (requests in flight as a server
    goes away); assert each answer is 2xx, 404 or 503 with Retry-After; return the count."""
    done = asyncio.Event()
    seen: list[tuple[str, httpx.Response]] = []

    async def keep_polling() -> None:
        while not done.is_set():
            seen.extend((await poll(client, urls, key)).items())

    task = asyncio.create_task(keep_polling())
    try:
        await asyncio.to_thread(action)
    finally:
        done.set()
        await task
    for url, r in seen:
        assert r.status_code in (200, 404, 503), (url, r.status_code, r.text)
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) > 0, url
    return len(seen)


async def test_every_route_answers_503_while_a_database_is_down_and_recovers(
    outage_settings: Settings, outage_stack: LocalStack
) -> None:
    key = await seed(outage_settings)
    app = create_app(outage_settings)
    urls = get_urls(app)
    assert "/v1/campaigns/camp-1" in urls and "/v1/bias/results" in urls
    postgres = outage_stack.component("postgres")
    ferretdb = outage_stack.component("ferretdb")
    redis = outage_stack.component("redis")
    async with serve(app) as client:
        before = await until_serving(client, urls, key)
        assert before["/v1/content/c-1/bias"].json()["content_id"] == "c-1"
        assert [c["id"] for c in before["/v1/campaigns"].json()["items"]] == ["camp-1"]
        assert (await client.get("/readyz")).json()["checks"] == {
            "postgres": "ok",
            "mongo": "ok",
            "redis": "ok",
        }

        # PostgreSQL down (FerretDB keeps running on top of it): every route 503.
        assert await poll_while(client, urls, key, postgres.down) >= len(urls)
        await until_unavailable(client, urls, key, "postgres")
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert ready.json()["checks"]["postgres"] != "ok"
        assert ready.json()["checks"]["mongo"] != "ok"
        assert (await client.get("/healthz")).status_code == 200

        # Back up: the same API process serves again (the pool reconnects).
        await asyncio.to_thread(postgres.up, 120)
        await until_serving(client, urls, key)
        assert (await client.get("/readyz")).status_code == 200

        # FerretDB down: document routes 503 naming it, PostgreSQL routes still 200.
        await poll_while(client, urls, key, ferretdb.down)
        answers = await poll(client, urls, key)
        documents = {u: r for u, r in answers.items() if reads_documents(u)}
        assert len(documents) == 7
        assert_outage_answers(documents, "mongo")
        assert_serving({u: r for u, r in answers.items() if u not in {*documents, "/readyz"}})
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["mongo"] != "ok"
        await asyncio.to_thread(ferretdb.up, 120)
        await until_serving(client, urls, key)

        # Redis down: the API keeps answering, uncached and without rate limiting.
        await asyncio.to_thread(redis.down)
        answers = await poll(client, urls, key)
        assert_serving(answers)
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "unavailable"
        await asyncio.to_thread(redis.up, 60)
        await until_serving(client, urls, key)


def reads_documents(url: str) -> bool:
    """Say whether a route reads the MongoDB document store."""
    areas = ("/v1/campaigns", "/v1/opportunities", "/v1/agent-tasks", "/v1/ops/positions")
    return url.startswith(areas)


async def test_the_api_starts_while_postgres_is_down(
    outage_settings: Settings, outage_stack: LocalStack
) -> None:
    key = await seed(outage_settings)
    postgres = outage_stack.component("postgres")
    await asyncio.to_thread(postgres.down)
    app = create_app(outage_settings.model_copy(update={"lag_collector_enabled": False}))
    urls = get_urls(app)
    async with serve(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        answers: dict[str, Any] = await poll(client, urls, key)
        assert_outage_answers(answers, "postgres")
        await asyncio.to_thread(postgres.up, 120)
        await until_serving(client, [u for u in urls if not u.startswith("/v1/ops/lag")], key)
