"""Fixtures shared by the suite: per-test topics, groups and schemas; the revenue processor."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fairstream.settings import Settings


def _reachable(hostport: str, timeout: float = 1.0) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Return settings for the running local stack; fail clearly when Kafka is not up."""
    settings = Settings()
    bootstrap = settings.kafka_bootstrap.split(",")[0]
    if not _reachable(bootstrap):
        pytest.fail(
            f"Kafka is not answering at {bootstrap}: start the stack with "
            "`fairstream stack up` (make test does it for you)"
        )
    return settings


@pytest.fixture
def test_id() -> str:
    """Return a short id unique to this test, used for topics, groups and schemas."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def isolated_settings(stack_settings: Settings, test_id: str) -> Settings:
    """Return settings whose topics, groups and PostgreSQL schema belong to this test only."""
    return stack_settings.model_copy(
        update={
            "topic_prefix": f"t-{test_id}.",
            "pg_schema": f"t_{test_id}",
            "bias_processor_group": f"t-{test_id}-bias-scorer",
            "bias_projection_group": f"t-{test_id}-proj-bias-results",
        }
    )


@pytest.fixture
def event_topics(isolated_settings: Settings) -> Iterator[list[str]]:
    """Create every catalog topic (and dead-letter topic) under the test's prefix; delete them,
    and the test's consumer groups and internal topics, after."""
    from confluent_kafka.admin import AdminClient

    from events.topics import apply_topics, topic_specs

    specs = topic_specs(isolated_settings.topic_prefix, brokers=1)
    apply_topics(isolated_settings.kafka_bootstrap, specs)
    names = [s.name for s in specs]
    yield names
    admin = AdminClient({"bootstrap.servers": isolated_settings.kafka_bootstrap})
    owned = isolated_settings.topic_prefix.rstrip(".")  # groups and internal topics: t-<id>-...
    internal = [t for t in admin.list_topics(timeout=10).topics if t.startswith(owned)]
    for future in admin.delete_topics(sorted({*names, *internal}), operation_timeout=30).values():
        with contextlib.suppress(Exception):  # a topic already gone is fine at teardown
            future.result(30)
    groups = [
        g.group_id
        for g in admin.list_consumer_groups().result(30).valid
        if g.group_id.startswith(owned)
    ]
    if groups:
        for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
            with contextlib.suppress(Exception):  # a group still closing is left to expire
                future.result(30)


@pytest.fixture
async def pg_schema(isolated_settings: Settings) -> AsyncIterator[str]:
    """Create and migrate the test's PostgreSQL schema; drop it after."""
    import asyncpg

    from fairstream.bootstrap import apply_migrations

    await apply_migrations(isolated_settings)
    yield isolated_settings.pg_schema
    conn = await asyncpg.connect(isolated_settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{isolated_settings.pg_schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def revenue_settings(isolated_settings: Settings, test_id: str) -> Settings:
    """Return the test's settings with the revenue processor's own consumer group."""
    return isolated_settings.model_copy(update={"revenue_processor_group": f"t-{test_id}-revenue"})


@pytest.fixture
def revenue_processor(
    revenue_settings: Settings, event_topics: list[str], test_id: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `fairstream processor revenue` on the test's topics until the test ends."""
    from stacktest import run_processor

    with run_processor("revenue", revenue_settings, tmp_path, test_id) as proc:
        yield proc
