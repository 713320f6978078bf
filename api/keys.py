"""API keys: format, scrypt hashing, PostgreSQL storage and the development key.

A key reads `fs_<key_id>_<secret>`. The id locates the stored row; only a salted scrypt
hash of the secret is stored, so a leaked table does not leak usable keys. Verifying a
key is deliberately slow (scrypt), which is why the API caches verified keys briefly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from fairstream.settings import Settings
from projections.migrate import checked_schema

SCOPES: tuple[str, ...] = (
    "read:bias",
    "read:analytics",
    "read:campaigns",
    "read:opportunities",
    "read:revenue",
    "read:ops",
)
KEY_PREFIX = "fs"
_KEY = re.compile(r"^fs_([0-9a-f]{16})_([A-Za-z0-9_\-]{32,128})$")
_ID = re.compile(r"^[0-9a-f]{16}$")

# scrypt cost: n=2**14, r=8, p=1 is ~16 MiB and tens of milliseconds per verification.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KDF_NAME = f"scrypt:n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}"
_KDF = re.compile(r"^scrypt:n=(\d+),r=(\d+),p=(\d+)$")


class InvalidKeyFormat(ValueError):
    """Raised when a string is not shaped like a fairstream API key."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """Split a presented key into its public id and its secret."""

    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """Describe one stored key; never holds the secret."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredHash:
    """Hold what verification needs: KDF parameters, salt and hash."""

    kdf: str
    salt: bytes
    secret_hash: bytes


def new_key() -> ParsedKey:
    """Generate a fresh key id and secret."""
    return ParsedKey(secrets.token_hex(8), secrets.token_urlsafe(32))


def format_key(key: ParsedKey) -> str:
    """Render a key as the string a client sends."""
    return f"{KEY_PREFIX}_{key.key_id}_{key.secret}"


def parse_key(presented: str) -> ParsedKey:
    """Split a presented key, raising InvalidKeyFormat when it is not one."""
    match = _KEY.match(presented)
    if not match:
        raise InvalidKeyFormat("not a fairstream API key")
    return ParsedKey(match[1], match[2])


def hash_secret(secret: str, salt: bytes | None = None) -> StoredHash:
    """Hash a secret with scrypt and a per-key random salt."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return StoredHash(KDF_NAME, salt, digest)


def verify_secret(secret: str, stored: StoredHash) -> bool:
    """Check a secret against its stored hash in constant time."""
    match = _KDF.match(stored.kdf)
    if not match:
        return False
    n, r, p = (int(g) for g in match.groups())
    digest = hashlib.scrypt(
        secret.encode(), salt=stored.salt, n=n, r=r, p=p, dklen=len(stored.secret_hash)
    )
    return hmac.compare_digest(digest, stored.secret_hash)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return the scopes deduplicated in canonical order, raising ValueError on an unknown one."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("give at least one scope")
    return tuple(s for s in SCOPES if s in scopes)


class PostgresApiKeyStore:
    """Create, list, revoke and look up API keys in the `api_keys` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, name: str, scopes: list[str] | tuple[str, ...]) -> str:
        """Store a new key and return it in full; it cannot be shown again."""
        checked = check_scopes(scopes)
        key = new_key()
        stored = await asyncio.to_thread(hash_secret, key.secret)
        await self._pool.execute(
            "INSERT INTO api_keys (key_id, name, scopes, kdf, salt, secret_hash)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            key.key_id,
            name,
            list(checked),
            stored.kdf,
            stored.salt,
            stored.secret_hash,
        )
        return format_key(key)

    async def list(self) -> list[ApiKeyRecord]:
        """Return every key, newest first, revoked ones included."""
        rows = await self._pool.fetch(
            "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys"
            " ORDER BY created_at DESC, key_id"
        )
        return [
            ApiKeyRecord(
                r["key_id"], r["name"], tuple(r["scopes"]), r["created_at"], r["revoked_at"]
            )
            for r in rows
        ]

    async def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; return False when no active key has this id."""
        if not _ID.match(key_id):
            return False
        status = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        return bool(status.endswith(" 1"))

    async def lookup(self, key_id: str) -> tuple[ApiKeyRecord, StoredHash] | None:
        """Return an active key's record and stored hash, or None."""
        row = await self._pool.fetchrow(
            "SELECT key_id, name, scopes, created_at, revoked_at, kdf, salt, secret_hash"
            " FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None:
            return None
        record = ApiKeyRecord(
            row["key_id"], row["name"], tuple(row["scopes"]), row["created_at"], None
        )
        return record, StoredHash(row["kdf"], bytes(row["salt"]), bytes(row["secret_hash"]))

    async def verify(self, presented: str) -> ApiKeyRecord | None:
        """Return the record of a valid, active key, or None."""
        try:
            key = parse_key(presented)
        except InvalidKeyFormat:
            return None
        found = await self.lookup(key.key_id)
        if found is None:
            return None
        record, stored = found
        ok = await asyncio.to_thread(verify_secret, key.secret, stored)
        return record if ok else None


async def open_key_pool(settings: Settings) -> asyncpg.Pool:
    """Open a small pool on the read-model schema for key management."""
    schema = checked_schema(settings.pg_schema)
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=2,
        server_settings={"search_path": schema, "application_name": "fairstream-apikey"},
    )
    assert pool is not None
    return pool


DEV_KEY_NAME = "development"


async def ensure_dev_key_async(settings: Settings, path: Path | None = None) -> str:
    """Return the development key in `path`, creating one with every scope if it is not valid.

    The file defaults to `<stack_dir>/dev-api-key` and is written with mode 0600.
    Migrations are applied first so the key table exists.
    """
    from fairstream.bootstrap import apply_migrations

    path = path or settings.stack_dir / "dev-api-key"
    await apply_migrations(settings)
    pool = await open_key_pool(settings)
    try:
        store = PostgresApiKeyStore(pool)
        if path.exists():
            existing = path.read_text("utf-8").strip()
            record = await store.verify(existing)
            if record is not None and set(record.scopes) == set(SCOPES):
                return existing
        key = await store.create(DEV_KEY_NAME, SCOPES)
    finally:
        await pool.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


def ensure_dev_key(settings: Settings, path: Path | None = None) -> str:
    """Return a valid development key with every scope, from or written to `path`.

    Call it from synchronous code (e.g. `fairstream run`); inside an event loop await
    `ensure_dev_key_async` instead.
    """
    return asyncio.run(ensure_dev_key_async(settings, path))
