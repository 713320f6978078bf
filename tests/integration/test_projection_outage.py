"""A running projection survives its PostgreSQL going away: it pauses, waits and resumes exactly.

The read model lives in a private PostgreSQL (own stack directory and port, never the shared
stack's), which the test stops for about ten seconds while more events arrive; Kafka is the
shared one. The runner must not exit, must report the outage in its gauge, and the read model
must end exactly equal to what the events imply (re-published events included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from pymongo.errors import ConnectionFailure
from test_projections import at, publish

from events.model import Event
from events.testing import example_event
from fairstream.bootstrap import apply_migrations, build_codec, connect_pool, run_projection
from fairstream.settings import Settings
from projections.agent_tasks import AgentTasksProjection
from projections.documents import DocumentSink, MongoDocumentStore
from projections.model_usage import PostgresModelUsageProjection
from projections.runner import STORE_RETRIES, STORE_UP, Backoff, ProjectionRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FS = str(Path(sys.executable).with_name("fairstream"))
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateStack:
    """Start and stop a PostgreSQL (and FerretDB) of our own with `fairstream stack`.

    Its own stack directory and ports: the shared stack is never touched.
    """

    def __init__(self, stack_dir: Path) -> None:
        self.pg_port, self.ferretdb_port = free_port(), free_port()
        self.dsn = f"postgresql://fairstream@127.0.0.1:{self.pg_port}/fairstream"
        self.mongo_url = f"mongodb://127.0.0.1:{self.ferretdb_port}/"
        self._env = {
            **os.environ,
            "FAIRSTREAM_STACK_DIR": str(stack_dir),
            "FAIRSTREAM_STACK_CACHE_DIR": str(REPO / ".stack" / "cache"),
        }

    def _stack(self, action: str, only: str) -> None:
        ports = ["--postgres-port", str(self.pg_port), "--ferretdb-port", str(self.ferretdb_port)]
        subprocess.run(
            [FS, "stack", action, "--only", only, *ports],
            env=self._env,
            check=True,
            capture_output=True,
            timeout=180,
        )

    def up(self, only: str = "postgres") -> None:
        """Start the components and wait until they answer."""
        self._stack("up", only)

    def down(self, only: str = "postgres") -> None:
        """Stop the components (PostgreSQL: fast shutdown, open connections are cut)."""
        self._stack("down", only)


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[PrivateStack]:
    """Yield a private stack with PostgreSQL running; stop everything after."""
    stack = PrivateStack(tmp_path / "stack")
    stack.up()
    try:
        yield stack
    finally:
        stack.down("postgres,ferretdb")


def usage(i: int) -> Event:
    """Return the i-th model call: three models, two days, some failures."""
    return example_event(
        "ModelUsageRecorded",
        model=f"model-{i % 3}",
        success=i % 7 != 0,
        latency_ms=float(10 + i % 50),
        input_tokens=10,
        output_tokens=5,
        total_tokens=15,
        envelope=at(f"2025-06-0{1 + i % 2}", f"10:{i // 60 % 60:02d}:{i % 60:02d}"),
    )


async def test_model_usage_pauses_while_postgres_is_down_and_resumes_exactly(
    isolated_settings: Settings,
    event_topics: list[str],
    private_pg: PrivateStack,
    test_id: str,
) -> None:
    settings = isolated_settings.model_copy(
        update={"postgres_dsn": SecretStr(private_pg.dsn), "projection_batch_max": 50}
    )
    await apply_migrations(settings)
    before = [usage(i) for i in range(600)]
    during = [usage(i) for i in range(600, 1200)]
    republished = before[100:150] + during[:50]  # same event ids at new offsets
    expected: Counter[tuple[str, str, str]] = Counter()
    for e in before + during:
        key = (e.envelope.occurred_at.date().isoformat(), e.payload["model"])
        expected[(*key, "requests")] += 1
        expected[(*key, "failures")] += 0 if e.payload["success"] else 1

    projection = PostgresModelUsageProjection()
    pool = await connect_pool(settings)
    runner = ProjectionRunner(
        projection,
        pool=pool,
        codec=build_codec(settings),
        bootstrap=settings.kafka_bootstrap,
        group_id=f"t-{test_id}-proj-model-usage",
        topics=[f"{settings.topic_prefix}model.usage"],
        batch_max=settings.projection_batch_max,
        backoff=Backoff(initial=0.2, cap=2.0),
    )
    gauge = STORE_UP.labels(projection.name)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def applied() -> int:
        conn = await asyncpg.connect(private_pg.dsn)
        try:
            value = await conn.fetchval(
                f'SELECT coalesce(sum(next_offset), 0) FROM "{settings.pg_schema}"'
                ".projection_positions WHERE projection = $1",
                projection.name,
            )
        finally:
            await conn.close()
        return int(value)

    async def wait_for(predicate: object, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert not task.done(), f"the runner exited: {task}"
            if await predicate():  # type: ignore[operator]
                return
            await asyncio.sleep(0.2)
        raise AssertionError("timed out")

    try:
        publish(settings, before)
        await wait_for(lambda: _ge(applied, len(before)), 60)

        await asyncio.to_thread(private_pg.down, "postgres")
        await asyncio.to_thread(publish, settings, during + republished)
        for _ in range(40):  # about ten seconds without a database
            await asyncio.sleep(0.25)
            assert not task.done(), f"the runner exited during the outage: {task}"
        assert runner.store_available is False
        assert gauge._value.get() == 0
        outages = runner.stats.outages

        await asyncio.to_thread(private_pg.up, "postgres")
        total = len(before) + len(during) + len(republished)
        await wait_for(lambda: _ge(applied, total), 90)
        await asyncio.sleep(1.5)  # anything applied twice would show now
        assert not task.done()
        assert runner.store_available is True
        assert gauge._value.get() == 1
        assert runner.stats.outages == outages == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await pool.close()

    conn = await asyncpg.connect(private_pg.dsn)
    try:
        rows = await conn.fetch(
            f'SELECT day, model, requests, failures FROM "{settings.pg_schema}".model_usage_daily'
        )
    finally:
        await conn.close()
    got: Counter[tuple[str, str, str]] = Counter()
    for r in rows:
        got[(r["day"].isoformat(), r["model"], "requests")] += r["requests"]
        got[(r["day"].isoformat(), r["model"], "failures")] += r["failures"]
    print(
        f"outage: applied {runner.stats.applied}, duplicates skipped {runner.stats.duplicates},"
        f" outages {runner.stats.outages}, rows {len(rows)}"
    )
    assert +got == +expected
    assert runner.stats.duplicates >= len(republished)


async def _ge(read: object, target: int) -> bool:
    try:
        return bool(await read() >= target)  # type: ignore[operator]
    except (OSError, asyncpg.PostgresError):
        return False


async def test_agent_tasks_pause_while_ferretdb_is_down_and_resume_exactly(
    isolated_settings: Settings,
    event_topics: list[str],
    private_pg: PrivateStack,
    test_id: str,
) -> None:
    private_pg.up("ferretdb")
    statuses = ("in_progress", "failed", "completed")
    events = [
        example_event(
            "AgentTaskCompleted",
            task_id=f"task-{i % 200}",
            status=statuses[i // 200],  # three events per task, the last "completed"
            envelope=at("2025-06-01", f"{i // 200:02d}:00:00"),
        )
        for i in range(600)
    ]
    projection = AgentTasksProjection()
    store = MongoDocumentStore.connect(private_pg.mongo_url, f"t_{test_id}")
    for collection, fields in projection.indexes.items():
        await store.ensure_collection(collection, fields)
    runner = ProjectionRunner(
        projection,
        sink=DocumentSink(projection, store),
        codec=build_codec(isolated_settings),
        bootstrap=isolated_settings.kafka_bootstrap,
        group_id=f"t-{test_id}-proj-agent-tasks",
        topics=[f"{isolated_settings.topic_prefix}agent.tasks.completed"],
        batch_max=50,
        backoff=Backoff(initial=0.2, cap=2.0),
        apply_timeout=20.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def applied() -> int:
        return sum((await store.stored_positions(projection.name)).values())

    async def wait_for(target: int, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert not task.done(), f"the runner exited: {task}"
            with contextlib.suppress(ConnectionFailure):
                if await asyncio.wait_for(applied(), 5) >= target:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError("timed out")

    try:
        publish(isolated_settings, events[:200])
        await wait_for(200, 90)
        await asyncio.to_thread(private_pg.down, "ferretdb")
        await asyncio.to_thread(publish, isolated_settings, events[200:])
        for _ in range(40):
            await asyncio.sleep(0.25)
            assert not task.done(), f"the runner exited during the outage: {task}"
        await asyncio.to_thread(private_pg.up, "ferretdb")
        await wait_for(600, 150)
        await asyncio.sleep(1.5)
        assert not task.done()
        assert runner.store_available is True
        outages = runner.stats.outages
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    try:
        docs = await store.find("agent_tasks")
    finally:
        await store.close()
    print(f"ferretdb outage: outages {outages}, applied {runner.stats.applied}")
    assert outages == 1
    assert len(docs) == 200
    assert Counter(d["events_applied"] for d in docs) == Counter({3: 200})
    assert {d["status"] for d in docs} == {"completed"}


async def test_a_projection_started_while_postgres_is_down_waits_for_it(
    isolated_settings: Settings,
    event_topics: list[str],
    private_pg: PrivateStack,
    test_id: str,
) -> None:
    settings = isolated_settings.model_copy(
        update={
            "postgres_dsn": SecretStr(private_pg.dsn),
            "projection_group_prefix": f"t-{test_id}-proj-",
        }
    )
    events = [usage(i) for i in range(40)]
    publish(settings, events)
    await asyncio.to_thread(private_pg.down, "postgres")
    retries = STORE_RETRIES.labels("model-usage")
    before = retries._value.get()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projection(settings, "model-usage", stop, backoff=Backoff(initial=0.2, cap=1.0))
    )
    try:
        for _ in range(20):  # about five seconds with nothing to connect to
            await asyncio.sleep(0.25)
            assert not task.done(), f"the projection exited: {task}"
        assert retries._value.get() > before
        assert STORE_UP.labels("model-usage")._value.get() == 0

        await asyncio.to_thread(private_pg.up, "postgres")

        async def requests() -> int:
            conn = await asyncpg.connect(private_pg.dsn)
            try:
                value = await conn.fetchval(
                    f'SELECT coalesce(sum(requests), 0) FROM "{settings.pg_schema}"'
                    ".model_usage_daily"
                )
            finally:
                await conn.close()
            return int(value)

        deadline = asyncio.get_running_loop().time() + 90
        while not await _ge(requests, len(events)):
            assert asyncio.get_running_loop().time() < deadline, "never applied"
            assert not task.done(), f"the projection exited: {task}"
            await asyncio.sleep(0.3)
        assert STORE_UP.labels("model-usage")._value.get() == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert await requests() == len(events)


async def test_a_projection_started_while_kafka_is_down_waits_for_it(
    isolated_settings: Settings, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = isolated_settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}  # nothing listens there
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projection(settings, "model-usage", stop, backoff=Backoff(initial=0.2, cap=0.5))
    )
    await asyncio.sleep(4.0)
    assert not task.done(), f"the projection exited: {task}"
    stop.set()
    stats = await asyncio.wait_for(task, 30)
    assert stats.applied == 0
    assert any("Kafka unreachable at startup" in r.getMessage() for r in caplog.records)
