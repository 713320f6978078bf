"""End to end over the whole domain: sample traffic through every processor and projection,
then every read model answers through the API with data."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient
from stacktest import ARTIFACTS, free_port, settings_env, wait_for

from api.keys import ensure_dev_key_async
from fairstream.commands.run import READ_MODELS
from fairstream.services import service_commands
from fairstream.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

FS = str(Path(sys.executable).with_name("fairstream"))


@pytest.fixture
def domain_settings(isolated_settings: Settings, test_id: str) -> Iterator[Settings]:
    """Give the test its own MongoDB database and short analytics grace; drop it after."""
    settings = isolated_settings.model_copy(
        update={
            "mongo_database": f"t_{test_id}",
            "analytics_processor_group": f"t-{test_id}-analytics",
            "opportunity_processor_group": f"t-{test_id}-opportunity",
            "campaign_processor_group": f"t-{test_id}-campaign",
            "revenue_processor_group": f"t-{test_id}-revenue",
            "projection_group_prefix": f"t-{test_id}-proj-",
            "analytics_grace_seconds": 1.0,
            "api_port": free_port(),
        }
    )
    yield settings
    with MongoClient(settings.mongo_url) as client:
        client.drop_database(settings.mongo_database)


@pytest.fixture
def all_services(
    domain_settings: Settings, event_topics: list[str], pg_schema: str, test_id: str
) -> Iterator[str]:
    """Run every processor, projection and the API as `make run` does; yield the API URL."""
    env = settings_env(domain_settings)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, args in service_commands().items():
        log = open(ARTIFACTS / f"domain-{test_id}-{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([FS, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
    try:
        yield f"http://127.0.0.1:{domain_settings.api_port}"
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


async def test_sample_traffic_reaches_every_read_model(
    all_services: str, domain_settings: Settings
) -> None:
    key = await ensure_dev_key_async(domain_settings, domain_settings.stack_dir / "unused-key")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).isoformat()
    generated = subprocess.run(
        [FS, "generate", "--count", "400", "--seed", "11", "--start", start],
        env=settings_env(domain_settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert generated.returncode == 0, generated.stderr

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=all_services, headers=headers, timeout=10) as client:

        async def counts() -> dict[str, int] | None:
            found = {}
            for name, path in READ_MODELS.items():
                try:
                    r = await client.get(path, params={"limit": 500})
                except httpx.TransportError:
                    return None
                assert r.status_code in (200, 503), f"{path}: {r.status_code} {r.text[:300]}"
                found[name] = len(r.json()["items"]) if r.status_code == 200 else 0
            return found if all(found.values()) else None

        found = await wait_for(counts, timeout=240, interval=2)
        assert found, "some read model stayed empty; see tests/artifacts/domain-*.log"

        campaign = (await client.get("/v1/campaigns", params={"limit": 1})).json()["items"][0]
        detail = await client.get(f"/v1/campaigns/{campaign['id']}")
        assert detail.status_code == 200
        items = [i for ch in detail.json()["channels"] for i in ch.get("items", [])]
        assert items and all("text" not in item for item in items)  # privacy: no raw text
