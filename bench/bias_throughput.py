"""Benchmark: bias scoring through the running Faust processor vs raw onnxruntime.

For each model (fast, quality) it measures, in the same run:
- raw: onnxruntime alone on prepared feeds, same model and batch size;
- processor: events/s through `fairstream processor bias` (a real worker on the local
  Kafka): a backlog of ContentSubmitted is published while the worker is stopped, then the
  worker starts and the rate is taken over the BiasScored records it produces after its
  first take (see `steady_rate`), so start-up and rebalancing are not counted;
- floor: the same on `faust_passthrough.py`, a worker with the bias app's options and batch
  size that copies each record to a topic of its own and does nothing else: the most a
  Faust processor reaches here, so floor / raw bounds the processor's ratio;
- latency: p50 / p99 from publish to BiasScored at a fixed moderate rate.
Prints both sides and the ratio; writes bench/results/bias_throughput.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from events.catalog import topic_name
from events.codec import EventCodec
from events.topics import apply_topics, topic_specs
from fairstream.bootstrap import build_scorer
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings, load_settings
from processors.bias.app import ROUNDS_PER_TAKE
from producers.generator import TrafficGenerator
from producers.publisher import KafkaEventPublisher

RESULTS = Path(__file__).resolve().parent / "results"
# The per-step CPU breakdown reads this many events at most (the quality model is slow).
BREAKDOWN_EVENTS = 1024
FS = str(Path(sys.executable).with_name("fairstream"))


def texts(count: int, seed: int) -> list[str]:
    """Return realistic content texts from the sample-traffic generator."""
    gen = TrafficGenerator(types=("ContentSubmitted",), seed=seed)
    return [str(gen.make("ContentSubmitted").payload["text"]) for _ in range(count)]


def raw_rate(settings: Settings, kind: str, sample: list[str], batch: int) -> float:
    """Return texts/s of onnxruntime alone on prepared feeds of `batch` texts.

    Always with the default session threads (both cores here): the reference is the
    model at its fastest, whatever the worker under test is configured with.
    """
    default = settings.model_copy(update={"bias_intra_op_threads": None})
    scorer: Any = build_scorer(default, kind)
    # Each batch as the scorer runs it: one session run (fast), or length-sorted runs of
    # 32 (quality: padding to the longest of 64 unsorted texts would slow the reference).
    feeds = [
        feed
        for i in range(0, len(sample), batch)
        for feed in scorer.prepare_batches(sample[i : i + batch])
    ]
    scorer.run_raw(feeds[0])  # warm-up
    started = time.perf_counter()
    for feed in feeds:
        scorer.run_raw(feed)
    return len(sample) / (time.perf_counter() - started)


def _messages(sample: list[str]) -> list[Any]:
    """Return one encoded ContentSubmitted RawMessage per text."""
    from processors.deadletter import RawMessage

    codec = EventCodec()
    raw = []
    for i, text in enumerate(sample):
        encoded = codec.encode(_content(f"svc-{i}", text))
        raw.append(RawMessage("in", 0, i, encoded.key, encoded.value, encoded.headers))
    return raw


def service_rate(
    settings: Settings, kind: str, sample: list[str], batch: int, *, evidence: bool = True
) -> float:
    """Return events/s of BiasScoringService.handle_batch alone (no Kafka, no Faust).

    `evidence=False` turns off the quality scorer's occlusion evidence (its extra model
    passes), to show what evidence costs; the fast model's evidence is part of its run.
    """
    from fairstream.bootstrap import build_bias_service

    scorer: Any = build_scorer(settings, kind)
    if not evidence:
        scorer.explain = False
    service = build_bias_service(settings, scorer)
    raw = _messages(sample)
    batches = [raw[i : i + batch] for i in range(0, len(raw), batch)]
    service.handle_batch(batches[0])  # warm-up
    started = time.perf_counter()
    for chunk in batches:
        service.handle_batch(chunk)
    return len(raw) / (time.perf_counter() - started)


def service_breakdown(
    settings: Settings, kind: str, sample: list[str], batch: int
) -> dict[str, float]:
    """Return CPU microseconds per event of each step of the service (no Kafka, no Faust).

    CPU time, not wall time, so that other work on a shared machine moves it less:
    thread CPU for the Python steps, process CPU (every onnxruntime thread) for the model.
    """
    from fairstream.bootstrap import build_bias_service
    from processors.bias.scoring import StagedScorer

    service = build_bias_service(settings, build_scorer(settings, kind))
    raw = _messages(sample[:BREAKDOWN_EVENTS])
    batches = [raw[i : i + batch] for i in range(0, len(raw), batch)]
    service.handle_batch(batches[0])  # warm-up
    spent = dict.fromkeys(("begin", "model", "finish", "prepare", "assess"), 0.0)
    for chunk in batches:
        t0 = time.thread_time()
        scoring = service.begin(chunk)
        t1 = time.thread_time()
        p0 = time.process_time()
        service.run_model(scoring)
        p1 = time.process_time()
        t2 = time.thread_time()
        service.finish(scoring)
        t3 = time.thread_time()
        spent["begin"] += t1 - t0
        spent["model"] += p1 - p0
        spent["finish"] += t3 - t2
        scorer = service.scorer
        if isinstance(scorer, StagedScorer):
            texts = [str(e.payload["text"]) for e in scoring.events]
            t4 = time.thread_time()
            prepared = scorer.prepare(texts)
            t5 = time.thread_time()
            scorer.run_model(prepared)
            t6 = time.thread_time()
            scorer.assess(prepared)
            t7 = time.thread_time()
            spent["prepare"] += t5 - t4
            spent["assess"] += t7 - t6
    per = {k: v * 1e6 / len(raw) for k, v in spent.items()}
    return {
        "decode": per["begin"] - per["prepare"],
        "inspect_and_window": per["prepare"],
        "model_cpu_all_threads": per["model"],
        "evidence_and_assessment": per["assess"],
        "build_and_encode": per["finish"] - per["assess"],
    }


def _env(settings: Settings, kind: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FAIRSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        FAIRSTREAM_TOPIC_PREFIX=settings.topic_prefix,
        FAIRSTREAM_BIAS_PROCESSOR_GROUP=settings.bias_processor_group,
        FAIRSTREAM_BIAS_MODEL=kind,
        FAIRSTREAM_BIAS_BATCH_MAX=str(settings.bias_batch_max),
        FAIRSTREAM_BIAS_BATCH_WAIT_MS=str(settings.bias_batch_wait_ms),
    )
    if settings.bias_intra_op_threads is not None:
        env["FAIRSTREAM_BIAS_INTRA_OP_THREADS"] = str(settings.bias_intra_op_threads)
    return env


class Worker:
    """Run `fairstream processor bias` (or another worker command) as a subprocess."""

    def __init__(
        self, settings: Settings, kind: str, log: Path, argv: list[str] | None = None
    ) -> None:
        self._argv = argv or [FS, "processor", "bias"]
        self._env = _env(settings, kind)
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                self._argv, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )

    def cpu_seconds(self) -> float:
        """Return the CPU time (user + system, every thread) the worker has used so far."""
        if self._proc is None:
            return 0.0
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class Outputs:
    """Read BiasScored (or `topic`) records from a given offset on, with their timestamps."""

    def __init__(self, settings: Settings, topic: str | None = None, decode: bool = True) -> None:
        self.topic = topic or topic_name("BiasScored", settings.topic_prefix)
        self._decode = decode
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                **librdkafka_security(settings),
                "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
            }
        )
        meta = self._consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        self._partitions = sorted(meta.partitions)
        self.codec = EventCodec()

    def end_offsets(self) -> dict[int, int]:
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in self._partitions
        }

    def read(self, start: dict[int, int], count: int, timeout: float) -> list[tuple[float, Any]]:
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in start.items()])
        got: list[tuple[float, Any]] = []
        deadline = time.monotonic() + timeout
        raw: list[tuple[float, Any, Any]] = []
        while len(raw) < count and time.monotonic() < deadline:
            for msg in self._consumer.consume(500, timeout=0.5):
                if msg.error() is None:
                    raw.append((msg.timestamp()[1] / 1000.0, msg.value(), msg.headers()))
        # Decode after reading: on a 2-core machine decoding while the worker runs
        # would take CPU from the processor being measured.
        for ts, value, headers in raw:
            got.append((ts, self.codec.decode(value, headers) if self._decode else value))
        return got

    def close(self) -> None:
        self._consumer.close()


def _content(cid: str, text: str) -> Any:
    from events.jsonform import event_from_json

    return event_from_json("ContentSubmitted", {"content_id": cid, "text": text}, source="bench")


def publish(settings: Settings, sample: list[str], tag: str) -> dict[str, float]:
    """Publish one ContentSubmitted per text; return content id -> publish wall time."""
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    sent: dict[str, float] = {}
    events = []
    for i, text in enumerate(sample):
        cid = f"{tag}-{i}"
        events.append(_content(cid, text))
        sent[cid] = time.time()
    report = publisher.publish_all(events)
    report.raise_for_failures()
    publisher.close()
    return sent


def publish_paced(
    settings: Settings, sample: list[str], rate: float, count: int
) -> dict[str, float]:
    """Publish `count` events at `rate`/s with one producer; return content id -> send time.

    The send time is taken just before the record is handed to the producer, so the
    latency covers produce, broker, processor and the BiasScored append, and not the
    start-up of a producer (the first version of this bench made one per event).
    """
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    sent: dict[str, float] = {}
    begin = time.monotonic()
    try:
        for i in range(count):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cid = f"lat-{i}"
            event = _content(cid, sample[i % len(sample)])
            sent[cid] = time.time()
            publisher.publish_all([event]).raise_for_failures()
    finally:
        publisher.close()
    return sent


def steady_rate(stamps: list[float], take: int) -> float:
    """Return outputs/s after the first take: from its last record's time to the last record.

    A take's outputs share one time, so dividing all N records by first-to-last time
    would divide the records of N/take takes by the time of N/take - 1 of them.
    """
    if len(stamps) <= 2 * take:
        return (len(stamps) - 1) / max(1e-9, stamps[-1] - stamps[0])
    return (len(stamps) - take) / max(1e-9, stamps[-1] - stamps[take - 1])


def backlog_rate(
    settings: Settings, sample: list[str], worker: Worker, outputs: Outputs, what: str
) -> dict[str, Any]:
    """Warm the worker up, stop it, publish a backlog, restart it; return its steady rate.

    Leaves the worker running, so a caller can measure more; stopping it is the caller's.
    """
    worker.start()
    start = outputs.end_offsets()
    publish(settings, sample[:20], f"warm-{what}")
    if len(outputs.read(start, 20, timeout=180)) < 20:
        raise SystemExit(f"the {what} worker did not answer the warm-up events")
    startup_cpu = worker.cpu_seconds()  # start-up, model load and 20 events
    worker.stop()

    start = outputs.end_offsets()
    publish(settings, sample, f"backlog-{what}")
    worker.start()
    started = time.monotonic()
    got = outputs.read(start, len(sample), timeout=600)
    wall = time.monotonic() - started
    if len(got) < len(sample):
        raise SystemExit(f"the {what} worker answered only {len(got)}/{len(sample)}")
    stamps = sorted(ts for ts, _ in got)
    cpu_per_event = (worker.cpu_seconds() - startup_cpu) / max(1, len(sample) - 20)
    return {
        "events": len(sample),
        "events_per_s": steady_rate(stamps, settings.bias_batch_max * ROUNDS_PER_TAKE),
        "wall_including_startup_s": wall,
        "worker_cpu_us_per_event": cpu_per_event * 1e6,
    }


def processor_rate(settings: Settings, kind: str, sample: list[str], log: Path) -> dict[str, Any]:
    """Measure events/s of the worker on a backlog, and latency at a fixed rate."""
    outputs = Outputs(settings)
    worker = Worker(settings, kind, log)
    try:
        result = backlog_rate(settings, sample, worker, outputs, kind)
        # Latency at a fixed moderate rate: publish one event every 1/rate s.
        rate, seconds = 20.0, 10.0
        start = outputs.end_offsets()
        n = int(rate * seconds)
        published = publish_paced(settings, sample, rate, n)
        lat = outputs.read(start, n, timeout=120)
        latencies = sorted(
            (ts - published[str(ev.payload["content_id"])]) * 1000.0
            for ts, ev in lat
            if str(ev.payload["content_id"]) in published
        )
    finally:
        worker.stop()
        outputs.close()
    return {
        **result,
        "latency_rate_per_s": rate,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def floor_rate(settings: Settings, sample: list[str], sink: str, log: Path) -> dict[str, Any]:
    """Measure events/s of the passthrough worker (Faust and Kafka, no scoring) on a backlog."""
    settings = settings.model_copy(
        update={"bias_processor_group": f"{settings.bias_processor_group}-floor"}
    )
    argv = [sys.executable, str(Path(__file__).with_name("faust_passthrough.py")), sink]
    outputs = Outputs(settings, sink, decode=False)
    worker = Worker(settings, "fast", log, argv)
    try:
        return backlog_rate(settings, sample, worker, outputs, "passthrough")
    finally:
        worker.stop()
        outputs.close()


def main() -> int:
    """Run the benchmark for the chosen models and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="fast,quality")
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="onnxruntime threads of the worker's session (default: the setting's, min(2, cores))",
    )
    args = parser.parse_args()

    base = load_settings()
    results: dict[str, Any] = {
        "batch": args.batch,
        "events": args.events,
        "intra_op_threads": args.intra_op_threads or base.bias_intra_op_threads,
        "models": {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for kind in args.models.split(","):
        tag = uuid.uuid4().hex[:8]
        settings = base.model_copy(
            update={
                "topic_prefix": f"bench-{tag}.",
                "bias_processor_group": f"bench-{tag}-bias",
                "bias_batch_max": args.batch,
                "bias_intra_op_threads": args.intra_op_threads or base.bias_intra_op_threads,
            }
        )
        specs = topic_specs(settings.topic_prefix, brokers=1)
        scored = topic_name("BiasScored", settings.topic_prefix)
        sink = next(s for s in specs if s.name == scored)
        specs.append(dataclasses.replace(sink, name=f"{settings.topic_prefix}bench.passthrough"))
        apply_topics(settings.kafka_bootstrap, specs)
        sample = texts(args.events, seed=7)
        try:
            # Raw is measured before and after the processor run (the machine is shared
            # and noisy); the better of the two is the fair upper bound.
            raw_runs = [raw_rate(settings, kind, sample, args.batch)]
            service = service_rate(settings, kind, sample, args.batch)
            bare = (
                service_rate(settings, kind, sample, args.batch, evidence=False)
                if kind == "quality"
                else None
            )
            breakdown = service_breakdown(settings, kind, sample, args.batch)
            proc = processor_rate(settings, kind, sample, RESULTS / f"bias-worker-{kind}.log")
            floor = floor_rate(settings, sample, specs[-1].name, RESULTS / "bias-floor.log")
            raw_runs.append(raw_rate(settings, kind, sample, args.batch))
            raw = max(raw_runs)
        finally:
            admin = AdminClient(
                {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
            )
            admin.delete_topics([s.name for s in specs])
        ratio = proc["events_per_s"] / raw
        results["models"][kind] = {
            "raw_onnxruntime_per_s": raw,
            "raw_onnxruntime_runs_per_s": raw_runs,
            "service_no_kafka_per_s": service,
            "service_no_kafka_no_evidence_per_s": bare,
            "service_cpu_us_per_event": breakdown,
            "processor": proc,
            "ratio": ratio,
            "passthrough_floor": floor,
            "floor_ratio": floor["events_per_s"] / raw,
        }
        print(
            f"{kind:>8}: processor {proc['events_per_s']:9.1f} ev/s | raw onnxruntime "
            f"{raw:9.1f} texts/s | ratio {ratio:5.2f} | latency at {proc['latency_rate_per_s']:.0f}"
            f" ev/s p50 {proc['latency_p50_ms']:.1f} ms p99 {proc['latency_p99_ms']:.1f} ms"
        )
        print(
            f"{'':>8}  breakdown: service alone (decode+inspect+score+evidence+encode, no "
            f"Kafka) {service:9.1f} ev/s"
            + (f" ({bare:.1f} without the occlusion evidence)" if bare else "")
            + f"; raw runs {', '.join(f'{r:.0f}' for r in raw_runs)}"
        )
        steps = ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())
        print(
            f"{'':>8}  CPU us/event: service steps: {steps}; whole worker (Faust, Kafka "
            f"client, service, model) {proc['worker_cpu_us_per_event']:.1f}"
        )
        print(
            f"{'':>8}  floor: Faust passthrough (same options and batches, no scoring) "
            f"{floor['events_per_s']:9.1f} ev/s, {floor['worker_cpu_us_per_event']:.1f} CPU "
            f"us/event; floor / raw {floor['events_per_s'] / raw:5.2f} bounds the ratio"
        )
    out = RESULTS / "bias_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
