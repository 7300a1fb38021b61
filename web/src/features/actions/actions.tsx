// Actions on the vendors from a record's page: escalate an offense to an XSOAR incident, update an
// XSOAR incident or run a playbook on it, add a note to a ServiceDesk Plus request or change its
// status. Each request carries an Idempotency-Key (kept until the API answered, so a retry after a
// lost answer is the same request); the API accepts it (202) and the vendor's outcome arrives live on
// the socket (`action.outcome`), drawn in the record's action log.
import { useEffect, useState, type ReactNode } from "react";
import { api, ApiError, getJson, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { formatDate } from "../../components/format";
import { useLiveFrames } from "../../components/live";
import { Empty, ErrorBox, Loading } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { asError, EntityForm, type FieldSpec, type Values } from "../admin/forms";

export type VendorAction = components["schemas"]["VendorAction"];
type Page = { items: VendorAction[]; total: number };
type Row = Record<string, unknown>;

export const ACTION_LABELS: Record<string, string> = {
  "xsoar.offense.escalate": "Escalate to XSOAR",
  "xsoar.incident.update": "Update the XSOAR incident",
  "xsoar.playbook.run": "Run a playbook",
  "sdp.ticket.note": "Add a note",
  "sdp.ticket.status": "Change the status",
};

const SEVERITIES = ["informational", "low", "medium", "high", "critical"].map((s) => ({ value: s, label: s }));

/** A fresh key for one request (crypto.randomUUID only exists in secure contexts). */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the vendor answered, in a line. */
export function describeOutcome(action: Pick<VendorAction, "action" | "status" | "result" | "error">): string {
  if (action.status === "accepted") return "Waiting for the vendor…";
  if (action.status === "failed") return action.error ? `${action.error.message} [${action.error.category}]` : "failed";
  const result = (action.result ?? {}) as Row;
  switch (action.action) {
    case "xsoar.offense.escalate":
      return `XSOAR incident ${String(result.incident_id ?? "?")} opened${result.adopted ? " (found from an earlier attempt)" : ""}`;
    case "xsoar.incident.update":
      return `XSOAR incident ${String(result.incident_id ?? "")} is ${String(result.status ?? "updated")}`;
    case "xsoar.playbook.run":
      return `Playbook ${String(result.playbook_id ?? "")} started`;
    case "sdp.ticket.note":
      return `Note ${String(result.note_id ?? "")} added to request ${String(result.ticket_id ?? "")}`;
    case "sdp.ticket.status":
      return `Request ${String(result.ticket_id ?? "")} is ${String(result.status ?? "changed")}`;
    default:
      return "done";
  }
}

function statusLabel(status: string): string {
  return status === "accepted" ? "waiting" : status;
}

interface Outcome {
  command_id: string;
  status: VendorAction["status"];
  result?: Record<string, unknown> | null;
  error?: { category: string; message: string } | null;
  finished_at?: string | null;
  attempts?: number;
}

/** The actions on one record, newest first; outcomes replace "waiting" as they arrive. */
export function ActionLog({ targetType, targetId, version }: { targetType: "offense" | "incident" | "ticket"; targetId: string; version: number }) {
  const state = useAsync(() => getJson<Page>("/tenant/actions/", { target_type: targetType, target_id: targetId, limit: 20 }), [targetType, targetId, version]);
  const [outcomes, setOutcomes] = useState<Record<string, Outcome>>({});
  useLiveFrames("action.outcome", (frame) => {
    const outcome = frame.action as Outcome | undefined;
    if (outcome?.command_id) setOutcomes((all) => ({ ...all, [outcome.command_id]: outcome }));
  });
  const rows = (state.data?.items ?? []).map((a) => {
    const o = outcomes[a.id];
    return o && a.status === "accepted" ? { ...a, status: o.status, result: o.result ?? null, error: o.error ?? null, finished_at: o.finished_at ?? null, attempts: o.attempts ?? a.attempts } : a;
  });
  // A socket that was down when the outcome was published: read the log again while one waits.
  const waiting = rows.some((a) => a.status === "accepted");
  useEffect(() => {
    if (!waiting) return;
    const timer = window.setTimeout(state.reload, 10_000);
    return () => window.clearTimeout(timer);
  }, [waiting, state.data]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <section className="card" aria-labelledby={`actions-${targetType}`}>
      <h2 id={`actions-${targetType}`}>Actions on the vendor</h2>
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading label="Loading the actions…" /> : null}
      {state.data && rows.length === 0 ? <p className="muted">No actions yet.</p> : null}
      {rows.length ? (
        <ol className="action-log" data-testid="action-log" aria-live="polite">
          {rows.map((a) => (
            <li key={a.id} data-status={a.status}>
              <div>
                <strong>{ACTION_LABELS[a.action] ?? a.action}</strong> <span className={`tag status-${a.status}`}>{statusLabel(a.status)}</span>
              </div>
              <div className="action-outcome">{describeOutcome(a)}</div>
              <div className="muted">
                {a.requested_by_name ?? a.requested_by} · {formatDate(a.requested_at)}
                {a.finished_at ? ` · finished ${formatDate(a.finished_at)}` : ""}
                {a.attempts > 1 ? ` · ${a.attempts} attempts` : ""}
              </div>
            </li>
          ))}
        </ol>
      ) : null}
    </section>
  );
}

