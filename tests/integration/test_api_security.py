"""API security: stored key material, keys never in logs, CORS closed, no write route."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from fastapi.routing import APIRoute
from stacktest import app_routes, live_server, schema_pool, serve
from starlette.routing import Route
from uvicorn.logging import AccessFormatter, DefaultFormatter

from api.app import create_app
from api.keys import SCOPES, PostgresApiKeyStore, parse_key
from fairstream.settings import Settings

pytestmark = pytest.mark.integration

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
CLIENT_LOGGERS = {"httpx", "httpcore"}  # the test's client logs the URLs it requests


@pytest.fixture
def sec_settings(isolated_settings: Settings) -> Settings:
    """Return the test's settings with documents in PostgreSQL and no lag collector."""
    return isolated_settings.model_copy(
        update={"document_store": "postgres", "lag_collector_enabled": False}
    )


@pytest.fixture
async def pool(sec_settings: Settings, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool on the test's migrated schema."""
    async with schema_pool(sec_settings) as created:
        yield created


@pytest.fixture
async def key(pool: asyncpg.Pool) -> str:
    """Create a key with every scope."""
    return await PostgresApiKeyStore(pool).create("security", SCOPES)


def concrete(path: str) -> str:
    """Fill a route template's parameters with a plausible value."""
    return re.sub(r"\{[^}]+\}", "x-1", path)


# --- stored key material ------------------------------------------------------------------


async def test_stored_key_material_is_a_salted_scrypt_hash(pool: asyncpg.Pool, key: str) -> None:
    parsed = parse_key(key)
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", parsed.key_id)
    assert row is not None
    for column, value in dict(row).items():  # the key or its secret is in no column
        text = value.hex() if isinstance(value, bytes) else str(value)
        assert parsed.secret not in text and key not in text, column
        if isinstance(value, bytes):
            assert parsed.secret.encode() not in value, column
    kdf = re.fullmatch(r"scrypt:n=(\d+),r=(\d+),p=(\d+)", row["kdf"])
    assert kdf is not None, row["kdf"]
    n, r, p = (int(x) for x in kdf.groups())
    assert n >= 2**14 and r >= 8 and p >= 1
    assert len(row["salt"]) == 16 and len(row["secret_hash"]) == 32
    expected = hashlib.scrypt(parsed.secret.encode(), salt=row["salt"], n=n, r=r, p=p, dklen=32)
    assert bytes(row["secret_hash"]) == expected
    other = await PostgresApiKeyStore(pool).create("other", ["read:bias"])
    other_row = await pool.fetchrow(
        "SELECT salt FROM api_keys WHERE key_id = $1", parse_key(other).key_id
    )
    assert other_row is not None and other_row["salt"] != row["salt"]


# --- keys never in logs -------------------------------------------------------------------


class Collect(logging.Handler):
    """Keep every record, formatted the way uvicorn's own handlers would print it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._access = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
        self._default = DefaultFormatter("%(levelprefix)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep the record, exception text included (not the test's own client)."""
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            return
        formatter = self._access if record.name == "uvicorn.access" else self._default
        self.lines.append(formatter.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def live_api(sec_settings: Settings, key: str) -> Iterator[tuple[str, Collect]]:
    """Serve the app with uvicorn's access log on; collect every log record."""
    collect = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    settings = sec_settings.model_copy(update={"api_rate_limit_per_minute": 5})
    app = create_app(settings, key_cache_seconds=0)
    try:
        with live_server(app, "security-api", log_level="debug", access_log=True) as url:
            yield url, collect
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)


async def test_no_key_or_hash_appears_in_any_log_record(
    live_api: tuple[str, Collect], key: str, pool: asyncpg.Pool
) -> None:
    url, collect = live_api
    parsed = parse_key(key)
    wrong = f"fs_{parsed.key_id}_{'A' * 43}"
    with httpx.Client(base_url=url, timeout=10) as client:
        requests = [
            ("/v1/bias/results", {"Authorization": f"Bearer {key}"}),
            ("/v1/bias/results", {"X-API-Key": key}),
            ("/v1/bias/results?api_key=" + key, {}),  # keys in URLs are never read...
            ("/lag?key=" + key, {}),  # ...but the dashboard page takes one once
            ("/v1/content/%00/bias?token=" + key, {"X-API-Key": key}),
            ("/v1/bias/results", {"Authorization": f"Bearer {wrong}"}),
            ("/v1/bias/results", {"X-API-Key": key, "Authorization": f"Bearer {wrong}"}),
            ("/v1/bias/results?limit=-1&key=" + key, {"X-API-Key": key}),
            ("/nowhere/" + key, {"X-API-Key": key}),
        ] + [("/v1/bias/results", {"X-API-Key": key})] * 6  # past the rate limit: 429
        statuses = []
        for path, h in requests:
            statuses.append((await asyncio.to_thread(client.get, path, headers=h)).status_code)
    assert statuses[:2] == [200, 200] and 401 in statuses and 429 in statuses
    assert any("GET /lag?key=" in line for line in collect.lines), "no access log was captured"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()  # the verifier's cache key
    stored = await pool.fetchval(
        "SELECT secret_hash FROM api_keys WHERE key_id = $1", parsed.key_id
    )
    secrets = [key, parsed.secret, wrong.split("_", 2)[2], fingerprint, bytes(stored).hex()]
    for line in collect.lines:
        for secret in secrets:
            assert secret not in line, line


# --- CORS ---------------------------------------------------------------------------------


async def test_cors_is_closed_unless_the_origin_is_listed(
    sec_settings: Settings, pool: asyncpg.Pool, key: str
) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with serve(create_app(sec_settings)) as client:
        r = await client.get(
            "/v1/bias/results", headers={"Origin": "https://evil.example", "X-API-Key": key}
        )
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = await client.options("/v1/bias/results", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        assert r.status_code == 405
    listed = sec_settings.model_copy(update={"api_cors_origins": ["https://dash.example"]})
    async with serve(create_app(listed)) as client:
        r = await client.options(
            "/v1/bias/results", headers=preflight | {"Origin": "https://dash.example"}
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://dash.example"
        assert "POST" not in r.headers["access-control-allow-methods"]
        r = await client.options("/v1/bias/results", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await client.get(
            "/v1/bias/results", headers={"Origin": "https://evil.example", "X-API-Key": key}
        )
        assert "access-control-allow-origin" not in r.headers


# --- read-only ----------------------------------------------------------------------------


async def test_no_route_accepts_a_write_method(
    sec_settings: Settings, pool: asyncpg.Pool, key: str
) -> None:
    app = create_app(sec_settings)
    routes = list(app_routes(app.routes, Route))
    assert len([r for r in routes if isinstance(r, APIRoute)]) >= 20
    for route in routes:
        assert set(route.methods or ()) <= {"GET", "HEAD"}, (route.path, route.methods)
    async with serve(app) as client:
        for route in routes:
            path = concrete(route.path)
            for method in WRITE_METHODS:
                r = await client.request(method, path, headers={"X-API-Key": key}, json={})
                assert r.status_code == 405, (method, path, r.status_code)
                assert "GET" in r.headers["allow"], (method, path)
                if r.headers["content-type"].startswith("application/json"):
                    assert r.json()["error"]["code"] == "method_not_allowed"
