"""``python -m soc_threatintel``: migrate the ``threatintel`` schema, then serve on port 8014."""

from pathlib import Path

import uvicorn
from soc_shared.db import migrate
from soc_shared.runtime import tune_gc

from soc_threatintel.config import Settings
from soc_threatintel.main import create_app


def main() -> None:
    settings = Settings()
    migrate(settings, Path(__file__).parent / "migrations")
    app = create_app(settings)
    tune_gc()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
