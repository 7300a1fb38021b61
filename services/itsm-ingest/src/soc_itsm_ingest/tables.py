"""The metadata of the ingestor's own tables (OAuth tokens, ticket requests, unrouted incidents);
with the sync tables of ``soc_shared.sync`` they make its schema (see ``migrations/env.py``)."""

import sqlalchemy as sa

metadata = sa.MetaData()
