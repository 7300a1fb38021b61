"""Keeps the suite's processes running under `make up` the way an orchestrator would: a process
that dies is started again after a backoff that doubles on each quick death (1 s, 2 s, 4 s … 30 s)
and resets once it has stayed up for a minute — one crashing service never stops the others."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0


@dataclass
class Supervised:
    name: str
    spawn: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes]
    started_at: float
    backoff: float = INITIAL_BACKOFF
    restart_at: float | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(
        self, log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.children: list[Supervised] = []
        self.log = log
        self.clock = clock

    def add(
        self, name: str, spawn: Callable[[], subprocess.Popen[bytes]], proc: subprocess.Popen[bytes]
    ) -> None:
        self.children.append(Supervised(name, spawn, proc, self.clock()))

    def tick(self) -> None:
        """One look at every child: note deaths, restart those whose backoff has passed."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is None:
                if child.proc.poll() is None:
                    if now - child.started_at >= STABLE_AFTER:
                        child.backoff = INITIAL_BACKOFF
                    continue
                child.exits.append(child.proc.returncode)
                child.restart_at = now + child.backoff
                self.log(
                    f"{child.name} exited with {child.proc.returncode}; restarting in {child.backoff:.0f} s"
                )
                continue
            if now >= child.restart_at:
                child.proc = child.spawn()
                child.started_at = now
                child.restart_at = None
                child.restarts += 1
                child.backoff = min(child.backoff * 2, MAX_BACKOFF)
                self.log(f"{child.name} restarted (restart {child.restarts})")

    def stop(self, timeout: float = 10) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
