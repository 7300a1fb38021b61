import sqlalchemy as sa
from soc_itsm_ingest.tickets import metadata as tickets_metadata
from soc_shared.db import run_alembic_env
from soc_shared.sync import metadata as sync_metadata

combined = sa.MetaData()
for table in (*sync_metadata.tables.values(), *tickets_metadata.tables.values()):
    table.to_metadata(combined)

run_alembic_env(combined)
