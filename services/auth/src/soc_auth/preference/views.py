"""The caller's UI preferences: any JSON object, up to ``preferences_max_bytes``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from soc_shared.errors import ApiError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from soc_auth.database import SessionDep, utcnow
from soc_auth.deps import CurrentActor
from soc_auth.preference.models import Preferences, user_preference

router = APIRouter(prefix="/auth/preferences", tags=["preferences"])


@router.get("/", response_model=Preferences)
async def get_preferences(actor: CurrentActor, session: SessionDep) -> dict[str, Any]:
    data = (
        await session.execute(select(user_preference.c.data).where(user_preference.c.user_id == actor.id))
    ).scalar_one_or_none()
    return data or {}


@router.put(
    "/",
    response_model=Preferences,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def put_preferences(request: Request, actor: CurrentActor, session: SessionDep) -> dict[str, Any]:
    """Replace the preferences with the JSON object in the body."""
    limit = request.app.state.settings.preferences_max_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop reading as soon as the limit is passed
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "payload_too_large", f"preferences are limited to {limit} bytes", {"limit": limit}
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "validation_error", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "preferences must be a JSON object")
    if "\\u0000" in json.dumps(data):
        raise ApiError(422, "validation_error", "preferences cannot contain NUL characters")
    await session.execute(
        insert(user_preference)
        .values(user_id=actor.id, data=data, updated_at=utcnow())
        .on_conflict_do_update(
            index_elements=[user_preference.c.user_id], set_={"data": data, "updated_at": utcnow()}
        )
    )
    return data


@router.delete("/", status_code=204, response_class=Response)
async def clear_preferences(actor: CurrentActor, session: SessionDep) -> Response:
    await session.execute(delete(user_preference).where(user_preference.c.user_id == actor.id))
    return Response(status_code=204)
