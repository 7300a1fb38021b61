"""The one error shape every service answers with.

``{"error": {"code": "<stable_snake_case>", "message": "<for a person>", "details": {...},
"request_id": "..."}}`` — never a stack trace, never a framework's own shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from soc_shared.context import request_id_var


class ApiError(Exception):
    """An error meant for the caller: status, stable code, human message, optional details."""

    def __init__(self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}


class NotFound(ApiError):
    def __init__(self, what: str = "resource", details: dict[str, Any] | None = None):
        super().__init__(404, "not_found", f"{what} not found", details)


class Conflict(ApiError):
    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(409, "conflict", message, details)


class Forbidden(ApiError):
    def __init__(
        self, code: str = "forbidden", message: str = "not allowed", details: dict[str, Any] | None = None
    ):
        super().__init__(403, code, message, details)


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    423: "locked",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def error_body(
    status_code: int, code: str | None, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code or _STATUS_CODES.get(status_code, "error"),
            "message": message,
            "details": details or {},
            "request_id": request_id_var.get(),
        }
    }


def error_response(
    status_code: int,
    code: str | None,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status_code, code, message, details), status_code=status_code, headers=headers
    )


def _jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        # The rejected input may be a password: report where and why, never the value itself.
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": err.get("type"),
            }
        )
    return out


def is_nul_input(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ValueError) and "NUL" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else None
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "validation_error", "the request is not valid", {"errors": _jsonable_errors(exc)}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, None, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        if is_nul_input(exc):
            # PostgreSQL text cannot hold NUL; that is bad input, not a server fault.
            return error_response(422, "invalid_input", "text values must not contain NUL characters")
        logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
        return error_response(500, "internal_error", "an internal error occurred; it has been logged")
