"""The read-model store port for document-shaped projections, with PostgreSQL and MongoDB adapters.

A document projection describes each change as a small, backend-neutral update
(`$set`, `$setOnInsert`, `$inc`, `$unset` with dotted paths) applied to one document at one
Kafka position. Every adapter applies an update only if the document has not yet seen that
position (or a later one) of the same partition, so a re-delivered event changes nothing, and,
when the change names its event id, only if that id was not applied to the document yet, so
an event re-published at another offset (an at-least-once processor restarted) changes nothing
either. The ids live in the document's internal `_events` map: document projections touch each
document with a handful of events, so the map stays small. `$setIfNewer` sets a path only if
its order key is above the one stored for that path (internal `_newest` map), so the latest of
several events wins whatever their arrival order:

- `PostgresDocumentStore`: one table `doc_<collection>(id, doc jsonb, positions jsonb)`;
  `positions` holds the per-partition offsets and the `_events` / `_newest` maps; the row is
  locked, the update applied in Python, and the runner's position is written in the same
  transaction (`batch()`).
- `MongoDocumentStore` (motor): one conditional `update_one` per change whose filter requires
  `_positions.<topic>:<partition>` to be absent or lower than the offset and `_events.<id>`
  to be absent; an upsert that finds the document already past that position (or event) hits
  the `_id` unique index and is a no-op. A change with `$setIfNewer` states in its filter
  whether each path's stored key is older; if the document disagrees, it is read and the
  change re-sent with the observed outcome (keys only grow, so this ends quickly).
  Positions of the runner are stored in the `projection_positions` collection after the
  batch; what is re-applied after a crash is filtered by the per-document guard.

`apply_many` applies a batch's changes with the same guard and the same result as applying
them one by one: a few statements per collection on PostgreSQL (rows locked once and
rewritten together); on MongoDB one guarded upsert per change, documents written concurrently (see
`MongoDocumentStore`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, cast, runtime_checkable

import asyncpg
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from events.model import Event
from fairstream.settings import Settings
from projections.runner import BatchResult, Position, new_events

Document = dict[str, Any]
Update = Mapping[str, Mapping[str, Any]]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]
# A MongoDB guarded upsert: filter, update document and `$setIfNewer` paths (key, value).
GuardedUpdate = tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, tuple[str, Any]]]

UPDATE_OPERATORS = ("$set", "$setOnInsert", "$inc", "$unset", "$setIfNewer")
# Internal bookkeeping fields of a document (never returned by `get`/`find`).
POSITIONS_FIELD = "_positions"
EVENTS_FIELD = "_events"
NEWEST_FIELD = "_newest"
INTERNAL_FIELDS = (POSITIONS_FIELD, EVENTS_FIELD, NEWEST_FIELD)
FILTER_OPERATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<=", "$ne": "<>"}
POSITIONS_COLLECTION = "projection_positions"
_COLLECTION = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_%\-]*$")


class DocumentStoreError(ValueError):
    """Report an update, filter or collection name the store does not support."""


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """Describe one update of one document at one Kafka position (by one event, if named)."""

    collection: str
    doc_id: str
    position: Position
    update: Update
    event_id: str | None = None


class DocumentStore(Protocol):
    """Keep documents per collection; apply each change at most once per Kafka position."""

    async def ensure_collection(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Create the collection (and single-field indexes) if missing."""

    async def apply(
        self,
        collection: str,
        doc_id: str,
        position: Position,
        update: Update,
        event_id: str | None = None,
    ) -> bool:
        """Apply `update` unless the document saw `position` or `event_id`; say if applied."""

    async def apply_many(self, changes: Sequence[DocumentChange]) -> list[bool]:
        """Apply the changes as `apply` would one by one, in order; say which were applied."""

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return the document (with `_id`, without `_positions`) or None."""

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int | None = None,
    ) -> list[Document]:
        """Return matching documents in `sort` order (then by `_id`)."""

    async def stored_positions(self, projection: str) -> dict[tuple[str, int], int]:
        """Return the runner's next offset per (topic, partition) for `projection`."""

    async def save_position(
        self, projection: str, topic: str, partition: int, next_offset: int
    ) -> None:
        """Store the runner's next offset of one partition."""

    def batch(self) -> Any:
        """Return an async context manager yielding a store whose writes form one unit."""

    async def close(self) -> None:
        """Release connections the store opened itself."""