/**
 * One action's form: the key is made when the form opens and kept until the API accepted the
 * request, so pressing the button again after a network error sends the same request.
 */
function ActionForm({ title, fields, initial, submitLabel, send, onAccepted }: { title: string; fields: FieldSpec[] | ((v: Values) => FieldSpec[]); initial: Values; submitLabel: string; send: (values: Values, key: string) => Promise<VendorAction>; onAccepted: (a: VendorAction) => void }) {
  const [key, setKey] = useState(newIdempotencyKey);
  const [accepted, setAccepted] = useState<VendorAction | null>(null);
  return (
    <>
      <EntityForm
        key={key}
        title={title}
        fields={fields}
        initial={initial}
        submitLabel={submitLabel}
        onSubmit={async (values) => {
          const action = await send(values, key);
          setAccepted(action);
          setKey(newIdempotencyKey());
          onAccepted(action);
        }}
      />
      {accepted ? (
        <p className="notice" role="status">
          {ACTION_LABELS[accepted.action] ?? accepted.action}: sent to the vendor (action {accepted.id.slice(0, 8)}); the outcome shows in the action log.
        </p>
      ) : null}
    </>
  );
}

const text = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? v.trim() : null);

/** Escalate an offense: XSOAR opens an incident in the company's account. */
export function OffenseActions({ record }: { record: Row }) {
  const session = useSession();
  const [version, setVersion] = useState(0);
  const id = Number(record.id);
  const canAct = session.isManager && !session.readOnly;
  return (
    <>
      {canAct ? (
        <ActionForm
          title="Escalate to an XSOAR incident"
          submitLabel="Escalate"
          initial={{ name: String(record.description ?? "").split("\n")[0].slice(0, 500), severity: "", owner: "", details: "", start_playbook: true }}
          fields={[
            { name: "name", label: "Incident name", maxLength: 500, hint: "empty: the offense's description" },
            { name: "severity", label: "Severity", type: "select", options: SEVERITIES, hint: "empty: from the offense's severity" },
            { name: "owner", label: "Owner", maxLength: 200 },
            { name: "details", label: "Details", type: "textarea", maxLength: 20000 },
            { name: "start_playbook", label: "Start the incident type's playbook", type: "checkbox" },
          ]}
          send={(v, key) =>
            unwrap(
              api.POST("/tenant/offenses/{offense_pk}/escalate/", {
                params: { path: { offense_pk: id }, header: { "Idempotency-Key": key } },
                body: { name: text(v.name), severity: (text(v.severity) as never) ?? null, owner: text(v.owner), details: text(v.details), start_playbook: Boolean(v.start_playbook) },
              }),
            )
          }
          onAccepted={() => setVersion((n) => n + 1)}
        />
      ) : null}
      <ActionLog targetType="offense" targetId={String(id)} version={version} />
    </>
  );
}

interface Playbook {
  id: string;
  name: string;
}

function PlaybookRunner({ record, onAccepted }: { record: Row; onAccepted: () => void }) {
  const [open, setOpen] = useState(false);
  const playbooks = useAsync<Playbook[] | null>(
    () => (open ? getJson<{ items: Playbook[] }>("/tenant/soar-playbooks/", { integration_id: record.integration_id, account: record.account ?? "" }).then((p) => p.items) : Promise.resolve(null)),
    [open, String(record.integration_id), String(record.account)],
  );
  if (!open) {
    return (
      <div className="card">
        <h2>Run a playbook</h2>
        <button type="button" onClick={() => setOpen(true)}>
          Choose a playbook…
        </button>
      </div>
    );
  }
  if (playbooks.loading && !playbooks.data) return <Loading label="Asking XSOAR for its playbooks…" />;
  if (playbooks.error) return <ErrorBox error={playbooks.error} onRetry={playbooks.reload} />;
  const options = (playbooks.data ?? []).map((p) => ({ value: p.id, label: p.name }));
  if (!options.length) return <Empty>XSOAR has no playbook to run in this account.</Empty>;
  return (
    <ActionForm
      title="Run a playbook"
      submitLabel="Run playbook"
      initial={{ playbook_id: options[0].value }}
      fields={[{ name: "playbook_id", label: "Playbook", type: "select", required: true, options }]}
      send={(v, key) =>
        unwrap(
          api.POST("/tenant/soar-incidents/{incident_pk}/run-playbook/", {
            params: { path: { incident_pk: Number(record.id) }, header: { "Idempotency-Key": key } },
            body: { playbook_id: String(v.playbook_id) },
          }),
        )
      }
      onAccepted={onAccepted}
    />
  );
}

