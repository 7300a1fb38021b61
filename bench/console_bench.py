"""Web console: JavaScript sent on the first load of the dashboard, and the time until the dashboard
is interactive, in Debian's headless Chromium on loopback with the demo data.

    uv run --frozen python bench/console_bench.py [--gateway URL --username U --password P] [--runs 5]

Without --gateway it starts the whole suite with the demo data itself (tests/browser/console_stack.py,
database soc_bench_console). Figures printed:
- first-load JS: every script a cold load of the dashboard fetches (signed in), raw and gzip -9 sizes;
- dashboard interactive: from navigation to /dashboard (signed in, cold cache) until the key
  figures are drawn and the page answers input (a click handled), p50 and max over the runs;
- charts drawn: until every chart of the dashboard has its canvas.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def measure(gateway: str, username: str, password: str, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        scripts: dict[str, bytes] = {}
        interactive: list[float] = []
        charts: list[float] = []
        for run in range(runs):
            context = browser.new_context(base_url=gateway)  # a fresh context: cold cache every run
            page = context.new_page()
            page.goto("/sign-in")
            page.get_by_label("User name or e-mail").fill(username)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_role("button", name="Sign out").wait_for()
            page.goto("/offenses")
            page.wait_for_load_state("networkidle")
            # Cold again for the dashboard: a new context keeps the session in sessionStorage only,
            # so the measured navigation is a full page load of /dashboard with a signed-in session.
            state = page.evaluate("() => JSON.stringify(sessionStorage)")
            context.close()
            context = browser.new_context(base_url=gateway)
            context.add_init_script(
                f"if (!sessionStorage.length) {{ const s = {state}; for (const k in s) sessionStorage.setItem(k, s[k]); }}"
            )
            page = context.new_page()
            if run == 0:  # the scripts a cold load of the dashboard fetches (read after the run)
                page.on("request", lambda r: r.resource_type == "script" and scripts.setdefault(r.url, b""))
            started = time.perf_counter()
            page.goto("/dashboard", wait_until="commit")
            page.get_by_test_id("offenses-open").wait_for()
            page.get_by_role("button", name="Sign out").click(trial=True)  # actionable: the page takes input
            interactive.append(time.perf_counter() - started)
            page.wait_for_function(
                "() => document.querySelectorAll('.chart canvas').length >= 6", timeout=30_000
            )
            charts.append(time.perf_counter() - started)
            context.close()
        browser.close()
    import httpx

    for url in scripts:
        scripts[url] = httpx.get(url, timeout=30, trust_env=False).content
    raw = sum(len(b) for b in scripts.values())
    packed = sum(len(gzip.compress(b, 9)) for b in scripts.values())
    print(f"first-load JS: {len(scripts)} files, {raw / 1024:.1f} KB raw, {packed / 1024:.1f} KB gzip")  # noqa: T201
    for url, body in sorted(scripts.items(), key=lambda kv: -len(kv[1])):
        print(f"  {url.rsplit('/', 1)[-1]:<32} {len(gzip.compress(body, 9)) / 1024:7.1f} KB gzip")  # noqa: T201
    print(  # noqa: T201
        f"dashboard interactive: p50 {statistics.median(interactive) * 1000:.0f} ms, "
        f"max {max(interactive) * 1000:.0f} ms over {runs} runs"
    )
    print(  # noqa: T201
        f"all charts drawn:      p50 {statistics.median(charts) * 1000:.0f} ms, max {max(charts) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway")
    parser.add_argument("--username", default="acme.user")
    parser.add_argument("--password", default="Acme-User-Demo-42")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.gateway:
        measure(args.gateway, args.username, args.password, args.runs)
        return
    import subprocess

    from console_stack import ConsoleStack
    from soc_shared.provision import provision_database, provision_vhost

    subprocess.run(["bash", str(ROOT / "scripts" / "build_web.sh")], check=True)
    name = "soc_bench_console"
    os.environ.setdefault("SOC_ENV", "test")
    os.environ["SOC_DB_NAME"] = name
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@127.0.0.1:5672/{name}"
    provision_database(name, fresh=True)
    provision_vhost(name, fresh=True)
    stack = ConsoleStack()
    try:
        stack.start()
        measure(stack.gateway, args.username, args.password, args.runs)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
