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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
