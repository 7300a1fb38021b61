"""``python -m soc_gateway``: the gateway under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import uvicorn
from soc_shared.runtime import tls_options, tune_gc
from soc_shared.settings import load_settings

from soc_gateway.config import Settings
from soc_gateway.main import create_app


def main() -> None:
    settings = load_settings(Settings)
    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # loguru (set up by the app) takes uvicorn's records
        access_log=False,  # the gateway writes its own access line, with the request id and the user
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is judged by the gateway against SOC_GATEWAY_TRUSTED_PROXIES
        ws_max_size=settings.max_body_bytes,
        timeout_keep_alive=5,
        **tls_options(settings),
    )


if __name__ == "__main__":
    main()
