"""Background work that must keep going: one backoff rule and one loop for every service.

``backoff_delay`` is the retry delay after consecutive failures (exponential, capped, with jitter
so that replicas failing together do not retry together). ``BackgroundLoop`` runs one step every
``interval`` seconds or as soon as it is woken, waits ``backoff_delay`` after a failing step, and
stops cleanly. The sync scheduler's per-resource retries, the transactional outbox's relay, the
tenant service's pending calls and the ticket service's retries all use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger


def backoff_delay(failures: int, *, base: float, cap: float, jitter: float = 0.25) -> float:
    """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``): ``base``,
    doubling with each further failure, never above ``cap``, spread by ±``jitter``."""
    exponent = min(max(failures, 1) - 1, 30)
    delay: float = min(cap, base * 2.0**exponent)
    return float(min(cap, delay * random.uniform(1 - jitter, 1 + jitter)))


class BackgroundLoop:
    """Runs ``step`` every ``interval`` seconds (or at once when woken) until stopped.

    A step that raises is logged and the next one waits ``backoff_delay`` (base ``interval``,
    capped at ``max_backoff``) instead of the interval; a step that succeeds resets it. With
    ``immediate`` the first step runs at start.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[Any]],
        *,
        interval: float,
        max_backoff: float = 60.0,
        immediate: bool = False,
        final_step: bool = False,
    ) -> None:
        self.name = name
        self.step = step
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.immediate = immediate
        self.final_step = final_step
        self.failures = 0
        self.delay = interval  # the wait before the next step
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name=self.name)
        return self._task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Let the running step finish (up to ``grace_seconds``), then end the loop."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace_seconds)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def next_delay(self) -> float:
        if self.failures == 0:
            return self.interval
        return backoff_delay(self.failures, base=self.interval, cap=self.max_backoff)

    async def run(self) -> None:
        first = self.immediate
        while not self._stopping:
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.delay)
                if self._stopping:
                    break
            first = False
            self._wake.clear()  # a wake during the step runs the next one at once
            await self._step()
        if self.final_step:
            await self._step()

    async def _step(self) -> None:
        try:
            await self.step()
            self.failures = 0
            self.delay = self.interval
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database or the broker may be away for a while: keep going
            self.failures += 1
            self.delay = self.next_delay()
            logger.warning(
                "{}: step failed ({}: {}); retrying in about {:.1f} s",
                self.name,
                type(exc).__name__,
                str(exc)[:200],
                self.delay,
            )
