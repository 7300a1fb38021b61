"""The console's actions on the vendors, notifications, audit trail and threat-intel matches, in a real
headless Chromium against the whole suite with the demo data."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from conftest import Api, axe_violations

pytestmark = pytest.mark.timeout(900)  # the first test to use the stack waits for it to start


def settled(page: Any) -> Any:
    page.locator(".state.loading").first.wait_for(state="detached", timeout=30_000)
    return page


def open_offense(api: Api, user: str) -> dict[str, Any]:
    """An open offense of the user's company that no test escalated yet."""
    offenses = api.get(user, "/tenant/offenses/", status="OPEN", limit=50, sort="-offense_id")["items"]
    done = {
        a["target_id"] for a in api.get(user, "/tenant/actions/", target_type="offense", limit=200)["items"]
    }
    return next(o for o in offenses if str(o["id"]) not in done)


def test_an_escalation_from_the_offense_page_shows_xsoars_answer_and_the_audit_lists_it(
    console: Any, api: Api
) -> None:
    offense = open_offense(api, "acme.admin")
    analyst = console("acme.admin")
    page = settled(analyst.open(f"/offenses/{offense['id']}"))
    form = page.get_by_role("form", name="Escalate to an XSOAR incident")
    name = f"Escalated from the console {uuid.uuid4().hex[:8]}"
    form.get_by_label("Incident name").fill(name)
    form.get_by_label("Severity").select_option("high")
    form.get_by_role("button", name="Escalate").click()
    page.get_by_role("status").filter(has_text="sent to the vendor").wait_for()

    # The outcome arrives on the socket: the log's entry turns from waiting to XSOAR's incident id.
    entry = page.get_by_test_id("action-log").locator("li").first
    entry.and_(page.locator("li[data-status='succeeded']")).wait_for(timeout=90_000)
    outcome = entry.locator(".action-outcome").inner_text()
    actions = api.get("acme.admin", "/tenant/actions/", target_type="offense", target_id=str(offense["id"]))
    action = actions["items"][0]
    assert action["status"] == "succeeded", action
    assert action["params"]["name"] == name
    assert action["result"]["incident_id"], action
    assert f"XSOAR incident {action['result']['incident_id']} opened" in outcome
    analyst.screenshot("offense-escalated")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])

    # The audit trail lists the request (who asked, on which offense) and XSOAR's answer.
    page = settled(analyst.open("/audit?action=vendor_action.requested"))
    table = page.get_by_test_id("audit")
    row = table.locator("tr", has_text=action["id"]).first
    row.wait_for()
    assert "acme.admin" in row.inner_text() and f"on offense {offense['id']}" in row.inner_text()
    assert page.get_by_test_id("list-total").inner_text() == str(
        api.get("acme.admin", "/admin/audit/", action="vendor_action.requested")["total"]
    )
    page = settled(analyst.open(f"/audit?target_id={action['id']}"))
    actions_seen = sorted(page.get_by_test_id("audit").locator("tbody td:nth-child(3)").all_inner_texts())
    assert actions_seen == ["vendor_action.requested", "vendor_action.succeeded"], actions_seen
    analyst.screenshot("audit-vendor-action")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])

    # The action list page has it too, with the outcome.
    page = settled(analyst.open("/actions"))
    assert (
        page.get_by_role("row")
        .filter(has_text=f"offense {offense['id']}")
        .first.inner_text()
        .count(action["result"]["incident_id"])
    )


def test_an_actions_refusal_shows_the_apis_message_and_request_id(console: Any, api: Api) -> None:
    # A note the API refuses: the page shows why, with the request id to quote, beside the field.
    ticket = api.get("acme.user", "/tenant/itsm-tickets/", limit=1)["items"][0]
    user = console("acme.user")
    page = settled(user.open(f"/tickets/{ticket['id']}"))
    form = page.get_by_role("form", name="Add a note")
    # Over the API's limit (the field's own maxlength taken off, as an old page might not have it).
    form.get_by_label("Note").evaluate("el => { el.removeAttribute('maxlength'); }")
    form.get_by_label("Note").fill("x" * 20001)
    form.get_by_role("button", name="Add note").click()
    alert = form.get_by_role("alert")
    alert.wait_for()
    assert re.search(r"request id [0-9a-f]{16,}", alert.inner_text()), alert.inner_text()
    assert form.locator(".field-error").count() == 1  # the reason beside the note field


