"""The notification tables (declared in ``soc_tenant.tables``, the service's one metadata; created by
migration 0015). Every table but the poll watch carries ``company_id`` and row-level security keyed
on it; rows without a company are the MSSP's own staff's (admins only)."""

from soc_tenant.tables import (
    notify_attempt,
    notify_channel,
    notify_delivery,
    notify_notice,
    notify_read,
    notify_rule,
    notify_sync_watch,
)

__all__ = [
    "notify_attempt",
    "notify_channel",
    "notify_delivery",
    "notify_notice",
    "notify_read",
    "notify_rule",
    "notify_sync_watch",
]
