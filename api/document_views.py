"""Read-side queries over document read models through the document-store port's reads.

Keyset paging uses only what the port's `find` supports (equality and range operators):
the page after (value, id) is the documents with sort field == value and `_id` > id,
followed by those with sort field strictly after value; `_id` ascending breaks ties in
both orders. Sorting by a field lists only documents that have it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from api.caching import ACQUIRE_TIMEOUT_SECONDS
from api.pagination import ColumnType, Cursor, Page, convert, decode_cursor, encode_cursor
from projections.documents import (
    Document,
    DocumentStore,
    Filter,
    MongoDocumentStore,
    Sort,
    Update,
)
from projections.runner import Position

# Bounds on every MongoDB wait (pymongo's defaults wait 30 s for a server): then 503.
MONGO_TIMEOUTS_MS = {
    "serverSelectionTimeoutMS": 2000,
    "connectTimeoutMS": 2000,
    "socketTimeoutMS": 5000,
}

DOCUMENT_PROJECTIONS = {
    "campaigns": "campaigns",
    "opportunities": "opportunities",
    "agent_tasks": "agent-tasks",
}


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """Describe a collection: its sortable fields (API name -> field, type) and default."""

    collection: str
    sorts: Mapping[str, tuple[str, ColumnType]]
    default_sort: str

    @property
    def projection(self) -> str:
        """Return the projection that writes this collection."""
        return DOCUMENT_PROJECTIONS[self.collection]


CAMPAIGNS = DocumentSpec(
    "campaigns",
    {
        "updated_at": ("updated_at", "text"),
        "planned_at": ("planned_at", "text"),
        "start_date": ("start_date", "text"),
        "id": ("_id", "text"),
    },
    "updated_at",
)
OPPORTUNITIES = DocumentSpec(
    "opportunities",
    {
        "updated_at": ("updated_at", "text"),
        "overall_score": ("overall_score", "float8"),
        "scored_at": ("scored_at", "text"),
        "id": ("_id", "text"),
    },
    "updated_at",
)
AGENT_TASKS = DocumentSpec(
    "agent_tasks",
    {
        "completed_at": ("completed_at", "text"),
        "updated_at": ("updated_at", "text"),
        "duration_ms": ("duration_ms", "float8"),
        "id": ("_id", "text"),
    },
    "completed_at",
)


def _with(filter: Mapping[str, Any], field: str, condition: Any) -> dict[str, Any]:
    merged = dict(filter)
    existing = merged.get(field)
    if isinstance(condition, Mapping) and isinstance(existing, Mapping):
        merged[field] = {**existing, **condition}
    else:
        merged[field] = condition
    return merged


def _without_bound(filter: Mapping[str, Any], field: str, ops: tuple[str, ...]) -> dict[str, Any]:
    merged = dict(filter)
    existing = merged.get(field)
    if isinstance(existing, Mapping):
        merged[field] = {k: v for k, v in existing.items() if k not in ops}
        if not merged[field]:
            del merged[field]
    return merged


async def find_page(
    store: DocumentStore,
    spec: DocumentSpec,
    filter: Mapping[str, Any],
    *,
    sort: str,
    order: str,
    limit: int,
    cursor: str | None,
) -> Page:
    """Return one page of documents in (sort field, `_id`) order after the cursor."""
    field, kind = spec.sorts[sort]
    direction = 1 if order == "asc" else -1
    base = dict(filter)
    if field != "_id":
        base = _with(base, field, {"$exists": True})
    order_by = [(field, direction)] if field == "_id" else [(field, direction), ("_id", 1)]
    docs: list[dict[str, Any]] = []
    if cursor is None:
        docs = await store.find(spec.collection, base, sort=order_by, limit=limit + 1)
    else:
        after = decode_cursor(cursor)
        value = convert(after.value, kind)
        last_id = convert(after.ids[0], "text") if field != "_id" else value
        after_op = "$gt" if direction > 0 else "$lt"
        bound_ops = (after_op, after_op + "e")
        if field != "_id":
            ties = _with(_without_bound(base, field, ()), field, value)
            ties = _with(ties, "_id", {"$gt": last_id})
            docs = await store.find(spec.collection, ties, sort=[("_id", 1)], limit=limit + 1)
        if len(docs) <= limit:
            rest = _with(_without_bound(base, field, bound_ops), field, {after_op: value})
            docs += await store.find(
                spec.collection, rest, sort=order_by, limit=limit + 1 - len(docs)
            )
    rows = [dict(d) for d in docs[:limit]]
    next_cursor = None
    if len(docs) > limit and rows:
        last = rows[-1]
        next_cursor = encode_cursor(
            Cursor(sort, "asc" if direction > 0 else "desc", last[field], (last["_id"],))
        )
    return Page(rows, next_cursor)


def public_document(doc: Mapping[str, Any], *, store_raw_text: bool) -> dict[str, Any]:
    """Rename `_id` to `id`, drop internal fields, and drop raw text unless it is enabled."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    out["id"] = doc["_id"]
    scores = out.get("item_scores")
    if isinstance(scores, Mapping):
        out["item_scores"] = [dict(v) for _, v in sorted(scores.items())]
    if not store_raw_text:
        for channel in out.get("channels") or []:
            for item in channel.get("items") or []:
                item.pop("text", None)
    return out


