"""`fairstream replay`: plan (dry run) or rebuild a read model blue/green.

PostgreSQL projections are rebuilt into a new schema; document projections (campaigns,
opportunities, agent-tasks) on the MongoDB document store into a new MongoDB database.

`fairstream replay offsets <group> --topic T --to-...` resets a consumer group's offsets
instead (kafka-consumer-groups --reset-offsets semantics, dry run by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from fairstream.settings import load_settings
from operations.replay.progress import PartitionBars


def register(subparsers: Any) -> None:
    """Add the `replay` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="rebuild a projection's read model from the event log (dry run by default)",
        description=__doc__,
    )
    parser.add_argument(
        "projection", help="projection name, e.g. bias-daily, or `offsets` to reset a group"
    )
    parser.add_argument("group", nargs="?", help="with `offsets`: the consumer group")
    parser.add_argument(
        "--from",
        dest="start",
        default="earliest",
        help="earliest | ISO-8601 time | topic:partition:offset,... (default: earliest)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        default=None,
        help="ISO-8601 time | topic:partition:offset,... (default: the live version's positions)",
    )
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="events/s used for the estimate (default 2000)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--execute", action="store_true", help="rebuild and switch")
    action.add_argument("--resume", action="store_true", help="continue an interrupted rebuild")
    action.add_argument("--drop-old", action="store_true", help="drop the previous version")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    offsets = parser.add_argument_group("offsets <group> (kafka-consumer-groups --reset-offsets)")
    offsets.add_argument("--topic", action="append", default=[], help="topic (repeatable)")
    offsets.add_argument("--to-earliest", action="store_true", help="reset to the log start")
    offsets.add_argument("--to-latest", action="store_true", help="reset to the log end")
    offsets.add_argument("--to-datetime", metavar="ISO", help="first record at or after a time")
    offsets.add_argument("--to-offset", type=int, metavar="N", help="reset to offset N")
    offsets.add_argument("--shift-by", type=int, metavar="N", help="move the committed offset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the replay command."""
    from operations.replay.exceptions import ReplayError

    try:
        if args.projection == "offsets":
            return _reset_offsets(args)
        return asyncio.run(_run(args))
    except ReplayError as exc:
        print(f"fairstream replay: {exc}", file=sys.stderr)
        return 2


def _reset_offsets(args: argparse.Namespace) -> int:
    from operations.replay.exceptions import PlanError
    from operations.replay.groups import KafkaGroupOffsets, parse_spec, render_reset

    if not args.group or not args.topic:
        raise PlanError("usage: fairstream replay offsets <group> --topic T --to-... [--execute]")
    if args.resume or args.drop_old:
        raise PlanError("--resume and --drop-old do not apply to offsets")
    spec = parse_spec(
        to_earliest=args.to_earliest,
        to_latest=args.to_latest,
        to_datetime=args.to_datetime,
        to_offset=args.to_offset,
        shift_by=args.shift_by,
    )
    settings = load_settings()
    groups = KafkaGroupOffsets(settings.kafka_bootstrap)
    changes = groups.plan(args.group, args.topic, spec)
    print(render_reset(args.group, changes))
    if not args.execute:
        members = groups.active_members(args.group)
        if members:
            print(f"note: the group has {len(members)} active member(s); --execute is refused")
        print("dry run: nothing changed (add --execute to reset)")
        return 0
    groups.execute(args.group, changes)
    print(f"reset {len(changes)} partition(s) of group {args.group}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    from operations.replay import rebuild
    from operations.replay.plan import render_plan

    settings = load_settings()
    if args.drop_old:
        print(f"dropped {await rebuild.drop_old(settings, args.projection)}")
        return 0
    plan = None
    if not args.resume:
        plan = await rebuild.plan_replay(
            settings, args.projection, args.start, args.end, rate_per_second=args.rate
        )
        print(render_plan(plan))
        if not args.execute:
            print("dry run: nothing changed (add --execute to rebuild)")
            return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bars = PartitionBars(enabled=not args.no_progress)
    try:
        report = await rebuild.execute_rebuild(
            settings,
            args.projection,
            plan,
            resume=args.resume,
            stop=stop,
            on_start=bars.start,
            on_progress=bars.advance,
        )
    finally:
        bars.close()
    print(report.render())
    if not report.switched:
        print(f"continue with: fairstream replay {args.projection} --resume")
        return 1
    print(
        f"restart the live projection so it writes to the new version:"
        f" fairstream services down && fairstream services up"
        f" (or restart `fairstream projection {args.projection}`)"
    )
    return 0
