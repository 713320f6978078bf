"""A projection process killed with SIGKILL mid-stream and restarted ends with exactly the rows.

The projection runs as `fairstream projection <name>` in a subprocess; events are published
while it applies them, it is killed once part of them is applied (no shutdown of any kind),
then restarted, and the read model is compared with what the published events imply.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from stacktest import ARTIFACTS, settings_env
from test_projections import at, publish

from events.model import Event
from events.testing import example_event
from fairstream.settings import Settings
from projections.bias_daily import bucket_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FS = str(Path(sys.executable).with_name("fairstream"))
TOTAL = 3000


@pytest.fixture
def settings(isolated_settings: Settings, test_id: str) -> Settings:
    """Return isolated settings with small batches, so a kill lands between many commits."""
    return isolated_settings.model_copy(
        update={
            "projection_group_prefix": f"t-{test_id}-proj-",
            "mongo_database": f"t_{test_id}",
            "projection_batch_max": 50,
        }
    )


@pytest.fixture
async def mongo_db(settings: Settings) -> AsyncIterator[Any]:
    """Yield the test's Mongo database; drop it after."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(settings.mongo_url)
    yield client[settings.mongo_database]
    await client.drop_database(settings.mongo_database)
    client.close()


class ProjectionProcess:
    """Start, kill and stop `fairstream projection <name>` with the test's settings."""

    def __init__(self, settings: Settings, name: str, log_name: str) -> None:
        self._env = settings_env(settings)
        self._name = name
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self._log_path = ARTIFACTS / log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the projection process (appending to its log)."""
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [FS, "projection", self._name], env=self._env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL the process: no handler, no flush, no commit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Stop the process gracefully if it runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[ProjectionProcess]]:
    """Collect started processes and stop them at teardown."""
    started: list[ProjectionProcess] = []
    yield started
    for p in started:
        p.stop()


async def poll(predicate: Callable[[], Awaitable[bool]], timeout: float, every: float) -> bool:
    """Poll `predicate` until true or the timeout passes; return the last answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every)
    return await predicate()


