"""`fairstream migrate`: apply the versioned read-model migrations."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fairstream.settings import load_settings


def run(args: argparse.Namespace) -> int:
    """Apply pending migrations and say which."""
    from fairstream.bootstrap import apply_migrations

    settings = load_settings()
    if args.schema:
        settings.pg_schema = args.schema
    applied = asyncio.run(apply_migrations(settings))
    target = f"schema {settings.pg_schema!r}"
    print(f"applied to {target}: {', '.join(applied)}" if applied else f"{target} is up to date")
    return 0


def register(subparsers: Any) -> None:
    """Add `migrate`."""
    parser = subparsers.add_parser("migrate", help="apply read-model schema migrations")
    parser.add_argument("--schema", help="PostgreSQL schema (default FAIRSTREAM_PG_SCHEMA)")
    parser.set_defaults(func=run)
