from soc_auth.models import metadata
from soc_shared.db import run_alembic_env

run_alembic_env(metadata)
