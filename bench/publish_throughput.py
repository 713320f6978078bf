"""Benchmark: publish throughput of the fairstream publisher vs kafka-producer-perf-test.

In the same run, against the local broker and the same `content.submitted` topic (a unique
prefix, so the same partition count as production):
- fairstream: `KafkaEventPublisher.publish_all` (Avro single-object encoding, CloudEvents
  headers, acks=all, idempotent, lz4, linger 5 ms) on `--events` typical ContentSubmitted
  events built beforehand, in calls of `--chunk` events; encoding is part of the figure;
- reference: Kafka's own `kafka-producer-perf-test` (Java client) with the same number of
  records after the same warm-up (`--warmup-records`), `--record-size` = the mean Avro value
  size of those events, and the same producer settings (acks=all, enable.idempotence=true,
  compression.type=lz4, linger.ms=5), no throttling. It sends no key and no headers: that is
  the floor the publisher is held to.
Both send a tenth more records first as an untimed warm-up (perf-test's steady-state line),
then are timed from the first send to the last acknowledgement. MB/s counts record values
only (10^6 bytes), the same way for both sides. Prints both sides and the ratio; writes
bench/results/publish_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from events.topics import apply_topics, topic_specs
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings, load_settings
from producers.generator import TrafficGenerator
from producers.publisher import KafkaEventPublisher

RESULTS = Path(__file__).resolve().parent / "results"
FS = str(Path(sys.executable).with_name("fairstream"))
# The settings KafkaEventPublisher uses by default, given to perf-test as well.
PRODUCER_PROPS = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "lz4",
    "linger.ms": "5",
}
# "45000 steady state records sent, 41666.7 records/sec (3.97 MB/sec), 350.2 ms avg latency, ..."
PERF_SUMMARY = re.compile(
    r"(?P<records>\d+) (?P<steady>steady state )?records sent,"
    r" (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\),"
    r" (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
    r"(?:, (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th)?"
)


def make_events(count: int) -> list[Event]:
    """Return `count` typical ContentSubmitted events from the sample-traffic generator."""
    gen = TrafficGenerator(types=("ContentSubmitted",), seed=3)
    return [gen.make("ContentSubmitted") for _ in range(count)]


def record_sizes(events: list[Event]) -> dict[str, float]:
    """Return the mean Avro value size and the mean CloudEvents header size, in bytes."""
    codec = EventCodec()
    encoded = [codec.encode(e) for e in events]
    return {
        "value_bytes_mean": statistics.fmean(len(m.value) for m in encoded),
        "key_bytes_mean": statistics.fmean(len(m.key) for m in encoded),
        "header_bytes_mean": statistics.fmean(
            sum(len(n) + len(v) for n, v in m.headers) for m in encoded
        ),
    }


def publisher_rate(
    settings: Settings, events: list[Event], warmup: int, chunk: int, value_bytes: float
) -> dict[str, Any]:
    """Publish `warmup` events untimed, then the rest in calls of `chunk`; return the rate."""
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    timed = events[warmup:]
    try:
        publisher.publish_all(events[:warmup]).raise_for_failures()
        started = time.perf_counter()
        for i in range(0, len(timed), chunk):
            publisher.publish_all(timed[i : i + chunk]).raise_for_failures()
        seconds = time.perf_counter() - started
    finally:
        publisher.close()
    rate = len(timed) / seconds
    return {
        "records": len(timed),
        "warmup_records": warmup,
        "seconds": round(seconds, 3),
        "records_per_s": rate,
        "mb_per_s": rate * value_bytes / 1e6,
        "producer_config": dict(publisher.producer_config),
    }


def perf_test_rate(
    settings: Settings, topic: str, count: int, warmup: int, size: int
) -> dict[str, Any]:
    """Run kafka-producer-perf-test with the publisher's settings; return its steady state."""
    argv = [
        FS,
        "stack",
        "kafka-tool",
        "kafka-producer-perf-test",
        "--",
        "--bootstrap-server",
        settings.kafka_bootstrap,
        "--topic",
        topic,
        "--num-records",
        str(warmup + count),
        "--warmup-records",
        str(warmup),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--command-property",
        *[f"{k}={v}" for k, v in PRODUCER_PROPS.items()],
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    summaries = [m for m in map(PERF_SUMMARY.search, out.stdout.splitlines()) if m]
    if out.returncode != 0 or not summaries:
        raise SystemExit(f"kafka-producer-perf-test failed:\n{out.stdout}\n{out.stderr}")
    last = summaries[-1]  # the steady-state line (after the warm-up records) comes last
    rate = float(last["rate"])
    return {
        "records": int(last["records"]),
        "warmup_records": warmup,
        "steady_state": bool(last["steady"]),
        "record_size": size,
        "records_per_s": rate,
        "mb_per_s": rate * size / 1e6,
        "reported_mib_per_s": float(last["mb"]),
        "avg_latency_ms": float(last["avg"]),
        "p99_latency_ms": float(last["p99"]) if last["p99"] else None,
        "producer_props": PRODUCER_PROPS,
        "summary_line": last.group(0),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Create unique topics, run both sides (perf-test first and last), delete the topics."""
    tag = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(update={"topic_prefix": f"bench-{tag}."})
    specs = topic_specs(settings.topic_prefix, brokers=1)
    topic = topic_name("ContentSubmitted", settings.topic_prefix)
    partitions = next(s.partitions for s in specs if s.name == topic)
    warmup = max(1, args.events // 10)
    events = make_events(warmup + args.events)
    sizes = record_sizes(events)
    size = round(sizes["value_bytes_mean"])
    apply_topics(settings.kafka_bootstrap, specs)
    try:
        # The reference before and after: the better one is used (shared, noisy machine).
        perf = [perf_test_rate(settings, topic, args.events, warmup, size)]
        ours = publisher_rate(settings, events, warmup, args.chunk, sizes["value_bytes_mean"])
        perf.append(perf_test_rate(settings, topic, args.events, warmup, size))
    finally:
        admin = AdminClient(
            {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
        )
        for future in admin.delete_topics([s.name for s in specs], operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    best = max(perf, key=lambda p: float(p["records_per_s"]))
    return {
        "events": args.events,
        "chunk": args.chunk,
        "topic_partitions": partitions,
        "sizes": sizes,
        "publisher": ours,
        "perf_test": best,
        "perf_test_runs": perf,
        "ratio": ours["records_per_s"] / best["records_per_s"],
    }


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--events", type=int, default=50000, help="timed records per side (+10%% warm-up)"
    )
    parser.add_argument("--chunk", type=int, default=5000, help="events per publish_all call")
    args = parser.parse_args()
    results = run(args)
    ours, perf = results["publisher"], results["perf_test"]
    sizes = results["sizes"]
    print(
        f"record: {sizes['value_bytes_mean']:.0f} B Avro value (+{sizes['key_bytes_mean']:.0f} B"
        f" key, {sizes['header_bytes_mean']:.0f} B CloudEvents headers);"
        f" {results['topic_partitions']} partitions; acks=all, idempotent, lz4"
    )
    print(
        f"fairstream publisher:     {ours['records_per_s']:9.0f} records/s"
        f" {ours['mb_per_s']:7.2f} MB/s"
    )
    print(
        f"kafka-producer-perf-test: {perf['records_per_s']:9.0f} records/s"
        f" {perf['mb_per_s']:7.2f} MB/s (runs: "
        + ", ".join(f"{p['records_per_s']:.0f}" for p in results["perf_test_runs"])
        + ")"
    )
    print(f"ratio publisher / perf-test: {results['ratio']:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "publish_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
