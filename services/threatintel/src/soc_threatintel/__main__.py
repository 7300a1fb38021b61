"""``python -m soc_threatintel``: migrate the ``threatintel`` schema, then serve on port 8014."""

from pathlib import Path

from soc_shared.runtime import run_service
from soc_shared.settings import load_settings

from soc_threatintel.config import Settings
from soc_threatintel.main import create_app


def main() -> None:
    run_service(load_settings(Settings), create_app, Path(__file__).parent / "migrations")


if __name__ == "__main__":
    main()
