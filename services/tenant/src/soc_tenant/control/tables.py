"""The control plane's tables (declared in ``soc_tenant.tables``, the service's one metadata).

Company-scoped tables carry row-level security keyed on ``company_id`` (see the migrations): API
routes read and write them through the RLS-bound app role, so a forgotten filter cannot leak
another company's rows.
"""

from soc_tenant.tables import (
    audit_record,
    chat_message,
    company,
    directory_group,
    integration,
    itsm_account,
    itsm_mapping,
    md,
    outbox,
    pending_action,
    qradar_domain,
    qradar_mapping,
    sla_company,
    sla_default,
    soar_account,
    soar_mapping,
    sync_report,
    tenant_member,
    ticket_policy,
    ticket_policy_audit,
)

__all__ = [
    "audit_record",
    "chat_message",
    "company",
    "directory_group",
    "integration",
    "itsm_account",
    "itsm_mapping",
    "md",
    "outbox",
    "pending_action",
    "qradar_domain",
    "qradar_mapping",
    "sla_company",
    "sla_default",
    "soar_account",
    "soar_mapping",
    "sync_report",
    "tenant_member",
    "ticket_policy",
    "ticket_policy_audit",
]
