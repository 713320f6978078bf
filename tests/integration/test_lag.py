"""Consumer-lag correctness against real Kafka, PostgreSQL and Prometheus (no mocks)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from stacktest import free_port, serve_api, wait_for

from api.app import create_app
from api.keys import PostgresApiKeyStore
from fairstream.settings import Settings
from fairstream.stack.config import StackConfig
from fairstream.stack.kafka import run_kafka_tool
from operations.lag.collector import KafkaLagCollector
from operations.lag.evaluator import LagEvaluator
from operations.lag.history import PostgresLagHistory
from operations.lag.model import LagStatus

pytestmark = pytest.mark.integration

PARTITIONS = 3
PRODUCED = [12, 7, 5]  # records per partition
COMMITTED = [4, 7, 1]  # the group's committed offsets: lag 8, 0, 4
AGE_SECONDS = 3600.0  # records are stamped an hour in the past, one second apart


class LagFixture:
    """A topic with known records and a consumer group that committed and went away."""

    def __init__(self, settings: Settings, test_id: str) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.topic = f"t-{test_id}.lag"
        self.group = f"t-{test_id}-lag-stopped"
        self.base_ms = int((time.time() - AGE_SECONDS) * 1000)
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def timestamp_ms(self, partition: int, offset: int) -> int:
        """Return the timestamp given to the record at (partition, offset)."""
        return self.base_ms + (partition * 100 + offset) * 1000

    def create(self) -> None:
        """Create the topic, produce the records and commit the group's offsets."""
        futures = self.admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)])
        for future in futures.values():
            future.result(30)
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        for partition, count in enumerate(PRODUCED):
            for offset in range(count):
                producer.produce(
                    self.topic,
                    value=f"{partition}-{offset}".encode(),
                    partition=partition,
                    timestamp=self.timestamp_ms(partition, offset),
                )
        assert producer.flush(30) == 0
        committer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
            }
        )
        try:
            offsets = [TopicPartition(self.topic, p, o) for p, o in enumerate(COMMITTED)]
            committer.commit(offsets=offsets, asynchronous=False)
        finally:
            committer.close()

    def delete(self) -> None:
        """Delete the group and the topic."""
        with contextlib.suppress(Exception):
            self.admin.delete_consumer_groups([self.group], request_timeout=30)[self.group].result()
        for future in self.admin.delete_topics([self.topic], operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)


@pytest.fixture
def lagging(stack_settings: Settings, test_id: str) -> Iterator[LagFixture]:
    """Create a stopped consumer group with a known lag; delete it after."""
    fixture = LagFixture(stack_settings, test_id)
    fixture.create()
    yield fixture
    fixture.delete()


def describe_with_kafka_tool(
    settings: Settings, group: str
) -> tuple[str, dict[int, tuple[int, int, int]]]:
    """Run kafka-consumer-groups --describe; return its output and partition -> offsets, lag."""
    config = StackConfig(stack_dir=settings.stack_dir)
    bootstrap = settings.kafka_bootstrap.split(",")[0]
    result = run_kafka_tool(
        config,
        "kafka-consumer-groups",
        ["--bootstrap-server", bootstrap, "--describe", "--group", group],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    header_at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["GROUP", "TOPIC"])
    header = lines[header_at].split()
    rows: dict[int, tuple[int, int, int]] = {}
    for line in lines[header_at + 1 :]:
        cells = dict(zip(header, line.split(), strict=False))
        rows[int(cells["PARTITION"])] = (
            int(cells["CURRENT-OFFSET"]),
            int(cells["LOG-END-OFFSET"]),
            int(cells["LAG"]),
        )
    return result.stdout, rows


