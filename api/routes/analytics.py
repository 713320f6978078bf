"""Analytics read models: closed metric windows and model usage per day."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime

from api import views
from api.listing import ID_PATTERN, ListParams, pg_list, pg_list_params
from api.models import MetricWindowPage, ModelUsagePage
from api.pagination import Where
from api.security import require_scope, scope_docs

SCOPE = "read:analytics"
WINDOWS = ("analytics-metrics",)
USAGE = ("model-usage",)
GROUP_PATTERN = r"^[A-Za-z0-9._:\-/ *]{1,128}$"

router = APIRouter(tags=["analytics"], dependencies=[Depends(require_scope(SCOPE))])
_DOCS = scope_docs(SCOPE)


@router.get(
    "/v1/analytics/windows",
    response_model=MetricWindowPage,
    summary="List closed metric windows",
    description=(
        "Aggregates of closed tumbling windows (minute, hour, day) by event type, model or bias"
        f" dimension. Scope `{SCOPE}`."
    ),
    **_DOCS,
)
async def metric_windows(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.METRIC_WINDOWS))],
    since: Annotated[AwareDatetime | None, Query(description="window_start >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="window_start < until")] = None,
    family: Annotated[Literal["bias", "model_usage", "analytics", "other"] | None, Query()] = None,
    window_kind: Annotated[Literal["minute", "hour", "day", "other"] | None, Query()] = None,
    group_by: Annotated[
        str | None, Query(pattern=GROUP_PATTERN, description="e.g. event_type, model, dimension")
    ] = None,
    group_value: Annotated[str | None, Query(pattern=GROUP_PATTERN)] = None,
    dimension: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="Shorthand: group_by=dimension and this value"),
    ] = None,
    model: Annotated[
        str | None,
        Query(pattern=GROUP_PATTERN, description="Shorthand: group_by=model and this value"),
    ] = None,
    level: Annotated[
        Literal["low", "medium", "high", "critical"] | None,
        Query(description="Shorthand: group_by=level and this bias level"),
    ] = None,
    source: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Return a page of metric windows."""
    where = Where()
    where.add_if("window_start >= {}", since)
    where.add_if("window_start < {}", until)
    where.add_if("family = {}", family)
    where.add_if("window_kind = {}", window_kind)
    where.add_if("group_by = {}", group_by)
    where.add_if("group_value = {}", group_value)
    if dimension is not None:
        where.add("group_by = {} AND group_value = {}", "dimension", dimension)
    if model is not None:
        where.add("group_by = {} AND group_value = {}", "model", model)
    if level is not None:
        where.add("group_by = {} AND group_value = {}", "level", level)
    where.add_if("source = {}", source)
    return await pg_list(
        request, WINDOWS, views.METRIC_WINDOWS, where, page, MetricWindowPage, views.window_row
    )


@router.get(
    "/v1/usage/models",
    response_model=ModelUsagePage,
    summary="Model usage per model and day",
    description=(
        f"Requests, tokens, cost and latency (avg, p95) per model and UTC day. Scope `{SCOPE}`."
    ),
    **_DOCS,
)
async def model_usage(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.MODEL_USAGE))],
    since: Annotated[date | None, Query(description="day >= since")] = None,
    until: Annotated[date | None, Query(description="day < until")] = None,
    model: Annotated[str | None, Query(pattern=GROUP_PATTERN)] = None,
    provider: Annotated[str | None, Query(pattern=GROUP_PATTERN)] = None,
) -> Response:
    """Return a page of model usage rows."""
    where = Where()
    where.add_if("day >= {}", since)
    where.add_if("day < {}", until)
    where.add_if("model = {}", model)
    where.add_if("provider = {}", provider)
    return await pg_list(request, USAGE, views.MODEL_USAGE, where, page, ModelUsagePage)
