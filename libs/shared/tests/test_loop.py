"""The one backoff rule and background loop every service uses."""

from __future__ import annotations

import asyncio

import pytest
from soc_shared.loop import BackgroundLoop, backoff_delay


def test_backoff_doubles_from_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, base=2.0, cap=30.0, jitter=0) for n in (1, 2, 3, 4, 5, 6)] == [
        2,
        4,
        8,
        16,
        30,
        30,
    ]
    assert backoff_delay(10_000, base=1.0, cap=900.0, jitter=0) == 900
    spread = {round(backoff_delay(3, base=1.0, cap=100.0), 3) for _ in range(50)}
    assert len(spread) > 1 and all(3.0 <= d <= 5.0 for d in spread)


async def test_a_failing_step_backs_off_and_a_success_resets() -> None:
    outcomes = iter([RuntimeError("db away"), RuntimeError("db away"), None, None])
    waited: list[float] = []  # the delay the loop chose before each step
    done = asyncio.Event()

    async def step() -> None:
        waited.append(loop.delay)
        outcome = next(outcomes)
        if len(waited) == 4:
            done.set()
        if outcome is not None:
            raise outcome

    loop = BackgroundLoop("test-loop", step, interval=0.01, max_backoff=0.05, immediate=True)
    loop.start()
    await asyncio.wait_for(done.wait(), timeout=5)
    await loop.stop()
    # first step at once; after one failure about the interval, after two about twice it; after a
    # success the interval again
    assert waited[1] == pytest.approx(0.01, rel=0.3)
    assert waited[2] == pytest.approx(0.02, rel=0.3)
    assert waited[3] == 0.01
    assert loop.failures == 0


async def test_wake_runs_at_once_and_stop_runs_the_final_step() -> None:
    ran: list[str] = []

    async def step() -> None:
        ran.append("step")

    loop = BackgroundLoop("test-wake", step, interval=3600, final_step=True)
    loop.start()
    await asyncio.sleep(0.05)
    assert ran == []  # not immediate: the first step waits for the interval
    loop.wake()
    for _ in range(100):
        if ran:
            break
        await asyncio.sleep(0.01)
    assert ran == ["step"]
    await loop.stop()
    assert ran == ["step", "step"]  # the final step on stop