class DocumentProjection(Protocol):
    """Apply events of some types to documents through a `DocumentStore`."""

    name: str
    event_types: tuple[str, ...]

    @property
    def indexes(self) -> Mapping[str, Sequence[str]]:
        """Return the indexed fields per collection."""

    async def apply(self, store: DocumentStore, event: Event, position: Position) -> None:
        """Apply one event."""


@runtime_checkable
class BatchDocumentProjection(DocumentProjection, Protocol):
    """Describe each event's effect as document changes, so a batch is written in bulk."""

    def changes(self, event: Event, position: Position) -> list[DocumentChange]:
        """Return the document changes of one event (none if it concerns no document)."""


async def apply_changes(store: DocumentStore, changes: Sequence[DocumentChange]) -> None:
    """Apply the changes one by one (the per-event path of a batch projection)."""
    for c in changes:
        await store.apply(c.collection, c.doc_id, c.position, c.update, c.event_id)


def by_collection(changes: Sequence[DocumentChange]) -> dict[str, list[int]]:
    """Return the indexes of the changes per collection, in order."""
    found: dict[str, list[int]] = {}
    for i, change in enumerate(changes):
        found.setdefault(_checked_collection(change.collection), []).append(i)
    return found


# -- values ---------------------------------------------------------------------------------


def iso_time(value: datetime) -> str:
    """Format a timestamp as ISO-8601 UTC with milliseconds (sorts as text)."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def plain(value: Any) -> Any:
    """Turn event values into JSON-like values both backends store the same way."""
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def escape_key(key: str) -> str:
    """Escape an id for use as a map key in a dotted path."""
    escaped = key.replace("%", "%25").replace(".", "%2E")
    return "%24" + escaped[1:] if escaped.startswith("$") else escaped


def position_key(position: Position) -> str:
    """Return the per-document guard key of a position's partition (no dots)."""
    return f"{position.topic.replace('.', '~')}:{position.partition}"


def order_key(occurred_at: datetime, event_id: str) -> str:
    """Return a `$setIfNewer` key ordering events by occurred_at (microseconds), then id."""
    utc = occurred_at.astimezone(UTC) if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "|" + event_id


def newest_key(field: str) -> str:
    """Return the key of a `$setIfNewer` path in the `_newest` map (no dots)."""
    return "/".join(_path(field))


def _checked_event_id(event_id: str) -> str:
    if not event_id or "." in event_id or event_id.startswith("$"):
        raise DocumentStoreError(f"invalid event id {event_id!r}")
    return event_id


def _newest_entry(field: str, entry: Any) -> tuple[str, Any]:
    if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[0], str):
        raise DocumentStoreError(f"$setIfNewer {field!r} needs [order key (str), value]")
    return entry[0], entry[1]


def _checked_collection(collection: str) -> str:
    if not _COLLECTION.match(collection):
        raise DocumentStoreError(f"invalid collection name {collection!r}")
    return collection


def _path(field: str) -> list[str]:
    parts = field.split(".")
    if not all(parts) or any(p.startswith("$") for p in parts):
        raise DocumentStoreError(f"invalid field path {field!r}")
    return parts


