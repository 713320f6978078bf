"""Benchmark: query API requests/s and latency vs a minimal FastAPI endpoint on the same query.

In the same run, against the local stack's PostgreSQL (and Redis for the real API):
- the read model is seeded with `--rows` bias results in a unique schema (through the
  bias-results projection's own upsert), and an API key is created there;
- real: `fairstream api` (the deployable: API key check, rate limiting on a limit too high to
  trigger, position-keyed Redis cache, metrics middleware), once with the cache off
  (`api_cache_ttl_seconds=0`) and once with it on;
- minimal: a FastAPI app with one route per endpoint running the same SQL (`api.views` /
  `api.pagination`) on an asyncpg pool with the same settings, returning the rows as JSON;
  no auth, cache or middleware;
- every server is uvicorn in its own subprocess on a free port; the load is `wrk` (Debian's
  package) with `--connections` connections for `--seconds` after a warm-up, the same for
  every side. By id, each request asks for a random one of the seeded contents.
Prints requests/s and p50/p99 of each side and the ratio real / minimal; writes
bench/results/api_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from fairstream.settings import Settings, load_settings

RESULTS = Path(__file__).resolve().parent / "results"
FS = str(Path(sys.executable).with_name("fairstream"))
LIST_LIMIT = 50
ENDPOINTS = {
    "content_bias": "/v1/content/bench-%d/bias",
    "bias_results_list": f"/v1/bias/results?limit={LIST_LIMIT}",
}

# wrk script: random ids when the path has %d, the API key header, and a JSON summary.
WRK_SCRIPT = """
local ids = tonumber(os.getenv("BENCH_IDS") or "0")
local path = os.getenv("BENCH_PATH")
local key = os.getenv("BENCH_KEY") or ""
if key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)); hits = 0 end
function request()
  if ids > 0 then return wrk.format("GET", string.format(path, math.random(0, ids - 1))) end
  return wrk.format("GET", path)
end
function response(status, headers, body)
  if headers["x-cache"] == "hit" or headers["X-Cache"] == "hit" then hits = hits + 1 end
end
function done(summary, latency, requests)
  local h = 0
  for _, t in ipairs(threads) do h = h + t:get("hits") end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bad_status": %d, "socket_errors": %d,'
    .. ' "cache_hits": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    h, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


# -- the minimal side -------------------------------------------------------------------------


def minimal_app(settings: Settings) -> Any:
    """Create a bare FastAPI app: the same queries as the API, no auth, cache or middleware."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import Response

    from api import views
    from api.pagination import Where, fetch_page
    from projections.migrate import checked_schema

    schema = checked_schema(settings.pg_schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Same pool settings as api.app.create_app.
        app.state.pool = await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=10,
            server_settings={"search_path": schema, "application_name": "fairstream-api"},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    def as_json(value: Any) -> Response:
        return Response(json.dumps(value, default=str), media_type="application/json")

    @app.get("/v1/content/{content_id}/bias")
    async def content_bias(content_id: str) -> Response:
        found = await views.bias_for_content(app.state.pool, content_id)
        if found is None:
            return Response(status_code=404)
        return as_json(found)

    @app.get("/v1/bias/results")
    async def bias_results(limit: int = LIST_LIMIT) -> Response:
        page = await fetch_page(
            app.state.pool,
            views.BIAS_RESULTS,
            Where(),
            sort=None,
            order=None,
            limit=limit,
            cursor=None,
        )
        return as_json({"items": [views.bias_row(r) for r in page.rows]})

    return app


def serve_minimal(port: int) -> int:
    """Serve the minimal app (settings from the environment) like `fairstream api` does."""
    import uvicorn

    uvicorn.run(minimal_app(load_settings()), host="127.0.0.1", port=port, access_log=False)
    return 0


# -- setup ------------------------------------------------------------------------------------


async def seed(settings: Settings, rows: int) -> str:
    """Migrate the schema, write `rows` bias results through the projection; return an API key."""
    from api.keys import ensure_dev_key_async
    from fairstream.bootstrap import apply_migrations
    from producers.generator import TrafficGenerator
    from projections.bias_results import PostgresBiasResultsProjection
    from projections.runner import Position

    await apply_migrations(settings)
    gen = TrafficGenerator(types=("BiasScored",), seed=5)
    projection = PostgresBiasResultsProjection()
    conn = await asyncpg.connect(
        settings.postgres_dsn.get_secret_value(),
        server_settings={"search_path": settings.pg_schema},
    )
    try:
        async with conn.transaction():
            for i in range(rows):
                event = gen.make("BiasScored")
                ident = f"bench-{i}"
                event = dataclasses.replace(
                    event,
                    payload={**event.payload, "content_id": ident},
                    envelope=dataclasses.replace(event.envelope, subject=ident),
                )
                await projection.apply(conn, event, Position("bench", 0, i))
            await conn.execute(
                "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
                " VALUES ('bias-results', 'bench', 0, $1)",
                rows,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    with tempfile.TemporaryDirectory() as tmp:
        return await ensure_dev_key_async(settings, Path(tmp) / "key")


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Return the environment that makes a subprocess read these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None or isinstance(value, list):
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"FAIRSTREAM_{name.upper()}"] = str(raw)
    env.update(extra)
    return env


@dataclasses.dataclass
class Server:
    """One uvicorn server in a subprocess."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, path: str, headers: dict[str, str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, headers=headers, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise SystemExit(
            f"{self.name} did not answer {path} within {timeout:.0f} s; see {self.log}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrk(
    url: str, path: str, key: str, ids: int, args: argparse.Namespace, script: Path
) -> dict[str, Any]:
    """Run wrk against one side; return requests/s and latency percentiles."""
    env = dict(
        os.environ, BENCH_PATH=path, BENCH_KEY=key, BENCH_IDS=str(ids if "%d" in path else 0)
    )

    def once(seconds: int) -> dict[str, Any]:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
        return dict(json.loads(line[6:]))

    once(args.warmup)
    r = once(args.seconds)
    good = r["requests"] - r["bad_status"]
    if r["bad_status"] or r["socket_errors"]:
        print(f"  warning: {r['bad_status']} bad statuses, {r['socket_errors']} socket errors")
    return {
        "requests": r["requests"],
        "requests_per_s": good / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "mean_ms": r["mean_us"] / 1000,
        "bad_status": r["bad_status"],
        "socket_errors": r["socket_errors"],
        "cache_hit_share": r["cache_hits"] / max(1, r["requests"]),
    }