def test_controls_follow_permissions(console: Any, api: Api) -> None:
    offense = api.get("acme.user", "/tenant/offenses/", limit=1)["items"][0]
    incident = api.get("acme.user", "/tenant/soar-incidents/", limit=1)["items"][0]
    ticket = api.get("acme.user", "/tenant/itsm-tickets/", limit=1)["items"][0]
    # A tenant user (not an administrator): no escalation or incident change, but notes on tickets.
    user = console("acme.user")
    page = settled(user.open(f"/offenses/{offense['id']}"))
    page.get_by_role("heading", name="Actions on the vendor").wait_for()
    assert page.get_by_role("button", name="Escalate").count() == 0
    page = settled(user.open(f"/incidents/{incident['id']}"))
    page.get_by_role("heading", name="Actions on the vendor").wait_for()
    assert page.get_by_role("button", name="Update incident").count() == 0
    assert page.get_by_role("button", name="Choose a playbook…").count() == 0
    page = settled(user.open(f"/tickets/{ticket['id']}"))
    assert page.get_by_role("button", name="Add note").count() == 1
    names = [
        t.strip() for t in page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    ]
    assert "Audit trail" not in names and "Notification rules" not in names
    # A read-only administrator: every record readable, no control that changes anything.
    username, password = f"viewer.{uuid.uuid4().hex[:6]}", "Console-Viewer-Ro-42"
    api.send(
        "admin",
        "POST",
        "/admin/users/",
        {"username": username, "password": password, "kind": "admin", "role": "READ_ONLY_ADMIN"},
    )
    viewer = console((username, password))
    for path, forbidden in (
        (f"/offenses/{offense['id']}", ["Escalate"]),
        (f"/incidents/{incident['id']}", ["Update incident", "Choose a playbook…"]),
        (f"/tickets/{ticket['id']}", ["Add note", "Change status"]),
        ("/notification-settings", ["New rule", "New channel", "Disable", "Enable", "Delete", "Resume"]),
        ("/notifications", []),
        ("/audit", []),
    ):
        page = settled(viewer.open(path))
        page.locator("h1").first.wait_for()
        for name in forbidden:
            assert page.get_by_role("button", name=name).count() == 0, (path, name)
        assert page.locator("main textarea").count() == 0, path


def test_the_notifications_list_equals_the_api_and_marks_read(console: Any, api: Api) -> None:
    listed = api.get("acme.admin", "/tenant/notifications/", limit=25)
    assert listed["total"] > 0, "the demo raises notifications (SLA breaches)"
    admin = console("acme.admin")
    page = settled(admin.open("/notifications"))
    assert page.get_by_test_id("notifications-total").inner_text() == str(listed["total"])
    assert page.get_by_test_id("notifications-unread-count").inner_text() == str(listed["unread"])
    items = page.get_by_test_id("notifications").locator("li")
    assert items.count() == len(listed["items"])
    assert listed["items"][0]["title"] in items.first.inner_text()
    if listed["unread"]:
        badge = page.get_by_test_id("notifications-unread")
        assert badge.inner_text() == str(listed["unread"])
        first_unread = next(n for n in listed["items"] if not n["read"])
        item = items.filter(has_text=first_unread["title"]).first
        item.get_by_role("button", name=re.compile("^Mark read")).click()
        page.get_by_test_id("notifications-unread-count").filter(
            has_text=str(listed["unread"] - 1)
        ).wait_for()
        assert api.get("acme.admin", "/tenant/notifications/", limit=1)["unread"] == listed["unread"] - 1
    admin.screenshot("notifications")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])


