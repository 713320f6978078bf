"""Document read models: campaigns, opportunities and agent tasks (MongoDB or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from api.caching import document_cached_response
from api.document_views import (
    AGENT_TASKS,
    CAMPAIGNS,
    OPPORTUNITIES,
    DocumentSpec,
    find_page,
    public_document,
)
from api.errors import ErrorBody
from api.listing import ID_PATTERN, ListParams, invalid_cursor, list_params, not_found
from api.models import (
    AgentTask,
    AgentTaskPage,
    Campaign,
    CampaignPage,
    Opportunity,
    OpportunityPage,
)
from api.pagination import InvalidCursor
from api.security import require_scope, scope_docs
from projections.documents import DocumentStore, iso_time

NOT_FOUND: dict[int | str, Any] = {404: {"model": ErrorBody, "description": "Unknown id"}}


def doc_list_params(spec: DocumentSpec) -> Callable[..., Any]:
    """Create the paging dependency of a document list."""
    return list_params(list(spec.sorts), spec.default_sort)


def _range(since: Any, until: Any) -> dict[str, Any] | None:
    condition = {}
    for op, value in (("$gte", since), ("$lt", until)):
        if isinstance(value, datetime):
            condition[op] = iso_time(value)
        elif isinstance(value, date):
            condition[op] = value.isoformat()
    return condition or None


def _filter(**conditions: Any) -> dict[str, Any]:
    return {k: v for k, v in conditions.items() if v is not None}


async def _list(
    request: Request,
    spec: DocumentSpec,
    filter: dict[str, Any],
    params: ListParams,
    page_model: type[BaseModel],
) -> Response:
    raw = request.app.state.settings.store_raw_text

    async def compute(store: DocumentStore) -> BaseModel:
        try:
            page = await find_page(
                store,
                spec,
                filter,
                sort=params.sort,
                order=params.order,
                limit=params.limit,
                cursor=params.cursor,
            )
        except InvalidCursor as exc:
            raise invalid_cursor(exc) from exc
        items = [public_document(d, store_raw_text=raw) for d in page.rows]
        return page_model(items=items, next_cursor=page.next_cursor, limit=params.limit)

    return await document_cached_response(request, spec.projection, compute)


async def _one(
    request: Request, spec: DocumentSpec, doc_id: str, model: type[BaseModel], what: str
) -> Response:
    raw = request.app.state.settings.store_raw_text

    async def compute(store: DocumentStore) -> BaseModel | None:
        doc = await store.get(spec.collection, doc_id)
        return model.model_validate(public_document(doc, store_raw_text=raw)) if doc else None

    return await document_cached_response(
        request, spec.projection, compute, not_found(what, doc_id)
    )


def _routes(scope: str) -> tuple[APIRouter, dict[str, Any], dict[str, Any]]:
    router = APIRouter(dependencies=[Depends(require_scope(scope))])
    return router, scope_docs(scope), scope_docs(scope, NOT_FOUND)


# --- campaigns --------------------------------------------------------------------------

campaign_router, _CDOCS, _CDOCS_404 = _routes("read:campaigns")


@campaign_router.get(
    "/v1/campaigns",
    response_model=CampaignPage,
    tags=["campaigns"],
    summary="List campaigns",
    description=(
        "Campaigns with channels, items (hash and length of the text, never the text unless"
        " raw text storage is on), item scores and screening verdict. Scope `read:campaigns`."
    ),
    **_CDOCS,
)
async def list_campaigns(
    request: Request,
    page: Annotated[ListParams, Depends(doc_list_params(CAMPAIGNS))],
    status: Annotated[Literal["draft", "active", "paused", "completed"] | None, Query()] = None,
    verdict: Annotated[Literal["approved", "needs_review", "incomplete"] | None, Query()] = None,
    opportunity_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[AwareDatetime | None, Query(description="planned_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="planned_at < until")] = None,
    start_from: Annotated[date | None, Query(description="start_date >= start_from")] = None,
    start_until: Annotated[date | None, Query(description="start_date < start_until")] = None,
) -> Response:
    """Return a page of campaigns."""
    filter = _filter(
        status=status,
        verdict=verdict,
        opportunity_id=opportunity_id,
        planned_at=_range(since, until),
        start_date=_range(start_from, start_until),
    )
    return await _list(request, CAMPAIGNS, filter, page, CampaignPage)


@campaign_router.get(
    "/v1/campaigns/{campaign_id}",
    response_model=Campaign,
    tags=["campaigns"],
    summary="One campaign",
    description="Scope `read:campaigns`.",
    **_CDOCS_404,
)
async def get_campaign(
    request: Request, campaign_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> Response:
    """Return one campaign."""
    return await _one(request, CAMPAIGNS, campaign_id, Campaign, "campaign")


# --- opportunities ----------------------------------------------------------------------

opportunity_router, _ODOCS, _ODOCS_404 = _routes("read:opportunities")


@opportunity_router.get(
    "/v1/opportunities",
    response_model=OpportunityPage,
    tags=["opportunities"],
    summary="List opportunities",
    description="Researched niches with their opportunity score. Scope `read:opportunities`.",
    **_ODOCS,
)
async def list_opportunities(
    request: Request,
    page: Annotated[ListParams, Depends(doc_list_params(OPPORTUNITIES))],
    band: Annotated[
        Literal["excellent", "very_good", "good", "fair", "limited"] | None, Query()
    ] = None,
    market_segment: Annotated[str | None, Query(max_length=128)] = None,
    opportunity_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    min_score: Annotated[float | None, Query(ge=0, description="overall_score >=")] = None,
    since: Annotated[AwareDatetime | None, Query(description="scored_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="scored_at < until")] = None,
) -> Response:
    """Return a page of opportunities."""
    filter = _filter(
        band=band,
        market_segment=market_segment,
        opportunity_id=opportunity_id,
        overall_score={"$gte": min_score} if min_score is not None else None,
        scored_at=_range(since, until),
    )
    return await _list(request, OPPORTUNITIES, filter, page, OpportunityPage)


@opportunity_router.get(
    "/v1/opportunities/{niche_id}",
    response_model=Opportunity,
    tags=["opportunities"],
    summary="One opportunity (by niche id)",
    description="Scope `read:opportunities`.",
    **_ODOCS_404,
)
async def get_opportunity(
    request: Request, niche_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> Response:
    """Return one opportunity."""
    return await _one(request, OPPORTUNITIES, niche_id, Opportunity, "opportunity")


# --- agent tasks ------------------------------------------------------------------------

agent_task_router, _ADOCS, _ADOCS_404 = _routes("read:ops")


@agent_task_router.get(
    "/v1/agent-tasks",
    response_model=AgentTaskPage,
    tags=["agent tasks"],
    summary="List agent tasks",
    description="Completed agent tasks with their steps. Scope `read:ops`.",
    **_ADOCS,
)
async def list_agent_tasks(
    request: Request,
    page: Annotated[ListParams, Depends(doc_list_params(AGENT_TASKS))],
    status: Annotated[
        Literal["pending", "in_progress", "completed", "failed", "cancelled"] | None, Query()
    ] = None,
    team_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    agent_role: Annotated[
        Literal["researcher", "developer", "monetization", "marketing", "feedback", "other"] | None,
        Query(),
    ] = None,
    workflow_step: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    source: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[AwareDatetime | None, Query(description="completed_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="completed_at < until")] = None,
) -> Response:
    """Return a page of agent tasks."""
    filter = _filter(
        status=status,
        team_id=team_id,
        agent_role=agent_role,
        workflow_step=workflow_step,
        source=source,
        completed_at=_range(since, until),
    )
    return await _list(request, AGENT_TASKS, filter, page, AgentTaskPage)


@agent_task_router.get(
    "/v1/agent-tasks/{task_id}",
    response_model=AgentTask,
    tags=["agent tasks"],
    summary="One agent task",
    description="Scope `read:ops`.",
    **_ADOCS_404,
)
async def get_agent_task(
    request: Request, task_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> Response:
    """Return one agent task."""
    return await _one(request, AGENT_TASKS, task_id, AgentTask, "agent task")
