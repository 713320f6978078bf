"""Operations: the Kafka positions each projection has applied."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api import views
from api.caching import respond
from api.document_views import DOCUMENT_PROJECTIONS
from api.listing import ID_PATTERN
from api.models import PartitionPosition, Positions, ProjectionPositions
from api.security import require_scope, scope_docs
from projections.documents import DocumentStore

SCOPE = "read:ops"

router = APIRouter(tags=["ops"], dependencies=[Depends(require_scope(SCOPE))])


@router.get(
    "/v1/ops/positions",
    response_model=Positions,
    summary="Applied positions of every projection",
    description=(
        "Next Kafka offset per topic partition each projection will apply (PostgreSQL, and"
        f" the MongoDB document store when it is used). Never cached. Scope `{SCOPE}`."
    ),
    **scope_docs(SCOPE),
)
async def positions(
    request: Request,
    projection: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Response:
    """Return the applied positions, live."""
    grouped: dict[tuple[str, str], list[PartitionPosition]] = {}
    for row in await views.postgres_positions(request.app.state.pool, projection):
        grouped.setdefault((row["projection"], "postgres"), []).append(
            PartitionPosition.model_validate(row)
        )
    if request.app.state.settings.document_store.strip().lower() == "mongo":
        store: DocumentStore = request.app.state.document_store
        for name in DOCUMENT_PROJECTIONS.values():
            if projection is not None and name != projection:
                continue
            stored = await store.stored_positions(name)
            for (topic, partition), next_offset in sorted(stored.items()):
                grouped.setdefault((name, "mongo"), []).append(
                    PartitionPosition(topic=topic, partition=partition, next_offset=next_offset)
                )
    body = Positions(
        projections=[
            ProjectionPositions(
                projection=name,
                store=store_kind,
                partitions=parts,
                total_next_offset=sum(p.next_offset for p in parts),
            )
            for (name, store_kind), parts in sorted(grouped.items())
        ]
    )
    return respond(request, json.dumps(body.model_dump(mode="json")).encode(), "bypass")
