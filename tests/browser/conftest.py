"""Browser tests: Debian's Chromium driven by Playwright against the whole suite (tests/browser/console_stack.py)
with the demo data, the console built by scripts/build_web.sh and served by the gateway.

Screenshots land in .local/artefacts/browser/ (kept by CI as test artefacts, never committed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from console_stack import ADMIN_PASSWORD, ADMIN_USERNAME, ROOT, STATE, ConsoleStack  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = ROOT / ".local" / "artefacts" / "browser"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"

USERS = {
    "admin": (ADMIN_USERNAME, ADMIN_PASSWORD),
    "acme.admin": ("acme.admin", "Acme-Admin-Demo-42"),
    "acme.user": ("acme.user", "Acme-User-Demo-42"),
    "globex.user": ("globex.user", "Globex-User-Demo-42"),
    # A directory (OpenLDAP) account of the demo: member of acme-soc-users.
    "alice": ("alice", "alice-pass"),
}


@pytest.fixture(scope="session")
def console_build() -> Path:
    subprocess.run(["bash", str(ROOT / "scripts" / "build_web.sh")], check=True)
    return ROOT / "web" / "dist"


@pytest.fixture(scope="session")
def stack(console_build: Path) -> Iterator[Any]:
    running = os.environ.get("SOC_CONSOLE_STACK_URL")
    if running:  # a stack already started with `python tests/browser/console_stack.py` (development)
        gateway = running.rstrip("/")
        providers = httpx.get(f"{gateway}/auth/oidc/providers/", timeout=10, trust_env=False).json()["items"]
        attached = ConsoleStack.attach(STATE) if STATE.exists() else None
        if attached is None or attached.gateway != gateway:
            attached = None
        yield SimpleNamespace(
            gateway=gateway,
            oidc_issuer=providers[0]["issuer"] if providers else None,
            start_policy_gateway=attached.start_policy_gateway if attached else None,
        )
        if attached:
            attached.stop()
        return
    from soc_shared.provision import provision_database, provision_vhost
    from soc_shared.testing import TEST_DB, TEST_VHOST

    # A database and vhost of its own: the session's hold other tests' integrations (pointing at
    # simulators long gone) and admin, which the console's services would otherwise work through.
    db, vhost = f"{TEST_DB}_browser", f"{TEST_VHOST}_browser"
    provision_database(db, fresh=True)
    provision_vhost(vhost, fresh=True)
    suite = ConsoleStack(db=db, vhost=vhost)
    try:
        suite.start()
        yield suite
    finally:
        suite.stop()


class Api:
    def __init__(self, gateway: str) -> None:
        self.http = httpx.Client(base_url=gateway, timeout=60, trust_env=False)
        self.tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        if user not in self.tokens:
            username, password = USERS[user]
            answer = self.http.post("/auth/login/", json={"username": username, "password": password})
            answer.raise_for_status()
            self.tokens[user] = answer.json()["access_token"]
        return self.tokens[user]

    def get(self, user: str, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.token(user)}"})
        answer.raise_for_status()
        return answer.json()

    def send(self, user: str, method: str, path: str, body: Any = None) -> Any:
        answer = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.token(user)}"}
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None


@pytest.fixture(scope="session")
def api(stack: ConsoleStack) -> Api:
    return Api(stack.gateway)


# Module scope: Playwright's sync API runs an event loop on the main thread until it is stopped; kept
# for the session it would break every later asyncio test ("cannot be called from a running loop").
@pytest.fixture(scope="module")
def browser(stack: ConsoleStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    # Evaluated through the debugging protocol: the console's CSP rightly refuses inline scripts.
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


# The page has drawn its answer: the shell (or sign-in page) is there and no request is loading.
SETTLED = "() => document.querySelector('main') !== null && document.querySelector('.state.loading') === null"


class Console:
    """One browser context signed in as one user."""

    def __init__(self, browser: Any, gateway: str, **context: Any) -> None:
        self.gateway = gateway
        self.context = browser.new_context(base_url=gateway, accept_downloads=True, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def resume(self, user: str | tuple[str, str]) -> Console:
        """Signed in without the form (the sign-in tests use it): a session of its own from the
        login API, handed to the tab as the console keeps it. The tab's first load takes it once,
        so a sign-out stays a sign-out."""
        username, password = USERS[user] if isinstance(user, str) else user
        with httpx.Client(base_url=self.gateway, timeout=60, trust_env=False) as http:
            answer = http.post("/auth/login/", json={"username": username, "password": password})
        answer.raise_for_status()
        tokens = json.dumps({k: answer.json()[k] for k in ("access_token", "refresh_token")})
        origin, stored = json.dumps(self.gateway), json.dumps(tokens)
        self.context.add_init_script(
            f"if (location.origin === {origin} && !sessionStorage.getItem('soc.resumed')) {{"
            f" sessionStorage.setItem('soc.resumed', '1'); sessionStorage.setItem('soc.tokens', {stored}); }}"
        )
        return self

    def sign_in(self, user: str | tuple[str, str]) -> Console:
        username, password = USERS[user] if isinstance(user, str) else user
        self.page.goto("/sign-in")
        self.page.get_by_label("User name or e-mail").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        # Signed in (the shell's Sign out) or refused (the form's alert): fail with the reason.
        outcome = self.page.get_by_role("button", name="Sign out").or_(self.page.get_by_role("alert"))
        outcome.first.wait_for(timeout=60_000)
        if not self.page.get_by_role("button", name="Sign out").is_visible():
            raise AssertionError(
                f"{username} could not sign in: {self.page.get_by_role('alert').inner_text()}"
            )
        return self

    def open(self, path: str) -> Any:
        self.page.goto(path)
        self.page.wait_for_function(SETTLED, timeout=30_000)
        return self.page

    def screenshot(self, name: str) -> Path:
        path = ARTEFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Any, stack: ConsoleStack) -> Iterator[Any]:
    opened: list[Console] = []

    def make(user: str | tuple[str, str] | None = None, *, form: bool = False, **context: Any) -> Console:
        """A browser context; with a user, signed in — through the sign-in form when ``form``."""
        session = Console(browser, stack.gateway, **context)
        opened.append(session)
        if user is None:
            return session
        return session.sign_in(user) if form else session.resume(user)

    yield make
    for session in opened:
        assert not session.errors, f"uncaught errors in the page: {session.errors}"
        session.close()
