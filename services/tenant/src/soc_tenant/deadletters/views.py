"""Admin access to the read model's dead letters: what was parked, why, and replaying it once the
cause is fixed. Also a rollup rebuild for after bulk loads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from soc_shared.bus import list_dead_letters, replay_dead_letters
from soc_shared.errors import ApiError
from soc_shared.security import AdminPrincipal, AdminWriter, Principal

from soc_tenant.deadletters.responses import DeadLetters, ReplayResult, RollupsRebuilt
from soc_tenant.readmodel.common import ReadRoute
from soc_tenant.readmodel.ingest import QUEUES, rebuild_rollups

router = APIRouter(prefix="/admin", tags=["admin dead letters"], route_class=ReadRoute)


def _queue(name: str) -> str:
    if name not in QUEUES:
        raise ApiError(
            404, "unknown_queue", f"no read-model queue {name[:100]!r}", {"queues": sorted(QUEUES)}
        )
    return name


async def _depth(request: Request, queue: str) -> int:
    channel = await request.app.state.bus.channel(prefetch=1)
    try:
        declared = await channel.declare_queue(
            f"{queue}.dead", durable=True, arguments={"x-queue-type": "classic"}
        )
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


@router.get("/dead-letters/", response_model=DeadLetters)
async def dead_letters(
    request: Request,
    _: AdminPrincipal,
    queue: Annotated[str | None, Query(max_length=100, description="one queue's parked messages")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Without ``queue``: each read-model queue with the number of parked messages. With it: that
    queue's parked messages (peeked, not removed) with the reason each was parked."""
    bus = request.app.state.bus
    if queue is None:
        items = [
            {
                "queue": q,
                "dead_letter_queue": f"{q}.dead",
                "bindings": keys,
                "parked": await _depth(request, q),
            }
            for q, keys in QUEUES.items()
        ]
        return {"items": items, "total": len(items), "limit": len(items), "offset": 0}
    messages = await list_dead_letters(bus, _queue(queue), limit=limit)
    return {
        "queue": queue,
        "items": messages,
        "total": await _depth(request, queue),
        "limit": limit,
        "offset": 0,
    }


class ReplayRequest(BaseModel):
    queue: str = Field(max_length=100)
    limit: int = Field(default=1000, ge=1, le=100_000)


async def _record(
    request: Request, principal: Principal, action: str, target: str, after: dict[str, Any]
) -> None:
    """The audit record of an operation on the broker or over the whole read model: written just after
    it (it cannot share a transaction with the broker), with who asked and from where."""
    from soc_tenant.audit import views as audit
    from soc_tenant.control.deps import client_address, scoped_tx

    async with scoped_tx(request.app, principal) as tx:
        tx.client_address = client_address(request)
        tx.forwarded_for = request.headers.get("x-forwarded-for") or None
        await audit.record(
            tx, action, "read_model_queue" if target != "rollups" else "read_model", target, after=after
        )


@router.post("/dead-letters/replay/", response_model=ReplayResult)
async def replay(request: Request, principal: AdminWriter, body: ReplayRequest) -> dict[str, Any]:
    """Send up to ``limit`` parked messages of ``queue`` back to it (to its consumer only). Audited."""
    replayed = await replay_dead_letters(request.app.state.bus, _queue(body.queue), limit=body.limit)
    await _record(
        request, principal, "dead_letters.replayed", body.queue, {"limit": body.limit, "replayed": replayed}
    )
    return {"queue": body.queue, "replayed": replayed}


@router.post("/read-model/rebuild-rollups/", response_model=RollupsRebuilt)
async def rebuild(request: Request, principal: AdminWriter) -> dict[str, Any]:
    """Recompute the dashboard rollups from the stored rows (after a bulk load or to verify). Audited."""
    await rebuild_rollups(request.app.state.db)
    await _record(request, principal, "read_model.rollups_rebuilt", "rollups", {"rebuilt": True})
    return {"rebuilt": True}
