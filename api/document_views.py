"""Read-side queries over document read models through the document-store port's reads.

Keyset paging uses only what the port's `find` supports (equality and range operators):
the page after (value, id) is the documents with sort field == value and `_id` > id,
followed by those with sort field strictly after value; `_id` ascending breaks ties in
both orders. Sorting by a field lists only documents that have it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.pagination import ColumnType, Cursor, Page, convert, decode_cursor, encode_cursor
from projections.documents import DocumentStore

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