def test_quiescent_group_matches_kafka_consumer_groups(
    stack_settings: Settings, lagging: LagFixture
) -> None:
    collector = KafkaLagCollector(stack_settings.kafka_bootstrap)
    try:
        (sample,) = collector.collect(only_group=lagging.group)
    finally:
        collector.close()
    snapshot = LagEvaluator().evaluate([sample])
    (group,) = snapshot.groups
    ours = {p.partition: (p.committed, p.log_end, p.lag) for p in group.partitions}
    tool_output, theirs = describe_with_kafka_tool(stack_settings, lagging.group)
    print("kafka-consumer-groups --describe:\n" + tool_output)
    print("fairstream lag:\n" + json.dumps({str(k): v for k, v in sorted(ours.items())}))
    assert ours == theirs
    assert ours == {p: (COMMITTED[p], PRODUCED[p], PRODUCED[p] - COMMITTED[p]) for p in range(3)}
    assert group.max_lag == 8 and group.total_lag == 12
    assert group.state == "Empty" and group.members == 0


def test_time_lag_is_measured_and_grows_for_a_stopped_consumer(
    stack_settings: Settings, lagging: LagFixture
) -> None:
    collector = KafkaLagCollector(stack_settings.kafka_bootstrap)
    evaluator = LagEvaluator(window_seconds=1.0, min_samples=2)
    try:
        first = evaluator.evaluate(collector.collect(only_group=lagging.group)).groups[0]
        time.sleep(2.0)
        second = evaluator.evaluate(collector.collect(only_group=lagging.group)).groups[0]
    finally:
        collector.close()
    for before, after in zip(first.partitions, second.partitions, strict=True):
        if after.lag == 0:
            assert before.lag_seconds == after.lag_seconds == 0.0
            assert after.status is LagStatus.OK
            continue
        # The age of the record at the committed offset, read from Kafka, not interpolated.
        expected = time.time() - lagging.timestamp_ms(after.partition, after.committed) / 1000
        assert after.lag_seconds == pytest.approx(expected, abs=3.0)
        assert after.lag_seconds - before.lag_seconds >= 1.9  # grows with wall time
        assert after.status is LagStatus.STOP  # no commit for a window and nobody consuming
    assert second.max_lag_seconds > first.max_lag_seconds > AGE_SECONDS - 10
    assert second.status is LagStatus.STOP


# --- API, history and a real Prometheus -------------------------------------------------------


@contextlib.contextmanager
def run_prometheus(tmp: Path, target: str) -> Iterator[str]:
    """Start Debian's Prometheus scraping `target` every second; yield its URL."""
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: fairstream-api\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "/usr/bin/prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


async def promql(client: httpx.AsyncClient, base: str, query: str) -> list[dict[str, Any]]:
    """Run an instant PromQL query; return its result vector (empty while not ready)."""
    try:
        res = await client.get(f"{base}/api/v1/query", params={"query": query})
    except httpx.TransportError:
        return []
    if res.status_code != 200:
        return []
    result: list[dict[str, Any]] = res.json()["data"]["result"]
    return result


@pytest.fixture
def api_settings(isolated_settings: Settings) -> Settings:
    """Return the test's settings with a fast lag collector."""
    return isolated_settings.model_copy(
        update={
            "lag_interval_seconds": 1.0,
            "lag_window_seconds": 3.0,
            "api_rate_limit_per_minute": 0,
        }
    )


async def _key(settings: Settings) -> str:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=1,
        server_settings={"search_path": settings.pg_schema},
    )
    assert pool is not None
    try:
        return await PostgresApiKeyStore(pool).create("lag-test", ["read:ops"])
    finally:
        await pool.close()