def apply_update(
    doc: Document, update: Update, *, inserted: bool, newest: dict[str, str] | None = None
) -> Document:
    """Return `doc` changed by `update` (the subset of MongoDB update operators we use).

    `$setIfNewer: {path: [key, value]}` sets `path` only if `key` is above `newest[path]`
    (and records it in `newest`, changed in place).
    """
    unknown = set(update) - set(UPDATE_OPERATORS)
    if unknown:
        raise DocumentStoreError(f"unsupported update operators {sorted(unknown)}")
    out = copy.deepcopy(doc)

    def parent(parts: list[str], create: bool) -> dict[str, Any] | None:
        node: Any = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                if not create:
                    return None
                if child is not None:
                    raise DocumentStoreError(f"cannot descend into {part!r}: not a document")
                child = node[part] = {}
            node = child
        return node  # type: ignore[no-any-return]

    sets = dict(update.get("$set", {}))
    if inserted:
        sets = {**update.get("$setOnInsert", {}), **sets}
    for field, value in sets.items():
        parts = _path(field)
        node = parent(parts, create=True)
        assert node is not None
        node[parts[-1]] = copy.deepcopy(plain(value))
    for field, amount in update.get("$inc", {}).items():
        parts = _path(field)
        node = parent(parts, create=True)
        assert node is not None
        current = node.get(parts[-1], 0)
        if not isinstance(current, int | float) or isinstance(current, bool):
            raise DocumentStoreError(f"cannot $inc non-number {field!r}")
        node[parts[-1]] = current + amount
    for field in update.get("$unset", {}):
        parts = _path(field)
        node = parent(parts, create=False)
        if node is not None:
            node.pop(parts[-1], None)
    if newest is None:
        newest = {}
    for field, entry in update.get("$setIfNewer", {}).items():
        parts = _path(field)
        key, value = _newest_entry(field, entry)
        stored = newest.get(newest_key(field))
        if stored is not None and stored >= key:
            continue
        newest[newest_key(field)] = key
        node = parent(parts, create=True)
        assert node is not None
        node[parts[-1]] = copy.deepcopy(plain(value))
    return out


def apply_guarded(
    doc: Document,
    meta: dict[str, Any],
    position: Position,
    update: Update,
    event_id: str | None,
    *,
    inserted: bool,
) -> tuple[Document, dict[str, Any]] | None:
    """Return the changed document and bookkeeping, or None if the position or event was seen.

    `meta` maps position keys to offsets, plus `_events` (applied event ids) and `_newest`.
    """
    key = position_key(position)
    seen = meta.get(key)
    if seen is not None and seen >= position.offset:
        return None
    if event_id is not None and _checked_event_id(event_id) in meta.get(EVENTS_FIELD, {}):
        return None
    out = copy.deepcopy(meta)
    newest: dict[str, str] = out.get(NEWEST_FIELD, {})
    changed = apply_update(doc, update, inserted=inserted, newest=newest)
    if newest:
        out[NEWEST_FIELD] = newest
    out[key] = position.offset
    if event_id is not None:
        out.setdefault(EVENTS_FIELD, {})[event_id] = True
    return changed, out


# -- PostgreSQL -----------------------------------------------------------------------------