def test_a_tenant_admin_manages_notification_rules_and_the_audit_shows_it(console: Any, api: Api) -> None:
    admin = console("acme.admin")
    page = settled(admin.open("/notification-settings"))
    page.get_by_test_id("rules").wait_for()
    page.get_by_role("button", name="New rule").click()
    form = page.get_by_role("form", name="New rule")
    name = f"Critical offenses {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name").fill(name)
    form.get_by_label("When").select_option("offense_created")
    form.get_by_label("Offense severity at least (0–10)").fill("11")
    form.get_by_role("button", name="Create rule").click()
    form.locator(".field-error").first.wait_for()  # the API's reason beside the field
    assert form.get_by_role("alert").count() == 1
    form.get_by_label("Offense severity at least (0–10)").fill("8")
    form.get_by_role("button", name="Create rule").click()
    page.get_by_role("status").filter(has_text=f"Rule {name} created.").wait_for()
    rule = next(r for r in api.get("acme.admin", "/admin/notifications/rules/")["items"] if r["name"] == name)
    assert rule["trigger"] == "offense_created" and rule["min_offense_severity"] == 8 and rule["channel_ids"]
    admin.screenshot("notification-rules")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])

    row = page.get_by_test_id("rules").locator("tr", has_text=name)
    row.get_by_role("button", name=re.compile("^Disable")).click()
    page.get_by_role("status").filter(has_text=f"Rule {name} disabled.").wait_for()
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes, delete").click()
    page.get_by_role("status").filter(has_text=f"Rule {name} deleted.").wait_for()
    assert all(r["name"] != name for r in api.get("acme.admin", "/admin/notifications/rules/")["items"])

    page = settled(admin.open(f"/audit?target_id={rule['id']}"))
    table = page.get_by_test_id("audit")
    table.wait_for()
    actions = sorted(t.strip() for t in table.locator("tbody td:nth-child(3)").all_inner_texts())
    assert actions == ["notify_rule.created", "notify_rule.deleted", "notify_rule.updated"], actions


def test_threat_intel_matches_filter_lists_and_show_on_the_record(console: Any, api: Api) -> None:
    matched = api.get("acme.user", "/tenant/offenses/", has_ti_match="true", limit=1)
    assert matched["total"] > 0, "the demo's feed names a few offenses"
    user = console("acme.user")
    page = settled(user.open("/offenses"))
    everything = int(page.get_by_test_id("list-total").inner_text())
    page.get_by_label("Named by threat intel").check()
    page.wait_for_url(re.compile(r"has_ti_match=true"))
    page.get_by_test_id("list-total").filter(has_text=re.compile(rf"^{matched['total']}$")).wait_for()
    assert matched["total"] < everything
    page.get_by_role("table").get_by_role("link").first.click()
    settled(page)
    offense_pk = page.url.rstrip("/").rsplit("/", 1)[1]
    matches = api.get("acme.user", f"/tenant/offenses/{offense_pk}/ti-matches/")
    table = page.get_by_test_id("ti-matches")
    table.wait_for()
    assert table.locator("tbody tr").count() == matches["total"] > 0
    assert matches["items"][0]["indicator"] in table.inner_text()

    page = settled(user.open("/ti-matches"))
    assert page.get_by_test_id("list-total").inner_text() == str(
        api.get("acme.user", "/tenant/ti-matches/", limit=1)["total"]
    )
    user.screenshot("ti-matches")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])


def test_the_new_pages_work_on_a_phone(console: Any, api: Api) -> None:
    offense = api.get("acme.admin", "/tenant/offenses/", limit=1)["items"][0]
    phone = console("acme.admin", viewport={"width": 390, "height": 844}, is_mobile=True)
    found: dict[str, Any] = {}
    for path in (
        f"/offenses/{offense['id']}",
        "/notifications",
        "/notification-settings",
        "/audit",
        "/actions",
        "/ti-matches",
    ):
        page = settled(phone.open(path))
        page.locator("h1").first.wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            found[path] = f"scrolls sideways ({width}px)"
        violations = axe_violations(page)
        if violations:
            found[f"axe {path}"] = [(v["id"], v["help"]) for v in violations]
        phone.screenshot(f"phone{path.replace('/', '-')}")
    assert not found, json.dumps(found, indent=1)


