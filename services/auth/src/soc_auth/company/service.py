"""Companies and directory-group mappings, as told by the tenant service's events."""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger
from soc_shared.events import CompanyChanged
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.company.models import company, directory_group
from soc_auth.ldap.dn import group_key, membership_keys
from soc_auth.role.models import Permission


@dataclass(frozen=True)
class GroupMapping:
    company_id: str
    company_name: str
    company_active: bool
    ldap_group: str
    tenant_role: str
    permissions: list[str]


async def apply_company_changed(session: AsyncSession, event: CompanyChanged) -> bool:
    """Store the company and its group mapping; False when a newer version is already stored."""
    current = (
        await session.execute(
            select(company.c.changed_at).where(company.c.company_id == event.company_id).with_for_update()
        )
    ).scalar_one_or_none()
    if current is not None and current > event.changed_at:
        logger.debug("company {} event older than the stored version; ignored", event.company_id)
        return False
    values = {
        "name": event.name,
        "active": event.active,
        "deleted": event.deleted,
        "changed_at": event.changed_at,
    }
    await session.execute(
        insert(company)
        .values(company_id=event.company_id, **values)
        .on_conflict_do_update(index_elements=[company.c.company_id], set_=values)
    )
    await session.execute(delete(directory_group).where(directory_group.c.company_id == event.company_id))
    if not event.deleted:
        rows: dict[str, dict[str, object]] = {}
        for mapping in event.directory_groups:
            if not mapping.ldap_group.strip():
                continue
            valid = sorted({p for p in mapping.permissions if p in Permission.__members__})
            rows[group_key(mapping.ldap_group)] = {
                "company_id": event.company_id,
                "group_key": group_key(mapping.ldap_group),
                "ldap_group": mapping.ldap_group.strip(),
                "tenant_role": mapping.tenant_role,
                "permissions": valid,
            }
        if rows:
            await session.execute(insert(directory_group).values(list(rows.values())))
    return True


async def mappings_for_groups(session: AsyncSession, member_of: list[str]) -> list[GroupMapping]:
    """The mappings that a user in the groups ``member_of`` (DNs) falls under."""
    keys = membership_keys(member_of)
    if not keys:
        return []
    rows = (
        await session.execute(
            select(directory_group, company.c.name, company.c.active, company.c.deleted)
            .join(company, company.c.company_id == directory_group.c.company_id)
            .where(directory_group.c.group_key.in_(keys))
        )
    ).all()
    return [
        GroupMapping(
            r.company_id, r.name, r.active and not r.deleted, r.ldap_group, r.tenant_role, list(r.permissions)
        )
        for r in rows
    ]
