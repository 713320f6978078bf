"""End to end: publish through the CLI, score in Faust, project to PostgreSQL, read via HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from stacktest import ARTIFACTS, free_port, settings_env, wait_for

from fairstream.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FS = str(Path(sys.executable).with_name("fairstream"))


@pytest.fixture
def services(
    isolated_settings: Settings, event_topics: list[str], pg_schema: str, test_id: str
) -> Iterator[str]:
    """Run the bias processor, the projection and the API for this test; yield the API URL."""
    port = free_port()
    env = settings_env(isolated_settings) | {"FAIRSTREAM_API_PORT": str(port)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, argv in {
        "processor": [FS, "processor", "bias"],
        "projection": [FS, "projection", "bias-results"],
        "api": [FS, "api"],
    }.items():
        log = open(ARTIFACTS / f"e2e-{test_id}-{name}.log", "wb")  # noqa: SIM115
        procs.append((subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        yield f"http://127.0.0.1:{port}"
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


async def test_published_content_is_scored_and_served(
    services: str, isolated_settings: Settings, tmp_path: Path
) -> None:
    from api.keys import ensure_dev_key_async

    key = await ensure_dev_key_async(isolated_settings, tmp_path / "dev-api-key")
    neutral = f"c-{uuid.uuid4().hex[:8]}"
    biased = f"c-{uuid.uuid4().hex[:8]}"
    lines = [
        {"content_id": neutral, "text": "My colleague is Muslim and we had lunch together today."},
        {"content_id": biased, "text": "Women are too emotional to be good engineers or leaders."},
    ]
    ndjson = tmp_path / "content.ndjson"
    ndjson.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    env = settings_env(isolated_settings)
    published = subprocess.run(
        [FS, "publish", "ContentSubmitted", str(ndjson), "--source", "e2e-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stderr

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=services, timeout=5, headers=headers) as client:

        async def answered() -> dict[str, dict[str, object]] | None:
            found = {}
            for cid in (neutral, biased):
                try:
                    r = await client.get(f"/v1/content/{cid}/bias")
                except httpx.TransportError:
                    return None
                if r.status_code != 200:
                    return None
                found[cid] = r.json()
            return found

        results = await wait_for(answered, timeout=120)
        assert results, "the API never answered for the published content"
        for cid, body in results.items():
            assert body["content_id"] == cid
            assert 0.0 <= body["overall_score"] <= 1.0
            assert body["level"] in {"low", "medium", "high", "critical"}
            assert body["model_version"]
            assert isinstance(body["dimensions"], dict) and body["dimensions"]
            assert "text" not in body  # the raw text is never served
        assert results[biased]["overall_score"] > results[neutral]["overall_score"]
        assert results[neutral]["level"] == "low"

        missing = await client.get("/v1/content/does-not-exist/bias")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        bad = await client.get("/v1/content/bad%20id%3B%20drop/bias")
        assert bad.status_code == 422
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        metrics = await client.get("/metrics")
        assert "fairstream_http_requests_total" in metrics.text
        anonymous = await client.get(f"/v1/content/{neutral}/bias", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_poison_message_goes_to_dead_letter_topic(
    services: str, isolated_settings: Settings
) -> None:
    from events.catalog import topic_name

    source = topic_name("ContentSubmitted", isolated_settings.topic_prefix)
    producer = Producer({"bootstrap.servers": isolated_settings.kafka_bootstrap})
    producer.produce(source, key=b"poison", value=os.urandom(64))
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": isolated_settings.kafka_bootstrap,
            "group.id": f"{isolated_settings.topic_prefix}dlq-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([f"{source}.dlq"])
    try:

        async def dead_lettered():  # type: ignore[no-untyped-def]
            msg = consumer.poll(0.5)
            return msg if msg is not None and msg.error() is None else None

        msg = await wait_for(dead_lettered, timeout=90, interval=0)
    finally:
        consumer.close()
    assert msg is not None, "the poison message never reached the dead-letter topic"
    assert msg.key() == b"poison"
    headers = dict(msg.headers() or [])
    assert headers["dlq_source_topic"].decode() == source
    assert headers["dlq_reason"]
