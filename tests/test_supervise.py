"""`make up` restarts a dead process with a doubling backoff, as an orchestrator would, instead of
stopping the suite (real child processes; the clock is the test's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from supervise import MAX_BACKOFF, STABLE_AFTER, Supervisor  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spawn(code: str):  # noqa: ANN202
    return lambda: subprocess.Popen([sys.executable, "-c", code])


def test_dead_process_restarts_with_doubling_backoff_and_others_keep_running() -> None:
    clock, lines = Clock(), []
    sup = Supervisor(log=lines.append, clock=clock)
    crash = _spawn("raise SystemExit(3)")
    steady = _spawn("import time; time.sleep(60)")
    sup.add("crashy", crash, crash())
    sup.add("steady", steady, steady())
    crashy, steady_child = sup.children
    try:
        delays = []
        for _ in range(4):
            crashy.proc.wait(timeout=10)
            sup.tick()  # notices the death
            assert crashy.restart_at is not None
            delays.append(crashy.restart_at - clock.now)
            clock.now = crashy.restart_at - 0.01
            sup.tick()
            assert crashy.restart_at is not None, "restarted before its backoff passed"
            clock.now = crashy.restart_at
            sup.tick()
        assert delays == [1.0, 2.0, 4.0, 8.0]
        assert crashy.restarts == 4 and crashy.exits == [3, 3, 3, 3]
        assert steady_child.proc.poll() is None and steady_child.restarts == 0
        assert any("crashy exited with 3" in line for line in lines)
    finally:
        sup.stop()
    assert steady_child.proc.poll() is not None


def test_backoff_is_capped_and_resets_after_a_stable_minute() -> None:
    clock = Clock()
    sup = Supervisor(log=lambda _: None, clock=clock)
    sleeper = _spawn("import time; time.sleep(60)")
    sup.add("svc", sleeper, sleeper())
    child = sup.children[0]
    try:
        child.backoff = MAX_BACKOFF * 4
        child.proc.kill()
        child.proc.wait()
        sup.tick()
        clock.now = child.restart_at
        sup.tick()
        assert child.backoff == MAX_BACKOFF
        clock.now += STABLE_AFTER
        sup.tick()
        assert child.backoff == 1.0
    finally:
        sup.stop()
