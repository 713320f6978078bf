"""`fairstream schemas`: list, check, lock and register the event schemas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from events.catalog import CATALOG, topic_name
from events.compatibility import check_backward_transitive
from events.consistency import (
    LOCK_FILE,
    check_catalog,
    check_examples,
    check_lock,
    named_type_conflicts,
    read_lock,
    update_lock,
)
from events.exceptions import EventsError
from events.registry import ConfluentSchemaRegistry, value_subject
from events.store import SchemaStore


def register(subparsers: Any) -> None:
    """Add the `schemas` command and its actions."""
    parser = subparsers.add_parser(
        "schemas", help="list, check, lock and register the Avro event schemas"
    )
    actions = parser.add_subparsers(dest="schemas_action", metavar="ACTION", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=None, help="schema root (default: events/schemas)"
    )

    listing = actions.add_parser(
        "list", parents=[common], help="show event types, versions, fingerprints and topics"
    )
    listing.add_argument("--prefix", default=None, help="topic prefix (default: settings)")
    listing.set_defaults(func=run_list)

    check = actions.add_parser(
        "check",
        parents=[common],
        help="check BACKWARD_TRANSITIVE compatibility, catalog, examples and the lock",
    )
    check.add_argument("--lock", type=Path, default=None, help="fingerprint lock file")
    check.set_defaults(func=run_check)

    lock = actions.add_parser(
        "lock", parents=[common], help="record the fingerprints of new schema versions"
    )
    lock.add_argument("--lock", type=Path, default=None, help="fingerprint lock file")
    lock.set_defaults(func=run_lock)

    reg = actions.add_parser(
        "register",
        parents=[common],
        help="register every version in a Confluent schema registry (subject <topic>-value)",
    )
    reg.add_argument("--url", default=None, help="registry URL (default: settings)")
    reg.add_argument("--prefix", default=None, help="topic prefix (default: settings)")
    reg.add_argument(
        "--compatibility",
        default="BACKWARD_TRANSITIVE",
        help="compatibility level to set per subject ('' to leave it alone)",
    )
    reg.set_defaults(func=run_register)


def _load_store(args: argparse.Namespace, out: TextIO) -> SchemaStore | None:
    try:
        return SchemaStore(args.dir) if args.dir else SchemaStore.default()
    except EventsError as exc:
        print(f"error: {exc}", file=out)
        return None


def _settings_value(name: str) -> Any:
    from fairstream.settings import load_settings

    return getattr(load_settings(), name)


def run_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print every event type with its versions, fingerprints and topic."""
    out = out or sys.stdout
    store = _load_store(args, out)
    if store is None:
        return 1
    prefix = args.prefix if args.prefix is not None else _settings_value("topic_prefix")
    rows = [("event type", "version", "fingerprint", "topic", "subject field")]
    for sv in store:
        entry = CATALOG.get(sv.event_type)
        latest = store.latest(sv.event_type) is sv
        rows.append(
            (
                sv.event_type,
                f"v{sv.version}" + (" (latest)" if latest else ""),
                sv.fingerprint_hex,
                topic_name(sv.event_type, prefix) if entry else "-",
                entry.subject_field if entry else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )
    return 0


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Check compatibility, catalog, shared types, examples and the lock; 1 on a failure."""
    out = out or sys.stdout
    store = _load_store(args, out)
    if store is None:
        return 1
    failures = 0
    versions = sum(len(store.versions(t)) for t in store.event_types)
    print(
        f"schemas: {len(store.event_types)} event types, {versions} versions in {store.root}",
        file=out,
    )

    print("compatibility (BACKWARD_TRANSITIVE: latest reads every earlier version):", file=out)
    pairs = {t: [p for p in check_backward_transitive(store, [t])] for t in store.event_types}
    for event_type, checked in pairs.items():
        if not checked:
            print(f"  {event_type}: v1 only, nothing to check", file=out)
        for pair in checked:
            status = "ok" if not pair.problems else "INCOMPATIBLE"
            print(
                f"  {event_type}: v{pair.reader_version} reads v{pair.writer_version}: {status}",
                file=out,
            )
            for problem in pair.problems:
                failures += 1
                print(f"    - {problem}", file=out)

    failures += _report(out, "catalog", check_catalog(store), f"{len(CATALOG)} types match")
    failures += _report(
        out, "shared named types", named_type_conflicts(store), "consistent across types"
    )
    if args.dir is None:
        failures += _report(out, "examples", check_examples(store), "every example encodes")

    lock_path = args.lock or (store.root / LOCK_FILE.name)
    report = check_lock(store, read_lock(lock_path))
    failures += _report(
        out,
        "fingerprint lock",
        report.changed + report.removed,
        f"{report.locked} released versions unchanged",
    )
    if report.unlocked:
        print(
            f"  note: not yet locked: {', '.join(report.unlocked)} "
            "(run `fairstream schemas lock` when releasing them)",
            file=out,
        )
    print("FAILED" if failures else "OK", file=out)
    return 1 if failures else 0


def _report(out: TextIO, title: str, problems: list[str], ok_text: str) -> int:
    if not problems:
        print(f"{title}: {ok_text}", file=out)
        return 0
    print(f"{title}:", file=out)
    for problem in problems:
        print(f"  - {problem}", file=out)
    return len(problems)


def run_lock(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Record the fingerprints of schema versions not yet in the lock."""
    out = out or sys.stdout
    store = _load_store(args, out)
    if store is None:
        return 1
    lock_path = args.lock or (store.root / LOCK_FILE.name)
    report = check_lock(store, read_lock(lock_path))
    if not report.ok:
        for problem in report.changed + report.removed:
            print(f"error: {problem}", file=out)
        return 1
    added = update_lock(store, lock_path)
    print(
        f"locked {len(added)} new version(s) in {lock_path}"
        + (": " + ", ".join(added) if added else ""),
        file=out,
    )
    return 0


def run_register(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Register every schema version, oldest first, under each topic's value subject."""
    out = out or sys.stdout
    store = _load_store(args, out)
    if store is None:
        return 1
    url = args.url or _settings_value("schema_registry_url")
    if not url:
        print("error: no registry URL (--url or FAIRSTREAM_SCHEMA_REGISTRY_URL)", file=out)
        return 1
    prefix = args.prefix if args.prefix is not None else _settings_value("topic_prefix")
    with ConfluentSchemaRegistry(url) as registry:
        try:
            for event_type in store.event_types:
                subject = value_subject(topic_name(event_type, prefix))
                if args.compatibility:
                    registry.set_compatibility(subject, args.compatibility)
                for sv in store.versions(event_type):
                    schema_id = registry.register(subject, sv.schema_json)
                    print(f"{subject}: {sv.label} -> id {schema_id}", file=out)
        except EventsError as exc:
            print(f"error: {exc}", file=out)
            return 1
    return 0
