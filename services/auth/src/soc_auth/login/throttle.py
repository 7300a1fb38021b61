"""Brute-force protection, in the database so that every replica sees the same counters.

Per account (``user:<id>``, or ``name:<login>`` when no local account matches): after
``login_delay_after`` failures each new attempt must wait a doubling delay (429
``too_many_attempts`` with Retry-After); after ``login_lock_after`` failures the account is locked
for ``login_lock_seconds`` (423 ``account_locked``). Per client address (``ip:<address>``): the
same delay after ``login_ip_delay_after`` failures, then a block (429) after
``login_ip_block_after``. Failures older than the window are forgotten; a success clears the
account's counter (not the address's: one good account must not launder an address).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from soc_shared.errors import ApiError
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.config import Settings
from soc_auth.login.models import login_throttle


@dataclass(frozen=True)
class _Rule:
    delay_after: int
    lock_after: int
    lock_seconds: float
    locked_code: str
    locked_status: int


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.account = _Rule(
            settings.login_delay_after,
            settings.login_lock_after,
            settings.login_lock_seconds,
            "account_locked",
            423,
        )
        self.address = _Rule(
            settings.login_ip_delay_after,
            settings.login_ip_block_after,
            settings.login_ip_block_seconds,
            "too_many_attempts",
            429,
        )

    def _rule(self, key: str) -> _Rule:
        return self.address if key.startswith("ip:") else self.account

    def _delay(self, failures: int, rule: _Rule) -> float:
        if failures < rule.delay_after:
            return 0.0
        return min(
            self.s.login_delay_max_seconds,
            self.s.login_delay_base_seconds * 2 ** (failures - rule.delay_after),
        )

    def _live_failures(self, row: Any, now: datetime) -> int:
        window = timedelta(seconds=self.s.login_failure_window_seconds)
        if row.locked_until is not None and row.locked_until <= now:
            return 0  # the lock ran out: a fresh start
        if row.last_failure_at < now - window:
            return 0
        return int(row.failures)

    async def check(self, session: AsyncSession, keys: list[str], now: datetime) -> ApiError | None:
        """The refusal an attempt gets before its password is even looked at, or None."""
        rows = (await session.execute(select(login_throttle).where(login_throttle.c.key.in_(keys)))).all()
        refusal: ApiError | None = None
        for row in sorted(rows, key=lambda r: r.key.startswith("ip:")):
            rule = self._rule(row.key)
            if row.locked_until is not None and row.locked_until > now:
                wait = _seconds(row.locked_until - now)
                if rule is self.account:
                    return ApiError(
                        423,
                        "account_locked",
                        "too many failed attempts: this account is locked for a while, try again later",
                        {"retry_after": wait},
                    )
                return ApiError(
                    429,
                    "too_many_attempts",
                    "too many failed attempts from this address, try again later",
                    {"retry_after": wait},
                )
            failures = self._live_failures(row, now)
            delay = self._delay(failures, rule)
            if delay and now < row.last_failure_at + timedelta(seconds=delay) and refusal is None:
                refusal = ApiError(
                    429,
                    "too_many_attempts",
                    "too many failed attempts, slow down and try again shortly",
                    {"retry_after": _seconds(row.last_failure_at + timedelta(seconds=delay) - now)},
                )
        return refusal

    async def failure(self, session: AsyncSession, keys: list[str], now: datetime) -> None:
        for key in sorted(keys):  # a fixed order: concurrent failures never deadlock
            await session.execute(
                insert(login_throttle)
                .values(key=key, failures=0, first_failure_at=now, last_failure_at=now)
                .on_conflict_do_nothing(index_elements=[login_throttle.c.key])
            )
            row = (
                await session.execute(
                    select(login_throttle).where(login_throttle.c.key == key).with_for_update()
                )
            ).one()
            rule = self._rule(key)
            live = self._live_failures(row, now)
            failures = live + 1
            locked_until = now + timedelta(seconds=rule.lock_seconds) if failures >= rule.lock_after else None
            await session.execute(
                update(login_throttle)
                .where(login_throttle.c.key == key)
                .values(
                    failures=failures,
                    first_failure_at=row.first_failure_at if live else now,
                    last_failure_at=now,
                    locked_until=locked_until,
                )
            )

    async def success(self, session: AsyncSession, account_key: str) -> None:
        await session.execute(delete(login_throttle).where(login_throttle.c.key == account_key))

    async def prune(self, session: AsyncSession, now: datetime) -> None:
        horizon = now - timedelta(
            seconds=max(
                self.s.login_failure_window_seconds, self.s.login_lock_seconds, self.s.login_ip_block_seconds
            )
        )
        await session.execute(
            delete(login_throttle).where(
                login_throttle.c.last_failure_at < horizon,
                (login_throttle.c.locked_until.is_(None)) | (login_throttle.c.locked_until < now),
            )
        )


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
