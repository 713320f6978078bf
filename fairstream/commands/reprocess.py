"""`fairstream reprocess bias`: re-score past content with another model version (dry run first)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from fairstream.settings import load_settings
from operations.replay.progress import PartitionBars


def register(subparsers: Any) -> None:
    """Add the `reprocess` subcommand."""
    parser = subparsers.add_parser(
        "reprocess",
        help="re-score past ContentSubmitted with another bias model (dry run by default)",
        description=__doc__,
    )
    parser.add_argument("processor", choices=["bias"], help="the processor to run again")
    parser.add_argument("--model", required=True, choices=["fast", "quality"], help="scorer")
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
        help="ISO-8601 time | topic:partition:offset,... (default: the end of the topic now)",
    )
    parser.add_argument(
        "--rate", type=float, default=500.0, help="events/s used for the estimate (default 500)"
    )
    parser.add_argument("--execute", action="store_true", help="score and produce BiasScored")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the reprocess command."""
    from operations.replay.exceptions import ReplayError
    from operations.replay.plan import render_plan
    from operations.replay.reprocess import execute_reprocess, plan_reprocess

    settings = load_settings()
    try:
        plan = plan_reprocess(settings, args.start, args.end, rate_per_second=args.rate)
        print(render_plan(plan))
        if not args.execute:
            print(f"dry run: nothing changed (add --execute to score with the {args.model} model)")
            return 0
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        bars = PartitionBars(enabled=not args.no_progress)
        try:
            report = execute_reprocess(
                settings,
                args.model,
                plan,
                stop=stop,
                on_start=bars.start,
                on_progress=bars.advance,
            )
        finally:
            bars.close()
    except ReplayError as exc:
        print(f"fairstream reprocess: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.finished else 1
