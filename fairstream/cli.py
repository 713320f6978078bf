"""The `fairstream` console script: one entry point, one subcommand module per area."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers)`; it adds its subcommand(s) and sets
# `func` on the parser to a callable taking the parsed namespace and returning an exit code.
COMMAND_MODULES = (
    "fairstream.commands.stack",
    "fairstream.commands.schemas",
    "fairstream.commands.topics",
    "fairstream.commands.publish",
    "fairstream.commands.generate",
    "fairstream.commands.model",
    "fairstream.commands.score",
    "fairstream.commands.services",
    "fairstream.commands.migrate",
    "fairstream.commands.run",
    "fairstream.commands.apikey",
    "fairstream.commands.lag",
    "fairstream.commands.replay",
    "fairstream.commands.reprocess",
    "fairstream.commands.bench",
    "fairstream.commands.faults",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="fairstream", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def settings_errors(exc: Exception) -> list[str] | None:
    """Return one line per invalid FAIRSTREAM_* setting, or None if `exc` is not about them."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    lines = []
    for error in exc.errors():
        name = "FAIRSTREAM_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}={error.get('input')!r}: {error['msg']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (2 for invalid settings)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        lines = settings_errors(exc)
        if lines is None:
            raise
        for line in lines:
            print(f"fairstream: invalid setting {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
