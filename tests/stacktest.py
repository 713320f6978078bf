"""Helpers for tests that run services: ports, polling, subprocesses, servers and the API."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import redis.asyncio as aioredis
import uvicorn
from confluent_kafka import Consumer, Message
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.routing import Route

from api.app import redis_prefix_for
from events.codec import EventCodec
from events.model import Event
from fairstream.settings import Settings
from fairstream.stack.config import StackConfig
from fairstream.stack.local_stack import LocalStack

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
FS = str(Path(sys.executable).with_name("fairstream"))
PRIVATE_SERVICES = ["postgres", "ferretdb", "redis"]
T = TypeVar("T")
R = TypeVar("R", bound=Route)


def settings_env(settings: Settings) -> dict[str, str]:
    """Return the environment that makes a subprocess read the same settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"FAIRSTREAM_{name.upper()}"] = str(raw)
    return env


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    predicate: Callable[[], Awaitable[T]], timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Poll an async predicate until it returns a truthy value or the timeout passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


def read_topic(
    settings: Settings, topic: str, count: int, timeout: float = 90.0, linger: float = 0.0
) -> list[Message]:
    """Read `count` records of `topic` from the beginning, or what arrived before the timeout.

    With `linger`, keep reading that many seconds more for extra records.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.topic_prefix}reader-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found.append(msg)
        extra_until = time.monotonic() + linger
        while time.monotonic() < extra_until:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found.append(msg)
    finally:
        consumer.close()
    return found


def byte_headers(message: Message) -> dict[str, bytes]:
    """Return a record's headers whose values are bytes, by name."""
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in items if isinstance(v, bytes)}


def decode(codec: EventCodec, messages: list[Message]) -> list[Event]:
    """Decode consumed records with the project's codec."""
    return [codec.decode(m.value(), m.headers()) for m in messages]


@contextmanager
def run_processor(
    name: str, settings: Settings, workdir: Path, label: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `fairstream processor <name>` until the block ends; stop it with SIGTERM.

    Its output is appended to `ARTIFACTS/<label>-<name>.log`; `env` adds to its environment.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / f"{label}-{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [FS, "processor", name],
            env=settings_env(settings) | env,
            cwd=workdir,  # Faust writes its data directory into the working directory
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _quiet(_line: str) -> None:
    """Swallow the stack's progress lines."""


@contextmanager
def private_stack(stack_dir: Path) -> Iterator[LocalStack]:
    """Run a PostgreSQL, FerretDB (on it) and Redis of the caller's own; stop and purge them.

    They listen on free ports and share only the download cache with the local stack.
    """
    config = StackConfig(
        stack_dir=stack_dir,
        cache_dir=LocalStack().config.layout.cache,
        postgres_port=free_port(),
        ferretdb_port=free_port(),
        redis_port=free_port(),
    )
    stack = LocalStack(config)
    try:
        stack.up(PRIVATE_SERVICES, report=_quiet)
        yield stack
    finally:
        stack.down(PRIVATE_SERVICES, purge=True, report=_quiet)


def private_settings(
    settings: Settings, stack: LocalStack, test_id: str, **update: object
) -> Settings:
    """Point settings at a private stack's servers; `update` overrides the defaults.

    The test gets its own schema, MongoDB database (the document store) and topic prefix, and
    the lag collector runs a round every second.
    """
    config = stack.config
    return settings.model_copy(
        update={
            "postgres_dsn": SecretStr(config.postgres_dsn),
            "mongo_url": config.mongo_url,
            "redis_url": config.redis_url,
            "pg_schema": f"t_{test_id}",
            "mongo_database": f"t_{test_id}",
            "document_store": "mongo",
            "topic_prefix": f"t-{test_id}.",
            "lag_interval_seconds": 1.0,
        }
        | update
    )


@asynccontextmanager
async def schema_pool(settings: Settings, max_size: int = 2) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool whose connections search the settings' PostgreSQL schema; close it after."""
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": settings.pg_schema},
    )
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


async def drop_api_caches(settings: Settings) -> None:
    """Delete the API's Redis keys under the settings' prefix and drop their MongoDB database."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        async for key in client.scan_iter(match=redis_prefix_for(settings) + "*"):
            await client.delete(key)
    finally:
        await client.aclose()
    mongo: Any = AsyncIOMotorClient(settings.mongo_url)
    try:
        await mongo.drop_database(settings.mongo_database)
    finally:
        mongo.close()


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@asynccontextmanager
async def serve_api(app: FastAPI) -> AsyncIterator[str]:
    """Run the app with uvicorn on this event loop on a free port; yield its base URL.

    `log_config=None`: uvicorn's default config would stop its loggers propagating to the
    root logger for the rest of the test session.
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "the API did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@contextmanager
def live_server(app: FastAPI, name: str, **options: Any) -> Iterator[str]:
    """Serve the app with uvicorn in a thread on a free port; yield its base URL.

    `options` go to `uvicorn.Config` (logging, lifespan). The config reconfigures uvicorn's
    loggers (`access_log=False` stops access records propagating), so they are restored after.
    They are reset first, too: an earlier in-process uvicorn started with its default
    `log_config` leaves `uvicorn.access` not propagating for the rest of the session, and a
    `logging.config.dictConfig` elsewhere may have disabled them.
    """
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers), lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.disabled = False
        lg.propagate = True
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        for lg, level, propagate, handlers, disabled in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers = handlers
            lg.disabled = disabled


def app_routes(routes: list[Any], kind: type[R]) -> Iterator[R]:
    """Yield every route of `kind`, looking into included routers."""
    for route in routes:
        if isinstance(route, kind):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from app_routes(included.routes, kind)
