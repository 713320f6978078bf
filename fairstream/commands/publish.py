"""`fairstream publish <EventType> FILE|-`: validate NDJSON, then publish it to Kafka.

Every line is validated before anything is sent. Exit codes: 0 everything valid
was delivered (with `--skip-invalid`, invalid lines are reported but do not fail
the run), 1 some events were not confirmed by the broker, 2 bad usage or invalid
lines without `--skip-invalid` (then nothing was published).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from events.catalog import entry
from events.codec import EventCodec
from fairstream.settings import Settings
from producers.ndjson import NdjsonBatch, iter_lines, parse_ndjson
from producers.publisher import (
    DEFAULT_FLUSH_TIMEOUT,
    EventPublisher,
    KafkaEventPublisher,
    PublishFailure,
    PublishReport,
    check_traceparent,
)

EXIT_OK = 0
EXIT_DELIVERY = 1
EXIT_INVALID = 2
DEFAULT_SOURCE = "fairstream-cli"
LONG_INPUT = 1000
MAX_REPORTED = 50

PublisherFactory = Callable[[str, str, float], EventPublisher]


def register(subparsers: Any) -> None:
    """Add the `publish` command."""
    parser = subparsers.add_parser(
        "publish",
        help="validate NDJSON events and publish them to their topic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("event_type", metavar="EventType", help="event type, e.g. ContentSubmitted")
    parser.add_argument("file", metavar="FILE|-", help="NDJSON file, or - for standard input")
    parser.add_argument(
        "--source", default=DEFAULT_SOURCE, help=f"envelope source (default: {DEFAULT_SOURCE})"
    )
    parser.add_argument("--correlation-id", help="correlation id for events that carry none")
    parser.add_argument("--traceparent", help="W3C traceparent header to attach to every message")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="publish the valid lines even if some are invalid (invalid ones are reported)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and report only; publish nothing"
    )
    parser.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: FAIRSTREAM_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument(
        "--topic-prefix", help="prefix prepended to topic names (default: FAIRSTREAM_TOPIC_PREFIX)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=500, help="events per delivery round"
    )
    parser.add_argument(
        "--flush-timeout",
        type=float,
        default=DEFAULT_FLUSH_TIMEOUT,
        help="seconds to wait for the broker to confirm a batch",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.set_defaults(func=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def kafka_publisher(bootstrap: str, topic_prefix: str, flush_timeout: float) -> EventPublisher:
    """Build the Kafka adapter the command uses outside tests."""
    return KafkaEventPublisher(
        bootstrap,
        topic_prefix=topic_prefix,
        flush_timeout=flush_timeout,
        client_id="fairstream-cli-publish",
    )


@dataclass(frozen=True, slots=True)
class PublishSummary:
    """Count what one publish run read, accepted, rejected and delivered."""

    read: int
    valid: int
    invalid: int
    published: int
    failed: int

    def render(self) -> str:
        """Render the counts as one line."""
        return (
            f"read {self.read}, valid {self.valid}, invalid {self.invalid}, "
            f"published {self.published}, failed {self.failed}"
        )


def run(
    args: argparse.Namespace,
    *,
    publisher_factory: PublisherFactory = kafka_publisher,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Read, validate and publish; return the exit code."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        entry(args.event_type)
    except LookupError as exc:
        print(f"publish: {exc}", file=err)
        return EXIT_INVALID
    traceparent = None
    if args.traceparent:
        try:
            traceparent = check_traceparent(args.traceparent)
        except ValueError as exc:
            print(f"publish: {exc}", file=err)
            return EXIT_INVALID
    try:
        batch = _read(args, stdin)
    except OSError as exc:
        print(f"publish: cannot read {args.file}: {exc}", file=err)
        return EXIT_INVALID

    _report_errors(batch, err)
    if batch.errors and not args.skip_invalid:
        summary = PublishSummary(batch.read, batch.valid, batch.invalid, 0, 0)
        print(f"{summary.render()}", file=out)
        print(
            f"publish: {batch.invalid} invalid line(s); nothing was published "
            "(fix them or pass --skip-invalid)",
            file=err,
        )
        return EXIT_INVALID
    if args.dry_run or not batch.events:
        summary = PublishSummary(batch.read, batch.valid, batch.invalid, 0, 0)
        note = " (dry run)" if args.dry_run else ""
        print(f"{summary.render()}{note}", file=out)
        return EXIT_OK

    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    publisher = publisher_factory(bootstrap, prefix, args.flush_timeout)
    try:
        report = _publish(batch, publisher, args, traceparent, err)
    finally:
        close = getattr(publisher, "close", None)
        if callable(close):
            close()

    _report_failures(batch, report.failures, err)
    summary = PublishSummary(
        batch.read, batch.valid, batch.invalid, report.delivered, len(report.failures)
    )
    print(summary.render(), file=out)
    return EXIT_OK if report.ok else EXIT_DELIVERY


def _read(args: argparse.Namespace, stdin: TextIO) -> NdjsonBatch:
    def parse(stream: TextIO) -> NdjsonBatch:
        return parse_ndjson(
            iter_lines(stream),
            args.event_type,
            source=args.source,
            codec=EventCodec(),
            correlation_id=args.correlation_id,
        )

    if args.file == "-":
        return parse(stdin)
    with Path(args.file).open(encoding="utf-8") as handle:
        return parse(handle)


def _report_errors(batch: NdjsonBatch, err: TextIO) -> None:
    for error in batch.errors[:MAX_REPORTED]:
        print(f"invalid: {error.describe()}", file=err)
    if batch.invalid > MAX_REPORTED:
        print(f"invalid: ... and {batch.invalid - MAX_REPORTED} more", file=err)


def _report_failures(batch: NdjsonBatch, failures: Sequence[PublishFailure], err: TextIO) -> None:
    for failure in failures[:MAX_REPORTED]:
        line = batch.events[failure.index].line
        print(f"failed: line {line}: event {failure.event_id}: {failure.error}", file=err)
    if len(failures) > MAX_REPORTED:
        print(f"failed: ... and {len(failures) - MAX_REPORTED} more", file=err)


def _show_progress(total: int, err: TextIO, disabled: bool) -> bool:
    if disabled:
        return False
    isatty = getattr(err, "isatty", None)
    return bool(callable(isatty) and isatty()) or total >= LONG_INPUT


def _publish(
    batch: NdjsonBatch,
    publisher: EventPublisher,
    args: argparse.Namespace,
    traceparent: str | None,
    err: TextIO,
) -> PublishReport:
    events = [parsed.event for parsed in batch.events]
    report = PublishReport(attempted=0, delivered=0)
    with tqdm(
        total=len(events),
        unit="ev",
        desc=f"publish {args.event_type}",
        file=err,
        disable=not _show_progress(len(events), err, args.no_progress),
    ) as bar:
        for start in range(0, len(events), args.batch_size):
            chunk = events[start : start + args.batch_size]
            report = report.merged(publisher.publish_all(chunk, traceparent=traceparent))
            bar.update(len(chunk))
    return report
