"""Apply the versioned PostgreSQL read-model migrations to one schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Migration:
    """Hold one migration file: its version, name and SQL."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Return the packaged migrations in version order."""
    folder = resources.files("projections.migrations").joinpath("postgres")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def checked_schema(schema: str) -> str:
    """Return the schema name if it is a plain lower-case identifier, else raise ValueError."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid PostgreSQL schema name {schema!r}: use [a-z_][a-z0-9_]*")
    return schema


async def migrate(conn: asyncpg.Connection, schema: str) -> list[Migration]:
    """Apply every migration not yet applied to `schema`; return those applied now."""
    schema = checked_schema(schema)
    applied_now: list[Migration] = []
    async with conn.transaction():
        # Serialise concurrent migrators (API and projections may start together).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration)
    return applied_now
