"""What `make up` shows of identity: the demo directory's administrators signing in through the
administrators' directory, and a demo account with TOTP MFA going through the challenge step
(scripts/run_suite.py, run here against the auth service itself)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

from soc_auth.testing import ADMIN_PASSWORD, Running, auth_settings, running
from soc_shared.testing import ServerThread

ROOT = Path(__file__).resolve().parents[3]
ADMINS = "ou=admins,dc=soc,dc=local"


def admin_dir_settings():
    # As scripts/run_suite.py configures the demo.
    return auth_settings(
        admin_ldap_urls=["ldap://127.0.0.1:3389"],
        admin_ldap_base_dn=ADMINS,
        admin_ldap_user_search_base=f"ou=people,{ADMINS}",
        admin_ldap_group_search_base=f"ou=groups,{ADMINS}",
        consumers_enabled=False,
    )


def _run_suite():
    spec = importlib.util.spec_from_file_location("run_suite_for_test", ROOT / "scripts" / "run_suite.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


async def test_demo_admin_directory_and_mfa_lines(auth: Running, tmp_path: Path) -> None:
    suite = _run_suite()
    suite.MFA_DEMO_FILE = tmp_path / "mfa-demo"
    suite.ROOT = tmp_path
    async with running(admin_dir_settings()) as service:
        with ServerThread(service.app) as server:
            url = f"http://127.0.0.1:{server.port}"
            admins = await asyncio.to_thread(suite.admin_directory_lines, url)
            assert [line.rsplit("admin sign-in: ", 1)[1] for line in admins] == [
                "SUPER_ADMIN)",
                "ADMIN)",
                "READ_ONLY_ADMIN)",
            ]
            first = await asyncio.to_thread(suite.mfa_demo_lines, url, "admin", ADMIN_PASSWORD)
            assert "challenge → code → tokens" in first[0], first
            saved = json.loads(suite.MFA_DEMO_FILE.read_text())
            assert (
                saved["provisioning_uri"].startswith("otpauth://totp/") and len(saved["recovery_codes"]) == 10
            )
            assert oct(suite.MFA_DEMO_FILE.stat().st_mode)[-3:] == "600"
