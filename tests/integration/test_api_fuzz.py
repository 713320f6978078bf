"""Fuzz the API from its own OpenAPI document (schemathesis) and probe hostile parameters.

A live uvicorn serves the real app on the test's PostgreSQL schema, Redis and FerretDB; every
operation gets positive and negative examples with a valid key. No answer may be a 5xx, and
the answers must match the documented status codes, content types and response schemas.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stacktest import drop_api_caches, live_server, private_settings, private_stack, schema_pool

from api.app import create_app
from api.keys import SCOPES, PostgresApiKeyStore
from api.pagination import Cursor, encode_cursor
from fairstream.bootstrap import apply_migrations
from fairstream.settings import Settings
from fairstream.stack.local_stack import LocalStack
from projections.documents import MongoDocumentStore
from projections.runner import Position

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start a PostgreSQL, FerretDB and Redis of this module's own; stop and purge them.

    Own servers keep the fuzzing load (and its hostile strings) off the shared stack.
    """
    with private_stack(tmp_path_factory.mktemp("fuzz") / "stack") as stack:
        yield stack


@pytest.fixture
def fuzz_settings(stack_settings: Settings, fuzz_stack: LocalStack, test_id: str) -> Settings:
    """Return settings on the private servers: no rate limit, a fast lag collector."""
    return private_settings(stack_settings, fuzz_stack, test_id, api_rate_limit_per_minute=0)


@pytest.fixture
async def fuzz_key(fuzz_settings: Settings) -> AsyncIterator[str]:
    """Migrate, seed a bias result and a campaign, and yield a key with every scope."""
    await apply_migrations(fuzz_settings)
    store = MongoDocumentStore.connect(fuzz_settings.mongo_url, fuzz_settings.mongo_database)
    try:
        async with schema_pool(fuzz_settings) as pool:
            await pool.execute(
                """
                INSERT INTO bias_results (content_id, model_version, model_name, event_id,
                    overall_score, confidence, level, dimensions, evidence, content_hash,
                    text_length, word_count, language, flags, latency_ms, content_type, campaign_id,
                    source, scored_at)
                VALUES ('c-1', 'fast-1', 'fast', $1, 0.4, 0.9, 'medium',
                    '{"gender": {"score": 0.4, "confidence": 0.9, "evidence": []}}'::jsonb,
                    '[]'::jsonb, 'abc', 10, 2, 'en', '{}', 1.5, 'other', 'camp-1', 'tests', $2)
                """,
                uuid.uuid4(),
                datetime(2026, 3, 1, 12, tzinfo=UTC),
            )
            await store.apply(
                "campaigns",
                "camp-1",
                Position("campaign.planned", 0, 0),
                {"$set": {"status": "active", "updated_at": "2026-03-01T12:00:00.000Z"}},
            )
            yield await PostgresApiKeyStore(pool).create("fuzz", SCOPES)
    finally:
        await store.close()
        await drop_api_caches(fuzz_settings)


@pytest.fixture
def live_url(fuzz_settings: Settings, fuzz_key: str) -> Iterator[str]:
    """Serve the app with uvicorn in a thread; yield its base URL."""
    app = create_app(fuzz_settings)
    with live_server(app, "fuzz-api", access_log=False, lifespan="on") as url:
        wait_for_first_lag_collection(url, fuzz_key)
        yield url