async def kill_mid_stream_and_restart(
    settings: Settings,
    proc: ProjectionProcess,
    events: list[Event],
    progress: Callable[[], Awaitable[int]],
    after_kill: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, int]:
    """Publish while the projection applies, SIGKILL it part-way, restart; return progress."""
    publish(settings, events[: TOTAL // 3])
    proc.start()
    rest = threading.Thread(target=publish, args=(settings, events[TOTAL // 3 :]))
    rest.start()

    async def some_applied() -> bool:
        return await progress() >= TOTAL // 5

    assert await poll(some_applied, 90, 0.02), "the projection applied nothing"
    proc.kill()
    at_kill = await progress()
    if after_kill is not None:
        await after_kill()
    rest.join(120)
    assert at_kill < TOTAL, "the projection finished before it was killed"
    proc.start()

    async def all_applied() -> bool:
        return await progress() >= TOTAL

    assert await poll(all_applied, 120, 0.25), f"only {await progress()} of {TOTAL} applied"
    await asyncio.sleep(2.0)  # anything applied twice would show now
    proc.stop()
    return at_kill, await progress()


async def test_bias_daily_survives_sigkill(
    settings: Settings,
    event_topics: list[str],
    pg_schema: str,
    processes: list[ProjectionProcess],
    test_id: str,
) -> None:
    levels = ("low", "medium", "high", "critical")
    events = []
    for i in range(TOTAL):
        content = f"c-{i % 2400}"  # 600 re-scores of earlier contents, later in time
        score = ((i * 37) % 100) / 100
        events.append(
            example_event(
                "BiasScored",
                content_id=content,
                model_version=f"v{i % 2}" if i < 2400 else f"v{(i - 2400) % 2}",
                overall_score=score,
                level=levels[min(3, int(score * 4))],
                latency_ms=1.0,
                envelope=at(
                    f"2025-06-0{1 + i % 3}" if i < 2400 else "2025-06-04",
                    f"{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
                ),
            )
        )
    # Expected roll-up: the latest score per (content, model version), grouped by day.
    latest: dict[tuple[str, str], Event] = {}
    for e in events:
        key = (e.payload["content_id"], e.payload["model_version"])
        if key not in latest or latest[key].envelope.occurred_at <= e.envelope.occurred_at:
            latest[key] = e
    expected_counts: Counter[tuple[str, str, str]] = Counter()
    expected_sums: defaultdict[tuple[str, str], float] = defaultdict(float)
    for e in latest.values():
        group = (e.envelope.occurred_at.date().isoformat(), e.payload["model_version"])
        expected_counts[(*group, "count")] += 1
        expected_counts[(*group, e.payload["level"])] += 1
        expected_counts[(*group, bucket_for(e.payload["overall_score"]))] += 1
        expected_sums[group] += e.payload["overall_score"]

    conn = await asyncpg.connect(
        settings.postgres_dsn.get_secret_value(), server_settings={"search_path": pg_schema}
    )
    try:

        async def progress() -> int:
            try:
                value = await conn.fetchval(
                    "SELECT coalesce(sum(next_offset), 0) FROM projection_positions"
                    " WHERE projection = 'bias-daily'"
                )
            except asyncpg.UndefinedTableError:
                return 0
            return int(value)

        proc = ProjectionProcess(settings, "bias-daily", f"restart-{test_id}-bias-daily.log")
        processes.append(proc)
        at_kill, final = await kill_mid_stream_and_restart(settings, proc, events, progress)
        rows = await conn.fetch("SELECT * FROM bias_daily")
        contributions = await conn.fetchval("SELECT count(*) FROM bias_daily_contributions")
    finally:
        await conn.close()

    got_counts: Counter[tuple[str, str, str]] = Counter()
    got_sums: dict[tuple[str, str], float] = {}
    for r in rows:
        group = (r["day"].isoformat(), r["model_version"])
        got_counts[(*group, "count")] += r["scored_count"]
        for level in levels:
            got_counts[(*group, level)] += r[f"level_{level}"]
        for b in ("bucket_lt_02", "bucket_lt_04", "bucket_lt_06", "bucket_lt_08", "bucket_ge_08"):
            got_counts[(*group, b)] += r[b]
        got_sums[group] = r["score_sum"]
    print(
        f"bias-daily SIGKILL: killed at {at_kill}/{TOTAL} applied positions, final {final};"
        f" contents {contributions}, scored_count total {sum(r['scored_count'] for r in rows)}"
    )
    assert final == TOTAL
    assert contributions == len(latest)
    assert +got_counts == +expected_counts
    assert got_sums.keys() == expected_sums.keys()
    for group, total in expected_sums.items():
        assert got_sums[group] == pytest.approx(total, abs=1e-9)


async def test_agent_tasks_on_mongo_survive_sigkill(
    settings: Settings,
    event_topics: list[str],
    pg_schema: str,
    mongo_db: Any,
    processes: list[ProjectionProcess],
    test_id: str,
) -> None:
    statuses = ("in_progress", "failed", "completed")
    events = [
        example_event(
            "AgentTaskCompleted",
            task_id=f"task-{i % 1000}",
            status=statuses[i // 1000],  # every task gets three events, the last "completed"
            envelope=at("2025-06-01", f"{i // 1000:02d}:00:00"),
        )
        for i in range(TOTAL)
    ]
    settings = settings.model_copy(update={"document_store": "mongo"})

    async def progress() -> int:
        cursor = mongo_db["projection_positions"].find({"projection": "agent-tasks"})
        return sum([d["next_offset"] async for d in cursor])

    ahead: list[int] = []

    async def count_ahead() -> None:
        # Changes applied to documents whose batch position was never saved: the restart
        # re-delivers them and the per-document guard must turn them into no-ops.
        stored = {
            (d["topic"], d["partition"]): d["next_offset"]
            async for d in mongo_db["projection_positions"].find({"projection": "agent-tasks"})
        }
        count = 0
        async for doc in mongo_db["agent_tasks"].find({}, {"_positions": 1}):
            for key, offset in doc["_positions"].items():
                topic, _, partition = key.rpartition(":")
                if offset >= stored.get((topic.replace("~", "."), int(partition)), 0):
                    count += 1
        ahead.append(count)

    proc = ProjectionProcess(settings, "agent-tasks", f"restart-{test_id}-agent-tasks.log")
    processes.append(proc)
    at_kill, final = await kill_mid_stream_and_restart(
        settings, proc, events, progress, count_ahead
    )
    docs = await mongo_db["agent_tasks"].find({}).to_list(None)
    applied = Counter(d["events_applied"] for d in docs)
    print(
        f"agent-tasks (MongoDB) SIGKILL: killed at {at_kill}/{TOTAL} applied positions,"
        f" documents changed past the saved position at kill {ahead[0]};"
        f" final {final}; documents {len(docs)}, events_applied total"
        f" {sum(d['events_applied'] for d in docs)}"
    )
    assert final == TOTAL
    assert len(docs) == 1000
    assert applied == Counter({3: 1000})  # each task's three events applied exactly once
    assert {d["status"] for d in docs} == {"completed"}
