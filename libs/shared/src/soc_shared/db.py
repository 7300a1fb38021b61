"""Database access shared by every service: one async engine on psycopg 3 with a pool, sessions,
Alembic migrations per service (each in its own schema, with its own version table), and the
row-level-security context for company-scoped reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from soc_shared.settings import ServiceSettings


class Database:
    """An engine and a session factory for one service's schema."""

    def __init__(
        self, url: str, *, schema: str, pool_size: int = 10, max_overflow: int = 10, echo: bool = False
    ):
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            echo=echo,
            # A failing statement's parameters may hold a password hash or a sealed secret: keep
            # them out of exception messages and therefore out of logs.
            hide_parameters=True,
            # Each role's search_path is its schema, but say so explicitly: a misconfigured role
            # must not silently read or write another schema.
            connect_args={"options": f"-c search_path={schema}"},
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, *, user: str | None = None, password: str | None = None
    ) -> Database:
        return cls(
            settings.database_url(user=user, password=password),
            schema=settings.db_schema,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def set_company_scope(session: AsyncSession, company_id: str | None, *, is_admin: bool) -> None:
    """Set the transaction-local variables the row-level-security policies read.

    ``app.is_admin`` lets an administrator read across companies; a tenant user only ever gets its
    own ``app.company_id``, so a query that forgot its filter still cannot see another company.
    ``app.trusted = off`` holds the table owner to the same policies (tables FORCE row-level
    security), should a scoped session ever run as the owner.
    """
    await session.execute(
        text(
            "SELECT set_config('app.company_id', :cid, true), set_config('app.is_admin', :adm, true),"
            " set_config('app.trusted', 'off', true)"
        ),
        {"cid": company_id or "", "adm": "on" if is_admin else "off"},
    )


def alembic_config(migrations_dir: Path, url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["schema"] = schema
    return cfg


def migrate(settings: ServiceSettings, migrations_dir: Path, revision: str = "head") -> None:
    """Upgrade the service's schema to ``revision`` (run by the start scripts before serving)."""
    command.upgrade(alembic_config(migrations_dir, settings.database_url(), settings.db_schema), revision)


def run_alembic_env(target_metadata: MetaData | None) -> None:
    """The body of every service's ``migrations/env.py``: online migrations, version table in the
    service's own schema."""
    from alembic import context
    from sqlalchemy import engine_from_config

    config = context.config
    schema = config.attributes.get("schema") or (
        target_metadata.schema if target_metadata is not None else None
    )
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        if schema:
            connection.execute(text(f'SET search_path TO "{schema}"'))
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


def rows_to_dicts(rows: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in rows]