class PostgresDocumentStore:
    """Keep documents as jsonb rows, one table per collection, positions in the same row."""

    def __init__(self, pool: asyncpg.Pool, conn: asyncpg.Connection | None = None) -> None:
        self._pool = pool
        self._conn = conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._conn is not None:
            yield self._conn
            return
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[PostgresDocumentStore]:
        """Yield a store bound to one connection and transaction."""
        if self._conn is not None:
            yield self
            return
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresDocumentStore(self._pool, conn)

    async def ensure_collection(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Create `doc_<collection>` and expression indexes if missing."""
        table = f"doc_{_checked_collection(collection)}"
        async with self._connection() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"doc-collection:{table}"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " id text PRIMARY KEY, doc jsonb NOT NULL DEFAULT '{}'::jsonb,"
                " positions jsonb NOT NULL DEFAULT '{}'::jsonb,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            )
            for field in indexes:
                parts = _path(field)
                name = f"{table}_{'_'.join(parts)}"[:63].lower()
                literal = "{" + ",".join(parts) + "}"
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {table} ((doc #> '{literal}'))"
                )

    async def apply(
        self,
        collection: str,
        doc_id: str,
        position: Position,
        update: Update,
        event_id: str | None = None,
    ) -> bool:
        """Lock the row, check its position of the partition and event ids, apply, store."""
        table = f"doc_{_checked_collection(collection)}"
        async with self._connection() as conn:
            created = await conn.fetchval(
                f"INSERT INTO {table} (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING true",
                doc_id,
            )
            row = await conn.fetchrow(
                f"SELECT doc, positions FROM {table} WHERE id = $1 FOR UPDATE", doc_id
            )
            assert row is not None
            done = apply_guarded(
                json.loads(row["doc"]),
                json.loads(row["positions"]),
                position,
                update,
                event_id,
                inserted=bool(created),
            )
            if done is None:
                return False
            doc, positions = done
            await conn.execute(
                f"UPDATE {table} SET doc = $2::jsonb, positions = $3::jsonb, updated_at = now()"
                " WHERE id = $1",
                doc_id,
                json.dumps(doc),
                json.dumps(positions),
            )
            return True

    async def apply_many(self, changes: Sequence[DocumentChange]) -> list[bool]:
        """Lock every touched row once, apply the changes in Python, write each row once."""
        applied = [False] * len(changes)
        async with self._connection() as conn:
            for collection, indexes in by_collection(changes).items():
                table = f"doc_{collection}"
                ids = list(dict.fromkeys(changes[i].doc_id for i in indexes))
                created = {
                    r["id"]
                    for r in await conn.fetch(
                        f"INSERT INTO {table} (id) SELECT unnest($1::text[])"
                        " ON CONFLICT (id) DO NOTHING RETURNING id",
                        ids,
                    )
                }
                rows = await conn.fetch(
                    f"SELECT id, doc, positions FROM {table} WHERE id = ANY($1::text[])"
                    " ORDER BY id FOR UPDATE",
                    ids,
                )
                state = {r["id"]: (json.loads(r["doc"]), json.loads(r["positions"])) for r in rows}
                changed: set[str] = set()
                for i in indexes:
                    change = changes[i]
                    doc, positions = state[change.doc_id]
                    # Only the first change of a document this call created sees an insert.
                    inserted = change.doc_id in created and change.doc_id not in changed
                    done = apply_guarded(
                        doc,
                        positions,
                        change.position,
                        change.update,
                        change.event_id,
                        inserted=inserted,
                    )
                    if done is None:
                        continue
                    state[change.doc_id] = done
                    changed.add(change.doc_id)
                    applied[i] = True
                if changed:
                    await conn.execute(
                        f"UPDATE {table} t SET doc = v.doc::jsonb,"
                        " positions = v.positions::jsonb, updated_at = now()"
                        " FROM unnest($1::text[], $2::text[], $3::text[]) AS v(id, doc, positions)"
                        " WHERE t.id = v.id",
                        list(changed),
                        [json.dumps(state[d][0]) for d in changed],
                        [json.dumps(state[d][1]) for d in changed],
                    )
        return applied

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return the document or None."""
        table = f"doc_{_checked_collection(collection)}"
        async with self._connection() as conn:
            raw = await conn.fetchval(f"SELECT doc FROM {table} WHERE id = $1", doc_id)
        return None if raw is None else {"_id": doc_id, **json.loads(raw)}

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int | None = None,
    ) -> list[Document]:
        """Translate the filter to jsonb comparisons; sort like MongoDB (missing first asc)."""
        table = f"doc_{_checked_collection(collection)}"
        args: list[Any] = []
        where: list[str] = []
        for field, condition in (filter or {}).items():
            target = "to_jsonb(id)" if field == "_id" else f"(doc #> '{_literal(field)}')"
            if (
                isinstance(condition, Mapping)
                and condition
                and all(str(k).startswith("$") for k in condition)
            ):
                for op, value in condition.items():
                    if op == "$in":
                        args.append(json.dumps([plain(v) for v in value]))
                        where.append(
                            f"{target} IN (SELECT jsonb_array_elements(${len(args)}::jsonb))"
                        )
                    elif op in FILTER_OPERATORS:
                        args.append(json.dumps(plain(value)))
                        where.append(f"{target} {FILTER_OPERATORS[op]} ${len(args)}::jsonb")
                    elif op == "$exists":
                        where.append(f"{target} IS {'NOT ' if value else ''}NULL")
                    else:
                        raise DocumentStoreError(f"unsupported filter operator {op!r}")
            else:
                args.append(json.dumps(plain(condition)))
                where.append(f"{target} = ${len(args)}::jsonb")
        order = []
        for field, direction in sort:
            target = "id" if field == "_id" else f"(doc #> '{_literal(field)}')"
            order.append(f"{target} {'ASC NULLS FIRST' if direction >= 0 else 'DESC NULLS LAST'}")
        order.append("id ASC")
        sql = f"SELECT id, doc FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY " + ", ".join(order)
        if limit is not None:
            args.append(int(limit))
            sql += f" LIMIT ${len(args)}"
        async with self._connection() as conn:
            rows = await conn.fetch(sql, *args)
        return [{"_id": r["id"], **json.loads(r["doc"])} for r in rows]

    async def stored_positions(self, projection: str) -> dict[tuple[str, int], int]:
        """Read `projection_positions` (shared with the PostgreSQL projections)."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT topic, partition, next_offset FROM projection_positions"
                " WHERE projection = $1",
                projection,
            )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def save_position(
        self, projection: str, topic: str, partition: int, next_offset: int
    ) -> None:
        """Upsert the next offset (inside the batch's transaction)."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (projection, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                projection,
                topic,
                partition,
                next_offset,
            )

    async def close(self) -> None:
        """Leave the pool to its owner."""


