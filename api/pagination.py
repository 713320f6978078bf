"""Opaque keyset cursors and the PostgreSQL page query built on them.

A cursor is URL-safe base64 of a small JSON object: the sort field and order it was made
for, the last row's sort value and the last row's id columns. The next page starts strictly
after that (sort value, id) pair, so rows inserted meanwhile never shift a page and no row
is returned twice or skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import asyncpg

Order = Literal["asc", "desc"]
ColumnType = Literal["timestamptz", "date", "float8", "int8", "text", "uuid"]
MAX_CURSOR_LENGTH = 2048


class InvalidCursor(ValueError):
    """Raised when a cursor is malformed or was made for another sort."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Locate the last row of a page for one sort field and order."""

    sort: str
    order: Order
    value: Any
    ids: tuple[Any, ...]


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(cursor: Cursor) -> str:
    """Render a cursor as an opaque URL-safe string."""
    raw = json.dumps(
        {
            "s": cursor.sort,
            "o": cursor.order,
            "v": _to_json(cursor.value),
            "i": [_to_json(i) for i in cursor.ids],
        },
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """Parse a cursor, raising InvalidCursor when it is not one this API made."""
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if (
        not isinstance(data, dict)
        or set(data) != {"s", "o", "v", "i"}
        or not isinstance(data["s"], str)
        or data["o"] not in ("asc", "desc")
        or not isinstance(data["i"], list)
        or not data["i"]
    ):
        raise InvalidCursor("cursor is not valid")
    return Cursor(data["s"], data["o"], data["v"], tuple(data["i"]))


def convert(value: Any, kind: ColumnType) -> Any:
    """Turn a JSON cursor value back into the column's Python type, or raise InvalidCursor."""
    try:
        if kind == "timestamptz":
            if not isinstance(value, str):
                raise TypeError(value)
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("naive timestamp")
            return parsed
        if kind == "date":
            if not isinstance(value, str):
                raise TypeError(value)
            return date.fromisoformat(value)
        if kind == "float8":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(value)
            return float(value)
        if kind == "int8":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(value)
            return value
        if not isinstance(value, str):
            raise TypeError(value)
        if kind == "uuid":
            return uuid.UUID(value)
        return value
    except (TypeError, ValueError) as exc:
        raise InvalidCursor("cursor is not valid") from exc


@dataclass(frozen=True, slots=True)
class ListSpec:
    """Describe a read-model table: what to select, its unique key and its sortable columns."""

    table: str
    select: str
    ids: Mapping[str, ColumnType]
    sorts: Mapping[str, ColumnType]
    default_sort: str
    default_order: Order = "desc"

    def sort_pattern(self) -> str:
        """Return the regex that accepts exactly the sortable fields."""
        return "^(" + "|".join(self.sorts) + ")$"


@dataclass(slots=True)
class Where:
    """Collect SQL conditions and their positional parameters."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, template: str, *values: Any) -> None:
        """Add a condition whose `{}` placeholders take the given values in order."""
        slots = []
        for value in values:
            self.params.append(value)
            slots.append(f"${len(self.params)}")
        self.conditions.append(template.format(*slots))

    def add_if(self, template: str, value: Any) -> None:
        """Add a one-parameter condition when the value is given."""
        if value is not None:
            self.add(template, value)


@dataclass(frozen=True, slots=True)
class Page:
    """Hold one page of rows and the cursor of the next page (None on the last page)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def _key_columns(spec: ListSpec, sort: str) -> list[tuple[str, ColumnType]]:
    columns = [(sort, spec.sorts[sort])]
    columns += [(c, t) for c, t in spec.ids.items() if c != sort]
    return columns


async def fetch_page(
    conn: asyncpg.Pool | asyncpg.Connection,
    spec: ListSpec,
    where: Where,
    *,
    sort: str | None,
    order: Order | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """Run the keyset page query: rows after the cursor in (sort, id) order, plus one to peek."""
    sort = sort or spec.default_sort
    order = order or spec.default_order
    if sort not in spec.sorts:
        raise InvalidCursor(f"unknown sort field {sort!r}")
    keys = _key_columns(spec, sort)
    conditions = Where(list(where.conditions), list(where.params))
    if cursor is not None:
        after = decode_cursor(cursor)
        if after.sort != sort or after.order != order:
            raise InvalidCursor("cursor was made for another sort or order")
        id_types = [t for c, t in keys[1:]]
        if len(after.ids) != len(id_types):
            raise InvalidCursor("cursor is not valid")
        values = [convert(after.value, keys[0][1])]
        values += [convert(v, t) for v, t in zip(after.ids, id_types, strict=True)]
        op = ">" if order == "asc" else "<"
        lhs = ", ".join(c for c, _ in keys)
        rhs = ", ".join("{}" for _ in keys)
        conditions.add(f"({lhs}) {op} ({rhs})", *values)
    direction = "ASC" if order == "asc" else "DESC"
    order_by = ", ".join(f"{c} {direction}" for c, _ in keys)
    where_sql = f"WHERE {' AND '.join(conditions.conditions)}" if conditions.conditions else ""
    conditions.params.append(limit + 1)
    sql = (
        f"SELECT {spec.select} FROM {spec.table} {where_sql}"
        f" ORDER BY {order_by} LIMIT ${len(conditions.params)}"
    )
    records = await conn.fetch(sql, *conditions.params)
    rows = [dict(r) for r in records[:limit]]
    next_cursor = None
    if len(records) > limit and rows:
        last = rows[-1]
        next_cursor = encode_cursor(
            Cursor(sort, order, last[sort], tuple(last[c] for c, _ in keys[1:]))
        )
    return Page(rows, next_cursor)


def page_after_documents(
    docs: Sequence[Mapping[str, Any]], *, sort: str, order: Order, limit: int, id_field: str
) -> Page:
    """Cut a page from documents already ordered and fetched with one extra to peek."""
    rows = [dict(d) for d in docs[:limit]]
    next_cursor = None
    if len(docs) > limit and rows:
        last = rows[-1]
        next_cursor = encode_cursor(Cursor(sort, order, last.get(sort), (last[id_field],)))
    return Page(rows, next_cursor)
