"""`fairstream generate`: emit realistic sample traffic, to Kafka or as NDJSON.

Examples:
  fairstream generate --rate 20 --duration 60
  fairstream generate --count 500 --types ContentSubmitted,AnalyticsEventRecorded
  fairstream generate --output - --types ContentSubmitted | fairstream publish ContentSubmitted -

`--types` takes event type names, `source` (default: the types people and agents
produce) or `all` (adds the derived types processors normally compute). Without
`--count` or `--duration` it emits 100 events. Exit codes: 0 everything was
written or delivered, 1 some events were not delivered, 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from events.exceptions import UnknownEventTypeError
from events.model import Event
from fairstream.commands.publish import PublisherFactory, kafka_publisher
from fairstream.settings import Settings
from producers.generator import DEFAULT_SOURCE, TrafficGenerator, parse_types
from producers.ndjson import event_line
from producers.publisher import (
    DEFAULT_FLUSH_TIMEOUT,
    EventPublisher,
    PublishReport,
    check_traceparent,
)

EXIT_OK = 0
EXIT_DELIVERY = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_COUNT = 100
DEFAULT_RATE = 10.0
FLUSH_EVERY_SECONDS = 0.5


def register(subparsers: Any) -> None:
    """Add the `generate` command."""
    parser = subparsers.add_parser(
        "generate",
        help="emit realistic sample events to Kafka or as NDJSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        help="events per second (default: as fast "
        f"as possible with --count, {DEFAULT_RATE:g} with --duration)",
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--count", type=_non_negative_int, help="number of events to emit")
    limit.add_argument("--duration", type=_positive_float, help="seconds to keep emitting")
    parser.add_argument("--types", help="comma-separated event types, `source` (default) or `all`")
    parser.add_argument("--seed", type=int, help="seed for reproducible ids and payloads")
    parser.add_argument(
        "--start",
        type=_timestamp,
        help="pin timestamps: first event at this ISO-8601 time, then 1/rate apart",
    )
    parser.add_argument(
        "--output",
        metavar="FILE|-",
        help="write NDJSON to FILE (or - for stdout) instead of publishing",
    )
    parser.add_argument(
        "--source", default=DEFAULT_SOURCE, help=f"envelope source (default: {DEFAULT_SOURCE})"
    )
    parser.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: FAIRSTREAM_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument(
        "--topic-prefix", help="prefix prepended to topic names (default: FAIRSTREAM_TOPIC_PREFIX)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=200, help="events per delivery round"
    )
    parser.add_argument("--traceparent", help="W3C traceparent header to attach to every message")
    parser.set_defaults(func=run)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(slots=True)
class GenerateSummary:
    """Count what one run emitted, by type, and what the broker confirmed."""

    by_type: Counter[str] = field(default_factory=Counter)
    published: int = 0
    failed: int = 0
    written: int = 0

    @property
    def generated(self) -> int:
        """Return how many events were generated."""
        return sum(self.by_type.values())

    def render(self, *, to_kafka: bool) -> str:
        """Render the counts as one line."""
        types = ", ".join(f"{name} {n}" for name, n in sorted(self.by_type.items()))
        tail = (
            f"published {self.published}, failed {self.failed}"
            if to_kafka
            else f"written {self.written}"
        )
        return f"generated {self.generated} ({types or 'none'}); {tail}"


class _KafkaSink:
    """Buffer events and publish them in rounds, adding up the reports."""

    def __init__(self, publisher: EventPublisher, batch_size: int, traceparent: str | None) -> None:
        self.publisher = publisher
        self.batch_size = batch_size
        self.traceparent = traceparent
        self.buffer: list[Event] = []
        self.report = PublishReport(attempted=0, delivered=0)
        self.last_flush = time.monotonic()

    def add(self, event: Event) -> None:
        self.buffer.append(event)
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS
        if len(self.buffer) >= self.batch_size or due:
            self.drain()

    def drain(self) -> None:
        if self.buffer:
            batch, self.buffer = self.buffer, []
            result = self.publisher.publish_all(batch, traceparent=self.traceparent)
            self.report = self.report.merged(result)
        self.last_flush = time.monotonic()


def run(
    args: argparse.Namespace,
    *,
    publisher_factory: PublisherFactory = kafka_publisher,
    out: TextIO | None = None,
    err: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Generate events at the requested rate and write or publish them."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        types = parse_types(args.types)
    except UnknownEventTypeError as exc:
        print(f"generate: {exc}", file=err)
        return EXIT_USAGE
    if args.traceparent:
        try:
            args.traceparent = check_traceparent(args.traceparent)
        except ValueError as exc:
            print(f"generate: {exc}", file=err)
            return EXIT_USAGE
    rate = args.rate if args.rate is not None else (DEFAULT_RATE if args.duration else None)
    count = args.count if args.count is not None else (None if args.duration else DEFAULT_COUNT)
    generator = TrafficGenerator(
        types=types,
        seed=args.seed,
        source=args.source,
        start=args.start,
        interval=1.0 / rate if rate else 0.001,
    )
    summary = GenerateSummary()
    to_kafka = args.output is None
    sink: _KafkaSink | None = None
    handle: TextIO | None = None
    exit_code = EXIT_OK
    if to_kafka:
        settings = Settings()
        bootstrap = args.bootstrap or settings.kafka_bootstrap
        prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
        publisher = publisher_factory(bootstrap, prefix, DEFAULT_FLUSH_TIMEOUT)
        sink = _KafkaSink(publisher, args.batch_size, args.traceparent)
    elif args.output == "-":
        handle = out
    else:
        handle = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    if handle is not None and len(types) > 1:
        print(
            "generate: writing several event types to one stream; "
            "`fairstream publish` takes one type per input",
            file=err,
        )
    started = monotonic()
    deadline = started + args.duration if args.duration else None
    try:
        for index, event in enumerate(generator.events(count)):
            if rate:
                delay = started + index / rate - monotonic()
                if delay > 0:
                    sleep(delay)
            if deadline is not None and monotonic() >= deadline:
                break
            summary.by_type[event.type] += 1
            if sink is not None:
                sink.add(event)
            else:
                assert handle is not None
                handle.write(event_line(event) + "\n")
                summary.written += 1
        if sink is not None:
            sink.drain()
    except KeyboardInterrupt:
        exit_code = EXIT_INTERRUPTED
        if sink is not None:
            sink.drain()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly like other Unix tools.
        _silence_stdout()
        return EXIT_OK
    finally:
        if handle is not None and handle is not out:
            handle.close()
        elif handle is not None:
            try:
                handle.flush()
            except BrokenPipeError:
                _silence_stdout()
        if sink is not None:
            close = getattr(sink.publisher, "close", None)
            if callable(close):
                close()
    if sink is not None:
        summary.published = sink.report.delivered
        summary.failed = len(sink.report.failures)
        for failure in sink.report.failures[:20]:
            print(f"failed: {failure.event_type} {failure.event_id}: {failure.error}", file=err)
        if sink.report.failures and exit_code == EXIT_OK:
            exit_code = EXIT_DELIVERY
    print(summary.render(to_kafka=to_kafka), file=err)
    return exit_code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
