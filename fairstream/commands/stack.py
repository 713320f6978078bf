"""`fairstream stack`: provision and run the local stack without containers."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from fairstream.settings import load_settings
from fairstream.stack.config import COMPONENTS, StackConfig
from fairstream.stack.exceptions import ComponentError, StackError
from fairstream.stack.kafka import run_kafka_tool
from fairstream.stack.local_stack import LocalStack
from fairstream.stack.supervisor import tail_file

__all__ = ["register"]

# CLI flag -> StackConfig field; unset flags fall back to FAIRSTREAM_STACK_* and defaults.
_OVERRIDES = {
    "stack_dir": "stack_dir",
    "cache_dir": "cache_dir",
    "kafka_version": "kafka_version",
    "kafka_port": "kafka_port",
    "kafka_controller_port": "kafka_controller_port",
    "postgres_port": "postgres_port",
    "redis_port": "redis_port",
    "ferretdb_port": "ferretdb_port",
    "brokers": "brokers",
    "security": "kafka_security",
    "timeout": "ready_timeout",
}


def _common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("stack location and ports (default: FAIRSTREAM_STACK_*)")
    group.add_argument("--stack-dir", type=Path, help="state directory (default .stack/)")
    group.add_argument("--cache-dir", type=Path, help="downloads/builds (default STACK_DIR/cache)")
    group.add_argument("--kafka-version", help="Apache Kafka release (FAIRSTREAM_KAFKA_VERSION)")
    group.add_argument("--kafka-port", type=int, help="first broker port (9092)")
    group.add_argument("--kafka-controller-port", type=int, help="first controller port (9093)")
    group.add_argument("--postgres-port", type=int, help="PostgreSQL port (5433)")
    group.add_argument("--redis-port", type=int, help="Redis port (6380)")
    group.add_argument("--ferretdb-port", type=int, help="FerretDB port (27018)")
    group.add_argument(
        "--security",
        choices=("plaintext", "sasl_ssl"),
        help="Kafka client listener: plaintext, or sasl_ssl (SCRAM-SHA-512 over TLS, with a "
        "generated CA); FAIRSTREAM_STACK_KAFKA_SECURITY",
    )
    return parent


def _stack(args: argparse.Namespace) -> LocalStack:
    settings = load_settings()
    overrides: dict[str, Any] = {"stack_dir": settings.stack_dir}
    for flag, field in _OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    config = StackConfig(**overrides)
    return LocalStack(config, settings)


def _fail(exc: StackError, command: str) -> int:
    print(f"stack {command}: FAILED: {exc}", file=sys.stderr)
    if isinstance(exc, ComponentError) and exc.log_tail:
        print(f"--- last lines of the {exc.component} log ---", file=sys.stderr)
        print(exc.log_tail, file=sys.stderr)
        print("---", file=sys.stderr)
    return 1


def _up(args: argparse.Namespace) -> int:
    try:
        stack = _stack(args)
        stack.up(args.only)
    except StackError as exc:
        return _fail(exc, "up")
    except ValueError as exc:  # invalid port plan or settings
        print(f"stack up: {exc}", file=sys.stderr)
        return 2
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        _stack(args).down(args.only, purge=args.purge, purge_cache=args.purge_cache)
    except StackError as exc:
        return _fail(exc, "down")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _stack(args).status()
    all_up = all(status[name]["up"] for name in COMPONENTS)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if all_up else 1
    print(f"stack dir: {status['stack_dir']}")
    for name in (*COMPONENTS, "api"):
        entry = status[name]
        endpoint = entry.get("bootstrap") or entry.get("dsn") or entry.get("url") or ""
        state = "up" if entry["up"] else ("starting" if entry.get("running") else "down")
        extra = []
        if name == "kafka":
            extra.append(f"Kafka {entry.get('version')}, {entry.get('brokers')} broker(s)")
            if entry.get("security_protocol", "PLAINTEXT") != "PLAINTEXT":
                extra.append(f"{entry['security_protocol']} {entry['security']['sasl_mechanism']}")
        pids = entry.get("pids", [])
        if pids:
            extra.append("pid " + ",".join(map(str, pids)))
        if "error" in entry:
            extra.append(entry["error"])
        if name == "api":
            extra.append("run by `fairstream services`, not the stack")
        print(
            f"  {name:<9} {state:<8} {endpoint}  ({'; '.join(extra)})"
            if extra
            else f"  {name:<9} {state:<8} {endpoint}"
        )
    return 0 if all_up else 1


def _env(args: argparse.Namespace) -> int:
    # Meant for `eval "$(fairstream stack env)"`: quoted, and secrets only as file paths.
    for key, value in _stack(args).env_vars().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    stack = _stack(args)
    logs = stack.layout.logs
    path = logs / f"{args.name}.log"
    if not path.exists():
        names = sorted(p.stem for p in logs.glob("*.log"))
        print(f"no log {path}; available: {', '.join(names) or 'none'}", file=sys.stderr)
        return 1
    print(tail_file(path, args.lines))
    return 0


def _kafka_tool(args: argparse.Namespace) -> int:
    stack = _stack(args)
    tool_args = list(args.args)
    if tool_args and tool_args[0] == "--":
        tool_args = tool_args[1:]
    try:
        result = run_kafka_tool(stack.config, args.tool, tool_args, capture=False, timeout=3600)
    except StackError as exc:
        return _fail(exc, "kafka-tool")
    return result.returncode


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `stack up|down|status|env|logs|kafka-tool`."""
    common = _common_options()
    stack = subparsers.add_parser(
        "stack",
        help="run Kafka, PostgreSQL, Redis and FerretDB locally (no containers)",
        description=__doc__,
    )
    commands = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    only_help = f"comma-separated subset of {','.join(COMPONENTS)}"

    up = commands.add_parser("up", parents=[common], help="install, start and wait for the stack")
    up.add_argument("--brokers", type=int, help="KRaft nodes (broker+controller each); default 1")
    up.add_argument("--only", help=only_help)
    up.add_argument("--timeout", type=float, help="seconds to wait for each component (120)")
    up.set_defaults(func=_up)

    down = commands.add_parser("down", parents=[common], help="stop the stack")
    down.add_argument("--only", help=only_help)
    down.add_argument(
        "--purge", action="store_true", help="also delete data, logs and configs (keep cache)"
    )
    down.add_argument("--purge-cache", action="store_true", help="also delete downloads and builds")
    down.set_defaults(func=_down)

    status = commands.add_parser("status", parents=[common], help="show endpoints and health")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)

    env = commands.add_parser("env", parents=[common], help="print export lines of the endpoints")
    env.set_defaults(func=_env)

    logs = commands.add_parser("logs", parents=[common], help="print the tail of a log")
    logs.add_argument("name", help="log name, e.g. kafka-1, postgres, redis, ferretdb")
    logs.add_argument("-n", "--lines", type=int, default=30)
    logs.set_defaults(func=_logs)

    tool = commands.add_parser(
        "kafka-tool",
        parents=[common],
        help="run a Kafka CLI tool on the stack's classpath",
        description="Run e.g. `fairstream stack kafka-tool kafka-consumer-groups -- "
        "--bootstrap-server 127.0.0.1:9092 --list`.",
    )
    tool.add_argument(
        "tool", help="kafka-consumer-groups, kafka-producer-perf-test, ... or a class"
    )
    tool.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the tool")
    tool.set_defaults(func=_kafka_tool)
