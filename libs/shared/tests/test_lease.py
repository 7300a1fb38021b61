"""Leases on due rows (soc_shared.lease) on real PostgreSQL: claims skip each other, a lease that
ran out is taken over, renew/release only by the holder, backoff, rows locked for short work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa
from soc_shared.db import Database
from soc_shared.lease import Lease
from soc_shared.provision import admin_dsn

SCHEMA = "lease_test"
meta = sa.MetaData(schema=SCHEMA)
work = sa.Table(
    "work",
    meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("owner", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("note", sa.Text),
)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    name = os.environ["SOC_DB_NAME"]
    with psycopg.connect(admin_dsn(name), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.work (id int PRIMARY KEY, next_run_at timestamptz NOT NULL DEFAULT now(),"
            " owner text, lease_until timestamptz, note text)"
        )
        conn.execute(f"INSERT INTO {SCHEMA}.work (id) SELECT generate_series(1, 10)")
    user = os.environ.get("SOC_PG_ADMIN_USER", "soc_admin")
    password = os.environ.get("SOC_PG_ADMIN_PASSWORD", "soc_admin")
    port = os.environ.get("SOC_DB_PORT", "55432")
    database = Database(f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/{name}", schema=SCHEMA)
    yield database
    await database.dispose()
    with psycopg.connect(admin_dsn(name), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def lease(holder: str, seconds: float = 60) -> Lease:
    return Lease(
        work,
        key=("id",),
        owner="owner",
        until="lease_until",
        next_run="next_run_at",
        holder=holder,
        seconds=seconds,
    )


async def test_replicas_claim_disjoint_rows_and_a_lapsed_lease_is_taken_over(db: Database) -> None:
    a, b = lease("a"), lease("b", seconds=0.2)

    async def claim(who: Lease) -> list[int]:
        async with db.session() as s:
            return [r["id"] for r in await who.claim(s, limit=4, order_by=[work.c.id])]

    got = await asyncio.gather(claim(a), claim(b), claim(lease("c")))
    ids = [i for g in got for i in g]
    assert sorted(ids) == list(range(1, 11)) and len(set(ids)) == 10  # every row once, none twice
    assert await claim(a) == []  # everything is held
    # b's short lease runs out: its rows go to whoever claims next; b can neither renew nor release
    await asyncio.sleep(0.4)
    taken = await claim(a)
    assert taken and set(taken) == set(got[1])
    async with db.session() as s:
        assert not await b.renew(s, work.c.id == taken[0])
        assert not await b.release(s, work.c.id == taken[0], retry_in=0)
        assert await a.renew(s, work.c.id == taken[0], values={"note": "half way"})
        row = (await s.execute(sa.select(work).where(work.c.id == taken[0]))).mappings().one()
    assert row["owner"] == "a" and row["note"] == "half way"


async def test_release_reschedules_and_take_only_a_free_row(db: Database) -> None:
    a, b = lease("a"), lease("b")
    async with db.session() as s:
        [row] = await a.claim(s, work.c.id == 1, limit=5)
        assert row["owner"] == "a" and row["lease_until"] is not None
        assert await b.take(s, work.c.id == 1) is None  # held
        assert await a.release(s, work.c.id == 1, retry_in=3600, values={"note": "failed once"})
    async with db.session() as s:
        row = (await s.execute(sa.select(work).where(work.c.id == 1))).mappings().one()
        assert row["owner"] is None and row["lease_until"] is None and row["note"] == "failed once"
        not_due = (
            await s.execute(
                sa.select(work.c.next_run_at > sa.func.now() + timedelta(minutes=59)).where(work.c.id == 1)
            )
        ).scalar()
        assert not_due
        assert await b.claim(s, work.c.id == 1, limit=5) == []  # backing off
        taken = await b.take(s, work.c.id == 1)  # a row asked for by key: free, so taken
        assert taken is not None and taken["owner"] == "b"


async def test_a_table_without_a_schedule_uses_its_lease_as_backoff(db: Database) -> None:
    tickets = Lease(work, key=("id",), owner="owner", until="lease_until", holder="a", seconds=60)
    async with db.session() as s:
        [row] = await tickets.claim(s, work.c.id == 2, limit=1)
        # a failure: the row stays the holder's until the backoff ends
        assert await tickets.release(s, work.c.id == 2, retry_in=0.2)
        row = (await s.execute(sa.select(work).where(work.c.id == 2))).mappings().one()
        assert row["owner"] == "a" and row["lease_until"] is not None
        assert (
            await Lease(work, key=("id",), owner="owner", until="lease_until", holder="b").claim(
                s, work.c.id == 2, limit=1
            )
            == []
        )
    await asyncio.sleep(0.4)
    async with db.session() as s:
        [row] = await Lease(work, key=("id",), owner="owner", until="lease_until", holder="b").claim(
            s, work.c.id == 2, limit=1
        )
        assert row["owner"] == "b"


async def test_lock_due_holds_rows_for_the_transaction(db: Database) -> None:
    pending = Lease(work, key=("id",), next_run="next_run_at")
    async with db.session() as first:
        rows = await pending.lock_due(first, work.c.id <= 3, limit=10, order_by=[work.c.id])
        assert [r["id"] for r in rows] == [1, 2, 3]
        async with db.session() as second:  # another replica meanwhile: skips the locked rows
            assert [r["id"] for r in await pending.lock_due(second, work.c.id <= 4, limit=10)] == [4]
        await pending.release(first, work.c.id == 1, retry_in=3600)
    async with db.session() as s:
        assert [
            r["id"] for r in await pending.lock_due(s, work.c.id <= 3, limit=10, order_by=[work.c.id])
        ] == [2, 3]
        # asked for by key: whenever it is due
        assert [r["id"] for r in await pending.lock_due(s, work.c.id == 1, limit=10, due=False)] == [1]


def test_a_lease_needs_an_end_or_a_schedule() -> None:
    with pytest.raises(ValueError):
        Lease(work, key=("id",))
    with pytest.raises(ValueError):
        Lease(work, key=("id",), owner="owner", next_run="next_run_at")
