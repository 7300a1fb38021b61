// The audit trail: every change made through the portal (companies, users, integrations, mappings,
// SLA, notification rules, actions on the vendors...) and every sign-in, newest first. Admins see
// every company's records; a tenant administrator their own company's (the API's row-level security).
import { Fragment, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ApiError, download, getJson } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { formatDate } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { asError } from "../admin/forms";

type AuditRecord = components["schemas"]["AuditRecord"];
const PAGE = 50;
const TEXT_FILTERS = [
  { name: "actor", label: "Who (user name or id)" },
  { name: "action", label: "Action", placeholder: "e.g. vendor_action.requested" },
  { name: "target_type", label: "Target type" },
  { name: "target_id", label: "Target id" },
];
const COMMON_ACTIONS = ["vendor_action.requested", "vendor_action.succeeded", "vendor_action.failed", "auth.login.succeeded", "auth.login.failed"];

function dayStart(value: string, end: boolean): string {
  // A day in the date input: `from` inclusive at its start, `to` exclusive at the next day's start.
  if (!end) return `${value}T00:00:00Z`;
  const next = new Date(`${value}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString();
}

function Change({ record }: { record: AuditRecord }) {
  if (!record.before && !record.after) return null;
  return (
    <details>
      <summary>Change</summary>
      <pre className="audit-change">{JSON.stringify({ before: record.before ?? undefined, after: record.after ?? undefined }, null, 2)}</pre>
    </details>
  );
}

const RECORD_PAGES: Record<string, string> = { offense: "/offenses", incident: "/incidents", ticket: "/tickets" };

/** The target; an action on a vendor also names the record it acted on. */
function Target({ record }: { record: AuditRecord }) {
  const acted = (record.after ?? record.before ?? {}) as { target_type?: unknown; target_id?: unknown };
  const on = record.target_type === "vendor_action" && typeof acted.target_type === "string" ? acted : null;
  return (
    <>
      {record.target_type} {record.target_id ?? ""}
      {on ? (
        <>
          {" on "}
          <Link to={`${RECORD_PAGES[String(on.target_type)] ?? "/"}/${String(on.target_id)}`}>
            {String(on.target_type)} {String(on.target_id)}
          </Link>
        </>
      ) : null}
    </>
  );
}

export default function Audit() {
  const session = useSession();
  const { scope, companies } = useCompany();
  const [params, setParams] = useSearchParams();
  const [downloadError, setDownloadError] = useState<ApiError | null>(null);
  const offset = Number(params.get("offset") ?? 0);
  const allCompanies = session.isAdmin && params.get("all") === "true";
  const query: Record<string, unknown> = { ...(allCompanies ? {} : scope) };
  for (const f of [...TEXT_FILTERS.map((f) => f.name), "source"]) if (params.get(f)) query[f] = params.get(f);
  if (params.get("from")) query.from = dayStart(params.get("from")!, false);
  if (params.get("to")) query.to = dayStart(params.get("to")!, true);
  const state = useAsync(() => getJson<{ items: AuditRecord[]; total: number }>("/admin/audit/", { ...query, limit: PAGE, offset }), [params.toString(), scope.company_id]);
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "offset") next.delete("offset");
    setParams(next, { replace: true });
  };
  const companyName = (id: string | null | undefined) => (id ? companies.find((c) => c.id === id)?.name ?? id.slice(0, 8) : "SOC");
  const save = async () => {
    setDownloadError(null);
    try {
      await download("/admin/audit/export.csv", query, "audit.csv");
    } catch (exc) {
      setDownloadError(asError(exc));
    }
  };
  return (
    <>
      <PageHeader title="Audit trail">
        <button type="button" onClick={() => void save()}>
          Download CSV
        </button>
        {session.isAdmin ? <Link to="/manage/login-audit">Sign-in attempts (directory and local)</Link> : null}
      </PageHeader>
      <form className="filters" role="search" aria-label="Filter the audit trail" onSubmit={(e) => e.preventDefault()}>
        {TEXT_FILTERS.map((f) => (
          <label key={f.name}>
            {f.label}
            <input
              type="search"
              name={f.name}
              list={f.name === "action" ? "audit-actions" : undefined}
              placeholder={f.placeholder}
              defaultValue={params.get(f.name) ?? ""}
              onKeyDown={(e) => e.key === "Enter" && set(f.name, e.currentTarget.value.trim())}
              onBlur={(e) => set(f.name, e.currentTarget.value.trim())}
            />
          </label>
        ))}
        <datalist id="audit-actions">
          {COMMON_ACTIONS.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
        <label>
          Service
          <select value={params.get("source") ?? ""} onChange={(e) => set("source", e.target.value)}>
            <option value="">Any</option>
            <option value="tenant">Portal (tenant)</option>
            <option value="auth">Sign-in and users (auth)</option>
          </select>
        </label>
        <label>
          From
          <input type="date" value={params.get("from") ?? ""} onChange={(e) => set("from", e.target.value)} />
        </label>
        <label>
          To
          <input type="date" value={params.get("to") ?? ""} onChange={(e) => set("to", e.target.value)} />
        </label>
        {session.isAdmin ? (
          <label className="check">
            <input type="checkbox" checked={allCompanies} onChange={(e) => set("all", e.target.checked ? "true" : "")} />
            Every company
          </label>
        ) : null}
      </form>
      {downloadError ? <ErrorBox error={downloadError} /> : null}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? (
        <>
          <p className="muted" aria-live="polite">
            <span data-testid="list-total">{state.data.total}</span> records{state.loading ? " · updating…" : ""}
          </p>
          {state.data.items.length === 0 ? (
            <Empty>No records match these filters.</Empty>
          ) : (
            <div className="table-wrap" tabIndex={0} role="region" aria-label="Audit records">
              <table data-testid="audit">
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    {session.isAdmin ? <th scope="col">Company</th> : null}
                    <th scope="col">From</th>
                    <th scope="col">Request id</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {state.data.items.map((r) => (
                    <Fragment key={r.id}>
                      <tr>
                        <td>{formatDate(r.at)}</td>
                        <td>
                          {r.actor_username} <span className="muted">({r.actor_kind})</span>
                        </td>
                        <td>
                          <code>{r.action}</code>
                        </td>
                        <td>
                          <Target record={r} />
                        </td>
                        {session.isAdmin ? <td>{companyName(r.company_id)}</td> : null}
                        <td>{r.client_address ?? "—"}</td>
                        <td>{r.request_id ? <code className="request-id">{r.request_id}</code> : "—"}</td>
                        <td>
                          <Change record={r} />
                        </td>
                      </tr>
                    </Fragment>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <nav className="pager" aria-label="Pages">
            <button type="button" disabled={offset === 0} onClick={() => set("offset", String(Math.max(0, offset - PAGE)))}>
              Previous
            </button>
            <span>
              {state.data.total ? offset + 1 : 0}–{Math.min(offset + PAGE, state.data.total)} of {state.data.total}
            </span>
            <button type="button" disabled={offset + PAGE >= state.data.total} onClick={() => set("offset", String(offset + PAGE))}>
              Next
            </button>
          </nav>
        </>
      ) : null}
    </>
  );
}
