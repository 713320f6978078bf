"""Benchmark: end-to-end latency, publish -> visible through the API, vs the transport floor.

In the same run, against the local stack, under a unique topic prefix, schema and groups:
- the real services as subprocesses: `fairstream processor bias` (fast model),
  `fairstream projection bias-results` and `fairstream api` (cache on, rate limit lifted so
  the polling is never refused; document read models on PostgreSQL, as this path reads none);
  a warm-up content must be visible before timing starts;
- one `KafkaEventPublisher` publishes ContentSubmitted at `--rate` events/s for `--seconds`,
  each content under its own id; the send time is taken just before `publish_all`;
- fairstream: on a fixed clock, every `--poll-ms` ms whether or not the previous answer has
  arrived, one `GET /v1/bias/results?limit=100` (newest first), with at most
  `--max-in-flight` requests outstanding (a tick that finds them all busy is skipped and
  counted); an id is visible when it is in an answer, latency = that answer's arrival -
  send time, so the figure includes up to one gap between answers. The achieved gaps
  between polls sent and between answers received (mean, p99) are reported: they are the
  figure's resolution. An id missing after 1 s is also asked for with
  `GET /v1/content/{id}/bias`. Polling each id every few ms instead made the load on the
  API grow with the backlog and starve the pipeline it measures on two cores;
- reference (the transport floor): a plain confluent-kafka consumer on the same topic, in
  a child process of its own (so it shares no GIL with the publisher and the poller),
  reads the same records while they are published; latency = receipt - send time (both
  wall clock on the same machine).
Prints p50/p99 of both sides, the achieved poll interval, and the ratio floor /
end-to-end; writes bench/results/e2e_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Mapping
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from api_throughput import FS, Server, free_port, settings_env
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from events.catalog import topic_name
from events.jsonform import event_from_json
from events.topics import apply_topics, topic_specs
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings, load_settings
from producers.generator import TrafficGenerator
from producers.publisher import KafkaEventPublisher

RESULTS = Path(__file__).resolve().parent / "results"


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50, p99 and max of `values` (milliseconds)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "count": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": ordered[-1],
    }


def gaps(times: list[float]) -> dict[str, float]:
    """Return count, mean, p50, p99 and max of the gaps between sorted `times` (s), in ms."""
    ordered = sorted(times)
    between = [(b - a) * 1000.0 for a, b in itertools.pairwise(ordered)]
    return percentiles(between) | {
        "mean_ms": statistics.fmean(between) if between else float("nan")
    }


def read_floor(
    config: Mapping[str, Any],
    topic: str,
    ready: ProcessEvent,
    stop: ProcessEvent,
    results: Any,
) -> None:
    """Read `topic` from its current end until `stop`; put key -> receipt time on `results`.

    Runs in a child process, so the reference shares no GIL with the publisher and poller.
    """
    consumer = Consumer(dict(config))
    received: dict[str, float] = {}
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign(
            [
                TopicPartition(
                    topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1]
                )
                for p in parts
            ]
        )
        ready.set()
        while not stop.is_set():
            for msg in consumer.consume(100, timeout=0.1):
                key = msg.key()
                if msg.error() is None and key is not None:
                    received.setdefault(bytes(key).decode(), time.time())
    finally:
        consumer.close()
        results.put(received)


class FloorReader:
    """Note each key's receipt by a plain consumer of the topic, in a child process."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.received: dict[str, float] = {}
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._results = ctx.Queue()
        config = {
            "bootstrap.servers": settings.kafka_bootstrap,
            **librdkafka_security(settings),
            "group.id": f"{settings.topic_prefix}floor",
            "enable.auto.commit": False,
        }
        self._proc = ctx.Process(
            target=read_floor,
            args=(config, topic, self._ready, self._stop, self._results),
            name="e2e-floor-reader",
            daemon=True,
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until it reads from the topic's current end."""
        self._proc.start()
        if not self._ready.wait(timeout):
            self._proc.kill()
            raise SystemExit("the transport-floor reader did not start")

    def stop(self) -> None:
        """Stop reading; collect the receipt times; end the child."""
        self._stop.set()
        if self._proc.pid is not None:
            self.received = self._results.get(timeout=60)
            self._proc.join(30)


def publish_paced(
    settings: Settings,
    texts: list[str],
    ids: list[str],
    rate: float,
    on_sent: Any,
) -> None:
    """Publish one ContentSubmitted per id at `rate`/s; call `on_sent(id, send_time)`."""
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    begin = time.monotonic()
    try:
        for i, cid in enumerate(ids):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event = event_from_json(
                "ContentSubmitted",
                {"content_id": cid, "text": texts[i % len(texts)]},
                source="bench",
            )
            sent = time.time()
            publisher.publish_all([event]).raise_for_failures()
            on_sent(cid, sent)
    finally:
        publisher.close()


async def visible_after(
    client: httpx.AsyncClient, cid: str, sent: float, poll: float, deadline: float
) -> float | None:
    """Poll the API for `cid` until it answers 200; return the latency in ms, or None."""
    while time.time() < deadline:
        await asyncio.sleep(poll)
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(f"/v1/content/{cid}/bias")).status_code == 200:
                return (time.time() - sent) * 1000.0
    return None


