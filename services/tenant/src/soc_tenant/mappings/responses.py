"""What the mappings routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel


class MappingBase(ApiModel):
    id: uuid.UUID
    company_id: uuid.UUID
    company_name: str | None
    integration_id: str
    integration_name: str | None = Field(description="the integration's instance name")
    active: bool = Field(description="data is attributed to the company only through active mappings")
    inactive_reason: str | None = Field(description="e.g. `company_deleted`")
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class QradarMapping(MappingBase):
    """A QRadar domain attributed to a company, with its contracted volume."""

    domain_id: int
    domain_name: str | None
    contracted_volume_type: str = Field(description="`EPS` or `GB_PER_DAY`")
    contracted_volume: float = Field(description="in the unit of `contracted_volume_type`")
    event_collector_ids: list[int] = Field(
        description="QRadar event collectors that also count as the company's"
    )


class SoarMapping(MappingBase):
    """An XSOAR account attributed to a company."""

    account: str


class ItsmMapping(MappingBase):
    """A ServiceDesk Plus account attributed to a company."""

    account_id: str
    account_name: str | None
