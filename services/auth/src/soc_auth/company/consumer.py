"""Consumes ``tenant.company.changed``: directory-group mappings, and company (in)activation."""

from __future__ import annotations

from typing import Any

from loguru import logger
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.events import CompanyChanged

from soc_auth.company import service as companies
from soc_auth.internal.service import set_company_users_disabled
from soc_auth.outbox.service import transaction

QUEUE = "auth.company-changes"
BINDINGS = ["tenant.company.changed"]


async def handle_company_changed(state: Any, event: CompanyChanged) -> None:
    async with transaction(state) as session:
        if await companies.apply_company_changed(session, event):
            changed = await set_company_users_disabled(
                session, event.company_id, disabled=event.deleted or not event.active
            )
            if changed:
                logger.info(
                    "company {} {}: {} users updated",
                    event.company_id,
                    "disabled" if event.deleted or not event.active else "enabled",
                    changed,
                )


def company_consumer(state: Any) -> BatchConsumer:
    async def handler(batch: list[Delivery]) -> None:
        # Oldest first: the stored version check then keeps only the newest.
        for delivery in sorted(batch, key=lambda d: d.envelope.time):
            # Group mappings decide who becomes tenant admin where: only the tenant service says so.
            if delivery.envelope.source != "/tenant":
                logger.warning(
                    "tenant.company.changed from {!r} ignored: only /tenant publishes it",
                    delivery.envelope.source[:64],
                )
                continue
            if isinstance(delivery.payload, CompanyChanged):
                await handle_company_changed(state, delivery.payload)

    return BatchConsumer(state.bus, QUEUE, BINDINGS, handler, batch_size=100)