async def test_prometheus_scrapes_the_lag_and_history_survives_a_restart(
    api_settings: Settings, pg_schema: str, lagging: LagFixture, tmp_path: Path
) -> None:
    key = await _key(api_settings)
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(timeout=10) as client:
        async with serve_api(create_app(api_settings)) as base:
            assert (await client.get(f"{base}/v1/ops/lag")).status_code == 401
            target = base.removeprefix("http://")
            with run_prometheus(tmp_path, target) as prom:
                query = f'sum(kafka_consumergroup_group_lag{{group="{lagging.group}"}})'

                async def scraped() -> list[dict[str, Any]]:
                    return await promql(client, prom, query)

                result = await wait_for(scraped, timeout=60, interval=0.5)
                assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
                assert float(result[0]["value"][1]) == 12.0
                by_partition = await promql(
                    client, prom, f'kafka_consumergroup_group_lag{{group="{lagging.group}"}}'
                )
                assert {r["metric"]["partition"]: float(r["value"][1]) for r in by_partition} == {
                    "0": 8.0,
                    "1": 0.0,
                    "2": 4.0,
                }
                seconds = await promql(
                    client,
                    prom,
                    f'kafka_consumergroup_group_max_lag_seconds{{group="{lagging.group}"}}',
                )
                assert float(seconds[0]["value"][1]) > AGE_SECONDS - 60

                async def stopped() -> bool:
                    found = await promql(
                        client, prom, f'kafka_consumergroup_group_status{{group="{lagging.group}"}}'
                    )
                    return bool(found) and float(found[0]["value"][1]) == LagStatus.STOP

                assert await wait_for(stopped, timeout=30, interval=0.5)

            res = await client.get(
                f"{base}/v1/ops/lag?history_minutes=2&points=120", headers=headers
            )
            assert res.status_code == 200
            overview = res.json()
            mine = next(g for g in overview["groups"] if g["group"] == lagging.group)
            assert mine["status"] == "STOP" and mine["max_lag"] == 8 and mine["total_lag"] == 12
            assert len(mine["history"]) >= 2
            detail = (
                await client.get(f"{base}/v1/ops/lag/{lagging.group}", headers=headers)
            ).json()
            assert [(p["partition"], p["lag"]) for p in detail["partitions"]] == [
                (0, 8),
                (1, 0),
                (2, 4),
            ]
            missing = await client.get(f"{base}/v1/ops/lag/t-nope-{lagging.group}", headers=headers)
            assert missing.status_code == 404
            before_restart = max(point[0] for point in mine["history"])

        # A new API process reads the history its predecessor wrote.
        async with serve_api(create_app(api_settings)) as base:

            async def collected() -> dict[str, Any] | None:
                res = await client.get(
                    f"{base}/v1/ops/lag/{lagging.group}?history_minutes=5&points=300",
                    headers=headers,
                )
                return res.json() if res.status_code == 200 else None

            detail = await wait_for(collected, timeout=30)
            assert detail is not None
            assert min(point[0] for point in detail["history"]) <= before_restart


async def test_history_is_pruned_by_age_and_replaying_groups_are_read(
    api_settings: Settings, pg_schema: str
) -> None:
    pool = await asyncpg.create_pool(
        api_settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=1,
        server_settings={"search_path": pg_schema},
    )
    assert pool is not None
    try:
        await pool.execute(
            "INSERT INTO lag_history (group_id, observed_at, status, max_lag, max_lag_seconds,"
            " total_lag) SELECT 'g', now() - make_interval(secs => s * 10), 'OK', s, s, s"
            " FROM generate_series(0, 9359) AS s"  # 26 h at 10 s resolution
        )
        history = PostgresLagHistory(pool)
        day = await history.series(since_seconds=24 * 3600, points=24 * 360, group="g")
        assert len(day["g"]) >= 8639  # 24 h at 10 s resolution
        deleted = await history.prune(retention_seconds=25 * 3600)
        assert deleted == 9360 - 9000
        assert await pool.fetchval("SELECT count(*) FROM lag_history") == 9000
        await pool.execute(
            "INSERT INTO replaying_groups (group_id, expires_at, reason) VALUES"
            " ('rebuilding', NULL, 'replay'), ('done', now() - interval '1 minute', 'replay')"
        )
        assert await history.replaying_groups() == {"rebuilding"}
    finally:
        await pool.close()
