"""The console's typed client is generated from the gateway's merged OpenAPI document: when a route
changes, the committed web/openapi.json and web/src/api/schema.d.ts must be regenerated
(scripts/gen_client.sh), and the console's type check then shows what the change breaks."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from console_stack import ROOT


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js is not installed")
def test_generated_client_matches_the_merged_openapi() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_client.sh"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