def _literal(field: str) -> str:
    parts = _path(field)
    if not all(_FIELD.match(p) for p in parts):
        raise DocumentStoreError(f"unsupported field name in {field!r}")
    return "{" + ",".join(parts) + "}"


# -- MongoDB --------------------------------------------------------------------------------


class MongoDocumentStore:
    """Keep documents in MongoDB (or FerretDB) with a position guard in each document."""

    def __init__(self, database: Any, client: Any | None = None, concurrency: int = 16) -> None:
        if concurrency < 1:
            raise DocumentStoreError(f"concurrency must be at least 1, got {concurrency}")
        self._db = database
        self._client = client
        self._concurrency = concurrency

    @classmethod
    def connect(cls, url: str, database: str, concurrency: int = 16) -> MongoDocumentStore:
        """Open a motor client on `url` and use `database`."""
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(url, tz_aware=True)
        return cls(client[database], client, concurrency)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[MongoDocumentStore]:
        """Yield this store: each write is guarded on its own, positions saved after."""
        yield self

    async def ensure_collection(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Create single-field ascending indexes (the collection appears with them)."""
        coll = self._db[_checked_collection(collection)]
        for field in indexes:
            _path(field)
            await coll.create_index([(field, ASCENDING)])
        if not indexes:
            await coll.create_index([("updated_at", ASCENDING)])

    async def apply(
        self,
        collection: str,
        doc_id: str,
        position: Position,
        update: Update,
        event_id: str | None = None,
    ) -> bool:
        """Update only if the position is new to the document and `_events.<id>` is absent.

        With `$setIfNewer`, the filter first assumes every path's key wins (the only case
        where the upsert may insert); if the document disagrees it is read and, unless a
        guard fails, the change is sent again with the outcome observed per path.
        """
        guarded = _guarded_update(doc_id, position, update, event_id)
        return await self._apply_guarded(
            _checked_collection(collection), doc_id, position, event_id, guarded
        )

    async def _apply_guarded(
        self,
        collection: str,
        doc_id: str,
        position: Position,
        event_id: str | None,
        guarded: GuardedUpdate,
    ) -> bool:
        """Send a guarded upsert until it applies or a guard refuses it."""
        coll = self._db[collection]
        query, ops, newest = guarded
        wins = dict.fromkeys(newest, True)
        for _ in range(len(newest) + 3):
            try:
                result = await coll.update_one(
                    *_newest_update(query, ops, newest, wins), upsert=all(wins.values())
                )
                if result.matched_count or result.upserted_id is not None:
                    return True
            except DuplicateKeyError:
                pass  # the document exists and did not match the filter
            if not newest:
                return False  # the document already saw this position or event
            current = await coll.find_one(
                {"_id": doc_id}, {POSITIONS_FIELD: 1, EVENTS_FIELD: 1, NEWEST_FIELD: 1}
            )
            if current is None:
                wins = dict.fromkeys(newest, True)
                continue
            seen = (current.get(POSITIONS_FIELD) or {}).get(position_key(position))
            if (seen is not None and seen >= position.offset) or (
                event_id is not None and event_id in (current.get(EVENTS_FIELD) or {})
            ):
                return False
            stored = current.get(NEWEST_FIELD) or {}
            wins = {
                f: stored.get(newest_key(f)) is None or stored[newest_key(f)] < key
                for f, (key, _) in newest.items()
            }
        raise DocumentStoreError(f"{collection}/{doc_id}: concurrent updates kept racing")

    async def apply_many(self, changes: Sequence[DocumentChange]) -> list[bool]:
        """Send one guarded upsert per change: in order per document, documents concurrently.

        Every change is checked before anything is sent. Not a multi-update command:
        FerretDB 1.24 stopped answering (every client, until restarted) under the SIGKILL
        restart test when a batch's upserts were sent as one unordered `update` command,
        and it applies them one by one anyway (bench/README.md). Each upsert waits on a
        few round trips (client, FerretDB, PostgreSQL), so up to `concurrency` documents
        are written at once; each document's guard makes a partly applied batch safe to
        re-apply.
        """
        checked = [
            (
                _checked_collection(c.collection),
                c.doc_id,
                c.position,
                c.event_id,
                _guarded_update(c.doc_id, c.position, c.update, c.event_id),
            )
            for c in changes
        ]
        by_document: dict[tuple[str, str], list[int]] = {}
        for i, (collection, doc_id, *_) in enumerate(checked):
            by_document.setdefault((collection, doc_id), []).append(i)
        results = [False] * len(checked)
        gate = asyncio.Semaphore(self._concurrency)

        async def apply_in_order(indexes: list[int]) -> None:
            async with gate:
                for i in indexes:
                    results[i] = await self._apply_guarded(*checked[i])

        outcomes = await asyncio.gather(
            *(apply_in_order(ix) for ix in by_document.values()), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return results

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return the document or None."""
        found: Document | None = await self._db[_checked_collection(collection)].find_one(
            {"_id": doc_id}, dict.fromkeys(INTERNAL_FIELDS, 0)
        )
        return found

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int | None = None,
    ) -> list[Document]:
        """Run the filter as a MongoDB query."""
        query = {k: plain(v) for k, v in (filter or {}).items()}
        order = [(f, ASCENDING if d >= 0 else DESCENDING) for f, d in sort]
        if not any(f == "_id" for f, _ in order):
            order.append(("_id", ASCENDING))
        cursor = self._db[_checked_collection(collection)].find(
            query, dict.fromkeys(INTERNAL_FIELDS, 0)
        )
        cursor = cursor.sort(order)
        if limit is not None:
            cursor = cursor.limit(int(limit))
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def stored_positions(self, projection: str) -> dict[tuple[str, int], int]:
        """Read the `projection_positions` collection."""
        cursor = self._db[POSITIONS_COLLECTION].find({"projection": projection})
        return {(d["topic"], d["partition"]): d["next_offset"] async for d in cursor}

    async def save_position(
        self, projection: str, topic: str, partition: int, next_offset: int
    ) -> None:
        """Upsert the next offset of one partition."""
        await self._db[POSITIONS_COLLECTION].update_one(
            {"_id": f"{projection}|{topic}|{partition}"},
            {
                "$set": {
                    "projection": projection,
                    "topic": topic,
                    "partition": partition,
                    "next_offset": next_offset,
                    "updated_at": iso_time(datetime.now(UTC)),
                }
            },
            upsert=True,
        )

    async def close(self) -> None:
        """Close the client if this store opened it."""
        if self._client is not None:
            self._client.close()


