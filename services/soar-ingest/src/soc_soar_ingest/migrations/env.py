from soc_shared.db import run_alembic_env
from soc_shared.sync import ingestor_metadata
from soc_soar_ingest.state import metadata

run_alembic_env(ingestor_metadata(metadata))