class Watcher:
    """Note when each published content becomes visible through the API, at bounded load.

    On a fixed clock, every `poll` s whether or not earlier requests have been answered, one
    request lists the newest `LIST_LIMIT` bias results; an outstanding id in it is visible
    at that answer's arrival. At most `max_in_flight` requests are outstanding: a tick that
    finds them all busy sends nothing and is counted in `skipped_ticks`, and a late loop
    does not send the ticks it missed in a burst. An id still missing after `STALE` s (a
    burst larger than the page) is also asked for by id, at most once per `STALE` s and
    `BY_ID_PER_TICK` per tick, within the same bound. The load on the API therefore stays
    near 1/poll requests/s instead of growing with the backlog.
    """

    LIST_LIMIT = 100
    STALE = 1.0
    BY_ID_PER_TICK = 4

    def __init__(self, client: httpx.AsyncClient, poll: float, max_in_flight: int) -> None:
        self.outstanding: dict[str, float] = {}
        self.latency_ms: dict[str, float] = {}
        self.by_list = 0
        self.requests = 0
        self.failed = 0
        self.skipped_ticks = 0
        self.list_sent: list[float] = []  # monotonic send time of every list request
        self.list_answered: list[float] = []  # monotonic arrival of every 200 list answer
        self.list_request_ms: list[float] = []
        self._client = client
        self._poll = poll
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()
        self._checked: dict[str, float] = {}

    def _seen(self, cid: str, at: float) -> None:
        sent = self.outstanding.pop(cid, None)
        if sent is not None:
            self.latency_ms[cid] = (at - sent) * 1000.0

    async def _list_once(self) -> None:
        sent = time.monotonic()
        self.list_sent.append(sent)
        r = await self._client.get(f"/v1/bias/results?limit={self.LIST_LIMIT}")
        arrived, at = time.monotonic(), time.time()
        if r.status_code == 200:
            self.list_answered.append(arrived)
            self.list_request_ms.append((arrived - sent) * 1000.0)
            for item in r.json()["items"]:
                if item["content_id"] in self.outstanding:
                    self.by_list += 1
                    self._seen(item["content_id"], at)

    async def _by_id(self, cid: str) -> None:
        self._checked[cid] = time.time()
        r = await self._client.get(f"/v1/content/{cid}/bias")
        if r.status_code == 200:
            self._seen(cid, time.time())

    async def _guarded(self, request: Coroutine[Any, Any, None]) -> None:
        try:
            await request
        except httpx.TransportError:
            self.failed += 1

    def _send(self, request: Coroutine[Any, Any, None]) -> bool:
        """Start `request` unless `max_in_flight` are outstanding; return whether it started."""
        if len(self._in_flight) >= self._max_in_flight:
            request.close()
            return False
        self.requests += 1
        task = asyncio.create_task(self._guarded(request))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return True

    async def run(self, until: asyncio.Event, deadline: float) -> None:
        """Watch until `until` is set and nothing is outstanding, or until `deadline`."""
        begin = time.monotonic()
        tick = 0
        try:
            while (self.outstanding or not until.is_set()) and time.time() < deadline:
                if not self._send(self._list_once()):
                    self.skipped_ticks += 1
                now = time.time()
                stale = [
                    c
                    for c, sent in list(self.outstanding.items())[: self.BY_ID_PER_TICK]
                    if now - max(sent, self._checked.get(c, 0.0)) >= self.STALE
                ]
                for cid in stale:
                    self._send(self._by_id(cid))
                # The next tick on the clock. A loop more than one tick late sends only the
                # latest tick that is due, at once; the ones before it are skipped.
                tick += 1
                behind = int((time.monotonic() - begin) / self._poll) - tick
                if behind > 0:
                    self.skipped_ticks += behind
                    tick += behind
                await asyncio.sleep(max(0.0, begin + tick * self._poll - time.monotonic()))
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def poll_interval(self) -> dict[str, Any]:
        """Return the achieved gaps between list requests sent and answers received."""
        return {
            "max_in_flight": self._max_in_flight,
            "list_requests": len(self.list_sent),
            "skipped_ticks": self.skipped_ticks,
            "failed_requests": self.failed,
            "sent": gaps(self.list_sent),
            "answered": gaps(self.list_answered),
            "list_request": percentiles(self.list_request_ms),
        }


