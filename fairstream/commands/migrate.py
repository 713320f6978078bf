"""`fairstream migrate`: apply the versioned read-model migrations and document indexes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from fairstream.settings import Settings, load_settings


async def _migrate(settings: Settings, documents: bool) -> tuple[list[str], list[str]]:
    from fairstream.bootstrap import (
        DOCUMENT_PROJECTIONS,
        apply_migrations,
        connect_pool,
        prepare_document_store,
    )

    applied = await apply_migrations(settings)
    collections: list[str] = []
    if documents:
        pool = await connect_pool(settings)
        try:
            store = await prepare_document_store(settings, pool)
            await store.close()
        except Exception as exc:  # the projections create their indexes on start anyway
            print(
                f"warning: document indexes not created ({settings.document_store}): {exc}",
                file=sys.stderr,
            )
            return applied, collections
        finally:
            await pool.close()
        for factory in DOCUMENT_PROJECTIONS.values():
            collections.extend(factory(settings).indexes)
    return applied, collections


def run(args: argparse.Namespace) -> int:
    """Apply pending migrations, create document collections' indexes, and say which."""
    settings = load_settings()
    if args.schema:
        settings.pg_schema = args.schema
    applied, collections = asyncio.run(_migrate(settings, not args.skip_documents))
    target = f"schema {settings.pg_schema!r}"
    print(f"applied to {target}: {', '.join(applied)}" if applied else f"{target} is up to date")
    if collections:
        print(f"document indexes ({settings.document_store}): {', '.join(collections)}")
    return 0


def register(subparsers: Any) -> None:
    """Add `migrate`."""
    parser = subparsers.add_parser(
        "migrate", help="apply read-model schema migrations and document indexes"
    )
    parser.add_argument("--schema", help="PostgreSQL schema (default FAIRSTREAM_PG_SCHEMA)")
    parser.add_argument(
        "--skip-documents",
        action="store_true",
        help="do not create the document collections' indexes (MongoDB or PostgreSQL)",
    )
    parser.set_defaults(func=run)
