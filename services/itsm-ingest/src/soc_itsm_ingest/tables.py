"""The metadata of the ingestor's own tables (OAuth tokens, ticket requests, unrouted incidents);
with the sync tables of ``soc_shared.sync`` they make its schema (see ``migrations/env.py``)."""

import sqlalchemy as sa
from soc_shared.actions import action_table

metadata = sa.MetaData()

# Actions on command (a note or a status on a request), one row per asker's idempotency key.
vendor_action = action_table(metadata)
