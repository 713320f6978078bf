"""`fairstream topics apply|list`: reconcile Kafka with the topic catalog in `events.topics`.

Exit codes: 0 done (drift, if any, is reported), 1 an error (Kafka unreachable,
a create/alter failed), 3 with `--strict` only: drift left in place (report
only, needs `--fix-config` / `--grow-partitions`, or cannot be fixed safely).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from events.topics import TopicSpec, prefixed, select_topics
from fairstream.settings import Settings
from producers.topic_admin import (
    ApplyOutcome,
    KafkaTopicAdmin,
    TopicAdminError,
    TopicPlan,
    TopicStatus,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DRIFT = 3


def register(subparsers: Any) -> None:
    """Add the `topics` command with its `apply` and `list` subcommands."""
    parser = subparsers.add_parser("topics", help="create and check Kafka topics (topics as code)")
    sub = parser.add_subparsers(dest="topics_command", metavar="ACTION", required=True)

    apply = sub.add_parser(
        "apply", help="create missing topics and report drift; never deletes anything"
    )
    _add_connection_options(apply)
    apply.add_argument(
        "--dry-run", action="store_true", help="show what would change without changing it"
    )
    apply.add_argument(
        "--fix-config",
        action="store_true",
        help="alter drifted configs that are safe to alter (retention.ms, min.insync.replicas)",
    )
    apply.add_argument(
        "--grow-partitions",
        action="store_true",
        help="add partitions where a topic has fewer than its spec (remaps keys!)",
    )
    apply.add_argument("--strict", action="store_true", help="exit 3 when drift is left in place")
    apply.set_defaults(func=run_apply)

    listing = sub.add_parser("list", help="show the catalog's specs next to the cluster state")
    _add_connection_options(listing)
    listing.add_argument(
        "--specs-only", action="store_true", help="print the specs without contacting Kafka"
    )
    listing.set_defaults(func=run_list)


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: FAIRSTREAM_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument(
        "--topic-prefix",
        help="prefix prepended to every topic name (default: FAIRSTREAM_TOPIC_PREFIX)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        metavar="NAME",
        help="restrict to this unprefixed topic (repeatable; default: all)",
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="admin request timeout in seconds"
    )


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    return bootstrap, prefix


def _specs(args: argparse.Namespace, err: TextIO) -> tuple[TopicSpec, ...] | None:
    try:
        return select_topics(args.topics)
    except KeyError as exc:
        print(f"topics: unknown topic {exc.args[0]!r} (see `fairstream topics list`)", file=err)
        return None


def run_apply(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Plan the catalog against the cluster and, unless --dry-run, carry the plan out."""
    out = out or sys.stdout
    err = err or sys.stderr
    specs = _specs(args, err)
    if specs is None:
        return EXIT_ERROR
    bootstrap, prefix = _connection(args)
    admin = KafkaTopicAdmin(bootstrap, timeout=args.timeout)
    try:
        plans = admin.plan(
            specs, prefix=prefix, fix_config=args.fix_config, grow_partitions=args.grow_partitions
        )
    except TopicAdminError as exc:
        print(f"topics apply: {exc} (bootstrap {bootstrap})", file=err)
        return EXIT_ERROR
    brokers = plans[0].brokers if plans else 0
    mode = " (dry run)" if args.dry_run else ""
    print(
        f"topics apply{mode}: bootstrap {bootstrap}, prefix {prefix!r}, {brokers} broker(s)",
        file=out,
    )
    if args.dry_run:
        outcomes = [ApplyOutcome(plan=p) for p in plans]
    else:
        outcomes = admin.apply([p for p in plans if p.has_changes])
        created = [o.plan.topic for o in outcomes if o.plan.create and not o.error]
        if created and not admin.wait_ready(created):
            print("topics apply: warning: some new topics have no partition leader yet", file=err)
        done = {o.plan.topic: o for o in outcomes}
        outcomes = [done.get(p.topic, ApplyOutcome(plan=p)) for p in plans]
    for outcome in outcomes:
        _print_outcome(outcome, dry_run=args.dry_run, out=out)
    return _summarise(outcomes, dry_run=args.dry_run, strict=args.strict, out=out)


