import { useState, type FormEvent, type ReactNode } from "react";
import { useParams } from "react-router-dom";
import { ApiError, getJson, sendJson } from "../../api/client";
import { useSession } from "../../auth/session";
import { formatDate, formatValue } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";

type Row = Record<string, unknown>;
interface Page {
  items: Row[];
  total: number;
}
interface Column {
  key: string;
  label: string;
  render?: (row: Row) => ReactNode;
}

function asError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null);
}

/** Runs one mutating call and keeps its outcome for the page to show. */
function useAction() {
  const [error, setError] = useState<ApiError | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (work: () => Promise<string | void>, after?: () => void) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      const text = await work();
      if (text) setMessage(text);
      after?.();
    } catch (exc) {
      setError(asError(exc));
    } finally {
      setBusy(false);
    }
  };
  const outcome = (
    <>
      {error ? <ErrorBox error={error} /> : null}
      {message ? (
        <p className="notice" role="status">
          {message}
        </p>
      ) : null}
    </>
  );
  return { run, busy, outcome };
}

function Table({ rows, columns, actions, label }: { rows: Row[]; columns: Column[]; actions?: (row: Row) => ReactNode; label: string }) {
  if (!rows.length) return <Empty>Nothing here yet.</Empty>;
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={label}>
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col">
                {c.label}
              </th>
            ))}
            {actions ? <th scope="col">Actions</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={String(row.id ?? i)}>
              {columns.map((c) => (
                <td key={c.key}>{c.render ? c.render(row) : formatValue(row[c.key])}</td>
              ))}
              {actions ? <td className="page-actions">{actions(row)}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Listing({ path, query = {}, columns, actions, label, children }: { path: string; query?: Record<string, unknown>; columns: Column[]; actions?: (row: Row, reload: () => void) => ReactNode; label: string; children?: (reload: () => void) => ReactNode }) {
  const state = useAsync(() => getJson<Page>(path, { limit: 200, ...query }), [path, JSON.stringify(query)]);
  return (
    <>
      {children?.(state.reload)}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? <Table rows={state.data.items} columns={columns} label={label} actions={actions ? (row) => actions(row, state.reload) : undefined} /> : null}
    </>
  );
}

function Companies() {
  const { readOnly } = useSession();
  const action = useAction();
  const [name, setName] = useState("");
  const [country, setCountry] = useState("");
  return (
    <>
      <PageHeader title="Companies" />
      {action.outcome}
      <Listing
        path="/admin/companies/"
        query={{ status: "current" }}
        label="Companies"
        columns={[
          { key: "name", label: "Name" },
          { key: "status", label: "Status" },
          { key: "industry", label: "Industry" },
          { key: "country", label: "Country" },
          { key: "created_at", label: "Created", render: (r) => formatDate(r.created_at) },
        ]}
        actions={
          readOnly
            ? undefined
            : (row, reload) =>
                row.status === "active" ? (
                  <button type="button" className="danger" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/tenants/${row.id}/inactivate/`).then(() => `${row.name} is inactive.`), reload)}>
                    Inactivate
                  </button>
                ) : (
                  <button type="button" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/tenants/${row.id}/reactivate/`).then(() => `${row.name} is active again.`), reload)}>
                    Reactivate
                  </button>
                )
        }
      >
        {(reload) =>
          readOnly ? null : (
            <form
              className="card inline"
              aria-label="New company"
              onSubmit={(e: FormEvent) => {
                e.preventDefault();
                void action.run(
                  () => sendJson("POST", "/admin/tenants/", { company: { name, country: country || null } }).then(() => `Created ${name}.`),
                  () => {
                    setName("");
                    setCountry("");
                    reload();
                  },
                );
              }}
              style={{ marginBottom: "1rem" }}
            >
              <label>
                Company name
                <input value={name} onChange={(e) => setName(e.target.value)} required minLength={2} />
              </label>
              <label>
                Country
                <input value={country} onChange={(e) => setCountry(e.target.value)} />
              </label>
              <button type="submit" className="primary" disabled={action.busy}>
                Create company
              </button>
            </form>
          )
        }
      </Listing>
    </>
  );
}