# -- the active version of each document read model (fairstream replay) ---------------------


@dataclass(slots=True)
class ActiveDatabases:
    """One request's view of which MongoDB database serves each document projection."""

    databases: dict[str, str] | None = None
    _resolved: bool = field(default=False)


_REQUEST_VERSIONS: ContextVar[ActiveDatabases | None] = ContextVar(
    "fairstream_document_versions", default=None
)


class DocumentVersionScope:
    """ASGI middleware: give each HTTP request one resolution of the active databases."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _REQUEST_VERSIONS.set(ActiveDatabases())
        try:
            await self.app(scope, receive, send)
        finally:
            _REQUEST_VERSIONS.reset(token)


class VersionedDocumentStore:
    """Read each document projection from the MongoDB database `read_model_versions` names.

    `fairstream replay` switches a rebuilt document projection with one UPDATE of
    `read_model_versions.active_database`; this store reads that mapping at most once per
    `ttl` seconds and once per request (`DocumentVersionScope`), so every read of a request
    (positions token, then pages) goes to the same database. Projections never rebuilt are
    read from the configured database. The store code itself is the unchanged
    `MongoDocumentStore`, one per database on a shared client.
    """

    def __init__(self, client: Any, database: str, pool: asyncpg.Pool, ttl: float = 1.0) -> None:
        self._client = client
        self._default = database
        self._pool = pool
        self._ttl = ttl
        self._mapping: dict[str, str] = {}
        self._loaded_at = float("-inf")
        self._stores: dict[str, MongoDocumentStore] = {}

    @classmethod
    def connect(
        cls, url: str, database: str, pool: asyncpg.Pool, ttl: float = 1.0
    ) -> VersionedDocumentStore:
        """Open a motor client on `url`, with short timeouts unless the URL sets its own."""
        from motor.motor_asyncio import AsyncIOMotorClient

        given = {k.lower() for k in parse_qs(urlsplit(url).query)}
        timeouts: dict[str, Any] = {
            k: v for k, v in MONGO_TIMEOUTS_MS.items() if k.lower() not in given
        }
        return cls(AsyncIOMotorClient(url, tz_aware=True, **timeouts), database, pool, ttl)

    async def ping(self) -> None:
        """Raise unless the server, and behind it its storage, answers a read."""
        database = self._client[self._default]
        await database.command("ping")
        await database.list_collection_names()

    async def _load(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._loaded_at >= self._ttl:
            try:
                async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                    rows = await conn.fetch(
                        "SELECT projection, active_database FROM read_model_versions"
                        " WHERE active_database IS NOT NULL"
                    )
            except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
                rows = []  # not migrated yet: nothing was switched
            self._mapping = {r["projection"]: r["active_database"] for r in rows}
            self._loaded_at = now
        return self._mapping

    async def database_of(self, projection: str) -> str:
        """Return the database serving `projection` for the current request."""
        view = _REQUEST_VERSIONS.get()
        if view is not None and view.databases is not None:
            mapping = view.databases
        else:
            mapping = await self._load()
            if view is not None:
                view.databases = mapping
        return mapping.get(projection, self._default)

    async def _for_projection(self, projection: str) -> MongoDocumentStore:
        database = await self.database_of(projection)
        store = self._stores.get(database)
        if store is None:
            store = self._stores[database] = MongoDocumentStore(self._client[database])
        return store

    async def _for_collection(self, collection: str) -> MongoDocumentStore:
        return await self._for_projection(DOCUMENT_PROJECTIONS.get(collection, collection))

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[VersionedDocumentStore]:
        """Yield this store."""
        yield self

    async def ensure_collection(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Create the collection in its projection's active database."""
        await (await self._for_collection(collection)).ensure_collection(collection, indexes)

    async def apply(self, collection: str, doc_id: str, position: Position, update: Update) -> bool:
        """Apply in the active database (the API never writes; kept for the port)."""
        store = await self._for_collection(collection)
        return await store.apply(collection, doc_id, position, update)

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return the document from its projection's active database."""
        return await (await self._for_collection(collection)).get(collection, doc_id)

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int | None = None,
    ) -> list[Document]:
        """Query the projection's active database."""
        store = await self._for_collection(collection)
        return await store.find(collection, filter, sort=sort, limit=limit)

    async def stored_positions(self, projection: str) -> dict[tuple[str, int], int]:
        """Return the positions stored with the projection's active version."""
        return await (await self._for_projection(projection)).stored_positions(projection)

    async def save_position(
        self, projection: str, topic: str, partition: int, next_offset: int
    ) -> None:
        """Store a position in the projection's active database."""
        store = await self._for_projection(projection)
        await store.save_position(projection, topic, partition, next_offset)

    async def close(self) -> None:
        """Close the client."""
        self._client.close()
