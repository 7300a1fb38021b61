// Notification rules and channels: a company's (its tenant administrators and the MSSP's admins)
// or, for admins, the MSSP staff's own. Read-only accounts see them without any control.
import { useState } from "react";
import { getJson, sendJson } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { ConfirmButton } from "../../components/Confirm";
import { formatDate } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { asError, compact, EntityForm, type FieldSpec, type Values } from "../admin/forms";
import { TRIGGER_LABELS } from "./Notifications";

type Rule = components["schemas"]["Rule"];
type Channel = components["schemas"]["Channel"];
type ApiErrorT = ReturnType<typeof asError>;

const KIND_LABELS: Record<string, string> = { in_app: "In the portal", email: "E-mail", webhook: "Webhook", slack: "Slack", teams: "Microsoft Teams" };
const SEVERITIES = ["unknown", "informational", "low", "medium", "high", "critical"];

function ruleFields(values: Values, channels: Channel[]): FieldSpec[] {
  const trigger = String(values.trigger ?? "");
  return [
    { name: "name", label: "Name", required: true, maxLength: 120 },
    { name: "trigger", label: "When", type: "select", required: true, options: Object.entries(TRIGGER_LABELS).map(([value, label]) => ({ value, label })) },
    ...(trigger === "offense_created" ? ([{ name: "min_offense_severity", label: "Offense severity at least (0–10)", type: "number", min: 0, max: 10 }] satisfies FieldSpec[]) : []),
    ...(trigger === "incident_created" ? ([{ name: "min_incident_severity", label: "Incident severity at least", type: "select", options: SEVERITIES.map((s) => ({ value: s, label: s })) }] satisfies FieldSpec[]) : []),
    ...(trigger === "sla_due_soon" ? ([{ name: "lead_minutes", label: "Minutes before the deadline", type: "number", min: 1, max: 10080 }] satisfies FieldSpec[]) : []),
    ...(trigger === "integration_error" || trigger === "integration_silent" ? ([{ name: "polls", label: "Polls in a row", type: "number", min: 1, max: 1000 }] satisfies FieldSpec[]) : []),
    { name: "channel_ids", label: "Send to", type: "checks", options: channels.map((c) => ({ value: c.id, label: `${c.name} (${KIND_LABELS[c.kind] ?? c.kind})` })) },
    { name: "enabled", label: "Enabled", type: "checkbox" },
  ];
}

function channelFields(values: Values): FieldSpec[] {
  const kind = String(values.kind ?? "");
  return [
    { name: "name", label: "Name", required: true, maxLength: 120 },
    { name: "kind", label: "Kind", type: "select", required: true, options: Object.entries(KIND_LABELS).map(([value, label]) => ({ value, label })) },
    ...(kind === "email"
      ? ([
          { name: "recipients", label: "Recipients", required: true, hint: "addresses separated by commas" },
          { name: "sender", label: "Sender", type: "email" },
        ] satisfies FieldSpec[])
      : []),
    ...(kind === "webhook" || kind === "slack" || kind === "teams" ? ([{ name: "url", label: kind === "webhook" ? "URL" : "Incoming webhook URL", type: "url", required: true }] satisfies FieldSpec[]) : []),
    ...(kind === "webhook" ? ([{ name: "secret", label: "Signing secret", type: "password", hint: "the receiver checks X-SOC-Signature with it" }] satisfies FieldSpec[]) : []),
    { name: "rate_per_minute", label: "At most per minute", type: "number", min: 1, max: 6000 },
    { name: "enabled", label: "Enabled", type: "checkbox" },
  ];
}