def _guarded_update(
    doc_id: str, position: Position, update: Update, event_id: str | None = None
) -> GuardedUpdate:
    """Return the filter, update document and `$setIfNewer` entries of a guarded upsert."""
    unknown = set(update) - set(UPDATE_OPERATORS)
    if unknown:
        raise DocumentStoreError(f"unsupported update operators {sorted(unknown)}")
    guard = f"{POSITIONS_FIELD}.{position_key(position)}"
    newest = {
        field: _newest_entry(field, entry) for field, entry in update.get("$setIfNewer", {}).items()
    }
    ops: dict[str, dict[str, Any]] = {
        op: {field: plain(value) for field, value in fields.items()}
        for op, fields in update.items()
        if fields and op != "$setIfNewer"
    }
    for fields in [*ops.values(), newest]:
        for field in fields:
            _path(field)
    ops.setdefault("$set", {})[guard] = position.offset
    query: dict[str, Any] = {
        "_id": doc_id,
        "$or": [{guard: {"$exists": False}}, {guard: {"$lt": position.offset}}],
    }
    if event_id is not None:
        applied = f"{EVENTS_FIELD}.{_checked_event_id(event_id)}"
        query[applied] = {"$exists": False}
        ops["$set"][applied] = True
    return query, ops, newest


def _newest_update(
    query: dict[str, Any],
    ops: dict[str, dict[str, Any]],
    newest: Mapping[str, tuple[str, Any]],
    wins: Mapping[str, bool],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Add to a guarded update each `$setIfNewer` path's expected outcome and its effect."""
    if not newest:
        return query, ops
    conditions: list[dict[str, Any]] = []
    sets = dict(ops.get("$set", {}))
    for field, (key, value) in newest.items():
        stored = f"{NEWEST_FIELD}.{newest_key(field)}"
        if wins[field]:
            conditions.append({"$or": [{stored: {"$exists": False}}, {stored: {"$lt": key}}]})
            sets[field] = plain(value)
            sets[stored] = key
        else:
            conditions.append({stored: {"$gte": key}})
    return {**query, "$and": conditions}, {**ops, "$set": sets}


# -- in memory ------------------------------------------------------------------------------


class InMemoryDocumentStore:
    """Keep documents in dicts (unit tests); same contract as the real adapters."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, tuple[Document, dict[str, Any]]]] = {}
        self._positions: dict[tuple[str, str, int], int] = {}

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[InMemoryDocumentStore]:
        """Yield this store."""
        yield self

    async def ensure_collection(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Create the collection if missing."""
        self._docs.setdefault(_checked_collection(collection), {})

    async def apply(
        self,
        collection: str,
        doc_id: str,
        position: Position,
        update: Update,
        event_id: str | None = None,
    ) -> bool:
        """Apply unless the document already saw the position or the event."""
        docs = self._docs.setdefault(_checked_collection(collection), {})
        doc, meta = docs.get(doc_id, ({}, {}))
        done = apply_guarded(doc, meta, position, update, event_id, inserted=doc_id not in docs)
        if done is None:
            return False
        docs[doc_id] = done
        return True

    async def apply_many(self, changes: Sequence[DocumentChange]) -> list[bool]:
        """Check every change, then apply them one by one."""
        for c in changes:
            _checked_collection(c.collection)
            _guarded_update(c.doc_id, c.position, c.update, c.event_id)  # checks every path
        return [
            await self.apply(c.collection, c.doc_id, c.position, c.update, c.event_id)
            for c in changes
        ]

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """Return a copy of the document or None."""
        found = self._docs.get(_checked_collection(collection), {}).get(doc_id)
        return None if found is None else {"_id": doc_id, **copy.deepcopy(found[0])}

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int | None = None,
    ) -> list[Document]:
        """Filter and sort in Python (equality and $gt/$gte/$lt/$lte/$ne/$in/$exists)."""
        docs = self._docs.get(_checked_collection(collection), {})
        found = [
            {"_id": doc_id, **copy.deepcopy(doc)}
            for doc_id, (doc, _) in sorted(docs.items())
            if all(
                _matches(_lookup({"_id": doc_id, **doc}, f), c) for f, c in (filter or {}).items()
            )
        ]
        for field, direction in reversed(list(sort)):
            present = [d for d in found if _lookup(d, field) is not None]
            missing = [d for d in found if _lookup(d, field) is None]
            present.sort(key=lambda d: _lookup(d, field), reverse=direction < 0)
            found = missing + present if direction >= 0 else present + missing
        return found if limit is None else found[: int(limit)]

    async def stored_positions(self, projection: str) -> dict[tuple[str, int], int]:
        """Return the stored positions."""
        return {(t, p): o for (name, t, p), o in self._positions.items() if name == projection}

    async def save_position(
        self, projection: str, topic: str, partition: int, next_offset: int
    ) -> None:
        """Store the next offset."""
        self._positions[(projection, topic, partition)] = next_offset

    async def close(self) -> None:
        """Do nothing."""