/** Update an XSOAR incident (owner, severity, status; closing takes a reason) or run a playbook. */
export function IncidentActions({ record }: { record: Row }) {
  const session = useSession();
  const [version, setVersion] = useState(0);
  const canAct = session.isManager && !session.readOnly;
  return (
    <>
      {canAct ? (
        <>
          <ActionForm
            title="Update the XSOAR incident"
            submitLabel="Update incident"
            initial={{ owner: record.owner ?? "", severity: "", status: "", close_reason: "", close_notes: "" }}
            fields={(v) => [
              { name: "owner", label: "Owner", maxLength: 200, hint: "empty: unassigned" },
              { name: "severity", label: "Severity", type: "select", options: SEVERITIES, hint: "empty: unchanged" },
              { name: "status", label: "Status", type: "select", options: ["pending", "active", "closed"].map((s) => ({ value: s, label: s })), hint: "empty: unchanged" },
              ...(v.status === "closed"
                ? ([
                    { name: "close_reason", label: "Close reason", type: "select", required: true, options: ["Resolved", "False Positive", "Duplicate", "Other"].map((s) => ({ value: s, label: s })) },
                    { name: "close_notes", label: "Close notes", type: "textarea", maxLength: 20000 },
                  ] satisfies FieldSpec[])
                : []),
            ]}
            send={(v, key) =>
              unwrap(
                api.POST("/tenant/soar-incidents/{incident_pk}/update/", {
                  params: { path: { incident_pk: Number(record.id) }, header: { "Idempotency-Key": key } },
                  body: {
                    owner: typeof v.owner === "string" && v.owner.trim() !== String(record.owner ?? "") ? v.owner.trim() : null,
                    severity: (text(v.severity) as never) ?? null,
                    status: (text(v.status) as never) ?? null,
                    close_reason: v.status === "closed" ? text(v.close_reason) : null,
                    close_notes: v.status === "closed" ? text(v.close_notes) : null,
                  },
                }),
              )
            }
            onAccepted={() => setVersion((n) => n + 1)}
          />
          <PlaybookRunner record={record} onAccepted={() => setVersion((n) => n + 1)} />
        </>
      ) : null}
      <ActionLog targetType="incident" targetId={String(record.id)} version={version} />
    </>
  );
}

/** A note on a ServiceDesk Plus request, or its status: any user who may write. */
export function TicketActions({ record }: { record: Row }) {
  const session = useSession();
  const [version, setVersion] = useState(0);
  const id = Number(record.id);
  return (
    <>
      {!session.readOnly ? (
        <>
          <ActionForm
            title="Add a note"
            submitLabel="Add note"
            initial={{ description: "", show_to_requester: false, notify_technician: false }}
            fields={[
              { name: "description", label: "Note", type: "textarea", required: true, maxLength: 20000 },
              { name: "show_to_requester", label: "Show to the requester", type: "checkbox" },
              { name: "notify_technician", label: "Notify the technician", type: "checkbox" },
            ]}
            send={(v, key) =>
              unwrap(
                api.POST("/tenant/itsm-tickets/{ticket_pk}/notes/", {
                  params: { path: { ticket_pk: id }, header: { "Idempotency-Key": key } },
                  body: { description: String(v.description ?? ""), show_to_requester: Boolean(v.show_to_requester), notify_technician: Boolean(v.notify_technician) },
                }),
              )
            }
            onAccepted={() => setVersion((n) => n + 1)}
          />
          <ActionForm
            title="Change the status"
            submitLabel="Change status"
            initial={{ status: "", resolution: "" }}
            fields={(v) => [
              { name: "status", label: "Status", type: "select", required: true, options: ["", "Open", "In Progress", "On Hold", "Resolved", "Closed"].map((s) => ({ value: s, label: s || "Choose…" })) },
              ...(v.status === "Resolved" || v.status === "Closed" ? ([{ name: "resolution", label: "Resolution", type: "textarea", maxLength: 20000 }] satisfies FieldSpec[]) : []),
            ]}
            send={(v, key) =>
              unwrap(
                api.POST("/tenant/itsm-tickets/{ticket_pk}/status/", {
                  params: { path: { ticket_pk: id }, header: { "Idempotency-Key": key } },
                  body: { status: String(v.status ?? ""), resolution: text(v.resolution) },
                }),
              )
            }
            onAccepted={() => setVersion((n) => n + 1)}
          />
        </>
      ) : null}
      <ActionLog targetType="ticket" targetId={String(id)} version={version} />
    </>
  );
}

export function RecordActions({ kind, record }: { kind: string; record: Row }): ReactNode {
  if (kind === "offenses") return <OffenseActions record={record} />;
  if (kind === "incidents") return <IncidentActions record={record} />;
  if (kind === "tickets") return <TicketActions record={record} />;
  return null;
}

export { asError, ApiError };
