"""Revenue read model: projections and their months."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from api import views
from api.caching import cached_response
from api.errors import ErrorBody
from api.listing import ID_PATTERN, ListParams, not_found, pg_list, pg_list_params
from api.models import RevenueProjectionDetail, RevenueProjectionPage
from api.pagination import Where
from api.security import require_scope, scope_docs

SCOPE = "read:revenue"
PROJECTIONS = ("revenue-projections",)

router = APIRouter(tags=["revenue"], dependencies=[Depends(require_scope(SCOPE))])


@router.get(
    "/v1/revenue/projections",
    response_model=RevenueProjectionPage,
    summary="List revenue projections",
    description=f"Revenue projections (summaries), filtered and paged. Scope `{SCOPE}`.",
    **scope_docs(SCOPE),
)
async def revenue_projections(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.REVENUE_PROJECTIONS))],
    since: Annotated[AwareDatetime | None, Query(description="projected_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="projected_at < until")] = None,
    business_model: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    source: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Return a page of revenue projections."""
    where = Where()
    where.add_if("projected_at >= {}", since)
    where.add_if("projected_at < {}", until)
    where.add_if("business_model = {}", business_model)
    where.add_if("currency = {}", currency)
    where.add_if("source = {}", source)
    return await pg_list(
        request, PROJECTIONS, views.REVENUE_PROJECTIONS, where, page, RevenueProjectionPage
    )


@router.get(
    "/v1/revenue/projections/{projection_id}",
    response_model=RevenueProjectionDetail,
    summary="One revenue projection with its months",
    description=f"Scope `{SCOPE}`.",
    **scope_docs(SCOPE, {404: {"model": ErrorBody, "description": "Unknown projection"}}),
)
async def revenue_projection(
    request: Request,
    projection_id: Annotated[str, Path(pattern=ID_PATTERN)],
) -> Response:
    """Return one revenue projection month by month."""

    async def compute(conn: asyncpg.Connection) -> BaseModel | None:
        found = await views.revenue_projection(conn, projection_id)
        return RevenueProjectionDetail.model_validate(found) if found else None

    return await cached_response(
        request, PROJECTIONS, compute, not_found("revenue projection", projection_id)
    )
