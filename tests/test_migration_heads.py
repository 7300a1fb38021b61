"""Each service's migrations form one line: two changes landing side by side with the same parent
would leave two heads, and `migrate` would refuse to start the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = sorted(ROOT.glob("services/*/src/*/migrations"))


@pytest.mark.parametrize("migrations", MIGRATIONS, ids=lambda p: p.parent.name)
def test_one_head(migrations: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"{migrations}: heads {heads} — rebase the newer migration onto the other"


def test_every_service_has_migrations() -> None:
    assert {p.parent.name for p in MIGRATIONS} >= {
        "soc_auth",
        "soc_tenant",
        "soc_siem_ingest",
        "soc_soar_ingest",
        "soc_itsm_ingest",
        "soc_threatintel",
    }