def _lookup(doc: Document, field: str) -> Any:
    node: Any = doc
    for part in field.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _matches(value: Any, condition: Any) -> bool:
    if (
        isinstance(condition, Mapping)
        and condition
        and all(str(k).startswith("$") for k in condition)
    ):
        for op, operand in condition.items():
            operand = plain(operand)
            if op == "$exists":
                ok = (value is not None) == bool(operand)
            elif op == "$in":
                ok = value in operand
            elif op == "$ne":
                ok = value != operand
            elif op in FILTER_OPERATORS:
                if value is None or (
                    type(value) is not type(operand)
                    and not (isinstance(value, int | float) and isinstance(operand, int | float))
                ):
                    return False
                ok = {
                    "$gt": value > operand,
                    "$gte": value >= operand,
                    "$lt": value < operand,
                    "$lte": value <= operand,
                }[op]
            else:
                raise DocumentStoreError(f"unsupported filter operator {op!r}")
            if not ok:
                return False
        return True
    return bool(value == plain(condition))


# -- runner sink ----------------------------------------------------------------------------


class DocumentSink:
    """Apply a document projection's batch through a store, then store the position."""

    def __init__(self, projection: DocumentProjection, store: DocumentStore) -> None:
        self.projection = projection
        self._store = store
        self._batched = isinstance(projection, BatchDocumentProjection)

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Return the positions stored by the document store."""
        return await self._store.stored_positions(self.projection.name)

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[tuple[int, Event | None]]
    ) -> BatchResult:
        """Apply events past the stored position; write the new position last."""
        name = self.projection.name
        async with self._store.batch() as tx:
            stored = (await tx.stored_positions(name)).get((topic, partition), 0)
            pending, skipped, duplicates, next_offset = new_events(
                self.projection.event_types, topic, partition, records, stored
            )
            if self._batched:
                projection = cast(BatchDocumentProjection, self.projection)
                changes = [c for e, p in pending for c in projection.changes(e, p)]
                if changes:
                    await tx.apply_many(changes)
            else:
                for event, position in pending:
                    await self.projection.apply(tx, event, position)
            if next_offset != stored:
                await tx.save_position(name, topic, partition, next_offset)
        return BatchResult(next_offset, len(pending), skipped, duplicates)


async def build_document_store(settings: Settings, pool: asyncpg.Pool | None) -> DocumentStore:
    """Create the configured store: `mongo` (default), `postgres` (needs `pool`) or `memory`."""
    kind = settings.document_store.strip().lower()
    if kind == "memory":
        return InMemoryDocumentStore()
    if kind == "mongo":
        return MongoDocumentStore.connect(
            settings.mongo_url, settings.mongo_database, settings.mongo_write_concurrency
        )
    if kind == "postgres":
        if pool is None:
            raise DocumentStoreError("the postgres document store needs a PostgreSQL pool")
        return PostgresDocumentStore(pool)
    raise DocumentStoreError(f"unknown document store {settings.document_store!r}")
