"""`fairstream faults`: run the fault scenarios on a stack of their own and check the result."""

from __future__ import annotations

import argparse
import os
import random
import signal
from pathlib import Path
from typing import Any

from fairstream.settings import REPO_ROOT

DEFAULT_STACK_DIR = REPO_ROOT / ".stack-faults" / "stack"
DEFAULT_RESULTS_DIR = REPO_ROOT / ".stack-faults" / "results"


def _scenarios(text: str) -> tuple[str, ...]:
    from operations.faults.plan import SCENARIOS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Run the fault harness; exit 1 when any scenario differs from the reference."""
    from operations.faults.harness import FaultHarness
    from operations.faults.plan import SCENARIOS, FaultPlan
    from operations.faults.stack import DEFAULT_PORTS

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    plan = FaultPlan(
        events=args.events,
        seed=seed,
        rate=args.rate,
        poison_per_topic=args.poison_per_topic,
        kills_per_component=args.kills,
        postgres_outage_seconds=args.postgres_outage,
        scenarios=args.scenarios or SCENARIOS,
        settle_seconds=args.settle,
        settle_timeout_seconds=args.settle_timeout,
        combine=args.combine,
        session_timeout_seconds=args.session_timeout,
    )
    cache = args.cache_dir or (REPO_ROOT / ".stack" / "cache")
    # The fault stack's own ports, unless FAIRSTREAM_STACK_*_PORT / FAIRSTREAM_API_PORT say.
    ports = {name: os.environ.get(name, port) for name, port in DEFAULT_PORTS.items()}
    env = {**ports, "FAIRSTREAM_STACK_CACHE_DIR": str(cache)}
    harness = FaultHarness(
        plan, args.stack_dir.resolve(), env, args.results_dir, report=lambda s: print(s, flush=True)
    )
    # SIGTERM (a CI timeout, kill <pid>) unwinds like Ctrl-C: services and stack are stopped.
    signal.signal(signal.SIGTERM, _terminate)
    summary = harness.run()
    print("faults: " + ("PASS" if summary["ok"] else "FAIL") + f" (seed {seed})", flush=True)
    return 0 if summary["ok"] else 1


def register(subparsers: Any) -> None:
    """Add `faults`."""
    parser = subparsers.add_parser(
        "faults",
        help="inject kills and outages under traffic; compare read models with a reference",
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per pipeline")
    parser.add_argument("--seed", type=int, help="seed of traffic and faults (default: random)")
    parser.add_argument("--rate", type=float, default=400.0, help="events published per second")
    parser.add_argument("--poison-per-topic", type=int, default=4, help="poison per source topic")
    parser.add_argument(
        "--kills", type=int, default=3, help="SIGKILLs per service (kills scenario)"
    )
    parser.add_argument(
        "--postgres-outage", type=float, default=30.0, help="seconds PostgreSQL stays down"
    )
    parser.add_argument("--scenarios", type=_scenarios, help="comma-separated subset")
    parser.add_argument(
        "--combine",
        action="store_true",
        help="run kills, broker-restart and postgres-outage back to back in one pipeline",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="Faust session timeout (s) of the pipelines' processors",
    )
    parser.add_argument("--settle", type=float, default=15.0, help="quiet seconds that end a run")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        help="seconds a pipeline may take to settle (default: 1800 + 0.02 per event)",
    )
    parser.add_argument("--stack-dir", type=Path, default=DEFAULT_STACK_DIR)
    parser.add_argument("--cache-dir", type=Path, help="Kafka jars and FerretDB build to reuse")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.set_defaults(func=run)
