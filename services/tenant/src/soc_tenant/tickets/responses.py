"""What the tickets routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel

from soc_tenant.incidents.responses import IncidentOffense
from soc_tenant.threatintel.responses import TiMatch


class ItsmTenant(ApiModel):
    """A ServiceDesk Plus account (the seed's "ITSM tenant")."""

    integration_id: str
    account_id: str
    name: str
    updated_at: datetime


class TicketSummary(ApiModel):
    """A ServiceDesk Plus request as lists show it."""

    id: int = Field(description="our id (the detail route's `ticket_pk`)")
    integration_id: str
    ticket_id: str = Field(description="ServiceDesk Plus's request id")
    account_id: str
    account_name: str | None
    subject: str
    short_description: str | None
    status: str = Field(description="ServiceDesk Plus's status name, e.g. `Open`, `On Hold`, `Closed`")
    priority: str = Field(description="ServiceDesk Plus's priority name")
    is_overdue: bool
    created_time: datetime
    last_updated_time: datetime
    created_by_name: str | None
    soar_incident_id: str | None = Field(description="the XSOAR incident the ticket was opened for")
    version: int
    technician_name: str | None = Field(default=None, description="the technician working the ticket")
    resolution: str | None = Field(default=None, description="the resolution the service desk wrote")
    request_url: str | None = Field(
        default=None, description="the ticket link: the request in ServiceDesk Plus"
    )


class TicketTotals(ApiModel):
    """Tickets of one ServiceDesk Plus account (created within the window)."""

    integration_id: str
    account_id: str
    account_name: str | None
    total: int
    open: int
    overdue: int = Field(description="open and overdue")
    closed: int


class TicketIncident(ApiModel):
    id: int
    integration_id: str
    incident_id: str
    name: str
    status: str
    severity: str
    priority: str
    created: datetime
    closed: datetime | None
    offense_ids: list[int]


class TicketDetail(TicketSummary):
    event_id: str | None
    updated_at: datetime
    incident: TicketIncident | None = Field(description="the SOAR incident, when the company can see it")
    offenses: list[IncidentOffense] = Field(description="that incident's QRadar offenses")
    ti_matches: list[TiMatch] | None = Field(
        default=None,
        description="the threat-intel alerts naming this ticket's indicators (subject, description, "
        "resolution), newest first, at most 500; null without the THREAT_INTELLIGENCE permission",
    )


TicketDetail.model_rebuild()