async def measure(
    settings: Settings, api: str, key: str, args: argparse.Namespace, tag: str
) -> dict[str, Any]:
    """Warm up, then publish at the fixed rate while polling the API and reading the floor."""
    texts = [
        str(t.payload["text"])
        for t in (
            TrafficGenerator(types=("ContentSubmitted",), seed=9).make("ContentSubmitted")
            for _ in range(200)
        )
    ]
    poll = args.poll_ms / 1000.0
    limits = httpx.Limits(max_connections=args.connections)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=5, limits=limits) as client:
        warm = [f"{tag}-warm-{i}" for i in range(5)]
        await asyncio.to_thread(publish_paced, settings, texts, warm, 10.0, lambda *_: None)
        for cid in warm:
            if await visible_after(client, cid, time.time(), 0.2, time.time() + 240) is None:
                raise SystemExit("the warm-up content never became visible through the API")

        topic = topic_name("ContentSubmitted", settings.topic_prefix)
        floor = FloorReader(settings, topic)
        await asyncio.to_thread(floor.start)
        loop = asyncio.get_running_loop()
        sent: dict[str, float] = {}
        watcher = Watcher(client, poll, args.max_in_flight)
        published = asyncio.Event()
        ids = [f"{tag}-{i}" for i in range(int(args.rate * args.seconds))]
        begin = time.time()

        def on_sent(cid: str, at: float) -> None:
            sent[cid] = at
            loop.call_soon_threadsafe(watcher.outstanding.__setitem__, cid, at)

        async def publish() -> None:
            try:
                await asyncio.to_thread(publish_paced, settings, texts, ids, args.rate, on_sent)
            finally:
                await asyncio.sleep(0)  # let the last call_soon_threadsafe run
                published.set()

        try:
            await asyncio.gather(
                publish(), watcher.run(published, begin + args.seconds + args.timeout)
            )
        finally:
            await asyncio.to_thread(floor.stop)
        wall = time.time() - begin
    e2e = list(watcher.latency_ms.values())
    transport = [(floor.received[c] - t) * 1000.0 for c, t in sent.items() if c in floor.received]
    return {
        "published": len(ids),
        "measured_seconds": round(wall, 1),
        "end_to_end": percentiles(e2e)
        | {
            "not_visible": len(ids) - len(e2e),
            "seen_in_list": watcher.by_list,
            "api_requests": watcher.requests,
        },
        "poll_interval": {"target_ms": args.poll_ms} | watcher.poll_interval(),
        "transport_floor": percentiles(transport)
        | {"not_received": len(sent) - len(transport), "reader": "child process"},
    }


async def prepare(settings: Settings, key_file: Path) -> str:
    """Apply the migrations in the bench schema and return an API key with every scope."""
    from api.keys import ensure_dev_key_async
    from fairstream.bootstrap import apply_migrations

    await apply_migrations(settings)
    return await ensure_dev_key_async(settings, key_file)


