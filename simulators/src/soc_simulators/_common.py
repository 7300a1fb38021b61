"""Small helpers any vendor simulator may use.

Deterministic randomness (same seed, same data, in every process), a clock that never repeats a
timestamp (so incremental sync on ``> cursor`` sees every change), the background ticker that keeps
a ``live`` simulator changing, and an optional per-client rate limiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI

log = logging.getLogger("soc_simulators")


def derive_rng(seed: int, *salt: object) -> random.Random:
    """A random stream for one purpose (``derive_rng(7, "cyware", "acme")``).

    Seeding with a string goes through SHA-512 inside ``random``, so unlike ``hash()`` the stream is
    the same in every process whatever PYTHONHASHSEED is.
    """
    return random.Random(":".join([str(seed), *map(str, salt)]))


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same in every process (``hash()`` of a str is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# Indicators the simulated vendors share, as a real estate and its threat feeds do: the Cyware
# simulator's advisories name them now and then, and a few QRadar offenses come from these
# addresses and a few XSOAR incidents carry these file hashes — so the suite's threat-intel matching
# finds real-looking matches in the demo. Picked by a stable hash of the record (no random draws:
# every other generated value stays as it was).
KNOWN_BAD_IPS = (
    "185.220.101.47", "45.155.205.233", "193.142.146.35", "91.240.118.172", "77.91.124.55", "103.75.201.4",
)  # fmt: skip
KNOWN_BAD_SHA256 = (
    "5f2b7d0c9e4a8b1f3c6d2e9a7b4c1d8e0f3a6b9c2d5e8f1a4b7c0d3e6f9a2b5c",
    "a3c91e7b4d2f8e6a0b5c3d9e1f7a4b2c8d6e0f3a9b5c1d7e2f8a4b0c6d3e9f1a",
    "0d8e6f4a2b9c7d5e3f1a8b6c4d2e0f9a7b5c3d1e8f6a4b2c0d9e7f5a3b1c8d6e",
    "e7f1a3b5c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f2a4b6c8d0e1f3",
)
KNOWN_BAD_DOMAINS = ("login-m365-verify.top", "cdn-update-check.xyz", "docusign-secure-view.info")


def known_bad(rate: float, *record: object) -> int | None:
    """With probability ``rate`` (fixed per record), an index into the known-bad pools, else None."""
    h = stable_hash("known-bad", *record)
    return h >> 8 if (h & 0xFF) < rate * 256 else None


def seeded_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (``uuid.uuid4()`` would break determinism)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class MonotonicClock:
    """Wall-clock time in a chosen unit that strictly increases on every ``next()``.

    Vendor consoles stamp each change with the current time; two changes in the same millisecond
    would share a cursor value, and a client asking for ``> cursor`` would miss the second. The
    simulator therefore hands out strictly increasing stamps, running a little ahead of the wall
    clock only when many changes happen in one unit of time.
    """

    def __init__(self, units_per_second: int = 1000, floor: int = 0) -> None:
        self.units_per_second = units_per_second
        self.last = floor

    def wall(self) -> int:
        return int(time.time() * self.units_per_second)

    def raise_floor(self, value: int) -> None:
        """Make every later stamp greater than ``value`` (e.g. the newest seeded record)."""
        self.last = max(self.last, value)

    def next(self) -> int:
        self.last = max(self.wall(), self.last + 1)
        return self.last


def live_lifespan(
    tick: Callable[[], object], live: bool, interval_s: float = 5.0
) -> Callable[[FastAPI], Any]:
    """An app lifespan that, when ``live``, calls ``tick()`` every ``interval_s`` seconds.

    ``tick`` runs on the event loop, like the request handlers, so simulator state needs no lock.
    """

    async def tick_forever() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                tick()
            except Exception:  # a broken tick must not stop the demo; the log says why
                log.exception("simulator tick failed")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(tick_forever()) if live else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan


class RateLimiter:
    """Sliding-window request limit per client key (an API token, an access id...).

    Off unless a simulator is created with a limit: the ``/_sim/faults`` 429 covers most tests;
    this one exists so a benchmark can see the throttling a busy console applies on its own.
    """

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> int | None:
        """Record one request; ``None`` if allowed, else whole seconds until a slot frees up."""
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, int(hits[0] + self.window_s - now + 0.999))
        hits.append(now)
        return None