def test_admin_edits_a_company_deletes_with_confirmation_and_manages_sessions_mfa_and_integration_sla(
    console: Any, api: Api
) -> None:
    import pyotp

    acme = api.get("admin", "/admin/companies/", q="Acme Corp")["items"][0]
    admin = console("admin")
    admin.open("/manage/integrations")
    admin.page.locator(".company-switcher select").select_option(acme["id"])

    # Company edit: the industry changes (and back).
    page = settled(admin.open("/manage/companies"))
    page.get_by_role("button", name=f"Edit {acme['name']}").click()
    form = page.get_by_role("form", name=f"Edit {acme['name']}")
    industry = f"Finance {uuid.uuid4().hex[:4]}"
    form.get_by_label("Industry").fill(industry)
    form.get_by_role("button", name="Save company").click()
    page.get_by_text(f"{acme['name']} saved.").wait_for()
    assert api.get("admin", f"/admin/companies/{acme['id']}/")["industry"] == industry
    api.send("admin", "PUT", f"/admin/companies/{acme['id']}/", {"industry": acme.get("industry")})

    # A company user with a session and MFA: the admin sees the session, ends it, resets MFA, deletes.
    username, password = f"acme.temp.{uuid.uuid4().hex[:4]}", "Acme-Temp-Demo-4242"
    member = api.send(
        "admin",
        "POST",
        f"/admin/companies/{acme['id']}/users/",
        {
            "username": username,
            "password": password,
            "tenant_role": "TENANT_USER",
            "permissions": ["DASHBOARD"],
        },
    )
    login = api.http.post("/auth/login/", json={"username": username, "password": password}).json()
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    secret = api.http.post("/auth/mfa/enrol/", headers=bearer).json()["secret"]
    confirmed = api.http.post("/auth/mfa/confirm/", headers=bearer, json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    page = settled(admin.open("/manage/users"))
    page.get_by_role("button", name=f"Sessions and MFA of {username}").click()
    sessions = page.get_by_test_id("user-sessions")
    sessions.wait_for()
    assert sessions.locator("tbody tr").count() >= 1
    page.get_by_role("button", name="End all sessions").click()
    page.get_by_role("button", name="Yes, end them").click()
    page.get_by_text(f"{username}'s sessions ended.").wait_for()
    assert api.get("admin", f"/admin/users/{member['user_id']}/sessions/")["total"] == 0
    page.get_by_role("button", name="Reset MFA").click()
    page.get_by_role("button", name="Yes, reset MFA").click()
    page.get_by_text(f"{username}'s MFA was reset.").wait_for()
    again = api.http.post("/auth/login/", json={"username": username, "password": password}).json()
    assert not again.get("mfa_required") and again.get("access_token"), again
    admin.screenshot("admin-user-sessions-mfa")
    row = page.get_by_role("row").filter(has_text=username)
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Cancel").click()  # asked first: nothing deleted yet
    assert any(
        m["username"] == username for m in api.get("admin", f"/admin/companies/{acme['id']}/users/")["items"]
    )
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes, delete").click()
    page.get_by_text(f"{username} deleted.").wait_for()
    # The account is deleted (it cannot sign in); the membership stays, inactive, for the record.
    kept = next(
        m
        for m in api.get("admin", f"/admin/companies/{acme['id']}/users/")["items"]
        if m["username"] == username
    )
    assert kept["active"] is False
    assert api.http.post("/auth/login/", json={"username": username, "password": password}).status_code in (
        401,
        403,
    )

    # A mapping deleted with confirmation (the demo XSOAR's unmapped account, to a company of its own).
    spare = api.send(
        "admin", "POST", "/admin/tenants/", {"company": {"name": f"Spare {uuid.uuid4().hex[:6]}"}}
    )
    spare_id = spare["company"]["id"] if "company" in spare else spare["id"]
    xsoar = next(i for i in api.get("admin", "/integration/")["items"] if i["subtype"] == "CORTEX_XSOAR")
    api.send(
        "admin",
        "POST",
        "/admin/mappings/soar/",
        {"company_id": spare_id, "integration_id": xsoar["id"], "account": "initech"},
    )
    page = settled(admin.open("/manage/mappings"))
    row = page.get_by_role("row").filter(has_text="initech")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes, delete").click()
    page.get_by_text("Mapping deleted.").wait_for()
    assert all(
        m["account"] != "initech" for m in api.get("admin", "/admin/mappings/soar/", limit=500)["items"]
    )
    api.send("admin", "POST", f"/admin/tenants/{spare_id}/inactivate/")

    # An integration deleted with confirmation.
    types = api.get("admin", "/integration/types/")
    qradar_type = next(
        s
        for t in types["items"]
        for s in t.get("subtypes", [t])
        if s.get("subtype", s.get("value")) == "IBM_QRADAR"
    )
    kind = qradar_type["credential_kinds"][0]
    qradar = next(i for i in api.get("admin", "/integration/")["items"] if i["subtype"] == "IBM_QRADAR")
    name = f"Spare QRadar {uuid.uuid4().hex[:4]}"
    api.send(
        "admin",
        "POST",
        "/integration/",
        {
            "subtype": "IBM_QRADAR",
            "instance_name": name,
            "base_url": qradar["base_url"],
            "credential_kind": kind["kind"],
            "credentials": {kind["fields"][0]["name"]: "qradar-demo-token"},
        },
    )
    page = settled(admin.open("/manage/integrations"))
    row = page.get_by_role("row").filter(has_text=name)
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes, delete").click()
    page.get_by_text(f"{name} deleted.").wait_for()
    assert all(i["instance_name"] != name for i in api.get("admin", "/integration/")["items"])

    # An SLA for one XSOAR account: added, in force for that account, removed.
    page = settled(admin.open("/manage/sla"))
    page.get_by_role("button", name="Add integration SLA").click()
    form = page.get_by_role("form", name="New integration SLA")
    form.get_by_label("XSOAR integration").select_option(xsoar["id"])
    form.get_by_label("Account").fill("acme")
    form.get_by_label("Priority").select_option("P1")
    for label, minutes in (("Acknowledge", "7"), ("Notify", "17"), ("Resolve", "27")):
        form.get_by_label(f"{label} (minutes)").fill(minutes)
    form.get_by_role("button", name="Save integration SLA").click()
    page.get_by_text("Integration SLA saved.").wait_for()
    sla = api.get("admin", f"/admin/companies/{acme['id']}/sla/")
    added = [o for o in sla["overrides"] if o["account"] == "acme" and o["level"] == "P1"]
    assert [(o["tta_minutes"], o["ttn_minutes"], o["ttdn_minutes"]) for o in added] == [(7, 17, 27)]
    admin.screenshot("admin-sla-integration")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])
    row = page.get_by_test_id("sla-scoped").locator("tr", has_text="acme")
    row.get_by_role("button", name="Remove").click()
    row.get_by_role("button", name="Yes, remove").click()
    page.get_by_text("Integration SLA removed.").wait_for()
    sla = api.get("admin", f"/admin/companies/{acme['id']}/sla/")
    assert not [o for o in sla["overrides"] if o["account"] == "acme" and o["level"] == "P1"]


