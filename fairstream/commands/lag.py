"""`fairstream lag`: every consumer group's lag (offsets and seconds) and status, as a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from fairstream.settings import load_settings

CLEAR = "\x1b[H\x1b[2J"


def _seconds(value: float | None) -> str:
    if value is None:
        return "inf"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _catch_up(lag: int, rate: float | None, eta: float | None) -> str:
    if lag == 0:
        return "-"
    return "?" if rate is None else _seconds(eta)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in lines
    )


def render_groups(snapshot: Any) -> str:
    """Render one row per group, worst time lag first."""
    rows = [
        [
            g.status.name,
            g.group,
            _seconds(g.max_lag_seconds),
            str(g.max_lag),
            str(g.total_lag),
            _rate(g.consume_rate),
            _catch_up(g.total_lag, g.consume_rate, g.catch_up_seconds),
            f"{g.state}/{g.members}",
        ]
        for g in snapshot.groups
    ]
    header = ["STATUS", "GROUP", "TIME-LAG", "MAX-LAG", "TOTAL-LAG", "RATE/S", "CATCH-UP", "STATE"]
    return _table(header, rows) if rows else "no consumer groups"


def render_partitions(group: Any) -> str:
    """Render one row per partition of a group, like kafka-consumer-groups --describe."""
    rows = [
        [
            group.group,
            p.topic,
            str(p.partition),
            str(p.committed),
            str(p.log_end),
            str(p.lag),
            _seconds(p.lag_seconds),
            _rate(p.consume_rate),
            _catch_up(p.lag, p.consume_rate, p.catch_up_seconds),
            p.status.name,
        ]
        for p in group.partitions
    ]
    header = [
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
        "TIME-LAG", "RATE/S", "CATCH-UP", "STATUS",
    ]  # fmt: skip
    title = f"group {group.group}: {group.status.name} ({group.state}, {group.members} members)"
    return title + "\n" + (_table(header, rows) if rows else "no committed offsets")


async def _run(args: argparse.Namespace) -> int:
    from operations.lag.collector import KafkaLagCollector
    from operations.lag.monitor import LagConfig, LagMonitor

    config = LagConfig.from_settings(load_settings())
    interval = args.interval or config.interval_seconds
    monitor = LagMonitor(config, collector=KafkaLagCollector(config.bootstrap))
    try:
        while True:
            started = time.monotonic()
            snapshot = await monitor.collect_once()
            code = _print(args, snapshot, interval)
            if not args.watch:
                return code
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))
    finally:
        await monitor.close()


def _print(args: argparse.Namespace, snapshot: Any, interval: float) -> int:
    if args.group:
        group = snapshot.group(args.group)
        if group is None:
            print(f"no consumer group {args.group!r}", file=sys.stderr)
            return 1
        body: dict[str, Any] = group.to_json(with_partitions=True)
        text = render_partitions(group)
    else:
        body = {
            "collected_at": snapshot.collected_at,
            "groups": [g.to_json(with_partitions=False) for g in snapshot.groups],
        }
        text = render_groups(snapshot)
    if args.json:
        print(json.dumps(body, indent=None if args.watch else 2), flush=True)
        return 0
    if args.watch:
        print(CLEAR, end="")
        stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.collected_at))
        print(f"{stamp}  every {interval:g}s  (Ctrl-C to stop)")
    else:
        print("statuses need a window of samples: use --watch to see WARN/STOP/STALL develop")
    print(text, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Collect the lag once (or every interval with --watch) and print it."""
    return asyncio.run(_run(args))


def register(subparsers: Any) -> None:
    """Add `lag`."""
    parser = subparsers.add_parser(
        "lag", help="consumer-group lag in offsets and seconds, with Burrow-style status"
    )
    parser.add_argument("--watch", action="store_true", help="refresh every interval")
    parser.add_argument("--group", help="show this group's partitions")
    parser.add_argument("--json", action="store_true", help="print JSON (NDJSON with --watch)")
    parser.add_argument(
        "--interval",
        type=float,
        help="seconds between collections (FAIRSTREAM_LAG_INTERVAL_SECONDS)",
    )
    parser.set_defaults(func=run)
