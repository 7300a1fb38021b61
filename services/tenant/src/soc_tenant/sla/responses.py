"""What the sla routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import Field
from soc_shared.api import ApiModel, Page


class SlaLevelTargets(ApiModel):
    """The default targets of one level, in minutes from the incident's creation."""

    level: str = Field(description="`P1` (critical) to `P4` (low)")
    tta_minutes: int = Field(description="time to acknowledge")
    ttn_minutes: int = Field(description="time to notify")
    ttdn_minutes: int = Field(description="time to the detailed notification")
    updated_by: str | None
    updated_at: datetime


class SlaOverride(ApiModel):
    """A company's own targets for one level, for every account, one XSOAR integration or one account."""

    id: uuid.UUID
    integration_id: str | None
    account: str | None
    level: str
    tta_minutes: int
    ttn_minutes: int
    ttdn_minutes: int
    updated_by: str | None
    created_at: datetime
    updated_at: datetime


class EffectiveSla(ApiModel):
    tta_minutes: int
    ttn_minutes: int
    ttdn_minutes: int
    source: str = Field(
        description="`default`, `company`, `integration` or `account`: the most specific that applies"
    )


class CompanySla(ApiModel):
    company_id: uuid.UUID
    is_default_sla: bool
    sla_clock_start: str = Field(
        description="where SLA steps are measured from: `occurred` (the original's rule, default) or `created`"
    )
    defaults: list[SlaLevelTargets]
    overrides: list[SlaOverride]
    effective: dict[str, EffectiveSla] = Field(description="level -> the targets that apply company-wide")


class SlaStepOfIncident(ApiModel):
    status: str | None = Field(description="`met`, `breached`, `pending`, `no_sla` or `no_start`")
    elapsed_minutes: float | None = Field(description="from the clock start to the step, when it happened")
    target_minutes: int | None


class SlaOfIncident(ApiModel):
    tta: SlaStepOfIncident = Field(description="time to acknowledge")
    ttn: SlaStepOfIncident = Field(description="time to notify")
    ttdn: SlaStepOfIncident = Field(description="time to the detailed notification")
    overall: str | None = Field(description="the worst step status")
    clock_start: str = Field(description="`occurred` or `created`: the company's clock start")
    started: datetime | None = Field(description="the clock start of this incident")
    counted: bool = Field(description="counted in compliance (a true positive with all three step times)")
    compliance: str | None = Field(
        description="when counted: `fully_compliant`, `partially_compliant` or `non_compliant`"
    )


class SlaIncident(ApiModel):
    """An incident created within the window, with the status of each SLA step."""

    id: int
    integration_id: str
    incident_id: str
    account: str
    name: str
    status: str
    severity: str
    priority: str
    owner: str | None
    created: datetime
    occurred: datetime | None
    closed: datetime | None
    tta_at: datetime | None
    ttn_at: datetime | None
    ttdn_at: datetime | None
    itsm_sync_status: str | None
    positive: str = Field(description="`true_positive`, `false_positive` or `not_counted`")
    resolution_minutes: float | None = Field(description="from the clock start to closure")
    sla: SlaOfIncident


class SlaStepCounts(ApiModel):
    """The original's figures for one step, over the counted incidents."""

    met: int = Field(description="counted incidents that reached the step within the target (inclusive)")
    breached: int = Field(description="counted incidents that reached it later")
    compliance_pct: float | None = Field(description="met ÷ counted, in %; null when nothing is counted")


class SlaOverallCounts(ApiModel):
    """The original's overall figures, over the counted incidents."""

    fully_compliant: int = Field(description="all three steps met")
    partially_compliant: int = Field(description="one or two steps breached")
    non_compliant: int = Field(description="all three steps breached")
    compliance_pct: float | None = Field(description="fully compliant ÷ counted, in %")


class OurStepCounts(ApiModel):
    """Ours, for one step, over every incident of the window (counted or not)."""

    met: int
    breached: int = Field(description="done, later than the target")
    pending: int = Field(description="not done, target not passed yet")
    breaching: int = Field(description="not done and the target already passed: a breach in progress")
    no_sla: int = Field(description="no target for the incident's level")
    no_start: int = Field(description="no clock start (e.g. no `occurred`)")