async def cleanup(settings: Settings, owned: str) -> None:
    """Drop the schema, the API's Redis keys, and every topic and group of this run."""
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
    admin = AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
    )
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(owned)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    groups = [
        g.group_id
        for g in admin.list_consumer_groups().result(30).valid
        if g.group_id.startswith(owned)
    ]
    if groups:
        for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the services on isolated settings, measure, stop them and clean up."""
    tag = uuid.uuid4().hex[:8]
    owned = f"bench-{tag}"
    settings = load_settings().model_copy(
        update={
            "topic_prefix": f"{owned}.",
            "pg_schema": f"bench_{tag}",
            "bias_processor_group": f"{owned}-bias-scorer",
            "bias_projection_group": f"{owned}-proj-bias-results",
            "projection_group_prefix": f"{owned}-proj-",
            "bias_model": "fast",
            # This path never reads documents: keep the API's readiness off MongoDB.
            "document_store": "postgres",
        }
    )
    apply_topics(settings.kafka_bootstrap, topic_specs(settings.topic_prefix, brokers=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = settings_env(
        settings,
        FAIRSTREAM_API_RATE_LIMIT_PER_MINUTE=str(10**9),
        FAIRSTREAM_API_PORT=str(port),
    )
    servers = [
        Server(name, argv, env, port, RESULTS / f"e2e-{name}.log")
        for name, argv in {
            "processor": [FS, "processor", "bias"],
            "projection": [FS, "projection", "bias-results"],
            "api": [FS, "api", "--host", "127.0.0.1", "--port", str(port)],
        }.items()
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            key = asyncio.run(prepare(settings, Path(tmp) / "key"))
        for server in servers:
            server.start()
        servers[-1].wait_ready("/readyz", {})
        figures = asyncio.run(measure(settings, servers[-1].url, key, args, tag))
    finally:
        for server in servers:
            server.stop()
        asyncio.run(cleanup(settings, owned))
    e2e, floor = figures["end_to_end"], figures["transport_floor"]
    return {
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "poll_ms": args.poll_ms,
        "model": "fast",
        **figures,
        "ratio_p50": floor["p50_ms"] / e2e["p50_ms"],
        "ratio_p99": floor["p99_ms"] / e2e["p99_ms"],
    }


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s published")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="API poll interval")
    parser.add_argument("--connections", type=int, default=8, help="pollers' HTTP connections")
    parser.add_argument(
        "--max-in-flight", type=int, default=4, help="API requests outstanding at most"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="watch at most this long after publishing"
    )
    args = parser.parse_args()
    results = run(args)
    e2e, floor = results["end_to_end"], results["transport_floor"]
    polls = results["poll_interval"]
    sent, answered, request = polls["sent"], polls["answered"], polls["list_request"]
    print(
        f"at {args.rate:.0f} ev/s for {args.seconds:.0f} s ({results['published']} contents,"
        f" API polled on a {args.poll_ms:.0f} ms clock):"
    )
    print(
        f"poll interval achieved: sent every {sent['mean_ms']:.1f} ms mean, p99 gap"
        f" {sent['p99_ms']:.1f} ms; answered every {answered['mean_ms']:.1f} ms mean, p99 gap"
        f" {answered['p99_ms']:.1f} ms; request p50 {request['p50_ms']:.1f} ms p99"
        f" {request['p99_ms']:.1f} ms; {polls['skipped_ticks']} ticks skipped,"
        f" {polls['failed_requests']} failed"
    )
    print(
        f"publish -> visible via API: p50 {e2e['p50_ms']:7.1f} ms p99 {e2e['p99_ms']:7.1f} ms"
        f" ({e2e['count']} seen, {e2e['not_visible']} never visible)"
    )
    print(
        f"publish -> plain consumer:  p50 {floor['p50_ms']:7.1f} ms p99 {floor['p99_ms']:7.1f} ms"
        f" (transport floor, {floor['count']} received)"
    )
    print(
        f"ratio floor / end-to-end: p50 {results['ratio_p50']:.3f}, p99 {results['ratio_p99']:.3f}"
    )
    out = RESULTS / "e2e_latency.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
