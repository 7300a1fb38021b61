"""The web console in a real headless Chromium against the whole suite with the demo data."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from conftest import Api, axe_violations

pytestmark = pytest.mark.timeout(900)  # the first test to use the stack waits for it to start

SIGN_OUT = "Sign out"


def nav_labels(page: Any) -> list[str]:
    page.get_by_role("navigation", name="Main").get_by_role("link").first.wait_for()
    return [
        t.strip() for t in page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    ]


def test_each_kind_of_user_signs_in_and_sees_what_it_may(console: Any) -> None:
    admin = console("admin", form=True)
    labels = nav_labels(admin.page)
    assert {"Companies", "Integrations", "Dead letters", "Login audit"} <= set(labels)
    assert admin.page.get_by_label("Company").is_visible()  # the company switcher

    tenant_admin = console("acme.admin", form=True)
    assert "Assets" in nav_labels(tenant_admin.page)
    assert "Companies" not in nav_labels(tenant_admin.page)

    # The demo's tenant user has no ASSETS permission: no entry, and the page refuses by URL too.
    user = console("acme.user", form=True)
    labels = nav_labels(user.page)
    assert "Reports" in labels and "Assets" not in labels and "Companies" not in labels
    user.open("/assets")
    assert user.page.get_by_text("You do not have access to this page.").is_visible()

    # A directory account: signs in with its LDAP password, lands in its group's company.
    directory = console("alice", form=True)
    assert "Dashboard" in nav_labels(directory.page)

    # Signing out ends the session: back to the sign-in page, and a reload does not restore it.
    user.page.get_by_role("button", name=SIGN_OUT).click()
    user.page.get_by_text("You have signed out.").wait_for()
    user.open("/dashboard")
    assert "/sign-in" in user.page.url


def test_a_wrong_password_shows_the_message_and_request_id(console: Any) -> None:
    anonymous = console()
    page = anonymous.page
    page.goto("/sign-in")
    page.get_by_label("User name or e-mail").fill("acme.user")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Wrong user name or password." in alert.inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", page.locator(".request-id").inner_text())


def test_a_user_without_reports_sees_no_reports_entry(console: Any, api: Api) -> None:
    company = api.get("admin", "/admin/companies/", q="Acme Corp")["items"][0]
    password = "Narrow-Perms-Demo-42"
    try:
        api.send(
            "admin",
            "POST",
            f"/admin/companies/{company['id']}/users/",
            {
                "username": "acme.viewer",
                "email": "viewer@acme.example",
                "tenant_role": "TENANT_USER",
                "permissions": ["DASHBOARD"],
                "password": password,
            },
        )
    except Exception as exc:  # a rerun against the same database finds the user there
        if "409" not in str(exc):
            raise
    viewer = console(("acme.viewer", password))
    viewer.open("/dashboard")
    labels = nav_labels(viewer.page)
    assert "Reports" not in labels and "Threat alerts" not in labels and "Dashboard" in labels
    viewer.open("/offenses")
    assert viewer.page.get_by_role("button", name="Download CSV").count() == 0


def test_dashboard_numbers_equal_the_api(console: Any, api: Api) -> None:
    user = console("acme.user")
    page = user.open("/dashboard")
    page.get_by_test_id("dashboard-ready").wait_for()
    expected = api.get("acme.user", "/tenant/dashboard/")

    def card(test_id: str) -> str:
        return page.get_by_test_id(test_id).inner_text().replace(",", "")

    assert card("offenses-open") == str(expected["offenses"]["open"])
    assert card("incidents-open") == str(expected["incidents"]["open"])
    assert card("incidents-critical") == str(expected["incidents"]["critical_open"])
    assert card("tickets-open") == str(expected["tickets"]["open"])
    assert card("sla-compliance") == f"{expected['sla']['compliance_pct']:.1f}%"
    assert card("eps-average") == f"{expected['eps']['average_eps']:.1f}"
    if expected["ti_matches"] is not None:
        assert card("incidents-ti-matched") == str(expected["ti_matches"]["open_incidents_with_matches"])
    user.screenshot("dashboard-acme-user")
    # The theme switch redraws the charts in the new theme at once (new ECharts instances).
    page.wait_for_function("() => document.querySelectorAll('.chart canvas').length >= 6", timeout=30_000)
    instances = "[...document.querySelectorAll('.chart')].map(c => c.getAttribute('_echarts_instance_'))"
    before = page.evaluate(f"() => {instances}")
    page.get_by_role("button", name="Switch to dark theme").click()
    page.wait_for_function(
        f"before => {instances}.every((id, i) => id && id !== before[i])", arg=before, timeout=10_000
    )


def test_a_filter_narrows_the_list(console: Any, api: Api) -> None:
    user = console("acme.user")
    page = user.open("/incidents")
    total = int(page.get_by_test_id("list-total").inner_text())
    assert total == api.get("acme.user", "/tenant/soar-incidents/", limit=1)["total"]
    page.get_by_label("Priority").select_option("P1")
    expected = api.get("acme.user", "/tenant/soar-incidents/", priority="P1", limit=1)["total"]
    page.wait_for_function(
        "n => document.querySelector('[data-testid=list-total]')?.textContent === String(n)", arg=expected
    )
    assert 0 < expected < total
    assert "priority=P1" in page.url  # the filter is in the address: shareable, survives a reload
    rows = page.locator("tbody tr")
    assert rows.count() == min(expected, 25)
    assert set(page.locator("tbody tr td:nth-child(3)").all_inner_texts()) == {"P1"}


def test_a_download_arrives(console: Any, api: Api) -> None:
    user = console("acme.user")
    page = user.open("/offenses?status=OPEN")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    expected = api.get("acme.user", "/tenant/offenses/", status="OPEN", limit=1)["total"]
    assert len(rows) - 1 == expected > 0


def test_chat_arrives_live_in_the_other_context(console: Any, api: Api) -> None:
    company = api.get("admin", "/admin/companies/", q="Acme Corp")["items"][0]
    admin = console("admin")
    admin.open("/chat")
    admin.page.get_by_label("Company").select_option(company["id"])
    user = console("acme.user")
    for side in (admin, user):
        side.open("/chat")
        side.page.get_by_test_id("chat-status").filter(has_text="Live").wait_for()

    user.page.get_by_placeholder("Write a message").fill("Is offense 42 a false positive?")
    user.page.get_by_role("button", name="Send").click()
    admin.page.get_by_role("list", name="Messages").get_by_text("Is offense 42 a false positive?").wait_for(
        timeout=10_000
    )

    admin.page.get_by_placeholder("Write a message").fill("Yes, we tuned the rule.")
    admin.page.get_by_role("button", name="Send").click()
    user.page.get_by_role("list", name="Messages").get_by_text("Yes, we tuned the rule.").wait_for(
        timeout=10_000
    )
    user.screenshot("chat-acme-user")
    admin.screenshot("chat-admin")


def test_a_tenant_user_cannot_open_another_companys_detail_by_url(console: Any, api: Api) -> None:
    globex = api.get("globex.user", "/tenant/offenses/", limit=1)["items"][0]
    acme = api.get("acme.user", "/tenant/offenses/", limit=1)["items"][0]
    user = console("acme.user")
    page = user.open(f"/offenses/{acme['id']}")
    page.get_by_role("heading", name=f"Offense {acme['offense_id']}").wait_for()
    page = user.open(f"/offenses/{globex['id']}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Not found" in alert.inner_text()
    assert globex["description"].split("\n")[0] not in page.content()
    user.screenshot("detail-other-company-not-found")


def test_detail_pages_cross_reference_offense_incident_ticket(console: Any, api: Api) -> None:
    ticket = next(
        t for t in api.get("acme.user", "/tenant/itsm-tickets/", limit=100)["items"] if t["soar_incident_id"]
    )
    user = console("acme.user")
    page = user.open(f"/tickets/{ticket['id']}")
    page.get_by_test_id("xrefs").get_by_role("link", name=f"Incident {ticket['soar_incident_id']}").click()
    page.get_by_role("heading", name=f"Incident {ticket['soar_incident_id']}").wait_for()
    page.get_by_test_id("xrefs").get_by_role("link", name=re.compile(r"^Ticket ")).first.wait_for()
    user.screenshot("detail-incident")


CUSTOMER_PAGES = [
    "/dashboard",
    "/offenses",
    "/incidents",
    "/tickets",
    "/threat-alerts",
    "/event-logs",
    "/reports",
    "/chat",
    "/account",
    "/notifications",
    "/actions",
    "/ti-matches",
]
ADMIN_PAGES = [
    "/assets",
    "/manage/companies",
    "/manage/integrations",
    "/manage/mappings",
    "/manage/sla",
    "/manage/users",
    "/manage/directory-groups",
    "/manage/login-audit",
    "/manage/dead-letters",
    "/audit",
    "/notification-settings",
]


def test_every_page_passes_axe_and_is_captured(console: Any) -> None:
    found: dict[str, Any] = {}
    for user, pages, theme in (("acme.user", CUSTOMER_PAGES, "light"), ("admin", ADMIN_PAGES, "dark")):
        session = console(user, color_scheme=theme)
        for path in pages:
            page = session.open(path)
            page.locator(".state.loading").first.wait_for(state="detached", timeout=15_000)
            violations = axe_violations(page)
            if violations:
                found[f"{user} {path}"] = [(v["id"], v["help"], len(v["nodes"])) for v in violations]
            session.screenshot(f"{user}-{theme}-{path.strip('/').replace('/', '-')}")
    # A phone: 390 px wide, the menu folds away behind its button.
    phone = console("acme.user", viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.open("/dashboard")
    page.get_by_test_id("dashboard-ready").wait_for()
    assert not page.get_by_role("navigation", name="Main").is_visible()
    page.get_by_role("button", name="Menu").click()
    assert page.get_by_role("navigation", name="Main").is_visible()
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 390, f"the page scrolls sideways on a phone ({scroll_width}px)"
    phone.screenshot("acme-user-phone-dashboard")
    violations = axe_violations(page)
    if violations:
        found["phone /dashboard"] = [(v["id"], v["help"]) for v in violations]
    assert not found, json.dumps(found, indent=1)


def test_a_refused_access_token_is_refreshed_and_a_dead_session_says_so(console: Any) -> None:
    user = console("acme.user")
    page = user.open("/offenses")
    # The access token goes bad (as when it expires): the next call refreshes it and carries on.
    page.evaluate(
        """() => { const t = JSON.parse(sessionStorage.getItem('soc.tokens'));
                   t.access_token = 'expired.' + t.access_token;
                   sessionStorage.setItem('soc.tokens', JSON.stringify(t)); }"""
    )
    page = user.open("/tickets")
    page.get_by_test_id("list-total").wait_for()
    tokens = json.loads(page.evaluate("sessionStorage.getItem('soc.tokens')"))
    assert not tokens["access_token"].startswith("expired.")
    # Both tokens refused: the session has ended, and the sign-in page says why.
    page.evaluate(
        """() => sessionStorage.setItem('soc.tokens', JSON.stringify(
                   {access_token: 'expired', refresh_token: 'expired'})) """
    )
    page = user.open("/incidents")
    page.get_by_text("Your session has expired. Sign in again to continue.").wait_for()
    assert "/sign-in" in page.url
