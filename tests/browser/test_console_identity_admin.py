"""The console's identity and administration pages in a real Chromium: SSO at a real OpenID
Provider, MFA enrolment and sign-in, a read-only administrator's view, and the admin forms
(integrations, users, mappings, directory groups, SLA) with the API's refusals shown."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pyotp
import pytest

from conftest import Api, Console, axe_violations

pytestmark = pytest.mark.timeout(900)  # the first test to use the stack waits for it to start

SIGN_OUT = "Sign out"


def settled(page: Any) -> Any:
    page.locator(".state.loading").first.wait_for(state="detached", timeout=15_000)
    return page


def next_step_code(totp: pyotp.TOTP) -> str:
    """The next time step's code: the server accepts a step either side of its clock, and only a
    step later than the last one it accepted (so not the one just spent) — no waiting."""
    return totp.at(int(time.time()) + totp.interval)


def test_sso_signs_a_mapped_person_in_and_refuses_an_unmapped_one(console: Any, stack: Any) -> None:
    if not getattr(stack, "oidc_issuer", None):
        pytest.skip("no OpenID provider in this stack (Node.js missing)")
    person = console()
    page = person.page
    page.goto("/sign-in")
    page.get_by_role("button", name="Sign in with Corporate SSO").wait_for()
    assert not axe_violations(page), "the sign-in page with its SSO button"
    page.get_by_role("button", name="Sign in with Corporate SSO").click()
    # The identity provider's own sign-in page (another origin).
    page.locator("input[name=login]").fill("olivia")
    page.locator("input[name=password]").fill("olivia-pass")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name=SIGN_OUT).wait_for(timeout=30_000)
    assert page.url.startswith(stack.gateway)
    assert "Olivia Ortiz" in page.locator(".who").inner_text()
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Incidents").wait_for()
    assert nav.get_by_role("link", name="Companies").count() == 0  # a company's user, not an admin
    person.screenshot("sso-signed-in")

    unmapped = console()
    page = unmapped.page
    page.goto("/sign-in")
    page.get_by_role("button", name="Sign in with Corporate SSO").click()
    page.locator("input[name=login]").fill("uma")
    page.locator("input[name=password]").fill("uma-pass")
    page.get_by_role("button", name="Sign in", exact=True).click()
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=30_000)
    assert "not assigned to a company" in alert.inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", page.locator(".request-id").inner_text())
    assert not axe_violations(page), "the single sign-on page's refusal"
    # The state is single-use: the same redirect replayed is refused, not a second session.
    page.reload()
    page.get_by_role("alert").wait_for()
    assert "Start again" in page.get_by_role("alert").inner_text()
    unmapped.screenshot("sso-unmapped")


def test_a_read_only_admin_enrols_mfa_in_the_console_signs_in_with_it_and_sees_no_mutating_control(
    console: Any, api: Api
) -> None:
    username, password = f"auditor.{uuid.uuid4().hex[:6]}", "Console-Auditor-Mfa-42"
    api.send(
        "admin",
        "POST",
        "/admin/users/",
        {"username": username, "password": password, "kind": "admin", "role": "READ_ONLY_ADMIN"},
    )
    auditor = console((username, password))
    page = settled(auditor.open("/account"))
    page.get_by_test_id("mfa-state").filter(has_text="Off").wait_for()
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.get_by_role("img", name="QR code of your authenticator key").wait_for()
    totp = pyotp.TOTP(page.get_by_test_id("mfa-secret").inner_text())
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    page.get_by_text("Two-factor authentication is on.").wait_for()
    page.get_by_test_id("mfa-state").filter(has_text="On since").wait_for()
    auditor.screenshot("account-mfa-on")

    page.get_by_role("button", name=SIGN_OUT).click()
    page.get_by_text("You have signed out.").wait_for()
    page.get_by_label("User name or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    code = page.get_by_label("Authentication code")
    wrong = next(c for c in ("000000", "111111", "222222") if c not in (totp.now(), next_step_code(totp)))
    code.fill(wrong)  # a wrong code first: the reason shows
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("alert").wait_for()
    assert "not valid" in page.get_by_role("alert").inner_text()
    code.fill(next_step_code(totp))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("button", name=SIGN_OUT).wait_for(timeout=30_000)
    assert page.get_by_text("read-only").is_visible()

    for path, forbidden in (
        ("/manage/companies", ["Create company", "Inactivate", "Reactivate", "Edit"]),
        ("/manage/integrations", ["New integration", "Edit", "Test connection", "Sync now", "Delete"]),
        ("/manage/mappings", ["Edit", "Add QRadar domain mapping", "Delete"]),
        ("/manage/sla", ["Save SLA defaults", "Save company SLA", "Add integration SLA", "Remove"]),
        ("/manage/users", ["New administrator", "New company user", "Edit", "Delete"]),
        ("/manage/directory-groups", ["Add directory group", "Save directory groups"]),
        ("/manage/dead-letters", ["Replay"]),
    ):
        page = settled(auditor.open(path))
        page.locator("table, fieldset, .state.empty").first.wait_for()
        for name in forbidden:
            assert page.get_by_role("button", name=name).count() == 0, (path, name)
        assert page.locator("main input:enabled, main select:enabled, main textarea:enabled").count() == 0, (
            path
        )
    auditor.screenshot("read-only-admin-directory-groups")


def test_admin_forms_show_the_apis_refusals_and_save(console: Any, api: Api) -> None:
    acme = api.get("admin", "/admin/companies/", q="Acme Corp")["items"][0]
    qradar = next(i for i in api.get("admin", "/integration/")["items"] if i["subtype"] == "IBM_QRADAR")
    admin = console("admin")
    admin.open("/manage/integrations")
    admin.page.get_by_label("Company").select_option(acme["id"])

    # Integrations: a missing credential is refused beside its field; a wrong one fails the draft's
    # connection test with its category; the right one is created, then edited.
    page = settled(admin.open("/manage/integrations"))
    page.get_by_role("button", name="New integration").click()
    form = page.get_by_role("form", name="New integration")
    form.get_by_label("Product").select_option("IBM_QRADAR")
    name = f"Second QRadar {uuid.uuid4().hex[:4]}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Base URL").fill(qradar["base_url"])
    form.get_by_role("button", name="Create integration").click()
    field = form.get_by_label("Authorised service token (SEC header)")
    form.locator(".field-error").first.wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    assert "required" in form.locator(".field-error").first.inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", form.locator(".request-id").inner_text())
    field.fill("not-the-token")
    form.get_by_role("button", name="Test before saving").click()
    outcome = page.get_by_test_id("draft-test")
    outcome.wait_for(timeout=60_000)
    assert "failed [" in outcome.inner_text(), outcome.inner_text()
    field.fill("qradar-demo-token")
    form.get_by_role("button", name="Test before saving").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=draft-test]')?.textContent.includes('connected')",
        timeout=60_000,
    )
    form.get_by_role("button", name="Create integration").click()
    page.get_by_text(f"{name} created.").wait_for()
    row = page.get_by_role("row").filter(has_text=name)
    row.wait_for()
    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("form", name=f"Edit {name}")
    edit.get_by_label("Polling interval (seconds)").fill("5")
    edit.get_by_role("button", name="Save integration").click()
    edit.locator(".field-error").first.wait_for()  # below the minimum: the API says so at the field
    assert edit.get_by_label("Polling interval (seconds)").get_attribute("aria-invalid") == "true"
    edit.get_by_label("Polling interval (seconds)").fill("600")
    edit.get_by_role("button", name="Save integration").click()
    page.get_by_text(f"{name} saved.").wait_for()
    created = next(i for i in api.get("admin", "/integration/")["items"] if i["instance_name"] == name)
    assert created["polling_interval_seconds"] == 600
    admin.screenshot("admin-integrations-form")

    # Users: a weak password is refused at the password; then the user is created and edited.
    page = settled(admin.open("/manage/users"))
    page.get_by_role("button", name="New company user").click()
    form = page.get_by_role("form", name=re.compile("^New user of"))
    username = f"acme.analyst.{uuid.uuid4().hex[:4]}"
    form.get_by_label("User name").fill(username)
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Create user").click()
    form.locator(".field-error").first.wait_for()
    assert form.get_by_label("Password").get_attribute("aria-invalid") == "true"
    form.get_by_label("Password").fill("Acme-Analyst-Demo-42")
    form.get_by_role("checkbox", name="Reports").check()
    form.get_by_role("button", name="Create user").click()
    page.get_by_text(f"{username} created.").wait_for()
    page.get_by_role("button", name=f"Edit {username}").click()
    edit = page.get_by_role("form", name=f"Edit {username}")
    edit.get_by_label("Role").select_option("TENANT_ADMIN")
    edit.get_by_role("button", name="Save user").click()
    page.get_by_text(f"{username} saved.").wait_for()
    member = next(
        m
        for m in api.get("admin", f"/admin/companies/{acme['id']}/users/")["items"]
        if m["username"] == username
    )
    assert member["tenant_role"] == "TENANT_ADMIN" and "REPORTS" in member["permissions"]
    admin.screenshot("admin-users-form")

    # Mappings: the contracted volume of Acme's QRadar domain.
    page = settled(admin.open("/manage/mappings"))
    section = page.get_by_role("region", name="QRadar domains")
    section.get_by_role("row").filter(has_text="Acme Corp").get_by_role("button", name="Edit").click()
    edit = page.get_by_role("form", name="Edit mapping")
    edit.get_by_label("Contracted volume").fill("2750")
    edit.get_by_role("button", name="Save mapping").click()
    page.get_by_text("Mapping saved.").wait_for()
    mapping = next(
        m for m in api.get("admin", "/admin/mappings/qradar/")["items"] if m["company_id"] == acme["id"]
    )
    assert float(mapping["contracted_volume"]) == 2750

    # Directory groups: one more group for Acme, kept beside the demo's.
    page = settled(admin.open("/manage/directory-groups"))
    before = api.get("admin", f"/admin/companies/{acme['id']}/directory-groups/")["items"]
    page.get_by_role("button", name="Add directory group").click()
    group = page.get_by_role("group", name=f"Directory group {len(before) + 1}")
    auditors = f"acme-soc-auditors-{uuid.uuid4().hex[:4]}"
    group.get_by_label("Group (name or DN)").fill(auditors)
    group.get_by_role("checkbox", name="Reports").check()
    page.get_by_role("button", name="Save directory groups").click()
    page.get_by_text("Directory groups saved.").wait_for()
    after = api.get("admin", f"/admin/companies/{acme['id']}/directory-groups/")["items"]
    assert len(after) == len(before) + 1
    added = next(g for g in after if g["ldap_group"] == auditors)
    assert set(added["permissions"]) == {"DASHBOARD", "REPORTS"}
    admin.screenshot("admin-directory-groups")

    # SLA: Acme's own P1 target; a value out of range is refused at the cell.
    page = settled(admin.open("/manage/sla"))
    page.get_by_role("button", name="Save company SLA").wait_for()
    page.get_by_label("This company has its own SLA").check()
    cell = page.get_by_label("Acme Corp P1 Acknowledge (minutes)")
    cell.fill("0")
    page.get_by_role("button", name="Save company SLA").click()
    page.get_by_role("alert").wait_for()
    cell.fill("12")
    page.get_by_role("button", name="Save company SLA").click()
    page.get_by_text("Acme Corp's SLA saved.").wait_for()
    sla = api.get("admin", f"/admin/companies/{acme['id']}/sla/")
    assert sla["is_default_sla"] is False
    assert sla["effective"]["P1"]["tta_minutes"] == 12 and sla["effective"]["P1"]["source"] == "company"
    admin.screenshot("admin-sla")
    # Back to the defaults: the demo data's other tests count SLA compliance with them.
    api.send("admin", "PUT", f"/admin/companies/{acme['id']}/sla/", {"is_default_sla": True, "overrides": []})


def test_a_role_that_requires_mfa_enrols_at_sign_in(browser: Any, stack: Any, api: Api) -> None:
    # Auth with the policy "admins" (a second auth and gateway over the same services): an
    # administrator without MFA is made to enrol during the sign-in, then signs in with the code;
    # a tenant user is not asked.
    if getattr(stack, "start_policy_gateway", None) is None:
        pytest.skip("a running development stack without its saved state (restart console_stack.py)")
    gateway = stack.start_policy_gateway("admins")
    username, password = f"analyst.{uuid.uuid4().hex[:6]}", "Console-Analyst-Mfa-42"
    api.send(
        "admin",
        "POST",
        "/admin/users/",
        {"username": username, "password": password, "kind": "admin", "role": "ADMIN"},
    )
    person = Console(browser, gateway)
    try:
        page = person.page
        page.goto("/sign-in")
        page.get_by_label("User name or e-mail").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_text("Your account must use two-factor authentication.").wait_for(timeout=30_000)
        page.get_by_role("img", name="QR code of your authenticator key").wait_for()
        assert page.locator("ul.codes li").count() > 0  # the recovery codes, folded until opened
        person.screenshot("mfa-enrol-at-sign-in")
        violations = axe_violations(page)
        assert not violations, [(v["id"], v["help"]) for v in violations]
        totp = pyotp.TOTP(page.get_by_test_id("mfa-secret").inner_text())
        page.get_by_label("Authentication code").fill("000000" if totp.now() != "000000" else "111111")
        page.get_by_role("button", name="Verify").click()
        page.get_by_role("alert").wait_for()  # a wrong first code: refused, still enrolling
        page.get_by_label("Authentication code").fill(totp.now())
        page.get_by_role("button", name="Verify").click()
        page.get_by_role("button", name=SIGN_OUT).wait_for(timeout=30_000)
        with httpx.Client(base_url=gateway, timeout=30, trust_env=False) as http:
            first = http.post("/auth/login/", json={"username": username, "password": password}).json()
            assert first.get("mfa_required") and first.get("purpose") == "verify", first
            # The tenant user's role does not require MFA under this policy: no challenge.
            tenant = http.post(
                "/auth/login/", json={"username": "acme.user", "password": "Acme-User-Demo-42"}
            ).json()
            assert tenant.get("access_token") and not tenant.get("mfa_required"), tenant

        page.get_by_role("button", name=SIGN_OUT).click()
        page.get_by_text("You have signed out.").wait_for()
        page.get_by_label("User name or e-mail").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_text("Your account uses two-factor authentication.").wait_for()
        page.get_by_label("Authentication code").fill(next_step_code(totp))
        page.get_by_role("button", name="Verify").click()
        page.get_by_role("button", name=SIGN_OUT).wait_for(timeout=30_000)
    finally:
        person.close()
    assert not person.errors, person.errors
