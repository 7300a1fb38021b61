import sys
from pathlib import Path

from soc_shared.runtime import run_service
from soc_shared.settings import load_settings

from soc_tenant.config import Settings
from soc_tenant.main import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def reseal(settings: Settings) -> None:
    """Re-seal every integration's credentials with the active key of SOC_SEALING_KEYS."""
    from soc_shared.crypto import Sealer, reseal_column

    from soc_tenant.control.tables import integration
    from soc_tenant.integrations.views import aad

    sealer = Sealer.from_env_value(settings.sealing_keys.get_secret_value())
    done, total, unreadable = reseal_column(
        settings.database_url(), integration, "id", "credentials_sealed", aad, sealer
    )
    print(f"re-sealed {done} of {total} integration credentials with key {sealer.active_kid!r}")  # noqa: T201
    for row_id in unreadable:
        print(f"integration {row_id}: sealed credentials do not open with the configured keys")  # noqa: T201


def ti_backfill(settings: Settings) -> None:
    """Extract and match the threat-intel observables of every stored record that has none yet."""
    import asyncio

    from soc_shared.bus import Bus
    from soc_shared.db import Database

    from soc_tenant.threatintel.backfill import backfill

    async def run() -> dict[str, int]:
        db = Database.from_settings(settings)
        bus = Bus(settings.amqp_url.get_secret_value(), service="tenant")
        await bus.connect()
        try:
            return await backfill(
                db,
                bus=bus,
                record_days=settings.ti_match_lookback_days,
                alert_days=settings.ti_alert_max_age_days,
            )
        finally:
            await bus.close()
            await db.dispose()

    totals = asyncio.run(run())
    print(  # noqa: T201
        f"threat-intel backfill: {totals['walked']} records walked, {totals['extracted']} extracted, "
        f"{totals['matches']} new matches"
    )


def main() -> None:
    """``python -m soc_tenant [serve|migrate|reseal|ti-backfill]``; ``reseal`` moves every sealed
    credential to the active key of SOC_SEALING_KEYS (after a rotation); ``ti-backfill`` extracts
    and matches the threat-intel observables of records stored before matching existed."""
    settings = load_settings(Settings)
    if sys.argv[1:2] == ["ti-backfill"]:
        from soc_shared.db import migrate

        migrate(settings, MIGRATIONS)
        ti_backfill(settings)
        return
    if sys.argv[1:2] == ["reseal"]:
        from soc_shared.db import migrate

        migrate(settings, MIGRATIONS)
        reseal(settings)
        return
    run_service(settings, create_app, MIGRATIONS)


if __name__ == "__main__":
    main()
