"""The /lag dashboard in headless Chromium (Playwright driving Debian's chromium), real stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator

import asyncpg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from stacktest import ARTIFACTS, serve_api

from api.app import create_app
from api.keys import PostgresApiKeyStore
from fairstream.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = os.environ.get("FAIRSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ARTIFACTS / "lag-dashboard.png"
PRODUCED = [40, 25, 30]


class Groups:
    """Consumer groups in known states on one topic: stopped, caught up, replaying, stalled."""

    def __init__(self, settings: Settings, test_id: str) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.topic = f"t-{test_id}.lag-ui"
        prefix = f"t-{test_id}"
        self.stopped = f"{prefix}-projection-stopped"
        self.caught_up = f"{prefix}-projection-live"
        self.replaying = f"{prefix}-projection-replay-1"
        self.stalled = f"{prefix}-processor-stuck"
        self.names = [self.stopped, self.caught_up, self.replaying, self.stalled]
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self._stop = threading.Event()
        self._member: threading.Thread | None = None

    def create(self) -> None:
        """Create the topic and records; commit each group's offsets; start the stalled member."""
        for future in self.admin.create_topics([NewTopic(self.topic, 3, 1)]).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": self.bootstrap})
        now_ms = int(time.time() * 1000)
        for partition, count in enumerate(PRODUCED):
            for offset in range(count):
                # Spread over the last ten minutes, oldest first.
                ts = now_ms - (count - offset) * 15_000 - partition * 20_000
                producer.produce(self.topic, b"x", partition=partition, timestamp=ts)
        assert producer.flush(30) == 0
        self._commit(self.stopped, [5, 20, 12])
        self._commit(self.caught_up, PRODUCED)
        self._commit(self.replaying, [1, 2, 3])
        self._commit(self.stalled, [30, 10, 29])
        ready = threading.Event()
        self._member = threading.Thread(target=self._stuck_member, args=(ready,), daemon=True)
        self._member.start()
        assert ready.wait(60), "the stalled member never got its partitions"

    def _commit(self, group: str, offsets: list[int]) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        try:
            tps = [TopicPartition(self.topic, p, o) for p, o in enumerate(offsets)]
            consumer.commit(offsets=tps, asynchronous=False)
        finally:
            consumer.close()

    def _stuck_member(self, ready: threading.Event) -> None:
        # A live member that owns its partitions but never commits: STALL.
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.stalled,
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                consumer.poll(0.2)
                if consumer.assignment():
                    ready.set()
        finally:
            consumer.close()

    def delete(self) -> None:
        """Stop the member; delete the groups and the topic."""
        self._stop.set()
        if self._member is not None:
            self._member.join(30)
        for future in self.admin.delete_consumer_groups(self.names, request_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result()
        for future in self.admin.delete_topics([self.topic], operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)


@pytest.fixture
def groups(stack_settings: Settings, test_id: str) -> Iterator[Groups]:
    """Create the groups; delete them after."""
    created = Groups(stack_settings, test_id)
    try:
        created.create()
        yield created
    finally:
        created.delete()


async def test_lag_dashboard_in_chromium(
    isolated_settings: Settings, pg_schema: str, groups: Groups, test_id: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    settings = isolated_settings.model_copy(
        update={"lag_interval_seconds": 1.0, "lag_window_seconds": 4.0}
    )
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'SET search_path TO "{pg_schema}"')
        pool = await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=1,
            server_settings={"search_path": pg_schema},
        )
        assert pool is not None
        try:
            key = await PostgresApiKeyStore(pool).create("lag-dashboard", ["read:ops"])
        finally:
            await pool.close()
    finally:
        await conn.close()

    async with serve_api(create_app(settings)) as base, playwright_api.async_playwright() as pw:
        await asyncio.sleep(6)  # let the windows fill so STOP and STALL develop
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(f"{base}/lag?key={key}&minutes=1")
            assert "key=" not in page.url  # the key moved to localStorage
            await page.fill("#filter", test_id)
            expected = {
                groups.stopped: "STOP",
                groups.caught_up: "OK",
                groups.replaying: "REPLAYING",
                groups.stalled: "STALL",
            }
            for name, status in expected.items():
                row = page.locator(f'tr.group-row[data-group="{name}"]')
                await row.locator(f"span.badge.s-{status}").wait_for(timeout=30_000)
            order = await page.locator("tr.group-row").evaluate_all(
                "rows => rows.map(r => r.dataset.group)"
            )
            assert order.index(groups.caught_up) == len(order) - 1  # sorted by time lag
            await page.locator(f'tr.group-row[data-group="{groups.stopped}"]').click()
            partitions = page.locator("#detail table.partitions tbody tr")
            await partitions.nth(2).wait_for(timeout=15_000)
            assert await partitions.count() == 3
            text = await page.locator("#detail").inner_text()
            assert groups.topic in text and "STOP" in text
            await page.wait_for_timeout(2500)  # one more refresh: sparklines have points
            await page.locator("svg.spark path").first.wait_for(timeout=15_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            await browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