export default function NotificationSettings() {
  const session = useSession();
  const { scope, companies, companyId } = useCompany();
  // Admins: the selected company's, or (company left out) the MSSP staff's own.
  const [staff, setStaff] = useState(false);
  const owner = session.isAdmin ? (staff ? {} : scope) : {};
  const ownerKey = session.isAdmin ? (staff ? "staff" : scope.company_id) : "own";
  const [version, setVersion] = useState(0);
  const channels = useAsync(() => getJson<{ items: Channel[] }>("/admin/notifications/channels/", { ...owner, limit: 200 }), [ownerKey, version]);
  const rules = useAsync(() => getJson<{ items: Rule[] }>("/admin/notifications/rules/", { ...owner, limit: 200 }), [ownerKey, version]);
  const [form, setForm] = useState<null | "rule" | "channel">(null);
  const [error, setError] = useState<ApiErrorT | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const canWrite = !session.readOnly;
  const ownerBody = session.isAdmin && !staff ? { company_id: scope.company_id ?? null } : {};
  // Staff rules and channels are visible as company_id null in the admin's unfiltered list.
  const visibleRules = (rules.data?.items ?? []).filter((r) => !session.isAdmin || (staff ? r.company_id === null : r.company_id === scope.company_id));
  const visibleChannels = (channels.data?.items ?? []).filter((c) => !session.isAdmin || (staff ? c.company_id === null : c.company_id === scope.company_id));
  const act = async (work: () => Promise<unknown>, text: string) => {
    setError(null);
    setMessage(null);
    try {
      await work();
      setMessage(text);
      setVersion((n) => n + 1);
    } catch (exc) {
      setError(asError(exc));
    }
  };
  const channelName = (id: string) => visibleChannels.find((c) => c.id === id)?.name ?? id.slice(0, 8);
  const companyName = companies.find((c) => c.id === companyId)?.name ?? "the selected company";

  return (
    <>
      <PageHeader title="Notification rules">
        {canWrite ? (
          <>
            <button type="button" onClick={() => setForm("rule")}>
              New rule
            </button>
            <button type="button" onClick={() => setForm("channel")}>
              New channel
            </button>
          </>
        ) : null}
      </PageHeader>
      {session.isAdmin ? (
        <form className="filters" aria-label="Whose rules" onSubmit={(e) => e.preventDefault()}>
          <label>
            Whose
            <select value={staff ? "staff" : "company"} onChange={(e) => setStaff(e.target.value === "staff")}>
              <option value="company">{companyName}'s</option>
              <option value="staff">The SOC staff's (every company)</option>
            </select>
          </label>
        </form>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
      {message ? (
        <p className="notice" role="status">
          {message}
        </p>
      ) : null}
      {form === "rule" && canWrite ? (
        <EntityForm
          title="New rule"
          submitLabel="Create rule"
          initial={{ name: "", trigger: "sla_breached", enabled: true, channel_ids: visibleChannels.filter((c) => c.kind === "in_app").map((c) => c.id) }}
          fields={(v) => ruleFields(v, visibleChannels)}
          onCancel={() => setForm(null)}
          onSubmit={async (v) => {
            await sendJson("POST", "/admin/notifications/rules/", { ...compact(v), ...ownerBody });
            setForm(null);
            setMessage(`Rule ${String(v.name)} created.`);
            setVersion((n) => n + 1);
          }}
        />
      ) : null}
      {form === "channel" && canWrite ? (
        <EntityForm
          title="New channel"
          submitLabel="Create channel"
          initial={{ name: "", kind: "webhook", enabled: true, rate_per_minute: 30 }}
          fields={channelFields}
          onCancel={() => setForm(null)}
          onSubmit={async (v) => {
            const body: Values = { ...compact(v), ...ownerBody };
            if (typeof body.recipients === "string") body.recipients = body.recipients.split(",").map((s) => s.trim()).filter(Boolean);
            await sendJson("POST", "/admin/notifications/channels/", body);
            setForm(null);
            setMessage(`Channel ${String(v.name)} created.`);
            setVersion((n) => n + 1);
          }}
        />
      ) : null}

      <h2>Rules</h2>
      {rules.error ? <ErrorBox error={rules.error} onRetry={rules.reload} /> : null}
      {rules.loading && !rules.data ? <Loading /> : null}
      {rules.data && !visibleRules.length ? <Empty>No rules.</Empty> : null}
      {visibleRules.length ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Rules">
          <table data-testid="rules">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">When</th>
                <th scope="col">Send to</th>
                <th scope="col">Enabled</th>
                <th scope="col">Changed</th>
                {canWrite ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {visibleRules.map((r) => (
                <tr key={r.id}>
                  <td>{r.name}</td>
                  <td>
                    {TRIGGER_LABELS[r.trigger] ?? r.trigger}
                    {r.min_offense_severity != null ? ` ≥ ${r.min_offense_severity}` : ""}
                    {r.min_incident_severity ? ` ≥ ${r.min_incident_severity}` : ""}
                    {r.lead_minutes ? ` (${r.lead_minutes} min before)` : ""}
                    {r.polls ? ` (${r.polls} polls)` : ""}
                  </td>
                  <td>{r.channel_ids.map(channelName).join(", ")}</td>
                  <td>{r.enabled ? "Yes" : "No"}</td>
                  <td>{formatDate(r.updated_at)}</td>
                  {canWrite ? (
                    <td>
                      <div className="row-actions">
                        <button
                          type="button"
                          onClick={() =>
                            void act(
                              () =>
                                sendJson("PUT", `/admin/notifications/rules/${r.id}/`, {
                                  name: r.name,
                                  trigger: r.trigger,
                                  company_id: r.company_id,
                                  enabled: !r.enabled,
                                  min_offense_severity: r.min_offense_severity,
                                  min_incident_severity: r.min_incident_severity,
                                  lead_minutes: r.lead_minutes,
                                  polls: r.polls,
                                  channel_ids: r.channel_ids,
                                }),
                              `Rule ${r.name} ${r.enabled ? "disabled" : "enabled"}.`,
                            )
                          }
                        >
                          {r.enabled ? "Disable" : "Enable"}
                          <span className="skip-link"> {r.name}</span>
                        </button>
                        <ConfirmButton label="Delete" question={`Delete the rule ${r.name}?`} onConfirm={() => act(() => sendJson("DELETE", `/admin/notifications/rules/${r.id}/`), `Rule ${r.name} deleted.`)} />
                      </div>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}

      <h2>Channels</h2>
      {channels.error ? <ErrorBox error={channels.error} onRetry={channels.reload} /> : null}
      {channels.loading && !channels.data ? <Loading /> : null}
      {channels.data && !visibleChannels.length ? <Empty>No channels.</Empty> : null}
      {visibleChannels.length ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Channels">
          <table data-testid="channels">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Enabled</th>
                <th scope="col">Waiting</th>
                <th scope="col">Failed</th>
                <th scope="col">State</th>
                {canWrite ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {visibleChannels.map((c) => (
                <tr key={c.id}>
                  <td>{c.name}</td>
                  <td>{KIND_LABELS[c.kind] ?? c.kind}</td>
                  <td>{c.enabled ? "Yes" : "No"}</td>
                  <td>{c.pending}</td>
                  <td>{c.failed}</td>
                  <td>{c.parked_at ? `Parked since ${formatDate(c.parked_at)}: ${c.park_reason ?? ""}` : c.consecutive_failures ? `${c.consecutive_failures} failures in a row` : "OK"}</td>
                  {canWrite ? (
                    <td>
                      <div className="row-actions">
                        {c.parked_at ? (
                          <button type="button" onClick={() => void act(() => sendJson("POST", `/admin/notifications/channels/${c.id}/resume/`), `Channel ${c.name} resumed.`)}>
                            Resume
                          </button>
                        ) : null}
                        {c.kind !== "in_app" ? <ConfirmButton label="Delete" question={`Delete the channel ${c.name}?`} onConfirm={() => act(() => sendJson("DELETE", `/admin/notifications/channels/${c.id}/`), `Channel ${c.name} deleted.`)} /> : null}
                      </div>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}
