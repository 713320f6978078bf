"""Shared list-endpoint plumbing: paging parameters and the cached PostgreSQL page answer."""

# No `from __future__ import annotations`: FastAPI must evaluate the annotations of the
# dependency built inside `list_params`, which refer to that closure's variables.

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import HTTPException, Query, Request, Response
from pydantic import BaseModel

from api.caching import cached_response
from api.errors import error_response
from api.pagination import InvalidCursor, ListSpec, Order, Where, decode_cursor, fetch_page

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
MAX_LIMIT = 500
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class ListParams:
    """Paging and sorting of one list request."""

    limit: int
    cursor: str | None
    sort: str
    order: Order


def list_params(
    sorts: Sequence[str], default_sort: str, default_order: Order = "desc"
) -> Callable[..., Awaitable[ListParams]]:
    """Create the dependency that reads `limit`, `cursor`, `sort` and `order`."""
    pattern = "^(" + "|".join(sorts) + ")$"

    async def dependency(
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}")
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=2048,
                description="Opaque `next_cursor` of the previous page, with the same sort",
            ),
        ] = None,
        sort: Annotated[
            str | None,
            Query(
                pattern=pattern,
                description=f"Sort field, one of: {', '.join(sorts)} (default {default_sort})",
                json_schema_extra={"enum": list(sorts)},
            ),
        ] = None,
        order: Annotated[
            Literal["asc", "desc"] | None,
            Query(description=f"Sort order (default {default_order})"),
        ] = None,
    ) -> ListParams:
        params = ListParams(limit, cursor, sort or default_sort, order or default_order)
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except InvalidCursor as exc:
                raise invalid_cursor(exc) from exc
            if after.sort != params.sort or after.order != params.order:
                raise invalid_cursor(InvalidCursor("cursor was made for another sort or order"))
        return params

    return dependency


async def reject_nul_bytes(request: Request) -> None:
    """Refuse a NUL byte anywhere in the path or query (PostgreSQL text cannot hold one)."""
    if "\x00" in request.url.path:
        raise HTTPException(422, "the path contains a NUL byte")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise HTTPException(422, f"query parameter {name.strip(chr(0))!r} contains a NUL byte")


def invalid_cursor(exc: InvalidCursor) -> HTTPException:
    """Return the 422 raised for a cursor this API cannot use."""
    return HTTPException(422, f"invalid cursor: {exc}")


def pg_list_params(spec: ListSpec) -> Callable[..., Awaitable[ListParams]]:
    """Create the paging dependency of a PostgreSQL list."""
    return list_params(list(spec.sorts), spec.default_sort, spec.default_order)


Shape = Callable[[dict[str, Any]], dict[str, Any]]


async def pg_list(
    request: Request,
    projections: Sequence[str],
    spec: ListSpec,
    where: Where,
    params: ListParams,
    page_model: type[BaseModel],
    shape: Shape | None = None,
) -> Response:
    """Answer one page of a PostgreSQL read model through the position-keyed cache."""

    async def compute(conn: asyncpg.Connection) -> BaseModel:
        try:
            page = await fetch_page(
                conn,
                spec,
                where,
                sort=params.sort,
                order=params.order,
                limit=params.limit,
                cursor=params.cursor,
            )
        except InvalidCursor as exc:
            raise invalid_cursor(exc) from exc
        items = [shape(r) if shape else r for r in page.rows]
        return page_model(items=items, next_cursor=page.next_cursor, limit=params.limit)

    return await cached_response(request, projections, compute)


def not_found(what: str, ident: str) -> Callable[[], Response]:
    """Return a factory of the 404 answer for an unknown id."""
    return lambda: error_response(404, f"no {what} {ident!r}")
