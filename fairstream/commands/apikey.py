"""`fairstream apikey create | list | revoke`: manage the query API's keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from api.keys import SCOPES, PostgresApiKeyStore, check_scopes, open_key_pool
from fairstream.settings import Settings, load_settings


async def _with_store(settings: Settings, action: str, args: argparse.Namespace) -> int:
    from fairstream.bootstrap import apply_migrations

    await apply_migrations(settings)
    pool = await open_key_pool(settings)
    try:
        store = PostgresApiKeyStore(pool)
        if action == "create":
            scopes = list(SCOPES) if args.all_scopes else (args.scope or [])
            key = await store.create(args.name, scopes)
            print(key)
            print("store this key now: it is shown only once", file=sys.stderr)
            return 0
        if action == "list":
            for record in await store.list():
                state = (
                    f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
                )
                print(
                    f"{record.key_id}  {record.name}  {','.join(record.scopes)}"
                    f"  created {record.created_at:%Y-%m-%d %H:%M}  {state}"
                )
            return 0
        if await store.revoke(args.key_id):
            print(f"revoked {args.key_id} (API processes stop accepting it within 30 s)")
            return 0
        print(f"no active key {args.key_id!r}", file=sys.stderr)
        return 1
    finally:
        await pool.close()


def _runner(action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings()
        if action == "create" and not args.all_scopes:
            try:
                check_scopes(args.scope or [])
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        return asyncio.run(_with_store(settings, action, args))

    return run


def register(subparsers: Any) -> None:
    """Add `apikey` with `create`, `list` and `revoke`."""
    parser = subparsers.add_parser("apikey", help="manage API keys of the query API")
    actions = parser.add_subparsers(dest="apikey_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        help="a scope to grant; repeat for several",
    )
    create.add_argument("--all-scopes", action="store_true", help="grant every scope")
    create.set_defaults(func=_runner("create"))
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(func=_runner("list"))
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="ID", help="the key id (the part after fs_)")
    revoke.set_defaults(func=_runner("revoke"))
