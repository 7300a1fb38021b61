"""The read model's tables and the control-plane tables it joins against: all declared once in
``soc_tenant.tables`` (the service's one metadata); the read model's query modules import them
from here as ``t``."""

from soc_tenant.tables import *  # noqa: F403
from soc_tenant.tables import TS, md, metadata  # noqa: F401