class OurSlaCounts(ApiModel):
    """Figures the original did not have, kept apart from its own."""

    true_positives: int
    false_positives: int
    not_counted: int = Field(description="incidents of the window outside the compliance figures")
    missing_timestamps: int = Field(description="no clock start or a step without its time")
    steps: dict[str, OurStepCounts] = Field(description="`tta`, `ttn`, `ttdn` -> counts")
    overall: dict[str, int] = Field(description="incidents by their worst step status")


class SlaCountsByStep(ApiModel):
    incidents: int = Field(description="ours: every incident of the window")
    counted: int = Field(description="the original's: true positives with all three step times")
    tta: SlaStepCounts
    ttn: SlaStepCounts
    ttdn: SlaStepCounts
    overall: SlaOverallCounts
    ours: OurSlaCounts


class SlaStepTargets(ApiModel):
    tta: int | None = Field(description="minutes")
    ttn: int | None = Field(description="minutes")
    ttdn: int | None = Field(description="minutes")


class SlaCompliance(ApiModel):
    """SLA compliance of the incidents created within the window (default: the last 30 days)."""

    from_: datetime = Field(alias="from")
    to: datetime
    clock_start: str = Field(description="`occurred` (the original's, default) or `created`")
    counted_rule: dict[str, Any] = Field(description="the deployment's true/false-positive rule")
    by_priority: dict[str, SlaCountsByStep] = Field(description="priority (`P1`-`P4`) -> counts")
    total: SlaCountsByStep
    default_targets: dict[str, SlaStepTargets | None] = Field(description="level -> the default targets")
    uses_company_sla: bool = Field(description="the company has its own targets instead of the defaults")


class SeverityGraphPoint(ApiModel):
    day: date
    counts: dict[str, int] = Field(description="priority or severity -> incidents created that day")


class SeverityGraph(ApiModel):
    by: str = Field(description="`priority` or `severity`")
    from_: datetime = Field(alias="from")
    to: datetime
    points: list[SeverityGraphPoint]


class SeverityMetrics(ApiModel):
    """One priority's incidents within the window; averages in minutes from the clock start.
    `counted`, `*_met`, `*_breached`: the original's (counted incidents); the rest ours."""

    priority: str
    incidents: int
    counted: int
    tta_met: int
    ttn_met: int
    ttdn_met: int
    open: int
    closed: int
    avg_tta_minutes: float | None
    avg_ttn_minutes: float | None
    avg_ttdn_minutes: float | None
    avg_resolution_minutes: float | None
    tta_breached: int
    ttn_breached: int
    ttdn_breached: int
    tta_target_minutes: int | None
    ttn_target_minutes: int | None
    ttdn_target_minutes: int | None


class SeverityMetricsPage(Page[SeverityMetrics]):
    from_: datetime = Field(alias="from")
    to: datetime


class SlaOverview(ApiModel):
    """SLA cards for the window. The original's: `counted`, fully / partially / non compliant,
    `compliance_pct` (fully compliant ÷ counted), `steps`. Ours: the rest; `mtt*_minutes` are means
    in minutes from the clock start."""

    from_: datetime = Field(alias="from")
    to: datetime
    clock_start: str
    counted: int
    fully_compliant: int
    partially_compliant: int
    non_compliant: int
    compliance_pct: float | None
    steps: dict[str, SlaStepCounts] = Field(description="`tta`, `ttn`, `ttdn` -> the original's counts")
    total_incidents: int
    open_incidents: int
    closed_incidents: int
    true_positives: int
    false_positives: int
    missing_timestamps: int
    pending: int = Field(description="incidents with a pending step and none breached")
    breached: int = Field(description="incidents with a breached step (done late or overdue)")
    breaching: int = Field(description="steps not done and already overdue")
    mtta_minutes: float | None = Field(description="mean time to acknowledge")
    mttn_minutes: float | None = Field(description="mean time to notify")
    mttdn_minutes: float | None = Field(description="mean time to the detailed notification")
    mttr_minutes: float | None = Field(description="mean time to resolve (closure)")
