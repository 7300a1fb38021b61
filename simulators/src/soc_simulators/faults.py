"""Fault injection shared by every vendor simulator.

Tests, benchmarks and the demo arm faults over a small control API under ``/_sim/`` so a client
can be exercised against the failure modes real consoles show: rate limiting with Retry-After,
5xx answers, requests that hang, truncated or non-JSON bodies, and a page whose content shifts
between two requests. Each armed fault fires ``count`` times on requests whose path contains
``path`` (any path when empty), then disarms itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

FaultKind = Literal["429", "500", "502", "503", "hang", "truncate", "garbage", "shift_page"]


class Fault(BaseModel):
    kind: FaultKind
    count: int = Field(default=1, ge=1, le=1_000_000)
    path: str = ""
    retry_after: int = Field(default=1, ge=0, le=3600)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)


class FaultBoard:
    """Armed faults and request counters of one simulator instance (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        # Set while a ``shift_page`` fault fires; a simulator's list endpoint reads it and inserts
        # a new record at the head of the collection before answering, as a live console would.
        self.shift_pending = False

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.shift_pending = False

    def take(self, path: str) -> Fault | None:
        with self._lock:
            self.requests[path] += 1
            for fault in self._faults:
                if fault.path in path:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    self.fired[fault.kind] += 1
                    return fault
            return None

    def armed(self) -> list[Fault]:
        with self._lock:
            return [f.model_copy() for f in self._faults]


class FaultMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, board: FaultBoard) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.board = board

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if path.startswith("/_sim/"):
            return await call_next(request)
        fault = self.board.take(path)
        if fault is None:
            return await call_next(request)
        if fault.kind == "429":
            return Response(
                content=b'{"message": "Too many requests"}',
                status_code=429,
                headers={"Retry-After": str(fault.retry_after), "Content-Type": "application/json"},
            )
        if fault.kind in ("500", "502", "503"):
            return Response(
                content=b'{"message": "Internal server error"}',
                status_code=int(fault.kind),
                media_type="application/json",
            )
        if fault.kind == "hang":
            await asyncio.sleep(fault.hang_seconds)
            return await call_next(request)
        if fault.kind == "shift_page":
            self.board.shift_pending = True
            return await call_next(request)
        response = await call_next(request)
        body = b""
        async for chunk in response.body_iterator:  # type: ignore[attr-defined]
            body += chunk if isinstance(chunk, bytes) else chunk.encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        if fault.kind == "truncate":
            body = body[: max(1, len(body) // 2)]
        else:  # garbage
            body = b"<html><body>502 Bad Gateway (proxy)</body></html>"
        return Response(content=body, status_code=response.status_code, headers=headers)


def install_faults(app: FastAPI) -> FaultBoard:
    """Attach the fault middleware and the ``/_sim/faults`` control routes to a simulator app."""
    board = FaultBoard()
    app.add_middleware(FaultMiddleware, board=board)
    router = APIRouter(prefix="/_sim", tags=["simulator control"])

    @router.post("/faults", status_code=201)
    async def arm_fault(fault: Fault) -> dict[str, object]:
        board.arm(fault)
        return {"armed": [f.model_dump() for f in board.armed()]}

    @router.get("/faults")
    async def list_faults() -> dict[str, object]:
        return {"armed": [f.model_dump() for f in board.armed()], "fired": dict(board.fired)}

    @router.delete("/faults", status_code=204)
    async def clear_faults() -> Response:
        board.clear()
        return Response(status_code=204)

    @router.get("/stats")
    async def stats() -> dict[str, object]:
        return {"requests": dict(board.requests), "fired": dict(board.fired)}

    app.include_router(router)
    app.state.faults = board
    return board