async def cleanup(settings: Settings) -> None:
    """Drop the schema and the API's Redis keys of this run."""
    import redis.asyncio as redis

    from api.app import redis_prefix_for

    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    finally:
        await conn.close()
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=redis_prefix_for(settings) + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, start the servers, load each side in turn; clean up."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    tag = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "pg_schema": f"bench_{tag}",
            "mongo_database": f"bench_{tag}",
            "document_store": "postgres",
        }
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "rows": args.rows,
        "connections": args.connections,
        "seconds": args.seconds,
        "load_generator": "wrk -t2",
        "endpoints": {},
    }
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(WRK_SCRIPT)
        try:
            key = asyncio.run(seed(settings, args.rows))
            auth = {"Authorization": f"Bearer {key}"}
            unlimited = str(10**9)  # the limiter runs (one Redis call) but never refuses
            sides = {
                "minimal": ([sys.executable, __file__, "serve-minimal"], {}),
                "api_cache_off": (
                    [FS, "api"],
                    {
                        "FAIRSTREAM_API_CACHE_TTL_SECONDS": "0",
                        "FAIRSTREAM_API_RATE_LIMIT_PER_MINUTE": unlimited,
                    },
                ),
                "api_cache_on": (
                    [FS, "api"],
                    {
                        "FAIRSTREAM_API_CACHE_TTL_SECONDS": "300",
                        "FAIRSTREAM_API_RATE_LIMIT_PER_MINUTE": unlimited,
                    },
                ),
            }
            for name, (argv, extra) in sides.items():
                port = free_port()
                argv = [*argv, "--port", str(port)]
                if argv[0] == FS:
                    argv += ["--host", "127.0.0.1"]
                server = Server(
                    name, argv, settings_env(settings, **extra), port, Path(tmp) / f"{name}.log"
                )
                server.start()
                servers.append(server)
            for server in servers:
                server.wait_ready("/v1/content/bench-0/bias", auth)
            for endpoint, path in ENDPOINTS.items():
                figures: dict[str, Any] = {}
                for server in servers:
                    figures[server.name] = wrk(
                        server.url,
                        path,
                        "" if server.name == "minimal" else key,
                        args.rows,
                        args,
                        script,
                    )
                base = figures["minimal"]["requests_per_s"]
                for side in ("api_cache_off", "api_cache_on"):
                    figures[f"ratio_{side}"] = figures[side]["requests_per_s"] / base
                results["endpoints"][endpoint] = figures
                for side in ("minimal", "api_cache_off", "api_cache_on"):
                    f = figures[side]
                    ratio = f"ratio {figures[f'ratio_{side}']:.2f}" if side != "minimal" else ""
                    print(
                        f"{endpoint:>17} {side:>13}: {f['requests_per_s']:7.0f} req/s"
                        f" p50 {f['p50_ms']:6.1f} ms p99 {f['p99_ms']:6.1f} ms"
                        f" cache hits {f['cache_hit_share']:4.0%} {ratio}",
                        flush=True,
                    )
        finally:
            for server in servers:
                server.stop()
            asyncio.run(cleanup(settings))
    return results


def main() -> int:
    """Run the benchmark (or serve the minimal app for it) and print the figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "serve-minimal":
        port = int(sys.argv[sys.argv.index("--port") + 1])
        return serve_minimal(port)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10000, help="bias results seeded")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10, help="measured per side")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured per side")
    args = parser.parse_args()
    results = run(args)
    out = RESULTS / "api_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
