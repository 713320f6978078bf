"""Bias read models: results per content, alert history and the daily roll-up."""

from __future__ import annotations

import functools
import json
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from api import views
from api.caching import cached_response
from api.errors import ErrorBody
from api.listing import ID_PATTERN, ListParams, not_found, pg_list, pg_list_params
from api.models import BiasAlertPage, BiasDailyPage, BiasResult, BiasResultPage
from api.pagination import Where
from api.security import require_scope, scope_docs

SCOPE = "read:bias"
RESULTS = ("bias-results",)
DAILY = ("bias-daily",)
Level = Literal["low", "medium", "high", "critical"]
Dimension = Literal[
    "gender",
    "race_ethnicity",
    "religion",
    "age",
    "disability",
    "nationality",
    "sexual_orientation",
    "socioeconomic",
    "physical_appearance",
    "profession",
    "unknown",
]


def active_model_version(settings: object) -> str | None:
    """Return the model version the API answers for by default (None: the newest result).

    `bias_active_model_version` when set, else the version of `bias_model` recorded in the
    models' MANIFEST.json (the version the live scorer loads), read once.
    """
    explicit = getattr(settings, "bias_active_model_version", None)
    if explicit:
        return str(explicit)
    models_dir = getattr(settings, "models_dir", None)
    kind = getattr(settings, "bias_model", None)
    if models_dir is None or kind is None:
        return None
    return _manifest_version(str(models_dir), str(kind))


@functools.lru_cache(maxsize=8)
def _manifest_version(models_dir: str, kind: str) -> str | None:
    try:
        manifest = json.loads((FilePath(models_dir) / "MANIFEST.json").read_text("utf-8"))
        version = manifest["models"][kind]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(version) if version else None


router = APIRouter(tags=["bias"], dependencies=[Depends(require_scope(SCOPE))])
_DOCS = scope_docs(SCOPE)


@router.get(
    "/v1/content/{content_id}/bias",
    response_model=BiasResult,
    summary="Bias result of one content",
    description=(
        "Result of a content for the active model version (the newest result when that"
        f" version has none), or the one of `model_version`. Scope `{SCOPE}`."
    ),
    **scope_docs(SCOPE, {404: {"model": ErrorBody, "description": "No result"}}),
)
async def content_bias(
    request: Request,
    content_id: Annotated[str, Path(pattern=ID_PATTERN, description="Content id")],
    model_version: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="A model version; default the active one"),
    ] = None,
) -> Response:
    """Return a content's bias result for the active model version, or for one version."""
    active = active_model_version(getattr(request.app.state, "settings", None))

    async def compute(conn: asyncpg.Connection) -> BaseModel | None:
        found = await views.bias_for_content(conn, content_id, model_version, active)
        return BiasResult.model_validate(found) if found else None

    return await cached_response(
        request, RESULTS, compute, not_found("bias result for content", content_id)
    )


@router.get(
    "/v1/bias/results",
    response_model=BiasResultPage,
    summary="List bias results",
    description=f"Bias results, filtered, sorted and paged by cursor. Scope `{SCOPE}`.",
    **_DOCS,
)
async def bias_results(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.BIAS_RESULTS))],
    since: Annotated[AwareDatetime | None, Query(description="scored_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="scored_at < until")] = None,
    level: Annotated[Level | None, Query(description="Bias level")] = None,
    dimension: Annotated[
        Dimension | None, Query(description="Results that scored this dimension")
    ] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="overall_score >=")] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1, description="overall_score <=")] = None,
    model_version: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    model_name: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    source: Annotated[
        str | None, Query(max_length=256, description="Envelope source of the event")
    ] = None,
    campaign_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
) -> Response:
    """Return a page of bias results."""
    where = Where()
    where.add_if("scored_at >= {}", since)
    where.add_if("scored_at < {}", until)
    where.add_if("level = {}", level)
    where.add_if("dimensions ? {}", dimension)
    where.add_if("overall_score >= {}", min_score)
    where.add_if("overall_score <= {}", max_score)
    where.add_if("model_version = {}", model_version)
    where.add_if("model_name = {}", model_name)
    where.add_if("source = {}", source)
    where.add_if("campaign_id = {}", campaign_id)
    where.add_if("language = {}", language)
    return await pg_list(
        request, RESULTS, views.BIAS_RESULTS, where, page, BiasResultPage, views.bias_row
    )


@router.get(
    "/v1/bias/alerts",
    response_model=BiasAlertPage,
    summary="List bias alerts",
    description=f"Alert history, filtered, sorted and paged by cursor. Scope `{SCOPE}`.",
    **_DOCS,
)
async def bias_alerts(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.BIAS_ALERTS))],
    since: Annotated[AwareDatetime | None, Query(description="raised_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="raised_at < until")] = None,
    level: Annotated[Level | None, Query()] = None,
    dimension: Annotated[Dimension | None, Query()] = None,
    content_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    model_version: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Response:
    """Return a page of alerts."""
    where = Where()
    where.add_if("raised_at >= {}", since)
    where.add_if("raised_at < {}", until)
    where.add_if("level = {}", level)
    where.add_if("{} = ANY(dimensions)", dimension)
    where.add_if("content_id = {}", content_id)
    where.add_if("model_version = {}", model_version)
    return await pg_list(
        request, RESULTS, views.BIAS_ALERTS, where, page, BiasAlertPage, views.alert_row
    )


@router.get(
    "/v1/bias/daily",
    response_model=BiasDailyPage,
    summary="Daily bias roll-up",
    description=(
        "Per UTC day and model version: count, average / min / max score, counts by level and"
        f" the score histogram. Scope `{SCOPE}`."
    ),
    **_DOCS,
)
async def bias_daily(
    request: Request,
    page: Annotated[ListParams, Depends(pg_list_params(views.BIAS_DAILY))],
    since: Annotated[date | None, Query(description="day >= since")] = None,
    until: Annotated[date | None, Query(description="day < until")] = None,
    model_version: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Response:
    """Return a page of the daily roll-up."""
    where = Where()
    where.add_if("day >= {}", since)
    where.add_if("day < {}", until)
    where.add_if("model_version = {}", model_version)
    return await pg_list(
        request, DAILY, views.BIAS_DAILY, where, page, BiasDailyPage, views.daily_row
    )