def test_incident_update_playbook_and_ticket_note_reach_the_vendor(console: Any, api: Api) -> None:
    incident = api.get("acme.admin", "/tenant/soar-incidents/", status="active", limit=1)["items"][0]
    analyst = console("acme.admin")
    page = settled(analyst.open(f"/incidents/{incident['id']}"))
    owner = f"analyst.{uuid.uuid4().hex[:4]}"
    form = page.get_by_role("form", name="Update the XSOAR incident")
    form.get_by_label("Owner").fill(owner)
    form.get_by_role("button", name="Update incident").click()
    log = page.get_by_test_id("action-log")
    log.locator("li[data-status='succeeded']", has_text="Update the XSOAR incident").first.wait_for(
        timeout=90_000
    )
    page.get_by_role("button", name="Choose a playbook…").click()
    form = page.get_by_role("form", name="Run a playbook")
    playbook = form.get_by_label("Playbook").locator("option").first.get_attribute("value")
    form.get_by_role("button", name="Run playbook").click()
    log.locator("li[data-status='succeeded']", has_text=f"Playbook {playbook} started").first.wait_for(
        timeout=90_000
    )
    done = api.get("acme.admin", "/tenant/actions/", target_type="incident", target_id=str(incident["id"]))[
        "items"
    ]
    assert {a["action"] for a in done if a["status"] == "succeeded"} >= {
        "xsoar.incident.update",
        "xsoar.playbook.run",
    }
    update = next(a for a in done if a["action"] == "xsoar.incident.update")
    assert update["result"]["owner"] == owner, update
    analyst.screenshot("incident-actions")

    ticket = api.get("acme.user", "/tenant/itsm-tickets/", limit=1)["items"][0]
    user = console("acme.user")
    page = settled(user.open(f"/tickets/{ticket['id']}"))
    form = page.get_by_role("form", name="Add a note")
    form.get_by_label("Note").fill("The customer confirmed the change window.")
    form.get_by_role("button", name="Add note").click()
    page.get_by_test_id("action-log").locator("li[data-status='succeeded']", has_text="Note").first.wait_for(
        timeout=90_000
    )
    note = api.get("acme.user", "/tenant/actions/", target_type="ticket", target_id=str(ticket["id"]))[
        "items"
    ][0]
    assert (
        note["action"] == "sdp.ticket.note" and note["status"] == "succeeded" and note["result"]["note_id"]
    ), note


