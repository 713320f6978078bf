"""Consumer lag: JSON at `/v1/ops/lag` (scope read:ops) and the `/lag` web dashboard.

The dashboard page and its assets are open (they hold no data); the page calls the JSON
routes with an API key it takes from `?key=` once (then keeps it in the browser's
localStorage and drops it from the address bar) or asks for in a form.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from api.caching import respond
from api.listing import ID_PATTERN
from api.security import require_scope, scope_docs
from operations.lag.exposition import register_default
from operations.lag.history import HistoryPoint, PostgresLagHistory
from operations.lag.model import LagSnapshot
from operations.lag.monitor import LagConfig, LagMonitor

SCOPE = "read:ops"
STATIC = Path(__file__).resolve().parent.parent / "static" / "lag"
ASSETS = {"lag.js": "text/javascript", "lag.css": "text/css"}
MAX_HISTORY_MINUTES = 26 * 60

router = APIRouter(tags=["ops"], dependencies=[Depends(require_scope(SCOPE))])
page_router = APIRouter(tags=["dashboards"])


async def start_monitor(app: FastAPI, settings: Any, pool: asyncpg.Pool) -> None:
    """Start the lag collector in the background when enabled; expose it at /metrics."""
    config = LagConfig.from_settings(settings)
    app.state.lag_monitor = None
    app.state.lag_task = None
    app.state.lag_history = PostgresLagHistory(pool)
    if not config.enabled:
        return
    monitor = LagMonitor(config, app.state.lag_history)
    app.state.lag_monitor = monitor
    app.state.lag_task = asyncio.create_task(monitor.run(), name="lag-collector")
    register_default().attach(monitor.current)


async def stop_monitor(app: FastAPI) -> None:
    """Stop the collector started by `start_monitor`."""
    monitor: LagMonitor | None = getattr(app.state, "lag_monitor", None)
    task: asyncio.Task[None] | None = getattr(app.state, "lag_task", None)
    if monitor is None or task is None:
        return
    register_default().detach(monitor.current)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await monitor.close()


def _snapshot(request: Request) -> tuple[LagMonitor, LagSnapshot]:
    monitor: LagMonitor | None = request.app.state.lag_monitor
    if monitor is None:
        raise HTTPException(503, "the lag collector is disabled on this API process")
    if monitor.latest is None:
        raise HTTPException(
            503, "the first lag collection has not finished yet", headers={"Retry-After": "2"}
        )
    return monitor, monitor.latest


def _points(points: list[HistoryPoint]) -> list[list[Any]]:
    return [[round(p.at, 3), round(p.max_lag_seconds, 3), p.max_lag, p.status] for p in points]


def _meta(monitor: LagMonitor, snapshot: LagSnapshot) -> dict[str, Any]:
    return {
        "collected_at": snapshot.collected_at,
        "collection_seconds": round(snapshot.duration_seconds, 4),
        "interval_seconds": monitor.config.interval_seconds,
        "window_seconds": monitor.config.window_seconds,
        "collector_error": monitor.last_error,
    }


HISTORY_DOC = "Minutes of history per group (sparkline), bucketed into at most `points` points."


@router.get(
    "/v1/ops/lag",
    summary="Lag of every consumer group, worst time lag first",
    description=(
        "Latest collection of every consumer group: status (OK, WARN, ERR, STOP, STALL, REWIND,"
        " REPLAYING), offset lag, time lag in seconds (age of the oldest unconsumed record),"
        f" consumption rate, catch-up estimate and a short history. Never cached. Scope `{SCOPE}`."
    ),
    **scope_docs(SCOPE),
)
async def lag_overview(
    request: Request,
    history_minutes: Annotated[
        float, Query(gt=0, le=MAX_HISTORY_MINUTES, description=HISTORY_DOC)
    ] = 60,
    points: Annotated[int, Query(ge=2, le=1000)] = 60,
) -> Response:
    """Return every group's latest lag and its recent history."""
    monitor, snapshot = _snapshot(request)
    history: PostgresLagHistory = request.app.state.lag_history
    series = await history.series(
        since_seconds=history_minutes * 60,
        points=points,
        min_bucket_seconds=monitor.config.interval_seconds,
    )
    groups = [
        {**g.to_json(with_partitions=False), "history": _points(series.get(g.group, []))}
        for g in snapshot.groups
    ]
    body = {**_meta(monitor, snapshot), "groups": groups}
    return respond(request, json.dumps(body).encode(), "bypass")


@router.get(
    "/v1/ops/lag/{group}",
    summary="Lag of one consumer group, per partition",
    description=f"Per-partition lag, rates and status of one group, and its history. Scope"
    f" `{SCOPE}`.",
    **scope_docs(SCOPE, {404: {"description": "No such consumer group"}}),
)
async def lag_group(
    request: Request,
    group: Annotated[str, PathParam(pattern=ID_PATTERN)],
    history_minutes: Annotated[
        float, Query(gt=0, le=MAX_HISTORY_MINUTES, description=HISTORY_DOC)
    ] = 60,
    points: Annotated[int, Query(ge=2, le=1000)] = 120,
) -> Response:
    """Return one group's partitions and history."""
    monitor, snapshot = _snapshot(request)
    found = snapshot.group(group)
    if found is None:
        raise HTTPException(404, f"no consumer group {group!r} in the latest collection")
    history: PostgresLagHistory = request.app.state.lag_history
    series = await history.series(
        since_seconds=history_minutes * 60,
        points=points,
        group=group,
        min_bucket_seconds=monitor.config.interval_seconds,
    )
    body = {
        **_meta(monitor, snapshot),
        **found.to_json(with_partitions=True),
        "history": _points(series.get(group, [])),
    }
    return respond(request, json.dumps(body).encode(), "bypass")


@page_router.get("/lag", include_in_schema=False)
async def lag_page() -> FileResponse:
    """Serve the dashboard page (open: it holds no data, the key stays in the browser).

    `no-referrer`: a `?key=` in the address bar must not leak to other sites.
    """
    headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)


@page_router.get("/lag/static/{name}", include_in_schema=False)
async def lag_asset(name: str) -> FileResponse:
    """Serve the dashboard's script and stylesheet."""
    if name not in ASSETS:
        raise HTTPException(404, "no such asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name])
