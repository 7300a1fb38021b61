"""The shapes every service's API shares: the error body, the page of a list, file downloads.

Every route documents its answers with these, so the merged OpenAPI is a complete contract from
which a typed client is generated: ``ERROR_RESPONSES`` is every application's default for 4xx and
5xx, ``Page[Item]`` is the one list shape, ``file_responses`` declares the content types a
download may have.
"""

from __future__ import annotations

import os
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ItemT = TypeVar("ItemT")


class ApiModel(BaseModel):
    """A response shape. Field names are the API's public names; they never change silently."""

    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(ApiModel):
    code: str = Field(
        description="stable snake_case code a client can branch on, e.g. `not_found`, "
        "`validation_error`, `permission_denied`, `rate_limited`"
    )
    message: str = Field(description="for a person; wording may change")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="machine-readable context, e.g. `errors` (a list of `{loc, msg, type}`) for "
        "`validation_error`, `retry_after` (seconds) for `rate_limited`",
    )
    request_id: str | None = Field(
        default=None, description="the X-Request-ID of the request, to quote when reporting a problem"
    )


class ErrorResponse(ApiModel):
    """Every error, from every service and the gateway."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorResponse,
        "description": "The request cannot be served as sent (see `error.code`).",
    },
    "5XX": {
        "model": ErrorResponse,
        "description": "A fault on our side or an upstream's (502/503/504 from the gateway).",
    },
}


class Page(ApiModel, Generic[ItemT]):
    """One page of a list: ``items`` from ``offset``, at most ``limit`` of them, ``total`` in all."""

    items: list[ItemT]
    total: int = Field(description="how many items match, over every page")
    limit: int = Field(description="the page size asked for (or the whole list's length)")
    offset: int = Field(description="how many matching items come before this page")


def file_responses(*media_types: str, description: str = "The file, as a download.") -> dict[int | str, Any]:
    """``responses=`` for a route answering a file in one of ``media_types``."""
    return {
        200: {
            "description": description,
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in media_types
            },
        }
    }


CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"


def checking_responses() -> bool:
    """Whether routes that answer pre-built JSON validate it against their declared model before
    sending (the test suite turns this on with ``SOC_CHECK_RESPONSES=1``; production never pays it)."""
    return os.environ.get("SOC_CHECK_RESPONSES", "") in ("1", "true", "yes")


class Choice(ApiModel):
    # One value of a closed list and its label (role, permission and volume-type choices).
    value: str = Field(description="what the API accepts")
    label: str = Field(description="what a person reads")