def test_a_person_ends_another_session_and_then_all_of_them(console: Any, api: Api) -> None:
    acme = api.get("admin", "/admin/companies/", q="Acme Corp")["items"][0]
    username, password = f"acme.roamer.{uuid.uuid4().hex[:4]}", "Acme-Roamer-Demo-4242"
    member = api.send(
        "admin",
        "POST",
        f"/admin/companies/{acme['id']}/users/",
        {
            "username": username,
            "password": password,
            "tenant_role": "TENANT_USER",
            "permissions": ["DASHBOARD"],
        },
    )
    elsewhere = api.http.post("/auth/login/", json={"username": username, "password": password})
    assert elsewhere.status_code == 200
    person = console((username, password))
    page = settled(person.open("/account"))
    table = page.get_by_test_id("my-sessions")
    table.wait_for()
    assert table.locator("tbody tr").count() == 2
    assert table.locator("tbody tr", has_text="this browser").count() == 1
    table.locator("tbody tr").filter(has_not_text="this browser").get_by_role(
        "button", name=re.compile("^End session")
    ).click()
    page.get_by_text("That session has ended.").wait_for()
    assert api.get("admin", f"/admin/users/{member['user_id']}/sessions/")["total"] == 1
    refused = api.http.post("/auth/token/refresh/", json={"refresh_token": elsewhere.json()["refresh_token"]})
    assert refused.status_code == 401, refused.text
    person.screenshot("account-sessions")
    violations = axe_violations(page)
    assert not violations, json.dumps([(v["id"], v["help"]) for v in violations])
    page.get_by_role("button", name="End every session").click()
    page.get_by_text("You have signed out.").wait_for()
    assert api.get("admin", f"/admin/users/{member['user_id']}/sessions/")["total"] == 0
