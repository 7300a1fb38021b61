from soc_shared.db import run_alembic_env
from soc_tenant.tables import metadata

run_alembic_env(metadata)