def wait_for_first_lag_collection(url: str, key: str) -> None:
    """Wait until the lag routes answer (503 until the collector's first round)."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
        while client.get("/v1/ops/lag").status_code == 503:
            assert time.monotonic() < deadline, "the lag collector never finished a round"
            time.sleep(0.5)


def test_schemathesis_finds_no_server_error(live_url: str, fuzz_key: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    failures: dict[str, str] = {}
    operations = 0
    calls = 0

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                try:
                    case.call_and_validate(base_url=live_url, headers=headers, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # one failure per operation
                    failures.setdefault(label, f"{exc}\n{case.as_curl_command()}")  # noqa: B023

            try:
                run()
            except Unsatisfiable:
                # No parameter to make invalid (e.g. /healthz): nothing negative to send.
                assert mode is schemathesis.GenerationMode.NEGATIVE, label

    print(f"schemathesis: {operations} operations, {calls} calls, {len(failures)} failing")
    assert operations >= 17
    assert calls >= operations * 2
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


# --- hostile parameters, explicitly -------------------------------------------------------

HOSTILE_VALUES = [
    "' OR '1'='1",
    "'; DROP TABLE bias_results; --",
    '{"$gt": ""}',
    "$where",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "x" * 10_000,
    "nul\x00byte",
    "\u202e\ufeffunicode",
    "%00",
]

LIST_PARAMS = {
    "/v1/bias/results": ["model_version", "source", "campaign_id", "language", "model_name"],
    "/v1/bias/alerts": ["content_id", "model_version"],
    "/v1/analytics/windows": ["group_by", "group_value", "dimension", "model", "source"],
    "/v1/usage/models": ["model", "provider"],
    "/v1/revenue/projections": ["business_model", "currency", "source"],
    "/v1/campaigns": ["opportunity_id"],
    "/v1/opportunities": ["market_segment", "opportunity_id"],
    "/v1/agent-tasks": ["team_id", "workflow_step", "source"],
    "/v1/ops/positions": ["projection"],
}
ID_PATHS = [
    "/v1/content/{}/bias",
    "/v1/revenue/projections/{}",
    "/v1/campaigns/{}",
    "/v1/opportunities/{}",
    "/v1/agent-tasks/{}",
]


def _assert_clean_rejection_or_empty(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    if r.status_code == 200:
        body = r.json()
        assert body.get("items", []) == [], (what, body)  # never data that does not match
    else:
        assert r.status_code in (400, 404, 414, 422), (what, r.status_code)
        if r.headers.get("content-type", "").startswith("application/json"):
            assert r.json()["error"]["message"], what


def test_hostile_strings_in_query_and_path_are_rejected_cleanly(
    live_url: str, fuzz_key: str
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    with httpx.Client(base_url=live_url, headers=headers, timeout=10) as client:
        for path, names in LIST_PARAMS.items():
            for name in names:
                for value in HOSTILE_VALUES:
                    r = client.get(path, params={name: value})
                    _assert_clean_rejection_or_empty(r, f"{path}?{name}={value[:40]!r}")
        # Mongo operators smuggled as bracketed names are unknown parameters: ignored, so
        # the answer is the unfiltered list, never a wider query.
        for path in ("/v1/campaigns", "/v1/opportunities", "/v1/agent-tasks"):
            plain = client.get(path)
            r = client.get(path + "?status[$ne]=x&opportunity_id[$gt]=&_id[$exists]=1")
            assert r.status_code == 200 and r.json() == plain.json(), path
        # An operator as a value is compared as a string: it matches nothing.
        r = client.get("/v1/campaigns", params={"opportunity_id": '{"$ne": null}'})
        assert r.status_code == 422
        r = client.get("/v1/opportunities", params={"market_segment": '{"$ne": null}'})
        assert r.status_code == 200 and r.json()["items"] == []
        for template in ID_PATHS:
            for value in HOSTILE_VALUES:
                r = client.get(template.format(quote(value, safe="")))
                _assert_clean_rejection_or_empty(r, f"{template} {value[:40]!r}")


def test_out_of_range_and_malformed_parameters_are_422_with_a_message(
    live_url: str, fuzz_key: str
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    cases = [
        ("/v1/bias/results", {"limit": "-1"}, "limit"),
        ("/v1/bias/results", {"limit": "0"}, "limit"),
        ("/v1/bias/results", {"limit": "501"}, "limit"),
        ("/v1/bias/results", {"limit": str(10**30)}, "limit"),
        ("/v1/bias/results", {"limit": "1e3"}, "limit"),
        ("/v1/bias/results", {"since": "yesterday"}, "since"),
        ("/v1/bias/results", {"since": "2026-13-45T00:00:00Z"}, "since"),
        ("/v1/bias/results", {"since": "2026-03-01T00:00:00"}, "since"),  # no time zone
        ("/v1/bias/results", {"until": "9" * 40}, "until"),
        ("/v1/bias/results", {"min_score": "NaN"}, "min_score"),
        ("/v1/bias/results", {"min_score": "1e400"}, "min_score"),
        ("/v1/bias/results", {"level": "catastrophic"}, "level"),
        ("/v1/bias/results", {"dimension": "'; --"}, "dimension"),
        ("/v1/bias/results", {"sort": "event_id"}, "sort"),
        ("/v1/bias/results", {"sort": "scored_at; DROP TABLE x"}, "sort"),
        ("/v1/bias/results", {"order": "sideways"}, "order"),
        ("/v1/bias/results", {"cursor": "not-a-cursor"}, "cursor"),
        ("/v1/bias/alerts", {"cursor": "eyJzIjoicmFpc2VkX2F0In0"}, "cursor"),
        ("/v1/bias/daily", {"since": "2026-02-30"}, "since"),
        ("/v1/usage/models", {"until": "-1"}, "until"),
        ("/v1/analytics/windows", {"window_kind": "fortnight"}, "window_kind"),
        ("/v1/campaigns", {"status": "deleted"}, "status"),
        ("/v1/opportunities", {"min_score": "-inf"}, "min_score"),
        ("/v1/agent-tasks", {"since": "00000000-0000-0000-0000-000000000000"}, "since"),
        ("/v1/ops/lag", {"history_minutes": "-5"}, "history_minutes"),
        ("/v1/ops/lag", {"points": "100000"}, "points"),
    ]
    with httpx.Client(base_url=live_url, headers=headers, timeout=10) as client:
        for path, params, name in cases:
            r = client.get(path, params=params)
            assert r.status_code == 422, (path, params, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "invalid_parameter" and error["message"], (path, params)
            named = json.dumps(error)
            assert name in named, (path, params, error)


def test_a_cursor_made_for_another_table_is_rejected(live_url: str, fuzz_key: str) -> None:
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    with httpx.Client(base_url=live_url, headers=headers, timeout=10) as client:
        first = client.get("/v1/campaigns", params={"limit": 1})
        assert first.status_code == 200 and first.json()["items"][0]["id"] == "camp-1"
        token = encode_cursor(Cursor("updated_at", "desc", "2026-01-01", ("camp-1",)))
        r = client.get("/v1/bias/results", params={"cursor": token})
        assert r.status_code == 422 and "cursor" in r.json()["error"]["message"]
        token = encode_cursor(Cursor("raised_at", "desc", "2026-01-01T00:00:00+00:00", ("x",)))
        r = client.get("/v1/bias/alerts", params={"cursor": token})
        assert r.status_code == 422 and "cursor" in r.json()["error"]["message"]