function Integrations() {
  const { readOnly } = useSession();
  const action = useAction();
  const syncSummary = (row: Row) => {
    const sync = (row.sync as Row[] | undefined) ?? [];
    if (!sync.length) return "never";
    const failed = sync.filter((s) => s.outcome !== "ok");
    const last = sync.map((s) => String(s.finished_at ?? "")).sort().pop();
    const records = sync.reduce((n, s) => n + Number(s.records ?? 0), 0);
    return `${failed.length ? `${failed.length} failing (${failed.map((f) => f.error_category ?? f.resource).join(", ")})` : "ok"} · ${records} records · ${formatDate(last)}`;
  };
  return (
    <>
      <PageHeader title="Integrations" />
      {action.outcome}
      <Listing
        path="/integration/"
        label="Integrations"
        columns={[
          { key: "instance_name", label: "Name" },
          { key: "subtype", label: "Product" },
          { key: "base_url", label: "URL" },
          { key: "status", label: "Status" },
          { key: "last_test", label: "Last test", render: (r) => ((r.last_test as Row | null)?.message as string) ?? "—" },
          { key: "sync", label: "Sync health", render: syncSummary },
        ]}
        actions={(row, reload) => (
          <>
            {readOnly ? null : (
              <button
                type="button"
                disabled={action.busy}
                onClick={() =>
                  void action.run(async () => {
                    const result = await sendJson<{ ok: boolean; category?: string | null; message: string; hint?: string | null }>("POST", `/integration/${row.id}/test-connection/`);
                    return `${row.instance_name}: ${result.ok ? "connected" : `failed [${result.category}]`} — ${result.message}${result.hint ? ` (${result.hint})` : ""}`;
                  }, reload)
                }
              >
                Test connection
              </button>
            )}
            {readOnly ? null : (
              <button type="button" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/integrations/${row.id}/sync-now/`).then(() => `${row.instance_name}: sync requested.`), reload)}>
                Sync now
              </button>
            )}
          </>
        )}
      />
    </>
  );
}

function Mappings() {
  const columns = (key: string, label: string): Column[] => [
    { key: "company_name", label: "Company" },
    { key: "integration_name", label: "Integration" },
    { key, label },
    { key: "active", label: "Active" },
  ];
  return (
    <>
      <PageHeader title="Mappings and contracted volumes" />
      <h2>QRadar domains</h2>
      <Listing
        path="/admin/mappings/qradar/"
        label="QRadar mappings"
        columns={[...columns("domain_name", "Domain"), { key: "contracted_volume", label: "Contracted", render: (r) => `${formatValue(Number(r.contracted_volume))} ${r.contracted_volume_type ?? ""}` }]}
      />
      <h2 style={{ marginTop: "1rem" }}>XSOAR accounts</h2>
      <Listing path="/admin/mappings/soar/" label="XSOAR mappings" columns={columns("account", "Account")} />
      <h2 style={{ marginTop: "1rem" }}>ServiceDesk Plus accounts</h2>
      <Listing path="/admin/mappings/itsm/" label="ServiceDesk Plus mappings" columns={columns("account_id", "Account")} />
    </>
  );
}

function Sla() {
  const { readOnly } = useSession();
  const state = useAsync(() => getJson<Page>("/admin/sla/defaults/"), []);
  const action = useAction();
  const [edits, setEdits] = useState<Record<string, Record<string, number>>>({});
  const steps = [
    ["tta_minutes", "Acknowledge (minutes)"],
    ["ttn_minutes", "Notify (minutes)"],
    ["ttdn_minutes", "Resolve (minutes)"],
  ];
  const value = (row: Row, key: string) => edits[String(row.level)]?.[key] ?? Number(row[key]);
  return (
    <>
      <PageHeader title="SLA defaults" />
      <p className="muted">Companies without their own SLA use these targets; per-company overrides are set on the company.</p>
      {action.outcome}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.data ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const items = state.data!.items.map((row) => ({ level: row.level, ...Object.fromEntries(steps.map(([k]) => [k, value(row, k)])) }));
            void action.run(() => sendJson("PUT", "/admin/sla/defaults/", { items }).then(() => "SLA defaults saved."), state.reload);
          }}
        >
          <Table
            rows={state.data.items}
            label="SLA defaults"
            columns={[
              { key: "level", label: "Priority" },
              ...steps.map(([key, label]) => ({
                key,
                label,
                render: (row: Row) =>
                  readOnly ? (
                    formatValue(row[key])
                  ) : (
                    <input
                      type="number"
                      min={1}
                      aria-label={`${row.level} ${label}`}
                      value={value(row, key)}
                      onChange={(e) => setEdits((all) => ({ ...all, [String(row.level)]: { ...all[String(row.level)], [key]: Number(e.target.value) } }))}
                    />
                  ),
              })),
            ]}
          />
          {readOnly ? null : (
            <p>
              <button type="submit" className="primary" disabled={action.busy}>
                Save SLA defaults
              </button>
            </p>
          )}
        </form>
      ) : null}
    </>
  );
}

function Users() {
  return (
    <>
      <PageHeader title="Users and roles" />
      <Listing
        path="/admin/users/"
        label="Users"
        columns={[
          { key: "username", label: "User" },
          { key: "kind", label: "Kind" },
          { key: "role", label: "Role" },
          { key: "auth_source", label: "Source" },
          { key: "permissions", label: "Permissions" },
          { key: "is_read_only", label: "Read-only" },
          { key: "is_active", label: "Active" },
          { key: "last_login_at", label: "Last sign-in", render: (r) => formatDate(r.last_login_at) },
        ]}
      />
    </>
  );
}

function LoginAudit() {
  return (
    <>
      <PageHeader title="Login audit" />
      <Listing
        path="/admin/login-audit/"
        label="Login audit"
        columns={[
          { key: "at", label: "When", render: (r) => formatDate(r.at) },
          { key: "username", label: "User" },
          { key: "outcome", label: "Outcome" },
          { key: "method", label: "Method" },
          { key: "reason", label: "Reason" },
          { key: "client_ip", label: "Address" },
        ]}
      />
    </>
  );
}

function DeadLetters() {
  const { readOnly } = useSession();
  const action = useAction();
  return (
    <>
      <PageHeader title="Dead letters" />
      {action.outcome}
      <Listing
        path="/admin/dead-letters/"
        label="Dead-letter queues"
        columns={[
          { key: "queue", label: "Queue" },
          { key: "dead_letter_queue", label: "Dead-letter queue" },
          { key: "parked", label: "Parked messages" },
        ]}
        actions={
          readOnly
            ? undefined
            : (row, reload) => (
                <button type="button" disabled={action.busy || !row.parked} onClick={() => void action.run(() => sendJson<Row>("POST", "/admin/dead-letters/replay/", { queue: row.queue }).then((r) => `Replayed: ${formatValue(r?.replayed ?? r)}`), reload)}>
                  Replay
                </button>
              )
        }
      />
    </>
  );
}

const PAGES: Record<string, () => JSX.Element> = {
  companies: Companies,
  integrations: Integrations,
  mappings: Mappings,
  sla: Sla,
  users: Users,
  "login-audit": LoginAudit,
  "dead-letters": DeadLetters,
};

export default function AdminPages() {
  const { page } = useParams();
  const Page = PAGES[page ?? ""];
  return Page ? <Page /> : <Empty>There is no such page.</Empty>;
}