def _print_outcome(outcome: ApplyOutcome, *, dry_run: bool, out: TextIO) -> None:
    plan = outcome.plan
    spec = plan.spec
    if plan.create:
        detail = (
            f"partitions={spec.partitions} replication.factor={spec.replicas_for(plan.brokers)} "
            + " ".join(f"{k}={v}" for k, v in spec.configs_for(plan.brokers).items())
        )
        verb = "would create" if dry_run else "create"
        print(f"{verb:<13} {plan.topic}  {detail}", file=out)
    elif plan.status is TopicStatus.OK:
        print(f"{'ok':<13} {plan.topic}", file=out)
    else:
        for drift in plan.drifts:
            print(f"{'drift':<13} {plan.topic}  {drift.describe()}", file=out)
        if dry_run and plan.config_changes:
            changes = ", ".join(f"{k}={v}" for k, v in plan.config_changes.items())
            print(f"{'would alter':<13} {plan.topic}  {changes}", file=out)
        if dry_run and plan.new_partitions is not None:
            print(f"{'would grow':<13} {plan.topic}  partitions={plan.new_partitions}", file=out)
    if not plan.create:
        for action in outcome.actions:
            print(f"{'fixed':<13} {plan.topic}  {action}", file=out)
    if outcome.error:
        print(f"{'ERROR':<13} {plan.topic}  {outcome.error}", file=out)


def _summarise(
    outcomes: Sequence[ApplyOutcome], *, dry_run: bool, strict: bool, out: TextIO
) -> int:
    created = sum(1 for o in outcomes if o.plan.create and (dry_run or o.actions))
    ok = sum(1 for o in outcomes if o.plan.status is TopicStatus.OK)
    drifted = [o for o in outcomes if o.plan.status is TopicStatus.DRIFT]
    unresolved = sum(len(o.plan.unresolved) for o in drifted)
    if dry_run:
        unresolved = sum(len(o.plan.drifts) for o in drifted)
    errors = sum(1 for o in outcomes if o.error)
    verb = "to create" if dry_run else "created"
    print(
        f"summary: {len(outcomes)} topics: {created} {verb}, {ok} ok, {len(drifted)} drifted "
        f"({unresolved} unresolved difference(s)), {errors} error(s)",
        file=out,
    )
    if errors:
        return EXIT_ERROR
    if unresolved and strict:
        return EXIT_DRIFT
    return EXIT_OK


def run_list(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print every spec next to what the cluster has for it."""
    out = out or sys.stdout
    err = err or sys.stderr
    specs = _specs(args, err)
    if specs is None:
        return EXIT_ERROR
    bootstrap, prefix = _connection(args)
    if args.specs_only:
        _print_specs(specs, prefix, out)
        return EXIT_OK
    try:
        plans = KafkaTopicAdmin(bootstrap, timeout=args.timeout).plan(specs, prefix=prefix)
    except TopicAdminError as exc:
        print(f"topics list: {exc} (bootstrap {bootstrap})", file=err)
        return EXIT_ERROR
    _print_table(plans, out)
    return EXIT_OK


def _print_specs(specs: Sequence[TopicSpec], prefix: str, out: TextIO) -> None:
    rows = [("TOPIC", "PARTITIONS", "RF", "RETENTION", "CLEANUP", "MIN.ISR", "DLQ")]
    for spec in specs:
        rows.append(
            (
                prefixed(prefix, spec.name),
                str(spec.partitions),
                "auto" if spec.replication_factor is None else str(spec.replication_factor),
                _days(str(spec.retention_ms)) or "",
                spec.cleanup_policy,
                str(spec.min_insync_replicas),
                spec.dead_letter_topic or "-",
            )
        )
    _print_rows(rows, out)


def _print_table(plans: Sequence[TopicPlan], out: TextIO) -> None:
    rows = [("TOPIC", "STATUS", "PARTITIONS", "RF", "RETENTION", "CLEANUP", "MIN.ISR")]
    for plan in plans:
        spec, actual = plan.spec, plan.actual
        want = spec.configs_for(plan.brokers)
        have = actual.configs if actual else {}

        def pair(expected: str, found: str | None) -> str:
            if found is None:
                return f"{expected}/-"
            return expected if expected == found else f"{expected}/{found}"

        rows.append(
            (
                plan.topic,
                plan.status.value,
                pair(str(spec.partitions), str(actual.partitions) if actual else None),
                pair(
                    str(spec.replicas_for(plan.brokers)),
                    str(actual.replication_factor) if actual else None,
                ),
                pair(_days(want["retention.ms"]) or "", _days(have.get("retention.ms"))),
                pair(want["cleanup.policy"], have.get("cleanup.policy")),
                pair(want["min.insync.replicas"], have.get("min.insync.replicas")),
            )
        )
    _print_rows(rows, out)
    print("values are spec/actual where they differ; '-' means the topic is missing", file=out)


def _days(retention_ms: str | None) -> str | None:
    if retention_ms is None:
        return None
    value = int(retention_ms)
    if value == -1:
        return "forever"
    day = 24 * 60 * 60 * 1000
    return f"{value // day}d" if value % day == 0 else f"{value}ms"


def _print_rows(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)), file=out
        )
