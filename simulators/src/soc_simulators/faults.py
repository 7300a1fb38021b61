"""Fault injection shared by every vendor simulator.

Tests, benchmarks and the demo arm faults over a small control API under ``/_sim/`` so a client
can be exercised against the failure modes real consoles show: rate limiting with Retry-After,
5xx answers, requests that hang, truncated or non-JSON bodies, and a page whose content shifts
between two requests. Each armed fault fires ``count`` times on requests whose path contains
``path`` (any path when empty) and whose method is ``method`` (any when empty), each time with
``probability``, then disarms itself.

Three faults lose the answer of a request the server *did* process, as networks do: ``drop_after``
(the connection is cut after the response headers), ``500_after`` (the work is done, then a 500
is answered) and ``slow_after`` (the answer leaves ``hang_seconds`` late, after the client's
timeout). A client that retries such a write blindly makes a duplicate.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal[
    "429",
    "500",
    "502",
    "503",
    "hang",
    "truncate",
    "garbage",
    "shift_page",
    "drop_after",
    "500_after",
    "slow_after",
]
AFTER_KINDS = frozenset({"drop_after", "500_after", "slow_after"})


class Fault(BaseModel):
    kind: FaultKind
    count: int = Field(default=1, ge=1, le=1_000_000)
    path: str = ""
    method: str = Field(default="", description="only requests with this method (any when empty)")
    probability: float = Field(default=1.0, gt=0, le=1, description="chance to fire on a matching request")
    retry_after: int = Field(default=1, ge=0, le=3600)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)


class AnswerLost(ConnectionResetError):
    """Raised inside the server after the response headers went out: the server closes the
    connection and the client never gets the body (``drop_after``)."""


class FaultBoard:
    """Armed faults and request counters of one simulator instance (thread-safe).

    ``error_body(status)``, when a simulator sets it, answers an injected 429/5xx in that vendor's
    own error body (None: the generic one, e.g. a proxy's 502)."""

    error_body: Callable[[int], bytes | None] | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        # Set while a ``shift_page`` fault fires; a simulator's list endpoint reads it and inserts
        # a new record at the head of the collection before answering, as a live console would.
        self.shift_pending = False
        self.rng = random.Random(0)

    def seed(self, value: int) -> None:
        with self._lock:
            self.rng = random.Random(value)

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.shift_pending = False

    def take(self, path: str, method: str = "GET") -> Fault | None:
        with self._lock:
            self.requests[path] += 1
            for fault in self._faults:
                if (
                    fault.path in path
                    and (not fault.method or fault.method.upper() == method)
                    and (fault.probability >= 1 or self.rng.random() < fault.probability)
                ):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    self.fired[fault.kind] += 1
                    return fault
            return None

    def body_for(self, status: int, default: bytes) -> bytes:
        body = self.error_body(status) if self.error_body is not None else None
        return default if body is None else body

    def armed(self) -> list[Fault]:
        with self._lock:
            return [f.model_copy() for f in self._faults]


class FaultMiddleware:
    """Pure ASGI, so a request with no fault armed costs one dictionary look-up and nothing more
    (Starlette's ``BaseHTTPMiddleware`` runs every request through a task and memory streams, which
    cost more CPU than the simulated endpoint itself)."""

    def __init__(self, app: ASGIApp, board: FaultBoard) -> None:
        self.app = app
        self.board = board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim/"):
            await self.app(scope, receive, send)
            return
        fault = self.board.take(scope["path"], scope.get("method", "GET"))
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind in AFTER_KINDS:
            await self._answer_lost(fault, scope, receive, send)
            return
        if fault.kind == "429":
            response = Response(
                content=self.board.body_for(429, b'{"message": "Too many requests"}'),
                status_code=429,
                headers={"Retry-After": str(fault.retry_after), "Content-Type": "application/json"},
            )
            await response(scope, receive, send)
            return
        if fault.kind in ("500", "502", "503"):
            response = Response(
                content=self.board.body_for(int(fault.kind), b'{"message": "Internal server error"}'),
                status_code=int(fault.kind),
                media_type="application/json",
            )
            await response(scope, receive, send)
            return
        if fault.kind == "hang":
            await asyncio.sleep(fault.hang_seconds)
            await self.app(scope, receive, send)
            return
        if fault.kind == "shift_page":
            self.board.shift_pending = True
            await self.app(scope, receive, send)
            return
        # truncate / garbage: answer with the endpoint's status and headers but a broken body.
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if fault.kind == "truncate":
            content = bytes(body[: max(1, len(body) // 2)])
        else:  # garbage
            content = b"<html><body>502 Bad Gateway (proxy)</body></html>"
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer_lost(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint does its work in full; then its answer is lost on the way back."""
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if fault.kind == "500_after":
            response = Response(
                content=self.board.body_for(500, b'{"message": "Internal server error"}'),
                status_code=500,
                media_type="application/json",
            )
            await response(scope, receive, send)
            return
        if fault.kind == "slow_after":
            await asyncio.sleep(fault.hang_seconds)
            try:
                await send(start)
                await send({"type": "http.response.body", "body": bytes(body)})
            except Exception:  # noqa: BLE001 - the client gave up and went away meanwhile
                pass
            return
        # drop_after: the headers leave, the body never does; the server cuts the connection.
        await send(start)
        raise AnswerLost("connection dropped after the request was processed")


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
