import soc_itsm_ingest.oauth  # noqa: F401  (declares its table on the metadata)
import soc_itsm_ingest.tickets  # noqa: F401
from soc_itsm_ingest.tables import metadata
from soc_shared.db import run_alembic_env
from soc_shared.sync import ingestor_metadata

run_alembic_env(ingestor_metadata(metadata))
